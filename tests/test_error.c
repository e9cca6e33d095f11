/* test_error.c - error reports: wrapping, numbering, exit codes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kflash/error.h"
#include "kflash/util.h"

static char *render_width(const struct kf_error *e, int width, bool colour)
{
	struct kf_buf b = KF_BUF_INIT;

	kf_error_render(e, &b, width, colour);
	return b.data ? b.data : kf_xstrdup("");
}

static char *render(const struct kf_error *e, bool colour)
{
	return render_width(e, 80, colour);
}

static char *render_at(const struct kf_error *e, int width)
{
	return render_width(e, width, false);
}

static void render__fits_80_columns_and_numbers_steps(void **state)
{
	struct kf_error e = KF_ERROR_INIT;
	char *s, *line;
	int steps = 0;

	(void)state;
	kf_error_set(&e, KF_EFAILED, "Flashing octopus-pro failed: Katapult did not "
		     "answer on /dev/serial/by-id/usb-katapult_stm32h723xx_"
		     "280032000951313236343430-if00 after 5 attempts");
	kf_error_command(&e, "python3 ~/katapult/scripts/flashtool.py -d /dev/ttyACM0 "
			 "-f ~/.cache/kflash/build/octopus-pro/klipper.bin");
	kf_error_cause(&e, "the board is not in its bootloader, or another program "
		       "holds its serial port open while kflash tries to flash it");
	kf_error_step(&e, "kflash doctor");
	kf_error_step(&e, "double-tap the board's reset button, then run kflash flash "
		      "octopus-pro -s again");
	s = render(&e, false);
	for (line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
		/* a single path may not be broken, but prose must wrap */
		if (!strchr(line, '/'))
			assert_true(strlen(line) <= 80);
		if (strstr(line, "    1. ") == line || strstr(line, "    2. ") == line)
			steps++;
	}
	assert_int_equal(steps, 2);
	free(s);
	kf_error_release(&e);
}

static void render__has_no_escape_codes_without_colour(void **state)
{
	struct kf_error e = KF_ERROR_INIT;
	char *plain, *coloured;

	(void)state;
	kf_error_set(&e, KF_EREFUSED, "printer is printing");
	plain = render(&e, false);
	coloured = render(&e, true);
	assert_null(strchr(plain, '\033'));
	assert_non_null(strchr(coloured, '\033'));
	assert_string_equal(plain, "error: printer is printing\n");
	free(plain);
	free(coloured);
	kf_error_release(&e);
}

/* What a message quotes from outside (a USB product string, a file, an
 * argument) reaches the terminal as text: no escape code, no byte that is
 * not UTF-8, no 4 KiB word. */
static void render__quoted_bytes_cannot_drive_the_terminal(void **state)
{
	struct kf_error e = KF_ERROR_INIT;
	struct kf_buf b = KF_BUF_INIT;
	char big[1000];

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	kf_error_set(&e, KF_EINPUT, "device 'a\033[2Jb' and '\xff\xfe' and 'K\xc3\xb6pf' "
		     "and %s", big);
	kf_error_render(&e, &b, 80, false);
	assert_null(strchr(b.data, '\033'));
	assert_null(strchr(b.data, '\xff'));
	assert_non_null(strstr(b.data, "'a\\x1b[2Jb'"));
	assert_non_null(strstr(b.data, "'\\xff\\xfe'"));
	assert_non_null(strstr(b.data, "'K\xc3\xb6pf'"));
	assert_non_null(strstr(b.data, "...(999 bytes)"));
	assert_true(strlen(b.data) < 500);
	kf_buf_release(&b);
	/* a command is never cut: it is there to be pasted */
	big[300] = '\0';
	kf_error_step(&e, KF_CMD("ls -l /%s"), big);
	kf_error_render(&e, &b, 80, false);
	assert_non_null(strstr(b.data, big));
	kf_buf_release(&b);
	kf_error_release(&e);
}

static void note__survives_a_replaced_error(void **state)
{
	struct kf_error e = KF_ERROR_INIT;
	char *s;

	(void)state;
	kf_error_set(&e, KF_EFAILED, "flash failed");
	kf_error_note(&e, "starting klipper again failed too");
	kf_error_set(&e, KF_EFAILED, "flash failed: timeout");
	s = render(&e, false);
	assert_non_null(strstr(s, "flash failed: timeout"));
	assert_non_null(strstr(s, "also:  starting klipper again failed too"));
	free(s);
	kf_error_release(&e);
	free(e.note);
}

static void render__names_the_errno_behind_the_failure(void **state)
{
	struct kf_error e = KF_ERROR_INIT;
	char *s;

	(void)state;
	kf_error_set(&e, KF_EFAILED, "cannot list serial devices through udev");
	kf_error_errno(&e, -EIO);
	assert_int_equal(e.errnum, EIO);
	s = render(&e, false);
	assert_non_null(strstr(s, "  errno:   EIO (Input/output error)\n"));
	free(s);
	/* a new error is a new cause */
	kf_error_set(&e, KF_EFAILED, "something else");
	assert_int_equal(e.errnum, 0);
	kf_error_release(&e);
}

/* the line of s holding text whole, or NULL */
static const char *line_with(const char *s, const char *text)
{
	const char *p = strstr(s, text);

	if (!p)
		return NULL;
	return memchr(p, '\n', strlen(text)) ? NULL : p;
}

#define SUDOERS "pi ALL=(root) NOPASSWD: /usr/bin/systemctl stop klipper, " \
		"/usr/bin/systemctl start klipper"

/* A command in a step is pasted as it is shown: a sudoers line broken in
 * two is a syntax error in visudo. It is never broken, at any width, even
 * when it is longer than the line; the prose around it still wraps. */
static void render__never_breaks_a_command(void **state)
{
	static const int widths[] = { 40, 60, 80, 100 };
	static const char *const cmds[] = {
		SUDOERS, "sudo visudo -f /etc/sudoers.d/kflash", "kflash config octopus",
		"kflash flash octopus-pro-toolhead -s --force",
	};
	struct kf_error e = KF_ERROR_INIT;
	size_t i;

	(void)state;
	kf_error_set(&e, KF_EREFUSED, "sudo would ask for a password to stop and start "
		     "klipper; kflash never waits at a password prompt with Klipper stopped");
	kf_error_step(&e, KF_CMD("sudo visudo -f /etc/sudoers.d/kflash"));
	kf_error_step(&e, "add: " KF_CMD("%s"), SUDOERS);
	kf_error_step(&e, KF_CMD("kflash config %s") "   (set the bootloader offset to "
		      "the one Katapult was built with, usually 8KiB or 32KiB)", "octopus");
	kf_error_step(&e, "or, when you are sure the printer is idle: "
		      KF_CMD("kflash flash %s -s --force"), "octopus-pro-toolhead");
	/* what a step says is its text alone: JSON and doctor show it */
	assert_string_equal(e.steps[1], "add: " SUDOERS);
	assert_null(strchr(e.steps[2], '\001'));
	assert_null(strchr(e.steps[2], '\002'));
	for (i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
		char *s = render_at(&e, widths[i]), *copy = kf_xstrdup(s), *line;

		size_t j;

		for (j = 0; j < sizeof(cmds) / sizeof(cmds[0]); j++)
			assert_non_null(line_with(s, cmds[j]));
		assert_null(strchr(s, '\001'));
		assert_null(strchr(s, '\002'));
		/* the steps' prose wrapped: every line but a command's fits */
		for (line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
			bool cmd = false;

			for (j = 0; j < sizeof(cmds) / sizeof(cmds[0]); j++)
				cmd |= strstr(line, cmds[j]) != NULL;
			if (!cmd)
				assert_true((int)strlen(line) <= widths[i]);
		}
		free(copy);
		free(s);
	}
	kf_error_release(&e);
}

/* The command that ran is a command too: shown whole, on its line. */
static void render__shows_the_command_that_ran_whole(void **state)
{
	static const char cmd[] = "make -C ~/klipper KCONFIG_CONFIG=~/.config/kflash/configs/"
				  "octopus/.config OUT=~/.cache/kflash/build/octopus/ -j4";
	struct kf_error e = KF_ERROR_INIT;
	char *s;

	(void)state;
	kf_error_set(&e, KF_EFAILED, "the build of octopus failed");
	kf_error_command(&e, "%s", cmd);
	s = render_at(&e, 60);
	assert_non_null(line_with(s, cmd));
	assert_non_null(strstr(s, "  command: make -C"));
	free(s);
	kf_error_release(&e);
}

/* Prose wraps to the width it is given (the terminal's), keeping the
 * spaces it has inside a line and none at a break. */
static void render__wraps_prose_to_the_width(void **state)
{
	struct kf_error e = KF_ERROR_INIT;
	char *s, *line;
	int lines = 0;

	(void)state;
	kf_error_set(&e, KF_EFAILED, "the board octopus did not come back in Klipper mode "
		     "within 30 seconds after it was flashed; it may still be in Katapult");
	kf_error_cause(&e, "the firmware's bootloader offset does not match the one "
		       "Katapult was built with, or the board needs a power cycle");
	s = render_at(&e, 200);
	for (line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
		lines++;
	assert_int_equal(lines, 2);	/* a wide terminal: one line each */
	free(s);
	s = render_at(&e, 50);
	for (line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
		assert_true(strlen(line) <= 50);
		assert_true(line[strlen(line) - 1] != ' ');
	}
	free(s);
	kf_error_release(&e);
}

static void exit_code__maps_classes_to_the_contract(void **state)
{
	struct kf_error e = KF_ERROR_INIT;

	(void)state;
	assert_int_equal(kf_exit_code(0, NULL), 0);
	assert_int_equal(kf_exit_code(-EIO, NULL), 1);
	assert_int_equal(kf_exit_code(KF_EUSAGE, NULL), 2);
	assert_int_equal(kf_exit_code(KF_EINPUT, NULL), 2);
	assert_int_equal(kf_exit_code(KF_EREFUSED, NULL), 3);
	assert_int_equal(kf_exit_code(KF_EFAILED, NULL), 1);
	e.code = KF_EINTERRUPTED;
	e.signal = 15;
	assert_int_equal(kf_exit_code(KF_EINTERRUPTED, &e), 143);
	assert_true(kf_is_class(KF_EREFUSED));
	assert_false(kf_is_class(-EIO));
}

/* kflash names errnos itself (Debian 11's glibc has no strerrorname_np):
 * as glibc does where it can tell, and "errno N" for the rest. */
static void errno_name__is_glibcs_name_for_every_errno(void **state)
{
	char buf[32];
	int i;

	(void)state;
	assert_string_equal(kf_errno_name(EIO, buf, sizeof(buf)), "EIO");
	assert_string_equal(kf_errno_name(EWOULDBLOCK, buf, sizeof(buf)), "EAGAIN");
	assert_string_equal(kf_errno_name(0, buf, sizeof(buf)), "errno 0");
	assert_string_equal(kf_errno_name(-5, buf, sizeof(buf)), "errno -5");
	assert_string_equal(kf_errno_name(4000, buf, sizeof(buf)), "errno 4000");
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 32)
	for (i = 1; i < 4096; i++) {
		const char *want = strerrorname_np(i);
		char num[32];

		snprintf(num, sizeof(num), "errno %d", i);
		assert_string_equal(kf_errno_name(i, buf, sizeof(buf)), want ? want : num);
	}
#else
	(void)i;
	print_message("glibc before 2.32: only the names above are checked\n");
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(render__fits_80_columns_and_numbers_steps),
		cmocka_unit_test(render__has_no_escape_codes_without_colour),
		cmocka_unit_test(render__quoted_bytes_cannot_drive_the_terminal),
		cmocka_unit_test(note__survives_a_replaced_error),
		cmocka_unit_test(render__names_the_errno_behind_the_failure),
		cmocka_unit_test(render__never_breaks_a_command),
		cmocka_unit_test(render__shows_the_command_that_ran_whole),
		cmocka_unit_test(render__wraps_prose_to_the_width),
		cmocka_unit_test(exit_code__maps_classes_to_the_contract),
		cmocka_unit_test(errno_name__is_glibcs_name_for_every_errno),
	};

	return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
