/* can.h - what kflash reads of a CAN bus: its interface (sysfs, ip) and the
 * nodes Katapult's flashtool finds on it.
 *
 * kflash opens no CAN socket itself: flashtool.py -i IF -q asks the bus,
 * as a printer owner would. Only unassigned nodes answer that query: a
 * node a running Klipper has given an id stays silent until it is reset,
 * so "not heard" is not "not there" while Klipper runs.
 */
#ifndef KFLASH_CAN_H
#define KFLASH_CAN_H

#include <stdbool.h>
#include <stddef.h>

#include "kflash/discovery.h"
#include "kflash/error.h"
#include "kflash/ops.h"

struct kf_can_node {
	char uuid[13];		/* 12 lower-case hex digits */
	enum kf_mode mode;	/* KLIPPER, KATAPULT, or OTHER ("Application: ...") */
};

/* The nodes in flashtool.py -q output ("Detected UUID: 0a1b2c3d4e5f,
 * Application: Katapult"), each once. malloc'd array in *ret. */
size_t kf_can_parse_query(const char *output, struct kf_can_node **ret);

enum kf_can_state {
	KF_CAN_MISSING,		/* no such interface */
	KF_CAN_DOWN,		/* it exists, and is down */
	KF_CAN_UP,
};

struct kf_can_iface {
	enum kf_can_state state;
	long txqueuelen;	/* -1: unknown */
	long bitrate;		/* -1: unknown */
	bool is_can;		/* sysfs type 280 (ARPHRD_CAN) */
};

/* What sysfs says of interface name (/sys/class/net/NAME/{operstate,
 * tx_queue_len,type}). A negative errno when sysfs could not be read. */
int kf_can_iface_read(const struct kf_ops *o, const char *name, struct kf_can_iface *ret);

/* The bitrate in `ip -details -json link show NAME` output, or -1. */
long kf_can_parse_bitrate(const char *ip_json);

/* What udev shows the interface is on (enumerate_net): its USB device,
 * into *ret; ret->iface NULL when it is on none (an SPI controller, or a
 * device udev does not list). 0, or the negative errno when udev cannot
 * be read. */
int kf_can_carrier(const struct kf_ops *o, const char *name, struct kf_ttydev *ret);

/* usb is a board running Klipper in USB-to-CAN bridge mode
 * (CONFIG_USBCANBUS: 1d50:606f, manufacturer "Klipper", product its
 * CONFIG_MCU); a gs_usb adapter (candleLight) has the same ids under
 * another manufacturer. mcu non-NULL: and it is that MCU. */
bool kf_can_is_klipper_bridge(const struct kf_ttydev *usb, const char *mcu);

/* usb for messages: "Klipper's USB-to-CAN bridge (stm32f446xx, USB
 * 1d50:606f)", "a USB-CAN adapter (candleLight, gs_usb, USB 1d50:606f)".
 * malloc'd. */
char *kf_can_carrier_describe(const struct kf_ttydev *usb);

/* Katapult's CAN flashing times out on a queue shorter than this. */
#define KF_CAN_MIN_TXQUEUELEN 128

#endif
