/* lock.c - the per-user and per-board locks (see lock.h). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kflash/lock.h"
#include "kflash/util.h"

static const char *lock_dir(const struct kf_ops *ops)
{
	const char *d = kf_os_getenv(ops, "KFLASH_LOCK_DIR");

	return d && *d == '/' ? d : "/run/lock";
}

char *kf_lock_path(const struct kf_ops *ops)
{
	return kf_asprintf("%s/kflash-%ld.lock", lock_dir(ops), (long)kf_os_uid(ops));
}

char *kf_board_lock_path(const struct kf_ops *ops, const char *chip_serial)
{
	char id[65];
	size_t i;

	/* a by-id name is the user's to set: keep the file name plain */
	for (i = 0; chip_serial[i] && i < sizeof(id) - 1; i++)
		id[i] = isalnum((unsigned char)chip_serial[i]) ? chip_serial[i] : '_';
	id[i] = '\0';
	return kf_asprintf("%s/kflash-board-%s.lock", lock_dir(ops), id);
}

/* "'bob' (uid 1001)", or "uid 1001" for a uid with no name. malloc'd. */
static char *who(const struct kf_ops *ops, uid_t uid)
{
	char *name = NULL, *s;

	if (kf_os_user_name(ops, uid, &name) < 0 || !name)
		return kf_asprintf("uid %ld", (long)uid);
	s = kf_asprintf("'%s' (uid %ld)", name, (long)uid);
	free(name);
	return s;
}

/* A lock file that is not what kflash makes: a link, a FIFO, a file of
 * another user where only this user's may be. Someone put it there (the
 * lock directory is writable by everyone), so it is not touched, and only
 * its owner or root can remove it from the sticky directory. */
static int refuse_planted(struct kf_ctx *ctx, const char *path, const char *what_is,
			  uid_t owner, struct kf_error *err)
{
	char *by = owner == (uid_t)-1 ? NULL : who(ctx->ops, owner);

	kf_error_set(err, KF_EREFUSED, "the lock %s is %s%s%s; kflash never "
		     "follows, truncates or shares such a lock", path, what_is,
		     by ? ", owned by " : "", by ? by : "");
	kf_error_step(err, "if you did not make it, someone else on this host did: "
		      "tell them or the admin, then remove it: " KF_CMD("sudo rm %s"), path);
	free(by);
	return KF_EREFUSED;
}

/* own: the lock must be this user's file (the per-user lock); a per-board
 * lock is shared with every user by design, so any regular file will do
 * there: kflash only flocks it and writes its pid into its own. */
static int take(struct kf_ctx *ctx, const char *path, const char *what, bool own,
		struct kf_error *err, int *ret_fd)
{
	pid_t holder = 0;
	uid_t owner = (uid_t)-1;
	int r;

	*ret_fd = -1;
	r = kf_os_lock(ctx->ops, path, ret_fd, &holder, &owner);
	/* the uid is asked only then: a session recorded before kflash looked
	 * at the owner (none recorded) replays call for call */
	if (r == 0 && own && owner != (uid_t)-1 && owner != kf_os_uid(ctx->ops)) {
		char *mine = who(ctx->ops, kf_os_uid(ctx->ops)), *what_is;

		kf_os_unlock(ctx->ops, *ret_fd);
		*ret_fd = -1;
		what_is = kf_asprintf("not yours (you are %s)", mine);
		r = refuse_planted(ctx, path, what_is, owner, err);
		free(what_is);
		free(mine);
	} else if (r == -EWOULDBLOCK) {
		kf_error_set(err, KF_EREFUSED, "another kflash (pid %ld) is %s; one "
			     "at a time", (long)holder, what);
		kf_error_step(err, "wait for it to finish (lock: %s)", path);
		r = KF_EREFUSED;
	} else if (r == -ELOOP) {
		r = refuse_planted(ctx, path, "a symbolic link", owner, err);
	} else if (r == -EINVAL) {
		r = refuse_planted(ctx, path, "not a regular file", owner, err);
	} else if (r < 0) {
		char *by = owner == (uid_t)-1 ? NULL : who(ctx->ops, owner);

		kf_error_set(err, KF_EFAILED, "cannot take the lock %s%s%s: %s", path,
			     by ? " (owned by " : "", by ? by : "", strerror(-r));
		if (by)
			kf_error_step(err, "if its owner runs no kflash now, remove it: "
				      KF_CMD("sudo rm %s"), path);
		kf_error_errno(err, r);
		kf_error_step(err, KF_CMD("ls -l %s"), path);
		free(by);
		r = KF_EFAILED;
	}
	if (r < 0)
		*ret_fd = -1;
	return r;
}

int kf_lock_take_at(struct kf_ctx *ctx, const char *path, const char *what,
		    struct kf_error *err, int *ret_fd)
{
	return take(ctx, path, what, false, err, ret_fd);
}

int kf_lock_take(struct kf_ctx *ctx, struct kf_error *err, int *ret_fd)
{
	char *path = kf_lock_path(ctx->ops);
	int r = take(ctx, path, "building or flashing", true, err, ret_fd);

	free(path);
	return r;
}

void kf_lock_give(struct kf_ctx *ctx, int *fd)
{
	if (*fd >= 0)
		kf_os_unlock(ctx->ops, *fd);
	*fd = -1;
}
