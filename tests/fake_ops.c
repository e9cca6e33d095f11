/* fake_ops.c - the in-memory world behind unit tests (see fake_ops.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fake_ops.h"
#include "kflash/kflash.h"
#include "kflash/proc.h"

#define W(ctx) ((struct fake_world *)(ctx))

static void note(struct fake_world *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void note(struct fake_world *w, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = kf_vasprintf(fmt, ap);
	va_end(ap);
	kf_buf_addf(&w->transcript, "%s\n", s);
	free(s);
}

bool fake_did(const struct fake_world *w, const char *line)
{
	const char *p = w->transcript.data;
	size_t n = strlen(line);

	while (p && (p = strstr(p, line))) {
		bool start = p == w->transcript.data || p[-1] == '\n';

		if (start && p[n] == '\n')
			return true;
		p += n;
	}
	return false;
}

size_t fake_running(const struct fake_world *w)
{
	size_t i, n = 0;

	for (i = 0; i < w->n_procs; i++)
		n += !w->procs[i].done;
	return n;
}

static void deliver_signal(struct fake_world *w)
{
	if (w->signal_at >= 0 && w->now >= w->signal_at) {
		w->pending_signal = w->signal_num;
		w->signal_at = -1;
		note(w, "signal %d", w->signal_num);
	}
}

static int64_t fake_now(void *ctx)
{
	return W(ctx)->now;
}

/* 2026-12-02T04:30:00Z when the fake clock starts */
static int64_t fake_realtime(void *ctx)
{
	return INT64_C(1796185800000) + W(ctx)->now;
}

/* Advance the fake clock to t, but stop early for a scheduled signal. */
static void advance_to(struct fake_world *w, int64_t t)
{
	if (w->signal_at >= 0 && w->signal_at < t)
		t = w->signal_at;
	if (t > w->now && t != INT64_MAX)
		w->now = t;
	deliver_signal(w);
}

static int fake_sleep_until(void *ctx, int64_t deadline)
{
	struct fake_world *w = W(ctx);

	if (w->pending_signal)
		return -EINTR;
	advance_to(w, deadline);
	return w->pending_signal ? -EINTR : 0;
}

static int fake_take_signal(void *ctx)
{
	int s = W(ctx)->pending_signal;

	W(ctx)->pending_signal = 0;
	return s;
}

static char **argv_copy(const char *const *argv)
{
	size_t n = 0, i;
	char **v;

	while (argv[n])
		n++;
	v = kf_xcalloc(n + 1, sizeof(*v));
	for (i = 0; i < n; i++)
		v[i] = kf_xstrdup(argv[i]);
	return v;
}

static int fake_spawn(void *ctx, const struct kf_spawn_req *req, struct kf_proc *ret)
{
	struct fake_world *w = W(ctx);
	char *cmd = NULL;
	struct kf_buf b = KF_BUF_INIT;
	struct fake_child *c;
	size_t i;

	memset(ret, 0, sizeof(*ret));
	ret->out_fd = -1;
	ret->in_fd = -1;
	for (i = 0; req->argv[i]; i++)
		kf_buf_addf(&b, "%s%s", i ? " " : "", req->argv[i]);
	cmd = b.data;
	note(w, "spawn %s", cmd);
	/* the last matching program wins, so a test can override one */
	for (i = w->n_progs; i-- > 0;)
		if (strcmp(w->progs[i].argv0, req->argv[0]) == 0 &&
		    (!w->progs[i].match || strstr(cmd, w->progs[i].match)))
			break;
	if (i == (size_t)-1)
		i = w->n_progs;
	kf_buf_release(&b);
	if (i == w->n_progs || w->progs[i].missing ||
	    (w->sudo_missing && strcmp(req->argv[0], "sudo") == 0))
		return -ENOENT;
	if (w->n_procs == FAKE_MAX_PROCS)
		return -EAGAIN;
	c = &w->procs[w->n_procs++];
	c->prog = &w->progs[i];
	c->pid = w->next_pid++;
	c->started = w->now;
	c->ends = c->prog->run ? w->now + w->svc_ms
		: c->prog->run_ms == INT64_MAX || c->prog->until_eof ? INT64_MAX
		: w->now + c->prog->run_ms;
	c->detached = req->detach;
	c->stdin_open = req->in == KF_STDIO_PIPE;
	c->argv = argv_copy(req->argv);
	ret->pid = c->pid;
	ret->in_fd = c->stdin_open ? 99 : -1;
	ret->backend = c;
	if (!c->detached && w->observer)
		w->observer(w->observer_data, c->pid, true);
	return 0;
}

static void feed_output(const char *out, kf_line_fn *fn, void *data)
{
	const char *p = out;

	while (p && *p && fn) {
		size_t n = strcspn(p, "\n");

		fn(data, p, n);
		p += n;
		if (*p)
			p++;
	}
}

static void child_done(struct fake_world *w, struct fake_child *c)
{
	c->done = true;
	kf_argv_free(c->argv);
	c->argv = NULL;
	if (!c->detached && w->observer)
		w->observer(w->observer_data, c->pid, false);
}

static void tty_copy(struct kf_ttydev *d, const struct kf_ttydev *s);

/* a flashed board reboots into what it was: udev says "add" */
static void come_back(struct fake_world *w, const char *devnode)
{
	size_t i;

	for (i = 0; i < w->n_ttys; i++)
		if (strcmp(w->ttys[i].devnode, devnode) == 0 && w->n_events < 8)
			tty_copy(&w->events[w->n_events++], &w->ttys[i]);
}

static int fake_wait(void *ctx, struct kf_proc *p, int64_t deadline,
		     kf_line_fn *on_line, void *data, struct kf_exit *ret)
{
	struct fake_world *w = W(ctx);
	struct fake_child *c = p->backend;

	memset(ret, 0, sizeof(*ret));
	if (!c || c->done)
		return -ECHILD;
	if (!c->killed_by && !w->pending_signal)
		advance_to(w, c->ends < deadline ? c->ends : deadline);
	if (c->killed_by) {
		ret->kind = KF_EXIT_SIGNALED;
		ret->sig = c->killed_by;
	} else if (w->now >= c->ends) {
		struct kf_buf out = KF_BUF_INIT;

		ret->kind = KF_EXIT_EXITED;
		if (c->prog->run) {
			ret->code = c->prog->run(w, c->argv, &out);
			feed_output(out.data, on_line, data);
		} else {
			feed_output(c->prog->output, on_line, data);
			ret->code = c->prog->exit_code;
		}
		kf_buf_release(&out);
		if (c->prog->writes && ret->code == 0)
			fake_put_file(w, c->prog->writes,
				      c->prog->writes_data ? c->prog->writes_data : "");
		if (c->prog->back && ret->code == 0)
			come_back(w, c->prog->back);
	} else {
		ret->kind = KF_EXIT_RUNNING;
		ret->interrupted_by = w->pending_signal;
		return 0;
	}
	p->backend = NULL;
	p->in_fd = -1;
	note(w, "exit %s %s %d", c->prog->argv0,
	     ret->kind == KF_EXIT_EXITED ? "status" : "signal",
	     ret->kind == KF_EXIT_EXITED ? ret->code : ret->sig);
	child_done(w, c);
	return 0;
}

static int fake_kill_group(void *ctx, struct kf_proc *p, int sig)
{
	struct fake_world *w = W(ctx);
	size_t i;

	for (i = 0; i < w->n_procs; i++) {
		struct fake_child *c = &w->procs[i];

		if (c->pid != p->pid || c->done || c->killed_by)
			continue;
		note(w, "kill -%d %s", sig, c->prog->argv0);
		if (sig == SIGKILL || !c->prog->ignores_sigterm)
			c->killed_by = sig;
	}
	return 0;
}

static int fake_in_group(void *ctx, const char *group)
{
	(void)ctx;
	(void)group;
	return 1;
}

static void fake_observe(void *ctx, kf_child_fn *fn, void *data)
{
	W(ctx)->observer = fn;
	W(ctx)->observer_data = data;
}

static int fake_feed(void *ctx, struct kf_proc *p, const void *buf, size_t len)
{
	struct fake_world *w = W(ctx);
	struct fake_child *c = p->backend;

	if (!c || !c->stdin_open)
		return -EBADF;
	if (c->done || c->killed_by)
		return -EPIPE;
	if (!buf) {
		note(w, "feed %s end", c->prog->argv0);
		c->stdin_open = false;
		p->in_fd = -1;
		if (c->prog->until_eof)
			c->ends = w->now;
		return 0;
	}
	/* one line per message, without its newline */
	note(w, "feed %s %.*s", c->prog->argv0,
	     (int)(len && ((const char *)buf)[len - 1] == '\n' ? len - 1 : len),
	     (const char *)buf);
	return 0;
}

static int fake_ready(void *ctx)
{
	note(W(ctx), "ready");
	return W(ctx)->ready_err;
}

static int fake_attach(void *ctx, pid_t pid, struct kf_proc *ret)
{
	struct fake_world *w = W(ctx);
	size_t i;

	memset(ret, 0, sizeof(*ret));
	ret->out_fd = -1;
	ret->in_fd = -1;
	for (i = 0; i < w->n_procs; i++) {
		struct fake_child *c = &w->procs[i];

		if (c->pid != pid || c->done)
			continue;
		note(w, "attach %s", c->prog->argv0);
		ret->pid = pid;
		ret->backend = c;
		return 0;
	}
	return -ESRCH;
}

/* ---- the world's own programs ------------------------------------------------ */

static size_t argc_of(char **argv)
{
	size_t n = 0;

	while (argv[n])
		n++;
	return n;
}

/* systemctl show|stop|start UNIT, for the one unit of the world */
static int systemctl_as(struct fake_world *w, char **argv, struct kf_buf *out,
			bool privileged)
{
	size_t n = argc_of(argv);
	const char *verb = n > 1 ? argv[1] : "", *unit = n > 1 ? argv[n - 1] : "";

	if (strcmp(verb, "show") == 0) {
		kf_buf_addf(out, "LoadState=%s\nActiveState=%s\n",
			    w->svc_missing ? "not-found" : "loaded",
			    w->svc_active && !w->svc_missing ? "active" : "inactive");
		return 0;
	}
	if (strcmp(verb, "stop") != 0 && strcmp(verb, "start") != 0)
		return 1;
	if (!privileged) {
		kf_buf_addf(out, "Failed to %s %s.service: Interactive authentication "
			    "required.\n", verb, unit);
		return 1;
	}
	if (w->svc_missing) {
		kf_buf_addf(out, "Failed to %s %s.service: Unit %s.service not found.\n",
			    verb, unit, unit);
		return 5;
	}
	note(w, "svc_%s %s", verb, unit);
	w->svc_active = strcmp(verb, "start") == 0;
	return 0;
}

static int fake_systemctl(struct fake_world *w, char **argv, struct kf_buf *out)
{
	return systemctl_as(w, argv, out, w->uid == 0);
}

/* sudo -n [-l] CMD...: svc_can_manage says whether CMD needs a password */
static int fake_sudo(struct fake_world *w, char **argv, struct kf_buf *out)
{
	size_t i = 1;
	bool list = false;

	for (; argv[i] && argv[i][0] == '-'; i++)
		list |= strcmp(argv[i], "-l") == 0;
	if (!argv[i])
		return 1;
	if (!w->svc_can_manage) {
		kf_buf_addf(out, "sudo: a password is required\n");
		return 1;
	}
	if (list) {
		kf_buf_addf(out, "/usr/bin/%s\n", argv[i]);
		return 0;
	}
	if (strcmp(argv[i], "systemctl") != 0) {
		kf_buf_addf(out, "sudo: %s: command not found\n", argv[i]);
		return 1;
	}
	return systemctl_as(w, argv + i, out, true);
}

static struct fake_file *find_file(struct fake_world *w, const char *path)
{
	size_t i;

	for (i = 0; i < w->n_files; i++)
		if (w->files[i].path && strcmp(w->files[i].path, path) == 0)
			return &w->files[i];
	return NULL;
}

const struct fake_file *fake_get_file(const struct fake_world *w, const char *path)
{
	return find_file((struct fake_world *)w, path);
}

static void put(struct fake_world *w, const char *path, const void *data, size_t len)
{
	struct fake_file *f = find_file(w, path);
	size_t i;

	/* a removed file's slot is taken again */
	for (i = 0; !f && i < w->n_files; i++)
		if (!w->files[i].path)
			f = &w->files[i];
	if (!f) {
		if (w->n_files == FAKE_MAX_FILES)
			abort();
		f = &w->files[w->n_files++];
	}
	if (!f->path)
		f->path = kf_xstrdup(path);
	free(f->data);
	f->data = kf_xstrndup(data, len);
	f->len = len;
}

void fake_put_file(struct fake_world *w, const char *path, const char *data)
{
	put(w, path, data, strlen(data));
}

static int fake_read_file(void *ctx, const char *path, char **buf, size_t *len)
{
	struct fake_file *f = find_file(W(ctx), path);

	if (!f)
		return -ENOENT;
	*buf = kf_xstrndup(f->data, f->len);
	if (len)
		*len = f->len;
	return 0;
}

static bool below(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static int fake_write_atomic(void *ctx, const char *path, const void *buf,
			     size_t len, mode_t mode)
{
	(void)mode;
	if (W(ctx)->full && below(path, W(ctx)->full))
		return -ENOSPC;
	note(W(ctx), "write %s", path);
	put(W(ctx), path, buf, len);
	return 0;
}

static int fake_append(void *ctx, const char *path, const void *buf, size_t len)
{
	struct fake_file *f = find_file(W(ctx), path);
	struct kf_buf b = KF_BUF_INIT;

	if (W(ctx)->full && below(path, W(ctx)->full))
		return -ENOSPC;
	if (f)
		kf_buf_add(&b, f->data, f->len);
	kf_buf_add(&b, buf, len);
	put(W(ctx), path, b.data, b.len);
	kf_buf_release(&b);
	return 0;
}

static int fake_unlink(void *ctx, const char *path)
{
	struct fake_file *f = find_file(W(ctx), path);

	if (!f)
		return -ENOENT;
	note(W(ctx), "unlink %s", path);
	free(f->path);
	f->path = NULL;
	return 0;
}


static int fake_tidy(void *ctx, const char *dir)
{
	note(W(ctx), "tidy %s", dir);
	return 0;
}

static int fake_remove_tree(void *ctx, const char *path)
{
	struct fake_world *w = W(ctx);
	size_t i;

	note(w, "remove_tree %s", path);
	for (i = 0; i < w->n_files; i++)
		if (w->files[i].path && below(w->files[i].path, path)) {
			free(w->files[i].path);
			w->files[i].path = NULL;
		}
	return 0;
}

/* directories exist where files are below them */
static int fake_read_dir(void *ctx, const char *path, char ***ret_names, size_t *ret_n)
{
	struct fake_world *w = W(ctx);
	size_t i, j, n = 0, len = strlen(path);
	char **names = NULL;

	for (i = 0; i < w->n_files; i++) {
		const char *p = w->files[i].path, *end;
		char *name;

		if (!p || !below(p, path) || p[len] != '/')
			continue;
		end = strchrnul(p + len + 1, '/');
		name = kf_xstrndup(p + len + 1, (size_t)(end - (p + len + 1)));
		for (j = 0; j < n && strcmp(names[j], name) != 0; j++)
			;
		if (j < n) {
			free(name);
			continue;
		}
		for (j = n; j > 0 && strcmp(names[j - 1], name) > 0; j--)
			;
		names = kf_xrealloc(names, (n + 1) * sizeof(*names));
		memmove(names + j + 1, names + j, (n - j) * sizeof(*names));
		names[j] = name;
		n++;
	}
	if (!n)
		return -ENOENT;
	*ret_names = names;
	*ret_n = n;
	return 0;
}

static int fake_mkdir_p(void *ctx, const char *path, mode_t mode)
{
	(void)mode;
	note(W(ctx), "mkdir %s", path);
	return 0;
}

static int fake_file_kind(void *ctx, const char *path, enum kf_file_kind *k,
			  off_t *size)
{
	struct fake_world *w = W(ctx);
	struct fake_file *f = find_file(w, path);
	size_t i;

	*k = f ? KF_FILE_REG : KF_FILE_NONE;
	if (size)
		*size = f ? (off_t)f->len : 0;
	/* a directory is where files are below it */
	for (i = 0; !f && i < w->n_files; i++)
		if (w->files[i].path && below(w->files[i].path, path) &&
		    w->files[i].path[strlen(path)] == '/')
			*k = KF_FILE_DIR;
	return 0;
}

static int fake_realpath(void *ctx, const char *path, char **ret)
{
	(void)ctx;
	*ret = kf_xstrdup(path);
	return 0;
}

static int fake_lock(void *ctx, const char *path, int *fd, pid_t *holder, uid_t *owner)
{
	struct fake_world *w = W(ctx);

	note(w, "lock %s", path);
	*fd = w->lock_err ? -1 : 99;
	*holder = 0;
	*owner = w->lock_owner == (uid_t)-1 ? w->uid : w->lock_owner;
	return w->lock_err;
}

static void fake_unlock(void *ctx, int fd)
{
	(void)fd;
	note(W(ctx), "unlock");
}

static int fake_http_get(void *ctx, const char *url, const char *const *headers,
			 int timeout_ms, char **body, long *status)
{
	struct fake_world *w = W(ctx);
	size_t i;

	(void)timeout_ms;
	*body = NULL;
	for (; headers && *headers; headers++)
		note(w, "http header %s", *headers);
	for (i = 0; i < w->n_urls; i++) {
		long st = w->urls[i].status ? w->urls[i].status : 200;

		if (strcmp(w->urls[i].url, url) != 0)
			continue;
		if (w->urls[i].err)
			return w->urls[i].err;
		*body = kf_xstrdup(w->urls[i].body);
		if (status)
			*status = st;
		return st >= 200 && st <= 299 ? 0 : -EPROTO;
	}
	return -EHOSTUNREACH;
}

static char *dup0(const char *s)
{
	return s ? kf_xstrdup(s) : NULL;
}

static void tty_copy(struct kf_ttydev *d, const struct kf_ttydev *s)
{
	d->devnode = dup0(s->devnode);
	d->by_id = dup0(s->by_id);
	d->by_path = dup0(s->by_path);
	d->vid = dup0(s->vid);
	d->pid = dup0(s->pid);
	d->manufacturer = dup0(s->manufacturer);
	d->product = dup0(s->product);
	d->serial = dup0(s->serial);
	d->driver = dup0(s->driver);
	d->iface = dup0(s->iface);
}

void fake_add_tty(struct fake_world *w, const char *devnode, const char *by_id,
		  const char *vid, const char *pid, const char *manufacturer,
		  const char *serial)
{
	struct kf_ttydev t = { .devnode = (char *)devnode, .by_id = (char *)by_id,
			       .vid = (char *)vid, .pid = (char *)pid,
			       .manufacturer = (char *)manufacturer,
			       .serial = (char *)serial };

	if (w->n_ttys == 8)
		abort();
	tty_copy(&w->ttys[w->n_ttys++], &t);
}

void fake_add_net(struct fake_world *w, const char *iface, const char *vid,
		  const char *pid, const char *manufacturer, const char *product,
		  const char *serial, const char *driver)
{
	struct kf_ttydev t = { .iface = (char *)iface, .vid = (char *)vid,
			       .pid = (char *)pid, .manufacturer = (char *)manufacturer,
			       .product = (char *)product, .serial = (char *)serial,
			       .driver = (char *)driver };

	if (w->n_nets == 4)
		abort();
	tty_copy(&w->nets[w->n_nets++], &t);
}

static int copy_devs(const struct kf_ttydev *from, size_t n_from, struct kf_ttydev **devs,
		     size_t *n)
{
	size_t i;

	*devs = kf_xcalloc(n_from + 1, sizeof(**devs));
	for (i = 0; i < n_from; i++)
		tty_copy(&(*devs)[i], &from[i]);
	*n = n_from;
	return 0;
}

static int fake_enumerate(void *ctx, struct kf_ttydev **devs, size_t *n)
{
	return copy_devs(W(ctx)->ttys, W(ctx)->n_ttys, devs, n);
}

static int fake_enumerate_net(void *ctx, struct kf_ttydev **devs, size_t *n)
{
	return copy_devs(W(ctx)->nets, W(ctx)->n_nets, devs, n);
}

static int fake_monitor_open(void *ctx, struct kf_monitor **m)
{
	(void)ctx;
	*m = NULL;
	return 0;
}

static int fake_monitor_next(void *ctx, struct kf_monitor *m, int64_t deadline,
			     struct kf_uevent *ev)
{
	struct fake_world *w = W(ctx);

	(void)m;
	if (w->n_events > 0) {
		memset(ev, 0, sizeof(*ev));
		ev->action = KF_UEVENT_ADD;
		ev->dev = w->events[0];
		memmove(w->events, w->events + 1, --w->n_events * sizeof(w->events[0]));
		note(w, "uevent add %s", ev->dev.devnode);
		return 1;
	}
	return fake_sleep_until(ctx, deadline);
}

static void fake_monitor_close(void *ctx, struct kf_monitor *m)
{
	(void)ctx;
	(void)m;
}

/* ---- the host and the terminal ---- */

static const char *fake_getenv(void *ctx, const char *name)
{
	struct fake_world *w = W(ctx);
	size_t i;

	for (i = 0; i < w->n_env; i++)
		if (strcmp(w->env[i].name, name) == 0)
			return w->env[i].value;
	return NULL;
}

void fake_setenv(struct fake_world *w, const char *name, const char *value)
{
	size_t i;

	for (i = 0; i < w->n_env && strcmp(w->env[i].name, name) != 0; i++)
		;
	if (i < w->n_env) {
		free(w->env[i].value);
		w->env[i].value = NULL;
		if (!value) {
			free(w->env[i].name);
			w->env[i] = w->env[--w->n_env];
			return;
		}
	} else if (!value) {
		return;
	} else {
		if (w->n_env == FAKE_MAX_ENV)
			abort();
		w->env[w->n_env++].name = kf_xstrdup(name);
	}
	w->env[i].value = kf_xstrdup(value);
}

static uid_t fake_uid(void *ctx)
{
	return W(ctx)->uid;
}

static int fake_user_name(void *ctx, uid_t uid, char **ret_name)
{
	struct fake_world *w = W(ctx);

	*ret_name = NULL;
	if (uid != w->uid || !w->user_name)
		return -ENOENT;
	*ret_name = kf_xstrdup(w->user_name);
	return 0;
}

static int fake_cpu_count(void *ctx)
{
	return W(ctx)->cpus;
}

static int fake_isatty(void *ctx, int fd)
{
	return fd >= 0 && fd < FAKE_MAX_FD && W(ctx)->tty[fd];
}

static int fake_term_width(void *ctx, int fd)
{
	return fake_isatty(ctx, fd) ? W(ctx)->columns : 0;
}

void fake_type(struct fake_world *w, const char *text)
{
	kf_buf_add(&w->input, text, strlen(text));
}

static int fake_read_line(void *ctx, char **ret_line)
{
	struct fake_world *w = W(ctx);
	const char *p = w->input.data ? w->input.data + w->input_pos : "";
	const char *nl = strchr(p, '\n');

	*ret_line = NULL;
	if (w->pending_signal)
		return -EINTR;
	if (!nl) {
		/* nothing more typed: the user sits at the prompt until a
		 * scheduled signal, or the input ends */
		w->input_pos = w->input.len;
		if (w->signal_at < 0)
			return 0;
		advance_to(w, w->signal_at);
		return -EINTR;
	}
	*ret_line = kf_xstrndup(p, (size_t)(nl - p));
	w->input_pos += (size_t)(nl - p) + 1;
	note(w, "read_line %s", *ret_line);
	return 1;
}

static const struct kf_ops fake_ops = {
	.version = KF_OPS_VERSION,
	.name = "fake",
	.enumerate = fake_enumerate,
	.enumerate_net = fake_enumerate_net,
	.monitor_open = fake_monitor_open,
	.monitor_next = fake_monitor_next,
	.monitor_close = fake_monitor_close,
	.spawn = fake_spawn,
	.wait = fake_wait,
	.kill_group = fake_kill_group,
	.in_group = fake_in_group,
	.observe = fake_observe,
	.feed = fake_feed,
	.ready = fake_ready,
	.attach = fake_attach,
	.read_file = fake_read_file,
	.write_atomic = fake_write_atomic,
	.append = fake_append,
	.unlink = fake_unlink,
	.remove_tree = fake_remove_tree,
	.tidy = fake_tidy,
	.read_dir = fake_read_dir,
	.mkdir_p = fake_mkdir_p,
	.file_kind = fake_file_kind,
	.realpath = fake_realpath,
	.lock = fake_lock,
	.unlock = fake_unlock,
	.now = fake_now,
	.realtime = fake_realtime,
	.sleep_until = fake_sleep_until,
	.take_signal = fake_take_signal,
	.http_get = fake_http_get,
	.getenv = fake_getenv,
	.uid = fake_uid,
	.user_name = fake_user_name,
	.cpu_count = fake_cpu_count,
	.isatty = fake_isatty,
	.term_width = fake_term_width,
	.read_line = fake_read_line,
};

void fake_world_init(struct fake_world *w)
{
	memset(w, 0, sizeof(*w));
	w->ops = fake_ops;
	w->ops.ctx = w;
	w->now = 1000;
	w->next_pid = 4000;
	w->signal_at = -1;
	w->svc_can_manage = true;
	w->uid = 1000;
	w->user_name = "pi";
	w->lock_owner = (uid_t)-1;
	w->cpus = 4;
	fake_setenv(w, "HOME", "/home/pi");
	fake_setenv(w, "USER", "pi");
	fake_add_prog(w, (struct fake_prog){ .argv0 = "systemctl", .run = fake_systemctl });
	fake_add_prog(w, (struct fake_prog){ .argv0 = "sudo", .run = fake_sudo });
	fake_add_prog(w, (struct fake_prog){ .argv0 = "kflash", .until_eof = true });
}

void fake_world_release(struct fake_world *w)
{
	size_t i;

	for (i = 0; i < w->n_owned; i++)
		free(w->owned[i]);
	free(w->owned);

	for (i = 0; i < w->n_files; i++) {
		free(w->files[i].path);
		free(w->files[i].data);
	}
	for (i = 0; i < w->n_ttys; i++)
		kf_ttydev_release(&w->ttys[i]);
	for (i = 0; i < w->n_events; i++)
		kf_ttydev_release(&w->events[i]);
	for (i = 0; i < w->n_nets; i++)
		kf_ttydev_release(&w->nets[i]);
	for (i = 0; i < w->n_env; i++) {
		free(w->env[i].name);
		free(w->env[i].value);
	}
	kf_buf_release(&w->input);
	for (i = 0; i < w->n_procs; i++)
		kf_argv_free(w->procs[i].argv);
	kf_buf_release(&w->transcript);
}

void fake_add_prog(struct fake_world *w, struct fake_prog prog)
{
	if (w->n_progs == FAKE_MAX_PROGS)
		abort();
	w->progs[w->n_progs++] = prog;
}

void fake_signal_at(struct fake_world *w, int64_t when, int sig)
{
	w->signal_at = when;
	w->signal_num = sig;
}

void fake_printer_host(struct fake_world *w, const char *out)
{
	char *bin = kf_asprintf("%s/klipper.bin", out);

	w->urls[w->n_urls].url = "http://mr/printer/objects/query?print_stats&virtual_sdcard";
	w->urls[w->n_urls++].body = "{\"result\": {\"status\": {\"print_stats\": "
		"{\"state\": \"standby\", \"filename\": \"\"}, \"virtual_sdcard\": "
		"{\"progress\": 0}}}}";
	fake_add_prog(w, (struct fake_prog){ .argv0 = "make", .run_ms = 50 });
	/* the world outlives this call: its programs keep their strings */
	w->owned = kf_xrealloc(w->owned, (w->n_owned + 1) * sizeof(*w->owned));
	w->owned[w->n_owned++] = bin;
	fake_add_prog(w, (struct fake_prog){ .argv0 = "make", .match = " -j",
		.run_ms = 20000, .writes = bin, .writes_data = "FW" });
	fake_add_prog(w, (struct fake_prog){ .argv0 = "git", .output = "v0.13.0-1-gabc" });
	fake_add_prog(w, (struct fake_prog){ .argv0 = "arm-none-eabi-gcc", .output = "gcc 12" });
}

static char *slurp(FILE *f)
{
	struct kf_buf b = KF_BUF_INIT;
	char chunk[4096];
	size_t n;

	rewind(f);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		kf_buf_add(&b, chunk, n);
	fclose(f);
	kf_buf_add(&b, "", 0);
	return b.data;
}

struct fake_run fake_cli_run(const struct kf_cli_opts *opts)
{
	FILE *o = tmpfile(), *e = tmpfile();
	int so = dup(1), se = dup(2);
	struct fake_run r;

	fflush(stdout);
	fflush(stderr);
	dup2(fileno(o), 1);
	dup2(fileno(e), 2);
	r.code = kf_cli_run(opts);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	r.out = slurp(o);
	r.err = slurp(e);
	return r;
}

void fake_run_free(struct fake_run *r)
{
	free(r->out);
	free(r->err);
}
