/* moonraker.c - print state and MCU firmware versions from Moonraker. */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "kflash/moonraker.h"
#include "kflash/util.h"

#define HTTP_TIMEOUT_MS 3000

void kf_print_status_release(struct kf_print_status *p)
{
	free(p->state);
	free(p->filename);
	memset(p, 0, sizeof(*p));
}

static json_t *get_json(const struct kf_ops *o, const char *base, const char *path,
			int *ret_err)
{
	char *url = kf_asprintf("%s%s", base, path), *body = NULL;
	long status = 0;
	json_t *doc = NULL;
	int r;

	/* "http://host:7125/" and "http://host:7125" both work */
	if (kf_endswith(base, "/") && path[0] == '/') {
		free(url);
		url = kf_asprintf("%s%s", base, path + 1);
	}
	r = kf_os_http_get(o, url, HTTP_TIMEOUT_MS, &body, &status);
	free(url);
	if (body)
		doc = json_loads(body, 0, NULL);
	free(body);
	*ret_err = r;
	if (r == 0 && !doc)
		*ret_err = -EBADMSG;
	return doc;
}

void kf_moonraker_print_status(const struct kf_ops *o, const char *url,
			       struct kf_print_status *p)
{
	json_t *doc, *st, *ps, *sd;
	int r;

	memset(p, 0, sizeof(*p));
	doc = get_json(o, url, "/printer/objects/query?print_stats&virtual_sdcard", &r);
	/* Moonraker answers with an error while Klipper is not running: it
	 * is reachable, and nothing is printing */
	p->reachable = r == 0 || r == -EPROTO || r == -EBADMSG;
	if (r < 0) {
		json_decref(doc);
		return;
	}
	st = json_object_get(json_object_get(doc, "result"), "status");
	ps = json_object_get(st, "print_stats");
	sd = json_object_get(st, "virtual_sdcard");
	if (json_is_object(ps)) {
		const char *s = json_string_value(json_object_get(ps, "state"));
		const char *f = json_string_value(json_object_get(ps, "filename"));

		p->klippy_ready = true;
		p->state = kf_xstrdup(s ? s : "unknown");
		p->filename = f && *f ? kf_xstrdup(f) : NULL;
	}
	if (json_is_number(json_object_get(sd, "progress")))
		p->progress = json_number_value(json_object_get(sd, "progress"));
	json_decref(doc);
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

int kf_moonraker_mcus(const struct kf_ops *o, const char *url,
		      struct kf_mcu_version **ret, size_t *ret_n)
{
	json_t *list, *objs, *v;
	struct kf_mcu_version *out = NULL;
	size_t i, n = 0;
	int r;

	*ret = NULL;
	*ret_n = 0;
	list = get_json(o, url, "/printer/objects/list", &r);
	if (r < 0) {
		json_decref(list);
		return r;
	}
	objs = json_object_get(json_object_get(list, "result"), "objects");
	json_array_foreach(objs, i, v) {
		const char *name = json_string_value(v);
		char *esc, *path;
		json_t *doc, *m;

		if (!name || (strcmp(name, "mcu") != 0 && !kf_startswith(name, "mcu ")))
			continue;
		esc = kf_url_escape(name);
		path = kf_asprintf("/printer/objects/query?%s", esc);
		doc = get_json(o, url, path, &r);
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
