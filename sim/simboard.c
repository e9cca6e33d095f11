/* simboard.c - kflash-simboard: an emulated board on a pty for flash tools. */
#include <asm/termbits.h>	/* struct termios2: the exact baud, 250000 too */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "board.h"

#define SIM_PROG		"kflash-simboard"
/* How often the line settings are sampled, and the pause while no client
 * has the tty open (the master reports POLLHUP without end then). */
#define SIM_TICK_MS		50
/* A board that reboots into its bootloader drops off the bus at once. */
#define SIM_RESET_MS		100
/* After COMPLETE, wait for the client to close (at most this long) before
 * vanishing, so it always reads the COMPLETE answer. */
#define SIM_BOOT_APP_MAX_MS	1000
/* Time between disappearing and reappearing (USB re-enumeration). */
#define SIM_REENUM_MS		500

enum sim_state {
	SIM_UP,		/* tty present, serving */
	SIM_LEAVING,	/* an event fired; about to disappear */
	SIM_GONE,	/* unplugged: no master, no link */
	SIM_HUNG,	/* the application faulted: gone until we exit */
};

struct sim_server {
	struct sim_board *board;
	const char *link;	/* --tty: symlink to the current slave */
	int master;		/* -1 while gone */
	int sigfd;
	char slave[128];
	int client;		/* someone has the slave open, as far as seen */
	int hup;		/* last poll said no client: pause before the next */
	unsigned baud;
	enum sim_state state;
	int64_t deadline;	/* ms: end of LEAVING or GONE */
	int wait_close;		/* LEAVING may end as soon as the client closed */
	int64_t t0;
};

static int64_t
sim_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void __attribute__((format(printf, 2, 3)))
sim_say(const struct sim_server *s, const char *fmt, ...)
{
	va_list ap;
	int64_t t = sim_now_ms() - s->t0;

	fprintf(stderr, "%s: [%3d.%03d] ", SIM_PROG, (int)(t / 1000),
		(int)(t % 1000));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
sim_board_said(void *ctx, const char *msg)
{
	sim_say(ctx, "board: %s", msg);
}

static const char *
sim_mode_name(enum sim_mode mode)
{
	return mode == SIM_MODE_KATAPULT ? "katapult" : "klipper";
}

/****************************************************************
 * The pseudo-terminal and its link
 ****************************************************************/

/* Only the master is kept: flashtool refuses a device that any process
 * (this one included) holds open through the slave. */
static int
sim_pty_open(struct sim_server *s)
{
	int fd = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (grantpt(fd) < 0 || unlockpt(fd) < 0
	    || ptsname_r(fd, s->slave, sizeof(s->slave)) != 0) {
		int err = errno ? -errno : -EIO;
		close(fd);
		return err;
	}
	s->master = fd;
	s->client = 0;
	s->hup = 0;
	s->baud = 0;
	return 0;
}

static void
sim_pty_close(struct sim_server *s)
{
	if (s->master >= 0)
		close(s->master);
	s->master = -1;
	s->client = 0;
	s->hup = 0;
}

/* Point the link at the current slave; a new link is renamed over the old
 * one so the path never dangles half-made. Refuses to replace anything but
 * a symlink. */
static int
sim_link_point(struct sim_server *s)
{
	char tmp[4096];
	struct stat st;

	if (lstat(s->link, &st) == 0 && !S_ISLNK(st.st_mode))
		return -EEXIST;
	if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", s->link, (int)getpid())
	    >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	(void)unlink(tmp);
	if (symlink(s->slave, tmp) < 0)
		return -errno;
	if (rename(tmp, s->link) < 0) {
		int err = -errno;
		(void)unlink(tmp);
		return err;
	}
	return 0;
}

/* Remove the link only while it still names our slave. */
static void
sim_link_remove(struct sim_server *s)
{
	char target[sizeof(s->slave)];
	ssize_t n = readlink(s->link, target, sizeof(target) - 1);

	if (n < 0)
		return;
	target[n] = 0;
	if (!strcmp(target, s->slave))
		(void)unlink(s->link);
}

static int
sim_appear(struct sim_server *s)
{
	int ret = sim_pty_open(s);

	if (ret < 0) {
		sim_say(s, "cannot open a pty: %s", strerror(-ret));
		return ret;
	}
	ret = sim_link_point(s);
	if (ret < 0) {
		sim_say(s, "cannot link %s -> %s: %s", s->link, s->slave,
			strerror(-ret));
		sim_pty_close(s);
		return ret;
	}
	s->state = SIM_UP;
	sim_say(s, "%s mode (%s:%s) on %s, link %s",
		sim_mode_name(sim_board_mode(s->board)),
		sim_board_manufacturer(s->board), sim_board_pid(s->board),
		s->slave, s->link);
	return 0;
}

static void
sim_disappear(struct sim_server *s)
{
	sim_say(s, "unplugged: %s and %s gone", s->link, s->slave);
	sim_link_remove(s);
	sim_pty_close(s);
	s->state = SIM_GONE;
	s->deadline = sim_now_ms() + SIM_REENUM_MS;
}

/****************************************************************
 * Serving bytes
 ****************************************************************/

/* Blocks briefly when the client is slow to read; drops the rest when it
 * went away, as a USB device's answer is lost when the port closes. */
static void
sim_write_all(struct sim_server *s, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(s->master, buf, len);
		if (n > 0) {
			buf += n;
			len -= n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = s->master, .events = POLLOUT };
			if (poll(&p, 1, 1000) > 0 && !(p.revents & POLLHUP))
				continue;
		}
		sim_say(s, "client not reading: %zu bytes dropped", len);
		return;
	}
}

static void
sim_feed(struct sim_server *s, const uint8_t *data, size_t len)
{
	uint8_t out[4 * SIM_BOARD_FRAME_MAX];
	size_t n;

	do {
		int ret = sim_board_input(s->board, data, len, out,
					  sizeof(out), &n);
		if (ret < 0)
			sim_say(s, "board: %s", strerror(-ret));
		if (n)
			sim_write_all(s, out, n);
		len = 0;	/* later rounds only drain queued answers */
	} while (n == sizeof(out));
}

static void
sim_client_gone(struct sim_server *s)
{
	if (s->client)
		sim_say(s, "client closed %s", s->slave);
	s->client = 0;
	s->hup = 1;
}

static void
sim_client_seen(struct sim_server *s)
{
	if (!s->client)
		sim_say(s, "client opened %s", s->slave);
	s->client = 1;
}

static void
sim_read_master(struct sim_server *s)
{
	uint8_t buf[4096];

	for (;;) {
		ssize_t n = read(s->master, buf, sizeof(buf));
		if (n > 0) {
			sim_client_seen(s);
			sim_feed(s, buf, n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		sim_client_gone(s);	/* EIO: the last slave fd closed */
		return;
	}
}

/* The pty master sees the termios the client set on the slave; TCGETS2
 * gives the exact speed, BOTHER rates such as 250000 included. DTR cannot
 * be seen (modem-line ioctls fail on a pty), so it is passed as unknown. */
static void
sim_check_line(struct sim_server *s)
{
	struct termios2 t;

	if (s->master < 0 || ioctl(s->master, TCGETS2, &t) < 0)
		return;
	if (t.c_ospeed == s->baud)
		return;
	s->baud = t.c_ospeed;
	sim_say(s, "line: %u baud", s->baud);
	sim_board_line(s->board, s->baud, -1);
}

static void
sim_check_event(struct sim_server *s)
{
	switch (sim_board_take_event(s->board)) {
	case SIM_EV_ENTER_BOOTLOADER:
		sim_say(s, "event: enter bootloader, re-enumerating as katapult");
		s->state = SIM_LEAVING;
		s->deadline = sim_now_ms() + SIM_RESET_MS;
		s->wait_close = 0;
		break;
	case SIM_EV_BOOT_APP:
		sim_say(s, "event: boot app, re-enumerating as klipper");
		s->state = SIM_LEAVING;
		s->deadline = sim_now_ms() + SIM_BOOT_APP_MAX_MS;
		s->wait_close = 1;
		break;
	case SIM_EV_HANG:
		sim_say(s, "event: the application does not start (%s): the "
			"board leaves the bus and never comes back",
			sim_board_app_problem(s->board));
		s->state = SIM_LEAVING;
		s->deadline = sim_now_ms() + SIM_BOOT_APP_MAX_MS;
		s->wait_close = 1;
		break;
	case SIM_EV_NONE:
		break;
	}
}

static int
sim_step_state(struct sim_server *s)
{
	int64_t now = sim_now_ms();

	if (s->state == SIM_LEAVING
	    && (now >= s->deadline || (s->wait_close && !s->client))) {
		sim_disappear(s);
		if (sim_board_hung(s->board))
			s->state = SIM_HUNG;
	} else if (s->state == SIM_GONE && now >= s->deadline)
		return sim_appear(s);
	return 0;
}

/* One round: wait for bytes, a signal or the tick. Returns 1 to stop. */
static int
sim_poll_once(struct sim_server *s)
{
	struct pollfd p[2] = {
		{ .fd = s->sigfd, .events = POLLIN },
		{ .fd = s->master, .events = POLLIN },
	};
	int watch_master = s->master >= 0 && !s->hup;
	int n = poll(p, watch_master ? 2 : 1, SIM_TICK_MS);

	if (n < 0 && errno != EINTR)
		return -errno;
	if (n > 0 && p[0].revents) {
		struct signalfd_siginfo si;
		if (read(s->sigfd, &si, sizeof(si)) == sizeof(si))
			sim_say(s, "signal %s: exiting",
				strsignal((int)si.ssi_signo));
		return 1;
	}
	if (!watch_master) {
		s->hup = 0;	/* paused one tick; look at the master again */
		return 0;
	}
	if (p[1].revents & POLLIN)
		sim_read_master(s);
	else if (p[1].revents & (POLLHUP | POLLERR))
		sim_client_gone(s);
	return 0;
}

static int
sim_serve(struct sim_server *s)
{
	int ret = sim_appear(s);

	while (ret == 0) {
		ret = sim_poll_once(s);
		if (ret)
			break;
		sim_check_line(s);
		sim_check_event(s);
		ret = sim_step_state(s);
	}
	sim_link_remove(s);
	sim_pty_close(s);
	return ret < 0 ? 1 : 0;
}

/****************************************************************
 * Command line
 ****************************************************************/

static void
sim_usage(FILE *f)
{
	fprintf(f,
		"usage: " SIM_PROG " --mcu MCU --serial ID --tty PATH --image FILE\n"
		"       [--mode katapult|klipper] [--block-size 64]\n"
		"       [--app-start ADDR] [--version STR]\n"
		"       [--fault none|silent|corrupt-readback|no-bootloader]\n"
		"\n"
		"Serves an emulated printer board on a new pseudo-terminal and\n"
		"keeps PATH a symlink to it. Katapult mode speaks Katapult's\n"
		"serial protocol and writes each flashed image to FILE; klipper\n"
		"mode reboots into katapult on 1200 baud or on Klipper's serial\n"
		"bootloader request (flashtool.py -r). MCU picks the flash\n"
		"geometry and must be a chip Katapult runs on (stm32f0, stm32f103,\n"
		"stm32f2, stm32f4, stm32g0, stm32g4, stm32h7, rp2040, rp2350,\n"
		"lpc1768, lpc1769). After COMPLETE the board comes back as klipper\n"
		"only when the image's vector table would start on the chip;\n"
		"otherwise it leaves and stays away. Defaults: --mode katapult,\n"
		"--app-start 0x8008000, --version v0.0.1-sim.\n"
		"Stops on SIGTERM/SIGINT, removing PATH.\n");
}

static int __attribute__((format(printf, 1, 0)))
sim_bad_arg(const char *fmt, const char *arg)
{
	fprintf(stderr, SIM_PROG ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	sim_usage(stderr);
	return -1;
}

static int
sim_parse_u32(const char *arg, int base, uint32_t *ret)
{
	char *end;
	unsigned long long v;

	if (!arg[0] || arg[0] == '-')
		return -1;
	errno = 0;
	v = strtoull(arg, &end, base);
	if (errno || *end || v > UINT32_MAX)
		return -1;
	*ret = v;
	return 0;
}

/* Returns 0, 1 for --help, or -1 after printing what is wrong. */
static int
sim_parse_args(int argc, char **argv, struct sim_board_cfg *cfg,
	       const char **ret_link)
{
	static const struct option opts[] = {
		{ "mcu", required_argument, NULL, 'm' },
		{ "serial", required_argument, NULL, 's' },
		{ "tty", required_argument, NULL, 't' },
		{ "image", required_argument, NULL, 'i' },
		{ "mode", required_argument, NULL, 'M' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "app-start", required_argument, NULL, 'a' },
		{ "version", required_argument, NULL, 'v' },
		{ "fault", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *link = NULL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': cfg->mcu = optarg; break;
		case 's': cfg->serial = optarg; break;
		case 't': link = optarg; break;
		case 'i': cfg->image_path = optarg; break;
		case 'v': cfg->version = optarg; break;
		case 'M':
			if (!strcmp(optarg, "katapult"))
				cfg->mode = SIM_MODE_KATAPULT;
			else if (!strcmp(optarg, "klipper"))
				cfg->mode = SIM_MODE_KLIPPER;
			else
				return sim_bad_arg("bad --mode '%s' (katapult or klipper)",
						   optarg);
			break;
		case 'b':
			if (sim_parse_u32(optarg, 10, &cfg->block_size) < 0
			    || cfg->block_size != SIM_BLOCK_SIZE)
				return sim_bad_arg("bad --block-size '%s': every Katapult "
						   "build uses 64-byte blocks", optarg);
			break;
		case 'a':
			if (sim_parse_u32(optarg, 0, &cfg->app_start) < 0)
				return sim_bad_arg("bad --app-start '%s' (e.g. 0x8008000)",
						   optarg);
			break;
		case 'f':
			if (sim_fault_parse(optarg, &cfg->fault) < 0)
				return sim_bad_arg("bad --fault '%s'", optarg);
			break;
		case 'h':
			sim_usage(stdout);
			return 1;
		case ':':
			return sim_bad_arg("option %s needs a value",
					   argv[optind - 1]);
		default:
			return sim_bad_arg("unknown option '%s'",
					   argv[optind - 1]);
		}
	}
	if (optind < argc)
		return sim_bad_arg("unexpected argument '%s'", argv[optind]);
	if (!cfg->mcu || !cfg->mcu[0])
		return sim_bad_arg("%s", "--mcu is required");
	if (!cfg->serial || !cfg->serial[0])
		return sim_bad_arg("%s", "--serial is required");
	if (!link || !link[0])
		return sim_bad_arg("%s", "--tty is required");
	if (!cfg->image_path || !cfg->image_path[0])
		return sim_bad_arg("%s", "--image is required");
	if (strlen(cfg->mcu) > 64 || strlen(cfg->serial) > 64)
		return sim_bad_arg("%s", "--mcu and --serial take at most 64 characters");
	if (strlen(cfg->version) > 64)
		return sim_bad_arg("%s", "--version takes at most 64 characters");
	if (sim_board_cfg_problem(cfg)) {
		fprintf(stderr, SIM_PROG ": --mcu %s --app-start 0x%x: %s\n",
			cfg->mcu, (unsigned)cfg->app_start,
			sim_board_cfg_problem(cfg));
		return -1;
	}
	*ret_link = link;
	return 0;
}

/* SIGTERM/SIGINT/SIGHUP arrive through a signalfd, as events of the loop. */
static int
sim_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int
main(int argc, char **argv)
{
	struct sim_server s = { .master = -1, .t0 = sim_now_ms() };
	struct sim_board_cfg cfg = {
		.version = "v0.0.1-sim",
		.mode = SIM_MODE_KATAPULT,
		.block_size = 64,
		.app_start = 0x8008000,
		.fault = SIM_FAULT_NONE,
		.log = sim_board_said,
		.log_ctx = &s,
	};
	int ret = sim_parse_args(argc, argv, &cfg, &s.link);

	if (ret)
		return ret > 0 ? 0 : 2;
	s.board = sim_board_new(&cfg);
	if (!s.board) {
		fprintf(stderr, SIM_PROG ": cannot create the board: %s\n",
			strerror(errno));
		return errno == EINVAL ? 2 : 1;
	}
	s.sigfd = sim_signals();
	if (s.sigfd < 0) {
		fprintf(stderr, SIM_PROG ": signalfd: %s\n", strerror(errno));
		sim_board_free(s.board);
		return 1;
	}
	sim_say(&s, "board %s serial %s, block size %u, app start 0x%08x",
		cfg.mcu, cfg.serial, (unsigned)cfg.block_size,
		(unsigned)cfg.app_start);
	ret = sim_serve(&s);
	close(s.sigfd);
	sim_board_free(s.board);
	return ret;
}
