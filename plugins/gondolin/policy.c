/* policy.c: an agentd spec as gondolin's VM options (docs/gondolin.md#policy): memory, vCPUs,
 * read-only host mounts, the HTTP(S) host allowlist; what gondolin cannot express is refused. */
#include "gondolin.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An allow entry that names an address or a range ("10.0.0.0/8:5432", "[fd00::1]:443",
 * "127.0.0.1"): gondolin's allowlist is by host name. */
static bool entry_is_address(const char *e)
{
	if (e[0] == '[' || strchr(e, '/'))
		return true;
	const char *colon = strrchr(e, ':');
	if (colon && strchr(e, ':') != colon)
		return true; /* a bare IPv6 address */
	size_t n = colon ? (size_t)(colon - e) : strlen(e);
	bool digits_dots = n > 0;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)e[i]) && e[i] != '.')
			digits_dots = false;
	return digits_dots;
}

static int allow_entry(json_t *allow, size_t i, const char *e, agentd_error *err)
{
	if (entry_is_address(e))
		return agentd_error_set(err, EINVAL,
					"network.allow[%zu]: \"%s\": gondolin allows HTTP(S) by host "
					"name only, not addresses or CIDR ranges",
					i, e);
	const char *colon = strrchr(e, ':');
	long port = colon ? strtol(colon + 1, NULL, 10) : 0;
	if (port != 80 && port != 443)
		return agentd_error_set(err, EINVAL,
					"network.allow[%zu]: \"%s\": gondolin carries HTTP (port 80) "
					"and HTTPS (port 443) only",
					i, e);
	json_t *o = json_object();
	json_object_set_new(o, "host", json_stringn(e, (size_t)(colon - e)));
	json_object_set_new(o, "port", json_integer(port));
	json_array_append_new(allow, o);
	return 0;
}

static int network(json_t *cfg, const agentd_network *net, agentd_error *err)
{
	json_t *n = json_object();
	json_object_set_new(cfg, "network", n);
	if (net->mode == AGENTD_NET_HOST)
		return agentd_error_set(err, EINVAL,
					"network.mode: \"host\" cannot be expressed by gondolin (the "
					"guest only reaches what its HTTP(S) stack allows); use "
					"\"allowlist\"");
	json_object_set_new(n, "mode", json_string(agentd_net_mode_name(net->mode)));
	if (net->mode != AGENTD_NET_ALLOWLIST)
		return 0;
	json_t *allow = json_array();
	json_object_set_new(n, "allow", allow);
	for (size_t i = 0; i < net->allow.n; i++)
		if (allow_entry(allow, i, net->allow.v[i], err) < 0)
			return -1;
	return 0;
}

static void mount(json_t *mounts, const char *host, const char *guest)
{
	json_t *m = json_object();
	json_object_set_new(m, "host", json_string(host));
	json_object_set_new(m, "guest", json_string(guest));
	json_object_set_new(m, "readonly", json_true());
	json_array_append_new(mounts, m);
}

/* Host paths the guest sees, read-only. A writable one is refused: the guest's writes would
 * reach the host through gondolin's file provider, which agentd cannot confine beneath the
 * path (no RESOLVE_IN_ROOT there). */
static int mounts(json_t *cfg, const agentd_spec *s, agentd_error *err)
{
	json_t *m = json_array();
	json_object_set_new(cfg, "mounts", m);
	if (s->allowed_paths_rw.n)
		return agentd_error_set(err, EINVAL,
					"allowed_paths_rw[0]: \"%s\": gondolin maps host paths "
					"read-only only (allowed_paths_ro)",
					s->allowed_paths_rw.v[0]);
	for (size_t i = 0; i < s->allowed_paths_ro.n; i++)
		mount(m, s->allowed_paths_ro.v[i], s->allowed_paths_ro.v[i]);
	for (size_t i = 0; i < s->n_bind_mounts; i++) {
		if (!s->bind_mounts[i].readonly)
			return agentd_error_set(err, EINVAL,
						"bind_mounts[%zu]: \"%s\": gondolin maps host paths "
						"read-only only (\"readonly\": true)",
						i, s->bind_mounts[i].source);
		mount(m, s->bind_mounts[i].source, s->bind_mounts[i].target);
	}
	return 0;
}

static int limits(json_t *cfg, const agentd_limits *l, agentd_error *err)
{
	if (l->cpu_weight && l->cpu_weight != 100)
		return agentd_error_set(err, EINVAL,
					"limits.cpu_weight: gondolin has no CPU weight, only a vCPU "
					"count (limits.cpu_quota_pct)");
	if (l->max_memory_bytes) {
		/* the VM's RAM, in QEMU's syntax, rounded up to whole MiB */
		char mem[32];
		snprintf(mem, sizeof(mem), "%" PRIu64 "M", (l->max_memory_bytes + (1u << 20) - 1) >> 20);
		json_object_set_new(cfg, "memory", json_string(mem));
	}
	if (l->cpu_quota_pct)
		json_object_set_new(cfg, "cpus", json_integer((l->cpu_quota_pct + 99) / 100));
	return 0;
}

json_t *gondolin_policy_config(const agentd_spec *s, agentd_error *err)
{
	json_t *cfg = json_object();
	json_object_set_new(cfg, "workdir", json_string(s->workdir));
	json_t *env = json_object();
	for (size_t i = 0; i < s->environment.n; i++)
		json_object_set_new(env, s->environment.v[i].key,
				    json_string(s->environment.v[i].value));
	json_object_set_new(cfg, "env", env);
	if (limits(cfg, &s->limits, err) < 0 || mounts(cfg, s, err) < 0 ||
	    network(cfg, &s->network, err) < 0) {
		json_decref(cfg);
		return NULL;
	}
	return cfg;
}
