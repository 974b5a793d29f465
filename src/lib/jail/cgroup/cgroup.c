/* cgroup.c: a sandbox's cgroup, one interface over v1 (incl. hybrid) and v2: layout
 * detection, agentd/<name> with limits, attach, kill, freeze, usage, events, probe, gc. */
#include "lib/jail/jail.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#define CG_FS_ROOT "/sys/fs/cgroup"
#define CG_MAX_HIER 8		/* memory, pids, cpu, cpuacct, freezer, blkio, cgroup2 */
#define CG_NAME_MAX 64
#define CG_WAIT_MS 2000		/* kill and freeze give up after this long */
#define CG_RMDIR_MS 1000	/* rmdir retries EBUSY (tasks still exiting) this long */
#define CG_PROCS_MAX (4u << 20)
#define CG_CPU_PERIOD_US 100000
#define CG_SUPERVISOR "agentd-supervisor"

/* The controllers agentd uses. cpuacct and freezer are core features on v2 (cpu.stat,
 * cgroup.freeze); io is accounting only (bytes read/written). */
enum { C_MEMORY, C_PIDS, C_CPU, C_CPUACCT, C_FREEZER, C_IO, C_COUNT };
static const char *const v1_ctrl[C_COUNT] = { "memory", "pids", "cpu", "cpuacct", "freezer",
					     "blkio" };
static const char *const v2_ctrl[C_COUNT] = { "memory", "pids", "cpu", NULL, NULL, "io" };
#define BIT(c) (1u << (c))

/* One mounted hierarchy: a v1 mount (possibly co-mounting controllers) or cgroup2. */
struct hier {
	char *mount;		/* mount point */
	char *mroot;		/* cgroup shown at the mount point (mountinfo root field) */
	char *dev;		/* "maj:min": bind mounts of one hierarchy share it */
	bool v2;
	unsigned ctrls;		/* v1: bound controllers; v2: enabled under base */
	char *base;		/* "<parent>/agentd" once set up, else NULL */
	char msg[320];		/* why a v2 controller could not be enabled */
};

static struct {
	pthread_mutex_t lock;	/* guards everything here; cgroups themselves need no lock */
	bool detected;
	struct hier h[CG_MAX_HIER];
	int n;
	int v2;			/* index of the cgroup2 hierarchy, -1 */
	int v1of[C_COUNT];	/* index of the v1 hierarchy carrying a controller, -1 */
	bool v2_kill, v2_freeze;	/* cgroup.kill (>= 5.14), cgroup.freeze (>= 5.2) */
	bool test_v1_only, test_legacy_kill;
} G = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct cg_dir {
	char *path;		/* <base>/<name> */
	int procs_fd;		/* cgroup.procs, O_WRONLY, opened at create for attach_self */
	bool v2;
	bool created;		/* we made it (cleanup of a failed create) */
};

struct cgroup {
	char name[CG_NAME_MAX + 1];
	int n;
	struct cg_dir d[CG_MAX_HIER];	/* d[0] is the primary: cgroup2 when there is one */
	int of[C_COUNT];	/* index into d[] serving each controller, -1 */
	int v2;			/* index of the cgroup2 dir, -1 */
	int dir_fd;		/* d[0] opened, LOCK_SH held for our lifetime so cgroup_gc of
				 * any agentd process leaves us alone; CLONE_INTO_CGROUP fd */
	bool v2_kill, v2_freeze;
};

/* ---------------------------------------------------------------- small helpers */

static bool name_valid(const char *name)
{
	size_t n = 0;

	if (!name)
		return false;
	for (const char *c = name; *c; c++, n++) {
		bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			  (*c >= '0' && *c <= '9') || *c == '_' || *c == '-';
		if (!ok || n >= CG_NAME_MAX)
			return false;
	}
	return n > 0;
}

static char *pjoin(const char *a, const char *b)
{
	return xasprintf("%s/%s", a, b);
}

static int cg_write(const char *dir, const char *file, const char *val)
{
	_cleanup_free_ char *p = pjoin(dir, file);
	return write_file_at(AT_FDCWD, p, val);
}

static char *cg_read(const char *dir, const char *file)
{
	_cleanup_free_ char *p = pjoin(dir, file);
	return read_file_at(AT_FDCWD, p, CG_PROCS_MAX, NULL);
}

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

/* Sleep with a backoff from 100 us to 10 ms: most waits here end within a millisecond. */
static void nap(unsigned *us)
{
	struct timespec ts = { 0, (long)*us * 1000 };

	nanosleep(&ts, NULL);
	if (*us < 10000)
		*us *= 2;
}

struct pidv {
	pid_t *v;
	size_t n, cap;
};

static void pidv_push(struct pidv *pv, pid_t p)
{
	if (pv->n == pv->cap) {
		pv->cap = pv->cap ? pv->cap * 2 : 16;
		pv->v = xrealloc(pv->v, pv->cap * sizeof(pid_t));
	}
	pv->v[pv->n++] = p;
}

/* Processes of dir and of any sub-cgroup the sandbox made (v1 cgroup.procs is not
 * recursive). Depth is bounded: cgroup.max.depth may not be set on v1. */
static void collect_pids(const char *dir, struct pidv *pv, int depth)
{
	_cleanup_free_ char *t = cg_read(dir, "cgroup.procs");

	for (char *s = t, *end; s && *s; s = end) {
		long p = strtol(s, &end, 10);
		if (end == s)
			break;
		if (p > 0)
			pidv_push(pv, (pid_t)p);
	}
	if (depth >= 16)
		return;
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		_cleanup_free_ char *sub = pjoin(dir, e->d_name);
		collect_pids(sub, pv, depth + 1);
	}
	closedir(d);
}

static int pid_cmp(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

/* rmdir a cgroup and the sub-cgroups a sandbox may have made; EBUSY while the last tasks
 * finish exiting is retried briefly. */
static int rmdir_tree(const char *path, int depth)
{
	if (depth < 16) {
		DIR *d = opendir(path);
		if (d) {
			struct dirent *e;
			while ((e = readdir(d))) {
				if (e->d_type != DT_DIR || e->d_name[0] == '.')
					continue;
				_cleanup_free_ char *sub = pjoin(path, e->d_name);
				rmdir_tree(sub, depth + 1);
			}
			closedir(d);
		}
	}
	uint64_t deadline = now_ms_monotonic() + CG_RMDIR_MS;
	unsigned us = 100;
	for (;;) {
		if (rmdir(path) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		if (now_ms_monotonic() >= deadline)
			return -EBUSY;
		nap(&us);
	}
}

/* ---------------------------------------------------------------- layout */

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static char *unescape(const char *s)
{
	char *r = xmalloc(strlen(s) + 1), *o = r;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	return r;
}

static bool under_cgroup_fs(const char *mnt)
{
	return strncmp(mnt, CG_FS_ROOT, strlen(CG_FS_ROOT)) == 0;
}

static void hier_free(struct hier *h)
{
	free(h->mount);
	free(h->mroot);
	free(h->dev);
	free(h->base);
	memset(h, 0, sizeof(*h));
}

/* Rank of a cgroup2 mount: /sys/fs/cgroup (pure v2) beats .../unified (hybrid) beats any
 * other place. */
static int v2_rank(const char *mnt)
{
	if (strcmp(mnt, CG_FS_ROOT) == 0)
		return 3;
	if (strcmp(mnt, CG_FS_ROOT "/unified") == 0)
		return 2;
	return 1;
}

static void layout_add(char *const *f, int sep, bool v2)
{
	_cleanup_free_ char *mnt = unescape(f[4]);
	_cleanup_free_ char *root = unescape(f[3]);
	unsigned ctrls = 0;

	if (v2) {
		if (G.test_v1_only)
			return;
		if (G.v2 >= 0) {
			if (v2_rank(mnt) <= v2_rank(G.h[G.v2].mount))
				return;
			struct hier *h = &G.h[G.v2];
			free(h->mount);
			free(h->mroot);
			h->mount = take_ptr(mnt);
			h->mroot = take_ptr(root);
			return;
		}
	} else {
		_cleanup_free_ char *opts = xstrdup(f[sep + 3]);
		char *save = NULL;
		for (char *t = strtok_r(opts, ",", &save); t; t = strtok_r(NULL, ",", &save))
			for (int c = 0; c < C_COUNT; c++)
				if (strcmp(t, v1_ctrl[c]) == 0)
					ctrls |= BIT(c);
		if (!ctrls)
			return;		/* name=systemd, cpuset, devices...: not ours */
		for (int i = 0; i < G.n; i++) {
			struct hier *h = &G.h[i];
			if (h->v2 || strcmp(h->dev, f[2]) != 0)
				continue;
			/* Another mount of the same hierarchy: keep the canonical place. */
			if (!under_cgroup_fs(h->mount) && under_cgroup_fs(mnt)) {
				free(h->mount);
				free(h->mroot);
				h->mount = take_ptr(mnt);
				h->mroot = take_ptr(root);
			}
			return;
		}
	}
	if (G.n == CG_MAX_HIER)
		return;
	struct hier *h = &G.h[G.n];
	h->mount = take_ptr(mnt);
	h->mroot = take_ptr(root);
	h->dev = xstrdup(f[2]);
	h->v2 = v2;
	h->ctrls = ctrls;
	if (v2)
		G.v2 = G.n;
	G.n++;
}

/* Called with G.lock held. Reads /proc/self/mountinfo once: fields are "id parent maj:min
 * root mountpoint opts [optional...] - fstype source superopts". */
static void layout_detect(void)
{
	if (G.detected)
		return;
	G.detected = true;
	G.n = 0;
	G.v2 = -1;
	G.v2_kill = G.v2_freeze = false;

	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	if (f) {
		while (getline(&line, &cap, f) > 0) {
			char *fld[32], *save = NULL;
			int nf = 0, sep = -1;
			line[strcspn(line, "\n")] = '\0';
			for (char *t = strtok_r(line, " ", &save); t && nf < 32;
			     t = strtok_r(NULL, " ", &save)) {
				if (sep < 0 && nf >= 6 && strcmp(t, "-") == 0)
					sep = nf;
				fld[nf++] = t;
			}
			if (sep < 0 || nf < sep + 4)
				continue;
			if (strcmp(fld[sep + 1], "cgroup2") == 0)
				layout_add(fld, sep, true);
			else if (strcmp(fld[sep + 1], "cgroup") == 0)
				layout_add(fld, sep, false);
		}
	}
	/* Keep cgroup2 first: it is the primary dir (tracking, kill, CLONE_INTO_CGROUP). */
	if (G.v2 > 0) {
		struct hier t = G.h[0];
		G.h[0] = G.h[G.v2];
		G.h[G.v2] = t;
		G.v2 = 0;
	}
	for (int c = 0; c < C_COUNT; c++) {
		G.v1of[c] = -1;
		for (int i = 0; i < G.n; i++)
			if (!G.h[i].v2 && (G.h[i].ctrls & BIT(c)))
				G.v1of[c] = i;
	}
}

static bool layout_has_v1(void)
{
	for (int i = 0; i < G.n; i++)
		if (!G.h[i].v2)
			return true;
	return false;
}

/* Our own cgroup in hierarchy h as a directory, from /proc/self/cgroup; NULL if unknown. */
static char *own_dir(const struct hier *h)
{
	_cleanup_free_ char *t = read_file_at(AT_FDCWD, "/proc/self/cgroup", 1 << 16, NULL);

	for (char *l = t, *next; l && *l; l = next) {
		next = strchr(l, '\n');
		if (next)
			*next++ = '\0';
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctrls = c1 + 1, *path = c2 + 1;
		bool match = false;
		if (h->v2) {
			match = strncmp(l, "0:", 2) == 0 && *ctrls == '\0';
		} else {
			_cleanup_free_ char *cs = xstrdup(ctrls);
			char *save = NULL;
			for (char *tok = strtok_r(cs, ",", &save); tok && !match;
			     tok = strtok_r(NULL, ",", &save))
				for (int c = 0; c < C_COUNT; c++)
					if ((h->ctrls & BIT(c)) && strcmp(tok, v1_ctrl[c]) == 0)
						match = true;
		}
		if (!match)
			continue;
		/* The mount shows cgroup mroot of the hierarchy at its mount point. */
		size_t rl = strlen(h->mroot);
		if (strcmp(h->mroot, "/") == 0)
			rl = 0;
		else if (strncmp(path, h->mroot, rl) != 0 || (path[rl] && path[rl] != '/'))
			return NULL;
		return xasprintf("%s%s", h->mount, strcmp(path + rl, "/") ? path + rl : "");
	}
	return NULL;
}

/* v2 "no internal processes": a non-root cgroup with processes cannot enable controllers
 * for its children. When we are the only process of the delegated cgroup we move into a
 * leaf of our own, as systemd's delegation rules ask. */
static bool only_self_in(const char *dir)
{
	struct pidv pv = { 0 };
	bool r;
	_cleanup_free_ char *t = cg_read(dir, "cgroup.procs");

	for (char *s = t, *end; s && *s; s = end) {
		long p = strtol(s, &end, 10);
		if (end == s)
			break;
		pidv_push(&pv, (pid_t)p);
	}
	r = t && pv.n == 1 && pv.v[0] == getpid();
	free(pv.v);
	return r;
}

/* Enable our controllers in dir's cgroup.subtree_control; returns the enabled mask. */
static unsigned v2_enable(struct hier *h, const char *dir, bool may_move_self)
{
	_cleanup_free_ char *avail = cg_read(dir, "cgroup.controllers");
	unsigned mask = 0;
	bool moved = false;

	for (int c = 0; c < C_COUNT; c++) {
		if (!v2_ctrl[c] || !avail)
			continue;
		/* cgroup.controllers is space separated */
		bool listed = false;
		size_t cl = strlen(v2_ctrl[c]);
		for (const char *p = avail; (p = strstr(p, v2_ctrl[c])); p += cl)
			if ((p == avail || p[-1] == ' ') &&
			    (p[cl] == ' ' || p[cl] == '\n' || p[cl] == '\0'))
				listed = true;
		if (!listed) {
			if (c != C_IO && !h->msg[0])
				snprintf(h->msg, sizeof(h->msg),
					 "%s is not in %s/cgroup.controllers", v2_ctrl[c], dir);
			continue;
		}
		char cmd[32];
		snprintf(cmd, sizeof(cmd), "+%s", v2_ctrl[c]);
		int r = cg_write(dir, "cgroup.subtree_control", cmd);
		if (r == -EBUSY && may_move_self && !moved && only_self_in(dir)) {
			_cleanup_free_ char *leaf = pjoin(dir, CG_SUPERVISOR);
			if (mkdir(leaf, 0755) == 0 || errno == EEXIST)
				if (cg_write(leaf, "cgroup.procs", "0") == 0)
					moved = true;
			if (moved)
				r = cg_write(dir, "cgroup.subtree_control", cmd);
		}
		if (r == 0) {
			mask |= BIT(c);
		} else if (c != C_IO && !h->msg[0]) {
			snprintf(h->msg, sizeof(h->msg),
				 "enable %s in %s/cgroup.subtree_control: %s%s",
				 v2_ctrl[c], dir, strerror(-r),
				 r == -EBUSY ? " (the cgroup holds processes: run agentd in a "
					       "cgroup of its own)" : "");
		}
	}
	return mask;
}

/* Called with G.lock held: make <parent>/agentd for hierarchy h. The parent is the
 * hierarchy's root when we may write there (root), else our own cgroup when it was
 * delegated to us (unprivileged v2 under systemd Delegate=yes). */
static int hier_setup(struct hier *h, agentd_error *err)
{
	if (h->base)
		return 0;
	h->msg[0] = '\0';

	_cleanup_free_ char *parent = NULL;
	if (access(h->mount, W_OK) == 0) {
		parent = xstrdup(h->mount);
	} else {
		int e = errno;
		parent = own_dir(h);
		if (!parent || access(parent, W_OK) != 0)
			return agentd_error_errno(err, e,
				"cgroup: %s is not writable and our own cgroup %s is not delegated "
				"to us (run as root, or under systemd-run -p Delegate=yes)",
				h->mount, parent ? parent : "(unknown)");
	}
	/* EBUSY (internal processes) cannot happen at the real root, so moving ourselves is
	 * only ever tried in a delegated cgroup or a cgroup namespace's root. */
	if (h->v2)
		v2_enable(h, parent, true);

	_cleanup_free_ char *base = pjoin(parent, "agentd");
	if (mkdir(base, 0755) < 0 && errno != EEXIST)
		return agentd_error_errno(err, errno, "cgroup: mkdir %s", base);

	if (h->v2) {
		/* agentd/ never holds processes, so enabling here only fails when the parent
		 * could not enable the controller either. */
		char saved[sizeof(h->msg)];
		memcpy(saved, h->msg, sizeof(saved));
		h->ctrls = v2_enable(h, base, false);
		if (saved[0])
			memcpy(h->msg, saved, sizeof(saved));
		_cleanup_free_ char *k = pjoin(base, "cgroup.kill");
		_cleanup_free_ char *fz = pjoin(base, "cgroup.freeze");
		G.v2_kill = access(k, F_OK) == 0;
		G.v2_freeze = access(fz, F_OK) == 0;
	}
	h->base = take_ptr(base);
	return 0;
}

/* ---------------------------------------------------------------- create / open */

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

static void cg_free(struct cgroup *cg, bool remove)
{
	if (!cg)
		return;
	/* Non-primary dirs first: d[0] carries the lock gc honours. */
	for (int i = cg->n - 1; i >= 0; i--) {
		struct cg_dir *d = &cg->d[i];
		if (d->procs_fd >= 0)
			close(d->procs_fd);
		if (remove && d->path)
			rmdir_tree(d->path, 0);
		free(d->path);
	}
	if (cg->dir_fd >= 0)
		close(cg->dir_fd);
	free(cg);
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

static int set_limits(struct cgroup *cg, const agentd_limits *l, agentd_error *err)
{
	char b[64];

	if (l->max_memory_bytes) {
		snprintf(b, sizeof(b), "%" PRIu64, l->max_memory_bytes);
		if (cg->d[cg->of[C_MEMORY]].v2) {
			if (set_one(cg, C_MEMORY, "memory.max", b, false, err) < 0 ||
			    set_one(cg, C_MEMORY, "memory.swap.max", "0", true, err) < 0 ||
			    set_one(cg, C_MEMORY, "memory.oom.group", "1", true, err) < 0)
				return -1;
		} else {
			if (set_one(cg, C_MEMORY, "memory.limit_in_bytes", b, false, err) < 0)
				return -1;
			/* memsw = mem: no swap at all. Without swap accounting (swapaccount=0)
			 * the file is missing; swappiness 0 is the best that is left. */
			int r = set_one(cg, C_MEMORY, "memory.memsw.limit_in_bytes", b, true, err);
			if (r < 0)
				return -1;
			if (r == 1)
				set_one(cg, C_MEMORY, "memory.swappiness", "0", true, NULL);
		}
	}
	if (l->max_processes) {
		snprintf(b, sizeof(b), "%" PRIu32, l->max_processes);
		if (set_one(cg, C_PIDS, "pids.max", b, false, err) < 0)
			return -1;
	}
	if (cg->of[C_CPU] < 0)
		return 0;
	bool v2 = cg->d[cg->of[C_CPU]].v2;
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

/* Which hierarchies to join, decided under G.lock. */
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

static int make_plan(struct plan *p, unsigned need, agentd_error *err)
{
	agentd_error e1 = { 0 };
	int at[C_COUNT];		/* hierarchy (G index) serving each controller */
	bool use[CG_MAX_HIER] = { false };
	bool v2ok = false;

	memset(p, 0, sizeof(*p));
	pthread_mutex_lock(&G.lock);
	layout_detect();
	if (G.n == 0) {
		pthread_mutex_unlock(&G.lock);
		return agentd_error_set(err, ENOTSUP,
			"cgroup: no cgroup filesystem is mounted (see /proc/self/mountinfo)");
	}
	if (G.v2 >= 0) {
		/* On a hybrid host the unified hierarchy only adds tracking, kill and freeze:
		 * go on without it if it cannot be used. On a pure v2 host it is everything. */
		if (hier_setup(&G.h[G.v2], &e1) == 0)
			v2ok = use[G.v2] = true;
		else if (!layout_has_v1())
			goto fail_e1;
	}
	p->v2_kill = v2ok && G.v2_kill;
	p->v2_freeze = v2ok && G.v2_freeze;
	for (int c = 0; c < C_COUNT; c++) {
		int hi = G.v1of[c];
		at[c] = -1;
		if (hi >= 0 && !(c == C_FREEZER && p->v2_freeze)) {
			agentd_error e2 = { 0 };
			if (hier_setup(&G.h[hi], &e2) == 0) {
				at[c] = hi;
			} else if (need & BIT(c)) {
				e1 = e2;
				goto fail_e1;
			} else if (!e1.msg[0]) {
				e1 = e2;
			}
		} else if (v2ok) {
			if ((G.h[G.v2].ctrls & BIT(c)) || c == C_CPUACCT ||
			    (c == C_FREEZER && p->v2_freeze))
				at[c] = G.v2;
		}
		if (at[c] >= 0)
			use[at[c]] = true;
	}
	for (int c = 0; c < C_COUNT; c++) {
		if (!(need & BIT(c)) || at[c] >= 0)
			continue;
		const char *why = v2ok && G.h[G.v2].msg[0] ? G.h[G.v2].msg : "not mounted";
		pthread_mutex_unlock(&G.lock);
		return agentd_error_set(err, ENOTSUP,
					"cgroup: %s controller unavailable (needed for %s): %s",
					v1_ctrl[c], ctrl_limit_name(c), why);
	}
	/* Hierarchy order, cgroup2 first: cgroup_gc finds the primary dir the same way. */
	int pos[CG_MAX_HIER];
	for (int hi = 0; hi < G.n; hi++) {
		pos[hi] = -1;
		if (!use[hi])
			continue;
		pos[hi] = p->n;
		p->hier[p->n] = hi;
		p->base[p->n] = xstrdup(G.h[hi].base);
		p->v2[p->n] = G.h[hi].v2;
		p->n++;
	}
	for (int c = 0; c < C_COUNT; c++)
		p->of[c] = at[c] >= 0 ? pos[at[c]] : -1;
	if (p->n == 0)
		goto fail_e1;
	pthread_mutex_unlock(&G.lock);
	return 0;

fail_e1:
	pthread_mutex_unlock(&G.lock);
	plan_free(p);
	if (!e1.msg[0])
		agentd_error_set(&e1, ENOTSUP, "cgroup: no usable cgroup hierarchy");
	if (err)
		*err = e1;
	return -1;
}

/* Someone removed <parent>/agentd under us (a test, an admin): set it up again. */
static void forget_base(int hi)
{
	pthread_mutex_lock(&G.lock);
	if (hi < G.n) {
		free(G.h[hi].base);
		G.h[hi].base = NULL;
	}
	pthread_mutex_unlock(&G.lock);
}

static struct cgroup *cg_make(const char *name, const agentd_limits *l, bool create,
			      agentd_error *err)
{
	struct plan p;
	struct cgroup *cg = NULL;

	if (!name_valid(name)) {
		agentd_error_set(err, EINVAL,
				 "cgroup: invalid name '%s' (want [A-Za-z0-9_-]{1,64})",
				 name ? name : "(null)");
		return NULL;
	}
	for (int attempt = 0;; attempt++) {
		if (make_plan(&p, create ? needed_mask(l) : 0, err) < 0)
			return NULL;
		cg = xcalloc(1, sizeof(*cg));
		snprintf(cg->name, sizeof(cg->name), "%s", name);
		cg->dir_fd = -1;
		cg->v2 = -1;
		for (int c = 0; c < C_COUNT; c++)
			cg->of[c] = p.of[c];
		cg->v2_kill = p.v2_kill;
		cg->v2_freeze = p.v2_freeze;

		int retry_hier = -1;
		for (int i = 0; i < p.n; i++) {
			struct cg_dir *d = &cg->d[i];
			d->procs_fd = -1;
			d->v2 = p.v2[i];
			d->path = pjoin(p.base[i], name);
			cg->n = i + 1;
			if (d->v2)
				cg->v2 = i;
			if (create) {
				if (mkdir(d->path, 0755) < 0) {
					int e = errno;
					if (e == ENOENT && attempt == 0) {
						retry_hier = p.hier[i];
						break;
					}
					agentd_error_errno(err, e, "cgroup: mkdir %s", d->path);
					goto fail;
				}
				d->created = true;
			}
			if (i == 0) {
				cg->dir_fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
				if (cg->dir_fd < 0) {
					agentd_error_errno(err, errno, "cgroup: open %s", d->path);
					goto fail;
				}
				flock(cg->dir_fd, LOCK_SH);
				/* gc may have removed it between our mkdir and our lock. */
				if (faccessat(cg->dir_fd, "cgroup.procs", F_OK, 0) < 0) {
					agentd_error_errno(err, errno, "cgroup: %s vanished",
							   d->path);
					goto fail;
				}
			}
			_cleanup_free_ char *procs = pjoin(d->path, "cgroup.procs");
			d->procs_fd = open(procs, O_WRONLY | O_CLOEXEC);
			if (d->procs_fd < 0) {
				agentd_error_errno(err, errno, "cgroup: open %s", procs);
				goto fail;
			}
		}
		plan_free(&p);
		if (retry_hier >= 0) {
			cg_free(cg, true);
			forget_base(retry_hier);
			continue;
		}
		break;
	}
	if (create && l && set_limits(cg, l, err) < 0) {
		cg_free(cg, true);
		return NULL;
	}
	return cg;

fail:
	plan_free(&p);
	/* Only remove what this call made: cgroup_open must not delete a sandbox's cgroup. */
	for (int i = 0; i < cg->n; i++)
		if (!cg->d[i].created) {
			free(cg->d[i].path);
			cg->d[i].path = NULL;
		}
	cg_free(cg, true);
	return NULL;
}

struct cgroup *cgroup_create(const char *name, const agentd_limits *l, agentd_error *err)
{
	return cg_make(name, l, true, err);
}

struct cgroup *cgroup_open(const char *name, agentd_error *err)
{
	return cg_make(name, NULL, false, err);
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

bool cgroup_join_after_clone(void)
{
	pthread_mutex_lock(&G.lock);
	layout_detect();
	bool v1 = G.test_v1_only || layout_has_v1();
	pthread_mutex_unlock(&G.lock);
	return v1;
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
	collect_pids(cg->d[0].path, &pv, 0);
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
		nap(&us);
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
			nap(&us);
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
		nap(&us);
	}
}

static bool is_frozen(const struct cgroup *cg)
{
	int fi = cg->of[C_FREEZER];

	if (fi < 0)
		return false;
	_cleanup_free_ char *s = cg_read(cg->d[fi].path, cg->d[fi].v2 ? "cgroup.freeze" :
					 "freezer.state");
	return s && (cg->d[fi].v2 ? s[0] == '1' : strncmp(s, "THAWED", 6) != 0);
}

int cgroup_freeze(struct cgroup *cg, bool frozen, agentd_error *err)
{
	const char *file = "";

	if (!cg)
		return agentd_error_set(err, EINVAL, "cgroup: no cgroup");
	int r = freeze_raw(cg, frozen, CG_WAIT_MS, &file);
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
					frozen ? "frozen" : "thawed", CG_WAIT_MS);
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
	collect_pids(dir, &again, 0);
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
		collect_pids(track, &pv, 0);
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
	if (cg->v2_kill && !G.test_legacy_kill &&
	    cg_write(cg->d[cg->v2].path, "cgroup.kill", "1") == 0) {
		/* The kernel kills every member and whatever they fork meanwhile. */
		r = wait_empty(cg, deadline);
	} else {
		r = kill_loop(cg, deadline);
	}
	/* Leave it empty and thawed: the next exec must not be born frozen. */
	if (is_frozen(cg)) {
		const char *file;
		freeze_raw(cg, false, 100, &file);
	}
	return r;
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
	if (cg->of[C_CPUACCT] >= 0) {
		const struct cg_dir *d = &cg->d[cg->of[C_CPUACCT]];
		if (!d->v2 && read_u64(d->path, "cpuacct.usage", &v))
			u->cpu_time_ms = v / 1000000;
		else if (d->v2 && read_key(d->path, "cpu.stat", "usage_usec", &v))
			u->cpu_time_ms = v / 1000;
	}
	if (cg->of[C_IO] >= 0)
		io_bytes(&cg->d[cg->of[C_IO]], u);
	return 0;
}

int cgroup_read_events(const struct cgroup *cg, struct cgroup_events *ev)
{
	uint64_t v;

	if (!cg || !ev)
		return -EINVAL;
	memset(ev, 0, sizeof(*ev));
	if (cg->of[C_MEMORY] >= 0) {
		const struct cg_dir *d = &cg->d[cg->of[C_MEMORY]];
		const char *f = d->v2 ? "memory.events" : "memory.oom_control";
		if (read_key(d->path, f, "oom_kill", &v))
			ev->oom_kills = v;
	}
	if (cg->of[C_PIDS] >= 0 &&
	    read_key(cg->d[cg->of[C_PIDS]].path, "pids.events", "max", &v))
		ev->pids_max_hits = v;
	return 0;
}

/* ---------------------------------------------------------------- destroy, gc */

void cgroup_destroy(struct cgroup *cg)
{
	if (!cg)
		return;
	cgroup_kill_all(cg);
	cg_free(cg, true);
}

void cgroup_gc(void)
{
	char *bases[CG_MAX_HIER];
	int nb = 0;
	agentd_strv names = { 0 };

	pthread_mutex_lock(&G.lock);
	layout_detect();
	for (int i = 0; i < G.n; i++)
		if (hier_setup(&G.h[i], NULL) == 0)
			bases[nb++] = xstrdup(G.h[i].base);
	pthread_mutex_unlock(&G.lock);

	for (int i = 0; i < nb; i++) {
		DIR *d = opendir(bases[i]);
		struct dirent *e;
		if (!d)
			continue;
		while ((e = readdir(d)))
			if (e->d_type == DT_DIR && name_valid(e->d_name) &&
			    !strv_contains(&names, e->d_name))
				strv_push(&names, e->d_name);
		closedir(d);
	}
	for (size_t k = 0; k < names.n; k++) {
		char *paths[CG_MAX_HIER];
		int np = 0;
		bool busy = false;
		for (int i = 0; i < nb; i++) {
			char *p = pjoin(bases[i], names.v[k]);
			if (access(p, F_OK) == 0)
				paths[np++] = p;
			else
				free(p);
		}
		/* paths[0] is the primary (hierarchy order = create order): a live owner holds
		 * LOCK_SH on it. */
		_cleanup_close_ int fd =
			np ? open(paths[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
			busy = true;
		for (int i = 0; i < np && !busy; i++) {
			struct pidv pv = { 0 };
			collect_pids(paths[i], &pv, 0);
			busy = pv.n > 0;
			free(pv.v);
		}
		for (int i = np - 1; i >= 0; i--) {
			if (!busy)
				rmdir_tree(paths[i], 0);
			free(paths[i]);
		}
	}
	strv_free(&names);
	for (int i = 0; i < nb; i++)
		free(bases[i]);
}

/* ---------------------------------------------------------------- probe */

static void add_reason(agentd_platform *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void add_reason(agentd_platform *p, const char *fmt, ...)
{
	size_t len = strlen(p->reasons);
	va_list ap;

	if (len + 3 >= sizeof(p->reasons))
		return;
	if (len) {
		memcpy(p->reasons + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(p->reasons + len, sizeof(p->reasons) - len, fmt, ap);
	va_end(ap);
}

void cgroup_probe(agentd_platform *p)
{
	static unsigned counter;
	int version;
	bool hybrid;
	char where[256];
	unsigned avail = 0;

	pthread_mutex_lock(&G.lock);
	layout_detect();
	hybrid = G.v2 >= 0 && layout_has_v1();
	version = layout_has_v1() ? 1 : G.v2 >= 0 ? 2 : 0;
	snprintf(where, sizeof(where), "%s", G.v2 >= 0 && !hybrid ? G.h[G.v2].mount : CG_FS_ROOT);
	for (int c = 0; c < C_COUNT; c++)
		if (G.v1of[c] >= 0)
			avail |= BIT(c);
	if (G.v2 >= 0 && hier_setup(&G.h[G.v2], NULL) == 0)
		avail |= G.h[G.v2].ctrls;
	pthread_mutex_unlock(&G.lock);

	p->cgroup_version = 0;
	p->cgroup_hybrid = false;
	p->cgroup_memory = p->cgroup_pids = p->cgroup_cpu = false;
	p->cgroup_cpuacct = p->cgroup_freezer = p->cgroup_writable = false;
	if (version == 0) {
		add_reason(p, "cgroup: no cgroup filesystem mounted");
		return;
	}

	/* A real attempt: the limits of every controller the layout offers. */
	agentd_limits l = { 0 };
	if (avail & BIT(C_MEMORY))
		l.max_memory_bytes = 256u << 20;
	if (avail & BIT(C_PIDS))
		l.max_processes = 256;
	if (avail & BIT(C_CPU)) {
		l.cpu_weight = 50;
		l.cpu_quota_pct = 100;
	}
	char name[64];
	snprintf(name, sizeof(name), "probe-%d-%u", (int)getpid(),
		 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, &l, &err);
	if (!cg) {
		add_reason(p, "cgroup v%d%s at %s not usable: %s", version,
			   hybrid ? " (hybrid)" : "", where, err.msg);
		return;
	}
	p->cgroup_version = version;
	p->cgroup_hybrid = hybrid;
	p->cgroup_writable = true;
	p->cgroup_memory = cg->of[C_MEMORY] >= 0;
	p->cgroup_pids = cg->of[C_PIDS] >= 0;
	p->cgroup_cpu = cg->of[C_CPU] >= 0;
	p->cgroup_cpuacct = cg->of[C_CPUACCT] >= 0;
	p->cgroup_freezer = cg->of[C_FREEZER] >= 0;
	static const char *const what[C_COUNT] = { "memory", "pids", "cpu", "cpuacct", "freezer",
						   NULL };
	for (int c = 0; c < C_COUNT; c++)
		if (what[c] && cg->of[c] < 0)
			add_reason(p, "cgroup: %s controller unavailable", what[c]);
	cgroup_destroy(cg);
}

/* ---------------------------------------------------------------- tests */

void cgroup_test_mode(bool v1_only, bool legacy_kill)
{
	pthread_mutex_lock(&G.lock);
	for (int i = 0; i < G.n; i++)
		hier_free(&G.h[i]);
	G.n = 0;
	G.v2 = -1;
	G.detected = false;
	G.test_v1_only = v1_only;
	G.test_legacy_kill = legacy_kill;
	pthread_mutex_unlock(&G.lock);
}
