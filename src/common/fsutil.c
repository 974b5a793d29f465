/* fsutil.c: host-side file work on directories a sandbox may have written into.
 * Everything is fd-relative with O_NOFOLLOW: a symlink planted by the sandbox is removed,
 * never followed, and a mount point is never crossed. */
#include "common/common.h"

#include <dirent.h>
#include <limits.h>
#include <fcntl.h>
#include <sys/stat.h>

int mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		/* The dirs made here get their mode whatever the umask: under UMask=0077 a
		 * parent made 0700 would shut out the sandboxes' uids that must traverse it. */
		if (mkdir(buf, 0755) < 0) {
			if (errno != EEXIST)
				return -errno;
		} else if (chmod(buf, 0755) < 0) {
			return -errno;
		}
		*p = '/';
	}
	if (mkdir(buf, mode) == 0) {
		if (chmod(buf, mode) < 0)
			return -errno;
	} else {
		if (errno != EEXIST)
			return -errno;
		/* mkdir -p: what is there must be a directory (or a symlink to one). */
		struct stat st;
		if (stat(buf, &st) < 0)
			return -errno;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
	}
	return 0;
}

/* A tree's depth is the sandbox's to choose; an fd per level would run out (EMFILE) and
 * leave the rest behind. Below RM_FLATTEN_DEPTH, directories are moved up to the top of
 * the tree being removed (same filesystem: a rename) and taken from there in a later
 * pass, so at most RM_FLATTEN_DEPTH directories are open at once whatever the depth. */
#define RM_FLATTEN_DEPTH 64

/* A directory that is the root of a mount: a bind mount of a directory of the same
 * filesystem has the same st_dev as its parent, so st_dev alone does not see it. */
static bool fd_is_mount_root(int fd)
{
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, 0, &sx) < 0)
		return false;
	return (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	       (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

static int rm_rf_children(int dfd, dev_t dev, int depth, int topfd, unsigned *moved)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = errno;
		close(dfd);
		return -e;
	}
	/* dfd may be a dup of the caller's fd (empty_dir_at), sharing its offset: start
	 * from the first entry whatever was read through it before. */
	rewinddir(d);
	int ret;
	unsigned pass_moved;
	do {
		ret = 0;
		pass_moved = 0;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			struct stat st;
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (!S_ISDIR(st.st_mode)) {
				if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
					ret = -errno;
				continue;
			}
			if (st.st_dev != dev) {
				ret = -EXDEV; /* a mount inside: leave it to its owner */
				continue;
			}
			if (depth >= RM_FLATTEN_DEPTH) {
				char up[64];
				snprintf(up, sizeof(up), ".agentd-rm-%d-%u", (int)getpid(), (*moved)++);
				if (renameat(dirfd(d), de->d_name, topfd, up) == 0)
					continue; /* the top level's next pass takes it */
			}
			int cfd = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0) {
				ret = -errno;
				continue;
			}
			if (fd_is_mount_root(cfd)) {
				close(cfd);
				ret = -EXDEV;
				continue;
			}
			/* A sandbox may have left a directory without permissions for us. */
			fchmod(cfd, 0700);
			unsigned before = *moved;
			int r = rm_rf_children(cfd, dev, depth + 1, topfd, moved);
			pass_moved += *moved - before;
			if (r < 0)
				ret = r;
			if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
				ret = -errno;
		}
		/* The top level again while anything was moved up to it. */
		if (depth == 0 && pass_moved)
			rewinddir(d);
	} while (depth == 0 && pass_moved);
	closedir(d);
	return ret;
}

static int rm_rf_tree(int dfd, dev_t dev)
{
	unsigned moved = 0;
	int top = dup(dfd);
	if (top < 0) {
		close(dfd);
		return -errno;
	}
	int r = rm_rf_children(dfd, dev, 0, top, &moved);
	close(top);
	return r;
}

int rm_rf_at(int dirfd_, const char *name)
{
	struct stat st;
	if (fstatat(dirfd_, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd_, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	int fd = openat(dirfd_, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	fchmod(fd, 0700);
	int r = rm_rf_tree(fd, st.st_dev);
	if (unlinkat(dirfd_, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

int rm_rf(const char *path)
{
	char *slash = strrchr(path, '/');
	if (!slash)
		return rm_rf_at(AT_FDCWD, path);
	_cleanup_free_ char *parent = strndup(path, (size_t)(slash - path));
	if (!parent)
		return -ENOMEM;
	_cleanup_close_ int pfd =
		open(*parent ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return -errno;
	return rm_rf_at(pfd, slash + 1);
}

#define COPY_BUF 65536
#define COPY_ENTRY_COST 4096	/* every entry counts against the budget: inodes are not free */
#define COPY_MAX_DEPTH 256

/* Copy the entries of src into dst, fd-relative, never following a symlink (symlinks are
 * copied as symlinks, special files skipped). Files get uid/gid (-1: leave) and their mode
 * without set-id bits. *budget caps the bytes copied, and each entry costs
 * COPY_ENTRY_COST of it: a tree written by a sandbox is hostile and its sizes are not
 * trusted. The recursion's frames are small (buf is the caller's, one for the whole copy):
 * its depth is the sandbox's to choose, up to COPY_MAX_DEPTH, on a thread's stack. */
static int copy_children(int src, int dst, uid_t uid, gid_t gid, uint64_t *budget, int depth,
			 char *buf)
{
	if (depth > COPY_MAX_DEPTH)
		return -ELOOP;
	if (!buf)
		return -EINVAL;
	int sfd = dup(src);
	if (sfd < 0)
		return -errno;
	DIR *d = fdopendir(sfd);
	if (!d) {
		close(sfd);
		return -errno;
	}
	rewinddir(d); /* the dup shares the caller's offset: from the first entry */
	int ret = 0;
	struct dirent *de;
	while (ret == 0 && (de = readdir(d))) {
		const char *n = de->d_name;
		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		struct stat st;
		if (fstatat(src, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (*budget < COPY_ENTRY_COST) {
			ret = -EFBIG;
			break;
		}
		*budget -= COPY_ENTRY_COST;
		mode_t mode = st.st_mode & 0777;
		if (S_ISDIR(st.st_mode)) {
			if (mkdirat(dst, n, 0700) < 0 && errno != EEXIST) {
				ret = -errno;
				break;
			}
			int cs = openat(src, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int cd = openat(dst, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cs >= 0 && cd >= 0)
				ret = copy_children(cs, cd, uid, gid, budget, depth + 1, buf);
			else
				ret = -errno;
			if (cd >= 0) {
				if (uid != (uid_t)-1 && fchown(cd, uid, gid) < 0)
					ret = ret ? ret : -errno;
				fchmod(cd, mode);
				close(cd);
			}
			if (cs >= 0)
				close(cs);
		} else if (S_ISLNK(st.st_mode)) {
			char *target = buf; /* free between files */
			ssize_t l = readlinkat(src, n, target, PATH_MAX);
			if (l < 0)
				continue;
			target[l] = '\0';
			if (symlinkat(target, dst, n) < 0 && errno != EEXIST) {
				ret = -errno;
				break;
			}
			if (uid != (uid_t)-1 && fchownat(dst, n, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
				ret = -errno;
				break;
			}
		} else if (S_ISREG(st.st_mode)) {
			int in = openat(src, n, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
						O_CLOEXEC);
			if (in < 0)
				continue;
			struct stat ist;
			if (fstat(in, &ist) < 0 || !S_ISREG(ist.st_mode)) {
				close(in);
				continue;
			}
			int out = openat(dst, n, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
					 0600);
			if (out < 0) {
				ret = -errno;
				close(in);
				break;
			}
			for (;;) {
				ssize_t r = read(in, buf, COPY_BUF);
				if (r <= 0) {
					if (r < 0)
						ret = -errno;
					break;
				}
				if ((uint64_t)r > *budget) {
					ret = -EFBIG;
					break;
				}
				*budget -= (uint64_t)r;
				for (ssize_t off = 0; off < r;) {
					ssize_t w = write(out, buf + off, (size_t)(r - off));
					if (w < 0) {
						ret = -errno;
						break;
					}
					off += w;
				}
				if (ret)
					break;
			}
			if (uid != (uid_t)-1 && fchown(out, uid, gid) < 0 && !ret)
				ret = -errno;
			fchmod(out, mode);
			close(out);
			close(in);
		}
	}
	closedir(d);
	return ret;
}

int copy_tree_at(int src_dirfd, int dst_dirfd, uid_t uid, gid_t gid, uint64_t *budget)
{
	char *buf = malloc(COPY_BUF);
	if (!buf)
		return -ENOMEM;
	int r = copy_children(src_dirfd, dst_dirfd, uid, gid, budget, 0, buf);
	free(buf);
	return r;
}

/* Remove everything inside dirfd (not dirfd itself). */
int empty_dir_at(int dirfd_)
{
	int fd = dup(dirfd_);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	return rm_rf_tree(fd, st.st_dev);
}
