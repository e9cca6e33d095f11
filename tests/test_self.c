/* test_self.c - an installed kflash and the checkout it was built from:
 * reading the checkout's HEAD as git does, the warning after an update
 * that was not installed, and doctor's version check. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fake_ops.h"
#include "kflash/commands.h"
#include "kflash/kflash.h"
#include "kflash/self.h"

#define A "1111111111111111111111111111111111111111"
#define B "2222222222222222222222222222222222222222"
#define C "3333333333333333333333333333333333333333"

static char *head_of(struct fake_world *w, const char *dir, int *ret)
{
	char *c = NULL;

	*ret = kf_self_head(&w->ops, dir, &c);
	return c;
}

static void head__is_read_as_git_resolves_it(void **state)
{
	struct fake_world w;
	char *c;
	int r;

	(void)state;
	fake_world_init(&w);
	/* a branch with its loose ref */
	fake_put_file(&w, "/k/.git/HEAD", "ref: refs/heads/main\n");
	fake_put_file(&w, "/k/.git/refs/heads/main", A "\n");
	c = head_of(&w, "/k", &r);
	assert_int_equal(r, 0);
	assert_string_equal(c, A);
	free(c);
	/* git gc packed it: the line in packed-refs, not another branch's */
	fake_put_file(&w, "/p/.git/HEAD", "ref: refs/heads/main\n");
	fake_put_file(&w, "/p/.git/packed-refs", "# pack-refs with: peeled fully-peeled sorted\n"
		      B " refs/heads/main-old\n" C " refs/heads/main\n^" A "\n");
	c = head_of(&w, "/p", &r);
	assert_int_equal(r, 0);
	assert_string_equal(c, C);
	free(c);
	/* a detached HEAD (a tag checked out) */
	fake_put_file(&w, "/d/.git/HEAD", B "\n");
	c = head_of(&w, "/d", &r);
	assert_int_equal(r, 0);
	assert_string_equal(c, B);
	free(c);
	/* a branch with no commit yet, no checkout, something git never writes */
	fake_put_file(&w, "/e/.git/HEAD", "ref: refs/heads/main\n");
	assert_null(head_of(&w, "/e", &r));
	assert_int_equal(r, -ENOENT);
	assert_null(head_of(&w, "/nowhere", &r));
	assert_int_equal(r, -ENOENT);
	fake_put_file(&w, "/x/.git/HEAD", "ref: ../../etc/passwd\n");
	assert_null(head_of(&w, "/x", &r));
	assert_int_equal(r, -EINVAL);
	fake_put_file(&w, "/y/.git/HEAD", "ref: refs/heads/main\n");
	fake_put_file(&w, "/y/.git/refs/heads/main", "not an id\n");
	assert_null(head_of(&w, "/y", &r));
	assert_int_equal(r, -EINVAL);
	fake_world_release(&w);
}

static void stale__only_when_the_checkout_holds_another_commit(void **state)
{
	struct fake_world w;
	struct kf_self built = { "v0.2.0", A, "/k" };
	struct kf_self tarball = { "0.1.0", "", "/k" };
	char *head;

	(void)state;
	fake_world_init(&w);
	fake_put_file(&w, "/k/.git/HEAD", "ref: refs/heads/main\n");
	fake_put_file(&w, "/k/.git/refs/heads/main", A "\n");
	assert_int_equal(kf_self_stale(&w.ops, &built, &head), 0);
	assert_null(head);
	/* pulled, not installed again */
	fake_put_file(&w, "/k/.git/refs/heads/main", B "\n");
	assert_int_equal(kf_self_stale(&w.ops, &built, &head), 1);
	assert_string_equal(head, B);
	free(head);
	/* built without git: it cannot tell, and says nothing */
	assert_int_equal(kf_self_stale(&w.ops, &tarball, &head), 0);
	assert_null(head);
	/* the checkout is gone */
	built.source_dir = "/gone";
	assert_int_equal(kf_self_stale(&w.ops, &built, &head), 0);
	fake_world_release(&w);
}

static void install_command__is_one_pasteable_line(void **state)
{
	char *c = kf_self_install_command("/home/pi/kflash");

	(void)state;
	assert_string_equal(c, "cd /home/pi/kflash && make && sudo make install");
	free(c);
	c = kf_self_install_command("/home/pi/my kflash");
	assert_string_equal(c, "cd '/home/pi/my kflash' && make && sudo make install");
	free(c);
}

struct run {
	int code;
	char *out, *err;
};

static struct run cli(struct fake_world *w, bool replaying, const char *a1, const char *a2)
{
	char *argv[] = { "kflash", (char *)a1, (char *)a2, NULL };
	struct fake_run f = fake_cli_run(&(struct kf_cli_opts){ .ops = &w->ops,
		.argc = a2 ? 3 : 2, .argv = argv, .replaying = replaying });

	return (struct run){ f.code, f.out, f.err };
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* This kflash's own checkout, in the fake world, at commit head. NULL when
 * this kflash was built outside git (the test is then skipped). */
static const struct kf_self *checkout_at(struct fake_world *w, const char *head)
{
	const struct kf_self *self = kf_self_built();
	char *p;

	if (!self->commit[0])
		return NULL;
	p = kf_asprintf("%s/.git/HEAD", self->source_dir);
	fake_put_file(w, p, head);
	free(p);
	return self;
}

/* A host whose checkout moved on to commit B since this kflash was built;
 * NULL (w released) when this build knows no checkout. */
static const struct kf_self *updated_host(struct fake_world *w)
{
	const struct kf_self *self;

	fake_world_init(w);
	fake_setenv(w, "KFLASH_CONFIG_DIR", "/cfg");
	self = checkout_at(w, B "\n");
	if (!self)
		fake_world_release(w);
	return self;
}

static void cli__warns_once_after_an_update_that_was_not_installed(void **state)
{
	struct fake_world w;
	const struct kf_self *self;
	struct run r;
	char *want;

	(void)state;
	if (!(self = updated_host(&w)))
		skip();
	want = kf_asprintf("kflash %s is not what %s holds now (commit 222222222): "
			   "cd %s && make && sudo make install", self->version,
			   self->source_dir, self->source_dir);
	r = cli(&w, false, "list", NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.err, want));
	assert_null(strstr(strstr(r.err, want) + 1, want));
	assert_null(strstr(r.out, "make install"));
	run_free(&r);
	r = cli(&w, false, "--version", NULL);
	assert_non_null(strstr(r.err, want));
	run_free(&r);
	r = cli(&w, false, "--json", "list");
	assert_non_null(strstr(r.err, want));
	assert_null(strstr(r.out, "make install"));
	run_free(&r);
	/* a replay has no checkout: what it prints is the recording's */
	r = cli(&w, true, "list", NULL);
	assert_null(strstr(r.err, "make install"));
	run_free(&r);
	/* installed again */
	checkout_at(&w, self->commit);
	r = cli(&w, false, "list", NULL);
	assert_null(strstr(r.err, "make install"));
	run_free(&r);
	free(want);
	fake_world_release(&w);
}

static void doctor__compares_its_version_with_the_checkouts(void **state)
{
	struct fake_world w;
	const struct kf_self *self;
	struct run r;
	char *line;

	(void)state;
	if (!(self = updated_host(&w)))
		skip();
	fake_add_prog(&w, (struct fake_prog){ .argv0 = "git", .match = "describe",
		.output = "v9.9.9-3-g2222222" });
	r = cli(&w, false, "doctor", NULL);
	line = kf_asprintf("warn kflash %s is its checkout's version (%s is at "
			   "v9.9.9-3-g2222222)\n    fix: cd %s && make && sudo make install",
			   self->version, self->source_dir, self->source_dir);
	assert_non_null(strstr(r.out, line));
	free(line);
	line = kf_asprintf("spawn git -C %s describe --always --tags --dirty",
			   self->source_dir);
	assert_true(fake_did(&w, line));
	/* doctor says it once, as a check, not again as a warning */
	assert_null(strstr(r.err, "make install"));
	free(line);
	run_free(&r);

	fake_add_prog(&w, (struct fake_prog){ .argv0 = "git", .match = "describe",
		.output = self->version });
	r = cli(&w, false, "doctor", NULL);
	line = kf_asprintf("ok kflash %s is its checkout's version (%s)\n", self->version,
			   self->source_dir);
	assert_non_null(strstr(r.out, line));
	free(line);
	run_free(&r);

	/* git cannot tell (not installed, or the checkout is another user's) */
	fake_add_prog(&w, (struct fake_prog){ .argv0 = "git", .match = "describe",
		.exit_code = 128 });
	r = cli(&w, false, "doctor", NULL);
	assert_null(strstr(r.out, "checkout's version"));
	run_free(&r);
	fake_world_release(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(head__is_read_as_git_resolves_it),
		cmocka_unit_test(stale__only_when_the_checkout_holds_another_commit),
		cmocka_unit_test(install_command__is_one_pasteable_line),
		cmocka_unit_test(cli__warns_once_after_an_update_that_was_not_installed),
		cmocka_unit_test(doctor__compares_its_version_with_the_checkouts),
	};

	return cmocka_run_group_tests_name("self", tests, NULL, NULL);
}
