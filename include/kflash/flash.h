/* flash.h - putting firmware on a board: Katapult's flashtool.py, Klipper's
 * make flash, and reading what they said.
 *
 * flashtool's exit status alone proves nothing (it exits 0 without writing
 * when the board comes back as something other than Katapult), so its
 * output is classified; each class has its own recovery steps.
 */
#ifndef KFLASH_FLASH_H
#define KFLASH_FLASH_H

#include <stdbool.h>
#include <stdint.h>

#include "kflash/kflash.h"
#include "kflash/ops.h"
#include "kflash/registry.h"
#include "kflash/util.h"

enum kf_flash_class {
	KF_FLASH_OK,		/* "Programming Complete" and exit 0 */
	KF_FLASH_NO_PYSERIAL,
	KF_FLASH_IN_USE,	/* another program holds the serial port */
	KF_FLASH_NOT_KATAPULT,	/* came back as something else; nothing written */
	KF_FLASH_NO_ANSWER,	/* the bootloader never answered */
	KF_FLASH_MCU_MISMATCH,	/* klipper.bin is for another MCU */
	KF_FLASH_WRITE_ERROR,	/* write or verify failed */
	KF_FLASH_NO_COMPLETE,	/* exit 0 without "Programming Complete" */
	KF_FLASH_TIMED_OUT,
	KF_FLASH_NOT_STARTED,	/* python or flashtool.py missing */
	KF_FLASH_INTERRUPTED,	/* kflash got a signal; flashtool got SIGTERM */
	KF_FLASH_FAILED,	/* anything else */
};

/* Classifies flashtool's output and how it ended. */
enum kf_flash_class kf_flashtool_classify(const char *output, const struct kf_exit *ex);

/* "Application Start: 0x8008000" from status mode. 0, or -ENOENT. */
int kf_flashtool_app_start(const char *output, uint32_t *ret);

/* Fills err with what failed for class c and the steps to recover. */
int kf_flash_error(struct kf_error *err, enum kf_flash_class c, const char *board,
		   const char *output, const char *command, const struct kf_settings *s);

struct kf_tool_run {
	enum kf_flash_class cls;
	struct kf_exit exit;
	struct kf_buf output;	/* everything it printed */
	char *command;		/* for messages */
};

void kf_tool_run_release(struct kf_tool_run *t);

/* python flashtool.py -d node [-s | -f firmware]; status when firmware is
 * NULL. */
int kf_flashtool(struct kf_ctx *ctx, const struct kf_settings *s, const char *node,
		 const char *firmware, struct kf_tool_run *ret);

/* make -C klipper KCONFIG_CONFIG=... OUT=... flash FLASH_DEVICE=node */
int kf_make_flash(struct kf_ctx *ctx, const struct kf_settings *s,
		  const char *klipper_dir, const char *config, const char *out,
		  const char *node, struct kf_tool_run *ret);

/* The argv kf_flashtool and kf_make_flash run, also for --dry-run
 * (NULL-terminated, each string malloc'd; free with kf_argv_free). */
char **kf_flashtool_argv(const struct kf_settings *s, const char *node,
			 const char *firmware);
char **kf_make_flash_argv(const char *klipper_dir, const char *config,
			  const char *out, const char *node);

#endif
