/* attach.h: a terminal attached to a background process over a WebSocket (live/attach.c,
 * docs/api.md#attach): its output to the client, the client's keys to its terminal, resize
 * messages to its window size, its end as an exit message. Builds on procs.h. */
#ifndef AGENTD_ATTACH_H
#define AGENTD_ATTACH_H

#include "daemon/live/procs.h"

struct attach;

/* The 101 response of a checked GET .../attach (r: its ws_key, offset, foreground) whose
 * upgrade handler runs the attachment in the connection's thread until the process ends or
 * the client goes. Takes the reference on p (the caller keeps it on failure); *ctx is for attach_release, which the server
 * calls once the request completed (after the session, or instead of it when the upgrade
 * never happened). NULL with err (ERANGE: offset past the output's end). */
void *attach_response_new(struct daemon *d, struct live *l, struct proc *p,
			  const struct api_request *r, const struct client *c, struct attach **ctx,
			  agentd_error *err);
void attach_release(void *ctx);

#endif
