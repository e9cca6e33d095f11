/* flow.h - kflash flash: from cached configs to boards running new
 * firmware, with Klipper stopped only while it must be and always started
 * again.
 *
 * The flow, as a printer owner would describe it:
 *   [Discovery] find each board through udev
 *   [Config]    menuconfig (unless -s), check the config's MCU
 *   [Build]     build every board first, while Klipper still runs
 *   pre-flight  boards still there, sudo will not prompt, not printing, lock
 *   [Service]   stop Klipper (if it was running), guardian armed
 *   [Flash]     each board in turn: Katapult, then make flash if that fails
 *   [Verify]    wait for each board to come back running Klipper
 *   [Service]   start Klipper again - on every path
 */
#ifndef KFLASH_FLOW_H
#define KFLASH_FLOW_H

#include <stdbool.h>

#include "kflash/kflash.h"
#include "kflash/registry.h"

struct kf_flash_opts {
	bool all;		/* --all: skip what is excluded or disconnected */
	bool outdated;		/* --outdated: only boards behind the host */
	bool skip_menuconfig;	/* -s */
	bool no_fallback;
	bool rebuild;
	bool dry_run;
	const char *method;	/* --method, or NULL */
};

/* Flashes boards (pointers into reg). Returns 0 when every board was
 * flashed, else the class of the worst failure with ctx->err filled. */
int kf_flow_flash(struct kf_ctx *ctx, struct kf_registry *reg,
		  struct kf_board **boards, size_t n, const struct kf_flash_opts *o);

/* The sudoers line that lets this user stop and start unit without a
 * password (for errors and doctor). malloc'd. */
char *kf_sudoers_line(const struct kf_ops *ops, const char *unit);

/* The locks live in /run/lock (else /tmp), never in a directory the login
 * decides: an SSH session, cron, a job Moonraker starts and `sudo -u` all
 * find the same ones. KFLASH_LOCK_DIR moves them, for the simulator only.
 * kflash-<uid>.lock: one kflash per user (its build dirs, its registry). */
char *kf_lock_path(const struct kf_ops *ops);
/* kflash-board-<id>.lock: one kflash per board, whichever user runs it; id
 * is the chip serial (the same in Klipper and Katapult mode). malloc'd. */
char *kf_board_lock_path(const struct kf_ops *ops, const char *chip_serial);
/* Takes the lock (a flock; one left by a dead kflash does not block):
 * 0, or KF_EREFUSED naming the pid that holds it. */
int kf_lock_take(struct kf_ctx *ctx, int *ret_fd);
/* The same for a lock at path, for messages "what" ("flashing octopus"). */
int kf_lock_take_at(struct kf_ctx *ctx, const char *path, const char *what,
		    struct kf_error *err, int *ret_fd);

#endif
