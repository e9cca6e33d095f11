/* select.h - which boards a command is about, and where each one is.
 *
 * Selecting reads the registry only (NAME..., or --all). Locating asks
 * each board's transport which connected device it is: exactly one must
 * be, and what a board shows when kflash sends it to its bootloader (the
 * Katapult serial of a board whose firmware sets its own) is learned and
 * kept in the registry by the transport.
 */
#ifndef KFLASH_SELECT_H
#define KFLASH_SELECT_H

#include <stdbool.h>
#include <stddef.h>

#include "kflash/run.h"

/* The boards names[0..n) name, each once, in order; with all, every
 * registered board. KF_EINPUT in err for a name no board has, or when
 * --all finds none. *ret_boards (pointers into reg) is malloc'd. */
int kf_select_boards(struct kf_registry *reg, char *const *names, size_t n, bool all,
		     struct kf_error *err, struct kf_board ***ret_boards,
		     size_t *ret_n);

/* "no registered board is called NAME", listing the registered ones. */
int kf_select_unknown(const struct kf_registry *reg, const char *name,
		      struct kf_error *err);

/* [Discovery]: locates every active job's board. An excluded board is
 * skipped under --all (all) and fails when named; with all, a board that
 * is not connected is skipped. Each board's own failure is its job's.
 * Returns 0, or the negative errno (err filled) when no transport could
 * be read at all. */
int kf_select_locate(struct kf_run *run, bool all, struct kf_error *err);

/* Where each active job's board is, when it is connected, for checks
 * that do not need it there (a build checks the MCU the board reports):
 * nothing fails; a transport that cannot be read is a warning. */
void kf_select_peek(struct kf_run *run);

/* Finds j's board again: after a build (it may be unplugged), or after
 * kflash sent it to its bootloader (after_reset). 0; KF_EFAILED or
 * KF_EREFUSED in j->err when it is not there as before; the negative
 * errno in j->err when its transport could not look. */
int kf_select_relocate(struct kf_run *run, struct kf_job *j, bool after_reset);

#endif
