/* host_fixture.c - kflash-simhost's board files (fixtures/boards/NAME.board) and the --board overrides. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "simutil.h"

/* after_complete=: the names fixtures/boards/README.md and
 * sim/fake/lib/faults.py give the board's behaviour after COMPLETE. */
static const struct {
	const char *name;
	enum sim_after after;
} sim_afters[] = {
	{ "klipper", SIM_AFTER_KLIPPER },
	{ "katapult", SIM_AFTER_KATAPULT },
	{ "gone", SIM_AFTER_GONE },
};

static int sim_after_parse(const char *v, enum sim_after *ret)
{
	for (size_t i = 0; i < G_N_ELEMENTS(sim_afters); i++) {
		if (!strcmp(v, sim_afters[i].name)) {
			*ret = sim_afters[i].after;
			return 0;
		}
	}
	return -EINVAL;
}

static int sim_parse_u32(const char *v, uint32_t *ret)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 0);
	if (errno || end == v || *end || n > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)n;
	return 0;
}

static int sim_parse_int(const char *v, int lo, int hi, int *ret)
{
	uint32_t n;

	if (sim_parse_u32(v, &n) < 0 || n < (uint32_t)lo || n > (uint32_t)hi)
		return -EINVAL;
	*ret = (int)n;
	return 0;
}

static bool sim_is_hex(const char *s, size_t len)
{
	size_t i;

	if (strlen(s) != len)
		return false;
	for (i = 0; i < len; i++)
		if (!g_ascii_isxdigit(s[i]))
			return false;
	return true;
}

/* One key=value pair. Returns 0, -EINVAL for a bad value, -ENOENT for an
 * unknown key (only warned about, so other tools can add their own keys). */
static int sim_fixture_set(struct sim_fixture *f, const char *k, const char *v)
{
	char **str = NULL;

	if (!strcmp(k, "name")) str = &f->name;
	else if (!strcmp(k, "mcu")) str = &f->mcu;
	else if (!strcmp(k, "serial")) str = &f->serial;
	else if (!strcmp(k, "usb_serial")) str = &f->usb_serial;
	else if (!strcmp(k, "manufacturer")) str = &f->manufacturer;
	else if (!strcmp(k, "product")) str = &f->product;
	else if (!strcmp(k, "bootloader_manufacturer")) str = &f->boot_manufacturer;
	else if (!strcmp(k, "version")) str = &f->version;
	else if (!strcmp(k, "klipper_version")) str = &f->klipper_version;
	else if (!strcmp(k, "port")) str = &f->port;
	else if (!strcmp(k, "tty")) str = &f->tty;
	else if (!strcmp(k, "vid")) str = &f->vid;
	else if (!strcmp(k, "pid")) str = &f->pid;
	else if (!strcmp(k, "revision")) str = &f->revision;
	else if (!strcmp(k, "driver")) str = &f->driver;
	else if (!strcmp(k, "device_class")) str = &f->device_class;
	else if (!strcmp(k, "interface_class")) str = &f->interface_class;
	else if (!strcmp(k, "vendor_db")) str = &f->vendor_db;
	else if (!strcmp(k, "model_db")) str = &f->model_db;
	else if (!strcmp(k, "description")) return 0;
	else if (!strcmp(k, "interface")) str = &f->can_iface;
	else if (!strcmp(k, "can_bridge")) str = &f->can_bridge;
	/* kflash-simcanbus's own keys (sim/canbus.c) */
	else if (!strcmp(k, "canbus_uuid") || !strcmp(k, "assigned") ||
		 !strcmp(k, "reboot_ms")) return 0;
	if (!strcmp(k, "bitrate"))
		return sim_parse_int(v, 10000, 8000000, &f->can_bitrate);
	if (!strcmp(k, "txqueuelen"))
		return sim_parse_int(v, 1, 100000, &f->can_txqueuelen);
	if (!strcmp(k, "link")) {
		if (!strcmp(v, "up")) f->can_down = 0;
		else if (!strcmp(v, "down")) f->can_down = 1;
		else return -EINVAL;
		return 0;
	}
	if (!strcmp(k, "transport")) {
		if (!strcmp(v, "usb")) f->can = false;
		else if (!strcmp(v, "can")) f->can = true;
		else return -EINVAL;
		return 0;
	}
	if (str) {
		g_free(*str);
		*str = g_strdup(v);
		return 0;
	}
	if (!strcmp(k, "kind")) {
		if (!strcmp(v, "klipper")) f->kind = SIM_KIND_KLIPPER;
		else if (!strcmp(v, "fixed")) f->kind = SIM_KIND_FIXED;
		else return -EINVAL;
		return 0;
	}
	if (!strcmp(k, "mode")) {
		if (!strcmp(v, "klipper")) f->mode = SIM_MODE_KLIPPER;
		else if (!strcmp(v, "katapult")) f->mode = SIM_MODE_KATAPULT;
		else return -EINVAL;
		return 0;
	}
	if (!strcmp(k, "fault"))
		return sim_fault_parse(v, &f->fault) < 0 ? -EINVAL : 0;
	if (!strcmp(k, "after_complete"))
		return sim_after_parse(v, &f->after_complete);
	if (!strcmp(k, "app_start"))
		return sim_parse_u32(v, &f->app_start);
	if (!strcmp(k, "block_size")) {
		if (sim_parse_u32(v, &f->block_size) < 0)
			return -EINVAL;
		return (f->block_size == 64 || f->block_size == 128 ||
			f->block_size == 256 || f->block_size == 512) ? 0 : -EINVAL;
	}
	if (!strcmp(k, "busnum"))
		return sim_parse_int(v, 1, 32, &f->busnum);
	if (!strcmp(k, "devnum"))
		return sim_parse_int(v, 2, 127, &f->devnum);
	if (!strcmp(k, "disconnect_ms"))
		return sim_parse_int(v, 0, 60000, &f->disconnect_ms);
	if (!strcmp(k, "reenumerate_ms"))
		return sim_parse_int(v, 0, 60000, &f->reenumerate_ms);
	return -ENOENT;
}

void sim_fixture_release(struct sim_fixture *f)
{
	char **strs[] = {
		&f->name, &f->mcu, &f->serial, &f->usb_serial, &f->manufacturer, &f->product,
		&f->boot_manufacturer, &f->version, &f->klipper_version, &f->port,
		&f->tty, &f->vid, &f->pid, &f->revision, &f->driver,
		&f->device_class, &f->interface_class, &f->vendor_db, &f->model_db,
		&f->can_iface, &f->can_bridge,
	};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(strs); i++) {
		g_free(*strs[i]);
		*strs[i] = NULL;
	}
}

/* Checks the combination and fills in defaults. Returns an error text or NULL. */
static const char *sim_fixture_finish(struct sim_fixture *f)
{
	if (!f->port || !*f->port)
		return "missing port= (hub port chain such as 1.2)";
	for (const char *p = f->port; *p; p++)
		if (!g_ascii_isdigit(*p) && !(*p == '.' && p[1] && p != f->port && p[-1] != '.'))
			return "port= must look like 1.2 or 1.4.1";
	if (f->tty && !(g_str_has_prefix(f->tty, "ttyACM") || g_str_has_prefix(f->tty, "ttyUSB")))
		return "tty= must name a ttyACMn or ttyUSBn";
	if (f->kind == SIM_KIND_KLIPPER) {
		if (!f->mcu || !f->serial)
			return "kind=klipper needs mcu= and serial=";
		if (!f->manufacturer) f->manufacturer = g_strdup("Klipper");
		if (!f->product) f->product = g_strdup(f->mcu);
		if (!f->boot_manufacturer) f->boot_manufacturer = g_strdup("katapult");
		if (!f->version) f->version = g_strdup("v0.0.1-95-g2ac8a23");
		if (!f->revision) f->revision = g_strdup("0100");
		if (!f->driver) f->driver = g_strdup("cdc_acm");
		if (!f->device_class) f->device_class = g_strdup("02");
		if (!f->interface_class) f->interface_class = g_strdup("020201");
		if (!f->vendor_db) f->vendor_db = g_strdup("OpenMoko, Inc.");
		if (!f->block_size) f->block_size = 64;
		if (!f->app_start) f->app_start = 0x08008000;
	} else {
		if (!f->vid || !f->pid)
			return "kind=fixed needs vid= and pid=";
		if (!f->driver) f->driver = g_strdup("cdc_acm");
		if (!f->revision) f->revision = g_strdup("0100");
		if (!f->device_class)
			f->device_class = g_strdup(strcmp(f->driver, "cdc_acm") ? "ff" : "02");
		if (!f->interface_class)
			f->interface_class = g_strdup(strcmp(f->driver, "cdc_acm") ? "ff0000" : "020201");
	}
	if ((f->vid && !sim_is_hex(f->vid, 4)) || (f->pid && !sim_is_hex(f->pid, 4)))
		return "vid= and pid= are 4 hex digits";
	if (!sim_is_hex(f->revision, 4))
		return "revision= is 4 hex digits (bcdDevice)";
	if (!sim_is_hex(f->device_class, 2) || !sim_is_hex(f->interface_class, 6))
		return "device_class= is 2 hex digits, interface_class= 6";
	if (!f->busnum) f->busnum = 1;
	if (f->disconnect_ms < 0) f->disconnect_ms = 50;
	if (f->reenumerate_ms < 0) f->reenumerate_ms = 500;
	return NULL;
}

/* Applies "key=value,key=value..." from the command line on top of the
 * file. A piece without '=' continues the value before it (so a value may
 * hold a comma: "vendor_db=OpenMoko, Inc."). */
static int sim_fixture_override(struct sim_fixture *f, const char *path, const char *list)
{
	char **pieces = g_strsplit(list, ",", -1);
	GString *val = NULL;
	char *key = NULL;
	int r = 0;

	for (int i = 0; r == 0; i++) {
		char *eq = pieces[i] ? strchr(pieces[i], '=') : NULL;

		if (pieces[i] && !eq && key) {
			g_string_append_c(val, ',');
			g_string_append(val, pieces[i]);
			continue;
		}
		if (key) {
			char *v = sim_strip(val->str);

			r = sim_fixture_set(f, key, v);
			if (r == -ENOENT) {
				sim_log("%s: warning: unknown key '%s' ignored", path, key);
				r = 0;
			} else if (r < 0) {
				sim_log("%s: bad value for %s: '%s'", path, key, v);
			}
			g_clear_pointer(&key, g_free);
			g_string_free(val, TRUE);
			val = NULL;
		}
		if (!pieces[i] || r < 0)
			break;
		if (!eq) {
			sim_log("%s: expected key=value after the ',', not '%s'", path, pieces[i]);
			r = -EINVAL;
			break;
		}
		*eq = '\0';
		key = g_strdup(sim_strip(pieces[i]));
		val = g_string_new(eq + 1);
		if (!*key) {
			sim_log("%s: empty key in the overrides", path);
			r = -EINVAL;
		}
	}
	g_free(key);
	if (val)
		g_string_free(val, TRUE);
	g_strfreev(pieces);
	return r;
}

/* Reads FILE, then applies OVERRIDES (may be NULL); the name defaults to the
 * file name without ".board". */
static int sim_fixture_load(const char *path, const char *overrides, struct sim_fixture *f)
{
	FILE *fp;
	char line[1024];
	int lineno = 0;
	const char *err;

	memset(f, 0, sizeof(*f));
	f->disconnect_ms = -1;
	f->reenumerate_ms = -1;
	f->can_down = -1;
	fp = fopen(path, "re");
	if (!fp) {
		int r = -errno;

		sim_log("%s: %s", path, strerror(-r));
		return r;
	}
	while (fgets(line, sizeof(line), fp)) {
		char *s = sim_strip(line), *eq;
		int r;

		lineno++;
		if (!*s || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			sim_log("%s:%d: expected key=value", path, lineno);
			fclose(fp);
			return -EINVAL;
		}
		*eq = '\0';
		r = sim_fixture_set(f, sim_strip(s), sim_strip(eq + 1));
		if (r == -ENOENT) {
			sim_log("%s:%d: warning: unknown key '%s' ignored", path, lineno, sim_strip(s));
		} else if (r < 0) {
			sim_log("%s:%d: bad value for %s", path, lineno, sim_strip(s));
			fclose(fp);
			return r;
		}
	}
	fclose(fp);
	if (overrides && sim_fixture_override(f, path, overrides) < 0)
		return -EINVAL;
	if (!f->name) {
		char *base = g_path_get_basename(path);
		char *dot = strrchr(base, '.');

		if (dot && !strcmp(dot, ".board"))
			*dot = '\0';
		f->name = base;
	}
	if (f->can)
		return 0;	/* not ours: no USB port, no tty */
	err = sim_fixture_finish(f);
	if (err) {
		sim_log("%s: %s", path, err);
		return -EINVAL;
	}
	return 0;
}

/* Splits "FILE[:klipper|:katapult]" into the file and the mode (-1: none). */
static int sim_split_mode(char *path)
{
	char *colon = strrchr(path, ':');
	int mode = -1;

	if (colon && !strcmp(colon, ":klipper"))
		mode = SIM_MODE_KLIPPER;
	else if (colon && !strcmp(colon, ":katapult"))
		mode = SIM_MODE_KATAPULT;
	if (mode >= 0)
		*colon = '\0';
	return mode;
}

int sim_host_add_board(struct sim_host *h, const char *spec)
{
	char *path = g_strdup(spec), *overrides = NULL;
	struct sim_hboard *b;
	const char *mode_name;
	int mode;

	/* The overrides start at the first ',' after which the file part names
	 * an existing file (a path may hold commas); failing that, the first. */
	for (char *c = strchr(path, ','); c; c = strchr(c + 1, ',')) {
		char *head = g_strndup(path, (size_t)(c - path));
		bool exists;

		(void)sim_split_mode(head);
		exists = g_file_test(head, G_FILE_TEST_IS_REGULAR);
		g_free(head);
		if (exists || !overrides)
			overrides = c;
		if (exists)
			break;
	}
	if (overrides && g_file_test(path, G_FILE_TEST_IS_REGULAR))
		overrides = NULL;	/* the whole spec is a file */
	if (overrides)
		*overrides++ = '\0';
	mode = sim_split_mode(path);
	mode_name = mode == SIM_MODE_KATAPULT ? "katapult" : "klipper";
	if (h->nboards >= SIM_MAX_BOARDS) {
		sim_log("too many boards (at most %d)", SIM_MAX_BOARDS);
		g_free(path);
		return -E2BIG;
	}
	b = &h->boards[h->nboards];
	memset(b, 0, sizeof(*b));
	b->host = h;
	b->master = -1;
	if (sim_fixture_load(path, overrides, &b->fx) < 0) {
		sim_fixture_release(&b->fx);
		g_free(path);
		return -EINVAL;
	}
	g_free(path);
	if (b->fx.can) {
		int r = sim_can_add(h, spec, &b->fx);

		sim_fixture_release(&b->fx);
		return r;
	}
	if (b->fx.can_bridge && (b->fx.kind != SIM_KIND_KLIPPER || sim_can_add_bridge(h, spec, b) < 0)) {
		if (b->fx.kind != SIM_KIND_KLIPPER)
			sim_log("%s: can_bridge= needs kind=klipper", b->fx.name);
		sim_fixture_release(&b->fx);
		return -EINVAL;
	}
	if (mode >= 0) {
		if (b->fx.kind == SIM_KIND_FIXED) {
			sim_log("%s: kind=fixed has no %s mode", b->fx.name, mode_name);
			sim_fixture_release(&b->fx);
			return -EINVAL;
		}
		b->fx.mode = (enum sim_mode)mode;
	}
	for (int i = 0; i < h->nboards; i++) {
		const struct sim_fixture *o = &h->boards[i].fx;
		size_t lo = strlen(o->port), lb = strlen(b->fx.port);

		if (!strcmp(o->name, b->fx.name)) {
			sim_log("two boards named %s", b->fx.name);
			sim_fixture_release(&b->fx);
			return -EINVAL;
		}
		/* a port is a device or a hub, never both */
		if (o->busnum == b->fx.busnum &&
		    ((lo <= lb && !strncmp(o->port, b->fx.port, lo) && (lo == lb || b->fx.port[lo] == '.')) ||
		     (lb < lo && !strncmp(o->port, b->fx.port, lb) && o->port[lb] == '.'))) {
			sim_log("%s and %s both use USB port %d-%s", o->name, b->fx.name,
				b->fx.busnum, lo < lb ? o->port : b->fx.port);
			sim_fixture_release(&b->fx);
			return -EINVAL;
		}
		if (o->tty && b->fx.tty && !strcmp(o->tty, b->fx.tty)) {
			sim_log("%s and %s both pin %s", o->name, b->fx.name, b->fx.tty);
			sim_fixture_release(&b->fx);
			return -EINVAL;
		}
	}
	h->nboards++;
	return 0;
}

