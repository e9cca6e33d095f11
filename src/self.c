/* self.c - whether the installed kflash is the one its checkout holds. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kflash/kflash.h"
#include "kflash/proc.h"
#include "kflash/self.h"
#include "kflash/util.h"

const struct kf_self *kf_self_built(void)
{
	static const struct kf_self self = { KFLASH_VERSION, KFLASH_COMMIT,
					     KFLASH_SOURCE_DIR };

	return &self;
}

/* An object id as git writes it (SHA-1, or SHA-256 in a repository made
 * with --object-format=sha256), followed by the end of its line. */
static bool is_object_id(const char *s, size_t *ret_len)
{
	size_t n = strspn(s, "0123456789abcdef");

	*ret_len = n;
	return (n == 40 || n == 64) && (s[n] == '\0' || s[n] == '\n' || s[n] == ' ');
}

static int read_git_file(const struct kf_ops *ops, const char *dir, const char *name,
			 char **ret)
{
	char *path = kf_asprintf("%s/.git/%s", dir, name);
	int r = kf_os_read_file(ops, path, ret, NULL);

	free(path);
	return r;
}

/* The id packed-refs has for ref, or NULL. */
static char *packed_ref(const char *packed, const char *ref)
{
	const char *line;
	size_t n, rl = strlen(ref);

	for (line = packed; *line; line += strcspn(line, "\n"), line += *line == '\n') {
		if (is_object_id(line, &n) && line[n] == ' ' &&
		    strncmp(line + n + 1, ref, rl) == 0 &&
		    (line[n + 1 + rl] == '\n' || line[n + 1 + rl] == '\0'))
			return kf_xstrndup(line, n);
	}
	return NULL;
}

int kf_self_head(const struct kf_ops *ops, const char *dir, char **ret_commit)
{
	char *head = NULL, *ref = NULL, *data = NULL;
	size_t n;
	int r;

	*ret_commit = NULL;
	r = read_git_file(ops, dir, "HEAD", &head);
	if (r < 0)
		return r;
	if (is_object_id(head, &n)) {
		*ret_commit = kf_xstrndup(head, n);
		goto out;
	}
	if (!kf_startswith(head, "ref: refs/")) {
		r = -EINVAL;
		goto out;
	}
	ref = kf_xstrndup(head + 5, strcspn(head + 5, "\n"));
	r = read_git_file(ops, dir, ref, &data);
	if (r == 0) {
		if (is_object_id(data, &n))
			*ret_commit = kf_xstrndup(data, n);
		else
			r = -EINVAL;
		goto out;
	}
	if (r != -ENOENT)
		goto out;
	/* git gc packed the branch */
	r = read_git_file(ops, dir, "packed-refs", &data);
	if (r == 0) {
		*ret_commit = packed_ref(data, ref);
		r = *ret_commit ? 0 : -ENOENT;
	}
out:
	free(head);
	free(ref);
	free(data);
	return r;
}

int kf_self_stale(const struct kf_ops *ops, const struct kf_self *self, char **ret_head)
{
	char *head;

	*ret_head = NULL;
	if (!self->commit[0] || !self->source_dir[0] ||
	    kf_self_head(ops, self->source_dir, &head) < 0)
		return 0;
	if (strcmp(head, self->commit) == 0) {
		free(head);
		return 0;
	}
	*ret_head = head;
	return 1;
}

int kf_self_checkout_version(const struct kf_ops *ops, const char *dir, char **ret_version)
{
	const char *argv[] = { "git", "-C", dir, "describe", "--always", "--tags",
			       "--dirty", NULL };
	/* --dirty would refresh the index: this is a look, not a change */
	const char *env[] = { "GIT_OPTIONAL_LOCKS=0", NULL };
	struct kf_spawn_req req = { .argv = argv, .env = env, .in = KF_STDIO_NULL,
				    .out = KF_STDIO_CAPTURE };
	struct kf_buf out = KF_BUF_INIT;
	struct kf_run_opts o = { .timeout_ms = 15000, .capture = &out };
	struct kf_exit ex;
	int r = kf_proc_run(ops, &req, &o, &ex);

	*ret_version = NULL;
	if (r == 0 && (!kf_exit_ok(&ex) || !out.data || !out.data[0] || out.data[0] == '\n'))
		r = ex.kind == KF_EXIT_EXEC_FAILED ? -ENOENT : -EIO;
	if (r == 0)
		*ret_version = kf_xstrndup(out.data, strcspn(out.data, "\n"));
	kf_buf_release(&out);
	return r;
}

char *kf_self_install_command(const char *dir)
{
	const char *cd[] = { "cd", dir, NULL };
	char *c = kf_argv_join(cd), *s = kf_asprintf("%s && make && sudo make install", c);

	free(c);
	return s;
}

void kf_self_warn_stale(const struct kf_ops *ops, const struct kf_self *self,
			struct kf_out *out)
{
	char *head, *fix;

	if (kf_self_stale(ops, self, &head) != 1)
		return;
	fix = kf_self_install_command(self->source_dir);
	kf_out_warn(out, "kflash %s is not what %s holds now (commit %.9s): %s",
		    self->version, self->source_dir, head, fix);
	free(fix);
	free(head);
}
