/* lock.h - one kflash per user, and one per board whoever runs it.
 *
 * The locks live in /run/lock (FHS: world-writable and sticky on every
 * Debian), never in a directory the login decides: an SSH session, cron, a
 * job Moonraker starts and `sudo -u` all find the same ones.
 * KFLASH_LOCK_DIR moves them, for the simulator only. A lock is a flock, so
 * one left by a dead kflash blocks nothing.
 *
 * Since everyone may write there, another user can put something at a
 * lock's name first. kflash never follows a symbolic link there, opens
 * nothing but a regular file, never truncates one and writes its pid only
 * into a file it owns; the per-user lock must be this user's file. What
 * it finds otherwise is refused (KF_EREFUSED) with its path, its owner
 * and how to remove it: a planted file can deny kflash, never redirect
 * its writes.
 */
#ifndef KFLASH_LOCK_H
#define KFLASH_LOCK_H

#include "kflash/kflash.h"

/* kflash-<uid>.lock: one kflash per user (its build dirs, its registry).
 * malloc'd. */
char *kf_lock_path(const struct kf_ops *ops);
/* kflash-board-<id>.lock; id is the chip serial (the same in Klipper and
 * Katapult mode), made plain for a file name. malloc'd. */
char *kf_board_lock_path(const struct kf_ops *ops, const char *chip_serial);

/* Takes the per-user lock: 0, or KF_EREFUSED in err naming the pid that
 * holds it or what is wrong with the file (a link, not a regular file,
 * another user's), or KF_EFAILED with the errno. */
int kf_lock_take(struct kf_ctx *ctx, struct kf_error *err, int *ret_fd);
/* The same for the lock at path; what says what the holder is doing, for
 * the message ("flashing octopus"). */
int kf_lock_take_at(struct kf_ctx *ctx, const char *path, const char *what,
		    struct kf_error *err, int *ret_fd);
/* Gives a lock back (fd -1: none) and sets *fd to -1. */
void kf_lock_give(struct kf_ctx *ctx, int *fd);

#endif
