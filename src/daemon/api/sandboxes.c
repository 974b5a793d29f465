/* api_sandboxes.c: /v1/health, /v1/backends and the sandbox lifecycle endpoints —
 * create, list, inspect, destroy, suspend, resume, snapshot, restore, usage, exec. */
#include "daemon/api/api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static json_t *strv_json(const agentd_strv *sv)
{
	json_t *a = json_array();
	for (size_t i = 0; i < sv->n; i++)
		json_array_append_new(a, json_string(sv->v[i]));
	return a;
}

void api_health(struct daemon *d, struct api_request *r, const struct client *c,
		struct reply *out)
{
	pthread_mutex_lock(&d->lock);
	unsigned live = d->n_live;
	bool draining = d->draining;
	pthread_mutex_unlock(&d->lock);
	reply_json(out, 200,
		   json_pack("{s:s, s:s, s:I, s:i, s:i, s:f, s:s, s:b}", "status",
			     draining ? "draining" : "ok", "version", AGENTD_VERSION,
			     "started_ms", (json_int_t)d->started_ms, "active_sandboxes", (int)live,
			     "max_sandboxes", (int)d->cfg.max_sandboxes, "utilization",
			     (double)live / (double)d->cfg.max_sandboxes, "default_backend",
			     d->default_backend, "draining", draining));
}

static json_t *backend_json(struct daemon *d, const char *name)
{
	agentd_error err = {0};
	agentd_backend *b = daemon_backend(d, name, &err);
	agentd_backend_caps caps;
	memset(&caps, 0, sizeof(caps));
	json_t *aliases = json_array();
	const char *const *al = agentd_backend_aliases(name);
	for (size_t k = 0; al && al[k]; k++)
		json_array_append_new(aliases, json_string(al[k]));
	if (!b || agentd_backend_probe(b, &caps, &err) < 0)
		return json_pack("{s:s, s:o, s:b, s:s}", "name", name, "aliases", aliases,
				 "available", 0, "reason", err.msg);
	json_t *o = json_pack(
		"{s:s, s:o, s:b, s:i, s:{s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:o}, s:o, s:o, s:o}",
		"name", name, "aliases", aliases, "available", caps.available, "score",
		(int)agentd_backend_score(&caps), "capabilities", "filesystem_isolation",
		caps.filesystem_isolation, "network_isolation", caps.network_isolation,
		"process_isolation", caps.process_isolation, "resource_limits", caps.resource_limits,
		"syscall_filtering", caps.syscall_filtering, "persistent_sandboxes",
		caps.persistent_sandboxes, "snapshots", caps.snapshots, "max_concurrent_sandboxes",
		/* 0 means no limit of the backend's own: null, as in `agentd probe --json` */
		caps.max_concurrent_sandboxes ? json_integer(caps.max_concurrent_sandboxes)
					      : json_null(),
		"profiles", strv_json(&caps.available_profiles),
		"platform_features", strv_json(&caps.platform_features), "warnings",
		strv_json(&caps.warnings));
	if (!caps.available)
		json_object_set_new(o, "reason", json_string(caps.unavailable_reason));
	/* docs/policy.md#enforcement: the policy items enforced here, and why not the others
	 * (as `agentd probe --json` lists them) */
	json_t *enforces = json_array(), *cannot = json_object();
	for (unsigned i = 0; i < AGENTD_ITEM_COUNT; i++) {
		const char *item = agentd_policy_item_name((agentd_policy_item)i);
		bool yes = caps.enforceable & AGENTD_ITEM_BIT(i);
		if (yes)
			json_array_append_new(enforces, json_string(item));
		else
			json_object_set_new(cannot, item, json_string(caps.unenforceable_reason[i]));
	}
	json_object_set_new(o, "enforces", enforces);
	json_object_set_new(o, "cannot_enforce", cannot);
	agentd_backend_caps_free(&caps);
	return o;
}

void api_backends(struct daemon *d, struct api_request *r, const struct client *c,
		  struct reply *out)
{
	if (r->route == ROUTE_BACKEND) {
		const char *canon = agentd_canonical_backend_name(r->param);
		if (!canon) {
			reply_error(out, 404, "no backend named %s", r->param);
			return;
		}
		reply_json(out, 200, backend_json(d, canon));
		return;
	}
	size_t n;
	const char *const *names = agentd_available_backends(&n);
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, backend_json(d, names[i]));
	reply_json(out, 200, json_pack("{s:o}", "backends", a));
}

struct live *api_create_live(struct daemon *d, struct api_request *r, const struct client *c,
			     bool session, const char *action, struct reply *out)
{
	agentd_spec defaults;
	if (!r->has_spec)
		agentd_spec_init(&defaults, AGENTD_PROFILE_STRICT);
	agentd_error err = {0};
	int status;
	uint64_t t0 = mono_ms();
	agentd_create_opts opts = {.allow_degraded = r->allow_degraded};
	const agentd_spec *spec = r->has_spec ? &r->spec : &defaults;
	struct state_expiry ex; /* issue 12: ttl (bounds first: nothing is made for a 400) */
	if ((status = expiry_resolve(d, r, &ex, &err))) {
		if (!r->has_spec)
			agentd_spec_free(&defaults);
		audit(d, c, action, NULL, NULL, NULL, r->backend, err.msg, mono_ms() - t0);
		reply_agentd_error(out, status, &err);
		return NULL;
	}
	/* issue 12: snapshots */
	char *seed = r->from_snapshot ? api_snapshot_seed(d, r, spec, out) : NULL;
	if (r->from_snapshot && !seed) {
		if (!r->has_spec)
			agentd_spec_free(&defaults);
		return NULL;
	}
	opts.from_snapshot = seed;
	opts.from_snapshot_copy = r->from_snapshot_copy;
	struct live *l = live_create(d, r->backend, spec, &opts, session ? NULL : r->name,
				     session, &status, &err);
	if (l && seed)
		api_snapshot_seeded(d, l, r);
	api_snapshot_seed_done(seed);
	if (l && (status = expiry_attach(d, l, &ex, &err))) {
		live_destroy(d, l, "create refused", NULL);
		l = NULL;
	}
	if (!r->has_spec)
		agentd_spec_free(&defaults);
	if (!l) {
		audit(d, c, action, NULL, NULL, NULL, r->backend, err.msg, mono_ms() - t0);
		reply_agentd_error(out, status, &err);
		return NULL;
	}
	audit(d, c, action, l->id, NULL, l->digest, l->backend, "ok", mono_ms() - t0);
	dlog("info", "msg=\"sandbox created\" sandbox=%s backend=%s uid=%lld session=%d", l->id,
	     l->backend, (long long)c->uid, session);
	return l;
}

static void create(struct daemon *d, struct api_request *r, const struct client *c,
		   struct reply *out)
{
	struct live *l = api_create_live(d, r, c, false, "create", out);
	if (l) {
		json_t *o = live_to_json(d, l);
		if (r->from_snapshot) { /* issue 12: snapshots: shared (overlay) or copied */
			const char *mode = agentd_sandbox_get_caps(l->sb)->from_snapshot;
			json_object_set_new(o, "from_snapshot", json_string(r->from_snapshot));
			json_object_set_new(o, "from_snapshot_mode", json_string(mode ? mode : "copy"));
		}
		reply_json(out, 201, o);
		live_put(d, l);
	}
}

/* issue 12: names. The sandbox's JSON passes GET /v1/sandboxes's filters: every label
 * filter (AND), the state, the backend, the name. */
static bool list_matches(const struct api_request *r, json_t *o)
{
	json_t *labels = json_object_get(o, "labels");
	for (size_t i = 0; i < r->label_filter.n; i++) {
		const char *v = json_string_value(json_object_get(labels, r->label_filter.v[i].key));
		if (!v || strcmp(v, r->label_filter.v[i].value))
			return false;
	}
	static const char *const keys[] = {"state", "backend", "name"};
	const char *want[] = {r->state_filter, r->backend_filter, r->name_filter};
	for (size_t i = 0; i < 3; i++) {
		const char *v = json_string_value(json_object_get(o, keys[i]));
		if (want[i] && (!v || strcmp(v, want[i])))
			return false;
	}
	return true;
}

/* A filter naming no state or backend there is: 400, not an empty list. */
static bool list_filters_valid(struct api_request *r, struct reply *out)
{
	if (r->state_filter) {
		int s = 0;
		while (s < SB__COUNT && strcmp(sb_state_name((enum sb_state)s), r->state_filter))
			s++;
		if (s == SB__COUNT) {
			reply_error(out, 400, "state: unknown state '%s' (expected provisioning, ready, "
				    "executing, suspended, destroying, destroyed, failed or enforced)",
				    r->state_filter);
			return false;
		}
	}
	if (r->backend_filter) {
		const char *canon = agentd_canonical_backend_name(r->backend_filter);
		if (!canon) {
			reply_error(out, 400, "backend: unknown backend '%s'", r->backend_filter);
			return false;
		}
		free(r->backend_filter); /* an alias filters as its backend */
		r->backend_filter = strdup(canon);
	}
	return true;
}

static void list(struct daemon *d, struct api_request *r, struct reply *out)
{
	if (!list_filters_valid(r, out))
		return;
	json_t *a = json_array();
	pthread_mutex_lock(&d->lock);
	unsigned n = 0;
	for (struct live *l = d->head; l; l = l->next)
		n++;
	struct live **ls = calloc(n + 1, sizeof(*ls));
	n = 0;
	for (struct live *l = d->head; l; l = l->next)
		if (l->sb && l->state != SB_DESTROYING) {
			l->refs++;
			ls[n++] = l;
		}
	pthread_mutex_unlock(&d->lock);
	for (unsigned i = 0; i < n; i++) {
		json_t *o = live_to_json(d, ls[i]);
		json_object_del(o, "spec");
		if (list_matches(r, o))
			json_array_append_new(a, o);
		else
			json_decref(o);
		live_put(d, ls[i]);
	}
	free(ls);
	reply_json(out, 200, json_pack("{s:o}", "sandboxes", a));
}

static void usage(struct daemon *d, struct live *l, struct reply *out)
{
	agentd_usage u;
	agentd_error err = {0};
	if (agentd_sandbox_usage(l->sb, &u, &err) < 0) {
		reply_agentd_error(out, 0, &err);
		return;
	}
	/* The CPU budget is the sandbox's: what is left of it for its next commands. */
	uint64_t budget = agentd_sandbox_spec(l->sb)->limits.max_cpu_time_ms;
	uint64_t left = budget > u.cpu_time_ms ? budget - u.cpu_time_ms : 0;
	reply_json(out, 200,
		   json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "id", l->id,
			     "peak_memory_bytes", (json_int_t)u.peak_memory_bytes, "cpu_time_ms",
			     (json_int_t)u.cpu_time_ms, "cpu_time_limit_ms", (json_int_t)budget,
			     "cpu_time_remaining_ms", (json_int_t)left, "wall_time_ms",
			     (json_int_t)u.wall_time_ms, "bytes_written",
			     (json_int_t)u.bytes_written, "bytes_read", (json_int_t)u.bytes_read));
}

/* suspend and resume move between ready and suspended, nothing else. */
static void freeze(struct daemon *d, struct live *l, bool suspend, struct reply *out)
{
	agentd_error err = {0};
	int status = live_freeze(d, l, suspend, &err);
	if (status)
		reply_agentd_error(out, status, &err);
	else
		reply_json(out, 200, live_to_json(d, l));
}

void api_sandboxes(struct daemon *d, struct api_request *r, const struct client *c,
		   struct reply *out)
{
	if (r->route == ROUTE_SANDBOX_CREATE) {
		create(d, r, c, out);
		return;
	}
	if (r->route == ROUTE_SANDBOX_LIST) {
		list(d, r, out);
		return;
	}
	struct live *l = live_get(d, r->id);
	if (!l) {
		/* Gone sandboxes stay inspectable: their final state and why. */
		json_t *row = r->route == ROUTE_SANDBOX_GET ? state_sandbox_get(d->st, r->id) : NULL;
		if (row) {
			reply_json(out, 200, row);
			return;
		}
		json_t *old = state_sandbox_get(d->st, r->id);
		if (old) {
			/* a DELETE of a gone sandbox finds nothing to delete: 404, as for an
			 * unknown one (a retried DELETE must not look like a conflict) */
			reply_error(out, r->route == ROUTE_SANDBOX_DELETE ? 404 : 409,
				    "sandbox %s is %s", r->id,
				    json_string_value(json_object_get(old, "state")));
			json_decref(old);
			return;
		}
		reply_error(out, 404, "no sandbox %s", r->id);
		return;
	}
	agentd_error err = {0};
	switch (r->route) {
	case ROUTE_SANDBOX_GET:
		reply_json(out, 200, live_to_json(d, l));
		break;
	case ROUTE_SANDBOX_DELETE: {
		char id[API_ID_LEN + 1];
		snprintf(id, sizeof(id), "%s", l->id);
		int rc = live_destroy_audited(d, l, c, "destroy", "deleted", &err);
		if (rc < 0)
			reply_agentd_error(out, 0, &err);
		else
			reply_json(out, 200, json_pack("{s:s, s:s}", "id", id, "state", "destroyed"));
		return; /* the reference went with the sandbox */
	}
	case ROUTE_SANDBOX_SUSPEND:
	case ROUTE_SANDBOX_RESUME:
		freeze(d, l, r->route == ROUTE_SANDBOX_SUSPEND, out);
		break;
	case ROUTE_SANDBOX_SNAPSHOT:
		api_snapshot_take(d, l, r, c, out);
		break;
	case ROUTE_SANDBOX_RESTORE:
		api_snapshot_restore(d, l, r, c, out);
		break;
	case ROUTE_SANDBOX_USAGE:
		usage(d, l, out);
		break;
	/* issue 12: names */
	case ROUTE_SANDBOX_NETWORK: {
		json_t *j = NULL;
		int status = live_set_network(d, l, c, &r->network, &j, &err);
		if (status)
			reply_agentd_error(out, status, &err);
		else
			reply_json(out, 200, j);
		break;
	}
	default:
		reply_error(out, 500, "route %s not handled", api_route_name(r->route));
	}
	live_put(d, l);
}

struct live *api_live_or_reply(struct daemon *d, const char *id, struct reply *out)
{
	struct live *l = live_get(d, id);
	if (!l) {
		json_t *old = state_sandbox_get(d->st, id);
		if (old)
			reply_error(out, 409, "sandbox %s is %s", id,
				    json_string_value(json_object_get(old, "state")));
		else
			reply_error(out, 404, "no sandbox %s", id);
		json_decref(old);
	}
	return l;
}

void api_reply_stream(struct daemon *d, struct live *l, const struct client *c,
		      struct api_request *r, stream_work_fn work, struct reply *out)
{
	out->mhd_response = stream_work_response_new(d, l, c, r, c->fd, work);
	if (!out->mhd_response) {
		live_put(d, l);
		reply_error(out, 500, "cannot start the stream");
		return;
	}
	out->status = 200;
}

void api_exec(struct daemon *d, struct api_request *r, const struct client *c,
	      struct reply *out)
{
	struct live *l = api_live_or_reply(d, r->id, out);
	if (!l)
		return;
	agentd_error cerr = {0};
	agentd_command check = {.argv = r->argv, .env = r->env, .workdir = r->workdir,
				.timeout_ms = r->timeout_ms};
	if (agentd_sandbox_check_command(l->sb, &check, &cerr) < 0) {
		reply_agentd_error(out, 400, &cerr);
		live_put(d, l);
		return;
	}
	if (r->stream) {
		/* A wrong state is known now: a plain 409 before any chunk. Past this point
		 * the stream owns the reference. */
		pthread_mutex_lock(&d->lock);
		enum sb_state s = live_state(l);
		pthread_mutex_unlock(&d->lock);
		if (s != SB_READY && s != SB_EXECUTING) {
			reply_error(out, 409, "sandbox %s is %s", l->id, sb_state_name(s));
			live_put(d, l);
			return;
		}
		api_reply_stream(d, l, c, r, NULL, out);
		return;
	}
	agentd_command cmd = {
		.argv = r->argv,
		.env = r->env,
		.workdir = r->workdir,
		.stdin_data = r->has_stdin ? r->stdin_data : NULL,
		.stdin_len = r->stdin_len,
		.timeout_ms = r->timeout_ms,
	};
	static const uint8_t empty;
	if (r->has_stdin && !cmd.stdin_data)
		cmd.stdin_data = &empty;
	agentd_exec_output o;
	agentd_error err = {0};
	struct exec_slot slot; /* issue 12: durable-daemon: to learn why it was cancelled */
	if (exec_slot_init(&slot, c->fd) < 0) {
		reply_error(out, 500, "exec: pipe: %s", strerror(errno));
		live_put(d, l);
		return;
	}
	int status = live_exec(d, l, c, &cmd, NULL, NULL, &slot, &o, &err);
	if (status) {
		reply_agentd_error(out, status, &err);
	} else {
		char *s = agentd_exec_output_to_json(&o, l->backend, l->id);
		json_t *j = json_loads(s, 0, NULL);
		free(s);
		live_exec_mark_cancelled(j, &slot);
		reply_json(out, 200, j);
	}
	exec_slot_close(&slot);
	agentd_exec_output_free(&o);
	live_put(d, l);
}
