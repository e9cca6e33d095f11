/* cmd_pending.c - commands whose work lands in later issues: they accept
 * exactly their documented options (so scripts fail early on a typo) and
 * say plainly that the command is not built yet. Each moves to its own
 * cmd_<name>.c when it is built. */
#include <getopt.h>
#include <string.h>

#include "kflash/commands.h"

enum { NAME_NONE, NAME_ONE, NAME_SOME_OR_ALL, NAME_OPTIONAL };

struct pending {
	const char *cmd;
	const char *shortopts;
	const struct option *longopts;
	int names;
};

static int pending_run(struct kf_ctx *ctx, const struct pending *p, int argc,
		       char **argv)
{
	bool all = false;
	int c, n;

	optind = 0;	/* GNU: full reset between commands */
	opterr = 0;
	while ((c = getopt_long(argc, argv, p->shortopts, p->longopts, NULL)) != -1) {
		if (c == '?' || c == ':')
			return kf_usage_error(ctx, p->cmd, "%s: %s '%s'", p->cmd,
					      c == ':' ? "missing value for"
						       : "unknown option",
					      argv[optind - 1]);
		if (c == 'A')
			all = true;
	}
	n = argc - optind;
	switch (p->names) {
	case NAME_NONE:
		if (n > 0)
			return kf_usage_error(ctx, p->cmd, "%s takes no arguments",
					      p->cmd);
		break;
	case NAME_ONE:
		if (n != 1)
			return kf_usage_error(ctx, p->cmd, "%s needs one board name",
					      p->cmd);
		break;
	case NAME_SOME_OR_ALL:
		if (n == 0 && !all)
			return kf_usage_error(ctx, p->cmd,
					      "%s needs board names or --all", p->cmd);
		if (n > 0 && all)
			return kf_usage_error(ctx, p->cmd,
					      "give board names or --all, not both");
		break;
	default:
		if (n > 2)
			return kf_usage_error(ctx, p->cmd, "too many arguments");
		break;
	}
	kf_error_set(ctx->err, KF_ENOTYET, "kflash %s is not built yet", p->cmd);
	kf_error_cause(ctx->err, "this version of kflash ships the command line, "
		       "the simulator and the ops layer; the command's work lands "
		       "in a later release");
	return KF_ENOTYET;
}

static const struct option no_opts[] = { { 0, 0, 0, 0 } };








int kf_cmd_flash(struct kf_ctx *ctx, int argc, char **argv)
{
	static const struct option o[] = {
		{ "all", no_argument, 0, 'A' },
		{ "outdated", no_argument, 0, 'o' },
		{ "skip-menuconfig", no_argument, 0, 's' },
		{ "method", required_argument, 0, 'M' },
		{ "no-fallback", no_argument, 0, 'F' },
		{ "rebuild", no_argument, 0, 'r' },
		{ "dry-run", no_argument, 0, 'D' },
		{ 0, 0, 0, 0 },
	};
	static const struct pending p = { "flash", ":s", o, NAME_SOME_OR_ALL };
	return pending_run(ctx, &p, argc, argv);
}

int kf_cmd_doctor(struct kf_ctx *ctx, int argc, char **argv)
{
	static const struct pending p = { "doctor", "", no_opts, NAME_NONE };
	return pending_run(ctx, &p, argc, argv);
}

