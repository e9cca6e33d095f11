/* test_discovery.c - by-id names, classification, patterns and overlap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "kflash/discovery.h"
#include "kflash/util.h"

static void expect_parse(const char *name, enum kf_mode mode, const char *mcu,
			 const char *serial)
{
	char *m = NULL, *s = NULL;

	assert_int_equal(kf_byid_parse(name, &m, &s), mode);
	if (mcu) {
		assert_string_equal(m, mcu);
		assert_string_equal(s, serial);
	} else {
		assert_null(m);
		assert_null(s);
	}
	free(m);
	free(s);
}

static void byid__every_naming_in_the_reference_table(void **state)
{
	(void)state;
	expect_parse("usb-Klipper_stm32f446xx_3A0039000851313433343333-if00",
		     KF_MODE_KLIPPER, "stm32f446xx", "3A0039000851313433343333");
	expect_parse("usb-katapult_stm32h723xx_280032000951313236343430-if00",
		     KF_MODE_KATAPULT, "stm32h723xx", "280032000951313236343430");
	expect_parse("usb-CanBoot_stm32f103xe_34FFD6054E52353032211543-if00",
		     KF_MODE_KATAPULT, "stm32f103xe", "34FFD6054E52353032211543");
	expect_parse("usb-Klipper_rp2040_E66138935F2B2E28-if00",
		     KF_MODE_KLIPPER, "rp2040", "E66138935F2B2E28");
	expect_parse("usb-Klipper_stm32g0b1xx_4D0030000F50425539393020-if00",
		     KF_MODE_KLIPPER, "stm32g0b1xx", "4D0030000F50425539393020");
	/* an MCU name with an underscore keeps it: the serial has none */
	expect_parse("usb-Klipper_sam_e70_ABC123-if00", KF_MODE_KLIPPER, "sam_e70", "ABC123");
}

static void byid__non_klipper_and_malformed_names_are_other(void **state)
{
	(void)state;
	expect_parse("usb-Beacon_Beacon_RevH_7C1A6B2C5153364B38202020FF0F3D13-if00",
		     KF_MODE_OTHER, NULL, NULL);
	expect_parse("usb-1a86_USB_Serial-if00-port0", KF_MODE_OTHER, NULL, NULL);
	expect_parse("usb-Klipper_stm32f446xx-if00", KF_MODE_OTHER, NULL, NULL);
	expect_parse("usb-Klipper__ABC-if00", KF_MODE_OTHER, NULL, NULL);
	expect_parse("usb-Klipper_stm32_-if00", KF_MODE_OTHER, NULL, NULL);
	expect_parse("usb-Klipper_stm32f446xx_ABC", KF_MODE_OTHER, NULL, NULL);
	expect_parse("usb-Klipper_stm32f446xx_ABC-if00-port0", KF_MODE_OTHER, NULL, NULL);
	/* hostile names: shell and path characters never become an MCU */
	expect_parse("usb-Klipper_stm32;rm -rf_ABC-if00", KF_MODE_OTHER, NULL, NULL);
	expect_parse("usb-Klipper_../../etc_ABC-if00", KF_MODE_OTHER, NULL, NULL);
	expect_parse("usb-Klipper_stm32f446xx_AB$C-if00", KF_MODE_OTHER, NULL, NULL);
	expect_parse("usb-klipper_stm32f446xx_ABC-if00", KF_MODE_OTHER, NULL, NULL);
	expect_parse("", KF_MODE_OTHER, NULL, NULL);
}

static struct kf_device device(const char *byid, const char *vid, const char *pid,
			       const char *manufacturer, const char *serial)
{
	struct kf_ttydev t = { 0 };
	struct kf_device d;

	t.devnode = kf_xstrdup("/dev/ttyACM0");
	if (byid)
		t.by_id = kf_asprintf("/dev/serial/by-id/%s", byid);
	t.vid = kf_xstrdup(vid);
	t.pid = kf_xstrdup(pid);
	t.manufacturer = manufacturer ? kf_xstrdup(manufacturer) : NULL;
	t.serial = serial ? kf_xstrdup(serial) : NULL;
	kf_device_from_tty(&d, &t);
	return d;
}

static void classify__cross_checks_name_with_usb_identity(void **state)
{
	struct kf_device d;

	(void)state;
	d = device("usb-Klipper_stm32f446xx_3A00-if00", "1d50", "614e", "Klipper", "3A00");
	assert_int_equal(d.mode, KF_MODE_KLIPPER);
	assert_null(d.blocked);
	kf_device_release(&d);

	d = device("usb-katapult_stm32g0b1xx_4D00-if00", "1d50", "6177", "katapult", "4D00");
	assert_int_equal(d.mode, KF_MODE_KATAPULT);
	kf_device_release(&d);

	/* name says Klipper, USB id says something else: never flashed */
	d = device("usb-Klipper_stm32f446xx_3A00-if00", "0483", "df11", "STM", "3A00");
	assert_int_equal(d.mode, KF_MODE_OTHER);
	assert_non_null(strstr(d.blocked, "disagree"));
	kf_device_release(&d);

	/* serial attribute differs from the name */
	d = device("usb-Klipper_stm32f446xx_3A00-if00", "1d50", "614e", "Klipper", "FFFF");
	assert_int_equal(d.mode, KF_MODE_OTHER);
	kf_device_release(&d);
}

static void classify__probes_and_serial_chips_are_blocked_with_a_reason(void **state)
{
	struct kf_device d;

	(void)state;
	d = device("usb-Beacon_Beacon_RevH_7C1A-if00", "04d8", "e72b", "Beacon", "7C1A");
	assert_int_equal(d.mode, KF_MODE_OTHER);
	assert_non_null(strstr(d.blocked, "Beacon probe"));
	kf_device_release(&d);

	d = device("usb-1a86_USB_Serial-if00-port0", "1a86", "7523", NULL, NULL);
	assert_non_null(strstr(d.blocked, "CH340"));
	kf_device_release(&d);

	d = device(NULL, "0403", "6001", "FTDI", "A10K");
	assert_non_null(strstr(d.blocked, "FTDI"));
	assert_string_equal(d.name, "ttyACM0");
	kf_device_release(&d);
}

static void pattern__finds_the_board_in_both_modes_and_no_other(void **state)
{
	char *p = kf_pattern_for("stm32h723xx", "280032000951313236343430");
	struct kf_device klipper, katapult, canboot, other, twin;

	(void)state;
	klipper = device("usb-Klipper_stm32h723xx_280032000951313236343430-if00",
			 "1d50", "614e", "Klipper", NULL);
	katapult = device("usb-katapult_stm32h723xx_280032000951313236343430-if00",
			  "1d50", "6177", "katapult", NULL);
	canboot = device("usb-CanBoot_stm32h723xx_280032000951313236343430-if00",
			 "1d50", "6177", "CanBoot", NULL);
	/* same MCU, other chip: a second board of the same kind */
	twin = device("usb-Klipper_stm32h723xx_1B0030000F51313236343430-if00",
		      "1d50", "614e", "Klipper", NULL);
	other = device("usb-Beacon_Beacon_RevH_280032000951313236343430-if00",
		       "04d8", "e72b", "Beacon", NULL);
	assert_true(kf_pattern_matches(p, &klipper));
	assert_true(kf_pattern_matches(p, &katapult));
	assert_true(kf_pattern_matches(p, &canboot));
	assert_false(kf_pattern_matches(p, &twin));
	assert_false(kf_pattern_matches(p, &other));
	/* a pattern from the older tool still finds the board in Katapult */
	assert_true(kf_pattern_matches("usb-Klipper_stm32h723xx_28003*", &katapult));
	kf_device_release(&klipper);
	kf_device_release(&katapult);
	kf_device_release(&canboot);
	kf_device_release(&twin);
	kf_device_release(&other);
	free(p);
}

static void overlap__same_board_overlaps_different_boards_do_not(void **state)
{
	char *a = kf_pattern_for("stm32h723xx", "2800AA");
	char *b = kf_pattern_for("stm32h723xx", "1B00BB");

	(void)state;
	assert_true(kf_patterns_overlap(a, a));
	assert_false(kf_patterns_overlap(a, b));
	assert_true(kf_patterns_overlap(a, "usb-Klipper_stm32h723xx_28*"));
	assert_true(kf_patterns_overlap("usb-Klipper_stm32h723xx_*", b));
	assert_false(kf_patterns_overlap("usb-Klipper_rp2040_*", a));
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(byid__every_naming_in_the_reference_table),
		cmocka_unit_test(byid__non_klipper_and_malformed_names_are_other),
		cmocka_unit_test(classify__cross_checks_name_with_usb_identity),
		cmocka_unit_test(classify__probes_and_serial_chips_are_blocked_with_a_reason),
		cmocka_unit_test(pattern__finds_the_board_in_both_modes_and_no_other),
		cmocka_unit_test(overlap__same_board_overlaps_different_boards_do_not),
	};

	return cmocka_run_group_tests_name("discovery", tests, NULL, NULL);
}
