/* state.c: a container's state under --root/<id>/ (state.json written atomically under a
 * flock), the init's identity (pid + start time: a recycled pid is never taken for it). */
#include "lib/runtime/verbs.h"

#include "common/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATE_MAX (1u << 20)
#define ID_MAX 1024

bool ocirt_id_valid(const char *id)
{
	size_t n = strlen(id);
	if (!n || n > ID_MAX || !strcmp(id, ".") || !strcmp(id, ".."))
		return false;
	for (const char *p = id; *p; p++)
		if (!a_alnum(*p) && *p != '_' && *p != '.' && *p != '-')
			return false;
	return true;
}

int ocirt_root_open(void)
{
	if (mkdir_p(ocirt_g.root, 0700) < 0 && errno != EEXIST)
		return ocirt_fail("--root %s: %s", ocirt_g.root, strerror(errno)), -1;
	int fd = open(ocirt_g.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ocirt_fail("--root %s: %s", ocirt_g.root, strerror(errno)), -1;
	return fd;
}

static int lock_dir(struct ocirt_state *st, int op)
{
	st->lockfd = openat(st->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (st->lockfd < 0 || flock(st->lockfd, op) < 0)
		return ocirt_fail("container %s: lock: %s", st->id, strerror(errno)), -1;
	return 0;
}

int ocirt_state_new(const char *id, struct ocirt_state *st)
{
	memset(st, 0, sizeof(*st));
	st->dirfd = st->lockfd = -1;
	if (!ocirt_id_valid(id))
		return ocirt_fail("invalid container id '%s': [A-Za-z0-9_.-]+, at most %d bytes",
				  id, ID_MAX), -1;
	st->id = xstrdup(id);
	_cleanup_(closep) int root = ocirt_root_open();
	if (root < 0)
		return -1;
	if (mkdirat(root, id, 0700) < 0)
		return ocirt_fail(errno == EEXIST ? "container with id %s already exists"
						  : "container %s: state dir: %s",
				  id, strerror(errno)), -1;
	st->dirfd = openat(root, id, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (st->dirfd < 0)
		return ocirt_fail("container %s: state dir: %s", id, strerror(errno)), -1;
	st->owner = geteuid();
	char when[64];
	ocirt_time_now(when, sizeof(when));
	st->created = xstrdup(when);
	return lock_dir(st, LOCK_EX);
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int state_parse(struct ocirt_state *st, const char *text, size_t len)
{
	json_t *o = json_loadb(text, len, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return -1;
	}
	st->bundle = jstr(o, "bundle") ? xstrdup(jstr(o, "bundle")) : NULL;
	st->rootfs = jstr(o, "rootfs") ? xstrdup(jstr(o, "rootfs")) : NULL;
	st->created = jstr(o, "created") ? xstrdup(jstr(o, "created")) : NULL;
	st->cgroup = jstr(o, "agentd_cgroup") ? xstrdup(jstr(o, "agentd_cgroup")) : NULL;
	st->pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
	st->start_time =
		(unsigned long long)json_integer_value(json_object_get(o, "agentd_start_time"));
	st->owner = (uid_t)json_integer_value(json_object_get(o, "agentd_owner"));
	st->started = json_is_true(json_object_get(o, "agentd_started"));
	st->proxy_pid = (pid_t)json_integer_value(json_object_get(o, "agentd_proxy_pid"));
	st->proxy_start_time = (unsigned long long)json_integer_value(
		json_object_get(o, "agentd_proxy_start_time"));
	json_t *slot = json_object_get(o, "agentd_userns_uid");
	st->userns_leased = json_is_integer(slot);
	st->userns_uid = (uid_t)json_integer_value(slot);
	st->userns_gid = (gid_t)json_integer_value(json_object_get(o, "agentd_userns_gid"));
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(o, "annotations"), k, v)
		if (json_is_string(v))
			kvv_set(&st->annotations, k, json_string_value(v));
	json_decref(o);
	return st->bundle && st->cgroup ? 0 : -1;
}

int ocirt_state_open(const char *id, bool lock, struct ocirt_state *st)
{
	memset(st, 0, sizeof(*st));
	st->dirfd = st->lockfd = -1;
	if (!ocirt_id_valid(id))
		return ocirt_fail("invalid container id '%s'", id), -1;
	st->id = xstrdup(id);
	_cleanup_(closep) int root = open(ocirt_g.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	st->dirfd = root < 0 ? -1 : openat(root, id, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (st->dirfd < 0)
		return ocirt_fail("container %s does not exist", id), -1;
	if (lock && lock_dir(st, LOCK_EX) < 0)
		return -1;
	size_t len = 0;
	_cleanup_(freep) char *text = read_file_at(st->dirfd, "state.json", STATE_MAX, &len);
	if (!text || state_parse(st, text, len) < 0)
		return ocirt_fail("container %s: state.json unreadable (a create that did not "
				  "finish? delete --force removes it)", id), -1;
	return 0;
}

json_t *ocirt_state_json(const struct ocirt_state *st)
{
	enum ocirt_status s = ocirt_status(st);
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s}", "ociVersion", OCIRT_VERSION, "id",
			      st->id, "status", ocirt_status_name(s), "pid",
			      s == OCIRT_STOPPED ? 0 : (json_int_t)st->pid, "bundle", st->bundle);
	if (st->rootfs)
		json_object_set_new(o, "rootfs", json_string(st->rootfs));
	json_object_set_new(o, "created", json_string(st->created ? st->created : ""));
	json_object_set_new(o, "owner", json_string(""));
	json_t *ann = json_object();
	for (size_t i = 0; i < st->annotations.n; i++)
		json_object_set_new(ann, st->annotations.v[i].key,
				    json_string(st->annotations.v[i].value));
	json_object_set_new(o, "annotations", ann);
	return o;
}

int ocirt_state_save(const struct ocirt_state *st)
{
	json_t *o = ocirt_state_json(st);
	json_object_set_new(o, "pid", json_integer(st->pid));
	json_object_set_new(o, "agentd_start_time", json_integer((json_int_t)st->start_time));
	json_object_set_new(o, "agentd_cgroup", json_string(st->cgroup));
	json_object_set_new(o, "agentd_owner", json_integer(st->owner));
	json_object_set_new(o, "agentd_started", json_boolean(st->started));
	if (st->proxy_pid > 0) {	/* issue 16: rt-egress */
		json_object_set_new(o, "agentd_proxy_pid", json_integer(st->proxy_pid));
		json_object_set_new(o, "agentd_proxy_start_time",
				    json_integer((json_int_t)st->proxy_start_time));
	}
	if (st->userns_leased) {
		json_object_set_new(o, "agentd_userns_uid", json_integer(st->userns_uid));
		json_object_set_new(o, "agentd_userns_gid", json_integer(st->userns_gid));
	}
	json_object_del(o, "status");
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return -ENOMEM;
	int r = 0;
	int fd = openat(st->dirfd, "state.json.tmp",
			O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0 ||
	    renameat(st->dirfd, "state.json.tmp", st->dirfd, "state.json") < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	free(text);
	return r;
}

void ocirt_state_close(struct ocirt_state *st)
{
	free(st->id);
	free(st->bundle);
	free(st->rootfs);
	free(st->created);
	free(st->cgroup);
	kvv_free(&st->annotations);
	if (st->lockfd >= 0)
		close(st->lockfd);
	if (st->dirfd >= 0)
		close(st->dirfd);
	memset(st, 0, sizeof(*st));
	st->dirfd = st->lockfd = -1;
}

int ocirt_state_remove(struct ocirt_state *st)
{
	_cleanup_(closep) int root = open(ocirt_g.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0 || rm_rf_at(root, st->id) < 0)
		return ocirt_fail("container %s: remove state dir: %s", st->id, strerror(errno)),
		       -1;
	return 0;
}

bool ocirt_init_alive(const struct ocirt_state *st)
{
	unsigned long long start;
	bool zombie;
	if (st->pid <= 0 || proc_start_time(st->pid, &start, &zombie) < 0)
		return false;
	return start == st->start_time && !zombie;
}

int ocirt_init_pidfd(const struct ocirt_state *st)
{
	if (st->pid <= 0)
		return -1;
	int fd = sys_pidfd_open(st->pid, 0);
	if (fd < 0)
		return -1;
	/* checked after the pidfd pins the process: the pid cannot be recycled under it */
	if (!ocirt_init_alive(st)) {
		close(fd);
		return -1;
	}
	return fd;
}

enum ocirt_status ocirt_status(const struct ocirt_state *st)
{
	if (st->pid <= 0)
		return OCIRT_CREATING;
	if (!ocirt_init_alive(st))
		return OCIRT_STOPPED;
	if (!st->started)
		return OCIRT_CREATED;
	struct ocirt_cgroup cg;
	enum ocirt_status s = OCIRT_RUNNING;
	if (st->cgroup && ocirt_cgroup_open(st->cgroup, false, &cg) == 0) {
		if (ocirt_cgroup_frozen(&cg))
			s = OCIRT_PAUSED;
		ocirt_cgroup_free(&cg);
	}
	return s;
}

const char *ocirt_status_name(enum ocirt_status s)
{
	static const char *const names[] = {"creating", "created", "running", "stopped", "paused"};
	return names[s];
}

int ocirt_write_pid_file(const char *path, pid_t pid)
{
	_cleanup_(freep) char *tmp = xasprintf("%s.agentd-tmp", path);
	char text[32];
	snprintf(text, sizeof(text), "%d", (int)pid);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, text, strlen(text)) < 0 ? -errno : 0;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}
