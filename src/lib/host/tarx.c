/* tarx.c: tar archives into and out of a directory fd. libarchive parses and writes the
 * format; every path, every file and every link is made here, fd-relative beneath the
 * directory and never through a symlink, so a hostile archive or tree cannot reach out. */
#include "lib/host/host.h"

#include "lib/host/tarx_la.h"
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#define TARX_PATH_MAX 4096
#define TARX_MAX_DEPTH 256

/* libarchive, loaded by the first caller (tarx_la.c): set before any other use here. */
static const struct tarx_la *LA;

static int la_ready(agentd_error *err)
{
	return (LA = tarx_la(err)) ? 0 : -1;
}

/* ------------------------------------------------------------------ paths */

/* An entry's name made relative and plain ("./a//b/" -> "a/b"): "" for the destination
 * itself; -1 for an absolute name or a ".." component (never resolved, only refused). */
static int norm_path(const char *in, char out[TARX_PATH_MAX + 1])
{
	if (!in || *in == '/')
		return -1;
	size_t o = 0;
	for (const char *c = in; *c;) {
		const char *e = strchrnul(c, '/');
		size_t len = (size_t)(e - c);
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return -1;
		if (len > 255)
			return -1;
		if (len && !(len == 1 && c[0] == '.')) {
			if (o + len + 1 > TARX_PATH_MAX)
				return -1;
			if (o)
				out[o++] = '/';
			memcpy(out + o, c, len);
			o += len;
		}
		c = *e ? e + 1 : e;
	}
	out[o] = '\0';
	return 0;
}

/* A symlink at path (normalized) with target stays beneath the destination: relative, and
 * its ".." never climbs above the destination from the link's own directory. */
static bool target_beneath(const char *path, const char *target)
{
	if (!*target || *target == '/')
		return false;
	long depth = 0;
	for (const char *c = path; (c = strchr(c, '/')); c++)
		depth++;
	for (const char *c = target; *c;) {
		const char *e = strchrnul(c, '/');
		size_t len = (size_t)(e - c);
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			if (--depth < 0)
				return false;
		} else if (len && !(len == 1 && c[0] == '.')) {
			depth++;
		}
		c = *e ? e + 1 : e;
	}
	return true;
}

/* The regular files of the archive so far, for its hard links (open addressing). */
struct pathset {
	char **slot;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static bool pathset_has(const struct pathset *ps, const char *s)
{
	for (size_t i = ps->cap ? hash_str(s) & (ps->cap - 1) : 0; ps->cap && ps->slot[i];
	     i = (i + 1) & (ps->cap - 1))
		if (!strcmp(ps->slot[i], s))
			return true;
	return false;
}

static void pathset_add(struct pathset *ps, const char *s)
{
	if (pathset_has(ps, s))
		return;
	if ((ps->n + 1) * 2 > ps->cap) {
		struct pathset big = {.cap = ps->cap ? ps->cap * 2 : 64};
		big.slot = calloc(big.cap, sizeof(char *));
		for (size_t i = 0; i < ps->cap; i++)
			if (ps->slot[i]) {
				size_t j = hash_str(ps->slot[i]) & (big.cap - 1);
				while (big.slot[j])
					j = (j + 1) & (big.cap - 1);
				big.slot[j] = ps->slot[i];
			}
		free(ps->slot);
		big.n = ps->n;
		*ps = big;
	}
	size_t i = hash_str(s) & (ps->cap - 1);
	while (ps->slot[i])
		i = (i + 1) & (ps->cap - 1);
	ps->slot[i] = strdup(s);
	ps->n++;
}

static void pathset_free(struct pathset *ps)
{
	for (size_t i = 0; i < ps->cap; i++)
		free(ps->slot[i]);
	free(ps->slot);
}

/* An entry's mode bits as kept: setuid and setgid never, sticky when the policy says. */
static mode_t kept_perm(const struct tarx_policy *p, mode_t m)
{
	return m & (p->keep_sticky ? 01777 : 0777);
}

/* ------------------------------------------------------------------ overlay whiteouts
 * An image layer marks a deletion of a lower layer's NAME with an empty ".wh.NAME" and a
 * directory that hides the lower layers' one with ".wh..wh..opq" (the OCI image spec);
 * overlayfs wants a 0/0 character device and the opaque xattr instead. */
#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

enum whiteout { WH_NONE, WH_FILE, WH_OPAQUE_DIR, WH_IGNORED };

static enum whiteout whiteout_kind(const struct tarx_policy *p, const char *name)
{
	if (!p->overlay_whiteouts)
		return WH_NONE;
	const char *slash = strrchr(name, '/');
	const char *leaf = slash ? slash + 1 : name;
	if (strncmp(leaf, WH_PREFIX, strlen(WH_PREFIX)))
		return WH_NONE;
	if (!strcmp(leaf, WH_OPAQUE))
		return WH_OPAQUE_DIR;
	/* aufs' other ".wh..wh.*" (its hard-link dir, ".wh..wh.plnk") mean nothing here */
	return strncmp(leaf, WH_PREFIX WH_PREFIX, 2 * strlen(WH_PREFIX)) ? WH_FILE : WH_IGNORED;
}

/* ------------------------------------------------------------------ the check */

static struct archive *open_reader(const void *tar, size_t len)
{
	struct archive *a = LA->archive_read_new();
	LA->archive_read_support_format_tar(a);
	/* 1 MiB pieces rather than the default 10 KiB: a tenth of the writes for big files. */
	if (LA->archive_read_open_memory2(a, tar, len, 1u << 20) != ARCHIVE_OK) {
		LA->archive_read_free(a);
		return NULL;
	}
	return a;
}

/* One entry against the policy; name its normalized path. */
static int check_entry(struct archive_entry *e, const char *name, const struct tarx_policy *p,
		       struct pathset *files, struct tarx_stats *st, agentd_error *err)
{
	const char *hl = LA->archive_entry_hardlink(e);
	mode_t type = LA->archive_entry_filetype(e);
	char q[96];
	quote_text(q, sizeof(q), LA->archive_entry_pathname(e));
	if (hl) {
		char t[TARX_PATH_MAX + 1];
		if (norm_path(hl, t) < 0 || !pathset_has(files, t))
			return agentd_error_set(err, EINVAL,
						"%s: a hard link to what is not a file of the "
						"archive", q);
		return 0;
	}
	if (!*name && type != AE_IFDIR)
		return agentd_error_set(err, EINVAL, "%s: names the destination itself", q);
	if (whiteout_kind(p, name) != WH_NONE) {
		const char *leaf = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
		if (type != AE_IFREG || !strcmp(leaf, WH_PREFIX) || !strcmp(leaf, WH_PREFIX ".") ||
		    !strcmp(leaf, WH_PREFIX ".."))
			return agentd_error_set(err, EINVAL, "%s: a malformed whiteout", q);
		return 0;
	}
	switch (type) {
	case AE_IFDIR:
		return 0;
	case AE_IFREG: {
		int64_t size = LA->archive_entry_size(e);
		if (size < 0 || (uint64_t)size > p->max_bytes - st->bytes)
			return agentd_error_set(err, E2BIG,
						"%s: the archive's files are over the limit of "
						"%llu bytes", q, (unsigned long long)p->max_bytes);
		st->bytes += (uint64_t)size;
		pathset_add(files, name);
		return 0;
	}
	case AE_IFLNK: {
		const char *target = LA->archive_entry_symlink(e);
		if (!target || strlen(target) > TARX_PATH_MAX)
			return agentd_error_set(err, EINVAL, "%s: a symlink without a target", q);
		if (!p->symlinks_any_target && !target_beneath(name, target))
			return agentd_error_set(err, EINVAL,
						"%s: a symlink pointing outside the destination",
						q);
		return 0;
	}
	default:
		return agentd_error_set(err, EINVAL,
					"%s: a device node, fifo or socket (not extracted)", q);
	}
}

int tarx_check(const void *tar, size_t len, const struct tarx_policy *p,
	       struct tarx_stats *st, agentd_error *err)
{
	memset(st, 0, sizeof(*st));
	if (la_ready(err) < 0)
		return -1;
	struct archive *a = open_reader(tar, len);
	if (!a)
		return agentd_error_set(err, EINVAL, "not a tar archive");
	struct pathset files = {0};
	struct archive_entry *e;
	int r = 0, h;
	while ((h = LA->archive_read_next_header(a, &e)) == ARCHIVE_OK || h == ARCHIVE_WARN) {
		if (++st->entries > p->max_entries) {
			r = agentd_error_set(err, E2BIG, "more than %llu entries",
					     (unsigned long long)p->max_entries);
			break;
		}
		char name[TARX_PATH_MAX + 1], q[96];
		if (norm_path(LA->archive_entry_pathname(e), name) < 0) {
			quote_text(q, sizeof(q), LA->archive_entry_pathname(e));
			r = agentd_error_set(err, EINVAL,
					     "%s: an absolute path or a \"..\" component", q);
			break;
		}
		if ((r = check_entry(e, name, p, &files, st, err)) < 0)
			break;
	}
	if (r == 0 && h != ARCHIVE_EOF)
		r = agentd_error_set(err, EINVAL, "not a valid tar archive: %s",
				     LA->archive_error_string(a) ? LA->archive_error_string(a) : "?");
	pathset_free(&files);
	LA->archive_read_free(a);
	return r;
}

/* ------------------------------------------------------------------ extraction */

struct extract {
	int dir;
	struct archive *a;
	const struct tarx_policy *p;
	struct tarx_stats *st;
	char parent_path[TARX_PATH_MAX + 1];	/* the parent the last entry was made in */
	int parent;				/* and its O_PATH fd, -1 */
	struct {
		char *path;
		mode_t mode;
		struct timespec mtime;
	} *dirs;				/* modes applied last: a 0555 one still gets filled */
	size_t n_dirs;
};

/* The directory rel beneath x->dir, made as needed, never through a symlink. */
static int open_parent(struct extract *x, const char *rel, agentd_error *err)
{
	if (x->parent >= 0 && !strcmp(x->parent_path, rel))
		return x->parent;
	if (x->parent >= 0)
		close(x->parent);
	x->parent = -1;
	int fd = openat_beneath(x->dir, *rel ? rel : ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
				RESOLVE_NO_SYMLINKS);
	if (fd < 0 && errno == ENOENT) {
		int cur = fcntl(x->dir, F_DUPFD_CLOEXEC, 3);
		_cleanup_free_ char *copy = strdup(rel);
		char *save = NULL;
		for (char *c = strtok_r(copy, "/", &save); c && cur >= 0;
		     c = strtok_r(NULL, "/", &save)) {
			mkdirat(cur, c, 0755);
			int next = openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			close(cur);
			cur = next;
		}
		fd = cur;
	}
	if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
		return agentd_error_set(err, ENOTDIR,
					"%s: a symbolic link (never followed) or not a directory",
					rel);
	if (fd < 0)
		return agentd_error_errno(err, errno, "%s", rel);
	snprintf(x->parent_path, sizeof(x->parent_path), "%s", rel);
	return x->parent = fd;
}

/* name's parent fd and its last component. */
static int split(struct extract *x, const char *name, const char **leaf, agentd_error *err)
{
	const char *slash = strrchr(name, '/');
	char parent[TARX_PATH_MAX + 1];
	snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - name) : 0, name);
	*leaf = slash ? slash + 1 : name;
	return open_parent(x, parent, err);
}

/* Whatever is at leaf goes, unless it is a directory (kept: dir true, else EISDIR). */
static int clear_leaf(int pfd, const char *leaf, bool dir, const char *name, agentd_error *err)
{
	struct stat st;
	if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : agentd_error_errno(err, errno, "%s", name);
	if (S_ISDIR(st.st_mode))
		return dir ? 1 : agentd_error_set(err, EISDIR, "%s: a directory is there", name);
	if (unlinkat(pfd, leaf, 0) < 0)
		return agentd_error_errno(err, errno, "%s: replace", name);
	return 0;
}

/* The entry's numeric owner on what was made at pfd/leaf (fd >= 0: that file), when the
 * policy keeps owners; before its mode, as chown drops setuid bits anyway. */
static int apply_owner(struct extract *x, int fd, int pfd, const char *leaf,
		       struct archive_entry *e, const char *name, agentd_error *err)
{
	if (!x->p->keep_owners)
		return 0;
	uid_t uid = (uid_t)LA->archive_entry_uid(e);
	gid_t gid = (gid_t)LA->archive_entry_gid(e);
	int r = fd >= 0 ? fchown(fd, uid, gid)
			: fchownat(pfd, leaf, uid, gid, AT_SYMLINK_NOFOLLOW);
	/* not root (a rootless store): what is made stays the caller's */
	if (r < 0 && errno == EPERM && geteuid() != 0)
		return 0;
	return r < 0 ? agentd_error_errno(err, errno, "chown %s", name) : 0;
}

static int write_file(struct extract *x, int pfd, const char *leaf, struct archive_entry *e,
		      const char *name, agentd_error *err)
{
	if (clear_leaf(pfd, leaf, false, name, err) < 0)
		return -1;
	/* O_EXCL: a symlink at leaf (planted in the meantime) fails the open instead of being
	 * followed, as would anything else that is there now. */
	_cleanup_close_ int fd =
		openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return agentd_error_errno(err, errno, "%s", name);
	const void *buf;
	size_t size;
	la_int64_t off;
	int r;
	while ((r = LA->archive_read_data_block(x->a, &buf, &size, &off)) == ARCHIVE_OK) {
		if (size > x->p->max_bytes - x->st->bytes)
			return agentd_error_set(err, E2BIG, "%s: over the limit of %llu bytes",
						name, (unsigned long long)x->p->max_bytes);
		x->st->bytes += size;
		for (size_t w = 0; w < size;) {
			ssize_t n = pwrite(fd, (const char *)buf + w, size - w, off + (off_t)w);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return agentd_error_errno(err, errno, "write %s", name);
			w += (size_t)n;
		}
	}
	if (r != ARCHIVE_EOF)
		return agentd_error_set(err, EINVAL, "%s: %s", name, LA->archive_error_string(x->a));
	if (ftruncate(fd, LA->archive_entry_size(e)) < 0 ||
	    apply_owner(x, fd, pfd, leaf, e, name, err) < 0 ||
	    fchmod(fd, kept_perm(x->p, LA->archive_entry_perm(e))) < 0)
		return err->code ? -1 : agentd_error_errno(err, errno, "%s", name);
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT},
				 {LA->archive_entry_mtime(e), LA->archive_entry_mtime_nsec(e)}};
	futimens(fd, ts);
	return 0;
}

static int make_dir(struct extract *x, int pfd, const char *leaf, struct archive_entry *e,
		    const char *name, agentd_error *err)
{
	if (!*name && !x->p->keep_owners)
		return 0; /* "./": the destination keeps its own mode */
	if (!*name) {
		/* an image layer's root: its owner and mode are the image's "/" */
		leaf = ".";
	} else {
		int r = clear_leaf(pfd, leaf, true, name, err);
		if (r < 0)
			return -1;
		if (r == 0 && mkdirat(pfd, leaf, 0700) < 0)
			return agentd_error_errno(err, errno, "mkdir %s", name);
	}
	if (apply_owner(x, -1, pfd, leaf, e, *name ? name : "./", err) < 0)
		return -1;
	x->dirs = realloc(x->dirs, (x->n_dirs + 1) * sizeof(*x->dirs));
	x->dirs[x->n_dirs].path = strdup(*name ? name : ".");
	x->dirs[x->n_dirs].mode = kept_perm(x->p, LA->archive_entry_perm(e));
	x->dirs[x->n_dirs].mtime =
		(struct timespec){LA->archive_entry_mtime(e), LA->archive_entry_mtime_nsec(e)};
	x->n_dirs++;
	return 0;
}

static int make_link(struct extract *x, int pfd, const char *leaf, struct archive_entry *e,
		     const char *name, agentd_error *err)
{
	if (clear_leaf(pfd, leaf, false, name, err) < 0)
		return -1;
	const char *hl = LA->archive_entry_hardlink(e);
	if (!hl) {
		if (symlinkat(LA->archive_entry_symlink(e), pfd, leaf) < 0)
			return agentd_error_errno(err, errno, "symlink %s", name);
		return apply_owner(x, -1, pfd, leaf, e, name, err);
	}
	/* A hard link: to a regular file beneath the destination, found as everything else
	 * (no symlink on the way), linked without following anything. */
	char target[TARX_PATH_MAX + 1];
	if (norm_path(hl, target) < 0 || !*target)
		return agentd_error_set(err, EINVAL, "%s: a bad hard link", name);
	const char *slash = strrchr(target, '/');
	char tparent[TARX_PATH_MAX + 1];
	snprintf(tparent, sizeof(tparent), "%.*s", slash ? (int)(slash - target) : 1,
		 slash ? target : ".");
	_cleanup_close_ int tfd = openat_beneath(x->dir, tparent, O_PATH | O_DIRECTORY | O_CLOEXEC,
						 0, RESOLVE_NO_SYMLINKS);
	const char *tleaf = slash ? slash + 1 : target;
	struct stat st;
	if (tfd < 0 || fstatat(tfd, tleaf, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return agentd_error_set(err, EINVAL, "%s: a hard link to what is not a file of "
					"the archive", name);
	if (linkat(tfd, tleaf, pfd, leaf, 0) < 0)
		return agentd_error_errno(err, errno, "link %s", name);
	return 0;
}

/* A whiteout entry as overlayfs wants it (whiteout_kind). */
static int make_whiteout(struct extract *x, int pfd, const char *leaf, enum whiteout kind,
			 const char *name, agentd_error *err)
{
	if (kind == WH_IGNORED)
		return 0;
	if (kind == WH_FILE) {
		const char *hidden = leaf + strlen(WH_PREFIX);
		if (clear_leaf(pfd, hidden, false, name, err) < 0)
			return -1;
		if (mknodat(pfd, hidden, S_IFCHR | 0600, makedev(0, 0)) < 0)
			return agentd_error_errno(err, errno, "whiteout %s", name);
		return 0;
	}
	/* the parent directory itself, opened for reading (fsetxattr needs a real fd) */
	_cleanup_close_ int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return agentd_error_errno(err, errno, "opaque %s", name);
	/* user.*: overlays mounted with userxattr inside a user namespace (the container
	 * backend); trusted.*: one mounted on the host */
	if (fsetxattr(dfd, "user.overlay.opaque", "y", 1, 0) < 0)
		return agentd_error_errno(err, errno, "opaque %s: set the overlay xattr", name);
	/* trusted.* needs CAP_SYS_ADMIN: a rootless store has the user.* one only */
	if (fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0) < 0 &&
	    (errno != EPERM || geteuid() == 0))
		return agentd_error_errno(err, errno, "opaque %s: set the overlay xattr", name);
	(void)x;
	return 0;
}

static int extract_entry(struct extract *x, struct archive_entry *e, agentd_error *err)
{
	char name[TARX_PATH_MAX + 1];
	if (norm_path(LA->archive_entry_pathname(e), name) < 0)
		return agentd_error_set(err, EINVAL, "an absolute path or a \"..\" component");
	const char *leaf;
	int pfd = split(x, name, &leaf, err);
	if (pfd < 0)
		return -1;
	enum whiteout wh = whiteout_kind(x->p, name);
	if (wh != WH_NONE)
		return make_whiteout(x, pfd, leaf, wh, name, err);
	if (LA->archive_entry_hardlink(e) || LA->archive_entry_filetype(e) == AE_IFLNK)
		return make_link(x, pfd, leaf, e, name, err);
	if (LA->archive_entry_filetype(e) == AE_IFDIR)
		return make_dir(x, pfd, leaf, e, name, err);
	if (LA->archive_entry_filetype(e) == AE_IFREG)
		return write_file(x, pfd, leaf, e, name, err);
	return agentd_error_set(err, EINVAL, "%s: not extracted (a device, fifo or socket)", name);
}

/* The directories' own modes and times, deepest (last made) first. */
static void finish_dirs(struct extract *x)
{
	for (size_t i = x->n_dirs; i-- > 0;) {
		int fd = openat_beneath(x->dir, x->dirs[i].path,
					O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0,
					RESOLVE_NO_SYMLINKS);
		if (fd >= 0) {
			fchmod(fd, x->dirs[i].mode);
			struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, x->dirs[i].mtime};
			futimens(fd, ts);
			close(fd);
		}
		free(x->dirs[i].path);
	}
	free(x->dirs);
}

int tarx_extract(int dir, const void *tar, size_t len, const struct tarx_policy *p,
		 struct tarx_stats *st, agentd_error *err)
{
	if (tarx_check(tar, len, p, st, err) < 0)
		return -1;
	struct extract x = {.dir = dir, .p = p, .st = st, .parent = -1};
	x.a = open_reader(tar, len);
	if (!x.a)
		return agentd_error_set(err, EINVAL, "not a tar archive");
	uint64_t entries = st->entries;
	st->entries = st->bytes = 0;
	struct archive_entry *e;
	int r = 0, h;
	while ((h = LA->archive_read_next_header(x.a, &e)) == ARCHIVE_OK || h == ARCHIVE_WARN) {
		/* The check bounded the entries; the archive is the same bytes, but count. */
		if (++st->entries > entries) {
			r = agentd_error_set(err, E2BIG, "more entries than checked");
			break;
		}
		if ((r = extract_entry(&x, e, err)) < 0)
			break;
	}
	if (r == 0 && h != ARCHIVE_EOF)
		r = agentd_error_set(err, EINVAL, "%s", LA->archive_error_string(x.a));
	finish_dirs(&x);
	if (x.parent >= 0)
		close(x.parent);
	LA->archive_read_free(x.a);
	return r;
}

/* ------------------------------------------------------------------ the writer */

struct tarx_level {
	DIR *d;
	char *prefix;			/* "" or "a/b/" */
};

struct tarx_writer {
	struct archive *a;
	struct tarx_policy p;
	struct tarx_stats st;
	char *buf;			/* what libarchive wrote and the reader has not taken */
	size_t len, off, cap;
	struct tarx_level stack[TARX_MAX_DEPTH];
	int depth;
	int file;			/* the regular file being copied, -1 */
	uint64_t remaining;
	bool done;
	agentd_error error;		/* a failure of libarchive's callback */
};

static la_ssize_t writer_cb(struct archive *a, void *cls, const void *data, size_t n)
{
	struct tarx_writer *w = cls;
	if (w->len + n > w->cap) {
		w->cap = (w->len + n) * 2;
		w->buf = realloc(w->buf, w->cap);
	}
	memcpy(w->buf + w->len, data, n);
	w->len += n;
	return (la_ssize_t)n;
}

static bool pseudo_fs(int fd)
{
	struct statfs sf;
	return fstatfs(fd, &sf) < 0 || sf.f_type == PROC_SUPER_MAGIC || sf.f_type == SYSFS_MAGIC;
}

static int push_dir(struct tarx_writer *w, int fd, const char *prefix, agentd_error *err)
{
	if (w->depth == TARX_MAX_DEPTH) {
		close(fd);
		return agentd_error_set(err, ELOOP, "%s: deeper than %d levels", prefix,
					TARX_MAX_DEPTH);
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return agentd_error_errno(err, errno, "%s", prefix);
	}
	w->stack[w->depth].d = d;
	w->stack[w->depth].prefix = strdup(prefix);
	w->depth++;
	return 0;
}

static int put_header(struct tarx_writer *w, const char *name, const struct stat *st,
		      const char *target, agentd_error *err)
{
	if (++w->st.entries > w->p.max_entries)
		return agentd_error_set(err, E2BIG, "more than %llu entries",
					(unsigned long long)w->p.max_entries);
	struct archive_entry *e = LA->archive_entry_new();
	LA->archive_entry_set_pathname(e, name);
	LA->archive_entry_set_filetype(e, st->st_mode & S_IFMT);
	LA->archive_entry_set_perm(e, st->st_mode & 07777);
	LA->archive_entry_set_size(e, S_ISREG(st->st_mode) ? st->st_size : 0);
	LA->archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	if (w->p.keep_owners) {
		LA->archive_entry_set_uid(e, st->st_uid);
		LA->archive_entry_set_gid(e, st->st_gid);
	}
	if (target)
		LA->archive_entry_set_symlink(e, target);
	int r = LA->archive_write_header(w->a, e);
	LA->archive_entry_free(e);
	if (r < ARCHIVE_WARN)
		return agentd_error_set(err, EIO, "%s: %s", name, LA->archive_error_string(w->a));
	return 0;
}

/* An overlay whiteout (or opaque marker) written back as the image spec's empty
 * ".wh.NAME" entry in the directory prefix ("" or "a/b/" or "a/b"). */
static int put_whiteout(struct tarx_writer *w, const char *prefix, const char *name,
			const struct stat *like, agentd_error *err)
{
	char path[TARX_PATH_MAX + 1];
	size_t pl = strlen(prefix);
	const char *sep = pl && prefix[pl - 1] != '/' ? "/" : "";
	if ((size_t)snprintf(path, sizeof(path), "%s%s" WH_PREFIX "%s", prefix, sep, name) >=
	    sizeof(path))
		return agentd_error_set(err, ENAMETOOLONG, "%s...: a path too long", prefix);
	struct stat st = *like;
	st.st_mode = S_IFREG | 0600;
	st.st_size = 0;
	if (put_header(w, path, &st, NULL, err) < 0)
		return -1;
	if (LA->archive_write_finish_entry(w->a) < ARCHIVE_WARN)
		return agentd_error_set(err, EIO, "%s", LA->archive_error_string(w->a));
	return 0;
}

static bool opaque_dir(int fd)
{
	char v[2];
	return (fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y') ||
	       (fgetxattr(fd, "user.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y');
}

/* What the walk found is no longer there as it was (removed, or swapped for a symlink or
 * another type by a sandbox that keeps running): left out, as if listed a moment later. */
static bool gone(int e)
{
	return e == ENOENT || e == ELOOP || e == ENOTDIR;
}

/* One entry of the walk. */
static int walk_entry(struct tarx_writer *w, struct tarx_level *lv, const char *dname,
		      agentd_error *err)
{
	int dfd = dirfd(lv->d);
	char name[TARX_PATH_MAX + 1];
	if ((size_t)snprintf(name, sizeof(name), "%s%s", lv->prefix, dname) >= sizeof(name))
		return agentd_error_set(err, ENAMETOOLONG, "%s...: a path too long", lv->prefix);
	struct stat st;
	if (fstatat(dfd, dname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0; /* gone meanwhile */
	if (S_ISLNK(st.st_mode)) {
		char target[TARX_PATH_MAX + 1];
		ssize_t n = readlinkat(dfd, dname, target, sizeof(target) - 1);
		if (n < 0)
			return 0;
		target[n] = '\0';
		return put_header(w, name, &st, target, err);
	}
	if (w->p.overlay_whiteouts && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0))
		return put_whiteout(w, lv->prefix, dname, &st, err);
	if (S_ISDIR(st.st_mode)) {
		int fd = openat(dfd, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && gone(errno))
			return 0;
		if (fd < 0)
			return agentd_error_errno(err, errno, "%s", name);
		if (pseudo_fs(fd) || fstat(fd, &st) < 0) {
			close(fd);
			return 0;
		}
		if (put_header(w, name, &st, NULL, err) < 0) {
			close(fd);
			return -1;
		}
		if (w->p.overlay_whiteouts && opaque_dir(fd) &&
		    put_whiteout(w, name, WH_OPAQUE + strlen(WH_PREFIX), &st,
				 err) < 0) {
			close(fd);
			return -1;
		}
		strcat(name, "/");
		return push_dir(w, fd, name, err);
	}
	if (!S_ISREG(st.st_mode))
		return 0; /* fifos, sockets, devices: left out */
	int fd = openat(dfd, dname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && gone(errno))
		return 0;
	if (fd < 0)
		return agentd_error_errno(err, errno, "%s", name);
	/* What was opened, not what was named: it may have been swapped since the fstatat. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	if ((uint64_t)st.st_size > w->p.max_bytes - w->st.bytes) {
		close(fd);
		return agentd_error_set(err, E2BIG, "%s: over the limit of %llu bytes", name,
					(unsigned long long)w->p.max_bytes);
	}
	w->st.bytes += (uint64_t)st.st_size;
	if (put_header(w, name, &st, NULL, err) < 0) {
		close(fd);
		return -1;
	}
	w->file = fd;
	w->remaining = (uint64_t)st.st_size;
	return 0;
}

/* Copy a piece of the current file; a file that shrank meanwhile is padded by libarchive,
 * one that grew is cut at the size its header gave. */
static int copy_piece(struct tarx_writer *w, agentd_error *err)
{
	char buf[65536];
	size_t want = w->remaining < sizeof(buf) ? (size_t)w->remaining : sizeof(buf);
	ssize_t n = want ? read(w->file, buf, want) : 0;
	if (n < 0 && errno == EINTR)
		return 0;
	if (n < 0)
		return agentd_error_errno(err, errno, "read");
	if (n > 0 && LA->archive_write_data(w->a, buf, (size_t)n) < 0)
		return agentd_error_set(err, EIO, "%s", LA->archive_error_string(w->a));
	w->remaining -= (uint64_t)n;
	if (n == 0 || w->remaining == 0) {
		close(w->file);
		w->file = -1;
		if (LA->archive_write_finish_entry(w->a) < ARCHIVE_WARN)
			return agentd_error_set(err, EIO, "%s", LA->archive_error_string(w->a));
	}
	return 0;
}

static int step(struct tarx_writer *w, agentd_error *err)
{
	if (w->file >= 0)
		return copy_piece(w, err);
	if (w->depth == 0) {
		if (LA->archive_write_close(w->a) != ARCHIVE_OK)
			return agentd_error_set(err, EIO, "%s", LA->archive_error_string(w->a));
		w->done = true;
		return 0;
	}
	struct tarx_level *lv = &w->stack[w->depth - 1];
	errno = 0;
	struct dirent *de = readdir(lv->d);
	if (!de) {
		if (errno)
			return agentd_error_errno(err, errno, "read directory %s", lv->prefix);
		closedir(lv->d);
		free(lv->prefix);
		w->depth--;
		return 0;
	}
	if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
		return 0;
	return walk_entry(w, lv, de->d_name, err);
}

struct tarx_writer *tarx_writer_new(int dir, const struct tarx_policy *p, agentd_error *err)
{
	if (la_ready(err) < 0) {
		close(dir);
		return NULL;
	}
	struct tarx_writer *w = calloc(1, sizeof(*w));
	w->p = *p;
	w->file = -1;
	w->a = LA->archive_write_new();
	LA->archive_write_set_format_pax_restricted(w->a);
	LA->archive_write_set_bytes_in_last_block(w->a, 1);
	if (LA->archive_write_open2(w->a, w, NULL, writer_cb, NULL, NULL) != ARCHIVE_OK) {
		agentd_error_set(err, EIO, "tar: %s", LA->archive_error_string(w->a));
		close(dir);
		tarx_writer_free(w);
		return NULL;
	}
	if (push_dir(w, dir, "", err) < 0) {
		tarx_writer_free(w);
		return NULL;
	}
	return w;
}

ssize_t tarx_writer_read(struct tarx_writer *w, void *buf, size_t n, agentd_error *err)
{
	while (w->off == w->len && !w->done) {
		w->off = w->len = 0;
		if (step(w, err) < 0)
			return -1;
	}
	size_t k = w->len - w->off < n ? w->len - w->off : n;
	memcpy(buf, w->buf + w->off, k);
	w->off += k;
	return (ssize_t)k;
}

void tarx_writer_free(struct tarx_writer *w)
{
	if (!w)
		return;
	if (w->file >= 0)
		close(w->file);
	while (w->depth > 0) {
		w->depth--;
		closedir(w->stack[w->depth].d);
		free(w->stack[w->depth].prefix);
	}
	LA->archive_write_free(w->a);
	free(w->buf);
	free(w);
}

/* ------------------------------------------------------------------ names only */

int tarx_each_name(const void *tar, size_t len, uint64_t max_entries,
		   int (*cb)(void *userdata, const char *name), void *userdata, agentd_error *err)
{
	if (la_ready(err) < 0)
		return -1;
	struct archive *a = open_reader(tar, len);
	if (!a)
		return agentd_error_set(err, EINVAL, "not a tar archive");
	struct archive_entry *e;
	uint64_t n = 0;
	int r = 0, h;
	while ((h = LA->archive_read_next_header(a, &e)) == ARCHIVE_OK || h == ARCHIVE_WARN) {
		if (++n > max_entries) {
			r = agentd_error_set(err, E2BIG, "more than %llu entries",
					     (unsigned long long)max_entries);
			break;
		}
		char name[TARX_PATH_MAX + 1];
		if (norm_path(LA->archive_entry_pathname(e), name) == 0 &&
		    (r = cb(userdata, name)) < 0)
			break;
	}
	if (r == 0 && h != ARCHIVE_EOF)
		r = agentd_error_set(err, EINVAL, "not a valid tar archive: %s",
				     LA->archive_error_string(a) ? LA->archive_error_string(a) : "?");
	LA->archive_read_free(a);
	return r;
}
