/* live.c: the daemon's live sandboxes — creation under the capacity limit, references held
 * by handlers, lifecycle states, execs that destroy can cancel, and the final state written
 * to the state database. */
#include "daemon/live/procs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *const state_names[SB__COUNT] = {
	[SB_PROVISIONING] = "provisioning", [SB_READY] = "ready",
	[SB_EXECUTING] = "executing",	    [SB_SUSPENDED] = "suspended",
	[SB_DESTROYING] = "destroying",	    [SB_DESTROYED] = "destroyed",
	[SB_FAILED] = "failed",		    [SB_ENFORCED] = "enforced",
};

const char *sb_state_name(enum sb_state s)
{
	return s < SB__COUNT ? state_names[s] : "?";
}

/* One backend instance per canonical name, created on first use. "auto" resolves once, policy
 * blind, for what health reports; a create with auto chooses per spec (live_create). */
agentd_backend *daemon_backend(struct daemon *d, const char *name, agentd_error *err)
{
	if (!name)
		name = d->cfg.default_backend;
	const char *canon = strcasecmp(name, "auto") ? agentd_canonical_backend_name(name) : "auto";
	if (!canon) {
		agentd_error_set(err, EINVAL, "backend: unknown backend '%s'", name);
		return NULL;
	}
	/* issue 13: oci-runtime. oci's aliases pick its driver (runc, crun, podman, docker):
	 * one instance per name asked for. */
	char asked[64];
	if (!strcmp(canon, "oci")) {
		size_t k = 0;
		for (; name[k] && k < sizeof(asked) - 1; k++)
			asked[k] = (char)tolower((unsigned char)name[k]);
		asked[k] = '\0';
		canon = asked;
	}
	pthread_mutex_lock(&d->lock);
	agentd_backend *b = NULL;
	for (size_t i = 0; i < d->n_backends; i++)
		if (!strcmp(d->backends[i].name, canon))
			b = d->backends[i].b;
	if (!b && d->n_backends < sizeof(d->backends) / sizeof(d->backends[0])) {
		if (!strcmp(canon, "auto")) {
			agentd_error warn = {0};
			b = agentd_detect_best_backend(d->work_root, &warn);
			if (warn.msg[0])
				dlog("warn", "msg=\"auto backend: %s\"", warn.msg);
		} else if (agentd_create_backend(canon, d->work_root, &b, err) < 0) {
			b = NULL;
		}
		if (b) {
			agentd_backend_set_proxy(b, d->proxy);
			agentd_backend_set_image_store(b, d->images); /* issue 13: img-store */
			snprintf(d->backends[d->n_backends].name, 64, "%s", canon);
			d->backends[d->n_backends++].b = b;
		}
	}
	pthread_mutex_unlock(&d->lock);
	if (!b && err && !err->msg[0])
		agentd_error_set(err, EINVAL, "backend %s: not available", canon);
	return b;
}

enum sb_state live_state(const struct live *l)
{
	if (l->state == SB_READY && l->execs)
		return SB_EXECUTING;
	return l->state;
}

int live_require_ready(struct daemon *d, struct live *l, agentd_error *err)
{
	pthread_mutex_lock(&d->lock);
	enum sb_state s = live_state(l);
	pthread_mutex_unlock(&d->lock);
	if (s == SB_READY || s == SB_EXECUTING)
		return 0;
	agentd_error_set(err, EBUSY, "sandbox %s is %s", l->id, sb_state_name(s));
	return 409;
}

static void live_free(struct live *l)
{
	pthread_mutex_destroy(&l->net_lock);
	free(l->name);
	free(l);
}

/* The policy as the sandboxes table keeps it: the environment's values (API keys, tokens)
 * replaced, its names kept. The row outlives the sandbox; the digest is of the whole
 * policy. A durable sandbox's whole policy is kept apart while it lives (adopt.c). */
char *live_policy_json_for_state(const char *json)
{
	json_t *root = json_loads(json, 0, NULL);
	json_t *env = json_object_get(root, "environment");
	const char *k;
	json_t *v;
	json_object_foreach(env, k, v) json_object_set_new(env, k, json_string("(redacted)"));
	char *out = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(root);
	return out ? out : strdup("{}");
}

struct live *live_create(struct daemon *d, const char *backend_name, const agentd_spec *spec,
			 const agentd_create_opts *opts, const char *name, bool session,
			 int *status, agentd_error *err)
{
	*status = 400;
	/* auto is chosen per spec: the best backend that enforces it (docs/backends.md#score) */
	if (!backend_name)
		backend_name = d->cfg.default_backend;
	if (!strcasecmp(backend_name, "auto") &&
	    agentd_select_backend(spec, opts, &backend_name, err) < 0)
		return NULL;
	agentd_backend *b = daemon_backend(d, backend_name, err);
	if (!b)
		return NULL;
	char *json = agentd_policy_to_json(spec);
	struct live *l = calloc(1, sizeof(*l));
	sha256_hex(json, strlen(json), l->digest);
	snprintf(l->backend, sizeof(l->backend), "%s", agentd_backend_name(b));
	l->name = name ? strdup(name) : NULL;
	l->session = session;
	l->state = SB_PROVISIONING;
	l->refs = 1;
	l->created_ms = now_ms_realtime();
	pthread_mutex_init(&l->net_lock, NULL);

	pthread_mutex_lock(&d->lock);
	if (d->draining) {
		pthread_mutex_unlock(&d->lock);
		*status = 503;
		agentd_error_set(err, ESHUTDOWN, "the daemon is shutting down");
		goto fail;
	}
	if (d->n_live >= d->cfg.max_sandboxes) {
		pthread_mutex_unlock(&d->lock);
		*status = 429;
		agentd_error_set(err, EAGAIN, "over capacity: %u sandboxes (--max-sandboxes)",
				 d->cfg.max_sandboxes);
		goto fail;
	}
	if (name)
		for (struct live *o = d->head; o; o = o->next)
			if (o->name && !strcmp(o->name, name)) {
				pthread_mutex_unlock(&d->lock);
				*status = 409;
				agentd_error_set(err, EEXIST, "a sandbox named %s exists (%s)", name,
						 o->id);
				goto fail;
			}
	/* Listed while provisioning (no id, no sandbox yet): it counts for the capacity, its
	 * name is taken, metrics show it; lookups and listings skip it. */
	d->n_live++;
	l->next = d->head;
	d->head = l;
	pthread_mutex_unlock(&d->lock);

	agentd_sandbox *sb = NULL;
	bool inserted = false;
	/* any thread may create: a sandbox belongs to the daemon's process, not to the
	 * connection's thread that created it (agentd.h, ownership) */
	int r = agentd_backend_create_sandbox_opts(b, spec, opts, &sb, err);
	if (r == 0) {
		snprintf(l->id, sizeof(l->id), "%s", agentd_sandbox_id(sb));
		l->sb = sb;
		/* Recorded before anyone learns the id: a crash from here on finds the row. */
		char *stored = live_policy_json_for_state(json);
		r = state_sandbox_insert(d->st, l->id, name, l->backend, stored, l->digest,
					 "ready", session, err);
		free(stored);
		inserted = r == 0;
		/* durable before anyone learns the id: a restart from here on adopts it */
		if (r == 0)
			r = live_make_durable(d, l, json, err);
		if (r < 0)
			*status = 500;
	} else {
		*status = err->code == EINVAL || err->code == ENOTSUP ? 400
			  : err->code == ENOENT ? 404 /* issue 13: no such image */
						: 500;
	}
	pthread_mutex_lock(&d->lock);
	if (r == 0 && d->draining) {
		/* the drain's destroy pass may be over already: do not add to it */
		agentd_error_set(err, ESHUTDOWN, "the daemon is shutting down");
		*status = 503;
		r = -1;
	}
	if (r < 0) {
		for (struct live **pp = &d->head; *pp; pp = &(*pp)->next)
			if (*pp == l) {
				*pp = l->next;
				break;
			}
		d->n_live--;
		d->m.create_failed++;
		pthread_cond_broadcast(&d->cond);
	} else {
		l->state = SB_READY;
		d->m.created++;
	}
	pthread_mutex_unlock(&d->lock);
	free(json);
	if (r < 0) {
		if (l->sb) {
			agentd_sandbox_destroy(l->sb, NULL);
			live_forget_durable(d, l);
			if (inserted)
				state_sandbox_set_state(d->st, l->id, *status != 500 ? "destroyed"
							: "failed", *status != 500 ? "daemon stopped"
							: err->msg, NULL);
		}
		live_free(l);
		return NULL;
	}
	return l;
fail:
	free(json);
	live_free(l);
	return NULL;
}

/* l is the sandbox ref names: its id, else its unique name (never 32 hex digits). */
static bool live_is(const struct live *l, const char *ref, bool by_id)
{
	return l->sb && (by_id ? !strcmp(l->id, ref) : l->name && !strcmp(l->name, ref));
}

struct live *live_get(struct daemon *d, const char *ref)
{
	bool by_id = api_valid_id(ref);
	pthread_mutex_lock(&d->lock);
	struct live *l = d->head;
	while (l && !live_is(l, ref, by_id))
		l = l->next;
	if (l && l->state != SB_DESTROYING)
		l->refs++;
	else
		l = NULL;
	pthread_mutex_unlock(&d->lock);
	return l;
}

void live_put(struct daemon *d, struct live *l)
{
	pthread_mutex_lock(&d->lock);
	l->refs--;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

int live_destroy(struct daemon *d, struct live *l, const char *reason, agentd_error *err)
{
	pthread_mutex_lock(&d->lock);
	if (l->state == SB_DESTROYING) {
		l->refs--;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		return agentd_error_set(err, EALREADY, "sandbox %s is being destroyed", l->id);
	}
	enum sb_state was = l->state;
	l->state = SB_DESTROYING;
	for (struct exec_slot *s = l->slots; s; s = s->next) {
		if (!s->cancel_reason)
			s->cancel_reason = "sandbox destroyed";
		exec_slot_cancel(s);
	}
	while (l->refs > 1)
		pthread_cond_wait(&d->cond, &d->lock);
	for (struct live **pp = &d->head; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	pthread_mutex_unlock(&d->lock);

	/* every process handle is freed (its tree killed) before the sandbox goes */
	procs_table_free(l);
	ctx_free_all(d, l); /* their processes before the sandbox */
	ports_close_all(d, l, reason); /* their relays connect into l->sb: before it goes */
	files_watch_end_all(d, l->id); /* issue 12: files */
	agentd_error derr = {0};
	int r = agentd_sandbox_destroy(l->sb, &derr);
	const char *final = r < 0 ? "failed" : "destroyed";
	state_sandbox_set_state(d->st, l->id, final,
				r < 0 ? derr.msg : (was == SB_ENFORCED ? "enforced" : reason), NULL);
	live_forget_durable(d, l);
	if (l->session)
		state_session_set_status_by_sandbox(d->st, l->id, final);
	pthread_mutex_lock(&d->lock);
	d->n_live--;
	d->m.destroyed++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	dlog("info", "msg=\"sandbox destroyed\" sandbox=%s backend=%s reason=\"%s\"", l->id,
	     l->backend, reason);
	live_free(l);
	if (r < 0 && err)
		*err = derr;
	return r;
}

void live_destroy_all(struct daemon *d, const char *reason)
{
	for (;;) {
		pthread_mutex_lock(&d->lock);
		struct live *l = d->head;
		while (l && (l->state == SB_DESTROYING || l->state == SB_PROVISIONING))
			l = l->next;
		if (l)
			l->refs++;
		bool busy = !l && d->head;
		if (busy)
			pthread_cond_wait(&d->cond, &d->lock); /* another destroy is finishing */
		pthread_mutex_unlock(&d->lock);
		if (l)
			live_destroy(d, l, reason, NULL);
		else if (!busy)
			return;
	}
}

/* The exec engine cancels when its cancel fd turns readable. Ours is an epoll set of the
 * cancel pipe (destroy, a streaming reader) and the client's socket, registered for a
 * hang-up only (EPOLLRDHUP; a pipelined next request is not one): a client that goes away
 * stops its command instead of leaving it to run until its timeout. */
int exec_slot_init(struct exec_slot *slot, int client_fd)
{
	memset(slot, 0, sizeof(*slot));
	slot->watch = -1;
	if (pipe2(slot->cancel, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	slot->watch = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};
	if (slot->watch < 0 || epoll_ctl(slot->watch, EPOLL_CTL_ADD, slot->cancel[0], &ev) < 0) {
		exec_slot_close(slot);
		return -1;
	}
	struct epoll_event hup = {.events = EPOLLRDHUP};
	if (client_fd >= 0 && epoll_ctl(slot->watch, EPOLL_CTL_ADD, client_fd, &hup) < 0) {
		exec_slot_close(slot);
		return -1;
	}
	return 0;
}

void exec_slot_cancel(struct exec_slot *slot)
{
	char c = 1;
	if (write(slot->cancel[1], &c, 1) < 0) {
		/* already cancelled (pipe full) */
	}
}

/* issue 12: ttl */
void live_slot_remove(struct daemon *d, struct live *l, struct exec_slot *slot)
{
	for (struct exec_slot **pp = &l->slots; *pp; pp = &(*pp)->next)
		if (*pp == slot) {
			*pp = slot->next;
			break;
		}
	live_touch(l);
	if (!l->slots)
		expiry_kick_locked(d); /* its idle clock runs again */
}

int live_freeze(struct daemon *d, struct live *l, bool suspend, agentd_error *err)
{
	pthread_mutex_lock(&d->lock);
	enum sb_state s = l->state;
	pthread_mutex_unlock(&d->lock);
	if (s != (suspend ? SB_READY : SB_SUSPENDED))
		return agentd_error_set(err, EBUSY, "sandbox %s is %s", l->id, sb_state_name(s)),
		       409;
	int r = suspend ? agentd_sandbox_suspend(l->sb, err) : agentd_sandbox_resume(l->sb, err);
	if (r < 0)
		return api_status_from_errno(err->code);
	pthread_mutex_lock(&d->lock);
	if (l->state == s)
		l->state = suspend ? SB_SUSPENDED : SB_READY;
	pthread_mutex_unlock(&d->lock);
	state_sandbox_set_state(d->st, l->id, suspend ? "suspended" : "ready", NULL, NULL);
	if (!suspend)
		expiry_resumed(d, l);
	return 0;
}

void exec_slot_close(struct exec_slot *slot)
{
	for (int i = 0; i < 2; i++)
		if (slot->cancel[i] >= 0)
			close(slot->cancel[i]);
	if (slot->watch >= 0)
		close(slot->watch);
	slot->cancel[0] = slot->cancel[1] = slot->watch = -1;
}

int live_destroy_audited(struct daemon *d, struct live *l, const struct client *c,
			 const char *action, const char *reason, agentd_error *err)
{
	/* the destroy may free l: what the record names is copied first */
	char id[API_ID_LEN + 1], backend[64], digest[65];
	snprintf(id, sizeof(id), "%s", l->id);
	snprintf(backend, sizeof(backend), "%s", l->backend);
	snprintf(digest, sizeof(digest), "%s", l->digest);
	uint64_t t0 = mono_ms();
	int rc = live_destroy(d, l, reason, err);
	audit(d, c, action, id, NULL, digest, backend, rc < 0 ? err->msg : "ok", mono_ms() - t0);
	return rc;
}

uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int live_exec(struct daemon *d, struct live *l, const struct client *c,
	      const agentd_command *cmd, agentd_output_cb on_output, void *userdata,
	      struct exec_slot *slot, agentd_exec_output *out, agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	struct exec_slot own;
	if (!slot) {
		if (exec_slot_init(&own, c ? c->fd : -1) < 0) {
			agentd_error_set(err, errno, "exec: pipe: %s", strerror(errno));
			return 500;
		}
		slot = &own;
	}
	pthread_mutex_lock(&d->lock);
	enum sb_state s = live_state(l);
	if (s != SB_READY && s != SB_EXECUTING) {
		pthread_mutex_unlock(&d->lock);
		if (slot == &own)
			exec_slot_close(&own);
		agentd_error_set(err, EBUSY, "sandbox %s is %s", l->id, sb_state_name(s));
		return 409;
	}
	if (l->execs >= LIVE_MAX_EXECS) {
		pthread_mutex_unlock(&d->lock);
		if (slot == &own)
			exec_slot_close(&own);
		agentd_error_set(err, EAGAIN, "sandbox %s runs %u execs already", l->id, l->execs);
		return 429;
	}
	slot->next = l->slots;
	l->slots = slot;
	l->execs++;
	pthread_mutex_unlock(&d->lock);

	agentd_exec_ctx ctx = {
		.on_output = on_output,
		.userdata = userdata,
		.cancel_fd = slot->watch,
	};
	uint64_t t0 = mono_ms();
	int r = agentd_sandbox_exec(l->sb, cmd, &ctx, out, err);
	uint64_t dt = mono_ms() - t0;

	pthread_mutex_lock(&d->lock);
	live_slot_remove(d, l, slot);
	l->execs--;
	live_count_exec(d, out, r < 0);
	/* A limit that took the sandbox's own processes (its init) leaves it unusable. */
	if (r == 0 && out->resource_limited && l->state == SB_READY &&
	    !agentd_sandbox_is_alive(l->sb))
		l->state = SB_ENFORCED;
	else if (r < 0 && l->state == SB_READY && !agentd_sandbox_is_alive(l->sb))
		l->state = SB_FAILED;
	pthread_mutex_unlock(&d->lock);

	char result[160];
	if (r == 0 && slot->cancel_reason)
		snprintf(result, sizeof(result), "cancelled (exit %d), reason: %s", out->exit_code,
			 slot->cancel_reason);
	else if (r < 0)
		snprintf(result, sizeof(result), "error: %.140s", err->msg);
	else if (out->timed_out)
		snprintf(result, sizeof(result), "timeout (exit %d)", out->exit_code);
	else if (out->limit_hit != AGENTD_LIMIT_NONE)
		snprintf(result, sizeof(result), "exit %d, %s limit", out->exit_code,
			 agentd_limit_kind_name(out->limit_hit));
	else
		snprintf(result, sizeof(result), "exit %d", out->exit_code);
	audit(d, c, "exec", l->id, cmd->argv, l->digest, l->backend, result, dt);
	if (slot == &own)
		exec_slot_close(&own);
	if (r < 0)
		return api_status_from_errno(err->code) == 400 ? 400
		       : err->code == EBUSY			 ? 409
								 : 500;
	return 0;
}

json_t *live_unenforced_json(const struct live *l)
{
	const agentd_sandbox_caps *c = agentd_sandbox_get_caps(l->sb);
	json_t *a = json_array();
	for (size_t i = 0; i < c->unenforced.n; i++)
		json_array_append_new(a, json_string(c->unenforced.v[i]));
	return a;
}

json_t *live_to_json(struct daemon *d, struct live *l)
{
	pthread_mutex_lock(&d->lock);
	enum sb_state s = live_state(l);
	unsigned execs = l->execs;
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_lock(&l->net_lock); /* a network change rewrites spec and caps */
	const agentd_sandbox_caps *c = agentd_sandbox_get_caps(l->sb);
	json_t *caps = json_pack("{s:b, s:b, s:b, s:b, s:s}", "can_write_filesystem",
				 c->can_write_filesystem, "has_network", c->has_network,
				 "syscall_filter_active", c->syscall_filter_active,
				 "is_persistent", c->is_persistent, "profile",
				 agentd_profile_name(c->profile));
	json_t *spec = NULL;
	char *sj = agentd_policy_to_json(agentd_sandbox_spec(l->sb));
	pthread_mutex_unlock(&l->net_lock);
	spec = json_loads(sj, 0, NULL);
	free(sj);
	/* issue 12: names. Its labels (what a list filters by) and current network policy at
	 * the top, as a list (which leaves the spec out) shows them too. */
	json_t *labels = json_object_get(spec, "labels"), *net = json_object_get(spec, "network");
	labels = labels ? json_incref(labels) : json_object();
	net = net ? json_incref(net) : json_null();
	json_t *o = json_pack("{s:s, s:s?, s:s, s:s, s:I, s:I, s:b, s:s, s:o, s:o, s:o, s:o, s:o}",
			 "id", l->id, "name", l->name, "backend", l->backend, "state",
			 sb_state_name(s), "created_ms", (json_int_t)l->created_ms,
			 "running_execs", (json_int_t)execs, "session", l->session,
			 "policy_digest", l->digest, "capabilities", caps, "unenforced",
			 live_unenforced_json(l), "labels", labels, "network", net, "spec", spec ? spec : json_null());
	/* issue 12: durable-daemon: whether it outlives a daemon restart */
	json_object_set_new(o, "durable", json_boolean(l->durable));
	expiry_to_json(d, l, o); /* issue 12: ttl */
	return o;
}

/* The exec counters GET /v1/metrics reads (api/metrics.c). */
const double live_latency_bucket_s[LATENCY_BUCKETS] = {0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1,
						 0.25,	0.5,   1,     2.5,  5,     10,   30};
void live_count_exec(struct daemon *d, const agentd_exec_output *o, bool failed)
{
	struct metrics *m = &d->m;
	enum exec_result r = failed ? EXEC_ERROR
			     : o->timed_out ? EXEC_TIMEOUT
			     : o->resource_limited ? EXEC_LIMIT
			     : o->exit_code ? EXEC_NONZERO : EXEC_OK;
	m->execs[r]++;
	double s = (double)o->duration_ms / 1000.0;
	for (int i = 0; i < LATENCY_BUCKETS; i++)
		if (s <= live_latency_bucket_s[i])
			m->latency_le[i]++;
	m->latency_count++;
	m->latency_sum_s += s;
}
