/* host_ids.c: the host uid/gid of each container sandbox, one of a subordinate range (like
 * the /etc/subuid ranges newuidmap hands out), so that no two sandboxes share the per-user
 * kernel budgets (pending signals, message queues, inotify instances, pipe pages) and none
 * charges host root's.
 *
 * The range: the /etc/subuid and /etc/subgid entries of user "agentd" when present, else
 * HOST_IDS_DEFAULT_BASE and HOST_IDS_DEFAULT_COUNT. A slot is leased by a lock on
 * HOST_IDS_DIR/<uid> (root's, 0700): a flock held by the sandbox's owner (released by the
 * kernel if it dies) and, in the file, the sandbox's id until its cleanup is done, when
 * the file is removed. A slot
 * whose file still names a sandbox with a cgroup (an owner killed before its cleanup: its
 * processes may live on until the janitor or the stale-sandbox GC removes the cgroup) is
 * skipped, so an id is reused only once nothing of its last sandbox is left. Race-free
 * across threads and processes (the daemon and one-shot runs at once): flock is the only
 * arbiter.
 *
 * issue 16: rt-ids. The same lease serves any pool of slots (struct host_id_pool): the
 * OCI runtime's user namespaces take 65536 ids a slot, its leases outlive the leasing
 * process (each runtime verb is one) and name the container's state dir, which the pool's
 * held() checks in place of a sandbox's cgroup. */
#include "lib/host/host.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>

/* Read the first "agentd:START:COUNT" of a subordinate id file; false when none. */
static bool subid_entry(const char *path, unsigned long *start, unsigned long *count)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	char line[256];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long s, n;
		char end;
		if (sscanf(line, "agentd:%lu:%lu%c", &s, &n, &end) >= 2 && n > 0 && s > 0 &&
		    s + n - 1 < (unsigned long)UINT32_MAX) {
			*start = s;
			*count = n;
			found = true;
		}
	}
	fclose(f);
	return found;
}

void host_ids_range(struct host_id_range *r)
{
	unsigned long us = HOST_IDS_DEFAULT_BASE, uc = HOST_IDS_DEFAULT_COUNT;
	unsigned long gs = HOST_IDS_DEFAULT_BASE, gc = HOST_IDS_DEFAULT_COUNT;
	bool has_u = subid_entry("/etc/subuid", &us, &uc);
	bool has_g = subid_entry("/etc/subgid", &gs, &gc);
	r->uid_base = (uid_t)us;
	r->gid_base = (gid_t)gs;
	r->count = (uint32_t)(uc < gc ? uc : gc);
	r->from_subid = has_u && has_g;
	if (has_u != has_g) {
		/* one without the other: both default, rather than a mix */
		r->uid_base = r->gid_base = HOST_IDS_DEFAULT_BASE;
		r->count = HOST_IDS_DEFAULT_COUNT;
	}
}

/* The lease dir, root's and 0700 (made on first use). */
static int lease_dir(const char *path, agentd_error *err)
{
	int r = mkdir_p(path, 0700);
	if (r < 0)
		return agentd_error_errno(err, -r, "create %s", path);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return agentd_error_errno(err, errno, "open %s", path);
	if (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 077)) {
		close(fd);
		return agentd_error_set(err, EPERM, "%s must be a directory of root's with mode 0700",
					path);
	}
	return fd;
}

/* A lease file names its sandbox in an xattr: data would give the file a page of tmpfs,
 * whose release made every destroy ~0.5 ms slower. The file's content where the
 * filesystem has no trusted xattrs. */
#define LEASE_XATTR "trusted.agentd.sandbox"

static int name_in(int fd, const char *sandbox_id)
{
	size_t len = strlen(sandbox_id);
	if (fsetxattr(fd, LEASE_XATTR, sandbox_id, len, 0) == 0)
		return 0;
	if (errno != ENOTSUP)
		return -1;
	return ftruncate(fd, 0) < 0 || pwrite(fd, sandbox_id, len, 0) < 0 ? -1 : 0;
}

/* The holder the lease file fd names, in out ("" when none). */
static void named_in(int fd, char out[HOST_IDS_HOLDER_MAX + 1])
{
	ssize_t n = fd >= 0 ? fgetxattr(fd, LEASE_XATTR, out, HOST_IDS_HOLDER_MAX) : -1;
	if (n < 0 && fd >= 0 && errno == ENOTSUP)
		n = pread(fd, out, HOST_IDS_HOLDER_MAX, 0);
	out[n > 0 ? n : 0] = '\0';
}

/* The holder the lease file fd names still has something of the slot: the pool says. */
static bool leftover(const struct host_id_pool *p, int fd, uid_t uid)
{
	char prev[HOST_IDS_HOLDER_MAX + 1];
	named_in(fd, prev);
	return prev[0] && p->held(prev, uid, p->arg);
}

/* The sandbox a lease of the container backend names still has a cgroup: an owner killed
 * before its cleanup, or a cleanup that could not empty it. Processes of its uid may
 * remain. */
static bool sandbox_held(const char *sandbox_id, uid_t uid, void *arg)
{
	(void)uid;
	(void)arg;
	struct cgroup *cg = cgroup_open(sandbox_id, NULL);
	bool found = cg != NULL;
	cgroup_close(cg);
	return found;
}

static void sandbox_pool(struct host_id_pool *p)
{
	struct host_id_range r;
	host_ids_range(&r);
	*p = (struct host_id_pool){.dir = HOST_IDS_DIR, .uid_base = r.uid_base,
				   .gid_base = r.gid_base, .slots = r.count, .slot_size = 1,
				   .what = "host uid in the sandbox range", .held = sandbox_held};
}

/* The slot's file (created with O_CREAT in flags), locked and still the file at that name
 * (not one a release unlinked meanwhile); -1 when another holds it. */
static int lock_slot(int dir, uid_t uid, int flags)
{
	char name[16];
	snprintf(name, sizeof(name), "%u", (unsigned)uid);
	int fd = openat(dir, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | flags, 0600);
	if (fd < 0)
		return -1;
	struct stat held, named;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &held) < 0 ||
	    fstatat(dir, name, &named, AT_SYMLINK_NOFOLLOW) < 0 || held.st_ino != named.st_ino ||
	    held.st_dev != named.st_dev) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The slot's file, locked, when it is free: its last holder (named in it) left nothing. */
static int try_slot(const struct host_id_pool *p, int dir, uid_t uid)
{
	int fd = lock_slot(dir, uid, O_CREAT);
	if (fd >= 0 && leftover(p, fd, uid)) {
		close(fd);
		return -1;
	}
	return fd;
}

int host_ids_lease_from(const struct host_id_pool *p, const char *holder,
			struct host_ids *out, agentd_error *err)
{
	out->lease_fd = -1;
	if (strlen(holder) > HOST_IDS_HOLDER_MAX)
		return agentd_error_set(err, ENAMETOOLONG, "lease a %s: holder name too long",
					p->what);
	_cleanup_close_ int dir = lease_dir(p->dir, err);
	if (dir < 0)
		return -1;
	/* The lowest free slot: the lease files are as many as holders ever ran at once. */
	for (uint32_t slot = 0; slot < p->slots; slot++) {
		uid_t uid = p->uid_base + slot * p->slot_size;
		int fd = try_slot(p, dir, uid);
		if (fd < 0)
			continue;
		if (name_in(fd, holder) < 0) {
			int e = errno;
			close(fd);
			return agentd_error_errno(err, e, "record the lease of host uid %u",
						  (unsigned)uid);
		}
		out->uid = uid;
		out->gid = p->gid_base + slot * p->slot_size;
		out->lease_fd = fd;
		return 0;
	}
	uint64_t last = (uint64_t)p->uid_base + (uint64_t)p->slots * p->slot_size - 1;
	return agentd_error_set(err, EAGAIN,
				"no free %s %u..%u (all %u held, by live holders or leftovers of "
				"killed ones; see %s)%s%s",
				p->what, (unsigned)p->uid_base, (unsigned)last, (unsigned)p->slots,
				p->dir, p->widen ? ": " : "",
				p->widen ? p->widen : "");
}

int host_ids_lease(const char *sandbox_id, struct host_ids *out, agentd_error *err)
{
	struct host_id_pool p;
	sandbox_pool(&p);
	return host_ids_lease_from(&p, sandbox_id, out, err);
}

void host_ids_release_from(const struct host_id_pool *p, struct host_ids *ids, bool cleaned)
{
	if (ids->lease_fd < 0)
		return;
	/* Cleaned up: the file goes (unlinked while still locked: a leaser that opened it
	 * meanwhile sees it is no longer the one at that name), the lock with the fd. A
	 * holder with something left keeps its name in it, so the slot stays out of use until
	 * the pool's check says it is gone. */
	if (cleaned) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%u", p->dir, (unsigned)ids->uid);
		if (unlink(path) < 0 && name_in(ids->lease_fd, "") < 0) {
			/* kept naming it: free once the pool's check says it is gone */
		}
	}
	close(ids->lease_fd);
	ids->lease_fd = -1;
}

void host_ids_release(struct host_ids *ids, bool cleaned)
{
	struct host_id_pool p;
	sandbox_pool(&p);
	host_ids_release_from(&p, ids, cleaned);
}

int host_ids_reap_from(const struct host_id_pool *p, uid_t uid, const char *holder)
{
	char name[16], named[HOST_IDS_HOLDER_MAX + 1];
	snprintf(name, sizeof(name), "%u", (unsigned)uid);
	_cleanup_close_ int dir = open(p->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir < 0)
		return 0;
	_cleanup_close_ int fd = lock_slot(dir, uid, 0);
	if (fd < 0) {
		/* Held: by a leaser (it renames it) or a copy of the dead owner's that is about
		 * to close; try again while it still names the sandbox. */
		_cleanup_close_ int peek = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		named_in(peek, named);
		return strcmp(named, holder) == 0;
	}
	named_in(fd, named);
	if (strcmp(named, holder) != 0)
		return 0; /* leased again meanwhile */
	if (leftover(p, fd, uid))
		return 1;
	unlinkat(dir, name, 0);
	return 0;
}

/* Every lease file of the pool nobody holds any more (not flocked: no leaser at work; its
 * holder left nothing, by the pool's check) removed: a release that gave up waiting, or
 * a holder that never came back, leaves its file only until the next sweep. */
void host_ids_sweep_from(const struct host_id_pool *p)
{
	_cleanup_close_ int dir = open(p->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dir >= 0 ? fdopendir(dup(dir)) : NULL;
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		errno = 0;
		unsigned long uid = strtoul(e->d_name, &end, 10);
		uint64_t end_uid = (uint64_t)p->uid_base + (uint64_t)p->slots * p->slot_size;
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || *end || errno ||
		    uid < p->uid_base || uid >= end_uid || (uid - p->uid_base) % p->slot_size)
			continue;
		int fd = lock_slot(dir, (uid_t)uid, 0);
		if (fd < 0)
			continue;
		if (!leftover(p, fd, (uid_t)uid))
			unlinkat(dir, e->d_name, 0);	/* while locked: see host_ids_release_from */
		close(fd);
	}
	closedir(d);
}

int host_ids_reap(uid_t uid, const char *sandbox_id)
{
	struct host_id_pool p;
	sandbox_pool(&p);
	return host_ids_reap_from(&p, uid, sandbox_id);
}

bool host_ids_any_process(uid_t base, uint32_t n)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	bool found = false;
	while (d && !found && (e = readdir(d))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		char path[64], line[256];
		snprintf(path, sizeof(path), "/proc/%.20s/status", e->d_name);
		FILE *f = fopen(path, "re");
		while (f && fgets(line, sizeof(line), f)) {
			unsigned long id[4];
			if (!strncmp(line, "State:\tZ", 8))
				break;	/* exited: it holds nothing but its pid */
			if (sscanf(line, "Uid: %lu %lu %lu %lu", &id[0], &id[1], &id[2], &id[3]) !=
			    4)
				continue;
			for (int i = 0; i < 4; i++)
				found |= id[i] >= base && id[i] - base < n;
			break;
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return found || !d;	/* no /proc: cannot tell, so busy */
}

void host_ids_reap_sandbox(const char *sandbox_id)
{
	DIR *d = opendir(HOST_IDS_DIR);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char *end;
		unsigned long uid = strtoul(e->d_name, &end, 10);
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && !*end && uid < UINT32_MAX)
			host_ids_reap((uid_t)uid, sandbox_id);
	}
	if (d)
		closedir(d);
}
