/* commands.h - one function per kflash command; the CLI table in cli.c
 * dispatches to them. Each parses its own options from argv (argv[0] is the
 * command name) and returns 0 or a negative error with ctx->err filled. */
#ifndef KFLASH_COMMANDS_H
#define KFLASH_COMMANDS_H

#include "kflash/kflash.h"

struct kf_command {
	const char *name;
	const char *args;	/* "NAME... | --all [--rebuild]" */
	const char *summary;	/* one line for kflash --help */
	const char *help;	/* options, for kflash COMMAND --help */
	int (*run)(struct kf_ctx *ctx, int argc, char **argv);
};

/* NULL-terminated table, in the order --help lists them */
extern const struct kf_command kf_commands[];

const struct kf_command *kf_command_find(const char *name);

int kf_cmd_list(struct kf_ctx *ctx, int argc, char **argv);
int kf_cmd_add(struct kf_ctx *ctx, int argc, char **argv);
int kf_cmd_remove(struct kf_ctx *ctx, int argc, char **argv);
int kf_cmd_exclude(struct kf_ctx *ctx, int argc, char **argv);
int kf_cmd_include(struct kf_ctx *ctx, int argc, char **argv);
int kf_cmd_config(struct kf_ctx *ctx, int argc, char **argv);
int kf_cmd_build(struct kf_ctx *ctx, int argc, char **argv);
int kf_cmd_flash(struct kf_ctx *ctx, int argc, char **argv);
int kf_cmd_rollback(struct kf_ctx *ctx, int argc, char **argv);
int kf_cmd_doctor(struct kf_ctx *ctx, int argc, char **argv);
int kf_cmd_settings(struct kf_ctx *ctx, int argc, char **argv);
int kf_cmd_replay(struct kf_ctx *ctx, int argc, char **argv);
int kf_cmd_report(struct kf_ctx *ctx, int argc, char **argv);
/* kflash help [COMMAND]: the usage, or a command's, as --help prints it */
int kf_cmd_help(struct kf_ctx *ctx, int argc, char **argv);
/* the interactive menu (kflash with no command, on a terminal) */
int kf_menu_run(struct kf_ctx *ctx);

/* Usage error for a command: message plus "see kflash CMD --help". */
int kf_usage_error(struct kf_ctx *ctx, const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

struct option;
struct kf_registry;
/* getopt_long over a command's argv; unknown options and missing values
 * become usage errors. Returns the option, -1 at the end, or KF_EUSAGE.
 * Call kf_opt_reset() first. */
int kf_opt_next(struct kf_ctx *ctx, const char *cmd, int argc, char **argv,
		const char *shortopts, const struct option *longopts);
void kf_opt_reset(void);
/* "no registered board is called NAME", listing the registered ones. */
int kf_unknown_board(struct kf_ctx *ctx, struct kf_registry *reg, const char *name);
/* A signal kflash got that no step has taken yet, as err: KF_EINTERRUPTED
 * (exit 128+N), or 0 when none came. done says what the command had
 * already changed when it came ("ebb was registered"), or NULL for
 * nothing. Commands whose effects are a file or two take it at each
 * commit point: a Ctrl+C before a write cancels it, one that came while
 * it was written (the file is then the new one, whole) still ends the
 * command with 128+N, saying what was done. */
int kf_cmd_signalled(struct kf_ctx *ctx, const char *done, struct kf_error *err);
/* Saves reg between two such checks: nothing is written after a signal,
 * and one that came while it was written is reported with done. */
int kf_cmd_save(struct kf_ctx *ctx, const struct kf_registry *reg, const char *done,
		struct kf_error *err);
struct kf_board;
/* Loads the registry into *reg and finds NAME in it (the caller releases
 * reg whatever the result). */
int kf_load_board(struct kf_ctx *ctx, const char *name, struct kf_registry *reg,
		  struct kf_board **ret_board);

#endif
