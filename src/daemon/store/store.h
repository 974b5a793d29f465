/* store.h: what `agentd serve` keeps on disk (src/daemon/store/): the SQLite state —
 * sandboxes, sessions, snapshots, executions and the audit log — and the sha256 of
 * policies. Pure: no HTTP, no live sandboxes. Includes common/ only. */
#ifndef AGENTD_STORE_H
#define AGENTD_STORE_H

#include "common/common.h"

#include <jansson.h>
#include <pthread.h>

#define API_ID_LEN 32		/* sandbox, session, snapshot ids: 32 lowercase hex */

/* ------------------------------------------------------------------ sha256.c */
void sha256(const void *data, size_t len, uint8_t out[32]);
void sha256_hex(const void *data, size_t len, char out[65]);

/* ------------------------------------------------------------------ statedir.c
 * The state dir (created 0711 if missing) and what agentd keeps at its top must be owned by
 * the daemon's uid: else refused. A mode other than the expected one (0711 for the dirs,
 * 0600 for the lock and the database files) is set right and named in *fixed. */
int statedir_secure(const char *dir, agentd_strv *fixed, agentd_error *err);
/* dir/name as an empty file of mode 0600 whatever the umask (SQLite gives its -wal and
 * -shm the database file's mode), or the existing file if it is ours; never a symlink. */
int statedir_create_file(const char *dir, const char *name, agentd_error *err);
/* Move the calling process (single-threaded: before any thread) into a mount namespace of
 * its own, a slave of the host's, with a tmpfs on dir/rootfs-cache: the cache sandboxes copy
 * /etc's files from lives in memory and goes with the daemon. */
int statedir_private_cache(const char *dir, agentd_error *err);

/* ------------------------------------------------------------------ state.c
 * SQLite under the state dir: WAL, schema versioned by PRAGMA user_version, one
 * connection serialised by a mutex. Every write is committed before the call returns. */
struct state;
extern const int state_schema_latest;
/* Migration i takes the schema from version i to i + 1 (exposed for the migration tests). */
extern const char *const state_migrations[];
/* sync_full: PRAGMA synchronous=FULL (survives power loss), else NORMAL (survives a crash
 * of the daemon, which is what WAL NORMAL guarantees). */
int state_open(const char *path, bool sync_full, struct state **out, agentd_error *err);
void state_close(struct state *st);
int state_schema_version(struct state *st);

int state_sandbox_insert(struct state *st, const char *id, const char *name,
			 const char *backend, const char *spec_json, const char *digest,
			 const char *state, bool session, agentd_error *err);
int state_sandbox_set_state(struct state *st, const char *id, const char *state,
			    const char *reason, agentd_error *err);
/* The row as JSON {id, name, backend, state, reason, created_ms, ...}, or NULL. ref: the
 * sandbox's id, or a name (the latest sandbox of that name). */
json_t *state_sandbox_get(struct state *st, const char *ref);
/* issue 12: names */
/* s is a sandbox (or session, snapshot) id: 32 lowercase hex digits. */
bool state_is_id(const char *s);
/* Its policy changed while it ran (PATCH .../network): the row's spec and digest. */
int state_sandbox_set_policy(struct state *st, const char *id, const char *spec_json,
			     const char *digest, agentd_error *err);
/* Rows left live by a previous daemon that are not durable (no token): each is marked
 * failed ("lost at daemon restart"), its sessions failed (its snapshots stay: they outlive
 * it), then lost(arg, id) is called. Durable rows are left to the adoption (live/adopt.c). */
int state_reconcile(struct state *st, void (*lost)(void *arg, const char *id), void *arg,
		    agentd_error *err);

/* issue 12: snapshots. A durable snapshot's row; its files are the daemon's
 * (<state>/snapshots/<id>). The name (NULL: none) is unique: EEXIST. */
struct snapshot_row {
	const char *id, *sandbox_id, *name, *backend, *workdir;
	uint64_t size_bytes;	/* host disk allocated */
};
int state_snapshot_insert(struct state *st, const struct snapshot_row *row, agentd_error *err);
/* {id, name, sandbox_id, backend, workdir, size_bytes, created_ms} by id or name, or NULL. */
json_t *state_snapshot_find(struct state *st, const char *id_or_name);
/* Those of sandbox_id (NULL: all), oldest first. */
json_t *state_snapshot_list(struct state *st, const char *sandbox_id);
/* What those of sandbox_id (NULL: all) occupy. */
uint64_t state_snapshot_bytes(struct state *st, const char *sandbox_id);
int state_snapshot_delete(struct state *st, const char *id, agentd_error *err);
/* Sandbox id's files are overlaid on snapshot_id's (which must stay while it lives). */
int state_sandbox_set_from_snapshot(struct state *st, const char *id, const char *snapshot_id,
				    agentd_error *err);
/* [{id}] of the sandboxes not destroyed or failed whose files are overlaid on it. */
json_t *state_snapshot_users(struct state *st, const char *snapshot_id);

int state_session_insert(struct state *st, const char *id, const char *agent,
			 const char *sandbox_id, agentd_error *err);
/* 0 + sandbox_id/status, or -1 when agent has no such session. */
int state_session_get(struct state *st, const char *agent, const char *id,
		      char sandbox_id[API_ID_LEN + 1], char status[16]);
int state_session_set_status(struct state *st, const char *id, const char *status);
int state_session_set_status_by_sandbox(struct state *st, const char *sandbox_id,
					const char *status);
int state_execution_insert(struct state *st, const char *id, const char *session_id,
			   const char *language, const char *status, int exit_code,
			   uint64_t duration_ms, agentd_error *err);
/* A session's executions, oldest first: [{execution_id, language, status, exit_code,
 * duration_ms, created_ms}]. */
json_t *state_execution_list(struct state *st, const char *session_id);

/* issue 12: durable-daemon */
/* ------------------------------------------------------------------ durable.c
 * A durable sandbox's row carries its adoption token (a secret) and its whole policy
 * (environment values included: the adopter needs them), and durable_items what it runs
 * that a later daemon restores: kind "process" (key: its pid), "context" (key: its id),
 * "port" (key: the sandbox port), data a JSON object of the caller's. All of it is cleared
 * when the sandbox ends (state_durable_clear). */
int state_durable_set(struct state *st, const char *id, const char *token,
		      const char *spec_json, agentd_error *err);
/* A durable sandbox's whole policy changed while it ran (PATCH .../network): what the next
 * adoption re-plans it with. No-op for a row that is not durable. */
int state_durable_set_spec(struct state *st, const char *id, const char *spec_json,
			   agentd_error *err);
/* Token, policy and items gone (the sandbox ended, or its adoption failed). */
int state_durable_clear(struct state *st, const char *id);
/* The durable rows still live: [{id, name, backend, state, session, created_ms,
 * policy_digest, durable_token, durable_spec}], oldest first; NULL + err. */
json_t *state_durable_list(struct state *st, agentd_error *err);
int state_item_put(struct state *st, const char *id, const char *kind, const char *key,
		   json_t *data);
int state_item_del(struct state *st, const char *id, const char *kind, const char *key);
/* The items of sandbox id: [{kind, key, data}] (data parsed), oldest first. */
json_t *state_items(struct state *st, const char *id);
/* issue 12: ttl */
/* A sandbox's ttl and idle timeout as stored (live/expiry.c): 0 is none for each. */
struct state_expiry {
	uint64_t ttl_ms;		/* the ttl's length */
	int64_t expires_at_ms;		/* its deadline (wall clock); 0: none, or spent */
	uint64_t idle_timeout_ms;
	bool on_expire_suspend;		/* else destroy */
	int64_t last_activity_ms;	/* written lazily: at most a few seconds old */
};
int state_sandbox_set_expiry(struct state *st, const char *id, const struct state_expiry *e,
			     agentd_error *err);
int state_sandbox_set_activity(struct state *st, const char *id, int64_t last_activity_ms);
/* 0 + *e, or -1 when there is no such row. */
int state_sandbox_get_expiry(struct state *st, const char *id, struct state_expiry *e);

/* store/audit.c uses state.c's connection under its lock. */
typedef struct sqlite3 sqlite3;
sqlite3 *state_lock_db(struct state *st);
void state_unlock_db(struct state *st);
struct audit_chain;
struct audit_chain **state_audit_chain(struct state *st);

/* ------------------------------------------------------------------ audit.c
 * The audit log: append-only rows, each carrying the sha256 of its content chained to the
 * previous row's hash. Rows are grouped into segments; a full segment is sealed (its row
 * range, size and last hash, chained to the previous seal's hash). Retention deletes the
 * rows of the oldest sealed segments when the database is over its budget and keeps their
 * seals, so the chain of what is kept still verifies. */
struct audit_record {
	int64_t uid;			/* peer uid on the unix socket, -1 over TCP */
	const char *client;		/* "unix:pid=N" or "tcp:ADDR" */
	const char *action;		/* create, exec, destroy, ... */
	const char *sandbox_id;
	const char *argv_json;		/* JSON array (or object) or NULL */
	const char *policy_digest;
	const char *backend;
	const char *result;		/* "ok", "exit 3", "error: ..." */
	uint64_t duration_ms;
	uint64_t count;			/* events this row stands for; 0 = 1 */
	int64_t first_ms, last_ms;	/* of an aggregate row; 0 = none */
};
/* Called by state_open/state_close: hashes rows older versions left unchained, loads the
 * chain's head. */
int audit_chain_open(struct state *st, agentd_error *err);
void audit_chain_close(struct state *st);
/* The budget of the whole database in bytes (0: none): segments are sealed every
 * budget/16 bytes of records, and the oldest sealed ones pruned past it. on_event (may be
 * NULL) gets a line for each seal (with its hashes, to keep elsewhere), prune and problem. */
void state_audit_set_budget(struct state *st, uint64_t max_bytes,
			    void (*on_event)(void *arg, const char *msg), void *arg);
int state_audit_append(struct state *st, const struct audit_record *a, agentd_error *err);
/* Records with seq > since_seq and ts_ms >= since_ms, oldest first, at most limit. */
json_t *state_audit_list(struct state *st, int64_t since_seq, int64_t since_ms, int limit,
			 agentd_error *err);
/* Recompute the chain of the database at db_path on a read-only connection of its own:
 * {"ok", "segments", "pruned": [first, last] | null, "records", "first_seq", "head_seq",
 * "head", "error": {"seq"?, "segment"?, "message"}?}. NULL with err when it cannot be read. */
json_t *state_audit_verify(const char *db_path, agentd_error *err);

#endif
