/* host_control.c - kflash-simhost's control FIFO: scenarios change the world while the command runs. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "host.h"

static void sim_run_unplug(struct sim_hboard *b, const char *arg)
{
	(void)arg;
	sim_plug_cmd_unplug(b);
}

static void sim_run_plug(struct sim_hboard *b, const char *arg)
{
	(void)arg;
	sim_plug_cmd_plug(b);
}

static void sim_run_mode(struct sim_hboard *b, const char *arg)
{
	if (!strcmp(arg, "klipper"))
		sim_plug_cmd_mode(b, SIM_MODE_KLIPPER);
	else if (!strcmp(arg, "katapult"))
		sim_plug_cmd_mode(b, SIM_MODE_KATAPULT);
	else
		sim_log("control: mode %s: unknown mode '%s' (klipper or katapult), ignored",
			b->fx.name, arg);
}

/* "after NAME klipper|katapult|gone": what the board does after its next
 * COMPLETE from now on, as its after_complete= key says (a firmware that
 * does not come back, then one that does). */
static void sim_run_after(struct sim_hboard *b, const char *arg)
{
	if (!strcmp(arg, "klipper"))
		b->fx.after_complete = SIM_AFTER_KLIPPER;
	else if (!strcmp(arg, "katapult"))
		b->fx.after_complete = SIM_AFTER_KATAPULT;
	else if (!strcmp(arg, "gone"))
		b->fx.after_complete = SIM_AFTER_GONE;
	else {
		sim_log("control: after %s: unknown word '%s' (klipper, katapult or gone), "
			"ignored", b->fx.name, arg);
		return;
	}
	sim_event(b->host, b->fx.name, "after %s", arg);
}

/* The commands, as fixtures/boards/README.md and sim/fake/lib/faults.py
 * name them: NAME BOARD [ARG]. */
static const struct {
	const char *name;
	int words;			/* the name included */
	void (*run)(struct sim_hboard *b, const char *arg);
} sim_ctl_cmds[] = {
	{ "unplug", 2, sim_run_unplug },
	{ "plug", 2, sim_run_plug },
	{ "mode", 3, sim_run_mode },
	{ "after", 3, sim_run_after },
};

static struct sim_hboard *sim_find_board(struct sim_host *h, const char *name)
{
	for (int i = 0; i < h->nboards; i++)
		if (!strcmp(h->boards[i].fx.name, name))
			return &h->boards[i];
	return NULL;
}

static void sim_ctl_line(struct sim_host *h, char *line)
{
	char *argv[4] = { NULL };
	int argc = 0;
	struct sim_hboard *b;
	size_t c;

	for (char *tok = strtok(line, " \t\r"); tok; tok = strtok(NULL, " \t\r")) {
		if (argc == (int)G_N_ELEMENTS(argv)) {
			sim_log("control: too many words, line ignored");
			return;
		}
		argv[argc++] = tok;
	}
	if (!argc || argv[0][0] == '#')
		return;
	for (c = 0; c < G_N_ELEMENTS(sim_ctl_cmds); c++)
		if (!strcmp(argv[0], sim_ctl_cmds[c].name))
			break;
	if (c == G_N_ELEMENTS(sim_ctl_cmds) || argc != sim_ctl_cmds[c].words) {
		sim_log("control: unknown command '%s%s%s%s%s' ignored (unplug NAME, plug NAME, "
			"mode NAME klipper|katapult, after NAME klipper|katapult|gone)", argv[0], argc > 1 ? " " : "",
			argc > 1 ? argv[1] : "", argc > 2 ? " " : "", argc > 2 ? argv[2] : "");
		return;
	}
	b = sim_find_board(h, argv[1]);
	if (!b) {
		sim_log("control: %s: no board named '%s', ignored", argv[0], argv[1]);
		return;
	}
	sim_debug("control: %s %s%s%s", argv[0], argv[1], argc > 2 ? " " : "", argc > 2 ? argv[2] : "");
	sim_ctl_cmds[c].run(b, argv[2]);
}

/* Reads what the writers sent; runs each complete line. */
void sim_ctl_read(struct sim_host *h)
{
	for (;;) {
		ssize_t n = read(h->ctl_fd, h->ctl_buf + h->ctl_len, sizeof(h->ctl_buf) - 1 - h->ctl_len);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		h->ctl_len += (size_t)n;
		h->ctl_buf[h->ctl_len] = '\0';
		while ((nl = memchr(h->ctl_buf, '\n', h->ctl_len))) {
			size_t used = (size_t)(nl - h->ctl_buf) + 1;

			*nl = '\0';
			if (!h->ctl_overlong)
				sim_ctl_line(h, h->ctl_buf);
			h->ctl_overlong = false;
			memmove(h->ctl_buf, h->ctl_buf + used, h->ctl_len - used);
			h->ctl_len -= used;
			h->ctl_buf[h->ctl_len] = '\0';
		}
		if (h->ctl_len == sizeof(h->ctl_buf) - 1) {
			if (!h->ctl_overlong)
				sim_log("control: line too long, ignored");
			h->ctl_overlong = true;
			h->ctl_len = 0;
		}
	}
}

/* Makes the FIFO at PATH (replacing a stale one) and keeps it open for
 * reading and writing, so writers never block in open() and we never see
 * EOF when one goes away. */
int sim_ctl_open(struct sim_host *h, const char *path)
{
	struct stat st;
	char *abs;

	if (lstat(path, &st) == 0) {
		if (!S_ISFIFO(st.st_mode)) {
			sim_log("%s: exists and is not a FIFO", path);
			return -EEXIST;
		}
		(void)unlink(path);
	}
	if (mkfifo(path, 0600) < 0) {
		int r = -errno;

		sim_log("control FIFO %s: %s", path, strerror(-r));
		return r;
	}
	h->ctl_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (h->ctl_fd < 0) {
		int r = -errno;

		sim_log("control FIFO %s: %s", path, strerror(-r));
		(void)unlink(path);
		return r;
	}
	abs = g_canonicalize_filename(path, NULL);
	h->ctl_path = abs;
	/* so the command (or what it runs) can find it */
	setenv("KFLASH_SIM_CONTROL", abs, 1);
	sim_debug("control FIFO %s", abs);
	return 0;
}
