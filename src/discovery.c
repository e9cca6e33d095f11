/* discovery.c - classify USB serial devices: Klipper, Katapult, or other. */
#include <ctype.h>
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

static const char *block_reason(const struct kf_ttydev *t, const char *name)
{
	const char *m = t->manufacturer ? t->manufacturer : "";

	if (strcasestr(name, "beacon") || strcasecmp(m, "Beacon") == 0)
		return "Beacon probe: updated by its own tools, not by kflash";
	if (strcasestr(name, "cartographer") || strcasestr(m, "cartographer"))
		return "Cartographer probe: updated by its own tools, not by kflash";
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

void kf_device_from_tty(struct kf_device *d, struct kf_ttydev *tty)
{
	enum kf_mode by_name, by_id = KF_MODE_OTHER;

	memset(d, 0, sizeof(*d));
	d->tty = *tty;
	memset(tty, 0, sizeof(*tty));
	d->name = kf_xstrdup(basename_of(d->tty.by_id ? d->tty.by_id : d->tty.devnode));
	by_name = d->tty.by_id ? kf_byid_parse(d->name, &d->mcu, &d->chip_serial)
			       : KF_MODE_OTHER;
	if (id_is(&d->tty, "1d50", "614e"))
		by_id = KF_MODE_KLIPPER;
	else if (id_is(&d->tty, "1d50", "6177"))
		by_id = KF_MODE_KATAPULT;

	/* the name and the USB identity must tell the same story; a device
	 * whose do not is not flashed */
	if (by_name != KF_MODE_OTHER && by_id == by_name &&
	    (!d->tty.serial || strcmp(d->tty.serial, d->chip_serial) == 0)) {
		d->mode = by_name;
		return;
	}
	if (by_name != KF_MODE_OTHER || by_id != KF_MODE_OTHER) {
		d->blocked = "its by-id name and its USB identity disagree; "
			     "kflash will not guess which board it is";
	} else {
		d->blocked = block_reason(&d->tty, d->name);
	}
	free(d->mcu);
	free(d->chip_serial);
	d->mcu = d->chip_serial = NULL;
	d->mode = KF_MODE_OTHER;
}

void kf_device_release(struct kf_device *d)
{
	kf_ttydev_release(&d->tty);
	free(d->name);
	free(d->mcu);
	free(d->chip_serial);
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
		kf_error_cause(err, "udev is not running or /run/udev is not readable");
		kf_error_step(err, "systemctl status systemd-udevd");
		return KF_EFAILED;
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
					 d->chip_serial);
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
