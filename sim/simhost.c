/* simhost.c - kflash-simhost's main: runs a command on a simulated printer host whose USB boards live in a umockdev testbed, served by the board emulator. */

/*
 * host.h tells how the pieces fit: the board files (host_fixture.c), their
 * udev description (host_udev.c), the pty pump (host_pump.c), plug, unplug
 * and mode changes (host_plug.c), the control FIFO (host_control.c) and the
 * command (host_command.c). Here: the command line, the testbed's setup and
 * teardown, and the one poll loop that drives them all.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "host.h"

#define SIM_KILL_GRACE_MS 3000	/* SIGTERM to SIGKILL for the command's group */

static void sim_usage(FILE *to)
{
	fputs("usage: kflash-simhost [-v] [--events FILE] [--image-dir DIR] [--control FIFO]\n"
	      "         --board FILE[:klipper|:katapult][,key=value...]... -- COMMAND [ARG...]\n"
	      "Runs COMMAND in a umockdev testbed holding the given USB boards and serves\n"
	      "their ttys with the board emulator until COMMAND exits; exits with its status.\n"
	      "key=value pieces override the board file's keys. --control (default\n"
	      "$KFLASH_SIM_STATE/simhost.ctl when that is set) makes a FIFO that takes the\n"
	      "lines 'unplug NAME', 'plug NAME', 'mode NAME klipper|katapult'.\n"
	      "Run it under umockdev-wrapper (it re-executes itself under it if needed).\n",
	      to);
}

static void sim_rm_rf(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *p;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = g_build_filename(dir, de->d_name, NULL);
		if (unlink(p) < 0 && errno == EISDIR)
			sim_rm_rf(p);
		g_free(p);
	}
	closedir(d);
	(void)rmdir(dir);
}

static int sim_reexec_under_wrapper(char **argv)
{
	int argc = 0;
	char **nargv;

	char self[PATH_MAX];
	ssize_t n;

	if (getenv("KFLASH_SIMHOST_REEXEC")) {
		sim_log("SKIP: libumockdev-preload is not loaded even under umockdev-wrapper");
		return -1;
	}
	setenv("KFLASH_SIMHOST_REEXEC", "1", 1);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -1;
	self[n] = '\0';
	while (argv[argc])
		argc++;
	nargv = g_new0(char *, (size_t)argc + 2);
	nargv[0] = (char *)"umockdev-wrapper";
	for (int i = 0; i < argc; i++)
		nargv[i + 1] = argv[i];
	nargv[1] = self;
	execvp(nargv[0], nargv);
	sim_log("SKIP: not running under umockdev-wrapper, and cannot run it: %s", strerror(errno));
	g_free(nargv);
	return -1;
}

/* The one poll loop: signals, the boards' ttys, the control FIFO and the
 * boards' deadlines, until CHILD, the command, exits. Its exit code (128+N
 * for a signal, ours or its own). */
static int sim_serve(struct sim_host *h, int sfd, pid_t child)
{
	bool child_done = false, stopping = false;
	int status = 0, stop_sig = 0;
	int64_t kill_deadline = 0;

	while (!child_done) {
		struct pollfd pfd[SIM_MAX_BOARDS + 4];
		struct sim_hboard *who[SIM_MAX_BOARDS + 4];
		int n = 0, timeout = -1, r, first_board;
		int64_t now = sim_now_ms();

		pfd[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = h->notify[0], .events = POLLIN };
		/* fd -1 when there is no FIFO: poll() skips it */
		pfd[n++] = (struct pollfd){ .fd = h->ctl_fd, .events = POLLIN };
		/* the CAN bus: a bridge board asked to reboot (-1: no bus) */
		pfd[n++] = (struct pollfd){ .fd = h->can_ctl, .events = POLLIN };
		first_board = n;
		n = sim_pump_poll_fds(h, pfd, who, n, now, &timeout);
		if (stopping) {
			int64_t left = kill_deadline - now;

			left = left < 0 ? 0 : left;
			if (timeout < 0 || left < timeout)
				timeout = (int)left;
		}

		r = poll(pfd, (nfds_t)n, timeout);
		if (r < 0 && errno != EINTR) {
			sim_log("poll: %s", strerror(errno));
			break;
		}

		if (r > 0 && (pfd[0].revents & POLLIN)) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGCHLD)
					continue;
				if (!stopping) {
					/* the last-resort path: the command's whole group goes */
					stop_sig = (int)si.ssi_signo;
					stopping = true;
					kill_deadline = sim_now_ms() + SIM_KILL_GRACE_MS;
					sim_debug("signal %d: stopping %d", stop_sig, (int)child);
					(void)killpg(child, SIGTERM);
				}
			}
			/* reap everything; only our command's status matters */
			for (;;) {
				int st;
				pid_t p = waitpid(-1, &st, WNOHANG);

				if (p <= 0)
					break;
				if (p == child) {
					status = st;
					child_done = true;
				}
			}
		}
		if (r > 0 && (pfd[1].revents & POLLIN))
			sim_pump_notified(h);
		for (int k = first_board; r > 0 && k < n; k++)
			if (pfd[k].revents && who[k]->master == pfd[k].fd)
				sim_pump_ready(who[k], pfd[k].revents);

		/* after the ttys: bytes already sent reach the board before it goes */
		if (r > 0 && (pfd[2].revents & POLLIN))
			sim_ctl_read(h);
		if (r > 0 && pfd[3].revents && h->can_ctl == pfd[3].fd)
			sim_can_ctl_read(h);

		now = sim_now_ms();
		for (int i = 0; i < h->nboards; i++) {
			sim_pump_tick(&h->boards[i]);
			sim_plug_tick(&h->boards[i], now);
		}
		if (stopping && !child_done && sim_now_ms() >= kill_deadline) {
			(void)killpg(child, SIGKILL);
			kill_deadline = sim_now_ms() + 1000;
		}
	}

	if (stop_sig)
		return 128 + stop_sig;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

int main(int argc, char **argv)
{
	static struct sim_host host;
	struct sim_host *h = &host;
	const char *events_path = NULL, *control_path = NULL;
	char *control_default = NULL;
	char **cmd = NULL;
	sigset_t mask, oldmask;
	int sfd, exit_code = 1, argi, made;
	pid_t child = -1;
	bool gave_tty = false;

	/* `kflash-simhost --now`: the event log's clock for shell scripts (a
	 * Python start per event line costs the scenarios seconds) */
	if (argc == 2 && strcmp(argv[1], "--now") == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		printf("%lld.%03ld\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
		return 0;
	}

	h->events_fd = -1;
	h->ctl_fd = -1;
	h->can_ctl = -1;
	h->notify[0] = h->notify[1] = -1;
	for (int i = 0; i <= 32; i++)
		h->devnum_next[i] = 2;

	for (argi = 1; argi < argc; argi++) {
		const char *a = argv[argi];

		if (!strcmp(a, "--")) {
			cmd = &argv[argi + 1];
			break;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			sim_usage(stdout);
			return 0;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			sim_verbose++;
		} else if (!strcmp(a, "--board") && argi + 1 < argc) {
			argi++;
		} else if (!strcmp(a, "--events") && argi + 1 < argc) {
			events_path = argv[++argi];
		} else if (!strcmp(a, "--image-dir") && argi + 1 < argc) {
			h->image_dir = g_strdup(argv[++argi]);
		} else if (!strcmp(a, "--control") && argi + 1 < argc) {
			control_path = argv[++argi];
		} else {
			sim_usage(stderr);
			return 2;
		}
	}
	if (!cmd || !cmd[0]) {
		sim_usage(stderr);
		return 2;
	}
	/* umockdev_in_mock_environment() only says whether a testbed is
	 * active (UMOCKDEV_DIR); what we need is the preload library. */
	if (!getenv("LD_PRELOAD") || !strstr(getenv("LD_PRELOAD"), "libumockdev-preload")) {
		sim_reexec_under_wrapper(argv);
		return 77;
	}
	unsetenv("KFLASH_SIMHOST_REEXEC");	/* not for the command */
	/* after the re-exec check, so the wrapper's environment is ours */
	for (argi = 1; argi < argc && strcmp(argv[argi], "--"); argi++) {
		if (!strcmp(argv[argi], "--board")) {
			if (sim_host_add_board(h, argv[++argi]) < 0)
				return 2;
		} else if (!strcmp(argv[argi], "--events") || !strcmp(argv[argi], "--image-dir") ||
			   !strcmp(argv[argi], "--control")) {
			argi++;
		}
	}
	if (!h->nboards && !h->ncan) {
		sim_log("no --board given");
		return 2;
	}

	/* Signals become events on a signalfd; block them before umockdev
	 * starts its worker thread so that thread never takes one. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);	/* taking the terminal back from the command */
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || pipe2(h->notify, O_CLOEXEC | O_NONBLOCK) < 0) {
		sim_log("signalfd/pipe: %s", strerror(errno));
		return 1;
	}
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1);

	if (events_path) {
		h->events_fd = open(events_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (h->events_fd < 0) {
			sim_log("%s: %s", events_path, strerror(errno));
			return 1;
		}
	}
	if (!h->image_dir) {
		char tmpl[] = "/tmp/kflash-simhost-images.XXXXXX";

		if (!mkdtemp(tmpl)) {
			sim_log("mkdtemp: %s", strerror(errno));
			return 1;
		}
		h->image_dir = g_strdup(tmpl);
		h->image_dir_owned = true;
	} else if (sim_mkdirs(h->image_dir) < 0) {
		sim_log("%s: %s", h->image_dir, strerror(errno));
		return 1;
	}

	if (!control_path && getenv("KFLASH_SIM_STATE") && *getenv("KFLASH_SIM_STATE"))
		control_path = control_default =
			g_build_filename(getenv("KFLASH_SIM_STATE"), "simhost.ctl", NULL);
	if (control_path && sim_ctl_open(h, control_path) < 0)
		goto out;

	h->tb = umockdev_testbed_new();
	h->root = umockdev_testbed_get_root_dir(h->tb);
	sim_debug("testbed %s", h->root);
	made = sim_pump_make_cores(h);
	if (made < 0) {
		exit_code = made == -EINVAL ? 2 : 1;	/* a board the emulator cannot be */
		goto out;
	}
	if (sim_udev_add_hubs(h) < 0)
		goto out;
	for (int i = 0; i < h->nboards; i++) {
		struct sim_hboard *b = &h->boards[i];

		if (sim_plug(b, b->fx.mode, true) < 0)
			goto out;
	}

	h->events_path = events_path ? g_strdup(events_path) : NULL;
	if (sim_can_start(h) < 0)
		goto out;

	child = sim_cmd_spawn(cmd, &oldmask, &gave_tty);
	if (child < 0) {
		exit_code = child == -2 ? 127 : 1;
		if (child == -1)
			sim_log("fork: %s", strerror(errno));
		goto out;
	}

	exit_code = sim_serve(h, sfd, child);

out:
	sim_can_stop(h);
	if (child > 0)
		sim_cmd_end_leftovers(child, gave_tty);
	/* no uevents now: the testbed and whoever listened are going away */
	for (int i = 0; i < h->nboards; i++) {
		struct sim_hboard *b = &h->boards[i];

		if (b->master >= 0)
			sim_unplug_files(b);
		sim_forget_paths(b);
	}
	if (h->tb)
		g_object_unref(h->tb);	/* removes the testbed directory */
	for (int i = 0; i < h->nboards; i++) {
		struct sim_hboard *b = &h->boards[i];

		if (b->core)
			sim_board_free(b->core);
		g_free(b->image_path);
		sim_fixture_release(&b->fx);
	}
	if (h->image_dir_owned)
		sim_rm_rf(h->image_dir);
	g_free(h->image_dir);
	g_free(h->root);
	if (h->events_fd >= 0)
		close(h->events_fd);
	if (h->ctl_fd >= 0) {
		close(h->ctl_fd);
		(void)unlink(h->ctl_path);
	}
	g_free(h->ctl_path);
	g_free(h->events_path);
	g_free(control_default);
	return exit_code;
}
