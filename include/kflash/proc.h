/* proc.h - running a child to completion, above the ops table.
 *
 * kf_proc_run starts a child in its own process group, waits for it against
 * an absolute deadline, and on a timeout or a signal to kflash ends the whole
 * group: SIGTERM, a grace period, SIGKILL, reap. `make` leaves no compiler
 * behind and flashtool gets SIGTERM (never SIGINT, which would make it tell
 * the board to boot a half-written image).
 */
#ifndef KFLASH_PROC_H
#define KFLASH_PROC_H

#include <stdint.h>

#include "kflash/ops.h"
#include "kflash/util.h"

#define KF_PROC_GRACE_MS 2000

struct kf_run_opts {
	int64_t timeout_ms;	/* <= 0: none */
	kf_line_fn *on_line;	/* captured output, line by line, or NULL */
	void *line_data;
	struct kf_buf *capture;	/* when set, captured output is appended */
	/* Signals to kflash that do not interrupt the child (e.g. a second
	 * Ctrl+C while Klipper is being started again): they are recorded in
	 * *deferred_signal instead. */
	bool defer_signals;
	int *deferred_signal;
	/* Every tick_ms while the child runs (> 0), on_tick(line_data, ms
	 * since it started): a progress line's clock, without a clock read
	 * per output line. */
	int64_t tick_ms;
	void (*on_tick)(void *data, int64_t elapsed_ms);
};

/* Runs req to completion. Returns 0 with *ret_exit describing how it ended
 * (EXITED, SIGNALED, EXEC_FAILED when it could not be started, TIMED_OUT,
 * INTERRUPTED), or -errno when waiting for it failed. */
int kf_proc_run(const struct kf_ops *o, const struct kf_spawn_req *req,
		const struct kf_run_opts *opts, struct kf_exit *ret_exit);

/* Ends a child's whole process group: SIGTERM, grace, SIGKILL, reap. A
 * signal kflash receives meanwhile is stored in *ret_sig (may be NULL). */
void kf_proc_terminate(const struct kf_ops *o, struct kf_proc *p,
		       int64_t grace_ms, int *ret_sig);

/* After a wait on p failed (not ECHILD: it is still ours): SIGKILL its
 * group and wait for it again, so a failing wait never leaves a child
 * behind. A signal kflash receives meanwhile is stored in *ret_sig (may
 * be NULL) and taken. Gives up after a few failing waits. */
void kf_proc_reap(const struct kf_ops *o, struct kf_proc *p, int *ret_sig);

/* "make -C /x olddefconfig" for messages; shell-quoted where needed. */
char *kf_argv_join(const char *const *argv);
/* path as one shell word a user can paste: quoted where it needs to be,
 * a leading ~/ left outside the quotes. malloc'd. */
char *kf_shell_path(const char *path);
/* Frees a NULL-terminated argv whose strings are malloc'd. */
void kf_argv_free(char **argv);

/* True when the child exited with status 0. */
static inline bool kf_exit_ok(const struct kf_exit *e)
{
	return e->kind == KF_EXIT_EXITED && e->code == 0;
}

/* "exited with status 2", "killed by signal 9", "timed out" ... */
void kf_exit_describe(const struct kf_exit *e, char *buf, size_t len);

#endif
