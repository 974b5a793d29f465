/* host_direct.c: the host-direct backend — no kernel isolation, only policy guards:
 * environment cleared, rlimits, timeouts, output caps, no capabilities, cgroup limits. */
#include "lib/backends/backends.h"

static int hd_probe(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err)
{
	const agentd_platform *p = agentd_probe_platform();
	caps->available = true;
	process_probe_common(caps, p);
	process_probe_items(caps, "host-direct");
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_FILESYSTEM,
				   "host-direct has no kernel isolation: the command sees the host's "
				   "files with its uid's permissions (use linux-native or container)");
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_NETWORK_NONE,
				   "host-direct shares the host's network (use linux-native or "
				   "container)");
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_SECCOMP,
				   "host-direct installs no syscall filter");
	strv_push(&caps->warnings, "host-direct: no kernel isolation; the command sees the host "
				   "filesystem and network with the sandbox's uid (policy guards "
				   "only)");
	strv_push(&caps->warnings, "network mode \"allowlist\" unavailable: host-direct has no "
				   "network namespace to make the egress proxy the only way out");
	return 0;
}

static int hd_create(agentd_backend *b, const agentd_spec *spec, agentd_sandbox **out,
		     agentd_error *err)
{
	static const struct process_sandbox_opts opts = {.landlock = false, .seccomp = false};
	return process_sandbox_create(b, spec, &opts, &process_sandbox_ops, out, err);
}

static const agentd_backend_ops host_direct_ops = {
	.name = "host-direct",
	.probe = hd_probe,
	.create_sandbox = hd_create,
};

int host_direct_backend_new(const char *work_root, agentd_backend **out, agentd_error *err)
{
	*out = agentd_backend_alloc(&host_direct_ops, work_root);
	return 0;
}
