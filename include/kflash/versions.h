/* versions.h - boards' firmware versions against the host's Klipper. */
#ifndef KFLASH_VERSIONS_H
#define KFLASH_VERSIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "kflash/kflash.h"
#include "kflash/moonraker.h"
#include "kflash/registry.h"

/* The version Moonraker reports for board b, matched by MCU type; NULL when
 * none. *ret_ambiguous when MCUs of that type report different versions. */
const char *kf_board_version(const struct kf_board *b, const struct kf_mcu_version *m,
			     size_t n, bool *ret_ambiguous);

/* For each of boards[0..n) whose version is the host's, ret_skip[i] says
 * so ("runs v0.13.0-1-g... like the host", malloc'd; NULL for a board to
 * flash: its version differs or is unknown). Returns how many are to be
 * flashed, or the error when neither version can be learned. */
int kf_select_outdated(struct kf_ctx *ctx, struct kf_registry *reg,
		       struct kf_board **boards, size_t n, char **ret_skip,
		       struct kf_error *err);

#endif
