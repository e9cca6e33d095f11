/* kconfig.c - parse Klipper .config files and validate their MCU. */
#include <stdlib.h>
#include <string.h>

#include "kflash/kconfig.h"
#include "kflash/util.h"

static void add(struct kf_kconfig *c, const char *k, size_t kn, char *v)
{
	size_t i;

	/* a later line wins, as in Kconfig */
	for (i = 0; i < c->n; i++) {
		if (strlen(c->entries[i].key) == kn && memcmp(c->entries[i].key, k, kn) == 0) {
			free(c->entries[i].value);
			c->entries[i].value = v;
			return;
		}
	}
	c->entries = kf_xrealloc(c->entries, (c->n + 1) * sizeof(*c->entries));
	c->entries[c->n].key = kf_xstrndup(k, kn);
	c->entries[c->n].value = v;
	c->n++;
}

static char *unquote(const char *v, size_t n)
{
	char *out, *w;
	size_t i;

	if (n < 2 || v[0] != '"' || v[n - 1] != '"')
		return kf_xstrndup(v, n);
	out = w = kf_xmalloc(n);
	for (i = 1; i + 1 < n; i++) {
		if (v[i] == '\\' && i + 2 < n)
			i++;
		*w++ = v[i];
	}
	*w = '\0';
	return out;
}

static bool is_key_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '_';
}

void kf_kconfig_parse(const char *text, size_t len, struct kf_kconfig *c)
{
	const char *p = text, *end = text + len;

	c->entries = NULL;
	c->n = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end, *k, *eq;
		size_t kn;

		if (le > p && le[-1] == '\r')	/* CRLF from a Windows editor */
			le--;
		if (le - p > 15 && memcmp(p, "# CONFIG_", 9) == 0 &&
		    le - p > 11 && memcmp(le - 11, " is not set", 11) == 0) {
			k = p + 2;
			kn = (size_t)(le - 11 - k);
			if (kn && memchr(k, ' ', kn) == NULL)
				add(c, k, kn, kf_xstrdup("n"));
		} else if (le - p > 7 && memcmp(p, "CONFIG_", 7) == 0 &&
			   (eq = memchr(p, '=', (size_t)(le - p)))) {
			k = p;
			kn = (size_t)(eq - p);
			for (size_t i = 0; i < kn; i++)
				if (!is_key_char(k[i]))
					goto next;
			add(c, k, kn, unquote(eq + 1, (size_t)(le - eq - 1)));
		}
next:
		p = nl ? nl + 1 : end;
	}
}

void kf_kconfig_release(struct kf_kconfig *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		free(c->entries[i].key);
		free(c->entries[i].value);
	}
	free(c->entries);
	c->entries = NULL;
	c->n = 0;
}

const char *kf_kconfig_get(const struct kf_kconfig *c, const char *key)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->entries[i].key, key) == 0)
			return strcmp(c->entries[i].value, "n") == 0 ? NULL
								     : c->entries[i].value;
	return NULL;
}

static int by_key(const void *a, const void *b)
{
	return strcmp(((const struct kf_kconfig_entry *)a)->key,
		      ((const struct kf_kconfig_entry *)b)->key);
}

char *kf_kconfig_normalise(const struct kf_kconfig *c)
{
	struct kf_kconfig_entry *sorted = kf_xcalloc(c->n + 1, sizeof(*sorted));
	struct kf_buf b = KF_BUF_INIT;
	size_t i;

	if (c->n)
		memcpy(sorted, c->entries, c->n * sizeof(*sorted));
	qsort(sorted, c->n, sizeof(*sorted), by_key);
	for (i = 0; i < c->n; i++)
		if (strcmp(sorted[i].value, "n") != 0)
			kf_buf_addf(&b, "%s=%s\n", sorted[i].key, sorted[i].value);
	free(sorted);
	if (!b.data)
		kf_buf_add(&b, "", 0);
	return b.data;
}

int kf_kconfig_check_mcu(const struct kf_kconfig *c, const char *key,
			 const char *registered, const char *device,
			 const char *path, bool flashing, struct kf_error *err)
{
	const char *mcu = kf_kconfig_get(c, "CONFIG_MCU");
	const char *dir = kf_kconfig_get(c, "CONFIG_BOARD_DIRECTORY");

	if (!mcu && dir && strcmp(dir, "linux") == 0) {
		if (!flashing)
			return KF_HOST_MCU;
		kf_error_set(err, KF_EREFUSED, "the config of %s is for the Linux host "
			     "MCU, which is not flashed over USB", key);
		kf_error_cause(err, "%s has CONFIG_BOARD_DIRECTORY=\"linux\"", path);
		kf_error_step(err, "build and install the host MCU with Klipper's own "
			      "instructions (" KF_CMD("make") "; "
			      KF_CMD("sudo make flash") ") and its klipper-mcu service");
		kf_error_step(err, "or choose the board's real MCU: "
			      KF_CMD("kflash config %s"), key);
		return KF_EREFUSED;
	}
	if (!mcu) {
		kf_error_set(err, KF_EREFUSED, "the config of %s names no MCU "
			     "(no CONFIG_MCU in %s)", key, path);
		kf_error_step(err, KF_CMD("kflash config %s") "   (choose the "
			      "micro-controller and save)", key);
		return KF_EREFUSED;
	}
	if (strcmp(mcu, registered) != 0) {
		kf_error_set(err, KF_EREFUSED, "MCU mismatch for %s: the config is "
			     "for %s but the board is registered as %s", key, mcu,
			     registered);
		kf_error_cause(err, "the wrong micro-controller was chosen in "
			       "menuconfig, or the config belongs to another board");
		kf_error_step(err, KF_CMD("kflash config %s") "   (choose %s)", key, registered);
		kf_error_step(err, "or, if the registry is wrong: "
			      KF_CMD("kflash remove %s && kflash add"), key);
		return KF_EREFUSED;
	}
	if (device && strcmp(mcu, device) != 0) {
		kf_error_set(err, KF_EREFUSED, "MCU mismatch for %s: the config is "
			     "for %s but the connected board reports %s", key, mcu,
			     device);
		kf_error_cause(err, "the board's pattern finds a different board, or "
			       "the board was replaced");
		kf_error_step(err, KF_CMD("kflash list") "   (check which device %s "
			      "finds)", key);
		kf_error_step(err, KF_CMD("kflash remove %s && kflash add")
			      "   (register the board anew)", key);
		return KF_EREFUSED;
	}
	return 0;
}

/* Klipper's menus choose a chip by an architecture symbol and a model
 * symbol; CONFIG_MCU follows from them (src/<arch>/Kconfig). */
char *kf_kconfig_seed(const char *mcu)
{
	static const struct { const char *prefix, *arch; size_t model_len; bool upper; } fam[] = {
		/* stm32f446xx -> MACH_STM32F446, stm32g0b1xx -> MACH_STM32G0B1 */
		{ "stm32", "STM32", 9, true },
		{ "rp2", "RPXXXX", 0, true },		/* MACH_RP2040, MACH_RP2350 */
		{ "lpc176", "LPC176X", 0, true },	/* MACH_LPC1769 */
		{ "samc21", "ATSAMD", 9, true },	/* samd21g18a -> MACH_SAMD21G18 */
		{ "samd", "ATSAMD", 9, true },
		{ "same5", "ATSAMD", 9, true },
		{ "same70", "ATSAM", 0, true },		/* MACH_SAME70Q20B */
		{ "sam3", "ATSAM", 0, true },
		{ "sam4", "ATSAM", 0, true },
		{ "atmega", "AVR", 0, false },		/* MACH_atmega2560 */
		{ "at90usb", "AVR", 0, false },
		{ "lgt8f", "AVR", 0, false },
	};
	size_t i, n, k;
	char model[32];

	if (!mcu)
		return NULL;
	if (strcmp(mcu, "linux") == 0)
		return kf_xstrdup("CONFIG_MACH_LINUX=y\n");
	for (i = 0; i < sizeof(fam) / sizeof(fam[0]); i++) {
		if (strncmp(mcu, fam[i].prefix, strlen(fam[i].prefix)) != 0)
			continue;
		n = fam[i].model_len ? fam[i].model_len : strlen(mcu);
		if (strlen(mcu) < n || n >= sizeof(model))
			return NULL;
		for (k = 0; k < n; k++) {
			char ch = mcu[k];

			if (!is_key_char(ch))
				return NULL;
			model[k] = fam[i].upper && ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
		}
		model[n] = '\0';
		return kf_asprintf("CONFIG_MACH_%s=y\nCONFIG_MACH_%s=y\n", fam[i].arch, model);
	}
	return NULL;
}

bool kf_kconfig_no_bootloader(const struct kf_kconfig *c)
{
	const char *app = kf_kconfig_get(c, "CONFIG_FLASH_APPLICATION_ADDRESS");
	const char *boot = kf_kconfig_get(c, "CONFIG_FLASH_BOOT_ADDRESS");
	char *e1, *e2;
	unsigned long a, b;

	if (!app || !boot)
		return false;
	a = strtoul(app, &e1, 0);
	b = strtoul(boot, &e2, 0);
	/* "No bootloader": the application starts where the chip boots (the
	 * RP2040's boot address already leaves room for its stage2 loader) */
	return *app && *boot && !*e1 && !*e2 && a <= b;
}
