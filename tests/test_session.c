/* test_session.c - the flight recorder and its replay: a recorded flash
 * replays with the same output and exit code, an edited recording
 * diverges where it was edited, bad sessions are refused by file and line,
 * and nothing secret or home-specific is written. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "kflash/kflash.h"
#include "kflash/session.h"

#define BYID "/dev/serial/by-id/usb-Klipper_stm32f446xx_3A0039000851313433343333-if00"
#define OUT "/home/pi/.cache/kflash/build/octopus"

static const char registry[] =
	"{\"schema\": 1, \"settings\": {\"klipper_dir\": \"~/klipper\", "
	"\"katapult_dir\": \"~/katapult\", \"moonraker_url\": \"http://mr\", "
	"\"moonraker_api_key\": \"0123456789abcdef0123456789abcdef\"}, "
	"\"boards\": [{\"key\": \"octopus\", \"name\": \"Octopus\", \"mcu\": "
	"\"stm32f446xx\", \"pattern\": \"usb-*_stm32f446xx_3A0039000851313433343333-if*\"}]}";

/* one board on a printer whose owner is pi */
static void printer(struct fake_world *w)
{
	fake_world_init(w);
	fake_setenv(w, "HOME", "/home/pi");
	w->svc_active = true;
	fake_put_file(w, "/home/pi/.config/kflash/devices.json", registry);
	fake_put_file(w, "/home/pi/.config/kflash/configs/octopus/.config",
		      "CONFIG_MCU=\"stm32f446xx\"\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8008000\n");
	fake_put_file(w, "/home/pi/klipper/Makefile", "");
	fake_put_file(w, "/home/pi/klipper/src/Kconfig", "");
	fake_put_file(w, "/home/pi/katapult/scripts/flashtool.py", "");
	fake_add_tty(w, "/dev/ttyACM0", BYID, "1d50", "614e", "Klipper",
		     "3A0039000851313433343333");
	fake_printer_host(w, OUT);
	fake_add_prog(w, (struct fake_prog){ .argv0 = "python3", .match = " -s",
		.output = "Application Start: 0x8008000\nStatus Request Complete",
		.run_ms = 1500 });
	fake_add_prog(w, (struct fake_prog){ .argv0 = "python3", .match = " -f ",
		.output = "Write complete: 13 pages\nProgramming Complete", .run_ms = 4000,
		.back = "/dev/ttyACM0" });
}

static char *argv_flash[] = { "kflash", "--record", "/home/pi/sess", "flash", "octopus",
			      "-s", NULL };

/* records `kflash flash octopus -s` and loads the session */
static struct fake_run record_flash(struct fake_world *w, struct kf_session *s)
{
	struct kf_error err = KF_ERROR_INIT;
	struct fake_run r;

	printer(w);
	r = fake_cli_run(&(struct kf_cli_opts){ .ops = &w->ops, .argc = 6, .argv = argv_flash });
	assert_int_equal(kf_session_load(&w->ops, "/home/pi/sess", s, &err), 0);
	kf_error_release(&err);
	return r;
}

static struct fake_run replay(struct kf_session *s, bool *diverged, char **report)
{
	struct kf_replayer *rp = kf_replayer_new(s);
	size_t i, n = json_array_size(json_object_get(s->info, "command"));
	char **argv = calloc(n + 2, sizeof(*argv));
	struct fake_run r;

	argv[0] = "kflash";
	for (i = 0; i < n; i++)
		argv[i + 1] = (char *)json_string_value(
			json_array_get(json_object_get(s->info, "command"), i));
	r = fake_cli_run(&(struct kf_cli_opts){ .ops = kf_replayer_ops(rp), .argc = (int)n + 1,
		.argv = argv, .replaying = true, .tee = kf_replayer_write, .tee_data = rp });
	*diverged = kf_replayer_end(rp, report);
	kf_replayer_free(rp);
	free(argv);
	return r;
}

static void flash__replays_with_the_recorded_output_and_exit_code(void **state)
{
	struct fake_world w;
	struct kf_session s;
	struct fake_run rec, rep;
	char *report = NULL;
	bool diverged;

	(void)state;
	rec = record_flash(&w, &s);
	assert_int_equal(rec.code, 0);
	assert_non_null(strstr(rec.out, "Flashed octopus via katapult"));
	assert_int_equal(s.exit_code, 0);
	/* nothing of the machine is asked again: the world is gone */
	fake_world_release(&w);
	rep = replay(&s, &diverged, &report);
	if (diverged)
		fail_msg("%s", report);
	assert_null(report);
	assert_int_equal(rep.code, 0);
	/* the same words; paths under the home read ~ */
	assert_non_null(strstr(rep.out, "Flashed octopus via katapult"));
	assert_non_null(strstr(rep.err, "~/.cache/kflash/build/octopus/klipper.bin"));
	assert_null(strstr(rep.err, "/home/pi"));
	assert_string_equal(rep.out, rec.out);
	fake_run_free(&rec);
	fake_run_free(&rep);
	kf_session_release(&s);
}

/* the wait that ends the flash tool's write */
static size_t flash_wait(const struct kf_session *s)
{
	size_t i, j;

	for (i = 0; i < s->n_calls; i++) {
		const json_t *c = s->calls[i];
		char *a = json_dumps(json_object_get(json_object_get(c, "args"), "argv"),
				     JSON_COMPACT);
		bool flash = a && strstr(a, "flashtool.py") && strstr(a, "\"-f\"");

		free(a);
		if (strcmp(json_string_value(json_object_get(c, "op")), "spawn") != 0 || !flash)
			continue;
		for (j = i + 1; j < s->n_calls; j++)
			if (strcmp(json_string_value(json_object_get(s->calls[j], "op")),
				   "wait") == 0)
				return j;
	}
	fail_msg("no flash tool wait in the recording");
	return 0;
}

static void edited_exit_status__diverges_right_after_that_call(void **state)
{
	struct fake_world w;
	struct kf_session s;
	struct fake_run rec, rep;
	char *report = NULL, want[128];
	bool diverged;
	size_t k;

	(void)state;
	rec = record_flash(&w, &s);
	fake_world_release(&w);
	k = flash_wait(&s);
	json_object_set_new(json_object_get(json_object_get(s.calls[k], "ret"), "exit"),
			    "code", json_integer(1));
	rep = replay(&s, &diverged, &report);
	assert_true(diverged);
	assert_non_null(report);
	snprintf(want, sizeof(want), "call %zu (wait) is the last answer kflash acted on",
		 k + 1);
	if (!strstr(report, want))
		fail_msg("wanted '%s' in:\n%s", want, report);
	/* what went on after the divergence did not reach the screen */
	assert_null(strstr(rep.out, "Flashed octopus"));
	free(report);
	fake_run_free(&rec);
	fake_run_free(&rep);
	kf_session_release(&s);
}

static void recording__keeps_the_api_key_and_the_home_out(void **state)
{
	struct fake_world w;
	struct kf_session s;
	struct fake_run rec;
	const struct fake_file *f;

	(void)state;
	rec = record_flash(&w, &s);
	f = fake_get_file(&w, "/home/pi/sess/calls.jsonl");
	assert_non_null(f);
	assert_null(strstr(f->data, "0123456789abcdef0123456789abcdef"));
	assert_non_null(strstr(f->data, "<redacted>"));
	assert_null(strstr(f->data, "/home/pi"));
	f = fake_get_file(&w, "/home/pi/sess/session.json");
	assert_null(strstr(f->data, "0123456789abcdef"));
	assert_non_null(strstr(f->data, "\"exit\": 0"));
	assert_non_null(fake_get_file(&w, "/home/pi/sess/boards/octopus.umockdev"));
	assert_non_null(strstr(fake_get_file(&w, "/home/pi/sess/boards/octopus.json")->data,
			       "\"mcu\": \"stm32f446xx\""));
	fake_run_free(&rec);
	kf_session_release(&s);
	fake_world_release(&w);
}

static void full_disk__warns_once_and_the_flash_goes_on(void **state)
{
	struct fake_world w;
	struct fake_run r;

	(void)state;
	printer(&w);
	w.full = "/home/pi/.local/state";
	r = fake_cli_run(&(struct kf_cli_opts){ .ops = &w.ops, .argc = 4,
		.argv = (char *[]){ "kflash", "flash", "octopus", "-s", NULL } });
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "Flashed octopus via katapult"));
	assert_non_null(strstr(r.err, "not recording this session"));
	assert_non_null(strstr(r.err, "No space left on device; the run goes on"));
	assert_null(strstr(strstr(r.err, "not recording") + 1, "not recording"));
	assert_true(w.svc_active);
	fake_run_free(&r);
	fake_world_release(&w);
}

static void sessions__the_newest_keep_are_kept(void **state)
{
	struct fake_world w;
	struct fake_run r;
	char **names;
	size_t n, i;

	(void)state;
	printer(&w);
	fake_put_file(&w, "/home/pi/.local/state/kflash/sessions/20200101T000000Z-flash/"
		      "session.json", "{}");
	fake_put_file(&w, "/home/pi/.local/state/kflash/sessions/20210101T000000Z-build/"
		      "session.json", "{}");
	fake_put_file(&w, "/home/pi/.local/state/kflash/sessions/notes.txt", "mine");
	fake_put_file(&w, "/home/pi/.config/kflash/devices.json",
		      "{\"schema\": 1, \"settings\": {\"sessions\": {\"keep\": 2}}}");
	r = fake_cli_run(&(struct kf_cli_opts){ .ops = &w.ops, .argc = 3,
		.argv = (char *[]){ "kflash", "build", "--all", NULL } });
	fake_run_free(&r);
	assert_int_equal(w.ops.read_dir(w.ops.ctx, "/home/pi/.local/state/kflash/sessions",
					&names, &n), 0);
	/* the oldest went; the other one, the new one and a file not kflash's stay */
	assert_int_equal(n, 3);
	assert_string_equal(names[0], "20210101T000000Z-build");
	assert_true(strncmp(names[1], "2026", 4) == 0 && strstr(names[1], "-build"));
	assert_string_equal(names[2], "notes.txt");
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	fake_world_release(&w);
}

/* --record into a directory that holds something: said, and the run goes
 * on unrecorded; nothing there is touched */
static void record_into_a_full_dir__warns_and_the_run_goes_on(void **state)
{
	struct fake_world w;
	struct fake_run r;

	(void)state;
	printer(&w);
	fake_put_file(&w, "/home/pi/sess/mine.txt", "keep me");
	r = fake_cli_run(&(struct kf_cli_opts){ .ops = &w.ops, .argc = 6, .argv = argv_flash });
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.err, "not recording this session: /home/pi/sess is not empty"));
	assert_null(fake_get_file(&w, "/home/pi/sess/calls.jsonl"));
	assert_string_equal(fake_get_file(&w, "/home/pi/sess/mine.txt")->data, "keep me");
	fake_run_free(&r);
	fake_world_release(&w);
}

/* A kflash killed mid-run leaves a session without an exit: its replay
 * says where the recording ends instead of inventing the rest. */
static void killed_session__replay_says_where_the_recording_ends(void **state)
{
	struct fake_world w;
	struct kf_session s;
	struct fake_run rec, rep;
	char *report = NULL;
	bool diverged;
	size_t i;

	(void)state;
	rec = record_flash(&w, &s);
	fake_world_release(&w);
	for (i = s.n_calls / 2; i < s.n_calls; i++)
		json_decref(s.calls[i]);
	s.n_calls /= 2;
	s.exit_code = -1;
	rep = replay(&s, &diverged, &report);
	assert_true(diverged);
	assert_non_null(strstr(report, "ends here (kflash was killed or the file was cut)"));
	free(report);
	fake_run_free(&rec);
	fake_run_free(&rep);
	kf_session_release(&s);
}

/* A run on a terminal asks how wide it is, and the replay answers from the
 * recording; a session from before kflash asked (no term_width call after
 * the terminal's isatty) still replays: the answer is "not said". */
static void terminal_width__is_replayed_and_may_be_missing(void **state)
{
	struct kf_error err = KF_ERROR_INIT;
	struct fake_world w;
	struct kf_session s;
	struct fake_run rec, rep;
	char *report = NULL;
	bool diverged, asked = false;
	size_t i;

	(void)state;
	printer(&w);
	w.tty[2] = true;
	w.columns = 61;
	rec = fake_cli_run(&(struct kf_cli_opts){ .ops = &w.ops, .argc = 6, .argv = argv_flash });
	assert_int_equal(rec.code, 0);
	assert_int_equal(kf_session_load(&w.ops, "/home/pi/sess", &s, &err), 0);
	fake_world_release(&w);
	for (i = 0; i < s.n_calls; i++) {
		const json_t *c = s.calls[i];

		if (strcmp(json_string_value(json_object_get(c, "op")), "term_width") != 0)
			continue;
		assert_int_equal(json_integer_value(json_object_get(json_object_get(c, "ret"),
								    "r")), 61);
		asked = true;
		break;
	}
	assert_true(asked);
	rep = replay(&s, &diverged, &report);
	if (diverged)
		fail_msg("%s", report);
	fake_run_free(&rep);
	/* the same session as a kflash before term_width wrote it */
	json_decref(s.calls[i]);
	memmove(&s.calls[i], &s.calls[i + 1], (s.n_calls - i - 1) * sizeof(*s.calls));
	s.n_calls--;
	rep = replay(&s, &diverged, &report);
	if (diverged)
		fail_msg("%s", report);
	assert_int_equal(rep.code, 0);
	fake_run_free(&rec);
	fake_run_free(&rep);
	kf_error_release(&err);
	kf_session_release(&s);
}

static void shorten__only_the_home_itself_becomes_a_tilde(void **state)
{
	char *s;

	(void)state;
	s = kf_sj_shorten("/home/pi", "/home/pi/klipper OUT=/home/pi/.cache /home/pie "
			  "/srv/home/pi/x /home/pi");
	assert_string_equal(s, "~/klipper OUT=~/.cache /home/pie /srv/home/pi/x ~");
	free(s);
	s = kf_sj_shorten("/", "/dev/ttyACM0");
	assert_string_equal(s, "/dev/ttyACM0");
	free(s);
	s = kf_sj_shorten(NULL, "X-Api-Key: secret");
	assert_string_equal(s, "X-Api-Key: <redacted>");
	free(s);
}

static void bytes_that_are_not_text__come_back_exactly(void **state)
{
	static const char bin[] = { 'a', '\xff', '\0', 'b', '\xc3' };
	json_t *v = kf_sj_mem("/home/pi", bin, sizeof(bin));
	size_t len;
	bool ok;
	char *back = kf_sj_get_mem(v, &len, &ok);

	(void)state;
	assert_true(ok);
	assert_int_equal(len, sizeof(bin));
	assert_memory_equal(back, bin, sizeof(bin));
	free(back);
	json_decref(v);
}

/* ---- sessions kflash must refuse, read through the real table -------------- */

static struct kf_ops real;
static struct kf_linux *lx;
static char tmp[] = "/tmp/kflash-session-test-XXXXXX";

static int real_setup(void **state)
{
	(void)state;
	assert_int_equal(kf_ops_linux_init(&real, &lx), 0);
	assert_non_null(mkdtemp(tmp));
	return 0;
}

static int real_teardown(void **state)
{
	(void)state;
	(void)kf_os_remove_tree(&real, tmp);
	kf_ops_linux_release(lx);
	return 0;
}

static const char good_info[] = "{\"format\": 1, \"command\": [\"list\"], \"exit\": 0}\n";

static void put(const char *dir, const char *name, const char *text)
{
	char *path = kf_asprintf("%s/%s", dir, name);

	assert_int_equal(kf_os_mkdir_p(&real, dir, 0755), 0);
	assert_int_equal(kf_os_write_atomic(&real, path, text, strlen(text), 0644), 0);
	free(path);
}

/* loads dir and expects a refusal whose message holds want */
static void refused(const char *dir, const char *want)
{
	struct kf_error err = KF_ERROR_INIT;
	struct kf_session s;

	assert_int_equal(kf_session_load(&real, dir, &s, &err), KF_EINPUT);
	assert_int_equal(kf_exit_code(KF_EINPUT, &err), 2);
	if (!strstr(err.what, want))
		fail_msg("'%s' does not say '%s'", err.what, want);
	kf_error_release(&err);
}

static void bad_sessions__are_refused_naming_file_and_line(void **state)
{
	char *d;

	(void)state;
	d = kf_asprintf("%s/cut", tmp);
	put(d, "session.json", good_info);
	put(d, "calls.jsonl", "{\"kflash-session\": 1}\n{\"n\": 1, \"op\": \"now\", \"ar");
	refused(d, "calls.jsonl:2: the line is cut short");
	free(d);

	d = kf_asprintf("%s/nonsense", tmp);
	put(d, "session.json", good_info);
	put(d, "calls.jsonl", "{\"kflash-session\": 1}\n{\"n\": 1, \"op\": \"now\", "
	    "\"args\": {}, \"ret\": {\"t\": 5}}\n{\"n\": 2, \"op\": \"format_disk\", "
	    "\"args\": {}, \"ret\": {}}\n");
	refused(d, "calls.jsonl:3: not a call");
	free(d);

	d = kf_asprintf("%s/future", tmp);
	put(d, "session.json", "{\"format\": 2, \"command\": [\"list\"], \"exit\": 0}\n");
	put(d, "calls.jsonl", "{\"kflash-session\": 2}\n");
	refused(d, "format 2; this kflash reads format 1");
	free(d);

	d = kf_asprintf("%s/gap", tmp);
	put(d, "session.json", good_info);
	put(d, "calls.jsonl", "{\"kflash-session\": 1}\n{\"n\": 2, \"op\": \"now\", "
	    "\"args\": {}, \"ret\": {\"t\": 5}}\n");
	refused(d, "call 1 is missing");
	free(d);

	d = kf_asprintf("%s/broken-info", tmp);
	put(d, "session.json", "{\"format\": 1, \"command\": [\"list\"]\n");
	refused(d, "session.json:2:");
	free(d);
}

static void huge_or_looping_sessions__are_refused_without_reading(void **state)
{
	char *d, *f, *a, *b;

	(void)state;
	d = kf_asprintf("%s/huge", tmp);
	put(d, "session.json", good_info);
	f = kf_asprintf("%s/calls.jsonl", d);
	put(d, "calls.jsonl", "");
	assert_int_equal(truncate(f, 1L << 30), 0);	/* sparse: 1 GiB, no disk */
	refused(d, "more than a session holds");
	free(f);
	free(d);

	a = kf_asprintf("%s/loop-a", tmp);
	b = kf_asprintf("%s/loop-b", tmp);
	assert_int_equal(symlink(b, a), 0);
	assert_int_equal(symlink(a, b), 0);
	refused(a, "loop-a");
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest fake[] = {
		cmocka_unit_test(flash__replays_with_the_recorded_output_and_exit_code),
		cmocka_unit_test(edited_exit_status__diverges_right_after_that_call),
		cmocka_unit_test(recording__keeps_the_api_key_and_the_home_out),
		cmocka_unit_test(full_disk__warns_once_and_the_flash_goes_on),
		cmocka_unit_test(sessions__the_newest_keep_are_kept),
		cmocka_unit_test(record_into_a_full_dir__warns_and_the_run_goes_on),
		cmocka_unit_test(killed_session__replay_says_where_the_recording_ends),
		cmocka_unit_test(terminal_width__is_replayed_and_may_be_missing),
		cmocka_unit_test(shorten__only_the_home_itself_becomes_a_tilde),
		cmocka_unit_test(bytes_that_are_not_text__come_back_exactly),
	};
	const struct CMUnitTest ondisk[] = {
		cmocka_unit_test(bad_sessions__are_refused_naming_file_and_line),
		cmocka_unit_test(huge_or_looping_sessions__are_refused_without_reading),
	};

	return cmocka_run_group_tests(fake, NULL, NULL) |
	       cmocka_run_group_tests(ondisk, real_setup, real_teardown);
}
