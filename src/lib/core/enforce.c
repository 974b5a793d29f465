/* enforce.c: the policy items a spec asks for (docs/policy.md#enforcement), set against what
 * a backend's probe says it enforces here; what is left is refused, or run without and listed. */
#include "lib/core/core.h"

#include <inttypes.h>

/* One row per agentd_policy_item. degradable: the command may run without it (a wall it
 * will not meet); otherwise the backend cannot run the spec at all (a remapped bind mount,
 * an egress proxy with no namespace to make it the only way out). relax: what the spec
 * becomes so the backend does not try to apply it (NULL: the backend already ignores it). */
struct item_info {
	const char *name;
	bool degradable;
	void (*relax)(agentd_spec *s);
};

static void relax_memory(agentd_spec *s)
{
	s->limits.max_memory_bytes = 0;
}

static void relax_pids(agentd_spec *s)
{
	s->limits.max_processes = 0;
}

static void relax_cpu(agentd_spec *s)
{
	s->limits.cpu_weight = 100;
	s->limits.cpu_quota_pct = 0;
}

static const struct item_info items[AGENTD_ITEM_COUNT] = {
	[AGENTD_ITEM_MEMORY] = {"memory", true, relax_memory},
	[AGENTD_ITEM_PIDS] = {"pids", true, relax_pids},
	[AGENTD_ITEM_CPU] = {"cpu", true, relax_cpu},
	[AGENTD_ITEM_CPU_TIME] = {"cpu_time", true, NULL},
	[AGENTD_ITEM_WALL_TIME] = {"wall_time", true, NULL},
	[AGENTD_ITEM_OPEN_FILES] = {"open_files", true, NULL},
	[AGENTD_ITEM_OUTPUT] = {"output", true, NULL},
	[AGENTD_ITEM_WRITE] = {"write", true, NULL},
	[AGENTD_ITEM_FILESYSTEM] = {"filesystem", true, NULL},
	[AGENTD_ITEM_BIND_MOUNTS] = {"bind_mounts", false, NULL},
	[AGENTD_ITEM_NETWORK_NONE] = {"network_none", true, NULL},
	[AGENTD_ITEM_NETWORK_ALLOWLIST] = {"network_allowlist", false, NULL},
	[AGENTD_ITEM_RUN_AS] = {"run_as", true, NULL},
	[AGENTD_ITEM_SECCOMP] = {"seccomp", true, NULL},
	[AGENTD_ITEM_IMAGE] = {"image", false, NULL},
};

const char *agentd_policy_item_name(agentd_policy_item i)
{
	return (unsigned)i < AGENTD_ITEM_COUNT ? items[i].name : NULL;
}

uint32_t agentd_spec_items(const agentd_spec *s)
{
	const agentd_limits *l = &s->limits;
	uint32_t m = AGENTD_ITEM_BIT(AGENTD_ITEM_FILESYSTEM);
	struct {
		bool asked;
		agentd_policy_item item;
	} const ask[] = {
		{l->max_memory_bytes != 0, AGENTD_ITEM_MEMORY},
		{l->max_processes != 0, AGENTD_ITEM_PIDS},
		{(l->cpu_weight && l->cpu_weight != 100) || l->cpu_quota_pct, AGENTD_ITEM_CPU},
		{l->max_cpu_time_ms != 0, AGENTD_ITEM_CPU_TIME},
		{l->max_wall_time_ms != 0, AGENTD_ITEM_WALL_TIME},
		{l->max_open_files != 0, AGENTD_ITEM_OPEN_FILES},
		{true, AGENTD_ITEM_OUTPUT},
		{l->max_write_bytes != 0, AGENTD_ITEM_WRITE},
		{s->network.mode == AGENTD_NET_NONE, AGENTD_ITEM_NETWORK_NONE},
		{s->network.mode == AGENTD_NET_ALLOWLIST, AGENTD_ITEM_NETWORK_ALLOWLIST},
		/* the caller's own ids are what an unprivileged agentd gives anyway */
		{s->run_as_uid >= 0 && !(s->run_as_uid == (int64_t)geteuid() &&
					 s->run_as_gid == (int64_t)getegid()),
		 AGENTD_ITEM_RUN_AS},
		{!s->seccomp_profile || strcmp(s->seccomp_profile, "none") != 0,
		 AGENTD_ITEM_SECCOMP},
		{s->image != NULL, AGENTD_ITEM_IMAGE},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ask); i++)
		if (ask[i].asked)
			m |= AGENTD_ITEM_BIT(ask[i].item);
	for (size_t i = 0; i < s->n_bind_mounts; i++)
		if (strcmp(s->bind_mounts[i].source, s->bind_mounts[i].target) != 0)
			m |= AGENTD_ITEM_BIT(AGENTD_ITEM_BIND_MOUNTS);
	return m;
}

static void size_text(uint64_t v, char *buf, size_t n)
{
	if (v && v % (1u << 30) == 0)
		snprintf(buf, n, "%" PRIu64 "G", v >> 30);
	else if (v && v % (1u << 20) == 0)
		snprintf(buf, n, "%" PRIu64 "M", v >> 20);
	else
		snprintf(buf, n, "%" PRIu64, v);
}

/* What the spec asked for, in the words of its flags and keys: "memory limit 512M". */
static void item_asked(const agentd_spec *s, agentd_policy_item i, char *buf, size_t n)
{
	const agentd_limits *l = &s->limits;
	char v[32];
	switch (i) {
	case AGENTD_ITEM_MEMORY:
		size_text(l->max_memory_bytes, v, sizeof(v));
		snprintf(buf, n, "memory limit %s", v);
		return;
	case AGENTD_ITEM_PIDS:
		snprintf(buf, n, "process limit %" PRIu32, l->max_processes);
		return;
	case AGENTD_ITEM_CPU:
		snprintf(buf, n, "cpu quota %" PRIu32 "%% / weight %" PRIu32, l->cpu_quota_pct,
			 l->cpu_weight);
		return;
	case AGENTD_ITEM_NETWORK_NONE:
		snprintf(buf, n, "network \"none\"");
		return;
	case AGENTD_ITEM_NETWORK_ALLOWLIST:
		snprintf(buf, n, "network \"allowlist\"");
		return;
	case AGENTD_ITEM_RUN_AS:
		snprintf(buf, n, "run_as %" PRId64 ":%" PRId64, s->run_as_uid, s->run_as_gid);
		return;
	case AGENTD_ITEM_SECCOMP:
		snprintf(buf, n, "seccomp profile \"%s\"",
			 s->seccomp_profile ? s->seccomp_profile : "default");
		return;
	case AGENTD_ITEM_IMAGE:
		snprintf(buf, n, "image \"%s\"", s->image ? s->image : "");
		return;
	default:
		snprintf(buf, n, "%s", items[i].name);
	}
}

static const char *reason_of(const agentd_backend_caps *c, unsigned i)
{
	return c->unenforceable_reason[i][0] ? c->unenforceable_reason[i]
					     : "the backend does not say it enforces it";
}

/* "memory limit 512M, process limit 64: <reason>; network "none": <reason>": the items
 * that share a reason (the cgroup's, mostly) are named together. */
static void describe_missing(const agentd_spec *s, const agentd_backend_caps *c, uint32_t missing,
			     char *buf, size_t n)
{
	size_t len = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < AGENTD_ITEM_COUNT && len < n; i++) {
		if (!(missing & AGENTD_ITEM_BIT(i)))
			continue;
		const char *why = reason_of(c, i);
		for (unsigned k = i; k < AGENTD_ITEM_COUNT && len < n; k++) {
			if (!(missing & AGENTD_ITEM_BIT(k)) || strcmp(reason_of(c, k), why) != 0)
				continue;
			missing &= ~AGENTD_ITEM_BIT(k);
			char what[96];
			item_asked(s, (agentd_policy_item)k, what, sizeof(what));
			len += (size_t)snprintf(buf + len, n - len, "%s%s",
						k == i ? (len ? "; " : "") : ", ", what);
		}
		if (len < n)
			len += (size_t)snprintf(buf + len, n - len, ": %s", why);
	}
}

/* "item: reason" for each item of missing. */
static void list_missing(const agentd_backend_caps *c, uint32_t missing, agentd_strv *out)
{
	for (unsigned i = 0; i < AGENTD_ITEM_COUNT; i++)
		if (missing & AGENTD_ITEM_BIT(i)) {
			_cleanup_free_ char *s = xasprintf("%s: %s", items[i].name, reason_of(c, i));
			strv_push(out, s);
		}
}

/* The items of missing no degradation can do without. */
static uint32_t hard_items(uint32_t missing)
{
	uint32_t hard = 0;
	for (unsigned i = 0; i < AGENTD_ITEM_COUNT; i++)
		if ((missing & AGENTD_ITEM_BIT(i)) && !items[i].degradable)
			hard |= AGENTD_ITEM_BIT(i);
	return hard;
}

int enforce_plan(agentd_backend *b, const agentd_spec *spec, const agentd_create_opts *opts,
		 agentd_spec *relaxed, agentd_strv *unenforced, agentd_error *err)
{
	memset(unenforced, 0, sizeof(*unenforced));
	agentd_backend_caps caps;
	if (agentd_backend_probe(b, &caps, err) < 0)
		return -1;
	uint32_t missing = agentd_spec_items(spec) & ~caps.enforceable;
	uint32_t hard = hard_items(missing);
	if (hard || (missing && !(opts && opts->allow_degraded))) {
		char what[AGENTD_ERROR_MAX];
		describe_missing(spec, &caps, hard ? hard : missing, what, sizeof(what));
		agentd_error_set(err, ENOTSUP, "backend %s cannot enforce %s%s", caps.name, what,
				 hard ? "" : "; pass --allow-degraded (API: \"allow_degraded\": true) "
					     "to run anyway, without what is not enforced");
		agentd_backend_caps_free(&caps);
		return -1;
	}
	int r = agentd_spec_copy(relaxed, spec, err);
	if (r == 0) {
		for (unsigned i = 0; i < AGENTD_ITEM_COUNT; i++)
			if ((missing & AGENTD_ITEM_BIT(i)) && items[i].relax)
				items[i].relax(relaxed);
		list_missing(&caps, missing, unenforced);
	}
	agentd_backend_caps_free(&caps);
	return r;
}

int agentd_backend_unenforced(agentd_backend *b, const agentd_spec *spec, agentd_strv *out,
			      agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	agentd_backend_caps caps;
	if (agentd_backend_probe(b, &caps, err) < 0)
		return -1;
	list_missing(&caps, agentd_spec_items(spec) & ~caps.enforceable, out);
	agentd_backend_caps_free(&caps);
	return 0;
}

bool enforce_can_run(const agentd_backend_caps *caps, const agentd_spec *spec, bool degrade)
{
	uint32_t missing = agentd_spec_items(spec) & ~caps->enforceable;
	return !missing || (degrade && !hard_items(missing));
}

void enforce_item_names(const agentd_backend_caps *caps, const agentd_spec *spec, char *buf,
			size_t n)
{
	uint32_t missing = agentd_spec_items(spec) & ~caps->enforceable;
	size_t len = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < AGENTD_ITEM_COUNT && len < n; i++)
		if (missing & AGENTD_ITEM_BIT(i))
			len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? " " : "",
						items[i].name);
}

void enforce_describe(const agentd_backend_caps *caps, const agentd_spec *spec, char *buf,
		      size_t n)
{
	describe_missing(spec, caps, agentd_spec_items(spec) & ~caps->enforceable, buf, n);
}
