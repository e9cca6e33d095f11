/* output.h - everything kflash says to the user goes through here.
 *
 * Results (the board list, settings, a flash summary) go to stdout; progress,
 * phase labels, warnings and errors go to stderr. In --json mode stdout holds
 * exactly one JSON document, set by the command and printed at the end.
 * Colour is used only when the stream is a terminal and neither NO_COLOR nor
 * --no-color is set. Writes that fail (a dropped SSH session: EIO, EPIPE) are
 * ignored: losing the terminal must never stop kflash putting Klipper back.
 *
 * This is the only module that prints (ci/check-door enforces it): the
 * rest of kflash, the menu and the wizards included, says what it has to
 * say through these functions.
 */
#ifndef KFLASH_OUTPUT_H
#define KFLASH_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "kflash/error.h"
#include "kflash/ops.h"

enum kf_phase {
	KF_PHASE_DISCOVERY,
	KF_PHASE_CONFIG,
	KF_PHASE_BUILD,
	KF_PHASE_FLASH,
	KF_PHASE_VERIFY,
	KF_PHASE_SERVICE,
};

enum kf_verbosity { KF_QUIET = -1, KF_NORMAL = 0, KF_VERBOSE = 1 };

struct kf_out {
	FILE *out;		/* results */
	FILE *err;		/* progress, warnings, errors */
	bool colour;		/* on stderr */
	bool out_colour;	/* on stdout */
	bool json;
	bool progress_tty;	/* live one-line progress allowed */
	bool utf8;		/* the locale is UTF-8: marks like ✓ and ● */
	enum kf_verbosity verbosity;
	int width;		/* columns errors wrap to: stderr's terminal's, else 80 */
	bool progress_shown;	/* a \r line is on screen */
	json_t *doc;		/* --json document, owned */
	struct kf_out_tee *tees[2];	/* stdout, stderr, when opts->tee */
};

/* Hears every byte written to fd 1 or 2 and says what goes to the real
 * stream instead: buf itself, other bytes (valid until its next call; a
 * replay shows "~" for its stand-in home) or NULL for nothing (a replay
 * that diverged prints no more). */
typedef const char *kf_out_tee_fn(void *data, int fd, const char *buf, size_t len,
				  size_t *ret_len);

struct kf_out_opts {
	bool json;
	bool no_colour;		/* --no-color */
	enum kf_verbosity verbosity;
	kf_out_tee_fn *tee;	/* or NULL: out and err are written as they are */
	void *tee_data;
};

/* Decides colour and TTY behaviour from the streams (a terminal, as ops
 * tells), NO_COLOR, TERM and the locale variables (read through ops).
 * Without a table (ops NULL: one kflash refused) nothing is a terminal and
 * the environment is empty. */
void kf_out_init(struct kf_out *o, const struct kf_ops *ops, FILE *out, FILE *err,
		 const struct kf_out_opts *opts);
void kf_out_release(struct kf_out *o);
/* From now on tee hears nothing more (the output goes on as it is). */
void kf_out_untee(struct kf_out *o);

const char *kf_phase_label(enum kf_phase p);

/* "[Build] Compiling octopus" on stderr (suppressed by -q). */
void kf_out_phase(struct kf_out *o, enum kf_phase p, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* success mark for a phase: "[Flash] ✓ ..." */
void kf_out_ok(struct kf_out *o, enum kf_phase p, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void kf_out_info(struct kf_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kf_out_verbose(struct kf_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Warnings are shown even with -q. */
void kf_out_warn(struct kf_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* One live line on a TTY (overwritten by the next); nothing elsewhere. */
void kf_out_progress(struct kf_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kf_out_progress_clear(struct kf_out *o);
/* A result line on stdout; dropped in --json mode (the document says it). */
void kf_out_result(struct kf_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Text of a conversation on stderr, as given (no newline added): the
 * menu, a wizard's choices, a question waiting for its answer. Shown with
 * -q and --json too: the user is answering. */
void kf_out_say(struct kf_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Help and usage text, as given: to stdout when asked for (--help), to
 * stderr beside a usage error. In every mode. */
void kf_out_help(struct kf_out *o, bool to_stderr, const char *text);

void kf_out_error(struct kf_out *o, const struct kf_error *e);

/* Takes ownership of doc; printed by kf_out_finish in --json mode. */
void kf_out_set_json(struct kf_out *o, json_t *doc);
/* In --json mode prints the document (or an error document built from e
 * when the command set none) to stdout. */
void kf_out_finish(struct kf_out *o, int exit_code, const struct kf_error *e);

/* The one message written with no struct kf_out at hand: memory ran out
 * (kf_xmalloc), nothing more can be allocated, abort() follows. */
void kf_out_oom(void);

#endif
