/* test_moonraker.c - what kflash makes of Moonraker's answers: only a valid
 * print_stats.state is a print state; everything else is UNKNOWN, saying
 * what came back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "kflash/moonraker.h"

#define Q "{\"result\": {\"status\": {\"print_stats\": {\"state\": \"%s\", " \
	"\"filename\": \"benchy.gcode\"}, \"virtual_sdcard\": {\"progress\": 0.25}}}}"

static void parse(int r, long status, const char *body, struct kf_print_status *p)
{
	kf_print_status_parse(r, status, body, p);
}

static void print_state__printing_and_paused_are_busy_the_rest_idle(void **state)
{
	static const char *const busy[] = { "printing", "paused" };
	static const char *const idle[] = { "standby", "complete", "cancelled", "error" };
	struct kf_print_status p;
	char body[256];
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		snprintf(body, sizeof(body), Q, busy[i]);
		parse(0, 200, body, &p);
		assert_int_equal(p.verdict, KF_PRINT_BUSY);
		assert_string_equal(p.filename, "benchy.gcode");
		assert_true(p.progress > 0.24 && p.progress < 0.26);
		kf_print_status_release(&p);
	}
	for (i = 0; i < 4; i++) {
		snprintf(body, sizeof(body), Q, idle[i]);
		parse(0, 200, body, &p);
		assert_int_equal(p.verdict, KF_PRINT_IDLE);
		kf_print_status_release(&p);
	}
}

static void print_state__http_errors_are_unknown_never_idle(void **state)
{
	struct kf_print_status p;

	(void)state;
	parse(-EPROTO, 500, "{\"error\": {\"code\": 500, \"message\": \"Internal Server "
	      "Error\"}}", &p);
	assert_int_equal(p.verdict, KF_PRINT_UNKNOWN);
	assert_string_equal(p.said, "HTTP 500: Internal Server Error");
	assert_false(p.auth);
	kf_print_status_release(&p);

	parse(-EPROTO, 401, "{\"error\": {\"code\": 401, \"message\": \"Unauthorized\"}}", &p);
	assert_int_equal(p.verdict, KF_PRINT_UNKNOWN);
	assert_true(p.auth);
	kf_print_status_release(&p);

	parse(-EPROTO, 403, "", &p);
	assert_true(p.auth);
	assert_string_equal(p.said, "HTTP 403");
	kf_print_status_release(&p);
}

static void print_state__klippy_not_connected_is_its_own_verdict(void **state)
{
	struct kf_print_status p;

	(void)state;
	parse(-EPROTO, 503, "{\"error\": {\"code\": 503, \"message\": \"Klippy Host not "
	      "connected\"}}", &p);
	assert_int_equal(p.verdict, KF_PRINT_NO_KLIPPY);
	kf_print_status_release(&p);
	/* another 503 (a proxy's) is no such statement */
	parse(-EPROTO, 503, "<html>Service Unavailable</html>", &p);
	assert_int_equal(p.verdict, KF_PRINT_UNKNOWN);
	kf_print_status_release(&p);
}

static void print_state__bodies_without_a_valid_state_are_unknown(void **state)
{
	static const struct { const char *body; const char *said; } cases[] = {
		{ "<html><body>502 Bad Gateway</body></html>", "not JSON: '<html>" },
		{ "{\"result\": {\"status\": {\"print_st", "not JSON" },
		{ "{\"result\": {\"status\": {}}}", "without print_stats" },
		{ "{\"result\": {\"status\": {\"print_stats\": {}}}}", "no print state" },
		{ "{\"result\": {\"status\": {\"print_stats\": {\"state\": \"idle\"}}}}",
		  "'idle', which is no print state" },
		{ "{\"result\": {\"status\": {\"print_stats\": {\"state\": 3}}}}",
		  "no print state" },
		{ "[]", "without print_stats" },
	};
	struct kf_print_status p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		parse(0, 200, cases[i].body, &p);
		assert_int_equal(p.verdict, KF_PRINT_UNKNOWN);
		assert_non_null(p.said);
		assert_non_null(strstr(p.said, cases[i].said));
		kf_print_status_release(&p);
	}
}

static void print_state__nothing_answering_is_unknown_and_unreachable(void **state)
{
	struct kf_print_status p;

	(void)state;
	parse(-EHOSTUNREACH, 0, NULL, &p);
	assert_int_equal(p.verdict, KF_PRINT_UNKNOWN);
	assert_false(p.reachable);
	kf_print_status_release(&p);
	parse(-ETIMEDOUT, 0, NULL, &p);
	assert_string_equal(p.said, "no answer within 3 s");
	kf_print_status_release(&p);
	/* 10 MB came back: it answered, but nothing a print status is */
	parse(-EMSGSIZE, 200, NULL, &p);
	assert_int_equal(p.verdict, KF_PRINT_UNKNOWN);
	assert_true(p.reachable);
	assert_non_null(strstr(p.said, "larger than 8 MiB"));
	kf_print_status_release(&p);
	parse(-EINTR, 0, NULL, &p);
	assert_int_equal(p.verdict, KF_PRINT_UNKNOWN);
	assert_non_null(strstr(p.said, "interrupted"));
	kf_print_status_release(&p);
}

static void api_key__is_sent_as_x_api_key_and_only_when_set(void **state)
{
	struct fake_world w;
	struct kf_moonraker with = { "http://mr", "abc123" }, without = { "http://mr/", NULL };
	struct kf_print_status p;

	(void)state;
	fake_world_init(&w);
	w.urls[w.n_urls].url = "http://mr/printer/objects/query?print_stats&virtual_sdcard";
	w.urls[w.n_urls++].body = "{\"result\": {\"status\": {\"print_stats\": "
		"{\"state\": \"standby\"}}}}";
	kf_moonraker_print_status(&w.ops, &with, &p);
	assert_int_equal(p.verdict, KF_PRINT_IDLE);
	assert_true(fake_did(&w, "http header X-Api-Key: abc123"));
	kf_print_status_release(&p);
	kf_buf_release(&w.transcript);
	kf_moonraker_print_status(&w.ops, &without, &p);
	assert_int_equal(p.verdict, KF_PRINT_IDLE);
	assert_false(fake_did(&w, "http header X-Api-Key: abc123"));
	kf_print_status_release(&p);
	fake_world_release(&w);
}

static void klipper_unit__comes_from_system_info_instance_ids(void **state)
{
	struct fake_world w;
	struct kf_moonraker m = { "http://mr", NULL };
	char *unit;

	(void)state;
	fake_world_init(&w);
	w.urls[w.n_urls].url = "http://mr/machine/system_info";
	w.urls[w.n_urls++].body = "{\"result\": {\"system_info\": {\"instance_ids\": "
		"{\"moonraker\": \"moonraker-2\", \"klipper\": \"klipper-2.service\"}}}}";
	unit = kf_moonraker_klipper_unit(&w.ops, &m, NULL);
	assert_string_equal(unit, "klipper-2");
	free(unit);
	m.url = "http://elsewhere";
	assert_null(kf_moonraker_klipper_unit(&w.ops, &m, NULL));
	fake_world_release(&w);
}

/* A unit name is passed to sudo systemctl: one Moonraker makes up (an
 * option, a path, a shell word) is no unit at all, never an argument. */
static void klipper_unit__a_name_systemd_would_not_have_is_none(void **state)
{
	static const char *const bad[] = { "--all.service", "klipper; reboot",
		"../../etc/x", "-H evil", "klipper\nstart", "" };
	struct kf_moonraker m = { "http://mr", NULL };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fake_world w;

		fake_world_init(&w);
		w.urls[w.n_urls].url = "http://mr/machine/system_info";
		w.urls[w.n_urls++].body = kf_asprintf("{\"result\": {\"system_info\": "
			"{\"instance_ids\": {\"klipper\": \"%s\"}}}}", bad[i]);
		assert_null(kf_moonraker_klipper_unit(&w.ops, &m, NULL));
		free((char *)w.urls[0].body);
		fake_world_release(&w);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(print_state__printing_and_paused_are_busy_the_rest_idle),
		cmocka_unit_test(print_state__http_errors_are_unknown_never_idle),
		cmocka_unit_test(print_state__klippy_not_connected_is_its_own_verdict),
		cmocka_unit_test(print_state__bodies_without_a_valid_state_are_unknown),
		cmocka_unit_test(print_state__nothing_answering_is_unknown_and_unreachable),
		cmocka_unit_test(api_key__is_sent_as_x_api_key_and_only_when_set),
		cmocka_unit_test(klipper_unit__comes_from_system_info_instance_ids),
		cmocka_unit_test(klipper_unit__a_name_systemd_would_not_have_is_none),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
