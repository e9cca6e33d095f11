/* run.c - the jobs of a run and the one record of its signal. */
#include <string.h>

#include "kflash/lock.h"
#include "kflash/run.h"
#include "kflash/util.h"

void kf_run_init(struct kf_run *run, struct kf_ctx *ctx, struct kf_registry *reg,
		 struct kf_board **boards, size_t n, enum kf_method forced)
{
	size_t i;

	memset(run, 0, sizeof(*run));
	run->ctx = ctx;
	run->reg = reg;
	run->s = &reg->settings;
	run->n = n;
	run->lock_fd = -1;
	run->jobs = kf_xcalloc(n + 1, sizeof(*run->jobs));
	for (i = 0; i < n; i++) {
		struct kf_job *j = &run->jobs[i];

		j->b = boards[i];
		j->tr = kf_transport_for(boards[i]);
		j->lock_fd = -1;
		j->unit = -1;
		j->method = forced != KF_METHOD_DEFAULT ? forced
			  : kf_board_method(boards[i], run->s);
	}
}

void kf_run_release(struct kf_run *run)
{
	size_t i;

	kf_lock_give(run->ctx, &run->lock_fd);
	for (i = 0; i < run->n; i++) {
		struct kf_job *j = &run->jobs[i];

		kf_lock_give(run->ctx, &j->lock_fd);
		kf_where_release(&j->at);
		free(j->cfg_path);
		kf_kconfig_release(&j->cfg);
		kf_build_result_release(&j->build);
		kf_error_release(&j->err);
		free(j->err.note);
	}
	free(run->jobs);
	free(run->kdir);
	memset(run, 0, sizeof(*run));
	run->lock_fd = -1;
}

size_t kf_run_active(const struct kf_run *run)
{
	size_t i, n = 0;

	for (i = 0; i < run->n; i++)
		n += run->jobs[i].state == KF_JOB_ACTIVE;
	return n;
}

void kf_run_heard(struct kf_run *run, int sig)
{
	if (sig && !run->signal)
		run->signal = sig;
}

bool kf_run_signalled(struct kf_run *run)
{
	kf_run_heard(run, kf_os_take_signal(run->ctx->ops));
	kf_run_heard(run, run->ctx->signal);
	return run->signal != 0;
}

void kf_job_fail(struct kf_run *run, struct kf_job *j, int r)
{
	j->state = KF_JOB_FAILED;
	if (!j->err.code)
		kf_error_set(&j->err, r < 0 && kf_is_class(r) ? r : KF_EFAILED,
			     "%s failed", j->b->key);
	if (r == KF_EINTERRUPTED || j->err.code == KF_EINTERRUPTED)
		kf_run_heard(run, j->err.signal);
}

void kf_job_skip(struct kf_job *j, const char *reason)
{
	j->state = KF_JOB_SKIPPED;
	j->skip_reason = reason;
	kf_error_release(&j->err);
}

void kf_job_skip_needless(struct kf_job *j, const char *reason)
{
	kf_job_skip(j, reason);
	j->needless = true;
}
