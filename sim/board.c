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

#define SIM_ACK		0xa0
#define SIM_NACK	0xf1
#define SIM_ERROR	0xf2

/* Katapult's PROTO_VERSION 1.1.0, sent as a little-endian word. */
#define SIM_PROTO_VERSION	0x00010100u

/* Erase granularity of the emulated flash. Real chips range from 1 KiB
 * pages to 128 KiB sectors; the count only shows up in SEND_EOF's reply. */
#define SIM_PAGE_SIZE	2048u
/* Application space the emulated chip has after app_start. */
#define SIM_FLASH_MAX	(2u * 1024 * 1024)

#define SIM_STR_MAX	64
#define SIM_RX_CAP	2048

/* Klipper's serial bootloader request block (after a leading '~' sync). */
static const char sim_bl_request[] = " \x1c Request Serial Bootloader!! ~";
#define SIM_BL_REQUEST_LEN (sizeof(sim_bl_request) - 1)

struct sim_board {
	char *mcu, *serial, *image_path, *version;
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
	uint32_t pages;		/* pages started since boot: SEND_EOF reply */
	uint32_t session_end;	/* end of highest block written, from app_start */
	unsigned blocks_written, blocks_read;
	int silent_logged;

	/* Emulated flash from app_start; bytes past flash_len read as erased. */
	uint8_t *flash;
	size_t flash_len;

	/* Responses not yet handed to the caller. */
	uint8_t *txq;
	size_t txq_len, txq_cap;

	/* Klipper mode: last bytes seen, to spot the bootloader request. */
	uint8_t tail[SIM_BL_REQUEST_LEN];
	size_t tail_len;

	int image_err;
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

static int
sim_cfg_valid(const struct sim_board_cfg *cfg)
{
	uint32_t bs = cfg->block_size;

	if (bs != 64 && bs != 128 && bs != 256 && bs != 512)
		return 0;
	if (cfg->app_start % bs)
		return 0;
	if (cfg->mode != SIM_MODE_KLIPPER && cfg->mode != SIM_MODE_KATAPULT)
		return 0;
	return cfg->image_path && cfg->image_path[0];
}

struct sim_board *
sim_board_new(const struct sim_board_cfg *cfg)
{
	struct sim_board *b;

	if (!cfg || !sim_cfg_valid(cfg)) {
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
	b->block_size = cfg->block_size;
	b->app_start = cfg->app_start;
	b->fault = cfg->fault;
	b->log = cfg->log;
	b->log_ctx = cfg->log_ctx;
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

void
sim_board_line(struct sim_board *b, unsigned baud, int dtr)
{
	if (b->mode != SIM_MODE_KLIPPER || baud != 1200 || dtr == 1)
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

static int
sim_flash_erased(const struct sim_board *b, size_t off, size_t len)
{
	for (size_t i = off; i < off + len && i < b->flash_len; i++)
		if (b->flash[i] != 0xff)
			return 0;
	return 1;
}

/* Follows Katapult's stm32 flash_write_block(): a block that starts a page
 * erases it (and counts it), a block inside a page must land on erased
 * flash, and an identical retransmission is accepted without writing.
 * Pages are aligned from app_start. Returns 0 or -1 (answer ERROR). */
static int
sim_flash_write(struct sim_board *b, uint32_t addr, const uint8_t *data)
{
	uint32_t bs = b->block_size;
	size_t off, page_off;

	if (addr & (bs - 1) || addr < b->app_start)
		return -1;
	off = addr - b->app_start;
	if (off + bs > SIM_FLASH_MAX || sim_flash_grow(b, off + bs) < 0)
		return -1;
	page_off = off - off % SIM_PAGE_SIZE;
	if (page_off == off) {
		if (sim_flash_erased(b, off, SIM_PAGE_SIZE)) {
			/* nothing to erase */
		} else if (!memcmp(b->flash + off, data, bs)
			   && sim_flash_erased(b, off + bs, SIM_PAGE_SIZE - bs)) {
			return 0;
		} else {
			size_t n = SIM_PAGE_SIZE;
			if (off + n > b->flash_len)
				n = b->flash_len - off;
			memset(b->flash + off, 0xff, n);
		}
		b->pages++;
	} else if (!sim_flash_erased(b, off, bs)) {
		if (!memcmp(b->flash + off, data, bs))
			return 0;
		return -1;	/* out of order: block not erased */
	}
	memcpy(b->flash + off, data, bs);
	if (off + bs > b->session_end)
		b->session_end = off + bs;
	return 0;
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

	sim_log(b, "SEND_EOF: %u blocks, %u pages", b->blocks_written,
		(unsigned)b->pages);
	b->blocks_written = 0;
	sim_put_le32(p + 4, b->pages);
	return sim_ack(b, SIM_CMD_SEND_EOF, p, 2);
}

static int
sim_cmd_request_block(struct sim_board *b, const uint8_t *payload,
		      size_t nwords)
{
	uint8_t p[8 + 512];
	/* Katapult reads the word without checking it was sent. */
	uint32_t addr = nwords ? sim_get_le32(payload) : 0;

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
 * application 100 ms later. */
static int
sim_cmd_complete(struct sim_board *b)
{
	uint8_t p[4];
	int ret = sim_ack(b, SIM_CMD_COMPLETE, p, 1);

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
	sim_board_set_mode(b, SIM_MODE_KLIPPER);
	b->event = SIM_EV_BOOT_APP;
	return 0;
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
		return sim_cmd_request_block(b, payload, nwords);
	case SIM_CMD_COMPLETE:
		return sim_cmd_complete(b);
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

/* Largest frame the receive buffer accepts: room for a SEND_BLOCK. */
static size_t
sim_frame_max(const struct sim_board *b)
{
	return b->block_size + 64;
}

/* Like Katapult's command_find_block(): returns 1 with a valid frame of
 * *pop bytes at rx[0], 0 when more bytes are needed, -1 when *pop bytes
 * are to be dropped. A run of bad bytes is nacked once. Katapult rescans
 * from the byte it failed on, which stalls on a bad frame that starts with
 * 01; the emulator steps past that byte instead. */
static int
sim_find_frame(struct sim_board *b, size_t *pop, int *ret)
{
	const uint8_t *rx = b->rx;
	size_t skip = 0, len;
	uint8_t *next;

	*ret = 0;
	if (b->need_sync)
		goto resync;
	if (b->rx_len < SIM_FRAME_MIN)
		return 0;
	if (rx[0] != SIM_STX1 || rx[1] != SIM_STX2)
		goto error;
	len = rx[3] * 4 + SIM_FRAME_MIN;
	if (len > sim_frame_max(b))
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
	skip = 1;
	if (!b->need_valid) {
		b->need_valid = 1;
		sim_log(b, "invalid frame: nack");
		*ret = sim_respond(b, SIM_NACK, NULL, 0);
	}
resync:
	next = memchr(rx + skip, SIM_STX1, b->rx_len - skip);
	if (next) {
		b->need_sync = 0;
		*pop = next - rx;
	} else {
		*pop = b->rx_len;
	}
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

	while (b->mode == SIM_MODE_KATAPULT && b->rx_len) {
		found = sim_find_frame(b, &pop, &ret);
		if (ret < 0)
			return ret;
		if (!found)
			break;
		if (found > 0) {
			ret = sim_dispatch(b, b->rx);
			if (ret < 0)
				return ret;
		}
		if (b->mode != SIM_MODE_KATAPULT) {
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
	while (len && b->mode == SIM_MODE_KATAPULT) {
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
	if (b->mode == SIM_MODE_KATAPULT)
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
