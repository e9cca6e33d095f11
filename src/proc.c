/* proc.c - run a child to completion with a deadline, killing its group. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "kflash/proc.h"

struct line_tee {
	const struct kf_run_opts *opts;
};

static void tee_line(void *data, const char *line, size_t len)
{
	const struct kf_run_opts *opts = data;

	if (opts->capture) {
		size_t i, start = 0;

		/* tools print NUL bytes (flashtool's "Software Version:"); the
		 * capture is text and must stay searchable */
		for (i = 0; i <= len; i++) {
			if (i == len || line[i] == '\0') {
				kf_buf_add(opts->capture, line + start, i - start);
				start = i + 1;
			}
		}
		kf_buf_add(opts->capture, "\n", 1);
	}
	if (opts->on_line)
		opts->on_line(opts->line_data, line, len);
}

void kf_proc_reap(const struct kf_ops *o, struct kf_proc *p, int *ret_sig)
{
	struct kf_exit ex;
	int tries, r;

	(void)kf_os_kill_group(o, p, SIGKILL);
	/* bounded: a wait that keeps failing must not hang kflash */
	for (tries = 0; tries < 8; tries++) {
		r = kf_os_wait(o, p, INT64_MAX, NULL, NULL, &ex);
		if (r == -ECHILD || (r == 0 && ex.kind != KF_EXIT_RUNNING))
			return;
		if (r == 0 && ex.interrupted_by) {
			int sig = kf_os_take_signal(o);

			if (ret_sig && !*ret_sig)
				*ret_sig = sig;
		}
	}
}

void kf_proc_terminate(const struct kf_ops *o, struct kf_proc *p,
		       int64_t grace_ms, int *ret_sig)
{
	struct kf_exit ex;
	int64_t deadline;

	(void)kf_os_kill_group(o, p, SIGTERM);
	deadline = kf_os_now(o) + grace_ms;
	for (;;) {
		int r = kf_os_wait(o, p, deadline, NULL, NULL, &ex);

		if (r < 0 && r != -ECHILD) {
			kf_proc_reap(o, p, ret_sig);
			return;
		}
		if (r < 0 || ex.kind != KF_EXIT_RUNNING)
			break;
		if (ex.interrupted_by) {
			/* already terminating: note it, keep waiting */
			(void)kf_os_take_signal(o);
			if (ret_sig && !*ret_sig)
				*ret_sig = ex.interrupted_by;
			continue;
		}
		/* grace over: no mercy, then reap */
		(void)kf_os_kill_group(o, p, SIGKILL);
		deadline = INT64_MAX;
	}
	/* The leader is reaped; grandchildren that ignored SIGTERM and
	 * escaped nothing: they are in the group and got SIGKILL if the leader
	 * lingered. Make sure of it when the leader exited first. */
	(void)kf_os_kill_group(o, p, SIGKILL);
}

int kf_proc_run(const struct kf_ops *o, const struct kf_spawn_req *req,
		const struct kf_run_opts *opts, struct kf_exit *ret_exit)
{
	static const struct kf_run_opts none;
	struct kf_proc p;
	int64_t start, deadline, tick;
	int r;

	if (!opts)
		opts = &none;
	memset(ret_exit, 0, sizeof(*ret_exit));
	r = kf_os_spawn(o, req, &p);
	if (r < 0) {
		/* "flashtool missing" must never look like "flashtool
		 * exited 1": it is its own kind of outcome */
		ret_exit->kind = KF_EXIT_EXEC_FAILED;
		ret_exit->err = -r;
		return 0;
	}
	start = opts->timeout_ms > 0 || opts->on_tick ? kf_os_now(o) : 0;
	deadline = opts->timeout_ms > 0 ? start + opts->timeout_ms : INT64_MAX;
	tick = opts->on_tick && opts->tick_ms > 0 ? start + opts->tick_ms : INT64_MAX;
	for (;;) {
		struct kf_exit ex;
		int64_t until = tick < deadline ? tick : deadline;

		r = kf_os_wait(o, &p, until, tee_line, (void *)opts, &ex);
		if (r < 0) {
			kf_proc_terminate(o, &p, KF_PROC_GRACE_MS, NULL);
			return r;
		}
		if (ex.kind != KF_EXIT_RUNNING) {
			*ret_exit = ex;
			/* the leader is gone; its group may not be */
			(void)kf_os_kill_group(o, &p, SIGKILL);
			return 0;
		}
		if (!ex.interrupted_by && until == tick && tick < deadline) {
			/* the tick, not the deadline */
			opts->on_tick(opts->line_data, tick - start);
			tick += opts->tick_ms;
			continue;
		}
		if (ex.interrupted_by)
			(void)kf_os_take_signal(o);
		if (ex.interrupted_by && opts->defer_signals) {
			if (opts->deferred_signal)
				*opts->deferred_signal = ex.interrupted_by;
			continue;
		}
		ret_exit->kind = ex.interrupted_by ? KF_EXIT_INTERRUPTED
						   : KF_EXIT_TIMED_OUT;
		ret_exit->interrupted_by = ex.interrupted_by;
		/* a signal during the grace period still counts */
		kf_proc_terminate(o, &p, KF_PROC_GRACE_MS,
				  &ret_exit->interrupted_by);
		return 0;
	}
}

static bool needs_quotes(const char *s)
{
	return !*s || strpbrk(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") != NULL;
}

void kf_argv_free(char **argv)
{
	size_t i;

	for (i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

char *kf_argv_join(const char *const *argv)
{
	struct kf_buf b = KF_BUF_INIT;
	size_t i;

	for (i = 0; argv[i]; i++) {
		const char *s = argv[i];

		if (i)
			kf_buf_add(&b, " ", 1);
		if (!needs_quotes(s)) {
			kf_buf_add(&b, s, strlen(s));
			continue;
		}
		kf_buf_add(&b, "'", 1);
		for (; *s; s++) {
			if (*s == '\'')
				kf_buf_add(&b, "'\\''", 4);
			else
				kf_buf_add(&b, s, 1);
		}
		kf_buf_add(&b, "'", 1);
	}
	if (!b.data)
		kf_buf_add(&b, "", 0);
	return b.data;
}

char *kf_shell_path(const char *path)
{
	const char *rest[] = { path + 2, NULL };
	char *q, *r;

	if (strncmp(path, "~/", 2) != 0 || !path[2]) {
		rest[0] = path;
		return kf_argv_join(rest);
	}
	/* the tilde outside the quotes, so the shell still expands it */
	q = kf_argv_join(rest);
	r = kf_asprintf("~/%s", q);
	free(q);
	return r;
}

void kf_exit_describe(const struct kf_exit *e, char *buf, size_t len)
{
	switch (e->kind) {
	case KF_EXIT_EXITED:
		snprintf(buf, len, "exited with status %d", e->code);
		break;
	case KF_EXIT_SIGNALED:
		snprintf(buf, len, "was killed by signal %d (%s)", e->sig,
			 strsignal(e->sig));
		break;
	case KF_EXIT_EXEC_FAILED:
		snprintf(buf, len, "could not be started: %s", strerror(e->err));
		break;
	case KF_EXIT_TIMED_OUT:
		snprintf(buf, len, "timed out and was stopped");
		break;
	case KF_EXIT_INTERRUPTED:
		snprintf(buf, len, "was stopped by signal %d to kflash",
			 e->interrupted_by);
		break;
	default:
		snprintf(buf, len, "is still running");
		break;
	}
}
