/* util.h - small memory and string helpers shared by every module. */
#ifndef KFLASH_UTIL_H
#define KFLASH_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

/* Allocation failure is not recoverable in a CLI: these abort with a
 * message instead of returning NULL, so callers stay readable. */
void *kf_xmalloc(size_t n);
void *kf_xcalloc(size_t n, size_t size);
void *kf_xrealloc(void *p, size_t n);
char *kf_xstrdup(const char *s);
char *kf_xstrndup(const char *s, size_t n);
char *kf_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *kf_vasprintf(const char *fmt, va_list ap);

bool kf_startswith(const char *s, const char *prefix);
bool kf_endswith(const char *s, const char *suffix);
/* Whether s is well-formed UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF): what JSON, and so the registry, can hold. */
bool kf_utf8_valid(const char *s);
/* The one of names[0..n) that word is a near miss of: at most two edits
 * away (a letter missing, extra, another, or two swapped) and fewer edits
 * than word has letters; the first of equally near ones; NULL when none
 * is near, or word is one of them. For "did you mean 'flash'?". */
const char *kf_near_miss(const char *word, const char *const *names, size_t n);

/* Growable byte buffer, always NUL-terminated. */
struct kf_buf {
	char *data;
	size_t len;
	size_t cap;
};
#define KF_BUF_INIT { NULL, 0, 0 }
void kf_buf_add(struct kf_buf *b, const void *data, size_t len);
void kf_buf_addf(struct kf_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kf_buf_release(struct kf_buf *b);
/* The length of the well-formed UTF-8 character at s (of n bytes), or 0. */
size_t kf_utf8_char(const unsigned char *s, size_t n);
/* s as a terminal may be given it: control bytes (but a line break and a
 * tab) and bytes that are not UTF-8 are added as \xNN. */
void kf_buf_add_shown(struct kf_buf *b, const char *s, size_t n);

/* systemd-style scope cleanup for heap pointers */
static inline void kf_freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ __attribute__((cleanup(kf_freep)))



struct kf_ops;

/* "~/klipper" -> "$HOME/klipper" (HOME as the ops table reads it); other
 * paths copied. malloc'd. */
char *kf_expand_home(const struct kf_ops *ops, const char *path);
/* Reads a file kflash keeps or is pointed at (the registry, a config): a
 * regular file of at most max bytes. -ENOENT when missing, -EINVAL when it
 * is something else (a FIFO would block, a device never ends), -EFBIG
 * when larger (then *ret_size says how large), else read_file's. */
int kf_read_regular(const struct kf_ops *ops, const char *path, off_t max,
		    char **ret_buf, size_t *ret_len, off_t *ret_size);

#endif
