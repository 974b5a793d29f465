/* audit.c: the append-only audit log — who (peer uid) did what (action, argv) to which
 * sandbox under which policy (sha256 digest), on which backend, with what result. Each
 * record is committed before the request is answered. */
#include "daemon/live/live.h"

#include <string.h>

void audit(struct daemon *d, const struct client *c, const char *action, const char *sandbox_id,
	   char *const *argv, const char *digest, const char *backend, const char *result,
	   uint64_t duration_ms)
{
	json_t *a = NULL;
	if (argv) {
		a = json_array();
		for (char *const *p = argv; *p; p++) {
			json_t *arg = json_string(*p);
			json_array_append_new(a, arg ? arg : json_string("<not utf-8>"));
		}
	}
	audit_detail(d, c, action, sandbox_id, a, digest, backend, result, duration_ms);
	json_decref(a);
}

void audit_detail(struct daemon *d, const struct client *c, const char *action,
		  const char *sandbox_id, json_t *detail, const char *digest, const char *backend,
		  const char *result, uint64_t duration_ms)
{
	char *argv_json = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
	struct audit_record rec = {
		.uid = c ? c->uid : -1,
		.client = c ? c->desc : "daemon",
		.action = action,
		.sandbox_id = sandbox_id,
		.argv_json = argv_json,
		.policy_digest = digest,
		.backend = backend,
		.result = result,
		.duration_ms = duration_ms,
	};
	agentd_error err = {0};
	if (state_audit_append(d->st, &rec, &err) < 0)
		dlog("error", "msg=\"audit record lost\" action=%s sandbox=%s error=\"%s\"", action,
		     sandbox_id ? sandbox_id : "-", err.msg);
	free(argv_json);
}
