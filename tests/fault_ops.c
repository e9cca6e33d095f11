/* fault_ops.c - countdown fault injection over any ops table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_ops.h"

#define F(ctx) ((struct fault_ops *)(ctx))
#define IN(ctx) (F(ctx)->inner)

/* Counts the call; true when it is the one that fails. In signal mode the
 * Nth call raises the signal and goes on. FAULT_NONE: a call only
 * FAULT_EVERY counts; can_fail false: one with no error to return. */
#define FAULT_NONE (-1)
static bool fire_as_(struct fault_ops *f, int k, bool can_fail, const char *fn)
{
	if (f->kind == FAULT_EVERY ? !can_fail && !f->signal
	    : k == FAULT_NONE || (f->kind != FAULT_ANY && (int)f->kind != k))
		return false;
	f->calls++;
	if (f->fired && f->persistent && !f->signal)
		return true;
	if (f->fired || f->countdown < 0)
		return false;
	if (--f->countdown != 0)
		return false;
	f->fired = true;
	f->fired_at = fn + 2;
	if (!f->signal)
		return true;
	f->raise(f->raise_data, f->signal);
	return false;
}

#define fire_as(f, k, can_fail) fire_as_(f, k, can_fail, __func__)
#define fire(f, k) fire_as_(f, (int)(k), true, __func__)

static int f_enumerate(void *c, struct kf_ttydev **d, size_t *n)
{
	if (fire(F(c), FAULT_UDEV))
		return F(c)->err;
	return kf_os_enumerate(IN(c), d, n);
}

static int f_enumerate_net(void *c, struct kf_ttydev **d, size_t *n)
{
	if (fire(F(c), FAULT_UDEV))
		return F(c)->err;
	return kf_os_enumerate_net(IN(c), d, n);
}

static int f_monitor_open(void *c, struct kf_monitor **m)
{
	if (fire(F(c), FAULT_UDEV))
		return F(c)->err;
	return kf_os_monitor_open(IN(c), m);
}

static int f_monitor_next(void *c, struct kf_monitor *m, int64_t d, struct kf_uevent *e)
{
	if (fire_as(F(c), FAULT_NONE, true))
		return F(c)->err;
	return kf_os_monitor_next(IN(c), m, d, e);
}

static void f_monitor_close(void *c, struct kf_monitor *m)
{
	kf_os_monitor_close(IN(c), m);
}

/* sudo and systemctl are how kflash talks to systemd: a fault there is a
 * service fault */
static bool is_service(const struct kf_spawn_req *r)
{
	return strcmp(r->argv[0], "sudo") == 0 || strcmp(r->argv[0], "systemctl") == 0;
}

static int f_spawn(void *c, const struct kf_spawn_req *r, struct kf_proc *p)
{
	if (fire(F(c), is_service(r) ? FAULT_SERVICE : FAULT_SPAWN))
		return F(c)->err;
	return kf_os_spawn(IN(c), r, p);
}

static int f_wait(void *c, struct kf_proc *p, int64_t d, kf_line_fn *fn, void *data,
		  struct kf_exit *e)
{
	if (fire_as(F(c), FAULT_NONE, true))
		return F(c)->err;
	return kf_os_wait(IN(c), p, d, fn, data, e);
}

static int f_kill_group(void *c, struct kf_proc *p, int sig)
{
	if (fire_as(F(c), FAULT_NONE, true))
		return F(c)->err;
	return kf_os_kill_group(IN(c), p, sig);
}

static int f_in_group(void *c, const char *group)
{
	if (fire_as(F(c), FAULT_NONE, true))
		return F(c)->err;
	return kf_os_in_group(IN(c), group);
}

static void f_observe(void *c, kf_child_fn *fn, void *data)
{
	kf_os_observe(IN(c), fn, data);
}

static int f_feed(void *c, struct kf_proc *p, const void *buf, size_t len)
{
	if (fire(F(c), FAULT_SPAWN))
		return F(c)->err;
	return kf_os_feed(IN(c), p, buf, len);
}

static int f_ready(void *c)
{
	if (fire(F(c), FAULT_SPAWN))
		return F(c)->err;
	return kf_os_ready(IN(c));
}

static int f_attach(void *c, pid_t pid, struct kf_proc *p)
{
	if (fire(F(c), FAULT_SPAWN))
		return F(c)->err;
	return kf_os_attach(IN(c), pid, p);
}

static int f_read_file(void *c, const char *path, char **b, size_t *n)
{
	if (fire(F(c), FAULT_FS_READ))
		return F(c)->err;
	return kf_os_read_file(IN(c), path, b, n);
}

static int f_write_atomic(void *c, const char *path, const void *b, size_t n, mode_t m)
{
	if (fire(F(c), FAULT_FS_WRITE))
		return F(c)->err;
	return kf_os_write_atomic(IN(c), path, b, n, m);
}

static int f_append(void *c, const char *path, const void *b, size_t n)
{
	if (fire(F(c), FAULT_FS_WRITE))
		return F(c)->err;
	return kf_os_append(IN(c), path, b, n);
}

static int f_unlink(void *c, const char *path)
{
	if (fire(F(c), FAULT_FS_WRITE))
		return F(c)->err;
	return kf_os_unlink(IN(c), path);
}

static int f_tidy(void *c, const char *dir)
{
	if (fire(F(c), FAULT_FS_WRITE))
		return F(c)->err;
	return kf_os_tidy(IN(c), dir);
}

static int f_remove_tree(void *c, const char *path)
{
	if (fire(F(c), FAULT_FS_WRITE))
		return F(c)->err;
	return kf_os_remove_tree(IN(c), path);
}

static int f_read_dir(void *c, const char *path, char ***names, size_t *n)
{
	if (fire(F(c), FAULT_FS_READ))
		return F(c)->err;
	return kf_os_read_dir(IN(c), path, names, n);
}

static int f_mkdir_p(void *c, const char *path, mode_t m)
{
	if (fire(F(c), FAULT_FS_WRITE))
		return F(c)->err;
	return kf_os_mkdir_p(IN(c), path, m);
}

static int f_file_kind(void *c, const char *path, enum kf_file_kind *k, off_t *s)
{
	if (fire(F(c), FAULT_FS_READ))
		return F(c)->err;
	return kf_os_file_kind(IN(c), path, k, s);
}

static int f_realpath(void *c, const char *path, char **ret)
{
	if (fire(F(c), FAULT_FS_READ))
		return F(c)->err;
	return kf_os_realpath(IN(c), path, ret);
}

static int f_lock(void *c, const char *path, int *fd, pid_t *holder, uid_t *owner)
{
	if (fire(F(c), FAULT_FS_WRITE))
		return F(c)->err;
	return kf_os_lock(IN(c), path, fd, holder, owner);
}

static void f_unlock(void *c, int fd)
{
	kf_os_unlock(IN(c), fd);
}

static int64_t f_now(void *c)
{
	return kf_os_now(IN(c));
}

static int64_t f_realtime(void *c)
{
	return kf_os_realtime(IN(c));
}

static int f_sleep_until(void *c, int64_t d)
{
	if (fire_as(F(c), FAULT_NONE, true))
		return F(c)->err;
	return kf_os_sleep_until(IN(c), d);
}

static int f_take_signal(void *c)
{
	(void)fire_as(F(c), FAULT_NONE, false);
	return kf_os_take_signal(IN(c));
}

static int f_http_get(void *c, const char *url, const char *const *headers, int t,
		      char **body, long *status)
{
	if (fire(F(c), FAULT_HTTP))
		return F(c)->err;
	return kf_os_http_get(IN(c), url, headers, t, body, status);
}

/* what kflash reads of the host cannot fail, except the CPU count */
static const char *f_getenv(void *c, const char *name)
{
	return kf_os_getenv(IN(c), name);
}

static uid_t f_uid(void *c)
{
	return kf_os_uid(IN(c));
}

static int f_user_name(void *c, uid_t uid, char **ret_name)
{
	return kf_os_user_name(IN(c), uid, ret_name);
}

static int f_cpu_count(void *c)
{
	if (fire(F(c), FAULT_HOST))
		return F(c)->err;
	return kf_os_cpu_count(IN(c));
}

static int f_isatty(void *c, int fd)
{
	return kf_os_isatty(IN(c), fd);
}

/* never fails: a terminal that does not say its size is 0 columns */
static int f_term_width(void *c, int fd)
{
	return kf_os_term_width(IN(c), fd);
}

static int f_read_line(void *c, char **ret_line)
{
	*ret_line = NULL;
	if (fire(F(c), FAULT_TTY))
		return F(c)->err;
	return kf_os_read_line(IN(c), ret_line);
}

static const struct kf_ops fault_table = {
	.version = KF_OPS_VERSION,
	.name = "fault",
	.enumerate = f_enumerate,
	.enumerate_net = f_enumerate_net,
	.monitor_open = f_monitor_open,
	.monitor_next = f_monitor_next,
	.monitor_close = f_monitor_close,
	.spawn = f_spawn,
	.wait = f_wait,
	.kill_group = f_kill_group,
	.in_group = f_in_group,
	.observe = f_observe,
	.feed = f_feed,
	.ready = f_ready,
	.attach = f_attach,
	.read_file = f_read_file,
	.write_atomic = f_write_atomic,
	.append = f_append,
	.unlink = f_unlink,
	.remove_tree = f_remove_tree,
	.tidy = f_tidy,
	.read_dir = f_read_dir,
	.mkdir_p = f_mkdir_p,
	.file_kind = f_file_kind,
	.realpath = f_realpath,
	.lock = f_lock,
	.unlock = f_unlock,
	.now = f_now,
	.realtime = f_realtime,
	.sleep_until = f_sleep_until,
	.take_signal = f_take_signal,
	.http_get = f_http_get,
	.getenv = f_getenv,
	.uid = f_uid,
	.user_name = f_user_name,
	.cpu_count = f_cpu_count,
	.isatty = f_isatty,
	.term_width = f_term_width,
	.read_line = f_read_line,
};

void fault_ops_init(struct fault_ops *f, const struct kf_ops *inner,
		    enum fault_kind kind, int nth, int err)
{
	int r = kf_ops_check(inner);

	if (r < 0) {
		fprintf(stderr, "fault_ops_init: the %s table cannot be wrapped: %s\n",
			inner->name ? inner->name : "unnamed", strerror(-r));
		abort();
	}
	memset(f, 0, sizeof(*f));
	f->ops = fault_table;
	f->ops.ctx = f;
	f->inner = inner;
	f->kind = kind;
	f->countdown = nth;
	f->err = err;
}
