/* api_sessions.c: the agent session model (docs/api.md#sessions) — a session is a sandbox
 * of its own; each execution writes the code to a file in the session's workdir (from inside the
 * sandbox, by the sandbox's own shell: the host touches no sandbox path) and runs it with
 * the language's interpreter, so files persist between executions. */
#include "daemon/api/api.h"

#include <stdlib.h>
#include <string.h>

static void random_hex(char out[API_ID_LEN + 1])
{
	uint8_t b[16];
	FILE *f = fopen("/dev/urandom", "re");
	if (!f || fread(b, 1, sizeof(b), f) != sizeof(b))
		abort();
	fclose(f);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void create(struct daemon *d, struct api_request *r, const struct client *c,
		   struct reply *out)
{
	struct live *l = api_create_live(d, r, c, true, "session_create", out);
	if (!l)
		return;
	agentd_error err = {0};
	char sid[API_ID_LEN + 1];
	random_hex(sid);
	if (state_session_insert(d->st, sid, r->agent, l->id, &err) < 0) {
		live_destroy(d, l, "session not recorded", NULL);
		reply_agentd_error(out, 500, &err);
		return;
	}
	reply_json(out, 201, json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "agent_id", r->agent,
				       "session_id", sid, "status", "ready", "sandbox_id", l->id,
				       "backend", l->backend, "unenforced", live_unenforced_json(l)));
	live_put(d, l);
}

/* The code goes in through stdin and is saved by the sandbox's own shell; the file name is
 * ours (the execution id), never the client's. */
static void execute(struct daemon *d, struct live *l, struct api_request *r,
		    const struct client *c, struct reply *out)
{
	static const char *const interp[] = {[LANG_SH] = "/bin/sh", [LANG_PYTHON] = "python3",
					     [LANG_NODE] = "node"};
	static const char *const ext[] = {[LANG_SH] = "sh", [LANG_PYTHON] = "py",
					  [LANG_NODE] = "js"};
	char eid[API_ID_LEN + 1];
	random_hex(eid);
	char script[256];
	snprintf(script, sizeof(script),
		 "mkdir -p .agentd && cat > .agentd/%s.%s && exec %s .agentd/%s.%s", eid,
		 ext[r->language], interp[r->language], eid, ext[r->language]);
	char *argv[] = {"/bin/sh", "-c", script, NULL};
	agentd_command cmd = {
		.argv = argv,
		.stdin_data = (const uint8_t *)r->code,
		.stdin_len = strlen(r->code),
	};
	agentd_exec_output o;
	agentd_error err = {0};
	state_session_set_status(d->st, r->session, "executing");
	int status = live_exec(d, l, c, &cmd, NULL, NULL, NULL, &o, &err);
	state_session_set_status(d->st, r->session, "ready");
	if (status) {
		state_execution_insert(d->st, eid, r->session, api_language_name(r->language),
				       "failed", -1, 0, NULL);
		reply_agentd_error(out, status, &err);
		agentd_exec_output_free(&o);
		return;
	}
	bool ok = o.exit_code == 0 && !o.timed_out;
	const char *st = ok ? "completed" : "failed";
	state_execution_insert(d->st, eid, r->session, api_language_name(r->language), st,
			       o.exit_code, o.duration_ms, NULL);
	char *s = agentd_exec_output_to_json(&o, l->backend, l->id);
	json_t *res = json_loads(s, 0, NULL);
	free(s);
	/* The seed's SandboxResult fields next to ours. */
	const char *kill_reason = o.timed_out ? "timeout"
				  : o.limit_hit != AGENTD_LIMIT_NONE
					  ? agentd_limit_kind_name(o.limit_hit)
					  : "";
	json_object_set_new(res, "success", json_boolean(ok));
	json_object_set_new(res, "killed", json_boolean(o.timed_out || o.term_signal));
	json_object_set_new(res, "kill_reason", json_string(kill_reason));
	reply_json(out, 200, json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "execution_id", eid,
				       "agent_id", r->agent, "session_id", r->session, "status", st,
				       "language", api_language_name(r->language), "result", res));
	agentd_exec_output_free(&o);
}

void api_sessions(struct daemon *d, struct api_request *r, const struct client *c,
		  struct reply *out)
{
	if (r->route == ROUTE_SESSION_CREATE) {
		create(d, r, c, out);
		return;
	}
	char sbid[API_ID_LEN + 1], status[16];
	if (state_session_get(d->st, r->agent, r->session, sbid, status) < 0) {
		reply_error(out, 404, "agent %s has no session %s", r->agent, r->session);
		return;
	}
	struct live *l = live_get(d, sbid);
	if (!l) {
		/* a second DELETE finds nothing to delete: 404, like the sandbox's */
		reply_error(out, r->route == ROUTE_SESSION_DELETE ? 404 : 409, "session %s is %s",
			    r->session, status);
		return;
	}
	if (r->route == ROUTE_SESSION_EXEC) {
		execute(d, l, r, c, out);
		live_put(d, l);
		return;
	}
	agentd_error err = {0};
	int rc = live_destroy_audited(d, l, c, "session_destroy", "session deleted", &err);
	if (rc < 0) {
		reply_agentd_error(out, 0, &err);
		return;
	}
	reply_json(out, 200, json_pack("{s:s, s:s, s:s}", "agent_id", r->agent, "session_id",
				       r->session, "status", "destroyed"));
}
