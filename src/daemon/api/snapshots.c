/* api_snapshots.c: durable snapshots — taken into <state>/snapshots/<id> (0700, the daemon's
 * alone), listed, deleted, restored, and the seed of a new sandbox (from_snapshot). */
#include "daemon/api/api.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One snapshot operation at a time: the budget is checked and charged under it, and a
 * snapshot being read (a restore, a fork) is not deleted under its reader. */
static pthread_mutex_t snap_lock = PTHREAD_MUTEX_INITIALIZER;

static char *snap_root(const struct daemon *d)
{
	return xasprintf("%s/snapshots", d->cfg.state_dir);
}

static int open_snap_root(const struct daemon *d)
{
	_cleanup_free_ char *root = snap_root(d);
	return open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

int api_snapshots_open(struct daemon *d, agentd_error *err)
{
	_cleanup_free_ char *root = snap_root(d);
	if ((mkdir(root, 0700) < 0 && errno != EEXIST) || chmod(root, 0700) < 0)
		return agentd_error_errno(err, errno, "%s", root);
	/* A snapshot cut short by a crash has files and no row: removed. A row whose files
	 * are gone names nothing: dropped. */
	_cleanup_close_ int dfd = open_snap_root(d);
	DIR *dir = dfd < 0 ? NULL : fdopendir(dup(dfd));
	struct dirent *e;
	while (dir && (e = readdir(dir))) {
		json_t *row = api_valid_id(e->d_name) ? state_snapshot_find(d->st, e->d_name) : NULL;
		if (!row && e->d_name[0] != '.') {
			rm_rf_at(dfd, e->d_name);
			dlog("warn", "msg=\"removed an unfinished snapshot\" snapshot=%s", e->d_name);
		}
		json_decref(row);
	}
	if (dir)
		closedir(dir);
	json_t *all = state_snapshot_list(d->st, NULL);
	size_t i;
	json_t *o;
	json_array_foreach(all, i, o) {
		const char *id = json_string_value(json_object_get(o, "id"));
		struct stat st;
		if (dfd >= 0 && fstatat(dfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
			state_snapshot_delete(d->st, id, NULL);
			dlog("warn", "msg=\"dropped a snapshot without files\" snapshot=%s", id);
		}
	}
	json_decref(all);
	return 0;
}

static const char *row_str(json_t *row, const char *key)
{
	return json_string_value(json_object_get(row, key));
}

/* The snapshot ref (id or name), of sandbox_id if not NULL; else NULL and a 404. */
static json_t *find_or_reply(struct daemon *d, const char *ref, const char *sandbox_id,
			     struct reply *out)
{
	json_t *row = state_snapshot_find(d->st, ref);
	if (row && (!sandbox_id || !strcmp(row_str(row, "sandbox_id"), sandbox_id)))
		return row;
	json_decref(row);
	if (sandbox_id)
		reply_error(out, 404, "no snapshot %s of sandbox %s", ref, sandbox_id);
	else
		reply_error(out, 404, "no snapshot %s", ref);
	return NULL;
}

/* What the next snapshot of l may occupy: what is left of its own max_snapshot_bytes
 * (its snapshots still kept) and of the daemon's --max-snapshot-bytes; 0 + the reply when
 * nothing is. *daemon_bound: the daemon's budget is the smaller. */
static uint64_t room_for(struct daemon *d, struct live *l, bool *daemon_bound)
{
	uint64_t mine = agentd_sandbox_spec(l->sb)->limits.max_snapshot_bytes;
	uint64_t used = state_snapshot_bytes(d->st, l->id);
	uint64_t all = state_snapshot_bytes(d->st, NULL);
	uint64_t left = mine > used ? mine - used : 0;
	uint64_t dleft = d->cfg.max_snapshot_bytes > all ? d->cfg.max_snapshot_bytes - all : 0;
	*daemon_bound = dleft < left;
	return *daemon_bound ? dleft : left;
}

static void reply_over(struct daemon *d, struct live *l, bool daemon_bound, struct reply *out)
{
	if (daemon_bound)
		reply_error(out, 507,
			    "snapshot refused: the daemon's snapshots would occupy more than "
			    "--max-snapshot-bytes (%llu bytes of host disk; %llu in use): delete "
			    "some (DELETE /v1/snapshots/{id})",
			    (unsigned long long)d->cfg.max_snapshot_bytes,
			    (unsigned long long)state_snapshot_bytes(d->st, NULL));
	else
		reply_error(out, 413,
			    "snapshot refused: the sandbox's snapshots would occupy more than "
			    "limits.max_snapshot_bytes (%llu bytes of host disk; %llu in use by its "
			    "snapshots kept)",
			    (unsigned long long)agentd_sandbox_spec(l->sb)->limits.max_snapshot_bytes,
			    (unsigned long long)state_snapshot_bytes(d->st, l->id));
}

static json_t *row_json(json_t *row)
{
	json_t *o = json_deep_copy(row);
	json_object_set(o, "snapshot_id", json_object_get(row, "id"));
	return o;
}

/* Into a new directory of ours; the row once it is whole (a crash in between leaves files
 * without a row, which the next start removes). */
static int take(struct daemon *d, struct live *l, struct api_request *r, json_t **out_row,
		struct reply *out)
{
	char id[AGENTD_ID_LEN];
	random_id(id);
	bool daemon_bound;
	uint64_t room = room_for(d, l, &daemon_bound);
	if (room == 0) {
		reply_over(d, l, daemon_bound, out);
		return -1;
	}
	agentd_error err = {0};
	_cleanup_close_ int root = open_snap_root(d);
	if (root < 0 || mkdirat(root, id, 0700) < 0) {
		reply_error(out, 500, "snapshot: make its directory: %s", strerror(errno));
		return -1;
	}
	_cleanup_close_ int dfd = openat(root, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	uint64_t bytes = 0;
	int rc = dfd < 0 ? agentd_error_errno(&err, errno, "snapshot: open its directory")
			 : agentd_sandbox_snapshot_to(l->sb, dfd, room, &bytes, &err);
	const agentd_spec *spec = agentd_sandbox_spec(l->sb);
	struct snapshot_row row = {.id = id, .sandbox_id = l->id, .name = r->snapshot_name,
				   .backend = l->backend, .workdir = spec->workdir,
				   .size_bytes = bytes};
	if (rc == 0 && state_snapshot_insert(d->st, &row, &err) == 0) {
		*out_row = state_snapshot_find(d->st, id);
		return 0;
	}
	rm_rf_at(root, id);
	if (err.code == EDQUOT)
		reply_over(d, l, daemon_bound, out);
	else
		reply_agentd_error(out, 0, &err);
	return -1;
}

void api_snapshot_take(struct daemon *d, struct live *l, struct api_request *r,
		       const struct client *c, struct reply *out)
{
	uint64_t t0 = mono_ms();
	json_t *row = NULL;
	pthread_mutex_lock(&snap_lock);
	json_t *dup = r->snapshot_name ? state_snapshot_find(d->st, r->snapshot_name) : NULL;
	if (dup)
		reply_error(out, 409, "a snapshot named %s exists (%s)", r->snapshot_name,
			    row_str(dup, "id"));
	else
		take(d, l, r, &row, out);
	pthread_mutex_unlock(&snap_lock);
	json_decref(dup);
	audit(d, c, "snapshot", l->id, NULL, l->digest, l->backend,
	      row ? row_str(row, "id") : "error", mono_ms() - t0);
	if (row)
		reply_json(out, 201, row_json(row));
	json_decref(row);
}

/* The directory of snapshot row, opened (snap_lock held). */
static int open_snapshot(struct daemon *d, json_t *row, agentd_error *err)
{
	_cleanup_close_ int root = open_snap_root(d);
	int fd = root < 0 ? -1
			  : openat(root, row_str(row, "id"),
				   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? agentd_error_errno(err, errno, "snapshot %s", row_str(row, "id")) : fd;
}

void api_snapshot_restore(struct daemon *d, struct live *l, struct api_request *r,
			  const struct client *c, struct reply *out)
{
	json_t *row = find_or_reply(d, r->snapshot_id, l->id, out);
	if (!row)
		return;
	agentd_error err = {0};
	uint64_t t0 = mono_ms();
	pthread_mutex_lock(&snap_lock);
	_cleanup_close_ int fd = open_snapshot(d, row, &err);
	int rc = fd < 0 ? -1 : agentd_sandbox_restore_from(l->sb, fd, &err);
	pthread_mutex_unlock(&snap_lock);
	audit(d, c, "restore", l->id, NULL, l->digest, l->backend,
	      rc < 0 ? err.msg : row_str(row, "id"), mono_ms() - t0);
	if (rc < 0)
		reply_agentd_error(out, 0, &err);
	else
		reply_json(out, 200, json_pack("{s:s, s:s}", "sandbox_id", l->id, "snapshot_id",
					       row_str(row, "id")));
	json_decref(row);
}

void api_snapshot_seeded(struct daemon *d, struct live *l, struct api_request *r)
{
	const char *mode = agentd_sandbox_get_caps(l->sb)->from_snapshot;
	json_t *row = mode && !strcmp(mode, "overlay") ? state_snapshot_find(d->st, r->from_snapshot)
						       : NULL;
	if (row)
		state_sandbox_set_from_snapshot(d->st, l->id, row_str(row, "id"), NULL);
	json_decref(row);
}

char *api_snapshot_seed(struct daemon *d, struct api_request *r, const agentd_spec *spec,
			struct reply *out)
{
	json_t *row = find_or_reply(d, r->from_snapshot, NULL, out);
	if (!row)
		return NULL;
	char *dir = NULL;
	const char *wd = row_str(row, "workdir"), *be = row_str(row, "backend");
	const char *want = r->backend ? agentd_canonical_backend_name(r->backend) : NULL;
	if (!wd || strcmp(wd, spec->workdir))
		reply_error(out, 400,
			    "from_snapshot: the snapshot %s is of workdir %s, the spec's workdir is "
			    "%s: they must be equal",
			    row_str(row, "id"), wd ? wd : "(unknown)", spec->workdir);
	else if (r->backend && (!want || !be || strcmp(want, be)))
		reply_error(out, 400, "from_snapshot: the snapshot %s is of backend %s, not %s",
			    row_str(row, "id"), be ? be : "(unknown)", r->backend);
	else
		dir = xasprintf("%s/snapshots/%s", d->cfg.state_dir, row_str(row, "id"));
	if (dir && !r->backend && be)
		r->backend = xstrdup(be);
	json_decref(row);
	if (dir)
		pthread_mutex_lock(&snap_lock); /* not deleted while it is copied */
	return dir;
}

void api_snapshot_seed_done(char *dir)
{
	if (!dir)
		return;
	pthread_mutex_unlock(&snap_lock);
	free(dir);
}

static void delete(struct daemon *d, struct api_request *r, const struct client *c,
		   struct reply *out)
{
	json_t *sb = r->route == ROUTE_SANDBOX_SNAPSHOT_DELETE ? state_sandbox_get(d->st, r->id)
							       : NULL;
	/* its row's id ({id} may be its name), or what was asked (then nothing matches) */
	const char *of = sb ? json_string_value(json_object_get(sb, "id"))
			    : r->route == ROUTE_SANDBOX_SNAPSHOT_DELETE ? r->id : NULL;
	pthread_mutex_lock(&snap_lock);
	json_t *row = find_or_reply(d, r->snapshot_ref, of, out);
	agentd_error err = {0};
	int rc = -1;
	json_t *users = row ? state_snapshot_users(d->st, row_str(row, "id")) : NULL;
	if (json_array_size(users)) {
		/* their files are overlays on it: it goes once they are destroyed */
		reply_error(out, 409, "snapshot %s holds the files of %zu sandbox(es) made from "
			    "it (%s...): destroy them first", row_str(row, "id"),
			    json_array_size(users),
			    row_str(json_array_get(users, 0), "id"));
		json_decref(row);
		row = NULL;
	}
	json_decref(users);
	if (row) {
		_cleanup_close_ int root = open_snap_root(d);
		int gone = root < 0 ? -errno : rm_rf_at(root, row_str(row, "id"));
		rc = gone < 0 ? agentd_error_errno(&err, -gone, "remove snapshot %s",
						   row_str(row, "id"))
			      : state_snapshot_delete(d->st, row_str(row, "id"), &err);
	}
	pthread_mutex_unlock(&snap_lock);
	if (row) {
		audit(d, c, "snapshot-delete", row_str(row, "sandbox_id"), NULL, NULL,
		      row_str(row, "backend"), rc < 0 ? err.msg : row_str(row, "id"), 0);
		if (rc < 0)
			reply_agentd_error(out, 500, &err);
		else
			reply_json(out, 200, json_pack("{s:s, s:b}", "id", row_str(row, "id"),
						       "deleted", 1));
	}
	json_decref(row);
	json_decref(sb);
}

static json_t *list_json(json_t *rows)
{
	size_t i;
	json_t *o, *a = json_array();
	json_array_foreach(rows, i, o)
		json_array_append_new(a, row_json(o));
	json_decref(rows);
	return a;
}

void api_snapshots(struct daemon *d, struct api_request *r, const struct client *c,
		   struct reply *out)
{
	switch (r->route) {
	case ROUTE_SANDBOX_SNAPSHOTS: {
		/* its row's id: {id} may be its name */
		json_t *sb = state_sandbox_get(d->st, r->id);
		const char *id = json_string_value(json_object_get(sb, "id"));
		if (!id)
			reply_error(out, 404, "no sandbox %s", r->id);
		else
			reply_json(out, 200,
				   json_pack("{s:o, s:I}", "snapshots",
					     list_json(state_snapshot_list(d->st, id)), "total_bytes",
					     (json_int_t)state_snapshot_bytes(d->st, id)));
		json_decref(sb);
		return;
	}
	case ROUTE_SNAPSHOT_LIST:
		reply_json(out, 200,
			   json_pack("{s:o, s:I, s:I}", "snapshots",
				     list_json(state_snapshot_list(d->st, NULL)), "total_bytes",
				     (json_int_t)state_snapshot_bytes(d->st, NULL),
				     "max_snapshot_bytes", (json_int_t)d->cfg.max_snapshot_bytes));
		return;
	case ROUTE_SNAPSHOT_GET: {
		json_t *row = find_or_reply(d, r->snapshot_ref, NULL, out);
		if (row)
			reply_json(out, 200, row_json(row));
		json_decref(row);
		return;
	}
	case ROUTE_SANDBOX_SNAPSHOT_DELETE:
	case ROUTE_SNAPSHOT_DELETE:
		delete(d, r, c, out);
		return;
	default:
		reply_error(out, 500, "route %s not handled", api_route_name(r->route));
	}
}
