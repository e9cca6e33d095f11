/* tool.h - a fake world (tests/fake_ops.c) whose every child prints
 * the fuzzer's bytes and ends as the input says, so a tool's output runs
 * through kf_proc_run into the code that reads it. Lines go to the
 * line callback as the real table gives them (without the newline, a
 * trailing \r dropped, NUL bytes kept) but each at the end of a page
 * with no page after it, so a reader that runs past len faults. */
#ifndef KFLASH_FUZZ_TOOL_H
#define KFLASH_FUZZ_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fake_ops.h"
#include "kflash/output.h"

enum fuzz_end {
	FUZZ_END_EXIT,		/* exits with code */
	FUZZ_END_SIGNAL,	/* killed by SIGSEGV */
	FUZZ_END_HANG,		/* runs until killed: the timeout */
	FUZZ_END_INTERRUPT,	/* kflash gets SIGINT while it runs */
	FUZZ_END_MISSING,	/* exec fails with ENOENT */
};

struct fuzz_tool {
	struct fake_world w;	/* first: ops.ctx points at it */
	const uint8_t *out;
	size_t len;
	enum fuzz_end end;
	int code;
	int killed_by;
	bool fed, running;
	struct kf_out o;
};

/* The world, with the end and exit code taken from the first byte of
 * data (the rest is the output). A kf_out that prints nothing; verbose
 * when the byte says. */
void fuzz_tool_init(struct fuzz_tool *t, const uint8_t *data, size_t size);
void fuzz_tool_release(struct fuzz_tool *t);

#endif
