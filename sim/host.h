/* host.h - kflash-simhost's shared state: a printer host whose USB boards
 * live in a umockdev testbed and are served by the board emulator.
 *
 * How it fits together
 *
 * - Each board file (host_fixture.c) becomes, at run time, a umockdev
 *   description of a USB device, its interface(s) and a tty child with the
 *   properties udev would give them on a Raspberry Pi 4 (host_udev.c: by-id
 *   and by-path links, ID_* keys).
 * - The tty of a board is a pseudo-terminal whose master we hold. We create
 *   that pty ourselves instead of with an "N:" line: umockdev 0.17 never
 *   forgets a devnode it made a pty for (remove_device() leaves it in its
 *   table and the next add of the same name aborts), and a real unplug
 *   hangs up the tty, which closing our master does. The slave starts with
 *   cdc_acm's line settings (9600 baud, HUPCL), not a pts's.
 * - Clients' ioctls on /dev/ttyACMn (opened by that name, not through a
 *   link) are sent by libumockdev-preload over a socket to the
 *   UMockdevIoctlBase we attach. In umockdev 0.17 those sockets are served
 *   by the testbed's own worker thread ("umockdev-testbed-worker", with its
 *   own GMainContext), not by our main thread: the handle-ioctl handler runs
 *   there, concurrently with the poll loop, and needs no GLib main loop of
 *   ours. So the handler never touches a board; it answers the modem-line
 *   ioctls from an atomic copy of the modem bits, lets the kernel do the
 *   rest (umockdev_ioctl_client_execute) and pokes the main loop through a
 *   pipe. The main loop reads the baud the client set from the master
 *   (TCGETS2 on a pty master reports the slave's termios) and feeds
 *   sim_board_line(). Plain TCSETS from tcsetattr() is done inside the
 *   preload and never reaches the handler, so the main loop also reads the
 *   termios every SIM_TICK_MS, and a last close with HUPCL drops DTR
 *   (host_pump.c).
 * - Re-enumeration (Klipper -> Katapult -> Klipper) takes the devices away
 *   with "remove" uevents and adds the new identity, for which umockdev
 *   sends the "add" uevents, the way the kernel and udev do on a real host
 *   (host_plug.c). After COMPLETE the board's after_complete= key picks the
 *   identity it comes back with (klipper, katapult) or keeps it away (gone).
 * - Scenarios change the world mid-run through the control FIFO
 *   (host_control.c; --control, default $KFLASH_SIM_STATE/simhost.ctl):
 *   "unplug NAME", "plug NAME", "mode NAME klipper|katapult" lines, read in
 *   the same poll loop (simhost.c). We hold the FIFO open O_RDWR, so writers
 *   never block and we never see EOF.
 *   fixtures/boards/README.md documents the commands, keys and events;
 *   sim/fake/lib/faults.py names every fault a board file, a fake tool or a
 *   scenario can inject.
 *
 * Everything runs on the main thread except the ioctl handler (host_pump.c),
 * which only touches the g_atomic_* members of struct sim_hboard.
 */
#ifndef KFLASH_SIM_HOST_H
#define KFLASH_SIM_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <umockdev.h>

#include "board.h"

#define SIM_TICK_MS 10		/* how often the termios of each tty is read */
#define SIM_MAX_BOARDS 32

/* ---- board files (host_fixture.c) ---------------------------------- */

enum sim_kind {
	SIM_KIND_KLIPPER,	/* Klipper app + Katapult bootloader: identity follows the mode */
	SIM_KIND_FIXED,		/* probe, USB-serial chip: identity as given, never changes */
};

/* What the board does after Katapult's COMPLETE (key after_complete=). */
enum sim_after {
	SIM_AFTER_KLIPPER,	/* the new firmware boots: back as Klipper */
	SIM_AFTER_KATAPULT,	/* the new firmware does not start: back in Katapult */
	SIM_AFTER_GONE,		/* disconnects and stays away (until "plug") */
};

struct sim_fixture {
	char *name;
	enum sim_kind kind;
	enum sim_mode mode;
	char *mcu;
	char *serial;
	char *usb_serial;		/* Klipper mode's USB serial when the firmware
					 * sets its own (CONFIG_USB_SERIAL_NUMBER); NULL: serial */
	char *manufacturer;		/* Klipper mode / fixed device */
	char *product;
	char *boot_manufacturer;	/* Katapult mode: "katapult" or "CanBoot" */
	char *version;
	char *klipper_version;
	uint32_t app_start;
	uint32_t block_size;
	enum sim_fault fault;
	enum sim_after after_complete;
	int busnum;
	int devnum;			/* first device number; 0: next free */
	char *port;			/* hub port chain, e.g. "1.2" */
	char *tty;			/* pinned tty name; NULL: lowest free */
	char *vid, *pid, *revision;
	char *driver;			/* cdc_acm, ch341, ftdi_sio, cp210x */
	char *device_class;		/* bDeviceClass, 2 hex digits */
	char *interface_class;		/* class, subclass, protocol: 6 hex digits */
	char *vendor_db, *model_db;	/* hwdb names, optional */
	int disconnect_ms;		/* event -> USB disconnect */
	int reenumerate_ms;		/* disconnect -> new identity appears */
	bool can;			/* transport=can: a node on the simulated
					 * CAN bus (kflash-simcanbus serves it),
					 * not a USB device (host_can.c) */
	char *can_iface;		/* interface=, default can0 */
	int can_bitrate;		/* bitrate= of that interface; 0: default */
	int can_txqueuelen;		/* txqueuelen=; 0: default */
	int can_down;			/* link=down: 1, up: 0, unset: -1 */
	char *can_bridge;		/* can_bridge=IFACE: in Klipper mode a
					 * USB-to-CAN bridge (1d50:606f, gs_usb,
					 * no tty) whose USB interface holds the
					 * net device IFACE, and a node on that
					 * bus (host_can.c) */
};

/* ---- the host and its boards --------------------------------------- */

enum sim_state {
	SIM_ST_PRESENT,		/* enumerated, tty served */
	SIM_ST_LEAVING,		/* reset requested; still served until the deadline */
	SIM_ST_ABSENT,		/* unplugged; reappears at the deadline */
	SIM_ST_DEAD,		/* failed to enumerate; stays away */
	SIM_ST_UNPLUGGED,	/* off the bus until a "plug" command (next_mode) */
	SIM_ST_HUNG,		/* its application faulted: off the bus until a
				 * "mode" command resets it ("plug" does not) */
};

struct sim_hboard {
	struct sim_host *host;
	struct sim_fixture fx;
	struct sim_board *core;		/* NULL for kind=fixed */
	char *image_path;

	enum sim_state state;
	enum sim_mode mode;		/* identity currently enumerated */
	enum sim_mode next_mode;	/* LEAVING, ABSENT, UNPLUGGED: mode it comes back in */
	bool stay_away;			/* LEAVING: after the disconnect, UNPLUGGED */
	bool hang;			/* LEAVING: after the disconnect, HUNG */
	int64_t deadline;

	/* Current enumeration. */
	int devnum;
	char tty[32];
	char *usb_syspath;
	char *syspaths[4];		/* children, removal order: tty, ..., interface */
	int nsyspaths;
	char *links[2];			/* by-id, by-path (relative to the testbed's /dev) */
	char *ptymap;
	int master;
	bool hup;			/* no client has the slave open */
	uint8_t pending[8192];		/* response bytes the master could not take yet */
	size_t npending;
	unsigned last_baud;
	int last_dtr;
	struct stat image_st;		/* image file before this Katapult session */
	bool write_started;		/* "write-start" logged in this Katapult session */
	unsigned scan;			/* bytes of a SEND_BLOCK frame start matched */

	/* Shared with the ioctl worker thread: g_atomic_* only. */
	gpointer handler;		/* UMockdevIoctlBase of the live tty */
	gint modem;			/* TIOCM_* bits the client set */
};

struct sim_host {
	UMockdevTestbed *tb;
	char *root;
	struct sim_hboard boards[SIM_MAX_BOARDS];
	int nboards;
	int devnum_next[33];		/* per bus */
	int notify[2];			/* worker thread -> main loop */
	int events_fd;
	char *image_dir;
	bool image_dir_owned;
	/* control FIFO */
	int ctl_fd;
	char *ctl_path;
	char ctl_buf[512];
	size_t ctl_len;
	bool ctl_overlong;		/* discarding the rest of a too-long line */
	/* the simulated CAN bus and its interfaces (host_can.c) */
	char *can_specs[SIM_MAX_BOARDS];	/* --board specs of transport=can */
	int ncan;
	struct sim_can_iface {
		char name[16];
		int bitrate, txqueuelen;
		bool down;
		int bridge;		/* 1 + the board whose USB device
					 * holds it; 0: a standalone adapter */
	} can_ifaces[8];
	int ncan_ifaces;
	char *events_path;
	char *can_dir;			/* holds the bus's socket */
	pid_t can_pid;
	int can_ctl;			/* the bus's control socket: we send
					 * "up IFACE"/"down IFACE", it sends
					 * "reboot NAME" (a bridge); -1: none */
};

/* ---- the logs and the clock (host_log.c) --------------------------- */

extern int sim_verbose;		/* -v count */

/* One line on stderr, "kflash-simhost: ..." */
void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define sim_debug(...) do { if (sim_verbose) sim_log(__VA_ARGS__); } while (0)

/* CLOCK_MONOTONIC in milliseconds: deadlines and the event log's clock. */
int64_t sim_now_ms(void);

/* "<s.ms> simboard BOARD <words>" on the event log (--events), one write. */
void sim_event(struct sim_host *h, const char *board, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- board files (host_fixture.c) ---------------------------------- */

void sim_fixture_release(struct sim_fixture *f);

/* --board FILE[:klipper|:katapult][,key=value...]: loads it into the next
 * slot of H, refusing a second board of the same name, USB port or pinned
 * tty. 0 or -errno (logged). */
int sim_host_add_board(struct sim_host *h, const char *spec);

/* ---- the CAN bus (host_can.c) -------------------------------------- */

/* A transport=can board F (SPEC as given): for the bus, and its interface. */
int sim_can_add(struct sim_host *h, const char *spec, const struct sim_fixture *f);
/* With CAN boards: the interfaces in the testbed (net subsystem), their
 * state for the fake ip under $KFLASH_SIM_STATE/can/, kflash-simcanbus
 * serving the boards, and the command's environment (KFLASH_SIM_CANBUS,
 * KFLASH_SIM_CAN_IFACES, libkflash-simcan.so ahead of umockdev's LD_PRELOAD).
 * 0 or -1 (logged). */
int sim_can_start(struct sim_host *h);
/* Ends the bus; idempotent. */
void sim_can_stop(struct sim_host *h);
/* B, a can_bridge= board: registers its interface and its node. */
int sim_can_add_bridge(struct sim_host *h, const char *spec, struct sim_hboard *b);
/* B's USB device is (UP) or is no longer a bridge holding its interface:
 * the fake ip's state and the bus's link follow. */
void sim_can_bridge_link(struct sim_hboard *b, bool up);
/* The net device NAME under the USB interface INTF (a /sys path), appended
 * to D, a board's umockdev description; its sysfs path. */
char *sim_can_bridge_netdev(struct sim_host *h, GString *d, const char *intf, const char *name);
/* The bus said something on its control socket ("reboot NAME"). */
void sim_can_ctl_read(struct sim_host *h);
/* B enumerates in MODE as a USB-to-CAN bridge (net device, no tty). */
bool sim_is_bridge(const struct sim_hboard *b, enum sim_mode mode);

/* ---- the udev description (host_udev.c) ---------------------------- */

/* The USB identity of one enumeration. */
struct sim_ident {
	const char *vid, *pid, *manufacturer, *product, *serial;
	const char *driver, *device_class, *interface_class;
	const char *net;		/* the net device under interface 0 (a
					 * USB-to-CAN bridge) instead of a tty */
};

void sim_ident_of(const struct sim_hboard *b, enum sim_mode mode, struct sim_ident *id);
bool sim_driver_is_acm(const char *driver);

/* umockdev description of B's USB device, interface(s) and tty for identity
 * ID; also fills B's syspaths and link names (freed by sim_forget_paths()). */
char *sim_udev_desc_board(struct sim_hboard *b, const struct sim_ident *id);

/* Root hubs and the hubs between them and the boards, added once. */
int sim_udev_add_hubs(struct sim_host *h);

/* ---- the pty pump (host_pump.c) ------------------------------------ */

/* One emulated board per kind=klipper fixture, its image in the image dir. */
int sim_pump_make_cores(struct sim_host *h);

/* A new pty master with cdc_acm's line settings; its slave's name in PTS.
 * The fd or -errno. */
int sim_pump_open_master(char *pts, size_t ptslen);

/* The ioctl handler of B's tty (runs on umockdev's worker thread). */
UMockdevIoctlBase *sim_pump_new_handler(struct sim_hboard *b);

/* A fresh tty session: nothing pending, line state as the master reads it,
 * the image file remembered so a flash can be told from none. */
void sim_pump_reset(struct sim_hboard *b);

/* The poll loop's part (simhost.c): the masters to watch from PFD[N] on
 * (WHO[i] the board of PFD[i]) and the TIMEOUT the boards' deadlines and
 * the termios tick need, returning the new N; the worker thread poked us;
 * a master is ready (REVENTS); once per turn, the tick. */
int sim_pump_poll_fds(struct sim_host *h, struct pollfd *pfd, struct sim_hboard **who, int n,
		      int64_t now, int *timeout);
void sim_pump_notified(struct sim_host *h);
void sim_pump_ready(struct sim_hboard *b, short revents);
void sim_pump_tick(struct sim_hboard *b);

/* ---- plug, unplug, mode changes (host_plug.c) ---------------------- */

int sim_next_devnum(struct sim_host *h, int bus);
int sim_mkdirs(const char *dir);

/* Enumerate B in MODE ("enumerate MODE" when ANNOUNCE). 0 or -errno; on
 * failure nothing of it is left. */
int sim_plug(struct sim_hboard *b, enum sim_mode mode, bool announce);
/* Take B off the bus the way a USB reset does ("remove" uevents). */
void sim_unplug(struct sim_hboard *b);
/* Undo what sim_plug() made outside sysfs: handler, pty, links. */
void sim_unplug_files(struct sim_hboard *b);
void sim_forget_paths(struct sim_hboard *b);

/* The board asked for a reset into NEXT: it leaves after disconnect_ms. */
void sim_schedule_reset(struct sim_hboard *b, enum sim_mode next);
/* Deadlines: a leaving board disconnects, an absent one comes back. */
void sim_plug_tick(struct sim_hboard *b, int64_t now);

/* What the control commands do to a board. */
void sim_plug_cmd_unplug(struct sim_hboard *b);
void sim_plug_cmd_plug(struct sim_hboard *b);
void sim_plug_cmd_mode(struct sim_hboard *b, enum sim_mode mode);

/* ---- the control FIFO (host_control.c) ----------------------------- */

/* Makes the FIFO at PATH, holds it open, names it in KFLASH_SIM_CONTROL. */
int sim_ctl_open(struct sim_host *h, const char *path);
/* Runs every complete line the writers sent. */
void sim_ctl_read(struct sim_host *h);

/* ---- the command (host_command.c) ---------------------------------- */

/* Forks and execs ARGV in its own process group (with the terminal's
 * foreground when we have it: *RET_GAVE_TTY). The pid, -1 (fork failed,
 * errno) or -2 (exec failed, logged, errno). */
pid_t sim_cmd_spawn(char **argv, const sigset_t *oldmask, bool *ret_gave_tty);
/* Ends what the command left: its group, then anything re-parented to us. */
void sim_cmd_end_leftovers(pid_t child, bool gave_tty);

#endif
