/* api/attach.c: GET /v1/sandboxes/{id}/processes/{pid}/attach — a WebSocket to a process's
 * terminal (docs/api.md#attach). The request and its upgrade headers were checked by
 * http/request.c; the session itself is live/attach.c's. */
#include "daemon/api/api.h"
#include "daemon/live/attach.h"

#include <errno.h>

void api_attach(struct daemon *d, struct live *l, struct proc *p, struct api_request *r,
		const struct client *c, struct reply *out)
{
	if (!proc_is_tty(p)) {
		reply_error(out, 400, "process %lld has no terminal: attach needs one (start it "
			    "with \"tty\": true; its output is at .../output)",
			    (long long)proc_pid(p));
		return;
	}
	agentd_error err = {0};
	struct attach *ctx = NULL;
	proc_get(p); /* the attachment's */
	out->mhd_response = attach_response_new(d, l, p, r, c, &ctx, &err);
	if (!out->mhd_response) {
		proc_put(p);
		reply_agentd_error(out, err.code == ERANGE ? 400 : 500, &err);
		return;
	}
	out->status = 101;
	out->upgrade_ctx = ctx;
	out->upgrade_release = attach_release;
}
