/* kernel.h: every compat #define and raw syscall number agentd needs from kernels and
 * libcs newer than the build host's headers (Debian 12: glibc 2.36, linux 6.1 uapi), in one
 * place, plus the raw wrappers (kernel.c) whose libc functions are missing or unsafe in a
 * clone3 child. A kernel without a call answers ENOSYS; each caller has its fallback. */
#ifndef AGENTD_KERNEL_H
#define AGENTD_KERNEL_H

#include <fcntl.h>
#include <linux/types.h>
#include <linux/openat2.h> /* struct open_how, RESOLVE_*: uapi since 5.6, in Debian 12 */
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/landlock.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif
#ifndef LANDLOCK_CREATE_RULESET_VERSION
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#endif
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13) /* ABI 2 */
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0) /* ABI 4 */
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef __NR_open_tree
#define __NR_open_tree 428
#define __NR_move_mount 429
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#ifndef ST_NOSYMFOLLOW
#define ST_NOSYMFOLLOW 0x2000
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif

/* ---------------------------------------------------------------- raw wrappers
 * syscall(2) only, no libc state: safe in a clone3 child of a multithreaded daemon. The
 * sys_ prefix keeps them apart from glibc's declarations of the same calls. Each returns
 * what the syscall does (-1 and errno on failure). */

static inline int sys_pidfd_open(pid_t pid, unsigned flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}

static inline int sys_pidfd_send_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* args: struct clone_args of the caller's size (CLONE_INTO_CGROUP needs v2). */
static inline long sys_clone3(void *args, size_t size)
{
	return syscall(SYS_clone3, args, size);
}

/* Adds attr_set to the mount(s) at dfd/path; mount_setattr never clears here. */
static inline int sys_mount_setattr(int dfd, const char *path, unsigned flags, uint64_t attr_set)
{
	struct {
		uint64_t attr_set, attr_clr, propagation, userns_fd;
	} ma = {.attr_set = attr_set}; /* struct mount_attr, version 0 */
	return (int)syscall(__NR_mount_setattr, dfd, path, flags, &ma, sizeof(ma));
}

/* Idmap the detached mount tree (open_tree OPEN_TREE_CLONE) through the user namespace
 * userns_fd: an id k on disk shows as what userns maps k to (5.12). */
static inline int sys_mount_setattr_idmap(int tree, int userns_fd)
{
	struct {
		uint64_t attr_set, attr_clr, propagation, userns_fd;
	} ma = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd};
	return (int)syscall(__NR_mount_setattr, tree, "", AT_EMPTY_PATH, &ma, sizeof(ma));
}

static inline int sys_open_tree(int dfd, const char *path, unsigned flags)
{
	return (int)syscall(__NR_open_tree, dfd, path, flags);
}

static inline int sys_move_mount(int from_dfd, const char *from, int to_dfd, const char *to,
				 unsigned flags)
{
	return (int)syscall(__NR_move_mount, from_dfd, from, to_dfd, to, flags);
}

/* attr: struct landlock_ruleset_attr of the size the ABI knows (newer fields cut off). */
static inline int sys_landlock_create_ruleset(const void *attr, size_t size, uint32_t flags)
{
	return (int)syscall(__NR_landlock_create_ruleset, attr, size, flags);
}

static inline int sys_landlock_add_rule(int ruleset, enum landlock_rule_type type, const void *attr)
{
	return (int)syscall(__NR_landlock_add_rule, ruleset, type, attr, 0);
}

static inline int sys_landlock_restrict_self(int ruleset)
{
	return (int)syscall(__NR_landlock_restrict_self, ruleset, 0);
}

/* open(2) of path beneath dirfd as if dirfd were the root (crun's safe_openat): ".." and
 * absolute symlinks stay inside, magic links (/proc/self/fd/...) are refused, and
 * extra_resolve adds RESOLVE_* (RESOLVE_NO_SYMLINKS...); the kernel's EAGAIN (a ".." met
 * a concurrent rename or mount) is retried, bounded. No fallback: -1 with ENOSYS
 * before Linux 5.6, for the caller to fall back or fail closed. Async-signal-safe. */
int openat_beneath(int dirfd, const char *path, uint64_t flags, uint64_t mode,
		   uint64_t extra_resolve);

#endif
