/* transport_usb.c - boards on USB serial: udev's ttys, by-id names, the
 * USB port a board keeps across its reset, and its udev "add" on return. */
#include <errno.h>
#include <string.h>

#include "kflash/proc.h"
#include "kflash/transport.h"
#include "kflash/util.h"

static int usb_scan(struct kf_ctx *ctx, void **ret_scan, struct kf_error *err)
{
	struct kf_devlist *devs = kf_xcalloc(1, sizeof(*devs));
	int r = kf_discover(ctx->ops, devs, err);

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

static int usb_locate(struct kf_ctx *ctx, struct kf_registry *reg, struct kf_board *b,
		      const void *scan, bool after_reset, struct kf_where *at,
		      struct kf_error *err)
{
	const struct kf_devlist *devs = scan;
	const struct kf_device *found = NULL, *maybe = NULL, *arrived = NULL;
	size_t i, count = 0, n_arrived = 0;

	for (i = 0; i < devs->n; i++) {
		const struct kf_device *d = &devs->devs[i];
		enum kf_match m = kf_board_match(b, d);

		if (m == KF_MATCH_YES) {
			count++;
			if (!found)
				found = d;
		} else if (m == KF_MATCH_PORT && !maybe) {
			maybe = d;
		}
		if (m != KF_MATCH_YES && after_reset && handover(reg, b, at, d)) {
			n_arrived++;
			arrived = d;
		}
	}
	if (count > 1) {
		kf_error_set(err, KF_EREFUSED, "%zu connected devices match %s "
			     "(pattern %s); kflash will not guess", count, b->key,
			     b->pattern);
		kf_error_step(err, "kflash list");
		kf_error_step(err, "kflash remove %s && kflash add   (to register "
			      "it with a precise pattern)", b->key);
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
		kf_error_step(err, "power-cycle the board so it starts Klipper, "
			      "then kflash flash %s (kflash then follows it into "
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
			      "kflash list");
		kf_buf_release(&seen);
		return KF_EFAILED;
	}
	learn(ctx, reg, b, found);
	where_from(at, found);
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
	r = usb_scan(ctx, &scan, err);
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
	.watch_open = usb_watch_open,
	.watch_close = usb_watch_close,
	.watch_mark = usb_watch_mark,
	.await_return = usb_await_return,
};
