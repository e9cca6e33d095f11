/* transport_usb.c - boards on USB serial: udev's ttys, by-id names, the
 * USB port a board keeps across its reset, and its udev "add" on return. */
#include <errno.h>
#include <string.h>

#include "kflash/proc.h"
#include "kflash/transport.h"
#include "kflash/util.h"

static int usb_scan(struct kf_ctx *ctx, const struct kf_registry *reg, void **ret_scan,
		    struct kf_error *err)
{
	struct kf_devlist *devs = kf_xcalloc(1, sizeof(*devs));
	int r = kf_discover(ctx->ops, devs, err);

	(void)reg;	/* udev lists every serial device, registered or not */

	if (r < 0) {
		free(devs);
		*ret_scan = NULL;
		return r;
	}
	*ret_scan = devs;
	return 0;
}

static void usb_scan_free(void *scan)
{
	if (!scan)
		return;
	kf_devlist_release(scan);
	free(scan);
}

/* Whether d is board b arriving in Katapult, for a board whose Katapult
 * name its pattern misses: kflash sent it to its bootloader from the USB
 * port it was just seen at in Klipper, and a Katapult device of its MCU
 * came up at that port that no other registered board is. */
static bool handover(const struct kf_registry *reg, const struct kf_board *b,
		     const struct kf_where *was, const struct kf_device *d)
{
	size_t i;

	if (was->mode != KF_MODE_KLIPPER || !was->port || !d->port ||
	    d->mode != KF_MODE_KATAPULT || strcmp(d->port, was->port) != 0 ||
	    strcmp(d->mcu, b->mcu) != 0 || !kf_board_port_only(b))
		return false;
	/* it showed another serial in Katapult before: not this board */
	if (b->katapult_serial && strcmp(b->katapult_serial, d->serial) != 0)
		return false;
	for (i = 0; i < reg->n_boards; i++)
		if (&reg->boards[i] != b &&
		    kf_board_match(&reg->boards[i], d) == KF_MATCH_YES)
			return false;
	return true;
}

/* Keeps what identifies a port-only board in Katapult: its port and the
 * serial it showed there. Saved at once; a failed save costs only the
 * learning. */
static void learn(struct kf_ctx *ctx, struct kf_registry *reg, struct kf_board *b,
		  const struct kf_device *d)
{
	struct kf_error e = KF_ERROR_INIT;
	bool changed = false;

	if (!kf_board_port_only(b))
		return;
	if (d->mode == KF_MODE_KATAPULT &&
	    (!b->katapult_serial || strcmp(b->katapult_serial, d->serial) != 0)) {
		free(b->katapult_serial);
		b->katapult_serial = kf_xstrdup(d->serial);
		changed = true;
		kf_out_info(ctx->out, "%s shows serial %s in Katapult; kflash "
			    "remembers it", b->key, d->serial);
	}
	if (d->port && (!b->port || strcmp(b->port, d->port) != 0)) {
		free(b->port);
		b->port = kf_xstrdup(d->port);
		changed = true;
	}
	if (changed && kf_registry_save(ctx->ops, reg, &e) < 0)
		kf_out_warn(ctx->out, "%s (what kflash learned about %s is lost)",
			    e.what ? e.what : "cannot save the registry", b->key);
	kf_error_release(&e);
	free(e.note);
}

static void where_from(struct kf_where *at, const struct kf_device *d)
{
	char *id = at->id;

	/* the board lock's name is the first serial kflash saw it with */
	at->id = NULL;
	kf_where_release(at);
	at->node = kf_xstrdup(d->tty.devnode);
	at->label = kf_xstrdup(d->tty.by_id ? d->tty.by_id : d->tty.devnode);
	at->mcu = kf_xstrdup(d->mcu);
	at->port = d->port ? kf_xstrdup(d->port) : NULL;
	at->mode = d->mode;
	at->id = id ? id : kf_xstrdup(d->serial ? d->serial : d->name);
}

/* The first connected device that is board b, or NULL; *ret_count says
 * how many are, and *ret_maybe the first only its USB port points to
 * (KF_MATCH_PORT), or NULL. */
static const struct kf_device *board_device(const struct kf_board *b,
					    const struct kf_devlist *devs,
					    size_t *ret_count,
					    const struct kf_device **ret_maybe)
{
	const struct kf_device *found = NULL, *maybe = NULL;
	size_t i, n = 0;

	for (i = 0; i < devs->n; i++) {
		enum kf_match m = kf_board_match(b, &devs->devs[i]);

		if (m == KF_MATCH_PORT && !maybe)
			maybe = &devs->devs[i];
		if (m != KF_MATCH_YES)
			continue;
		n++;
		if (!found)
			found = &devs->devs[i];
	}
	*ret_count = n;
	*ret_maybe = maybe;
	return found;
}

static int usb_locate(struct kf_ctx *ctx, struct kf_registry *reg, struct kf_board *b,
		      const void *scan, bool after_reset, struct kf_where *at,
		      struct kf_error *err)
{
	const struct kf_devlist *devs = scan;
	const struct kf_device *found, *maybe, *arrived = NULL;
	size_t i, count, n_arrived = 0;

	found = board_device(b, devs, &count, &maybe);
	for (i = 0; i < devs->n && after_reset; i++) {
		const struct kf_device *d = &devs->devs[i];

		if (kf_board_match(b, d) != KF_MATCH_YES && handover(reg, b, at, d)) {
			n_arrived++;
			arrived = d;
		}
	}
	if (count > 1) {
		kf_error_set(err, KF_EREFUSED, "%zu connected devices match %s "
			     "(pattern %s); kflash will not guess", count, b->key,
			     b->pattern);
		kf_error_step(err, KF_CMD("kflash list"));
		kf_error_step(err, KF_CMD("kflash remove %s && kflash add")
			      "   (to register it with a precise pattern)", b->key);
		return KF_EREFUSED;
	}
	if (!found && n_arrived == 1)
		found = arrived;
	if (!found && maybe) {
		char *port = kf_port_label(maybe->port);

		kf_error_set(err, KF_EREFUSED, "%s is not connected under its name; "
			     "%s at its USB port %s may be it, in Katapult, but kflash "
			     "will not flash a board it cannot be sure of", b->key,
			     maybe->name, port);
		kf_error_cause(err, "its firmware sets its own USB serial, so in "
			       "Katapult it shows its chip id, and kflash has not yet "
			       "seen %s go into Katapult", b->key);
		kf_error_step(err, "power-cycle the board so it starts Klipper, then "
			      KF_CMD("kflash flash %s") " (kflash then follows it into "
			      "Katapult and remembers it)", b->key);
		free(port);
		return KF_EREFUSED;
	}
	if (!found) {
		struct kf_buf seen = KF_BUF_INIT;

		for (i = 0; i < devs->n; i++)
			kf_buf_addf(&seen, "%s%s", seen.len ? ", " : "", devs->devs[i].name);
		kf_error_set(err, KF_EFAILED, "%s is not connected: no device "
			     "matches %s", b->key, b->pattern);
		kf_error_cause(err, "connected: %s", seen.len ? seen.data : "none");
		kf_error_step(err, "check the board's USB cable and power, then "
			      KF_CMD("kflash list"));
		kf_buf_release(&seen);
		return KF_EFAILED;
	}
	learn(ctx, reg, b, found);
	where_from(at, found);
	return 0;
}

/* ---- kflash list and kflash add --------------------------------------------- */

static const char *device_label(const struct kf_device *d)
{
	return d->tty.by_id ? d->tty.by_id : d->tty.devnode;
}

static void usb_sight(const struct kf_board *b, const void *scan,
		      struct kf_sighting *ret)
{
	const struct kf_device *maybe;
	const struct kf_device *d = board_device(b, scan, &ret->matches, &maybe);
	char *port;

	if (d) {
		where_from(&ret->at, d);
		return;
	}
	if (!maybe)
		return;
	port = kf_port_label(maybe->port);
	ret->maybe = kf_xstrdup(device_label(maybe));
	ret->maybe_note = kf_asprintf("%s at its USB port %s may be it (not flashed "
				      "before kflash has seen it go into Katapult)",
				      ret->maybe, port);
	free(port);
}

/* The registered board that is (or, by its port, may be) d, or NULL. */
static const struct kf_board *device_board(const struct kf_device *d,
					   const struct kf_registry *reg)
{
	size_t i;

	for (i = 0; i < reg->n_boards; i++)
		if (kf_board_match(&reg->boards[i], d) != KF_MATCH_NO)
			return &reg->boards[i];
	return NULL;
}

/* Not offered for registering: blocked, or a caution such as a probe in
 * its bootloader that no registered board claims. */
static const char *not_flashable(const struct kf_device *d, const struct kf_registry *reg)
{
	if (d->blocked)
		return d->blocked;
	if (d->caution && !device_board(d, reg))
		return d->caution;
	return NULL;
}

static void seen_from(struct kf_seen *s, const struct kf_device *d)
{
	memset(s, 0, sizeof(*s));
	s->tr = &kf_transport_usb;
	s->dev = d;
	s->id = kf_xstrdup(d->name);
	s->label = kf_xstrdup(device_label(d));
	s->mcu = d->mcu ? kf_xstrdup(d->mcu) : NULL;
	s->mode = d->mode;
}

static void usb_unclaimed(const struct kf_registry *reg, const void *scan,
			  struct kf_seen **ret, size_t *ret_n)
{
	const struct kf_devlist *devs = scan;
	struct kf_seen *v = kf_xcalloc(devs->n ? devs->n : 1, sizeof(*v));
	size_t i, n = 0;

	for (i = 0; i < devs->n; i++) {
		const struct kf_device *d = &devs->devs[i];
		const char *why = not_flashable(d, reg);

		if (!why && device_board(d, reg))
			continue;
		seen_from(&v[n], d);
		if (why) {
			v[n].blocked = kf_xstrdup(why);
			v[n].json = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s}",
					      "path", device_label(d), "devnode", d->tty.devnode,
					      "vid", d->tty.vid, "pid", d->tty.pid,
					      "product", d->product, "reason", why);
		} else {
			v[n].json = json_pack("{s:s, s:s, s:s, s:s, s:s}", "path",
					      device_label(d), "devnode", d->tty.devnode,
					      "mcu", d->mcu, "serial", d->serial,
					      "mode", kf_mode_name(d->mode));
		}
		n++;
	}
	*ret = v;
	*ret_n = n;
}

/* A path that is there but is a file or a directory is no device: said
 * before anything resolves it (umockdev's realpath, in the simulator,
 * cannot take one). */
static int no_device_at(struct kf_ctx *ctx, const char *arg, struct kf_error *err)
{
	enum kf_file_kind k = KF_FILE_NONE;

	if (kf_os_file_kind(ctx->ops, arg, &k, NULL) < 0 ||
	    (k != KF_FILE_REG && k != KF_FILE_DIR))
		return 0;
	kf_error_set(err, KF_EINPUT, "'%s' is a %s, not a serial device", arg,
		     k == KF_FILE_REG ? "file" : "directory");
	kf_error_step(err, KF_CMD("kflash list") "   (the connected boards, by name)");
	kf_error_step(err, KF_CMD("kflash add --device /dev/serial/by-id/NAME"));
	return KF_EINPUT;
}

/* The device the user named: by-id path or basename, or any path that
 * resolves to the same tty node; NULL when none is (err set when arg is a
 * path to something that is no device). */
static const struct kf_device *named_device(struct kf_ctx *ctx,
					    const struct kf_devlist *l, const char *arg,
					    struct kf_error *err)
{
	char *real = NULL;
	size_t i;

	for (i = 0; i < l->n; i++) {
		const struct kf_device *d = &l->devs[i];

		if (strcmp(arg, d->name) == 0 || (d->tty.by_id && strcmp(arg, d->tty.by_id) == 0) ||
		    strcmp(arg, d->tty.devnode) == 0 ||
		    (d->tty.by_path && strcmp(arg, d->tty.by_path) == 0))
			return d;
	}
	/* any other path to the same node: compare where both lead */
	if (strchr(arg, '/') && no_device_at(ctx, arg, err) < 0)
		return NULL;
	if (strchr(arg, '/') && kf_os_realpath(ctx->ops, arg, &real) == 0) {
		for (i = 0; i < l->n; i++) {
			char *node = NULL;
			bool same = kf_os_realpath(ctx->ops, l->devs[i].tty.devnode,
						   &node) == 0 && strcmp(real, node) == 0;

			free(node);
			if (same) {
				free(real);
				return &l->devs[i];
			}
		}
		free(real);
	}
	return NULL;
}

static int no_such_device(const struct kf_devlist *l, const char *arg,
			  struct kf_error *err)
{
	size_t i;
	bool any = false;

	kf_error_set(err, KF_EINPUT, "no connected serial device matches '%s'", arg);
	for (i = 0; i < l->n && !any; i++)
		any = !l->devs[i].blocked;
	kf_error_cause(err, any ? "connected Klipper/Katapult devices are listed by "
		       "kflash list" : "no Klipper or Katapult board is connected by USB");
	kf_error_step(err, KF_CMD("kflash list"));
	kf_error_step(err, KF_CMD("kflash add --device usb-Klipper_<mcu>_<serial>-if00 --name NAME"));
	return -ENOENT;
}

/* Refuses a device that is not a board kflash may register, or may be
 * one registered already. */
static int add_refused(const struct kf_registry *reg, const struct kf_device *d,
		       struct kf_error *err)
{
	const struct kf_board *o;

	if (d->blocked)
		return kf_error_set(err, KF_EINPUT, "%s cannot be registered: %s",
				    d->name, d->blocked);
	o = device_board(d, reg);
	if (o && kf_board_match(o, d) == KF_MATCH_PORT) {
		char *port = kf_port_label(d->port);

		kf_error_set(err, KF_EINPUT, "%s may be '%s' in Katapult: the same "
			     "MCU at the USB port (%s) where kflash saw it", d->name,
			     o->key, port);
		kf_error_cause(err, "its firmware sets its own USB serial, so in "
			       "Katapult it shows its chip id instead");
		kf_error_step(err, "if it is %s: power-cycle it so it starts Klipper, "
			      "then " KF_CMD("kflash flash %s"), o->key, o->key);
		kf_error_step(err, "if it is another board: " KF_CMD("kflash remove %s")
			      ", then add both while they run Klipper", o->key);
		free(port);
		return KF_EINPUT;
	}
	if (d->caution && !o) {
		kf_error_set(err, KF_EINPUT, "%s cannot be registered: %s",
			     d->name, d->caution);
		kf_error_step(err, "if it is a board of yours: power-cycle it so it "
			      "starts Klipper and add it then (kflash follows it into "
			      "Katapult from there)");
		return KF_EINPUT;
	}
	return 0;
}

static int usb_find(struct kf_ctx *ctx, const struct kf_registry *reg, const void *scan,
		    const char *arg, struct kf_seen *ret, struct kf_error *err)
{
	const struct kf_device *d = named_device(ctx, scan, arg, err);
	int r;

	if (!d && err && err->code)
		return err->code;
	if (!d)
		return no_such_device(scan, arg, err);
	r = add_refused(reg, d, err);
	if (r < 0)
		return r;
	seen_from(ret, d);
	return 0;
}

/* Two boards whose firmware sets the same USB serial (Klipper's default
 * "12345") cannot be told apart by name: refuse before either is flashed. */
static int add_ambiguous(const struct kf_devlist *devs, const struct kf_device *d,
			 const char *pattern, struct kf_error *err)
{
	size_t i, n = 0;

	for (i = 0; i < devs->n; i++)
		n += kf_pattern_matches(pattern, &devs->devs[i]);
	if (n <= 1)
		return 0;
	kf_error_set(err, KF_EINPUT, "%zu connected %s devices show the USB "
		     "serial %s; kflash cannot tell them apart", n, d->mcu, d->serial);
	kf_error_cause(err, "their firmware sets the same USB serial number "
		       "instead of the chip id");
	kf_error_step(err, "give each its own: in make menuconfig, 'Enable extra "
		      "low-level configuration options', then USB ids: 'USB serial "
		      "number from CHIPID'; flash it, then " KF_CMD("kflash add"));
	return KF_EINPUT;
}

/* What kflash can find a board by in Katapult when its firmware sets its
 * own USB serial: only its USB port, until its first flash. */
static char *port_only_note(const struct kf_board *b, const struct kf_device *d)
{
	char *port, *note;

	if (!kf_board_port_only(b) || d->mode != KF_MODE_KLIPPER)
		return NULL;
	port = d->port ? kf_port_label(d->port) : NULL;
	note = kf_asprintf("%s's USB serial (%s) is set in its firmware, not its chip "
			   "id, so in Katapult it shows under another name. kflash can "
			   "match it there only by its USB port%s%s%s until its first "
			   "flash, when it learns that name; until then, flash it while "
			   "it runs Klipper, and if you move it to another USB port, run "
			   "kflash add again (kflash remove %s first)", b->key, d->serial,
			   port ? " (" : "", port ? port : "", port ? ")" : "", b->key);
	free(port);
	return note;
}

static int usb_enroll(const struct kf_registry *reg, const void *scan,
		      const struct kf_seen *s, struct kf_board *b, char **ret_note,
		      struct kf_error *err)
{
	const struct kf_device *d = s->dev;
	char *pattern = kf_pattern_for(d->mcu, d->serial);
	size_t i;

	*ret_note = NULL;
	if (add_ambiguous(scan, d, pattern, err) < 0) {
		free(pattern);
		return KF_EINPUT;
	}
	for (i = 0; i < reg->n_boards; i++) {
		const struct kf_board *o = &reg->boards[i];

		if (kf_board_match(o, d) == KF_MATCH_YES ||
		    kf_patterns_overlap(o->pattern, pattern)) {
			kf_error_set(err, KF_EINPUT, "%s is already registered "
				     "as '%s' (pattern %s)", d->name, o->name, o->pattern);
			kf_error_step(err, KF_CMD("kflash remove %s") "   (to register "
				      "it anew)",
				      o->key);
			free(pattern);
			return KF_EINPUT;
		}
	}
	b->pattern = pattern;
	b->mcu = kf_xstrdup(d->mcu);
	b->port = d->port ? kf_xstrdup(d->port) : NULL;
	*ret_note = port_only_note(b, d);
	return 0;
}

static char **usb_tool_args(const struct kf_where *w)
{
	char **argv = kf_xcalloc(3, sizeof(*argv));

	argv[0] = kf_xstrdup("-d");
	argv[1] = kf_xstrdup(w->node);
	return argv;
}

static char *usb_make_flash_device(const struct kf_where *w)
{
	return kf_xstrdup(w->node);
}

/* ---- watching for the boards' return ---------------------------------------- */

struct usb_watch {
	struct kf_monitor *mon;	/* udev events, open while flashing */
	struct kf_device *seen;	/* tty "add" events read so far */
	size_t n_seen;
};

static int usb_watch_open(struct kf_ctx *ctx, void **ret_watch, struct kf_error *err)
{
	struct usb_watch *w = kf_xcalloc(1, sizeof(*w));
	int r = kf_os_monitor_open(ctx->ops, &w->mon);

	if (r < 0) {
		kf_error_set(err, KF_EFAILED, "cannot watch udev for the boards' "
			     "return: %s", strerror(-r));
		kf_error_errno(err, r);
		free(w);
		*ret_watch = NULL;
		return r;
	}
	*ret_watch = w;
	return 0;
}

static void usb_watch_close(struct kf_ctx *ctx, void *watch)
{
	struct usb_watch *w = watch;
	size_t i;

	if (!w)
		return;
	if (w->mon)
		kf_os_monitor_close(ctx->ops, w->mon);
	for (i = 0; i < w->n_seen; i++)
		kf_device_release(&w->seen[i]);
	free(w->seen);
	free(w);
}

/* Reads one udev event into the watch's list; 1 when one came. */
static int read_event(struct kf_ctx *ctx, struct usb_watch *w, int64_t deadline)
{
	struct kf_uevent ev;
	int r = kf_os_monitor_next(ctx->ops, w->mon, deadline, &ev);

	if (r <= 0)
		return r;
	if (ev.action != KF_UEVENT_ADD) {
		kf_ttydev_release(&ev.dev);
		return 1;
	}
	w->seen = kf_xrealloc(w->seen, (w->n_seen + 1) * sizeof(*w->seen));
	kf_device_from_tty(&w->seen[w->n_seen++], &ev.dev);
	return 1;
}

/* Reads what udev already said, so a board's return is told apart from
 * what happened before it was flashed. */
static size_t usb_watch_mark(struct kf_ctx *ctx, void *watch)
{
	struct usb_watch *w = watch;

	while (w->mon && read_event(ctx, w, 0) == 1)
		;
	return w->n_seen;
}

/* Whether b came back (klipper) or showed up in Katapult since mark. */
static bool seen_back(struct usb_watch *w, const struct kf_board *b, size_t mark,
		      struct kf_where *at, bool *ret_katapult)
{
	size_t i;

	for (i = mark; i < w->n_seen; i++) {
		struct kf_device *d = &w->seen[i];

		if (kf_board_match(b, d) != KF_MATCH_YES)
			continue;
		if (d->mode == KF_MODE_KATAPULT)
			*ret_katapult = true;
		if (d->mode == KF_MODE_KLIPPER) {
			free(at->label);
			at->label = kf_xstrdup(d->tty.by_id ? d->tty.by_id : d->tty.devnode);
			return true;
		}
	}
	return false;
}

/* udev "add" events, no polling; several boards may be on their way back
 * at once, so events of the others are kept for them. */
static int usb_await_return(struct kf_ctx *ctx, struct kf_registry *reg,
			    struct kf_board *b, void *watch, size_t mark,
			    int64_t deadline, struct kf_where *at,
			    enum kf_return *ret, struct kf_error *err)
{
	struct usb_watch *w = watch;
	struct kf_error e = KF_ERROR_INIT;
	bool saw_katapult = false;
	void *scan = NULL;
	int r;

	for (;;) {
		if (seen_back(w, b, mark, at, &saw_katapult)) {
			*ret = KF_RETURN_BACK;
			return 0;
		}
		r = read_event(ctx, w, deadline);
		if (r == -EINTR)
			return r;
		if (r <= 0)
			break;
	}
	/* an event may have come before the monitor could see it */
	r = usb_scan(ctx, reg, &scan, err);
	if (r < 0)
		return r;
	r = usb_locate(ctx, reg, b, scan, true, at, &e);
	usb_scan_free(scan);
	kf_error_release(&e);
	free(e.note);
	if (r == 0 && at->mode == KF_MODE_KLIPPER)
		*ret = KF_RETURN_BACK;
	else if (saw_katapult || (r == 0 && at->mode == KF_MODE_KATAPULT))
		*ret = KF_RETURN_BOOTLOADER;
	else
		*ret = KF_RETURN_NONE;
	return 0;
}

const struct kf_transport kf_transport_usb = {
	.name = "usb",
	.scan_check = "udev lists serial devices",
	.scan_fix = "systemctl status systemd-udevd",
	.scan = usb_scan,
	.scan_free = usb_scan_free,
	.locate = usb_locate,
	.tool_args = usb_tool_args,
	.make_flash_device = usb_make_flash_device,
	.sight = usb_sight,
	.unclaimed = usb_unclaimed,
	.find = usb_find,
	.enroll = usb_enroll,
	.watch_open = usb_watch_open,
	.watch_close = usb_watch_close,
	.watch_mark = usb_watch_mark,
	.await_return = usb_await_return,
};
