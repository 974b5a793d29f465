/* image.c: issue 13, a root that is an image: the prologue that stacks its layers (detached
 * trees the caller gives) under a skeleton of the plan's own mount points as an overlay. */
#include "lib/jail/mounts/mounts_internal.h"

#include <sys/mount.h>

/* A mount of the body (not a directory, file or symlink it creates). */
static bool op_mounts(const struct mount_op *op)
{
	return op->kind != MOUNT_OP_DIR && op->kind != MOUNT_OP_FILE && op->kind != MOUNT_OP_COPY &&
	       op->kind != MOUNT_OP_SYMLINK;
}

/* The body's creations in the root's own tree (under no mount of the body) go to the
 * skeleton, the rest stays: every mount point of the root is then a directory or file of
 * the overlay's top layer, whatever the image holds at that path (a symlink of a hostile
 * image is covered, never followed), and /etc/hostname, hosts and resolv.conf are the
 * plan's over the image's. Order is kept in each. */
static void split_skeleton(struct mount_plan *body, struct mount_plan *skel)
{
	size_t kept = 0;
	for (size_t i = 0; i < body->n; i++) {
		struct mount_op *op = &body->ops[i];
		bool in_mount = op_mounts(op);
		for (size_t j = 0; j < i && !in_mount; j++)
			in_mount =
			    op_mounts(&body->ops[j]) && path_below(op->target, body->ops[j].target);
		if (in_mount) {
			body->ops[kept++] = *op;
			continue;
		}
		struct mount_op *dst = plan_push(skel, op->kind, "");
		free(dst->target);
		*dst = *op;
	}
	body->n = kept;
}

static void push_dir(struct mount_plan *p, const char *path, mode_t mode)
{
	plan_push(p, MOUNT_OP_DIR, path)->mode = mode;
}

/* After the scratch's directories (push_prologue): the layers attached at lyr/N, the
 * skeleton made in skel/, the overlay lowerdir=skel:lyr/N-1:...:lyr/0 (with up-root and
 * wk-root when writable) at root/, entered. user.* xattrs: the overlay is mounted in the
 * sandbox's user namespace, as the store writes opaque directories. */
void push_image_root(struct mount_plan *p, const struct mount_plan_opts *o, struct mount_plan *body)
{
	struct mount_plan skel = {0};
	split_skeleton(body, &skel);
	_cleanup_free_ char *sk = xasprintf("%s/skel", p->base);
	_cleanup_free_ char *lyr = xasprintf("%s/lyr", p->base);
	_cleanup_free_ char *root = xasprintf("%s/root", p->base);
	push_dir(p, sk, 0755);
	push_dir(p, lyr, 0700);
	size_t len = 0, cap = 64 + strlen(sk) + o->image_layers * (strlen(lyr) + 24);
	_cleanup_free_ char *lower = xmalloc(cap);
	len += (size_t)snprintf(lower + len, cap - len, "lowerdir=%s", sk);
	for (size_t i = 0; i < o->image_layers; i++) {
		_cleanup_free_ char *d = xasprintf("%s/%zu", lyr, i);
		push_dir(p, d, 0700);
		plan_push(p, MOUNT_OP_BIND, d)->opflags = MOUNT_OPF_LAYER;
	}
	for (size_t i = o->image_layers; i-- > 0;)
		len += (size_t)snprintf(lower + len, cap - len, ":%s/%zu", lyr, i);
	plan_push(p, MOUNT_OP_ENTER, sk);
	plan_append(p, &skel);
	plan_push(p, MOUNT_OP_ENTER, "/"); /* targets absolute again */
	_cleanup_free_ char *data = NULL;
	if (o->writable_root) {
		_cleanup_free_ char *up = xasprintf("%s/up-root", p->base);
		_cleanup_free_ char *wk = xasprintf("%s/wk-root", p->base);
		struct mount_op *op = plan_push(p, MOUNT_OP_DIR, up);
		op->mode = 0755;
		op->uid = o->sandbox_uid; /* the root directory shows its upper's owner */
		op->gid = o->sandbox_gid;
		push_dir(p, wk, 0700);
		data = xasprintf("%s,upperdir=%s,workdir=%s,userxattr", lower, up, wk);
	} else {
		data = xasprintf("%s,userxattr", lower);
	}
	struct mount_op *op = plan_push(p, MOUNT_OP_OVERLAY, root);
	op->flags = MS_NOSUID | MS_NODEV;
	op_set_data(op, data, strlen(data));
	plan_push(p, MOUNT_OP_ENTER, root);
}

void mount_plan_set_layers(struct mount_plan *plan, const int *layers, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < plan->n && k < n; i++)
		if ((plan->ops[i].opflags & MOUNT_OPF_LAYER) && plan->source_fds)
			plan->source_fds[i] = layers[k++];
	for (; k < n; k++)
		close(layers[k]);
}
