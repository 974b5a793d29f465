/* legacy.c: mount attributes on kernels before 5.12 (no mount_setattr): MS_REMOUNT, which
 * must repeat the flags a mount already has. The child side: syscalls only. */
#include "lib/jail/mounts/mounts_internal.h"

#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>

/* MS_* for a remount adding attr to a mount whose statfs flags are st. */
static unsigned long ms_flags(uint64_t attr, unsigned long st)
{
	unsigned long f = 0;
	if ((attr & MOUNT_ATTR_RDONLY) || (st & ST_RDONLY))
		f |= MS_RDONLY;
	if ((attr & MOUNT_ATTR_NOSUID) || (st & ST_NOSUID))
		f |= MS_NOSUID;
	if ((attr & MOUNT_ATTR_NODEV) || (st & ST_NODEV))
		f |= MS_NODEV;
	if ((attr & MOUNT_ATTR_NOEXEC) || (st & ST_NOEXEC))
		f |= MS_NOEXEC;
	if (st & ST_NOATIME)
		f |= MS_NOATIME;
	else if (st & ST_RELATIME)
		f |= MS_RELATIME;
	else
		f |= MS_STRICTATIME;
	if (st & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (st & ST_NOSYMFOLLOW)
		f |= MS_NOSYMFOLLOW;
	return f;
}

/* mount_setattr only adds, so it works on mounts whose flags a user namespace has locked;
 * MS_REMOUNT must repeat those flags (read with statfs, a plain syscall), or the kernel
 * refuses, and only reaches the top mount of a tree. */
int remount_attr(const char *path, uint64_t attr)
{
	struct statfs sf;
	if (statfs(path, &sf) < 0)
		return -errno;
	unsigned long f = ms_flags(attr, (unsigned long)sf.f_flags);
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | f, NULL) < 0)
		return -errno;
	return 0;
}
