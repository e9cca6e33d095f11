/* simhost.c - kflash-simhost: runs a command on a simulated printer host whose USB boards live in a umockdev testbed, served by the board emulator. */

/*
 * How it fits together
 *
 * - Each board file becomes, at run time, a umockdev description of a USB
 *   device, its interface(s) and a tty child with the properties udev would
 *   give them on a Raspberry Pi 4 (by-id and by-path links, ID_* keys).
 * - The tty of a board is a pseudo-terminal whose master we hold. We create
 *   that pty ourselves instead of with an "N:" line: umockdev 0.17 never
 *   forgets a devnode it made a pty for (remove_device() leaves it in its
 *   table and the next add of the same name aborts), and a real unplug
 *   hangs up the tty, which closing our master does. The slave starts with
 *   cdc_acm's line settings (9600 baud, HUPCL), not a pts's.
 * - Clients' ioctls on /dev/ttyACMn (opened by that name, not through a
 *   link) are sent by libumockdev-preload over a socket to the
 *   UMockdevIoctlBase we attach. In umockdev 0.17 those sockets are served
 *   by the testbed's own worker thread ("umockdev-testbed-worker", with its
 *   own GMainContext), not by our main thread: the handle-ioctl handler runs
 *   there, concurrently with the poll loop below, and needs no GLib main
 *   loop of ours. So the handler never touches a board; it answers the
 *   modem-line ioctls from an atomic copy of the modem bits, lets the kernel
 *   do the rest (umockdev_ioctl_client_execute) and pokes the main loop
 *   through a pipe. The main loop reads the baud the client set from the
 *   master (TCGETS2 on a pty master reports the slave's termios) and feeds
 *   sim_board_line(). Plain TCSETS from tcsetattr() is done inside the
 *   preload and never reaches the handler, so the main loop also reads the
 *   termios every SIM_TICK_MS, and a last close with HUPCL drops DTR.
 * - Re-enumeration (Klipper -> Katapult -> Klipper) takes the devices away
 *   with "remove" uevents and adds the new identity, for which umockdev
 *   sends the "add" uevents, the way the kernel and udev do on a real host.
 *   After COMPLETE the board's after_complete= key picks the identity it
 *   comes back with (klipper, katapult) or keeps it away (gone).
 * - Scenarios change the world mid-run through the control FIFO (--control,
 *   default $KFLASH_SIM_STATE/simhost.ctl): "unplug NAME", "plug NAME",
 *   "mode NAME klipper|katapult" lines, read in the same poll loop. We hold
 *   the FIFO open O_RDWR, so writers never block and we never see EOF.
 *   fixtures/boards/README.md documents the commands, keys and events.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
/* The kernel's termios2 (c_ospeed for custom rates such as 250000); glibc's
 * <termios.h> must stay out of this file or the struct names clash. */
#include <asm/termbits.h>

#include <umockdev.h>

#include "board.h"

#define SIM_TICK_MS 10		/* how often the termios of each tty is read */
#define SIM_MAX_BOARDS 32
#define SIM_KILL_GRACE_MS 3000	/* SIGTERM to SIGKILL for the command's group */

/* The USB host controller of a Raspberry Pi 4 (VL805 on PCIe): most
 * printer hosts are Pis, and its by-path names are the ones users see. */
#define SIM_PCI_SYSPATH "/sys/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0"
#define SIM_PATH_PREFIX "platform-fd500000.pcie-pci-0000:01:00.0"

static int sim_verbose;

static void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sim_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("kflash-simhost: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

#define sim_debug(...) do { if (sim_verbose) sim_log(__VA_ARGS__); } while (0)

static int64_t sim_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Board files                                                          */

enum sim_kind {
	SIM_KIND_KLIPPER,	/* Klipper app + Katapult bootloader: identity follows the mode */
	SIM_KIND_FIXED,		/* probe, USB-serial chip: identity as given, never changes */
};

/* What the board does after Katapult's COMPLETE. */
enum sim_after {
	SIM_AFTER_KLIPPER,	/* the new firmware boots: back as Klipper */
	SIM_AFTER_KATAPULT,	/* the new firmware does not start: back in Katapult */
	SIM_AFTER_GONE,		/* disconnects and stays away (until "plug") */
};

struct sim_fixture {
	char *name;
	enum sim_kind kind;
	enum sim_mode mode;
	char *mcu;
	char *serial;
	char *usb_serial;		/* Klipper mode's USB serial when the firmware
					 * sets its own (CONFIG_USB_SERIAL_NUMBER); NULL: serial */
	char *manufacturer;		/* Klipper mode / fixed device */
	char *product;
	char *boot_manufacturer;	/* Katapult mode: "katapult" or "CanBoot" */
	char *version;
	char *klipper_version;
	uint32_t app_start;
	uint32_t block_size;
	enum sim_fault fault;
	enum sim_after after_complete;
	int busnum;
	int devnum;			/* first device number; 0: next free */
	char *port;			/* hub port chain, e.g. "1.2" */
	char *tty;			/* pinned tty name; NULL: lowest free */
	char *vid, *pid, *revision;
	char *driver;			/* cdc_acm, ch341, ftdi_sio, cp210x */
	char *device_class;		/* bDeviceClass, 2 hex digits */
	char *interface_class;		/* class, subclass, protocol: 6 hex digits */
	char *vendor_db, *model_db;	/* hwdb names, optional */
	int disconnect_ms;		/* event -> USB disconnect */
	int reenumerate_ms;		/* disconnect -> new identity appears */
};

static char *sim_strip(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
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
	if (!strcmp(k, "fault")) {
		if (!strcmp(v, "none")) f->fault = SIM_FAULT_NONE;
		else if (!strcmp(v, "silent")) f->fault = SIM_FAULT_SILENT;
		else if (!strcmp(v, "corrupt-readback")) f->fault = SIM_FAULT_CORRUPT_READBACK;
		else if (!strcmp(v, "no-bootloader")) f->fault = SIM_FAULT_NO_BOOTLOADER;
		else return -EINVAL;
		return 0;
	}
	if (!strcmp(k, "after_complete")) {
		if (!strcmp(v, "klipper")) f->after_complete = SIM_AFTER_KLIPPER;
		else if (!strcmp(v, "katapult")) f->after_complete = SIM_AFTER_KATAPULT;
		else if (!strcmp(v, "gone")) f->after_complete = SIM_AFTER_GONE;
		else return -EINVAL;
		return 0;
	}
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

static void sim_fixture_release(struct sim_fixture *f)
{
	char **strs[] = {
		&f->name, &f->mcu, &f->serial, &f->usb_serial, &f->manufacturer, &f->product,
		&f->boot_manufacturer, &f->version, &f->klipper_version, &f->port,
		&f->tty, &f->vid, &f->pid, &f->revision, &f->driver,
		&f->device_class, &f->interface_class, &f->vendor_db, &f->model_db,
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
	err = sim_fixture_finish(f);
	if (err) {
		sim_log("%s: %s", path, err);
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The host and its boards                                             */

enum sim_state {
	SIM_ST_PRESENT,		/* enumerated, tty served */
	SIM_ST_LEAVING,		/* reset requested; still served until the deadline */
	SIM_ST_ABSENT,		/* unplugged; reappears at the deadline */
	SIM_ST_DEAD,		/* failed to enumerate; stays away */
	SIM_ST_UNPLUGGED,	/* off the bus until a "plug" command (next_mode) */
	SIM_ST_HUNG,		/* its application faulted: off the bus until a
				 * "mode" command resets it ("plug" does not) */
};

struct sim_hboard {
	struct sim_host *host;
	struct sim_fixture fx;
	struct sim_board *core;		/* NULL for kind=fixed */
	char *image_path;

	enum sim_state state;
	enum sim_mode mode;		/* identity currently enumerated */
	enum sim_mode next_mode;	/* LEAVING, ABSENT, UNPLUGGED: mode it comes back in */
	bool stay_away;			/* LEAVING: after the disconnect, UNPLUGGED */
	bool hang;			/* LEAVING: after the disconnect, HUNG */
	int64_t deadline;

	/* Current enumeration. */
	int devnum;
	char tty[32];
	char *usb_syspath;
	char *syspaths[4];		/* children, removal order: tty, ..., interface */
	int nsyspaths;
	char *links[2];			/* by-id, by-path (relative to the testbed's /dev) */
	char *ptymap;
	int master;
	bool hup;			/* no client has the slave open */
	uint8_t pending[8192];		/* response bytes the master could not take yet */
	size_t npending;
	unsigned last_baud;
	int last_dtr;
	struct stat image_st;		/* image file before this Katapult session */
	bool write_started;		/* "write-start" logged in this Katapult session */
	unsigned scan;			/* bytes of a SEND_BLOCK frame start matched */

	/* Shared with the ioctl worker thread: g_atomic_* only. */
	gpointer handler;		/* UMockdevIoctlBase of the live tty */
	gint modem;			/* TIOCM_* bits the client set */
};

struct sim_host {
	UMockdevTestbed *tb;
	char *root;
	struct sim_hboard boards[SIM_MAX_BOARDS];
	int nboards;
	int devnum_next[33];		/* per bus */
	int notify[2];			/* worker thread -> main loop */
	int events_fd;
	char *image_dir;
	bool image_dir_owned;
	/* control FIFO */
	int ctl_fd;
	char *ctl_path;
	char ctl_buf[512];
	size_t ctl_len;
	bool ctl_overlong;		/* discarding the rest of a too-long line */
};

static void sim_event(struct sim_host *h, const char *board, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void sim_event(struct sim_host *h, const char *board, const char *fmt, ...)
{
	char line[512];
	struct timespec ts;
	va_list ap;
	int n, m;

	if (h->events_fd < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(line, sizeof(line), "%lld.%03ld simboard %s ",
		     (long long)ts.tv_sec, ts.tv_nsec / 1000000, board);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		return;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line: O_APPEND keeps lines of concurrent actors whole. */
	if (write(h->events_fd, line, (size_t)n) != n)
		sim_log("events: %s", strerror(errno));
}

/* udev's ID_VENDOR/ID_MODEL: whitespace runs to one '_', unsafe chars to '_'. */
static char *sim_udev_safe(const char *s)
{
	GString *o = g_string_new(NULL);
	const char *p = s;
	size_t len;

	while (*p == ' ')
		p++;
	len = strlen(p);
	while (len && p[len - 1] == ' ')
		len--;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (c == ' ') {
			while (i + 1 < len && p[i + 1] == ' ')
				i++;
			g_string_append_c(o, '_');
		} else if (g_ascii_isalnum(c) || strchr("#+-.:=@_", c)) {
			g_string_append_c(o, c);
		} else {
			g_string_append_c(o, '_');
		}
	}
	return g_string_free(o, FALSE);
}

/* udev's ID_*_ENC: unsafe bytes as \xHH. */
static char *sim_udev_enc(const char *s)
{
	GString *o = g_string_new(NULL);

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (g_ascii_isalnum(*p) || strchr("#+-.:=@_", *p))
			g_string_append_c(o, (char)*p);
		else
			g_string_append_printf(o, "\\x%02x", *p);
	}
	return g_string_free(o, FALSE);
}

/* ID_PATH_TAG: everything but alnum, '-' and '_' becomes '_'. */
static char *sim_path_tag(const char *path)
{
	char *t = g_strdup(path);

	for (char *p = t; *p; p++)
		if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_')
			*p = '_';
	return t;
}

/* The USB identity of one enumeration. */
struct sim_ident {
	const char *vid, *pid, *manufacturer, *product, *serial;
};

static void sim_ident_of(const struct sim_hboard *b, enum sim_mode mode, struct sim_ident *id)
{
	const struct sim_fixture *f = &b->fx;

	if (f->kind == SIM_KIND_FIXED) {
		*id = (struct sim_ident){ f->vid, f->pid, f->manufacturer, f->product, f->serial };
	} else if (mode == SIM_MODE_KLIPPER) {
		*id = (struct sim_ident){ "1d50", "614e", f->manufacturer, f->product,
					  f->usb_serial ? f->usb_serial : f->serial };
	} else {
		*id = (struct sim_ident){ "1d50", "6177", f->boot_manufacturer, f->mcu, f->serial };
	}
}

static const char *sim_mode_name(const struct sim_hboard *b, enum sim_mode mode)
{
	if (b->fx.kind == SIM_KIND_FIXED)
		return "fixed";
	return mode == SIM_MODE_KLIPPER ? "klipper" : "katapult";
}

static bool sim_driver_is_acm(const char *driver)
{
	return !strcmp(driver, "cdc_acm");
}

/* sysfs path of bus BUS's root hub and of the device at PORT ("1.4.2"). */
static char *sim_usb_syspath(int bus, const char *port)
{
	GString *s = g_string_new(NULL);
	char **parts = g_strsplit(port, ".", -1);
	GString *chain = g_string_new(NULL);

	g_string_printf(s, "%s/usb%d", SIM_PCI_SYSPATH, bus);
	for (int i = 0; parts[i]; i++) {
		if (i)
			g_string_append_c(chain, '.');
		g_string_append(chain, parts[i]);
		g_string_append_printf(s, "/%d-%s", bus, chain->str);
	}
	g_strfreev(parts);
	g_string_free(chain, TRUE);
	return g_string_free(s, FALSE);
}

static void sim_desc_hub(GString *d, int bus, const char *port, int devnum)
{
	char *sys = port ? sim_usb_syspath(bus, port) : g_strdup_printf("%s/usb%d", SIM_PCI_SYSPATH, bus);
	char *idpath = port ? g_strdup_printf("%s-usb-0:%s", SIM_PATH_PREFIX, port) : g_strdup(SIM_PATH_PREFIX);
	char *tag = sim_path_tag(idpath);
	bool root = port == NULL;

	/* add_from_string() wants the path without the leading /sys */
	g_string_append_printf(d, "P: %s\n", sys + 4);
	g_string_append_printf(d, "N: bus/usb/%03d/%03d\n", bus, devnum);
	g_string_append_printf(d,
		"E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\n"
		"E: DEVNAME=/dev/bus/usb/%03d/%03d\nE: BUSNUM=%03d\nE: DEVNUM=%03d\n"
		"E: MAJOR=189\nE: MINOR=%d\n"
		"E: PRODUCT=%s\nE: TYPE=9/0/1\n"
		"E: ID_VENDOR=%s\nE: ID_VENDOR_ENC=%s\nE: ID_VENDOR_ID=%s\n"
		"E: ID_MODEL=%s\nE: ID_MODEL_ENC=%s\nE: ID_MODEL_ID=%s\n"
		"E: ID_REVISION=%s\nE: ID_SERIAL=%s\nE: ID_BUS=usb\nE: ID_USB_INTERFACES=:090000:\n"
		"E: ID_VENDOR_FROM_DATABASE=%s\nE: ID_MODEL_FROM_DATABASE=%s\n"
		"E: ID_PATH=%s\nE: ID_PATH_TAG=%s\n",
		bus, devnum, bus, devnum, (bus - 1) * 128 + devnum - 1,
		root ? "1d6b/2/606" : "2109/3431/421",
		root ? "Linux_6.6.51+rpt-rpi-v8_xhci-hcd" : "USB2.0_Hub",
		root ? "Linux\\x206.6.51+rpt-rpi-v8\\x20xhci-hcd" : "USB2.0\\x20Hub",
		root ? "1d6b" : "2109",
		root ? "xHCI_Host_Controller" : "USB2.0_Hub",
		root ? "xHCI\\x20Host\\x20Controller" : "USB2.0\\x20Hub",
		root ? "0002" : "3431",
		root ? "0606" : "0421",
		root ? "Linux_6.6.51+rpt-rpi-v8_xhci-hcd_xHCI_Host_Controller_0000:01:00.0" : "USB2.0_Hub",
		root ? "Linux Foundation" : "VIA Labs, Inc.",
		root ? "2.0 root hub" : "Hub",
		idpath, tag);
	g_string_append_printf(d,
		"A: idVendor=%s\nA: idProduct=%s\nA: bcdDevice=%s\nA: product=%s\n"
		"A: busnum=%d\nA: devnum=%d\nA: devpath=%s\nA: dev=189:%d\n"
		"A: bDeviceClass=09\nA: bDeviceSubClass=00\nA: bDeviceProtocol=%s\n"
		"A: bNumInterfaces= 1\nA: bNumConfigurations=1\nA: bConfigurationValue=1\n"
		"A: bMaxPacketSize0=64\nA: speed=480\nA: version= 2.10\nA: maxchild=4\n"
		"L: driver=../../../../../../../../../bus/usb/drivers/usb\n",
		root ? "1d6b" : "2109", root ? "0002" : "3431", root ? "0606" : "0421",
		root ? "xHCI Host Controller" : "USB2.0 Hub",
		bus, devnum, port ? port : "0", (bus - 1) * 128 + devnum - 1,
		root ? "01" : "02");
	if (root)
		g_string_append(d, "A: manufacturer=Linux 6.6.51+rpt-rpi-v8 xhci-hcd\nA: serial=0000:01:00.0\n");
	g_string_append_c(d, '\n');
	g_free(sys);
	g_free(idpath);
	g_free(tag);
}

/* The ID_* keys udev's usb_id builtin puts on the device and its tty. */
static void sim_desc_ids(GString *d, const struct sim_hboard *b, const struct sim_ident *id,
			 const char *idpath)
{
	char *vendor = id->manufacturer ? sim_udev_safe(id->manufacturer) : g_strdup(id->vid);
	char *vendor_enc = id->manufacturer ? sim_udev_enc(id->manufacturer) : g_strdup(id->vid);
	char *model = id->product ? sim_udev_safe(id->product) : g_strdup(id->pid);
	char *model_enc = id->product ? sim_udev_enc(id->product) : g_strdup(id->pid);
	char *serial = id->serial ? sim_udev_safe(id->serial) : NULL;
	char *tag = sim_path_tag(idpath);
	const char *ic = b->fx.interface_class;

	g_string_append_printf(d,
		"E: ID_VENDOR=%s\nE: ID_VENDOR_ENC=%s\nE: ID_VENDOR_ID=%s\n"
		"E: ID_MODEL=%s\nE: ID_MODEL_ENC=%s\nE: ID_MODEL_ID=%s\n"
		"E: ID_REVISION=%s\n",
		vendor, vendor_enc, id->vid, model, model_enc, id->pid, b->fx.revision);
	if (serial)
		g_string_append_printf(d, "E: ID_SERIAL=%s_%s_%s\nE: ID_SERIAL_SHORT=%s\n",
				       vendor, model, serial, serial);
	else
		g_string_append_printf(d, "E: ID_SERIAL=%s_%s\n", vendor, model);
	g_string_append_printf(d, "E: ID_BUS=usb\nE: ID_USB_INTERFACES=:%s:%s\n",
			       ic, sim_driver_is_acm(b->fx.driver) ? "0a0000:" : "");
	if (b->fx.vendor_db)
		g_string_append_printf(d, "E: ID_VENDOR_FROM_DATABASE=%s\n", b->fx.vendor_db);
	if (b->fx.model_db)
		g_string_append_printf(d, "E: ID_MODEL_FROM_DATABASE=%s\n", b->fx.model_db);
	g_string_append_printf(d, "E: ID_PATH=%s\nE: ID_PATH_TAG=%s\n", idpath, tag);
	g_free(vendor);
	g_free(vendor_enc);
	g_free(model);
	g_free(model_enc);
	g_free(serial);
	g_free(tag);
}

/* by-id name the way 60-serial.rules builds it. */
static char *sim_byid_name(const struct sim_hboard *b, const struct sim_ident *id)
{
	char *vendor = id->manufacturer ? sim_udev_safe(id->manufacturer) : g_strdup(id->vid);
	char *model = id->product ? sim_udev_safe(id->product) : g_strdup(id->pid);
	char *serial = id->serial ? sim_udev_safe(id->serial) : NULL;
	char *name;

	name = g_strdup_printf("usb-%s_%s%s%s-if00%s", vendor, model, serial ? "_" : "",
			       serial ? serial : "", sim_driver_is_acm(b->fx.driver) ? "" : "-port0");
	g_free(vendor);
	g_free(model);
	g_free(serial);
	return name;
}

static unsigned sim_hex(const char *s, size_t off, size_t n)
{
	char buf[8] = { 0 };

	memcpy(buf, s + off, n);
	return (unsigned)strtoul(buf, NULL, 16);
}

/* Description of the board's USB device, interface(s) and tty for the
 * given identity; also fills the board's syspaths and link names. */
static char *sim_desc_board(struct sim_hboard *b, const struct sim_ident *id)
{
	const struct sim_fixture *f = &b->fx;
	GString *d = g_string_new(NULL);
	char *usb = sim_usb_syspath(f->busnum, f->port);
	char *intf = g_strdup_printf("%s/%d-%s:1.0", usb, f->busnum, f->port);
	char *usb_idpath = g_strdup_printf("%s-usb-0:%s", SIM_PATH_PREFIX, f->port);
	char *tty_idpath = g_strdup_printf("%s-usb-0:%s:1.0", SIM_PATH_PREFIX, f->port);
	bool acm = sim_driver_is_acm(f->driver);
	int minor = atoi(b->tty + 6);
	int major = acm ? 166 : 188;
	unsigned dc = sim_hex(f->device_class, 0, 2);
	unsigned ic = sim_hex(f->interface_class, 0, 2), isc = sim_hex(f->interface_class, 2, 2);
	unsigned ip = sim_hex(f->interface_class, 4, 2);
	unsigned rev = sim_hex(f->revision, 0, 4);
	char *upper_vid = g_ascii_strup(id->vid, -1), *upper_pid = g_ascii_strup(id->pid, -1);
	char *modalias;
	char *tty_parent, *tty_path, *byid, *bypath;

	modalias = g_strdup_printf("usb:v%sp%sd%04Xdc%02Xdsc00dp00ic%02Xisc%02Xip%02Xin00",
				   upper_vid, upper_pid, rev, dc, ic, isc, ip);

	/* USB device */
	g_string_append_printf(d, "P: %s\n", usb + 4);
	g_string_append_printf(d, "N: bus/usb/%03d/%03d\n", f->busnum, b->devnum);
	g_string_append_printf(d,
		"E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\n"
		"E: DEVNAME=/dev/bus/usb/%03d/%03d\nE: BUSNUM=%03d\nE: DEVNUM=%03d\n"
		"E: MAJOR=189\nE: MINOR=%d\nE: PRODUCT=%x/%x/%x\nE: TYPE=%u/0/0\n",
		f->busnum, b->devnum, f->busnum, b->devnum,
		(f->busnum - 1) * 128 + b->devnum - 1,
		sim_hex(id->vid, 0, 4), sim_hex(id->pid, 0, 4), rev, dc);
	sim_desc_ids(d, b, id, usb_idpath);
	g_string_append_printf(d,
		"A: idVendor=%s\nA: idProduct=%s\nA: bcdDevice=%s\n"
		"A: busnum=%d\nA: devnum=%d\nA: devpath=%s\nA: dev=189:%d\n"
		"A: bDeviceClass=%s\nA: bDeviceSubClass=00\nA: bDeviceProtocol=00\n"
		"A: bNumInterfaces= %d\nA: bNumConfigurations=1\nA: bConfigurationValue=1\n"
		"A: bmAttributes=80\nA: bMaxPower=100mA\nA: bMaxPacketSize0=64\n"
		"A: speed=12\nA: version= 2.00\nA: maxchild=0\nA: removable=removable\n"
		"A: authorized=1\nA: avoid_reset_quirk=0\nA: quirks=0x0\n"
		"L: driver=../../../../../../../../../../bus/usb/drivers/usb\n",
		id->vid, id->pid, f->revision, f->busnum, b->devnum, f->port,
		(f->busnum - 1) * 128 + b->devnum - 1, f->device_class, acm ? 2 : 1);
	if (id->manufacturer)
		g_string_append_printf(d, "A: manufacturer=%s\n", id->manufacturer);
	if (id->product)
		g_string_append_printf(d, "A: product=%s\n", id->product);
	if (id->serial)
		g_string_append_printf(d, "A: serial=%s\n", id->serial);
	g_string_append_c(d, '\n');

	/* Interface 0: the one the tty hangs off (cdc_acm's control interface). */
	g_string_append_printf(d, "P: %s\n", intf + 4);
	g_string_append_printf(d,
		"E: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\nE: DRIVER=%s\n"
		"E: PRODUCT=%x/%x/%x\nE: TYPE=%u/0/0\nE: INTERFACE=%u/%u/%u\nE: MODALIAS=%s\n"
		"A: bInterfaceNumber=00\nA: bAlternateSetting= 0\nA: bNumEndpoints=%s\n"
		"A: bInterfaceClass=%02x\nA: bInterfaceSubClass=%02x\nA: bInterfaceProtocol=%02x\n"
		"A: authorized=1\nA: supports_autosuspend=1\nA: modalias=%s\n"
		"L: driver=../../../../../../../../../../../bus/usb/drivers/%s\n\n",
		f->driver, sim_hex(id->vid, 0, 4), sim_hex(id->pid, 0, 4), rev, dc, ic, isc, ip,
		modalias, acm ? "01" : "03", ic, isc, ip, modalias, f->driver);

	if (acm) {
		/* cdc_acm also binds the data interface; no tty below it. */
		g_string_append_printf(d, "P: %s/%d-%s:1.1\n", usb + 4, f->busnum, f->port);
		g_string_append_printf(d,
			"E: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\nE: DRIVER=cdc_acm\n"
			"E: PRODUCT=%x/%x/%x\nE: TYPE=%u/0/0\nE: INTERFACE=10/0/0\n"
			"A: bInterfaceNumber=01\nA: bAlternateSetting= 0\nA: bNumEndpoints=02\n"
			"A: bInterfaceClass=0a\nA: bInterfaceSubClass=00\nA: bInterfaceProtocol=00\n"
			"A: authorized=1\nA: supports_autosuspend=1\n"
			"L: driver=../../../../../../../../../../../bus/usb/drivers/cdc_acm\n\n",
			sim_hex(id->vid, 0, 4), sim_hex(id->pid, 0, 4), rev, dc);
		tty_parent = g_strdup_printf("%s/tty", intf);
	} else {
		/* usb-serial drivers put a port device between interface and tty. */
		g_string_append_printf(d, "P: %s/%s\n", intf + 4, b->tty);
		g_string_append_printf(d,
			"E: SUBSYSTEM=usb-serial\nE: DRIVER=%s\n"
			"A: port_number=0\n"
			"L: driver=../../../../../../../../../../../../bus/usb-serial/drivers/%s\n\n",
			!strcmp(f->driver, "ch341") ? "ch341-uart" : f->driver,
			!strcmp(f->driver, "ch341") ? "ch341-uart" : f->driver);
		tty_parent = g_strdup_printf("%s/%s/tty", intf, b->tty);
	}

	byid = sim_byid_name(b, id);
	bypath = g_strdup_printf("%s%s", tty_idpath, acm ? "" : "-port0");
	tty_path = g_strdup_printf("%s/%s", tty_parent, b->tty);
	g_string_append_printf(d, "P: %s\n", tty_path + 4);
	g_string_append_printf(d,
		"E: SUBSYSTEM=tty\nE: DEVNAME=/dev/%s\nE: MAJOR=%d\nE: MINOR=%d\n"
		"E: DEVLINKS=/dev/serial/by-path/%s /dev/serial/by-id/%s\n",
		b->tty, major, minor, bypath, byid);
	sim_desc_ids(d, b, id, tty_idpath);
	g_string_append_printf(d,
		"E: ID_TYPE=generic\nE: ID_USB_INTERFACE_NUM=00\nE: ID_USB_DRIVER=%s\n"
		"E: ID_MM_CANDIDATE=1\nE: TAGS=:systemd:\nE: CURRENT_TAGS=:systemd:\n"
		"E: USEC_INITIALIZED=%lld\n"
		"A: dev=%d:%d\n"
		/* the kernel's link from a tty to the device it hangs off (the
		 * interface, or usb-serial's port): Klipper's flash_usb.py
		 * reads the USB device's ids and busnum/devnum beside it */
		"L: device=../../../%s\n\n",
		f->driver, (long long)sim_now_ms() * 1000, major, minor,
		acm ? strrchr(intf, '/') + 1 : b->tty);

	/* remember what to take away again, children first */
	b->usb_syspath = usb;
	b->nsyspaths = 0;
	b->syspaths[b->nsyspaths++] = tty_path;
	if (!acm)
		b->syspaths[b->nsyspaths++] = g_strdup_printf("%s/%s", intf, b->tty);
	else
		b->syspaths[b->nsyspaths++] = g_strdup_printf("%s/%d-%s:1.1", usb, f->busnum, f->port);
	b->syspaths[b->nsyspaths++] = intf;
	b->links[0] = g_strdup_printf("serial/by-id/%s", byid);
	b->links[1] = g_strdup_printf("serial/by-path/%s", bypath);

	g_free(usb_idpath);
	g_free(tty_idpath);
	g_free(upper_vid);
	g_free(upper_pid);
	g_free(modalias);
	g_free(tty_parent);
	g_free(byid);
	g_free(bypath);
	return g_string_free(d, FALSE);
}

/* ------------------------------------------------------------------ */
/* ioctl handler: runs on umockdev's worker thread                      */

static void sim_notify(struct sim_hboard *b)
{
	char c = 1;
	ssize_t n;

	/* EAGAIN is fine: a full pipe already means "look again". */
	n = write(b->host->notify[1], &c, 1);
	(void)n;
}

static void sim_on_client_connected(UMockdevIoctlBase *handler, UMockdevIoctlClient *client,
				    gpointer data)
{
	struct sim_hboard *b = data;

	(void)client;
	if (g_atomic_pointer_get(&b->handler) != (gpointer)handler)
		return;
	/* Opening a cdc_acm tty raises DTR and RTS (tty_port_block_til_ready). */
	g_atomic_int_or((guint *)&b->modem, TIOCM_DTR | TIOCM_RTS);
	sim_notify(b);
}

static gboolean sim_on_ioctl(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer data)
{
	struct sim_hboard *b = data;
	gulong req = umockdev_ioctl_client_get_request(client);
	UMockdevIoctlData *arg, *val;
	GError *err = NULL;
	int bits, res, e = 0;

	if (sim_verbose > 1)
		sim_log("%s: ioctl 0x%lx from a client", b->fx.name, (unsigned long)req);
	if (g_atomic_pointer_get(&b->handler) != (gpointer)handler) {
		/* The board re-enumerated under this client: a dead tty. */
		umockdev_ioctl_client_complete(client, -1, EIO);
		return TRUE;
	}
	switch (req) {
	case TIOCMBIS:
	case TIOCMBIC:
	case TIOCMSET:
	case TIOCMGET:
		/* A pty has no modem lines (ENOTTY); a USB CDC device does. */
		arg = umockdev_ioctl_client_get_arg(client);
		val = umockdev_ioctl_data_resolve(arg, 0, sizeof(int), &err);
		if (!val) {
			g_clear_error(&err);
			umockdev_ioctl_client_complete(client, -1, EFAULT);
			return TRUE;
		}
		if (req == TIOCMGET) {
			bits = g_atomic_int_get(&b->modem) | TIOCM_CTS | TIOCM_DSR | TIOCM_CAR;
			umockdev_ioctl_data_update(val, 0, (guint8 *)&bits, sizeof(bits));
		} else {
			memcpy(&bits, val->data, sizeof(bits));
			bits &= TIOCM_DTR | TIOCM_RTS;
			if (req == TIOCMBIS)
				g_atomic_int_or((guint *)&b->modem, (guint)bits);
			else if (req == TIOCMBIC)
				g_atomic_int_and((guint *)&b->modem, ~(guint)bits);
			else
				g_atomic_int_set(&b->modem, bits);
		}
		g_object_unref(val);
		umockdev_ioctl_client_complete(client, 0, 0);
		if (req != TIOCMGET)
			sim_notify(b);
		return TRUE;
	default:
		/* TCGETS2/TCSETS2 (pyserial's custom baud), FIONREAD, TIOCEXCL...:
		 * the pty slave does them itself. */
		res = umockdev_ioctl_client_execute(client, &e, &err);
		if (err) {
			g_clear_error(&err);
			umockdev_ioctl_client_complete(client, -1, EIO);
			return TRUE;
		}
		umockdev_ioctl_client_complete(client, res, e);
		if (req == TCSETS2 || req == TCSETSW2 || req == TCSETSF2 ||
		    req == TCSETS || req == TCSETSW || req == TCSETSF)
			sim_notify(b);
		return TRUE;
	}
}

/* ------------------------------------------------------------------ */
/* Plug and unplug                                                      */

static unsigned sim_baud_of(const struct termios2 *t);
static void sim_unplug_files(struct sim_hboard *b);

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

static int sim_next_devnum(struct sim_host *h, int bus)
{
	int n = h->devnum_next[bus];

	h->devnum_next[bus] = n >= 127 ? 3 : n + 1;
	return n;
}

static int sim_mkdirs(const char *dir)
{
	return g_mkdir_with_parents(dir, 0755) < 0 ? -errno : 0;
}

static int sim_open_master(struct sim_hboard *b, char *pts, size_t ptslen)
{
	struct termios2 t;
	int m;

	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (m < 0)
		return -errno;
	if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, pts, ptslen) != 0) {
		int r = -errno;

		close(m);
		return r;
	}
	/* The line settings cdc_acm and usb-serial start a tty with (9600 baud,
	 * HUPCL, CLOCAL; a pts slave would start at 38400 without HUPCL, and
	 * then closing the port would not drop DTR, which is half of Klipper's
	 * bootloader request). Echo, canonical mode and newline translation go
	 * off as umockdev does for its ttys: clients set raw mode anyway. */
	if (ioctl(m, TCGETS2, &t) == 0) {
		t.c_iflag &= ~(tcflag_t)(IGNCR | INLCR | ICRNL | IXON);
		t.c_oflag &= ~(tcflag_t)(ONLCR | OCRNL | OPOST);
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ECHOE | ISIG | IEXTEN);
		t.c_cflag = B9600 | CS8 | CREAD | HUPCL | CLOCAL;
		t.c_ispeed = t.c_ospeed = 9600;
		(void)ioctl(m, TCSETS2, &t);
	}
	(void)b;
	return m;
}

static void sim_rmdir_empty(struct sim_host *h, const char *rel)
{
	char *p = g_build_filename(h->root, "dev", rel, NULL);

	(void)rmdir(p);
	g_free(p);
}

static void sim_forget_paths(struct sim_hboard *b)
{
	for (int i = 0; i < b->nsyspaths; i++)
		g_clear_pointer(&b->syspaths[i], g_free);
	b->nsyspaths = 0;
	g_clear_pointer(&b->usb_syspath, g_free);
	g_clear_pointer(&b->links[0], g_free);
	g_clear_pointer(&b->links[1], g_free);
	g_clear_pointer(&b->ptymap, g_free);
}

static void sim_image_stat(const struct sim_hboard *b, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	if (b->image_path && stat(b->image_path, st) < 0)
		memset(st, 0, sizeof(*st));
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

/* Enumerate board B in MODE. Returns 0 or -errno; on failure nothing of it is left.
 *
 * umockdev 0.17's add_from_string() sends the "add" uevents itself, parents
 * first, so everything a listener looks for when it hears of the tty (the
 * node, the by-id and by-path links, a working ioctl handler) is put in
 * place before the devices are added; udev too creates the links before it
 * passes the event on. */
static int sim_plug(struct sim_hboard *b, enum sim_mode mode, bool announce)
{
	struct sim_host *h = b->host;
	struct sim_ident id;
	char *desc, *node = NULL, *p;
	char pts[64];
	GError *err = NULL;
	UMockdevIoctlBase *handler;
	struct termios2 t;
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
	sim_pick_tty(b);
	desc = sim_desc_board(b, &id);
	sim_debug("%s: enumerating as %s:%s on %s%s%s", b->fx.name, id.vid, id.pid, b->tty,
		  sim_verbose > 1 ? "\n" : "", sim_verbose > 1 ? desc : "");

	/* the tty node: a pty of ours, see the top of this file */
	b->master = sim_open_master(b, pts, sizeof(pts));
	if (b->master < 0) {
		r = b->master;
		sim_log("%s: cannot open a pty: %s", b->fx.name, strerror(-r));
		goto out_forget;
	}
	node = g_build_filename(h->root, "dev", b->tty, NULL);
	(void)unlink(node);
	if (symlink(pts, node) < 0) {
		r = -errno;
		sim_log("%s: cannot create /dev/%s: %s", b->fx.name, b->tty, strerror(-r));
		goto out_close;
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

	handler = g_object_new(UMOCKDEV_TYPE_IOCTL_BASE, NULL);
	g_signal_connect(handler, "handle-ioctl", G_CALLBACK(sim_on_ioctl), b);
	g_signal_connect(handler, "client-connected", G_CALLBACK(sim_on_client_connected), b);
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

	b->hup = false;
	b->npending = 0;
	b->write_started = false;
	b->scan = 0;
	b->last_baud = 0;
	b->last_dtr = 0;
	if (ioctl(b->master, TCGETS2, &t) == 0)
		b->last_baud = sim_baud_of(&t);
	sim_image_stat(b, &b->image_st);

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
	sim_debug("%s: /dev/%s -> %s (%s)", b->fx.name, b->tty, pts, b->links[0]);
	g_free(desc);
	g_free(node);
	return 0;

out_close:
	close(b->master);
	b->master = -1;
out_forget:
	sim_forget_paths(b);
	b->tty[0] = '\0';
	g_free(desc);
	g_free(node);
	return r;
}

/* Undo what sim_plug() made outside sysfs: handler, pty, links. */
static void sim_unplug_files(struct sim_hboard *b)
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
static void sim_unplug(struct sim_hboard *b)
{
	struct sim_host *h = b->host;
	char *p;

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
/* Serving the ttys                                                     */

static unsigned sim_baud_of(const struct termios2 *t)
{
	static const struct { tcflag_t code; unsigned baud; } map[] = {
		{ B0, 0 }, { B50, 50 }, { B75, 75 }, { B110, 110 }, { B134, 134 },
		{ B150, 150 }, { B200, 200 }, { B300, 300 }, { B600, 600 },
		{ B1200, 1200 }, { B1800, 1800 }, { B2400, 2400 }, { B4800, 4800 },
		{ B9600, 9600 }, { B19200, 19200 }, { B38400, 38400 },
		{ B57600, 57600 }, { B115200, 115200 }, { B230400, 230400 },
		{ B460800, 460800 }, { B500000, 500000 }, { B576000, 576000 },
		{ B921600, 921600 }, { B1000000, 1000000 }, { B1152000, 1152000 },
		{ B1500000, 1500000 }, { B2000000, 2000000 }, { B2500000, 2500000 },
		{ B3000000, 3000000 }, { B3500000, 3500000 }, { B4000000, 4000000 },
	};
	tcflag_t code = t->c_cflag & CBAUD;

	if (code == BOTHER)
		return t->c_ospeed;
	for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
		if (map[i].code == code)
			return map[i].baud;
	return t->c_ospeed;
}

static void sim_schedule_reset(struct sim_hboard *b, enum sim_mode next)
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

static void sim_take_events(struct sim_hboard *b)
{
	enum sim_event ev;
	struct stat st;
	int guard = 0;

	if (!b->core)
		return;
	while ((ev = sim_board_take_event(b->core)) != SIM_EV_NONE && guard++ < 8) {
		switch (ev) {
		case SIM_EV_ENTER_BOOTLOADER:
			sim_event(b->host, b->fx.name, "bootloader-request");
			sim_schedule_reset(b, SIM_MODE_KATAPULT);
			break;
		case SIM_EV_BOOT_APP:
		case SIM_EV_HANG:
			sim_image_stat(b, &st);
			if (st.st_mtime && (st.st_ino != b->image_st.st_ino ||
					    st.st_size != b->image_st.st_size ||
					    st.st_mtim.tv_sec != b->image_st.st_mtim.tv_sec ||
					    st.st_mtim.tv_nsec != b->image_st.st_mtim.tv_nsec))
				sim_event(b->host, b->fx.name, "flash-complete bytes=%lld",
					  (long long)st.st_size);
			b->image_st = st;
			/* "boot-app" whatever comes next: the bootloader has
			 * acked COMPLETE and jumps. An image the CPU cannot
			 * start hangs it (disconnect, hang); otherwise
			 * after_complete decides whether the app runs
			 * (disconnect, enumerate klipper), falls back to the
			 * bootloader or leaves the bus */
			sim_event(b->host, b->fx.name, "boot-app");
			sim_schedule_reset(b, b->fx.after_complete == SIM_AFTER_KATAPULT ?
					   SIM_MODE_KATAPULT : SIM_MODE_KLIPPER);
			b->stay_away = b->fx.after_complete == SIM_AFTER_GONE;
			b->hang = ev == SIM_EV_HANG;
			break;
		default:
			break;
		}
	}
}

static void sim_flush_pending(struct sim_hboard *b)
{
	ssize_t n;

	while (b->npending && b->master >= 0) {
		n = write(b->master, b->pending, b->npending);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				b->npending = 0;	/* hung up: the bytes are lost, as on USB */
			return;
		}
		memmove(b->pending, b->pending + n, b->npending - (size_t)n);
		b->npending -= (size_t)n;
	}
}

static void sim_queue(struct sim_hboard *b, const uint8_t *data, size_t len)
{
	if (len > sizeof(b->pending) - b->npending) {
		sim_log("%s: output overrun, %zu bytes dropped", b->fx.name, len);
		len = sizeof(b->pending) - b->npending;
	}
	memcpy(b->pending + b->npending, data, len);
	b->npending += len;
	sim_flush_pending(b);
}

/* Logs "write-start" when the first SEND_BLOCK of a Katapult session
 * arrives (frame start 01 88 12), before the board sees it. */
static void sim_scan_send_block(struct sim_hboard *b, const uint8_t *in, size_t len)
{
	static const uint8_t start[] = { 0x01, 0x88, 0x12 };

	if (b->write_started || sim_board_mode(b->core) != SIM_MODE_KATAPULT)
		return;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == start[b->scan])
			b->scan++;
		else
			b->scan = in[i] == start[0] ? 1 : 0;
		if (b->scan == sizeof(start)) {
			b->write_started = true;
			sim_event(b->host, b->fx.name, "write-start");
			return;
		}
	}
}

static void sim_read_master(struct sim_hboard *b)
{
	static uint8_t out[65536];
	uint8_t in[4096];
	size_t olen;
	ssize_t n;
	int r;

	for (;;) {
		n = read(b->master, in, sizeof(in));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* EIO: the last client closed the slave */
			b->hup = true;
			return;
		}
		/* fixed devices swallow what they get; a board that is resetting
		 * (between its event and the disconnect) no longer runs code */
		if (!b->core || b->state != SIM_ST_PRESENT)
			continue;
		sim_scan_send_block(b, in, (size_t)n);
		olen = 0;
		r = sim_board_input(b->core, in, (size_t)n, out, sizeof(out), &olen);
		if (r < 0)
			sim_log("%s: board input: %s", b->fx.name, strerror(-r));
		if (olen)
			sim_queue(b, out, olen);
		sim_take_events(b);
	}
}

/* Compare the line settings with what the board last heard. */
static void sim_check_line(struct sim_hboard *b)
{
	struct termios2 t;
	unsigned baud;
	int dtr;

	if (b->master < 0 || ioctl(b->master, TCGETS2, &t) < 0)
		return;
	baud = sim_baud_of(&t);
	dtr = (g_atomic_int_get(&b->modem) & TIOCM_DTR) ? 1 : 0;
	if (baud == b->last_baud && dtr == b->last_dtr)
		return;
	sim_debug("%s: line baud=%u dtr=%d", b->fx.name, baud, dtr);
	b->last_baud = baud;
	b->last_dtr = dtr;
	if (b->core) {
		sim_board_line(b->core, baud, dtr);
		sim_take_events(b);
	}
}

/* A client closing the last slave fd: HUPCL drops DTR, as the tty layer
 * does on a real port. */
static void sim_slave_closed(struct sim_hboard *b)
{
	struct termios2 t;

	if (b->master >= 0 && ioctl(b->master, TCGETS2, &t) == 0 && (t.c_cflag & HUPCL))
		g_atomic_int_and((guint *)&b->modem, ~(guint)(TIOCM_DTR | TIOCM_RTS));
	sim_debug("%s: client closed /dev/%s (HUPCL %s)", b->fx.name, b->tty,
		  (t.c_cflag & HUPCL) ? "drops DTR" : "off");
	b->npending = 0;
}

/* While no client has the slave open the master polls POLLHUP forever, so
 * it is left out of poll() and looked at once a tick. */
static void sim_check_hup(struct sim_hboard *b)
{
	struct pollfd p = { .fd = b->master, .events = POLLIN };

	if (b->master < 0 || !b->hup)
		return;
	if (poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP))
		b->hup = false;
}

/* ------------------------------------------------------------------ */
/* The control FIFO: scenarios change the world while the command runs  */

static struct sim_hboard *sim_find_board(struct sim_host *h, const char *name)
{
	for (int i = 0; i < h->nboards; i++)
		if (!strcmp(h->boards[i].fx.name, name))
			return &h->boards[i];
	return NULL;
}

/* The mode the board would come back in: the firmware now running. */
static enum sim_mode sim_running_mode(const struct sim_hboard *b)
{
	return b->state == SIM_ST_PRESENT ? b->mode : b->next_mode;
}

/* "unplug NAME": off the bus at once, whatever it was doing. */
static void sim_ctl_unplug(struct sim_hboard *b)
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
static void sim_ctl_plug(struct sim_hboard *b)
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
static void sim_ctl_mode(struct sim_hboard *b, enum sim_mode mode)
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

static void sim_ctl_line(struct sim_host *h, char *line)
{
	char *argv[4] = { NULL };
	int argc = 0;
	struct sim_hboard *b;

	for (char *tok = strtok(line, " \t\r"); tok; tok = strtok(NULL, " \t\r")) {
		if (argc == (int)G_N_ELEMENTS(argv)) {
			sim_log("control: too many words, line ignored");
			return;
		}
		argv[argc++] = tok;
	}
	if (!argc || argv[0][0] == '#')
		return;
	if ((strcmp(argv[0], "unplug") && strcmp(argv[0], "plug") && strcmp(argv[0], "mode")) ||
	    argc != (strcmp(argv[0], "mode") ? 2 : 3)) {
		sim_log("control: unknown command '%s%s%s%s%s' ignored (unplug NAME, plug NAME, "
			"mode NAME klipper|katapult)", argv[0], argc > 1 ? " " : "",
			argc > 1 ? argv[1] : "", argc > 2 ? " " : "", argc > 2 ? argv[2] : "");
		return;
	}
	b = sim_find_board(h, argv[1]);
	if (!b) {
		sim_log("control: %s: no board named '%s', ignored", argv[0], argv[1]);
		return;
	}
	sim_debug("control: %s %s%s%s", argv[0], argv[1], argc > 2 ? " " : "", argc > 2 ? argv[2] : "");
	if (!strcmp(argv[0], "unplug")) {
		sim_ctl_unplug(b);
	} else if (!strcmp(argv[0], "plug")) {
		sim_ctl_plug(b);
	} else if (!strcmp(argv[2], "klipper")) {
		sim_ctl_mode(b, SIM_MODE_KLIPPER);
	} else if (!strcmp(argv[2], "katapult")) {
		sim_ctl_mode(b, SIM_MODE_KATAPULT);
	} else {
		sim_log("control: mode %s: unknown mode '%s' (klipper or katapult), ignored",
			argv[1], argv[2]);
	}
}

/* Reads what the writers sent; runs each complete line. */
static void sim_ctl_read(struct sim_host *h)
{
	for (;;) {
		ssize_t n = read(h->ctl_fd, h->ctl_buf + h->ctl_len, sizeof(h->ctl_buf) - 1 - h->ctl_len);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		h->ctl_len += (size_t)n;
		h->ctl_buf[h->ctl_len] = '\0';
		while ((nl = memchr(h->ctl_buf, '\n', h->ctl_len))) {
			size_t used = (size_t)(nl - h->ctl_buf) + 1;

			*nl = '\0';
			if (!h->ctl_overlong)
				sim_ctl_line(h, h->ctl_buf);
			h->ctl_overlong = false;
			memmove(h->ctl_buf, h->ctl_buf + used, h->ctl_len - used);
			h->ctl_len -= used;
			h->ctl_buf[h->ctl_len] = '\0';
		}
		if (h->ctl_len == sizeof(h->ctl_buf) - 1) {
			if (!h->ctl_overlong)
				sim_log("control: line too long, ignored");
			h->ctl_overlong = true;
			h->ctl_len = 0;
		}
	}
}

/* Makes the FIFO at PATH (replacing a stale one) and keeps it open for
 * reading and writing, so writers never block in open() and we never see
 * EOF when one goes away. */
static int sim_ctl_open(struct sim_host *h, const char *path)
{
	struct stat st;
	char *abs;

	if (lstat(path, &st) == 0) {
		if (!S_ISFIFO(st.st_mode)) {
			sim_log("%s: exists and is not a FIFO", path);
			return -EEXIST;
		}
		(void)unlink(path);
	}
	if (mkfifo(path, 0600) < 0) {
		int r = -errno;

		sim_log("control FIFO %s: %s", path, strerror(-r));
		return r;
	}
	h->ctl_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (h->ctl_fd < 0) {
		int r = -errno;

		sim_log("control FIFO %s: %s", path, strerror(-r));
		(void)unlink(path);
		return r;
	}
	abs = g_canonicalize_filename(path, NULL);
	h->ctl_path = abs;
	/* so the command (or what it runs) can find it */
	setenv("KFLASH_SIM_CONTROL", abs, 1);
	sim_debug("control FIFO %s", abs);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The command                                                          */

static bool sim_gave_tty;	/* the command got the terminal's foreground */

static pid_t sim_spawn(char **argv, sigset_t *oldmask)
{
	int pfd[2];
	pid_t pid;
	int e = 0;
	ssize_t n;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		close(pfd[0]);
		(void)setpgid(0, 0);
		/* interactive commands (kflash's menu) need the terminal */
		if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgid(getppid()))
			(void)tcsetpgrp(STDIN_FILENO, getpid());
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTTOU, SIG_DFL);
		sigprocmask(SIG_SETMASK, oldmask, NULL);
		execvp(argv[0], argv);
		e = errno;
		if (write(pfd[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	(void)setpgid(pid, pid);
	if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp())
		sim_gave_tty = tcsetpgrp(STDIN_FILENO, pid) == 0;
	close(pfd[1]);
	do
		n = read(pfd[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof(e)) {
		sim_log("cannot run %s: %s", argv[0], strerror(e));
		(void)waitpid(pid, NULL, 0);
		errno = e;
		return -2;
	}
	return pid;
}

/* Processes left behind by the command were re-parented to us (we are a
 * subreaper): end them too, so nothing outlives the testbed. */
static int sim_kill_orphans(int sig)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t self = getpid();
	int found = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[64], buf[512], *p;
		FILE *f;
		pid_t pid = (pid_t)atoi(de->d_name), ppid;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		f = fopen(path, "re");
		if (!f)
			continue;
		p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == self) {
			found++;
			(void)kill(pid, sig);
		}
	}
	closedir(d);
	return found;
}

/* ------------------------------------------------------------------ */
/* main                                                                 */

static void sim_usage(FILE *to)
{
	fputs("usage: kflash-simhost [-v] [--events FILE] [--image-dir DIR] [--control FIFO]\n"
	      "         --board FILE[:klipper|:katapult][,key=value...]... -- COMMAND [ARG...]\n"
	      "Runs COMMAND in a umockdev testbed holding the given USB boards and serves\n"
	      "their ttys with the board emulator until COMMAND exits; exits with its status.\n"
	      "key=value pieces override the board file's keys. --control (default\n"
	      "$KFLASH_SIM_STATE/simhost.ctl when that is set) makes a FIFO that takes the\n"
	      "lines 'unplug NAME', 'plug NAME', 'mode NAME klipper|katapult'.\n"
	      "Run it under umockdev-wrapper (it re-executes itself under it if needed).\n",
	      to);
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

/* --board FILE[:klipper|:katapult][,key=value...] */
static int sim_add_board(struct sim_host *h, const char *spec)
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

/* Root hubs and the hubs between them and the boards, added once. */
static int sim_add_hubs(struct sim_host *h)
{
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GString *d = g_string_new(NULL);
	GError *err = NULL;
	int r = 0;

	for (int i = 0; i < h->nboards; i++) {
		const struct sim_fixture *f = &h->boards[i].fx;
		char *key = g_strdup_printf("%d", f->busnum);
		char **parts;
		GString *chain;

		if (!g_hash_table_contains(seen, key)) {
			sim_desc_hub(d, f->busnum, NULL, 1);
			g_hash_table_add(seen, key);
		} else {
			g_free(key);
		}
		parts = g_strsplit(f->port, ".", -1);
		chain = g_string_new(NULL);
		for (int j = 0; parts[j] && parts[j + 1]; j++) {
			if (j)
				g_string_append_c(chain, '.');
			g_string_append(chain, parts[j]);
			key = g_strdup_printf("%d-%s", f->busnum, chain->str);
			if (!g_hash_table_contains(seen, key)) {
				sim_desc_hub(d, f->busnum, chain->str, sim_next_devnum(h, f->busnum));
				g_hash_table_add(seen, key);
			} else {
				g_free(key);
			}
		}
		g_string_free(chain, TRUE);
		g_strfreev(parts);
	}
	if (d->len && !umockdev_testbed_add_from_string(h->tb, d->str, &err)) {
		sim_log("cannot add the USB hubs: %s", err->message);
		g_error_free(err);
		r = -EINVAL;
	}
	g_string_free(d, TRUE);
	g_hash_table_destroy(seen);
	return r;
}

static void sim_core_log(void *ctx, const char *msg)
{
	const struct sim_hboard *b = ctx;

	sim_debug("%s: %s", b->fx.name, msg);
}

static int sim_make_cores(struct sim_host *h)
{
	for (int i = 0; i < h->nboards; i++) {
		struct sim_hboard *b = &h->boards[i];
		struct sim_board_cfg cfg;

		b->image_path = g_strdup_printf("%s/%s.bin", h->image_dir, b->fx.name);
		if (b->fx.kind == SIM_KIND_FIXED)
			continue;
		cfg = (struct sim_board_cfg){
			.mcu = b->fx.mcu,
			.serial = b->fx.serial,
			.image_path = b->image_path,
			.version = b->fx.version,
			.mode = b->fx.mode,
			.block_size = b->fx.block_size,
			.app_start = b->fx.app_start,
			.fault = b->fx.fault,
			.log = sim_core_log,
			.log_ctx = b,
		};
		if (sim_board_cfg_problem(&cfg)) {
			sim_log("%s: mcu=%s block_size=%u app_start=0x%08x: %s", b->fx.name,
				b->fx.mcu, (unsigned)b->fx.block_size, (unsigned)b->fx.app_start,
				sim_board_cfg_problem(&cfg));
			return -EINVAL;
		}
		b->core = sim_board_new(&cfg);
		if (!b->core) {
			sim_log("%s: the board emulator: %s", b->fx.name, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static void sim_rm_rf(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *p;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = g_build_filename(dir, de->d_name, NULL);
		if (unlink(p) < 0 && errno == EISDIR)
			sim_rm_rf(p);
		g_free(p);
	}
	closedir(d);
	(void)rmdir(dir);
}

static int sim_reexec_under_wrapper(char **argv)
{
	int argc = 0;
	char **nargv;

	char self[PATH_MAX];
	ssize_t n;

	if (getenv("KFLASH_SIMHOST_REEXEC")) {
		sim_log("SKIP: libumockdev-preload is not loaded even under umockdev-wrapper");
		return -1;
	}
	setenv("KFLASH_SIMHOST_REEXEC", "1", 1);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -1;
	self[n] = '\0';
	while (argv[argc])
		argc++;
	nargv = g_new0(char *, (size_t)argc + 2);
	nargv[0] = (char *)"umockdev-wrapper";
	for (int i = 0; i < argc; i++)
		nargv[i + 1] = argv[i];
	nargv[1] = self;
	execvp(nargv[0], nargv);
	sim_log("SKIP: not running under umockdev-wrapper, and cannot run it: %s", strerror(errno));
	g_free(nargv);
	return -1;
}

int main(int argc, char **argv)
{
	static struct sim_host host;
	struct sim_host *h = &host;
	const char *events_path = NULL, *control_path = NULL;
	char *control_default = NULL;
	char **cmd = NULL;
	sigset_t mask, oldmask;
	int sfd, status = 0, exit_code = 1, argi, made;
	pid_t child = -1;
	bool child_done = false, stopping = false;
	int stop_sig = 0;
	int64_t kill_deadline = 0;

	/* `kflash-simhost --now`: the event log's clock for shell scripts (a
	 * Python start per event line costs the scenarios seconds) */
	if (argc == 2 && strcmp(argv[1], "--now") == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		printf("%lld.%03ld\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
		return 0;
	}

	h->events_fd = -1;
	h->ctl_fd = -1;
	h->notify[0] = h->notify[1] = -1;
	for (int i = 0; i <= 32; i++)
		h->devnum_next[i] = 2;

	for (argi = 1; argi < argc; argi++) {
		const char *a = argv[argi];

		if (!strcmp(a, "--")) {
			cmd = &argv[argi + 1];
			break;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			sim_usage(stdout);
			return 0;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			sim_verbose++;
		} else if (!strcmp(a, "--board") && argi + 1 < argc) {
			argi++;
		} else if (!strcmp(a, "--events") && argi + 1 < argc) {
			events_path = argv[++argi];
		} else if (!strcmp(a, "--image-dir") && argi + 1 < argc) {
			h->image_dir = g_strdup(argv[++argi]);
		} else if (!strcmp(a, "--control") && argi + 1 < argc) {
			control_path = argv[++argi];
		} else {
			sim_usage(stderr);
			return 2;
		}
	}
	if (!cmd || !cmd[0]) {
		sim_usage(stderr);
		return 2;
	}
	/* umockdev_in_mock_environment() only says whether a testbed is
	 * active (UMOCKDEV_DIR); what we need is the preload library. */
	if (!getenv("LD_PRELOAD") || !strstr(getenv("LD_PRELOAD"), "libumockdev-preload")) {
		sim_reexec_under_wrapper(argv);
		return 77;
	}
	unsetenv("KFLASH_SIMHOST_REEXEC");	/* not for the command */
	/* after the re-exec check, so the wrapper's environment is ours */
	for (argi = 1; argi < argc && strcmp(argv[argi], "--"); argi++) {
		if (!strcmp(argv[argi], "--board")) {
			if (sim_add_board(h, argv[++argi]) < 0)
				return 2;
		} else if (!strcmp(argv[argi], "--events") || !strcmp(argv[argi], "--image-dir") ||
			   !strcmp(argv[argi], "--control")) {
			argi++;
		}
	}
	if (!h->nboards) {
		sim_log("no --board given");
		return 2;
	}

	/* Signals become events on a signalfd; block them before umockdev
	 * starts its worker thread so that thread never takes one. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);	/* taking the terminal back from the command */
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || pipe2(h->notify, O_CLOEXEC | O_NONBLOCK) < 0) {
		sim_log("signalfd/pipe: %s", strerror(errno));
		return 1;
	}
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1);

	if (events_path) {
		h->events_fd = open(events_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (h->events_fd < 0) {
			sim_log("%s: %s", events_path, strerror(errno));
			return 1;
		}
	}
	if (!h->image_dir) {
		char tmpl[] = "/tmp/kflash-simhost-images.XXXXXX";

		if (!mkdtemp(tmpl)) {
			sim_log("mkdtemp: %s", strerror(errno));
			return 1;
		}
		h->image_dir = g_strdup(tmpl);
		h->image_dir_owned = true;
	} else if (sim_mkdirs(h->image_dir) < 0) {
		sim_log("%s: %s", h->image_dir, strerror(errno));
		return 1;
	}

	if (!control_path && getenv("KFLASH_SIM_STATE") && *getenv("KFLASH_SIM_STATE"))
		control_path = control_default =
			g_build_filename(getenv("KFLASH_SIM_STATE"), "simhost.ctl", NULL);
	if (control_path && sim_ctl_open(h, control_path) < 0)
		goto out;

	h->tb = umockdev_testbed_new();
	h->root = umockdev_testbed_get_root_dir(h->tb);
	sim_debug("testbed %s", h->root);
	made = sim_make_cores(h);
	if (made < 0) {
		exit_code = made == -EINVAL ? 2 : 1;	/* a board the emulator cannot be */
		goto out;
	}
	if (sim_add_hubs(h) < 0)
		goto out;
	for (int i = 0; i < h->nboards; i++) {
		struct sim_hboard *b = &h->boards[i];

		if (sim_plug(b, b->fx.mode, true) < 0)
			goto out;
	}

	child = sim_spawn(cmd, &oldmask);
	if (child < 0) {
		exit_code = child == -2 ? 127 : 1;
		if (child == -1)
			sim_log("fork: %s", strerror(errno));
		goto out;
	}

	while (!child_done) {
		struct pollfd pfd[SIM_MAX_BOARDS + 3];
		struct sim_hboard *who[SIM_MAX_BOARDS + 3];
		int n = 0, timeout = -1, r, first_board;
		int64_t now = sim_now_ms();
		bool tick = false;

		pfd[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = h->notify[0], .events = POLLIN };
		/* fd -1 when there is no FIFO: poll() skips it */
		pfd[n++] = (struct pollfd){ .fd = h->ctl_fd, .events = POLLIN };
		first_board = n;
		for (int i = 0; i < h->nboards; i++) {
			struct sim_hboard *b = &h->boards[i];

			if (b->state == SIM_ST_LEAVING || b->state == SIM_ST_ABSENT) {
				int64_t left = b->deadline - now;

				left = left < 0 ? 0 : left;
				if (timeout < 0 || left < timeout)
					timeout = (int)left;
			}
			if (b->master < 0)
				continue;
			tick = true;
			if (b->hup)
				continue;
			who[n] = b;
			pfd[n++] = (struct pollfd){ .fd = b->master,
				.events = POLLIN | (b->npending ? POLLOUT : 0) };
		}
		if (tick && (timeout < 0 || timeout > SIM_TICK_MS))
			timeout = SIM_TICK_MS;
		if (stopping) {
			int64_t left = kill_deadline - now;

			left = left < 0 ? 0 : left;
			if (timeout < 0 || left < timeout)
				timeout = (int)left;
		}

		r = poll(pfd, (nfds_t)n, timeout);
		if (r < 0 && errno != EINTR) {
			sim_log("poll: %s", strerror(errno));
			break;
		}

		if (r > 0 && (pfd[0].revents & POLLIN)) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGCHLD)
					continue;
				if (!stopping) {
					/* the last-resort path: the command's whole group goes */
					stop_sig = (int)si.ssi_signo;
					stopping = true;
					kill_deadline = sim_now_ms() + SIM_KILL_GRACE_MS;
					sim_debug("signal %d: stopping %d", stop_sig, (int)child);
					(void)killpg(child, SIGTERM);
				}
			}
			/* reap everything; only our command's status matters */
			for (;;) {
				int st;
				pid_t p = waitpid(-1, &st, WNOHANG);

				if (p <= 0)
					break;
				if (p == child) {
					status = st;
					child_done = true;
				}
			}
		}
		if (r > 0 && (pfd[1].revents & POLLIN)) {
			char buf[64];

			while (read(h->notify[0], buf, sizeof(buf)) > 0)
				;
			for (int i = 0; i < h->nboards; i++)
				if (h->boards[i].state == SIM_ST_PRESENT || h->boards[i].state == SIM_ST_LEAVING)
					sim_check_line(&h->boards[i]);
		}
		for (int k = first_board; r > 0 && k < n; k++) {
			struct sim_hboard *b = who[k];

			if (!pfd[k].revents || b->master != pfd[k].fd)
				continue;
			if (pfd[k].revents & POLLOUT)
				sim_flush_pending(b);
			if (pfd[k].revents & (POLLIN | POLLERR))
				sim_read_master(b);
			if ((pfd[k].revents & POLLHUP) && !(pfd[k].revents & POLLIN))
				b->hup = true;
			if (b->hup && b->master >= 0)
				sim_slave_closed(b);
		}

		/* after the ttys: bytes already sent reach the board before it goes */
		if (r > 0 && (pfd[2].revents & POLLIN))
			sim_ctl_read(h);

		now = sim_now_ms();
		for (int i = 0; i < h->nboards; i++) {
			struct sim_hboard *b = &h->boards[i];

			if (b->state == SIM_ST_PRESENT || b->state == SIM_ST_LEAVING) {
				sim_check_hup(b);
				sim_check_line(b);
			}
			if (b->state == SIM_ST_LEAVING && now >= b->deadline) {
				sim_event(h, b->fx.name, "disconnect %s", sim_mode_name(b, b->mode));
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
		if (stopping && !child_done && sim_now_ms() >= kill_deadline) {
			(void)killpg(child, SIGKILL);
			kill_deadline = sim_now_ms() + 1000;
		}
	}

	if (stop_sig)
		exit_code = 128 + stop_sig;
	else if (WIFEXITED(status))
		exit_code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		exit_code = 128 + WTERMSIG(status);

out:
	if (child > 0) {
		/* Leftovers of the command: its group, then anything re-parented
		 * to us; they must not outlive the testbed. */
		int64_t until = sim_now_ms() + 1000;

		(void)killpg(child, SIGTERM);
		(void)sim_kill_orphans(SIGTERM);
		while (sim_now_ms() < until) {
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
			if (!sim_kill_orphans(0))
				break;
			usleep(10000);
		}
		(void)killpg(child, SIGKILL);
		(void)sim_kill_orphans(SIGKILL);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (sim_gave_tty)
			(void)tcsetpgrp(STDIN_FILENO, getpgrp());
	}
	/* no uevents now: the testbed and whoever listened are going away */
	for (int i = 0; i < h->nboards; i++) {
		struct sim_hboard *b = &h->boards[i];

		if (b->master >= 0)
			sim_unplug_files(b);
		sim_forget_paths(b);
	}
	if (h->tb)
		g_object_unref(h->tb);	/* removes the testbed directory */
	for (int i = 0; i < h->nboards; i++) {
		struct sim_hboard *b = &h->boards[i];

		if (b->core)
			sim_board_free(b->core);
		g_free(b->image_path);
		sim_fixture_release(&b->fx);
	}
	if (h->image_dir_owned)
		sim_rm_rf(h->image_dir);
	g_free(h->image_dir);
	g_free(h->root);
	if (h->events_fd >= 0)
		close(h->events_fd);
	if (h->ctl_fd >= 0) {
		close(h->ctl_fd);
		(void)unlink(h->ctl_path);
	}
	g_free(h->ctl_path);
	g_free(control_default);
	return exit_code;
}
