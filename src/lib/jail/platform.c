/* platform.c: agentd_probe_platform(), what this kernel really allows, found by attempts made
 * once per process (Landlock, seccomp, cgroups, user namespaces, KVM, pidfd, clone3). */
#include "lib/jail/jail.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

static agentd_platform platform;
static pthread_once_t platform_once = PTHREAD_ONCE_INIT;

void platform_reason(agentd_platform *p, const char *fmt, ...)
{
	size_t len = strlen(p->reasons);
	va_list ap;

	if (len + 3 >= sizeof(p->reasons))
		return;
	if (len) {
		memcpy(p->reasons + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(p->reasons + len, sizeof(p->reasons) - len, fmt, ap);
	va_end(ap);
}

/* Reap pid, retrying EINTR; the exit status, or -1. */
static int reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

/* A child unshares a user namespace and maps itself to root in it: both steps must work
 * (AppArmor's restrict_unprivileged_userns lets unshare succeed and fails the map). The
 * child reports {step, errno} on a pipe; it only makes raw syscalls. */
static void probe_userns(agentd_platform *p)
{
	char map[64];
	int fds[2];

	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)geteuid());
	if (pipe2(fds, O_CLOEXEC) < 0) {
		platform_reason(p, "userns: pipe: %s", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		platform_reason(p, "userns: fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pid == 0) {
		int rep[2] = { 0, 0 };
		if (unshare(CLONE_NEWUSER) < 0) {
			rep[0] = 1;
			rep[1] = errno;
		} else {
			int fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
			if (fd < 0 || write(fd, map, strlen(map)) != (ssize_t)strlen(map)) {
				rep[0] = 2;
				rep[1] = errno;
			}
		}
		if (write(fds[1], rep, sizeof(rep)) != sizeof(rep))
			_exit(2);
		_exit(rep[0] ? 1 : 0);
	}
	close(fds[1]);
	int rep[2] = { 3, EPIPE };
	ssize_t n;
	do
		n = read(fds[0], rep, sizeof(rep));
	while (n < 0 && errno == EINTR);
	close(fds[0]);
	int st = reap(pid);
	if (n == sizeof(rep) && rep[0] == 0 && st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		p->user_namespaces = true;
		return;
	}
	static const char *const step[] = { "", "unshare(CLONE_NEWUSER)", "write uid_map",
					    "child" };
	int s = rep[0] >= 1 && rep[0] <= 3 ? rep[0] : 3;
	platform_reason(p, "userns: %s: %s", step[s], strerror(rep[1]));
}

static void probe_kvm(agentd_platform *p)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		platform_reason(p, "kvm: /dev/kvm: %s", strerror(errno));
		return;
	}
	int v = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (v == KVM_API_VERSION)
		p->kvm = true;
	else if (v < 0)
		platform_reason(p, "kvm: KVM_GET_API_VERSION: %s", strerror(errno));
	else
		platform_reason(p, "kvm: API version %d, want %d", v, KVM_API_VERSION);
	close(fd);
}

static void probe_pidfd(agentd_platform *p)
{
	int fd = sys_pidfd_open(getpid(), 0);

	if (fd < 0) {
		platform_reason(p, "pidfd: pidfd_open: %s", strerror(errno));
		return;
	}
	p->pidfd = true;
	close(fd);
}

/* Fork semantics (no CLONE_VM, no stack): the child is a copy that exits at once. Seccomp
 * profiles of container runtimes answer ENOSYS here on purpose, so glibc falls back. */
static void probe_clone3(agentd_platform *p)
{
	int pidfd = -1;
	struct clone_args args = {
		.flags = CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)&pidfd,
		.exit_signal = SIGCHLD,
	};
	long pid = sys_clone3(&args, sizeof(args));

	if (pid < 0) {
		platform_reason(p, "clone3: %s", strerror(errno));
		return;
	}
	if (pid == 0)
		_exit(0);
	int st = reap((pid_t)pid);
	if (pidfd >= 0 && st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		p->clone3 = true;
	else
		platform_reason(p, "clone3: child with CLONE_PIDFD did not run as expected");
	if (pidfd >= 0)
		close(pidfd);
}

static void probe_all(void)
{
	agentd_platform *p = &platform;
	struct utsname u;

	if (uname(&u) == 0)
		snprintf(p->kernel, sizeof(p->kernel), "%s", u.release);

	p->landlock_abi = landlock_abi();
	if (p->landlock_abi <= 0) {
		p->landlock_abi = 0;
		platform_reason(p, "landlock: unavailable (kernel without Landlock, or not in "
				"lsm=)");
	}
	p->seccomp_filter = seccomp_probe();
	if (!p->seccomp_filter)
		platform_reason(p, "seccomp: a filter could not be installed in a child");
	cgroup_probe(p);
	probe_userns(p);
	probe_kvm(p);
	probe_pidfd(p);
	probe_clone3(p);
}

const agentd_platform *agentd_probe_platform(void)
{
	pthread_once(&platform_once, probe_all);
	return &platform;
}
