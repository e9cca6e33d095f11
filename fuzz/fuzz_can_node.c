/* fuzz_can_node.c - the simulator's CAN node (sim/can_node.c): frames on
 * the bus as a node takes them (admin queries and node-id assignment on
 * 0x3f0, the Katapult byte stream on its id, reboots into Katapult), with
 * its answers and events going nowhere.
 *
 * Input: one byte choosing the board (simcfg.h), then frames of 2 bytes
 * of standard id (big-endian, 11 bits; 0x800 set: the clock moves 100 ms
 * first), a length byte and up to 8 data bytes. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "can_node.h"
#include "fuzz.h"
#include "simcfg.h"

static void sent(void *ctx, const struct sim_can_node *from, int ifindex,
		 const struct can_frame *f)
{
	size_t *n = ctx;

	(void)from;
	(void)ifindex;
	fuzz_assert(f->len <= 8);
	(*n)++;
}

static void event(void *ctx, const char *name, const char *fmt, ...)
{
	(void)ctx;
	(void)name;
	(void)fmt;
}

static void reboot(void *ctx, const struct sim_can_node *n)
{
	(void)ctx;
	(void)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sim_can_node_cfg cfg = { .name = "ebb", .ifindex = 1000, .reboot_ms = 500 };
	size_t frames = 0, at = 1;
	struct sim_can_node_io io = { .send = sent, .event = event, .reboot = reboot,
				      .ctx = &frames };
	struct sim_can_node *node;
	int64_t now = 1000;

	if (size < 1)
		return 0;
	fuzz_sim_board_cfg(data[0], "node", &cfg.board);
	memcpy(cfg.uuid, "\x0a\x1b\x2c\x3d\x4e\x5f", 6);
	cfg.assigned = data[0] >> 7;
	cfg.after = (enum sim_can_after)((data[0] >> 4) % 3);
	node = sim_can_node_new(&cfg, &io, now);
	fuzz_assert(node != NULL);
	while (at + 3 <= size) {
		struct can_frame f;
		unsigned id = (unsigned)data[at] << 8 | data[at + 1];
		size_t len = data[at + 2];

		at += 3;
		if (id & 0x800) {
			now += 100;
			(void)sim_can_node_tick(node, now);
		}
		memset(&f, 0, sizeof(f));
		f.can_id = id & 0x7ff;
		f.len = (uint8_t)len;
		if (len > 8)
			len = 8;
		if (len > size - at)
			len = size - at;
		memcpy(f.data, data + at, len);
		at += len;
		sim_can_node_frame(node, &f, now);
	}
	(void)sim_can_node_tick(node, now + 10000);
	sim_can_node_free(node);
	return 0;
}
