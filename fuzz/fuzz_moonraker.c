/* fuzz_moonraker.c - Moonraker's answers as kflash reads them: the print
 * state (kf_print_status_parse: anything unclear is UNKNOWN, never idle),
 * which Klipper unit an instance drives, the serials of its [mcu]
 * sections, every MCU's firmware version, and KIAUH's moonraker.conf
 * ([server] port), through kf_instances_find and kf_moonraker_mcus_all.
 *
 * Input: one byte choosing how the print-status request ended (an HTTP
 * status or an errno), then NUL-separated texts: the print-status body,
 * moonraker.conf, the answers to /machine/system_info, to
 * ?configfile=settings, to /printer/objects/list, and to each
 * /printer/objects/query?mcu... in turn. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake_ops.h"
#include "fuzz.h"
#include "kflash/instances.h"
#include "kflash/moonraker.h"
#include "kflash/registry.h"
#include "kflash/util.h"

struct mr_world {
	struct fake_world w;	/* first: ops.ctx points at it */
	struct fuzz_parts p;
	size_t next_mcu;
};

static int mr_http_get(void *ctx, const char *url, const char *const *headers,
		       int timeout_ms, char **ret_body, long *ret_status)
{
	struct mr_world *m = ctx;
	size_t i = 0;

	(void)headers;
	(void)timeout_ms;
	*ret_body = NULL;
	*ret_status = 0;
	if (kf_endswith(url, "/machine/system_info"))
		i = 2;
	else if (kf_endswith(url, "?configfile=settings"))
		i = 3;
	else if (kf_endswith(url, "/printer/objects/list"))
		i = 4;
	else if (strstr(url, "/printer/objects/query?mcu"))
		i = 5 + m->next_mcu++;
	if (i == 0 || i >= m->p.n)
		return -EHOSTUNREACH;
	*ret_body = kf_xstrdup(m->p.v[i]);
	*ret_status = 200;
	return 0;
}

static void print_status(uint8_t how, const char *body)
{
	static const struct { int r; long status; } ends[8] = {
		{ 0, 200 }, { 0, 200 }, { -EPROTO, 503 }, { -EPROTO, 401 },
		{ -EPROTO, 404 }, { -ETIMEDOUT, 0 }, { -EHOSTUNREACH, 0 }, { -EMSGSIZE, 200 },
	};
	struct kf_print_status ps;
	int r = ends[how & 7].r;

	kf_print_status_parse(r, ends[how & 7].status, r == -ETIMEDOUT ? NULL : body, &ps);
	/* idle or busy only from a 2xx answer with a state kflash knows */
	if (ps.verdict == KF_PRINT_IDLE || ps.verdict == KF_PRINT_BUSY)
		fuzz_assert(r == 0 && ps.state && ps.reachable);
	else
		fuzz_assert(ps.said && *ps.said && !ps.state);
	if (ps.said)
		fuzz_assert(kf_utf8_valid(ps.said));
	kf_print_status_release(&ps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mr_world m;
	struct kf_settings s;
	struct kf_instances is = KF_INSTANCES_INIT;
	struct kf_mcu_version *v = NULL;
	size_t n = 0, i, k;
	char *urls;

	memset(&m, 0, sizeof(m));
	fuzz_split(size ? data + 1 : data, size ? size - 1 : 0, FUZZ_MAX_PARTS, &m.p);
	print_status(size ? data[0] : 0, m.p.v[0]);

	fake_world_init(&m.w);
	m.w.ops.http_get = mr_http_get;
	if (m.p.n > 1)
		fake_put_file(&m.w, "/home/pi/printer_data/config/moonraker.conf", m.p.v[1]);
	kf_settings_defaults(&s);
	free(s.moonraker_url);
	s.moonraker_url = kf_xstrdup("");
	kf_instances_find(&m.w.ops, &s, &is);
	for (i = 0; i < is.n; i++) {
		fuzz_assert(is.v[i].url);
		/* a unit kflash would pass to sudo systemctl */
		fuzz_assert(!is.v[i].unit || kf_unit_name_ok(is.v[i].unit));
		for (k = 0; k < is.v[i].n_serials; k++)
			fuzz_assert(is.v[i].serials[k] && *is.v[i].serials[k]);
	}
	(void)kf_instances_owner(&is, "usb-*_stm32f446xx_3A0039000851313433343333-if*",
				 "/dev/serial/by-id/usb-Klipper_stm32f446xx_"
				 "3A0039000851313433343333-if00", "/dev/ttyACM0");
	urls = kf_instances_urls(&is);
	free(urls);
	kf_instances_release(&is);

	m.next_mcu = 0;
	if (kf_moonraker_mcus_all(&m.w.ops, "http://localhost:7125", NULL, &v, &n) == 0)
		for (i = 0; i < n; i++)
			fuzz_assert(v[i].object && (strcmp(v[i].object, "mcu") == 0 ||
						    kf_startswith(v[i].object, "mcu ")));
	kf_mcu_versions_free(v, n);

	fuzz_settings_release(&s);
	fake_world_release(&m.w);
	fuzz_parts_free(&m.p);
	return 0;
}
