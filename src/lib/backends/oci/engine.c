/* engine.c: the oci backend's engine driver. A sandbox is one long-lived container of a
 * container engine (docker or podman, driven through its CLI as seed 002's Docker session
 * manager does): `run -d` of the policy's image with `sleep infinity` and the hardening
 * (every capability dropped, no_new_privs, read-only root, no network, memory without
 * swap, cpus, pids, ulimits, sized tmpfs for /tmp and the workdir, the user, the policy's
 * volumes, a seccomp profile), `exec` per command, `pause`/`unpause`, `rm -f`. The
 * container is put in agentd's own cgroup agentd/<id> (--cgroup-parent), which carries the
 * policy's limits too: its usage and limit events are read back from there, a timeout
 * kills every process of the container but its init, and nothing of it outlives destroy.
 * Containers carry labels naming their sandbox and owner, so those a crashed agentd left
 * are found and removed. */
#include "lib/backends/oci/engine.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

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

/* What an engine CLI may print for one of our calls (ids, a version, an error). */
#define CLI_OUT_MAX (1u << 20)
/* `info` is slow (podman: about a second); its answer holds this long. */
#define INFO_TTL_MS 5000
#define LABEL_SANDBOX "agentd.sandbox"
#define LABEL_OWNER "agentd.owner"
#define NAME_PREFIX "agentd-"

struct oci_engine {
	enum oci_engine_kind kind;
	char *bin;			/* absolute path of the CLI, or NULL: not found */
	agentd_strv global;		/* options before the subcommand */
	pthread_mutex_t lock;
	uint64_t info_at;		/* monotonic ms of the last `info`, 0 = never */
	bool info_ok;
	char info_msg[200];		/* version, or why not */
	bool swept;			/* leftovers of dead owners removed */
};

struct eng_sb {
	struct oci_engine *e;
	char name[AGENTD_ID_LEN + 16];	/* agentd-<id> */
	char ctr_id[80];
	pid_t init_pid;
	int init_pidfd;
	struct cgroup *cg;		/* agentd/<id>: the policy's limits */
	struct cgroup *ctr_cg;		/* the engine's cgroup of the container, below cg */
	pthread_mutex_t exec_lock;	/* one command at a time: its kill is the container's */
	pthread_mutex_t lock;
	uint64_t cpu_ms;		/* spent by earlier execs */
	bool suspended;
};

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

struct oci_engine *oci_engine_new(enum oci_engine_kind kind)
{
	struct oci_engine *e = xcalloc(1, sizeof(*e));
	e->kind = kind;
	pthread_mutex_init(&e->lock, NULL);
	const char *bin = getenv(kind == OCI_ENGINE_DOCKER ? "AGENTD_DOCKER" : "AGENTD_PODMAN");
	e->bin = find_in_path(bin && *bin ? bin : oci_engine_name(e));
	if (kind == OCI_ENGINE_DOCKER) {
		const char *host = getenv("AGENTD_DOCKER_HOST");
		if (host && *host) {
			strv_push(&e->global, "-H");
			strv_push(&e->global, host);
		}
	} else {
		/* crun refuses a hybrid or v1 cgroup layout; runc takes it. */
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
	return e;
}

void oci_engine_free(struct oci_engine *e)
{
	if (!e)
		return;
	free(e->bin);
	strv_free(&e->global);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

const char *oci_engine_name(const struct oci_engine *e)
{
	return e->kind == OCI_ENGINE_DOCKER ? "docker" : "podman";
}

/* argv of one CLI call: the binary, the global options, then args. */
static char **cli_argv(const struct oci_engine *e, const agentd_strv *args)
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

/* The CLI's environment: ours (DOCKER_HOST, XDG dirs...) with the sandbox variables vars
 * passed by name (`-e NAME`: values never appear on a command line). */
static char **cli_envp(const agentd_kvv *vars)
{
	size_t n = 0;
	for (char **p = environ; p && *p; p++)
		n++;
	char **v = xcalloc(n + (vars ? vars->n : 0) + 1, sizeof(char *));
	size_t k = 0;
	for (char **p = environ; p && *p; p++) {
		size_t len = strcspn(*p, "=");
		bool shadowed = false;
		for (size_t i = 0; vars && i < vars->n && !shadowed; i++)
			shadowed = strlen(vars->v[i].key) == len && !strncmp(*p, vars->v[i].key, len);
		if (!shadowed)
			v[k++] = xstrdup(*p);
	}
	for (size_t i = 0; vars && i < vars->n; i++)
		v[k++] = xasprintf("%s=%s", vars->v[i].key, vars->v[i].value);
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

/* Read both pipes to EOF (each kept up to CLI_OUT_MAX). */
static void cli_drain(int out_fd, int err_fd, char **out, char **errs)
{
	struct pollfd pf[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
	char *buf[2] = {xcalloc(1, 1), xcalloc(1, 1)};
	size_t len[2] = {0, 0};
	int open_n = 2;
	while (open_n > 0) {
		if (poll(pf, 2, -1) < 0) {
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
static int cli_run(const struct oci_engine *e, const agentd_strv *args, const agentd_kvv *vars,
		   char **out, char **errs, agentd_error *err)
{
	if (!e->bin)
		return agentd_error_set(err, ENOENT, "%s: no %s CLI on PATH", oci_engine_name(e),
					oci_engine_name(e));
	int po[2] = {-1, -1}, pe[2] = {-1, -1};
	int devnull = open_high("/dev/null", O_RDONLY);
	if (devnull < 0 || pipe_high(po) < 0 || pipe_high(pe) < 0) {
		agentd_error_errno(err, errno, "%s: pipe", oci_engine_name(e));
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
		cli_drain(po[0], pe[0], &o, &ee);
		struct rusage ru;
		r = cli_reap(&sp, &ru);
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
static int cli_ok(const struct oci_engine *e, const agentd_strv *args, const agentd_kvv *vars,
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
		return agentd_error_set(err, EIO, "%s %s: %s", oci_engine_name(e), args->v[0],
					*errs ? errs : "failed");
	}
	if (out)
		*out = o;
	else
		free(o);
	return 0;
}

static void args_add(agentd_strv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void args_add(agentd_strv *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	strv_push(a, s);
	free(s);
}

/* ---------------------------------------------------------------- probe */

/* `info`: the engine answers (its daemon runs, for docker), cached INFO_TTL_MS. */
static bool engine_info(struct oci_engine *e, char *msg, size_t size)
{
	pthread_mutex_lock(&e->lock);
	uint64_t now = now_ms_monotonic();
	if (!e->info_at || now - e->info_at > INFO_TTL_MS) {
		agentd_strv a = {0};
		strv_push(&a, "info");
		strv_push(&a, "--format");
		strv_push(&a, e->kind == OCI_ENGINE_DOCKER ? "{{.ServerVersion}}"
							    : "{{.Version.Version}}");
		agentd_error err = {0};
		_cleanup_free_ char *out = NULL, *errs = NULL;
		int r = cli_run(e, &a, NULL, &out, &errs, &err);
		strv_free(&a);
		if (r == 0) {
			first_line(out);
			snprintf(e->info_msg, sizeof(e->info_msg), "%s %s", oci_engine_name(e), out);
		} else if (r > 0) {
			first_line(errs);
			snprintf(e->info_msg, sizeof(e->info_msg), "`%s info` failed: %s",
				 oci_engine_name(e), *errs ? errs : "no answer");
		} else {
			snprintf(e->info_msg, sizeof(e->info_msg), "%s", err.msg);
		}
		e->info_ok = r == 0;
		e->info_at = now_ms_monotonic();
	}
	bool ok = e->info_ok;
	snprintf(msg, size, "%s", e->info_msg);
	pthread_mutex_unlock(&e->lock);
	return ok;
}

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

int oci_engine_probe(struct oci_engine *e, agentd_backend_caps *caps, agentd_error *err)
{
	(void)err;
	const agentd_platform *p = agentd_probe_platform();
	process_probe_common(caps, p);
	char msg[200];
	bool up = engine_info(e, msg, sizeof(msg));
	if (up)
		strv_push(&caps->platform_features, msg);
	static const agentd_policy_item walls[] = {
		AGENTD_ITEM_FILESYSTEM, AGENTD_ITEM_BIND_MOUNTS, AGENTD_ITEM_NETWORK_NONE,
		AGENTD_ITEM_RUN_AS, AGENTD_ITEM_IMAGE, AGENTD_ITEM_OPEN_FILES, AGENTD_ITEM_WRITE,
	};
	for (size_t i = 0; i < ARRAY_SIZE(walls); i++)
		agentd_caps_enforce(caps, walls[i]);
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_NETWORK_ALLOWLIST,
				   "the %s driver has no egress proxy: an engine's network "
				   "cannot carry agentd's proxy listener (use --backend runc "
				   "or container for allowlist)", oci_engine_name(e));
	if (p->seccomp_filter)
		agentd_caps_enforce(caps, AGENTD_ITEM_SECCOMP);
	else
		agentd_caps_cannot_enforce(caps, AGENTD_ITEM_SECCOMP, "no seccomp filter here");
	caps->filesystem_isolation = caps->process_isolation = caps->network_isolation = true;
	caps->syscall_filtering = p->seccomp_filter;
	caps->persistent_sandboxes = true;
	if (e->kind == OCI_ENGINE_PODMAN && (p->cgroup_version != 2 || p->cgroup_hybrid))
		strv_push(&caps->warnings, "podman runs with --runtime runc: crun refuses this "
					   "host's cgroup v1 (hybrid) layout");
	if (!have_sys_resource())
		strv_push(&caps->warnings, "explicit --ulimit nofile and nproc on every container: "
					   "agentd lacks CAP_SYS_RESOURCE, so the engine's "
					   "defaults (above the hard limits) cannot be set");
	caps->available = up && p->cgroup_writable && caps->resource_limits;
	if (!up)
		snprintf(caps->unavailable_reason, sizeof(caps->unavailable_reason), "%s", msg);
	else if (!caps->available)
		snprintf(caps->unavailable_reason, sizeof(caps->unavailable_reason),
			 "needs a writable cgroup with memory+pids for agentd/<id>: %.160s",
			 p->cgroup_reason[0] ? p->cgroup_reason : "none here");
	return 0;
}

/* `rm -f ID`: killed at once (podman would give a `sleep` that ignores SIGTERM its 10 s). */
static void rm_force(const struct oci_engine *e, const char *id)
{
	agentd_strv a = {0};
	strv_push(&a, "rm");
	strv_push(&a, "-f");
	if (e->kind == OCI_ENGINE_PODMAN)
		strv_push(&a, "--time=0");
	strv_push(&a, id);
	cli_run(e, &a, NULL, NULL, NULL, NULL);
	strv_free(&a);
}

/* ---------------------------------------------------------------- leftovers */

/* "<pid>.<start time>" of this process: the owner label a later agentd checks. */
static void owner_tag(pid_t pid, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_free_ char *st = read_file_at(AT_FDCWD, path, 4096, NULL);
	unsigned long long start = 0;
	char *rp = st ? strrchr(st, ')') : NULL;
	/* after ") ": state is field 3, start time field 22 */
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

/* Remove the containers (and their cgroups) of sandboxes whose agentd died. */
static void sweep_dead_owners(struct oci_engine *e)
{
	pthread_mutex_lock(&e->lock);
	bool done = e->swept;
	e->swept = true;
	pthread_mutex_unlock(&e->lock);
	if (done)
		return;
	agentd_strv a = {0};
	strv_push(&a, "ps");
	strv_push(&a, "-a");
	strv_push(&a, "-q");
	strv_push(&a, "--no-trunc");
	strv_push(&a, "--filter");
	strv_push(&a, "label=" LABEL_OWNER);
	_cleanup_free_ char *ids = NULL;
	int r = cli_run(e, &a, NULL, &ids, NULL, NULL);
	strv_free(&a);
	if (r != 0 || !ids || !*ids)
		return;
	/* the labels through inspect: docker's and podman's ps format them differently */
	strv_push(&a, "inspect");
	strv_push(&a, "--format");
	strv_push(&a, "{{.Id}} {{index .Config.Labels \"" LABEL_OWNER "\"}} "
		      "{{index .Config.Labels \"" LABEL_SANDBOX "\"}}");
	char *save = NULL;
	for (char *id = strtok_r(ids, "\n", &save); id; id = strtok_r(NULL, "\n", &save))
		strv_push(&a, id);
	_cleanup_free_ char *out = NULL;
	r = cli_run(e, &a, NULL, &out, NULL, NULL);
	strv_free(&a);
	if (!out)
		return;
	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char id[80], owner[64], sbid[AGENTD_ID_LEN];
		if (sscanf(l, "%79s %63s %39s", id, owner, sbid) != 3 || owner_alive(owner))
			continue;
		rm_force(e, id);
		/* what is left of it there (podman's conmon) goes with its cgroup */
		cgroup_destroy(cgroup_open(sbid, NULL));
		cgroup_remove_everywhere(sbid);
	}
}

/* ---------------------------------------------------------------- create */

static uint64_t write_size(const agentd_spec *s)
{
	/* the engine needs a size; 0 (no write limit) is the memory limit's, which bounds a
	 * tmpfs's pages anyway */
	if (s->limits.max_write_bytes)
		return s->limits.max_write_bytes;
	return s->limits.max_memory_bytes ? s->limits.max_memory_bytes : 256ull << 20;
}

/* `run -d` of spec's image, hardened; the sandbox variables go in vars. */
static void run_args(const struct eng_sb *c, const agentd_sandbox *sb, agentd_strv *a,
		     agentd_kvv *vars, const char *seccomp)
{
	const agentd_spec *s = &sb->spec;
	const agentd_limits *l = &s->limits;
	char owner[64];
	owner_tag(getpid(), owner, sizeof(owner));
	strv_push(a, "run");
	strv_push(a, "-d");
	args_add(a, "--name=%s", c->name);
	args_add(a, "--label=%s=%s", LABEL_SANDBOX, sb->id);
	args_add(a, "--label=%s=%s", LABEL_OWNER, owner);
	/* seed 002's hardening */
	strv_push(a, "--cap-drop=ALL");
	strv_push(a, "--security-opt=no-new-privileges");
	strv_push(a, "--read-only");
	if (c->e->kind == OCI_ENGINE_PODMAN)
		strv_push(a, "--read-only-tmpfs=false");	/* no unsized /run, /var/tmp */
	strv_push(a, "--network=none");
	if (l->max_memory_bytes) {
		args_add(a, "--memory=%" PRIu64, l->max_memory_bytes);
		args_add(a, "--memory-swap=%" PRIu64, l->max_memory_bytes);	/* no swap */
	}
	if (l->cpu_quota_pct)
		args_add(a, "--cpus=%u.%02u", l->cpu_quota_pct / 100, l->cpu_quota_pct % 100);
	if (l->cpu_weight && l->cpu_weight != 100)
		args_add(a, "--cpu-shares=%u", l->cpu_weight * 1024 / 100 ? l->cpu_weight * 1024 / 100 : 2);
	if (l->max_processes)
		args_add(a, "--pids-limit=%u", l->max_processes);
	/* explicit ulimits: the engine's defaults may exceed what it may set */
	uint32_t nofile = l->max_open_files ? l->max_open_files : 1024;
	args_add(a, "--ulimit=nofile=%u:%u", nofile, nofile);
	/* RLIMIT_NPROC counts the uid's processes host-wide, other sandboxes' too: pids.max
	 * bounds the container, this only has to be settable (at most our hard limit, and
	 * podman's conmon, the runtime's parent, holds 32768) */
	struct rlimit nproc = {.rlim_max = RLIM_INFINITY};
	getrlimit(RLIMIT_NPROC, &nproc);
	unsigned long long np = nproc.rlim_max < 32768 ? nproc.rlim_max : 32768;
	args_add(a, "--ulimit=nproc=%llu:%llu", np, np);
	strv_push(a, "--ulimit=core=0:0");
	uint64_t ws = write_size(s);
	args_add(a, "--shm-size=%" PRIu64, ws);
	args_add(a, "--tmpfs=/tmp:rw,nosuid,nodev,size=%" PRIu64 ",mode=1777", ws);
	uid_t uid = s->run_as_uid < 0 ? 65534 : (uid_t)s->run_as_uid;
	gid_t gid = s->run_as_gid < 0 ? 65534 : (gid_t)s->run_as_gid;
	/* the workdir is the user's: podman chowns it with U, docker takes tmpfs's own */
	if (strcmp(s->workdir, "/tmp") != 0 && c->e->kind == OCI_ENGINE_PODMAN)
		args_add(a, "--tmpfs=%s:rw,nosuid,nodev,size=%" PRIu64 ",mode=0700,U",
			 s->workdir, ws);
	else if (strcmp(s->workdir, "/tmp") != 0)
		args_add(a, "--tmpfs=%s:rw,nosuid,nodev,size=%" PRIu64 ",mode=0700,uid=%u,gid=%u",
			 s->workdir, ws, (unsigned)uid, (unsigned)gid);
	args_add(a, "--workdir=%s", s->workdir);
	args_add(a, "--user=%u:%u", (unsigned)uid, (unsigned)gid);
	for (size_t i = 0; i < s->allowed_paths_ro.n; i++)
		args_add(a, "--volume=%s:%s:ro", s->allowed_paths_ro.v[i], s->allowed_paths_ro.v[i]);
	for (size_t i = 0; i < s->allowed_paths_rw.n; i++)
		args_add(a, "--volume=%s:%s:rw", s->allowed_paths_rw.v[i], s->allowed_paths_rw.v[i]);
	for (size_t i = 0; i < s->n_bind_mounts; i++)
		args_add(a, "--volume=%s:%s:%s", s->bind_mounts[i].source, s->bind_mounts[i].target,
			 s->bind_mounts[i].readonly ? "ro" : "rw");
	if (seccomp)
		args_add(a, "--security-opt=seccomp=%s", seccomp);
	args_add(a, "--cgroup-parent=/agentd/%s", sb->id);
	/* the environment: by name, the values in the CLI's own environment */
	kvv_set(vars, "HOME", s->workdir);
	kvv_set(vars, "TMPDIR", "/tmp");
	for (size_t i = 0; i < s->environment.n; i++)
		kvv_set(vars, s->environment.v[i].key, s->environment.v[i].value);
	for (size_t i = 0; i < vars->n; i++)
		args_add(a, "--env=%s", vars->v[i].key);
	strv_push(a, "--entrypoint=sleep");
	strv_push(a, s->image);
	strv_push(a, "infinity");
}

/* The engine's cgroup of the container: the last component of its path below
 * /agentd/<id>/ in /proc/<pid>/cgroup (any hierarchy). */
static int ctr_cgroup_name(pid_t pid, const char *sbid, char *name, size_t size,
			   agentd_error *err)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	_cleanup_free_ char *t = read_file_at(AT_FDCWD, path, 65536, NULL);
	_cleanup_free_ char *want = xasprintf(":/agentd/%s/", sbid);
	char *at = t ? strstr(t, want) : NULL;
	if (!at)
		return agentd_error_set(err, EIO, "the container's init (pid %d) is not in the "
				       "cgroup agentd/%s it was given", (int)pid, sbid);
	at += strlen(want);
	size_t n = strcspn(at, "/\n");
	if (n == 0 || n >= size || at[n] == '/')
		return agentd_error_set(err, EIO, "unexpected cgroup of the container's init");
	memcpy(name, at, n);
	name[n] = '\0';
	return 0;
}

static int eng_inspect_pid(struct eng_sb *c, agentd_error *err)
{
	agentd_strv a = {0};
	strv_push(&a, "inspect");
	strv_push(&a, "--format");
	strv_push(&a, "{{.State.Pid}}");
	strv_push(&a, c->ctr_id);
	_cleanup_free_ char *out = NULL;
	int r = cli_ok(c->e, &a, NULL, &out, err);
	strv_free(&a);
	if (r < 0)
		return -1;
	c->init_pid = (pid_t)atoi(out);
	if (c->init_pid <= 0)
		return agentd_error_set(err, EIO, "%s inspect: the container is not running",
					oci_engine_name(c->e));
	return 0;
}

/* rm -f the container, the cgroups, free c. */
static void eng_teardown(struct eng_sb *c, const char *sbid)
{
	rm_force(c->e, c->ctr_id[0] ? c->ctr_id : c->name);
	cgroup_close(c->ctr_cg);
	cgroup_destroy(c->cg);
	cgroup_remove_everywhere(sbid);
	close_fd(&c->init_pidfd);
	pthread_mutex_destroy(&c->exec_lock);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int oci_engine_create(struct oci_engine *e, agentd_backend *b, const agentd_spec *spec,
		      agentd_sandbox **out, agentd_error *err)
{
	if (!spec->image || !*spec->image)
		return agentd_error_set(err, EINVAL, "%s: the policy names no image (the key "
					"image: an image of %s's store)", oci_engine_name(e),
					oci_engine_name(e));
	if (spec->writable_root)
		return agentd_error_set(err, ENOTSUP, "%s: writable_root is not supported by the "
					"engine driver (its root is read-only)", oci_engine_name(e));
	sweep_dead_owners(e);
	agentd_sandbox *sb = agentd_sandbox_alloc(b, spec, &oci_engine_sandbox_ops, err);
	if (!sb)
		return -1;
	struct eng_sb *c = xcalloc(1, sizeof(*c));
	c->e = e;
	c->init_pidfd = -1;
	pthread_mutex_init(&c->exec_lock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	snprintf(c->name, sizeof(c->name), NAME_PREFIX "%s", sb->id);

	agentd_strv a = {0};
	agentd_kvv vars = {0};
	_cleanup_free_ char *out_id = NULL;
	/* agentd's cgroup first: the container is made inside it, under its limits */
	c->cg = cgroup_create(sb->id, &spec->limits, err);
	if (!c->cg)
		goto fail;
	/* "default": the engine's own default profile until agentd's has an OCI form */
	const char *seccomp = strcmp(spec->seccomp_profile, "none") == 0 ? "unconfined"
			    : strcmp(spec->seccomp_profile, "default") == 0 ? NULL
			    : spec->seccomp_profile;
	run_args(c, sb, &a, &vars, seccomp);
	if (cli_ok(e, &a, &vars, &out_id, err) < 0)
		goto fail_named;
	first_line(out_id);
	snprintf(c->ctr_id, sizeof(c->ctr_id), "%s", out_id);
	char cgname[96];
	if (eng_inspect_pid(c, err) < 0 ||
	    ctr_cgroup_name(c->init_pid, sb->id, cgname, sizeof(cgname), err) < 0)
		goto fail_named;
	c->ctr_cg = cgroup_open_child(c->cg, cgname, err);
	if (!c->ctr_cg)
		goto fail_named;
	c->init_pidfd = sys_pidfd_open(c->init_pid, 0);
	strv_free(&a);
	kvv_free(&vars);
	backend_caps_fill(sb, false, strcmp(spec->seccomp_profile, "none") != 0);
	sb->priv = c;
	*out = sb;
	return 0;
fail_named:
	agentd_error_prefix(err, "%s container %s", oci_engine_name(e), c->name);
fail:
	strv_free(&a);
	kvv_free(&vars);
	eng_teardown(c, sb->id);
	backend_sandbox_free(sb);
	return -1;
}

/* ---------------------------------------------------------------- exec */

struct eng_exec {
	struct eng_sb *c;
	struct spawned sp;
	int rep_fd;			/* the job's report pipe: the CLI's exit goes there */
};

/* A timeout or cancel: every process of the container but its init (the engine's CLI
 * names no tree of one exec; one command runs at a time). The CLI then ends. */
static void eng_kill_exec(void *arg)
{
	struct eng_exec *x = arg;
	cgroup_kill_all_but(x->c->ctr_cg, x->c->init_pid);
}

/* The CLI's end as the job's exit report (the command's status: the engine passes the
 * command's exit code on, 128+N for a signal). */
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

static bool eng_refuse_suspended(struct eng_sb *c, agentd_error *err)
{
	pthread_mutex_lock(&c->lock);
	bool s = c->suspended;
	pthread_mutex_unlock(&c->lock);
	if (s)
		agentd_error_set(err, EBUSY, "the sandbox is suspended");
	return s;
}

static int eng_exec(agentd_sandbox *sb, const agentd_command *cmd, const agentd_exec_ctx *ctx,
		    agentd_exec_output *out, agentd_error *err)
{
	struct eng_sb *c = sb->priv;
	if (eng_refuse_suspended(c, err))
		return -1;
	const char *cwd = cmd->workdir ? cmd->workdir : sb->spec.workdir;
	exec_request req = backend_exec_request(sb, cmd, ctx, NULL, cwd, c->ctr_cg);
	struct eng_exec x = {.c = c, .rep_fd = -1};
	req.kill = eng_kill_exec;
	req.kill_arg = &x;
	agentd_strv a = {0};
	strv_push(&a, "exec");
	if (!req.stdin_null)
		strv_push(&a, "-i");
	args_add(&a, "--workdir=%s", cwd);
	for (size_t i = 0; i < cmd->env.n; i++)
		args_add(&a, "--env=%s", cmd->env.v[i].key);
	strv_push(&a, c->ctr_id);
	for (char **v = cmd->argv; *v; v++)
		strv_push(&a, *v);

	pthread_mutex_lock(&c->exec_lock);
	pthread_mutex_lock(&c->lock);
	req.cpu_spent_ms = c->cpu_ms;
	pthread_mutex_unlock(&c->lock);
	struct exec_job j;
	int r = exec_job_open(&j, &req, out, err);
	struct cli_child cc = {.argv = NULL, .envp = NULL};
	pthread_t reaper;
	bool reaping = false;
	if (r == 0) {
		x.rep_fd = fcntl(j.child_fds[3], F_DUPFD_CLOEXEC, ENGINE_HIGH_FD);
		cc.argv = cli_argv(c->e, &a);
		cc.envp = cli_envp(&cmd->env);
		memcpy(cc.fds, j.child_fds, sizeof(cc.fds));
		if (x.rep_fd < 0)
			r = agentd_error_errno(err, errno, "dup");
		else
			r = cli_spawn(&cc, &x.sp, err);
		if (r == 0 && (errno = pthread_create(&reaper, NULL, eng_reaper, &x)) != 0) {
			r = agentd_error_errno(err, errno, "pthread_create");
			kill(x.sp.pid, SIGKILL);
			cli_reap(&x.sp, &(struct rusage){0});
		}
		if (r < 0) {
			close_fd(&x.rep_fd);
			exec_job_close(&j);
		} else {
			reaping = true;
			exec_job_started(&j, -1, -1, NULL);
			r = exec_job_wait(&j, err);
		}
	}
	if (reaping) {
		pthread_join(reaper, NULL);
		/* what the command left behind ends with it, as in a container sandbox */
		cgroup_kill_all_but(c->ctr_cg, c->init_pid);
	}
	if (r == 0) {
		pthread_mutex_lock(&c->lock);
		c->cpu_ms += out->usage.cpu_time_ms;
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_unlock(&c->exec_lock);
	free(cc.argv);
	envp_free(cc.envp);
	strv_free(&a);
	return r < 0 ? agentd_error_prefix(err, "exec %s", cmd->argv[0]) : 0;
}

/* ---------------------------------------------------------------- lifecycle */

static bool eng_is_alive(agentd_sandbox *sb)
{
	struct eng_sb *c = sb->priv;
	if (c->init_pidfd < 0)
		return kill(c->init_pid, 0) == 0;
	struct pollfd pf = {.fd = c->init_pidfd, .events = POLLIN};
	return poll(&pf, 1, 0) == 0;
}

static int eng_simple(struct eng_sb *c, const char *verb, agentd_error *err)
{
	agentd_strv a = {0};
	strv_push(&a, verb);
	strv_push(&a, c->ctr_id);
	int r = cli_ok(c->e, &a, NULL, NULL, err);
	strv_free(&a);
	return r;
}

static int eng_suspend(agentd_sandbox *sb, agentd_error *err)
{
	struct eng_sb *c = sb->priv;
	if (eng_simple(c, "pause", err) < 0)
		return -1;
	pthread_mutex_lock(&c->lock);
	c->suspended = true;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static int eng_resume(agentd_sandbox *sb, agentd_error *err)
{
	struct eng_sb *c = sb->priv;
	if (eng_simple(c, "unpause", err) < 0)
		return -1;
	pthread_mutex_lock(&c->lock);
	c->suspended = false;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static int eng_usage(agentd_sandbox *sb, agentd_usage *u, agentd_error *err)
{
	struct eng_sb *c = sb->priv;
	memset(u, 0, sizeof(*u));
	if (cgroup_read_usage(c->ctr_cg, u) < 0)
		return agentd_error_set(err, EIO, "read the container's cgroup");
	u->wall_time_ms = (uint64_t)(time(NULL) - sb->created_at) * 1000;
	return 0;
}

static int eng_destroy(agentd_sandbox *sb, agentd_error *err)
{
	(void)err;
	struct eng_sb *c = sb->priv;
	if (!c)
		return 0;
	eng_teardown(c, sb->id);
	sb->priv = NULL;
	return 0;
}

const agentd_sandbox_ops oci_engine_sandbox_ops = {
	.exec = eng_exec,
	.is_alive = eng_is_alive,
	.suspend = eng_suspend,
	.resume = eng_resume,
	.usage = eng_usage,
	.destroy = eng_destroy,
};

/* ---------------------------------------------------------------- TEMPORARY glue */
static int tmp_probe(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err)
{
	return oci_engine_probe(b->priv, caps, err);
}
static int tmp_create(agentd_backend *b, const agentd_spec *spec, agentd_sandbox **out,
		      agentd_error *err)
{
	return oci_engine_create(b->priv, b, spec, out, err);
}
static void tmp_free(agentd_backend *b)
{
	oci_engine_free(b->priv);
}
static const agentd_backend_ops tmp_docker = {.name = "docker", .probe = tmp_probe,
	.create_sandbox = tmp_create, .free_backend = tmp_free};
static const agentd_backend_ops tmp_podman = {.name = "podman", .probe = tmp_probe,
	.create_sandbox = tmp_create, .free_backend = tmp_free};
int tmp_docker_new(const char *work_root, agentd_backend **out, agentd_error *err);
int tmp_podman_new(const char *work_root, agentd_backend **out, agentd_error *err);
int tmp_docker_new(const char *work_root, agentd_backend **out, agentd_error *err)
{
	(void)err;
	*out = agentd_backend_alloc(&tmp_docker, work_root);
	(*out)->priv = oci_engine_new(OCI_ENGINE_DOCKER);
	return 0;
}
int tmp_podman_new(const char *work_root, agentd_backend **out, agentd_error *err)
{
	(void)err;
	*out = agentd_backend_alloc(&tmp_podman, work_root);
	(*out)->priv = oci_engine_new(OCI_ENGINE_PODMAN);
	return 0;
}
