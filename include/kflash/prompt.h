/* prompt.h - asking the user a question on the terminal. */
#ifndef KFLASH_PROMPT_H
#define KFLASH_PROMPT_H

#include "kflash/kflash.h"

/* Asks question (with [default] when given) on stderr through the output
 * module and reads one line from stdin through the ops table. Returns 0
 * with a malloc'd answer (the default for an empty line), -EPIPE at end of
 * input, KF_EINTERRUPTED (err filled, its signal taken from the table)
 * when a signal such as Ctrl+C arrives while waiting, or KF_EFAILED (err
 * names the errno) when stdin cannot be read. */
int kf_prompt(struct kf_ctx *ctx, const char *question, const char *def,
	      struct kf_error *err, char **ret_answer);

/* yes/no with a default; -y answers yes without asking. Returns as
 * kf_prompt does. */
int kf_confirm(struct kf_ctx *ctx, const char *question, bool def,
	       struct kf_error *err, bool *ret_yes);

#endif
