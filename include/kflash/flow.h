/* flow.h - kflash flash: from cached configs to boards running new
 * firmware, with Klipper stopped only while it must be and always started
 * again.
 *
 * The flow, as a printer owner would describe it, and the module that
 * does each part:
 *   [Discovery] find each board through its transport      select.h
 *   [Config]    menuconfig (unless -s), the cached config  prepare.h
 *   [Build]     every board first, while Klipper still runs prepare.h
 *   pre-flight  boards still there, sudo will not prompt,  flash_board.h,
 *               nothing prints, the locks                   window.h, lock.h
 *   [Service]   stop Klipper (if it ran), guardian armed   window.h
 *   [Flash]     each board: Katapult, make flash if that    flash_board.h
 *               fails
 *   [Verify]    each board back running Klipper             flash_board.h
 *   [Service]   start Klipper again - on every path        window.h
 *   kept        what came back, as the last good firmware   flash_board.h
 *   the result  exit code, summary and JSON from one table  result.h
 *
 * kflash rollback is the same flow with the kept firmware (lastgood.h) in
 * place of [Config] and [Build], no make flash fallback (make would build
 * the checkout), and nothing kept anew.
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
	bool rollback;		/* kflash rollback: each board's kept firmware
				 * (lastgood.h), through Katapult, nothing built */
	/* per board, NULL or why it needs nothing (--outdated: it runs the
	 * host's version): skipped, and no failure when all are */
	const char *const *skip;
};

/* Flashes boards (pointers into reg). Returns 0 when every board was
 * flashed, else the class of the worst failure with err filled. Sets the
 * --json document. */
int kf_flow_flash(struct kf_ctx *ctx, struct kf_registry *reg,
		  struct kf_board **boards, size_t n, const struct kf_flash_opts *o,
		  struct kf_error *err);

#endif
