/* signals.c: the signal state a command expects. Blocked signals and ignored dispositions
 * survive execve (handlers do not): a sandbox's processes get them reset to the defaults,
 * whatever the caller had set, glibc's reserved real-time signals included. */
#include "lib/jail/jail.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>

/* Signals this process ignores (SigIgn of /proc/self/status): the only dispositions that
 * survive execve, handlers are reset by the kernel. Read in the parent, before the fork. */
uint64_t ignored_signals(void)
{
	_cleanup_free_ char *st = read_file_at(AT_FDCWD, "/proc/self/status", 1 << 16, NULL);
	const char *p = st ? strstr(st, "\nSigIgn:") : NULL;
	if (!p)
		return ~0ULL; /* unknown: reset them all */
	return strtoull(p + 9, NULL, 16);
}

/* The kernel's struct sigaction (x86_64 and the other 64-bit ABIs): glibc's sigaction()
 * refuses its own reserved signals (32 and 33), which a caller may still have inherited as
 * ignored, and the command must not. */
struct kernel_sigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	uint64_t mask;
};

void signals_reset(uint64_t ignored)
{
	uint64_t none = 0;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none));
	for (int s = 1; s <= 64; s++) {
		if (s == SIGKILL || s == SIGSTOP || !(ignored & (1ULL << (s - 1))))
			continue;
		struct kernel_sigaction sa = {.handler = SIG_DFL};
		syscall(SYS_rt_sigaction, s, &sa, NULL, sizeof(sa.mask));
	}
}
