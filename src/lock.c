/* lock.c - the per-user and per-board locks (see lock.h). */
#include <ctype.h>
#include <errno.h>
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

int kf_lock_take_at(struct kf_ctx *ctx, const char *path, const char *what,
		    struct kf_error *err, int *ret_fd)
{
	pid_t holder = 0;
	int r;

	*ret_fd = -1;
	r = kf_os_lock(ctx->ops, path, ret_fd, &holder);
	if (r == -EWOULDBLOCK) {
		kf_error_set(err, KF_EREFUSED, "another kflash (pid %ld) is %s; one "
			     "at a time", (long)holder, what);
		kf_error_step(err, "wait for it to finish (lock: %s)", path);
		r = KF_EREFUSED;
	} else if (r < 0) {
		kf_error_set(err, KF_EFAILED, "cannot take the lock %s: %s", path,
			     strerror(-r));
		kf_error_errno(err, r);
		kf_error_step(err, KF_CMD("ls -l %s"), path);
		r = KF_EFAILED;
	}
	if (r < 0)
		*ret_fd = -1;
	return r;
}

int kf_lock_take(struct kf_ctx *ctx, struct kf_error *err, int *ret_fd)
{
	char *path = kf_lock_path(ctx->ops);
	int r = kf_lock_take_at(ctx, path, "building or flashing", err, ret_fd);

	free(path);
	return r;
}

void kf_lock_give(struct kf_ctx *ctx, int *fd)
{
	if (*fd >= 0)
		kf_os_unlock(ctx->ops, *fd);
	*fd = -1;
}
