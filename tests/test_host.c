/* test_host.c - what kflash reads of the host comes through the ops table:
 * the dirs and locks follow the (fake) environment and uid, and questions
 * read the (fake) terminal, Ctrl+C included. */
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
#include "kflash/build.h"
#include "kflash/flash.h"
#include "kflash/flow.h"
#include "kflash/lock.h"
#include "kflash/window.h"
#include "kflash/prompt.h"

static void expect_str(char *got, const char *want)
{
	if (!want)
		assert_null(got);
	else
		assert_string_equal(got, want);
	free(got);
}

static void config_dir__option_then_kflash_config_dir_then_xdg_then_home(void **state)
{
	struct fake_world w;

	(void)state;
	fake_world_init(&w);
	expect_str(kf_config_dir_resolve(&w.ops, NULL), "/home/pi/.config/kflash");
	fake_setenv(&w, "XDG_CONFIG_HOME", "relative/dir");	/* not absolute: ignored */
	expect_str(kf_config_dir_resolve(&w.ops, NULL), "/home/pi/.config/kflash");
	fake_setenv(&w, "XDG_CONFIG_HOME", "/xdg");
	expect_str(kf_config_dir_resolve(&w.ops, NULL), "/xdg/kflash");
	fake_setenv(&w, "KFLASH_CONFIG_DIR", "/srv/kflash");
	expect_str(kf_config_dir_resolve(&w.ops, NULL), "/srv/kflash");
	expect_str(kf_config_dir_resolve(&w.ops, "/opt/cfg"), "/opt/cfg");
	fake_setenv(&w, "KFLASH_CONFIG_DIR", NULL);
	fake_setenv(&w, "XDG_CONFIG_HOME", NULL);
	fake_setenv(&w, "HOME", NULL);
	expect_str(kf_config_dir_resolve(&w.ops, NULL), NULL);
	fake_world_release(&w);
}

static void build_dir__xdg_cache_home_else_home(void **state)
{
	struct fake_world w;

	(void)state;
	fake_world_init(&w);
	expect_str(kf_board_build_dir(&w.ops, "octopus"),
		   "/home/pi/.cache/kflash/build/octopus");
	fake_setenv(&w, "XDG_CACHE_HOME", "/var/cache/pi");
	expect_str(kf_board_build_dir(&w.ops, "octopus"), "/var/cache/pi/kflash/build/octopus");
	fake_world_release(&w);
}

static void expand_home__uses_home_from_the_table(void **state)
{
	struct fake_world w;

	(void)state;
	fake_world_init(&w);
	fake_setenv(&w, "HOME", "/home/klipper");
	expect_str(kf_expand_home(&w.ops, "~/klipper"), "/home/klipper/klipper");
	expect_str(kf_expand_home(&w.ops, "~"), "/home/klipper");
	expect_str(kf_expand_home(&w.ops, "~other/x"), "~other/x");
	expect_str(kf_expand_home(&w.ops, "/opt/klipper"), "/opt/klipper");
	fake_setenv(&w, "HOME", NULL);
	expect_str(kf_expand_home(&w.ops, "~/klipper"), "~/klipper");
	fake_world_release(&w);
}

/* One kflash per user: the lock is named for the uid the table reports;
 * KFLASH_LOCK_DIR (the simulator's) moves every lock. */
static void locks__named_for_the_uid_in_the_lock_dir(void **state)
{
	struct fake_world w;
	struct kf_error err = KF_ERROR_INIT;
	struct kf_out out;
	struct kf_ctx ctx = { .ops = &w.ops, .out = &out, .err = &err };
	FILE *sink = fopen("/dev/null", "w");
	int fd;

	(void)state;
	fake_world_init(&w);
	kf_out_init(&out, &w.ops, sink, sink, &(struct kf_out_opts){ 0 });
	w.uid = 1234;
	expect_str(kf_lock_path(&w.ops), "/run/lock/kflash-1234.lock");
	expect_str(kf_board_lock_path(&w.ops, "3A00:39"), "/run/lock/kflash-board-3A00_39.lock");
	fake_setenv(&w, "KFLASH_LOCK_DIR", "locks");	/* not absolute: ignored */
	expect_str(kf_lock_path(&w.ops), "/run/lock/kflash-1234.lock");
	fake_setenv(&w, "KFLASH_LOCK_DIR", "/tmp/sim/locks");
	expect_str(kf_board_lock_path(&w.ops, "abc"), "/tmp/sim/locks/kflash-board-abc.lock");
	assert_int_equal(kf_lock_take(&ctx, ctx.err, &fd), 0);
	assert_true(fake_did(&w, "lock /tmp/sim/locks/kflash-1234.lock"));
	kf_os_unlock(&w.ops, fd);
	kf_out_release(&out);
	fclose(sink);
	fake_world_release(&w);
}

/* A sudoers line names the user kflash runs as by its login name in the
 * password database, never $USER (which su, a script or anyone can set),
 * and by "#UID" when the uid has no name. */
static void sudoers__lines_name_the_real_user_not_dollar_user(void **state)
{
	struct fake_world w;

	(void)state;
	fake_world_init(&w);
	w.user_name = "biqu";
	fake_setenv(&w, "USER", "mallory");
	expect_str(kf_sudoers_line(&w.ops, "klipper"), "biqu ALL=(root) NOPASSWD: "
		   "/usr/bin/systemctl stop klipper, /usr/bin/systemctl start klipper");
	expect_str(kf_sudoers_tool_line(&w.ops, "~/klipper", "dfu-util"),
		   "biqu ALL=(root) NOPASSWD: /usr/bin/dfu-util");
	w.user_name = NULL;
	expect_str(kf_sudoers_tool_line(&w.ops, "~/klipper", "dfu-util"),
		   "#1000 ALL=(root) NOPASSWD: /usr/bin/dfu-util");
	fake_world_release(&w);
}

/* What another user planted at a lock's name is refused, naming the file,
 * its owner and how to remove it: the per-user lock must be this user's
 * file; a per-board lock is shared, so another user's file is used. */
static void locks__planted_by_another_user_are_refused_with_the_fix(void **state)
{
	struct fake_world w;
	struct kf_error err = KF_ERROR_INIT;
	struct kf_ctx ctx = { .ops = &w.ops, .err = &err };
	struct kf_buf b = KF_BUF_INIT;
	int fd;

	(void)state;
	fake_world_init(&w);
	fake_setenv(&w, "KFLASH_LOCK_DIR", "/run/lock");
	w.lock_owner = 1001;
	assert_int_equal(kf_lock_take(&ctx, &err, &fd), KF_EREFUSED);
	assert_int_equal(fd, -1);
	assert_true(fake_did(&w, "unlock"));
	kf_error_render(&err, &b, 1000, false);
	assert_non_null(strstr(b.data, "/run/lock/kflash-1000.lock"));
	assert_non_null(strstr(b.data, "uid 1001"));
	assert_non_null(strstr(b.data, "sudo rm /run/lock/kflash-1000.lock"));
	kf_buf_release(&b);
	kf_error_release(&err);
	/* a board's lock is everyone's */
	assert_int_equal(kf_lock_take_at(&ctx, "/run/lock/kflash-board-x.lock", "using x",
					 &err, &fd), 0);
	w.lock_owner = (uid_t)-1;
	w.lock_err = -ELOOP;
	assert_int_equal(kf_lock_take_at(&ctx, "/run/lock/kflash-board-x.lock", "using x",
					 &err, &fd), KF_EREFUSED);
	kf_error_render(&err, &b, 1000, false);
	assert_non_null(strstr(b.data, "the lock /run/lock/kflash-board-x.lock is a "
			       "symbolic link, owned by 'pi' (uid 1000)"));
	assert_non_null(strstr(b.data, "sudo rm /run/lock/kflash-board-x.lock"));
	kf_buf_release(&b);
	kf_error_release(&err);
	w.lock_err = -EINVAL;
	assert_int_equal(kf_lock_take(&ctx, &err, &fd), KF_EREFUSED);
	kf_error_render(&err, &b, 1000, false);
	assert_non_null(strstr(b.data, "is not a regular file"));
	kf_buf_release(&b);
	kf_error_release(&err);
	fake_world_release(&w);
}

/* ---- questions ------------------------------------------------------------- */

struct q {
	struct fake_world w;
	struct kf_error err;
	struct kf_out out;
	struct kf_ctx ctx;
	char *said;
	size_t said_len;
	FILE *err_stream;
};

static int q_setup(void **state)
{
	struct q *q = kf_xcalloc(1, sizeof(*q));

	fake_world_init(&q->w);
	q->err_stream = open_memstream(&q->said, &q->said_len);
	kf_out_init(&q->out, &q->w.ops, q->err_stream, q->err_stream,
		    &(struct kf_out_opts){ .verbosity = KF_QUIET });
	q->ctx = (struct kf_ctx){ .ops = &q->w.ops, .out = &q->out, .err = &q->err,
				  .interactive = true };
	*state = q;
	return 0;
}

static int q_teardown(void **state)
{
	struct q *q = *state;

	kf_out_release(&q->out);
	fclose(q->err_stream);
	free(q->said);
	kf_error_release(&q->err);
	fake_world_release(&q->w);
	free(q);
	return 0;
}

static void prompt__reads_what_was_typed_and_gives_the_default(void **state)
{
	struct q *q = *state;
	char *a = NULL;

	fake_type(&q->w, "\r\nOcto Pro\r\n");
	assert_int_equal(kf_prompt(&q->ctx, "Board number", "1", &q->err, &a), 0);
	expect_str(a, "1");
	assert_int_equal(kf_prompt(&q->ctx, "Name", NULL, &q->err, &a), 0);
	expect_str(a, "Octo Pro");
	fflush(q->err_stream);
	/* asked even with -q: the user is answering */
	assert_string_equal(q->said, "Board number [1]: Name: ");
	/* nothing more typed and no signal coming: the input ended */
	assert_int_equal(kf_prompt(&q->ctx, "Name", NULL, &q->err, &a), -EPIPE);
	assert_null(a);
}

static void prompt__ctrl_c_while_waiting_cancels_it(void **state)
{
	struct q *q = *state;
	char *a = NULL;
	bool yes = true;

	struct kf_error other = KF_ERROR_INIT;

	/* the error goes where the caller says, not into ctx->err */
	q->ctx.err = &other;
	fake_signal_at(&q->w, q->w.now + 7000, SIGINT);
	assert_int_equal(kf_confirm(&q->ctx, "Stop Klipper?", false, &q->err, &yes),
			 KF_EINTERRUPTED);
	assert_int_equal(other.code, 0);
	assert_null(other.what);
	assert_null(a);
	assert_int_equal(q->err.signal, SIGINT);
	assert_int_equal(kf_exit_code(KF_EINTERRUPTED, &q->err), 128 + SIGINT);
	assert_int_equal(q->w.now, 1000 + 7000);	/* it waited for the user */
	assert_int_equal(kf_os_take_signal(&q->w.ops), 0);	/* taken */
	fflush(q->err_stream);
	assert_string_equal(q->said, "Stop Klipper? (y/N): \n");
}

static void confirm__asks_again_until_yes_or_no(void **state)
{
	struct q *q = *state;
	bool yes = false;

	fake_type(&q->w, "maybe\nY\n");
	assert_int_equal(kf_confirm(&q->ctx, "Go on?", false, &q->err, &yes), 0);
	assert_true(yes);
	assert_true(fake_did(&q->w, "read_line maybe"));
	assert_true(fake_did(&q->w, "read_line Y"));
}

static void prompt__a_terminal_that_fails_names_the_errno(void **state)
{
	struct q *q = *state;
	struct fault_ops f;
	char *a = NULL;

	fake_type(&q->w, "yes\n");
	fault_ops_init(&f, &q->w.ops, FAULT_TTY, 1, -EIO);
	q->ctx.ops = &f.ops;
	assert_int_equal(kf_prompt(&q->ctx, "Name", NULL, &q->err, &a), KF_EFAILED);
	assert_true(f.fired);
	assert_null(a);
	assert_non_null(strstr(q->err.what, "'Name'"));
	assert_non_null(strstr(q->err.what, strerror(EIO)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(config_dir__option_then_kflash_config_dir_then_xdg_then_home),
		cmocka_unit_test(build_dir__xdg_cache_home_else_home),
		cmocka_unit_test(expand_home__uses_home_from_the_table),
		cmocka_unit_test(locks__named_for_the_uid_in_the_lock_dir),
		cmocka_unit_test(sudoers__lines_name_the_real_user_not_dollar_user),
		cmocka_unit_test(locks__planted_by_another_user_are_refused_with_the_fix),
		cmocka_unit_test_setup_teardown(prompt__reads_what_was_typed_and_gives_the_default, q_setup, q_teardown),
		cmocka_unit_test_setup_teardown(prompt__ctrl_c_while_waiting_cancels_it, q_setup, q_teardown),
		cmocka_unit_test_setup_teardown(confirm__asks_again_until_yes_or_no, q_setup, q_teardown),
		cmocka_unit_test_setup_teardown(prompt__a_terminal_that_fails_names_the_errno, q_setup, q_teardown),
	};

	return cmocka_run_group_tests_name("host", tests, NULL, NULL);
}
