/* lastgood.h - each board's last good firmware, for kflash rollback: the
 * image that last came back running after a flash (and, where kflash
 * could ask Moonraker, reported the version it carries), with the config
 * and the Klipper version it was built from.
 *
 * Kept in the config dir, beside the board's config:
 *   last-good/<key>/kept.json            what is kept (below), written last
 *   last-good/<key>/<sum>/klipper.bin    the image, under the name the build
 *                                        gave it (.bin, .uf2, .elf.hex);
 *                                        <sum>: the first 16 hex digits of
 *                                        its SHA-256
 *   last-good/<key>/<sum>/.config        the config it was built from
 *   last-good/<key>/<sum>/klipper.dict   its data dictionary, when the build
 *                                        left one
 * A new image goes into its own <sum> directory first; kept.json, written
 * atomically, then names it, and the old directory is removed. After a
 * crash or a failed write kept.json names the old image or the new one,
 * each whole.
 *
 * kept.json: {"format": 1, "board", "mcu", "image" ("<sum>/klipper.bin"),
 * "size", "sha256", "version" (the firmware's own, from its dictionary, or
 * null), "describe" (git describe of the checkout it was built from, or
 * null), "kept" (UTC, 2026-12-02T04:30:00Z)}.
 */
#ifndef KFLASH_LASTGOOD_H
#define KFLASH_LASTGOOD_H

#include <sys/types.h>

#include <jansson.h>

#include "kflash/kflash.h"
#include "kflash/registry.h"
#include "kflash/sha256.h"

#define KF_LASTGOOD_FORMAT 1

struct kf_lastgood {
	char *dir;		/* last-good/<key>/<sum>: the image's directory */
	char *image;		/* the image's path */
	char *config;		/* the path of the config it was built from */
	char *mcu;
	char *version;		/* what the firmware carries, or NULL */
	char *describe;		/* the checkout's git describe at its build, or NULL */
	char *kept;		/* when it was kept (UTC, ISO 8601) */
	char sha256[KF_SHA256_HEX];
	off_t size;
};

#define KF_LASTGOOD_INIT { 0 }

void kf_lastgood_release(struct kf_lastgood *lg);

/* config_dir/last-good/<key>. malloc'd. */
char *kf_lastgood_dir(const char *config_dir, const char *key);

/* The Klipper version the firmware was built for: describe, else version;
 * NULL when neither is known. */
const char *kf_lastgood_klipper(const struct kf_lastgood *lg);

/* What a flash that came back leaves to keep. */
struct kf_lastgood_src {
	const char *firmware;	/* the image that was flashed */
	const char *config;	/* the config it was built from */
	const char *build_dir;	/* where its klipper.dict is, if anywhere */
	const char *describe;	/* the checkout's git describe, or NULL */
};

/* Keeps src as board b's last good firmware. 0, or KF_EFAILED with err
 * naming the file and the errno, or saying that the Klipper version it
 * was built from is not known (neither its dictionary nor describe says):
 * what was kept before is then still what kept.json names. ret (may be
 * NULL) is what is kept now. */
int kf_lastgood_keep(struct kf_ctx *ctx, const struct kf_board *b,
		     const struct kf_lastgood_src *src, struct kf_error *err,
		     struct kf_lastgood *ret);

/* What is kept for b (kept.json; the image is not read). 0, or KF_EINPUT
 * with err saying that nothing is kept and how to keep something, or that
 * kept.json cannot be read or parsed (its path and position). err may be
 * NULL. */
int kf_lastgood_load(struct kf_ctx *ctx, const struct kf_board *b,
		     struct kf_error *err, struct kf_lastgood *ret);

/* kept.json's text (path names it in errors; dir is last-good/<key>).
 * 0, or KF_EINPUT with err. */
int kf_lastgood_parse(const char *path, const char *text, size_t len, const char *dir,
		      struct kf_lastgood *ret, struct kf_error *err);

/* The kept image is the one kept: its size and SHA-256 are kept.json's.
 * 0, or KF_EINPUT (damaged, or cannot be read) with err. */
int kf_lastgood_check(struct kf_ctx *ctx, const struct kf_lastgood *lg, const char *key,
		      struct kf_error *err);

/* For kflash list --json: {"version", "describe", "kept", "mcu", "image",
 * "size", "sha256"}. */
json_t *kf_lastgood_json(const struct kf_lastgood *lg);

#endif
