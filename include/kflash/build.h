/* build.h - a board's cached config and its firmware build.
 *
 * Each board keeps its own config (config_dir/configs/<key>/.config) and
 * build dir ($XDG_CACHE_HOME/kflash/build/<key>/). Klipper's make runs with
 * KCONFIG_CONFIG and OUT pointing at them, so the Klipper checkout is never
 * written to. A stamp of everything that decides the firmware (the
 * normalised config, the checkout's HEAD, version and uncommitted changes,
 * the compiler) lets an unchanged board skip the build. Every make runs at
 * idle priority (menuconfig excepted): a build during a print must not
 * disturb it.
 */
#ifndef KFLASH_BUILD_H
#define KFLASH_BUILD_H

#include <stdbool.h>
#include <sys/types.h>

#include "kflash/kconfig.h"
#include "kflash/kflash.h"
#include "kflash/registry.h"

char *kf_board_config_path(const char *config_dir, const char *key);
/* $XDG_CACHE_HOME/kflash/build/<key>, else ~/.cache/kflash/build/<key> */
char *kf_board_build_dir(const struct kf_ops *ops, const char *key);

/* Every function below that can fail reports into the err it is given
 * (NULL: not reported) and never into ctx->err: a command working on
 * several boards keeps each board's error apart. */

/* klipper_dir expanded and checked to hold a Klipper checkout (Makefile and
 * src/Kconfig). KF_EINPUT naming the setting when they are not there;
 * KF_EFAILED with the errno when they cannot be checked (an I/O error is
 * no missing checkout). */
int kf_klipper_dir(struct kf_ctx *ctx, const struct kf_settings *s,
		   struct kf_error *err, char **ret_dir);

/* Loads the board's cached config; a missing one is an error saying how to
 * make it (a build must never start without: Klipper's make would invent
 * an AVR config). */
int kf_board_config_load(struct kf_ctx *ctx, const struct kf_board *b,
			 struct kf_error *err, struct kf_kconfig *ret_cfg,
			 char **ret_path);

/* make -C <klipper_dir> KCONFIG_CONFIG=<config> OUT=<out>/ TARGET [ARG]:
 * the one way kflash runs Klipper's make, so the checkout is never written
 * to. arg may be NULL. Free with kf_argv_free. */
char **kf_make_argv(const char *klipper_dir, const char *config, const char *out,
		    const char *target, const char *arg);

/* menuconfig on the board's cached config, on the user's terminal. A
 * board without a config yet starts from its registered MCU's menu
 * symbols (not Klipper's AVR default). Returns 0 when a changed config was
 * saved, KF_CONFIG_UNCHANGED when the file is as it was, or an error
 * (also when the user left a new config without saving). */
#define KF_CONFIG_UNCHANGED 1
int kf_menuconfig(struct kf_ctx *ctx, const struct kf_settings *s,
		  const struct kf_board *b, struct kf_error *err);

/* Checks the config a build uses (cfg: after Klipper's olddefconfig) for
 * board b, as kf_kconfig_check_mcu; saved is the file before olddefconfig,
 * so a refusal can say when olddefconfig changed the chip. path names the
 * cached config. 0, KF_HOST_MCU (not flashing) or KF_EREFUSED in err. */
int kf_build_check_config(struct kf_ctx *ctx, const struct kf_board *b,
			  const struct kf_kconfig *saved, const struct kf_kconfig *cfg,
			  const char *path, const char *device_mcu, bool flashing,
			  struct kf_error *err);

/* Katapult sits where the chip boots: a config linked there ("No
 * bootloader") would not boot after Katapult. KF_EREFUSED in err. */
int kf_build_check_offset(struct kf_ctx *ctx, const struct kf_board *b,
			  const struct kf_kconfig *cfg, const char *path,
			  struct kf_error *err);

/* What a build of b would use, without building or writing anything of the
 * user's: Klipper's olddefconfig on a copy of the cached config in
 * $XDG_CACHE_HOME/kflash/dry-run/<key>/ (never the config itself, never
 * the checkout). ret_saved is the cached config, ret_cfg the completed one. */
/* kflash add --config FILE: reads FILE (~ expanded) as an existing
 * Klipper config (~/klipper/.config, KIAUH's ~/klipper-kconfigs/) for a
 * board whose MCU is mcu. 0 with the text in *ret_text (malloc'd);
 * KF_EINPUT when it cannot be read or is no Klipper config; KF_EREFUSED
 * when it is for another MCU. Nothing is written. */
int kf_config_adopt_read(struct kf_ctx *ctx, const char *file, const char *key,
			 const char *mcu, struct kf_error *err, char **ret_text,
			 size_t *ret_len);
/* Writes text as board key's config (its directory made). 0, or
 * KF_EFAILED with err. */
int kf_config_adopt_write(struct kf_ctx *ctx, const char *key, const char *text,
			  size_t len, struct kf_error *err);

/* The compiler Klipper builds cfg with: arm-none-eabi-gcc, avr-gcc or gcc
 * (the Linux host MCU, the simulator, the PRU). */
const char *kf_config_compiler(const struct kf_kconfig *cfg);

int kf_config_preview(struct kf_ctx *ctx, const struct kf_settings *s,
		      const struct kf_board *b, struct kf_error *err,
		      struct kf_kconfig *ret_saved, struct kf_kconfig *ret_cfg);

struct kf_build_opts {
	bool rebuild;		/* make clean, ignore the stamp */
	bool flashing;		/* for flashing over USB: a host-MCU config is refused */
	const char *device_mcu;	/* what the connected board reports, or NULL */
	bool katapult;		/* flashed through Katapult: kf_build_check_offset */
};

struct kf_build_result {
	char *firmware;		/* path of the file to flash */
	off_t size;
	int64_t ms;		/* time spent building */
	bool up_to_date;	/* the stamp matched: nothing was run */
	char *log_path;
	char *build_dir;
	char *version;		/* Klipper version of the checkout */
	struct kf_kconfig cfg;	/* the config as built: after olddefconfig */
	bool host_mcu;		/* a Linux host MCU config: built, not flashed over USB */
};

void kf_build_result_release(struct kf_build_result *r);

/* Builds b's firmware: Klipper's olddefconfig completes the cached config,
 * which is then checked (kf_build_check_config, with opts' device MCU) before
 * anything compiles. A build whose Klipper version or compiler differs from
 * the last one's starts from an empty OUT (make clean), so the firmware
 * carries the checkout's version and only the current compiler's objects;
 * the result is verified from OUT/klipper.dict (MCU and version). */
int kf_build(struct kf_ctx *ctx, const struct kf_settings *s, const struct kf_board *b,
	     const struct kf_build_opts *opts, struct kf_error *err,
	     struct kf_build_result *ret);

/* git describe --always --tags --long --dirty of the checkout: -ENOENT when
 * git gives none (no git, no repository), another negative errno when git
 * could not be asked. */
int kf_klipper_version(struct kf_ctx *ctx, const char *klipper_dir, char **ret_version);

/* FNV-1a 64-bit, for stamps (not security). */
uint64_t kf_hash(const void *data, size_t len, uint64_t seed);
#define KF_HASH_SEED 0xcbf29ce484222325ULL

#endif
