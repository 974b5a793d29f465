/* flags.c: the policy flags of `agentd run` (and of every verb that creates a sandbox),
 * mapped onto the same spec the JSON policy builds, with the same validation. */
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_bad_option(const char *verb, int c, char *const *argv)
{
	char opt[64];
	const char *arg = argv[optind - 1];
	if (optopt > 0 && optopt < 0x100 && strncmp(arg, "--", 2) != 0)
		snprintf(opt, sizeof(opt), "-%c", optopt);
	else
		snprintf(opt, sizeof(opt), "%.*s", (int)strcspn(arg, "="), arg);
	print_error("%s: %s %s (see agentd %s --help)", verb,
		    c == ':' ? "a value is missing after" : "unknown option", opt, verb);
	return -1;
}

int cli_env_opt(json_t *env, const char *arg)
{
	const char *eq = strchr(arg, '=');
	if (!eq || eq == arg) {
		print_error("--env: expected K=V, got '%s'", arg);
		return -1;
	}
	char *k = strndup(arg, (size_t)(eq - arg));
	json_object_set_new(env, k, json_string(eq + 1));
	free(k);
	return 0;
}

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
	       "  --max-output SIZE     per stream: the head and the tail kept, the middle dropped\n"
	       "  --env K=V             environment variable (repeatable)\n"
	       "  --workdir DIR         working directory inside the sandbox\n"
	       "  --seccomp PROFILE     default | none | PATH to an OCI seccomp JSON\n"
	       "  --user UID[:GID]      identity of the command when agentd is root\n"
	       "                        (default 65534:65534; 0 = root without capabilities;\n"
	       "                        container: the sandbox's own leased host uid, 0 = uid 0\n"
	       "                        of its own user namespace only)\n"
	       "  --allow-degraded      run even when the backend cannot enforce part of the\n"
	       "                        policy (say, no cgroup for --memory); what is not\n"
	       "                        enforced is listed on stderr and in \"unenforced\"\n"
	       "  --image REF           the sandbox's root is this image (docs/images.md)\n"
	       "  --writable-root       with --image: a writable root, its writes bounded by\n"
	       "                        max_write_bytes and gone with the sandbox\n";
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
	if (opt == OPT_ALLOW_DEGRADED) {
		pf->allow_degraded = true;
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

/* The limit flags: how each value is written and which limits key it sets. */
enum flag_unit { UNIT_BYTES, UNIT_MS, UNIT_COUNT };
static const struct limit_flag {
	int opt;
	const char *flag, *key;
	enum flag_unit unit;
} limit_flags[] = {
	{OPT_MEMORY, "--memory", "max_memory_bytes", UNIT_BYTES},
	{OPT_CPU_TIME, "--cpu-time", "max_cpu_time_ms", UNIT_MS},
	{OPT_TIMEOUT, "--timeout", "max_wall_time_ms", UNIT_MS},
	{OPT_PIDS, "--pids", "max_processes", UNIT_COUNT},
	{OPT_MAX_OUTPUT, "--max-output", "max_output_bytes", UNIT_BYTES},
};

/* A limit as its flag takes it: 1M, 1500ms, 64 (the largest exact unit). */
static void format_limit(char *buf, size_t n, uint64_t v, enum flag_unit unit)
{
	static const struct {
		uint64_t scale;
		const char *suffix;
	} bytes[] = {{1ULL << 40, "T"}, {1ULL << 30, "G"}, {1ULL << 20, "M"}, {1ULL << 10, "K"}},
	  ms[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
	const __typeof__(bytes[0]) *t = unit == UNIT_BYTES ? bytes : ms;
	for (size_t i = 0; unit != UNIT_COUNT && v && i < ARRAY_SIZE(bytes); i++)
		if (v % t[i].scale == 0) {
			snprintf(buf, n, "%llu%s", (unsigned long long)(v / t[i].scale), t[i].suffix);
			return;
		}
	snprintf(buf, n, "%llu%s", (unsigned long long)v,
		 unit == UNIT_BYTES ? (v == 1 ? " byte" : " bytes") : unit == UNIT_MS ? "ms" : "");
}

/* Parse a limit flag and check it against the library's range, so that the error names
 * the flag and speaks its units: "--memory: 10 bytes is below 1M". */
static int apply_limit_flag(agentd_limits *l, int opt, const char *val, agentd_error *err)
{
	const struct limit_flag *f = limit_flags;
	while (f->opt != opt)
		f++;
	uint64_t v = 0, lo = 0, hi = UINT64_MAX;
	uint32_t v32 = 0;
	int r = f->unit == UNIT_BYTES ? parse_size(val, &v, err)
		: f->unit == UNIT_MS  ? parse_duration_ms(val, &v, err)
				      : parse_u32(f->flag, val, &v32, err);
	if (r < 0)
		return f->unit == UNIT_COUNT ? -1 : agentd_error_prefix(err, "%s", f->flag);
	if (f->unit == UNIT_COUNT)
		v = v32;
	agentd_limit_range(f->key, &lo, &hi);
	if (v < lo || v > hi) {
		char got[32], bound[32];
		format_limit(got, sizeof(got), v, f->unit);
		format_limit(bound, sizeof(bound), v < lo ? lo : hi, f->unit);
		return agentd_error_set(err, EINVAL, "%s: %s is %s %s", f->flag, got,
					v < lo ? "below" : "above", bound);
	}
	switch (opt) {
	case OPT_MEMORY: l->max_memory_bytes = v; break;
	case OPT_CPU_TIME: l->max_cpu_time_ms = v; break;
	case OPT_TIMEOUT: l->max_wall_time_ms = v; break;
	case OPT_PIDS: l->max_processes = (uint32_t)v; break;
	default: l->max_output_bytes = v; break;
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
	case OPT_CPU_TIME:
	case OPT_TIMEOUT:
	case OPT_PIDS:
	case OPT_MAX_OUTPUT:
		return apply_limit_flag(l, opt, val, err);
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
	/* issue 13: img-root */
	case OPT_IMAGE:
		free(spec->image);
		spec->image = strdup(val);
		return 0;
	case OPT_WRITABLE_ROOT:
		spec->writable_root = true;
		return 0;
	}
	return agentd_error_set(err, EINVAL, "unknown policy option");
}

/* Did flag opt set the key the validation error msg starts with (after key)? */
static bool flag_set_key(const struct policy_flags *pf, int opt, const char *rest,
			 size_t base_count)
{
	size_t idx = 0, n = 0;
	for (int i = 0; i < pf->n; i++) {
		if (pf->items[i].opt != opt)
			continue;
		if (opt == OPT_ENV) { /* environment.K: a --env K=V */
			const char *v = pf->items[i].val;
			size_t k = strcspn(v, "=");
			if (rest[0] == '.' && !strncmp(rest + 1, v, k) && rest[1 + k] == ':')
				return true;
			continue;
		}
		n++;
	}
	if (opt == OPT_RO || opt == OPT_RW) /* appended after the policy file's entries */
		return sscanf(rest, "[%zu]", &idx) == 1 && idx >= base_count && n;
	return n > 0;
}

/* A validation error about a key a flag set says which flag: "--workdir: workdir: ...". */
static void name_flag_in_error(const struct policy_flags *pf, size_t base_ro, size_t base_rw,
			       agentd_error *err)
{
	static const struct {
		int opt;
		const char *flag, *key;
	} keyed[] = {
		{OPT_WORKDIR, "--workdir", "workdir"}, {OPT_SECCOMP, "--seccomp", "seccomp_profile"},
		{OPT_RO, "--ro", "allowed_paths_ro"},  {OPT_RW, "--rw", "allowed_paths_rw"},
		{OPT_NET, "--net", "network"},	       {OPT_ENV, "--env", "environment"},
		{OPT_IMAGE, "--image", "image"}, {OPT_WRITABLE_ROOT, "--writable-root", "writable_root"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(keyed); i++) {
		size_t k = strlen(keyed[i].key);
		const char *rest = err->msg + k;
		if (strncmp(err->msg, keyed[i].key, k) || !strchr(".[:", *rest) || !*rest)
			continue;
		size_t base = keyed[i].opt == OPT_RO ? base_ro : base_rw;
		if (flag_set_key(pf, keyed[i].opt, rest, base))
			agentd_error_prefix(err, "%s", keyed[i].flag);
		return;
	}
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
	size_t base_ro = spec->allowed_paths_ro.n, base_rw = spec->allowed_paths_rw.n;
	for (int i = 0; i < pf->n; i++)
		if (apply_flag(spec, pf->items[i].opt, pf->items[i].val, err) < 0)
			goto fail;
	if (agentd_spec_validate(spec, err) < 0) {
		name_flag_in_error(pf, base_ro, base_rw, err);
		goto fail;
	}
	return 0;
fail:
	agentd_spec_free(spec);
	return -1;
}
