/* flags.c: the policy flags of `agentd run` (and of every verb that creates a sandbox),
 * mapped onto the same spec the JSON policy builds, with the same validation. */
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *policy_flags_help(void)
{
	return "policy options (applied after --policy; flags win):\n"
	       "  --policy FILE         JSON policy (docs/policy.md)\n"
	       "  --profile P           strict | standard | permissive\n"
	       "  --ro PATH             host path visible read-only (repeatable)\n"
	       "  --rw PATH             host path visible read-write (repeatable)\n"
	       "  --net MODE            none | host | allow:HOST:PORT,*.DOMAIN:PORT,CIDR,...\n"
	       "  --memory SIZE         memory limit, e.g. 256M\n"
	       "  --cpu-time DUR        CPU time limit, e.g. 10s\n"
	       "  --timeout DUR         wall-clock limit per command, e.g. 30s, 500ms\n"
	       "  --pids N              maximum number of processes\n"
	       "  --max-output SIZE     stdout+stderr captured, the rest dropped\n"
	       "  --env K=V             environment variable (repeatable)\n"
	       "  --workdir DIR         working directory inside the sandbox\n"
	       "  --seccomp PROFILE     default | none | PATH to an OCI seccomp JSON\n"
	       "  --user UID[:GID]      identity of the command when agentd is root\n"
	       "                        (default 65534:65534; 0 = root without capabilities;\n"
	       "                        container: the sandbox's own leased host uid, 0 = uid 0\n"
	       "                        of its own user namespace only)\n";
}

int policy_flags_add(struct policy_flags *pf, int opt, const char *val, agentd_error *err)
{
	if (opt < OPT_POLICY || opt >= OPT_POLICY_LAST)
		return -1;
	if (opt == OPT_POLICY) {
		pf->policy_file = val;
		return 0;
	}
	if (opt == OPT_PROFILE) {
		pf->profile = val;
		return 0;
	}
	if (pf->n == (int)(sizeof(pf->items) / sizeof(pf->items[0])))
		return agentd_error_set(err, E2BIG, "too many policy flags");
	pf->items[pf->n].opt = opt;
	pf->items[pf->n].val = val;
	pf->n++;
	return 0;
}

static void strv_add(agentd_strv *sv, const char *s)
{
	sv->v = realloc(sv->v, (sv->n + 2) * sizeof(char *));
	if (!sv->v)
		abort();
	sv->v[sv->n++] = strdup(s);
	sv->v[sv->n] = NULL;
}

static void kv_set(agentd_kvv *kv, const char *k, size_t klen, const char *v)
{
	for (size_t i = 0; i < kv->n; i++)
		if (strlen(kv->v[i].key) == klen && !strncmp(kv->v[i].key, k, klen)) {
			free(kv->v[i].value);
			kv->v[i].value = strdup(v);
			return;
		}
	kv->v = realloc(kv->v, (kv->n + 1) * sizeof(agentd_kv));
	if (!kv->v)
		abort();
	kv->v[kv->n].key = strndup(k, klen);
	kv->v[kv->n].value = strdup(v);
	kv->n++;
}

static int parse_u32(const char *flag, const char *s, uint32_t *out, agentd_error *err)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > UINT32_MAX || *s == '-')
		return agentd_error_set(err, EINVAL, "%s: expected a non-negative integer, got '%s'",
					flag, s);
	*out = (uint32_t)v;
	return 0;
}

static int parse_net(const char *s, agentd_network *net, agentd_error *err)
{
	for (size_t i = 0; i < net->allow.n; i++)
		free(net->allow.v[i]);
	free(net->allow.v);
	net->allow.v = NULL;
	net->allow.n = 0;
	if (!strcmp(s, "none")) {
		net->mode = AGENTD_NET_NONE;
		return 0;
	}
	if (!strcmp(s, "host")) {
		net->mode = AGENTD_NET_HOST;
		return 0;
	}
	if (strncmp(s, "allow:", 6) != 0)
		return agentd_error_set(err, EINVAL,
					"--net: expected none, host or allow:SPEC,..., got '%s'", s);
	net->mode = AGENTD_NET_ALLOWLIST;
	const char *p = s + 6;
	if (!*p)
		return agentd_error_set(err, EINVAL, "--net allow: needs at least one entry");
	while (*p) {
		const char *c = strchrnul(p, ',');
		if (c == p)
			return agentd_error_set(err, EINVAL, "--net: empty entry in '%s'", s);
		char *entry = strndup(p, (size_t)(c - p));
		strv_add(&net->allow, entry);
		free(entry);
		p = *c ? c + 1 : c;
	}
	return 0;
}

static int apply_flag(agentd_spec *spec, int opt, const char *val, agentd_error *err)
{
	agentd_limits *l = &spec->limits;
	switch (opt) {
	case OPT_RO:
		strv_add(&spec->allowed_paths_ro, val);
		return 0;
	case OPT_RW:
		strv_add(&spec->allowed_paths_rw, val);
		return 0;
	case OPT_NET:
		return parse_net(val, &spec->network, err);
	case OPT_MEMORY:
		if (parse_size(val, &l->max_memory_bytes, err) < 0)
			return agentd_error_prefix(err, "--memory");
		return 0;
	case OPT_CPU_TIME:
		if (parse_duration_ms(val, &l->max_cpu_time_ms, err) < 0)
			return agentd_error_prefix(err, "--cpu-time");
		return 0;
	case OPT_TIMEOUT:
		if (parse_duration_ms(val, &l->max_wall_time_ms, err) < 0)
			return agentd_error_prefix(err, "--timeout");
		return 0;
	case OPT_PIDS:
		return parse_u32("--pids", val, &l->max_processes, err);
	case OPT_MAX_OUTPUT:
		if (parse_size(val, &l->max_output_bytes, err) < 0)
			return agentd_error_prefix(err, "--max-output");
		return 0;
	case OPT_ENV: {
		const char *eq = strchr(val, '=');
		if (!eq || eq == val)
			return agentd_error_set(err, EINVAL, "--env: expected K=V, got '%s'", val);
		kv_set(&spec->environment, val, (size_t)(eq - val), eq + 1);
		return 0;
	}
	case OPT_WORKDIR:
		free(spec->workdir);
		spec->workdir = strdup(val);
		return 0;
	case OPT_SECCOMP:
		free(spec->seccomp_profile);
		spec->seccomp_profile = strdup(val);
		return 0;
	case OPT_USER: {
		char *end;
		errno = 0;
		long long uid = strtoll(val, &end, 10), gid = -1;
		if (end == val || errno || uid < 0 || uid > UINT32_MAX - 1)
			return agentd_error_set(err, EINVAL, "--user: expected UID[:GID], got '%s'",
						val);
		if (*end == ':') {
			const char *g = end + 1;
			gid = strtoll(g, &end, 10);
			if (end == g || errno || gid < 0 || gid > UINT32_MAX - 1)
				return agentd_error_set(err, EINVAL,
							"--user: expected UID[:GID], got '%s'", val);
		}
		if (*end)
			return agentd_error_set(err, EINVAL, "--user: expected UID[:GID], got '%s'",
						val);
		spec->run_as_uid = uid;
		spec->run_as_gid = gid >= 0 ? gid : uid;
		return 0;
	}
	}
	return agentd_error_set(err, EINVAL, "unknown policy option");
}

int policy_flags_build(const struct policy_flags *pf, agentd_spec *spec, agentd_error *err)
{
	agentd_profile prof = AGENTD_PROFILE_STRICT;
	if (pf->profile && agentd_profile_from_name(pf->profile, &prof) < 0)
		return agentd_error_set(err, EINVAL,
					"--profile: expected strict, standard or permissive, got '%s'",
					pf->profile);
	agentd_spec_init(spec, prof);
	if (pf->policy_file) {
		if (agentd_policy_load_file(pf->policy_file, spec, err) < 0)
			goto fail;
		if (pf->profile)
			agentd_spec_set_profile(spec, prof);
	}
	for (int i = 0; i < pf->n; i++)
		if (apply_flag(spec, pf->items[i].opt, pf->items[i].val, err) < 0)
			goto fail;
	if (agentd_spec_validate(spec, err) < 0)
		goto fail;
	return 0;
fail:
	agentd_spec_free(spec);
	return -1;
}
