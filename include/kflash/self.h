/* self.h - kflash and the git checkout it was built from.
 *
 * kflash is installed from a checkout (`make && sudo make install`), and
 * updated by pulling it (git, or Moonraker's update manager). Until the
 * checkout is built and installed again, the installed kflash is the old
 * one: these functions notice that, through the ops table, and say how to
 * fix it. A kflash built outside a git checkout (a tarball) knows no commit
 * and never complains.
 */
#ifndef KFLASH_SELF_H
#define KFLASH_SELF_H

#include "kflash/ops.h"
#include "kflash/output.h"

/* What the Makefile wrote into build/version.h: `git describe --always
 * --tags --dirty`, `git rev-parse HEAD` ("" outside git) and the
 * checkout's absolute path. */
struct kf_self {
	const char *version;
	const char *commit;
	const char *source_dir;
};

/* This kflash's own build. */
const struct kf_self *kf_self_built(void);

/* The commit the checkout at dir has checked out, read from its .git as
 * git resolves HEAD (a detached id, the branch's loose ref, else its line
 * in packed-refs), without starting git: cheap enough for every command.
 * 0 with *ret_commit malloc'd; -ENOENT when it names nothing, -EINVAL when
 * it is not what git writes, or the error reading it (a checkout whose .git
 * is a file, such as a worktree, gives -ENOTDIR). */
int kf_self_head(const struct kf_ops *ops, const char *dir, char **ret_commit);

/* 1 when self's checkout has another commit checked out than self was
 * built from (*ret_head then holds it, malloc'd), 0 when it has the same
 * one or that cannot be told (no commit known, no checkout there). */
int kf_self_stale(const struct kf_ops *ops, const struct kf_self *self, char **ret_head);

/* `git describe --always --tags --dirty` of the checkout at dir, as the
 * Makefile runs it; 0 with *ret_version malloc'd, or a negative errno
 * (git missing, failing, or refusing a checkout another user owns). */
int kf_self_checkout_version(const struct kf_ops *ops, const char *dir, char **ret_version);

/* "cd DIR && make && sudo make install", DIR quoted for the shell. */
char *kf_self_install_command(const char *dir);

/* One warning on out when kf_self_stale says so: the version this kflash
 * is, the commit its checkout holds and the command above. */
void kf_self_warn_stale(const struct kf_ops *ops, const struct kf_self *self,
			struct kf_out *out);

#endif
