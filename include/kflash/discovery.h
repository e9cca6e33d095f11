/* discovery.h - which serial devices are connected, and what they are.
 *
 * Reads udev through the ops table (never by globbing /dev alone) and
 * classifies each USB serial device. The USB vendor:product id is the
 * authority: 1d50:614e is a board running Klipper (or Kalico, or another
 * Klipper build), 1d50:6177 one sitting in Katapult. The board's MCU and
 * serial come from its USB product and serial strings, and its by-id name
 * must end in them (usb-<manufacturer>_<mcu>_<serial>-if00); the
 * manufacturer part is whatever the firmware was built with (Klipper,
 * Kalico, a name the user chose), so it is not checked. Known products that
 * kflash must not flash (probes) and USB-serial chips are blocked with the
 * reason; "disagree" is left for a name and identity that really do.
 */
#ifndef KFLASH_DISCOVERY_H
#define KFLASH_DISCOVERY_H

#include <stdbool.h>

#include "kflash/error.h"
#include "kflash/ops.h"
#include "kflash/registry.h"

enum kf_mode { KF_MODE_OTHER, KF_MODE_KLIPPER, KF_MODE_KATAPULT };

struct kf_device {
	struct kf_ttydev tty;	/* owned */
	char *name;		/* by-id basename, or the devnode's */
	enum kf_mode mode;
	char *mcu;		/* USB product string (CONFIG_MCU); NULL for OTHER */
	char *serial;		/* USB serial string: the chip id, unless the
				 * firmware was built with its own; NULL for OTHER */
	char *port;		/* by-path basename: the USB port, the same in
				 * both modes; or NULL */
	const char *product;	/* a known product kflash never flashes, e.g.
				 * "Beacon probe", or NULL */
	const char *blocked;	/* why kflash will not flash it, or NULL */
	const char *caution;	/* a Klipper/Katapult device add will not
				 * register (e.g. probably a probe in its
				 * bootloader), or NULL */
};

struct kf_devlist {
	struct kf_device *devs;
	size_t n;
};

#define KF_DEVLIST_INIT { NULL, 0 }

/* Every serial device udev knows, classified. 0, or the negative errno
 * (err says what) when udev cannot be read: never an empty list. */
int kf_discover(const struct kf_ops *o, struct kf_devlist *ret, struct kf_error *err);
void kf_devlist_release(struct kf_devlist *l);
/* Classifies one udev record (takes ownership of *tty's strings). */
void kf_device_from_tty(struct kf_device *d, struct kf_ttydev *tty);
void kf_device_release(struct kf_device *d);

const char *kf_mode_name(enum kf_mode m);	/* "klipper", "katapult", NULL */

/* Parses a by-id basename such as usb-Klipper_stm32f446xx_3A00...-if00.
 * Returns the mode its manufacturer part names (OTHER when it is no
 * Klipper/Katapult name or is malformed) and, for the others, malloc'd mcu
 * and serial. */
enum kf_mode kf_byid_parse(const char *name, char **ret_mcu, char **ret_serial);

/* Whether a USB serial string looks like a chip id as Klipper and Katapult
 * report it (16, 24 or 32 hex digits), not a serial set in the firmware's
 * config (CONFIG_USB_SERIAL_NUMBER, e.g. Klipper's default "12345"). */
bool kf_serial_is_chip_id(const char *serial);

/* The USB port as people read it ("1.2" from ...-usb-0:1.2:1.0), malloc'd;
 * the whole port string when it has no such part. */
char *kf_port_label(const char *port);

/* The registry pattern for a board: matches it in Klipper and Katapult
 * modes (when both show the same serial) and no other board. malloc'd. */
char *kf_pattern_for(const char *mcu, const char *serial);
/* Whether pattern finds device d (in whichever mode it is now). */
bool kf_pattern_matches(const char *pattern, const struct kf_device *d);
/* Whether some device name could match both patterns. */
bool kf_patterns_overlap(const char *a, const char *b);

/* Whether a board's pattern carries a serial its firmware set (not a chip
 * id): in Katapult the board then shows its chip id, which the pattern
 * does not find; kflash finds it there by its USB port and, once learned,
 * its Katapult serial. */
bool kf_board_port_only(const struct kf_board *b);

enum kf_match {
	KF_MATCH_NO,
	/* Only the USB port says so: a Katapult device of the board's MCU at
	 * the port where the board was seen, while its Katapult serial is not
	 * known yet. Not proof: a board moved or swapped looks the same. */
	KF_MATCH_PORT,
	/* Its pattern finds the device, or the serial it showed in Katapult
	 * before (at the same port, or anywhere when it is a chip id). */
	KF_MATCH_YES,
};

/* Whether registered board b is device d. Every command decides it here. */
enum kf_match kf_board_match(const struct kf_board *b, const struct kf_device *d);

#endif
