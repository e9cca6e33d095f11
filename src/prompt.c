/* prompt.c - one question, one line of answer, and Ctrl+C still works. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kflash/prompt.h"
#include "kflash/util.h"

/* kflash catches SIGINT so it can always put Klipper back; a blocking read
 * would never see it. Wait in short ticks and ask the ops table. */
static int wait_readable(struct kf_ctx *ctx)
{
	for (;;) {
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		int sig = kf_os_take_signal(ctx->ops);

		if (sig) {
			ctx->err->signal = sig;
			kf_error_set(ctx->err, KF_EINTERRUPTED, "cancelled");
			ctx->err->signal = sig;
			return KF_EINTERRUPTED;
		}
		if (poll(&p, 1, 100) > 0)
			return 0;
	}
}

int kf_prompt(struct kf_ctx *ctx, const char *question, const char *def,
	      char **ret_answer)
{
	struct kf_buf b = KF_BUF_INIT;
	int r;

	*ret_answer = NULL;
	if (def && *def)
		fprintf(ctx->out->err, "%s [%s]: ", question, def);
	else
		fprintf(ctx->out->err, "%s: ", question);
	fflush(ctx->out->err);
	for (;;) {
		char c;
		ssize_t n;

		r = wait_readable(ctx);
		if (r < 0) {
			fputc('\n', ctx->out->err);
			kf_buf_release(&b);
			return r;
		}
		n = read(STDIN_FILENO, &c, 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			kf_buf_release(&b);
			return -EPIPE;
		}
		if (c == '\n')
			break;
		if (c != '\r')
			kf_buf_add(&b, &c, 1);
	}
	if (!b.len && def) {
		kf_buf_release(&b);
		*ret_answer = kf_xstrdup(def);
		return 0;
	}
	if (!b.data)
		kf_buf_add(&b, "", 0);
	*ret_answer = b.data;
	return 0;
}

int kf_confirm(struct kf_ctx *ctx, const char *question, bool def, bool *ret_yes)
{
	char *q, *a = NULL;
	int r;

	if (ctx->yes) {
		*ret_yes = true;
		return 0;
	}
	q = kf_asprintf("%s (%s)", question, def ? "Y/n" : "y/N");
	for (;;) {
		r = kf_prompt(ctx, q, NULL, &a);
		if (r < 0)
			break;
		if (!*a || strchr("yYnN", a[0])) {
			*ret_yes = *a ? (a[0] == 'y' || a[0] == 'Y') : def;
			break;
		}
		free(a);
		a = NULL;
	}
	free(a);
	free(q);
	return r;
}
