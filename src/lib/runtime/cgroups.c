/* cgroups.c: a container's cgroup in runc's layout (the config's cgroupsPath under every
 * mounted hierarchy: v1 and the hybrid's tracking cgroup2, or the unified v2): resources,
 * joining, the freezer for pause/resume, signalling and removal of everything in it. */
#include "lib/runtime/verbs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CG_WAIT_MS 3000
#define CG_PIDS_MAX 65536

static int cg_write(const char *dir, const char *file, const char *val)
{
	_cleanup_(freep) char *p = xasprintf("%s/%s", dir, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	int r = write(fd, val, strlen(val)) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static char *cg_read(const char *dir, const char *file)
{
	_cleanup_(freep) char *p = xasprintf("%s/%s", dir, file);
	size_t len;
	return read_file_at(AT_FDCWD, p, 1 << 20, &len);
}

static void nap_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};
	nanosleep(&ts, NULL);
}

char *ocirt_cgroup_path(const char *cgroups_path, const char *id)
{
	if (!cgroups_path || !*cgroups_path)
		return xasprintf("/agentd-runc/%s", id);
	if (ocirt_g.systemd_cgroup || (cgroups_path[0] != '/' && strchr(cgroups_path, ':'))) {
		/* slice:prefix:name, placed where systemd's cgroupfs layout would put it */
		char slice[256], prefix[256], name[256];
		if (sscanf(cgroups_path, "%255[^:]:%255[^:]:%255s", slice, prefix, name) != 3)
			return ocirt_fail("cgroupsPath '%s': --systemd-cgroup wants "
					  "slice:prefix:name", cgroups_path), NULL;
		if (strstr(slice, "..") || strchr(slice, '/') || strchr(prefix, '/') ||
		    strchr(name, '/'))
			return ocirt_fail("cgroupsPath '%s': '/' or '..' in a part", cgroups_path),
			       NULL;
		return xasprintf("/%s/%s-%s.scope", !strcmp(slice, "-") ? "system.slice" : slice,
				 prefix, name);
	}
	if (cgroups_path[0] != '/')
		return xasprintf("/agentd-runc/%s", cgroups_path);
	for (const char *p = cgroups_path; (p = strstr(p, "..")); p += 2)
		if ((p == cgroups_path || p[-1] == '/') && (p[2] == '/' || !p[2]))
			return ocirt_fail("cgroupsPath '%s': '..' not allowed", cgroups_path), NULL;
	return xstrdup(cgroups_path);
}

/* mkdir -p below a hierarchy's mount; v1 cpuset levels get their parent's cpus and mems
 * (an empty cpuset takes no tasks). */
static int mkdir_below(const char *mount, const char *rel, bool cpuset)
{
	_cleanup_(freep) char *path = xasprintf("%s%s", mount, rel);
	char *p = path + strlen(mount);
	while (*p) {
		char *slash = strchr(p + 1, '/');
		if (slash)
			*slash = 0;
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (cpuset) {
			char *parent = xstrdup(path);
			*strrchr(parent, '/') = 0;
			for (int k = 0; k < 2; k++) {
				const char *f = k ? "cpuset.mems" : "cpuset.cpus";
				char *cur = cg_read(path, f);
				if (cur && (cur[0] == '\n' || !cur[0])) {
					char *pv = cg_read(parent, f);
					if (pv)
						(void)cg_write(path, f, pv);
					free(pv);
				}
				free(cur);
			}
			free(parent);
		}
		if (!slash)
			break;
		*slash = '/';
		p = slash;
	}
	return 0;
}

int ocirt_cgroup_open(const char *path, bool create, struct ocirt_cgroup *cg)
{
	memset(cg, 0, sizeof(*cg));
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return ocirt_fail("cgroup: /proc/self/mountinfo: %s", strerror(errno)), -1;
	char *line = NULL;
	size_t cap = 0;
	int r = 0;
	bool any_v1 = false;
	while (getline(&line, &cap, f) > 0 && cg->n < OCIRT_CG_MAX) {
		char mnt[512], fstype[32], opts[512];
		char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %*s %511s", mnt) != 1 ||
		    sscanf(dash + 3, "%31s %*s %511s", fstype, opts) != 2)
			continue;
		bool v2 = !strcmp(fstype, "cgroup2");
		if (!v2 && strcmp(fstype, "cgroup"))
			continue;
		any_v1 |= !v2;
		bool cpuset = !v2 && strstr(opts, "cpuset");
		if (create && (r = mkdir_below(mnt, path, cpuset)) < 0) {
			ocirt_fail("cgroup %s%s: %s", mnt, path, strerror(-r));
			break;
		}
		char *dir = xasprintf("%s%s", mnt, path);
		struct stat st;
		if (!create && stat(dir, &st) < 0) {
			free(dir);
			continue;
		}
		cg->v2[cg->n] = v2;
		cg->dirs[cg->n++] = dir;
		if ((!v2 && strstr(opts, "freezer")) || (v2 && !cg->freezer))
			cg->freezer = dir;
		if (!cg->pids_dir || (!v2 && strstr(opts, "pids")))
			cg->pids_dir = dir;
	}
	free(line);
	fclose(f);
	/* on a hybrid host the cgroup2 mount only tracks: the v1 freezer freezes */
	if (any_v1 && cg->freezer)
		for (int i = 0; i < cg->n; i++)
			if (cg->freezer == cg->dirs[i] && cg->v2[i])
				cg->freezer = NULL;
	if (r < 0)
		return -1;
	if (!cg->n && create)
		return ocirt_fail("cgroup %s: no cgroup hierarchy is mounted", path), -1;
	return cg->n ? 0 : -1;
}

void ocirt_cgroup_free(struct ocirt_cgroup *cg)
{
	for (int i = 0; i < cg->n; i++)
		free(cg->dirs[i]);
	memset(cg, 0, sizeof(*cg));
}

static bool has_file(const char *dir, const char *file)
{
	_cleanup_(freep) char *p = xasprintf("%s/%s", dir, file);
	return access(p, F_OK) == 0;
}

/* One resource write: files the hierarchy lacks are skipped, a refused write fails. */
static int set_one(const char *dir, const char *file, const char *val)
{
	if (!has_file(dir, file))
		return 0;
	int r = cg_write(dir, file, val);
	if (r < 0)
		return ocirt_fail("cgroup %s/%s = %s: %s", dir, file, val, strerror(-r)), -1;
	return 0;
}

static int set_v1(const char *d, const struct ocirt_resources *r)
{
	char v[64];
	int rc = 0;
	if (r->memory_limit > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)r->memory_limit);
		rc |= set_one(d, "memory.limit_in_bytes", v);
	}
	if (r->memory_swap > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)r->memory_swap);
		rc |= set_one(d, "memory.memsw.limit_in_bytes", v);
	}
	if (r->memory_reservation > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)r->memory_reservation);
		rc |= set_one(d, "memory.soft_limit_in_bytes", v);
	}
	if (r->pids_limit > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)r->pids_limit);
		rc |= set_one(d, "pids.max", v);
	}
	if (r->cpu_shares) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)r->cpu_shares);
		rc |= set_one(d, "cpu.shares", v);
	}
	if (r->cpu_period) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)r->cpu_period);
		rc |= set_one(d, "cpu.cfs_period_us", v);
	}
	if (r->cpu_quota > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)r->cpu_quota);
		rc |= set_one(d, "cpu.cfs_quota_us", v);
	}
	if (r->cpuset_cpus)
		rc |= set_one(d, "cpuset.cpus", r->cpuset_cpus);
	if (r->cpuset_mems)
		rc |= set_one(d, "cpuset.mems", r->cpuset_mems);
	if (r->devices_deny_all && has_file(d, "devices.deny")) {
		/* the devices a container's /dev holds (null zero full random urandom tty
		 * console ptmx, the pts), and mknod of none (user namespaces forbid it anyway) */
		static const char *const allow[] = {"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm",
						    "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
						    "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"};
		rc |= set_one(d, "devices.deny", "a");
		for (size_t i = 0; i < ARRAY_SIZE(allow); i++)
			rc |= set_one(d, "devices.allow", allow[i]);
	}
	return rc ? -1 : 0;
}

static int set_v2(const char *d, const struct ocirt_resources *r)
{
	char v[64];
	int rc = 0;
	if (r->memory_limit > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)r->memory_limit);
		rc |= set_one(d, "memory.max", v);
		if (r->memory_swap > 0) {
			long long swap = r->memory_swap - r->memory_limit;
			snprintf(v, sizeof(v), "%lld", swap < 0 ? 0 : swap);
			rc |= set_one(d, "memory.swap.max", v);
		}
	}
	if (r->memory_reservation > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)r->memory_reservation);
		rc |= set_one(d, "memory.low", v);
	}
	if (r->pids_limit > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)r->pids_limit);
		rc |= set_one(d, "pids.max", v);
	}
	if (r->cpu_shares) {
		unsigned long long w = 1 + ((r->cpu_shares - 2) * 9999) / 262142;
		snprintf(v, sizeof(v), "%llu", r->cpu_shares < 2 ? 1 : w);
		rc |= set_one(d, "cpu.weight", v);
	}
	if (r->cpu_quota > 0) {
		snprintf(v, sizeof(v), "%lld %llu", (long long)r->cpu_quota,
			 (unsigned long long)(r->cpu_period ? r->cpu_period : 100000));
		rc |= set_one(d, "cpu.max", v);
	}
	if (r->cpuset_cpus)
		rc |= set_one(d, "cpuset.cpus", r->cpuset_cpus);
	if (r->cpuset_mems)
		rc |= set_one(d, "cpuset.mems", r->cpuset_mems);
	return rc ? -1 : 0;
}

/* v2: the controllers enabled down to the container's parent (each ancestor's
 * cgroup.subtree_control), best effort: a missing one shows as a skipped file. */
static void v2_enable(const char *dir)
{
	_cleanup_(freep) char *p = xstrdup(dir);
	char *slash = strrchr(p, '/');
	if (!slash || slash == p)
		return;
	*slash = 0;
	if (!has_file(p, "cgroup.subtree_control"))
		return;
	v2_enable(p);
	static const char *const ctl[] = {"+memory", "+pids", "+cpu", "+cpuset"};
	for (size_t i = 0; i < ARRAY_SIZE(ctl); i++)
		(void)cg_write(p, "cgroup.subtree_control", ctl[i]);
}

int ocirt_cgroup_set(const struct ocirt_cgroup *cg, const struct ocirt_resources *r)
{
	bool any_v1 = false;
	for (int i = 0; i < cg->n; i++)
		any_v1 |= !cg->v2[i];
	for (int i = 0; i < cg->n; i++) {
		if (cg->v2[i] && any_v1)
			continue;	/* hybrid: the cgroup2 tree has no controllers */
		if (cg->v2[i])
			v2_enable(cg->dirs[i]);
		if ((cg->v2[i] ? set_v2 : set_v1)(cg->dirs[i], r) < 0)
			return -1;
	}
	return 0;
}

int ocirt_cgroup_attach(const struct ocirt_cgroup *cg, pid_t pid)
{
	char v[32];
	snprintf(v, sizeof(v), "%d", (int)pid);
	for (int i = 0; i < cg->n; i++) {
		int r = cg_write(cg->dirs[i], "cgroup.procs", v);
		if (r < 0)
			return ocirt_fail("cgroup %s: join pid %d: %s", cg->dirs[i], (int)pid,
					  strerror(-r)), -1;
	}
	return 0;
}

bool ocirt_cgroup_frozen(const struct ocirt_cgroup *cg)
{
	if (cg->freezer && has_file(cg->freezer, "freezer.state")) {
		_cleanup_(freep) char *s = cg_read(cg->freezer, "freezer.state");
		return s && strncmp(s, "THAWED", 6) != 0;
	}
	if (cg->freezer) {
		_cleanup_(freep) char *s = cg_read(cg->freezer, "cgroup.freeze");
		return s && s[0] == '1';
	}
	return false;
}

int ocirt_cgroup_freeze(const struct ocirt_cgroup *cg, bool frozen)
{
	if (!cg->freezer)
		return ocirt_fail("pause: no freezer cgroup (v1 freezer or cgroup v2) here"), -1;
	bool v1 = has_file(cg->freezer, "freezer.state");
	int r = v1 ? cg_write(cg->freezer, "freezer.state", frozen ? "FROZEN" : "THAWED")
		   : cg_write(cg->freezer, "cgroup.freeze", frozen ? "1" : "0");
	if (r < 0)
		return ocirt_fail("%s %s: %s", frozen ? "freeze" : "thaw", cg->freezer,
				  strerror(-r)), -1;
	for (int waited = 0; waited < CG_WAIT_MS; waited += 5) {
		_cleanup_(freep) char *s = cg_read(cg->freezer, v1 ? "freezer.state"
								   : "cgroup.events");
		bool done = v1 ? s && !strncmp(s, frozen ? "FROZEN" : "THAWED", 6)
			       : s && strstr(s, frozen ? "frozen 1" : "frozen 0");
		if (done)
			return 0;
		if (v1 && frozen && s && !strncmp(s, "THAWED", 6))
			(void)cg_write(cg->freezer, "freezer.state", "FROZEN");
		nap_ms(5);
	}
	return ocirt_fail("%s %s: timed out", frozen ? "freeze" : "thaw", cg->freezer), -1;
}

pid_t *ocirt_cgroup_pids(const struct ocirt_cgroup *cg, size_t *n)
{
	*n = 0;
	if (!cg->pids_dir)
		return NULL;
	_cleanup_(freep) char *s = cg_read(cg->pids_dir, "cgroup.procs");
	if (!s)
		return NULL;
	pid_t *v = NULL;
	size_t cap = 0;
	for (char *p = s; *p && *n < CG_PIDS_MAX;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (*n == cap)
			v = xrealloc(v, (cap = cap ? 2 * cap : 16) * sizeof(*v));
		v[(*n)++] = (pid_t)pid;
		p = end + (*end == '\n');
	}
	return v;
}

int ocirt_cgroup_signal_all(const struct ocirt_cgroup *cg, int sig)
{
	size_t n;
	_cleanup_(freep) pid_t *pids = ocirt_cgroup_pids(cg, &n);
	for (size_t i = 0; i < n; i++)
		(void)kill(pids[i], sig);
	return 0;
}

int ocirt_cgroup_destroy(struct ocirt_cgroup *cg)
{
	/* frozen, nothing forks between the read of cgroup.procs and the kills */
	bool frozen = cg->freezer && ocirt_cgroup_freeze(cg, true) == 0;
	for (int round = 0; round < CG_WAIT_MS / 5; round++) {
		size_t n;
		_cleanup_(freep) pid_t *pids = ocirt_cgroup_pids(cg, &n);
		if (!n)
			break;
		for (size_t i = 0; i < n; i++)
			(void)kill(pids[i], SIGKILL);
		if (frozen) {
			(void)ocirt_cgroup_freeze(cg, false);
			frozen = false;
		}
		nap_ms(5);
	}
	if (frozen)
		(void)ocirt_cgroup_freeze(cg, false);
	int rc = 0;
	for (int i = 0; i < cg->n; i++) {
		int r = -1;
		for (int waited = 0; waited < CG_WAIT_MS && (r = rmdir(cg->dirs[i])) < 0 &&
				     errno == EBUSY;
		     waited += 5)
			nap_ms(5);
		if (r < 0 && errno != ENOENT) {
			ocirt_fail("cgroup %s: remove: %s", cg->dirs[i], strerror(errno));
			rc = -1;
			continue;
		}
		/* our default parent (/agentd-runc) goes with its last container */
		char *slash = strrchr(cg->dirs[i], '/');
		if (slash && slash - cg->dirs[i] > 12 && !strncmp(slash - 12, "/agentd-runc", 12)) {
			*slash = 0;
			(void)rmdir(cg->dirs[i]);
			*slash = '/';
		}
	}
	return rc;
}
