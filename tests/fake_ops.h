/* fake_ops.h - an in-memory world for unit tests: a fake clock, scripted
 * children, files in memory, scripted HTTP answers, signals delivered at
 * a chosen fake time, and a scripted environment, uid, CPU count and
 * terminal. Every world knows three programs: `systemctl` and `sudo`
 * playing one systemd unit (svc_*), and `kflash` playing the guardian (it
 * runs until its stdin is closed). Every effect is written to a transcript
 * the tests assert on (like libgit2's fake backends). */
#ifndef KFLASH_TESTS_FAKE_OPS_H
#define KFLASH_TESTS_FAKE_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "kflash/ops.h"
#include "kflash/util.h"

struct fake_world;

/* How a scripted program behaves when spawned. */
struct fake_prog {
	const char *argv0;	/* matched against argv[0] */
	const char *output;	/* printed, lines separated by \n */
	int exit_code;
	int64_t run_ms;		/* INT64_MAX: hangs until killed */
	bool ignores_sigterm;	/* only SIGKILL ends it */
	bool missing;		/* exec fails with ENOENT */
	const char *match;	/* also needs this in the command line, or NULL */
	const char *writes;	/* a file it writes when it exits 0, or NULL */
	const char *writes_data;
	bool until_eof;		/* ends (status 0) when its stdin is closed */
	/* when it exits 0, the tty with this devnode comes back: udev
	 * reports its "add" to the monitor (a flashed board rebooting) */
	const char *back;
	/* computes status and output when it exits (the world's own
	 * programs); run_ms is then the world's svc_ms */
	int (*run)(struct fake_world *w, char **argv, struct kf_buf *out);
};

#define FAKE_MAX_PROGS 24
#define FAKE_MAX_PROCS 256
#define FAKE_MAX_FILES 32
#define FAKE_MAX_URLS 8
#define FAKE_MAX_ENV 16
#define FAKE_MAX_FD 8

struct fake_child {
	const struct fake_prog *prog;
	pid_t pid;
	int64_t started, ends;	/* ends: fake time it exits by itself */
	int killed_by;		/* signal that ended it, or 0 */
	bool done;
	bool detached;		/* spawned as a helper: not observed */
	bool stdin_open;	/* in == PIPE and not closed yet */
	char **argv;		/* its command line (for prog->run) */
};

struct fake_file {
	char *path;
	char *data;
	size_t len;
};

struct fake_world {
	struct kf_ops ops;
	int64_t now;
	struct fake_prog progs[FAKE_MAX_PROGS];
	size_t n_progs;
	struct fake_child procs[FAKE_MAX_PROCS];
	size_t n_procs;
	pid_t next_pid;
	bool svc_active;
	bool svc_can_manage;	/* sudo runs systemctl stop/start without a password */
	bool svc_missing;	/* systemd has no such unit */
	bool sudo_missing;	/* no sudo on this host */
	int64_t svc_ms;		/* how long sudo and systemctl take */
	int ready_err;		/* what ready() returns */
	kf_child_fn *observer;
	void *observer_data;
	struct fake_file files[FAKE_MAX_FILES];
	size_t n_files;
	/* scripted answers; status 0 means 200 */
	struct { const char *url; const char *body; int err; long status; } urls[FAKE_MAX_URLS];
	size_t n_urls;
	struct kf_ttydev ttys[8];	/* what enumerate reports */
	size_t n_ttys;
	struct kf_ttydev events[8];	/* "add" events monitor_next delivers */
	size_t n_events;
	struct kf_ttydev nets[4];	/* what enumerate_net reports */
	size_t n_nets;
	int64_t signal_at;	/* fake time a signal arrives, or -1 */
	int signal_num;
	int pending_signal;
	/* the host: environment (HOME=/home/pi USER=pi to start), uid
	 * (1000), what cpu_count answers (4; a negative errno fails it) */
	struct { char *name, *value; } env[FAKE_MAX_ENV];
	size_t n_env;
	uid_t uid;
	/* the password database: one user, uid with login name user_name
	 * ("pi"; NULL: the uid has no name) */
	const char *user_name;
	int cpus;
	/* what lock() finds: lock_err (0) is returned, lock_owner (-1: this
	 * user) owns the file */
	int lock_err;
	uid_t lock_owner;
	/* the terminal: which of fds 0..7 are terminals (none to start),
	 * and what the user types, read by read_line */
	bool tty[FAKE_MAX_FD];
	int columns;		/* a terminal's width (TIOCGWINSZ); 0: not said */
	struct kf_buf input;
	size_t input_pos;
	struct kf_buf transcript;	/* one line per effect */
	const char *full;	/* writes below this dir fail with ENOSPC */
	char **owned;		/* strings the world frees */
	size_t n_owned;
};

void fake_world_init(struct fake_world *w);
/* What a printer host runs, for a flow test: Moonraker at http://mr saying
 * nothing prints, Klipper's make (olddefconfig quick, the build writing
 * out/klipper.bin for out), git describe v0.13.0-1-gabc, the compiler. */
void fake_printer_host(struct fake_world *w, const char *out);

/* kf_cli_run with stdout and stderr captured (the output module writes to
 * the process's own streams) */
struct fake_run {
	int code;
	char *out, *err;
};
struct kf_cli_opts;
struct fake_run fake_cli_run(const struct kf_cli_opts *opts);
void fake_run_free(struct fake_run *r);
void fake_world_release(struct fake_world *w);
void fake_add_prog(struct fake_world *w, struct fake_prog prog);
void fake_put_file(struct fake_world *w, const char *path, const char *data);
const struct fake_file *fake_get_file(const struct fake_world *w, const char *path);
/* A USB serial device udev would report (strings copied). */
void fake_add_tty(struct fake_world *w, const char *devnode, const char *by_id,
		  const char *vid, const char *pid, const char *manufacturer,
		  const char *serial);
/* A network interface on USB (a gs_usb adapter's or a bridge board's can0). */
void fake_add_net(struct fake_world *w, const char *iface, const char *vid,
		  const char *pid, const char *manufacturer, const char *product,
		  const char *serial, const char *driver);
void fake_signal_at(struct fake_world *w, int64_t when, int sig);
/* Sets (or with value NULL unsets) a variable of the fake environment. */
void fake_setenv(struct fake_world *w, const char *name, const char *value);
/* What the user types, appended to what is not read yet ("q\n"). When it
 * runs out, read_line waits for a scheduled signal, or ends the input. */
void fake_type(struct fake_world *w, const char *text);
/* true when the transcript contains line (whole line match) */
bool fake_did(const struct fake_world *w, const char *line);
/* how many children are not finished */
size_t fake_running(const struct fake_world *w);

#endif
