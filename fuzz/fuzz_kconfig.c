/* fuzz_kconfig.c - a Klipper .config as kflash reads it (kf_kconfig_parse)
 * and what it decides from one: the MCU check, "No bootloader", the
 * normalised form the build cache compares, and a new config's seed. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kflash/kconfig.h"
#include "kflash/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kf_kconfig c = KF_KCONFIG_INIT, n = KF_KCONFIG_INIT;
	struct kf_error err = { 0 };
	const char *mcu;
	char *norm, *norm2, *seed;
	size_t i;
	int r;

	kf_kconfig_parse((const char *)data, size, &c);
	for (i = 0; i < c.n; i++) {
		fuzz_assert(c.entries[i].key && c.entries[i].value);
		fuzz_assert(strncmp(c.entries[i].key, "CONFIG_", 7) == 0);
	}
	mcu = kf_kconfig_get(&c, "CONFIG_MCU");
	(void)kf_kconfig_get(&c, "CONFIG_BOARD_DIRECTORY");
	(void)kf_kconfig_no_bootloader(&c);

	/* the board it says it is for passes; another one never does */
	r = kf_kconfig_check_mcu(&c, "octopus", mcu ? mcu : "stm32f446xx", NULL,
				 "~/.config/kflash/configs/octopus/.config", true, &err);
	fuzz_assert(mcu ? r == 0 : r == KF_EREFUSED);
	fuzz_error_done(&err);
	r = kf_kconfig_check_mcu(&c, "octopus", "stm32f446xx", "stm32g0b1xx",
				 "~/.config/kflash/configs/octopus/.config", false, &err);
	fuzz_assert(r != 0);
	fuzz_error_done(&err);

	/* the normalised form reads back as a config of no more options */
	norm = kf_kconfig_normalise(&c);
	fuzz_assert(norm != NULL);
	kf_kconfig_parse(norm, strlen(norm), &n);
	norm2 = kf_kconfig_normalise(&n);
	fuzz_assert(n.n <= c.n);
	free(norm2);
	kf_kconfig_release(&n);
	free(norm);

	seed = kf_kconfig_seed(mcu);
	if (seed) {
		kf_kconfig_parse(seed, strlen(seed), &n);
		fuzz_assert(n.n >= 1);
		kf_kconfig_release(&n);
		free(seed);
	}
	kf_kconfig_release(&c);
	return 0;
}
