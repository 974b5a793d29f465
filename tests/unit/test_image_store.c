/* test_image_store.c: the image store's library half without archives — a directory
 * committed as an image (and a second layer on top of it), acquired as layer fds bottom
 * first with its defaults, its use lock holding off rm (EBUSY) and prune (a forced rm
 * frees its layers only once the lease is gone), references and tags. */
#include "lib/image/image.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static char base[64];
static agentd_image_store *store;

static int setup(void **state __attribute__((unused)))
{
	snprintf(base, sizeof(base), "/tmp/agentd-test-image-XXXXXX");
	if (!mkdtemp(base))
		return -1;
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/store", base);
	agentd_error err = {0};
	return agentd_image_store_open(dir, &store, &err);
}

static int teardown(void **state __attribute__((unused)))
{
	agentd_image_store_free(store);
	rm_rf(base);
	return 0;
}

/* base/name with a file f (text) and, when whiteout, a whiteout of "gone". */
static int tree(const char *name, const char *text, bool whiteout)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", base, name);
	assert_int_equal(mkdir(p, 0755), 0);
	int d = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(d >= 0);
	assert_int_equal(write_new_at(d, "f", text, strlen(text), 0644), 0);
	if (whiteout)
		assert_int_equal(mknodat(d, "gone", S_IFCHR | 0600, makedev(0, 0)), 0);
	else
		assert_int_equal(write_new_at(d, "gone", "x", 1, 0644), 0);
	return d;
}

static void commit_then_acquire_gives_the_layers_bottom_first(void **state
							       __attribute__((unused)))
{
	agentd_error err = {0};
	agentd_image_info one, two;
	int d1 = tree("one", "first", false), d2 = tree("two", "second", true);
	agentd_image_config cfg = {.workdir = "/w", .user = "1000:1000"};
	strv_push(&cfg.env, "A=1");
	strv_push(&cfg.cmd, "/bin/true");
	assert_int_equal(agentd_image_commit_dir(store, NULL, d1, &cfg, "base", &one, &err), 0);
	assert_int_equal(agentd_image_commit_dir(store, "base", d2, NULL, "top:1", &two, &err), 0);
	assert_int_equal(two.layers.n, 2);
	assert_string_equal(two.layers.v[0], one.layers.v[0]);
	assert_string_equal(two.config.workdir, "/w"); /* base's defaults carried */
	assert_string_equal(one.tags.v[0], "base:latest");
	assert_string_equal(one.source, "build");

	agentd_image_lease *l;
	assert_int_equal(agentd_image_acquire(store, "top:1", &l, &err), 0);
	assert_string_equal(l->id, two.id);
	assert_int_equal(l->n_layers, 2);
	char buf[16] = "";
	int f = openat(l->layer_fds[0], "f", O_RDONLY);
	assert_true(f >= 0 && read(f, buf, sizeof(buf)) == 5);
	close(f);
	assert_string_equal(buf, "first");
	struct stat st;
	assert_int_equal(fstatat(l->layer_fds[1], "gone", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)); /* kept a whiteout */
	assert_int_equal(stat(l->layer_paths[1], &st), 0);
	assert_string_equal(l->config.env.v[0], "A=1");
	assert_string_equal(l->config.user, "1000:1000");

	/* in use: rm refused, then forced (untagged, layers kept while the lease lives) */
	agentd_image_info info;
	assert_int_equal(agentd_image_inspect(store, two.id, &info, &err), 0);
	assert_true(info.in_use);
	agentd_image_info_free(&info);
	assert_int_equal(agentd_image_remove(store, "top:1", false, &err), -1);
	assert_int_equal(err.code, EBUSY);
	assert_int_equal(agentd_image_remove(store, "top:1", true, &err), 0);
	assert_int_equal(agentd_image_inspect(store, "top:1", &info, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_int_equal(agentd_image_remove(store, "base", false, &err), 0);
	uint64_t freed = 0;
	assert_int_equal(agentd_image_prune(store, &freed, &err), 0);
	assert_int_equal(fstatat(l->layer_fds[1], "gone", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(stat(l->layer_paths[0], &st), 0);
	agentd_image_lease_free(l);
	assert_int_equal(agentd_image_prune(store, &freed, &err), 0);
	char p[256];
	snprintf(p, sizeof(p), "%s/store/layers", base);
	DIR *ld = opendir(p);
	assert_non_null(ld);
	struct dirent *de;
	int left = 0;
	while ((de = readdir(ld)))
		left += de->d_name[0] != '.';
	closedir(ld);
	assert_int_equal(left, 0); /* both images gone: their layers too */
	agentd_image_info *v;
	size_t n;
	assert_int_equal(agentd_image_list(store, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	agentd_image_list_free(v, n);
	agentd_image_info_free(&one);
	agentd_image_info_free(&two);
	strv_free(&cfg.env);
	strv_free(&cfg.cmd);
	close(d1);
	close(d2);
}

static void references_resolve_by_tag_id_and_prefix(void **state __attribute__((unused)))
{
	agentd_error err = {0};
	agentd_image_info a, i;
	int d = tree("r", "ref", false);
	assert_int_equal(agentd_image_commit_dir(store, NULL, d, NULL, "reg:5000/team/app",
						 &a, &err), 0);
	assert_string_equal(a.tags.v[0], "reg:5000/team/app:latest");
	const char *refs[] = {"reg:5000/team/app", "reg:5000/team/app:latest", a.id, a.id + 7};
	for (size_t k = 0; k < 4; k++) {
		assert_int_equal(agentd_image_inspect(store, refs[k], &i, &err), 0);
		assert_string_equal(i.id, a.id);
		agentd_image_info_free(&i);
	}
	char prefix[20];
	snprintf(prefix, sizeof(prefix), "%.12s", a.id + 7);
	assert_int_equal(agentd_image_inspect(store, prefix, &i, &err), 0);
	agentd_image_info_free(&i);
	snprintf(prefix, sizeof(prefix), "%.11s", a.id + 7);
	assert_int_equal(agentd_image_inspect(store, prefix, &i, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_int_equal(agentd_image_tag(store, a.id, "-bad", &err), -1);
	assert_int_equal(err.code, EINVAL);
	agentd_image_info_free(&a);
	close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(commit_then_acquire_gives_the_layers_bottom_first,
						setup, teardown),
		cmocka_unit_test_setup_teardown(references_resolve_by_tag_id_and_prefix, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
