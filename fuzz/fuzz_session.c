/* fuzz_session.c - a recorded session as `kflash replay` reads it:
 * session.json and calls.jsonl loaded and checked (kf_session_load, from a
 * fake world: no file is read), then replayed: each recorded call is made
 * again on the replaying table with the arguments it records, so every
 * recorded answer (devices, exits, captured lines, bodies, uevents, file
 * data in text or base64) is decoded the way a replayed kflash gets it,
 * and the replay's end report is written.
 *
 * Input: session.json, a NUL, then calls.jsonl (NULs and all). */
#include <stdlib.h>
#include <string.h>

#include "fake_ops.h"
#include "fuzz.h"
#include "kflash/proc.h"
#include "kflash/session.h"
#include "kflash/util.h"

#define DIR "/home/pi/.local/state/kflash/sessions/20261202T043000Z-flash"
#define MAX_CALLS 256

static void put_mem(struct fake_world *w, const char *path, const uint8_t *p, size_t n)
{
	size_t i;

	fake_put_file(w, path, "");
	for (i = 0; i < w->n_files; i++)
		if (w->files[i].path && strcmp(w->files[i].path, path) == 0) {
			free(w->files[i].data);
			w->files[i].data = kf_xmalloc(n + 1);
			if (n)
				memcpy(w->files[i].data, p, n);
			w->files[i].data[n] = '\0';
			w->files[i].len = n;
		}
}

/* a recorded argument back as the string kflash passed */
static char *arg_str(const json_t *args, const char *key)
{
	bool ok;
	size_t len;
	char *s = kf_sj_get_mem(json_object_get(args, key), &len, &ok);

	return s ? s : kf_xstrdup("");
}

static int arg_int(const json_t *args, const char *key)
{
	return (int)json_integer_value(json_object_get(args, key));
}

static void line_seen(void *data, const char *line, size_t len)
{
	size_t *n = data;

	(void)line;
	*n += len;
}

static char **arg_strv(const json_t *v)
{
	size_t n = json_array_size(v), i;
	char **out = kf_xcalloc(n + 1, sizeof(*out));

	for (i = 0; i < n; i++) {
		bool ok;
		size_t len;

		out[i] = kf_sj_get_mem(json_array_get(v, i), &len, &ok);
		if (!out[i])
			out[i] = kf_xstrdup("");
	}
	return out;
}

static enum kf_stdio stdio_of(const json_t *v)
{
	const char *s = json_string_value(v);

	return !s ? KF_STDIO_INHERIT : !strcmp(s, "capture") ? KF_STDIO_CAPTURE
		: !strcmp(s, "null") ? KF_STDIO_NULL : !strcmp(s, "pipe") ? KF_STDIO_PIPE
		: KF_STDIO_INHERIT;
}

/* the recorded call made again; what it answers is checked by ASan only */
static void call(struct kf_replayer *rp, const struct kf_ops *o, const json_t *c,
		 struct kf_monitor **mon)
{
	const char *op = json_string_value(json_object_get(c, "op"));
	const json_t *a = json_object_get(c, "args");
	struct kf_proc p = { .pid = (pid_t)arg_int(a, "pid"), .out_fd = -1, .in_fd = -1 };
	char *s = NULL, *buf = NULL, **names = NULL;
	struct kf_ttydev *devs = NULL;
	size_t n = 0, len = 0;

	if (!strcmp(op, "enumerate") || !strcmp(op, "enumerate_net")) {
		if ((op[9] ? kf_os_enumerate_net(o, &devs, &n)
			   : kf_os_enumerate(o, &devs, &n)) >= 0)
			kf_ttydevs_free(devs, n);
	} else if (!strcmp(op, "monitor_open")) {
		if (kf_os_monitor_open(o, mon) < 0)
			*mon = NULL;
	} else if (!strcmp(op, "monitor_next")) {
		struct kf_uevent ev;

		memset(&ev, 0, sizeof(ev));
		if (kf_os_monitor_next(o, *mon, json_integer_value(json_object_get(a,
					"deadline")), &ev) == 1)
			kf_ttydev_release(&ev.dev);
	} else if (!strcmp(op, "monitor_close")) {
		kf_os_monitor_close(o, *mon);
	} else if (!strcmp(op, "spawn")) {
		char **argv = arg_strv(json_object_get(a, "argv"));
		char **env = json_is_array(json_object_get(a, "env"))
			? arg_strv(json_object_get(a, "env")) : NULL;
		char *cwd = json_is_null(json_object_get(a, "cwd")) ? NULL : arg_str(a, "cwd");
		struct kf_spawn_req q = {
			.argv = (const char *const *)argv, .env = (const char *const *)env,
			.cwd = cwd, .in = stdio_of(json_object_get(a, "in")),
			.out = stdio_of(json_object_get(a, "out")),
			.idle = json_is_true(json_object_get(a, "idle")),
			.detach = json_is_true(json_object_get(a, "detach")),
			.ready_ms = arg_int(a, "ready_ms"),
			.self = json_is_true(json_object_get(a, "self")),
		};

		if (argv[0])
			(void)kf_os_spawn(o, &q, &p);
		kf_argv_free(argv);
		kf_argv_free(env);
		free(cwd);
	} else if (!strcmp(op, "wait")) {
		struct kf_exit ex;

		(void)kf_os_wait(o, &p, json_integer_value(json_object_get(a, "deadline")),
				 line_seen, &len, &ex);
	} else if (!strcmp(op, "kill_group")) {
		(void)kf_os_kill_group(o, &p, arg_int(a, "sig"));
	} else if (!strcmp(op, "read_file")) {
		s = arg_str(a, "path");
		if (kf_os_read_file(o, s, &buf, &len) == 0)
			fuzz_assert(buf != NULL);
	} else if (!strcmp(op, "file_kind")) {
		enum kf_file_kind k;
		off_t size;

		s = arg_str(a, "path");
		(void)kf_os_file_kind(o, s, &k, &size);
	} else if (!strcmp(op, "realpath")) {
		s = arg_str(a, "path");
		if (kf_os_realpath(o, s, &buf) < 0)
			buf = NULL;
	} else if (!strcmp(op, "read_dir")) {
		s = arg_str(a, "path");
		if (kf_os_read_dir(o, s, &names, &n) == 0)
			kf_names_free(names, n);
	} else if (!strcmp(op, "getenv")) {
		s = arg_str(a, "name");
		(void)kf_os_getenv(o, s);
	} else if (!strcmp(op, "http_get")) {
		char **headers = json_is_array(json_object_get(a, "headers"))
			? arg_strv(json_object_get(a, "headers")) : NULL;
		long status;

		s = arg_str(a, "url");
		if (kf_os_http_get(o, s, (const char *const *)headers, arg_int(a, "timeout_ms"),
				   &buf, &status) < 0) {
			free(buf);
			buf = NULL;
		}
		kf_argv_free(headers);
	} else if (!strcmp(op, "read_line")) {
		if (kf_os_read_line(o, &buf) <= 0)
			buf = NULL;
	} else if (!strcmp(op, "write")) {
		size_t shown;
		char *data = arg_str(a, "data");

		(void)kf_replayer_write(rp, arg_int(a, "fd"), data, strlen(data), &shown);
		free(data);
	} else if (!strcmp(op, "now")) {
		(void)kf_os_now(o);
	} else if (!strcmp(op, "realtime")) {
		(void)kf_os_realtime(o);
	} else if (!strcmp(op, "sleep_until")) {
		(void)kf_os_sleep_until(o, json_integer_value(json_object_get(a, "deadline")));
	} else if (!strcmp(op, "take_signal")) {
		(void)kf_os_take_signal(o);
	} else if (!strcmp(op, "uid")) {
		(void)kf_os_uid(o);
	} else if (!strcmp(op, "cpu_count")) {
		(void)kf_os_cpu_count(o);
	} else if (!strcmp(op, "isatty")) {
		(void)kf_os_isatty(o, arg_int(a, "fd"));
	} else if (!strcmp(op, "term_width")) {
		(void)kf_os_term_width(o, arg_int(a, "fd"));
	}
	free(s);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t info = nul ? (size_t)(nul - data) : size, i;
	struct fake_world w;
	struct kf_session s;
	struct kf_error err = { 0 };
	struct kf_replayer *rp;
	struct kf_monitor *mon = NULL;
	char *report = NULL;

	fake_world_init(&w);
	put_mem(&w, DIR "/session.json", data, info);
	if (nul)
		put_mem(&w, DIR "/calls.jsonl", nul + 1, size - info - 1);
	if (kf_session_load(&w.ops, DIR, &s, &err) < 0) {
		fuzz_assert(err.what && strstr(err.what, DIR));
		fuzz_error_done(&err);
		fake_world_release(&w);
		return 0;
	}
	fuzz_error_done(&err);
	fuzz_assert(s.info != NULL);
	for (i = 0; i < s.n_calls; i++)
		fuzz_assert(s.calls[i]);

	rp = kf_replayer_new(&s);
	for (i = 0; i < s.n_calls && i < MAX_CALLS; i++)
		call(rp, kf_replayer_ops(rp), s.calls[i], &mon);
	(void)kf_replayer_end(rp, &report);
	free(report);
	kf_replayer_free(rp);
	kf_session_release(&s);
	fake_world_release(&w);
	return 0;
}
