/* cgroup.c: one cgroup v2 per exec under the guest's /sys/fs/cgroup — memory.max (no swap),
 * pids.max, cpu usage and peak memory read back, kill, freeze, and removal once empty
 * (retried on the loop's tick while killed processes are still going). */
#include "guest/guest.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DOOMED 64

static char doomed[MAX_DOOMED][96];
static unsigned seq;

static int write_at(int dirfd, const char *file, const char *val)
{
	int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = write(fd, val, strlen(val)) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

int cg_init(void)
{
	int root = open(GUEST_CGROUP, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return -errno;
	int rc = write_at(root, "cgroup.subtree_control", "+memory +pids +cpu");
	close(root);
	return rc;
}

int cg_create(struct cgroup *cg, uint32_t chan, uint64_t mem, uint64_t pids)
{
	char val[32];
	snprintf(cg->path, sizeof(cg->path), GUEST_CGROUP "/exec-%u-%u", chan, ++seq);
	if (mkdir(cg->path, 0755) < 0)
		return -errno;
	cg->dirfd = open(cg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg->dirfd < 0) {
		int e = errno;
		rmdir(cg->path);
		return -e;
	}
	int rc = 0;
	if (mem) {
		snprintf(val, sizeof(val), "%llu", (unsigned long long)mem);
		rc = write_at(cg->dirfd, "memory.max", val);
		write_at(cg->dirfd, "memory.swap.max", "0"); /* absent without swap support */
	}
	if (rc == 0 && pids) {
		snprintf(val, sizeof(val), "%llu", (unsigned long long)pids);
		rc = write_at(cg->dirfd, "pids.max", val);
	}
	if (rc < 0) {
		close(cg->dirfd);
		rmdir(cg->path);
		cg->dirfd = -1;
	}
	return rc;
}

void cg_kill(const struct cgroup *cg)
{
	if (cg->dirfd >= 0 && write_at(cg->dirfd, "cgroup.kill", "1") < 0)
		cg_signal(cg, SIGKILL);
}

int cg_freeze(const struct cgroup *cg, bool frozen)
{
	return cg->dirfd >= 0 ? write_at(cg->dirfd, "cgroup.freeze", frozen ? "1" : "0") : 0;
}

static int read_at(const struct cgroup *cg, const char *file, char *buf, size_t cap)
{
	int fd = openat(cg->dirfd, file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? 0 : -1;
}

uint64_t cg_read_key(const struct cgroup *cg, const char *file, const char *key)
{
	char buf[2048];
	size_t k = strlen(key);
	if (cg->dirfd < 0 || read_at(cg, file, buf, sizeof(buf)) < 0)
		return 0;
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, key, k) == 0 && l[k] == ' ')
			return strtoull(l + k + 1, NULL, 10);
	return 0;
}

uint64_t cg_read_u64(const struct cgroup *cg, const char *file)
{
	char buf[64];
	if (cg->dirfd < 0 || read_at(cg, file, buf, sizeof(buf)) < 0)
		return 0;
	return strtoull(buf, NULL, 10);
}

void cg_signal(const struct cgroup *cg, int sig)
{
	char buf[8192];
	if (cg->dirfd < 0 || read_at(cg, "cgroup.procs", buf, sizeof(buf)) < 0)
		return;
	for (char *l = buf; *l;) {
		long pid = strtol(l, &l, 10);
		if (pid > 1)
			kill((pid_t)pid, sig);
		while (*l == '\n')
			l++;
		if (*l && (*l < '0' || *l > '9'))
			break;
	}
}

void cg_destroy(struct cgroup *cg)
{
	if (cg->dirfd < 0)
		return;
	cg_kill(cg);
	close(cg->dirfd);
	cg->dirfd = -1;
	if (rmdir(cg->path) == 0 || errno == ENOENT)
		return;
	for (unsigned i = 0; i < MAX_DOOMED; i++)
		if (!doomed[i][0]) {
			snprintf(doomed[i], sizeof(doomed[i]), "%s", cg->path);
			return;
		}
	glog("cgroup %s left behind: %s", cg->path, strerror(errno));
}

bool cg_reap_tick(void)
{
	bool left = false;
	for (unsigned i = 0; i < MAX_DOOMED; i++) {
		if (!doomed[i][0])
			continue;
		if (rmdir(doomed[i]) == 0 || errno == ENOENT)
			doomed[i][0] = '\0';
		else
			left = true;
	}
	return left;
}
