/* procs.h: the background processes of the live sandboxes (live/procs.c, live/procout.c):
 * a table per sandbox, each process's output in a bounded ring per stream, every process's
 * fds pumped by one epoll thread. The API handlers and the terminal attach build on it. */
#ifndef AGENTD_PROCS_H
#define AGENTD_PROCS_H

#include "daemon/live/live.h"

/* Processes a sandbox keeps, ended ones (kept for inspection) included: a spawn past it
 * forgets the oldest ended one, or is a 429 when all run. Host memory per sandbox is at
 * most PROCS_MAX x 2 streams x limits.max_process_output_bytes. */
#define PROCS_MAX 32
/* Readers following one process's output at once (HTTP followers, terminals). */
#define PROC_MAX_SUBSCRIBERS 64

enum proc_stream { PROC_STDOUT, PROC_STDERR };

struct proc;		/* one process, referenced (proc_put) */
struct proc_table;	/* a sandbox's processes (l->procs) */

/* Start cmd in l in the background: 409 unless l is ready or executing (or the backend says
 * EBUSY), 429 at PROCS_MAX running, 501 where the backend has none (ENOTSUP, its reason),
 * 400 for a command it refuses. Audited ("process_start"). Returns 0 and a referenced
 * *out, or the HTTP status with err. */
int procs_spawn(struct daemon *d, struct live *l, const struct client *c,
		const agentd_command *cmd, const agentd_process_opts *opts, struct proc **out,
		agentd_error *err);
/* The process pid of l (its pid in the sandbox), referenced; NULL when l has none. */
struct proc *procs_find(struct live *l, int64_t pid);
/* Every process of l, referenced, oldest first (free the array, put each). */
size_t procs_list(struct live *l, struct proc ***out);
/* Kill its tree, wait (bounded) for its end and forget it (DELETE). Audited
 * ("process_kill"). 0, or -1 with err. */
int procs_remove(struct daemon *d, struct live *l, struct proc *p, const struct client *c,
		 agentd_error *err);
/* At destroy, before agentd_sandbox_destroy: every handle freed (each tree killed), every
 * reader told the end. l->procs is NULL after. */
void procs_table_free(struct live *l);
/* After the last sandbox is gone: the pump thread stops. */
void procs_pump_stop(void);

void proc_get(struct proc *p);
void proc_put(struct proc *p);
int64_t proc_pid(const struct proc *p);
bool proc_is_tty(const struct proc *p);
/* The process object of docs/api.md#processes. */
json_t *proc_to_json(struct proc *p);
/* sig to its main process: ESRCH once it ended. */
int proc_signal(struct proc *p, int sig, agentd_error *err);
/* Write data to its stdin (waiting up to timeout_ms while the pipe or terminal is full),
 * then close it when close_after. *written says how much went; -1 with err: EPIPE
 * (no stdin: not started with one, closed, or ended), EAGAIN (it does not read). Writers
 * are serialized: one request's bytes are never interleaved with another's. */
int proc_write_stdin(struct proc *p, const uint8_t *data, size_t len, bool close_after,
		     unsigned timeout_ms, size_t *written, agentd_error *err);
/* The terminal's new size (EINVAL without a tty, ESRCH once ended). */
int proc_resize(struct proc *p, unsigned rows, unsigned cols, agentd_error *err);

/* ---------------------------------------------------------------- output
 * Each stream is a sequence of bytes numbered from 0; the ring keeps its last
 * limits.max_process_output_bytes. proc_read copies what is kept from offset on (never
 * blocks): read->offset is where the copied bytes start, past offset when older ones were
 * dropped. ERANGE when offset is past the stream's end. */
struct proc_read {
	size_t n;		/* bytes copied */
	uint64_t offset;	/* the first copied byte's offset (>= the asked one) */
	uint64_t end;		/* the stream's length so far */
	bool ended;		/* the process ended and nothing follows offset + n */
};
int proc_read(struct proc *p, enum proc_stream s, uint64_t offset, uint8_t *buf, size_t max,
	      struct proc_read *read);
/* Per stream: kept from, total (the end), both now. */
void proc_output_span(struct proc *p, enum proc_stream s, uint64_t *kept_from, uint64_t *end);
/* Follow: efd (an eventfd or a non-blocking pipe's write end, the caller's) is written to
 * whenever new output arrives or the process ends; then read again with proc_read.
 * Subscribe before the first read so nothing falls between. -1 with EAGAIN at
 * PROC_MAX_SUBSCRIBERS. */
int proc_subscribe(struct proc *p, int efd);
void proc_unsubscribe(struct proc *p, int efd);

/* procout.c: GET .../processes/{pid}/output as an NDJSON response (reads r->offset,
 * r->follow, r->streams; takes the reference on p). NULL with err (ERANGE: offset past an
 * end, EAGAIN: too many readers). */
void *procout_response_new(struct proc *p, const struct api_request *r, int conn_fd,
			   agentd_error *err);

#endif
