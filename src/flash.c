/* flash.c - run flashtool.py and make flash, and tell their failures apart. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kflash/build.h"
#include "kflash/flash.h"
#include "kflash/proc.h"
#include "kflash/util.h"

static bool has(const char *out, const char *s)
{
	return out && strstr(out, s) != NULL;
}

enum kf_flash_class kf_flashtool_classify(const char *out, const struct kf_exit *ex)
{
	switch (ex->kind) {
	case KF_EXIT_INTERRUPTED:
		return KF_FLASH_INTERRUPTED;
	case KF_EXIT_TIMED_OUT:
		return KF_FLASH_TIMED_OUT;
	case KF_EXIT_EXEC_FAILED:
		return KF_FLASH_NOT_STARTED;
	default:
		break;
	}
	/* python could not open the script: "can't open file" */
	if (ex->kind == KF_EXIT_EXITED && ex->code == 2 &&
	    (has(out, "can't open file") || has(out, "No such file or directory")))
		return KF_FLASH_NOT_STARTED;
	if (has(out, "pyserial python package was not found"))
		return KF_FLASH_NO_PYSERIAL;
	if (has(out, "in use by another program"))
		return KF_FLASH_IN_USE;
	if (has(out, "does not match MCU"))
		return KF_FLASH_MCU_MISMATCH;
	if (has(out, "Device is not Katapult"))
		return KF_FLASH_NOT_KATAPULT;
	if (ex->kind == KF_EXIT_EXITED && ex->code == 0) {
		if (has(out, "Programming Complete"))
			return KF_FLASH_OK;
		if (has(out, "Status Request Complete") && !has(out, "Flash Tool Error"))
			return KF_FLASH_OK;
		return KF_FLASH_NO_COMPLETE;
	}
	if (has(out, "Verification") || has(out, "verif") || has(out, "Error writing") ||
	    has(out, "SEND_BLOCK") || has(out, "SEND_EOF") || has(out, "REQUEST_BLOCK"))
		return KF_FLASH_WRITE_ERROR;
	if (has(out, "CONNECT") || has(out, "timed out") || has(out, "Timeout") ||
	    has(out, "Unable to open serial port") || has(out, "No response"))
		return KF_FLASH_NO_ANSWER;
	return KF_FLASH_FAILED;
}

int kf_flashtool_app_start(const char *out, uint32_t *ret)
{
	const char *p = out ? strstr(out, "Application Start: 0x") : NULL;
	uint64_t v = 0;
	size_t n;

	if (!p)
		return -ENOENT;
	/* flashtool prints {:4X}: spaces to 4 digits, then hex; strtoul would
	 * also take a sign and wrap more than 32 bits into another address */
	p += 21;
	p += strspn(p, " ");
	n = strspn(p, "0123456789abcdefABCDEF");
	if (n == 0)
		return -ENOENT;
	for (; n; p++, n--) {
		v = v * 16 + (uint64_t)(*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);
		if (v > UINT32_MAX)
			return -ENOENT;
	}
	*ret = (uint32_t)v;
	return 0;
}

char *kf_flashtool_mcu(const char *out)
{
	const char *p = out ? strstr(out, "MCU type: ") : NULL;
	size_t n = p ? strcspn(p + 10, " \r\n") : 0;

	/* "MCU type: " and nothing names no MCU: never "a , not the registered" */
	return n ? kf_xstrndup(p + 10, n) : NULL;
}

/* The last few lines a tool printed, for the error report. */
static char *tail(const char *out, int lines)
{
	const char *p;
	int n = 0;

	if (!out || !*out)
		return kf_xstrdup("(no output)");
	p = out + strlen(out);
	while (p > out) {
		p--;
		if (*p == '\n' && p[1] && ++n == lines) {
			p++;
			break;
		}
	}
	return kf_xstrdup(p);
}

int kf_flash_error(struct kf_error *e, enum kf_flash_class c, const char *board,
		   const char *out, const char *command, const struct kf_settings *s)
{
	char *t = tail(out, 6);

	switch (c) {
	case KF_FLASH_NO_PYSERIAL:
		kf_error_set(e, KF_EFAILED, "Katapult's flashtool needs pyserial, which "
			     "%s does not have", s->python);
		kf_error_step(e, KF_CMD("sudo apt-get install python3-serial"));
		kf_error_step(e, "or point kflash at a python that has it: "
			      KF_CMD("kflash settings python /usr/bin/python3"));
		break;
	case KF_FLASH_IN_USE:
		kf_error_set(e, KF_EFAILED, "the serial port of %s is in use by another "
			     "program", board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, "stop that program (Klipper: "
			      KF_CMD("sudo systemctl stop %s") "), then "
			      KF_CMD("kflash flash %s -s"), s->service, board);
		break;
	case KF_FLASH_NOT_KATAPULT:
		kf_error_set(e, KF_EFAILED, "%s did not come back as Katapult when asked "
			     "for its bootloader; nothing was written", board);
		kf_error_cause(e, "the board has no Katapult bootloader (it may have a "
			       "stock/DFU bootloader)");
		kf_error_step(e, "flash it with make flash: "
			      KF_CMD("kflash flash %s -s --method make-flash"), board);
		kf_error_step(e, "or install Katapult on it once by its own instructions");
		break;
	case KF_FLASH_NO_ANSWER:
		kf_error_set(e, KF_EFAILED, "the bootloader of %s did not answer", board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, "double-tap the board's reset button to enter "
			      "Katapult, then " KF_CMD("kflash flash %s -s"), board);
		kf_error_step(e, "check the USB cable and " KF_CMD("kflash list"));
		break;
	case KF_FLASH_MCU_MISMATCH:
		kf_error_set(e, KF_EREFUSED, "the firmware built for %s is for another "
			     "MCU than the one Katapult reports", board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, KF_CMD("kflash config %s") "   (choose the MCU "
			      "Katapult reports)", board);
		break;
	case KF_FLASH_WRITE_ERROR:
		kf_error_set(e, KF_EFAILED, "writing or verifying the firmware of %s "
			     "failed", board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, KF_CMD("kflash flash %s -s") "   (the board is in "
			      "Katapult and can be flashed again)", board);
		break;
	case KF_FLASH_NO_COMPLETE:
		kf_error_set(e, KF_EFAILED, "flashtool ended without 'Programming "
			     "Complete' for %s; nothing was written", board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, KF_CMD("kflash flash %s -s --method make-flash"), board);
		break;
	case KF_FLASH_TIMED_OUT:
		kf_error_set(e, KF_EFAILED, "flashing %s timed out after %d s and was "
			     "stopped", board, s->timeout_flash);
		kf_error_step(e, KF_CMD("kflash flash %s -s") "   (the board stays in "
			      "Katapult)", board);
		kf_error_step(e, KF_CMD("kflash settings timeout.flash %d"), s->timeout_flash * 2);
		break;
	case KF_FLASH_NOT_STARTED:
		kf_error_set(e, KF_EFAILED, "the flash tool for %s could not be started",
			     board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, KF_CMD("kflash doctor"));
		kf_error_step(e, KF_CMD("kflash settings katapult_dir /path/to/katapult"));
		break;
	case KF_FLASH_INTERRUPTED:
		kf_error_set(e, KF_EINTERRUPTED, "flashing %s was interrupted; the board "
			     "is left in Katapult and needs flashing again", board);
		kf_error_step(e, KF_CMD("kflash flash %s -s"), board);
		break;
	default:
		kf_error_set(e, KF_EFAILED, "flashing %s failed", board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, KF_CMD("kflash -v flash %s -s") "   (shows the tool's "
			      "output)", board);
		break;
	}
	if (command)
		kf_error_command(e, "%s", command);
	free(t);
	return e->code;
}

void kf_tool_run_release(struct kf_tool_run *t)
{
	kf_buf_release(&t->output);
	free(t->command);
	free(t->cause);
	free(t->tool);
	memset(t, 0, sizeof(*t));
}

/* python flashtool.py ARGS... [LAST...] */
static char **tool_argv(const struct kf_ops *ops, const struct kf_settings *s,
			const char *const *args, const char *last1, const char *last2)
{
	size_t n = 0, k;
	char **argv, *kdir = kf_expand_home(ops, s->katapult_dir);

	for (k = 0; args[k]; k++)
		;
	argv = kf_xcalloc(k + 5, sizeof(*argv));
	argv[n++] = kf_xstrdup(s->python);
	argv[n++] = kf_asprintf("%s/scripts/flashtool.py", kdir);
	for (k = 0; args[k]; k++)
		argv[n++] = kf_xstrdup(args[k]);
	if (last1)
		argv[n++] = kf_xstrdup(last1);
	if (last2)
		argv[n++] = kf_xstrdup(last2);
	free(kdir);
	return argv;
}

char **kf_flashtool_argv(const struct kf_ops *ops, const struct kf_settings *s,
			 const char *const *dev_args, const char *firmware)
{
	return firmware ? tool_argv(ops, s, dev_args, "-f", firmware)
			: tool_argv(ops, s, dev_args, "-s", NULL);
}

char **kf_make_flash_argv(const char *kdir, const char *config, const char *out,
			  const char *node)
{
	char *dev = kf_asprintf("FLASH_DEVICE=%s", node);
	char **argv = kf_make_argv(kdir, config, out, "flash", dev);

	free(dev);
	return argv;
}

/* The same, with NOSUDO=1 appended when asked. */
static char **make_flash_argv(const char *kdir, const char *config, const char *out,
			      const char *node, bool nosudo)
{
	char **argv = kf_make_flash_argv(kdir, config, out, node);
	size_t n = 0;

	if (!nosudo)
		return argv;
	while (argv[n])
		n++;
	argv = kf_xrealloc(argv, (n + 2) * sizeof(*argv));
	argv[n] = kf_xstrdup("NOSUDO=1");
	argv[n + 1] = NULL;
	return argv;
}

/* A flash tool at work: what it last said it does (flashtool's "Flashing",
 * "Write complete: N pages", "Verifying"; its # marks come without a
 * newline and so only with the line they end) and for how long, as a live
 * line on a terminal and a line every 15 s elsewhere. */
struct tool_progress {
	struct kf_ctx *ctx;
	const char *board;
	char doing[64];
	int64_t elapsed_ms;
};

static void tool_progress_show(struct tool_progress *p, bool tick)
{
	if (!p->board || p->ctx->out->verbosity != KF_NORMAL)
		return;
	if (p->ctx->out->progress_tty)
		kf_out_progress(p->ctx->out, "[Flash] %s: %s, %" PRId64 " s", p->board,
				p->doing, p->elapsed_ms / 1000);
	else if (tick)
		kf_out_phase(p->ctx->out, KF_PHASE_FLASH, "%s: %s, %" PRId64 " s", p->board,
			     p->doing, p->elapsed_ms / 1000);
}

static void on_tool_tick(void *data, int64_t elapsed_ms)
{
	struct tool_progress *p = data;

	p->elapsed_ms = elapsed_ms;
	tool_progress_show(p, true);
}

static void on_tool_line(void *data, const char *line, size_t len)
{
	struct tool_progress *p = data;
	unsigned pages;
	char l[64];

	kf_out_verbose(p->ctx->out, "  | %.*s", (int)len, line);
	/* the line ends at len, not at a NUL: sscanf gets a bounded copy */
	snprintf(l, sizeof(l), "%.*s", (int)len, line);
	if (len >= 10 && strncmp(line, "Flashing '", 10) == 0)
		snprintf(p->doing, sizeof(p->doing), "writing");
	else if (sscanf(l, "Write complete: %u pages", &pages) == 1)
		snprintf(p->doing, sizeof(p->doing), "%u pages written", pages);
	else if (len >= 10 && strncmp(line, "Verifying ", 10) == 0)
		snprintf(p->doing, sizeof(p->doing), "verifying");
	else if (memmem(line, len, "Verification Complete", 21))
		snprintf(p->doing, sizeof(p->doing), "verified");
	else
		return;
	tool_progress_show(p, false);
}

static int run_tool(struct kf_ctx *ctx, char **argv, int timeout_s, const char *board,
		    struct kf_tool_run *t)
{
	struct kf_spawn_req req = {
		.argv = (const char *const *)argv, .in = KF_STDIO_NULL,
		.out = KF_STDIO_CAPTURE,
	};
	struct tool_progress prog = { .ctx = ctx, .board = board, .doing = "starting" };
	struct kf_run_opts opts = {
		.timeout_ms = timeout_s * 1000LL, .capture = &t->output,
		.on_line = on_tool_line, .line_data = &prog,
	};
	int r;

	if (board && ctx->out->verbosity == KF_NORMAL) {
		opts.on_tick = on_tool_tick;
		opts.tick_ms = ctx->out->progress_tty ? 1000 : 15000;
	}
	t->command = kf_argv_join((const char *const *)argv);
	kf_out_verbose(ctx->out, "$ %s", t->command);
	r = kf_proc_run(ctx->ops, &req, &opts, &t->exit);
	if (!t->output.data)
		kf_buf_add(&t->output, "", 0);
	return r;
}

int kf_flashtool(struct kf_ctx *ctx, const struct kf_settings *s,
		 const char *const *dev_args, const char *firmware, const char *board,
		 struct kf_tool_run *t)
{
	char **argv = kf_flashtool_argv(ctx->ops, s, dev_args, firmware);
	int r;

	memset(t, 0, sizeof(*t));
	r = run_tool(ctx, argv, s->timeout_flash, board, t);
	kf_argv_free(argv);
	if (r < 0)
		return r;
	t->cls = kf_flashtool_classify(t->output.data, &t->exit);
	/* status mode ends with "Status Request Complete", not Programming */
	if (firmware && t->cls == KF_FLASH_OK && !has(t->output.data, "Programming Complete"))
		t->cls = KF_FLASH_NO_COMPLETE;
	return 0;
}

int kf_flashtool_cmd(struct kf_ctx *ctx, const struct kf_settings *s,
		     const char *const *args, struct kf_tool_run *t)
{
	char **argv = tool_argv(ctx->ops, s, args, NULL, NULL);
	int r;

	memset(t, 0, sizeof(*t));
	r = run_tool(ctx, argv, s->timeout_flash, NULL, t);
	kf_argv_free(argv);
	if (r < 0)
		return r;
	t->cls = kf_flashtool_classify(t->output.data, &t->exit);
	return 0;
}

/* ---- make flash ------------------------------------------------------------- */

static bool starts(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

const char *kf_make_flash_sudo_tool(const char *mcu, const char *app_start)
{
	unsigned long start = app_start ? strtoul(app_start, NULL, 0) : 0;

	if (!mcu)
		return NULL;
	/* flash_usb.py's MCUTYPES: the HID bootloader sits below these */
	if (starts(mcu, "stm32f103") && start == 0x8000800)
		return "lib/hidflash/hid-flash";
	if (starts(mcu, "stm32") && start == 0x8004000 && !starts(mcu, "stm32f103"))
		return "lib/hidflash/hid-flash";
	if (starts(mcu, "stm32") || starts(mcu, "lpc176"))
		return "dfu-util";
	if (starts(mcu, "rp2"))
		return "lib/rp2040_flash/rp2040_flash";
	return NULL;
}

/* sudo -n -l CMD: exit 0 when CMD would run without a password; never a
 * prompt (-n). Its words tell "password" from "no such command". */
static enum kf_sudo_answer sudo_check(struct kf_ctx *ctx, const char *cmd,
				      struct kf_exit *ex)
{
	const char *argv[] = { "sudo", "-n", "-l", cmd, NULL };
	struct kf_spawn_req req = { .argv = argv, .in = KF_STDIO_NULL,
				    .out = KF_STDIO_CAPTURE };
	struct kf_buf out = KF_BUF_INIT;
	struct kf_run_opts o = { .timeout_ms = 15000, .capture = &out };
	enum kf_sudo_answer a = KF_SUDO_UNKNOWN;

	if (kf_proc_run(ctx->ops, &req, &o, ex) < 0) {
		memset(ex, 0, sizeof(*ex));
		ex->kind = KF_EXIT_EXEC_FAILED;
	}
	/* a check a signal cut short: the signal is the run's */
	kf_ctx_heard(ctx, ex->interrupted_by);
	if (ex->kind == KF_EXIT_EXEC_FAILED)
		a = KF_SUDO_NO_SUDO;
	else if (kf_exit_ok(ex))
		a = KF_SUDO_OK;
	else if (has(out.data, "command not found"))
		a = KF_SUDO_NO_TOOL;
	else if (has(out.data, "password is required") || has(out.data, "a terminal is required"))
		a = KF_SUDO_PASSWORD;
	kf_buf_release(&out);
	return a;
}

/* The tool as sudo would be asked about it: relative ones live in the
 * Klipper checkout. malloc'd. */
static char *tool_path(const char *kdir, const char *tool)
{
	return strchr(tool, '/') ? kf_asprintf("%s/%s", kdir, tool) : kf_xstrdup(tool);
}

int kf_make_flash_plan(struct kf_ctx *ctx, const char *kdir, const struct kf_kconfig *cfg,
		       struct kf_make_flash_plan *p)
{
	enum kf_file_kind k = KF_FILE_NONE;
	char *path;

	memset(p, 0, sizeof(*p));
	p->sudo_tool = kf_make_flash_sudo_tool(kf_kconfig_get(cfg, "CONFIG_MCU"),
		kf_kconfig_get(cfg, "CONFIG_FLASH_APPLICATION_ADDRESS"));
	if (!p->sudo_tool)
		return 0;
	path = tool_path(kdir, p->sudo_tool);
	/* make flash builds rp2040_flash and hid-flash first: before that
	 * sudo can only say whether it runs anything without a password */
	if (strchr(p->sudo_tool, '/') &&
	    (kf_os_file_kind(ctx->ops, path, &k, NULL) < 0 || k != KF_FILE_REG)) {
		free(path);
		path = kf_xstrdup("true");
	}
	p->sudo = sudo_check(ctx, path, &p->check_exit);
	free(path);
	if (p->check_exit.kind == KF_EXIT_INTERRUPTED)
		return KF_EINTERRUPTED;
	/* a sudo that would prompt must never run: flash_usb.py runs the
	 * tool itself then, and a tool that needs root fails at once */
	p->nosudo = p->sudo != KF_SUDO_OK;
	return 0;
}

char *kf_sudoers_add_command(const char *line)
{
	const char *echo[] = { "echo", line, NULL };
	char *e = kf_argv_join(echo), *c;

	c = kf_asprintf("%s | sudo EDITOR='tee -a' visudo -f /etc/sudoers.d/kflash", e);
	free(e);
	return c;
}

char *kf_sudoers_user(const struct kf_ops *ops)
{
	uid_t uid = kf_os_uid(ops);
	char *name = NULL;

	/* $USER is whatever the login (or su, or a script) left there; sudo
	 * matches the user it runs for by the password database */
	if (kf_os_user_name(ops, uid, &name) == 0 && name)
		return name;
	/* sudoers' own form for a uid with no name */
	return kf_asprintf("#%ld", (long)uid);
}

char *kf_sudoers_tool_line(const struct kf_ops *ops, const char *kdir, const char *tool)
{
	char *user = kf_sudoers_user(ops);
	char *path = strcmp(tool, "dfu-util") == 0 ? kf_xstrdup("/usr/bin/dfu-util")
						   : tool_path(kdir, tool);
	char *line = kf_asprintf("%s ALL=(root) NOPASSWD: %s", user, path);

	free(path);
	free(user);
	return line;
}

/* The package that provides a tool flash_usb.py or make flash runs. */
static const char *tool_package(const char *tool)
{
	if (strcmp(tool, "dfu-util") == 0 || strcmp(tool, "avrdude") == 0 ||
	    strcmp(tool, "stm32flash") == 0)
		return tool;
	if (strcmp(tool, "hid-flash") == 0 || strcmp(tool, "rp2040_flash") == 0)
		return "libusb-1.0-0-dev pkg-config";
	return NULL;
}

static const char *base_name(const char *p)
{
	const char *b = strrchr(p, '/');

	return b ? b + 1 : p;
}

int kf_make_flash_preflight(struct kf_ctx *ctx, const char *kdir,
			    const struct kf_kconfig *cfg, const char *board, bool primary,
			    struct kf_error *e)
{
	struct kf_make_flash_plan p;
	char *line, *add;
	int r;

	r = kf_make_flash_plan(ctx, kdir, cfg, &p);
	if (r < 0)
		return kf_error_set(e, r, "interrupted while asking sudo about %s",
				    p.sudo_tool);
	if (!p.sudo_tool || p.sudo == KF_SUDO_OK || p.sudo == KF_SUDO_NO_SUDO)
		return 0;
	/* a missing tool fails fast with its cause (and the board may come
	 * back as Katapult and need none); only a prompt would wait */
	if (!primary || ctx->force || p.sudo != KF_SUDO_PASSWORD) {
		kf_out_verbose(ctx->out, "%s: make flash will run with NOSUDO=1: sudo "
			       "cannot run %s without a password", board, p.sudo_tool);
		return 0;
	}
	line = kf_sudoers_tool_line(ctx->ops, kdir, p.sudo_tool);
	kf_error_set(e, KF_EREFUSED, "make flash of %s runs 'sudo %s', and sudo would "
		     "ask for a password; kflash never waits at a password prompt with "
		     "Klipper stopped", board, p.sudo_tool);
	kf_error_cause(e, "this user may not run %s through sudo without a password",
		       p.sudo_tool);
	add = kf_sudoers_add_command(line);
	kf_error_step(e, KF_CMD("%s"), add);
	free(add);
	kf_error_step(e, "or run it as this user (NOSUDO=1), e.g. when a udev rule "
		      "gives you the board's bootloader: "
		      KF_CMD("kflash --force flash %s"), board);
	free(line);
	return KF_EREFUSED;
}

/* The whole line of out around pos, trimmed. malloc'd. */
static char *line_at(const char *out, const char *pos)
{
	const char *b = pos, *e = pos + strcspn(pos, "\n");

	while (b > out && b[-1] != '\n')
		b--;
	while (e > b && (e[-1] == ' ' || e[-1] == '\r'))
		e--;
	while (*b == ' ' && b < e)
		b++;
	return kf_xstrndup(b, (size_t)(e - b));
}

/* The line of out that holds s, or NULL. */
static char *line_with(const char *out, const char *s)
{
	const char *p = out ? strstr(out, s) : NULL;

	return p ? line_at(out, p) : NULL;
}

/* The program named in a "not found" message, by each way of saying it:
 * sudo's, python's when flash_usb.py ran it itself, the shell's and
 * make's own when it ran a recipe. Its base name, malloc'd, with the line
 * in *ret_line; or NULL. */
static char *missing_tool(const char *out, char **ret_line)
{
	static const struct { const char *before, *after; } says[] = {
		{ "sudo: ", ": command not found" },
		{ "No such file or directory: '", "'" },
		{ ": 1: ", ": not found" },
		{ "make: ", ": No such file or directory" },
	};
	size_t i;

	for (i = 0; out && i < sizeof(says) / sizeof(says[0]); i++) {
		const char *p = out;

		while ((p = strstr(p, says[i].before))) {
			const char *name = p + strlen(says[i].before);
			size_t n = strcspn(name, "'\n: ");
			char *path;
			char *tool;

			p = name;
			if (!n || !starts(name + n, says[i].after))
				continue;
			path = kf_xstrndup(name, n);
			tool = kf_xstrdup(base_name(path));
			free(path);
			*ret_line = line_at(out, name);
			return tool;
		}
	}
	return NULL;
}

/* The line that best says why, when no class knows: flash_usb.py's own
 * "Failed to flash" summary, else the last line that is not make's. */
static char *telling_line(const char *out)
{
	const char *p, *e, *best = NULL;
	size_t best_n = 0;
	char *l = line_with(out, "Failed to flash to ");

	if (l || !out)
		return l;
	for (p = out; *p; p = *e ? e + 1 : e) {
		e = p + strcspn(p, "\n");
		if (e > p && !starts(p, "make: ") && !starts(p, "make[") && *p != ' ') {
			best = p;
			best_n = (size_t)(e - p);
		}
	}
	return best ? kf_xstrndup(best, best_n) : NULL;
}

static void set_class(struct kf_tool_run *t, enum kf_flash_class c, char *cause,
		      const char *tool)
{
	t->cls = c;
	free(t->cause);
	t->cause = cause;
	if (tool && !t->tool)
		t->tool = kf_xstrdup(tool);
}

void kf_make_flash_classify(const char *out, const struct kf_exit *ex, struct kf_tool_run *t)
{
	char *line = NULL, *tool;

	/* "Entering bootloader" comes after the DTR raise worked: the board
	 * was asked to leave Klipper (and on a bare pty it never shows) */
	t->bootloader = has(out, "Entering bootloader on ");
	switch (ex->kind) {
	case KF_EXIT_INTERRUPTED:
		return set_class(t, KF_FLASH_INTERRUPTED, NULL, NULL);
	case KF_EXIT_TIMED_OUT:
		return set_class(t, KF_FLASH_TIMED_OUT, telling_line(out), NULL);
	case KF_EXIT_EXEC_FAILED:
		return set_class(t, KF_FLASH_NOT_STARTED, kf_xstrdup(strerror(ex->err)),
				 "make");
	default:
		break;
	}
	if ((line = line_with(out, "libusb.h: No such file")) ||
	    (line = line_with(out, "Package libusb-1.0 was not found")))
		return set_class(t, KF_FLASH_NEEDS_LIBUSB, line, "rp2040_flash");
	tool = missing_tool(out, &line);
	if (tool) {
		/* hid-flash is skipped, not failed, without libusb */
		if (strcmp(tool, "hid-flash") == 0 && has(out, "hid-flash requires libusb"))
			set_class(t, KF_FLASH_NEEDS_LIBUSB, line, tool);
		else
			set_class(t, KF_FLASH_TOOL_MISSING, line, tool);
		free(tool);
		return;
	}
	if ((line = line_with(out, "a password is required")) ||
	    (line = line_with(out, "a terminal is required to read the password")) ||
	    (line = line_with(out, "no tty present")))
		return set_class(t, KF_FLASH_SUDO_PASSWORD, line, NULL);
	if ((line = line_with(out, "USB flashing is not supported")))
		return set_class(t, KF_FLASH_UNSUPPORTED, line, NULL);
	if ((line = line_with(out, "LIBUSB_ERROR_ACCESS")) ||
	    (line = line_with(out, "Permission denied")))
		return set_class(t, KF_FLASH_NO_PERMISSION, line,
				 has(line, "dfu-util") || has(line, "DFU") ? "dfu-util" : NULL);
	/* rp2040_flash exits 0 after this: nothing was written */
	if ((line = line_with(out, "No rp2040 in BOOTSEL mode was found")) ||
	    (line = line_with(out, "No DFU capable USB device")))
		return set_class(t, KF_FLASH_NO_DEVICE, line, NULL);
	if ((line = line_with(out, "pyserial module is required")))
		return set_class(t, KF_FLASH_NO_PYSERIAL, line, NULL);
	if (has(out, "lib/katapult/flashtool.py") && !kf_exit_ok(ex)) {
		/* flash_usb.py found Katapult and its flashtool failed */
		struct kf_exit ft = { .kind = KF_EXIT_EXITED, .code = 1 };
		enum kf_flash_class c = kf_flashtool_classify(out, &ft);

		if (c != KF_FLASH_FAILED)
			return set_class(t, c, tail(out, 6), NULL);
	}
	if (kf_exit_ok(ex))
		return set_class(t, KF_FLASH_OK, NULL, NULL);
	set_class(t, KF_FLASH_FAILED, telling_line(out), NULL);
}

int kf_make_flash(struct kf_ctx *ctx, const struct kf_settings *s, const char *kdir,
		  const char *config, const struct kf_kconfig *cfg, const char *out,
		  const char *node, const char *board, struct kf_tool_run *t)
{
	struct kf_make_flash_plan p;
	char **argv;
	int r;

	memset(t, 0, sizeof(*t));
	/* Klipper's Makefiles hand FLASH_DEVICE to a shell ("$(FLASH_DEVICE)")
	 * after make expands it: only udev's own name characters go there */
	if (node[strspn(node, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			"0123456789/#+-.:=@_,")]) {
		t->cls = KF_FLASH_UNSAFE_DEVICE;
		t->cause = kf_xstrdup(node);
		kf_buf_add(&t->output, "", 0);
		return 0;
	}
	if (kf_make_flash_plan(ctx, kdir, cfg, &p) < 0) {
		/* the signal came while sudo was asked: make never ran */
		t->exit = p.check_exit;
		t->cls = KF_FLASH_INTERRUPTED;
		kf_buf_add(&t->output, "", 0);
		return 0;
	}
	t->nosudo = p.nosudo;
	t->sudo_tool = p.sudo_tool;
	if (p.nosudo)
		kf_out_verbose(ctx->out, "sudo would not run %s without a password; "
			       "make flash runs with NOSUDO=1", p.sudo_tool);
	argv = make_flash_argv(kdir, config, out, node, p.nosudo);
	r = run_tool(ctx, argv, s->timeout_flash, board, t);
	kf_argv_free(argv);
	if (r < 0)
		return r;
	kf_make_flash_classify(t->output.data, &t->exit, t);
	return 0;
}

int kf_make_flash_error(const struct kf_ops *ops, struct kf_error *e,
			const struct kf_tool_run *t, const char *board,
			const struct kf_settings *s)
{
	const char *tool = t->tool ? t->tool : t->sudo_tool ? base_name(t->sudo_tool) : "the tool";
	const char *pkg = tool_package(tool);
	const char *where = t->bootloader && t->cls != KF_FLASH_INTERRUPTED
		? "; the board was asked into its bootloader and may still be there" : "";
	char how[96], *line, *add;

	kf_exit_describe(&t->exit, how, sizeof(how));
	switch (t->cls) {
	case KF_FLASH_TOOL_MISSING:
		kf_error_set(e, KF_EFAILED, "make flash of %s failed: %s is not installed%s",
			     board, tool, where);
		if (pkg)
			kf_error_step(e, KF_CMD("sudo apt-get install %s"), pkg);
		else
			kf_error_step(e, "install %s (" KF_CMD("kflash doctor")
				      " lists what make flash needs)", tool);
		break;
	case KF_FLASH_NEEDS_LIBUSB:
		kf_error_set(e, KF_EFAILED, "make flash of %s could not build %s: the "
			     "libusb headers are missing%s", board, tool, where);
		kf_error_step(e, KF_CMD("sudo apt-get install libusb-1.0-0-dev pkg-config"));
		break;
	case KF_FLASH_SUDO_PASSWORD:
		line = kf_sudoers_tool_line(ops, "~/klipper",
					    t->sudo_tool ? t->sudo_tool : tool);
		kf_error_set(e, KF_EFAILED, "make flash of %s stopped at sudo, which wanted "
			     "a password%s", board, where);
		add = kf_sudoers_add_command(line);
		kf_error_step(e, KF_CMD("%s"), add);
		free(add);
		free(line);
		break;
	case KF_FLASH_NO_PERMISSION:
		kf_error_set(e, KF_EFAILED, "make flash of %s failed: %s may not open the "
			     "board's USB device as this user%s", board, tool, where);
		if (t->nosudo) {
			line = kf_sudoers_tool_line(ops, "~/klipper",
						    t->sudo_tool ? t->sudo_tool : tool);
			add = kf_sudoers_add_command(line);
			kf_error_cause(e, "kflash ran make flash with NOSUDO=1: sudo would "
				       "have asked for a password to run %s", tool);
			kf_error_step(e, KF_CMD("%s"), add);
			free(add);
			free(line);
		}
		break;
	case KF_FLASH_NO_DEVICE:
		kf_error_set(e, KF_EFAILED, "make flash of %s found no board in its "
			     "bootloader; nothing was written", board);
		kf_error_step(e, "check that the board entered its bootloader ("
			      KF_CMD("kflash list") "; " KF_CMD("lsusb") "), or press "
			      "its boot button and reset");
		break;
	case KF_FLASH_UNSUPPORTED:
		kf_error_set(e, KF_EFAILED, "make flash cannot flash the MCU of %s over "
			     "USB", board);
		kf_error_step(e, "flash it with Katapult: "
			      KF_CMD("kflash flash %s -s --method katapult"), board);
		break;
	case KF_FLASH_UNSAFE_DEVICE:
		kf_error_set(e, KF_EFAILED, "make flash of %s was not run: its device name "
			     "%s holds characters that make flash would hand to a shell; "
			     "nothing was written", board, t->cause);
		kf_error_step(e, "flash it with Katapult: "
			      KF_CMD("kflash flash %s -s --method katapult"), board);
		break;
	case KF_FLASH_TIMED_OUT:
		kf_error_set(e, KF_EFAILED, "make flash of %s timed out after %d s and was "
			     "stopped%s", board, s->timeout_flash, where);
		kf_error_step(e, KF_CMD("kflash settings timeout.flash %d"), s->timeout_flash * 2);
		break;
	case KF_FLASH_INTERRUPTED:
		kf_error_set(e, KF_EINTERRUPTED, "make flash of %s was interrupted; the "
			     "board may need flashing again", board);
		break;
	case KF_FLASH_NOT_STARTED:
		kf_error_set(e, KF_EFAILED, "make flash of %s could not be started", board);
		kf_error_step(e, KF_CMD("sudo apt-get install make"));
		break;
	case KF_FLASH_IN_USE: case KF_FLASH_NO_ANSWER: case KF_FLASH_WRITE_ERROR:
	case KF_FLASH_MCU_MISMATCH: case KF_FLASH_NO_PYSERIAL: case KF_FLASH_NOT_KATAPULT:
	case KF_FLASH_NO_COMPLETE:
		/* make flash found Katapult and ran its flashtool */
		kf_flash_error(e, t->cls, board, t->output.data, t->command, s);
		if (t->cls == KF_FLASH_NO_PYSERIAL && t->cause)
			kf_error_cause(e, "%s", t->cause);
		return e->code;
	default:
		kf_error_set(e, KF_EFAILED, "make flash of %s %s%s", board, how, where);
		break;
	}
	if (t->cause)
		kf_error_cause(e, "%s", t->cause);
	if (t->bootloader && t->cls != KF_FLASH_INTERRUPTED)
		kf_error_step(e, "until it is flashed, power-cycle the board (or press "
			      "reset) so it runs Klipper again; " KF_CMD("kflash list")
			      " shows it");
	kf_error_step(e, KF_CMD("kflash flash %s -s --method make-flash"), board);
	kf_error_step(e, KF_CMD("kflash -v flash %s -s --method make-flash")
		      "   (shows make's whole output)", board);
	if (t->command)
		kf_error_command(e, "%s", t->command);
	return e->code;
}
