/* cmd_build.c - kflash config and kflash build: a board's firmware settings
 * and its firmware, without touching Klipper or the board. */
#include <getopt.h>
#include <string.h>

#include "kflash/build.h"
#include "kflash/commands.h"
#include "kflash/lock.h"
#include "kflash/prepare.h"
#include "kflash/registry.h"
#include "kflash/result.h"
#include "kflash/select.h"
#include "kflash/util.h"

int kf_cmd_config(struct kf_ctx *ctx, int argc, char **argv)
{
	static const struct option o[] = { { 0, 0, 0, 0 } };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_board *b;
	int c, r;

	kf_opt_reset();
	while ((c = kf_opt_next(ctx, "config", argc, argv, "", o)) != -1)
		if (c < 0)
			return c;
	if (argc - optind != 1)
		return kf_usage_error(ctx, "config", "config needs one board name");
	r = kf_load_board(ctx, argv[optind], &reg, &b);
	if (r < 0)
		goto out;
	r = kf_menuconfig(ctx, &reg.settings, b, ctx->err);
	if (r >= 0) {
		bool unchanged = r == KF_CONFIG_UNCHANGED;
		struct kf_kconfig saved = KF_KCONFIG_INIT, cfg = KF_KCONFIG_INIT;
		char *path = kf_board_config_path(ctx->config_dir, b->key);

		/* checked as a build will see it: completed by olddefconfig */
		r = kf_config_preview(ctx, &reg.settings, b, ctx->err, &saved, &cfg);
		if (r == 0)
			r = kf_build_check_config(ctx, b, &saved, &cfg, path, NULL, false,
						  ctx->err);
		if (r == KF_HOST_MCU) {
			kf_out_warn(ctx->out, "the config of %s is for the Linux host "
				    "MCU: it builds, but kflash does not flash it", b->key);
			r = 0;
		}
		/* menuconfig saved it (or left it) before the check: a signal
		 * during the check, or after it, says so */
		if (r == KF_EINTERRUPTED)
			kf_error_context(ctx->err, "the config of %s is %s (%s), but "
					 "not checked", b->key, unchanged ? "unchanged"
					 : "saved", path);
		if (r == 0) {
			char *done = kf_asprintf("the config of %s was %s (%s)", b->key,
						 unchanged ? "left unchanged" : "saved",
						 path);

			r = kf_cmd_signalled(ctx, done, ctx->err);
			free(done);
		}
		if (r == 0 && unchanged)
			kf_out_result(ctx->out, "The config of %s is unchanged (%s)", b->key,
				      path);
		else if (r == 0)
			kf_out_result(ctx->out, "Saved the config of %s (%s)", b->key, path);
		kf_kconfig_release(&saved);
		kf_kconfig_release(&cfg);
		free(path);
	}
out:
	kf_registry_release(&reg);
	return r;
}

int kf_cmd_build(struct kf_ctx *ctx, int argc, char **argv)
{
	static const struct option o[] = {
		{ "all", no_argument, 0, 'A' },
		{ "rebuild", no_argument, 0, 'r' },
		{ 0, 0, 0, 0 },
	};
	struct kf_prepare_opts po = { .flashing = false };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_board **boards = NULL;
	struct kf_results table;
	struct kf_run run;
	bool all = false;
	size_t n = 0, i;
	int c, r;

	kf_opt_reset();
	while ((c = kf_opt_next(ctx, "build", argc, argv, ":", o)) != -1) {
		if (c < 0)
			return c;
		if (c == 'A')
			all = true;
		if (c == 'r')
			po.rebuild = true;
	}
	if ((optind == argc) == !all)
		return kf_usage_error(ctx, "build", all ? "give board names or --all, "
				      "not both" : "build needs board names or --all");
	r = kf_registry_load(ctx->ops, ctx->config_dir, &reg, ctx->err);
	if (r == 0)
		r = kf_select_boards(&reg, argv + optind, (size_t)(argc - optind), all,
				     ctx->err, &boards, &n);
	if (r < 0) {
		kf_out_set_json(ctx->out, json_pack("{s:[]}", "boards"));
		goto out_reg;
	}
	kf_run_init(&run, ctx, &reg, boards, n, KF_METHOD_DEFAULT);
	/* --all builds what would be flashed; a board named is built even
	 * when it is excluded from flashing */
	for (i = 0; all && i < n; i++)
		if (!boards[i]->flashable)
			kf_job_skip(&run.jobs[i], "excluded");
	if (!kf_run_active(&run)) {
		r = kf_error_set(ctx->err, KF_EINPUT, "no included boards to build");
		kf_error_step(ctx->err, KF_CMD("kflash list"));
	}
	if (r == 0)
		r = kf_prepare_checkout(&run, ctx->err);
	if (r == 0)
		r = kf_prepare_lock(&run, ctx->err);
	/* the connected board's MCU is checked too, when it is there */
	if (r == 0)
		kf_select_peek(&run);
	if (r == 0)
		r = kf_prepare_builds(&run, &po);
	kf_lock_give(ctx, &run.lock_fd);
	kf_results_of(&table, &run, true);
	r = kf_results_outcome(&table, &run, r, false, ctx->err);
	kf_results_print(&table, ctx->out);
	kf_out_set_json(ctx->out, json_pack("{s:o}", "boards", kf_results_json(&table)));
	kf_results_release(&table);
	kf_run_release(&run);
out_reg:
	free(boards);
	kf_registry_release(&reg);
	return r;
}
