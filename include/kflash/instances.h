/* instances.h - the printers on this host and which one drives a board.
 *
 * KIAUH installs several printers side by side (klipper-1, klipper-2, each
 * with its Moonraker on its own port). kflash stops only the Klipper unit
 * whose config names the boards being flashed; the other printer keeps
 * printing. With the service setting other than "auto" that one unit is
 * used for every board (an override).
 */
#ifndef KFLASH_INSTANCES_H
#define KFLASH_INSTANCES_H

#include <stdbool.h>
#include <stddef.h>

#include "kflash/ops.h"
#include "kflash/registry.h"

struct kf_instance {
	char *unit;		/* klipper-1; NULL when its Moonraker did not say */
	char *url;		/* its Moonraker, or NULL */
	bool serials_known;	/* Klipper's [mcu] serials came back */
	char **serials;		/* serial paths and canbus_uuids of its config */
	size_t n_serials;
};

struct kf_instances {
	struct kf_instance *v;
	size_t n;
	bool override;		/* the service setting names the unit */
};

#define KF_INSTANCES_INIT { NULL, 0, false }

/* Finds the instances: each Moonraker URL of the moonraker_url setting and
 * of KIAUH's data dirs (~/printer_data, ~/printer_N_data: [server] port in
 * config/moonraker.conf), asking each for its Klipper unit and the serials
 * its config names. Never fails: what did not answer is unknown. */
void kf_instances_find(const struct kf_ops *o, const struct kf_settings *s,
		       struct kf_instances *ret);
void kf_instances_release(struct kf_instances *is);

/* The instance whose Klipper config names the device: its by-id link, its
 * tty node, or a by-id name matching the board's pattern. NULL if none. */
struct kf_instance *kf_instances_owner(struct kf_instances *is, const char *pattern,
				       const char *by_id, const char *devnode);

/* The URLs the instances were looked for at (for messages), space-separated. */
char *kf_instances_urls(const struct kf_instances *is);

#endif
