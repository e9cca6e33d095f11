/* cli.c - global options, the command table, --help and --version. */
#include <ctype.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kflash/commands.h"
#include "kflash/kflash.h"
#include "kflash/registry.h"
#include "kflash/self.h"
#include "kflash/service.h"
#include "kflash/session.h"
#include "kflash/util.h"

const struct kf_command kf_commands[] = {
	{ "list", "", "show registered boards, unregistered and blocked devices",
	  "Shows each registered board (connected or not, its mode, path and\n"
	  "firmware version), Klipper or Katapult devices not yet registered, and\n"
	  "devices kflash will not flash (probes, USB-serial chips) with why.\n",
	  kf_cmd_list },
	{ "add", "[--name N] [--device DEV | --can-uuid U [--interface IF] [--bridge]] [--mcu MCU] "
	  "[--method M] [--no-menuconfig] [--config FILE]",
	  "register a connected board",
	  "  --name N          display name (its key is derived from it)\n"
	  "  --device DEV      by-id name or path of the board's serial device\n"
	  "  --can-uuid U      a CAN node by its canbus_uuid (12 hex digits, as in\n"
	  "                    printer.cfg); needs --mcu\n"
	  "  --interface IF    the CAN interface of --can-uuid (default can0)\n"
	  "  --bridge          with --can-uuid: the board is that bus's USB-to-CAN\n"
	  "                    bridge (flashed last: its flash takes the bus down)\n"
	  "  --mcu MCU         the board's MCU, e.g. stm32f446xx (default: from DEV)\n"
	  "  --method M        katapult or make-flash (default: the setting)\n"
	  "  --no-menuconfig   do not start menuconfig after adding\n"
	  "  --config FILE     adopt an existing config (~/klipper/.config, KIAUH's\n"
	  "                    ~/klipper-kconfigs/*.config) for the board's MCU\n"
	  "Without options on a terminal, a wizard asks for each.\n",
	  kf_cmd_add },
	{ "remove", "NAME [--purge]", "forget a board",
	  "  --purge           also delete the board's cached config and the\n"
	  "                    firmware kept for kflash rollback\n",
	  kf_cmd_remove },
	{ "exclude", "NAME", "never flash this board (kept registered)", "",
	  kf_cmd_exclude },
	{ "include", "NAME", "flash this board again", "", kf_cmd_include },
	{ "config", "NAME", "run menuconfig on the board's cached config",
	  "Edits configs/KEY/.config in the config dir; the Klipper checkout's\n"
	  "own .config is never touched.\n",
	  kf_cmd_config },
	{ "build", "NAME... | --all [--rebuild]", "build firmware without flashing",
	  "  --all             every registered, included board\n"
	  "  --rebuild         make clean and build even when up to date\n",
	  kf_cmd_build },
	{ "flash", "NAME... | --all [options]", "build and flash, restarting Klipper",
	  "  --all             every registered, included, connected board\n"
	  "  --outdated        with --all: only boards behind the host's Klipper\n"
	  "  -s, --skip-menuconfig  use the cached config as it is\n"
	  "  --method M        katapult or make-flash for this run\n"
	  "  --no-fallback     do not try make flash when Katapult fails\n"
	  "  --rebuild         make clean and build even when up to date\n"
	  "  --dry-run         print every command it would run and check the\n"
	  "                    configs as the real run does; change nothing\n",
	  kf_cmd_flash },
	{ "rollback", "NAME [--dry-run]", "flash the board's last good firmware again",
	  "Flashes the firmware kflash kept when the board last came back running\n"
	  "after a flash (with the config and Klipper version it was built from),\n"
	  "through the same checks, service window and restart as flash; nothing\n"
	  "is built. When the host's Klipper is another version than the one it\n"
	  "was built for, it asks first on a terminal and refuses elsewhere unless\n"
	  "-y. kflash list shows what it would restore.\n"
	  "  --dry-run         print every command it would run; change nothing\n",
	  kf_cmd_rollback },
	{ "doctor", "", "check this host: paths, sudo, compilers, configs, Moonraker", "",
	  kf_cmd_doctor },
	{ "settings", "[KEY [VALUE]]", "show or change settings",
	  "Keys: klipper_dir katapult_dir python service (auto, or a unit)\n"
	  "      moonraker_url moonraker_api_key default_method fallback\n"
	  "      timeout.build timeout.flash timeout.service timeout.reconnect\n"
	  "      sessions.keep (recorded sessions kept, 0 records none)\n",
	  kf_cmd_settings },
	{ "replay", "SESSION", "run a recorded session again against its recording",
	  "Runs the recorded command with every call answered from the recording\n"
	  "(nothing on this machine is touched): the same output and exit code, or\n"
	  "a report of the first call that differs and exit 1. Sessions are in\n"
	  "~/.local/state/kflash/sessions (see 'kflash --record').\n",
	  kf_cmd_replay },
	{ "report", "[SESSION]", "bundle a session for a bug report",
	  "Writes ~/kflash-report-SESSION.tar.gz from SESSION (default: the newest\n"
	  "one that failed) and prints its path. Nothing secret is in it.\n",
	  kf_cmd_report },
	{ "help", "[COMMAND]", "show the help of kflash or of a command",
	  "The same as kflash COMMAND --help; without a COMMAND, kflash --help.\n",
	  kf_cmd_help },
	{ NULL, NULL, NULL, NULL, NULL },
};

static const char global_help[] =
	"Global options:\n"
	"  --config-dir DIR  config dir (env KFLASH_CONFIG_DIR; default\n"
	"                    $XDG_CONFIG_HOME/kflash or ~/.config/kflash)\n"
	"  --json            one JSON document on stdout; progress on stderr\n"
	"  --no-color        no colour (also when NO_COLOR is set)\n"
	"  -q, --quiet       only warnings and errors\n"
	"  -v, --verbose     show full tool output\n"
	"  -y, --yes         answer yes to questions\n"
	"  --force           proceed when Moonraker gives no print state\n"
	"  --record [DIR]    record this run into DIR, or with the sessions kept in\n"
	"                    ~/.local/state/kflash/sessions (flash, rollback, build,\n"
	"                    add and config always are)\n"
	"  -h, --help        this help; a command's: kflash help COMMAND\n"
	"  --version         print the version\n"
	"An option's value follows it as --opt VALUE or --opt=VALUE; one that\n"
	"starts with '-' only as --opt=VALUE.\n";

const struct kf_command *kf_command_find(const char *name)
{
	const struct kf_command *c;

	for (c = kf_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* "unknown command 'flsh'; did you mean 'flash'?": the error and one step,
 * never the whole usage */
static int unknown_command(struct kf_ctx *ctx, const char *name)
{
	const char *names[sizeof(kf_commands) / sizeof(kf_commands[0])];
	const char *near;
	size_t n = 0;

	for (n = 0; kf_commands[n].name; n++)
		names[n] = kf_commands[n].name;
	near = kf_near_miss(name, names, n);
	if (near)
		return kf_usage_error(ctx, NULL, "unknown command '%s'; did you mean "
				      "'%s'?", name, near);
	return kf_usage_error(ctx, NULL, "unknown command '%s'", name);
}

/* to stdout for --help, to stderr beside a usage error */
static void print_usage(struct kf_out *o, bool to_stderr)
{
	const struct kf_command *c;
	struct kf_buf b = KF_BUF_INIT;

	kf_buf_addf(&b, "usage: kflash [options] COMMAND [args]\n"
		    "       kflash            (interactive menu on a terminal)\n\n"
		    "Builds and flashes Klipper firmware to the boards of this printer,\n"
		    "stopping Klipper only while it must and always starting it again.\n\n"
		    "Commands:\n");
	for (c = kf_commands; c->name; c++)
		kf_buf_addf(&b, "  %-9s %s\n", c->name, c->summary);
	kf_buf_addf(&b, "\n%s", global_help);
	kf_buf_addf(&b, "\nExit codes: 0 done, 1 failed, 2 usage or bad input, 3 refused for\n"
		    "safety, 128+N after signal N (Klipper was started again first).\n");
	kf_out_help(o, to_stderr, b.data);
	kf_buf_release(&b);
}

static void print_command_help(struct kf_out *o, const struct kf_command *c)
{
	struct kf_buf b = KF_BUF_INIT;

	kf_buf_addf(&b, "usage: kflash %s%s%s\n\n%c%s.\n", c->name, c->args[0] ? " " : "",
		    c->args, toupper((unsigned char)c->summary[0]), c->summary + 1);
	if (c->help[0])
		kf_buf_addf(&b, "\n%s", c->help);
	kf_buf_addf(&b, "\n(global options work here too; see kflash --help)\n");
	kf_out_help(o, false, b.data);
	kf_buf_release(&b);
}

/* kflash help [COMMAND]: what --help prints, on stdout */
int kf_cmd_help(struct kf_ctx *ctx, int argc, char **argv)
{
	const struct kf_command *c;

	if (argc > 2)
		return kf_usage_error(ctx, "help", "help takes one command at most");
	if (argc < 2) {
		print_usage(ctx->out, false);
		return 0;
	}
	c = kf_command_find(argv[1]);
	if (!c)
		return unknown_command(ctx, argv[1]);
	print_command_help(ctx->out, c);
	return 0;
}

int kf_usage_error(struct kf_ctx *ctx, const char *cmd, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = kf_vasprintf(fmt, ap);
	va_end(ap);
	kf_error_set(ctx->err, KF_EUSAGE, "%s", msg);
	if (cmd)
		kf_error_step(ctx->err, KF_CMD("kflash %s --help"), cmd);
	else
		kf_error_step(ctx->err, KF_CMD("kflash --help"));
	free(msg);
	return KF_EUSAGE;
}

char *kf_config_dir_resolve(const struct kf_ops *ops, const char *option)
{
	const char *env = kf_os_getenv(ops, "KFLASH_CONFIG_DIR");
	const char *xdg = kf_os_getenv(ops, "XDG_CONFIG_HOME");
	const char *home = kf_os_getenv(ops, "HOME");

	if (option && *option)
		return kf_xstrdup(option);
	if (env && *env)
		return kf_xstrdup(env);
	if (xdg && *xdg == '/')
		return kf_asprintf("%s/kflash", xdg);
	if (home && *home)
		return kf_asprintf("%s/.config/kflash", home);
	return NULL;
}

static const char *const global_options[] = {
	"--config-dir", "--json", "--no-color", "--quiet", "--verbose", "--yes", "--force",
	"--record", "--help", "--version",
};

/* an option before the command that is none of the global ones */
static int unknown_global(struct kf_ctx *ctx, const char *arg)
{
	size_t len = strcspn(arg, "=");
	char *name = kf_xstrndup(arg, len);
	const char *near = kf_near_miss(name, global_options, sizeof(global_options) /
					sizeof(global_options[0]));
	int r;

	if (near)
		r = kf_usage_error(ctx, NULL, "unknown option '%s'; did you mean '%s'?",
				   arg, near);
	else
		r = kf_usage_error(ctx, NULL, "unknown option '%s'", arg);
	free(name);
	return r;
}

struct globals {
	const char *config_dir;
	const char *record_dir;	/* --record=DIR / --record DIR */
	bool record;		/* --record */
	bool json, no_colour, yes, force, help, version;
	enum kf_verbosity verbosity;
};

/* Global options may stand before or after the command; everything else is
 * left, in order, for the command. Returns the new argc or KF_EUSAGE. */
static int take_globals(int argc, char **argv, struct globals *g, char **rest,
			const char **bad, const char **bad_value)
{
	int i, n = 0;
	bool dashdash = false;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (dashdash) {
			rest[n++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			dashdash = true;
			rest[n++] = argv[i];
		} else if (strcmp(a, "--json") == 0) {
			g->json = true;
		} else if (strcmp(a, "--no-color") == 0 || strcmp(a, "--no-colour") == 0) {
			g->no_colour = true;
		} else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			g->verbosity = KF_QUIET;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			g->verbosity = KF_VERBOSE;
		} else if (strcmp(a, "-y") == 0 || strcmp(a, "--yes") == 0) {
			g->yes = true;
		} else if (strcmp(a, "--force") == 0) {
			g->force = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			g->help = true;
		} else if (strcmp(a, "--version") == 0) {
			g->version = true;
		} else if (strcmp(a, "--config-dir") == 0) {
			/* a value that looks like an option is one forgotten */
			if (i + 1 >= argc || (argv[i + 1][0] == '-' && argv[i + 1][1])) {
				*bad = a;
				*bad_value = i + 1 < argc ? argv[i + 1] : NULL;
				return KF_EUSAGE;
			}
			g->config_dir = argv[++i];
		} else if (strncmp(a, "--config-dir=", 13) == 0) {
			g->config_dir = a + 13;
		} else if (strcmp(a, "--record") == 0) {
			g->record = true;
			/* a directory follows unless a command or option does */
			if (i + 1 < argc && argv[i + 1][0] != '-' &&
			    !kf_command_find(argv[i + 1]))
				g->record_dir = argv[++i];
		} else if (strncmp(a, "--record=", 9) == 0 && a[9]) {
			g->record = true;
			g->record_dir = a + 9;
		} else {
			rest[n++] = argv[i];
		}
	}
	rest[n] = NULL;
	return n;
}

/* Runs that touch boards or services are always recorded; others with
 * --record. */
static bool always_recorded(const struct kf_command *c)
{
	return c->run == kf_cmd_flash || c->run == kf_cmd_build || c->run == kf_cmd_add ||
	       c->run == kf_cmd_config || c->run == kf_cmd_rollback;
}

static const char *tee_to_recorder(void *data, int fd, const char *buf, size_t len,
				   size_t *ret_len)
{
	kf_recorder_write(data, fd, buf, len);
	*ret_len = len;
	return buf;
}

/* How many sessions to keep, from the registry, which is read here only
 * for that setting: a file it cannot read is the command's to report. A
 * replay makes this read too, as the recorded run did. */
static int sessions_keep(struct kf_ctx *ctx)
{
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_error e = KF_ERROR_INIT;
	int keep = KF_SESSIONS_KEEP;

	if (kf_registry_load(ctx->ops, ctx->config_dir, &reg, &e) == 0) {
		keep = reg.settings.sessions_keep;
		if (ctx->rec)
			kf_recorder_settings(ctx->rec, &reg.settings);
	}
	kf_registry_release(&reg);
	kf_error_release(&e);
	return keep;
}

/* Starts writing the session: into --record DIR, else the default place,
 * keeping the newest sessions.keep. */
static void start_recording(struct kf_ctx *ctx, const struct globals *g,
			    const struct kf_command *cmd)
{
	int keep = sessions_keep(ctx);

	if (!ctx->rec)
		return;
	if (g->record_dir)
		(void)kf_recorder_open(ctx->rec, g->record_dir);
	else if (g->record || keep > 0)
		(void)kf_recorder_open_default(ctx->rec, cmd->name, keep);
}

/* After a command (or --version): one warning when the checkout kflash was
 * built from holds another commit now (a git pull, Moonraker's update
 * manager) and it was not installed again. Outside the recording, with the
 * real table; never in a replay, which has no checkout; doctor says it as
 * one of its checks. */
static void warn_if_stale(const struct kf_cli_opts *opts, const struct globals *g,
			  const struct kf_command *cmd, struct kf_out *out)
{
	if (opts->replaying || kf_ops_check(opts->ops) < 0)
		return;
	if (g->version || (cmd && cmd->run != kf_cmd_doctor))
		kf_self_warn_stale(opts->ops, kf_self_built(), out);
}

/* No name, path, pattern or value kflash takes holds a control character,
 * bytes that are not UTF-8 or more than 4095 bytes: such an argument is
 * refused whole, before anything looks it up, quotes it or passes it on. */
static int arguments_check(struct kf_ctx *ctx, int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const unsigned char *p = (const unsigned char *)argv[i];
		size_t n = strlen(argv[i]);
		char what[64];

		/* "the value of --device": the option it follows, when it
		 * looks like one and is printable itself */
		if (i > 1 && argv[i - 1][0] == '-' && strlen(argv[i - 1]) < 32 &&
		    argv[i - 1][strspn(argv[i - 1], "-abcdefghijklmnopqrstuvwxyz_.")] == '\0')
			snprintf(what, sizeof(what), "the value of %s", argv[i - 1]);
		else
			snprintf(what, sizeof(what), "argument %d", i);
		for (; *p && *p >= 0x20 && *p != 0x7f; p++)
			;
		if (*p)
			return kf_usage_error(ctx, NULL, "%s holds a control character "
					      "(byte 0x%02x); no name, path or value kflash "
					      "takes has one", what, *p);
		if (!kf_utf8_valid(argv[i]))
			return kf_usage_error(ctx, NULL, "%s is not valid UTF-8 text", what);
		if (n > 4095)
			return kf_usage_error(ctx, NULL, "%s is %zu bytes long; kflash "
					      "takes at most 4095", what, n);
	}
	return 0;
}

/* A signal nobody took: it came after the command's last look (as its
 * result was printed, or the recording written). It is still the run's,
 * and 128+N tells the user and a script that it was heard. Taken from the
 * table the command ran on, below the recorder: a recording must not grow
 * a call that its replay would have to make (a replay answers every
 * signal from the recording, so it has none of its own). */
static int late_signal(const struct kf_cli_opts *opts)
{
	if (opts->replaying || kf_ops_check(opts->ops) < 0)
		return 0;
	return kf_os_take_signal(opts->ops);
}

static int heard_late(struct kf_error *err, int r, int sig)
{
	if (r >= 0)
		r = kf_error_set(err, KF_EINTERRUPTED, "stopped by signal %d (%s) as "
				 "kflash finished; what it printed above was done", sig,
				 strsignal(sig));
	else
		kf_error_note(err, "kflash got signal %d (%s) as it finished", sig,
			      strsignal(sig));
	err->signal = sig;
	return r;
}

int kf_cli_main(const struct kf_ops *ops, int argc, char **argv)
{
	return kf_cli_run(&(struct kf_cli_opts){ .ops = ops, .argc = argc, .argv = argv });
}

int kf_cli_run(const struct kf_cli_opts *opts)
{
	const struct kf_ops *ops = opts->ops;
	int argc = opts->argc;
	char **argv = opts->argv;
	struct globals g = { .verbosity = KF_NORMAL };
	struct kf_error err = KF_ERROR_INIT;
	struct kf_out out;
	struct kf_ctx ctx = { .ops = ops, .out = &out, .err = &err };
	const struct kf_command *cmd = NULL;
	struct kf_recorder *rec = NULL;
	char **rest, *recorded = NULL;
	const char *bad = NULL, *bad_value = NULL;
	bool terminal = false;
	int n, r = 0, code, late;

	/* the guardian is this same program, spawned by kflash itself; it
	 * has no command line of its own and never prints */
	if (argc > 1 && strcmp(argv[1], KF_GUARDIAN_ARG) == 0 && kf_ops_check(ops) == 0)
		return kf_guardian_main(ops, argc - 2, argv + 2);
	rest = kf_xcalloc((size_t)argc + 1, sizeof(*rest));
	n = take_globals(argc, argv, &g, rest, &bad, &bad_value);
	r = kf_ops_check(ops);
	/* everything from here on may be recorded: what is kept is decided
	 * once the command is known */
	if (r == 0 && !opts->replaying) {
		rec = kf_recorder_new(ops);
		kf_recorder_command(rec, argc, argv);
		ctx.ops = kf_recorder_ops(rec);
	}
	/* a table of another layout is never called: not even to ask
	 * whether stderr is a terminal */
	kf_out_init(&out, r < 0 ? NULL : ctx.ops, stdout, stderr, &(struct kf_out_opts){
		.json = g.json, .no_colour = g.no_colour,
		.verbosity = g.verbosity,
		.tee = rec ? tee_to_recorder : opts->tee,
		.tee_data = rec ? (void *)rec : opts->tee_data });
	if (rec)
		kf_recorder_set_out(rec, &out);
	if (r < 0) {
		r = kf_error_set(&err, KF_EFAILED, "kflash cannot use the '%s' ops table "
				 "(version %d; this kflash needs version %d with every "
				 "method): %s", ops->name ? ops->name : "unnamed",
				 ops->version, KF_OPS_VERSION, strerror(-r));
		kf_error_step(&err, "build kflash and that table from one checkout: "
			      KF_CMD("make"));
		goto out;
	}
	terminal = kf_os_isatty(ctx.ops, STDIN_FILENO) == 1 &&
		   kf_os_isatty(ctx.ops, STDERR_FILENO) == 1;
	if (n < 0 && bad_value) {
		r = kf_usage_error(&ctx, NULL, "%s needs a value; '%s' looks like an "
				   "option", bad, bad_value);
		goto out;
	}
	if (n < 0) {
		r = kf_usage_error(&ctx, NULL, "%s needs a value", bad);
		goto out;
	}
	if ((r = arguments_check(&ctx, argc, argv)) < 0)
		goto out;
	if (g.version) {
		if (g.json)
			kf_out_set_json(&out, json_pack("{s:s}", "version", KFLASH_VERSION));
		else
			kf_out_result(&out, "kflash %s", KFLASH_VERSION);
		goto out;
	}
	if (n == 0 && g.help) {
		print_usage(&out, false);
		goto out;
	}
	if (n == 0 && !(terminal && !g.json)) {
		print_usage(&out, true);
		code = KF_EXIT_USAGE;
		goto done;
	}
	if (n > 0 && rest[0][0] == '-') {
		r = unknown_global(&ctx, rest[0]);
		goto out;
	}
	cmd = n > 0 ? kf_command_find(rest[0]) : NULL;
	if (n > 0 && !cmd) {
		r = unknown_command(&ctx, rest[0]);
		goto out;
	}
	if (cmd && g.help) {
		print_command_help(&out, cmd);
		goto out;
	}
	/* help needs no config dir, no registry, no recording */
	if (cmd && cmd->run == kf_cmd_help) {
		r = cmd->run(&ctx, n, rest);
		goto out;
	}
	ctx.config_dir = kf_config_dir_resolve(ctx.ops, g.config_dir);
	ctx.yes = g.yes;
	ctx.force = g.force;
	ctx.interactive = terminal;
	if (!ctx.config_dir) {
		r = kf_error_set(&err, KF_EINPUT, "cannot find a config dir: HOME is not set");
		kf_error_step(&err, KF_CMD("kflash --config-dir DIR ..."));
		goto out;
	}
	if (cmd && (always_recorded(cmd) || g.record)) {
		ctx.rec = rec;
		start_recording(&ctx, &g, cmd);
	}
	if (rec && !kf_recorder_dir(rec)) {
		/* nothing is kept: the calls and the output go straight out */
		ctx.ops = ops;
		ctx.rec = NULL;
		kf_out_untee(&out);
	}
	r = cmd ? cmd->run(&ctx, n, rest) : kf_menu_run(&ctx);
out:
	code = r >= 0 && ctx.exit_code ? ctx.exit_code : kf_exit_code(r, &err);
	late = code < KF_EXIT_SIGNAL_BASE ? late_signal(opts) : 0;
	if (!late && code < KF_EXIT_SIGNAL_BASE)
		late = ctx.signal;	/* one a look took, that nobody acted on */
	if (late) {
		r = heard_late(&err, r, late);
		code = KF_EXIT_SIGNAL_BASE + late;
	}
	if (r < 0 || err.note)
		kf_out_error(&out, &err);
	kf_out_finish(&out, code, r < 0 ? &err : NULL);
done:
	if (rec) {
		/* said after the recording ends, so a replay does not say it */
		if (kf_recorder_dir(rec))
			recorded = kf_xstrdup(kf_recorder_dir(rec));
		kf_out_untee(&out);
		kf_recorder_finish(rec, code);
		if (recorded && code != 0)
			kf_out_info(&out, "This run was recorded in %s; 'kflash report' "
				    "bundles it for a bug report.", recorded);
	}
	warn_if_stale(opts, &g, cmd, &out);
	/* and one that came while the recording was written */
	late = code < KF_EXIT_SIGNAL_BASE ? late_signal(opts) : 0;
	if (late) {
		struct kf_error e = KF_ERROR_INIT;

		(void)heard_late(&e, 0, late);
		kf_out_error(&out, &e);
		kf_error_release(&e);
		code = KF_EXIT_SIGNAL_BASE + late;
	}
	kf_out_release(&out);
	kf_error_release(&err);
	free(err.note);
	free(ctx.config_dir);
	free(recorded);
	free(rest);
	return code;
}
