/* linux_native.c: the linux-native backend — Landlock filesystem (and TCP, signal,
 * abstract-socket) rules + seccomp-bpf + rlimits + cgroup limits, no mount namespace. */
#include "lib/backends/backends.h"

static int ln_probe(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err)
{
	const agentd_platform *p = agentd_probe_platform();
	process_probe_common(caps, p);
	process_probe_items(caps, "linux-native");
	if (p->landlock_abi >= 1)
		agentd_caps_enforce(caps, AGENTD_ITEM_FILESYSTEM);
	else
		agentd_caps_cannot_enforce(caps, AGENTD_ITEM_FILESYSTEM, "no Landlock on this kernel");
	if (p->seccomp_filter) {
		agentd_caps_enforce(caps, AGENTD_ITEM_SECCOMP);
		agentd_caps_enforce(caps, AGENTD_ITEM_NETWORK_NONE);
	} else {
		agentd_caps_cannot_enforce(caps, AGENTD_ITEM_SECCOMP, "no seccomp filter here");
		agentd_caps_cannot_enforce(caps, AGENTD_ITEM_NETWORK_NONE,
					   "no seccomp filter to refuse inet sockets");
	}
	caps->filesystem_isolation = p->landlock_abi >= 1;
	caps->syscall_filtering = p->seccomp_filter;
	/* network none: seccomp allows only AF_UNIX sockets, Landlock (ABI >= 6) closes
	 * abstract unix sockets to the host. */
	caps->network_isolation = p->seccomp_filter;
	caps->process_isolation = false; /* no PID namespace: host processes stay visible */
	caps->available = p->landlock_abi >= 1 && p->seccomp_filter;
	if (!caps->available) {
		snprintf(caps->unavailable_reason, sizeof(caps->unavailable_reason),
			 "needs Landlock and seccomp: %.200s",
			 p->reasons[0] ? p->reasons : "not supported by this kernel");
		return 0;
	}
	if (p->landlock_abi < 4)
		strv_push(&caps->warnings, "landlock ABI < 4: TCP bind/connect not restricted "
					   "by Landlock (seccomp still blocks inet sockets)");
	if (p->landlock_abi < 6)
		strv_push(&caps->warnings, "landlock ABI < 6: signals and abstract unix sockets "
					   "to the host are not scoped");
	strv_push(&caps->warnings, "linux-native: no PID namespace; host processes are visible "
				   "in /proc");
	strv_push(&caps->warnings, "network mode \"allowlist\" unavailable: no network namespace, "
				   "and Landlock TCP rules allow a port on every host, so the egress "
				   "proxy could not be the only way out (use container)");
	return 0;
}

static int ln_create(agentd_backend *b, const agentd_spec *spec, agentd_sandbox **out,
		     agentd_error *err)
{
	static const struct process_sandbox_opts opts = {.landlock = true, .seccomp = true};
	if (landlock_abi() < 1)
		return agentd_error_set(err, ENOTSUP, "linux-native needs Landlock, which this "
						      "kernel does not offer");
	return process_sandbox_create(b, spec, &opts, &process_sandbox_ops, out, err);
}

static const agentd_backend_ops linux_native_ops = {
	.name = "linux-native",
	.probe = ln_probe,
	.create_sandbox = ln_create,
};

int linux_native_backend_new(const char *work_root, agentd_backend **out, agentd_error *err)
{
	*out = agentd_backend_alloc(&linux_native_ops, work_root);
	return 0;
}
