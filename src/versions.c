/* versions.c - which firmware each board runs, as Moonraker reports it, and
 * whether it is behind the host's Klipper. */
#include <errno.h>
#include <string.h>

#include "kflash/build.h"
#include "kflash/commands.h"
#include "kflash/moonraker.h"
#include "kflash/versions.h"
#include "kflash/util.h"

const char *kf_board_version(const struct kf_board *b, const struct kf_mcu_version *m,
			     size_t n, bool *ret_ambiguous)
{
	const char *v = NULL;
	size_t i;

	*ret_ambiguous = false;
	for (i = 0; i < n; i++) {
		if (!m[i].mcu || strcmp(m[i].mcu, b->mcu) != 0 || !m[i].version)
			continue;
		if (v && strcmp(v, m[i].version) != 0)
			*ret_ambiguous = true;
		v = m[i].version;
	}
	return v;
}

int kf_select_outdated(struct kf_ctx *ctx, struct kf_registry *reg,
		       struct kf_board **boards, size_t n, char **ret_skip,
		       struct kf_error *err)
{
	struct kf_mcu_version *m = NULL;
	char *kdir = NULL, *host = NULL;
	size_t nm = 0, i, k = 0;
	int r;

	r = kf_klipper_dir(ctx, &reg->settings, err, &kdir);
	if (r < 0)
		return r;
	r = kf_klipper_version(ctx, kdir, &host);
	if (r < 0) {
		int e = r;

		r = kf_error_set(err, KF_EFAILED, "cannot tell the host's Klipper "
				 "version (git describe failed in %s)", kdir);
		if (e != -ENOENT)
			kf_error_errno(err, e);
		free(kdir);
		return r;
	}
	free(kdir);
	r = kf_moonraker_mcus_all(ctx->ops, reg->settings.moonraker_url,
				  reg->settings.moonraker_api_key, &m, &nm);
	if (r < 0) {
		if (r == -EHOSTUNREACH || r == -ETIMEDOUT)
			kf_error_set(err, KF_EFAILED, "--outdated needs the MCU versions "
				     "from Moonraker, which does not answer at %s",
				     reg->settings.moonraker_url);
		else
			kf_error_set(err, KF_EFAILED, "--outdated needs the MCU versions "
				     "from Moonraker at %s: asking it failed: %s",
				     reg->settings.moonraker_url, strerror(-r));
		kf_error_errno(err, r);
		kf_error_step(err, "start Klipper and Moonraker, or name the boards: "
			      KF_CMD("kflash flash NAME..."));
		free(host);
		return KF_EFAILED;
	}
	for (i = 0; i < n; i++) {
		bool amb;
		const char *v = kf_board_version(boards[i], m, nm, &amb);

		ret_skip[i] = NULL;
		if (v && !amb && strcmp(v, host) == 0) {
			kf_out_info(ctx->out, "%s runs %s like the host: skipped",
				    boards[i]->key, v);
			ret_skip[i] = kf_asprintf("runs %s like the host", v);
			continue;
		}
		kf_out_info(ctx->out, "%s runs %s; the host has %s", boards[i]->key,
			    v ? v : "an unknown version", host);
		k++;
	}
	if (k == 0)
		kf_out_result(ctx->out, "Every board runs %s like the host; nothing to "
			      "flash.", host);
	kf_mcu_versions_free(m, nm);
	free(host);
	return (int)k;
}
