/* transport_can.c - CAN nodes, and the USB-to-CAN bridge boards that
 * carry their bus: found by their UUID in Katapult's query
 * (flashtool.py -i IF -q), flashed with flashtool.py -i IF -u UUID, back
 * when they answer the query again as Klipper.
 *
 * Only unassigned nodes answer the query. A node a running Klipper has
 * given an id stays silent until it is reset, so a registered node that
 * is not heard while a Klipper config names its UUID is taken to be there,
 * held by Klipper; nothing is written to it before it answered as Katapult
 * after kflash asked it into its bootloader.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "kflash/can.h"
#include "kflash/flash.h"
#include "kflash/instances.h"
#include "kflash/proc.h"
#include "kflash/transport.h"
#include "kflash/util.h"

struct can_bus {
	char *iface;
	struct kf_can_iface st;
	int err;			/* sysfs or the query could not be read */
	char *why;			/* the query's failure, for messages */
	struct kf_can_node *nodes;
	size_t n;
	struct kf_ttydev usb;		/* the USB device it is on (iface NULL: none seen) */
};

/* what a later look learned (the Klipper configs that name UUIDs), kept
 * beside the scan, which its readers hold const */
struct can_cache {
	bool asked;
	struct kf_instances is;
};

struct can_scan {
	struct can_bus *bus;
	size_t n;
	struct can_cache *cache;
};

static bool uses_can(const struct kf_board *b)
{
	return b->link == KF_LINK_CAN || b->link == KF_LINK_BRIDGE;
}

static struct can_bus *bus_of(const struct can_scan *sc, const char *iface)
{
	size_t i;

	for (i = 0; iface && i < sc->n; i++)
		if (strcmp(sc->bus[i].iface, iface) == 0)
			return &sc->bus[i];
	return NULL;
}

/* Asks interface b->iface for its unassigned nodes. */
static void ask_bus(struct kf_ctx *ctx, const struct kf_settings *s, struct can_bus *b)
{
	const char *args[] = { "-i", b->iface, "-q", NULL };
	struct kf_tool_run t;
	int r;

	b->err = kf_can_iface_read(ctx->ops, b->iface, &b->st);
	if (b->err < 0 || b->st.state != KF_CAN_UP)
		return;
	/* what it is on only tells more: udev not answering changes nothing */
	(void)kf_can_carrier(ctx->ops, b->iface, &b->usb);
	r = kf_flashtool_cmd(ctx, s, args, &t);
	if (r < 0) {
		b->err = r;
	} else if (!kf_exit_ok(&t.exit)) {
		char how[64];

		kf_exit_describe(&t.exit, how, sizeof(how));
		b->err = -EIO;
		b->why = kf_asprintf("%s %s", t.command, how);
		if (t.exit.kind == KF_EXIT_INTERRUPTED)
			b->err = -EINTR;
	} else {
		b->n = kf_can_parse_query(t.output.data, &b->nodes);
	}
	kf_tool_run_release(&t);
}

static void bus_release(struct can_bus *b)
{
	free(b->iface);
	free(b->why);
	free(b->nodes);
	kf_ttydev_release(&b->usb);
	memset(b, 0, sizeof(*b));
}

static void add_bus(struct can_scan *sc, const char *iface)
{
	if (bus_of(sc, iface))
		return;
	sc->bus = kf_xrealloc(sc->bus, (sc->n + 1) * sizeof(*sc->bus));
	memset(&sc->bus[sc->n], 0, sizeof(sc->bus[sc->n]));
	sc->bus[sc->n++].iface = kf_xstrdup(iface);
}

static void can_scan_free(void *scan)
{
	struct can_scan *sc = scan;
	size_t i;

	if (!sc)
		return;
	for (i = 0; i < sc->n; i++)
		bus_release(&sc->bus[i]);
	if (sc->cache->asked)
		kf_instances_release(&sc->cache->is);
	free(sc->cache);
	free(sc->bus);
	free(sc);
}

/* The interfaces registered boards use, and can0 when it is there (kflash
 * add offers what answers on it). A host with neither is not asked. */
static int can_scan(struct kf_ctx *ctx, const struct kf_registry *reg, void **ret_scan,
		    struct kf_error *err)
{
	struct can_scan *sc = kf_xcalloc(1, sizeof(*sc));
	struct kf_can_iface st;
	size_t i;

	sc->cache = kf_xcalloc(1, sizeof(*sc->cache));
	*ret_scan = sc;
	if (!reg)
		return 0;	/* nothing says where the flash tool is */
	for (i = 0; i < reg->n_boards; i++)
		if (uses_can(&reg->boards[i]) && reg->boards[i].interface)
			add_bus(sc, reg->boards[i].interface);
	if (!bus_of(sc, KF_CAN_INTERFACE) &&
	    kf_can_iface_read(ctx->ops, KF_CAN_INTERFACE, &st) == 0 &&
	    st.state != KF_CAN_MISSING && st.is_can)
		add_bus(sc, KF_CAN_INTERFACE);
	for (i = 0; i < sc->n; i++) {
		ask_bus(ctx, &reg->settings, &sc->bus[i]);
		if (sc->bus[i].err == -EINTR) {
			kf_error_set(err, KF_EINTERRUPTED, "interrupted while asking %s for "
				     "its nodes", sc->bus[i].iface);
			can_scan_free(sc);
			*ret_scan = NULL;
			return -EINTR;
		}
	}
	*ret_scan = sc;
	return 0;
}

static const struct kf_can_node *node_on(const struct can_bus *bus, const char *uuid)
{
	size_t i;

	for (i = 0; bus && uuid && i < bus->n; i++)
		if (strcmp(bus->nodes[i].uuid, uuid) == 0)
			return &bus->nodes[i];
	return NULL;
}

static void where_node(struct kf_where *at, const struct kf_board *b, enum kf_mode mode,
		       bool held)
{
	kf_where_release(at);
	at->node = kf_xstrdup(b->canbus_uuid);
	at->label = kf_asprintf("%s on %s%s", b->canbus_uuid, b->interface,
				held ? " (held by Klipper)" : "");
	at->mode = mode;
	at->port = kf_xstrdup(b->interface);
	at->id = kf_xstrdup(b->canbus_uuid);
	at->held = held;
}

/* Bridge board b is what its interface is on, running Klipper: udev
 * shows the interface under a Klipper USB-to-CAN bridge of b's MCU. */
static bool bridge_here(const struct kf_board *b, const struct can_bus *bus)
{
	return b->link == KF_LINK_BRIDGE && bus && kf_can_is_klipper_bridge(&bus->usb, b->mcu);
}

/* Why the bus of b cannot be used now: 0, or KF_EFAILED with err. */
static int bus_problem(const struct kf_board *b, const struct can_bus *bus,
		       struct kf_error *err)
{
	if (!bus || bus->err == 0) {
		if (bus && bus->st.state == KF_CAN_MISSING) {
			kf_error_set(err, KF_EFAILED, "%s: its CAN interface %s does not "
				     "exist", b->key, b->interface);
			kf_error_cause(err, "the USB-CAN adapter or the bridge board is not "
				       "plugged in, or not running");
			kf_error_step(err, KF_CMD("ip -brief link show"));
			return KF_EFAILED;
		}
		if (bus && bus->st.state == KF_CAN_DOWN) {
			kf_error_set(err, KF_EFAILED, "%s: its CAN interface %s is down",
				     b->key, b->interface);
			kf_error_step(err, KF_CMD("sudo ip link set %s up type can bitrate "
					      "1000000") "   (the bitrate of your boards' configs)",
				      b->interface);
			return KF_EFAILED;
		}
		return 0;
	}
	kf_error_set(err, KF_EFAILED, "%s: cannot ask %s for its nodes: %s", b->key,
		     b->interface, bus->why ? bus->why : strerror(-bus->err));
	kf_error_errno(err, bus->err);
	kf_error_step(err, KF_CMD("kflash doctor") "   (checks the interface and "
		      "flashtool)");
	return KF_EFAILED;
}

/* Whether a Klipper config on this host names uuid (asked of Moonraker
 * once a scan). */
static bool held_by_klipper(struct kf_ctx *ctx, const struct kf_registry *reg,
			    struct can_cache *c, const char *uuid)
{
	size_t i, k;

	if (!c->asked) {
		kf_instances_find(ctx->ops, &reg->settings, &c->is);
		c->asked = true;
	}
	for (i = 0; i < c->is.n; i++)
		for (k = 0; c->is.v[i].serials_known && k < c->is.v[i].n_serials; k++)
			if (strcasecmp(c->is.v[i].serials[k], uuid) == 0)
				return true;
	return false;
}

static int can_locate(struct kf_ctx *ctx, struct kf_registry *reg, struct kf_board *b,
		      const void *scan, bool after_reset, struct kf_where *at,
		      struct kf_error *err)
{
	const struct can_scan *sc = scan;
	const struct can_bus *bus = bus_of(sc, b->interface);
	const struct kf_can_node *n;
	int r = bus_problem(b, bus, err);

	if (r < 0)
		return r;
	n = node_on(bus, b->canbus_uuid);
	if (n) {
		where_node(at, b, n->mode, false);
		return 0;
	}
	/* it was held by Klipper when last seen, and nothing reset it since:
	 * it stays silent after Klipper stops too */
	if (!after_reset && at->held && at->node && strcmp(at->node, b->canbus_uuid) == 0)
		return 0;
	if (!after_reset && (bridge_here(b, bus) ||
			     held_by_klipper(ctx, reg, sc->cache, b->canbus_uuid))) {
		where_node(at, b, KF_MODE_KLIPPER, true);
		return 0;
	}
	kf_error_set(err, KF_EFAILED, "%s (CAN UUID %s) does not answer on %s", b->key,
		     b->canbus_uuid, b->interface);
	if (after_reset)
		kf_error_cause(err, "it was asked into Katapult and did not answer: a "
			       "txqueuelen below %d, a bitrate other than its config's or "
			       "a bus without its 120 ohm terminations", KF_CAN_MIN_TXQUEUELEN);
	else
		kf_error_cause(err, "a node answers only while no Klipper holds it, and "
			       "no Klipper config here names this UUID");
	kf_error_step(err, KF_CMD("kflash doctor") "   (the interface's txqueuelen and "
		      "bitrate)");
	kf_error_step(err, KF_CMD("%s %s/scripts/flashtool.py -i %s -q")
		      "   (the nodes that answer)",
		      reg->settings.python, reg->settings.katapult_dir, b->interface);
	return KF_EFAILED;
}

static char **can_tool_args(const struct kf_where *w)
{
	char **argv = kf_xcalloc(5, sizeof(*argv));

	argv[0] = kf_xstrdup("-i");
	argv[1] = kf_xstrdup(w->port);
	argv[2] = kf_xstrdup("-u");
	argv[3] = kf_xstrdup(w->node);
	return argv;
}

/* Klipper's make flash reaches USB and serial devices only */
static char *can_make_flash_device(const struct kf_where *w)
{
	(void)w;
	return NULL;
}

static void can_sight(const struct kf_board *b, const void *scan, struct kf_sighting *ret)
{
	const struct can_scan *sc = scan;
	const struct can_bus *bus = bus_of(sc, b->interface);
	const struct kf_can_node *n = node_on(bus, b->canbus_uuid);

	memset(ret, 0, sizeof(*ret));
	if (n) {
		where_node(&ret->at, b, n->mode, false);
		ret->matches = 1;
	} else if (bridge_here(b, bus)) {
		/* silent on its own bus while Klipper holds it; on USB it is
		 * the bridge that carries the bus */
		where_node(&ret->at, b, KF_MODE_KLIPPER, true);
		free(ret->at.label);
		ret->at.label = kf_asprintf("%s, the USB-to-CAN bridge of %s",
					    b->canbus_uuid, b->interface);
		ret->matches = 1;
	} else if (bus && !bus->err && bus->st.state == KF_CAN_UP) {
		ret->maybe_note = kf_asprintf("not heard on %s: a node answers only while "
					      "no Klipper holds it (stop Klipper, or see "
					      "Klipper's own log)", b->interface);
	} else {
		ret->maybe_note = kf_asprintf("its CAN interface %s is %s", b->interface,
					      !bus || bus->st.state == KF_CAN_MISSING
					      ? "not there" : bus->err ? "unreadable" : "down");
	}
}

static const struct kf_board *board_with_uuid(const struct kf_registry *reg, const char *u)
{
	size_t i;

	for (i = 0; i < reg->n_boards; i++)
		if (reg->boards[i].canbus_uuid && strcmp(reg->boards[i].canbus_uuid, u) == 0)
			return &reg->boards[i];
	return NULL;
}

static void seen_node(struct kf_seen *s, const struct can_bus *bus,
		      const struct kf_can_node *n)
{
	memset(s, 0, sizeof(*s));
	s->tr = &kf_transport_can;
	s->dev = n;
	s->id = kf_asprintf("%s:%s", bus->iface, n->uuid);
	s->label = kf_asprintf("CAN node %s on %s", n->uuid, bus->iface);
	s->mode = n->mode;
	if (n->mode == KF_MODE_OTHER)
		s->blocked = kf_xstrdup("it answers as neither Klipper nor Katapult");
	s->json = json_pack("{s:s, s:s, s:s, s:s?}", "path", s->id, "interface", bus->iface,
			    "canbus_uuid", n->uuid, "mode", kf_mode_name(n->mode));
	if (s->blocked)
		json_object_set_new(s->json, "reason", json_string(s->blocked));
}

static void can_unclaimed(const struct kf_registry *reg, const void *scan,
			  struct kf_seen **ret, size_t *ret_n)
{
	const struct can_scan *sc = scan;
	struct kf_seen *v = NULL;
	size_t n = 0, i, k;

	for (i = 0; i < sc->n; i++)
		for (k = 0; k < sc->bus[i].n; k++) {
			if (board_with_uuid(reg, sc->bus[i].nodes[k].uuid))
				continue;
			v = kf_xrealloc(v, (n + 1) * sizeof(*v));
			seen_node(&v[n++], &sc->bus[i], &sc->bus[i].nodes[k]);
		}
	*ret = v;
	*ret_n = n;
}

/* "can0:0a1b2c3d4e5f" (kflash add --can-uuid U [--interface IF]) or a bare
 * UUID on can0. A node not heard can be registered too (Klipper may hold
 * it): its mode is then unknown and the MCU must be given. */
static int can_find(struct kf_ctx *ctx, const struct kf_registry *reg, const void *scan,
		    const char *arg, struct kf_seen *ret, struct kf_error *err)
{
	const struct can_scan *sc = scan;
	const char *colon = strchr(arg, ':');
	char *iface = colon ? kf_xstrndup(arg, (size_t)(colon - arg))
			    : kf_xstrdup(KF_CAN_INTERFACE), *uuid = NULL;
	const struct can_bus *bus;
	const struct kf_can_node *n;
	struct kf_error e = KF_ERROR_INIT;
	int r = -ENOENT;

	(void)ctx;
	if (kf_canbus_uuid_parse(colon ? colon + 1 : arg, &uuid, &e) < 0 ||
	    kf_interface_check(iface, &e) < 0) {
		/* not a CAN name: another transport's, or none */
		kf_error_set(err, KF_EINPUT, "no CAN node is called '%s'", arg);
		goto out;
	}
	if (board_with_uuid(reg, uuid)) {
		kf_error_set(err, KF_EINPUT, "CAN UUID %s is registered already (as '%s')",
			     uuid, board_with_uuid(reg, uuid)->key);
		kf_error_step(err, KF_CMD("kflash list"));
		r = KF_EINPUT;
		goto out;
	}
	bus = bus_of(sc, iface);
	n = node_on(bus, uuid);
	memset(ret, 0, sizeof(*ret));
	ret->tr = &kf_transport_can;
	ret->id = kf_asprintf("%s:%s", iface, uuid);
	ret->label = kf_asprintf("CAN node %s on %s", uuid, iface);
	ret->mode = n ? n->mode : KF_MODE_OTHER;
	ret->json = json_pack("{s:s, s:s, s:s}", "path", ret->id, "interface", iface,
			      "canbus_uuid", uuid);
	r = 0;
out:
	kf_error_release(&e);
	free(iface);
	free(uuid);
	return r;
}

static int can_enroll(const struct kf_registry *reg, const void *scan,
		      const struct kf_seen *s, struct kf_board *b, char **ret_note,
		      struct kf_error *err)
{
	const char *colon = strchr(s->id, ':');

	(void)reg;
	(void)scan;
	(void)err;
	b->link = KF_LINK_CAN;
	b->interface = kf_xstrndup(s->id, (size_t)(colon - s->id));
	b->canbus_uuid = kf_xstrdup(colon + 1);
	b->pattern = kf_xstrdup("");
	b->mcu = s->mcu ? kf_xstrdup(s->mcu) : NULL;
	*ret_note = s->mode == KF_MODE_OTHER
		? kf_asprintf("%s did not answer on %s now (a node Klipper holds is "
			      "silent); kflash flash finds it once Klipper lets it go",
			      b->canbus_uuid, b->interface)
		: NULL;
	return 0;
}

/* The bus is asked again for the returns (there is no event to wait for);
 * one answer serves every board on that bus that flashed before it */
struct can_watch {
	struct can_bus last;	/* the newest answer */
	size_t seq;		/* answers so far */
};

static int can_watch_open(struct kf_ctx *ctx, void **ret_watch, struct kf_error *err)
{
	(void)ctx;
	(void)err;
	*ret_watch = kf_xcalloc(1, sizeof(struct can_watch));
	return 0;
}

static void can_watch_close(struct kf_ctx *ctx, void *watch)
{
	struct can_watch *w = watch;

	(void)ctx;
	if (!w)
		return;
	bus_release(&w->last);
	free(w);
}

static size_t can_watch_mark(struct kf_ctx *ctx, void *watch)
{
	struct can_watch *w = watch;

	(void)ctx;
	return w ? w->seq : 0;
}

/* Asks the bus until b answers as Klipper (its new firmware started,
 * unassigned until Klipper starts) or the deadline. A bridge's own bus is
 * gone while it flashes: a missing interface is "not yet". */
static int can_await_return(struct kf_ctx *ctx, struct kf_registry *reg,
			    struct kf_board *b, void *watch, size_t mark,
			    int64_t deadline, struct kf_where *at,
			    enum kf_return *ret, struct kf_error *err)
{
	struct can_watch *w = watch;
	bool katapult = false;

	(void)err;
	*ret = KF_RETURN_NONE;
	for (;;) {
		const struct kf_can_node *n = NULL;

		/* an answer given after b was flashed counts */
		if (w && w->seq > mark && w->last.iface && strcmp(w->last.iface, b->interface) == 0)
			n = node_on(&w->last, b->canbus_uuid);
		if (n && n->mode == KF_MODE_KLIPPER) {
			where_node(at, b, KF_MODE_KLIPPER, false);
			*ret = KF_RETURN_BACK;
			return 0;
		}
		katapult |= n && n->mode == KF_MODE_KATAPULT;
		if (kf_os_now(ctx->ops) >= deadline)
			break;
		if (w) {
			bus_release(&w->last);
			w->last.iface = kf_xstrdup(b->interface);
			ask_bus(ctx, &reg->settings, &w->last);
			if (w->last.err == -EINTR)
				return -EINTR;
			w->seq++;
			mark = mark < w->seq - 1 ? mark : w->seq - 1;
		}
		/* the query listens 2 s itself; a bus that is not there yet
		 * comes back with its bridge: sysfs is looked at every 50 ms
		 * (the kernel's netlink event is not in the ops table) */
		if ((!w || w->last.st.state != KF_CAN_UP) &&
		    kf_os_sleep_until(ctx->ops, kf_os_now(ctx->ops) + 50) == -EINTR)
			return -EINTR;
	}
	if (katapult)
		*ret = KF_RETURN_BOOTLOADER;
	return 0;
}

/* A node running Klipper is asked into Katapult first: flashtool's status
 * request (the application-start check) does not ask it. */
static int can_to_bootloader(struct kf_ctx *ctx, struct kf_registry *reg,
			     struct kf_board *b, struct kf_where *at, struct kf_error *err)
{
	const char *args[] = { "-i", at->port, "-u", at->node, "-r", NULL };
	struct kf_tool_run t;
	int r;

	if (at->mode == KF_MODE_KATAPULT)
		return 0;
	r = kf_flashtool_cmd(ctx, &reg->settings, args, &t);
	if (r == 0 && t.exit.kind == KF_EXIT_INTERRUPTED)
		r = -EINTR;
	else if (r == 0 && !kf_exit_ok(&t.exit)) {
		char how[64];

		kf_exit_describe(&t.exit, how, sizeof(how));
		kf_error_set(err, KF_EFAILED, "%s: asking it into Katapult failed: "
			     "flashtool %s", b->key, how);
		kf_error_command(err, "%s", t.command);
		kf_error_cause(err, "%s", t.output.len ? t.output.data : "(no output)");
		r = KF_EFAILED;
	} else if (r < 0) {
		kf_error_set(err, KF_EFAILED, "%s: cannot run flashtool: %s", b->key,
			     strerror(-r));
		kf_error_errno(err, r);
		r = KF_EFAILED;
	}
	kf_tool_run_release(&t);
	return r;
}

/* A bridge board carries its bus, and flashtool's bridge path reboots it
 * into Katapult on USB itself. */
static unsigned can_flash_traits(const struct kf_board *b)
{
	return b->link == KF_LINK_BRIDGE ? KF_FLASH_CARRIES_BUS | KF_FLASH_TOOL_ENTERS : 0;
}

const struct kf_transport kf_transport_can = {
	.name = "can",
	.stable = true,
	.scan_check = "the CAN interfaces the boards use answer Katapult's query",
	.scan_fix = "ip -details link show",
	.scan = can_scan,
	.scan_free = can_scan_free,
	.locate = can_locate,
	.tool_args = can_tool_args,
	.make_flash_device = can_make_flash_device,
	.sight = can_sight,
	.unclaimed = can_unclaimed,
	.find = can_find,
	.enroll = can_enroll,
	.watch_open = can_watch_open,
	.watch_close = can_watch_close,
	.watch_mark = can_watch_mark,
	.await_return = can_await_return,
	.to_bootloader = can_to_bootloader,
	.flash_traits = can_flash_traits,
};
