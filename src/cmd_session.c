/* cmd_session.c - kflash replay and kflash report: a recorded session run
 * again against its recording, or bundled for a bug report. */
#include <getopt.h>
#include <string.h>

#include "kflash/commands.h"
#include "kflash/proc.h"
#include "kflash/session.h"
#include "kflash/util.h"

static int one_session_arg(struct kf_ctx *ctx, const char *cmd, int argc, char **argv,
			   bool optional, const char **ret)
{
	static const struct option o[] = { { 0, 0, 0, 0 } };
	int c;

	kf_opt_reset();
	while ((c = kf_opt_next(ctx, cmd, argc, argv, "", o)) != -1)
		if (c < 0)
			return c;
	if (argc - optind > 1 || (!optional && argc - optind != 1))
		return kf_usage_error(ctx, cmd, "%s needs %s session directory", cmd,
				      optional ? "at most one" : "one");
	*ret = argc - optind == 1 ? argv[optind] : NULL;
	return 0;
}

int kf_cmd_replay(struct kf_ctx *ctx, int argc, char **argv)
{
	struct kf_session s;
	struct kf_replayer *rp;
	const char *dir;
	char **cmd, *report = NULL, *line;
	size_t i, n;
	int r, code;

	r = one_session_arg(ctx, "replay", argc, argv, false, &dir);
	if (r < 0)
		return r;
	r = kf_session_load(ctx->ops, dir, &s, ctx->err);
	if (r < 0)
		return r;
	n = json_array_size(json_object_get(s.info, "command"));
	cmd = kf_xcalloc(n + 2, sizeof(*cmd));
	cmd[0] = "kflash";
	for (i = 0; i < n; i++)
		cmd[i + 1] = (char *)json_string_value(json_array_get(
			json_object_get(s.info, "command"), i));
	line = kf_argv_join((const char *const *)cmd);
	kf_out_info(ctx->out, "replaying %s: %s, %zu calls, recorded by kflash %s", dir,
		    line, s.n_calls,
		    json_is_string(json_object_get(s.info, "kflash"))
		    ? json_string_value(json_object_get(s.info, "kflash")) : "?");
	rp = kf_replayer_new(&s);
	code = kf_cli_run(&(struct kf_cli_opts){
		.ops = kf_replayer_ops(rp), .argc = (int)n + 1, .argv = cmd,
		.replaying = true, .tee = kf_replayer_write, .tee_data = rp });
	if (kf_replayer_end(rp, &report)) {
		kf_out_help(ctx->out, true, report);
		r = kf_error_set(ctx->err, KF_EFAILED, "the replay of %s diverged from its "
				 "recording", dir);
		kf_error_cause(ctx->err, "this kflash does something else with the same "
			       "answers: another version, or an edited recording");
		kf_error_step(ctx->err, KF_CMD("kflash --version") "   (the recording "
			      "names the kflash that made it)");
	} else if (s.exit_code >= 0 && code != s.exit_code) {
		r = kf_error_set(ctx->err, KF_EFAILED, "the replay of %s exited %d; the "
				 "recorded run exited %d", dir, code, s.exit_code);
	} else {
		kf_out_info(ctx->out, "replay matched its recording: %zu calls, the same "
			    "output, exit %d", s.n_calls, code);
		ctx->exit_code = code;
	}
	free(report);
	free(line);
	free(cmd);
	kf_replayer_free(rp);
	kf_session_release(&s);
	return r;
}

/* the newest session that did not end with 0 (a killed one counts) */
static char *last_failed(struct kf_ctx *ctx, const char *base)
{
	char **names = NULL, *found = NULL;
	size_t n = 0, i;

	if (kf_os_read_dir(ctx->ops, base, &names, &n) < 0)
		return NULL;
	for (i = n; i-- > 0 && !found;) {
		char *path = kf_asprintf("%s/%s/session.json", base, names[i]), *text = NULL;
		size_t len = 0;
		json_t *info, *exit;

		if (kf_os_read_file(ctx->ops, path, &text, &len) == 0 &&
		    (info = json_loadb(text, len, 0, NULL))) {
			exit = json_object_get(info, "exit");
			if (!json_is_integer(exit) || json_integer_value(exit) != 0)
				found = kf_asprintf("%s/%s", base, names[i]);
			json_decref(info);
		}
		free(text);
		free(path);
	}
	kf_names_free(names, n);
	return found;
}

int kf_cmd_report(struct kf_ctx *ctx, int argc, char **argv)
{
	const char *arg, *home = kf_os_getenv(ctx->ops, "HOME");
	char *dir = NULL, *base = NULL, *parent, *name, *out = NULL, *boards;
	struct kf_session s = { 0 };
	struct kf_exit e;
	enum kf_file_kind k;
	const char *tar[10] = { "tar", "-czf" };
	size_t n = 2, nb = 0;
	int r;

	r = one_session_arg(ctx, "report", argc, argv, true, &arg);
	if (r < 0)
		return r;
	if (arg) {
		dir = kf_xstrdup(arg);
	} else {
		base = kf_sessions_dir(ctx->ops);
		dir = base ? last_failed(ctx, base) : NULL;
		if (!dir) {
			r = kf_error_set(ctx->err, KF_EINPUT, "no failed session in %s",
					 base ? base : "~/.local/state/kflash/sessions");
			kf_error_step(ctx->err, KF_CMD("kflash report SESSION-DIR")
				      "   (one of: " KF_CMD("ls %s") ")",
				      base ? base : "~/.local/state/kflash/sessions");
			goto out;
		}
	}
	while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/')
		dir[strlen(dir) - 1] = '\0';
	/* only what replays: a bundle kflash replay would refuse helps nobody */
	r = kf_session_load(ctx->ops, dir, &s, ctx->err);
	if (r < 0)
		goto out;
	name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	parent = name == dir ? kf_xstrdup(".") : kf_xstrndup(dir, (size_t)(name - dir - 1));
	out = kf_asprintf("%s/kflash-report-%s.tar.gz", home && *home ? home : ".", name);
	tar[n++] = out;
	tar[n++] = "-C";
	tar[n++] = *parent ? parent : "/";
	tar[n++] = kf_asprintf("%s/session.json", name);
	tar[n++] = kf_asprintf("%s/calls.jsonl", name);
	boards = kf_asprintf("%s/boards", dir);
	if (kf_os_file_kind(ctx->ops, boards, &k, NULL) == 0 && k == KF_FILE_DIR) {
		char **names = NULL;

		tar[n++] = kf_asprintf("%s/boards", name);
		if (kf_os_read_dir(ctx->ops, boards, &names, &nb) == 0)
			kf_names_free(names, nb);
	}
	free(boards);
	r = kf_proc_run(ctx->ops, &(struct kf_spawn_req){ .argv = tar, .out = KF_STDIO_CAPTURE,
			.in = KF_STDIO_NULL }, &(struct kf_run_opts){ .timeout_ms = 60000 }, &e);
	kf_ctx_heard(ctx, e.interrupted_by);
	if (r == 0 && !kf_exit_ok(&e)) {
		char how[64];

		kf_exit_describe(&e, how, sizeof(how));
		r = kf_error_set(ctx->err, KF_EFAILED, "tar could not write %s: it %s", out,
				 how);
		{
			char *line = kf_argv_join(tar);

			kf_error_command(ctx->err, "%s", line);
			free(line);
		}
		kf_error_step(ctx->err, KF_CMD("df -h %s") "   (is there room?)", home ? home : ".");
	} else if (r < 0) {
		r = kf_error_set(ctx->err, KF_EFAILED, "could not run tar for %s: %s", out,
				 strerror(-r));
		kf_error_errno(ctx->err, r);
	} else {
		kf_out_result(ctx->out, "%s", out);
		kf_out_info(ctx->out, "holds %s: session.json (the command, settings, exit "
			    "%d), calls.jsonl (%zu calls)%s; the Moonraker API key is redacted, "
			    "what sudo -l lists is left out, your home is written as ~. "
			    "Attach it to the bug report; 'kflash replay' reruns it.", name,
			    s.exit_code, s.n_calls, nb ? ", boards/ (how udev saw each board)"
			    : "");
		if (ctx->out->json)
			kf_out_set_json(ctx->out, json_pack("{s:s, s:s, s:I}", "report", out,
				"session", dir, "calls", (json_int_t)s.n_calls));
	}
	for (n = 5; n < 10 && tar[n]; n++)
		free((char *)tar[n]);
	free(parent);
out:
	kf_session_release(&s);
	free(out);
	free(dir);
	free(base);
	return r;
}
