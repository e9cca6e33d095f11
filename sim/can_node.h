/* can_node.h - an emulated board as a node on the simulated CAN bus: the
 * CAN side of Klipper's and Katapult's canserial.c (admin frames on 0x3f0,
 * answers on 0x3f1, the byte stream on the node's ids), with the Katapult
 * command stream served by sim/board.c, the same code as for USB boards.
 *
 * Admin commands (first data byte of a frame to 0x3f0):
 *   00 query unassigned: an unassigned node answers on 0x3f1 with
 *      20, its 6-byte UUID, and its application: 01 Klipper, 11 Katapult
 *   01 UUID NODEID (Klipper) / 11 UUID NODEID (Katapult): assign the node
 *      id; the node then takes bytes on 0x100 + 2 * NODEID and answers
 *      on the id after it; another node's id equal to ours clears ours
 *   02 UUID (Klipper only): reboot into Katapult
 *   12 (Katapult only): every Katapult node forgets its node id
 * Klipper's own command stream is not emulated: a Klipper node takes
 * bytes on its id and answers nothing. */
#ifndef KFLASH_SIM_CAN_NODE_H
#define KFLASH_SIM_CAN_NODE_H

#include <linux/can.h>
#include <stdint.h>

#include "board.h"

/* What happens after Katapult acks COMPLETE to an image that starts. */
enum sim_can_after {
	SIM_CAN_AFTER_KLIPPER,	/* the new firmware runs (unassigned) */
	SIM_CAN_AFTER_KATAPULT,	/* it does not start: back in Katapult */
	SIM_CAN_AFTER_GONE,	/* the node leaves the bus for good */
};

struct sim_can_node_cfg {
	const char *name;	/* board name, in events */
	uint8_t uuid[6];	/* as sent on the wire */
	int ifindex;		/* the interface the node is on */
	int assigned;		/* starts with a node id a running Klipper
				 * gave it: silent to queries (Klipper mode) */
	int reboot_ms;		/* reset to back on the bus */
	enum sim_can_after after;
	int bridge;		/* the USB-to-CAN bridge itself: its reboot
				 * is a USB re-enumeration (io.reboot), and
				 * its USB side logs its events */
	struct sim_board_cfg board;	/* board.mode is the starting mode */
};

struct sim_can_node;

/* Frames out and events; both called from inside sim_can_node_*(). */
struct sim_can_node_io {
	void (*send)(void *ctx, const struct sim_can_node *from, int ifindex,
		     const struct can_frame *f);
	void (*event)(void *ctx, const char *name, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
	sim_board_log_fn log;	/* the board's own log lines; may be NULL */
	/* a bridge node was asked to reboot into its bootloader */
	void (*reboot)(void *ctx, const struct sim_can_node *n);
	void *ctx;
};

/* NULL with errno (EINVAL: see sim_board_cfg_problem()). Logs
 * "enumerate MODE". */
struct sim_can_node *sim_can_node_new(const struct sim_can_node_cfg *cfg,
				      const struct sim_can_node_io *io,
				      int64_t now_ms);
void sim_can_node_free(struct sim_can_node *n);

int sim_can_node_ifindex(const struct sim_can_node *n);

/* A frame seen on the node's interface. */
void sim_can_node_frame(struct sim_can_node *n, const struct can_frame *f,
			int64_t now_ms);

/* A bridge node's USB side came back as the bridge (UP) or went. */
void sim_can_node_link(struct sim_can_node *n, int up);
const char *sim_can_node_name(const struct sim_can_node *n);

/* Runs what is due at now_ms (a reboot's end); returns the next deadline in
 * ms, or -1 for none. */
int64_t sim_can_node_tick(struct sim_can_node *n, int64_t now_ms);

/* UUID Klipper and Katapult derive from the chip id bytes (fasthash64 of
 * them, its low 6 bytes). hex: the chip id as in the USB serial string. 0,
 * or -1 when hex is not an even number of hex digits (at most 64). */
int sim_can_uuid_of_serial(const char *hex, uint8_t ret_uuid[6]);

#endif
