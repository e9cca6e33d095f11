/* fault_ops.h - wraps another ops table and fails the Nth call of a chosen
 * kind of effect once, with a chosen errno (SQLite's test_vfs countdown). */
#ifndef KFLASH_TESTS_FAULT_OPS_H
#define KFLASH_TESTS_FAULT_OPS_H

#include <stdbool.h>

#include "kflash/ops.h"

enum fault_kind {
	FAULT_ANY,	/* every effect below counts */
	FAULT_EVERY,	/* every call that returns something counts: FAULT_ANY's,
			 * and wait, kill_group, in_group, monitor_next,
			 * sleep_until, take_signal (which has no error to
			 * return, so it counts only when delivering a signal) */
	FAULT_UDEV,
	FAULT_SPAWN,	/* spawn (not sudo/systemctl), feed, ready, attach */
	FAULT_SERVICE,	/* spawning sudo or systemctl */
	FAULT_FS_READ,
	FAULT_FS_WRITE,	/* write_atomic, append, unlink, mkdir_p, lock */
	FAULT_HTTP,
	FAULT_HOST,	/* cpu_count */
	FAULT_TTY,	/* read_line (a terminal that hung up: EIO) */
};

struct fault_ops {
	struct kf_ops ops;		/* hand this to the code under test */
	const struct kf_ops *inner;
	enum fault_kind kind;
	int countdown;			/* fail when it reaches 0; <0: never */
	int err;			/* negative errno to return */
	int calls;			/* effects of that kind seen */
	bool fired;
	const char *fired_at;		/* the call that fired: "spawn" */
	bool persistent;		/* keep failing after the Nth call */
	/* with signal set, the Nth call does not fail: raise(raise_data,
	 * signal) delivers the signal, then the call goes on to inner */
	int signal;
	void (*raise)(void *data, int sig);
	void *raise_data;
};

/* Wraps inner, which must pass kf_ops_check (else it aborts, naming why). */
void fault_ops_init(struct fault_ops *f, const struct kf_ops *inner,
		    enum fault_kind kind, int nth, int err);

#endif
