/* api_sessions.c: the agent session model (docs/api.md#sessions) — a session is a sandbox
 * of its own; each execution runs in the session's code context of its language
 * (live/contexts.c), so variables persist between executions as files do. */
#include "daemon/api/api.h"

#include <stdlib.h>
#include <string.h>

static void create(struct daemon *d, struct api_request *r, const struct client *c,
		   struct reply *out)
{
	struct live *l = api_create_live(d, r, c, true, "session_create", out);
	if (!l)
		return;
	agentd_error err = {0};
	char sid[API_ID_LEN + 1];
	random_id(sid);
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

/* The SandboxResult of an execution from a context's run: the exec output's fields (an
 * exit code as a script's: 0, 1 for an exception, 124 timed out, 137 killed), the error's
 * traceback in stderr as the interpreter would have printed it, and the value. */
static json_t *execution_result(json_t *run, struct live *l)
{
	const char *st = json_string_value(json_object_get(run, "status"));
	json_t *err = json_object_get(run, "error");
	bool timed_out = json_is_true(json_object_get(run, "timed_out"));
	bool killed = !strcmp(st, "killed");
	json_t *ec = json_object_get(run, "exit_code");
	int code = timed_out ? 124 : killed ? 137 : ec ? (int)json_integer_value(ec)
					   : !strcmp(st, "ok") ? 0 : 1;
	json_t *res = json_deep_copy(run);
	json_object_set_new(res, "exit_code", json_integer(code));
	if (json_is_object(err) && !json_object_get(run, "stderr_encoding")) {
		const char *tb = json_string_value(json_object_get(err, "traceback"));
		if (!tb || !*tb)
			tb = json_string_value(json_object_get(err, "value"));
		char *joined = xasprintf("%s%s", json_string_value(json_object_get(run, "stderr")),
					 tb ? tb : "");
		json_object_set_new(res, "stderr", json_string(joined));
		free(joined);
	}
	json_object_set(res, "value", json_object_get(run, "result"));
	json_object_set_new(res, "success", json_boolean(code == 0 && !timed_out));
	json_object_set_new(res, "killed", json_boolean(timed_out || killed));
	json_object_set_new(res, "kill_reason", json_string(timed_out ? "timeout"
							    : killed ? "killed" : ""));
	json_object_set_new(res, "backend", json_string(l->backend));
	json_object_set_new(res, "sandbox_id", json_string(l->id));
	return res;
}

/* An execution runs in the session's context of its language (started on first use), so
 * variables persist between executions as files do. */
static json_t *execute_work(struct daemon *d, struct live *l, const struct client *c,
			    struct api_request *r, struct exec_slot *slot, ctx_event_cb emit,
			    void *emit_ud, int *http_status)
{
	char eid[API_ID_LEN + 1], cid[API_ID_LEN + 1];
	random_id(eid);
	agentd_error err = {0};
	json_t *run = NULL;
	const char *lang = api_language_name(r->language);
	state_session_set_status(d->st, r->session, "executing");
	int status = ctx_session_context(d, l, r->language, cid, &err);
	if (!status) {
		struct ctx_run_req req = {.code = r->code, .env = &r->env,
					  .timeout_ms = r->timeout_ms, .queue = true};
		status = ctx_run(d, l, cid, &req, slot, emit, emit_ud, &run, &err);
	}
	state_session_set_status(d->st, r->session, "ready");
	char *argv[] = {"session", (char *)lang, NULL};
	audit(d, c, "exec", l->id, argv, l->digest, l->backend,
	      status ? err.msg : json_string_value(json_object_get(run, "status")), 0);
	if (status) {
		state_execution_insert(d->st, eid, r->session, lang, "failed", -1, 0, NULL);
		*http_status = status;
		return json_pack("{s:{s:s, s:s}}", "error", "code", api_status_code(status),
				 "message", err.msg);
	}
	json_t *res = execution_result(run, l);
	json_decref(run);
	bool ok = json_is_true(json_object_get(res, "success"));
	const char *st = ok ? "completed" : "failed";
	state_execution_insert(d->st, eid, r->session, lang, st,
			       (int)json_integer_value(json_object_get(res, "exit_code")),
			       (uint64_t)json_integer_value(json_object_get(res, "duration_ms")),
			       NULL);
	*http_status = 200;
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "execution_id", eid, "agent_id",
			 r->agent, "session_id", r->session, "status", st, "language", lang,
			 "result", res);
}

static json_t *execute_streamed(struct daemon *d, struct live *l, const struct client *c,
				struct api_request *r, struct exec_slot *slot, ctx_event_cb emit,
				void *emit_ud)
{
	int status;
	json_t *o = execute_work(d, l, c, r, slot, emit, emit_ud, &status);
	if (status != 200)
		return o;
	json_t *res = json_object_get(o, "result");
	json_object_del(res, "stdout");
	json_object_del(res, "stderr");
	return json_pack("{s:o}", "done", o);
}

static void execute(struct daemon *d, struct live *l, struct api_request *r,
		    const struct client *c, struct reply *out)
{
	uint64_t wall = agentd_sandbox_spec(l->sb)->limits.max_wall_time_ms;
	if (r->timeout_ms && wall && r->timeout_ms > wall) {
		reply_error(out, 400, "timeout_ms %llu is above the sandbox's wall-time limit "
			    "(limits.max_wall_time_ms = %llu)", (unsigned long long)r->timeout_ms,
			    (unsigned long long)wall);
		return;
	}
	if (r->stream) {
		live_get(d, l->id); /* the stream's own reference */
		api_reply_stream(d, l, c, r, execute_streamed, out);
		return;
	}
	struct exec_slot slot;
	if (exec_slot_init(&slot, c->fd) < 0) {
		reply_error(out, 500, "execution: pipe");
		return;
	}
	int status;
	json_t *o = execute_work(d, l, c, r, &slot, NULL, NULL, &status);
	exec_slot_close(&slot);
	if (status == 200) {
		reply_json(out, 200, o);
		return;
	}
	json_t *msg = json_object_get(json_object_get(o, "error"), "message");
	reply_error(out, status, "%s", json_string_value(msg));
	json_decref(o);
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
	if (r->route == ROUTE_SESSION_EXECUTIONS) { /* also of a session that ended */
		reply_json(out, 200, json_pack("{s:s, s:s, s:s, s:o}", "agent_id", r->agent,
					       "session_id", r->session, "status", status,
					       "executions", state_execution_list(d->st, r->session)));
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
