/* sandbox_files.c: host-side access to files in a sandbox's workdir (the daemon's files
 * API). The sandbox is hostile: every path is resolved beneath a workdir fd held from before
 * any sandboxed code ran, with the sandbox's own filesystem ids, and never trusted further. */
#include "lib/host/host.h"

#include <fcntl.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define FILES_PATH_MAX 4096

const char *agentd_sandbox_path_relative(const agentd_spec *spec, const char *path,
					 agentd_error *err)
{
	if (!path || !*path) {
		agentd_error_set(err, EINVAL, "path: empty");
		return NULL;
	}
	if (strlen(path) > FILES_PATH_MAX) {
		agentd_error_set(err, EINVAL, "path: longer than %d bytes", FILES_PATH_MAX);
		return NULL;
	}
	const char *rel = path;
	if (*path == '/') {
		size_t n = strlen(spec->workdir);
		while (n > 1 && spec->workdir[n - 1] == '/')
			n--;
		if (strncmp(path, spec->workdir, n) != 0 || path[n] != '/' || !path[n + 1]) {
			agentd_error_set(err, EINVAL, "path %s: outside the sandbox's workdir %s",
					 path, spec->workdir);
			return NULL;
		}
		rel = path + n + 1;
	}
	for (const char *c = rel; *c;) {
		const char *e = strchrnul(c, '/');
		size_t len = (size_t)(e - c);
		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.')) {
			agentd_error_set(err, EINVAL,
					 "path %s: empty, \".\" or \"..\" component not allowed", path);
			return NULL;
		}
		c = *e ? e + 1 : e;
	}
	if (rel[strlen(rel) - 1] == '/') {
		agentd_error_set(err, EINVAL, "path %s: names a directory", path);
		return NULL;
	}
	return rel;
}

int workdir_open_file(int dir, const char *rel, bool write, uid_t uid, gid_t gid,
		      const char *path, agentd_error *err)
{
	/* O_NONBLOCK: a FIFO planted by the sandbox must not block us; O_NOCTTY: nor a tty
	 * become ours. Only regular files are used (checked on the opened fd). */
	uint64_t flags = (write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY) | O_NOFOLLOW |
			 O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	/* The sandbox's fs ids for the open (per thread; root's fs capabilities drop with
	 * them) and none of root's supplementary groups: the host then reads or writes no
	 * more than the sandbox could itself, and the files it creates belong to the
	 * sandbox. */
	struct fsid_save old = fsids_enter(uid, gid);
	int fd = openat_beneath(dir, rel, flags, write ? 0644 : 0, 0);
	int e = errno;
	fsids_leave(old);
	if (fd < 0) {
		if (e == ELOOP)
			return agentd_error_set(err, ELOOP, "%s: a symbolic link (not followed)",
						path);
		if (e == ENOSYS) /* no safe way to resolve beneath the workdir: refuse */
			return agentd_error_set(err, ENOSYS, "%s: needs openat2 (Linux 5.6)", path);
		if (e == ENXIO || e == EXDEV)
			e = EINVAL;
		return agentd_error_errno(err, e, "%s", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return agentd_error_set(err, EINVAL, "%s: not a regular file", path);
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

int sandbox_workdir_dup(int fd, uid_t uid, gid_t gid, uid_t *uid_out, gid_t *gid_out,
			agentd_error *err)
{
	int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (r < 0)
		return agentd_error_errno(err, errno, "dup the workdir fd");
	*uid_out = uid;
	*gid_out = gid;
	return r;
}

void agentd_cleanup_stale_sandbox(const char *work_root, const char *id)
{
	if (work_root && id && *id && !strchr(id, '/') && strcmp(id, ".") && strcmp(id, ".."))
		sandbox_dir_remove(work_root, id);
	cgroup_gc();
	/* its host uid, once its cgroup is gone (a durable sandbox's owner leaves no janitor) */
	if (id && *id && !strchr(id, '/'))
		host_ids_reap_sandbox(id);
}
