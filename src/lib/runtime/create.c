/* create.c: `create` builds the whole jail (namespaces, id maps, cgroup with resources, the
 * mounts and pivot) around a container init that then waits on the exec fifo; `start` opens
 * the fifo and the init applies the process's confinement and execs; `run` is both. */
#include "lib/runtime/verbs.h"

#include "common/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIFO "exec.fifo"
#define READY_WAIT_MS 60000

extern char **environ;

/* What the init reports to create once its root is built (or why it is not). */
struct init_report {
	int err;		/* 0, or an errno */
	char what[480];
};

struct init_args {
	const struct ocirt_config *c;
	const struct ocirt_jail *j;
	int sync;		/* the init's end of the socketpair */
	int fifo;		/* O_PATH of <state>/exec.fifo */
	int console;		/* connected --console-socket, or -1 */
	int preserve_fds;
};

static const struct {
	enum ocirt_ns ns;
	int flag;
	const char *name;
} ns_table[] = {
	{OCIRT_NS_USER, CLONE_NEWUSER, "user"},	 {OCIRT_NS_MOUNT, CLONE_NEWNS, "mnt"},
	{OCIRT_NS_PID, CLONE_NEWPID, "pid"},	 {OCIRT_NS_NET, CLONE_NEWNET, "net"},
	{OCIRT_NS_IPC, CLONE_NEWIPC, "ipc"},	 {OCIRT_NS_UTS, CLONE_NEWUTS, "uts"},
	{OCIRT_NS_CGROUP, CLONE_NEWCGROUP, "cgroup"}, {OCIRT_NS_TIME, CLONE_NEWTIME, "time"},
};

static void report(int sync, int err, const char *what)
{
	struct init_report r = {.err = err};
	snprintf(r.what, sizeof(r.what), "%s", what);
	if (write(sync, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(1);
}

/* Once the root is built: every fd from 3 + preserve up closed but the init's own (create's
 * flock of the state dir, the engine's other fds such as conmon's sync pipes or the shim's
 * socket, the mount sources create opened: none of the container's business). */
static void close_others(const struct init_args *a, int fddir)
{
	int keep[3] = {a->sync, a->fifo, fddir}, lo = 3 + a->preserve_fds;
	for (int i = 0; i < 3; i++)	/* sorted, ascending */
		for (int k = i + 1; k < 3; k++)
			if (keep[k] < keep[i]) {
				int t = keep[i];
				keep[i] = keep[k];
				keep[k] = t;
			}
	for (int i = 0; i < 3; i++) {
		if (keep[i] < lo)
			continue;
		if (keep[i] > lo)
			(void)syscall(SYS_close_range, lo, keep[i] - 1, 0);
		lo = keep[i] + 1;
	}
	(void)syscall(SYS_close_range, lo, ~0U, 0);
}

/* create's "go" (its maps are written), with the rootfs's rebuilt tree when it made one
 * (overlay.c), which takes the place of the tree the init inherited. */
static int send_go(int sync, int tree)
{
	char go = 'g';
	struct iovec iov = {&go, 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u = {0};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	if (tree >= 0) {
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &tree, sizeof(int));
	}
	return sendmsg(sync, &m, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int recv_go(const struct init_args *a)
{
	char go;
	struct iovec iov = {&go, 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			   .msg_controllen = sizeof(u.buf)};
	if (recvmsg(a->sync, &m, MSG_CMSG_CLOEXEC) != 1)
		return -1;	/* create gave up */
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
		return 0;
	int tree, root = ocirt_jail_root_tree(a->j);
	memcpy(&tree, CMSG_DATA(c), sizeof(int));
	int r = root >= 0 && dup3(tree, root, O_CLOEXEC) == root ? 0 : -1;
	close(tree);
	return r;
}

/* The container's init: runs in the new namespaces. Steps in order; any failure is
 * reported to create (before the fifo) or to the container's stderr (after). */
static int init_main(const struct init_args *a)
{
	char what[400] = "";
	int r;
	if (recv_go(a) < 0)
		_exit(1);
	if (a->c->ns_wanted[OCIRT_NS_USER] && !a->c->ns_path[OCIRT_NS_USER] &&
	    (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)) {
		report(a->sync, errno, "become the user namespace's root (no map for id 0?)");
		_exit(1);
	}
	/* a cgroup namespace rooted at the container's cgroup, which create joined us to */
	if (a->c->ns_wanted[OCIRT_NS_CGROUP] && !a->c->ns_path[OCIRT_NS_CGROUP] &&
	    unshare(CLONE_NEWCGROUP) < 0) {
		report(a->sync, errno, "unshare the cgroup namespace");
		_exit(1);
	}
	/* issue 16: rt-gaps. A process exec'd into the created container must not reach the
	 * fifo or the fd dir below through /proc/1 (the id change above made us undumpable
	 * where fs.suid_dumpable is 0; said here whatever it is), nor read the host's paths
	 * of our command line there (runc's shows "runc init") */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		report(a->sync, errno, "make the init undumpable");
		_exit(1);
	}
	proc_hide_cmdline("agentd-runc init");
	/* the fifo is reopened through our fd dir of the host's /proc, held across the pivot */
	int fddir = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fddir < 0) {
		report(a->sync, errno, "open /proc/self/fd");
		_exit(1);
	}
	if ((r = ocirt_jail_apply_root(a->j, what, sizeof(what))) < 0) {
		report(a->sync, -r, what);
		_exit(1);
	}
	if (a->c->process.terminal &&
	    (r = ocirt_console_setup(a->console, a->c->process.console_rows,
				     a->c->process.console_cols, what, sizeof(what))) < 0) {
		report(a->sync, -r, what);
		_exit(1);
	}
	close_others(a, fddir);
	report(a->sync, 0, "");
	close(a->sync);
	char name[16];
	snprintf(name, sizeof(name), "%d", a->fifo);
	int w = openat(fddir, name, O_WRONLY | O_CLOEXEC);	/* blocks until `start` */
	if (w < 0 || write(w, "0", 1) != 1)
		_exit(1);
	close(w);
	close(a->fifo);
	close(fddir);
	if (a->c->process.cwd && chdir(a->c->process.cwd) < 0) {
		fprintf(stderr, "agentd-runc: init: chdir %s: %s\n", a->c->process.cwd,
			strerror(errno));
		_exit(127);
	}
	if ((r = ocirt_jail_apply_process(a->j, what, sizeof(what))) < 0) {
		fprintf(stderr, "agentd-runc: init: %s: %s\n", what, strerror(-r));
		_exit(127);
	}
	(void)fds_close_from(3 + a->preserve_fds);
	environ = a->c->process.env;
	execvp(a->c->process.args[0], a->c->process.args);
	fprintf(stderr, "agentd-runc: exec %s: %s\n", a->c->process.args[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

static int write_map(pid_t pid, const char *file, const struct ocirt_idmap *m, size_t n)
{
	char buf[4096];
	size_t off = 0;
	for (size_t i = 0; i < n && off < sizeof(buf) - 40; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%u %u %u\n",
					m[i].container_id, m[i].host_id, m[i].size);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int r = fd < 0 || write(fd, buf, off) != (ssize_t)off ? -errno : 0;
	if (fd >= 0)
		close(fd);
	if (r < 0)
		ocirt_fail("write %s: %s", file, strerror(-r));
	return r;
}

/* Namespaces the config names by path are joined here, before the clone, so the init is
 * born in them. A user or mount namespace of another process is not joined: refused. */
static int join_namespaces(const struct ocirt_config *c)
{
	for (size_t i = 0; i < ARRAY_SIZE(ns_table); i++) {
		const char *path = c->ns_path[ns_table[i].ns];
		if (!c->ns_wanted[ns_table[i].ns] || !path)
			continue;
		if (ns_table[i].ns == OCIRT_NS_USER || ns_table[i].ns == OCIRT_NS_MOUNT)
			return ocirt_fail("linux.namespaces: joining the %s namespace %s is not "
					  "supported by agentd-runc", ns_table[i].name, path);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, ns_table[i].flag) < 0) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			return ocirt_fail("linux.namespaces: join %s namespace %s: %s",
					  ns_table[i].name, path, strerror(e));
		}
		close(fd);
	}
	return 0;
}

static int clone_flags(const struct ocirt_config *c)
{
	int flags = 0;
	for (size_t i = 0; i < ARRAY_SIZE(ns_table); i++)
		if (c->ns_wanted[ns_table[i].ns] && !c->ns_path[ns_table[i].ns] &&
		    ns_table[i].ns != OCIRT_NS_CGROUP)
			flags |= ns_table[i].flag;
	return flags;
}

/* The host id the container's id 0 maps to (0 without a user namespace). */
static uint32_t host_root_id(const struct ocirt_idmap *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].container_id == 0)
			return m[i].host_id;
	return 0;
}

/* The exec fifo, writable by the container's root (the init reopens it after becoming it). */
static int make_fifo(const struct ocirt_state *st, const struct ocirt_config *c)
{
	if (mkfifoat(st->dirfd, FIFO, 0622) < 0)
		return ocirt_fail("container %s: exec fifo: %s", st->id, strerror(errno)), -1;
	if (fchownat(st->dirfd, FIFO, host_root_id(c->uid_maps, c->n_uid_maps),
		     host_root_id(c->gid_maps, c->n_gid_maps), AT_SYMLINK_NOFOLLOW) < 0 ||
	    fchmodat(st->dirfd, FIFO, 0622, 0) < 0)
		return ocirt_fail("container %s: exec fifo: %s", st->id, strerror(errno)), -1;
	int fd = openat(st->dirfd, FIFO, O_PATH | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ocirt_fail("container %s: exec fifo: %s", st->id, strerror(errno)), -1;
	return fd;
}

/* Wait for the init's report; 0 when its root is built. */
static int await_init(int sync, int pidfd, const char *id)
{
	struct pollfd p[2] = {{.fd = sync, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
	if (poll(p, 1, READY_WAIT_MS) <= 0)
		return ocirt_fail("container %s: the init did not report within %d s", id,
				  READY_WAIT_MS / 1000), -1;
	struct init_report r;
	ssize_t n = read(sync, &r, sizeof(r));
	if (n != (ssize_t)sizeof(r))
		return ocirt_fail("container %s: the init exited while building the jail", id),
		       -1;
	r.what[sizeof(r.what) - 1] = 0;
	if (r.err)
		return ocirt_fail("container %s: %s: %s", id, r.what, strerror(r.err)), -1;
	return 0;
}

/* The rootfs tree idmapped through the init's user namespace: the image's root-owned
 * files are the container root's, who makes the mount points an image lacks. An engine's
 * overlayfs, which cannot be idmapped, is rebuilt from its idmapped layers (overlay.c): that
 * tree's fd, for the init, is returned. A filesystem without idmapped mounts, or an overlay
 * that cannot be rebuilt, runs as it is (the container's root then owns nothing of it): -1.
 * issue 16: rt-ids. With a user namespace the floor added (a slot per container), the
 * config's binds too: a volume's files keep the container's ids on disk, whichever slot
 * wrote them; a bind whose filesystem refuses is named in the --debug log. */
static void idmap_binds(struct ocirt_jail *j, const struct ocirt_config *c, int userns)
{
	if (!c->userns_added)
		return;
	_cleanup_(freep) char *refused = NULL;
	ocirt_jail_idmap_binds(j, c, userns, &refused);
	if (refused)
		ocirt_debug("binds not idmapped (the container's root writes them as host uid "
			    "%u): %s", (unsigned)host_root_id(c->uid_maps, c->n_uid_maps), refused);
}

static int idmap_root(struct ocirt_jail *j, const struct ocirt_config *c, pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	_cleanup_(closep) int userns = open(path, O_RDONLY | O_CLOEXEC);
	agentd_error err = {0}, ovl = {0};
	if (userns < 0) {
		ocirt_debug("rootfs not idmapped: %s: %s", path, strerror(errno));
		return -1;
	}
	idmap_binds(j, c, userns);
	if (ocirt_jail_idmap_root(j, userns, &err) == 0)
		return -1;
	uid_t uid = host_root_id(c->uid_maps, c->n_uid_maps);
	gid_t gid = host_root_id(c->gid_maps, c->n_gid_maps);
	int tree = err.code != EINVAL ? -1
				      : ocirt_overlay_idmapped(c->root_path, userns, uid, gid, &ovl);
	if (tree < 0)
		ocirt_debug("rootfs not idmapped: %s%s%s", err.msg, ovl.code ? "; " : "", ovl.msg);
	else
		ocirt_debug("rootfs: an overlay rebuilt from idmapped layers");
	return tree;
}

struct create_opts {
	const char *bundle, *pid_file, *console_socket, *preserve_fds;
	bool no_pivot, no_new_keyring;
	bool own_child;		/* run: the init is our child, not our caller's */
};

/* Everything create made, undone (a failed create leaves no trace); true when nothing of
 * it is left (its user namespace slot is free again at once). */
static bool create_undo(struct ocirt_state *st, struct ocirt_cgroup *cg, int pidfd)
{
	bool cleaned = true;
	if (pidfd >= 0)
		(void)sys_pidfd_send_signal(pidfd, SIGKILL);
	if (cg->n)
		cleaned = ocirt_cgroup_destroy(cg) == 0;
	if (st->dirfd >= 0)
		cleaned &= ocirt_state_remove(st) == 0;
	return cleaned;
}

static pid_t clone_init(int flags, bool own_child, int *pidfd)
{
	struct clone_args ca = {
		.flags = (uint64_t)flags | CLONE_PIDFD | (own_child ? 0 : CLONE_PARENT),
		.pidfd = (uint64_t)(uintptr_t)pidfd,
		.exit_signal = own_child ? SIGCHLD : 0,
	};
	return (pid_t)sys_clone3(&ca, sizeof(ca));
}

static int create_container(const char *id, const struct create_opts *o, pid_t *init_pid)
{
	_cleanup_(freep) char *bundle = realpath(o->bundle ? o->bundle : ".", NULL);
	if (!bundle)
		return ocirt_fail("--bundle %s: %s", o->bundle ? o->bundle : ".", strerror(errno));
	struct ocirt_config *c = NULL;
	if (ocirt_load_checked(bundle, &c) < 0)
		return 1;
	if (c->process.terminal && !o->console_socket) {
		ocirt_config_free(c);
		return ocirt_fail("process.terminal is set: --console-socket is required");
	}
	struct ocirt_jail j = {0};
	agentd_error err = {0};
	if (ocirt_jail_prepare(c, &j, &err) < 0) {
		ocirt_config_free(c);
		return ocirt_fail("%s", err.msg);
	}
	ocirt_warn_ambient(&c->process);
	struct ocirt_state st;
	struct ocirt_cgroup cg = {0};
	struct host_ids ids = {.lease_fd = -1};
	bool cleaned = false;
	int rc = 1, r, pidfd = -1, fifo = -1, console = -1, sv[2] = {-1, -1}, root_tree = -1,
	    saved = -1;
	pid_t pid = -1;
	struct ocirt_egress eg = {.netfd = -1, .ctl = -1, .pidfd = -1};
	if (ocirt_state_new(id, &st) < 0) {
		if (st.dirfd >= 0 && errno != EEXIST)
			(void)ocirt_state_remove(&st);
		goto out_early;
	}
	if (ocirt_userns_lease(c, &st, &ids) < 0)
		goto fail;
	st.bundle = xstrdup(bundle);
	st.rootfs = xstrdup(c->root_path);
	kvv_copy(&st.annotations, &c->annotations);
	if (!(st.cgroup = ocirt_cgroup_path(c->cgroups_path, id)) ||
	    ocirt_cgroup_open(st.cgroup, true, &cg) < 0 ||
	    ocirt_cgroup_set(&cg, &c->resources) < 0 || (fifo = make_fifo(&st, c)) < 0)
		goto fail;
	if (o->console_socket && c->process.terminal &&
	    (console = ocirt_console_connect(o->console_socket)) < 0)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		ocirt_fail("socketpair: %s", strerror(errno));
		goto fail;
	}
	/* the bundle's rootfs and binds as detached trees opened here, as host root: engines
	 * keep bundles below 0700 dirs the container's mapped root cannot traverse */
	mount_plan_open_sources(&j.mounts, host_root_id(c->uid_maps, c->n_uid_maps),
				host_root_id(c->gid_maps, c->n_gid_maps));
	/* the mount points the image lacks, made here as host root: the container's root
	 * cannot create in a rootfs host root owns (one that could not be idmapped) */
	ocirt_jail_make_mount_points(&j);
	/* issue 16: rt-egress. The proxy helper forked before the config's namespaces are
	 * joined: it runs in the host's network namespace */
	if (ocirt_egress_start(c, &j, &st, &cg, &eg) < 0)
		goto fail;
	st.proxy_pid = eg.pid;
	st.proxy_start_time = eg.start_time;
	if (join_namespaces(c))
		goto fail;
	if ((r = ocirt_jail_set_oom_score_adj(&j)) < 0) {
		ocirt_fail("process.oomScoreAdj: %s", strerror(-r));
		goto fail;
	}
	int flags = clone_flags(c);
	if (eg.made) {	/* the namespace egress made, with its listener: entered */
		flags &= ~CLONE_NEWNET;
		if (netns_enter_for_clone(eg.netfd, &saved) < 0) {
			ocirt_fail("enter the container's network namespace: %s", strerror(errno));
			goto fail;
		}
	}
	pid = clone_init(flags, o->own_child, &pidfd);
	if (pid != 0 && saved >= 0)
		netns_leave_after_clone(saved);
	if (pid < 0) {
		ocirt_fail("clone the container's init: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		close(sv[0]);
		struct init_args a = {c, &j, sv[1], fifo, console,
				      o->preserve_fds ? atoi(o->preserve_fds) : 0};
		init_main(&a);
	}
	close(sv[1]);
	sv[1] = -1;
	if ((c->ns_wanted[OCIRT_NS_USER] && !c->ns_path[OCIRT_NS_USER] &&
	     (write_map(pid, "uid_map", c->uid_maps, c->n_uid_maps) < 0 ||
	      write_map(pid, "gid_map", c->gid_maps, c->n_gid_maps) < 0)) ||
	    ocirt_cgroup_attach(&cg, pid) < 0)
		goto fail;
	if (c->ns_wanted[OCIRT_NS_USER] && !c->ns_path[OCIRT_NS_USER])
		root_tree = idmap_root(&j, c, pid);
	r = send_go(sv[0], root_tree);
	if (root_tree >= 0)
		close(root_tree);	/* the init's now, or nobody's: no mount outlives it */
	if (r < 0 || await_init(sv[0], pidfd, id) < 0)
		goto fail;
	bool zombie;
	st.pid = pid;
	if (proc_start_time(pid, &st.start_time, &zombie) < 0 || zombie) {
		ocirt_fail("container %s: the init exited", id);
		goto fail;
	}
	if (ocirt_run_create_hooks(c, &st) < 0)
		goto fail;
	r = ocirt_state_save(&st);
	if (r < 0) {
		ocirt_fail("container %s: write state.json: %s", id, strerror(-r));
		goto fail;
	}
	if (ocirt_egress_commit(&eg, pid, st.start_time) < 0)
		goto fail;
	if (o->pid_file && (r = ocirt_write_pid_file(o->pid_file, pid)) < 0) {
		ocirt_fail("--pid-file %s: %s", o->pid_file, strerror(-r));
		goto fail;
	}
	ocirt_debug("container %s: init %d waits on %s", id, (int)pid, FIFO);
	*init_pid = pid;
	rc = 0;
	goto out;
fail:
	ocirt_egress_abort(&eg);
	cleaned = create_undo(&st, &cg, pidfd);
out:
	ocirt_egress_done(&eg);
	ocirt_userns_keep(&ids, cleaned);
	ocirt_state_close(&st);
out_early:
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
	if (pidfd >= 0)
		close(pidfd);
	if (fifo >= 0)
		close(fifo);
	if (console >= 0)
		close(console);
	ocirt_cgroup_free(&cg);
	ocirt_jail_free(&j);
	ocirt_config_free(c);
	return rc;
}

static int parse_create(int argc, char **argv, struct create_opts *o, const char **id,
			bool *detach)
{
	const struct ocirt_opt opts[] = {
		{"bundle", 'b', true, &o->bundle, NULL, NULL},
		{"pid-file", 0, true, &o->pid_file, NULL, NULL},
		{"console-socket", 0, true, &o->console_socket, NULL, NULL},
		{"preserve-fds", 0, true, &o->preserve_fds, NULL, NULL},
		{"no-pivot", 0, false, NULL, &o->no_pivot, NULL},
		{"no-new-keyring", 0, false, NULL, &o->no_new_keyring, NULL},
		{"detach", 'd', false, NULL, detach, NULL},
		{NULL, 0, false, NULL, NULL, NULL},
	};
	int i;
	if (ocirt_parse_opts(argc, argv, opts, &i) < 0)
		return -1;
	if (i != argc - 1)
		return ocirt_fail("%s: exactly one container id expected", argv[0]), -1;
	if (o->preserve_fds) {
		char *end;
		long n = strtol(o->preserve_fds, &end, 10);
		if (*end || n < 0 || n > 1024)
			return ocirt_fail("--preserve-fds %s: a count 0..1024", o->preserve_fds),
			       -1;
	}
	*id = argv[i];
	return 0;
}

int ocirt_cmd_create(int argc, char **argv)
{
	struct create_opts o = {0};
	const char *id;
	bool detach = false;
	pid_t pid;
	if (parse_create(argc, argv, &o, &id, &detach) < 0)
		return 1;
	return create_container(id, &o, &pid);
}

/* start: the init is released by reading its byte from the fifo. */
static int start_container(const char *id)
{
	struct ocirt_state st;
	if (ocirt_state_open(id, true, &st) < 0) {
		ocirt_state_close(&st);
		return 1;
	}
	int rc = 1;
	enum ocirt_status s = ocirt_status(&st);
	if (s != OCIRT_CREATED) {
		ocirt_fail("cannot start a container that is %s", ocirt_status_name(s));
		goto out;
	}
	int fd = openat(st.dirfd, FIFO, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		ocirt_fail("container %s: exec fifo: %s", id, strerror(errno));
		goto out;
	}
	char b = 0;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 100) > 0 && read(fd, &b, 1) == 1)
			break;
		if (!ocirt_init_alive(&st)) {
			ocirt_fail("container %s: the init exited before start", id);
			close(fd);
			goto out;
		}
	}
	close(fd);
	(void)unlinkat(st.dirfd, FIFO, 0);
	st.started = true;
	int r = ocirt_state_save(&st);
	if (r < 0)
		ocirt_fail("container %s: write state.json: %s", id, strerror(-r));
	rc = r < 0;
out:
	ocirt_state_close(&st);
	return rc;
}

int ocirt_cmd_start(int argc, char **argv)
{
	if (argc != 2)
		return ocirt_fail("start: exactly one container id expected");
	return start_container(argv[1]);
}

/* run: create + start; without --detach, waits for the init and deletes the container. */
int ocirt_cmd_run(int argc, char **argv)
{
	struct create_opts o = {0};
	const char *id;
	bool detach = false;
	pid_t pid;
	if (parse_create(argc, argv, &o, &id, &detach) < 0)
		return 1;
	o.own_child = !detach;
	if (create_container(id, &o, &pid) != 0)
		return 1;
	if (start_container(id) != 0)
		return 1;
	if (detach)
		return 0;
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	char *del[] = {"delete", "--force", (char *)id, NULL};
	(void)ocirt_cmd_delete(3, del);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
