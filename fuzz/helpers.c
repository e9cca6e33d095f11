/* helpers.c - splitting an input and the other helpers of fuzz.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kflash/registry.h"
#include "kflash/util.h"

void fuzz_split(const uint8_t *data, size_t size, size_t max, struct fuzz_parts *p)
{
	size_t at = 0;

	memset(p, 0, sizeof(*p));
	if (max > FUZZ_MAX_PARTS)
		max = FUZZ_MAX_PARTS;
	while (p->n < max && (at < size || p->n == 0)) {
		const uint8_t *nul = memchr(data + at, '\0', size - at);
		size_t n = nul ? (size_t)(nul - (data + at)) : size - at;

		/* the last part takes the rest, NULs and all */
		if (p->n + 1 == max)
			n = size - at;
		p->v[p->n] = kf_xmalloc(n + 1);
		if (n)
			memcpy(p->v[p->n], data + at, n);
		p->v[p->n][n] = '\0';
		p->len[p->n++] = n;
		at += n + 1;
		if (!nul)
			break;
	}
}

void fuzz_parts_free(struct fuzz_parts *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->v[i]);
	memset(p, 0, sizeof(*p));
}

char *fuzz_str(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);

	return kf_xstrndup((const char *)data, nul ? (size_t)(nul - data) : size);
}

void fuzz_error_done(struct kf_error *e)
{
	struct kf_buf b = KF_BUF_INIT;

	if (e->what) {
		kf_error_render(e, &b, 80, false);
		fuzz_assert(b.data && b.len > 0);
		kf_buf_release(&b);
		kf_error_render(e, &b, 20, true);
		kf_buf_release(&b);
	}
	kf_error_release(e);
	free(e->note);
	e->note = NULL;
}

void fuzz_settings_release(struct kf_settings *s)
{
	struct kf_registry r = KF_REGISTRY_INIT;

	r.settings = *s;
	kf_registry_release(&r);
	memset(s, 0, sizeof(*s));
}

void fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: broken promise: %s\n", file, line, what);
	abort();
}
