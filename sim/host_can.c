/* host_can.c - kflash-simhost's CAN side: the interfaces in the testbed, kflash-simcanbus serving the transport=can boards, and the preload that gives the command raw CAN sockets on it. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host.h"

#define SIM_CAN_BITRATE		1000000
#define SIM_CAN_TXQUEUELEN	128
/* The bus's first ifindex (can_wire.h's SIM_CAN_IFINDEX_BASE). */
#define SIM_CAN_IFINDEX0	100

/* The interface NAME of F (made on first use) with F's settings. */
static struct sim_can_iface *sim_can_iface_get(struct sim_host *h, const char *name,
					       const struct sim_fixture *f)
{
	struct sim_can_iface *ci = NULL;

	if (strlen(name) >= sizeof(ci->name) || strchr(name, ',') || strchr(name, '/')) {
		sim_log("%s: bad interface name '%s'", f->name, name);
		return NULL;
	}
	for (int i = 0; i < h->ncan_ifaces; i++)
		if (!strcmp(h->can_ifaces[i].name, name))
			ci = &h->can_ifaces[i];
	if (!ci) {
		if (h->ncan_ifaces == (int)G_N_ELEMENTS(h->can_ifaces)) {
			sim_log("too many CAN interfaces");
			return NULL;
		}
		ci = &h->can_ifaces[h->ncan_ifaces++];
		memset(ci, 0, sizeof(*ci));
		snprintf(ci->name, sizeof(ci->name), "%s", name);
		ci->bitrate = SIM_CAN_BITRATE;
		ci->txqueuelen = SIM_CAN_TXQUEUELEN;
	}
	/* the interface's settings: the last board that names them wins */
	if (f->can_bitrate)
		ci->bitrate = f->can_bitrate;
	if (f->can_txqueuelen)
		ci->txqueuelen = f->can_txqueuelen;
	if (f->can_down >= 0)
		ci->down = f->can_down;
	return ci;
}

int sim_can_add(struct sim_host *h, const char *spec, const struct sim_fixture *f)
{
	const char *name = f->can_iface && *f->can_iface ? f->can_iface : "can0";

	if (h->ncan >= SIM_MAX_BOARDS) {
		sim_log("too many CAN boards (at most %d)", SIM_MAX_BOARDS);
		return -E2BIG;
	}
	if (!sim_can_iface_get(h, name, f))
		return -EINVAL;
	h->can_specs[h->ncan++] = g_strdup(spec);
	sim_debug("%s: transport=can: a node on %s, served by kflash-simcanbus", f->name, name);
	return 0;
}

/* The bridge is a node on its own bus too (its canbus_uuid comes from its
 * chip id like any node's); the bus knows it by bridge=1 and tells us when
 * it is asked to reboot, instead of rebooting it on the bus. */
int sim_can_add_bridge(struct sim_host *h, const char *spec, struct sim_hboard *b)
{
	const char *name = b->fx.can_bridge;
	struct sim_can_iface *ci;

	if (h->ncan >= SIM_MAX_BOARDS) {
		sim_log("too many CAN boards (at most %d)", SIM_MAX_BOARDS);
		return -E2BIG;
	}
	ci = sim_can_iface_get(h, name, &b->fx);
	if (!ci)
		return -EINVAL;
	if (ci->bridge) {
		sim_log("%s: %s is already the bridge of another board", b->fx.name, name);
		return -EINVAL;
	}
	ci->bridge = 1 + (int)(b - h->boards);
	h->can_specs[h->ncan++] = g_strdup_printf("%s,transport=can,interface=%s,bridge=1",
						  spec, name);
	sim_debug("%s: USB-to-CAN bridge of %s", b->fx.name, name);
	return 0;
}

static int sim_can_iface_index(const struct sim_host *h, const char *name)
{
	for (int i = 0; i < h->ncan_ifaces; i++)
		if (!strcmp(h->can_ifaces[i].name, name))
			return i;
	return -1;
}

/* The sysfs attributes of a CAN net device (type 280 is ARPHRD_CAN). */
#define SIM_CAN_NET_ATTRS(ci, idx, qlen) \
	"type", "280", "ifindex", idx, "mtu", "16", "tx_queue_len", qlen, \
	"operstate", (ci)->down ? "down" : "up", "carrier", (ci)->down ? "0" : "1", \
	"flags", (ci)->down ? "0x80" : "0xc1", "addr_len", "0"

/* The interface as a gs_usb adapter's can0 looks in sysfs (type 280 is
 * ARPHRD_CAN); no USB parent yet. Bitrate is not in sysfs: the fake ip
 * reads it from the state dir. */
static int sim_can_add_netdev(struct sim_host *h, int i)
{
	const struct sim_can_iface *ci = &h->can_ifaces[i];
	char idx[16], qlen[16];
	gchar *path;

	snprintf(idx, sizeof(idx), "%d", SIM_CAN_IFINDEX0 + i);
	snprintf(qlen, sizeof(qlen), "%d", ci->txqueuelen);
	path = umockdev_testbed_add_device(h->tb, "net", ci->name, NULL,
		SIM_CAN_NET_ATTRS(ci, idx, qlen),
		NULL,
		"INTERFACE", ci->name, "IFINDEX", idx,
		NULL);
	if (!path) {
		sim_log("%s: cannot add the interface to the testbed", ci->name);
		return -1;
	}
	sim_debug("%s: %s (ifindex %s)", ci->name, path, idx);
	g_free(path);
	return 0;
}

/* The bridge's net device as gs_usb makes it, under the USB interface INTF
 * (a /sys path), appended to D, the board's umockdev description; returns
 * its sysfs path. */
char *sim_can_bridge_netdev(struct sim_host *h, GString *d, const char *intf, const char *name)
{
	int i = sim_can_iface_index(h, name);
	const struct sim_can_iface *ci = &h->can_ifaces[i < 0 ? 0 : i];
	const char *attrs[] = { SIM_CAN_NET_ATTRS(ci, "", "") };
	char *path = g_strdup_printf("%s/net/%s", intf, name);

	g_string_append_printf(d, "P: %s\nE: SUBSYSTEM=net\nE: INTERFACE=%s\nE: IFINDEX=%d\n",
			       path + 4, name, SIM_CAN_IFINDEX0 + i);
	for (size_t k = 0; k < G_N_ELEMENTS(attrs); k += 2) {
		if (!strcmp(attrs[k], "ifindex"))
			g_string_append_printf(d, "A: ifindex=%d\n", SIM_CAN_IFINDEX0 + i);
		else if (!strcmp(attrs[k], "tx_queue_len"))
			g_string_append_printf(d, "A: tx_queue_len=%d\n", ci->txqueuelen);
		else
			g_string_append_printf(d, "A: %s=%s\n", attrs[k], attrs[k + 1]);
	}
	g_string_append_c(d, '\n');
	return path;
}

/* $KFLASH_SIM_STATE/can/IFACE: what the fake ip reports. */
static void sim_can_write_state(struct sim_host *h, int i)
{
	const char *state = getenv("KFLASH_SIM_STATE");
	const struct sim_can_iface *ci = &h->can_ifaces[i];
	gchar *dir, *path, *text;
	GError *err = NULL;

	if (!state || !*state)
		return;
	dir = g_build_filename(state, "can", NULL);
	path = g_build_filename(dir, ci->name, NULL);
	text = g_strdup_printf("ifindex=%d\nbitrate=%d\ntxqueuelen=%d\nstate=%s\n",
			       SIM_CAN_IFINDEX0 + i, ci->bitrate, ci->txqueuelen,
			       ci->down ? "down" : "up");
	if (sim_mkdirs(dir) < 0 || !g_file_set_contents(path, text, -1, &err)) {
		sim_log("%s: %s", path, err ? err->message : strerror(errno));
		g_clear_error(&err);
	}
	g_free(text);
	g_free(path);
	g_free(dir);
}

/* The interface is gone (a bridge that reset): the fake ip no longer
 * knows it. */
static void sim_can_remove_state(struct sim_host *h, int i)
{
	const char *state = getenv("KFLASH_SIM_STATE");
	gchar *path;

	if (!state || !*state)
		return;
	path = g_build_filename(state, "can", h->can_ifaces[i].name, NULL);
	(void)unlink(path);
	g_free(path);
}

/* Is interface I there now: a standalone one always, a bridge's while its
 * board runs Klipper on USB. */
static bool sim_can_iface_present(const struct sim_host *h, int i)
{
	const struct sim_can_iface *ci = &h->can_ifaces[i];
	const struct sim_hboard *b;

	if (!ci->bridge)
		return true;
	b = &h->boards[ci->bridge - 1];
	return b->state == SIM_ST_PRESENT && sim_is_bridge(b, b->mode);
}

void sim_can_bridge_link(struct sim_hboard *b, bool up)
{
	struct sim_host *h = b->host;
	int i = sim_can_iface_index(h, b->fx.can_bridge);
	char msg[32];

	if (i < 0 || h->can_ifaces[i].bridge != 1 + (int)(b - h->boards))
		return;
	if (up)
		sim_can_write_state(h, i);
	else
		sim_can_remove_state(h, i);
	if (h->can_ctl < 0)
		return;		/* the bus is not up yet; it starts with the link as it is */
	snprintf(msg, sizeof(msg), "%s %s", up ? "up" : "down", h->can_ifaces[i].name);
	if (send(h->can_ctl, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		sim_log("telling the bus '%s': %s", msg, strerror(errno));
	sim_debug("bus: %s", msg);
}

/* "reboot NAME": the bus heard the reboot-to-bootloader frame for NAME's
 * UUID; the board resets into Katapult on USB as it would on its tty. */
void sim_can_ctl_read(struct sim_host *h)
{
	char msg[128];
	ssize_t n;

	while ((n = recv(h->can_ctl, msg, sizeof(msg) - 1, MSG_DONTWAIT)) > 0) {
		msg[n] = '\0';
		if (strncmp(msg, "reboot ", 7)) {
			sim_log("bus said '%s'", msg);
			continue;
		}
		for (int i = 0; i < h->nboards; i++) {
			struct sim_hboard *b = &h->boards[i];

			if (strcmp(b->fx.name, msg + 7) || !sim_is_bridge(b, b->mode))
				continue;
			sim_debug("%s: reboot to Katapult from the bus", b->fx.name);
			sim_schedule_reset(b, SIM_MODE_KATAPULT);
		}
	}
	if (n == 0) {
		sim_log("kflash-simcanbus closed its control socket");
		close(h->can_ctl);
		h->can_ctl = -1;
	}
}

/* Our own program directory: the bus and the preload sit beside us. */
static gchar *sim_can_prog_dir(void)
{
	gchar *self = g_file_read_link("/proc/self/exe", NULL);
	gchar *dir;

	if (!self)
		return NULL;
	dir = g_path_get_dirname(self);
	g_free(self);
	return dir;
}

static void sim_can_setenv(struct sim_host *h, const char *sock, const char *lib)
{
	GString *names = g_string_new(NULL);
	const char *pre = getenv("LD_PRELOAD");
	gchar *preload;

	for (int i = 0; i < h->ncan_ifaces; i++)
		g_string_append_printf(names, "%s%s", i ? "," : "", h->can_ifaces[i].name);
	setenv("KFLASH_SIM_CAN_IFACES", names->str, 1);
	setenv("KFLASH_SIM_CANBUS", sock, 1);
	/* before umockdev's: its socket() goes straight to libc, so a library
	 * after it never sees one; ours passes all it does not serve on
	 * (RTLD_NEXT), to umockdev's wrappers first */
	preload = pre && *pre ? g_strdup_printf("%s:%s", lib, pre) : g_strdup(lib);
	setenv("LD_PRELOAD", preload, 1);
	g_free(preload);
	g_string_free(names, TRUE);
}

int sim_can_start(struct sim_host *h)
{
	char tmpl[] = "/tmp/kflash-simcan.XXXXXX";
	gchar *dir, *bus = NULL, *lib = NULL, *sock = NULL;
	GPtrArray *argv = NULL;
	int ret = -1, ctl[2] = { -1, -1 };
	char ctl_arg[16];
	pid_t pid;

	if (!h->ncan)
		return 0;
	dir = sim_can_prog_dir();
	if (!dir) {
		sim_log("cannot tell where kflash-simhost is (/proc/self/exe)");
		return -1;
	}
	bus = g_build_filename(dir, "kflash-simcanbus", NULL);
	lib = g_build_filename(dir, "libkflash-simcan.so", NULL);
	if (access(bus, X_OK) < 0 || access(lib, R_OK) < 0) {
		sim_log("CAN boards need %s and %s (make)", bus, lib);
		goto out;
	}
	if (!mkdtemp(tmpl)) {
		sim_log("mkdtemp: %s", strerror(errno));
		goto out;
	}
	h->can_dir = g_strdup(tmpl);
	sock = g_build_filename(h->can_dir, "bus.sock", NULL);
	for (int i = 0; i < h->ncan_ifaces; i++) {
		if (h->can_ifaces[i].bridge) {
			/* under its board's USB interface, made by sim_plug() */
			if (sim_can_iface_present(h, i))
				sim_can_write_state(h, i);
			continue;
		}
		if (sim_can_add_netdev(h, i) < 0)
			goto out;
		sim_can_write_state(h, i);
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
		sim_log("socketpair: %s", strerror(errno));
		goto out;
	}
	snprintf(ctl_arg, sizeof(ctl_arg), "%d", ctl[1]);
	sim_can_setenv(h, sock, lib);

	argv = g_ptr_array_new();
	g_ptr_array_add(argv, bus);
	g_ptr_array_add(argv, (gpointer)"--socket");
	g_ptr_array_add(argv, sock);
	g_ptr_array_add(argv, (gpointer)"--image-dir");
	g_ptr_array_add(argv, h->image_dir);
	if (h->events_path) {
		g_ptr_array_add(argv, (gpointer)"--events");
		g_ptr_array_add(argv, h->events_path);
	}
	for (int i = 0; i < sim_verbose; i++)
		g_ptr_array_add(argv, (gpointer)"-v");
	g_ptr_array_add(argv, (gpointer)"--control");
	g_ptr_array_add(argv, ctl_arg);
	for (int i = 0; i < h->ncan_ifaces; i++) {
		if (!h->can_ifaces[i].down)
			continue;
		g_ptr_array_add(argv, (gpointer)"--down");
		g_ptr_array_add(argv, h->can_ifaces[i].name);
	}
	for (int i = 0; i < h->ncan; i++) {
		g_ptr_array_add(argv, (gpointer)"--board");
		g_ptr_array_add(argv, h->can_specs[i]);
	}
	g_ptr_array_add(argv, NULL);
	pid = fork();
	if (pid < 0) {
		sim_log("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		sigset_t none;

		/* the bus needs neither umockdev nor our preload */
		unsetenv("LD_PRELOAD");
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (fcntl(ctl[1], F_SETFD, 0) < 0)
			_exit(127);
		execv(bus, (char **)argv->pdata);
		_exit(127);
	}
	h->can_pid = pid;
	close(ctl[1]);
	ctl[1] = -1;
	h->can_ctl = ctl[0];
	ctl[0] = -1;
	/* up when its socket is there (it renames it into place) */
	for (int i = 0; i < 500; i++) {
		struct stat st;
		int status;

		if (stat(sock, &st) == 0) {
			ret = 0;
			break;
		}
		if (waitpid(pid, &status, WNOHANG) == pid) {
			h->can_pid = 0;
			sim_log("kflash-simcanbus exited at once (a bad CAN board file?)");
			break;
		}
		usleep(10000);
	}
	if (ret < 0 && h->can_pid)
		sim_log("kflash-simcanbus did not come up within 5 s");
	/* a bridge that starts in Katapult has no interface yet */
	for (int i = 0; ret == 0 && i < h->ncan_ifaces; i++)
		if (h->can_ifaces[i].bridge && !sim_can_iface_present(h, i))
			sim_can_bridge_link(&h->boards[h->can_ifaces[i].bridge - 1], false);
out:
	if (ctl[0] >= 0)
		close(ctl[0]);
	if (ctl[1] >= 0)
		close(ctl[1]);
	if (argv)
		g_ptr_array_free(argv, TRUE);
	g_free(sock);
	g_free(lib);
	g_free(bus);
	g_free(dir);
	return ret;
}

void sim_can_stop(struct sim_host *h)
{
	if (h->can_ctl >= 0) {
		close(h->can_ctl);
		h->can_ctl = -1;
	}
	if (h->can_pid > 0) {
		(void)kill(h->can_pid, SIGTERM);
		(void)waitpid(h->can_pid, NULL, 0);
		h->can_pid = 0;
	}
	if (h->can_dir) {
		gchar *sock = g_build_filename(h->can_dir, "bus.sock", NULL);

		(void)unlink(sock);
		(void)rmdir(h->can_dir);
		g_free(sock);
		g_clear_pointer(&h->can_dir, g_free);
	}
	for (int i = 0; i < h->ncan; i++)
		g_clear_pointer(&h->can_specs[i], g_free);
	h->ncan = 0;
}
