/* copyup.c: a tmpfs mounted over a directory of the new root starting with a copy of what
 * the directory held (runc's and crun's "tmpcopyup", podman's --tmpfs); child side (the
 * plan's applier), syscalls and the stack only.
 *
 * The source is the image, which a container may have written in an earlier run: every
 * entry is reached from its parent directory's fd, never through a symlink
 * (RESOLVE_NO_SYMLINKS, O_NOFOLLOW) nor into another mount (RESOLVE_NO_XDEV: skipped);
 * symlinks are copied as links, never read through; a file is read only once its fd says
 * it is a regular file (a fifo swapped in would block the copy); devices and sockets are
 * skipped (no node is made in a user namespace); the depth is bounded, and the size and
 * the number of files by the tmpfs's own limits (ENOSPC fails the copy, and with it the
 * container). Modes, owners and times are kept; where an owner cannot be kept (an id the
 * user namespace does not map) the copy keeps no set-id bit. */
#include "lib/jail/mounts/mounts_internal.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define COPYUP_MAX_DEPTH 64

struct dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int copy_dir(int src, int dst, int depth);

/* name below dir, the kind the caller expects or an error: never a link, nor another
 * mount's root (-EXDEV). -errno. */
static int open_below(int dir, const char *name, int flags)
{
	int fd = openat_beneath(dir, name, (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC), 0,
				RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV);
	return fd < 0 ? -errno : fd;
}

/* noinline here and in copy_link: their buffers stay out of the recursion's frames */
__attribute__((noinline)) int copy_fd_bytes(int in, int out, off_t max, off_t *done)
{
	char buf[32768];
	*done = 0;
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (n > max - *done)
			return -EFBIG;
		*done += n;
		if (write_all(out, buf, (size_t)n) < 0)
			return -errno;
	}
}

static int copy_file(int src, int dst, const char *name)
{
	/* O_NONBLOCK: a fifo planted here since the lstat opens without waiting */
	int in = open_below(src, name, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (in < 0)
		return in;
	struct stat st;
	int ret = fstat(in, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
	int out = ret < 0 ? -1
			  : openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				   0600);
	if (ret == 0 && out < 0)
		ret = -errno;
	off_t done;
	if (ret == 0)	/* bounded by the tmpfs's size: ENOSPC */
		ret = copy_fd_bytes(in, out, INT64_MAX, &done);
	close(in);
	if (out >= 0)
		close(out);
	return ret;
}

/* 0, 1 when name is another mount's root (skipped), or -errno */
static int copy_subdir(int src, int dst, const char *name, int depth)
{
	if (depth >= COPYUP_MAX_DEPTH)
		return -ELOOP;
	int in = open_below(src, name, O_RDONLY | O_DIRECTORY);
	if (in < 0)
		return in == -EXDEV ? 1 : in;	/* another mount's root: skipped */
	int ret = mkdirat(dst, name, 0700) < 0 ? -errno : 0, out = -1;
	if (ret == 0 && (out = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC)) < 0)
		ret = -errno;
	if (ret == 0)
		ret = copy_dir(in, out, depth + 1);
	close(in);
	if (out >= 0)
		close(out);
	return ret;
}

static __attribute__((noinline)) int copy_link(int src, int dst, const char *name)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(src, name, target, sizeof(target));
	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(target))
		return -ENAMETOOLONG;
	target[n] = '\0';
	return symlinkat(target, dst, name) < 0 ? -errno : 0;
}

/* The copy's owner, mode and times as the source's (ours on a tmpfs nobody else sees yet). */
static int keep_metadata(int dst, const char *name, const struct stat *st)
{
	mode_t mode = st->st_mode & 07777;
	if (fchownat(dst, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != EINVAL && errno != EPERM)
			return -errno;
		mode &= ~(mode_t)(S_ISUID | S_ISGID);	/* now the container root's */
	}
	if (!S_ISLNK(st->st_mode) && fchmodat(dst, name, mode, 0) < 0)
		return -errno;
	struct timespec times[2] = {st->st_atim, st->st_mtim};
	if (utimensat(dst, name, times, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

static int copy_entry(int src, int dst, const char *name, int depth)
{
	struct stat st;
	if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	int ret;
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR:
		ret = copy_subdir(src, dst, name, depth);
		break;
	case S_IFREG:
		ret = copy_file(src, dst, name);
		break;
	case S_IFLNK:
		ret = copy_link(src, dst, name);
		break;
	case S_IFIFO:
		ret = mknodat(dst, name, S_IFIFO | 0600, 0) < 0 ? -errno : 0;
		break;
	default:
		return 0;	/* devices, sockets */
	}
	if (ret != 0)
		return ret < 0 ? ret : 0;
	return keep_metadata(dst, name, &st);
}

static int copy_dir(int src, int dst, int depth)
{
	char buf[4096] __attribute__((aligned(8)));
	for (;;) {
		long n = syscall(SYS_getdents64, src, buf, sizeof(buf));
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		for (long off = 0; off < n;) {
			const struct dirent64 *d = (const struct dirent64 *)(buf + off);
			off += d->d_reclen;
			if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
				continue;
			int ret = copy_entry(src, dst, d->d_name, depth);
			if (ret < 0)
				return ret;
		}
	}
}

int copy_up_tree(int src, int dst)
{
	return copy_dir(src, dst, 0);
}
