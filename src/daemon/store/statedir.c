/* statedir.c: the permissions of the daemon's state dir — owned by the daemon's uid, its
 * files 0600 and its dirs 0711/0700 whatever the umask; checked at start, fixed or refused. */
#include "daemon/store/store.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* What the daemon keeps at the top of its state dir. The database holds every sandbox's
 * policy and the audit's argv: readable by its owner only. The dirs are 0711 because a
 * process sandbox runs as another uid and must traverse to its own dir (which is 0700 and
 * its own); 0711 lets nobody list them. */
struct state_entry {
	const char *name;
	bool dir;
	mode_t mode;
};
static const struct state_entry state_entries[] = {
	{"lock", false, 0600},		{"agentd.db", false, 0600},
	{"agentd.db-wal", false, 0600}, {"agentd.db-shm", false, 0600},
	{"agentd.db-journal", false, 0600}, {"sandboxes", true, 0711},
	{"rootfs-cache", true, 0711}, {"ports", true, 0711},
	/* issue 12: snapshots: the daemon's alone (files of the sandboxes' ids inside) */
	{"snapshots", true, 0700},
};

/* fd's owner must be ours (another uid could swap or read what we write), its type what we
 * expect; a mode other than `mode` is set to it and reported in *fixed. */
static int secure_fd(int fd, const char *path, bool dir, mode_t mode, agentd_strv *fixed,
		     agentd_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return agentd_error_errno(err, errno, "stat %s", path);
	if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
		return agentd_error_set(err, EEXIST, "%s: not a %s: refusing to use it", path,
					dir ? "directory" : "regular file");
	if (st.st_uid != geteuid())
		return agentd_error_set(err, EPERM,
					"%s is owned by uid %u, not by the daemon's uid %u: refusing "
					"to keep state there (chown it, or choose another --state-dir)",
					path, (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & 07777) == mode)
		return 0;
	if (fchmod(fd, mode) < 0)
		return agentd_error_errno(err, errno, "%s has mode %04o: chmod %04o", path,
					  (unsigned)(st.st_mode & 07777), (unsigned)mode);
	if (fixed) {
		_cleanup_free_ char *m = xasprintf("%s %04o -> %04o", path,
						    (unsigned)(st.st_mode & 07777), (unsigned)mode);
		strv_push(fixed, m);
	}
	return 0;
}

int statedir_secure(const char *dir, agentd_strv *fixed, agentd_error *err)
{
	if (mkdir(dir, 0711) < 0 && errno != EEXIST)
		return agentd_error_errno(err, errno, "state dir %s", dir);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return agentd_error_errno(err, errno, "state dir %s", dir);
	if (secure_fd(dfd, dir, true, 0711, fixed, err) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(state_entries); i++) {
		const struct state_entry *e = &state_entries[i];
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, e->name);
		/* O_NOFOLLOW: a symlink planted in place of the database is refused (ELOOP);
		 * O_NONBLOCK: a FIFO does not block the open, it fails the type check. */
		int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
			    (e->dir ? O_DIRECTORY : O_NOCTTY);
		_cleanup_close_ int fd = openat(dfd, e->name, flags);
		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd < 0)
			return agentd_error_errno(err, errno, "%s", path);
		if (secure_fd(fd, path, e->dir, e->mode, fixed, err) < 0)
			return -1;
	}
	return 0;
}

int statedir_create_file(const char *dir, const char *name, agentd_error *err)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	_cleanup_close_ int fd =
	    open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
	if (fd < 0)
		return agentd_error_errno(err, errno, "create %s", path);
	return secure_fd(fd, path, false, 0600, NULL, err);
}

/* The rootfs cache (mounts/cache.c, <state dir>/rootfs-cache: the /etc files sandboxes copy
 * into their root) is a tmpfs of the daemon's own mount namespace: in memory, and gone with
 * the daemon. (Sandboxes bind nothing from it: their mountinfo names no state dir path.)
 * The namespace is a slave of the host's (host mounts still reach the daemon, its own
 * never leave) and ends with the daemon, crash or not: nothing to clean up. */
int statedir_private_cache(const char *dir, agentd_error *err)
{
	_cleanup_free_ char *cache = xasprintf("%s/rootfs-cache", dir);
	if (mkdir(cache, 0711) < 0 && errno != EEXIST)
		return agentd_error_errno(err, errno, "create %s", cache);
	if (unshare(CLONE_NEWNS) < 0)
		return agentd_error_errno(err, errno, "a mount namespace of its own");
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return agentd_error_errno(err, errno, "make the mount namespace a slave");
	if (mount("tmpfs", cache, "tmpfs", MS_NOSUID | MS_NODEV,
		  "mode=0711,size=64m,nr_inodes=16384") < 0)
		return agentd_error_errno(err, errno, "mount a tmpfs on %s", cache);
	return 0;
}
