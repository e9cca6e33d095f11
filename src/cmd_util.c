/* cmd_util.c - what every command shares: option parsing, board lookup errors. */
#include <getopt.h>
#include <signal.h>
#include <string.h>

#include "kflash/commands.h"
#include "kflash/registry.h"
#include "kflash/select.h"
#include "kflash/util.h"

/* A short option's cluster ("-rf") that holds c: getopt stays on it while
 * it is inside (argv[optind]) and steps past it after its last letter. */
static const char *cluster_of(int argc, char **argv, int c)
{
	const char *a = optind < argc ? argv[optind] : NULL;

	if (a && a[0] == '-' && a[1] != '-' && strchr(a + 1, c))
		return a;
	return argv[optind - 1];
}

/* What getopt refused, named as it was typed: "unknown option '-rf'", a
 * near miss of a long one with the one it was probably meant to be. */
static int bad_option(struct kf_ctx *ctx, const char *cmd, int argc, char **argv,
		      const struct option *longopts)
{
	const char *a = argv[optind - 1], *near = NULL;
	size_t len, n;

	if (optopt && (a[0] != '-' || a[1] != '-')) {
		a = cluster_of(argc, argv, optopt);
		if (a[0] == '-' && a[1] == optopt)
			return kf_usage_error(ctx, cmd, "%s: unknown option '%s'", cmd, a);
		return kf_usage_error(ctx, cmd, "%s: unknown option '-%c' (in '%s')", cmd,
				      optopt, a);
	}
	len = strcspn(a + 2, "=");
	for (n = 0; longopts[n].name; n++)
		if (strlen(longopts[n].name) == len && strncmp(a + 2, longopts[n].name, len) == 0 &&
		    longopts[n].has_arg == no_argument)
			return kf_usage_error(ctx, cmd, "%s: --%s takes no value", cmd,
					      longopts[n].name);
	{
		const char **names = kf_xcalloc(n + 1, sizeof(*names));
		char *typed = kf_xstrndup(a + 2, len);
		size_t i;
		int r;

		for (i = 0; i < n; i++)
			names[i] = longopts[i].name;
		near = kf_near_miss(typed, names, n);
		if (near)
			r = kf_usage_error(ctx, cmd, "%s: unknown option '%s'; did you mean "
					   "'--%s'?", cmd, a, near);
		else
			r = kf_usage_error(ctx, cmd, "%s: unknown option '%s'", cmd, a);
		free(typed);
		free(names);
		return r;
	}
}

/* getopt_long over a command's argv, reporting unknown options, missing
 * values and values that look like options (add --name -rf: the name was
 * forgotten) as usage errors; --name=-rf says it is meant. Returns the
 * option, -1 at the end, or KF_EUSAGE. */
int kf_opt_next(struct kf_ctx *ctx, const char *cmd, int argc, char **argv,
		    const char *shortopts, const struct option *longopts)
{
	int li = -1;
	int c = getopt_long(argc, argv, shortopts, longopts, &li);

	if (c == '?')
		return bad_option(ctx, cmd, argc, argv, longopts);
	if (c == ':')
		return kf_usage_error(ctx, cmd, "%s: %s needs a value", cmd,
				      argv[optind - 1]);
	if (c != -1 && optarg && optarg == argv[optind - 1] && optarg[0] == '-' &&
	    optarg[1]) {
		char name[64];

		if (li >= 0)
			snprintf(name, sizeof(name), "--%s", longopts[li].name);
		else
			snprintf(name, sizeof(name), "-%c", c);
		return kf_usage_error(ctx, cmd, "%s: %s needs a value; '%s' looks like "
				      "an option", cmd, name, optarg);
	}
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
		sig = ctx->signal;
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
