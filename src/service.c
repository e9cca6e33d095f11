/* service.c - systemd units through sudo, and the guardian (see service.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kflash/proc.h"
#include "kflash/service.h"
#include "kflash/util.h"

/* How long a guardian may take to start (exec, libraries, its ops table)
 * before kflash gives up and stops nothing. */
#define GUARD_READY_MS 10000

/* The guardian's stdin, the pipe from kflash. Through /proc, which the
 * guardian needs anyway: it is /proc/self/exe. */
#define GUARD_INPUT "/proc/self/fd/0"

static void note_signal(int *ret_signal, int sig)
{
	if (ret_signal && sig && !*ret_signal)
		*ret_signal = sig;
}

/* Runs argv with output captured into out (may be NULL). Returns its exit
 * status (>= 0) or -errno: -ENOENT when it is not installed, -ETIMEDOUT,
 * -EINTR when a signal cut it short (only when !defer). */
static int run(const struct kf_ops *o, const char *const *argv, int timeout_ms,
	       bool defer, struct kf_buf *out, int *ret_signal)
{
	struct kf_spawn_req req = {
		.argv = argv, .in = KF_STDIO_NULL, .out = KF_STDIO_CAPTURE,
	};
	int deferred = 0;
	struct kf_run_opts opts = { .timeout_ms = timeout_ms, .capture = out,
				    .defer_signals = defer, .deferred_signal = &deferred };
	struct kf_exit ex;
	int r;

	r = kf_proc_run(o, &req, &opts, &ex);
	note_signal(ret_signal, deferred);
	if (r < 0)
		return r;
	switch (ex.kind) {
	case KF_EXIT_EXITED:
		return ex.code;
	case KF_EXIT_EXEC_FAILED:
		return -ex.err;
	case KF_EXIT_TIMED_OUT:
		return -ETIMEDOUT;
	case KF_EXIT_INTERRUPTED:
		note_signal(ret_signal, ex.interrupted_by);
		return -EINTR;
	default:
		return -EIO;
	}
}

/* Runs "sudo -n ARGV...". Without sudo on the machine, root runs ARGV
 * itself (a root-only host); everyone else gets -ENOENT. */
static int run_sudo(const struct kf_ops *o, const char *const *argv, int timeout_ms,
		    bool defer, int *ret_signal)
{
	const char *cmd[8] = { "sudo", "-n" };
	size_t i;
	int r;

	for (i = 0; argv[i] && i < 5; i++)
		cmd[2 + i] = argv[i];
	cmd[2 + i] = NULL;
	r = run(o, cmd, timeout_ms, defer, NULL, ret_signal);
	if (r == -ENOENT && kf_os_uid(o) == 0) {
		if (strcmp(argv[0], "-l") == 0)
			return 0;	/* root may do anything */
		r = run(o, argv, timeout_ms, defer, NULL, ret_signal);
	}
	return r;
}

/* The value of NAME= in systemctl show's output, or "". */
static const char *show_value(const char *out, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);
	const char *p = out;

	buf[0] = '\0';
	while (p && *p) {
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			size_t k = strcspn(p + n + 1, "\n");

			snprintf(buf, len, "%.*s", (int)k, p + n + 1);
			break;
		}
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return buf;
}

int kf_service_is_active(const struct kf_ops *o, const char *unit, int timeout_ms,
			 int *ret_signal)
{
	const char *argv[] = { "systemctl", "show", "--property=LoadState",
			       "--property=ActiveState", unit, NULL };
	struct kf_buf out = KF_BUF_INIT;
	char load[32], active[32];
	int r;

	/* a question: a Ctrl+C meanwhile may cut it short */
	r = run(o, argv, timeout_ms, false, &out, ret_signal);
	if (r == 0) {
		show_value(out.data, "LoadState", load, sizeof(load));
		show_value(out.data, "ActiveState", active, sizeof(active));
		if (strcmp(load, "not-found") == 0 || !*load)
			r = -ENOENT;
		else
			r = strcmp(active, "active") == 0 ||
			    strcmp(active, "reloading") == 0 ||
			    strcmp(active, "activating") == 0;
	} else if (r > 0) {
		r = -EIO;
	}
	kf_buf_release(&out);
	return r;
}

int kf_service_can_manage(const struct kf_ops *o, const char *unit, int timeout_ms,
			  int *ret_signal)
{
	/* the exact commands kflash will run, not "sudo -n true" */
	const char *stop[] = { "-l", "systemctl", "stop", unit, NULL };
	const char *start[] = { "-l", "systemctl", "start", unit, NULL };
	int r;

	r = run_sudo(o, stop, timeout_ms, false, ret_signal);
	if (r == 0)
		r = run_sudo(o, start, timeout_ms, false, ret_signal);
	return r < 0 && r != -ENOENT ? r : r == 0;
}

/* systemctl and sudo are short and bounded by the timeout; a Ctrl+C
 * meanwhile must not leave the unit half-started: it waits */
static int change(const struct kf_ops *o, const char *verb, const char *unit,
		  int timeout_ms, int *ret_signal)
{
	const char *argv[] = { "systemctl", verb, unit, NULL };
	int r = run_sudo(o, argv, timeout_ms, true, ret_signal);

	return r > 0 ? -EIO : r;
}

int kf_service_stop(const struct kf_ops *o, const char *unit, int timeout_ms,
		    int *ret_signal)
{
	return change(o, "stop", unit, timeout_ms, ret_signal);
}

int kf_service_start(const struct kf_ops *o, const char *unit, int timeout_ms,
		     int *ret_signal)
{
	return change(o, "start", unit, timeout_ms, ret_signal);
}

/* ---- the guardian, kflash's side ---------------------------------------------- */

int kf_guard_start(struct kf_guard *g, const struct kf_ops *o,
		   const char *const *units, int timeout_ms)
{
	struct kf_spawn_req req = {
		.in = KF_STDIO_PIPE, .out = KF_STDIO_NULL,
		.detach = true, .ready_ms = GUARD_READY_MS, .self = true,
	};
	const char **argv;
	char tmo[16];
	size_t n = 0, i;
	int r;

	if (g->running)
		return 0;
	while (units[n])
		n++;
	argv = kf_xcalloc(n + 4, sizeof(*argv));
	snprintf(tmo, sizeof(tmo), "%d", timeout_ms);
	argv[0] = "kflash";
	argv[1] = KF_GUARDIAN_ARG;
	argv[2] = tmo;
	for (i = 0; i < n; i++)
		argv[3 + i] = units[i];
	req.argv = argv;
	r = kf_os_spawn(o, &req, &g->proc);
	free(argv);
	if (r < 0)
		return r;
	g->ops = o;
	g->running = true;
	kf_os_observe(o, kf_guard_tell, g);
	return 0;
}

void kf_guard_tell(void *guard, pid_t pgid, bool running)
{
	struct kf_guard *g = guard;
	char msg[32];
	int n;

	n = snprintf(msg, sizeof(msg), "%c %ld\n", running ? 'p' : 'r', (long)pgid);
	/* best effort: a guardian that stopped reading is gone, and then
	 * nothing kflash could do here would bring it back */
	(void)kf_os_feed(g->ops, &g->proc, msg, (size_t)n);
}

void kf_guard_end(struct kf_guard *g, int *ret_signal)
{
	const struct kf_ops *o = g->ops;
	struct kf_exit ex;
	int64_t deadline;

	if (!g->running)
		return;
	kf_os_observe(o, NULL, NULL);
	(void)kf_os_feed(o, &g->proc, "d\n", 2);
	(void)kf_os_feed(o, &g->proc, NULL, 0);
	/* told and at end of input, it exits at once; one that does not
	 * gets no second chance to act on a stale list */
	deadline = kf_os_now(o) + KF_PROC_GRACE_MS;
	for (;;) {
		int r = kf_os_wait(o, &g->proc, deadline, NULL, NULL, &ex);

		if (r < 0 && r != -ECHILD)
			kf_proc_reap(o, &g->proc, ret_signal);
		if (r < 0 || ex.kind != KF_EXIT_RUNNING)
			break;
		if (ex.interrupted_by) {
			note_signal(ret_signal, kf_os_take_signal(o));
			continue;
		}
		(void)kf_os_kill_group(o, &g->proc, SIGKILL);
		deadline = INT64_MAX;
	}
	g->running = false;
}

/* ---- the guardian process ------------------------------------------------------ */

struct groups {
	pid_t *v;
	size_t n;
};

static void groups_add(struct groups *gs, pid_t g)
{
	gs->v = kf_xrealloc(gs->v, (gs->n + 1) * sizeof(*gs->v));
	gs->v[gs->n++] = g;
}

static void groups_remove(struct groups *gs, pid_t g)
{
	size_t i;

	for (i = 0; i < gs->n; i++) {
		if (gs->v[i] == g) {
			gs->v[i] = gs->v[--gs->n];
			return;
		}
	}
}

/* Reads kflash's messages. Returns true when it said it is done; *gs is
 * left with the groups it forked and did not reap. */
static bool parse_messages(const char *in, struct groups *gs)
{
	const char *p = in;

	while (p && *p) {
		long pid = 0;

		if (p[0] == 'd' && (p[1] == '\n' || !p[1]))
			return true;
		if ((p[0] == 'p' || p[0] == 'r') && p[1] == ' ')
			pid = strtol(p + 2, NULL, 10);
		if (pid > 1 && p[0] == 'p')
			groups_add(gs, (pid_t)pid);
		else if (pid > 1)
			groups_remove(gs, (pid_t)pid);
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return false;
}

/* SIGTERM, a grace, SIGKILL, as kflash itself would have done. */
static void end_group(const struct kf_ops *o, pid_t pgid)
{
	struct kf_proc p;

	if (kf_os_attach(o, pgid, &p) == 0) {
		kf_proc_terminate(o, &p, KF_PROC_GRACE_MS, NULL);
		return;
	}
	/* The leader is gone already (its new parent reaped it), so there
	 * is nothing to wait on; what is left of its group gets no grace.
	 * kflash had not reaped it, so the group was live when kflash died. */
	p = (struct kf_proc){ .pid = pgid, .out_fd = -1, .in_fd = -1 };
	(void)kf_os_kill_group(o, &p, SIGKILL);
}

static int start_units(const struct kf_ops *o, char **units, int timeout_ms)
{
	int failed = 0;

	/* one start per unit: sudo rules name one unit each */
	for (; *units; units++) {
		int sig = 0;
		int r = kf_service_start(o, *units, timeout_ms, &sig);

		if (r < 0 && r != -ETIMEDOUT) {
			/* one more try, as kflash itself does */
			(void)kf_os_sleep_until(o, kf_os_now(o) + 1000);
			(void)kf_os_take_signal(o);
			r = kf_service_start(o, *units, timeout_ms, &sig);
		}
		failed += r < 0;
	}
	return failed ? 1 : 0;
}

int kf_guardian_main(const struct kf_ops *o, int argc, char **argv)
{
	struct groups gs = { NULL, 0 };
	enum kf_file_kind kind;
	char *in = NULL;
	int timeout_ms, r;
	size_t i;

	if (argc < 2)
		return 2;
	timeout_ms = atoi(argv[0]);
	/* ready only once it can read kflash's word: a guardian that could
	 * not must keep kflash from stopping anything */
	if (kf_os_file_kind(o, GUARD_INPUT, &kind, NULL) < 0 || kind == KF_FILE_NONE)
		return 1;
	/* Orders are obeyed only from the kflash that spawned this guardian:
	 * ready() checks that its parent is still the pid that forked it and
	 * that stdin is the anonymous pipe that kflash made for it (spawn
	 * passes its identity down), which no other user can open. So a
	 * guardian started by hand, or by anyone with a stdin of their own
	 * (a file of "p PGID" lines, a FIFO in /tmp that others could write
	 * to), kills no group and starts no unit: it was never told anything
	 * by a kflash. It runs as kflash's own binary (/proc/self/exe,
	 * spawn's self), never one found in PATH. */
	r = kf_os_ready(o);
	if (r == -ENOTCONN || r == -EBADF)
		return 2;	/* not kflash's guardian: nothing to guard */
	if (r < 0) {
		/* kflash died between the fork and now. It stopped nothing
		 * (it waits for this readiness first), but the promise is
		 * cheap to keep: start the units, an active one stays as it
		 * is. */
		return start_units(o, argv + 1, timeout_ms);
	}
	/* Blocks until kflash closes the pipe: after "d" when it is done,
	 * without it when it died. Nothing to poll: the kernel closes a dead
	 * process's end. */
	r = kf_os_read_file(o, GUARD_INPUT, &in, NULL);
	if (r == 0 && parse_messages(in, &gs)) {
		free(in);
		free(gs.v);
		return 0;
	}
	free(in);
	for (i = 0; i < gs.n; i++)
		end_group(o, gs.v[i]);
	free(gs.v);
	return start_units(o, argv + 1, timeout_ms);
}
