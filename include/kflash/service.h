/* service.h - the Klipper service, above the ops table: asking systemd,
 * stopping and starting units through sudo, and the guardian that starts
 * them again if kflash dies.
 *
 * Everything here runs programs through kf_proc_run (sudo, systemctl, the
 * guardian itself), so the fakes in tests/ can play them.
 *
 * sudo: every command that changes a unit runs as "sudo -n systemctl VERB
 * UNIT" (never a password prompt). On a host without sudo, root runs
 * systemctl itself and everyone else gets -ENOENT.
 *
 * Signals: a query (is-active, can-manage) is cut short by a signal to
 * kflash and returns -EINTR; a stop or a start is not, since a Ctrl+C must
 * not leave a unit half-started: it finishes, and the signal is recorded.
 * Either way the signal is stored in *ret_signal when that is still 0 (the
 * caller's own "which signal arrived"), and it is no longer pending in the
 * ops table.
 */
#ifndef KFLASH_SERVICE_H
#define KFLASH_SERVICE_H

#include <stdbool.h>

#include "kflash/ops.h"

/* 1 when the unit is active (or activating, reloading), 0 when not,
 * -ENOENT when systemd has no such unit loaded (is-active alone would say
 * "inactive" for klipper on a host with klipper-1 and klipper-2), -EIO
 * when systemctl fails, -ETIMEDOUT, -EINTR. */
int kf_service_is_active(const struct kf_ops *o, const char *unit, int timeout_ms,
			 int *ret_signal);
/* 1 when sudo would run the exact stop and start commands without a
 * password ("sudo -n -l systemctl stop UNIT"), 0 when it would ask or
 * there is no sudo, -errno when asking failed. */
int kf_service_can_manage(const struct kf_ops *o, const char *unit, int timeout_ms,
			  int *ret_signal);
/* 0, or -EIO when systemctl (or sudo) failed, -ETIMEDOUT, -ENOENT. */
int kf_service_stop(const struct kf_ops *o, const char *unit, int timeout_ms,
		    int *ret_signal);
int kf_service_start(const struct kf_ops *o, const char *unit, int timeout_ms,
		     int *ret_signal);

/* ---- the guardian ------------------------------------------------------------
 *
 * A second kflash process (kflash --guardian) in its own session, spawned
 * before the units are stopped. kflash tells it, through a pipe on its
 * stdin, each child's process group when it is forked ("p PGID") and when
 * it is reaped ("r PGID"), and "d" when it is done. If the pipe ends
 * without "d" (kflash was killed with SIGKILL, or crashed), the guardian
 * ends the groups still running (SIGTERM, a grace, SIGKILL) and starts the
 * units. It never holds kflash's stdout or stderr, so `kflash | tee log`
 * ends with kflash.
 */

#define KF_GUARDIAN_ARG "--guardian"

struct kf_guard {
	const struct kf_ops *ops;
	struct kf_proc proc;	/* the guardian process */
	bool running;
};

/* Spawns the guardian for units (NULL-terminated) and returns once it is
 * ready; timeout_ms bounds each of its systemctl starts. From here every
 * child kflash forks is told to it. A second call while it runs does
 * nothing. */
int kf_guard_start(struct kf_guard *g, const struct kf_ops *o,
		   const char *const *units, int timeout_ms);
/* The observer kf_guard_start installs (a kf_child_fn). */
void kf_guard_tell(void *guard, pid_t pgid, bool running);
/* kflash is done with the units (started again, or never stopped): the
 * guardian is told so, exits without doing anything and is reaped. */
void kf_guard_end(struct kf_guard *g, int *ret_signal);

/* The guardian process itself: argv is what follows KF_GUARDIAN_ARG
 * (timeout_ms, then the units). Returns its exit status. */
int kf_guardian_main(const struct kf_ops *o, int argc, char **argv);

#endif
