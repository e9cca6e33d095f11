/* flow.c - the flash flow and its promise: Klipper is started again on
 * every path after kflash stopped it. */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kflash/build.h"
#include "kflash/commands.h"
#include "kflash/discovery.h"
#include "kflash/flash.h"
#include "kflash/flow.h"
#include "kflash/instances.h"
#include "kflash/moonraker.h"
#include "kflash/proc.h"
#include "kflash/prompt.h"
#include "kflash/service.h"
#include "kflash/util.h"

/* J_WRITTEN: the firmware is on the board, its return not yet seen */
enum job_state { J_ACTIVE, J_SKIPPED, J_WRITTEN, J_FLASHED, J_FAILED };

struct job {
	struct kf_board *b;
	enum job_state state;
	const char *skip_reason;
	char *devnode;		/* tty node, resolved after udev confirmed it */
	char *by_id;		/* what messages show */
	char *dev_mcu;
	enum kf_mode mode;
	char *port;		/* the USB port it was last seen at in this run */
	char *cfg_path;
	struct kf_kconfig cfg;
	struct kf_build_result build;
	enum kf_method method;
	const char *method_used;
	struct kf_error err;
	int64_t flash_start;
	int64_t flash_ms;
	size_t ev_mark;		/* events before this one are not its return */
	int unit;		/* index into flow.units, or -1: no Klipper drives it */
	char *lock_id;		/* what names its board lock: the chip serial */
	int lock_fd;		/* its board lock, or -1 */
};

/* A Klipper unit whose boards are flashed: stopped (when it runs) for the
 * window and started again on every path. */
struct unit {
	char *name;
	char *url;		/* its Moonraker */
	bool active;		/* it ran at the last print check */
	bool was_active;	/* it ran before kflash stopped it */
	bool stopped;		/* kflash stopped it and owes a start */
	char *restart_error;
};

struct flow {
	struct kf_ctx *ctx;
	struct kf_registry *reg;
	const struct kf_flash_opts *o;
	struct kf_settings *s;
	struct job *jobs;
	size_t n;
	char *kdir;
	int signal;		/* the first signal kflash got, or 0 */
	struct kf_instances inst;	/* the printers on this host */
	struct unit *units;	/* the ones driving the boards to flash */
	size_t n_units;
	bool guarded;
	struct kf_guard guard;	/* armed while a unit is stopped */
	bool moonraker;		/* Moonraker gave a print state at pre-flight */
	bool unknown_ok;	/* the user said go on without a print state */
	int lock_fd;
	struct kf_monitor *mon;	/* udev events, open while flashing */
	struct kf_device *seen;	/* tty "add" events read so far */
	size_t n_seen;
};

int kf_lock_take_at(struct kf_ctx *ctx, const char *path, const char *what,
		    struct kf_error *err, int *ret_fd)
{
	pid_t holder = 0;
	int r;

	*ret_fd = -1;
	r = kf_os_lock(ctx->ops, path, ret_fd, &holder);
	if (r == -EWOULDBLOCK) {
		kf_error_set(err, KF_EREFUSED, "another kflash (pid %ld) is %s; one "
			     "at a time", (long)holder, what);
		kf_error_step(err, "wait for it to finish (lock: %s)", path);
		r = KF_EREFUSED;
	} else if (r < 0) {
		kf_error_set(err, KF_EFAILED, "cannot take the lock %s: %s", path,
			     strerror(-r));
		kf_error_step(err, "ls -l %s", path);
		r = KF_EFAILED;
	}
	if (r < 0)
		*ret_fd = -1;
	return r;
}

int kf_lock_take(struct kf_ctx *ctx, int *ret_fd)
{
	char *path = kf_lock_path(ctx->ops);
	int r = kf_lock_take_at(ctx, path, "building or flashing", ctx->err, ret_fd);

	free(path);
	return r;
}

char *kf_sudoers_line(const struct kf_ops *ops, const char *unit)
{
	const char *user = kf_os_getenv(ops, "USER");

	return kf_asprintf("%s ALL=(root) NOPASSWD: /usr/bin/systemctl stop %s, "
			   "/usr/bin/systemctl start %s", user && *user ? user : "pi",
			   unit, unit);
}

/* /run/lock: FHS, world-writable and sticky on every Debian */
static const char *lock_dir(const struct kf_ops *ops)
{
	const char *d = kf_os_getenv(ops, "KFLASH_LOCK_DIR");

	return d && *d == '/' ? d : "/run/lock";
}

char *kf_lock_path(const struct kf_ops *ops)
{
	return kf_asprintf("%s/kflash-%ld.lock", lock_dir(ops), (long)kf_os_uid(ops));
}

char *kf_board_lock_path(const struct kf_ops *ops, const char *chip_serial)
{
	char id[65];
	size_t i;

	/* a by-id name is the user's to set: keep the file name plain */
	for (i = 0; chip_serial[i] && i < sizeof(id) - 1; i++)
		id[i] = isalnum((unsigned char)chip_serial[i]) ? chip_serial[i] : '_';
	id[i] = '\0';
	return kf_asprintf("%s/kflash-board-%s.lock", lock_dir(ops), id);
}

/* Signals are events: take one if it came. */
static bool got_signal(struct flow *f)
{
	int sig = kf_os_take_signal(f->ctx->ops);

	if (sig && !f->signal)
		f->signal = sig;
	return f->signal != 0;
}

/* A tool stopped because kflash got a signal: the flow has it now (the
 * child runner took it from the ops table). */
static void tool_interrupted(struct flow *f, const struct kf_exit *ex)
{
	if (ex->kind == KF_EXIT_INTERRUPTED && !f->signal)
		f->signal = ex->interrupted_by;
}

static size_t active_jobs(struct flow *f)
{
	size_t i, n = 0;

	for (i = 0; i < f->n; i++)
		n += f->jobs[i].state == J_ACTIVE;
	return n;
}

/* The build and config modules report into ctx->err; while they work on
 * one board of several, that is the board's own error. Returns the old. */
static struct kf_error *use_err(struct flow *f, struct kf_error *e)
{
	struct kf_error *old = f->ctx->err;

	f->ctx->err = e;
	return old;
}

static void job_fail(struct flow *f, struct job *j, int r)
{
	j->state = J_FAILED;
	if (!j->err.code)
		kf_error_set(&j->err, r < 0 && kf_is_class(r) ? r : KF_EFAILED,
			     "%s failed", j->b->key);
	if (r == KF_EINTERRUPTED && !f->signal)
		f->signal = j->err.signal;
}

/* Whether d is j's board arriving in Katapult, for a board whose Katapult
 * name its pattern misses: kflash sent it to its bootloader from the USB
 * port it was just seen at in Klipper, and a Katapult device of its MCU
 * came up at that port that no other registered board is. */
static bool handover(struct flow *f, struct job *j, const struct kf_device *d)
{
	const struct kf_board *b = j->b;
	size_t i;

	if (j->mode != KF_MODE_KLIPPER || !j->port || !d->port ||
	    d->mode != KF_MODE_KATAPULT || strcmp(d->port, j->port) != 0 ||
	    strcmp(d->mcu, b->mcu) != 0 || !kf_board_port_only(b))
		return false;
	/* it showed another serial in Katapult before: not this board */
	if (b->katapult_serial && strcmp(b->katapult_serial, d->serial) != 0)
		return false;
	for (i = 0; i < f->reg->n_boards; i++)
		if (&f->reg->boards[i] != b &&
		    kf_board_match(&f->reg->boards[i], d) == KF_MATCH_YES)
			return false;
	return true;
}

/* Keeps what identifies a port-only board in Katapult: its port and the
 * serial it showed there. Saved at once; a failed save costs only the
 * learning. */
static void learn(struct flow *f, struct job *j, const struct kf_device *d)
{
	struct kf_board *b = j->b;
	struct kf_error e = KF_ERROR_INIT;
	bool changed = false;

	if (!kf_board_port_only(b))
		return;
	if (d->mode == KF_MODE_KATAPULT &&
	    (!b->katapult_serial || strcmp(b->katapult_serial, d->serial) != 0)) {
		free(b->katapult_serial);
		b->katapult_serial = kf_xstrdup(d->serial);
		changed = true;
		kf_out_info(f->ctx->out, "%s shows serial %s in Katapult; kflash "
			    "remembers it", b->key, d->serial);
	}
	if (d->port && (!b->port || strcmp(b->port, d->port) != 0)) {
		free(b->port);
		b->port = kf_xstrdup(d->port);
		changed = true;
	}
	if (changed && kf_registry_save(f->ctx->ops, f->reg, &e) < 0)
		kf_out_warn(f->ctx->out, "%s (what kflash learned about %s is lost)",
			    e.what ? e.what : "cannot save the registry", b->key);
	kf_error_release(&e);
	free(e.note);
}

/* Finds the job's board among connected devices: exactly one must be it.
 * after_reset: kflash has just sent the board to its bootloader. */
static int locate(struct flow *f, struct job *j, struct kf_devlist *devs, bool after_reset)
{
	struct kf_device *found = NULL, *maybe = NULL, *arrived = NULL;
	size_t i, count = 0, n_arrived = 0;

	for (i = 0; i < devs->n; i++) {
		enum kf_match m = kf_board_match(j->b, &devs->devs[i]);

		if (m == KF_MATCH_YES) {
			count++;
			if (!found)
				found = &devs->devs[i];
		} else if (m == KF_MATCH_PORT && !maybe) {
			maybe = &devs->devs[i];
		}
		if (m != KF_MATCH_YES && after_reset && handover(f, j, &devs->devs[i])) {
			n_arrived++;
			arrived = &devs->devs[i];
		}
	}
	if (count > 1) {
		kf_error_set(&j->err, KF_EREFUSED, "%zu connected devices match %s "
			     "(pattern %s); kflash will not guess", count, j->b->key,
			     j->b->pattern);
		kf_error_step(&j->err, "kflash list");
		kf_error_step(&j->err, "kflash remove %s && kflash add   (to register "
			      "it with a precise pattern)", j->b->key);
		return KF_EREFUSED;
	}
	if (!found && n_arrived == 1)
		found = arrived;
	if (!found && maybe) {
		char *port = kf_port_label(maybe->port);

		kf_error_set(&j->err, KF_EREFUSED, "%s is not connected under its name; "
			     "%s at its USB port %s may be it, in Katapult, but kflash "
			     "will not flash a board it cannot be sure of", j->b->key,
			     maybe->name, port);
		kf_error_cause(&j->err, "its firmware sets its own USB serial, so in "
			       "Katapult it shows its chip id, and kflash has not yet "
			       "seen %s go into Katapult", j->b->key);
		kf_error_step(&j->err, "power-cycle the board so it starts Klipper, "
			      "then kflash flash %s (kflash then follows it into "
			      "Katapult and remembers it)", j->b->key);
		free(port);
		return KF_EREFUSED;
	}
	if (!found) {
		struct kf_buf seen = KF_BUF_INIT;

		for (i = 0; i < devs->n; i++)
			kf_buf_addf(&seen, "%s%s", seen.len ? ", " : "", devs->devs[i].name);
		kf_error_set(&j->err, KF_EFAILED, "%s is not connected: no device "
			     "matches %s", j->b->key, j->b->pattern);
		kf_error_cause(&j->err, "connected: %s", seen.len ? seen.data : "none");
		kf_error_step(&j->err, "check the board's USB cable and power, then "
			      "kflash list");
		kf_buf_release(&seen);
		return KF_EFAILED;
	}
	learn(f, j, found);
	free(j->devnode);
	free(j->by_id);
	free(j->dev_mcu);
	free(j->port);
	j->devnode = kf_xstrdup(found->tty.devnode);
	j->by_id = kf_xstrdup(found->tty.by_id ? found->tty.by_id : found->tty.devnode);
	j->dev_mcu = kf_xstrdup(found->mcu);
	j->port = found->port ? kf_xstrdup(found->port) : NULL;
	j->mode = found->mode;
	if (!j->lock_id)
		j->lock_id = kf_xstrdup(found->serial ? found->serial
					: found->name);
	return 0;
}

static int relocate(struct flow *f, struct job *j, bool after_reset)
{
	struct kf_devlist devs = KF_DEVLIST_INIT;
	int r;

	r = kf_discover(f->ctx->ops, &devs, &j->err);
	if (r == 0)
		r = locate(f, j, &devs, after_reset);
	kf_devlist_release(&devs);
	return r;
}

/* ---- before anything is stopped --------------------------------------------- */

static int discovery(struct flow *f)
{
	struct kf_devlist devs = KF_DEVLIST_INIT;
	size_t i;
	int r;

	kf_out_phase(f->ctx->out, KF_PHASE_DISCOVERY, "looking for %zu board%s",
		     f->n, f->n == 1 ? "" : "s");
	r = kf_discover(f->ctx->ops, &devs, f->ctx->err);
	if (r < 0)
		return r;
	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];

		if (!j->b->flashable) {
			if (f->o->all) {
				j->state = J_SKIPPED;
				j->skip_reason = "excluded";
				continue;
			}
			kf_error_set(&j->err, KF_EINPUT, "%s is excluded from flashing",
				     j->b->key);
			kf_error_step(&j->err, "kflash include %s", j->b->key);
			job_fail(f, j, KF_EINPUT);
			continue;
		}
		r = locate(f, j, &devs, false);
		if (r == KF_EFAILED && f->o->all) {
			j->state = J_SKIPPED;
			j->skip_reason = "not connected";
			kf_error_release(&j->err);
			continue;
		}
		if (r < 0) {
			job_fail(f, j, r);
			continue;
		}
		kf_out_ok(f->ctx->out, KF_PHASE_DISCOVERY, "%s: %s (%s mode)", j->b->key,
			  j->by_id, kf_mode_name(j->mode));
	}
	kf_devlist_release(&devs);
	return 0;
}

/* The real run loads each config here and checks it in the build (after
 * Klipper's olddefconfig, on what will be built). A dry run builds
 * nothing: it completes a copy of the config the same way and gives the
 * same refusal. */
static int config_check(struct flow *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];
		struct kf_kconfig saved = KF_KCONFIG_INIT;
		struct kf_error *saved_err;
		int r = 0;

		if (j->state != J_ACTIVE)
			continue;
		saved_err = use_err(f, &j->err);
		if (!f->o->skip_menuconfig && f->ctx->interactive && !f->o->dry_run)
			r = kf_menuconfig(f->ctx, f->s, j->b);
		else if (!f->o->skip_menuconfig && !f->o->dry_run)
			kf_out_phase(f->ctx->out, KF_PHASE_CONFIG, "%s: not a terminal, "
				     "using its cached config", j->b->key);
		if (r == KF_CONFIG_UNCHANGED)
			r = 0;
		if (r == 0 && !f->o->dry_run)
			r = kf_board_config_load(f->ctx, j->b, &saved, &j->cfg_path);
		if (r == 0 && f->o->dry_run) {
			j->cfg_path = kf_board_config_path(f->ctx->config_dir, j->b->key);
			r = kf_config_preview(f->ctx, f->s, j->b, &saved, &j->cfg);
			if (r == 0)
				r = kf_build_check_config(f->ctx, j->b, &saved, &j->cfg,
							  j->cfg_path, j->dev_mcu, true);
			if (r == 0 && j->method == KF_METHOD_KATAPULT)
				r = kf_build_check_offset(f->ctx, j->b, &j->cfg, j->cfg_path);
			if (r == 0)
				kf_out_ok(f->ctx->out, KF_PHASE_CONFIG, "%s: config is for "
					  "%s", j->b->key, j->b->mcu);
		}
		kf_kconfig_release(&saved);
		use_err(f, saved_err);
		if (r < 0) {
			job_fail(f, j, r);
			if (r == KF_EINTERRUPTED)
				return r;
			continue;
		}
	}
	return got_signal(f) ? KF_EINTERRUPTED : 0;
}

static int build_all(struct flow *f)
{
	struct kf_build_opts bo = { .rebuild = f->o->rebuild, .flashing = true };
	size_t i;

	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];
		struct kf_error *saved;
		int r;

		if (j->state != J_ACTIVE)
			continue;
		saved = use_err(f, &j->err);
		bo.device_mcu = j->dev_mcu;
		bo.katapult = j->method == KF_METHOD_KATAPULT;
		r = kf_build(f->ctx, f->s, j->b, &bo, &j->build);
		use_err(f, saved);
		if (r == 0) {
			/* what is checked from here on (the application address
			 * against Katapult's) is the config as built */
			kf_kconfig_release(&j->cfg);
			j->cfg = j->build.cfg;
			j->build.cfg = (struct kf_kconfig)KF_KCONFIG_INIT;
		}
		if (r < 0) {
			job_fail(f, j, r);
			if (r == KF_EINTERRUPTED)
				return r;
			/* one failed build skips only that board; with several,
			 * say so now, the summary comes at the end */
			if (f->n > 1)
				kf_out_error(f->ctx->out, &j->err);
		}
	}
	return got_signal(f) ? KF_EINTERRUPTED : 0;
}

static int refuse(struct flow *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct flow *f, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = kf_vasprintf(fmt, ap);
	va_end(ap);
	kf_error_set(f->ctx->err, KF_EREFUSED, "%s", msg);
	free(msg);
	return KF_EREFUSED;
}

/* ---- which Klipper drives the boards, and is it printing ----------------- */

static int unit_add(struct flow *f, const char *name, const char *url)
{
	size_t i;

	for (i = 0; i < f->n_units; i++)
		if (strcmp(f->units[i].name, name) == 0)
			return (int)i;
	f->units = kf_xrealloc(f->units, (f->n_units + 1) * sizeof(*f->units));
	memset(&f->units[f->n_units], 0, sizeof(*f->units));
	f->units[f->n_units].name = kf_xstrdup(name);
	f->units[f->n_units].url = url ? kf_xstrdup(url) : NULL;
	return (int)f->n_units++;
}

/* Whether instance in may be running a Klipper that holds a board. */
static bool maybe_running(struct flow *f, const struct kf_instance *in)
{
	if (!in->unit)
		return true;
	return kf_service_is_active(f->ctx->ops, in->unit,
				    f->s->timeout_service * 1000, &f->signal) != 0;
}

/* Decides, per board, which unit must be stopped for it: the one whose
 * config names it; the only printer there is; none when no Klipper that
 * runs can hold it. Anything else is a refusal before a build starts. */
static int plan_units(struct flow *f)
{
	struct kf_instances *is = &f->inst;
	size_t i, k, named = 0;

	kf_instances_find(f->ctx->ops, f->s, is);
	for (i = 0; i < is->n; i++)
		named += is->v[i].unit != NULL;
	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];
		struct kf_instance *owner;
		bool open = false;

		j->unit = -1;
		if (j->state != J_ACTIVE)
			continue;
		owner = is->override ? &is->v[0]
			: kf_instances_owner(is, j->b->pattern, j->by_id, j->devnode);
		if (!owner && is->n == 1 && is->v[0].unit)
			owner = &is->v[0];	/* the only printer there is */
		if (!owner && !named) {
			/* no Moonraker named a unit: the single-printer default */
			j->unit = unit_add(f, "klipper", is->n ? is->v[0].url : NULL);
			continue;
		}
		if (owner) {
			j->unit = unit_add(f, owner->unit, owner->url);
			continue;
		}
		/* several printers, none names it: fine only if none that
		 * could hold it runs */
		for (k = 0; k < is->n && !open; k++)
			open = !is->v[k].serials_known && maybe_running(f, &is->v[k]);
		if (open) {
			char *urls = kf_instances_urls(is);

			kf_error_set(&j->err, KF_EREFUSED, "cannot tell which printer "
				     "on this host drives %s, so kflash does not know "
				     "which Klipper to stop", j->b->key);
			kf_error_cause(&j->err, "no Klipper config listed by the "
				       "Moonrakers at %s names %s, and one of them did "
				       "not list its MCUs", urls, j->by_id);
			kf_error_step(&j->err, "kflash settings service klipper-N   (the "
				      "unit of the printer that uses %s)", j->b->key);
			kf_error_step(&j->err, "kflash doctor   (lists the printers it found)");
			free(urls);
			job_fail(f, j, KF_EREFUSED);
		}
	}
	return 0;
}

static int refuse_unit_missing(struct flow *f, const struct unit *u)
{
	refuse(f, "systemd has no unit %s, so kflash cannot stop the Klipper "
	       "that drives these boards", u->name);
	if (f->inst.override)
		kf_error_cause(f->ctx->err, "the service setting names %s", u->name);
	else
		kf_error_cause(f->ctx->err, "Moonraker did not name the unit of this "
			       "printer (is it running?), and there is no unit %s",
			       u->name);
	kf_error_step(f->ctx->err, "systemctl list-units 'klipper*'   (the "
		      "printers' units)");
	kf_error_step(f->ctx->err, "kflash settings service UNIT   (or auto, to "
		      "learn it from Moonraker)");
	return KF_EREFUSED;
}

/* What Moonraker said, when it was no print state: a question on a
 * terminal (asked once a run), else a refusal unless --force. */
static int unknown_print_state(struct flow *f, const struct unit *u,
			       const struct kf_print_status *ps)
{
	bool yes = false;
	int r;

	if (f->unknown_ok)
		return 0;	/* asked (or forced) once this run */
	if (f->ctx->force) {
		kf_out_warn(f->ctx->out, "Moonraker at %s gave no print state (%s); "
			    "going on because of --force", u->url, ps->said);
		f->unknown_ok = true;
		return 0;
	}
	if (f->ctx->interactive) {
		kf_out_warn(f->ctx->out, "Moonraker at %s gave no print state (%s): "
			    "kflash cannot tell whether a print is running", u->url,
			    ps->said);
		r = kf_confirm(f->ctx, "Is the printer idle, and may kflash stop "
			       "Klipper?", false, &yes);
		if (r == KF_EINTERRUPTED) {
			f->signal = f->ctx->err->signal;
			return r;
		}
		if (yes) {
			f->unknown_ok = true;
			return 0;
		}
	}
	refuse(f, "Moonraker at %s gave no print state (%s), so kflash cannot check "
	       "that nothing is printing on %s", u->url, ps->said, u->name);
	if (ps->auth) {
		kf_error_cause(f->ctx->err, "this Moonraker requires a login");
		kf_error_step(f->ctx->err, "kflash settings moonraker_api_key KEY   "
			      "(the key: ~/moonraker/scripts/fetch-apikey.sh, or "
			      "Mainsail/Fluidd's API key in the settings)");
	} else if (!ps->reachable) {
		kf_error_step(f->ctx->err, "sudo systemctl start moonraker");
		kf_error_step(f->ctx->err, "kflash settings moonraker_url URL   (if it "
			      "runs elsewhere)");
	} else {
		kf_error_step(f->ctx->err, "curl -s '%s/printer/objects/query?print_stats'"
			      "   (what Moonraker answers)", u->url);
		kf_error_step(f->ctx->err, "sudo systemctl restart moonraker");
	}
	kf_error_step(f->ctx->err, "or, when you are sure the printer is idle: "
		      "kflash --force flash ...");
	return KF_EREFUSED;
}

/* Every unit to stop exists, and no printer it drives is printing. A unit
 * that is not running prints nothing, whatever Moonraker says. */
static int print_guard(struct flow *f)
{
	size_t i;
	int r;

	f->moonraker = true;
	for (i = 0; i < f->n_units; i++) {
		struct unit *u = &f->units[i];
		struct kf_moonraker m = { u->url, f->s->moonraker_api_key };
		struct kf_print_status ps;

		r = kf_service_is_active(f->ctx->ops, u->name,
					 f->s->timeout_service * 1000, &f->signal);
		if (r == -EINTR && got_signal(f))
			return KF_EINTERRUPTED;
		if (r == -ENOENT)
			return refuse_unit_missing(f, u);
		if (r < 0)
			return kf_error_set(f->ctx->err, KF_EFAILED, "cannot ask systemd "
					    "whether %s runs: %s", u->name, strerror(-r));
		u->active = r == 1;
		if (!u->active)
			continue;
		if (!u->url) {
			struct kf_print_status none = { .said = (char *)"no Moonraker URL" };

			r = unknown_print_state(f, u, &none);
			if (r < 0)
				return r;
			f->moonraker = false;
			continue;
		}
		kf_moonraker_print_status(f->ctx->ops, &m, &ps);
		if (ps.verdict == KF_PRINT_NO_KLIPPY) {
			/* Moonraker runs but Klipper does not talk to it, yet
			 * the unit is active: starting, or stuck */
			char *said = kf_asprintf("%s, yet %s is active", ps.said, u->name);

			free(ps.said);
			ps.said = said;
			ps.verdict = KF_PRINT_UNKNOWN;
		}
		r = 0;
		if (ps.verdict == KF_PRINT_BUSY) {
			r = refuse(f, "the printer is %s %s (%.0f%% done); kflash will not "
				   "stop %s now", ps.state, ps.filename ? ps.filename
				   : "a file", ps.progress * 100.0, u->name);
			kf_error_step(f->ctx->err, "wait for the print to finish or cancel "
				      "it, then run kflash again");
		} else if (ps.verdict == KF_PRINT_UNKNOWN) {
			f->moonraker = false;
			r = unknown_print_state(f, u, &ps);
		}
		kf_print_status_release(&ps);
		if (r < 0)
			return r;
	}
	return 0;
}

static int preflight(struct flow *f)
{
	size_t i;
	int r;

	/* a long build gives time to unplug a board */
	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];

		if (j->state != J_ACTIVE)
			continue;
		r = relocate(f, j, false);
		if (r < 0) {
			kf_error_set(&j->err, r, "%s disappeared during the build; "
				     "nothing was stopped", j->b->key);
			kf_error_step(&j->err, "reconnect it, then kflash flash %s -s",
				      j->b->key);
			job_fail(f, j, r);
			continue;
		}
		/* make flash's own tool (dfu-util...) must not wait at a sudo
		 * prompt with Klipper stopped either */
		if (j->method != KF_METHOD_MAKE_FLASH)
			continue;
		r = kf_make_flash_preflight(f->ctx, f->kdir, &j->cfg, j->b->key, true,
					    &j->err);
		if (r == KF_EINTERRUPTED)
			return r;
		if (r < 0)
			job_fail(f, j, r);
	}
	if (!active_jobs(f))
		return 0;
	for (i = 0; i < f->n_units; i++) {
		const char *unit = f->units[i].name;
		char *line;

		r = kf_service_can_manage(f->ctx->ops, unit,
					  f->s->timeout_service * 1000, &f->signal);
		if (r == -EINTR && got_signal(f))
			return KF_EINTERRUPTED;
		if (r == 1)
			continue;
		line = kf_sudoers_line(f->ctx->ops, unit);
		refuse(f, "sudo would ask for a password to stop and start %s; kflash "
		       "never waits at a password prompt with Klipper stopped", unit);
		kf_error_cause(f->ctx->err, "this user may not run 'systemctl stop %s' "
			       "and 'systemctl start %s' through sudo without a password",
			       unit, unit);
		kf_error_step(f->ctx->err, "sudo visudo -f /etc/sudoers.d/kflash");
		kf_error_step(f->ctx->err, "add: %s", line);
		free(line);
		return KF_EREFUSED;
	}
	/* again: a print may have started during the build */
	return print_guard(f);
}

/* ---- the service --------------------------------------------------------------- */

static int service_stop(struct flow *f)
{
	int tmo = f->s->timeout_service * 1000, r;
	const char **active = kf_xcalloc(f->n_units + 1, sizeof(*active));
	size_t i, n = 0;

	/* whether each runs was asked by the print check just before */
	for (i = 0; i < f->n_units; i++) {
		struct unit *u = &f->units[i];

		u->was_active = u->active;
		if (u->was_active)
			active[n++] = u->name;
		else
			kf_out_phase(f->ctx->out, KF_PHASE_SERVICE, "%s is not running; "
				     "it will be left stopped", u->name);
	}
	r = 0;
	if (!n)
		goto out;
	/* armed before the stop: if kflash dies from here on, the guardian
	 * starts the units */
	r = kf_guard_start(&f->guard, f->ctx->ops, active, tmo);
	if (r < 0) {
		r = kf_error_set(f->ctx->err, KF_EFAILED, "cannot start the guardian "
				 "process: %s; Klipper was not stopped", strerror(-r));
		goto out;
	}
	f->guarded = true;
	for (i = 0; i < f->n_units; i++) {
		struct unit *u = &f->units[i];

		if (!u->was_active)
			continue;
		kf_out_phase(f->ctx->out, KF_PHASE_SERVICE, "stopping %s", u->name);
		u->stopped = true;	/* from here a start is owed, even if stop fails */
		r = kf_service_stop(f->ctx->ops, u->name, tmo, &f->signal);
		if (r < 0) {
			r = kf_error_set(f->ctx->err, KF_EFAILED, "stopping %s failed: %s",
					 u->name, r == -ETIMEDOUT ? "timed out" : strerror(-r));
			kf_error_command(f->ctx->err, "sudo -n systemctl stop %s", u->name);
			kf_error_step(f->ctx->err, "systemctl status %s", u->name);
			goto out;
		}
		if (got_signal(f)) {
			r = KF_EINTERRUPTED;
			goto out;
		}
	}
out:
	free(active);
	return r;
}

/* Starts every unit kflash stopped. Runs on every path; signals that
 * arrive meanwhile are recorded, not obeyed. */
static void service_restore(struct flow *f)
{
	size_t i;
	int r;

	for (i = 0; i < f->n_units; i++) {
		struct unit *u = &f->units[i];

		if (!u->stopped)
			continue;
		kf_out_phase(f->ctx->out, KF_PHASE_SERVICE, "starting %s again", u->name);
		r = kf_service_start(f->ctx->ops, u->name,
				     f->s->timeout_service * 1000, &f->signal);
		if (r < 0 && r != -ETIMEDOUT) {
			/* one more try: a printer left without Klipper is the
			 * worst outcome kflash can have */
			kf_out_warn(f->ctx->out, "starting %s failed (%s); trying again",
				    u->name, strerror(-r));
			(void)kf_os_sleep_until(f->ctx->ops, kf_os_now(f->ctx->ops) + 1000);
			r = kf_service_start(f->ctx->ops, u->name,
					     f->s->timeout_service * 1000, &f->signal);
		}
		if (r < 0) {
			u->restart_error = kf_asprintf(
				"starting %s again failed (%s); start it by hand: "
				"sudo systemctl start %s", u->name,
				r == -ETIMEDOUT ? "timed out" : strerror(-r), u->name);
		} else {
			kf_out_ok(f->ctx->out, KF_PHASE_SERVICE, "%s is running again",
				  u->name);
		}
		u->stopped = false;
		(void)got_signal(f);
	}
	if (f->guarded) {
		kf_guard_end(&f->guard, &f->signal);
		f->guarded = false;
	}
	if (f->lock_fd >= 0) {
		kf_os_unlock(f->ctx->ops, f->lock_fd);
		f->lock_fd = -1;
	}
	for (i = 0; i < f->n; i++) {
		if (f->jobs[i].lock_fd >= 0)
			kf_os_unlock(f->ctx->ops, f->jobs[i].lock_fd);
		f->jobs[i].lock_fd = -1;
	}
}

/* One kflash per board, whoever runs it: another user's kflash has its own
 * per-user lock and registry, but the same board. */
static int lock_boards(struct flow *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];
		char *path, *what;

		if (j->state != J_ACTIVE || !j->lock_id)
			continue;
		path = kf_board_lock_path(f->ctx->ops, j->lock_id);
		what = kf_asprintf("using the board %s", j->by_id);
		if (kf_lock_take_at(f->ctx, path, what, &j->err, &j->lock_fd) < 0)
			job_fail(f, j, j->err.code);
		free(what);
		free(path);
	}
	return 0;
}
/* ---- flashing ------------------------------------------------------------------ */

/* Reads one udev event into the flow's list; 1 when one came. */
static int read_event(struct flow *f, int64_t deadline)
{
	struct kf_uevent ev;
	int r = kf_os_monitor_next(f->ctx->ops, f->mon, deadline, &ev);

	if (r <= 0)
		return r;
	if (ev.action != KF_UEVENT_ADD) {
		kf_ttydev_release(&ev.dev);
		return 1;
	}
	f->seen = kf_xrealloc(f->seen, (f->n_seen + 1) * sizeof(*f->seen));
	kf_device_from_tty(&f->seen[f->n_seen++], &ev.dev);
	return 1;
}

/* Reads what udev already said, so a board's return is told apart from
 * what happened before it was flashed. */
static void drain_events(struct flow *f)
{
	while (f->mon && read_event(f, 0) == 1)
		;
}

/* Whether j came back (klipper) or showed up in Katapult since its flash. */
static bool seen_back(struct flow *f, struct job *j, bool *ret_katapult)
{
	size_t i;

	for (i = j->ev_mark; i < f->n_seen; i++) {
		struct kf_device *d = &f->seen[i];

		if (kf_board_match(j->b, d) != KF_MATCH_YES)
			continue;
		if (d->mode == KF_MODE_KATAPULT)
			*ret_katapult = true;
		if (d->mode == KF_MODE_KLIPPER) {
			free(j->by_id);
			j->by_id = kf_xstrdup(d->tty.by_id ? d->tty.by_id : d->tty.devnode);
			return true;
		}
	}
	return false;
}

/* Waits for the board to come back running Klipper: udev "add" events,
 * no polling. Several boards may be on their way back at once. */
static int verify(struct flow *f, struct job *j)
{
	int64_t deadline = kf_os_now(f->ctx->ops) + f->s->timeout_reconnect * 1000LL;
	bool saw_katapult = false, present;

	kf_out_phase(f->ctx->out, KF_PHASE_VERIFY, "waiting for %s to come back",
		     j->b->key);
	for (;;) {
		int r;

		if (seen_back(f, j, &saw_katapult)) {
			kf_out_ok(f->ctx->out, KF_PHASE_VERIFY, "%s is back: %s",
				  j->b->key, j->by_id);
			return 0;
		}
		r = read_event(f, deadline);
		if (r == -EINTR) {
			(void)got_signal(f);
			kf_error_set(&j->err, KF_EINTERRUPTED, "interrupted while waiting "
				     "for %s to come back", j->b->key);
			j->err.signal = f->signal;
			return KF_EINTERRUPTED;
		}
		if (r <= 0)
			break;
	}
	/* an event may have come before the monitor could see it */
	present = relocate(f, j, true) == 0;
	if (present && j->mode == KF_MODE_KLIPPER) {
		kf_error_release(&j->err);
		kf_out_ok(f->ctx->out, KF_PHASE_VERIFY, "%s is back: %s", j->b->key, j->by_id);
		return 0;
	}
	kf_error_release(&j->err);
	if (saw_katapult || (present && j->mode == KF_MODE_KATAPULT)) {
		kf_error_set(&j->err, KF_EFAILED, "%s came back in Katapult, not "
			     "running Klipper", j->b->key);
		kf_error_cause(&j->err, "the new firmware did not start: wrong "
			       "bootloader offset or clock settings in its config");
		kf_error_step(&j->err, "kflash config %s   (check \"Bootloader offset\")",
			      j->b->key);
		kf_error_step(&j->err, "kflash flash %s -s   (the board is still in "
			      "Katapult)", j->b->key);
	} else {
		kf_error_set(&j->err, KF_EFAILED, "%s did not come back within %d s",
			     j->b->key, f->s->timeout_reconnect);
		kf_error_cause(&j->err, "the board did not re-enumerate on USB; it may "
			       "need a power cycle");
		kf_error_step(&j->err, "power-cycle the printer's electronics, then "
			      "kflash list");
		kf_error_step(&j->err, "if it shows in Katapult: kflash flash %s -s",
			      j->b->key);
	}
	return KF_EFAILED;
}

static int parse_addr(const char *s, uint32_t *ret)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);

	if (end == s || *end)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

/* The bootloader must put the application where the firmware was linked;
 * a mismatch would leave a board that does not boot. */
static int check_app_start(struct flow *f, struct job *j, struct kf_tool_run *t)
{
	const char *want_s = kf_kconfig_get(&j->cfg, "CONFIG_FLASH_APPLICATION_ADDRESS");
	uint32_t want, got;
	int r;

	if (!want_s || parse_addr(want_s, &want) < 0)
		return 0;
	kf_out_phase(f->ctx->out, KF_PHASE_FLASH, "%s: asking Katapult where the "
		     "application starts", j->b->key);
	r = kf_flashtool(f->ctx, f->s, j->devnode, NULL, t);
	if (r < 0)
		return kf_error_set(&j->err, KF_EFAILED, "cannot run flashtool: %s",
				    strerror(-r));
	tool_interrupted(f, &t->exit);
	if (t->cls != KF_FLASH_OK) {
		r = kf_flash_error(&j->err, t->cls, j->b->key, t->output.data,
				   t->command, f->s);
		j->err.signal = f->signal;
		return r;
	}
	if (kf_flashtool_app_start(t->output.data, &got) < 0)
		return 0;
	if (got != want) {
		kf_error_set(&j->err, KF_EREFUSED, "%s: the firmware is built for "
			     "0x%x but Katapult starts the application at 0x%x; it "
			     "would not boot, so nothing was written", j->b->key, want, got);
		kf_error_cause(&j->err, "the config's \"Bootloader offset\" does not "
			       "match the Katapult on this board");
		kf_error_step(&j->err, "kflash config %s   (set the bootloader offset "
			      "to match 0x%x)", j->b->key, got);
		kf_error_step(&j->err, "the board waits in Katapult; flash it again or "
			      "power-cycle it");
		return KF_EREFUSED;
	}
	kf_out_ok(f->ctx->out, KF_PHASE_FLASH, "%s: application start 0x%x matches "
		  "the config", j->b->key, got);
	/* status mode left the board in Katapult, under another name */
	return relocate(f, j, true) < 0 ? KF_EFAILED : 0;
}

static int flash_katapult(struct flow *f, struct job *j)
{
	struct kf_tool_run t;
	int r;

	memset(&t, 0, sizeof(t));
	r = check_app_start(f, j, &t);
	kf_tool_run_release(&t);
	if (r < 0)
		return r;
	if (got_signal(f))
		return kf_error_set(&j->err, KF_EINTERRUPTED, "interrupted");
	drain_events(f);
	j->ev_mark = f->n_seen;
	kf_out_phase(f->ctx->out, KF_PHASE_FLASH, "%s: flashing %s via katapult on %s",
		     j->b->key, j->build.firmware, j->by_id);
	r = kf_flashtool(f->ctx, f->s, j->devnode, j->build.firmware, &t);
	if (r < 0) {
		r = kf_error_set(&j->err, KF_EFAILED, "cannot run flashtool: %s",
				 strerror(-r));
	} else if (t.cls != KF_FLASH_OK) {
		tool_interrupted(f, &t.exit);
		r = kf_flash_error(&j->err, t.cls, j->b->key, t.output.data, t.command, f->s);
		if (t.cls == KF_FLASH_INTERRUPTED)
			j->err.signal = f->signal;
	}
	kf_tool_run_release(&t);
	return r;
}

static int flash_make(struct flow *f, struct job *j)
{
	struct kf_tool_run t;
	int r;

	drain_events(f);
	j->ev_mark = f->n_seen;
	kf_out_phase(f->ctx->out, KF_PHASE_FLASH, "%s: flashing via make flash on %s",
		     j->b->key, j->by_id);
	/* never lets flash_usb.py's sudo ask for a password (flash.h) */
	r = kf_make_flash(f->ctx, f->s, f->kdir, j->cfg_path, &j->cfg, j->build.build_dir,
			  j->devnode, &t);
	if (r < 0) {
		r = kf_error_set(&j->err, KF_EFAILED, "cannot run make flash: %s",
				 strerror(-r));
	} else if (t.cls != KF_FLASH_OK) {
		tool_interrupted(f, &t.exit);
		r = kf_make_flash_error(f->ctx->ops, &j->err, &t, j->b->key, f->s);
		if (t.cls == KF_FLASH_INTERRUPTED)
			j->err.signal = f->signal;
	}
	kf_tool_run_release(&t);
	return r;
}

static void flash_one(struct flow *f, struct job *j)
{
	bool fallback = f->s->fallback && !f->o->no_fallback;
	int r;

	j->flash_start = kf_os_now(f->ctx->ops);
	/* the board may have moved since pre-flight (another board's reset) */
	r = relocate(f, j, false);
	if (r < 0) {
		job_fail(f, j, r);
		return;
	}
	if (j->method == KF_METHOD_KATAPULT) {
		j->method_used = "katapult";
		r = flash_katapult(f, j);
		if (r < 0 && r != KF_EINTERRUPTED && r != KF_EREFUSED && fallback &&
		    !f->signal) {
			kf_out_error(f->ctx->out, &j->err);
			kf_out_phase(f->ctx->out, KF_PHASE_FLASH, "%s: Katapult failed; "
				     "trying make flash", j->b->key);
			kf_error_release(&j->err);
			/* it may sit in its bootloader now, under another name */
			r = relocate(f, j, true);
			if (r == 0) {
				j->method_used = "make-flash";
				r = flash_make(f, j);
			}
		}
	} else {
		j->method_used = "make-flash";
		r = flash_make(f, j);
	}
	j->flash_ms = kf_os_now(f->ctx->ops) - j->flash_start;
	if (r < 0) {
		job_fail(f, j, r);
		return;
	}
	j->state = J_WRITTEN;
	kf_out_ok(f->ctx->out, KF_PHASE_FLASH, "%s written via %s", j->b->key,
		  j->method_used);
}

/* After all boards are written: each must come back. The boards reboot
 * side by side while the next ones are flashed, so the printer's downtime
 * is the flash tools' time plus the last board's return. */
static void verify_all(struct flow *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];
		int r;

		if (j->state != J_WRITTEN)
			continue;
		if (f->signal) {
			kf_error_set(&j->err, KF_EINTERRUPTED, "%s was written; kflash "
				     "stopped before seeing it come back", j->b->key);
			kf_error_step(&j->err, "kflash list");
			job_fail(f, j, KF_EINTERRUPTED);
			continue;
		}
		{
			/* its own time: writing it, then waiting for it (not the
			 * other boards' flashing in between) */
			int64_t t0 = kf_os_now(f->ctx->ops);

			r = verify(f, j);
			j->flash_ms += kf_os_now(f->ctx->ops) - t0;
		}
		if (r < 0) {
			job_fail(f, j, r);
			continue;
		}
		j->state = J_FLASHED;
		kf_out_ok(f->ctx->out, KF_PHASE_FLASH, "%s flashed via %s in %.1fs",
			  j->b->key, j->method_used, (double)j->flash_ms / 1000.0);
	}
}

/* ---- after --------------------------------------------------------------------- */

static char *dict_version(struct flow *f, const struct job *j)
{
	char *path = kf_asprintf("%s/klipper.dict", j->build.build_dir), *text = NULL;
	char *v = NULL;
	json_t *doc;

	if (kf_os_read_file(f->ctx->ops, path, &text, NULL) == 0) {
		doc = json_loads(text, 0, NULL);
		if (json_is_string(json_object_get(doc, "version")))
			v = kf_xstrdup(json_string_value(json_object_get(doc, "version")));
		json_decref(doc);
	}
	free(text);
	free(path);
	return v;
}

/* When Moonraker is there, each flashed board should now report the
 * version inside the firmware just built. A mismatch is a warning. */
static void check_unit_versions(struct flow *f, int unit)
{
	struct unit *u = &f->units[unit];
	struct kf_moonraker m = { u->url, f->s->moonraker_api_key };
	struct kf_mcu_version *mcus = NULL;
	size_t n = 0, i, k;
	int64_t deadline;
	bool any = false;

	for (i = 0; i < f->n; i++)
		any |= f->jobs[i].state == J_FLASHED && f->jobs[i].unit == unit;
	if (!any || !u->was_active || !u->url)
		return;
	/* Klipper needs a moment to reach its MCUs after a start */
	deadline = kf_os_now(f->ctx->ops) + 15000;
	for (;;) {
		/* Moonraker answers the object list once Klipper is ready */
		if (kf_moonraker_mcus(f->ctx->ops, &m, &mcus, &n) == 0)
			break;
		kf_mcu_versions_free(mcus, n);
		mcus = NULL;
		n = 0;
		if (kf_os_now(f->ctx->ops) >= deadline ||
		    kf_os_sleep_until(f->ctx->ops, kf_os_now(f->ctx->ops) + 1000) < 0) {
			kf_out_verbose(f->ctx->out, "Moonraker has no MCU versions; "
				       "skipping the version check");
			(void)got_signal(f);
			return;
		}
	}
	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];
		char *want;
		bool seen = false, match = false;

		if (j->state != J_FLASHED || j->unit != unit || !(want = dict_version(f, j)))
			continue;
		for (k = 0; k < n; k++) {
			if (!mcus[k].mcu || strcmp(mcus[k].mcu, j->b->mcu) != 0)
				continue;
			seen = true;
			match |= mcus[k].version && strcmp(mcus[k].version, want) == 0;
		}
		if (match)
			kf_out_ok(f->ctx->out, KF_PHASE_VERIFY, "%s runs %s", j->b->key, want);
		else if (seen)
			kf_out_warn(f->ctx->out, "%s does not report %s after flashing; "
				    "check its [mcu] section and FIRMWARE_RESTART, then "
				    "kflash list", j->b->key, want);
		free(want);
	}
	kf_mcu_versions_free(mcus, n);
}

static void check_versions(struct flow *f)
{
	size_t i;

	if (f->signal || !f->moonraker)
		return;
	for (i = 0; i < f->n_units && !f->signal; i++)
		check_unit_versions(f, (int)i);
}

static void print_argv(struct flow *f, char **argv)
{
	char *cmd = kf_argv_join((const char *const *)argv);

	kf_out_result(f->ctx->out, "  %s", cmd);
	free(cmd);
	kf_argv_free(argv);
}

static void dry_run(struct flow *f)
{
	size_t i;
	bool stop = false;

	/* a refused board is reported as the real run reports it */
	if (!active_jobs(f))
		return;
	kf_out_result(f->ctx->out, "Dry run: these commands would run, in order:");
	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];
		char *out;

		if (j->state != J_ACTIVE)
			continue;
		out = kf_board_build_dir(f->ctx->ops, j->b->key);
		print_argv(f, kf_make_argv(f->kdir, j->cfg_path, out, "olddefconfig", NULL));
		kf_out_result(f->ctx->out, "  make ... -jN   (the build, skipped when up "
			      "to date)");
		free(out);
		stop = true;
	}
	for (i = 0; stop && i < f->n_units; i++)
		kf_out_result(f->ctx->out, "  sudo -n systemctl stop %s   (only if it "
			      "is running)", f->units[i].name);
	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];
		char *out, *fw;

		if (j->state != J_ACTIVE)
			continue;
		out = kf_board_build_dir(f->ctx->ops, j->b->key);
		fw = kf_asprintf("%s/klipper.bin", out);
		if (j->method == KF_METHOD_KATAPULT) {
			print_argv(f, kf_flashtool_argv(f->ctx->ops, f->s, j->devnode, NULL));
			print_argv(f, kf_flashtool_argv(f->ctx->ops, f->s, "<its Katapult tty>",
							fw));
			if (f->s->fallback && !f->o->no_fallback)
				kf_out_result(f->ctx->out, "  (if Katapult fails:)");
		}
		if (j->method == KF_METHOD_MAKE_FLASH || (f->s->fallback && !f->o->no_fallback))
			print_argv(f, kf_make_flash_argv(f->kdir, j->cfg_path, out,
							 j->devnode));
		free(fw);
		free(out);
	}
	for (i = 0; stop && i < f->n_units; i++)
		kf_out_result(f->ctx->out, "  sudo -n systemctl start %s   (if it was "
			      "running)", f->units[i].name);
	kf_out_result(f->ctx->out, "Nothing was changed.");
}

static json_t *summary_json(struct flow *f)
{
	json_t *boards = json_array(), *services = json_array();
	size_t i;

	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];
		const char *res = j->state == J_FLASHED ? "flashed"
				: j->state == J_SKIPPED || j->state == J_ACTIVE ? "skipped"
				: "failed";

		json_array_append_new(boards, json_pack(
			"{s:s, s:s, s:s?, s:f, s:s?}", "name", j->b->key, "result", res,
			"method", j->method_used ? j->method_used : kf_method_name(j->method),
			"seconds", (double)j->flash_ms / 1000.0,
			"error", j->state == J_SKIPPED ? j->skip_reason
				 : j->err.what ? j->err.what : NULL));
	}
	for (i = 0; i < f->n_units; i++) {
		const struct unit *u = &f->units[i];

		json_array_append_new(services, json_pack(
			"{s:s, s:b, s:b, s:s?}", "unit", u->name, "was_active", u->was_active,
			"restarted", u->was_active && !u->restart_error,
			"restart_error", u->restart_error));
	}
	/* "service": the first unit, as before several printers were known */
	return json_pack("{s:o, s:O?, s:o}", "boards", boards, "service",
			 json_array_get(services, 0), "services", services);
}

static void summary(struct flow *f)
{
	size_t i;

	if (f->n == 1 && f->jobs[0].state == J_FLASHED) {
		kf_out_result(f->ctx->out, "Flashed %s via %s in %.1fs", f->jobs[0].b->key,
			      f->jobs[0].method_used, (double)f->jobs[0].flash_ms / 1000.0);
		return;
	}
	if (f->n == 1)
		return;
	kf_out_result(f->ctx->out, "\n%-18s %-11s %-8s %s", "board", "method", "result",
		      "seconds");
	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];
		const char *res = j->state == J_FLASHED ? "flashed"
				: j->state == J_FAILED ? "FAILED" : "skipped";

		kf_out_result(f->ctx->out, "%-18s %-11s %-8s %5.1f%s%s", j->b->key,
			      j->method_used ? j->method_used : "-", res,
			      (double)j->flash_ms / 1000.0,
			      j->state == J_SKIPPED ? "  " : j->err.what ? "  " : "",
			      j->state == J_SKIPPED ? j->skip_reason
						    : j->err.what ? j->err.what : "");
	}
}

/* The run's outcome, into ctx->err: one board's own error, or a count. */
static int outcome(struct flow *f, int r)
{
	size_t i, failed = 0, refused = 0, total = 0;
	struct job *only = NULL;

	for (i = 0; i < f->n; i++) {
		struct job *j = &f->jobs[i];

		if (j->state == J_SKIPPED)
			continue;
		total++;
		if (j->state == J_FAILED || j->state == J_ACTIVE) {
			failed++;
			refused += j->err.code == KF_EREFUSED;
			only = j;
		}
	}
	if (f->signal) {
		if (only && only->err.code == KF_EINTERRUPTED) {
			kf_error_release(f->ctx->err);
			*f->ctx->err = only->err;
			memset(&only->err, 0, sizeof(only->err));
		} else if (!f->ctx->err->what) {
			kf_error_set(f->ctx->err, KF_EINTERRUPTED, "stopped by signal %d (%s)",
				     f->signal, strsignal(f->signal));
		}
		f->ctx->err->code = KF_EINTERRUPTED;
		f->ctx->err->signal = f->signal;
		r = KF_EINTERRUPTED;
	} else if (r < 0) {
		/* a whole-run error (refusal, stop failure) is already set */
	} else if (f->o->dry_run && !failed) {
		/* nothing was meant to happen; a refusal is reported as the
		 * real run would report it */
	} else if (failed == 1 && total == 1) {
		kf_error_release(f->ctx->err);
		*f->ctx->err = only->err;
		memset(&only->err, 0, sizeof(only->err));
		r = f->ctx->err->code;
	} else if (failed) {
		r = refused == failed ? KF_EREFUSED : KF_EFAILED;
		kf_error_set(f->ctx->err, r, "%zu of %zu boards failed", failed, total);
		for (i = 0; i < f->n; i++)
			if (f->jobs[i].state == J_FAILED && f->jobs[i].err.what)
				kf_error_step(f->ctx->err, "%s: %s", f->jobs[i].b->key,
					      f->jobs[i].err.what);
	} else if (total == 0) {
		r = kf_error_set(f->ctx->err, KF_EFAILED, "no board could be flashed");
		kf_error_step(f->ctx->err, "kflash list");
	}
	for (i = 0; i < f->n_units; i++) {
		const char *e = f->units[i].restart_error;

		if (!e)
			continue;
		if (r == 0)
			r = kf_error_set(f->ctx->err, KF_EFAILED, "%s", e);
		else
			kf_error_note(f->ctx->err, "%s", e);
	}
	return r;
}

int kf_flow_flash(struct kf_ctx *ctx, struct kf_registry *reg, struct kf_board **boards,
		  size_t n, const struct kf_flash_opts *o)
{
	struct flow f = { .ctx = ctx, .reg = reg, .o = o, .s = &reg->settings, .n = n,
			  .lock_fd = -1 };
	enum kf_method forced = KF_METHOD_DEFAULT;
	size_t i;
	int r;

	if (o->method && (kf_method_parse(o->method, &forced) < 0 ||
			  forced == KF_METHOD_DEFAULT))
		return kf_usage_error(ctx, "flash", "--method must be katapult or "
				      "make-flash, not '%s'", o->method);
	f.jobs = kf_xcalloc(n + 1, sizeof(*f.jobs));
	for (i = 0; i < n; i++) {
		f.jobs[i].b = boards[i];
		f.jobs[i].lock_fd = -1;
		f.jobs[i].method = forced != KF_METHOD_DEFAULT ? forced
				 : kf_board_method(boards[i], f.s);
	}
	r = kf_klipper_dir(ctx, f.s, &f.kdir);
	if (r < 0)
		goto out;

	r = discovery(&f);
	if (r == 0 && active_jobs(&f))
		r = config_check(&f);
	/* which printer each board belongs to (asks, changes nothing) */
	if (r == 0 && active_jobs(&f))
		r = plan_units(&f);
	if (r == 0 && o->dry_run) {
		dry_run(&f);
		for (i = 0; i < n; i++)
			if (f.jobs[i].state == J_ACTIVE)
				f.jobs[i].state = J_SKIPPED, f.jobs[i].skip_reason = "dry run";
		goto out;
	}
	/* one kflash at a time from here: two would build into the same
	 * directories and fight over the boards */
	if (r == 0 && active_jobs(&f))
		r = kf_lock_take(ctx, &f.lock_fd);
	if (r == 0 && active_jobs(&f))
		r = lock_boards(&f);
	/* nothing prints on those printers: checked before any build loads
	 * the host, and again before the stop */
	if (r == 0 && active_jobs(&f))
		r = print_guard(&f);
	if (r == 0 && active_jobs(&f))
		r = build_all(&f);
	if (r == 0 && active_jobs(&f))
		r = preflight(&f);
	if (r == 0 && active_jobs(&f))
		r = service_stop(&f);
	if (r == 0 && active_jobs(&f)) {
		int m = kf_os_monitor_open(ctx->ops, &f.mon);

		if (m < 0) {
			r = kf_error_set(ctx->err, KF_EFAILED, "cannot watch udev for the "
					 "boards' return: %s", strerror(-m));
			f.mon = NULL;
		}
	}
	for (i = 0; r == 0 && i < n && !f.signal; i++)
		if (f.jobs[i].state == J_ACTIVE)
			flash_one(&f, &f.jobs[i]);
	if (r == 0)
		verify_all(&f);
	/* every path from here on: put the service back */
	service_restore(&f);
	if (r == 0 && !f.signal)
		check_versions(&f);
out:
	r = outcome(&f, r);
	if (!o->dry_run)
		summary(&f);
	kf_out_set_json(ctx->out, summary_json(&f));
	service_restore(&f);
	for (i = 0; i < n; i++) {
		struct job *j = &f.jobs[i];

		free(j->devnode);
		free(j->by_id);
		free(j->dev_mcu);
		free(j->lock_id);
		free(j->port);
		free(j->cfg_path);
		kf_kconfig_release(&j->cfg);
		kf_build_result_release(&j->build);
		kf_error_release(&j->err);
		free(j->err.note);
	}
	if (f.mon)
		kf_os_monitor_close(ctx->ops, f.mon);
	for (i = 0; i < f.n_seen; i++)
		kf_device_release(&f.seen[i]);
	free(f.seen);
	free(f.jobs);
	free(f.kdir);
	for (i = 0; i < f.n_units; i++) {
		free(f.units[i].name);
		free(f.units[i].url);
		free(f.units[i].restart_error);
	}
	free(f.units);
	kf_instances_release(&f.inst);
	return r;
}
