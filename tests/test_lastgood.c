/* test_lastgood.c - SHA-256, and each board's last good firmware: kept
 * whole or not at all, read back as kept, what kflash did not write
 * refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "kflash/kflash.h"
#include "kflash/lastgood.h"
#include "kflash/sha256.h"

#define TOP "/cfg/last-good/octopus"
#define OUT "/cache/kflash/build/octopus"
#define CFG "/cfg/configs/octopus/.config"
#define DICT "{\"version\": \"v0.13.0-1-gabc-20261202_043000-pi\", \"config\": " \
	"{\"MCU\": \"stm32f446xx\"}}"

static void sha256__matches_the_standard_vectors(void **state)
{
	static const struct { size_t n; char c; const char *text, *sum; } v[] = {
		{ 0, 0, "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ 0, 0, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ 0, 0, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
		/* around the block's end, where the length goes into a second one */
		{ 55, 'a', NULL, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
		{ 56, 'a', NULL, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
		{ 63, 'a', NULL, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
		{ 64, 'a', NULL, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
		{ 1000000, 'a', NULL, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0" },
	};
	char hex[KF_SHA256_HEX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *buf = v[i].text ? kf_xstrdup(v[i].text) : kf_xmalloc(v[i].n);

		if (!v[i].text)
			memset(buf, v[i].c, v[i].n);
		kf_sha256_hex(buf, v[i].text ? strlen(v[i].text) : v[i].n, hex);
		assert_string_equal(hex, v[i].sum);
		free(buf);
	}
}

/* ---- over a fake world --------------------------------------------------------- */

struct t {
	struct fake_world w;
	struct kf_out out;
	struct kf_error err;
	struct kf_ctx ctx;
	struct kf_board b;
	FILE *sink;
};

static int setup(void **state)
{
	struct t *t = kf_xcalloc(1, sizeof(*t));

	fake_world_init(&t->w);
	fake_put_file(&t->w, CFG, "CONFIG_MCU=\"stm32f446xx\"\n");
	fake_put_file(&t->w, OUT "/klipper.bin", "FW1");
	fake_put_file(&t->w, OUT "/klipper.dict", DICT);
	t->sink = fopen("/dev/null", "w");
	kf_out_init(&t->out, &t->w.ops, t->sink, t->sink, &(struct kf_out_opts){ 0 });
	t->ctx = (struct kf_ctx){ .ops = &t->w.ops, .out = &t->out, .err = &t->err,
				  .config_dir = "/cfg" };
	t->b = (struct kf_board){ .key = "octopus", .name = "Octopus", .mcu = "stm32f446xx" };
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;

	kf_out_release(&t->out);
	fclose(t->sink);
	kf_error_release(&t->err);
	fake_world_release(&t->w);
	free(t);
	return 0;
}

static const struct kf_lastgood_src src = { OUT "/klipper.bin", CFG, OUT, "v0.13.0-1-gabc" };

static void keep__what_came_back_loads_back_as_it_was(void **state)
{
	struct t *t = *state;
	struct kf_lastgood lg;
	char hex[KF_SHA256_HEX];
	const struct fake_file *f;

	kf_sha256_hex("FW1", 3, hex);
	assert_int_equal(kf_lastgood_keep(&t->ctx, &t->b, &src, &t->err, NULL), 0);
	f = fake_get_file(&t->w, TOP "/kept.json");
	assert_non_null(f);
	assert_non_null(strstr(f->data, hex));
	assert_non_null(fake_get_file(&t->w, TOP "/b0d9a4e1ff916dcd/klipper.bin"));
	assert_string_equal(fake_get_file(&t->w, TOP "/b0d9a4e1ff916dcd/.config")->data,
			    "CONFIG_MCU=\"stm32f446xx\"\n");
	assert_string_equal(fake_get_file(&t->w, TOP "/b0d9a4e1ff916dcd/klipper.dict")->data,
			    DICT);
	/* kept.json is the commit: written after everything it names */
	assert_true(strstr(t->w.transcript.data, "write " TOP "/b0d9a4e1ff916dcd/klipper.dict") <
		    strstr(t->w.transcript.data, "write " TOP "/kept.json"));

	assert_int_equal(kf_lastgood_load(&t->ctx, &t->b, &t->err, &lg), 0);
	assert_string_equal(lg.image, TOP "/b0d9a4e1ff916dcd/klipper.bin");
	assert_string_equal(lg.dir, TOP "/b0d9a4e1ff916dcd");
	assert_string_equal(lg.config, TOP "/b0d9a4e1ff916dcd/.config");
	assert_string_equal(lg.mcu, "stm32f446xx");
	assert_string_equal(lg.describe, "v0.13.0-1-gabc");
	assert_string_equal(lg.version, "v0.13.0-1-gabc-20261202_043000-pi");
	assert_string_equal(kf_lastgood_klipper(&lg), "v0.13.0-1-gabc");
	assert_string_equal(lg.sha256, hex);
	assert_int_equal(lg.size, 3);
	/* the fake clock starts at 2026-12-02T04:30:00Z */
	assert_true(kf_startswith(lg.kept, "2026-12-02T04:30:"));
	assert_int_equal(strlen(lg.kept), 20);
	assert_int_equal(kf_lastgood_check(&t->ctx, &lg, "octopus", &t->err), 0);
	kf_lastgood_release(&lg);
}

static void keep__a_new_image_replaces_the_old_one_and_its_directory(void **state)
{
	struct t *t = *state;
	struct kf_lastgood lg;

	assert_int_equal(kf_lastgood_keep(&t->ctx, &t->b, &src, &t->err, NULL), 0);
	fake_put_file(&t->w, OUT "/klipper.bin", "FW2");
	assert_int_equal(kf_lastgood_keep(&t->ctx, &t->b, &src, &t->err, &lg), 0);
	assert_int_equal(lg.size, 3);
	assert_null(fake_get_file(&t->w, TOP "/b0d9a4e1ff916dcd/klipper.bin"));
	assert_null(fake_get_file(&t->w, TOP "/b0d9a4e1ff916dcd/.config"));
	assert_string_equal(fake_get_file(&t->w, lg.image)->data, "FW2");
	kf_lastgood_release(&lg);
	/* the same image again is the same directory, kept as it was */
	assert_int_equal(kf_lastgood_keep(&t->ctx, &t->b, &src, &t->err, &lg), 0);
	assert_string_equal(fake_get_file(&t->w, lg.image)->data, "FW2");
	kf_lastgood_release(&lg);
}

static void keep__a_failed_write_leaves_the_one_kept_before(void **state)
{
	struct t *t = *state;
	struct kf_lastgood lg;

	assert_int_equal(kf_lastgood_keep(&t->ctx, &t->b, &src, &t->err, NULL), 0);
	fake_put_file(&t->w, OUT "/klipper.bin", "FW2");
	t->w.full = TOP;
	assert_int_equal(kf_lastgood_keep(&t->ctx, &t->b, &src, &t->err, NULL), KF_EFAILED);
	assert_int_equal(t->err.errnum, ENOSPC);
	assert_non_null(strstr(t->err.what, TOP));
	t->w.full = NULL;
	assert_int_equal(kf_lastgood_load(&t->ctx, &t->b, &t->err, &lg), 0);
	assert_string_equal(fake_get_file(&t->w, lg.image)->data, "FW1");
	assert_int_equal(kf_lastgood_check(&t->ctx, &lg, "octopus", &t->err), 0);
	kf_lastgood_release(&lg);
}

static void keep__a_build_without_a_dictionary_keeps_the_checkouts_version(void **state)
{
	struct t *t = *state;
	struct kf_lastgood lg;
	struct kf_lastgood_src nodict = { OUT "/klipper.bin", CFG, "/nowhere", "v0.13.0-1-gabc" };

	assert_int_equal(kf_lastgood_keep(&t->ctx, &t->b, &nodict, &t->err, NULL), 0);
	assert_int_equal(kf_lastgood_load(&t->ctx, &t->b, &t->err, &lg), 0);
	assert_null(lg.version);
	assert_string_equal(kf_lastgood_klipper(&lg), "v0.13.0-1-gabc");
	assert_null(fake_get_file(&t->w, TOP "/b0d9a4e1ff916dcd/klipper.dict"));
	kf_lastgood_release(&lg);
	/* nor git: what rollback would compare with the host is not known */
	nodict.describe = NULL;
	fake_put_file(&t->w, OUT "/klipper.bin", "FW2");
	assert_int_equal(kf_lastgood_keep(&t->ctx, &t->b, &nodict, &t->err, NULL), KF_EFAILED);
	assert_non_null(strstr(t->err.what, "Klipper version"));
	assert_int_equal(kf_lastgood_load(&t->ctx, &t->b, &t->err, &lg), 0);
	assert_string_equal(fake_get_file(&t->w, lg.image)->data, "FW1");
	kf_lastgood_release(&lg);
}

static void load__nothing_kept_says_how_to_keep_something(void **state)
{
	struct t *t = *state;
	struct kf_lastgood lg;

	assert_int_equal(kf_lastgood_load(&t->ctx, &t->b, &t->err, &lg), KF_EINPUT);
	assert_string_equal(t->err.what, "octopus has no kept firmware to roll back to");
	assert_int_equal(t->err.n_steps, 1);
	assert_non_null(strstr(t->err.steps[0], "kflash flash octopus"));
	kf_lastgood_release(&lg);
}

static void check__a_damaged_image_is_refused(void **state)
{
	struct t *t = *state;
	struct kf_lastgood lg;

	assert_int_equal(kf_lastgood_keep(&t->ctx, &t->b, &src, &t->err, &lg), 0);
	fake_put_file(&t->w, lg.image, "FW!");
	assert_int_equal(kf_lastgood_check(&t->ctx, &lg, "octopus", &t->err), KF_EINPUT);
	assert_non_null(strstr(t->err.what, "the kept firmware of octopus is damaged"));
	kf_lastgood_release(&lg);
}

static void expect_bad(const char *doc, const char *msg)
{
	struct kf_lastgood lg;
	struct kf_error e = KF_ERROR_INIT;

	assert_int_equal(kf_lastgood_parse(TOP "/kept.json", doc, strlen(doc), TOP, &lg, &e),
			 KF_EINPUT);
	if (!strstr(e.what, msg))
		fail_msg("for %s: \"%s\" does not say \"%s\"", doc, e.what, msg);
	assert_non_null(strstr(e.what, TOP "/kept.json"));
	assert_null(lg.image);
	kf_error_release(&e);
}

#define SUM "b0d9a4e1ff916dcdc563f7e4d263bcf2eb23c7ba2d29385c34c505ad71d97f6e"
#define META(image, sum, size, format) "{\"format\": " format ", \"board\": \"octopus\", " \
	"\"mcu\": \"stm32f446xx\", \"image\": \"" image "\", \"size\": " size ", " \
	"\"sha256\": \"" sum "\", \"version\": null, \"describe\": null, " \
	"\"kept\": \"2026-12-02T04:30:00Z\"}"

static void parse__what_kflash_did_not_write_is_refused(void **state)
{
	struct kf_lastgood lg;
	struct kf_error e = KF_ERROR_INIT;
	const char *good = META("b0d9a4e1ff916dcd/klipper.bin", SUM, "3", "1");

	(void)state;
	assert_int_equal(kf_lastgood_parse("k", good, strlen(good), TOP, &lg, &e), 0);
	assert_string_equal(lg.image, TOP "/b0d9a4e1ff916dcd/klipper.bin");
	kf_lastgood_release(&lg);
	expect_bad("{\"format\": 1, \"mcu\"", "is not valid JSON");
	expect_bad("{\"format\": 1, \"mcu\"", "line 1");
	expect_bad("{\"format\": 1}", "is not what kflash keeps");
	expect_bad(META("b0d9a4e1ff916dcd/klipper.bin", SUM, "3", "2"), "from a newer kflash");
	/* the image must be in its own sum's directory, by name only */
	expect_bad(META("../../../etc/passwd", SUM, "3", "1"), "not one kflash writes");
	expect_bad(META("b0d9a4e1ff916dcd/../x", SUM, "3", "1"), "not one kflash writes");
	expect_bad(META("0000000000000000/klipper.bin", SUM, "3", "1"), "not one kflash writes");
	expect_bad(META("b0d9a4e1ff916dcd/klipper.bin", "b0d9a4e1ff916dcd", "3", "1"),
		   "not one kflash writes");
	expect_bad(META("b0d9a4e1ff916dcd/klipper.bin", SUM, "-1", "1"), "not one kflash writes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sha256__matches_the_standard_vectors),
		cmocka_unit_test_setup_teardown(keep__what_came_back_loads_back_as_it_was, setup, teardown),
		cmocka_unit_test_setup_teardown(keep__a_new_image_replaces_the_old_one_and_its_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(keep__a_failed_write_leaves_the_one_kept_before, setup, teardown),
		cmocka_unit_test_setup_teardown(keep__a_build_without_a_dictionary_keeps_the_checkouts_version, setup, teardown),
		cmocka_unit_test_setup_teardown(load__nothing_kept_says_how_to_keep_something, setup, teardown),
		cmocka_unit_test_setup_teardown(check__a_damaged_image_is_refused, setup, teardown),
		cmocka_unit_test(parse__what_kflash_did_not_write_is_refused),
	};

	return cmocka_run_group_tests_name("lastgood", tests, NULL, NULL);
}
