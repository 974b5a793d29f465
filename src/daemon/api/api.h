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
void api_processes(struct daemon *, struct api_request *, const struct client *,
		   struct reply *);
/* The live sandbox id, referenced; else NULL with the reply set: 409 `sandbox ID is STATE`
 * for one the state database knows (destroyed, failed), 404 for an unknown one. */
struct live *api_live_or_reply(struct daemon *d, const char *id, struct reply *out);
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

#endif
