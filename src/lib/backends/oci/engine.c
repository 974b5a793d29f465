/* engine.c: the oci backend's engine drivers, docker and podman, driven through their CLIs
 * as seed 002's Docker session manager does: a sandbox is one `run -d` container of the
 * policy's image (the key image names an image of the engine's store) running `sleep
 * infinity`, hardened (every capability dropped, no_new_privs, read-only root, no network,
 * memory without swap, cpus, pids, explicit ulimits, sized tmpfs for /tmp and the workdir,
 * the user, the policy's volumes, agentd's seccomp profile), `exec` per command,
 * `pause`/`unpause`, `rm -f`. Its cgroup is made by the engine's runtime below agentd/
 * (--cgroup-parent=/agentd), where oci.c reads its usage and limit events back. The CLI's
 * command is not our child: its end comes to the job loop as an exit report, and a timeout
 * or cancel kills every process of the container but its init. Containers carry labels
 * naming their sandbox and owner: those of a dead agentd are removed by the next one. */
#include "lib/backends/oci/oci.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

/* What an engine CLI may print for one of our calls (ids, a version, an error). */
#define CLI_OUT_MAX (1u << 20)
/* How long one call (not an exec: the job loop bounds that) may take. */
#define CLI_TIMEOUT_MS 60000
#define LABEL_SANDBOX "agentd.sandbox"
#define LABEL_OWNER "agentd.owner"
/* podman's conmon, the runtime's parent, holds RLIMIT_NPROC at this */
#define NPROC_MAX 32768

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void close_pair(int p[2])
{
	close_fd(&p[0]);
	close_fd(&p[1]);
}

enum engine_kind { ENGINE_DOCKER, ENGINE_PODMAN };

/* One engine as this process drives it (made once). */
struct engine {
	enum engine_kind kind;
	const char *name;
	char *bin;			/* absolute path of the CLI, or NULL: not found */
	agentd_strv global;		/* options before the subcommand */
	pthread_mutex_t lock;
	bool swept;			/* leftovers of dead owners removed */
	char *listed;			/* podman: the probe's `ps` of agentd's containers */
};

/* A container's state beside oci.c's struct oci_ctr. */
struct eng_ctr {
	struct engine *e;
	char id[80];			/* the engine's container id */
	char sandbox[AGENTD_ID_LEN];
	char *seccomp_file;		/* in the sandbox's dir */
};

static char *find_in_path(const char *name);

/* The CLI ($AGENTD_DOCKER / $AGENTD_PODMAN name another) and its global options: docker
 * -H $AGENTD_DOCKER_HOST, else $DOCKER_HOST (the CLI's environment does not reach an exec);
 * podman --runtime runc where crun refuses the cgroup layout, --root $AGENTD_PODMAN_ROOT and
 * --runroot $AGENTD_PODMAN_RUNROOT when set. */
static void engine_init(struct engine *e, enum engine_kind kind)
{
	e->kind = kind;
	e->name = kind == ENGINE_DOCKER ? "docker" : "podman";
	pthread_mutex_init(&e->lock, NULL);
	const char *bin = getenv(kind == ENGINE_DOCKER ? "AGENTD_DOCKER" : "AGENTD_PODMAN");
	e->bin = find_in_path(bin && *bin ? bin : e->name);
	if (kind == ENGINE_DOCKER) {
		const char *host = getenv("AGENTD_DOCKER_HOST");
		if (!host || !*host)
			host = getenv("DOCKER_HOST");
		if (host && *host) {
			strv_push(&e->global, "-H");
			strv_push(&e->global, host);
		}
		return;
	}
	const agentd_platform *p = agentd_probe_platform();
	if (p->cgroup_version != 2 || p->cgroup_hybrid) {
		strv_push(&e->global, "--runtime");
		strv_push(&e->global, "runc");
	}
	const char *root = getenv("AGENTD_PODMAN_ROOT");
	const char *runroot = getenv("AGENTD_PODMAN_RUNROOT");
	if (root && *root) {
		strv_push(&e->global, "--root");
		strv_push(&e->global, root);
	}
	if (runroot && *runroot) {
		strv_push(&e->global, "--runroot");
		strv_push(&e->global, runroot);
	}
}

static struct engine engines[2];
static pthread_once_t engines_once = PTHREAD_ONCE_INIT;

static void engines_init(void)
{
	engine_init(&engines[ENGINE_DOCKER], ENGINE_DOCKER);
	engine_init(&engines[ENGINE_PODMAN], ENGINE_PODMAN);
}

static struct engine *engine_of(const struct oci_driver *d)
{
	pthread_once(&engines_once, engines_init);
	return &engines[strcmp(d->name, "docker") == 0 ? ENGINE_DOCKER : ENGINE_PODMAN];
}

/* ---------------------------------------------------------------- the CLI */

static char *find_in_path(const char *name)
{
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
	const char *path = getenv("PATH");
	_cleanup_free_ char *dup = xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	char *save = NULL;
	for (char *d = strtok_r(dup, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", d, name);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

/* argv of one CLI call: the binary, the global options, then args. */
static char **cli_argv(const struct engine *e, const agentd_strv *args)
{
	char **v = xcalloc(1 + e->global.n + args->n + 1, sizeof(char *));
	size_t n = 0;
	v[n++] = e->bin;
	for (size_t i = 0; i < e->global.n; i++)
		v[n++] = e->global.v[i];
	for (size_t i = 0; i < args->n; i++)
		v[n++] = args->v[i];
	return v;
}

/* The CLI's environment: ours (XDG dirs, proxies of the engine...) with vars ("K=V") on
 * top, which the container gets by name (--env NAME): values never appear on a command line
 * another user can read. */
static char **cli_envp(char *const *vars)
{
	size_t n = 0, nv = 0;
	for (char **p = environ; p && *p; p++)
		n++;
	for (char *const *v = vars; v && *v; v++)
		nv++;
	char **v = xcalloc(n + nv + 1, sizeof(char *));
	size_t k = 0;
	for (char **p = environ; p && *p; p++) {
		size_t len = strcspn(*p, "=");
		bool shadowed = false;
		for (char *const *q = vars; q && *q && !shadowed; q++)
			shadowed = strcspn(*q, "=") == len && !strncmp(*p, *q, len);
		if (!shadowed)
			v[k++] = xstrdup(*p);
	}
	for (char *const *q = vars; q && *q; q++)
		v[k++] = xstrdup(*q);
	return v;
}

static void envp_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

struct cli_child {
	char **argv, **envp;
	int fds[3];
};

static void cli_child_main(void *arg)
{
	struct cli_child *c = arg;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	for (int i = 0; i < 3; i++)
		if (dup2(c->fds[i], i) < 0)
			_exit(125);
	execve(c->argv[0], c->argv, c->envp);
	_exit(127);
}

static int open_high(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, ENGINE_HIGH_FD);
	close(fd);
	return hi;
}

static int pipe_high(int p[2])
{
	int raw[2];
	if (pipe2(raw, O_CLOEXEC) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		p[i] = fcntl(raw[i], F_DUPFD_CLOEXEC, ENGINE_HIGH_FD);
		close(raw[i]);
	}
	if (p[0] < 0 || p[1] < 0) {
		close_pair(p);
		return -1;
	}
	return 0;
}

/* Start the CLI with stdin, stdout, stderr on fds; held until the caller says go (so the
 * sweep of orphans knows it first). */
static int cli_spawn(struct cli_child *c, struct spawned *sp, agentd_error *err)
{
	struct spawn_opts so = {.hold = true, .child_fn = cli_child_main, .child_arg = c};
	if (spawn_process(&so, sp, err) < 0)
		return agentd_error_prefix(err, "start %s", c->argv[0]);
	sweep_keep(sp->pid);
	if (spawn_release(sp, err) < 0) {
		sweep_forget(sp->pid);
		spawn_abort(sp);
		return agentd_error_prefix(err, "start %s", c->argv[0]);
	}
	return 0;
}

static int cli_reap(struct spawned *sp, struct rusage *ru)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	while (syscall(SYS_waitid, P_PIDFD, sp->pidfd, &si, WEXITED, ru) < 0 && errno == EINTR)
		;
	sweep_forget(sp->pid);
	close_fd(&sp->pidfd);
	if (si.si_code == CLD_EXITED)
		return si.si_status;
	return 128 + si.si_status;
}

/* Read both pipes to EOF (each kept up to CLI_OUT_MAX) or until deadline (monotonic ms):
 * false then. */
static bool cli_drain(int out_fd, int err_fd, char **out, char **errs, uint64_t deadline)
{
	struct pollfd pf[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
	char *buf[2] = {xcalloc(1, 1), xcalloc(1, 1)};
	size_t len[2] = {0, 0};
	int open_n = 2;
	bool ok = true;
	while (open_n > 0) {
		uint64_t now = now_ms_monotonic();
		if (now >= deadline) {
			ok = false;
			break;
		}
		int pr = poll(pf, 2, (int)(deadline - now));
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char tmp[8192];
			ssize_t n = read(pf[i].fd, tmp, sizeof(tmp));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				pf[i].fd = -1;
				open_n--;
				continue;
			}
			if (len[i] + (size_t)n > CLI_OUT_MAX)
				continue;	/* drained, not kept */
			buf[i] = xrealloc(buf[i], len[i] + (size_t)n + 1);
			memcpy(buf[i] + len[i], tmp, (size_t)n);
			len[i] += (size_t)n;
			buf[i][len[i]] = '\0';
		}
	}
	*out = buf[0];
	*errs = buf[1];
	return ok;
}

/* Its first line, trimmed: what an error message quotes of the CLI's stderr. */
static void first_line(char *s)
{
	s[strcspn(s, "\n")] = '\0';
	for (size_t n = strlen(s); n && (s[n - 1] == ' ' || s[n - 1] == '\r'); n--)
		s[n - 1] = '\0';
}

/* Run the CLI with args; its exit code (-1 + err when it could not start). *out gets its
 * stdout, *errs its stderr (malloc'd, NUL-terminated; NULL = not wanted). */
static int cli_run(const struct engine *e, const agentd_strv *args, char *const *vars,
		   char **out, char **errs, agentd_error *err)
{
	if (!e->bin)
		return agentd_error_set(err, ENOENT, "%s: no %s CLI on PATH", e->name,
					e->name);
	int po[2] = {-1, -1}, pe[2] = {-1, -1};
	int devnull = open_high("/dev/null", O_RDONLY);
	if (devnull < 0 || pipe_high(po) < 0 || pipe_high(pe) < 0) {
		agentd_error_errno(err, errno, "%s: pipe", e->name);
		close_fd(&devnull);
		close_pair(po);
		close_pair(pe);
		return -1;
	}
	struct cli_child c = {.argv = cli_argv(e, args), .envp = cli_envp(vars),
			      .fds = {devnull, po[1], pe[1]}};
	struct spawned sp;
	int r = cli_spawn(&c, &sp, err);
	close_fd(&devnull);
	close_fd(&po[1]);
	close_fd(&pe[1]);
	char *o = NULL, *ee = NULL;
	if (r == 0) {
		/* an engine that does not answer (a daemon's socket that accepts and stays
		 * silent) must not hold agentd */
		bool done = cli_drain(po[0], pe[0], &o, &ee, now_ms_monotonic() + CLI_TIMEOUT_MS);
		if (!done)
			kill(sp.pid, SIGKILL);
		struct rusage ru;
		r = cli_reap(&sp, &ru);
		if (!done)
			r = agentd_error_set(err, ETIMEDOUT, "%s %s: no answer in %d s (killed)",
					     e->name, args->v[0], CLI_TIMEOUT_MS / 1000);
	}
	close_fd(&po[0]);
	close_fd(&pe[0]);
	free(c.argv);
	envp_free(c.envp);
	if (out)
		*out = o;
	else
		free(o);
	if (errs)
		*errs = ee;
	else
		free(ee);
	return r;
}

/* cli_run that must exit 0: else -1 + err "<engine> <what>: <its stderr's first line>". */
static int cli_ok(const struct engine *e, const agentd_strv *args, char *const *vars,
		  char **out, agentd_error *err)
{
	_cleanup_free_ char *errs = NULL;
	char *o = NULL;
	int r = cli_run(e, args, vars, &o, &errs, err);
	if (r < 0)
		return -1;
	if (r != 0) {
		free(o);
		first_line(errs);
		return agentd_error_set(err, EIO, "%s %s: %s", e->name, args->v[0],
					*errs ? errs : "failed");
	}
	if (out)
		*out = o;
	else
		free(o);
	return 0;
}


/* `rm -f ID`, killed at once (podman would give a `sleep` that ignores SIGTERM 10 s). */
static void rm_force(const struct engine *e, const char *id)
{
	agentd_strv a = {0};
	strv_push(&a, "rm");
	strv_push(&a, "-f");
	if (e->kind == ENGINE_PODMAN)
		strv_push(&a, "--time=0");
	strv_push(&a, id);
	cli_run(e, &a, NULL, NULL, NULL, NULL);
	strv_free(&a);
}

/* `ps` of every container agentd made (full ids). */
static void ps_owned_args(agentd_strv *a)
{
	static const char *const args[] = {"ps", "-a", "-q", "--no-trunc", "--filter",
					   "label=" LABEL_OWNER};
	for (size_t i = 0; i < ARRAY_SIZE(args); i++)
		strv_push(a, args[i]);
}

/* ---------------------------------------------------------------- probe */

/* Does this process have CAP_SYS_RESOURCE (raising a hard rlimit)? */
static bool have_sys_resource(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long eff = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	return eff & (1ull << 24);
}

/* Found, its version, and usable when `info` answers (docker: its daemon runs). */
static void eng_probe(const struct oci_driver *d, const char *work_root, struct oci_probe *p)
{
	(void)work_root;
	struct engine *e = engine_of(d);
	if (!e->bin) {
		snprintf(p->reason, sizeof(p->reason), "no %s CLI on PATH", e->name);
		return;
	}
	p->found = true;
	snprintf(p->path, sizeof(p->path), "%s", e->bin);
	if (geteuid() != 0) {
		snprintf(p->reason, sizeof(p->reason), "agentd drives %s as root only", e->name);
		return;
	}
	/* One call, each costs a few hundred ms. docker: `info` (its daemon answers, with its
	 * version); podman has no daemon and its `info` spends seconds asking dpkg for package
	 * versions: `ps` of agentd's containers opens its store and runtime config, and what it
	 * lists is what the sweep of dead owners looks at. */
	agentd_strv a = {0};
	if (e->kind == ENGINE_DOCKER) {
		strv_push(&a, "info");
		strv_push(&a, "--format");
		strv_push(&a, "{{.ServerVersion}}");
	} else {
		ps_owned_args(&a);
	}
	agentd_error err = {0};
	char *out = NULL;
	_cleanup_free_ char *errs = NULL;
	int r = cli_run(e, &a, NULL, &out, &errs, &err);
	if (r < 0)
		snprintf(p->reason, sizeof(p->reason), "%s", err.msg);
	if (r > 0) {
		first_line(errs);
		snprintf(p->reason, sizeof(p->reason), "`%s %s` failed: %s", e->name, a.v[0],
			 *errs ? errs : "no answer");
	}
	strv_free(&a);
	if (r != 0) {
		free(out);
		return;
	}
	if (e->kind == ENGINE_DOCKER) {
		first_line(out);
		snprintf(p->version, sizeof(p->version), "dockerd %s", out);
		free(out);
	} else {
		snprintf(p->version, sizeof(p->version), "podman");
		pthread_mutex_lock(&e->lock);
		free(e->listed);
		e->listed = out;
		pthread_mutex_unlock(&e->lock);
	}
	p->usable = true;
	/* what it runs with here, said where the probe is read */
	const agentd_platform *pl = agentd_probe_platform();
	size_t n = strlen(p->version);
	if (e->kind == ENGINE_PODMAN && (pl->cgroup_version != 2 || pl->cgroup_hybrid))
		n += (size_t)snprintf(p->version + n, n < sizeof(p->version) ? sizeof(p->version) - n : 0,
				      "; --runtime runc (crun refuses cgroup v1)");
	if (!have_sys_resource() && n < sizeof(p->version))
		snprintf(p->version + n, sizeof(p->version) - n,
			 "; explicit --ulimit (no CAP_SYS_RESOURCE)");
}

/* ---------------------------------------------------------------- leftovers */

/* "<pid>.<start time>" of pid: the owner label a later agentd checks. */
static void owner_tag(pid_t pid, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_free_ char *st = read_file_at(AT_FDCWD, path, 4096, NULL);
	unsigned long long start = 0;
	char *rp = st ? strrchr(st, ')') : NULL;
	/* after ") ": the state is field 3, the start time field 22 */
	if (rp)
		sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
			       "%*d %*d %*d %llu", &start);
	snprintf(buf, size, "%d.%llu", (int)pid, start);
}

static bool owner_alive(const char *tag)
{
	int pid = atoi(tag);
	if (pid <= 0)
		return false;
	char now[64];
	owner_tag(pid, now, sizeof(now));
	return strcmp(now, tag) == 0;
}

/* Once per process: remove the containers of sandboxes whose agentd died (a crash). */
static void sweep_dead_owners(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	bool done = e->swept;
	e->swept = true;
	pthread_mutex_unlock(&e->lock);
	if (done)
		return;
	pthread_mutex_lock(&e->lock);
	_cleanup_free_ char *ids = e->listed;	/* the probe's, when it listed them */
	e->listed = NULL;
	pthread_mutex_unlock(&e->lock);
	agentd_strv a = {0};
	if (!ids) {
		ps_owned_args(&a);
		int r = cli_run(e, &a, NULL, &ids, NULL, NULL);
		strv_free(&a);
		if (r != 0)
			return;
	}
	if (!ids || !*ids)
		return;
	/* the labels through inspect: docker's and podman's ps format them differently */
	strv_push(&a, "inspect");
	strv_push(&a, "--format");
	strv_push(&a, "{{.Id}} {{index .Config.Labels \"" LABEL_OWNER "\"}}");
	char *save = NULL;
	for (char *id = strtok_r(ids, "\n", &save); id; id = strtok_r(NULL, "\n", &save))
		strv_push(&a, id);
	_cleanup_free_ char *out = NULL;
	cli_run(e, &a, NULL, &out, NULL, NULL);
	strv_free(&a);
	save = NULL;
	for (char *l = out ? strtok_r(out, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
		char id[80], owner[64];
		if (sscanf(l, "%79s %63s", id, owner) == 2 && !owner_alive(owner))
			rm_force(e, id);	/* its runtime removes its cgroup */
	}
}

/* ---------------------------------------------------------------- create */

/* `run -d` of c's image, hardened (docs/backends.md#oci). */
static void run_args(const struct engine *e, const struct oci_ctr *c, const char *sandbox,
		     const char *seccomp_file, agentd_strv *a)
{
	const struct oci_config *cfg = &c->cfg;
	const agentd_limits *l = cfg->limits;
	char owner[64];
	owner_tag(getpid(), owner, sizeof(owner));
	strv_push(a, "run");
	strv_push(a, "-d");
	strv_pushf(a, "--name=%s", cfg->name);
	strv_pushf(a, "--label=%s=%s", LABEL_SANDBOX, sandbox);
	strv_pushf(a, "--label=%s=%s", LABEL_OWNER, owner);
	/* seed 002's hardening */
	strv_push(a, "--cap-drop=ALL");
	strv_push(a, "--security-opt=no-new-privileges");
	strv_push(a, "--read-only");
	if (e->kind == ENGINE_PODMAN) {
		strv_push(a, "--read-only-tmpfs=false");	/* no unsized /run, /var/tmp */
		/* its conmon stays in ours: an agentd/conmon it would make in every hierarchy
		 * outlives the container */
		strv_push(a, "--cgroups=no-conmon");
	}
	strv_push(a, "--network=none");
	if (l->max_memory_bytes) {
		strv_pushf(a, "--memory=%" PRIu64, l->max_memory_bytes);
		strv_pushf(a, "--memory-swap=%" PRIu64, l->max_memory_bytes);	/* no swap */
	}
	if (l->cpu_quota_pct)
		strv_pushf(a, "--cpus=%u.%02u", l->cpu_quota_pct / 100, l->cpu_quota_pct % 100);
	if (l->cpu_weight && l->cpu_weight != 100)
		strv_pushf(a, "--cpu-shares=%u", l->cpu_weight * 1024 / 100 + 2);
	if (l->max_processes)
		strv_pushf(a, "--pids-limit=%u", l->max_processes);
	/* explicit ulimits: an engine's defaults exceed what it may set without
	 * CAP_SYS_RESOURCE. RLIMIT_NPROC counts the uid's processes host-wide: only settable
	 * (pids.max bounds the container). */
	uint32_t nofile = l->max_open_files ? l->max_open_files : 1024;
	strv_pushf(a, "--ulimit=nofile=%u:%u", nofile, nofile);
	struct rlimit np = {.rlim_max = NPROC_MAX};
	getrlimit(RLIMIT_NPROC, &np);
	unsigned long long nproc = np.rlim_max < NPROC_MAX ? np.rlim_max : NPROC_MAX;
	strv_pushf(a, "--ulimit=nproc=%llu:%llu", nproc, nproc);
	strv_push(a, "--ulimit=core=0:0");
	uint64_t ws = l->max_write_bytes > OCI_TMPFS_MIN ? l->max_write_bytes : OCI_TMPFS_MIN;
	strv_pushf(a, "--shm-size=%" PRIu64, ws);
	for (size_t i = 0; i < cfg->n_mounts; i++) {
		const struct oci_mount *m = &cfg->mounts[i];
		if (!m->tmpfs)
			strv_pushf(a, "--volume=%s:%s:%s", m->source, m->target,
				       m->readonly ? "ro" : "rw");
		else if (strcmp(m->target, "/tmp") == 0)
			strv_pushf(a, "--tmpfs=/tmp:rw,nosuid,nodev,size=%" PRIu64 ",mode=1777",
				       m->tmpfs_bytes);
		else if (e->kind == ENGINE_PODMAN)	/* the user's: podman chowns with U */
			strv_pushf(a, "--tmpfs=%s:rw,nosuid,nodev,size=%" PRIu64 ",mode=0700,U",
				       m->target, m->tmpfs_bytes);
		else
			strv_pushf(a, "--tmpfs=%s:rw,nosuid,nodev,size=%" PRIu64
				       ",mode=0700,uid=%u,gid=%u", m->target, m->tmpfs_bytes,
				       (unsigned)cfg->uid, (unsigned)cfg->gid);
	}
	strv_pushf(a, "--workdir=%s", cfg->workdir);
	strv_pushf(a, "--user=%u:%u", (unsigned)cfg->uid, (unsigned)cfg->gid);
	strv_pushf(a, "--security-opt=seccomp=%s", seccomp_file ? seccomp_file : "unconfined");
	/* the runtime makes its cgroup agentd/<its name>: read back by oci.c */
	strv_push(a, "--cgroup-parent=/agentd");
	for (char **v = cfg->env; v && *v; v++)
		strv_pushf(a, "--env=%.*s", (int)strcspn(*v, "="), *v);
	strv_push(a, "--entrypoint=sleep");
	strv_push(a, cfg->image_ref);
	strv_push(a, "infinity");
}

/* The container's cgroup name under agentd/ (its runtime's), from /proc/<pid>/cgroup. */
static char *ctr_cgroup_name(pid_t pid, agentd_error *err)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	_cleanup_free_ char *t = read_file_at(AT_FDCWD, path, 65536, NULL);
	char *at = t ? strstr(t, ":/agentd/") : NULL;
	if (!at) {
		agentd_error_set(err, EIO, "the container's init (pid %d) is not below the cgroup "
			       "agentd/ it was given", (int)pid);
		return NULL;
	}
	at += strlen(":/agentd/");
	size_t n = strcspn(at, "/\n");
	if (n == 0 || at[n] == '/') {
		agentd_error_set(err, EIO, "unexpected cgroup of the container's init: %.*s",
				 (int)strcspn(at, "\n"), at);
		return NULL;
	}
	return strndup(at, n);
}

static int eng_create(struct oci_ctr *c, agentd_error *err)
{
	struct engine *e = engine_of(c->drv);
	if (!c->cfg.image_ref)
		return agentd_error_set(err, EINVAL, "the policy names no image (the key image: "
					"an image of %s's store)", e->name);
	sweep_dead_owners(e);
	struct eng_ctr *ec = xcalloc(1, sizeof(*ec));
	ec->e = e;
	c->drv_priv = ec;
	/* "agentd-<id>" */
	snprintf(ec->sandbox, sizeof(ec->sandbox), "%s", c->cfg.name + strlen("agentd-"));
	if (c->cfg.seccomp_json) {
		ec->seccomp_file = xasprintf("%s/seccomp.json", c->dir);
		int fd = open(ec->seccomp_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		int r = fd < 0 ? -1 : write_all(fd, c->cfg.seccomp_json, strlen(c->cfg.seccomp_json));
		int e2 = errno;
		if (fd >= 0)
			close(fd);
		if (r < 0)
			return agentd_error_errno(err, e2, "write %s", ec->seccomp_file);
	}
	agentd_strv a = {0};
	run_args(e, c, ec->sandbox, ec->seccomp_file, &a);
	_cleanup_free_ char *out = NULL;
	int r = cli_ok(e, &a, c->cfg.env, &out, err);
	strv_free(&a);
	if (r < 0)
		return -1;
	first_line(out);
	snprintf(ec->id, sizeof(ec->id), "%s", out);
	strv_push(&a, "inspect");
	strv_push(&a, "--format");
	strv_push(&a, "{{.State.Pid}}");
	strv_push(&a, ec->id);
	_cleanup_free_ char *pid = NULL;
	r = cli_ok(e, &a, NULL, &pid, err);
	strv_free(&a);
	if (r < 0)
		return -1;
	c->init_pid = (pid_t)atoi(pid);
	if (c->init_pid <= 0)
		return agentd_error_set(err, EIO, "%s inspect: the container is not running", e->name);
	char *name = ctr_cgroup_name(c->init_pid, err);
	if (!name)
		return -1;
	free(c->cfg.cgroup_name);
	c->cfg.cgroup_name = name;
	return 0;
}

/* ---------------------------------------------------------------- exec */

/* `exec -i` with the command's user, workdir and environment (by name: the values are in
 * the CLI's environment, eng_exec_run's). */
static int eng_exec_argv(struct oci_ctr *c, struct oci_exec *x, agentd_strv *out,
			 agentd_error *err)
{
	(void)err;
	struct eng_ctr *ec = c->drv_priv;
	struct engine *e = ec->e;
	strv_push(out, e->bin);
	for (size_t i = 0; i < e->global.n; i++)
		strv_push(out, e->global.v[i]);
	strv_push(out, "exec");
	strv_push(out, "-i");
	strv_pushf(out, "--workdir=%s", x->cwd);
	strv_pushf(out, "--user=%u:%u", (unsigned)x->uid, (unsigned)x->gid);
	for (char *const *v = x->envp; v && *v; v++)
		strv_pushf(out, "--env=%.*s", (int)strcspn(*v, "="), *v);
	strv_push(out, ec->id);
	for (char *const *v = x->argv; *v; v++)
		strv_push(out, *v);
	return 0;
}

struct eng_exec {
	struct oci_ctr *c;
	struct spawned sp;
	int rep_fd;			/* the job's report pipe: the CLI's end goes there */
};

/* Every process of the container but its init: the CLI names no tree of one exec, and
 * what a command leaves behind ends with it (one command runs at a time). */
static void eng_exec_kill(struct oci_ctr *c, const struct oci_exec *x)
{
	(void)x;
	if (c->cg && c->init_pid > 0)
		cgroup_kill_all_but(c->cg, c->init_pid);
}

static void eng_kill_cb(void *arg)
{
	eng_exec_kill(((struct eng_exec *)arg)->c, NULL);
}

/* The CLI's exit as the job's exit report: the engine passes the command's exit code on
 * (128+N for a signal). */
static void *eng_reaper(void *arg)
{
	struct eng_exec *x = arg;
	struct rusage ru;
	memset(&ru, 0, sizeof(ru));
	int code = cli_reap(&x->sp, &ru);
	child_report_exit(x->rep_fd, (code & 0xff) << 8, &ru);
	close_fd(&x->rep_fd);
	return NULL;
}

/* The command through the job loop with the container's cgroup for its usage, CPU budget
 * and limit events; a timeout or cancel kills in the container. */
static int eng_exec_run(struct oci_ctr *c, const struct oci_exec *x, exec_request *req,
			agentd_exec_output *out, agentd_error *err)
{
	struct eng_exec ex = {.c = c, .rep_fd = -1};
	req->cg = c->cg;
	req->kill = eng_kill_cb;
	req->kill_arg = &ex;
	struct exec_job j;
	if (exec_job_open(&j, req, out, err) < 0)
		return -1;
	struct cli_child cc = {.argv = (char **)req->argv, .envp = cli_envp(x->envp)};
	memcpy(cc.fds, j.child_fds, sizeof(cc.fds));
	int r = 0;
	pthread_t reaper;
	ex.rep_fd = fcntl(j.child_fds[3], F_DUPFD_CLOEXEC, ENGINE_HIGH_FD);
	if (ex.rep_fd < 0)
		r = agentd_error_errno(err, errno, "dup");
	else
		r = cli_spawn(&cc, &ex.sp, err);
	if (r == 0 && (errno = pthread_create(&reaper, NULL, eng_reaper, &ex)) != 0) {
		r = agentd_error_errno(err, errno, "pthread_create");
		kill(ex.sp.pid, SIGKILL);
		cli_reap(&ex.sp, &(struct rusage){0});
	}
	if (r < 0) {
		close_fd(&ex.rep_fd);
		exec_job_close(&j);
	} else {
		exec_job_started(&j, -1, -1, NULL);
		r = exec_job_wait(&j, err);
		pthread_join(reaper, NULL);
	}
	envp_free(cc.envp);
	return r;
}

/* ---------------------------------------------------------------- lifecycle */

static int eng_simple(struct oci_ctr *c, const char *verb, agentd_error *err)
{
	struct eng_ctr *ec = c->drv_priv;
	agentd_strv a = {0};
	strv_push(&a, verb);
	strv_push(&a, ec->id);
	int r = cli_ok(ec->e, &a, NULL, NULL, err);
	strv_free(&a);
	return r;
}

static int eng_pause(struct oci_ctr *c, agentd_error *err)
{
	return eng_simple(c, "pause", err);
}

static int eng_resume(struct oci_ctr *c, agentd_error *err)
{
	return eng_simple(c, "unpause", err);
}

static void eng_destroy(struct oci_ctr *c)
{
	struct eng_ctr *ec = c->drv_priv;
	if (!ec)
		return;
	/* a create that failed before the engine named it: by our name */
	rm_force(ec->e, ec->id[0] ? ec->id : c->cfg.name);
	if (ec->seccomp_file)
		unlink(ec->seccomp_file);
	free(ec->seccomp_file);
	free(ec);
	c->drv_priv = NULL;
}

/* The two differ only in their engine's name (engine_of). */
#define ENGINE_DRIVER(NAME)                                                                 \
	{                                                                                   \
		.name = NAME, .engine = true, .probe = eng_probe, .create = eng_create,     \
		.exec_argv = eng_exec_argv, .exec_kill = eng_exec_kill,                     \
		.exec_run = eng_exec_run, .pause = eng_pause, .resume = eng_resume,         \
		.destroy = eng_destroy,                                                     \
	}
const struct oci_driver oci_podman_driver = ENGINE_DRIVER("podman");
const struct oci_driver oci_docker_driver = ENGINE_DRIVER("docker");
