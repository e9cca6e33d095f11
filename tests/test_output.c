/* test_output.c - what the user sees: phases, colour rules, --json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "kflash/output.h"

struct cap {
	char *out_buf, *err_buf;
	size_t out_len, err_len;
	FILE *out, *err;
	struct fake_world w;
	struct kf_out o;
};

static void cap_open(struct cap *c, struct kf_out_opts opts)
{
	memset(c, 0, sizeof(*c));
	fake_world_init(&c->w);
	c->out = open_memstream(&c->out_buf, &c->out_len);
	c->err = open_memstream(&c->err_buf, &c->err_len);
	kf_out_init(&c->o, &c->w.ops, c->out, c->err, &opts);
}

static void cap_close(struct cap *c)
{
	kf_out_release(&c->o);
	fclose(c->out);
	fclose(c->err);
	fake_world_release(&c->w);
}

static void cap_free(struct cap *c)
{
	free(c->out_buf);
	free(c->err_buf);
}

static void phase__labels_go_to_stderr_results_to_stdout(void **state)
{
	struct cap c;

	(void)state;
	cap_open(&c, (struct kf_out_opts){ 0 });
	kf_out_phase(&c.o, KF_PHASE_BUILD, "Compiling %s", "octopus");
	kf_out_result(&c.o, "Flashed octopus via katapult in 8.2s");
	cap_close(&c);
	assert_string_equal(c.err_buf, "[Build] Compiling octopus\n");
	assert_string_equal(c.out_buf, "Flashed octopus via katapult in 8.2s\n");
	cap_free(&c);
}

static void quiet__drops_progress_but_keeps_warnings(void **state)
{
	struct cap c;

	(void)state;
	cap_open(&c, (struct kf_out_opts){ .verbosity = KF_QUIET });
	kf_out_phase(&c.o, KF_PHASE_FLASH, "writing");
	kf_out_info(&c.o, "info");
	kf_out_warn(&c.o, "board %s reports an old version", "ebb");
	cap_close(&c);
	assert_string_equal(c.err_buf, "warning: board ebb reports an old version\n");
	cap_free(&c);
}

/* Colour and the live progress line only where the ops table says there
 * is a terminal; never with NO_COLOR, TERM=dumb or --no-color. */
static void colour__only_on_a_terminal_and_never_with_no_color(void **state)
{
	struct fake_world w;
	struct kf_out o;

	(void)state;
	fake_world_init(&w);
	kf_out_init(&o, &w.ops, stdout, stderr, &(struct kf_out_opts){ 0 });
	assert_false(o.colour);		/* no terminal: a pipe, a log */
	assert_false(o.progress_tty);
	w.tty[2] = true;		/* stderr on a terminal, stdout piped */
	kf_out_init(&o, &w.ops, stdout, stderr, &(struct kf_out_opts){ 0 });
	assert_true(o.colour);
	assert_false(o.out_colour);
	assert_true(o.progress_tty);
	kf_out_init(&o, &w.ops, stdout, stderr, &(struct kf_out_opts){ .verbosity = KF_QUIET });
	assert_false(o.progress_tty);
	fake_setenv(&w, "NO_COLOR", "1");
	kf_out_init(&o, &w.ops, stdout, stderr, &(struct kf_out_opts){ 0 });
	assert_false(o.colour);
	assert_true(o.progress_tty);	/* colour only: the line still updates */
	fake_setenv(&w, "NO_COLOR", NULL);
	fake_setenv(&w, "TERM", "dumb");
	kf_out_init(&o, &w.ops, stdout, stderr, &(struct kf_out_opts){ 0 });
	assert_false(o.colour);
	fake_setenv(&w, "TERM", "xterm-256color");
	kf_out_init(&o, &w.ops, stdout, stderr, &(struct kf_out_opts){ .no_colour = true });
	assert_false(o.colour);
	/* a table kflash refused: nothing is a terminal */
	kf_out_init(&o, NULL, stdout, stderr, &(struct kf_out_opts){ 0 });
	assert_false(o.colour);
	assert_false(o.progress_tty);
	fake_world_release(&w);
}

/* Errors wrap to the terminal's width when stderr is one (as the table
 * says), to 80 columns everywhere else: a pipe, a log, a terminal that
 * does not say. */
static void width__is_the_terminals_or_80(void **state)
{
	struct fake_world w;
	struct kf_out o;

	(void)state;
	fake_world_init(&w);
	w.columns = 132;
	kf_out_init(&o, &w.ops, stdout, stderr, &(struct kf_out_opts){ 0 });
	assert_int_equal(o.width, 80);	/* stderr is not a terminal */
	w.tty[2] = true;
	kf_out_init(&o, &w.ops, stdout, stderr, &(struct kf_out_opts){ 0 });
	assert_int_equal(o.width, 132);
	w.columns = 0;			/* a serial console */
	kf_out_init(&o, &w.ops, stdout, stderr, &(struct kf_out_opts){ 0 });
	assert_int_equal(o.width, 80);
	kf_out_init(&o, NULL, stdout, stderr, &(struct kf_out_opts){ 0 });
	assert_int_equal(o.width, 80);
	fake_world_release(&w);
}

/* Marks like ✓ and ● only in a UTF-8 locale; the first of LC_ALL,
 * LC_CTYPE, LANG that is set decides. */
static void utf8__follows_the_locale_variables(void **state)
{
	struct fake_world w;
	struct kf_out o;

	(void)state;
	fake_world_init(&w);
	kf_out_init(&o, &w.ops, stdout, stderr, &(struct kf_out_opts){ 0 });
	assert_false(o.utf8);
	fake_setenv(&w, "LANG", "en_GB.UTF-8");
	kf_out_init(&o, &w.ops, stdout, stderr, &(struct kf_out_opts){ 0 });
	assert_true(o.utf8);
	fake_setenv(&w, "LC_ALL", "C");
	kf_out_init(&o, &w.ops, stdout, stderr, &(struct kf_out_opts){ 0 });
	assert_false(o.utf8);
	fake_world_release(&w);
}

/* The conversation (menu, wizard, questions) is shown even with -q; the
 * log tail and progress are not. */
static void say__is_shown_with_quiet(void **state)
{
	struct cap c;

	(void)state;
	cap_open(&c, (struct kf_out_opts){ .verbosity = KF_QUIET, .json = true });
	kf_out_info(&c.o, "progress");
	kf_out_say(&c.o, "Board number [%s]: ", "1");
	cap_close(&c);
	assert_string_equal(c.err_buf, "Board number [1]: ");
	assert_string_equal(c.out_buf, "");
	cap_free(&c);
}

static void json__stdout_holds_exactly_one_document(void **state)
{
	struct cap c;
	json_t *doc, *parsed;
	json_error_t jerr;

	(void)state;
	cap_open(&c, (struct kf_out_opts){ .json = true });
	doc = json_pack("{s:[{s:s}]}", "boards", "name", "octopus");
	kf_out_phase(&c.o, KF_PHASE_DISCOVERY, "scanning");
	kf_out_result(&c.o, "a human line that must not reach stdout");
	kf_out_set_json(&c.o, doc);
	kf_out_finish(&c.o, 0, NULL);
	cap_close(&c);
	parsed = json_loads(c.out_buf, 0, &jerr);
	assert_non_null(parsed);
	assert_string_equal(json_string_value(json_object_get(
		json_array_get(json_object_get(parsed, "boards"), 0), "name")), "octopus");
	assert_int_equal(json_integer_value(json_object_get(parsed, "exit_code")), 0);
	assert_non_null(strstr(c.err_buf, "[Discovery] scanning"));
	json_decref(parsed);
	cap_free(&c);
}

static void json__an_error_becomes_part_of_the_document(void **state)
{
	struct cap c;
	struct kf_error e = KF_ERROR_INIT;
	json_t *parsed;

	(void)state;
	cap_open(&c, (struct kf_out_opts){ .json = true });
	kf_error_set(&e, KF_EREFUSED, "printer is printing benchy.gcode (42%%)");
	kf_error_step(&e, "wait for the print to finish");
	kf_out_finish(&c.o, kf_exit_code(KF_EREFUSED, &e), &e);
	cap_close(&c);
	parsed = json_loads(c.out_buf, 0, NULL);
	assert_non_null(parsed);
	assert_int_equal(json_integer_value(json_object_get(parsed, "exit_code")), 3);
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(parsed, "error"), "message")),
		"printer is printing benchy.gcode (42%)");
	json_decref(parsed);
	kf_error_release(&e);
	cap_free(&c);
}

/* A warning or a phase line quotes what came from outside (a tool's
 * output, a device name): it can neither clear the screen nor move the
 * cursor; control bytes and bytes that are not UTF-8 are shown as \xNN,
 * while a line break and a tab stay what they are. */
static void warn__quoted_control_bytes_cannot_reach_the_terminal(void **state)
{
	struct cap c;

	(void)state;
	cap_open(&c, (struct kf_out_opts){ 0 });
	kf_out_warn(&c.o, "flashtool said '%s'", "\033[2Jgone\r\xff");
	kf_out_info(&c.o, "  log:\n\t%s", "caf\xc3\xa9 \x07");
	cap_close(&c);
	assert_string_equal(c.err_buf,
			    "warning: flashtool said '\\x1b[2Jgone\\x0d\\xff'\n"
			    "  log:\n\tcaf\xc3\xa9 \\x07\n");
	cap_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(phase__labels_go_to_stderr_results_to_stdout),
		cmocka_unit_test(quiet__drops_progress_but_keeps_warnings),
		cmocka_unit_test(colour__only_on_a_terminal_and_never_with_no_color),
		cmocka_unit_test(width__is_the_terminals_or_80),
		cmocka_unit_test(utf8__follows_the_locale_variables),
		cmocka_unit_test(say__is_shown_with_quiet),
		cmocka_unit_test(warn__quoted_control_bytes_cannot_reach_the_terminal),
		cmocka_unit_test(json__stdout_holds_exactly_one_document),
		cmocka_unit_test(json__an_error_becomes_part_of_the_document),
	};

	return cmocka_run_group_tests_name("output", tests, NULL, NULL);
}
