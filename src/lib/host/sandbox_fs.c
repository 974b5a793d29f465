/* sandbox_fs.c: the files API's operations on a sandbox's tree from the host (stat, list,
 * mkdir, remove, rename, chmod), each beneath a base fd held from before any sandboxed
 * code ran, with the sandbox's filesystem ids, the last component never followed. */
#include "lib/host/host.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>

void groups_drop(struct groups_save *g)
{
	/* However many there are, and dropped even when they cannot be saved (fail closed:
	 * this thread goes on without them rather than the sandbox's operation with them).
	 * The raw system call: glibc's setgroups would change every thread's. */
	g->list = NULL;
	g->n = getgroups(0, NULL);
	if (g->n > 0 && (!(g->list = malloc((size_t)g->n * sizeof(gid_t))) ||
			 getgroups(g->n, g->list) != g->n))
		g->n = -1;
	if (g->n != 0)
		syscall(SYS_setgroups, 0, NULL);
}

void groups_restore(const struct groups_save *g)
{
	if (g->n > 0)
		syscall(SYS_setgroups, (size_t)g->n, g->list);
	free(g->list);
}

struct fsid_save fsids_enter(uid_t uid, gid_t gid)
{
	/* Per thread, and root's filesystem capabilities drop with a nonzero fsuid; root's
	 * supplementary groups go too: the host then reads and writes no more than the
	 * sandbox could. */
	struct fsid_save old = {.on = geteuid() == 0 && uid != (uid_t)-1};
	if (old.on) {
		groups_drop(&old.groups);
		old.gid = (gid_t)setfsgid(gid);
		old.uid = (uid_t)setfsuid(uid);
	}
	return old;
}

void fsids_leave(struct fsid_save old)
{
	if (old.on) {
		setfsuid(old.uid);
		setfsgid(old.gid);
		groups_restore(&old.groups);
	}
}

/* /proc and /sys of the sandbox hold the kernel's view of its processes, not its files: a
 * symlink under /tmp must not make the host read or write there. */
static bool refused_fs(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0)
		return true;
	return sf.f_type == PROC_SUPER_MAGIC || sf.f_type == SYSFS_MAGIC ||
	       sf.f_type == CGROUP_SUPER_MAGIC || sf.f_type == CGROUP2_SUPER_MAGIC;
}

int sbfs_open_dir(const struct sbfs *fs, const char *rel, uint64_t flags, agentd_error *err)
{
	int fd = openat_beneath(fs->base, rel, flags | O_DIRECTORY | O_CLOEXEC, 0, 0);
	if (fd < 0) {
		int e = errno;
		if (e == ENOSYS)
			return agentd_error_set(err, ENOSYS, "%s: needs openat2 (Linux 5.6)",
						fs->path);
		return agentd_error_errno(err, e == EXDEV ? EINVAL : e, "%s", fs->path);
	}
	if (refused_fs(fd)) {
		close(fd);
		return agentd_error_set(err, EACCES, "%s: in /proc or /sys (refused)", fs->path);
	}
	return fd;
}

int sbfs_target(const struct sbfs *fs, struct sbfs_target *t, agentd_error *err)
{
	const char *slash = strrchr(fs->rel, '/');
	t->parent = -1;
	if (!strcmp(fs->rel, "."))
		return agentd_error_set(err, EINVAL, "%s: the workdir itself", fs->path);
	snprintf(t->leaf, sizeof(t->leaf), "%s", slash ? slash + 1 : fs->rel);
	if (strlen(slash ? slash + 1 : fs->rel) >= sizeof(t->leaf))
		return agentd_error_set(err, ENAMETOOLONG, "%s: a name too long", fs->path);
	char parent[4097];
	snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - fs->rel) : 1,
		 slash ? fs->rel : ".");
	t->parent = sbfs_open_dir(fs, parent, O_PATH, err);
	return t->parent < 0 ? -1 : 0;
}

static void stat_fill(agentd_file_stat *out, const struct stat *st)
{
	out->type = S_ISREG(st->st_mode)   ? AGENTD_FILE_REGULAR
		    : S_ISDIR(st->st_mode) ? AGENTD_FILE_DIRECTORY
		    : S_ISLNK(st->st_mode) ? AGENTD_FILE_SYMLINK
					   : AGENTD_FILE_OTHER;
	out->size = (uint64_t)st->st_size;
	out->mode = st->st_mode & 07777;
	out->mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

/* name in dir, as lstat sees it, with a symlink's target read (never followed): 0, or -1
 * + errno. */
static int stat_at(int dir, const char *name, agentd_file_stat *out)
{
	struct stat st;
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH)) < 0)
		return -1;
	memset(out, 0, sizeof(*out));
	stat_fill(out, &st);
	if (out->type == AGENTD_FILE_SYMLINK) {
		char buf[4097];
		ssize_t n = readlinkat(dir, name, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		out->link_target = strdup(buf);
	}
	out->name = strdup(*name ? name : ".");
	return 0;
}

int sbfs_stat(const struct sbfs *fs, agentd_file_stat *out, agentd_error *err)
{
	struct fsid_save old = fsids_enter(fs->uid, fs->gid);
	struct sbfs_target t = {.parent = -1};
	bool top = !strcmp(fs->rel, ".");
	int dir = top ? sbfs_open_dir(fs, ".", O_PATH, err)
		      : (sbfs_target(fs, &t, err) < 0 ? -1 : t.parent);
	int r = dir < 0 ? -1 : 0;
	if (r == 0 && stat_at(dir, top ? "" : t.leaf, out) < 0)
		r = agentd_error_errno(err, errno, "%s", fs->path);
	if (dir >= 0)
		close(dir);
	fsids_leave(old);
	return r;
}

/* The directory fs names itself, opened to read (its last component not followed). */
static int open_listing(const struct sbfs *fs, agentd_error *err)
{
	if (!strcmp(fs->rel, "."))
		return sbfs_open_dir(fs, ".", O_RDONLY, err);
	struct sbfs_target t;
	if (sbfs_target(fs, &t, err) < 0)
		return -1;
	int fd = openat(t.parent, t.leaf,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	int e = errno;
	close(t.parent);
	if (fd < 0)
		return agentd_error_errno(err, e == ELOOP ? ENOTDIR : e, "%s", fs->path);
	/* The mount point itself (its parent is not in /proc): refused as what is beneath. */
	if (refused_fs(fd)) {
		close(fd);
		return agentd_error_set(err, EACCES, "%s: in /proc or /sys (refused)", fs->path);
	}
	return fd;
}

int sbfs_list(const struct sbfs *fs, size_t max, agentd_file_stat **out, size_t *n,
	      bool *truncated, agentd_error *err)
{
	*out = NULL;
	*n = 0;
	*truncated = false;
	struct fsid_save old = fsids_enter(fs->uid, fs->gid);
	int fd = open_listing(fs, err);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (fd >= 0 && !d) {
		close(fd);
		agentd_error_errno(err, errno, "%s", fs->path);
	}
	size_t cap = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (*n == max) {
			*truncated = true;
			break;
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			*out = realloc(*out, cap * sizeof(**out));
		}
		if (stat_at(dirfd(d), de->d_name, &(*out)[*n]) == 0)
			(*n)++; /* gone meanwhile: left out */
	}
	if (d)
		closedir(d);
	fsids_leave(old);
	return d ? 0 : -1;
}

/* mkdir -p of rel beneath fs->base, one component at a time, never through a symlink in
 * what it makes or walks (O_NOFOLLOW at each step). */
static int mkdir_parents(const struct sbfs *fs, const char *rel, agentd_error *err)
{
	int cur = sbfs_open_dir(fs, ".", O_PATH, err);
	if (cur < 0)
		return -1;
	_cleanup_free_ char *copy = strdup(rel);
	char *save = NULL;
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (mkdirat(cur, c, 0755) < 0 && errno != EEXIST) {
			int e = errno;
			close(cur);
			return agentd_error_errno(err, e, "%s: mkdir %s", fs->path, c);
		}
		int next = openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(cur);
		if (next < 0)
			return e == ELOOP ? agentd_error_set(err, ELOOP,
							     "%s: %s is a symbolic link (not "
							     "followed)", fs->path, c)
					  : agentd_error_errno(err, e, "%s: %s", fs->path, c);
		cur = next;
	}
	close(cur);
	return 0;
}

int sbfs_mkdir(const struct sbfs *fs, bool parents, agentd_error *err)
{
	struct fsid_save old = fsids_enter(fs->uid, fs->gid);
	int r = 0;
	if (parents) {
		/* What exists already is found as a path would be (inside the root). */
		int fd = openat_beneath(fs->base, fs->rel, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0);
		if (fd >= 0)
			close(fd);
		else
			r = mkdir_parents(fs, fs->rel, err);
	} else {
		struct sbfs_target t;
		r = sbfs_target(fs, &t, err);
		if (r == 0 && mkdirat(t.parent, t.leaf, 0755) < 0)
			r = agentd_error_errno(err, errno, "%s", fs->path);
		if (t.parent >= 0)
			close(t.parent);
	}
	fsids_leave(old);
	return r;
}

int sbfs_make_parents(const struct sbfs *fs, agentd_error *err)
{
	const char *slash = strrchr(fs->rel, '/');
	if (!slash)
		return 0;
	_cleanup_free_ char *parent = strndup(fs->rel, (size_t)(slash - fs->rel));
	struct sbfs p = *fs;
	p.rel = parent;
	return sbfs_mkdir(&p, true, err);
}

int sbfs_remove(const struct sbfs *fs, bool recursive, agentd_error *err)
{
	struct fsid_save old = fsids_enter(fs->uid, fs->gid);
	struct sbfs_target t;
	int r = sbfs_target(fs, &t, err);
	struct stat st;
	if (r == 0 && fstatat(t.parent, t.leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
		r = agentd_error_errno(err, errno, "%s", fs->path);
	if (r == 0) {
		int e = 0;
		if (!S_ISDIR(st.st_mode))
			e = unlinkat(t.parent, t.leaf, 0) < 0 ? errno : 0;
		else if (!recursive)
			e = unlinkat(t.parent, t.leaf, AT_REMOVEDIR) < 0 ? errno : 0;
		else
			e = -rm_rf_at(t.parent, t.leaf); /* fd-relative, O_NOFOLLOW, no mounts */
		if (e == ENOTEMPTY || e == EEXIST)
			r = agentd_error_set(err, ENOTEMPTY,
					     "%s: directory not empty (remove it recursively)",
					     fs->path);
		else if (e == EXDEV || e == EBUSY)
			r = agentd_error_set(err, EBUSY, "%s: holds a mount point (left)",
					     fs->path);
		else if (e)
			r = agentd_error_errno(err, e, "%s", fs->path);
	}
	if (t.parent >= 0)
		close(t.parent);
	fsids_leave(old);
	return r;
}

int sbfs_rename(const struct sbfs *from, const struct sbfs *to, bool noreplace,
		agentd_error *err)
{
	struct fsid_save old = fsids_enter(from->uid, from->gid);
	struct sbfs_target a = {.parent = -1}, b = {.parent = -1};
	int r = sbfs_target(from, &a, err);
	if (r == 0)
		r = sbfs_target(to, &b, err);
	if (r == 0 && renameat2(a.parent, a.leaf, b.parent, b.leaf,
				noreplace ? RENAME_NOREPLACE : 0) < 0) {
		int e = errno;
		r = e == EXDEV ? agentd_error_set(err, EXDEV,
						  "rename %s to %s: not on the same filesystem",
						  from->path, to->path)
			       : agentd_error_errno(err, e, "rename %s to %s", from->path,
						    to->path);
	}
	if (a.parent >= 0)
		close(a.parent);
	if (b.parent >= 0)
		close(b.parent);
	fsids_leave(old);
	return r;
}

int sbfs_chmod(const struct sbfs *fs, uint32_t mode, agentd_error *err)
{
	if (mode & ~0777u)
		return agentd_error_set(err, EINVAL,
					"mode %#o: only the permission bits 0777 (never setuid, "
					"setgid or sticky)", mode);
	struct fsid_save old = fsids_enter(fs->uid, fs->gid);
	struct sbfs_target t = {.parent = -1};
	int r = strcmp(fs->rel, ".") ? sbfs_target(fs, &t, err) : 0;
	/* An O_PATH fd of exactly what was resolved (the leaf not followed), changed through
	 * our own /proc/self/fd link: chmod(2) of a name would follow a symlink swapped in
	 * meanwhile, and an fd opened to read needs a read permission the owner may lack. */
	int fd = r < 0			? -1
		 : t.parent < 0 ? sbfs_open_dir(fs, ".", O_PATH, err)
				: openat(t.parent, t.leaf, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (r == 0 && fd < 0)
		r = err->code ? -1 : agentd_error_errno(err, errno, "%s", fs->path);
	else if (r == 0 && fstat(fd, &st) < 0)
		r = agentd_error_errno(err, errno, "%s", fs->path);
	else if (r == 0 && S_ISLNK(st.st_mode))
		r = agentd_error_set(err, ELOOP, "%s: a symbolic link (not followed)", fs->path);
	else if (r == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		r = agentd_error_set(err, EINVAL, "%s: not a file or directory", fs->path);
	if (r == 0) {
		char link[64];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		if (chmod(link, (mode_t)mode) < 0)
			r = agentd_error_errno(err, errno, "%s", fs->path);
	}
	if (fd >= 0)
		close(fd);
	if (t.parent >= 0)
		close(t.parent);
	fsids_leave(old);
	return r;
}
