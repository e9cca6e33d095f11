/* moonraker.c - print state, Klipper unit, MCU serials and firmware
 * versions from Moonraker; anything unclear is UNKNOWN, never idle. */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "kflash/moonraker.h"
#include "kflash/registry.h"
#include "kflash/util.h"

#define HTTP_TIMEOUT_MS 3000

void kf_print_status_release(struct kf_print_status *p)
{
	free(p->state);
	free(p->filename);
	free(p->said);
	memset(p, 0, sizeof(*p));
}

static int get(const struct kf_ops *o, const struct kf_moonraker *m, const char *path,
	       char **ret_body, long *ret_status)
{
	const char *base = m->url ? m->url : "";
	char *url, *key = NULL;
	const char *headers[2] = { NULL, NULL };
	int r;

	/* "http://host:7125/" and "http://host:7125" both work */
	if (kf_endswith(base, "/") && path[0] == '/')
		path++;
	url = kf_asprintf("%s%s", base, path);
	if (m->api_key && *m->api_key) {
		key = kf_asprintf("X-Api-Key: %s", m->api_key);
		headers[0] = key;
	}
	*ret_status = 0;
	r = kf_os_http_get(o, url, headers, HTTP_TIMEOUT_MS, ret_body, ret_status);
	free(url);
	free(key);
	return r;
}

/* The JSON document of a 2xx answer, or NULL with *ret_err set. */
static json_t *get_json(const struct kf_ops *o, const struct kf_moonraker *m,
			const char *path, int *ret_err)
{
	char *body = NULL;
	long status;
	json_t *doc = NULL;
	int r = get(o, m, path, &body, &status);

	if (r == 0) {
		doc = json_loads(body, 0, NULL);
		if (!doc)
			r = -EBADMSG;
	}
	free(body);
	*ret_err = r;
	return doc;
}

static bool valid_state(const char *s)
{
	static const char *const states[] = {
		"standby", "printing", "paused", "complete", "cancelled", "error", NULL,
	};
	size_t i;

	for (i = 0; s && states[i]; i++)
		if (strcmp(s, states[i]) == 0)
			return true;
	return false;
}

/* A short, printable quote of what came back, for messages. */
static char *quote(const char *body)
{
	struct kf_buf b = KF_BUF_INIT;
	size_t i;

	for (i = 0; body && body[i] && b.len < 60; i++) {
		unsigned char c = (unsigned char)body[i];

		kf_buf_add(&b, isprint(c) ? &body[i] : " ", 1);
	}
	if (body && body[i])
		kf_buf_add(&b, "...", 3);
	if (!b.data)
		kf_buf_add(&b, "", 0);
	return b.data;
}

void kf_print_status_parse(int r, long status, const char *body,
			   struct kf_print_status *p)
{
	json_t *doc = body ? json_loads(body, 0, NULL) : NULL;
	json_t *st, *ps, *sd;
	const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"),
							    "message"));
	const char *s;

	memset(p, 0, sizeof(*p));
	p->verdict = KF_PRINT_UNKNOWN;
	p->http_status = status;
	p->reachable = r == 0 || r == -EPROTO || r == -EMSGSIZE;
	if (r == -EMSGSIZE) {
		p->said = kf_xstrdup("an answer larger than 8 MiB, which no print "
				     "status is");
		goto out;
	}
	if (!p->reachable) {
		/* only the table's "nothing answers" is read as that: another
		 * errno is named, never taken for a Moonraker that is down */
		p->said = r == -ETIMEDOUT ? kf_asprintf("no answer within %d s",
							HTTP_TIMEOUT_MS / 1000)
			: r == -EHOSTUNREACH ? kf_xstrdup("nothing answers there")
			: r == -EINTR ? kf_xstrdup("interrupted before it answered")
			: kf_asprintf("asking it failed: %s", strerror(-r));
		goto out;
	}
	if (r == -EPROTO) {
		p->auth = status == 401 || status == 403;
		if (status == 503 && msg && strstr(msg, "Klippy Host not connected"))
			p->verdict = KF_PRINT_NO_KLIPPY;
		if (msg)
			p->said = kf_asprintf("HTTP %ld: %s", status, msg);
		else
			p->said = kf_asprintf("HTTP %ld", status);
		goto out;
	}
	if (!doc) {
		char *q = quote(body);

		p->said = kf_asprintf("an answer that is not JSON: '%s'", q);
		free(q);
		goto out;
	}
	st = json_object_get(json_object_get(doc, "result"), "status");
	ps = json_object_get(st, "print_stats");
	sd = json_object_get(st, "virtual_sdcard");
	s = json_string_value(json_object_get(ps, "state"));
	if (!json_is_object(ps)) {
		p->said = kf_xstrdup("an answer without print_stats");
		goto out;
	}
	if (!valid_state(s)) {
		char *q = quote(s ? s : "(none)");

		p->said = kf_asprintf("print_stats.state '%s', which is no print state", q);
		free(q);
		goto out;
	}
	p->state = kf_xstrdup(s);
	p->verdict = strcmp(s, "printing") == 0 || strcmp(s, "paused") == 0
		     ? KF_PRINT_BUSY : KF_PRINT_IDLE;
	s = json_string_value(json_object_get(ps, "filename"));
	p->filename = s && *s ? kf_xstrdup(s) : NULL;
	if (json_is_number(json_object_get(sd, "progress")))
		p->progress = json_number_value(json_object_get(sd, "progress"));
out:
	json_decref(doc);
}

void kf_moonraker_print_status(const struct kf_ops *o, const struct kf_moonraker *m,
			       struct kf_print_status *p)
{
	char *body = NULL;
	long status;
	int r = get(o, m, "/printer/objects/query?print_stats&virtual_sdcard", &body,
		    &status);

	kf_print_status_parse(r, status, body, p);
	free(body);
}

char *kf_moonraker_klipper_unit(const struct kf_ops *o, const struct kf_moonraker *m,
				int *ret_err)
{
	json_t *doc;
	const char *u;
	char *unit = NULL;
	int r;

	doc = get_json(o, m, "/machine/system_info", &r);
	u = json_string_value(json_object_get(json_object_get(json_object_get(
		json_object_get(doc, "result"), "system_info"), "instance_ids"), "klipper"));
	/* "klipper-1.service" names the unit klipper-1 */
	if (r == 0 && u && *u)
		unit = kf_endswith(u, ".service") ? kf_xstrndup(u, strlen(u) - 8)
						  : kf_xstrdup(u);
	/* it goes to sudo systemctl: a name no unit can have is no answer */
	if (unit && !kf_unit_name_ok(unit)) {
		free(unit);
		unit = NULL;
	}
	if (ret_err)
		*ret_err = r;
	json_decref(doc);
	return unit;
}

int kf_moonraker_mcu_serials(const struct kf_ops *o, const struct kf_moonraker *m,
			     char ***ret, size_t *ret_n)
{
	json_t *doc, *settings, *sec;
	const char *name;
	char **out = NULL;
	size_t n = 0;
	int r;

	*ret = NULL;
	*ret_n = 0;
	doc = get_json(o, m, "/printer/objects/query?configfile=settings", &r);
	if (r < 0)
		return r;
	settings = json_object_get(json_object_get(json_object_get(json_object_get(
		doc, "result"), "status"), "configfile"), "settings");
	if (!json_is_object(settings)) {
		json_decref(doc);
		return -EBADMSG;
	}
	json_object_foreach(settings, name, sec) {
		const char *keys[] = { "serial", "canbus_uuid" };
		size_t k;

		if (strcmp(name, "mcu") != 0 && !kf_startswith(name, "mcu "))
			continue;
		for (k = 0; k < 2; k++) {
			const char *v = json_string_value(json_object_get(sec, keys[k]));

			if (!v || !*v)
				continue;
			out = kf_xrealloc(out, (n + 1) * sizeof(*out));
			out[n++] = kf_xstrdup(v);
		}
	}
	json_decref(doc);
	*ret = out;
	*ret_n = n;
	return 0;
}

char *kf_url_escape(const char *s)
{
	struct kf_buf b = KF_BUF_INIT;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr("-_.~", c))
			kf_buf_add(&b, s, 1);
		else
			kf_buf_addf(&b, "%%%02X", c);
	}
	if (!b.data)
		kf_buf_add(&b, "", 0);
	return b.data;
}

void kf_mcu_versions_free(struct kf_mcu_version *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].object);
		free(v[i].mcu);
		free(v[i].version);
	}
	free(v);
}

int kf_moonraker_mcus(const struct kf_ops *o, const struct kf_moonraker *mr,
		      struct kf_mcu_version **ret, size_t *ret_n)
{
	json_t *list, *objs, *v;
	struct kf_mcu_version *out = NULL;
	size_t i, n = 0;
	int r;

	*ret = NULL;
	*ret_n = 0;
	list = get_json(o, mr, "/printer/objects/list", &r);
	if (r < 0)
		return r;
	objs = json_object_get(json_object_get(list, "result"), "objects");
	json_array_foreach(objs, i, v) {
		const char *name = json_string_value(v);
		char *esc, *path;
		json_t *doc, *m;

		if (!name || (strcmp(name, "mcu") != 0 && !kf_startswith(name, "mcu ")))
			continue;
		esc = kf_url_escape(name);
		path = kf_asprintf("/printer/objects/query?%s", esc);
		doc = get_json(o, mr, path, &r);
		free(esc);
		free(path);
		m = json_object_get(json_object_get(json_object_get(doc, "result"),
						    "status"), name);
		if (r == 0 && json_is_object(m)) {
			const char *ver = json_string_value(json_object_get(m, "mcu_version"));
			const char *mcu = json_string_value(json_object_get(
				json_object_get(m, "mcu_constants"), "MCU"));

			out = kf_xrealloc(out, (n + 1) * sizeof(*out));
			out[n].object = kf_xstrdup(name);
			out[n].mcu = mcu ? kf_xstrdup(mcu) : NULL;
			out[n].version = ver ? kf_xstrdup(ver) : NULL;
			n++;
		}
		json_decref(doc);
	}
	json_decref(list);
	*ret = out;
	*ret_n = n;
	return 0;
}

int kf_moonraker_mcus_all(const struct kf_ops *o, const char *urls, const char *api_key,
			  struct kf_mcu_version **ret, size_t *ret_n)
{
	char *list = kf_xstrdup(urls ? urls : ""), *tok, *save;
	struct kf_mcu_version *all = NULL;
	size_t n = 0;
	int r = -EHOSTUNREACH;

	for (tok = strtok_r(list, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
		struct kf_moonraker m = { tok, api_key };
		struct kf_mcu_version *v;
		size_t k;

		if (kf_moonraker_mcus(o, &m, &v, &k) < 0)
			continue;
		r = 0;
		all = kf_xrealloc(all, (n + k + 1) * sizeof(*all));
		if (k)	/* v is NULL for a printer without MCUs */
			memcpy(all + n, v, k * sizeof(*v));
		n += k;
		free(v);
	}
	free(list);
	*ret = all;
	*ret_n = n;
	return r;
}
