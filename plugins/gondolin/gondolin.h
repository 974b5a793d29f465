/* gondolin.h: the gondolin backend plugin's private interface: the helper process (one per
 * sandbox, NDJSON over its stdio: docs/gondolin.md), the policy mapping and the exec loop. */
#ifndef AGENTD_PLUGIN_GONDOLIN_H
#define AGENTD_PLUGIN_GONDOLIN_H

#include "agentd-backend.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bounds on what the helper sends (it relays the guest's output: hostile). */
#define GONDOLIN_MAX_LINE (256u * 1024u)	 /* one NDJSON line, newline excluded */
#define GONDOLIN_STDIN_CHUNK (48u * 1024u)	 /* raw stdin bytes per request */
#define GONDOLIN_STDERR_TAIL 512u		 /* the helper's last stderr, for errors */

/* Deadlines (ms): an answer to a request, the VM's boot, a checkpoint, close, and how long
 * an exec may take to end once it was sent SIGKILL (timeout, cancel). */
#define GONDOLIN_ANSWER_MS 10000
#define GONDOLIN_BOOT_MS 180000
#define GONDOLIN_CHECKPOINT_MS 300000
#define GONDOLIN_CLOSE_MS 15000
#define GONDOLIN_KILL_GRACE_MS 5000

/* One helper process: its own process group, killed as a whole when it ends. */
typedef struct gondolin_helper {
	pid_t pid;			/* also its process group id; 0 once reaped */
	int in_fd;			/* its stdin (our requests) */
	int out_fd;			/* its stdout (answers and events) */
	int err_fd;			/* its stderr (kept: the tail, for messages) */
	char *buf;			/* bytes of stdout not yet split into lines */
	size_t len;
	char *wq;			/* requests not yet written (its stdin is non-blocking) */
	size_t wq_len, wq_cap;
	bool eof;
	char tail[GONDOLIN_STDERR_TAIL];	/* its last stderr bytes, NUL-terminated */
	size_t tail_len;
	uint64_t next_id;
	bool broken;			/* a protocol violation or deadline: it is gone */
	bool probe_only;		/* started for a probe: no sandbox ends with it */
	char broken_why[512];
} gondolin_helper;

/* How the helper is started: $AGENTD_GONDOLIN_HELPER (an executable speaking the protocol),
 * else $AGENTD_GONDOLIN_NODE (or node on PATH) running gondolin-helper.mjs beside the .so. */
int gondolin_helper_start(gondolin_helper *h, agentd_error *err);
/* SIGKILL its whole process group and reap it; idempotent. */
void gondolin_helper_kill(gondolin_helper *h);
/* Mark it broken (every later call fails with why), and kill it. */
int gondolin_helper_fail(gondolin_helper *h, agentd_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Queue {"id":N,"op":op,...fields} (fields is stolen; may be NULL); *id gets N. It is
 * written as the helper reads, while gondolin_helper_next waits. */
int gondolin_helper_send(gondolin_helper *h, const char *op, json_t *fields, uint64_t *id,
			 agentd_error *err);
/* The next message before deadline_ms (absolute CLOCK_MONOTONIC ms); extra_fd (>= 0) is
 * watched too: 0 + *msg, 1 when extra_fd became readable first, 2 when the deadline passed
 * (the caller decides), -1 + err (the helper is then broken: a malformed or oversized line,
 * its end). */
int gondolin_helper_next(gondolin_helper *h, int64_t deadline_ms, int extra_fd, json_t **msg,
			 agentd_error *err);
/* Send a request and wait for its answer (events meanwhile are a protocol error: only the
 * exec loop expects them); *result: the answer's "result" object (may be NULL). */
int gondolin_helper_call(gondolin_helper *h, const char *op, json_t *fields, int64_t timeout_ms,
			 json_t **result, agentd_error *err);
/* Whether msg answers request id: 1 ok (*result borrowed), 0 not an answer to it,
 * -1 + err (a refusal: its message; or a malformed answer). */
int gondolin_answer(json_t *msg, uint64_t id, json_t **result, agentd_error *err);
int64_t gondolin_now_ms(void);
/* Bytes queued for the helper and not yet written. */
size_t gondolin_helper_queued(const gondolin_helper *h);

/* base64 (RFC 4648, padded) for the chunks of stdin and output. */
char *gondolin_b64_encode(const uint8_t *data, size_t len);
/* -1 when s is not strict base64; *out malloc'd. */
int gondolin_b64_decode(const char *s, size_t slen, uint8_t **out, size_t *len);

/* The create request's "config" for spec (docs/gondolin.md#policy), or NULL + err (EINVAL
 * naming the JSON path) for what gondolin cannot express. */
json_t *gondolin_policy_config(const agentd_spec *spec, agentd_error *err);

/* A sandbox: its helper and the lock that serialises requests on it. */
typedef struct gondolin_sandbox {
	gondolin_helper helper;
	pthread_mutex_t lock;
	char *snap_dir;			/* <work_root>/gondolin-<id>: its checkpoints */
	unsigned n_snapshots;
	int64_t created_ms;
	uint64_t wall_ms;		/* of its execs, for usage */
} gondolin_sandbox;

int gondolin_exec(agentd_sandbox *sb, const agentd_command *cmd, const agentd_exec_ctx *ctx,
		  agentd_exec_output *out, agentd_error *err);

/* checkpoint.c: agentd's snapshots as gondolin checkpoints (docs/gondolin.md). */
int gondolin_snapshot(agentd_sandbox *sb, const char *name, char **snapshot_id,
		      agentd_error *err);
int gondolin_restore(agentd_sandbox *sb, const char *snapshot_id, agentd_error *err);
int gondolin_snapshot_to(agentd_sandbox *sb, int dir_fd, uint64_t max_bytes, uint64_t *bytes,
			 agentd_error *err);
int gondolin_restore_from(agentd_sandbox *sb, int dir_fd, agentd_error *err);
/* The sandbox's checkpoint files and their directory. */
void gondolin_remove_checkpoints(gondolin_sandbox *g);

/* The probe's findings, from the helper's probe request (docs/gondolin.md#probe). */
int gondolin_probe(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err);

#endif
