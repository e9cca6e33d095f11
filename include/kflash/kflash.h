/* kflash.h - the context every command runs in. */
#ifndef KFLASH_KFLASH_H
#define KFLASH_KFLASH_H

#include <stdbool.h>

#include "kflash/error.h"
#include "kflash/ops.h"
#include "kflash/output.h"

/* build/version.h overrides these (see the Makefile and self.h) */
#ifndef KFLASH_VERSION
#define KFLASH_VERSION "0.1.0"
#endif
#ifndef KFLASH_COMMIT
#define KFLASH_COMMIT ""
#endif
#ifndef KFLASH_SOURCE_DIR
#define KFLASH_SOURCE_DIR ""
#endif

/* What a command needs: the door to the world, the user's screen, where to
 * put its error, and the global options. No globals: tests build their own. */
struct kf_ctx {
	const struct kf_ops *ops;
	struct kf_out *out;
	struct kf_error *err;
	char *config_dir;	/* resolved: --config-dir, $KFLASH_CONFIG_DIR, ... */
	bool yes;		/* -y: assume yes to questions */
	bool force;		/* --force: skip refusals the user may override */
	bool interactive;	/* stdin and stderr are a terminal */
	struct kf_recorder *rec;	/* the session being recorded, or NULL */
	int exit_code;		/* a command that succeeds with its own code
				 * (kflash replay: the replayed run's) */
	/* a signal a step took from the ops table and could not act on (a
	 * look whose child it stopped): the command's all the same, which
	 * then ends with 128+N (kf_run_signalled, kf_cmd_signalled and the
	 * command line read it) */
	int signal;
};

/* Keeps sig (0: none) as ctx's signal if it is the first. */
static inline void kf_ctx_heard(struct kf_ctx *ctx, int sig)
{
	if (sig && !ctx->signal)
		ctx->signal = sig;
}

/* The config dir by the contract's precedence; NULL when none can be found
 * (no HOME). The result is malloc'd. */
char *kf_config_dir_resolve(const struct kf_ops *ops, const char *option);

/* The whole command line: parses global options, dispatches the command,
 * renders any error, prints the --json document. Returns the exit code. */
int kf_cli_main(const struct kf_ops *ops, int argc, char **argv);

struct kf_cli_opts {
	const struct kf_ops *ops;
	int argc;
	char **argv;
	/* kflash replay: the run is not recorded again, and tee hears its
	 * output (see output.h) */
	bool replaying;
	kf_out_tee_fn *tee;
	void *tee_data;
};

/* kf_cli_main with the options a replay needs. */
int kf_cli_run(const struct kf_cli_opts *opts);

#endif
