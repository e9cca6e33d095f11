/* flash_board.c - one board's pre-flight, flash, fallback and return. */
#include <errno.h>
#include <string.h>

#include "kflash/flash.h"
#include "kflash/flash_board.h"
#include "kflash/lastgood.h"
#include "kflash/lock.h"
#include "kflash/proc.h"
#include "kflash/select.h"
#include "kflash/session.h"
#include "kflash/util.h"

void kf_flash_lock_boards(struct kf_run *run)
{
	size_t i;

	for (i = 0; i < run->n; i++) {
		struct kf_job *j = &run->jobs[i];
		char *path, *what;

		if (j->state != KF_JOB_ACTIVE || !j->at.id)
			continue;
		path = kf_board_lock_path(run->ctx->ops, j->at.id);
		what = kf_asprintf("using the board %s", j->at.label);
		if (kf_lock_take_at(run->ctx, path, what, &j->err, &j->lock_fd) < 0)
			kf_job_fail(run, j, j->err.code);
		free(what);
		free(path);
	}
}

int kf_flash_preflight(struct kf_run *run, struct kf_job *j)
{
	int r = kf_select_relocate(run, j, false);

	if (r < 0 && !kf_is_class(r)) {
		/* udev did not answer: that says nothing about the board */
		kf_error_context(&j->err, "cannot check that %s is still connected; "
				 "nothing was stopped", j->b->key);
		kf_job_fail(run, j, KF_EFAILED);
		return 0;
	}
	if (r < 0) {
		kf_error_set(&j->err, r, "%s disappeared during the build; nothing "
			     "was stopped", j->b->key);
		kf_error_step(&j->err, "reconnect it, then "
			      KF_CMD("kflash flash %s -s"), j->b->key);
		kf_job_fail(run, j, r);
		return 0;
	}
	/* make flash's own tool (dfu-util...) must not wait at a sudo prompt
	 * with Klipper stopped either */
	if (j->method != KF_METHOD_MAKE_FLASH)
		return 0;
	r = kf_make_flash_preflight(run->ctx, run->kdir, &j->cfg, j->b->key, true,
				    &j->err);
	if (r == KF_EINTERRUPTED)
		return r;
	if (r < 0)
		kf_job_fail(run, j, r);
	return 0;
}

int kf_flashing_begin(struct kf_flashing *fl, struct kf_run *run, bool fallback,
		      struct kf_error *err)
{
	size_t i, k;

	memset(fl, 0, sizeof(*fl));
	fl->run = run;
	fl->fallback = fallback;
	for (i = 0; i < run->n; i++) {
		const struct kf_transport *tr = run->jobs[i].tr;
		int r;

		if (run->jobs[i].state != KF_JOB_ACTIVE)
			continue;
		for (k = 0; k < fl->n && fl->tr[k] != tr; k++)
			;
		if (k < fl->n)
			continue;
		if (fl->n == sizeof(fl->tr) / sizeof(fl->tr[0]))
			abort();	/* more transports than kflash has */
		r = tr->watch_open(run->ctx, &fl->watch[fl->n], err);
		if (r < 0)
			return KF_EFAILED;
		fl->tr[fl->n++] = tr;
	}
	return 0;
}

void kf_flashing_end(struct kf_flashing *fl)
{
	size_t i;

	for (i = 0; i < fl->n; i++)
		fl->tr[i]->watch_close(fl->run->ctx, fl->watch[i]);
	fl->n = 0;
}

static void *watch_of(struct kf_flashing *fl, const struct kf_job *j)
{
	size_t i;

	for (i = 0; i < fl->n; i++)
		if (fl->tr[i] == j->tr)
			return fl->watch[i];
	return NULL;
}

/* ---- the flash ------------------------------------------------------------------- */

static int parse_addr(const char *s, uint32_t *ret)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);

	if (end == s || *end)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int flashtool(struct kf_run *run, struct kf_job *j, const char *firmware,
		     struct kf_tool_run *t)
{
	char **args = j->tr->tool_args(&j->at);
	/* progress for a flash, not for a status query */
	int r = kf_flashtool(run->ctx, run->s, (const char *const *)args, firmware,
			     firmware ? j->b->key : NULL, t);

	kf_argv_free(args);
	if (r < 0) {
		int e = r;

		r = kf_error_set(&j->err, KF_EFAILED, "cannot run flashtool: %s",
				 strerror(-e));
		kf_error_errno(&j->err, e);
		return r;
	}
	if (t->exit.kind == KF_EXIT_INTERRUPTED)
		kf_run_heard(run, t->exit.interrupted_by);
	if (t->cls == KF_FLASH_OK)
		return 0;
	r = kf_flash_error(&j->err, t->cls, j->b->key, t->output.data, t->command, run->s);
	if (t->cls == KF_FLASH_INTERRUPTED)
		j->err.signal = run->signal;
	if (t->cls == KF_FLASH_NOT_STARTED && t->exit.kind == KF_EXIT_EXEC_FAILED)
		kf_error_errno(&j->err, t->exit.err);
	return r;
}

static int in_katapult(struct kf_job *j);

/* The status request after a bootloader request failed: whether the board
 * answers from Katapult at all says which error is the true one. */
static int confirmed(struct kf_run *run, struct kf_job *j, int r)
{
	struct kf_error status = j->err;
	int e;

	memset(&j->err, 0, sizeof(j->err));
	e = kf_select_relocate(run, j, true);
	if (e == 0)
		e = in_katapult(j);
	if (e < 0) {
		kf_error_release(&status);
		free(status.note);
		return e;
	}
	/* it is there, in Katapult: the status request's own failure */
	kf_error_release(&j->err);
	free(j->err.note);
	j->err = status;
	return r;
}

/* The bootloader must put the application where the firmware was linked;
 * a mismatch would leave a board that does not boot. */
static int check_app_start(struct kf_run *run, struct kf_job *j)
{
	const char *want_s = kf_kconfig_get(&j->cfg, "CONFIG_FLASH_APPLICATION_ADDRESS");
	struct kf_tool_run t;
	uint32_t want, got;
	char *mcu = NULL;
	int r;

	if (!want_s || parse_addr(want_s, &want) < 0)
		return 0;
	kf_out_phase(run->ctx->out, KF_PHASE_FLASH, "%s: asking Katapult where the "
		     "application starts", j->b->key);
	memset(&t, 0, sizeof(t));
	r = flashtool(run, j, NULL, &t);
	if (r < 0 && r != KF_EINTERRUPTED && j->tr->stable && j->tr->to_bootloader)
		r = confirmed(run, j, r);
	/* a device that did not say its MCU (a CAN node) says it here */
	if (r == 0 && !j->at.mcu && (mcu = kf_flashtool_mcu(t.output.data)) &&
	    strcmp(mcu, j->b->mcu) != 0) {
		kf_error_set(&j->err, KF_EREFUSED, "%s: Katapult reports a %s, not the "
			     "registered %s; nothing was written", j->b->key, mcu, j->b->mcu);
		kf_error_cause(&j->err, "another board answers as %s, or it was registered "
			       "with the wrong --mcu", j->at.label);
		kf_error_step(&j->err, KF_CMD("kflash list"));
		r = KF_EREFUSED;
	}
	free(mcu);
	if (r == 0 && kf_flashtool_app_start(t.output.data, &got) < 0)
		r = 1;	/* it does not say: nothing to compare */
	kf_tool_run_release(&t);
	if (r != 0)
		return r < 0 ? r : 0;
	if (got != want) {
		kf_error_set(&j->err, KF_EREFUSED, "%s: the firmware is built for "
			     "0x%x but Katapult starts the application at 0x%x; it "
			     "would not boot, so nothing was written", j->b->key, want, got);
		kf_error_cause(&j->err, "the config's 'Bootloader offset' does not "
			       "match the Katapult on this board");
		kf_error_step(&j->err, KF_CMD("kflash config %s") "   (set the "
			      "bootloader offset to match 0x%x)", j->b->key, got);
		kf_error_step(&j->err, "the board waits in Katapult; flash it again or "
			      "power-cycle it");
		return KF_EREFUSED;
	}
	kf_out_ok(run->ctx->out, KF_PHASE_FLASH, "%s: application start 0x%x matches "
		  "the config", j->b->key, got);
	{
		char at[16];

		snprintf(at, sizeof(at), "0x%x", got);
		kf_recorder_board(run->ctx->rec, j->b, NULL, NULL, at);
	}
	/* status mode left the board in Katapult, under another name */
	if (j->tr->stable)
		return 0;
	return kf_select_relocate(run, j, true) < 0 ? KF_EFAILED : 0;
}


/* Where the flash tool's status request does not send a board running
 * Klipper to its bootloader (CAN), the transport does it first, and the
 * board must then answer from Katapult before anything is written. */
static int enter_bootloader(struct kf_run *run, struct kf_job *j)
{
	int r;

	if (!j->tr->to_bootloader || j->at.mode == KF_MODE_KATAPULT ||
	    (kf_flash_traits(j->tr, j->b) & KF_FLASH_TOOL_ENTERS))
		return 0;
	kf_out_phase(run->ctx->out, KF_PHASE_FLASH, "%s: asking it into Katapult",
		     j->b->key);
	r = j->tr->to_bootloader(run->ctx, run->reg, j->b, &j->at, &j->err);
	if (r == -EINTR) {
		(void)kf_run_signalled(run);
		r = kf_error_set(&j->err, KF_EINTERRUPTED, "interrupted while asking %s "
				 "into Katapult", j->b->key);
		j->err.signal = run->signal;
		return r;
	}
	if (r < 0)
		return r;
	/* a node keeps its UUID: Katapult's status request, next, is what
	 * hears it answer from there (confirmed() says why when it does not) */
	if (j->tr->stable) {
		j->at.mode = KF_MODE_KATAPULT;
		return 0;
	}
	r = kf_select_relocate(run, j, true);
	if (r < 0)
		return r;
	return in_katapult(j);
}

/* After the bootloader request: the board answers from Katapult. */
static int in_katapult(struct kf_job *j)
{
	if (j->at.mode != KF_MODE_KATAPULT) {
		kf_error_set(&j->err, KF_EFAILED, "%s answers as %s, not Katapult, after it "
			     "was asked into its bootloader; nothing was written", j->b->key,
			     kf_mode_name(j->at.mode) ? kf_mode_name(j->at.mode) : "something else");
		kf_error_cause(&j->err, "the board has no Katapult, or Katapult was built "
			       "without CAN");
		return KF_EFAILED;
	}
	return 0;
}

static int flash_katapult(struct kf_flashing *fl, struct kf_job *j)
{
	struct kf_run *run = fl->run;
	struct kf_tool_run t;
	int r;

	r = enter_bootloader(run, j);
	/* one the flash tool takes into Katapult (a bridge, on USB, not on
	 * its bus) is found there by the tool itself, and only while flashing */
	if (r == 0 && !(kf_flash_traits(j->tr, j->b) & KF_FLASH_TOOL_ENTERS))
		r = check_app_start(run, j);
	if (r < 0)
		return r;
	if (kf_run_signalled(run)) {
		r = kf_error_set(&j->err, KF_EINTERRUPTED, "interrupted");
		j->err.signal = run->signal;
		return r;
	}
	j->mark = j->tr->watch_mark(run->ctx, watch_of(fl, j));
	kf_out_phase(run->ctx->out, KF_PHASE_FLASH, "%s: flashing %s via katapult on %s",
		     j->b->key, j->build.firmware, j->at.label);
	memset(&t, 0, sizeof(t));
	r = flashtool(run, j, j->build.firmware, &t);
	kf_tool_run_release(&t);
	return r;
}

static int flash_make(struct kf_flashing *fl, struct kf_job *j)
{
	struct kf_run *run = fl->run;
	char *node = j->tr->make_flash_device(&j->at);
	struct kf_tool_run t;
	int r;

	if (!node)
		return kf_error_set(&j->err, KF_EFAILED, "make flash cannot reach %s "
				    "over %s", j->b->key, j->tr->name);
	j->mark = j->tr->watch_mark(run->ctx, watch_of(fl, j));
	kf_out_phase(run->ctx->out, KF_PHASE_FLASH, "%s: flashing via make flash on %s",
		     j->b->key, j->at.label);
	/* never lets flash_usb.py's sudo ask for a password (flash.h) */
	r = kf_make_flash(run->ctx, run->s, run->kdir, j->cfg_path, &j->cfg,
			  j->build.build_dir, node, j->b->key, &t);
	free(node);
	if (r < 0) {
		int e = r;

		r = kf_error_set(&j->err, KF_EFAILED, "cannot run make flash: %s",
				 strerror(-e));
		kf_error_errno(&j->err, e);
	} else if (t.cls != KF_FLASH_OK) {
		if (t.exit.kind == KF_EXIT_INTERRUPTED)
			kf_run_heard(run, t.exit.interrupted_by);
		r = kf_make_flash_error(run->ctx->ops, &j->err, &t, j->b->key, run->s);
		if (t.cls == KF_FLASH_INTERRUPTED)
			j->err.signal = run->signal;
	}
	kf_tool_run_release(&t);
	return r;
}

/* make flash reaches USB and serial devices only (not a CAN node) */
static bool make_flash_reaches(const struct kf_job *j)
{
	char *node = j->tr->make_flash_device(&j->at);
	bool yes = node != NULL;

	free(node);
	return yes;
}

/* Katapult's failure in one line: what failed, and the last line of its
 * cause (flashtool's exception, not the traceback above it). malloc'd. */
static char *katapult_why(const struct kf_error *e)
{
	const char *c = e->cause, *end, *p;

	if (e->errnum)
		return kf_asprintf("%s: %s", e->what ? e->what : "failed", strerror(e->errnum));
	if (!c || !*c)
		return kf_xstrdup(e->what ? e->what : "no reason given");
	end = c + strlen(c);
	while (end > c && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	for (p = end; p > c && p[-1] != '\n'; p--)
		;
	while (p < end && *p == ' ')
		p++;
	return kf_asprintf("%s: %.*s", e->what ? e->what : "failed", (int)(end - p), p);
}

void kf_flashing_flash(struct kf_flashing *fl, struct kf_job *j)
{
	struct kf_run *run = fl->run;
	int64_t t0 = kf_os_now(run->ctx->ops);
	int r;

	/* the board may have moved since pre-flight (another board's reset) */
	r = kf_select_relocate(run, j, false);
	if (r < 0) {
		kf_job_fail(run, j, r);
		return;
	}
	if (j->method == KF_METHOD_KATAPULT) {
		j->method_used = "katapult";
		r = flash_katapult(fl, j);
		if (r < 0 && r != KF_EINTERRUPTED && r != KF_EREFUSED && fl->fallback &&
		    !run->signal && make_flash_reaches(j)) {
			/* what make flash then mends is a warning, with the
			 * line that says why (a traceback's last) */
			char *why = katapult_why(&j->err);

			kf_out_warn(run->ctx->out, "%s: Katapult failed (%s); trying make flash",
				    j->b->key, why);
			/* it may sit in its bootloader now, under another name */
			r = kf_select_relocate(run, j, true);
			if (r == 0) {
				j->method_used = "make-flash";
				r = flash_make(fl, j);
			}
			if (r < 0 && !j->err.note)
				j->err.note = kf_asprintf("Katapult had failed first: %s", why);
			free(why);
		}
	} else {
		j->method_used = "make-flash";
		r = flash_make(fl, j);
	}
	j->ms = kf_os_now(run->ctx->ops) - t0;
	if (r < 0) {
		kf_job_fail(run, j, r);
		return;
	}
	j->state = KF_JOB_WRITTEN;
	kf_out_ok(run->ctx->out, KF_PHASE_FLASH, "%s written via %s", j->b->key,
		  j->method_used);
}

void kf_flashing_flash_all(struct kf_flashing *fl)
{
	struct kf_run *run = fl->run;
	size_t i;
	int pass;

	for (pass = 0; run && pass < 2; pass++)
		for (i = 0; i < run->n && !run->signal; i++) {
			struct kf_job *j = &run->jobs[i];
			bool carries = kf_flash_traits(j->tr, j->b) & KF_FLASH_CARRIES_BUS;

			if (j->state == KF_JOB_ACTIVE && carries == (pass == 1))
				kf_flashing_flash(fl, j);
		}
}

/* ---- the return ------------------------------------------------------------------ */

/* For a board that did not come back running what was flashed: the
 * firmware that last did, when one is kept and it is not what failed. */
static void step_rollback(struct kf_run *run, struct kf_job *j)
{
	struct kf_lastgood lg;

	if (kf_lastgood_load(run->ctx, j->b, NULL, &lg) == 0 &&
	    (!j->build.firmware || strcmp(lg.image, j->build.firmware) != 0))
		kf_error_step(&j->err, KF_CMD("kflash rollback %s") "   (flash the firmware that last "
			      "came back, Klipper %s)", j->b->key, kf_lastgood_klipper(&lg)
			      ? kf_lastgood_klipper(&lg) : "unknown");
	kf_lastgood_release(&lg);
}

static int verify(struct kf_flashing *fl, struct kf_job *j)
{
	struct kf_run *run = fl->run;
	int64_t deadline = kf_os_now(run->ctx->ops) + run->s->timeout_reconnect * 1000LL;
	enum kf_return back = KF_RETURN_NONE;
	int r;

	kf_out_phase(run->ctx->out, KF_PHASE_VERIFY, "waiting for %s to come back",
		     j->b->key);
	r = j->tr->await_return(run->ctx, run->reg, j->b, watch_of(fl, j), j->mark,
				deadline, &j->at, &back, &j->err);
	if (r == -EINTR) {
		(void)kf_run_signalled(run);
		kf_error_set(&j->err, KF_EINTERRUPTED, "interrupted while waiting for "
			     "%s to come back", j->b->key);
		j->err.signal = run->signal;
		return KF_EINTERRUPTED;
	}
	if (r < 0) {
		/* the transport could not look: that says nothing of the board */
		kf_error_context(&j->err, "cannot tell whether %s came back", j->b->key);
		kf_error_step(&j->err, KF_CMD("kflash list") "   (whether %s runs "
			      "Klipper)", j->b->key);
		return KF_EFAILED;
	}
	switch (back) {
	case KF_RETURN_BACK:
		kf_error_release(&j->err);
		kf_out_ok(run->ctx->out, KF_PHASE_VERIFY, "%s is back: %s", j->b->key,
			  j->at.label);
		return 0;
	case KF_RETURN_BOOTLOADER:
		kf_error_set(&j->err, KF_EFAILED, "%s came back in Katapult, not "
			     "running Klipper", j->b->key);
		kf_error_cause(&j->err, "the new firmware did not start: wrong "
			       "bootloader offset or clock settings in its config");
		kf_error_step(&j->err, KF_CMD("kflash config %s") "   (check "
			      "'Bootloader offset')",
			      j->b->key);
		kf_error_step(&j->err, KF_CMD("kflash flash %s -s") "   (the board is "
			      "still in Katapult)", j->b->key);
		step_rollback(run, j);
		return KF_EFAILED;
	case KF_RETURN_NONE:
		break;
	}
	kf_error_set(&j->err, KF_EFAILED, "%s did not come back within %d s",
		     j->b->key, run->s->timeout_reconnect);
	kf_error_cause(&j->err, "the board did not re-enumerate on USB; it may need "
		       "a power cycle");
	kf_error_step(&j->err, "power-cycle the printer's electronics, then "
		      KF_CMD("kflash list"));
	kf_error_step(&j->err, "if it shows in Katapult: " KF_CMD("kflash flash %s -s"), j->b->key);
	step_rollback(run, j);
	return KF_EFAILED;
}

void kf_flashing_verify(struct kf_flashing *fl)
{
	struct kf_run *run = fl->run;
	size_t i;

	for (i = 0; run && i < run->n; i++) {
		struct kf_job *j = &run->jobs[i];
		int64_t t0;
		int r;

		if (j->state != KF_JOB_WRITTEN)
			continue;
		if (run->signal) {
			kf_error_set(&j->err, KF_EINTERRUPTED, "%s was written; kflash "
				     "stopped before seeing it come back", j->b->key);
			j->err.signal = run->signal;
			kf_error_step(&j->err, KF_CMD("kflash list"));
			kf_job_fail(run, j, KF_EINTERRUPTED);
			continue;
		}
		/* its own time: writing it, then waiting for it (not the other
		 * boards' flashing in between) */
		t0 = kf_os_now(run->ctx->ops);
		r = verify(fl, j);
		j->ms += kf_os_now(run->ctx->ops) - t0;
		if (r < 0) {
			kf_job_fail(run, j, r);
			continue;
		}
		j->state = KF_JOB_DONE;
		/* the result, which stdout says once (result.c); on stderr
		 * only when stdout holds the JSON document */
		if (run->ctx->out->json)
			kf_out_ok(run->ctx->out, KF_PHASE_FLASH, "%s flashed via %s in "
				  "%.1fs", j->b->key, j->method_used, (double)j->ms / 1000.0);
	}
}

/* ---- what came back is kept ------------------------------------------------------ */

size_t kf_flash_keep_good(struct kf_run *run)
{
	struct kf_ctx *ctx = run->ctx;
	size_t i, tried = 0;

	for (i = 0; i < run->n; i++) {
		struct kf_job *j = &run->jobs[i];
		struct kf_lastgood_src src = { j->build.firmware, j->cfg_path,
					       j->build.build_dir, j->build.version };
		struct kf_error e = KF_ERROR_INIT;
		struct kf_lastgood lg;

		if (j->state != KF_JOB_DONE || j->method != KF_METHOD_KATAPULT ||
		    !j->build.firmware || !j->cfg_path)
			continue;
		if (j->reported < 0) {
			kf_out_warn(ctx->out, "%s: its firmware is not kept for kflash "
				    "rollback, as the board reports another version",
				    j->b->key);
			continue;
		}
		tried++;
		if (kf_lastgood_keep(ctx, j->b, &src, &e, &lg) < 0) {
			kf_out_warn(ctx->out, "%s: its firmware is not kept for kflash "
				    "rollback (%s); what was kept before stays", j->b->key,
				    e.what);
		} else {
			kf_out_ok(ctx->out, KF_PHASE_VERIFY, "%s: its firmware (Klipper %s) "
				  "is kept for kflash rollback", j->b->key,
				  kf_lastgood_klipper(&lg) ? kf_lastgood_klipper(&lg) : "unknown");
			kf_lastgood_release(&lg);
		}
		kf_error_release(&e);
		free(e.note);
	}
	return tried;
}

/* ---- --dry-run ------------------------------------------------------------------- */

static void print_argv(struct kf_run *run, char **argv)
{
	char *cmd = kf_argv_join((const char *const *)argv);

	kf_out_result(run->ctx->out, "  %s", cmd);
	free(cmd);
	kf_argv_free(argv);
}

void kf_flash_board_dry_run(struct kf_run *run, struct kf_job *j, bool fallback)
{
	char *out = kf_board_build_dir(run->ctx->ops, j->b->key);
	/* what a rollback flashes is there already; a build's is made first */
	char *fw = j->build.firmware ? kf_xstrdup(j->build.firmware)
		   : kf_asprintf("%s/klipper.bin", out);

	if (j->method == KF_METHOD_KATAPULT) {
		char **args = j->tr->tool_args(&j->at);
		struct kf_where later = { .node = (char *)"<its Katapult tty>" };
		char **later_args = j->tr->tool_args(&later);

		print_argv(run, kf_flashtool_argv(run->ctx->ops, run->s,
						  (const char *const *)args, NULL));
		print_argv(run, kf_flashtool_argv(run->ctx->ops, run->s,
						  (const char *const *)later_args, fw));
		kf_argv_free(args);
		kf_argv_free(later_args);
		if (fallback)
			kf_out_result(run->ctx->out, "  (if Katapult fails:)");
	}
	if (j->method == KF_METHOD_MAKE_FLASH || fallback) {
		char *node = j->tr->make_flash_device(&j->at);

		if (node)
			print_argv(run, kf_make_flash_argv(run->kdir, j->cfg_path, out, node));
		free(node);
	}
	free(fw);
	free(out);
}
