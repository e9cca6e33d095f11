/* cmd_flash.c - kflash flash: choose the boards, then run the flow. */
#include <getopt.h>
#include <string.h>

#include "kflash/commands.h"
#include "kflash/flow.h"
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
	size_t n = 0;
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
		r = kf_select_outdated(ctx, &reg, boards, &n, ctx->err);
		if (r < 0 || n == 0)
			goto out;
	}
	r = kf_flow_flash(ctx, &reg, boards, n, &fo, ctx->err);
out:
	free(boards);
	kf_registry_release(&reg);
	return r;
}
