/* cmd_probe.c: `agentd probe` — what this kernel really offers (from real attempts) and,
 * per backend, which isolation it provides here and what is degraded. */
#include "cli/cli.h"

#include <jansson.h>
#include <string.h>

static json_t *strv_json(const agentd_strv *sv)
{
	json_t *a = json_array();
	for (size_t i = 0; i < sv->n; i++)
		json_array_append_new(a, json_string(sv->v[i]));
	return a;
}

static json_t *platform_json(const agentd_platform *p)
{
	return json_pack("{s:s, s:i, s:b, s:i, s:b, s:{s:b, s:b, s:b, s:b, s:b}, s:b, s:b, s:b, "
			 "s:b, s:b, s:s}",
			 "kernel", p->kernel, "landlock_abi", p->landlock_abi, "seccomp_filter",
			 p->seccomp_filter, "cgroup_version", p->cgroup_version, "cgroup_hybrid",
			 p->cgroup_hybrid, "cgroup_controllers", "memory", p->cgroup_memory, "pids",
			 p->cgroup_pids, "cpu", p->cgroup_cpu, "cpuacct", p->cgroup_cpuacct,
			 "freezer", p->cgroup_freezer, "cgroup_writable", p->cgroup_writable,
			 "user_namespaces", p->user_namespaces, "kvm", p->kvm, "pidfd", p->pidfd,
			 "clone3", p->clone3, "unavailable_reasons", p->reasons);
}

static json_t *caps_json(const agentd_backend_caps *c)
{
	json_t *o = json_pack(
		"{s:s, s:b, s:i, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:o, s:o, s:o}", "name",
		c->name, "available", c->available, "score", (int)agentd_backend_score(c),
		"filesystem_isolation", c->filesystem_isolation, "network_isolation",
		c->network_isolation, "process_isolation", c->process_isolation, "resource_limits",
		c->resource_limits, "syscall_filtering", c->syscall_filtering,
		"persistent_sandboxes", c->persistent_sandboxes, "snapshots", c->snapshots,
		"available_profiles", strv_json(&c->available_profiles), "platform_features",
		strv_json(&c->platform_features), "warnings", strv_json(&c->warnings));
	json_object_set_new(o, "max_concurrent_sandboxes",
			    c->max_concurrent_sandboxes ? json_integer(c->max_concurrent_sandboxes)
							: json_null());
	if (!c->available)
		json_object_set_new(o, "reason", json_string(c->unavailable_reason));
	/* docs/policy.md#enforcement: each policy item, enforced here or not and why */
	json_t *yes = json_array(), *no = json_object();
	for (unsigned i = 0; i < AGENTD_ITEM_COUNT; i++) {
		const char *name = agentd_policy_item_name((agentd_policy_item)i);
		if (c->enforceable & AGENTD_ITEM_BIT(i))
			json_array_append_new(yes, json_string(name));
		else
			json_object_set_new(no, name, json_string(c->unenforceable_reason[i]));
	}
	json_object_set_new(o, "enforces", yes);
	json_object_set_new(o, "cannot_enforce", no);
	return o;
}

static void print_caps(const agentd_backend_caps *c)
{
	printf("\nbackend %s: %s (score %u)\n", c->name,
	       c->available ? "available" : "unavailable", agentd_backend_score(c));
	if (!c->available) {
		printf("  reason: %s\n", c->unavailable_reason);
		return;
	}
	printf("  filesystem isolation  %s\n", c->filesystem_isolation ? "yes" : "no");
	printf("  network isolation     %s\n", c->network_isolation ? "yes" : "no");
	printf("  process isolation     %s\n", c->process_isolation ? "yes" : "no");
	printf("  syscall filtering     %s\n", c->syscall_filtering ? "yes" : "no");
	printf("  resource limits       %s\n", c->resource_limits ? "yes" : "no");
	printf("  persistent sandboxes  %s\n", c->persistent_sandboxes ? "yes" : "no");
	printf("  snapshots             %s\n", c->snapshots ? "yes" : "no");
	printf("  features             ");
	for (size_t i = 0; i < c->platform_features.n; i++)
		printf(" %s", c->platform_features.v[i]);
	printf("\n");
	for (size_t i = 0; i < c->warnings.n; i++)
		printf("  warning: %s\n", c->warnings.v[i]);
	printf("  enforces             ");
	for (unsigned i = 0; i < AGENTD_ITEM_COUNT; i++)
		if (c->enforceable & AGENTD_ITEM_BIT(i))
			printf(" %s", agentd_policy_item_name((agentd_policy_item)i));
	printf("\n");
	for (unsigned i = 0; i < AGENTD_ITEM_COUNT; i++)
		if (!(c->enforceable & AGENTD_ITEM_BIT(i)))
			printf("  cannot enforce %s: %s\n",
			       agentd_policy_item_name((agentd_policy_item)i),
			       c->unenforceable_reason[i]);
}

static void print_platform(const agentd_platform *p)
{
	printf("kernel %s\n", p->kernel);
	printf("  landlock        %s", p->landlock_abi ? "ABI " : "unavailable");
	if (p->landlock_abi)
		printf("%d", p->landlock_abi);
	printf("\n  seccomp filter  %s\n", p->seccomp_filter ? "yes" : "no");
	printf("  cgroup          %s%s%s (memory %s, pids %s, cpu %s, freezer %s)\n",
	       p->cgroup_version == 2 ? "v2" : p->cgroup_version == 1 ? "v1" : "none",
	       p->cgroup_hybrid ? " hybrid" : "", p->cgroup_writable ? "" : " read-only",
	       p->cgroup_memory ? "yes" : "no", p->cgroup_pids ? "yes" : "no",
	       p->cgroup_cpu ? "yes" : "no", p->cgroup_freezer ? "yes" : "no");
	printf("  user namespaces %s\n", p->user_namespaces ? "yes" : "no");
	printf("  kvm             %s\n", p->kvm ? "yes" : "no");
	printf("  pidfd %s, clone3 %s\n", p->pidfd ? "yes" : "no", p->clone3 ? "yes" : "no");
	if (p->reasons[0])
		printf("  unavailable: %s\n", p->reasons);
}

/* Each backend's capabilities (want: one only), printed or appended to arr. */
static void probe_backends(const char *want, const char *asked, bool json, json_t *arr)
{
	size_t n;
	const char *const *names = agentd_available_backends(&n);
	for (size_t i = 0; i < n; i++) {
		if (want && strcmp(want, names[i]) != 0)
			continue;
		agentd_backend *b = NULL;
		agentd_error err = {0};
		agentd_backend_caps caps;
		memset(&caps, 0, sizeof(caps));
		snprintf(caps.name, sizeof(caps.name), "%s", names[i]);
		/* issue 13: oci-runtime. The name asked for: an alias may pick a driver. */
		if (agentd_create_backend(want ? asked : names[i], NULL, &b, &err) < 0 ||
		    agentd_backend_probe(b, &caps, &err) < 0) {
			caps.available = false;
			memcpy(caps.unavailable_reason, err.msg, sizeof(caps.unavailable_reason));
			caps.unavailable_reason[sizeof(caps.unavailable_reason) - 1] = '\0';
		}
		if (json)
			json_array_append_new(arr, caps_json(&caps));
		else
			print_caps(&caps);
		agentd_backend_caps_free(&caps);
		agentd_backend_free(b);
	}
}

/* --json, --backend, --security; 0, 1 when --help was answered, -1 on a bad flag. */
static int parse_probe_args(int argc, char **argv, bool *json, bool *security,
			    const char **only)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"backend", required_argument, NULL, 'b'},
					     {"security", no_argument, NULL, 's'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:jb:sh", opts, NULL)) != -1) {
		if (c == 'j')
			*json = true;
		else if (c == 'b')
			*only = optarg;
		else if (c == 's')
			*security = true;
		else if (c == 'h') {
			printf("usage: agentd probe [--backend NAME] [--security] [--json]\n\n"
			       "  --security  run the security suite's attacks (those the probe "
			       "helper sbxprobe\n"
			       "              judges alone) in a strict sandbox of each backend and "
			       "print what\n"
			       "              each one blocks; sbxprobe is found at "
			       "$AGENTD_SBXPROBE, else\n"
			       "              <dir of agentd>/tests/sbxprobe (build tree), else\n"
			       "              <dir of agentd>/../libexec/agentd/sbxprobe\n");
			return 1;
		} else
			return cli_bad_option("probe", c, argv);
	}
	if (optind < argc) {
		print_error("probe: unexpected argument '%s'", argv[optind]);
		return -1;
	}
	return 0;
}

int cmd_probe(int argc, char **argv)
{
	bool json = false, security = false;
	const char *only = NULL;
	int pr = parse_probe_args(argc, argv, &json, &security, &only);
	if (pr != 0)
		return pr > 0 ? 0 : EXIT_AGENTD;
	agentd_platform_no_cache(); /* a diagnosis attempts everything now */
	if (only && !agentd_canonical_backend_name(only)) {
		agentd_error err = {0};
		agentd_backend *b = NULL;
		agentd_create_backend(only, NULL, &b, &err);
		print_error("%s", err.msg);
		return EXIT_AGENTD;
	}
	if (security)
		return security_probe(only, json);

	const agentd_platform *p = agentd_probe_platform();
	const char *want = only ? agentd_canonical_backend_name(only) : NULL;
	json_t *arr = json_array();
	if (!json)
		print_platform(p);
	probe_backends(want, only, json, arr);
	/* what `agentd run` without policy flags would pick: the strict profile enforced */
	agentd_spec strict;
	agentd_spec_init(&strict, AGENTD_PROFILE_STRICT);
	const char *best = NULL;
	agentd_error why = {0};
	if (!want)
		agentd_select_backend(&strict, NULL, &best, &why);
	agentd_spec_free(&strict);
	if (json) {
		json_t *root = json_pack("{s:o, s:o}", "platform", platform_json(p), "backends", arr);
		if (!want)
			json_object_set_new(root, "auto", best ? json_string(best) : json_null());
		char *s = json_dumps(root, JSON_INDENT(2));
		puts(s);
		free(s);
		json_decref(root);
		return 0;
	}
	json_decref(arr);
	if (!want) {
		printf("\nauto selects (strict profile): %s\n", best ? best : "(none)");
		if (why.msg[0])
			printf("  %s\n", why.msg);
	}
	/* What each backend really blocks, tried from inside (fast: well under 1 s). */
	printf("\n");
	fflush(stdout);
	return security_probe(only, false);
}
