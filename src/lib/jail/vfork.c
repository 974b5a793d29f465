/* vfork.c: light children — a child that shares our memory while we wait (clone with
 * CLONE_VM | CLONE_VFORK, as posix_spawn does) for the probes that must see the kernel act
 * in another task: no page table is copied, which is most of what a fork costs here. */
#include "lib/jail/jail.h"

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

/* Reap pid, retrying EINTR; the exit status, or -errno. */
static int reap_child(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return st;
}

int jail_light_child(int (*fn)(void *), void *arg, int ns_flags)
{
#ifndef __SANITIZE_ADDRESS__
	enum { STACK = 64 << 10 };
	void *stack = mmap(NULL, STACK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack != MAP_FAILED) {
		pid_t pid = clone(fn, (char *)stack + STACK,
				  CLONE_VM | CLONE_VFORK | ns_flags | SIGCHLD, arg);
		int st = pid < 0 ? -errno : reap_child(pid);
		munmap(stack, STACK);
		return st;
	}
#endif
	/* fork, then the namespaces by unshare: fn sees the same world */
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(ns_flags && unshare(ns_flags) < 0 ? 126 : fn(arg));
	return reap_child(pid);
}

void *jail_shared_page(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void jail_shared_page_free(void *page)
{
	if (page)
		munmap(page, 4096);
}
