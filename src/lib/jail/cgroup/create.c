/* create.c: making (or reopening) agentd/<name> in each hierarchy a sandbox needs, writing
 * its limits, and freeing or destroying it. */
#include "lib/jail/cgroup/cgroup_internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/file.h>
#include <sys/stat.h>

static const char *ctrl_limit_name(int c)
{
	switch (c) {
	case C_MEMORY:
		return "limits.max_memory_bytes";
	case C_PIDS:
		return "limits.max_processes";
	default:
		return "limits.cpu_weight/cpu_quota_pct";
	}
}

/* Controllers a limit needs: a limit that cannot be enforced fails the create. The default
 * cpu weight (100) is what no cgroup at all gives, so it needs nothing. */
static unsigned needed_mask(const agentd_limits *l)
{
	unsigned m = 0;

	if (!l)
		return 0;
	if (l->max_memory_bytes)
		m |= BIT(C_MEMORY);
	if (l->max_processes)
		m |= BIT(C_PIDS);
	if ((l->cpu_weight && l->cpu_weight != 100) || l->cpu_quota_pct)
		m |= BIT(C_CPU);
	return m;
}

bool cgroup_limits_needed(const agentd_limits *l)
{
	return needed_mask(l) != 0;
}


static int cg_free(struct cgroup *cg, bool remove)
{
	int r = 0;
	if (!cg)
		return 0;
	/* Non-primary dirs first: d[0] carries the lock gc honours. */
	for (int i = cg->n - 1; i >= 0; i--) {
		struct cg_dir *d = &cg->d[i];
		if (d->procs_fd >= 0)
			close(d->procs_fd);
		int e = remove && d->path ? cg_rmdir_tree(d->path, 0) : 0;
		if (e < 0 && r == 0)
			r = e;
		free(d->path);
	}
	if (cg->dir_fd >= 0)
		close(cg->dir_fd);
	free(cg);
	return r;
}

static int set_one(struct cgroup *cg, int c, const char *file, const char *val, bool optional,
		   agentd_error *err)
{
	const char *dir = cg->d[cg->of[c]].path;
	int r = cg_write(dir, file, val);

	if (r == 0)
		return 0;
	if (optional && r == -ENOENT)
		return 1;
	return agentd_error_errno(err, -r, "cgroup: write %s/%s = %s", dir, file, val);
}

/* memory: the limit and no swap (v2 memory.swap.max, v1 memsw = mem). */
static int set_memory(struct cgroup *cg, uint64_t bytes, agentd_error *err)
{
	char b[64];

	snprintf(b, sizeof(b), "%" PRIu64, bytes);
	if (cg->d[cg->of[C_MEMORY]].v2) {
		if (set_one(cg, C_MEMORY, "memory.max", b, false, err) < 0 ||
		    set_one(cg, C_MEMORY, "memory.swap.max", "0", true, err) < 0 ||
		    set_one(cg, C_MEMORY, "memory.oom.group", "1", true, err) < 0)
			return -1;
		return 0;
	}
	if (set_one(cg, C_MEMORY, "memory.limit_in_bytes", b, false, err) < 0)
		return -1;
	/* memsw = mem: no swap at all. Without swap accounting (swapaccount=0) the file is
	 * missing; swappiness 0 is the best that is left. */
	int r = set_one(cg, C_MEMORY, "memory.memsw.limit_in_bytes", b, true, err);
	if (r < 0)
		return -1;
	if (r == 1)
		set_one(cg, C_MEMORY, "memory.swappiness", "0", true, NULL);
	return 0;
}

/* cpu weight (v1: shares, scaled 100 -> 1024) and quota over a fixed period. */
static int set_cpu(struct cgroup *cg, const agentd_limits *l, agentd_error *err)
{
	bool v2 = cg->d[cg->of[C_CPU]].v2;
	char b[64];

	if (l->cpu_weight && l->cpu_weight != 100) {
		uint64_t w = l->cpu_weight;
		if (v2) {
			snprintf(b, sizeof(b), "%" PRIu64, w > 10000 ? 10000 : w);
			if (set_one(cg, C_CPU, "cpu.weight", b, false, err) < 0)
				return -1;
		} else {
			uint64_t shares = w * 1024 / 100;
			shares = shares < 2 ? 2 : shares > 262144 ? 262144 : shares;
			snprintf(b, sizeof(b), "%" PRIu64, shares);
			if (set_one(cg, C_CPU, "cpu.shares", b, false, err) < 0)
				return -1;
		}
	}
	if (l->cpu_quota_pct) {
		uint64_t quota = (uint64_t)l->cpu_quota_pct * (CG_CPU_PERIOD_US / 100);
		if (v2) {
			snprintf(b, sizeof(b), "%" PRIu64 " %d", quota, CG_CPU_PERIOD_US);
			if (set_one(cg, C_CPU, "cpu.max", b, false, err) < 0)
				return -1;
		} else {
			snprintf(b, sizeof(b), "%d", CG_CPU_PERIOD_US);
			if (set_one(cg, C_CPU, "cpu.cfs_period_us", b, false, err) < 0)
				return -1;
			snprintf(b, sizeof(b), "%" PRIu64, quota);
			if (set_one(cg, C_CPU, "cpu.cfs_quota_us", b, false, err) < 0)
				return -1;
		}
	}
	return 0;
}

static int set_limits(struct cgroup *cg, const agentd_limits *l, agentd_error *err)
{
	if (l->max_memory_bytes && set_memory(cg, l->max_memory_bytes, err) < 0)
		return -1;
	if (l->max_processes) {
		char b[64];
		snprintf(b, sizeof(b), "%" PRIu32, l->max_processes);
		if (set_one(cg, C_PIDS, "pids.max", b, false, err) < 0)
			return -1;
	}
	if (cg->of[C_CPU] < 0)
		return 0;
	return set_cpu(cg, l, err);
}

/* Which hierarchies to join, decided under cg_layout.lock. */
struct plan {
	int n;
	int hier[CG_MAX_HIER];
	char *base[CG_MAX_HIER];
	bool v2[CG_MAX_HIER];
	int of[C_COUNT];		/* index into the plan */
	bool v2_kill, v2_freeze;
};

static void plan_free(struct plan *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->base[i]);
}

/* Which hierarchy serves each controller (at[]) and which hierarchies are used. Called
 * with cg_layout.lock held; -1 with *e1 set when a needed one cannot be set up. */
static int plan_controllers(struct plan *p, unsigned need, bool v2ok, int *at, bool *use,
			    agentd_error *e1)
{
	struct cg_layout *lay = &cg_layout;

	for (int c = 0; c < C_COUNT; c++) {
		int hi = lay->v1of[c];
		at[c] = -1;
		if (hi >= 0 && !(c == C_FREEZER && p->v2_freeze)) {
			agentd_error e2 = { 0 };
			if (cg_hier_setup(&lay->h[hi], &e2) == 0) {
				at[c] = hi;
			} else if (need & BIT(c)) {
				*e1 = e2;
				return -1;
			} else if (!e1->msg[0]) {
				*e1 = e2;
			}
		} else if (v2ok) {
			if ((lay->h[lay->v2].ctrls & BIT(c)) || c == C_CPUACCT ||
			    (c == C_FREEZER && p->v2_freeze))
				at[c] = lay->v2;
		}
		if (at[c] >= 0)
			use[at[c]] = true;
	}
	return 0;
}

/* Hierarchy order, cgroup2 first: cgroup_gc finds the primary dir the same way. */
static void plan_order(struct plan *p, const int *at, const bool *use)
{
	int pos[CG_MAX_HIER];

	for (int hi = 0; hi < cg_layout.n; hi++) {
		pos[hi] = -1;
		if (!use[hi])
			continue;
		pos[hi] = p->n;
		p->hier[p->n] = hi;
		p->base[p->n] = xstrdup(cg_layout.h[hi].base);
		p->v2[p->n] = cg_layout.h[hi].v2;
		p->n++;
	}
	for (int c = 0; c < C_COUNT; c++)
		p->of[c] = at[c] >= 0 ? pos[at[c]] : -1;
}

/* Called with cg_layout.lock held. */
static int plan_locked(struct plan *p, unsigned need, bool v1_only, agentd_error *err)
{
	struct cg_layout *lay = &cg_layout;
	agentd_error e1 = { 0 };
	int at[C_COUNT];		/* hierarchy (cg_layout index) serving each controller */
	bool use[CG_MAX_HIER] = { false };
	bool v2ok = false;

	cg_layout_detect();
	if (lay->n == 0)
		return agentd_error_set(err, ENOTSUP,
			"cgroup: no cgroup filesystem is mounted (see /proc/self/mountinfo)");
	if (lay->v2 >= 0 && !(v1_only && cg_layout_has_v1())) {
		/* On a hybrid host the unified hierarchy only adds tracking, kill and freeze:
		 * go on without it if it cannot be used. On a pure v2 host it is everything. */
		if (cg_hier_setup(&lay->h[lay->v2], &e1) == 0)
			v2ok = use[lay->v2] = true;
		else if (!cg_layout_has_v1())
			goto fail_e1;
	}
	p->v2_kill = v2ok && lay->v2_kill;
	p->v2_freeze = v2ok && lay->v2_freeze;
	if (plan_controllers(p, need, v2ok, at, use, &e1) < 0)
		goto fail_e1;
	for (int c = 0; c < C_COUNT; c++) {
		if (!(need & BIT(c)) || at[c] >= 0)
			continue;
		const char *why = v2ok && lay->h[lay->v2].msg[0] ? lay->h[lay->v2].msg :
			"not mounted";
		return agentd_error_set(err, ENOTSUP,
					"cgroup: %s controller unavailable (needed for %s): %s",
					cg_v1_ctrl[c], ctrl_limit_name(c), why);
	}
	plan_order(p, at, use);
	if (p->n > 0)
		return 0;

fail_e1:
	plan_free(p);
	if (!e1.msg[0])
		agentd_error_set(&e1, ENOTSUP, "cgroup: no usable cgroup hierarchy");
	if (err)
		*err = e1;
	return -1;
}

static int make_plan(struct plan *p, unsigned need, bool v1_only, agentd_error *err)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_lock(&cg_layout.lock);
	int r = plan_locked(p, need, v1_only, err);
	pthread_mutex_unlock(&cg_layout.lock);
	return r;
}

/* Someone removed <parent>/agentd under us (a test, an admin): set it up again. */
static void forget_base(int hi)
{
	pthread_mutex_lock(&cg_layout.lock);
	if (hi < cg_layout.n) {
		free(cg_layout.h[hi].base);
		cg_layout.h[hi].base = NULL;
	}
	pthread_mutex_unlock(&cg_layout.lock);
}

static struct cgroup *cg_new(const char *name, const struct plan *p)
{
	struct cgroup *cg = xcalloc(1, sizeof(*cg));

	snprintf(cg->name, sizeof(cg->name), "%s", name);
	cg->dir_fd = -1;
	cg->v2 = -1;
	for (int c = 0; c < C_COUNT; c++)
		cg->of[c] = p->of[c];
	cg->v2_kill = p->v2_kill;
	cg->v2_freeze = p->v2_freeze;
	return cg;
}

/* d[0] opened and LOCK_SH held for our lifetime: cgroup_gc leaves a locked dir alone. */
static int lock_primary(struct cgroup *cg, agentd_error *err)
{
	const char *path = cg->d[0].path;

	cg->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg->dir_fd < 0)
		return agentd_error_errno(err, errno, "cgroup: open %s", path);
	flock(cg->dir_fd, LOCK_SH);
	/* gc may have removed it between our mkdir and our lock. */
	if (faccessat(cg->dir_fd, "cgroup.procs", F_OK, 0) < 0)
		return agentd_error_errno(err, errno, "cgroup: %s vanished", path);
	return 0;
}

/* Make (create) or find (open) dir i of the plan and open its cgroup.procs for attach:
 * 0, 1 when <parent>/agentd is gone and may be set up again (first attempt), -1 + err. */
static int dir_open(struct cgroup *cg, const struct plan *p, int i, bool create, bool first,
		    agentd_error *err)
{
	struct cg_dir *d = &cg->d[i];

	d->procs_fd = -1;
	d->v2 = p->v2[i];
	d->path = cg_path(p->base[i], cg->name);
	cg->n = i + 1;
	if (d->v2)
		cg->v2 = i;
	if (create) {
		if (mkdir(d->path, 0755) < 0) {
			if (errno == ENOENT && first)
				return 1;
			return agentd_error_errno(err, errno, "cgroup: mkdir %s", d->path);
		}
		d->created = true;
	}
	if (i == 0 && lock_primary(cg, err) < 0)
		return -1;
	_cleanup_free_ char *procs = cg_path(d->path, "cgroup.procs");
	d->procs_fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (d->procs_fd < 0)
		return agentd_error_errno(err, errno, "cgroup: open %s", procs);
	return 0;
}

/* Only remove what this call made: cgroup_open must not delete a sandbox's cgroup. */
static void cg_undo(struct cgroup *cg)
{
	for (int i = 0; i < cg->n; i++)
		if (!cg->d[i].created) {
			free(cg->d[i].path);
			cg->d[i].path = NULL;
		}
	cg_free(cg, true);
}

static struct cgroup *cg_make(const char *name, const agentd_limits *l, bool create,
			      bool v1_only, agentd_error *err)
{
	if (!cg_name_valid(name)) {
		agentd_error_set(err, EINVAL,
				 "cgroup: invalid name '%s' (want [A-Za-z0-9_-]{1,80})",
				 name ? name : "(null)");
		return NULL;
	}
	for (int attempt = 0;; attempt++) {
		struct plan p;
		if (make_plan(&p, create ? needed_mask(l) : 0, v1_only, err) < 0)
			return NULL;
		struct cgroup *cg = cg_new(name, &p);
		int r = 0, i;
		for (i = 0; i < p.n && r == 0; i++)
			r = dir_open(cg, &p, i, create, attempt == 0, err);
		int retry_hier = r == 1 ? p.hier[i - 1] : -1;
		plan_free(&p);
		if (r < 0) {
			cg_undo(cg);
			return NULL;
		}
		if (retry_hier >= 0) {
			cg_free(cg, true);
			forget_base(retry_hier);
			continue;
		}
		if (create && l && set_limits(cg, l, err) < 0) {
			cg_free(cg, true);
			return NULL;
		}
		return cg;
	}
}

struct cgroup *cgroup_create(const char *name, const agentd_limits *l, agentd_error *err)
{
	return cg_make(name, l, true, false, err);
}

struct cgroup *cgroup_open(const char *name, agentd_error *err)
{
	return cg_make(name, NULL, false, false, err);
}

/* issue 13: oci-runtime. A hybrid host's unified hierarchy is left out: a runtime's exec
 * can be put in v1 sub-cgroups only (runc exec --cgroup ctrl:path), so the kill units of
 * the container are v1 ones (the freezer kills their trees). */
struct cgroup *cgroup_open_runtime(const char *name, agentd_error *err)
{
	return cg_make(name, NULL, false, true, err);
}

int cgroup_runtime_paths(const struct cgroup *unit, agentd_strv *out)
{
	if (unit->v2 >= 0) {
		if (unit->n != 1)
			return -ENOTSUP;
		strv_push(out, unit->name);
		return 0;
	}
	for (int c = 0; c < C_COUNT; c++) {
		if (unit->of[c] < 0)
			continue;
		char *s = xasprintf("%s:%s", cg_v1_ctrl[c], unit->name);
		strv_push(out, s);
		free(s);
	}
	return 0;
}

void cgroup_close(struct cgroup *cg)
{
	cg_free(cg, false);
}

int cgroup_destroy(struct cgroup *cg)
{
	if (!cg)
		return 0;
	cgroup_kill_all(cg);
	return cg_free(cg, true);
}


/* ---------------------------------------------------------------- kill units */

/* Which of parent's dirs a unit is made in: cgroup2 (kill, tracking, cpu.stat; no
 * controller is delegated below a sandbox, whose init stays in it, so nothing else is
 * there), and the v1 hierarchies of its accounting and events, plus the v1 freezer where
 * it is the only way to stop a tree that forks while it is killed. */
static bool unit_wants(const struct cgroup *parent, int i, int *of)
{
	static const int v1[] = {C_CPUACCT, C_MEMORY, C_PIDS, C_FREEZER};
	bool want = parent->d[i].v2;
	for (size_t k = 0; k < ARRAY_SIZE(v1); k++) {
		int c = v1[k];
		if (parent->of[c] != i || (c == C_FREEZER && parent->v2_kill))
			continue;
		if (!parent->d[i].v2 || c == C_CPUACCT || (c == C_FREEZER && parent->v2_freeze)) {
			of[c] = i;
			want = true;
		}
	}
	return want;
}

static struct cgroup *make_child(const struct cgroup *parent, const char *name, bool existing,
				 agentd_error *err);

struct cgroup *cgroup_create_child(const struct cgroup *parent, const char *name,
				   agentd_error *err)
{
	return make_child(parent, name, false, err);
}

struct cgroup *cgroup_open_child(const struct cgroup *parent, const char *name,
				 agentd_error *err)
{
	return make_child(parent, name, true, err);
}

const char *cgroup_name(const struct cgroup *cg)
{
	return cg->name;
}

/* A kill unit: made (mkdir), or one that exists (existing: made by an earlier owner). */
static struct cgroup *make_child(const struct cgroup *parent, const char *name, bool existing,
				 agentd_error *err)
{
	if (!cg_name_valid(name)) {
		agentd_error_set(err, EINVAL, "cgroup: invalid unit name '%s'", name);
		return NULL;
	}
	struct cgroup *cg = xcalloc(1, sizeof(*cg));
	snprintf(cg->name, sizeof(cg->name), "%s", name);
	cg->dir_fd = -1;
	cg->v2 = -1;
	cg->v2_kill = parent->v2_kill;
	cg->v2_freeze = parent->v2_freeze;
	cg->parent = parent;
	int of[C_COUNT];
	for (int c = 0; c < C_COUNT; c++)
		of[c] = cg->of[c] = -1;
	for (int i = 0; i < parent->n; i++) {
		if (!unit_wants(parent, i, of))
			continue;
		struct cg_dir *d = &cg->d[cg->n];
		d->procs_fd = -1;
		d->v2 = parent->d[i].v2;
		d->path = cg_path(parent->d[i].path, name);
		for (int c = 0; c < C_COUNT; c++)
			if (of[c] == i)
				cg->of[c] = cg->n;
		if (d->v2)
			cg->v2 = cg->n;
		cg->n++;
		if (existing ? access(d->path, F_OK) < 0 : mkdir(d->path, 0755) < 0) {
			agentd_error_errno(err, errno, "cgroup: %s %s", existing ? "open" : "mkdir",
					   d->path);
			goto fail;
		}
		d->created = true;
		_cleanup_free_ char *procs = cg_path(d->path, "cgroup.procs");
		d->procs_fd = open(procs, O_WRONLY | O_CLOEXEC);
		if (d->procs_fd < 0) {
			agentd_error_errno(err, errno, "cgroup: open %s", procs);
			goto fail;
		}
	}
	if (cg->n > 0)
		return cg;
	agentd_error_set(err, ENOTSUP, "cgroup: no hierarchy for a kill unit");
fail:
	cg_undo(cg);
	return NULL;
}

int cgroup_procs_fds(const struct cgroup *cg, int *fds, int max)
{
	int n = 0;
	for (int i = 0; i < cg->n && n < max; i++)
		fds[n++] = cg->d[i].procs_fd;
	return n;
}
