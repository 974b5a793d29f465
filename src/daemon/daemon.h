/* daemon.h: what the files of `agentd serve` share — the pure request layer (routing and
 * strict body validation, fuzzed), the SQLite state, and the live-sandbox table the API
 * handlers work on. HTTP plumbing (libmicrohttpd) stays in server.c. */
#ifndef AGENTD_DAEMON_H
#define AGENTD_DAEMON_H

#include "agentd.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* ------------------------------------------------------------------ sha256.c */
void sha256(const void *data, size_t len, uint8_t out[32]);
void sha256_hex(const void *data, size_t len, char out[65]);

/* ------------------------------------------------------------------ request.c
 * Method + path + query + body → a typed, validated request, or an HTTP status (400 bad
 * input incl. unknown fields, 404 no such route, 405 wrong method, 413 too large) with a
 * message. No I/O, no global state: this is what fuzz/fuzz_http.c drives. */
enum api_route {
	ROUTE_HEALTH,
	ROUTE_METRICS,
	ROUTE_BACKENDS,
	ROUTE_BACKEND,
	ROUTE_SANDBOX_CREATE,
	ROUTE_SANDBOX_LIST,
	ROUTE_SANDBOX_GET,
	ROUTE_SANDBOX_DELETE,
	ROUTE_SANDBOX_EXEC,
	ROUTE_SANDBOX_SUSPEND,
	ROUTE_SANDBOX_RESUME,
	ROUTE_SANDBOX_SNAPSHOT,
	ROUTE_SANDBOX_RESTORE,
	ROUTE_SANDBOX_USAGE,
	ROUTE_FILE_PUT,
	ROUTE_FILE_GET,
	ROUTE_SESSION_CREATE,
	ROUTE_SESSION_EXEC,
	ROUTE_SESSION_DELETE,
	ROUTE_AUDIT,
	ROUTE__COUNT,
};

enum api_language { LANG_SH, LANG_PYTHON, LANG_NODE };

#define API_ID_LEN 32		/* sandbox, session, snapshot ids: 32 lowercase hex */
#define API_AGENT_MAX 64	/* agent ids: [A-Za-z0-9._-]{1,64} */
#define API_NAME_MAX 64		/* sandbox names, backend names */
#define API_MAX_BODY (16u << 20)	/* JSON bodies; file bodies have their own limit */

struct api_query {
	const char *path;		/* ?path= of the files API */
	const char *since;		/* ?since= of the audit log */
};

struct api_request {
	enum api_route route;
	char id[API_ID_LEN + 1];	/* {id} */
	char agent[API_AGENT_MAX + 1];	/* {agent} */
	char session[API_ID_LEN + 1];	/* {sid} */
	char param[API_NAME_MAX + 1];	/* {name} of /v1/backends/{name} */
	/* POST /v1/sandboxes, POST .../sessions */
	char *backend;
	char *name;
	bool has_spec;
	agentd_spec spec;
	/* POST .../exec */
	char **argv;			/* NULL-terminated */
	agentd_kvv env;
	char *workdir;
	uint8_t *stdin_data;
	size_t stdin_len;
	bool has_stdin;
	uint64_t timeout_ms;
	bool stream;
	/* snapshots */
	char *snapshot_name;
	char *snapshot_id;
	/* sessions */
	char *code;
	enum api_language language;
	/* files */
	char *file_path;
	const uint8_t *raw;		/* PUT body (not JSON), borrowed */
	size_t raw_len;
	/* audit */
	int64_t since_seq;		/* records with seq > since_seq */
	int64_t since_ms;		/* and ts_ms >= since_ms */
};

/* 0 on success (free with api_request_free), else the HTTP status; err names the field. */
int api_request_parse(const char *method, const char *path, const struct api_query *q,
		      const uint8_t *body, size_t len, struct api_request *r, agentd_error *err);
void api_request_free(struct api_request *r);
const char *api_route_name(enum api_route r);
const char *api_language_name(enum api_language l);
/* "bad_request", "not_found", ... for an HTTP status. */
const char *api_status_code(int status);
/* HTTP status for an errno carried up in an agentd_error. */
int api_status_from_errno(int e);
bool api_valid_id(const char *s);

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
/* The row as JSON {id, name, backend, state, reason, created_ms, ...}, or NULL. */
json_t *state_sandbox_get(struct state *st, const char *id);
/* Rows left live by a previous daemon: each is marked failed ("lost at daemon restart"),
 * its sessions failed and its snapshots dropped, then lost(arg, id) is called. */
int state_reconcile(struct state *st, void (*lost)(void *arg, const char *id), void *arg,
		    agentd_error *err);

int state_snapshot_insert(struct state *st, const char *id, const char *sandbox_id,
			  const char *name, agentd_error *err);
bool state_snapshot_of(struct state *st, const char *id, const char *sandbox_id);

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

struct audit_record {
	int64_t uid;			/* peer uid on the unix socket, -1 over TCP */
	const char *client;		/* "unix:pid=N" or "tcp:ADDR" */
	const char *action;		/* create, exec, destroy, ... */
	const char *sandbox_id;
	const char *argv_json;		/* JSON array or NULL */
	const char *policy_digest;
	const char *backend;
	const char *result;		/* "ok", "exit 3", "error: ..." */
	uint64_t duration_ms;
};
int state_audit_append(struct state *st, const struct audit_record *a, agentd_error *err);
/* Records with seq > since_seq and ts_ms >= since_ms, oldest first, at most limit. */
json_t *state_audit_list(struct state *st, int64_t since_seq, int64_t since_ms, int limit,
			 agentd_error *err);

/* ------------------------------------------------------------------ log.c */
/* One logfmt line on stderr: ts=... level=... msg="..." plus "key=value" pairs. */
void dlog(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
