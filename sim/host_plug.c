/* host_plug.c - kflash-simhost's plug, unplug and mode changes: a board's enumerations and the resets between them. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

static const char *sim_mode_name(const struct sim_hboard *b, enum sim_mode mode)
{
	if (b->fx.kind == SIM_KIND_FIXED)
		return "fixed";
	return mode == SIM_MODE_KLIPPER ? "klipper" : "katapult";
}

static int sim_tty_in_use(const struct sim_host *h, const char *tty, const struct sim_hboard *self)
{
	for (int i = 0; i < h->nboards; i++) {
		const struct sim_hboard *o = &h->boards[i];

		if (o == self)
			continue;
		if (o->tty[0] && !strcmp(o->tty, tty))
			return 1;
		/* a pinned name is reserved even while its board is away */
		if (o->fx.tty && !strcmp(o->fx.tty, tty))
			return 1;
	}
	return 0;
}

static void sim_pick_tty(struct sim_hboard *b)
{
	const char *prefix = sim_driver_is_acm(b->fx.driver) ? "ttyACM" : "ttyUSB";

	if (b->fx.tty) {
		snprintf(b->tty, sizeof(b->tty), "%s", b->fx.tty);
		return;
	}
	/* The kernel hands out the lowest free minor, so a board that
	 * re-enumerates alone gets its old name back. */
	for (unsigned n = 0; n < 256; n++) {
		snprintf(b->tty, sizeof(b->tty), "%s%u", prefix, n);
		if (!sim_tty_in_use(b->host, b->tty, b))
			return;
	}
}

int sim_next_devnum(struct sim_host *h, int bus)
{
	int n = h->devnum_next[bus];

	h->devnum_next[bus] = n >= 127 ? 3 : n + 1;
	return n;
}

int sim_mkdirs(const char *dir)
{
	return g_mkdir_with_parents(dir, 0755) < 0 ? -errno : 0;
}

static void sim_rmdir_empty(struct sim_host *h, const char *rel)
{
	char *p = g_build_filename(h->root, "dev", rel, NULL);

	(void)rmdir(p);
	g_free(p);
}

void sim_forget_paths(struct sim_hboard *b)
{
	for (int i = 0; i < b->nsyspaths; i++)
		g_clear_pointer(&b->syspaths[i], g_free);
	b->nsyspaths = 0;
	g_clear_pointer(&b->usb_syspath, g_free);
	g_clear_pointer(&b->links[0], g_free);
	g_clear_pointer(&b->links[1], g_free);
	g_clear_pointer(&b->ptymap, g_free);
}

/* A udev link also names the tty for umockdev's ioctl routing: the preload
 * looks up $UMOCKDEV_DIR/ioctl/<the path as opened>, so without this a tool
 * that opens a by-path or by-id link (flash_usb.py hands one to Katapult's
 * flashtool) would miss the board's handler, which on a real host is the
 * same tty. ADD false takes the alias away again. */
static void sim_ioctl_alias(struct sim_host *h, const char *link, const char *tty, bool add)
{
	char *alias = g_build_filename(h->root, "ioctl", "dev", link, NULL);
	char *target = g_build_filename(h->root, "ioctl", "dev", tty, NULL);
	char *dir = g_path_get_dirname(alias);

	(void)unlink(alias);
	if (add) {
		(void)sim_mkdirs(dir);
		if (symlink(target, alias) < 0)
			sim_debug("ioctl alias %s: %s", link, strerror(errno));
	}
	g_free(alias);
	g_free(target);
	g_free(dir);
}

/* B's tty: the pty, its node, the .ptymap entry, udev's links and the
 * ioctl handler. 0 or -errno, with the pty closed again. */
static int sim_plug_tty(struct sim_hboard *b)
{
	struct sim_host *h = b->host;
	char *node, *p;
	char pts[64];
	GError *err = NULL;
	UMockdevIoctlBase *handler;
	int r;

	/* the tty node: a pty of ours, see host.h */
	b->master = sim_pump_open_master(pts, sizeof(pts));
	if (b->master < 0) {
		r = b->master;
		sim_log("%s: cannot open a pty: %s", b->fx.name, strerror(-r));
		return r;
	}
	node = g_build_filename(h->root, "dev", b->tty, NULL);
	(void)unlink(node);
	if (symlink(pts, node) < 0) {
		r = -errno;
		sim_log("%s: cannot create /dev/%s: %s", b->fx.name, b->tty, strerror(-r));
		close(b->master);
		b->master = -1;
		g_free(node);
		return r;
	}
	/* the dev/.ptymap entry umockdev writes for the ptys it makes itself
	 * (pts name -> emulated major:minor), so the preload treats ours alike */
	p = g_strdup_printf("%s/dev/.ptymap", h->root);
	(void)sim_mkdirs(p);
	g_free(p);
	{
		char *enc = g_strdup(pts);

		for (char *c = enc; *c; c++)
			if (*c == '/')
				*c = '_';
		b->ptymap = g_strdup_printf("%s/dev/.ptymap/%s", h->root, enc);
		g_free(enc);
	}
	p = g_strdup_printf("%d:%d", sim_driver_is_acm(b->fx.driver) ? 166 : 188, atoi(b->tty + 6));
	(void)unlink(b->ptymap);
	if (symlink(p, b->ptymap) < 0)
		sim_debug("%s: ptymap: %s", b->fx.name, strerror(errno));
	g_free(p);

	/* udev's links, relative like udev makes them */
	for (int i = 0; i < 2; i++) {
		char *link = g_build_filename(h->root, "dev", b->links[i], NULL);
		char *dir = g_path_get_dirname(link);
		char *target = g_strdup_printf("../../%s", b->tty);

		(void)sim_mkdirs(dir);
		(void)unlink(link);
		if (symlink(target, link) < 0)
			sim_log("%s: cannot link /dev/%s: %s", b->fx.name, b->links[i], strerror(errno));
		sim_ioctl_alias(h, b->links[i], b->tty, true);
		g_free(link);
		g_free(dir);
		g_free(target);
	}

	handler = sim_pump_new_handler(b);
	g_atomic_int_set(&b->modem, 0);
	g_atomic_pointer_set(&b->handler, handler);
	p = g_strdup_printf("/dev/%s", b->tty);
	if (!umockdev_testbed_attach_ioctl(h->tb, p, handler, &err)) {
		sim_log("%s: cannot attach the ioctl handler to %s: %s", b->fx.name, p,
			err->message);
		g_clear_error(&err);
		/* still usable for plain reads and writes */
		g_atomic_pointer_set(&b->handler, NULL);
		g_object_unref(handler);
	}
	g_free(p);

	sim_pump_reset(b);
	g_free(node);
	return 0;
}

/* Enumerate board B in MODE. Returns 0 or -errno; on failure nothing of it is left.
 *
 * umockdev 0.17's add_from_string() sends the "add" uevents itself, parents
 * first, so everything a listener looks for when it hears of the tty (the
 * node, the by-id and by-path links, a working ioctl handler) is put in
 * place before the devices are added; udev too creates the links before it
 * passes the event on. */
int sim_plug(struct sim_hboard *b, enum sim_mode mode, bool announce)
{
	struct sim_host *h = b->host;
	struct sim_ident id;
	char *desc;
	GError *err = NULL;
	int r;

	if (b->core)
		sim_board_set_mode(b->core, mode);
	b->mode = mode;
	sim_ident_of(b, mode, &id);
	/* a fresh address per enumeration, as the host controller hands out */
	if (!b->devnum && b->fx.devnum) {
		b->devnum = b->fx.devnum;
		if (h->devnum_next[b->fx.busnum] <= b->devnum)
			h->devnum_next[b->fx.busnum] = b->devnum + 1;
	} else {
		b->devnum = sim_next_devnum(h, b->fx.busnum);
	}
	if (id.net)
		b->tty[0] = '\0';	/* a bridge in Klipper mode has none */
	else
		sim_pick_tty(b);
	desc = sim_udev_desc_board(b, &id);
	sim_debug("%s: enumerating as %s:%s on %s%s%s", b->fx.name, id.vid, id.pid, b->tty,
		  sim_verbose > 1 ? "\n" : "", sim_verbose > 1 ? desc : "");

	if (!id.net) {
		r = sim_plug_tty(b);
		if (r < 0)
			goto out_forget;
	}

	if (!umockdev_testbed_add_from_string(h->tb, desc, &err)) {
		sim_log("%s: cannot add devices: %s", b->fx.name, err->message);
		g_error_free(err);
		r = -EINVAL;
		/* take back what was made so far; remove_device() of a path that
		 * was never added only complains */
		sim_unplug_files(b);
		goto out_forget;
	}
	b->state = SIM_ST_PRESENT;
	if (announce)
		sim_event(h, b->fx.name, "enumerate %s", sim_mode_name(b, mode));
	if (id.net)
		sim_can_bridge_link(b, true);
	else
		sim_debug("%s: /dev/%s (%s)", b->fx.name, b->tty, b->links[0]);
	g_free(desc);
	return 0;

out_forget:
	sim_forget_paths(b);
	b->tty[0] = '\0';
	g_free(desc);
	return r;
}

/* Undo what sim_plug() made outside sysfs: handler, pty, links. */
void sim_unplug_files(struct sim_hboard *b)
{
	struct sim_host *h = b->host;
	UMockdevIoctlBase *handler = g_atomic_pointer_get(&b->handler);
	char *p;

	g_atomic_pointer_set(&b->handler, NULL);
	if (handler) {
		p = g_strdup_printf("/dev/%s", b->tty);
		if (!umockdev_testbed_detach_ioctl(h->tb, p, NULL))
			sim_debug("%s: detach_ioctl %s failed", b->fx.name, p);
		g_free(p);
		/* clients still connected hold their own reference */
		g_object_unref(handler);
	}
	/* closing the master hangs up the clients' tty, as an unplug does */
	if (b->master >= 0) {
		close(b->master);
		b->master = -1;
	}
	for (int i = 0; i < 2; i++) {
		if (!b->links[i])
			continue;
		p = g_build_filename(h->root, "dev", b->links[i], NULL);
		(void)unlink(p);
		g_free(p);
		sim_ioctl_alias(h, b->links[i], b->tty, false);
	}
	/* udev removes directories it emptied */
	sim_rmdir_empty(h, "serial/by-id");
	sim_rmdir_empty(h, "serial/by-path");
	sim_rmdir_empty(h, "serial");
	if (b->ptymap)
		(void)unlink(b->ptymap);
	p = g_build_filename(h->root, "dev", b->tty, NULL);
	(void)unlink(p);
	g_free(p);
	b->npending = 0;
	b->hup = true;
}

/* Take board B off the bus the way a USB reset does: the tty hangs up,
 * udev drops the links, and the devices go with "remove" uevents, the tty
 * first. */
void sim_unplug(struct sim_hboard *b)
{
	struct sim_host *h = b->host;
	char *p;

	if (sim_is_bridge(b, b->mode))
		sim_can_bridge_link(b, false);	/* gs_usb's can0 goes first */
	sim_unplug_files(b);
	/* the uevent sender reads the device from sysfs: send before removing */
	for (int i = 0; i < b->nsyspaths; i++)
		umockdev_testbed_uevent(h->tb, b->syspaths[i], "remove");
	umockdev_testbed_uevent(h->tb, b->usb_syspath, "remove");
	for (int i = 0; i < b->nsyspaths; i++)
		umockdev_testbed_remove_device(h->tb, b->syspaths[i]);
	umockdev_testbed_remove_device(h->tb, b->usb_syspath);
	/* remove_device() takes the tty's node but not the usbfs one */
	p = g_strdup_printf("%s/dev/bus/usb/%03d/%03d", h->root, b->fx.busnum, b->devnum);
	(void)unlink(p);
	g_free(p);
	sim_forget_paths(b);
	b->tty[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* Resets                                                               */

void sim_schedule_reset(struct sim_hboard *b, enum sim_mode next)
{
	if (b->state != SIM_ST_PRESENT)
		return;
	b->state = SIM_ST_LEAVING;
	b->next_mode = next;
	b->stay_away = false;
	b->hang = false;
	b->deadline = sim_now_ms() + b->fx.disconnect_ms;
}

/* The CPU of board B faulted starting its application (WHY from
 * sim_board_app_problem(): "WORD 0xADDR: explanation"): it stays off the
 * bus, event "hang WORD 0xADDR". */
static void sim_hang(struct sim_hboard *b, const char *why)
{
	const char *colon = strchr(why, ':');

	sim_event(b->host, b->fx.name, "hang %.*s", colon ? (int)(colon - why) : (int)strlen(why),
		  why);
	sim_debug("%s: the application does not start (%s): the board stays off the bus",
		  b->fx.name, why);
	b->state = SIM_ST_HUNG;
	b->hang = false;
}

/* Bring B back on the bus in MODE. Coming back as Klipper means the CPU
 * starts the application in flash, which may fault instead. */
static int sim_come_back(struct sim_hboard *b, enum sim_mode mode)
{
	const char *why = NULL;

	if (mode == SIM_MODE_KLIPPER && b->core)
		why = sim_board_app_problem(b->core);
	if (why) {
		sim_hang(b, why);
		return 0;
	}
	return sim_plug(b, mode, true);
}

/* Deadlines: a board that asked for a reset leaves the bus (and stays
 * away, hangs or comes back later); one on its way back enumerates. */
void sim_plug_tick(struct sim_hboard *b, int64_t now)
{
	if (b->state == SIM_ST_LEAVING && now >= b->deadline) {
		sim_event(b->host, b->fx.name, "disconnect %s", sim_mode_name(b, b->mode));
		sim_unplug(b);
		b->state = b->stay_away ? SIM_ST_UNPLUGGED : SIM_ST_ABSENT;
		b->stay_away = false;
		b->deadline = now + b->fx.reenumerate_ms;
		if (b->hang)
			sim_hang(b, sim_board_app_problem(b->core));
	} else if (b->state == SIM_ST_ABSENT && now >= b->deadline) {
		if (sim_come_back(b, b->next_mode) < 0)
			b->state = SIM_ST_DEAD;
	}
}

/* ------------------------------------------------------------------ */
/* What the control commands do                                         */

/* The mode the board would come back in: the firmware now running. */
static enum sim_mode sim_running_mode(const struct sim_hboard *b)
{
	return b->state == SIM_ST_PRESENT ? b->mode : b->next_mode;
}

/* "unplug NAME": off the bus at once, whatever it was doing. */
void sim_plug_cmd_unplug(struct sim_hboard *b)
{
	if (b->state == SIM_ST_UNPLUGGED || b->state == SIM_ST_HUNG) {
		sim_log("control: unplug %s: not plugged in%s", b->fx.name,
			b->state == SIM_ST_HUNG ? " (it hung starting its application)" : "");
		return;
	}
	b->next_mode = sim_running_mode(b);
	sim_event(b->host, b->fx.name, "unplug");
	if (b->master >= 0 || b->usb_syspath)
		sim_unplug(b);
	b->state = SIM_ST_UNPLUGGED;
	b->stay_away = false;
}

/* "plug NAME": back in the mode it was in. A hung board's CPU stays
 * locked up (USB does not reset it): nothing enumerates. */
void sim_plug_cmd_plug(struct sim_hboard *b)
{
	if (b->state != SIM_ST_UNPLUGGED && b->state != SIM_ST_DEAD &&
	    b->state != SIM_ST_HUNG) {
		sim_log("control: plug %s: already plugged in", b->fx.name);
		return;
	}
	sim_event(b->host, b->fx.name, "plug");
	if (b->state == SIM_ST_HUNG) {
		sim_log("control: plug %s: it hung starting its application and stays silent; "
			"'mode %s katapult' resets it into the bootloader", b->fx.name, b->fx.name);
		return;
	}
	if (sim_come_back(b, b->next_mode) < 0)
		sim_log("control: plug %s: failed to enumerate", b->fx.name);
}

/* "mode NAME klipper|katapult": the board resets into MODE now (disconnect
 * at once, back after reenumerate_ms); an unplugged board only takes MODE
 * as the one it comes back in. */
void sim_plug_cmd_mode(struct sim_hboard *b, enum sim_mode mode)
{
	struct sim_host *h = b->host;

	if (b->fx.kind == SIM_KIND_FIXED) {
		sim_log("control: mode %s: a kind=fixed device has no modes", b->fx.name);
		return;
	}
	sim_event(h, b->fx.name, "mode %s", mode == SIM_MODE_KATAPULT ? "katapult" : "klipper");
	b->next_mode = mode;
	b->stay_away = false;
	switch (b->state) {
	case SIM_ST_PRESENT:
	case SIM_ST_LEAVING:
		sim_event(h, b->fx.name, "disconnect %s", sim_mode_name(b, b->mode));
		sim_unplug(b);
		b->state = SIM_ST_ABSENT;
		b->deadline = sim_now_ms() + b->fx.reenumerate_ms;
		break;
	case SIM_ST_DEAD:
	case SIM_ST_HUNG:		/* a reset: the CPU runs again */
		b->state = SIM_ST_ABSENT;
		b->deadline = sim_now_ms() + b->fx.reenumerate_ms;
		break;
	case SIM_ST_ABSENT:		/* already on its way back: now in MODE */
	case SIM_ST_UNPLUGGED:
		break;
	}
}
