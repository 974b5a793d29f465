/* shared.c: what every built-in backend does the same way — the engine's request for one
 * command (its wall timeout, output cap, stdin, callbacks) and the capabilities a sandbox
 * reports once it exists. */
#include "lib/backends/backends.h"

exec_request backend_exec_request(const agentd_sandbox *sb, const agentd_command *cmd,
				  const agentd_exec_ctx *ctx, char **envp, const char *cwd,
				  struct cgroup *cg)
{
	/* The command's own timeout when it is shorter than the sandbox's wall limit. */
	uint64_t timeout = sb->spec.limits.max_wall_time_ms;
	if (cmd->timeout_ms && (!timeout || cmd->timeout_ms < timeout))
		timeout = cmd->timeout_ms;
	return (exec_request){
		.argv = cmd->argv,
		.envp = envp,
		.cwd = cwd,
		.stdin_data = cmd->stdin_data,
		.stdin_len = cmd->stdin_len,
		.stdin_null = !cmd->stdin_data,
		.timeout_ms = timeout,
		.max_output_bytes = sb->spec.limits.max_output_bytes,
		.cpu_limit_ms = sb->spec.limits.max_cpu_time_ms,
		.write_quota = sb->spec.limits.max_write_bytes,
		.cg = cg,
		.on_output = ctx->on_output,
		.userdata = ctx->userdata,
		.cancel_fd = ctx->cancel_fd,
	};
}

void backend_caps_fill(agentd_sandbox *sb, bool has_network, bool filtered)
{
	agentd_sandbox_caps *c = &sb->caps;
	c->can_write_filesystem = true;
	c->has_network = has_network;
	strv_copy(&c->allowed_destinations, &sb->spec.network.allow);
	c->syscall_filter_active = filtered;
	if (filtered)
		for (const char *const *cat = seccomp_blocked_categories; *cat; cat++)
			strv_push(&c->blocked_syscall_categories, *cat);
	c->is_persistent = true;
}

/* issue 13: oci-runtime (shared with the container backend) */
void backend_proxy_env(agentd_kvv *extra)
{
	static const char *const vars[] = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
					   "http_proxy", "https_proxy", "all_proxy"};
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", AGENTD_PROXY_PORT);
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
		kvv_set(extra, vars[i], url);
	kvv_set(extra, "NO_PROXY", "");
	kvv_set(extra, "no_proxy", "");
}

char **backend_envp(const agentd_sandbox *sb, agentd_kvv *extra, bool proxied,
		    const agentd_command *cmd)
{
	if (proxied)
		backend_proxy_env(extra);
	for (size_t i = 0; i < cmd->env.n; i++)
		kvv_set(extra, cmd->env.v[i].key, cmd->env.v[i].value);
	char **envp = env_prepare(&sb->spec, extra, sb->spec.workdir, "/tmp");
	kvv_free(extra);
	return envp;
}
