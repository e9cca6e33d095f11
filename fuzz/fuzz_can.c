/* fuzz_can.c - what kflash reads of a CAN bus. kflash opens no CAN socket
 * (can.h): the bus's nodes come from flashtool.py -i can0 -q ("Detected
 * UUID: 0a1b2c3d4e5f, Application: Katapult"), its bitrate from `ip
 * -details -json link show`, its state and queue length from sysfs. The
 * frames themselves are parsed by the simulator's node (fuzz_can_node.c).
 *
 * Input: the query's output, a NUL, ip's JSON, a NUL, the sysfs
 * operstate, tx_queue_len and type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_ops.h"
#include "fuzz.h"
#include "kflash/can.h"
#include "kflash/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const attrs[] = { "operstate", "tx_queue_len", "type" };
	struct fuzz_parts p;
	struct kf_can_node *nodes = NULL;
	struct kf_can_iface st;
	struct fake_world w;
	size_t n, i, k;

	fuzz_split(data, size, 5, &p);
	n = kf_can_parse_query(p.v[0], &nodes);
	for (i = 0; i < n; i++) {
		char *u = NULL;
		struct kf_error err = { 0 };

		/* each a UUID the registry takes, and each once */
		fuzz_assert(strlen(nodes[i].uuid) == 12);
		fuzz_assert(kf_canbus_uuid_parse(nodes[i].uuid, &u, &err) == 0);
		fuzz_assert(strcmp(u, nodes[i].uuid) == 0);
		free(u);
		fuzz_error_done(&err);
		for (k = 0; k < i; k++)
			fuzz_assert(strcmp(nodes[k].uuid, nodes[i].uuid) != 0);
	}
	free(nodes);
	if (p.n > 1)
		(void)kf_can_parse_bitrate(p.v[1]);

	fake_world_init(&w);
	fake_put_file(&w, "/sys/class/net/can0/operstate", "");
	for (i = 0; i < 3 && i + 2 < p.n; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/sys/class/net/can0/%s", attrs[i]);
		fake_put_file(&w, path, p.v[i + 2]);
	}
	if (kf_can_iface_read(&w.ops, "can0", &st) == 0)
		fuzz_assert(st.state == KF_CAN_UP || st.state == KF_CAN_DOWN);
	fake_world_release(&w);
	fuzz_parts_free(&p);
	return 0;
}
