/* cmd_util.c - what every command shares: option parsing, board lookup errors. */
#include <getopt.h>
#include <signal.h>
#include <string.h>

#include "kflash/commands.h"
#include "kflash/registry.h"
#include "kflash/select.h"
#include "kflash/util.h"

/* getopt_long over a command's argv, reporting unknown options as usage
 * errors. Returns the option, -1 at the end, or KF_EUSAGE. */
int kf_opt_next(struct kf_ctx *ctx, const char *cmd, int argc, char **argv,
		    const char *shortopts, const struct option *longopts)
{
	int c = getopt_long(argc, argv, shortopts, longopts, NULL);

	if (c == '?')
		return kf_usage_error(ctx, cmd, "%s: unknown option '%s'", cmd,
				      argv[optind - 1]);
	if (c == ':')
		return kf_usage_error(ctx, cmd, "%s: '%s' needs a value", cmd,
				      argv[optind - 1]);
	return c;
}

void kf_opt_reset(void)
{
	optind = 0;
	opterr = 0;
}

int kf_unknown_board(struct kf_ctx *ctx, struct kf_registry *reg, const char *name)
{
	return kf_select_unknown(reg, name, ctx->err);
}


int kf_load_board(struct kf_ctx *ctx, const char *name, struct kf_registry *reg,
		  struct kf_board **ret_board)
{
	int r = kf_registry_load(ctx->ops, ctx->config_dir, reg, ctx->err);

	if (r < 0)
		return r;
	*ret_board = kf_registry_find(reg, name);
	return *ret_board ? 0 : kf_unknown_board(ctx, reg, name);
}

int kf_cmd_signalled(struct kf_ctx *ctx, const char *done, struct kf_error *err)
{
	int sig = kf_os_take_signal(ctx->ops);

	if (!sig)
		return 0;
	if (done)
		kf_error_set(err, KF_EINTERRUPTED, "stopped by signal %d (%s), after "
			     "%s", sig, strsignal(sig), done);
	else
		kf_error_set(err, KF_EINTERRUPTED, "stopped by signal %d (%s): "
			     "nothing was changed", sig, strsignal(sig));
	err->signal = sig;
	return KF_EINTERRUPTED;
}

int kf_cmd_save(struct kf_ctx *ctx, const struct kf_registry *reg, const char *done,
		struct kf_error *err)
{
	int r = kf_cmd_signalled(ctx, NULL, err);

	if (r == 0)
		r = kf_registry_save(ctx->ops, reg, err);
	if (r == 0)
		r = kf_cmd_signalled(ctx, done, err);
	return r;
}
