/* state.c: the daemon's state in SQLite — sandboxes, snapshots, sessions, executions and
 * the append-only audit log. WAL, schema migrations by PRAGMA user_version; each call is
 * one committed transaction before it returns, so a crash loses no acknowledged record. */
#include "daemon/store/store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct state {
	sqlite3 *db;
	pthread_mutex_t lock;
	struct audit_chain *audit;	/* store/audit.c */
};

/* Migration i brings the schema from version i to i + 1. Never edit a released one: add. */
const char *const state_migrations[] = {
	/* 1: the tables */
	"CREATE TABLE sandboxes(id TEXT PRIMARY KEY, name TEXT, backend TEXT NOT NULL,"
	"  spec TEXT NOT NULL, policy_digest TEXT NOT NULL, state TEXT NOT NULL, reason TEXT,"
	"  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
	"CREATE TABLE snapshots(id TEXT PRIMARY KEY, sandbox_id TEXT NOT NULL"
	"  REFERENCES sandboxes(id), name TEXT, created_ms INTEGER NOT NULL);"
	"CREATE TABLE sessions(id TEXT PRIMARY KEY, agent TEXT NOT NULL, sandbox_id TEXT NOT NULL"
	"  REFERENCES sandboxes(id), status TEXT NOT NULL, created_ms INTEGER NOT NULL);"
	"CREATE TABLE executions(id TEXT PRIMARY KEY, session_id TEXT NOT NULL"
	"  REFERENCES sessions(id), language TEXT NOT NULL, status TEXT NOT NULL,"
	"  exit_code INTEGER, duration_ms INTEGER, created_ms INTEGER NOT NULL);"
	"CREATE TABLE audit(seq INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL,"
	"  client_uid INTEGER, client TEXT, action TEXT NOT NULL, sandbox_id TEXT, argv TEXT,"
	"  policy_digest TEXT, backend TEXT, result TEXT NOT NULL, duration_ms INTEGER);"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
	/* 2: sessions sandboxes are marked, lookups by time and state are indexed */
	"ALTER TABLE sandboxes ADD COLUMN session INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX audit_ts ON audit(ts_ms);"
	"CREATE INDEX sandboxes_state ON sandboxes(state);",
	/* 3: the audit's hash chain (each row's sha256 over the previous one's), aggregate rows
	 * (count, first_ms, last_ms) and sealed segments, whose rows retention may delete
	 * while the seal stays (store/audit.c) */
	"ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;"
	"ALTER TABLE audit ADD COLUMN first_ms INTEGER;"
	"ALTER TABLE audit ADD COLUMN last_ms INTEGER;"
	"ALTER TABLE audit ADD COLUMN hash TEXT;"
	"CREATE TABLE audit_seals(segment INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL,"
	"  last_seq INTEGER NOT NULL, rows INTEGER NOT NULL, bytes INTEGER NOT NULL,"
	"  first_ms INTEGER, last_ms INTEGER, head TEXT NOT NULL, prev TEXT NOT NULL,"
	"  hash TEXT NOT NULL, sealed_ms INTEGER NOT NULL, pruned_ms INTEGER);"
	"DROP TRIGGER audit_no_update;"
	"DROP TRIGGER audit_no_delete;"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE OF seq, ts_ms, client_uid, client, action,"
	"  sandbox_id, argv, policy_digest, backend, result, duration_ms, count, first_ms, last_ms"
	"  ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TRIGGER audit_hash_once BEFORE UPDATE OF hash ON audit WHEN OLD.hash IS NOT NULL"
	"  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit WHEN NOT EXISTS (SELECT 1 FROM"
	"  audit_seals WHERE OLD.seq BETWEEN first_seq AND last_seq AND pruned_ms IS NOT NULL)"
	"  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TRIGGER audit_seals_no_delete BEFORE DELETE ON audit_seals"
	"  BEGIN SELECT RAISE(ABORT, 'audit seals are kept'); END;"
	"CREATE TRIGGER audit_seals_no_update BEFORE UPDATE OF segment, first_seq, last_seq, rows,"
	"  bytes, first_ms, last_ms, head, prev, hash, sealed_ms ON audit_seals"
	"  BEGIN SELECT RAISE(ABORT, 'audit seals are append-only'); END;"
	"CREATE TRIGGER audit_seals_prune_once BEFORE UPDATE OF pruned_ms ON audit_seals"
	"  WHEN OLD.pruned_ms IS NOT NULL"
	"  BEGIN SELECT RAISE(ABORT, 'audit seals are append-only'); END;",
	/* issue 12: durable-daemon */
	/* 4: durable sandboxes (store/durable.c): what a later daemon adopts one with (its
	 * token, a secret, and its whole policy), and what it had running (processes,
	 * contexts, ports), kept while it lives */
	"ALTER TABLE sandboxes ADD COLUMN durable_token TEXT;"
	"ALTER TABLE sandboxes ADD COLUMN durable_spec TEXT;"
	"CREATE TABLE durable_items(sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),"
	"  kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,"
	"  PRIMARY KEY(sandbox_id, kind, key));",
	/* issue 12: ttl */
	/* 5: a sandbox's ttl and idle timeout (live/expiry.c): its ttl's length and deadline,
	 * its idle timeout, what expiry does, and its last activity (written lazily) */
	"ALTER TABLE sandboxes ADD COLUMN ttl_ms INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE sandboxes ADD COLUMN expires_at_ms INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE sandboxes ADD COLUMN idle_timeout_ms INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE sandboxes ADD COLUMN on_expire TEXT NOT NULL DEFAULT 'destroy';"
	"ALTER TABLE sandboxes ADD COLUMN last_activity_ms INTEGER NOT NULL DEFAULT 0;",
	/* issue 12: snapshots */
	/* 6: durable snapshots (<state>/snapshots/<id>, outliving their sandbox): their size,
	 * backend and workdir, names unique; the snapshot a sandbox's files are overlaid on.
	 * Earlier rows named copies that died with their sandbox: dropped. */
	"DELETE FROM snapshots;"
	"ALTER TABLE sandboxes ADD COLUMN from_snapshot TEXT;"
	"ALTER TABLE snapshots ADD COLUMN size_bytes INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE snapshots ADD COLUMN backend TEXT;"
	"ALTER TABLE snapshots ADD COLUMN workdir TEXT;"
	"CREATE UNIQUE INDEX snapshots_name ON snapshots(name) WHERE name IS NOT NULL;"
	"CREATE INDEX snapshots_sandbox ON snapshots(sandbox_id);",
};
const int state_schema_latest = (int)(sizeof(state_migrations) / sizeof(state_migrations[0]));

static int db_fail(struct state *st, agentd_error *err, const char *what)
{
	return agentd_error_set(err, EIO, "state: %s: %s", what, sqlite3_errmsg(st->db));
}

static int exec_sql(struct state *st, const char *sql, agentd_error *err)
{
	char *msg = NULL;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		agentd_error_set(err, EIO, "state: %s", msg ? msg : "sqlite error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int state_schema_version(struct state *st)
{
	sqlite3_stmt *s;
	int v = -1;
	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* Each migration and its version bump in one transaction: a crash mid-way leaves the
 * previous version, never half of one. */
static int migrate(struct state *st, agentd_error *err)
{
	int v = state_schema_version(st);
	if (v < 0)
		return db_fail(st, err, "read schema version");
	if (v > state_schema_latest)
		return agentd_error_set(err, EPROTO,
					"state: schema version %d is newer than this agentd (%d)",
					v, state_schema_latest);
	for (; v < state_schema_latest; v++) {
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d;", v + 1);
		if (exec_sql(st, "BEGIN IMMEDIATE", err) < 0)
			return -1;
		if (exec_sql(st, state_migrations[v], err) < 0 || exec_sql(st, bump, err) < 0) {
			exec_sql(st, "ROLLBACK", NULL);
			return agentd_error_prefix(err, "migrate to schema %d", v + 1);
		}
		if (exec_sql(st, "COMMIT", err) < 0)
			return -1;
	}
	return 0;
}

int state_open(const char *path, bool sync_full, struct state **out, agentd_error *err)
{
	struct state *st = calloc(1, sizeof(*st));
	pthread_mutex_init(&st->lock, NULL);
	if (sqlite3_open_v2(path, &st->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		agentd_error_set(err, EIO, "state: open %s: %s", path,
				 st->db ? sqlite3_errmsg(st->db) : "out of memory");
		state_close(st);
		return -1;
	}
	sqlite3_busy_timeout(st->db, 5000);
	if (exec_sql(st, "PRAGMA journal_mode=WAL", err) < 0 ||
	    exec_sql(st, sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
		     err) < 0 ||
	    exec_sql(st, "PRAGMA foreign_keys=ON", err) < 0 || migrate(st, err) < 0 ||
	    audit_chain_open(st, err) < 0) {
		agentd_error_prefix(err, "%s", path);
		state_close(st);
		return -1;
	}
	*out = st;
	return 0;
}

void state_close(struct state *st)
{
	if (!st)
		return;
	audit_chain_close(st);
	sqlite3_close(st->db);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

/* Bind each argument in order: 's' text (NULL = SQL NULL), 'i' int64. */
static sqlite3_stmt *prep(struct state *st, const char *sql, const char *types, ...)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return NULL;
	va_list ap;
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		if (types[i] == 's') {
			const char *v = va_arg(ap, const char *);
			if (v)
				sqlite3_bind_text(s, i + 1, v, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(s, i + 1);
		} else {
			sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
		}
	}
	va_end(ap);
	return s;
}

#define WRITE(st, err, what, sql, types, ...)                                              \
	({                                                                                 \
		pthread_mutex_lock(&(st)->lock);                                           \
		sqlite3_stmt *s_ = prep(st, sql, types, __VA_ARGS__);                      \
		int r_ = s_ && sqlite3_step(s_) == SQLITE_DONE ? 0 : db_fail(st, err, what); \
		sqlite3_finalize(s_);                                                      \
		pthread_mutex_unlock(&(st)->lock);                                         \
		r_;                                                                        \
	})

int state_sandbox_insert(struct state *st, const char *id, const char *name,
			 const char *backend, const char *spec_json, const char *digest,
			 const char *state, bool session, agentd_error *err)
{
	int64_t t = now_ms_realtime();
	return WRITE(st, err, "insert sandbox",
		     "INSERT INTO sandboxes(id, name, backend, spec, policy_digest, state,"
		     " created_ms, updated_ms, session) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
		     "ssssssiii", id, name, backend, spec_json, digest, state, t, t,
		     (int64_t)session);
}

int state_sandbox_set_state(struct state *st, const char *id, const char *state,
			    const char *reason, agentd_error *err)
{
	return WRITE(st, err, "update sandbox",
		     "UPDATE sandboxes SET state = ?, reason = ?, updated_ms = ? WHERE id = ?",
		     "ssis", state, reason, now_ms_realtime(), id);
}

/* issue 12: ttl */
int state_sandbox_set_expiry(struct state *st, const char *id, const struct state_expiry *e,
			     agentd_error *err)
{
	return WRITE(st, err, "update sandbox expiry",
		     "UPDATE sandboxes SET ttl_ms = ?, expires_at_ms = ?, idle_timeout_ms = ?,"
		     " on_expire = ?, last_activity_ms = ? WHERE id = ?",
		     "iiisis", (int64_t)e->ttl_ms, e->expires_at_ms, (int64_t)e->idle_timeout_ms,
		     e->on_expire_suspend ? "suspend" : "destroy", e->last_activity_ms, id);
}

int state_sandbox_set_activity(struct state *st, const char *id, int64_t last_activity_ms)
{
	return WRITE(st, NULL, "update sandbox activity",
		     "UPDATE sandboxes SET last_activity_ms = ? WHERE id = ?", "is",
		     last_activity_ms, id);
}

int state_sandbox_get_expiry(struct state *st, const char *id, struct state_expiry *e)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = prep(st,
			       "SELECT ttl_ms, expires_at_ms, idle_timeout_ms, on_expire,"
			       " last_activity_ms FROM sandboxes WHERE id = ?",
			       "s", id);
	int r = -1;
	if (s && sqlite3_step(s) == SQLITE_ROW) {
		e->ttl_ms = (uint64_t)sqlite3_column_int64(s, 0);
		e->expires_at_ms = sqlite3_column_int64(s, 1);
		e->idle_timeout_ms = (uint64_t)sqlite3_column_int64(s, 2);
		e->on_expire_suspend = !strcmp((const char *)sqlite3_column_text(s, 3), "suspend");
		e->last_activity_ms = sqlite3_column_int64(s, 4);
		r = 0;
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return r;
}

static json_t *column_json(sqlite3_stmt *s, int i)
{
	switch (sqlite3_column_type(s, i)) {
	case SQLITE_INTEGER:
		return json_integer(sqlite3_column_int64(s, i));
	case SQLITE_NULL:
		return json_null();
	default:
		return json_string((const char *)sqlite3_column_text(s, i));
	}
}

/* Each row as an object keyed by column name; spec columns are embedded JSON. */
static json_t *rows(sqlite3_stmt *s, int limit)
{
	json_t *a = json_array();
	while ((limit <= 0 || (int)json_array_size(a) < limit) && sqlite3_step(s) == SQLITE_ROW) {
		json_t *o = json_object();
		for (int i = 0; i < sqlite3_column_count(s); i++) {
			const char *name = sqlite3_column_name(s, i);
			json_t *v = column_json(s, i);
			if ((!strcmp(name, "spec") || !strcmp(name, "argv")) && json_is_string(v)) {
				json_t *p = json_loads(json_string_value(v), 0, NULL);
				if (p) {
					json_decref(v);
					v = p;
				}
			}
			json_object_set_new(o, name, v);
		}
		json_array_append_new(a, o);
	}
	return a;
}

bool state_is_id(const char *s)
{
	return strlen(s) == API_ID_LEN && strspn(s, "0123456789abcdef") == API_ID_LEN;
}

json_t *state_sandbox_get(struct state *st, const char *ref)
{
	pthread_mutex_lock(&st->lock);
	/* a name is unique among live sandboxes only: the latest sandbox that had it */
	sqlite3_stmt *s = prep(st,
			       state_is_id(ref)
				       ? "SELECT id, name, backend, spec, policy_digest, state,"
					 " reason, created_ms, updated_ms, session FROM sandboxes"
					 " WHERE id = ?"
				       : "SELECT id, name, backend, spec, policy_digest, state,"
					 " reason, created_ms, updated_ms, session FROM sandboxes"
					 " WHERE name = ? ORDER BY created_ms DESC, rowid DESC",
			       "s", ref);
	json_t *a = s ? rows(s, 1) : NULL;
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	json_t *o = json_array_size(a) ? json_incref(json_array_get(a, 0)) : NULL;
	json_decref(a);
	return o;
}

int state_sandbox_set_policy(struct state *st, const char *id, const char *spec_json,
			     const char *digest, agentd_error *err)
{
	return WRITE(st, err, "update sandbox policy",
		     "UPDATE sandboxes SET spec = ?, policy_digest = ?, updated_ms = ? WHERE id = ?",
		     "ssis", spec_json, digest, now_ms_realtime(), id);
}

int state_reconcile(struct state *st, void (*lost)(void *arg, const char *id), void *arg,
		    agentd_error *err)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = prep(st,
			       "SELECT id FROM sandboxes WHERE state NOT IN ('destroyed', 'failed')"
			       " AND durable_token IS NULL",
			       "");
	json_t *ids = s ? rows(s, 0) : NULL;
	sqlite3_finalize(s);
	int r = ids ? 0 : db_fail(st, err, "list sandboxes");
	if (!r) {
		int64_t t = now_ms_realtime();
		char sql[1024];
		/* durable rows (a token) are adopted instead (live/adopt.c) */
		snprintf(sql, sizeof(sql),
			 "BEGIN IMMEDIATE;"
			 "UPDATE sessions SET status = 'failed' WHERE status NOT IN ('destroyed',"
			 "  'failed') AND sandbox_id IN (SELECT id FROM sandboxes WHERE state NOT IN"
			 "  ('destroyed', 'failed') AND durable_token IS NULL);"
			 "UPDATE sandboxes SET state = 'failed', reason = 'lost at daemon restart',"
			 "  updated_ms = %lld WHERE state NOT IN ('destroyed', 'failed')"
			 "  AND durable_token IS NULL;"
			 "COMMIT;",
			 (long long)t);
		if (exec_sql(st, sql, err) < 0) {
			exec_sql(st, "ROLLBACK", NULL);
			r = -1;
		}
	}
	pthread_mutex_unlock(&st->lock);
	size_t i;
	json_t *o;
	if (!r)
		json_array_foreach(ids, i, o)
			lost(arg, json_string_value(json_object_get(o, "id")));
	json_decref(ids);
	return r;
}

int state_snapshot_insert(struct state *st, const struct snapshot_row *row, agentd_error *err)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = prep(st,
			       "INSERT INTO snapshots(id, sandbox_id, name, created_ms, size_bytes,"
			       " backend, workdir) VALUES(?, ?, ?, ?, ?, ?, ?)",
			       "sssiiss", row->id, row->sandbox_id, row->name, now_ms_realtime(),
			       (int64_t)row->size_bytes, row->backend, row->workdir);
	int rc = s ? sqlite3_step(s) : SQLITE_ERROR;
	int r = rc == SQLITE_DONE ? 0
		: rc == SQLITE_CONSTRAINT
			? agentd_error_set(err, EEXIST, "a snapshot named %s exists", row->name)
			: db_fail(st, err, "insert snapshot");
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return r;
}

#define SNAPSHOT_COLUMNS                                                                   \
	"SELECT id, name, sandbox_id, backend, workdir, size_bytes, created_ms FROM snapshots"

static json_t *snapshot_query(struct state *st, const char *sql, const char *types,
			      const char *arg)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = prep(st, sql, types, arg);
	json_t *a = s ? rows(s, 0) : NULL;
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return a ? a : json_array();
}

json_t *state_snapshot_find(struct state *st, const char *id_or_name)
{
	json_t *a = snapshot_query(st, SNAPSHOT_COLUMNS " WHERE id = ?1 OR name = ?1", "s",
				   id_or_name);
	json_t *o = json_array_size(a) == 1 ? json_incref(json_array_get(a, 0)) : NULL;
	json_decref(a);
	return o;
}

json_t *state_snapshot_list(struct state *st, const char *sandbox_id)
{
	return sandbox_id ? snapshot_query(st, SNAPSHOT_COLUMNS " WHERE sandbox_id = ?"
					       " ORDER BY created_ms, rowid", "s", sandbox_id)
			  : snapshot_query(st, SNAPSHOT_COLUMNS " ORDER BY created_ms, rowid", "",
					   NULL);
}

uint64_t state_snapshot_bytes(struct state *st, const char *sandbox_id)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s =
		sandbox_id ? prep(st, "SELECT total(size_bytes) FROM snapshots WHERE sandbox_id = ?",
				  "s", sandbox_id)
			   : prep(st, "SELECT total(size_bytes) FROM snapshots", "");
	uint64_t n = s && sqlite3_step(s) == SQLITE_ROW ? (uint64_t)sqlite3_column_double(s, 0)
							: 0;
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return n;
}

int state_sandbox_set_from_snapshot(struct state *st, const char *id, const char *snapshot_id,
				    agentd_error *err)
{
	return WRITE(st, err, "update sandbox", "UPDATE sandboxes SET from_snapshot = ? WHERE id = ?",
		     "ss", snapshot_id, id);
}

json_t *state_snapshot_users(struct state *st, const char *snapshot_id)
{
	return snapshot_query(st,
			      "SELECT id FROM sandboxes WHERE from_snapshot = ? AND state NOT IN"
			      " ('destroyed', 'failed') ORDER BY created_ms",
			      "s", snapshot_id);
}

int state_snapshot_delete(struct state *st, const char *id, agentd_error *err)
{
	return WRITE(st, err, "delete snapshot", "DELETE FROM snapshots WHERE id = ?", "s", id);
}

int state_session_insert(struct state *st, const char *id, const char *agent,
			 const char *sandbox_id, agentd_error *err)
{
	return WRITE(st, err, "insert session",
		     "INSERT INTO sessions(id, agent, sandbox_id, status, created_ms)"
		     " VALUES(?, ?, ?, 'ready', ?)",
		     "sssi", id, agent, sandbox_id, now_ms_realtime());
}

int state_session_get(struct state *st, const char *agent, const char *id,
		      char sandbox_id[API_ID_LEN + 1], char status[16])
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = prep(st, "SELECT sandbox_id, status FROM sessions WHERE id = ? AND"
				   " agent = ?", "ss", id, agent);
	int r = -1;
	if (s && sqlite3_step(s) == SQLITE_ROW) {
		snprintf(sandbox_id, API_ID_LEN + 1, "%s", sqlite3_column_text(s, 0));
		snprintf(status, 16, "%s", sqlite3_column_text(s, 1));
		r = 0;
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int state_session_set_status(struct state *st, const char *id, const char *status)
{
	return WRITE(st, NULL, "update session", "UPDATE sessions SET status = ? WHERE id = ?",
		     "ss", status, id);
}

int state_session_set_status_by_sandbox(struct state *st, const char *sandbox_id,
					const char *status)
{
	return WRITE(st, NULL, "update session",
		     "UPDATE sessions SET status = ? WHERE sandbox_id = ?", "ss", status,
		     sandbox_id);
}

int state_execution_insert(struct state *st, const char *id, const char *session_id,
			   const char *language, const char *status, int exit_code,
			   uint64_t duration_ms, agentd_error *err)
{
	return WRITE(st, err, "insert execution",
		     "INSERT INTO executions(id, session_id, language, status, exit_code,"
		     " duration_ms, created_ms) VALUES(?, ?, ?, ?, ?, ?, ?)",
		     "ssssiii", id, session_id, language, status, (int64_t)exit_code,
		     (int64_t)duration_ms, now_ms_realtime());
}

json_t *state_execution_list(struct state *st, const char *session_id)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = prep(st,
			       "SELECT id AS execution_id, language, status, exit_code, duration_ms,"
			       " created_ms FROM executions WHERE session_id = ? ORDER BY rowid",
			       "s", session_id);
	json_t *a = s ? rows(s, 0) : NULL;
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return a ? a : json_array();
}

/* store/audit.c works on the same connection under the same lock. */
sqlite3 *state_lock_db(struct state *st)
{
	pthread_mutex_lock(&st->lock);
	return st->db;
}

void state_unlock_db(struct state *st)
{
	pthread_mutex_unlock(&st->lock);
}

struct audit_chain **state_audit_chain(struct state *st)
{
	return &st->audit;
}

json_t *state_audit_list(struct state *st, int64_t since_seq, int64_t since_ms, int limit,
			 agentd_error *err)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = prep(st,
			       "SELECT seq, ts_ms, client_uid, client, action, sandbox_id, argv,"
			       " policy_digest, backend, result, duration_ms, count, first_ms,"
			       " last_ms, hash FROM audit"
			       " WHERE seq > ? AND ts_ms >= ? ORDER BY seq LIMIT ?",
			       "iii", since_seq, since_ms, (int64_t)limit);
	json_t *a = s ? rows(s, 0) : NULL;
	if (!a)
		db_fail(st, err, "read audit");
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return a;
}
