/* fuzz_make_flash.c - what Klipper's make flash prints (flash_usb.py,
 * dfu-util, hid-flash, rp2040_flash, sudo, the shell, make), classified by
 * kf_make_flash_classify, and the error kflash shows for it with its
 * cause line, the missing tool and the sudoers line to add.
 *
 * Input: one byte saying how make ended (tool.h's encoding), one
 * choosing the sudo tool and NOSUDO, then the output as the capture holds
 * it (NUL bytes dropped). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tool.h"
#include "kflash/flash.h"
#include "kflash/proc.h"
#include "kflash/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const sudo_tools[4] = {
		NULL, "dfu-util", "lib/hidflash/hid-flash", "lib/rp2040_flash/rp2040_flash",
	};
	static const struct kf_exit ends[4] = {
		{ .kind = KF_EXIT_SIGNALED, .sig = 9 }, { .kind = KF_EXIT_TIMED_OUT },
		{ .kind = KF_EXIT_INTERRUPTED, .interrupted_by = 2 },
		{ .kind = KF_EXIT_EXEC_FAILED, .err = 2 },
	};
	struct fake_world w;
	struct kf_tool_run t;
	struct kf_settings s;
	struct kf_error err = { 0 };
	struct kf_buf out = KF_BUF_INIT;
	uint8_t how = size > 0 ? data[0] : 0, opt = size > 1 ? data[1] : 0;
	size_t i;

	memset(&t, 0, sizeof(t));
	if ((how & 7) >= 4)
		t.exit = ends[(how & 7) - 4];
	else
		t.exit = (struct kf_exit){ .kind = KF_EXIT_EXITED, .code = (how >> 3) & 3 ? 2 : 0 };
	for (i = 2; i < size; i++)
		if (data[i])
			kf_buf_add(&out, (const char *)&data[i], 1);
	kf_buf_add(&out, "", 0);
	t.sudo_tool = sudo_tools[opt & 3];
	t.nosudo = opt & 4;
	kf_make_flash_classify(out.data, &t.exit, &t);
	if (t.cls == KF_FLASH_OK)
		fuzz_assert(kf_exit_ok(&t.exit));
	if (t.tool)
		fuzz_assert(*t.tool && !strchr(t.tool, '/') && !strpbrk(t.tool, " '\n"));
	if (t.cls != KF_FLASH_OK) {
		fake_world_init(&w);
		kf_settings_defaults(&s);
		fuzz_assert(kf_make_flash_error(&w.ops, &err, &t, "octopus", &s) != 0);
		fuzz_error_done(&err);
	fuzz_settings_release(&s);
		fake_world_release(&w);
	}
	kf_tool_run_release(&t);
	kf_buf_release(&out);
	return 0;
}
