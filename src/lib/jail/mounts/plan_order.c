/* plan_order.c: the entries in order (parents first), each mount point created in our own
 * trees or checked in host ones, and the base the scratch tmpfs covers, clear of them all. */
#include "lib/jail/mounts/mounts_internal.h"

#include <limits.h>
#include <sys/stat.h>

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
		op_set_data(dst, src->data, src->data_len);
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

/* Nothing is created on the host: the mount point of e in the host tree bound by c must be
 * there, as what it is. */
static int check_host_point(struct builder *b, const struct entry *e, const struct entry *c)
{
	const char *t = e->op.target, *top = c->op.target;
	_cleanup_free_ char *host = xasprintf("%s%s", c->op.source, t + strlen(top));
	struct stat st;
	if (!e->mount)
		return agentd_error_set(b->err, EINVAL,
					"%s: %s: cannot be created inside %s (bound from %s)",
					e->label, t, top, c->op.source);
	if (lstat(host, &st) < 0)
		return agentd_error_set(b->err, errno,
					"%s: %s: no mount point %s in %s (bound from %s); "
					"agentd creates none on the host",
					e->label, t, host, top, c->op.source);
	if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode) != !e->dir)
		return agentd_error_set(b->err, EINVAL, "%s: %s: mount point %s is %s", e->label, t,
					host,
					S_ISLNK(st.st_mode) ? "a symlink"
					: e->dir	    ? "not a directory"
							    : "a directory");
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
	case TREE_HOST:
		if (check_host_point(b, e, c) < 0)
			return -1;
		e->op.opflags |= MOUNT_OPF_RESOLVE;
		break;
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

/* Parents first; then everything is created or checked in order. */
int emit_all(struct builder *b)
{
	qsort(b->v, b->n, sizeof(*b->v), by_depth);
	for (size_t i = 0; i < b->n; i++)
		if (!b->v[i].dropped && emit(b, i) < 0)
			return -1;
	return 0;
}

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
char *choose_base(const struct mount_plan *body, const char *want, agentd_error *err)
{
	static const char *const candidates[] = {"/tmp", "/mnt",  "/media",   "/srv",  "/opt",
						 "/run", "/home", "/var/tmp", "/boot", "/root"};
	char b[PATH_MAX];
	if (want) {
		if (!path_normalize(want, b, sizeof(b)) || strcmp(b, "/") == 0 ||
		    !base_clear(body, b)) {
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
