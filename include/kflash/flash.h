/* flash.h - putting firmware on a board: Katapult's flashtool.py, Klipper's
 * make flash, and reading what they said.
 *
 * An exit status alone proves nothing (flashtool exits 0 without writing
 * when the board comes back as something other than Katapult; rp2040_flash
 * exits 0 when it finds no board), and make's own last line ("Error 255")
 * hides why it failed, so both tools' output is classified; each class has
 * its own recovery steps.
 *
 * make flash runs Klipper's scripts/flash_usb.py, which runs dfu-util,
 * hid-flash or rp2040_flash through sudo when the board does not come back
 * as Katapult. kflash never lets that sudo ask for a password (it would sit
 * at the prompt with Klipper stopped): it asks sudo non-interactively first
 * and, when sudo would prompt or is missing, passes NOSUDO=1 so the tool
 * runs as this user and fails fast if it needs root.
 */
#ifndef KFLASH_FLASH_H
#define KFLASH_FLASH_H

#include <stdbool.h>
#include <stdint.h>

#include "kflash/kconfig.h"
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
	/* make flash only */
	KF_FLASH_TOOL_MISSING,	/* dfu-util, avrdude... is not installed */
	KF_FLASH_NEEDS_LIBUSB,	/* rp2040_flash/hid-flash cannot be built */
	KF_FLASH_SUDO_PASSWORD,	/* sudo wanted a password and gave up */
	KF_FLASH_NO_PERMISSION,	/* the tool could not open the USB device */
	KF_FLASH_NO_DEVICE,	/* no board found in its bootloader */
	KF_FLASH_UNSUPPORTED,	/* flash_usb.py cannot flash this MCU */
	KF_FLASH_UNSAFE_DEVICE,	/* a device name make's shell would run: not started */
	KF_FLASH_FAILED,	/* anything else */
};

/* Classifies flashtool's output and how it ended. */
enum kf_flash_class kf_flashtool_classify(const char *output, const struct kf_exit *ex);

/* "Application Start: 0x8008000" from status mode (flashtool pads it
 * with spaces to 4 digits). 0, or -ENOENT when it says none of 32 bits. */
int kf_flashtool_app_start(const char *output, uint32_t *ret);

/* "MCU type: stm32g0b1xx" from status mode (Katapult's CONNECT), malloc'd,
 * or NULL (also for a "MCU type: " naming none). */
char *kf_flashtool_mcu(const char *output);

/* Fills err with what failed for class c and the steps to recover. */
int kf_flash_error(struct kf_error *err, enum kf_flash_class c, const char *board,
		   const char *output, const char *command, const struct kf_settings *s);

struct kf_tool_run {
	enum kf_flash_class cls;
	struct kf_exit exit;
	struct kf_buf output;	/* everything it printed */
	char *command;		/* for messages */
	/* make flash only */
	char *cause;		/* the line of its output that says why */
	char *tool;		/* the program that was missing or failed */
	bool bootloader;	/* the board was asked into its bootloader */
	bool nosudo;		/* ran with NOSUDO=1 */
	const char *sudo_tool;	/* what flash_usb.py would run through sudo */
};

void kf_tool_run_release(struct kf_tool_run *t);

/* python flashtool.py DEVICE-ARGS [-s | -f firmware]; status when firmware
 * is NULL. dev_args name the device as its transport reaches it ("-d",
 * "/dev/ttyACM0"; NULL-terminated). */
int kf_flashtool(struct kf_ctx *ctx, const struct kf_settings *s,
		 const char *const *dev_args, const char *firmware, const char *board,
		 struct kf_tool_run *ret);

/* flashtool.py with exactly args after the script (CAN: "-i can0 -q" to
 * query the bus, "-i can0 -u UUID -r" to send a node to its bootloader),
 * bounded by timeout.flash; ret as for kf_flashtool. */
int kf_flashtool_cmd(struct kf_ctx *ctx, const struct kf_settings *s,
		     const char *const *args, struct kf_tool_run *ret);

/* ---- make flash ----------------------------------------------------------- */

/* The program flash_usb.py runs through sudo for this MCU when the board
 * does not come back as Katapult: "dfu-util" (stm32, lpc176x),
 * "lib/hidflash/hid-flash" (stm32 built for the HID bootloader, app_start
 * 0x8000800 or 0x8004000), "lib/rp2040_flash/rp2040_flash" (rp2040,
 * rp2350; both relative to the Klipper checkout, built by make flash), or
 * NULL when it runs none through sudo (sam, avr...). app_start may be NULL. */
const char *kf_make_flash_sudo_tool(const char *mcu, const char *app_start);

/* What `sudo -n -l TOOL` (never a prompt) says. */
enum kf_sudo_answer {
	KF_SUDO_OK,		/* runs without a password */
	KF_SUDO_PASSWORD,	/* sudo would ask for one */
	KF_SUDO_NO_TOOL,	/* "sudo: TOOL: command not found" */
	KF_SUDO_NO_SUDO,	/* sudo itself is not installed */
	KF_SUDO_UNKNOWN,	/* it failed another way */
};

/* How make flash will run for a board. */
struct kf_make_flash_plan {
	const char *sudo_tool;		/* kf_make_flash_sudo_tool(), or NULL */
	enum kf_sudo_answer sudo;	/* for sudo_tool */
	bool nosudo;			/* pass NOSUDO=1 */
	struct kf_exit check_exit;	/* how the sudo check ended */
};

/* Asks sudo about the tool without ever prompting. A tool make flash has
 * yet to build is asked about as `true`: whether sudo runs anything without
 * a password. Returns 0, or KF_EINTERRUPTED when kflash got a signal
 * meanwhile (check_exit says which). */
int kf_make_flash_plan(struct kf_ctx *ctx, const char *klipper_dir,
		       const struct kf_kconfig *cfg, struct kf_make_flash_plan *ret);

/* Before Klipper is stopped: refuses (KF_EREFUSED, err filled) a board
 * whose own method is make flash (primary) when sudo would ask for the
 * password of its tool, unless --force (then make flash runs with
 * NOSUDO=1); for a fallback it only logs. A missing tool is no refusal: it
 * fails fast with its cause, and the board may come back as Katapult and
 * need none. 0 when make flash can run. */
int kf_make_flash_preflight(struct kf_ctx *ctx, const char *klipper_dir,
			    const struct kf_kconfig *cfg, const char *board,
			    bool primary, struct kf_error *err);

/* make -C klipper KCONFIG_CONFIG=... OUT=... flash FLASH_DEVICE=node
 * [NOSUDO=1], after kf_make_flash_plan; classifies what it printed. */
int kf_make_flash(struct kf_ctx *ctx, const struct kf_settings *s,
		  const char *klipper_dir, const char *config,
		  const struct kf_kconfig *cfg, const char *out, const char *node,
		  const char *board, struct kf_tool_run *ret);

/* Classifies make flash's output into t (cls, cause, tool, bootloader). */
void kf_make_flash_classify(const char *output, const struct kf_exit *ex,
			    struct kf_tool_run *t);

/* Fills err for a failed make flash: what, the cause line, whether the
 * board was left in its bootloader, and the steps for the class. */
int kf_make_flash_error(const struct kf_ops *ops, struct kf_error *err,
			const struct kf_tool_run *t, const char *board,
			const struct kf_settings *s);

/* Who a sudoers line names: this user's login name from the password
 * database (never $USER, which anyone can set), or "#UID" when the uid has
 * no name. malloc'd. */
char *kf_sudoers_user(const struct kf_ops *ops);
/* "pi ALL=(root) NOPASSWD: /usr/bin/dfu-util" for the sudoers file
 * (kf_sudoers_user's name). */
char *kf_sudoers_tool_line(const struct kf_ops *ops, const char *klipper_dir,
			   const char *tool);
/* The one command that adds sudoers line to /etc/sudoers.d/kflash, to
 * paste as it is: visudo checks the line before it installs the file
 * ("echo 'LINE' | sudo EDITOR='tee -a' visudo -f /etc/sudoers.d/kflash").
 * malloc'd. */
char *kf_sudoers_add_command(const char *line);

/* The argv kf_flashtool and kf_make_flash run, also for --dry-run
 * (NULL-terminated, each string malloc'd; free with kf_argv_free). */
char **kf_flashtool_argv(const struct kf_ops *ops, const struct kf_settings *s,
			 const char *const *dev_args,
			 const char *firmware);
char **kf_make_flash_argv(const char *klipper_dir, const char *config,
			  const char *out, const char *node);

#endif
