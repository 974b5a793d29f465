/* files.c: the files API's one door into a sandbox: every path is checked, the backend
 * hands over the workdir (or root) fd it held from creation, and the work happens beneath
 * it with the sandbox's fs ids (host/sandbox_files.c, sandbox_fs.c, tarx.c). */
#include "lib/core/core.h"

#include <fcntl.h>

/* A path resolved to a base fd (owned) and its checked relative form. */
struct resolved {
	struct sbfs fs;
	char rel[4097];
};

static void resolved_close(struct resolved *r)
{
	if (r->fs.base >= 0)
		close(r->fs.base);
	r->fs.base = -1;
}

/* path is p itself or beneath it (p without a trailing slash but "/"). */
static const char *under(const char *path, const char *p)
{
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		n--;
	if (n == 1 && p[0] == '/')
		return path + 1;
	if (strncmp(path, p, n) || (path[n] && path[n] != '/'))
		return NULL;
	return path[n] ? path + n + 1 : path + n;
}

static bool under_any(const char *path, const agentd_strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->v[i][0] == '/' && under(path, v->v[i]))
			return true;
	return false;
}

/* rel: no "..", no "." and no empty component but a trailing slash; "" = ".". */
static int check_rel(const char *path, const char *rel, char out[4097], agentd_error *err)
{
	size_t n = strlen(rel);
	while (n && rel[n - 1] == '/')
		n--;
	if (n >= 4097)
		return agentd_error_set(err, EINVAL, "path: longer than 4096 bytes");
	memcpy(out, rel, n);
	out[n] = '\0';
	if (!n) {
		strcpy(out, ".");
		return 0;
	}
	for (const char *c = out; *c;) {
		const char *e = strchrnul(c, '/');
		size_t len = (size_t)(e - c);
		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			return agentd_error_set(err, EINVAL,
						"path %s: empty, \".\" or \"..\" component not "
						"allowed", path);
		if (len > 255)
			return agentd_error_set(err, ENAMETOOLONG, "path %s: a name too long", path);
		c = *e ? e + 1 : e;
	}
	return 0;
}

static int resolve(agentd_sandbox *sb, const char *path, bool write, struct resolved *r,
		   agentd_error *err)
{
	memset(r, 0, sizeof(*r));
	r->fs.base = -1;
	r->fs.path = path;
	r->fs.rel = r->rel;
	if (!path || !*path)
		return agentd_error_set(err, EINVAL, "path: empty");
	if (strlen(path) > 4096)
		return agentd_error_set(err, EINVAL, "path: longer than 4096 bytes");
	const char *rel = path;
	bool in_root = false;
	if (*path == '/') {
		rel = under(path, sb->spec.workdir);
		if (!rel) {
			const agentd_sandbox_caps *c = &sb->caps;
			if (!sb->ops->root_fd)
				return agentd_error_set(err, ENOTSUP,
							"path %s: backend %s reaches only the "
							"sandbox's workdir %s", path,
							sb->backend->ops->name, sb->spec.workdir);
			if (!under_any(path, &c->writable_paths) &&
			    (write || !under_any(path, &c->readable_paths)))
				return agentd_error_set(err, EACCES,
							"path %s: not where the sandbox may %s",
							path, write ? "write" : "read");
			rel = path + 1;
			in_root = true;
		}
	} else if (!strcmp(path, ".")) {
		rel = "";
	}
	if (check_rel(path, rel, r->rel, err) < 0)
		return -1;
	int (*op)(agentd_sandbox *, uid_t *, gid_t *, agentd_error *) =
		in_root ? sb->ops->root_fd : sb->ops->workdir_fd;
	if (!op)
		return agentd_error_set(err, ENOTSUP, "files are not supported by backend %s",
					sb->backend->ops->name);
	r->fs.uid = (uid_t)-1;
	r->fs.gid = (gid_t)-1;
	r->fs.base = op(sb, &r->fs.uid, &r->fs.gid, err);
	if (r->fs.base < 0)
		return agentd_error_prefix(err, "sandbox %s", sb->id);
	return 0;
}

int agentd_sandbox_open_path(agentd_sandbox *sb, const char *path, unsigned flags,
			     agentd_error *err)
{
	bool write = flags & AGENTD_OPEN_WRITE;
	if (path && *path && path[strlen(path) - 1] == '/')
		return agentd_error_set(err, EINVAL, "path %s: names a directory", path);
	struct resolved r;
	if (resolve(sb, path, write, &r, err) < 0)
		return -1;
	int fd = -1;
	if (!strcmp(r.rel, "."))
		agentd_error_set(err, EINVAL, "%s: not a regular file", path);
	else if (!write || !(flags & AGENTD_OPEN_PARENTS) || sbfs_make_parents(&r.fs, err) == 0)
		fd = workdir_open_file(r.fs.base, r.rel, write, r.fs.uid, r.fs.gid, path, err);
	resolved_close(&r);
	return fd;
}

int agentd_sandbox_open_file(agentd_sandbox *sb, const char *path, bool write,
			     agentd_error *err)
{
	return agentd_sandbox_open_path(sb, path, write ? AGENTD_OPEN_WRITE : 0, err);
}

const char *agentd_file_type_name(agentd_file_type t)
{
	static const char *const names[] = {"file", "dir", "symlink", "other"};
	return t <= AGENTD_FILE_OTHER ? names[t] : "other";
}

void agentd_file_stat_free(agentd_file_stat *st)
{
	free(st->name);
	free(st->link_target);
	memset(st, 0, sizeof(*st));
}

int agentd_sandbox_stat(agentd_sandbox *sb, const char *path, agentd_file_stat *out,
			agentd_error *err)
{
	struct resolved r;
	int rc = resolve(sb, path, false, &r, err) < 0 ? -1 : sbfs_stat(&r.fs, out, err);
	resolved_close(&r);
	return rc;
}

int agentd_sandbox_list(agentd_sandbox *sb, const char *path, size_t max,
			agentd_file_stat **out, size_t *n, bool *truncated, agentd_error *err)
{
	struct resolved r;
	*out = NULL;
	*n = 0;
	int rc = resolve(sb, path, false, &r, err) < 0
			 ? -1
			 : sbfs_list(&r.fs, max, out, n, truncated, err);
	resolved_close(&r);
	return rc;
}

int agentd_sandbox_mkdir(agentd_sandbox *sb, const char *path, bool parents, agentd_error *err)
{
	struct resolved r;
	int rc = resolve(sb, path, true, &r, err) < 0 ? -1 : sbfs_mkdir(&r.fs, parents, err);
	resolved_close(&r);
	return rc;
}

int agentd_sandbox_remove(agentd_sandbox *sb, const char *path, bool recursive,
			  agentd_error *err)
{
	struct resolved r;
	int rc = resolve(sb, path, true, &r, err) < 0 ? -1 : sbfs_remove(&r.fs, recursive, err);
	resolved_close(&r);
	return rc;
}

int agentd_sandbox_rename(agentd_sandbox *sb, const char *from, const char *to,
			  bool noreplace, agentd_error *err)
{
	struct resolved a, b;
	int rc = -1;
	if (resolve(sb, from, true, &a, err) == 0) {
		if (resolve(sb, to, true, &b, err) == 0) {
			rc = sbfs_rename(&a.fs, &b.fs, noreplace, err);
			resolved_close(&b);
		}
	}
	resolved_close(&a);
	return rc;
}

int agentd_sandbox_chmod(agentd_sandbox *sb, const char *path, uint32_t mode,
			 agentd_error *err)
{
	struct resolved r;
	int rc = resolve(sb, path, true, &r, err) < 0 ? -1 : sbfs_chmod(&r.fs, mode, err);
	resolved_close(&r);
	return rc;
}

static void tar_policy(const agentd_tar_limits *lim, struct tarx_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->max_entries = lim && lim->max_entries ? lim->max_entries : AGENTD_TAR_MAX_ENTRIES;
	p->max_bytes = lim && lim->max_bytes ? lim->max_bytes : AGENTD_TAR_MAX_BYTES;
}

int agentd_sandbox_tar_extract(agentd_sandbox *sb, const char *path, const void *tar,
			       size_t len, const agentd_tar_limits *lim, agentd_tar_stats *st,
			       agentd_error *err)
{
	struct tarx_policy p;
	tar_policy(lim, &p);
	struct tarx_stats ts = {0};
	struct resolved r;
	if (resolve(sb, path, true, &r, err) < 0)
		return -1;
	int rc = -1;
	struct fsid_save old = fsids_enter(r.fs.uid, r.fs.gid);
	/* The whole archive is checked before the destination is even made. */
	if (tarx_check(tar, len, &p, &ts, err) == 0 &&
	    (!strcmp(r.rel, ".") || sbfs_mkdir(&r.fs, true, err) == 0)) {
		int dir = sbfs_open_dir(&r.fs, r.rel, O_RDONLY, err);
		if (dir >= 0) {
			rc = tarx_extract(dir, tar, len, &p, &ts, err);
			close(dir);
		}
	}
	fsids_leave(old);
	if (st) {
		st->entries = ts.entries;
		st->bytes = ts.bytes;
	}
	resolved_close(&r);
	return rc < 0 ? agentd_error_prefix(err, "extract into %s", path) : 0;
}

int agentd_tar_extract_dir(int dir, const void *tar, size_t len, const agentd_tar_limits *lim,
			   agentd_tar_stats *st, agentd_error *err)
{
	struct tarx_policy p;
	tar_policy(lim, &p);
	struct tarx_stats ts = {0};
	int rc = tarx_extract(dir, tar, len, &p, &ts, err);
	if (st) {
		st->entries = ts.entries;
		st->bytes = ts.bytes;
	}
	return rc;
}

struct agentd_tar_reader {
	struct tarx_writer *w;
	uid_t uid;
	gid_t gid;
};

agentd_tar_reader *agentd_sandbox_tar_open(agentd_sandbox *sb, const char *path,
					   const agentd_tar_limits *lim, agentd_error *err)
{
	struct tarx_policy p;
	tar_policy(lim, &p);
	struct resolved r;
	if (resolve(sb, path, false, &r, err) < 0)
		return NULL;
	agentd_tar_reader *tr = NULL;
	struct fsid_save old = fsids_enter(r.fs.uid, r.fs.gid);
	int dir = sbfs_open_dir(&r.fs, r.rel, O_RDONLY | O_NOFOLLOW, err);
	struct tarx_writer *w = dir < 0 ? NULL : tarx_writer_new(dir, &p, err);
	fsids_leave(old);
	if (w) {
		tr = calloc(1, sizeof(*tr));
		tr->w = w;
		tr->uid = r.fs.uid;
		tr->gid = r.fs.gid;
	}
	resolved_close(&r);
	return tr;
}

agentd_tar_reader *agentd_tar_open_dir(int dir, const agentd_tar_limits *lim,
				       agentd_error *err)
{
	struct tarx_policy p;
	tar_policy(lim, &p);
	int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		agentd_error_errno(err, errno, "open directory");
		return NULL;
	}
	struct tarx_writer *w = tarx_writer_new(fd, &p, err);
	if (!w)
		return NULL;
	agentd_tar_reader *tr = calloc(1, sizeof(*tr));
	tr->w = w;
	tr->uid = (uid_t)-1;
	tr->gid = (gid_t)-1;
	return tr;
}

ssize_t agentd_tar_read(agentd_tar_reader *tr, void *buf, size_t n, agentd_error *err)
{
	struct fsid_save old = fsids_enter(tr->uid, tr->gid);
	ssize_t r = tarx_writer_read(tr->w, buf, n, err);
	fsids_leave(old);
	return r;
}

void agentd_tar_reader_free(agentd_tar_reader *tr)
{
	if (!tr)
		return;
	tarx_writer_free(tr->w);
	free(tr);
}

agentd_watch *agentd_sandbox_watch(agentd_sandbox *sb, const char *path, unsigned max_dirs,
				   agentd_error *err)
{
	struct resolved r;
	if (resolve(sb, path, false, &r, err) < 0)
		return NULL;
	struct fsid_save old = fsids_enter(r.fs.uid, r.fs.gid);
	int dir = sbfs_open_dir(&r.fs, r.rel, O_RDONLY | O_NOFOLLOW, err);
	fsids_leave(old);
	agentd_watch *w = dir < 0 ? NULL : sandbox_watch_new(dir, r.fs.uid, r.fs.gid, max_dirs, err);
	resolved_close(&r);
	return w;
}
