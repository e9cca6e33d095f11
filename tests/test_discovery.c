/* test_discovery.c - by-id names, classification, patterns and overlap, and
 * what the USB transport shows kflash list and kflash add. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <errno.h>

#include <cmocka.h>

#include "kflash/discovery.h"
#include "kflash/transport.h"
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

/* A device as udev shows it with the USB parent's strings. */
static struct kf_device usb_device(const char *byid, const char *vid, const char *pid,
				   const char *manufacturer, const char *product,
				   const char *serial, const char *port)
{
	struct kf_ttydev t = { 0 };
	struct kf_device d;

	t.devnode = kf_xstrdup("/dev/ttyACM0");
	if (byid)
		t.by_id = kf_asprintf("/dev/serial/by-id/%s", byid);
	if (port)
		t.by_path = kf_asprintf("/dev/serial/by-path/platform-fd500000.pcie-pci-"
					"0000:01:00.0-usb-0:%s:1.0", port);
	t.vid = kf_xstrdup(vid);
	t.pid = kf_xstrdup(pid);
	t.manufacturer = manufacturer ? kf_xstrdup(manufacturer) : NULL;
	t.product = product ? kf_xstrdup(product) : NULL;
	t.serial = serial ? kf_xstrdup(serial) : NULL;
	kf_device_from_tty(&d, &t);
	return d;
}

static void classify__usb_id_decides_whatever_the_manufacturer_string(void **state)
{
	struct kf_device d;

	(void)state;
	/* Kalico, by name and by USB strings */
	d = device("usb-Kalico_stm32f446xx_3A00-if00", "1d50", "614e", "Kalico", "3A00");
	assert_int_equal(d.mode, KF_MODE_KLIPPER);
	assert_null(d.blocked);
	assert_string_equal(d.mcu, "stm32f446xx");
	kf_device_release(&d);
	/* a manufacturer the user chose, with a space (udev: an underscore) */
	d = usb_device("usb-My_Printer_stm32f446xx_3A00-if00", "1d50", "614e",
		       "My Printer", "stm32f446xx", "3A00", "1.2");
	assert_int_equal(d.mode, KF_MODE_KLIPPER);
	assert_string_equal(d.mcu, "stm32f446xx");
	assert_string_equal(d.serial, "3A00");
	kf_device_release(&d);
	/* a serial set in the firmware, even one with an underscore */
	d = usb_device("usb-Klipper_lpc1769_12345-if00", "1d50", "614e", "Klipper",
		       "lpc1769", "12345", "1.3");
	assert_int_equal(d.mode, KF_MODE_KLIPPER);
	assert_string_equal(d.serial, "12345");
	kf_device_release(&d);
	d = usb_device("usb-Klipper_lpc1769_my_board-if00", "1d50", "614e", "Klipper",
		       "lpc1769", "my_board", "1.3");
	assert_int_equal(d.mode, KF_MODE_KLIPPER);
	assert_string_equal(d.mcu, "lpc1769");
	assert_string_equal(d.serial, "my_board");
	assert_string_equal(d.port, "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.3:1.0");
	kf_device_release(&d);
	/* the name must still end in the USB strings */
	d = usb_device("usb-Klipper_lpc1769_12345-if00", "1d50", "614e", "Klipper",
		       "lpc1768", "12345", NULL);
	assert_int_equal(d.mode, KF_MODE_OTHER);
	assert_non_null(strstr(d.blocked, "disagree"));
	kf_device_release(&d);
	/* a name of the other mode is no manufacturer's choice */
	d = usb_device("usb-katapult_stm32f446xx_3A00-if00", "1d50", "614e", "katapult",
		       "stm32f446xx", "3A00", NULL);
	assert_int_equal(d.mode, KF_MODE_OTHER);
	kf_device_release(&d);
	/* a serial a glob would read is never used */
	d = usb_device("usb-Klipper_stm32f446xx_3A*0-if00", "1d50", "614e", "Klipper",
		       "stm32f446xx", "3A*0", NULL);
	assert_int_equal(d.mode, KF_MODE_OTHER);
	kf_device_release(&d);
}

static void classify__probes_are_named_never_disagree(void **state)
{
	struct kf_device d;

	(void)state;
	/* Cartographer runs a Klipper build on Klipper's USB id */
	d = usb_device("usb-Cartographer_614e_16000C000F43304253373820-if00", "1d50",
		       "614e", "Cartographer", "614e", "16000C000F43304253373820", "1.4");
	assert_int_equal(d.mode, KF_MODE_OTHER);
	assert_string_equal(d.product, "Cartographer probe");
	assert_non_null(strstr(d.blocked, "Cartographer probe"));
	assert_null(strstr(d.blocked, "disagree"));
	kf_device_release(&d);
	/* older Cartographer firmware */
	d = device("usb-cartographer_cartographer_31001C000F43304146393320-if00", "1d50",
		   "614e", "cartographer", "31001C000F43304146393320");
	assert_string_equal(d.product, "Cartographer probe");
	kf_device_release(&d);
	d = usb_device("usb-Beacon_Beacon_RevH_5C1E-if00", "04d8", "e72b", "Beacon",
		       "Beacon RevH", "5C1E", NULL);
	assert_string_equal(d.product, "Beacon probe");
	assert_non_null(strstr(d.blocked, "Beacon probe"));
	kf_device_release(&d);
	/* in Katapult a Cartographer is an stm32f042x6 like any other: a
	 * caution, not a board to offer */
	d = usb_device("usb-katapult_stm32f042x6_16000C000F43304253373820-if00", "1d50",
		       "6177", "katapult", "stm32f042x6", "16000C000F43304253373820", NULL);
	assert_int_equal(d.mode, KF_MODE_KATAPULT);
	assert_non_null(strstr(d.caution, "Cartographer probe"));
	kf_device_release(&d);
}

static void serial_and_port__chip_ids_and_port_labels(void **state)
{
	char *l;

	(void)state;
	assert_true(kf_serial_is_chip_id("3A0039000851313433343333"));
	assert_true(kf_serial_is_chip_id("E6626005A7651729"));
	assert_true(kf_serial_is_chip_id("3D0A1B2C4E5F60718293A4B5C6D7E8F9"));
	assert_false(kf_serial_is_chip_id("12345"));
	assert_false(kf_serial_is_chip_id("my_board"));
	assert_false(kf_serial_is_chip_id("3A0039000851313433343Z33"));
	assert_false(kf_serial_is_chip_id(NULL));
	l = kf_port_label("platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.4.5:1.0");
	assert_string_equal(l, "1.4.5");
	free(l);
	l = kf_port_label("pci-0000:00:14.0-usb-0:3:1.0");
	assert_string_equal(l, "3");
	free(l);
	l = kf_port_label("odd");
	assert_string_equal(l, "odd");
	free(l);
}

#define PORT_A "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.3:1.0"
#define CHIP "3D0A1B2C4E5F60718293A4B5C6D7E8F9"

static void board_match__port_only_board_by_port_then_by_learned_serial(void **state)
{
	struct kf_board b = { .key = "lpc", .name = "lpc", .mcu = "lpc1769",
			      .pattern = "usb-*_lpc1769_12345-if*", .flashable = true,
			      .port = PORT_A };
	struct kf_device klipper, here, elsewhere, other_here, twin;

	(void)state;
	klipper = usb_device("usb-Klipper_lpc1769_12345-if00", "1d50", "614e", "Klipper",
			     "lpc1769", "12345", "1.3");
	here = usb_device("usb-katapult_lpc1769_" CHIP "-if00", "1d50", "6177", "katapult",
			  "lpc1769", CHIP, "1.3");
	elsewhere = usb_device("usb-katapult_lpc1769_" CHIP "-if00", "1d50", "6177",
			       "katapult", "lpc1769", CHIP, "1.2");
	other_here = usb_device("usb-katapult_lpc1769_00000000000000000000000000000001-if00",
				"1d50", "6177", "katapult", "lpc1769",
				"00000000000000000000000000000001", "1.3");
	twin = usb_device("usb-katapult_lpc1768_" CHIP "-if00", "1d50", "6177", "katapult",
			  "lpc1768", CHIP, "1.3");
	assert_true(kf_board_port_only(&b));
	assert_int_equal(kf_board_match(&b, &klipper), KF_MATCH_YES);
	/* not seen in Katapult yet: only the port points to it */
	assert_int_equal(kf_board_match(&b, &here), KF_MATCH_PORT);
	assert_int_equal(kf_board_match(&b, &other_here), KF_MATCH_PORT);
	assert_int_equal(kf_board_match(&b, &elsewhere), KF_MATCH_NO);
	assert_int_equal(kf_board_match(&b, &twin), KF_MATCH_NO);
	/* learned: its chip id finds it at any port, and no other chip */
	b.katapult_serial = CHIP;
	assert_int_equal(kf_board_match(&b, &here), KF_MATCH_YES);
	assert_int_equal(kf_board_match(&b, &elsewhere), KF_MATCH_YES);
	assert_int_equal(kf_board_match(&b, &other_here), KF_MATCH_NO);
	/* a learned serial that is no chip id counts only at its port */
	b.katapult_serial = "BOOT1";
	{
		struct kf_device moved = usb_device("usb-katapult_lpc1769_BOOT1-if00", "1d50",
						    "6177", "katapult", "lpc1769", "BOOT1", "1.2");
		struct kf_device at = usb_device("usb-katapult_lpc1769_BOOT1-if00", "1d50",
						 "6177", "katapult", "lpc1769", "BOOT1", "1.3");

		assert_int_equal(kf_board_match(&b, &moved), KF_MATCH_NO);
		assert_int_equal(kf_board_match(&b, &at), KF_MATCH_YES);
		kf_device_release(&moved);
		kf_device_release(&at);
	}
	kf_device_release(&klipper);
	kf_device_release(&here);
	kf_device_release(&elsewhere);
	kf_device_release(&other_here);
	kf_device_release(&twin);
}

static void board_match__a_chip_id_board_is_never_matched_by_port(void **state)
{
	/* its pattern finds it in both modes: another chip at its port is
	 * another board (two boards swapped) */
	struct kf_board b = { .key = "octopus", .name = "octopus", .mcu = "stm32f446xx",
			      .pattern = "usb-*_stm32f446xx_3A0039000851313433343333-if*",
			      .flashable = true, .port = PORT_A };
	struct kf_device swapped, own;

	(void)state;
	swapped = usb_device("usb-katapult_stm32f446xx_1F0028000B51363431363430-if00",
			     "1d50", "6177", "katapult", "stm32f446xx",
			     "1F0028000B51363431363430", "1.3");
	own = usb_device("usb-Kalico_stm32f446xx_3A0039000851313433343333-if00", "1d50",
			 "614e", "Kalico", "stm32f446xx", "3A0039000851313433343333", "1.1");
	assert_false(kf_board_port_only(&b));
	assert_int_equal(kf_board_match(&b, &swapped), KF_MATCH_NO);
	assert_int_equal(kf_board_match(&b, &own), KF_MATCH_YES);
	kf_device_release(&swapped);
	kf_device_release(&own);
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

#define EBB_BYID "usb-Klipper_stm32g0b1xx_1D0028000A50425539393020-if00"
#define BEACON_BYID "usb-Beacon_Beacon_RevH_7C1A-if00"

/* A registered port-only board waiting in Katapult at its port, a
 * registered board running Klipper, a probe and an unregistered EBB. */
struct usb_world {
	struct kf_device devs[4];
	struct kf_devlist list;
	struct kf_board boards[2];
	struct kf_registry reg;
};

static void usb_world_init(struct usb_world *w)
{
	memset(w, 0, sizeof(*w));
	w->devs[0] = usb_device("usb-katapult_lpc1769_" CHIP "-if00", "1d50", "6177",
				"katapult", "lpc1769", CHIP, "1.3");
	w->devs[1] = usb_device("usb-Klipper_stm32f446xx_3A0039000851313433343333-if00",
				"1d50", "614e", "Klipper", "stm32f446xx",
				"3A0039000851313433343333", "1.2");
	w->devs[2] = device(BEACON_BYID, "04d8", "e72b", "Beacon", "7C1A");
	w->devs[3] = usb_device(EBB_BYID, "1d50", "614e", "Klipper", "stm32g0b1xx",
				"1D0028000A50425539393020", "1.4");
	w->list.devs = w->devs;
	w->list.n = 4;
	w->boards[0] = (struct kf_board){ .key = "lpc", .name = "lpc", .mcu = "lpc1769",
		.pattern = "usb-*_lpc1769_12345-if*", .flashable = true, .port = PORT_A };
	w->boards[1] = (struct kf_board){ .key = "octopus", .name = "Octopus",
		.mcu = "stm32f446xx",
		.pattern = "usb-*_stm32f446xx_3A0039000851313433343333-if*",
		.flashable = true };
	w->reg.boards = w->boards;
	w->reg.n_boards = 2;
}

static void usb_world_release(struct usb_world *w)
{
	size_t i;

	for (i = 0; i < 4; i++)
		kf_device_release(&w->devs[i]);
}

static void usb_list__boards_by_sighting_the_rest_unregistered_or_blocked(void **state)
{
	const struct kf_transport *tr = &kf_transport_usb;
	struct usb_world w;
	struct kf_sighting si = { .matches = 0 };
	struct kf_seen *v;
	size_t n;

	(void)state;
	usb_world_init(&w);
	tr->sight(&w.boards[1], &w.list, &si);
	assert_int_equal(si.matches, 1);
	assert_string_equal(si.at.label, "/dev/serial/by-id/usb-Klipper_stm32f446xx_"
			    "3A0039000851313433343333-if00");
	assert_int_equal(si.at.mode, KF_MODE_KLIPPER);
	assert_null(si.maybe);
	kf_sighting_release(&si);
	/* only its port points to it: not connected, but said where it may be */
	tr->sight(&w.boards[0], &w.list, &si);
	assert_int_equal(si.matches, 0);
	assert_null(si.at.node);
	assert_string_equal(si.maybe, "/dev/serial/by-id/usb-katapult_lpc1769_" CHIP "-if00");
	assert_non_null(strstr(si.maybe_note, "at its USB port 1.3 may be it"));
	kf_sighting_release(&si);
	/* the device that may be lpc is not offered to add */
	tr->unclaimed(&w.reg, &w.list, &v, &n);
	assert_int_equal(n, 2);
	assert_ptr_equal(v[0].tr, tr);
	assert_string_equal(v[0].id, BEACON_BYID);
	assert_non_null(strstr(v[0].blocked, "Beacon probe"));
	assert_string_equal(json_string_value(json_object_get(v[0].json, "reason")),
			    v[0].blocked);
	assert_string_equal(v[1].id, EBB_BYID);
	assert_null(v[1].blocked);
	assert_string_equal(v[1].mcu, "stm32g0b1xx");
	assert_int_equal(v[1].mode, KF_MODE_KLIPPER);
	assert_string_equal(json_string_value(json_object_get(v[1].json, "serial")),
			    "1D0028000A50425539393020");
	kf_seen_free(v, n);
	usb_world_release(&w);
}

static void usb_add__refuses_probes_and_maybe_registered_boards_enrolls_the_rest(void **state)
{
	const struct kf_transport *tr = &kf_transport_usb;
	struct kf_ctx ctx = { .ops = NULL };	/* names that need no look-up */
	struct usb_world w;
	struct kf_error e = KF_ERROR_INIT;
	struct kf_seen s = { .tr = NULL };
	struct kf_board b = { .key = "ebb", .name = "EBB", .flashable = true };
	char *note = (char *)"unset";

	(void)state;
	usb_world_init(&w);
	assert_int_equal(tr->find(&ctx, &w.reg, &w.list, "nosuch", &s, &e), -ENOENT);
	assert_string_equal(e.what, "no connected serial device matches 'nosuch'");
	assert_int_equal(tr->find(&ctx, &w.reg, &w.list, BEACON_BYID, &s, &e), KF_EINPUT);
	assert_non_null(strstr(e.what, "cannot be registered: Beacon probe"));
	assert_int_equal(tr->find(&ctx, &w.reg, &w.list, "usb-katapult_lpc1769_" CHIP
				  "-if00", &s, &e), KF_EINPUT);
	assert_non_null(strstr(e.what, "may be 'lpc' in Katapult"));
	/* registered already: found, but not enrolled again */
	assert_int_equal(tr->find(&ctx, &w.reg, &w.list, "/dev/serial/by-id/usb-Klipper_"
				  "stm32f446xx_3A0039000851313433343333-if00", &s, &e), 0);
	assert_int_equal(tr->enroll(&w.reg, &w.list, &s, &b, &note, &e), KF_EINPUT);
	assert_non_null(strstr(e.what, "is already registered as 'Octopus'"));
	assert_null(b.pattern);
	kf_seen_release(&s);
	assert_int_equal(tr->find(&ctx, &w.reg, &w.list, EBB_BYID, &s, &e), 0);
	assert_string_equal(s.mcu, "stm32g0b1xx");
	assert_int_equal(tr->enroll(&w.reg, &w.list, &s, &b, &note, &e), 0);
	assert_string_equal(b.pattern, "usb-*_stm32g0b1xx_1D0028000A50425539393020-if*");
	assert_string_equal(b.mcu, "stm32g0b1xx");
	assert_non_null(b.port);
	assert_null(note);	/* a chip id: found in Katapult by name */
	free(b.pattern);
	free(b.mcu);
	free(b.port);
	kf_seen_release(&s);
	kf_error_release(&e);
	usb_world_release(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(byid__every_naming_in_the_reference_table),
		cmocka_unit_test(byid__non_klipper_and_malformed_names_are_other),
		cmocka_unit_test(classify__cross_checks_name_with_usb_identity),
		cmocka_unit_test(classify__probes_and_serial_chips_are_blocked_with_a_reason),
		cmocka_unit_test(classify__usb_id_decides_whatever_the_manufacturer_string),
		cmocka_unit_test(classify__probes_are_named_never_disagree),
		cmocka_unit_test(serial_and_port__chip_ids_and_port_labels),
		cmocka_unit_test(board_match__port_only_board_by_port_then_by_learned_serial),
		cmocka_unit_test(board_match__a_chip_id_board_is_never_matched_by_port),
		cmocka_unit_test(pattern__finds_the_board_in_both_modes_and_no_other),
		cmocka_unit_test(overlap__same_board_overlaps_different_boards_do_not),
		cmocka_unit_test(usb_list__boards_by_sighting_the_rest_unregistered_or_blocked),
		cmocka_unit_test(usb_add__refuses_probes_and_maybe_registered_boards_enrolls_the_rest),
	};

	return cmocka_run_group_tests_name("discovery", tests, NULL, NULL);
}
