/* egress.c (issue 16: rt-egress): io.agentd.policy's egress allowlist for an OCI container.
 *
 * The container's network namespace holds only lo (a new one made here by host root, so the
 * container's root can never reconfigure it; or the engine's, checked to have no interface
 * but lo) and a listener on 127.0.0.1:AGENTD_PROXY_PORT made inside it. agentd's egress
 * proxy (src/lib/net, the container backend's: the same rules and audit events) serves that
 * listener from a small helper process, since every runtime verb is a new short-lived
 * process:
 *   - forked by `create` (twice: the helper is never create's caller's child, so never a
 *     pid the engine waits for; it is reaped by the nearest subreaper, conmon or the shim,
 *     or by init), in the host's network namespace and the container's cgroup (its memory,
 *     pids and pipe buffers charged to the container; it dies with the cgroup);
 *   - without the engine's fds (stdio on /dev/null, every fd closed but its own), in a
 *     session of its own, as uid/gid 65534 with no capability, no_new_privs, not dumpable;
 *   - until `create` commits (state.json written with its pid and start time): create dying
 *     or failing before that makes it exit (EOF on its control pipe), and create's undo
 *     kills the cgroup it is in;
 *   - until the container's init exits (conmon waits for every child of its own before it
 *     reports the exit; no process runs in a stopped container), or `delete` kills it (the
 *     cgroup's kill too) and waits for its exit.
 * The namespace is host root's, so the container's root can neither write its net.*
 * sysctls nor mount its sysfs: create does both in it (the sysfs as a detached tree the init
 * attaches).
 * Every decision is a JSON line in <root>/<id>/egress.log and, with --log, a line of the
 * runtime's log (level "info"). */
#include "lib/runtime/verbs.h"

#include "common/kernel.h"
#include "lib/net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define HELPER_READY_MS 30000
#define HELPER_EXIT_MS 5000
#define HELPER_UID 65534
/* The helper's fds once it closed the rest (fixed numbers: no table to carry). */
enum { FD_LISTEN = 3, FD_AUDIT, FD_CTL, FD_REPORT, FD_RUNLOG, FD_COUNT };

/* create's word to the helper once the container exists: its init, which the helper
 * outlives by no more than a moment. */
struct helper_commit {
	pid_t init;
	unsigned long long start_time;
};

struct helper_report {
	pid_t pid;
	int err;		/* 0, or an errno */
	char what[256];
};

/* What the helper's log callback needs (its own copy: the helper is a fork). */
static struct {
	const char *id;
	const agentd_kvv *labels;
	bool runlog;
} helper;

static const char *event_name(agentd_netlog_event e)
{
	return e == AGENTD_NETLOG_ALLOWED ? "allowed" : e == AGENTD_NETLOG_DENIED ? "denied"
										  : "closed";
}

/* On the proxy thread: a local file append each, no lock, nothing that blocks for long. */
static void helper_log(void *ud, const agentd_netlog *ev)
{
	(void)ud;
	char when[64];
	ocirt_time_now(when, sizeof(when));
	json_t *labels = json_object();
	for (size_t i = 0; helper.labels && i < helper.labels->n; i++)
		json_object_set_new(labels, helper.labels->v[i].key,
				    json_string(helper.labels->v[i].value));
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:I, s:I, s:I, s:o}",
			      "time", when, "container", helper.id, "event",
			      event_name(ev->event), "method", ev->method, "host", ev->host,
			      "port", (int)ev->port, "address", ev->address, "reason", ev->reason,
			      "bytes_up", (json_int_t)ev->bytes_up, "bytes_down",
			      (json_int_t)ev->bytes_down, "duration_ms",
			      (json_int_t)ev->duration_ms, "labels", labels);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (s) {
		_cleanup_(freep) char *line = xasprintf("%s\n", s);
		(void)write_all(FD_AUDIT, line, strlen(line));
	}
	free(s);
	if (!helper.runlog || ev->event == AGENTD_NETLOG_CLOSED)
		return;
	_cleanup_(freep) char *msg = xasprintf(
		"container %s: egress %s: %s %s:%u (%s)", helper.id, event_name(ev->event),
		*ev->method ? ev->method : "-", *ev->host ? ev->host : "-", (unsigned)ev->port,
		ev->reason);
	_cleanup_(freep) char *line = ocirt_log_text("info", msg);
	if (line)
		(void)write_all(FD_RUNLOG, line, strlen(line));
}

/* fds[i] onto FD_LISTEN + i (-1: /dev/null there), every other fd closed. */
static int keep_only(int *fds, int n, int devnull)
{
	int top = devnull;
	for (int i = 0; i < n; i++)
		top = fds[i] > top ? fds[i] : top;
	for (int i = 0; i < n; i++)	/* above every one of ours: the dup2s below clobber none */
		if ((fds[i] = fcntl(fds[i] >= 0 ? fds[i] : devnull, F_DUPFD, top + 1)) < 0)
			return -errno;
	for (int i = 0; i < n; i++)
		if (dup2(fds[i], FD_LISTEN + i) < 0)
			return -errno;
	if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0)
		return -errno;
	return syscall(SYS_close_range, FD_LISTEN + n, ~0U, 0) < 0 ? -errno : 0;
}

static void report_and_exit(int err, const char *what)
{
	struct helper_report r = {.pid = getpid(), .err = err};
	snprintf(r.what, sizeof(r.what), "%s", what);
	(void)!write(FD_REPORT, &r, sizeof(r));
	_exit(1);
}

/* The helper (a grandchild of create, in the container's cgroup). Never returns. */
static void helper_main(const struct ocirt_config *c, const char *id, int *fds, int devnull)
{
	agentd_error err = {0};
	int r;
	helper.id = id;
	helper.labels = &c->audit_labels;
	helper.runlog = fds[FD_RUNLOG - FD_LISTEN] >= 0;
	(void)setsid();
	if (keep_only(fds, FD_COUNT - FD_LISTEN, devnull) < 0)
		_exit(1);
	struct sigaction dfl = {.sa_handler = SIG_DFL}, ign = {.sa_handler = SIG_IGN};
	for (int s = 1; s < NSIG; s++)
		(void)sigaction(s, s == SIGPIPE ? &ign : &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* nothing of root's: it connects out and writes to fds it holds */
	struct privs_plan pp = {.switch_user = true, .uid = HELPER_UID, .gid = HELPER_UID,
				.drop_caps = true};
	if ((r = privs_apply(&pp)) < 0 || (r = privs_no_new_privs()) < 0 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		report_and_exit(r < 0 ? -r : errno, "drop privileges");
	/* a share of the host the container pays for: few lookup threads, a connection cap */
	agentd_proxy_config cfg = {.max_connections = 256, .resolver_threads = 4,
				   .on_log = helper_log};
	agentd_proxy *p = agentd_proxy_start(&cfg, &err);
	if (!p || agentd_proxy_add_sandbox(p, FD_LISTEN, id, &c->egress_allow, &err) < 0)
		report_and_exit(err.code > 0 ? err.code : EIO, err.msg);
	struct helper_report ok = {.pid = getpid()};
	if (write(FD_REPORT, &ok, sizeof(ok)) != (ssize_t)sizeof(ok))
		_exit(1);
	close(FD_REPORT);
	struct helper_commit cm;
	if (read(FD_CTL, &cm, sizeof(cm)) != (ssize_t)sizeof(cm))
		_exit(0);	/* create gave up (or died) before the container existed */
	close(FD_CTL);
	/* served while the init lives (engines' subreapers, conmon, wait for every child of
	 * theirs before they report the exit): no process can run in a stopped container */
	int init = sys_pidfd_open(cm.init, 0);
	unsigned long long start;
	bool zombie;
	if (init < 0 || proc_start_time(cm.init, &start, &zombie) < 0 || start != cm.start_time ||
	    zombie)
		_exit(0);
	struct pollfd pfd = {.fd = init, .events = POLLIN};
	while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
		;
	_exit(0);	/* or delete's SIGKILL before */
}

/* The namespace and its listener: the engine's (checked), or a new one kept in e->netfd. */
static int egress_listener(const struct ocirt_config *c, struct ocirt_egress *e)
{
	agentd_error err = {0};
	int fd;
	if (c->ns_path[OCIRT_NS_NET]) {
		fd = open(c->ns_path[OCIRT_NS_NET], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return ocirt_fail("linux.namespaces: network namespace %s: %s",
					  c->ns_path[OCIRT_NS_NET], strerror(errno)), -1;
		e->netfd = fd;
	} else {
		struct netns_maker m;
		if (netns_make_start(&m) < 0)
			return ocirt_fail("annotations[\"io.agentd.policy\"].network: a network "
					  "namespace of its own needs root"), -1;
		if ((fd = netns_make_finish(&m, &err)) < 0)
			return ocirt_fail("%s", err.msg), -1;
		e->netfd = fd;	/* the init is cloned into it */
		e->made = true;
	}
	char others[160];
	int l = netns_loopback_listener(fd, AGENTD_PROXY_PORT, others, sizeof(others));
	if (l == -EEXIST)
		return ocirt_fail("annotations[\"io.agentd.policy\"].network: mode allowlist, but "
				  "linux.namespaces' network namespace %s has interfaces besides lo "
				  "(%s), a way around agentd's egress proxy: run the engine with "
				  "--network none", c->ns_path[OCIRT_NS_NET], others), -1;
	if (l < 0)
		return ocirt_fail("egress listener on 127.0.0.1:%d in the container's network "
				  "namespace: %s", AGENTD_PROXY_PORT, strerror(-l)), -1;
	return l;
}

/* The container's gid range lo..hi (one map entry's) as host gids, or false. */
static bool host_gids(const struct ocirt_config *c, unsigned long *lo, unsigned long *hi)
{
	for (size_t m = 0; m < c->n_gid_maps; m++) {
		const struct ocirt_idmap *g = &c->gid_maps[m];
		if (g->size && *lo >= g->container_id && *hi < (unsigned long)g->container_id + g->size) {
			*lo = *lo - g->container_id + g->host_id;
			*hi = *hi - g->container_id + g->host_id;
			return true;
		}
	}
	return false;
}

/* The namespace is host root's: the container's root cannot write its net.* sysctls, so
 * they are written here, as host root inside it, and taken off the init's list. A
 * ping_group_range (already clamped to the container's groups) is given in host gids; one
 * outside the map is left off (ICMP sockets stay disabled). */
static int net_sysctls(const struct ocirt_config *c, struct ocirt_jail *j, int netfd)
{
	agentd_kvv rest = {0};
	int saved = -1, rc = 0;
	for (size_t i = 0; i < j->sysctl.n && rc == 0; i++) {
		const char *k = j->sysctl.v[i].key, *v = j->sysctl.v[i].value;
		if (strncmp(k, "net.", 4)) {
			kvv_set(&rest, k, v);
			continue;
		}
		_cleanup_(freep) char *value = xstrdup(v);
		unsigned long lo, hi;
		char end;
		if (!strcmp(k, "net.ipv4.ping_group_range") &&
		    sscanf(v, "%lu %lu%c", &lo, &hi, &end) == 2) {
			if (!host_gids(c, &lo, &hi))
				continue;
			free(value);
			value = xasprintf("%lu %lu", lo, hi);
		}
		_cleanup_(freep) char *path = xasprintf("/proc/sys/%s", k);
		for (char *p = path + strlen("/proc/sys/"); *p; p++)
			*p = *p == '.' ? '/' : *p;
		if (saved < 0 && netns_enter_for_clone(netfd, &saved) < 0) {
			rc = ocirt_fail("linux.sysctl[\"%s\"]: enter the network namespace: %s", k,
					strerror(errno));
			break;
		}
		int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || write_all(fd, value, strlen(value)) < 0)
			rc = ocirt_fail("linux.sysctl[\"%s\"]: %s", k, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	if (saved >= 0)
		netns_leave_after_clone(saved);
	if (rc == 0) {
		kvv_free(&j->sysctl);
		j->sysctl = rest;
	} else {
		kvv_free(&rest);
	}
	return rc ? -1 : 0;
}

/* The config's sysfs mounts: sysfs shows the mounter's network namespace and only its
 * owner may mount it, so host root makes each here, in the namespace, and the init attaches
 * it as a bind of a detached tree (mount_plan_open_sources's trees). */
static int sysfs_trees(struct ocirt_jail *j, int netfd)
{
	struct mount_plan *mp = &j->mounts;
	for (size_t i = 0; i < mp->n && mp->source_fds; i++) {
		struct mount_op *op = &mp->ops[i];
		if (op->kind != MOUNT_OP_FS || !op->source || strcmp(op->source, "sysfs"))
			continue;
		uint64_t attr = (op->flags & MS_RDONLY ? MOUNT_ATTR_RDONLY : 0) |
				(op->flags & MS_NOSUID ? MOUNT_ATTR_NOSUID : 0) |
				(op->flags & MS_NODEV ? MOUNT_ATTR_NODEV : 0) |
				(op->flags & MS_NOEXEC ? MOUNT_ATTR_NOEXEC : 0);
		int fd = netns_sysfs_tree(netfd, attr);
		if (fd < 0)
			return ocirt_fail("sysfs at %s of the container's network namespace: %s",
					  op->target, strerror(-fd)), -1;
		if (mp->source_fds[i] >= 0)
			close(mp->source_fds[i]);
		mp->source_fds[i] = fd;
		op->kind = MOUNT_OP_BIND;
		op->attr_set = 0;	/* set by fsmount */
	}
	return 0;
}

int ocirt_egress_start(const struct ocirt_config *c, struct ocirt_jail *j,
		       const struct ocirt_state *st, const struct ocirt_cgroup *cg,
		       struct ocirt_egress *e)
{
	*e = (struct ocirt_egress){.netfd = -1, .ctl = -1, .pidfd = -1};
	if (!c->egress)
		return 0;
	int fds[FD_COUNT - FD_LISTEN], ctl[2] = {-1, -1}, rep[2] = {-1, -1}, rc = -1;
	for (int i = 0; i < FD_COUNT - FD_LISTEN; i++)
		fds[i] = -1;
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int listener = egress_listener(c, e);
	if (listener < 0 || devnull < 0 || net_sysctls(c, j, e->netfd) < 0 ||
	    sysfs_trees(j, e->netfd) < 0)
		goto out;
	fds[FD_LISTEN - FD_LISTEN] = listener;
	fds[FD_AUDIT - FD_LISTEN] = openat(st->dirfd, "egress.log",
					   O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC,
					   0600);
	if (fds[FD_AUDIT - FD_LISTEN] < 0) {
		ocirt_fail("container %s: egress.log: %s", st->id, strerror(errno));
		goto out;
	}
	if (ocirt_g.log_path)
		fds[FD_RUNLOG - FD_LISTEN] = open(ocirt_g.log_path,
						  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (pipe2(ctl, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
		ocirt_fail("pipe: %s", strerror(errno));
		goto out;
	}
	fds[FD_CTL - FD_LISTEN] = ctl[0];
	fds[FD_REPORT - FD_LISTEN] = rep[1];
	fflush(NULL);
	pid_t mid = fork();
	if (mid < 0) {
		ocirt_fail("fork the egress proxy: %s", strerror(errno));
		goto out;
	}
	if (mid == 0) {
		/* in the cgroup first: the helper is born in it */
		if (ocirt_cgroup_attach(cg, getpid()) < 0)
			_exit(1);
		pid_t h = fork();
		if (h == 0)
			helper_main(c, st->id, fds, devnull);
		_exit(h < 0);
	}
	close(ctl[0]);
	close(rep[1]);
	ctl[0] = rep[1] = fds[FD_CTL - FD_LISTEN] = fds[FD_REPORT - FD_LISTEN] = -1;
	int status = 0;
	while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
		;
	struct helper_report r = {0};
	struct pollfd pfd = {.fd = rep[0], .events = POLLIN};
	ssize_t n = 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && poll(&pfd, 1, HELPER_READY_MS) > 0)
		n = read(rep[0], &r, sizeof(r));
	if (n == (ssize_t)sizeof(r) && r.pid > 0) {
		e->pid = r.pid;
		e->pidfd = sys_pidfd_open(r.pid, 0);
		bool zombie;
		if (e->pidfd < 0 || proc_start_time(r.pid, &e->start_time, &zombie) < 0)
			r.err = r.err ? r.err : ESRCH;
	}
	r.what[sizeof(r.what) - 1] = 0;
	if (n != (ssize_t)sizeof(r) || r.err) {
		ocirt_fail("container %s: egress proxy: %s%s%s", st->id,
			   n == (ssize_t)sizeof(r) ? r.what : "did not start",
			   r.err ? ": " : "", r.err ? strerror(r.err) : "");
		goto out;
	}
	e->ctl = ctl[1];
	ctl[1] = -1;
	rc = 0;
out:
	for (int i = 0; i < FD_COUNT - FD_LISTEN; i++)
		if (fds[i] >= 0 && fds[i] != ctl[0] && fds[i] != rep[1])
			close(fds[i]);	/* the pipes' ends: closed below */
	for (int i = 0; i < 2; i++) {
		if (ctl[i] >= 0)
			close(ctl[i]);
		if (rep[i] >= 0)
			close(rep[i]);
	}
	if (devnull >= 0)
		close(devnull);
	if (rc < 0)
		ocirt_egress_abort(e);
	return rc;
}

int ocirt_egress_commit(struct ocirt_egress *e, pid_t init, unsigned long long start_time)
{
	struct helper_commit cm = {init, start_time};
	if (e->ctl < 0)
		return 0;	/* no helper */
	int r = write(e->ctl, &cm, sizeof(cm)) == (ssize_t)sizeof(cm) ? 0 : -1;
	if (e->ctl >= 0)
		close(e->ctl);
	e->ctl = -1;
	if (r < 0)
		ocirt_fail("egress proxy: gone before the container was created");
	return r;
}

/* pidfd: the helper, pinned; killed and waited for (it is not our child: its exit shows
 * as the pidfd becoming readable; its reaper is a subreaper or init). */
static void kill_and_wait(int pidfd)
{
	(void)sys_pidfd_send_signal(pidfd, SIGKILL);
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	while (poll(&p, 1, HELPER_EXIT_MS) < 0 && errno == EINTR)
		;
}

void ocirt_egress_abort(struct ocirt_egress *e)
{
	if (e->ctl >= 0)
		close(e->ctl);
	if (e->pidfd >= 0) {
		kill_and_wait(e->pidfd);
		close(e->pidfd);
	}
	if (e->netfd >= 0)
		close(e->netfd);
	*e = (struct ocirt_egress){.netfd = -1, .ctl = -1, .pidfd = -1};
}

void ocirt_egress_done(struct ocirt_egress *e)
{
	if (e->pidfd >= 0)
		close(e->pidfd);
	if (e->netfd >= 0)
		close(e->netfd);
	if (e->ctl >= 0)
		close(e->ctl);
	*e = (struct ocirt_egress){.netfd = -1, .ctl = -1, .pidfd = -1};
}

void ocirt_egress_stop(const struct ocirt_state *st)
{
	if (st->proxy_pid <= 0)
		return;
	int fd = sys_pidfd_open(st->proxy_pid, 0);
	unsigned long long start;
	bool zombie;
	/* checked once the pidfd pins it: a recycled pid is never signalled */
	if (fd >= 0 && proc_start_time(st->proxy_pid, &start, &zombie) == 0 &&
	    start == st->proxy_start_time && !zombie)
		kill_and_wait(fd);
	if (fd >= 0)
		close(fd);
}
