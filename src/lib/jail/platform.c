/* platform.c: agentd_probe_platform(), what this kernel really allows, found by attempts made
 * once per process (Landlock, seccomp, cgroups, user namespaces, KVM, pidfd, clone3), or
 * reused from a recent process of the same user in the same cgroup (platform_cache.c). */
#include "lib/jail/jail.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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

/* Both steps of a user namespace must work: its creation and the map of ourselves to root
 * in it (AppArmor's restrict_unprivileged_userns lets the first succeed and fails the
 * map). The child is made in a new user namespace and writes its own uid_map. */
struct userns_probe {
	char map[64];
	int err;	/* of the map's write, 0 when it worked */
};

static int userns_child(void *arg)
{
	struct userns_probe *u = arg;
	size_t len = strlen(u->map);
	int fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
	u->err = 0;
	if (fd < 0 || write(fd, u->map, len) != (ssize_t)len)
		u->err = errno ? errno : EIO;
	return u->err ? 1 : 0;
}

static void probe_userns(agentd_platform *p)
{
	struct userns_probe *u = jail_shared_page();
	if (!u) {
		platform_reason(p, "userns: mmap: %s", strerror(errno));
		return;
	}
	snprintf(u->map, sizeof(u->map), "0 %u 1\n", (unsigned)geteuid());
	u->err = EPIPE;
	int st = jail_light_child(userns_child, u, CLONE_NEWUSER);
	if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		p->user_namespaces = true;
	else if (st < 0 || (WIFEXITED(st) && WEXITSTATUS(st) == 126))
		platform_reason(p, "userns: clone(CLONE_NEWUSER): %s",
				strerror(st < 0 ? -st : EPERM));
	else
		platform_reason(p, "userns: write uid_map: %s", strerror(u->err));
	jail_shared_page_free(u);
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

/* clone3 with a size below its first version is EINVAL from a kernel that has it: no child
 * is made. Seccomp profiles of container runtimes answer ENOSYS on purpose, so glibc falls
 * back; so do kernels before 5.3 (CLONE_PIDFD came with clone3). */
static void probe_clone3(agentd_platform *p)
{
	long r = sys_clone3(NULL, 0);
	if (r < 0 && errno == EINVAL)
		p->clone3 = true;
	else
		platform_reason(p, "clone3: %s", r < 0 ? strerror(errno) : "accepted a bad size");
}

static void probe_all(void)
{
	agentd_platform *p = &platform;
	struct utsname u;
	_cleanup_free_ char *key = NULL;

	if (platform_cache_load(p, &key)) {
		trace_mark("platform probed (cached)");
		return;
	}

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
		platform_reason(p, "seccomp: no filter mode (seccomp(2) refused or not built in)");
	cgroup_probe(p);
	probe_userns(p);
	probe_kvm(p);
	probe_pidfd(p);
	probe_clone3(p);
	platform_cache_store(p, key);
	trace_mark("platform probed");
}

const agentd_platform *agentd_probe_platform(void)
{
	pthread_once(&platform_once, probe_all);
	return &platform;
}
