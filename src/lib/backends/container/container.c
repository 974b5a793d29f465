/* container.c: the container backend, host side — user, mount, pid, net, uts, ipc and
 * cgroup namespaces, a fresh root, and a small init (PID 1, container_init.c) that holds the
 * sandbox and forks each exec on request, so one sandbox serves many commands; a one-shot
 * run hands its command to the init at clone time and ends with it (ctr_run_once).
 *
 * The init is a clone3 child of agentd that never execs: its mm belongs to the host user
 * namespace and it is non-dumpable, so nothing inside can open /proc/1/exe (agentd's own
 * binary, CVE-2019-5736) or ptrace it. */
#include "lib/backends/container/container.h"

/* ------------------------------------------------------------- host side */

static int write_id_maps(const struct ctr *c, pid_t pid, agentd_error *err)
{
	char path[64], map[64];
	snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
	snprintf(map, sizeof(map), "%u %u 1\n", AGENT_ID, (unsigned)c->host_uid);
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
	snprintf(map, sizeof(map), "%u %u 1\n", AGENT_ID, (unsigned)c->host_gid);
	if ((r = write_file_at(AT_FDCWD, path, map)) < 0)
		return agentd_error_errno(err, -r, "write gid_map");
	return 0;
}

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
		if (poll(&p, 1, DESTROY_WAIT_MS) <= 0 && c->cg)
			cgroup_kill_all(c->cg);
		else if (poll(&p, 1, 0) <= 0)
			kill(c->init_pid, SIGKILL);
		siginfo_t si;
		waitid((idtype_t)P_PIDFD, (id_t)c->init_pidfd, &si, WEXITED);
		close(c->init_pidfd);
		c->init_pidfd = -1;
	}
}

/* The init sent its listener before it said ready: it is queued on the control socket. */
static int attach_proxy(struct ctr *c, agentd_proxy *proxy, const char *id,
			const agentd_strv *allow, agentd_error *err)
{
	struct ctl_msg m;
	int fds[CTL_MAX_FDS], nfds;
	ssize_t n = ctl_recv(c->ctl, &m, fds, &nfds, MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(m) || m.op != OP_PROXY_FD || nfds != 1) {
		ctl_close_fds(fds);
		return agentd_error_set(err, EPROTO, "sandbox init: no egress proxy listener");
	}
	int fd = fds[0];
	if (agentd_proxy_add_sandbox(proxy, fd, id, allow, err) < 0)
		return agentd_error_prefix(err, "egress proxy");
	c->proxy = proxy;
	return 0;
}

static void ctr_free(struct ctr *c, const agentd_backend *b, const char *id)
{
	if (!c)
		return;
	if (c->workdir_fd >= 0)
		close(c->workdir_fd);
	if (c->proxy)
		agentd_proxy_remove_sandbox(c->proxy, id);
	ctr_stop_init(c);
	trace_mark("init exited");
	if (c->cg) {
		cgroup_destroy(c->cg);
		janitor_forget_cgroup(id);
		trace_mark("cgroup removed");
	}
	if (c->snap_dir) {
		sandbox_dir_remove(b->work_root, id);
		janitor_forget_dir(c->snap_dir);
	}
	free(c->snap_dir);
	pthread_mutex_destroy(&c->lock);
	free(c);
}


static void push_rw(struct init_args *a, size_t *n, const char *path)
{
	if (*n < ARRAY_SIZE(a->ll_rw) - 1)
		a->ll_rw[(*n)++] = path;
}

/* Everything a sandbox needs before its init is cloned, built by ctr_prepare. */
struct ctr_prep {
	struct mount_plan mp;
	struct seccomp_prog sc;
	struct netns_maker nm;
	struct init_args ia;
	struct init_once once;
	int sp[2];		/* control socketpair (persistent sandboxes) */
	int setup[2];		/* setup report pipe (persistent sandboxes) */
	int killp[2];		/* one-shot: the host's kill request to the init */
	int go[2];		/* cgroup v1: "joined" to the init, after the clone */
	bool late_cgroup;	/* the cgroup is made and joined after the clone */
	agentd_proxy *proxy;	/* allowlist: the backend's egress proxy */
};

static void ctr_prep_free(struct ctr_prep *p)
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

static void ctr_sandbox_free(agentd_sandbox *sb)
{
	ctr_free(sb->priv, sb->backend, sb->id);
	agentd_spec_free(&sb->spec);
	agentd_sandbox_caps_free(&sb->caps);
	free(sb);
}

static int ctr_make_cgroup(agentd_sandbox *sb, agentd_error *err)
{
	struct ctr *c = sb->priv;
	c->cg = cgroup_create(sb->id, &sb->spec.limits, err);
	if (!c->cg)
		return agentd_error_prefix(err, "cgroup");
	janitor_watch_cgroup(sb->id);
	trace_mark("cgroup made");
	return 0;
}

/* The init's confinement (jail/pipeline.c): its ids, root, network, cgroup wait, fds at
 * fixed numbers, Landlock paths and seccomp program. A persistent sandbox's init keeps its
 * control socket and setup pipe. */
static void init_plan(struct ctr_prep *p, const struct ctr *c, const agentd_spec *spec)
{
	struct init_args *ia = &p->ia;
	struct jail_init_plan *jp = &ia->jail;
	bool allowlist = spec->network.mode == AGENTD_NET_ALLOWLIST;
	*jp = (struct jail_init_plan){
		.uid = AGENT_ID,
		.gid = AGENT_ID,
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
		.ll_deny_tcp = spec->network.mode == AGENTD_NET_NONE,
		.ll_slot = INIT_LANDLOCK_FD,
		.sc = &p->sc,
	};
	ia->listener_msg = (struct ctl_msg){.op = OP_PROXY_FD};
}

/* One-shot: setup failures are the command's failure report; the kill pipe takes the
 * control socket's place and the command's stdio follows the Landlock slot. */
static void init_plan_once(struct jail_init_plan *jp, const int cmd_fds[4], int kill_fd)
{
	jp->report_fd = cmd_fds[3];
	jp->place[0] = (struct fd_move){cmd_fds[3], INIT_SETUP_FD};
	jp->place[1] = (struct fd_move){kill_fd, INIT_CTL_FD};
	for (int i = 0; i < 3; i++)
		jp->place[2 + i] = (struct fd_move){cmd_fds[i], INIT_ONCE_FD + i};
	jp->nplace = 5;
	jp->close_from = INIT_ONCE_FD + 3;
}

/* The sandbox, its plan, seccomp program, cgroup and channels; the network namespace is
 * being made meanwhile. once: a one-shot sandbox (its init runs one command given at
 * clone time, then ends), else a persistent one served over a socketpair. */
static int ctr_prepare(agentd_backend *b, const agentd_spec *spec, bool once,
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
	struct ctr *c = xcalloc(1, sizeof(*c));
	c->ctl = -1;
	c->init_pidfd = -1;
	c->workdir_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	sb->priv = c;
	c->unprivileged = geteuid() != 0;
	if (c->unprivileged) {
		c->host_uid = geteuid();
		c->host_gid = getegid();
	} else {
		/* Never host root inside: the sandbox's user is an unprivileged host id. */
		c->host_uid = spec->run_as_uid > 0 ? (uid_t)spec->run_as_uid : NOBODY;
		c->host_gid = spec->run_as_gid > 0 ? (gid_t)spec->run_as_gid
						   : (spec->run_as_uid > 0 ? (gid_t)spec->run_as_uid
									   : NOBODY);
	}
	rlimit_prepare(&spec->limits, &c->rl);

	/* Prepared /etc and /dev skeletons shared by every sandbox (mounts/cache.c), next to the
	 * work root: <dir of work root>/rootfs-cache. */
	const char *slash = strrchr(b->work_root, '/');
	_cleanup_free_ char *cache =
		slash && slash != b->work_root
			? xasprintf("%.*s/rootfs-cache", (int)(slash - b->work_root), b->work_root)
			: xasprintf("%s/rootfs-cache", b->work_root);
	struct mount_plan_opts mo = {
		.cache_dir = cache,
		.sandbox_uid = AGENT_ID,
		.sandbox_gid = AGENT_ID,
		.hostname = "agentd",
		/* allowlist too: names resolve through the proxy, never by raw DNS */
		.network_none = spec->network.mode != AGENTD_NET_HOST,
	};
	if (mount_plan_prepare(spec, &mo, &p->mp, err) < 0) {
		agentd_error_prefix(err, "root filesystem");
		goto fail;
	}
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
	if (!p->late_cgroup && ctr_make_cgroup(sb, err) < 0)
		goto fail;
	if (once ? pipe2(p->killp, O_CLOEXEC) < 0
		 : socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p->sp) < 0 ||
			   pipe2(p->setup, O_CLOEXEC) < 0) {
		agentd_error_errno(err, errno, "socketpair");
		goto fail;
	}
	/* A socketpair, not a pipe: the release is sent with MSG_NOSIGNAL (no SIGPIPE in a
	 * caller that did not ignore it, if the init already failed). */
	if (p->late_cgroup && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->go) < 0) {
		agentd_error_errno(err, errno, "socketpair");
		goto fail;
	}

	struct init_args *ia = &p->ia;
	ia->rl = &c->rl;
	ia->ll_ro[0] = "/";
	size_t nrw = 0;
	push_rw(ia, &nrw, spec->workdir);
	push_rw(ia, &nrw, "/tmp");
	push_rw(ia, &nrw, "/dev/shm");
	push_rw(ia, &nrw, "/dev/null");
	push_rw(ia, &nrw, "/dev/zero");
	push_rw(ia, &nrw, "/dev/full");
	push_rw(ia, &nrw, "/dev/tty");
	push_rw(ia, &nrw, "/dev/pts");
	push_rw(ia, &nrw, "/dev/ptmx");
	size_t ncheck = 0;
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
	init_plan(p, c, spec);
	*out = sb;
	return 0;

fail:
	ctr_prep_free(p);
	ctr_sandbox_free(sb);
	return -1;
}

/* Clone the init with every namespace, inside the network namespace netns.c made. */
static int ctr_spawn_init(agentd_sandbox *sb, struct ctr_prep *p, agentd_error *err)
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

static int ctr_create(agentd_backend *b, const agentd_spec *spec, agentd_sandbox **out,
		      agentd_error *err)
{
	struct ctr_prep p;
	agentd_sandbox *sb;
	if (ctr_prepare(b, spec, false, &sb, &p, err) < 0)
		return -1;
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
	bool filtered = p.sc.active || strcmp(spec->seccomp_profile, "none") != 0;
	ctr_prep_free(&p);
	/* Nothing has run inside yet: this fd is the real workdir, and the files API resolves
	 * beneath it from now on, whatever the sandbox later renames or links. */
	c->workdir_fd = open_in_sandbox(c, spec->workdir, err);
	if (c->workdir_fd < 0) {
		agentd_error_prefix(err, "workdir");
		goto fail;
	}

	backend_caps_fill(sb, spec->network.mode != AGENTD_NET_NONE, filtered);
	landlock_system_ro_paths(&sb->caps.readable_paths);
	for (size_t i = 0; i < spec->allowed_paths_ro.n; i++)
		strv_push(&sb->caps.readable_paths, spec->allowed_paths_ro.v[i]);
	strv_push(&sb->caps.writable_paths, spec->workdir);
	strv_push(&sb->caps.writable_paths, "/tmp");
	for (size_t i = 0; i < spec->allowed_paths_rw.n; i++)
		strv_push(&sb->caps.writable_paths, spec->allowed_paths_rw.v[i]);
	*out = sb;
	return 0;

fail:
	ctr_prep_free(&p);
	ctr_sandbox_free(sb);
	return -1;
}

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

/* Hand the command of job j to the init: its fds and the payload. */
static int ctr_send_exec(struct ctr *c, const struct exec_job *j, uint64_t id,
			 agentd_error *err)
{
	const exec_request *req = j->req;
	_cleanup_close_ int mfd = exec_payload_encode(req->argv, req->envp, req->cwd, err);
	if (mfd < 0)
		return -1;
	struct ctl_msg m = {.op = OP_EXEC, .id = id};
	int fds[CTL_MAX_FDS] = {j->child_fds[0], j->child_fds[1], j->child_fds[2],
				j->child_fds[3], mfd};
	if (ctl_send(c->ctl, &m, fds, CTL_MAX_FDS) < 0)
		return agentd_error_errno(err, errno, "the sandbox is not running");
	return 0;
}

/* The command's environment; under allowlist every client is pointed at the proxy, the
 * only way out. */
static char **ctr_envp(const agentd_sandbox *sb, const agentd_command *cmd)
{
	const struct ctr *c = sb->priv;
	agentd_kvv extra = {0};
	if (c->proxy) {
		static const char *const vars[] = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
						   "http_proxy", "https_proxy", "all_proxy"};
		for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
			kvv_set(&extra, vars[i], "http://127.0.0.1:" STR(AGENTD_PROXY_PORT));
		kvv_set(&extra, "NO_PROXY", "");
		kvv_set(&extra, "no_proxy", "");
	}
	for (size_t i = 0; i < cmd->env.n; i++)
		kvv_set(&extra, cmd->env.v[i].key, cmd->env.v[i].value);
	char **envp = env_prepare(&sb->spec, &extra, sb->spec.workdir, "/tmp");
	kvv_free(&extra);
	return envp;
}

/* The exec engine's request for cmd in sb (envp built by the caller). */
static exec_request ctr_request(const agentd_sandbox *sb, const agentd_command *cmd,
				const agentd_exec_ctx *ctx, char **envp)
{
	return backend_exec_request(sb, cmd, ctx, envp,
				    cmd->workdir ? cmd->workdir : sb->spec.workdir,
				    ((struct ctr *)sb->priv)->cg);
}

static int ctr_exec(agentd_sandbox *sb, const agentd_command *cmd, const agentd_exec_ctx *ctx,
		    agentd_exec_output *out, agentd_error *err)
{
	struct ctr *c = sb->priv;
	pthread_mutex_lock(&c->lock);
	bool suspended = c->suspended;
	pthread_mutex_unlock(&c->lock);
	if (suspended)
		return agentd_error_set(err, EBUSY, "sandbox %s is suspended", sb->id);
	char **envp = ctr_envp(sb, cmd);
	exec_request req = ctr_request(sb, cmd, ctx, envp);
	pthread_mutex_lock(&c->lock);
	struct exec_kill k = {.c = c, .id = ++c->next_id};
	pthread_mutex_unlock(&c->lock);
	req.kill = ctr_kill_exec;
	req.kill_arg = &k;
	struct exec_job j;
	int r = exec_job_open(&j, &req, out, err);
	if (r == 0 && (r = ctr_send_exec(c, &j, k.id, err)) < 0)
		exec_job_close(&j);
	if (r == 0) {
		exec_job_started(&j, -1, -1, NULL);
		r = exec_job_wait(&j, err);
	}
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
	if (*killfd >= 0 && write(*killfd, "k", 1) < 0) {
		/* the init is gone, and its command with it */
	}
}

static int ctr_run_once(agentd_backend *b, const agentd_spec *spec, const agentd_command *cmd,
			const agentd_exec_ctx *ctx, agentd_exec_output *out,
			char id[AGENTD_ID_LEN], agentd_error *err)
{
	/* allowlist: the init hands the proxy its listener over the control socket of a
	 * persistent sandbox (create + exec + destroy) */
	if (spec->network.mode == AGENTD_NET_ALLOWLIST)
		return 1;
	struct ctr_prep p;
	agentd_sandbox *sb;
	if (ctr_prepare(b, spec, true, &sb, &p, err) < 0)
		return agentd_error_prefix(err, "create sandbox (container)");
	trace_mark("sandbox prepared");
	struct ctr *c = sb->priv;
	snprintf(id, AGENTD_ID_LEN, "%s", sb->id);
	char **envp = ctr_envp(sb, cmd);
	exec_request req = ctr_request(sb, cmd, ctx, envp);
	req.kill = once_kill;
	req.kill_arg = &p.killp[1];
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
	u->wall_time_ms = (uint64_t)(time(NULL) - sb->created_at) * 1000;
	return 0;
}

static int ctr_workdir_fd(agentd_sandbox *sb, uid_t *uid, gid_t *gid, agentd_error *err)
{
	struct ctr *c = sb->priv;
	return sandbox_workdir_dup(c->workdir_fd, c->host_uid, c->host_gid, uid, gid, err);
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
};

/* ------------------------------------------------------------- backend */

static int ctr_probe(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err)
{
	const agentd_platform *p = agentd_probe_platform();
	process_probe_common(caps, p);
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
	if (p->landlock_abi < 1)
		strv_push(&caps->warnings, "no Landlock: the mount namespace is the only "
					   "filesystem wall (no defence in depth)");
	return 0;
}

static const agentd_backend_ops container_ops = {
	.name = "container",
	.probe = ctr_probe,
	.create_sandbox = ctr_create,
};

int container_backend_new(const char *work_root, agentd_backend **out, agentd_error *err)
{
	*out = agentd_backend_alloc(&container_ops, work_root);
	backend_set_run_once(*out, ctr_run_once);
	return 0;
}
