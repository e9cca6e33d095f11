/* host_pump.c - kflash-simhost's pty pump: serves each board's Klipper or Katapult side on its tty. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
/* The kernel's termios2 (c_ospeed for custom rates such as 250000); glibc's
 * <termios.h> must stay out of this file or the struct names clash. */
#include <asm/termbits.h>

#include "host.h"

/* ------------------------------------------------------------------ */
/* ioctl handler: runs on umockdev's worker thread                      */

static void sim_notify(struct sim_hboard *b)
{
	char c = 1;
	ssize_t n;

	/* EAGAIN is fine: a full pipe already means "look again". */
	n = write(b->host->notify[1], &c, 1);
	(void)n;
}

static void sim_on_client_connected(UMockdevIoctlBase *handler, UMockdevIoctlClient *client,
				    gpointer data)
{
	struct sim_hboard *b = data;

	(void)client;
	if (g_atomic_pointer_get(&b->handler) != (gpointer)handler)
		return;
	/* Opening a cdc_acm tty raises DTR and RTS (tty_port_block_til_ready). */
	g_atomic_int_or((guint *)&b->modem, TIOCM_DTR | TIOCM_RTS);
	sim_notify(b);
}

static gboolean sim_on_ioctl(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer data)
{
	struct sim_hboard *b = data;
	gulong req = umockdev_ioctl_client_get_request(client);
	UMockdevIoctlData *arg, *val;
	GError *err = NULL;
	int bits, res, e = 0;

	if (sim_verbose > 1)
		sim_log("%s: ioctl 0x%lx from a client", b->fx.name, (unsigned long)req);
	if (g_atomic_pointer_get(&b->handler) != (gpointer)handler) {
		/* The board re-enumerated under this client: a dead tty. */
		umockdev_ioctl_client_complete(client, -1, EIO);
		return TRUE;
	}
	switch (req) {
	case TIOCMBIS:
	case TIOCMBIC:
	case TIOCMSET:
	case TIOCMGET:
		/* A pty has no modem lines (ENOTTY); a USB CDC device does. */
		arg = umockdev_ioctl_client_get_arg(client);
		val = umockdev_ioctl_data_resolve(arg, 0, sizeof(int), &err);
		if (!val) {
			g_clear_error(&err);
			umockdev_ioctl_client_complete(client, -1, EFAULT);
			return TRUE;
		}
		if (req == TIOCMGET) {
			bits = g_atomic_int_get(&b->modem) | TIOCM_CTS | TIOCM_DSR | TIOCM_CAR;
			umockdev_ioctl_data_update(val, 0, (guint8 *)&bits, sizeof(bits));
		} else {
			memcpy(&bits, val->data, sizeof(bits));
			bits &= TIOCM_DTR | TIOCM_RTS;
			if (req == TIOCMBIS)
				g_atomic_int_or((guint *)&b->modem, (guint)bits);
			else if (req == TIOCMBIC)
				g_atomic_int_and((guint *)&b->modem, ~(guint)bits);
			else
				g_atomic_int_set(&b->modem, bits);
		}
		g_object_unref(val);
		umockdev_ioctl_client_complete(client, 0, 0);
		if (req != TIOCMGET)
			sim_notify(b);
		return TRUE;
	default:
		/* TCGETS2/TCSETS2 (pyserial's custom baud), FIONREAD, TIOCEXCL...:
		 * the pty slave does them itself. */
		res = umockdev_ioctl_client_execute(client, &e, &err);
		if (err) {
			g_clear_error(&err);
			umockdev_ioctl_client_complete(client, -1, EIO);
			return TRUE;
		}
		umockdev_ioctl_client_complete(client, res, e);
		if (req == TCSETS2 || req == TCSETSW2 || req == TCSETSF2 ||
		    req == TCSETS || req == TCSETSW || req == TCSETSF)
			sim_notify(b);
		return TRUE;
	}
}

UMockdevIoctlBase *sim_pump_new_handler(struct sim_hboard *b)
{
	UMockdevIoctlBase *handler = g_object_new(UMOCKDEV_TYPE_IOCTL_BASE, NULL);

	g_signal_connect(handler, "handle-ioctl", G_CALLBACK(sim_on_ioctl), b);
	g_signal_connect(handler, "client-connected", G_CALLBACK(sim_on_client_connected), b);
	return handler;
}

/* ------------------------------------------------------------------ */
/* The tty's master side                                                */

int sim_pump_open_master(char *pts, size_t ptslen)
{
	struct termios2 t;
	int m;

	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (m < 0)
		return -errno;
	if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, pts, ptslen) != 0) {
		int r = -errno;

		close(m);
		return r;
	}
	/* The line settings cdc_acm and usb-serial start a tty with (9600 baud,
	 * HUPCL, CLOCAL; a pts slave would start at 38400 without HUPCL, and
	 * then closing the port would not drop DTR, which is half of Klipper's
	 * bootloader request). Echo, canonical mode and newline translation go
	 * off as umockdev does for its ttys: clients set raw mode anyway. */
	if (ioctl(m, TCGETS2, &t) == 0) {
		t.c_iflag &= ~(tcflag_t)(IGNCR | INLCR | ICRNL | IXON);
		t.c_oflag &= ~(tcflag_t)(ONLCR | OCRNL | OPOST);
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ECHOE | ISIG | IEXTEN);
		t.c_cflag = B9600 | CS8 | CREAD | HUPCL | CLOCAL;
		t.c_ispeed = t.c_ospeed = 9600;
		(void)ioctl(m, TCSETS2, &t);
	}
	return m;
}

static void sim_image_stat(const struct sim_hboard *b, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	if (b->image_path && stat(b->image_path, st) < 0)
		memset(st, 0, sizeof(*st));
}

/* ------------------------------------------------------------------ */
/* Serving the ttys                                                     */

static unsigned sim_baud_of(const struct termios2 *t)
{
	static const struct { tcflag_t code; unsigned baud; } map[] = {
		{ B0, 0 }, { B50, 50 }, { B75, 75 }, { B110, 110 }, { B134, 134 },
		{ B150, 150 }, { B200, 200 }, { B300, 300 }, { B600, 600 },
		{ B1200, 1200 }, { B1800, 1800 }, { B2400, 2400 }, { B4800, 4800 },
		{ B9600, 9600 }, { B19200, 19200 }, { B38400, 38400 },
		{ B57600, 57600 }, { B115200, 115200 }, { B230400, 230400 },
		{ B460800, 460800 }, { B500000, 500000 }, { B576000, 576000 },
		{ B921600, 921600 }, { B1000000, 1000000 }, { B1152000, 1152000 },
		{ B1500000, 1500000 }, { B2000000, 2000000 }, { B2500000, 2500000 },
		{ B3000000, 3000000 }, { B3500000, 3500000 }, { B4000000, 4000000 },
	};
	tcflag_t code = t->c_cflag & CBAUD;

	if (code == BOTHER)
		return t->c_ospeed;
	for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
		if (map[i].code == code)
			return map[i].baud;
	return t->c_ospeed;
}

void sim_pump_reset(struct sim_hboard *b)
{
	struct termios2 t;

	b->hup = false;
	b->npending = 0;
	b->write_started = false;
	b->scan = 0;
	b->last_baud = 0;
	b->last_dtr = 0;
	if (ioctl(b->master, TCGETS2, &t) == 0)
		b->last_baud = sim_baud_of(&t);
	sim_image_stat(b, &b->image_st);
}

static void sim_take_events(struct sim_hboard *b)
{
	enum sim_event ev;
	struct stat st;
	int guard = 0;

	if (!b->core)
		return;
	while ((ev = sim_board_take_event(b->core)) != SIM_EV_NONE && guard++ < 8) {
		switch (ev) {
		case SIM_EV_ENTER_BOOTLOADER:
			sim_event(b->host, b->fx.name, "bootloader-request");
			sim_schedule_reset(b, SIM_MODE_KATAPULT);
			break;
		case SIM_EV_BOOT_APP:
		case SIM_EV_HANG:
			sim_image_stat(b, &st);
			if (st.st_mtime && (st.st_ino != b->image_st.st_ino ||
					    st.st_size != b->image_st.st_size ||
					    st.st_mtim.tv_sec != b->image_st.st_mtim.tv_sec ||
					    st.st_mtim.tv_nsec != b->image_st.st_mtim.tv_nsec))
				sim_event(b->host, b->fx.name, "flash-complete bytes=%lld",
					  (long long)st.st_size);
			b->image_st = st;
			/* "boot-app" whatever comes next: the bootloader has
			 * acked COMPLETE and jumps. An image the CPU cannot
			 * start hangs it (disconnect, hang); otherwise
			 * after_complete decides whether the app runs
			 * (disconnect, enumerate klipper), falls back to the
			 * bootloader or leaves the bus */
			sim_event(b->host, b->fx.name, "boot-app");
			sim_schedule_reset(b, b->fx.after_complete == SIM_AFTER_KATAPULT ?
					   SIM_MODE_KATAPULT : SIM_MODE_KLIPPER);
			b->stay_away = b->fx.after_complete == SIM_AFTER_GONE;
			b->hang = ev == SIM_EV_HANG;
			break;
		default:
			break;
		}
	}
}

static void sim_flush_pending(struct sim_hboard *b)
{
	ssize_t n;

	while (b->npending && b->master >= 0) {
		n = write(b->master, b->pending, b->npending);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				b->npending = 0;	/* hung up: the bytes are lost, as on USB */
			return;
		}
		memmove(b->pending, b->pending + n, b->npending - (size_t)n);
		b->npending -= (size_t)n;
	}
}

static void sim_queue(struct sim_hboard *b, const uint8_t *data, size_t len)
{
	if (len > sizeof(b->pending) - b->npending) {
		sim_log("%s: output overrun, %zu bytes dropped", b->fx.name, len);
		len = sizeof(b->pending) - b->npending;
	}
	memcpy(b->pending + b->npending, data, len);
	b->npending += len;
	sim_flush_pending(b);
}

/* Logs "write-start" when the first SEND_BLOCK of a Katapult session
 * arrives (frame start 01 88 12), before the board sees it. */
static void sim_scan_send_block(struct sim_hboard *b, const uint8_t *in, size_t len)
{
	static const uint8_t start[] = { 0x01, 0x88, 0x12 };

	if (b->write_started || sim_board_mode(b->core) != SIM_MODE_KATAPULT)
		return;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == start[b->scan])
			b->scan++;
		else
			b->scan = in[i] == start[0] ? 1 : 0;
		if (b->scan == sizeof(start)) {
			b->write_started = true;
			sim_event(b->host, b->fx.name, "write-start");
			return;
		}
	}
}

static void sim_read_master(struct sim_hboard *b)
{
	static uint8_t out[65536];
	uint8_t in[4096];
	size_t olen;
	ssize_t n;
	int r;

	for (;;) {
		n = read(b->master, in, sizeof(in));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* EIO: the last client closed the slave */
			b->hup = true;
			return;
		}
		/* fixed devices swallow what they get; a board that is resetting
		 * (between its event and the disconnect) no longer runs code */
		if (!b->core || b->state != SIM_ST_PRESENT)
			continue;
		sim_scan_send_block(b, in, (size_t)n);
		olen = 0;
		r = sim_board_input(b->core, in, (size_t)n, out, sizeof(out), &olen);
		if (r < 0)
			sim_log("%s: board input: %s", b->fx.name, strerror(-r));
		if (olen)
			sim_queue(b, out, olen);
		sim_take_events(b);
	}
}

/* Compare the line settings with what the board last heard. */
static void sim_check_line(struct sim_hboard *b)
{
	struct termios2 t;
	unsigned baud;
	int dtr;

	if (b->master < 0 || ioctl(b->master, TCGETS2, &t) < 0)
		return;
	baud = sim_baud_of(&t);
	dtr = (g_atomic_int_get(&b->modem) & TIOCM_DTR) ? 1 : 0;
	if (baud == b->last_baud && dtr == b->last_dtr)
		return;
	sim_debug("%s: line baud=%u dtr=%d", b->fx.name, baud, dtr);
	b->last_baud = baud;
	b->last_dtr = dtr;
	if (b->core) {
		sim_board_line(b->core, baud, dtr);
		sim_take_events(b);
	}
}

/* A client closing the last slave fd: HUPCL drops DTR, as the tty layer
 * does on a real port. */
static void sim_slave_closed(struct sim_hboard *b)
{
	struct termios2 t;

	if (b->master >= 0 && ioctl(b->master, TCGETS2, &t) == 0 && (t.c_cflag & HUPCL))
		g_atomic_int_and((guint *)&b->modem, ~(guint)(TIOCM_DTR | TIOCM_RTS));
	sim_debug("%s: client closed /dev/%s (HUPCL %s)", b->fx.name, b->tty,
		  (t.c_cflag & HUPCL) ? "drops DTR" : "off");
	b->npending = 0;
}

/* While no client has the slave open the master polls POLLHUP forever, so
 * it is left out of poll() and looked at once a tick. */
static void sim_check_hup(struct sim_hboard *b)
{
	struct pollfd p = { .fd = b->master, .events = POLLIN };

	if (b->master < 0 || !b->hup)
		return;
	if (poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP))
		b->hup = false;
}

/* ------------------------------------------------------------------ */
/* The emulated boards                                                  */

static void sim_core_log(void *ctx, const char *msg)
{
	const struct sim_hboard *b = ctx;

	sim_debug("%s: %s", b->fx.name, msg);
}

int sim_pump_make_cores(struct sim_host *h)
{
	for (int i = 0; i < h->nboards; i++) {
		struct sim_hboard *b = &h->boards[i];
		struct sim_board_cfg cfg;

		b->image_path = g_strdup_printf("%s/%s.bin", h->image_dir, b->fx.name);
		if (b->fx.kind == SIM_KIND_FIXED)
			continue;
		cfg = (struct sim_board_cfg){
			.mcu = b->fx.mcu,
			.serial = b->fx.serial,
			.image_path = b->image_path,
			.version = b->fx.version,
			.mode = b->fx.mode,
			.block_size = b->fx.block_size,
			.app_start = b->fx.app_start,
			.fault = b->fx.fault,
			.log = sim_core_log,
			.log_ctx = b,
		};
		if (sim_board_cfg_problem(&cfg)) {
			sim_log("%s: mcu=%s block_size=%u app_start=0x%08x: %s", b->fx.name,
				b->fx.mcu, (unsigned)b->fx.block_size, (unsigned)b->fx.app_start,
				sim_board_cfg_problem(&cfg));
			return -EINVAL;
		}
		b->core = sim_board_new(&cfg);
		if (!b->core) {
			sim_log("%s: the board emulator: %s", b->fx.name, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The pump's share of the poll loop                                    */

int sim_pump_poll_fds(struct sim_host *h, struct pollfd *pfd, struct sim_hboard **who, int n,
		      int64_t now, int *timeout)
{
	bool tick = false;

	for (int i = 0; i < h->nboards; i++) {
		struct sim_hboard *b = &h->boards[i];

		if (b->state == SIM_ST_LEAVING || b->state == SIM_ST_ABSENT) {
			int64_t left = b->deadline - now;

			left = left < 0 ? 0 : left;
			if (*timeout < 0 || left < *timeout)
				*timeout = (int)left;
		}
		if (b->master < 0)
			continue;
		tick = true;
		if (b->hup)
			continue;
		who[n] = b;
		pfd[n++] = (struct pollfd){ .fd = b->master,
			.events = POLLIN | (b->npending ? POLLOUT : 0) };
	}
	if (tick && (*timeout < 0 || *timeout > SIM_TICK_MS))
		*timeout = SIM_TICK_MS;
	return n;
}

void sim_pump_notified(struct sim_host *h)
{
	char buf[64];

	while (read(h->notify[0], buf, sizeof(buf)) > 0)
		;
	for (int i = 0; i < h->nboards; i++)
		if (h->boards[i].state == SIM_ST_PRESENT || h->boards[i].state == SIM_ST_LEAVING)
			sim_check_line(&h->boards[i]);
}

void sim_pump_ready(struct sim_hboard *b, short revents)
{
	if (revents & POLLOUT)
		sim_flush_pending(b);
	if (revents & (POLLIN | POLLERR))
		sim_read_master(b);
	if ((revents & POLLHUP) && !(revents & POLLIN))
		b->hup = true;
	if (b->hup && b->master >= 0)
		sim_slave_closed(b);
}

void sim_pump_tick(struct sim_hboard *b)
{
	if (b->state == SIM_ST_PRESENT || b->state == SIM_ST_LEAVING) {
		sim_check_hup(b);
		sim_check_line(b);
	}
}
