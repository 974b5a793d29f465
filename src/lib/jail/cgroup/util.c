/* util.c: the small helpers of cgroup/: name check, reading and writing cgroup files,
 * a backoff nap, pid lists of a cgroup tree, and removing one. */
#include "lib/jail/cgroup/cgroup_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <time.h>

bool cg_name_valid(const char *name)
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

char *cg_path(const char *a, const char *b)
{
	return xasprintf("%s/%s", a, b);
}

int cg_write(const char *dir, const char *file, const char *val)
{
	_cleanup_free_ char *p = cg_path(dir, file);
	return write_file_at(AT_FDCWD, p, val);
}

char *cg_read(const char *dir, const char *file)
{
	_cleanup_free_ char *p = cg_path(dir, file);
	return read_file_at(AT_FDCWD, p, CG_PROCS_MAX, NULL);
}

/* Sleep with a backoff from 100 us to 10 ms: most waits here end within a millisecond. */
void cg_nap(unsigned *us)
{
	struct timespec ts = { 0, (long)*us * 1000 };

	nanosleep(&ts, NULL);
	if (*us < 10000)
		*us *= 2;
}

void cg_pidv_push(struct pidv *pv, pid_t p)
{
	if (pv->n == pv->cap) {
		pv->cap = pv->cap ? pv->cap * 2 : 16;
		pv->v = xrealloc(pv->v, pv->cap * sizeof(pid_t));
	}
	pv->v[pv->n++] = p;
}

/* Processes of dir and of any sub-cgroup the sandbox made (v1 cgroup.procs is not
 * recursive). Depth is bounded: cgroup.max.depth may not be set on v1. */
void cg_collect_pids(const char *dir, struct pidv *pv, int depth)
{
	_cleanup_free_ char *t = cg_read(dir, "cgroup.procs");

	for (char *s = t, *end; s && *s; s = end) {
		long p = strtol(s, &end, 10);
		if (end == s)
			break;
		if (p > 0)
			cg_pidv_push(pv, (pid_t)p);
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
		_cleanup_free_ char *sub = cg_path(dir, e->d_name);
		cg_collect_pids(sub, pv, depth + 1);
	}
	closedir(d);
}

/* rmdir a cgroup and the sub-cgroups a sandbox may have made; EBUSY while the last tasks
 * finish exiting is retried briefly. */
int cg_rmdir_tree(const char *path, int depth)
{
	if (depth < 16) {
		DIR *d = opendir(path);
		if (d) {
			struct dirent *e;
			while ((e = readdir(d))) {
				if (e->d_type != DT_DIR || e->d_name[0] == '.')
					continue;
				_cleanup_free_ char *sub = cg_path(path, e->d_name);
				cg_rmdir_tree(sub, depth + 1);
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
		cg_nap(&us);
	}
}
