/* process.c: sandboxes whose isolation is applied to each command as it starts — a private
 * dir and a cgroup that persist across execs, jail steps per exec. Shared by host-direct
 * (policy guards only) and linux-native (Landlock + seccomp). */
#include "lib/backends/backends.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>

#define WORKSPACE "/workspace"

struct psb {
	struct process_sandbox_opts opts;
	char *dir;			/* <work_root>/<id> */
	char *workspace;		/* <dir>/workspace: what /workspace means here */
	char *tmp;			/* <dir>/tmp: TMPDIR */
	char *workdir;			/* host path of the spec's workdir */
	struct cgroup *cg;
	int landlock_fd;
	struct seccomp_prog seccomp;
	struct privs_plan privs;
	agentd_strv rw_check;
	struct rlimit_set rlimits;
	pthread_mutex_t exec_lock;	/* one exec at a time: the cgroup is the exec's tree */
	pthread_mutex_t state_lock;
	agentd_usage total;
	bool suspended;
	int workdir_fd;			/* O_PATH of the workdir, opened at create (files API) */
};

/* /workspace[/...] lives in the sandbox's private dir; any other path is the host's own. */
static char *map_path(const struct psb *p, const char *path)
{
	size_t n = strlen(WORKSPACE);
	if (strncmp(path, WORKSPACE, n) == 0 && (path[n] == '\0' || path[n] == '/'))
		return xasprintf("%s%s", p->workspace, path + n);
	return xstrdup(path);
}

static void psb_free(struct psb *p, const agentd_backend *b, const char *id)
{
	if (!p)
		return;
	if (p->cg) {
		cgroup_destroy(p->cg);
		janitor_forget_cgroup(id);
	}
	if (p->landlock_fd >= 0)
		close(p->landlock_fd);
	if (p->workdir_fd >= 0)
		close(p->workdir_fd);
	seccomp_prog_free(&p->seccomp);
	if (p->dir) {
		sandbox_dir_remove(b->work_root, id);
		janitor_forget_dir(p->dir);
	}
	free(p->dir);
	free(p->workspace);
	free(p->tmp);
	free(p->workdir);
	strv_free(&p->rw_check);
	pthread_mutex_destroy(&p->exec_lock);
	pthread_mutex_destroy(&p->state_lock);
	free(p);
}

/* Kernel interfaces are never host paths a policy may grant: /proc/self/cwd, /proc/1/root
 * and friends would hand out agentd's own view of the host. Checked on the resolved path. */
static int check_host_path(const char *what, const char *path, agentd_error *err)
{
	char real[PATH_MAX];
	const char *p = realpath(path, real) ? real : path;
	static const char *const banned[] = {"/proc", "/sys", "/dev"};
	for (size_t i = 0; i < ARRAY_SIZE(banned); i++) {
		size_t n = strlen(banned[i]);
		if (strncmp(p, banned[i], n) == 0 && (p[n] == '\0' || p[n] == '/'))
			return agentd_error_set(err, EINVAL, "%s: %s resolves to %s, inside %s",
						what, path, p, banned[i]);
	}
	if (strcmp(p, "/") == 0)
		return agentd_error_set(err, EINVAL, "%s: %s resolves to the host's root", what,
					path);
	return 0;
}

/* Is path equal to, or below, one of the rw paths? */
static bool under_rw(const agentd_spec *spec, const char *path)
{
	for (size_t i = 0; i < spec->allowed_paths_rw.n; i++) {
		const char *r = spec->allowed_paths_rw.v[i];
		size_t n = strlen(r);
		while (n > 1 && r[n - 1] == '/')
			n--;
		if (strncmp(path, r, n) == 0 && (path[n] == '\0' || path[n] == '/'))
			return true;
	}
	return false;
}

static int check_process_backend_spec(const agentd_spec *spec, const char *backend,
				      agentd_error *err)
{
	for (size_t i = 0; i < spec->allowed_paths_rw.n; i++)
		if (check_host_path("allowed_paths_rw", spec->allowed_paths_rw.v[i], err) < 0)
			return -1;
	for (size_t i = 0; i < spec->allowed_paths_ro.n; i++)
		if (check_host_path("allowed_paths_ro", spec->allowed_paths_ro.v[i], err) < 0)
			return -1;
	const char *ws = "/workspace";
	size_t wl = strlen(ws);
	bool in_workspace = strncmp(spec->workdir, ws, wl) == 0 &&
			    (spec->workdir[wl] == '\0' || spec->workdir[wl] == '/');
	if (!in_workspace) {
		/* Without a mount namespace the workdir is a host path: it is writable only if
		 * the policy grants it read-write like any other host path. */
		if (check_host_path("workdir", spec->workdir, err) < 0)
			return -1;
		if (!under_rw(spec, spec->workdir))
			return agentd_error_set(
				err, EPERM,
				"workdir %s is a host path on backend %s (no mount namespace): list it "
				"or a parent in allowed_paths_rw, or use /workspace",
				spec->workdir, backend);
	}
	for (size_t i = 0; i < spec->n_bind_mounts; i++)
		if (strcmp(spec->bind_mounts[i].source, spec->bind_mounts[i].target) != 0)
			return agentd_error_set(
				err, ENOTSUP,
				"bind_mounts[%zu]: %s has no mount namespace, so target must equal "
				"source (%s); use the container backend to remap paths",
				i, backend, spec->bind_mounts[i].source);
	/* Without a network namespace nothing could make the proxy the only way out:
	 * Landlock's TCP rules name ports, not addresses (allowing the proxy's port would
	 * allow that port on every host), UDP is not covered, and connections to a proxy on
	 * the host's loopback would not say which sandbox they come from. */
	if (spec->network.mode == AGENTD_NET_ALLOWLIST)
		return agentd_error_set(err, ENOTSUP,
					"network.mode \"allowlist\" cannot be enforced by backend %s "
					"(no network namespace for the egress proxy to be the only "
					"way out); use the container backend, or \"none\"",
					backend);
	return 0;
}

static int build_landlock(struct psb *p, const agentd_spec *spec, agentd_sandbox_caps *caps,
			  agentd_strv *warnings, agentd_error *err)
{
	struct landlock_rules r = {0};
	landlock_system_ro_paths(&r.ro);
	for (size_t i = 0; i < spec->allowed_paths_ro.n; i++)
		strv_push(&r.ro, spec->allowed_paths_ro.v[i]);
	for (size_t i = 0; i < spec->n_bind_mounts; i++)
		strv_push(spec->bind_mounts[i].readonly ? &r.ro : &r.rw,
			  spec->bind_mounts[i].source);
	strv_push(&r.rw, p->workspace);
	strv_push(&r.rw, p->tmp);
	if (strcmp(p->workdir, p->workspace) != 0 &&
	    strncmp(p->workdir, p->workspace, strlen(p->workspace)) != 0)
		strv_push(&r.rw, p->workdir);
	for (size_t i = 0; i < spec->allowed_paths_rw.n; i++)
		strv_push(&r.rw, spec->allowed_paths_rw.v[i]);
	/* "> /dev/null" is everyday shell: the null device is writable, nothing else in /dev */
	strv_push(&r.rw, "/dev/null");
	r.deny_tcp = spec->network.mode == AGENTD_NET_NONE;
	r.scope_signals = true;
	r.scope_abstract_unix = true;

	int ret = landlock_prepare(&r, &p->landlock_fd, warnings, err);
	if (ret == 0) {
		strv_copy(&caps->readable_paths, &r.ro);
		strv_copy(&caps->writable_paths, &r.rw);
	}
	strv_free(&r.ro);
	strv_free(&r.rw);
	return ret < 0 ? agentd_error_prefix(err, "landlock") : 0;
}

int process_sandbox_create(agentd_backend *b, const agentd_spec *spec,
			   const struct process_sandbox_opts *o, const agentd_sandbox_ops *ops,
			   agentd_sandbox **out, agentd_error *err)
{
	if (check_process_backend_spec(spec, b->ops->name, err) < 0)
		return -1;
	agentd_sandbox *sb = agentd_sandbox_alloc(b, spec, ops, err);
	if (!sb)
		return -1;
	struct psb *p = xcalloc(1, sizeof(*p));
	p->opts = *o;
	p->landlock_fd = -1;
	p->workdir_fd = -1;
	pthread_mutex_init(&p->exec_lock, NULL);
	pthread_mutex_init(&p->state_lock, NULL);
	privs_prepare(spec, &p->privs);
	rlimit_prepare(&spec->limits, &p->rlimits);
	agentd_strv warnings = {0};

	uid_t uid = p->privs.switch_user ? p->privs.uid : geteuid();
	gid_t gid = p->privs.switch_user ? p->privs.gid : getegid();
	if (sandbox_dir_create(b->work_root, sb->id, uid, gid, &p->dir, err) < 0)
		goto fail;
	janitor_watch_dir(p->dir);
	p->workspace = xasprintf("%s/workspace", p->dir);
	p->tmp = xasprintf("%s/tmp", p->dir);
	p->workdir = map_path(p, spec->workdir);
	if (strcmp(p->workdir, p->workspace) != 0) {
		/* The workdir is created if missing; its writability for the sandbox's uid is
		 * checked in the child, with a message naming it. */
		struct stat wst;
		bool existed = stat(p->workdir, &wst) == 0;
		int r = mkdir_p(p->workdir, 0755);
		if (r < 0) {
			agentd_error_errno(err, -r, "create workdir %s", p->workdir);
			goto fail;
		}
		/* A workdir we just made (inside a granted rw path) belongs to the sandbox. */
		if (p->privs.switch_user && !existed && chown(p->workdir, uid, gid) < 0) {
			agentd_error_errno(err, errno, "chown workdir %s", p->workdir);
			goto fail;
		}
		strv_push(&p->rw_check, p->workdir);
	}
	for (size_t i = 0; i < spec->allowed_paths_rw.n; i++)
		strv_push(&p->rw_check, spec->allowed_paths_rw.v[i]);
	/* Before any command ran: later renames or links in the workdir's parents by the
	 * sandbox cannot redirect the files API (it resolves beneath this fd). */
	p->workdir_fd = open(p->workdir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (p->workdir_fd < 0) {
		agentd_error_errno(err, errno, "open workdir %s", p->workdir);
		goto fail;
	}

	/* A cgroup limit the backend was given is enforced or the create fails: the ones it
	 * cannot enforce here were taken out before (core/enforce.c), and listed. */
	p->cg = cgroup_create(sb->id, &spec->limits, err);
	if (p->cg)
		janitor_watch_cgroup(sb->id);
	else if (cgroup_limits_needed(&spec->limits)) {
		agentd_error_prefix(err, "cgroup");
		goto fail;
	}
	agentd_error_clear(err);

	if (o->landlock && build_landlock(p, spec, &sb->caps, &warnings, err) < 0)
		goto fail;
	if (!o->landlock) {
		strv_push(&sb->caps.readable_paths, "/");
		strv_push(&sb->caps.writable_paths, "/");
	}
	if (o->seccomp) {
		struct seccomp_opts so = {
			.profile = spec->seccomp_profile,
			.deny_inet_sockets = spec->network.mode == AGENTD_NET_NONE,
			.deny_sysv_ipc = true, /* no IPC namespace: SysV IPC is the host's */
		};
		if (seccomp_prepare(&so, &p->seccomp, err) < 0) {
			agentd_error_prefix(err, "seccomp");
			goto fail;
		}
	}
	backend_caps_fill(sb, spec->network.mode != AGENTD_NET_NONE || !o->seccomp,
			  p->seccomp.filter != NULL);
	if (p->seccomp.filter)
		strv_push(&sb->caps.blocked_syscall_categories, SECCOMP_SYSV_IPC_CATEGORY);
	strv_free(&warnings);
	sb->priv = p;
	*out = sb;
	return 0;
fail:
	strv_free(&warnings);
	psb_free(p, b, sb->id);
	backend_sandbox_free(sb);
	return -1;
}

/* exec_request.child_setup: the jail steps, and the report to the parent if one fails. */
static void process_child_setup(void *plan, int errfd)
{
	char what[600];
	int r = jail_apply(plan, what, sizeof(what));
	if (r < 0)
		child_fail(errfd, 125, -r, what);
}

static int psb_exec(agentd_sandbox *sb, const agentd_command *cmd, const agentd_exec_ctx *ctx,
		    agentd_exec_output *out, agentd_error *err)
{
	struct psb *p = sb->priv;
	_cleanup_free_ char *cwd = cmd->workdir ? map_path(p, cmd->workdir) : xstrdup(p->workdir);
	char **envp = env_prepare(&sb->spec, &cmd->env, p->workdir, p->tmp);

	struct jail_plan plan;
	jail_plan_init(&plan);
	plan.rlimits = p->rlimits;
	plan.privs = p->privs;
	plan.landlock_fd = p->landlock_fd;
	plan.seccomp = p->seccomp;
	plan.rw_check = p->rw_check;

	exec_request req = backend_exec_request(sb, cmd, ctx, envp, cwd, p->cg);
	req.child_setup = process_child_setup;
	req.child_arg = &plan;
	pthread_mutex_lock(&p->exec_lock);
	pthread_mutex_lock(&p->state_lock);
	req.cpu_spent_ms = p->total.cpu_time_ms;
	pthread_mutex_unlock(&p->state_lock);
	/* Each process may use what remains of the sandbox's budget, no more. */
	if (req.cpu_limit_ms)
		rlimit_set_cpu(&plan.rlimits, exec_cpu_remaining_ms(&req));
	int r = exec_run(&req, out, err);
	pthread_mutex_unlock(&p->exec_lock);
	env_free(envp);

	pthread_mutex_lock(&p->state_lock);
	p->total.cpu_time_ms += out->usage.cpu_time_ms;
	p->total.wall_time_ms += out->usage.wall_time_ms;
	p->total.bytes_written += out->usage.bytes_written;
	p->total.bytes_read += out->usage.bytes_read;
	if (out->usage.peak_memory_bytes > p->total.peak_memory_bytes)
		p->total.peak_memory_bytes = out->usage.peak_memory_bytes;
	pthread_mutex_unlock(&p->state_lock);
	return r < 0 ? agentd_error_prefix(err, "exec %s", cmd->argv[0]) : 0;
}

static bool psb_is_alive(agentd_sandbox *sb)
{
	struct psb *p = sb->priv;
	struct stat st;
	return stat(p->dir, &st) == 0;
}

static int psb_freeze(agentd_sandbox *sb, bool frozen, agentd_error *err)
{
	struct psb *p = sb->priv;
	if (!p->cg)
		return agentd_error_set(err, ENOTSUP,
					"%s without a cgroup cannot %s (no freezer available)",
					sb->backend->ops->name, frozen ? "suspend" : "resume");
	pthread_mutex_lock(&p->state_lock);
	int r = cgroup_freeze(p->cg, frozen, err);
	if (r == 0)
		p->suspended = frozen;
	pthread_mutex_unlock(&p->state_lock);
	return r;
}

static int psb_suspend(agentd_sandbox *sb, agentd_error *err)
{
	return psb_freeze(sb, true, err);
}

static int psb_resume(agentd_sandbox *sb, agentd_error *err)
{
	return psb_freeze(sb, false, err);
}

static int psb_usage(agentd_sandbox *sb, agentd_usage *u, agentd_error *err)
{
	struct psb *p = sb->priv;
	pthread_mutex_lock(&p->state_lock);
	*u = p->total;
	pthread_mutex_unlock(&p->state_lock);
	agentd_usage cu = {0};
	if (p->cg && cgroup_read_usage(p->cg, &cu) == 0) {
		if (cu.peak_memory_bytes > u->peak_memory_bytes)
			u->peak_memory_bytes = cu.peak_memory_bytes;
		if (cu.cpu_time_ms > u->cpu_time_ms)
			u->cpu_time_ms = cu.cpu_time_ms;
	}
	return 0;
}

static int psb_workdir_fd(agentd_sandbox *sb, uid_t *uid, gid_t *gid, agentd_error *err)
{
	struct psb *p = sb->priv;
	return sandbox_workdir_dup(p->workdir_fd, p->privs.switch_user ? p->privs.uid : (uid_t)-1,
				   p->privs.switch_user ? p->privs.gid : (gid_t)-1, uid, gid, err);
}

static int psb_destroy(agentd_sandbox *sb, agentd_error *err)
{
	struct psb *p = sb->priv;
	if (p && p->suspended && p->cg)
		cgroup_freeze(p->cg, false, NULL);
	psb_free(p, sb->backend, sb->id);
	sb->priv = NULL;
	return 0;
}

const agentd_sandbox_ops process_sandbox_ops = {
	.exec = psb_exec,
	.is_alive = psb_is_alive,
	.suspend = psb_suspend,
	.resume = psb_resume,
	.usage = psb_usage,
	.destroy = psb_destroy,
	.workdir_fd = psb_workdir_fd,
};

/* The cgroup items: a limit needs a cgroup agentd may write, with that controller. */
static void probe_cgroup_item(agentd_backend_caps *caps, const agentd_platform *p,
			      agentd_policy_item item, bool controller, const char *name)
{
	if (p->cgroup_writable && controller)
		agentd_caps_enforce(caps, item);
	else if (p->cgroup_writable)
		agentd_caps_cannot_enforce(caps, item, "the cgroup agentd may write has no %s "
					   "controller; delegate it (docs/backends.md#unprivileged-use): "
					   "%s", name, p->cgroup_reason);
	else
		agentd_caps_cannot_enforce(caps, item, "no writable cgroup; run as root or in a "
					   "delegated cgroup (docs/backends.md#unprivileged-use): %s",
					   p->cgroup_reason[0] ? p->cgroup_reason : "none usable");
}

/* What every built-in backend enforces alike: cgroup limits, rlimits, the engine's wall
 * timer and output cap, the identity when root. The isolation items are each backend's. */
static void probe_common_items(agentd_backend_caps *caps, const agentd_platform *p)
{
	probe_cgroup_item(caps, p, AGENTD_ITEM_MEMORY, p->cgroup_memory, "memory");
	probe_cgroup_item(caps, p, AGENTD_ITEM_PIDS, p->cgroup_pids, "pids");
	probe_cgroup_item(caps, p, AGENTD_ITEM_CPU, p->cgroup_cpu, "cpu");
	static const agentd_policy_item always[] = {
		AGENTD_ITEM_CPU_TIME, AGENTD_ITEM_WALL_TIME, AGENTD_ITEM_OPEN_FILES,
		AGENTD_ITEM_OUTPUT,   AGENTD_ITEM_WRITE,
	};
	for (size_t i = 0; i < ARRAY_SIZE(always); i++)
		agentd_caps_enforce(caps, always[i]);
	if (geteuid() == 0)
		agentd_caps_enforce(caps, AGENTD_ITEM_RUN_AS);
	else
		agentd_caps_cannot_enforce(caps, AGENTD_ITEM_RUN_AS,
					   "agentd is not root: commands keep its uid %u, gid %u",
					   (unsigned)geteuid(), (unsigned)getegid());
	/* issue 13: commands of a process backend see the host's own root */
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_IMAGE,
				   "its commands run on the host's root filesystem (no mount "
				   "namespace): an image needs the container or oci backend");
}

void process_probe_items(agentd_backend_caps *caps, const char *backend)
{
	char no_ports[160];
	snprintf(no_ports, sizeof(no_ports), "%s: no port forwarding (ports API 501): its "
		 "commands have no network namespace of their own to forward into (use "
		 "container)", backend);
	strv_push(&caps->warnings, no_ports);
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_BIND_MOUNTS,
				   "%s has no mount namespace: a bind mount's target must equal its "
				   "source (use the container backend)", backend);
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_NETWORK_ALLOWLIST,
				   "%s has no network namespace for the egress proxy to be the only "
				   "way out (use the container backend, or \"none\")", backend);
	char why[200];
	snprintf(why, sizeof(why), "%s has no background processes or terminals (spawn: "
		 "ENOTSUP): no init of the sandbox's for them to outlive their exec in (use "
		 "the container backend)", backend);
	strv_push(&caps->warnings, why);
	/* issue 12: names */
	snprintf(why, sizeof(why), "%s: no live network switching (PATCH .../network 501): its "
		 "commands have no network namespace whose only way out the egress proxy could "
		 "become (use container)", backend);
	strv_push(&caps->warnings, why);
	/* issue 12: durable-lib */
	snprintf(why, sizeof(why), "%s: sandboxes are not durable (persist: ENOTSUP): they end "
		 "with the process that made them, a daemon restart included: their commands "
		 "are its children, no init of their own keeps them (use container)", backend);
	strv_push(&caps->warnings, why);
}

void process_probe_common(agentd_backend_caps *caps, const agentd_platform *p)
{
	probe_common_items(caps, p);
	caps->persistent_sandboxes = true;
	caps->snapshots = false;
	caps->resource_limits = p->cgroup_writable && p->cgroup_memory && p->cgroup_pids;
	if (!caps->resource_limits)
		strv_push(&caps->warnings, "no writable cgroup with memory+pids controllers: a "
					   "memory or process limit cannot be enforced (refused unless "
					   "--allow-degraded)");
	for (int i = AGENTD_PROFILE_STRICT; i <= AGENTD_PROFILE_PERMISSIVE; i++)
		strv_push(&caps->available_profiles, agentd_profile_name((agentd_profile)i));
	strv_push(&caps->warnings, "network mode \"host\" (profile permissive only) shares the "
				   "host's network: no network isolation");
	char buf[64];
	if (p->landlock_abi) {
		snprintf(buf, sizeof(buf), "landlock-abi-%d", p->landlock_abi);
		strv_push(&caps->platform_features, buf);
	}
	if (p->seccomp_filter)
		strv_push(&caps->platform_features, "seccomp-bpf");
	if (p->cgroup_version) {
		snprintf(buf, sizeof(buf), "cgroup-v%d%s", p->cgroup_version,
			 p->cgroup_hybrid ? "-hybrid" : "");
		strv_push(&caps->platform_features, buf);
	}
	if (p->user_namespaces)
		strv_push(&caps->platform_features, "user-namespaces");
	if (p->kvm)
		strv_push(&caps->platform_features, "kvm");
	if (p->pidfd)
		strv_push(&caps->platform_features, "pidfd");
	if (p->clone3)
		strv_push(&caps->platform_features, "clone3");
}
