/* test_landlock.c: landlock.c against the running kernel. A ruleset from landlock_prepare,
 * applied in a forked child, denies reading outside ro/rw and writing under ro and allows
 * what is listed; deny_tcp blocks connect to a loopback listener of the parent; the scopes
 * block signals to the parent; landlock_ruleset_child does the same without allocating;
 * the system runtime list never names credentials. */
#include "lib/core/core.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <cmocka.h>

#define FORBID_MALLOC_WHAT "landlock_ruleset_child"
#include "forbid_malloc.h"

static char base[64];
static char ro_dir[96], rw_dir[96], out_dir[96], ro_file[96];
static int abi;

static void need_landlock(void)
{
	if (abi <= 0)
		skip();
}

static void create(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
}

static int group_setup(void **state __attribute__((unused)))
{
	abi = landlock_abi();
	snprintf(base, sizeof(base), "/tmp/agentd-test-landlock-XXXXXX");
	if (!mkdtemp(base))
		return -1;
	snprintf(ro_dir, sizeof(ro_dir), "%s/ro", base);
	snprintf(rw_dir, sizeof(rw_dir), "%s/rw", base);
	snprintf(out_dir, sizeof(out_dir), "%s/out", base);
	snprintf(ro_file, sizeof(ro_file), "%s/single", base);
	mkdir(ro_dir, 0755);
	mkdir(rw_dir, 0755);
	mkdir(out_dir, 0755);
	char p[160];
	snprintf(p, sizeof(p), "%s/f", ro_dir);
	create(p, "ro");
	snprintf(p, sizeof(p), "%s/f", rw_dir);
	create(p, "rw");
	snprintf(p, sizeof(p), "%s/secret", out_dir);
	create(p, "secret");
	create(ro_file, "single");
	return 0;
}

static int group_teardown(void **state __attribute__((unused)))
{
	rm_rf(base);
	return 0;
}

#define CHECK(code, cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "check %d: %s (errno %s)\n", code, #cond, strerror(errno)); \
			return code;                                                               \
		}                                                                                  \
	} while (0)

/* Run fn in a forked child; 0 or the number of the failed check. */
static void in_child(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status))
		fail_msg("child killed by signal %d", WTERMSIG(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("child check %d failed", WEXITSTATUS(status));
}

static bool open_ok(const char *dir, const char *name, int flags)
{
	char p[160];
	snprintf(p, sizeof(p), "%s%s%s", dir, name ? "/" : "", name ? name : "");
	int fd = open(p, flags | O_CLOEXEC, 0644);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static bool denied(const char *dir, const char *name, int flags)
{
	errno = 0;
	return !open_ok(dir, name, flags) && errno == EACCES;
}

/* What a process confined to ro = {ro_dir, ro_file}, rw = {rw_dir} may and may not do. */
static int check_fs_confined(void)
{
	char p[160], q[160];
	/* Allowed. */
	CHECK(10, open_ok(ro_dir, "f", O_RDONLY));
	CHECK(11, open_ok(ro_dir, NULL, O_RDONLY | O_DIRECTORY));
	CHECK(12, open_ok(ro_file, NULL, O_RDONLY));
	CHECK(13, open_ok(rw_dir, "f", O_RDWR));
	CHECK(14, open_ok(rw_dir, "new", O_WRONLY | O_CREAT));
	snprintf(p, sizeof(p), "%s/sub", rw_dir);
	CHECK(15, mkdir(p, 0755) == 0 && rmdir(p) == 0);
	snprintf(p, sizeof(p), "%s/new", rw_dir);
	snprintf(q, sizeof(q), "%s/renamed", rw_dir);
	CHECK(16, rename(p, q) == 0 && unlink(q) == 0);
	snprintf(p, sizeof(p), "%s/f", rw_dir);
	CHECK(17, truncate(p, 0) == 0);

	/* Read-only: no writes, creates, removals, truncation. */
	CHECK(20, denied(ro_dir, "f", O_WRONLY));
	CHECK(21, denied(ro_dir, "f", O_RDWR));
	CHECK(22, denied(ro_dir, "new", O_WRONLY | O_CREAT));
	CHECK(23, denied(ro_file, NULL, O_WRONLY));
	snprintf(p, sizeof(p), "%s/f", ro_dir);
	CHECK(24, unlink(p) < 0 && errno == EACCES);
	CHECK(25, truncate(p, 0) < 0 && errno == EACCES);
	snprintf(p, sizeof(p), "%s/sub", ro_dir);
	CHECK(26, mkdir(p, 0755) < 0 && errno == EACCES);
	/* Moving a read-only file out into rw: still a removal from ro. */
	snprintf(p, sizeof(p), "%s/f", ro_dir);
	snprintf(q, sizeof(q), "%s/stolen", rw_dir);
	CHECK(27, rename(p, q) < 0 && (errno == EACCES || errno == EXDEV));

	/* Outside: nothing, not even a listing. */
	CHECK(30, denied(out_dir, "secret", O_RDONLY));
	CHECK(31, denied(out_dir, NULL, O_RDONLY | O_DIRECTORY));
	CHECK(32, denied(out_dir, "new", O_WRONLY | O_CREAT));
	CHECK(33, denied(base, NULL, O_RDONLY | O_DIRECTORY));
	CHECK(34, denied("/etc/hostname", NULL, O_RDONLY) || access("/etc/hostname", F_OK) < 0);

	/* What was refused left nothing behind (checked through the allowed dirs). */
	CHECK(40, !open_ok(ro_dir, "new", O_RDONLY));
	CHECK(41, open_ok(ro_dir, "f", O_RDONLY));
	return 0;
}

static void fill_rules(struct landlock_rules *r, bool deny_tcp)
{
	memset(r, 0, sizeof(*r));
	strv_push(&r->ro, ro_dir);
	strv_push(&r->ro, ro_file);
	strv_push(&r->ro, "/nonexistent/agentd-skipped"); /* ro: missing is skipped */
	strv_push(&r->rw, rw_dir);
	r->deny_tcp = deny_tcp;
}

static void free_rules(struct landlock_rules *r)
{
	strv_free(&r->ro);
	strv_free(&r->rw);
}

static int child_prepared(void *arg)
{
	int fd = *(int *)arg;
	CHECK(1, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	int r = landlock_apply(fd);
	errno = -r;
	CHECK(2, r == 0);
	/* landlock_apply closes the ruleset. */
	CHECK(3, fcntl(fd, F_GETFD) < 0 && errno == EBADF);
	return check_fs_confined();
}

static void abi_available(void **state __attribute__((unused)))
{
	/* This project's CI kernels have it (ABI 7 on 6.18): a 0 here means the probe broke. */
	assert_true(abi > 0);
	assert_int_equal(landlock_abi(), abi); /* cached, stable */
}

static void prepared_ruleset_confines(void **state __attribute__((unused)))
{
	need_landlock();
	struct landlock_rules r;
	fill_rules(&r, false);
	agentd_strv warnings = {0};
	agentd_error err = {0};
	int fd = -1;
	assert_int_equal(landlock_prepare(&r, &fd, &warnings, &err), 0);
	assert_true(fd >= 0);
	in_child(child_prepared, &fd);
	close(fd);

	/* The parent is not confined by any of it. */
	char p[160];
	snprintf(p, sizeof(p), "%s/secret", out_dir);
	assert_true(open_ok(p, NULL, O_RDONLY));
	assert_int_equal(landlock_apply(-1), -EBADF);
	strv_free(&warnings);
	free_rules(&r);
}

static void prepare_errors(void **state __attribute__((unused)))
{
	need_landlock();
	struct landlock_rules r = {0};
	strv_push(&r.rw, "/nonexistent/agentd-rw");
	agentd_error err = {0};
	int fd = 7;
	assert_int_equal(landlock_prepare(&r, &fd, NULL, &err), -1);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err.msg, "/nonexistent/agentd-rw"));
	free_rules(&r);
}

static void no_warnings_when_the_abi_has_it_all(void **state __attribute__((unused)))
{
	need_landlock();
	/* Degradations are reported only where the kernel lacks a feature; they cannot be
	 * provoked honestly on this kernel (no switch in the product), so what is checked
	 * is the other half: a current ABI reports none. */
	if (abi < 6)
		skip();
	struct landlock_rules r;
	fill_rules(&r, true);
	r.scope_signals = r.scope_abstract_unix = true;
	agentd_strv warnings = {0};
	agentd_error err = {0};
	int fd = -1;
	assert_int_equal(landlock_prepare(&r, &fd, &warnings, &err), 0);
	for (size_t i = 0; i < warnings.n; i++)
		fprintf(stderr, "unexpected warning: %s\n", warnings.v[i]);
	assert_int_equal(warnings.n, 0);
	close(fd);
	strv_free(&warnings);
	free_rules(&r);
}

/* ---------------------------------------------------------------- TCP */

static int listener = -1;
static struct sockaddr_in listen_addr;

static void start_listener(void)
{
	listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(listener >= 0);
	memset(&listen_addr, 0, sizeof(listen_addr));
	listen_addr.sin_family = AF_INET;
	listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(listener, (struct sockaddr *)&listen_addr, sizeof(listen_addr)), 0);
	socklen_t len = sizeof(listen_addr);
	assert_int_equal(getsockname(listener, (struct sockaddr *)&listen_addr, &len), 0);
	assert_int_equal(listen(listener, 8), 0);
}

static bool tcp_connect_ok(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return false;
	int r = connect(s, (struct sockaddr *)&listen_addr, sizeof(listen_addr));
	int e = errno;
	close(s);
	errno = e;
	return r == 0;
}

static int child_tcp(void *arg)
{
	bool deny = *(bool *)arg;
	struct landlock_rules r;
	fill_rules(&r, deny);
	int fd = -1;
	agentd_error err = {0};
	CHECK(1, landlock_prepare(&r, &fd, NULL, &err) == 0);
	CHECK(2, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	CHECK(3, landlock_apply(fd) == 0);
	if (deny) {
		CHECK(10, !tcp_connect_ok() && errno == EACCES);
		/* Nor may it listen on a port of its own. */
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		CHECK(11, s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 &&
				  errno == EACCES);
	} else {
		CHECK(20, tcp_connect_ok()); /* the control: the listener is reachable */
	}
	return 0;
}

static void deny_tcp_blocks_loopback_connect(void **state __attribute__((unused)))
{
	need_landlock();
	if (abi < 4)
		skip();
	start_listener();
	bool deny = false;
	in_child(child_tcp, &deny);
	deny = true;
	in_child(child_tcp, &deny);
	assert_true(tcp_connect_ok()); /* the parent is unaffected */
	close(listener);
	listener = -1;
}

/* ---------------------------------------------------------------- child side, no malloc */

struct child_args {
	bool deny_tcp, scopes;
	const char *abstract_name;
};

static int child_no_malloc(void *arg)
{
	const struct child_args *a = arg;
	const char *const ro[] = {ro_dir, ro_file, "/nonexistent/agentd-skipped", NULL};
	const char *const rw[] = {rw_dir, "/nonexistent/agentd-rw-skipped", NULL};
	pid_t parent = getppid();
	CHECK(1, kill(parent, 0) == 0); /* the control for the scope below */

	FORBID_MALLOC(1);
	int fd = landlock_ruleset_child(ro, rw, a->deny_tcp, a->scopes);
	int r = fd >= 0 ? landlock_apply(fd) : fd;
	FORBID_MALLOC(0);
	errno = -r;
	CHECK(2, fd >= 0);
	CHECK(3, r == 0); /* no_new_privs not set: root may restrict itself (CAP_SYS_ADMIN) */

	int c = check_fs_confined();
	if (c)
		return c;
	if (a->deny_tcp && abi >= 4)
		CHECK(50, !tcp_connect_ok() && errno == EACCES);
	if (!a->deny_tcp)
		CHECK(51, tcp_connect_ok());
	if (a->scopes && abi >= 6) {
		/* Signals leave the domain no more, abstract sockets neither. */
		CHECK(60, kill(parent, 0) < 0 && errno == EPERM);
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		size_t n = strlen(a->abstract_name);
		memcpy(un.sun_path + 1, a->abstract_name, n);
		CHECK(61, s >= 0 && connect(s, (struct sockaddr *)&un,
					    (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
							1 + n)) < 0 &&
				  errno == EPERM);
	}
	if (!a->scopes)
		CHECK(62, kill(parent, 0) == 0);
	return 0;
}

static void ruleset_child_confines_without_malloc(void **state __attribute__((unused)))
{
	need_landlock();
	if (geteuid() != 0)
		skip(); /* without no_new_privs, restrict_self needs CAP_SYS_ADMIN */
	start_listener();
	/* An abstract socket of the parent's, outside the child's domain. */
	char name[64];
	snprintf(name, sizeof(name), "agentd-test-landlock-%d", (int)getpid());
	int us = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	memcpy(un.sun_path + 1, name, strlen(name));
	assert_int_equal(bind(us, (struct sockaddr *)&un,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name))),
			 0);
	assert_int_equal(listen(us, 4), 0);

	struct child_args a = {.deny_tcp = true, .scopes = true, .abstract_name = name};
	in_child(child_no_malloc, &a);
	a = (struct child_args){.deny_tcp = false, .scopes = false, .abstract_name = name};
	in_child(child_no_malloc, &a);
	close(us);
	close(listener);
	listener = -1;
}

/* ---------------------------------------------------------------- system paths */

static int child_system(void *arg)
{
	int fd = *(int *)arg;
	CHECK(1, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	CHECK(2, landlock_apply(fd) == 0);
	/* The runtime works: read the loader's config, list /usr, run a program. */
	CHECK(10, open_ok("/etc/passwd", NULL, O_RDONLY) || access("/etc/passwd", F_OK) < 0);
	CHECK(11, open_ok("/usr/bin", NULL, O_RDONLY | O_DIRECTORY));
	CHECK(12, open_ok("/dev/null", NULL, O_RDONLY));
	/* Credentials and the rest of /etc do not. */
	CHECK(20, denied("/etc/shadow", NULL, O_RDONLY) || access("/etc/shadow", F_OK) < 0);
	CHECK(21, denied("/etc", NULL, O_RDONLY | O_DIRECTORY));
	CHECK(22, denied("/root", NULL, O_RDONLY | O_DIRECTORY) || access("/root", F_OK) < 0);
	CHECK(23, denied("/usr/bin/env", NULL, O_WRONLY)); /* no O_TRUNC: harmless if it opened */
	fflush(NULL);
	pid_t p = fork();
	if (p == 0) {
		execl("/bin/sh", "sh", "-c", "exit 7", (char *)NULL);
		_exit(1);
	}
	int st;
	CHECK(30, p > 0 && waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 7);
	return 0;
}

static void system_ro_paths(void **state __attribute__((unused)))
{
	agentd_strv sys = {0};
	landlock_system_ro_paths(&sys);
	assert_true(strv_contains(&sys, "/usr"));
	if (access("/etc/passwd", F_OK) == 0)
		assert_true(strv_contains(&sys, "/etc/passwd"));
	assert_true(strv_contains(&sys, "/dev/null"));
	static const char *const never[] = {"/etc", "/etc/shadow", "/etc/gshadow", "/etc/sudoers",
					    "/etc/ssh", "/etc/machine-id", "/etc/ld.so.preload",
					    "/root", "/home", "/tmp", "/etc/environment"};
	for (size_t i = 0; i < ARRAY_SIZE(never); i++)
		if (strv_contains(&sys, never[i]))
			fail_msg("system paths name %s", never[i]);
	/* Appends to what is there, without duplicates. */
	size_t n = sys.n;
	landlock_system_ro_paths(&sys);
	assert_int_equal(sys.n, n);

	if (abi <= 0) {
		strv_free(&sys);
		return;
	}
	struct landlock_rules r = {0};
	r.ro = sys;
	int fd = -1;
	agentd_error err = {0};
	assert_int_equal(landlock_prepare(&r, &fd, NULL, &err), 0);
	in_child(child_system, &fd);
	close(fd);
	strv_free(&sys);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(abi_available),
		cmocka_unit_test(prepared_ruleset_confines),
		cmocka_unit_test(prepare_errors),
		cmocka_unit_test(no_warnings_when_the_abi_has_it_all),
		cmocka_unit_test(deny_tcp_blocks_loopback_connect),
		cmocka_unit_test(ruleset_child_confines_without_malloc),
		cmocka_unit_test(system_ro_paths),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
