/* registry.c - devices.json: load, validate, save; names, keys, settings. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "kflash/discovery.h"
#include "kflash/registry.h"
#include "kflash/util.h"

static const struct {
	const char *key;
	int min, max;
	size_t offset;
} timeouts[] = {
	{ "build", 10, 7200, offsetof(struct kf_settings, timeout_build) },
	{ "flash", 5, 600, offsetof(struct kf_settings, timeout_flash) },
	{ "service", 5, 600, offsetof(struct kf_settings, timeout_service) },
	{ "reconnect", 5, 600, offsetof(struct kf_settings, timeout_reconnect) },
};
#define N_TIMEOUTS (sizeof(timeouts) / sizeof(timeouts[0]))

static int *timeout_field(struct kf_settings *s, size_t i)
{
	return (int *)((char *)s + timeouts[i].offset);
}

void kf_settings_defaults(struct kf_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->klipper_dir = kf_xstrdup("~/klipper");
	s->katapult_dir = kf_xstrdup("~/katapult");
	s->python = kf_xstrdup("python3");
	s->service = kf_xstrdup("auto");
	s->moonraker_url = kf_xstrdup("http://localhost:7125");
	s->default_method = KF_METHOD_KATAPULT;
	s->fallback = true;
	s->timeout_build = 300;
	s->timeout_flash = 60;
	s->timeout_service = 30;
	s->timeout_reconnect = 30;
	s->sessions_keep = KF_SESSIONS_KEEP;
}

void kf_settings_release(struct kf_settings *s)
{
	free(s->klipper_dir);
	free(s->katapult_dir);
	free(s->python);
	free(s->service);
	free(s->moonraker_url);
	free(s->moonraker_api_key);
	memset(s, 0, sizeof(*s));
}

static void board_release(struct kf_board *b)
{
	free(b->key);
	free(b->name);
	free(b->mcu);
	free(b->pattern);
	free(b->port);
	free(b->katapult_serial);
	free(b->canbus_uuid);
	free(b->interface);
	memset(b, 0, sizeof(*b));
}

void kf_registry_release(struct kf_registry *reg)
{
	size_t i;

	for (i = 0; i < reg->n_boards; i++)
		board_release(&reg->boards[i]);
	free(reg->boards);
	kf_settings_release(&reg->settings);
	free(reg->path);
	memset(reg, 0, sizeof(*reg));
}

const char *kf_method_name(enum kf_method m)
{
	switch (m) {
	case KF_METHOD_KATAPULT:
		return "katapult";
	case KF_METHOD_MAKE_FLASH:
		return "make-flash";
	default:
		return "default";
	}
}

int kf_method_parse(const char *s, enum kf_method *ret)
{
	if (strcmp(s, "katapult") == 0)
		*ret = KF_METHOD_KATAPULT;
	else if (strcmp(s, "make-flash") == 0)
		*ret = KF_METHOD_MAKE_FLASH;
	else if (strcmp(s, "default") == 0)
		*ret = KF_METHOD_DEFAULT;
	else
		return -EINVAL;
	return 0;
}

enum kf_method kf_board_method(const struct kf_board *b, const struct kf_settings *s)
{
	return b->method == KF_METHOD_DEFAULT ? s->default_method : b->method;
}

/* ---- what a value may be ---------------------------------------------------- */

/* The most a path or command setting holds: PATH_MAX less its NUL. */
#define VALUE_MAX 4095
/* The most of devices.json kflash reads: a board is some 300 bytes. */
#define REGISTRY_MAX (1 << 20)

bool kf_unit_name_ok(const char *v)
{
	size_t n = strlen(v);

	/* systemd's unit name characters; never one an option could start */
	if (n == 0 || n > 255 || *v == '-' || *v == '.')
		return false;
	for (; *v; v++)
		if (!isalnum((unsigned char)*v) && !strchr("-_.@:\\", *v))
			return false;
	return true;
}

bool kf_mcu_name_ok(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > 32)
		return false;
	for (; *v; v++)
		if (!isalnum((unsigned char)*v) && *v != '_')
			return false;
	return true;
}

/* What udev leaves in a by-id or by-path name (it replaces anything else
 * with '_' or \x escapes), plus, in a pattern, fnmatch's own. */
static bool dev_name_ok(const char *v, bool glob)
{
	size_t n = strlen(v), i;

	if (n == 0 || n > 255 || strstr(v, ".."))
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)v[i]) && !strchr("#+-.:=@_", v[i]) &&
		    !(glob && strchr("*?[]!^", v[i])))
			return false;
	return true;
}

bool kf_pattern_ok(const char *pattern, const char *mcu)
{
	/* a pattern that does not name the MCU could match any board */
	return dev_name_ok(pattern, true) && mcu && *mcu && strstr(pattern, mcu);
}

/* NULL when value is what a text setting can hold, else what it must be.
 * The same words for `kflash settings` and for a devices.json edited by
 * hand: the loader is as strict as the command. */
static const char *text_refusal(const char *key, const char *value)
{
	const unsigned char *p;

	if (!*value)
		return "a non-empty single line";
	if (strlen(value) > VALUE_MAX)
		return "at most 4095 bytes long";
	if (!kf_utf8_valid(value))
		return "valid UTF-8 text";
	for (p = (const unsigned char *)value; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "a single line without control characters";
	if (strcmp(key, "service") == 0 && !kf_unit_name_ok(value))
		return "auto (learn it from Moonraker) or a systemd unit name such as "
		       "klipper or klipper-1";
	if (strcmp(key, "moonraker_url") == 0) {
		char *urls = kf_xstrdup(value), *tok, *save;
		bool ok = true, any = false;

		for (tok = strtok_r(urls, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
			any = true;
			ok = ok && (kf_startswith(tok, "http://") || kf_startswith(tok, "https://"));
		}
		free(urls);
		if (!ok || !any)
			return "an http:// or https:// URL, e.g. http://localhost:7125 "
			       "(several: separated by spaces or commas)";
	}
	if (strcmp(key, "moonraker_api_key") == 0) {
		if (strlen(value) > 256)
			return "at most 256 bytes long (Moonraker's key is 32 hex digits)";
		for (p = (const unsigned char *)value; *p; p++)
			if (!isgraph(*p))
				return "printable, without spaces (Moonraker's key is 32 hex "
				       "digits)";
	}
	return NULL;
}

/* ---- parsing ---------------------------------------------------------------- */

struct parse {
	const char *path;
	struct kf_error *err;
};

static int shape_error(struct parse *p, const char *where, const char *want)
{
	kf_error_set(p->err, KF_EINPUT, "%s: %s must be %s", p->path, where, want);
	kf_error_cause(p->err, "the file was edited by hand or written by "
		       "another program");
	kf_error_step(p->err, "fix %s in %s with a text editor", where, p->path);
	kf_error_step(p->err, "or move the file away and register the boards again: "
		      KF_CMD("mv %s %s.broken"), p->path, p->path);
	return KF_EINPUT;
}

static int get_string(struct parse *p, json_t *obj, const char *key,
		      const char *where, bool required, char **dst)
{
	json_t *v = json_object_get(obj, key);
	char *w;
	int r;

	if (!v) {
		if (!required)
			return 0;
		w = kf_asprintf("%s.%s", where, key);
		r = shape_error(p, w, "present");
		free(w);
		return r;
	}
	if (!json_is_string(v) || !*json_string_value(v)) {
		w = kf_asprintf("%s.%s", where, key);
		r = shape_error(p, w, "a non-empty string");
		free(w);
		return r;
	}
	free(*dst);
	*dst = kf_xstrdup(json_string_value(v));
	return 0;
}

static int parse_settings(struct parse *p, json_t *js, struct kf_settings *s)
{
	static const struct {
		const char *key;
		size_t offset;
	} strs[] = {
		{ "klipper_dir", offsetof(struct kf_settings, klipper_dir) },
		{ "katapult_dir", offsetof(struct kf_settings, katapult_dir) },
		{ "python", offsetof(struct kf_settings, python) },
		{ "service", offsetof(struct kf_settings, service) },
		{ "moonraker_url", offsetof(struct kf_settings, moonraker_url) },
		{ "moonraker_api_key", offsetof(struct kf_settings, moonraker_api_key) },
	};
	json_t *v, *t;
	size_t i;
	int r;

	if (!js)
		return 0;
	if (!json_is_object(js))
		return shape_error(p, "settings", "an object");
	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		char **dst = (char **)((char *)s + strs[i].offset);
		const char *want;

		r = get_string(p, js, strs[i].key, "settings", false, dst);
		if (r < 0)
			return r;
		if (*dst && (want = text_refusal(strs[i].key, *dst))) {
			char *w = kf_asprintf("settings.%s", strs[i].key);

			r = shape_error(p, w, want);
			free(w);
			return r;
		}
	}
	v = json_object_get(js, "default_method");
	if (v && (!json_is_string(v) ||
		  kf_method_parse(json_string_value(v), &s->default_method) < 0 ||
		  s->default_method == KF_METHOD_DEFAULT))
		return shape_error(p, "settings.default_method",
				   "\"katapult\" or \"make-flash\"");
	v = json_object_get(js, "fallback");
	if (v) {
		if (!json_is_boolean(v))
			return shape_error(p, "settings.fallback", "true or false");
		s->fallback = json_is_true(v);
	}
	t = json_object_get(js, "sessions");
	if (t) {
		v = json_object_get(t, "keep");
		if (!json_is_object(t) || (v && (!json_is_integer(v) ||
		    json_integer_value(v) < 0 || json_integer_value(v) > KF_SESSIONS_MAX)))
			return shape_error(p, "settings.sessions.keep",
					   "a whole number from 0 to 1000");
		if (v)
			s->sessions_keep = (int)json_integer_value(v);
	}
	t = json_object_get(js, "timeouts");
	if (!t)
		return 0;
	if (!json_is_object(t))
		return shape_error(p, "settings.timeouts", "an object");
	for (i = 0; i < N_TIMEOUTS; i++) {
		v = json_object_get(t, timeouts[i].key);
		if (!v)
			continue;
		if (!json_is_integer(v) || json_integer_value(v) < timeouts[i].min ||
		    json_integer_value(v) > timeouts[i].max) {
			char *where = kf_asprintf("settings.timeouts.%s", timeouts[i].key);
			char *want = kf_asprintf("a whole number of seconds from %d to %d",
						 timeouts[i].min, timeouts[i].max);

			r = shape_error(p, where, want);
			free(where);
			free(want);
			return r;
		}
		*timeout_field(s, i) = (int)json_integer_value(v);
	}
	return 0;
}

static const char *const link_names[] = { "usb", "can", "bridge" };

const char *kf_link_name(enum kf_link l)
{
	return link_names[l];
}

static int kf_link_parse(const char *s, enum kf_link *ret)
{
	size_t i;

	for (i = 0; i < 3; i++)
		if (strcmp(s, link_names[i]) == 0) {
			*ret = (enum kf_link)i;
			return 0;
		}
	return -EINVAL;
}

int kf_canbus_uuid_parse(const char *s, char **ret, struct kf_error *err)
{
	size_t i, n = strlen(s);
	char *u;

	for (i = 0; i < n && isxdigit((unsigned char)s[i]); i++)
		;
	if (n != 12 || i != n) {
		kf_error_set(err, KF_EINPUT, "'%s' is not a CAN UUID: it has 12 hex digits, "
			     "as flashtool.py -q and canbus_query.py print it", s);
		kf_error_step(err, KF_CMD("~/katapult/scripts/flashtool.py -i can0 -q"));
		return KF_EINPUT;
	}
	u = kf_xstrdup(s);
	for (i = 0; i < n; i++)
		u[i] = (char)tolower((unsigned char)u[i]);
	*ret = u;
	return 0;
}

int kf_interface_check(const char *s, struct kf_error *err)
{
	size_t i, n = strlen(s);

	for (i = 0; i < n && (isalnum((unsigned char)s[i]) || strchr("_.-", s[i])); i++)
		;
	if (n == 0 || n > 15 || i != n || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
		kf_error_set(err, KF_EINPUT, "'%s' is not a network interface name "
			     "(1 to 15 letters, digits, _ . -)", s);
		kf_error_step(err, KF_CMD("ip -brief link show") "   (lists them; CAN "
			      "ones are can0, can1 ...)");
		return KF_EINPUT;
	}
	return 0;
}

/* canbus_uuid and interface: a CAN node and a bridge (a node on its own
 * bus too) need their UUID; USB boards have neither */
static int parse_can(struct parse *p, json_t *jb, const char *where, struct kf_board *b)
{
	struct kf_error e = KF_ERROR_INIT;
	json_t *u = json_object_get(jb, "canbus_uuid"), *i = json_object_get(jb, "interface");
	char *w;
	int r = 0;

	if (b->link == KF_LINK_USB && (u || i)) {
		w = kf_asprintf("%s.transport", where);
		r = shape_error(p, w, "\"can\" or \"bridge\" for a board with a "
				"canbus_uuid or an interface");
	} else if ((b->link != KF_LINK_USB && !u) || (u && (!json_is_string(u) ||
		   kf_canbus_uuid_parse(json_string_value(u), &b->canbus_uuid, &e) < 0))) {
		w = kf_asprintf("%s.canbus_uuid", where);
		r = shape_error(p, w, "a CAN UUID of 12 hex digits");
	} else if (i && (!json_is_string(i) || kf_interface_check(json_string_value(i), &e) < 0)) {
		w = kf_asprintf("%s.interface", where);
		r = shape_error(p, w, "a network interface name such as can0");
	} else {
		if (b->link != KF_LINK_USB)
			b->interface = kf_xstrdup(i ? json_string_value(i) : KF_CAN_INTERFACE);
		return 0;
	}
	free(w);
	kf_error_release(&e);
	return r;
}

static int parse_board(struct parse *p, json_t *jb, size_t idx, struct kf_board *b)
{
	char where[48];
	json_t *v;
	int r;

	snprintf(where, sizeof(where), "boards[%zu]", idx);
	if (!json_is_object(jb))
		return shape_error(p, where, "an object");
	v = json_object_get(jb, "transport");
	b->link = KF_LINK_USB;
	if (v && (!json_is_string(v) || kf_link_parse(json_string_value(v), &b->link) < 0)) {
		char *w = kf_asprintf("%s.transport", where);

		r = shape_error(p, w, "\"usb\", \"can\" or \"bridge\"");
		free(w);
		return r;
	}
	if ((r = parse_can(p, jb, where, b)) < 0)
		return r;
	if ((r = get_string(p, jb, "key", where, true, &b->key)) < 0 ||
	    (r = get_string(p, jb, "name", where, true, &b->name)) < 0 ||
	    (r = get_string(p, jb, "mcu", where, true, &b->mcu)) < 0 ||
	    (r = get_string(p, jb, "pattern", where, b->link == KF_LINK_USB,
			    &b->pattern)) < 0 ||
	    (r = get_string(p, jb, "port", where, false, &b->port)) < 0 ||
	    (r = get_string(p, jb, "katapult_serial", where, false,
			    &b->katapult_serial)) < 0)
		return r;
	{
		/* the key names a directory: it must be a slug */
		char *slug = kf_slugify(b->key);
		bool ok = strcmp(slug, b->key) == 0;

		free(slug);
		if (!ok) {
			char *w = kf_asprintf("%s.key", where);

			r = shape_error(p, w, "lower-case letters, digits and dashes");
			free(w);
			return r;
		}
	}
	{
		struct kf_error e = KF_ERROR_INIT;
		const char *field = NULL, *want = NULL;

		if (kf_name_check(b->name, &e) < 0)
			field = "name", want = "a name kflash add accepts: letters, digits, "
				"spaces, '-', '_' or '.'";
		else if (!kf_mcu_name_ok(b->mcu))
			field = "mcu", want = "an MCU name such as stm32h723xx or rp2040";
		else if (b->pattern && !kf_pattern_ok(b->pattern, b->mcu))
			field = "pattern", want = "a /dev/serial/by-id name pattern that "
				"names the board's MCU, e.g. usb-*_stm32h723xx_<serial>-if*";
		else if (b->port && !dev_name_ok(b->port, false))
			field = "port", want = "a /dev/serial/by-path name";
		else if (b->katapult_serial && (!dev_name_ok(b->katapult_serial, false) ||
						strlen(b->katapult_serial) > 64))
			field = "katapult_serial", want = "a USB serial number (letters and "
				"digits)";
		kf_error_release(&e);
		if (field) {
			char *w = kf_asprintf("%s.%s", where, field);

			r = shape_error(p, w, want);
			free(w);
			return r;
		}
	}
	if (!b->pattern)
		b->pattern = kf_xstrdup("");	/* a CAN node is found by its UUID */
	b->method = KF_METHOD_DEFAULT;
	v = json_object_get(jb, "method");
	if (v && (!json_is_string(v) ||
		  kf_method_parse(json_string_value(v), &b->method) < 0)) {
		char *w = kf_asprintf("%s.method", where);

		r = shape_error(p, w, "\"default\", \"katapult\" or \"make-flash\"");
		free(w);
		return r;
	}
	b->flashable = true;
	v = json_object_get(jb, "flashable");
	if (v) {
		if (!json_is_boolean(v)) {
			char *w = kf_asprintf("%s.flashable", where);

			r = shape_error(p, w, "true or false");
			free(w);
			return r;
		}
		b->flashable = json_is_true(v);
	}
	return 0;
}

/* Board i against those before it: one name (as kflash add and every
 * command find boards by it) and no device both patterns match. */
static int unique_board(struct parse *p, const struct kf_registry *reg, size_t i)
{
	const struct kf_board *b = &reg->boards[i];
	size_t j;
	char *w, *want;
	int r;

	for (j = 0; j < i; j++) {
		const struct kf_board *o = &reg->boards[j];
		const char *field = NULL;

		if (strcasecmp(o->name, b->name) == 0 || strcmp(o->key, b->name) == 0)
			field = "name";
		else if (*b->pattern && *o->pattern && kf_patterns_overlap(o->pattern, b->pattern))
			field = "pattern";
		if (!field)
			continue;
		w = kf_asprintf("boards[%zu].%s", i, field);
		want = kf_asprintf("different from boards[%zu]'s ('%s'): one %s would "
				   "stand for two boards", j, o->name,
				   field[0] == 'n' ? "name" : "device");
		r = shape_error(p, w, want);
		free(w);
		free(want);
		return r;
	}
	return 0;
}

int kf_registry_parse(const char *path, const char *data, size_t len,
		      struct kf_registry *reg, struct kf_error *err)
{
	struct parse p = { path, err };
	json_error_t jerr;
	json_t *doc, *v, *boards;
	size_t i;
	int r = 0;

	memset(reg, 0, sizeof(*reg));
	reg->path = kf_xstrdup(path);
	kf_settings_defaults(&reg->settings);
	doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		kf_error_set(err, KF_EINPUT, "%s is not valid JSON: %s at line %d, "
			     "column %d (byte %d)", path, jerr.text, jerr.line,
			     jerr.column, jerr.position);
		kf_error_cause(err, "the file was cut short or edited by hand; kflash "
			       "will not overwrite it");
		kf_error_step(err, "fix line %d of %s with a text editor", jerr.line, path);
		kf_error_step(err, "or move it away and register the boards again: "
			      KF_CMD("mv %s %s.broken"), path, path);
		return KF_EINPUT;
	}
	if (!json_is_object(doc)) {
		r = shape_error(&p, "the document", "a JSON object");
		goto out;
	}
	v = json_object_get(doc, "schema");
	if (!json_is_integer(v)) {
		r = shape_error(&p, "schema", "a number");
		goto out;
	}
	if (json_integer_value(v) > KF_REGISTRY_SCHEMA) {
		kf_error_set(err, KF_EINPUT, "%s was written by a newer kflash "
			     "(schema %lld; this kflash reads schema %d)", path,
			     (long long)json_integer_value(v), KF_REGISTRY_SCHEMA);
		kf_error_step(err, "update kflash ("
			      KF_CMD("git pull && make && sudo make install") ")");
		r = KF_EINPUT;
		goto out;
	}
	if (json_integer_value(v) < 1) {
		r = shape_error(&p, "schema", "1");
		goto out;
	}
	r = parse_settings(&p, json_object_get(doc, "settings"), &reg->settings);
	if (r < 0)
		goto out;
	boards = json_object_get(doc, "boards");
	if (boards && !json_is_array(boards)) {
		r = shape_error(&p, "boards", "an array");
		goto out;
	}
	reg->boards = kf_xcalloc(json_array_size(boards) + 1, sizeof(*reg->boards));
	for (i = 0; i < json_array_size(boards); i++) {
		r = parse_board(&p, json_array_get(boards, i), i, &reg->boards[i]);
		reg->n_boards = i + 1;
		if (r < 0)
			goto out;
		if (kf_registry_find(reg, reg->boards[i].key) != &reg->boards[i]) {
			char where[48];

			snprintf(where, sizeof(where), "boards[%zu].key", i);
			r = shape_error(&p, where, "unique");
			goto out;
		}
		if ((r = unique_board(&p, reg, i)) < 0)
			goto out;
	}
out:
	json_decref(doc);
	return r;
}

int kf_registry_load(const struct kf_ops *o, const char *config_dir,
		     struct kf_registry *reg, struct kf_error *err)
{
	char *path = kf_asprintf("%s/devices.json", config_dir);
	char *data = NULL;
	size_t len = 0;
	int r;

	off_t size;

	enum kf_file_kind dir_kind = KF_FILE_DIR;

	r = kf_read_regular(o, path, REGISTRY_MAX, &data, &len, &size);
	if (r == -ENOENT && kf_os_file_kind(o, config_dir, &dir_kind, NULL) == 0 &&
	    dir_kind != KF_FILE_NONE && dir_kind != KF_FILE_DIR)
		r = -ENOTDIR;	/* the registry could never be written there */
	if (r == -ENOENT) {
		memset(reg, 0, sizeof(*reg));
		reg->path = path;
		kf_settings_defaults(&reg->settings);
		return 0;
	}
	if (r == -EINVAL || r == -EFBIG) {
		/* never opened: a FIFO would block, a device never ends */
		if (r == -EINVAL)
			kf_error_set(err, KF_EINPUT, "%s is not a regular file", path);
		else
			kf_error_set(err, KF_EINPUT, "%s is %lld bytes; a registry is a "
				     "few KiB, and kflash reads at most 1 MiB of it", path,
				     (long long)size);
		kf_error_cause(err, "something other than kflash put it there; kflash "
			       "will not overwrite it");
		kf_error_step(err, "move it away and register the boards again: "
			      KF_CMD("mv %s %s.broken"), path, path);
		free(path);
		return KF_EINPUT;
	}
	if (r < 0) {
		kf_error_set(err, KF_EFAILED, "cannot read %s: %s", path, strerror(-r));
		kf_error_errno(err, r);
		if (r == -ENOTDIR) {
			kf_error_cause(err, "%s is not a directory", config_dir);
			kf_error_step(err, KF_CMD("ls -ld %s"), config_dir);
		} else {
			kf_error_step(err, KF_CMD("ls -ld %s %s"), config_dir, path);
		}
		free(path);
		return KF_EFAILED;
	}
	r = kf_registry_parse(path, data, len, reg, err);
	reg->existed = true;
	free(data);
	free(path);
	return r;
}

char *kf_registry_dump(const struct kf_registry *reg)
{
	const struct kf_settings *s = &reg->settings;
	json_t *doc, *boards = json_array();
	char *out;
	size_t i;

	for (i = 0; i < reg->n_boards; i++) {
		const struct kf_board *b = &reg->boards[i];
		json_t *jb = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "key", b->key,
			"name", b->name, "mcu", b->mcu, "pattern", b->pattern,
			"method", kf_method_name(b->method), "flashable", b->flashable);

		/* written only when known, so a file stays what older kflash wrote */
		if (b->port)
			json_object_set_new(jb, "port", json_string(b->port));
		if (b->katapult_serial)
			json_object_set_new(jb, "katapult_serial",
					    json_string(b->katapult_serial));
		if (!*b->pattern)
			json_object_del(jb, "pattern");	/* a CAN node has none */
		if (b->link != KF_LINK_USB)
			json_object_set_new(jb, "transport", json_string(kf_link_name(b->link)));
		if (b->canbus_uuid)
			json_object_set_new(jb, "canbus_uuid", json_string(b->canbus_uuid));
		if (b->interface)
			json_object_set_new(jb, "interface", json_string(b->interface));
		json_array_append_new(boards, jb);
	}
	doc = json_pack("{s:i, s:{s:s, s:s, s:s, s:s, s:s, s:s*, s:s, s:b, s:{s:i, s:i, s:i, s:i}}, s:o}",
		"schema", KF_REGISTRY_SCHEMA,
		"settings",
		"klipper_dir", s->klipper_dir, "katapult_dir", s->katapult_dir,
		"python", s->python, "service", s->service,
		"moonraker_url", s->moonraker_url,
		"moonraker_api_key", s->moonraker_api_key && *s->moonraker_api_key
				     ? s->moonraker_api_key : NULL,
		"default_method", kf_method_name(s->default_method),
		"fallback", s->fallback,
		"timeouts", "build", s->timeout_build, "flash", s->timeout_flash,
		"service", s->timeout_service, "reconnect", s->timeout_reconnect,
		"boards", boards);
	/* written only when changed, so a file stays what older kflash wrote */
	if (s->sessions_keep != KF_SESSIONS_KEEP)
		json_object_set_new(json_object_get(doc, "settings"), "sessions",
				    json_pack("{s:i}", "keep", s->sessions_keep));
	out = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	return out;
}

int kf_registry_save(const struct kf_ops *o, const struct kf_registry *reg,
		     struct kf_error *err)
{
	char *doc = kf_registry_dump(reg), *dir, *slash;
	struct kf_buf b = KF_BUF_INIT;
	int r;

	kf_buf_add(&b, doc, strlen(doc));
	kf_buf_add(&b, "\n", 1);
	free(doc);
	dir = kf_xstrdup(reg->path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = kf_os_mkdir_p(o, dir, 0755);
		if (r < 0) {
			kf_error_set(err, KF_EFAILED, "cannot create %s: %s", dir,
				     strerror(-r));
			goto out;
		}
	}
	/* owner only: it may hold Moonraker's API key */
	r = kf_os_write_atomic(o, reg->path, b.data, b.len, 0600);
	if (r < 0) {
		kf_error_set(err, KF_EFAILED, "cannot save %s: %s (it is unchanged)",
			     reg->path, strerror(-r));
		kf_error_errno(err, r);
		if (r == -ENOSPC || r == -EDQUOT)
			kf_error_step(err, "free some space there (" KF_CMD("df -h %s")
				      "), then run the command again", dir);
		else if (r == -EROFS)
			kf_error_cause(err, "%s is on a read-only filesystem", dir);
		else
			kf_error_step(err, KF_CMD("ls -ld %s %s"), dir, reg->path);
	}
out:
	free(dir);
	kf_buf_release(&b);
	return r < 0 ? KF_EFAILED : 0;
}

/* ---- boards, names, keys ---------------------------------------------------- */

struct kf_board *kf_registry_find(struct kf_registry *reg, const char *name)
{
	size_t i;

	for (i = 0; i < reg->n_boards; i++)
		if (reg->boards[i].key && strcmp(reg->boards[i].key, name) == 0)
			return &reg->boards[i];
	for (i = 0; i < reg->n_boards; i++)
		if (reg->boards[i].name && strcasecmp(reg->boards[i].name, name) == 0)
			return &reg->boards[i];
	return NULL;
}

struct kf_board *kf_registry_add(struct kf_registry *reg, const struct kf_board *b)
{
	struct kf_board *n;

	reg->boards = kf_xrealloc(reg->boards, (reg->n_boards + 1) * sizeof(*reg->boards));
	n = &reg->boards[reg->n_boards++];
	n->key = kf_xstrdup(b->key);
	n->name = kf_xstrdup(b->name);
	n->mcu = kf_xstrdup(b->mcu);
	n->pattern = kf_xstrdup(b->pattern);
	n->method = b->method;
	n->flashable = b->flashable;
	n->port = b->port ? kf_xstrdup(b->port) : NULL;
	n->katapult_serial = b->katapult_serial ? kf_xstrdup(b->katapult_serial) : NULL;
	n->link = b->link;
	n->canbus_uuid = b->canbus_uuid ? kf_xstrdup(b->canbus_uuid) : NULL;
	n->interface = b->interface ? kf_xstrdup(b->interface) : NULL;
	return n;
}

void kf_registry_remove(struct kf_registry *reg, struct kf_board *b)
{
	size_t i = (size_t)(b - reg->boards);

	board_release(b);
	memmove(&reg->boards[i], &reg->boards[i + 1],
		(reg->n_boards - i - 1) * sizeof(*b));
	reg->n_boards--;
}

int kf_name_check(const char *name, struct kf_error *err)
{
	static const char shell[] = "/\\$`;|&<>\"'*?[]{}!~";
	const unsigned char *p;

	if (!*name) {
		kf_error_set(err, KF_EINPUT, "a board name cannot be empty");
		goto steps;
	}
	if (strlen(name) > KF_NAME_MAX) {
		kf_error_set(err, KF_EINPUT, "board name is %zu bytes long; the most "
			     "is %d", strlen(name), KF_NAME_MAX);
		goto steps;
	}
	if (!kf_utf8_valid(name)) {
		kf_error_set(err, KF_EINPUT, "board name is not valid UTF-8 text");
		goto steps;
	}
	for (p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			kf_error_set(err, KF_EINPUT, "board name contains a control "
				     "character (byte 0x%02x)", *p);
			goto steps;
		}
		if (strchr(shell, *p)) {
			kf_error_set(err, KF_EINPUT, "board name contains '%c', which "
				     "is not allowed in names", *p);
			goto steps;
		}
	}
	if (strstr(name, "..")) {
		kf_error_set(err, KF_EINPUT, "board name cannot contain '..'");
		goto steps;
	}
	{
		char *slug = kf_slugify(name);
		bool empty = !*slug;

		free(slug);
		if (empty) {
			kf_error_set(err, KF_EINPUT, "board name '%s' needs at least "
				     "one letter or digit", name);
			goto steps;
		}
	}
	return 0;
steps:
	kf_error_step(err, "use letters, digits, spaces, '-', '_' or '.', e.g. "
		      KF_CMD("--name \"Octopus Pro\""));
	return KF_EINPUT;
}

char *kf_slugify(const char *name)
{
	char *s = kf_xmalloc(strlen(name) + 1);
	size_t n = 0;
	bool dash = false;

	for (; *name; name++) {
		unsigned char c = (unsigned char)*name;

		if (isascii(c) && isalnum(c)) {
			if (dash && n)
				s[n++] = '-';
			s[n++] = (char)tolower(c);
			dash = false;
		} else {
			dash = true;
		}
		if (n >= KF_NAME_MAX - 4)	/* room for "-NNN" */
			break;
	}
	s[n] = '\0';
	return s;
}

char *kf_registry_new_key(const struct kf_registry *reg, const char *name)
{
	char *base = kf_slugify(name), *key = kf_xstrdup(base);
	int i;

	for (i = 2; kf_registry_find((struct kf_registry *)reg, key); i++) {
		free(key);
		key = kf_asprintf("%s-%d", base, i);
	}
	free(base);
	return key;
}

/* ---- settings by key -------------------------------------------------------- */

char *kf_settings_get(const struct kf_settings *s, const char *key)
{
	size_t i;

	if (strcmp(key, "klipper_dir") == 0)
		return kf_xstrdup(s->klipper_dir);
	if (strcmp(key, "katapult_dir") == 0)
		return kf_xstrdup(s->katapult_dir);
	if (strcmp(key, "python") == 0)
		return kf_xstrdup(s->python);
	if (strcmp(key, "service") == 0)
		return kf_xstrdup(s->service);
	if (strcmp(key, "moonraker_url") == 0)
		return kf_xstrdup(s->moonraker_url);
	if (strcmp(key, "moonraker_api_key") == 0)
		return kf_xstrdup(s->moonraker_api_key ? s->moonraker_api_key : "");
	if (strcmp(key, "default_method") == 0)
		return kf_xstrdup(kf_method_name(s->default_method));
	if (strcmp(key, "fallback") == 0)
		return kf_xstrdup(s->fallback ? "true" : "false");
	if (strcmp(key, "sessions.keep") == 0)
		return kf_asprintf("%d", s->sessions_keep);
	for (i = 0; i < N_TIMEOUTS; i++)
		if (strncmp(key, "timeout.", 8) == 0 &&
		    strcmp(key + 8, timeouts[i].key) == 0)
			return kf_asprintf("%d", *timeout_field((struct kf_settings *)s, i));
	return NULL;
}

static int bad_value(struct kf_error *err, const char *key, const char *value,
		     const char *want)
{
	kf_error_set(err, KF_EINPUT, "'%s' is not a valid %s: it must be %s",
		     value, key, want);
	kf_error_step(err, KF_CMD("kflash settings %s VALUE"), key);
	return KF_EINPUT;
}

int kf_settings_set(struct kf_settings *s, const char *key, const char *value,
		    struct kf_error *err)
{
	char **str = NULL;
	size_t i;

	if (strcmp(key, "klipper_dir") == 0)
		str = &s->klipper_dir;
	else if (strcmp(key, "katapult_dir") == 0)
		str = &s->katapult_dir;
	else if (strcmp(key, "python") == 0)
		str = &s->python;
	else if (strcmp(key, "service") == 0)
		str = &s->service;
	else if (strcmp(key, "moonraker_url") == 0)
		str = &s->moonraker_url;
	else if (strcmp(key, "moonraker_api_key") == 0) {
		const char *want = *value ? text_refusal(key, value) : NULL;

		/* "" removes it; a refused key is never echoed */
		if (want)
			return bad_value(err, key, "...", want);
		free(s->moonraker_api_key);
		s->moonraker_api_key = *value ? kf_xstrdup(value) : NULL;
		return 0;
	}
	if (str) {
		const char *want = text_refusal(key, value);

		if (want)
			return bad_value(err, key, kf_utf8_valid(value) &&
					 strlen(value) <= 200 ? value : "...", want);
		free(*str);
		*str = kf_xstrdup(value);
		return 0;
	}
	if (strcmp(key, "default_method") == 0) {
		enum kf_method m;

		if (kf_method_parse(value, &m) < 0 || m == KF_METHOD_DEFAULT)
			return bad_value(err, key, value, "katapult or make-flash");
		s->default_method = m;
		return 0;
	}
	if (strcmp(key, "fallback") == 0) {
		if (strcmp(value, "true") == 0)
			s->fallback = true;
		else if (strcmp(value, "false") == 0)
			s->fallback = false;
		else
			return bad_value(err, key, value, "true or false");
		return 0;
	}
	if (strcmp(key, "sessions.keep") == 0) {
		char *end;
		long v;

		errno = 0;
		v = strtol(value, &end, 10);
		if (errno || end == value || *end || v < 0 || v > KF_SESSIONS_MAX)
			return bad_value(err, key, value, "a whole number from 0 (record "
					 "nothing) to 1000");
		s->sessions_keep = (int)v;
		return 0;
	}
	for (i = 0; i < N_TIMEOUTS; i++) {
		if (strncmp(key, "timeout.", 8) != 0 || strcmp(key + 8, timeouts[i].key) != 0)
			continue;
		{
			char *end, want[64];
			long v;

			errno = 0;
			v = strtol(value, &end, 10);
			snprintf(want, sizeof(want), "a whole number of seconds from "
				 "%d to %d", timeouts[i].min, timeouts[i].max);
			if (errno || end == value || *end || v < timeouts[i].min ||
			    v > timeouts[i].max)
				return bad_value(err, key, value, want);
			*timeout_field(s, i) = (int)v;
			return 0;
		}
	}
	kf_error_set(err, KF_EINPUT, "unknown setting '%s'", key);
	kf_error_cause(err, "settings are: " KF_SETTINGS_KEYS);
	kf_error_step(err, KF_CMD("kflash settings") "   (lists them with their values)");
	return KF_EINPUT;
}
