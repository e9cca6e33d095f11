/* replay.c - a recorded session read back, and an ops table that answers
 * every call from it (see session.h, doc/sessions.md). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "kflash/session.h"
#include "kflash/util.h"

/* ---- loading ------------------------------------------------------------- */

static int bad(struct kf_error *err, const char *file, size_t line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bad(struct kf_error *err, const char *file, size_t line, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = kf_vasprintf(fmt, ap);
	va_end(ap);
	if (line)
		kf_error_set(err, KF_EINPUT, "%s:%zu: %s", file, line, msg);
	else
		kf_error_set(err, KF_EINPUT, "%s: %s", file, msg);
	kf_error_cause(err, "this is not a session kflash %s can replay (format %d)",
		       "of this version", KF_SESSION_FORMAT);
	kf_error_step(err, "replay the session as kflash wrote it, or record it again");
	free(msg);
	return KF_EINPUT;
}

/* reads a regular file of at most max bytes */
static int read_limited(const struct kf_ops *o, const char *path, long max, char **buf,
			size_t *len, struct kf_error *err)
{
	off_t size = 0;
	int r = kf_read_regular(o, path, max, buf, len, &size);

	if (r == -ENOENT)
		return bad(err, path, 0, "is missing");
	if (r == -EINVAL)
		return bad(err, path, 0, "is not a regular file");
	if (r == -EFBIG)
		return bad(err, path, 0, "is %lld bytes, more than a session holds (%ld)",
			   (long long)size, max);
	if (r < 0) {
		bad(err, path, 0, "cannot be read: %s", strerror(-r));
		kf_error_errno(err, r);
		return KF_EINPUT;
	}
	return 0;
}

static const char *const known_ops[] = {
	"enumerate", "enumerate_net", "monitor_open", "monitor_next", "monitor_close",
	"spawn", "wait", "kill_group", "in_group", "observe", "feed", "ready", "attach", "read_file",
	"write_atomic", "append", "unlink", "remove_tree", "tidy", "read_dir", "mkdir_p",
	"file_kind", "realpath", "lock", "unlock", "now", "realtime", "sleep_until",
	"take_signal", "http_get", "getenv", "uid", "user_name", "cpu_count", "isatty", "term_width",
	"read_line",
	"write", NULL,
};

static bool op_known(const char *op)
{
	size_t i;

	for (i = 0; known_ops[i]; i++)
		if (strcmp(op, known_ops[i]) == 0)
			return true;
	return false;
}

static int load_info(const struct kf_ops *o, struct kf_session *s, struct kf_error *err)
{
	char *path = kf_asprintf("%s/session.json", s->dir), *text = NULL;
	json_error_t je;
	json_t *v;
	size_t len = 0, i;
	int r;

	r = read_limited(o, path, 1L << 20, &text, &len, err);
	if (r < 0)
		goto out;
	s->info = json_loadb(text, len, 0, &je);
	if (!s->info) {
		r = bad(err, path, (size_t)je.line, "%s", je.text);
		goto out;
	}
	v = json_object_get(s->info, "format");
	if (!json_is_integer(v)) {
		r = bad(err, path, 0, "has no \"format\"");
		goto out;
	}
	if (json_integer_value(v) != KF_SESSION_FORMAT) {
		r = bad(err, path, 0, "is a session of format %lld; this kflash reads "
			"format %d", (long long)json_integer_value(v), KF_SESSION_FORMAT);
		goto out;
	}
	v = json_object_get(s->info, "command");
	if (!json_is_array(v) || json_array_size(v) == 0) {
		r = bad(err, path, 0, "\"command\" is not a command line");
		goto out;
	}
	for (i = 0; i < json_array_size(v); i++)
		if (!json_is_string(json_array_get(v, i))) {
			r = bad(err, path, 0, "\"command\" holds something that is not a "
				"string");
			goto out;
		}
	v = json_object_get(s->info, "home_length");
	if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < 4096)
		s->home_length = (size_t)json_integer_value(v);
	v = json_object_get(s->info, "exit");
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < 256)
		s->exit_code = (int)json_integer_value(v);
	else if (!v || json_is_null(v))
		s->exit_code = -1;
	else
		r = bad(err, path, 0, "\"exit\" is not an exit code");
out:
	free(text);
	free(path);
	return r;
}

static int load_calls(const struct kf_ops *o, struct kf_session *s, struct kf_error *err)
{
	char *path = kf_asprintf("%s/calls.jsonl", s->dir), *text = NULL, *p, *end;
	size_t len = 0, line = 0, cap = 0;
	int r;

	r = read_limited(o, path, KF_SESSION_MAX_BYTES, &text, &len, err);
	if (r < 0)
		goto out;
	for (p = text; p < text + len; p = end + 1) {
		json_error_t je;
		json_t *c, *n;
		long k;

		line++;
		end = memchr(p, '\n', (size_t)(text + len - p));
		if (!end) {
			r = bad(err, path, line, "the line is cut short (no newline)");
			goto out;
		}
		c = json_loadb(p, (size_t)(end - p), 0, &je);
		if (!c) {
			r = bad(err, path, line, "not JSON: %s", je.text);
			goto out;
		}
		if (line == 1) {
			json_t *h = json_object_get(c, "kflash-session");

			r = !json_is_integer(h) ? bad(err, path, line, "not a kflash session "
				"(no {\"kflash-session\": N} header)")
			    : json_integer_value(h) != KF_SESSION_FORMAT ? bad(err, path, line,
				"a session of format %lld; this kflash reads format %d",
				(long long)json_integer_value(h), KF_SESSION_FORMAT) : 0;
			json_decref(c);
			if (r < 0)
				goto out;
			continue;
		}
		n = json_object_get(c, "n");
		k = json_is_integer(n) ? (long)json_integer_value(n) : 0;
		if (k < 1 || k > (long)len ||
		    !json_is_string(json_object_get(c, "op")) ||
		    !op_known(json_string_value(json_object_get(c, "op"))) ||
		    !json_is_object(json_object_get(c, "args")) ||
		    !json_is_object(json_object_get(c, "ret"))) {
			json_decref(c);
			r = bad(err, path, line, "not a call: it needs \"n\" (1 or more), a "
				"known \"op\", \"args\" and \"ret\" objects");
			goto out;
		}
		if ((size_t)k > cap) {
			size_t old = cap;

			cap = (size_t)k * 2;
			s->calls = kf_xrealloc(s->calls, cap * sizeof(*s->calls));
			memset(s->calls + old, 0, (cap - old) * sizeof(*s->calls));
		}
		if (s->calls[k - 1]) {
			json_decref(c);
			r = bad(err, path, line, "call %ld appears twice", k);
			goto out;
		}
		s->calls[k - 1] = c;
		if ((size_t)k > s->n_calls)
			s->n_calls = (size_t)k;
	}
	if (line == 0) {
		r = bad(err, path, 0, "is empty");
		goto out;
	}
	for (len = 0; len < s->n_calls; len++)
		if (!s->calls[len]) {
			r = bad(err, path, 0, "call %zu is missing", len + 1);
			goto out;
		}
out:
	free(text);
	free(path);
	return r;
}

int kf_session_load(const struct kf_ops *o, const char *dir, struct kf_session *ret,
		    struct kf_error *err)
{
	enum kf_file_kind k;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->dir = kf_xstrdup(dir);
	r = kf_os_file_kind(o, dir, &k, NULL);
	if (r < 0 || k != KF_FILE_DIR) {
		bad(err, dir, 0, r < 0 ? "cannot be read" : "is not a session directory");
		if (r < 0)
			kf_error_errno(err, r);
		kf_error_step(err, KF_CMD("ls ~/.local/state/kflash/sessions"));
		kf_session_release(ret);
		return KF_EINPUT;
	}
	r = load_info(o, ret, err);
	if (r == 0)
		r = load_calls(o, ret, err);
	if (r < 0)
		kf_session_release(ret);
	return r;
}

void kf_session_release(struct kf_session *s)
{
	size_t i;

	for (i = 0; i < s->n_calls; i++)
		json_decref(s->calls[i]);
	free(s->calls);
	json_decref(s->info);
	free(s->dir);
	memset(s, 0, sizeof(*s));
}

/* ---- the replaying table -------------------------------------------------- */

#define RP(ctx) ((struct kf_replayer *)(ctx))

struct kf_replayer {
	struct kf_ops ops;
	const struct kf_session *s;
	size_t next;			/* index of the call kflash must make next */
	size_t out_off;			/* bytes of calls[next] (a write) already seen */
	bool diverged, signalled;
	char *report;
	kf_child_fn *obs_fn;
	void *obs_data;
	int64_t clock;			/* the last time answered */
	char **kept;			/* strings handed out that must live on */
	size_t n_kept;
	char **mons;			/* monitor handles: mons[id - 1] */
	size_t n_mons;
	size_t decisive;		/* the last call whose answer kflash reads */
	char *home;			/* stands in for the recorded HOME, or NULL */
	struct kf_buf shown;		/* what the last write put on the screen */
};

/* Calls whose answer can send kflash another way; writes, kills, the
 * clock and an empty signal check only say "done". */
static bool decisive(const char *op, const json_t *ret)
{
	static const char *const quiet[] = {
		"write", "feed", "kill_group", "unlock", "observe", "now", "realtime",
		"append", "mkdir_p", "unlink", "remove_tree", "tidy", "monitor_close",
		NULL,
	};
	size_t i;

	if (strcmp(op, "take_signal") == 0)
		return json_integer_value(json_object_get(ret, "sig")) != 0;
	for (i = 0; quiet[i]; i++)
		if (strcmp(op, quiet[i]) == 0)
			return json_integer_value(json_object_get(ret, "r")) < 0;
	return true;
}

static const char *kept(struct kf_replayer *rp, char *s)
{
	rp->kept = kf_xrealloc(rp->kept, (rp->n_kept + 1) * sizeof(*rp->kept));
	rp->kept[rp->n_kept++] = s;
	return s;
}

static char *short_json(const json_t *v, size_t max)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);

	if (s && strlen(s) > max)
		strcpy(s + max - 3, "...");
	return s ? s : kf_xstrdup("?");
}

static void diverge(struct kf_replayer *rp, const char *why, const char *op, json_t *args)
{
	struct kf_buf b = KF_BUF_INIT;
	size_t i, from, to;
	char *a;

	if (rp->diverged)
		return;
	rp->diverged = true;
	kf_buf_addf(&b, "the replay diverged at call %zu of %zu: %s\n", rp->next + 1,
		    rp->s->n_calls, why);
	if (op) {
		a = short_json(args, 300);
		kf_buf_addf(&b, "  kflash made:   %s %s\n", op, a);
		free(a);
	}
	if (rp->next < rp->s->n_calls) {
		a = short_json(rp->s->calls[rp->next], 300);
		kf_buf_addf(&b, "  the recording: %s\n", a);
		free(a);
	} else {
		kf_buf_addf(&b, "  the recording: ends here%s\n", rp->s->exit_code < 0 ?
			    " (kflash was killed or the file was cut)" : "");
	}
	kf_buf_addf(&b, "recorded calls around it (%s/calls.jsonl):\n", rp->s->dir);
	from = rp->next > 4 ? rp->next - 4 : 0;
	to = rp->next + 3 < rp->s->n_calls ? rp->next + 3 : rp->s->n_calls;
	for (i = from; i < to; i++) {
		a = short_json(rp->s->calls[i], 160);
		kf_buf_addf(&b, "%s %s\n", i == rp->next ? ">" : " ", a);
		free(a);
	}
	if (rp->decisive)
		kf_buf_addf(&b, "call %zu (%s) is the last answer kflash acted on before it "
			    "went its own way\n", rp->decisive, json_string_value(
			    json_object_get(rp->s->calls[rp->decisive - 1], "op")));
	rp->report = b.data;
}

/* The recorded answer to this call, or NULL when it diverges (args are
 * taken). */
static const json_t *expect(struct kf_replayer *rp, const char *op, json_t *args)
{
	const json_t *c;

	if (rp->diverged) {
		json_decref(args);
		return NULL;
	}
	if (rp->next >= rp->s->n_calls) {
		diverge(rp, "kflash made a call the recording lacks", op, args);
		json_decref(args);
		return NULL;
	}
	c = rp->s->calls[rp->next];
	if (rp->out_off) {
		diverge(rp, "kflash printed less than the recording", op, args);
	} else if (strcmp(json_string_value(json_object_get(c, "op")), op) != 0) {
		diverge(rp, "kflash made another call", op, args);
	} else if (!json_equal(json_object_get(c, "args"), args)) {
		diverge(rp, "the same call with other arguments", op, args);
	}
	json_decref(args);
	if (rp->diverged)
		return NULL;
	rp->next++;
	if (decisive(op, json_object_get(c, "ret")))
		rp->decisive = rp->next;
	return json_object_get(c, "ret");
}

static int ret_int(const json_t *ret, const char *key)
{
	return (int)json_integer_value(json_object_get(ret, key));
}

/* the recorded return value, or -ECANCELED after a divergence */
static int answer(const json_t *ret)
{
	return ret ? ret_int(ret, "r") : -ECANCELED;
}

/* a recorded answer kflash cannot use: the file was edited */
static int malformed(struct kf_replayer *rp, const char *what)
{
	rp->next--;
	diverge(rp, what, NULL, NULL);
	return -ECANCELED;
}

static void tell(struct kf_replayer *rp, const json_t *ret)
{
	const json_t *obs = json_object_get(ret, "observed");
	size_t i;

	for (i = 0; i < json_array_size(obs); i++) {
		const json_t *e = json_array_get(obs, i);

		if (rp->obs_fn && !rp->diverged)
			rp->obs_fn(rp->obs_data, (pid_t)json_integer_value(json_array_get(e, 0)),
				   json_is_true(json_array_get(e, 1)));
	}
}

/* an argument as the recorder wrote it: the stand-in home is "~" */
static json_t *S(void *c, const char *s)
{
	return kf_sj_str(RP(c)->home, s);
}

/* a recorded answer back as kflash saw it: "~" is the stand-in home */
static char *get(void *c, const json_t *v, size_t *ret_len, bool *ok)
{
	size_t len = 0;
	char *raw = kf_sj_get_mem(v, &len, ok), *out;

	if (!raw || !json_is_string(v)) {
		if (ret_len)
			*ret_len = len;
		return raw;
	}
	out = kf_sj_expand(RP(c)->home, raw, len, ret_len);
	free(raw);
	return out;
}

static int rp_devs(void *c, const char *op, struct kf_ttydev **ret_devs, size_t *ret_n)
{
	const json_t *ret = expect(RP(c), op, json_object()), *devs;
	struct kf_ttydev *d;
	size_t i, n;
	int r;

	r = answer(ret);
	if (r < 0)
		return r;
	devs = json_object_get(ret, "devs");
	n = json_array_size(devs);
	d = kf_xcalloc(n ? n : 1, sizeof(*d));
	for (i = 0; i < n; i++)
		if (kf_sj_get_dev(json_array_get(devs, i), &d[i]) < 0) {
			kf_ttydevs_free(d, i);
			return malformed(RP(c), "the recorded device list is malformed");
		}
	*ret_devs = d;
	*ret_n = n;
	return r;
}

static int rp_enumerate(void *c, struct kf_ttydev **ret_devs, size_t *ret_n)
{
	return rp_devs(c, "enumerate", ret_devs, ret_n);
}

static int rp_enumerate_net(void *c, struct kf_ttydev **ret_devs, size_t *ret_n)
{
	return rp_devs(c, "enumerate_net", ret_devs, ret_n);
}

static int mon_id(struct kf_replayer *rp, struct kf_monitor *m)
{
	size_t i;

	for (i = 0; m && i < rp->n_mons; i++)
		if ((void *)rp->mons[i] == (void *)m)
			return (int)i + 1;
	return 0;
}

static int rp_monitor_open(void *c, struct kf_monitor **m)
{
	struct kf_replayer *rp = RP(c);
	const json_t *ret = expect(rp, "monitor_open", json_object());
	int r;

	if (!ret)
		return -ECANCELED;
	r = ret_int(ret, "r");
	*m = NULL;
	if (r >= 0 && ret_int(ret, "mon") > 0) {
		rp->mons = kf_xrealloc(rp->mons, (rp->n_mons + 1) * sizeof(*rp->mons));
		rp->mons[rp->n_mons++] = kf_xmalloc(1);
		*m = (struct kf_monitor *)(void *)rp->mons[rp->n_mons - 1];
	}
	return r;
}

static int rp_monitor_next(void *c, struct kf_monitor *m, int64_t deadline,
			   struct kf_uevent *ev)
{
	struct kf_replayer *rp = RP(c);
	const json_t *ret = expect(rp, "monitor_next", json_pack("{s:i, s:I}",
		"mon", mon_id(rp, m), "deadline", (json_int_t)deadline));
	int r;

	if (!ret)
		return -ECANCELED;
	r = ret_int(ret, "r");
	if (r == 1 && kf_sj_get_uevent(json_object_get(ret, "ev"), ev) < 0)
		return malformed(rp, "the recorded uevent is malformed");
	return r;
}

static void rp_monitor_close(void *c, struct kf_monitor *m)
{
	(void)expect(RP(c), "monitor_close", json_pack("{s:i}", "mon", mon_id(RP(c), m)));
}

static int rp_spawn(void *c, const struct kf_spawn_req *q, struct kf_proc *p)
{
	struct kf_replayer *rp = RP(c);
	const json_t *ret = expect(rp, "spawn", kf_sj_spawn_args(rp->home, q));
	int r;

	memset(p, 0, sizeof(*p));
	p->out_fd = p->in_fd = -1;
	if (!ret)
		return -ECANCELED;
	r = ret_int(ret, "r");
	if (r >= 0)
		p->pid = (pid_t)ret_int(ret, "pid");
	tell(rp, ret);
	return r;
}

static int rp_wait(void *c, struct kf_proc *p, int64_t deadline, kf_line_fn *fn,
		   void *data, struct kf_exit *e)
{
	struct kf_replayer *rp = RP(c);
	const json_t *ret = expect(rp, "wait", json_pack("{s:i, s:I}", "pid", (int)p->pid,
		"deadline", (json_int_t)deadline)), *lines;
	size_t i;
	int r;

	memset(e, 0, sizeof(*e));
	if (!ret)
		return -ECANCELED;
	r = ret_int(ret, "r");
	if (r >= 0 && kf_sj_get_exit(json_object_get(ret, "exit"), e) < 0)
		return malformed(rp, "the recorded exit is malformed");
	lines = json_object_get(ret, "lines");
	for (i = 0; i < json_array_size(lines) && !rp->diverged; i++) {
		size_t len;
		bool ok;
		char *l = get(c, json_array_get(lines, i), &len, &ok);

		if (ok && l && fn)
			fn(data, l, len);
		free(l);
	}
	tell(rp, ret);
	return rp->diverged ? -ECANCELED : r;
}

static int rp_kill_group(void *c, struct kf_proc *p, int sig)
{
	const json_t *ret = expect(RP(c), "kill_group", json_pack("{s:i, s:i}",
		"pid", (int)p->pid, "sig", sig));

	return answer(ret);
}

static int rp_in_group(void *c, const char *g)
{
	const json_t *ret = expect(RP(c), "in_group", json_pack("{s:o}", "group", S(c, g)));

	return answer(ret);
}

static void rp_observe(void *c, kf_child_fn *fn, void *data)
{
	struct kf_replayer *rp = RP(c);

	rp->obs_fn = fn;
	rp->obs_data = data;
	(void)expect(rp, "observe", json_pack("{s:b}", "on", fn != NULL));
}

static int rp_feed(void *c, struct kf_proc *p, const void *buf, size_t len)
{
	const json_t *ret = expect(RP(c), "feed", json_pack("{s:i, s:o}", "pid", (int)p->pid,
		"data", kf_sj_mem(RP(c)->home, buf, len)));

	return answer(ret);
}

static int rp_ready(void *c)
{
	const json_t *ret = expect(RP(c), "ready", json_object());

	return answer(ret);
}

static int rp_attach(void *c, pid_t pid, struct kf_proc *p)
{
	const json_t *ret = expect(RP(c), "attach", json_pack("{s:i}", "pid", (int)pid));

	memset(p, 0, sizeof(*p));
	p->out_fd = p->in_fd = -1;
	p->pid = pid;
	return answer(ret);
}

static int rp_read_file(void *c, const char *path, char **buf, size_t *len)
{
	const json_t *ret = expect(RP(c), "read_file", json_pack("{s:o}", "path", S(c, path)));
	size_t n = 0;
	bool ok;
	int r;

	r = answer(ret);
	if (r < 0)
		return r;
	*buf = get(c, json_object_get(ret, "data"), &n, &ok);
	if (!ok || !*buf)
		return malformed(RP(c), "the recorded file content is malformed");
	if (len)
		*len = n;
	return r;
}

static int rp_write_atomic(void *c, const char *path, const void *buf, size_t len,
			   mode_t mode)
{
	const json_t *ret = expect(RP(c), "write_atomic", json_pack("{s:o, s:o, s:o}",
		"path", S(c, path), "data", kf_sj_mem(RP(c)->home, buf, len), "mode", kf_sj_mode(mode)));

	return answer(ret);
}

static int rp_append(void *c, const char *path, const void *buf, size_t len)
{
	const json_t *ret = expect(RP(c), "append", json_pack("{s:o, s:o}",
		"path", S(c, path), "data", kf_sj_mem(RP(c)->home, buf, len)));

	return answer(ret);
}

static int path_call(void *c, const char *op, const char *path)
{
	const json_t *ret = expect(RP(c), op, json_pack("{s:o}", "path", S(c, path)));

	return answer(ret);
}

static int rp_unlink(void *c, const char *path)
{
	return path_call(c, "unlink", path);
}

static int rp_remove_tree(void *c, const char *path)
{
	return path_call(c, "remove_tree", path);
}

static int rp_tidy(void *c, const char *dir)
{
	return path_call(c, "tidy", dir);
}

static int rp_read_dir(void *c, const char *path, char ***names, size_t *n)
{
	const json_t *ret = expect(RP(c), "read_dir", json_pack("{s:o}", "path", S(c, path)));
	const json_t *a;
	size_t i;
	int r;

	r = answer(ret);
	if (r < 0)
		return r;
	a = json_object_get(ret, "names");
	*n = json_array_size(a);
	*names = kf_xcalloc(*n ? *n : 1, sizeof(**names));
	for (i = 0; i < *n; i++) {
		const char *s = json_string_value(json_array_get(a, i));

		(*names)[i] = kf_xstrdup(s ? s : "");
	}
	return r;
}

static int rp_mkdir_p(void *c, const char *path, mode_t mode)
{
	const json_t *ret = expect(RP(c), "mkdir_p", json_pack("{s:o, s:o}",
		"path", S(c, path), "mode", kf_sj_mode(mode)));

	return answer(ret);
}

static int rp_file_kind(void *c, const char *path, enum kf_file_kind *k, off_t *size)
{
	const json_t *ret = expect(RP(c), "file_kind", json_pack("{s:o}", "path", S(c, path)));
	int r;

	r = answer(ret);
	if (r < 0)
		return r;
	if (kf_sj_get_kind(json_string_value(json_object_get(ret, "kind")), k) < 0)
		return malformed(RP(c), "the recorded file kind is malformed");
	if (size)
		*size = (off_t)json_integer_value(json_object_get(ret, "size"));
	return r;
}

static int rp_realpath(void *c, const char *path, char **out)
{
	const json_t *ret = expect(RP(c), "realpath", json_pack("{s:o}", "path", S(c, path)));
	bool ok;
	int r;

	r = answer(ret);
	if (r < 0)
		return r;
	*out = get(c, json_object_get(ret, "path"), NULL, &ok);
	if (!ok || !*out)
		return malformed(RP(c), "the recorded path is malformed");
	return r;
}

static int rp_lock(void *c, const char *path, int *fd, pid_t *holder, uid_t *owner)
{
	const json_t *ret = expect(RP(c), "lock", json_pack("{s:o}", "path", S(c, path)));
	const json_t *o;

	*holder = 0;
	*owner = (uid_t)-1;
	if (!ret)
		return -ECANCELED;
	*fd = ret_int(ret, "fd");
	*holder = (pid_t)ret_int(ret, "holder");
	/* a session recorded before the owner was: not known */
	o = json_object_get(ret, "owner");
	if (json_is_integer(o))
		*owner = (uid_t)json_integer_value(o);
	return ret_int(ret, "r");
}

static void rp_unlock(void *c, int fd)
{
	(void)expect(RP(c), "unlock", json_pack("{s:i}", "fd", fd));
}

/* After a divergence the clock runs a second a call, so every wait for a
 * deadline ends. */
static int64_t clock_call(void *c, const char *op)
{
	struct kf_replayer *rp = RP(c);
	const json_t *ret = expect(rp, op, json_object());

	if (!ret)
		return rp->clock += 1000;
	if (strcmp(op, "now") == 0)
		rp->clock = json_integer_value(json_object_get(ret, "t"));
	return json_integer_value(json_object_get(ret, "t"));
}

static int64_t rp_now(void *c)
{
	return clock_call(c, "now");
}

static int64_t rp_realtime(void *c)
{
	return clock_call(c, "realtime");
}

static int rp_sleep_until(void *c, int64_t deadline)
{
	const json_t *ret = expect(RP(c), "sleep_until", json_pack("{s:I}",
		"deadline", (json_int_t)deadline));

	return answer(ret);
}

/* after a divergence: one SIGTERM, so the run winds down */
static int rp_take_signal(void *c)
{
	struct kf_replayer *rp = RP(c);
	const json_t *ret = expect(rp, "take_signal", json_object());

	if (ret)
		return ret_int(ret, "sig");
	if (rp->signalled)
		return 0;
	rp->signalled = true;
	return SIGTERM;
}

static int rp_http_get(void *c, const char *url, const char *const *headers, int t,
		       char **body, long *status)
{
	const json_t *ret = expect(RP(c), "http_get", kf_sj_http_args(RP(c)->home, url, headers, t));
	bool ok;

	*body = NULL;
	*status = 0;
	if (!ret)
		return -ECANCELED;
	*status = (long)json_integer_value(json_object_get(ret, "status"));
	*body = get(c, json_object_get(ret, "body"), NULL, &ok);
	if (!ok)
		return malformed(RP(c), "the recorded HTTP body is malformed");
	return ret_int(ret, "r");
}

static const char *rp_getenv(void *c, const char *name)
{
	const json_t *ret = expect(RP(c), "getenv", json_pack("{s:s}", "name", name));
	bool ok;
	char *v;

	if (!ret)
		return NULL;
	v = get(c, json_object_get(ret, "value"), NULL, &ok);
	return v ? kept(RP(c), v) : NULL;
}

static uid_t rp_uid(void *c)
{
	const json_t *ret = expect(RP(c), "uid", json_object());

	return ret ? (uid_t)json_integer_value(json_object_get(ret, "uid")) : (uid_t)-1;
}

static int rp_user_name(void *c, uid_t uid, char **name)
{
	const json_t *ret = expect(RP(c), "user_name", json_pack("{s:I}", "uid",
							       (json_int_t)uid));
	bool ok;
	int r;

	*name = NULL;
	if (!ret)
		return -ECANCELED;
	r = ret_int(ret, "r");
	if (r == 0) {
		*name = get(c, json_object_get(ret, "name"), NULL, &ok);
		if (!ok || !*name)
			return malformed(RP(c), "the recorded user name is malformed");
	}
	return r;
}

static int rp_cpu_count(void *c)
{
	const json_t *ret = expect(RP(c), "cpu_count", json_object());

	return ret ? ret_int(ret, "r") : 1;
}

static int rp_isatty(void *c, int fd)
{
	const json_t *ret = expect(RP(c), "isatty", json_pack("{s:i}", "fd", fd));

	return ret ? ret_int(ret, "r") : 0;
}

/* A session recorded before term_width was in the table has no such call
 * (it wrapped at 80 then): the answer is 0, "not known", and the call is
 * not taken from the recording. */
static int rp_term_width(void *c, int fd)
{
	struct kf_replayer *rp = RP(c);
	const json_t *next = !rp->diverged && !rp->out_off && rp->next < rp->s->n_calls ?
			     rp->s->calls[rp->next] : NULL;
	const json_t *ret;

	if (next && strcmp(json_string_value(json_object_get(next, "op")), "term_width") != 0)
		return 0;
	ret = expect(rp, "term_width", json_pack("{s:i}", "fd", fd));
	return ret ? ret_int(ret, "r") : 0;
}

static int rp_read_line(void *c, char **line)
{
	const json_t *ret = expect(RP(c), "read_line", json_object());
	bool ok;
	int r;

	if (!ret)
		return -ECANCELED;
	r = ret_int(ret, "r");
	if (r == 1) {
		*line = get(c, json_object_get(ret, "line"), NULL, &ok);
		if (!ok || !*line)
			return malformed(RP(c), "the recorded line is malformed");
	}
	return r;
}

static const struct kf_ops replaying_ops = {
	.version = KF_OPS_VERSION,
	.name = "replay",
	.enumerate = rp_enumerate,
	.enumerate_net = rp_enumerate_net,
	.monitor_open = rp_monitor_open,
	.monitor_next = rp_monitor_next,
	.monitor_close = rp_monitor_close,
	.spawn = rp_spawn,
	.wait = rp_wait,
	.kill_group = rp_kill_group,
	.in_group = rp_in_group,
	.observe = rp_observe,
	.feed = rp_feed,
	.ready = rp_ready,
	.attach = rp_attach,
	.read_file = rp_read_file,
	.write_atomic = rp_write_atomic,
	.append = rp_append,
	.unlink = rp_unlink,
	.remove_tree = rp_remove_tree,
	.tidy = rp_tidy,
	.read_dir = rp_read_dir,
	.mkdir_p = rp_mkdir_p,
	.file_kind = rp_file_kind,
	.realpath = rp_realpath,
	.lock = rp_lock,
	.unlock = rp_unlock,
	.now = rp_now,
	.realtime = rp_realtime,
	.sleep_until = rp_sleep_until,
	.take_signal = rp_take_signal,
	.http_get = rp_http_get,
	.getenv = rp_getenv,
	.uid = rp_uid,
	.user_name = rp_user_name,
	.cpu_count = rp_cpu_count,
	.isatty = rp_isatty,
	.term_width = rp_term_width,
	.read_line = rp_read_line,
};

struct kf_replayer *kf_replayer_new(const struct kf_session *s)
{
	struct kf_replayer *rp = kf_xcalloc(1, sizeof(*rp));

	rp->ops = replaying_ops;
	rp->ops.ctx = rp;
	rp->s = s;
	/* as long as the home it was recorded in, so that output wraps and
	 * quotes as it did there; of characters that need no quoting */
	if (s->home_length > 1) {
		rp->home = kf_xmalloc(s->home_length + 1);
		memset(rp->home, 'h', s->home_length);
		rp->home[0] = '/';
		rp->home[s->home_length] = '\0';
	}
	return rp;
}

const struct kf_ops *kf_replayer_ops(struct kf_replayer *rp)
{
	return &rp->ops;
}

/* A run of recorded output is one call; kflash may print it in pieces.
 * What reaches the screen is the output with "~" for the stand-in home,
 * as it stands in the recording. */
const char *kf_replayer_write(void *data, int fd, const char *buf, size_t len,
			      size_t *ret_len)
{
	struct kf_replayer *rp = data;
	char *raw = kf_xstrndup(buf, len), *text = kf_sj_shorten(rp->home, raw);
	const char *p = text;
	size_t left = strlen(text);

	free(raw);
	while (left && !rp->diverged) {
		const json_t *c, *args;
		json_t *actual = json_pack("{s:i, s:s}", "fd", fd, "data", p);
		size_t want_len = 0;
		bool ok = false;
		char *want = NULL;

		if (rp->next >= rp->s->n_calls) {
			diverge(rp, "kflash printed more than the recording", "write", actual);
			json_decref(actual);
			break;
		}
		c = rp->s->calls[rp->next];
		args = json_object_get(c, "args");
		if (strcmp(json_string_value(json_object_get(c, "op")), "write") == 0)
			want = kf_sj_get_mem(json_object_get(args, "data"), &want_len, &ok);
		if (!want || !ok || json_integer_value(json_object_get(args, "fd")) != fd) {
			diverge(rp, rp->out_off ? "kflash printed more than the recording"
				: "kflash printed where the recording made a call", "write", actual);
		} else {
			/* what it prints now must go on where the recording is */
			size_t n = want_len - rp->out_off < left ? want_len - rp->out_off : left;

			if (memcmp(want + rp->out_off, p, n) != 0) {
				diverge(rp, "kflash printed something else", "write", actual);
			} else {
				rp->out_off += n;
				p += n;
				left -= n;
				if (rp->out_off == want_len) {
					rp->out_off = 0;
					rp->next++;
				}
			}
		}
		free(want);
		json_decref(actual);
	}
	rp->shown.len = 0;
	kf_buf_add(&rp->shown, text, strlen(text));
	free(text);
	*ret_len = rp->shown.len;
	return rp->diverged ? NULL : rp->shown.data;
}

bool kf_replayer_end(struct kf_replayer *rp, char **ret_report)
{
	if (!rp->diverged && rp->out_off)
		diverge(rp, "kflash printed less than the recording", NULL, NULL);
	if (!rp->diverged && rp->next < rp->s->n_calls)
		diverge(rp, "kflash finished, and the recording has calls left over",
			NULL, NULL);
	*ret_report = rp->diverged ? kf_xstrdup(rp->report) : NULL;
	return rp->diverged;
}

void kf_replayer_free(struct kf_replayer *rp)
{
	size_t i;

	if (!rp)
		return;
	for (i = 0; i < rp->n_kept; i++)
		free(rp->kept[i]);
	for (i = 0; i < rp->n_mons; i++)
		free(rp->mons[i]);
	free(rp->kept);
	free(rp->mons);
	free(rp->report);
	free(rp->home);
	kf_buf_release(&rp->shown);
	free(rp);
}
