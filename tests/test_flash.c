/* test_flash.c - telling flashtool's outcomes apart from its output and
 * exit: exit 0 alone proves nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(classify__each_failure_class_from_real_output),
		cmocka_unit_test(classify__how_it_ended_comes_first),
		cmocka_unit_test(app_start__parsed_from_status_mode),
		cmocka_unit_test(errors__each_class_has_its_own_steps),
	};

	return cmocka_run_group_tests_name("flash", tests, NULL, NULL);
}
