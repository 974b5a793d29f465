/* spec.c: the typed sandbox spec: profile presets, copy/free, semantic validation (paths,
 * limits, network allow entries, environment names). The size and duration parsers are
 * common/parse.c's. */
#include "lib/core/core.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stddef.h>

/* ------------------------------------------------------------ presets */

/* strict and standard (docs/policy.md#keys): moderate limits for one agent task, two CPUs. */
static const agentd_limits default_limits = {
	.max_memory_bytes = 512ULL << 20,
	.max_cpu_time_ms = 60000,
	.max_wall_time_ms = 120000,
	.max_processes = 64,
	.max_open_files = 256,
	.max_output_bytes = 10ULL << 20,
	.max_write_bytes = 100ULL << 20,
	.cpu_weight = 100,
	.cpu_quota_pct = 200,
	.max_snapshot_bytes = 512ULL << 20,
	.max_process_output_bytes = 1ULL << 20,
};

static const agentd_limits permissive_limits = {
	.max_memory_bytes = 2ULL << 30,
	.max_cpu_time_ms = 600000,
	.max_wall_time_ms = 1800000,
	.max_processes = 256,
	.max_open_files = 1024,
	.max_output_bytes = 64ULL << 20,
	.max_write_bytes = 1ULL << 30,
	.cpu_weight = 100,
	.cpu_quota_pct = 400,
	.max_snapshot_bytes = 4ULL << 30,
	.max_process_output_bytes = 1ULL << 20,
};

#define LIMIT_U64(n, lo, msg)                                                                \
	{ .name = #n, .offset = offsetof(agentd_limits, n), .is_u32 = false, .min = lo,      \
	  .max = INT64_MAX, .expect = msg }
#define LIMIT_U32(n, lo, hi, msg)                                                            \
	{ .name = #n, .offset = offsetof(agentd_limits, n), .is_u32 = true, .min = lo,       \
	  .max = hi, .expect = msg }

/* JSON key order of the emitter: the docs/policy.md#keys table order. */
const struct spec_limit_field spec_limit_fields[] = {
	LIMIT_U64(max_memory_bytes, 1048576, "expected integer >= 1048576"),
	LIMIT_U64(max_cpu_time_ms, 1, "expected integer >= 1"),
	LIMIT_U64(max_wall_time_ms, 1, "expected integer >= 1"),
	LIMIT_U32(max_processes, 1, 1048576, "expected integer in 1..1048576"),
	/* 3: stdin, stdout and stderr must stay open */
	LIMIT_U32(max_open_files, 3, 1048576, "expected integer in 3..1048576"),
	LIMIT_U64(max_output_bytes, 0, "expected integer >= 0"),
	LIMIT_U64(max_write_bytes, 0, "expected integer >= 0"),
	LIMIT_U32(cpu_weight, 1, 10000, "expected integer in 1..10000"),
	LIMIT_U32(cpu_quota_pct, 1, 100000, "expected integer in 1..100000"),
	LIMIT_U64(max_snapshot_bytes, 0, "expected integer >= 0"),
	/* host memory: at most 2 streams x 32 processes of it per sandbox (docs/policy.md) */
	{.name = "max_process_output_bytes",
	 .offset = offsetof(agentd_limits, max_process_output_bytes), .is_u32 = false, .min = 0,
	 .max = 64ULL << 20, .expect = "expected integer in 0..67108864"},
};
const size_t spec_limit_fields_n = ARRAY_SIZE(spec_limit_fields);

int agentd_limit_range(const char *key, uint64_t *min, uint64_t *max)
{
	for (size_t i = 0; i < spec_limit_fields_n; i++)
		if (!strcmp(spec_limit_fields[i].name, key)) {
			*min = spec_limit_fields[i].min;
			*max = spec_limit_fields[i].max;
			return 0;
		}
	return -1;
}

uint64_t spec_limit_get(const agentd_limits *l, const struct spec_limit_field *f)
{
	const char *p = (const char *)l + f->offset;
	if (f->is_u32)
		return *(const uint32_t *)p;
	return *(const uint64_t *)p;
}

void spec_limit_set(agentd_limits *l, const struct spec_limit_field *f, uint64_t v)
{
	char *p = (char *)l + f->offset;
	if (f->is_u32)
		*(uint32_t *)p = (uint32_t)v;
	else
		*(uint64_t *)p = v;
}

void agentd_spec_set_profile(agentd_spec *spec, agentd_profile profile)
{
	/* An unknown value is kept so that validate reports it; it gets strict presets. */
	spec->profile = profile;
	spec->limits = profile == AGENTD_PROFILE_PERMISSIVE ? permissive_limits : default_limits;
	/* The presets include an empty allow list: entries chosen for one mode must not
	 * silently carry over into another. */
	strv_free(&spec->network.allow);
	switch (profile) {
	case AGENTD_PROFILE_STANDARD:
		spec->network.mode = AGENTD_NET_ALLOWLIST;
		break;
	case AGENTD_PROFILE_PERMISSIVE:
		spec->network.mode = AGENTD_NET_HOST;
		break;
	default:
		spec->network.mode = AGENTD_NET_NONE;
		break;
	}
}

void agentd_spec_init(agentd_spec *spec, agentd_profile profile)
{
	memset(spec, 0, sizeof(*spec));
	spec->workdir = xstrdup("/workspace");
	spec->seccomp_profile = xstrdup("default");
	spec->run_as_uid = -1;
	spec->run_as_gid = -1;
	agentd_spec_set_profile(spec, profile);
}

void agentd_spec_free(agentd_spec *spec)
{
	if (!spec)
		return;
	free(spec->workdir);
	strv_free(&spec->allowed_paths_ro);
	strv_free(&spec->allowed_paths_rw);
	for (size_t i = 0; i < spec->n_bind_mounts; i++) {
		free(spec->bind_mounts[i].source);
		free(spec->bind_mounts[i].target);
	}
	free(spec->bind_mounts);
	strv_free(&spec->network.allow);
	kvv_free(&spec->environment);
	free(spec->seccomp_profile);
	free(spec->image);
	kvv_free(&spec->labels);
	/* zeroed, so a second free (or a free after a failed parse) is harmless */
	memset(spec, 0, sizeof(*spec));
}

static char *strdup_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

int agentd_spec_copy(agentd_spec *dst, const agentd_spec *src, agentd_error *err)
{
	(void)err;	/* allocation failure aborts; kept in the API for future checks */
	*dst = *src;
	dst->workdir = strdup_null(src->workdir);
	strv_copy(&dst->allowed_paths_ro, &src->allowed_paths_ro);
	strv_copy(&dst->allowed_paths_rw, &src->allowed_paths_rw);
	dst->bind_mounts = NULL;
	if (src->n_bind_mounts) {
		dst->bind_mounts = xcalloc(src->n_bind_mounts, sizeof(agentd_bind_mount));
		for (size_t i = 0; i < src->n_bind_mounts; i++) {
			dst->bind_mounts[i].source = strdup_null(src->bind_mounts[i].source);
			dst->bind_mounts[i].target = strdup_null(src->bind_mounts[i].target);
			dst->bind_mounts[i].readonly = src->bind_mounts[i].readonly;
		}
	}
	strv_copy(&dst->network.allow, &src->network.allow);
	kvv_copy(&dst->environment, &src->environment);
	dst->seccomp_profile = strdup_null(src->seccomp_profile);
	dst->image = strdup_null(src->image);
	kvv_copy(&dst->labels, &src->labels);
	return 0;
}

/* ------------------------------------------------------------ equality */

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool strv_eq(const agentd_strv *a, const agentd_strv *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!str_eq(a->v[i], b->v[i]))
			return false;
	return true;
}

/* kvv_set keeps keys unique, so same size + every key of a found in b means equal maps. */
static bool kvv_eq(const agentd_kvv *a, const agentd_kvv *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const char *v = kvv_get(b, a->v[i].key);
		if (!v || !str_eq(v, a->v[i].value))
			return false;
	}
	return true;
}

bool spec_equal(const agentd_spec *a, const agentd_spec *b)
{
	if (a->profile != b->profile || !str_eq(a->workdir, b->workdir) ||
	    !strv_eq(&a->allowed_paths_ro, &b->allowed_paths_ro) ||
	    !strv_eq(&a->allowed_paths_rw, &b->allowed_paths_rw) ||
	    a->n_bind_mounts != b->n_bind_mounts || a->network.mode != b->network.mode ||
	    !strv_eq(&a->network.allow, &b->network.allow) ||
	    !kvv_eq(&a->environment, &b->environment) ||
	    !str_eq(a->seccomp_profile, b->seccomp_profile) || !kvv_eq(&a->labels, &b->labels) ||
	    a->run_as_uid != b->run_as_uid || a->run_as_gid != b->run_as_gid ||
	    !str_eq(a->image, b->image) || a->writable_root != b->writable_root)
		return false;
	for (size_t i = 0; i < a->n_bind_mounts; i++) {
		const agentd_bind_mount *x = &a->bind_mounts[i], *y = &b->bind_mounts[i];
		if (!str_eq(x->source, y->source) || !str_eq(x->target, y->target) ||
		    x->readonly != y->readonly)
			return false;
	}
	/* field by field: padding bytes in agentd_limits are not part of the value */
	for (size_t i = 0; i < spec_limit_fields_n; i++)
		if (spec_limit_get(&a->limits, &spec_limit_fields[i]) !=
		    spec_limit_get(&b->limits, &spec_limit_fields[i]))
			return false;
	return true;
}

/* ------------------------------------------------------------ names */

static const char *const profile_names[] = {
	[AGENTD_PROFILE_STRICT] = "strict",
	[AGENTD_PROFILE_STANDARD] = "standard",
	[AGENTD_PROFILE_PERMISSIVE] = "permissive",
};

static const char *const net_mode_names[] = {
	[AGENTD_NET_NONE] = "none",
	[AGENTD_NET_ALLOWLIST] = "allowlist",
	[AGENTD_NET_HOST] = "host",
};

static const char *const limit_kind_names[] = {
	[AGENTD_LIMIT_NONE] = NULL,
	[AGENTD_LIMIT_MEMORY] = "memory",
	[AGENTD_LIMIT_PIDS] = "pids",
	[AGENTD_LIMIT_CPU] = "cpu",
	[AGENTD_LIMIT_OUTPUT] = "output",
	[AGENTD_LIMIT_WRITE] = "write",
};

/* Enums may hold any int (a cast from user input): check the range, not just the switch. */
const char *agentd_profile_name(agentd_profile p)
{
	if ((unsigned)p >= ARRAY_SIZE(profile_names))
		return NULL;
	return profile_names[p];
}

int agentd_profile_from_name(const char *name, agentd_profile *out)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(profile_names); i++) {
		if (strcmp(name, profile_names[i]) == 0) {
			*out = (agentd_profile)i;
			return 0;
		}
	}
	return -1;
}

const char *agentd_net_mode_name(agentd_net_mode m)
{
	if ((unsigned)m >= ARRAY_SIZE(net_mode_names))
		return NULL;
	return net_mode_names[m];
}

const char *agentd_limit_kind_name(agentd_limit_kind k)
{
	if ((unsigned)k >= ARRAY_SIZE(limit_kind_names))
		return NULL;
	return limit_kind_names[k];
}

/* ------------------------------------------------------------ validation */

static bool str_utf8(const char *s)
{
	return utf8_valid((const uint8_t *)s, strlen(s));
}

/* NULL when p is an absolute path the backends may use as given; the reason otherwise.
 * ".." is refused outright: a policy must not depend on how a path resolves. */
static const char *path_reason(const char *p)
{
	if (!p)
		return "missing";
	if (p[0] != '/')
		return "expected absolute path";
	if (strlen(p) >= PATH_MAX)
		return "path too long (at most 4095 bytes)";
	if (!str_utf8(p))
		return "expected UTF-8";
	for (const char *c = p; *c;) {
		while (*c == '/')
			c++;
		size_t n = strcspn(c, "/");
		if (n == 2 && c[0] == '.' && c[1] == '.')
			return "expected absolute path without \"..\" components";
		c += n;
	}
	return NULL;
}

static int fail_path(agentd_error *err, const char *path, const char *reason)
{
	return agentd_error_set(err, EINVAL, "%s: %s", path, reason);
}

static int check_path(agentd_error *err, const char *path, const char *p)
{
	const char *r = path_reason(p);
	return r ? fail_path(err, path, r) : 0;
}

static int check_paths(agentd_error *err, const char *name, const agentd_strv *sv)
{
	char path[64];
	for (size_t i = 0; i < sv->n; i++) {
		snprintf(path, sizeof(path), "%s[%zu]", name, i);
		if (check_path(err, path, sv->v[i]) < 0)
			return -1;
	}
	return 0;
}

static int check_map_utf8(agentd_error *err, const char *name, const agentd_kvv *kv)
{
	char path[256];
	for (size_t i = 0; i < kv->n; i++) {
		if (!kv->v[i].key || !str_utf8(kv->v[i].key))
			return agentd_error_set(err, EINVAL, "%s: key is not UTF-8", name);
		json_path_key(path, sizeof(path), name, kv->v[i].key);
		if (!kv->v[i].value || !str_utf8(kv->v[i].value))
			return fail_path(err, path, "expected UTF-8 string");
	}
	return 0;
}

int agentd_spec_validate(const agentd_spec *spec, agentd_error *err)
{
	char path[256], q[128];

	if (!agentd_profile_name(spec->profile))
		return fail_path(err, "profile",
				 "expected one of \"strict\", \"standard\", \"permissive\"");
	if (check_path(err, "workdir", spec->workdir) < 0 ||
	    check_paths(err, "allowed_paths_ro", &spec->allowed_paths_ro) < 0 ||
	    check_paths(err, "allowed_paths_rw", &spec->allowed_paths_rw) < 0)
		return -1;
	for (size_t i = 0; i < spec->n_bind_mounts; i++) {
		snprintf(path, sizeof(path), "bind_mounts[%zu].source", i);
		if (check_path(err, path, spec->bind_mounts[i].source) < 0)
			return -1;
		snprintf(path, sizeof(path), "bind_mounts[%zu].target", i);
		if (check_path(err, path, spec->bind_mounts[i].target) < 0)
			return -1;
	}

	if (!agentd_net_mode_name(spec->network.mode))
		return fail_path(err, "network.mode",
				 "expected one of \"none\", \"allowlist\", \"host\"");
	/* Sharing the host's network namespace is no isolation at all: only the profile that
	 * says so may ask for it. */
	if (spec->network.mode == AGENTD_NET_HOST && spec->profile != AGENTD_PROFILE_PERMISSIVE)
		return fail_path(err, "network.mode",
				 "\"host\" shares the host's network and needs profile "
				 "\"permissive\"; use \"allowlist\" for controlled egress");
	if (spec->network.allow.n && spec->network.mode != AGENTD_NET_ALLOWLIST)
		return fail_path(err, "network.allow", "only valid with mode \"allowlist\"");
	for (size_t i = 0; i < spec->network.allow.n; i++) {
		const char *e = spec->network.allow.v[i];
		/* netpolicy.c owns the entry syntax: the proxy parses what was validated here */
		const char *r = e ? netpolicy_entry_parse(e, NULL) : "missing";
		if (r) {
			quote_text(q, sizeof(q), e);
			return agentd_error_set(err, EINVAL, "network.allow[%zu]: invalid entry %s: %s",
						i, q, r);
		}
	}

	if (check_map_utf8(err, "environment", &spec->environment) < 0)
		return -1;
	for (size_t i = 0; i < spec->environment.n; i++) {
		const char *k = spec->environment.v[i].key;
		/* env.c owns the rule (POSIX name, no LD_*): the policy and a command's own
		 * additions are judged alike */
		const char *r = env_name_forbidden(k);
		if (r) {
			json_path_key(path, sizeof(path), "environment", k);
			return fail_path(err, path, r);
		}
	}

	for (size_t i = 0; i < spec_limit_fields_n; i++) {
		const struct spec_limit_field *f = &spec_limit_fields[i];
		uint64_t v = spec_limit_get(&spec->limits, f);
		if (v < f->min || v > f->max)
			return agentd_error_set(err, EINVAL, "limits.%s: %s", f->name, f->expect);
	}

	const char *sp = spec->seccomp_profile;
	if (!sp || (strcmp(sp, "default") != 0 && strcmp(sp, "none") != 0 && path_reason(sp)))
		return fail_path(err, "seccomp_profile",
				 "expected \"default\", \"none\" or an absolute path");

	if (check_map_utf8(err, "labels", &spec->labels) < 0)
		return -1;

	/* Both ids or neither: half an identity would run with a group nobody chose. */
	if ((spec->run_as_uid == -1) != (spec->run_as_gid == -1))
		return fail_path(err, "run_as", "uid and gid must be set together");
	if (spec->run_as_uid < -1 || spec->run_as_uid > SPEC_ID_MAX)
		return fail_path(err, "run_as.uid", "expected integer in 0..4294967294");
	if (spec->run_as_gid < -1 || spec->run_as_gid > SPEC_ID_MAX)
		return fail_path(err, "run_as.gid", "expected integer in 0..4294967294");

	/* issue 13: a reference only: the store resolves it (docs/images.md#references) */
	if (spec->image) {
		size_t n = strlen(spec->image);
		if (n == 0 || n > 255 ||
		    strspn(spec->image, "abcdefghijklmnopqrstuvwxyz0123456789._-/:@") != n ||
		    !isalnum((unsigned char)spec->image[0]))
			return fail_path(err, "image",
					 "expected an image name, name:tag or sha256:<hex> "
					 "(lower-case letters, digits and ._-/:@, at most 255)");
	}
	if (spec->writable_root && !spec->image)
		return fail_path(err, "writable_root", "needs an image (the host's runtime "
				 "is never writable)");
	return 0;
}
