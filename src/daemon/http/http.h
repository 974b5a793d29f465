/* http.h: the daemon's request layer (src/daemon/http/): routing and strict body
 * validation (request.c, pure and fuzzed), the reply a handler fills and its error helpers
 * (http.c), the log line (log.c). libmicrohttpd stays in server.c. Includes store/. */
#ifndef AGENTD_HTTP_H
#define AGENTD_HTTP_H

#include "daemon/store/store.h"

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
	ROUTE_AUDIT_VERIFY,
	ROUTE_PROCESS_CREATE,
	ROUTE_PROCESS_LIST,
	ROUTE_PROCESS_GET,
	ROUTE_PROCESS_DELETE,
	ROUTE_PROCESS_SIGNAL,
	ROUTE_PROCESS_STDIN,
	ROUTE_PROCESS_OUTPUT,
	ROUTE_PROCESS_ATTACH,
	ROUTE_CONTEXT_CREATE,
	ROUTE_CONTEXT_LIST,
	ROUTE_CONTEXT_GET,
	ROUTE_CONTEXT_DELETE,
	ROUTE_CONTEXT_RUN,
	ROUTE_SESSION_EXECUTIONS,
	ROUTE_PORT_OPEN,
	ROUTE_PORT_LIST,
	ROUTE_PORT_CLOSE,
	/* issue 12: names */
	ROUTE_SANDBOX_NETWORK,
	/* issue 12: files */
	ROUTE_FILE_LIST,
	ROUTE_FILE_STAT,
	ROUTE_FILE_MKDIR,
	ROUTE_FILE_DELETE,
	ROUTE_FILE_RENAME,
	ROUTE_FILE_CHMOD,
	ROUTE_FILE_TAR_PUT,
	ROUTE_FILE_TAR_GET,
	ROUTE_FILE_WATCH,
	/* issue 12: ttl */
	ROUTE_SANDBOX_TIMEOUT,
	/* issue 12: snapshots */
	ROUTE_SANDBOX_SNAPSHOTS,	/* GET /v1/sandboxes/{id}/snapshots */
	ROUTE_SANDBOX_SNAPSHOT_DELETE,
	ROUTE_SNAPSHOT_LIST,
	ROUTE_SNAPSHOT_GET,
	ROUTE_SNAPSHOT_DELETE,
	/* issue 13: img-store */
	ROUTE_IMAGE_LIST,		/* GET /v1/images */
	ROUTE_IMAGE_IMPORT,		/* POST /v1/images/import */
	ROUTE_IMAGE_PRUNE,		/* POST /v1/images/prune */
	ROUTE_IMAGE_TAG,		/* POST /v1/images/{ref}/tag */
	ROUTE_IMAGE_GET,		/* GET /v1/images/{ref} */
	ROUTE_IMAGE_DELETE,		/* DELETE /v1/images/{ref} */
	/* issue 13: img-build */
	ROUTE_IMAGE_BUILD,		/* POST /v1/images/build */
	ROUTE__COUNT,
};

enum api_language { LANG_SH, LANG_PYTHON, LANG_NODE, LANG_BASH };

#define API_AGENT_MAX 64	/* agent ids: [A-Za-z0-9._-]{1,64} */
#define API_NAME_MAX 64		/* sandbox names, backend names */
#define API_MAX_BODY (16u << 20)	/* JSON bodies; file bodies have their own limit */
#define API_CODE_MAX (1u << 20)		/* a cell's or an execution's code */
#define API_IMAGE_REF_MAX 255		/* issue 13: an image reference in a path */

struct api_query {
	const char *path;		/* ?path= of the files API */
	const char *since;		/* ?since= of the audit log */
	const char *offset;		/* ?offset=, ?follow=, ?stream= of a process's output */
	const char *follow;
	const char *stream;
	/* GET .../attach: its query (?foreground=, and ?offset= as output's) and the headers
	 * of the WebSocket upgrade */
	const char *foreground;
	const char *upgrade, *connection, *ws_version, *ws_key;
	/* issue 12: names */
	/* Every query argument as sent, in order ({key, value} pairs, value NULL for a bare
	 * "?key"): a parameter the route does not take is a 400 naming it, as an unknown JSON
	 * field is, and repeated ones (?label=) are all seen. */
	const struct api_query_arg *args;
	size_t nargs;
	/* issue 12: files — ?parents=, ?recursive= and the body's Content-Type */
	const char *parents, *recursive, *content_type;
};
struct api_query_arg {
	const char *key, *value;
};
#define API_QUERY_MAX_ARGS 64	/* more in one URL is a 400 */
#define API_LABEL_FILTERS_MAX 16

/* A process's output streams a request selects (?stream=). */
enum api_streams { API_STREAMS_BOTH, API_STREAMS_STDOUT, API_STREAMS_STDERR };
#define API_ARGV_MAX_BYTES (256u << 10)	/* a process's argv, all strings together */
#define API_TTY_MAX 4096		/* rows, cols */

struct api_request {
	enum api_route route;
	char id[API_NAME_MAX + 1];	/* {id}: a sandbox id, or its unique name */
	char agent[API_AGENT_MAX + 1];	/* {agent} */
	char session[API_ID_LEN + 1];	/* {sid} */
	char context[API_ID_LEN + 1];	/* {cid} */
	char param[API_NAME_MAX + 1];	/* {name} of /v1/backends/{name} */
	/* POST /v1/sandboxes, POST .../sessions */
	char *backend;
	char *name;
	bool has_spec;
	agentd_spec spec;
	bool allow_degraded;		/* run without what the backend cannot enforce */
	/* POST .../exec */
	char **argv;			/* NULL-terminated */
	agentd_kvv env;
	char *workdir;
	uint8_t *stdin_data;
	size_t stdin_len;
	bool has_stdin;
	uint64_t timeout_ms;
	bool stream;
	/* POST .../processes (argv, env, workdir as exec) */
	bool tty;
	unsigned rows, cols;		/* 0: the default size */
	bool keep_stdin;		/* "stdin": true, a pipe the caller writes */
	/* .../processes/{pid}... */
	int64_t pid;
	int signal;			/* POST .../signal: 1..64 */
	bool close_stdin;		/* POST .../stdin: stdin_data, has_stdin, and this */
	uint64_t offset;		/* GET .../output */
	bool follow;
	enum api_streams streams;
	/* GET .../attach */
	bool has_offset;		/* ?offset= given (else: output from now on) */
	bool foreground;		/* the process dies when the attachment ends */
	char ws_key[25];		/* Sec-WebSocket-Key, checked */
	/* snapshots */
	char *snapshot_name;		/* NULL: none */
	char *snapshot_id;		/* its id or name */
	/* sessions */
	char *code;
	enum api_language language;
	/* files */
	char *file_path;
	const uint8_t *raw;		/* PUT body (not JSON), borrowed */
	size_t raw_len;
	/* ports: POST .../ports, DELETE .../ports/{port} */
	uint16_t port;			/* the sandbox's port, 1..65535 */
	bool port_unix;			/* a unix socket instead of 127.0.0.1 */
	/* issue 12: files — the rest of the files API (file_path is its path, or rename's
	 * "from") */
	char *file_to;			/* rename's "to" */
	uint32_t file_mode;		/* chmod: 0..0777 */
	bool file_parents;		/* PUT ?parents=1, mkdir "parents" */
	bool file_recursive;		/* DELETE ?recursive=1 */
	bool file_noreplace;		/* rename "noreplace" */
	/* audit */
	int64_t since_seq;		/* records with seq > since_seq */
	int64_t since_ms;		/* and ts_ms >= since_ms */
	/* issue 12: names */
	/* GET /v1/sandboxes?label=K=V&state=S&backend=B&name=N: labels ANDed; state and
	 * backend are checked by the handler (400 for an unknown one) */
	agentd_kvv label_filter;
	char *state_filter, *backend_filter, *name_filter;
	/* PATCH .../network */
	bool has_network;
	agentd_network network;
	/* issue 12: ttl */
	/* POST /v1/sandboxes, POST .../timeout: each only when has_* (0 is none) */
	bool has_ttl, has_idle, has_on_expire;
	uint64_t ttl_ms, idle_timeout_ms;
	bool on_expire_suspend;
	/* issue 12: snapshots */
	char snapshot_ref[API_NAME_MAX + 1];	/* {snap}: a snapshot's id or unique name */
	char *from_snapshot;		/* POST /v1/sandboxes: its id or name */
	bool from_snapshot_copy;	/* copied even where it could be shared */
	/* issue 13: img-store */
	char image_ref[API_IMAGE_REF_MAX + 1];	/* {ref}: the rest of the path (docs/api.md#images) */
	char *image_path;		/* import: {"path"} on the daemon's host */
	char *image_tag;		/* import's "tag" or ?tag=, tag's "tag" */
	bool image_force;		/* DELETE ?force=true */
	bool image_upload;		/* import: the archive is the body (server.c streams it
					 * to image_upload_fd, which it sets) */
	int image_upload_fd;
	/* issue 13: img-build. POST /v1/images/build: agentd image build's options */
	struct api_image_build {
		char *from, *tag, *mirror, *backend;
		agentd_strv packages, run;
		bool no_cache;
	} build;
};
#define API_MAX_TIMEOUT_MS (10ull * 366 * 86400 * 1000)	/* ttl_ms, idle_timeout_ms */

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
/* issue 12: names. A name a sandbox may not take: 32 hex digits in any case, which a path
 * segment would read as an id. */
bool api_name_reserved(const char *s, size_t len);
/* issue 12: snapshots. A snapshot's name: [A-Za-z0-9._-]{1,64}, not an id's 32 hex digits. */
bool api_valid_snapshot_name(const char *s);
/* A signal by name ("TERM", "SIGTERM") or number ("15"): 1..64, or -1. */
int api_signal_parse(const char *s);
/* "TERM" for 15; NULL when it has no name here. */
const char *api_signal_name(int sig);

struct client {
	int64_t uid;			/* SO_PEERCRED; -1 over TCP */
	int fd;				/* the connection's socket */
	char desc[96];
};

/* What a handler answers: JSON (json), raw bytes (raw, malloc'd) or a response it built
 * itself (streaming). status 0 = not set. */
struct reply {
	int status;
	json_t *json;
	char *raw;
	size_t raw_len;
	const char *content_type;
	void *mhd_response;		/* struct MHD_Response * */
	/* a 101 upgrade's session state: released when the request completes */
	void *upgrade_ctx;
	void (*upgrade_release)(void *ctx);
};
void reply_json(struct reply *out, int status, json_t *j);	/* takes j */
int vreply_error(struct reply *out, int status, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
int reply_error(struct reply *out, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The TCP listener's auth: header is "Bearer <token>" (NULL: none sent). */
bool http_bearer_ok(const char *header, const char *token, size_t token_len);
/* status from err->code (errno) unless status > 0. */
int reply_agentd_error(struct reply *out, int status, const agentd_error *err);

/* ------------------------------------------------------------------ log.c */
/* One logfmt line on stderr: ts=... level=... msg="..." plus "key=value" pairs. */
void dlog(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
