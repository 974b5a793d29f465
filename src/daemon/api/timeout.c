/* api/timeout.c: POST /v1/sandboxes/{id}/timeout — a live sandbox's ttl, idle timeout and
 * on_expire changed (E2B's set_timeout; docs/api.md#timeouts), audited. */
#include "daemon/api/api.h"

#include <stdio.h>

void api_sandbox_timeout(struct daemon *d, struct api_request *r, const struct client *c,
			 struct reply *out)
{
	struct live *l = api_live_or_reply(d, r->id, out);
	if (!l)
		return;
	agentd_error err = {0};
	uint64_t t0 = mono_ms();
	int status = expiry_update(d, l, r, &err);
	/* what was asked: "ttl_ms=600000 on_expire=suspend" */
	char result[400] = "";
	size_t n = 0;
	if (status)
		snprintf(result, sizeof(result), "error: %.380s", err.msg);
	if (!status && r->has_ttl)
		n += (size_t)snprintf(result + n, sizeof(result) - n, "ttl_ms=%llu ",
				      (unsigned long long)r->ttl_ms);
	if (!status && r->has_idle)
		n += (size_t)snprintf(result + n, sizeof(result) - n, "idle_timeout_ms=%llu ",
				      (unsigned long long)r->idle_timeout_ms);
	if (!status && r->has_on_expire)
		n += (size_t)snprintf(result + n, sizeof(result) - n, "on_expire=%s ",
				      r->on_expire_suspend ? "suspend" : "destroy");
	if (n)
		result[n - 1] = '\0';
	audit(d, c, "timeout", l->id, NULL, l->digest, l->backend, result, mono_ms() - t0);
	if (status)
		reply_agentd_error(out, status, &err);
	else
		reply_json(out, 200, live_to_json(d, l));
	live_put(d, l);
}
