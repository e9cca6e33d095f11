/* flow.c - kflash flash, step by step, and its promise: Klipper is
 * started again on every path after kflash stopped it. */
#include <string.h>

#include "kflash/commands.h"
#include "kflash/flash_board.h"
#include "kflash/flow.h"
#include "kflash/lock.h"
#include "kflash/prepare.h"
#include "kflash/proc.h"
#include "kflash/result.h"
#include "kflash/select.h"
#include "kflash/util.h"
#include "kflash/window.h"

/* Before anything is stopped: every board still there and ready for its
 * method, sudo will not prompt, and (again: a print may have started
 * during the build) nothing prints. */
static int preflight(struct kf_run *run, struct kf_window *win, struct kf_error *err)
{
	size_t i;
	int r;

	for (i = 0; i < run->n; i++) {
		if (run->jobs[i].state != KF_JOB_ACTIVE)
			continue;
		r = kf_flash_preflight(run, &run->jobs[i]);
		if (r < 0)
			return r;
	}
	if (!kf_run_active(run))
		return 0;
	r = kf_window_can_manage(win, err);
	if (r == 0)
		r = kf_window_print_guard(win, err);
	return r;
}

static void dry_run(struct kf_run *run, struct kf_window *win, bool fallback, bool kept)
{
	size_t i;

	/* a refused board is reported as the real run reports it */
	if (!kf_run_active(run))
		return;
	kf_out_result(run->ctx->out, "Dry run: these commands would run, in order:");
	for (i = 0; i < run->n; i++) {
		struct kf_job *j = &run->jobs[i];
		char *out, *cmd, **argv;

		if (j->state != KF_JOB_ACTIVE)
			continue;
		if (kept) {
			kf_out_result(run->ctx->out, "  (nothing is built: %s flashes its kept "
				      "firmware %s)", j->b->key, j->build.firmware);
			continue;
		}
		out = kf_board_build_dir(run->ctx->ops, j->b->key);
		argv = kf_make_argv(run->kdir, j->cfg_path, out, "olddefconfig", NULL);
		cmd = kf_argv_join((const char *const *)argv);
		kf_out_result(run->ctx->out, "  %s", cmd);
		kf_out_result(run->ctx->out, "  make ... -jN   (the build, skipped when up "
			      "to date)");
		free(cmd);
		kf_argv_free(argv);
		free(out);
	}
	for (i = 0; i < win->n_units; i++)
		kf_out_result(run->ctx->out, "  sudo -n systemctl stop %s   (only if it "
			      "is running)", win->units[i].name);
	for (i = 0; i < run->n; i++)
		if (run->jobs[i].state == KF_JOB_ACTIVE)
			kf_flash_board_dry_run(run, &run->jobs[i], fallback);
	for (i = 0; i < win->n_units; i++)
		kf_out_result(run->ctx->out, "  sudo -n systemctl start %s   (if it was "
			      "running)", win->units[i].name);
	kf_out_result(run->ctx->out, "Nothing was changed.");
	for (i = 0; i < run->n; i++)
		if (run->jobs[i].state == KF_JOB_ACTIVE)
			kf_job_skip(&run->jobs[i], "dry run");
}

static json_t *flow_json(const struct kf_results *t, const struct kf_window *win)
{
	json_t *services = kf_window_json(win);

	/* "service": the first unit, as before several printers were known */
	return json_pack("{s:o, s:O?, s:o}", "boards", kf_results_json(t), "service",
			 json_array_get(services, 0), "services", services);
}

int kf_flow_flash(struct kf_ctx *ctx, struct kf_registry *reg, struct kf_board **boards,
		  size_t n, const struct kf_flash_opts *o, struct kf_error *err)
{
	struct kf_prepare_opts po = {
		.menuconfig = !o->skip_menuconfig && !o->rollback, .dry_run = o->dry_run,
		.rebuild = o->rebuild, .flashing = true, .kept = o->rollback,
	};
	/* make flash builds the checkout: a rollback is Katapult's alone */
	bool fallback = reg->settings.fallback && !o->no_fallback && !o->rollback;
	enum kf_method forced = KF_METHOD_DEFAULT;
	struct kf_flashing fl = { .n = 0 };
	struct kf_results table;
	struct kf_window win;
	struct kf_run run;
	size_t i;
	int r;

	if (o->method && (kf_method_parse(o->method, &forced) < 0 ||
			  forced == KF_METHOD_DEFAULT))
		return kf_usage_error(ctx, "flash", "--method must be katapult or "
				      "make-flash, not '%s'", o->method);
	kf_run_init(&run, ctx, reg, boards, n, forced);
	kf_window_init(&win, &run);
	for (i = 0; o->skip && i < n; i++)
		if (o->skip[i])
			kf_job_skip_needless(&run.jobs[i], o->skip[i]);

	r = kf_prepare_checkout(&run, err);
	if (r == 0)
		r = kf_select_locate(&run, o->all, err);
	if (r == 0 && kf_run_active(&run))
		r = kf_prepare_configs(&run, &po);
	/* which printer each board belongs to (asks, changes nothing) */
	if (r == 0 && kf_run_active(&run))
		kf_window_plan(&win);
	if (r == 0 && o->dry_run) {
		dry_run(&run, &win, fallback, o->rollback);
		goto out;
	}
	if (r == 0 && kf_run_active(&run))
		r = kf_prepare_lock(&run, err);
	if (r == 0 && kf_run_active(&run))
		kf_flash_lock_boards(&run);
	/* nothing prints on those printers: checked before any build loads
	 * the host, and again before the stop */
	if (r == 0 && kf_run_active(&run))
		r = kf_window_print_guard(&win, err);
	if (r == 0 && kf_run_active(&run))
		r = kf_prepare_builds(&run, &po);
	if (r == 0 && kf_run_active(&run))
		r = preflight(&run, &win, err);
	if (r == 0 && kf_run_active(&run))
		r = kf_window_open(&win, err);
	if (r == 0 && kf_run_active(&run))
		r = kf_flashing_begin(&fl, &run, fallback, err);
	if (r == 0)
		kf_flashing_flash_all(&fl);
	if (r == 0)
		kf_flashing_verify(&fl);
	kf_flashing_end(&fl);
	/* every path from here on: put the service back */
	kf_window_close(&win);
	/* a signal that came while the last board came back, with no
	 * service to start again (which would have taken it), is the run's
	 * too: the user asked kflash to stop, and 128+N says it heard */
	(void)kf_run_signalled(&run);
	if (r == 0 && !run.signal)
		kf_window_check_versions(&win);
	/* what came back is the firmware to roll back to (a rollback's is
	 * kept already), kept under the locks; a signal before cancels it,
	 * one during it is the run's */
	if (!o->rollback && !run.signal && kf_flash_keep_good(&run) > 0)
		(void)kf_run_signalled(&run);
	kf_lock_give(ctx, &run.lock_fd);
	for (i = 0; i < n; i++)
		kf_lock_give(ctx, &run.jobs[i].lock_fd);
out:
	kf_results_of(&table, &run, false);
	r = kf_results_outcome(&table, &run, r, o->dry_run, err);
	r = kf_window_outcome(&win, r, err);
	if (!o->dry_run)
		kf_results_print(&table, ctx->out);
	kf_out_set_json(ctx->out, flow_json(&table, &win));
	kf_results_release(&table);
	kf_window_close(&win);
	kf_window_release(&win);
	kf_run_release(&run);
	return r;
}
