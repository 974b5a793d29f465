/* test_seccomp.c: the default profile's build-time BPF (seccomp_default_bpf.h, copied by
 * seccomp_prepare) is byte-identical to what libseccomp compiles from seccomp.c's rules now,
 * for each variant, so the two can never drift apart; and the copy installs and acts. */
#include "lib/core/core.h"

#include <linux/filter.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <linux/netlink.h>
#include <sys/ipc.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cmocka.h>

static struct seccomp_opts variant(unsigned v)
{
	return seccomp_variant_opts(v);
}

static void prepared_default_is_byte_identical_to_a_runtime_compile(void **state
								    __attribute__((unused)))
{
	for (unsigned v = 0; v < SECCOMP_DEFAULT_VARIANTS; v++) {
		struct seccomp_opts o = variant(v);
		struct seccomp_prog p;
		agentd_error err = {0};
		assert_int_equal(seccomp_prepare(&o, &p, &err), 0);
		assert_true(p.active);
		assert_null(p.net_filter);	/* socket rules are in the one program */

		void *filter = NULL;
		unsigned short len = 0;
		if (seccomp_compile_default(&o, &filter, &len, &err) < 0)
			fail_msg("variant %u: %s", v, err.msg);
		if (p.len != len || memcmp(p.filter, filter, len * sizeof(struct sock_filter)))
			fail_msg("variant %u (deny_inet_sockets=%u allow_namespaces=%u "
				 "deny_sysv_ipc=%u): the prepared program (%u insns) differs from "
				 "libseccomp's (%u insns): rebuild seccomp_default_bpf.h",
				 v, v & 1, (v >> 1) & 1, v >> 2, p.len, len);
		assert_ptr_not_equal(p.filter, filter);	/* a copy the caller owns */
		free(filter);
		seccomp_prog_free(&p);
	}
}

/* Each variant compiles to its own program: a mix-up of the index would not go unnoticed
 * even if a variant's options stopped mattering. */
static void variants_are_distinct(void **state __attribute__((unused)))
{
	struct seccomp_prog p[SECCOMP_DEFAULT_VARIANTS];
	for (unsigned v = 0; v < SECCOMP_DEFAULT_VARIANTS; v++) {
		struct seccomp_opts o = variant(v);
		assert_int_equal(seccomp_prepare(&o, &p[v], NULL), 0);
	}
	for (unsigned a = 0; a < SECCOMP_DEFAULT_VARIANTS; a++)
		for (unsigned b = a + 1; b < SECCOMP_DEFAULT_VARIANTS; b++)
			assert_true(p[a].len != p[b].len ||
				    memcmp(p[a].filter, p[b].filter,
					   p[a].len * sizeof(struct sock_filter)));
	for (unsigned v = 0; v < SECCOMP_DEFAULT_VARIANTS; v++)
		seccomp_prog_free(&p[v]);
}

static void none_is_inactive_and_unset_is_default(void **state __attribute__((unused)))
{
	struct seccomp_opts o = {.profile = "none"};
	struct seccomp_prog p, d;
	assert_int_equal(seccomp_prepare(&o, &p, NULL), 0);
	assert_false(p.active);
	assert_null(p.filter);
	assert_int_equal(seccomp_apply(&p), 0);
	seccomp_prog_free(&p);

	for (unsigned v = 0; v < SECCOMP_DEFAULT_VARIANTS; v++) {
		struct seccomp_opts dflt = variant(v);
		o = dflt;
		o.profile = v & 1 ? NULL : "";
		assert_int_equal(seccomp_prepare(&o, &p, NULL), 0);
		assert_int_equal(seccomp_prepare(&dflt, &d, NULL), 0);
		assert_int_equal(p.len, d.len);
		assert_memory_equal(p.filter, d.filter, d.len * sizeof(struct sock_filter));
		seccomp_prog_free(&p);
		seccomp_prog_free(&d);
	}
}

/* Child: install variant v, then probe; exit status = first failed check (0 = all good). */
static int child_checks(unsigned v)
{
	struct seccomp_opts o = variant(v);
	struct seccomp_prog p;
	if (seccomp_prepare(&o, &p, NULL) < 0)
		return 10;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_apply(&p) < 0)
		return 11;
	if (syscall(__NR_getppid) <= 0)
		return 1;
	/* unshare(0) changes nothing; only the filter can refuse it. */
	long r = syscall(__NR_unshare, 0);
	if (o.allow_namespaces ? r != 0 : !(r == -1 && errno == EPERM))
		return 2;
	errno = 0;
	r = syscall(__NR_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (o.deny_inet_sockets ? !(r == -1 && errno == EAFNOSUPPORT) : (r < 0 && errno == EAFNOSUPPORT))
		return 3;
	r = syscall(__NR_socket, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (r < 0)
		return 4;
	r = syscall(__NR_keyctl, 0, 0, 0, 0, 0);
	if (!(r == -1 && errno == EPERM))
		return 5;
	r = syscall(__NR_clone3, NULL, 0);
	if (!(r == -1 && errno == ENOSYS))
		return 6;
	/* SysV IPC: refused only where asked (the process backends have no IPC namespace). */
	errno = 0;
	r = syscall(__NR_shmget, IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	if (r >= 0)
		syscall(__NR_shmctl, r, IPC_RMID, NULL);
	if (o.deny_sysv_ipc ? !(r == -1 && errno == EPERM) : r < 0)
		return 8;
	/* Netlink: route stays (getaddrinfo reads it), uevents and the rest are refused. */
	r = syscall(__NR_socket, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	if (r >= 0)
		close((int)r);
	if (!(r == -1 && errno == (o.deny_inet_sockets ? EAFNOSUPPORT : EPERM)))
		return 9;
	r = syscall(__NR_socket, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (r >= 0)
		close((int)r);
	if (o.deny_inet_sockets ? !(r == -1 && errno == EAFNOSUPPORT) : r < 0)
		return 12;
#if defined(__x86_64__)
	r = syscall(470, 0, 0, 0, 0, 0); /* past the newest syscall the filter knows */
	if (!(r == -1 && errno == ENOSYS))
		return 7;
#endif
	return 0;
}

static void prepared_default_installs_and_acts(void **state __attribute__((unused)))
{
	if (!seccomp_probe())
		skip();
	for (unsigned v = 0; v < SECCOMP_DEFAULT_VARIANTS; v++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(child_checks(v));
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			fail_msg("variant %u: child status 0x%x", v, status);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(prepared_default_is_byte_identical_to_a_runtime_compile),
	    cmocka_unit_test(variants_are_distinct),
	    cmocka_unit_test(none_is_inactive_and_unset_is_default),
	    cmocka_unit_test(prepared_default_installs_and_acts),
	};
	return cmocka_run_group_tests_name("seccomp", tests, NULL, NULL);
}
