/* signals.c: the signal state a command expects. Blocked signals and ignored dispositions
 * survive execve (handlers do not): a sandbox's processes get them reset to the defaults,
 * whatever the caller had set. */
#include "lib/jail/jail.h"

#include <fcntl.h>
#include <signal.h>

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

void signals_reset(uint64_t ignored)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < _NSIG && s <= 64; s++) {
		if (s == SIGKILL || s == SIGSTOP || !(ignored & (1ULL << (s - 1))))
			continue;
		struct sigaction sa = {.sa_handler = SIG_DFL};
		sigaction(s, &sa, NULL);
	}
}
