/* select.c - the boards a command names, and where each one is now. */
#include <string.h>

#include "kflash/select.h"
#include "kflash/session.h"
#include "kflash/util.h"

int kf_select_unknown(const struct kf_registry *reg, const char *name,
		      struct kf_error *err)
{
	struct kf_buf known = KF_BUF_INIT;
	size_t i;

	for (i = 0; i < reg->n_boards; i++)
		kf_buf_addf(&known, "%s%s", i ? ", " : "", reg->boards[i].key);
	kf_error_set(err, KF_EINPUT, "no registered board is called '%s'", name);
	if (known.len)
		kf_error_cause(err, "registered boards: %s", known.data);
	else
		kf_error_cause(err, "no boards are registered yet");
	kf_error_step(err, KF_CMD("kflash list"));
	kf_error_step(err, KF_CMD("kflash add") "   (to register a connected board)");
	kf_buf_release(&known);
	return KF_EINPUT;
}

int kf_select_boards(struct kf_registry *reg, char *const *names, size_t n, bool all,
		     struct kf_error *err, struct kf_board ***ret_boards,
		     size_t *ret_n)
{
	struct kf_board **v = kf_xcalloc(reg->n_boards + n + 1, sizeof(*v));
	size_t i, k, count = 0;

	*ret_boards = NULL;
	*ret_n = 0;
	if (all) {
		for (i = 0; i < reg->n_boards; i++)
			v[count++] = &reg->boards[i];
		if (count == 0) {
			free(v);
			kf_error_set(err, KF_EINPUT, "no boards are registered");
			kf_error_step(err, KF_CMD("kflash add"));
			return KF_EINPUT;
		}
	}
	for (i = 0; !all && i < n; i++) {
		struct kf_board *b = kf_registry_find(reg, names[i]);

		if (!b) {
			free(v);
			return kf_select_unknown(reg, names[i], err);
		}
		for (k = 0; k < count && v[k] != b; k++)
			;
		if (k == count)
			v[count++] = b;
	}
	*ret_boards = v;
	*ret_n = count;
	return 0;
}

int kf_select_locate(struct kf_run *run, bool all, struct kf_error *err)
{
	struct kf_scans sc = KF_SCANS_INIT;
	size_t i;
	int r = 0;

	kf_out_phase(run->ctx->out, KF_PHASE_DISCOVERY, "looking for %zu board%s",
		     run->n, run->n == 1 ? "" : "s");
	for (i = 0; i < run->n; i++) {
		struct kf_job *j = &run->jobs[i];
		void *scan;

		if (j->state != KF_JOB_ACTIVE)
			continue;
		if (!j->b->flashable) {
			if (all) {
				kf_job_skip(j, "excluded");
				continue;
			}
			kf_error_set(&j->err, KF_EINPUT, "%s is excluded from flashing",
				     j->b->key);
			kf_error_step(&j->err, KF_CMD("kflash include %s"), j->b->key);
			kf_job_fail(run, j, KF_EINPUT);
			continue;
		}
		scan = kf_scans_get(run->ctx, run->reg, &sc, j->tr, err, &r);
		if (!scan)
			break;
		r = j->tr->locate(run->ctx, run->reg, j->b, scan, false, &j->at, &j->err);
		if (r == KF_EFAILED && all) {
			kf_job_skip(j, "not connected");
			r = 0;
			continue;
		}
		if (r < 0) {
			kf_job_fail(run, j, r);
			r = 0;
			continue;
		}
		kf_out_ok(run->ctx->out, KF_PHASE_DISCOVERY, "%s: %s (%s mode)", j->b->key,
			  j->at.label, kf_mode_name(j->at.mode));
		kf_recorder_board(run->ctx->rec, j->b, j->at.node, kf_mode_name(j->at.mode),
				  NULL);
	}
	kf_scans_release(&sc);
	return r;
}

void kf_select_peek(struct kf_run *run)
{
	struct kf_scans sc = KF_SCANS_INIT;
	bool warned = false;
	size_t i;

	for (i = 0; i < run->n; i++) {
		struct kf_job *j = &run->jobs[i];
		struct kf_error e = KF_ERROR_INIT;
		void *scan;
		int r;

		if (j->state != KF_JOB_ACTIVE)
			continue;
		scan = kf_scans_get(run->ctx, run->reg, &sc, j->tr, &e, &r);
		if (scan)
			(void)j->tr->locate(run->ctx, run->reg, j->b, scan, false, &j->at, &e);
		else if (!warned)
			kf_out_warn(run->ctx->out, "cannot list connected boards (%s); "
				    "checking MCUs against the registry only",
				    e.what ? e.what : "no answer");
		warned |= !scan;
		kf_error_release(&e);
		free(e.note);
	}
	kf_scans_release(&sc);
}

int kf_select_relocate(struct kf_run *run, struct kf_job *j, bool after_reset)
{
	void *scan = NULL;
	int r;

	kf_error_release(&j->err);
	if (j->tr->stable && j->at.node && !after_reset)
		return 0;
	r = j->tr->scan(run->ctx, run->reg, &scan, &j->err);
	if (r < 0)
		return r;
	r = j->tr->locate(run->ctx, run->reg, j->b, scan, after_reset, &j->at, &j->err);
	j->tr->scan_free(scan);
	return r;
}
