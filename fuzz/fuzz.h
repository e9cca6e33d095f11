/* fuzz.h - what the fuzz targets share: each fuzz_NAME.c is one libFuzzer
 * target (LLVMFuzzerTestOneInput) that hands its bytes to one of kflash's
 * parsers, with no file, process or network touched (a fake world from
 * tests/fake_ops.c where the parser reads through the ops table).
 *
 * Built two ways: with clang -fsanitize=fuzzer,address,undefined by `make
 * fuzz` (libFuzzer's own main), and with the product's compiler and
 * replay.c's main by `make check`, which feeds every file of the target's
 * corpus in fixtures/fuzz/NAME/ to it once. A target aborts on a broken
 * promise (fuzz_assert), so a fuzzer finds wrong answers, not only
 * crashes. */
#ifndef KFLASH_FUZZ_H
#define KFLASH_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "kflash/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input split at NUL bytes into at most max parts, each a
 * NUL-terminated copy; parts past the last NUL are not there (NULL). A
 * target that needs several texts (the fields of a udev record, the
 * answers of a Moonraker) takes them this way, so a seed is the texts
 * joined with NULs. */
#define FUZZ_MAX_PARTS 16
struct fuzz_parts {
	char *v[FUZZ_MAX_PARTS];
	size_t len[FUZZ_MAX_PARTS];
	size_t n;
};

void fuzz_split(const uint8_t *data, size_t size, size_t max, struct fuzz_parts *ret);
void fuzz_parts_free(struct fuzz_parts *p);

/* The input as one NUL-terminated string (cut at its first NUL, as a C
 * string parser sees it), malloc'd. */
char *fuzz_str(const uint8_t *data, size_t size);

/* Renders e as kflash would print it, then releases it (the note too). */
void fuzz_error_done(struct kf_error *e);

struct kf_settings;
/* Frees what kf_settings_defaults or a parse put in s. */
void fuzz_settings_release(struct kf_settings *s);

/* A broken promise: says which and aborts, so the fuzzer keeps the input. */
#define fuzz_assert(cond) \
	((cond) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #cond))
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

#endif
