/* test_proc.c - running children to completion, over the fake world: the
 * clock is fake, so timeouts take no real time. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "fault_ops.h"
#include "kflash/proc.h"

static const char *const make_argv[] = { "make", "-j2", NULL };
static const struct kf_spawn_req make_req = {
	.argv = make_argv, .out = KF_STDIO_CAPTURE, .in = KF_STDIO_NULL,
};

static int setup(void **state)
{
	struct fake_world *w = kf_xcalloc(1, sizeof(*w));

	fake_world_init(w);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	fake_world_release(*state);
	free(*state);
	return 0;
}

static void run__reports_exit_status_and_captured_lines(void **state)
{
	struct fake_world *w = *state;
	struct kf_buf out = KF_BUF_INIT;
	struct kf_run_opts opts = { .timeout_ms = 300000, .capture = &out };
	struct kf_exit ex;

	fake_add_prog(w, (struct fake_prog){ .argv0 = "make", .output = "CC src/a.c\nCC src/b.c", .exit_code = 2, .run_ms = 5000, .ignores_sigterm = false, .missing = false });
	assert_int_equal(kf_proc_run(&w->ops, &make_req, &opts, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_EXITED);
	assert_int_equal(ex.code, 2);
	assert_string_equal(out.data, "CC src/a.c\nCC src/b.c\n");
	assert_int_equal(w->now, 1000 + 5000);
	kf_buf_release(&out);
}

static void run__kills_the_whole_group_at_the_timeout(void **state)
{
	struct fake_world *w = *state;
	struct kf_run_opts opts = { .timeout_ms = 300000 };
	struct kf_exit ex;

	fake_add_prog(w, (struct fake_prog){ .argv0 = "make", .output = "", .exit_code = 0, .run_ms = INT64_MAX, .ignores_sigterm = false, .missing = false });
	assert_int_equal(kf_proc_run(&w->ops, &make_req, &opts, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_TIMED_OUT);
	assert_true(fake_did(w, "kill -15 make"));
	/* ended at the deadline, not later */
	assert_int_equal(w->now, 1000 + 300000);
	assert_int_equal(fake_running(w), 0);
}

static void run__uses_sigkill_when_sigterm_is_ignored(void **state)
{
	struct fake_world *w = *state;
	struct kf_run_opts opts = { .timeout_ms = 1000 };
	struct kf_exit ex;

	fake_add_prog(w, (struct fake_prog){ .argv0 = "make", .output = "", .exit_code = 0, .run_ms = INT64_MAX, .ignores_sigterm = true, .missing = false });
	assert_int_equal(kf_proc_run(&w->ops, &make_req, &opts, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_TIMED_OUT);
	assert_true(fake_did(w, "kill -15 make"));
	assert_true(fake_did(w, "kill -9 make"));
	/* timeout plus the grace period */
	assert_int_equal(w->now, 1000 + 1000 + KF_PROC_GRACE_MS);
	assert_int_equal(fake_running(w), 0);
}

static void run__ctrl_c_ends_the_child_with_sigterm_not_sigint(void **state)
{
	struct fake_world *w = *state;
	struct kf_run_opts opts = { .timeout_ms = 60000 };
	struct kf_exit ex;

	fake_add_prog(w, (struct fake_prog){ .argv0 = "make", .output = "", .exit_code = 0, .run_ms = 30000, .ignores_sigterm = false, .missing = false });
	fake_signal_at(w, 3000, SIGINT);
	assert_int_equal(kf_proc_run(&w->ops, &make_req, &opts, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_INTERRUPTED);
	assert_int_equal(ex.interrupted_by, SIGINT);
	assert_true(fake_did(w, "kill -15 make"));
	assert_false(fake_did(w, "kill -2 make"));
	assert_int_equal(w->now, 3000);
	/* the signal was taken: it does not linger for the next step */
	assert_int_equal(kf_os_take_signal(&w->ops), 0);
}

static void run__deferred_signal_lets_the_child_finish(void **state)
{
	struct fake_world *w = *state;
	int deferred = 0;
	struct kf_run_opts opts = { .timeout_ms = 30000, .defer_signals = true,
				    .deferred_signal = &deferred };
	const char *const argv[] = { "systemctl", "start", "klipper", NULL };
	struct kf_spawn_req req = { .argv = argv };
	struct kf_exit ex;

	fake_add_prog(w, (struct fake_prog){ .argv0 = "systemctl", .output = "", .exit_code = 0, .run_ms = 2000, .ignores_sigterm = false, .missing = false });
	fake_signal_at(w, 1500, SIGINT);
	assert_int_equal(kf_proc_run(&w->ops, &req, &opts, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_EXITED);
	assert_int_equal(ex.code, 0);
	assert_int_equal(deferred, SIGINT);
	assert_false(fake_did(w, "kill -15 systemctl"));
}

static void run__missing_program_is_not_an_exit_status(void **state)
{
	struct fake_world *w = *state;
	const char *const argv[] = { "flashtool", NULL };
	struct kf_spawn_req req = { .argv = argv };
	struct kf_exit ex;

	assert_int_equal(kf_proc_run(&w->ops, &req, NULL, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_EXEC_FAILED);
	assert_int_equal(ex.err, ENOENT);
}

static void run__second_spawn_failing_is_reported(void **state)
{
	struct fake_world *w = *state;
	struct fault_ops f;
	struct kf_exit ex;

	fake_add_prog(w, (struct fake_prog){ .argv0 = "make", .output = "", .exit_code = 0, .run_ms = 10, .ignores_sigterm = false, .missing = false });
	fault_ops_init(&f, &w->ops, FAULT_SPAWN, 2, -EAGAIN);
	assert_int_equal(kf_proc_run(&f.ops, &make_req, NULL, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_EXITED);
	assert_int_equal(kf_proc_run(&f.ops, &make_req, NULL, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_EXEC_FAILED);
	assert_int_equal(ex.err, EAGAIN);
	assert_int_equal(kf_proc_run(&f.ops, &make_req, NULL, &ex), 0);
	assert_int_equal(ex.kind, KF_EXIT_EXITED);
	assert_true(f.fired);
	assert_int_equal(f.calls, 3);
}

static void argv_join__quotes_what_a_shell_would_split(void **state)
{
	const char *const argv[] = { "make", "KCONFIG_CONFIG=/a b/.config", "it's", "", NULL };
	char *s = kf_argv_join(argv);

	(void)state;
	assert_string_equal(s, "make 'KCONFIG_CONFIG=/a b/.config' 'it'\\''s' ''");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(run__reports_exit_status_and_captured_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(run__kills_the_whole_group_at_the_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(run__uses_sigkill_when_sigterm_is_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(run__ctrl_c_ends_the_child_with_sigterm_not_sigint, setup, teardown),
		cmocka_unit_test_setup_teardown(run__deferred_signal_lets_the_child_finish, setup, teardown),
		cmocka_unit_test_setup_teardown(run__missing_program_is_not_an_exit_status, setup, teardown),
		cmocka_unit_test_setup_teardown(run__second_spawn_failing_is_reported, setup, teardown),
		cmocka_unit_test(argv_join__quotes_what_a_shell_would_split),
	};

	return cmocka_run_group_tests_name("proc", tests, NULL, NULL);
}
