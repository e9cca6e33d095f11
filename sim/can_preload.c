/* can_preload.c - libkflash-simcan.so: raw CAN sockets on a kernel without
 * AF_CAN, for LD_PRELOAD. socket(PF_CAN, SOCK_RAW, CAN_RAW) returns a unix
 * socket connected to the simulated bus at $KFLASH_SIM_CANBUS (can_wire.h);
 * bind, the SIOCGIFINDEX/SIOCGIFNAME ioctls, the CAN_RAW socket options and
 * the addresses recvfrom/recvmsg/getsockname report are answered here as
 * the kernel would. read, write, send, recv, poll and epoll need nothing:
 * each record is one struct can_frame. Everything else passes through, and
 * without $KFLASH_SIM_CANBUS a CAN socket fails as the kernel makes it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <linux/can.h>
#include <linux/can/raw.h>
#include <net/if.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "can_wire.h"

#define SIM_FD_MAX 4096

/* What the kernel would keep for each CAN socket we made. */
struct sim_can_sock {
	char used;
	char bound;
	int ifindex;
	int fd_frames, join_filters, loopback, recv_own;
	uint32_t err_mask;
	uint32_t nfilters;
	struct can_filter filters[SIM_CAN_FILTERS_MAX];
};

static struct sim_can_sock *sim_socks[SIM_FD_MAX];

#define SIM_REAL(name) \
	static __typeof__(name) *real_##name; \
	if (!real_##name) \
		real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static struct sim_can_sock *sim_sock(int fd)
{
	return fd >= 0 && fd < SIM_FD_MAX ? sim_socks[fd] : NULL;
}

static int sim_ctl(int fd, uint32_t type, uint32_t arg,
		   const struct can_filter *f, uint32_t nf)
{
	SIM_REAL(send);
	struct sim_can_ctl_msg m;

	memset(&m, 0, sizeof(m));
	m.magic = SIM_CAN_MAGIC;
	m.type = type;
	m.arg = arg;
	for (uint32_t i = 0; i < nf; i++) {
		m.filters[i].id = f[i].can_id;
		m.filters[i].mask = f[i].can_mask;
	}
	/* blocking or not, a lost control record would be a silent lie */
	for (;;) {
		ssize_t n = real_send(fd, &m, SIM_CAN_CTL_LEN(nf), MSG_NOSIGNAL);

		if (n >= 0)
			return 0;
		if (errno != EINTR && errno != EAGAIN)
			return -1;
		if (errno == EAGAIN)
			usleep(1000);
	}
}

int socket(int domain, int type, int protocol)
{
	SIM_REAL(socket);
	SIM_REAL(connect);
	SIM_REAL(close);
	const char *path = getenv("KFLASH_SIM_CANBUS");
	struct sockaddr_un sa;
	struct sim_can_sock *s;
	int fd, err;

	if (domain != PF_CAN || (type & 0xf) != SOCK_RAW || protocol != CAN_RAW ||
	    !path || !*path)
		return real_socket(domain, type, protocol);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = real_socket(AF_UNIX, SOCK_SEQPACKET | (type & SOCK_CLOEXEC), 0);
	if (fd < 0)
		return -1;
	if (fd >= SIM_FD_MAX) {
		real_close(fd);
		errno = EMFILE;
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	/* no bus: the interfaces are not there */
	if (real_connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		real_close(fd);
		errno = ENETDOWN;
		return -1;
	}
	if ((type & SOCK_NONBLOCK) && ioctl(fd, FIONBIO, &(int){ 1 }) < 0) {
		err = errno;
		real_close(fd);
		errno = err;
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		real_close(fd);
		errno = ENOMEM;
		return -1;
	}
	s->used = 1;
	s->loopback = 1;
	/* a new raw socket receives everything: one filter, mask 0 */
	s->nfilters = 1;
	free(sim_socks[fd]);
	sim_socks[fd] = s;
	return fd;
}

int close(int fd)
{
	SIM_REAL(close);

	if (sim_sock(fd)) {
		free(sim_socks[fd]);
		sim_socks[fd] = NULL;
	}
	return real_close(fd);
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	SIM_REAL(bind);
	struct sim_can_sock *s = sim_sock(fd);
	const struct sockaddr_can *ca = (const struct sockaddr_can *)addr;
	char name[SIM_CAN_IFNAME_MAX];

	if (!s)
		return real_bind(fd, addr, len);
	if (!addr || len < (socklen_t)(offsetof(struct sockaddr_can, can_ifindex) +
				       sizeof(int)) || ca->can_family != AF_CAN) {
		errno = EINVAL;
		return -1;
	}
	if (ca->can_ifindex && !sim_can_iface(NULL, ca->can_ifindex, name)) {
		errno = ENODEV;
		return -1;
	}
	if (sim_ctl(fd, SIM_CAN_CTL_BIND, (uint32_t)ca->can_ifindex, NULL, 0) < 0)
		return -1;
	s->bound = 1;
	s->ifindex = ca->can_ifindex;
	return 0;
}

int ioctl(int fd, unsigned long request, ...)
{
	SIM_REAL(ioctl);
	va_list ap;
	void *arg;
	struct ifreq *ifr;
	int idx;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	ifr = arg;
	/* any socket may ask (if_nametoindex uses one of its own) */
	if (request == SIOCGIFINDEX && ifr) {
		char name[IFNAMSIZ + 1];

		memcpy(name, ifr->ifr_name, IFNAMSIZ);
		name[IFNAMSIZ] = '\0';
		idx = sim_can_iface(name, 0, NULL);
		if (idx) {
			ifr->ifr_ifindex = idx;
			return 0;
		}
	} else if (request == SIOCGIFNAME && ifr) {
		char name[SIM_CAN_IFNAME_MAX];

		if (sim_can_iface(NULL, ifr->ifr_ifindex, name)) {
			memset(ifr->ifr_name, 0, IFNAMSIZ);
			strcpy(ifr->ifr_name, name);
			return 0;
		}
	}
	return real_ioctl(fd, request, arg);
}

static int *sim_raw_opt(struct sim_can_sock *s, int opt)
{
	switch (opt) {
	case CAN_RAW_LOOPBACK:
		return &s->loopback;
	case CAN_RAW_RECV_OWN_MSGS:
		return &s->recv_own;
	case CAN_RAW_FD_FRAMES:
		return &s->fd_frames;
	case CAN_RAW_JOIN_FILTERS:
		return &s->join_filters;
	default:
		return NULL;
	}
}

int setsockopt(int fd, int level, int opt, const void *val, socklen_t len)
{
	SIM_REAL(setsockopt);
	struct sim_can_sock *s = sim_sock(fd);
	int *flag;

	if (!s || level != SOL_CAN_RAW)
		return real_setsockopt(fd, level, opt, val, len);
	if (opt == CAN_RAW_FILTER) {
		uint32_t n = len / sizeof(struct can_filter);

		if (len % sizeof(struct can_filter) || (n && !val)) {
			errno = EINVAL;
			return -1;
		}
		if (n > SIM_CAN_FILTERS_MAX) {
			errno = ENOMEM;
			return -1;
		}
		if (sim_ctl(fd, SIM_CAN_CTL_FILTER, n, val, n) < 0)
			return -1;
		if (n)
			memcpy(s->filters, val, n * sizeof(struct can_filter));
		s->nfilters = n;
		return 0;
	}
	if (opt == CAN_RAW_ERR_FILTER) {
		if (len != sizeof(uint32_t) || !val) {
			errno = EINVAL;
			return -1;
		}
		memcpy(&s->err_mask, val, sizeof(uint32_t));
		return sim_ctl(fd, SIM_CAN_CTL_ERR_FILTER, s->err_mask, NULL, 0);
	}
	flag = sim_raw_opt(s, opt);
	if (!flag) {
		errno = ENOPROTOOPT;
		return -1;
	}
	if (len != sizeof(int) || !val) {
		errno = EINVAL;
		return -1;
	}
	memcpy(flag, val, sizeof(int));
	if (opt == CAN_RAW_LOOPBACK)
		return sim_ctl(fd, SIM_CAN_CTL_LOOPBACK, !!*flag, NULL, 0);
	if (opt == CAN_RAW_RECV_OWN_MSGS)
		return sim_ctl(fd, SIM_CAN_CTL_RECV_OWN, !!*flag, NULL, 0);
	return 0;
}

int getsockopt(int fd, int level, int opt, void *val, socklen_t *len)
{
	SIM_REAL(getsockopt);
	struct sim_can_sock *s = sim_sock(fd);
	int *flag;

	if (!s || level != SOL_CAN_RAW)
		return real_getsockopt(fd, level, opt, val, len);
	if (!val || !len) {
		errno = EFAULT;
		return -1;
	}
	if (opt == CAN_RAW_FILTER) {
		socklen_t want = s->nfilters * sizeof(struct can_filter);

		if (*len < want) {
			errno = ERANGE;
			return -1;
		}
		memcpy(val, s->filters, want);
		*len = want;
		return 0;
	}
	if (opt == CAN_RAW_ERR_FILTER) {
		if (*len > sizeof(uint32_t))
			*len = sizeof(uint32_t);
		memcpy(val, &s->err_mask, *len);
		return 0;
	}
	flag = sim_raw_opt(s, opt);
	if (!flag) {
		errno = ENOPROTOOPT;
		return -1;
	}
	if (*len > sizeof(int))
		*len = sizeof(int);
	memcpy(val, flag, *len);
	return 0;
}

/* The address the kernel gives a raw CAN socket: its interface. */
static void sim_fill_addr(const struct sim_can_sock *s, void *addr, socklen_t *len)
{
	struct sockaddr_can ca;

	if (!addr || !len)
		return;
	memset(&ca, 0, sizeof(ca));
	ca.can_family = AF_CAN;
	ca.can_ifindex = s->ifindex ? s->ifindex : SIM_CAN_IFINDEX_BASE;
	memcpy(addr, &ca, *len < sizeof(ca) ? *len : sizeof(ca));
	*len = sizeof(ca);
}

int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	SIM_REAL(getsockname);
	struct sim_can_sock *s = sim_sock(fd);

	if (!s)
		return real_getsockname(fd, addr, len);
	sim_fill_addr(s, addr, len);
	return 0;
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
		 socklen_t *len)
{
	SIM_REAL(recvfrom);
	struct sim_can_sock *s = sim_sock(fd);
	ssize_t r;

	if (!s)
		return real_recvfrom(fd, buf, n, flags, addr, len);
	r = real_recvfrom(fd, buf, n, flags, NULL, NULL);
	if (r >= 0)
		sim_fill_addr(s, addr, len);
	return r;
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	SIM_REAL(recvmsg);
	struct sim_can_sock *s = sim_sock(fd);
	void *name;
	socklen_t namelen;
	ssize_t r;

	if (!s || !msg)
		return real_recvmsg(fd, msg, flags);
	name = msg->msg_name;
	namelen = msg->msg_namelen;
	msg->msg_name = NULL;
	msg->msg_namelen = 0;
	r = real_recvmsg(fd, msg, flags);
	msg->msg_name = name;
	msg->msg_namelen = namelen;
	if (r >= 0 && name)
		sim_fill_addr(s, name, &msg->msg_namelen);
	return r;
}

/* The bus is the only destination: an address names at most the
 * interface, which bind already told it. */
ssize_t sendto(int fd, const void *buf, size_t n, int flags,
	       const struct sockaddr *addr, socklen_t len)
{
	SIM_REAL(sendto);

	if (!sim_sock(fd))
		return real_sendto(fd, buf, n, flags, addr, len);
	return real_sendto(fd, buf, n, flags | MSG_NOSIGNAL, NULL, 0);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	SIM_REAL(sendmsg);
	struct msghdr m;

	if (!sim_sock(fd) || !msg)
		return real_sendmsg(fd, msg, flags);
	m = *msg;
	m.msg_name = NULL;
	m.msg_namelen = 0;
	return real_sendmsg(fd, &m, flags | MSG_NOSIGNAL);
}

/* glibc's own versions use an internal ioctl, out of our reach. */
unsigned int if_nametoindex(const char *name)
{
	SIM_REAL(if_nametoindex);
	int idx = name ? sim_can_iface(name, 0, NULL) : 0;

	return idx ? (unsigned int)idx : real_if_nametoindex(name);
}

char *if_indextoname(unsigned int ifindex, char ret_name[IF_NAMESIZE])
{
	SIM_REAL(if_indextoname);
	char name[SIM_CAN_IFNAME_MAX];

	if (ret_name && ifindex <= 0x7fffffff &&
	    sim_can_iface(NULL, (int)ifindex, name))
		return strcpy(ret_name, name);
	return real_if_indextoname(ifindex, ret_name);
}
