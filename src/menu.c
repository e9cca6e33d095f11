/* menu.c - the interactive menu for `kflash` on a terminal: a status panel
 * and numbered actions, each one of the commands. It talks through the
 * output module like every command (kf_out_say), and reads answers through
 * kf_prompt. */
#include <string.h>

#include "kflash/build.h"
#include "kflash/commands.h"
#include "kflash/prompt.h"
#include "kflash/registry.h"
#include "kflash/transport.h"
#include "kflash/util.h"
#include "kflash/versions.h"

/* What is wrong with b's cached config at a glance, or NULL: missing, or
 * for another MCU than the board's (a minimal config that names none is
 * left to the build, which completes it). malloc'd. */
static char *config_flag(struct kf_ctx *ctx, const struct kf_board *b)
{
	struct kf_kconfig cfg = KF_KCONFIG_INIT;
	struct kf_error e = KF_ERROR_INIT;
	const char *mcu;
	char *path = NULL, *flag = NULL;

	if (kf_board_config_load(ctx, b, &e, &cfg, &path) < 0)
		flag = kf_xstrdup("[no config: menuconfig]");
	else if ((mcu = kf_kconfig_get(&cfg, "CONFIG_MCU")) && b->mcu && strcmp(mcu, b->mcu) != 0)
		flag = kf_asprintf("[config is for %s: menuconfig]", mcu);
	kf_kconfig_release(&cfg);
	kf_error_release(&e);
	free(path);
	return flag;
}

static void status_panel(struct kf_ctx *ctx, struct kf_registry *reg)
{
	struct kf_scans sc = KF_SCANS_INIT;
	struct kf_mcu_version *m = NULL;
	size_t nm = 0, i;
	bool utf8 = ctx->out->utf8;
	const struct kf_transport *const *tr;

	/* what cannot be read shows as absent: the panel is no check */
	for (tr = kf_transports; *tr; tr++) {
		struct kf_error e = KF_ERROR_INIT;
		int r;

		(void)kf_scans_get(ctx, reg, &sc, *tr, &e, &r);
		kf_error_release(&e);
		free(e.note);
	}
	if (reg->n_boards)
		(void)kf_moonraker_mcus_all(ctx->ops, reg->settings.moonraker_url,
					    reg->settings.moonraker_api_key, &m, &nm);
	kf_out_say(ctx->out, "\n%s kflash %s\n", utf8 ? "━━" : "==", KFLASH_VERSION);
	if (!reg->n_boards)
		kf_out_say(ctx->out, "  no boards registered yet (choose 'add')\n");
	for (i = 0; i < reg->n_boards; i++) {
		struct kf_board *b = &reg->boards[i];
		struct kf_sighting si = { .matches = 0 };
		const char *v;
		char *flag;
		bool amb, here;
		void *scan = kf_scans_find(&sc, kf_transport_for(b));

		if (scan)
			kf_transport_for(b)->sight(b, scan, &si);
		here = si.at.node != NULL;
		v = kf_board_version(b, m, nm, &amb);
		flag = b->flashable ? config_flag(ctx, b) : NULL;
		kf_out_say(ctx->out, "  %s %-16s %-12s %-10s %s%s%s%s\n",
			   here ? (utf8 ? "●" : "*") : (utf8 ? "○" : "-"), b->key, b->mcu,
			   here ? kf_mode_name(si.at.mode) : "absent", v ? v : "version unknown",
			   b->flashable ? "" : " [excluded]", flag ? " " : "", flag ? flag : "");
		free(flag);
		kf_sighting_release(&si);
	}
	kf_mcu_versions_free(m, nm);
	kf_scans_release(&sc);
}

/* Asks for one registered board by number or name. */
static int pick_board(struct kf_ctx *ctx, struct kf_registry *reg, char **ret_key)
{
	char *ans = NULL, *end;
	size_t i;
	long k;
	int r;

	if (!reg->n_boards) {
		kf_out_say(ctx->out, "  no boards registered yet\n");
		return -1;
	}
	for (i = 0; i < reg->n_boards; i++)
		kf_out_say(ctx->out, "  %zu) %s\n", i + 1, reg->boards[i].key);
	for (;;) {
		r = kf_prompt(ctx, "Board", reg->n_boards == 1 ? "1" : NULL, ctx->err, &ans);
		if (r < 0)
			return r;
		k = strtol(ans, &end, 10);
		if (end != ans && !*end && k >= 1 && (size_t)k <= reg->n_boards) {
			*ret_key = kf_xstrdup(reg->boards[k - 1].key);
			break;
		}
		if (kf_registry_find(reg, ans)) {
			*ret_key = kf_xstrdup(kf_registry_find(reg, ans)->key);
			break;
		}
		kf_out_say(ctx->out, "  please answer 1 to %zu or a board name\n",
			   reg->n_boards);
		free(ans);
	}
	free(ans);
	return 0;
}

static int run_cmd(struct kf_ctx *ctx, int (*fn)(struct kf_ctx *, int, char **),
		   const char *a0, const char *a1, const char *a2)
{
	char *argv[] = { (char *)a0, (char *)a1, (char *)a2, NULL };
	int argc = 1 + (a1 != NULL) + (a1 && a2);
	int r = fn(ctx, argc, argv);

	if (r < 0 || ctx->err->note) {
		kf_out_error(ctx->out, ctx->err);
		kf_error_release(ctx->err);
		free(ctx->err->note);
		ctx->err->note = NULL;
	}
	kf_out_set_json(ctx->out, NULL);
	return r;
}

/* The settings, then one to change: its name (Enter: none) and its new
 * value, which kflash settings checks and saves as on the command line. */
static void change_setting(struct kf_ctx *ctx)
{
	char *key = NULL, *value = NULL;

	run_cmd(ctx, kf_cmd_settings, "settings", NULL, NULL);
	if (kf_prompt(ctx, "Setting to change (Enter: none)", "", ctx->err, &key) == 0 &&
	    *key && kf_prompt(ctx, "New value", NULL, ctx->err, &value) == 0)
		run_cmd(ctx, kf_cmd_settings, "settings", key, value);
	kf_error_release(ctx->err);
	free(key);
	free(value);
}

int kf_menu_run(struct kf_ctx *ctx)
{
	static const char actions[] =
		"  1) flash a board      2) flash all boards   3) add a board\n"
		"  4) remove a board     5) menuconfig         6) exclude/include\n"
		"  7) settings           8) doctor             9) roll back a board\n"
		"  q) quit\n";
	int r;

	for (;;) {
		struct kf_registry reg = KF_REGISTRY_INIT;
		char *ans = NULL, *key = NULL;

		r = kf_registry_load(ctx->ops, ctx->config_dir, &reg, ctx->err);
		if (r < 0)
			return r;	/* a broken registry: say so and leave */
		status_panel(ctx, &reg);
		kf_out_say(ctx->out, "%s", actions);
		r = kf_prompt(ctx, "Choose", NULL, ctx->err, &ans);
		if (r < 0 || !strcmp(ans, "q") || !strcmp(ans, "Q") || !strcmp(ans, "quit")) {
			free(ans);
			kf_registry_release(&reg);
			kf_error_release(ctx->err);
			kf_out_say(ctx->out, "bye\n");
			return 0;	/* Ctrl+C, end of input or q: leave cleanly */
		}
		if (strlen(ans) != 1 || ans[0] < '1' || ans[0] > '9') {
			kf_out_say(ctx->out, "  '%s' is not one of the choices\n", ans);
		} else if (ans[0] == '2') {
			run_cmd(ctx, kf_cmd_flash, "flash", "--all", NULL);
		} else if (ans[0] == '3') {
			run_cmd(ctx, kf_cmd_add, "add", NULL, NULL);
		} else if (ans[0] == '7') {
			change_setting(ctx);
		} else if (ans[0] == '8') {
			run_cmd(ctx, kf_cmd_doctor, "doctor", NULL, NULL);
		} else if (pick_board(ctx, &reg, &key) == 0) {
			struct kf_board *b = kf_registry_find(&reg, key);

			if (ans[0] == '1')
				run_cmd(ctx, kf_cmd_flash, "flash", key, NULL);
			else if (ans[0] == '4')
				run_cmd(ctx, kf_cmd_remove, "remove", key, NULL);
			else if (ans[0] == '5')
				run_cmd(ctx, kf_cmd_config, "config", key, NULL);
			else if (ans[0] == '9')
				run_cmd(ctx, kf_cmd_rollback, "rollback", key, NULL);
			else if (ans[0] == '6')
				run_cmd(ctx, b && b->flashable ? kf_cmd_exclude : kf_cmd_include,
					b && b->flashable ? "exclude" : "include", key, NULL);
		}
		free(key);
		free(ans);
		kf_registry_release(&reg);
	}
}
