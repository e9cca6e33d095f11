/* build.c - per-board configs, menuconfig, and Klipper builds with a stamp. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kflash/build.h"
#include "kflash/proc.h"
#include "kflash/util.h"

#define TAIL_LINES 20

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

char *kf_board_build_dir(const char *key)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");

	if (xdg && *xdg == '/')
		return kf_asprintf("%s/kflash/build/%s", xdg, key);
	return kf_asprintf("%s/.cache/kflash/build/%s", home ? home : "/tmp", key);
}

void kf_build_result_release(struct kf_build_result *r)
{
	free(r->firmware);
	free(r->log_path);
	free(r->build_dir);
	free(r->version);
	memset(r, 0, sizeof(*r));
}

static bool is_file(struct kf_ctx *ctx, const char *path, off_t *size)
{
	enum kf_file_kind k;

	return kf_os_file_kind(ctx->ops, path, &k, size) == 0 && k == KF_FILE_REG;
}

int kf_klipper_dir(struct kf_ctx *ctx, const struct kf_settings *s, char **ret_dir)
{
	char *dir = kf_expand_home(s->klipper_dir);
	char *mk = kf_asprintf("%s/Makefile", dir);
	char *kc = kf_asprintf("%s/src/Kconfig", dir);
	bool ok = is_file(ctx, mk, NULL) && is_file(ctx, kc, NULL);

	free(mk);
	free(kc);
	if (ok) {
		*ret_dir = dir;
		return 0;
	}
	kf_error_set(ctx->err, KF_EINPUT, "klipper_dir %s is not a Klipper checkout "
		     "(it needs a Makefile and src/Kconfig)", dir);
	kf_error_cause(ctx->err, "Klipper (or Kalico) is installed elsewhere, or "
		       "not at all");
	kf_error_step(ctx->err, "kflash settings klipper_dir /path/to/klipper");
	kf_error_step(ctx->err, "kflash doctor");
	free(dir);
	return KF_EINPUT;
}

int kf_board_config_load(struct kf_ctx *ctx, const struct kf_board *b,
			 struct kf_kconfig *ret_cfg, char **ret_path)
{
	char *path = kf_board_config_path(ctx->config_dir, b->key);
	char *text = NULL;
	size_t len;
	int r;

	r = kf_os_read_file(ctx->ops, path, &text, &len);
	if (r == -ENOENT) {
		kf_error_set(ctx->err, KF_EFAILED, "%s has no firmware config yet "
			     "(%s is missing)", b->key, path);
		kf_error_cause(ctx->err, "menuconfig was never saved for this board; "
			       "without a config Klipper would build a default AVR "
			       "firmware");
		kf_error_step(ctx->err, "kflash config %s   (on a terminal; choose the "
			      "board's settings and save)", b->key);
		free(path);
		return KF_EFAILED;
	}
	if (r < 0) {
		kf_error_set(ctx->err, KF_EFAILED, "cannot read %s: %s", path, strerror(-r));
		free(path);
		return KF_EFAILED;
	}
	kf_kconfig_parse(text, len, ret_cfg);
	free(text);
	*ret_path = path;
	return 0;
}

static int make_argv_run(struct kf_ctx *ctx, const char *const *argv, enum kf_stdio out,
			 int64_t timeout_ms, struct kf_run_opts *opts,
			 struct kf_exit *ret_exit)
{
	struct kf_spawn_req req = {
		.argv = argv, .in = out == KF_STDIO_INHERIT ? KF_STDIO_INHERIT : KF_STDIO_NULL,
		.out = out,
	};
	struct kf_run_opts none = { 0 };

	if (!opts)
		opts = &none;
	opts->timeout_ms = timeout_ms;
	return kf_proc_run(ctx->ops, &req, opts, ret_exit);
}

/* Turns a child's outcome into kflash's error, naming the command. */
static int child_failed(struct kf_ctx *ctx, const struct kf_exit *ex,
			const char *const *argv, const char *what, int timeout_s)
{
	char how[128], *cmd = kf_argv_join(argv);

	if (ex->kind == KF_EXIT_INTERRUPTED) {
		kf_error_set(ctx->err, KF_EINTERRUPTED, "%s was stopped: kflash got "
			     "signal %d (%s)", what, ex->interrupted_by,
			     strsignal(ex->interrupted_by));
		ctx->err->signal = ex->interrupted_by;
		kf_error_command(ctx->err, "%s", cmd);
		free(cmd);
		return KF_EINTERRUPTED;
	}
	if (ex->kind == KF_EXIT_TIMED_OUT) {
		kf_error_set(ctx->err, KF_EFAILED, "%s timed out after %d s and was "
			     "stopped", what, timeout_s);
		kf_error_step(ctx->err, "raise the limit: kflash settings timeout.build %d",
			      timeout_s * 2);
	} else {
		kf_exit_describe(ex, how, sizeof(how));
		kf_error_set(ctx->err, KF_EFAILED, "%s failed: %s %s", what, argv[0], how);
		if (ex->kind == KF_EXIT_EXEC_FAILED)
			kf_error_step(ctx->err, "sudo apt-get install build-essential");
	}
	kf_error_command(ctx->err, "%s", cmd);
	free(cmd);
	return KF_EFAILED;
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

int kf_menuconfig(struct kf_ctx *ctx, const struct kf_settings *s, const struct kf_board *b)
{
	char *kdir = NULL, *cfg, *cfgdir, *out, **argv = NULL;
	struct kf_exit ex;
	int r;

	if (!ctx->interactive) {
		kf_error_set(ctx->err, KF_EFAILED, "menuconfig for %s needs a terminal",
			     b->key);
		kf_error_cause(ctx->err, "kflash is not running on a terminal (a "
			       "script, a pipe or cron)");
		kf_error_step(ctx->err, "run kflash config %s in an SSH session", b->key);
		return KF_EFAILED;
	}
	r = kf_klipper_dir(ctx, s, &kdir);
	if (r < 0)
		return r;
	cfg = kf_board_config_path(ctx->config_dir, b->key);
	cfgdir = kf_asprintf("%s/configs/%s", ctx->config_dir, b->key);
	out = kf_board_build_dir(b->key);
	(void)kf_os_mkdir_p(ctx->ops, out, 0755);
	r = kf_os_mkdir_p(ctx->ops, cfgdir, 0755);
	if (r < 0) {
		r = kf_error_set(ctx->err, KF_EFAILED, "cannot create %s: %s", cfgdir,
				 strerror(-r));
		goto out;
	}
	argv = kf_make_argv(kdir, cfg, out, "menuconfig", NULL);
	kf_out_phase(ctx->out, KF_PHASE_CONFIG, "menuconfig for %s (%s)", b->key, cfg);
	/* the user's own time: no timeout */
	r = make_argv_run(ctx, (const char *const *)argv, KF_STDIO_INHERIT, 0, NULL, &ex);
	if (r == 0 && !kf_exit_ok(&ex))
		r = child_failed(ctx, &ex, (const char *const *)argv, "menuconfig", 0);
	if (r == 0 && !is_file(ctx, cfg, NULL))
		r = kf_error_set(ctx->err, KF_EFAILED, "menuconfig ended without "
				 "saving a config for %s", b->key);
out:
	free(kdir);
	free(cfg);
	free(cfgdir);
	free(out);
	kf_argv_free(argv);
	return r;
}

/* ---- the build ---------------------------------------------------------------- */

struct progress {
	struct kf_ctx *ctx;
	const char *key;
	const char *log_path;	/* streamed as it comes */
	int compiled;
};

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
		kf_out_progress(p->ctx->out, "[Build] %s: %d files compiled (%.*s)",
				p->key, p->compiled, (int)n, f);
	} else if (len > 10 && memmem(line, len, "Linking ", 8)) {
		kf_out_progress(p->ctx->out, "[Build] %s: linking", p->key);
	}
}

/* One `make TARGET` for board b into log (and, with prog, the live log and
 * progress line); a failure becomes ctx->err naming the command. */
static int make_step(struct kf_ctx *ctx, const char *kdir, const char *cfg,
		     const char *out, const char *target, int timeout_s, const char *what,
		     struct kf_buf *log, struct progress *prog)
{
	char **argv = kf_make_argv(kdir, cfg, out, target, NULL);
	struct kf_run_opts opts = { .capture = log };
	struct kf_exit ex;
	int r;

	if (prog) {
		opts.on_line = on_build_line;
		opts.line_data = prog;
	}
	r = make_argv_run(ctx, (const char *const *)argv, KF_STDIO_CAPTURE,
			  timeout_s * 1000LL, &opts, &ex);
	if (r == 0 && !kf_exit_ok(&ex))
		r = child_failed(ctx, &ex, (const char *const *)argv, what, timeout_s);
	kf_argv_free(argv);
	return r;
}

static char *capture_first_line(struct kf_ctx *ctx, const char *const *argv)
{
	struct kf_buf out = KF_BUF_INIT;
	struct kf_run_opts opts = { .capture = &out };
	struct kf_exit ex;
	char *line;

	if (make_argv_run(ctx, argv, KF_STDIO_CAPTURE, 30000, &opts, &ex) < 0 ||
	    !kf_exit_ok(&ex) || !out.data) {
		kf_buf_release(&out);
		return NULL;
	}
	line = kf_xstrndup(out.data, strcspn(out.data, "\n"));
	kf_buf_release(&out);
	return line;
}

static uint64_t capture_hash(struct kf_ctx *ctx, const char *const *argv)
{
	struct kf_buf out = KF_BUF_INIT;
	struct kf_run_opts opts = { .capture = &out };
	struct kf_exit ex;
	uint64_t h = KF_HASH_SEED;

	if (make_argv_run(ctx, argv, KF_STDIO_CAPTURE, 60000, &opts, &ex) == 0 &&
	    kf_exit_ok(&ex) && out.data)
		h = kf_hash(out.data, out.len, h);
	kf_buf_release(&out);
	return h;
}

int kf_klipper_version(struct kf_ctx *ctx, const char *kdir, char **ret)
{
	const char *argv[] = { "git", "-C", kdir, "describe", "--always", "--tags",
			       "--long", "--dirty", NULL };

	*ret = capture_first_line(ctx, argv);
	return *ret ? 0 : -ENOENT;
}

/* The compiler Klipper will use for this config. */
static const char *cross_cc(const struct kf_kconfig *cfg)
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
 * (and kflash) can see what changed. */
static char *make_stamp(struct kf_ctx *ctx, const char *kdir, const struct kf_kconfig *cfg)
{
	const char *head[] = { "git", "-C", kdir, "rev-parse", "HEAD", NULL };
	const char *diff[] = { "git", "-C", kdir, "diff", "HEAD", NULL };
	const char *untracked[] = { "git", "-C", kdir, "status", "--porcelain", NULL };
	const char *cc_argv[] = { cross_cc(cfg), "--version", NULL };
	char *norm = kf_kconfig_normalise(cfg), *h = capture_first_line(ctx, head);
	char *cc = capture_first_line(ctx, cc_argv), *stamp;
	uint64_t d = capture_hash(ctx, diff);

	d = kf_hash(&d, sizeof(d), capture_hash(ctx, untracked));
	stamp = kf_asprintf("config %016" PRIx64 "\nklipper %s\nchanges %016" PRIx64
			    "\ncompiler %s\n",
			    kf_hash(norm, strlen(norm), KF_HASH_SEED),
			    h ? h : "unknown", d, cc ? cc : "missing");
	free(norm);
	free(h);
	free(cc);
	return stamp;
}

/* "config", "klipper", ... : the first stamp line that differs */
static char *stamp_change(const char *old, const char *now)
{
	while (*old && *now) {
		size_t a = strcspn(old, "\n"), b = strcspn(now, "\n");

		if (a != b || memcmp(old, now, a) != 0)
			return kf_xstrndup(now, strcspn(now, " "));
		old += a + (old[a] == '\n');
		now += b + (now[b] == '\n');
	}
	return kf_xstrdup("stamp");
}

static const char *const firmware_names[] = {
	"klipper.bin", "klipper.uf2", "klipper.elf.hex", NULL,
};

/* The file to flash. The Linux host MCU's firmware is the program itself. */
static char *find_firmware(struct kf_ctx *ctx, const char *out,
			   const struct kf_kconfig *cfg, off_t *size)
{
	const char *dir = kf_kconfig_get(cfg, "CONFIG_BOARD_DIRECTORY");
	size_t i;
	char *p;

	for (i = 0; firmware_names[i]; i++) {
		p = kf_asprintf("%s/%s", out, firmware_names[i]);
		if (is_file(ctx, p, size))
			return p;
		free(p);
	}
	if (!dir || strcmp(dir, "linux") != 0)
		return NULL;
	p = kf_asprintf("%s/klipper.elf", out);
	if (is_file(ctx, p, size))
		return p;
	free(p);
	return NULL;
}

static void tail_into_error(struct kf_ctx *ctx, const struct kf_buf *log,
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
	fprintf(ctx->out->err, "--- last lines of %s ---\n%s--- end ---\n", log_path, start);
}

int kf_build(struct kf_ctx *ctx, const struct kf_settings *s, const struct kf_board *b,
	     const struct kf_build_opts *opts, struct kf_build_result *res)
{
	char *kdir = NULL, *cfg = kf_board_config_path(ctx->config_dir, b->key);
	char *out = kf_board_build_dir(b->key), *jobs, *stamp_path, *stamp = NULL;
	char *old_stamp = NULL;
	struct kf_buf log = KF_BUF_INIT;
	struct progress prog = { ctx, b->key, NULL, 0 };
	struct kf_kconfig kcfg = KF_KCONFIG_INIT;
	int64_t t0 = kf_os_now(ctx->ops);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char *text = NULL;
	bool streaming = false;
	size_t len;
	int r;

	memset(res, 0, sizeof(*res));
	res->build_dir = kf_xstrdup(out);
	res->log_path = kf_asprintf("%s/build.log", out);
	prog.log_path = res->log_path;
	jobs = kf_asprintf("-j%ld", ncpu > 0 ? ncpu : 1);
	stamp_path = kf_asprintf("%s/kflash.stamp", out);

	r = kf_klipper_dir(ctx, s, &kdir);
	if (r < 0)
		goto out;
	if (!is_file(ctx, cfg, NULL)) {
		struct kf_kconfig none = KF_KCONFIG_INIT;
		char *p = NULL;

		/* says why and how to make one; a build never starts without */
		r = kf_board_config_load(ctx, b, &none, &p);
		kf_kconfig_release(&none);
		free(p);
		if (r == 0)
			r = kf_error_set(ctx->err, KF_EFAILED, "cannot read the config "
					 "of %s (%s)", b->key, cfg);
		goto out;
	}
	r = kf_os_mkdir_p(ctx->ops, out, 0755);
	if (r < 0) {
		r = kf_error_set(ctx->err, KF_EFAILED, "cannot create the build dir %s: %s",
				 out, strerror(-r));
		goto out;
	}

	(void)kf_klipper_version(ctx, kdir, &res->version);

	if (opts && opts->rebuild) {
		kf_out_phase(ctx->out, KF_PHASE_BUILD, "%s: make clean (--rebuild)", b->key);
		r = make_step(ctx, kdir, cfg, out, "clean", 60, "make clean", &log, NULL);
		if (r < 0)
			goto fail;
	}
	r = make_step(ctx, kdir, cfg, out, "olddefconfig", s->timeout_build,
		      "make olddefconfig", &log, NULL);
	if (r < 0)
		goto fail;
	if (kf_os_read_file(ctx->ops, cfg, &text, &len) == 0)
		kf_kconfig_parse(text, len, &kcfg);
	free(text);
	stamp = make_stamp(ctx, kdir, &kcfg);
	res->firmware = find_firmware(ctx, out, &kcfg, &res->size);
	if (!(opts && opts->rebuild) && res->firmware &&
	    kf_os_read_file(ctx->ops, stamp_path, &old_stamp, NULL) == 0 &&
	    strcmp(old_stamp, stamp) == 0) {
		res->up_to_date = true;
		kf_out_ok(ctx->out, KF_PHASE_BUILD, "%s is up to date (%s, %lld bytes); "
			  "nothing to build", b->key, res->firmware, (long long)res->size);
		goto out;
	}
	if (old_stamp && res->firmware) {
		char *what = stamp_change(old_stamp, stamp);

		kf_out_phase(ctx->out, KF_PHASE_BUILD, "%s: %s changed since the last "
			     "build", b->key, what);
		free(what);
	}
	free(res->firmware);
	res->firmware = NULL;
	/* a stale stamp must not outlive a failed build */
	(void)kf_os_unlink(ctx->ops, stamp_path);
	{
		kf_out_phase(ctx->out, KF_PHASE_BUILD, "building %s (%s, Klipper %s)",
			     b->key, b->mcu, res->version ? res->version : "unknown");
		/* a fresh log with what make said so far, then line by line
		 * as it prints (tail -f works) */
		(void)kf_os_write_atomic(ctx->ops, res->log_path, log.data ? log.data : "",
					 log.len, 0644);
		streaming = true;
		r = make_step(ctx, kdir, cfg, out, jobs, s->timeout_build, "the build",
			      &log, &prog);
		kf_out_progress_clear(ctx->out);
		if (r < 0)
			goto fail;
	}
	res->firmware = find_firmware(ctx, out, &kcfg, &res->size);
	if (!res->firmware) {
		r = kf_error_set(ctx->err, KF_EFAILED, "the build of %s produced no "
				 "firmware (no klipper.bin, .uf2, .elf.hex in %s)",
				 b->key, out);
		goto fail;
	}
	(void)kf_os_write_atomic(ctx->ops, stamp_path, stamp, strlen(stamp), 0644);
	res->ms = kf_os_now(ctx->ops) - t0;
	kf_out_ok(ctx->out, KF_PHASE_BUILD, "%s built in %.1fs: %s (%lld bytes)", b->key,
		  (double)res->ms / 1000.0, res->firmware, (long long)res->size);
	goto out;
fail:
	if (!streaming)
		(void)kf_os_write_atomic(ctx->ops, res->log_path, log.data ? log.data : "",
					 log.len, 0644);
	if (r != KF_EINTERRUPTED) {
		tail_into_error(ctx, &log, res->log_path);
		kf_error_step(ctx->err, "read the whole log: less %s", res->log_path);
		kf_error_step(ctx->err, "check the board's settings: kflash config %s",
			      b->key);
	}
out:
	kf_kconfig_release(&kcfg);
	kf_buf_release(&log);
	free(old_stamp);
	free(stamp);
	free(stamp_path);
	free(kdir);
	free(cfg);
	free(out);
	free(jobs);
	return r;
}
