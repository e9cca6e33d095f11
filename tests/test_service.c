/* test_service.c - the service module over the fake world: how sudo and
 * systemctl are run (and by whom), what a signal does meanwhile, and the
 * guardian's protocol on both of its sides. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "fault_ops.h"
#include "kflash/proc.h"
#include "kflash/service.h"

#define TMO 30000

static int setup(void **state)
{
	struct fake_world *w = kf_xcalloc(1, sizeof(*w));

	fake_world_init(w);
	w->svc_active = true;
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	fake_world_release(*state);
	free(*state);
	return 0;
}

/* How often line is in the transcript. */
static int count(const struct fake_world *w, const char *line)
{
	const char *p = w->transcript.data;
	size_t n = strlen(line);
	int k = 0;

	while (p && (p = strstr(p, line))) {
		if ((p == w->transcript.data || p[-1] == '\n') && p[n] == '\n')
			k++;
		p += n;
	}
	return k;
}

static void stop_and_start__go_through_sudo_n(void **state)
{
	struct fake_world *w = *state;
	int sig = 0;

	assert_int_equal(kf_service_stop(&w->ops, "klipper", TMO, &sig), 0);
	assert_true(fake_did(w, "spawn sudo -n systemctl stop klipper"));
	assert_false(w->svc_active);
	assert_int_equal(kf_service_start(&w->ops, "klipper", TMO, &sig), 0);
	assert_true(fake_did(w, "spawn sudo -n systemctl start klipper"));
	assert_true(w->svc_active);
	assert_int_equal(sig, 0);
}

static void stop__refused_by_sudo_is_an_error_and_changes_nothing(void **state)
{
	struct fake_world *w = *state;

	w->svc_can_manage = false;
	assert_int_equal(kf_service_stop(&w->ops, "klipper", TMO, NULL), -EIO);
	assert_true(w->svc_active);
}

/* A root shell on a host without sudo (a container, a minimal image):
 * root runs systemctl itself; anyone else is told sudo is missing. */
static void root_without_sudo__runs_systemctl_itself(void **state)
{
	struct fake_world *w = *state;

	w->sudo_missing = true;
	w->uid = 0;
	assert_int_equal(kf_service_can_manage(&w->ops, "klipper", TMO, NULL), 1);
	/* root may: nothing to ask anyone */
	assert_null(strstr(w->transcript.data, "spawn systemctl"));
	assert_int_equal(kf_service_stop(&w->ops, "klipper", TMO, NULL), 0);
	assert_true(fake_did(w, "spawn sudo -n systemctl stop klipper"));
	assert_true(fake_did(w, "spawn systemctl stop klipper"));
	assert_false(w->svc_active);
}

static void user_without_sudo__cannot_manage_and_runs_nothing_else(void **state)
{
	struct fake_world *w = *state;

	w->sudo_missing = true;
	assert_int_equal(kf_service_can_manage(&w->ops, "klipper", TMO, NULL), 0);
	assert_int_equal(kf_service_stop(&w->ops, "klipper", TMO, NULL), -ENOENT);
	assert_false(fake_did(w, "spawn systemctl stop klipper"));
	assert_true(w->svc_active);
}

static void root_with_sudo__still_uses_sudo(void **state)
{
	struct fake_world *w = *state;

	w->uid = 0;
	assert_int_equal(kf_service_start(&w->ops, "klipper", TMO, NULL), 0);
	assert_true(fake_did(w, "spawn sudo -n systemctl start klipper"));
	assert_false(fake_did(w, "spawn systemctl start klipper"));
}

/* systemctl is-active says "inactive" for a unit that does not exist
 * (klipper on a host with klipper-1 and klipper-2): show's LoadState does
 * not lie */
static void is_active__a_unit_systemd_does_not_know_is_enoent(void **state)
{
	struct fake_world *w = *state;

	assert_int_equal(kf_service_is_active(&w->ops, "klipper", TMO, NULL), 1);
	w->svc_active = false;
	assert_int_equal(kf_service_is_active(&w->ops, "klipper", TMO, NULL), 0);
	w->svc_missing = true;
	assert_int_equal(kf_service_is_active(&w->ops, "klipper", TMO, NULL), -ENOENT);
	assert_true(fake_did(w, "spawn systemctl show --property=LoadState "
			     "--property=ActiveState klipper"));
}

static void is_active__systemctl_failing_is_eio_not_an_answer(void **state)
{
	struct fake_world *w = *state;

	fake_add_prog(w, (struct fake_prog){ .argv0 = "systemctl",
		.output = "Failed to connect to bus: No such file or directory",
		.exit_code = 1 });
	assert_int_equal(kf_service_is_active(&w->ops, "klipper", TMO, NULL), -EIO);
}

static void can_manage__asks_sudo_for_the_exact_commands(void **state)
{
	struct fake_world *w = *state;

	assert_int_equal(kf_service_can_manage(&w->ops, "klipper-2", TMO, NULL), 1);
	assert_true(fake_did(w, "spawn sudo -n -l systemctl stop klipper-2"));
	assert_true(fake_did(w, "spawn sudo -n -l systemctl start klipper-2"));
	w->svc_can_manage = false;
	assert_int_equal(kf_service_can_manage(&w->ops, "klipper-2", TMO, NULL), 0);
	/* nothing was stopped or started to find out */
	assert_false(fake_did(w, "svc_stop klipper-2"));
	assert_true(w->svc_active);
}

/* A Ctrl+C while Klipper is being started again must not leave it
 * half-started: the start finishes, the signal is handed to the caller. */
static void start__a_signal_meanwhile_is_deferred_not_obeyed(void **state)
{
	struct fake_world *w = *state;
	int sig = 0;

	w->svc_active = false;
	w->svc_ms = 2000;
	fake_signal_at(w, w->now + 300, SIGINT);
	assert_int_equal(kf_service_start(&w->ops, "klipper", TMO, &sig), 0);
	assert_int_equal(sig, SIGINT);
	assert_true(w->svc_active);
	assert_false(fake_did(w, "kill -15 sudo"));
	/* handed over, not left pending for the next wait to trip on */
	assert_int_equal(kf_os_take_signal(&w->ops), 0);
}

/* the first signal is the one the caller keeps */
static void start__keeps_the_callers_first_signal(void **state)
{
	struct fake_world *w = *state;
	int sig = SIGTERM;

	w->svc_ms = 2000;
	fake_signal_at(w, w->now + 300, SIGINT);
	assert_int_equal(kf_service_stop(&w->ops, "klipper", TMO, &sig), 0);
	assert_int_equal(sig, SIGTERM);
}

/* A question may be cut short: nothing is half-done by not asking. */
static void is_active__a_signal_cuts_the_question_short(void **state)
{
	struct fake_world *w = *state;
	int sig = 0;

	w->svc_ms = 5000;
	fake_signal_at(w, w->now + 300, SIGINT);
	assert_int_equal(kf_service_is_active(&w->ops, "klipper", TMO, &sig), -EINTR);
	assert_int_equal(sig, SIGINT);
	assert_true(fake_did(w, "kill -15 systemctl"));
	assert_int_equal(fake_running(w), 0);
}

static void stop__a_hanging_systemctl_times_out(void **state)
{
	struct fake_world *w = *state;

	w->svc_ms = 60000;
	assert_int_equal(kf_service_stop(&w->ops, "klipper", 5000, NULL), -ETIMEDOUT);
	assert_int_equal(fake_running(w), 0);
}

/* ---- the guardian, kflash's side ------------------------------------------ */

static const char *const units[] = { "klipper", "klipper-2", NULL };
static const char *const tool_argv[] = { "flashtool", NULL };
static const struct kf_spawn_req tool = { .argv = tool_argv, .in = KF_STDIO_NULL,
					  .out = KF_STDIO_CAPTURE };

static void guard__told_each_child_at_fork_and_at_reap(void **state)
{
	struct fake_world *w = *state;
	struct kf_guard g = { 0 };
	struct kf_exit ex;
	char line[64];
	int sig = 0;

	fake_add_prog(w, (struct fake_prog){ .argv0 = "flashtool", .run_ms = 1000 });
	assert_int_equal(kf_guard_start(&g, &w->ops, units, TMO), 0);
	assert_true(fake_did(w, "spawn kflash --guardian 30000 klipper klipper-2"));
	assert_int_equal(kf_proc_run(&w->ops, &tool, NULL, &ex), 0);
	snprintf(line, sizeof(line), "feed kflash p %d", w->procs[1].pid);
	assert_true(fake_did(w, line));
	snprintf(line, sizeof(line), "feed kflash r %d", w->procs[1].pid);
	assert_true(fake_did(w, line));
	kf_guard_end(&g, &sig);
	assert_true(fake_did(w, "feed kflash d"));
	assert_true(fake_did(w, "feed kflash end"));
	assert_true(fake_did(w, "exit kflash status 0"));
	assert_int_equal(fake_running(w), 0);
	/* once ended, children are nobody's business */
	assert_int_equal(kf_proc_run(&w->ops, &tool, NULL, &ex), 0);
	snprintf(line, sizeof(line), "feed kflash p %d", w->procs[2].pid);
	assert_false(fake_did(w, line));
}

/* The guardian is spawned with its stdin as the pipe, detached, as kflash
 * itself; the sudo and systemctl it would run are not told to itself. */
static void guard__starting_twice_spawns_one_guardian(void **state)
{
	struct fake_world *w = *state;
	struct kf_guard g = { 0 };

	assert_int_equal(kf_guard_start(&g, &w->ops, units, TMO), 0);
	assert_int_equal(kf_guard_start(&g, &w->ops, units, TMO), 0);
	assert_int_equal(count(w, "spawn kflash --guardian 30000 klipper klipper-2"), 1);
	assert_true(w->procs[0].detached);
	kf_guard_end(&g, NULL);
	kf_guard_end(&g, NULL);
	assert_int_equal(count(w, "feed kflash d"), 1);
}

static void guard__a_guardian_that_cannot_start_is_an_error(void **state)
{
	struct fake_world *w = *state;
	struct kf_guard g = { 0 };

	fake_add_prog(w, (struct fake_prog){ .argv0 = "kflash", .missing = true });
	assert_int_equal(kf_guard_start(&g, &w->ops, units, TMO), -ENOENT);
	assert_false(g.running);
	kf_guard_end(&g, NULL);
	assert_false(fake_did(w, "feed kflash d"));
}

/* A guardian that does not exit when told is not left behind. */
static void guard__end_kills_a_guardian_that_lingers(void **state)
{
	struct fake_world *w = *state;
	struct kf_guard g = { 0 };

	fake_add_prog(w, (struct fake_prog){ .argv0 = "kflash", .run_ms = INT64_MAX });
	assert_int_equal(kf_guard_start(&g, &w->ops, units, TMO), 0);
	kf_guard_end(&g, NULL);
	assert_true(fake_did(w, "kill -9 kflash"));
	assert_int_equal(fake_running(w), 0);
}

/* A wait that fails once the guardian is told done (an I/O error, not
 * ECHILD) still ends and reaps it: no guardian outlives the window. */
static void guard__a_failing_wait_still_reaps_the_guardian(void **state)
{
	struct fake_world *w = *state;
	struct kf_guard g = { 0 };
	struct fault_ops f;

	fault_ops_init(&f, &w->ops, FAULT_EVERY, -1, -EIO);
	assert_int_equal(kf_guard_start(&g, &f.ops, units, TMO), 0);
	/* the end: feed "d", close its stdin, then the wait that fails */
	f.countdown = 3;
	kf_guard_end(&g, NULL);
	assert_true(f.fired);
	assert_string_equal(f.fired_at, "wait");
	assert_int_equal(fake_running(w), 0);
}

/* ---- the guardian process -------------------------------------------------- */

static char *guardian_args[] = { "30000", "klipper", NULL };

/* Children kflash left behind: what the guardian finds when it acts. */
static void orphans(struct fake_world *w)
{
	struct kf_proc p;

	fake_add_prog(w, (struct fake_prog){ .argv0 = "make", .run_ms = INT64_MAX });
	fake_add_prog(w, (struct fake_prog){ .argv0 = "flashtool", .run_ms = INT64_MAX });
	fake_add_prog(w, (struct fake_prog){ .argv0 = "stubborn", .run_ms = INT64_MAX,
		.ignores_sigterm = true });
	assert_int_equal(kf_os_spawn(&w->ops, &(struct kf_spawn_req){
		.argv = (const char *const[]){ "make", NULL } }, &p), 0);
	assert_int_equal(kf_os_spawn(&w->ops, &(struct kf_spawn_req){
		.argv = (const char *const[]){ "flashtool", NULL } }, &p), 0);
	assert_int_equal(kf_os_spawn(&w->ops, &(struct kf_spawn_req){
		.argv = (const char *const[]){ "stubborn", NULL } }, &p), 0);
	w->svc_active = false;	/* kflash had stopped it */
}

/* kflash died (no "d"): the groups it had not reaped are ended, SIGTERM
 * first, and the unit is started. A group it reaped is never touched: its
 * number may belong to someone else by now. */
static void guardian__ends_unreaped_groups_and_starts_the_unit(void **state)
{
	struct fake_world *w = *state;
	char in[128];

	orphans(w);
	/* make (4000) was reaped and its pid recycled into a new process */
	snprintf(in, sizeof(in), "p %d\nr %d\np %d\n", w->procs[0].pid,
		 w->procs[0].pid, w->procs[1].pid);
	fake_put_file(w, "/proc/self/fd/0", in);
	assert_int_equal(kf_guardian_main(&w->ops, 2, guardian_args), 0);
	assert_true(fake_did(w, "ready"));
	assert_false(fake_did(w, "kill -15 make"));
	assert_false(fake_did(w, "kill -9 make"));
	assert_true(fake_did(w, "kill -15 flashtool"));
	assert_true(fake_did(w, "spawn sudo -n systemctl start klipper"));
	assert_true(strstr(w->transcript.data, "kill -15 flashtool") <
		    strstr(w->transcript.data, "spawn sudo -n systemctl start klipper"));
	assert_true(w->svc_active);
}

/* one that ignores SIGTERM gets SIGKILL after the grace */
static void guardian__sigkills_a_group_that_ignores_sigterm(void **state)
{
	struct fake_world *w = *state;
	char in[64];
	int64_t t0 = w->now;

	orphans(w);
	snprintf(in, sizeof(in), "p %d\n", w->procs[2].pid);
	fake_put_file(w, "/proc/self/fd/0", in);
	assert_int_equal(kf_guardian_main(&w->ops, 2, guardian_args), 0);
	assert_true(fake_did(w, "kill -15 stubborn"));
	assert_true(fake_did(w, "kill -9 stubborn"));
	assert_true(w->now - t0 >= KF_PROC_GRACE_MS);
	assert_true(w->svc_active);
}

static void guardian__done_means_nothing_to_do(void **state)
{
	struct fake_world *w = *state;
	char in[64];

	orphans(w);
	snprintf(in, sizeof(in), "p %d\nd\n", w->procs[1].pid);
	fake_put_file(w, "/proc/self/fd/0", in);
	assert_int_equal(kf_guardian_main(&w->ops, 2, guardian_args), 0);
	assert_false(fake_did(w, "kill -15 flashtool"));
	assert_false(fake_did(w, "spawn sudo -n systemctl start klipper"));
	assert_false(w->svc_active);
}

/* kflash died between forking the guardian and hearing it is ready: it
 * stopped nothing, but the guardian starts the units anyway, without
 * waiting for a pipe nobody will close. */
static void guardian__kflash_gone_before_ready_still_starts_the_unit(void **state)
{
	struct fake_world *w = *state;

	w->svc_active = false;
	w->ready_err = -ESRCH;
	fake_put_file(w, "/proc/self/fd/0", "");
	assert_int_equal(kf_guardian_main(&w->ops, 2, guardian_args), 0);
	assert_true(w->svc_active);
	assert_true(fake_did(w, "svc_start klipper"));
}

/* One that cannot read kflash's word does not say it is ready, so kflash
 * stops nothing (its spawn fails). */
static void guardian__without_its_input_is_never_ready(void **state)
{
	struct fake_world *w = *state;

	assert_int_equal(kf_guardian_main(&w->ops, 2, guardian_args), 1);
	assert_false(fake_did(w, "ready"));
	assert_false(fake_did(w, "spawn sudo -n systemctl start klipper"));
}

/* `kflash --guardian` typed by hand guards nothing and starts nothing */
static void guardian__not_spawned_by_kflash_does_nothing(void **state)
{
	struct fake_world *w = *state;

	w->svc_active = false;
	w->ready_err = -ENOTCONN;
	fake_put_file(w, "/proc/self/fd/0", "");
	assert_int_equal(kf_guardian_main(&w->ops, 2, guardian_args), 2);
	assert_false(fake_did(w, "spawn sudo -n systemctl start klipper"));
	assert_false(w->svc_active);
}

/* the start is tried once more, as kflash does; a failure is its status */
static void guardian__retries_a_failed_start_once(void **state)
{
	struct fake_world *w = *state;

	w->svc_active = false;
	w->svc_can_manage = false;
	fake_put_file(w, "/proc/self/fd/0", "");
	assert_int_equal(kf_guardian_main(&w->ops, 2, guardian_args), 1);
	assert_int_equal(count(w, "spawn sudo -n systemctl start klipper"), 2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(stop_and_start__go_through_sudo_n),
		T(stop__refused_by_sudo_is_an_error_and_changes_nothing),
		T(root_without_sudo__runs_systemctl_itself),
		T(user_without_sudo__cannot_manage_and_runs_nothing_else),
		T(root_with_sudo__still_uses_sudo),
		T(is_active__a_unit_systemd_does_not_know_is_enoent),
		T(is_active__systemctl_failing_is_eio_not_an_answer),
		T(can_manage__asks_sudo_for_the_exact_commands),
		T(start__a_signal_meanwhile_is_deferred_not_obeyed),
		T(start__keeps_the_callers_first_signal),
		T(is_active__a_signal_cuts_the_question_short),
		T(stop__a_hanging_systemctl_times_out),
		T(guard__told_each_child_at_fork_and_at_reap),
		T(guard__starting_twice_spawns_one_guardian),
		T(guard__a_guardian_that_cannot_start_is_an_error),
		T(guard__end_kills_a_guardian_that_lingers),
		T(guard__a_failing_wait_still_reaps_the_guardian),
		T(guardian__ends_unreaped_groups_and_starts_the_unit),
		T(guardian__sigkills_a_group_that_ignores_sigterm),
		T(guardian__done_means_nothing_to_do),
		T(guardian__kflash_gone_before_ready_still_starts_the_unit),
		T(guardian__without_its_input_is_never_ready),
		T(guardian__not_spawned_by_kflash_does_nothing),
		T(guardian__retries_a_failed_start_once),
	};

	return cmocka_run_group_tests_name("service", tests, NULL, NULL);
}
