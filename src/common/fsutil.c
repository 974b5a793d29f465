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
/* Whether dirfd/name (name "": dirfd itself) is the root of a mount (statx, Linux 5.8+;
 * false where unknown). */
static bool is_mount_root(int dirfd_, const char *name)
{
	struct statx sx;
	if (statx(dirfd_, name, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, 0,
		  &sx) < 0)
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
				if (!ret)	/* a real error is not masked by it */
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
			if (is_mount_root(cfd, "")) {
				close(cfd);
				if (!ret)
					ret = -EXDEV;
				continue;
			}
			/* A sandbox may have left a directory without permissions for us. */
			fchmod(cfd, 0700);
			unsigned before = *moved;
			int r = rm_rf_children(cfd, dev, depth + 1, topfd, moved);
			pass_moved += *moved - before;
			if (r < 0 && (!ret || ret == -EXDEV))
				ret = r;
			/* a mount beneath (EXDEV) keeps the directories that lead to it */
			if (r != -EXDEV && unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 &&
			    errno != ENOENT)
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

#define COPY_BLOCK 4096	/* the unit a hole is kept or made in, and data is charged in */

static bool all_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Write buf[0, n) at off, leaving out its all-zero COPY_BLOCKs (holes in the new file);
 * each block written costs COPY_BLOCK of *budget. */
static int write_nonzero(int out, const char *buf, size_t n, off_t off, uint64_t *budget)
{
	for (size_t b = 0; b < n;) {
		size_t len = n - b < COPY_BLOCK ? n - b : COPY_BLOCK;
		if (all_zero(buf + b, len)) {
			b += len;
			continue;
		}
		if (*budget < COPY_BLOCK)
			return -EFBIG;
		*budget -= COPY_BLOCK;
		for (size_t w = 0; w < len;) {
			ssize_t r = pwrite(out, buf + b + w, len - w, off + (off_t)(b + w));
			if (r < 0)
				return -errno;
			w += (size_t)r;
		}
		b += len;
	}
	return 0;
}

/* in's first size bytes into the new, empty file out, holes kept as holes: only the data
 * extents SEEK_DATA/SEEK_HOLE report are read, and zero blocks in them are not written
 * either, so a sparse file costs the host what it cost the sandbox. size is the caller's
 * fstat; a file that shrinks meanwhile ends early, one that grows is cut at size. */
static int copy_file_sparse(int in, int out, off_t size, uint64_t *budget, char *buf)
{
	for (off_t pos = 0; pos < size;) {
		off_t data = lseek(in, pos, SEEK_DATA), hole;
		if (data < 0 && errno == ENXIO)
			break; /* only a hole from pos on */
		if (data < 0 && errno != EINVAL)
			return -errno;
		if (data < 0) /* no SEEK_DATA on this filesystem: all of it is data */
			data = pos, hole = size;
		else if ((hole = lseek(in, data, SEEK_HOLE)) < 0)
			return -errno;
		if (hole > size)
			hole = size;
		for (off_t off = data; off < hole;) {
			size_t want = hole - off < COPY_BUF ? (size_t)(hole - off) : COPY_BUF;
			ssize_t r = pread(in, buf, want, off);
			if (r < 0)
				return -errno;
			if (r == 0)
				return ftruncate(out, off) < 0 ? -errno : 0;
			int w = write_nonzero(out, buf, (size_t)r, off, budget);
			if (w < 0)
				return w;
			off += r;
		}
		pos = hole;
	}
	return ftruncate(out, size) < 0 ? -errno : 0;
}

/* Copy the entries of src into dst, fd-relative, never following a symlink (symlinks are
 * copied as symlinks, special files skipped). Files get uid/gid (-1: leave) and their mode
 * without set-id bits, regular files sparse (copy_file_sparse). *budget caps the data
 * blocks written, and each entry costs COPY_ENTRY_COST of it: a tree written by a sandbox is hostile and its sizes are not
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
		/* a mount inside the tree (a policy's bind beneath a sandbox's /tmp, say) is
		 * not the tree's: never copied, whatever it holds */
		if (is_mount_root(src, n))
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
			ret = copy_file_sparse(in, out, ist.st_size, budget, buf);
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

/* What the entries under dirfd occupy on disk (st_blocks), recursively, without following
 * a symlink or going deeper than COPY_MAX_DEPTH. */
static int allocated_children(int dirfd_, uint64_t *bytes, int depth)
{
	if (depth > COPY_MAX_DEPTH)
		return -ELOOP;
	int fd = openat(dirfd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return -e;
	}
	int ret = 0;
	struct dirent *de;
	while (ret == 0 && (de = readdir(d))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		*bytes += (uint64_t)st.st_blocks * 512;
		if (!S_ISDIR(st.st_mode))
			continue;
		int sub = openat(dirfd(d), de->d_name,
				 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		ret = sub < 0 ? -errno : allocated_children(sub, bytes, depth + 1);
		if (sub >= 0)
			close(sub);
	}
	closedir(d);
	return ret;
}

int tree_allocated_at(int dirfd_, uint64_t *bytes)
{
	struct stat st;
	if (fstat(dirfd_, &st) < 0)
		return -errno;
	*bytes = (uint64_t)st.st_blocks * 512;
	return allocated_children(dirfd_, bytes, 0);
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
