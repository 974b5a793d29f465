/* plan.c: the parent side of the mount plan: mount_plan_prepare (checks, entries, order,
 * prologue), the operations and paths the plan files share, free and describe. */
#include "lib/jail/mounts/mounts_internal.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/syscall.h>

const char *mount_op_verb(enum mount_op_kind k)
{
	static const char *const verbs[] = {
	    [MOUNT_OP_PRIVATE] = "make-private",
	    [MOUNT_OP_TMPFS] = "tmpfs",
	    [MOUNT_OP_DIR] = "mkdir",
	    [MOUNT_OP_FILE] = "create",
	    [MOUNT_OP_COPY] = "copy",
	    [MOUNT_OP_SYMLINK] = "symlink",
	    [MOUNT_OP_BIND] = "bind",
	    [MOUNT_OP_DEV_NODE] = "bind-dev",
	    [MOUNT_OP_OVERLAY] = "overlay",
	    [MOUNT_OP_PROC] = "proc",
	    [MOUNT_OP_DEVPTS] = "devpts",
	    [MOUNT_OP_MASK_FILE] = "mask",
	    [MOUNT_OP_MASK_DIR] = "mask-dir",
	    [MOUNT_OP_SET_ATTR] = "setattr",
	    [MOUNT_OP_ENTER] = "enter",
	    [MOUNT_OP_PIVOT] = "pivot_root",
	    [MOUNT_OP_FS] = "mount",
	};
	return (size_t)k < ARRAY_SIZE(verbs) && verbs[k] ? verbs[k] : "?";
}

static void op_free(struct mount_op *op)
{
	free(op->source);
	free(op->target);
	free(op->data);
}

struct mount_op *plan_push(struct mount_plan *p, enum mount_op_kind k, const char *target)
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

struct mount_op *mount_plan_push(struct mount_plan *plan, enum mount_op_kind k,
				 const char *target)
{
	return plan_push(plan, k, target);
}

void mount_plan_append(struct mount_plan *dst, struct mount_plan *src)
{
	plan_append(dst, src);
}

char *mount_plan_choose_base(const struct mount_plan *body, const char *want,
			     agentd_error *err)
{
	return choose_base(body, want, err);
}

void op_set_data(struct mount_op *op, const char *data, size_t len)
{
	op->data = xmalloc(len + 1);
	memcpy(op->data, data, len);
	op->data[len] = '\0';
	op->data_len = len;
}

/* ---------------------------------------------------------------- paths */

/* Canonical spelling of an absolute path: no "//", "." or trailing "/". ".." is refused: a
 * policy must not depend on how a path resolves. */
bool path_normalize(const char *in, char *out, size_t size)
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

bool path_within(const char *p, const char *dir) /* p is dir or below it */
{
	if (strcmp(dir, "/") == 0)
		return true;
	size_t n = strlen(dir);
	return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

bool path_below(const char *p, const char *dir)
{
	return strcmp(p, dir) != 0 && path_within(p, dir);
}

size_t path_depth(const char *p)
{
	size_t d = 0;
	for (; *p; p++)
		d += *p == '/';
	return p[-1] == '/' ? 0 : d; /* "/" is 0 */
}

/* ---------------------------------------------------------------- build */

void plan_append(struct mount_plan *dst, struct mount_plan *src)
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

/* issue 12: snapshots. The workdir and tmp directories of the scratch as overlays: the
 * lower layer a tree of the caller's attached at lo-NAME, the upper one up-NAME (with the
 * mode and owner the plain directory has), overlayfs's work directory wk-NAME. user.*
 * xattrs: the mount is made in the sandbox's user namespace. */
static void push_overlays(struct mount_plan *p, const struct mount_plan_opts *o)
{
	static const struct {
		const char *name;
		mode_t mode;
	} dirs[] = {{"workdir", 0755}, {"tmp", 01777}};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		_cleanup_free_ char *lo = xasprintf("%s/lo-%s", p->base, dirs[i].name);
		_cleanup_free_ char *up = xasprintf("%s/up-%s", p->base, dirs[i].name);
		_cleanup_free_ char *wk = xasprintf("%s/wk-%s", p->base, dirs[i].name);
		_cleanup_free_ char *at = xasprintf("%s/%s", p->base, dirs[i].name);
		plan_push(p, MOUNT_OP_DIR, lo)->mode = 0700;
		struct mount_op *op = plan_push(p, MOUNT_OP_DIR, up);
		op->mode = dirs[i].mode;
		if (i == 0 && (o->sandbox_uid || o->sandbox_gid)) {
			op->uid = o->sandbox_uid;
			op->gid = o->sandbox_gid;
		}
		plan_push(p, MOUNT_OP_DIR, wk)->mode = 0700;
		op = plan_push(p, MOUNT_OP_OVERLAY, at);
		op->source = xstrdup(lo);
		op->flags = MS_NOSUID | MS_NODEV;
		op->data = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s,userxattr", lo, up, wk);
		op->data_len = strlen(op->data);
	}
}

void mount_plan_set_lowers(struct mount_plan *plan, const int lowers[2])
{
	size_t k = 0;
	for (size_t i = 0; i < plan->n && k < 2; i++)
		if (plan->ops[i].kind == MOUNT_OP_OVERLAY && plan->ops[i].source &&
		    plan->source_fds)
			plan->source_fds[i] = lowers[k++];
	for (; k < 2; k++)
		close(lowers[k]);
}

/* The prologue: rprivate, the scratch tmpfs on the base with the new root, the workdir,
 * /tmp and /dev/shm as its directories, and the root bound onto itself (pivot_root wants
 * a mount). The body then works relative to the new root. */
static void push_prologue(struct mount_plan *p, const struct mount_plan_opts *o,
			  const agentd_limits *l, size_t reserve_bytes, size_t reserve_inodes,
			  struct mount_plan *body)
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
	if (o->overlay_scratch)
		push_overlays(p, o);
	if (o->image_layers) { /* issue 13: img-root */
		push_image_root(p, o, body);
		return;
	}
	op = plan_push(p, MOUNT_OP_BIND, root);
	op->source = xstrdup(root);
	plan_push(p, MOUNT_OP_ENTER, root);
}

/* The request's workdir (canonical, into wd), hostname and cache dir, checked first. */
static int check_request(const agentd_spec *spec, const struct mount_plan_opts *o, char *wd,
			 size_t wd_size, agentd_error *err)
{
	const char *want_wd = spec->workdir ? spec->workdir : "/workspace";
	if (!path_normalize(want_wd, wd, wd_size))
		return agentd_error_set(
		    err, EINVAL, "workdir: %s: expected an absolute path without \"..\"", want_wd);
	if (strcmp(wd, "/") == 0 || path_within(wd, "/proc") || path_within(wd, "/dev"))
		return agentd_error_set(err, EINVAL, "workdir: %s: would shadow %s", wd,
					strcmp(wd, "/") == 0	   ? "the root"
					: path_within(wd, "/proc") ? "/proc"
								   : "/dev");
	if (check_hostname(o->hostname ? o->hostname : "agentd", err) < 0)
		return -1;
	if (o->cache_dir && o->cache_dir[0] != '/')
		return agentd_error_set(err, EINVAL, "cache dir %s: expected an absolute path",
					o->cache_dir);
	return 0;
}

/* The system's entries: /usr..., /etc and /dev (directories of the scratch root, /etc's
 * files copied from the cache's pack where there is one), /proc, the scratch directories.
 * plan->cache, ->pack and ->warning say what came of the cache. */
static void add_system(struct builder *b, const struct mount_plan_opts *o, const char *wd,
		       struct mount_plan *plan)
{
	agentd_strv sys = {0};
	struct etc_set etc = {0};
	char *variant = NULL;
	landlock_system_ro_paths(&sys);
	if (!o->image_layers) /* issue 13: an image has its own */
		add_runtime(b, &sys);
	etc_collect(b, wd, o, &sys, &etc);
	if (o->cache_dir && !o->image_layers) {
		char why[512];
		/* No cache (read-only work root...): the files bound one by one. */
		if (!(variant = cache_variant(o->cache_dir, &etc, why, sizeof(why))))
			plan->warning = xasprintf("cache %s; /etc's files bound one by one", why);
	}
	if (variant)
		plan->pack = xasprintf("%s/etc.pack", variant);
	add_etc(b, &etc, plan->pack);
	add_dev(b);
	add_proc(b);
	add_scratch(b, wd);
	plan->cache = variant;
	strv_free(&sys);
	etc_set_free(&etc);
}

/* A policy's bind replaces the system entries at or below its target (the scratch ones only
 * at an equal target). */
static void drop_replaced(struct builder *b)
{
	for (size_t u = 0; u < b->n; u++) {
		if (!b->v[u].user)
			continue;
		for (size_t s = 0; s < b->n; s++)
			if (!b->v[s].user &&
			    (b->v[s].scratch ? strcmp(b->v[s].op.target, b->v[u].op.target) == 0
					     : path_within(b->v[s].op.target, b->v[u].op.target)))
				b->v[s].dropped = true;
	}
}

/* Scratch binds get their directory of the scratch on base; what the body creates lives in
 * the scratch's root, outside the sandbox's quota: reserve room for it. */
static void place_scratch(struct mount_plan *body, const char *base, size_t *reserve_bytes,
			  size_t *reserve_inodes)
{
	for (size_t i = 0; i < body->n; i++) {
		struct mount_op *op = &body->ops[i];
		if (op->opflags & OPF_SCRATCH_SOURCE) {
			char *name = op->source;
			op->source = xasprintf("%s/%s", base, name);
			op->opflags &= ~OPF_SCRATCH_SOURCE;
			free(name);
		}
		if (op->kind == MOUNT_OP_DIR || op->kind == MOUNT_OP_FILE ||
		    op->kind == MOUNT_OP_COPY || op->kind == MOUNT_OP_SYMLINK)
			(*reserve_inodes)++;
		/* in the scratch's root: not the sandbox's quota */
		if (op->kind == MOUNT_OP_FILE || op->kind == MOUNT_OP_COPY)
			*reserve_bytes += (op->data_len + 4095) & ~(size_t)4095;
	}
}

static void builder_free(struct builder *b)
{
	for (size_t i = 0; i < b->n; i++)
		op_free(&b->v[i].op);
	free(b->v);
	mount_plan_free(&b->body);
	strv_free(&b->made);
	strv_free(&b->runtime);
}

/* The workdir is made as a directory: it cannot be, or be below, a file or a symlink of the
 * sandbox's root (/etc/passwd, /etc/mtab): the caller's mistake, said before any clone. */
static int check_workdir_place(const struct builder *b, const char *wd, agentd_error *err)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct entry *e = &b->v[i];
		bool file = e->op.kind == MOUNT_OP_FILE || e->op.kind == MOUNT_OP_COPY ||
			    e->op.kind == MOUNT_OP_SYMLINK || (e->mount && !e->dir);
		if (!e->dropped && !e->scratch && file && path_within(wd, e->op.target))
			return agentd_error_set(err, EINVAL,
						"workdir: %s: %s is a file in the sandbox, not a "
						"directory",
						wd, e->op.target);
	}
	return 0;
}

int mount_plan_prepare(const agentd_spec *spec, const struct mount_plan_opts *o,
		       struct mount_plan *plan, agentd_error *err)
{
	memset(plan, 0, sizeof(*plan));
	plan->pack_fd = -1;
	struct builder b = {.err = err};
	char wd[PATH_MAX];
	int ret = -1;
	/* The policy's binds first: they decide which system entries they replace. */
	if (check_request(spec, o, wd, sizeof(wd), err) < 0 || add_user_binds(&b, spec) < 0)
		goto out;
	add_system(&b, o, wd, plan);
	drop_replaced(&b);
	if (check_workdir_place(&b, wd, err) < 0)
		goto out;
	if (emit_all(&b) < 0 || !(plan->base = choose_base(&b.body, o->base_dir, err)))
		goto out;
	size_t reserve_bytes = 0, reserve_inodes = 16;
	place_scratch(&b.body, plan->base, &reserve_bytes, &reserve_inodes);
	/* issue 12: snapshots. Seeded by a snapshot, the workdir and /tmp hold the sandbox's
	 * files (hostile) before anything is mounted there: what the plan makes or mounts
	 * beneath them is resolved in the new root with no symlink at all (apply.c). */
	if (o->overlay_scratch)
		for (size_t i = 0; i < b.body.n; i++)
			if (path_within(b.body.ops[i].target, wd) ||
			    path_within(b.body.ops[i].target, "/tmp"))
				b.body.ops[i].opflags |= MOUNT_OPF_RESOLVE;
	push_prologue(plan, o, &spec->limits, reserve_bytes, reserve_inodes, &b.body);
	plan_append(plan, &b.body);
	plan_push(plan, MOUNT_OP_PIVOT, "/");
	plan_push(plan, MOUNT_OP_SET_ATTR, "/")->attr_set =
	    o->image_layers && o->writable_root ? ATTR_RW : ATTR_RO;
	ret = 0;
out:
	builder_free(&b);
	if (ret < 0)
		mount_plan_free(plan);
	return ret;
}

static bool host_source(const struct mount_plan *plan, const struct mount_op *op)
{
	return (op->kind == MOUNT_OP_BIND || op->kind == MOUNT_OP_DEV_NODE ||
		op->kind == MOUNT_OP_MASK_FILE) &&
	       op->source && !(op->opflags & MOUNT_OPF_SOURCE_IN_ROOT) &&
	       !(plan->base && path_within(op->source, plan->base));
}

/* The policy's source as the sandbox's user: this thread's fs ids and groups only (raw
 * setgroups: glibc's would change every thread), restored after. */
static int open_tree_as(const char *src, unsigned flags, uid_t uid, gid_t gid)
{
	gid_t groups[64];
	int ng = getgroups(ARRAY_SIZE(groups), groups);
	if (ng < 0 || syscall(SYS_setgroups, 0, NULL) < 0)
		return -1;
	uid_t old_uid = (uid_t)setfsuid(uid);
	gid_t old_gid = (gid_t)setfsgid(gid);
	int fd = sys_open_tree(AT_FDCWD, src, flags);
	int e = errno;
	setfsuid(old_uid);
	setfsgid(old_gid);
	if (syscall(SYS_setgroups, ng, groups) < 0)
		abort(); /* this thread must not go on without its groups */
	errno = e;
	return fd;
}

void mount_plan_open_sources(struct mount_plan *plan, uid_t uid, gid_t gid)
{
	bool trees = true;
	plan->source_fds = xmalloc(plan->n * sizeof(int) + 1);
	for (size_t i = 0; i < plan->n; i++)
		plan->source_fds[i] = -1;
	plan->pack_fd = plan->pack ? open(plan->pack, O_RDONLY | O_NOCTTY | O_CLOEXEC) : -1;
	for (size_t i = 0; i < plan->n && trees; i++) {
		const struct mount_op *op = &plan->ops[i];
		if (!host_source(plan, op))
			continue;
		unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
				 (op->kind == MOUNT_OP_BIND ? AT_RECURSIVE : 0);
		int fd = op->opflags & MOUNT_OPF_POLICY
			     ? open_tree_as(op->source, flags, uid, gid)
			     : sys_open_tree(AT_FDCWD, op->source, flags);
		if (fd < 0 && (errno == ENOSYS || errno == EPERM))
			trees = false; /* binds by path, all of them */
		else
			plan->source_fds[i] = fd;
	}
}

void mount_plan_free(struct mount_plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; plan->source_fds && i < plan->n; i++)
		if (plan->source_fds[i] >= 0)
			close(plan->source_fds[i]);
	if (plan->source_fds && plan->pack_fd >= 0)
		close(plan->pack_fd);
	free(plan->source_fds);
	for (size_t i = 0; i < plan->n; i++)
		op_free(&plan->ops[i]);
	free(plan->ops);
	free(plan->base);
	free(plan->cache);
	free(plan->pack);
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
		fprintf(out, "%-12s %s", mount_op_verb(op->kind), op->target);
		if (op->source)
			fprintf(out, " <- %s%s",
				op->opflags & MOUNT_OPF_SOURCE_IN_ROOT ? "(root)" : "", op->source);
		if (op->kind == MOUNT_OP_SYMLINK)
			fprintf(out, " -> %s", op->data);
		else if (op->kind == MOUNT_OP_FILE)
			fprintf(out, " (%zu bytes, %04o)", op->data_len, (unsigned)op->mode);
		else if (op->kind == MOUNT_OP_COPY)
			fprintf(out, " [%llu, +%zu] (%04o)", (unsigned long long)op->offset,
				op->data_len, (unsigned)op->mode);
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
		if (op->opflags & MOUNT_OPF_COPYUP)	/* issue 16: rt-gaps */
			fputs(" (copy up)", out);
		fputc('\n', out);
	}
}
