/* prompt.h - asking the user a question on the terminal. */
#ifndef KFLASH_PROMPT_H
#define KFLASH_PROMPT_H

#include "kflash/kflash.h"

/* Asks question (with [default] when given) on stderr through the output
 * module and reads one line from stdin through the ops table. Returns 0
 * with a malloc'd answer (the default for an empty line), -EPIPE at end of
 * input, KF_EINTERRUPTED (ctx->err filled) when a signal such as Ctrl+C
 * arrives while waiting, or KF_EFAILED (ctx->err names the errno) when
 * stdin cannot be read. */
int kf_prompt(struct kf_ctx *ctx, const char *question, const char *def,
	      char **ret_answer);

/* yes/no with a default; -y answers yes without asking. */
int kf_confirm(struct kf_ctx *ctx, const char *question, bool def, bool *ret_yes);

#endif
