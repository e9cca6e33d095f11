/* cmd_boards.c - list, add, remove, exclude and include: the board registry
 * as a printer owner sees it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "kflash/build.h"
#include "kflash/commands.h"
#include "kflash/discovery.h"
#include "kflash/prompt.h"
#include "kflash/registry.h"
#include "kflash/util.h"
#include "kflash/versions.h"

/* ---- list ------------------------------------------------------------------- */

/* The connected device that is board b, or NULL; *ret_count says how many
 * are (more than one must never be flashed) and *ret_maybe names a device
 * only its USB port points to (KF_MATCH_PORT), for the user to see. */
static struct kf_device *board_device(const struct kf_board *b, struct kf_devlist *l,
				      size_t *ret_count, struct kf_device **ret_maybe)
{
	struct kf_device *found = NULL, *maybe = NULL;
	size_t i, n = 0;

	for (i = 0; i < l->n; i++) {
		enum kf_match m = kf_board_match(b, &l->devs[i]);

		if (m == KF_MATCH_PORT && !maybe)
			maybe = &l->devs[i];
		if (m != KF_MATCH_YES)
			continue;
		n++;
		if (!found)
			found = &l->devs[i];
	}
	if (ret_count)
		*ret_count = n;
	if (ret_maybe)
		*ret_maybe = found ? NULL : maybe;
	return found;
}

/* The registered board that is (or, by its port, may be) d, or NULL. */
static const struct kf_board *device_board(const struct kf_device *d,
					   const struct kf_registry *reg)
{
	size_t i;

	for (i = 0; i < reg->n_boards; i++)
		if (kf_board_match(&reg->boards[i], d) != KF_MATCH_NO)
			return &reg->boards[i];
	return NULL;
}

static bool device_registered(const struct kf_device *d, const struct kf_registry *reg)
{
	return device_board(d, reg) != NULL;
}

/* Not offered for registering: blocked, or a caution such as a probe in
 * its bootloader that no registered board claims. */
static const char *not_flashable(const struct kf_device *d, const struct kf_registry *reg)
{
	if (d->blocked)
		return d->blocked;
	if (d->caution && !device_registered(d, reg))
		return d->caution;
	return NULL;
}

static const char *device_path(const struct kf_device *d)
{
	return d->tty.by_id ? d->tty.by_id : d->tty.devnode;
}

/* Firmware versions: the host's Klipper and what Moonraker says each MCU
 * runs. Either may be unknown; nothing else depends on them. */
struct versions {
	char *host;
	struct kf_mcu_version *mcus;
	size_t n;
	bool moonraker;
};

static void versions_load(struct kf_ctx *ctx, struct kf_registry *reg, struct versions *v)
{
	char *kdir = NULL;
	memset(v, 0, sizeof(*v));
	/* a missing checkout is not list's failure: not reported */
	if (kf_klipper_dir(ctx, &reg->settings, NULL, &kdir) == 0)
		(void)kf_klipper_version(ctx, kdir, &v->host);
	free(kdir);
	if (reg->n_boards)
		v->moonraker = kf_moonraker_mcus_all(ctx->ops, reg->settings.moonraker_url,
						     reg->settings.moonraker_api_key,
						     &v->mcus, &v->n) == 0;
}

static void versions_release(struct versions *v)
{
	free(v->host);
	kf_mcu_versions_free(v->mcus, v->n);
}

static const char *board_version(const struct kf_board *b, const struct versions *v)
{
	bool amb;

	return kf_board_version(b, v->mcus, v->n, &amb);
}

static json_t *list_json(struct kf_registry *reg, struct kf_devlist *devs,
			 const struct versions *ver)
{
	json_t *boards = json_array(), *unreg = json_array(), *blocked = json_array();
	size_t i;

	for (i = 0; i < reg->n_boards; i++) {
		const struct kf_board *b = &reg->boards[i];
		size_t count;
		struct kf_device *maybe;
		struct kf_device *d = board_device(b, devs, &count, &maybe);
		const char *v = board_version(b, ver);

		json_array_append_new(boards, json_pack(
			"{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:s?, s:s?, s:s?, s:s?, s:o, s:i, s:s?}",
			"name", b->name, "key", b->key, "mcu", b->mcu,
			"pattern", b->pattern,
			"method", kf_method_name(kf_board_method(b, &reg->settings)),
			"flashable", b->flashable, "connected", d != NULL,
			"path", d ? device_path(d) : NULL,
			"devnode", d ? d->tty.devnode : NULL,
			"mode", d ? kf_mode_name(d->mode) : NULL,
			"version", v,
			"outdated", v && ver->host ? json_boolean(strcmp(v, ver->host) != 0)
						   : json_null(),
			"matches", (int)count,
			"port_match", maybe ? device_path(maybe) : NULL));
	}
	for (i = 0; i < devs->n; i++) {
		const struct kf_device *d = &devs->devs[i];
		const char *why = not_flashable(d, reg);

		if (why)
			json_array_append_new(blocked, json_pack(
				"{s:s, s:s, s:s?, s:s?, s:s?, s:s}", "path", device_path(d),
				"devnode", d->tty.devnode, "vid", d->tty.vid,
				"pid", d->tty.pid, "product", d->product, "reason", why));
		else if (!device_registered(d, reg))
			json_array_append_new(unreg, json_pack(
				"{s:s, s:s, s:s, s:s, s:s}", "path", device_path(d),
				"devnode", d->tty.devnode, "mcu", d->mcu,
				"serial", d->serial, "mode", kf_mode_name(d->mode)));
	}
	return json_pack("{s:s?, s:b, s:o, s:o, s:o}", "host_version", ver->host,
			 "moonraker", ver->moonraker, "boards", boards,
			 "unregistered", unreg, "blocked", blocked);
}

static void list_human(struct kf_ctx *ctx, struct kf_registry *reg,
		       struct kf_devlist *devs, const struct versions *ver)
{
	struct kf_out *o = ctx->out;
	size_t i;
	bool any = false;

	if (reg->n_boards == 0)
		kf_out_result(o, "No boards registered yet.");
	else
		kf_out_result(o, "Registered boards (host Klipper %s%s):",
			      ver->host ? ver->host : "unknown",
			      ver->moonraker ? "" : "; Moonraker not answering, "
			      "board versions unknown");
	for (i = 0; i < reg->n_boards; i++) {
		const struct kf_board *b = &reg->boards[i];
		size_t count;
		struct kf_device *maybe;
		struct kf_device *d = board_device(b, devs, &count, &maybe);
		char state[64];

		if (!d && maybe)
			snprintf(state, sizeof(state), "in Katapult?");
		else if (!d)
			snprintf(state, sizeof(state), "not connected");
		else if (count > 1)
			snprintf(state, sizeof(state), "%zu devices match!", count);
		else
			snprintf(state, sizeof(state), "connected (%s)", kf_mode_name(d->mode));
		kf_out_result(o, "  %-16s %-13s %-22s %s%s", b->key, b->mcu, state,
			      b->flashable ? "" : "[excluded] ",
			      d ? device_path(d) : "");
		{
			const char *v = board_version(b, ver);

			kf_out_result(o, "  %-16s \"%s\" via %s, firmware %s%s", "", b->name,
				      kf_method_name(kf_board_method(b, &reg->settings)),
				      v ? v : "unknown",
				      v && ver->host && strcmp(v, ver->host) != 0
				      ? "  (behind the host: kflash flash --all --outdated)" : "");
		}
		if (maybe) {
			char *port = kf_port_label(maybe->port);

			kf_out_result(o, "  %-16s %s at its USB port %s may be it (not "
				      "flashed before kflash has seen it go into Katapult)",
				      "", device_path(maybe), port);
			free(port);
		}
	}
	for (i = 0; i < devs->n; i++) {
		const struct kf_device *d = &devs->devs[i];

		if (not_flashable(d, reg) || device_registered(d, reg))
			continue;
		if (!any)
			kf_out_result(o, "\nConnected, not registered:");
		any = true;
		kf_out_result(o, "  %s  (%s, in %s)", device_path(d), d->mcu,
			      d->mode == KF_MODE_KLIPPER ? "Klipper" : "Katapult");
		kf_out_result(o, "      add it: kflash add --device %s --name NAME", d->name);
	}
	any = false;
	for (i = 0; i < devs->n; i++) {
		const struct kf_device *d = &devs->devs[i];
		const char *why = not_flashable(d, reg);

		if (!why)
			continue;
		if (!any)
			kf_out_result(o, "\nNot flashable by kflash:");
		any = true;
		kf_out_result(o, "  %s", device_path(d));
		kf_out_result(o, "      %s", why);
	}
}

int kf_cmd_list(struct kf_ctx *ctx, int argc, char **argv)
{
	static const struct option o[] = { { 0, 0, 0, 0 } };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_devlist devs = KF_DEVLIST_INIT;
	int c, r;

	kf_opt_reset();
	while ((c = kf_opt_next(ctx, "list", argc, argv, "", o)) != -1)
		if (c < 0)
			return c;
	if (optind < argc)
		return kf_usage_error(ctx, "list", "list takes no arguments");
	r = kf_registry_load(ctx->ops, ctx->config_dir, &reg, ctx->err);
	if (r < 0)
		goto out;
	r = kf_discover(ctx->ops, &devs, ctx->err);
	if (r < 0)
		goto out;
	{
		struct versions ver;

		versions_load(ctx, &reg, &ver);
		if (ctx->out->json)
			kf_out_set_json(ctx->out, list_json(&reg, &devs, &ver));
		else
			list_human(ctx, &reg, &devs, &ver);
		versions_release(&ver);
	}
out:
	kf_devlist_release(&devs);
	kf_registry_release(&reg);
	return r;
}

/* ---- add -------------------------------------------------------------------- */

/* The device the user named: by-id path or basename, or any path that
 * resolves to the same tty node. */
static struct kf_device *find_device(struct kf_ctx *ctx, struct kf_devlist *l,
				     const char *arg)
{
	char *real = NULL;
	size_t i;

	for (i = 0; i < l->n; i++) {
		struct kf_device *d = &l->devs[i];

		if (strcmp(arg, d->name) == 0 || (d->tty.by_id && strcmp(arg, d->tty.by_id) == 0) ||
		    strcmp(arg, d->tty.devnode) == 0 ||
		    (d->tty.by_path && strcmp(arg, d->tty.by_path) == 0))
			return d;
	}
	/* any other path to the same node: compare where both lead */
	if (strchr(arg, '/') && kf_os_realpath(ctx->ops, arg, &real) == 0) {
		for (i = 0; i < l->n; i++) {
			char *node = NULL;
			bool same = kf_os_realpath(ctx->ops, l->devs[i].tty.devnode,
						   &node) == 0 && strcmp(real, node) == 0;

			free(node);
			if (same) {
				free(real);
				return &l->devs[i];
			}
		}
		free(real);
	}
	return NULL;
}

struct add_opts {
	const char *name, *device, *mcu, *method;
	bool no_menuconfig;
};

static int no_such_device(struct kf_ctx *ctx, struct kf_devlist *l, const char *arg)
{
	size_t i;
	bool any = false;

	kf_error_set(ctx->err, KF_EINPUT, "no connected serial device matches '%s'", arg);
	for (i = 0; i < l->n; i++) {
		if (l->devs[i].blocked)
			continue;
		if (!any)
			kf_error_cause(ctx->err, "connected Klipper/Katapult devices "
				       "are listed by kflash list");
		any = true;
	}
	if (!any)
		kf_error_cause(ctx->err, "no Klipper or Katapult board is connected by USB");
	kf_error_step(ctx->err, "kflash list");
	kf_error_step(ctx->err, "kflash add --device usb-Klipper_<mcu>_<serial>-if00 "
		      "--name NAME");
	return KF_EINPUT;
}

/* Refuses a device that is not a board kflash may register, or may be
 * one registered already. */
static int add_refused(struct kf_ctx *ctx, const struct kf_registry *reg,
		       const struct kf_device *d)
{
	const struct kf_board *o;

	if (d->blocked) {
		kf_error_set(ctx->err, KF_EINPUT, "%s cannot be registered: %s",
			     d->name, d->blocked);
		return KF_EINPUT;
	}
	o = device_board(d, reg);
	if (o && kf_board_match(o, d) == KF_MATCH_PORT) {
		char *port = kf_port_label(d->port);

		kf_error_set(ctx->err, KF_EINPUT, "%s may be '%s' in Katapult: the same "
			     "MCU at the USB port (%s) where kflash saw it", d->name,
			     o->key, port);
		kf_error_cause(ctx->err, "its firmware sets its own USB serial, so in "
			       "Katapult it shows its chip id instead");
		kf_error_step(ctx->err, "if it is %s: power-cycle it so it starts "
			      "Klipper, then kflash flash %s", o->key, o->key);
		kf_error_step(ctx->err, "if it is another board: kflash remove %s, "
			      "then add both while they run Klipper", o->key);
		free(port);
		return KF_EINPUT;
	}
	if (d->caution && !o) {
		kf_error_set(ctx->err, KF_EINPUT, "%s cannot be registered: %s",
			     d->name, d->caution);
		kf_error_step(ctx->err, "if it is a board of yours: power-cycle it so it "
			      "starts Klipper and add it then (kflash follows it into "
			      "Katapult from there)");
		return KF_EINPUT;
	}
	return 0;
}

/* Two boards whose firmware sets the same USB serial (Klipper's default
 * "12345") cannot be told apart by name: refuse before either is flashed. */
static int add_ambiguous(struct kf_ctx *ctx, const struct kf_devlist *devs,
			 const struct kf_device *d, const char *pattern)
{
	size_t i, n = 0;

	for (i = 0; i < devs->n; i++)
		n += kf_pattern_matches(pattern, &devs->devs[i]);
	if (n <= 1)
		return 0;
	kf_error_set(ctx->err, KF_EINPUT, "%zu connected %s devices show the USB "
		     "serial %s; kflash cannot tell them apart", n, d->mcu, d->serial);
	kf_error_cause(ctx->err, "their firmware sets the same USB serial number "
		       "instead of the chip id");
	kf_error_step(ctx->err, "give each its own: in make menuconfig, \"Enable "
		      "extra low-level configuration options\", then USB ids: \"USB "
		      "serial number from CHIPID\"; flash it, then kflash add");
	return KF_EINPUT;
}

static int add_board(struct kf_ctx *ctx, struct kf_registry *reg,
		     const struct kf_devlist *devs, struct kf_device *d,
		     const struct add_opts *a)
{
	struct kf_board b = { 0 };
	size_t i;
	int r;

	r = add_refused(ctx, reg, d);
	if (r < 0)
		return r;
	if (a->mcu && strcmp(a->mcu, d->mcu) != 0) {
		kf_error_set(ctx->err, KF_EINPUT, "--mcu %s does not match the device, "
			     "which reports %s", a->mcu, d->mcu);
		kf_error_step(ctx->err, "kflash add --device %s --name \"%s\" --mcu %s",
			      d->name, a->name, d->mcu);
		return KF_EINPUT;
	}
	r = kf_name_check(a->name, ctx->err);
	if (r < 0)
		return r;
	if (kf_registry_find(reg, a->name)) {
		kf_error_set(ctx->err, KF_EINPUT, "a board called '%s' is already "
			     "registered", a->name);
		kf_error_step(ctx->err, "choose another --name");
		return KF_EINPUT;
	}
	b.method = KF_METHOD_DEFAULT;
	if (a->method && kf_method_parse(a->method, &b.method) < 0)
		return kf_usage_error(ctx, "add", "--method must be katapult or "
				      "make-flash, not '%s'", a->method);
	b.pattern = kf_pattern_for(d->mcu, d->serial);
	if (add_ambiguous(ctx, devs, d, b.pattern) < 0) {
		free(b.pattern);
		return KF_EINPUT;
	}
	for (i = 0; i < reg->n_boards; i++) {
		const struct kf_board *o = &reg->boards[i];

		if (kf_board_match(o, d) == KF_MATCH_YES ||
		    kf_patterns_overlap(o->pattern, b.pattern)) {
			kf_error_set(ctx->err, KF_EINPUT, "%s is already registered "
				     "as '%s' (pattern %s)", d->name, o->name, o->pattern);
			kf_error_step(ctx->err, "kflash remove %s   (to register it anew)",
				      o->key);
			free(b.pattern);
			return KF_EINPUT;
		}
	}
	b.key = kf_registry_new_key(reg, a->name);
	b.name = (char *)a->name;
	b.mcu = d->mcu;
	b.flashable = true;
	b.port = d->port;
	kf_registry_add(reg, &b);
	{
		char *done = kf_asprintf("%s was registered as '%s'", d->name, b.key);

		r = kf_cmd_save(ctx, reg, done, ctx->err);
		free(done);
	}
	if (r == 0) {
		kf_out_result(ctx->out, "Registered %s as '%s' (%s, pattern %s)",
			      d->name, b.key, d->mcu, b.pattern);
		if (kf_board_port_only(&b) && d->mode == KF_MODE_KLIPPER) {
			char *port = d->port ? kf_port_label(d->port) : NULL;

			kf_out_warn(ctx->out, "%s's USB serial (%s) is set in its firmware, "
				    "not its chip id, so in Katapult it shows under another "
				    "name. kflash can match it there only by its USB port%s%s%s "
				    "until its first flash, when it learns that name; until "
				    "then, flash it while it runs Klipper, and if you move it "
				    "to another USB port, run kflash add again (kflash remove "
				    "%s first)", b.key, d->serial, port ? " (" : "",
				    port ? port : "", port ? ")" : "", b.key);
			free(port);
		}
		if (!ctx->interactive || a->no_menuconfig)
			kf_out_info(ctx->out, "Next: kflash config %s   (its firmware "
				    "settings), then kflash flash %s", b.key, b.key);
		if (ctx->out->json)
			kf_out_set_json(ctx->out, json_pack(
				"{s:{s:s, s:s, s:s, s:s, s:s}}", "added", "key", b.key,
				"name", a->name, "mcu", d->mcu, "pattern", b.pattern,
				"method", kf_method_name(b.method)));
	}
	free(b.key);
	free(b.pattern);
	return r;
}

/* The wizard: pick a device, name it, choose the method. */
static int add_wizard(struct kf_ctx *ctx, struct kf_registry *reg,
		      struct kf_devlist *devs, struct add_opts *a,
		      struct kf_device **ret_dev, char **ret_name)
{
	struct kf_device *choices[64];
	size_t n = 0, i;
	char *ans = NULL, *def;
	int r;

	for (i = 0; i < devs->n && n < 64; i++)
		if (!not_flashable(&devs->devs[i], reg) &&
		    !device_registered(&devs->devs[i], reg))
			choices[n++] = &devs->devs[i];
	if (n == 0) {
		kf_error_set(ctx->err, KF_EINPUT, "no unregistered Klipper or "
			     "Katapult board is connected");
		kf_error_cause(ctx->err, "every connected board is registered, or "
			       "the board is not connected by USB");
		kf_error_step(ctx->err, "kflash list");
		return KF_EINPUT;
	}
	kf_out_say(ctx->out, "Unregistered boards:\n");
	for (i = 0; i < n; i++)
		kf_out_say(ctx->out, "  %zu) %s  (%s, in %s)\n", i + 1,
			   choices[i]->name, choices[i]->mcu,
			   choices[i]->mode == KF_MODE_KLIPPER ? "Klipper" : "Katapult");
	for (;;) {
		char *end;
		long k;
		bool ok;

		r = kf_prompt(ctx, "Board number", n == 1 ? "1" : NULL, ctx->err, &ans);
		if (r < 0)
			return r;

		k = strtol(ans, &end, 10);
		ok = end != ans && *end == '\0' && k >= 1 && (size_t)k <= n;
		free(ans);
		ans = NULL;
		if (ok) {
			*ret_dev = choices[k - 1];
			break;
		}
		kf_out_say(ctx->out, "  please answer 1 to %zu\n", n);
	}
	kf_out_say(ctx->out, "MCU: %s (from the device)\n", (*ret_dev)->mcu);
	for (;;) {
		struct kf_error e = KF_ERROR_INIT;

		r = kf_prompt(ctx, "Name for this board (e.g. Octopus Pro, EBB36)",
			      NULL, ctx->err, &ans);
		if (r < 0)
			return r;
		if (kf_name_check(ans, &e) == 0 && !kf_registry_find(reg, ans)) {
			kf_error_release(&e);
			*ret_name = ans;
			break;
		}
		kf_out_say(ctx->out, "  %s\n", e.what ? e.what : "that name is taken");
		kf_error_release(&e);
		free(ans);
	}
	def = kf_xstrdup(kf_method_name(reg->settings.default_method));
	for (;;) {
		enum kf_method m;

		r = kf_prompt(ctx, "Flash method (katapult or make-flash)", def, ctx->err,
			      &ans);
		if (r < 0)
			break;
		if (kf_method_parse(ans, &m) == 0 && m != KF_METHOD_DEFAULT) {
			/* same as the setting: follow the setting */
			a->method = strcmp(ans, def) == 0 ? "default" : (m == KF_METHOD_KATAPULT
						? "katapult" : "make-flash");
			free(ans);
			break;
		}
		free(ans);
		kf_out_say(ctx->out, "  please answer katapult or make-flash\n");
	}
	free(def);
	return r;
}

int kf_cmd_add(struct kf_ctx *ctx, int argc, char **argv)
{
	static const struct option o[] = {
		{ "name", required_argument, 0, 'n' },
		{ "device", required_argument, 0, 'd' },
		{ "mcu", required_argument, 0, 'm' },
		{ "method", required_argument, 0, 'M' },
		{ "no-menuconfig", no_argument, 0, 'N' },
		{ 0, 0, 0, 0 },
	};
	struct add_opts a = { 0 };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_devlist devs = KF_DEVLIST_INIT;
	struct kf_device *d = NULL;
	char *wizard_name = NULL;
	int c, r;

	kf_opt_reset();
	while ((c = kf_opt_next(ctx, "add", argc, argv, ":", o)) != -1) {
		switch (c) {
		case 'n': a.name = optarg; break;
		case 'd': a.device = optarg; break;
		case 'm': a.mcu = optarg; break;
		case 'M': a.method = optarg; break;
		case 'N': a.no_menuconfig = true; break;
		default: return c;
		}
	}
	if (optind < argc)
		return kf_usage_error(ctx, "add", "add takes options, not '%s'",
				      argv[optind]);
	if (a.method) {
		enum kf_method m;

		if (kf_method_parse(a.method, &m) < 0 || m == KF_METHOD_DEFAULT)
			return kf_usage_error(ctx, "add", "--method must be katapult "
					      "or make-flash, not '%s'", a.method);
	}
	if ((!a.name || !a.device) && (!ctx->interactive || ctx->out->json || a.name || a.device))
		return kf_usage_error(ctx, "add", "add needs --device and --name "
				      "(or run it on a terminal for the wizard)");
	r = kf_registry_load(ctx->ops, ctx->config_dir, &reg, ctx->err);
	if (r < 0)
		goto out;
	r = kf_discover(ctx->ops, &devs, ctx->err);
	if (r < 0)
		goto out;
	if (!a.device) {
		r = add_wizard(ctx, &reg, &devs, &a, &d, &wizard_name);
		if (r == -EPIPE) {
			r = kf_error_set(ctx->err, KF_EINPUT, "no answer: input ended");
		}
		if (r < 0)
			goto out;
		a.name = wizard_name;
	} else {
		d = find_device(ctx, &devs, a.device);
		if (!d) {
			r = no_such_device(ctx, &devs, a.device);
			goto out;
		}
	}
	r = add_board(ctx, &reg, &devs, d, &a);
	if (r == 0 && ctx->interactive && !a.no_menuconfig && !ctx->out->json) {
		/* straight on to the board's firmware settings; the board is
		 * registered whatever happens there */
		struct kf_board *b = &reg.boards[reg.n_boards - 1];
		struct kf_error e = KF_ERROR_INIT;

		r = kf_menuconfig(ctx, &reg.settings, b, &e);
		if (r == KF_EINTERRUPTED) {
			/* Ctrl+C in menuconfig ends add too, the board kept */
			kf_error_set(ctx->err, KF_EINTERRUPTED, "%s; %s is registered "
				     "without a firmware config: kflash config %s",
				     e.what, b->key, b->key);
			ctx->err->signal = e.signal;
		} else if (r < 0) {
			r = 0;
			kf_out_error(ctx->out, &e);
			kf_out_warn(ctx->out, "%s is registered without a firmware config; "
				    "run kflash config %s", b->key, b->key);
		} else {
			struct kf_kconfig cfg = KF_KCONFIG_INIT;
			char *path = NULL;

			r = 0;

			if (kf_board_config_load(ctx, b, &e, &cfg, &path) < 0) {
				/* what menuconfig saved cannot be read back: said,
				 * and the build checks it again */
				kf_out_error(ctx->out, &e);
				kf_out_warn(ctx->out, "the MCU of %s's config is not "
					    "checked yet; kflash build %s does", b->key, b->key);
			} else if (kf_kconfig_check_mcu(&cfg, b->key, b->mcu, d->mcu, path,
							false, &e) < 0) {
				kf_out_error(ctx->out, &e);
				kf_out_warn(ctx->out, "fix it before flashing: kflash config %s",
					    b->key);
			}
			kf_kconfig_release(&cfg);
			free(path);
		}
		kf_error_release(&e);
		free(e.note);
		if (r == 0) {
			char *done = kf_asprintf("%s was registered", b->key);

			r = kf_cmd_signalled(ctx, done, ctx->err);
			free(done);
		}
	}
out:
	free(wizard_name);
	kf_devlist_release(&devs);
	kf_registry_release(&reg);
	return r;
}

/* ---- remove, exclude, include ---------------------------------------------- */

static int one_name(struct kf_ctx *ctx, const char *cmd, int argc, char **argv,
		    const struct option *o, bool *purge)
{
	int c;

	kf_opt_reset();
	while ((c = kf_opt_next(ctx, cmd, argc, argv, ":", o)) != -1) {
		if (c < 0)
			return c;
		if (c == 'p' && purge)
			*purge = true;
	}
	if (argc - optind != 1)
		return kf_usage_error(ctx, cmd, "%s needs one board name", cmd);
	return optind;
}

int kf_cmd_remove(struct kf_ctx *ctx, int argc, char **argv)
{
	static const struct option o[] = {
		{ "purge", no_argument, 0, 'p' },
		{ 0, 0, 0, 0 },
	};
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_board *b;
	bool purge = false;
	char *key = NULL, *done = NULL;
	int i, r;

	i = one_name(ctx, "remove", argc, argv, o, &purge);
	if (i < 0)
		return i;
	r = kf_load_board(ctx, argv[i], &reg, &b);
	if (r < 0)
		goto out;
	key = kf_xstrdup(b->key);
	kf_registry_remove(&reg, b);
	done = kf_asprintf("%s was removed (its cached config kept)", key);
	r = kf_cmd_save(ctx, &reg, done, ctx->err);
	if (r < 0)
		goto out;
	kf_out_result(ctx->out, "Removed %s", key);
	if (purge) {
		char *cfg = kf_asprintf("%s/configs/%s/.config", ctx->config_dir, key);
		int u = kf_os_unlink(ctx->ops, cfg);

		if (u == 0)
			kf_out_result(ctx->out, "Deleted its cached config %s", cfg);
		else if (u != -ENOENT)
			kf_out_warn(ctx->out, "could not delete %s: %s", cfg, strerror(-u));
		free(done);
		done = kf_asprintf("%s was removed and its cached config %s", key,
				   u == 0 || u == -ENOENT ? "deleted" : "kept");
		r = kf_cmd_signalled(ctx, done, ctx->err);
		free(cfg);
	} else {
		kf_out_info(ctx->out, "Its cached config is kept in %s/configs/%s/ "
			    "(remove --purge deletes it)", ctx->config_dir, key);
	}
out:
	free(done);
	free(key);
	kf_registry_release(&reg);
	return r;
}

static int set_flashable(struct kf_ctx *ctx, const char *cmd, int argc, char **argv,
			 bool flashable)
{
	static const struct option o[] = { { 0, 0, 0, 0 } };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct kf_board *b;
	char *done;
	int i, r;

	i = one_name(ctx, cmd, argc, argv, o, NULL);
	if (i < 0)
		return i;
	r = kf_load_board(ctx, argv[i], &reg, &b);
	if (r < 0)
		goto out;
	if (b->flashable == flashable) {
		kf_out_result(ctx->out, "%s is already %s", b->key,
			      flashable ? "included" : "excluded");
		goto out;
	}
	b->flashable = flashable;
	done = kf_asprintf("%s was %s", b->key, flashable ? "included again" : "excluded");
	r = kf_cmd_save(ctx, &reg, done, ctx->err);
	free(done);
	if (r == 0)
		kf_out_result(ctx->out, flashable ? "%s will be flashed again"
						  : "%s is excluded: kflash will not flash it",
			      b->key);
out:
	kf_registry_release(&reg);
	return r;
}

int kf_cmd_exclude(struct kf_ctx *ctx, int argc, char **argv)
{
	return set_flashable(ctx, "exclude", argc, argv, false);
}

int kf_cmd_include(struct kf_ctx *ctx, int argc, char **argv)
{
	return set_flashable(ctx, "include", argc, argv, true);
}
