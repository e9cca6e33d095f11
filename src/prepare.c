/* prepare.c - each board's config and build, shared by kflash build and
 * kflash flash. */
#include <string.h>

#include "kflash/lock.h"
#include "kflash/prepare.h"
#include "kflash/util.h"

int kf_prepare_checkout(struct kf_run *run, struct kf_error *err)
{
	free(run->kdir);
	run->kdir = NULL;
	return kf_klipper_dir(run->ctx, run->s, err, &run->kdir);
}

int kf_prepare_lock(struct kf_run *run, struct kf_error *err)
{
	if (run->lock_fd >= 0)
		return 0;
	return kf_lock_take(run->ctx, err, &run->lock_fd);
}

/* A dry run builds nothing: it completes a copy of the config the same
 * way and gives the same refusal the real run would. */
static int preview(struct kf_run *run, struct kf_job *j)
{
	struct kf_ctx *ctx = run->ctx;
	struct kf_kconfig saved = KF_KCONFIG_INIT;
	int r;

	j->cfg_path = kf_board_config_path(ctx->config_dir, j->b->key);
	r = kf_config_preview(ctx, run->s, j->b, &j->err, &saved, &j->cfg);
	if (r == 0)
		r = kf_build_check_config(ctx, j->b, &saved, &j->cfg, j->cfg_path,
					  j->at.mcu, true, &j->err);
	if (r == 0 && j->method == KF_METHOD_KATAPULT)
		r = kf_build_check_offset(ctx, j->b, &j->cfg, j->cfg_path, &j->err);
	if (r == 0)
		kf_out_ok(ctx->out, KF_PHASE_CONFIG, "%s: config is for %s", j->b->key,
			  j->b->mcu);
	kf_kconfig_release(&saved);
	return r;
}

int kf_prepare_configs(struct kf_run *run, const struct kf_prepare_opts *o)
{
	struct kf_ctx *ctx = run->ctx;
	size_t i;

	for (i = 0; i < run->n; i++) {
		struct kf_job *j = &run->jobs[i];
		struct kf_kconfig saved = KF_KCONFIG_INIT;
		int r = 0;

		if (j->state != KF_JOB_ACTIVE)
			continue;
		if (o->menuconfig && ctx->interactive && !o->dry_run)
			r = kf_menuconfig(ctx, run->s, j->b, &j->err);
		else if (o->menuconfig && !o->dry_run)
			kf_out_phase(ctx->out, KF_PHASE_CONFIG, "%s: not a terminal, "
				     "using its cached config", j->b->key);
		if (r == KF_CONFIG_UNCHANGED)
			r = 0;
		/* the real run checks the config in the build, after
		 * Klipper's olddefconfig, on what will be built */
		if (r == 0 && !o->dry_run)
			r = kf_board_config_load(ctx, j->b, &j->err, &saved, &j->cfg_path);
		if (r == 0 && o->dry_run)
			r = preview(run, j);
		kf_kconfig_release(&saved);
		if (r < 0) {
			kf_job_fail(run, j, r);
			if (r == KF_EINTERRUPTED)
				return r;
		}
	}
	return kf_run_signalled(run) ? KF_EINTERRUPTED : 0;
}

int kf_prepare_builds(struct kf_run *run, const struct kf_prepare_opts *o)
{
	struct kf_ctx *ctx = run->ctx;
	struct kf_build_opts bo = { .rebuild = o->rebuild, .flashing = o->flashing };
	size_t i;

	for (i = 0; i < run->n; i++) {
		struct kf_job *j = &run->jobs[i];
		int r;

		if (j->state != KF_JOB_ACTIVE)
			continue;
		if (!o->flashing)
			kf_out_phase(ctx->out, KF_PHASE_CONFIG, "%s: checking its config",
				     j->b->key);
		bo.device_mcu = j->at.mcu;
		bo.katapult = o->flashing && j->method == KF_METHOD_KATAPULT;
		r = kf_build(ctx, run->s, j->b, &bo, &j->err, &j->build);
		if (r == 0) {
			/* what is checked from here on (the application address
			 * against Katapult's) is the config as built */
			kf_kconfig_release(&j->cfg);
			j->cfg = j->build.cfg;
			j->build.cfg = (struct kf_kconfig)KF_KCONFIG_INIT;
			if (!o->flashing && j->build.host_mcu)
				kf_out_warn(ctx->out, "the config of %s is for the Linux "
					    "host MCU: it builds, but kflash never flashes "
					    "it over USB", j->b->key);
			if (!o->flashing)
				j->state = KF_JOB_DONE;
			continue;
		}
		kf_job_fail(run, j, r);
		if (r == KF_EINTERRUPTED)
			return r;
		/* one failed build skips only that board; with several,
		 * say so now, the summary comes at the end */
		if (run->n > 1)
			kf_out_error(ctx->out, &j->err);
	}
	return kf_run_signalled(run) ? KF_EINTERRUPTED : 0;
}
