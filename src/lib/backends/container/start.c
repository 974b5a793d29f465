/* start.c: from a spec to a running init — the sandbox's plan (root filesystem, seccomp
 * program, cgroup, channels, the init's confinement for jail/pipeline.c), then the init's
 * clone into its namespaces, its id maps and, on v1 hierarchies, its cgroup. */
#include "lib/backends/container/container.h"

static int write_id_maps(const struct ctr *c, pid_t pid, agentd_error *err)
{
	char path[64], map[64];
	snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)c->inner_id, (unsigned)c->host_uid);
	int r = write_file_at(AT_FDCWD, path, map);
	if (r < 0)
		return agentd_error_errno(err, -r, "write uid_map");
	if (c->unprivileged) {
		/* Required before an unprivileged gid_map; root keeps setgroups to drop its
		 * supplementary groups inside. */
		snprintf(path, sizeof(path), "/proc/%d/setgroups", pid);
		if ((r = write_file_at(AT_FDCWD, path, "deny")) < 0)
			return agentd_error_errno(err, -r, "write setgroups");
	}
	snprintf(path, sizeof(path), "/proc/%d/gid_map", pid);
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)c->inner_id, (unsigned)c->host_gid);
	if ((r = write_file_at(AT_FDCWD, path, map)) < 0)
		return agentd_error_errno(err, -r, "write gid_map");
	return 0;
}

static void push_rw(struct init_args *a, size_t *n, const char *path)
{
	if (*n < ARRAY_SIZE(a->ll_rw) - 1)
		a->ll_rw[(*n)++] = path;
}

void ctr_prep_free(struct ctr_prep *p)
{
	netns_make_cancel(&p->nm);
	for (int i = 0; i < 2; i++) {
		if (p->sp[i] >= 0)
			close(p->sp[i]);
		if (p->setup[i] >= 0)
			close(p->setup[i]);
		if (p->killp[i] >= 0)
			close(p->killp[i]);
		if (p->go[i] >= 0)
			close(p->go[i]);
		p->sp[i] = p->setup[i] = p->killp[i] = p->go[i] = -1;
	}
	mount_plan_free(&p->mp);
	seccomp_prog_free(&p->sc);
}

static int ctr_make_cgroup(agentd_sandbox *sb, agentd_error *err)
{
	struct ctr *c = sb->priv;
	c->cg = cgroup_create(sb->id, &sb->spec.limits, err);
	if (!c->cg)
		return agentd_error_prefix(err, "cgroup");
	janitor_watch_cgroup(sb->id);
	/* Here, not at the lease: the janitor's fork is in this step already (made earlier,
	 * it would copy a process whose netns thread is busy). Before the cgroup exists a
	 * killed owner leaves a lease naming a sandbox without one, which is free anyway. */
	if (c->ids.lease_fd >= 0)
		janitor_watch_ids(&c->ids, sb->id);
	trace_mark("cgroup made");
	return 0;
}

/* The init's confinement (jail/pipeline.c): its ids, root, network, cgroup wait, fds at
 * fixed numbers, Landlock paths and seccomp program. A persistent sandbox's init keeps its
 * control socket and setup pipe. */
static void init_plan(struct ctr_prep *p, const struct ctr *c, const agentd_spec *spec,
		      bool once)
{
	struct init_args *ia = &p->ia;
	struct jail_init_plan *jp = &ia->jail;
	bool allowlist = spec->network.mode == AGENTD_NET_ALLOWLIST;
	/* issue 12: a persistent sandbox's network can be switched between none and
	 * allowlist (ctr_set_network): its commands' connect rule is a layer of its own */
	bool switchable = !once && spec->network.mode != AGENTD_NET_HOST;
	*jp = (struct jail_init_plan){
		.uid = c->inner_id,
		.gid = c->inner_id,
		.set_groups = !c->unprivileged,
		.host_uid = c->host_uid,
		.name = "init",
		.ignored = ignored_signals(),
		.mp = &p->mp,
		.rw_check = ia->rw_check,
		.hostname = "agentd",
		.loopback = spec->network.mode == AGENTD_NET_NONE || allowlist,
		.listener_sock = allowlist ? p->sp[1] : -1,
		.listener_port = AGENTD_PROXY_PORT,
		.listener_msg = &ia->listener_msg,
		.listener_msg_len = sizeof(ia->listener_msg),
		.placed_fd = p->go[0],
		.placed_wr = p->go[1],
		.report_fd = p->setup[1],
		.place = {{p->setup[1], INIT_SETUP_FD}, {p->sp[1], INIT_CTL_FD}},
		.nplace = 2,
		.close_from = INIT_SETUP_FD + 1,
		.ll_ro = ia->ll_ro,
		.ll_rw = ia->ll_rw,
		.ll_deny_connect = !switchable && spec->network.mode == AGENTD_NET_NONE,
		.ll_slot = INIT_LANDLOCK_FD,
		.sc = &p->sc,
		.ll_net_slot = switchable ? INIT_LANDLOCK_NET_FD : -1,
	};
	ia->net_none = spec->network.mode == AGENTD_NET_NONE;
	ia->listener_msg = (struct ctl_msg){.op = OP_PROXY_FD};
}

/* One-shot: setup failures are the command's failure report; the kill pipe takes the
 * control socket's place and the command's stdio follows the Landlock slot. */
void init_plan_once(struct jail_init_plan *jp, const int cmd_fds[4], int kill_fd)
{
	jp->report_fd = cmd_fds[3];
	jp->pdeathsig = true;	/* it runs within the caller's call, on that thread */
	jp->place[0] = (struct fd_move){cmd_fds[3], INIT_SETUP_FD};
	jp->place[1] = (struct fd_move){kill_fd, INIT_CTL_FD};
	for (int i = 0; i < 3; i++)
		jp->place[2 + i] = (struct fd_move){cmd_fds[i], INIT_ONCE_FD + i};
	jp->nplace = 5;
	jp->close_from = INIT_ONCE_FD + 3;
}

/* The host side's state of a new sandbox: its ids on the host and inside, and its
 * commands' rlimits. As root, the sandbox's host uid/gid is a leased one of its own
 * (host_ids.c) unless run_as names one; unprivileged, it is the caller's. */
struct ctr *ctr_new(const agentd_spec *spec)
{
	struct ctr *c = xcalloc(1, sizeof(*c));
	c->ctl = -1;
	c->proxy_fd = -1;
	c->sock_dir = -1;
	c->init_pidfd = -1;
	c->workdir_fd = -1;
	c->root_fd = -1;
	c->pts_fd = -1;
	c->ids.lease_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	c->unprivileged = geteuid() != 0;
	c->inner_id = spec->run_as_uid == 0 ? 0 : AGENT_ID;
	if (c->unprivileged) {
		c->host_uid = geteuid();
		c->host_gid = getegid();
	} else if (spec->run_as_uid > 0) {
		/* The caller's choice of host id: sandboxes that share it share its budgets. */
		c->host_uid = (uid_t)spec->run_as_uid;
		c->host_gid = spec->run_as_gid > 0 ? (gid_t)spec->run_as_gid
						   : (gid_t)spec->run_as_uid;
	}
	rlimit_prepare(&spec->limits, &c->rl);
	rlimit_per_user(&c->rl);
	return c;
}

/* Root without run_as (or run_as 0): the sandbox's own host ids, leased for its life. */
static int lease_ids(struct ctr *c, const agentd_sandbox *sb, agentd_error *err)
{
	if (c->unprivileged || c->host_uid)
		return 0;
	if (host_ids_lease(sb->id, &c->ids, err) < 0)
		return agentd_error_prefix(err, "sandbox host uid");
	c->host_uid = c->ids.uid;
	c->host_gid = c->ids.gid;
	return 0;
}

/* issue 12: snapshots. The snapshot's workdir and tmp as read-only trees idmapped for the
 * sandbox's ids (its files are stored with the ids they have inside: snapshot.c), the
 * lower layers of its overlays. Root only: an unprivileged caller cannot idmap a mount (the
 * new sandbox then starts from a copy). 0, or -1 and nothing open. */
static int snapshot_lowers(const struct ctr *c, int seed_fd, int lowers[2])
{
	static const char *const names[2] = {"workdir", "tmp"};
	if (c->unprivileged)
		return -1;
	int userns = idmap_userns_new(c->inner_id, c->host_uid, c->host_gid);
	for (int i = 0; i < 2 && userns >= 0; i++)
		lowers[i] = idmap_tree(seed_fd, names[i], userns,
				       MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (userns >= 0)
		close(userns);
	if (lowers[0] >= 0 && lowers[1] >= 0)
		return 0;
	for (int i = 0; i < 2; i++)
		if (lowers[i] >= 0)
			close(lowers[i]);
	lowers[0] = lowers[1] = -1;
	return -1;
}

/* The root filesystem's plan, with the /etc files every sandbox copies from one pack
 * (mounts/cache.c) next to the work root: <dir of work root>/rootfs-cache. */
static int plan_root(const agentd_backend *b, const agentd_spec *spec, const struct ctr *c,
		     bool overlay, struct mount_plan *mp, agentd_error *err)
{
	int *layers = NULL; /* issue 13: img-root */
	if (c->image && ctr_image_layers(c, &layers, err) < 0)
		return agentd_error_prefix(err, "root filesystem");
	const char *slash = strrchr(b->work_root, '/');
	_cleanup_free_ char *cache =
		slash && slash != b->work_root
			? xasprintf("%.*s/rootfs-cache", (int)(slash - b->work_root), b->work_root)
			: xasprintf("%s/rootfs-cache", b->work_root);
	struct mount_plan_opts mo = {
		.cache_dir = cache,
		.sandbox_uid = c->inner_id,
		.sandbox_gid = c->inner_id,
		.hostname = "agentd",
		/* allowlist too: names resolve through the proxy, never by raw DNS */
		.network_none = spec->network.mode != AGENTD_NET_HOST,
		.overlay_scratch = overlay,
		.image_layers = c->image ? c->image->n_layers : 0,
		.writable_root = spec->writable_root,
	};
	if (mount_plan_prepare(spec, &mo, mp, err) < 0) {
		for (size_t i = 0; layers && i < c->image->n_layers; i++)
			close(layers[i]);
		free(layers);
		return agentd_error_prefix(err, "root filesystem");
	}
	/* Opened here: the sandbox's uid need not reach agentd's own sources. */
	mount_plan_open_sources(mp, c->host_uid, c->host_gid);
	if (layers)
		mount_plan_set_layers(mp, layers, c->image->n_layers);
	free(layers);
	return 0;
}

/* The host's ends of the init's channels: a kill pipe (one-shot), or a control socket and
 * a setup pipe (persistent), and the cgroup release (v1). */
static int open_channels(struct ctr_prep *p, bool once, agentd_error *err)
{
	if (once ? socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p->killp) < 0
		 : socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p->sp) < 0 ||
			   pipe2(p->setup, O_CLOEXEC) < 0)
		return agentd_error_errno(err, errno, "socketpair");
	/* A socketpair, not a pipe: the release is sent with MSG_NOSIGNAL (no SIGPIPE in a
	 * caller that did not ignore it, if the init already failed). */
	if (p->late_cgroup && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->go) < 0)
		return agentd_error_errno(err, errno, "socketpair");
	return 0;
}

/* Landlock's paths for the init's commands (all visible read-only, the scratch and the
 * policy's read-write paths writable), and the paths the sandbox's user must be able to
 * write. */
static void init_paths(struct init_args *ia, const agentd_spec *spec)
{
	static const char *const scratch[] = {"/tmp",	   "/dev/shm", "/dev/null",
					      "/dev/zero", "/dev/full", "/dev/tty",
					      "/dev/pts",  "/dev/ptmx"};
	size_t nrw = 0, ncheck = 0;
	ia->ll_ro[0] = "/";
	push_rw(ia, &nrw, spec->workdir);
	if (spec->image && spec->writable_root) /* issue 13: its root is its own overlay */
		push_rw(ia, &nrw, "/");
	for (size_t i = 0; i < ARRAY_SIZE(scratch); i++)
		push_rw(ia, &nrw, scratch[i]);
	for (size_t i = 0; i < spec->allowed_paths_rw.n; i++) {
		push_rw(ia, &nrw, spec->allowed_paths_rw.v[i]);
		if (ncheck < ARRAY_SIZE(ia->rw_check) - 1)
			ia->rw_check[ncheck++] = spec->allowed_paths_rw.v[i];
	}
	for (size_t i = 0; i < spec->n_bind_mounts; i++) {
		if (spec->bind_mounts[i].readonly)
			continue;
		push_rw(ia, &nrw, spec->bind_mounts[i].target);
		if (ncheck < ARRAY_SIZE(ia->rw_check) - 1)
			ia->rw_check[ncheck++] = spec->bind_mounts[i].target;
	}
	ia->ll_rw[nrw] = NULL;
	ia->rw_check[ncheck] = NULL;
}

/* The sandbox, its plan, seccomp program, cgroup and channels; the network namespace is
 * being made meanwhile. once: a one-shot sandbox (its init runs one command given at
 * clone time, then ends), else a persistent one served over a socketpair. */
int ctr_prepare(agentd_backend *b, const agentd_spec *spec, bool once, int seed_fd,
		agentd_sandbox **out, struct ctr_prep *p, agentd_error *err)
{
	memset(p, 0, sizeof(*p));
	p->nm.fd = -1;
	for (int i = 0; i < 2; i++)
		p->sp[i] = p->setup[i] = p->killp[i] = p->go[i] = -1;
	if (spec->network.mode == AGENTD_NET_ALLOWLIST && !(p->proxy = backend_egress_proxy(b, err)))
		return agentd_error_prefix(err, "egress proxy");
	agentd_sandbox *sb = agentd_sandbox_alloc(b, spec, &container_sandbox_ops, err);
	if (!sb)
		return -1;
	/* The network namespace is made on another core meanwhile (netns.c). */
	if (spec->network.mode == AGENTD_NET_HOST || netns_make_start(&p->nm) < 0) {
		memset(&p->nm, 0, sizeof(p->nm));
		p->nm.fd = -1;
	}
	struct ctr *c = ctr_new(spec);
	sb->priv = c;
	if (lease_ids(c, sb, err) < 0)
		goto fail;
	/* issue 13: img-root. Its defaults apply to sb's spec, what the plan reads. */
	if (sb->spec.image && ctr_image_acquire(b, sb, c, err) < 0)
		goto fail;
	spec = &sb->spec;
	int lowers[2] = {-1, -1};
	p->overlay = seed_fd >= 0 && snapshot_lowers(c, seed_fd, lowers) == 0;
	if (plan_root(b, spec, c, p->overlay, &p->mp, err) < 0) {
		for (int i = 0; i < 2; i++)
			if (lowers[i] >= 0)
				close(lowers[i]);
		goto fail;
	}
	if (p->overlay)
		mount_plan_set_lowers(&p->mp, lowers);
	trace_mark("mount plan built");
	struct seccomp_opts so = {.profile = spec->seccomp_profile};
	if (seccomp_prepare(&so, &p->sc, err) < 0) {
		agentd_error_prefix(err, "seccomp");
		goto fail;
	}
	trace_mark("seccomp ready");
	/* v1 has no CLONE_INTO_CGROUP: the init is moved in after the clone anyway, so the
	 * cgroup is made while it sets up its root (ctr_spawn_init). */
	p->late_cgroup = cgroup_join_after_clone();
	if ((!p->late_cgroup && ctr_make_cgroup(sb, err) < 0) || open_channels(p, once, err) < 0)
		goto fail;
	p->ia.rl = &c->rl;
	init_paths(&p->ia, spec);
	init_plan(p, c, spec, once);
	*out = sb;
	return 0;

fail:
	ctr_prep_free(p);
	ctr_sandbox_free(sb);
	return -1;
}

/* Clone the init with every namespace, inside the network namespace netns.c made. */
int ctr_spawn_init(agentd_sandbox *sb, struct ctr_prep *p, agentd_error *err)
{
	struct ctr *c = sb->priv;
	uint64_t flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS |
			 CLONE_NEWIPC | CLONE_NEWCGROUP;
	int netfd = -1, saved_net = -1;
	if (p->nm.started && (netfd = netns_make_finish(&p->nm, err)) < 0)
		return agentd_error_prefix(err, "network");
	trace_mark("network namespace ready");
	if (netfd >= 0) {
		if (netns_enter_for_clone(netfd, &saved_net) < 0) {
			agentd_error_errno(err, errno, "network: join the sandbox's namespace");
			close(netfd);
			return -1;
		}
		p->ia.jail.loopback = false; /* netns.c's has lo up, and is not the init's */
	} else if (sb->spec.network.mode != AGENTD_NET_HOST) {
		flags |= CLONE_NEWNET;
	}
	struct spawn_opts sop = {
		.clone_flags = flags,
		/* Its user namespace is the sandbox uid's, not root's: what it queues,
		 * watches or locks is charged to that uid alone. */
		.ns_owner_uid = c->host_uid,
		.ns_owner_gid = c->host_gid,
		.cg = c->cg,
		.hold = true,	/* until its uid and gid maps are written */
		.child_fn = container_init_main,
		.child_arg = &p->ia,
	};
	if (p->late_cgroup) {
		sop.cg = NULL;
		sop.clone_flags &= ~(uint64_t)CLONE_NEWCGROUP; /* the init unshares it once moved */
	}
	struct spawned sp;
	int r = spawn_process(&sop, &sp, err);
	trace_mark("init cloned");
	if (r == 0 && (write_id_maps(c, sp.pid, err) < 0 || spawn_release(&sp, err) < 0)) {
		spawn_abort(&sp);
		r = -1;
	}
	trace_mark("id maps written");
	c->init_pid = sp.pid;
	c->init_pidfd = sp.pidfd;
	if (netfd >= 0) {
		netns_leave_after_clone(saved_net);
		close(netfd); /* the init holds the namespace now */
	}
	if (p->go[0] >= 0) {
		close(p->go[0]);
		p->go[0] = -1;
	}
	if (r < 0)
		return agentd_error_prefix(err, "start the sandbox init");
	if (p->late_cgroup) {
		/* The init builds its root meanwhile; it goes on once it is in the cgroup. */
		if (ctr_make_cgroup(sb, err) < 0)
			goto kill;
		/* An init that failed its setup (a read-write path it cannot write...) is gone
		 * or going: ESRCH and EPIPE are not ours to report, its report says why. */
		if ((r = cgroup_attach_pid(c->cg, c->init_pid)) < 0 && r != -ESRCH) {
			agentd_error_errno(err, -r, "cgroup: move the init in");
			goto kill;
		}
		if (r == 0 && send(p->go[1], "g", 1, MSG_NOSIGNAL) != 1 && errno != EPIPE &&
		    errno != ECONNRESET) {
			agentd_error_errno(err, errno, "release the init");
			goto kill;
		}
	}
	trace_mark("init released");
	return 0;
kill:
	sys_pidfd_send_signal(c->init_pidfd, SIGKILL);
	return -1;
}
