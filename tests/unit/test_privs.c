/* test_privs.c: privs.c. Which ids a command runs as when agentd is root (spec run_as, else
 * 65534), and in forked children the real switch: ids, supplementary groups, every
 * capability set empty, securebits when staying uid 0, no_new_privs. */
#include "lib/core/core.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/securebits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <cmocka.h>

static void need_root(void)
{
	if (geteuid() != 0)
		skip();
}

/* Run fn in a forked child; it returns 0 or a distinct code after saying why on stderr. */
static void in_child(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg)); /* _exit: no atexit (LeakSanitizer) in a child with no caps */
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status))
		fail_msg("child killed by signal %d", WTERMSIG(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("child check %d failed", WEXITSTATUS(status));
}

#define CHECK(code, cond, ...)                                                                     \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "check %d: %s: ", code, #cond);                            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
			return code;                                                               \
		}                                                                                  \
	} while (0)

/* The hex value of a "Name:\t..." line of /proc/self/status (~0 when missing). */
static unsigned long long status_field(const char *name)
{
	char *st = read_file_at(AT_FDCWD, "/proc/self/status", 1 << 16, NULL);
	if (!st)
		return ~0ULL;
	char key[64];
	snprintf(key, sizeof(key), "\n%s:", name);
	const char *p = strstr(st, key);
	unsigned long long v = p ? strtoull(p + strlen(key), NULL, 16) : ~0ULL;
	free(st);
	return v;
}

static unsigned long long status_dec(const char *name)
{
	char *st = read_file_at(AT_FDCWD, "/proc/self/status", 1 << 16, NULL);
	if (!st)
		return ~0ULL;
	char key[64];
	snprintf(key, sizeof(key), "\n%s:", name);
	const char *p = strstr(st, key);
	unsigned long long v = p ? strtoull(p + strlen(key), NULL, 10) : ~0ULL;
	free(st);
	return v;
}

static void prepare_default_is_nobody(void **state __attribute__((unused)))
{
	need_root();
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STANDARD);
	assert_int_equal(spec.run_as_uid, -1);
	struct privs_plan p;
	memset(&p, 0xaa, sizeof(p));
	privs_prepare(&spec, &p);
	assert_true(p.switch_user);
	assert_int_equal(p.uid, 65534);
	assert_int_equal(p.gid, 65534);
	assert_true(p.drop_caps);
	agentd_spec_free(&spec);
}

static void prepare_run_as(void **state __attribute__((unused)))
{
	need_root();
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STANDARD);
	struct privs_plan p;

	spec.run_as_uid = 1000;
	spec.run_as_gid = 2000;
	privs_prepare(&spec, &p);
	assert_true(p.switch_user);
	assert_int_equal(p.uid, 1000);
	assert_int_equal(p.gid, 2000);
	assert_true(p.drop_caps);

	/* uid alone: the gid follows it. */
	spec.run_as_gid = -1;
	privs_prepare(&spec, &p);
	assert_true(p.switch_user);
	assert_int_equal(p.uid, 1000);
	assert_int_equal(p.gid, 1000);

	/* gid alone: uid stays nobody. */
	spec.run_as_uid = -1;
	spec.run_as_gid = 100;
	privs_prepare(&spec, &p);
	assert_int_equal(p.uid, 65534);
	assert_int_equal(p.gid, 100);

	/* uid 0: no switch, but still every capability dropped. */
	spec.run_as_uid = 0;
	spec.run_as_gid = -1;
	privs_prepare(&spec, &p);
	assert_false(p.switch_user);
	assert_true(p.drop_caps);
	agentd_spec_free(&spec);
}

static int child_switch(void *arg __attribute__((unused)))
{
	gid_t extra[] = {4, 27, 100};
	CHECK(1, setgroups(ARRAY_SIZE(extra), extra) == 0, "%s", strerror(errno));
	CHECK(2, getgroups(0, NULL) == 3, "setup");

	struct privs_plan p = {.switch_user = true, .uid = 12345, .gid = 23456, .drop_caps = true};
	int r = privs_apply(&p);
	CHECK(3, r == 0, "privs_apply: %s", strerror(-r));

	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	CHECK(4, getresuid(&ru, &eu, &su) == 0, "getresuid");
	CHECK(5, ru == 12345 && eu == 12345 && su == 12345, "uids %u %u %u", ru, eu, su);
	CHECK(6, getresgid(&rg, &eg, &sg) == 0, "getresgid");
	CHECK(7, rg == 23456 && eg == 23456 && sg == 23456, "gids %u %u %u", rg, eg, sg);
	CHECK(8, getgroups(0, NULL) == 0, "%d supplementary groups left", getgroups(0, NULL));
	CHECK(9, status_field("CapEff") == 0, "CapEff %llx", status_field("CapEff"));
	CHECK(10, status_field("CapPrm") == 0, "CapPrm %llx", status_field("CapPrm"));
	CHECK(11, status_field("CapBnd") == 0, "CapBnd %llx", status_field("CapBnd"));
	CHECK(12, status_field("CapInh") == 0, "CapInh %llx", status_field("CapInh"));
	CHECK(13, status_field("CapAmb") == 0, "CapAmb %llx", status_field("CapAmb"));
	/* And for good: the ids cannot be switched back. */
	CHECK(14, setresuid(0, 0, 0) < 0 && errno == EPERM, "setresuid(0) worked");
	CHECK(15, setgroups(ARRAY_SIZE(extra), extra) < 0, "setgroups worked again");
	return 0;
}

static void apply_switches_ids_and_drops_everything(void **state __attribute__((unused)))
{
	need_root();
	in_child(child_switch, NULL);
}

static int child_stay_root(void *arg __attribute__((unused)))
{
	struct privs_plan p = {.switch_user = false, .drop_caps = true};
	int r = privs_apply(&p);
	CHECK(1, r == 0, "privs_apply: %s", strerror(-r));
	CHECK(2, getuid() == 0 && geteuid() == 0, "uid changed");
	CHECK(3, status_field("CapEff") == 0, "CapEff %llx", status_field("CapEff"));
	CHECK(4, status_field("CapPrm") == 0, "CapPrm %llx", status_field("CapPrm"));
	CHECK(5, status_field("CapBnd") == 0, "CapBnd %llx", status_field("CapBnd"));
	CHECK(6, status_field("CapAmb") == 0, "CapAmb %llx", status_field("CapAmb"));
	int bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	int want = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
		   SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED;
	CHECK(7, bits >= 0 && (bits & want) == want, "securebits %#x", bits);
	/* Root without capabilities cannot do root things. */
	CHECK(8, setgroups(0, NULL) < 0 && errno == EPERM, "setgroups worked");
	/* An exec'ed program (uid 0) gets no capability back: SECBIT_NOROOT. */
	fflush(NULL);
	execl("/bin/sh", "sh", "-c",
	      "awk '/^Cap(Eff|Prm|Bnd):/ && $2 != \"0000000000000000\" { print; bad = 1 } "
	      "END { exit bad ? 21 : 0 }' /proc/self/status",
	      (char *)NULL);
	return 20;
}

static void apply_as_root_drops_caps_for_good(void **state __attribute__((unused)))
{
	need_root();
	in_child(child_stay_root, NULL);
}

static int child_nnp(void *arg __attribute__((unused)))
{
	CHECK(1, status_dec("NoNewPrivs") == 0, "already set");
	CHECK(2, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 0, "already set");
	int r = privs_no_new_privs();
	CHECK(3, r == 0, "%s", strerror(-r));
	CHECK(4, status_dec("NoNewPrivs") == 1, "NoNewPrivs %llu", status_dec("NoNewPrivs"));
	CHECK(5, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "prctl says unset");
	/* Cannot be undone. */
	CHECK(6, prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0) < 0, "unset worked");
	return 0;
}

static void no_new_privs_is_set(void **state __attribute__((unused)))
{
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 0)
		skip(); /* the test runner already has it: nothing to observe */
	in_child(child_nnp, NULL);
}

static int child_set_ids_keep_groups(void *arg __attribute__((unused)))
{
	gid_t extra[] = {4, 27};
	CHECK(1, setgroups(ARRAY_SIZE(extra), extra) == 0, "%s", strerror(errno));
	int r = privs_set_ids(1111, 2222, false);
	CHECK(2, r == 0, "%s", strerror(-r));
	CHECK(3, getuid() == 1111 && geteuid() == 1111 && getgid() == 2222 && getegid() == 2222,
	      "ids %u/%u", getuid(), getgid());
	CHECK(4, getgroups(0, NULL) == 2, "groups dropped without drop_groups");
	/* Every uid left 0 without keepcaps: permitted and effective are empty. */
	CHECK(5, status_field("CapEff") == 0 && status_field("CapPrm") == 0, "caps kept");
	return 0;
}

static void set_ids_without_dropping_groups(void **state __attribute__((unused)))
{
	need_root();
	in_child(child_set_ids_keep_groups, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(prepare_default_is_nobody),
		cmocka_unit_test(prepare_run_as),
		cmocka_unit_test(apply_switches_ids_and_drops_everything),
		cmocka_unit_test(apply_as_root_drops_caps_for_good),
		cmocka_unit_test(no_new_privs_is_set),
		cmocka_unit_test(set_ids_without_dropping_groups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
