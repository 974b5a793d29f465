/* container.c: the container backend, host side — user, mount, pid, net, uts, ipc and
 * cgroup namespaces, a fresh root, and a small init (PID 1, init.c) that holds the sandbox
 * and starts each exec on request, so one sandbox serves many commands; a one-shot run
 * hands its command to the init at clone time and ends with it (run.c). This file is the
 * sandbox's lifecycle: create (start.c does the work), suspend, usage, destroy, probe.
 *
 * The init is a clone3 child of agentd that never execs: its mm belongs to the host user
 * namespace and it is non-dumpable, so nothing inside can open /proc/1/exe (agentd's own
 * binary, CVE-2019-5736) or ptrace it. */
#include "lib/backends/container/container.h"

/* ------------------------------------------------------------- host side */

static void ctr_stop_init(struct ctr *c)
{
	if (c->ctl >= 0) {
		close(c->ctl); /* init sees EOF and exits; the pid namespace goes with it */
		c->ctl = -1;
	}
	if (c->init_pidfd >= 0) {
		if (c->suspended && c->cg)
			cgroup_freeze(c->cg, false, NULL);
		struct pollfd p = {.fd = c->init_pidfd, .events = POLLIN};
		/* A durable init waits for its next host instead: killed by its cgroup (or its
		 * pidfd: an adopted one is not our child, kill() by pid could hit a reused one) */
		if (c->durable) {
			if (!c->cg || cgroup_kill_all(c->cg) < 0)
				sys_pidfd_send_signal(c->init_pidfd, SIGKILL);
			poll(&p, 1, DESTROY_WAIT_MS);
		} else if (poll(&p, 1, DESTROY_WAIT_MS) <= 0 && c->cg) {
			cgroup_kill_all(c->cg);
		} else if (poll(&p, 1, 0) <= 0) {
			kill(c->init_pid, SIGKILL);
		}
		/* ECHILD for an adopted init (not our child): its parent reaps it */
		siginfo_t si;
		waitid((idtype_t)P_PIDFD, (id_t)c->init_pidfd, &si, WEXITED);
		close(c->init_pidfd);
		c->init_pidfd = -1;
	}
}

/* An fd the init sent before it said ready (queued on the control socket): the message
 * op with exactly one fd, what names it in the error. */
static int recv_init_fd(struct ctr *c, uint32_t op, const char *what, agentd_error *err)
{
	struct ctl_msg m;
	int fds[CTL_MAX_FDS], nfds;
	ssize_t n = ctl_recv(c->ctl, &m, fds, &nfds, MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(m) || m.op != op || nfds != 1) {
		ctl_close_fds(fds);
		return agentd_error_set(err, EPROTO, "sandbox init: no %s", what);
	}
	return fds[0];
}

/* Its egress listener, sent first. */
static int attach_proxy(struct ctr *c, agentd_proxy *proxy, const char *id,
			const agentd_strv *allow, agentd_error *err)
{
	int fd = recv_init_fd(c, OP_PROXY_FD, "egress proxy listener", err);
	if (fd < 0)
		return -1;
	/* A dup of it for a durable init to keep (durable.c): a later host serves it. */
	c->proxy_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (agentd_proxy_add_sandbox(proxy, fd, id, allow, err) < 0)
		return agentd_error_prefix(err, "egress proxy");
	c->proxy = proxy;
	return 0;
}

/* A failed adopt: our copies go, the init and all it holds stay for a later host. */
static void ctr_release_only(struct ctr *c)
{
	int fds[] = {c->ctl, c->init_pidfd, c->ids.lease_fd};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	c->ctl = c->init_pidfd = c->ids.lease_fd = -1;
	cgroup_close(c->cg);
	c->cg = NULL;
	if (c->sock_dir >= 0)
		close(c->sock_dir);
	c->sock_dir = -1;
}

static void ctr_free(struct ctr *c, const agentd_backend *b, const char *id)
{
	if (!c)
		return;
	if (c->workdir_fd >= 0)
		close(c->workdir_fd);
	if (c->pts_fd >= 0)
		close(c->pts_fd);
	if (c->root_fd >= 0)
		close(c->root_fd);
	if (c->proxy_fd >= 0)
		close(c->proxy_fd);
	if (c->proxy)
		agentd_proxy_remove_sandbox(c->proxy, id);
	if (c->release_only)
		ctr_release_only(c);
	ctr_stop_init(c);
	ctr_durable_release(c);
	trace_mark("init exited");
	bool cleaned = true; /* without a cgroup the init, if any, was reaped above */
	while (c->n_idle)
		cgroup_destroy(c->idle_units[--c->n_idle]);
	if (c->cg) {
		cleaned = cgroup_destroy(c->cg) == 0;
		janitor_forget_cgroup(id);
		trace_mark("cgroup removed");
	}
	if (c->snap_dir) {
		sandbox_dir_remove(b->work_root, id);
		janitor_forget_dir(c->snap_dir);
	}
	/* Nothing of the sandbox is left: its host ids may go to another. */
	if (c->ids.lease_fd >= 0) {
		host_ids_release(&c->ids, cleaned);
		janitor_forget_ids(&c->ids, id);
	}
	free(c->snap_dir);
	agentd_image_lease_free(c->image); /* issue 13: after the init, which held it too */
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void ctr_sandbox_free(agentd_sandbox *sb)
{
	ctr_free(sb->priv, sb->backend, sb->id);
	backend_sandbox_free(sb);
}

static int ctr_create_seeded(agentd_backend *b, const agentd_spec *spec, int seed_fd,
			     agentd_sandbox **out, agentd_error *err)
{
	struct ctr_prep p;
	agentd_sandbox *sb;
	if (ctr_prepare(b, spec, false, seed_fd, &sb, &p, err) < 0)
		return -1;
	spec = &sb->spec; /* issue 13: with its image's defaults */
	struct ctr *c = sb->priv;
	int r = ctr_spawn_init(sb, &p, err);
	close(p.sp[1]);
	p.sp[1] = -1;
	close(p.setup[1]);
	p.setup[1] = -1;
	if (r < 0)
		goto fail;
	c->ctl = p.sp[0];
	p.sp[0] = -1;

	/* Wait for the init: a report = failure, EOF = ready (or it died). */
	struct child_report rep;
	ssize_t n;
	do
		n = read(p.setup[0], &rep, sizeof(rep));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(rep)) {
		agentd_error_set(err, rep.errnum, "sandbox init: %s: %s", rep.what,
				 strerror(rep.errnum));
		goto fail;
	}
	struct pollfd pfd = {.fd = c->init_pidfd, .events = POLLIN};
	if (n != 0 || poll(&pfd, 1, 0) > 0) {
		agentd_error_set(err, ECHILD, "sandbox init died during setup");
		goto fail;
	}
	if (p.proxy && attach_proxy(c, p.proxy, sb->id, &spec->network.allow, err) < 0)
		goto fail;
	if ((c->root_fd = recv_init_fd(c, OP_ROOT_FD, "root directory", err)) < 0)
		goto fail;
	/* issue 13: img-root. The init holds its image's use lock too (durable sandboxes). */
	struct ctl_msg im = {.op = OP_IMAGE};
	if (c->image && ctl_send(c->ctl, &im, &c->image->use_fd, 1) < 0) {
		agentd_error_errno(err, errno, "image %s: hand its use lock to the init",
				   c->image->id);
		goto fail;
	}
	bool filtered = p.sc.active || strcmp(spec->seccomp_profile, "none") != 0;
	bool p_overlay = p.overlay;
	ctr_prep_free(&p);
	/* Nothing has run inside yet: this fd is the real workdir, and the files API resolves
	 * beneath it from now on, whatever the sandbox later renames or links. */
	c->workdir_fd = open_in_sandbox(c, spec->workdir, err);
	if (c->workdir_fd < 0) {
		agentd_error_prefix(err, "workdir");
		goto fail;
	}
	/* Its devpts, for its terminals: a mount of its own, not the sandbox's to replace. */
	c->pts_fd = open_in_sandbox(c, "/dev/pts", NULL);
	ctr_fill_caps(sb, filtered);
	if (seed_fd >= 0)
		sb->caps.from_snapshot = p_overlay ? "overlay" : "copy";
	if (p_overlay && tree_allocated_at(seed_fd, &c->seed_bytes) < 0)
		c->seed_bytes = 0;
	*out = sb;
	return 0;

fail:
	ctr_prep_free(&p);
	ctr_sandbox_free(sb);
	return -1;
}

void ctr_fill_caps(agentd_sandbox *sb, bool filtered)
{
	const agentd_spec *spec = &sb->spec;
	backend_caps_fill(sb, spec->network.mode != AGENTD_NET_NONE, filtered);
	landlock_system_ro_paths(&sb->caps.readable_paths);
	for (size_t i = 0; i < spec->allowed_paths_ro.n; i++)
		strv_push(&sb->caps.readable_paths, spec->allowed_paths_ro.v[i]);
	strv_push(&sb->caps.writable_paths, spec->workdir);
	strv_push(&sb->caps.writable_paths, "/tmp");
	for (size_t i = 0; i < spec->allowed_paths_rw.n; i++)
		strv_push(&sb->caps.writable_paths, spec->allowed_paths_rw.v[i]);
}

static int ctr_create(agentd_backend *b, const agentd_spec *spec, agentd_sandbox **out,
		      agentd_error *err)
{
	return ctr_create_seeded(b, spec, -1, out, err);
}

/* issue 12: snapshots. Shared as overlays where the host allows, else a copy. */
static int ctr_create_from(agentd_backend *b, const agentd_spec *spec, int seed_fd,
			   agentd_sandbox **out, agentd_error *err)
{
	if (ctr_create_seeded(b, spec, seed_fd, out, err) < 0) {
		/* A kernel without idmapped overlay layers (before 5.19) fails the overlay in
		 * the init: the same sandbox again, copied. */
		if (!err || !strstr(err->msg, "overlay "))
			return -1;
		agentd_error_clear(err);
		if (ctr_create_seeded(b, spec, -1, out, err) < 0)
			return -1;
		(*out)->caps.from_snapshot = "copy";
	}
	if (strcmp((*out)->caps.from_snapshot, "copy") == 0 &&
	    ctr_restore_from(*out, seed_fd, err) < 0) {
		ctr_sandbox_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

static bool ctr_is_alive(agentd_sandbox *sb)
{
	struct ctr *c = sb->priv;
	struct pollfd p = {.fd = c->init_pidfd, .events = POLLIN};
	return c->init_pidfd >= 0 && poll(&p, 1, 0) == 0;
}

static int ctr_freeze(agentd_sandbox *sb, bool frozen, agentd_error *err)
{
	struct ctr *c = sb->priv;
	pthread_mutex_lock(&c->lock);
	int r = 0;
	if (c->suspended == frozen)
		r = agentd_error_set(err, EALREADY, "sandbox %s is already %s", sb->id,
				     frozen ? "suspended" : "running");
	else if ((r = cgroup_freeze(c->cg, frozen, err)) == 0)
		c->suspended = frozen;
	pthread_mutex_unlock(&c->lock);
	return r;
}

int ctr_refuse_suspended(agentd_sandbox *sb, agentd_error *err)
{
	struct ctr *c = sb->priv;
	pthread_mutex_lock(&c->lock);
	bool suspended = c->suspended;
	pthread_mutex_unlock(&c->lock);
	return suspended ? agentd_error_set(err, EBUSY, "sandbox %s is suspended", sb->id) : 0;
}

static int ctr_suspend(agentd_sandbox *sb, agentd_error *err)
{
	return ctr_freeze(sb, true, err);
}

static int ctr_resume(agentd_sandbox *sb, agentd_error *err)
{
	return ctr_freeze(sb, false, err);
}

static int ctr_usage(agentd_sandbox *sb, agentd_usage *u, agentd_error *err)
{
	struct ctr *c = sb->priv;
	int r = cgroup_read_usage(c->cg, u);
	if (r < 0)
		return agentd_error_errno(err, -r, "read cgroup usage");
	pthread_mutex_lock(&c->lock);
	if (c->bytes_written > u->bytes_written)
		u->bytes_written = c->bytes_written;
	/* Without the cgroup's CPU accounting, the execs' own (concurrent execs' shares of a
	 * cgroup's would overlap). */
	uint64_t cg_cpu;
	if (cgroup_cpu_ms(c->cg, &cg_cpu) < 0)
		u->cpu_time_ms = c->cpu_ms;
	pthread_mutex_unlock(&c->lock);
	u->wall_time_ms = (uint64_t)(time(NULL) - sb->created_at) * 1000;
	return 0;
}

static int ctr_workdir_fd(agentd_sandbox *sb, uid_t *uid, gid_t *gid, agentd_error *err)
{
	struct ctr *c = sb->priv;
	return sandbox_workdir_dup(c->workdir_fd, c->host_uid, c->host_gid, uid, gid, err);
}

/* issue 12: files */
static int ctr_root_fd(agentd_sandbox *sb, uid_t *uid, gid_t *gid, agentd_error *err)
{
	struct ctr *c = sb->priv;
	if (c->root_fd < 0)
		return agentd_error_set(err, ESRCH, "the sandbox root is not known");
	return sandbox_workdir_dup(c->root_fd, c->host_uid, c->host_gid, uid, gid, err);
}

static int ctr_destroy(agentd_sandbox *sb, agentd_error *err)
{
	ctr_free(sb->priv, sb->backend, sb->id);
	sb->priv = NULL;
	return 0;
}

const agentd_sandbox_ops container_sandbox_ops = {
	.exec = ctr_exec,
	.is_alive = ctr_is_alive,
	.suspend = ctr_suspend,
	.resume = ctr_resume,
	.snapshot = ctr_snapshot,
	.restore = ctr_restore,
	.usage = ctr_usage,
	.destroy = ctr_destroy,
	.workdir_fd = ctr_workdir_fd,
	.spawn = ctr_spawn,
	.connect = ctr_connect,
	/* issue 12: names */
	.set_network = ctr_set_network,
	/* issue 12: snapshots */
	.snapshot_to = ctr_snapshot_to,
	.restore_from = ctr_restore_from,
	.persist = ctr_persist,
	.adopted = ctr_adopted,
	/* issue 12: files */
	.root_fd = ctr_root_fd,
};

/* ------------------------------------------------------------- backend */

static int ctr_probe(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err)
{
	const agentd_platform *p = agentd_probe_platform();
	process_probe_common(caps, p);
	static const agentd_policy_item isolation[] = {
		AGENTD_ITEM_FILESYSTEM, AGENTD_ITEM_BIND_MOUNTS, AGENTD_ITEM_NETWORK_NONE,
		AGENTD_ITEM_NETWORK_ALLOWLIST,
	};
	for (size_t i = 0; i < ARRAY_SIZE(isolation); i++)
		if (p->user_namespaces)
			agentd_caps_enforce(caps, isolation[i]);
		else
			agentd_caps_cannot_enforce(caps, isolation[i], "no user namespaces here");
	ctr_image_probe(caps, p); /* issue 13: img-root */
	if (p->seccomp_filter)
		agentd_caps_enforce(caps, AGENTD_ITEM_SECCOMP);
	else
		agentd_caps_cannot_enforce(caps, AGENTD_ITEM_SECCOMP, "no seccomp filter here");
	caps->filesystem_isolation = p->user_namespaces;
	caps->process_isolation = p->user_namespaces;
	caps->network_isolation = p->user_namespaces;
	caps->syscall_filtering = p->seccomp_filter;
	caps->snapshots = true;
	caps->available = p->user_namespaces && p->seccomp_filter && p->pidfd &&
			  caps->resource_limits;
	if (!caps->available) {
		snprintf(caps->unavailable_reason, sizeof(caps->unavailable_reason),
			 "needs user namespaces, seccomp, pidfd and a writable cgroup with "
			 "memory+pids: %.160s",
			 p->reasons[0] ? p->reasons : "missing on this kernel");
		return 0;
	}
	strv_push(&caps->platform_features, "egress-proxy");
	strv_push(&caps->platform_features, "processes");	/* background, with a tty */
	strv_push(&caps->platform_features, "port-forwarding");
	/* issue 12: PATCH .../network, agentd_sandbox_set_network */
	strv_push(&caps->platform_features, "network-switching");
	strv_push(&caps->platform_features, "durable");	/* sandboxes outlive their owner */
	if (p->landlock_abi < 1)
		strv_push(&caps->warnings, "no Landlock: the mount namespace is the only "
					   "filesystem wall (no defence in depth)");
	return 0;
}

static const agentd_backend_ops container_ops = {
	.name = "container",
	.probe = ctr_probe,
	.create_sandbox = ctr_create,
	/* issue 12: snapshots */
	.create_sandbox_from = ctr_create_from,
	.adopt = ctr_adopt,
};

int container_backend_new(const char *work_root, agentd_backend **out, agentd_error *err)
{
	*out = agentd_backend_alloc(&container_ops, work_root);
	backend_set_run_once(*out, ctr_run_once);
	return 0;
}
