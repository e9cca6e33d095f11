/* test_flow.c - the flash flow over a fake world: the order of effects, the
 * restart guarantee on failures and signals, and a fault loop that fails
 * every effect in turn. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "fault_ops.h"
#include "kflash/commands.h"
#include "kflash/flow.h"
#include "kflash/registry.h"
#include "kflash/sha256.h"

#define OUT "/cache/kflash/build/octopus"
#define BYID "/dev/serial/by-id/usb-Klipper_stm32f446xx_3A0039000851313433343333-if00"

static const char registry[] =
	"{\"schema\": 1, \"settings\": {\"klipper_dir\": \"/klipper\", "
	"\"katapult_dir\": \"/katapult\", \"moonraker_url\": \"http://mr\"}, "
	"\"boards\": [{\"key\": \"octopus\", \"name\": \"Octopus\", \"mcu\": "
	"\"stm32f446xx\", \"pattern\": \"usb-*_stm32f446xx_3A0039000851313433343333-if*\"}]}";

struct t {
	struct fake_world w;
	struct kf_out out;
	struct kf_error err;
	FILE *sink;
};

static void world(struct fake_world *w)
{
	fake_world_init(w);
	fake_setenv(w, "XDG_CACHE_HOME", "/cache");
	w->svc_active = true;
	fake_put_file(w, "/cfg/devices.json", registry);
	fake_put_file(w, "/cfg/configs/octopus/.config",
		      "CONFIG_MCU=\"stm32f446xx\"\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8008000\n");
	fake_put_file(w, "/klipper/Makefile", "");
	fake_put_file(w, "/klipper/src/Kconfig", "");
	fake_add_tty(w, "/dev/ttyACM0", BYID, "1d50", "614e", "Klipper",
		     "3A0039000851313433343333");
	fake_printer_host(w, OUT);
	fake_add_prog(w, (struct fake_prog){ .argv0 = "python3", .match = " -s",
		.output = "Application Start: 0x8008000\nStatus Request Complete",
		.run_ms = 1500 });
	fake_add_prog(w, (struct fake_prog){ .argv0 = "python3", .match = " -f ",
		.output = "Write complete: 13 pages\nProgramming Complete", .run_ms = 4000,
		.back = "/dev/ttyACM0" });
}

static int setup(void **state)
{
	struct t *t = kf_xcalloc(1, sizeof(*t));

	world(&t->w);
	t->sink = fopen("/dev/null", "w");
	kf_out_init(&t->out, &t->w.ops, t->sink, t->sink, &(struct kf_out_opts){ 0 });
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;

	kf_out_release(&t->out);
	fclose(t->sink);
	kf_error_release(&t->err);
	free(t->err.note);
	fake_world_release(&t->w);
	free(t);
	return 0;
}

/* Runs `kflash --force flash octopus -s` against ops. */
static int flash(struct t *t, const struct kf_ops *ops)
{
	struct kf_ctx ctx = { .ops = ops, .out = &t->out, .err = &t->err,
			      .config_dir = "/cfg", .force = true };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_flash_opts o = { .skip_menuconfig = true };
	struct kf_board *b;
	int r;

	kf_error_release(&t->err);
	free(t->err.note);
	t->err.note = NULL;
	r = kf_registry_load(ops, "/cfg", &reg, &t->err);
	if (r < 0)
		return r;
	b = &reg.boards[0];
	r = kf_flow_flash(&ctx, &reg, &b, 1, &o, &t->err);
	kf_registry_release(&reg);
	return r;
}

/* The position of a transcript line, to check order. */
static long at(struct fake_world *w, const char *prefix)
{
	const char *p = w->transcript.data;

	while (p && *p) {
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			return p - w->transcript.data;
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return -1;
}

static void flash__stops_klipper_only_around_the_flash(void **state)
{
	struct t *t = *state;

	assert_int_equal(flash(t, &t->w.ops), 0);
	assert_true(at(&t->w, "spawn make -C /klipper") < at(&t->w, "spawn kflash --guardian"));
	assert_true(at(&t->w, "spawn kflash --guardian") < at(&t->w, "svc_stop klipper"));
	assert_true(at(&t->w, "svc_stop klipper") <
		    at(&t->w, "spawn python3 /katapult/scripts/flashtool.py -d /dev/ttyACM0 -s"));
	assert_true(at(&t->w, "spawn python3 /katapult/scripts/flashtool.py -d /dev/ttyACM0 -f "
		       OUT "/klipper.bin") < at(&t->w, "svc_start klipper"));
	assert_true(at(&t->w, "svc_start klipper") < at(&t->w, "feed kflash d"));
	assert_true(t->w.svc_active);
	assert_int_equal(fake_running(&t->w), 0);
}

static void flash__both_methods_failing_still_restarts_klipper(void **state)
{
	struct t *t = *state;

	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "python3", .match = " -f ",
		.output = "Flash Tool Error\nError sending command [CONNECT] to Device",
		.exit_code = 1, .run_ms = 28000 });
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = " flash ",
		.output = "Error running dfu-util", .exit_code = 2, .run_ms = 100 });
	assert_int_equal(flash(t, &t->w.ops), KF_EFAILED);
	assert_non_null(strstr(t->err.what, "make flash of octopus"));
	assert_true(at(&t->w, "spawn make -C /klipper KCONFIG_CONFIG=/cfg/configs/octopus/"
		       ".config OUT=" OUT "/ flash FLASH_DEVICE=/dev/ttyACM0") > 0);
	assert_true(fake_did(&t->w, "svc_start klipper"));
	assert_true(t->w.svc_active);
}

static void flash__ctrl_c_sends_sigterm_to_flashtool_and_restarts(void **state)
{
	struct t *t = *state;

	/* the build ends at 21.0 s (fake clock), the status call at 22.5 s;
	 * Ctrl+C lands while flashtool writes */
	fake_signal_at(&t->w, 1000 + 20000 + 50 + 1500 + 1000, SIGINT);
	assert_int_equal(flash(t, &t->w.ops), KF_EINTERRUPTED);
	assert_int_equal(t->err.signal, SIGINT);
	assert_int_equal(kf_exit_code(KF_EINTERRUPTED, &t->err), 130);
	assert_non_null(strstr(t->err.what, "needs flashing again"));
	assert_true(fake_did(&t->w, "kill -15 python3"));
	assert_false(fake_did(&t->w, "kill -2 python3"));
	assert_true(at(&t->w, "kill -15 python3") < at(&t->w, "svc_start klipper"));
	assert_false(fake_did(&t->w, "spawn make -C /klipper KCONFIG_CONFIG=/cfg/configs/"
			      "octopus/.config OUT=" OUT "/ flash FLASH_DEVICE=/dev/ttyACM0"));
	assert_true(t->w.svc_active);
}

static void flash__ctrl_c_during_build_stops_nothing(void **state)
{
	struct t *t = *state;

	fake_signal_at(&t->w, 5000, SIGINT);
	assert_int_equal(flash(t, &t->w.ops), KF_EINTERRUPTED);
	assert_true(fake_did(&t->w, "kill -15 make"));
	assert_false(fake_did(&t->w, "svc_stop klipper"));
	assert_int_equal(at(&t->w, "spawn kflash --guardian"), -1);
}

/* A look the build makes (the checkout's version, the compiler's, for the
 * build's stamp) that a signal cuts short is the run's signal, not an
 * answer that is missing: the run stops there, as in the build. */
static void flash__ctrl_c_while_asking_the_compiler_stops_nothing(void **state)
{
	static const char *const looks[] = { "arm-none-eabi-gcc", "git" };
	size_t i;

	for (i = 0; i < sizeof(looks) / sizeof(looks[0]); i++) {
		struct t *t = *state;

		fake_world_release(&t->w);
		world(&t->w);
		fake_add_prog(&t->w, (struct fake_prog){ .argv0 = looks[i],
			.output = "v0.13.0-1-gabc", .run_ms = 60000 });
		fake_signal_at(&t->w, 30000, SIGINT);
		assert_int_equal(flash(t, &t->w.ops), KF_EINTERRUPTED);
		assert_int_equal(t->err.signal, SIGINT);
		assert_int_equal(kf_exit_code(KF_EINTERRUPTED, &t->err), 130);
		assert_false(fake_did(&t->w, "svc_stop klipper"));
		assert_int_equal(at(&t->w, "spawn kflash --guardian"), -1);
		assert_int_equal(fake_running(&t->w), 0);
	}
}

static void flash__inactive_klipper_is_left_inactive(void **state)
{
	struct t *t = *state;

	t->w.svc_active = false;
	assert_int_equal(flash(t, &t->w.ops), 0);
	assert_false(fake_did(&t->w, "svc_stop klipper"));
	assert_false(fake_did(&t->w, "svc_start klipper"));
	assert_false(t->w.svc_active);
}

static void flash__restart_failure_is_reported_beside_the_original(void **state)
{
	struct t *t = *state;
	struct fault_ops f;

	/* service calls: is-active (before the build), can-manage,
	 * is-active, stop, start: fail the start and its retry */
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "python3", .match = " -f ",
		.output = "Flash Tool Error", .exit_code = 1, .run_ms = 100 });
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = " flash ",
		.exit_code = 2, .run_ms = 100 });
	fault_ops_init(&f, &t->w.ops, FAULT_SERVICE, 6, -EIO);
	f.persistent = true;
	assert_int_equal(flash(t, &f.ops), KF_EFAILED);
	assert_true(f.fired);
	assert_non_null(strstr(t->err.what, "make flash of octopus"));
	assert_non_null(t->err.note);
	assert_non_null(strstr(t->err.note, "starting klipper again failed"));
}

/* An injected I/O error is reported as what it is, never as a diagnosis
 * the world did not give: the error names the errno, exits 1, and says
 * nothing of the story the wrong reading would tell. */
static void assert_names_eio(struct t *t, int r, const char *wrong)
{
	assert_int_equal(kf_exit_code(r, &t->err), KF_EXIT_FAILED);
	assert_int_equal(t->err.errnum, EIO);
	assert_non_null(t->err.what);
	if (strstr(t->err.what, wrong))
		fail_msg("EIO read as \"%s\": %s", wrong, t->err.what);
}

static void flash__eio_checking_klipper_dir_is_no_missing_checkout(void **state)
{
	struct t *t = *state;
	struct fault_ops f;
	int r;

	/* file reads: devices.json, then klipper_dir's Makefile */
	fault_ops_init(&f, &t->w.ops, FAULT_FS_READ, 2, -EIO);
	r = flash(t, &f.ops);
	assert_true(f.fired);
	assert_names_eio(t, r, "not a Klipper checkout");
	assert_false(fake_did(&t->w, "svc_stop klipper"));
}

static void flash__eio_asking_sudo_is_no_password_prompt(void **state)
{
	struct t *t = *state;
	struct fault_ops f;
	int r;

	/* service calls: is-active (before the build), then can-manage */
	fault_ops_init(&f, &t->w.ops, FAULT_SERVICE, 2, -EIO);
	r = flash(t, &f.ops);
	assert_true(f.fired);
	assert_names_eio(t, r, "would ask for a password");
	assert_false(fake_did(&t->w, "svc_stop klipper"));
	assert_true(t->w.svc_active);
}

static void flash__eio_listing_devices_at_preflight_is_no_unplugged_board(void **state)
{
	struct t *t = *state;
	struct fault_ops f;
	int r;

	/* udev: discovery, then the pre-flight look after the build */
	fault_ops_init(&f, &t->w.ops, FAULT_UDEV, 2, -EIO);
	r = flash(t, &f.ops);
	assert_true(f.fired);
	assert_true(at(&t->w, "spawn make -C /klipper") >= 0);
	assert_names_eio(t, r, "disappeared");
	assert_false(fake_did(&t->w, "svc_stop klipper"));
}

/* udev misses the board's return: only the look at the deadline sees it */
static void no_event(struct fake_world *w)
{
	size_t i;

	for (i = 0; i < w->n_progs; i++)
		w->progs[i].back = NULL;
}

static void flash__eio_listing_devices_at_verify_is_no_missing_board(void **state)
{
	struct t *t = *state;
	struct fault_ops f;
	int r, last;

	/* the last look through udev is the one that sees the board back */
	no_event(&t->w);
	fault_ops_init(&f, &t->w.ops, FAULT_UDEV, -1, 0);
	assert_int_equal(flash(t, &f.ops), 0);
	last = f.calls;
	fake_world_release(&t->w);
	world(&t->w);
	no_event(&t->w);
	fault_ops_init(&f, &t->w.ops, FAULT_UDEV, last, -EIO);
	r = flash(t, &f.ops);
	assert_true(f.fired);
	assert_true(fake_did(&t->w, "svc_stop klipper"));
	assert_names_eio(t, r, "did not come back");
	assert_true(t->w.svc_active);
}

/* When Moonraker gives no print state, a terminal is asked whether the
 * printer is idle; a terminal that cannot be read is that I/O error, not
 * a "no" that refuses for safety. */
static void flash__a_failing_terminal_at_the_print_question_is_named(void **state)
{
	struct t *t = *state;
	struct kf_ctx ctx = { .ops = NULL, .out = &t->out, .err = &t->err,
			      .config_dir = "/cfg", .interactive = true };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_flash_opts o = { .skip_menuconfig = true };
	struct kf_board *b;
	struct fault_ops f;
	int r;

	t->w.urls[0].body = "{\"result\": {\"status\": {}}}";
	fault_ops_init(&f, &t->w.ops, FAULT_TTY, 1, -EIO);
	ctx.ops = &f.ops;
	assert_int_equal(kf_registry_load(ctx.ops, "/cfg", &reg, &t->err), 0);
	b = &reg.boards[0];
	r = kf_flow_flash(&ctx, &reg, &b, 1, &o, &t->err);
	kf_registry_release(&reg);
	assert_true(f.fired);
	assert_names_eio(t, r, "gave no print state");
	assert_false(fake_did(&t->w, "svc_stop klipper"));
}

/* One mapping from a board's state to its result feeds the exit code, the
 * summary and the JSON: a board the run stopped before is "failed" in all
 * three, with the reason, never "skipped" (which is what --all does to an
 * excluded board). */
static void flash__a_board_the_run_stopped_before_is_failed_everywhere(void **state)
{
	struct t *t = *state;
	struct fault_ops f;
	json_t *board;
	int r;

	/* service calls: is-active, can-manage, is-active, guard, stop */
	fault_ops_init(&f, &t->w.ops, FAULT_SERVICE, 5, -EIO);
	r = flash(t, &f.ops);
	assert_true(f.fired);
	assert_int_equal(kf_exit_code(r, &t->err), KF_EXIT_FAILED);
	assert_non_null(strstr(t->err.what, "stopping klipper failed"));
	board = json_array_get(json_object_get(t->out.doc, "boards"), 0);
	assert_string_equal(json_string_value(json_object_get(board, "result")), "failed");
	assert_non_null(strstr(json_string_value(json_object_get(board, "error")),
			       "stopping klipper failed"));
}

/* kflash build goes through the same preparation and result table as a
 * flash: one board's failure is its own, the others are built, and the
 * JSON and the exit code say the same. */
static void build__one_failing_board_fails_alone_and_the_table_says_so(void **state)
{
	struct t *t = *state;
	struct kf_ctx ctx = { .ops = &t->w.ops, .out = &t->out, .err = &t->err,
			      .config_dir = "/cfg" };
	char *argv[] = { "build", "octopus", "ebb", NULL };
	json_t *boards;
	int r;

	fake_put_file(&t->w, "/cfg/devices.json",
		"{\"schema\": 1, \"settings\": {\"klipper_dir\": \"/klipper\"}, "
		"\"boards\": [{\"key\": \"octopus\", \"name\": \"Octopus\", \"mcu\": "
		"\"stm32f446xx\", \"pattern\": \"usb-*_stm32f446xx_3A0039000851313433343333"
		"-if*\"}, {\"key\": \"ebb\", \"name\": \"EBB\", \"mcu\": \"stm32g0b1xx\", "
		"\"pattern\": \"usb-*_stm32g0b1xx_1234567890ABCDEF12345678-if*\"}]}");
	r = kf_cmd_build(&ctx, 3, argv);
	assert_int_equal(kf_exit_code(r, &t->err), KF_EXIT_FAILED);
	assert_non_null(strstr(t->err.what, "1 of 2 builds failed"));
	boards = json_object_get(t->out.doc, "boards");
	assert_int_equal(json_array_size(boards), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(boards, 0),
							      "result")), "built");
	assert_string_equal(json_string_value(json_object_get(json_array_get(boards, 1),
							      "result")), "failed");
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(boards, 1),
								 "error")),
			       "ebb has no firmware config yet"));
	assert_false(fake_did(&t->w, "svc_stop klipper"));
}

/* The flashed board comes back through a udev "add" event, not the
 * fallback look at the deadline: the flash ends long before the 30 s wait. */
static void flash__verify_sees_the_board_come_back_by_udev_event(void **state)
{
	struct t *t = *state;
	int64_t by_event;

	assert_int_equal(flash(t, &t->w.ops), 0);
	assert_true(at(&t->w, "exit python3 status 0") < at(&t->w, "uevent add /dev/ttyACM0"));
	assert_true(at(&t->w, "uevent add /dev/ttyACM0") < at(&t->w, "svc_start klipper"));
	by_event = t->w.now;
	/* the same flash with udev silent waits out the 30 s */
	fake_world_release(&t->w);
	world(&t->w);
	no_event(&t->w);
	assert_int_equal(flash(t, &t->w.ops), 0);
	assert_false(fake_did(&t->w, "uevent add /dev/ttyACM0"));
	if (t->w.now - by_event < 25000)
		fail_msg("the event saved %lld ms, not the 30 s wait",
			 (long long)(t->w.now - by_event));
}

/* ---- kflash rollback -------------------------------------------------------------- */

#define KEPT "/cfg/last-good/octopus"

/* octopus came back running "OLD", built from Klipper describe, once */
static void kept_for(struct fake_world *w, const char *describe)
{
	char hex[KF_SHA256_HEX], *path, *meta;

	kf_sha256_hex("OLD", 3, hex);
	path = kf_asprintf(KEPT "/%.16s/klipper.bin", hex);
	fake_put_file(w, path, "OLD");
	free(path);
	path = kf_asprintf(KEPT "/%.16s/.config", hex);
	fake_put_file(w, path, "CONFIG_MCU=\"stm32f446xx\"\n"
		      "CONFIG_FLASH_APPLICATION_ADDRESS=0x8008000\n");
	free(path);
	meta = kf_asprintf("{\"format\": 1, \"board\": \"octopus\", \"mcu\": "
			   "\"stm32f446xx\", \"image\": \"%.16s/klipper.bin\", \"size\": 3, "
			   "\"sha256\": \"%s\", \"version\": null, \"describe\": \"%s\", "
			   "\"kept\": \"2026-12-01T10:00:00Z\"}", hex, hex, describe);
	fake_put_file(w, KEPT "/kept.json", meta);
	free(meta);
}

static int rollback(struct t *t, const struct kf_ops *ops, bool interactive, bool yes)
{
	char *argv[] = { "rollback", "octopus", NULL };
	struct kf_ctx ctx = { .ops = ops, .out = &t->out, .err = &t->err,
			      .config_dir = "/cfg", .force = true,
			      .interactive = interactive, .yes = yes };

	kf_error_release(&t->err);
	return kf_cmd_rollback(&ctx, 2, argv);
}

static void flash__keeps_what_came_back_and_rollback_flashes_it_unbuilt(void **state)
{
	struct t *t = *state;
	const struct fake_file *meta;
	const char *after;
	size_t mark;

	assert_int_equal(flash(t, &t->w.ops), 0);
	meta = fake_get_file(&t->w, KEPT "/kept.json");
	assert_non_null(meta);
	assert_non_null(strstr(meta->data, "\"describe\": \"v0.13.0-1-gabc\""));
	/* kept after the restart: no longer for the printer to wait */
	assert_true(at(&t->w, "svc_start klipper") < at(&t->w, "write " KEPT "/kept.json"));
	mark = t->w.transcript.len;
	assert_int_equal(rollback(t, &t->w.ops, false, false), 0);
	after = t->w.transcript.data + mark;
	assert_null(strstr(after, "spawn make"));
	assert_non_null(strstr(after, "svc_stop klipper"));
	assert_non_null(strstr(after, "spawn python3 /katapult/scripts/flashtool.py -d "
			       "/dev/ttyACM0 -f " KEPT "/"));
	assert_true(strstr(after, "-f " KEPT "/") < strstr(after, "svc_start klipper"));
	/* what it restored stays what is kept */
	assert_null(strstr(after, "write " KEPT));
	assert_true(t->w.svc_active);
}

static void rollback__for_another_klipper_asks_and_refuses_before_anything_stops(void **state)
{
	struct t *t = *state;

	kept_for(&t->w, "v0.12.0-9-gold");
	/* off a terminal: refused */
	assert_int_equal(rollback(t, &t->w.ops, false, false), KF_EREFUSED);
	assert_non_null(strstr(t->err.what, "octopus was not rolled back"));
	assert_non_null(strstr(t->err.what, "v0.12.0-9-gold"));
	/* on one, the answer no */
	fake_type(&t->w, "n\n");
	assert_int_equal(rollback(t, &t->w.ops, true, false), KF_EREFUSED);
	assert_false(fake_did(&t->w, "svc_stop klipper"));
	assert_false(at(&t->w, "spawn python3") >= 0);
	/* and -y: flashed */
	assert_int_equal(rollback(t, &t->w.ops, false, true), 0);
	assert_true(fake_did(&t->w, "svc_stop klipper"));
	assert_true(t->w.svc_active);
}

static void rollback__nothing_kept_or_a_make_flash_board_is_refused(void **state)
{
	struct t *t = *state;

	assert_int_equal(rollback(t, &t->w.ops, false, false), KF_EINPUT);
	assert_string_equal(t->err.what, "octopus has no kept firmware to roll back to");
	kept_for(&t->w, "v0.13.0-1-gabc");
	fake_put_file(&t->w, "/cfg/devices.json",
		"{\"schema\": 1, \"settings\": {\"klipper_dir\": \"/klipper\", "
		"\"default_method\": \"make-flash\"}, \"boards\": [{\"key\": \"octopus\", "
		"\"name\": \"Octopus\", \"mcu\": \"stm32f446xx\", \"pattern\": "
		"\"usb-*_stm32f446xx_3A0039000851313433343333-if*\"}]}");
	assert_int_equal(rollback(t, &t->w.ops, false, false), KF_EINPUT);
	assert_non_null(strstr(t->err.what, "through Katapult only"));
	assert_false(fake_did(&t->w, "svc_stop klipper"));
}

static void rollback__a_damaged_image_or_another_mcu_is_never_flashed(void **state)
{
	struct t *t = *state;
	char hex[KF_SHA256_HEX], *path;

	kept_for(&t->w, "v0.13.0-1-gabc");
	kf_sha256_hex("OLD", 3, hex);
	path = kf_asprintf(KEPT "/%.16s/klipper.bin", hex);
	fake_put_file(&t->w, path, "BAD");
	assert_int_equal(rollback(t, &t->w.ops, false, false), KF_EINPUT);
	assert_non_null(strstr(t->err.what, "is damaged"));
	fake_put_file(&t->w, path, "OLD");
	free(path);
	path = kf_asprintf(KEPT "/%.16s/.config", hex);
	fake_put_file(&t->w, path, "CONFIG_MCU=\"stm32f103xe\"\n");
	free(path);
	assert_int_equal(rollback(t, &t->w.ops, false, false), KF_EREFUSED);
	assert_non_null(strstr(t->err.what, "stm32f103xe"));
	assert_false(fake_did(&t->w, "svc_stop klipper"));
	assert_false(at(&t->w, "spawn python3") >= 0);
}

/* ---- the fault loop over every flow ---------------------------------------- */

#define EBB_BYID "/dev/serial/by-id/usb-Klipper_stm32g0b1xx_1234567890ABCDEF12345678-if00"
#define NEW_CONFIG "CONFIG_MCU=\"stm32f446xx\"\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8008000\n" \
	"CONFIG_USB_SERIAL_NUMBER_CHIPID=y\n"

static const char two_boards[] =
	"{\"schema\": 1, \"settings\": {\"klipper_dir\": \"/klipper\", "
	"\"katapult_dir\": \"/katapult\", \"moonraker_url\": \"http://mr\"}, "
	"\"boards\": [{\"key\": \"octopus\", \"name\": \"Octopus\", \"mcu\": "
	"\"stm32f446xx\", \"pattern\": \"usb-*_stm32f446xx_3A0039000851313433343333-if*\"}, "
	"{\"key\": \"ebb\", \"name\": \"EBB\", \"mcu\": \"stm32g0b1xx\", \"pattern\": "
	"\"usb-*_stm32g0b1xx_1234567890ABCDEF12345678-if*\"}]}";

static void ebb_tty(struct fake_world *w)
{
	fake_add_tty(w, "/dev/ttyACM1", EBB_BYID, "1d50", "614e", "Klipper",
		     "1234567890ABCDEF12345678");
}

static int cmd(struct t *t, const struct kf_ops *ops, bool interactive,
	       int (*fn)(struct kf_ctx *, int, char **), int argc, char **argv)
{
	struct kf_ctx ctx = { .ops = ops, .out = &t->out, .err = &t->err,
			      .config_dir = "/cfg", .force = true,
			      .interactive = interactive };

	return fn(&ctx, argc, argv);
}

static void one_world(struct fake_world *w)
{
	(void)w;
}

static void stopped_world(struct fake_world *w)
{
	w->svc_active = false;
}

static void all_world(struct fake_world *w)
{
	fake_put_file(w, "/cfg/devices.json", two_boards);
	fake_put_file(w, "/cfg/configs/ebb/.config",
		      "CONFIG_MCU=\"stm32g0b1xx\"\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8002000\n");
	ebb_tty(w);
	fake_add_prog(w, (struct fake_prog){ .argv0 = "make", .match = "/ebb/ -j",
		.run_ms = 15000, .writes = "/cache/kflash/build/ebb/klipper.bin",
		.writes_data = "FW" });
	fake_add_prog(w, (struct fake_prog){ .argv0 = "python3", .match = "ttyACM1 -s",
		.output = "Application Start: 0x8002000\nStatus Request Complete",
		.run_ms = 1500 });
	fake_add_prog(w, (struct fake_prog){ .argv0 = "python3", .match = "ttyACM1 -f ",
		.output = "Programming Complete", .run_ms = 3000, .back = "/dev/ttyACM1" });
}

static void make_flash_world(struct fake_world *w)
{
	fake_add_prog(w, (struct fake_prog){ .argv0 = "make", .match = " flash ",
		.run_ms = 3000, .back = "/dev/ttyACM0" });
}

static void fallback_world(struct fake_world *w)
{
	fake_add_prog(w, (struct fake_prog){ .argv0 = "python3", .match = " -f ",
		.output = "Flash Tool Error\nError sending command [CONNECT] to Device",
		.exit_code = 1, .run_ms = 2000 });
	make_flash_world(w);
}

static void add_world(struct fake_world *w)
{
	ebb_tty(w);
}

static void config_world(struct fake_world *w)
{
	fake_add_prog(w, (struct fake_prog){ .argv0 = "make", .match = " menuconfig",
		.run_ms = 60000, .writes = "/cfg/configs/octopus/.config",
		.writes_data = NEW_CONFIG });
}

#define EBB_CONFIG "CONFIG_MCU=\"stm32g0b1xx\"\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8002000\n"

/* kflash add on a terminal: the board picked, named and its method left
 * at the default by typed answers, then its menuconfig */
static void wizard_world(struct fake_world *w)
{
	ebb_tty(w);
	fake_type(w, "1\nEBB\n\n");
	fake_add_prog(w, (struct fake_prog){ .argv0 = "make",
		.match = "/cfg/configs/ebb/.config OUT=/cache/kflash/build/ebb/ menuconfig",
		.run_ms = 30000, .writes = "/cfg/configs/ebb/.config",
		.writes_data = EBB_CONFIG });
}

static void excluded_world(struct fake_world *w)
{
	fake_put_file(w, "/cfg/devices.json",
		"{\"schema\": 1, \"settings\": {\"klipper_dir\": \"/klipper\"}, "
		"\"boards\": [{\"key\": \"octopus\", \"name\": \"Octopus\", \"mcu\": "
		"\"stm32f446xx\", \"pattern\": \"usb-*_stm32f446xx_3A0039000851313433343333"
		"-if*\", \"flashable\": false}]}");
}

static void rollback_world(struct fake_world *w)
{
	kept_for(w, "v0.13.0-1-gabc");
}

static int rollback_run(struct t *t, const struct kf_ops *ops)
{
	char *argv[] = { "rollback", "octopus", NULL };

	return cmd(t, ops, false, kf_cmd_rollback, 2, argv);
}

static int one_run(struct t *t, const struct kf_ops *ops)
{
	return flash(t, ops);
}

static int all_run(struct t *t, const struct kf_ops *ops)
{
	char *argv[] = { "flash", "--all", "-s", NULL };

	return cmd(t, ops, false, kf_cmd_flash, 3, argv);
}

static int make_flash_run(struct t *t, const struct kf_ops *ops)
{
	char *argv[] = { "flash", "--method", "make-flash", "-s", "octopus", NULL };

	return cmd(t, ops, false, kf_cmd_flash, 5, argv);
}

static int build_run(struct t *t, const struct kf_ops *ops)
{
	char *argv[] = { "build", "octopus", NULL };

	return cmd(t, ops, false, kf_cmd_build, 2, argv);
}

static int add_run(struct t *t, const struct kf_ops *ops)
{
	char *argv[] = { "add", "--device", "/dev/ttyACM1", "--name", "EBB", NULL };

	return cmd(t, ops, false, kf_cmd_add, 5, argv);
}

static int wizard_run(struct t *t, const struct kf_ops *ops)
{
	char *argv[] = { "add", NULL };

	return cmd(t, ops, true, kf_cmd_add, 1, argv);
}

static int remove_run(struct t *t, const struct kf_ops *ops)
{
	char *argv[] = { "remove", "--purge", "octopus", NULL };

	return cmd(t, ops, false, kf_cmd_remove, 3, argv);
}

static int exclude_run(struct t *t, const struct kf_ops *ops)
{
	char *argv[] = { "exclude", "octopus", NULL };

	return cmd(t, ops, false, kf_cmd_exclude, 2, argv);
}

static int include_run(struct t *t, const struct kf_ops *ops)
{
	char *argv[] = { "include", "octopus", NULL };

	return cmd(t, ops, false, kf_cmd_include, 2, argv);
}

static int config_run(struct t *t, const struct kf_ops *ops)
{
	char *argv[] = { "config", "octopus", NULL };

	return cmd(t, ops, true, kf_cmd_config, 2, argv);
}

struct flow {
	const char *name;
	void (*setup)(struct fake_world *w);
	int (*run)(struct t *t, const struct kf_ops *ops);
	const char *clean;	/* a transcript line of the run without faults */
};

static const struct flow flows[] = {
	{ "one board", one_world, one_run, "uevent add /dev/ttyACM0" },
	{ "one board, klipper stopped", stopped_world, one_run, "uevent add /dev/ttyACM0" },
	{ "--all", all_world, all_run, "uevent add /dev/ttyACM1" },
	{ "make flash", make_flash_world, make_flash_run, "uevent add /dev/ttyACM0" },
	{ "katapult fails, make flash", fallback_world, one_run, "uevent add /dev/ttyACM0" },
	{ "build", one_world, build_run, "exit make status 0" },
	{ "add", add_world, add_run, "write /cfg/devices.json" },
	{ "config", config_world, config_run, "exit make status 0" },
	{ "add on a terminal", wizard_world, wizard_run, "exit make status 0" },
	{ "remove --purge", one_world, remove_run, "unlink /cfg/configs/octopus/.config" },
	{ "exclude", one_world, exclude_run, "write /cfg/devices.json" },
	{ "include", excluded_world, include_run, "write /cfg/devices.json" },
	{ "rollback", rollback_world, rollback_run, "uevent add /dev/ttyACM0" },
	{ "remove --purge, firmware kept", rollback_world, remove_run,
	  "remove_tree /cfg/last-good/octopus" },
};

static int absorbed;	/* faults after which the run still succeeded */
static int absorbed_warned;	/* of them, those a warning named */

/* The files of the config dir (the registry, the boards' configs): what
 * a command may change, each only from the old version to the new one. */
#define CFG_MAX 16
struct cfg_files {
	struct fake_file f[CFG_MAX];
	size_t n;
};

/* What a run leaves that its user sees then or later: its output, and
 * every file (by path, so the order they were made in does not count). */
struct seen {
	char *out;
	char *files;
	struct cfg_files before, after;
};

/* The wall-clock time a file records (kept.json's "kept") says when, not
 * what, a run did: blanked before files are compared. */
static void blank_clock(char *data)
{
	static const char key[] = "\"kept\": \"";
	char *p = data;

	while (p && (p = strstr(p, key))) {
		for (p += sizeof(key) - 1; *p && *p != '"'; p++)
			*p = 'T';
	}
}

static void cfg_files_of(const struct fake_world *w, struct cfg_files *c)
{
	size_t i;

	c->n = 0;
	for (i = 0; i < w->n_files; i++) {
		const struct fake_file *f = &w->files[i];

		if (!f->path || strncmp(f->path, "/cfg/", 5) != 0)
			continue;
		assert_true(c->n < CFG_MAX);
		c->f[c->n].path = kf_xstrdup(f->path);
		c->f[c->n].data = kf_xstrndup(f->data, f->len);
		blank_clock(c->f[c->n].data);
		c->f[c->n++].len = f->len;
	}
}

static void cfg_files_release(struct cfg_files *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		free(c->f[i].path);
		free(c->f[i].data);
	}
	c->n = 0;
}

static const struct fake_file *cfg_file(const struct cfg_files *c, const char *path)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->f[i].path, path) == 0)
			return &c->f[i];
	return NULL;
}

static bool same_file(const struct fake_file *a, const struct fake_file *b)
{
	if (!a || !b)
		return a == b;
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* The first file of the config dir that is neither as it was before the
 * run nor as the clean run left it (missing counts as a version), or NULL. */
static const char *torn_file(const struct seen *got, const struct seen *clean)
{
	const struct cfg_files *sets[] = { &got->before, &got->after, &clean->after };
	size_t i, k;

	for (k = 0; k < 3; k++)
		for (i = 0; i < sets[k]->n; i++) {
			const char *path = sets[k]->f[i].path;
			const struct fake_file *now = cfg_file(&got->after, path);

			if (!same_file(now, cfg_file(&got->before, path)) &&
			    !same_file(now, cfg_file(&clean->after, path)))
				return path;
		}
	return NULL;
}

static int by_path(const void *a, const void *b)
{
	return strcmp((*(const struct fake_file *const *)a)->path,
		      (*(const struct fake_file *const *)b)->path);
}

static char *world_files(const struct fake_world *w)
{
	const struct fake_file *sorted[FAKE_MAX_FILES];
	struct kf_buf b = KF_BUF_INIT;
	size_t i, n = 0;


	/* an unlinked file leaves a slot without a path */
	for (i = 0; i < w->n_files; i++)
		if (w->files[i].path)
			sorted[n++] = &w->files[i];
	qsort(sorted, n, sizeof(sorted[0]), by_path);
	for (i = 0; i < n; i++) {
		kf_buf_addf(&b, "%s (%zu bytes)\n", sorted[i]->path, sorted[i]->len);
		kf_buf_add(&b, sorted[i]->data, sorted[i]->len);
		kf_buf_add(&b, "\n", 1);
	}
	kf_buf_add(&b, "", 1);
	blank_clock(b.data);
	return b.data;
}

/* The first line where got and clean part, for a failure's message. */
static void first_diff(const char *got, const char *clean, char *buf, size_t len)
{
	size_t i = 0, line = 0;

	while (got[i] && got[i] == clean[i])
		if (got[i++] == '\n')
			line = i;
	snprintf(buf, len, "\n  this run: %.*s\n  clean run: %.*s",
		 (int)strcspn(got + line, "\n"), got + line,
		 (int)strcspn(clean + line, "\n"), clean + line);
}

static void seen_release(struct seen *s)
{
	free(s->out);
	free(s->files);
	cfg_files_release(&s->before);
	cfg_files_release(&s->after);
}

#define FAULT_CAP 600	/* calls per flow; the longest clean run makes fewer */

static void deliver(void *data, int sig)
{
	struct fake_world *w = data;

	w->pending_signal = sig;
}

static bool names(const char *text, const char *name)
{
	return text && strstr(text, name);
}

/* The promise after any fault: klipper runs as before, no child (the
 * guardian included) is left, the files are the old or the new version,
 * and a failure says what was injected. */
static void check_run(struct t *t, const struct flow *fl, struct fault_ops *f,
		      struct fake_world *w, bool was_active, int n, int r,
		      const struct seen *clean, const struct seen *got)
{
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_error e = KF_ERROR_INIT;
	const struct fake_file *file;
	const char *torn;
	const char *what = t->err.what ? t->err.what : "(no error)";
	const char *tail = w->transcript.data ? w->transcript.data : "";

	/* what happened last, for the message */
	if (strlen(tail) > 600)
		tail += strlen(tail) - 600;
#define FAIL(...) do { \
		fprintf(stderr, "%s: call %d (%s)%s%s, after:\n...%s", fl->name, n, \
			f->fired_at ? f->fired_at : "none", f->signal ? ", signal " : "", \
			f->signal ? strsignal(f->signal) : "", tail); \
		fail_msg(__VA_ARGS__); \
	} while (0)
	if (w->svc_active != was_active)
		FAIL("%s: fault at call %d left klipper %s: %s", fl->name, n,
		     was_active ? "stopped" : "started", what);
	if (fake_running(w) != 0)
		FAIL("%s: fault at call %d left %zu children: %s", fl->name, n,
			 fake_running(w), what);
	if (fake_did(w, "spawn kflash --guardian") && !fake_did(w, "feed kflash end"))
		FAIL("%s: fault at call %d: the guardian was not let go", fl->name, n);
	file = fake_get_file(w, "/cfg/devices.json");
	assert_non_null(file);
	if (kf_registry_parse("x", file->data, file->len, &reg, &e) < 0)
		FAIL("%s: fault at call %d: devices.json: %s", fl->name, n, e.what);
	kf_registry_release(&reg);
	kf_error_release(&e);
	torn = torn_file(got, clean);
	if (torn)
		FAIL("%s: fault at call %d: %s is neither the old file nor the new one: %s",
		     fl->name, n, torn, what);
	if (!f->fired) {
		if (r < 0)
			FAIL("%s: the run without faults failed: %s", fl->name, what);
		if (!fake_did(w, fl->clean))
			FAIL("%s: the run without faults has no \"%s\"", fl->name, fl->clean);
		return;
	}
	/* A signal is never absorbed: every command takes a pending one at
	 * its last step (kf_cmd_signalled, kf_run_signalled), so one that
	 * came at any call, the last included, ends the run with 128+N. */
	if (r >= 0 && f->signal)
		FAIL("%s: signal %d at call %d was ignored: exit %d", fl->name, f->signal, n,
		     kf_exit_code(r, &t->err));
	if (r >= 0) {
		/* A failure the run got over (a retry, a fallback, a best-effort
		 * step) is accepted only when the user is told, by a warning
		 * naming the errno, or when it is truly unobservable: the run
		 * printed and left behind exactly what the clean run did. */
		bool warned = names(got->out, strerror(-f->err));
		char diff[512];

		first_diff(got->out, clean->out, diff, sizeof(diff));
		if (!warned && strcmp(got->out, clean->out) != 0)
			FAIL("%s: %s at call %d (%s) was absorbed, but the output "
			     "differs from the clean run's, naming no error:%s", fl->name,
			     strerror(-f->err), n, f->fired_at, diff);
		first_diff(got->files, clean->files, diff, sizeof(diff));
		if (!warned && strcmp(got->files, clean->files) != 0)
			FAIL("%s: %s at call %d (%s) was absorbed, but the files "
			     "differ from the clean run's:%s", fl->name,
			     strerror(-f->err), n, f->fired_at, diff);
		absorbed++;
		absorbed_warned += warned;
		if (getenv("FAULT_LOOP_VERBOSE"))
			fprintf(stderr, "absorbed: %s call %d (%s)%s\n", fl->name, n,
				f->fired_at, warned ? ", warned" : "");
		return;
	}
	if (f->signal) {
		if (r != KF_EINTERRUPTED || t->err.signal != f->signal ||
		    kf_exit_code(r, &t->err) != 128 + f->signal)
			FAIL("%s: signal %d at call %d: exit %d, not %d: %s", fl->name,
				 f->signal, n, kf_exit_code(r, &t->err), 128 + f->signal, what);
		return;
	}
	if (t->err.errnum != -f->err && !names(t->err.what, strerror(-f->err)) &&
	    !names(t->err.cause, strerror(-f->err)) && !names(t->err.note, strerror(-f->err)))
		FAIL("%s: %s at call %d is not named: %s (errno %d)", fl->name,
			 strerror(-f->err), n, what, t->err.errnum);
}
#undef FAIL

/* One run of fl with the Nth call failing, or a signal arriving at it
 * (n < 0: a clean run), its output and files in *ret_seen. */
static int run_once(struct t *t, const struct flow *fl, struct fake_world *w,
		    struct fault_ops *f, int n, int sig, bool *ret_was_active,
		    struct seen *ret_seen)
{
	size_t len;
	FILE *mem;
	int r;

	world(w);
	fl->setup(w);
	fault_ops_init(f, &w->ops, FAULT_EVERY, n, -EIO);
	f->signal = sig;
	f->raise = deliver;
	f->raise_data = w;
	*ret_was_active = w->svc_active;
	cfg_files_of(w, &ret_seen->before);
	ret_seen->out = NULL;
	mem = open_memstream(&ret_seen->out, &len);
	assert_non_null(mem);
	kf_out_release(&t->out);
	kf_out_init(&t->out, &w->ops, mem, mem, &(struct kf_out_opts){ 0 });
	r = fl->run(t, &f->ops);
	kf_out_release(&t->out);
	fclose(mem);
	kf_out_init(&t->out, &t->w.ops, t->sink, t->sink, &(struct kf_out_opts){ 0 });
	ret_seen->files = world_files(w);
	cfg_files_of(w, &ret_seen->after);
	return r;
}

static void reset_err(struct t *t)
{
	kf_error_release(&t->err);
	free(t->err.note);
	t->err.note = NULL;
}

/* Runs fl with the Nth call failing (or a signal arriving at it) for
 * N = 1, 2, ... until a run reaches no Nth call; returns the faults fired.
 * A clean run first is what an absorbed fault is held against. */
static int fault_loop(struct t *t, const struct flow *fl, int sig)
{
	struct seen clean;
	int n, fired = 0;

	{
		struct fake_world *w = kf_xcalloc(1, sizeof(*w));
		struct fault_ops f;
		bool was_active;
		int r = run_once(t, fl, w, &f, -1, 0, &was_active, &clean);

		check_run(t, fl, &f, w, was_active, 0, r, &clean, &clean);
		fake_world_release(w);
		free(w);
		reset_err(t);
	}
	for (n = 1; n <= FAULT_CAP; n++) {
		struct fault_ops f;
		struct fake_world *w = kf_xcalloc(1, sizeof(*w));
		struct seen got;
		bool was_active;
		int r = run_once(t, fl, w, &f, n, sig, &was_active, &got);

		check_run(t, fl, &f, w, was_active, n, r, &clean, &got);
		seen_release(&got);
		fake_world_release(w);
		free(w);
		if (f.fired && getenv("FAULT_LOOP_VERBOSE"))
			fprintf(stderr, "%s: call %d (%s)%s: exit %d\n", fl->name, n,
				f.fired_at, sig ? " signal" : "", kf_exit_code(r, &t->err));
		reset_err(t);
		if (!f.fired)
			break;
		fired++;
	}
	seen_release(&clean);
	if (n > FAULT_CAP)
		fail_msg("%s: more than %d calls", fl->name, FAULT_CAP);
	assert_true(fired >= 3);
	return fired;
}

/* SQLite-style fault loop over every flow: fail the 1st, 2nd, 3rd ...
 * call of any kind (waits, kills, udev, sleeps, typed lines included) with EIO, then
 * deliver SIGINT, SIGTERM and SIGHUP at each; check_run says what must
 * hold after each. */
static void fault_loop__every_flow_keeps_the_promise(void **state)
{
	static const int sigs[] = { 0, SIGINT, SIGTERM, SIGHUP };
	struct t *t = *state;
	size_t i, j;
	int faults = 0, signals = 0;

	for (i = 0; i < sizeof(flows) / sizeof(flows[0]); i++)
		for (j = 0; j < sizeof(sigs) / sizeof(sigs[0]); j++) {
			int k = fault_loop(t, &flows[i], sigs[j]);

			if (sigs[j])
				signals += k;
			else
				faults += k;
		}
	printf("fault loop: %zu flows, %d faults injected, %d signals delivered, "
	       "%d runs absorbed a fault and succeeded (%d with a warning naming "
	       "it, the others printing and leaving what the clean run does)\n",
	       sizeof(flows) / sizeof(flows[0]), faults, signals, absorbed,
	       absorbed_warned);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(flash__stops_klipper_only_around_the_flash, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__both_methods_failing_still_restarts_klipper, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__ctrl_c_sends_sigterm_to_flashtool_and_restarts, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__ctrl_c_during_build_stops_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__ctrl_c_while_asking_the_compiler_stops_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(flash__inactive_klipper_is_left_inactive, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__restart_failure_is_reported_beside_the_original, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__eio_checking_klipper_dir_is_no_missing_checkout, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__eio_asking_sudo_is_no_password_prompt, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__eio_listing_devices_at_preflight_is_no_unplugged_board, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__eio_listing_devices_at_verify_is_no_missing_board, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__a_board_the_run_stopped_before_is_failed_everywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__a_failing_terminal_at_the_print_question_is_named, setup, teardown),
		cmocka_unit_test_setup_teardown(build__one_failing_board_fails_alone_and_the_table_says_so, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__verify_sees_the_board_come_back_by_udev_event, setup, teardown),
		cmocka_unit_test_setup_teardown(flash__keeps_what_came_back_and_rollback_flashes_it_unbuilt, setup, teardown),
		cmocka_unit_test_setup_teardown(rollback__for_another_klipper_asks_and_refuses_before_anything_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(rollback__nothing_kept_or_a_make_flash_board_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(rollback__a_damaged_image_or_another_mcu_is_never_flashed, setup, teardown),
		cmocka_unit_test_setup_teardown(fault_loop__every_flow_keeps_the_promise, setup, teardown),
	};

	return cmocka_run_group_tests_name("flow", tests, NULL, NULL);
}
