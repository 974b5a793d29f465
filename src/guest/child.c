/* child.c: an exec's child between clone3 and execve — stdio, the execs' root (a private
 * mount namespace, switch_root's way), a network namespace for T_NET_NONE, rlimits, the
 * identity without capabilities, no_new_privs, seccomp, then execve along the env's PATH.
 * No allocation here; a failed step is written to errfd and the child exits 127. */
#include "guest/exec.h"

#include "common/kernel.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static void __attribute__((noreturn)) child_fail(int errfd, const char *step)
{
	struct child_err ce = {.err = errno};
	snprintf(ce.step, sizeof(ce.step), "%s", step);
	(void)!write(errfd, &ce, sizeof(ce));
	_exit(127);
}

static int set_rlimit(int res, uint64_t v)
{
	struct rlimit rl = {v, v};
	return setrlimit(res, &rl);
}

/* execve with the PATH of the exec's own environment when argv[0] has no '/'. */
static void exec_path(char **argv, char **envp)
{
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, envp);
		return;
	}
	for (char **e = envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	int first = ENOENT;
	for (const char *p = path;; p++) {
		size_t n = strcspn(p, ":");
		char full[4096];
		if (n + strlen(argv[0]) + 2 < sizeof(full)) {
			snprintf(full, sizeof(full), "%.*s%s%s", (int)n, p, n ? "/" : "", argv[0]);
			execve(full, argv, envp);
			if (errno != ENOENT && errno != ENOTDIR)
				first = errno == ENOENT ? first : errno;
		}
		p += n;
		if (!*p)
			break;
	}
	errno = first;
}

/* What the kernel lets uid 0 change by file permission alone, no capability asked: a
 * sysctl (core_pattern and modprobe name a helper the kernel runs with every capability,
 * PID 1's rights), sysrq (power off, crash), sysfs (unbind a device: the port) and the
 * cgroup tree (a process moves itself out of its exec's cgroup, out of its limits). The
 * exec's mount namespace sees them read-only; where one is there and cannot be made so,
 * the exec fails (closed). The child, still with PID 1's capabilities. */
static int ro_kernel_files(void)
{
	static const char *const paths[] = {"/proc/sys", "/proc/sysrq-trigger", "/sys"};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct stat st;
		if (lstat(paths[i], &st) < 0) {
			if (errno == ENOENT)
				continue;
			return -1;
		}
		if (mount(paths[i], paths[i], NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    sys_mount_setattr(AT_FDCWD, paths[i], AT_RECURSIVE,
				      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					  MOUNT_ATTR_NOEXEC) < 0)
			return -1;
	}
	return 0;
}

void exec_child(const struct exec_req *q, int fds[3], int slave, int errfd)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (setsid() < 0)
		child_fail(errfd, "setsid");
	if (slave >= 0 && ioctl(slave, TIOCSCTTY, 0) < 0)
		child_fail(errfd, "controlling tty");
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) < 0)
			child_fail(errfd, "stdio");
	if (errfd <= 2) /* cannot be: the fds were opened before it */
		child_fail(errfd, "error pipe");
	/* the execs' root: a private mount namespace whose root is moved onto /, so .. at the
	 * top of the root stays there (switch_root's way: rootfs cannot be pivoted) */
	const char *root = setup_exec_root();
	if (unshare(CLONE_NEWNS) < 0)
		child_fail(errfd, "mount namespace");
	if (strcmp(root, "/") != 0) {
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 || chdir(root) < 0 ||
		    mount(root, "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0)
			child_fail(errfd, "enter the root");
	}
	if (ro_kernel_files() < 0)
		child_fail(errfd, "read-only /proc/sys, sysrq, /sys");
	if (q->net_none) {
		if (unshare(CLONE_NEWNET) < 0 || net_lo_up() < 0)
			child_fail(errfd, "network namespace");
	}
	if (chdir(q->cwd) < 0)
		child_fail(errfd, "cwd");
	if (set_rlimit(RLIMIT_CORE, 0) < 0 ||
	    (q->nofile != NOT_GIVEN && set_rlimit(RLIMIT_NOFILE, q->nofile) < 0) ||
	    (q->fsize != NOT_GIVEN && set_rlimit(RLIMIT_FSIZE, q->fsize) < 0))
		child_fail(errfd, "rlimits");
	if (q->cpu_ms) {
		/* SIGXCPU at the limit, SIGKILL a second later if it is caught */
		uint64_t s = (q->cpu_ms + 999) / 1000;
		struct rlimit rl = {s, s + 1};
		if (setrlimit(RLIMIT_CPU, &rl) < 0)
			child_fail(errfd, "cpu rlimit");
	}
	int rc = privs_drop((uid_t)q->uid, (gid_t)q->gid);
	if (rc < 0) {
		errno = -rc;
		child_fail(errfd, "identity");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(errfd, "no_new_privs");
	if (q->seccomp) {
		size_t n;
		const void *insns = setup_seccomp(&n);
		struct sock_fprog prog = {.len = (unsigned short)n, .filter = (void *)insns};
		if (!insns) {
			errno = ENOSYS;
			child_fail(errfd, "seccomp (no program in SETUP)");
		}
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
			child_fail(errfd, "seccomp");
	}
	exec_path(q->argv, q->envp);
	child_fail(errfd, "execve");
}
