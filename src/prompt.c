/* prompt.c - one question, one line of answer, and Ctrl+C still works. */
#include <errno.h>
#include <string.h>

#include "kflash/prompt.h"
#include "kflash/util.h"

int kf_prompt(struct kf_ctx *ctx, const char *question, const char *def,
	      struct kf_error *err, char **ret_answer)
{
	char *line = NULL;
	size_t i, n;
	int r;

	*ret_answer = NULL;
	if (def && *def)
		kf_out_say(ctx->out, "%s [%s]: ", question, def);
	else
		kf_out_say(ctx->out, "%s: ", question);
	/* kflash catches SIGINT so it can always put Klipper back; the read
	 * returns when one comes, and the question is then cancelled */
	r = kf_os_read_line(ctx->ops, &line);
	if (r == -EINTR) {
		int sig = kf_os_take_signal(ctx->ops);

		kf_out_say(ctx->out, "\n");
		kf_error_set(err, KF_EINTERRUPTED, "cancelled");
		if (err)
			err->signal = sig;
		return KF_EINTERRUPTED;
	}
	if (r == 0)
		return -EPIPE;
	if (r < 0) {
		kf_out_say(ctx->out, "\n");
		kf_error_set(err, KF_EFAILED, "cannot read the answer to '%s' from "
			     "the terminal: %s", question, strerror(-r));
		kf_error_errno(err, r);
		return KF_EFAILED;
	}
	/* a terminal in raw mode, or a Windows ssh client, sends \r */
	for (i = n = 0; line[i]; i++)
		if (line[i] != '\r')
			line[n++] = line[i];
	line[n] = '\0';
	if (!n && def) {
		free(line);
		*ret_answer = kf_xstrdup(def);
		return 0;
	}
	*ret_answer = line;
	return 0;
}

int kf_confirm(struct kf_ctx *ctx, const char *question, bool def,
	       struct kf_error *err, bool *ret_yes)
{
	char *q, *a = NULL;
	int r;

	if (ctx->yes) {
		*ret_yes = true;
		return 0;
	}
	q = kf_asprintf("%s (%s)", question, def ? "Y/n" : "y/N");
	for (;;) {
		r = kf_prompt(ctx, q, NULL, err, &a);
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
