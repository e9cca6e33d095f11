/* prepare.c - each board's config and build, shared by kflash build and
 * kflash flash; for kflash rollback, its kept firmware instead. */
#include <errno.h>
#include <string.h>

#include "kflash/lastgood.h"
#include "kflash/lock.h"
#include "kflash/prepare.h"
#include "kflash/prompt.h"
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

/* kflash rollback: the board's kept firmware, checked as a build of its
 * config would be, is the job's build. */
static int kept(struct kf_run *run, struct kf_job *j)
{
	struct kf_ctx *ctx = run->ctx;
	struct kf_lastgood lg;
	char *text = NULL;
	size_t len;
	int r = kf_lastgood_load(ctx, j->b, &j->err, &lg);

	if (r == 0)
		r = kf_lastgood_check(ctx, &lg, j->b->key, &j->err);
	if (r == 0 && strcmp(lg.mcu, j->b->mcu) != 0) {
		r = kf_error_set(&j->err, KF_EREFUSED, "the kept firmware of %s is for "
				 "%s, but the board is registered as %s; nothing was "
				 "flashed", j->b->key, lg.mcu, j->b->mcu);
		kf_error_step(&j->err, KF_CMD("kflash flash %s") "   (build and flash its config "
			      "instead)", j->b->key);
	}
	if (r == 0 && (r = kf_os_read_file(ctx->ops, lg.config, &text, &len)) < 0) {
		int e = r;

		r = kf_error_set(&j->err, KF_EINPUT, "cannot read %s, the config the "
				 "kept firmware of %s was built from: %s", lg.config,
				 j->b->key, strerror(-e));
		kf_error_errno(&j->err, e);
	}
	if (r == 0) {
		kf_kconfig_parse(text, len, &j->cfg);
		r = kf_build_check_config(ctx, j->b, &j->cfg, &j->cfg, lg.config, j->at.mcu,
					  true, &j->err);
	}
	if (r == 0 && j->method == KF_METHOD_KATAPULT)
		r = kf_build_check_offset(ctx, j->b, &j->cfg, lg.config, &j->err);
	if (r == 0) {
		const char *v = kf_lastgood_klipper(&lg);

		kf_out_ok(ctx->out, KF_PHASE_CONFIG, "%s: the kept firmware (Klipper %s, "
			  "kept %s) is for %s", j->b->key, v ? v : "unknown", lg.kept,
			  j->b->mcu);
		j->build.version = v ? kf_xstrdup(v) : NULL;
		j->build.size = lg.size;
		j->build.up_to_date = true;
		j->build.firmware = lg.image;
		j->build.build_dir = lg.dir;
		j->cfg_path = lg.config;
		lg.image = lg.dir = lg.config = NULL;
	}
	free(text);
	kf_lastgood_release(&lg);
	return r;
}

/* Klipper refuses an MCU whose firmware speaks another version of its
 * protocol: a kept firmware for another Klipper than the host's is said
 * first, and flashed only when the user says so. */
static int kept_for_host(struct kf_run *run, struct kf_job *j, const char *host,
			 int host_err, bool dry_run)
{
	struct kf_ctx *ctx = run->ctx;
	const char *want = j->build.version;
	bool yes = false;
	int r;

	if (want && host && strcmp(want, host) == 0)
		return 0;
	kf_out_warn(ctx->out, "%s: the kept firmware was built for Klipper %s, but "
		    "the host's Klipper is %s; Klipper refuses an MCU whose firmware "
		    "speaks another protocol version, so %s may not connect until "
		    "the host runs the Klipper it was built for", j->b->key,
		    want ? want : "(unknown)", host ? host : "unknown", j->b->key);
	if (dry_run)
		return 0;
	if (ctx->interactive || ctx->yes) {
		r = kf_confirm(ctx, "Flash it anyway?", false, &j->err, &yes);
		if (r == KF_EINTERRUPTED)
			kf_run_heard(run, j->err.signal);
		/* a terminal that cannot be read is its error, not a "no";
		 * the end of input (-EPIPE) is no answer, so no */
		if (r < 0 && r != -EPIPE)
			return r;
		if (yes) {
			if (ctx->yes)
				kf_out_info(ctx->out, "%s: flashing it anyway (--yes)",
					    j->b->key);
			return 0;
		}
	}
	kf_error_set(&j->err, KF_EREFUSED, "%s was not rolled back: its kept firmware "
		     "was built for Klipper %s, the host's Klipper is %s", j->b->key,
		     want ? want : "(unknown)", host ? host : "unknown");
	if (!host && host_err != -ENOENT) {
		/* git could not be asked: no unknown version, an error */
		kf_error_cause(&j->err, "git describe in %s failed: %s", run->kdir,
			       strerror(-host_err));
		kf_error_errno(&j->err, host_err);
	}
	kf_error_step(&j->err, KF_CMD("kflash rollback %s --yes") "   (flash it anyway)", j->b->key);
	kf_error_step(&j->err, KF_CMD("kflash flash %s -s") "   (build the host's Klipper for it "
		      "instead)", j->b->key);
	return KF_EREFUSED;
}

static int prepare_kept(struct kf_run *run, const struct kf_prepare_opts *o)
{
	char *host = NULL;
	size_t i;
	/* unknown (no git): every kept firmware is then said to differ */
	int host_err = kf_klipper_version(run->ctx, run->kdir, &host);

	for (i = 0; i < run->n; i++) {
		struct kf_job *j = &run->jobs[i];
		int r;

		if (j->state != KF_JOB_ACTIVE)
			continue;
		r = kept(run, j);
		if (r == 0)
			r = kept_for_host(run, j, host, host_err, o->dry_run);
		if (r < 0) {
			kf_job_fail(run, j, r);
			if (r == KF_EINTERRUPTED)
				break;
		}
	}
	free(host);
	return kf_run_signalled(run) ? KF_EINTERRUPTED : 0;
}

int kf_prepare_configs(struct kf_run *run, const struct kf_prepare_opts *o)
{
	struct kf_ctx *ctx = run->ctx;
	size_t i;

	if (o->kept)
		return prepare_kept(run, o);
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
		if (o->kept) {
			kf_out_ok(ctx->out, KF_PHASE_BUILD, "%s: nothing to build: the kept "
				  "firmware %s (%lld bytes)", j->b->key, j->build.firmware,
				  (long long)j->build.size);
			continue;
		}
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
