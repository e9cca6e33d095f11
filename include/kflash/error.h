/* error.h - kflash's one error type and its error classes.
 *
 * Functions return 0, a negative errno, or a negative kflash class below.
 * The caller that decides a failure is final fills a struct kf_error: what
 * failed, the command that ran, the likely cause and numbered recovery steps
 * a user can copy and paste. Library code never prints; the CLI renders it.
 *
 * Prose wraps to the terminal's width; commands never do (a sudoers line
 * broken in two is a syntax error in visudo). A step marks each command in
 * it with KF_CMD, explicitly:
 *
 *	kf_error_step(err, KF_CMD("kflash config %s") "   (choose %s)", key, mcu);
 *	kf_error_step(err, "add: " KF_CMD("%s"), sudoers_line);
 *
 * The command that ran (kf_error_command) is one command, whole.
 */
#ifndef KFLASH_ERROR_H
#define KFLASH_ERROR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Exit codes of the contract. */
enum {
	KF_EXIT_OK = 0,
	KF_EXIT_FAILED = 1,
	KF_EXIT_USAGE = 2,	/* usage error or bad input; nothing changed */
	KF_EXIT_REFUSED = 3,	/* refused for safety */
	KF_EXIT_SIGNAL_BASE = 128,
};

/* kflash's error classes, negative and clear of the errno range. */
#define KF_ERR_BASE 4096
enum kf_errclass {
	KF_EUSAGE = -(KF_ERR_BASE + 1),	/* bad command line */
	KF_EINPUT = -(KF_ERR_BASE + 2),	/* bad input: names, files, settings */
	KF_EFAILED = -(KF_ERR_BASE + 3),	/* an operation failed */
	KF_EREFUSED = -(KF_ERR_BASE + 4),	/* refused for safety */
	KF_EINTERRUPTED = -(KF_ERR_BASE + 5),	/* a signal ended the run */
};

static inline bool kf_is_class(int r)
{
	return r <= KF_EUSAGE && r >= KF_EINTERRUPTED;
}

#define KF_ERROR_MAX_STEPS 8

/* Marks a command inside a step's format string. The marks are not part
 * of the step's text; the renderer keeps what they enclose on one line,
 * on a line of its own when it does not fit beside the prose, however
 * long it is. */
#define KF_CMD_BEGIN '\001'
#define KF_CMD_END '\002'
#define KF_CMD(s) "\001" s "\002"

struct kf_error {
	int code;		/* a kf_errclass, 0 when unset */
	int signal;		/* KF_EINTERRUPTED: which signal */
	int errnum;		/* the errno behind it (EIO...), or 0: kept, so an
				 * I/O error is never read as something else */
	char *what;		/* "Build of octopus failed" */
	char *command;		/* the command that ran, or NULL */
	char *cause;		/* likely cause, or NULL */
	char *steps[KF_ERROR_MAX_STEPS];	/* as text: what JSON and doctor show */
	char *marked[KF_ERROR_MAX_STEPS];	/* the same with their KF_CMD marks */
	size_t n_steps;
	char *note;		/* a second, separate failure (e.g. restart) */
};

#define KF_ERROR_INIT { 0 }

/* Sets code and what (replacing an earlier error) and returns code, so a
 * caller can write `return kf_error_set(err, KF_EFAILED, "...")`. */
int kf_error_set(struct kf_error *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Records the errno behind the failure (r negative or positive); the
 * report names it ("errno: EIO (Input/output error)"). */
void kf_error_errno(struct kf_error *e, int r);
/* "EIO", or "errno 1234" for one Linux does not name. */
const char *kf_errno_name(int errnum, char *buf, size_t len);
void kf_error_command(struct kf_error *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Puts what was being done before an error a lower layer reported
 * ("cannot tell whether octopus came back: " + its what), keeping its
 * errno, cause and steps. */
void kf_error_context(struct kf_error *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kf_error_cause(struct kf_error *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kf_error_step(struct kf_error *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A second failure reported on its own, never replacing the first. */
void kf_error_note(struct kf_error *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kf_error_release(struct kf_error *e);

/* The process exit code for a return value r and error e. */
int kf_exit_code(int r, const struct kf_error *e);

struct kf_buf;

/* Renders e wrapped to width columns into b (kf_out_error prints it), e.g.:
 *   error: Build of octopus failed
 *     errno:   EIO (Input/output error)
 *     command: make -C ~/klipper ...
 *     cause:   ...
 *     to fix:
 *       1. ...                                                           */
void kf_error_render(const struct kf_error *e, struct kf_buf *b, int width,
		     bool colour);

/* Word-wraps text into b to width columns: the first line prefixed by
 * first, the others by indent. A newline in text starts a line; what
 * KF_CMD marks in it, and a word longer than a line (a path), is never
 * broken. */
void kf_wrap(struct kf_buf *b, const char *first, const char *indent,
	     const char *text, int width);
/* text without its KF_CMD marks, malloc'd */
char *kf_unmark(const char *text);

#endif
