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
 * arbiter. */
#include "lib/host/host.h"

#include <dirent.h>
#include <fcntl.h>
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
static int lease_dir(agentd_error *err)
{
	int r = mkdir_p(HOST_IDS_DIR, 0700);
	if (r < 0)
		return agentd_error_errno(err, -r, "create %s", HOST_IDS_DIR);
	int fd = open(HOST_IDS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return agentd_error_errno(err, errno, "open %s", HOST_IDS_DIR);
	if (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 077)) {
		close(fd);
		return agentd_error_set(
		    err, EPERM, "%s must be a directory of root's with mode 0700", HOST_IDS_DIR);
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

/* The sandbox id the lease file fd names, in out ("" when none). */
static void named_in(int fd, char out[AGENTD_ID_LEN + 1])
{
	ssize_t n = fd >= 0 ? fgetxattr(fd, LEASE_XATTR, out, AGENTD_ID_LEN) : -1;
	if (n < 0 && fd >= 0 && errno == ENOTSUP)
		n = pread(fd, out, AGENTD_ID_LEN, 0);
	out[n > 0 ? n : 0] = '\0';
}

/* The sandbox the lease file fd names still has a cgroup: an owner killed before its
 * cleanup, or a cleanup that could not empty it. Processes of its uid may remain. */
static bool leftover(int fd)
{
	char prev[AGENTD_ID_LEN + 1];
	named_in(fd, prev);
	if (!prev[0])
		return false;
	struct cgroup *cg = cgroup_open(prev, NULL);
	bool found = cg != NULL;
	cgroup_close(cg);
	return found;
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

/* The slot's file, locked, when it is free: its last sandbox (named in it) is cleaned up. */
static int try_slot(int dir, uid_t uid)
{
	int fd = lock_slot(dir, uid, O_CREAT);
	if (fd >= 0 && leftover(fd)) {
		close(fd);
		return -1;
	}
	return fd;
}

int host_ids_lease(const char *sandbox_id, struct host_ids *out, agentd_error *err)
{
	struct host_id_range r;
	out->lease_fd = -1;
	host_ids_range(&r);
	_cleanup_close_ int dir = lease_dir(err);
	if (dir < 0)
		return -1;
	/* The lowest free slot: the lease files are as many as sandboxes ever ran at once. */
	for (uint32_t slot = 0; slot < r.count; slot++) {
		int fd = try_slot(dir, r.uid_base + slot);
		if (fd < 0)
			continue;
		if (name_in(fd, sandbox_id) < 0) {
			int e = errno;
			close(fd);
			return agentd_error_errno(err, e, "record the lease of host uid %u",
						  (unsigned)(r.uid_base + slot));
		}
		out->uid = r.uid_base + slot;
		out->gid = r.gid_base + slot;
		out->lease_fd = fd;
		return 0;
	}
	return agentd_error_set(err, EAGAIN,
				"no free host uid in the sandbox range %u..%u (%u sandboxes "
				"or leftovers of killed ones hold them all; see %s)",
				(unsigned)r.uid_base, (unsigned)(r.uid_base + r.count - 1),
				(unsigned)r.count, HOST_IDS_DIR);
}

void host_ids_release(struct host_ids *ids, bool cleaned)
{
	if (ids->lease_fd < 0)
		return;
	/* Cleaned up: the file goes (unlinked while still locked: a leaser that opened it
	 * meanwhile sees it is no longer the one at that name), the lock with the fd. A
	 * sandbox whose cgroup is still there keeps its name in it, so the uid stays out of
	 * use until the stale-sandbox sweep has removed the cgroup. */
	if (cleaned) {
		char path[sizeof(HOST_IDS_DIR) + 16];
		snprintf(path, sizeof(path), "%s/%u", HOST_IDS_DIR, (unsigned)ids->uid);
		if (unlink(path) < 0 && name_in(ids->lease_fd, "") < 0) {
			/* kept naming it: free once its cgroup is gone, which it is */
		}
	}
	close(ids->lease_fd);
	ids->lease_fd = -1;
}

int host_ids_reap(uid_t uid, const char *sandbox_id)
{
	char name[16], named[AGENTD_ID_LEN + 1];
	snprintf(name, sizeof(name), "%u", (unsigned)uid);
	_cleanup_close_ int dir =
	    open(HOST_IDS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir < 0)
		return 0;
	_cleanup_close_ int fd = lock_slot(dir, uid, 0);
	if (fd < 0) {
		/* Held: by a leaser (it renames it) or a copy of the dead owner's that is about
		 * to close; try again while it still names the sandbox. */
		_cleanup_close_ int peek = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		named_in(peek, named);
		return strcmp(named, sandbox_id) == 0;
	}
	named_in(fd, named);
	if (strcmp(named, sandbox_id) != 0)
		return 0; /* leased again meanwhile */
	if (leftover(fd))
		return 1;
	unlinkat(dir, name, 0);
	return 0;
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
