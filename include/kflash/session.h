/* session.h - the flight recorder and its replay.
 *
 * A recorder is an ops table that wraps another one, like SQLite's test
 * VFSes: every call passes through unchanged and is written as one JSON
 * line (doc/sessions.md is the format). It never changes what the call
 * does or returns, and it never fails a run: when the session cannot be
 * written, it says so once and stops recording.
 *
 * A replayer is an ops table that answers every call from a recording and
 * touches nothing. The first call that differs from the recording (another
 * argument, another order, one the recording lacks) is a divergence: from
 * then on every call fails and take_signal answers SIGTERM, so the command
 * winds down without doing anything, and kf_replay_diverged says where.
 */
#ifndef KFLASH_SESSION_H
#define KFLASH_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "kflash/error.h"
#include "kflash/ops.h"

#define KF_SESSION_FORMAT 1
/* a calls.jsonl above this is not read: nothing kflash does takes that much */
#define KF_SESSION_MAX_BYTES (256L << 20)

struct kf_out;
struct kf_settings;
struct kf_board;

/* ---- the JSON both sides write and compare (session.c) ------------------- */

/* A string as the session writes it: under home ("/home/pi") written as
 * "~", secrets redacted, and bytes that are not UTF-8 as {"b64": ...}.
 * NULL is null. home may be NULL (replay: nothing to shorten). */
json_t *kf_sj_str(const char *home, const char *s);
json_t *kf_sj_mem(const char *home, const void *buf, size_t len);
/* The bytes back: a string or {"b64"}; NULL (and *ok false) for anything
 * else; a JSON null gives NULL with *ok true. malloc'd, NUL-terminated. */
char *kf_sj_get_mem(const json_t *v, size_t *ret_len, bool *ok);
json_t *kf_sj_argv(const char *home, const char *const *argv);
json_t *kf_sj_dev(const char *home, const struct kf_ttydev *d);
int kf_sj_get_dev(const json_t *v, struct kf_ttydev *ret_dev);
json_t *kf_sj_exit(const struct kf_exit *e);
int kf_sj_get_exit(const json_t *v, struct kf_exit *ret_exit);
json_t *kf_sj_mode(mode_t m);		/* "0600" */
json_t *kf_sj_spawn_args(const char *home, const struct kf_spawn_req *q);
json_t *kf_sj_http_args(const char *home, const char *url, const char *const *headers,
			int timeout_ms);
const char *kf_sj_kind_name(enum kf_file_kind k);
int kf_sj_get_kind(const char *name, enum kf_file_kind *ret);
json_t *kf_sj_uevent(const char *home, const struct kf_uevent *e);
int kf_sj_get_uevent(const json_t *v, struct kf_uevent *ret);
/* "~" for home and what follows it, the API key redacted; malloc'd */
char *kf_sj_shorten(const char *home, const char *s);
/* The other way: "~" (where kf_sj_shorten would have put it) becomes
 * home. malloc'd, NUL-terminated. */
char *kf_sj_expand(const char *home, const char *s, size_t len, size_t *ret_len);
/* the session directory's name for this moment: 20261202T043000Z */
void kf_session_stamp(int64_t epoch_ms, char ret_stamp[24]);
/* the same moment in ISO 8601, UTC: 2026-12-02T04:30:00Z */
void kf_utc_iso(int64_t epoch_ms, char ret_iso[24]);
/* the default place: $XDG_STATE_HOME/kflash/sessions, else
 * ~/.local/state/kflash/sessions; NULL without HOME. malloc'd */
char *kf_sessions_dir(const struct kf_ops *o);

/* ---- recording (record.c) ----------------------------------------------- */

struct kf_recorder;

/* Starts recording calls made through kf_recorder_ops into memory; nothing
 * is written until kf_recorder_open. */
struct kf_recorder *kf_recorder_new(const struct kf_ops *inner);
const struct kf_ops *kf_recorder_ops(struct kf_recorder *r);
/* Where warnings about the recording go (set once output exists). */
void kf_recorder_set_out(struct kf_recorder *r, struct kf_out *out);
/* Records a write of kflash's own output (fd 1 or 2). */
void kf_recorder_write(struct kf_recorder *r, int fd, const char *buf, size_t len);
void kf_recorder_command(struct kf_recorder *r, int argc, char **argv);
/* Writes the session into dir (created; it must be absent or empty),
 * beginning with what was recorded so far. A failure is a warning through
 * the output and the run goes on unrecorded. */
int kf_recorder_open(struct kf_recorder *r, const char *dir);
/* Opens a new session under the default place, keeping the newest keep
 * sessions (this one among them). */
int kf_recorder_open_default(struct kf_recorder *r, const char *command, int keep);
/* NULL while nothing is written */
const char *kf_recorder_dir(const struct kf_recorder *r);
void kf_recorder_settings(struct kf_recorder *r, const struct kf_settings *s);
/* A board the command works on, found at node (its devnode or by-id
 * link, as the last enumerate showed it; NULL: not connected); mode
 * "klipper", "katapult" or NULL. r may be NULL (nothing recorded). */
void kf_recorder_board(struct kf_recorder *r, const struct kf_board *b,
		       const char *node, const char *mode, const char *app_start);
/* Writes the exit code into session.json and frees the recorder. */
void kf_recorder_finish(struct kf_recorder *r, int exit_code);

/* ---- replaying (replay.c) ----------------------------------------------- */

struct kf_session {
	char *dir;
	json_t *info;		/* session.json */
	json_t **calls;		/* calls.jsonl, by n; calls[0] is call 1 */
	size_t n_calls;
	int exit_code;		/* -1: kflash did not finish (killed) */
	size_t home_length;	/* of the recorded run's HOME, or 0 */
};

/* Reads and checks a session. KF_EINPUT naming the file and line for
 * anything that is not a session of this format. */
int kf_session_load(const struct kf_ops *o, const char *dir, struct kf_session *ret,
		    struct kf_error *err);
void kf_session_release(struct kf_session *s);

struct kf_replayer;

struct kf_replayer *kf_replayer_new(const struct kf_session *s);
const struct kf_ops *kf_replayer_ops(struct kf_replayer *rp);
/* kflash's own output in the replayed run (a kf_out_tee_fn, data the
 * replayer): compared with the recording, and shown as it stands there;
 * nothing once the replay diverged. */
const char *kf_replayer_write(void *rp, int fd, const char *buf, size_t len,
			      size_t *ret_len);
/* After the run: checks nothing recorded is left over. Then true when the
 * run diverged, with a report (the call, expected and actual, the calls
 * around it) in *ret_report (malloc'd). */
bool kf_replayer_end(struct kf_replayer *rp, char **ret_report);
void kf_replayer_free(struct kf_replayer *rp);

#endif
