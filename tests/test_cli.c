/* test_cli.c - the command line: dispatch, help, usage errors, exit codes. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "fault_ops.h"
#include "kflash/commands.h"
#include "kflash/kflash.h"

struct run {
	int code;
	char *out;
	char *err;
};

/* Runs kflash's CLI in the world w with stdout/stderr captured. The fake
 * world has no terminal unless the test says so, and stdin is what the
 * test typed (fake_type). */
static struct run cli_with(const struct kf_ops *ops, const char *a1, const char *a2,
			   const char *a3)
{
	char *argv[] = { "kflash", (char *)a1, (char *)a2, (char *)a3, NULL };
	int argc = 1 + (a1 != NULL) + (a1 && a2) + (a1 && a2 && a3);
	struct fake_run f = fake_cli_run(&(struct kf_cli_opts){ .ops = ops,
		.argc = argc, .argv = argv });

	return (struct run){ f.code, f.out, f.err };
}

static struct run cli_in(struct fake_world *w, const char *a1, const char *a2,
			 const char *a3)
{
	return cli_with(&w->ops, a1, a2, a3);
}

static struct run cli(const char *a1, const char *a2, const char *a3)
{
	struct fake_world w;
	struct run r;

	fake_world_init(&w);
	r = cli_in(&w, a1, a2, a3);
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
		"include", "config", "build", "flash", "doctor", "settings", "help" };
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

/* A usage error says what was wrong and where to look, in a few lines:
 * never the whole usage after it. A near miss names the command it was
 * probably meant to be. */
static void unknown_command__exits_2_with_a_hint_not_the_usage(void **state)
{
	static const char *const misses[][2] = {
		{ "flsh", "flash" }, { "lsit", "list" }, { "remvoe", "remove" },
		{ "bulid", "build" }, { "settings", NULL }, { "frobnicate", NULL },
		{ "x", NULL },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(misses) / sizeof(misses[0]); i++) {
		const char *const *m = misses[i];
		struct run r = cli(m[0], m[1] ? NULL : "--frob", NULL);
		char want[96];

		assert_int_equal(r.code, 2);
		assert_null(strstr(r.err, "usage: kflash"));
		assert_null(strstr(r.err, "Global options"));
		assert_string_equal(r.out, "");
		if (m[1]) {
			snprintf(want, sizeof(want), "unknown command '%s'; did you mean "
				 "'%s'?", m[0], m[1]);
			assert_non_null(strstr(r.err, want));
		} else {
			assert_null(strstr(r.err, "did you mean"));
		}
		run_free(&r);
	}
}

/* kflash help COMMAND is kflash COMMAND --help; kflash help is --help */
static void help__is_the_help_option(void **state)
{
	const struct kf_command *c;

	(void)state;
	for (c = kf_commands; c->name; c++) {
		struct run a = cli("help", c->name, NULL), b = cli(c->name, "--help", NULL);

		assert_int_equal(a.code, 0);
		assert_string_equal(a.out, b.out);
		assert_string_equal(a.err, "");
		run_free(&a);
		run_free(&b);
	}
	{
		struct run a = cli("help", NULL, NULL), b = cli("--help", NULL, NULL);

		assert_int_equal(a.code, 0);
		assert_string_equal(a.out, b.out);
		run_free(&a);
		run_free(&b);
		a = cli("help", "flsh", NULL);
		assert_int_equal(a.code, 2);
		assert_non_null(strstr(a.err, "did you mean 'flash'?"));
		run_free(&a);
	}
}

/* kflash a1 a2 a3 in w is a usage error (exit 2) that says want */
static void usage_says(struct fake_world *w, const char *a1, const char *a2,
		       const char *a3, const char *want)
{
	struct run r = cli_in(w, a1, a2, a3);

	assert_int_equal(r.code, 2);
	if (!strstr(r.err, want))
		fail_msg("wanted '%s' in:\n%s", want, r.err);
	run_free(&r);
}

static void unknown_option__exits_2_naming_it(void **state)
{
	struct fake_world w;

	(void)state;
	fake_world_init(&w);
	usage_says(&w, "flash", "--frobnicate", "octopus",
		   "flash: unknown option '--frobnicate'");
	usage_says(&w, "--bogus", NULL, NULL, "unknown option '--bogus'");
	/* named as typed, wherever it stands, not the word before it */
	usage_says(&w, "remove", "-rf", "octopus", "remove: unknown option '-rf'");
	usage_says(&w, "remove", "octopus", "-rf", "remove: unknown option '-rf'");
	usage_says(&w, "flash", "octopus", "-sx", "flash: unknown option '-x' (in '-sx')");
	usage_says(&w, "flash", "--dryrun", "octopus",
		   "unknown option '--dryrun'; did you mean '--dry-run'?");
	usage_says(&w, "build", "--all=yes", NULL, "build: --all takes no value");
	usage_says(&w, "--jsno", "list", NULL, "unknown option '--jsno'; did you mean '--json'?");
	fake_world_release(&w);
}

/* A value that starts with a dash is an option the user forgot the value
 * of (add --name -rf): refused, nothing changed. Given as --name=-rf it is
 * meant. */
static void option_value__that_looks_like_an_option_is_refused(void **state)
{
	struct fake_world w;

	(void)state;
	fake_world_init(&w);
	fake_setenv(&w, "HOME", "/home/pi");
	usage_says(&w, "add", "--name", "-rf",
		   "add: --name needs a value; '-rf' looks like an option");
	usage_says(&w, "flash", "--method", "-s",
		   "flash: --method needs a value; '-s' looks like an option");
	usage_says(&w, "--config-dir", "--json", "list",
		   "--config-dir needs a value; '--json' looks like an option");
	usage_says(&w, "add", "--name", NULL, "add: --name needs a value");
	/* --opt=VALUE: the value is what follows '=', whatever it is */
	usage_says(&w, "flash", "--method=bogus", "octopus",
		   "--method must be katapult or make-flash, not 'bogus'");
	assert_null(fake_get_file(&w, "/home/pi/.config/kflash/devices.json"));
	fake_world_release(&w);
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

/* On a terminal (stdin and stderr, as the table says) a bare `kflash`
 * opens the menu and reads the answer from the terminal. */
static void no_command_on_a_terminal__opens_the_menu(void **state)
{
	struct fake_world w;
	struct run r;

	(void)state;
	fake_world_init(&w);
	w.tty[0] = w.tty[2] = true;
	fake_type(&w, "q\n");
	r = cli_in(&w, NULL, NULL, NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.err, "no boards registered yet"));
	assert_non_null(strstr(r.err, "Choose: bye\n"));
	assert_true(fake_did(&w, "read_line q"));
	run_free(&r);
	/* stdin a pipe: no menu */
	w.tty[0] = false;
	r = cli_in(&w, NULL, NULL, NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "usage: kflash"));
	run_free(&r);
	fake_world_release(&w);
}

/* The registry is looked for where the environment (through the table)
 * says: KFLASH_CONFIG_DIR, else $XDG_CONFIG_HOME/kflash, else HOME. */
static void config_dir__follows_the_environment(void **state)
{
	struct fake_world w;
	struct run r;

	(void)state;
	fake_world_init(&w);
	fake_put_file(&w, "/xdg/kflash/devices.json", "{\"schema\": 1, \"settings\": "
		      "{\"klipper_dir\": \"/opt/xdg-klipper\"}, \"boards\": []}");
	fake_put_file(&w, "/srv/kflash/devices.json", "{\"schema\": 1, \"settings\": "
		      "{\"klipper_dir\": \"/opt/srv-klipper\"}, \"boards\": []}");
	fake_setenv(&w, "XDG_CONFIG_HOME", "/xdg");
	r = cli_in(&w, "settings", "klipper_dir", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "/opt/xdg-klipper\n");
	run_free(&r);
	fake_setenv(&w, "KFLASH_CONFIG_DIR", "/srv/kflash");
	r = cli_in(&w, "settings", "klipper_dir", NULL);
	assert_string_equal(r.out, "/opt/srv-klipper\n");
	run_free(&r);
	fake_setenv(&w, "KFLASH_CONFIG_DIR", NULL);
	fake_setenv(&w, "XDG_CONFIG_HOME", NULL);
	fake_setenv(&w, "HOME", NULL);
	r = cli_in(&w, "settings", "klipper_dir", NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "cannot find a config dir: HOME is not set"));
	run_free(&r);
	fake_world_release(&w);
}

/* doctor asks each board's transport where the board is: when udev cannot
 * be read, that is said once with its errno, and a board is not blamed
 * on its cable; a board that is there passes. */
static void doctor__an_unreadable_udev_is_no_unplugged_board(void **state)
{
	struct fake_world w;
	struct fault_ops f;
	struct run r;

	(void)state;
	fake_world_init(&w);
	fake_setenv(&w, "KFLASH_CONFIG_DIR", "/cfg");
	fake_put_file(&w, "/cfg/devices.json", "{\"schema\": 1, \"settings\": {}, "
		      "\"boards\": [{\"key\": \"octopus\", \"name\": \"Octopus\", "
		      "\"mcu\": \"stm32f446xx\", \"pattern\": "
		      "\"usb-*_stm32f446xx_3A0039000851313433343333-if*\"}]}");
	fake_add_tty(&w, "/dev/ttyACM0", "/dev/serial/by-id/usb-Klipper_stm32f446xx_"
		     "3A0039000851313433343333-if00", "1d50", "614e", "Klipper",
		     "3A0039000851313433343333");
	r = cli_in(&w, "doctor", NULL, NULL);
	assert_non_null(strstr(r.out, "ok board octopus is connected"));
	run_free(&r);

	fault_ops_init(&f, &w.ops, FAULT_UDEV, 1, -EIO);
	r = cli_with(&f.ops, "doctor", NULL, NULL);
	assert_true(f.fired);
	assert_non_null(strstr(r.out, "FAIL udev lists serial devices"));
	assert_non_null(strstr(r.out, strerror(EIO)));
	assert_non_null(strstr(r.out, "FAIL board octopus is connected"));
	if (strstr(r.out, "USB cable"))
		fail_msg("an unreadable udev blamed on the cable:\n%s", r.out);
	run_free(&r);
	fake_world_release(&w);
}

/* A CAN node's interface: there, up, a queue Katapult can flash through
 * and the bitrate the board was built for; each failure says its fix. */
static void doctor__checks_the_can_interface_its_queue_and_bitrate(void **state)
{
	struct fake_world w;
	struct run r;

	(void)state;
	fake_world_init(&w);
	fake_setenv(&w, "KFLASH_CONFIG_DIR", "/cfg");
	fake_put_file(&w, "/cfg/devices.json", "{\"schema\": 1, \"settings\": {}, "
		      "\"boards\": [{\"key\": \"ebb\", \"name\": \"EBB36\", "
		      "\"mcu\": \"stm32g0b1xx\", \"transport\": \"can\", "
		      "\"canbus_uuid\": \"0a1b2c3d4e5f\"}, {\"key\": \"sb\", \"name\": "
		      "\"SB2040\", \"mcu\": \"rp2040\", \"transport\": \"can\", "
		      "\"canbus_uuid\": \"aabbccddeeff\", \"interface\": \"can1\"}]}");
	fake_put_file(&w, "/cfg/configs/ebb/.config", "CONFIG_CANBUS_FREQUENCY=1000000\n");
	fake_put_file(&w, "/sys/class/net/can0/operstate", "up\n");
	fake_put_file(&w, "/sys/class/net/can0/tx_queue_len", "10\n");
	fake_add_prog(&w, (struct fake_prog){ .argv0 = "ip", .output =
		"[{\"ifname\":\"can0\",\"linkinfo\":{\"info_kind\":\"can\",\"info_data\":"
		"{\"bittiming\":{\"bitrate\":500000}}}}]" });
	r = cli_in(&w, "doctor", NULL, NULL);
	assert_int_equal(r.code, 1);
	assert_non_null(strstr(r.out, "ok CAN interface can0 is there and up"));
	assert_non_null(strstr(r.out, "FAIL CAN interface can0 has a txqueuelen of at least "
			       "128 (it has 10)"));
	assert_non_null(strstr(r.out, "fix: sudo ip link set can0 txqueuelen 128"));
	assert_non_null(strstr(r.out, "FAIL ebb's config (CAN bus speed) matches can0's bitrate (500000)"));
	assert_non_null(strstr(r.out, "sudo ip link set can0 up type can bitrate 1000000"));
	assert_non_null(strstr(r.out, "FAIL CAN interface can1 is there and up"));
	assert_non_null(strstr(r.out, "no can1: is the USB-CAN adapter or the bridge"));
	run_free(&r);
	fake_world_release(&w);
}

/* A table built for another layout is refused before any of it is called. */
static void ops_table__of_another_version_or_incomplete_is_refused(void **state)
{
	struct fake_world w;
	struct fault_ops f;
	struct run r;

	(void)state;
	fake_world_init(&w);
	assert_int_equal(kf_ops_check(&w.ops), 0);
	fault_ops_init(&f, &w.ops, FAULT_ANY, -1, 0);
	assert_int_equal(kf_ops_check(&f.ops), 0);
	w.ops.version = KF_OPS_VERSION - 1;
	assert_int_equal(kf_ops_check(&w.ops), -EPROTONOSUPPORT);
	r = cli_in(&w, "list", NULL, NULL);
	assert_int_equal(r.code, 1);
	assert_non_null(strstr(r.err, "cannot use the 'fake' ops table"));
	assert_string_equal(r.out, "");
	assert_string_equal(w.transcript.data ? w.transcript.data : "", "");
	run_free(&r);
	w.ops.version = KF_OPS_VERSION;
	w.ops.read_line = NULL;
	assert_int_equal(kf_ops_check(&w.ops), -EINVAL);
	r = cli_in(&w, "list", NULL, NULL);
	assert_int_equal(r.code, 1);
	run_free(&r);
	fake_world_release(&w);
}

static void deliver(void *data, int sig)
{
	((struct fake_world *)data)->pending_signal = sig;
}

/* A signal at any call of a command, the last ones included (the result
 * printed, the recording written), ends it with 128+N: a user who pressed
 * Ctrl+C (or whose SSH session hung up) as kflash finished is told it was
 * heard, and a script sees it. */
static void signal__at_any_call_of_a_command_exits_128_plus_n(void **state)
{
	static const char *const cmds[][2] = { { "list", NULL }, { "--record", "list" } };
	size_t c;

	(void)state;
	for (c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
		int n;
		bool fired = true;

		for (n = 1; fired; n++) {
			struct fake_world w;
			struct fault_ops f;
			struct run r;

			fake_world_init(&w);
			fake_setenv(&w, "KFLASH_CONFIG_DIR", "/cfg");
			fault_ops_init(&f, &w.ops, FAULT_EVERY, n, 0);
			f.signal = SIGHUP;
			f.raise = deliver;
			f.raise_data = &w;
			r = cli_with(&f.ops, cmds[c][0], cmds[c][1], NULL);
			fired = f.fired;
			if (fired && r.code != 128 + SIGHUP)
				fail_msg("kflash %s %s: SIGHUP at call %d (%s): exit %d, not %d",
					 cmds[c][0], cmds[c][1] ? cmds[c][1] : "", n, f.fired_at,
					 r.code, 128 + SIGHUP);
			run_free(&r);
			fake_world_release(&w);
		}
		assert_true(n > 3);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(help__lists_every_command_of_the_contract),
		cmocka_unit_test(unknown_command__exits_2_with_a_hint_not_the_usage),
		cmocka_unit_test(help__is_the_help_option),
		cmocka_unit_test(option_value__that_looks_like_an_option_is_refused),
		cmocka_unit_test(unknown_option__exits_2_naming_it),
		cmocka_unit_test(command_help__shows_its_options),
		cmocka_unit_test(version__prints_the_version),
		cmocka_unit_test(no_command_without_tty__prints_usage_exit_2),
		cmocka_unit_test(flash_without_boards__is_a_usage_error),
		cmocka_unit_test(json__a_failing_command_still_prints_one_document),
		cmocka_unit_test(no_command_on_a_terminal__opens_the_menu),
		cmocka_unit_test(config_dir__follows_the_environment),
		cmocka_unit_test(doctor__an_unreadable_udev_is_no_unplugged_board),
		cmocka_unit_test(doctor__checks_the_can_interface_its_queue_and_bitrate),
		cmocka_unit_test(ops_table__of_another_version_or_incomplete_is_refused),
		cmocka_unit_test(signal__at_any_call_of_a_command_exits_128_plus_n),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
