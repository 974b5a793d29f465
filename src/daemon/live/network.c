/* network.c: PATCH /v1/sandboxes/{id}/network — a live sandbox switched between "none" and
 * "allowlist", or its allowlist replaced, through the library (which closes what the new
 * policy does not allow); each change an audit record (action "network", the old and the
 * new policy) and the stored policy kept current. */
#include "daemon/live/live.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The spec's network object, as the policy JSON has it. */
static json_t *network_json(const agentd_spec *spec)
{
	char *s = agentd_policy_to_json(spec);
	json_t *root = json_loads(s, 0, NULL);
	free(s);
	json_t *net = json_incref(json_object_get(root, "network"));
	json_decref(root);
	return net ? net : json_null();
}

static int status_of(int e)
{
	return e == EBUSY || e == EADDRINUSE ? 409 : e == ENOTSUP ? 501 : e == EINVAL ? 400 : 500;
}

/* The row keeps the policy the sandbox runs under now (its digest stays the one it was
 * created with: what its records before the change name), and a durable sandbox's whole
 * policy too: an adopter re-attaches its proxy by the current network, not the first. */
static void store_policy(struct daemon *d, struct live *l)
{
	char *json = agentd_policy_to_json(agentd_sandbox_spec(l->sb));
	char *stored = live_policy_json_for_state(json);
	agentd_error err = {0};
	if (state_sandbox_set_policy(d->st, l->id, stored, l->digest, &err) < 0 ||
	    (l->durable && state_durable_set_spec(d->st, l->id, json, &err) < 0))
		dlog("error", "msg=\"sandbox policy not stored\" sandbox=%s error=\"%s\"", l->id,
		     err.msg);
	free(stored);
	free(json);
}

int live_set_network(struct daemon *d, struct live *l, const struct client *c,
		     const agentd_network *net, json_t **out, agentd_error *err)
{
	int status = live_require_ready(d, l, err);
	if (status)
		return status;
	pthread_mutex_lock(&l->net_lock);
	const agentd_spec *spec = agentd_sandbox_spec(l->sb);
	if (spec->network.mode == AGENTD_NET_HOST) {
		pthread_mutex_unlock(&l->net_lock);
		agentd_error_set(err, EBUSY, "sandbox %s runs with network mode \"host\" (the "
					     "host's own network): it cannot be switched", l->id);
		return 409;
	}
	json_t *old = network_json(spec);
	uint64_t t0 = mono_ms();
	int rc = agentd_sandbox_set_network(l->sb, net, err);
	json_t *allow = json_array();
	for (size_t i = 0; i < net->allow.n; i++)
		json_array_append_new(allow, json_string(net->allow.v[i]));
	json_t *now = json_pack("{s:s, s:o}", "mode", agentd_net_mode_name(net->mode), "allow",
				allow);
	if (rc == 0)
		store_policy(d, l);
	pthread_mutex_unlock(&l->net_lock);
	json_t *detail = json_pack("{s:o, s:o}", "old", old, "new", now);
	char result[200];
	snprintf(result, sizeof(result), rc < 0 ? "error: %.180s" : "ok", err->msg);
	audit_detail(d, c, "network", l->id, detail, l->digest, l->backend, result,
		     mono_ms() - t0);
	json_decref(detail);
	if (rc < 0)
		return status_of(err->code);
	dlog("info", "msg=\"sandbox network changed\" sandbox=%s mode=%s allow=%zu", l->id,
	     agentd_net_mode_name(net->mode), net->allow.n);
	*out = live_to_json(d, l);
	return 0;
}
