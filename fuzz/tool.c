/* tool.c - a child that prints the fuzzer's bytes (tool.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "tool.h"
#include "kflash/util.h"

#define T(ctx) ((struct fuzz_tool *)(ctx))

static int tool_spawn(void *ctx, const struct kf_spawn_req *req, struct kf_proc *ret)
{
	struct fuzz_tool *t = T(ctx);

	(void)req;
	memset(ret, 0, sizeof(*ret));
	ret->out_fd = ret->in_fd = -1;
	if (t->end == FUZZ_END_MISSING)
		return -ENOENT;
	ret->pid = 4242;
	ret->backend = t;
	t->running = true;
	t->fed = false;
	t->killed_by = 0;
	if (t->end == FUZZ_END_INTERRUPT)
		t->w.pending_signal = SIGINT;
	return 0;
}

/* One line at the very end of a page followed by an unmapped one: a
 * reader that runs past len faults at once, under any compiler (glibc's
 * own string functions are not instrumented by ASan). */
static void give(kf_line_fn *fn, void *data, const uint8_t *p, size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), room;
	uint8_t *map;

	if (n && p[n - 1] == '\r')
		n--;
	room = (n + pg - 1) / pg * pg;
	if (room == 0)
		room = pg;
	map = mmap(NULL, room + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	fuzz_assert(map != MAP_FAILED);
	fuzz_assert(mprotect(map + room, pg, PROT_NONE) == 0);
	memcpy(map + room - n, p, n);
	fn(data, (const char *)map + room - n, n);
	(void)munmap(map, room + pg);
}

static void feed(struct fuzz_tool *t, kf_line_fn *fn, void *data)
{
	const uint8_t *p = t->out, *end = t->out + t->len;

	if (t->fed || !fn)
		return;
	t->fed = true;
	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));

		give(fn, data, p, nl ? (size_t)(nl - p) : (size_t)(end - p));
		p = nl ? nl + 1 : end;
	}
}

static int tool_wait(void *ctx, struct kf_proc *p, int64_t deadline, kf_line_fn *fn,
		     void *data, struct kf_exit *ret)
{
	struct fuzz_tool *t = T(ctx);

	memset(ret, 0, sizeof(*ret));
	if (!p->backend || !t->running)
		return -ECHILD;
	feed(t, fn, data);
	if (t->killed_by) {
		ret->kind = KF_EXIT_SIGNALED;
		ret->sig = t->killed_by;
	} else if (t->end == FUZZ_END_EXIT) {
		ret->kind = KF_EXIT_EXITED;
		ret->code = t->code;
	} else if (t->end == FUZZ_END_SIGNAL) {
		ret->kind = KF_EXIT_SIGNALED;
		ret->sig = SIGSEGV;
	} else {
		/* still running: at the deadline, or told of the signal */
		ret->kind = KF_EXIT_RUNNING;
		ret->interrupted_by = t->w.pending_signal;
		if (!ret->interrupted_by && deadline != INT64_MAX && deadline > t->w.now)
			t->w.now = deadline;
		return 0;
	}
	t->running = false;
	p->backend = NULL;
	return 0;
}

static int tool_kill_group(void *ctx, struct kf_proc *p, int sig)
{
	struct fuzz_tool *t = T(ctx);

	(void)p;
	if (!t->running)
		return -ESRCH;
	if (!t->killed_by)
		t->killed_by = sig;
	return 0;
}

/* kflash's output goes nowhere */
static const char *tee_nothing(void *data, int fd, const char *buf, size_t len,
			       size_t *ret_len)
{
	(void)data;
	(void)fd;
	(void)buf;
	(void)len;
	*ret_len = 0;
	return NULL;
}

void fuzz_tool_init(struct fuzz_tool *t, const uint8_t *data, size_t size)
{
	static const enum fuzz_end ends[8] = {
		FUZZ_END_EXIT, FUZZ_END_EXIT, FUZZ_END_EXIT, FUZZ_END_EXIT,
		FUZZ_END_SIGNAL, FUZZ_END_HANG, FUZZ_END_INTERRUPT, FUZZ_END_MISSING,
	};
	struct kf_out_opts oo = { .tee = tee_nothing, .verbosity = KF_NORMAL };
	uint8_t b = size ? data[0] : 0;

	memset(t, 0, sizeof(*t));
	fake_world_init(&t->w);
	t->w.ops.spawn = tool_spawn;
	t->w.ops.wait = tool_wait;
	t->w.ops.kill_group = tool_kill_group;
	t->end = ends[b & 7];
	/* 0, 1, 2 and more: the codes tools exit with */
	t->code = (b >> 3) & 3;
	if (b & 0x20)
		t->code = b >> 6 ? 255 : 127;
	if (b & 0x40)
		oo.verbosity = KF_VERBOSE;
	t->out = size ? data + 1 : data;
	t->len = size ? size - 1 : 0;
	kf_out_init(&t->o, &t->w.ops, stdout, stderr, &oo);
}

void fuzz_tool_release(struct fuzz_tool *t)
{
	kf_out_release(&t->o);
	fake_world_release(&t->w);
}
