/* control.c: what is done to a live sandbox cgroup: attach, freeze and thaw, kill every
 * member (cgroup.kill, else freezer + pidfds), and read its usage and events. */
#include "lib/jail/cgroup/cgroup_internal.h"

#include <dirent.h>

#include <inttypes.h>
#include <signal.h>
#include <sys/syscall.h>

/* Value of "key N" in a flat keyed file (cgroup.events, memory.events, cpu.stat...). */
static bool key_u64(const char *text, const char *key, uint64_t *out)
{
	size_t kl = strlen(key);

	for (const char *l = text; l && *l;) {
		if (strncmp(l, key, kl) == 0 && l[kl] == ' ') {
			*out = strtoull(l + kl + 1, NULL, 10);
			return true;
		}
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	return false;
}

static bool read_key(const char *dir, const char *file, const char *key, uint64_t *out)
{
	_cleanup_free_ char *t = cg_read(dir, file);
	return t && key_u64(t, key, out);
}

static bool read_u64(const char *dir, const char *file, uint64_t *out)
{
	_cleanup_free_ char *t = cg_read(dir, file);
	char *end;

	if (!t)
		return false;
	errno = 0;
	*out = strtoull(t, &end, 10);
	return errno == 0 && end != t;
}

static int pid_cmp(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

/* ---------------------------------------------------------------- attach */

int cgroup_attach_self(const struct cgroup *cg)
{
	/* Child side between fork and exec: write() only. "0" is the writer on v1 and v2. */
	for (int i = 0; i < cg->n; i++)
		if (write(cg->d[i].procs_fd, "0", 1) != 1)
			return -errno;
	return 0;
}

int cgroup_attach_pid(const struct cgroup *cg, pid_t pid)
{
	char b[24];
	int len = snprintf(b, sizeof(b), "%d", (int)pid);

	for (int i = 0; i < cg->n; i++)
		if (write(cg->d[i].procs_fd, b, (size_t)len) != len)
			return -errno;
	return 0;
}

int cgroup_dir_fd(const struct cgroup *cg)
{
	return cg && cg->v2 == 0 ? cg->dir_fd : -1;
}

bool cgroup_clone_into_complete(const struct cgroup *cg)
{
	return cg && cg->v2 == 0 && cg->n == 1;
}

/* ---------------------------------------------------------------- populated, freeze, kill */

bool cgroup_is_populated(const struct cgroup *cg)
{
	if (!cg || cg->n == 0)
		return false;
	if (cg->v2 >= 0) {
		uint64_t v;
		return read_key(cg->d[cg->v2].path, "cgroup.events", "populated", &v) && v;
	}
	struct pidv pv = { 0 };
	cg_collect_pids(cg->d[0].path, &pv, 0);
	free(pv.v);
	return pv.n > 0;
}

static int wait_empty(const struct cgroup *cg, uint64_t deadline)
{
	unsigned us = 100;

	for (;;) {
		if (!cgroup_is_populated(cg))
			return 0;
		if (now_ms_monotonic() >= deadline)
			return -ETIMEDOUT;
		cg_nap(&us);
	}
}

/* Freeze or thaw and wait (up to wait_ms) until the kernel says it is done. *file names
 * what failed. */
static int freeze_raw(const struct cgroup *cg, bool frozen, unsigned wait_ms, const char **file)
{
	int fi = cg->of[C_FREEZER];
	uint64_t deadline = now_ms_monotonic() + wait_ms;
	unsigned us = 100;

	if (fi < 0)
		return -EOPNOTSUPP;
	const char *dir = cg->d[fi].path;
	if (cg->d[fi].v2) {
		*file = "cgroup.freeze";
		int r = cg_write(dir, *file, frozen ? "1" : "0");
		if (r < 0)
			return r;
		*file = "cgroup.events";
		for (;;) {
			uint64_t v;
			if (read_key(dir, "cgroup.events", "frozen", &v) && (v != 0) == frozen)
				return 0;
			if (now_ms_monotonic() >= deadline)
				return -ETIMEDOUT;
			cg_nap(&us);
		}
	}
	*file = "freezer.state";
	const char *want = frozen ? "FROZEN" : "THAWED";
	int r = cg_write(dir, *file, want);
	if (r < 0)
		return r;
	for (;;) {
		/* Reads FREEZING until every task is in the refrigerator. */
		_cleanup_free_ char *s = cg_read(dir, "freezer.state");
		if (s && strncmp(s, want, strlen(want)) == 0)
			return 0;
		if (now_ms_monotonic() >= deadline)
			return -ETIMEDOUT;
		cg_nap(&us);
	}
}

bool cgroup_is_frozen(const struct cgroup *cg)
{
	int fi = cg->of[C_FREEZER];

	if (fi < 0)
		return false;
	_cleanup_free_ char *s = cg_read(cg->d[fi].path, cg->d[fi].v2 ? "cgroup.freeze" :
					 "freezer.state");
	return s && (cg->d[fi].v2 ? s[0] == '1' : strncmp(s, "THAWED", 6) != 0);
}

bool cgroup_has_pid(const struct cgroup *cg, pid_t pid)
{
	if (!cg || cg->n == 0)
		return false;
	struct pidv pv = { 0 };
	cg_collect_pids(cg->d[0].path, &pv, 16); /* at the depth bound: its own members only */
	bool found = false;
	for (size_t i = 0; i < pv.n; i++)
		found |= pv.v[i] == pid;
	free(pv.v);
	return found;
}

int cgroup_children(const struct cgroup *cg, agentd_strv *names)
{
	if (!cg || cg->n == 0)
		return -ENOENT;
	DIR *d = opendir(cg->d[0].path);
	if (!d)
		return -errno;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_type == DT_DIR && e->d_name[0] != '.')
			strv_push(names, e->d_name);
	closedir(d);
	return 0;
}

int cgroup_freeze(struct cgroup *cg, bool frozen, agentd_error *err)
{
	const char *file = "";

	if (!cg)
		return agentd_error_set(err, EINVAL, "cgroup: no cgroup");
	int r = freeze_raw(cg, frozen, CG_FREEZE_WAIT_MS, &file);
	if (r == 0)
		return 0;
	if (r == -EOPNOTSUPP)
		return agentd_error_set(err, ENOTSUP, "cgroup: no freezer (neither cgroup v2 "
					"cgroup.freeze nor the v1 freezer controller)");
	const char *dir = cg->d[cg->of[C_FREEZER]].path;
	if (r == -ETIMEDOUT) {
		/* Half frozen is the worst state: undo before reporting. */
		if (frozen)
			freeze_raw(cg, false, 100, &file);
		return agentd_error_set(err, ETIMEDOUT, "cgroup: %s: not %s after %d ms (a task "
					"in uninterruptible sleep?)", dir,
					frozen ? "frozen" : "thawed", CG_FREEZE_WAIT_MS);
	}
	return agentd_error_errno(err, -r, "cgroup: %s/%s", dir, file);
}

/* SIGKILL the pids that are still members after we pinned them with a pidfd: a pid read
 * from cgroup.procs may have been reaped and reused by then, a pidfd cannot be. */
static void kill_checked(const char *dir, const struct pidv *pv)
{
	int *fds = xmalloc(pv->n * sizeof(int));
	bool have_pidfd = true;

	for (size_t i = 0; i < pv->n; i++) {
		fds[i] = sys_pidfd_open(pv->v[i], 0);
		if (fds[i] < 0 && errno == ENOSYS)
			have_pidfd = false;
	}
	struct pidv again = { 0 };
	cg_collect_pids(dir, &again, 0);
	if (again.n)
		qsort(again.v, again.n, sizeof(pid_t), pid_cmp);
	for (size_t i = 0; i < pv->n; i++) {
		if (again.n && bsearch(&pv->v[i], again.v, again.n, sizeof(pid_t), pid_cmp)) {
			if (fds[i] >= 0)
				sys_pidfd_send_signal(fds[i], SIGKILL);
			else if (!have_pidfd)
				kill(pv->v[i], SIGKILL);	/* kernel < 5.3: best effort */
		}
		if (fds[i] >= 0)
			close(fds[i]);
	}
	free(again.v);
	free(fds);
}

/* Without cgroup.kill: freeze so nothing forks while we read the list, SIGKILL each, thaw
 * so the kill lands (v1 frozen tasks only die once thawed), repeat until empty. */
static int kill_loop(struct cgroup *cg, uint64_t deadline)
{
	const char *file;
	bool can_freeze = cg->of[C_FREEZER] >= 0;
	const char *track = cg->d[cg->v2 >= 0 ? cg->v2 :
				  can_freeze ? cg->of[C_FREEZER] : 0].path;

	for (;;) {
		if (can_freeze)
			freeze_raw(cg, true, 100, &file);	/* partly frozen still helps */
		struct pidv pv = { 0 };
		cg_collect_pids(track, &pv, 0);
		if (pv.n)
			kill_checked(track, &pv);
		free(pv.v);
		if (can_freeze)
			freeze_raw(cg, false, 100, &file);
		uint64_t now = now_ms_monotonic(), step = now + 50;
		if (wait_empty(cg, step < deadline ? step : deadline) == 0)
			return 0;
		if (now_ms_monotonic() >= deadline)
			return -ETIMEDOUT;
	}
}

int cgroup_kill_all(struct cgroup *cg)
{
	int r;

	if (!cg)
		return -EINVAL;
	uint64_t deadline = now_ms_monotonic() + CG_WAIT_MS;
	if (cg->v2_kill && cg_write(cg->d[cg->v2].path, "cgroup.kill", "1") == 0) {
		/* The kernel kills every member and whatever they fork meanwhile. */
		r = wait_empty(cg, deadline);
	} else {
		r = kill_loop(cg, deadline);
	}
	/* Leave it empty and thawed: the next exec must not be born frozen. */
	if (cgroup_is_frozen(cg)) {
		const char *file;
		freeze_raw(cg, false, 100, &file);
	}
	return r;
}

/* issue 13: oci-engine */
int cgroup_kill_all_but(struct cgroup *cg, pid_t keep)
{
	const char *file;
	if (!cg || cg->n == 0)
		return -EINVAL;
	bool can_freeze = cg->of[C_FREEZER] >= 0;
	const char *track = cg->d[cg->v2 >= 0 ? cg->v2 :
				  can_freeze ? cg->of[C_FREEZER] : 0].path;
	uint64_t deadline = now_ms_monotonic() + CG_WAIT_MS;
	unsigned us = 100;
	for (;;) {
		if (can_freeze)
			freeze_raw(cg, true, 100, &file);	/* nothing forks meanwhile */
		struct pidv pv = { 0 }, rest = { 0 };
		cg_collect_pids(track, &pv, 0);
		for (size_t i = 0; i < pv.n; i++)
			if (pv.v[i] != keep)
				cg_pidv_push(&rest, pv.v[i]);
		if (rest.n)
			kill_checked(track, &rest);
		free(pv.v);
		free(rest.v);
		if (can_freeze)
			freeze_raw(cg, false, 100, &file);	/* v1: the kill lands once thawed */
		if (!rest.n)
			return 0;
		if (now_ms_monotonic() >= deadline)
			return -ETIMEDOUT;
		cg_nap(&us);
	}
}

int cgroup_unit_reset(struct cgroup *cg)
{
	if (cgroup_is_populated(cg))
		return -EBUSY;
	/* v1 resets the peak to the current usage; a unit is never in v2's memory */
	if (cg->of[C_MEMORY] >= 0 && !cg->d[cg->of[C_MEMORY]].v2)
		return cg_write(cg->d[cg->of[C_MEMORY]].path, "memory.max_usage_in_bytes", "0");
	return 0;
}

/* ---------------------------------------------------------------- usage, events */

static void io_bytes(const struct cg_dir *d, agentd_usage *u)
{
	uint64_t rd = 0, wr = 0;

	if (d->v2) {
		/* "MAJ:MIN rbytes=N wbytes=N rios=N ..." per device */
		_cleanup_free_ char *t = cg_read(d->path, "io.stat");
		for (char *s = t; s && (s = strstr(s, "bytes=")); s += 6) {
			if (s - t >= 1 && s[-1] == 'r')
				rd += strtoull(s + 6, NULL, 10);
			else if (s - t >= 1 && s[-1] == 'w')
				wr += strtoull(s + 6, NULL, 10);
		}
	} else {
		/* "MAJ:MIN Read N" / "MAJ:MIN Write N" ... then "Total N" */
		_cleanup_free_ char *t =
			cg_read(d->path, "blkio.throttle.io_service_bytes_recursive");
		if (!t)
			t = cg_read(d->path, "blkio.throttle.io_service_bytes");
		for (char *l = t, *next; l && *l; l = next) {
			next = strchr(l, '\n');
			if (next)
				*next++ = '\0';
			char dev[32], op[16];
			uint64_t v;
			if (sscanf(l, "%31s %15s %" SCNu64, dev, op, &v) != 3)
				continue;
			if (strcmp(op, "Read") == 0)
				rd += v;
			else if (strcmp(op, "Write") == 0)
				wr += v;
		}
	}
	u->bytes_read = rd;
	u->bytes_written = wr;
}

int cgroup_cpu_ms(const struct cgroup *cg, uint64_t *ms)
{
	uint64_t v;

	if (!cg || cg->of[C_CPUACCT] < 0)
		return -ENOTSUP;
	const struct cg_dir *d = &cg->d[cg->of[C_CPUACCT]];
	if (!d->v2 && read_u64(d->path, "cpuacct.usage", &v))
		*ms = v / 1000000;
	else if (d->v2 && read_key(d->path, "cpu.stat", "usage_usec", &v))
		*ms = v / 1000;
	else
		return -ENOTSUP;
	return 0;
}

int cgroup_read_usage(const struct cgroup *cg, agentd_usage *u)
{
	uint64_t v;

	if (!cg || !u)
		return -EINVAL;
	if (cg->of[C_MEMORY] >= 0) {
		const struct cg_dir *d = &cg->d[cg->of[C_MEMORY]];
		if (!d->v2) {
			if (read_u64(d->path, "memory.max_usage_in_bytes", &v))
				u->peak_memory_bytes = v;
		} else if (read_u64(d->path, "memory.peak", &v) ||	/* >= 5.19 */
			   read_u64(d->path, "memory.current", &v)) {
			u->peak_memory_bytes = v;
		}
	}
	if (cgroup_cpu_ms(cg, &v) == 0)
		u->cpu_time_ms = v;
	if (cg->of[C_IO] >= 0)
		io_bytes(&cg->d[cg->of[C_IO]], u);
	return 0;
}

/* The dir serving controller c: the cgroup's, else (a kill unit not in that hierarchy)
 * its sandbox's. */
static const struct cg_dir *ctrl_dir(const struct cgroup *cg, int c)
{
	if (cg->of[c] < 0 && cg->parent)
		cg = cg->parent;
	return cg->of[c] >= 0 ? &cg->d[cg->of[c]] : NULL;
}

int cgroup_read_events(const struct cgroup *cg, struct cgroup_events *ev)
{
	uint64_t v;

	if (!cg || !ev)
		return -EINVAL;
	memset(ev, 0, sizeof(*ev));
	const struct cg_dir *d = ctrl_dir(cg, C_MEMORY);
	if (d && read_key(d->path, d->v2 ? "memory.events" : "memory.oom_control", "oom_kill", &v))
		ev->oom_kills = v;
	/* v1 counts a refused fork in the forking task's cgroup (a unit's own), v2 in the
	 * one whose limit was hit and its ancestors (>= 6.12; before, the forking task's
	 * nearest with the controller: the sandbox's, as units are not in it on v2). */
	d = ctrl_dir(cg, C_PIDS);
	if (d && read_key(d->path, "pids.events", "max", &v))
		ev->pids_max_hits = v;
	return 0;
}

