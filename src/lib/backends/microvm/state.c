/* state.c: a micro-VM's suspend/resume and the snapshots of its writable state
 * (state.h, docs/microvm.md#lifecycle).
 *
 * Suspend stops the vCPUs (QMP stop), then freezes QEMU's cgroup as a backstop: a QEMU
 * whose monitor a hostile guest could have confused still gets no CPU. Resume undoes both
 * in the other order (a frozen QEMU cannot answer QMP).
 *
 * Snapshots copy the sandbox's scratch (its workdir/ and tmp/, shared into the guest by
 * virtiofs: share.h), through the directory fd the host opened before any guest code ran,
 * fd-relative and without following any link the guest planted (copy_tree_at: a symlink is
 * copied as a symlink), bounded by max_snapshot_bytes: the container's layout, so either
 * backend restores the other's. The guest syncs and freezes its commands first (GP_FREEZE)
 * and thaws them after (GP_THAW). */
#include "lib/backends/microvm/state.h"
#include "lib/backends/microvm/share.h"

#define QMP_MS 5000
#define GUEST_MS 30000

/* The jail's cgroup: QEMU and its helpers (the kill unit below it has no freezer of its
 * own); the jail's init keeps no state a freeze could break. */
static struct cgroup *qemu_cgroup(struct vm *vm)
{
	struct ctr *c = vm->q.jail ? vm->q.jail->priv : NULL;
	return c ? c->cg : NULL;
}

/* stop: vCPUs stopped, then QEMU frozen; !stop: thawed, then vCPUs running. */
static int vm_hold(struct vm *vm, bool stop, agentd_error *err)
{
	struct cgroup *cg = qemu_cgroup(vm);
	if (stop) {
		if (vm_qmp_simple(&vm->qmp, "stop", QMP_MS, err) < 0)
			return -1;
		if (cg && cgroup_freeze(cg, true, err) < 0) {
			vm_qmp_simple(&vm->qmp, "cont", QMP_MS, NULL);
			return -1;
		}
		return 0;
	}
	if (cg && cgroup_freeze(cg, false, err) < 0)
		return -1;
	return vm_qmp_simple(&vm->qmp, "cont", QMP_MS, err);
}

static int set_suspended(agentd_sandbox *sb, bool stop, agentd_error *err)
{
	struct vm *vm = sb->priv;
	pthread_mutex_lock(&vm->lock);
	int r;
	if (vm->suspended == stop)
		r = agentd_error_set(err, EALREADY, "sandbox %s is already %s", sb->id,
				     stop ? "suspended" : "running");
	else if ((r = vm_hold(vm, stop, err)) == 0)
		vm->suspended = stop;
	pthread_mutex_unlock(&vm->lock);
	return r < 0 ? agentd_error_prefix(err, "%s sandbox %s", stop ? "suspend" : "resume",
					   sb->id)
		     : 0;
}

int vm_state_suspend(agentd_sandbox *sb, agentd_error *err)
{
	return set_suspended(sb, true, err);
}

int vm_state_resume(agentd_sandbox *sb, agentd_error *err)
{
	return set_suspended(sb, false, err);
}

/* ------------------------------------------------------------- snapshots */

static const char *const state_dirs[2] = {"workdir", "tmp"};

/* The scratch held from before the guest ran, as a new description (its offset ours), or
 * -1 + err when the sandbox's files are not shared from the host. */
static int scratch_fd(agentd_sandbox *sb, struct vm *vm, agentd_error *err)
{
	int held = vm->map ? vm->map->share.scratch_fd : -1;
	if (held < 0)
		return agentd_error_set(err, ENOTSUP,
					"sandbox %s: its files are not shared from the host (it "
					"started from a template), so the host has nothing to "
					"snapshot", sb->id);
	int fd = openat(held, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? agentd_error_errno(err, errno, "open the sandbox's scratch") : fd;
}

/* The guest quiet (its commands frozen, its filesystems synced) for a copy; a suspended VM
 * is quiet already (its guest cannot answer: no FREEZE). *froze: whether to thaw after. */
static int quiesce(struct vm *vm, bool *froze, agentd_error *err)
{
	*froze = false;
	if (vm->suspended)
		return 0;
	if (vm_chan_control(vm->ch, GP_FREEZE, NULL, 0, GUEST_MS, err) < 0)
		return agentd_error_prefix(err, "freeze the guest for the snapshot");
	*froze = true;
	return 0;
}

static void unquiesce(struct vm *vm, bool froze)
{
	if (froze)
		vm_chan_control(vm->ch, GP_THAW, NULL, 0, GUEST_MS, NULL);
}

static int over_quota(uint64_t max, agentd_error *err)
{
	return agentd_error_set(err, EDQUOT,
				"snapshot refused: it would occupy more than the %llu bytes of host "
				"disk left to it (limits.max_snapshot_bytes)",
				(unsigned long long)max);
}

static int open_sub(int dir, const char *name, agentd_error *err)
{
	int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? agentd_error_errno(err, errno, "open %s", name) : fd;
}

/* The scratch's workdir/ and tmp/ into dir_fd. */
static int copy_out(int scratch, int dir_fd, uint64_t max, uint64_t *bytes, agentd_error *err)
{
	if (max == 0)
		return over_quota(0, err);
	uint64_t budget = max;
	for (int i = 0; i < 2; i++) {
		if (mkdirat(dir_fd, state_dirs[i], 0700) < 0)
			return agentd_error_errno(err, errno, "snapshot: make %s", state_dirs[i]);
		_cleanup_close_ int src = open_sub(scratch, state_dirs[i], err);
		_cleanup_close_ int dst = src < 0 ? -1 : open_sub(dir_fd, state_dirs[i], err);
		if (dst < 0)
			return agentd_error_prefix(err, "snapshot");
		int r = copy_tree_at(src, dst, (uid_t)-1, (gid_t)-1, &budget);
		if (r == -EFBIG)
			return over_quota(max, err);
		if (r < 0)
			return agentd_error_errno(err, -r, "snapshot %s", state_dirs[i]);
	}
	*bytes = 0;
	int r = tree_allocated_at(dir_fd, bytes);
	if (r < 0)
		return agentd_error_errno(err, -r, "measure the snapshot");
	return *bytes > max ? over_quota(max, err) : 0;
}

int vm_state_snapshot_to(agentd_sandbox *sb, int dir_fd, uint64_t max_bytes, uint64_t *bytes,
			 agentd_error *err)
{
	struct vm *vm = sb->priv;
	uint64_t max = max_bytes < sb->spec.limits.max_snapshot_bytes
			       ? max_bytes
			       : sb->spec.limits.max_snapshot_bytes;
	_cleanup_close_ int scratch = scratch_fd(sb, vm, err);
	if (scratch < 0)
		return -1;
	pthread_mutex_lock(&vm->lock);
	bool froze;
	int r = quiesce(vm, &froze, err);
	if (r == 0)
		r = copy_out(scratch, dir_fd, max, bytes, err);
	unquiesce(vm, froze);
	pthread_mutex_unlock(&vm->lock);
	if (r < 0)
		empty_dir_at(dir_fd);
	return r;
}

int vm_state_restore_from(agentd_sandbox *sb, int dir_fd, agentd_error *err)
{
	struct vm *vm = sb->priv;
	_cleanup_close_ int scratch = scratch_fd(sb, vm, err);
	if (scratch < 0)
		return -1;
	/* the files belong to the guest's user, as the workdir does */
	uid_t uid;
	gid_t gid;
	_cleanup_close_ int wd = sb->ops->workdir_fd(sb, &uid, &gid, err);
	if (wd < 0)
		return -1;
	pthread_mutex_lock(&vm->lock);
	bool froze;
	int r = quiesce(vm, &froze, err);
	uint64_t budget = sb->spec.limits.max_write_bytes + (1 << 20);
	for (int i = 0; r == 0 && i < 2; i++) {
		_cleanup_close_ int src = open_sub(dir_fd, state_dirs[i], err);
		_cleanup_close_ int dst = src < 0 ? -1 : open_sub(scratch, state_dirs[i], err);
		if (dst < 0) {
			r = agentd_error_prefix(err, "restore");
			break;
		}
		int e = empty_dir_at(dst);
		if (e == -EXDEV)
			e = 0;	/* a policy's bind beneath stays: not the sandbox's state */
		if (e == 0)
			e = copy_tree_at(src, dst, uid, gid, &budget);
		if (e < 0)
			r = agentd_error_errno(err, -e, "restore %s", state_dirs[i]);
	}
	unquiesce(vm, froze);
	pthread_mutex_unlock(&vm->lock);
	return r;
}

/* The library's own snapshots: <work_root>/<sandbox id>/<snapshot id>, charged to
 * max_snapshot_bytes while the sandbox lives, removed with it (vm_state_free). */
int vm_state_snapshot(agentd_sandbox *sb, const char *name, char **snapshot_id,
		      agentd_error *err)
{
	struct vm *vm = sb->priv;
	const agentd_limits *l = &sb->spec.limits;
	uint64_t left = l->max_snapshot_bytes > vm->snap_bytes ? l->max_snapshot_bytes - vm->snap_bytes
								: 0;
	if (left == 0)
		return over_quota(0, err);
	pthread_mutex_lock(&vm->lock);
	if (!vm->snap_dir) {
		char *d = xasprintf("%s/%s", sb->backend->work_root, sb->id);
		if (mkdir_p(sb->backend->work_root, 0711) < 0 || (mkdir(d, 0700) < 0 && errno != EEXIST)) {
			agentd_error_errno(err, errno, "create %s", d);
			free(d);
			pthread_mutex_unlock(&vm->lock);
			return -1;
		}
		vm->snap_dir = d;
	}
	char id[AGENTD_ID_LEN];
	random_id(id);
	_cleanup_free_ char *dir = xasprintf("%s/%s", vm->snap_dir, id);
	pthread_mutex_unlock(&vm->lock);
	if (mkdir(dir, 0700) < 0)
		return agentd_error_errno(err, errno, "create %s", dir);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	uint64_t bytes = 0;
	int r = dfd < 0 ? agentd_error_errno(err, errno, "open %s", dir) : 0;
	if (r == 0 && name && *name) {
		_cleanup_close_ int fd =
			openat(dfd, "name", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write_all(fd, name, strlen(name)) < 0)
			r = agentd_error_errno(err, errno, "write %s/name", dir);
	}
	if (r == 0)
		r = vm_state_snapshot_to(sb, dfd, left, &bytes, err);
	if (r < 0) {
		rm_rf(dir);
		return -1;
	}
	pthread_mutex_lock(&vm->lock);
	vm->snap_bytes += bytes;
	pthread_mutex_unlock(&vm->lock);
	*snapshot_id = xstrdup(id);
	return 0;
}

static bool valid_id(const char *id)
{
	size_t n = strlen(id);
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return n == 32;
}

int vm_state_restore(agentd_sandbox *sb, const char *snapshot_id, agentd_error *err)
{
	struct vm *vm = sb->priv;
	if (!valid_id(snapshot_id))
		return agentd_error_set(err, EINVAL, "snapshot id %s: expected 32 hex digits",
					snapshot_id);
	pthread_mutex_lock(&vm->lock);
	_cleanup_free_ char *dir =
		vm->snap_dir ? xasprintf("%s/%s", vm->snap_dir, snapshot_id) : NULL;
	pthread_mutex_unlock(&vm->lock);
	_cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
				      : -1;
	if (dfd < 0)
		return agentd_error_set(err, ENOENT, "no snapshot %s in sandbox %s", snapshot_id,
					sb->id);
	return vm_state_restore_from(sb, dfd, err);
}

void vm_state_release(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->suspended && vm_hold(vm, false, NULL) == 0)
		vm->suspended = false;	/* runs again to power off cleanly */
	pthread_mutex_unlock(&vm->lock);
}

void vm_state_free(struct vm *vm)
{
	if (vm->snap_dir)
		rm_rf(vm->snap_dir);
	free(vm->snap_dir);
	vm->snap_dir = NULL;
	free(vm->start_how);
	vm->start_how = NULL;
}
