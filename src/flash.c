/* flash.c - run flashtool.py and make flash, and tell their failures apart. */
#include <errno.h>
#include <stdio.h>
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
	char *end;
	unsigned long v;

	if (!p)
		return -ENOENT;
	v = strtoul(p + 21, &end, 16);
	if (end == p + 21)
		return -ENOENT;
	*ret = (uint32_t)v;
	return 0;
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
		kf_error_step(e, "sudo apt-get install python3-serial");
		kf_error_step(e, "or point kflash at a python that has it: kflash "
			      "settings python /usr/bin/python3");
		break;
	case KF_FLASH_IN_USE:
		kf_error_set(e, KF_EFAILED, "the serial port of %s is in use by another "
			     "program", board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, "stop that program (Klipper: sudo systemctl stop %s), "
			      "then kflash flash %s -s", s->service, board);
		break;
	case KF_FLASH_NOT_KATAPULT:
		kf_error_set(e, KF_EFAILED, "%s did not come back as Katapult when asked "
			     "for its bootloader; nothing was written", board);
		kf_error_cause(e, "the board has no Katapult bootloader (it may have a "
			       "stock/DFU bootloader)");
		kf_error_step(e, "flash it with make flash: kflash flash %s -s --method "
			      "make-flash", board);
		kf_error_step(e, "or install Katapult on it once by its own instructions");
		break;
	case KF_FLASH_NO_ANSWER:
		kf_error_set(e, KF_EFAILED, "the bootloader of %s did not answer", board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, "double-tap the board's reset button to enter Katapult, "
			      "then kflash flash %s -s", board);
		kf_error_step(e, "check the USB cable and kflash list");
		break;
	case KF_FLASH_MCU_MISMATCH:
		kf_error_set(e, KF_EREFUSED, "the firmware built for %s is for another "
			     "MCU than the one Katapult reports", board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, "kflash config %s   (choose the MCU Katapult reports)", board);
		break;
	case KF_FLASH_WRITE_ERROR:
		kf_error_set(e, KF_EFAILED, "writing or verifying the firmware of %s "
			     "failed", board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, "kflash flash %s -s   (the board is in Katapult and can "
			      "be flashed again)", board);
		break;
	case KF_FLASH_NO_COMPLETE:
		kf_error_set(e, KF_EFAILED, "flashtool ended without \"Programming "
			     "Complete\" for %s; nothing was written", board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, "kflash flash %s -s --method make-flash", board);
		break;
	case KF_FLASH_TIMED_OUT:
		kf_error_set(e, KF_EFAILED, "flashing %s timed out after %d s and was "
			     "stopped", board, s->timeout_flash);
		kf_error_step(e, "kflash flash %s -s   (the board stays in Katapult)", board);
		kf_error_step(e, "kflash settings timeout.flash %d", s->timeout_flash * 2);
		break;
	case KF_FLASH_NOT_STARTED:
		kf_error_set(e, KF_EFAILED, "the flash tool for %s could not be started",
			     board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, "kflash doctor");
		kf_error_step(e, "kflash settings katapult_dir /path/to/katapult");
		break;
	case KF_FLASH_INTERRUPTED:
		kf_error_set(e, KF_EINTERRUPTED, "flashing %s was interrupted; the board "
			     "is left in Katapult and needs flashing again", board);
		kf_error_step(e, "kflash flash %s -s", board);
		break;
	default:
		kf_error_set(e, KF_EFAILED, "flashing %s failed", board);
		kf_error_cause(e, "%s", t);
		kf_error_step(e, "kflash -v flash %s -s   (shows the tool's output)", board);
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
	memset(t, 0, sizeof(*t));
}

char **kf_flashtool_argv(const struct kf_settings *s, const char *node,
			 const char *firmware)
{
	char **argv = kf_xcalloc(8, sizeof(*argv));
	char *kdir = kf_expand_home(s->katapult_dir);
	size_t n = 0;

	argv[n++] = kf_xstrdup(s->python);
	argv[n++] = kf_asprintf("%s/scripts/flashtool.py", kdir);
	argv[n++] = kf_xstrdup("-d");
	argv[n++] = kf_xstrdup(node);
	if (firmware) {
		argv[n++] = kf_xstrdup("-f");
		argv[n++] = kf_xstrdup(firmware);
	} else {
		argv[n++] = kf_xstrdup("-s");
	}
	free(kdir);
	return argv;
}

char **kf_make_flash_argv(const char *kdir, const char *config, const char *out,
			  const char *node)
{
	char *dev = kf_asprintf("FLASH_DEVICE=%s", node);
	char **argv = kf_make_argv(kdir, config, out, "flash", dev);

	free(dev);
	return argv;
}

static void on_tool_line(void *data, const char *line, size_t len)
{
	struct kf_ctx *ctx = data;

	kf_out_verbose(ctx->out, "  | %.*s", (int)len, line);
}

static int run_tool(struct kf_ctx *ctx, char **argv, int timeout_s, struct kf_tool_run *t)
{
	struct kf_spawn_req req = {
		.argv = (const char *const *)argv, .in = KF_STDIO_NULL,
		.out = KF_STDIO_CAPTURE,
	};
	struct kf_run_opts opts = {
		.timeout_ms = timeout_s * 1000LL, .capture = &t->output,
		.on_line = on_tool_line, .line_data = ctx,
	};
	int r;

	t->command = kf_argv_join((const char *const *)argv);
	kf_out_verbose(ctx->out, "$ %s", t->command);
	r = kf_proc_run(ctx->ops, &req, &opts, &t->exit);
	if (!t->output.data)
		kf_buf_add(&t->output, "", 0);
	return r;
}

int kf_flashtool(struct kf_ctx *ctx, const struct kf_settings *s, const char *node,
		 const char *firmware, struct kf_tool_run *t)
{
	char **argv = kf_flashtool_argv(s, node, firmware);
	int r;

	memset(t, 0, sizeof(*t));
	r = run_tool(ctx, argv, s->timeout_flash, t);
	kf_argv_free(argv);
	if (r < 0)
		return r;
	t->cls = kf_flashtool_classify(t->output.data, &t->exit);
	/* status mode ends with "Status Request Complete", not Programming */
	if (firmware && t->cls == KF_FLASH_OK && !has(t->output.data, "Programming Complete"))
		t->cls = KF_FLASH_NO_COMPLETE;
	return 0;
}

int kf_make_flash(struct kf_ctx *ctx, const struct kf_settings *s, const char *kdir,
		  const char *config, const char *out, const char *node,
		  struct kf_tool_run *t)
{
	char **argv = kf_make_flash_argv(kdir, config, out, node);
	int r;

	memset(t, 0, sizeof(*t));
	r = run_tool(ctx, argv, s->timeout_flash, t);
	kf_argv_free(argv);
	if (r < 0)
		return r;
	switch (t->exit.kind) {
	case KF_EXIT_INTERRUPTED:
		t->cls = KF_FLASH_INTERRUPTED;
		break;
	case KF_EXIT_TIMED_OUT:
		t->cls = KF_FLASH_TIMED_OUT;
		break;
	case KF_EXIT_EXEC_FAILED:
		t->cls = KF_FLASH_NOT_STARTED;
		break;
	default:
		t->cls = kf_exit_ok(&t->exit) ? KF_FLASH_OK : KF_FLASH_FAILED;
		break;
	}
	return 0;
}
