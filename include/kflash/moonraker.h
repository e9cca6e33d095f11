/* moonraker.h - what kflash asks Moonraker: is the printer printing, and
 * which firmware does each MCU run. Over HTTP through the ops table. */
#ifndef KFLASH_MOONRAKER_H
#define KFLASH_MOONRAKER_H

#include <stdbool.h>
#include <stddef.h>

#include "kflash/ops.h"

struct kf_print_status {
	bool reachable;		/* Moonraker answered at all */
	bool klippy_ready;	/* Klipper answered printer queries */
	char *state;		/* standby printing paused complete cancelled error */
	char *filename;
	double progress;	/* 0..1 */
};

void kf_print_status_release(struct kf_print_status *p);

/* Never fails: an unreachable Moonraker is reachable=false. */
void kf_moonraker_print_status(const struct kf_ops *o, const char *url,
			       struct kf_print_status *ret);

struct kf_mcu_version {
	char *object;		/* "mcu", "mcu ebb" */
	char *mcu;		/* mcu_constants.MCU, e.g. stm32g0b1xx */
	char *version;		/* mcu_version */
};

/* Every MCU Klipper knows. 0, or -errno when Moonraker or Klipper do not
 * answer. */
int kf_moonraker_mcus(const struct kf_ops *o, const char *url,
		      struct kf_mcu_version **ret, size_t *ret_n);
void kf_mcu_versions_free(struct kf_mcu_version *v, size_t n);

/* "%20" for spaces and the like, for object names in query strings. */
char *kf_url_escape(const char *s);

#endif
