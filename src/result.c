/* result.c - a run's table of results, and everything made from it. */
#include <signal.h>
#include <string.h>

#include "kflash/result.h"
#include "kflash/util.h"

const char *kf_result_name(enum kf_result r)
{
	switch (r) {
	case KF_RESULT_FLASHED: return "flashed";
	case KF_RESULT_BUILT: return "built";
	case KF_RESULT_UP_TO_DATE: return "up-to-date";
	case KF_RESULT_SKIPPED: return "skipped";
	case KF_RESULT_FAILED: break;
	}
	return "failed";
}

/* The one mapping from a job's state to its result. */
static enum kf_result result_of(const struct kf_job *j, bool build, bool *ret_unfinished)
{
	*ret_unfinished = false;
	switch (j->state) {
	case KF_JOB_DONE:
		if (!build)
			return KF_RESULT_FLASHED;
		return j->build.up_to_date ? KF_RESULT_UP_TO_DATE : KF_RESULT_BUILT;
	case KF_JOB_SKIPPED:
		return KF_RESULT_SKIPPED;
	case KF_JOB_FAILED:
		return KF_RESULT_FAILED;
	case KF_JOB_ACTIVE:
	case KF_JOB_WRITTEN:
		break;
	}
	/* asked for and not done: the run stopped first */
	*ret_unfinished = true;
	return KF_RESULT_FAILED;
}

void kf_results_of(struct kf_results *t, const struct kf_run *run, bool build)
{
	size_t i;

	memset(t, 0, sizeof(*t));
	t->build = build;
	t->n = run->n;
	t->rows = kf_xcalloc(run->n + 1, sizeof(*t->rows));
	for (i = 0; i < run->n; i++) {
		struct kf_result_row *row = &t->rows[i];
		const struct kf_job *j = &run->jobs[i];

		row->job = j;
		row->result = result_of(j, build, &row->unfinished);
		if (row->result == KF_RESULT_SKIPPED && j->skip_reason)
			row->reason = kf_xstrdup(j->skip_reason);
		else if (row->result == KF_RESULT_FAILED && j->err.what)
			row->reason = kf_xstrdup(j->err.what);
	}
}

void kf_results_release(struct kf_results *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->rows[i].reason);
	free(t->rows);
	memset(t, 0, sizeof(*t));
}

/* Moves job j's error into err: it is the run's now. */
static int take_error(struct kf_job *j, struct kf_error *err)
{
	char *note = err->note;

	kf_error_release(err);
	free(note);
	*err = j->err;
	memset(&j->err, 0, sizeof(j->err));
	return err->code;
}

int kf_results_outcome(struct kf_results *t, struct kf_run *run, int r, bool dry_run,
		       struct kf_error *err)
{
	size_t i, failed = 0, refused = 0, total = 0, needless = 0;
	struct kf_job *only = NULL, *own = NULL;
	const char *what = t->build ? "builds" : "boards";
	int errnum = 0;		/* the failed boards' errno, when they agree */
	bool mixed = false;

	for (i = 0; i < t->n; i++) {
		struct kf_result_row *row = &t->rows[i];
		struct kf_job *j = &run->jobs[i];

		if (row->result == KF_RESULT_SKIPPED) {
			needless += j->needless;
			continue;
		}
		total++;
		if (row->result != KF_RESULT_FAILED)
			continue;
		failed++;
		refused += j->err.code == KF_EREFUSED;
		if (j->err.errnum && errnum && j->err.errnum != errnum)
			mixed = true;
		else if (j->err.errnum)
			errnum = j->err.errnum;
		only = j;
		if (!row->unfinished)
			own = j;
	}
	if (run->signal) {
		if (own && own->err.code == KF_EINTERRUPTED)
			take_error(own, err);
		else if (!err->what)
			kf_error_set(err, KF_EINTERRUPTED, "stopped by signal %d (%s)",
				     run->signal, strsignal(run->signal));
		err->code = KF_EINTERRUPTED;
		err->signal = run->signal;
		r = KF_EINTERRUPTED;
	} else if (r < 0) {
		/* a whole-run error (refusal, stop failure) is already set */
	} else if (dry_run && !failed) {
		/* nothing was meant to happen; a refusal is reported as the
		 * real run would report it */
	} else if (failed == 1 && total == 1 && only->err.code) {
		r = take_error(only, err);
	} else if (failed) {
		r = refused == failed ? KF_EREFUSED : KF_EFAILED;
		kf_error_set(err, r, "%zu of %zu %s failed", failed, total, what);
		/* the summary names the I/O error behind the failures too */
		if (errnum && !mixed)
			kf_error_errno(err, errnum);
		/* the summary says what failed; the steps what to do: each
		 * board's own first step, or running it alone again */
		for (i = 0; i < t->n; i++) {
			const struct kf_job *j = t->rows[i].job;

			if (t->rows[i].result != KF_RESULT_FAILED || t->rows[i].unfinished)
				continue;
			if (j->err.n_steps)
				kf_error_step(err, "%s: %s", j->b->key, j->err.marked[0]);
			else
				kf_error_step(err, KF_CMD("kflash -v %s %s%s"), t->build ? "build" :
					      "flash", j->b->key, t->build ? "" : " -s");
		}
	} else if (total == 0 && needless < t->n) {
		r = kf_error_set(err, KF_EFAILED, "no board could be %s",
				 t->build ? "built" : "flashed");
		kf_error_step(err, KF_CMD("kflash list"));
	}
	/* what the boards the run stopped before show: why */
	for (i = 0; i < t->n; i++) {
		struct kf_result_row *row = &t->rows[i];

		if (!row->unfinished || row->reason)
			continue;
		row->reason = kf_asprintf("%s was not %s: %s", row->job->b->key,
					  t->build ? "built" : "flashed",
					  err->what ? err->what : "kflash stopped first");
	}
	return r;
}

void kf_results_print(const struct kf_results *t, struct kf_out *out)
{
	size_t i;

	if (t->build) {
		for (i = 0; i < t->n; i++) {
			const struct kf_result_row *row = &t->rows[i];
			const struct kf_job *j = row->job;

			/* the one place a build's result is said */
			if (row->result == KF_RESULT_BUILT)
				kf_out_result(out, "%s: built in %.1fs: %s (%lld bytes)",
					      j->b->key, (double)j->build.ms / 1000.0,
					      j->build.firmware, (long long)j->build.size);
			else if (row->result == KF_RESULT_UP_TO_DATE)
				kf_out_result(out, "%s: up to date, nothing to build: %s "
					      "(%lld bytes)", j->b->key, j->build.firmware,
					      (long long)j->build.size);
			else if (row->result == KF_RESULT_SKIPPED)
				kf_out_result(out, "%s: skipped (%s)", j->b->key, row->reason);
		}
		return;
	}
	if (t->n == 1 && t->rows[0].result == KF_RESULT_FLASHED) {
		const struct kf_job *j = t->rows[0].job;

		kf_out_result(out, "Flashed %s via %s in %.1fs", j->b->key,
			      j->method_used, (double)j->ms / 1000.0);
		return;
	}
	if (t->n == 1)
		return;	/* its error says it all */
	kf_out_result(out, "\n%-18s %-11s %-8s %s", "board", "method", "result",
		      "seconds");
	for (i = 0; i < t->n; i++) {
		const struct kf_result_row *row = &t->rows[i];
		const struct kf_job *j = row->job;
		const char *res = row->result == KF_RESULT_FAILED ? "FAILED"
				: kf_result_name(row->result);

		kf_out_result(out, "%-18s %-11s %-8s %5.1f%s%s", j->b->key,
			      j->method_used ? j->method_used : "-", res,
			      (double)j->ms / 1000.0, row->reason ? "  " : "",
			      row->reason ? row->reason : "");
	}
}

json_t *kf_results_json(const struct kf_results *t)
{
	json_t *boards = json_array();
	size_t i;

	for (i = 0; i < t->n; i++) {
		const struct kf_result_row *row = &t->rows[i];
		const struct kf_job *j = row->job;
		const char *name = kf_result_name(row->result);

		if (t->build)
			json_array_append_new(boards, json_pack(
				"{s:s, s:s, s:s?, s:I, s:f, s:s?}", "name", j->b->key,
				"result", name, "firmware", j->build.firmware,
				"size", (json_int_t)j->build.size,
				"seconds", (double)j->build.ms / 1000.0,
				"error", row->reason));
		else
			json_array_append_new(boards, json_pack(
				"{s:s, s:s, s:s?, s:f, s:s?}", "name", j->b->key,
				"result", name, "method", j->method_used ? j->method_used
				: kf_method_name(j->method),
				"seconds", (double)j->ms / 1000.0, "error", row->reason));
	}
	return boards;
}
