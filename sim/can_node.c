/* can_node.c - an emulated board as a CAN node (can_node.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "can_node.h"

#define SIM_ID_ADMIN		0x3f0
#define SIM_ID_ADMIN_RESP	0x3f1
#define SIM_ADM_QUERY		0x00
#define SIM_ADM_SET_KLIPPER	0x01
#define SIM_ADM_REBOOT		0x02
#define SIM_ADM_SET_KATAPULT	0x11
#define SIM_ADM_CLEAR_KATAPULT	0x12
#define SIM_RESP_NEED_NODEID	0x20

enum sim_node_state {
	SIM_NODE_UP,
	SIM_NODE_RESET,		/* off the bus until deadline */
	SIM_NODE_GONE,		/* off the bus for good (hung, gone) */
};

struct sim_can_node {
	struct sim_can_node_cfg cfg;
	struct sim_can_node_io io;
	char name[64];
	char image[4096];
	struct sim_board *board;
	enum sim_node_state state;
	enum sim_mode next_mode;
	int64_t deadline;
	uint32_t assigned_id;	/* 0: none */
	int write_started;
	unsigned scan;		/* bytes of 01 88 12 matched */
	struct stat image_st;
};

static const char *sim_mode_word(enum sim_mode m)
{
	return m == SIM_MODE_KATAPULT ? "katapult" : "klipper";
}

static void sim_image_stat(struct sim_can_node *n, struct stat *st)
{
	if (stat(n->image, st) < 0)
		memset(st, 0, sizeof(*st));
}

struct sim_can_node *sim_can_node_new(const struct sim_can_node_cfg *cfg,
				      const struct sim_can_node_io *io,
				      int64_t now_ms)
{
	struct sim_can_node *n = calloc(1, sizeof(*n));
	struct sim_board_cfg bc;

	(void)now_ms;
	if (!n)
		return NULL;
	n->cfg = *cfg;
	n->io = *io;
	snprintf(n->name, sizeof(n->name), "%s", cfg->name);
	snprintf(n->image, sizeof(n->image), "%s",
		 cfg->board.image_path ? cfg->board.image_path : "");
	n->cfg.name = n->name;
	bc = cfg->board;
	bc.can = 1;
	memcpy(bc.canbus_uuid, cfg->uuid, 6);
	if (!bc.log) {
		bc.log = io->log;
		bc.log_ctx = io->ctx;
	}
	n->board = sim_board_new(&bc);
	if (!n->board) {
		int err = errno;

		free(n);
		errno = err;
		return NULL;
	}
	/* a node a running Klipper set up has a node id (4, Klipper's
	 * first) and keeps quiet when asked who is unassigned */
	if (cfg->assigned && cfg->board.mode == SIM_MODE_KLIPPER)
		n->assigned_id = 0x100 + 2 * 4;
	sim_image_stat(n, &n->image_st);
	if (!cfg->bridge)
		n->io.event(n->io.ctx, n->name, "enumerate %s",
			    sim_mode_word(sim_board_mode(n->board)));
	return n;
}

void sim_can_node_free(struct sim_can_node *n)
{
	if (!n)
		return;
	sim_board_free(n->board);
	free(n);
}

int sim_can_node_ifindex(const struct sim_can_node *n)
{
	return n->cfg.ifindex;
}

const char *sim_can_node_name(const struct sim_can_node *n)
{
	return n->name;
}

/* Back as the bridge: Klipper again, no node id yet. */
void sim_can_node_link(struct sim_can_node *n, int up)
{
	if (!n->cfg.bridge)
		return;
	n->state = up ? SIM_NODE_UP : SIM_NODE_GONE;
	n->assigned_id = 0;
	if (up)
		sim_board_set_mode(n->board, SIM_MODE_KLIPPER);
}

static void sim_send(struct sim_can_node *n, uint32_t id, const uint8_t *data,
		     size_t len)
{
	struct can_frame f;

	memset(&f, 0, sizeof(f));
	f.can_id = id;
	f.len = (uint8_t)len;
	memcpy(f.data, data, len);
	n->io.send(n->io.ctx, n, n->cfg.ifindex, &f);
}

/* The bytes of the node's stream, 8 to a frame, as canserial sends them. */
static void sim_send_stream(struct sim_can_node *n, const uint8_t *p, size_t len)
{
	while (len && n->assigned_id) {
		size_t k = len < 8 ? len : 8;

		sim_send(n, n->assigned_id + 1, p, k);
		p += k;
		len -= k;
	}
}

static int sim_uuid_is(const struct sim_can_node *n, const struct can_frame *f)
{
	return f->len >= 7 && !memcmp(f->data + 1, n->cfg.uuid, 6);
}

/* The board resets: off the bus now, back in mode after reboot_ms. */
static void sim_reset(struct sim_can_node *n, enum sim_mode mode, int64_t now)
{
	n->io.event(n->io.ctx, n->name, "disconnect %s",
		    sim_mode_word(sim_board_mode(n->board)));
	n->state = SIM_NODE_RESET;
	n->next_mode = mode;
	n->deadline = now + n->cfg.reboot_ms;
	n->assigned_id = 0;
}

static void sim_admin(struct sim_can_node *n, const struct can_frame *f,
		      int64_t now)
{
	int katapult = sim_board_mode(n->board) == SIM_MODE_KATAPULT;
	uint8_t set_cmd = katapult ? SIM_ADM_SET_KATAPULT : SIM_ADM_SET_KLIPPER;

	if (!f->len)
		return;
	if (f->data[0] == SIM_ADM_QUERY) {
		uint8_t r[8];

		if (n->assigned_id)
			return;
		if (katapult && n->cfg.board.fault == SIM_FAULT_SILENT)
			return;
		r[0] = SIM_RESP_NEED_NODEID;
		memcpy(r + 1, n->cfg.uuid, 6);
		r[7] = set_cmd;
		sim_send(n, SIM_ID_ADMIN_RESP, r, 8);
	} else if (f->data[0] == set_cmd) {
		uint32_t id;

		if (f->len < 8)
			return;
		id = 0x100 + 2u * f->data[7];
		if (sim_uuid_is(n, f)) {
			if (id != n->assigned_id && n->io.log)
				n->io.log(n->io.ctx, "node id assigned");
			n->assigned_id = id;
		} else if (id == n->assigned_id) {
			n->assigned_id = 0;
		}
	} else if (katapult && f->data[0] == SIM_ADM_CLEAR_KATAPULT) {
		n->assigned_id = 0;
	} else if (!katapult && f->data[0] == SIM_ADM_REBOOT && sim_uuid_is(n, f)) {
		if (n->cfg.board.fault == SIM_FAULT_NO_BOOTLOADER) {
			if (n->io.log)
				n->io.log(n->io.ctx, "bootloader request ignored: "
					  "fault no-bootloader");
			return;
		}
		n->io.event(n->io.ctx, n->name, "bootloader-request");
		if (n->cfg.bridge) {
			/* off the bus: its USB side resets (kflash-simhost) */
			n->state = SIM_NODE_GONE;
			n->assigned_id = 0;
			if (n->io.reboot)
				n->io.reboot(n->io.ctx, n);
			return;
		}
		sim_reset(n, SIM_MODE_KATAPULT, now);
	}
}

/* "write-start" when the first SEND_BLOCK (01 88 12) of a session comes. */
static void sim_scan_send_block(struct sim_can_node *n, const uint8_t *p, size_t len)
{
	static const uint8_t start[] = { 0x01, 0x88, 0x12 };

	for (size_t i = 0; i < len && !n->write_started; i++) {
		if (p[i] == start[n->scan])
			n->scan++;
		else
			n->scan = p[i] == start[0] ? 1 : 0;
		if (n->scan == sizeof(start)) {
			n->write_started = 1;
			n->io.event(n->io.ctx, n->name, "write-start");
		}
	}
}

static void sim_take_events(struct sim_can_node *n, int64_t now)
{
	enum sim_event ev;
	struct stat st;

	while ((ev = sim_board_take_event(n->board)) != SIM_EV_NONE) {
		if (ev != SIM_EV_BOOT_APP && ev != SIM_EV_HANG)
			continue;
		sim_image_stat(n, &st);
		if (st.st_mtime && (st.st_ino != n->image_st.st_ino ||
				    st.st_size != n->image_st.st_size ||
				    st.st_mtim.tv_sec != n->image_st.st_mtim.tv_sec ||
				    st.st_mtim.tv_nsec != n->image_st.st_mtim.tv_nsec))
			n->io.event(n->io.ctx, n->name, "flash-complete bytes=%lld",
				    (long long)st.st_size);
		n->image_st = st;
		n->io.event(n->io.ctx, n->name, "boot-app");
		n->io.event(n->io.ctx, n->name, "disconnect katapult");
		if (ev == SIM_EV_HANG) {
			const char *why = sim_board_app_problem(n->board);

			if (!why)
				why = "?";
			n->io.event(n->io.ctx, n->name, "hang %.*s",
				    (int)strcspn(why, ":"), why);
			n->state = SIM_NODE_GONE;
		} else if (n->cfg.after == SIM_CAN_AFTER_GONE) {
			n->state = SIM_NODE_GONE;
		} else {
			n->state = SIM_NODE_RESET;
			n->next_mode = n->cfg.after == SIM_CAN_AFTER_KATAPULT
				? SIM_MODE_KATAPULT : SIM_MODE_KLIPPER;
			n->deadline = now + n->cfg.reboot_ms;
		}
		n->assigned_id = 0;
	}
}

static void sim_stream(struct sim_can_node *n, const struct can_frame *f,
		       int64_t now)
{
	static uint8_t out[65536];
	size_t olen = 0;

	if (sim_board_mode(n->board) != SIM_MODE_KATAPULT)
		return;		/* Klipper's protocol is not emulated */
	sim_scan_send_block(n, f->data, f->len);
	(void)sim_board_input(n->board, f->data, f->len, out, sizeof(out), &olen);
	sim_send_stream(n, out, olen);
	sim_take_events(n, now);
}

void sim_can_node_frame(struct sim_can_node *n, const struct can_frame *f,
			int64_t now_ms)
{
	uint32_t id;

	if (n->state != SIM_NODE_UP || (f->can_id & (CAN_RTR_FLAG | CAN_ERR_FLAG)))
		return;
	if (f->can_id & CAN_EFF_FLAG)
		return;		/* canserial takes standard ids only */
	id = f->can_id & CAN_SFF_MASK;
	if (f->len > 8)
		return;
	if (id == SIM_ID_ADMIN)
		sim_admin(n, f, now_ms);
	else if (n->assigned_id && id == n->assigned_id)
		sim_stream(n, f, now_ms);
	else if (n->assigned_id && id == n->assigned_id + 1)
		n->assigned_id = 0;	/* someone else answers on our id */
}

int64_t sim_can_node_tick(struct sim_can_node *n, int64_t now_ms)
{
	if (n->state != SIM_NODE_RESET)
		return -1;
	if (now_ms < n->deadline)
		return n->deadline;
	sim_board_set_mode(n->board, n->next_mode);
	n->state = SIM_NODE_UP;
	n->write_started = 0;
	n->scan = 0;
	sim_image_stat(n, &n->image_st);
	n->io.event(n->io.ctx, n->name, "enumerate %s", sim_mode_word(n->next_mode));
	return -1;
}

/* fasthash64 (Zilong Tan's), as Klipper's canserial_set_uuid() uses it. */
static uint64_t sim_mix(uint64_t h)
{
	h ^= h >> 23;
	h *= 0x2127599bf4325c37ULL;
	h ^= h >> 47;
	return h;
}

static uint64_t sim_fasthash64(const uint8_t *p, size_t len, uint64_t seed)
{
	const uint64_t m = 0x880355f21e6d1965ULL;
	uint64_t h = seed ^ (len * m), v;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		v = 0;
		for (int k = 7; k >= 0; k--)
			v = v << 8 | p[i + k];
		h ^= sim_mix(v);
		h *= m;
	}
	if (i < len) {
		v = 0;
		for (size_t k = len; k > i; k--)
			v = v << 8 | p[k - 1];
		h ^= sim_mix(v);
		h *= m;
	}
	return sim_mix(h);
}

int sim_can_uuid_of_serial(const char *hex, uint8_t ret_uuid[6])
{
	uint8_t raw[32];
	size_t len = strlen(hex);
	uint64_t h;

	if (!len || len % 2 || len > 2 * sizeof(raw))
		return -1;
	for (size_t i = 0; i < len; i += 2) {
		char b[3] = { hex[i], hex[i + 1], 0 };
		char *end;

		raw[i / 2] = (uint8_t)strtoul(b, &end, 16);
		if (*end || b[0] == '-' || b[0] == '+' || b[0] == ' ')
			return -1;
	}
	h = sim_fasthash64(raw, len / 2, 0xA16231A7);
	for (int i = 0; i < 6; i++)
		ret_uuid[i] = (uint8_t)(h >> (8 * i));
	return 0;
}
