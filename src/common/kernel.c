/* kernel.c: the raw syscall wrappers of kernel.h that are more than one line: path
 * resolution confined beneath a directory fd (openat2). */
#include "common/kernel.h"

int openat_beneath(int dirfd, const char *path, uint64_t flags, uint64_t mode,
		   uint64_t extra_resolve)
{
	struct open_how how = {
	    .flags = flags,
	    .mode = mode,
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | extra_resolve,
	};
	return (int)syscall(__NR_openat2, dirfd, path, &how, sizeof(how));
}
