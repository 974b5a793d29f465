/* mountpoints.c: the mount points an image lacks (/etc/hostname, /etc/hosts, /run...), made
 * in the rootfs by the runtime as host root before the clone, as runc makes them. Inside
 * agentd's user namespace the container's root is an unprivileged host id: it cannot create
 * in a rootfs owned by host root, and an idmapped rootfs (ocirt_jail_idmap_root) is not
 * possible on every filesystem (overlayfs, podman's and containerd's rootfs: EINVAL).
 *
 * The rootfs is hostile (an image's symlinks point anywhere): every parent is resolved
 * beneath the rootfs fd with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS|
 * RESOLVE_NO_SYMLINKS), the last component made by name in it (mkdirat, mknodat: neither
 * follows a symlink), nothing else touched (no chown, no write). What cannot be made here
 * is left to the init, whose plan makes or checks each point the same way and names the
 * mount that fails. */
#include "lib/runtime/runtime.h"

#include "common/kernel.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

static bool mounts_something(enum mount_op_kind k)
{
	switch (k) {
	case MOUNT_OP_TMPFS:
	case MOUNT_OP_MASK_DIR:
	case MOUNT_OP_BIND:
	case MOUNT_OP_DEV_NODE:
	case MOUNT_OP_MASK_FILE:
	case MOUNT_OP_PROC:
	case MOUNT_OP_DEVPTS:
	case MOUNT_OP_FS:
	case MOUNT_OP_OVERLAY:
		return true;
	default:
		return false;
	}
}

/* t lies at or below an earlier op's mount (in [from, to)): it is made in that
 * filesystem by the init, not in the rootfs. */
static bool covered(const struct mount_plan *mp, size_t from, size_t to, const char *t)
{
	for (size_t k = from; k < to; k++) {
		const struct mount_op *m = &mp->ops[k];
		size_t n = strlen(m->target);
		if (mounts_something(m->kind) && !strncmp(t, m->target, n) &&
		    (t[n] == '\0' || t[n] == '/'))
			return true;
	}
	return false;
}

static void make_point(int rootfd, const struct mount_op *op)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(op->target, '/');
	size_t n = (size_t)(slash - op->target);
	if (!slash || n >= sizeof(parent) || !slash[1])
		return;
	memcpy(parent, op->target, n);
	parent[n] = '\0';
	int pfd = openat_beneath(rootfd, n ? parent : "/", O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
				 RESOLVE_NO_SYMLINKS);
	if (pfd < 0)
		return;
	if (op->kind == MOUNT_OP_DIR)
		(void)mkdirat(pfd, slash + 1, op->mode);
	else
		(void)mknodat(pfd, slash + 1, S_IFREG | op->mode, 0);
	close(pfd);
}

void ocirt_jail_make_mount_points(const struct ocirt_jail *j, int rootfd)
{
	const struct mount_plan *mp = &j->mounts;
	size_t body = mp->n;
	for (size_t i = 0; i < mp->n && body == mp->n; i++)
		if (mp->ops[i].kind == MOUNT_OP_ENTER)
			body = i + 1;
	mode_t mask = umask(0);	/* the plan's modes exactly: the caller's umask may be 077 */
	for (size_t i = body; i < mp->n; i++) {
		const struct mount_op *op = &mp->ops[i];
		if ((op->kind == MOUNT_OP_DIR || (op->kind == MOUNT_OP_FILE && !op->data_len)) &&
		    (op->opflags & MOUNT_OPF_RESOLVE) && !covered(mp, body, i, op->target))
			make_point(rootfd, op);
	}
	umask(mask);
}
