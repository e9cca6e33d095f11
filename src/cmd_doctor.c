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

/* One check: what was checked and, when it is not ok, the fix: cmd, a
 * command to paste into a shell as it is (never a placeholder), and note,
 * prose on why or what else to do, printed after the command as a shell
 * comment so the whole line still pastes. Either may be NULL. */
static void verdict(struct doctor *d, enum verdict v, const char *what, const char *cmd,
		    const char *note)
{
	static const char *const ascii[] = { "ok", "FAIL", "warn" };
	static const char *const utf8[] = { "✓", "✗", "!" };
	static const char *const colour[] = { "\033[32m", "\033[31m", "\033[33m" };
	const char *mark = d->utf8 ? utf8[v] : ascii[v];

	if (d->ctx->out->out_colour)
		kf_out_result(d->ctx->out, "%s%s\033[0m %s", colour[v], mark, what);
	else
		kf_out_result(d->ctx->out, "%s %s", mark, what);
	if (v != V_OK && cmd)
		kf_out_result(d->ctx->out, "    fix: %s%s%s", cmd, note ? "   # " : "",
			      note ? note : "");
	else if (v != V_OK && note)
		kf_out_result(d->ctx->out, "    note: %s", note);
	json_array_append_new(d->checks, json_pack("{s:s, s:b, s:b, s:s?, s:s?}", "check", what,
						   "ok", v == V_OK, "warning", v == V_WARN,
						   "fix", v == V_OK ? NULL : cmd,
						   "note", v == V_OK ? NULL : note));
	d->failed += v == V_FAIL;
}

static void vcheck(struct doctor *d, enum verdict v, const char *what, const char *note,
		   const char *cmd, va_list ap) __attribute__((format(printf, 5, 0)));
static void vcheck(struct doctor *d, enum verdict v, const char *what, const char *note,
		   const char *cmd, va_list ap)
{
	char *cmds = cmd ? kf_vasprintf(cmd, ap) : NULL;

	verdict(d, v, what, cmds, note);
	free(cmds);
}

/* A check that fails when !ok; cmd (printf) and note as verdict's. */
static void report(struct doctor *d, bool ok, const char *what, const char *note,
		   const char *cmd, ...) __attribute__((format(printf, 5, 6)));
static void report(struct doctor *d, bool ok, const char *what, const char *note,
		   const char *cmd, ...)
{
	va_list ap;

	va_start(ap, cmd);
	vcheck(d, ok ? V_OK : V_FAIL, what, note, cmd, ap);
	va_end(ap);
}

/* The same, only a warning when warn_only. */
static void report_or_warn(struct doctor *d, bool ok, bool warn_only, const char *what,
			   const char *note, const char *cmd, ...)
	__attribute__((format(printf, 6, 7)));
static void report_or_warn(struct doctor *d, bool ok, bool warn_only, const char *what,
			   const char *note, const char *cmd, ...)
{
	va_list ap;

	va_start(ap, cmd);
	vcheck(d, ok ? V_OK : warn_only ? V_WARN : V_FAIL, what, note, cmd, ap);
	va_end(ap);
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
	bool ok = kf_proc_run(ctx->ops, &req, &o, &ex) == 0 && kf_exit_ok(&ex);

	/* a check a signal cut short: the signal is the command's */
	kf_ctx_heard(ctx, ex.interrupted_by);
	return ok;
}

/* Moonraker at url gave no print state: the fix depends on whether the
 * host has a Moonraker unit at all (never advise starting one it lacks). */
static void moonraker_unreachable(struct doctor *d, const char *what, const char *url,
				  const char *said, int tmo)
{
	char *note;
	int r = kf_service_is_active(d->ctx->ops, "moonraker", tmo, NULL);

	if (r == -ENOENT) {
		note = kf_asprintf("no Moonraker answers at %s (%s) and this host has no "
				   "moonraker unit: install Moonraker, or point kflash "
				   "at the printer's with kflash settings moonraker_url; "
				   "until then kflash flash refuses to stop Klipper without "
				   "--force", url, said ? said : "?");
		report(d, false, what, note, NULL);
	} else if (r == 0) {
		note = kf_asprintf("moonraker is not running (%s)", said ? said : "?");
		report(d, false, what, note, "sudo systemctl start moonraker");
	} else {
		note = kf_asprintf("%s: is moonraker_url right? (%s)", said ? said : "?",
				   url);
		report(d, false, what, note, "journalctl -u moonraker -n 20 --no-pager");
	}
	free(note);
}

/* One printer: its unit exists, runs, may be stopped and started without a
 * password, and its Moonraker gives a print state. */
static void printer(struct doctor *d, const struct kf_settings *s, const char *unit,
		    const char *url, int tmo)
{
	struct kf_ctx *ctx = d->ctx;
	struct kf_moonraker m = { url, s->moonraker_api_key };
	struct kf_print_status ps;
	char *what, *p, *note, *add;
	int r;

	what = kf_asprintf("printer %s (Moonraker %s): the unit exists", unit, url);
	r = kf_service_is_active(ctx->ops, unit, tmo, NULL);
	/* never advise starting a unit that does not exist */
	report(d, r != -ENOENT, what, "then: kflash settings service auto, or the "
	       "unit it lists", "systemctl list-units --all --type=service 'klipper*'");
	free(what);
	if (r == -ENOENT)
		return;
	what = kf_asprintf("%s is running", unit);
	report(d, r == 1, what, NULL, "sudo systemctl start %s", unit);
	free(what);

	r = kf_service_can_manage(ctx->ops, unit, tmo, NULL);
	p = kf_sudoers_line(ctx->ops, unit);
	what = kf_asprintf("sudo can stop and start %s without a password", unit);
	/* visudo checks the line before it is installed */
	add = kf_sudoers_add_command(p);
	report(d, r == 1, what, "adds the line to /etc/sudoers.d/kflash", "%s", add);
	free(add);
	free(what);
	free(p);

	kf_moonraker_print_status(ctx->ops, &m, &ps);
	what = kf_asprintf("Moonraker at %s gives the print state", url);
	if (ps.auth) {
		note = kf_asprintf("it requires a login (%s)", ps.said ? ps.said : "?");
		report(d, false, what, note, "kflash settings moonraker_api_key "
		       "\"$(~/moonraker/scripts/fetch-apikey.sh)\"");
		free(note);
	} else if (!ps.reachable) {
		moonraker_unreachable(d, what, url, ps.said, tmo);
	} else {
		note = kf_asprintf("Moonraker said: %s", ps.said ? ps.said : "?");
		report(d, ps.verdict == KF_PRINT_IDLE || ps.verdict == KF_PRINT_BUSY ||
		       ps.verdict == KF_PRINT_NO_KLIPPY, what, note, NULL);
		free(note);
	}
	free(what);
	if (ps.verdict == KF_PRINT_BUSY) {
		note = kf_asprintf("%s is printing; kflash flash waits until it is done",
				   ps.filename ? ps.filename : "a print");
		report_or_warn(d, false, true, "the printer is not printing", note, NULL);
		free(note);
	}
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
		else if (named) {
			char *note = kf_asprintf("Moonraker at %s did not answer "
						 "/machine/system_info", is.v[i].url);

			report(d, false, "every Moonraker names its Klipper unit", note,
			       "systemctl status 'moonraker*' --no-pager");
			free(note);
		}
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
	kf_ctx_heard(ctx, ex.interrupted_by);
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
	char *keys, *what, *line, *add;
	bool own;

	/* only a board's own method fails the check; for a fallback the
	 * board may well come back as Katapult and need none of it */
	if ((keys = boards_needing(reg, "dfu-util", &own))) {
		ex = run_check(d->ctx, dfu_version);
		what = kf_asprintf("dfu-util is installed (make flash of %s)", keys);
		report_or_warn(d, ex.kind == KF_EXIT_EXITED, !own, what, NULL,
			       "sudo apt-get install dfu-util");
		free(what);
		/* sudo can only be asked about a program that is there */
		if (ex.kind == KF_EXIT_EXITED) {
			ex = run_check(d->ctx, dfu_sudo);
			what = kf_asprintf("sudo runs dfu-util without a password (make "
					   "flash of %s)", keys);
			line = kf_sudoers_tool_line(d->ctx->ops, reg->settings.klipper_dir,
						    "dfu-util");
			add = kf_sudoers_add_command(line);
			report_or_warn(d, kf_exit_ok(&ex), !own, what, "without it make "
				       "flash runs dfu-util as this user (NOSUDO=1)", "%s", add);
			free(add);
			free(line);
			free(what);
		}
		free(keys);
	}
	if ((keys = boards_needing(reg, "lib/rp2040_flash/rp2040_flash", &own))) {
		/* what Klipper's lib/rp2040_flash/Makefile compiles with */
		ex = run_check(d->ctx, libusb);
		what = kf_asprintf("libusb headers for rp2040_flash (make flash of %s)", keys);
		report_or_warn(d, kf_exit_ok(&ex), !own, what, NULL, "sudo apt-get install "
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
			report(d, false, (*tr)->scan_check, e.what ? e.what : strerror(-r),
			       "%s", (*tr)->scan_fix);
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
				report(d, !b->flashable, what, "cannot tell: see above",
				       "%s", (*tr)->scan_fix);
			else
				report(d, found || !b->flashable, what, e.what, "kflash list");
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
	kf_ctx_heard(ctx, ex.interrupted_by);
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
	char *on, *what, *note;
	size_t i;
	int r = kf_can_carrier(d->ctx->ops, ifc, &usb);

	if (r < 0) {
		note = kf_asprintf("udev could not be read: %s", strerror(-r));
		report_or_warn(d, false, true, "udev tells what the CAN interfaces are on",
			       note, "udevadm info /sys/class/net/%s", ifc);
		free(note);
		return;
	}
	on = usb.iface ? kf_can_carrier_describe(&usb) : kf_xstrdup("no USB device udev lists");
	if (usb.iface) {
		what = kf_asprintf("CAN interface %s is on %s", ifc, on);
		report(d, true, what, NULL, NULL);
		free(what);
	}
	for (i = 0; i < reg->n_boards; i++) {
		const struct kf_board *b = &reg->boards[i];

		if (b->link != KF_LINK_BRIDGE || !b->interface || strcmp(b->interface, ifc) != 0)
			continue;
		what = kf_asprintf("%s carries %s (a Klipper USB-to-CAN bridge of its MCU, %s)",
				   b->key, ifc, b->mcu ? b->mcu : "not registered");
		note = kf_asprintf("%s is on %s: is %s's interface right, and does it run "
				   "Klipper's USB-to-CAN bridge firmware?", ifc, on, b->key);
		report(d, kf_can_is_klipper_bridge(&usb, b->mcu), what, note, "kflash list");
		free(note);
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
		char *what, *note;
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
				note = kf_asprintf("it could not be read: %s", strerror(-r));
			else if (st.state == KF_CAN_MISSING)
				note = kf_asprintf("there is no %s: is the USB-CAN adapter or the "
						   "bridge board plugged in and running?", ifc);
			else
				note = kf_asprintf("%s is down", ifc);
			rate = config_bitrate(d->ctx, &reg->boards[i]);
			if (r < 0)
				report(d, false, what, note, "ls -l /sys/class/net/%s", ifc);
			else if (st.state == KF_CAN_MISSING)
				report(d, false, what, note, "ip -brief link show");
			else
				report(d, false, what, note, "sudo ip link set %s up type can "
				       "bitrate %ld", ifc, rate > 0 ? rate : 1000000);
			free(note);
			free(what);
			continue;
		}
		report(d, true, what, NULL, NULL);
		free(what);
		check_carrier(d, reg, ifc);
		what = kf_asprintf("CAN interface %s has a txqueuelen of at least %d (it has "
				   "%ld)", ifc, KF_CAN_MIN_TXQUEUELEN, st.txqueuelen);
		report(d, st.txqueuelen >= KF_CAN_MIN_TXQUEUELEN, what, "a shorter queue "
		       "makes Katapult time out while flashing", "sudo ip link set %s "
		       "txqueuelen %d", ifc, KF_CAN_MIN_TXQUEUELEN);
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
			note = kf_asprintf("set its CAN bus speed to %ld, or the bus to %ld: "
					   "sudo ip link set %s down && sudo ip link set %s up "
					   "type can bitrate %ld", rate, want, ifc, ifc, want);
			report(d, want == rate, what, note, "kflash config %s", b->key);
			free(note);
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
	report_or_warn(d, same, true, what, NULL, "%s", fix);
	free(fix);
	free(what);
	free(v);
}

/* A checkout kflash needs at setting dir (as the user wrote it): when it is
 * not there, the clone that puts it there; when something else is there,
 * that moved aside first (nothing of the user's is deleted). */
static void checkout(struct doctor *d, const char *what, const char *dir, bool ok,
		     const char *url, const char *note)
{
	char *abs = kf_expand_home(d->ctx->ops, dir), *word = kf_shell_path(dir);
	enum kf_file_kind k;
	int r = ok ? 0 : kf_os_file_kind(d->ctx->ops, abs, &k, NULL);

	if (ok)
		report(d, true, what, NULL, NULL);
	else if (r == -ENOENT || (r == 0 && k == KF_FILE_NONE))
		report(d, false, what, note, "git clone %s %s", url, word);
	else if (r < 0)
		report(d, false, what, strerror(-r), "ls -ld %s", word);
	else
		report(d, false, what, note, "mv %s %s.old && git clone %s %s", word, word,
		       url, word);
	free(word);
	free(abs);
}

/* flashtool.py runs with the python setting; Debian's python3 has pyserial
 * from python3-serial. */
static void check_pyserial(struct doctor *d, const struct kf_settings *s)
{
	static const char *const debian = "/usr/bin/python3";
	const char *what = "python has pyserial (Katapult's flashtool.py)";

	if (python_has_pyserial(d->ctx, s->python))
		report(d, true, what, NULL, NULL);
	else if (strcmp(s->python, debian) != 0 && python_has_pyserial(d->ctx, debian))
		report(d, false, what, "Debian's python3 has it", "kflash settings python %s",
		       debian);
	else if (strcmp(s->python, debian) != 0)
		report(d, false, what, "then: kflash settings python /usr/bin/python3",
		       "sudo apt-get install python3-serial");
	else
		report(d, false, what, NULL, "sudo apt-get install python3-serial");
}

/* The Debian packages of the compilers Klipper builds with. */
static const char *compiler_packages(const char *cc)
{
	if (strcmp(cc, "arm-none-eabi-gcc") == 0)
		return "gcc-arm-none-eabi binutils-arm-none-eabi libnewlib-arm-none-eabi";
	if (strcmp(cc, "avr-gcc") == 0)
		return "gcc-avr binutils-avr avr-libc";
	if (strcmp(cc, "gcc") == 0)
		return "build-essential";
	return NULL;
}

/* Each board's cached config is there and for its MCU (after Klipper's
 * olddefconfig on a copy, as a build would see it, when the checkout is
 * there), and the compiler each config builds with runs. */
static void check_configs(struct doctor *d, const struct kf_registry *reg, bool klipper)
{
	struct compiler { const char *cc; struct kf_buf keys; } cc[4];
	size_t i, j, n = 0;

	for (i = 0; i < reg->n_boards; i++) {
		const struct kf_board *b = &reg->boards[i];
		struct kf_kconfig saved = KF_KCONFIG_INIT, cfg = KF_KCONFIG_INIT;
		struct kf_error e = KF_ERROR_INIT;
		char *path = NULL, *what, *fix = kf_asprintf("kflash config %s", b->key);
		const char *c;
		int r;

		if (!b->flashable) {
			free(fix);
			continue;
		}
		what = kf_asprintf("%s has a config for its MCU (%s)", b->key,
				   b->mcu ? b->mcu : "not registered");
		r = kf_board_config_load(d->ctx, b, &e, &saved, &path);
		if (r == 0 && klipper) {
			kf_kconfig_release(&saved);
			r = kf_config_preview(d->ctx, &reg->settings, b, &e, &saved, &cfg);
			if (r == 0)
				r = kf_build_check_config(d->ctx, b, &saved, &cfg, path, NULL,
							  false, &e);
		} else if (r == 0 && b->mcu) {
			r = kf_kconfig_check_mcu(&saved, b->key, b->mcu, NULL, path, false, &e);
		}
		report(d, r >= 0, what, e.what, "%s", fix);
		c = r >= 0 ? kf_config_compiler(klipper ? &cfg : &saved) : NULL;
		for (j = 0; c && j < n && strcmp(cc[j].cc, c) != 0; j++)
			;
		if (c && j == n && n < sizeof(cc) / sizeof(cc[0]))
			cc[n++] = (struct compiler){ c, KF_BUF_INIT };
		if (c && j < n)
			kf_buf_addf(&cc[j].keys, "%s%s", cc[j].keys.len ? ", " : "", b->key);
		kf_kconfig_release(&saved);
		kf_kconfig_release(&cfg);
		kf_error_release(&e);
		free(path);
		free(what);
		free(fix);
	}
	for (j = 0; j < n; j++) {
		const char *argv[] = { cc[j].cc, "--version", NULL };
		const char *pkgs = compiler_packages(cc[j].cc);
		struct kf_exit ex = run_check(d->ctx, argv);
		char *what = kf_asprintf("%s runs (it builds %s)", cc[j].cc, cc[j].keys.data);

		if (pkgs)
			report(d, kf_exit_ok(&ex), what, NULL, "sudo apt-get install %s", pkgs);
		else
			report(d, kf_exit_ok(&ex), what, "install the compiler Klipper's "
			       "scripts/install-debian.sh would", NULL);
		free(what);
		kf_buf_release(&cc[j].keys);
	}
}

int kf_cmd_doctor(struct kf_ctx *ctx, int argc, char **argv)
{
	struct doctor d = { .ctx = ctx, .checks = json_array(), .utf8 = ctx->out->utf8 };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_settings *s;
	static const char *const make_version[] = { "make", "--version", NULL };
	char *dir, *p, *kdir = NULL;
	struct kf_exit ex;
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
	report(&d, true, "registry readable", NULL, NULL);
	check_self(&d);

	r = kf_klipper_dir(ctx, s, NULL, &kdir);
	checkout(&d, "klipper_dir holds a Klipper checkout", s->klipper_dir, r == 0,
		 "https://github.com/Klipper3d/klipper", "or Kalico's: "
		 "https://github.com/KalicoCrew/kalico");
	free(kdir);

	dir = kf_expand_home(ctx->ops, s->katapult_dir);
	p = kf_asprintf("%s/scripts/flashtool.py", dir);
	checkout(&d, "katapult_dir holds Katapult's flashtool.py", s->katapult_dir,
		 is_file(ctx, p), "https://github.com/Arksine/katapult", NULL);
	free(p);
	free(dir);

	check_pyserial(&d, s);
	ex = run_check(ctx, make_version);
	report(&d, ex.kind == KF_EXIT_EXITED, "make is installed (Klipper's build)", NULL,
	       "sudo apt-get install build-essential");
	check_configs(&d, &reg, r == 0);
	check_make_flash(&d, &reg);

	report(&d, kf_os_in_group(ctx->ops, "dialout") == 1, "user is in the dialout group "
	       "(serial ports)", "then log out and in again", "sudo usermod -aG dialout $USER");

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
