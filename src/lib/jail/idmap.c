/* idmap.c: idmapped mounts (5.12) — a directory's files seen with the ids a user namespace
 * maps their on-disk ids to, and the throwaway user namespace that carries a mapping. */
#include "lib/jail/jail.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

/* A child in a new user namespace, waiting on a pipe while its maps are written and its
 * namespace opened; it only unshares, reads and exits (async-signal-safe after fork). */
static int write_map(pid_t pid, const char *file, unsigned inner, unsigned outer)
{
	char path[64], map[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	snprintf(map, sizeof(map), "%u %u 1\n", inner, outer);
	return write_file_at(AT_FDCWD, path, map);
}

int idmap_userns_new(uid_t inner, uid_t host_uid, gid_t host_gid)
{
	int go[2], ready[2];
	if (pipe2(go, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(ready, O_CLOEXEC) < 0) {
		int e = errno;
		close(go[0]);
		close(go[1]);
		return -e;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(go[1]); /* else its read would never see EOF */
		close(ready[0]);
		char c = unshare(CLONE_NEWUSER) == 0 ? 'u' : 'e';
		if (write(ready[1], &c, 1) != 1 || c != 'u')
			_exit(1);
		(void)!read(go[0], &c, 1);
		_exit(0);
	}
	close(go[0]);
	close(ready[1]);
	char c = 0;
	int fd = -EAGAIN;
	if (pid < 0)
		fd = -errno;
	else if (read(ready[0], &c, 1) != 1 || c != 'u')
		fd = -EPERM;
	else if ((fd = write_map(pid, "uid_map", inner, host_uid)) == 0 &&
		 (fd = write_map(pid, "gid_map", inner, host_gid)) == 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fd = -errno;
	}
	close(go[1]); /* the child reads EOF and exits */
	close(ready[0]);
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	return fd;
}

int idmap_tree(int dir_fd, const char *name, int userns_fd, uint64_t attrs)
{
	int tree = sys_open_tree(dir_fd, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (tree < 0)
		return -errno;
	if (sys_mount_setattr_idmap(tree, userns_fd) < 0 ||
	    (attrs && sys_mount_setattr(tree, "", AT_EMPTY_PATH, attrs) < 0)) {
		int e = errno;
		close(tree);
		return -e;
	}
	return tree;
}
