/* api.h: the handlers of the daemon's routes (src/daemon/api/), one file per resource.
 * server.c maps each route to one of them. Includes live/ and below. */
#ifndef AGENTD_API_H
#define AGENTD_API_H

#include "daemon/live/live.h"

/* ------------------------------------------------------------------ api_*.c */
typedef void (*api_handler)(struct daemon *d, struct api_request *r, const struct client *c,
			    struct reply *out);
void api_health(struct daemon *, struct api_request *, const struct client *, struct reply *);
void api_backends(struct daemon *, struct api_request *, const struct client *, struct reply *);
void api_sandboxes(struct daemon *, struct api_request *, const struct client *, struct reply *);
void api_exec(struct daemon *, struct api_request *, const struct client *, struct reply *);
void api_files(struct daemon *, struct api_request *, const struct client *, struct reply *);
void api_sessions(struct daemon *, struct api_request *, const struct client *, struct reply *);
/* GET .../attach of process p (api_processes finds l and p): the WebSocket upgrade. */
struct proc;
void api_attach(struct daemon *d, struct live *l, struct proc *p, struct api_request *r,
		const struct client *c, struct reply *out);
void api_processes(struct daemon *, struct api_request *, const struct client *,
		   struct reply *);
/* The live sandbox id, referenced; else NULL with the reply set: 409 `sandbox ID is STATE`
 * for one the state database knows (destroyed, failed), 404 for an unknown one. */
struct live *api_live_or_reply(struct daemon *d, const char *id, struct reply *out);
void api_contexts(struct daemon *, struct api_request *, const struct client *, struct reply *);
/* The streamed run of a cell (stream_work_fn): its events, then {"done": result}. */
json_t *api_context_run_work(struct daemon *d, struct live *l, const struct client *c,
			     struct api_request *r, struct exec_slot *slot, ctx_event_cb emit,
			     void *emit_ud);
/* A streamed answer whose work (NULL: r's exec) owns the reference to l from here on. */
void api_reply_stream(struct daemon *d, struct live *l, const struct client *c,
		      struct api_request *r, stream_work_fn work, struct reply *out);
void api_ports(struct daemon *, struct api_request *, const struct client *, struct reply *);
/* Create the sandbox of a POST /v1/sandboxes or /v1/agents/.../sessions (default spec
 * when none was given), audited as action; NULL with the error reply already set. */
struct live *api_create_live(struct daemon *d, struct api_request *r, const struct client *c,
			     bool session, const char *action, struct reply *out);

void api_audit(struct daemon *d, struct api_request *r, const struct client *c,
	       struct reply *out);
void api_audit_verify(struct daemon *d, struct api_request *r, const struct client *c,
		      struct reply *out);
void api_metrics(struct daemon *d, struct api_request *r, const struct client *c,
		 struct reply *out);
/* issue 12: ttl */
void api_sandbox_timeout(struct daemon *d, struct api_request *r, const struct client *c,
			 struct reply *out);

/* issue 12: snapshots (api/snapshots.c). Durable snapshots under <state>/snapshots. */
/* At start: the directory made (0700), what a crash left half-done removed. */
int api_snapshots_open(struct daemon *d, agentd_error *err);
void api_snapshots(struct daemon *, struct api_request *, const struct client *, struct reply *);
/* POST .../snapshots, POST .../restore of l. */
void api_snapshot_take(struct daemon *d, struct live *l, struct api_request *r,
		       const struct client *c, struct reply *out);
void api_snapshot_restore(struct daemon *d, struct live *l, struct api_request *r,
			  const struct client *c, struct reply *out);
/* from_snapshot of a create: the snapshot's directory (malloc'd) once its workdir and
 * backend fit spec and r (r->backend set to its backend when none was asked), held until
 * api_snapshot_seed_done; else NULL and the reply (404, 400) set. */
char *api_snapshot_seed(struct daemon *d, struct api_request *r, const agentd_spec *spec,
			struct reply *out);
void api_snapshot_seed_done(char *dir);
/* After the create, before api_snapshot_seed_done: an overlay's snapshot is recorded as
 * in use by l (it is not deleted before l is destroyed). */
void api_snapshot_seeded(struct daemon *d, struct live *l, struct api_request *r);

/* issue 13: img-store (api/images.c). The store <state>/images, opened at start (what a
 * crash left of an import is prune's). */
int api_images_open(struct daemon *d, agentd_error *err);
void api_images(struct daemon *, struct api_request *, const struct client *, struct reply *);
/* An unnamed file in the store's tmp dir for an archive body (its bound in *limit), or -1. */
int api_image_upload_file(struct daemon *d, size_t *limit);
/* issue 13: img-build. POST /v1/images/build: agentd_image_build streamed as NDJSON,
 * {"progress": LINE} per stage, then {"image": {...}, "cached": B} or {"error": {...}}. */
void api_image_build(struct daemon *d, struct api_request *r, const struct client *c,
		     struct reply *out);

#endif
