/* test_build.c - .config parsing, the MCU check, and the build stamp over a
 * fake world: what rebuilds and what does not. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "kflash/build.h"
#include "kflash/kconfig.h"

static void parse__handles_what_real_configs_contain(void **state)
{
	static const char text[] =
		"#\r\n# Automatically generated file; DO NOT EDIT.\r\n"
		"CONFIG_LOW_LEVEL_OPTIONS=y\r\n"
		"CONFIG_MACH_STM32=y\n"
		"CONFIG_BOARD_DIRECTORY=\"stm32\"\n"
		"CONFIG_MCU=\"stm32f446xx\"\n"
		"# CONFIG_MACH_AVR is not set\n"
		"CONFIG_USB_SERIAL_NUMBER=\"a \\\"quoted\\\" id\"\n"
		"CONFIG_FLASH_APPLICATION_ADDRESS=0x8008000\n"
		"not a config line\n"
		"CONFIG_BAD KEY=1\n"
		"CONFIG_LAST=no-newline";
	struct kf_kconfig c;

	(void)state;
	kf_kconfig_parse(text, sizeof(text) - 1, &c);
	assert_string_equal(kf_kconfig_get(&c, "CONFIG_MCU"), "stm32f446xx");
	assert_string_equal(kf_kconfig_get(&c, "CONFIG_BOARD_DIRECTORY"), "stm32");
	assert_string_equal(kf_kconfig_get(&c, "CONFIG_LOW_LEVEL_OPTIONS"), "y");
	assert_string_equal(kf_kconfig_get(&c, "CONFIG_FLASH_APPLICATION_ADDRESS"),
			    "0x8008000");
	assert_string_equal(kf_kconfig_get(&c, "CONFIG_USB_SERIAL_NUMBER"),
			    "a \"quoted\" id");
	assert_string_equal(kf_kconfig_get(&c, "CONFIG_LAST"), "no-newline");
	assert_null(kf_kconfig_get(&c, "CONFIG_MACH_AVR"));
	assert_null(kf_kconfig_get(&c, "CONFIG_MISSING"));
	assert_null(kf_kconfig_get(&c, "CONFIG_BAD KEY"));
	kf_kconfig_release(&c);
}

static void parse__survives_huge_lines_and_empty_input(void **state)
{
	size_t n = 1 << 20;
	char *big = kf_xmalloc(n + 64);
	struct kf_kconfig c;

	(void)state;
	memset(big, 'x', n);
	memcpy(big, "CONFIG_HUGE=\"", 13);
	strcpy(big + n, "\"\nCONFIG_MCU=\"rp2040\"\n");
	kf_kconfig_parse(big, strlen(big), &c);
	assert_string_equal(kf_kconfig_get(&c, "CONFIG_MCU"), "rp2040");
	assert_int_equal(strlen(kf_kconfig_get(&c, "CONFIG_HUGE")), n - 13);
	kf_kconfig_release(&c);
	free(big);
	kf_kconfig_parse("", 0, &c);
	assert_int_equal(c.n, 0);
	kf_kconfig_release(&c);
}

static void normalise__ignores_order_comments_and_unset(void **state)
{
	static const char a[] = "# c\nCONFIG_B=1\nCONFIG_A=\"x\"\n# CONFIG_C is not set\n";
	static const char b[] = "CONFIG_A=\"x\"\r\n\nCONFIG_B=1\n";
	struct kf_kconfig ca, cb;
	char *na, *nb;

	(void)state;
	kf_kconfig_parse(a, sizeof(a) - 1, &ca);
	kf_kconfig_parse(b, sizeof(b) - 1, &cb);
	na = kf_kconfig_normalise(&ca);
	nb = kf_kconfig_normalise(&cb);
	assert_string_equal(na, nb);
	assert_string_equal(na, "CONFIG_A=x\nCONFIG_B=1\n");
	free(na);
	free(nb);
	kf_kconfig_release(&ca);
	kf_kconfig_release(&cb);
}

static int check(const char *text, const char *registered, const char *device,
		 struct kf_error *e)
{
	struct kf_kconfig c;
	int r;

	kf_kconfig_parse(text, strlen(text), &c);
	r = kf_kconfig_check_mcu(&c, "octopus", registered, device, "/cfg/.config",
				 true, e);
	kf_kconfig_release(&c);
	return r;
}

static void mcu__validation_matrix(void **state)
{
	static const char f446[] = "CONFIG_MCU=\"stm32f446xx\"\nCONFIG_BOARD_DIRECTORY=\"stm32\"\n";
	static const char host[] = "CONFIG_BOARD_DIRECTORY=\"linux\"\nCONFIG_MACH_LINUX=y\n";
	struct kf_error e = KF_ERROR_INIT;

	(void)state;
	assert_int_equal(check(f446, "stm32f446xx", "stm32f446xx", &e), 0);
	assert_int_equal(check(f446, "stm32f446xx", NULL, &e), 0);
	assert_int_equal(check(f446, "stm32h723xx", "stm32f446xx", &e), KF_EREFUSED);
	assert_non_null(strstr(e.what, "stm32f446xx"));
	assert_non_null(strstr(e.what, "stm32h723xx"));
	assert_int_equal(check(f446, "stm32f446xx", "rp2040", &e), KF_EREFUSED);
	assert_non_null(strstr(e.what, "rp2040"));
	assert_int_equal(check(host, "stm32f446xx", NULL, &e), KF_EREFUSED);
	assert_non_null(strstr(e.what, "Linux host MCU"));
	{
		struct kf_kconfig c;

		/* building one is fine; only flashing it is refused */
		kf_kconfig_parse(host, strlen(host), &c);
		assert_int_equal(kf_kconfig_check_mcu(&c, "h", "x", NULL, "p", false, &e),
				 KF_HOST_MCU);
		kf_kconfig_release(&c);
	}
	assert_int_equal(check("CONFIG_X=y\n", "stm32f446xx", NULL, &e), KF_EREFUSED);
	assert_non_null(strstr(e.what, "no MCU"));
	assert_int_equal(kf_exit_code(KF_EREFUSED, &e), 3);
	kf_error_release(&e);
}

/* ---- the stamp ------------------------------------------------------------- */

#define CFG "/cfg/configs/octopus/.config"
#define OUT "/cache/kflash/build/octopus"

struct bw {
	struct fake_world w;
	struct kf_out out;
	struct kf_error err;
	struct kf_ctx ctx;
	struct kf_settings s;
	struct kf_board b;
	FILE *sink;
};

static int bw_setup(void **state)
{
	struct bw *t = kf_xcalloc(1, sizeof(*t));

	fake_world_init(&t->w);
	fake_setenv(&t->w, "XDG_CACHE_HOME", "/cache");
	t->sink = fopen("/dev/null", "w");
	kf_out_init(&t->out, &t->w.ops, t->sink, t->sink, &(struct kf_out_opts){ 0 });
	t->ctx = (struct kf_ctx){ .ops = &t->w.ops, .out = &t->out, .err = &t->err,
				  .config_dir = "/cfg" };
	kf_settings_defaults(&t->s);
	free(t->s.klipper_dir);
	t->s.klipper_dir = kf_xstrdup("/klipper");
	t->b = (struct kf_board){ .key = "octopus", .name = "Octopus", .mcu = "stm32f446xx",
				  .pattern = "p", .flashable = true };
	fake_put_file(&t->w, "/klipper/Makefile", "");
	fake_put_file(&t->w, "/klipper/src/Kconfig", "");
	fake_put_file(&t->w, CFG, "CONFIG_MCU=\"stm32f446xx\"\n");
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .run_ms = 100 });
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = " -j",
		.output = "  Compiling out/src/sched.o\n  Linking out/klipper.elf",
		.run_ms = 20000, .writes = OUT "/klipper.bin", .writes_data = "FW" });
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "git", .output = "v0.13.0-1-gabc" });
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "git", .match = "rev-parse",
						 .output = "abc123" });
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "git", .match = "diff",
						 .output = "" });
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "arm-none-eabi-gcc",
		.output = "arm-none-eabi-gcc (15:12.2.rel1-1) 12.2.1 20221205" });
	*state = t;
	return 0;
}

static int bw_teardown(void **state)
{
	struct bw *t = *state;

	kf_out_release(&t->out);
	fclose(t->sink);
	kf_error_release(&t->err);
	free(t->s.klipper_dir);
	free(t->s.katapult_dir);
	free(t->s.python);
	free(t->s.service);
	free(t->s.moonraker_url);
	fake_world_release(&t->w);
	free(t);
	return 0;
}

/* Builds once; returns whether the compiler ran. */
static bool build_ran(struct bw *t, bool rebuild)
{
	struct kf_build_result r;
	struct kf_build_opts o = { .rebuild = rebuild };
	size_t before = t->w.n_procs, i;
	bool ran = false;

	assert_int_equal(kf_build(&t->ctx, &t->s, &t->b, &o, &t->err, &r), 0);
	assert_string_equal(r.firmware, OUT "/klipper.bin");
	for (i = before; i < t->w.n_procs; i++)
		if (t->w.procs[i].prog->match && strcmp(t->w.procs[i].prog->match, " -j") == 0)
			ran = true;
	assert_int_equal(r.up_to_date, !ran);
	kf_build_result_release(&r);
	return ran;
}

static void stamp__second_build_is_skipped(void **state)
{
	struct bw *t = *state;

	assert_true(build_ran(t, false));
	assert_false(build_ran(t, false));
	{
		/* the log holds what make printed, streamed line by line */
		const struct fake_file *log = fake_get_file(&t->w, OUT "/build.log");

		assert_non_null(log);
		assert_non_null(strstr(log->data, "  Compiling out/src/sched.o\n"));
	}
	/* --rebuild cleans and builds anyway */
	assert_true(build_ran(t, true));
	assert_true(fake_did(&t->w, "spawn make -C /klipper KCONFIG_CONFIG=" CFG
			     " OUT=" OUT "/ clean"));
}

static void stamp__each_input_change_rebuilds(void **state)
{
	struct bw *t = *state;

	assert_true(build_ran(t, false));
	/* a config change */
	fake_put_file(&t->w, CFG, "CONFIG_MCU=\"stm32f446xx\"\nCONFIG_USB=y\n");
	assert_true(build_ran(t, false));
	assert_false(build_ran(t, false));
	/* only comments and order changed: same firmware */
	fake_put_file(&t->w, CFG, "# edited\nCONFIG_USB=y\nCONFIG_MCU=\"stm32f446xx\"\n");
	assert_false(build_ran(t, false));
	/* Klipper updated */
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "git", .match = "rev-parse",
						 .output = "def456" });
	assert_true(build_ran(t, false));
	/* uncommitted changes in the checkout */
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "git", .match = "diff",
						 .output = "+local change" });
	assert_true(build_ran(t, false));
	/* a new compiler */
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "arm-none-eabi-gcc",
		.output = "arm-none-eabi-gcc 13.2" });
	assert_true(build_ran(t, false));
	assert_false(build_ran(t, false));
}

/* How often line is in the transcript. */
static size_t count(const struct fake_world *w, const char *line)
{
	const char *p = w->transcript.data;
	size_t n = 0, len = strlen(line);

	while (p && (p = strstr(p, line)) != NULL) {
		if ((p == w->transcript.data || p[-1] == '\n') && (p[len] == '\n' || !p[len]))
			n++;
		p += len;
	}
	return n;
}

#define CLEAN "spawn make -C /klipper KCONFIG_CONFIG=" CFG " OUT=" OUT "/ clean"

static void build__failure_leaves_no_up_to_date_stamp_and_names_the_log(void **state)
{
	struct bw *t = *state;
	struct kf_build_result r;
	const struct fake_file *st;

	assert_true(build_ran(t, false));
	fake_put_file(&t->w, CFG, "CONFIG_MCU=\"stm32f446xx\"\nCONFIG_X=1\n");
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = " -j",
		.output = "src/sched.c:1: error: boom", .exit_code = 2, .run_ms = 10 });
	assert_int_equal(kf_build(&t->ctx, &t->s, &t->b, NULL, &t->err, &r), KF_EFAILED);
	assert_non_null(strstr(t->err.what, "the build failed"));
	kf_build_result_release(&r);
	/* the stamp names what built the objects left in OUT, but never
	 * reads as "up to date" */
	st = fake_get_file(&t->w, OUT "/kflash.stamp");
	assert_non_null(st);
	assert_memory_equal(st->data, "building\n", 9);
	/* fixed: builds again, on the objects of the same compiler (no clean) */
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = " -j",
		.run_ms = 100, .writes = OUT "/klipper.bin", .writes_data = "FW2" });
	assert_int_equal(count(&t->w, CLEAN), 1);	/* the first build's */
	assert_true(build_ran(t, false));
	assert_int_equal(count(&t->w, CLEAN), 1);
}

/* The end of a failed build's log is shown on stderr, with the log's path;
 * -q keeps it off the screen (the error still names the log). */
static void build__quiet_hides_the_log_tail(void **state)
{
	struct bw *t = *state;
	struct kf_build_result r;
	char *buf = NULL;
	size_t len = 0;
	FILE *err;
	int quiet;

	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = " -j",
		.output = "src/sched.c:1: error: boom", .exit_code = 2, .run_ms = 10 });
	for (quiet = 0; quiet <= 1; quiet++) {
		err = open_memstream(&buf, &len);
		kf_out_release(&t->out);
		kf_out_init(&t->out, &t->w.ops, t->sink, err, &(struct kf_out_opts){
			.verbosity = quiet ? KF_QUIET : KF_NORMAL });
		kf_error_release(&t->err);
		assert_int_equal(kf_build(&t->ctx, &t->s, &t->b, NULL, &t->err, &r), KF_EFAILED);
		kf_build_result_release(&r);
		fclose(err);
		if (quiet) {
			assert_null(strstr(buf, "error: boom"));
			assert_null(strstr(buf, "last lines of"));
		} else {
			assert_non_null(strstr(buf, "--- last lines of " OUT "/build.log ---\n"));
			assert_non_null(strstr(buf, "src/sched.c:1: error: boom\n--- end ---\n"));
		}
		assert_true(t->err.n_steps > 0);
		assert_non_null(strstr(t->err.steps[0], "less " OUT "/build.log"));
		free(buf);
		buf = NULL;
	}
}

/* A Klipper update that changes no firmware source compiles nothing: the
 * dictionary (and so the version the board reports) would stay the old
 * one. A new compiler would leave every old object in place. Both start
 * from an empty OUT. */
static void stamp__new_klipper_version_or_compiler_cleans_out_first(void **state)
{
	struct bw *t = *state;
	size_t cleans;

	assert_true(build_ran(t, false));
	cleans = count(&t->w, CLEAN);
	/* a config change: make sees it, no clean needed */
	fake_put_file(&t->w, CFG, "CONFIG_MCU=\"stm32f446xx\"\nCONFIG_USB=y\n");
	assert_true(build_ran(t, false));
	assert_int_equal(count(&t->w, CLEAN), cleans);
	/* only the version changed (a new tag, a klippy/ commit) */
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "git", .output = "v0.13.1-0-gdef" });
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = " -j",
		.run_ms = 100, .writes = OUT "/klipper.dict",
		.writes_data = "{\"version\": \"v0.13.1-0-gdef\", \"config\": "
			       "{\"MCU\": \"stm32f446xx\"}}" });
	assert_true(build_ran(t, false));
	assert_int_equal(count(&t->w, CLEAN), cleans + 1);
	assert_false(build_ran(t, false));
	/* a new compiler */
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "arm-none-eabi-gcc",
		.output = "arm-none-eabi-gcc 13.2" });
	assert_true(build_ran(t, false));
	assert_int_equal(count(&t->w, CLEAN), cleans + 2);
	assert_false(build_ran(t, false));
}

/* The firmware's own dictionary decides: it must carry the checkout's
 * version (a dirty tree's build adds its time and host) and the board's MCU. */
static void build__verifies_the_dictionary_of_the_built_firmware(void **state)
{
	struct bw *t = *state;
	struct kf_build_result r;

	assert_true(build_ran(t, false));
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = " -j",
		.run_ms = 100, .writes = OUT "/klipper.dict",
		.writes_data = "{\"version\": \"v0.13.0-1-gabc\", \"config\": "
			       "{\"MCU\": \"stm32f446xx\"}}" });
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "git", .output = "v0.13.1-0-gdef" });
	assert_int_equal(kf_build(&t->ctx, &t->s, &t->b, NULL, &t->err, &r), KF_EFAILED);
	assert_non_null(strstr(t->err.what, "carries Klipper v0.13.0-1-gabc, not the "
			       "checkout's v0.13.1-0-gdef"));
	kf_build_result_release(&r);
	kf_error_release(&t->err);

	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "git", .output = "v0.13.0-1-gabc-dirty" });
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = " -j",
		.run_ms = 100, .writes = OUT "/klipper.dict",
		.writes_data = "{\"version\": \"v0.13.0-1-gabc-dirty-20260102_030405-pi\", "
			       "\"config\": {\"MCU\": \"stm32f446xx\"}}" });
	assert_int_equal(kf_build(&t->ctx, &t->s, &t->b, NULL, &t->err, &r), 0);
	kf_build_result_release(&r);

	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = " -j",
		.run_ms = 100, .writes = OUT "/klipper.dict",
		.writes_data = "{\"version\": \"v0.13.0-1-gabc-dirty\", "
			       "\"config\": {\"MCU\": \"stm32f103xe\"}}" });
	fake_put_file(&t->w, CFG, "CONFIG_MCU=\"stm32f446xx\"\nCONFIG_Y=1\n");
	assert_int_equal(kf_build(&t->ctx, &t->s, &t->b, NULL, &t->err, &r), KF_EREFUSED);
	assert_non_null(strstr(t->err.what, "is for stm32f103xe"));
	kf_build_result_release(&r);
}

#define F103 "CONFIG_MACH_STM32=y\nCONFIG_BOARD_DIRECTORY=\"stm32\"\n" \
	"CONFIG_MCU=\"stm32f103xe\"\nCONFIG_MACH_STM32F103=y\n" \
	"CONFIG_FLASH_APPLICATION_ADDRESS=0x8002000\n"
#define F446 "CONFIG_MACH_STM32=y\nCONFIG_BOARD_DIRECTORY=\"stm32\"\n" \
	"CONFIG_MCU=\"stm32f446xx\"\nCONFIG_MACH_STM32F446=y\n" \
	"CONFIG_FLASH_BOOT_ADDRESS=0x8000000\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8008000\n"

/* Real Kconfig takes the chip from the MACH_ symbols: a config that names
 * CONFIG_MCU without them becomes stm32f103xe. Checked after olddefconfig,
 * before anything compiles. */
static void build__checks_the_config_olddefconfig_completed(void **state)
{
	struct bw *t = *state;
	struct kf_build_result r;

	fake_put_file(&t->w, CFG, "CONFIG_MCU=\"stm32f446xx\"\nCONFIG_MACH_STM32=y\n");
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = "olddefconfig",
		.run_ms = 100, .writes = CFG, .writes_data = F103 });
	assert_int_equal(kf_build(&t->ctx, &t->s, &t->b, NULL, &t->err, &r), KF_EREFUSED);
	assert_non_null(strstr(t->err.what, "the config is for stm32f103xe but the board "
			       "is registered as stm32f446xx"));
	assert_non_null(strstr(t->err.cause, "olddefconfig completed"));
	assert_non_null(strstr(t->err.cause, "CONFIG_MACH_STM32F446=y"));
	assert_non_null(strstr(t->err.cause, "which says stm32f446xx"));
	assert_int_equal(count(&t->w, "spawn make -C /klipper KCONFIG_CONFIG=" CFG " OUT="
			       OUT "/ -j2") + count(&t->w, "spawn make -C /klipper KCONFIG_CONFIG="
			       CFG " OUT=" OUT "/ -j1"), 0);
	kf_build_result_release(&r);
	kf_error_release(&t->err);

	/* a minimal config (the menu symbols and the offset): completed and built */
	fake_put_file(&t->w, CFG, "CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32F446=y\n"
		      "CONFIG_STM32_FLASH_START_8000=y\n");
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = "olddefconfig",
		.run_ms = 100, .writes = CFG, .writes_data = F446 });
	assert_int_equal(kf_build(&t->ctx, &t->s, &t->b, NULL, &t->err, &r), 0);
	assert_string_equal(kf_kconfig_get(&r.cfg, "CONFIG_FLASH_APPLICATION_ADDRESS"),
			    "0x8008000");
	assert_false(kf_kconfig_no_bootloader(&r.cfg));
	kf_build_result_release(&r);
}

/* A dry run must give the real run's answer without touching the cached
 * config: olddefconfig runs on a copy. */
static void preview__completes_a_copy_and_leaves_the_config_alone(void **state)
{
	struct bw *t = *state;
	struct kf_kconfig saved, cfg;
	const char *copy = "/cache/kflash/dry-run/octopus/.config";
	const struct fake_file *f;

	fake_put_file(&t->w, CFG, "CONFIG_MACH_STM32=y\n");
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = "olddefconfig",
		.run_ms = 100, .writes = copy, .writes_data = F103 });
	assert_int_equal(kf_config_preview(&t->ctx, &t->s, &t->b, &t->err, &saved, &cfg), 0);
	assert_string_equal(kf_kconfig_get(&cfg, "CONFIG_MCU"), "stm32f103xe");
	assert_null(kf_kconfig_get(&saved, "CONFIG_MCU"));
	assert_true(fake_did(&t->w, "spawn make -C /klipper KCONFIG_CONFIG=" "/cache/kflash/"
			     "dry-run/octopus/.config OUT=/cache/kflash/dry-run/octopus/out/ "
			     "olddefconfig"));
	f = fake_get_file(&t->w, CFG);
	assert_string_equal(f->data, "CONFIG_MACH_STM32=y\n");
	assert_int_equal(kf_build_check_config(&t->ctx, &t->b, &saved, &cfg, CFG, NULL, true,
					       &t->err),
			 KF_EREFUSED);
	assert_non_null(strstr(t->err.what, "stm32f103xe"));
	kf_kconfig_release(&saved);
	kf_kconfig_release(&cfg);
}

static void build__times_out_and_kills_make(void **state)
{
	struct bw *t = *state;
	struct kf_build_result r;

	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = " -j",
						 .run_ms = INT64_MAX });
	assert_int_equal(kf_build(&t->ctx, &t->s, &t->b, NULL, &t->err, &r), KF_EFAILED);
	assert_non_null(strstr(t->err.what, "timed out after 300 s"));
	assert_true(fake_did(&t->w, "kill -15 make"));
	assert_int_equal(fake_running(&t->w), 0);
	kf_build_result_release(&r);
}

static void build__without_a_cached_config_never_runs_make(void **state)
{
	struct bw *t = *state;
	struct kf_build_result r;
	const struct fake_file *f;

	/* remove the config */
	f = fake_get_file(&t->w, CFG);
	assert_non_null(f);
	assert_int_equal(kf_os_unlink(&t->w.ops, CFG), 0);
	assert_int_equal(kf_build(&t->ctx, &t->s, &t->b, NULL, &t->err, &r), KF_EFAILED);
	assert_non_null(strstr(t->err.what, "no firmware config"));
	assert_int_equal(t->w.n_procs, 0);
	kf_build_result_release(&r);
}

/* Klipper's Makefile takes OUT= and KCONFIG_CONFIG= unquoted: a cache or
 * config directory with a space (or a '$', '#', ':' ...) would build into
 * the wrong place or not at all. It is refused before make runs, naming
 * the directory and the way out. */
static void build__a_path_make_would_split_is_refused_before_make(void **state)
{
	static const char *const caches[] = { "/home/pi pi/.cache", "/c$(HOME)",
					      "/c#x", "/c:x" };
	struct bw *t = *state;
	struct kf_build_result r;
	size_t i;

	for (i = 0; i < sizeof(caches) / sizeof(*caches); i++) {
		fake_setenv(&t->w, "XDG_CACHE_HOME", caches[i]);
		assert_int_equal(kf_build(&t->ctx, &t->s, &t->b, NULL, &t->err, &r),
				 KF_EINPUT);
		assert_non_null(strstr(t->err.what, caches[i]));
		assert_non_null(strstr(t->err.what, "Klipper's make"));
		assert_non_null(strstr(t->err.steps[0], "XDG_CACHE_HOME"));
		assert_int_equal(t->w.n_procs, 0);
		kf_build_result_release(&r);
		kf_error_release(&t->err);
	}
	fake_setenv(&t->w, "XDG_CACHE_HOME", "/cache");
	t->ctx.config_dir = "/home/pi pi/.config/kflash";
	assert_int_equal(kf_build(&t->ctx, &t->s, &t->b, NULL, &t->err, &r), KF_EINPUT);
	assert_non_null(strstr(t->err.what, "/home/pi pi/.config/kflash"));
	assert_non_null(strstr(t->err.steps[0], "XDG_CONFIG_HOME"));
	assert_int_equal(t->w.n_procs, 0);
	kf_build_result_release(&r);
}

static void seed__menu_symbols_of_known_mcus(void **state)
{
	static const char *const cases[][2] = {
		{ "stm32f446xx", "CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32F446=y\n" },
		{ "stm32g0b1xx", "CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32G0B1=y\n" },
		{ "stm32f031x6", "CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32F031=y\n" },
		{ "rp2040", "CONFIG_MACH_RPXXXX=y\nCONFIG_MACH_RP2040=y\n" },
		{ "lpc1769", "CONFIG_MACH_LPC176X=y\nCONFIG_MACH_LPC1769=y\n" },
		{ "samd21g18a", "CONFIG_MACH_ATSAMD=y\nCONFIG_MACH_SAMD21G18=y\n" },
		{ "same70q20b", "CONFIG_MACH_ATSAM=y\nCONFIG_MACH_SAME70Q20B=y\n" },
		{ "atmega2560", "CONFIG_MACH_AVR=y\nCONFIG_MACH_atmega2560=y\n" },
		{ "linux", "CONFIG_MACH_LINUX=y\n" },
	};
	size_t i;
	char *s;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = kf_kconfig_seed(cases[i][0]);
		assert_non_null(s);
		assert_string_equal(s, cases[i][1]);
		free(s);
	}
	assert_null(kf_kconfig_seed("esp32"));
	assert_null(kf_kconfig_seed(NULL));
}

static void no_bootloader__the_app_at_the_boot_address(void **state)
{
	static const char *const cases[][2] = {
		{ "CONFIG_FLASH_BOOT_ADDRESS=0x8000000\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8000000\n", "y" },
		{ "CONFIG_FLASH_BOOT_ADDRESS=0x8000000\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8008000\n", "n" },
		/* the RP2040 boots after its stage2: 0x10000100 is "No bootloader" */
		{ "CONFIG_FLASH_BOOT_ADDRESS=0x10000100\nCONFIG_FLASH_APPLICATION_ADDRESS=0x10000100\n", "y" },
		{ "CONFIG_FLASH_BOOT_ADDRESS=0x10000100\nCONFIG_FLASH_APPLICATION_ADDRESS=0x10004000\n", "n" },
		{ "CONFIG_FLASH_BOOT_ADDRESS=0x0\nCONFIG_FLASH_APPLICATION_ADDRESS=0x0000\n", "y" },
		{ "CONFIG_MACH_LINUX=y\n", "n" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kf_kconfig c;

		kf_kconfig_parse(cases[i][0], strlen(cases[i][0]), &c);
		assert_int_equal(kf_kconfig_no_bootloader(&c), cases[i][1][0] == 'y');
		kf_kconfig_release(&c);
	}
}

/* ---- priorities and menuconfig, seen through a spy on spawn ----------------- */

static struct {
	const struct kf_ops *inner;
	struct fake_world *w;
	int idle, normal;	/* make runs */
	char *at_menuconfig;	/* the config menuconfig was given */
	bool menuconfig_idle;
} spy;

static int spy_spawn(void *ctx, const struct kf_spawn_req *req, struct kf_proc *p)
{
	size_t i;
	bool menu = false;

	(void)ctx;
	for (i = 0; req->argv[i]; i++)
		menu |= strcmp(req->argv[i], "menuconfig") == 0;
	if (menu) {
		const struct fake_file *f = fake_get_file(spy.w, CFG);

		free(spy.at_menuconfig);
		spy.at_menuconfig = f ? kf_xstrdup(f->data) : NULL;
		spy.menuconfig_idle = req->idle;
	} else if (strcmp(req->argv[0], "make") == 0) {
		*(req->idle ? &spy.idle : &spy.normal) += 1;
	}
	return spy.inner->spawn(spy.inner->ctx, req, p);
}

static struct kf_ops spy_ops;

static void spy_on(struct bw *t)
{
	memset(&spy, 0, sizeof(spy));
	spy.inner = &t->w.ops;
	spy.w = &t->w;
	spy_ops = t->w.ops;
	spy_ops.spawn = spy_spawn;
	t->ctx.ops = &spy_ops;
}

static void build__every_make_runs_at_idle_priority(void **state)
{
	struct bw *t = *state;

	spy_on(t);
	assert_true(build_ran(t, true));	/* clean, olddefconfig, the build */
	assert_true(spy.idle >= 3);
	assert_int_equal(spy.normal, 0);
}

/* make runs one job per CPU the host has; a host that cannot say builds
 * with one job, never not at all. */
static void build__runs_one_make_job_per_cpu(void **state)
{
	struct bw *t = *state;

	t->w.cpus = 3;
	assert_true(build_ran(t, true));
	assert_true(fake_did(&t->w, "spawn make -C /klipper KCONFIG_CONFIG=" CFG
			     " OUT=" OUT "/ -j3"));
	t->w.cpus = -EINVAL;
	assert_true(build_ran(t, true));
	assert_true(fake_did(&t->w, "spawn make -C /klipper KCONFIG_CONFIG=" CFG
			     " OUT=" OUT "/ -j1"));
}

static void menuconfig__first_one_starts_from_the_boards_mcu(void **state)
{
	struct bw *t = *state;

	spy_on(t);
	t->ctx.interactive = true;
	assert_int_equal(kf_os_unlink(&t->w.ops, CFG), 0);
	/* the user saves a config */
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = "menuconfig",
		.run_ms = 100, .writes = CFG, .writes_data = F446 });
	assert_int_equal(kf_menuconfig(&t->ctx, &t->s, &t->b, &t->err), 0);
	assert_string_equal(spy.at_menuconfig,
			    "CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32F446=y\n");
	assert_false(spy.menuconfig_idle);
	/* saved again unchanged: says so */
	assert_int_equal(kf_menuconfig(&t->ctx, &t->s, &t->b, &t->err), KF_CONFIG_UNCHANGED);
	assert_string_equal(spy.at_menuconfig, F446);
	free(spy.at_menuconfig);
	spy.at_menuconfig = NULL;
}

static void menuconfig__leaving_a_new_config_unsaved_leaves_none(void **state)
{
	struct bw *t = *state;

	spy_on(t);
	t->ctx.interactive = true;
	assert_int_equal(kf_os_unlink(&t->w.ops, CFG), 0);
	fake_add_prog(&t->w, (struct fake_prog){ .argv0 = "make", .match = "menuconfig",
						 .run_ms = 100 });
	assert_int_equal(kf_menuconfig(&t->ctx, &t->s, &t->b, &t->err), KF_EFAILED);
	assert_non_null(strstr(t->err.what, "ended without saving"));
	assert_non_null(spy.at_menuconfig);	/* it was seeded */
	assert_null(fake_get_file(&t->w, CFG));	/* and the seed is gone */
	free(spy.at_menuconfig);
	spy.at_menuconfig = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse__handles_what_real_configs_contain),
		cmocka_unit_test(parse__survives_huge_lines_and_empty_input),
		cmocka_unit_test(normalise__ignores_order_comments_and_unset),
		cmocka_unit_test(mcu__validation_matrix),
		cmocka_unit_test_setup_teardown(stamp__second_build_is_skipped, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(stamp__each_input_change_rebuilds, bw_setup, bw_teardown),
		cmocka_unit_test(seed__menu_symbols_of_known_mcus),
		cmocka_unit_test(no_bootloader__the_app_at_the_boot_address),
		cmocka_unit_test_setup_teardown(build__failure_leaves_no_up_to_date_stamp_and_names_the_log, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(build__quiet_hides_the_log_tail, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(stamp__new_klipper_version_or_compiler_cleans_out_first, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(build__verifies_the_dictionary_of_the_built_firmware, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(build__checks_the_config_olddefconfig_completed, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(preview__completes_a_copy_and_leaves_the_config_alone, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(build__every_make_runs_at_idle_priority, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(build__runs_one_make_job_per_cpu, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(menuconfig__first_one_starts_from_the_boards_mcu, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(menuconfig__leaving_a_new_config_unsaved_leaves_none, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(build__times_out_and_kills_make, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(build__without_a_cached_config_never_runs_make, bw_setup, bw_teardown),
		cmocka_unit_test_setup_teardown(build__a_path_make_would_split_is_refused_before_make, bw_setup, bw_teardown),
	};

	return cmocka_run_group_tests_name("build", tests, NULL, NULL);
}
