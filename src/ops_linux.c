/* ops_linux.c - the real ops table: libudev, fork/exec, systemd, files, clock, libcurl.
 *
 * This is the only file in kflash that touches the world, the environment
 * and the terminal included (ci/check-door enforces it). Everything here is
 * mechanism; decisions live above.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libudev.h>

#include "kflash/ops.h"
#include "kflash/util.h"

extern char **environ;

struct kf_linux {
	struct kf_ops ops;	/* a copy of linux_ops with ctx = this */
	struct udev *udev;
	int sigpipe[2];
	bool curl_ready;
	kf_child_fn *observer;	/* hears of each child's fork and reap */
	void *observer_data;
};

/* The process group of the child running now, for the last-resort handler. */
static volatile pid_t current_group;

/* The signal handler can reach only statics. It records the signal and
 * wakes the poll loops through the self-pipe; deciding is for the caller. */
static volatile sig_atomic_t pending_signal;
static int sigpipe_write = -1;

static void on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;

	pending_signal = sig;
	if (sigpipe_write >= 0)
		(void)!write(sigpipe_write, &c, 1);
	errno = saved;
}

/* Last resort, on a crash: the running child's group must not outlive
 * kflash (the guardian then starts the unit again). No malloc, no stdio.
 * (Not installed under ASan, whose own handler must report the crash.) */
static __attribute__((unused)) void on_crash(int sig)
{
	pid_t g = current_group;

	if (g > 1)
		kill(-g, SIGTERM);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void drain_sigpipe(struct kf_linux *lx)
{
	char buf[64];

	while (read(lx->sigpipe[0], buf, sizeof(buf)) > 0)
		;
}

static int64_t linux_now(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t linux_realtime(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int poll_timeout(int64_t deadline)
{
	int64_t left;

	if (deadline == INT64_MAX)
		return -1;
	left = deadline - linux_now(NULL);
	if (left < 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static int linux_take_signal(void *ctx)
{
	struct kf_linux *lx = ctx;
	int sig = pending_signal;

	pending_signal = 0;
	drain_sigpipe(lx);
	return sig;
}

static int linux_sleep_until(void *ctx, int64_t deadline)
{
	struct kf_linux *lx = ctx;

	for (;;) {
		struct pollfd p = { .fd = lx->sigpipe[0], .events = POLLIN };
		int t;

		if (pending_signal)
			return -EINTR;
		t = poll_timeout(deadline);
		if (t == 0)
			return 0;
		if (poll(&p, 1, t) < 0 && errno != EINTR)
			return -errno;
	}
}

/* ---- udev ----------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? kf_xstrdup(s) : NULL;
}

static void fill_devlinks(struct kf_ttydev *d, const char *links)
{
	const char *p = links;

	while (p && *p) {
		size_t n = strcspn(p, " ");

		if (!d->by_id && n > 19 && strncmp(p, "/dev/serial/by-id/", 18) == 0)
			d->by_id = kf_xstrndup(p, n);
		else if (!d->by_path && n > 21 &&
			 strncmp(p, "/dev/serial/by-path/", 20) == 0)
			d->by_path = kf_xstrndup(p, n);
		p += n;
		p += strspn(p, " ");
	}
}

/* Reads what kflash needs of a tty device. Returns false for ttys that are
 * not USB serial devices (consoles, ttyS*), which kflash never lists. */
static bool read_ttydev(struct udev_device *dev, struct kf_ttydev *d)
{
	struct udev_device *usb;
	const char *node = udev_device_get_devnode(dev);
	const char *vid = udev_device_get_property_value(dev, "ID_VENDOR_ID");
	const char *pid = udev_device_get_property_value(dev, "ID_MODEL_ID");

	memset(d, 0, sizeof(*d));
	usb = udev_device_get_parent_with_subsystem_devtype(dev, "usb", "usb_device");
	if (!node || (!usb && !vid))
		return false;
	d->devnode = kf_xstrdup(node);
	fill_devlinks(d, udev_device_get_property_value(dev, "DEVLINKS"));
	if (usb) {
		const char *v = udev_device_get_sysattr_value(usb, "idVendor");
		const char *p = udev_device_get_sysattr_value(usb, "idProduct");

		d->vid = dup_or_null(v ? v : vid);
		d->pid = dup_or_null(p ? p : pid);
		d->manufacturer = dup_or_null(udev_device_get_sysattr_value(usb, "manufacturer"));
		d->product = dup_or_null(udev_device_get_sysattr_value(usb, "product"));
		d->serial = dup_or_null(udev_device_get_sysattr_value(usb, "serial"));
	} else {
		/* a removed device has no parent left: use the event's
		 * properties */
		d->vid = dup_or_null(vid);
		d->pid = dup_or_null(pid);
		d->manufacturer = dup_or_null(udev_device_get_property_value(dev, "ID_VENDOR"));
		d->product = dup_or_null(udev_device_get_property_value(dev, "ID_MODEL"));
		d->serial = dup_or_null(udev_device_get_property_value(dev, "ID_SERIAL_SHORT"));
	}
	d->driver = dup_or_null(udev_device_get_property_value(dev, "ID_USB_DRIVER"));
	return true;
}

/* A net device on USB: its interface name and its USB device's identity
 * (a gs_usb adapter, or a Klipper bridge: 1d50:606f "Klipper"). */
static bool read_netdev(struct udev_device *dev, struct kf_ttydev *d)
{
	struct udev_device *usb, *intf;
	const char *name = udev_device_get_sysname(dev);

	memset(d, 0, sizeof(*d));
	usb = udev_device_get_parent_with_subsystem_devtype(dev, "usb", "usb_device");
	if (!name || !usb)
		return false;
	d->iface = kf_xstrdup(name);
	d->vid = dup_or_null(udev_device_get_sysattr_value(usb, "idVendor"));
	d->pid = dup_or_null(udev_device_get_sysattr_value(usb, "idProduct"));
	d->manufacturer = dup_or_null(udev_device_get_sysattr_value(usb, "manufacturer"));
	d->product = dup_or_null(udev_device_get_sysattr_value(usb, "product"));
	d->serial = dup_or_null(udev_device_get_sysattr_value(usb, "serial"));
	d->by_path = dup_or_null(udev_device_get_sysname(usb));
	intf = udev_device_get_parent_with_subsystem_devtype(dev, "usb", "usb_interface");
	d->driver = dup_or_null(intf ? udev_device_get_driver(intf) : NULL);
	return true;
}

static int enumerate_with(struct kf_linux *lx, const char *subsystem,
			  bool (*read)(struct udev_device *, struct kf_ttydev *),
			  struct kf_ttydev **ret_devs, size_t *ret_n)
{
	struct udev_enumerate *en;
	struct udev_list_entry *e;
	struct kf_ttydev *devs = NULL;
	size_t n = 0;

	en = udev_enumerate_new(lx->udev);
	if (!en)
		return -ENOMEM;
	udev_enumerate_add_match_subsystem(en, subsystem);
	if (udev_enumerate_scan_devices(en) < 0) {
		udev_enumerate_unref(en);
		return -EIO;
	}
	udev_list_entry_foreach(e, udev_enumerate_get_list_entry(en)) {
		struct udev_device *dev;
		struct kf_ttydev d;

		dev = udev_device_new_from_syspath(lx->udev, udev_list_entry_get_name(e));
		if (!dev)
			continue;	/* gone between scan and read */
		if (read(dev, &d)) {
			devs = kf_xrealloc(devs, (n + 1) * sizeof(*devs));
			devs[n++] = d;
		}
		udev_device_unref(dev);
	}
	udev_enumerate_unref(en);
	*ret_devs = devs;
	*ret_n = n;
	return 0;
}

static int linux_enumerate(void *ctx, struct kf_ttydev **ret_devs, size_t *ret_n)
{
	return enumerate_with(ctx, "tty", read_ttydev, ret_devs, ret_n);
}

static int linux_enumerate_net(void *ctx, struct kf_ttydev **ret_devs, size_t *ret_n)
{
	return enumerate_with(ctx, "net", read_netdev, ret_devs, ret_n);
}

static int linux_monitor_open(void *ctx, struct kf_monitor **ret_mon)
{
	struct kf_linux *lx = ctx;
	struct udev_monitor *m;

	m = udev_monitor_new_from_netlink(lx->udev, "udev");
	if (!m)
		return -EIO;
	if (udev_monitor_filter_add_match_subsystem_devtype(m, "tty", NULL) < 0 ||
	    udev_monitor_enable_receiving(m) < 0) {
		udev_monitor_unref(m);
		return -EIO;
	}
	*ret_mon = (struct kf_monitor *)m;
	return 0;
}

static int linux_monitor_next(void *ctx, struct kf_monitor *mon, int64_t deadline,
			      struct kf_uevent *ret_ev)
{
	struct kf_linux *lx = ctx;
	struct udev_monitor *m = (struct udev_monitor *)mon;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = udev_monitor_get_fd(m), .events = POLLIN },
			{ .fd = lx->sigpipe[0], .events = POLLIN },
		};
		struct udev_device *dev;
		const char *action;
		int t;

		if (pending_signal)
			return -EINTR;
		t = poll_timeout(deadline);
		if (poll(p, 2, t) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!(p[0].revents & POLLIN)) {
			if (poll_timeout(deadline) == 0)
				return 0;
			continue;
		}
		dev = udev_monitor_receive_device(m);
		if (!dev)
			continue;
		action = udev_device_get_action(dev);
		memset(ret_ev, 0, sizeof(*ret_ev));
		if (!read_ttydev(dev, &ret_ev->dev)) {
			udev_device_unref(dev);
			continue;
		}
		ret_ev->action = !action ? KF_UEVENT_OTHER
			: strcmp(action, "add") == 0 ? KF_UEVENT_ADD
			: strcmp(action, "remove") == 0 ? KF_UEVENT_REMOVE
			: KF_UEVENT_OTHER;
		udev_device_unref(dev);
		return 1;
	}
}

static void linux_monitor_close(void *ctx, struct kf_monitor *mon)
{
	(void)ctx;
	udev_monitor_unref((struct udev_monitor *)mon);
}

/* ---- children ------------------------------------------------------------- */

struct linux_proc {
	int pidfd;
	bool foreground;	/* holds the terminal while it runs */
	bool detached;		/* a helper: no observer, no current group */
	bool foreign;		/* attached: another program's child */
	struct kf_buf partial;	/* captured output not yet ended by \n */
};

static char **build_env(const char *const *extra)
{
	size_t n = 0, m = 0, i, j;
	char **env;

	while (environ[n])
		n++;
	while (extra && extra[m])
		m++;
	env = kf_xcalloc(n + m + 1, sizeof(*env));
	for (i = 0, j = 0; i < n; i++) {
		size_t k, name_len = strcspn(environ[i], "=");
		bool overridden = false;

		for (k = 0; k < m; k++)
			if (strncmp(extra[k], environ[i], name_len + 1) == 0)
				overridden = true;
		if (!overridden)
			env[j++] = environ[i];
	}
	for (i = 0; i < m; i++)
		env[j++] = (char *)extra[i];
	return env;
}

/* nice 19, SCHED_IDLE and I/O class idle for the calling process; its
 * children inherit all three. Plain system calls: safe after fork. */
static void set_idle_priority(void)
{
	/* <linux/ioprio.h>: class in the top bits, IOPRIO_WHO_PROCESS 1 */
	enum { IOPRIO_CLASS_IDLE = 3, IOPRIO_CLASS_SHIFT = 13, IOPRIO_WHO_PROCESS = 1 };
	struct sched_param sp = { .sched_priority = 0 };

	(void)setpriority(PRIO_PROCESS, 0, 19);
	(void)sched_setscheduler(0, SCHED_IDLE, &sp);
	(void)syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0,
		      IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
}

/* dup2 that also clears close-on-exec when from is already to. */
static void move_fd(int from, int to)
{
	if (from == to)
		(void)fcntl(to, F_SETFD, 0);
	else
		(void)dup2(from, to);
}

/* The fds a child gets: each >= 0 is moved to its place before exec. */
struct child_fds {
	int in_r;	/* stdin pipe (in == PIPE) */
	int out_w;	/* capture pipe */
	int err_w;	/* exec failure, close-on-exec */
	int ready_w;	/* detached: readiness, fd 3 across exec */
};

#define READY_FD 3

/* In the child between fork and exec: only async-signal-safe calls. */
static void child_exec(const struct kf_spawn_req *req, char **env,
		       struct child_fds fds, bool foreground, pid_t parent)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int sig, e;

	if (req->detach) {
		/* its own session: a dropped SSH login or Ctrl+C to kflash's
		 * group does not reach it, and it must outlive kflash */
		(void)setsid();
	} else {
		setpgid(0, 0);
		/* if kflash is killed outright, the direct child hears of
		 * it; if that happened before this line, no signal comes:
		 * look (systemd's safe_fork does the same) */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
	}
	/* high, close-on-exec copies first, so that moving one into place
	 * cannot overwrite another */
	if (fds.in_r >= 0)
		fds.in_r = fcntl(fds.in_r, F_DUPFD_CLOEXEC, 10);
	if (fds.out_w >= 0)
		fds.out_w = fcntl(fds.out_w, F_DUPFD_CLOEXEC, 10);
	if (fds.ready_w >= 0)
		fds.ready_w = fcntl(fds.ready_w, F_DUPFD_CLOEXEC, 10);
	fds.err_w = fcntl(fds.err_w, F_DUPFD_CLOEXEC, 10);
	if (foreground) {
		/* take the terminal so menuconfig can read keys */
		signal(SIGTTOU, SIG_IGN);
		(void)tcsetpgrp(STDIN_FILENO, getpid());
	}
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (req->in == KF_STDIO_PIPE && fds.in_r >= 0) {
		dup2(fds.in_r, STDIN_FILENO);
	} else if (req->in != KF_STDIO_INHERIT) {
		int fd = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			close(fd);
		}
	}
	if (req->out == KF_STDIO_CAPTURE && !req->detach && fds.out_w >= 0) {
		dup2(fds.out_w, STDOUT_FILENO);
		dup2(fds.out_w, STDERR_FILENO);
	} else if (req->out == KF_STDIO_NULL || req->detach) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
	}
	if (req->idle)
		set_idle_priority();
	if (fds.ready_w >= 0)
		move_fd(fds.ready_w, READY_FD);
	if (req->cwd && chdir(req->cwd) < 0)
		goto fail;
	if (req->self)
		execve("/proc/self/exe", (char *const *)req->argv, env);
	else
		execvpe(req->argv[0], (char *const *)req->argv, env);
fail:
	e = errno;
	(void)!write(fds.err_w, &e, sizeof(e));
	_exit(127);
}

/* Waits for a detached helper's word on its readiness pipe: 0 when it
 * came, -ECHILD when the helper ended first, -ETIMEDOUT. Signals to kflash
 * stay pending for whoever waits next. */
static int wait_ready(int fd, int timeout_ms)
{
	int64_t deadline = linux_now(NULL) + timeout_ms;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char c;
		int t = poll_timeout(deadline), n;

		if (t == 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, t);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		n = (int)read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		return n == 1 ? 0 : -ECHILD;
	}
}

static void reap_now(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void tell_observer(struct kf_linux *lx, pid_t pid, bool running)
{
	if (lx->observer)
		lx->observer(lx->observer_data, pid, running);
}

static void close_pair(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	p[0] = p[1] = -1;
}

static int linux_spawn(void *ctx, const struct kf_spawn_req *req,
		       struct kf_proc *ret_proc)
{
	struct kf_linux *lx = ctx;
	struct linux_proc *lp;
	int errp[2] = { -1, -1 }, outp[2] = { -1, -1 }, inp[2] = { -1, -1 };
	int readyp[2] = { -1, -1 };
	struct child_fds fds;
	const char **extra = NULL;
	char spawner[40], ready_fd[32], stdin_pipe[48];
	sigset_t all, old;
	char **env;
	bool fg;
	pid_t pid, parent = getpid();
	size_t n_extra = 0;
	ssize_t n;
	int e = 0;

	memset(ret_proc, 0, sizeof(*ret_proc));
	ret_proc->out_fd = -1;
	ret_proc->in_fd = -1;
	if (req->detach && req->in != KF_STDIO_PIPE)
		return -EINVAL;
	if (pipe2(errp, O_CLOEXEC) < 0 ||
	    (req->out == KF_STDIO_CAPTURE && !req->detach && pipe2(outp, O_CLOEXEC) < 0) ||
	    (req->in == KF_STDIO_PIPE && pipe2(inp, O_CLOEXEC) < 0) ||
	    (req->detach && pipe2(readyp, O_CLOEXEC) < 0)) {
		e = -errno;
		close_pair(errp);
		close_pair(outp);
		close_pair(inp);
		close_pair(readyp);
		return e;
	}
	fg = req->in == KF_STDIO_INHERIT && !req->detach && isatty(STDIN_FILENO) &&
	     tcgetpgrp(STDIN_FILENO) == getpgrp();
	/* a detached helper learns who spawned it and where to say it is
	 * ready (ready()) */
	while (req->env && req->env[n_extra])
		n_extra++;
	extra = kf_xcalloc(n_extra + 4, sizeof(*extra));
	if (n_extra)
		memcpy(extra, req->env, n_extra * sizeof(*extra));
	if (req->detach) {
		struct stat st;

		snprintf(spawner, sizeof(spawner), "KFLASH_SPAWNER=%ld", (long)parent);
		snprintf(ready_fd, sizeof(ready_fd), "KFLASH_READY_FD=%d", READY_FD);
		/* which pipe its orders come on: ready() refuses any other
		 * stdin */
		snprintf(stdin_pipe, sizeof(stdin_pipe), "KFLASH_SPAWNER_PIPE=%llu",
			 fstat(inp[0], &st) == 0 ? (unsigned long long)st.st_ino : 0ULL);
		extra[n_extra++] = spawner;
		extra[n_extra++] = ready_fd;
		extra[n_extra++] = stdin_pipe;
	}
	env = build_env(extra);
	fds = (struct child_fds){ .in_r = inp[0], .out_w = outp[1], .err_w = errp[1],
				  .ready_w = readyp[1] };

	/* no handler may run in the child before it resets them */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		child_exec(req, env, fds, fg, parent);
	if (pid > 0 && !req->detach) {
		/* both sides set the group: no window where a kill misses
		 * (not for a helper: a group leader could not call setsid) */
		(void)setpgid(pid, pid);
		if (fg) {
			signal(SIGTTOU, SIG_IGN);
			(void)tcsetpgrp(STDIN_FILENO, pid);
		}
		/* told before anything else can happen to kflash */
		tell_observer(lx, pid, true);
	}
	e = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(env);
	free(extra);
	close(errp[1]);
	if (outp[1] >= 0)
		close(outp[1]);
	if (inp[0] >= 0)
		close(inp[0]);
	if (readyp[1] >= 0)
		close(readyp[1]);
	if (pid < 0) {
		close(errp[0]);
		if (outp[0] >= 0)
			close(outp[0]);
		if (inp[1] >= 0)
			close(inp[1]);
		if (readyp[0] >= 0)
			close(readyp[0]);
		return -e;
	}
	/* exec failure comes back through the close-on-exec pipe */
	do
		n = read(errp[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(errp[0]);
	if (n != sizeof(e) && req->detach) {
		e = -wait_ready(readyp[0], req->ready_ms);
		if (e)
			(void)kill(-pid, SIGKILL);	/* its session's group */
		n = e ? (ssize_t)sizeof(e) : 0;
	}
	if (readyp[0] >= 0)
		close(readyp[0]);
	if (n == sizeof(e)) {
		reap_now(pid);
		if (!req->detach)
			tell_observer(lx, pid, false);
		if (fg)
			(void)tcsetpgrp(STDIN_FILENO, getpgrp());
		if (outp[0] >= 0)
			close(outp[0]);
		if (inp[1] >= 0)
			close(inp[1]);
		return -e;
	}
	if (!req->detach)
		current_group = pid;
	lp = kf_xcalloc(1, sizeof(*lp));
	lp->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	lp->foreground = fg;
	lp->detached = req->detach;
	if (outp[0] >= 0)
		fcntl(outp[0], F_SETFL, O_NONBLOCK);
	ret_proc->pid = pid;
	ret_proc->out_fd = outp[0];
	ret_proc->in_fd = inp[1];
	ret_proc->backend = lp;
	return 0;
}

static void emit_lines(struct linux_proc *lp, bool flush, kf_line_fn *on_line,
		       void *data)
{
	char *start = lp->partial.data, *nl;

	if (!start)
		return;
	while ((nl = memchr(start, '\n', lp->partial.len -
			    (size_t)(start - lp->partial.data)))) {
		size_t n = (size_t)(nl - start);

		if (n && start[n - 1] == '\r')
			n--;
		if (on_line)
			on_line(data, start, n);
		start = nl + 1;
	}
	{
		size_t rest = lp->partial.len - (size_t)(start - lp->partial.data);

		if (flush && rest && on_line)
			on_line(data, start, rest);
		if (flush)
			rest = 0;
		memmove(lp->partial.data, start, rest);
		lp->partial.len = rest;
		lp->partial.data[rest] = '\0';
	}
}

/* Reads what is available; returns false at EOF. */
static bool read_output(struct kf_proc *p, struct linux_proc *lp,
			kf_line_fn *on_line, void *data)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(p->out_fd, buf, sizeof(buf));

		if (n > 0) {
			kf_buf_add(&lp->partial, buf, (size_t)n);
			continue;
		}
		emit_lines(lp, false, on_line, data);
		if (n == 0)
			return false;
		return errno == EAGAIN || errno == EINTR;
	}
}

static void proc_done(struct kf_proc *p, struct linux_proc *lp)
{
	if (lp->foreground)
		(void)tcsetpgrp(STDIN_FILENO, getpgrp());
	if (p->out_fd >= 0)
		close(p->out_fd);
	if (p->in_fd >= 0)
		close(p->in_fd);
	if (lp->pidfd >= 0)
		close(lp->pidfd);
	kf_buf_release(&lp->partial);
	free(lp);
	p->out_fd = -1;
	p->in_fd = -1;
	p->backend = NULL;
}

static bool try_reap(struct kf_proc *p, struct linux_proc *lp, struct kf_exit *ex)
{
	siginfo_t si;

	if (lp->foreign) {
		/* not ours to reap: it ended when its pidfd reads */
		struct pollfd pfd = { .fd = lp->pidfd, .events = POLLIN };

		if (poll(&pfd, 1, 0) <= 0)
			return false;
		ex->kind = KF_EXIT_EXITED;
		return true;
	}
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return false;
	if (si.si_code == CLD_EXITED) {
		ex->kind = KF_EXIT_EXITED;
		ex->code = si.si_status;
	} else {
		ex->kind = KF_EXIT_SIGNALED;
		ex->sig = si.si_status;
	}
	return true;
}

static int linux_wait(void *ctx, struct kf_proc *p, int64_t deadline,
		      kf_line_fn *on_line, void *line_data, struct kf_exit *ret_exit)
{
	struct kf_linux *lx = ctx;
	struct linux_proc *lp = p->backend;

	memset(ret_exit, 0, sizeof(*ret_exit));
	if (!lp)
		return -ECHILD;
	for (;;) {
		struct pollfd fds[3] = {
			{ .fd = lp->pidfd, .events = POLLIN },
			{ .fd = lx->sigpipe[0], .events = POLLIN },
			{ .fd = p->out_fd, .events = POLLIN },
		};
		int t;

		if (try_reap(p, lp, ret_exit)) {
			if (current_group == p->pid)
				current_group = 0;
			if (!lp->detached && !lp->foreign)
				tell_observer(lx, p->pid, false);
			if (p->out_fd >= 0)
				(void)read_output(p, lp, on_line, line_data);
			emit_lines(lp, true, on_line, line_data);
			proc_done(p, lp);
			return 0;
		}
		if (pending_signal) {
			ret_exit->kind = KF_EXIT_RUNNING;
			ret_exit->interrupted_by = pending_signal;
			return 0;
		}
		t = poll_timeout(deadline);
		if (t == 0) {
			ret_exit->kind = KF_EXIT_RUNNING;
			return 0;
		}
		/* without a pidfd (old kernel) fall back to a short tick */
		if (lp->pidfd < 0 && (t < 0 || t > 50))
			t = 50;
		if (poll(fds, 3, t) < 0 && errno != EINTR)
			return -errno;
		if (fds[2].revents && !read_output(p, lp, on_line, line_data)) {
			/* EOF: every writer is gone; keep waiting for exit */
			close(p->out_fd);
			p->out_fd = -1;
		}
	}
}

static int linux_kill_group(void *ctx, struct kf_proc *p, int sig)
{
	(void)ctx;
	if (p->pid <= 1)
		return -EINVAL;
	if (kill(-p->pid, sig) < 0 && errno != ESRCH)
		return -errno;
	return 0;
}

static int linux_in_group(void *ctx, const char *name)
{
	struct group *g = getgrnam(name);
	gid_t groups[256];
	int n, i;

	(void)ctx;
	if (!g)
		return 0;
	if (getegid() == g->gr_gid || geteuid() == 0)
		return 1;
	n = getgroups(256, groups);
	for (i = 0; i < n; i++)
		if (groups[i] == g->gr_gid)
			return 1;
	return 0;
}

/* ---- what the guardian is built on ----------------------------------------- */

static void linux_observe(void *ctx, kf_child_fn *fn, void *data)
{
	struct kf_linux *lx = ctx;

	lx->observer = fn;
	lx->observer_data = data;
}

static int write_all(int fd, const char *p, size_t len);

static int linux_feed(void *ctx, struct kf_proc *p, const void *buf, size_t len)
{
	(void)ctx;
	if (p->in_fd < 0)
		return -EBADF;
	if (!buf) {
		close(p->in_fd);
		p->in_fd = -1;
		return 0;
	}
	return write_all(p->in_fd, buf, len);
}

/* Whether stdin is the anonymous pipe of inode ino. /proc names such a pipe
 * "pipe:[INO]" and a named FIFO by its path: only an anonymous pipe is out
 * of other users' reach (opening it through /proc/PID/fd takes the right
 * to ptrace its holder). */
static bool stdin_is_pipe(const char *ino)
{
	char link[64], want[64];
	struct stat st;
	ssize_t n;

	if (!ino || !*ino || strcmp(ino, "0") == 0)
		return false;
	if (fstat(STDIN_FILENO, &st) < 0 || !S_ISFIFO(st.st_mode))
		return false;
	n = readlink("/proc/self/fd/0", link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	snprintf(want, sizeof(want), "pipe:[%llu]", (unsigned long long)st.st_ino);
	return strcmp(link, want) == 0 && strtoull(ino, NULL, 10) == st.st_ino;
}

static int linux_ready(void *ctx)
{
	const char *who = getenv("KFLASH_SPAWNER"), *where = getenv("KFLASH_READY_FD");
	bool piped = stdin_is_pipe(getenv("KFLASH_SPAWNER_PIPE"));
	pid_t spawner;
	int fd, r = 0;

	(void)ctx;
	if (!who || !where)
		return -ENOTCONN;
	spawner = (pid_t)atol(who);
	fd = atoi(where);
	/* the children this helper starts are not helpers */
	unsetenv("KFLASH_SPAWNER");
	unsetenv("KFLASH_READY_FD");
	unsetenv("KFLASH_SPAWNER_PIPE");
	if (!piped) {
		/* not a word: the spawner gives up on this helper */
		close(fd);
		return -EBADF;
	}
	/* the one that forked it may have died before this helper could
	 * listen, and nobody would say so: its parent is init now */
	if (getppid() != spawner)
		r = -ESRCH;
	if (write(fd, "\n", 1) != 1 && r == 0)
		r = errno == EPIPE ? -ESRCH : -errno;
	close(fd);
	return r;
}

static int linux_attach(void *ctx, pid_t pid, struct kf_proc *ret_proc)
{
	struct linux_proc *lp;
	int fd;

	(void)ctx;
	memset(ret_proc, 0, sizeof(*ret_proc));
	ret_proc->out_fd = -1;
	ret_proc->in_fd = -1;
	if (pid <= 1)
		return -EINVAL;
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return -errno;
	lp = kf_xcalloc(1, sizeof(*lp));
	lp->pidfd = fd;
	lp->foreign = true;
	ret_proc->pid = pid;
	ret_proc->backend = lp;
	return 0;
}

/* ---- files ---------------------------------------------------------------- */

static int linux_read_file(void *ctx, const char *path, char **ret_buf, size_t *ret_len)
{
	struct kf_buf b = KF_BUF_INIT;
	char chunk[65536];
	struct stat st;
	int fd, e;

	(void)ctx;
	/* O_NONBLOCK: opening a FIFO nobody writes must not hang kflash where
	 * no signal can reach it (open is restarted). A pipe (the guardian's
	 * stdin) is then read as it is meant to be: to its end. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	e = fstat(fd, &st) < 0 ? -errno : S_ISDIR(st.st_mode) ? -EISDIR : 0;
	if (e < 0) {
		close(fd);
		return e;
	}
	if (!S_ISREG(st.st_mode))
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n > 0) {
			kf_buf_add(&b, chunk, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		e = n < 0 ? -errno : 0;
		break;
	}
	close(fd);
	if (e < 0) {
		kf_buf_release(&b);
		return e;
	}
	if (!b.data)
		kf_buf_add(&b, "", 0);
	*ret_buf = b.data;
	if (ret_len)
		*ret_len = b.len;
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char *dir = kf_xstrdup(path);
	char *slash = strrchr(dir, '/');
	int fd, r = 0;

	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

static char *dir_of(const char *path)
{
	char *dir = kf_xstrdup(path), *slash = strrchr(dir, '/');

	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	return dir;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* What a save replaces: path, or the file the symbolic links at path lead
 * to, which need not exist yet (a dangling link is written through too):
 * a devices.json linked into a dotfiles repository stays a link. */
static int resolve_links(const char *path, char **ret_target)
{
	char *p = kf_xstrdup(path);
	int hops;

	for (hops = 0; hops < 40; hops++) {
		char to[PATH_MAX], *dir;
		struct stat st;
		ssize_t n;

		if (lstat(p, &st) < 0 || !S_ISLNK(st.st_mode)) {
			*ret_target = p;
			return 0;
		}
		n = readlink(p, to, sizeof(to) - 1);
		if (n < 0) {
			n = -errno;
			free(p);
			return (int)n;
		}
		to[n] = '\0';
		dir = dir_of(p);
		free(p);
		p = to[0] == '/' ? kf_xstrdup(to) : kf_asprintf("%s/%s", dir, to);
		free(dir);
	}
	free(p);
	return -ELOOP;
}

/* An existing file keeps the mode its owner gave it (a chmod 600 stays),
 * but a file kflash makes private (mode has no group or other bits:
 * devices.json holds the Moonraker API key) is kept private. A new file
 * gets mode less the umask, as open() would give it. */
static mode_t save_mode(const char *target, mode_t mode)
{
	struct stat st;
	mode_t um;

	if (stat(target, &st) == 0 && S_ISREG(st.st_mode))
		return (st.st_mode & 0777) & (mode & 077 ? 0777 : 0700);
	um = umask(0);
	(void)umask(um);
	return mode & 0777 & ~um;
}

/* base.tmp.XXXXXX: the name a save gives its temp file (base NULL: any) */
static bool is_temp_of(const char *name, const char *base)
{
	size_t n, i;
	const char *tmp = strstr(name, ".tmp.");

	if (!tmp || tmp == name)
		return false;
	n = base ? strlen(base) : (size_t)(tmp - name);
	if ((base && strncmp(name, base, n) != 0) || strncmp(name + n, ".tmp.", 5) != 0)
		return false;
	name += n + 5;
	for (i = 0; name[i]; i++)
		if (!isalnum((unsigned char)name[i]))
			return false;
	return i == 6;
}

/* Every writer holds a flock on its temp file from before the file has a
 * name until its close, so a temp file nobody holds is a dead writer's
 * (killed between the link and the rename, or at any point with the named
 * fallback) and is removed; the next save cleans what a kill left, so
 * temp files never pile up. A pid in the name would not do: pids are
 * reused, and a live writer's file must never go. The inode is checked
 * again after the lock: the name may have been renamed away and made
 * anew meanwhile. */
static int remove_stale_temps(const char *dir, const char *base)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		struct stat st, now;
		int fd;

		if (!is_temp_of(e->d_name, base))
			continue;
		fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    fstatat(dirfd(d), e->d_name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
		    now.st_dev == st.st_dev && now.st_ino == st.st_ino)
			(void)unlinkat(dirfd(d), e->d_name, 0);
		close(fd);
	}
	closedir(d);
	return 0;
}

static int linux_tidy(void *ctx, const char *dir)
{
	(void)ctx;
	return remove_stale_temps(dir, NULL);
}

/* A named temp file (no O_TMPFILE here), locked before anyone may take it
 * for a dead writer's: one that a cleaner got first is made anew. */
static int named_temp(char *tmp, size_t tmp_len)
{
	int tries;

	for (tries = 0; tries < 100; tries++) {
		struct stat st, now;
		int fd;

		memcpy(tmp + tmp_len - 6, "XXXXXX", 6);
		fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 &&
		    lstat(tmp, &now) == 0 && now.st_ino == st.st_ino && now.st_dev == st.st_dev)
			return fd;
		close(fd);
	}
	return -EEXIST;
}

/* The new content is written to an unnamed file (O_TMPFILE), so a kflash
 * killed while writing leaves nothing behind; only when it is complete and
 * on disk does it get a name, and rename() swaps it in whole. Filesystems
 * without O_TMPFILE get a named temp file instead. Either way the temp
 * file is locked while its writer lives (remove_stale_temps). */
static int linux_write_atomic(void *ctx, const char *path, const void *buf,
			      size_t len, mode_t mode)
{
	char *target = NULL, *dir = NULL, *tmp = NULL;
	const char *base;
	int fd, r;
	bool unnamed = true, named = false;
	mode_t fmode;

	(void)ctx;
	r = resolve_links(path, &target);
	if (r < 0)
		return r;
	dir = dir_of(target);
	base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
	tmp = kf_asprintf("%s.tmp.XXXXXX", target);
	fmode = save_mode(target, mode);
	fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, fmode);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		close(fd);
		goto out;
	}
	if (fd < 0) {
		unnamed = false;
		fd = named_temp(tmp, strlen(tmp));
		named = fd >= 0;
	}
	if (fd < 0) {
		r = fd;
		goto out;
	}
	r = write_all(fd, buf, len);
	if (r == 0 && fchmod(fd, fmode) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && unnamed) {
		char proc[64];
		int tries;

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		for (tries = 0; tries < 100; tries++) {
			unsigned int rnd;

			/* a fresh name: the only window left for a kill is
			 * between this link and the rename */
			if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
				rnd = (unsigned int)getpid() ^ (unsigned int)tries;
			snprintf(tmp + strlen(tmp) - 6, 7, "%06x", rnd & 0xffffff);
			if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0) {
				named = true;
				break;
			}
			if (errno != EEXIST) {
				r = -errno;
				break;
			}
		}
		if (!named && r == 0)
			r = -EEXIST;
	}
	if (r == 0 && rename(tmp, target) < 0)
		r = -errno;
	if (r < 0 && named)
		(void)unlink(tmp);
	/* the lock goes with the last descriptor: after the rename, or the
	 * unlink of a failed save's temp file */
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0)
		r = fsync_dir_of(target);
	if (r == 0)
		(void)remove_stale_temps(dir, base);
out:
	free(target);
	free(dir);
	free(tmp);
	return r;
}

static int linux_append(void *ctx, const char *path, const void *buf, size_t len)
{
	int fd, r;

	(void)ctx;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	r = write_all(fd, buf, len);
	close(fd);
	return r;
}

static int linux_unlink(void *ctx, const char *path)
{
	(void)ctx;
	return unlink(path) < 0 ? -errno : 0;
}

static int remove_one(const char *path, const struct stat *st, int type,
		      struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int linux_remove_tree(void *ctx, const char *path)
{
	struct stat st;
	int r;

	(void)ctx;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	/* depth first, on this file system only, links removed as links */
	r = nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	return r < 0 ? -errno : r;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int linux_read_dir(void *ctx, const char *path, char ***ret_names,
			  size_t *ret_n)
{
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;

	(void)ctx;
	d = opendir(path);
	if (!d)
		return -errno;
	errno = 0;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			names = kf_xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = kf_xstrdup(e->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
	*ret_names = names;
	*ret_n = n;
	return 0;
}

static int linux_mkdir_p(void *ctx, const char *path, mode_t mode)
{
	char *p = kf_xstrdup(path), *s;
	int r = 0;

	(void)ctx;
	for (s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		{
			char c = *s;

			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				r = -errno;
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return r;
}

static int linux_file_kind(void *ctx, const char *path, enum kf_file_kind *ret_kind,
			   off_t *ret_size)
{
	struct stat st;

	(void)ctx;
	if (stat(path, &st) < 0) {
		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
		*ret_kind = KF_FILE_NONE;
		if (ret_size)
			*ret_size = 0;
		return 0;
	}
	*ret_kind = S_ISREG(st.st_mode) ? KF_FILE_REG
		  : S_ISDIR(st.st_mode) ? KF_FILE_DIR : KF_FILE_OTHER;
	if (ret_size)
		*ret_size = st.st_size;
	return 0;
}

static int linux_realpath(void *ctx, const char *path, char **ret_path)
{
	char *p;

	(void)ctx;
	p = realpath(path, NULL);
	if (!p)
		return -errno;
	*ret_path = p;
	return 0;
}

/* The pid is written at a fixed width, so each holder overwrites all of the
 * last one's and the file is never truncated. */
#define LOCK_PID_FMT "%10ld\n"

/* /run/lock is writable by everyone (sticky), so another user can put
 * anything at a lock's name before kflash comes: a symbolic link to a file
 * of ours (we would write our pid into it), a FIFO (open would block), a
 * file of theirs. Hence O_NOFOLLOW, O_NONBLOCK, regular files only, and a
 * pid written only into a file this user owns; the caller decides whether
 * a lock owned by someone else may be used (a per-board lock is shared by
 * design, the per-user one is not). */
static int linux_lock(void *ctx, const char *path, int *ret_fd, pid_t *ret_holder,
		      uid_t *ret_owner)
{
	const int flags = O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	struct stat st;
	char buf[32];
	int fd;

	(void)ctx;
	*ret_fd = -1;
	*ret_holder = 0;
	*ret_owner = (uid_t)-1;
	fd = open(path, O_RDWR | O_CREAT | flags, 0644);
	if (fd < 0 && (errno == EACCES || errno == EPERM))
		/* another user's file (fs.protected_regular refuses O_CREAT
		 * on it even when it is writable): flock needs no write
		 * access */
		fd = open(path, O_RDONLY | flags);
	if (fd < 0) {
		int e = errno;

		if (lstat(path, &st) == 0)
			*ret_owner = st.st_uid;
		/* a symbolic link is ELOOP, or EMLINK on some BSDs */
		return e == EMLINK ? -ELOOP : -e;
	}
	if (fstat(fd, &st) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	*ret_owner = st.st_uid;
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

		if (n > 0) {
			buf[n] = '\0';
			*ret_holder = (pid_t)atoi(buf);
		}
		close(fd);
		return e == EWOULDBLOCK ? -EWOULDBLOCK : -e;
	}
	/* a lock left by a dead process is released by the kernel with its
	 * fd, so whatever pid is in the file now is stale: overwrite it */
	snprintf(buf, sizeof(buf), LOCK_PID_FMT, (long)getpid());
	if (st.st_uid == geteuid() && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR &&
	    pwrite(fd, buf, strlen(buf), 0) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	*ret_fd = fd;
	return 0;
}

static void linux_unlock(void *ctx, int fd)
{
	(void)ctx;
	if (fd >= 0)
		close(fd);
}

/* ---- HTTP ----------------------------------------------------------------- */

/* The most an answer may hold: Moonraker's largest is a few hundred KiB. */
#define HTTP_BODY_MAX (8u << 20)

struct http_body {
	struct kf_buf buf;
	bool too_big;
};

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
	struct http_body *b = user;

	if (b->buf.len + size * n > HTTP_BODY_MAX) {
		b->too_big = true;
		return 0;
	}
	kf_buf_add(&b->buf, data, size * n);
	return size * n;
}

/* curl calls this at least once a second while it waits: a signal ends
 * the request then, as it ends every other wait */
static int on_progress(void *user, curl_off_t dt, curl_off_t dn, curl_off_t ut,
		       curl_off_t un)
{
	(void)user, (void)dt, (void)dn, (void)ut, (void)un;
	return pending_signal != 0;
}

static int linux_http_get(void *ctx, const char *url, const char *const *headers,
			  int timeout_ms, char **ret_body, long *ret_status)
{
	struct kf_linux *lx = ctx;
	struct http_body b = { KF_BUF_INIT, false };
	struct curl_slist *hl = NULL;
	CURLcode c;
	CURL *h;
	long status = 0;

	*ret_body = NULL;
	if (ret_status)
		*ret_status = 0;
	if (!lx->curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -EIO;
		lx->curl_ready = true;
	}
	h = curl_easy_init();
	if (!h)
		return -ENOMEM;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500	/* 7.85: the _STR form; Debian 11 has 7.74 */
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "kflash");
	for (; headers && *headers; headers++)
		hl = curl_slist_append(hl, *headers);
	if (hl)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	c = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	curl_slist_free_all(hl);
	if (ret_status)
		*ret_status = status;
	if (c != CURLE_OK) {
		kf_buf_release(&b.buf);
		if (c == CURLE_OPERATION_TIMEDOUT)
			return -ETIMEDOUT;
		if (c == CURLE_WRITE_ERROR && b.too_big)
			return -EMSGSIZE;
		if (c == CURLE_ABORTED_BY_CALLBACK)
			return -EINTR;
		return -EHOSTUNREACH;
	}
	if (!b.buf.data)
		kf_buf_add(&b.buf, "", 0);
	*ret_body = b.buf.data;
	if (status < 200 || status > 299)
		return -EPROTO;
	return 0;
}

/* ---- the host and the terminal ------------------------------------------- */

static const char *linux_getenv(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
}

static uid_t linux_uid(void *ctx)
{
	(void)ctx;
	return geteuid();
}

static int linux_user_name(void *ctx, uid_t uid, char **ret_name)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int e;

	(void)ctx;
	*ret_name = NULL;
	e = getpwuid_r(uid, &pw, buf, sizeof(buf), &res);
	if (e)
		return -e;
	if (!res || !res->pw_name || !*res->pw_name)
		return -ENOENT;
	*ret_name = kf_xstrdup(res->pw_name);
	return 0;
}

static int linux_cpu_count(void *ctx)
{
	long n;

	(void)ctx;
	errno = 0;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return errno ? -errno : -EINVAL;
	return n > INT_MAX ? INT_MAX : (int)n;
}

static int linux_isatty(void *ctx, int fd)
{
	(void)ctx;
	return isatty(fd) == 1;
}

static int linux_term_width(void *ctx, int fd)
{
	struct winsize ws;

	(void)ctx;
	if (fd < 0 || ioctl(fd, TIOCGWINSZ, &ws) < 0)
		return 0;
	return ws.ws_col;
}

/* One byte at a time: a buffered read would take what the user typed
 * ahead for menuconfig. The wait is a poll on stdin and the signal
 * self-pipe, so Ctrl+C ends it at once (SA_RESTART would otherwise keep
 * a blocking read going). */
static int linux_read_line(void *ctx, char **ret_line)
{
	struct kf_linux *lx = ctx;
	struct kf_buf b = KF_BUF_INIT;

	*ret_line = NULL;
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = STDIN_FILENO, .events = POLLIN },
			{ .fd = lx->sigpipe[0], .events = POLLIN },
		};
		ssize_t n;
		char c;

		if (pending_signal) {
			kf_buf_release(&b);
			return -EINTR;
		}
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			kf_buf_release(&b);
			return -errno;
		}
		if (p[1].revents && !pending_signal)
			drain_sigpipe(lx);	/* a signal already taken */
		if (p[0].revents & POLLNVAL) {
			kf_buf_release(&b);
			return -EBADF;
		}
		if (!p[0].revents)
			continue;
		n = read(STDIN_FILENO, &c, 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			int e = -errno;

			kf_buf_release(&b);
			return e;
		}
		if (n == 0) {
			kf_buf_release(&b);
			return 0;
		}
		if (c == '\n')
			break;
		kf_buf_add(&b, &c, 1);
	}
	if (!b.data)
		kf_buf_add(&b, "", 0);
	*ret_line = b.data;
	return 1;
}

/* ---- the table ------------------------------------------------------------ */

static const struct kf_ops linux_ops = {
	.version = KF_OPS_VERSION,
	.name = "linux",
	.enumerate = linux_enumerate,
	.enumerate_net = linux_enumerate_net,
	.monitor_open = linux_monitor_open,
	.monitor_next = linux_monitor_next,
	.monitor_close = linux_monitor_close,
	.spawn = linux_spawn,
	.wait = linux_wait,
	.kill_group = linux_kill_group,
	.in_group = linux_in_group,
	.observe = linux_observe,
	.feed = linux_feed,
	.ready = linux_ready,
	.attach = linux_attach,
	.read_file = linux_read_file,
	.write_atomic = linux_write_atomic,
	.append = linux_append,
	.unlink = linux_unlink,
	.remove_tree = linux_remove_tree,
	.tidy = linux_tidy,
	.read_dir = linux_read_dir,
	.mkdir_p = linux_mkdir_p,
	.file_kind = linux_file_kind,
	.realpath = linux_realpath,
	.lock = linux_lock,
	.unlock = linux_unlock,
	.now = linux_now,
	.realtime = linux_realtime,
	.sleep_until = linux_sleep_until,
	.take_signal = linux_take_signal,
	.http_get = linux_http_get,
	.getenv = linux_getenv,
	.uid = linux_uid,
	.user_name = linux_user_name,
	.cpu_count = linux_cpu_count,
	.isatty = linux_isatty,
	.term_width = linux_term_width,
	.read_line = linux_read_line,
};

/* The signals kflash catches (and hands back to their default at its end). */
static const int caught[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

int kf_ops_linux_init(struct kf_ops *ret_ops, struct kf_linux **ret_linux)
{
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	struct kf_linux *lx;
	size_t i;

	lx = kf_xcalloc(1, sizeof(*lx));
	if (pipe2(lx->sigpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		int e = -errno;
		free(lx);
		return e;
	}
	lx->udev = udev_new();
	if (!lx->udev) {
		close(lx->sigpipe[0]);
		close(lx->sigpipe[1]);
		free(lx);
		return -ENOMEM;
	}
	sigpipe_write = lx->sigpipe[1];
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
		sigaction(caught[i], &sa, NULL);
	/* a dead terminal or pipe must give EPIPE, not kill kflash */
	signal(SIGPIPE, SIG_IGN);
#if !defined(__SANITIZE_ADDRESS__)
	/* (under ASan its own handlers must report the crash) */
	{
		static const int crashes[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };
		struct sigaction crash = { .sa_handler = on_crash };

		sigemptyset(&crash.sa_mask);
		for (i = 0; i < sizeof(crashes) / sizeof(crashes[0]); i++)
			sigaction(crashes[i], &crash, NULL);
	}
#endif

	lx->ops = linux_ops;
	lx->ops.ctx = lx;
	*ret_ops = lx->ops;
	*ret_linux = lx;
	return 0;
}

int kf_ops_linux_end(struct kf_linux *lx)
{
	size_t i;

	/* what was printed is out before a signal may end the process */
	fflush(stdout);
	fflush(stderr);
	for (i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
		signal(caught[i], SIG_DFL);
	return linux_take_signal(lx);
}

void kf_ops_linux_release(struct kf_linux *lx)
{
	if (!lx)
		return;
	if (lx->curl_ready)
		curl_global_cleanup();
	udev_unref(lx->udev);
	sigpipe_write = -1;
	close(lx->sigpipe[0]);
	close(lx->sigpipe[1]);
	free(lx);
}
