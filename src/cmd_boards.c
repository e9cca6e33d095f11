/* cmd_boards.c - list, add, remove, exclude and include: the board registry
 * as a printer owner sees it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "kflash/build.h"
#include "kflash/commands.h"
#include "kflash/lastgood.h"
#include "kflash/prompt.h"
#include "kflash/registry.h"
#include "kflash/transport.h"
#include "kflash/util.h"
#include "kflash/versions.h"

/* ---- list ------------------------------------------------------------------- */

/* What every transport sees: its scan, and the devices in it that are no
 * registered board (kf_seen), unregistered and blocked, in transport order. */
struct seen {
	struct kf_scans sc;
	struct kf_seen *v;
	size_t n;
};

static int seen_load(struct kf_ctx *ctx, const struct kf_registry *reg, struct seen *s,
		     struct kf_error *err)
{
	const struct kf_transport *const *tr;
	int r;

	memset(s, 0, sizeof(*s));
	for (tr = kf_transports; *tr; tr++) {
		struct kf_seen *v;
		size_t n;
		void *scan = kf_scans_get(ctx, reg, &s->sc, *tr, err, &r);

		if (!scan)
			return r;
		(*tr)->unclaimed(reg, scan, &v, &n);
		s->v = kf_xrealloc(s->v, (s->n + n + 1) * sizeof(*s->v));
		if (n)
			memcpy(&s->v[s->n], v, n * sizeof(*v));
		s->n += n;
		free(v);
	}
	return 0;
}

static void seen_release(struct seen *s)
{
	kf_seen_free(s->v, s->n);
	kf_scans_release(&s->sc);
	memset(s, 0, sizeof(*s));
}

/* How registered board b shows in what its transport sees. */
static void board_sighting(const struct kf_scans *sc, const struct kf_board *b,
			   struct kf_sighting *ret)
{
	const struct kf_transport *tr = kf_transport_for(b);
	void *scan = kf_scans_find(sc, tr);

	memset(ret, 0, sizeof(*ret));
	if (scan)
		tr->sight(b, scan, ret);
}

static const char *mode_title(enum kf_mode m)
{
	return m == KF_MODE_KLIPPER ? "Klipper" : m == KF_MODE_KATAPULT ? "Katapult"
	       : "an unknown mode";
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

/* What kflash rollback would restore, or null. */
static json_t *rollback_json(struct kf_ctx *ctx, const struct kf_board *b)
{
	struct kf_lastgood lg;
	json_t *v = NULL;

	if (kf_lastgood_load(ctx, b, NULL, &lg) == 0)
		v = kf_lastgood_json(&lg);
	kf_lastgood_release(&lg);
	return v ? v : json_null();
}

static json_t *list_json(struct kf_ctx *ctx, struct kf_registry *reg, struct seen *seen,
			 const struct versions *ver)
{
	json_t *boards = json_array(), *unreg = json_array(), *blocked = json_array();
	size_t i;

	for (i = 0; i < reg->n_boards; i++) {
		const struct kf_board *b = &reg->boards[i];
		const char *v = board_version(b, ver);
		struct kf_sighting si;
		json_t *row;
		bool found;

		board_sighting(&seen->sc, b, &si);
		found = si.at.node != NULL;
		row = json_pack(
			"{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:s?, s:s?, s:s?, s:s?, s:o, s:i, s:s?}",
			"name", b->name, "key", b->key, "mcu", b->mcu,
			"pattern", b->pattern,
			"method", kf_method_name(kf_board_method(b, &reg->settings)),
			"flashable", b->flashable, "connected", found,
			"path", found ? si.at.label : NULL,
			"devnode", si.at.node,
			"mode", found ? kf_mode_name(si.at.mode) : NULL,
			"version", v,
			"outdated", v && ver->host ? json_boolean(strcmp(v, ver->host) != 0)
						   : json_null(),
			"matches", (int)si.matches,
			"port_match", si.maybe);
		json_object_set_new(row, "rollback", rollback_json(ctx, b));
		/* a CAN node or bridge: how it is reached (USB rows stay as they were) */
		if (b->link != KF_LINK_USB)
			json_object_update_new(row, json_pack("{s:s, s:s?, s:s, s:s?}",
				"transport", kf_link_name(b->link), "canbus_uuid", b->canbus_uuid,
				"interface", b->interface, "note", si.maybe_note));
		json_array_append_new(boards, row);
		kf_sighting_release(&si);
	}
	for (i = 0; i < seen->n; i++) {
		struct kf_seen *d = &seen->v[i];

		json_array_append_new(d->blocked ? blocked : unreg, d->json);
		d->json = NULL;
	}
	return json_pack("{s:s?, s:b, s:o, s:o, s:o}", "host_version", ver->host,
			 "moonraker", ver->moonraker, "boards", boards,
			 "unregistered", unreg, "blocked", blocked);
}

/* A device not registered goes by what --device takes: its by-id name
 * (its label is that name's path), a CAN node's IF:UUID. */
static void list_id(struct kf_out *o, const struct kf_seen *d)
{
	kf_out_result(o, "  %s", d->id);
}

/* whether d's label says more than its id: not a by-id path of it */
static bool seen_says(const struct kf_seen *d)
{
	return !strstr(d->label, d->id);
}

/* The list fits 80 columns, on a terminal or in a log: a board's details
 * wrap under it; a path or id is never broken (a serial: line in
 * printer.cfg is copied from it) and stands on a line of its own. */
#define LIST_WIDTH 80

static void list_line(struct kf_out *o, const char *indent, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void list_line(struct kf_out *o, const char *indent, const char *fmt, ...)
{
	struct kf_buf b = KF_BUF_INIT;
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = kf_vasprintf(fmt, ap);
	va_end(ap);
	kf_wrap(&b, indent, indent, text, LIST_WIDTH);
	b.data[b.len - 1] = '\0';	/* kf_out_result ends the line */
	kf_out_result(o, "%s", b.data);
	kf_buf_release(&b);
	free(text);
}

static void list_human(struct kf_ctx *ctx, struct kf_registry *reg,
		       struct seen *seen, const struct versions *ver)
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
		const char *v = board_version(b, ver);
		struct kf_lastgood lg;
		struct kf_sighting si;
		char state[64];

		board_sighting(&seen->sc, b, &si);
		if (!si.at.node && si.maybe)
			snprintf(state, sizeof(state), "in Katapult?");
		else if (!si.at.node)
			snprintf(state, sizeof(state), "not connected");
		else if (si.matches > 1)
			snprintf(state, sizeof(state), "%zu devices match!", si.matches);
		else
			snprintf(state, sizeof(state), "connected (%s)",
				 kf_mode_name(si.at.mode));
		/* a key too long for its column has the line to itself */
		if (strlen(b->key) > 16 && 2 + strlen(b->key) + 38 > LIST_WIDTH)
			kf_out_result(o, "  %s\n  %-16s %-13s %s%s", b->key, "", b->mcu, state,
				      b->flashable ? "" : " [excluded]");
		else
			kf_out_result(o, "  %-16s %-13s %s%s", b->key, b->mcu, state,
				      b->flashable ? "" : " [excluded]");
		if (si.at.node)
			list_line(o, "    ", "%s", si.at.label);
		list_line(o, "    ", "'%s' via %s, firmware %s%s", b->name,
			  kf_method_name(kf_board_method(b, &reg->settings)),
			  v ? v : "unknown",
			  v && ver->host && strcmp(v, ver->host) != 0
			  ? " (behind the host: " KF_CMD("kflash flash --all --outdated") ")" : "");
		if (si.maybe_note)
			list_line(o, "    ", "%s", si.maybe_note);
		if (kf_lastgood_load(ctx, b, NULL, &lg) == 0)
			list_line(o, "    ", "rollback: Klipper %s, kept %.10s",
				  kf_lastgood_klipper(&lg) ? kf_lastgood_klipper(&lg) : "unknown",
				  lg.kept);
		kf_lastgood_release(&lg);
		kf_sighting_release(&si);
	}
	for (i = 0; i < seen->n; i++) {
		const struct kf_seen *d = &seen->v[i];

		if (d->blocked)
			continue;
		if (!any)
			kf_out_result(o, "\nConnected, not registered (add one: "
				      "kflash add --device ID --name NAME):");
		any = true;
		list_id(o, d);
		list_line(o, "      ", "%s%s%s, in %s", seen_says(d) ? d->label : "",
			  seen_says(d) ? ", " : "", d->mcu ? d->mcu : "MCU not said",
			  mode_title(d->mode));
	}
	any = false;
	for (i = 0; i < seen->n; i++) {
		const struct kf_seen *d = &seen->v[i];

		if (!d->blocked)
			continue;
		if (!any)
			kf_out_result(o, "\nNot flashable by kflash:");
		any = true;
		list_id(o, d);
		if (seen_says(d))
			list_line(o, "      ", "%s", d->label);
		list_line(o, "      ", "%s", d->blocked);
	}
}

int kf_cmd_list(struct kf_ctx *ctx, int argc, char **argv)
{
	static const struct option o[] = { { 0, 0, 0, 0 } };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct seen seen = { .n = 0 };
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
	r = seen_load(ctx, &reg, &seen, ctx->err);
	if (r < 0)
		goto out;
	{
		struct versions ver;

		versions_load(ctx, &reg, &ver);
		if (ctx->out->json)
			kf_out_set_json(ctx->out, list_json(ctx, &reg, &seen, &ver));
		else
			list_human(ctx, &reg, &seen, &ver);
		versions_release(&ver);
	}
out:
	seen_release(&seen);
	kf_registry_release(&reg);
	return r;
}

/* ---- add -------------------------------------------------------------------- */

struct add_opts {
	const char *name, *device, *mcu, *method;
	char *asked_mcu;	/* the wizard's answer for a device that does not say */
	bool bridge;		/* --bridge: the node is its bus's USB-to-CAN bridge */
	bool no_menuconfig;
	const char *config;	/* --config FILE: an existing config to adopt */
	char *config_text;	/* its text, once checked against the MCU */
	size_t config_len;
};

/* The device --device names, among every transport's. When none has it,
 * the first transport's reason is the one said. */
static int find_device(struct kf_ctx *ctx, const struct kf_registry *reg,
		       struct seen *seen, const char *arg, struct kf_seen *ret)
{
	size_t i;
	int r = -ENOENT;

	for (i = 0; i < seen->sc.n && r == -ENOENT; i++) {
		struct kf_error e = KF_ERROR_INIT;

		r = seen->sc.tr[i]->find(ctx, reg, seen->sc.scan[i], arg, ret,
					 i ? &e : ctx->err);
		if (i && r != -ENOENT) {
			char *note = ctx->err->note;

			kf_error_release(ctx->err);
			*ctx->err = e;
			ctx->err->note = note;
		} else {
			kf_error_release(&e);
			free(e.note);
		}
	}
	return r == -ENOENT ? KF_EINPUT : r;
}

static int add_board(struct kf_ctx *ctx, struct kf_registry *reg,
		     const struct seen *seen, const struct kf_seen *d,
		     struct add_opts *a)
{
	struct kf_board b = { 0 };
	char *note = NULL;
	int r;

	if (!d->mcu && !a->mcu) {
		kf_error_set(ctx->err, KF_EINPUT, "%s does not say its MCU", d->label);
		kf_error_cause(ctx->err, "a CAN node tells only its UUID");
		kf_error_step(ctx->err, KF_CMD("kflash add --device %s --name \"%s\" --mcu MCU")
			      "   (e.g. stm32g0b1xx, rp2040)", d->id, a->name);
		return KF_EINPUT;
	}
	if (a->mcu && d->mcu && strcmp(a->mcu, d->mcu) != 0) {
		kf_error_set(ctx->err, KF_EINPUT, "--mcu %s does not match the device, "
			     "which reports %s", a->mcu, d->mcu);
		kf_error_step(ctx->err, KF_CMD("kflash add --device %s --name \"%s\" --mcu %s"),
			      d->id, a->name, d->mcu);
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
	b.key = kf_registry_new_key(reg, a->name);
	b.name = (char *)a->name;
	b.flashable = true;
	r = d->tr->enroll(reg, kf_scans_find(&seen->sc, d->tr), d, &b, &note, ctx->err);
	if (r < 0)
		goto out;
	if (!b.mcu)
		b.mcu = kf_xstrdup(a->mcu);
	if (a->bridge)
		b.link = KF_LINK_BRIDGE;
	/* an adopted config is checked before anything is saved */
	if (a->config) {
		r = kf_config_adopt_read(ctx, a->config, b.key, b.mcu, ctx->err,
					 &a->config_text, &a->config_len);
		if (r < 0)
			goto out;
	}
	/* the adopted config is saved before the board is registered: a
	 * kflash killed between the two leaves no board without its config,
	 * and the same add simply runs again (and its save removes the temp
	 * file a kill left beside the config); a registry that cannot be
	 * saved leaves the config for the next add of that name */
	if (a->config_text &&
	    kf_config_adopt_write(ctx, b.key, a->config_text, a->config_len, ctx->err) < 0) {
		kf_error_cause(ctx->err, "nothing was registered");
		r = KF_EFAILED;
		goto out;
	}
	kf_registry_add(reg, &b);
	{
		char *done = kf_asprintf("%s was registered as '%s'", d->id, b.key);

		r = kf_cmd_save(ctx, reg, done, ctx->err);
		free(done);
	}
	if (r == 0) {
		if (b.link == KF_LINK_USB)
			kf_out_result(ctx->out, "Registered %s as '%s' (%s, pattern %s)",
				      d->id, b.key, b.mcu, b.pattern);
		else
			kf_out_result(ctx->out, "Registered %s as '%s' (%s, CAN UUID %s on "
				      "%s%s)", d->id, b.key, b.mcu, b.canbus_uuid, b.interface,
				      b.link == KF_LINK_BRIDGE ? ", its USB-to-CAN bridge" : "");
		if (note)
			kf_out_warn(ctx->out, "%s", note);
		if (a->config_text)
			kf_out_result(ctx->out, "Adopted %s as its firmware config (%s); "
				      "next: kflash flash %s", a->config, b.mcu, b.key);
		else if (!ctx->interactive || a->no_menuconfig)
			kf_out_info(ctx->out, "Next: kflash config %s   (its firmware "
				    "settings), then kflash flash %s", b.key, b.key);
		if (ctx->out->json)
			kf_out_set_json(ctx->out, json_pack(
				"{s:{s:s, s:s, s:s, s:s, s:s}}", "added", "key", b.key,
				"name", a->name, "mcu", b.mcu, "pattern", b.pattern,
				"method", kf_method_name(b.method)));
	}
out:
	free(note);
	free(b.key);
	free(b.mcu);
	free(b.pattern);
	free(b.port);
	free(b.canbus_uuid);
	free(b.interface);
	return r;
}

/* The wizard: pick a device, name it, choose the method. */
static int add_wizard(struct kf_ctx *ctx, struct kf_registry *reg,
		      struct seen *seen, struct add_opts *a,
		      struct kf_seen **ret_dev, char **ret_name)
{
	struct kf_seen *choices[64];
	size_t n = 0, i;
	char *ans = NULL, *def;
	int r;

	for (i = 0; i < seen->n && n < 64; i++)
		if (!seen->v[i].blocked)
			choices[n++] = &seen->v[i];
	if (n == 0) {
		kf_error_set(ctx->err, KF_EINPUT, "no unregistered Klipper or "
			     "Katapult board is connected");
		kf_error_cause(ctx->err, "every connected board is registered, or the "
			       "board is not connected by USB; a CAN node answers only "
			       "while no Klipper holds it");
		kf_error_step(ctx->err, KF_CMD("kflash list"));
		kf_error_step(ctx->err, KF_CMD("kflash add --can-uuid UUID --name NAME --mcu MCU")
			      "   (a CAN node, by the canbus_uuid in printer.cfg)");
		return KF_EINPUT;
	}
	kf_out_say(ctx->out, "Unregistered boards:\n");
	for (i = 0; i < n; i++)
		kf_out_say(ctx->out, "  %zu) %s  (%s, in %s)\n", i + 1,
			   choices[i]->id, choices[i]->mcu ? choices[i]->mcu : "MCU not said",
			   mode_title(choices[i]->mode));
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
	if ((*ret_dev)->mcu)
		kf_out_say(ctx->out, "MCU: %s (from the device)\n", (*ret_dev)->mcu);
	while (!(*ret_dev)->mcu && !a->asked_mcu) {
		r = kf_prompt(ctx, "MCU of this board, as in its Klipper config (e.g. "
			      "stm32g0b1xx, rp2040)", NULL, ctx->err, &ans);
		if (r < 0)
			return r;
		if (*ans && !strpbrk(ans, " \t/"))
			a->asked_mcu = ans;
		else
			free(ans);
		ans = NULL;
		a->mcu = a->asked_mcu;
	}
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

/* Configs for mcu on this host that a new board can start from: Klipper's
 * own .config, KIAUH's ~/klipper-kconfigs/. malloc'd paths. */
static size_t found_configs(struct kf_ctx *ctx, const struct kf_settings *s,
			    const char *mcu, char ***ret)
{
	char *kdir = kf_expand_home(ctx->ops, s->klipper_dir);
	char *kiauh = kf_expand_home(ctx->ops, "~/klipper-kconfigs");
	char **names = NULL, **out = NULL;
	size_t n_names = 0, n = 0, i;

	if (kf_os_read_dir(ctx->ops, kiauh, &names, &n_names) < 0)
		n_names = 0;
	for (i = 0; i <= n_names; i++) {
		char *path = i == 0 ? kf_asprintf("%s/.config", kdir)
				    : kf_asprintf("%s/%s", kiauh, names[i - 1]);
		char *text = NULL;
		size_t len;
		struct kf_error e = KF_ERROR_INIT;

		if ((i == 0 || kf_endswith(path, ".config")) &&
		    kf_config_adopt_read(ctx, path, "the board", mcu, &e, &text, &len) == 0) {
			out = kf_xrealloc(out, (n + 1) * sizeof(*out));
			out[n++] = path;
			path = NULL;
		}
		kf_error_release(&e);
		free(e.note);
		free(text);
		free(path);
	}
	kf_names_free(names, n_names);
	free(kdir);
	free(kiauh);
	*ret = out;
	return n;
}

/* The wizard: a new board starts from a config found for its MCU, or
 * (Enter) from menuconfig. 1 when one was adopted, 0 when menuconfig is
 * next, or kf_prompt's error. */
static int offer_configs(struct kf_ctx *ctx, const struct kf_registry *reg,
			 const struct kf_board *b)
{
	char **paths = NULL, *ans = NULL, *text = NULL;
	size_t n = found_configs(ctx, &reg->settings, b->mcu, &paths), i, len;
	int r = 0;

	if (n == 0)
		return 0;
	kf_out_say(ctx->out, "Configs for %s on this host:\n", b->mcu);
	for (i = 0; i < n; i++)
		kf_out_say(ctx->out, "  %zu) %s\n", i + 1, paths[i]);
	for (;;) {
		char *end;
		unsigned long k;

		r = kf_prompt(ctx, "Start from config number (Enter: choose in menuconfig)",
			      "menuconfig", ctx->err, &ans);
		if (r < 0 || strcmp(ans, "menuconfig") == 0)
			break;
		k = strtoul(ans, &end, 10);
		if (*ans && !*end && k >= 1 && k <= n) {
			r = kf_config_adopt_read(ctx, paths[k - 1], b->key, b->mcu, ctx->err,
						 &text, &len);
			if (r == 0)
				r = kf_config_adopt_write(ctx, b->key, text, len, ctx->err);
			if (r == 0) {
				kf_out_result(ctx->out, "Adopted %s as %s's firmware config; "
					      "next: kflash flash %s", paths[k - 1], b->key,
					      b->key);
				r = 1;
			}
			break;
		}
		kf_out_say(ctx->out, "  please answer 1 to %zu, or Enter for menuconfig\n", n);
		free(ans);
		ans = NULL;
	}
	free(ans);
	free(text);
	for (i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
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
		{ "can-uuid", required_argument, 0, 'u' },
		{ "interface", required_argument, 0, 'i' },
		{ "bridge", no_argument, 0, 'B' },
		{ "config", required_argument, 0, 'c' },
		{ 0, 0, 0, 0 },
	};
	const char *can_uuid = NULL, *iface = NULL;
	char *can_device = NULL;
	struct add_opts a = { 0 };
	struct kf_registry reg = KF_REGISTRY_INIT;
	struct seen seen = { .n = 0 };
	struct kf_seen named = { .tr = NULL };
	struct kf_seen *d = NULL;
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
		case 'u': can_uuid = optarg; break;
		case 'i': iface = optarg; break;
		case 'B': a.bridge = true; break;
		case 'c': a.config = optarg; break;
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
	if ((iface || a.bridge) && !can_uuid)
		return kf_usage_error(ctx, "add", "--interface and --bridge go with --can-uuid");
	if (can_uuid && a.device)
		return kf_usage_error(ctx, "add", "--can-uuid or --device, not both");
	if (can_uuid) {
		/* the CAN transport's name for a node: IF:UUID */
		can_device = kf_asprintf("%s:%s", iface ? iface : KF_CAN_INTERFACE, can_uuid);
		a.device = can_device;
	}
	if ((!a.name || !a.device) && (!ctx->interactive || ctx->out->json || a.name || a.device))
		return kf_usage_error(ctx, "add", "add needs --device and --name "
				      "(or run it on a terminal for the wizard)");
	r = kf_registry_load(ctx->ops, ctx->config_dir, &reg, ctx->err);
	if (r < 0)
		goto out;
	r = seen_load(ctx, &reg, &seen, ctx->err);
	if (r < 0)
		goto out;
	if (!a.device) {
		r = add_wizard(ctx, &reg, &seen, &a, &d, &wizard_name);
		if (r == -EPIPE) {
			r = kf_error_set(ctx->err, KF_EINPUT, "no answer: input ended");
		}
		if (r < 0)
			goto out;
		a.name = wizard_name;
	} else {
		r = find_device(ctx, &reg, &seen, a.device, &named);
		if (r < 0)
			goto out;
		d = &named;
	}
	r = add_board(ctx, &reg, &seen, d, &a);
	if (r == 0 && ctx->interactive && !a.no_menuconfig && !a.config && !ctx->out->json) {
		/* straight on to the board's firmware settings; the board is
		 * registered whatever happens there */
		struct kf_board *b = &reg.boards[reg.n_boards - 1];
		struct kf_error e = KF_ERROR_INIT;

		r = offer_configs(ctx, &reg, b);
		if (r == -EPIPE)
			r = kf_error_set(ctx->err, KF_EINPUT, "no answer: input ended; %s is "
					 "registered without a firmware config: kflash config %s",
					 b->key, b->key);
		if (r != 0) {
			/* adopted (1), or the question was not answered */
			r = r == 1 ? 0 : r;
			goto out;
		}
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
	free(can_device);
	free(a.asked_mcu);
	free(a.config_text);
	kf_seen_release(&named);
	seen_release(&seen);
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
		char *kept = kf_lastgood_dir(ctx->config_dir, key);
		int u = kf_os_unlink(ctx->ops, cfg), k = 0;
		enum kf_file_kind kind = KF_FILE_NONE;

		if (u == 0)
			kf_out_result(ctx->out, "Deleted its cached config %s", cfg);
		else if (u != -ENOENT)
			kf_out_warn(ctx->out, "could not delete %s: %s", cfg, strerror(-u));
		/* the firmware kflash rollback would restore goes with it */
		if ((k = kf_os_file_kind(ctx->ops, kept, &kind, NULL)) == 0 &&
		    kind != KF_FILE_NONE && (k = kf_os_remove_tree(ctx->ops, kept)) == 0)
			kf_out_result(ctx->out, "Deleted its kept firmware %s", kept);
		if (k < 0)
			kf_out_warn(ctx->out, "could not delete %s: %s", kept, strerror(-k));
		free(done);
		done = kf_asprintf("%s was removed and its cached config %s", key,
				   u == 0 || u == -ENOENT ? "deleted" : "kept");
		r = kf_cmd_signalled(ctx, done, ctx->err);
		free(kept);
		free(cfg);
	} else {
		kf_out_info(ctx->out, "Its cached config is kept in %s/configs/%s/ "
			    "(remove --purge deletes it, and its kept firmware)",
			    ctx->config_dir, key);
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
