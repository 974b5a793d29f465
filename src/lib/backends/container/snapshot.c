/* container_snapshot.c: snapshot and restore of a container sandbox's writable state,
 * and the host's way into its root (open_in_sandbox, from the root fd its init sent). */
#include "lib/backends/container/container.h"

/* ------------------------------------------------------------- snapshots
 * The writable state is the scratch tmpfs behind the workdir and /tmp, inside the
 * sandbox's mount namespace. The host reaches it through the init's root fd, resolved with
 * RESOLVE_IN_ROOT and no symlinks, and copies fd-relative without following anything,
 * while the sandbox is frozen. */

int open_in_sandbox(struct ctr *c, const char *path, agentd_error *err)
{
	/* The root its init sent (not /proc/<pid>/root: an unprivileged owner may not open
	 * that of a non-dumpable process). */
	int root = c->root_fd;
	if (root < 0)
		return agentd_error_set(err, ESRCH, "the sandbox root is not known");
	if (sys_pidfd_send_signal(c->init_pidfd, 0) < 0)
		return agentd_error_set(err, ESRCH, "the sandbox is not running");
	while (*path == '/')
		path++;
	int fd = openat_beneath(root, *path ? path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0,
				RESOLVE_NO_SYMLINKS);
	if (fd < 0 && errno == ENOSYS) /* no safe way into a hostile root: refuse */
		return agentd_error_set(err, ENOSYS,
					"open /%s in the sandbox: needs openat2 (Linux 5.6)", path);
	if (fd < 0)
		return agentd_error_errno(err, errno, "open /%s in the sandbox", path);
	return fd;
}

static bool valid_snapshot_id(const char *id)
{
	size_t n = strlen(id);
	if (n != 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

/* The scratch tmpfs belongs to the sandbox's user namespace: only ids mapped there can own
 * files in it, and the snapshot must not be readable by anything the sandbox is not. So the
 * copy runs with this thread's filesystem ids set to the sandbox's host ids (per-thread,
 * undone after). */
struct fsids {
	uid_t uid;
	gid_t gid;
};

static struct fsids become_sandbox_fs(const struct ctr *c)
{
	struct fsids old = {(uid_t)setfsuid(geteuid()), (gid_t)setfsgid(getegid())};
	setfsgid(c->host_gid);
	setfsuid(c->host_uid);
	return old;
}

static void restore_fs(struct fsids old)
{
	setfsuid(old.uid);
	setfsgid(old.gid);
}

/* Freeze for a consistent copy unless the caller already suspended the sandbox. */
static int hold(struct ctr *c, bool *froze, agentd_error *err)
{
	*froze = false;
	if (c->suspended)
		return 0;
	if (cgroup_freeze(c->cg, true, err) < 0)
		return -1;
	*froze = true;
	return 0;
}

static const char *const state_dirs[2] = {"workdir", "tmp"};

/* A snapshot's copy may write at most what is left of the sandbox's snapshot quota
 * (limits.max_snapshot_bytes, host disk allocated by all its snapshots), and no more
 * than its scratch can hold (max_write_bytes, plus 1 MiB of entries). */
static uint64_t snapshot_budget(const agentd_sandbox *sb, const struct ctr *c)
{
	const agentd_limits *l = &sb->spec.limits;
	uint64_t left = l->max_snapshot_bytes > c->snap_bytes ? l->max_snapshot_bytes - c->snap_bytes
							      : 0;
	uint64_t scratch = l->max_write_bytes + (1 << 20);
	return left < scratch ? left : scratch;
}

static int over_quota(const agentd_sandbox *sb, const struct ctr *c, uint64_t more,
		      agentd_error *err)
{
	return agentd_error_set(err, EDQUOT,
				"snapshot refused: the sandbox's snapshots would occupy more "
				"than limits.max_snapshot_bytes (%llu bytes of host disk; %llu in "
				"use by its earlier snapshots%s)",
				(unsigned long long)sb->spec.limits.max_snapshot_bytes,
				(unsigned long long)c->snap_bytes,
				more ? ", this one needs more than is left" : "");
}

/* The snapshot just written, measured: charged to the quota, or refused if over it. */
static int charge_snapshot(const agentd_sandbox *sb, struct ctr *c, int dfd, agentd_error *err)
{
	uint64_t bytes = 0;
	int r = tree_allocated_at(dfd, &bytes);
	if (r < 0)
		return agentd_error_errno(err, -r, "measure the snapshot");
	if (bytes > sb->spec.limits.max_snapshot_bytes - c->snap_bytes)
		return over_quota(sb, c, bytes, err);
	c->snap_bytes += bytes;
	return 0;
}

int ctr_snapshot(agentd_sandbox *sb, const char *name, char **snapshot_id,
			agentd_error *err)
{
	struct ctr *c = sb->priv;
	char id[AGENTD_ID_LEN];
	random_id(id);
	pthread_mutex_lock(&c->lock);
	int ret = -1;
	bool froze = false;
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int dfd = -1;
	uint64_t budget = snapshot_budget(sb, c);
	bool budget_is_quota = budget < sb->spec.limits.max_write_bytes + (1 << 20);
	if (budget == 0) {
		over_quota(sb, c, 0, err);
		goto out;
	}
	if (!c->snap_dir) {
		if (mkdir_p(sb->backend->work_root, 0711) < 0 ||
		    ((c->snap_dir = xasprintf("%s/%s", sb->backend->work_root, sb->id)),
		     mkdir(c->snap_dir, 0700) < 0 && errno != EEXIST)) {
			agentd_error_errno(err, errno, "create snapshot dir");
			free(c->snap_dir);
			c->snap_dir = NULL;
			goto out;
		}
		if (!c->durable) /* a durable sandbox's outlives us, as the sandbox does */
			janitor_watch_dir(c->snap_dir);
	}
	dir = xasprintf("%s/%s", c->snap_dir, id);
	if (mkdir(dir, 0700) < 0 || chown(dir, c->host_uid, c->host_gid) < 0) {
		agentd_error_errno(err, errno, "create %s", dir);
		goto out;
	}
	if (hold(c, &froze, err) < 0)
		goto out;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		agentd_error_errno(err, errno, "open %s", dir);
		goto out;
	}
	if (name && *name) {
		/* The name is informational: the id is what restore takes. */
		int fd = openat(dfd, "name", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0) {
			if (write(fd, name, strlen(name)) < 0) {
				/* nothing to do */
			}
			close(fd);
		}
	}
	const char *paths[2] = {sb->spec.workdir, "/tmp"};
	for (int i = 0; i < 2; i++) {
		_cleanup_close_ int src = open_in_sandbox(c, paths[i], err);
		if (src < 0)
			goto out;
		struct fsids old = become_sandbox_fs(c);
		int r = mkdirat(dfd, state_dirs[i], 0700) < 0 ? -errno : 0;
		_cleanup_close_ int dst =
			r ? -1 : openat(dfd, state_dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (!r)
			r = dst < 0 ? -errno
				    : copy_tree_at(src, dst, (uid_t)-1, (gid_t)-1, &budget);
		restore_fs(old);
		if (r == -EFBIG && budget_is_quota) {
			over_quota(sb, c, 1, err);
			goto out;
		}
		if (r < 0) {
			agentd_error_errno(err, -r, "snapshot %s", paths[i]);
			goto out;
		}
	}
	if (charge_snapshot(sb, c, dfd, err) < 0)
		goto out;
	*snapshot_id = xstrdup(id);
	ret = 0;
out:
	if (froze)
		cgroup_freeze(c->cg, false, NULL);
	if (ret < 0 && dir)
		rm_rf(dir);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int ctr_restore(agentd_sandbox *sb, const char *snapshot_id, agentd_error *err)
{
	struct ctr *c = sb->priv;
	if (!valid_snapshot_id(snapshot_id))
		return agentd_error_set(err, EINVAL, "snapshot id %s: expected 32 hex digits",
					snapshot_id);
	pthread_mutex_lock(&c->lock);
	int ret = -1;
	bool froze = false;
	_cleanup_free_ char *dir = c->snap_dir ? xasprintf("%s/%s", c->snap_dir, snapshot_id)
					       : NULL;
	_cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (dfd < 0) {
		agentd_error_set(err, ENOENT, "no snapshot %s in sandbox %s", snapshot_id, sb->id);
		goto out;
	}
	if (hold(c, &froze, err) < 0)
		goto out;
	uint64_t budget = sb->spec.limits.max_write_bytes + (1 << 20);
	const char *paths[2] = {sb->spec.workdir, "/tmp"};
	for (int i = 0; i < 2; i++) {
		_cleanup_close_ int dst = open_in_sandbox(c, paths[i], err);
		if (dst < 0)
			goto out;
		_cleanup_close_ int src = openat(dfd, state_dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct fsids old = become_sandbox_fs(c);
		int r = src < 0 ? -errno : empty_dir_at(dst);
		if (r == 0)
			r = copy_tree_at(src, dst, (uid_t)-1, (gid_t)-1, &budget);
		restore_fs(old);
		if (r < 0) {
			agentd_error_errno(err, -r, "restore %s", paths[i]);
			goto out;
		}
	}
	ret = 0;
out:
	if (froze)
		cgroup_freeze(c->cg, false, NULL);
	pthread_mutex_unlock(&c->lock);
	return ret;
}
