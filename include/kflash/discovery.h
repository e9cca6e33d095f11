/* discovery.h - which serial devices are connected, and what they are.
 *
 * Reads udev through the ops table (never by globbing /dev alone) and
 * classifies each USB serial device from its by-id name and its USB
 * identity, cross-checked: a board running Klipper (1d50:614e,
 * usb-Klipper_<mcu>_<serial>), one in Katapult (1d50:6177, usb-katapult_ or
 * the older usb-CanBoot_), or something kflash must not flash (probes,
 * USB-serial chips), with the reason.
 */
#ifndef KFLASH_DISCOVERY_H
#define KFLASH_DISCOVERY_H

#include <stdbool.h>

#include "kflash/error.h"
#include "kflash/ops.h"

enum kf_mode { KF_MODE_OTHER, KF_MODE_KLIPPER, KF_MODE_KATAPULT };

struct kf_device {
	struct kf_ttydev tty;	/* owned */
	char *name;		/* by-id basename, or the devnode's */
	enum kf_mode mode;
	char *mcu;		/* parsed from the name; NULL for OTHER */
	char *chip_serial;
	const char *blocked;	/* why kflash will not flash it, or NULL */
};

struct kf_devlist {
	struct kf_device *devs;
	size_t n;
};

#define KF_DEVLIST_INIT { NULL, 0 }

int kf_discover(const struct kf_ops *o, struct kf_devlist *ret, struct kf_error *err);
void kf_devlist_release(struct kf_devlist *l);
/* Classifies one udev record (takes ownership of *tty's strings). */
void kf_device_from_tty(struct kf_device *d, struct kf_ttydev *tty);
void kf_device_release(struct kf_device *d);

const char *kf_mode_name(enum kf_mode m);	/* "klipper", "katapult", NULL */

/* Parses a by-id basename such as usb-Klipper_stm32f446xx_3A00...-if00.
 * Returns the mode (OTHER when it is no Klipper/Katapult name or is
 * malformed) and, for the others, malloc'd mcu and serial. */
enum kf_mode kf_byid_parse(const char *name, char **ret_mcu, char **ret_serial);

/* The registry pattern for a board: matches it in Klipper and Katapult
 * modes and no other board. malloc'd. */
char *kf_pattern_for(const char *mcu, const char *serial);
/* Whether pattern finds device d (in whichever mode it is now). */
bool kf_pattern_matches(const char *pattern, const struct kf_device *d);
/* Whether some device name could match both patterns. */
bool kf_patterns_overlap(const char *a, const char *b);

#endif
