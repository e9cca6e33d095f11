/* board.c - emulated board: the Katapult protocol and bootloader requests. */
#include "board.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Frame: 01 88 | cmd | n words | payload | crc16 LE | 99 03 */
#define SIM_STX1	0x01
#define SIM_STX2	0x88
#define SIM_SYNC2	0x99
#define SIM_SYNC	0x03
#define SIM_FRAME_MIN	8

#define SIM_CMD_CONNECT		0x11
#define SIM_CMD_SEND_BLOCK	0x12
#define SIM_CMD_SEND_EOF	0x13
#define SIM_CMD_REQUEST_BLOCK	0x14
#define SIM_CMD_COMPLETE	0x15
#define SIM_CMD_GET_CANBUS_ID	0x16

#define SIM_ACK		0xa0
#define SIM_NACK	0xf1
#define SIM_ERROR	0xf2

/* Katapult's PROTO_VERSION 1.1.0, sent as a little-endian word. */
#define SIM_PROTO_VERSION	0x00010100u

/* Katapult's MESSAGE_MAX: a longer frame is an invalid one. */
#define SIM_MESSAGE_MAX	128
/* Application space the emulated chip has after app_start. */
#define SIM_FLASH_MAX	(2u * 1024 * 1024)
/* The write unit of the LPC176x IAP and of the RP2040 page program. */
#define SIM_BUF_SIZE	256u
#define SIM_RP_SECTOR	4096u

#define SIM_STR_MAX	64
#define SIM_RX_CAP	2048

/* How the chip's Katapult port writes flash (src/<port>/flash.c). */
enum sim_algo {
	SIM_ALGO_STM32,		/* a block that starts a page erases it */
	SIM_ALGO_LPC176X,	/* blocks gathered into 256-byte IAP writes */
	SIM_ALGO_RP2040,	/* 256-byte pages; a page on a 4 KiB boundary
				 * erases that sector first */
};

/* Where the erase pages are: flash_get_page_size() and its kin. */
enum sim_pages {
	SIM_PAGES_FIXED,	/* chip->page everywhere */
	SIM_PAGES_F2F4,		/* 16 KiB up to 0x08010000, one of 64 KiB, then 128 KiB */
	SIM_PAGES_F103,		/* 1 KiB below 256 KiB of flash, else 2 KiB */
	SIM_PAGES_F0,		/* 1 KiB up to 64 KiB of flash, else 2 KiB */
	SIM_PAGES_LPC176X,	/* 4 KiB sectors below 0x10000, 32 KiB above */
};

struct sim_chip {
	const char *prefix;	/* CONFIG_MCU starts with it */
	enum sim_algo algo;
	enum sim_pages pages;
	uint32_t page;		/* SIM_PAGES_FIXED */
	uint32_t flash_base;
	/* where an initial stack pointer can point: the chip's RAM (for
	 * stm32 the Cortex-M SRAM region, which holds every series' RAM) */
	uint32_t ram[2][2];
};

/* The chips Katapult has a port for, most specific prefix first. */
static const struct sim_chip sim_chips[] = {
	{ "stm32f042", SIM_ALGO_STM32, SIM_PAGES_FIXED, 1024, 0x08000000,
	  { { 0x20000000, 0x40000000 } } },
	{ "stm32f072", SIM_ALGO_STM32, SIM_PAGES_FIXED, 2048, 0x08000000,
	  { { 0x20000000, 0x40000000 } } },
	{ "stm32f0", SIM_ALGO_STM32, SIM_PAGES_F0, 0, 0x08000000,
	  { { 0x20000000, 0x40000000 } } },
	{ "stm32f103", SIM_ALGO_STM32, SIM_PAGES_F103, 0, 0x08000000,
	  { { 0x20000000, 0x40000000 } } },
	{ "stm32f2", SIM_ALGO_STM32, SIM_PAGES_F2F4, 0, 0x08000000,
	  { { 0x20000000, 0x40000000 } } },
	{ "stm32f4", SIM_ALGO_STM32, SIM_PAGES_F2F4, 0, 0x08000000,
	  { { 0x20000000, 0x40000000 } } },
	{ "stm32g0", SIM_ALGO_STM32, SIM_PAGES_FIXED, 2048, 0x08000000,
	  { { 0x20000000, 0x40000000 } } },
	{ "stm32g4", SIM_ALGO_STM32, SIM_PAGES_FIXED, 2048, 0x08000000,
	  { { 0x20000000, 0x40000000 } } },
	{ "stm32h7", SIM_ALGO_STM32, SIM_PAGES_FIXED, 128 * 1024, 0x08000000,
	  { { 0x20000000, 0x40000000 } } },
	{ "rp2040", SIM_ALGO_RP2040, SIM_PAGES_FIXED, SIM_RP_SECTOR, 0x10000000,
	  { { 0x20000000, 0x20042000 } } },
	{ "rp2350", SIM_ALGO_RP2040, SIM_PAGES_FIXED, SIM_RP_SECTOR, 0x10000000,
	  { { 0x20000000, 0x20082000 } } },
	{ "lpc1768", SIM_ALGO_LPC176X, SIM_PAGES_LPC176X, 0, 0x00000000,
	  { { 0x10000000, 0x10008000 }, { 0x2007c000, 0x20084000 } } },
	{ "lpc1769", SIM_ALGO_LPC176X, SIM_PAGES_LPC176X, 0, 0x00000000,
	  { { 0x10000000, 0x10008000 }, { 0x2007c000, 0x20084000 } } },
};

/* The one table of board fault names (board files and simboard's --fault). */
static const struct {
	const char *name;
	enum sim_fault fault;
} sim_faults[] = {
	{ "none", SIM_FAULT_NONE },
	{ "silent", SIM_FAULT_SILENT },
	{ "corrupt-readback", SIM_FAULT_CORRUPT_READBACK },
	{ "no-bootloader", SIM_FAULT_NO_BOOTLOADER },
};

int
sim_fault_parse(const char *name, enum sim_fault *ret)
{
	for (size_t i = 0; i < sizeof(sim_faults) / sizeof(sim_faults[0]); i++) {
		if (!strcmp(name, sim_faults[i].name)) {
			*ret = sim_faults[i].fault;
			return 0;
		}
	}
	return -1;
}

/* Klipper's serial bootloader request block (after a leading '~' sync). */
static const char sim_bl_request[] = " \x1c Request Serial Bootloader!! ~";
#define SIM_BL_REQUEST_LEN (sizeof(sim_bl_request) - 1)

struct sim_board {
	char *mcu, *serial, *image_path, *version;
	const struct sim_chip *chip;
	uint32_t flash_kib;	/* from the MCU name where the pages need it */
	uint32_t block_size, app_start;
	enum sim_fault fault;
	sim_board_log_fn log;
	void *log_ctx;

	enum sim_mode mode;
	enum sim_event event;

	/* Katapult session state, reset on each entry to the bootloader. */
	uint8_t rx[SIM_RX_CAP];
	size_t rx_len;
	int need_sync;		/* discarding bytes up to the next 01 */
	int need_valid;		/* nack already sent for this garbage run */
	int stalled;		/* re-reading one bad frame forever */
	uint32_t pages;		/* page_write_count since boot: SEND_EOF reply */
	uint32_t session_end;	/* end of highest byte programmed, from app_start */
	unsigned blocks_written, blocks_read;
	int silent_logged;

	/* The write buffer of the LPC176x and RP2040 ports (lost on reset). */
	uint8_t buf[SIM_BUF_SIZE];
	uint32_t buf_addr;	/* RP2040: where buf goes; LPC: next_address */
	int buf_full;		/* RP2040: buf holds data */

	/* Emulated flash from app_start; bytes past flash_len read as erased. */
	uint8_t *flash;
	size_t flash_len;
	int app_written;	/* the image at app_start is ours, not the
				 * firmware the board came with */
	uint32_t img_end;	/* end of what was programmed since the
				 * image's first byte was, from app_start */
	int hung;		/* the application faulted: no answers */
	char why[160];

	/* Responses not yet handed to the caller. */
	uint8_t *txq;
	size_t txq_len, txq_cap;

	/* Klipper mode: last bytes seen, to spot the bootloader request. */
	uint8_t tail[SIM_BL_REQUEST_LEN];
	size_t tail_len;

	int image_err;

	int can;
	uint8_t canbus_uuid[6];
};

static void __attribute__((format(printf, 2, 3)))
sim_log(struct sim_board *b, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!b->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	b->log(b->log_ctx, msg);
}

/* CRC-16/MCRF4XX: reflected CCITT polynomial, init 0xffff, no final xor. */
static uint16_t
sim_crc16(const uint8_t *p, size_t len)
{
	uint16_t crc = 0xffff;

	while (len--) {
		crc ^= *p++;
		for (int i = 0; i < 8; i++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x8408 : crc >> 1;
	}
	return crc;
}

static void
sim_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static uint32_t
sim_get_le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static char *
sim_strdup_max(const char *s, size_t min, size_t max)
{
	size_t len;

	if (!s)
		s = "";
	len = strlen(s);
	if (len < min || len > max) {
		errno = EINVAL;
		return NULL;
	}
	return strdup(s);
}

static const struct sim_chip *
sim_chip_of(const char *mcu)
{
	for (size_t i = 0; mcu && i < sizeof(sim_chips) / sizeof(sim_chips[0]); i++)
		if (!strncmp(mcu, sim_chips[i].prefix, strlen(sim_chips[i].prefix)))
			return &sim_chips[i];
	return NULL;
}

/* STM32 names carry the flash size after the 'x': stm32f103xe is 512 KiB.
 * Katapult reads it from the chip (FLASHSIZE_BASE); 0 when not named. */
static uint32_t
sim_flash_kib_of(const char *mcu)
{
	static const char letters[] = "468bcdefgi";
	static const uint32_t kib[] = { 16, 32, 64, 128, 256, 384, 512, 768,
					1024, 2048 };
	const char *x = strrchr(mcu, 'x');
	const char *l = x && x[1] ? strchr(letters, x[1]) : NULL;

	return l ? kib[l - letters] : 0;
}

const char *
sim_board_cfg_problem(const struct sim_board_cfg *cfg)
{
	const struct sim_chip *chip;

	if (!cfg)
		return "no settings";
	chip = sim_chip_of(cfg->mcu);
	if (!chip)
		return "the MCU is not one Katapult runs on (its ports: stm32f0, "
		       "stm32f103, stm32f2, stm32f4, stm32g0, stm32g4, stm32h7, "
		       "rp2040, rp2350, lpc1768, lpc1769), so its flash is "
		       "unknown";
	if (cfg->block_size && cfg->block_size != SIM_BLOCK_SIZE)
		return "the block size must be 64: Katapult's BLOCK_SIZE has no "
		       "Kconfig prompt, every build uses 64 (flashtool would "
		       "accept 128, 256 or 512, but no Katapult sends them)";
	if (cfg->app_start < chip->flash_base
	    || cfg->app_start - chip->flash_base >= 16u * 1024 * 1024)
		return "the application start is outside the chip's flash";
	if (cfg->app_start % SIM_BLOCK_SIZE)
		return "the application start is not a multiple of the block "
		       "size (64)";
	if (cfg->mode != SIM_MODE_KLIPPER && cfg->mode != SIM_MODE_KATAPULT)
		return "unknown starting mode";
	if (!cfg->image_path || !cfg->image_path[0])
		return "no image path";
	return NULL;
}

struct sim_board *
sim_board_new(const struct sim_board_cfg *cfg)
{
	struct sim_board *b;

	if (sim_board_cfg_problem(cfg)) {
		errno = EINVAL;
		return NULL;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->mcu = sim_strdup_max(cfg->mcu, 1, SIM_STR_MAX);
	b->serial = sim_strdup_max(cfg->serial, 0, SIM_STR_MAX);
	b->version = sim_strdup_max(cfg->version, 0, SIM_STR_MAX);
	b->image_path = sim_strdup_max(cfg->image_path, 1, 4096);
	if (!b->mcu || !b->serial || !b->version || !b->image_path) {
		int err = errno;
		sim_board_free(b);
		errno = err;
		return NULL;
	}
	b->chip = sim_chip_of(cfg->mcu);
	b->flash_kib = sim_flash_kib_of(cfg->mcu);
	b->block_size = SIM_BLOCK_SIZE;
	b->app_start = cfg->app_start;
	b->fault = cfg->fault;
	b->log = cfg->log;
	b->log_ctx = cfg->log_ctx;
	b->can = cfg->can;
	memcpy(b->canbus_uuid, cfg->canbus_uuid, sizeof(b->canbus_uuid));
	sim_board_set_mode(b, cfg->mode);
	return b;
}

void
sim_board_free(struct sim_board *b)
{
	if (!b)
		return;
	free(b->mcu);
	free(b->serial);
	free(b->version);
	free(b->image_path);
	free(b->flash);
	free(b->txq);
	free(b);
}

enum sim_mode
sim_board_mode(const struct sim_board *b)
{
	return b->mode;
}

void
sim_board_set_mode(struct sim_board *b, enum sim_mode mode)
{
	b->mode = mode;
	b->rx_len = 0;
	b->need_sync = 0;
	b->need_valid = 0;
	b->stalled = 0;
	b->hung = 0;
	b->buf_addr = 0;
	b->buf_full = 0;
	b->pages = 0;
	b->session_end = 0;
	b->blocks_written = 0;
	b->blocks_read = 0;
	b->tail_len = 0;
	b->silent_logged = 0;
}

enum sim_event
sim_board_take_event(struct sim_board *b)
{
	enum sim_event ev = b->event;

	b->event = SIM_EV_NONE;
	return ev;
}

const char *
sim_board_manufacturer(const struct sim_board *b)
{
	return b->mode == SIM_MODE_KATAPULT ? "katapult" : "Klipper";
}

const char *
sim_board_pid(const struct sim_board *b)
{
	return b->mode == SIM_MODE_KATAPULT ? "6177" : "614e";
}

/* Entering the bootloader is a reset: the new firmware starts from scratch. */
static void
sim_enter_bootloader(struct sim_board *b, const char *why)
{
	if (b->fault == SIM_FAULT_NO_BOOTLOADER) {
		sim_log(b, "bootloader request (%s) ignored: fault no-bootloader",
			why);
		return;
	}
	sim_log(b, "bootloader request (%s): rebooting into Katapult", why);
	sim_board_set_mode(b, SIM_MODE_KATAPULT);
	b->event = SIM_EV_ENTER_BOOTLOADER;
}

int
sim_board_hung(const struct sim_board *b)
{
	return b->hung;
}

void
sim_board_line(struct sim_board *b, unsigned baud, int dtr)
{
	if (b->hung || b->mode != SIM_MODE_KLIPPER || baud != 1200 || dtr == 1)
		return;
	sim_enter_bootloader(b, "1200 baud");
}

/****************************************************************
 * Response frames
 ****************************************************************/

static int
sim_txq_reserve(struct sim_board *b, size_t more)
{
	size_t cap = b->txq_cap ? b->txq_cap : 1024;
	uint8_t *q;

	if (b->txq_len + more <= b->txq_cap)
		return 0;
	while (cap < b->txq_len + more)
		cap *= 2;
	q = realloc(b->txq, cap);
	if (!q)
		return -ENOMEM;
	b->txq = q;
	b->txq_cap = cap;
	return 0;
}

/* Queue one frame: code is the ack type, payload nwords little-endian
 * words. */
static int
sim_respond(struct sim_board *b, uint8_t code, const uint8_t *payload,
	    size_t nwords)
{
	size_t len = SIM_FRAME_MIN + nwords * 4;
	uint8_t *f;
	uint16_t crc;

	if (sim_txq_reserve(b, len) < 0)
		return -ENOMEM;
	f = b->txq + b->txq_len;
	f[0] = SIM_STX1;
	f[1] = SIM_STX2;
	f[2] = code;
	f[3] = nwords;
	if (nwords)
		memcpy(f + 4, payload, nwords * 4);
	crc = sim_crc16(f + 2, 2 + nwords * 4);
	f[len - 4] = crc & 0xff;
	f[len - 3] = crc >> 8;
	f[len - 2] = SIM_SYNC2;
	f[len - 1] = SIM_SYNC;
	b->txq_len += len;
	return 0;
}

/* A success answer always starts with the id of the command it answers. */
static int
sim_ack(struct sim_board *b, uint8_t cmd, uint8_t *payload, size_t nwords)
{
	sim_put_le32(payload, cmd);
	return sim_respond(b, SIM_ACK, payload, nwords);
}

static int
sim_error(struct sim_board *b)
{
	return sim_respond(b, SIM_ERROR, NULL, 0);
}

/****************************************************************
 * Emulated flash
 ****************************************************************/

static int
sim_flash_grow(struct sim_board *b, size_t end)
{
	size_t cap = b->flash_len ? b->flash_len : 64 * 1024;
	uint8_t *f;

	if (end <= b->flash_len)
		return 0;
	while (cap < end)
		cap *= 2;
	if (cap > SIM_FLASH_MAX)
		cap = SIM_FLASH_MAX;
	f = realloc(b->flash, cap);
	if (!f)
		return -ENOMEM;
	memset(f + b->flash_len, 0xff, cap - b->flash_len);
	b->flash = f;
	b->flash_len = cap;
	return 0;
}

static uint8_t
sim_flash_byte(const struct sim_board *b, uint32_t addr)
{
	uint32_t off = addr - b->app_start;

	if (addr < b->app_start || off >= b->flash_len)
		return 0xff;
	return b->flash[off];
}

/* Addresses are absolute; flash below app_start (Katapult itself) is not
 * emulated and reads as erased. */
static int
sim_flash_erased(const struct sim_board *b, uint32_t addr, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		if (sim_flash_byte(b, addr + i) != 0xff)
			return 0;
	return 1;
}

static int
sim_flash_same(const struct sim_board *b, uint32_t addr, const uint8_t *data,
	       uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		if (sim_flash_byte(b, addr + i) != data[i])
			return 0;
	return 1;
}

static void
sim_flash_erase(struct sim_board *b, uint32_t addr, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++) {
		uint32_t off = addr + i - b->app_start;
		if (addr + i >= b->app_start && off < b->flash_len)
			b->flash[off] = 0xff;
	}
}

/* NOR flash: programming only clears bits. Keeps the extents the image
 * file and the boot check need. Returns 0 or -1 (past the emulated
 * flash). */
static int
sim_flash_program(struct sim_board *b, uint32_t addr, const uint8_t *data,
		  uint32_t len)
{
	uint32_t off, end;

	if (addr < b->app_start) {	/* an RP2040 page that starts below */
		uint32_t skip = b->app_start - addr;
		if (skip >= len)
			return 0;
		addr += skip;
		data += skip;
		len -= skip;
	}
	off = addr - b->app_start;
	if (off + len > SIM_FLASH_MAX || sim_flash_grow(b, off + len) < 0)
		return -1;
	for (uint32_t i = 0; i < len; i++)
		b->flash[off + i] &= data[i];
	end = off + len;
	if (end > b->session_end)
		b->session_end = end;
	if (off == 0) {
		b->app_written = 1;
		b->img_end = end;
	} else if (end > b->img_end) {
		b->img_end = end;
	}
	return 0;
}

static uint32_t
sim_page_size(const struct sim_board *b, uint32_t addr)
{
	switch (b->chip->pages) {
	case SIM_PAGES_F2F4:
		if (addr < 0x08010000)
			return 16 * 1024;
		return addr < 0x08020000 ? 64 * 1024 : 128 * 1024;
	case SIM_PAGES_F103:
		return b->flash_kib && b->flash_kib < 256 ? 1024 : 2048;
	case SIM_PAGES_F0:
		return b->flash_kib && b->flash_kib <= 64 ? 1024 : 2048;
	case SIM_PAGES_LPC176X:
		return addr < 0x00010000 ? 4 * 1024 : 32 * 1024;
	case SIM_PAGES_FIXED:
		break;
	}
	return b->chip->page;
}

/* Katapult's stm32 flash_write_block() and lpc176x write_buffer(): data
 * that starts a page erases it (and counts it), data inside a page must
 * land on erased flash, and an identical retransmission is accepted
 * without writing. Pages are aligned to absolute addresses. Returns 0 or
 * -1 (answer ERROR). */
static int
sim_page_write(struct sim_board *b, uint32_t addr, const uint8_t *data,
	       uint32_t len)
{
	uint32_t page = sim_page_size(b, addr);
	uint32_t page_addr = addr & ~(page - 1);

	if (page_addr == addr) {
		if (sim_flash_erased(b, addr, page)) {
			/* nothing to erase */
		} else if (sim_flash_same(b, addr, data, len)
			   && sim_flash_erased(b, addr + len, page - len)) {
			return 0;
		} else {
			sim_flash_erase(b, addr, page);
		}
		b->pages++;
	} else if (!sim_flash_erased(b, addr, len)) {
		if (sim_flash_same(b, addr, data, len))
			return 0;
		return -1;	/* out of order: block not erased */
	}
	return sim_flash_program(b, addr, data, len);
}

/* lpc176x flash_write_block(): blocks fill a 256-byte buffer in order,
 * written when full; a jump is allowed only between 256-byte boundaries. */
static int
sim_lpc_write(struct sim_board *b, uint32_t addr, const uint8_t *data)
{
	uint32_t idx = addr & (SIM_BUF_SIZE - 1);

	if (addr != b->buf_addr) {
		if ((addr | b->buf_addr) & (SIM_BUF_SIZE - 1))
			return -1;
		b->buf_addr = addr;
	}
	memcpy(b->buf + idx, data, SIM_BLOCK_SIZE);
	if (idx == SIM_BUF_SIZE - SIM_BLOCK_SIZE
	    && sim_page_write(b, addr - idx, b->buf, SIM_BUF_SIZE) < 0)
		return -1;
	b->buf_addr += SIM_BLOCK_SIZE;
	return 0;
}

/* rp2040 flush_buffer(): a page on a sector boundary erases the sector;
 * every page programmed counts. */
static int
sim_rp_flush(struct sim_board *b)
{
	if (!b->buf_full)
		return 0;
	b->buf_full = 0;
	if (b->buf_addr % SIM_RP_SECTOR == 0)
		sim_flash_erase(b, b->buf_addr, SIM_RP_SECTOR);
	b->pages++;
	return sim_flash_program(b, b->buf_addr, b->buf, SIM_BUF_SIZE);
}

/* rp2040 flash_write_block(): blocks gather in a page buffer; a block
 * outside the buffered page flushes it first. Nothing is compared or
 * refused but addresses outside the flash. */
static int
sim_rp_write(struct sim_board *b, uint32_t addr, const uint8_t *data)
{
	if (b->buf_full && (addr < b->buf_addr
			    || addr + SIM_BLOCK_SIZE > b->buf_addr + SIM_BUF_SIZE)
	    && sim_rp_flush(b) < 0)
		return -1;
	if (!b->buf_full) {
		b->buf_full = 1;
		b->buf_addr = addr & ~(SIM_BUF_SIZE - 1);
		memset(b->buf, 0xff, sizeof(b->buf));
	}
	memcpy(b->buf + (addr - b->buf_addr), data, SIM_BLOCK_SIZE);
	return 0;
}

/* One SEND_BLOCK. Returns 0 or -1 (answer ERROR). */
static int
sim_flash_write(struct sim_board *b, uint32_t addr, const uint8_t *data)
{
	if (addr & (SIM_BLOCK_SIZE - 1) || addr < b->app_start
	    || addr - b->app_start + SIM_BLOCK_SIZE > SIM_FLASH_MAX)
		return -1;
	switch (b->chip->algo) {
	case SIM_ALGO_LPC176X:
		return sim_lpc_write(b, addr, data);
	case SIM_ALGO_RP2040:
		return sim_rp_write(b, addr, data);
	case SIM_ALGO_STM32:
		break;
	}
	return sim_page_write(b, addr, data, SIM_BLOCK_SIZE);
}

/* flash_complete(): writes what the buffer still holds, then the page
 * count. Returns it, or -1 (answer ERROR). */
static int64_t
sim_flash_complete(struct sim_board *b)
{
	uint32_t idx = b->buf_addr & (SIM_BUF_SIZE - 1);

	switch (b->chip->algo) {
	case SIM_ALGO_LPC176X:
		if (idx) {
			memset(b->buf + idx, 0xff, SIM_BUF_SIZE - idx);
			if (sim_page_write(b, b->buf_addr - idx, b->buf,
					   SIM_BUF_SIZE) < 0)
				return -1;
		}
		break;
	case SIM_ALGO_RP2040:
		if (sim_rp_flush(b) < 0)
			return -1;
		break;
	case SIM_ALGO_STM32:
		break;
	}
	return b->pages;
}

static int
sim_in_ram(const struct sim_board *b, uint32_t sp)
{
	for (int i = 0; i < 2; i++)
		if (b->chip->ram[i][1] && sp >= b->chip->ram[i][0]
		    && sp <= b->chip->ram[i][1])
			return 1;
	return 0;
}

/* Katapult's boot_start_application() sets VTOR to app_start and does
 * "MSR msp, vtor[0]; bx vtor[1]" without looking at either. A stack
 * outside RAM faults at the first push, a reset vector without the Thumb
 * bit faults at once, and one outside the image runs erased flash (or
 * Katapult's own code): the CPU ends in a HardFault it cannot leave. The
 * emulator runs no code, so an image linked for an address less than its
 * own length away from app_start still passes. */
const char *
sim_board_app_problem(struct sim_board *b)
{
	uint32_t sp = 0, pc = 0, target;

	if (!b->app_written)
		return NULL;
	for (int i = 3; i >= 0; i--) {
		sp = sp << 8 | sim_flash_byte(b, b->app_start + i);
		pc = pc << 8 | sim_flash_byte(b, b->app_start + 4 + i);
	}
	target = pc & ~1u;
	if (sp == 0xffffffff && pc == 0xffffffff)
		snprintf(b->why, sizeof(b->why), "erased 0x%08x: no application "
			 "at the application address", (unsigned)b->app_start);
	else if (!sim_in_ram(b, sp))
		snprintf(b->why, sizeof(b->why), "stack 0x%08x: the initial "
			 "stack pointer is not in RAM (not a vector table: a "
			 "UF2 file?)", (unsigned)sp);
	else if (!(pc & 1))
		snprintf(b->why, sizeof(b->why), "thumb 0x%08x: the reset "
			 "vector lacks the Thumb bit", (unsigned)pc);
	else if (target < b->app_start || target - b->app_start >= b->img_end
		 || (sim_flash_byte(b, target) == 0xff
		     && sim_flash_byte(b, target + 1) == 0xff))
		snprintf(b->why, sizeof(b->why), "reset 0x%08x: the reset "
			 "handler is outside the image at 0x%08x-0x%08x (linked "
			 "for another application address?)", (unsigned)pc,
			 (unsigned)b->app_start,
			 (unsigned)(b->app_start + b->img_end));
	else
		return NULL;
	return b->why;
}

/* Write what this session flashed to image_path: temp file, fsync, rename,
 * so a reader never sees half an image. */
static int
sim_write_image(struct sim_board *b)
{
	size_t len = strlen(b->image_path) + 16;
	char *tmp = malloc(len);
	size_t done = 0;
	int fd, err = 0;

	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, len, "%s.tmp", b->image_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = -errno;
		goto out_free;
	}
	while (done < b->session_end) {
		ssize_t n = write(fd, b->flash + done, b->session_end - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		done += n;
	}
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, b->image_path) < 0)
		err = -errno;
	if (err)
		(void)unlink(tmp);
out_free:
	free(tmp);
	return err;
}

/****************************************************************
 * Katapult command handlers
 ****************************************************************/

/* Payload: cmd id, protocol version, app start, block size, the MCU string
 * padded with NULs to a word, one zero word, then the software version
 * padded likewise -- the layout of Katapult's command_connect(). */
static int
sim_cmd_connect(struct sim_board *b)
{
	size_t mcu_words = (strlen(b->mcu) + 3) / 4;
	size_t ver_words = (strlen(b->version) + 3) / 4;
	size_t nwords = 4 + mcu_words + 1 + ver_words;
	uint8_t p[4 * (4 + SIM_STR_MAX / 4 + 1 + SIM_STR_MAX / 4)];

	memset(p, 0, sizeof(p));
	sim_put_le32(p + 4, SIM_PROTO_VERSION);
	sim_put_le32(p + 8, b->app_start);
	sim_put_le32(p + 12, b->block_size);
	memcpy(p + 16, b->mcu, strlen(b->mcu));
	memcpy(p + 16 + 4 * (mcu_words + 1), b->version, strlen(b->version));
	sim_log(b, "CONNECT: ack, katapult %s, %s, block size %u, app 0x%08x",
		b->version, b->mcu, (unsigned)b->block_size,
		(unsigned)b->app_start);
	return sim_ack(b, SIM_CMD_CONNECT, p, nwords);
}

static int
sim_cmd_send_block(struct sim_board *b, const uint8_t *payload, size_t nwords)
{
	uint8_t p[8];
	uint32_t addr;

	if (nwords != b->block_size / 4 + 1) {
		sim_log(b, "SEND_BLOCK: %zu words, want %u: error", nwords,
			(unsigned)(b->block_size / 4 + 1));
		return sim_error(b);
	}
	addr = sim_get_le32(payload);
	if (sim_flash_write(b, addr, payload + 4) < 0) {
		sim_log(b, "SEND_BLOCK 0x%08x: rejected: error", (unsigned)addr);
		return sim_error(b);
	}
	if (!b->blocks_written++)
		sim_log(b, "SEND_BLOCK: writing from 0x%08x", (unsigned)addr);
	sim_put_le32(p + 4, addr);
	return sim_ack(b, SIM_CMD_SEND_BLOCK, p, 2);
}

static int
sim_cmd_send_eof(struct sim_board *b)
{
	uint8_t p[8];
	int64_t pages = sim_flash_complete(b);

	if (pages < 0) {
		sim_log(b, "SEND_EOF: writing the last buffer failed: error");
		return sim_error(b);
	}
	sim_log(b, "SEND_EOF: %u blocks, %u pages", b->blocks_written,
		(unsigned)pages);
	b->blocks_written = 0;
	sim_put_le32(p + 4, (uint32_t)pages);
	return sim_ack(b, SIM_CMD_SEND_EOF, p, 2);
}

static int
sim_cmd_request_block(struct sim_board *b, const uint8_t *payload)
{
	uint8_t p[8 + SIM_BLOCK_SIZE];
	/* Katapult reads the word without checking it was sent (then it is
	 * the CRC and the trailer). */
	uint32_t addr = sim_get_le32(payload);

	sim_put_le32(p + 4, addr);
	for (uint32_t i = 0; i < b->block_size; i++)
		p[8 + i] = sim_flash_byte(b, addr + i);
	if (b->fault == SIM_FAULT_CORRUPT_READBACK)
		p[8] ^= 0x5a;
	if (!b->blocks_read++)
		sim_log(b, "REQUEST_BLOCK: reading back from 0x%08x%s",
			(unsigned)addr,
			b->fault == SIM_FAULT_CORRUPT_READBACK
			? " (fault: corrupt read-back)" : "");
	return sim_ack(b, SIM_CMD_REQUEST_BLOCK, p, 2 + b->block_size / 4);
}

/* Answer first, then leave: Katapult acks COMPLETE and jumps to the
 * application 100 ms later, whatever the application area holds. */
static int
sim_cmd_complete(struct sim_board *b)
{
	uint8_t p[4];
	int ret = sim_ack(b, SIM_CMD_COMPLETE, p, 1);
	const char *why;

	if (ret < 0)
		return ret;
	if (b->session_end) {
		b->image_err = sim_write_image(b);
		if (b->image_err)
			sim_log(b, "COMPLETE: writing %s failed: %s",
				b->image_path, strerror(-b->image_err));
		else
			sim_log(b, "COMPLETE: wrote %u bytes to %s",
				(unsigned)b->session_end, b->image_path);
	} else {
		sim_log(b, "COMPLETE: nothing flashed, image left alone");
	}
	why = sim_board_app_problem(b);
	if (why) {
		sim_log(b, "COMPLETE: the application cannot start (%s): the "
			"CPU faults and hangs", why);
		b->hung = 1;
		b->event = SIM_EV_HANG;
		return 0;
	}
	sim_board_set_mode(b, SIM_MODE_KLIPPER);
	b->event = SIM_EV_BOOT_APP;
	return 0;
}

/* Payload: cmd id, then the 6-byte UUID padded to two words, as in
 * Katapult's command_get_canbus_id(). */
static int
sim_cmd_get_canbus_id(struct sim_board *b)
{
	uint8_t p[12];

	memset(p, 0, sizeof(p));
	memcpy(p + 4, b->canbus_uuid, sizeof(b->canbus_uuid));
	sim_log(b, "GET_CANBUS_ID: ack");
	return sim_ack(b, SIM_CMD_GET_CANBUS_ID, p, 3);
}

static int
sim_dispatch(struct sim_board *b, const uint8_t *frame)
{
	uint8_t cmd = frame[2];
	size_t nwords = frame[3];
	const uint8_t *payload = frame + 4;

	switch (cmd) {
	case SIM_CMD_CONNECT:
		return sim_cmd_connect(b);
	case SIM_CMD_SEND_BLOCK:
		return sim_cmd_send_block(b, payload, nwords);
	case SIM_CMD_SEND_EOF:
		return sim_cmd_send_eof(b);
	case SIM_CMD_REQUEST_BLOCK:
		return sim_cmd_request_block(b, payload);
	case SIM_CMD_COMPLETE:
		return sim_cmd_complete(b);
	case SIM_CMD_GET_CANBUS_ID:
		if (b->can)
			return sim_cmd_get_canbus_id(b);
		/* fall through */
	default:
		/* Unknown commands (flashtool's prime frame, GET_CANBUS_ID on
		 * a USB build) get ERROR, as in Katapult's command_dispatch(). */
		sim_log(b, "command 0x%02x: unknown: error", cmd);
		return sim_error(b);
	}
}

/****************************************************************
 * Katapult frame finding
 ****************************************************************/

/* Katapult's command_find_block(): returns 1 with a valid frame of *pop
 * bytes at rx[0], 0 when more bytes are needed, -1 when *pop bytes are to
 * be dropped. A run of bad bytes is nacked once. On a bad frame it drops
 * bytes up to the next 01, not past it: when the bad frame itself starts
 * with 01 nothing is dropped and the same bytes fail again on every pass,
 * so the board is stuck for good (b->stalled). */
static int
sim_find_frame(struct sim_board *b, size_t *pop, int *ret)
{
	const uint8_t *rx = b->rx;
	size_t len;
	uint8_t *next;
	int checked = 0;

	*ret = 0;
	*pop = 0;
	if (b->rx_len && b->need_sync)
		goto need_sync;
	if (b->rx_len < SIM_FRAME_MIN)
		return 0;
	checked = 1;
	if (rx[0] != SIM_STX1 || rx[1] != SIM_STX2)
		goto error;
	len = rx[3] * 4 + SIM_FRAME_MIN;
	if (len > SIM_MESSAGE_MAX)
		goto error;
	if (b->rx_len < len)
		return 0;
	if (rx[len - 2] != SIM_SYNC2 || rx[len - 1] != SIM_SYNC)
		goto error;
	if (sim_crc16(rx + 2, len - 6) != (rx[len - 4] | rx[len - 3] << 8))
		goto error;
	b->need_valid = 0;
	*pop = len;
	return 1;

error:
	b->need_sync = 1;
need_sync:
	next = memchr(rx, SIM_STX1, b->rx_len);
	if (next) {
		b->need_sync = 0;
		*pop = next - rx;
	} else {
		*pop = b->rx_len;
	}
	if (checked && *pop == 0) {
		b->stalled = 1;
		sim_log(b, "stalled: the bad frame at the start of the receive "
			"buffer begins with 01, which Katapult keeps instead of "
			"dropping; it answers nothing more until reset");
	}
	if (b->need_valid)
		return -1;
	b->need_valid = 1;
	sim_log(b, "invalid frame: nack");
	*ret = sim_respond(b, SIM_NACK, NULL, 0);
	return -1;
}

static void
sim_rx_pop(struct sim_board *b, size_t n)
{
	memmove(b->rx, b->rx + n, b->rx_len - n);
	b->rx_len -= n;
}

static int
sim_katapult_process(struct sim_board *b)
{
	size_t pop;
	int found, ret = 0;

	while (b->mode == SIM_MODE_KATAPULT && b->rx_len && !b->stalled) {
		found = sim_find_frame(b, &pop, &ret);
		if (ret < 0)
			return ret;
		if (!found || b->stalled)
			break;
		if (found > 0) {
			ret = sim_dispatch(b, b->rx);
			if (ret < 0)
				return ret;
		}
		if (b->mode != SIM_MODE_KATAPULT || b->hung) {
			/* COMPLETE: the app does not see the rest. */
			b->rx_len = 0;
			break;
		}
		sim_rx_pop(b, pop);
	}
	return 0;
}

/* Chunks at most the free receive space at a time, as USB flow control
 * would, so an arbitrarily large write is still taken whole. */
static int
sim_katapult_input(struct sim_board *b, const uint8_t *data, size_t len)
{
	/* A hung bootloader: it neither answers nor acts, so even COMPLETE
	 * leaves it where it is. */
	if (b->fault == SIM_FAULT_SILENT) {
		if (!b->silent_logged)
			sim_log(b, "fault silent: ignoring everything");
		b->silent_logged = 1;
		return 0;
	}
	while (len && b->mode == SIM_MODE_KATAPULT && !b->hung && !b->stalled) {
		size_t n = SIM_RX_CAP - b->rx_len;
		int ret;

		if (n > len)
			n = len;
		memcpy(b->rx + b->rx_len, data, n);
		b->rx_len += n;
		data += n;
		len -= n;
		ret = sim_katapult_process(b);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/****************************************************************
 * Klipper mode
 ****************************************************************/

/* Klipper ignores everything here but its serial bootloader request. */
static void
sim_klipper_input(struct sim_board *b, const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < len && b->mode == SIM_MODE_KLIPPER; i++) {
		if (b->tail_len == SIM_BL_REQUEST_LEN) {
			memmove(b->tail, b->tail + 1, SIM_BL_REQUEST_LEN - 1);
			b->tail_len--;
		}
		b->tail[b->tail_len++] = data[i];
		if (b->tail_len == SIM_BL_REQUEST_LEN
		    && !memcmp(b->tail, sim_bl_request, SIM_BL_REQUEST_LEN)) {
			b->tail_len = 0;
			sim_enter_bootloader(b, "serial request block");
			/* A real MCU resets here: the rest of the chunk is lost. */
			if (b->mode == SIM_MODE_KATAPULT)
				return;
		}
	}
}

int
sim_board_input(struct sim_board *b, const uint8_t *data, size_t len,
		uint8_t *out, size_t out_cap, size_t *ret_out_len)
{
	size_t n;
	int ret = 0;

	b->image_err = 0;
	if (b->hung)
		;	/* a locked-up CPU takes nothing */
	else if (b->mode == SIM_MODE_KATAPULT)
		ret = sim_katapult_input(b, data, len);
	else
		sim_klipper_input(b, data, len);

	n = b->txq_len < out_cap ? b->txq_len : out_cap;
	if (n) {
		memcpy(out, b->txq, n);
		memmove(b->txq, b->txq + n, b->txq_len - n);
		b->txq_len -= n;
	}
	*ret_out_len = n;
	if (ret < 0)
		return ret;
	return b->image_err;
}
