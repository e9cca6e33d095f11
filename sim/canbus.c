/* canbus.c - kflash-simcanbus: the simulated CAN bus that
 * libkflash-simcan.so's sockets attach to (can_wire.h), with emulated
 * boards on it as CAN nodes (can_node.h).
 *
 *   kflash-simcanbus [-v] [--socket PATH] [--events FILE] [--image-dir DIR]
 *       [--down IFACE]... [--board FILE[:klipper|:katapult][,key=value...]]...
 *
 * PATH defaults to $KFLASH_SIM_CANBUS; it appears (atomically) once the bus
 * takes connections. Interfaces are $KFLASH_SIM_CAN_IFACES (default can0).
 * Each frame a socket or a node sends goes to every other socket bound to
 * its interface (or to all) whose CAN_RAW_FILTER passes it, and to every
 * other node on that interface; an interface named by --down carries
 * nothing. A node with bridge=1 is a USB-to-CAN bridge board: its reboot
 * request goes to kflash-simhost as "reboot NAME" on --control FD, which
 * sends "down IFACE"/"up IFACE" as its USB side goes and comes back
 * (fixtures/boards/README.md). Ends on SIGTERM or SIGINT. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "can_node.h"
#include "can_wire.h"
#include "simutil.h"

#define SIM_PROG	"kflash-simcanbus"
#define SIM_CLIENTS_MAX	64
#define SIM_NODES_MAX	16
/* Frames a slow reader may have pending before the oldest are dropped,
 * as a CAN socket's receive queue overflows. */
#define SIM_QUEUE_MAX	65536

struct sim_client {
	int fd;
	int bound;
	int ifindex;
	int loopback, recv_own;
	uint32_t nfilters;
	struct sim_can_filter filters[SIM_CAN_FILTERS_MAX];
	struct can_frame *q;	/* frames not yet taken by the socket */
	size_t qhead, qlen, qcap;
};

struct sim_bus {
	int verbose;
	int events_fd;
	struct sim_client *clients[SIM_CLIENTS_MAX];
	struct sim_can_node *nodes[SIM_NODES_MAX];
	size_t nnodes;
	int down[SIM_CAN_IFACES_MAX];	/* by ifindex - base: link down */
	int gone[SIM_CAN_IFACES_MAX];	/* by ifindex - base: a bridge's
					 * interface that is not there */
	int ctl_fd;			/* kflash-simhost's control socket, or -1 */
	int64_t t0;
};

static int64_t sim_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void __attribute__((format(printf, 1, 2))) sim_say(const char *fmt, ...)
{
	va_list ap;

	fputs(SIM_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void sim_board_said(void *ctx, const char *msg)
{
	struct sim_bus *bus = ctx;

	if (bus->verbose)
		sim_say("%s", msg);
}

/* The shared event log's line: "<monotonic s> simboard <name> <event>". */
static void __attribute__((format(printf, 3, 4)))
sim_event(void *ctx, const char *name, const char *fmt, ...)
{
	struct sim_bus *bus = ctx;
	char line[512] = "";
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = sim_event_vwrite(bus->events_fd, name, line, sizeof(line), fmt, ap);
	va_end(ap);
	if (r < 0)
		sim_say("events: %s", strerror(errno));
	if (bus->verbose)
		sim_say("event: %s", line);
}

/****************************************************************
 * Delivery
 ****************************************************************/

/* The kernel's raw.c: a frame passes when any filter matches it (id and
 * mask over the whole can_id, flags included; CAN_INV_FILTER inverts). */
static int sim_filter_pass(const struct sim_client *c, uint32_t can_id)
{
	for (uint32_t i = 0; i < c->nfilters; i++) {
		uint32_t id = c->filters[i].id, mask = c->filters[i].mask;
		int match = (can_id & mask) == (id & ~CAN_INV_FILTER & mask);

		if (id & CAN_INV_FILTER ? !match : match)
			return 1;
	}
	return 0;
}

static void sim_client_flush(struct sim_client *c)
{
	while (c->qlen) {
		ssize_t n = send(c->fd, &c->q[c->qhead], sizeof(struct can_frame),
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				c->qlen = 0;	/* gone: its hangup comes next */
			return;
		}
		c->qhead = (c->qhead + 1) % c->qcap;
		c->qlen--;
	}
	c->qhead = 0;
}

static void sim_client_push(struct sim_client *c, const struct can_frame *f)
{
	if (c->qlen == c->qcap) {
		size_t cap = c->qcap ? c->qcap * 2 : 256;
		struct can_frame *q;

		if (cap > SIM_QUEUE_MAX) {
			sim_say("socket %d: receive queue full, frame dropped", c->fd);
			return;
		}
		q = malloc(cap * sizeof(*q));
		if (!q) {
			sim_say("socket %d: no memory, frame dropped", c->fd);
			return;
		}
		for (size_t i = 0; i < c->qlen; i++)
			q[i] = c->q[(c->qhead + i) % c->qcap];
		free(c->q);
		c->q = q;
		c->qcap = cap;
		c->qhead = 0;
	}
	c->q[(c->qhead + c->qlen) % c->qcap] = *f;
	c->qlen++;
	sim_client_flush(c);
}

/* from: the client that sent it, or NULL; from_node likewise. */
static void sim_route(struct sim_bus *bus, const struct sim_client *from,
		      const struct sim_can_node *from_node, int ifindex,
		      const struct can_frame *f)
{
	if (bus->verbose > 1) {
		char hex[17] = "";

		for (int i = 0; i < f->len && i < 8; i++)
			snprintf(hex + 2 * i, 3, "%02x", f->data[i]);
		sim_say("frame if%d %03x [%d] %s", ifindex,
			(unsigned)(f->can_id & CAN_EFF_MASK), f->len, hex);
	}
	/* a down interface carries nothing (Linux fails the send with
	 * ENETDOWN; here the frame is lost, and the sender times out) */
	if (ifindex >= SIM_CAN_IFINDEX_BASE &&
	    ifindex < SIM_CAN_IFINDEX_BASE + SIM_CAN_IFACES_MAX &&
	    (bus->down[ifindex - SIM_CAN_IFINDEX_BASE] ||
	     bus->gone[ifindex - SIM_CAN_IFINDEX_BASE]))
		return;
	for (size_t i = 0; i < SIM_CLIENTS_MAX; i++) {
		struct sim_client *c = bus->clients[i];

		if (!c || !c->bound || (c->ifindex && c->ifindex != ifindex))
			continue;
		if (c == from && !c->recv_own)
			continue;
		if (from && c != from && !from->loopback)
			continue;
		if (sim_filter_pass(c, f->can_id))
			sim_client_push(c, f);
	}
	for (size_t i = 0; i < bus->nnodes; i++) {
		struct sim_can_node *n = bus->nodes[i];

		if (n != from_node && sim_can_node_ifindex(n) == ifindex)
			sim_can_node_frame(n, f, sim_now_ms());
	}
}

/* A node's frame (ctx is the bus): every socket and the other nodes. */
static void sim_node_send(void *ctx, const struct sim_can_node *from,
			  int ifindex, const struct can_frame *f)
{
	sim_route(ctx, NULL, from, ifindex, f);
}

/* A bridge node's reboot: kflash-simhost re-enumerates its USB side. */
static void sim_node_reboot(void *ctx, const struct sim_can_node *n)
{
	struct sim_bus *bus = ctx;
	char msg[96];

	snprintf(msg, sizeof(msg), "reboot %s", sim_can_node_name(n));
	if (bus->ctl_fd < 0 ||
	    send(bus->ctl_fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		sim_say("%s: no kflash-simhost to reboot it", sim_can_node_name(n));
}

/* "up IFACE" / "down IFACE" from kflash-simhost: a bridge's interface came
 * (its board runs Klipper on USB again) or went (it reset). */
static void sim_ctl_read(struct sim_bus *bus)
{
	char msg[64];
	ssize_t n;

	while ((n = recv(bus->ctl_fd, msg, sizeof(msg) - 1, MSG_DONTWAIT)) > 0) {
		int up, ifx;

		msg[n] = '\0';
		up = !strncmp(msg, "up ", 3);
		if (!up && strncmp(msg, "down ", 5)) {
			sim_say("control: '%s'?", msg);
			continue;
		}
		ifx = sim_can_iface(msg + (up ? 3 : 5), 0, NULL);
		if (!ifx) {
			sim_say("control: '%s': no such interface", msg);
			continue;
		}
		bus->gone[ifx - SIM_CAN_IFINDEX_BASE] = !up;
		for (size_t i = 0; i < bus->nnodes; i++)
			if (sim_can_node_ifindex(bus->nodes[i]) == ifx)
				sim_can_node_link(bus->nodes[i], up);
		if (bus->verbose)
			sim_say("control: %s", msg);
	}
	if (n == 0) {
		close(bus->ctl_fd);
		bus->ctl_fd = -1;
	}
}

/****************************************************************
 * Sockets
 ****************************************************************/

static void sim_client_close(struct sim_bus *bus, size_t i)
{
	struct sim_client *c = bus->clients[i];

	if (bus->verbose)
		sim_say("socket %d closed", c->fd);
	close(c->fd);
	free(c->q);
	free(c);
	bus->clients[i] = NULL;
}

static void sim_client_ctl(struct sim_bus *bus, struct sim_client *c,
			   const struct sim_can_ctl_msg *m, size_t len)
{
	switch (m->type) {
	case SIM_CAN_CTL_BIND:
		c->bound = 1;
		c->ifindex = (int)m->arg;
		if (bus->verbose)
			sim_say("socket %d bound to ifindex %d", c->fd, c->ifindex);
		break;
	case SIM_CAN_CTL_FILTER:
		if (m->arg > SIM_CAN_FILTERS_MAX || len < SIM_CAN_CTL_LEN(m->arg))
			break;
		c->nfilters = m->arg;
		memcpy(c->filters, m->filters, m->arg * sizeof(m->filters[0]));
		if (bus->verbose)
			sim_say("socket %d: %u filters", c->fd, (unsigned)m->arg);
		break;
	case SIM_CAN_CTL_RECV_OWN:
		c->recv_own = !!m->arg;
		break;
	case SIM_CAN_CTL_LOOPBACK:
		c->loopback = !!m->arg;
		break;
	default:
		break;
	}
}

static void sim_client_read(struct sim_bus *bus, size_t i)
{
	struct sim_client *c = bus->clients[i];
	struct sim_can_ctl_msg m;

	for (;;) {
		ssize_t n = recv(c->fd, &m, sizeof(m), MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			sim_client_close(bus, i);
			return;
		}
		if (n == SIM_CAN_FRAME_LEN) {
			struct can_frame f;

			memcpy(&f, &m, sizeof(f));
			/* an unbound socket cannot send (ENXIO in Linux) */
			if (c->bound && f.len <= 8)
				sim_route(bus, c, NULL, c->ifindex ? c->ifindex :
					  SIM_CAN_IFINDEX_BASE, &f);
		} else if (n >= 12 && m.magic == SIM_CAN_MAGIC) {
			sim_client_ctl(bus, c, &m, (size_t)n);
		} else if (bus->verbose) {
			sim_say("socket %d: %zd-byte record dropped (CAN FD?)",
				c->fd, n);
		}
	}
}

static void sim_accept(struct sim_bus *bus, int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct sim_client *c;

	if (fd < 0)
		return;
	for (size_t i = 0; i < SIM_CLIENTS_MAX; i++) {
		if (bus->clients[i])
			continue;
		c = calloc(1, sizeof(*c));
		if (!c)
			break;
		c->fd = fd;
		c->loopback = 1;
		c->nfilters = 1;	/* id 0 mask 0: everything */
		bus->clients[i] = c;
		if (bus->verbose)
			sim_say("socket %d attached", fd);
		return;
	}
	sim_say("too many sockets: one refused");
	close(fd);
}

/* Bound under a temporary name, then renamed: a client that sees PATH can
 * connect. */
static int sim_listen(const char *path)
{
	struct sockaddr_un sa;
	char tmp[sizeof(sa.sun_path)];
	int fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid()) >=
	    sizeof(tmp)) {
		sim_say("%s: socket path too long", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		sim_say("socket: %s", strerror(errno));
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, tmp);
	(void)unlink(tmp);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 16) < 0 || rename(tmp, path) < 0) {
		sim_say("%s: %s", path, strerror(errno));
		(void)unlink(tmp);
		close(fd);
		return -1;
	}
	return fd;
}

/****************************************************************
 * Board files
 ****************************************************************/

struct sim_fx {
	char name[64], mcu[65], serial[65], uuid[13], iface[SIM_CAN_IFNAME_MAX];
	char version[65], transport[16];
	enum sim_mode mode;
	int mode_forced;
	int assigned, reboot_ms;
	uint32_t app_start;
	enum sim_fault fault;
	enum sim_can_after after;
	int bridge;
};

static int sim_set(char *dst, size_t cap, const char *v)
{
	if (strlen(v) >= cap)
		return -1;
	strcpy(dst, v);
	return 0;
}

static int sim_parse_num(const char *v, long lo, long hi, long *ret)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 0);
	if (errno || end == v || *end || n < lo || n > hi)
		return -1;
	*ret = n;
	return 0;
}

/* One key; 0, 1 for a key this program does not use, -1 for a bad value. */
static int sim_fx_key(struct sim_fx *fx, const char *k, const char *v)
{
	long n;

	if (!strcmp(k, "name"))
		return sim_set(fx->name, sizeof(fx->name), v);
	if (!strcmp(k, "transport"))
		return sim_set(fx->transport, sizeof(fx->transport), v);
	if (!strcmp(k, "mcu"))
		return sim_set(fx->mcu, sizeof(fx->mcu), v);
	if (!strcmp(k, "serial"))
		return sim_set(fx->serial, sizeof(fx->serial), v);
	if (!strcmp(k, "canbus_uuid"))
		return sim_set(fx->uuid, sizeof(fx->uuid), v);
	if (!strcmp(k, "interface"))
		return sim_set(fx->iface, sizeof(fx->iface), v);
	if (!strcmp(k, "version"))
		return sim_set(fx->version, sizeof(fx->version), v);
	if (!strcmp(k, "mode")) {
		if (fx->mode_forced)
			return 0;
		if (!strcmp(v, "klipper") || !strcmp(v, "katapult")) {
			fx->mode = !strcmp(v, "katapult") ? SIM_MODE_KATAPULT :
				SIM_MODE_KLIPPER;
			return 0;
		}
		return -1;
	}
	if (!strcmp(k, "assigned")) {
		if (sim_parse_num(v, 0, 1, &n) < 0)
			return -1;
		fx->assigned = (int)n;
		return 0;
	}
	if (!strcmp(k, "bridge")) {
		if (sim_parse_num(v, 0, 1, &n) < 0)
			return -1;
		fx->bridge = (int)n;
		return 0;
	}
	if (!strcmp(k, "reboot_ms")) {
		if (sim_parse_num(v, 0, 60000, &n) < 0)
			return -1;
		fx->reboot_ms = (int)n;
		return 0;
	}
	if (!strcmp(k, "app_start")) {
		if (sim_parse_num(v, 0, 0xffffffffL, &n) < 0)
			return -1;
		fx->app_start = (uint32_t)n;
		return 0;
	}
	if (!strcmp(k, "fault"))
		return sim_fault_parse(v, &fx->fault) < 0 ? -1 : 0;
	if (!strcmp(k, "after_complete")) {
		if (!strcmp(v, "klipper"))
			fx->after = SIM_CAN_AFTER_KLIPPER;
		else if (!strcmp(v, "katapult"))
			fx->after = SIM_CAN_AFTER_KATAPULT;
		else if (!strcmp(v, "gone"))
			fx->after = SIM_CAN_AFTER_GONE;
		else
			return -1;
		return 0;
	}
	return 1;
}

static int sim_fx_line(struct sim_fx *fx, char *line, const char *where)
{
	char *eq, *k, *v;
	int r;

	line = sim_strip(line);
	if (!*line || *line == '#')
		return 0;
	eq = strchr(line, '=');
	if (!eq) {
		sim_say("%s: not key=value: %s", where, line);
		return -1;
	}
	*eq = '\0';
	k = sim_strip(line);
	v = sim_strip(eq + 1);
	r = sim_fx_key(fx, k, v);
	if (r < 0)
		sim_say("%s: bad %s: %s", where, k, v);
	return r < 0 ? -1 : 0;
}

/* FILE[:klipper|:katapult][,key=value...], as kflash-simhost's --board. */
static int sim_fx_load(struct sim_fx *fx, const char *arg)
{
	char *spec = strdup(arg), *over, *colon, *base, line[512];
	FILE *f;
	int ret = -1;

	if (!spec)
		return -1;
	memset(fx, 0, sizeof(*fx));
	fx->reboot_ms = -1;
	fx->app_start = 0x08008000;
	snprintf(fx->version, sizeof(fx->version), "v0.0.1-95-g2ac8a23");
	over = strchr(spec, ',');
	if (over)
		*over++ = '\0';
	colon = strrchr(spec, ':');
	if (colon && (!strcmp(colon, ":klipper") || !strcmp(colon, ":katapult"))) {
		fx->mode = !strcmp(colon, ":katapult") ? SIM_MODE_KATAPULT :
			SIM_MODE_KLIPPER;
		fx->mode_forced = 1;
		*colon = '\0';
	}
	f = fopen(spec, "r");
	if (!f) {
		sim_say("%s: %s", spec, strerror(errno));
		goto out;
	}
	while (fgets(line, sizeof(line), f))
		if (sim_fx_line(fx, line, spec) < 0) {
			fclose(f);
			goto out;
		}
	fclose(f);
	while (over) {
		char *next = strchr(over, ',');

		if (next)
			*next++ = '\0';
		if (sim_fx_line(fx, over, arg) < 0)
			goto out;
		over = next;
	}
	if (!fx->name[0]) {
		base = strrchr(spec, '/');
		base = base ? base + 1 : spec;
		snprintf(fx->name, sizeof(fx->name), "%.*s",
			 (int)strcspn(base, "."), base);
	}
	if (strcmp(fx->transport, "can")) {
		sim_say("%s: transport=%s: not a CAN board (transport=can)", spec,
			fx->transport[0] ? fx->transport : "usb");
		goto out;
	}
	if (!fx->mcu[0] || (!fx->serial[0] && !fx->uuid[0])) {
		sim_say("%s: a CAN board needs mcu= and serial= or canbus_uuid=", spec);
		goto out;
	}
	if (!fx->iface[0])
		snprintf(fx->iface, sizeof(fx->iface), "can0");
	if (fx->reboot_ms < 0)
		fx->reboot_ms = 250;
	ret = 0;
out:
	free(spec);
	return ret;
}

static int sim_hex_uuid(const char *hex, uint8_t uuid[6])
{
	if (strlen(hex) != 12 || strspn(hex, "0123456789abcdefABCDEF") != 12)
		return -1;
	for (int i = 0; i < 6; i++) {
		char b[3] = { hex[2 * i], hex[2 * i + 1], 0 };

		uuid[i] = (uint8_t)strtoul(b, NULL, 16);
	}
	return 0;
}

static int sim_add_board(struct sim_bus *bus, const char *arg, const char *image_dir)
{
	struct sim_can_node_cfg cfg;
	struct sim_can_node_io io = {
		.send = sim_node_send, .event = sim_event,
		.log = sim_board_said, .reboot = sim_node_reboot, .ctx = bus,
	};
	struct sim_fx fx;
	char image[4096];
	const char *why;

	if (bus->nnodes == SIM_NODES_MAX) {
		sim_say("too many boards");
		return -1;
	}
	if (sim_fx_load(&fx, arg) < 0)
		return -1;
	memset(&cfg, 0, sizeof(cfg));
	if (fx.uuid[0] ? sim_hex_uuid(fx.uuid, cfg.uuid) :
	    sim_can_uuid_of_serial(fx.serial, cfg.uuid)) {
		sim_say("%s: bad %s", arg, fx.uuid[0] ? "canbus_uuid (12 hex digits)" :
			"serial (hex digits)");
		return -1;
	}
	cfg.ifindex = sim_can_iface(fx.iface, 0, NULL);
	if (!cfg.ifindex) {
		sim_say("%s: interface=%s is not in KFLASH_SIM_CAN_IFACES", arg, fx.iface);
		return -1;
	}
	snprintf(image, sizeof(image), "%s/%s.bin", image_dir, fx.name);
	cfg.name = fx.name;
	cfg.assigned = fx.assigned;
	cfg.reboot_ms = fx.reboot_ms;
	cfg.after = fx.after;
	cfg.bridge = fx.bridge;
	if (fx.bridge)
		fx.mode = SIM_MODE_KLIPPER;	/* on the bus only while it runs Klipper */
	cfg.board.mcu = fx.mcu;
	cfg.board.serial = fx.serial;
	cfg.board.image_path = image;
	cfg.board.version = fx.version;
	cfg.board.mode = fx.mode;
	cfg.board.app_start = fx.app_start;
	cfg.board.fault = fx.fault;
	why = sim_board_cfg_problem(&cfg.board);
	if (why) {
		sim_say("%s: %s", arg, why);
		return -1;
	}
	bus->nodes[bus->nnodes] = sim_can_node_new(&cfg, &io, sim_now_ms());
	if (!bus->nodes[bus->nnodes]) {
		sim_say("%s: %s", arg, strerror(errno));
		return -1;
	}
	if (bus->verbose) {
		sim_say("%s: node %02x%02x%02x%02x%02x%02x on %s", fx.name, cfg.uuid[0],
			cfg.uuid[1], cfg.uuid[2], cfg.uuid[3], cfg.uuid[4],
			cfg.uuid[5], fx.iface);
	}
	bus->nnodes++;
	return 0;
}

/****************************************************************
 * Main
 ****************************************************************/

static void sim_usage(FILE *to)
{
	fprintf(to, "usage: " SIM_PROG " [-v] [--socket PATH] [--events FILE] "
		"[--image-dir DIR] [--down IFACE]... [--control FD]\n"
		"       [--board FILE[:klipper|:katapult][,key=value...]]...\n"
		"PATH defaults to $KFLASH_SIM_CANBUS; interfaces are "
		"$KFLASH_SIM_CAN_IFACES (default can0)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "events", required_argument, NULL, 'e' },
		{ "image-dir", required_argument, NULL, 'i' },
		{ "board", required_argument, NULL, 'b' },
		{ "down", required_argument, NULL, 'd' },
		{ "control", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sim_bus bus = { .events_fd = -1, .ctl_fd = -1 };
	const char *path = getenv("KFLASH_SIM_CANBUS"), *image_dir = ".";
	const char *boards[SIM_NODES_MAX];
	size_t nboards = 0;
	struct pollfd pfd[3 + SIM_CLIENTS_MAX];
	size_t idx[SIM_CLIENTS_MAX];
	sigset_t mask;
	int lfd, sfd, c, ret = 0;

	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'e':
			bus.events_fd = open(optarg, O_WRONLY | O_APPEND | O_CREAT |
					     O_CLOEXEC, 0644);
			if (bus.events_fd < 0) {
				sim_say("%s: %s", optarg, strerror(errno));
				return 2;
			}
			break;
		case 'i': image_dir = optarg; break;
		case 'c': {
			long fd;

			if (sim_parse_num(optarg, 0, 1023, &fd) < 0) {
				sim_say("--control %s: not a file descriptor", optarg);
				return 2;
			}
			bus.ctl_fd = (int)fd;
			(void)fcntl(bus.ctl_fd, F_SETFD, FD_CLOEXEC);
			break;
		}
		case 'b':
			if (nboards == SIM_NODES_MAX) {
				sim_say("too many boards");
				return 2;
			}
			boards[nboards++] = optarg;
			break;
		case 'd': {
			int ifx = sim_can_iface(optarg, 0, NULL);

			if (!ifx) {
				sim_say("--down %s: not in KFLASH_SIM_CAN_IFACES", optarg);
				return 2;
			}
			bus.down[ifx - SIM_CAN_IFINDEX_BASE] = 1;
			break;
		}
		case 'v': bus.verbose++; break;
		case 'h': sim_usage(stdout); return 0;
		default: sim_usage(stderr); return 2;
		}
	}
	if (optind != argc || !path || !*path) {
		sim_usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < nboards; i++)
		if (sim_add_board(&bus, boards[i], image_dir) < 0)
			return 2;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	lfd = sim_listen(path);
	if (sfd < 0 || lfd < 0)
		return 1;
	for (;;) {
		int64_t now = sim_now_ms(), next = -1;
		size_t n = 3;
		int timeout;

		for (size_t i = 0; i < bus.nnodes; i++) {
			int64_t d = sim_can_node_tick(bus.nodes[i], now);

			if (d >= 0 && (next < 0 || d < next))
				next = d;
		}
		timeout = next < 0 ? -1 : (int)(next - now);
		pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		pfd[2] = (struct pollfd){ .fd = bus.ctl_fd, .events = POLLIN };
		for (size_t i = 0; i < SIM_CLIENTS_MAX; i++) {
			struct sim_client *cl = bus.clients[i];

			if (!cl)
				continue;
			idx[n - 3] = i;
			pfd[n++] = (struct pollfd){ .fd = cl->fd, .events = POLLIN |
				(cl->qlen ? POLLOUT : 0) };
		}
		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			sim_say("poll: %s", strerror(errno));
			ret = 1;
			break;
		}
		if (pfd[0].revents)
			break;
		for (size_t k = 3; k < n; k++) {
			size_t i = idx[k - 3];

			if (!bus.clients[i] || bus.clients[i]->fd != pfd[k].fd)
				continue;
			if (pfd[k].revents & POLLOUT)
				sim_client_flush(bus.clients[i]);
			if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
				sim_client_read(&bus, i);
		}
		if (pfd[1].revents & POLLIN)
			sim_accept(&bus, lfd);
		if (bus.ctl_fd >= 0 && pfd[2].revents)
			sim_ctl_read(&bus);
	}
	(void)unlink(path);
	for (size_t i = 0; i < SIM_CLIENTS_MAX; i++)
		if (bus.clients[i])
			sim_client_close(&bus, i);
	for (size_t i = 0; i < bus.nnodes; i++)
		sim_can_node_free(bus.nodes[i]);
	return ret;
}
