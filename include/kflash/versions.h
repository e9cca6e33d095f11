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

/* Keeps in boards[0..*n) only those whose version differs from the host's
 * (or is unknown); err says why when neither version can be learned. */
int kf_select_outdated(struct kf_ctx *ctx, struct kf_registry *reg,
		       struct kf_board **boards, size_t *n, struct kf_error *err);

#endif
