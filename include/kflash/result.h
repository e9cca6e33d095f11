/* result.h - how a run ended, board by board: the one table the exit
 * code, the human summary and the --json document are all made from.
 *
 * Each board's result is decided once, here, from its job: flashed (or
 * built, up to date), skipped on purpose (excluded or not connected under
 * --all, a dry run), or failed. A board the run stopped before (a refusal,
 * a failed stop, a signal) was asked for and not flashed: it is failed,
 * with the reason, in all three.
 */
#ifndef KFLASH_RESULT_H
#define KFLASH_RESULT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "kflash/run.h"

enum kf_result {
	KF_RESULT_FLASHED,
	KF_RESULT_BUILT,
	KF_RESULT_UP_TO_DATE,
	KF_RESULT_SKIPPED,
	KF_RESULT_FAILED,
};

/* "flashed", "built", "up-to-date", "skipped", "failed" (the JSON words) */
const char *kf_result_name(enum kf_result r);

struct kf_result_row {
	const struct kf_job *job;
	enum kf_result result;
	bool unfinished;	/* the run stopped before it was done */
	char *reason;		/* why it failed or was skipped, or NULL */
};

struct kf_results {
	bool build;		/* kflash build's table (firmware), not flash's (method) */
	struct kf_result_row *rows;
	size_t n;
};

/* The run's table. Call it once every step is over. */
void kf_results_of(struct kf_results *t, const struct kf_run *run, bool build);
void kf_results_release(struct kf_results *t);

/* The run's return value, with err the error the user sees: r when a
 * step of the whole run failed (err already says what); with a signal,
 * KF_EINTERRUPTED (the interrupted board's own error, else which signal);
 * one board's own error when it was the only one; else "N of M boards
 * failed", refused (exit 3) when every failure was a refusal. A dry run
 * that refused nothing returns 0. The table's unfinished rows then say
 * why they were not done. */
int kf_results_outcome(struct kf_results *t, struct kf_run *run, int r, bool dry_run,
		       struct kf_error *err);

/* The human summary on stdout: one line for one board, a table for
 * several (flash); a line per board (build). */
void kf_results_print(const struct kf_results *t, struct kf_out *out);

/* The "boards" array of the --json document. */
json_t *kf_results_json(const struct kf_results *t);

#endif
