/* cmd_build.c - kflash config and kflash build: a board's firmware settings
 * and its firmware, without touching Klipper or the board. */
#include <getopt.h>
#include <string.h>

#include "kflash/build.h"
#include "kflash/commands.h"
#include "kflash/discovery.h"
#include "kflash/flow.h"
#include "kflash/registry.h"
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
	r = kf_menuconfig(ctx, &reg.settings, b);
	if (r >= 0) {
		bool unchanged = r == KF_CONFIG_UNCHANGED;
		struct kf_kconfig saved = KF_KCONFIG_INIT, cfg = KF_KCONFIG_INIT;
		char *path = kf_board_config_path(ctx->config_dir, b->key);

		/* checked as a build will see it: completed by olddefconfig */
		r = kf_config_preview(ctx, &reg.settings, b, &saved, &cfg);
		if (r == 0)
			r = kf_build_check_config(ctx, b, &saved, &cfg, path, NULL, false);
		if (r == KF_HOST_MCU) {
			kf_out_warn(ctx->out, "the config of %s is for the Linux host "
				    "MCU: it builds, but kflash does not flash it", b->key);
			r = 0;
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

/* The device that is the board now, for the MCU check. */
static const char *connected_mcu(struct kf_devlist *devs, const struct kf_board *b)
{
	size_t i;

	for (i = 0; devs && i < devs->n; i++)
		if (kf_board_match(b, &devs->devs[i]) == KF_MATCH_YES)
			return devs->devs[i].mcu;
	return NULL;
}

static json_t *result_json(const struct kf_board *b, const char *result,
			   const struct kf_build_result *br, const struct kf_error *e)
{
	return json_pack("{s:s, s:s, s:s?, s:I, s:f, s:s?}", "name", b->key,
			 "result", result, "firmware", br ? br->firmware : NULL,
			 "size", br ? (json_int_t)br->size : (json_int_t)0,
			 "seconds", br ? (double)br->ms / 1000.0 : 0.0,
			 "error", e && e->what ? e->what : NULL);
}

int kf_cmd_build(struct kf_ctx *ctx, int argc, char **argv)
{
	static const struct option o[] = {
		{ "all", no_argument, 0, 'A' },
		{ "rebuild", no_argument, 0, 'r' },
		{ 0, 0, 0, 0 },
	};
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_devlist devs = KF_DEVLIST_INIT;
	struct kf_build_opts bo = { 0 };
	struct kf_board **todo = NULL;
	json_t *results = json_array();
	bool all = false;
	size_t n = 0, i, failed = 0;
	int c, r, lock_fd = -1;

	kf_opt_reset();
	while ((c = kf_opt_next(ctx, "build", argc, argv, ":", o)) != -1) {
		if (c < 0) {
			json_decref(results);
			return c;
		}
		if (c == 'A')
			all = true;
		if (c == 'r')
			bo.rebuild = true;
	}
	if ((optind == argc) == !all) {
		json_decref(results);
		return kf_usage_error(ctx, "build", all ? "give board names or --all, "
				      "not both" : "build needs board names or --all");
	}
	r = kf_registry_load(ctx->ops, ctx->config_dir, &reg, ctx->err);
	if (r < 0)
		goto out;
	todo = kf_xcalloc(reg.n_boards + (size_t)argc, sizeof(*todo));
	if (all) {
		for (i = 0; i < reg.n_boards; i++) {
			if (reg.boards[i].flashable)
				todo[n++] = &reg.boards[i];
			else
				kf_out_info(ctx->out, "skipping %s: excluded", reg.boards[i].key);
		}
		if (n == 0) {
			r = kf_error_set(ctx->err, KF_EINPUT, "no included boards to build");
			kf_error_step(ctx->err, "kflash list");
			goto out;
		}
	} else {
		for (i = (size_t)optind; i < (size_t)argc; i++) {
			struct kf_board *b = kf_registry_find(&reg, argv[i]);

			if (!b) {
				r = kf_unknown_board(ctx, &reg, argv[i]);
				goto out;
			}
			todo[n++] = b;
		}
	}
	r = kf_lock_take(ctx, &lock_fd);
	if (r < 0)
		goto out;
	/* the connected board's MCU is checked too, when it is there; a
	 * build needs no board, so udev trouble is only a warning */
	if (kf_discover(ctx->ops, &devs, NULL) < 0)
		kf_out_warn(ctx->out, "cannot list connected boards; checking MCUs "
			    "against the registry only");
	for (i = 0; i < n; i++) {
		struct kf_board *b = todo[i];
		struct kf_build_result br;

		memset(&br, 0, sizeof(br));
		kf_out_phase(ctx->out, KF_PHASE_CONFIG, "%s: checking its config", b->key);
		/* checked inside the build, after olddefconfig completed it */
		bo.device_mcu = connected_mcu(&devs, b);
		r = kf_build(ctx, &reg.settings, b, &bo, &br);
		if (r == 0 && br.host_mcu)
			kf_out_warn(ctx->out, "the config of %s is for the Linux host MCU: "
				    "it builds, but kflash never flashes it over USB", b->key);
		if (r == 0) {
			json_array_append_new(results, result_json(b, br.up_to_date ?
				"up-to-date" : "built", &br, NULL));
			kf_out_result(ctx->out, "%s: %s %s", b->key, br.up_to_date ?
				      "up to date" : "built", br.firmware);
		} else {
			json_array_append_new(results, result_json(b, "failed", &br, ctx->err));
			failed++;
		}
		kf_build_result_release(&br);
		if (r == KF_EINTERRUPTED)
			goto out;
		if (r < 0 && i + 1 < n) {
			/* report this one now, go on with the next */
			kf_out_error(ctx->out, ctx->err);
			kf_error_release(ctx->err);
		}
	}
	if (failed && r == 0 && n > 1) {
		r = kf_error_set(ctx->err, KF_EFAILED, "%zu of %zu builds failed", failed, n);
	}
out:
	if (lock_fd >= 0)
		kf_os_unlock(ctx->ops, lock_fd);
	kf_out_set_json(ctx->out, json_pack("{s:o}", "boards", results));
	free(todo);
	kf_devlist_release(&devs);
	kf_registry_release(&reg);
	return r;
}
