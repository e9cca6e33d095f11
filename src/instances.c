/* instances.c - which Klipper unit (and Moonraker) drives which board. */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "kflash/instances.h"
#include "kflash/moonraker.h"
#include "kflash/util.h"

#define KIAUH_MAX 9

void kf_instances_release(struct kf_instances *is)
{
	size_t i, k;

	for (i = 0; i < is->n; i++) {
		free(is->v[i].unit);
		free(is->v[i].url);
		for (k = 0; k < is->v[i].n_serials; k++)
			free(is->v[i].serials[k]);
		free(is->v[i].serials);
	}
	free(is->v);
	memset(is, 0, sizeof(*is));
}

static struct kf_instance *add(struct kf_instances *is, const char *url)
{
	size_t i;

	for (i = 0; i < is->n; i++)
		if (strcmp(is->v[i].url, url) == 0)
			return NULL;
	is->v = kf_xrealloc(is->v, (is->n + 1) * sizeof(*is->v));
	memset(&is->v[is->n], 0, sizeof(*is->v));
	is->v[is->n].url = kf_xstrdup(url);
	return &is->v[is->n++];
}

/* The [server] port of a moonraker.conf, or 0. */
static int conf_port(const char *text)
{
	bool in_server = false;
	const char *line = text;

	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line) : strlen(line);
		int port;

		while (n && isspace((unsigned char)*line))
			line++, n--;
		if (n && *line == '[')
			in_server = strncmp(line, "[server]", 8) == 0;
		else if (in_server && (sscanf(line, "port: %d", &port) == 1 ||
				       sscanf(line, "port = %d", &port) == 1 ||
				       sscanf(line, "port:%d", &port) == 1) &&
			 port > 0 && port < 65536)
			return port;
		line = end ? end + 1 : NULL;
	}
	return 0;
}

static void add_kiauh(const struct kf_ops *o, struct kf_instances *is)
{
	int i;

	for (i = 0; i <= KIAUH_MAX; i++) {
		char *rel = i ? kf_asprintf("~/printer_%d_data/config/moonraker.conf", i)
			      : kf_xstrdup("~/printer_data/config/moonraker.conf");
		char *path = kf_expand_home(o, rel), *text = NULL;

		if (kf_read_regular(o, path, 1 << 20, &text, NULL, NULL) == 0) {
			int port = conf_port(text);
			char *url = kf_asprintf("http://localhost:%d", port ? port : 7125);

			(void)add(is, url);
			free(url);
		}
		free(text);
		free(path);
		free(rel);
	}
}

void kf_instances_find(const struct kf_ops *o, const struct kf_settings *s,
		       struct kf_instances *is)
{
	char *urls = kf_xstrdup(s->moonraker_url ? s->moonraker_url : ""), *tok, *save;
	size_t i;

	memset(is, 0, sizeof(*is));
	for (tok = strtok_r(urls, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save))
		(void)add(is, tok);
	free(urls);
	is->override = s->service && strcmp(s->service, "auto") != 0;
	if (is->override) {
		/* one unit for every board; its Moonraker is the first URL */
		if (!is->n)
			(void)add(is, "http://localhost:7125");
		while (is->n > 1)
			free(is->v[--is->n].url);
		is->v[0].unit = kf_xstrdup(s->service);
		return;
	}
	add_kiauh(o, is);
	for (i = 0; i < is->n; i++) {
		struct kf_moonraker m = { is->v[i].url, s->moonraker_api_key };
		struct kf_instance *in = &is->v[i];

		int r;

		in->unit = kf_moonraker_klipper_unit(o, &m, &r);
		/* one that never answered is not asked again, 3 s more */
		in->serials_known = r != -ETIMEDOUT && r != -EHOSTUNREACH &&
			kf_moonraker_mcu_serials(o, &m, &in->serials, &in->n_serials) == 0;
	}
}

static const char *base(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

struct kf_instance *kf_instances_owner(struct kf_instances *is, const char *pattern,
				       const char *by_id, const char *devnode)
{
	size_t i, k;

	for (i = 0; i < is->n; i++) {
		for (k = 0; k < is->v[i].n_serials; k++) {
			const char *sp = is->v[i].serials[k];

			if ((by_id && strcmp(sp, by_id) == 0) ||
			    (devnode && strcmp(sp, devnode) == 0) ||
			    (pattern && kf_startswith(sp, "/dev/serial/by-id/") &&
			     fnmatch(pattern, base(sp), 0) == 0))
				return &is->v[i];
		}
	}
	return NULL;
}

char *kf_instances_urls(const struct kf_instances *is)
{
	struct kf_buf b = KF_BUF_INIT;
	size_t i;

	for (i = 0; i < is->n; i++)
		kf_buf_addf(&b, "%s%s", i ? " " : "", is->v[i].url);
	if (!b.data)
		kf_buf_add(&b, "", 0);
	return b.data;
}
