/* checkpoint.c: gondolin's disk checkpoints as agentd snapshots: ckpt-N files in the sandbox's
 * own dir (<work_root>/gondolin-<id>/), and copies of one into and out of a caller's dir. */
#include "gondolin.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The one file of a snapshot in a caller's directory (agentd_sandbox_snapshot_to). */
#define CKPT_FILE "gondolin-checkpoint.qcow2"
#define COPY_CHUNK (1u << 20)

/* The path of checkpoint snap_id, its directory made (0700) if needed. */
static int ckpt_path(agentd_sandbox *sb, const char *snap_id, char *buf, size_t n,
		     agentd_error *err)
{
	gondolin_sandbox *g = agentd_sandbox_priv(sb);
	const char *root = agentd_backend_work_root(agentd_sandbox_backend(sb));
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/gondolin-%s", root, agentd_sandbox_id(sb));
	if (mkdir(root, 0700) < 0 && errno != EEXIST)
		return agentd_error_set(err, errno, "checkpoint dir %s: %s", root, strerror(errno));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return agentd_error_set(err, errno, "checkpoint dir %s: %s", dir, strerror(errno));
	if (!g->snap_dir && !(g->snap_dir = strdup(dir)))
		return agentd_error_set(err, ENOMEM, "out of memory");
	if ((size_t)snprintf(buf, n, "%s/%s.qcow2", dir, snap_id) >= n)
		return agentd_error_set(err, ENAMETOOLONG, "checkpoint path too long");
	return 0;
}

/* A snapshot id as this backend makes them: "ckpt-" and 1..9 digits. */
static bool ckpt_id_valid(const char *id)
{
	if (strncmp(id, "ckpt-", 5) != 0 || !id[5] || strlen(id) > 14)
		return false;
	for (const char *p = id + 5; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/* The helper's checkpoint or restore of the file at path (the lock held). */
static int ckpt_call(gondolin_sandbox *g, const char *op, const char *path, agentd_error *err)
{
	json_t *f = json_object(), *res;
	json_object_set_new(f, "path", json_string(path));
	int r = gondolin_helper_call(&g->helper, op, f, GONDOLIN_CHECKPOINT_MS, &res, err);
	json_decref(res);
	return r;
}

/* A new checkpoint: its id in id, its path in path. */
static int take(agentd_sandbox *sb, char id[32], char *path, size_t n, agentd_error *err)
{
	gondolin_sandbox *g = agentd_sandbox_priv(sb);
	snprintf(id, 32, "ckpt-%u", ++g->n_snapshots);
	if (ckpt_path(sb, id, path, n, err) < 0)
		return -1;
	return ckpt_call(g, "checkpoint", path, err);
}

int gondolin_snapshot(agentd_sandbox *sb, const char *name, char **snapshot_id,
		      agentd_error *err)
{
	(void)name;
	gondolin_sandbox *g = agentd_sandbox_priv(sb);
	char id[32], path[PATH_MAX];
	pthread_mutex_lock(&g->lock);
	int r = take(sb, id, path, sizeof(path), err);
	pthread_mutex_unlock(&g->lock);
	if (r == 0 && !(*snapshot_id = strdup(id)))
		return agentd_error_set(err, ENOMEM, "snapshot: out of memory");
	return r < 0 ? agentd_error_prefix(err, "snapshot") : 0;
}

int gondolin_restore(agentd_sandbox *sb, const char *snapshot_id, agentd_error *err)
{
	if (!ckpt_id_valid(snapshot_id))
		return agentd_error_set(err, EINVAL, "restore: \"%s\" is not a gondolin snapshot "
						     "id (ckpt-N)", snapshot_id);
	gondolin_sandbox *g = agentd_sandbox_priv(sb);
	char path[PATH_MAX];
	pthread_mutex_lock(&g->lock);
	int r = ckpt_path(sb, snapshot_id, path, sizeof(path), err);
	if (r == 0 && access(path, F_OK) < 0)
		r = agentd_error_set(err, ENOENT, "no snapshot %s", snapshot_id);
	if (r == 0)
		r = ckpt_call(g, "restore", path, err);
	pthread_mutex_unlock(&g->lock);
	return r < 0 ? agentd_error_prefix(err, "restore") : 0;
}

/* Copy src to dst, its host disk (allocated) at most limit: EDQUOT beyond. */
static int copy_bounded(int src, int dst, uint64_t limit, uint64_t *bytes, agentd_error *err)
{
	struct stat st;
	if (fstat(src, &st) < 0 || !S_ISREG(st.st_mode))
		return agentd_error_set(err, EINVAL, "a checkpoint must be a regular file");
	for (;;) {
		ssize_t n = copy_file_range(src, NULL, dst, NULL, COPY_CHUNK, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return agentd_error_set(err, errno, "copy checkpoint: %s", strerror(errno));
		struct stat ds;
		if (fstat(dst, &ds) < 0)
			return agentd_error_set(err, errno, "copy checkpoint: %s", strerror(errno));
		*bytes = (uint64_t)ds.st_blocks * 512;
		if (*bytes > limit)
			return agentd_error_set(err, EDQUOT, "the checkpoint takes more than %llu "
							     "bytes", (unsigned long long)limit);
		if (n == 0)
			return 0;
	}
}

int gondolin_snapshot_to(agentd_sandbox *sb, int dir_fd, uint64_t max_bytes, uint64_t *bytes,
			 agentd_error *err)
{
	gondolin_sandbox *g = agentd_sandbox_priv(sb);
	uint64_t own = agentd_sandbox_spec(sb)->limits.max_snapshot_bytes;
	uint64_t limit = own && own < max_bytes ? own : max_bytes;
	char id[32], path[PATH_MAX];
	*bytes = 0;
	pthread_mutex_lock(&g->lock);
	int r = take(sb, id, path, sizeof(path), err);
	int src = r < 0 ? -1 : open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int dst = src < 0 ? -1
			  : openat(dir_fd, CKPT_FILE,
				   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (r == 0 && (src < 0 || dst < 0))
		r = agentd_error_set(err, errno, "checkpoint file: %s", strerror(errno));
	if (r == 0)
		r = copy_bounded(src, dst, limit, bytes, err);
	if (r < 0 && dst >= 0)
		unlinkat(dir_fd, CKPT_FILE, 0);
	if (src >= 0)
		close(src);
	if (dst >= 0)
		close(dst);
	pthread_mutex_unlock(&g->lock);
	return r < 0 ? agentd_error_prefix(err, "snapshot") : 0;
}

int gondolin_restore_from(agentd_sandbox *sb, int dir_fd, agentd_error *err)
{
	gondolin_sandbox *g = agentd_sandbox_priv(sb);
	char id[32], path[PATH_MAX];
	uint64_t bytes;
	pthread_mutex_lock(&g->lock);
	snprintf(id, sizeof(id), "ckpt-%u", ++g->n_snapshots);
	int r = ckpt_path(sb, id, path, sizeof(path), err);
	int src = r < 0 ? -1 : openat(dir_fd, CKPT_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (r == 0 && src < 0)
		r = agentd_error_set(err, errno, "%s: %s (not a gondolin snapshot?)", CKPT_FILE,
				     strerror(errno));
	int dst = r < 0 ? -1 : open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (r == 0 && dst < 0)
		r = agentd_error_set(err, errno, "%s: %s", path, strerror(errno));
	if (r == 0)
		r = copy_bounded(src, dst, UINT64_MAX, &bytes, err);
	if (src >= 0)
		close(src);
	if (dst >= 0)
		close(dst);
	if (r == 0)
		r = ckpt_call(g, "restore", path, err);
	pthread_mutex_unlock(&g->lock);
	return r < 0 ? agentd_error_prefix(err, "restore") : 0;
}

void gondolin_remove_checkpoints(gondolin_sandbox *g)
{
	if (!g->snap_dir)
		return;
	int dfd = open(g->snap_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
	else if (dfd >= 0)
		close(dfd);
	rmdir(g->snap_dir);
	free(g->snap_dir);
	g->snap_dir = NULL;
}
