/* transport.h - how kflash reaches a board's device.
 *
 * A board's device has a transport: today a USB serial tty under udev
 * (transport_usb.c); next a CAN node found by its UUID, or a USB-to-CAN
 * bridge. What differs between them is all here: how connected devices
 * are found, which of them is a registered board, how the flash tool is
 * told where the board is, how its return after flashing is seen, and
 * what kflash list and kflash add show of its devices and register. The
 * flow never looks inside a transport's scan or watch. A new transport is
 * a new file (src/transport_<name>.c with its struct kf_transport,
 * declared below) and a line in kf_transport_for and kf_transports
 * (transport.c), not edits across the flow.
 *
 * Methods report into the err they are given; a failure to look (udev
 * does not answer) is the negative errno, never "not connected".
 */
#ifndef KFLASH_TRANSPORT_H
#define KFLASH_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kflash/discovery.h"
#include "kflash/kflash.h"
#include "kflash/registry.h"

/* Where a board's device is, as its transport found it. */
struct kf_where {
	char *node;		/* what the tools open: /dev/ttyACM0; NULL until found */
	char *label;		/* what messages show: its /dev/serial/by-id link */
	char *mcu;		/* the MCU the device reports */
	enum kf_mode mode;	/* running Klipper, or waiting in Katapult */
	char *port;		/* where it is plugged in (by-path name), or NULL */
	char *id;		/* the chip's own id (names its board lock), or NULL */
	bool held;		/* CAN: not heard, held by a running Klipper */
};

void kf_where_release(struct kf_where *w);

/* How a board came back after it was flashed. */
enum kf_return {
	KF_RETURN_BACK,		/* running Klipper again */
	KF_RETURN_BOOTLOADER,	/* it showed up, but in Katapult */
	KF_RETURN_NONE,		/* not seen by the deadline */
};

/* How a registered board shows in a scan, for kflash list and the menu. */
struct kf_sighting {
	struct kf_where at;	/* the first device that is the board; node NULL: none */
	size_t matches;		/* how many are (more than one is never flashed) */
	char *maybe;		/* none is, but this one may be (its label), or NULL */
	char *maybe_note;	/* why it may be, for the user, or NULL */
};

void kf_sighting_release(struct kf_sighting *s);

/* A device a transport sees, as kflash list and kflash add show it. */
struct kf_seen {
	const struct kf_transport *tr;	/* whose device it is */
	const void *dev;	/* the transport's own, in the scan it came from */
	char *id;		/* what kflash add --device takes */
	char *label;		/* what messages show (its by-id link) */
	char *mcu;		/* the MCU it reports, or NULL */
	enum kf_mode mode;
	char *blocked;		/* why kflash will not register it, or NULL */
	json_t *json;		/* its row in list --json's unregistered or blocked */
};

void kf_seen_release(struct kf_seen *s);
void kf_seen_free(struct kf_seen *v, size_t n);

struct kf_transport {
	const char *name;	/* "usb" */
	/* A board found stays where it is until it is reset (a CAN node keeps
	 * its UUID and bus): looking for it again without a reset asks
	 * nothing, and neither does Katapult's status request (a USB board
	 * shows up under another name after it) */
	bool stable;
	/* kflash doctor's check that a scan works ("udev lists serial
	 * devices") and the command to look at when it does not */
	const char *scan_check;
	const char *scan_fix;

	/* What is connected now, for locate (the transport's own type).
	 * 0, or the negative errno with err saying what could not be read. */
	int (*scan)(struct kf_ctx *ctx, const struct kf_registry *reg, void **ret_scan,
		    struct kf_error *err);
	void (*scan_free)(void *scan);
	/* Which device in scan is board b; exactly one must be. *at holds
	 * where it was last seen (node NULL: never) and is replaced when it
	 * is found. after_reset: kflash has just sent it to its bootloader,
	 * so where it was tells which new device it is. reg holds the other
	 * boards (a device that is another board is not b) and keeps what is
	 * learned about b. 0; KF_EFAILED when it is not connected;
	 * KF_EREFUSED when kflash cannot be sure which device it is. */
	int (*locate)(struct kf_ctx *ctx, struct kf_registry *reg, struct kf_board *b,
		      const void *scan, bool after_reset, struct kf_where *at,
		      struct kf_error *err);

	/* The flash tool's arguments that name the device (flashtool.py's
	 * "-d /dev/ttyACM0"), NULL-terminated, malloc'd (kf_argv_free). */
	char **(*tool_args)(const struct kf_where *w);
	/* make flash's FLASH_DEVICE, or NULL when make flash cannot reach a
	 * device of this transport. malloc'd. */
	char *(*make_flash_device)(const struct kf_where *w);

	/* kflash list and the menu: how board b shows in scan, learning
	 * nothing. */
	void (*sight)(const struct kf_board *b, const void *scan,
		      struct kf_sighting *ret);
	/* The devices in scan that are no registered board, in scan order:
	 * those kflash add offers (blocked NULL), and those it will not
	 * register or flash, whether registered or not (blocked says why).
	 * malloc'd (kf_seen_free). */
	void (*unclaimed)(const struct kf_registry *reg, const void *scan,
			  struct kf_seen **ret, size_t *ret_n);
	/* kflash add --device ARG: the device in scan that ARG names. 0 with
	 * *ret; -ENOENT with err saying what is connected when ARG names none
	 * of this transport's; KF_EINPUT with err when it is one kflash must
	 * not register (blocked, or maybe a registered board already). */
	int (*find)(struct kf_ctx *ctx, const struct kf_registry *reg, const void *scan,
		    const char *arg, struct kf_seen *ret, struct kf_error *err);
	/* What the registry needs to find device s again, into b (pattern,
	 * mcu, port: malloc'd), the rest of b left to the caller; *ret_note a
	 * warning to give once it is registered, or NULL. KF_EINPUT with err
	 * when it could not be told from another connected device or is
	 * registered already. b holds its key and name already. */
	int (*enroll)(const struct kf_registry *reg, const void *scan,
		      const struct kf_seen *s, struct kf_board *b, char **ret_note,
		      struct kf_error *err);

	/* Watching for boards coming back: opened before the first flash and
	 * closed after the last return, so no return is missed. */
	int (*watch_open)(struct kf_ctx *ctx, void **ret_watch, struct kf_error *err);
	void (*watch_close)(struct kf_ctx *ctx, void *watch);
	/* Taken just before a board is flashed: what the watch saw before the
	 * mark is not its return. */
	size_t (*watch_mark)(struct kf_ctx *ctx, void *watch);
	/* Waits until b runs Klipper again (KF_RETURN_BACK, *at updated) or
	 * the deadline (clock ms). 0 with *ret; -EINTR when a signal is
	 * pending (not taken); another negative errno with err when the
	 * transport could not look. */
	int (*await_return)(struct kf_ctx *ctx, struct kf_registry *reg,
			    struct kf_board *b, void *watch, size_t mark,
			    int64_t deadline, struct kf_where *at,
			    enum kf_return *ret, struct kf_error *err);
	/* Before Katapult is asked where the application starts: sends a
	 * board running Klipper into its bootloader, where the flash tool's
	 * status request does not (CAN). NULL: the flash tool does it
	 * (USB). 0; -EINTR; KF_EFAILED with err. The caller locates the
	 * board again (after_reset) before it is used. */
	int (*to_bootloader)(struct kf_ctx *ctx, struct kf_registry *reg,
			     struct kf_board *b, struct kf_where *at, struct kf_error *err);
	/* How flashing board b sits beside the others' flashes (KF_FLASH_*
	 * bits); NULL: none of them. */
	unsigned (*flash_traits)(const struct kf_board *b);
};

/* b carries a bus other boards are reached through (a USB-to-CAN
 * bridge): flashing it takes them down, so it is flashed after every
 * board that does not. */
#define KF_FLASH_CARRIES_BUS 0x1u
/* The flash tool itself takes b into Katapult, somewhere kflash cannot
 * ask beforehand (a bridge reboots into Katapult on USB, its bus gone):
 * neither to_bootloader nor Katapult's status request come first. */
#define KF_FLASH_TOOL_ENTERS 0x2u

/* tr's flash traits for b (0 when tr has none). */
unsigned kf_flash_traits(const struct kf_transport *tr, const struct kf_board *b);

/* What the transports see now, each scan read once; a command keeps it
 * for as long as it uses what was found. */
#define KF_SCANS_MAX 4
struct kf_scans {
	const struct kf_transport *tr[KF_SCANS_MAX];
	void *scan[KF_SCANS_MAX];
	size_t n;
};

#define KF_SCANS_INIT { { NULL }, { NULL }, 0 }

/* The scan of tr, read now if it was not; NULL when it cannot be read
 * (*ret_r and err say why; the next call tries again). */
void *kf_scans_get(struct kf_ctx *ctx, const struct kf_registry *reg, struct kf_scans *sc,
		   const struct kf_transport *tr, struct kf_error *err, int *ret_r);
/* The scan of tr if it was read, else NULL (nothing is read). */
void *kf_scans_find(const struct kf_scans *sc, const struct kf_transport *tr);
void kf_scans_release(struct kf_scans *sc);

/* USB serial: udev's tty devices, by-id names, flashtool.py -d <tty>, the
 * udev "add" event of the board running Klipper. */
extern const struct kf_transport kf_transport_usb;

/* CAN nodes and USB-to-CAN bridge boards: Katapult's query
 * (flashtool.py -i IF -q), flashtool.py -i IF -u UUID, the node's answer
 * as Klipper after its flash. */
extern const struct kf_transport kf_transport_can;

/* The transport that reaches board b. */
const struct kf_transport *kf_transport_for(const struct kf_board *b);

/* Every transport, NULL-terminated, for commands that look at all of them
 * (kflash doctor, list, add, the menu). A new transport is one line here
 * too. */
extern const struct kf_transport *const kf_transports[];

#endif
