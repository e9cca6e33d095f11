/* prepare.h - getting each board's firmware ready, for kflash build and
 * kflash flash alike: the Klipper checkout, the per-user lock, each
 * board's config (menuconfig on a terminal when asked) and its build,
 * every board before any is flashed, while Klipper still runs.
 *
 * One board's failure is its job's; the others go on. A signal ends the
 * step (KF_EINTERRUPTED) with the run's signal recorded.
 */
#ifndef KFLASH_PREPARE_H
#define KFLASH_PREPARE_H

#include <stdbool.h>

#include "kflash/run.h"

struct kf_prepare_opts {
	bool menuconfig;	/* menuconfig each board first (on a terminal) */
	bool dry_run;		/* complete a copy of each config; build nothing */
	bool rebuild;		/* make clean, ignore the stamp */
	bool flashing;		/* for flashing: host-MCU configs and, for
				 * Katapult, configs without its offset refused */
	bool kept;		/* kflash rollback: each board's kept firmware
				 * (lastgood.h) instead of a build */
};

/* The Klipper checkout (run->kdir). 0, or the error in err. */
int kf_prepare_checkout(struct kf_run *run, struct kf_error *err);

/* One kflash per user from here: two would build into the same
 * directories and fight over the boards. */
int kf_prepare_lock(struct kf_run *run, struct kf_error *err);

/* [Config] each active job: menuconfig (o->menuconfig, on a terminal),
 * then its cached config must be there; a dry run completes a copy with
 * Klipper's olddefconfig and checks it as the build would.
 * With o->kept, the board's kept firmware instead: whole, for its
 * registered MCU and the one the board reports, its config checked as a
 * build's; when the host's Klipper is another version than the one it was
 * built for, a warning, then (not for a dry run) a question on a terminal,
 * else a refusal unless -y. */
int kf_prepare_configs(struct kf_run *run, const struct kf_prepare_opts *o);

/* [Build] each active job, checked against the MCU its connected board
 * reports (j->at.mcu, when it was found). A built job keeps the config as
 * built (j->cfg) for the flash; with !o->flashing it is done. With
 * o->kept nothing is built: the kept firmware is the job's build. */
int kf_prepare_builds(struct kf_run *run, const struct kf_prepare_opts *o);

#endif
