/* ops.h - the one door between kflash and the world.
 *
 * Every effect kflash has outside its own memory goes through a struct
 * kf_ops: udev, child processes, user files, the clock, HTTP, and what it
 * reads of the host: environment variables, its uid, the
 * CPU count, whether a descriptor is a terminal, and lines typed at the
 * terminal, and how wide it is. The real table (ops_linux.c) is the only
 * code that calls libudev, fork/exec, kill, clock_gettime, libcurl, getenv,
 * isatty, ioctl(TIOCGWINSZ), getuid,
 * sysconf, reads stdin or opens user files; ci/check-door enforces that.
 * Tests and the fault injector supply their own tables that wrap another
 * one and override what they need, like SQLite's test VFSes. What is
 * policy on top of them (sudo, systemctl, the guardian) lives above, in
 * service.h.
 *
 * Whoever installs a table (kf_cli_main, a wrapping table) checks it with
 * kf_ops_check: a table of another KF_OPS_VERSION, or one with a method
 * left NULL, is refused before anything calls it. The version goes up
 * whenever a member is added, removed or changes meaning, so a table
 * written for another layout (a recorded session to replay, a backend
 * built apart) cannot be called through the wrong slots.
 *
 * Conventions: methods return 0 (or a documented non-negative value) on
 * success and a negative errno on failure; output parameters are ret_* and
 * last; buffers returned through ret_* are malloc'd and the caller frees.
 */
#ifndef KFLASH_OPS_H
#define KFLASH_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KF_OPS_VERSION 7

/* ---- udev ---------------------------------------------------------------- */

/* One serial device as udev describes it (tty subsystem + USB parent);
 * or, from enumerate_net, a network interface on USB (net subsystem +
 * USB parent: a USB-CAN adapter's or a bridge board's can0), whose
 * devnode and by_id are NULL and whose by_path is its USB device's name
 * (1-1.4.8). */
struct kf_ttydev {
	char *devnode;		/* /dev/ttyACM0; NULL for a net device */
	char *by_id;		/* /dev/serial/by-id/usb-Klipper_... or NULL */
	char *by_path;		/* /dev/serial/by-path/... or NULL */
	char *vid;		/* "1d50" (ID_VENDOR_ID / idVendor) */
	char *pid;		/* "614e" */
	char *manufacturer;	/* USB parent attr, or NULL */
	char *product;
	char *serial;		/* USB parent attr "serial", or NULL */
	char *driver;		/* ID_USB_DRIVER, e.g. cdc_acm; a net device's
				 * USB interface driver, e.g. gs_usb */
	char *iface;		/* a net device's interface name (can0), else NULL */
};

void kf_ttydev_release(struct kf_ttydev *d);
void kf_ttydevs_free(struct kf_ttydev *devs, size_t n);
/* frees what read_dir returned */
void kf_names_free(char **names, size_t n);

enum kf_uevent_action { KF_UEVENT_ADD, KF_UEVENT_REMOVE, KF_UEVENT_OTHER };

struct kf_uevent {
	enum kf_uevent_action action;
	struct kf_ttydev dev;	/* what udev knew of the device */
};

struct kf_monitor;		/* opaque, owned by the backend */

/* ---- child processes ----------------------------------------------------- */

enum kf_stdio {
	KF_STDIO_INHERIT,	/* the user's terminal: menuconfig, -v builds */
	KF_STDIO_CAPTURE,	/* stdout+stderr to a pipe read by wait() */
	KF_STDIO_NULL,		/* /dev/null */
	KF_STDIO_PIPE,		/* in only: a pipe the caller writes with feed() */
};

struct kf_spawn_req {
	const char *const *argv;	/* argv[0] searched in PATH */
	const char *const *env;		/* extra NAME=VALUE entries, or NULL */
	const char *cwd;		/* or NULL */
	enum kf_stdio in;
	enum kf_stdio out;		/* stdout and stderr together */
	/* Lowest CPU and disk priority (nice 19, SCHED_IDLE, I/O class idle),
	 * inherited by everything the child starts: builds must not slow a
	 * print. Best effort: a kernel that refuses one still runs the child. */
	bool idle;
	/* A helper that must outlive kflash (the guardian): it leads its own
	 * session, gets no signal when kflash dies, is not a child the
	 * observer hears of or the last-resort handler kills, and its stdout
	 * and stderr are /dev/null whatever out says (it must not hold a
	 * `kflash | tee` pipeline open). spawn returns once the helper called
	 * ready(): -ECHILD when it ended first, -ETIMEDOUT after ready_ms.
	 * Its orders come on stdin: in must be PIPE (-EINVAL otherwise). */
	bool detach;
	int ready_ms;
	/* argv[0] only names kflash itself: run the binary this process runs
	 * (even if it was replaced on disk meanwhile), not one found in PATH */
	bool self;
};

/* A running child. It leads its own process group (pgid == pid). */
struct kf_proc {
	pid_t pid;
	int out_fd;		/* read end when out == CAPTURE, else -1 */
	int in_fd;		/* write end when in == PIPE, else -1 */
	void *backend;		/* backend's own state */
};

/* Hears of each child kflash starts (running: right after the fork, before
 * spawn returns) and of each it reaps (!running: its group may be reused
 * from then on). */
typedef void kf_child_fn(void *data, pid_t pgid, bool running);

enum kf_exit_kind {
	KF_EXIT_RUNNING,	/* still running: deadline reached or interrupted */
	KF_EXIT_EXITED,
	KF_EXIT_SIGNALED,
	KF_EXIT_EXEC_FAILED,	/* never ran: errno in err */
	KF_EXIT_TIMED_OUT,	/* kf_proc_run: killed at its deadline */
	KF_EXIT_INTERRUPTED,	/* kf_proc_run: killed because kflash got a signal */
};

struct kf_exit {
	enum kf_exit_kind kind;
	int code;		/* EXITED: exit status */
	int sig;		/* SIGNALED: the signal */
	int err;		/* EXEC_FAILED: errno of exec */
	int interrupted_by;	/* RUNNING/INTERRUPTED: kflash's signal, or 0 */
};

/* Called for each line of captured output (without the newline). */
typedef void kf_line_fn(void *data, const char *line, size_t len);

/* ---- files ---------------------------------------------------------------- */

enum kf_file_kind { KF_FILE_NONE, KF_FILE_REG, KF_FILE_DIR, KF_FILE_OTHER };

/* ---- the table ------------------------------------------------------------ */

struct kf_ops {
	int version;		/* KF_OPS_VERSION */
	void *ctx;		/* passed to every method */
	const char *name;	/* "linux", "fake", "fault" ... */

	/* udev */
	int (*enumerate)(void *ctx, struct kf_ttydev **ret_devs, size_t *ret_n);
	/* The network interfaces whose parent is a USB device, with it. */
	int (*enumerate_net)(void *ctx, struct kf_ttydev **ret_devs, size_t *ret_n);
	int (*monitor_open)(void *ctx, struct kf_monitor **ret_mon);
	/* Waits for one tty uevent until deadline (clock ms). Returns 1 with
	 * an event, 0 at the deadline, -EINTR when a signal is pending. */
	int (*monitor_next)(void *ctx, struct kf_monitor *mon, int64_t deadline,
			    struct kf_uevent *ret_ev);
	void (*monitor_close)(void *ctx, struct kf_monitor *mon);

	/* children */
	int (*spawn)(void *ctx, const struct kf_spawn_req *req,
		     struct kf_proc *ret_proc);
	/* Waits until the child ends, the deadline (clock ms, INT64_MAX for
	 * none) passes or a signal is pending, feeding captured lines to
	 * on_line. A child that ended is reaped; one still running is left as
	 * it is. A pending signal is reported in interrupted_by and stays
	 * pending until take_signal. */
	int (*wait)(void *ctx, struct kf_proc *proc, int64_t deadline,
		    kf_line_fn *on_line, void *line_data, struct kf_exit *ret_exit);
	int (*kill_group)(void *ctx, struct kf_proc *proc, int sig);

	/* 1 when this user is in the group (or is root), 0 when not */
	int (*in_group)(void *ctx, const char *group);

	/* What the guardian (service.h) is built on. observe: fn hears of
	 * every child from now on, until observe(NULL, NULL). feed: writes to
	 * a child's stdin (in == PIPE); buf NULL closes it, so the child reads
	 * end of file; -EPIPE when the child no longer reads. ready: in a
	 * detached helper, tells the kflash that spawned it that it is ready;
	 * 0 when that kflash is still its parent (getppid() is the pid it had
	 * before the fork) and listening, -ESRCH when it died since,
	 * -ENOTCONN when this process was not spawned detached, -EBADF (and
	 * no word to anyone) when its stdin is not the pipe its spawner made
	 * for it: an anonymous pipe, which nobody but the spawner (and root)
	 * can write to, of the identity spawn passed down. attach: a
	 * kf_proc for a process another program started (the guardian's view
	 * of kflash's orphaned child), so that wait tells when it ends (as
	 * EXITED, code 0: its status is its parent's to read; never reaped
	 * here) and kill_group ends its group; -ESRCH when it is gone. */
	void (*observe)(void *ctx, kf_child_fn *fn, void *data);
	int (*feed)(void *ctx, struct kf_proc *proc, const void *buf, size_t len);
	int (*ready)(void *ctx);
	int (*attach)(void *ctx, pid_t pid, struct kf_proc *ret_proc);

	/* files */
	int (*read_file)(void *ctx, const char *path, char **ret_buf,
			 size_t *ret_len);
	/* temp file in the same dir, fsync, rename, fsync the dir. A path
	 * that is a symbolic link is written through: its target is replaced
	 * (in the target's directory), the link stays. An existing file keeps
	 * its mode, but one asked for with no group or other bits (0600: a
	 * file with a secret) never keeps any; a new one gets mode less the
	 * umask. Temp files a killed writer left beside it are removed. */
	int (*write_atomic)(void *ctx, const char *path, const void *buf,
			    size_t len, mode_t mode);
	/* appends to a log, creating it (not atomic: logs only) */
	int (*append)(void *ctx, const char *path, const void *buf, size_t len);
	int (*unlink)(void *ctx, const char *path);
	/* removes path and everything below it, never following a symlink
	 * (a link is removed, not its target); 0 when path does not exist */
	int (*remove_tree)(void *ctx, const char *path);
	/* removes from dir the temp files (NAME.tmp.XXXXXX) that writers of
	 * write_atomic killed before their rename left; a live writer's stay
	 * (it holds a lock on its own): the sessions of killed runs, whose
	 * files nobody saves again. 0, or -errno when dir cannot be read */
	int (*tidy)(void *ctx, const char *dir);
	/* the names in a directory, without . and .., sorted bytewise */
	int (*read_dir)(void *ctx, const char *path, char ***ret_names,
			size_t *ret_n);
	int (*mkdir_p)(void *ctx, const char *path, mode_t mode);
	int (*file_kind)(void *ctx, const char *path, enum kf_file_kind *ret_kind,
			 off_t *ret_size);
	int (*realpath)(void *ctx, const char *path, char **ret_path);
	/* Exclusive non-blocking lock on path, a regular file created when
	 * missing and never followed (a symbolic link there is -ELOOP,
	 * anything else but a regular file -EINVAL), truncated or written
	 * unless this user owns it (it then gets this pid). -EWOULDBLOCK when
	 * held; then *ret_holder is the pid recorded in the file (0 if
	 * unknown). *ret_owner is the file's owner whenever there is a file
	 * ((uid_t)-1 when there is none or it is not known). */
	int (*lock)(void *ctx, const char *path, int *ret_fd, pid_t *ret_holder,
		    uid_t *ret_owner);
	void (*unlock)(void *ctx, int fd);

	/* clock */
	int64_t (*now)(void *ctx);	/* monotonic milliseconds */
	/* wall clock, milliseconds since the epoch: only for names people
	 * read (a session's directory), never for a deadline */
	int64_t (*realtime)(void *ctx);
	/* Sleeps until deadline; -EINTR when a signal is pending first. */
	int (*sleep_until)(void *ctx, int64_t deadline);

	/* The signal kflash was sent (SIGINT/TERM/HUP/QUIT) and not yet taken,
	 * or 0; taking it clears it. wait, monitor_next and sleep_until return
	 * early while one is pending. */
	int (*take_signal)(void *ctx);

	/* HTTP: GET url with extra request headers ("Name: value", NULL-
	 * terminated, or NULL); 0 with the body on a 2xx answer,
	 * -EHOSTUNREACH when nothing answers, -ETIMEDOUT, -EPROTO on another
	 * status (*ret_status says which, *ret_body holds its body),
	 * -EMSGSIZE when the body is larger than 8 MiB, -EINTR when a signal
	 * arrived meanwhile (within a second). */
	int (*http_get)(void *ctx, const char *url, const char *const *headers,
			int timeout_ms, char **ret_body, long *ret_status);

	/* the host */
	/* The variable's value, or NULL when it is unset. The string belongs
	 * to the table and stays valid while kflash runs (it never changes
	 * its own environment). */
	const char *(*getenv)(void *ctx, const char *name);
	/* The user kflash runs as (effective uid): locks are per user, and
	 * root may run systemctl without sudo. */
	uid_t (*uid)(void *ctx);
	/* The login name of uid (the password database's, never $USER), or
	 * -ENOENT when it has none. */
	int (*user_name)(void *ctx, uid_t uid, char **ret_name);
	/* CPUs online (>= 1), or a negative errno. */
	int (*cpu_count)(void *ctx);

	/* the terminal */
	/* 1 when fd is a terminal, 0 when not (or not open). */
	int (*isatty)(void *ctx, int fd);
	/* The columns of the terminal on fd (TIOCGWINSZ), or 0 when fd is
	 * not a terminal or the terminal does not say (a serial console
	 * reports 0). Prose in errors wraps to it. */
	int (*term_width)(void *ctx, int fd);
	/* Reads one line from stdin, taking nothing after its newline (a
	 * child started next, menuconfig, reads on from there). Returns 1
	 * with the line, malloc'd and without the newline; 0 at the end of
	 * input (a line it cuts short is dropped: half an answer is none);
	 * -EINTR when a signal is
	 * pending (it stays pending until take_signal), before or while
	 * waiting; another negative errno when stdin cannot be read. */
	int (*read_line)(void *ctx, char **ret_line);
};

/* 0 when the table can be installed: its version is KF_OPS_VERSION and no
 * method is NULL. Else -EPROTONOSUPPORT for another version, -EINVAL for a
 * missing method. */
int kf_ops_check(const struct kf_ops *o);

/* Thin wrappers: code above the table calls these, never the world. */
static inline int kf_os_enumerate(const struct kf_ops *o, struct kf_ttydev **d, size_t *n)
{ return o->enumerate(o->ctx, d, n); }
static inline int kf_os_enumerate_net(const struct kf_ops *o, struct kf_ttydev **d,
				      size_t *n)
{ return o->enumerate_net(o->ctx, d, n); }
static inline int kf_os_monitor_open(const struct kf_ops *o, struct kf_monitor **m)
{ return o->monitor_open(o->ctx, m); }
static inline int kf_os_monitor_next(const struct kf_ops *o, struct kf_monitor *m,
				     int64_t deadline, struct kf_uevent *ev)
{ return o->monitor_next(o->ctx, m, deadline, ev); }
static inline void kf_os_monitor_close(const struct kf_ops *o, struct kf_monitor *m)
{ o->monitor_close(o->ctx, m); }
static inline int kf_os_spawn(const struct kf_ops *o, const struct kf_spawn_req *r,
			      struct kf_proc *p)
{ return o->spawn(o->ctx, r, p); }
static inline int kf_os_wait(const struct kf_ops *o, struct kf_proc *p, int64_t deadline,
			     kf_line_fn *fn, void *data, struct kf_exit *e)
{ return o->wait(o->ctx, p, deadline, fn, data, e); }
static inline int kf_os_kill_group(const struct kf_ops *o, struct kf_proc *p, int sig)
{ return o->kill_group(o->ctx, p, sig); }
static inline int kf_os_in_group(const struct kf_ops *o, const char *group)
{ return o->in_group(o->ctx, group); }
static inline void kf_os_observe(const struct kf_ops *o, kf_child_fn *fn, void *data)
{ o->observe(o->ctx, fn, data); }
static inline int kf_os_feed(const struct kf_ops *o, struct kf_proc *p, const void *buf,
			     size_t len)
{ return o->feed(o->ctx, p, buf, len); }
static inline int kf_os_ready(const struct kf_ops *o)
{ return o->ready(o->ctx); }
static inline int kf_os_attach(const struct kf_ops *o, pid_t pid, struct kf_proc *p)
{ return o->attach(o->ctx, pid, p); }
static inline int kf_os_read_file(const struct kf_ops *o, const char *path, char **buf,
				  size_t *len)
{ return o->read_file(o->ctx, path, buf, len); }
static inline int kf_os_write_atomic(const struct kf_ops *o, const char *path,
				     const void *buf, size_t len, mode_t mode)
{ return o->write_atomic(o->ctx, path, buf, len, mode); }
static inline int kf_os_append(const struct kf_ops *o, const char *path,
				const void *buf, size_t len)
{ return o->append(o->ctx, path, buf, len); }
static inline int kf_os_unlink(const struct kf_ops *o, const char *path)
{ return o->unlink(o->ctx, path); }
static inline int kf_os_remove_tree(const struct kf_ops *o, const char *path)
{ return o->remove_tree(o->ctx, path); }
static inline int kf_os_tidy(const struct kf_ops *o, const char *dir)
{ return o->tidy(o->ctx, dir); }
static inline int kf_os_read_dir(const struct kf_ops *o, const char *path, char ***names,
				 size_t *n)
{ return o->read_dir(o->ctx, path, names, n); }
static inline int kf_os_mkdir_p(const struct kf_ops *o, const char *path, mode_t mode)
{ return o->mkdir_p(o->ctx, path, mode); }
static inline int kf_os_file_kind(const struct kf_ops *o, const char *path,
				  enum kf_file_kind *k, off_t *size)
{ return o->file_kind(o->ctx, path, k, size); }
static inline int kf_os_realpath(const struct kf_ops *o, const char *path, char **ret)
{ return o->realpath(o->ctx, path, ret); }
static inline int kf_os_lock(const struct kf_ops *o, const char *path, int *fd, pid_t *holder,
			     uid_t *owner)
{ return o->lock(o->ctx, path, fd, holder, owner); }
static inline void kf_os_unlock(const struct kf_ops *o, int fd)
{ o->unlock(o->ctx, fd); }
static inline int64_t kf_os_now(const struct kf_ops *o)
{ return o->now(o->ctx); }
static inline int64_t kf_os_realtime(const struct kf_ops *o)
{ return o->realtime(o->ctx); }
static inline int kf_os_sleep_until(const struct kf_ops *o, int64_t deadline)
{ return o->sleep_until(o->ctx, deadline); }
static inline int kf_os_take_signal(const struct kf_ops *o)
{ return o->take_signal(o->ctx); }
static inline int kf_os_http_get(const struct kf_ops *o, const char *url,
				 const char *const *headers, int timeout_ms,
				 char **body, long *status)
{ return o->http_get(o->ctx, url, headers, timeout_ms, body, status); }
static inline const char *kf_os_getenv(const struct kf_ops *o, const char *name)
{ return o->getenv(o->ctx, name); }
static inline uid_t kf_os_uid(const struct kf_ops *o)
{ return o->uid(o->ctx); }
static inline int kf_os_user_name(const struct kf_ops *o, uid_t uid, char **ret_name)
{ return o->user_name(o->ctx, uid, ret_name); }
static inline int kf_os_cpu_count(const struct kf_ops *o)
{ return o->cpu_count(o->ctx); }
static inline int kf_os_isatty(const struct kf_ops *o, int fd)
{ return o->isatty(o->ctx, fd); }
static inline int kf_os_term_width(const struct kf_ops *o, int fd)
{ return o->term_width(o->ctx, fd); }
static inline int kf_os_read_line(const struct kf_ops *o, char **ret_line)
{ return o->read_line(o->ctx, ret_line); }

/* ---- the real backend (ops_linux.c) -------------------------------------- */

struct kf_linux;

/* Sets up the real table: signal self-pipe for SIGINT/TERM/HUP/QUIT (so
 * signals become events in wait loops), libcurl, libudev. The table's ctx
 * points into *ret_linux, which the caller keeps until kf_ops_linux_release. */
int kf_ops_linux_init(struct kf_ops *ret_ops, struct kf_linux **ret_linux);
/* kflash's last moment, once kf_cli_main returned: from here a signal
 * ends the process as by default (a shell sees 128+N), and the one that
 * came after kflash last took one is returned (0: none), so that no
 * signal is lost between its last look and its exit. */
int kf_ops_linux_end(struct kf_linux *lx);
void kf_ops_linux_release(struct kf_linux *lx);

#endif
