/* run.c: commands in a container sandbox — an exec handed to a persistent sandbox's init
 * over its control socket, and the one-shot run whose command goes to the init at clone
 * time. Both are exec_job runs (engine/job.c) of a command that is the init's child. */
#include "lib/backends/container/container.h"

/* Kill one exec's tree (timeout, cancel): the init does it. */
struct exec_kill {
	struct ctr *c;
	uint64_t id;
};

static void ctr_kill_exec(void *arg)
{
	const struct exec_kill *k = arg;
	struct ctl_msg m = {.op = OP_KILL, .id = k->id};
	if (send(k->c->ctl, &m, sizeof(m), MSG_NOSIGNAL) < 0) {
		/* init gone: its pid namespace took the command with it */
	}
}

struct cgroup *ctr_unit_get(struct ctr *c, agentd_error *err)
{
	pthread_mutex_lock(&c->lock);
	struct cgroup *unit = c->n_idle ? c->idle_units[--c->n_idle] : NULL;
	uint64_t seq = ++c->unit_seq;
	pthread_mutex_unlock(&c->lock);
	if (unit)
		return unit;
	char name[32];
	snprintf(name, sizeof(name), "u%" PRIu64, seq);
	unit = cgroup_create_child(c->cg, name, err);
	if (!unit)
		agentd_error_prefix(err, "its own cgroup");
	return unit;
}

void ctr_unit_put(struct ctr *c, struct cgroup *unit, bool reusable)
{
	if (!unit)
		return;
	bool kept = false;
	if (reusable && cgroup_unit_reset(unit) == 0) {
		pthread_mutex_lock(&c->lock);
		if ((kept = c->n_idle < UNIT_POOL))
			c->idle_units[c->n_idle++] = unit;
		pthread_mutex_unlock(&c->lock);
	}
	if (!kept)
		cgroup_destroy(unit);
}

int ctr_send_command(struct ctr *c, const struct ctl_msg *m, const int cmd_fds[4],
		     char *const *argv, char *const *envp, const char *cwd,
		     const struct cgroup *unit, agentd_error *err)
{
	_cleanup_close_ int mfd = exec_payload_encode(argv, envp, cwd, err);
	if (mfd < 0)
		return -1;
	/* Its unit's number, which a durable init keeps for a later host. */
	struct ctl_msg msg = *m;
	const char *name = unit ? cgroup_name(unit) : "";
	msg.sig = name[0] == 'u' ? (int32_t)strtol(name + 1, NULL, 10) : 0;
	m = &msg;
	int fds[CTL_MAX_FDS] = {cmd_fds[0], cmd_fds[1], cmd_fds[2], cmd_fds[3], mfd};
	int n = CTL_CMD_FDS + (unit ? cgroup_procs_fds(unit, fds + CTL_CMD_FDS, CTL_UNIT_FDS) : 0);
	if (ctl_send(c->ctl, m, fds, n) < 0)
		return agentd_error_errno(err, errno, "the sandbox is not running");
	return 0;
}

/* Hand the command of job j to the init. */
static int ctr_send_exec(struct ctr *c, const struct exec_job *j, uint64_t id,
			 agentd_error *err)
{
	const exec_request *req = j->req;
	struct ctl_msg m = {.op = OP_EXEC, .id = id};
	/* Each process may use what remains of the sandbox's CPU budget, no more. */
	if (req->cpu_limit_ms) {
		uint64_t s = (exec_cpu_remaining_ms(req) + 999) / 1000;
		m.cpu_s = s < UINT32_MAX ? (uint32_t)s : 0;
	}
	return ctr_send_command(c, &m, j->child_fds, req->argv, req->envp, req->cwd, req->unit,
				err);
}

/* The command's environment; under allowlist every client is pointed at the proxy, the
 * only way out. */
char **ctr_envp(const agentd_sandbox *sb, const agentd_command *cmd)
{
	struct ctr *c = sb->priv;
	agentd_kvv extra = {0};
	pthread_mutex_lock(&c->lock); /* a live network switch sets it (network.c) */
	bool proxied = c->proxy != NULL;
	pthread_mutex_unlock(&c->lock);
	return backend_envp(sb, &extra, proxied, cmd);
}

/* The sandbox's scratch for the engine's measurements: its root fd, which a persistent
 * sandbox's init sent before create returned; a one-shot init's is taken off the kill
 * socket once it was sent. */
static int ctr_scratch_fd(void *arg)
{
	return ((struct ctr *)arg)->root_fd;
}

struct once_scratch {
	struct ctr *c;
	int sock;
};

static int once_scratch_fd(void *arg)
{
	struct once_scratch *o = arg;
	struct ctl_msg m;
	int fds[CTL_MAX_FDS], nfds;
	if (o->c->root_fd >= 0 || o->sock < 0)
		return o->c->root_fd;
	ssize_t n = ctl_recv(o->sock, &m, fds, &nfds, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1; /* the init has not got that far yet */
	if (n == (ssize_t)sizeof(m) && m.op == OP_ROOT_FD && nfds == 1) {
		o->c->root_fd = fds[0];
		fds[0] = -1;
	}
	ctl_close_fds(fds);
	o->sock = -1; /* its one message was read, or will never come */
	return o->c->root_fd;
}

/* The exec engine's request for cmd in sb (envp built by the caller). */
static exec_request ctr_request(const agentd_sandbox *sb, const agentd_command *cmd,
				const agentd_exec_ctx *ctx, char **envp)
{
	struct ctr *c = sb->priv;
	exec_request req = backend_exec_request(sb, cmd, ctx, envp,
						cmd->workdir ? cmd->workdir : sb->spec.workdir,
						c->cg);
	req.scratch_fd = ctr_scratch_fd;
	req.scratch_arg = c;
	return req;
}

int ctr_exec(agentd_sandbox *sb, const agentd_command *cmd, const agentd_exec_ctx *ctx,
		    agentd_exec_output *out, agentd_error *err)
{
	struct ctr *c = sb->priv;
	if (ctr_refuse_suspended(sb, err) < 0)
		return -1;
	char **envp = ctr_envp(sb, cmd);
	exec_request req = ctr_request(sb, cmd, ctx, envp);
	pthread_mutex_lock(&c->lock);
	struct exec_kill k = {.c = c, .id = ++c->next_id};
	req.cpu_spent_ms = c->cpu_ms;
	pthread_mutex_unlock(&c->lock);
	req.kill = ctr_kill_exec;
	req.kill_arg = &k;
	/* Its own kill unit: its whole tree dies with it, and nothing else does. */
	req.unit = c->cg ? ctr_unit_get(c, err) : NULL;
	if (c->cg && !req.unit) {
		env_free(envp);
		return agentd_error_prefix(err, "exec %s", cmd->argv[0]);
	}
	struct exec_job j;
	int r = exec_job_open(&j, &req, out, err);
	bool sent = false;
	if (r == 0 && (r = ctr_send_exec(c, &j, k.id, err)) < 0)
		exec_job_close(&j);
	if (r == 0) {
		sent = true;
		exec_job_started(&j, -1, -1, NULL);
		r = exec_job_wait(&j, err);
	}
	if (r == 0) {
		pthread_mutex_lock(&c->lock);
		c->bytes_written += out->usage.bytes_written;
		c->cpu_ms += out->usage.cpu_time_ms;
		pthread_mutex_unlock(&c->lock);
	}
	/* The budget is the sandbox's: once spent, what earlier execs left running in the
	 * background stops too (the init stays, for the files API and destroy). */
	if (r == 0 && out->limit_hit == AGENTD_LIMIT_CPU) {
		struct exec_kill all = {.c = c, .id = CTL_KILL_ALL};
		ctr_kill_exec(&all);
	}
	ctr_unit_put(c, req.unit, !sent || r == 0); /* r == 0: the init reaped it */
	env_free(envp);
	return r < 0 ? agentd_error_prefix(err, "exec %s", cmd->argv[0]) : 0;
}

/* ------------------------------------------------------------- one-shot
 * `agentd run`: the command goes to the init at clone time, so the sandbox is set up,
 * runs it and ends in one pass: prepare, open the job, clone the init with the job's fds,
 * wait. No readiness handshake, no exec request over a control socket, no wake-up to end
 * it. A timeout or cancel writes to the kill pipe, which only the host holds. */
static void once_kill(void *arg)
{
	const int *killfd = arg;
	if (*killfd >= 0 && send(*killfd, "k", 1, MSG_NOSIGNAL) < 0) {
		/* the init is gone, and its command with it */
	}
}

int ctr_run_once(agentd_backend *b, const agentd_spec *spec, const agentd_command *cmd,
			const agentd_exec_ctx *ctx, agentd_exec_output *out,
			char id[AGENTD_ID_LEN], agentd_error *err)
{
	/* allowlist: the init hands the proxy its listener over the control socket of a
	 * persistent sandbox (create + exec + destroy) */
	if (spec->network.mode == AGENTD_NET_ALLOWLIST)
		return 1;
	struct ctr_prep p;
	agentd_sandbox *sb;
	if (ctr_prepare(b, spec, true, -1, &sb, &p, err) < 0)
		return agentd_error_prefix(err, "create sandbox (container)");
	trace_mark("sandbox prepared");
	struct ctr *c = sb->priv;
	snprintf(id, AGENTD_ID_LEN, "%s", sb->id);
	char **envp = ctr_envp(sb, cmd);
	exec_request req = ctr_request(sb, cmd, ctx, envp);
	req.kill = once_kill;
	req.kill_arg = &p.killp[1];
	struct once_scratch scratch = {.c = c, .sock = p.killp[1]};
	req.scratch_fd = once_scratch_fd;
	req.scratch_arg = &scratch;
	/* Private copies: the init blanks the process's own argument area (proc_hide_cmdline),
	 * where a caller's argv may live (agentd run's does). */
	agentd_strv argv = {0};
	for (char *const *a = cmd->argv; *a; a++)
		strv_push(&argv, *a);
	_cleanup_free_ char *cwd = xstrdup(req.cwd);
	struct exec_job j;
	int r = exec_job_open(&j, &req, out, err);
	if (r == 0) {
		p.once = (struct init_once){.argv = argv.v, .envp = envp, .cwd = cwd};
		p.ia.once = &p.once;
		init_plan_once(&p.ia.jail, j.child_fds, p.killp[0]);
		r = ctr_spawn_init(sb, &p, err);
		close(p.killp[0]);
		p.killp[0] = -1;
		if (r < 0) {
			exec_job_close(&j);
		} else {
			exec_job_started(&j, -1, -1, c->cg);
			r = exec_job_wait(&j, err);
		}
	}
	strv_free(&argv);
	env_free(envp);
	ctr_prep_free(&p);	/* the kill pipe: an init still running ends now */
	ctr_sandbox_free(sb);
	trace_mark("sandbox freed");
	return r < 0 ? agentd_error_prefix(err, "run in sandbox (container)") : 0;
}
