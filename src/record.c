/* record.c - the flight recorder: an ops table that passes every call on
 * and writes it down (see session.h, doc/sessions.md). */
#include <errno.h>
#include <string.h>

#include "kflash/output.h"
#include "kflash/registry.h"
#include "kflash/session.h"
#include "kflash/util.h"

#define R(ctx) ((struct kf_recorder *)(ctx))
#define IN(ctx) (R(ctx)->in)

struct rec_proc {
	pid_t pid;
	bool omit;		/* sudo -l: what it prints stays private */
};

struct kf_recorder {
	struct kf_ops ops;		/* the recording table; ctx is this */
	const struct kf_ops *in;
	struct kf_out *out;
	char *home;
	char *dir, *calls_path;
	struct kf_buf pending;		/* lines recorded before open */
	bool writing, broken;
	long next_n;
	json_t *info;			/* session.json */
	/* the observer kflash installed, and the call whose ret hears what
	 * it was told (spawn and wait tell it of forks and reaps) */
	kf_child_fn *obs_fn;
	void *obs_data;
	json_t *obs_sink;
	struct kf_monitor **mons;
	size_t n_mons;
	struct rec_proc *procs;
	size_t n_procs;
	/* kflash's output, gathered while nothing else is called: one line
	 * per run of writes to one stream */
	struct kf_buf out_buf;
	int out_fd;
	long out_n;
	/* the devices of the last enumerate, as JSON: what a board note
	 * describes */
	json_t *seen;
	json_t *boards;			/* what each board note said, by key */
};

/* ---- writing lines --------------------------------------------------------- */

static void stop_recording(struct kf_recorder *r, int e, const char *what)
{
	if (r->broken)
		return;
	r->broken = true;
	if (r->out)
		kf_out_warn(r->out, "not recording this session any further: cannot "
			    "write %s: %s; the run goes on", what, strerror(-e));
}

/* Lines are written in batches: before every call that can block (so a
 * kflash killed while it waits leaves every call up to that one on disk),
 * and at the end. */
static void flush_lines(struct kf_recorder *r)
{
	int e;

	if (!r->writing || r->broken || !r->pending.len)
		return;
	e = kf_os_append(r->in, r->calls_path, r->pending.data, r->pending.len);
	if (e < 0)
		stop_recording(r, e, r->calls_path);
	r->pending.len = 0;
}

static void put_line(struct kf_recorder *r, json_t *line)
{
	char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	size_t len = strlen(s);

	s = kf_xrealloc(s, len + 2);
	s[len++] = '\n';
	s[len] = '\0';
	if (!r->broken)
		kf_buf_add(&r->pending, s, len);
	free(s);
	if (r->writing && r->pending.len > (64 << 10))
		flush_lines(r);
}

static void record(struct kf_recorder *r, long n, const char *op, json_t *args,
		   json_t *ret, int64_t t0);

static void flush_output(struct kf_recorder *r)
{
	if (!r->out_n)
		return;
	record(r, r->out_n, "write", json_pack("{s:i, s:o}", "fd", r->out_fd,
		"data", kf_sj_mem(r->home, r->out_buf.data, r->out_buf.len)), NULL, -1);
	r->out_n = 0;
	r->out_buf.len = 0;
}

static long begin(struct kf_recorder *r)
{
	flush_output(r);
	return ++r->next_n;
}

/* a call that may wait: what came before it is on disk first */
static long begin_blocking(struct kf_recorder *r)
{
	long n = begin(r);

	flush_lines(r);
	return n;
}

/* one call: n, op, args, ret (both taken), ms */
static void record(struct kf_recorder *r, long n, const char *op, json_t *args,
		   json_t *ret, int64_t t0)
{
	json_t *line = json_pack("{s:I, s:s, s:o, s:o}", "n", (json_int_t)n, "op", op,
				 "args", args ? args : json_object(),
				 "ret", ret ? ret : json_object());

	if (t0 >= 0)
		json_object_set_new(line, "ms",
				    json_integer((json_int_t)(kf_os_now(r->in) - t0)));
	put_line(r, line);
	json_decref(line);
}

static json_t *ret_r(int rv)
{
	json_t *o = json_pack("{s:i}", "r", rv);

	if (rv < 0) {
		char b[32];

		json_object_set_new(o, "errno", json_string(kf_errno_name(-rv, b, sizeof(b))));
	}
	return o;
}

static json_t *S(struct kf_recorder *r, const char *s)
{
	return kf_sj_str(r->home, s);
}


/* ---- udev ------------------------------------------------------------------ */

/* enumerate and enumerate_net: the devices, ~ shortened; the ttys are
 * also what a board note is made from. */
static int rec_devs(struct kf_recorder *r, bool net, struct kf_ttydev **d, size_t *n)
{
	long k = begin_blocking(r);
	int64_t t0 = kf_os_now(r->in);
	int rv = net ? kf_os_enumerate_net(r->in, d, n) : kf_os_enumerate(r->in, d, n);
	json_t *ret = ret_r(rv);

	if (rv >= 0) {
		json_t *a;
		size_t i;

		if (!net) {
			a = json_array();
			for (i = 0; i < *n; i++)
				json_array_append_new(a, kf_sj_dev(NULL, &(*d)[i]));
			json_decref(r->seen);
			r->seen = a;
		}
		a = json_array();
		for (i = 0; i < *n; i++)
			json_array_append_new(a, kf_sj_dev(r->home, &(*d)[i]));
		json_object_set_new(ret, "devs", a);
	}
	record(r, k, net ? "enumerate_net" : "enumerate", NULL, ret, t0);
	return rv;
}

static int rec_enumerate(void *c, struct kf_ttydev **d, size_t *n)
{
	return rec_devs(R(c), false, d, n);
}

static int rec_enumerate_net(void *c, struct kf_ttydev **d, size_t *n)
{
	return rec_devs(R(c), true, d, n);
}

static int mon_id(struct kf_recorder *r, struct kf_monitor *m)
{
	size_t i;

	for (i = 0; m && i < r->n_mons; i++)
		if (r->mons[i] == m)
			return (int)i + 1;
	return 0;
}

static int rec_monitor_open(void *c, struct kf_monitor **m)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int64_t t0 = kf_os_now(r->in);
	int rv = kf_os_monitor_open(r->in, m);
	json_t *ret = ret_r(rv);

	if (rv >= 0 && *m) {
		r->mons = kf_xrealloc(r->mons, (r->n_mons + 1) * sizeof(*r->mons));
		r->mons[r->n_mons++] = *m;
		json_object_set_new(ret, "mon", json_integer((json_int_t)r->n_mons));
	} else if (rv >= 0) {
		/* a table may hand out NULL as its one monitor */
		json_object_set_new(ret, "mon", json_integer(0));
	}
	record(r, k, "monitor_open", NULL, ret, t0);
	return rv;
}


static int rec_monitor_next(void *c, struct kf_monitor *m, int64_t d, struct kf_uevent *e)
{
	struct kf_recorder *r = R(c);
	long k = begin_blocking(r);
	int64_t t0 = kf_os_now(r->in);
	int rv = kf_os_monitor_next(r->in, m, d, e);
	json_t *ret = ret_r(rv);

	if (rv == 1)
		json_object_set_new(ret, "ev", kf_sj_uevent(r->home, e));
	record(r, k, "monitor_next", json_pack("{s:i, s:I}", "mon", mon_id(r, m),
		"deadline", (json_int_t)d), ret, t0);
	return rv;
}

static void rec_monitor_close(void *c, struct kf_monitor *m)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int id = mon_id(r, m);

	kf_os_monitor_close(r->in, m);
	if (id)
		r->mons[id - 1] = NULL;
	record(r, k, "monitor_close", json_pack("{s:i}", "mon", id), NULL, -1);
}

/* ---- children -------------------------------------------------------------- */


static void hear(void *data, pid_t pgid, bool running)
{
	struct kf_recorder *r = data;

	if (r->obs_sink)
		json_array_append_new(r->obs_sink, json_pack("[i, b]", (int)pgid, running));
	if (r->obs_fn)
		r->obs_fn(r->obs_data, pgid, running);
}

/* sudo -l lists what this user may run: that stays on the machine */
static bool private_output(const char *const *argv)
{
	size_t i;

	if (!argv[0] || strcmp(argv[0], "sudo") != 0)
		return false;
	for (i = 1; argv[i] && argv[i][0] == '-'; i++)
		if (strcmp(argv[i], "-l") == 0 || strcmp(argv[i], "--list") == 0 ||
		    (argv[i][1] != '-' && strchr(argv[i], 'l')))
			return true;
	return false;
}

static int rec_spawn(void *c, const struct kf_spawn_req *q, struct kf_proc *p)
{
	struct kf_recorder *r = R(c);
	long k = begin_blocking(r);
	int64_t t0 = kf_os_now(r->in);
	json_t *args = kf_sj_spawn_args(r->home, q);
	json_t *ret, *saved = r->obs_sink;
	int rv;

	r->obs_sink = json_array();
	rv = kf_os_spawn(r->in, q, p);
	ret = ret_r(rv);
	if (rv >= 0) {
		json_object_set_new(ret, "pid", json_integer(p->pid));
		r->procs = kf_xrealloc(r->procs, (r->n_procs + 1) * sizeof(*r->procs));
		r->procs[r->n_procs++] = (struct rec_proc){ p->pid, private_output(q->argv) };
	}
	json_object_set_new(ret, "observed", r->obs_sink);
	r->obs_sink = saved;
	record(r, k, "spawn", args, ret, t0);
	return rv;
}

struct lines {
	json_t *a;
	size_t omitted;
	bool omit;
	const char *home;
	kf_line_fn *fn;
	void *data;
};

static void take_line(void *data, const char *line, size_t len)
{
	struct lines *l = data;

	if (l->omit)
		l->omitted++;
	else
		json_array_append_new(l->a, kf_sj_mem(l->home, line, len));
	if (l->fn)
		l->fn(l->data, line, len);
}

static int rec_wait(void *c, struct kf_proc *p, int64_t d, kf_line_fn *fn, void *data,
		    struct kf_exit *e)
{
	struct kf_recorder *r = R(c);
	long k = begin_blocking(r);
	int64_t t0 = kf_os_now(r->in);
	struct lines l = { json_array(), 0, false, r->home, fn, data };
	json_t *ret, *saved = r->obs_sink;
	pid_t pid = p->pid;
	size_t i;
	int rv;

	for (i = 0; i < r->n_procs; i++)
		if (r->procs[i].pid == pid)
			l.omit = r->procs[i].omit;
	r->obs_sink = json_array();
	rv = kf_os_wait(r->in, p, d, take_line, &l, e);
	ret = ret_r(rv);
	if (rv >= 0)
		json_object_set_new(ret, "exit", kf_sj_exit(e));
	json_object_set_new(ret, "lines", l.a);
	if (l.omitted)
		json_object_set_new(ret, "omitted", json_integer((json_int_t)l.omitted));
	json_object_set_new(ret, "observed", r->obs_sink);
	r->obs_sink = saved;
	record(r, k, "wait", json_pack("{s:i, s:I}", "pid", (int)pid,
		"deadline", (json_int_t)d), ret, t0);
	return rv;
}

static int rec_kill_group(void *c, struct kf_proc *p, int sig)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_kill_group(r->in, p, sig);

	record(r, k, "kill_group", json_pack("{s:i, s:i}", "pid", (int)p->pid, "sig", sig),
	       ret_r(rv), -1);
	return rv;
}

static int rec_in_group(void *c, const char *g)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_in_group(r->in, g);

	record(r, k, "in_group", json_pack("{s:o}", "group", S(r, g)), ret_r(rv), -1);
	return rv;
}

static void rec_observe(void *c, kf_child_fn *fn, void *data)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);

	r->obs_fn = fn;
	r->obs_data = data;
	kf_os_observe(r->in, fn ? hear : NULL, fn ? r : NULL);
	record(r, k, "observe", json_pack("{s:b}", "on", fn != NULL), NULL, -1);
}

static int rec_feed(void *c, struct kf_proc *p, const void *buf, size_t len)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_feed(r->in, p, buf, len);

	record(r, k, "feed", json_pack("{s:i, s:o}", "pid", (int)p->pid,
		"data", kf_sj_mem(r->home, buf, len)), ret_r(rv), -1);
	return rv;
}

static int rec_ready(void *c)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_ready(r->in);

	record(r, k, "ready", NULL, ret_r(rv), -1);
	return rv;
}

static int rec_attach(void *c, pid_t pid, struct kf_proc *p)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_attach(r->in, pid, p);

	record(r, k, "attach", json_pack("{s:i}", "pid", (int)pid), ret_r(rv), -1);
	return rv;
}

/* ---- files ----------------------------------------------------------------- */

static int rec_read_file(void *c, const char *path, char **buf, size_t *len)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int64_t t0 = kf_os_now(r->in);
	size_t n = 0;
	int rv = kf_os_read_file(r->in, path, buf, &n);
	json_t *ret = ret_r(rv);

	if (len)
		*len = n;
	if (rv >= 0)
		json_object_set_new(ret, "data", kf_sj_mem(r->home, *buf, n));
	record(r, k, "read_file", json_pack("{s:o}", "path", S(r, path)), ret, t0);
	return rv;
}

static int rec_write_atomic(void *c, const char *path, const void *buf, size_t len,
			    mode_t mode)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int64_t t0 = kf_os_now(r->in);
	int rv = kf_os_write_atomic(r->in, path, buf, len, mode);

	record(r, k, "write_atomic", json_pack("{s:o, s:o, s:o}", "path", S(r, path),
		"data", kf_sj_mem(r->home, buf, len), "mode", kf_sj_mode(mode)), ret_r(rv), t0);
	return rv;
}

static int rec_append(void *c, const char *path, const void *buf, size_t len)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_append(r->in, path, buf, len);

	record(r, k, "append", json_pack("{s:o, s:o}", "path", S(r, path),
		"data", kf_sj_mem(r->home, buf, len)), ret_r(rv), -1);
	return rv;
}

#define PATH_OP(name, call)						\
static int rec_##name(void *c, const char *path)			\
{									\
	struct kf_recorder *r = R(c);					\
	long k = begin(r);						\
	int rv = call(r->in, path);					\
									\
	record(r, k, #name, json_pack("{s:o}", "path", S(r, path)), ret_r(rv), -1); \
	return rv;							\
}
PATH_OP(unlink, kf_os_unlink)
PATH_OP(remove_tree, kf_os_remove_tree)
PATH_OP(tidy, kf_os_tidy)

static int rec_read_dir(void *c, const char *path, char ***names, size_t *n)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_read_dir(r->in, path, names, n);
	json_t *ret = ret_r(rv);

	if (rv >= 0) {
		json_t *a = json_array();
		size_t i;

		for (i = 0; i < *n; i++)
			json_array_append_new(a, S(r, (*names)[i]));
		json_object_set_new(ret, "names", a);
	}
	record(r, k, "read_dir", json_pack("{s:o}", "path", S(r, path)), ret, -1);
	return rv;
}

static int rec_mkdir_p(void *c, const char *path, mode_t mode)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_mkdir_p(r->in, path, mode);

	record(r, k, "mkdir_p", json_pack("{s:o, s:o}", "path", S(r, path),
		"mode", kf_sj_mode(mode)), ret_r(rv), -1);
	return rv;
}


static int rec_file_kind(void *c, const char *path, enum kf_file_kind *kind, off_t *size)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	off_t sz = 0;
	int rv = kf_os_file_kind(r->in, path, kind, &sz);
	json_t *ret = ret_r(rv);

	if (size)
		*size = sz;
	if (rv >= 0) {
		json_object_set_new(ret, "kind", json_string(kf_sj_kind_name(*kind)));
		json_object_set_new(ret, "size", json_integer((json_int_t)sz));
	}
	record(r, k, "file_kind", json_pack("{s:o}", "path", S(r, path)), ret, -1);
	return rv;
}

static int rec_realpath(void *c, const char *path, char **out)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_realpath(r->in, path, out);
	json_t *ret = ret_r(rv);

	if (rv >= 0)
		json_object_set_new(ret, "path", S(r, *out));
	record(r, k, "realpath", json_pack("{s:o}", "path", S(r, path)), ret, -1);
	return rv;
}

static int rec_lock(void *c, const char *path, int *fd, pid_t *holder, uid_t *owner)
{
	struct kf_recorder *r = R(c);
	long k = begin_blocking(r);
	int rv;
	json_t *ret;

	*holder = 0;
	*owner = (uid_t)-1;
	rv = kf_os_lock(r->in, path, fd, holder, owner);
	ret = ret_r(rv);
	json_object_set_new(ret, "fd", json_integer(rv >= 0 ? *fd : -1));
	json_object_set_new(ret, "holder", json_integer(*holder));
	json_object_set_new(ret, "owner", *owner == (uid_t)-1 ? json_null()
				     : json_integer((json_int_t)*owner));
	record(r, k, "lock", json_pack("{s:o}", "path", S(r, path)), ret, -1);
	return rv;
}

static void rec_unlock(void *c, int fd)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);

	kf_os_unlock(r->in, fd);
	record(r, k, "unlock", json_pack("{s:i}", "fd", fd), NULL, -1);
}

/* ---- clock, signals, http, host, terminal ----------------------------------- */

static int64_t rec_now(void *c)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int64_t t = kf_os_now(r->in);

	record(r, k, "now", NULL, json_pack("{s:I}", "t", (json_int_t)t), -1);
	return t;
}

static int64_t rec_realtime(void *c)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int64_t t = kf_os_realtime(r->in);

	record(r, k, "realtime", NULL, json_pack("{s:I}", "t", (json_int_t)t), -1);
	return t;
}

static int rec_sleep_until(void *c, int64_t d)
{
	struct kf_recorder *r = R(c);
	long k = begin_blocking(r);
	int64_t t0 = kf_os_now(r->in);
	int rv = kf_os_sleep_until(r->in, d);

	record(r, k, "sleep_until", json_pack("{s:I}", "deadline", (json_int_t)d),
	       ret_r(rv), t0);
	return rv;
}

static int rec_take_signal(void *c)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int sig = kf_os_take_signal(r->in);

	record(r, k, "take_signal", NULL, json_pack("{s:i}", "sig", sig), -1);
	return sig;
}

static int rec_http_get(void *c, const char *url, const char *const *h, int t,
			char **body, long *status)
{
	struct kf_recorder *r = R(c);
	long k = begin_blocking(r);
	int64_t t0 = kf_os_now(r->in);
	int rv;
	json_t *ret;

	*body = NULL;
	*status = 0;
	rv = kf_os_http_get(r->in, url, h, t, body, status);
	ret = ret_r(rv);
	json_object_set_new(ret, "status", json_integer(*status));
	json_object_set_new(ret, "body", S(r, *body));
	record(r, k, "http_get", kf_sj_http_args(r->home, url, h, t), ret, t0);
	return rv;
}

static const char *rec_getenv(void *c, const char *name)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	const char *v = kf_os_getenv(r->in, name);

	record(r, k, "getenv", json_pack("{s:s}", "name", name),
	       json_pack("{s:o}", "value", S(r, v)), -1);
	return v;
}

static uid_t rec_uid(void *c)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	uid_t u = kf_os_uid(r->in);

	record(r, k, "uid", NULL, json_pack("{s:I}", "uid", (json_int_t)u), -1);
	return u;
}

static int rec_user_name(void *c, uid_t uid, char **name)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_user_name(r->in, uid, name);
	json_t *ret = ret_r(rv);

	json_object_set_new(ret, "name", S(r, rv == 0 ? *name : NULL));
	record(r, k, "user_name", json_pack("{s:I}", "uid", (json_int_t)uid), ret, -1);
	return rv;
}

static int rec_cpu_count(void *c)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_cpu_count(r->in);

	record(r, k, "cpu_count", NULL, ret_r(rv), -1);
	return rv;
}

static int rec_isatty(void *c, int fd)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_isatty(r->in, fd);

	record(r, k, "isatty", json_pack("{s:i}", "fd", fd), ret_r(rv), -1);
	return rv;
}

static int rec_term_width(void *c, int fd)
{
	struct kf_recorder *r = R(c);
	long k = begin(r);
	int rv = kf_os_term_width(r->in, fd);

	record(r, k, "term_width", json_pack("{s:i}", "fd", fd), ret_r(rv), -1);
	return rv;
}

static int rec_read_line(void *c, char **line)
{
	struct kf_recorder *r = R(c);
	long k = begin_blocking(r);
	int64_t t0 = kf_os_now(r->in);
	int rv = kf_os_read_line(r->in, line);
	json_t *ret = ret_r(rv);

	if (rv == 1)
		json_object_set_new(ret, "line", S(r, *line));
	record(r, k, "read_line", NULL, ret, t0);
	return rv;
}

static const struct kf_ops recording_ops = {
	.version = KF_OPS_VERSION,
	.name = "record",
	.enumerate = rec_enumerate,
	.enumerate_net = rec_enumerate_net,
	.monitor_open = rec_monitor_open,
	.monitor_next = rec_monitor_next,
	.monitor_close = rec_monitor_close,
	.spawn = rec_spawn,
	.wait = rec_wait,
	.kill_group = rec_kill_group,
	.in_group = rec_in_group,
	.observe = rec_observe,
	.feed = rec_feed,
	.ready = rec_ready,
	.attach = rec_attach,
	.read_file = rec_read_file,
	.write_atomic = rec_write_atomic,
	.append = rec_append,
	.unlink = rec_unlink,
	.remove_tree = rec_remove_tree,
	.tidy = rec_tidy,
	.read_dir = rec_read_dir,
	.mkdir_p = rec_mkdir_p,
	.file_kind = rec_file_kind,
	.realpath = rec_realpath,
	.lock = rec_lock,
	.unlock = rec_unlock,
	.now = rec_now,
	.realtime = rec_realtime,
	.sleep_until = rec_sleep_until,
	.take_signal = rec_take_signal,
	.http_get = rec_http_get,
	.getenv = rec_getenv,
	.uid = rec_uid,
	.user_name = rec_user_name,
	.cpu_count = rec_cpu_count,
	.isatty = rec_isatty,
	.term_width = rec_term_width,
	.read_line = rec_read_line,
};

/* ---- the session ------------------------------------------------------------ */

struct kf_recorder *kf_recorder_new(const struct kf_ops *inner)
{
	struct kf_recorder *r = kf_xcalloc(1, sizeof(*r));
	const char *home = kf_os_getenv(inner, "HOME");

	r->ops = recording_ops;
	r->ops.ctx = r;
	r->boards = json_object();
	r->in = inner;
	r->home = home && strlen(home) > 1 ? kf_xstrdup(home) : NULL;
	if (r->home && r->home[strlen(r->home) - 1] == '/')
		r->home[strlen(r->home) - 1] = '\0';
	r->info = json_pack("{s:i, s:s, s:[], s:n, s:n, s:[], s:n, s:I}", "format",
			    KF_SESSION_FORMAT, "kflash", KFLASH_VERSION, "command",
			    "started", "settings", "boards", "exit",
			    /* a replay's stand-in home has its length: output
			     * wraps and quotes as it did here */
			    "home_length", (json_int_t)(r->home ? strlen(r->home) : 0));
	{
		json_t *h = json_pack("{s:i}", "kflash-session", KF_SESSION_FORMAT);

		put_line(r, h);
		json_decref(h);
	}
	return r;
}

const struct kf_ops *kf_recorder_ops(struct kf_recorder *r)
{
	return &r->ops;
}

void kf_recorder_set_out(struct kf_recorder *r, struct kf_out *out)
{
	r->out = out;
}

void kf_recorder_write(struct kf_recorder *r, int fd, const char *buf, size_t len)
{
	if (r->out_n && r->out_fd != fd)
		flush_output(r);
	if (!r->out_n) {
		r->out_n = ++r->next_n;
		r->out_fd = fd;
	}
	kf_buf_add(&r->out_buf, buf, len);
}

void kf_recorder_command(struct kf_recorder *r, int argc, char **argv)
{
	json_t *a = json_array();
	int i;

	for (i = 1; i < argc; i++) {
		/* kflash settings moonraker_api_key KEY */
		bool secret = i > 1 && strcmp(argv[i - 1], "moonraker_api_key") == 0;

		json_array_append_new(a, secret ? json_string("<redacted>")
						: S(r, argv[i]));
	}
	json_object_set_new(r->info, "command", a);
}

static void write_info(struct kf_recorder *r)
{
	char *s, *path;
	int e;

	if (!r->writing || r->broken)
		return;
	s = json_dumps(r->info, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	path = kf_asprintf("%s/session.json", r->dir);
	s = kf_xrealloc(s, strlen(s) + 2);
	strcat(s, "\n");
	e = kf_os_write_atomic(r->in, path, s, strlen(s), 0600);
	if (e < 0)
		stop_recording(r, e, path);
	free(path);
	free(s);
}

int kf_recorder_open(struct kf_recorder *r, const char *dir)
{
	char **names = NULL;
	size_t n = 0;
	int e;

	if (r->writing || r->broken)
		return 0;
	e = kf_os_read_dir(r->in, dir, &names, &n);
	kf_names_free(names, n);
	if (e == 0 && n > 0) {
		if (r->out)
			kf_out_warn(r->out, "not recording this session: %s is not empty "
				    "(kflash --record wants a new directory)", dir);
		r->broken = true;
		return -EEXIST;
	}
	if ((e = kf_os_mkdir_p(r->in, dir, 0700)) < 0) {
		stop_recording(r, e, dir);
		return e;
	}
	r->dir = kf_xstrdup(dir);
	r->calls_path = kf_asprintf("%s/calls.jsonl", dir);
	r->writing = true;
	{
		char iso[24];

		kf_utc_iso(kf_os_realtime(r->in), iso);
		json_object_set_new(r->info, "started", json_string(iso));
	}
	write_info(r);
	flush_lines(r);
	return r->broken ? -EIO : 0;
}

/* 20261202T043000Z-flash: a session kflash made (other files are not its) */
static bool is_session_name(const char *s)
{
	return strlen(s) > 17 && s[8] == 'T' && s[15] == 'Z' && s[16] == '-';
}

int kf_recorder_open_default(struct kf_recorder *r, const char *command, int keep)
{
	char *base = kf_sessions_dir(r->in), *dir = NULL, **names = NULL;
	char stamp[24];
	size_t n = 0, i, ours = 0;
	int e, try;

	if (!base || keep <= 0) {
		free(base);
		r->broken = true;	/* nothing to record into */
		return 0;
	}
	if ((e = kf_os_mkdir_p(r->in, base, 0700)) < 0) {
		stop_recording(r, e, base);
		free(base);
		return e;
	}
	/* the oldest go first, so this one makes keep; the ones kept lose
	 * the temp file a kflash killed while it saved their session.json
	 * left (nobody saves that file again) */
	if (kf_os_read_dir(r->in, base, &names, &n) == 0) {
		for (i = 0; i < n; i++)
			ours += is_session_name(names[i]);
		for (i = 0; i < n; i++) {
			char *old;

			if (!is_session_name(names[i]))
				continue;
			old = kf_asprintf("%s/%s", base, names[i]);
			if (ours >= (size_t)keep) {
				(void)kf_os_remove_tree(r->in, old);
				ours--;
			} else {
				(void)kf_os_tidy(r->in, old);
			}
			free(old);
		}
		kf_names_free(names, n);
	}
	kf_session_stamp(kf_os_realtime(r->in), stamp);
	for (try = 1; try < 100; try++) {
		enum kf_file_kind kind;

		free(dir);
		dir = try == 1 ? kf_asprintf("%s/%s-%s", base, stamp, command)
			       : kf_asprintf("%s/%s-%s-%d", base, stamp, command, try);
		if (kf_os_file_kind(r->in, dir, &kind, NULL) == 0 && kind == KF_FILE_NONE)
			break;
	}
	e = kf_recorder_open(r, dir);
	free(dir);
	free(base);
	return e;
}

const char *kf_recorder_dir(const struct kf_recorder *r)
{
	return r && r->writing && !r->broken ? r->dir : NULL;
}

void kf_recorder_settings(struct kf_recorder *r, const struct kf_settings *s)
{
	/* as devices.json holds them, typed; the API key as the recorder
	 * writes it everywhere */
	struct kf_registry only = { .settings = *s };
	char *doc, *text;
	json_t *parsed;

	if (!r)
		return;
	doc = kf_registry_dump(&only);
	text = kf_sj_shorten(r->home, doc);
	parsed = json_loads(text, 0, NULL);
	json_object_set(r->info, "settings", json_object_get(parsed, "settings"));
	json_decref(parsed);
	free(text);
	free(doc);
	write_info(r);
}

/* "platform-...-usb-0:1.2:1.0" -> "1.2" (malloc'd), or NULL */
static char *port_of(const char *by_path)
{
	const char *p = by_path ? strstr(by_path, "-usb-") : NULL, *colon, *end;

	if (!p || !(colon = strchr(p + 5, ':')))
		return NULL;
	end = strchr(colon + 1, ':');
	return end ? kf_xstrndup(colon + 1, (size_t)(end - colon - 1)) : NULL;
}

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : p;
}

/* What umockdev-record would write, rebuilt from what kflash knows. */
static char *umockdev_text(const struct kf_ttydev *d, const char *port)
{
	struct kf_buf b = KF_BUF_INIT;
	const char *tty = base_name(d->devnode);
	const char *p = port ? port : "1";

	kf_buf_addf(&b, "P: /devices/platform/kflash/usb1/1-%s\n", p);
	kf_buf_addf(&b, "E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\n");
	if (d->vid)
		kf_buf_addf(&b, "A: idVendor=%s\n", d->vid);
	if (d->pid)
		kf_buf_addf(&b, "A: idProduct=%s\n", d->pid);
	if (d->manufacturer)
		kf_buf_addf(&b, "A: manufacturer=%s\n", d->manufacturer);
	if (d->product)
		kf_buf_addf(&b, "A: product=%s\n", d->product);
	if (d->serial)
		kf_buf_addf(&b, "A: serial=%s\n", d->serial);
	kf_buf_addf(&b, "\nP: /devices/platform/kflash/usb1/1-%s/1-%s:1.0/tty/%s\n",
		    p, p, tty);
	kf_buf_addf(&b, "N: %s\nE: SUBSYSTEM=tty\nE: DEVNAME=%s\n", tty, d->devnode);
	if (d->vid)
		kf_buf_addf(&b, "E: ID_VENDOR_ID=%s\n", d->vid);
	if (d->pid)
		kf_buf_addf(&b, "E: ID_MODEL_ID=%s\n", d->pid);
	if (d->serial)
		kf_buf_addf(&b, "E: ID_SERIAL_SHORT=%s\n", d->serial);
	if (d->driver)
		kf_buf_addf(&b, "E: ID_USB_DRIVER=%s\n", d->driver);
	if (d->by_id || d->by_path)
		kf_buf_addf(&b, "E: DEVLINKS=%s%s%s\n", d->by_id ? d->by_id : "",
			    d->by_id && d->by_path ? " " : "", d->by_path ? d->by_path : "");
	return b.data;
}

static void write_board_file(struct kf_recorder *r, const char *name, const char *ext,
			     const char *text)
{
	char *path = kf_asprintf("%s/boards/%s.%s", r->dir, name, ext);
	char *dir = kf_asprintf("%s/boards", r->dir);
	int e = kf_os_mkdir_p(r->in, dir, 0700);

	if (e >= 0)
		e = kf_os_write_atomic(r->in, path, text, strlen(text), 0600);
	if (e < 0)
		stop_recording(r, e, path);
	free(dir);
	free(path);
}

void kf_recorder_board(struct kf_recorder *r, const struct kf_board *b,
		       const char *node, const char *mode, const char *app_start)
{
	struct kf_ttydev seen = { 0 }, *dev = NULL;
	json_t *boards, *j, *known;
	char *port, *s;
	size_t i;

	if (!kf_recorder_dir(r))
		return;
	for (i = 0; node && i < json_array_size(r->seen) && !dev; i++) {
		json_t *d = json_array_get(r->seen, i);
		const char *dn = json_string_value(json_object_get(d, "devnode"));
		const char *id = json_string_value(json_object_get(d, "by_id"));

		if (((dn && strcmp(dn, node) == 0) || (id && strcmp(id, node) == 0)) &&
		    kf_sj_get_dev(d, &seen) == 0)
			dev = &seen;
	}
	port = dev ? port_of(dev->by_path) : NULL;
	if (!port && b->port)
		port = port_of(b->port);
	if (!port && b->interface)
		port = kf_xstrdup(b->interface);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}",
		      "name", b->name, "key", b->key, "mcu", b->mcu,
		      "method", kf_method_name(b->method), "transport", kf_link_name(b->link),
		      "serial", S(r, dev ? dev->serial : b->canbus_uuid ? b->canbus_uuid
				  : b->katapult_serial),
		      "port", S(r, port), "mode", S(r, mode),
		      "app_start", S(r, app_start),
		      "device", S(r, dev ? base_name(dev->by_id ? dev->by_id : dev->devnode)
				      : NULL));
	/* what an earlier note knew and this one does not stays */
	known = json_object_get(r->boards, b->key);
	if (known) {
		const char *key;
		json_t *v;

		json_object_foreach(known, key, v)
			if (json_is_null(json_object_get(j, key)))
				json_object_set(j, key, v);
	}
	json_object_set(r->boards, b->key, j);
	s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	s = kf_xrealloc(s, strlen(s) + 2);
	strcat(s, "\n");
	write_board_file(r, b->key, "json", s);
	free(s);
	json_decref(j);
	if (dev) {
		s = umockdev_text(dev, port);
		write_board_file(r, b->key, "umockdev", s);
		free(s);
	}
	boards = json_object_get(r->info, "boards");
	for (i = 0; i < json_array_size(boards); i++)
		if (strcmp(json_string_value(json_array_get(boards, i)), b->key) == 0)
			break;
	if (i == json_array_size(boards)) {
		json_array_append_new(boards, json_string(b->key));
		write_info(r);
	}
	free(port);
	kf_ttydev_release(&seen);
}

void kf_recorder_finish(struct kf_recorder *r, int exit_code)
{
	if (!r)
		return;
	flush_output(r);
	flush_lines(r);
	json_object_set_new(r->info, "exit", json_integer(exit_code));
	write_info(r);
	kf_buf_release(&r->out_buf);
	json_decref(r->seen);
	json_decref(r->boards);
	json_decref(r->info);
	kf_buf_release(&r->pending);
	free(r->mons);
	free(r->procs);
	free(r->home);
	free(r->dir);
	free(r->calls_path);
	free(r);
}
