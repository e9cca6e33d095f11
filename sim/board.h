/* board.h - emulated printer MCU board: Klipper USB identity and Katapult
 * bootloader protocol, independent of the transport that carries its bytes.
 *
 * The standalone emulator (simboard.c) drives it from a pty master it opened
 * itself; the simulated host (simhost.c) drives it from the master side of an
 * umockdev tty. Both feed received bytes in, write the returned bytes out, and
 * react to the events it raises (re-enumerate into Katapult, boot the app). */
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
	SIM_EV_BOOT_APP,		/* COMPLETE received: leave the bootloader */
};

/* Faults a scenario can inject into the emulated board. */
enum sim_fault {
	SIM_FAULT_NONE,
	SIM_FAULT_SILENT,	/* never answer in Katapult mode */
	SIM_FAULT_CORRUPT_READBACK, /* REQUEST_BLOCK returns wrong data */
	SIM_FAULT_NO_BOOTLOADER, /* ignore the 1200-baud bootloader request */
};

struct sim_board_cfg {
	const char *mcu;		/* e.g. "stm32f446xx" */
	const char *serial;		/* chip serial, e.g. "3A0039000851313433343333" */
	const char *image_path;		/* written with the flashed image on COMPLETE */
	const char *version;		/* Katapult software version string */
	enum sim_mode mode;		/* starting mode */
	uint32_t block_size;		/* 64, 128, 256 or 512 */
	uint32_t app_start;		/* application start address */
	enum sim_fault fault;
};

struct sim_board;

/* Returns NULL on bad cfg (errno EINVAL) or no memory. */
struct sim_board *sim_board_new(const struct sim_board_cfg *cfg);
void sim_board_free(struct sim_board *b);

enum sim_mode sim_board_mode(const struct sim_board *b);
void sim_board_set_mode(struct sim_board *b, enum sim_mode mode);

/* Bytes received from the host. Response bytes (whole frames) are written to
 * out, up to out_cap; *ret_out_len receives their count. Returns 0 or -errno. */
int sim_board_input(struct sim_board *b, const uint8_t *data, size_t len,
		    uint8_t *out, size_t out_cap, size_t *ret_out_len);

/* The host changed the line settings: baud (0 when unknown) and DTR (-1 when
 * unknown). A 1200-baud setting in Klipper mode raises ENTER_BOOTLOADER. */
void sim_board_line(struct sim_board *b, unsigned baud, int dtr);

/* Returns and clears the pending event. */
enum sim_event sim_board_take_event(struct sim_board *b);

/* The USB identity of the current mode. */
const char *sim_board_manufacturer(const struct sim_board *b); /* "Klipper" / "katapult" */
const char *sim_board_pid(const struct sim_board *b);	      /* "614e" / "6177" */

#endif
