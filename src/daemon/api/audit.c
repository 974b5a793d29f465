/* audit.c: GET /v1/audit — the audit log's records after a sequence number or a time;
 * GET /v1/audit/verify — the hash chain of the records and seals, recomputed. */
#include "daemon/api/api.h"

void api_audit(struct daemon *d, struct api_request *r, const struct client *c,
	       struct reply *out)
{
	agentd_error err = {0};
	json_t *recs = state_audit_list(d->st, r->since_seq, r->since_ms, 10000, &err);
	if (!recs) {
		reply_agentd_error(out, 500, &err);
		return;
	}
	reply_json(out, 200, json_pack("{s:o}", "records", recs));
}

void api_audit_verify(struct daemon *d, struct api_request *r, const struct client *c,
		      struct reply *out)
{
	agentd_error err = {0};
	_cleanup_free_ char *db = xasprintf("%s/agentd.db", d->cfg.state_dir);
	json_t *report = state_audit_verify(db, &err);
	if (!report) {
		reply_agentd_error(out, 500, &err);
		return;
	}
	reply_json(out, 200, report);
}
