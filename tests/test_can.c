/* test_can.c - what kflash reads of a CAN bus: flashtool's query, sysfs and
 * ip's view of the interface. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "kflash/can.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(query__each_node_once_with_its_application),
		cmocka_unit_test(iface__sysfs_says_up_down_or_missing),
		cmocka_unit_test(bitrate__from_ip_details_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
