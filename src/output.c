/* output.c - phase labels, colour, progress lines and the --json document. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kflash/output.h"
#include "kflash/util.h"

static const char *const phase_names[] = {
	[KF_PHASE_DISCOVERY] = "Discovery",
	[KF_PHASE_CONFIG] = "Config",
	[KF_PHASE_BUILD] = "Build",
	[KF_PHASE_FLASH] = "Flash",
	[KF_PHASE_VERIFY] = "Verify",
	[KF_PHASE_SERVICE] = "Service",
};

const char *kf_phase_label(enum kf_phase p)
{
	return phase_names[p];
}

static const char *env(const struct kf_ops *ops, const char *name)
{
	return ops ? kf_os_getenv(ops, name) : NULL;
}

static bool is_tty(const struct kf_ops *ops, FILE *f)
{
	int fd = fileno(f);

	return ops && fd >= 0 && kf_os_isatty(ops, fd) == 1;
}

/* A stream that writes through to the real one and lets tee hear it. */
struct kf_out_tee {
	FILE *real;
	int fd;
	kf_out_tee_fn *fn;
	void *data;
};

static ssize_t tee_write(void *cookie, const char *buf, size_t len)
{
	struct kf_out_tee *t = cookie;
	const char *show = buf;
	size_t n = len;

	if (t->fn)
		show = t->fn(t->data, t->fd, buf, len, &n);
	if (show) {
		if (fwrite(show, 1, n, t->real) != n)
			return -1;
		(void)fflush(t->real);
	}
	return (ssize_t)len;
}

static FILE *tee_open(struct kf_out_tee **ret, FILE *real, int fd,
		      const struct kf_out_opts *opts)
{
	struct kf_out_tee *t = kf_xcalloc(1, sizeof(*t));
	FILE *f;

	*t = (struct kf_out_tee){ real, fd, opts->tee, opts->tee_data };
	f = fopencookie(t, "w", (cookie_io_functions_t){ .write = tee_write });
	if (!f) {
		free(t);
		*ret = NULL;
		return real;
	}
	/* one write per message, as the real stream would get it */
	setvbuf(f, NULL, _IONBF, 0);
	*ret = t;
	return f;
}

void kf_out_untee(struct kf_out *o)
{
	size_t i;

	for (i = 0; i < 2; i++)
		if (o->tees[i])
			o->tees[i]->fn = NULL;
}

/* The first locale variable that is set decides, as in setlocale(). */
static bool utf8_locale(const struct kf_ops *ops)
{
	static const char *const vars[] = { "LC_ALL", "LC_CTYPE", "LANG" };
	size_t i;

	for (i = 0; i < 3; i++) {
		const char *v = env(ops, vars[i]);

		if (v && *v)
			return strstr(v, "UTF-8") || strstr(v, "utf8") || strstr(v, "UTF8") ||
			       strstr(v, "utf-8");
	}
	return false;
}

static bool wants_colour(const struct kf_ops *ops, FILE *f,
			 const struct kf_out_opts *opts)
{
	const char *no = env(ops, "NO_COLOR");
	const char *term = env(ops, "TERM");

	if (opts->no_colour || (no && *no))
		return false;
	if (term && strcmp(term, "dumb") == 0)
		return false;
	return is_tty(ops, f);
}

void kf_out_init(struct kf_out *o, const struct kf_ops *ops, FILE *out, FILE *err,
		 const struct kf_out_opts *opts)
{
	bool err_tty;

	memset(o, 0, sizeof(*o));
	o->out = out;
	o->err = err;
	o->json = opts->json;
	o->verbosity = opts->verbosity;
	o->colour = wants_colour(ops, err, opts);
	o->out_colour = wants_colour(ops, out, opts);
	err_tty = is_tty(ops, err);
	o->progress_tty = err_tty && opts->verbosity == KF_NORMAL;
	o->width = 80;
	/* errors wrap to the terminal they are read on; asked only of a
	 * terminal, so a session recorded off one has no such call */
	if (err_tty) {
		int w = kf_os_term_width(ops, fileno(err));

		if (w > 0)
			o->width = w;
	}
	o->utf8 = utf8_locale(ops);
	if (opts->tee) {
		o->out = tee_open(&o->tees[0], out, 1, opts);
		o->err = tee_open(&o->tees[1], err, 2, opts);
	}
}

void kf_out_release(struct kf_out *o)
{
	size_t i;

	json_decref(o->doc);
	o->doc = NULL;
	for (i = 0; i < 2; i++) {
		if (!o->tees[i])
			continue;
		(void)fclose(i == 0 ? o->out : o->err);
		free(o->tees[i]);
		o->tees[i] = NULL;
	}
}

/* A line that quotes what came from outside (a tool's output, a device
 * name) can neither clear the screen nor move the cursor. */
static void shown(FILE *f, const char *fmt, va_list ap)
{
	struct kf_buf b = KF_BUF_INIT;
	char *s = kf_vasprintf(fmt, ap);

	kf_buf_add_shown(&b, s, strlen(s));
	if (b.len)
		fwrite(b.data, 1, b.len, f);
	kf_buf_release(&b);
	free(s);
}

static void vline(struct kf_out *o, FILE *f, const char *prefix,
		  const char *colour, const char *fmt, va_list ap)
{
	kf_out_progress_clear(o);
	if (prefix) {
		if (colour && o->colour)
			fprintf(f, "%s%s\033[0m ", colour, prefix);
		else
			fprintf(f, "%s ", prefix);
	}
	shown(f, fmt, ap);
	fputc('\n', f);
	fflush(f);
}

static const char *phase_colour(enum kf_phase p)
{
	return p == KF_PHASE_SERVICE ? "\033[1;35m" : "\033[1;36m";
}

void kf_out_phase(struct kf_out *o, enum kf_phase p, const char *fmt, ...)
{
	char label[24];
	va_list ap;

	if (o->verbosity == KF_QUIET)
		return;
	snprintf(label, sizeof(label), "[%s]", phase_names[p]);
	va_start(ap, fmt);
	vline(o, o->err, label, phase_colour(p), fmt, ap);
	va_end(ap);
}

void kf_out_ok(struct kf_out *o, enum kf_phase p, const char *fmt, ...)
{
	char label[48];
	va_list ap;

	if (o->verbosity == KF_QUIET)
		return;
	if (o->colour)
		snprintf(label, sizeof(label), "[%s] \033[1;32mok\033[0m",
			 phase_names[p]);
	else
		snprintf(label, sizeof(label), "[%s] ok", phase_names[p]);
	va_start(ap, fmt);
	vline(o, o->err, label, o->colour ? "" : NULL, fmt, ap);
	va_end(ap);
}

void kf_out_info(struct kf_out *o, const char *fmt, ...)
{
	va_list ap;

	if (o->verbosity == KF_QUIET)
		return;
	va_start(ap, fmt);
	vline(o, o->err, NULL, NULL, fmt, ap);
	va_end(ap);
}

void kf_out_verbose(struct kf_out *o, const char *fmt, ...)
{
	va_list ap;

	if (o->verbosity < KF_VERBOSE)
		return;
	va_start(ap, fmt);
	vline(o, o->err, NULL, NULL, fmt, ap);
	va_end(ap);
}

void kf_out_warn(struct kf_out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(o, o->err, "warning:", "\033[1;33m", fmt, ap);
	va_end(ap);
}

void kf_out_progress(struct kf_out *o, const char *fmt, ...)
{
	struct kf_buf line = KF_BUF_INIT;
	char raw[256];
	va_list ap;

	if (!o->progress_tty)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	kf_buf_add_shown(&line, raw, strlen(raw));
	/* keep it on one terminal line */
	if (line.len && (int)line.len > o->width - 1)
		line.data[o->width - 1] = '\0';
	fprintf(o->err, "\r\033[K%s", line.len ? line.data : "");
	kf_buf_release(&line);
	fflush(o->err);
	o->progress_shown = true;
}

void kf_out_progress_clear(struct kf_out *o)
{
	if (!o->progress_shown)
		return;
	fputs("\r\033[K", o->err);
	o->progress_shown = false;
}

void kf_out_result(struct kf_out *o, const char *fmt, ...)
{
	va_list ap;

	if (o->json)
		return;
	kf_out_progress_clear(o);
	va_start(ap, fmt);
	vfprintf(o->out, fmt, ap);
	va_end(ap);
	fputc('\n', o->out);
	fflush(o->out);
}

void kf_out_say(struct kf_out *o, const char *fmt, ...)
{
	va_list ap;

	kf_out_progress_clear(o);
	va_start(ap, fmt);
	vfprintf(o->err, fmt, ap);
	va_end(ap);
	fflush(o->err);
}

void kf_out_help(struct kf_out *o, bool to_stderr, const char *text)
{
	FILE *f = to_stderr ? o->err : o->out;

	kf_out_progress_clear(o);
	fputs(text, f);
	fflush(f);
}

void kf_out_error(struct kf_out *o, const struct kf_error *e)
{
	struct kf_buf b = KF_BUF_INIT;

	kf_out_progress_clear(o);
	kf_error_render(e, &b, o->width, o->colour);
	if (b.data)
		fputs(b.data, o->err);
	fflush(o->err);
	kf_buf_release(&b);
}

void kf_out_set_json(struct kf_out *o, json_t *doc)
{
	json_decref(o->doc);
	o->doc = doc;
}

static json_t *error_json(const struct kf_error *e)
{
	json_t *steps = json_array();
	char name[32];
	size_t i;

	for (i = 0; i < e->n_steps; i++)
		json_array_append_new(steps, json_string(e->steps[i]));
	return json_pack("{s:s?, s:s?, s:s?, s:s?, s:o, s:s?}",
			 "message", e->what, "errno", e->errnum ?
			 kf_errno_name(e->errnum, name, sizeof(name)) : NULL,
			 "command", e->command, "cause", e->cause, "steps", steps,
			 "also", e->note);
}

void kf_out_finish(struct kf_out *o, int exit_code, const struct kf_error *e)
{
	json_t *doc;

	if (!o->json)
		return;
	doc = o->doc ? json_incref(o->doc) : json_object();
	json_object_set_new(doc, "exit_code", json_integer(exit_code));
	if (e && (e->what || e->note))
		json_object_set_new(doc, "error", error_json(e));
	json_dumpf(doc, o->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', o->out);
	fflush(o->out);
	json_decref(doc);
}

void kf_out_oom(void)
{
	fputs("kflash: out of memory\n", stderr);
}
