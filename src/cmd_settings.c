/* cmd_settings.c - kflash settings [KEY [VALUE]]: show and change settings,
 * checking a directory holds what kflash will need from it. */
#include <stdio.h>
#include <string.h>

#include "kflash/commands.h"
#include "kflash/registry.h"
#include "kflash/util.h"

static const char *const keys[] = {
	"klipper_dir", "katapult_dir", "python", "service", "moonraker_url",
	"moonraker_api_key", "default_method", "fallback", "timeout.build", "timeout.flash",
	"timeout.service", "timeout.reconnect", "sessions.keep", NULL,
};

/* A checkout setting must point at a directory holding the files kflash
 * runs from it. */
static int check_dir(struct kf_ctx *ctx, const char *key, const char *value)
{
	static const char *const klipper[] = { "Makefile", "src/Kconfig", NULL };
	static const char *const katapult[] = { "scripts/flashtool.py", NULL };
	const char *const *need = strcmp(key, "klipper_dir") == 0 ? klipper : katapult;
	const char *what = need == klipper ? "a Klipper (or Kalico) checkout"
					   : "a Katapult checkout";
	char *dir = kf_expand_home(ctx->ops, value);
	enum kf_file_kind k;
	int r = 0;

	if (kf_os_file_kind(ctx->ops, dir, &k, NULL) < 0 || k != KF_FILE_DIR) {
		kf_error_set(ctx->err, KF_EINPUT, "%s: %s is not a directory", key, dir);
		kf_error_step(ctx->err, KF_CMD("kflash settings %s /path/to/%s"), key,
			      need == klipper ? "klipper" : "katapult");
		r = KF_EINPUT;
		goto out;
	}
	for (; *need; need++) {
		char *f = kf_asprintf("%s/%s", dir, *need);
		int e = kf_os_file_kind(ctx->ops, f, &k, NULL);

		free(f);
		if (e == 0 && k == KF_FILE_REG)
			continue;
		kf_error_set(ctx->err, KF_EINPUT, "%s: %s is not %s (no %s in it)",
			     key, dir, what, *need);
		if (need[0] == katapult[0])
			kf_error_step(ctx->err, KF_CMD("git clone https://github.com/Arksine/katapult ~/katapult"));
		kf_error_step(ctx->err, KF_CMD("kflash settings %s /path/to/the/checkout"), key);
		r = KF_EINPUT;
		break;
	}
out:
	free(dir);
	return r;
}

int kf_cmd_settings(struct kf_ctx *ctx, int argc, char **argv)
{
	struct kf_registry reg = KF_REGISTRY_INIT;
	const char *key = NULL, *value = NULL;
	size_t i;
	int r;

	for (i = 1; i < (size_t)argc; i++) {
		if (argv[i][0] == '-' && argv[i][1] && strcmp(argv[i], "--") != 0)
			return kf_usage_error(ctx, "settings", "settings: unknown "
					      "option '%s'", argv[i]);
	}
	if (argc > 1)
		key = argv[1];
	if (argc > 2)
		value = argv[2];
	if (argc > 3)
		return kf_usage_error(ctx, "settings", "settings takes KEY and VALUE "
				      "at most");
	r = kf_registry_load(ctx->ops, ctx->config_dir, &reg, ctx->err);
	if (r < 0)
		goto out;
	if (!key) {
		json_t *doc = json_object();

		for (i = 0; keys[i]; i++) {
			char *v = kf_settings_get(&reg.settings, keys[i]);

			/* a secret is shown only when asked for by name */
			if (strcmp(keys[i], "moonraker_api_key") == 0) {
				char *shown = kf_xstrdup(*v ? "(set)" : "(none)");

				free(v);
				v = shown;
			}
			kf_out_result(ctx->out, "%-18s %s", keys[i], v);
			json_object_set_new(doc, keys[i], json_string(v));
			free(v);
		}
		kf_out_set_json(ctx->out, json_pack("{s:o}", "settings", doc));
		goto out;
	}
	if (!value) {
		char *v = kf_settings_get(&reg.settings, key);

		if (!v) {
			r = kf_settings_set(&reg.settings, key, "", ctx->err);
			goto out;
		}
		kf_out_result(ctx->out, "%s", v);
		kf_out_set_json(ctx->out, json_pack("{s:s}", key, v));
		free(v);
		goto out;
	}
	r = kf_settings_set(&reg.settings, key, value, ctx->err);
	if (r == 0 && (strcmp(key, "klipper_dir") == 0 || strcmp(key, "katapult_dir") == 0))
		r = check_dir(ctx, key, value);
	if (r == 0) {
		char *done = kf_asprintf("%s was set", key);

		r = kf_cmd_save(ctx, &reg, done, ctx->err);
		free(done);
	}
	if (r == 0)
		kf_out_result(ctx->out, "%s = %s", key,
			      strcmp(key, "moonraker_api_key") == 0
			      ? (*value ? "(set)" : "(none)") : value);
out:
	kf_registry_release(&reg);
	return r;
}
