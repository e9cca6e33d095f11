/* test_flash.c - telling flashtool's and make flash's outcomes apart from
 * their output and exit: exit 0 alone proves nothing, and make's own
 * "Error 255" says nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "kflash/flash.h"

static enum kf_flash_class cls(const char *out, int code)
{
	struct kf_exit ex = { .kind = KF_EXIT_EXITED, .code = code };

	return kf_flashtool_classify(out, &ex);
}

static void classify__each_failure_class_from_real_output(void **state)
{
	(void)state;
	assert_int_equal(cls("Verification Complete: SHA = 4F13\nProgramming Complete\n", 0),
			 KF_FLASH_OK);
	/* the board came back as something else: exit 0, nothing written */
	assert_int_equal(cls("Detected new USB Device: 0483:df11\nDevice is not Katapult, "
			     "exiting...\nBootloader Request Complete\n", 0),
			 KF_FLASH_NOT_KATAPULT);
	assert_int_equal(cls("Attempting to connect\n", 0), KF_FLASH_NO_COMPLETE);
	assert_int_equal(cls("The pyserial python package was not found.  To install "
			     "run the following command in a terminal:\n", 1),
			 KF_FLASH_NO_PYSERIAL);
	assert_int_equal(cls("Serial device /dev/ttyACM0 in use by another program.\n"
			     "Process ID: 812\nProcess klippy\nFlash Tool Error\n", 1),
			 KF_FLASH_IN_USE);
	assert_int_equal(cls("MCU returned by Katapult does not match MCU identified in "
			     "klipper.bin.\n", 1), KF_FLASH_MCU_MISMATCH);
	assert_int_equal(cls("Flash Tool Error\nError sending command [CONNECT] to Device\n", 1),
			 KF_FLASH_NO_ANSWER);
	assert_int_equal(cls("Flash Tool Error\nChecksum mismatch: Verification failed\n", 1),
			 KF_FLASH_WRITE_ERROR);
	assert_int_equal(cls("python3: can't open file '/x/scripts/flashtool.py': [Errno 2] "
			     "No such file or directory\n", 2), KF_FLASH_NOT_STARTED);
	assert_int_equal(cls("something else entirely\n", 1), KF_FLASH_FAILED);
}

static void classify__how_it_ended_comes_first(void **state)
{
	struct kf_exit ex = { .kind = KF_EXIT_TIMED_OUT };

	(void)state;
	assert_int_equal(kf_flashtool_classify("Programming Complete", &ex), KF_FLASH_TIMED_OUT);
	ex.kind = KF_EXIT_INTERRUPTED;
	assert_int_equal(kf_flashtool_classify("", &ex), KF_FLASH_INTERRUPTED);
	ex.kind = KF_EXIT_EXEC_FAILED;
	assert_int_equal(kf_flashtool_classify(NULL, &ex), KF_FLASH_NOT_STARTED);
}

static void app_start__parsed_from_status_mode(void **state)
{
	uint32_t a = 0;

	(void)state;
	assert_int_equal(kf_flashtool_app_start("Katapult Connected\nSoftware Version: "
		"v0.0.1\nProtocol Version: 1.1.0\nBlock Size: 64 bytes\nApplication Start: "
		"0x8008000\nMCU type: stm32f446xx\n", &a), 0);
	assert_int_equal(a, 0x8008000);
	assert_int_equal(kf_flashtool_app_start("Application Start: 0x10004000", &a), 0);
	assert_int_equal(a, 0x10004000);
	assert_int_equal(kf_flashtool_app_start("no such line", &a), -2);
}

static void errors__each_class_has_its_own_steps(void **state)
{
	static const enum kf_flash_class all[] = {
		KF_FLASH_NO_PYSERIAL, KF_FLASH_IN_USE, KF_FLASH_NOT_KATAPULT,
		KF_FLASH_NO_ANSWER, KF_FLASH_MCU_MISMATCH, KF_FLASH_WRITE_ERROR,
		KF_FLASH_NO_COMPLETE, KF_FLASH_TIMED_OUT, KF_FLASH_NOT_STARTED,
		KF_FLASH_INTERRUPTED,
	};
	struct kf_settings s;
	char *seen[16];
	size_t i, k;

	(void)state;
	kf_settings_defaults(&s);
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		struct kf_error e = KF_ERROR_INIT;

		kf_flash_error(&e, all[i], "octopus", "out", "cmd", &s);
		assert_non_null(e.what);
		assert_true(e.n_steps > 0);
		/* a user can tell every class apart by what it says */
		seen[i] = strdup(e.what);
		for (k = 0; k < i; k++)
			if (strcmp(seen[k], seen[i]) == 0)
				fail_msg("classes %d and %d say the same: %s",
					 all[k], all[i], seen[i]);
		kf_error_release(&e);
	}
	for (k = 0; k < i; k++)
		free(seen[k]);
	free(s.klipper_dir);
	free(s.katapult_dir);
	free(s.python);
	free(s.service);
	free(s.moonraker_url);
}


/* ---- make flash -------------------------------------------------------------- */

/* What Klipper's make flash printed on a Pi, for an STM32F446 board that
 * did not come back as Katapult, with sudo and without dfu-util. */
#define STM32_HEAD \
	"  Flashing /cache/kflash/build/octopus/klipper.bin to /dev/ttyACM0\n" \
	"Entering bootloader on /dev/ttyACM0\n" \
	"Device reconnect on /sys/devices/platform/scb/fd500000.pcie/pci0000:00/" \
	"0000:00:00.0/0000:01:00.0/usb1/1-1/1-1.2/1-1.2:1.0\n"
#define STM32_HELP \
	"\nFailed to flash to /dev/ttyACM0: Error running dfu-util\n\n" \
	"If the device is already in bootloader mode it can be flashed with the\n" \
	"following command:\n  make flash FLASH_DEVICE=0483:df11\n  OR\n" \
	"  make flash FLASH_DEVICE=1209:beba\n\n" \
	"If attempting to flash via 3.3V serial, then use:\n" \
	"  make serialflash FLASH_DEVICE=/dev/ttyACM0\n\n"
#define SUDO_NO_DFU_UTIL STM32_HEAD \
	"sudo dfu-util -p 1-1.2 -R -a 0 -s 0x8008000:leave -D /cache/kflash/build/" \
	"octopus/klipper.bin\n\nsudo: dfu-util: command not found\n" STM32_HELP \
	"make: *** [src/stm32/Makefile:107: flash] Error 255\n"
/* with NOSUDO=1 python itself cannot find it: a traceback, exit 1 */
#define NOSUDO_NO_DFU_UTIL STM32_HEAD \
	"dfu-util -p 1-1.2 -R -a 0 -s 0x8008000:leave -D out/klipper.bin\n\n" \
	"Traceback (most recent call last):\n" \
	"  File \"/home/pi/klipper/scripts/flash_usb.py\", line 139, in call_dfuutil\n" \
	"    res = subprocess.call(args)\n" \
	"FileNotFoundError: [Errno 2] No such file or directory: 'dfu-util'\n" \
	"make: *** [src/stm32/Makefile:107: flash] Error 1\n"
#define RP2040_NO_LIBUSB \
	"  Building rp2040_flash\n" \
	"gcc -c -Wall -ggdb -DHAS_LIBUSB -I../pico-sdk/ `pkg-config libusb-1.0 --cflags` " \
	"main.c -o main.o\n" \
	"Package libusb-1.0 was not found in the pkg-config search path.\n" \
	"Perhaps you should add the directory containing `libusb-1.0.pc'\n" \
	"to the PKG_CONFIG_PATH environment variable\n" \
	"Package 'libusb-1.0', required by 'virtual:world', not found\n" \
	"In file included from main.c:12:\n" \
	"picoboot_connection.h:14:10: fatal error: libusb.h: No such file or directory\n" \
	"   14 | #include <libusb.h>\n      |          ^~~~~~~~~~\n" \
	"compilation terminated.\n" \
	"make[1]: *** [Makefile:17: main.o] Error 1\n" \
	"make: *** [src/rp2040/Makefile:74: lib/rp2040_flash/rp2040_flash] Error 2\n"

static void mf(const char *out, int code, struct kf_tool_run *t)
{
	struct kf_exit ex = { .kind = KF_EXIT_EXITED, .code = code };

	memset(t, 0, sizeof(*t));
	kf_make_flash_classify(out, &ex, t);
}

static void make_flash__names_the_missing_tool_not_make_error(void **state)
{
	struct kf_tool_run t;

	(void)state;
	mf(SUDO_NO_DFU_UTIL, 2, &t);
	assert_int_equal(t.cls, KF_FLASH_TOOL_MISSING);
	assert_string_equal(t.tool, "dfu-util");
	assert_string_equal(t.cause, "sudo: dfu-util: command not found");
	assert_true(t.bootloader);
	kf_tool_run_release(&t);

	mf(NOSUDO_NO_DFU_UTIL, 2, &t);
	assert_int_equal(t.cls, KF_FLASH_TOOL_MISSING);
	assert_string_equal(t.tool, "dfu-util");
	assert_string_equal(t.cause, "FileNotFoundError: [Errno 2] No such file or "
			    "directory: 'dfu-util'");
	kf_tool_run_release(&t);

	mf("  Flashing out/klipper.elf.hex to /dev/ttyUSB0 via avrdude\n"
	   "/bin/sh: 1: avrdude: not found\n"
	   "make: *** [src/avr/Makefile:35: flash] Error 127\n", 2, &t);
	assert_int_equal(t.cls, KF_FLASH_TOOL_MISSING);
	assert_string_equal(t.tool, "avrdude");
	assert_false(t.bootloader);
	kf_tool_run_release(&t);
}

static void make_flash__libusb_headers_missing_for_rp2040_flash(void **state)
{
	struct kf_tool_run t;

	(void)state;
	mf(RP2040_NO_LIBUSB, 2, &t);
	assert_int_equal(t.cls, KF_FLASH_NEEDS_LIBUSB);
	assert_string_equal(t.cause, "picoboot_connection.h:14:10: fatal error: libusb.h: "
			    "No such file or directory");
	/* make stopped before flash_usb.py touched the board */
	assert_false(t.bootloader);
	kf_tool_run_release(&t);

	/* hid-flash is skipped with a message when libusb is missing, and
	 * only its use fails */
	mf("    hid-flash requires libusb-1.0, please install with:\n"
	   "    sudo apt-get install libusb-1.0\n" STM32_HEAD
	   "sudo lib/hidflash/hid-flash out/klipper.bin\n\n"
	   "sudo: lib/hidflash/hid-flash: command not found\n"
	   "make: *** [src/stm32/Makefile:107: flash] Error 255\n", 2, &t);
	assert_int_equal(t.cls, KF_FLASH_NEEDS_LIBUSB);
	assert_string_equal(t.tool, "hid-flash");
	kf_tool_run_release(&t);
}

static void make_flash__other_failures_by_their_own_words(void **state)
{
	struct kf_tool_run t;

	(void)state;
	mf(STM32_HEAD "sudo dfu-util -p 1-1.2 -D out/klipper.bin\n\n"
	   "sudo: a terminal is required to read the password; either use the -S "
	   "option to read from standard input or configure an askpass helper\n"
	   "sudo: a password is required\n" STM32_HELP "make: *** [flash] Error 255\n",
	   2, &t);
	assert_int_equal(t.cls, KF_FLASH_SUDO_PASSWORD);
	kf_tool_run_release(&t);

	mf(STM32_HEAD "dfu-util 0.11\n\ndfu-util: Cannot open DFU device 0483:df11 found "
	   "on devnum 7 (LIBUSB_ERROR_ACCESS)\n" STM32_HELP "make: *** [flash] Error 255\n",
	   2, &t);
	assert_int_equal(t.cls, KF_FLASH_NO_PERMISSION);
	assert_string_equal(t.tool, "dfu-util");
	assert_true(t.bootloader);
	kf_tool_run_release(&t);

	/* rp2040_flash exits 0 when it finds no board: nothing was written */
	mf("Entering bootloader on /dev/ttyACM1\nsudo lib/rp2040_flash/rp2040_flash "
	   "out/klipper.uf2 1 9\n\nLoaded UF2 image with 112 pages\n"
	   "No rp2040 in BOOTSEL mode was found\n", 0, &t);
	assert_int_equal(t.cls, KF_FLASH_NO_DEVICE);
	assert_string_equal(t.cause, "No rp2040 in BOOTSEL mode was found");
	kf_tool_run_release(&t);

	mf("Usage: flash_usb.py [options] -t <type> -d <device> <klipper.bin>\n\n"
	   "flash_usb.py: error: USB flashing is not supported for MCU 'stm32f031x6'\n"
	   "make: *** [src/stm32/Makefile:107: flash] Error 2\n", 2, &t);
	assert_int_equal(t.cls, KF_FLASH_UNSUPPORTED);
	kf_tool_run_release(&t);

	/* the Katapult path: flash_usb.py ran flashtool, which failed */
	mf(STM32_HEAD "/usr/bin/python3 lib/katapult/flashtool.py -d /dev/serial/by-path/"
	   "x -f out/klipper.bin\n\nSerial device /dev/serial/by-path/x in use by "
	   "another program.\nProcess ID: 812\nERROR:root:Flash Tool Error\n"
	   "Error running flashtool.py\nmake: *** [flash] Error 255\n", 2, &t);
	assert_int_equal(t.cls, KF_FLASH_IN_USE);
	kf_tool_run_release(&t);

	mf(STM32_HEAD "Katapult Connected\nProgramming Complete\n", 0, &t);
	assert_int_equal(t.cls, KF_FLASH_OK);
	kf_tool_run_release(&t);

	mf("  Flashing out/klipper.bin to /dev/ttyACM0\n\nFailed to flash to /dev/ttyACM0: "
	   "Unable to find serial 'by-path' folder\n\nIf the device is already in "
	   "bootloader mode it can be flashed with the\n"
	   "make: *** [src/stm32/Makefile:107: flash] Error 255\n", 2, &t);
	assert_int_equal(t.cls, KF_FLASH_FAILED);
	assert_string_equal(t.cause, "Failed to flash to /dev/ttyACM0: Unable to find "
			    "serial 'by-path' folder");
	kf_tool_run_release(&t);
}

static void make_flash__error_shows_cause_and_the_bootloader(void **state)
{
	struct kf_settings s;
	struct kf_tool_run t;
	struct kf_error e = KF_ERROR_INIT;
	struct fake_world w;
	bool apt = false;
	size_t i;

	(void)state;
	fake_world_init(&w);
	kf_settings_defaults(&s);
	mf(SUDO_NO_DFU_UTIL, 2, &t);
	kf_make_flash_error(&w.ops, &e, &t, "octopus", &s);
	assert_non_null(strstr(e.what, "make flash of octopus"));
	assert_non_null(strstr(e.what, "dfu-util is not installed"));
	assert_non_null(strstr(e.what, "bootloader"));
	assert_string_equal(e.cause, "sudo: dfu-util: command not found");
	for (i = 0; i < e.n_steps; i++)
		apt |= strstr(e.steps[i], "sudo apt-get install dfu-util") != NULL;
	assert_true(apt);
	kf_error_release(&e);
	kf_tool_run_release(&t);

	mf(RP2040_NO_LIBUSB, 2, &t);
	kf_make_flash_error(&w.ops, &e, &t, "sb2040", &s);
	assert_null(strstr(e.what, "bootloader"));
	assert_non_null(strstr(e.steps[0], "libusb-1.0-0-dev"));
	kf_error_release(&e);
	kf_tool_run_release(&t);
	fake_world_release(&w);
	free(s.klipper_dir);
	free(s.katapult_dir);
	free(s.python);
	free(s.service);
	free(s.moonraker_url);
}

static void make_flash__sudo_tool_per_mcu(void **state)
{
	(void)state;
	assert_string_equal(kf_make_flash_sudo_tool("stm32f446xx", "0x8008000"), "dfu-util");
	assert_string_equal(kf_make_flash_sudo_tool("stm32h723xx", NULL), "dfu-util");
	assert_string_equal(kf_make_flash_sudo_tool("lpc1769", NULL), "dfu-util");
	assert_string_equal(kf_make_flash_sudo_tool("stm32f103xe", "0x8000800"),
			    "lib/hidflash/hid-flash");
	assert_string_equal(kf_make_flash_sudo_tool("stm32f401xc", "0x8004000"),
			    "lib/hidflash/hid-flash");
	assert_string_equal(kf_make_flash_sudo_tool("rp2040", "0x10004000"),
			    "lib/rp2040_flash/rp2040_flash");
	assert_string_equal(kf_make_flash_sudo_tool("rp2350", NULL),
			    "lib/rp2040_flash/rp2040_flash");
	assert_null(kf_make_flash_sudo_tool("atmega2560", NULL));
	assert_null(kf_make_flash_sudo_tool("samd51j19a", NULL));
	assert_null(kf_make_flash_sudo_tool(NULL, NULL));
}

/* make flash in a world where sudo would ask for dfu-util's password */
struct mfw {
	struct fake_world w;
	struct kf_out out;
	struct kf_error err;
	FILE *sink;
	struct kf_settings s;
	struct kf_kconfig cfg;
};

static struct mfw *mfw_new(const char *sudo_out, int sudo_code)
{
	struct mfw *m = kf_xcalloc(1, sizeof(*m));
	static const char cfg[] = "CONFIG_MCU=\"stm32f446xx\"\n"
		"CONFIG_FLASH_APPLICATION_ADDRESS=0x8008000\n";

	fake_world_init(&m->w);
	m->sink = fopen("/dev/null", "w");
	kf_out_init(&m->out, &m->w.ops, m->sink, m->sink, &(struct kf_out_opts){ 0 });
	kf_settings_defaults(&m->s);
	kf_kconfig_parse(cfg, sizeof(cfg) - 1, &m->cfg);
	if (sudo_out)
		fake_add_prog(&m->w, (struct fake_prog){ .argv0 = "sudo", .output = sudo_out,
			.exit_code = sudo_code, .run_ms = 30 });
	else
		m->w.sudo_missing = true;
	fake_add_prog(&m->w, (struct fake_prog){ .argv0 = "make", .run_ms = 200,
		.output = "  Flashing out/klipper.bin to /dev/ttyACM0\nProgramming Complete\n" });
	return m;
}

static void mfw_free(struct mfw *m)
{
	kf_kconfig_release(&m->cfg);
	kf_out_release(&m->out);
	fclose(m->sink);
	kf_error_release(&m->err);
	fake_world_release(&m->w);
	free(m->s.klipper_dir);
	free(m->s.katapult_dir);
	free(m->s.python);
	free(m->s.service);
	free(m->s.moonraker_url);
	free(m);
}

static int mfw_run(struct mfw *m, struct kf_tool_run *t)
{
	struct kf_ctx ctx = { .ops = &m->w.ops, .out = &m->out, .err = &m->err };

	return kf_make_flash(&ctx, &m->s, "/klipper", "/cfg/.config", &m->cfg, "/out",
			     "/dev/ttyACM0", NULL, t);
}

static void make_flash__never_lets_sudo_prompt(void **state)
{
	struct kf_tool_run t;
	struct mfw *m;

	(void)state;
	/* sudo would ask: NOSUDO=1, so flash_usb.py never runs sudo */
	m = mfw_new("sudo: a password is required", 1);
	assert_int_equal(mfw_run(m, &t), 0);
	assert_true(fake_did(&m->w, "spawn sudo -n -l dfu-util"));
	assert_true(fake_did(&m->w, "spawn make -C /klipper KCONFIG_CONFIG=/cfg/.config "
			     "OUT=/out/ flash FLASH_DEVICE=/dev/ttyACM0 NOSUDO=1"));
	assert_true(t.nosudo);
	assert_int_equal(t.cls, KF_FLASH_OK);
	kf_tool_run_release(&t);
	mfw_free(m);

	/* no sudo at all (a root shell in a container): NOSUDO=1 as well */
	m = mfw_new(NULL, 0);
	assert_int_equal(mfw_run(m, &t), 0);
	assert_true(t.nosudo);
	kf_tool_run_release(&t);
	mfw_free(m);

	/* sudo runs dfu-util without a password: make flash as Klipper has it */
	m = mfw_new("/usr/bin/dfu-util", 0);
	assert_int_equal(mfw_run(m, &t), 0);
	assert_true(fake_did(&m->w, "spawn make -C /klipper KCONFIG_CONFIG=/cfg/.config "
			     "OUT=/out/ flash FLASH_DEVICE=/dev/ttyACM0"));
	assert_false(t.nosudo);
	kf_tool_run_release(&t);
	mfw_free(m);
}

/* make passes FLASH_DEVICE to a shell inside double quotes ("$(FLASH_DEVICE)"
 * in Klipper's src/<arch>/Makefile): a device name that shell or make
 * would read as code is never handed to it. */
static void make_flash__never_hands_make_a_device_name_a_shell_would_run(void **state)
{
	static const char *const bad[] = {
		"/dev/serial/by-id/usb-x_\"$(reboot)\"-if00",
		"/dev/serial/by-id/usb-x_`reboot`-if00",
		"/dev/serial/by-id/usb-x_$(shell reboot)-if00",
		"/dev/serial/by-id/usb-x_a b-if00",
		"/dev/serial/by-id/usb-x_a\\b-if00",
	};
	struct kf_ctx ctx;
	struct kf_tool_run t;
	struct kf_error e = KF_ERROR_INIT;
	struct mfw *m;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = mfw_new("/usr/bin/dfu-util", 0);
		ctx = (struct kf_ctx){ .ops = &m->w.ops, .out = &m->out, .err = &m->err };
		assert_int_equal(kf_make_flash(&ctx, &m->s, "/klipper", "/cfg/.config", &m->cfg,
					       "/out", bad[i], "octopus", &t), 0);
		assert_int_equal(t.cls, KF_FLASH_UNSAFE_DEVICE);
		assert_false(fake_did(&m->w, "spawn make"));
		kf_make_flash_error(&m->w.ops, &e, &t, "octopus", &m->s);
		assert_non_null(strstr(e.what, "nothing was written"));
		assert_non_null(strstr(e.what, bad[i]) ? e.what : NULL);
		kf_error_release(&e);
		kf_tool_run_release(&t);
		mfw_free(m);
	}
	/* udev's own names pass */
	m = mfw_new("/usr/bin/dfu-util", 0);
	ctx = (struct kf_ctx){ .ops = &m->w.ops, .out = &m->out, .err = &m->err };
	assert_int_equal(kf_make_flash(&ctx, &m->s, "/klipper", "/cfg/.config", &m->cfg, "/out",
		"/dev/serial/by-id/usb-Klipper_stm32f446xx_3A00390008-if00", "octopus", &t), 0);
	assert_int_equal(t.cls, KF_FLASH_OK);
	kf_tool_run_release(&t);
	mfw_free(m);
}

static void make_flash__preflight_refuses_a_password_for_its_own_method(void **state)
{
	struct kf_ctx ctx;
	struct mfw *m;
	int r;

	(void)state;
	m = mfw_new("sudo: a password is required", 1);
	ctx = (struct kf_ctx){ .ops = &m->w.ops, .out = &m->out, .err = &m->err };
	r = kf_make_flash_preflight(&ctx, "/klipper", &m->cfg, "octopus", true, &m->err);
	assert_int_equal(r, KF_EREFUSED);
	assert_non_null(strstr(m->err.what, "password"));
	assert_non_null(strstr(m->err.what, "dfu-util"));
	/* one command that pastes: the line, checked by visudo, installed */
	assert_non_null(strstr(m->err.steps[0], "NOPASSWD: /usr/bin/dfu-util' | sudo "
			       "EDITOR='tee -a' visudo -f /etc/sudoers.d/kflash"));
	kf_error_release(&m->err);
	/* as a fallback it runs with NOSUDO=1 instead: no refusal */
	assert_int_equal(kf_make_flash_preflight(&ctx, "/klipper", &m->cfg, "octopus",
						 false, &m->err), 0);
	/* --force runs it with NOSUDO=1 too */
	ctx.force = true;
	assert_int_equal(kf_make_flash_preflight(&ctx, "/klipper", &m->cfg, "octopus",
						 true, &m->err), 0);
	mfw_free(m);

	/* a missing tool waits for nothing: make flash fails fast with its
	 * cause (and a board that comes back as Katapult needs none) */
	m = mfw_new("sudo: dfu-util: command not found", 1);
	ctx = (struct kf_ctx){ .ops = &m->w.ops, .out = &m->out, .err = &m->err };
	r = kf_make_flash_preflight(&ctx, "/klipper", &m->cfg, "octopus", true, &m->err);
	assert_int_equal(r, 0);
	assert_null(m->err.what);
	mfw_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(classify__each_failure_class_from_real_output),
		cmocka_unit_test(classify__how_it_ended_comes_first),
		cmocka_unit_test(app_start__parsed_from_status_mode),
		cmocka_unit_test(errors__each_class_has_its_own_steps),
		cmocka_unit_test(make_flash__names_the_missing_tool_not_make_error),
		cmocka_unit_test(make_flash__libusb_headers_missing_for_rp2040_flash),
		cmocka_unit_test(make_flash__other_failures_by_their_own_words),
		cmocka_unit_test(make_flash__error_shows_cause_and_the_bootloader),
		cmocka_unit_test(make_flash__sudo_tool_per_mcu),
		cmocka_unit_test(make_flash__never_lets_sudo_prompt),
		cmocka_unit_test(make_flash__preflight_refuses_a_password_for_its_own_method),
		cmocka_unit_test(make_flash__never_hands_make_a_device_name_a_shell_would_run),
	};

	return cmocka_run_group_tests_name("flash", tests, NULL, NULL);
}
