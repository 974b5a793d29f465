/* fds.c: closing every inherited file descriptor before a sandboxed command starts.
 * A leaked fd is a way out of any sandbox (CVE-2024-21626), so this never fails open. */
#include "lib/jail/jail.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/syscall.h>

int fds_close_from(int lowfd)
{
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
		return 0;
	/* Kernels before 5.9: walk /proc/self/fd with raw getdents so no malloc is needed
	 * after fork. */
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	char buf[4096];
	for (;;) {
		long n = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
		if (n < 0) {
			int e = errno;
			close(dfd);
			return -e;
		}
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (void *)(buf + off);
			off += d->reclen;
			if (d->name[0] < '0' || d->name[0] > '9')
				continue;
			int fd = atoi(d->name);
			if (fd >= lowfd && fd != dfd)
				close(fd);
		}
	}
	close(dfd);
	return 0;
}
