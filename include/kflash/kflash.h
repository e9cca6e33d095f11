/* kflash.h - the context every command runs in. */
#ifndef KFLASH_KFLASH_H
#define KFLASH_KFLASH_H

#include <stdbool.h>

#include "kflash/error.h"
#include "kflash/ops.h"
#include "kflash/output.h"

#ifndef KFLASH_VERSION
#define KFLASH_VERSION "0.1.0"
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
};

/* The config dir by the contract's precedence; NULL when none can be found
 * (no HOME). The result is malloc'd. */
char *kf_config_dir_resolve(const struct kf_ops *ops, const char *option);

/* The whole command line: parses global options, dispatches the command,
 * renders any error, prints the --json document. Returns the exit code. */
int kf_cli_main(const struct kf_ops *ops, int argc, char **argv);

#endif
