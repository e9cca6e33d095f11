/* error.c - building and rendering kflash's error reports. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kflash/error.h"
#include "kflash/util.h"

/* what, cause, command and note are text: a stray KF_CMD mark is dropped */
static void set_str(char **dst, const char *fmt, va_list ap)
{
	char *s = kf_vasprintf(fmt, ap);

	free(*dst);
	*dst = kf_unmark(s);
	free(s);
}

char *kf_unmark(const char *text)
{
	char *s = kf_xstrdup(text), *d = s;
	const char *p;

	for (p = text; *p; p++)
		if (*p != KF_CMD_BEGIN && *p != KF_CMD_END)
			*d++ = *p;
	*d = '\0';
	return s;
}

int kf_error_set(struct kf_error *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	kf_error_release(e);
	e->code = code;
	va_start(ap, fmt);
	set_str(&e->what, fmt, ap);
	va_end(ap);
	return code;
}

void kf_error_errno(struct kf_error *e, int r)
{
	if (e)
		e->errnum = r < 0 ? -r : r;
}

/* Linux's errno names, as glibc 2.32's strerrorname_np gives them (its
 * aliases EWOULDBLOCK, EDEADLOCK and ENOTSUP under EAGAIN, EDEADLK and
 * EOPNOTSUPP). Our own table: Debian 11's glibc (2.31) has no
 * strerrorname_np. */
#define E(name) [name] = #name,
static const char *const errno_names[] = {
	E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG)
	E(ENOEXEC) E(EBADF) E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT)
	E(ENOTBLK) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR) E(EISDIR)
	E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY) E(EFBIG) E(ENOSPC)
	E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(EDOM) E(ERANGE) E(EDEADLK)
	E(ENAMETOOLONG) E(ENOLCK) E(ENOSYS) E(ENOTEMPTY) E(ELOOP) E(ENOMSG)
	E(EIDRM) E(ECHRNG) E(EL2NSYNC) E(EL3HLT) E(EL3RST) E(ELNRNG) E(EUNATCH)
	E(ENOCSI) E(EL2HLT) E(EBADE) E(EBADR) E(EXFULL) E(ENOANO) E(EBADRQC)
	E(EBADSLT) E(EBFONT) E(ENOSTR) E(ENODATA) E(ETIME) E(ENOSR) E(ENONET)
	E(ENOPKG) E(EREMOTE) E(ENOLINK) E(EADV) E(ESRMNT) E(ECOMM) E(EPROTO)
	E(EMULTIHOP) E(EDOTDOT) E(EBADMSG) E(EOVERFLOW) E(ENOTUNIQ) E(EBADFD)
	E(EREMCHG) E(ELIBACC) E(ELIBBAD) E(ELIBSCN) E(ELIBMAX) E(ELIBEXEC)
	E(EILSEQ) E(ERESTART) E(ESTRPIPE) E(EUSERS) E(ENOTSOCK) E(EDESTADDRREQ)
	E(EMSGSIZE) E(EPROTOTYPE) E(ENOPROTOOPT) E(EPROTONOSUPPORT)
	E(ESOCKTNOSUPPORT) E(EOPNOTSUPP) E(EPFNOSUPPORT) E(EAFNOSUPPORT)
	E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH) E(ENETRESET)
	E(ECONNABORTED) E(ECONNRESET) E(ENOBUFS) E(EISCONN) E(ENOTCONN)
	E(ESHUTDOWN) E(ETOOMANYREFS) E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTDOWN)
	E(EHOSTUNREACH) E(EALREADY) E(EINPROGRESS) E(ESTALE) E(EUCLEAN)
	E(ENOTNAM) E(ENAVAIL) E(EISNAM) E(EREMOTEIO) E(EDQUOT) E(ENOMEDIUM)
	E(EMEDIUMTYPE) E(ECANCELED) E(ENOKEY) E(EKEYEXPIRED) E(EKEYREVOKED)
	E(EKEYREJECTED) E(EOWNERDEAD) E(ENOTRECOVERABLE) E(ERFKILL)
	E(EHWPOISON)
};
#undef E

const char *kf_errno_name(int errnum, char *buf, size_t len)
{
	const char *name = errnum > 0 && (size_t)errnum < sizeof(errno_names) /
			   sizeof(errno_names[0]) ? errno_names[errnum] : NULL;

	if (name)
		return name;
	snprintf(buf, len, "errno %d", errnum);
	return buf;
}

void kf_error_command(struct kf_error *e, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	set_str(&e->command, fmt, ap);
	va_end(ap);
}

void kf_error_context(struct kf_error *e, const char *fmt, ...)
{
	va_list ap;
	char *head, *what;

	if (!e)
		return;
	va_start(ap, fmt);
	head = kf_vasprintf(fmt, ap);
	va_end(ap);
	what = e->what ? kf_asprintf("%s: %s", head, e->what) : kf_xstrdup(head);
	free(head);
	free(e->what);
	e->what = what;
	if (!e->code)
		e->code = KF_EFAILED;
}

void kf_error_cause(struct kf_error *e, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	set_str(&e->cause, fmt, ap);
	va_end(ap);
}

void kf_error_step(struct kf_error *e, const char *fmt, ...)
{
	va_list ap;

	if (!e || e->n_steps == KF_ERROR_MAX_STEPS)
		return;
	va_start(ap, fmt);
	e->marked[e->n_steps] = kf_vasprintf(fmt, ap);
	va_end(ap);
	e->steps[e->n_steps] = kf_unmark(e->marked[e->n_steps]);
	e->n_steps++;
}

void kf_error_note(struct kf_error *e, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	set_str(&e->note, fmt, ap);
	va_end(ap);
}

void kf_error_release(struct kf_error *e)
{
	size_t i;

	free(e->what);
	free(e->command);
	free(e->cause);
	for (i = 0; i < e->n_steps; i++) {
		free(e->steps[i]);
		free(e->marked[i]);
	}
	/* the note survives a replaced error: it is a separate failure */
	{
		char *note = e->note;
		memset(e, 0, sizeof(*e));
		e->note = note;
	}
}

int kf_exit_code(int r, const struct kf_error *e)
{
	int code = r;

	if (r >= 0)
		return KF_EXIT_OK;
	if (e && e->code)
		code = e->code;
	switch (code) {
	case KF_EUSAGE:
	case KF_EINPUT:
		return KF_EXIT_USAGE;
	case KF_EREFUSED:
		return KF_EXIT_REFUSED;
	case KF_EINTERRUPTED:
		return KF_EXIT_SIGNAL_BASE + (e ? e->signal : 0);
	default:
		return KF_EXIT_FAILED;
	}
}

/* Columns a run of UTF-8 takes (one a character; marks take none). */
static int columns(const char *s, size_t n)
{
	int c = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80 && s[i] != KF_CMD_BEGIN &&
		    s[i] != KF_CMD_END)
			c++;
	return c;
}

/* The end of the word at p: up to a space or a newline outside KF_CMD
 * marks (inside them spaces do not end it) or the end of the line. */
static const char *word_end(const char *p)
{
	bool cmd = false;

	for (; *p && *p != '\n'; p++) {
		if (*p == KF_CMD_BEGIN)
			cmd = true;
		else if (*p == KF_CMD_END)
			cmd = false;
		else if (*p == ' ' && !cmd)
			break;
	}
	return p;
}

/* The most of one word of prose a message shows: a name someone typed
 * 4 KiB long is shown by its start and its size (a command, whole). */
#define WORD_SHOWN 200

/* A word as the terminal gets it: without the KF_CMD marks, and what a
 * message quotes from outside (a device name, an argument, a file) can
 * neither move the cursor nor clear the screen nor break the line: control
 * characters and bytes that are not UTF-8 come out as \xNN. */
static void add_unmarked(struct kf_buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, shown = 0;
	bool cmd = false;

	while (i < n) {
		size_t len = kf_utf8_char(u + i, n - i);

		if (s[i] == KF_CMD_BEGIN || s[i] == KF_CMD_END) {
			cmd = s[i] == KF_CMD_BEGIN;
			i++;
			continue;
		}
		/* a command is shown whole, to be pasted */
		if (shown >= WORD_SHOWN && !cmd) {
			kf_buf_addf(b, "...(%zu bytes)", n);
			return;
		}
		if (!len || u[i] < 0x20 || u[i] == 0x7f) {
			kf_buf_addf(b, "\\x%02x", u[i]);
			i++;
			shown += 4;
			continue;
		}
		kf_buf_add(b, s + i, len);
		i += len;
		shown++;
	}
}

void kf_wrap(struct kf_buf *b, const char *first, const char *indent,
	     const char *text, int width)
{
	const char *p = text;
	const char *prefix = first;

	if (width < 40)
		width = 40;
	do {
		int col = columns(prefix, strlen(prefix));
		int avail = width - col < 20 ? 20 : width - col;
		bool empty = true;

		/* one line of text: words while they fit, at least one */
		kf_buf_addf(b, "%s", prefix);
		while (*p && *p != '\n') {
			const char *w = p, *end;
			int gap, len;

			while (*w == ' ')
				w++;
			if (!*w || *w == '\n') {
				p = w;
				break;
			}
			end = word_end(w);
			gap = empty ? 0 : (int)(w - p);
			len = columns(w, (size_t)(end - w));
			if (!empty && gap + len > avail)
				break;
			if (gap)
				kf_buf_add(b, p, (size_t)gap);
			add_unmarked(b, w, (size_t)(end - w));
			avail -= gap + len;
			empty = false;
			p = end;
		}
		kf_buf_add(b, "\n", 1);
		while (*p == ' ')
			p++;
		if (*p == '\n')
			p++;
		prefix = indent;
	} while (*p);
}

void kf_error_render(const struct kf_error *e, struct kf_buf *b, int width,
		     bool colour)
{
	const char *red = colour ? "\033[1;31m" : "";
	const char *off = colour ? "\033[0m" : "";
	char head[64];
	size_t i;

	if (e->what) {
		snprintf(head, sizeof(head), "%serror:%s ", red, off);
		/* the escape codes take no columns */
		kf_wrap(b, head, "       ", e->what,
			width + (int)(strlen(red) + strlen(off)));
	}
	if (e->errnum) {
		char name[32], *line;

		line = kf_asprintf("%s (%s)", kf_errno_name(e->errnum, name, sizeof(name)),
				   strerror(e->errnum));
		kf_wrap(b, "  errno:   ", "           ", line, width);
		free(line);
	}
	if (e->command) {
		/* one command, whole */
		char *cmd = kf_asprintf(KF_CMD("%s"), e->command);

		kf_wrap(b, "  command: ", "           ", cmd, width);
		free(cmd);
	}
	if (e->cause)
		kf_wrap(b, "  cause:   ", "           ", e->cause, width);
	if (e->n_steps) {
		kf_buf_addf(b, "  to fix:\n");
		for (i = 0; i < e->n_steps; i++) {
			char num[32];

			snprintf(num, sizeof(num), "    %zu. ", i + 1);
			kf_wrap(b, num, "       ", e->marked[i], width);
		}
	}
	if (e->note) {
		snprintf(head, sizeof(head), "%salso:%s  ", red, off);
		kf_wrap(b, head, "       ", e->note,
			width + (int)(strlen(red) + strlen(off)));
	}
}
