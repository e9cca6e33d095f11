/* util.c - small memory and string helpers shared by every module. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kflash/ops.h"
#include "kflash/output.h"
#include "kflash/util.h"

/* names longer than this are never a near miss (kf_near_miss) */
#define KF_NEAR_MAX 64

static void oom(void)
{
	kf_out_oom();
	abort();
}

void *kf_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom();
	return p;
}

void *kf_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom();
	return p;
}

void *kf_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *kf_xstrdup(const char *s)
{
	return kf_xstrndup(s, strlen(s));
}

char *kf_xstrndup(const char *s, size_t n)
{
	char *p = kf_xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *kf_vasprintf(const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	return s;
}

char *kf_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = kf_vasprintf(fmt, ap);
	va_end(ap);
	return s;
}

bool kf_startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool kf_endswith(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Edits between a and b (optimal string alignment: a swap of neighbours
 * is one edit), or more than max when it is surely more. */
static size_t edits(const char *a, const char *b, size_t max)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t d[KF_NEAR_MAX + 1][KF_NEAR_MAX + 1];

	if (la > KF_NEAR_MAX || lb > KF_NEAR_MAX || (la > lb ? la - lb : lb - la) > max)
		return max + 1;
	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++)
		for (j = 1; j <= lb; j++) {
			size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);

			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[la][lb];
}

const char *kf_near_miss(const char *word, const char *const *names, size_t n)
{
	const char *best = NULL;
	size_t i, least = 3;

	for (i = 0; i < n; i++) {
		size_t e = edits(word, names[i], 2);

		if (e == 0)
			return NULL;
		if (e < least && e < strlen(word)) {
			least = e;
			best = names[i];
		}
	}
	return best;
}

void kf_buf_add(struct kf_buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;

		while (cap < b->len + len + 1)
			cap *= 2;
		b->data = kf_xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void kf_buf_addf(struct kf_buf *b, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = kf_vasprintf(fmt, ap);
	va_end(ap);
	kf_buf_add(b, s, strlen(s));
	free(s);
}

/* The length of the well-formed UTF-8 character at s (of n bytes), or 0. */
size_t kf_utf8_char(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
		   : s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
	char one[5] = { 0 };

	if (!len || len > n)
		return 0;
	memcpy(one, s, len);
	return kf_utf8_valid(one) ? len : 0;
}

void kf_buf_add_shown(struct kf_buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t len = kf_utf8_char(u + i, n - i);

		if (u[i] == '\n' || u[i] == '\t') {
			kf_buf_add(b, s + i++, 1);
		} else if (!len || u[i] < 0x20 || u[i] == 0x7f) {
			kf_buf_addf(b, "\\x%02x", u[i++]);
		} else {
			kf_buf_add(b, s + i, len);
			i += len;
		}
	}
}

void kf_buf_release(struct kf_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *kf_expand_home(const struct kf_ops *ops, const char *path)
{
	const char *home = kf_os_getenv(ops, "HOME");

	if (home && (strcmp(path, "~") == 0 || kf_startswith(path, "~/")))
		return kf_asprintf("%s%s", home, path + 1);
	return kf_xstrdup(path);
}

bool kf_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p, n, i;
		unsigned long cp;

		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return false;
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		p += n + 1;
	}
	return true;
}

int kf_read_regular(const struct kf_ops *ops, const char *path, off_t max,
		    char **ret_buf, size_t *ret_len, off_t *ret_size)
{
	enum kf_file_kind k;
	off_t size = 0;
	int r = kf_os_file_kind(ops, path, &k, &size);

	*ret_buf = NULL;
	if (ret_size)
		*ret_size = size;
	if (r < 0)
		return r;
	if (k == KF_FILE_NONE)
		return -ENOENT;
	if (k != KF_FILE_REG)
		return -EINVAL;
	if (size > max)
		return -EFBIG;
	return kf_os_read_file(ops, path, ret_buf, ret_len);
}
