/* upper.c: a build sandbox's root upper layer (hostile: its commands wrote it) copied into a
 * private directory of the store as a layer tree — the sandbox root's host id as 0, overlay
 * whiteouts and opaque directories kept, nothing followed, bounded. */
#include "lib/image/build.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define NOBODY 65534
#define COPY_MAX_DEPTH 256

struct upper_copy {
	uid_t root_uid;			/* the sandbox's root, as the host sees it */
	gid_t root_gid;
	uint64_t entries, max_entries;
	uint64_t bytes, max_bytes;
	agentd_error *err;
};

static int owner(struct upper_copy *u, int dir, const char *name, const struct stat *st)
{
	uid_t uid = st->st_uid == u->root_uid ? 0 : NOBODY;
	gid_t gid = st->st_gid == u->root_gid ? 0 : NOBODY;
	if (fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return agentd_error_errno(u->err, errno, "chown %s", name);
	return 0;
}

static int copy_file(struct upper_copy *u, int src, int dst, const char *name,
		     const struct stat *st)
{
	_cleanup_close_ int in = openat(src, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	_cleanup_close_ int out = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	struct stat now;
	if (in < 0 || out < 0 || fstat(in, &now) < 0)
		return agentd_error_errno(u->err, errno, "copy %s", name);
	if (!S_ISREG(now.st_mode) || now.st_ino != st->st_ino)
		return agentd_error_set(u->err, EAGAIN, "copy %s: it changed under the copy", name);
	char buf[1 << 16];
	for (ssize_t n; (n = read(in, buf, sizeof(buf))) != 0;) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return agentd_error_errno(u->err, errno, "read %s", name);
		if ((u->bytes += (uint64_t)n) > u->max_bytes)
			return agentd_error_set(u->err, E2BIG, "the new layer holds more than %llu "
						"bytes", (unsigned long long)u->max_bytes);
		if (write_all(out, buf, (size_t)n) < 0)
			return agentd_error_errno(u->err, errno, "write %s", name);
	}
	if (fchmod(out, st->st_mode & 07777) < 0)
		return agentd_error_errno(u->err, errno, "chmod %s", name);
	return 0;
}

static int copy_dir(struct upper_copy *u, int src, int dst, int depth);

/* One entry of src as it is (never followed) into dst. */
static int copy_entry(struct upper_copy *u, int src, int dst, const char *name, int depth)
{
	struct stat st;
	if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return agentd_error_errno(u->err, errno, "stat %s", name);
	if (++u->entries > u->max_entries)
		return agentd_error_set(u->err, E2BIG, "the new layer has more than %llu entries",
					(unsigned long long)u->max_entries);
	int r = 0;
	if (S_ISDIR(st.st_mode)) {
		if (mkdirat(dst, name, 0700) < 0)
			return agentd_error_errno(u->err, errno, "mkdir %s", name);
		_cleanup_close_ int s = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					       O_CLOEXEC);
		_cleanup_close_ int d = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					       O_CLOEXEC);
		if (s < 0 || d < 0)
			return agentd_error_errno(u->err, errno, "open %s", name);
		/* an opaque directory (made anew over one of the base): its xattr, as the
		 * store keeps it (user.*: the overlays are mounted with userxattr) */
		char v[4];
		if (fgetxattr(s, "user.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y' &&
		    fsetxattr(d, "user.overlay.opaque", "y", 1, 0) < 0)
			return agentd_error_errno(u->err, errno, "mark %s opaque", name);
		if ((r = copy_dir(u, s, d, depth + 1)) == 0 && fchmod(d, st.st_mode & 07777) < 0)
			r = agentd_error_errno(u->err, errno, "chmod %s", name);
	} else if (S_ISREG(st.st_mode)) {
		r = copy_file(u, src, dst, name, &st);
	} else if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t n = readlinkat(src, name, target, sizeof(target) - 1);
		if (n < 0)
			return agentd_error_errno(u->err, errno, "readlink %s", name);
		target[n] = '\0';
		if (symlinkat(target, dst, name) < 0)
			r = agentd_error_errno(u->err, errno, "symlink %s", name);
	} else if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
		/* a whiteout: what the commands deleted of the base */
		if (mknodat(dst, name, S_IFCHR | 0, makedev(0, 0)) < 0)
			r = agentd_error_errno(u->err, errno, "whiteout %s", name);
	} else {
		return 0; /* devices, fifos, sockets: never part of a layer */
	}
	return r < 0 ? r : owner(u, dst, name, &st);
}

static int copy_dir(struct upper_copy *u, int src, int dst, int depth)
{
	if (depth > COPY_MAX_DEPTH)
		return agentd_error_set(u->err, E2BIG, "the new layer nests deeper than %d",
					COPY_MAX_DEPTH);
	int fd = fcntl(src, F_DUPFD_CLOEXEC, 3);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return agentd_error_errno(u->err, errno, "read a directory of the new layer");
	}
	int r = 0;
	for (struct dirent *e; r == 0 && (e = readdir(d));)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			r = copy_entry(u, src, dst, e->d_name, depth);
	closedir(d);
	return r;
}

int build_copy_upper(int upper, int dst, uint64_t max_entries, uint64_t max_bytes,
		     agentd_error *err)
{
	struct stat st;
	if (fstat(upper, &st) < 0)
		return agentd_error_errno(err, errno, "the sandbox's upper layer");
	struct upper_copy u = {.root_uid = st.st_uid, .root_gid = st.st_gid,
			       .max_entries = max_entries, .max_bytes = max_bytes, .err = err};
	int r = copy_dir(&u, upper, dst, 0);
	if (r == 0 && fchmod(dst, st.st_mode & 07777) < 0)
		r = agentd_error_errno(err, errno, "chmod the layer's root");
	return r < 0 ? agentd_error_prefix(err, "copy the new layer") : 0;
}
