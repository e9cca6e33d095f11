/* fuzz_flashtool.c - what Katapult's flashtool.py prints, read by kflash:
 * a flash (kf_flashtool with a firmware: progress lines, the class of its
 * end, the error and steps shown for it) and a status request (the
 * application start and MCU type flash_board.c checks before writing).
 *
 * Input: one byte saying how the tool ends (tool.h), then its
 * output. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tool.h"
#include "kflash/flash.h"
#include "kflash/kflash.h"
#include "kflash/proc.h"
#include "kflash/util.h"

/* "Application Start: 0x8008000": flashtool prints the address with
 * {:4X} (hex, padded with spaces to 4 digits); kflash takes it only as
 * that: spaces, then hex digits of 32 bits, never a sign or more digits
 * that strtoul would read and wrap */
static void app_start(const char *out)
{
	const char *p = strstr(out, "Application Start: 0x");
	uint32_t at = 0;
	int r = kf_flashtool_app_start(out, &at);
	uint64_t want = 0;
	size_t n = 0, lead;

	if (!p) {
		fuzz_assert(r < 0);
		return;
	}
	p += 21;
	p += strspn(p, " ");
	lead = strspn(p, "0");
	n = strspn(p, "0123456789abcdefABCDEF");
	if (n == 0 || n - lead > 8) {
		fuzz_assert(r < 0);
		return;
	}
	for (size_t i = lead; i < n; i++)
		want = want * 16 + (uint64_t)(p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
	fuzz_assert(r == 0 && at == want);
}

static void flash(struct fuzz_tool *t, const char *firmware)
{
	static const char *const dev[] = { "-d", "/dev/serial/by-id/usb-katapult_"
		"stm32f446xx_3A0039000851313433343333-if00", NULL };
	struct kf_ctx ctx = { .ops = &t->w.ops, .out = &t->o };
	struct kf_settings s;
	struct kf_tool_run run;
	struct kf_error err = { 0 };
	char *mcu;

	kf_settings_defaults(&s);
	fuzz_assert(kf_flashtool(&ctx, &s, dev, firmware, firmware ? "octopus" : NULL,
				 &run) == 0);
	fuzz_assert(run.output.data != NULL && run.command != NULL);
	/* the capture is text: NULs dropped, so every word in it is found */
	fuzz_assert(strlen(run.output.data) == run.output.len);
	if (run.cls == KF_FLASH_OK) {
		fuzz_assert(kf_exit_ok(&run.exit));
		fuzz_assert(!firmware || strstr(run.output.data, "Programming Complete"));
	}
	app_start(run.output.data);
	mcu = kf_flashtool_mcu(run.output.data);
	fuzz_assert(!mcu || *mcu);
	free(mcu);
	if (run.cls != KF_FLASH_OK) {
		fuzz_assert(kf_flash_error(&err, run.cls, "octopus", run.output.data,
					   run.command, &s) != 0);
		fuzz_error_done(&err);
	}
	kf_tool_run_release(&run);
	fuzz_settings_release(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_tool t;

	fuzz_tool_init(&t, data, size);
	flash(&t, "/home/pi/.cache/kflash/build/octopus/klipper.bin");
	flash(&t, NULL);
	fuzz_tool_release(&t);
	return 0;
}
