/* board.h - emulated printer MCU board: Klipper USB identity and Katapult
 * bootloader protocol, independent of the transport that carries its bytes.
 *
 * The standalone emulator (simboard.c) drives it from a pty master it opened
 * itself; the simulated host (host_pump.c) drives it from the master side of
 * an umockdev tty. Both feed received bytes in, write the returned bytes out, and
 * react to the events it raises (re-enumerate into Katapult, boot the app).
 *
 * The board changes its own mode when it raises an event (ENTER_BOOTLOADER
 * leaves it in Katapult mode, BOOT_APP in Klipper mode), so sim_board_mode()
 * always names the firmware now running; the driver only has to make the
 * transport disappear and reappear with the identity of that mode. */
#ifndef KFLASH_SIM_BOARD_H
#define KFLASH_SIM_BOARD_H

#include <stddef.h>
#include <stdint.h>

enum sim_mode {
	SIM_MODE_KLIPPER,	/* running firmware: 1d50:614e, usb-Klipper_... */
	SIM_MODE_KATAPULT,	/* in the bootloader: 1d50:6177, usb-katapult_... */
};

enum sim_event {
	SIM_EV_NONE,
	SIM_EV_ENTER_BOOTLOADER,	/* host asked for the bootloader (1200 baud) */
	SIM_EV_BOOT_APP,		/* COMPLETE received: the application starts */
	SIM_EV_HANG,			/* COMPLETE received, but the application
					 * cannot start: the CPU faults and locks
					 * up, with no USB, until it is reset */
};

/* Faults a scenario can inject into the emulated board: a board file's
 * fault= key, simboard's --fault. sim/fake/lib/faults.py lists them with
 * every other fault of the simulator. */
enum sim_fault {
	SIM_FAULT_NONE,
	SIM_FAULT_SILENT,	/* never answer in Katapult mode */
	SIM_FAULT_CORRUPT_READBACK, /* REQUEST_BLOCK returns wrong data */
	SIM_FAULT_NO_BOOTLOADER, /* ignore the 1200-baud bootloader request */
};

/* The fault NAME names ("none", "silent", "corrupt-readback",
 * "no-bootloader"): 0, or -1 when it names none. */
int sim_fault_parse(const char *name, enum sim_fault *ret);

/* Receives one line (no newline) describing what the board just did, e.g.
 * "CONNECT: ack, block size 64". Optional; the board itself never prints. */
typedef void (*sim_board_log_fn)(void *ctx, const char *msg);

struct sim_board_cfg {
	const char *mcu;		/* e.g. "stm32f446xx": picks the flash
					 * geometry, so it must be a chip
					 * Katapult runs on */
	const char *serial;		/* chip serial, e.g. "3A0039000851313433343333" */
	const char *image_path;		/* written with the flashed image on COMPLETE */
	const char *version;		/* Katapult software version string */
	enum sim_mode mode;		/* starting mode */
	uint32_t block_size;		/* 64 (0 means 64): Katapult's
					 * BLOCK_SIZE has no Kconfig prompt */
	uint32_t app_start;		/* application start address */
	enum sim_fault fault;
	sim_board_log_fn log;		/* may be NULL */
	void *log_ctx;
	int can;			/* a CAN build: answers GET_CANBUS_ID
					 * (0x16) with canbus_uuid; a USB build
					 * answers it ERROR */
	uint8_t canbus_uuid[6];
};

/* The block size every Katapult build uses. */
#define SIM_BLOCK_SIZE 64

/* Largest single response frame: 8 bytes of framing + 255 payload words. */
#define SIM_BOARD_FRAME_MAX (8 + 255 * 4)

struct sim_board;

/* NULL when cfg is one sim_board_new() takes, else why not (a sentence
 * naming the setting: an MCU Katapult has no port for, a block size other
 * than 64, an application start outside the chip's flash or not on a
 * block). */
const char *sim_board_cfg_problem(const struct sim_board_cfg *cfg);

/* Returns NULL on bad cfg (errno EINVAL, see sim_board_cfg_problem()) or no
 * memory. The strings are copied. mcu and version must be 1..64 and 0..64
 * characters. The emulated flash starts erased, but a board whose
 * application area was never written in this emulator runs "the firmware
 * it came with", which boots. */
struct sim_board *sim_board_new(const struct sim_board_cfg *cfg);
void sim_board_free(struct sim_board *b);

enum sim_mode sim_board_mode(const struct sim_board *b);
/* Entering Katapult mode starts a fresh bootloader session (as after a
 * reset): receive buffer, sync state and page count are cleared; the
 * emulated flash keeps its contents. Either mode ends a hang (the driver
 * decides that the board was reset; see sim_board_app_problem()). */
void sim_board_set_mode(struct sim_board *b, enum sim_mode mode);

/* Whether the application in flash can start, judged as a Cortex-M does
 * when Katapult jumps to it (MSP from word 0, PC from word 1 of the vector
 * table at app_start): NULL when it starts, else a short reason of the
 * form "WORD 0xADDR: explanation", WORD one of erased, stack, thumb or
 * reset. An application area never written runs the firmware the board
 * came with (NULL). */
const char *sim_board_app_problem(struct sim_board *b);

/* After SIM_EV_HANG and until the next sim_board_set_mode(): the board
 * answers nothing, in either mode. */
int sim_board_hung(const struct sim_board *b);

/* Bytes received from the host. Response bytes (whole frames) are written to
 * out, up to out_cap; *ret_out_len receives their count. Returns 0 or -errno.
 *
 * Katapult mode answers each complete request frame with exactly one frame:
 * ack 0xa0 for the known commands, error 0xf2 for unknown commands (such as
 * flashtool's 0x90 "prime" frame) and rejected blocks, and a single nack
 * 0xf1 for a run of bytes that do not form a valid frame. It resyncs as
 * Katapult's command_find_block() does: bytes are dropped up to the next
 * 01, not past it, so a bad frame that itself starts with 01 (bad CRC or
 * trailer, longer than Katapult's 128-byte MESSAGE_MAX, or a lone 01 byte)
 * is read again and again: after its one nack the board answers nothing
 * more until it is reset (sim_board_set_mode()). Klipper mode
 * answers nothing; it raises ENTER_BOOTLOADER when it sees Klipper's serial
 * bootloader request block ("~ \x1c Request Serial Bootloader!! ~", what
 * flashtool.py -r sends to a non-USB device).
 *
 * Responses that do not fit in out stay queued and come out on the next
 * call (len may be 0); an out_cap of SIM_BOARD_FRAME_MAX per request frame
 * always suffices. If writing the image on COMPLETE fails, the response is
 * still produced and the call returns that -errno. */
int sim_board_input(struct sim_board *b, const uint8_t *data, size_t len,
		    uint8_t *out, size_t out_cap, size_t *ret_out_len);

/* The host changed the line settings: baud (0 when unknown) and DTR (-1 when
 * unknown). A 1200-baud setting in Klipper mode raises ENTER_BOOTLOADER
 * (unless DTR is known to be high, as Klipper's USB code requires DTR low). */
void sim_board_line(struct sim_board *b, unsigned baud, int dtr);

/* Returns and clears the pending event. */
enum sim_event sim_board_take_event(struct sim_board *b);

/* The USB identity of the current mode. */
const char *sim_board_manufacturer(const struct sim_board *b); /* "Klipper" / "katapult" */
const char *sim_board_pid(const struct sim_board *b);	      /* "614e" / "6177" */

#endif
