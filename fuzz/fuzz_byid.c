/* fuzz_byid.c - how kflash tells what a serial device is: its by-id name
 * (kf_byid_parse), the whole udev record (kf_device_from_tty: Klipper,
 * Katapult, a probe, an adapter, or a name and identity that disagree),
 * and whether a registered board is it (patterns, USB ports, the serial
 * learned in Katapult).
 *
 * Input: the texts joined with NULs: by-id name, vid, pid, manufacturer,
 * product, serial, by-path name, a registered board's pattern, its MCU,
 * its Katapult serial and its port. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kflash/discovery.h"
#include "kflash/util.h"

static char *part(const struct fuzz_parts *p, size_t i)
{
	return i < p->n ? p->v[i] : NULL;
}

static char *dup_part(const struct fuzz_parts *p, size_t i, const char *prefix)
{
	const char *s = part(p, i);

	return s && *s ? kf_asprintf("%s%s", prefix, s) : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_parts p;
	struct kf_ttydev t = { 0 };
	struct kf_device d;
	struct kf_board b = { 0 };
	char *mcu, *serial, *pat;
	enum kf_mode m;

	fuzz_split(data, size, 11, &p);
	m = kf_byid_parse(p.v[0], &mcu, &serial);
	fuzz_assert(m == KF_MODE_OTHER ? !mcu && !serial : mcu && serial && *mcu && *serial);
	free(mcu);
	free(serial);

	t.devnode = kf_xstrdup("/dev/ttyACM0");
	t.by_id = dup_part(&p, 0, "/dev/serial/by-id/");
	t.vid = dup_part(&p, 1, "");
	t.pid = dup_part(&p, 2, "");
	t.manufacturer = dup_part(&p, 3, "");
	t.product = dup_part(&p, 4, "");
	t.serial = dup_part(&p, 5, "");
	t.by_path = dup_part(&p, 6, "/dev/serial/by-path/");
	kf_device_from_tty(&d, &t);
	fuzz_assert(d.name != NULL);
	/* a board is Klipper or Katapult with its MCU and serial, or not one */
	fuzz_assert((d.mode == KF_MODE_OTHER) == (d.mcu == NULL));
	fuzz_assert((d.mcu == NULL) == (d.serial == NULL));
	fuzz_assert(d.mode == KF_MODE_OTHER || !d.blocked);
	fuzz_assert(d.mode != KF_MODE_OTHER || d.blocked);
	if (d.port)
		free(kf_port_label(d.port));
	(void)kf_serial_is_chip_id(d.serial);

	/* the pattern kflash registers for a board finds it */
	if (d.mcu) {
		pat = kf_pattern_for(d.mcu, d.serial);
		b.pattern = pat;
		b.mcu = d.mcu;
		fuzz_assert(kf_pattern_matches(pat, &d));
		fuzz_assert(kf_board_match(&b, &d) == KF_MATCH_YES);
		fuzz_assert(kf_patterns_overlap(pat, pat));
		if (part(&p, 7))
			(void)kf_patterns_overlap(pat, part(&p, 7));
		free(pat);
	}

	/* a board as the registry holds it, against this device */
	if (part(&p, 7) && part(&p, 8)) {
		b.pattern = part(&p, 7);
		b.mcu = part(&p, 8);
		b.katapult_serial = part(&p, 9) && *part(&p, 9) ? part(&p, 9) : NULL;
		b.port = part(&p, 10) && *part(&p, 10) ? part(&p, 10) : NULL;
		(void)kf_board_port_only(&b);
		(void)kf_pattern_matches(b.pattern, &d);
		(void)kf_board_match(&b, &d);
	}
	kf_device_release(&d);
	fuzz_parts_free(&p);
	return 0;
}
