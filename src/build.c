/* build.c - per-board configs, menuconfig, and Klipper builds with a stamp. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "kflash/build.h"
#include "kflash/proc.h"
#include "kflash/util.h"

#define TAIL_LINES 20
/* A Klipper .config is a few KiB; a file far larger is not one. */
#define CONFIG_MAX (1 << 20)

uint64_t kf_hash(const void *data, size_t len, uint64_t h)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

char *kf_board_config_path(const char *config_dir, const char *key)
{
	return kf_asprintf("%s/configs/%s/.config", config_dir, key);
}

char *kf_board_build_dir(const struct kf_ops *ops, const char *key)
{
	const char *xdg = kf_os_getenv(ops, "XDG_CACHE_HOME");
	const char *home = kf_os_getenv(ops, "HOME");

	if (xdg && *xdg == '/')
		return kf_asprintf("%s/kflash/build/%s", xdg, key);
	return kf_asprintf("%s/.cache/kflash/build/%s", home ? home : "/tmp", key);
}

void kf_build_result_release(struct kf_build_result *r)
{
	kf_kconfig_release(&r->cfg);
	free(r->firmware);
	free(r->log_path);
	free(r->build_dir);
	free(r->version);
	memset(r, 0, sizeof(*r));
}

/* 1 when path is a regular file (its size in *size, if asked), 0 when it
 * is not (or is missing), or the negative errno that kept it from being
 * checked. */
static int file_is_there(struct kf_ctx *ctx, const char *path, off_t *size)
{
	enum kf_file_kind k;
	int r = kf_os_file_kind(ctx->ops, path, &k, size);

	if (r == -ENOENT || r == -ENOTDIR)
		return 0;
	return r < 0 ? r : k == KF_FILE_REG;
}

int kf_klipper_dir(struct kf_ctx *ctx, const struct kf_settings *s,
		   struct kf_error *err, char **ret_dir)
{
	char *dir = kf_expand_home(ctx->ops, s->klipper_dir);
	char *mk = kf_asprintf("%s/Makefile", dir);
	char *kc = kf_asprintf("%s/src/Kconfig", dir);
	char *bad = mk;
	int r = file_is_there(ctx, mk, NULL);

	if (r == 1) {
		bad = kc;
		r = file_is_there(ctx, kc, NULL);
	}
	if (r == 1) {
		free(mk);
		free(kc);
		*ret_dir = dir;
		return 0;
	}
	if (r < 0) {
		/* the disk, not the setting: no advice to change it */
		kf_error_set(err, KF_EFAILED, "cannot check klipper_dir %s: reading %s "
			     "failed: %s", dir, bad, strerror(-r));
		kf_error_errno(err, r);
		kf_error_step(err, KF_CMD("ls -l %s"), bad);
		kf_error_step(err, KF_CMD("dmesg | tail") "   (an I/O error is the "
			      "disk's or the SD card's)");
		r = KF_EFAILED;
	} else {
		kf_error_set(err, KF_EINPUT, "klipper_dir %s is not a Klipper checkout "
			     "(it needs a Makefile and src/Kconfig)", dir);
		kf_error_cause(err, "Klipper (or Kalico) is installed elsewhere, or "
			       "not at all");
		kf_error_step(err, KF_CMD("kflash settings klipper_dir /path/to/klipper"));
		kf_error_step(err, KF_CMD("kflash doctor"));
		r = KF_EINPUT;
	}
	free(mk);
	free(kc);
	free(dir);
	return r;
}

int kf_board_config_load(struct kf_ctx *ctx, const struct kf_board *b,
			 struct kf_error *err, struct kf_kconfig *ret_cfg,
			 char **ret_path)
{
	char *path = kf_board_config_path(ctx->config_dir, b->key);
	char *text = NULL;
	size_t len;
	int r;

	r = kf_read_regular(ctx->ops, path, CONFIG_MAX, &text, &len, NULL);
	if (r == -ENOENT) {
		kf_error_set(err, KF_EFAILED, "%s has no firmware config yet "
			     "(%s is missing)", b->key, path);
		kf_error_cause(err, "menuconfig was never saved for this board; "
			       "without a config Klipper would build a default AVR "
			       "firmware");
		kf_error_step(err, KF_CMD("kflash config %s") "   (on a terminal; "
			      "choose the board's settings and save)", b->key);
		free(path);
		return KF_EFAILED;
	}
	if (r == -EINVAL || r == -EFBIG) {
		kf_error_set(err, KF_EINPUT, "%s is %s, not a Klipper .config", path,
			     r == -EINVAL ? "not a regular file" : "larger than 1 MiB");
		kf_error_step(err, "move it away and choose the settings again: "
			      KF_CMD("mv %s %s.broken") "; " KF_CMD("kflash config %s"),
			      path, path, b->key);
		free(path);
		return KF_EINPUT;
	}
	if (r < 0) {
		kf_error_set(err, KF_EFAILED, "cannot read %s: %s", path, strerror(-r));
		kf_error_errno(err, r);
		free(path);
		return KF_EFAILED;
	}
	kf_kconfig_parse(text, len, ret_cfg);
	free(text);
	*ret_path = path;
	return 0;
}

/* Every child here but menuconfig (the user's own keystrokes) runs at idle
 * priority: a build during a print must not take CPU or disk from Klipper. */
static int make_argv_run(struct kf_ctx *ctx, const char *const *argv, enum kf_stdio out,
			 int64_t timeout_ms, struct kf_run_opts *opts,
			 struct kf_exit *ret_exit)
{
	struct kf_spawn_req req = {
		.argv = argv, .in = out == KF_STDIO_INHERIT ? KF_STDIO_INHERIT : KF_STDIO_NULL,
		.out = out, .idle = out != KF_STDIO_INHERIT,
	};
	struct kf_run_opts none = { 0 };

	if (!opts)
		opts = &none;
	opts->timeout_ms = timeout_ms;
	return kf_proc_run(ctx->ops, &req, opts, ret_exit);
}

/* Turns a child's outcome into kflash's error, naming the command. */
static int child_failed(const struct kf_exit *ex, const char *const *argv,
			const char *what, int timeout_s, struct kf_error *err)
{
	char how[128], *cmd = kf_argv_join(argv);

	if (ex->kind == KF_EXIT_INTERRUPTED) {
		kf_error_set(err, KF_EINTERRUPTED, "%s was stopped: kflash got "
			     "signal %d (%s)", what, ex->interrupted_by,
			     strsignal(ex->interrupted_by));
		if (err)
			err->signal = ex->interrupted_by;
		kf_error_command(err, "%s", cmd);
		free(cmd);
		return KF_EINTERRUPTED;
	}
	if (ex->kind == KF_EXIT_TIMED_OUT) {
		kf_error_set(err, KF_EFAILED, "%s timed out after %d s and was "
			     "stopped", what, timeout_s);
		kf_error_step(err, "raise the limit: "
			      KF_CMD("kflash settings timeout.build %d"),
			      timeout_s * 2);
	} else {
		kf_exit_describe(ex, how, sizeof(how));
		kf_error_set(err, KF_EFAILED, "%s failed: %s %s", what, argv[0], how);
		if (ex->kind == KF_EXIT_EXEC_FAILED) {
			kf_error_errno(err, ex->err);
			kf_error_step(err, KF_CMD("sudo apt-get install build-essential"));
		}
	}
	kf_error_command(err, "%s", cmd);
	free(cmd);
	return KF_EFAILED;
}

/* The first byte of path that Klipper's make would split or expand (it
 * takes OUT= and KCONFIG_CONFIG= unquoted, and its recipes go through a
 * shell), or 0 when make takes the path as it is. */
static char make_unsafe(const char *path)
{
	const unsigned char *p;

	for (p = (const unsigned char *)path; *p; p++)
		if (!(*p >= 0x80 || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("/._-+,@~", *p)))
			return (char)*p;
	return 0;
}

/* The config and the output directory as make is given them: refused,
 * naming the variable that moves them, when make would misread them. */
static int make_paths_ok(const char *cfg, const char *out, struct kf_error *err)
{
	const char *paths[] = { out, cfg };
	const char *vars[] = { "XDG_CACHE_HOME", "XDG_CONFIG_HOME" };
	size_t i;

	for (i = 0; i < 2; i++) {
		char c = make_unsafe(paths[i]), shown[2] = { c, 0 };

		if (!c)
			continue;
		kf_error_set(err, KF_EINPUT, "kflash's path %s holds '%s', which "
			     "Klipper's make would split or expand", paths[i],
			     c == ' ' ? "a space" : shown);
		kf_error_cause(err, "Klipper's Makefile takes its OUT and KCONFIG_CONFIG "
			       "paths unquoted");
		kf_error_step(err, "give kflash a directory of letters, digits and "
			      "'/._-+,@~': " KF_CMD("export %s=/var/tmp/kflash-%s"),
			      vars[i], i ? "config" : "cache");
		return KF_EINPUT;
	}
	return 0;
}

char **kf_make_argv(const char *kdir, const char *config, const char *out,
		    const char *target, const char *arg)
{
	char **argv = kf_xcalloc(8, sizeof(*argv));

	argv[0] = kf_xstrdup("make");
	argv[1] = kf_xstrdup("-C");
	argv[2] = kf_xstrdup(kdir);
	argv[3] = kf_asprintf("KCONFIG_CONFIG=%s", config);
	argv[4] = kf_asprintf("OUT=%s/", out);
	argv[5] = kf_xstrdup(target);
	argv[6] = arg ? kf_xstrdup(arg) : NULL;
	return argv;
}

/* The first menuconfig of a board whose chip is known starts from that
 * chip, not from Klipper's AVR default. Returns the seed written, or NULL. */
static char *seed_config(struct kf_ctx *ctx, const struct kf_board *b, const char *cfg)
{
	char *seed = kf_kconfig_seed(b->mcu);
	int r = seed ? kf_os_write_atomic(ctx->ops, cfg, seed, strlen(seed), 0644) : 0;

	if (r < 0) {
		kf_out_warn(ctx->out, "%s: cannot write a starting config for %s (%s: %s); "
			    "menuconfig starts from Klipper's default, choose the chip "
			    "there", b->key, b->mcu, cfg, strerror(-r));
		free(seed);
		return NULL;
	}
	if (seed)
		kf_out_verbose(ctx->out, "%s: new config for %s (%s)", b->key, b->mcu, cfg);
	return seed;
}

int kf_menuconfig(struct kf_ctx *ctx, const struct kf_settings *s, const struct kf_board *b,
		  struct kf_error *err)
{
	char *kdir = NULL, *cfg, *cfgdir, *out, **argv = NULL;
	char *before = NULL, *after = NULL, *seed = NULL;
	struct kf_exit ex;
	int r;

	if (!ctx->interactive) {
		kf_error_set(err, KF_EFAILED, "menuconfig for %s needs a terminal",
			     b->key);
		kf_error_cause(err, "kflash is not running on a terminal (a "
			       "script, a pipe or cron)");
		kf_error_step(err, "run " KF_CMD("kflash config %s") " in an SSH "
			      "session", b->key);
		return KF_EFAILED;
	}
	r = kf_klipper_dir(ctx, s, err, &kdir);
	if (r < 0)
		return r;
	cfg = kf_board_config_path(ctx->config_dir, b->key);
	cfgdir = kf_asprintf("%s/configs/%s", ctx->config_dir, b->key);
	out = kf_board_build_dir(ctx->ops, b->key);
	r = make_paths_ok(cfg, out, err);
	if (r < 0)
		goto out;
	(void)kf_os_mkdir_p(ctx->ops, out, 0755);
	r = kf_os_mkdir_p(ctx->ops, cfgdir, 0755);
	if (r < 0) {
		int e = r;

		r = kf_error_set(err, KF_EFAILED, "cannot create %s: %s", cfgdir,
				 strerror(-e));
		kf_error_errno(err, e);
		goto out;
	}
	if (kf_os_read_file(ctx->ops, cfg, &before, NULL) == -ENOENT)
		seed = seed_config(ctx, b, cfg);
	argv = kf_make_argv(kdir, cfg, out, "menuconfig", NULL);
	kf_out_phase(ctx->out, KF_PHASE_CONFIG, "menuconfig for %s (%s)", b->key, cfg);
	/* the user's own time: no timeout */
	r = make_argv_run(ctx, (const char *const *)argv, KF_STDIO_INHERIT, 0, NULL, &ex);
	if (r < 0) {
		int e = r;

		r = kf_error_set(err, KF_EFAILED, "menuconfig for %s could not be run: %s",
				 b->key, strerror(-e));
		kf_error_errno(err, e);
	} else if (!kf_exit_ok(&ex))
		r = child_failed(&ex, (const char *const *)argv, "menuconfig", 0, err);
	if (r == 0) {
		int e = kf_os_read_file(ctx->ops, cfg, &after, NULL);

		if (e < 0)
			after = NULL;
		if (e < 0 && e != -ENOENT) {
			/* what menuconfig saved may be there: an I/O error is
			 * no config left unsaved, and nothing is removed */
			r = kf_error_set(err, KF_EFAILED, "cannot read the config "
					 "menuconfig saved for %s (%s): %s", b->key, cfg,
					 strerror(-e));
			kf_error_errno(err, e);
			goto out;
		}
	}
	if (r == 0 && seed && after && strcmp(seed, after) == 0) {
		/* the user left without saving: no config of theirs yet */
		(void)kf_os_unlink(ctx->ops, cfg);
		free(after);
		after = NULL;
	}
	if (r == 0 && !after)
		r = kf_error_set(err, KF_EFAILED, "menuconfig ended without "
				 "saving a config for %s", b->key);
	else if (r == 0 && before && strcmp(before, after) == 0)
		r = KF_CONFIG_UNCHANGED;
	if (r < 0 && seed && !after)
		(void)kf_os_unlink(ctx->ops, cfg);
out:
	free(before);
	free(after);
	free(seed);
	free(kdir);
	free(cfg);
	free(cfgdir);
	free(out);
	kf_argv_free(argv);
	return r;
}

/* ---- the build ---------------------------------------------------------------- */

/* How far a build is: on a terminal one live line (files compiled, seconds,
 * the file at hand), elsewhere (the journal, Moonraker's shell, | tee) a
 * line every KF_PROGRESS_EVERY_MS: "[Build] octopus: 41 files, 63 s". */
#define KF_PROGRESS_EVERY_MS 15000
struct progress {
	struct kf_ctx *ctx;
	const char *key;
	const char *log_path;	/* streamed as it comes */
	int compiled;
	int64_t elapsed_ms;	/* at the last tick */
	char file[64];		/* compiling now */
};

static void show_progress(struct progress *p)
{
	if (p->file[0])
		kf_out_progress(p->ctx->out, "[Build] %s: %d file%s, %" PRId64 " s (%s)",
				p->key, p->compiled, p->compiled == 1 ? "" : "s",
				p->elapsed_ms / 1000, p->file);
	else
		kf_out_progress(p->ctx->out, "[Build] %s: %d file%s, %" PRId64 " s",
				p->key, p->compiled, p->compiled == 1 ? "" : "s",
				p->elapsed_ms / 1000);
}

static void on_build_tick(void *data, int64_t elapsed_ms)
{
	struct progress *p = data;

	p->elapsed_ms = elapsed_ms;
	if (p->ctx->out->progress_tty)
		show_progress(p);
	else
		kf_out_phase(p->ctx->out, KF_PHASE_BUILD, "%s: %d file%s, %" PRId64 " s",
			     p->key, p->compiled, p->compiled == 1 ? "" : "s",
			     elapsed_ms / 1000);
}

static void log_line(struct progress *p, const char *line, size_t len)
{
	char *s = kf_xstrndup(line, len);
	char *l = kf_asprintf("%s\n", s);

	(void)kf_os_append(p->ctx->ops, p->log_path, l, strlen(l));
	free(l);
	free(s);
}

static void on_build_line(void *data, const char *line, size_t len)
{
	struct progress *p = data;
	const char *c;

	log_line(p, line, len);
	if (p->ctx->out->verbosity >= KF_VERBOSE) {
		kf_out_verbose(p->ctx->out, "  | %.*s", (int)len, line);
		return;
	}
	if (len > 12 && (c = memmem(line, len, "Compiling ", 10)) != NULL) {
		const char *f = c + 10, *slash;
		size_t n = len - (size_t)(f - line);

		p->compiled++;
		slash = memrchr(f, '/', n);
		if (slash) {
			n -= (size_t)(slash + 1 - f);
			f = slash + 1;
		}
		snprintf(p->file, sizeof(p->file), "%.*s", (int)n, f);
		show_progress(p);
	} else if (len > 10 && memmem(line, len, "Linking ", 8)) {
		snprintf(p->file, sizeof(p->file), "linking");
		show_progress(p);
	}
}

/* One `make TARGET` for board b into log (and, with prog, the live log and
 * progress line); a failure becomes err naming the command. */
static int make_step(struct kf_ctx *ctx, const char *kdir, const char *cfg,
		     const char *out, const char *target, int timeout_s, const char *what,
		     struct kf_buf *log, struct progress *prog, struct kf_error *err)
{
	char **argv;
	struct kf_run_opts opts = { .capture = log };
	struct kf_exit ex;
	int r = make_paths_ok(cfg, out, err);

	if (r < 0)
		return r;
	argv = kf_make_argv(kdir, cfg, out, target, NULL);

	if (prog) {
		opts.on_line = on_build_line;
		opts.line_data = prog;
		/* -q shows no progress; -v shows make's own lines */
		if (ctx->out->verbosity == KF_NORMAL) {
			opts.on_tick = on_build_tick;
			opts.tick_ms = ctx->out->progress_tty ? 1000 : KF_PROGRESS_EVERY_MS;
		}
	}
	r = make_argv_run(ctx, (const char *const *)argv, KF_STDIO_CAPTURE,
			  timeout_s * 1000LL, &opts, &ex);
	if (r == 0 && !kf_exit_ok(&ex))
		r = child_failed(&ex, (const char *const *)argv, what, timeout_s, err);
	if (r < 0 && r != KF_EINTERRUPTED && !kf_is_class(r)) {
		/* waiting for make failed: the errno is the cause */
		int e = r;

		r = kf_error_set(err, KF_EFAILED, "%s could not be run: %s", what,
				 strerror(-e));
		kf_error_errno(err, e);
	}
	kf_argv_free(argv);
	return r;
}

/* A capture that could not ask its tool (spawn or wait failed, or exec
 * failed for another reason than a missing program) keeps that errno in
 * *err, the first one only: it is no answer, and must not be read as one. */
static void capture_failed(int r, const struct kf_exit *ex, int *err)
{
	if (r == 0 && ex->kind == KF_EXIT_EXEC_FAILED && ex->err != ENOENT)
		r = -ex->err;
	if (r < 0 && err && !*err)
		*err = r;
}

static char *capture_first_line(struct kf_ctx *ctx, const char *const *argv, int *err)
{
	struct kf_buf out = KF_BUF_INIT;
	struct kf_run_opts opts = { .capture = &out };
	struct kf_exit ex = { .kind = KF_EXIT_RUNNING };
	char *line;
	int r = make_argv_run(ctx, argv, KF_STDIO_CAPTURE, 30000, &opts, &ex);

	/* the child was stopped for a signal kflash took: the command's */
	kf_ctx_heard(ctx, ex.interrupted_by);
	capture_failed(r, &ex, err);
	if (r < 0 || !kf_exit_ok(&ex) || !out.data) {
		kf_buf_release(&out);
		return NULL;
	}
	line = kf_xstrndup(out.data, strcspn(out.data, "\n"));
	kf_buf_release(&out);
	return line;
}

static uint64_t capture_hash(struct kf_ctx *ctx, const char *const *argv, int *err)
{
	struct kf_buf out = KF_BUF_INIT;
	struct kf_run_opts opts = { .capture = &out };
	struct kf_exit ex = { .kind = KF_EXIT_RUNNING };
	uint64_t h = KF_HASH_SEED;
	int r = make_argv_run(ctx, argv, KF_STDIO_CAPTURE, 60000, &opts, &ex);

	kf_ctx_heard(ctx, ex.interrupted_by);
	capture_failed(r, &ex, err);
	if (r == 0 && kf_exit_ok(&ex) && out.data)
		h = kf_hash(out.data, out.len, h);
	kf_buf_release(&out);
	return h;
}

int kf_klipper_version(struct kf_ctx *ctx, const char *kdir, char **ret)
{
	const char *argv[] = { "git", "-C", kdir, "describe", "--always", "--tags",
			       "--long", "--dirty", NULL };
	int err = 0;

	*ret = capture_first_line(ctx, argv, &err);
	return *ret ? 0 : err ? err : -ENOENT;
}

const char *kf_config_compiler(const struct kf_kconfig *cfg)
{
	const char *dir = kf_kconfig_get(cfg, "CONFIG_BOARD_DIRECTORY");

	if (kf_kconfig_get(cfg, "CONFIG_MACH_AVR") || (dir && strcmp(dir, "avr") == 0))
		return "avr-gcc";
	if (dir && (strcmp(dir, "linux") == 0 || strcmp(dir, "simulator") == 0 ||
		    strcmp(dir, "pru") == 0))
		return "gcc";
	return "arm-none-eabi-gcc";
}

/* Everything that decides the firmware, one readable line each, so a user
 * (and kflash) can see what changed. "version" is what the firmware's
 * dictionary will carry: a new tag on the same HEAD changes it too. */
static char *make_stamp(struct kf_ctx *ctx, const char *kdir, const struct kf_kconfig *cfg,
			const char *version, int *err)
{
	const char *head[] = { "git", "-C", kdir, "rev-parse", "HEAD", NULL };
	const char *diff[] = { "git", "-C", kdir, "diff", "HEAD", NULL };
	const char *untracked[] = { "git", "-C", kdir, "status", "--porcelain", NULL };
	const char *cc_argv[] = { kf_config_compiler(cfg), "--version", NULL };
	char *norm = kf_kconfig_normalise(cfg), *h = capture_first_line(ctx, head, err);
	char *cc = capture_first_line(ctx, cc_argv, err), *stamp;
	uint64_t d = capture_hash(ctx, diff, err);

	d = kf_hash(&d, sizeof(d), capture_hash(ctx, untracked, err));
	stamp = kf_asprintf("config %016" PRIx64 "\nklipper %s\nversion %s\nchanges %016"
			    PRIx64 "\ncompiler %s\n",
			    kf_hash(norm, strlen(norm), KF_HASH_SEED), h ? h : "unknown",
			    version ? version : "unknown", d, cc ? cc : "missing");
	free(norm);
	free(h);
	free(cc);
	return stamp;
}

/* The value of the stamp line "key value", or NULL. malloc'd. */
static char *stamp_get(const char *stamp, const char *key)
{
	size_t kn = strlen(key);
	const char *p = stamp;

	while (p && *p) {
		size_t n = strcspn(p, "\n");

		if (n > kn && strncmp(p, key, kn) == 0 && p[kn] == ' ')
			return kf_xstrndup(p + kn + 1, n - kn - 1);
		p += n + (p[n] == '\n');
	}
	return NULL;
}

static bool stamp_same(const char *old, const char *now, const char *key)
{
	char *a = stamp_get(old, key), *b = stamp_get(now, key);
	bool same = a && b && strcmp(a, b) == 0;

	free(a);
	free(b);
	return same;
}

/* "config", "klipper", ...: the first line of now that old does not have
 * the same; NULL when every line is the same. */
static const char *stamp_change(const char *old, const char *now)
{
	static const char *const keys[] = { "config", "klipper", "version", "changes",
					    "compiler" };
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!stamp_same(old, now, keys[i]))
			return keys[i];
	return NULL;
}

/* The stamp kflash writes before make runs: it names the Klipper version
 * and the compiler of the objects in OUT even when the build fails, and
 * never matches as "up to date". */
#define STAMP_BUILDING "building\n"

static const char *const firmware_names[] = {
	"klipper.bin", "klipper.uf2", "klipper.elf.hex", NULL,
};

/* The file to flash. The Linux host MCU's firmware is the program itself.
 * NULL with *ret_err 0: there is none; with a negative errno: a look at
 * one failed, which is no missing firmware. */
static char *find_firmware(struct kf_ctx *ctx, const char *out,
			   const struct kf_kconfig *cfg, off_t *size, int *ret_err)
{
	const char *dir = kf_kconfig_get(cfg, "CONFIG_BOARD_DIRECTORY");
	bool host = dir && strcmp(dir, "linux") == 0;
	size_t i;
	char *p;
	int r;

	*ret_err = 0;
	for (i = 0; firmware_names[i] || host; i++) {
		p = firmware_names[i] ? kf_asprintf("%s/%s", out, firmware_names[i])
			: kf_asprintf("%s/klipper.elf", out);
		r = file_is_there(ctx, p, size);
		if (r > 0)
			return p;
		free(p);
		if (r < 0) {
			*ret_err = r;
			return NULL;
		}
		if (!firmware_names[i])
			break;
	}
	return NULL;
}

/* The end of a failed build's log, on stderr beside the error (which names
 * the whole log); -q leaves it out like every other progress line. */
static void show_log_tail(struct kf_ctx *ctx, const struct kf_buf *log,
			  const char *log_path)
{
	const char *p, *start;
	int lines = 0;

	if (!log->data || !log->len)
		return;
	p = log->data + log->len;
	start = log->data;
	while (p > log->data) {
		p--;
		if (*p == '\n' && p != log->data + log->len - 1 && ++lines == TAIL_LINES) {
			start = p + 1;
			break;
		}
	}
	kf_out_info(ctx->out, "--- last lines of %s ---\n%s--- end ---", log_path, start);
}

/* ---- what a build would use, and whether it fits the board ------------------ */

static int read_config(struct kf_ctx *ctx, const char *path, struct kf_error *err,
		       struct kf_kconfig *ret)
{
	char *text = NULL;
	size_t len;
	int r = kf_os_read_file(ctx->ops, path, &text, &len);

	if (r < 0) {
		kf_error_set(err, KF_EFAILED, "cannot read %s: %s", path, strerror(-r));
		kf_error_errno(err, r);
		return KF_EFAILED;
	}
	kf_kconfig_parse(text, len, ret);
	free(text);
	return 0;
}

static bool yes(const struct kf_kconfig *cfg, const char *key)
{
	const char *v = kf_kconfig_get(cfg, key);

	return v && strcmp(v, "y") == 0;
}

/* The firmware must talk over the link the board is reached by: USB
 * firmware on a CAN node, or CAN firmware on a USB board, is a board that
 * nothing reaches once it is flashed. */
static int check_link(const struct kf_board *b, const struct kf_kconfig *cfg,
		      const char *path, struct kf_error *err)
{
	bool can = yes(cfg, "CONFIG_CANBUS"), bridge = yes(cfg, "CONFIG_USBCANBUS");
	const char *want = NULL, *has;

	if (b->link == KF_LINK_CAN && (!can || bridge))
		want = "CAN bus";
	else if (b->link == KF_LINK_BRIDGE && !bridge)
		want = "USB to CAN bus bridge";
	else if (b->link == KF_LINK_USB && can)
		want = "USB";
	if (!want)
		return 0;
	has = bridge ? "a USB to CAN bus bridge" : can ? "a CAN bus node" : "USB or serial";
	kf_error_set(err, KF_EREFUSED, "%s: %s builds firmware that talks %s, but %s is "
		     "reached %s; flashed, nothing could reach it", b->key, path, has, b->key,
		     b->link == KF_LINK_CAN ? "as a CAN node" : b->link == KF_LINK_BRIDGE
		     ? "as the bridge of its CAN bus" : "over USB");
	kf_error_step(err, KF_CMD("kflash config %s") "   (set 'Communication "
		      "interface' to %s)",
		      b->key, want);
	return KF_EREFUSED;
}

int kf_build_check_config(struct kf_ctx *ctx, const struct kf_board *b,
			  const struct kf_kconfig *saved, const struct kf_kconfig *cfg,
			  const char *path, const char *device_mcu, bool flashing,
			  struct kf_error *err)
{
	const char *was = kf_kconfig_get(saved, "CONFIG_MCU");
	const char *now = kf_kconfig_get(cfg, "CONFIG_MCU");
	int r = kf_kconfig_check_mcu(cfg, b->key, b->mcu, device_mcu, path, flashing,
				     err);
	char *seed, *syms;

	if (r == 0)
		return check_link(b, cfg, path, err);
	if (r != KF_EREFUSED || !now || (was && strcmp(was, now) == 0))
		return r;
	/* olddefconfig chose the chip: the file as saved may look right */
	seed = kf_kconfig_seed(b->mcu);
	syms = seed ? kf_xstrdup(seed) : kf_xstrdup("CONFIG_MACH_<ARCH>=y CONFIG_MACH_<MODEL>=y");
	for (char *p = syms; (p = strchr(p, '\n')) != NULL; )
		*p = p[1] ? ' ' : '\0';
	(void)ctx;
	kf_error_cause(err, "Klipper's olddefconfig completed %s to %s: the chip "
		       "comes from the menu symbols (%s), not from CONFIG_MCU%s%s; a "
		       "config without them gets the default chip", path, now, syms,
		       was ? ", which says " : "", was ? was : "");
	free(syms);
	free(seed);
	return r;
}

int kf_build_check_offset(struct kf_ctx *ctx, const struct kf_board *b,
			  const struct kf_kconfig *cfg, const char *path, struct kf_error *err)
{
	(void)ctx;
	if (!kf_kconfig_no_bootloader(cfg))
		return 0;
	kf_error_set(err, KF_EREFUSED, "%s: the config links the firmware at %s, "
		     "where the chip boots ('No bootloader'); Katapult starts the "
		     "application after itself, so the board would not boot", b->key,
		     kf_kconfig_get(cfg, "CONFIG_FLASH_APPLICATION_ADDRESS"));
	kf_error_cause(err, "the 'Bootloader offset' in %s (as Klipper's "
		       "olddefconfig completes it) is not Katapult's", path);
	kf_error_step(err, KF_CMD("kflash config %s") "   (set the bootloader offset "
		      "to Katapult's size)", b->key);
	kf_error_step(err, "or flash without Katapult: "
		      KF_CMD("kflash flash %s --method make-flash"), b->key);
	return KF_EREFUSED;
}

/* $XDG_CACHE_HOME/kflash/dry-run/<key>: scratch room for a dry run */
static char *scratch_dir(const struct kf_ops *ops, const char *key)
{
	char *build = kf_board_build_dir(ops, key), *slash = strrchr(build, '/'), *d;

	*slash = '\0';
	slash = strrchr(build, '/');
	*slash = '\0';
	d = kf_asprintf("%s/dry-run/%s", build, key);
	free(build);
	return d;
}

int kf_config_adopt_read(struct kf_ctx *ctx, const char *file, const char *key,
			 const char *mcu, struct kf_error *err, char **ret_text,
			 size_t *ret_len)
{
	char *path = kf_expand_home(ctx->ops, file), *text = NULL;
	struct kf_kconfig cfg = KF_KCONFIG_INIT;
	const char *has;
	size_t len = 0;
	int r = kf_os_read_file(ctx->ops, path, &text, &len);

	*ret_text = NULL;
	if (r < 0) {
		kf_error_set(err, KF_EINPUT, "--config %s cannot be read: %s", file,
			     strerror(-r));
		kf_error_errno(err, r);
		kf_error_step(err, KF_CMD("ls ~/klipper/.config ~/klipper-kconfigs/")
			      "   (the configs there)");
		r = KF_EINPUT;
		goto out;
	}
	kf_kconfig_parse(text, len, &cfg);
	has = kf_kconfig_get(&cfg, "CONFIG_MCU");
	if (!has && !kf_kconfig_get(&cfg, "CONFIG_BOARD_DIRECTORY")) {
		r = kf_error_set(err, KF_EINPUT, "--config %s is not a Klipper config "
				 "(it sets neither CONFIG_MCU nor CONFIG_BOARD_DIRECTORY); "
				 "nothing was registered", file);
		kf_error_step(err, "give the .config that make menuconfig saved in "
			      "Klipper's directory, or leave --config out to choose the "
			      "settings in menuconfig");
		goto out;
	}
	if (!has || strcmp(has, mcu) != 0) {
		r = kf_error_set(err, KF_EREFUSED, "--config %s is for %s, but %s is "
				 "%s; nothing was registered", file,
				 has ? has : "the Linux host MCU", key, mcu);
		kf_error_cause(err, "a firmware built from it would not run on this "
			       "board, or brick it until it is reflashed by hand");
		kf_error_step(err, "give a config for %s, or leave --config out to choose "
			      "the settings in menuconfig", mcu);
		goto out;
	}
	*ret_text = text;
	*ret_len = len;
	text = NULL;
out:
	kf_kconfig_release(&cfg);
	free(text);
	free(path);
	return r;
}

int kf_config_adopt_write(struct kf_ctx *ctx, const char *key, const char *text,
			  size_t len, struct kf_error *err)
{
	char *path = kf_board_config_path(ctx->config_dir, key);
	char *dir = kf_xstrdup(path);
	int r;

	*strrchr(dir, '/') = '\0';
	r = kf_os_mkdir_p(ctx->ops, dir, 0755);
	if (r == 0)
		r = kf_os_write_atomic(ctx->ops, path, text, len, 0644);
	if (r < 0) {
		kf_error_set(err, KF_EFAILED, "cannot write %s: %s", path, strerror(-r));
		kf_error_errno(err, r);
		r = KF_EFAILED;
	}
	free(dir);
	free(path);
	return r;
}

int kf_config_preview(struct kf_ctx *ctx, const struct kf_settings *s,
		      const struct kf_board *b, struct kf_error *err,
		      struct kf_kconfig *ret_saved, struct kf_kconfig *ret_cfg)
{
	char *kdir = NULL, *path = NULL, *dir = scratch_dir(ctx->ops, b->key), *copy, *out;
	char *text = NULL;
	struct kf_buf log = KF_BUF_INIT;
	size_t len;
	int r;

	*ret_saved = (struct kf_kconfig)KF_KCONFIG_INIT;
	*ret_cfg = (struct kf_kconfig)KF_KCONFIG_INIT;
	copy = kf_asprintf("%s/.config", dir);
	out = kf_asprintf("%s/out", dir);
	r = kf_klipper_dir(ctx, s, err, &kdir);
	if (r == 0)
		r = kf_board_config_load(ctx, b, err, ret_saved, &path);
	if (r < 0)
		goto out;
	r = kf_os_read_file(ctx->ops, path, &text, &len);
	if (r == 0)
		r = kf_os_mkdir_p(ctx->ops, out, 0755);
	if (r == 0)
		r = kf_os_write_atomic(ctx->ops, copy, text, len, 0644);
	if (r < 0) {
		int e = r;

		r = kf_error_set(err, KF_EFAILED, "cannot copy %s to %s for the dry "
				 "run: %s", path, copy, strerror(-e));
		kf_error_errno(err, e);
		goto out;
	}
	r = make_step(ctx, kdir, copy, out, "olddefconfig", s->timeout_build,
		      "make olddefconfig (on a copy of the config)", &log, NULL, err);
	if (r == 0)
		r = read_config(ctx, copy, err, ret_cfg);
out:
	kf_buf_release(&log);
	free(text);
	free(kdir);
	free(path);
	free(dir);
	free(copy);
	free(out);
	return r;
}

/* Klipper's buildcommands.py adds "-<YYYYMMDD_HHMMSS>-<host>" to the
 * version of a build from a dirty tree. */
static bool is_build_suffix(const char *p)
{
	int i;

	for (i = 0; i < 15; i++)
		if (i == 8 ? p[i] != '_' : (p[i] < '0' || p[i] > '9'))
			return false;
	return p[15] == '-';
}

static bool same_version(const char *fw, const char *host)
{
	size_t n = strlen(host);

	return strcmp(fw, host) == 0 ||
	       (strncmp(fw, host, n) == 0 && fw[n] == '-' && is_build_suffix(fw + n + 1));
}

/* What the built firmware says it is: OUT/klipper.dict, the data dictionary
 * Klipper also puts inside the image. Its MCU must be the board's and its
 * version the checkout's. 0 when it fits (or there is no dictionary to
 * read: a warning); with err NULL nothing is reported (up-to-date check). */
static int check_dict(struct kf_ctx *ctx, const struct kf_board *b, const char *out,
		      const char *version, bool host_mcu, struct kf_error *err)
{
	char *path = kf_asprintf("%s/klipper.dict", out), *text = NULL;
	const char *mcu, *ver;
	json_t *doc = NULL;
	json_error_t je;
	int r = kf_os_read_file(ctx->ops, path, &text, NULL);

	if (r == -ENOENT) {
		if (err)
			kf_out_warn(ctx->out, "%s: the build left no %s; the firmware's "
				    "MCU and version are not checked", b->key, path);
		r = 0;
		goto out;
	}
	if (r < 0) {
		int e = r;

		r = kf_error_set(err, KF_EFAILED, "cannot read %s: %s", path, strerror(-e));
		kf_error_errno(err, e);
		goto out;
	}
	doc = json_loads(text, 0, &je);
	mcu = json_string_value(json_object_get(json_object_get(doc, "config"), "MCU"));
	ver = json_string_value(json_object_get(doc, "version"));
	if (!mcu || !ver) {
		r = kf_error_set(err, KF_EFAILED, "%s is not a Klipper data dictionary "
				 "(no config.MCU or version)", path);
		kf_error_step(err, KF_CMD("kflash build %s --rebuild"), b->key);
		goto out;
	}
	if (!host_mcu && strcmp(mcu, b->mcu) != 0) {
		r = kf_error_set(err, KF_EREFUSED, "the firmware built for %s is for %s, "
				 "but the board is %s (%s says so)", b->key, mcu, b->mcu, path);
		kf_error_step(err, KF_CMD("kflash config %s") "   (choose %s)", b->key, b->mcu);
		kf_error_step(err, KF_CMD("kflash build %s --rebuild"), b->key);
		goto out;
	}
	if (version && !same_version(ver, version)) {
		r = kf_error_set(err, KF_EFAILED, "the firmware built for %s carries "
				 "Klipper %s, not the checkout's %s (%s)", b->key, ver,
				 version, path);
		kf_error_cause(err, "make kept objects from an older build");
		kf_error_step(err, KF_CMD("kflash build %s --rebuild"), b->key);
		goto out;
	}
	r = 0;
out:
	json_decref(doc);
	free(text);
	free(path);
	return r;
}

/* ---- the build ------------------------------------------------------------ */

/* Why OUT must be emptied before make, or NULL: objects from another
 * Klipper version or compiler would end up in the firmware (make compiles
 * only what changed; the version is written when something compiles). */
static const char *clean_reason(const char *old_stamp, const char *stamp)
{
	if (!old_stamp)
		return "a first build, or the build dir of an unknown build";
	if (!stamp_same(old_stamp, stamp, "version"))
		return "Klipper's version changed";
	if (!stamp_same(old_stamp, stamp, "compiler"))
		return "the compiler changed";
	return NULL;
}

/* A look before the build (git, the compiler) was cut short by a signal. */
static int stopped_by(struct kf_ctx *ctx, const struct kf_board *b, struct kf_error *err)
{
	kf_error_set(err, KF_EINTERRUPTED, "the build of %s was stopped before it "
		     "began: kflash got signal %d (%s)", b->key, ctx->signal,
		     strsignal(ctx->signal));
	if (err)
		err->signal = ctx->signal;
	return KF_EINTERRUPTED;
}

int kf_build(struct kf_ctx *ctx, const struct kf_settings *s, const struct kf_board *b,
	     const struct kf_build_opts *opts, struct kf_error *err,
	     struct kf_build_result *res)
{
	static const struct kf_build_opts defaults = { 0 };
	char *kdir = NULL, *cfg = kf_board_config_path(ctx->config_dir, b->key);
	char *out = kf_board_build_dir(ctx->ops, b->key), *jobs, *stamp_path, *stamp = NULL;
	char *old_stamp = NULL, *building = NULL;
	struct kf_buf log = KF_BUF_INIT;
	struct progress prog = { .ctx = ctx, .key = b->key };
	struct kf_kconfig saved = KF_KCONFIG_INIT;
	int64_t t0 = kf_os_now(ctx->ops);
	int ncpu = kf_os_cpu_count(ctx->ops);
	const char *why_clean = NULL;
	bool streaming = false;
	int r, w, stamp_err = 0;
	char *unknown;

	if (!opts)
		opts = &defaults;
	memset(res, 0, sizeof(*res));
	res->build_dir = kf_xstrdup(out);
	res->log_path = kf_asprintf("%s/build.log", out);
	prog.log_path = res->log_path;
	/* a count the host cannot give builds on one CPU: slower, never
	 * wrong */
	jobs = kf_asprintf("-j%d", ncpu > 0 ? ncpu : 1);
	stamp_path = kf_asprintf("%s/kflash.stamp", out);

	r = kf_klipper_dir(ctx, s, err, &kdir);
	if (r == 0)
		r = make_paths_ok(cfg, out, err);
	if (r < 0)
		goto out;
	r = file_is_there(ctx, cfg, NULL);
	if (r < 0) {
		int e = r;

		/* an I/O error is no missing config: say which */
		r = kf_error_set(err, KF_EFAILED, "cannot check the config of %s (%s): %s",
				 b->key, cfg, strerror(-e));
		kf_error_errno(err, e);
		goto out;
	}
	if (r == 0) {
		struct kf_kconfig none = KF_KCONFIG_INIT;
		char *p = NULL;

		/* says why and how to make one; a build never starts without */
		r = kf_board_config_load(ctx, b, err, &none, &p);
		kf_kconfig_release(&none);
		free(p);
		if (r == 0)
			r = kf_error_set(err, KF_EFAILED, "cannot read the config "
					 "of %s (%s)", b->key, cfg);
		goto out;
	}
	r = kf_os_mkdir_p(ctx->ops, out, 0755);
	if (r < 0) {
		int e = r;

		r = kf_error_set(err, KF_EFAILED, "cannot create the build dir %s: %s",
				 out, strerror(-e));
		kf_error_errno(err, e);
		goto out;
	}
	r = read_config(ctx, cfg, err, &saved);
	if (r < 0)
		goto out;

	r = kf_klipper_version(ctx, kdir, &res->version);
	if (ctx->signal) {
		r = stopped_by(ctx, b, err);
		goto out;
	}
	if (r < 0 && r != -ENOENT)
		kf_out_warn(ctx->out, "%s: cannot tell the checkout's version (git "
			    "describe in %s: %s); it is not checked in the firmware",
			    b->key, kdir, strerror(-r));
	r = 0;

	if (opts->rebuild) {
		kf_out_phase(ctx->out, KF_PHASE_BUILD, "%s: make clean (--rebuild)", b->key);
		r = make_step(ctx, kdir, cfg, out, "clean", 60, "make clean", &log, NULL,
			      err);
		if (r < 0)
			goto fail;
	}
	/* Klipper completes the config the way it will build it: the chip
	 * and the application address are checked on that, not on the file
	 * as it was saved */
	r = make_step(ctx, kdir, cfg, out, "olddefconfig", s->timeout_build,
		      "make olddefconfig", &log, NULL, err);
	if (r < 0)
		goto fail;
	r = read_config(ctx, cfg, err, &res->cfg);
	if (r < 0)
		goto out;
	r = kf_build_check_config(ctx, b, &saved, &res->cfg, cfg, opts->device_mcu,
				  opts->flashing, err);
	if (r < 0)
		goto out;
	res->host_mcu = r == KF_HOST_MCU;
	r = 0;
	if (opts->katapult && !res->host_mcu &&
	    (r = kf_build_check_offset(ctx, b, &res->cfg, cfg, err)) < 0)
		goto out;
	if (!res->host_mcu)
		kf_out_ok(ctx->out, KF_PHASE_CONFIG, "%s: config is for %s", b->key, b->mcu);

	stamp = make_stamp(ctx, kdir, &res->cfg, res->version, &stamp_err);
	if (ctx->signal) {
		r = stopped_by(ctx, b, err);
		goto out;
	}
	if (stamp_err) {
		/* what the firmware is built from is not known: it is never
		 * up to date, and neither is this build the next time */
		kf_out_warn(ctx->out, "%s: cannot tell what the firmware is built from "
			    "(asking git or the compiler failed: %s); building it, and "
			    "again next time", b->key, strerror(-stamp_err));
		unknown = kf_asprintf(STAMP_BUILDING "%s", stamp);
		free(stamp);
		stamp = unknown;
	}
	/* a failed look only means a build: the one after it says why */
	res->firmware = find_firmware(ctx, out, &res->cfg, &res->size, &r);
	r = 0;
	if (kf_os_read_file(ctx->ops, stamp_path, &old_stamp, NULL) < 0)
		old_stamp = NULL;
	if (!opts->rebuild && res->firmware && old_stamp && strcmp(old_stamp, stamp) == 0 &&
	    check_dict(ctx, b, out, res->version, res->host_mcu, NULL) == 0) {
		res->up_to_date = true;
		/* kflash build says it as its result, on stdout: once */
		if (opts->flashing || ctx->out->json)
			kf_out_ok(ctx->out, KF_PHASE_BUILD, "%s is up to date (%s, %lld "
				  "bytes); nothing to build", b->key, res->firmware,
				  (long long)res->size);
		goto out;
	}
	if (old_stamp && res->firmware) {
		const char *what = stamp_change(old_stamp, stamp);

		if (what)
			kf_out_phase(ctx->out, KF_PHASE_BUILD, "%s: %s changed since the "
				     "last build", b->key, what);
		else
			kf_out_phase(ctx->out, KF_PHASE_BUILD, "%s: the last build did not "
				     "finish, or its firmware is not the checkout's", b->key);
	}
	free(res->firmware);
	res->firmware = NULL;
	if (!opts->rebuild)
		why_clean = clean_reason(old_stamp, stamp);
	if (why_clean && old_stamp) {
		kf_out_phase(ctx->out, KF_PHASE_BUILD, "%s: make clean (%s: every object "
			     "is built again)", b->key, why_clean);
	}
	if (why_clean) {
		r = make_step(ctx, kdir, cfg, out, "clean", 60, "make clean", &log, NULL,
			      err);
		if (r == 0 && (r = kf_os_mkdir_p(ctx->ops, out, 0755)) < 0) {
			int e = r;

			r = kf_error_set(err, KF_EFAILED, "cannot create the build "
					 "dir %s: %s", out, strerror(-e));
			kf_error_errno(err, e);
		}
		if (r < 0)
			goto fail;
	}
	/* from here OUT holds objects of this version and compiler, and the
	 * stamp says so, but never reads as "up to date" until the end */
	building = kf_asprintf(STAMP_BUILDING "%s", stamp);
	w = kf_os_write_atomic(ctx->ops, stamp_path, building, strlen(building), 0644);
	if (w < 0) {
		/* the old stamp may still say "up to date" while OUT changes:
		 * without this one, OUT is cleaned before the next build */
		kf_out_warn(ctx->out, "%s: cannot mark %s as building (%s); it is "
			    "removed so the next build starts clean", b->key, stamp_path,
			    strerror(-w));
		(void)kf_os_unlink(ctx->ops, stamp_path);
	}
	{
		kf_out_phase(ctx->out, KF_PHASE_BUILD, "building %s (%s, Klipper %s)",
			     b->key, b->mcu, res->version ? res->version : "unknown");
		/* a fresh log with what make said so far, then line by line
		 * as it prints (tail -f works) */
		w = kf_os_write_atomic(ctx->ops, res->log_path, log.data ? log.data : "",
				       log.len, 0644);
		if (w < 0)
			kf_out_warn(ctx->out, "%s: cannot write the build log %s: %s",
				    b->key, res->log_path, strerror(-w));
		streaming = true;
		r = make_step(ctx, kdir, cfg, out, jobs, s->timeout_build, "the build",
			      &log, &prog, err);
		kf_out_progress_clear(ctx->out);
		if (r < 0)
			goto fail;
	}
	res->firmware = find_firmware(ctx, out, &res->cfg, &res->size, &r);
	if (!res->firmware && r < 0) {
		int e = r;

		r = kf_error_set(err, KF_EFAILED, "cannot look for the firmware of %s "
				 "in %s: %s", b->key, out, strerror(-e));
		kf_error_errno(err, e);
		goto fail;
	}
	if (!res->firmware) {
		r = kf_error_set(err, KF_EFAILED, "the build of %s produced no "
				 "firmware (no klipper.bin, .uf2, .elf.hex in %s)",
				 b->key, out);
		goto fail;
	}
	r = check_dict(ctx, b, out, res->version, res->host_mcu, err);
	if (r < 0)
		goto out;
	w = kf_os_write_atomic(ctx->ops, stamp_path, stamp, strlen(stamp), 0644);
	if (w < 0)
		kf_out_warn(ctx->out, "%s: cannot save the build stamp %s (%s): the "
			    "next build of %s starts again", b->key, stamp_path,
			    strerror(-w), b->key);
	res->ms = kf_os_now(ctx->ops) - t0;
	if (opts->flashing || ctx->out->json)
		kf_out_ok(ctx->out, KF_PHASE_BUILD, "%s built in %.1fs: %s (%lld bytes)",
			  b->key, (double)res->ms / 1000.0, res->firmware,
			  (long long)res->size);
	goto out;
fail:
	if (!streaming)
		(void)kf_os_write_atomic(ctx->ops, res->log_path, log.data ? log.data : "",
					 log.len, 0644);
	if (r != KF_EINTERRUPTED) {
		show_log_tail(ctx, &log, res->log_path);
		kf_error_step(err, "read the whole log: " KF_CMD("less %s"), res->log_path);
		kf_error_step(err, "check the board's settings: "
			      KF_CMD("kflash config %s"),
			      b->key);
	}
out:
	kf_kconfig_release(&saved);
	kf_buf_release(&log);
	free(building);
	free(old_stamp);
	free(stamp);
	free(stamp_path);
	free(kdir);
	free(cfg);
	free(out);
	free(jobs);
	return r;
}
