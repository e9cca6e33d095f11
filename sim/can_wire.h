/* can_wire.h - the simulated CAN bus: what travels between a process's raw
 * CAN socket (libkflash-simcan.so, can_preload.c) and the bus
 * (kflash-simcanbus, canbus.c).
 *
 * A CAN socket of the preloaded process is really an AF_UNIX SOCK_SEQPACKET
 * socket connected to the bus at $KFLASH_SIM_CANBUS. Each record the bus
 * sends is one 16-byte struct can_frame, so the program's own read, recv,
 * poll, select and epoll work on it unchanged. What the program sends is
 * either a 16-byte struct can_frame (a frame for the bus) or a control
 * record, which is never 16 bytes long: it starts with SIM_CAN_MAGIC and
 * says what bind() and setsockopt() asked for, so the bus can deliver each
 * frame only to the sockets bound to its interface whose filters pass it.
 *
 * Interfaces: $KFLASH_SIM_CAN_IFACES, a comma-separated list of names
 * (default "can0"); the Nth name has ifindex SIM_CAN_IFINDEX_BASE + N, so
 * the same names give the same indexes in every process. */
#ifndef KFLASH_SIM_CAN_WIRE_H
#define KFLASH_SIM_CAN_WIRE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SIM_CAN_MAGIC		0x4e41434bu	/* "KCAN" little-endian */
#define SIM_CAN_IFINDEX_BASE	100
#define SIM_CAN_IFACES_MAX	8
#define SIM_CAN_IFNAME_MAX	16
#define SIM_CAN_FILTERS_MAX	64
#define SIM_CAN_FRAME_LEN	16

enum sim_can_ctl {
	SIM_CAN_CTL_BIND = 1,		/* arg: ifindex (0: every interface) */
	SIM_CAN_CTL_FILTER,		/* arg: count; filters[] follow */
	SIM_CAN_CTL_ERR_FILTER,		/* arg: error mask (kept, unused) */
	SIM_CAN_CTL_RECV_OWN,		/* arg: 0/1: receive own frames */
	SIM_CAN_CTL_LOOPBACK,		/* arg: 0/1: other local sockets see ours */
};

struct sim_can_filter {
	uint32_t id;
	uint32_t mask;
};

/* A control record: 12 bytes plus arg filters for SIM_CAN_CTL_FILTER
 * (so 12, 20, 28 ... bytes: never a frame's 16). */
struct sim_can_ctl_msg {
	uint32_t magic;
	uint32_t type;
	uint32_t arg;
	struct sim_can_filter filters[SIM_CAN_FILTERS_MAX];
};

#define SIM_CAN_CTL_LEN(nfilters) (12 + 8 * (nfilters))

/* The ifindex of NAME in $KFLASH_SIM_CAN_IFACES, or 0; with ret_name
 * (SIM_CAN_IFNAME_MAX bytes), the reverse: the name of ifindex, NAME
 * unused. Both sides call it, so names and indexes agree. */
static inline int sim_can_iface(const char *name, int ifindex, char *ret_name)
{
	const char *list = getenv("KFLASH_SIM_CAN_IFACES");
	const char *p;
	int n = 0;

	if (!list || !*list)
		list = "can0";
	for (p = list; *p && n < SIM_CAN_IFACES_MAX; n++) {
		size_t len = strcspn(p, ",");

		if (len && len < SIM_CAN_IFNAME_MAX) {
			if (ret_name && ifindex == SIM_CAN_IFINDEX_BASE + n) {
				memcpy(ret_name, p, len);
				ret_name[len] = '\0';
				return ifindex;
			}
			if (!ret_name && name && strlen(name) == len &&
			    !memcmp(name, p, len))
				return SIM_CAN_IFINDEX_BASE + n;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

#endif
