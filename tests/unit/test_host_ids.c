/* test_host_ids.c (issue 16: rt-ids): the host id lease as a pool of slots (host_ids.c),
 * the container backend's one id per sandbox generalised to the OCI runtime's 65536 per
 * container: distinct slots for concurrent leasers (processes), a left lease skipped while
 * its holder has something of the slot and reclaimed after, the exhaustion error naming the
 * range and how to widen it, the host's processes seen by uid. A private lease dir; root. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/host/host.h"

#define BASE 1400000000u
#define SIZE 65536u

static char dir[64];
static const char *busy_holder;	/* the holder held() says still has the slot */

static bool held(const char *holder, uid_t uid, void *arg)
{
	(void)uid;
	(void)arg;
	return busy_holder && !strcmp(holder, busy_holder);
}

static struct host_id_pool pool(uint32_t slots)
{
	return (struct host_id_pool){.dir = dir, .uid_base = BASE, .gid_base = BASE + 7,
				     .slots = slots, .slot_size = SIZE, .what = "slot in the test range",
				     .widen = "widen it so", .held = held};
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test-host-ids-XXXXXX");
	busy_holder = NULL;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void leases_are_distinct_slots_and_a_left_one_waits_for_its_holder(void **state)
{
	(void)state;
	struct host_id_pool p = pool(4);
	struct host_ids a, b, c;
	agentd_error err = {0};
	assert_int_equal(host_ids_lease_from(&p, "/r/a", &a, &err), 0);
	assert_int_equal(host_ids_lease_from(&p, "/r/b", &b, &err), 0);
	assert_int_equal(a.uid, BASE);
	assert_int_equal(a.gid, BASE + 7);
	assert_int_equal(b.uid, BASE + SIZE);
	assert_int_equal(b.gid, BASE + 7 + SIZE);
	/* a's lease left behind (its process gone, its holder still there): skipped */
	busy_holder = "/r/a";
	host_ids_release_from(&p, &a, false);
	assert_int_equal(host_ids_lease_from(&p, "/r/c", &c, &err), 0);
	assert_int_equal(c.uid, BASE + 2 * SIZE);
	/* the holder gone: the slot is reclaimed (the lowest free) */
	busy_holder = NULL;
	struct host_ids d;
	assert_int_equal(host_ids_lease_from(&p, "/r/d", &d, &err), 0);
	assert_int_equal(d.uid, BASE);
	/* a release of a cleaned-up holder removes its file: the slot is free at once */
	host_ids_release_from(&p, &b, true);
	char path[128];
	snprintf(path, sizeof(path), "%s/%u", dir, BASE + SIZE);
	assert_int_equal(access(path, F_OK), -1);
	struct host_ids e;
	assert_int_equal(host_ids_lease_from(&p, "/r/e", &e, &err), 0);
	assert_int_equal(e.uid, BASE + SIZE);
	host_ids_release_from(&p, &c, true);
	host_ids_release_from(&p, &d, true);
	host_ids_release_from(&p, &e, true);
}

static void exhaustion_names_the_range_and_how_to_widen_it(void **state)
{
	(void)state;
	struct host_id_pool p = pool(1);
	struct host_ids a, b;
	agentd_error err = {0};
	assert_int_equal(host_ids_lease_from(&p, "/r/a", &a, &err), 0);
	assert_int_equal(host_ids_lease_from(&p, "/r/b", &b, &err), -1);
	assert_int_equal(err.code, EAGAIN);
	char range[64];
	snprintf(range, sizeof(range), "%u..%u", BASE, BASE + SIZE - 1);
	assert_non_null(strstr(err.msg, range));
	assert_non_null(strstr(err.msg, "widen it so"));
	assert_non_null(strstr(err.msg, "slot in the test range"));
	host_ids_release_from(&p, &a, true);
}

static void reap_removes_only_its_holders_lease_once_nothing_is_left(void **state)
{
	(void)state;
	struct host_id_pool p = pool(2);
	struct host_ids a;
	agentd_error err = {0};
	char path[128];
	snprintf(path, sizeof(path), "%s/%u", dir, BASE);
	assert_int_equal(host_ids_lease_from(&p, "/r/a", &a, &err), 0);
	/* held by a live leaser: not reaped */
	assert_int_equal(host_ids_reap_from(&p, BASE, "/r/a"), 1);
	host_ids_release_from(&p, &a, false);
	assert_int_equal(host_ids_reap_from(&p, BASE, "/r/other"), 0);
	assert_int_equal(access(path, F_OK), 0);
	busy_holder = "/r/a";
	assert_int_equal(host_ids_reap_from(&p, BASE, "/r/a"), 1);
	assert_int_equal(access(path, F_OK), 0);
	busy_holder = NULL;
	assert_int_equal(host_ids_reap_from(&p, BASE, "/r/a"), 0);
	assert_int_equal(access(path, F_OK), -1);
}

/* Six processes lease at once, each holding its lease until all have one. */
static void concurrent_leasers_get_distinct_slots(void **state)
{
	(void)state;
	enum { N = 6 };
	int out[2], go[2];
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(go), 0);
	for (int i = 0; i < N; i++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid)
			continue;
		close(go[1]);
		struct host_id_pool p = pool(N);
		struct host_ids ids;
		agentd_error err = {0};
		char holder[32], done;
		snprintf(holder, sizeof(holder), "/r/%d", i);
		uint32_t uid = host_ids_lease_from(&p, holder, &ids, &err) == 0 ? ids.uid : 0;
		if (write(out[1], &uid, sizeof(uid)) != sizeof(uid) || read(go[0], &done, 1) < 0)
			_exit(1);
		host_ids_release_from(&p, &ids, true);
		_exit(0);
	}
	close(out[1]);
	close(go[0]);
	uint32_t got[N];
	for (int i = 0; i < N; i++) {
		assert_int_equal(read(out[0], &got[i], sizeof(got[i])), sizeof(got[i]));
		assert_true(got[i] >= BASE && (got[i] - BASE) % SIZE == 0);
		for (int k = 0; k < i; k++)
			assert_int_not_equal(got[i], got[k]);
	}
	close(go[1]);
	for (int i = 0; i < N; i++) {
		int st;
		assert_true(wait(&st) > 0);
		assert_int_equal(st, 0);
	}
	close(out[0]);
}

static void any_process_sees_the_hosts_uids(void **state)
{
	(void)state;
	assert_true(host_ids_any_process(getuid(), 1));
	assert_false(host_ids_any_process(BASE + 3 * SIZE, SIZE));
}

int main(void)
{
	if (geteuid() != 0) {
		printf("1..0 # SKIP root needed (the lease dir is root's)\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			leases_are_distinct_slots_and_a_left_one_waits_for_its_holder, setup, teardown),
		cmocka_unit_test_setup_teardown(exhaustion_names_the_range_and_how_to_widen_it,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			reap_removes_only_its_holders_lease_once_nothing_is_left, setup, teardown),
		cmocka_unit_test_setup_teardown(concurrent_leasers_get_distinct_slots, setup,
						teardown),
		cmocka_unit_test_setup_teardown(any_process_sees_the_hosts_uids, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
