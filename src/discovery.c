/* discovery.c - classify USB serial devices: Klipper, Katapult, or other. */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <string.h>
#include <strings.h>

#include "kflash/discovery.h"
#include "kflash/util.h"

#define ID_MAX 64

static const struct {
	const char *prefix;
	enum kf_mode mode;
} namings[] = {
	{ "usb-Klipper_", KF_MODE_KLIPPER },
	{ "usb-katapult_", KF_MODE_KATAPULT },
	{ "usb-CanBoot_", KF_MODE_KATAPULT },	/* before the rename */
};

const char *kf_mode_name(enum kf_mode m)
{
	return m == KF_MODE_KLIPPER ? "klipper" : m == KF_MODE_KATAPULT ? "katapult" : NULL;
}

static bool all_of(const char *s, size_t n, const char *extra)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!(isascii(c) && isalnum(c)) && !strchr(extra, c))
			return false;
	}
	return true;
}

enum kf_mode kf_byid_parse(const char *name, char **ret_mcu, char **ret_serial)
{
	const char *body = NULL, *end, *sep;
	enum kf_mode mode = KF_MODE_OTHER;
	size_t i, n;

	*ret_mcu = *ret_serial = NULL;
	for (i = 0; i < sizeof(namings) / sizeof(namings[0]); i++) {
		if (kf_startswith(name, namings[i].prefix)) {
			body = name + strlen(namings[i].prefix);
			mode = namings[i].mode;
			break;
		}
	}
	if (!body)
		return KF_MODE_OTHER;
	/* "-if00": the USB interface; Klipper boards have one */
	end = strstr(body, "-if");
	if (!end || strlen(end) != 5 || !isdigit((unsigned char)end[3]) ||
	    !isdigit((unsigned char)end[4]))
		return KF_MODE_OTHER;
	n = (size_t)(end - body);
	/* MCU names may hold underscores; the chip serial never does */
	sep = NULL;
	for (i = 0; i < n; i++)
		if (body[i] == '_')
			sep = body + i;
	if (!sep || sep == body || sep + 1 == end)
		return KF_MODE_OTHER;
	if ((size_t)(sep - body) > ID_MAX || (size_t)(end - sep - 1) > ID_MAX ||
	    !all_of(body, (size_t)(sep - body), "_") ||
	    !all_of(sep + 1, (size_t)(end - sep - 1), ""))
		return KF_MODE_OTHER;
	*ret_mcu = kf_xstrndup(body, (size_t)(sep - body));
	*ret_serial = kf_xstrndup(sep + 1, (size_t)(end - sep - 1));
	return mode;
}

static const char *basename_of(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static bool id_is(const struct kf_ttydev *t, const char *vid, const char *pid)
{
	return t->vid && t->pid && strcasecmp(t->vid, vid) == 0 &&
	       (!pid || strcasecmp(t->pid, pid) == 0);
}

/* Products that speak USB serial, may even run a Klipper build, and are
 * updated by their makers' own tools: kflash names them and never flashes
 * them. A product matches by its USB id, its manufacturer string or its
 * by-id name (any of them, case-insensitive). */
static const struct known_product {
	const char *vid, *pid;		/* or NULL */
	const char *manufacturer;	/* or NULL */
	const char *in_name;		/* part of the by-id name, or NULL */
	const char *product;
	const char *why;
} known_products[] = {
	/* Beacon: 04d8:e72b, "Beacon" / "Beacon RevH"; its bootloader is a
	 * DFU device without a tty, so kflash never sees it there */
	{ "04d8", "e72b", "Beacon", "beacon", "Beacon probe",
	  "Beacon probe: it is updated by Beacon's own updater "
	  "(beacon_klipper's update_firmware.py), never by kflash" },
	/* Cartographer: a Klipper build on 1d50:614e that names itself,
	 * usb-Cartographer_614e_<chip id>-if00 (older firmware:
	 * usb-cartographer_cartographer_...) */
	{ NULL, NULL, "Cartographer", "cartographer", "Cartographer probe",
	  "Cartographer probe: it is updated by Cartographer's own firmware "
	  "tools, never by kflash" },
};

static const struct known_product *known_product(const struct kf_ttydev *t,
						 const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(known_products) / sizeof(known_products[0]); i++) {
		const struct known_product *k = &known_products[i];

		if ((k->vid && id_is(t, k->vid, k->pid)) ||
		    (k->manufacturer && t->manufacturer &&
		     strcasestr(t->manufacturer, k->manufacturer)) ||
		    (k->in_name && strcasestr(name, k->in_name)))
			return k;
	}
	return NULL;
}

static const char *block_reason(const struct kf_ttydev *t)
{
	if (id_is(t, "1a86", NULL))
		return "USB-serial adapter chip (WCH CH340/CH341): kflash cannot "
		       "flash through it";
	if (id_is(t, "0403", NULL))
		return "USB-serial adapter chip (FTDI): kflash cannot flash through it";
	if (id_is(t, "10c4", NULL))
		return "USB-serial adapter chip (Silicon Labs CP210x): kflash cannot "
		       "flash through it";
	return "not a Klipper or Katapult USB device";
}

/* The MCU is a Kconfig string and the serial may be one too: only what
 * udev leaves as it is in a by-id name, and nothing a glob or a shell
 * would read. */
static bool usable_id(const char *s, const char *extra)
{
	return s && *s && strlen(s) <= ID_MAX && all_of(s, strlen(s), extra);
}

/* by-id name usb-<manufacturer>_<mcu>_<serial>-ifNN: the manufacturer part
 * is the firmware's choice; the rest must be the USB strings. */
static bool name_fits(const char *name, const char *mcu, const char *serial)
{
	char *tail = kf_asprintf("_%s_%s-if", mcu, serial);
	const char *p = strstr(name, tail);
	bool ok = false;

	/* the last occurrence: a manufacturer may repeat the MCU's name */
	while (p && strstr(p + 1, tail))
		p = strstr(p + 1, tail);
	if (p && kf_startswith(name, "usb-") && p > name + 4) {
		const char *ifn = p + strlen(tail);

		ok = strlen(ifn) == 2 && isdigit((unsigned char)ifn[0]) &&
		     isdigit((unsigned char)ifn[1]);
	}
	free(tail);
	return ok;
}

/* For a name whose manufacturer part is none kflash knows (Kalico, a
 * custom one) and a device whose USB strings are not at hand: the
 * manufacturer is the first word. */
static bool parse_any_maker(const char *name, char **ret_mcu, char **ret_serial)
{
	const char *us;
	char *fake;
	enum kf_mode m;

	if (!kf_startswith(name, "usb-") || !(us = strchr(name + 4, '_')) || us == name + 4)
		return false;
	fake = kf_asprintf("usb-Klipper%s", us);
	m = kf_byid_parse(fake, ret_mcu, ret_serial);
	free(fake);
	return m != KF_MODE_OTHER;
}

/* A device with a Klipper or Katapult USB id: its MCU and serial, from
 * the USB strings when udev has them, cross-checked with its name. */
static bool identify(struct kf_device *d, enum kf_mode by_id)
{
	const struct kf_ttydev *t = &d->tty;
	char *mcu = NULL, *serial = NULL;
	enum kf_mode by_name = KF_MODE_OTHER;

	if (t->by_id) {
		by_name = kf_byid_parse(d->name, &mcu, &serial);
		/* a name that says the other mode is not a manufacturer's whim */
		if (by_name != KF_MODE_OTHER && by_name != by_id)
			goto fail;
	}
	if (usable_id(t->product, "_") && usable_id(t->serial, "_-.")) {
		if (t->by_id && !name_fits(d->name, t->product, t->serial))
			goto fail;
		free(mcu);
		free(serial);
		d->mcu = kf_xstrdup(t->product);
		d->serial = kf_xstrdup(t->serial);
		return true;
	}
	if (!t->by_id || (by_name == KF_MODE_OTHER && !parse_any_maker(d->name, &mcu, &serial)))
		goto fail;
	/* what udev has of the strings must agree with the name */
	if ((t->product && strcmp(t->product, mcu) != 0) ||
	    (t->serial && strcmp(t->serial, serial) != 0))
		goto fail;
	d->mcu = mcu;
	d->serial = serial;
	return true;
fail:
	free(mcu);
	free(serial);
	return false;
}

void kf_device_from_tty(struct kf_device *d, struct kf_ttydev *tty)
{
	const struct known_product *k;
	enum kf_mode by_id = KF_MODE_OTHER;
	char *m = NULL, *s = NULL;

	memset(d, 0, sizeof(*d));
	d->tty = *tty;
	memset(tty, 0, sizeof(*tty));
	d->name = kf_xstrdup(basename_of(d->tty.by_id ? d->tty.by_id : d->tty.devnode));
	if (d->tty.by_path)
		d->port = kf_xstrdup(basename_of(d->tty.by_path));
	k = known_product(&d->tty, d->name);
	if (k) {
		d->product = k->product;
		d->blocked = k->why;
		return;
	}
	if (id_is(&d->tty, "1d50", "614e"))
		by_id = KF_MODE_KLIPPER;
	else if (id_is(&d->tty, "1d50", "6177"))
		by_id = KF_MODE_KATAPULT;
	if (by_id != KF_MODE_OTHER) {
		if (!identify(d, by_id)) {
			d->blocked = "its by-id name and its USB identity disagree; "
				     "kflash will not guess which board it is";
			return;
		}
		d->mode = by_id;
		/* Cartographer probes are STM32F042 boards with Katapult, and
		 * in it they look like any other */
		if (by_id == KF_MODE_KATAPULT && strcmp(d->mcu, "stm32f042x6") == 0)
			d->caution = "probably a Cartographer probe in its bootloader "
				     "(an stm32f042x6 in Katapult); kflash does not "
				     "register it";
		return;
	}
	if (d->tty.by_id && kf_byid_parse(d->name, &m, &s) != KF_MODE_OTHER)
		d->blocked = "its by-id name and its USB identity disagree; "
			     "kflash will not guess which board it is";
	else
		d->blocked = block_reason(&d->tty);
	free(m);
	free(s);
}

void kf_device_release(struct kf_device *d)
{
	kf_ttydev_release(&d->tty);
	free(d->name);
	free(d->mcu);
	free(d->serial);
	free(d->port);
	memset(d, 0, sizeof(*d));
}

int kf_discover(const struct kf_ops *o, struct kf_devlist *ret, struct kf_error *err)
{
	struct kf_ttydev *ttys = NULL;
	size_t n = 0, i;
	int r;

	ret->devs = NULL;
	ret->n = 0;
	r = kf_os_enumerate(o, &ttys, &n);
	if (r < 0) {
		kf_error_set(err, KF_EFAILED, "cannot list serial devices through "
			     "udev: %s", strerror(-r));
		kf_error_errno(err, r);
		if (r == -ENOENT || r == -EACCES)
			kf_error_cause(err, "udev is not running or /run/udev is not "
				       "readable");
		kf_error_step(err, KF_CMD("systemctl status systemd-udevd"));
		return r;
	}
	ret->devs = kf_xcalloc(n + 1, sizeof(*ret->devs));
	for (i = 0; i < n; i++)
		kf_device_from_tty(&ret->devs[i], &ttys[i]);
	ret->n = n;
	free(ttys);
	return 0;
}

void kf_devlist_release(struct kf_devlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		kf_device_release(&l->devs[i]);
	free(l->devs);
	l->devs = NULL;
	l->n = 0;
}

char *kf_pattern_for(const char *mcu, const char *serial)
{
	return kf_asprintf("usb-*_%s_%s-if*", mcu, serial);
}

bool kf_pattern_matches(const char *pattern, const struct kf_device *d)
{
	size_t i;

	if (d->mode == KF_MODE_OTHER || !d->mcu)
		return false;
	/* a pattern written for one naming (e.g. by the older Python tool:
	 * usb-Klipper_stm32h723xx_29*) finds the board under every naming */
	for (i = 0; i < sizeof(namings) / sizeof(namings[0]); i++) {
		char *name = kf_asprintf("%s%s_%s-if00", namings[i].prefix, d->mcu,
					 d->serial);
		bool m = fnmatch(pattern, name, 0) == 0;

		free(name);
		if (m)
			return true;
	}
	return fnmatch(pattern, d->name, 0) == 0;
}

/* For a pattern kflash derived (usb-*_<mcu>_<serial>-if*), whether the
 * other pattern matches that board under any naming. */
static bool derived_matches(const char *derived, const char *other)
{
	size_t n = strlen(derived), i;

	if (!kf_startswith(derived, "usb-*_") || !kf_endswith(derived, "-if*") ||
	    n < 11 || strpbrk(derived + 6, "*?[") != derived + n - 1)
		return false;
	for (i = 0; i < sizeof(namings) / sizeof(namings[0]); i++) {
		char *name = kf_asprintf("%s%.*s-if00", namings[i].prefix,
					 (int)(n - 10), derived + 6);
		bool m = fnmatch(other, name, 0) == 0;

		free(name);
		if (m)
			return true;
	}
	return false;
}

bool kf_patterns_overlap(const char *a, const char *b)
{
	return strcmp(a, b) == 0 || fnmatch(a, b, 0) == 0 || fnmatch(b, a, 0) == 0 ||
	       derived_matches(a, b) || derived_matches(b, a);
}

bool kf_serial_is_chip_id(const char *serial)
{
	size_t n = serial ? strlen(serial) : 0, i;

	if (n != 16 && n != 24 && n != 32)
		return false;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)serial[i]))
			return false;
	return true;
}

char *kf_port_label(const char *port)
{
	const char *p = strstr(port, "-usb-");
	const char *colon, *end;

	/* ...-usb-0:1.2:1.0: bus-relative chain 1.2, interface 1.0 */
	if (!p || !(colon = strchr(p + 5, ':')) || !(end = strchr(colon + 1, ':')))
		return kf_xstrdup(port);
	return kf_xstrndup(colon + 1, (size_t)(end - colon - 1));
}

/* The serial in a pattern kflash derived for this board's MCU
 * (usb-*_<mcu>_<serial>-if*), or NULL for any other pattern. */
static char *pattern_serial(const struct kf_board *b)
{
	char *head = kf_asprintf("usb-*_%s_", b->mcu);
	const char *p = b->pattern, *ser;
	char *out = NULL;
	size_t n;

	if (kf_startswith(p, head) && kf_endswith(p, "-if*")) {
		ser = p + strlen(head);
		n = strlen(ser) - 4;
		if (n && !memchr(ser, '*', n) && !memchr(ser, '?', n) && !memchr(ser, '[', n))
			out = kf_xstrndup(ser, n);
	}
	free(head);
	return out;
}

bool kf_board_port_only(const struct kf_board *b)
{
	char *s = pattern_serial(b);
	bool r = s && !kf_serial_is_chip_id(s);

	free(s);
	return r;
}

enum kf_match kf_board_match(const struct kf_board *b, const struct kf_device *d)
{
	bool same_port;

	if (d->mode == KF_MODE_OTHER || !d->mcu)
		return KF_MATCH_NO;
	if (kf_pattern_matches(b->pattern, d))
		return KF_MATCH_YES;
	/* the rest is for a board whose Katapult name its pattern misses */
	if (d->mode != KF_MODE_KATAPULT || strcmp(d->mcu, b->mcu) != 0 ||
	    !kf_board_port_only(b))
		return KF_MATCH_NO;
	same_port = b->port && d->port && strcmp(b->port, d->port) == 0;
	if (b->katapult_serial) {
		/* a chip id names one chip wherever it is plugged in; anything
		 * else only together with the port it was learned at */
		if (strcmp(b->katapult_serial, d->serial) == 0 &&
		    (same_port || kf_serial_is_chip_id(d->serial)))
			return KF_MATCH_YES;
		return KF_MATCH_NO;
	}
	return same_port ? KF_MATCH_PORT : KF_MATCH_NO;
}
