/* cmd_doctor.c - kflash doctor: is this host ready to flash? One line per
 * check, each failure with its fix. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kflash/build.h"
#include "kflash/can.h"
#include "kflash/commands.h"
#include "kflash/flash.h"
#include "kflash/window.h"
#include "kflash/instances.h"
#include "kflash/kconfig.h"
#include "kflash/moonraker.h"
#include "kflash/proc.h"
#include "kflash/registry.h"
#include "kflash/self.h"
#include "kflash/service.h"
#include "kflash/transport.h"
#include "kflash/util.h"

struct doctor {
	struct kf_ctx *ctx;
	json_t *checks;
	int failed;
	bool utf8;
};

enum verdict { V_OK, V_FAIL, V_WARN };

static void verdict(struct doctor *d, enum verdict v, const char *what, const char *fixs)
{
	static const char *const ascii[] = { "ok", "FAIL", "warn" };
	static const char *const utf8[] = { "✓", "✗", "!" };
	static const char *const colour[] = { "\033[32m", "\033[31m", "\033[33m" };
	const char *mark = d->utf8 ? utf8[v] : ascii[v];

	if (d->ctx->out->out_colour)
		kf_out_result(d->ctx->out, "%s%s\033[0m %s", colour[v], mark, what);
	else
		kf_out_result(d->ctx->out, "%s %s", mark, what);
	if (v != V_OK && fixs)
		kf_out_result(d->ctx->out, "    fix: %s", fixs);
	json_array_append_new(d->checks, json_pack("{s:s, s:b, s:b, s:s?}", "check", what,
						   "ok", v == V_OK, "warning", v == V_WARN,
						   "fix", v == V_OK ? NULL : fixs));
	d->failed += v == V_FAIL;
}

static void report(struct doctor *d, bool ok, const char *what, const char *fix,
		   ...) __attribute__((format(printf, 4, 5)));
static void report(struct doctor *d, bool ok, const char *what, const char *fix, ...)
{
	char *fixs = NULL;
	va_list ap;

	if (fix) {
		va_start(ap, fix);
		fixs = kf_vasprintf(fix, ap);
		va_end(ap);
	}
	verdict(d, ok ? V_OK : V_FAIL, what, fixs);
	free(fixs);
}

/* A check that fails only as a warning: what it finds matters in a case
 * that may never come (make flash as a fallback). */
static void report_or_warn(struct doctor *d, bool ok, bool warn_only, const char *what,
			   const char *fix, ...) __attribute__((format(printf, 5, 6)));
static void report_or_warn(struct doctor *d, bool ok, bool warn_only, const char *what,
			   const char *fix, ...)
{
	char *fixs;
	va_list ap;

	va_start(ap, fix);
	fixs = kf_vasprintf(fix, ap);
	va_end(ap);
	verdict(d, ok ? V_OK : warn_only ? V_WARN : V_FAIL, what, fixs);
	free(fixs);
}

static bool is_file(struct kf_ctx *ctx, const char *path)
{
	enum kf_file_kind k;

	return kf_os_file_kind(ctx->ops, path, &k, NULL) == 0 && k == KF_FILE_REG;
}

static bool python_has_pyserial(struct kf_ctx *ctx, const char *python)
{
	const char *argv[] = { python, "-c", "import serial", NULL };
	struct kf_spawn_req req = { .argv = argv, .in = KF_STDIO_NULL,
				    .out = KF_STDIO_NULL };
	struct kf_run_opts o = { .timeout_ms = 15000 };
	struct kf_exit ex;

	return kf_proc_run(ctx->ops, &req, &o, &ex) == 0 && kf_exit_ok(&ex);
}

/* One printer: its unit exists, runs, may be stopped and started without a
 * password, and its Moonraker gives a print state. */
static void printer(struct doctor *d, const struct kf_settings *s, const char *unit,
		    const char *url, int tmo)
{
	struct kf_ctx *ctx = d->ctx;
	struct kf_moonraker m = { url, s->moonraker_api_key };
	struct kf_print_status ps;
	char *what, *p;
	int r;

	what = kf_asprintf("printer %s (Moonraker %s): the unit exists", unit, url);
	r = kf_service_is_active(ctx->ops, unit, tmo, NULL);
	/* never advise starting a unit that does not exist */
	report(d, r != -ENOENT, what, "systemctl list-units 'klipper*' to find the "
	       "printers' units, then kflash settings service UNIT (or auto)");
	free(what);
	if (r == -ENOENT)
		return;
	what = kf_asprintf("%s is running", unit);
	report(d, r == 1, what, "sudo systemctl start %s", unit);
	free(what);

	r = kf_service_can_manage(ctx->ops, unit, tmo, NULL);
	p = kf_sudoers_line(ctx->ops, unit);
	what = kf_asprintf("sudo can stop and start %s without a password", unit);
	report(d, r == 1, what, "sudo visudo -f /etc/sudoers.d/kflash and add: %s", p);
	free(what);
	free(p);

	kf_moonraker_print_status(ctx->ops, &m, &ps);
	what = kf_asprintf("Moonraker at %s gives the print state", url);
	if (ps.auth)
		report(d, false, what, "it requires a login (%s): kflash settings "
		       "moonraker_api_key KEY", ps.said);
	else if (!ps.reachable)
		report(d, false, what, "sudo systemctl start moonraker, or kflash "
		       "settings moonraker_url URL (%s)", ps.said);
	else
		report(d, ps.verdict == KF_PRINT_IDLE || ps.verdict == KF_PRINT_BUSY ||
		       ps.verdict == KF_PRINT_NO_KLIPPY, what, "Moonraker said: %s",
		       ps.said ? ps.said : "?");
	free(what);
	if (ps.verdict == KF_PRINT_BUSY)
		report(d, false, "the printer is not printing", "wait for %s to finish",
		       ps.filename ? ps.filename : "the print");
	kf_print_status_release(&ps);
}

/* Every printer kflash finds on this host, as the flash flow finds them. */
static void printers(struct doctor *d, const struct kf_settings *s, int tmo)
{
	struct kf_instances is;
	size_t i, named = 0;

	kf_instances_find(d->ctx->ops, s, &is);
	for (i = 0; i < is.n; i++)
		named += is.v[i].unit != NULL;
	if (!named) {
		/* no Moonraker named its unit: the single-printer default */
		printer(d, s, "klipper", is.n ? is.v[0].url : "http://localhost:7125", tmo);
	}
	for (i = 0; i < is.n; i++) {
		if (is.v[i].unit)
			printer(d, s, is.v[i].unit, is.v[i].url, tmo);
		else if (named)
			report(d, false, "every Moonraker names its Klipper unit",
			       "Moonraker at %s did not answer /machine/system_info: "
			       "sudo systemctl status moonraker", is.v[i].url);
	}
	kf_instances_release(&is);
}

/* How argv ran (EXEC_FAILED when it is not installed); output unseen. */
static struct kf_exit run_check(struct kf_ctx *ctx, const char *const *argv)
{
	struct kf_spawn_req req = { .argv = argv, .in = KF_STDIO_NULL,
				    .out = KF_STDIO_NULL };
	struct kf_run_opts o = { .timeout_ms = 15000 };
	struct kf_exit ex;

	if (kf_proc_run(ctx->ops, &req, &o, &ex) < 0)
		ex.kind = KF_EXIT_EXEC_FAILED;
	return ex;
}

/* The boards (comma-separated keys) whose make flash may run tool: by
 * their own method (then *ret_own is set) or as the fallback. NULL when
 * none. malloc'd. */
static char *boards_needing(const struct kf_registry *reg, const char *tool, bool *ret_own)
{
	struct kf_buf keys = KF_BUF_INIT;
	size_t i;

	*ret_own = false;
	for (i = 0; i < reg->n_boards; i++) {
		const struct kf_board *b = &reg->boards[i];
		const char *t = kf_make_flash_sudo_tool(b->mcu, NULL);
		bool own = kf_board_method(b, &reg->settings) == KF_METHOD_MAKE_FLASH;

		/* make flash reaches no CAN node */
		if (!b->flashable || b->link == KF_LINK_CAN || !t || strcmp(t, tool) != 0 ||
		    !(own || reg->settings.fallback))
			continue;
		*ret_own |= own;
		kf_buf_addf(&keys, "%s%s", keys.len ? ", " : "", b->key);
	}
	return keys.data;
}

/* What Klipper's make flash needs for the registered boards' MCUs:
 * dfu-util (stm32, lpc176x boards that do not come back as Katapult),
 * the libusb headers rp2040_flash is compiled with, and sudo for them. */
static void check_make_flash(struct doctor *d, const struct kf_registry *reg)
{
	static const char *const dfu_version[] = { "dfu-util", "--version", NULL };
	static const char *const dfu_sudo[] = { "sudo", "-n", "-l", "dfu-util", NULL };
	static const char *const libusb[] = { "pkg-config", "--exists", "libusb-1.0", NULL };
	struct kf_exit ex;
	char *keys, *what, *line;
	bool own;

	/* only a board's own method fails the check; for a fallback the
	 * board may well come back as Katapult and need none of it */
	if ((keys = boards_needing(reg, "dfu-util", &own))) {
		ex = run_check(d->ctx, dfu_version);
		what = kf_asprintf("dfu-util is installed (make flash of %s)", keys);
		report_or_warn(d, ex.kind == KF_EXIT_EXITED, !own, what,
			       "sudo apt-get install dfu-util");
		free(what);
		/* sudo can only be asked about a program that is there */
		if (ex.kind == KF_EXIT_EXITED) {
			ex = run_check(d->ctx, dfu_sudo);
			what = kf_asprintf("sudo runs dfu-util without a password (make "
					   "flash of %s)", keys);
			line = kf_sudoers_tool_line(d->ctx->ops, reg->settings.klipper_dir,
						    "dfu-util");
			report_or_warn(d, kf_exit_ok(&ex), !own, what, "sudo visudo -f "
				       "/etc/sudoers.d/kflash and add: %s (without it make "
				       "flash runs dfu-util as this user, NOSUDO=1)", line);
			free(line);
			free(what);
		}
		free(keys);
	}
	if ((keys = boards_needing(reg, "lib/rp2040_flash/rp2040_flash", &own))) {
		/* what Klipper's lib/rp2040_flash/Makefile compiles with */
		ex = run_check(d->ctx, libusb);
		what = kf_asprintf("libusb headers for rp2040_flash (make flash of %s)", keys);
		report_or_warn(d, kf_exit_ok(&ex), !own, what, "sudo apt-get install "
			       "libusb-1.0-0-dev pkg-config");
		free(what);
		free(keys);
	}
}

/* Each board is where its transport can find it, exactly once; each
 * transport's scan works (said only when it does not). */
static void boards_connected(struct doctor *d, struct kf_registry *reg)
{
	const struct kf_transport *const *tr;
	size_t i;

	for (tr = kf_transports; *tr; tr++) {
		struct kf_error e = KF_ERROR_INIT;
		void *scan = NULL;
		int r = (*tr)->scan(d->ctx, reg, &scan, &e);

		if (r < 0)
			report(d, false, (*tr)->scan_check, "%s (%s)", (*tr)->scan_fix,
			       e.what ? e.what : strerror(-r));
		kf_error_release(&e);
		for (i = 0; i < reg->n_boards; i++) {
			struct kf_board *b = &reg->boards[i];
			struct kf_where at = { 0 };
			char *what;
			bool found;

			if (kf_transport_for(b) != *tr)
				continue;
			found = r == 0 && (*tr)->locate(d->ctx, reg, b, scan, false, &at,
							 &e) == 0;
			what = kf_asprintf("board %s is connected", b->key);
			if (r < 0)
				report(d, !b->flashable, what, "cannot tell: see '%s'",
				       (*tr)->scan_check);
			else
				report(d, found || !b->flashable, what, "%s%s%s",
				       e.what ? e.what : "", e.n_steps ? "; " : "",
				       e.n_steps ? e.steps[0] : "");
			free(what);
			kf_where_release(&at);
			kf_error_release(&e);
		}
		(*tr)->scan_free(scan);
	}
}

/* The bitrate `ip -details -json link show dev IF` gives, or -1. */
static long ip_bitrate(struct kf_ctx *ctx, const char *iface)
{
	const char *argv[] = { "ip", "-details", "-json", "link", "show", "dev", iface, NULL };
	struct kf_spawn_req req = { .argv = argv, .in = KF_STDIO_NULL,
				    .out = KF_STDIO_CAPTURE };
	struct kf_buf out = KF_BUF_INIT;
	struct kf_run_opts o = { .timeout_ms = 15000, .capture = &out };
	struct kf_exit ex;
	long v = -1;

	if (kf_proc_run(ctx->ops, &req, &o, &ex) == 0 && kf_exit_ok(&ex))
		v = kf_can_parse_bitrate(out.data);
	kf_buf_release(&out);
	return v;
}

/* The CAN bitrate board b's cached config was built for, or -1. */
static long config_bitrate(struct kf_ctx *ctx, const struct kf_board *b)
{
	char *path = kf_board_config_path(ctx->config_dir, b->key), *text = NULL;
	struct kf_kconfig cfg = KF_KCONFIG_INIT;
	const char *v;
	size_t len = 0;
	long rate = -1;

	if (kf_os_read_file(ctx->ops, path, &text, &len) == 0) {
		kf_kconfig_parse(text, len, &cfg);
		v = kf_kconfig_get(&cfg, "CONFIG_CANBUS_FREQUENCY");
		if (v)
			rate = strtol(v, NULL, 10);
	}
	kf_kconfig_release(&cfg);
	free(text);
	free(path);
	return rate;
}

/* Each interface a registered CAN node or bridge uses: there, up, a queue
 * Katapult can flash through, the bitrate the boards were built for. */
/* What udev shows interface ifc is on, and that a board registered as
 * its bridge is that bridge. */
static void check_carrier(struct doctor *d, const struct kf_registry *reg, const char *ifc)
{
	struct kf_ttydev usb;
	char *on, *what;
	size_t i;
	int r = kf_can_carrier(d->ctx->ops, ifc, &usb);

	if (r < 0) {
		report_or_warn(d, false, true, "udev tells what the CAN interfaces are on",
			       "udevadm info /sys/class/net/%s   (udev could not be read: %s)",
			       ifc, strerror(-r));
		return;
	}
	on = usb.iface ? kf_can_carrier_describe(&usb) : kf_xstrdup("no USB device udev lists");
	if (usb.iface) {
		what = kf_asprintf("CAN interface %s is on %s", ifc, on);
		report(d, true, what, NULL);
		free(what);
	}
	for (i = 0; i < reg->n_boards; i++) {
		const struct kf_board *b = &reg->boards[i];

		if (b->link != KF_LINK_BRIDGE || !b->interface || strcmp(b->interface, ifc) != 0)
			continue;
		what = kf_asprintf("%s carries %s (a Klipper USB-to-CAN bridge of its MCU, %s)",
				   b->key, ifc, b->mcu ? b->mcu : "not registered");
		report(d, kf_can_is_klipper_bridge(&usb, b->mcu), what,
		       "kflash list   (%s is on %s: is %s's interface right, and does it "
		       "run Klipper's USB-to-CAN bridge firmware?)", ifc, on, b->key);
		free(what);
	}
	free(on);
	kf_ttydev_release(&usb);
}

static void check_can(struct doctor *d, const struct kf_registry *reg)
{
	size_t i, k;

	for (i = 0; i < reg->n_boards; i++) {
		const char *ifc = reg->boards[i].interface;
		struct kf_can_iface st;
		char *what;
		long rate;
		int r;

		if (!ifc)
			continue;
		for (k = 0; k < i && !(reg->boards[k].interface &&
				       strcmp(reg->boards[k].interface, ifc) == 0); k++)
			;
		if (k < i)
			continue;	/* checked with an earlier board */
		r = kf_can_iface_read(d->ctx->ops, ifc, &st);
		what = kf_asprintf("CAN interface %s is there and up", ifc);
		if (r < 0 || st.state != KF_CAN_UP) {
			if (r < 0)
				report(d, false, what, "ls /sys/class/net/%s   (it could not be "
				       "read: %s)", ifc, strerror(-r));
			else if (st.state == KF_CAN_MISSING)
				report(d, false, what, "ip -brief link show   (no %s: is the "
				       "USB-CAN adapter or the bridge board plugged in and "
				       "running?)", ifc);
			else
				report(d, false, what, "sudo ip link set %s up type can "
				       "bitrate 1000000   (the bitrate of your boards' "
				       "configs)", ifc);
			free(what);
			continue;
		}
		report(d, true, what, NULL);
		free(what);
		check_carrier(d, reg, ifc);
		what = kf_asprintf("CAN interface %s has a txqueuelen of at least %d (it has "
				   "%ld)", ifc, KF_CAN_MIN_TXQUEUELEN, st.txqueuelen);
		report(d, st.txqueuelen >= KF_CAN_MIN_TXQUEUELEN, what,
		       "sudo ip link set %s txqueuelen %d   (a shorter queue makes Katapult "
		       "time out while flashing)", ifc, KF_CAN_MIN_TXQUEUELEN);
		free(what);
		rate = ip_bitrate(d->ctx, ifc);
		for (k = i; k < reg->n_boards; k++) {
			const struct kf_board *b = &reg->boards[k];
			long want;

			if (!b->interface || strcmp(b->interface, ifc) != 0 ||
			    (want = config_bitrate(d->ctx, b)) < 0 || rate < 0)
				continue;
			what = kf_asprintf("%s's config (CAN bus speed) matches %s's bitrate (%ld)", b->key, ifc,
					   rate);
			report(d, want == rate, what, "kflash config %s   (set the CAN bus "
			       "speed to %ld, or the bus to %ld: sudo ip link set %s down; "
			       "sudo ip link set %s up type can bitrate %ld)", b->key, rate,
			       want, ifc, ifc, want);
			free(what);
		}
	}
}

/* This kflash against the checkout it was built from: after a git pull or
 * Moonraker's update manager the installed one is stale until the checkout
 * is built and installed again. Said only when git can describe it. */
static void check_self(struct doctor *d)
{
	const struct kf_self *self = kf_self_built();
	char *v, *what, *fix;
	bool same;

	if (!self->commit[0] ||
	    kf_self_checkout_version(d->ctx->ops, self->source_dir, &v) < 0)
		return;
	same = strcmp(v, self->version) == 0;
	what = same ? kf_asprintf("kflash %s is its checkout's version (%s)", self->version,
				  self->source_dir)
		    : kf_asprintf("kflash %s is its checkout's version (%s is at %s)",
				  self->version, self->source_dir, v);
	fix = kf_self_install_command(self->source_dir);
	report_or_warn(d, same, true, what, "%s", fix);
	free(fix);
	free(what);
	free(v);
}

int kf_cmd_doctor(struct kf_ctx *ctx, int argc, char **argv)
{
	struct doctor d = { .ctx = ctx, .checks = json_array(), .utf8 = ctx->out->utf8 };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_settings *s;
	char *dir, *p, *kdir = NULL;
	int r, tmo;

	(void)argv;
	if (argc > 1) {
		json_decref(d.checks);
		return kf_usage_error(ctx, "doctor", "doctor takes no arguments");
	}
	r = kf_registry_load(ctx->ops, ctx->config_dir, &reg, ctx->err);
	if (r < 0) {
		json_decref(d.checks);
		return r;
	}
	s = &reg.settings;
	tmo = s->timeout_service * 1000;
	report(&d, true, "registry readable", NULL);
	check_self(&d);

	r = kf_klipper_dir(ctx, s, NULL, &kdir);
	report(&d, r == 0, "klipper_dir holds a Klipper checkout",
	       "kflash settings klipper_dir /path/to/klipper (now %s)", s->klipper_dir);
	free(kdir);

	dir = kf_expand_home(ctx->ops, s->katapult_dir);
	p = kf_asprintf("%s/scripts/flashtool.py", dir);
	report(&d, is_file(ctx, p), "katapult_dir holds Katapult's flashtool.py",
	       "git clone Katapult into %s, or kflash settings katapult_dir DIR", dir);
	free(p);
	free(dir);

	report(&d, python_has_pyserial(ctx, s->python), "python has pyserial",
	       "sudo apt-get install python3-serial (or kflash settings python "
	       "/usr/bin/python3)");

	check_make_flash(&d, &reg);

	report(&d, kf_os_in_group(ctx->ops, "dialout") == 1, "user is in the dialout group (serial ports)",
	       "sudo usermod -aG dialout $USER, then log in again");

	printers(&d, s, tmo);

	check_can(&d, &reg);
	boards_connected(&d, &reg);
	kf_out_set_json(ctx->out, json_pack("{s:o, s:i}", "checks", d.checks,
					    "failed", d.failed));
	kf_registry_release(&reg);
	if (d.failed) {
		kf_error_set(ctx->err, KF_EFAILED, "%d check%s failed", d.failed,
			     d.failed == 1 ? "" : "s");
		return KF_EFAILED;
	}
	kf_out_result(ctx->out, "All checks passed.");
	return 0;
}
