/* mounts.c: the container's fresh root, bubblewrap style. The parent turns the spec into an
 * ordered list of small mount operations; the child replays them with syscalls only. */
#include "lib/jail/jail.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

#define ATTR_RO (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
#define ATTR_RW (MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)

static const char *op_verb(enum mount_op_kind k)
{
	static const char *const verbs[] = {
	    [MOUNT_OP_PRIVATE] = "make-private",
	    [MOUNT_OP_TMPFS] = "tmpfs",
	    [MOUNT_OP_DIR] = "mkdir",
	    [MOUNT_OP_FILE] = "create",
	    [MOUNT_OP_SYMLINK] = "symlink",
	    [MOUNT_OP_BIND] = "bind",
	    [MOUNT_OP_DEV_NODE] = "bind-dev",
	    [MOUNT_OP_PROC] = "proc",
	    [MOUNT_OP_DEVPTS] = "devpts",
	    [MOUNT_OP_MASK_FILE] = "mask",
	    [MOUNT_OP_MASK_DIR] = "mask-dir",
	    [MOUNT_OP_SET_ATTR] = "setattr",
	    [MOUNT_OP_ENTER] = "enter",
	    [MOUNT_OP_PIVOT] = "pivot_root",
	};
	return (size_t)k < ARRAY_SIZE(verbs) && verbs[k] ? verbs[k] : "?";
}

/* ================================================================ child side
 * Runs after clone in a process that may come from a multithreaded daemon: syscalls and
 * the stack only. Everything the operations need was computed by the parent. */

struct run {
	bool entered;	 /* targets are relative to the new root, our cwd */
	bool no_setattr; /* kernel < 5.12: MS_REMOUNT with the existing flags instead */
	bool no_new_api; /* kernel < 5.2 (open_tree/move_mount) */
	bool no_openat2; /* kernel < 5.6 */
	int root_fd;	 /* O_PATH of the new root, opened on first need */
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
	const char *parts[3] = {op_verb(op->kind), " ", op->target};
	size_t n = 0;
	for (int i = 0; i < 3; i++)
		for (const char *s = parts[i]; s && *s && n + 1 < len; s++)
			what[n++] = *s;
	what[n] = '\0';
}

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

/* Add attributes to the mount at path. mount_setattr only adds, so it works on mounts whose
 * flags a user namespace has locked; the MS_REMOUNT fallback must repeat those flags (read
 * with statfs, a plain syscall) and only reaches the top mount of a tree. */
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
	struct statfs sf;
	if (statfs(path, &sf) < 0)
		return -errno;
	unsigned long f = ms_flags(attr, (unsigned long)sf.f_flags);
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | f, NULL) < 0)
		return -errno;
	return 0;
}

/* A target inside a host tree (a nested bind of the policy's) could meet a symlink planted
 * there by an earlier sandbox: resolve it inside the new root with no symlinks at all, and
 * attach a clone that already carries its attributes. -ENOSYS: use plain paths. */
static int bind_resolved(struct run *r, const struct mount_op *op, const char *src,
			 unsigned long rec, uint64_t attr)
{
	if (r->root_fd < 0 && (r->root_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	/* no O_NOFOLLOW: with it a final symlink would be opened, not refused */
	int dst = openat_beneath(r->root_fd, in_root(r, op->target), O_PATH | O_CLOEXEC, 0,
				 RESOLVE_NO_SYMLINKS);
	if (dst < 0) {
		if (errno == ENOSYS)
			r->no_openat2 = true;
		return -errno;
	}
	int ret = 0;
	int tree = sys_open_tree(AT_FDCWD, src,
				 OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rec ? AT_RECURSIVE : 0));
	if (tree < 0) {
		ret = -errno;
		if (ret == -ENOSYS)
			r->no_new_api = true;
		goto out;
	}
	if (attr && sys_mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, attr) < 0) {
		ret = -errno;
		if (ret == -ENOSYS)
			r->no_new_api = true; /* 5.2-5.11: the plain path and MS_REMOUNT */
		goto out;
	}
	unsigned empty = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
	if (sys_move_mount(tree, "", dst, "", empty) < 0) {
		ret = -errno;
		if (ret == -ENOSYS)
			r->no_new_api = true;
	}
out:
	if (tree >= 0)
		close(tree);
	close(dst);
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

static int run_op(struct run *r, const struct mount_op *op)
{
	const char *t = in_root(r, op->target);
	int ret = 0;
	switch (op->kind) {
	case MOUNT_OP_PRIVATE:
		/* Nothing we mount may propagate back to the host, nor host mounts into us. */
		ret = mount(NULL, t, NULL, MS_REC | MS_PRIVATE, NULL);
		break;
	case MOUNT_OP_TMPFS:
	case MOUNT_OP_MASK_DIR:
		ret = mount("tmpfs", t, "tmpfs", op->flags, op->data);
		break;
	case MOUNT_OP_DIR:
		ret = mkdir(t, op->mode);
		if (ret == 0 && op->uid != (uid_t)-1)
			ret = fchownat(AT_FDCWD, t, op->uid, op->gid, AT_SYMLINK_NOFOLLOW);
		break;
	case MOUNT_OP_FILE: {
		if (!op->data_len)
			return mknodat(AT_FDCWD, t, S_IFREG | op->mode, 0) < 0 ? -errno : 0;
		int fd = openat(AT_FDCWD, t, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				op->mode);
		if (fd < 0)
			return -errno;
		int w = write_all(fd, op->data, op->data_len) < 0 ? -errno : 0;
		close(fd);
		return w;
	}
	case MOUNT_OP_SYMLINK:
		ret = symlink(op->data, t);
		break;
	case MOUNT_OP_BIND:
	case MOUNT_OP_DEV_NODE:
	case MOUNT_OP_MASK_FILE:
		ret = do_bind(r, op, op->kind == MOUNT_OP_BIND ? MS_REC : 0, op->attr_set);
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
		ret = chdir(op->target);
		r->entered = ret == 0;
		break;
	case MOUNT_OP_PIVOT:
		if (r->root_fd >= 0) {
			close(r->root_fd);
			r->root_fd = -1;
		}
		/* pivot_root(".", "."): the old root ends up on top of the new one and is then
		 * detached whole, with every host mount under it (bubblewrap, crun). */
		if (syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
		    chdir("/") < 0)
			return -errno;
		return 0;
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
	struct run r = {.root_fd = -1}; /* each call found missing (ENOSYS) is not retried */
	mode_t old_umask = umask(0); /* modes in the plan are exact (01777 for /tmp) */
	int ret = 0;
	if (what && what_len)
		what[0] = '\0';
	for (size_t i = 0; i < plan->n; i++) {
		ret = run_op(&r, &plan->ops[i]);
		if (ret < 0) {
			describe_failure(what, what_len, &plan->ops[i]);
			break;
		}
	}
	if (r.root_fd >= 0)
		close(r.root_fd);
	umask(old_umask);
	return ret;
}

/* ================================================================ parent side */

/* What a mount offers the entries below it. OWN: ours, mount points are created there.
 * HOST: a host directory, which must already hold them (agentd creates nothing on the
 * host). FIXED: holds them by construction (the cache, proc). NONE: a file. */
enum tree { TREE_NONE, TREE_OWN, TREE_HOST, TREE_FIXED };

/* Scratch binds get their source (a directory of the scratch tmpfs) once the base is
 * chosen; the flag never leaves mount_plan_prepare. */
#define OPF_SCRATCH_SOURCE 0x80000000u

struct entry {
	struct mount_op op;
	enum tree tree;
	bool mount;   /* a mount (a tree for the entries below), else created */
	bool dir;     /* the mount point is a directory */
	bool user;    /* from the spec: replaces system entries at or below it */
	bool scratch; /* workdir, /tmp, /dev/shm: replaced only by an equal target */
	bool dropped;
	size_t seq;	/* insertion order: ties of the depth sort keep it */
	char label[48]; /* JSON path for messages ("bind_mounts[1].target") */
};

struct builder {
	struct entry *v;
	size_t n, cap;
	struct mount_plan body;
	agentd_strv made;    /* directories created in our own trees */
	agentd_strv runtime; /* host trees bound read-only at the same path (/usr...) */
	agentd_error *err;
};

static void op_free(struct mount_op *op)
{
	free(op->source);
	free(op->target);
	free(op->data);
}

static struct mount_op *plan_push(struct mount_plan *p, enum mount_op_kind k, const char *target)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 64;
		p->ops = xrealloc(p->ops, p->cap * sizeof(*p->ops));
	}
	struct mount_op *op = &p->ops[p->n++];
	memset(op, 0, sizeof(*op));
	op->kind = k;
	op->target = xstrdup(target);
	op->uid = (uid_t)-1;
	op->gid = (gid_t)-1;
	return op;
}

static void set_data(struct mount_op *op, const char *data, size_t len)
{
	op->data = xmalloc(len + 1);
	memcpy(op->data, data, len);
	op->data[len] = '\0';
	op->data_len = len;
}

/* ---------------------------------------------------------------- paths */

/* Canonical spelling of an absolute path: no "//", "." or trailing "/". ".." is refused: a
 * policy must not depend on how a path resolves. */
static bool normalize(const char *in, char *out, size_t size)
{
	if (!in || in[0] != '/')
		return false;
	size_t n = 0;
	for (const char *p = in; *p;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return false;
		if (!(len == 1 && p[0] == '.')) {
			if (n + len + 2 > size)
				return false;
			out[n++] = '/';
			memcpy(out + n, p, len);
			n += len;
		}
		p = end;
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return true;
}

static bool path_within(const char *p, const char *dir) /* p is dir or below it */
{
	if (strcmp(dir, "/") == 0)
		return true;
	size_t n = strlen(dir);
	return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

static bool path_below(const char *p, const char *dir)
{
	return strcmp(p, dir) != 0 && path_within(p, dir);
}

static size_t path_depth(const char *p)
{
	size_t d = 0;
	for (; *p; p++)
		d += *p == '/';
	return p[-1] == '/' ? 0 : d; /* "/" is 0 */
}

/* ---------------------------------------------------------------- entries */

static struct entry *add(struct builder *b, enum mount_op_kind k, const char *target,
			 const char *source)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
	}
	struct entry *e = &b->v[b->n++];
	memset(e, 0, sizeof(*e));
	e->op.kind = k;
	e->op.target = xstrdup(target);
	e->op.source = source ? xstrdup(source) : NULL;
	e->op.uid = (uid_t)-1;
	e->op.gid = (gid_t)-1;
	e->mount = k != MOUNT_OP_DIR && k != MOUNT_OP_FILE && k != MOUNT_OP_SYMLINK;
	e->dir = true;
	e->seq = b->n;
	e->tree = k == MOUNT_OP_BIND ? TREE_HOST : k == MOUNT_OP_DIR ? TREE_OWN : TREE_NONE;
	snprintf(e->label, sizeof(e->label), "system");
	return e;
}

static struct entry *add_symlink(struct builder *b, const char *target, const char *link)
{
	struct entry *e = add(b, MOUNT_OP_SYMLINK, target, NULL);
	set_data(&e->op, link, strlen(link));
	return e;
}

static struct entry *add_file(struct builder *b, const char *target, const char *content)
{
	struct entry *e = add(b, MOUNT_OP_FILE, target, NULL);
	set_data(&e->op, content, strlen(content));
	e->op.mode = 0644;
	return e;
}

/* A read-only bind of a host path at target (dir tells the mount point type). */
static struct entry *add_ro_bind(struct builder *b, const char *target, const char *source,
				 bool dir)
{
	struct entry *e = add(b, MOUNT_OP_BIND, target, source);
	e->op.attr_set = ATTR_RO;
	e->dir = dir;
	if (!dir)
		e->tree = TREE_NONE;
	return e;
}

/* /usr, and /bin /sbin /lib* as the symlinks they are on merged-/usr hosts. */
static void add_runtime(struct builder *b, const agentd_strv *sys)
{
	for (size_t i = 0; i < sys->n; i++) {
		const char *p = sys->v[i];
		struct stat st;
		char link[PATH_MAX];
		if (path_within(p, "/etc") || path_within(p, "/dev") || path_within(p, "/proc") ||
		    lstat(p, &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlink(p, link, sizeof(link) - 1);
			if (n > 0) {
				link[n] = '\0';
				add_symlink(b, p, link);
			}
		} else if (S_ISDIR(st.st_mode)) {
			add_ro_bind(b, p, p, true);
			strv_push(&b->runtime, p);
		}
	}
}

/* ---------------------------------------------------------------- /etc */

enum etc_kind { ETC_FILE, ETC_DIR, ETC_LINK, ETC_GEN };
struct etc_item {
	enum etc_kind kind;
	char *path;	/* /etc/... in the sandbox */
	char *source;	/* host file or dir (FILE, DIR) */
	char *data;	/* LINK: symlink target; GEN: content */
	struct stat st; /* FILE: of source, for the cache fingerprint */
};
struct etc_set {
	struct etc_item *v;
	size_t n;
};

static void etc_set_free(struct etc_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].path);
		free(s->v[i].source);
		free(s->v[i].data);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static void etc_push(struct etc_set *s, enum etc_kind k, const char *path, const char *source,
		     const char *data, const struct stat *st)
{
	s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
	struct etc_item *it = &s->v[s->n++];
	memset(it, 0, sizeof(*it));
	it->kind = k;
	it->path = xstrdup(path);
	it->source = source ? xstrdup(source) : NULL;
	it->data = data ? xstrdup(data) : NULL;
	if (st)
		it->st = *st;
}

static bool in_runtime(const struct builder *b, const char *p)
{
	for (size_t i = 0; i < b->runtime.n; i++)
		if (path_within(p, b->runtime.v[i]))
			return true;
	return path_within(p, "/proc");
}

/* The allowlisted /etc (landlock.c owns the list) plus generated files. passwd and group
 * are generated: in a user namespace host accounts are unmapped (shown as nobody) anyway,
 * and the sandbox's own uid must resolve. A symlink is kept when what it points to is
 * visible in the sandbox (localtime -> /usr/share/zoneinfo), else its target is used. */
static void etc_collect(struct builder *b, const char *wd, const struct mount_plan_opts *o,
			const agentd_strv *sys, struct etc_set *out)
{
	const char *host = o->hostname ? o->hostname : "agentd";
	static const char *const generated[] = {"/etc/hostname", "/etc/hosts", "/etc/passwd",
						"/etc/group"};
	for (size_t i = 0; i < sys->n; i++) {
		const char *p = sys->v[i];
		struct stat st;
		bool skip = !path_below(p, "/etc") || lstat(p, &st) < 0 ||
			    (o->network_none && strcmp(p, "/etc/resolv.conf") == 0);
		for (size_t g = 0; g < ARRAY_SIZE(generated) && !skip; g++)
			skip = strcmp(p, generated[g]) == 0;
		if (skip)
			continue;
		_cleanup_free_ char *real = NULL;
		if (S_ISLNK(st.st_mode)) {
			char link[PATH_MAX];
			ssize_t n = readlink(p, link, sizeof(link) - 1);
			real = realpath(p, NULL);
			if (n <= 0 || !real)
				continue; /* dangling: nothing to show */
			link[n] = '\0';
			if (in_runtime(b, real)) {
				etc_push(out, ETC_LINK, p, NULL, link, NULL);
				continue;
			}
			if (stat(real, &st) < 0)
				continue;
		}
		if (S_ISREG(st.st_mode))
			etc_push(out, ETC_FILE, p, real ? real : p, NULL, &st);
		else if (S_ISDIR(st.st_mode))
			etc_push(out, ETC_DIR, p, real ? real : p, NULL, &st);
	}

	_cleanup_free_ char *hostname = xasprintf("%s\n", host);
	etc_push(out, ETC_GEN, "/etc/hostname", NULL, hostname, NULL);
	_cleanup_free_ char *host_hosts = NULL;
	if (!o->network_none) /* the host's names too, after ours */
		host_hosts = read_file_at(AT_FDCWD, "/etc/hosts", 1 << 20, NULL);
	_cleanup_free_ char *hosts = xasprintf("127.0.0.1\tlocalhost %s\n::1\tlocalhost\n%s", host,
					       host_hosts ? host_hosts : "");
	etc_push(out, ETC_GEN, "/etc/hosts", NULL, hosts, NULL);
	if (o->network_none)
		etc_push(out, ETC_GEN, "/etc/resolv.conf", NULL, "nameserver 127.0.0.1\n", NULL);
	unsigned uid = o->sandbox_uid, gid = o->sandbox_gid;
	bool own_user = uid != 0 && uid != 65534, own_group = gid != 0 && gid != 65534;
	_cleanup_free_ char *user =
	    own_user ? xasprintf("agent:x:%u:%u:agent:%s:/bin/sh\n", uid, gid, wd) : xstrdup("");
	_cleanup_free_ char *passwd =
	    xasprintf("root:x:0:0:root:%s:/bin/sh\n"
		      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n%s",
		      uid == 0 ? wd : "/root", user);
	etc_push(out, ETC_GEN, "/etc/passwd", NULL, passwd, NULL);
	_cleanup_free_ char *grp = own_group ? xasprintf("agent:x:%u:\n", gid) : xstrdup("");
	_cleanup_free_ char *group = xasprintf("root:x:0:\nnogroup:x:65534:\n%s", grp);
	etc_push(out, ETC_GEN, "/etc/group", NULL, group, NULL);
}

/* ---------------------------------------------------------------- the cache */

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

static char *fingerprint(const struct etc_set *s)
{
	size_t len = 0, cap = 4096;
	char *fp = xmalloc(cap);
	len = (size_t)snprintf(fp, cap, "agentd-rootfs-cache 1\n");
	for (size_t i = 0; i < s->n; i++) {
		const struct etc_item *it = &s->v[i];
		const struct stat *st = &it->st;
		_cleanup_free_ char *line = NULL;
		if (it->kind == ETC_FILE)
			line =
			    xasprintf("F %s %s %o %lu %lu %lld %lld.%09ld %lld.%09ld\n", it->path,
				      it->source, st->st_mode, (unsigned long)st->st_dev,
				      (unsigned long)st->st_ino, (long long)st->st_size,
				      (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
				      (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
		else if (it->kind == ETC_DIR)
			line = xasprintf("D %s\n", it->path);
		else if (it->kind == ETC_LINK)
			line = xasprintf("L %s %s\n", it->path, it->data);
		else
			line = xasprintf("G %s %zu\n%s\n", it->path, strlen(it->data), it->data);
		size_t n = strlen(line);
		if (len + n + 1 > cap) {
			cap = 2 * (len + n + 1);
			fp = xrealloc(fp, cap);
		}
		memcpy(fp + len, line, n + 1);
		len += n;
	}
	return fp;
}

static int mkdir_mode_at(int dfd, const char *name, mode_t mode)
{
	if (mkdirat(dfd, name, mode) < 0)
		return -errno;
	return fchmodat(dfd, name, mode, 0) < 0 ? -errno : 0; /* whatever the umask */
}

static int write_new_at(int dfd, const char *name, const char *data, size_t len, mode_t mode)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, data, len) < 0 ? -errno : 0;
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int copy_file_at(int dfd, const char *name, const char *src, mode_t mode)
{
	_cleanup_close_ int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -errno;
	_cleanup_close_ int out =
	    openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	char buf[65536];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		if (write_all(out, buf, (size_t)n) < 0)
			return -errno;
	}
	return fchmod(out, mode & 0777) < 0 ? -errno : 0;
}

/* Create the parents of rel ("ssl/certs") under dfd. */
static int mkparents_at(int dfd, const char *rel)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", rel);
	for (char *p = strchr(buf, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		int r = mkdir_mode_at(dfd, buf, 0755);
		*p = '/';
		if (r < 0 && r != -EEXIST)
			return r;
	}
	return 0;
}

/* The /dev skeleton: mount points for the device binds, devpts and shm, and the usual
 * symlinks. Read-only in the sandbox like everything that is not scratch. */
static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
static const char *const dev_links[][2] = {
    {"ptmx", "pts/ptmx"},	   {"fd", "/proc/self/fd"},	  {"stdin", "/proc/self/fd/0"},
    {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
};

static int cache_fill(int dfd, const struct etc_set *s, const char *fp)
{
	int r;
	if ((r = mkdir_mode_at(dfd, "etc", 0755)) < 0 || (r = mkdir_mode_at(dfd, "dev", 0755)) < 0)
		return r;
	for (size_t i = 0; i < s->n; i++) {
		const struct etc_item *it = &s->v[i];
		const char *rel = it->path + 1; /* "etc/..." */
		if ((r = mkparents_at(dfd, rel)) < 0)
			return r;
		if (it->kind == ETC_FILE)
			r = copy_file_at(dfd, rel, it->source, it->st.st_mode);
		else if (it->kind == ETC_DIR)
			r = mkdir_mode_at(dfd, rel, 0755); /* mount point */
		else if (it->kind == ETC_LINK)
			r = symlinkat(it->data, dfd, rel) < 0 ? -errno : 0;
		else
			r = write_new_at(dfd, rel, it->data, strlen(it->data), 0644);
		if (r < 0)
			return r;
	}
	char rel[64];
	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
		snprintf(rel, sizeof(rel), "dev/%s", dev_nodes[i]);
		if ((r = write_new_at(dfd, rel, "", 0, 0666)) < 0)
			return r;
	}
	if ((r = mkdir_mode_at(dfd, "dev/pts", 0755)) < 0 ||
	    (r = mkdir_mode_at(dfd, "dev/shm", 0755)) < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++) {
		snprintf(rel, sizeof(rel), "dev/%s", dev_links[i][0]);
		if (symlinkat(dev_links[i][1], dfd, rel) < 0)
			return -errno;
	}
	return write_new_at(dfd, "fingerprint", fp, strlen(fp), 0644);
}

/* Leftovers of builders that died midway (nothing ever mounts a .tmp- directory). */
static void cache_sweep(const char *cache_dir)
{
	DIR *d = opendir(cache_dir);
	if (!d)
		return;
	time_t now = time(NULL);
	for (struct dirent *de; (de = readdir(d));) {
		struct stat st;
		if (strncmp(de->d_name, ".tmp-", 5) == 0 &&
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    now - st.st_mtime > 600)
			rm_rf_at(dirfd(d), de->d_name);
	}
	closedir(d);
}

static bool variant_matches(const char *variant, const char *fp)
{
	_cleanup_free_ char *path = xasprintf("%s/fingerprint", variant);
	_cleanup_free_ char *have = read_file_at(AT_FDCWD, path, 1 << 20, NULL);
	return have && strcmp(have, fp) == 0;
}

/* <cache>/<hash of the fingerprint>/{etc,dev}: built once in a temporary directory and
 * renamed into place, so concurrent builders and crashes leave either nothing or a whole
 * tree. Files are copies (stat fingerprinted: a changed source gives a new variant);
 * directories stay live binds over the empty mount points. Variants are never removed
 * here: a running sandbox may have mounts on their mount points. NULL + reason on failure
 * (the caller builds /etc in the scratch instead). */
static char *cache_variant(const char *cache_dir, const struct etc_set *s, char *why, size_t wlen)
{
	_cleanup_free_ char *fp = fingerprint(s);
	char *variant =
	    xasprintf("%s/%016llx", cache_dir, (unsigned long long)fnv1a(fp, strlen(fp)));
	if (variant_matches(variant, fp))
		return variant;

	int r = mkdir_p(cache_dir, 0711);
	/* ids of a user namespace are "others" to root-owned host dirs: they must traverse */
	if (r == 0 && chmod(cache_dir, 0711) < 0)
		r = -errno;
	if (r == 0)
		cache_sweep(cache_dir);
	char id[40];
	random_id(id);
	_cleanup_free_ char *tmp = xasprintf("%s/.tmp-%s", cache_dir, id);
	if (r == 0 && mkdir(tmp, 0700) < 0)
		r = -errno;
	if (r == 0) {
		_cleanup_close_ int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = dfd < 0 ? -errno : cache_fill(dfd, s, fp);
		if (r == 0 && fchmod(dfd, 0755) < 0)
			r = -errno;
		if (r == 0 && rename(tmp, variant) < 0)
			r = -errno;
		if (r < 0)
			rm_rf(tmp);
		if (r == -EEXIST || r == -ENOTEMPTY) /* built by someone else meanwhile */
			r = variant_matches(variant, fp) ? 0 : -EEXIST;
	}
	if (r < 0) {
		snprintf(why, wlen, "%s: %s", variant, strerror(-r));
		free(variant);
		return NULL;
	}
	return variant;
}

/* /etc: one read-only bind of the cached copy (plus live binds of the allowlisted
 * directories), or entry by entry in the scratch when there is no cache. */
static void add_etc(struct builder *b, const struct etc_set *s, const char *variant)
{
	if (variant) {
		_cleanup_free_ char *src = xasprintf("%s/etc", variant);
		add_ro_bind(b, "/etc", src, true)->tree = TREE_FIXED;
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct etc_item *it = &s->v[i];
		if (it->kind == ETC_DIR)
			add_ro_bind(b, it->path, it->source, true);
		else if (variant)
			continue;
		else if (it->kind == ETC_FILE)
			add_ro_bind(b, it->path, it->source, false);
		else if (it->kind == ETC_LINK)
			add_symlink(b, it->path, it->data);
		else
			add_file(b, it->path, it->data);
	}
}

/* ---------------------------------------------------------------- /proc, /dev, scratch */

/* A fresh proc, not subset=pid: that would hide /proc/cpuinfo, meminfo, stat, uptime and
 * loadavg, which ps, free, psutil and Node's os.cpus() read. Docker's masks instead; most
 * are already useless to a user namespace (they check init-namespace capabilities or
 * unmapped owners), so this is defence in depth. Only entries the kernel has are listed. */
/* What the kernel's /proc has: it does not change while we run. */
static const char *const proc_names[] = {
    "kcore",	     "sysrq-trigger", "keys", "timer_list", "sched_debug", "kallsyms",
    "latency_stats", "timer_stats",   "acpi", "scsi",	    "asound",	   "firmware",
    "sys",	     "irq",	      "bus",  "fs"};
static bool proc_present[ARRAY_SIZE(proc_names)];

static void proc_probe(void)
{
	char p[64];
	for (size_t i = 0; i < ARRAY_SIZE(proc_names); i++) {
		snprintf(p, sizeof(p), "/proc/%s", proc_names[i]);
		proc_present[i] = access(p, F_OK) == 0;
	}
}

static bool proc_has(const char *name)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, proc_probe);
	for (size_t i = 0; i < ARRAY_SIZE(proc_names); i++)
		if (strcmp(proc_names[i], name) == 0)
			return proc_present[i];
	return false;
}

static void add_proc(struct builder *b)
{
	static const char *const mask_files[] = {"kcore",	  "sysrq-trigger", "keys",
						 "timer_list",	  "sched_debug",   "kallsyms",
						 "latency_stats", "timer_stats"};
	static const char *const mask_dirs[] = {"acpi", "scsi", "asound", "firmware"};
	static const char *const ro_dirs[] = {"sys", "irq", "bus", "fs"};
	char p[64];
	struct entry *e = add(b, MOUNT_OP_PROC, "/proc", NULL);
	e->op.flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	e->tree = TREE_FIXED;
	for (size_t i = 0; i < ARRAY_SIZE(mask_files); i++) {
		if (!proc_has(mask_files[i]))
			continue;
		snprintf(p, sizeof(p), "/proc/%s", mask_files[i]);
		e = add(b, MOUNT_OP_MASK_FILE, p, "/dev/null");
		e->op.opflags = MOUNT_OPF_OPTIONAL;
		e->dir = false;
	}
	for (size_t i = 0; i < ARRAY_SIZE(mask_dirs); i++) {
		if (!proc_has(mask_dirs[i]))
			continue;
		snprintf(p, sizeof(p), "/proc/%s", mask_dirs[i]);
		e = add(b, MOUNT_OP_MASK_DIR, p, NULL);
		e->op.flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
		set_data(&e->op, "size=4k,nr_inodes=1,mode=0555", 30);
		e->op.opflags = MOUNT_OPF_OPTIONAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(ro_dirs); i++) {
		if (!proc_has(ro_dirs[i]))
			continue;
		snprintf(p, sizeof(p), "/proc/%s", ro_dirs[i]);
		e = add_ro_bind(b, p, p, true); /* the new proc's own, bound onto itself */
		e->op.attr_set |= MOUNT_ATTR_NOEXEC;
		e->op.opflags = MOUNT_OPF_SOURCE_IN_ROOT | MOUNT_OPF_OPTIONAL;
		e->tree = TREE_FIXED;
	}
}

static void add_dev(struct builder *b, const char *variant)
{
	char p[64];
	struct entry *e;
	if (variant) {
		_cleanup_free_ char *src = xasprintf("%s/dev", variant);
		e = add_ro_bind(b, "/dev", src, true);
		e->op.attr_set |= MOUNT_ATTR_NOEXEC;
		e->tree = TREE_FIXED;
	} else {
		for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++) {
			snprintf(p, sizeof(p), "/dev/%s", dev_links[i][0]);
			add_symlink(b, p, dev_links[i][1]);
		}
	}
	/* Binds of the host's devices (nodes made in a user namespace would not open: its
	 * filesystems are SB_I_NODEV). No attributes: nosuid, noexec and ro mean nothing to a
	 * character device (only regular files execute; ro does not stop device writes), and
	 * each would cost a syscall. */
	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
		snprintf(p, sizeof(p), "/dev/%s", dev_nodes[i]);
		e = add(b, MOUNT_OP_DEV_NODE, p, p);
		e->op.mode = 0666;
		e->dir = false;
	}
	e = add(b, MOUNT_OP_DEVPTS, "/dev/pts", NULL);
	e->op.flags = MS_NOSUID | MS_NOEXEC;
	set_data(&e->op, "newinstance,ptmxmode=0666,mode=620", 34);
	e->tree = TREE_FIXED;
}

/* workdir, /tmp and /dev/shm are directories of one scratch tmpfs: one quota
 * (max_write_bytes) for everything the sandbox can write. The scratch mount has
 * nosuid,nodev, which binds inherit; /dev/shm adds noexec. */
static void add_scratch(struct builder *b, const char *workdir)
{
	static const struct {
		const char *dir, *target;
	} s[] = {{"workdir", NULL}, {"tmp", "/tmp"}, {"shm", "/dev/shm"}};
	for (size_t i = 0; i < ARRAY_SIZE(s); i++) {
		if (i == 1 && strcmp(workdir, "/tmp") == 0)
			continue; /* the workdir is /tmp: one bind */
		struct entry *e =
		    add(b, MOUNT_OP_BIND, s[i].target ? s[i].target : workdir, s[i].dir);
		e->op.opflags = OPF_SCRATCH_SOURCE;
		e->op.attr_set = i == 2 ? MOUNT_ATTR_NOEXEC : 0;
		e->tree = TREE_OWN;
		e->scratch = true;
		snprintf(e->label, sizeof(e->label), "%s", i == 0 ? "workdir" : "system");
	}
}

/* ---------------------------------------------------------------- the policy's binds */

static int add_user(struct builder *b, const char *label, bool same, const char *source,
		    const char *target, bool ro)
{
	char t[PATH_MAX], tl[64], sl[64];
	snprintf(tl, sizeof(tl), "%s%s", label, same ? "" : ".target");
	snprintf(sl, sizeof(sl), "%s%s", label, same ? "" : ".source");
	if (!normalize(target, t, sizeof(t)))
		return agentd_error_set(b->err, EINVAL,
					"%s: %s: expected an absolute path without \"..\"", tl,
					target ? target : "(null)");
	if (!source || source[0] != '/')
		return agentd_error_set(b->err, EINVAL, "%s: %s: expected an absolute path", sl,
					source ? source : "(null)");
	if (strcmp(t, "/") == 0)
		return agentd_error_set(b->err, EINVAL, "%s: %s: would shadow the root", tl, t);
	if (path_within(t, "/proc") || strcmp(t, "/dev") == 0)
		return agentd_error_set(b->err, EINVAL, "%s: %s: would shadow %s", tl, t,
					path_within(t, "/proc") ? "/proc" : "/dev");
	_cleanup_free_ char *real = realpath(source, NULL);
	struct stat st;
	if (!real || stat(real, &st) < 0)
		return agentd_error_errno(b->err, errno, "%s: %s", sl, source);
	if (path_within(real, "/proc"))
		return agentd_error_set(b->err, EINVAL, "%s: %s: the host's /proc is not bound", sl,
					source);
	if (strcmp(real, "/") == 0)
		return agentd_error_set(b->err, EINVAL, "%s: %s: the host root is not bound", sl,
					source);
	if (S_ISBLK(st.st_mode))
		return agentd_error_set(b->err, EINVAL, "%s: %s: block devices are not bound", sl,
					source);
	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].user && strcmp(b->v[i].op.target, t) == 0)
			return agentd_error_set(b->err, EINVAL, "%s: %s: already the target of %s",
						tl, t, b->v[i].label);
	struct entry *e;
	if (S_ISCHR(st.st_mode)) {
		e = add(b, MOUNT_OP_DEV_NODE, t, real); /* readonly cannot apply, see add_dev */
		e->dir = false;
	} else {
		e = add(b, MOUNT_OP_BIND, t, real);
		e->op.attr_set = ro ? ATTR_RO : ATTR_RW;
		e->dir = S_ISDIR(st.st_mode);
		e->tree = e->dir ? TREE_HOST : TREE_NONE;
	}
	e->user = true;
	snprintf(e->label, sizeof(e->label), "%s", tl);
	return 0;
}

static int add_user_binds(struct builder *b, const agentd_spec *spec)
{
	char label[48];
	for (size_t i = 0; i < spec->allowed_paths_ro.n; i++) {
		snprintf(label, sizeof(label), "allowed_paths_ro[%zu]", i);
		const char *p = spec->allowed_paths_ro.v[i];
		if (add_user(b, label, true, p, p, true) < 0)
			return -1;
	}
	for (size_t i = 0; i < spec->allowed_paths_rw.n; i++) {
		snprintf(label, sizeof(label), "allowed_paths_rw[%zu]", i);
		const char *p = spec->allowed_paths_rw.v[i];
		if (add_user(b, label, true, p, p, false) < 0)
			return -1;
	}
	for (size_t i = 0; i < spec->n_bind_mounts; i++) {
		const agentd_bind_mount *m = &spec->bind_mounts[i];
		snprintf(label, sizeof(label), "bind_mounts[%zu]", i);
		if (add_user(b, label, false, m->source, m->target, m->readonly) < 0)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- ordering */

static int by_depth(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	size_t da = path_depth(a->op.target), db = path_depth(b->op.target);
	if (da != db)
		return da < db ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* The mount holding target (NULL: the root): the deepest earlier mount above it. */
static const struct entry *container(const struct builder *b, size_t upto, const char *target)
{
	const struct entry *best = NULL;
	for (size_t i = 0; i < upto; i++) {
		const struct entry *e = &b->v[i];
		if (e->dropped || !e->mount || !path_below(target, e->op.target))
			continue;
		if (!best || strlen(e->op.target) > strlen(best->op.target))
			best = e;
	}
	return best;
}

static void op_copy(struct mount_op *dst, const struct mount_op *src)
{
	char *target = dst->target;
	*dst = *src;
	dst->target = target;
	dst->source = src->source ? xstrdup(src->source) : NULL;
	dst->data = NULL;
	if (src->data)
		set_data(dst, src->data, src->data_len);
}

/* Directories between the own tree at top and target's parent, parents first. */
static int make_parents(struct builder *b, size_t upto, const char *top, const struct entry *e)
{
	char buf[PATH_MAX];
	const char *t = e->op.target;
	for (const char *p = strchr(t + 1, '/'); p; p = strchr(p + 1, '/')) {
		size_t len = (size_t)(p - t);
		memcpy(buf, t, len);
		buf[len] = '\0';
		if (!path_below(buf, top) || strv_contains(&b->made, buf))
			continue;
		for (size_t i = 0; i < upto; i++)
			if (!b->v[i].dropped && !b->v[i].mount &&
			    strcmp(b->v[i].op.target, buf) == 0)
				return agentd_error_set(
				    b->err, ENOTDIR, "%s: %s: %s is not a directory in the sandbox",
				    e->label, t, buf);
		plan_push(&b->body, MOUNT_OP_DIR, buf)->mode = 0755;
		strv_push(&b->made, buf);
	}
	return 0;
}

/* Append entry i's operations: its mount point where it is ours to create, checked where
 * it must already exist, then the entry itself. */
static int emit(struct builder *b, size_t i)
{
	struct entry *e = &b->v[i];
	const char *t = e->op.target;
	const struct entry *c = container(b, i, t);
	enum tree tree = c ? c->tree : TREE_OWN;
	const char *top = c ? c->op.target : "/";
	struct stat st;

	switch (tree) {
	case TREE_NONE:
		return agentd_error_set(b->err, ENOTDIR, "%s: %s: %s is not a directory", e->label,
					t, top);
	case TREE_OWN:
		if (make_parents(b, i, top, e) < 0)
			return -1;
		if (strv_contains(&b->made, t)) {
			if (!e->dir || !e->mount)
				return agentd_error_set(
				    b->err, EEXIST, "%s: %s: already a directory in the sandbox",
				    e->label, t);
		} else if (e->mount) {
			struct mount_op *op =
			    plan_push(&b->body, e->dir ? MOUNT_OP_DIR : MOUNT_OP_FILE, t);
			op->mode = e->dir ? 0755 : e->op.mode ? e->op.mode : 0444;
		}
		break;
	case TREE_HOST: {
		/* Nothing is created on the host: the mount point must be there, as what it is. */
		_cleanup_free_ char *host = xasprintf("%s%s", c->op.source, t + strlen(top));
		if (!e->mount)
			return agentd_error_set(
			    b->err, EINVAL, "%s: %s: cannot be created inside %s (bound from %s)",
			    e->label, t, top, c->op.source);
		if (lstat(host, &st) < 0)
			return agentd_error_set(b->err, errno,
						"%s: %s: no mount point %s in %s (bound from %s); "
						"agentd creates none on the host",
						e->label, t, host, top, c->op.source);
		if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode) != !e->dir)
			return agentd_error_set(b->err, EINVAL, "%s: %s: mount point %s is %s",
						e->label, t, host,
						S_ISLNK(st.st_mode) ? "a symlink"
						: e->dir	    ? "not a directory"
								    : "a directory");
		e->op.opflags |= MOUNT_OPF_RESOLVE;
		break;
	}
	case TREE_FIXED:
		/* Only what the plan put there itself (proc's masks, the cache's mount points). */
		if (!e->mount || e->user)
			return agentd_error_set(b->err, EINVAL,
						"%s: %s: cannot be mounted inside %s", e->label, t,
						top);
		break;
	}
	if (e->op.kind == MOUNT_OP_DIR && strv_contains(&b->made, t))
		return 0;
	op_copy(plan_push(&b->body, e->op.kind, t), &e->op);
	if (!e->mount ? e->op.kind == MOUNT_OP_DIR : e->dir && tree == TREE_OWN)
		strv_push(&b->made, t);
	return 0;
}

/* ---------------------------------------------------------------- the base */

static bool base_clear(const struct mount_plan *body, const char *base)
{
	struct stat st;
	if (lstat(base, &st) < 0 || !S_ISDIR(st.st_mode))
		return false;
	for (size_t i = 0; i < body->n; i++) {
		const struct mount_op *op = &body->ops[i];
		if (!op->source || (op->opflags & (MOUNT_OPF_SOURCE_IN_ROOT | OPF_SCRATCH_SOURCE)))
			continue;
		if (path_within(op->source, base) || path_within(base, op->source))
			return false;
	}
	return true;
}

/* The host directory the scratch tmpfs covers in the private namespace (the new root is
 * one of its directories). Any directory works, as long as no bind source lies below it
 * (it would be hidden) or above it (the bind would carry the scratch along). */
static char *choose_base(const struct mount_plan *body, const char *want, agentd_error *err)
{
	static const char *const candidates[] = {"/tmp", "/mnt",  "/media",   "/srv",  "/opt",
						 "/run", "/home", "/var/tmp", "/boot", "/root"};
	char b[PATH_MAX];
	if (want) {
		if (!normalize(want, b, sizeof(b)) || strcmp(b, "/") == 0 || !base_clear(body, b)) {
			agentd_error_set(err, EINVAL,
					 "base %s: not a directory, or a bind source is in or "
					 "above it",
					 want);
			return NULL;
		}
		return xstrdup(b);
	}
	for (size_t i = 0; i < ARRAY_SIZE(candidates); i++)
		if (base_clear(body, candidates[i]))
			return xstrdup(candidates[i]);
	agentd_error_set(err, EINVAL,
			 "no directory to mount the scratch on: bind sources cover /tmp, /mnt, "
			 "/media, /srv, /opt, /run, /home, /var/tmp, /boot and /root");
	return NULL;
}

/* ---------------------------------------------------------------- build */

static void plan_append(struct mount_plan *dst, struct mount_plan *src)
{
	for (size_t i = 0; i < src->n; i++) {
		struct mount_op *op = plan_push(dst, src->ops[i].kind, "");
		free(op->target);
		*op = src->ops[i];
	}
	free(src->ops);
	memset(src, 0, sizeof(*src));
}

static int check_hostname(const char *h, agentd_error *err)
{
	size_t n = h ? strlen(h) : 0;
	for (size_t i = 0; i < n; i++)
		if (!(h[i] == '-' || h[i] == '.' || (h[i] >= '0' && h[i] <= '9') ||
		      ((h[i] | 0x20) >= 'a' && (h[i] | 0x20) <= 'z')))
			n = 0;
	return n && n <= 64
		   ? 0
		   : agentd_error_set(err, EINVAL, "hostname: expected 1-64 of [A-Za-z0-9.-]");
}

/* The prologue: rprivate, the scratch tmpfs on the base with the new root, the workdir,
 * /tmp and /dev/shm as its directories, and the root bound onto itself (pivot_root wants
 * a mount). The body then works relative to the new root. */
static void push_prologue(struct mount_plan *p, const struct mount_plan_opts *o,
			  const agentd_limits *l, size_t reserve_bytes, size_t reserve_inodes)
{
	_cleanup_free_ char *root = xasprintf("%s/root", p->base);
	uint64_t size = ((l->max_write_bytes + 4095) & ~4095ULL) + reserve_bytes;
	uint64_t inodes = l->max_write_bytes / 4096;
	inodes = (inodes < 16384 ? 16384 : inodes) + reserve_inodes;
	plan_push(p, MOUNT_OP_PRIVATE, "/");
	struct mount_op *op = plan_push(p, MOUNT_OP_TMPFS, p->base);
	op->flags = MS_NOSUID | MS_NODEV;
	op->data = xasprintf("size=%llu,nr_inodes=%llu,mode=0755",
			     (unsigned long long)(size ? size : 4096), (unsigned long long)inodes);
	op->data_len = strlen(op->data);
	static const struct {
		const char *name;
		mode_t mode;
	} dirs[] = {{"root", 0755}, {"workdir", 0755}, {"tmp", 01777}, {"shm", 01777}};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		_cleanup_free_ char *d = xasprintf("%s/%s", p->base, dirs[i].name);
		op = plan_push(p, MOUNT_OP_DIR, d);
		op->mode = dirs[i].mode;
		if (i == 1 && (o->sandbox_uid || o->sandbox_gid)) {
			op->uid = o->sandbox_uid;
			op->gid = o->sandbox_gid;
		}
	}
	op = plan_push(p, MOUNT_OP_BIND, root);
	op->source = xstrdup(root);
	plan_push(p, MOUNT_OP_ENTER, root);
}

int mount_plan_prepare(const agentd_spec *spec, const struct mount_plan_opts *o,
		       struct mount_plan *plan, agentd_error *err)
{
	memset(plan, 0, sizeof(*plan));
	struct builder b = {.err = err};
	agentd_strv sys = {0};
	struct etc_set etc = {0};
	_cleanup_free_ char *variant = NULL;
	char wd[PATH_MAX];
	int ret = -1;

	const char *want_wd = spec->workdir ? spec->workdir : "/workspace";
	if (!normalize(want_wd, wd, sizeof(wd))) {
		agentd_error_set(err, EINVAL,
				 "workdir: %s: expected an absolute path without \"..\"", want_wd);
		goto out;
	}
	if (strcmp(wd, "/") == 0 || path_within(wd, "/proc") || path_within(wd, "/dev")) {
		agentd_error_set(err, EINVAL, "workdir: %s: would shadow %s", wd,
				 strcmp(wd, "/") == 0	    ? "the root"
				 : path_within(wd, "/proc") ? "/proc"
							    : "/dev");
		goto out;
	}
	if (check_hostname(o->hostname ? o->hostname : "agentd", err) < 0)
		goto out;
	if (o->cache_dir && o->cache_dir[0] != '/') {
		agentd_error_set(err, EINVAL, "cache dir %s: expected an absolute path",
				 o->cache_dir);
		goto out;
	}

	/* The policy's binds first: they decide which system entries they replace. */
	if (add_user_binds(&b, spec) < 0)
		goto out;
	/* A mount point under /etc or /dev must be created: then that tree is built in the
	 * scratch, not bound from the cache. */
	bool user_in_etc = path_below(wd, "/etc"), user_in_dev = false;
	for (size_t i = 0; i < b.n; i++) {
		user_in_etc |= path_below(b.v[i].op.target, "/etc");
		user_in_dev |= path_below(b.v[i].op.target, "/dev");
	}

	landlock_system_ro_paths(&sys);
	add_runtime(&b, &sys);
	etc_collect(&b, wd, o, &sys, &etc);
	if (o->cache_dir && !(user_in_etc && user_in_dev)) {
		char why[512];
		/* No cache (read-only work root...): the same tree, built per sandbox. */
		if (!(variant = cache_variant(o->cache_dir, &etc, why, sizeof(why))))
			plan->warning = xasprintf("cache %s; /etc and /dev built per sandbox", why);
	}
	add_etc(&b, &etc, user_in_etc ? NULL : variant);
	add_dev(&b, user_in_dev ? NULL : variant);
	add_proc(&b);
	add_scratch(&b, wd);

	for (size_t u = 0; u < b.n; u++) {
		if (!b.v[u].user)
			continue;
		for (size_t s = 0; s < b.n; s++)
			if (!b.v[s].user &&
			    (b.v[s].scratch ? strcmp(b.v[s].op.target, b.v[u].op.target) == 0
					    : path_within(b.v[s].op.target, b.v[u].op.target)))
				b.v[s].dropped = true;
	}

	/* Parents first; then everything is created or checked in order. */
	qsort(b.v, b.n, sizeof(*b.v), by_depth);
	for (size_t i = 0; i < b.n; i++)
		if (!b.v[i].dropped && emit(&b, i) < 0)
			goto out;

	if (!(plan->base = choose_base(&b.body, o->base_dir, err)))
		goto out;
	size_t reserve_bytes = 0, reserve_inodes = 16;
	for (size_t i = 0; i < b.body.n; i++) {
		struct mount_op *op = &b.body.ops[i];
		if (op->opflags & OPF_SCRATCH_SOURCE) {
			char *name = op->source;
			op->source = xasprintf("%s/%s", plan->base, name);
			op->opflags &= ~OPF_SCRATCH_SOURCE;
			free(name);
		}
		if (op->kind == MOUNT_OP_DIR || op->kind == MOUNT_OP_FILE ||
		    op->kind == MOUNT_OP_SYMLINK)
			reserve_inodes++;
		if (op->kind == MOUNT_OP_FILE) /* in the scratch's root: not the sandbox's quota */
			reserve_bytes += (op->data_len + 4095) & ~(size_t)4095;
	}
	plan->cache = variant && !(user_in_etc && user_in_dev) ? xstrdup(variant) : NULL;
	push_prologue(plan, o, &spec->limits, reserve_bytes, reserve_inodes);
	plan_append(plan, &b.body);
	plan_push(plan, MOUNT_OP_PIVOT, "/");
	struct mount_op *op = plan_push(plan, MOUNT_OP_SET_ATTR, "/");
	op->attr_set = ATTR_RO;
	ret = 0;
out:
	for (size_t i = 0; i < b.n; i++)
		op_free(&b.v[i].op);
	free(b.v);
	mount_plan_free(&b.body);
	strv_free(&b.made);
	strv_free(&b.runtime);
	strv_free(&sys);
	etc_set_free(&etc);
	if (ret < 0)
		mount_plan_free(plan);
	return ret;
}

void mount_plan_free(struct mount_plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; i < plan->n; i++)
		op_free(&plan->ops[i]);
	free(plan->ops);
	free(plan->base);
	free(plan->cache);
	free(plan->warning);
	memset(plan, 0, sizeof(*plan));
}

void mount_plan_describe(const struct mount_plan *plan, FILE *out)
{
	static const struct {
		uint64_t bit;
		const char *name;
	} attrs[] = {{MOUNT_ATTR_RDONLY, "ro"},
		     {MOUNT_ATTR_NOSUID, "nosuid"},
		     {MOUNT_ATTR_NODEV, "nodev"},
		     {MOUNT_ATTR_NOEXEC, "noexec"}};
	for (size_t i = 0; i < plan->n; i++) {
		const struct mount_op *op = &plan->ops[i];
		fprintf(out, "%-12s %s", op_verb(op->kind), op->target);
		if (op->source)
			fprintf(out, " <- %s%s",
				op->opflags & MOUNT_OPF_SOURCE_IN_ROOT ? "(root)" : "", op->source);
		if (op->kind == MOUNT_OP_SYMLINK)
			fprintf(out, " -> %s", op->data);
		else if (op->kind == MOUNT_OP_FILE)
			fprintf(out, " (%zu bytes, %04o)", op->data_len, (unsigned)op->mode);
		else if (op->kind == MOUNT_OP_DIR)
			fprintf(out, " (%04o)", (unsigned)op->mode);
		else if (op->data)
			fprintf(out, " [%s]", op->data);
		for (size_t a = 0; a < ARRAY_SIZE(attrs); a++)
			if (op->attr_set & attrs[a].bit)
				fprintf(out, "%s%s",
					a == 0 || !(op->attr_set & (attrs[a].bit - 1)) ? " +" : ",",
					attrs[a].name);
		if (op->opflags & MOUNT_OPF_RESOLVE)
			fputs(" (resolved in root)", out);
		if (op->opflags & MOUNT_OPF_OPTIONAL)
			fputs(" (optional)", out);
		if (op->opflags & MOUNT_OPF_RECURSIVE)
			fputs(" (recursive)", out);
		fputc('\n', out);
	}
}
