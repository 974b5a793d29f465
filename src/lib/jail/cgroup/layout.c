/* layout.c: which cgroup hierarchies this host has (v1, v2 or hybrid, from mountinfo),
 * setting up agentd/ in each, and the probe that reports what a sandbox would get. */
#include "lib/jail/cgroup/cgroup_internal.h"

#include <fcntl.h>
#include <sys/stat.h>

const char *const cg_v1_ctrl[C_COUNT] = { "memory", "pids", "cpu", "cpuacct", "freezer",
					  "blkio" };
static const char *const v2_ctrl[C_COUNT] = { "memory", "pids", "cpu", NULL, NULL, "io" };

struct cg_layout cg_layout = { .lock = PTHREAD_MUTEX_INITIALIZER };

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
		if (cg_layout.v2 >= 0) {
			if (v2_rank(mnt) <= v2_rank(cg_layout.h[cg_layout.v2].mount))
				return;
			struct hier *h = &cg_layout.h[cg_layout.v2];
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
				if (strcmp(t, cg_v1_ctrl[c]) == 0)
					ctrls |= BIT(c);
		if (!ctrls)
			return;		/* name=systemd, cpuset, devices...: not ours */
		for (int i = 0; i < cg_layout.n; i++) {
			struct hier *h = &cg_layout.h[i];
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
	if (cg_layout.n == CG_MAX_HIER)
		return;
	struct hier *h = &cg_layout.h[cg_layout.n];
	h->mount = take_ptr(mnt);
	h->mroot = take_ptr(root);
	h->dev = xstrdup(f[2]);
	h->v2 = v2;
	h->ctrls = ctrls;
	if (v2)
		cg_layout.v2 = cg_layout.n;
	cg_layout.n++;
}

/* Called with cg_layout.lock held. Reads /proc/self/mountinfo once: fields are "id parent
 * maj:min root mountpoint opts [optional...] - fstype source superopts". */
void cg_layout_detect(void)
{
	if (cg_layout.detected)
		return;
	cg_layout.detected = true;
	cg_layout.n = 0;
	cg_layout.v2 = -1;
	cg_layout.v2_kill = cg_layout.v2_freeze = false;

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
	if (cg_layout.v2 > 0) {
		struct hier t = cg_layout.h[0];
		cg_layout.h[0] = cg_layout.h[cg_layout.v2];
		cg_layout.h[cg_layout.v2] = t;
		cg_layout.v2 = 0;
	}
	for (int c = 0; c < C_COUNT; c++) {
		cg_layout.v1of[c] = -1;
		for (int i = 0; i < cg_layout.n; i++)
			if (!cg_layout.h[i].v2 && (cg_layout.h[i].ctrls & BIT(c)))
				cg_layout.v1of[c] = i;
	}
}

bool cg_layout_has_v1(void)
{
	for (int i = 0; i < cg_layout.n; i++)
		if (!cg_layout.h[i].v2)
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
					if ((h->ctrls & BIT(c)) && strcmp(tok, cg_v1_ctrl[c]) == 0)
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
		cg_pidv_push(&pv, (pid_t)p);
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
			_cleanup_free_ char *leaf = cg_path(dir, CG_SUPERVISOR);
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

/* Called with cg_layout.lock held: make <parent>/agentd for hierarchy h. The parent is the
 * hierarchy's root when we may write there (root), else our own cgroup when it was
 * delegated to us (unprivileged v2 under systemd Delegate=yes). */
int cg_hier_setup(struct hier *h, agentd_error *err)
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

	_cleanup_free_ char *base = cg_path(parent, "agentd");
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
		_cleanup_free_ char *k = cg_path(base, "cgroup.kill");
		_cleanup_free_ char *fz = cg_path(base, "cgroup.freeze");
		cg_layout.v2_kill = access(k, F_OK) == 0;
		cg_layout.v2_freeze = access(fz, F_OK) == 0;
	}
	h->base = take_ptr(base);
	return 0;
}

bool cgroup_join_after_clone(void)
{
	pthread_mutex_lock(&cg_layout.lock);
	cg_layout_detect();
	bool v1 = cg_layout_has_v1();
	pthread_mutex_unlock(&cg_layout.lock);
	return v1;
}

/* ---------------------------------------------------------------- probe */

/* What the layout offers, read under the lock: the probe then tries it for real. */
struct offer {
	int version;		/* 1 when any v1 hierarchy is used (hybrid too), 2, or 0 */
	bool hybrid;
	char where[256];
	unsigned avail;		/* controllers some hierarchy carries */
};

static void probe_layout(struct offer *o)
{
	struct cg_layout *lay = &cg_layout;

	pthread_mutex_lock(&lay->lock);
	cg_layout_detect();
	o->hybrid = lay->v2 >= 0 && cg_layout_has_v1();
	o->version = cg_layout_has_v1() ? 1 : lay->v2 >= 0 ? 2 : 0;
	snprintf(o->where, sizeof(o->where), "%s",
		 lay->v2 >= 0 && !o->hybrid ? lay->h[lay->v2].mount : CG_FS_ROOT);
	o->avail = 0;
	for (int c = 0; c < C_COUNT; c++)
		if (lay->v1of[c] >= 0)
			o->avail |= BIT(c);
	if (lay->v2 >= 0 && cg_hier_setup(&lay->h[lay->v2], NULL) == 0)
		o->avail |= lay->h[lay->v2].ctrls;
	pthread_mutex_unlock(&lay->lock);
}

/* Fill p from a cgroup made with every limit the layout offered. */
static void probe_report(agentd_platform *p, const struct offer *o, const struct cgroup *cg)
{
	static const char *const what[C_COUNT] = { "memory", "pids", "cpu", "cpuacct", "freezer",
						   NULL };

	p->cgroup_version = o->version;
	p->cgroup_hybrid = o->hybrid;
	p->cgroup_writable = true;
	p->cgroup_memory = cg->of[C_MEMORY] >= 0;
	p->cgroup_pids = cg->of[C_PIDS] >= 0;
	p->cgroup_cpu = cg->of[C_CPU] >= 0;
	p->cgroup_cpuacct = cg->of[C_CPUACCT] >= 0;
	p->cgroup_freezer = cg->of[C_FREEZER] >= 0;
	for (int c = 0; c < C_COUNT; c++)
		if (what[c] && cg->of[c] < 0) {
			platform_reason(p, "cgroup: %s controller unavailable", what[c]);
			size_t n = strlen(p->cgroup_reason);
			snprintf(p->cgroup_reason + n, sizeof(p->cgroup_reason) - n, "%s%s",
				 n ? ", " : "the cgroup has no controller ", what[c]);
		}
}

void cgroup_probe(agentd_platform *p)
{
	static unsigned counter;
	struct offer o;

	probe_layout(&o);
	p->cgroup_version = 0;
	p->cgroup_hybrid = false;
	p->cgroup_memory = p->cgroup_pids = p->cgroup_cpu = false;
	p->cgroup_cpuacct = p->cgroup_freezer = p->cgroup_writable = false;
	if (o.version == 0) {
		snprintf(p->cgroup_reason, sizeof(p->cgroup_reason), "no cgroup filesystem mounted");
		platform_reason(p, "cgroup: %s", p->cgroup_reason);
		return;
	}

	/* A real attempt: the limits of every controller the layout offers. */
	agentd_limits l = { 0 };
	if (o.avail & BIT(C_MEMORY))
		l.max_memory_bytes = 256u << 20;
	if (o.avail & BIT(C_PIDS))
		l.max_processes = 256;
	if (o.avail & BIT(C_CPU)) {
		l.cpu_weight = 50;
		l.cpu_quota_pct = 100;
	}
	char name[64];
	snprintf(name, sizeof(name), "probe-%d-%u", (int)getpid(),
		 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, &l, &err);
	if (!cg) {
		snprintf(p->cgroup_reason, sizeof(p->cgroup_reason), "cgroup v%d%s at %s not usable: %s",
			 o.version, o.hybrid ? " (hybrid)" : "", o.where, err.msg);
		platform_reason(p, "%s", p->cgroup_reason);
		return;
	}
	probe_report(p, &o, cg);
	cgroup_destroy(cg);
}
