/* error.c - building and rendering kflash's error reports. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kflash/error.h"
#include "kflash/util.h"

static void set_str(char **dst, const char *fmt, va_list ap)
{
	free(*dst);
	*dst = kf_vasprintf(fmt, ap);
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
	e->steps[e->n_steps++] = kf_vasprintf(fmt, ap);
	va_end(ap);
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
	for (i = 0; i < e->n_steps; i++)
		free(e->steps[i]);
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

void kf_wrap(struct kf_buf *b, const char *first, const char *indent,
	     const char *text, int width)
{
	const char *p = text;
	const char *prefix = first;
	int avail;

	if (width < 40)
		width = 40;
	do {
		size_t plen = strlen(prefix);
		size_t n = strcspn(p, "\n");
		size_t cut = n;

		avail = width - (int)plen;
		if (avail < 20)
			avail = 20;
		if (n > (size_t)avail) {
			/* break at the last space that fits; a long word
			 * (a path, a command) is kept whole on its own line */
			cut = (size_t)avail;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (cut == 0) {
				cut = strcspn(p, " \n");
			}
		}
		kf_buf_addf(b, "%s%.*s\n", prefix, (int)cut, p);
		p += cut;
		if (*p == ' ' || *p == '\n')
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
	if (e->command)
		kf_wrap(b, "  command: ", "           ", e->command, width);
	if (e->cause)
		kf_wrap(b, "  cause:   ", "           ", e->cause, width);
	if (e->n_steps) {
		kf_buf_addf(b, "  to fix:\n");
		for (i = 0; i < e->n_steps; i++) {
			char num[32];

			snprintf(num, sizeof(num), "    %zu. ", i + 1);
			kf_wrap(b, num, "       ", e->steps[i], width);
		}
	}
	if (e->note) {
		snprintf(head, sizeof(head), "%salso:%s  ", red, off);
		kf_wrap(b, head, "       ", e->note,
			width + (int)(strlen(red) + strlen(off)));
	}
}
