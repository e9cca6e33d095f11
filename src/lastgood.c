/* lastgood.c - each board's last good firmware, kept for kflash rollback. */
#include <errno.h>
#include <string.h>

#include "kflash/lastgood.h"
#include "kflash/session.h"
#include "kflash/util.h"

#define SUM_DIGITS 16	/* of the SHA-256: the image's directory */

void kf_lastgood_release(struct kf_lastgood *lg)
{
	free(lg->dir);
	free(lg->image);
	free(lg->config);
	free(lg->mcu);
	free(lg->version);
	free(lg->describe);
	free(lg->kept);
	memset(lg, 0, sizeof(*lg));
}

char *kf_lastgood_dir(const char *config_dir, const char *key)
{
	return kf_asprintf("%s/last-good/%s", config_dir, key);
}

const char *kf_lastgood_klipper(const struct kf_lastgood *lg)
{
	return lg->describe ? lg->describe : lg->version;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static bool is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!s[i] || !strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

/* ---- keeping ----------------------------------------------------------------- */

/* The version inside the firmware: its dictionary's, or NULL. */
static char *dict_version(const char *dict, size_t len)
{
	json_t *doc = json_loadb(dict, len, 0, NULL);
	const char *v = json_string_value(json_object_get(doc, "version"));
	char *ret = v ? kf_xstrdup(v) : NULL;

	json_decref(doc);
	return ret;
}

static int failed(struct kf_error *err, int e, const char *what, const char *path)
{
	kf_error_set(err, KF_EFAILED, "cannot %s %s: %s", what, path, strerror(-e));
	kf_error_errno(err, e);
	return KF_EFAILED;
}

static int write_file(struct kf_ctx *ctx, const char *path, const char *data, size_t len,
		      struct kf_error *err)
{
	int r = kf_os_write_atomic(ctx->ops, path, data, len, 0644);

	return r < 0 ? failed(err, r, "write", path) : 0;
}

/* The directories of images kept before, now that kept.json names another. */
static int remove_old(struct kf_ctx *ctx, const char *dir, const char *sum,
		      struct kf_error *err)
{
	char **names = NULL;
	size_t n = 0, i;
	int r = kf_os_read_dir(ctx->ops, dir, &names, &n);

	if (r < 0)
		return failed(err, r, "list", dir);
	for (i = 0; i < n && r == 0; i++) {
		char *old;

		if (strlen(names[i]) != SUM_DIGITS || !is_hex(names[i], SUM_DIGITS) ||
		    strcmp(names[i], sum) == 0)
			continue;
		old = kf_asprintf("%s/%s", dir, names[i]);
		r = kf_os_remove_tree(ctx->ops, old);
		if (r < 0)
			r = failed(err, r, "remove the firmware kept before,", old);
		free(old);
	}
	kf_names_free(names, n);
	return r;
}

static json_t *meta_json(const struct kf_board *b, const char *image, const struct kf_lastgood *lg)
{
	return json_pack("{s:i, s:s, s:s, s:s, s:I, s:s, s:s?, s:s?, s:s}",
			 "format", KF_LASTGOOD_FORMAT, "board", b->key, "mcu", b->mcu,
			 "image", image, "size", (json_int_t)lg->size, "sha256", lg->sha256,
			 "version", lg->version, "describe", lg->describe, "kept", lg->kept);
}

int kf_lastgood_keep(struct kf_ctx *ctx, const struct kf_board *b,
		     const struct kf_lastgood_src *src, struct kf_error *err,
		     struct kf_lastgood *ret)
{
	struct kf_lastgood lg = KF_LASTGOOD_INIT;
	char *top = kf_lastgood_dir(ctx->config_dir, b->key), *meta_path = NULL;
	char *img = NULL, *cfg = NULL, *dict = NULL, *dict_path = NULL, *meta = NULL;
	char *image = NULL, *path = NULL, sum[SUM_DIGITS + 1], kept[24];
	size_t img_len, cfg_len, dict_len = 0;
	json_t *doc;
	int r;

	r = kf_os_read_file(ctx->ops, src->firmware, &img, &img_len);
	if (r < 0) {
		r = failed(err, r, "read", src->firmware);
		goto out;
	}
	r = kf_os_read_file(ctx->ops, src->config, &cfg, &cfg_len);
	if (r < 0) {
		r = failed(err, r, "read", src->config);
		goto out;
	}
	/* a build may leave no dictionary: then its version is the checkout's */
	dict_path = kf_asprintf("%s/klipper.dict", src->build_dir);
	r = kf_os_read_file(ctx->ops, dict_path, &dict, &dict_len);
	if (r < 0 && r != -ENOENT) {
		r = failed(err, r, "read", dict_path);
		goto out;
	}
	/* a rollback first compares it with the host's Klipper */
	lg.version = dict ? dict_version(dict, dict_len) : NULL;
	lg.describe = src->describe ? kf_xstrdup(src->describe) : NULL;
	if (!lg.version && !lg.describe) {
		r = kf_error_set(err, KF_EFAILED, "the Klipper version %s was built "
				 "from is not known", src->firmware);
		goto out;
	}
	kf_sha256_hex(img, img_len, lg.sha256);
	snprintf(sum, sizeof(sum), "%.*s", SUM_DIGITS, lg.sha256);
	lg.size = (off_t)img_len;
	lg.mcu = kf_xstrdup(b->mcu);
	kf_utc_iso(kf_os_realtime(ctx->ops), kept);
	lg.kept = kf_xstrdup(kept);
	lg.dir = kf_asprintf("%s/%s", top, sum);
	image = kf_asprintf("%s/%s", sum, base_name(src->firmware));
	lg.image = kf_asprintf("%s/%s", top, image);
	lg.config = kf_asprintf("%s/.config", lg.dir);

	r = kf_os_mkdir_p(ctx->ops, lg.dir, 0755);
	if (r < 0) {
		r = failed(err, r, "create", lg.dir);
		goto out;
	}
	r = write_file(ctx, lg.image, img, img_len, err);
	if (r == 0)
		r = write_file(ctx, lg.config, cfg, cfg_len, err);
	if (r == 0 && dict) {
		path = kf_asprintf("%s/klipper.dict", lg.dir);
		r = write_file(ctx, path, dict, dict_len, err);
	}
	if (r < 0)
		goto out;
	/* the commit: from here on the new image is the one kept */
	doc = meta_json(b, image, &lg);
	meta = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	meta_path = kf_asprintf("%s/kept.json", top);
	r = write_file(ctx, meta_path, meta, strlen(meta), err);
	if (r < 0)
		goto out;
	r = remove_old(ctx, top, sum, err);
out:
	if (r == 0 && ret) {
		*ret = lg;
		memset(&lg, 0, sizeof(lg));
	}
	kf_lastgood_release(&lg);
	free(img);
	free(cfg);
	free(dict);
	free(dict_path);
	free(meta);
	free(meta_path);
	free(image);
	free(path);
	free(top);
	return r;
}

/* ---- reading ----------------------------------------------------------------- */

static int bad(struct kf_error *err, const char *path, const char *why)
{
	kf_error_set(err, KF_EINPUT, "%s is not what kflash keeps: %s", path, why);
	kf_error_cause(err, "it was edited by hand, or written by another kflash");
	return KF_EINPUT;
}

/* "<sum>/<name>": the image's directory and a name without a path */
static bool image_ok(const char *image, const char *sha256)
{
	const char *name = image + SUM_DIGITS + 1;

	return strlen(image) > SUM_DIGITS + 1 && image[SUM_DIGITS] == '/' &&
	       strncmp(image, sha256, SUM_DIGITS) == 0 && name[0] != '.' &&
	       !strchr(name, '/');
}

int kf_lastgood_parse(const char *path, const char *text, size_t len, const char *dir,
		      struct kf_lastgood *ret, struct kf_error *err)
{
	const char *mcu = NULL, *image = NULL, *sha = NULL, *version, *describe;
	const char *kept = NULL;
	json_t *jv = NULL, *jd = NULL;
	json_int_t size = -1;
	int format = 0;
	json_error_t je;
	json_t *doc;

	memset(ret, 0, sizeof(*ret));
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc) {
		kf_error_set(err, KF_EINPUT, "%s is not valid JSON: %s at line %d, "
			     "column %d (byte %d)", path, je.text, je.line, je.column,
			     je.position);
		kf_error_cause(err, "the file was cut short or edited by hand");
		return KF_EINPUT;
	}
	if (json_unpack_ex(doc, &je, 0, "{s:i, s:s, s:s, s:I, s:s, s?o, s?o, s:s}",
			   "format", &format, "mcu", &mcu, "image", &image, "size", &size,
			   "sha256", &sha, "version", &jv, "describe", &jd, "kept", &kept) < 0) {
		char *why = kf_asprintf("%s", je.text);
		int r = bad(err, path, why);

		free(why);
		json_decref(doc);
		return r;
	}
	if (format > KF_LASTGOOD_FORMAT) {
		kf_error_set(err, KF_EINPUT, "%s comes from a newer kflash (format %d; "
			     "this one reads %d)", path, format, KF_LASTGOOD_FORMAT);
		kf_error_step(err, "update kflash, or flash the board again with this one");
		json_decref(doc);
		return KF_EINPUT;
	}
	/* the versions are strings, or null when the build did not say */
	version = json_string_value(jv);
	describe = json_string_value(jd);
	if ((jv && !version && !json_is_null(jv)) || (jd && !describe && !json_is_null(jd))) {
		json_decref(doc);
		return bad(err, path, "its version or describe is neither a string nor null");
	}
	if (strlen(sha) != 64 || !is_hex(sha, 64) || size < 0 || !image_ok(image, sha)) {
		json_decref(doc);
		return bad(err, path, "its image, size or sha256 is not one kflash writes");
	}
	ret->mcu = kf_xstrdup(mcu);
	ret->version = version ? kf_xstrdup(version) : NULL;
	ret->describe = describe ? kf_xstrdup(describe) : NULL;
	ret->kept = kf_xstrdup(kept);
	snprintf(ret->sha256, sizeof(ret->sha256), "%s", sha);
	ret->size = (off_t)size;
	ret->dir = kf_asprintf("%s/%.*s", dir, SUM_DIGITS, image);
	ret->image = kf_asprintf("%s/%s", dir, image);
	ret->config = kf_asprintf("%s/.config", ret->dir);
	json_decref(doc);
	return 0;
}

int kf_lastgood_load(struct kf_ctx *ctx, const struct kf_board *b,
		     struct kf_error *err, struct kf_lastgood *ret)
{
	char *dir = kf_lastgood_dir(ctx->config_dir, b->key);
	char *path = kf_asprintf("%s/kept.json", dir), *text = NULL;
	size_t len;
	int r = kf_os_read_file(ctx->ops, path, &text, &len);

	memset(ret, 0, sizeof(*ret));
	if (r == -ENOENT) {
		kf_error_set(err, KF_EINPUT, "%s has no kept firmware to roll back to",
			     b->key);
		kf_error_cause(err, "kflash keeps a board's firmware once a flash came "
			       "back running it (through Katapult); %s has had none since "
			       "(%s is missing)", b->key, path);
		kf_error_step(err, KF_CMD("kflash flash %s") "   (build and flash the checkout's "
			      "firmware; once it runs, it is kept)", b->key);
		r = KF_EINPUT;
	} else if (r < 0) {
		kf_error_set(err, KF_EINPUT, "cannot read %s: %s", path, strerror(-r));
		kf_error_errno(err, r);
		r = KF_EINPUT;
	} else if ((r = kf_lastgood_parse(path, text, len, dir, ret, err)) < 0) {
		kf_error_step(err, KF_CMD("kflash flash %s") "   (a flash that comes back keeps its "
			      "firmware anew)", b->key);
	}
	free(text);
	free(path);
	free(dir);
	return r;
}

int kf_lastgood_check(struct kf_ctx *ctx, const struct kf_lastgood *lg, const char *key,
		      struct kf_error *err)
{
	char *img = NULL, hex[KF_SHA256_HEX];
	size_t len;
	int r = kf_os_read_file(ctx->ops, lg->image, &img, &len);

	if (r < 0) {
		kf_error_set(err, KF_EINPUT, "cannot read the kept firmware of %s, %s: %s",
			     key, lg->image, strerror(-r));
		kf_error_errno(err, r);
		kf_error_step(err, KF_CMD("kflash flash %s") "   (build and flash the checkout's "
			      "firmware instead)", key);
		return KF_EINPUT;
	}
	kf_sha256_hex(img, len, hex);
	free(img);
	if ((off_t)len == lg->size && strcmp(hex, lg->sha256) == 0)
		return 0;
	kf_error_set(err, KF_EINPUT, "the kept firmware of %s is damaged: %s is %zu "
		     "bytes with SHA-256 %.16s..., not the %lld bytes with %.16s... "
		     "that were kept; nothing was flashed", key, lg->image, len, hex,
		     (long long)lg->size, lg->sha256);
	kf_error_step(err, KF_CMD("kflash flash %s") "   (build and flash the checkout's firmware "
		      "instead)", key);
	return KF_EINPUT;
}

json_t *kf_lastgood_json(const struct kf_lastgood *lg)
{
	return json_pack("{s:s?, s:s?, s:s, s:s, s:s, s:I, s:s}", "version", lg->version,
			 "describe", lg->describe, "kept", lg->kept, "mcu", lg->mcu,
			 "image", lg->image, "size", (json_int_t)lg->size, "sha256",
			 lg->sha256);
}
