/* runtime.c: the oci backend's runtime drivers, runc and crun — a bundle under the
 * sandbox's dir, `create` + `start` of a long-lived init (tini reaping, sleep forever),
 * `exec -p process.json` per command in its kill unit, `pause`/`resume`, `kill` +
 * `delete` — and the small host-tool runner the engine drivers share. */
#include "lib/backends/oci/oci.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define TOOL_OUT_MAX (64u << 10)
#define TOOL_TIMEOUT_MS 30000
/* busybox's sleep knows no "infinity": 68 years will do */
#define SLEEP_FOREVER "2147483647"

/* ------------------------------------------------------------- host tools */

bool oci_tool_find(const char *name, char *path, size_t n)
{
	static const char *const dirs[] = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
					   "/usr/bin", "/sbin", "/bin"};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(path, n, "%s/%s", dirs[i], name);
		if (access(path, X_OK) == 0)
			return true;
	}
	path[0] = '\0';
	return false;
}

/* Read what is there on fd into *buf (at most max kept); false at EOF. */
static bool drain(int fd, char **buf, size_t *len, size_t max)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n <= 0)
		return n < 0 && errno == EINTR;
	size_t keep = *len + (size_t)n > max ? max - *len : (size_t)n;
	*buf = xrealloc(*buf, *len + keep + 1);
	memcpy(*buf + *len, tmp, keep);
	*len += keep;
	(*buf)[*len] = '\0';
	return true;
}

/* The last non-empty line of s (runc and crun end with the error), into why. */
static void last_line(const char *s, char *why, size_t n)
{
	if (!why || !n)
		return;
	why[0] = '\0';
	if (!s)
		return;
	size_t len = strlen(s);
	while (len && (s[len - 1] == '\n' || s[len - 1] == ' '))
		len--;
	size_t start = len;
	while (start && s[start - 1] != '\n')
		start--;
	/* a log line (time="..." level=error msg="..."): its message */
	const char *msg = memmem(s + start, len - start, "msg=\"", 5);
	if (msg) {
		start = (size_t)(msg + 5 - s);
		if (len > start && s[len - 1] == '"')
			len--;
	}
	snprintf(why, n, "%.*s", (int)(len - start), s + start);
}

/* child: a mount namespace of its own with a fresh tmpfs at root, for a runtime's create:
 * the container's root is then a tmpfs nobody else sees (its mountinfo names no host path
 * of agentd's, the state dir least of all), and it goes with the container's namespace —
 * no host mount to clean up, even after a crash. With an image's layers (bottom first),
 * root/ on it is their overlay: each layer bound to l<i> beside it and named relatively
 * (the overlay's options in mountinfo say "l1:l0", not where the store is), its upper
 * layer on the same tmpfs (where the runtime makes its mount points; read-only after). */
struct private_root {
	const char *dir;
	char *const *layers;
	size_t n_layers;
};

static __attribute__((noreturn)) void root_fail(const char *what)
{
	dprintf(2, "private root: %s: %s\n", what, strerror(errno));
	_exit(125);
}

static void private_root(const struct private_root *pr)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", pr->dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755") < 0)
		root_fail(pr->dir);
	if (!pr->n_layers)
		return;
	if (chdir(pr->dir) < 0 || mkdir("u", 0755) < 0 || mkdir("w", 0700) < 0 ||
	    mkdir("root", 0755) < 0)
		root_fail("overlay dirs");
	char opts[4096];
	size_t len = (size_t)snprintf(opts, sizeof(opts), "lowerdir=");
	for (size_t i = pr->n_layers; i-- > 0;) {
		char l[32];
		snprintf(l, sizeof(l), "l%zu", i);
		if (mkdir(l, 0755) < 0 || mount(pr->layers[i], l, NULL, MS_BIND, NULL) < 0)
			root_fail(pr->layers[i]);
		len += (size_t)snprintf(opts + len, sizeof(opts) - len, "%s%s", l, i ? ":" : "");
	}
	snprintf(opts + len, sizeof(opts) - len, ",upperdir=u,workdir=w");
	if (mount("overlay", "root", "overlay", MS_NOSUID | MS_NODEV, opts) < 0)
		root_fail("overlay of the image's layers");
}

static int tool_run(char *const *argv, unsigned flags, const struct private_root *root,
		    char **out, char *why, size_t why_len, int timeout_ms, agentd_error *err)
{
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) < 0)
		return agentd_error_errno(err, errno, "pipe");
	if (pipe2(pe, O_CLOEXEC) < 0) {
		close(po[0]);
		close(po[1]);
		return agentd_error_errno(err, errno, "pipe");
	}
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		bool detach = flags & OCI_TOOL_NULL_STDIO;
		if (null < 0 || dup2(null, 0) < 0 || dup2(detach ? null : po[1], 1) < 0 ||
		    dup2(detach ? null : pe[1], 2) < 0)
			_exit(125);
		setsid();
		if (root)
			private_root(root);
		execv(argv[0], argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	if (pid < 0) {
		close(po[0]);
		close(pe[0]);
		return agentd_error_errno(err, errno, "fork for %s", argv[0]);
	}
	char *o = NULL, *e = NULL;
	size_t ol = 0, el = 0;
	bool open_o = true, open_e = true, timed_out = false;
	uint64_t deadline = now_ms_monotonic() + (uint64_t)timeout_ms;
	while (open_o || open_e) {
		struct pollfd p[2] = {{.fd = open_o ? po[0] : -1, .events = POLLIN},
				      {.fd = open_e ? pe[0] : -1, .events = POLLIN}};
		uint64_t now = now_ms_monotonic();
		if (now >= deadline) {
			timed_out = true;
			break;
		}
		if (poll(p, 2, (int)(deadline - now)) < 0 && errno != EINTR)
			break;
		if (p[0].revents && !drain(po[0], &o, &ol, TOOL_OUT_MAX))
			open_o = false;
		if (p[1].revents && !drain(pe[0], &e, &el, TOOL_OUT_MAX))
			open_e = false;
	}
	close(po[0]);
	close(pe[0]);
	if (timed_out)
		kill(-pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	last_line(e, why, why_len);
	free(e);
	if (out)
		*out = o;
	else
		free(o);
	if (timed_out)
		return agentd_error_set(err, ETIMEDOUT, "%s took longer than %d ms", argv[0],
					timeout_ms);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127 && why && !why[0])
		snprintf(why, why_len, "cannot execute %s", argv[0]);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int oci_tool_run(char *const *argv, unsigned flags, char **out, char *why, size_t why_len,
		 int timeout_ms, agentd_error *err)
{
	return tool_run(argv, flags, NULL, out, why, why_len, timeout_ms, err);
}

void oci_tool_version(const char *path, char *buf, size_t n)
{
	char *const argv[] = {(char *)path, "--version", NULL};
	char *out = NULL;
	buf[0] = '\0';
	if (oci_tool_run(argv, 0, &out, NULL, 0, 5000, NULL) == 0 && out)
		snprintf(buf, n, "%.*s", (int)strcspn(out, "\n"), out);
	free(out);
}

/* ------------------------------------------------------------- the runtime */

struct rt {
	const struct oci_config *cfg;
	char tool[256];		/* the runtime's binary */
	char *state;		/* its --root: <dir>/state */
	char *bundle;		/* <dir>/bundle */
	char *log;		/* <dir>/runtime.log: its errors (--log) */
	bool created;
};

/* A runtime command: TOOL --root STATE --log LOG VERB args..., its errors in err. */
static int rt_run(struct rt *r, unsigned flags, const char *const *args, agentd_error *err)
{
	/* create and run: the container's root on a tmpfs of a private mount namespace */
	bool makes_root = !strcmp(args[0], "create") || !strcmp(args[0], "run");
	_cleanup_free_ char *dir = makes_root ? xasprintf("%s/rootfs", r->bundle) : NULL;
	struct private_root root = {.dir = dir, .layers = r->cfg->layers,
				    .n_layers = r->cfg->n_layers};
	agentd_strv v = {0};
	strv_push(&v, r->tool);
	const char *pre[] = {"--root", r->state, "--log", r->log};
	for (size_t i = 0; i < ARRAY_SIZE(pre); i++)
		strv_push(&v, pre[i]);
	for (; *args; args++)
		strv_push(&v, *args);
	char **argv = xcalloc(v.n + 1, sizeof(char *));
	memcpy(argv, v.v, v.n * sizeof(char *));
	char why[512];
	int st = tool_run(argv, flags, dir ? &root : NULL, NULL, why, sizeof(why),
			  TOOL_TIMEOUT_MS, err);
	free(argv);
	if (st > 0) {
		if (!why[0]) {
			/* --log has it when stderr had nothing */
			_cleanup_free_ char *log = read_file_at(AT_FDCWD, r->log, 64 << 10, NULL);
			last_line(log, why, sizeof(why));
		}
		agentd_error_set(err, EIO, "%s %s: %s", v.v[0], v.v[5],
				 why[0] ? why : "failed");
	}
	strv_free(&v);
	return st == 0 ? 0 : -1;
}

/* The init: tini as pid 1 (it reaps what commands orphan) over sleep forever. On an
 * image, the host's tini-static bound in, over the image's own sleep. */
static char **init_argv(const struct oci_config *cfg)
{
	static char *const on_image[] = {OCI_IMAGE_INIT, "-s", "--", "sleep", SLEEP_FOREVER,
					 NULL};
	if (cfg->n_layers)
		return (char **)on_image;
	static char *const with_tini[] = {"/usr/bin/tini-static", "-s", "--", "/bin/sleep",
					  SLEEP_FOREVER, NULL};
	static char *const bare[] = {"/bin/sleep", SLEEP_FOREVER, NULL};
	return (char **)(access(with_tini[0], X_OK) == 0 ? with_tini : bare);
}

static struct rt *rt_new(const struct oci_driver *d, const struct oci_config *cfg,
			 const char *dir)
{
	struct rt *r = xcalloc(1, sizeof(*r));
	r->cfg = cfg;
	oci_tool_find(d->name, r->tool, sizeof(r->tool));
	r->state = xasprintf("%s/state", dir);
	r->bundle = xasprintf("%s/bundle", dir);
	r->log = xasprintf("%s/runtime.log", dir);
	return r;
}

static void rt_free(struct rt *r)
{
	if (!r)
		return;
	free(r->state);
	free(r->bundle);
	free(r->log);
	free(r);
}

/* A new file of ours (0600) with data. */
static int write_new(const char *path, const char *data, agentd_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write_all(fd, data, strlen(data)) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return agentd_error_errno(err, e, "write %s", path);
	}
	close(fd);
	return 0;
}

/* The bundle: config.json and an empty rootfs (the root, when no image gives one). */
static int write_bundle(struct rt *r, const struct oci_config *cfg, char *const *argv,
			agentd_error *err)
{
	_cleanup_free_ char *rootfs = xasprintf("%s/rootfs", r->bundle);
	/* rootfs/root: the image's overlay in create's namespace; out here an empty dir all
	 * the same (the runtime's exec starts its helper with the root path as its cwd) */
	_cleanup_free_ char *root = xasprintf("%s/root", rootfs);
	if (mkdir(r->bundle, 0700) < 0 || mkdir(rootfs, 0755) < 0 || mkdir(r->state, 0700) < 0 ||
	    (cfg->n_layers && mkdir(root, 0755) < 0))
		return agentd_error_errno(err, errno, "bundle %s", r->bundle);
	_cleanup_free_ char *json = oci_config_json(cfg, argv, err);
	if (!json)
		return -1;
	_cleanup_free_ char *path = xasprintf("%s/config.json", r->bundle);
	return write_new(path, json, err);
}

static int rt_create(struct oci_ctr *c, agentd_error *err)
{
	struct rt *r = rt_new(c->drv, &c->cfg, c->dir);
	c->drv_priv = r;
	if (write_bundle(r, &c->cfg, init_argv(&c->cfg), err) < 0)
		return -1;
	_cleanup_free_ char *pidfile = xasprintf("%s/init.pid", c->dir);
	const char *create[] = {"create", "--bundle", r->bundle, "--pid-file", pidfile,
				c->cfg.name, NULL};
	r->created = true; /* a failed create may leave state: destroy deletes it */
	if (rt_run(r, OCI_TOOL_NULL_STDIO, create, err) < 0)
		return -1;
	_cleanup_free_ char *pid = read_file_at(AT_FDCWD, pidfile, 32, NULL);
	c->init_pid = pid ? (pid_t)strtol(pid, NULL, 10) : 0;
	if (c->init_pid <= 0)
		return agentd_error_set(err, EPROTO, "%s create wrote no pid", r->tool);
	const char *start[] = {"start", c->cfg.name, NULL};
	return rt_run(r, 0, start, err);
}

/* One command's process.json (the config's process with its argv, env, cwd, user). */
static char *write_process(struct oci_ctr *c, const struct oci_exec *x, agentd_error *err)
{
	_cleanup_free_ char *json = oci_process_json(&c->cfg, x, err);
	if (!json)
		return NULL;
	char *path = xasprintf("%s/exec-%s.json", c->dir,
			       x->unit ? cgroup_name(x->unit) : "x");
	unlink(path);
	if (write_new(path, json, err) < 0) {
		free(path);
		return NULL;
	}
	return path;
}

static int rt_exec_argv(struct oci_ctr *c, struct oci_exec *x, agentd_strv *out,
			agentd_error *err)
{
	struct rt *r = c->drv_priv;
	char *proc = write_process(c, x, err);
	if (!proc)
		return -1;
	x->file = proc;
	const char *pre[] = {r->tool, "--root", r->state, "--log", r->log, "exec"};
	for (size_t i = 0; i < ARRAY_SIZE(pre); i++)
		strv_push(out, pre[i]);
	for (size_t i = 0; i < x->unit_paths.n; i++) {
		strv_push(out, "--cgroup");
		strv_push(out, x->unit_paths.v[i]);
	}
	strv_push(out, "-p");
	strv_push(out, proc);
	strv_push(out, c->cfg.name);
	return 0;
}

static int rt_pause(struct oci_ctr *c, agentd_error *err)
{
	const char *args[] = {"pause", c->cfg.name, NULL};
	return rt_run(c->drv_priv, 0, args, err);
}

static int rt_resume(struct oci_ctr *c, agentd_error *err)
{
	const char *args[] = {"resume", c->cfg.name, NULL};
	return rt_run(c->drv_priv, 0, args, err);
}

static void rt_destroy(struct oci_ctr *c)
{
	struct rt *r = c->drv_priv;
	if (!r)
		return;
	if (r->created) {
		/* delete --force kills what runs (a paused one too) and removes its state and
		 * cgroups; a runtime that cannot leaves the cgroup to the caller's destroy. */
		const char *del[] = {"delete", "--force", c->cfg.name, NULL};
		rt_run(r, 0, del, NULL);
	}
	rt_free(r);
	c->drv_priv = NULL;
}

/* ------------------------------------------------------------- probe */

/* A real attempt: run /bin/true in a container of the same shape as a sandbox's (our
 * cgroup layout, our namespaces), under work_root. The runtime's own words on failure. */
static void rt_probe(const struct oci_driver *d, const char *work_root, struct oci_probe *p)
{
	if (!oci_tool_find(d->name, p->path, sizeof(p->path))) {
		snprintf(p->reason, sizeof(p->reason), "no %s on PATH", d->name);
		return;
	}
	p->found = true;
	oci_tool_version(p->path, p->version, sizeof(p->version));
	if (geteuid() != 0) {
		snprintf(p->reason, sizeof(p->reason), "agentd runs %s as root only", d->name);
		return;
	}
	char id[33];
	random_id(id);
	id[12] = '\0';
	_cleanup_free_ char *dir = xasprintf("%s/.oci-probe-%s-%s", work_root, d->name, id);
	if (mkdir_p(work_root, 0711) < 0 || mkdir(dir, 0700) < 0) {
		snprintf(p->reason, sizeof(p->reason), "mkdir %s: %s", dir, strerror(errno));
		return;
	}
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	struct oci_ctr c = {.drv = d, .dir = dir};
	agentd_error err = {0};
	_cleanup_free_ char *sid = xasprintf("probe-%s-%s", d->name, id);
	char *const argv[] = {"/bin/true", NULL};
	struct rt *r = rt_new(d, &c.cfg, dir);
	if (oci_config_build(&spec, sid, NULL, NULL, 0, &c.cfg, &err) == 0 &&
	    write_bundle(r, &c.cfg, argv, &err) == 0) {
		const char *run[] = {"run", "--bundle", r->bundle, c.cfg.name, NULL};
		r->created = true;
		if (rt_run(r, OCI_TOOL_NULL_STDIO, run, &err) == 0)
			p->usable = true;
	}
	if (!p->usable)
		snprintf(p->reason, sizeof(p->reason), "%s", err.msg);
	c.drv_priv = r;
	rt_destroy(&c);
	/* crun leaves the cgroup of a failed run behind on some layouts */
	struct cgroup *cg = cgroup_open_runtime(c.cfg.cgroup_name, NULL);
	cgroup_destroy(cg);
	oci_config_free(&c.cfg);
	agentd_spec_free(&spec);
	rm_rf(dir);
}

/* runc and crun take the same verbs and flags. */
#define RUNTIME_DRIVER(tool)                                                                  \
	{                                                                                     \
		.name = tool, .exec_in_unit = true, .probe = rt_probe, .create = rt_create,   \
		.exec_argv = rt_exec_argv, .pause = rt_pause, .resume = rt_resume,            \
		.destroy = rt_destroy,                                                        \
	}
const struct oci_driver oci_runc_driver = RUNTIME_DRIVER("runc");
const struct oci_driver oci_crun_driver = RUNTIME_DRIVER("crun");
