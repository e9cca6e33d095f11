/* test_can.c - what kflash reads of a CAN bus: flashtool's query, sysfs and
 * ip's view of the interface. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "kflash/can.h"
#include "kflash/kflash.h"

/* flashtool.py -i can0 -q, as Katapult v0.0.1-95 prints it */
static const char query[] =
	"Resetting all bootloader node IDs...\n"
	"Checking for Katapult nodes...\n"
	"Detected UUID: 0A1B2C3D4E5F, Application: Katapult\n"
	"Detected UUID: aabbccddeeff, Application: Klipper\n"
	"Detected UUID: 112233445566, Application: Unknown\n"
	"Detected UUID: 0a1b2c3d4e5f, Application: Katapult\n"
	"Detected UUID: 1234, Application: Katapult\n"
	"CANBus UUID Query Complete\n";

static void query__each_node_once_with_its_application(void **state)
{
	struct kf_can_node *v;
	size_t n;

	(void)state;
	n = kf_can_parse_query(query, &v);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].uuid, "0a1b2c3d4e5f");
	assert_int_equal(v[0].mode, KF_MODE_KATAPULT);
	assert_string_equal(v[1].uuid, "aabbccddeeff");
	assert_int_equal(v[1].mode, KF_MODE_KLIPPER);
	assert_int_equal(v[2].mode, KF_MODE_OTHER);
	free(v);
	assert_int_equal(kf_can_parse_query("CANBus UUID Query Complete\n", &v), 0);
	free(v);
}

static void iface__sysfs_says_up_down_or_missing(void **state)
{
	struct fake_world w;
	struct kf_can_iface i;

	(void)state;
	fake_world_init(&w);
	fake_put_file(&w, "/sys/class/net/can0/operstate", "up\n");
	fake_put_file(&w, "/sys/class/net/can0/tx_queue_len", "10\n");
	fake_put_file(&w, "/sys/class/net/can0/type", "280\n");
	fake_put_file(&w, "/sys/class/net/can1/operstate", "down\n");
	assert_int_equal(kf_can_iface_read(&w.ops, "can0", &i), 0);
	assert_int_equal(i.state, KF_CAN_UP);
	assert_int_equal(i.txqueuelen, 10);
	assert_true(i.is_can);
	assert_int_equal(kf_can_iface_read(&w.ops, "can1", &i), 0);
	assert_int_equal(i.state, KF_CAN_DOWN);
	assert_int_equal(i.txqueuelen, -1);
	assert_int_equal(kf_can_iface_read(&w.ops, "can7", &i), 0);
	assert_int_equal(i.state, KF_CAN_MISSING);
	fake_world_release(&w);
}

static void carrier__a_klipper_bridge_is_told_from_a_candlelight_adapter(void **state)
{
	struct fake_world w;
	struct kf_ttydev u;
	char *s;

	(void)state;
	fake_world_init(&w);
	fake_add_net(&w, "can0", "1d50", "606f", "Klipper", "stm32h723xx", "2B0024", "gs_usb");
	fake_add_net(&w, "can1", "1d50", "606f", "bytewerk", "candleLight USB to CAN adapter",
		     "0042", "gs_usb");
	assert_int_equal(kf_can_carrier(&w.ops, "can0", &u), 0);
	assert_string_equal(u.iface, "can0");
	assert_true(kf_can_is_klipper_bridge(&u, "stm32h723xx"));
	assert_true(kf_can_is_klipper_bridge(&u, NULL));
	assert_false(kf_can_is_klipper_bridge(&u, "stm32f446xx"));
	s = kf_can_carrier_describe(&u);
	assert_string_equal(s, "Klipper's USB-to-CAN bridge (stm32h723xx, USB 1d50:606f)");
	free(s);
	kf_ttydev_release(&u);
	assert_int_equal(kf_can_carrier(&w.ops, "can1", &u), 0);
	assert_false(kf_can_is_klipper_bridge(&u, NULL));
	s = kf_can_carrier_describe(&u);
	assert_string_equal(s, "a USB-CAN adapter (candleLight USB to CAN adapter, gs_usb, "
			    "USB 1d50:606f)");
	free(s);
	kf_ttydev_release(&u);
	/* an interface udev shows on no USB device (an SPI controller) */
	assert_int_equal(kf_can_carrier(&w.ops, "can2", &u), 0);
	assert_null(u.iface);
	assert_false(kf_can_is_klipper_bridge(&u, NULL));
	fake_world_release(&w);
}

static void bitrate__from_ip_details_json(void **state)
{
	(void)state;
	assert_int_equal(kf_can_parse_bitrate(
		"[{\"ifindex\":3,\"ifname\":\"can0\",\"linkinfo\":{\"info_kind\":\"can\","
		"\"info_data\":{\"state\":\"ERROR-ACTIVE\",\"bittiming\":{\"bitrate\":1000000,"
		"\"sample_point\":\"0.875\"}}}}]"), 1000000);
	assert_int_equal(kf_can_parse_bitrate("[{\"ifname\":\"can0\"}]"), -1);
	assert_int_equal(kf_can_parse_bitrate("not json"), -1);
}

/* ---- a CAN node through the whole flash flow, on a fake bus ----------------- */

#define UUID "0a1b2c3d4e5f"
#define OUT "/home/pi/.cache/kflash/build/ebb"

/* the node: what it runs, and whether it goes into Katapult when asked */
static struct {
	enum kf_mode mode;
	bool deaf;		/* answers nothing */
	bool deaf_after_reset;	/* never comes back from its reboot */
	int flashed;
} node;

static bool arg(char **argv, const char *a)
{
	for (; *argv; argv++)
		if (strcmp(*argv, a) == 0)
			return true;
	return false;
}

/* flashtool.py on a bus holding one node */
static int flashtool(struct fake_world *w, char **argv, struct kf_buf *out)
{
	(void)w;
	if (arg(argv, "-q")) {
		kf_buf_addf(out, "Resetting all bootloader node IDs...\nChecking for Katapult "
			    "nodes...\n");
		if (!node.deaf)
			kf_buf_addf(out, "Detected UUID: " UUID ", Application: %s\n",
				    node.mode == KF_MODE_KATAPULT ? "Katapult" : "Klipper");
		kf_buf_addf(out, "CANBus UUID Query Complete\n");
		return 0;
	}
	if (arg(argv, "-r")) {
		kf_buf_addf(out, "Sending bootloader jump command...\nBootloader Request "
			    "Complete\n");
		if (node.mode == KF_MODE_KLIPPER)
			node.mode = KF_MODE_KATAPULT;
		node.deaf = node.deaf_after_reset;
		return 0;
	}
	if (node.mode != KF_MODE_KATAPULT || node.deaf) {
		kf_buf_addf(out, "Attempting to connect to bootloader\nERROR:root:Flash Tool "
			    "Error\nTimeoutError\n");
		return 1;
	}
	if (arg(argv, "-s")) {
		kf_buf_addf(out, "Katapult Connected\nApplication Start: 0x8002000\nMCU type: "
			    "stm32g0b1xx\nStatus Request Complete\n");
		return 0;
	}
	node.flashed++;
	node.mode = KF_MODE_KLIPPER;
	kf_buf_addf(out, "Write complete: 4 pages\nProgramming Complete\n");
	return 0;
}

static void can_printer(struct fake_world *w)
{
	fake_world_init(w);
	w->svc_active = true;
	fake_put_file(w, "/home/pi/.config/kflash/devices.json", "{\"schema\": 1, "
		"\"settings\": {\"moonraker_url\": \"http://mr\"}, \"boards\": [{\"key\": "
		"\"ebb\", \"name\": \"EBB36\", \"mcu\": \"stm32g0b1xx\", \"transport\": "
		"\"can\", \"canbus_uuid\": \"" UUID "\"}]}");
	fake_put_file(w, "/home/pi/.config/kflash/configs/ebb/.config",
		      "CONFIG_MCU=\"stm32g0b1xx\"\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8002000\n"
		      "CONFIG_CANBUS=y\n");
	fake_put_file(w, "/home/pi/klipper/Makefile", "");
	fake_put_file(w, "/home/pi/klipper/src/Kconfig", "");
	fake_put_file(w, "/sys/class/net/can0/operstate", "up\n");
	fake_put_file(w, "/sys/class/net/can0/tx_queue_len", "128\n");
	fake_put_file(w, "/sys/class/net/can0/type", "280\n");
	fake_printer_host(w, OUT);
	fake_add_prog(w, (struct fake_prog){ .argv0 = "python3", .run = flashtool });
	node.mode = KF_MODE_KLIPPER;
	node.deaf = node.deaf_after_reset = false;
	node.flashed = 0;
}

static int flash(struct fake_world *w, char **ret_err)
{
	char *argv[] = { "kflash", "flash", "ebb", "-s", NULL };
	struct fake_run r = fake_cli_run(&(struct kf_cli_opts){ .ops = &w->ops,
		.argc = 4, .argv = argv });

	free(r.out);
	*ret_err = r.err;
	return r.code;
}

static void can_flash__asks_katapult_in_then_flashes_and_waits_for_klipper(void **state)
{
	struct fake_world w;
	char *err;

	(void)state;
	can_printer(&w);
	assert_int_equal(flash(&w, &err), 0);
	assert_non_null(strstr(err, "[Discovery] ok ebb: " UUID " on can0 (klipper mode)"));
	assert_non_null(strstr(err, "ebb: asking it into Katapult"));
	assert_non_null(strstr(err, "application start 0x8002000 matches"));
	assert_non_null(strstr(err, "[Verify] ok ebb is back"));
	assert_int_equal(node.flashed, 1);
	assert_true(fake_did(&w, "spawn python3 /home/pi/katapult/scripts/flashtool.py -i can0 "
			     "-u " UUID " -r"));
	assert_true(fake_did(&w, "spawn python3 /home/pi/katapult/scripts/flashtool.py -i can0 "
			     "-u " UUID " -f " OUT "/klipper.bin"));
	assert_true(w.svc_active);
	free(err);
	fake_world_release(&w);
}

static void can_flash__a_node_that_does_not_answer_from_katapult_is_not_written(void **state)
{
	struct fake_world w;
	char *err;

	(void)state;
	can_printer(&w);
	node.deaf_after_reset = true;
	assert_int_equal(flash(&w, &err), 1);
	assert_int_equal(node.flashed, 0);
	assert_non_null(strstr(err, "ebb (CAN UUID " UUID ") does not answer on can0"));
	assert_non_null(strstr(err, "txqueuelen"));
	assert_false(fake_did(&w, "spawn python3 /home/pi/katapult/scripts/flashtool.py -i can0 "
			      "-u " UUID " -f " OUT "/klipper.bin"));
	/* Klipper is running again */
	assert_true(w.svc_active);
	free(err);
	fake_world_release(&w);
}

/* While Klipper runs, the node it holds is silent; Klipper's config names
 * it, so it is there: asked into Katapult after the stop, it answers. */
static void can_flash__a_node_klipper_holds_is_found_through_its_config(void **state)
{
	struct fake_world w;
	char *err;

	(void)state;
	can_printer(&w);
	w.urls[w.n_urls].url = "http://mr/machine/system_info";
	w.urls[w.n_urls++].body = "{\"result\": {\"system_info\": {\"instance_ids\": "
		"{\"klipper\": \"klipper\"}}}}";
	w.urls[w.n_urls].url = "http://mr/printer/objects/query?configfile=settings";
	w.urls[w.n_urls++].body = "{\"result\": {\"status\": {\"configfile\": "
		"{\"settings\": {\"mcu ebb\": {\"canbus_uuid\": \"" UUID "\"}}}}}}";
	node.deaf = true;
	node.deaf_after_reset = false;
	assert_int_equal(flash(&w, &err), 0);
	assert_non_null(strstr(err, "ebb: " UUID " on can0 (held by Klipper) (klipper mode)"));
	assert_int_equal(node.flashed, 1);
	assert_true(w.svc_active);
	free(err);
	fake_world_release(&w);

	/* no config names it: not there, and nothing is stopped */
	can_printer(&w);
	node.deaf = true;
	assert_int_equal(flash(&w, &err), 1);
	assert_non_null(strstr(err, "does not answer on can0"));
	if (!strstr(err, "no Klipper config"))
		fail_msg("%s", err);
	assert_false(fake_did(&w, "svc_stop klipper"));
	free(err);
	fake_world_release(&w);
}

/* A config that builds USB firmware for a CAN node would leave a node
 * nothing reaches: refused before anything is stopped. */
static void can_flash__a_usb_config_on_a_can_node_is_refused(void **state)
{
	struct fake_world w;
	char *err;

	(void)state;
	can_printer(&w);
	fake_put_file(&w, "/home/pi/.config/kflash/configs/ebb/.config",
		      "CONFIG_MCU=\"stm32g0b1xx\"\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8002000\n"
		      "CONFIG_USBSERIAL=y\n");
	assert_int_equal(flash(&w, &err), 3);
	if (!strstr(err, "reached as a CAN node"))
		fail_msg("%s", err);
	assert_non_null(strstr(err, "Communication interface"));
	assert_false(fake_did(&w, "svc_stop klipper"));
	assert_int_equal(node.flashed, 0);
	free(err);
	fake_world_release(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(query__each_node_once_with_its_application),
		cmocka_unit_test(iface__sysfs_says_up_down_or_missing),
		cmocka_unit_test(carrier__a_klipper_bridge_is_told_from_a_candlelight_adapter),
		cmocka_unit_test(bitrate__from_ip_details_json),
		cmocka_unit_test(can_flash__asks_katapult_in_then_flashes_and_waits_for_klipper),
		cmocka_unit_test(can_flash__a_node_that_does_not_answer_from_katapult_is_not_written),
		cmocka_unit_test(can_flash__a_node_klipper_holds_is_found_through_its_config),
		cmocka_unit_test(can_flash__a_usb_config_on_a_can_node_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
