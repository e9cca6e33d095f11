/* cmd_flash.c - kflash flash and kflash rollback: choose the boards, then
 * run the flow. */
#include <getopt.h>
#include <string.h>

#include "kflash/commands.h"
#include "kflash/flow.h"
#include "kflash/lastgood.h"
#include "kflash/versions.h"
#include "kflash/registry.h"
#include "kflash/select.h"
#include "kflash/util.h"

int kf_cmd_flash(struct kf_ctx *ctx, int argc, char **argv)
{
	static const struct option o[] = {
		{ "all", no_argument, 0, 'A' },
		{ "outdated", no_argument, 0, 'o' },
		{ "skip-menuconfig", no_argument, 0, 's' },
		{ "method", required_argument, 0, 'M' },
		{ "no-fallback", no_argument, 0, 'F' },
		{ "rebuild", no_argument, 0, 'r' },
		{ "dry-run", no_argument, 0, 'D' },
		{ 0, 0, 0, 0 },
	};
	struct kf_flash_opts fo = { 0 };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_board **boards = NULL;
	size_t n = 0, i;
	char **skip = NULL;
	int c, r;

	kf_opt_reset();
	while ((c = kf_opt_next(ctx, "flash", argc, argv, ":s", o)) != -1) {
		switch (c) {
		case 'A': fo.all = true; break;
		case 'o': fo.outdated = true; break;
		case 's': fo.skip_menuconfig = true; break;
		case 'M': fo.method = optarg; break;
		case 'F': fo.no_fallback = true; break;
		case 'r': fo.rebuild = true; break;
		case 'D': fo.dry_run = true; break;
		default: return c;
		}
	}
	if ((optind == argc) == !fo.all)
		return kf_usage_error(ctx, "flash", fo.all ? "give board names or --all, "
				      "not both" : "flash needs board names or --all");
	if (fo.outdated && !fo.all)
		return kf_usage_error(ctx, "flash", "--outdated goes with --all");
	if (fo.method && strcmp(fo.method, "katapult") != 0 &&
	    strcmp(fo.method, "make-flash") != 0)
		return kf_usage_error(ctx, "flash", "--method must be katapult or "
				      "make-flash, not '%s'", fo.method);
	r = kf_registry_load(ctx->ops, ctx->config_dir, &reg, ctx->err);
	if (r == 0)
		r = kf_select_boards(&reg, argv + optind, (size_t)(argc - optind), fo.all,
				     ctx->err, &boards, &n);
	if (r < 0)
		goto out;
	if (fo.outdated) {
		skip = kf_xcalloc(n ? n : 1, sizeof(*skip));
		r = kf_select_outdated(ctx, &reg, boards, n, skip, ctx->err);
		if (r < 0)
			goto out;
		fo.skip = (const char *const *)skip;
	}
	r = kf_flow_flash(ctx, &reg, boards, n, &fo, ctx->err);
out:
	for (i = 0; skip && i < n; i++)
		free(skip[i]);
	free(skip);
	free(boards);
	kf_registry_release(&reg);
	return r;
}

/* Before the flow: the board is one rollback can restore, and something
 * is kept for it. */
static int can_roll_back(struct kf_ctx *ctx, const struct kf_registry *reg,
			 const struct kf_board *b)
{
	struct kf_lastgood lg;
	int r;

	if (kf_board_method(b, &reg->settings) == KF_METHOD_MAKE_FLASH) {
		kf_error_set(ctx->err, KF_EINPUT, "%s is flashed with make flash; kflash "
			     "rollback restores the kept firmware through Katapult only",
			     b->key);
		kf_error_cause(ctx->err, "make flash builds the Klipper checkout's "
			       "firmware, not a kept one, so nothing is kept for a "
			       "board flashed that way");
		kf_error_step(ctx->err, KF_CMD("kflash flash %s -s") "   (build and flash the "
			      "checkout's firmware)", b->key);
		return KF_EINPUT;
	}
	r = kf_lastgood_load(ctx, b, ctx->err, &lg);
	kf_lastgood_release(&lg);
	return r;
}

int kf_cmd_rollback(struct kf_ctx *ctx, int argc, char **argv)
{
	static const struct option o[] = {
		{ "dry-run", no_argument, 0, 'D' },
		{ 0, 0, 0, 0 },
	};
	struct kf_flash_opts fo = { .rollback = true, .skip_menuconfig = true };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_board *b = NULL;
	int c, r;

	kf_opt_reset();
	while ((c = kf_opt_next(ctx, "rollback", argc, argv, ":", o)) != -1) {
		if (c < 0)
			return c;
		fo.dry_run = c == 'D';
	}
	if (argc - optind != 1)
		return kf_usage_error(ctx, "rollback", "rollback needs one board name");
	r = kf_load_board(ctx, argv[optind], &reg, &b);
	if (r == 0)
		r = can_roll_back(ctx, &reg, b);
	if (r == 0)
		r = kf_flow_flash(ctx, &reg, &b, 1, &fo, ctx->err);
	kf_registry_release(&reg);
	return r;
}
