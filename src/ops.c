/* ops.c - what every ops table must be before kflash calls through it. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "kflash/ops.h"

int kf_ops_check(const struct kf_ops *o)
{
	/* every method, in the order of struct kf_ops: a member added
	 * there and not here is a slot nobody checks */
	const bool present[] = {
		o->enumerate, o->enumerate_net, o->monitor_open, o->monitor_next, o->monitor_close,
		o->spawn, o->wait, o->kill_group, o->in_group,
		o->observe, o->feed, o->ready, o->attach,
		o->read_file, o->write_atomic, o->append, o->unlink, o->remove_tree, o->tidy,
		o->read_dir, o->mkdir_p,
		o->file_kind, o->realpath, o->lock, o->unlock,
		o->now, o->realtime, o->sleep_until, o->take_signal, o->http_get,
		o->getenv, o->uid, o->user_name, o->cpu_count, o->isatty, o->term_width, o->read_line,
	};
	size_t i;

	if (o->version != KF_OPS_VERSION)
		return -EPROTONOSUPPORT;
	for (i = 0; i < sizeof(present) / sizeof(present[0]); i++)
		if (!present[i])
			return -EINVAL;
	return 0;
}

void kf_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}
