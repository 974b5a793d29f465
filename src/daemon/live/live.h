/* live.h: the running daemon (src/daemon/live/): its configuration, the table of live
 * sandboxes with their lifecycle states, the counters metrics read, execs and their
 * cancellation, streamed output, and the audit writers. Includes http/ and store/. */
#ifndef AGENTD_LIVE_H
#define AGENTD_LIVE_H

#include "daemon/http/http.h"
#include "agentd-proxy.h"

#include <sys/types.h>

struct server_cfg {
	const char *socket_path;
	const char *socket_group;	/* group owning the socket (clients that are not root) */
	const char *state_dir;
	const char *listen;		/* "127.0.0.1:PORT" or NULL */
	const char *token_file;		/* required with listen */
	const char *default_backend;	/* "auto" unless given */
	unsigned max_sandboxes;
	size_t max_file_bytes;
	bool sync_full;
	unsigned drain_ms;
	uint64_t state_max_bytes;	/* the state database's budget (audit retention) */
	unsigned header_timeout_ms;	/* a connection's first request head within */
	unsigned max_connections;	/* per listener */
	unsigned max_peer_connections;	/* per uid (unix socket) or IP (TCP) */
	/* issue 12: durable-daemon */
	bool destroy_on_exit;		/* --destroy-on-exit: durable sandboxes end with us */
	/* issue 12: ttl */
	uint64_t default_ttl_ms, max_ttl_ms;	/* 0: none (the max is also the default) */
	uint64_t default_idle_ms, max_idle_ms;
	/* issue 12: snapshots */
	uint64_t max_snapshot_bytes;	/* host disk of all durable snapshots together */
	/* issue 13: img-store */
	uint64_t image_max_entries, image_max_bytes;	/* per layer of an import; 0: default */
};

/* docs/api.md#lifecycle. "executing" is ready with at least one exec running; "enforced" is a
 * sandbox whose own processes were killed by a limit (memory, pids) and that cannot run
 * anything more; it can only be destroyed. */
enum sb_state {
	SB_PROVISIONING,
	SB_READY,
	SB_EXECUTING,
	SB_SUSPENDED,
	SB_DESTROYING,
	SB_DESTROYED,
	SB_FAILED,
	SB_ENFORCED,
	SB__COUNT,
};
const char *sb_state_name(enum sb_state s);

struct exec_slot {
	int cancel[2];			/* a byte in [1] cancels the exec */
	int watch;			/* epoll of cancel[0] and the client's hang-up: the
					 * exec's cancel fd */
	struct exec_slot *next;
	/* issue 12: durable-daemon */
	const char *cancel_reason;	/* why destroy or the drain cut it short (d->lock) */
};

struct live {
	char id[API_ID_LEN + 1];
	char *name;
	char backend[64];
	char digest[65];		/* sha256 of the canonical policy JSON */
	agentd_sandbox *sb;		/* NULL while provisioning */
	enum sb_state state;		/* never SB_EXECUTING: derived from execs */
	unsigned refs;			/* handlers using it; destroy waits for 1 */
	unsigned execs;
	struct exec_slot *slots;	/* running execs, cancelled by destroy */
	bool session;
	int64_t created_ms;
	struct proc_table *procs;	/* its background processes (procs.h); NULL: none yet */
	struct context *contexts;	/* its code contexts (contexts.c) */
	unsigned n_contexts;
	struct live_ports *ports;	/* its forwarded ports (ports.c), NULL until one */
	/* issue 12: names */
	pthread_mutex_t net_lock;	/* a network change (network.c) against the readers of
					 * its spec's network and caps (live_to_json) */
	struct live *next;
	/* issue 12: durable-daemon */
	bool durable;			/* persisted: outlives the daemon (adopt.c) */
	/* issue 12: ttl */
	struct state_expiry expiry;	/* d->lock (expiry.c); its last_activity_ms is what
					 * the database has */
	_Atomic int64_t last_activity_ms;	/* live_touch, without a lock */
	bool expiring;			/* the expiry thread acts on it */
};

/* Concurrent execs per sandbox (the container init's table); more is a 429. */
#define LIVE_MAX_EXECS 64

#define LATENCY_BUCKETS 14
enum exec_result { EXEC_OK, EXEC_NONZERO, EXEC_TIMEOUT, EXEC_LIMIT, EXEC_ERROR, EXEC__COUNT };
struct metrics {
	uint64_t execs[EXEC__COUNT];
	uint64_t latency_le[LATENCY_BUCKETS];	/* cumulative counts per bucket */
	uint64_t latency_count;
	double latency_sum_s;
	uint64_t created, destroyed, create_failed;
	uint64_t requests, errors_4xx, errors_5xx;
	/* issue 12: ttl */
	uint64_t expired[2][2];		/* [idle?][suspended?] */
};

struct daemon {
	struct server_cfg cfg;
	char *work_root;		/* <state_dir>/sandboxes */
	struct state *st;
	pthread_mutex_t lock;		/* the live table, backends, metrics */
	pthread_cond_t cond;
	struct live *head;
	unsigned n_live;		/* provisioning..enforced, i.e. counted for capacity */
	struct {
		char name[64];
		agentd_backend *b;
	} backends[16];
	size_t n_backends;
	bool draining;
	unsigned in_flight;
	struct metrics m;
	int64_t started_ms;
	const char *default_backend;	/* what --backend (auto) resolved to */
	agentd_proxy *proxy;		/* the egress proxy of every allowlist sandbox */
	struct netaudit *netaudit;	/* its decisions into the audit log */
	/* issue 12: durable-daemon */
	unsigned left_running;		/* durable sandboxes left for the next daemon */
	struct live *left;		/* them, their handles kept until the process exits */
	/* issue 12: files */
	struct file_watch *watches;	/* the files API's open watches (filestream.c) */
	unsigned n_watches;
	/* issue 12: ttl */
	pthread_cond_t expiry_cond;	/* with lock: a deadline moved earlier, or stop */
	pthread_t expiry_thread;
	bool expiry_running, expiry_stop, expiry_kicked;
	/* issue 13: img-store */
	agentd_image_store *images;	/* <state>/images, set on every backend */
};

/* ------------------------------------------------------------------ live.c */
uint64_t mono_ms(void);		/* CLOCK_MONOTONIC, for durations */
agentd_backend *daemon_backend(struct daemon *d, const char *name, agentd_error *err);
/* Create a sandbox (capacity 429, bad spec or a policy item the backend cannot enforce
 * without opts->allow_degraded 400); returns a referenced live or NULL with *status set. */
struct live *live_create(struct daemon *d, const char *backend, const agentd_spec *spec,
			 const agentd_create_opts *opts, const char *name, bool session,
			 int *status, agentd_error *err);
/* Referenced live sandbox (not destroying/destroyed) or NULL; ref is its id or its name. */
struct live *live_get(struct daemon *d, const char *ref);
void live_put(struct daemon *d, struct live *l);
enum sb_state live_state(const struct live *l);	/* with d->lock held */
/* issue 12: 0 when l is ready or executing, else 409 with err `sandbox ID is STATE`. */
int live_require_ready(struct daemon *d, struct live *l, agentd_error *err);
/* Destroy l (the caller's reference is consumed): cancels its execs, waits for the other
 * users, destroys through the library, records the final state. */
int live_destroy(struct daemon *d, struct live *l, const char *reason, agentd_error *err);
void live_destroy_all(struct daemon *d, const char *reason);
/* live_destroy with its audit record (action, client, duration, result). */
int live_destroy_audited(struct daemon *d, struct live *l, const struct client *c,
			 const char *action, const char *reason, agentd_error *err);
/* Run cmd in l: 409 unless ready/executing; records metrics and the audit record.
 * Returns 0 (out filled) or an HTTP status with err. */
int live_exec(struct daemon *d, struct live *l, const struct client *c,
	      const agentd_command *cmd, agentd_output_cb on_output, void *userdata,
	      struct exec_slot *slot, agentd_exec_output *out, agentd_error *err);
/* The cancel fd of one exec (slot NULL in live_exec: a private one watching c->fd). */
int exec_slot_init(struct exec_slot *slot, int client_fd);
void exec_slot_cancel(struct exec_slot *slot);
void exec_slot_close(struct exec_slot *slot);
json_t *live_to_json(struct daemon *d, struct live *l);
/* What the sandbox runs without ("item: reason" strings; [] when everything is enforced). */
json_t *live_unenforced_json(const struct live *l);

/* ------------------------------------------------------------------ network.c
 * issue 12: names. PATCH .../network: switch a live sandbox between "none" and
 * "allowlist" and replace its allowlist through the library (connections the new policy
 * does not allow are closed), audited (action "network", old and new policy), the stored
 * policy and its digest updated. 0 + *out (the sandbox's JSON), or an HTTP status with
 * err: 409 from or to "host", or not ready; 501 a backend that cannot. */
int live_set_network(struct daemon *d, struct live *l, const struct client *c,
		     const agentd_network *net, json_t **out, agentd_error *err);
/* live.c: the policy JSON as the sandboxes table keeps it (environment values redacted). */
char *live_policy_json_for_state(const char *json);

/* ------------------------------------------------------------------ ports.c
 * A sandbox's forwarded ports: a host listener each (127.0.0.1, a port the host picks, or
 * a unix socket under the state dir) relaying every connection into the sandbox at port.
 * The caller holds a reference on l. Each open and close is an audit record. */
#define PORTS_MAX 16		/* forwarded ports per sandbox; more is a 429 */
#define PORT_MAX_CONNS 64	/* connections per sandbox over all its ports; more are reset */
/* 0 and *out (the port's JSON), or an HTTP status with err: 409 forwarded already, 429 too
 * many, 501 a backend without a way in. */
int ports_open(struct daemon *d, struct live *l, const struct client *c, uint16_t port,
	       bool unix_sock, json_t **out, agentd_error *err);
json_t *ports_list_json(struct daemon *d, struct live *l);
/* 0, or 404 with err when port is not forwarded. */
int ports_close(struct daemon *d, struct live *l, const struct client *c, uint16_t port,
		agentd_error *err);
/* At start: the unix sockets of forwards a previous run left (it crashed). */
void ports_remove_stale(struct daemon *d);
/* Every port of l closed (its destroy: nobody else holds l). */
void ports_close_all(struct daemon *d, struct live *l, const char *reason);

/* issue 12: files ------------------------------------------------------ filestream.c */
#define FILES_WATCH_MAX 64		/* open watches in all; more is a 429 */
#define FILES_WATCH_PER_SANDBOX 8
#define FILES_WATCH_DIRS 1024		/* directories one watch covers */
#define FILES_WATCH_BUFFER (1u << 20)	/* lines a slow client has not read: past it, the
					 * watch overflows and ends */
/* A streamed tar answer (an MHD response) pulling from tr (taken), NULL when none could
 * be made (tr freed). */
void *files_tar_response(agentd_tar_reader *tr);
/* A watch of path in l as an NDJSON stream (*resp, an MHD response), ended by the client
 * (client_fd) or files_watch_end_all; -1 + err (EAGAIN: over a bound). */
int files_watch_open(struct daemon *d, struct live *l, const char *path, int client_fd,
		     void **resp, agentd_error *err);
/* End every watch of the sandbox, and wait until they let go of it. */
void files_watch_end_all(struct daemon *d, const char *sandbox_id);

/* ------------------------------------------------------------------ audit.c, netaudit.c */
/* netaudit.c: start the daemon's egress proxy, whose every decision is appended to the
 * audit log (action "network") by a writer thread; stop after the proxy is stopped. */
struct netaudit;
struct netaudit *netaudit_start(struct daemon *d, agentd_proxy **proxy, agentd_error *err);
void netaudit_stop(struct netaudit *na);

void audit(struct daemon *d, const struct client *c, const char *action, const char *sandbox_id,
	   char *const *argv, const char *digest, const char *backend, const char *result,
	   uint64_t duration_ms);
/* issue 12: names. The same with a JSON object in the record's argv (detail, borrowed). */
void audit_detail(struct daemon *d, const struct client *c, const char *action,
		  const char *sandbox_id, json_t *detail, const char *digest, const char *backend,
		  const char *result, uint64_t duration_ms);

/* Upper bounds (seconds) of the exec latency histogram's buckets. */
extern const double live_latency_bucket_s[LATENCY_BUCKETS];
/* The counters of one finished exec (d->lock held). */
void live_count_exec(struct daemon *d, const agentd_exec_output *o, bool failed);
/* One output line of a stream: {"stream", "data"} with data as text, or base64 with
 * "encoding" when it is not UTF-8 (stream.c). */
json_t *stream_chunk_json(agentd_stream st, const uint8_t *data, size_t len);
/* ------------------------------------------------------------------ contexts.c
 * Stateful code contexts (docs/contexts.md): an interpreter started in the sandbox with
 * agentd's runner for its language, cells run in it one at a time over the framed
 * protocol (common/ctxproto.c). A context that breaks the protocol, or ignores the interrupt
 * of a timed-out cell, is killed; the daemon and the other contexts go on. */
#define LIVE_MAX_CONTEXTS 8
#define CTX_INTERRUPT_GRACE_MS 2000	/* SIGINT to kill, after a cell's timeout */
struct context;
struct ctx_run_req {
	const char *code;
	const agentd_kvv *env;
	uint64_t timeout_ms;		/* 0: the sandbox's wall-time limit */
	bool queue;			/* wait for a running cell to end (else 409) */
};
/* Events of a running cell (streaming): takes the object. */
typedef void (*ctx_event_cb)(void *ud, json_t *event);
/* The runners, embedded at build time (ctx_runners.c, from live/runners/). */
extern const char ctx_runner_python[], ctx_runner_node[], ctx_runner_sh[];
/* 0 + *out (the context's JSON), or an HTTP status with err. for_session marks the one
 * context per language of a session. */
int ctx_create(struct daemon *d, struct live *l, enum api_language lang, const agentd_kvv *env,
	       const char *workdir, bool for_session, json_t **out, agentd_error *err);
/* Run a cell: 0 + *out (the run's JSON), or an HTTP status with err when it could not
 * start (404 no such context, 409 gone or busy, 400). slot: cancelled by destroy or the
 * client going away. */
int ctx_run(struct daemon *d, struct live *l, const char *cid, const struct ctx_run_req *req,
	    struct exec_slot *slot, ctx_event_cb cb, void *ud, json_t **out, agentd_error *err);
json_t *ctx_list_json(struct daemon *d, struct live *l);
int ctx_get_json(struct daemon *d, struct live *l, const char *cid, json_t **out,
		 agentd_error *err);
int ctx_delete(struct daemon *d, struct live *l, const char *cid, agentd_error *err);
/* The live context of a session for lang, started on first use (or after it ended). */
int ctx_session_context(struct daemon *d, struct live *l, enum api_language lang,
			char cid[API_ID_LEN + 1], agentd_error *err);
/* Every context of l killed and freed: live_destroy, before the sandbox goes. */
void ctx_free_all(struct daemon *d, struct live *l);
/* A chunked NDJSON response (stream.c): work (NULL: r's exec, fed by its output callback)
 * runs on its own thread, emits lines and returns the last one. */
typedef json_t *(*stream_work_fn)(struct daemon *d, struct live *l, const struct client *c,
				  struct api_request *r, struct exec_slot *slot, ctx_event_cb emit,
				  void *emit_ud);
void *stream_work_response_new(struct daemon *d, struct live *l, const struct client *c,
			       struct api_request *r, int conn_fd, stream_work_fn work);

/* issue 12: durable-daemon */
/* ------------------------------------------------------------------ adopt.c
 * Durable sandboxes (docs/api.md#restarts): made durable at create, left running when the
 * daemon stops (unless --destroy-on-exit), adopted back by the next daemon at start with
 * what ran in them (background processes, code contexts, forwarded ports). */
/* After create (l->sb set, its row inserted): agentd_sandbox_persist under
 * <state dir>/durable/<id>, the token and policy_json stored. A backend without durable
 * sandboxes (ENOTSUP) leaves l->durable false: 0. -1 + err otherwise. */
int live_make_durable(struct daemon *d, struct live *l, const char *policy_json,
		      agentd_error *err);
/* Its durable record (token, items, endpoint dir) gone: the sandbox ended. */
void live_forget_durable(struct daemon *d, struct live *l);
/* At start, before serving: every durable sandbox of the state database adopted into the
 * live table, or marked failed with what it left removed (audited either way). */
void live_adopt_all(struct daemon *d);
/* Cancel every running exec of every sandbox, naming why (their results say so), and wait
 * (bounded) until they have returned. */
void live_cancel_execs(struct daemon *d, const char *reason);
/* At stop: durable sandboxes are left running (their ports' listeners closed, nothing
 * killed) unless --destroy-on-exit; every other one is destroyed. */
void live_stop_all(struct daemon *d, const char *reason);
/* The cancelled/reason fields of an exec's result when slot was cut short (no-op else). */
void live_exec_mark_cancelled(json_t *result, const struct exec_slot *slot);
/* procs.c: a process of an adopted sandbox back in its table (h taken), as stored. */
int procs_adopt(struct daemon *d, struct live *l, agentd_process *h, json_t *item);
/* procs.c / contexts.c / ports.c keep their durable items with these (no-op when l is not
 * durable). */
void live_item_put(struct daemon *d, struct live *l, const char *kind, const char *key,
		   json_t *data);
void live_item_del(struct daemon *d, struct live *l, const char *kind, const char *key);
/* contexts.c: a context of an adopted sandbox back on its interpreter h (taken). */
int ctx_adopt(struct daemon *d, struct live *l, agentd_process *h, json_t *item);
/* ports.c: a forwarded port reopened after a restart on its host port or path if free,
 * else a new one (audited). */
int ports_reopen(struct daemon *d, struct live *l, json_t *item);
/* ports.c: the listeners of l closed at stop, its items kept for the next daemon. */
void ports_release_all(struct daemon *d, struct live *l);
/* ------------------------------------------------------------------ expiry.c
 * issue 12: ttl. A sandbox's ttl (a lifetime) and idle timeout (no activity), each ending
 * in a destroy or a suspend (docs/api.md#timeouts), run by one thread sleeping until the
 * nearest deadline; deadlines are stored, the last activity lazily (EXPIRY_SAVE_MS). */
#define EXPIRY_SAVE_MS 5000
/* The settings a create asks (r's ttl fields; daemon defaults for what it does not): 0, or
 * 400 with err naming the bound it is over. */
int expiry_resolve(struct daemon *d, const struct api_request *r, struct state_expiry *out,
		   agentd_error *err);
/* The new sandbox l takes them (stored): 0, or 400 when it is to be suspended and cannot
 * be (tried on it: fail closed), 500 when they cannot be stored. */
int expiry_attach(struct daemon *d, struct live *l, const struct state_expiry *e,
		  agentd_error *err);
/* POST .../timeout: 0, or an HTTP status with err. */
int expiry_update(struct daemon *d, struct live *l, const struct api_request *r,
		  agentd_error *err);
/* An adopted sandbox (a daemon restart) takes its stored timeouts: a deadline that passed
 * while no daemon ran expires at the expiry thread's first pass. */
void expiry_load(struct daemon *d, struct live *l);
/* l was resumed: its idle clock restarts, a ttl spent by a suspend starts again. */
void expiry_resumed(struct daemon *d, struct live *l);
/* ttl_ms, expires_at_ms, idle_timeout_ms, idle_deadline_ms, last_activity_ms, on_expire. */
void expiry_to_json(struct daemon *d, struct live *l, json_t *o);
/* Activity: now, without a lock (an exec, a cell, a relayed byte, an API call). */
void live_touch(struct live *l);
void live_touch_id(struct daemon *d, const char *id);
/* A request: activity on its sandbox unless it only looks (a GET other than a download
 * or an attach). */
void expiry_note_request(struct daemon *d, const char *method, const struct api_request *r);
/* An exec or a cell ended (d->lock held): its slot unlinked, the idle clock restarted. */
void live_slot_remove(struct daemon *d, struct live *l, struct exec_slot *slot);
/* Suspend (ready → suspended) or resume (suspended → ready) l, stored: 0, or an HTTP status
 * with err (409 in another state). */
int live_freeze(struct daemon *d, struct live *l, bool suspend, agentd_error *err);
void expiry_kick_locked(struct daemon *d);
int expiry_start(struct daemon *d, agentd_error *err);
/* The thread stopped, every sandbox's last activity written. */
void expiry_stop(struct daemon *d);

#endif
