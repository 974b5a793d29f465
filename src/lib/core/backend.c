/* backend.c: the public API over backends and sandboxes — the list of live sandboxes,
 * health, and the wrappers that validate input and turn a missing operation into a clear
 * "unsupported". The objects themselves are built in backends/base.c. */
#include "lib/core/core.h"

#include <inttypes.h>
#include <pthread.h>

const char *agentd_default_work_root(void)
{
	static char buf[512];
	const char *env = getenv("AGENTD_WORK_ROOT");
	if (env && *env == '/')
		return env;
	if (geteuid() == 0)
		return "/var/lib/agentd/sandboxes";
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (xdg && *xdg == '/')
		snprintf(buf, sizeof(buf), "%s/agentd/sandboxes", xdg);
	else
		snprintf(buf, sizeof(buf), "/tmp/agentd-%u/sandboxes", (unsigned)geteuid());
	return buf;
}

const char *agentd_backend_name(const agentd_backend *b)
{
	return b->ops->name;
}

int agentd_backend_probe(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err)
{
	memset(caps, 0, sizeof(*caps));
	snprintf(caps->name, sizeof(caps->name), "%s", b->ops->name);
	if (b->ops->probe(b, caps, err) < 0)
		return agentd_error_prefix(err, "probe %s", b->ops->name);
	return 0;
}

/* sb, built by its backend, on b's list. */
static void list_sandbox(agentd_backend *b, agentd_sandbox *sb)
{
	struct agentd_backend_internal *in = b->internal;
	pthread_mutex_lock(&in->lock);
	sb->next = in->head;
	in->head = sb;
	in->active++;
	in->last_created = time(NULL);
	pthread_mutex_unlock(&in->lock);
}

/* Hand the relaxed spec to the backend and list the sandbox; it keeps *unenforced. */
static int create_planned(agentd_backend *b, const agentd_spec *relaxed, agentd_strv *unenforced,
			  int seed_fd, agentd_sandbox **out, agentd_error *err)
{
	agentd_sandbox *sb = NULL;
	int r = seed_fd >= 0 && b->ops->create_sandbox_from
			? b->ops->create_sandbox_from(b, relaxed, seed_fd, &sb, err)
			: b->ops->create_sandbox(b, relaxed, &sb, err);
	if (r < 0)
		return agentd_error_prefix(err, "create sandbox (%s)", b->ops->name);
	strv_free(&sb->caps.unenforced);
	sb->caps.unenforced = *unenforced;
	memset(unenforced, 0, sizeof(*unenforced));
	list_sandbox(b, sb);
	*out = sb;
	return 0;
}

/* Validate spec and hold it against what b enforces here (enforce.c). */
static int plan_spec(agentd_backend *b, const agentd_spec *spec, const agentd_create_opts *opts,
		     agentd_spec *relaxed, agentd_strv *unenforced, agentd_error *err)
{
	if (agentd_spec_validate(spec, err) < 0)
		return agentd_error_prefix(err, "invalid spec");
	return enforce_plan(b, spec, opts, relaxed, unenforced, err);
}

int agentd_backend_create_sandbox_opts(agentd_backend *b, const agentd_spec *spec,
				       const agentd_create_opts *opts, agentd_sandbox **out,
				       agentd_error *err)
{
	agentd_spec relaxed;
	agentd_strv unenforced;
	if (plan_spec(b, spec, opts, &relaxed, &unenforced, err) < 0)
		return -1;
	/* A snapshot to start from (agentd_create_opts): the backend shares or copies it, or,
	 * without a way of its own, it is copied in once the sandbox is made. */
	int seed = -1;
	if (opts && opts->from_snapshot &&
	    (seed = open(opts->from_snapshot, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		agentd_error_errno(err, errno, "from snapshot %s", opts->from_snapshot);
		strv_free(&unenforced);
		agentd_spec_free(&relaxed);
		return -1;
	}
	bool copy = seed >= 0 && (opts->from_snapshot_copy || !b->ops->create_sandbox_from);
	int r = create_planned(b, &relaxed, &unenforced, copy ? -1 : seed, out, err);
	strv_free(&unenforced);
	agentd_spec_free(&relaxed);
	if (r == 0 && copy) {
		if (agentd_sandbox_restore_from(*out, seed, err) < 0) {
			agentd_error_prefix(err, "from snapshot");
			agentd_sandbox_destroy(*out, NULL);
			*out = NULL;
			r = -1;
		} else {
			(*out)->caps.from_snapshot = "copy";
		}
	}
	if (seed >= 0)
		close(seed);
	return r;
}

int agentd_backend_create_sandbox(agentd_backend *b, const agentd_spec *spec,
				  agentd_sandbox **out, agentd_error *err)
{
	return agentd_backend_create_sandbox_opts(b, spec, NULL, out, err);
}

int agentd_backend_list(agentd_backend *b, agentd_strv *ids, agentd_error *err)
{
	memset(ids, 0, sizeof(*ids));
	pthread_mutex_lock(&b->internal->lock);
	for (agentd_sandbox *s = b->internal->head; s; s = s->next)
		strv_push(ids, s->id);
	pthread_mutex_unlock(&b->internal->lock);
	return 0;
}

agentd_sandbox *agentd_backend_get(agentd_backend *b, const char *id)
{
	agentd_sandbox *r = NULL;
	pthread_mutex_lock(&b->internal->lock);
	for (agentd_sandbox *s = b->internal->head; s; s = s->next)
		if (strcmp(s->id, id) == 0)
			r = s;
	pthread_mutex_unlock(&b->internal->lock);
	return r;
}

static bool unlink_sandbox(agentd_sandbox *sb)
{
	struct agentd_backend_internal *in = sb->backend->internal;
	bool found = false;
	pthread_mutex_lock(&in->lock);
	for (agentd_sandbox **pp = &in->head; *pp; pp = &(*pp)->next) {
		if (*pp == sb) {
			*pp = sb->next;
			in->active--;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&in->lock);
	return found;
}

int agentd_sandbox_destroy(agentd_sandbox *sb, agentd_error *err)
{
	unlink_sandbox(sb);
	process_orphan_all(sb);
	int r = sb->ops->destroy ? sb->ops->destroy(sb, err) : 0;
	if (r < 0)
		agentd_error_prefix(err, "destroy sandbox %s", sb->id);
	backend_sandbox_free(sb);
	return r;
}

int agentd_backend_destroy_all(agentd_backend *b, agentd_error *err)
{
	int ret = 0;
	for (;;) {
		pthread_mutex_lock(&b->internal->lock);
		agentd_sandbox *sb = b->internal->head;
		pthread_mutex_unlock(&b->internal->lock);
		if (!sb)
			break;
		if (agentd_sandbox_destroy(sb, err) < 0)
			ret = -1;
	}
	return ret;
}

int agentd_backend_health_check(agentd_backend *b, agentd_backend_health *h, agentd_error *err)
{
	memset(h, 0, sizeof(*h));
	agentd_backend_caps caps;
	agentd_error perr = {0};
	bool ok = agentd_backend_probe(b, &caps, &perr) == 0 && caps.available;
	pthread_mutex_lock(&b->internal->lock);
	h->active_sandboxes = b->internal->active;
	h->last_sandbox_created = b->internal->last_created;
	pthread_mutex_unlock(&b->internal->lock);
	h->healthy = ok;
	if (ok) {
		if (caps.max_concurrent_sandboxes)
			h->resource_utilization =
				(float)h->active_sandboxes / (float)caps.max_concurrent_sandboxes;
		strv_copy(&h->warnings, &caps.warnings);
	} else {
		strv_push(&h->warnings, perr.msg[0] ? perr.msg : caps.unavailable_reason);
	}
	agentd_backend_caps_free(&caps);
	return 0;
}

void agentd_backend_free(agentd_backend *b)
{
	if (!b)
		return;
	agentd_backend_destroy_all(b, NULL);
	agentd_proxy_stop(b->internal->own_proxy);
	if (b->ops->free_backend)
		b->ops->free_backend(b);
	agentd_image_store_free(b->internal->own_image_store);
	pthread_mutex_destroy(&b->internal->lock);
	free(b->internal);
	free(b->work_root);
	free(b);
}

static int unsupported(agentd_sandbox *sb, const char *what, agentd_error *err)
{
	return agentd_error_set(err, ENOTSUP, "%s is not supported by backend %s", what,
				sb->backend->ops->name);
}

/* The command as given, against the spec it runs under: a timeout above the sandbox's wall
 * limit would be cut to it, so it is refused instead of being silently shortened. */
static int check_command(const agentd_spec *spec, const agentd_command *cmd, agentd_error *err)
{
	if (!cmd || !cmd->argv || !cmd->argv[0] || !cmd->argv[0][0])
		return agentd_error_set(err, EINVAL, "exec: empty command");
	for (size_t i = 0; i < cmd->env.n; i++) {
		const char *why = env_name_forbidden(cmd->env.v[i].key);
		if (why)
			return agentd_error_set(err, EINVAL, "exec: env %s: %s", cmd->env.v[i].key,
						why);
	}
	if (cmd->workdir && cmd->workdir[0] != '/')
		return agentd_error_set(err, EINVAL, "exec: workdir %s: expected absolute path",
					cmd->workdir);
	uint64_t wall = spec->limits.max_wall_time_ms;
	if (wall && cmd->timeout_ms > wall)
		return agentd_error_set(err, EINVAL,
					"exec: timeout_ms %llu is above the sandbox's wall-time limit "
					"(limits.max_wall_time_ms = %llu): ask for at most that, or "
					"create the sandbox with a higher limit",
					(unsigned long long)cmd->timeout_ms, (unsigned long long)wall);
	return 0;
}

/* The CPU budget (max_cpu_time_ms) is the sandbox's, not each command's: once its usage
 * reaches it, a command is not started. That is a result, not a failure: 126 (could not
 * be executed), limit_hit "cpu", the reason on stderr. true when out says so. */
static bool cpu_budget_spent(agentd_sandbox *sb, const agentd_exec_ctx *ctx,
			     agentd_exec_output *out)
{
	uint64_t limit = sb->spec.limits.max_cpu_time_ms;
	agentd_usage u;
	agentd_error uerr = {0};
	if (!limit || agentd_sandbox_usage(sb, &u, &uerr) < 0 || u.cpu_time_ms < limit)
		return false;
	char *msg = xasprintf("agentd: the sandbox's CPU budget is spent: %" PRIu64
			      " ms used of limits.max_cpu_time_ms %" PRIu64 "\n",
			      u.cpu_time_ms, limit);
	out->err = (uint8_t *)msg;
	out->err_len = strlen(msg);
	if (ctx && ctx->on_output)
		ctx->on_output(ctx->userdata, AGENTD_STREAM_STDERR, out->err, out->err_len);
	out->exit_code = 126;
	out->limit_hit = AGENTD_LIMIT_CPU;
	out->resource_limited = true;
	return true;
}

int agentd_sandbox_check_command(const agentd_sandbox *sb, const agentd_command *cmd,
				 agentd_error *err)
{
	return check_command(&sb->spec, cmd, err);
}

int agentd_sandbox_exec(agentd_sandbox *sb, const agentd_command *cmd,
			const agentd_exec_ctx *ctx, agentd_exec_output *out, agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	out->exit_code = 125;
	if (check_command(&sb->spec, cmd, err) < 0)
		return -1;
	static const agentd_exec_ctx no_ctx;
	int r = cpu_budget_spent(sb, ctx, out) ? 0
						: sb->ops->exec(sb, cmd, ctx ? ctx : &no_ctx, out, err);
	strv_free(&out->unenforced);
	strv_copy(&out->unenforced, &sb->caps.unenforced);
	return r;
}

int agentd_backend_run_opts(agentd_backend *b, const agentd_spec *spec,
			    const agentd_create_opts *opts, const agentd_command *cmd,
			    const agentd_exec_ctx *ctx, agentd_exec_output *out,
			    char sandbox_id[AGENTD_ID_LEN], agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	out->exit_code = 125;
	sandbox_id[0] = '\0';
	if (check_command(spec, cmd, err) < 0)
		return -1;
	static const agentd_exec_ctx no_ctx;
	if (!ctx)
		ctx = &no_ctx;
	agentd_spec relaxed;
	agentd_strv unenforced;
	if (plan_spec(b, spec, opts, &relaxed, &unenforced, err) < 0)
		return -1;
	int r = 1;
	if (b->internal->run_once)
		r = b->internal->run_once(b, &relaxed, cmd, ctx, out, sandbox_id, err);
	if (r == 1) {
		agentd_sandbox *sb = NULL;
		r = create_planned(b, &relaxed, &unenforced, -1, &sb, err);
		if (r == 0) {
			snprintf(sandbox_id, AGENTD_ID_LEN, "%s", sb->id);
			r = agentd_sandbox_exec(sb, cmd, ctx, out, err);
			agentd_error derr = {0};
			if (agentd_sandbox_destroy(sb, r < 0 ? &derr : err) < 0 && r == 0)
				r = -1;
		}
	} else if (r == 0) {
		out->unenforced = unenforced;
		memset(&unenforced, 0, sizeof(unenforced));
	}
	strv_free(&unenforced);
	agentd_spec_free(&relaxed);
	return r;
}

int agentd_backend_run(agentd_backend *b, const agentd_spec *spec, const agentd_command *cmd,
		       const agentd_exec_ctx *ctx, agentd_exec_output *out,
		       char sandbox_id[AGENTD_ID_LEN], agentd_error *err)
{
	return agentd_backend_run_opts(b, spec, NULL, cmd, ctx, out, sandbox_id, err);
}

bool agentd_sandbox_is_alive(agentd_sandbox *sb)
{
	return sb->ops->is_alive ? sb->ops->is_alive(sb) : false;
}

int agentd_sandbox_suspend(agentd_sandbox *sb, agentd_error *err)
{
	return sb->ops->suspend ? sb->ops->suspend(sb, err) : unsupported(sb, "suspend", err);
}

int agentd_sandbox_resume(agentd_sandbox *sb, agentd_error *err)
{
	return sb->ops->resume ? sb->ops->resume(sb, err) : unsupported(sb, "resume", err);
}

int agentd_sandbox_snapshot(agentd_sandbox *sb, const char *name, char **snapshot_id,
			    agentd_error *err)
{
	return sb->ops->snapshot ? sb->ops->snapshot(sb, name, snapshot_id, err)
				 : unsupported(sb, "snapshot", err);
}

int agentd_sandbox_restore(agentd_sandbox *sb, const char *snapshot_id, agentd_error *err)
{
	return sb->ops->restore ? sb->ops->restore(sb, snapshot_id, err)
				: unsupported(sb, "restore", err);
}

int agentd_sandbox_snapshot_to(agentd_sandbox *sb, int dir_fd, uint64_t max_bytes,
			       uint64_t *bytes, agentd_error *err)
{
	return sb->ops->snapshot_to ? sb->ops->snapshot_to(sb, dir_fd, max_bytes, bytes, err)
				    : unsupported(sb, "snapshot", err);
}

int agentd_sandbox_restore_from(agentd_sandbox *sb, int dir_fd, agentd_error *err)
{
	return sb->ops->restore_from ? sb->ops->restore_from(sb, dir_fd, err)
				     : unsupported(sb, "restore", err);
}

/* issue 13: img-build */
int agentd_sandbox_root_upper(agentd_sandbox *sb, int *dir_fd, agentd_error *err)
{
	*dir_fd = -1;
	return sb->ops->root_upper ? sb->ops->root_upper(sb, dir_fd, err)
				   : unsupported(sb, "a writable root's upper layer", err);
}

int agentd_sandbox_connect(agentd_sandbox *sb, uint16_t port, agentd_error *err)
{
	if (!sb->ops->connect)
		return agentd_error_set(err, ENOTSUP,
					"ports are not supported by backend %s: its commands have "
					"no network namespace of their own to forward into (use "
					"the container backend)", sb->backend->ops->name);
	return port ? sb->ops->connect(sb, port, err) : 0;
}

/* issue 12: names */
int agentd_sandbox_set_network(agentd_sandbox *sb, const agentd_network *net, agentd_error *err)
{
	if (!sb->ops->set_network)
		return agentd_error_set(err, ENOTSUP,
					"live network switching is not supported by backend %s: its "
					"commands have no network namespace of their own whose only "
					"way out the egress proxy could become (use the container "
					"backend)", sb->backend->ops->name);
	if (net->mode == AGENTD_NET_HOST || sb->spec.network.mode == AGENTD_NET_HOST)
		return agentd_error_set(err, EINVAL,
					"network mode \"host\" is the host's own network: a sandbox "
					"cannot be switched to or from it (only between \"none\" and "
					"\"allowlist\")");
	if (net->mode != AGENTD_NET_ALLOWLIST && net->allow.n)
		return agentd_error_set(err, EINVAL, "network.allow: only valid with mode "
						     "\"allowlist\"");
	for (size_t i = 0; i < net->allow.n; i++) {
		const char *why = netpolicy_entry_parse(net->allow.v[i], NULL);
		if (why)
			return agentd_error_set(err, EINVAL, "network.allow[%zu]: %s", i, why);
	}
	if (sb->ops->set_network(sb, net, err) < 0)
		return -1;
	strv_free(&sb->spec.network.allow);
	strv_copy(&sb->spec.network.allow, &net->allow);
	sb->spec.network.mode = net->mode;
	sb->caps.has_network = net->mode != AGENTD_NET_NONE;
	strv_free(&sb->caps.allowed_destinations);
	strv_copy(&sb->caps.allowed_destinations, &net->allow);
	return 0;
}

int agentd_sandbox_usage(agentd_sandbox *sb, agentd_usage *u, agentd_error *err)
{
	memset(u, 0, sizeof(*u));
	return sb->ops->usage ? sb->ops->usage(sb, u, err) : unsupported(sb, "usage", err);
}

/* ------------------------------------------------------------ durable sandboxes */

int agentd_sandbox_persist(agentd_sandbox *sb, const char *dir, char **token,
			   agentd_error *err)
{
	*token = NULL;
	if (!dir || dir[0] != '/')
		return agentd_error_set(err, EINVAL, "persist: dir: expected an absolute path");
	if (!sb->ops->persist)
		return agentd_error_set(err, ENOTSUP,
					"persist: sandboxes of backend %s cannot outlive their "
					"owner: their commands are its children, with no init of "
					"their own to keep them (use the container backend)",
					sb->backend->ops->name);
	if (sb->ops->persist(sb, dir, token, err) < 0)
		return agentd_error_prefix(err, "sandbox %s", sb->id);
	sb->durable = true;
	return 0;
}

/* An id as agentd makes them (random_id): 32 lowercase hex digits. */
static bool id_valid(const char *id)
{
	size_t n = 0;
	for (; id[n]; n++)
		if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
			return false;
	return n == 32;
}

int agentd_backend_adopt(agentd_backend *b, const agentd_spec *spec, const char *id,
			 const char *token, agentd_sandbox **out, agentd_error *err)
{
	*out = NULL;
	if (!id || !id_valid(id) || !token)
		return agentd_error_set(err, EINVAL, "adopt: expected a sandbox id and its token");
	if (agentd_backend_get(b, id))
		return agentd_error_set(err, EEXIST, "adopt: sandbox %s is already ours", id);
	if (!b->ops->adopt)
		return agentd_error_set(err, ENOTSUP, "adopt: backend %s has no durable sandboxes",
					b->ops->name);
	/* The spec as at create: what it could not enforce then it cannot now either. */
	agentd_create_opts opts = {.allow_degraded = true};
	agentd_spec relaxed;
	agentd_strv unenforced;
	if (plan_spec(b, spec, &opts, &relaxed, &unenforced, err) < 0)
		return agentd_error_prefix(err, "adopt sandbox %s", id);
	agentd_sandbox *sb = NULL;
	int r = b->ops->adopt(b, &relaxed, id, token, &sb, err);
	if (r == 0) {
		strv_free(&sb->caps.unenforced);
		sb->caps.unenforced = unenforced;
		memset(&unenforced, 0, sizeof(unenforced));
		sb->durable = true;
		list_sandbox(b, sb);
		*out = sb;
	} else {
		agentd_error_prefix(err, "adopt sandbox %s (%s)", id, b->ops->name);
	}
	strv_free(&unenforced);
	agentd_spec_free(&relaxed);
	return r;
}

int agentd_sandbox_adopted(agentd_sandbox *sb, agentd_adoption *out, agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	return sb->ops->adopted ? sb->ops->adopted(sb, out, err) : 0;
}

/* issue 13: img-store ------------------------------------------------- the image store */

void agentd_backend_set_image_store(agentd_backend *b, agentd_image_store *s)
{
	pthread_mutex_lock(&b->internal->lock);
	b->internal->image_store = s;
	pthread_mutex_unlock(&b->internal->lock);
}

agentd_image_store *agentd_backend_image_store(agentd_backend *b, agentd_error *err)
{
	pthread_mutex_lock(&b->internal->lock);
	agentd_image_store *s = b->internal->image_store;
	if (!s && !b->internal->own_image_store &&
	    agentd_image_store_open(agentd_default_image_dir(), &b->internal->own_image_store,
				    err) < 0)
		agentd_error_prefix(err, "the default image store");
	if (!s)
		s = b->internal->own_image_store;
	pthread_mutex_unlock(&b->internal->lock);
	return s;
}
