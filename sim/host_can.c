/* host_can.c - kflash-simhost's CAN side: the interfaces in the testbed, kflash-simcanbus serving the transport=can boards, and the preload that gives the command raw CAN sockets on it. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host.h"

#define SIM_CAN_BITRATE		1000000
#define SIM_CAN_TXQUEUELEN	128
/* The bus's first ifindex (can_wire.h's SIM_CAN_IFINDEX_BASE). */
#define SIM_CAN_IFINDEX0	100

int sim_can_add(struct sim_host *h, const char *spec, const struct sim_fixture *f)
{
	const char *name = f->can_iface && *f->can_iface ? f->can_iface : "can0";
	struct sim_can_iface *ci = NULL;

	if (h->ncan >= SIM_MAX_BOARDS) {
		sim_log("too many CAN boards (at most %d)", SIM_MAX_BOARDS);
		return -E2BIG;
	}
	if (strlen(name) >= sizeof(ci->name) || strchr(name, ',') || strchr(name, '/')) {
		sim_log("%s: bad interface name '%s'", f->name, name);
		return -EINVAL;
	}
	for (int i = 0; i < h->ncan_ifaces; i++)
		if (!strcmp(h->can_ifaces[i].name, name))
			ci = &h->can_ifaces[i];
	if (!ci) {
		if (h->ncan_ifaces == (int)G_N_ELEMENTS(h->can_ifaces)) {
			sim_log("too many CAN interfaces");
			return -E2BIG;
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
	h->can_specs[h->ncan++] = g_strdup(spec);
	sim_debug("%s: transport=can: a node on %s, served by kflash-simcanbus", f->name, name);
	return 0;
}

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
		"type", "280", "ifindex", idx, "mtu", "16", "tx_queue_len", qlen,
		"operstate", ci->down ? "down" : "up", "carrier", ci->down ? "0" : "1",
		"flags", ci->down ? "0x80" : "0xc1", "addr_len", "0",
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
	int ret = -1;
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
		if (sim_can_add_netdev(h, i) < 0)
			goto out;
		sim_can_write_state(h, i);
	}
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
		execv(bus, (char **)argv->pdata);
		_exit(127);
	}
	h->can_pid = pid;
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
out:
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
