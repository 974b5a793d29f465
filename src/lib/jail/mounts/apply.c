/* apply.c: the child side of the mount plan (mount_plan_apply), replayed after clone with
 * syscalls and the stack only. Everything the operations need was computed by the parent. */
#include "lib/jail/mounts/mounts_internal.h"

#include <limits.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>

struct run {
	bool entered;	 /* targets are relative to the new root, our cwd */
	bool no_setattr; /* kernel < 5.12: MS_REMOUNT with the existing flags instead */
	bool no_new_api; /* kernel < 5.2 (open_tree/move_mount) */
	bool no_openat2; /* kernel < 5.6 */
	int root_fd;	 /* O_PATH of the new root, opened on first need */
	int pack_fd;	 /* the cache's pack: our copy of the parent's fd, or opened on need */
	int kept_fd;	 /* issue 13: img-build: the MOUNT_OPF_KEEP directory, O_PATH */
};

static const char *in_root(const struct run *r, const char *path)
{
	if (!r->entered)
		return path;
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static void describe_failure(char *what, size_t len, const struct mount_op *op)
{
	if (!what || !len)
		return;
	const char *parts[3] = {mount_op_verb(op->kind), " ", op->target};
	size_t n = 0;
	for (int i = 0; i < 3; i++)
		for (const char *s = parts[i]; s && *s && n + 1 < len; s++)
			what[n++] = *s;
	what[n] = '\0';
}

/* Add attributes to the mount at path: mount_setattr, or where the kernel lacks it (ENOSYS,
 * before 5.12) the MS_REMOUNT of legacy.c. */
static int set_attr(struct run *r, const char *path, bool recursive, uint64_t attr)
{
	if (!attr)
		return 0;
	if (!r->no_setattr) {
		if (sys_mount_setattr(AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, attr) == 0)
			return 0;
		if (errno != ENOSYS)
			return -errno;
		r->no_setattr = true;
	}
	return remount_attr(path, attr);
}

/* The target's fd: inside a host tree (a nested bind of the policy's) it could meet a
 * symlink planted there by an earlier sandbox, so it is resolved inside the new root with
 * no symlinks at all; else the plain path. -errno. */
static int target_fd(struct run *r, const struct mount_op *op)
{
	const char *t = in_root(r, op->target);
	if (!(op->opflags & MOUNT_OPF_RESOLVE) || r->no_openat2) {
		int fd = open(t, O_PATH | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	if (r->root_fd < 0 && (r->root_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	/* no O_NOFOLLOW: with it a final symlink would be opened, not refused */
	int dst = openat_beneath(r->root_fd, t, O_PATH | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS);
	if (dst < 0 && errno == ENOSYS)
		r->no_openat2 = true;
	return dst < 0 ? -errno : dst;
}

/* Attach a detached tree (taken: closed here) at the op's target, carrying its attributes
 * already. Without mount_setattr (5.2-5.11) they follow by MS_REMOUNT once it is there. */
static int attach_tree(struct run *r, const struct mount_op *op, int tree, bool rec, uint64_t attr)
{
	int ret = 0, dst = -1;
	bool late_attr = false;
	if (attr && !r->no_setattr &&
	    sys_mount_setattr(tree, "", AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0), attr) < 0) {
		if (errno != ENOSYS) {
			ret = -errno;
			goto out;
		}
		r->no_setattr = true;
	}
	late_attr = attr && r->no_setattr;
	if ((dst = target_fd(r, op)) < 0) {
		ret = dst;
		goto out;
	}
	unsigned empty = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
	if (sys_move_mount(tree, "", dst, "", empty) < 0)
		ret = -errno;
	else if (late_attr)
		ret = set_attr(r, in_root(r, op->target), rec, attr);
out:
	close(tree);
	if (dst >= 0)
		close(dst);
	return ret;
}

/* A target inside a host tree: a clone of the source that already carries its attributes,
 * attached beneath the new root without following symlinks. -ENOSYS: use plain paths. */
static int bind_resolved(struct run *r, const struct mount_op *op, const char *src,
			 unsigned long rec, uint64_t attr)
{
	int tree = sys_open_tree(AT_FDCWD, src,
				 OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rec ? AT_RECURSIVE : 0));
	if (tree < 0) {
		if (errno == ENOSYS)
			r->no_new_api = true;
		return -errno;
	}
	int ret = attach_tree(r, op, tree, rec != 0, attr);
	if (ret == -ENOSYS)
		r->no_new_api = true;
	return ret;
}

/* Binds are mount(MS_BIND) + mount_setattr on the new path: two syscalls where
 * open_tree/mount_setattr/move_mount/close take four. Nothing else can see this namespace
 * before the pivot, so attributes that arrive a moment later expose nothing. */
static int do_bind(struct run *r, const struct mount_op *op, unsigned long rec, uint64_t attr)
{
	const char *src =
	    (op->opflags & MOUNT_OPF_SOURCE_IN_ROOT) ? in_root(r, op->source) : op->source;
	if ((op->opflags & MOUNT_OPF_RESOLVE) && !r->no_new_api && !r->no_openat2) {
		int ret = bind_resolved(r, op, src, rec, attr);
		if (ret != -ENOSYS)
			return ret;
	}
	const char *dst = in_root(r, op->target);
	if (mount(src, dst, NULL, MS_BIND | rec, NULL) < 0)
		return -errno;
	return set_attr(r, dst, rec != 0, attr);
}

/* An /etc file: its bytes of the cache's pack (the fd the parent opened, else opened here by
 * path once, before the pivot, where the host's root is still ours), sent page cache to
 * tmpfs with no buffer of ours. A pack shorter than planned fails. */
static int copy_file(struct run *r, const char *t, const struct mount_op *op)
{
	if (r->pack_fd < 0 && (r->pack_fd = open(op->source, O_RDONLY | O_NOCTTY | O_CLOEXEC)) < 0)
		return -errno;
	int out =
	    openat(AT_FDCWD, t, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, op->mode);
	if (out < 0)
		return -errno;
	off_t off = (off_t)op->offset;
	size_t left = op->data_len;
	int ret = 0;
	while (left > 0 && ret == 0) {
		ssize_t n = sendfile(out, r->pack_fd, &off, left);
		if (n < 0 && errno != EINTR)
			ret = -errno;
		else if (n == 0)
			ret = -EIO;
		else if (n > 0)
			left -= (size_t)n;
	}
	close(out);
	return ret;
}

static int make_file(const char *t, const struct mount_op *op)
{
	if (!op->data_len)
		return mknodat(AT_FDCWD, t, S_IFREG | op->mode, 0) < 0 ? -errno : 0;
	int fd =
	    openat(AT_FDCWD, t, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, op->mode);
	if (fd < 0)
		return -errno;
	int w = write_all(fd, op->data, op->data_len) < 0 ? -errno : 0;
	close(fd);
	return w;
}

/* issue 12: snapshots. The parent of t (relative to the new root) resolved beneath it with
 * no symlink at all, its last component in *base: for targets in a tree the sandbox filled
 * (a scratch seeded by a snapshot). An O_PATH fd, or -errno. No malloc (the init). */
static int parent_resolved(struct run *r, const char *t, const char **base)
{
	if (r->root_fd < 0 && (r->root_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	char parent[PATH_MAX];
	const char *slash = strrchr(t, '/');
	size_t n = slash ? (size_t)(slash - t) : 0;
	if (n >= sizeof(parent))
		return -ENAMETOOLONG;
	memcpy(parent, t, n);
	parent[n] = '\0';
	*base = slash ? slash + 1 : t;
	int fd = openat_beneath(r->root_fd, n ? parent : ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
				RESOLVE_NO_SYMLINKS);
	return fd < 0 ? -errno : fd;
}

/* A mount point made beneath such a tree: never through a symlink, and one the tree holds
 * already is taken only as what it must be (a directory, or a regular file), never as a
 * symlink; a mount covers it next. */
static int make_point_resolved(struct run *r, const char *t, const struct mount_op *op)
{
	const char *base;
	int pfd = parent_resolved(r, t, &base);
	if (pfd < 0)
		return pfd;
	bool dir = op->kind == MOUNT_OP_DIR;
	int ret = 0;
	if (dir)
		ret = mkdirat(pfd, base, op->mode) < 0 ? -errno : 0;
	else if (!op->data_len)
		ret = mknodat(pfd, base, S_IFREG | op->mode, 0) < 0 ? -errno : 0;
	else {
		int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				op->mode);
		ret = fd < 0 ? -errno : write_all(fd, op->data, op->data_len) < 0 ? -errno : 0;
		if (fd >= 0)
			close(fd);
	}
	struct stat st;
	if (ret == -EEXIST && fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)) {
			close(pfd);
			return 0;
		}
		if (S_ISLNK(st.st_mode))
			ret = -ELOOP; /* a planted symlink: refused, as in a path */
	}
	if (ret == 0 && dir && op->uid != (uid_t)-1 &&
	    fchownat(pfd, base, op->uid, op->gid, AT_SYMLINK_NOFOLLOW) < 0)
		ret = -errno;
	close(pfd);
	return ret;
}

/* issue 16: rt-gaps. A tmpfs over a directory of the new root, filled with a copy of it:
 * the directory opened beneath the root (no symlink) before the tmpfs hides it, the copy
 * made into what the same path then shows, which must be a tmpfs. */
static int tmpfs_copy_up(struct run *r, const struct mount_op *op)
{
	const char *t = in_root(r, op->target);
	if (!r->entered)
		return -EINVAL;
	if (r->root_fd < 0 && (r->root_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	int src = openat_beneath(r->root_fd, t, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0,
				 RESOLVE_NO_SYMLINKS);
	if (src < 0)
		return -errno;
	int dst = -1, ret = mount("tmpfs", t, "tmpfs", op->flags, op->data) < 0 ? -errno : 0;
	if (ret == 0 && (dst = openat_beneath(r->root_fd, t, O_RDONLY | O_DIRECTORY | O_CLOEXEC,
					      0, RESOLVE_NO_SYMLINKS)) < 0)
		ret = -errno;
	struct statfs sf;
	if (ret == 0 && (fstatfs(dst, &sf) < 0 || sf.f_type != TMPFS_MAGIC))
		ret = -EXDEV;
	if (ret == 0)
		ret = copy_up_tree(src, dst);
	close(src);
	if (dst >= 0)
		close(dst);
	return ret;
}

/* pivot_root(".", "."): the old root ends up on top of the new one and is then detached
 * whole, with every host mount under it (bubblewrap, crun). */
static int pivot(struct run *r)
{
	if (r->root_fd >= 0) {
		close(r->root_fd);
		r->root_fd = -1;
	}
	if (syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return -errno;
	return 0;
}

/* src_fd: the source as a detached tree the host opened (mount_plan_open_sources), or -1. */
static int run_op(struct run *r, const struct mount_op *op, int src_fd)
{
	const char *t = in_root(r, op->target);
	int ret = 0;
	switch (op->kind) {
	case MOUNT_OP_PRIVATE:
		/* Nothing we mount may propagate back to the host, nor host mounts into us. */
		ret = mount(NULL, t, NULL, MS_REC | MS_PRIVATE, NULL);
		break;
	case MOUNT_OP_TMPFS:
		if (op->opflags & MOUNT_OPF_COPYUP)
			return tmpfs_copy_up(r, op);
		/* fall through */
	case MOUNT_OP_MASK_DIR:
		ret = mount("tmpfs", t, "tmpfs", op->flags, op->data);
		break;
	case MOUNT_OP_DIR:
		if ((op->opflags & MOUNT_OPF_RESOLVE) && r->entered)
			return make_point_resolved(r, t, op);
		ret = mkdir(t, op->mode);
		if (ret == 0 && op->uid != (uid_t)-1)
			ret = fchownat(AT_FDCWD, t, op->uid, op->gid, AT_SYMLINK_NOFOLLOW);
		/* issue 13: img-build. Made just now, by us, on our own tmpfs: nothing to race */
		if (ret == 0 && (op->opflags & MOUNT_OPF_KEEP) && r->kept_fd < 0 &&
		    (r->kept_fd = open(t, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			ret = -1;
		break;
	case MOUNT_OP_FILE:
		if ((op->opflags & MOUNT_OPF_RESOLVE) && r->entered)
			return make_point_resolved(r, t, op);
		return make_file(t, op);
	case MOUNT_OP_COPY:
		return copy_file(r, t, op);
	case MOUNT_OP_SYMLINK:
		ret = symlink(op->data, t);
		break;
	case MOUNT_OP_BIND:
	case MOUNT_OP_DEV_NODE:
	case MOUNT_OP_MASK_FILE:
		if ((op->opflags & MOUNT_OPF_LAYER) && src_fd < 0)
			return -EBADF; /* issue 13: an image's layer comes only as a tree */
		ret = src_fd >= 0
			  ? attach_tree(r, op, src_fd, op->kind == MOUNT_OP_BIND, op->attr_set)
			  : do_bind(r, op, op->kind == MOUNT_OP_BIND ? MS_REC : 0, op->attr_set);
		return ret == -ENOENT && (op->opflags & MOUNT_OPF_OPTIONAL) ? 0 : ret;
	case MOUNT_OP_PROC:
		/* Needs a process of the pid namespace the proc is for, and the host's /proc
		 * still fully visible (the kernel's mnt_already_visible rule): before pivot. */
		ret = mount("proc", t, "proc", op->flags, NULL);
		break;
	case MOUNT_OP_DEVPTS:
		ret = mount("devpts", t, "devpts", op->flags, op->data);
		break;
	case MOUNT_OP_SET_ATTR:
		return set_attr(r, t, op->opflags & MOUNT_OPF_RECURSIVE, op->attr_set);
	case MOUNT_OP_ENTER:
		/* issue 13: an image root enters its skeleton first: the root fd is the new
		 * directory's, opened again on need */
		if (r->root_fd >= 0) {
			close(r->root_fd);
			r->root_fd = -1;
		}
		ret = chdir(op->target);
		r->entered = ret == 0;
		break;
	case MOUNT_OP_PIVOT:
		return pivot(r);
	case MOUNT_OP_FS:
		/* issue 16: rt-config. An OCI config's sysfs, mqueue, cgroup... */
		ret = mount(op->source, t, op->source, op->flags, op->data);
		if (ret < 0 && errno == EPERM && (op->opflags & MOUNT_OPF_EMPTY_FALLBACK))
			ret = mount("tmpfs", t, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
				    "size=0,mode=0555");
		break;
	case MOUNT_OP_OVERLAY:
		/* issue 12: snapshots. The lower tree (the host's, read-only, idmapped for us)
		 * where the options name it, then the overlay on it. issue 13: an image root's
		 * has no source, its layers are attached already. */
		if (op->source && src_fd < 0)
			return -EBADF;
		if (op->source) {
			ret = sys_move_mount(src_fd, "", AT_FDCWD, op->source,
					     MOVE_MOUNT_F_EMPTY_PATH);
			close(src_fd);
		}
		if (ret == 0)
			ret = mount("overlay", t, "overlay", op->flags, op->data);
		break;
	}
	if (ret < 0) {
		ret = -errno;
		if (ret == -ENOENT && (op->opflags & MOUNT_OPF_OPTIONAL))
			ret = 0;
	}
	return ret;
}

int mount_plan_apply(const struct mount_plan *plan, char *what, size_t what_len)
{
	int kept;
	int ret = mount_plan_apply_keep(plan, what, what_len, &kept);
	if (kept >= 0)
		close(kept);
	return ret;
}

int mount_plan_apply_keep(const struct mount_plan *plan, char *what, size_t what_len,
			  int *kept)
{
	/* each call found missing (ENOSYS) is not retried */
	struct run r = {.root_fd = -1, .pack_fd = plan->source_fds ? plan->pack_fd : -1,
			.kept_fd = -1};
	mode_t old_umask = umask(0); /* modes in the plan are exact (01777 for /tmp) */
	int ret = 0;
	if (what && what_len)
		what[0] = '\0';
	for (size_t i = 0; i < plan->n; i++) {
		/* our copy of the host's fd: its op closes it */
		ret = run_op(&r, &plan->ops[i], plan->source_fds ? plan->source_fds[i] : -1);
		if (ret < 0) {
			describe_failure(what, what_len, &plan->ops[i]);
			break;
		}
	}
	if (r.root_fd >= 0)
		close(r.root_fd);
	if (r.pack_fd >= 0)
		close(r.pack_fd);
	if (ret < 0 && r.kept_fd >= 0) {
		close(r.kept_fd);
		r.kept_fd = -1;
	}
	*kept = r.kept_fd;
	umask(old_umask);
	return ret;
}
