/* flash_board.h - one board from "built" to "running the new firmware":
 * its last checks before Klipper is stopped, the flash (Katapult, after
 * asking it where the application starts; make flash as the board's
 * method or as the fallback), and its return.
 *
 * The boards are written one after another and reboot side by side, so
 * the printer's downtime is the flash tools' time plus the last board's
 * return; kf_flashing_verify waits for each afterwards.
 */
#ifndef KFLASH_FLASH_BOARD_H
#define KFLASH_FLASH_BOARD_H

#include <stdbool.h>

#include "kflash/run.h"

/* Flashing the run's boards: one watch per transport, open from before
 * the first flash until the last return. */
struct kf_flashing {
	struct kf_run *run;
	bool fallback;		/* make flash when Katapult fails */
	const struct kf_transport *tr[4];
	void *watch[4];
	size_t n;
};

/* One kflash per board, whoever runs it: another user's kflash has its
 * own per-user lock and registry, but the same board. A board held by
 * another kflash fails; the others go on. */
void kf_flash_lock_boards(struct kf_run *run);

/* Before anything is stopped: j's board is still there (a long build
 * gives time to unplug it), and make flash's own tool will not wait at a
 * sudo prompt. j fails otherwise; KF_EINTERRUPTED ends the pre-flight. */
int kf_flash_preflight(struct kf_run *run, struct kf_job *j);

/* Opens the watches. 0, or the error in err. A struct kf_flashing that
 * was never begun ({ 0 }) verifies and ends nothing. */
int kf_flashing_begin(struct kf_flashing *fl, struct kf_run *run, bool fallback,
		      struct kf_error *err);
void kf_flashing_end(struct kf_flashing *fl);

/* [Flash] j: written (KF_JOB_WRITTEN) or failed. */
void kf_flashing_flash(struct kf_flashing *fl, struct kf_job *j);
/* [Flash] every active job, one at a time, until a signal: a board that
 * carries the others' bus (KF_FLASH_CARRIES_BUS) after all that do not;
 * nothing when fl was never begun. */
void kf_flashing_flash_all(struct kf_flashing *fl);

/* [Verify] every written job: back running Klipper (KF_JOB_DONE), or
 * failed saying how it came back, or why kflash could not tell. */
void kf_flashing_verify(struct kf_flashing *fl);

/* After the restart: each board that came back running its new firmware
 * (and, where Moonraker was asked, reported its version) through Katapult,
 * the one way kflash rollback flashes, keeps that firmware as its last
 * good one (lastgood.h). A keep that fails is a warning, never the run's
 * failure: the firmware kept before stays. Returns how many it tried. */
size_t kf_flash_keep_good(struct kf_run *run);

/* The commands kflash would run for j (--dry-run), each printed as a
 * result line. */
void kf_flash_board_dry_run(struct kf_run *run, struct kf_job *j, bool fallback);

#endif
