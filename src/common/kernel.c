/* kernel.c: the raw syscall wrappers of kernel.h that are more than one line: path
 * resolution confined beneath a directory fd (openat2). */
#include "common/kernel.h"

#include <errno.h>

int openat_beneath(int dirfd, const char *path, uint64_t flags, uint64_t mode,
		   uint64_t extra_resolve)
{
	struct open_how how = {
	    .flags = flags,
	    .mode = mode,
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | extra_resolve,
	};
	/* EAGAIN: a ".." was resolved while something renamed or mounted anywhere on the
	 * system (the kernel cannot then prove the walk stayed beneath): try again, bounded. */
	int fd, tries = 0;
	do
		fd = (int)syscall(__NR_openat2, dirfd, path, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN && ++tries < 64);
	return fd;
}
