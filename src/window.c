/* window.c - which Klipper to stop, whether it may be, the stop with the
 * guardian armed, and the start again on every path. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "kflash/flash.h"
#include "kflash/moonraker.h"
#include "kflash/prompt.h"
#include "kflash/service.h"
#include "kflash/util.h"
#include "kflash/window.h"

void kf_window_init(struct kf_window *w, struct kf_run *run)
{
	memset(w, 0, sizeof(*w));
	w->run = run;
}

void kf_window_release(struct kf_window *w)
{
	size_t i;

	for (i = 0; i < w->n_units; i++) {
		free(w->units[i].name);
		free(w->units[i].url);
		free(w->units[i].restart_error);
	}
	free(w->units);
	kf_instances_release(&w->inst);
	memset(w, 0, sizeof(*w));
}

char *kf_sudoers_line(const struct kf_ops *ops, const char *unit)
{
	char *user = kf_sudoers_user(ops);
	char *line = kf_asprintf("%s ALL=(root) NOPASSWD: /usr/bin/systemctl stop %s, "
				 "/usr/bin/systemctl start %s", user, unit, unit);

	free(user);
	return line;
}

static int timeout_ms(const struct kf_window *w)
{
	return w->run->s->timeout_service * 1000;
}

/* ---- which Klipper drives the boards ---------------------------------------- */

static int unit_add(struct kf_window *w, const char *name, const char *url)
{
	size_t i;

	for (i = 0; i < w->n_units; i++)
		if (strcmp(w->units[i].name, name) == 0)
			return (int)i;
	w->units = kf_xrealloc(w->units, (w->n_units + 1) * sizeof(*w->units));
	memset(&w->units[w->n_units], 0, sizeof(*w->units));
	w->units[w->n_units].name = kf_xstrdup(name);
	w->units[w->n_units].url = url ? kf_xstrdup(url) : NULL;
	return (int)w->n_units++;
}

/* Whether instance in may be running a Klipper that holds a board. */
static bool maybe_running(struct kf_window *w, const struct kf_instance *in)
{
	if (!in->unit)
		return true;
	return kf_service_is_active(w->run->ctx->ops, in->unit, timeout_ms(w),
				    &w->run->signal) != 0;
}

void kf_window_plan(struct kf_window *w)
{
	struct kf_run *run = w->run;
	struct kf_instances *is = &w->inst;
	size_t i, k, named = 0;

	kf_instances_find(run->ctx->ops, run->s, is);
	for (i = 0; i < is->n; i++)
		named += is->v[i].unit != NULL;
	for (i = 0; i < run->n; i++) {
		struct kf_job *j = &run->jobs[i];
		struct kf_instance *owner;
		bool open = false;

		j->unit = -1;
		if (j->state != KF_JOB_ACTIVE)
			continue;
		owner = is->override ? &is->v[0]
			: kf_instances_owner(is, j->b->pattern, j->at.label, j->at.node);
		if (!owner && is->n == 1 && is->v[0].unit)
			owner = &is->v[0];	/* the only printer there is */
		if (!owner && !named) {
			/* no Moonraker named a unit: the single-printer default */
			j->unit = unit_add(w, "klipper", is->n ? is->v[0].url : NULL);
			continue;
		}
		if (owner) {
			j->unit = unit_add(w, owner->unit, owner->url);
			continue;
		}
		/* several printers, none names it: fine only if none that
		 * could hold it runs */
		for (k = 0; k < is->n && !open; k++)
			open = !is->v[k].serials_known && maybe_running(w, &is->v[k]);
		if (open) {
			char *urls = kf_instances_urls(is);

			kf_error_set(&j->err, KF_EREFUSED, "cannot tell which printer "
				     "on this host drives %s, so kflash does not know "
				     "which Klipper to stop", j->b->key);
			kf_error_cause(&j->err, "no Klipper config listed by the "
				       "Moonrakers at %s names %s, and one of them did "
				       "not list its MCUs", urls, j->at.label);
			kf_error_step(&j->err, KF_CMD("kflash settings service klipper-N")
				      "   (the unit of the printer that uses %s)", j->b->key);
			kf_error_step(&j->err, KF_CMD("kflash doctor") "   (lists the "
				      "printers it found)");
			free(urls);
			kf_job_fail(run, j, KF_EREFUSED);
		}
	}
}

/* ---- may it be stopped -------------------------------------------------------- */

static int refuse(struct kf_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int refuse(struct kf_error *err, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = kf_vasprintf(fmt, ap);
	va_end(ap);
	kf_error_set(err, KF_EREFUSED, "%s", msg);
	free(msg);
	return KF_EREFUSED;
}

/* A service call that could not be made: its errno, never a guess. */
static int cannot_ask(struct kf_error *err, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int cannot_ask(struct kf_error *err, int r, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = kf_vasprintf(fmt, ap);
	va_end(ap);
	kf_error_set(err, KF_EFAILED, "%s: %s; nothing was stopped", msg,
		     r == -ETIMEDOUT ? "timed out" : strerror(-r));
	kf_error_errno(err, r);
	free(msg);
	return KF_EFAILED;
}

static int refuse_unit_missing(struct kf_window *w, const struct kf_unit *u,
			       struct kf_error *err)
{
	refuse(err, "systemd has no unit %s, so kflash cannot stop the Klipper "
	       "that drives these boards", u->name);
	if (w->inst.override)
		kf_error_cause(err, "the service setting names %s", u->name);
	else
		kf_error_cause(err, "Moonraker did not name the unit of this "
			       "printer (is it running?), and there is no unit %s",
			       u->name);
	kf_error_step(err, KF_CMD("systemctl list-units 'klipper*'")
		      "   (the printers' units)");
	kf_error_step(err, KF_CMD("kflash settings service UNIT") "   (or auto, to "
		      "learn it from Moonraker)");
	return KF_EREFUSED;
}

/* What Moonraker said, when it was no print state: a question on a
 * terminal (asked once a run), else a refusal unless --force. */
static int unknown_print_state(struct kf_window *w, const struct kf_unit *u,
			       const struct kf_print_status *ps, struct kf_error *err)
{
	struct kf_ctx *ctx = w->run->ctx;
	bool yes = false;
	int r;

	if (w->unknown_ok)
		return 0;	/* asked (or forced) once this run */
	if (ctx->force) {
		kf_out_warn(ctx->out, "Moonraker at %s gave no print state (%s); "
			    "going on because of --force", u->url, ps->said);
		w->unknown_ok = true;
		return 0;
	}
	if (ctx->interactive) {
		kf_out_warn(ctx->out, "Moonraker at %s gave no print state (%s): "
			    "kflash cannot tell whether a print is running", u->url,
			    ps->said);
		r = kf_confirm(ctx, "Is the printer idle, and may kflash stop "
			       "Klipper?", false, err, &yes);
		if (r == KF_EINTERRUPTED)
			kf_run_heard(w->run, err->signal);
		/* a terminal that cannot be read is its error, not a "no";
		 * the end of input (-EPIPE) is no answer, so no */
		if (r < 0 && r != -EPIPE)
			return r;
		if (yes) {
			w->unknown_ok = true;
			return 0;
		}
	}
	refuse(err, "Moonraker at %s gave no print state (%s), so kflash cannot check "
	       "that nothing is printing on %s", u->url, ps->said, u->name);
	if (ps->auth) {
		kf_error_cause(err, "this Moonraker requires a login");
		kf_error_step(err, KF_CMD("kflash settings moonraker_api_key KEY")
			      "   (the key: "
			      KF_CMD("~/moonraker/scripts/fetch-apikey.sh")
			      ", or Mainsail/Fluidd's API key in the settings)");
	} else if (!ps->reachable) {
		kf_error_step(err, KF_CMD("sudo systemctl start moonraker"));
		kf_error_step(err, KF_CMD("kflash settings moonraker_url URL")
			      "   (if it runs elsewhere)");
	} else {
		kf_error_step(err, KF_CMD("curl -s '%s/printer/objects/query?print_stats'")
			      "   (what Moonraker answers)", u->url);
		kf_error_step(err, KF_CMD("sudo systemctl restart moonraker"));
	}
	kf_error_step(err, "or, when you are sure the printer is idle: "
		      KF_CMD("kflash --force flash ..."));
	return KF_EREFUSED;
}

int kf_window_print_guard(struct kf_window *w, struct kf_error *err)
{
	struct kf_run *run = w->run;
	size_t i;
	int r;

	w->moonraker = true;
	for (i = 0; i < w->n_units; i++) {
		struct kf_unit *u = &w->units[i];
		struct kf_moonraker m = { u->url, run->s->moonraker_api_key };
		struct kf_print_status ps;

		r = kf_service_is_active(run->ctx->ops, u->name, timeout_ms(w),
					 &run->signal);
		if (r == -EINTR && kf_run_signalled(run))
			return KF_EINTERRUPTED;
		if (r == -ENOENT)
			return refuse_unit_missing(w, u, err);
		if (r < 0)
			return cannot_ask(err, r, "cannot ask systemd whether %s runs",
					  u->name);
		u->active = r == 1;
		u->asked = true;
		if (!u->stopped)
			u->was_active = u->active;
		if (!u->active)
			continue;
		if (!u->url) {
			struct kf_print_status none = { .said = (char *)"no Moonraker URL" };

			r = unknown_print_state(w, u, &none, err);
			if (r < 0)
				return r;
			w->moonraker = false;
			continue;
		}
		kf_moonraker_print_status(run->ctx->ops, &m, &ps);
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
			bool paused = strcmp(ps.state, "paused") == 0;

			if (paused)
				r = refuse(err, "the print of %s is paused (%.0f%% done); "
					   "kflash will not stop %s now", ps.filename ?
					   ps.filename : "a file", ps.progress * 100.0, u->name);
			else
				r = refuse(err, "the printer is printing %s (%.0f%% done); "
					   "kflash will not stop %s now", ps.filename ?
					   ps.filename : "a file", ps.progress * 100.0, u->name);
			kf_error_step(err, paused ? "resume the print and let it finish, or "
				      "cancel it, then run kflash again" : "let the print "
				      "finish (or cancel it), then run kflash again");
		} else if (ps.verdict == KF_PRINT_UNKNOWN) {
			w->moonraker = false;
			r = unknown_print_state(w, u, &ps, err);
		}
		kf_print_status_release(&ps);
		if (r < 0)
			return r;
	}
	return 0;
}

int kf_window_can_manage(struct kf_window *w, struct kf_error *err)
{
	struct kf_run *run = w->run;
	size_t i;
	int r;

	for (i = 0; i < w->n_units; i++) {
		const char *unit = w->units[i].name;
		char *line, *add;

		r = kf_service_can_manage(run->ctx->ops, unit, timeout_ms(w), &run->signal);
		if (r == -EINTR && kf_run_signalled(run))
			return KF_EINTERRUPTED;
		if (r == 1)
			continue;
		if (r < 0)
			return cannot_ask(err, r, "cannot ask sudo whether it may stop and "
					  "start %s without a password", unit);
		line = kf_sudoers_line(run->ctx->ops, unit);
		refuse(err, "sudo would ask for a password to stop and start %s; kflash "
		       "never waits at a password prompt with Klipper stopped", unit);
		kf_error_cause(err, "this user may not run 'systemctl stop %s' and "
			       "'systemctl start %s' through sudo without a password",
			       unit, unit);
		add = kf_sudoers_add_command(line);
		kf_error_step(err, KF_CMD("%s"), add);
		free(add);
		free(line);
		return KF_EREFUSED;
	}
	return 0;
}

/* ---- the window ----------------------------------------------------------------- */

int kf_window_open(struct kf_window *w, struct kf_error *err)
{
	struct kf_run *run = w->run;
	const char **active = kf_xcalloc(w->n_units + 1, sizeof(*active));
	size_t i, n = 0;
	int r;

	/* whether each runs was asked by the print check just before */
	for (i = 0; i < w->n_units; i++) {
		struct kf_unit *u = &w->units[i];

		u->was_active = u->active;
		if (u->was_active)
			active[n++] = u->name;
		else
			kf_out_phase(run->ctx->out, KF_PHASE_SERVICE, "%s is not running; "
				     "it will be left stopped", u->name);
	}
	r = 0;
	if (!n)
		goto out;
	/* armed before the stop: if kflash dies from here on, the guardian
	 * starts the units */
	r = kf_guard_start(&w->guard, run->ctx->ops, active, timeout_ms(w));
	if (r < 0) {
		int e = r;

		r = kf_error_set(err, KF_EFAILED, "cannot start the guardian process: "
				 "%s; Klipper was not stopped", strerror(-e));
		kf_error_errno(err, e);
		goto out;
	}
	w->guarded = true;
	for (i = 0; i < w->n_units; i++) {
		struct kf_unit *u = &w->units[i];

		if (!u->was_active)
			continue;
		kf_out_phase(run->ctx->out, KF_PHASE_SERVICE, "stopping %s", u->name);
		u->stopped = true;	/* from here a start is owed, even if stop fails */
		r = kf_service_stop(run->ctx->ops, u->name, timeout_ms(w), &run->signal);
		if (r < 0) {
			int e = r;

			r = kf_error_set(err, KF_EFAILED, "stopping %s failed: %s", u->name,
					 e == -ETIMEDOUT ? "timed out" : strerror(-e));
			if (e != -ETIMEDOUT)
				kf_error_errno(err, e);
			kf_error_command(err, "sudo -n systemctl stop %s", u->name);
			kf_error_step(err, KF_CMD("systemctl status %s"), u->name);
			goto out;
		}
		if (kf_run_signalled(run)) {
			r = KF_EINTERRUPTED;
			goto out;
		}
	}
out:
	free(active);
	return r;
}

void kf_window_close(struct kf_window *w)
{
	struct kf_run *run = w->run;
	const struct kf_ops *ops = run->ctx->ops;
	size_t i;
	int r;

	for (i = 0; i < w->n_units; i++) {
		struct kf_unit *u = &w->units[i];

		if (!u->stopped)
			continue;
		kf_out_phase(run->ctx->out, KF_PHASE_SERVICE, "starting %s again", u->name);
		r = kf_service_start(ops, u->name, timeout_ms(w), &run->signal);
		if (r < 0 && r != -ETIMEDOUT) {
			/* one more try: a printer left without Klipper is the
			 * worst outcome kflash can have */
			kf_out_warn(run->ctx->out, "starting %s failed (%s); trying again",
				    u->name, strerror(-r));
			(void)kf_os_sleep_until(ops, kf_os_now(ops) + 1000);
			r = kf_service_start(ops, u->name, timeout_ms(w), &run->signal);
		}
		if (r < 0) {
			u->restart_error = kf_asprintf(
				"starting %s again failed (%s); start it by hand: "
				"sudo systemctl start %s", u->name,
				r == -ETIMEDOUT ? "timed out" : strerror(-r), u->name);
		} else {
			kf_out_ok(run->ctx->out, KF_PHASE_SERVICE, "%s is running again",
				  u->name);
			u->restarted = true;
		}
		u->stopped = false;
		(void)kf_run_signalled(run);
	}
	if (w->guarded) {
		kf_guard_end(&w->guard, &run->signal);
		w->guarded = false;
	}
}

/* ---- after ------------------------------------------------------------------------ */

static char *dict_version(struct kf_window *w, const struct kf_job *j)
{
	char *path = kf_asprintf("%s/klipper.dict", j->build.build_dir), *text = NULL;
	char *v = NULL;
	json_t *doc;

	if (kf_os_read_file(w->run->ctx->ops, path, &text, NULL) == 0) {
		doc = json_loads(text, 0, NULL);
		if (json_is_string(json_object_get(doc, "version")))
			v = kf_xstrdup(json_string_value(json_object_get(doc, "version")));
		json_decref(doc);
	}
	free(text);
	free(path);
	return v;
}

static void check_unit_versions(struct kf_window *w, int unit)
{
	struct kf_run *run = w->run;
	const struct kf_ops *ops = run->ctx->ops;
	struct kf_unit *u = &w->units[unit];
	struct kf_moonraker m = { u->url, run->s->moonraker_api_key };
	struct kf_mcu_version *mcus = NULL;
	size_t n = 0, i, k;
	int64_t deadline;
	bool any = false;

	for (i = 0; i < run->n; i++)
		any |= run->jobs[i].state == KF_JOB_DONE && run->jobs[i].unit == unit;
	if (!any || !u->was_active || !u->url)
		return;
	/* Klipper needs a moment to reach its MCUs after a start */
	deadline = kf_os_now(ops) + 15000;
	for (;;) {
		/* Moonraker answers the object list once Klipper is ready */
		if (kf_moonraker_mcus(ops, &m, &mcus, &n) == 0)
			break;
		kf_mcu_versions_free(mcus, n);
		mcus = NULL;
		n = 0;
		if (kf_os_now(ops) >= deadline ||
		    kf_os_sleep_until(ops, kf_os_now(ops) + 1000) < 0) {
			kf_out_verbose(run->ctx->out, "Moonraker has no MCU versions; "
				       "skipping the version check");
			(void)kf_run_signalled(run);
			return;
		}
	}
	for (i = 0; i < run->n; i++) {
		struct kf_job *j = &run->jobs[i];
		char *want;
		bool seen = false, match = false;

		if (j->state != KF_JOB_DONE || j->unit != unit || !(want = dict_version(w, j)))
			continue;
		for (k = 0; k < n; k++) {
			if (!mcus[k].mcu || strcmp(mcus[k].mcu, j->b->mcu) != 0)
				continue;
			seen = true;
			match |= mcus[k].version && strcmp(mcus[k].version, want) == 0;
		}
		j->reported = match ? 1 : seen ? -1 : 0;
		if (match)
			kf_out_ok(run->ctx->out, KF_PHASE_VERIFY, "%s runs %s", j->b->key, want);
		else if (seen)
			kf_out_warn(run->ctx->out, "%s does not report %s after flashing; "
				    "check its [mcu] section and FIRMWARE_RESTART, then "
				    "kflash list", j->b->key, want);
		free(want);
	}
	kf_mcu_versions_free(mcus, n);
}

void kf_window_check_versions(struct kf_window *w)
{
	size_t i;

	if (w->run->signal || !w->moonraker)
		return;
	for (i = 0; i < w->n_units && !w->run->signal; i++)
		check_unit_versions(w, (int)i);
}

int kf_window_outcome(const struct kf_window *w, int r, struct kf_error *err)
{
	size_t i;

	for (i = 0; i < w->n_units; i++) {
		const char *e = w->units[i].restart_error;

		if (!e)
			continue;
		if (r == 0)
			r = kf_error_set(err, KF_EFAILED, "%s", e);
		else
			kf_error_note(err, "%s", e);
	}
	return r;
}

json_t *kf_window_json(const struct kf_window *w)
{
	json_t *services = json_array();
	size_t i;

	for (i = 0; i < w->n_units; i++) {
		const struct kf_unit *u = &w->units[i];

		json_array_append_new(services, json_pack(
			"{s:s, s:o, s:b, s:s?}", "unit", u->name, "was_active",
			u->asked ? json_boolean(u->was_active) : json_null(),
			"restarted", u->restarted,
			"restart_error", u->restart_error));
	}
	return services;
}
