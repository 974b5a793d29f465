/* api_contexts.c: /v1/sandboxes/{id}/contexts — stateful code contexts (docs/contexts.md):
 * create, list, inspect, delete, and run a cell (one object, or NDJSON events). */
#include "daemon/api/api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A cell's timeout is bounded by the sandbox's wall-time limit, as an exec's is. */
static int check_timeout(struct live *l, uint64_t timeout_ms, agentd_error *err)
{
	uint64_t wall = agentd_sandbox_spec(l->sb)->limits.max_wall_time_ms;
	if (timeout_ms && wall && timeout_ms > wall)
		return agentd_error_set(err, EINVAL,
					"timeout_ms %llu is above the sandbox's wall-time limit "
					"(limits.max_wall_time_ms = %llu)",
					(unsigned long long)timeout_ms, (unsigned long long)wall);
	return 0;
}

json_t *api_context_run_work(struct daemon *d, struct live *l, const struct client *c,
			     struct api_request *r, struct exec_slot *slot, ctx_event_cb emit,
			     void *emit_ud)
{
	struct ctx_run_req req = {.code = r->code, .env = &r->env, .timeout_ms = r->timeout_ms};
	json_t *res = NULL;
	agentd_error err = {0};
	uint64_t t0 = mono_ms();
	int status = ctx_run(d, l, r->context, &req, slot, emit, emit_ud, &res, &err);
	char *argv[] = {"context", r->context, NULL};
	audit(d, c, "context_run", l->id, argv, l->digest, l->backend,
	      status ? err.msg : json_string_value(json_object_get(res, "status")),
	      mono_ms() - t0);
	if (status)
		return json_pack("{s:{s:s, s:s}}", "error", "code", api_status_code(status),
				 "message", err.msg);
	/* streamed: the output went out as events already */
	json_object_del(res, "stdout");
	json_object_del(res, "stderr");
	json_object_del(res, "stdout_encoding");
	json_object_del(res, "stderr_encoding");
	return json_pack("{s:o}", "done", res);
}

static void run(struct daemon *d, struct live *l, struct api_request *r, const struct client *c,
		struct reply *out)
{
	agentd_error err = {0};
	if (check_timeout(l, r->timeout_ms, &err) < 0) {
		reply_agentd_error(out, 400, &err);
		return;
	}
	if (r->stream) {
		/* a context that is not there or busy is known now: a plain error status */
		json_t *cj = NULL;
		int st = ctx_get_json(d, l, r->context, &cj, &err);
		const char *state = cj ? json_string_value(json_object_get(cj, "state")) : NULL;
		if (!st && state && strcmp(state, "ready")) {
			st = 409;
			agentd_error_set(&err, EBUSY, "context %s is %s", r->context, state);
		}
		json_decref(cj);
		if (st) {
			reply_agentd_error(out, st, &err);
			return;
		}
		live_get(d, l->id); /* the stream's own reference */
		api_reply_stream(d, l, c, r, api_context_run_work, out);
		return;
	}
	struct exec_slot slot;
	if (exec_slot_init(&slot, c->fd) < 0) {
		reply_error(out, 500, "run: pipe: %s", strerror(errno));
		return;
	}
	struct ctx_run_req req = {.code = r->code, .env = &r->env, .timeout_ms = r->timeout_ms};
	json_t *res = NULL;
	uint64_t t0 = mono_ms();
	int status = ctx_run(d, l, r->context, &req, &slot, NULL, NULL, &res, &err);
	exec_slot_close(&slot);
	char *argv[] = {"context", r->context, NULL};
	audit(d, c, "context_run", l->id, argv, l->digest, l->backend,
	      status ? err.msg : json_string_value(json_object_get(res, "status")),
	      mono_ms() - t0);
	if (status)
		reply_agentd_error(out, status, &err);
	else
		reply_json(out, 200, res);
}

void api_contexts(struct daemon *d, struct api_request *r, const struct client *c,
		  struct reply *out)
{
	struct live *l = api_live_or_reply(d, r->id, out);
	if (!l)
		return;
	agentd_error err = {0};
	json_t *j = NULL;
	int status = 0;
	switch (r->route) {
	case ROUTE_CONTEXT_CREATE: {
		agentd_command check = {.argv = (char *[]){"context", NULL}, .env = r->env,
					.workdir = r->workdir};
		if (agentd_sandbox_check_command(l->sb, &check, &err) < 0) {
			status = 400;
			break;
		}
		uint64_t t0 = mono_ms();
		status = ctx_create(d, l, r->language, &r->env, r->workdir, false, &j, &err);
		char *argv[] = {"context", (char *)api_language_name(r->language), NULL};
		audit(d, c, "context_create", l->id, argv, l->digest, l->backend,
		      status ? err.msg : json_string_value(json_object_get(j, "id")),
		      mono_ms() - t0);
		if (!status)
			reply_json(out, 201, j);
		break;
	}
	case ROUTE_CONTEXT_LIST:
		reply_json(out, 200, json_pack("{s:o}", "contexts", ctx_list_json(d, l)));
		break;
	case ROUTE_CONTEXT_GET:
		if (!(status = ctx_get_json(d, l, r->context, &j, &err)))
			reply_json(out, 200, j);
		break;
	case ROUTE_CONTEXT_DELETE:
		if (!(status = ctx_delete(d, l, r->context, &err)))
			reply_json(out, 200, json_pack("{s:s, s:s}", "id", r->context, "state",
						       "deleted"));
		break;
	case ROUTE_CONTEXT_RUN:
		run(d, l, r, c, out);
		break;
	default:
		reply_error(out, 500, "route %s not handled", api_route_name(r->route));
	}
	if (status)
		reply_agentd_error(out, status, &err);
	live_put(d, l);
}
