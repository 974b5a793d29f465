/* oci.c: the oci backend — sandboxes as containers of a real OCI runtime (runc, crun) or
 * engine (podman, docker), one driver per tool behind struct oci_driver. This file picks
 * the driver (by the name the caller used, else by probe), and owns the sandbox's life
 * around the driver: its dir, network namespace and egress listener, cgroup read-back,
 * commands through the one exec engine, suspend, usage and a destroy that leaves nothing. */
#include "lib/backends/oci/oci.h"

#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <arpa/inet.h>
#include <netinet/in.h>

/* A driver's probe is a real attempt (a container run): a usable verdict is kept this long,
 * a refusal (a daemon not started yet, say) less. */
#define PROBE_CACHE_USABLE_S 600
#define PROBE_CACHE_REFUSED_S 30

/* Probe order for plain "oci": runtimes first, then engines (engine.c). */
static const struct oci_driver *const drivers[] = {&oci_runc_driver, &oci_crun_driver,
						    &oci_podman_driver, &oci_docker_driver};

static const struct oci_driver *const *all_drivers(size_t *n)
{
	*n = ARRAY_SIZE(drivers);
	return drivers;
}

static const struct oci_driver *driver_named(const char *name)
{
	size_t n;
	const struct oci_driver *const *v = all_drivers(&n);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i]->name, name))
			return v[i];
	return NULL;
}

/* ------------------------------------------------------------- probe cache */

struct probe_entry {
	const struct oci_driver *drv;
	time_t at;
	struct oci_probe p;
};
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static struct probe_entry probe_cache[4];

static void driver_probe(const struct oci_driver *d, const char *work_root, struct oci_probe *out)
{
	time_t now = time(NULL);
	pthread_mutex_lock(&probe_lock);
	struct probe_entry *e = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(probe_cache) && !e; i++)
		if (probe_cache[i].drv == d || !probe_cache[i].drv)
			e = &probe_cache[i];
	if (e && e->drv == d &&
	    now - e->at < (e->p.usable ? PROBE_CACHE_USABLE_S : PROBE_CACHE_REFUSED_S)) {
		*out = e->p;
		pthread_mutex_unlock(&probe_lock);
		return;
	}
	pthread_mutex_unlock(&probe_lock);
	memset(out, 0, sizeof(*out));
	d->probe(d, work_root, out);
	pthread_mutex_lock(&probe_lock);
	if (e) {
		e->drv = d;
		e->at = now;
		e->p = *out;
	}
	pthread_mutex_unlock(&probe_lock);
}

/* ------------------------------------------------------------- backend */

struct oci_backend {
	/* The driver the caller named (runc, crun, podman, docker), or NULL ("oci": the first
	 * usable one, found by probe). */
	const struct oci_driver *named;
};

/* The driver a sandbox of b uses: the named one, else the first usable. NULL + err. */
static const struct oci_driver *driver_pick(agentd_backend *b, agentd_error *err)
{
	struct oci_backend *ob = b->priv;
	struct oci_probe p;
	if (ob->named) {
		driver_probe(ob->named, b->work_root, &p);
		if (p.usable)
			return ob->named;
		agentd_error_set(err, ENOTSUP, "oci: %s is not usable here: %s", ob->named->name,
				 p.reason);
		return NULL;
	}
	size_t n;
	const struct oci_driver *const *v = all_drivers(&n);
	char why[AGENTD_ERROR_MAX] = "";
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		driver_probe(v[i], b->work_root, &p);
		if (p.usable)
			return v[i];
		if (len < sizeof(why))
			len += (size_t)snprintf(why + len, sizeof(why) - len, "%s%s: %s",
						len ? "; " : "", v[i]->name, p.reason);
	}
	agentd_error_set(err, ENOTSUP, "oci: no usable OCI runtime or engine here (%s)", why);
	return NULL;
}

static void probe_report(agentd_backend_caps *caps, const struct oci_driver *d,
			 const struct oci_probe *p)
{
	const char *kind = d->engine ? "engine" : "runtime";
	if (!p->found) {
		strv_pushf(&caps->warnings, "oci %s %s: not found: %s", kind, d->name, p->reason);
		return;
	}
	if (p->usable)
		strv_pushf(&caps->platform_features, "oci-%s:%s (%s)", kind, d->name, p->version);
	else
		strv_pushf(&caps->warnings, "oci %s %s (%s) refused: %s", kind, d->name, p->path,
			   p->reason);
}

static int oci_probe(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err)
{
	(void)err;
	const agentd_platform *pl = agentd_probe_platform();
	process_probe_common(caps, pl);
	size_t n;
	const struct oci_driver *const *v = all_drivers(&n);
	struct oci_backend *ob = b->priv;
	const struct oci_driver *chosen = NULL;
	struct oci_probe chosen_p = {0};
	for (size_t i = 0; i < n; i++) {
		/* a named driver's sandboxes need no other's attempt (each is a container run) */
		if (ob->named && v[i] != ob->named)
			continue;
		struct oci_probe p;
		/* issue 13: oci-engine. A named driver is the only one a sandbox can get: the
		 * others' real attempts (podman, a runtime's container) cost seconds */
		if (ob->named && v[i] != ob->named)
			continue;
		driver_probe(v[i], b->work_root, &p);
		probe_report(caps, v[i], &p);
		if (ob->named ? v[i] == ob->named : (!chosen && p.usable)) {
			chosen = v[i];
			chosen_p = p;
		}
	}
	caps->available = chosen && chosen_p.usable && caps->resource_limits;
	if (!caps->available) {
		if (ob->named)
			snprintf(caps->unavailable_reason, sizeof(caps->unavailable_reason),
				 "%s: %s", ob->named->name,
				 chosen_p.reason[0] ? chosen_p.reason : "needs a writable cgroup");
		else
			snprintf(caps->unavailable_reason, sizeof(caps->unavailable_reason),
				 chosen ? "needs a writable cgroup with memory+pids"
					: "no usable OCI runtime (runc, crun) or engine (podman, "
					  "docker) here: see the warnings");
		return 0;
	}
	strv_pushf(&caps->platform_features, "oci-driver:%s", chosen->name);
	static const agentd_policy_item isolation[] = {
		AGENTD_ITEM_FILESYSTEM, AGENTD_ITEM_BIND_MOUNTS, AGENTD_ITEM_NETWORK_NONE,
		AGENTD_ITEM_SECCOMP,
	};
	for (size_t i = 0; i < ARRAY_SIZE(isolation); i++)
		agentd_caps_enforce(caps, isolation[i]);
	if (chosen->engine)
		agentd_caps_cannot_enforce(caps, AGENTD_ITEM_NETWORK_ALLOWLIST,
					   "the %s driver runs containers with --network=none",
					   chosen->name);
	else
		agentd_caps_enforce(caps, AGENTD_ITEM_NETWORK_ALLOWLIST);
	agentd_caps_enforce(caps, AGENTD_ITEM_IMAGE);
	caps->filesystem_isolation = true;
	caps->process_isolation = true;
	caps->network_isolation = true;
	caps->syscall_filtering = true;
	caps->snapshots = !chosen->engine;
	strv_push(&caps->platform_features, "egress-proxy");
	return 0;
}

/* ------------------------------------------------------------- sandbox */

static struct oci_ctr *ctr_of(agentd_sandbox *sb)
{
	return sb->priv;
}

/* allowlist: a listener on the namespace's 127.0.0.1:AGENTD_PROXY_PORT, made by a thread
 * that entered it (a socket's namespace is the one it was made in). */
struct listener_job {
	int netfd;
	int fd;
	int err;
};
static void *listener_thread(void *arg)
{
	struct listener_job *j = arg;
	j->fd = -1;
	if (setns(j->netfd, CLONE_NEWNET) < 0) {
		j->err = errno;
		return NULL;
	}
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(AGENTD_PROXY_PORT),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 64) < 0) {
		j->err = errno;
		if (s >= 0)
			close(s);
		return NULL;
	}
	j->fd = s;
	return NULL;
}

static int attach_egress(agentd_sandbox *sb, struct oci_ctr *c, agentd_error *err)
{
	struct listener_job j = {.netfd = c->netns_fd, .fd = -1};
	pthread_t t;
	if ((errno = pthread_create(&t, NULL, listener_thread, &j)) != 0)
		return agentd_error_errno(err, errno, "egress listener thread");
	pthread_join(t, NULL);
	if (j.fd < 0)
		return agentd_error_errno(err, j.err, "egress listener in the sandbox's netns");
	agentd_proxy *proxy = backend_egress_proxy(sb->backend, err);
	if (!proxy) {
		close(j.fd);
		return agentd_error_prefix(err, "egress proxy");
	}
	if (agentd_proxy_add_sandbox(proxy, j.fd, sb->id, &sb->spec.network.allow, err) < 0)
		return agentd_error_prefix(err, "egress proxy");
	c->proxy = proxy;
	return 0;
}

/* The network namespace the container joins: agentd's own (so the egress listener can
 * be in it before anything runs), except for network "host". */
static int make_netns(agentd_sandbox *sb, struct oci_ctr *c, char **path, agentd_error *err)
{
	*path = NULL;
	if (sb->spec.network.mode == AGENTD_NET_HOST)
		return 0;
	struct netns_maker nm = {.fd = -1};
	if (netns_make_start(&nm) < 0)
		return agentd_error_set(err, EPERM, "network namespace: only root can make one");
	if ((c->netns_fd = netns_make_finish(&nm, err)) < 0)
		return agentd_error_prefix(err, "network namespace");
	*path = xasprintf("/proc/%d/fd/%d", (int)getpid(), c->netns_fd);
	if (sb->spec.network.mode == AGENTD_NET_ALLOWLIST && attach_egress(sb, c, err) < 0)
		return -1;
	return 0;
}

static int open_beneath(int dirfd, const char *path, uint64_t flags, agentd_error *err)
{
	struct open_how how = {.flags = flags | O_CLOEXEC,
			       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (fd < 0)
		return agentd_error_errno(err, errno, "open %s in the sandbox", path);
	return fd;
}

/* Its root and workdir, taken right after create, before any command ran. */
static int hold_root(struct oci_ctr *c, agentd_error *err)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/%d/root", (int)c->init_pid);
	c->root_fd = open(proc, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->root_fd < 0)
		return agentd_error_errno(err, errno, "open %s", proc);
	c->workdir_fd = open_beneath(c->root_fd, c->cfg.workdir, O_PATH | O_DIRECTORY, err);
	return c->workdir_fd < 0 ? -1 : 0;
}

/* The container's cgroup dirs in the hierarchies agentd does not use (cpuset, devices,
 * name=systemd...), which only the runtime's delete removes: gone too, in case it could
 * not (an init that died early, a runtime killed on its timeout). Empty dirs only: rmdir
 * refuses a cgroup that still holds a process. */
static void remove_runtime_cgroups(const char *name)
{
	_cleanup_free_ char *pattern = xasprintf("/sys/fs/cgroup/*/agentd/%s", name);
	glob_t g;
	if (glob(pattern, GLOB_NOSORT | GLOB_ONLYDIR, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		_cleanup_free_ char *units = xasprintf("%s/u*", g.gl_pathv[i]);
		glob_t u;
		if (glob(units, GLOB_NOSORT | GLOB_ONLYDIR, NULL, &u) == 0) {
			for (size_t k = 0; k < u.gl_pathc; k++)
				rmdir(u.gl_pathv[k]);
			globfree(&u);
		}
		rmdir(g.gl_pathv[i]);
	}
	globfree(&g);
}

/* spec->image from the backend's store, held (its use lock) for the sandbox's life. An
 * engine takes the reference to its own store instead. */
/* Whether the topmost layer naming one of the usual sleep paths has it as a file or a
 * symlink (busybox's), not as a whiteout (a 0/0 character device). Names only: what they
 * resolve to is the image's own business, run inside its root. */
static bool image_has_sleep(const agentd_image_lease *l)
{
	static const char *const paths[] = {"bin/sleep", "usr/bin/sleep", "sbin/sleep",
					    "usr/sbin/sleep"};
	for (size_t p = 0; p < ARRAY_SIZE(paths); p++)
		for (size_t i = l->n_layers; i-- > 0;) {
			struct stat st;
			if (fstatat(l->layer_fds[i], paths[p], &st,
				    AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
				continue;
			if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))
				return true;
			break;	/* a whiteout or a directory hides the lower layers' */
		}
	return false;
}

static int acquire_image(agentd_backend *b, struct oci_ctr *c, const char *ref,
			 agentd_error *err)
{
	if (c->drv->engine)
		return 0;
	agentd_image_store *s = agentd_backend_image_store(b, err);
	if (!s || agentd_image_acquire(s, ref, &c->lease, err) < 0)
		return agentd_error_prefix(err, "oci: image %s", ref);
	/* The init is the host's tini over the image's own sleep: without one it would exit
	 * at once, and the create fail at random with a runtime's "stopped container". */
	if (!image_has_sleep(c->lease))
		return agentd_error_set(err, ENOTSUP,
					"oci: image %s has no sleep in /bin, /usr/bin, /sbin or "
					"/usr/sbin: the runc driver's init (tini) runs it for as long "
					"as the sandbox lives (the container backend needs none)",
					ref);
	return 0;
}

static void oci_ctr_free(struct oci_ctr *c, const char *id)
{
	if (!c)
		return;
	if (c->drv)
		c->drv->destroy(c);
	if (c->cg) {
		cgroup_destroy(c->cg);	/* what the driver's delete left, if anything */
		janitor_forget_cgroup(c->cfg.cgroup_name);
	}
	if (c->cfg.cgroup_name)
		remove_runtime_cgroups(c->cfg.cgroup_name);
	int fds[] = {c->root_fd, c->workdir_fd, c->netns_fd};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (c->proxy)
		agentd_proxy_remove_sandbox(c->proxy, id);
	if (c->dir) {
		rm_rf(c->dir);
		janitor_forget_dir(c->dir);
	}
	oci_config_free(&c->cfg);
	agentd_image_lease_free(c->lease);
	free(c->dir);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void oci_sandbox_free(agentd_sandbox *sb)
{
	oci_ctr_free(sb->priv, sb->id);
	sb->priv = NULL;
	backend_sandbox_free(sb);
}

static const agentd_sandbox_ops oci_sandbox_ops;

static int oci_create(agentd_backend *b, const agentd_spec *spec, agentd_sandbox **out,
		      agentd_error *err)
{
	const struct oci_driver *drv = driver_pick(b, err);
	if (!drv)
		return -1;
	/* an engine's container layer lies in the engine's storage, unbounded by
	 * max_write_bytes: refused rather than left unbounded */
	if (spec->writable_root && drv->engine)
		return agentd_error_set(err, ENOTSUP,
					"oci: %s: writable_root: the engine's container layer "
					"cannot be bounded by limits.max_write_bytes (use the runc "
					"driver or the container backend)", drv->name);
	agentd_sandbox *sb = agentd_sandbox_alloc(b, spec, &oci_sandbox_ops, err);
	if (!sb)
		return -1;
	struct oci_ctr *c = xcalloc(1, sizeof(*c));
	c->root_fd = c->workdir_fd = c->netns_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	sb->priv = c;
	c->drv = drv;
	_cleanup_free_ char *netns = NULL;
	c->dir = xasprintf("%s/%s", b->work_root, sb->id);
	if (mkdir_p(b->work_root, 0711) < 0 || mkdir(c->dir, 0700) < 0) {
		agentd_error_errno(err, errno, "oci: mkdir %s", c->dir);
		free(c->dir);
		c->dir = NULL;
		goto fail;
	}
	janitor_watch_dir(c->dir);
	/* an engine's image is in the engine's own store (issue 13: oci-engine) */
	if (spec->image && !drv->engine && acquire_image(b, c, spec->image, err) < 0)
		goto fail;
	if (make_netns(sb, c, &netns, err) < 0 ||
	    oci_config_build(&sb->spec, sb->id, c->lease, netns, AGENTD_PROXY_PORT, &c->cfg,
			     err) < 0)
		goto fail;
	janitor_watch_cgroup(c->cfg.cgroup_name);
	if (drv->create(c, err) < 0) {
		agentd_error_prefix(err, "oci: %s", drv->name);
		goto fail;
	}
	c->cg = cgroup_open_runtime(c->cfg.cgroup_name, err);
	if (!c->cg) {
		agentd_error_prefix(err, "oci: the container's cgroup");
		goto fail;
	}
	if (hold_root(c, err) < 0)
		goto fail;
	backend_caps_fill(sb, spec->network.mode != AGENTD_NET_NONE, c->cfg.seccomp_json);
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
	oci_sandbox_free(sb);
	return -1;
}

/* ------------------------------------------------------------- exec */

static int refuse_suspended(agentd_sandbox *sb, agentd_error *err)
{
	struct oci_ctr *c = ctr_of(sb);
	pthread_mutex_lock(&c->lock);
	bool s = c->suspended;
	pthread_mutex_unlock(&c->lock);
	return s ? agentd_error_set(err, EBUSY, "sandbox %s is suspended", sb->id) : 0;
}

static char **oci_envp(const agentd_sandbox *sb, const struct oci_ctr *c,
		       const agentd_command *cmd)
{
	agentd_kvv extra = {0};
	oci_image_env(&sb->spec, c->lease, &extra);
	return backend_envp(sb, &extra, c->proxy != NULL, cmd);
}

static int scratch_workdir(void *arg)
{
	return ((struct oci_ctr *)arg)->workdir_fd;
}

/* What the runtime says when it could not start the command (its own exit 255 and
 * `exec: "<argv0>": <why>`), as the exit codes agentd promises (docs/exit-codes.md): 127
 * not found, 126 not executable, 125 any other failure of its own. */
static void map_start_failure(agentd_exec_output *out)
{
	if (out->exit_code != 255 || !out->err)
		return;
	const char *e = (const char *)out->err;
	size_t n = out->err_len;
	if (!memmem(e, n, "exec failed: ", 13))
		return;
	static const char what[] = "start container process: exec: \"";
	const char *x = memmem(e, n, what, sizeof(what) - 1);
	if (x && (memmem(x, n - (size_t)(x - e), "not found", 9) ||
		  memmem(x, n - (size_t)(x - e), "no such file", 12)))
		out->exit_code = 127;
	else if (x && memmem(x, n - (size_t)(x - e), "permission denied", 17))
		out->exit_code = 126;
	else
		out->exit_code = 125;
}

static int oci_exec(agentd_sandbox *sb, const agentd_command *cmd, const agentd_exec_ctx *ctx,
		    agentd_exec_output *out, agentd_error *err)
{
	struct oci_ctr *c = ctr_of(sb);
	if (refuse_suspended(sb, err) < 0)
		return -1;
	struct oci_exec x = {.argv = cmd->argv, .cwd = cmd->workdir ? cmd->workdir
								: sb->spec.workdir,
			     .uid = c->cfg.uid, .gid = c->cfg.gid};
	struct cgroup *unit = NULL;
	pthread_mutex_lock(&c->lock);
	uint64_t n = ++c->next_exec, spent = c->cpu_ms;
	pthread_mutex_unlock(&c->lock);
	if (c->drv->exec_in_unit) {
		char name[32];
		snprintf(name, sizeof(name), "u%" PRIu64, n);
		if (!(unit = cgroup_create_child(c->cg, name, err)) ||
		    cgroup_runtime_paths(unit, &x.unit_paths) < 0) {
			cgroup_destroy(unit);
			return agentd_error_prefix(err, "exec %s: kill unit", cmd->argv[0]);
		}
		x.unit = unit;
	}
	char **envp = oci_envp(sb, c, cmd);
	x.envp = envp;
	agentd_strv argv = {0};
	int r = c->drv->exec_argv(c, &x, &argv, err);
	if (r == 0) {
		static char *const host_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
		exec_request req = backend_exec_request(sb, cmd, ctx, (char **)host_env, NULL, NULL);
		char **hv = xcalloc(argv.n + 1, sizeof(char *));
		memcpy(hv, argv.v, argv.n * sizeof(char *));
		req.argv = hv;
		req.unit = unit;
		req.budget_cg = c->cg;
		req.cpu_spent_ms = spent;
		req.scratch_fd = scratch_workdir;
		req.scratch_arg = c;
		r = c->drv->exec_run ? c->drv->exec_run(c, &x, &req, out, err)
				     : exec_run(&req, out, err);
		free(hv);
		if (r == 0) {
			map_start_failure(out);
			pthread_mutex_lock(&c->lock);
			c->cpu_ms += out->usage.cpu_time_ms;
			pthread_mutex_unlock(&c->lock);
		}
	}
	/* a unit's tree dies with it; without one, the driver's way */
	if (!unit && c->drv->exec_kill)
		c->drv->exec_kill(c, &x);
	if (x.file) {
		unlink(x.file);
		free(x.file);
	}
	strv_free(&argv);
	strv_free(&x.unit_paths);
	env_free(envp);
	cgroup_destroy(unit);
	return r;
}

/* ------------------------------------------------------------- the rest */

static bool oci_is_alive(agentd_sandbox *sb)
{
	struct oci_ctr *c = ctr_of(sb);
	return c->init_pid > 0 && kill(c->init_pid, 0) == 0 && cgroup_is_populated(c->cg);
}

static int oci_pause(agentd_sandbox *sb, bool pause, agentd_error *err)
{
	struct oci_ctr *c = ctr_of(sb);
	pthread_mutex_lock(&c->lock);
	int r = 0;
	if (c->suspended == pause)
		r = agentd_error_set(err, EALREADY, "sandbox %s is already %s", sb->id,
				     pause ? "suspended" : "running");
	else if ((r = (pause ? c->drv->pause : c->drv->resume)(c, err)) == 0)
		c->suspended = pause;
	pthread_mutex_unlock(&c->lock);
	return r;
}

static int oci_suspend(agentd_sandbox *sb, agentd_error *err)
{
	return oci_pause(sb, true, err);
}

static int oci_resume(agentd_sandbox *sb, agentd_error *err)
{
	return oci_pause(sb, false, err);
}

static int oci_usage(agentd_sandbox *sb, agentd_usage *u, agentd_error *err)
{
	struct oci_ctr *c = ctr_of(sb);
	int r = cgroup_read_usage(c->cg, u);
	if (r < 0)
		return agentd_error_errno(err, -r, "read the container's cgroup usage");
	uint64_t cg_cpu;
	pthread_mutex_lock(&c->lock);
	if (cgroup_cpu_ms(c->cg, &cg_cpu) < 0)
		u->cpu_time_ms = c->cpu_ms;
	pthread_mutex_unlock(&c->lock);
	u->wall_time_ms = (uint64_t)(time(NULL) - sb->created_at) * 1000;
	return 0;
}

static int oci_workdir_fd(agentd_sandbox *sb, uid_t *uid, gid_t *gid, agentd_error *err)
{
	struct oci_ctr *c = ctr_of(sb);
	return sandbox_workdir_dup(c->workdir_fd, c->cfg.uid, c->cfg.gid, uid, gid, err);
}

static int oci_root_fd(agentd_sandbox *sb, uid_t *uid, gid_t *gid, agentd_error *err)
{
	struct oci_ctr *c = ctr_of(sb);
	return sandbox_workdir_dup(c->root_fd, c->cfg.uid, c->cfg.gid, uid, gid, err);
}

static int oci_destroy(agentd_sandbox *sb, agentd_error *err)
{
	(void)err;
	oci_ctr_free(sb->priv, sb->id);
	sb->priv = NULL;
	return 0;
}

static const agentd_sandbox_ops oci_sandbox_ops = {
	.exec = oci_exec,
	.is_alive = oci_is_alive,
	.suspend = oci_suspend,
	.resume = oci_resume,
	.usage = oci_usage,
	.destroy = oci_destroy,
	.workdir_fd = oci_workdir_fd,
	.root_fd = oci_root_fd,
	.snapshot_to = oci_snapshot_to,
	.restore_from = oci_restore_from,
};

static void oci_free_backend(agentd_backend *b)
{
	free(b->priv);
}

static const agentd_backend_ops oci_ops = {
	.name = "oci",
	.probe = oci_probe,
	.create_sandbox = oci_create,
	.free_backend = oci_free_backend,
};

int oci_backend_new(const char *work_root, agentd_backend **out, agentd_error *err)
{
	struct oci_backend *ob = xcalloc(1, sizeof(*ob));
	const char *asked = agentd_backend_requested_name();
	if (asked && strcmp(asked, "oci") != 0) {
		ob->named = driver_named(asked);
		if (!ob->named) {
			free(ob);
			return agentd_error_set(err, ENOENT,
						"oci: no %s driver in this build of agentd", asked);
		}
	}
	*out = agentd_backend_alloc(&oci_ops, work_root);
	(*out)->priv = ob;
	return 0;
}
