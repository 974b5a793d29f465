/* snapshot.c: snapshot and restore of an oci sandbox's writable state — its workdir and
 * /tmp, the container's tmpfs mounts — reached through the root fd held since create
 * (RESOLVE_IN_ROOT, no symlink followed) and copied fd-relative while the container is
 * frozen, with this thread's filesystem ids those of the container's user. */
#include "lib/backends/oci/oci.h"

#include <fcntl.h>
#include <sys/stat.h>

static const char *const state_dirs[2] = {"workdir", "tmp"};

static int open_state(struct oci_ctr *c, const char *path, agentd_error *err)
{
	if (c->root_fd < 0 || c->init_pid <= 0 || kill(c->init_pid, 0) < 0)
		return agentd_error_set(err, ESRCH, "the sandbox is not running");
	while (*path == '/')
		path++;
	int fd = openat_beneath(c->root_fd, *path ? path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC,
				0, RESOLVE_NO_SYMLINKS);
	if (fd < 0)
		return agentd_error_errno(err, errno, "open /%s in the sandbox", path);
	return fd;
}

/* Frozen for a consistent copy unless suspended already; c->lock held. */
static int hold(struct oci_ctr *c, bool *froze, agentd_error *err)
{
	*froze = false;
	if (c->suspended)
		return 0;
	if (cgroup_freeze(c->cg, true, err) < 0)
		return -1;
	*froze = true;
	return 0;
}

static int side(const struct oci_ctr *c, int dir_fd, const char *name, bool make,
		agentd_error *err)
{
	if (make && (mkdirat(dir_fd, name, 0700) < 0 ||
		     fchownat(dir_fd, name, c->cfg.uid, c->cfg.gid, AT_SYMLINK_NOFOLLOW) < 0))
		return agentd_error_errno(err, errno, "snapshot: make %s", name);
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? agentd_error_errno(err, errno, "snapshot: open %s", name) : fd;
}

/* Sandbox (to) or snapshot (!to) into the other, held. */
static int copy(agentd_sandbox *sb, struct oci_ctr *c, int dir_fd, bool to, uint64_t budget,
		agentd_error *err)
{
	const char *paths[2] = {sb->spec.workdir, "/tmp"};
	for (int i = 0; i < 2; i++) {
		_cleanup_close_ int in = open_state(c, paths[i], err);
		_cleanup_close_ int snap = in < 0 ? -1 : side(c, dir_fd, state_dirs[i], to, err);
		if (snap < 0)
			return -1;
		/* nothing the container's user could not read or write is */
		struct fsid_save old = fsids_enter(c->cfg.uid, c->cfg.gid);
		int r = to ? 0 : empty_dir_at(in);
		if (r == -EXDEV)
			r = 0;	/* a policy's bind beneath stays: not the sandbox's state */
		if (r == 0)
			r = to ? copy_tree_at(in, snap, (uid_t)-1, (gid_t)-1, &budget)
			       : copy_tree_at(snap, in, (uid_t)-1, (gid_t)-1, &budget);
		fsids_leave(old);
		if (r == -EFBIG && to)
			return agentd_error_set(err, EDQUOT,
						"snapshot refused: it would occupy more than the "
						"bytes of host disk left to it");
		if (r < 0)
			return agentd_error_errno(err, -r, "%s %s", to ? "snapshot" : "restore",
						  paths[i]);
	}
	return 0;
}

static int held_copy(agentd_sandbox *sb, int dir_fd, bool to, uint64_t budget,
		     agentd_error *err)
{
	struct oci_ctr *c = sb->priv;
	pthread_mutex_lock(&c->lock);
	bool froze = false;
	int r = hold(c, &froze, err);
	if (r == 0)
		r = copy(sb, c, dir_fd, to, budget, err);
	if (froze)
		cgroup_freeze(c->cg, false, NULL);
	pthread_mutex_unlock(&c->lock);
	return r;
}

int oci_snapshot_to(agentd_sandbox *sb, int dir_fd, uint64_t max_bytes, uint64_t *bytes,
		    agentd_error *err)
{
	const agentd_limits *l = &sb->spec.limits;
	uint64_t quota = max_bytes < l->max_snapshot_bytes ? max_bytes : l->max_snapshot_bytes;
	/* both tmpfs mounts full, and their entries */
	uint64_t scratch = 2 * l->max_write_bytes + (1 << 20);
	int r = held_copy(sb, dir_fd, true, quota < scratch ? quota : scratch, err);
	if (r == 0) {
		*bytes = 0;
		if ((r = tree_allocated_at(dir_fd, bytes)) < 0)
			r = agentd_error_errno(err, -r, "measure the snapshot");
		else if (*bytes > quota)
			r = agentd_error_set(err, EDQUOT,
					     "snapshot refused: it would occupy more than the %llu "
					     "bytes of host disk left to it",
					     (unsigned long long)quota);
	}
	if (r < 0)
		empty_dir_at(dir_fd); /* the caller's directory, as it was */
	return r;
}

int oci_restore_from(agentd_sandbox *sb, int dir_fd, agentd_error *err)
{
	return held_copy(sb, dir_fd, false, 2 * sb->spec.limits.max_write_bytes + (1 << 20), err);
}
