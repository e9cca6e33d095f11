/* test_cli.c - the command line: dispatch, help, usage errors, exit codes. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "kflash/commands.h"
#include "kflash/kflash.h"

struct run {
	int code;
	char *out;
	char *err;
};

static char *slurp(FILE *f)
{
	struct kf_buf b = KF_BUF_INIT;
	char chunk[4096];
	size_t n;

	rewind(f);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		kf_buf_add(&b, chunk, n);
	fclose(f);
	if (!b.data)
		kf_buf_add(&b, "", 0);
	return b.data;
}

/* Runs kflash's CLI with stdout/stderr captured and stdin not a TTY. */
static struct run cli(const char *a1, const char *a2, const char *a3)
{
	char *argv[] = { "kflash", (char *)a1, (char *)a2, (char *)a3, NULL };
	int argc = 1 + (a1 != NULL) + (a1 && a2) + (a1 && a2 && a3);
	struct fake_world w;
	FILE *o = tmpfile(), *e = tmpfile();
	int so = dup(1), se = dup(2), si = dup(0);
	int devnull = open("/dev/null", O_RDONLY);
	struct run r;

	fake_world_init(&w);
	fflush(stdout);
	fflush(stderr);
	dup2(fileno(o), 1);
	dup2(fileno(e), 2);
	dup2(devnull, 0);
	r.code = kf_cli_main(&w.ops, argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	dup2(si, 0);
	close(so);
	close(se);
	close(si);
	close(devnull);
	r.out = slurp(o);
	r.err = slurp(e);
	fake_world_release(&w);
	return r;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static void help__lists_every_command_of_the_contract(void **state)
{
	static const char *const contract[] = { "list", "add", "remove", "exclude",
		"include", "config", "build", "flash", "doctor", "settings" };
	struct run r = cli("--help", NULL, NULL);
	size_t i;

	(void)state;
	assert_int_equal(r.code, 0);
	for (i = 0; i < sizeof(contract) / sizeof(contract[0]); i++) {
		char want[32];

		snprintf(want, sizeof(want), "\n  %s ", contract[i]);
		assert_non_null(strstr(r.out, want));
		assert_non_null(kf_command_find(contract[i]));
	}
	assert_string_equal(r.err, "");
	run_free(&r);
}

static void unknown_command__prints_usage_and_exits_2(void **state)
{
	struct run r = cli("frobnicate", NULL, NULL);

	(void)state;
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "unknown command 'frobnicate'"));
	assert_non_null(strstr(r.err, "usage: kflash"));
	assert_string_equal(r.out, "");
	run_free(&r);
}

static void unknown_option__exits_2_naming_it(void **state)
{
	struct run r = cli("flash", "--frobnicate", "octopus");

	(void)state;
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "--frobnicate"));
	run_free(&r);
	r = cli("--bogus", NULL, NULL);
	assert_int_equal(r.code, 2);
	run_free(&r);
}

static void command_help__shows_its_options(void **state)
{
	struct run r = cli("flash", "--help", NULL);

	(void)state;
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "usage: kflash flash"));
	assert_non_null(strstr(r.out, "--no-fallback"));
	assert_non_null(strstr(r.out, "--dry-run"));
	run_free(&r);
}

static void version__prints_the_version(void **state)
{
	struct run r = cli("--version", NULL, NULL);

	(void)state;
	assert_int_equal(r.code, 0);
	assert_true(strncmp(r.out, "kflash ", 7) == 0);
	run_free(&r);
}

static void no_command_without_tty__prints_usage_exit_2(void **state)
{
	struct run r = cli(NULL, NULL, NULL);

	(void)state;
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "usage: kflash"));
	run_free(&r);
}

static void flash_without_boards__is_a_usage_error(void **state)
{
	struct run r = cli("flash", NULL, NULL);

	(void)state;
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "board names or --all"));
	run_free(&r);
}

static void json__a_failing_command_still_prints_one_document(void **state)
{
	struct run r = cli("--json", "doctor", NULL);
	json_t *doc;

	(void)state;
	doc = json_loads(r.out, 0, NULL);
	assert_non_null(doc);
	assert_int_equal(json_integer_value(json_object_get(doc, "exit_code")), r.code);
	assert_non_null(json_object_get(doc, "error"));
	json_decref(doc);
	run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(help__lists_every_command_of_the_contract),
		cmocka_unit_test(unknown_command__prints_usage_and_exits_2),
		cmocka_unit_test(unknown_option__exits_2_naming_it),
		cmocka_unit_test(command_help__shows_its_options),
		cmocka_unit_test(version__prints_the_version),
		cmocka_unit_test(no_command_without_tty__prints_usage_exit_2),
		cmocka_unit_test(flash_without_boards__is_a_usage_error),
		cmocka_unit_test(json__a_failing_command_still_prints_one_document),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
