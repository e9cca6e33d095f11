/* test_ops_linux.c - the real backend against the real kernel: process
 * groups, timeouts, exec failures, atomic writes, locks, signals, HTTP,
 * the terminal line read and what it reads of the host. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kflash/ops.h"
#include "kflash/proc.h"

static struct kf_ops ops;
static struct kf_linux *lx;
static char tmpdir[] = "/tmp/kflash-test-XXXXXX";

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	return kf_ops_linux_init(&ops, &lx);
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	kf_ops_linux_release(lx);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

static void capture_line(void *data, const char *line, size_t len)
{
	kf_buf_add(data, line, len);
	kf_buf_add(data, "\n", 1);
}

static void spawn__captures_lines_and_status(void **state)
{
	const char *const argv[] = { "sh", "-c", "echo one; echo two >&2; printf three; exit 3", NULL };
	struct kf_spawn_req req = { .argv = argv, .out = KF_STDIO_CAPTURE };
	struct kf_buf out = KF_BUF_INIT;
	struct kf_run_opts opts = { .timeout_ms = 10000, .capture = &out };
	struct kf_exit ex;

	(void)state;
	assert_int_equal(kf_proc_run(&ops, &req, &opts, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_EXITED);
	assert_int_equal(ex.code, 3);
	assert_string_equal(out.data, "one\ntwo\nthree\n");
	kf_buf_release(&out);
}

/* A build during a print must not take CPU or disk from Klipper: the child
 * (and what it starts) runs at nice 19, SCHED_IDLE and I/O class idle. The
 * child reports its own priorities from /proc/self/stat (field 19 is nice,
 * 41 the policy; SCHED_IDLE is 5) and ionice. */
static void spawn__idle_child_runs_at_idle_priority(void **state)
{
	const char *const argv[] = { "sh", "-c",
		"set -- $(cut -d' ' -f19,41 /proc/self/stat); echo nice=$1 policy=$2; "
		"ionice -p $$ 2>/dev/null || echo 'no ionice'", NULL };
	struct kf_spawn_req req = { .argv = argv, .out = KF_STDIO_CAPTURE, .idle = true };
	struct kf_buf out = KF_BUF_INIT;
	struct kf_run_opts opts = { .timeout_ms = 10000, .capture = &out };
	struct kf_exit ex;

	(void)state;
	assert_int_equal(kf_proc_run(&ops, &req, &opts, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_EXITED);
	assert_non_null(strstr(out.data, "nice=19 policy=5\n"));
	if (strstr(out.data, "no ionice"))
		print_message("ionice is not installed: I/O class not checked\n");
	else
		assert_non_null(strstr(out.data, "idle"));
	kf_buf_release(&out);
	/* without the flag, nothing changes */
	req.idle = false;
	assert_int_equal(kf_proc_run(&ops, &req, &opts, &ex), 0);
	assert_null(strstr(out.data, "policy=5"));
	kf_buf_release(&out);
}

static void spawn__timeout_leaves_no_grandchild_alive(void **state)
{
	char pidfile[256], *buf = NULL;
	const char *argv[] = { "sh", "-c", NULL, NULL };
	char script[512];
	struct kf_spawn_req req = { .argv = argv, .out = KF_STDIO_NULL };
	struct kf_run_opts opts = { .timeout_ms = 300 };
	struct kf_exit ex;
	int64_t t0;
	pid_t grandchild;

	(void)state;
	/* like make running a compiler: the grandchild must die too */
	snprintf(pidfile, sizeof(pidfile), "%s/gc.pid", tmpdir);
	snprintf(script, sizeof(script), "sleep 60 & echo $! > %s; wait", pidfile);
	argv[2] = script;
	t0 = kf_os_now(&ops);
	assert_int_equal(kf_proc_run(&ops, &req, &opts, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_TIMED_OUT);
	assert_true(kf_os_now(&ops) - t0 < 3000);
	assert_int_equal(kf_os_read_file(&ops, pidfile, &buf, NULL), 0);
	grandchild = (pid_t)atoi(buf);
	free(buf);
	assert_true(grandchild > 0);
	/* gone (reaped by init) or at most a zombie about to be */
	usleep(100000);
	if (kill(grandchild, 0) == 0) {
		char stat[64], *s = NULL;

		snprintf(stat, sizeof(stat), "/proc/%d/stat", grandchild);
		assert_int_equal(kf_os_read_file(&ops, stat, &s, NULL), 0);
		assert_non_null(strstr(s, ") Z "));
		free(s);
	}
}

static void spawn__missing_program_is_exec_failed(void **state)
{
	const char *const argv[] = { "kflash-no-such-program", NULL };
	struct kf_spawn_req req = { .argv = argv };
	struct kf_exit ex;

	(void)state;
	assert_int_equal(kf_proc_run(&ops, &req, NULL, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_EXEC_FAILED);
	assert_int_equal(ex.err, ENOENT);
}

static void spawn__sigterm_to_kflash_interrupts_the_child(void **state)
{
	const char *const argv[] = { "sleep", "30", NULL };
	struct kf_spawn_req req = { .argv = argv };
	struct kf_run_opts opts = { .timeout_ms = 20000 };
	struct kf_proc p;
	struct kf_exit ex;

	(void)state;
	/* a signal that is already pending interrupts the wait at once */
	assert_int_equal(kf_os_spawn(&ops, &req, &p), 0);
	raise(SIGTERM);
	assert_int_equal(kf_os_wait(&ops, &p, INT64_MAX, NULL, NULL, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_RUNNING);
	assert_int_equal(ex.interrupted_by, SIGTERM);
	assert_int_equal(kf_os_take_signal(&ops), SIGTERM);
	kf_proc_terminate(&ops, &p, 2000, NULL);
	assert_int_equal(kill(p.pid, 0), -1);

	/* and through kf_proc_run */
	raise(SIGHUP);
	assert_int_equal(kf_proc_run(&ops, &req, &opts, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_INTERRUPTED);
	assert_int_equal(ex.interrupted_by, SIGHUP);
}

static void spawn__stdin_pipe_is_fed_then_closed(void **state)
{
	const char *const argv[] = { "sh", "-c", "read a; read b || echo eof; echo \"$a\"", NULL };
	struct kf_spawn_req req = { .argv = argv, .in = KF_STDIO_PIPE,
				    .out = KF_STDIO_CAPTURE };
	struct kf_buf out = KF_BUF_INIT;
	struct kf_proc p;
	struct kf_exit ex;

	(void)state;
	assert_int_equal(kf_os_spawn(&ops, &req, &p), 0);
	assert_true(p.in_fd >= 0);
	assert_int_equal(kf_os_feed(&ops, &p, "hello\n", 6), 0);
	assert_int_equal(kf_os_feed(&ops, &p, NULL, 0), 0);
	assert_int_equal(p.in_fd, -1);
	assert_int_equal(kf_os_wait(&ops, &p, kf_os_now(&ops) + 10000, capture_line,
				    &out, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_EXITED);
	assert_string_equal(out.data, "eof\nhello\n");
	kf_buf_release(&out);
}

/* A helper must say it is ready before spawn returns: one that ends first
 * or never says so is an error, and is not left running. */
static void spawn__detached_helper_that_is_never_ready_is_an_error(void **state)
{
	const char *const gone[] = { "true", NULL };
	const char *const mute[] = { "sleep", "30", NULL };
	char mark[64], cmd[160];
	const char *env[] = { mark, NULL };
	struct kf_spawn_req req = { .argv = gone, .env = env, .in = KF_STDIO_PIPE,
				    .detach = true, .ready_ms = 300 };
	struct kf_proc p;
	int64_t t0;

	(void)state;
	snprintf(mark, sizeof(mark), "KFLASH_TEST_HELPER=%ld", (long)getpid());
	assert_int_equal(kf_os_spawn(&ops, &req, &p), -ECHILD);
	req.argv = mute;
	t0 = kf_os_now(&ops);
	assert_int_equal(kf_os_spawn(&ops, &req, &p), -ETIMEDOUT);
	assert_true(kf_os_now(&ops) - t0 < 3000);
	snprintf(cmd, sizeof(cmd), "! grep -qsz '^%s$' /proc/[0-9]*/environ", mark);
	assert_int_equal(system(cmd), 0);
}

struct heard {
	pid_t pid[4];
	bool running[4];
	int n;
};

static void hear(void *data, pid_t pgid, bool running)
{
	struct heard *h = data;

	if (h->n < 4) {
		h->pid[h->n] = pgid;
		h->running[h->n++] = running;
	}
}

/* The observer hears of a child at its fork and at its reap, and of
 * nothing once it is removed. */
static void observe__hears_fork_and_reap(void **state)
{
	const char *const argv[] = { "true", NULL };
	struct kf_spawn_req req = { .argv = argv, .in = KF_STDIO_NULL,
				    .out = KF_STDIO_NULL };
	struct heard h = { .n = 0 };
	struct kf_proc p;
	struct kf_exit ex;

	(void)state;
	kf_os_observe(&ops, hear, &h);
	assert_int_equal(kf_os_spawn(&ops, &req, &p), 0);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.pid[0], p.pid);
	assert_true(h.running[0]);
	assert_int_equal(kf_os_wait(&ops, &p, INT64_MAX, NULL, NULL, &ex), 0);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.pid[1], h.pid[0]);
	assert_false(h.running[1]);
	kf_os_observe(&ops, NULL, NULL);
	assert_int_equal(kf_proc_run(&ops, &req, NULL, &ex), 0);
	assert_int_equal(h.n, 2);
}

/* The guardian waits on kflash's orphans, which are not its children. */
static void attach__waits_for_a_process_it_did_not_start(void **state)
{
	struct kf_proc p;
	struct kf_exit ex;
	int64_t t0;
	pid_t pid;
	int r;

	(void)state;
	pid = fork();
	if (pid == 0) {
		usleep(300000);
		_exit(7);
	}
	r = kf_os_attach(&ops, pid, &p);
	if (r == -ENOSYS) {
		/* valgrind 3.19 does not know pidfd_open; Linux has had it since 5.3 */
		fprintf(stderr, "skipped: pidfd_open is not available here (valgrind?)\n");
		waitpid(pid, NULL, 0);
		skip();
	}
	assert_int_equal(r, 0);
	t0 = kf_os_now(&ops);
	assert_int_equal(kf_os_wait(&ops, &p, t0 + 10000, NULL, NULL, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_EXITED);
	assert_true(kf_os_now(&ops) - t0 >= 250);
	/* not reaped there: its status is still its parent's */
	{
		int st;

		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_int_equal(WEXITSTATUS(st), 7);
	}
	assert_int_equal(kf_os_attach(&ops, pid, &p), -ESRCH);
}

static void write_atomic__replaces_whole_file_and_leaves_no_temp(void **state)
{
	char path[256], *buf = NULL, cmd[300];
	size_t len;

	(void)state;
	snprintf(path, sizeof(path), "%s/sub/dir/devices.json", tmpdir);
	snprintf(cmd, sizeof(cmd), "%s/sub/dir", tmpdir);
	assert_int_equal(kf_os_mkdir_p(&ops, cmd, 0755), 0);
	assert_int_equal(kf_os_write_atomic(&ops, path, "old", 3, 0644), 0);
	assert_int_equal(kf_os_write_atomic(&ops, path, "new!", 4, 0600), 0);
	assert_int_equal(kf_os_read_file(&ops, path, &buf, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(buf, "new!", 4);
	free(buf);
	snprintf(cmd, sizeof(cmd), "test $(ls -A %s/sub/dir | wc -l) -eq 1", tmpdir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(kf_os_read_file(&ops, "/nonexistent/x", &buf, &len), -ENOENT);
}

static void remove_tree__removes_links_not_what_they_point_at(void **state)
{
	char dir[256], keep[256], link[300], sub[300];
	char **names;
	size_t n;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/session", tmpdir);
	snprintf(keep, sizeof(keep), "%s/keep.txt", tmpdir);
	snprintf(sub, sizeof(sub), "%s/boards/b.json", dir);
	snprintf(link, sizeof(link), "%s/outside", dir);
	assert_int_equal(kf_os_write_atomic(&ops, keep, "x", 1, 0644), 0);
	assert_int_equal(kf_os_mkdir_p(&ops, sub, 0755), 0);
	assert_int_equal(symlink(keep, link), 0);
	assert_int_equal(kf_os_read_dir(&ops, dir, &names, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "boards");
	assert_string_equal(names[1], "outside");
	kf_names_free(names, n);
	assert_int_equal(kf_os_remove_tree(&ops, dir), 0);
	assert_int_equal(access(dir, F_OK), -1);
	assert_int_equal(access(keep, F_OK), 0);
	assert_int_equal(kf_os_remove_tree(&ops, dir), 0);
	assert_int_equal(kf_os_read_dir(&ops, dir, &names, &n), -ENOENT);
}

static void lock__second_holder_learns_the_first_pid(void **state)
{
	char path[256];
	int fd1 = -1, fd2 = -1;
	pid_t holder = -1;
	uid_t owner = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/flash.lock", tmpdir);
	assert_int_equal(kf_os_lock(&ops, path, &fd1, &holder, &owner), 0);
	assert_int_equal(owner, geteuid());
	assert_int_equal(kf_os_lock(&ops, path, &fd2, &holder, &owner), -EWOULDBLOCK);
	assert_int_equal(holder, getpid());
	kf_os_unlock(&ops, fd1);
	/* a released (or dead holder's) lock does not block */
	assert_int_equal(kf_os_lock(&ops, path, &fd2, &holder, &owner), 0);
	kf_os_unlock(&ops, fd2);
}

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len;

	assert_int_equal(kf_os_read_file(&ops, path, &buf, &len), 0);
	return buf;
}

/* What another user can plant at a lock's name in /run/lock: a link to a
 * file of ours (it must not get our pid, nor be truncated), a FIFO (open
 * must not block), a longer file of our own (its pid is overwritten whole,
 * never truncated). */
static void lock__planted_link_or_fifo_is_never_followed_or_opened(void **state)
{
	char path[256], victim[256], fifo[256], *text;
	int fd = -1;
	pid_t holder;
	uid_t owner;

	(void)state;
	snprintf(path, sizeof(path), "%s/planted.lock", tmpdir);
	snprintf(victim, sizeof(victim), "%s/victim.txt", tmpdir);
	snprintf(fifo, sizeof(fifo), "%s/fifo.lock", tmpdir);
	assert_int_equal(kf_os_write_atomic(&ops, victim, "precious\n", 9, 0644), 0);
	assert_int_equal(symlink(victim, path), 0);
	assert_int_equal(kf_os_lock(&ops, path, &fd, &holder, &owner), -ELOOP);
	assert_int_equal(fd, -1);
	text = slurp(victim);
	assert_string_equal(text, "precious\n");
	free(text);
	assert_int_equal(mkfifo(fifo, 0644), 0);
	assert_int_equal(kf_os_lock(&ops, fifo, &fd, &holder, &owner), -EINVAL);
	assert_int_equal(owner, geteuid());
	/* our own file, longer than a pid: written over, not cut */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(kf_os_write_atomic(&ops, path, "12345678901234567890\n", 21, 0644), 0);
	assert_int_equal(kf_os_lock(&ops, path, &fd, &holder, &owner), 0);
	text = slurp(path);
	assert_int_equal(strlen(text), 21);
	assert_int_equal(atol(text), (long)getpid());
	free(text);
	kf_os_unlock(&ops, fd);
}

/* A lock file of another user is locked (per-board locks are shared) but
 * never written; its owner is said. Needs root, to make such a file. */
static void lock__another_users_file_is_locked_not_written(void **state)
{
	char path[256], *text;
	int fd = -1;
	pid_t holder;
	uid_t owner;

	(void)state;
	if (geteuid() != 0) {
		fprintf(stderr, "skipped: making another user's file needs root\n");
		skip();
	}
	snprintf(path, sizeof(path), "%s/theirs.lock", tmpdir);
	assert_int_equal(kf_os_write_atomic(&ops, path, "4242\n", 5, 0644), 0);
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_int_equal(kf_os_lock(&ops, path, &fd, &holder, &owner), 0);
	assert_int_equal(owner, 65534);
	text = slurp(path);
	assert_string_equal(text, "4242\n");
	free(text);
	kf_os_unlock(&ops, fd);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* A save keeps the mode its owner gave the file, keeps a private file
 * private, and writes through a symbolic link (even a dangling one) into
 * the target's directory: the link stays a link. */
static void write_atomic__keeps_the_mode_and_writes_through_a_link(void **state)
{
	char real[320], dir[256], link[256], dangling[256], *text;
	struct stat st;
	mode_t um = umask(022);

	(void)state;
	snprintf(dir, sizeof(dir), "%s/dotfiles", tmpdir);
	snprintf(real, sizeof(real), "%s/devices.json", dir);
	snprintf(link, sizeof(link), "%s/devices.json", tmpdir);
	snprintf(dangling, sizeof(dangling), "%s/later.json", tmpdir);
	assert_int_equal(kf_os_mkdir_p(&ops, dir, 0755), 0);
	assert_int_equal(kf_os_write_atomic(&ops, real, "1", 1, 0644), 0);
	assert_int_equal(mode_of(real), 0644);
	assert_int_equal(chmod(real, 0600), 0);
	assert_int_equal(kf_os_write_atomic(&ops, real, "2", 1, 0644), 0);
	assert_int_equal(mode_of(real), 0600);
	assert_int_equal(chmod(real, 0640), 0);
	assert_int_equal(kf_os_write_atomic(&ops, real, "3", 1, 0600), 0);
	assert_int_equal(mode_of(real), 0600);
	/* a new file gets the mode less the umask */
	assert_int_equal(kf_os_write_atomic(&ops, dangling, "n", 1, 0666), 0);
	assert_int_equal(mode_of(dangling), 0644);
	assert_int_equal(unlink(dangling), 0);

	assert_int_equal(symlink("dotfiles/devices.json", link), 0);
	assert_int_equal(kf_os_write_atomic(&ops, link, "4", 1, 0600), 0);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	text = slurp(real);
	assert_string_equal(text, "4");
	free(text);
	assert_int_equal(mode_of(real), 0600);
	/* nothing left beside the link or the target */
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1 && "
			 "test $(ls -A %s | grep -c tmp) -eq 0", dir, tmpdir);
		assert_int_equal(system(cmd), 0);
	}
	assert_int_equal(symlink("dotfiles/new.json", dangling), 0);
	assert_int_equal(kf_os_write_atomic(&ops, dangling, "5", 1, 0644), 0);
	assert_int_equal(lstat(dangling, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	snprintf(real, sizeof(real), "%s/new.json", dir);
	text = slurp(real);
	assert_string_equal(text, "5");
	free(text);
	umask(um);
}

/* A temp file whose writer died (kill -9 between the link and the rename)
 * is removed by the next save of the same file; a live writer's (it holds
 * its lock) and other files are not. */
static void write_atomic__removes_a_dead_writers_temp_only(void **state)
{
	char dir[256], path[320], stale[400], live[400], other[400];
	int fd;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/cfg", tmpdir);
	snprintf(path, sizeof(path), "%s/devices.json", dir);
	snprintf(stale, sizeof(stale), "%s.tmp.a1b2c3", path);
	snprintf(live, sizeof(live), "%s.tmp.d4e5f6", path);
	snprintf(other, sizeof(other), "%s.tmp.notmine1", path);
	assert_int_equal(kf_os_mkdir_p(&ops, dir, 0755), 0);
	assert_int_equal(kf_os_write_atomic(&ops, stale, "{", 1, 0600), 0);
	assert_int_equal(kf_os_write_atomic(&ops, live, "{", 1, 0600), 0);
	assert_int_equal(kf_os_write_atomic(&ops, other, "{", 1, 0600), 0);
	fd = open(live, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	assert_int_equal(kf_os_write_atomic(&ops, path, "{}", 2, 0600), 0);
	assert_int_equal(access(stale, F_OK), -1);
	assert_int_equal(access(live, F_OK), 0);
	assert_int_equal(access(other, F_OK), 0);
	close(fd);
	assert_int_equal(kf_os_write_atomic(&ops, path, "{}", 2, 0600), 0);
	assert_int_equal(access(live, F_OK), -1);
	/* tidy: the same for every file of a dir nobody saves into again (a
	 * killed run's session) */
	snprintf(stale, sizeof(stale), "%s/session.json.tmp.a1b2c3", dir);
	assert_int_equal(kf_os_write_atomic(&ops, stale, "{", 1, 0600), 0);
	assert_int_equal(kf_os_tidy(&ops, dir), 0);
	assert_int_equal(access(stale, F_OK), -1);
	assert_int_equal(access(other, F_OK), 0);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(kf_os_tidy(&ops, "/nonexistent"), -ENOENT);
}

/* The guardian's orders come only through the pipe kflash made for it: a
 * helper whose stdin is anything else (/dev/null, a FIFO others could
 * write to) is never ready, so kflash would stop nothing. The helper is
 * this test program again (main's --ready-helper). */
static void spawn__helper_on_another_stdin_is_never_ready(void **state)
{
	char fifo[256];
	const char *const good[] = { "test_ops_linux", "--ready-helper", "keep", NULL };
	const char *const null[] = { "test_ops_linux", "--ready-helper", "null", NULL };
	const char *const named[] = { "test_ops_linux", "--ready-helper", fifo, NULL };
	struct kf_spawn_req req = { .argv = good, .in = KF_STDIO_PIPE, .detach = true,
				    .ready_ms = 5000, .self = true };
	struct kf_proc p;
	struct kf_exit ex;

	(void)state;
	/* .self runs /proc/self/exe, which under valgrind is valgrind's own
	 * tool: the helper cannot start there (the product's guardian has the
	 * same limit, see the README's valgrind paragraph) */
	if (getenv("LD_PRELOAD") && strstr(getenv("LD_PRELOAD"), "vgpreload")) {
		fprintf(stderr, "skipped: a self-spawned helper cannot start under valgrind\n");
		skip();
	}
	snprintf(fifo, sizeof(fifo), "%s/orders", tmpdir);
	assert_int_equal(mkfifo(fifo, 0666), 0);
	assert_int_equal(kf_os_spawn(&ops, &req, &p), 0);
	assert_int_equal(kf_os_feed(&ops, &p, NULL, 0), 0);
	assert_int_equal(kf_os_wait(&ops, &p, kf_os_now(&ops) + 5000, NULL, NULL, &ex), 0);
	req.argv = null;
	assert_int_equal(kf_os_spawn(&ops, &req, &p), -ECHILD);
	req.argv = named;
	assert_int_equal(kf_os_spawn(&ops, &req, &p), -ECHILD);
	/* and a helper needs its pipe */
	req.in = KF_STDIO_NULL;
	req.argv = good;
	assert_int_equal(kf_os_spawn(&ops, &req, &p), -EINVAL);
}

/* --ready-helper STDIN: a detached helper that says it is ready with stdin
 * kept (keep), /dev/null (null) or the FIFO at STDIN; exits 0 when ready()
 * said 0. */
static int ready_helper(const char *in)
{
	int fd = -1;

	if (strcmp(in, "null") == 0)
		fd = open("/dev/null", O_RDONLY);
	else if (strcmp(in, "keep") != 0)
		fd = open(in, O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	if (kf_ops_linux_init(&ops, &lx) < 0)
		return 3;
	return kf_os_ready(&ops) == 0 ? 0 : 1;
}

static void http__nothing_listening_is_unreachable(void **state)
{
	char *body = NULL;
	long status = 0;

	(void)state;
	/* port 9 (discard) on loopback: nothing listens in a test box */
	assert_int_equal(kf_os_http_get(&ops, "http://127.0.0.1:9/printer/info",
					NULL, 2000, &body, &status), -EHOSTUNREACH);
	assert_null(body);
}

static void sleep_until__returns_early_on_a_signal(void **state)
{
	int64_t t0 = kf_os_now(&ops);

	(void)state;
	assert_int_equal(kf_os_sleep_until(&ops, t0 + 50), 0);
	assert_true(kf_os_now(&ops) - t0 >= 50);
	raise(SIGINT);
	t0 = kf_os_now(&ops);
	assert_int_equal(kf_os_sleep_until(&ops, t0 + 10000), -EINTR);
	assert_true(kf_os_now(&ops) - t0 < 1000);
	assert_int_equal(kf_os_take_signal(&ops), SIGINT);
}

/* Puts the read end of a fresh pipe on stdin; returns the write end. The
 * old stdin is kept in *saved. */
static int pipe_stdin(int *saved)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	*saved = dup(STDIN_FILENO);
	assert_int_equal(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
	close(p[0]);
	return p[1];
}

static void restore_stdin(int saved)
{
	dup2(saved, STDIN_FILENO);
	close(saved);
}

static void read_line__takes_one_line_and_nothing_after_it(void **state)
{
	int saved, w = pipe_stdin(&saved);
	char *line = NULL, rest[16] = "";

	(void)state;
	assert_int_equal(write(w, "one\r\ntwo\nthr", 12), 12);
	assert_int_equal(kf_os_read_line(&ops, &line), 1);
	assert_string_equal(line, "one\r");	/* raw: the prompt strips \r */
	free(line);
	/* what follows is still there for the next reader (menuconfig) */
	assert_int_equal(read(STDIN_FILENO, rest, 4), 4);
	assert_memory_equal(rest, "two\n", 4);
	close(w);
	/* the end of input cuts "thr" short: no line */
	assert_int_equal(kf_os_read_line(&ops, &line), 0);
	assert_null(line);
	assert_int_equal(kf_os_isatty(&ops, STDIN_FILENO), 0);
	restore_stdin(saved);
}

static void read_line__a_signal_ends_the_wait(void **state)
{
	int saved, w = pipe_stdin(&saved);
	char *line = NULL;
	int64_t t0;
	pid_t child;

	(void)state;
	/* one already pending */
	raise(SIGINT);
	assert_int_equal(kf_os_read_line(&ops, &line), -EINTR);
	assert_int_equal(kf_os_take_signal(&ops), SIGINT);
	/* one that comes while nothing is typed */
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		usleep(200 * 1000);
		kill(getppid(), SIGTERM);
		_exit(0);
	}
	t0 = kf_os_now(&ops);
	assert_int_equal(kf_os_read_line(&ops, &line), -EINTR);
	assert_null(line);
	assert_true(kf_os_now(&ops) - t0 < 5000);
	assert_int_equal(kf_os_take_signal(&ops), SIGTERM);
	assert_int_equal(waitpid(child, NULL, 0), child);
	close(w);
	restore_stdin(saved);
}

static void host__environment_uid_and_cpus_are_the_processes(void **state)
{
	(void)state;
	setenv("KFLASH_TEST_VAR", "x y", 1);
	assert_string_equal(kf_os_getenv(&ops, "KFLASH_TEST_VAR"), "x y");
	unsetenv("KFLASH_TEST_VAR");
	assert_null(kf_os_getenv(&ops, "KFLASH_TEST_VAR"));
	assert_int_equal(kf_os_uid(&ops), geteuid());
	assert_int_equal(kf_os_cpu_count(&ops), sysconf(_SC_NPROCESSORS_ONLN));
	assert_int_equal(kf_os_isatty(&ops, -1), 0);
	assert_int_equal(kf_ops_check(&ops), 0);
}

/* term_width is the size the terminal was given (what an SSH client says
 * when its window changes); 0 for what is no terminal. */
static void term_width__is_the_terminals_columns(void **state)
{
	struct winsize ws = { .ws_row = 24, .ws_col = 97 };
	int master, slave, p[2];

	(void)state;
	master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) {
		print_message("no pseudo-terminal here (%s): skipped\n", strerror(errno));
		if (master >= 0)
			close(master);
		skip();
	}
	slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	assert_true(slave >= 0);
	assert_int_equal(ioctl(master, TIOCSWINSZ, &ws), 0);
	assert_int_equal(kf_os_term_width(&ops, slave), 97);
	close(slave);
	close(master);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(kf_os_term_width(&ops, p[1]), 0);
	assert_int_equal(kf_os_term_width(&ops, -1), 0);
	close(p[0]);
	close(p[1]);
}

/* kflash's last moment: a signal that came after its last look is
 * handed over, and from then on one ends the process as by default (the
 * shell sees 128+N), so none is ever lost between the last look and exit. */
static void end__hands_over_a_late_signal_and_restores_the_defaults(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct kf_ops o;
		struct kf_linux *l;

		if (kf_ops_linux_init(&o, &l) < 0)
			_exit(10);
		raise(SIGHUP);		/* caught: pending, not fatal */
		if (kf_ops_linux_end(l) != SIGHUP)
			_exit(11);
		if (kf_ops_linux_end(l) != 0)
			_exit(12);
		raise(SIGTERM);		/* now as by default */
		_exit(13);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status))
		fail_msg("the child exited %d", WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGTERM);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lock__planted_link_or_fifo_is_never_followed_or_opened),
		cmocka_unit_test(lock__another_users_file_is_locked_not_written),
		cmocka_unit_test(write_atomic__keeps_the_mode_and_writes_through_a_link),
		cmocka_unit_test(write_atomic__removes_a_dead_writers_temp_only),
		cmocka_unit_test(spawn__helper_on_another_stdin_is_never_ready),
		cmocka_unit_test(end__hands_over_a_late_signal_and_restores_the_defaults),
		cmocka_unit_test(spawn__captures_lines_and_status),
		cmocka_unit_test(remove_tree__removes_links_not_what_they_point_at),
		cmocka_unit_test(spawn__idle_child_runs_at_idle_priority),
		cmocka_unit_test(spawn__timeout_leaves_no_grandchild_alive),
		cmocka_unit_test(spawn__missing_program_is_exec_failed),
		cmocka_unit_test(spawn__sigterm_to_kflash_interrupts_the_child),
		cmocka_unit_test(spawn__stdin_pipe_is_fed_then_closed),
		cmocka_unit_test(spawn__detached_helper_that_is_never_ready_is_an_error),
		cmocka_unit_test(observe__hears_fork_and_reap),
		cmocka_unit_test(attach__waits_for_a_process_it_did_not_start),
		cmocka_unit_test(write_atomic__replaces_whole_file_and_leaves_no_temp),
		cmocka_unit_test(lock__second_holder_learns_the_first_pid),
		cmocka_unit_test(http__nothing_listening_is_unreachable),
		cmocka_unit_test(sleep_until__returns_early_on_a_signal),
		cmocka_unit_test(read_line__takes_one_line_and_nothing_after_it),
		cmocka_unit_test(read_line__a_signal_ends_the_wait),
		cmocka_unit_test(host__environment_uid_and_cpus_are_the_processes),
		cmocka_unit_test(term_width__is_the_terminals_columns),
	};

	if (argc == 3 && strcmp(argv[1], "--ready-helper") == 0)
		return ready_helper(argv[2]);
	return cmocka_run_group_tests_name("ops_linux", tests, setup, teardown);
}
