/* window.h - the service window: the time Klipper is stopped.
 *
 * Which Klipper units drive the boards to flash (instances.h: several
 * printers on one host; only the owner's unit is stopped), whether they may
 * be stopped (the unit exists, sudo will not prompt, nothing prints), the
 * stop with the guardian armed first, and the start again on every path.
 * While the units are started again a signal is recorded, not obeyed.
 * The service calls themselves are service.h's; every signal they see
 * goes into the run's one record (run->signal).
 */
#ifndef KFLASH_WINDOW_H
#define KFLASH_WINDOW_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "kflash/instances.h"
#include "kflash/run.h"
#include "kflash/service.h"

/* A Klipper unit whose boards are flashed: stopped (when it runs) for the
 * window and started again on every path. */
struct kf_unit {
	char *name;
	char *url;		/* its Moonraker, or NULL */
	bool active;		/* it ran at the last print check */
	bool asked;		/* systemd was asked whether it runs */
	bool was_active;	/* it ran before kflash stopped it (or, when the
				 * run ended before the stop, at the last check) */
	bool stopped;		/* kflash stopped it and owes a start */
	bool restarted;		/* kflash stopped it and started it again */
	char *restart_error;	/* starting it again failed: what to do */
};

struct kf_window {
	struct kf_run *run;
	struct kf_instances inst;	/* the printers on this host */
	struct kf_unit *units;	/* the ones driving the boards to flash */
	size_t n_units;
	bool guarded;		/* the guardian is armed */
	struct kf_guard guard;	/* armed while a unit is stopped */
	bool moonraker;		/* Moonraker gave a print state at the last check */
	bool unknown_ok;	/* the user said go on without a print state */
};

void kf_window_init(struct kf_window *w, struct kf_run *run);
void kf_window_release(struct kf_window *w);

/* Decides, per active job, the unit that must be stopped for it (j->unit):
 * the one whose config names it, the only printer there is, or none when
 * no Klipper that runs can hold it. A board kflash cannot place fails. */
void kf_window_plan(struct kf_window *w);

/* Every unit to stop exists and no printer it drives is printing; a
 * print state Moonraker does not give is asked about on a terminal, else
 * refused unless --force. 0, KF_EREFUSED, KF_EINTERRUPTED or KF_EFAILED
 * (with the errno) in err. */
int kf_window_print_guard(struct kf_window *w, struct kf_error *err);

/* sudo will stop and start every unit without a password. 0, KF_EREFUSED
 * with the sudoers line, or KF_EFAILED with the errno when it cannot be
 * asked (an I/O error is no password prompt). */
int kf_window_can_manage(struct kf_window *w, struct kf_error *err);

/* Arms the guardian, then stops each unit that runs (kflash owes a start
 * from then on, even when the stop fails). */
int kf_window_open(struct kf_window *w, struct kf_error *err);

/* Starts every unit kflash stopped (one retry), ends the guardian. Runs on
 * every path; a signal meanwhile is recorded in the run, not obeyed. */
void kf_window_close(struct kf_window *w);

/* After the start: each flashed board should report, through Moonraker,
 * the version inside the firmware just built. A mismatch is a warning. */
void kf_window_check_versions(struct kf_window *w);

/* Adds what failed in closing the window to the run's outcome r: the
 * error when there was none, else a note beside it. */
int kf_window_outcome(const struct kf_window *w, int r, struct kf_error *err);

/* "services": per unit, whether it ran and was started again. */
json_t *kf_window_json(const struct kf_window *w);

/* The sudoers line that lets this user stop and start unit without a
 * password (for errors and doctor), naming kf_sudoers_user. malloc'd. */
char *kf_sudoers_line(const struct kf_ops *ops, const char *unit);

#endif
