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

/* The snapshot's side of one of its directories (dir_fd/name), as a directory fd the
 * sandbox's filesystem ids may write (make: the directory is made) or read. As root, a
 * sandbox's host ids are its own (leased), so the files are stored through a clone of their
 * mount idmapped by the sandbox's user namespace: on disk they carry the ids they have
 * inside (AGENT_ID), and any other sandbox, idmapping them by its own namespace, reads them
 * as its own. Where that is refused (a filesystem without idmapped mounts, a kernel before
 * 5.12) and unprivileged (every sandbox shares the caller's ids), the directory as it is,
 * owned by the sandbox's host ids. *idmapped says which. */
static int open_userns(const struct ctr *c)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)c->init_pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	/* the pid was the init's while its pidfd lives: checked after the open */
	if (fd >= 0 && sys_pidfd_send_signal(c->init_pidfd, 0) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int open_idmapped(const struct ctr *c, int dir_fd, const char *name)
{
	_cleanup_close_ int userns = open_userns(c);
	_cleanup_close_ int tree =
		userns < 0 ? -1 : sys_open_tree(dir_fd, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (tree < 0 || sys_mount_setattr_idmap(tree, userns) < 0)
		return -1;
	return openat(tree, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int snap_side(const struct ctr *c, int dir_fd, const char *name, bool make,
		     bool *idmapped, agentd_error *err)
{
	struct stat st;
	if (make && mkdirat(dir_fd, name, 0700) < 0)
		return agentd_error_errno(err, errno, "snapshot: make %s", name);
	if (!make && fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return agentd_error_errno(err, errno, "snapshot: %s", name);
	*idmapped = false;
	if (!c->unprivileged && (make || st.st_uid != c->host_uid || st.st_gid != c->host_gid)) {
		int fd = -1;
		if (!make || fchownat(dir_fd, name, c->inner_id, c->inner_id, AT_SYMLINK_NOFOLLOW) == 0)
			fd = open_idmapped(c, dir_fd, name);
		if (fd >= 0) {
			*idmapped = true;
			return fd;
		}
	}
	if (make && fchownat(dir_fd, name, c->host_uid, c->host_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return agentd_error_errno(err, errno, "snapshot: chown %s", name);
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? agentd_error_errno(err, errno, "snapshot: open %s", name) : fd;
}

/* What a snapshot may write: max_bytes, the sandbox's own max_snapshot_bytes, and no more
 * than its scratch can hold (max_write_bytes, plus 1 MiB of entries) over what the
 * snapshot it was made from lends it (its overlays' lower layers). */
static uint64_t copy_budget(const agentd_sandbox *sb, uint64_t max_bytes, bool *is_quota)
{
	const agentd_limits *l = &sb->spec.limits;
	const struct ctr *c = sb->priv;
	uint64_t quota = max_bytes < l->max_snapshot_bytes ? max_bytes : l->max_snapshot_bytes;
	uint64_t scratch = l->max_write_bytes + (1 << 20) + c->seed_bytes;
	*is_quota = quota < scratch;
	return *is_quota ? quota : scratch;
}

static int over_quota(uint64_t max_bytes, agentd_error *err)
{
	return agentd_error_set(err, EDQUOT,
				"snapshot refused: it would occupy more than the %llu bytes of "
				"host disk left to it",
				(unsigned long long)max_bytes);
}

/* Sandbox → dir_fd, with the sandbox held (frozen or suspended) and c->lock taken. */
static int copy_out(agentd_sandbox *sb, struct ctr *c, int dir_fd, uint64_t max_bytes,
		    uint64_t *bytes, agentd_error *err)
{
	bool is_quota;
	uint64_t budget = copy_budget(sb, max_bytes, &is_quota);
	if (budget == 0)
		return over_quota(0, err);
	const char *paths[2] = {sb->spec.workdir, "/tmp"};
	for (int i = 0; i < 2; i++) {
		bool idmapped;
		_cleanup_close_ int src = open_in_sandbox(c, paths[i], err);
		_cleanup_close_ int dst =
			src < 0 ? -1 : snap_side(c, dir_fd, state_dirs[i], true, &idmapped, err);
		if (dst < 0)
			return -1;
		struct fsids old = become_sandbox_fs(c);
		int r = copy_tree_at(src, dst, (uid_t)-1, (gid_t)-1, &budget);
		restore_fs(old);
		if (r == -EFBIG && is_quota)
			return over_quota(max_bytes, err);
		if (r < 0)
			return agentd_error_errno(err, -r, "snapshot %s", paths[i]);
	}
	*bytes = 0;
	int r = tree_allocated_at(dir_fd, bytes);
	if (r < 0)
		return agentd_error_errno(err, -r, "measure the snapshot");
	uint64_t quota = max_bytes < sb->spec.limits.max_snapshot_bytes
				 ? max_bytes
				 : sb->spec.limits.max_snapshot_bytes;
	return *bytes > quota ? over_quota(quota, err) : 0;
}

int ctr_snapshot_to(agentd_sandbox *sb, int dir_fd, uint64_t max_bytes, uint64_t *bytes,
		    agentd_error *err)
{
	struct ctr *c = sb->priv;
	pthread_mutex_lock(&c->lock);
	bool froze = false;
	int ret = hold(c, &froze, err);
	if (ret == 0)
		ret = copy_out(sb, c, dir_fd, max_bytes, bytes, err);
	if (froze)
		cgroup_freeze(c->cg, false, NULL);
	pthread_mutex_unlock(&c->lock);
	if (ret < 0)
		empty_dir_at(dir_fd); /* the caller's directory, as it was */
	return ret;
}

int ctr_restore_from(agentd_sandbox *sb, int dir_fd, agentd_error *err)
{
	struct ctr *c = sb->priv;
	pthread_mutex_lock(&c->lock);
	int ret = -1;
	bool froze = false;
	if (hold(c, &froze, err) < 0)
		goto out;
	uint64_t budget = sb->spec.limits.max_write_bytes + (1 << 20);
	const char *paths[2] = {sb->spec.workdir, "/tmp"};
	for (int i = 0; i < 2; i++) {
		bool idmapped;
		_cleanup_close_ int dst = open_in_sandbox(c, paths[i], err);
		_cleanup_close_ int src =
			dst < 0 ? -1 : snap_side(c, dir_fd, state_dirs[i], false, &idmapped, err);
		if (src < 0)
			goto out;
		struct fsids old = become_sandbox_fs(c);
		int r = empty_dir_at(dst);
		if (r == -EXDEV)
			r = 0;	/* a policy's bind beneath stays: not the sandbox's state */
		if (r == -EXDEV)
			r = 0;	/* a policy's bind beneath stays: not the sandbox's state */
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

/* The library's own snapshots, kept under <work_root>/<id>/<snapshot id> and charged to the
 * sandbox's limits.max_snapshot_bytes for as long as it lives; gone with it. */
int ctr_snapshot(agentd_sandbox *sb, const char *name, char **snapshot_id,
			agentd_error *err)
{
	struct ctr *c = sb->priv;
	char id[AGENTD_ID_LEN];
	random_id(id);
	const agentd_limits *l = &sb->spec.limits;
	uint64_t left = l->max_snapshot_bytes > c->snap_bytes ? l->max_snapshot_bytes - c->snap_bytes
							      : 0;
	if (left == 0)
		return agentd_error_set(err, EDQUOT,
					"snapshot refused: the sandbox's snapshots would occupy "
					"more than limits.max_snapshot_bytes (%llu bytes of host "
					"disk; %llu in use by its earlier snapshots)",
					(unsigned long long)l->max_snapshot_bytes,
					(unsigned long long)c->snap_bytes);
	pthread_mutex_lock(&c->lock);
	if (!c->snap_dir) {
		if (mkdir_p(sb->backend->work_root, 0711) < 0 ||
		    ((c->snap_dir = xasprintf("%s/%s", sb->backend->work_root, sb->id)),
		     mkdir(c->snap_dir, 0700) < 0 && errno != EEXIST)) {
			agentd_error_errno(err, errno, "create snapshot dir");
			free(c->snap_dir);
			c->snap_dir = NULL;
			pthread_mutex_unlock(&c->lock);
			return -1;
		}
		if (!c->durable) /* a durable sandbox's outlives us, as the sandbox does */
			janitor_watch_dir(c->snap_dir);
	}
	_cleanup_free_ char *dir = xasprintf("%s/%s", c->snap_dir, id);
	pthread_mutex_unlock(&c->lock);
	if (mkdir(dir, 0700) < 0)
		return agentd_error_errno(err, errno, "create %s", dir);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint64_t bytes = 0;
	if (dfd < 0) {
		agentd_error_errno(err, errno, "open %s", dir);
		rm_rf(dir);
		return -1;
	}
	if (name && *name) {
		/* The name is informational: the id is what restore takes. */
		_cleanup_close_ int fd =
			openat(dfd, "name", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write_all(fd, name, strlen(name)) < 0) {
			agentd_error_errno(err, errno, "write %s/name", dir);
			rm_rf(dir);
			return -1;
		}
	}
	if (ctr_snapshot_to(sb, dfd, left, &bytes, err) < 0) {
		if (err && err->code == EDQUOT)
			agentd_error_set(err, EDQUOT,
					 "snapshot refused: the sandbox's snapshots would occupy "
					 "more than limits.max_snapshot_bytes (%llu bytes of host "
					 "disk; %llu in use by its earlier snapshots, this one "
					 "needs more than is left)",
					 (unsigned long long)l->max_snapshot_bytes,
					 (unsigned long long)c->snap_bytes);
		rm_rf(dir);
		return -1;
	}
	pthread_mutex_lock(&c->lock);
	c->snap_bytes += bytes;
	pthread_mutex_unlock(&c->lock);
	*snapshot_id = xstrdup(id);
	return 0;
}

int ctr_restore(agentd_sandbox *sb, const char *snapshot_id, agentd_error *err)
{
	struct ctr *c = sb->priv;
	if (!valid_snapshot_id(snapshot_id))
		return agentd_error_set(err, EINVAL, "snapshot id %s: expected 32 hex digits",
					snapshot_id);
	pthread_mutex_lock(&c->lock);
	_cleanup_free_ char *dir = c->snap_dir ? xasprintf("%s/%s", c->snap_dir, snapshot_id)
					       : NULL;
	pthread_mutex_unlock(&c->lock);
	_cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (dfd < 0)
		return agentd_error_set(err, ENOENT, "no snapshot %s in sandbox %s", snapshot_id,
					sb->id);
	return ctr_restore_from(sb, dfd, err);
}
