/* fuzz_registry.c - devices.json as kflash loads it (kf_registry_parse, the
 * part of kf_registry_load after the read). What it accepts must save and
 * load back the same (a save never loses or breaks a board), and every
 * setting it accepts must be one `kflash settings KEY VALUE` takes too. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kflash/registry.h"
#include "kflash/util.h"

static void same_settings(const struct kf_settings *a, const struct kf_settings *b)
{
	char *keys = kf_xstrdup(KF_SETTINGS_KEYS), *k, *save;

	for (k = strtok_r(keys, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
		char *va = kf_settings_get(a, k), *vb = kf_settings_get(b, k);

		fuzz_assert(va && vb && strcmp(va, vb) == 0);
		free(va);
		free(vb);
	}
	free(keys);
}

/* what `kflash settings KEY VALUE` would say to each loaded value */
static void cli_takes(const struct kf_settings *s)
{
	char *keys = kf_xstrdup(KF_SETTINGS_KEYS), *k, *save;
	struct kf_settings d;

	kf_settings_defaults(&d);
	for (k = strtok_r(keys, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
		char *v = kf_settings_get(s, k);
		struct kf_error err = { 0 };

		fuzz_assert(v);
		fuzz_assert(kf_settings_set(&d, k, v, &err) == 0);
		fuzz_error_done(&err);
		free(v);
	}
	free(keys);
	same_settings(s, &d);
	fuzz_settings_release(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kf_registry reg, again;
	struct kf_error err = { 0 };
	char *doc, *doc2;
	size_t i;

	if (kf_registry_parse("/home/pi/.config/kflash/devices.json", (const char *)data,
			      size, &reg, &err) < 0) {
		fuzz_assert(err.what != NULL);
		fuzz_error_done(&err);
		kf_registry_release(&reg);
		return 0;
	}
	fuzz_error_done(&err);
	for (i = 0; i < reg.n_boards; i++) {
		const struct kf_board *b = &reg.boards[i];

		fuzz_assert(b->key && b->name && b->mcu && b->pattern);
		fuzz_assert(kf_registry_find(&reg, b->key) == b);
		free(kf_registry_new_key(&reg, b->name));
	}
	cli_takes(&reg.settings);

	/* a save loads back as the same registry */
	doc = kf_registry_dump(&reg);
	fuzz_assert(doc != NULL);
	fuzz_assert(kf_registry_parse("/home/pi/.config/kflash/devices.json", doc,
				      strlen(doc), &again, &err) == 0);
	fuzz_error_done(&err);
	fuzz_assert(again.n_boards == reg.n_boards);
	same_settings(&reg.settings, &again.settings);
	doc2 = kf_registry_dump(&again);
	fuzz_assert(doc2 && strcmp(doc, doc2) == 0);
	free(doc);
	free(doc2);
	kf_registry_release(&again);
	kf_registry_release(&reg);
	return 0;
}
