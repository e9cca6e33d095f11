/* run.h - one command's run over several boards.
 *
 * kflash flash and kflash build move one job per board along the same
 * steps (select.h: find it; prepare.h: check its config and build it;
 * window.h: the service window; flash_board.h: flash it and see it back)
 * and end in one result table (result.h). A board's failure is its own
 * job's error; the run goes on with the others.
 *
 * The run also keeps the one record of which signal arrived: whoever
 * sees it first (the ops table between steps, a child runner that stopped
 * its child, a prompt) hands it to kf_run_heard, and every later step
 * reads run->signal.
 */
#ifndef KFLASH_RUN_H
#define KFLASH_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kflash/build.h"
#include "kflash/kconfig.h"
#include "kflash/kflash.h"
#include "kflash/registry.h"
#include "kflash/transport.h"

enum kf_job_state {
	KF_JOB_ACTIVE,		/* on its way */
	KF_JOB_SKIPPED,		/* left out on purpose; skip_reason says why */
	KF_JOB_WRITTEN,		/* the firmware is on the board, its return not yet seen */
	KF_JOB_DONE,		/* flashed and back (flash); built (build) */
	KF_JOB_FAILED,		/* err says why */
};

struct kf_job {
	struct kf_board *b;
	const struct kf_transport *tr;
	enum kf_job_state state;
	const char *skip_reason;
	bool needless;		/* skipped as nothing needs doing (up to date) */
	struct kf_where at;	/* where its device is; at.node NULL until found */
	char *cfg_path;
	struct kf_kconfig cfg;	/* the config as built (after olddefconfig) */
	struct kf_build_result build;
	enum kf_method method;
	const char *method_used;
	struct kf_error err;
	int64_t ms;		/* its own time: flashing and its return */
	size_t mark;		/* the transport's watch mark before its flash */
	int unit;		/* the window's unit that drives it, or -1 */
	/* after the restart, through Moonraker: 1 it reports the version just
	 * flashed, -1 another one, 0 not known */
	int reported;
	int lock_fd;		/* its board lock, or -1 */
};

struct kf_run {
	struct kf_ctx *ctx;
	struct kf_registry *reg;
	struct kf_settings *s;
	struct kf_job *jobs;
	size_t n;
	char *kdir;		/* the Klipper checkout, once checked */
	int signal;		/* the first signal kflash got, or 0 */
	int lock_fd;		/* the per-user lock, or -1 */
};

/* One job per board (pointers into reg), each with its method. */
void kf_run_init(struct kf_run *run, struct kf_ctx *ctx, struct kf_registry *reg,
		 struct kf_board **boards, size_t n, enum kf_method forced);
/* Gives back the locks and frees the jobs. */
void kf_run_release(struct kf_run *run);

size_t kf_run_active(const struct kf_run *run);

/* Takes a signal the ops table holds, if one came; true once any came. */
bool kf_run_signalled(struct kf_run *run);
/* A signal another module took (a child runner, a prompt): recorded if
 * it is the first. sig 0 is none. */
void kf_run_heard(struct kf_run *run, int sig);

/* Job j failed with class r; its err says why (a generic one is set when
 * it does not). A KF_EINTERRUPTED records its signal for the run. */
void kf_job_fail(struct kf_run *run, struct kf_job *j, int r);
void kf_job_skip(struct kf_job *j, const char *reason);
void kf_job_skip_needless(struct kf_job *j, const char *reason);

#endif
