/* simcfg.c - board configurations and the image directory (simcfg.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "simcfg.h"

static char image_dir[4096];

static void remove_images(void)
{
	static const char *const names[] = { "whole", "split", "node" };
	char path[4200];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", image_dir, names[i]);
		(void)unlink(path);
		snprintf(path, sizeof(path), "%s/%s.tmp", image_dir, names[i]);
		(void)unlink(path);
	}
	(void)rmdir(image_dir);
}

static const char *images(void)
{
	if (!image_dir[0]) {
		const char *tmp = getenv("TMPDIR");

		snprintf(image_dir, sizeof(image_dir), "%s/kflash-fuzz.XXXXXX",
			 tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(image_dir)) {
			perror("fuzz: mkdtemp");
			abort();
		}
		atexit(remove_images);
	}
	return image_dir;
}

void fuzz_sim_board_cfg(uint8_t b, const char *name, struct sim_board_cfg *c)
{
	static const struct { const char *mcu; uint32_t app_start; } chips[8] = {
		{ "stm32f446xx", 0x08008000 }, { "stm32g0b1xx", 0x08002000 },
		{ "stm32f103xe", 0x08002000 }, { "rp2040", 0x10004000 },
		{ "lpc1769", 0x00004000 }, { "stm32h723xx", 0x08020000 },
		{ "stm32f072xb", 0x08002000 }, { "rp2350", 0x10004000 },
	};
	static const enum sim_fault faults[4] = {
		SIM_FAULT_NONE, SIM_FAULT_SILENT, SIM_FAULT_CORRUPT_READBACK,
		SIM_FAULT_NO_BOOTLOADER,
	};
	static char path[4200];

	snprintf(path, sizeof(path), "%s/%s", images(), name);
	memset(c, 0, sizeof(*c));
	c->mcu = chips[b & 7].mcu;
	c->app_start = chips[b & 7].app_start;
	c->serial = "3A0039000851313433343333";
	c->version = "v0.0.1-fuzz";
	c->image_path = path;
	c->mode = b & 8 ? SIM_MODE_KLIPPER : SIM_MODE_KATAPULT;
	c->fault = faults[(b >> 4) & 3];
	c->can = (b >> 6) & 1;
	memcpy(c->canbus_uuid, "\x0a\x1b\x2c\x3d\x4e\x5f", 6);
	fuzz_assert(sim_board_cfg_problem(c) == NULL);
}
