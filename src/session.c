/* session.c - the JSON a session is written in, shared by the recorder and
 * the replayer so that both sides encode a call the same way. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <strings.h>

#include "kflash/session.h"
#include "kflash/util.h"

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *p, size_t len)
{
	char *out = kf_xmalloc(4 * ((len + 2) / 3) + 1), *o = out;
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		*o++ = b64[p[i] >> 2];
		*o++ = b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = b64[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		*o++ = b64[p[i + 2] & 63];
	}
	if (i < len) {
		*o++ = b64[p[i] >> 2];
		if (i + 1 < len) {
			*o++ = b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
			*o++ = b64[(p[i + 1] & 15) << 2];
		} else {
			*o++ = b64[(p[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* NULL for anything that is not base64 */
static char *b64_decode(const char *s, size_t *ret_len)
{
	size_t n = strlen(s), i, o = 0;
	unsigned char *out;
	unsigned v = 0;
	int bits = 0;

	if (n % 4)
		return NULL;
	out = kf_xmalloc(n / 4 * 3 + 1);
	for (i = 0; i < n; i++) {
		const char *c = strchr(b64, s[i]);

		if (s[i] == '=' && i >= n - 2 && (i == n - 1 || s[n - 1] == '='))
			break;
		if (!c || !s[i]) {
			free(out);
			return NULL;
		}
		v = (v << 6) | (unsigned)(c - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(v >> bits);
		}
	}
	out[o] = '\0';
	*ret_len = o;
	return (char *)out;
}

static bool path_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* Values that must never reach a session: the API key in a devices.json
 * and in the header that carries it. */
static void redact(struct kf_buf *b)
{
	static const char key[] = "\"moonraker_api_key\"";
	char *p = b->data;

	if (strncasecmp(b->data, "X-Api-Key:", 10) == 0) {
		b->len = 0;
		b->data[0] = '\0';
		kf_buf_add(b, "X-Api-Key: <redacted>", 21);
		return;
	}
	while ((p = strstr(p, key))) {
		char *v = p + sizeof(key) - 1, *end;
		size_t at;

		while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
			v++;
		if (*v++ != ':') {
			p += sizeof(key) - 1;
			continue;
		}
		while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
			v++;
		if (*v != '"') {
			p = v;
			continue;
		}
		for (end = v + 1; *end && *end != '"'; end++)
			if (*end == '\\' && end[1])
				end++;
		if (!*end)
			return;
		/* splice "<redacted>" over the value, quotes kept */
		at = (size_t)(v + 1 - b->data);
		{
			struct kf_buf n = KF_BUF_INIT;

			kf_buf_add(&n, b->data, at);
			kf_buf_add(&n, "<redacted>", 10);
			kf_buf_add(&n, end, b->len - (size_t)(end - b->data));
			kf_buf_release(b);
			*b = n;
		}
		p = b->data + at + 10;
	}
}

char *kf_sj_shorten(const char *home, const char *s)
{
	struct kf_buf b = KF_BUF_INIT;
	size_t hl = home ? strlen(home) : 0;
	const char *p = s;

	kf_buf_add(&b, "", 0);
	/* a home of "/" or "" would turn every path into ~ */
	while (*p) {
		if (hl > 1 && strncmp(p, home, hl) == 0 && !path_char(p[hl]) &&
		    (p == s || (!path_char(p[-1]) && p[-1] != '/'))) {
			kf_buf_add(&b, "~", 1);
			p += hl;
			continue;
		}
		kf_buf_add(&b, p, 1);
		p++;
	}
	redact(&b);
	return b.data;
}

char *kf_sj_expand(const char *home, const char *s, size_t len, size_t *ret_len)
{
	struct kf_buf b = KF_BUF_INIT;
	size_t i, hl = home ? strlen(home) : 0;

	kf_buf_add(&b, "", 0);
	for (i = 0; i < len; i++) {
		if (hl > 1 && s[i] == '~' && (i == 0 || (!path_char(s[i - 1]) && s[i - 1] != '/')) &&
		    (i + 1 == len || !path_char(s[i + 1])))
			kf_buf_add(&b, home, hl);
		else
			kf_buf_add(&b, s + i, 1);
	}
	if (ret_len)
		*ret_len = b.len;
	return b.data;
}

json_t *kf_sj_mem(const char *home, const void *buf, size_t len)
{
	json_t *v;
	char *s;

	if (!buf)
		return json_null();
	/* text with no NUL: shortened and redacted; anything else verbatim */
	if (!memchr(buf, '\0', len) && (v = json_stringn(buf, len))) {
		json_decref(v);
		s = kf_xstrndup(buf, len);
		char *t = kf_sj_shorten(home, s);

		v = json_string(t);
		free(s);
		free(t);
		return v;
	}
	s = b64_encode(buf, len);
	v = json_pack("{s:s}", "b64", s);
	free(s);
	return v;
}

json_t *kf_sj_str(const char *home, const char *s)
{
	return kf_sj_mem(home, s, s ? strlen(s) : 0);
}

char *kf_sj_get_mem(const json_t *v, size_t *ret_len, bool *ok)
{
	size_t len = 0;
	char *out;

	*ok = true;
	if (json_is_null(v)) {
		if (ret_len)
			*ret_len = 0;
		return NULL;
	}
	if (json_is_string(v)) {
		len = json_string_length(v);
		out = kf_xmalloc(len + 1);
		memcpy(out, json_string_value(v), len);
		out[len] = '\0';
	} else if (json_is_object(v) && json_is_string(json_object_get(v, "b64"))) {
		out = b64_decode(json_string_value(json_object_get(v, "b64")), &len);
		if (!out)
			goto bad;
	} else {
		goto bad;
	}
	if (ret_len)
		*ret_len = len;
	return out;
bad:
	*ok = false;
	return NULL;
}

json_t *kf_sj_argv(const char *home, const char *const *argv)
{
	json_t *a;

	if (!argv)
		return json_null();
	a = json_array();
	for (; *argv; argv++)
		json_array_append_new(a, kf_sj_str(home, *argv));
	return a;
}

static const char *const dev_keys[] = {
	"devnode", "by_id", "by_path", "vid", "pid", "manufacturer", "product",
	"serial", "driver", "iface",
};

static char **dev_field(struct kf_ttydev *d, size_t i)
{
	char **f[] = { &d->devnode, &d->by_id, &d->by_path, &d->vid, &d->pid,
		       &d->manufacturer, &d->product, &d->serial, &d->driver, &d->iface };

	return f[i];
}

json_t *kf_sj_dev(const char *home, const struct kf_ttydev *d)
{
	json_t *o = json_object();
	size_t i;

	/* a tty's record has no iface key, as before net devices were */
	for (i = 0; i < sizeof(dev_keys) / sizeof(dev_keys[0]); i++)
		if (*dev_field((struct kf_ttydev *)d, i) || strcmp(dev_keys[i], "iface") != 0)
			json_object_set_new(o, dev_keys[i],
					    kf_sj_str(home, *dev_field((struct kf_ttydev *)d, i)));
	return o;
}

int kf_sj_get_dev(const json_t *v, struct kf_ttydev *ret_dev)
{
	size_t i;
	bool ok;

	memset(ret_dev, 0, sizeof(*ret_dev));
	if (!json_is_object(v))
		return -EINVAL;
	for (i = 0; i < sizeof(dev_keys) / sizeof(dev_keys[0]); i++) {
		json_t *f = json_object_get(v, dev_keys[i]);

		*dev_field(ret_dev, i) = f ? kf_sj_get_mem(f, NULL, &ok) : NULL;
		if (f && !ok) {
			kf_ttydev_release(ret_dev);
			return -EINVAL;
		}
	}
	if (!ret_dev->devnode == !ret_dev->iface) {
		kf_ttydev_release(ret_dev);
		return -EINVAL;
	}
	return 0;
}

static const char *const exit_kinds[] = {
	[KF_EXIT_RUNNING] = "running", [KF_EXIT_EXITED] = "exited",
	[KF_EXIT_SIGNALED] = "signaled", [KF_EXIT_EXEC_FAILED] = "exec-failed",
	[KF_EXIT_TIMED_OUT] = "timed-out", [KF_EXIT_INTERRUPTED] = "interrupted",
};

json_t *kf_sj_exit(const struct kf_exit *e)
{
	return json_pack("{s:s, s:i, s:i, s:i, s:i}", "kind", exit_kinds[e->kind],
			 "code", e->code, "sig", e->sig, "err", e->err,
			 "interrupted_by", e->interrupted_by);
}

int kf_sj_get_exit(const json_t *v, struct kf_exit *ret_exit)
{
	const char *kind = NULL;
	size_t i;

	memset(ret_exit, 0, sizeof(*ret_exit));
	if (json_unpack((json_t *)v, "{s:s, s:i, s:i, s:i, s:i}", "kind", &kind,
			"code", &ret_exit->code, "sig", &ret_exit->sig, "err", &ret_exit->err,
			"interrupted_by", &ret_exit->interrupted_by) < 0)
		return -EINVAL;
	for (i = 0; i < sizeof(exit_kinds) / sizeof(exit_kinds[0]); i++)
		if (strcmp(kind, exit_kinds[i]) == 0) {
			ret_exit->kind = (enum kf_exit_kind)i;
			return 0;
		}
	return -EINVAL;
}

/* days since 1970-01-01 to a civil date (Howard Hinnant's algorithm) */
static void civil(int64_t days, int *y, unsigned *m, unsigned *d)
{
	int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400) + (*m <= 2);
}

void kf_session_stamp(int64_t epoch_ms, char ret_stamp[24])
{
	int64_t secs = epoch_ms / 1000, days = secs / 86400, rem = secs % 86400;
	unsigned m, d;
	int y;

	if (rem < 0) {
		rem += 86400;
		days--;
	}
	civil(days, &y, &m, &d);
	snprintf(ret_stamp, 24, "%04d%02u%02uT%02u%02u%02uZ", y % 10000, m, d,
		 (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60));
}

void kf_utc_iso(int64_t epoch_ms, char ret_iso[24])
{
	char stamp[24];

	kf_session_stamp(epoch_ms, stamp);
	/* 20261202T043000Z -> 2026-12-02T04:30:00Z */
	snprintf(ret_iso, 24, "%.4s-%.2s-%.2sT%.2s:%.2s:%.2sZ", stamp, stamp + 4,
		 stamp + 6, stamp + 9, stamp + 11, stamp + 13);
}

char *kf_sessions_dir(const struct kf_ops *o)
{
	const char *state = kf_os_getenv(o, "XDG_STATE_HOME");
	const char *home = kf_os_getenv(o, "HOME");

	if (state && *state == '/')
		return kf_asprintf("%s/kflash/sessions", state);
	if (home && *home)
		return kf_asprintf("%s/.local/state/kflash/sessions", home);
	return NULL;
}

json_t *kf_sj_mode(mode_t m)
{
	char b[8];

	snprintf(b, sizeof(b), "%04o", (unsigned)m & 07777);
	return json_string(b);
}

static const char *const stdio_names[] = { "inherit", "capture", "null", "pipe" };

json_t *kf_sj_spawn_args(const char *home, const struct kf_spawn_req *q)
{
	return json_pack("{s:o, s:o, s:o, s:s, s:s, s:b, s:b, s:i, s:b}",
		"argv", kf_sj_argv(home, q->argv), "env", kf_sj_argv(home, q->env),
		"cwd", kf_sj_str(home, q->cwd), "in", stdio_names[q->in],
		"out", stdio_names[q->out], "idle", q->idle, "detach", q->detach,
		"ready_ms", q->ready_ms, "self", q->self);
}

json_t *kf_sj_http_args(const char *home, const char *url, const char *const *headers,
			int timeout_ms)
{
	return json_pack("{s:o, s:o, s:i}", "url", kf_sj_str(home, url),
			 "headers", kf_sj_argv(home, headers), "timeout_ms", timeout_ms);
}

static const char *const kind_names[] = { "none", "reg", "dir", "other" };

const char *kf_sj_kind_name(enum kf_file_kind k)
{
	return kind_names[k];
}

int kf_sj_get_kind(const char *name, enum kf_file_kind *ret)
{
	size_t i;

	for (i = 0; name && i < 4; i++)
		if (strcmp(name, kind_names[i]) == 0) {
			*ret = (enum kf_file_kind)i;
			return 0;
		}
	return -EINVAL;
}

json_t *kf_sj_uevent(const char *home, const struct kf_uevent *e)
{
	return json_pack("{s:s, s:o}", "action", e->action == KF_UEVENT_ADD ? "add"
			 : e->action == KF_UEVENT_REMOVE ? "remove" : "other",
			 "dev", kf_sj_dev(home, &e->dev));
}

int kf_sj_get_uevent(const json_t *v, struct kf_uevent *ret)
{
	const char *a = json_string_value(json_object_get(v, "action"));

	memset(ret, 0, sizeof(*ret));
	if (!a)
		return -EINVAL;
	ret->action = strcmp(a, "add") == 0 ? KF_UEVENT_ADD
		    : strcmp(a, "remove") == 0 ? KF_UEVENT_REMOVE : KF_UEVENT_OTHER;
	return kf_sj_get_dev(json_object_get(v, "dev"), &ret->dev);
}
