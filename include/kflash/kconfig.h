/* kconfig.h - reading a Klipper .config and checking it fits the board.
 *
 * Kconfig files are lines of CONFIG_X=value, "# CONFIG_X is not set" and
 * comments. kflash needs a handful of values (CONFIG_MCU,
 * CONFIG_BOARD_DIRECTORY, CONFIG_FLASH_APPLICATION_ADDRESS) and a normalised
 * form to decide whether a build is up to date.
 */
#ifndef KFLASH_KCONFIG_H
#define KFLASH_KCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "kflash/error.h"

struct kf_kconfig_entry {
	char *key;	/* CONFIG_MCU */
	char *value;	/* unquoted; "n" for "is not set" */
};

struct kf_kconfig {
	struct kf_kconfig_entry *entries;
	size_t n;
};

#define KF_KCONFIG_INIT { NULL, 0 }

/* Never fails on content: lines it does not understand are skipped. */
void kf_kconfig_parse(const char *text, size_t len, struct kf_kconfig *ret);
void kf_kconfig_release(struct kf_kconfig *c);
/* The value of key, or NULL when absent or not set. */
const char *kf_kconfig_get(const struct kf_kconfig *c, const char *key);
/* Set options sorted by key, one "KEY=value\n" each: two configs that
 * build the same firmware normalise the same. malloc'd. */
char *kf_kconfig_normalise(const struct kf_kconfig *c);

/* Checks the config is for this board before anything is built or stopped:
 * the config's MCU must equal the registered MCU and the MCU the connected
 * board reports (device_mcu, NULL when not connected). Returns 0 or
 * KF_EREFUSED with err naming both values and the fix. A config for the
 * Linux host MCU is refused when flashing and returns KF_HOST_MCU
 * otherwise (it builds, but is never flashed over USB). */
#define KF_HOST_MCU 1
int kf_kconfig_check_mcu(const struct kf_kconfig *c, const char *board_key,
			 const char *registered_mcu, const char *device_mcu,
			 const char *config_path, bool flashing, struct kf_error *err);

/* The menu symbols that choose mcu in Klipper's Kconfig
 * ("CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32F446=y\n"), to start a new
 * config with the board's chip instead of Klipper's AVR default; NULL for
 * an MCU kflash does not know. malloc'd. */
char *kf_kconfig_seed(const char *mcu);

/* true when the config links the firmware where the chip boots ("No
 * bootloader" as the bootloader offset): it would overwrite Katapult. */
bool kf_kconfig_no_bootloader(const struct kf_kconfig *c);

#endif
