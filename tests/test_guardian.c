/* test_guardian.c - the guardian against the real kernel: a stand-in kflash
 * (this binary, --play-kflash) arms it, runs a child and is killed with
 * SIGKILL; the guardian must end the child's group, never touch a group
 * kflash reaped, start the unit (the simulator's fake sudo and systemctl)
 * and not hold the stand-in's output pipe open meanwhile. This binary is
 * also the guardian: the real one is kflash's own binary re-executed. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kflash/ops.h"
#include "kflash/service.h"
#include "kflash/util.h"

static char dir[] = "/tmp/kflash-guardian-XXXXXX";
static char fakes[4096];
/* this binary, for the stand-in: under valgrind /proc/self/exe is
 * valgrind's own tool, which will not run as a stand-in */
static char self_path[4096] = "/proc/self/exe";

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* name under the scratch dir (a static buffer: use it at once) */
static const char *in_dir(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static void put(const char *name, const char *data)
{
	FILE *f = fopen(in_dir(name), "w");

	assert_non_null(f);
	fputs(data, f);
	fclose(f);
}

/* The file's first line, or "" when it does not exist (yet). */
static const char *get(const char *name)
{
	static char buf[256];
	FILE *f = fopen(in_dir(name), "r");

	buf[0] = '\0';
	if (!f)
		return buf;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static bool wait_for(const char *name, const char *want, int ms)
{
	int64_t end = now_ms() + ms;

	while (now_ms() < end) {
		if (want ? strcmp(get(name), want) == 0 : *get(name) != '\0')
			return true;
		usleep(20000);
	}
	return false;
}

/* Alive and not a zombie. This process is a subreaper, so kflash's
 * orphans come to it and are reaped here. */
static bool alive(pid_t pid)
{
	(void)waitpid(pid, NULL, WNOHANG);
	return kill(pid, 0) == 0;
}

static bool gone_within(pid_t pid, int ms)
{
	int64_t end = now_ms() + ms;

	while (now_ms() < end) {
		if (!alive(pid))
			return true;
		usleep(20000);
	}
	return false;
}

/* ---- the stand-in kflash ----------------------------------------------------- */

static void note(const struct kf_ops *o, const char *name, int v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d\n", v);
	(void)kf_os_write_atomic(o, in_dir(name), buf, strlen(buf), 0644);
}

/* As kflash between two steps: signals are noted, only SIGKILL ends it. */
static int wait_to_be_killed(const struct kf_ops *o)
{
	for (;;) {
		(void)kf_os_sleep_until(o, INT64_MAX);
		(void)kf_os_take_signal(o);
	}
	return 0;
}

/* Spawns a detached helper (this binary, --helper) that takes its time
 * to get ready, as the guardian would; says what spawn returned. */
static int spawn_helper(const struct kf_ops *o)
{
	const char *const argv[] = { "test_guardian", "--helper", dir, NULL };
	struct kf_spawn_req req = { .argv = argv, .in = KF_STDIO_PIPE,
				    .detach = true, .self = true, .ready_ms = 10000 };
	struct kf_proc p;

	note(o, "forking", 1);
	note(o, "spawn.result", kf_os_spawn(o, &req, &p));
	return wait_to_be_killed(o);
}

/* The helper: gets ready a second late, and notes what ready() said. */
static int helper(void)
{
	struct kf_linux *lx;
	struct kf_ops o;

	if (kf_ops_linux_init(&o, &lx) < 0)
		return 1;
	(void)kf_os_sleep_until(&o, kf_os_now(&o) + 1000);
	note(&o, "ready.result", kf_os_ready(&o));
	return 0;
}

/* Arms the guardian; with "reaped" first runs a child to its end that
 * leaves a grandchild in its group; then starts a child whose group holds
 * a grandchild (`make` and its compiler: the death signal reaches only the
 * direct child) and waits to be killed. Prints a line, as kflash would,
 * on the pipe the test holds. */
static int play_kflash(const char *mode)
{
	static const char *const units[] = { "klipper", NULL };
	char script[600];
	const char *const argv[] = { "sh", "-c", script, NULL };
	struct kf_spawn_req req = { .argv = argv, .in = KF_STDIO_NULL,
				    .out = KF_STDIO_NULL };
	struct kf_guard g = { 0 };
	struct kf_linux *lx;
	struct kf_ops o;
	struct kf_proc p;
	struct kf_exit ex;

	if (kf_ops_linux_init(&o, &lx) < 0)
		return 1;
	if (strcmp(mode, "spawn-helper") == 0)
		return spawn_helper(&o);
	if (kf_guard_start(&g, &o, units, 10000) < 0)
		return 1;
	printf("[Service] stopping klipper\n");
	fflush(stdout);
	if (strcmp(mode, "reaped") == 0) {
		/* the leader exits and is reaped; its grandchild stays in
		 * its group */
		snprintf(script, sizeof(script), "sleep 60 & echo $! > %s/gc.pid", dir);
		if (kf_os_spawn(&o, &req, &p) < 0)
			return 1;
		do
			(void)kf_os_wait(&o, &p, INT64_MAX, NULL, NULL, &ex);
		while (ex.kind == KF_EXIT_RUNNING);
	}
	snprintf(script, sizeof(script), "sleep 60 & echo $! > %s/child.pid; wait", dir);
	if (kf_os_spawn(&o, &req, &p) < 0)
		return 1;
	return wait_to_be_killed(&o);
}

/* ---- the tests ------------------------------------------------------------------- */

struct standin {
	pid_t pid;
	int out;	/* read end of its stdout+stderr */
};

static struct standin start_kflash(const char *mode)
{
	struct standin s;
	int p[2];

	assert_int_equal(pipe(p), 0);
	s.pid = fork();
	assert_true(s.pid >= 0);
	if (s.pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		close(p[1]);
		execl(self_path, "test_guardian", "--play-kflash", mode, dir,
		      (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	s.out = p[0];
	return s;
}

/* What the stand-in said so far, for a failure message. */
static const char *said(struct standin *s)
{
	static char buf[4096];
	struct pollfd p = { .fd = s->out, .events = POLLIN };
	ssize_t n = 0;

	if (poll(&p, 1, 0) > 0)
		n = read(s->out, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void kill_kflash(struct standin *s)
{
	if (!wait_for("child.pid", NULL, 10000))
		fail_msg("the stand-in never started its child: %s", said(s));
	assert_int_equal(kill(s->pid, SIGKILL), 0);
	assert_int_equal(waitpid(s->pid, NULL, 0), s->pid);
}

/* Reads the pipe to its end; returns how long that took after the kill. */
static int64_t pipe_end_ms(struct standin *s)
{
	int64_t t0 = now_ms();
	char buf[512];

	for (;;) {
		struct pollfd p = { .fd = s->out, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 10000) <= 0)
			return -1;
		n = read(s->out, buf, sizeof(buf));
		if (n <= 0)
			break;
	}
	close(s->out);
	return now_ms() - t0;
}

static int setup(void **state)
{
	(void)state;
	if (!realpath("sim/fake/bin", fakes) || access("/usr/bin/python3", X_OK) != 0) {
		print_message("no sim/fake/bin here (run from the repository) or no "
			      "/usr/bin/python3: guardian tests skipped\n");
		return 0;
	}
	if (!mkdtemp(dir))
		return -1;
	mkdir(in_dir("state"), 0755);
	mkdir(in_dir("state/service"), 0755);
	setenv("KFLASH_SIM_STATE", in_dir("state"), 1);
	setenv("KFLASH_SIM_EVENTS", in_dir("events"), 1);
	{
		char *search = kf_asprintf("%s:%s", fakes, getenv("PATH"));

		setenv("PATH", search, 1);
		free(search);
	}
	/* kflash's orphans (the guardian, a killed child) are reaped here */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	if (!*fakes)
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static int fresh(void **state)
{
	(void)state;
	if (!*fakes)
		return 0;
	unlink(in_dir("child.pid"));
	unlink(in_dir("gc.pid"));
	unlink(in_dir("forking"));
	unlink(in_dir("spawn.result"));
	unlink(in_dir("ready.result"));
	unlink(in_dir("state/fault/systemctl-start"));
	put("state/service/klipper", "inactive\n");	/* "kflash" stopped it */
	return 0;
}

static void skip_without_fakes(void)
{
	if (!*fakes)
		skip();
}

/* kflash dies by SIGKILL with a child running: the guardian ends the
 * child's group and starts the unit; a `kflash | tee` pipeline ends with
 * kflash, while the guardian is still at work (its start is slow here). */
static void sigkill__child_group_ended_unit_started_pipe_not_held(void **state)
{
	struct standin s;
	pid_t child;
	int64_t t;

	(void)state;
	skip_without_fakes();
	mkdir(in_dir("state/fault"), 0755);
	put("state/fault/systemctl-start", "slow 2\n");
	s = start_kflash("child");
	kill_kflash(&s);
	child = (pid_t)atoi(get("child.pid"));
	t = pipe_end_ms(&s);
	assert_true(t >= 0);
	if (t > 1000)
		fail_msg("the pipe stayed open %ld ms after kflash died", (long)t);
	/* the guardian was still starting the unit when the pipe ended */
	assert_string_not_equal(get("state/service/klipper"), "active");
	assert_true(gone_within(child, 5000));
	assert_true(wait_for("state/service/klipper", "active", 10000));
}

/* A group kflash reaped is not the guardian's any more: its number may
 * belong to another process by now. Here the reaped leader left a
 * grandchild in it, which must survive the guardian. */
static void sigkill__a_reaped_group_is_left_alone(void **state)
{
	struct standin s;
	pid_t child, gc;

	(void)state;
	skip_without_fakes();
	s = start_kflash("reaped");
	kill_kflash(&s);
	child = (pid_t)atoi(get("child.pid"));
	assert_true(wait_for("gc.pid", NULL, 5000));
	gc = (pid_t)atoi(get("gc.pid"));
	assert_true(gc > 1);
	assert_true(pipe_end_ms(&s) >= 0);
	assert_true(wait_for("state/service/klipper", "active", 10000));
	assert_true(gone_within(child, 5000));
	/* the guardian is done (it exited, and was reaped here) */
	usleep(200000);
	assert_true(alive(gc));
	kill(gc, SIGKILL);
	assert_true(gone_within(gc, 2000));
}

/* The race systemd's safe_fork closes: kflash may die after forking a
 * helper and before the helper listens, and nothing would tell it. ready()
 * compares its parent with the pid that forked it. */
static void ready__a_helper_knows_when_its_spawner_died_before_it_was_ready(void **state)
{
	struct standin s;

	(void)state;
	skip_without_fakes();
	s = start_kflash("spawn-helper");
	assert_true(wait_for("forking", "1", 10000));
	usleep(100000);
	assert_int_equal(kill(s.pid, SIGKILL), 0);
	assert_int_equal(waitpid(s.pid, NULL, 0), s.pid);
	close(s.out);
	assert_true(wait_for("ready.result", NULL, 10000));
	assert_int_equal(atoi(get("ready.result")), -ESRCH);
	assert_string_equal(get("spawn.result"), "");
}

static void ready__a_live_spawner_hears_it_and_its_spawn_returns(void **state)
{
	struct standin s;

	(void)state;
	skip_without_fakes();
	s = start_kflash("spawn-helper");
	assert_true(wait_for("spawn.result", NULL, 10000));
	assert_string_equal(get("spawn.result"), "0");
	/* the helper notes what ready() returned after it returned, so
	 * after the spawn may have returned too */
	assert_true(wait_for("ready.result", NULL, 10000));
	assert_string_equal(get("ready.result"), "0");
	assert_int_equal(kill(s.pid, SIGKILL), 0);
	assert_int_equal(waitpid(s.pid, NULL, 0), s.pid);
	close(s.out);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(sigkill__child_group_ended_unit_started_pipe_not_held, fresh),
		cmocka_unit_test_setup(sigkill__a_reaped_group_is_left_alone, fresh),
		cmocka_unit_test_setup(ready__a_helper_knows_when_its_spawner_died_before_it_was_ready, fresh),
		cmocka_unit_test_setup(ready__a_live_spawner_hears_it_and_its_spawn_returns, fresh),
	};

	if (argc > 1 && strcmp(argv[1], KF_GUARDIAN_ARG) == 0) {
		struct kf_linux *lx;
		struct kf_ops o;

		if (kf_ops_linux_init(&o, &lx) < 0)
			return 1;
		return kf_guardian_main(&o, argc - 2, argv + 2);
	}
	if (argc > 2 && strcmp(argv[1], "--helper") == 0) {
		snprintf(dir, sizeof(dir), "%s", argv[2]);
		return helper();
	}
	if (argc > 3 && strcmp(argv[1], "--play-kflash") == 0) {
		snprintf(dir, sizeof(dir), "%s", argv[3]);
		return play_kflash(argv[2]);
	}
	if (!realpath(argv[0], self_path))
		snprintf(self_path, sizeof(self_path), "/proc/self/exe");
	return cmocka_run_group_tests_name("guardian", tests, setup, teardown);
}
