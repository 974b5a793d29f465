/* container.c: the container backend — user, mount, pid, net, uts, ipc and cgroup
 * namespaces, a fresh root, and a small init (PID 1) that holds the sandbox and forks each
 * exec on request, so one sandbox serves many commands; one-shot runs are create+exec+destroy.
 *
 * The init is a clone3 child of agentd that never execs: its mm belongs to the host user
 * namespace and it is non-dumpable, so nothing inside can open /proc/1/exe (agentd's own
 * binary, CVE-2019-5736) or ptrace it. It only uses syscalls after the clone (it may have
 * been cloned from a multithreaded daemon, so no malloc, no stdio). */
#include "internal.h"

#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#define NOBODY 65534
/* The sandbox's only user: commands run as uid/gid 1000 inside, the only id mapped, so
 * there is no root inside at all (files of the host's root show as nobody). */
#define AGENT_ID 1000
#define MAX_EXECS 64
#define MAX_PAYLOAD (8u << 20)	/* argv + env + cwd of one exec */
#define INIT_CTL_FD 3
#define INIT_SETUP_FD 4
#define INIT_LANDLOCK_FD 5
#define INIT_ONCE_FD 6	/* one-shot: the command's stdin, stdout, stderr (6, 7, 8) */
#define CHILD_REPORT_FD 3
#define DESTROY_WAIT_MS 2000
#define STR_(x) #x
#define STR(x) STR_(x)

enum { OP_EXEC = 1, OP_KILL = 2, OP_PROXY_FD = 3 /* init → host */ };
struct ctl_msg {
	uint32_t op;
	uint32_t pad;
	uint64_t id;
};

/* One-shot mode: the one command the init runs right after its setup, and the host's
 * channels for it (inherited at clone time). */
struct init_once {
	char *const *argv;
	char *const *envp;
	const char *cwd;
	int fds[4];			/* stdin, stdout, stderr, report (exec.c's pipes) */
	int kill_fd;			/* read end: a byte (or EOF) = kill the command */
};

/* What the init needs, prepared by the parent before the clone (the child only reads). */
struct init_args {
	const struct init_once *once;	/* NULL: a persistent sandbox, served over ctl */
	struct mount_plan *mp;
	const struct seccomp_prog *sc;
	const struct rlimit_set *rl;
	int ctl;			/* child end of the control socketpair */
	int setup;			/* write end of the setup report pipe */
	int go_fd;			/* >= 0: wait for a byte here (the cgroup is joined) before
					 * anything but the root filesystem is set up */
	int go_wr;			/* its write end, the host's: closed here */
	bool set_groups;		/* root: drop supplementary groups inside */
	uid_t host_uid;			/* for messages */
	uint64_t ignored;		/* signals the owner ignores (reset in the init) */
	bool net_none;
	bool net_prebuilt;	/* cloned inside a namespace netns.c made */
	bool net_allowlist;		/* create the egress proxy's listener, send it on ctl */
	const char *ll_ro[4];
	const char *ll_rw[64];
	const char *rw_check[64];	/* policy paths the sandbox's user must be able to write */
};

/* Set in the init only (commands inherit the memory): the Landlock ruleset exists. */
static bool init_has_landlock;

struct ctr {
	int ctl;
	pid_t init_pid;
	int init_pidfd;
	struct cgroup *cg;
	uid_t host_uid;
	gid_t host_gid;
	bool unprivileged;
	struct rlimit_set rl;
	pthread_mutex_t lock;
	bool suspended;
	uint64_t next_id;
	char *snap_dir;			/* <work_root>/<id>, created on the first snapshot */
	int workdir_fd;			/* the workdir in the sandbox's root, opened before any
					 * sandboxed code ran (files API) */
	agentd_proxy *proxy;		/* serving this sandbox's listener (allowlist) */
};

/* ------------------------------------------------------------- init (child) side */

static __attribute__((noreturn)) void init_fail(int fd, int r, const char *what)
{
	child_fail(fd, 125, r < 0 ? -r : r, what);
}

/* One control message with nfds (<= 5) fds attached; 0 or -1 + errno. No malloc: the init
 * sends on it too. */
static int ctl_send(int sock, const struct ctl_msg *m, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(5 * sizeof(int))];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof(*m)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int))};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(*m) ? 0 : -1;
}

/* The egress proxy's socket: a listener on 127.0.0.1:AGENTD_PROXY_PORT in this network
 * namespace (a socket's namespace is fixed when it is created), handed to the host over
 * the control socket. The init keeps no copy, so nothing inside can accept on it. */
static int send_proxy_listener(int ctl)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct sockaddr_in in = {.sin_family = AF_INET,
				 .sin_port = htons(AGENTD_PROXY_PORT),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int r = 0;
	if (bind(s, (struct sockaddr *)&in, sizeof(in)) < 0 || listen(s, 4096) < 0) {
		r = -errno;
		close(s);
		return r;
	}
	struct ctl_msg m = {.op = OP_PROXY_FD};
	if (ctl_send(ctl, &m, &s, 1) < 0)
		r = -errno;
	close(s);
	return r;
}

/* Move fd to exactly `to` (no collision with the others: they were moved high first). */
static int place_fd(int fd, int to)
{
	if (fd == to)
		return 0;
	if (dup3(fd, to, O_CLOEXEC) < 0)
		return -errno;
	close(fd);
	return 0;
}

struct running {
	uint64_t id;
	pid_t pid;
	int report;
};

static void write_exit_report(int fd, int status, const struct rusage *ru)
{
	struct child_report rep;
	memset(&rep, 0, sizeof(rep));
	rep.kind = REPORT_EXIT;
	rep.status = status;
	rep.ru = *ru;
	if (write(fd, &rep, sizeof(rep)) < 0) {
		/* the host stopped listening: nothing to do */
	}
}

static void report_fail_fd(int fd, int code, int errnum, const char *what)
{
	struct child_report rep;
	memset(&rep, 0, sizeof(rep));
	rep.kind = REPORT_FAIL;
	rep.exit_code = code;
	rep.errnum = errnum;
	size_t n = strlen(what);
	memcpy(rep.what, what, n < sizeof(rep.what) - 1 ? n : sizeof(rep.what) - 1);
	if (write(fd, &rep, sizeof(rep)) < 0) {
		/* nothing to do */
	}
}

/* The command's process, forked by init: its own session, stdio, rlimits, Landlock, then
 * execve. The seccomp filter, no_new_privs and the empty capability sets are inherited. */
static __attribute__((noreturn)) void command_child(const struct init_args *a, int fds[4],
						     char **argv, char **envp, const char *cwd)
{
	/* The init ignores no signal and only blocks SIGCHLD (for its signalfd). */
	child_reset_signals(0);
	if (setsid() < 0)
		_exit(125);
	if (dup3(fds[3], CHILD_REPORT_FD, O_CLOEXEC) < 0)
		_exit(125);
	if (dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[2], 2) < 0)
		child_fail(CHILD_REPORT_FD, 125, errno, "set up stdio");
	int r = rlimits_apply(a->rl);
	if (r < 0)
		child_fail(CHILD_REPORT_FD, 125, -r, "setrlimit");
	if (init_has_landlock) {
		int ll = dup(INIT_LANDLOCK_FD);
		if (ll < 0 || (r = landlock_apply(ll)) < 0)
			child_fail(CHILD_REPORT_FD, 125, ll < 0 ? errno : -r,
				   "landlock_restrict_self");
	}
	r = fds_close_from(CHILD_REPORT_FD + 1);
	if (r < 0)
		child_fail(CHILD_REPORT_FD, 125, -r, "close inherited fds");
	if (chdir(cwd) < 0) {
		char what[300];
		snprintf(what, sizeof(what), "chdir %s", cwd);
		child_fail(CHILD_REPORT_FD, 125, errno, what);
	}
	r = child_execvpe(argv, envp);
	child_fail(CHILD_REPORT_FD, exec_failure_code(r), -r, argv[0]);
}

/* Payload layout (memfd): u32 argc, u32 envc, then cwd, argv[], envp[] as NUL-terminated
 * strings. Parsed into pointer arrays in an anonymous mapping (no malloc here). */
static int start_exec(const struct init_args *a, struct running *run, size_t *nrun, uint64_t id,
		      int fds[5])
{
	int ret = 0;
	struct stat st;
	void *map = MAP_FAILED, *ptrs = MAP_FAILED;
	size_t ptrs_len = 0;
	if (*nrun == MAX_EXECS) {
		report_fail_fd(fds[3], 125, EBUSY, "too many concurrent execs in this sandbox");
		goto out;
	}
	if (fstat(fds[4], &st) < 0 || st.st_size < 8 || st.st_size > MAX_PAYLOAD) {
		report_fail_fd(fds[3], 125, EINVAL, "bad exec request");
		goto out;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fds[4], 0);
	if (map == MAP_FAILED) {
		report_fail_fd(fds[3], 125, errno, "map exec request");
		goto out;
	}
	const char *p = map, *end = p + st.st_size;
	uint32_t argc, envc;
	memcpy(&argc, p, 4);
	memcpy(&envc, p + 4, 4);
	p += 8;
	if (argc < 1 || argc > 1u << 20 || envc > 1u << 20 || end[-1] != '\0') {
		report_fail_fd(fds[3], 125, EINVAL, "bad exec request");
		goto out;
	}
	ptrs_len = ((size_t)argc + envc + 2) * sizeof(char *);
	ptrs = mmap(NULL, ptrs_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ptrs == MAP_FAILED) {
		report_fail_fd(fds[3], 125, errno, "map exec request");
		goto out;
	}
	char **argv = ptrs, **envp = argv + argc + 1;
	const char *cwd = p;
	p += strlen(p) + 1;
	for (uint32_t i = 0; i < argc + envc; i++) {
		if (p >= end) {
			report_fail_fd(fds[3], 125, EINVAL, "bad exec request");
			goto out;
		}
		if (i < argc)
			argv[i] = (char *)p;
		else
			envp[i - argc] = (char *)p;
		p += strlen(p) + 1;
	}
	argv[argc] = NULL;
	envp[envc] = NULL;

	pid_t pid = fork();
	if (pid == 0)
		command_child(a, fds, argv, envp, cwd);
	if (pid < 0) {
		report_fail_fd(fds[3], 125, errno, "fork");
		goto out;
	}
	run[*nrun].id = id;
	run[*nrun].pid = pid;
	run[*nrun].report = fds[3];
	fds[3] = -1; /* kept until the command ends */
	(*nrun)++;
out:
	if (ptrs != MAP_FAILED)
		munmap(ptrs, ptrs_len);
	if (map != MAP_FAILED)
		munmap(map, (size_t)st.st_size);
	for (int i = 0; i < 5; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return ret;
}

static void reap(struct running *run, size_t *nrun)
{
	for (;;) {
		int status;
		struct rusage ru;
		pid_t p = wait4(-1, &status, WNOHANG, &ru);
		if (p <= 0)
			return;
		for (size_t i = 0; i < *nrun; i++) {
			if (run[i].pid != p)
				continue;
			/* The command is over: so is everything it started in its session. */
			kill(-p, SIGKILL);
			write_exit_report(run[i].report, status, &ru);
			close(run[i].report);
			run[i] = run[--*nrun];
			break;
		}
	}
}

static __attribute__((noreturn)) void init_loop(const struct init_args *a)
{
	struct running run[MAX_EXECS];
	size_t nrun = 0;
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		_exit(125);
	for (;;) {
		struct pollfd pfd[2] = {{.fd = INIT_CTL_FD, .events = POLLIN},
					{.fd = sfd, .events = POLLIN}};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(125);
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) > 0)
				;
			reap(run, &nrun);
		}
		if (!pfd[0].revents)
			continue;
		struct ctl_msg m;
		char cbuf[CMSG_SPACE(5 * sizeof(int))];
		struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf)};
		ssize_t n = recvmsg(INIT_CTL_FD, &mh, MSG_CMSG_CLOEXEC);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			/* The owner is gone or destroyed us: the sandbox ends with PID 1. */
			_exit(0);
		}
		int fds[5] = {-1, -1, -1, -1, -1};
		int nfds = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			int cnt = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int i = 0; i < cnt; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (nfds < 5)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
		if (n == sizeof(m) && m.op == OP_EXEC && nfds == 5) {
			start_exec(a, run, &nrun, m.id, fds);
			continue;
		}
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (n == sizeof(m) && m.op == OP_KILL)
			for (size_t i = 0; i < nrun; i++)
				if (run[i].id == m.id)
					kill(-run[i].pid, SIGKILL);
	}
}

/* One-shot PID 1: fork the command, reap, and when the command ends report its status
 * and end the sandbox (PID 1's exit kills everything left in the namespace). A byte or EOF
 * on the kill pipe (timeout, cancel, owner gone) kills the command's session first, so
 * its status is still reported. Nothing inside can reach the pipe: it is the host's. */
static __attribute__((noreturn)) void init_run_once(const struct init_args *a)
{
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		init_fail(INIT_SETUP_FD, errno, "signalfd");
	int fds[4] = {INIT_ONCE_FD, INIT_ONCE_FD + 1, INIT_ONCE_FD + 2, INIT_SETUP_FD};
	pid_t pid = fork();
	if (pid == 0)
		command_child(a, fds, (char **)a->once->argv, (char **)a->once->envp,
			      a->once->cwd);
	if (pid < 0)
		init_fail(INIT_SETUP_FD, errno, "fork");
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	bool killed = false;
	for (;;) {
		struct pollfd pfd[2] = {{.fd = INIT_CTL_FD, .events = killed ? 0 : POLLIN},
					{.fd = sfd, .events = POLLIN}};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(125);
		}
		if (pfd[0].revents && !killed) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			killed = true;
		}
		if (!pfd[1].revents)
			continue;
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) > 0)
			;
		for (;;) {
			int status;
			struct rusage ru;
			pid_t p = wait4(-1, &status, WNOHANG, &ru);
			if (p <= 0)
				break;
			if (p != pid)
				continue;
			kill(-1, SIGKILL); /* everything else in the namespace */
			write_exit_report(INIT_SETUP_FD, status, &ru);
			_exit(0);
		}
	}
}

static __attribute__((noreturn)) void init_main(void *arg)
{
	const struct init_args *a = arg;
	int setup = a->setup;
	int r;
	char what[256];

	/* 1. Become the sandbox's user before touching anything: until now our kernel uid is
	 * still the caller's. Uid 0 is not mapped in this namespace, so this is not a move
	 * away from its root and the namespace capabilities stay until step 5 drops them. */
	if ((r = privs_set_ids(AGENT_ID, AGENT_ID, a->set_groups)) < 0)
		init_fail(setup, r, "set the sandbox's uid/gid in the user namespace");
	/* Not agentd's name or arguments: nothing inside should learn what holds it. */
	prctl(PR_SET_NAME, "init", 0, 0, 0);
	/* /proc/1/cmdline inside would show agentd's own command line (flags, paths) */
	proc_hide_cmdline("init");
	/* The credential change cleared any parent-death signal: set it now. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		init_fail(setup, errno, "PR_SET_PDEATHSIG");
	if (setsid() < 0)
		init_fail(setup, errno, "setsid");
	child_reset_signals(a->ignored);

	/* 2. The fresh root (mounts.c): tmpfs root, read-only runtime, filtered /etc, proc,
	 * minimal dev, scratch for workdir and /tmp, pivot_root. */
	what[0] = '\0';
	r = mount_plan_execute(a->mp, what, sizeof(what));
	if (r < 0)
		init_fail(setup, r, what[0] ? what : "set up the root filesystem");
	for (size_t i = 0; a->rw_check[i]; i++) {
		if (access(a->rw_check[i], W_OK) == 0)
			continue;
		snprintf(what, sizeof(what),
			 "read-write path %s is not writable by the sandbox's user (host uid %u)",
			 a->rw_check[i], (unsigned)a->host_uid);
		init_fail(setup, errno, what);
	}
	if (sethostname("agentd", 6) < 0)
		init_fail(setup, errno, "sethostname");
	/* A namespace made by netns.c already has lo up (and is not ours to change). */
	if ((a->net_none || a->net_allowlist) && !a->net_prebuilt &&
	    (r = netns_loopback_up()) < 0)
		init_fail(setup, r, "bring up lo");
	if (a->net_allowlist && (r = send_proxy_listener(a->ctl)) < 0)
		init_fail(setup, r, "egress proxy listener on 127.0.0.1:" STR(AGENTD_PROXY_PORT));
	/* On cgroup v1 the host moves us into the sandbox's cgroup while we set up the root
	 * (it makes the cgroup meanwhile): nothing else runs before we are in it. */
	if (a->go_fd >= 0) {
		close(a->go_wr);
		char go;
		ssize_t n;
		do
			n = read(a->go_fd, &go, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1)
			_exit(125); /* the host gave up: it reports why */
		close(a->go_fd);
		/* The cgroup namespace is rooted where we are now, the sandbox's cgroup. */
		if (unshare(CLONE_NEWCGROUP) < 0)
			init_fail(setup, errno, "unshare the cgroup namespace");
	}

	/* 3. stdio of PID 1 is /dev/null; its fds get fixed numbers, the rest is closed. */
	int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd < 0 || dup2(nullfd, 0) < 0 || dup2(nullfd, 1) < 0 || dup2(nullfd, 2) < 0)
		init_fail(setup, errno, "open /dev/null");
	if (nullfd > 2)
		close(nullfd);
	/* One-shot: the kill pipe takes the control socket's place and the command's stdio
	 * follows the Landlock fd; setup reports go to the command's report pipe. */
	int ctl = fcntl(a->once ? a->once->kill_fd : a->ctl, F_DUPFD_CLOEXEC, 100);
	int su = fcntl(setup, F_DUPFD_CLOEXEC, 100);
	int io[3] = {-1, -1, -1};
	for (int i = 0; a->once && i < 3; i++)
		if ((io[i] = fcntl(a->once->fds[i], F_DUPFD_CLOEXEC, 100)) < 0)
			init_fail(setup, errno, "move fds");
	if (ctl < 0 || su < 0)
		init_fail(setup, errno, "move fds");
	if (place_fd(ctl, INIT_CTL_FD) < 0 || place_fd(su, INIT_SETUP_FD) < 0)
		init_fail(setup, errno, "move fds");
	setup = INIT_SETUP_FD;
	for (int i = 0; a->once && i < 3; i++)
		if (place_fd(io[i], INIT_ONCE_FD + i) < 0)
			init_fail(setup, errno, "move fds");
	fds_close_from(a->once ? INIT_ONCE_FD + 3 : INIT_SETUP_FD + 1);

	/* 4. Landlock as defence in depth, built here because the tmpfs mounts exist only in
	 * this namespace: everything visible is read-only except the writable scratch. */
	int ll = landlock_ruleset_child(a->ll_ro, a->ll_rw, a->net_none, true);
	if (ll >= 0) {
		if (place_fd(ll, INIT_LANDLOCK_FD) < 0)
			init_fail(setup, errno, "move landlock fd");
		init_has_landlock = true;
	} else if (ll != -EOPNOTSUPP && ll != -ENOSYS) {
		init_fail(setup, ll, "landlock ruleset");
	}

	/* 5. PID 1 gives up everything before it serves: no capabilities (in any user
	 * namespace), no new privileges, not dumpable, the seccomp filter. Commands inherit. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		init_fail(setup, errno, "PR_SET_DUMPABLE");
	struct privs_plan pp = {.drop_caps = true};
	if ((r = privs_apply(&pp)) < 0)
		init_fail(setup, r, "drop capabilities");
	if ((r = privs_no_new_privs()) < 0)
		init_fail(setup, r, "PR_SET_NO_NEW_PRIVS");
	if (a->sc->active && (r = seccomp_apply(a->sc)) < 0)
		init_fail(setup, r, "seccomp");

	/* 6. Ready: closing the setup pipe without a report says so; a one-shot init runs
	 * its command instead. */
	if (a->once)
		init_run_once(a);
	close(setup);
	init_loop(a);
}

/* ------------------------------------------------------------- host side */

static int write_id_maps(void *arg, pid_t pid, agentd_error *err)
{
	const struct ctr *c = arg;
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
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	ssize_t n = recvmsg(c->ctl, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	struct cmsghdr *cm = n == (ssize_t)sizeof(m) ? CMSG_FIRSTHDR(&mh) : NULL;
	if (!cm || m.op != OP_PROXY_FD || cm->cmsg_level != SOL_SOCKET ||
	    cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int)))
		return agentd_error_set(err, EPROTO, "sandbox init: no egress proxy listener");
	int fd;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
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
	if (c->cg) {
		cgroup_destroy(c->cg);
		janitor_forget_cgroup(id);
	}
	if (c->snap_dir) {
		sandbox_dir_remove(b->work_root, id);
		janitor_forget_dir(c->snap_dir);
	}
	free(c->snap_dir);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int open_in_sandbox(struct ctr *c, const char *path, agentd_error *err);

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
	return 0;
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
	rlimits_from_limits(&spec->limits, &c->rl);

	/* Prepared /etc and /dev skeletons shared by every sandbox (mounts.c), next to the
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
	if (mount_plan_build(spec, &mo, &p->mp, err) < 0) {
		agentd_error_prefix(err, "root filesystem");
		goto fail;
	}
	struct seccomp_opts so = {.profile = spec->seccomp_profile};
	if (seccomp_prepare(&so, &p->sc, err) < 0) {
		agentd_error_prefix(err, "seccomp");
		goto fail;
	}
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
	ia->mp = &p->mp;
	ia->sc = &p->sc;
	ia->rl = &c->rl;
	ia->ctl = p->sp[1];
	ia->setup = p->setup[1];
	ia->go_fd = p->go[0];
	ia->go_wr = p->go[1];
	ia->set_groups = !c->unprivileged;
	ia->net_none = spec->network.mode == AGENTD_NET_NONE;
	ia->net_allowlist = spec->network.mode == AGENTD_NET_ALLOWLIST;
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
	ia->host_uid = c->host_uid;
	ia->ignored = ignored_signals();
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
	if (netfd >= 0) {
		if (netns_enter_for_clone(netfd, &saved_net) < 0) {
			agentd_error_errno(err, errno, "network: join the sandbox's namespace");
			close(netfd);
			return -1;
		}
		p->ia.net_prebuilt = true;
	} else if (sb->spec.network.mode != AGENTD_NET_HOST) {
		flags |= CLONE_NEWNET;
	}
	struct spawn_opts sop = {
		.clone_flags = flags,
		.cg = c->cg,
		.after_clone = write_id_maps,
		.after_arg = c,
		.child_fn = init_main,
		.child_arg = &p->ia,
	};
	if (p->late_cgroup) {
		sop.cg = NULL;
		sop.clone_flags &= ~(uint64_t)CLONE_NEWCGROUP; /* the init unshares it once moved */
	}
	c->init_pid = spawn_process(&sop, &c->init_pidfd, err);
	if (netfd >= 0) {
		netns_leave_after_clone(saved_net);
		close(netfd); /* the init holds the namespace now */
	}
	if (p->go[0] >= 0) {
		close(p->go[0]);
		p->go[0] = -1;
	}
	if (c->init_pid < 0)
		return agentd_error_prefix(err, "start the sandbox init");
	if (p->late_cgroup) {
		/* The init builds its root meanwhile; it goes on once it is in the cgroup. */
		int r;
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
	return 0;
kill:
	syscall(SYS_pidfd_send_signal, c->init_pidfd, SIGKILL, NULL, 0);
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

	sb->caps.can_write_filesystem = true;
	landlock_system_ro_paths(&sb->caps.readable_paths);
	for (size_t i = 0; i < spec->allowed_paths_ro.n; i++)
		strv_push(&sb->caps.readable_paths, spec->allowed_paths_ro.v[i]);
	strv_push(&sb->caps.writable_paths, spec->workdir);
	strv_push(&sb->caps.writable_paths, "/tmp");
	for (size_t i = 0; i < spec->allowed_paths_rw.n; i++)
		strv_push(&sb->caps.writable_paths, spec->allowed_paths_rw.v[i]);
	sb->caps.has_network = spec->network.mode != AGENTD_NET_NONE;
	strv_copy(&sb->caps.allowed_destinations, &spec->network.allow);
	sb->caps.syscall_filter_active = filtered;
	if (sb->caps.syscall_filter_active)
		for (const char *const *cat = seccomp_blocked_categories; *cat; cat++)
			strv_push(&sb->caps.blocked_syscall_categories, *cat);
	sb->caps.is_persistent = true;
	*out = sb;
	return 0;

fail:
	ctr_prep_free(&p);
	ctr_sandbox_free(sb);
	return -1;
}

/* The launcher of exec.c: hand the command to our init. */
struct launch_ctx {
	struct ctr *c;
	char *const *argv;
	char *const *envp;
	const char *cwd;
};

static int launch_start(void *arg, const int fds[4], uint64_t *handle, agentd_error *err)
{
	struct launch_ctx *l = arg;
	struct ctr *c = l->c;
	_cleanup_close_ int mfd = memfd_create("agentd-exec", MFD_CLOEXEC);
	if (mfd < 0)
		return agentd_error_errno(err, errno, "memfd_create");
	uint32_t argc = 0, envc = 0;
	size_t len = 8 + strlen(l->cwd) + 1;
	for (; l->argv[argc]; argc++)
		len += strlen(l->argv[argc]) + 1;
	for (; l->envp[envc]; envc++)
		len += strlen(l->envp[envc]) + 1;
	if (len > MAX_PAYLOAD)
		return agentd_error_set(err, E2BIG, "argument list too long (%zu bytes)", len);
	_cleanup_free_ char *buf = xmalloc(len);
	char *p = buf;
	memcpy(p, &argc, 4);
	memcpy(p + 4, &envc, 4);
	p += 8;
	p = stpcpy(p, l->cwd) + 1;
	for (uint32_t i = 0; i < argc; i++)
		p = stpcpy(p, l->argv[i]) + 1;
	for (uint32_t i = 0; i < envc; i++)
		p = stpcpy(p, l->envp[i]) + 1;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(mfd, buf + off, len - off);
		if (w < 0)
			return agentd_error_errno(err, errno, "write exec request");
		off += (size_t)w;
	}

	pthread_mutex_lock(&c->lock);
	*handle = ++c->next_id;
	pthread_mutex_unlock(&c->lock);
	struct ctl_msg m = {.op = OP_EXEC, .id = *handle};
	int sendfds[5] = {fds[0], fds[1], fds[2], fds[3], mfd};
	if (ctl_send(c->ctl, &m, sendfds, 5) < 0)
		return agentd_error_errno(err, errno, "the sandbox is not running");
	return 0;
}

static void launch_kill(void *arg, uint64_t handle)
{
	struct launch_ctx *l = arg;
	struct ctl_msg m = {.op = OP_KILL, .id = handle};
	if (send(l->c->ctl, &m, sizeof(m), MSG_NOSIGNAL) < 0) {
		/* init gone: its pid namespace took the command with it */
	}
}

static const struct exec_launcher container_launcher = {
	.start = launch_start,
	.kill = launch_kill,
};

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
	char **envp = env_build(&sb->spec, &extra, sb->spec.workdir, "/tmp");
	kvv_free(&extra);
	return envp;
}

/* The exec engine's request for cmd in sb (envp built by the caller). */
static exec_request ctr_request(const agentd_sandbox *sb, const agentd_command *cmd,
				const agentd_exec_ctx *ctx, char **envp)
{
	uint64_t timeout = sb->spec.limits.max_wall_time_ms;
	if (cmd->timeout_ms && (!timeout || cmd->timeout_ms < timeout))
		timeout = cmd->timeout_ms;
	return (exec_request){
		.argv = cmd->argv,
		.envp = envp,
		.cwd = cmd->workdir ? cmd->workdir : sb->spec.workdir,
		.stdin_data = cmd->stdin_data,
		.stdin_len = cmd->stdin_len,
		.stdin_null = !cmd->stdin_data,
		.timeout_ms = timeout,
		.max_output_bytes = sb->spec.limits.max_output_bytes,
		.cpu_limit_ms = sb->spec.limits.max_cpu_time_ms,
		.cg = ((struct ctr *)sb->priv)->cg,
		.on_output = ctx->on_output,
		.userdata = ctx->userdata,
		.cancel_fd = ctx->cancel_fd,
	};
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
	struct launch_ctx lc = {.c = c, .argv = cmd->argv, .envp = envp, .cwd = req.cwd};
	req.launcher = &container_launcher;
	req.launcher_arg = &lc;
	int r = exec_run(&req, out, err);
	env_free(envp);
	return r < 0 ? agentd_error_prefix(err, "exec %s", cmd->argv[0]) : 0;
}

/* ------------------------------------------------------------- one-shot
 * `agentd run`: the command goes to the init at clone time, so the sandbox is set up,
 * runs it and ends in one pass: no readiness handshake, no exec request over the control
 * socket, no wake-up to end it. The exec engine's launcher is the clone itself. */
struct once_launch {
	agentd_sandbox *sb;
	struct ctr_prep *p;
};

static int once_start(void *arg, const int fds[4], uint64_t *handle, agentd_error *err)
{
	struct once_launch *l = arg;
	struct ctr_prep *p = l->p;
	memcpy(p->once.fds, fds, sizeof(p->once.fds));
	p->once.kill_fd = p->killp[0];
	p->ia.once = &p->once;
	p->ia.setup = fds[3];	/* setup failures are the command's failure report */
	*handle = 1;
	int r = ctr_spawn_init(l->sb, p, err);
	close(p->killp[0]);
	p->killp[0] = -1;
	return r;
}

static void once_kill(void *arg, uint64_t handle)
{
	struct once_launch *l = arg;
	if (l->p->killp[1] >= 0 && write(l->p->killp[1], "k", 1) < 0) {
		/* the init is gone, and its command with it */
	}
}

static const struct exec_launcher once_launcher = {
	.start = once_start,
	.kill = once_kill,
};

static int ctr_run_once(agentd_backend *b, const agentd_spec *spec, const agentd_command *cmd,
			const agentd_exec_ctx *ctx, agentd_exec_output *out, char id[40],
			agentd_error *err)
{
	/* allowlist: the init hands the proxy its listener over the control socket of a
	 * persistent sandbox (create + exec + destroy) */
	if (spec->network.mode == AGENTD_NET_ALLOWLIST)
		return 1;
	struct ctr_prep p;
	agentd_sandbox *sb;
	if (ctr_prepare(b, spec, true, &sb, &p, err) < 0)
		return agentd_error_prefix(err, "create sandbox (container)");
	snprintf(id, 40, "%s", sb->id);
	char **envp = ctr_envp(sb, cmd);
	exec_request req = ctr_request(sb, cmd, ctx, envp);
	/* Private copies: the init blanks the process's own argument area (proc_hide_cmdline),
	 * where a caller's argv may live (agentd run's does). */
	agentd_strv argv = {0};
	for (char *const *a = cmd->argv; *a; a++)
		strv_push(&argv, *a);
	_cleanup_free_ char *cwd = xstrdup(req.cwd);
	p.once.argv = argv.v;
	p.once.envp = envp;
	p.once.cwd = cwd;
	struct once_launch l = {.sb = sb, .p = &p};
	if (p.late_cgroup)
		req.cg_late = &((struct ctr *)sb->priv)->cg;
	req.launcher = &once_launcher;
	req.launcher_arg = &l;
	int r = exec_run(&req, out, err);
	strv_free(&argv);
	env_free(envp);
	ctr_prep_free(&p);	/* the kill pipe: an init still running ends now */
	ctr_sandbox_free(sb);
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

/* ------------------------------------------------------------- snapshots
 * The writable state is the scratch tmpfs behind the workdir and /tmp, inside the
 * sandbox's mount namespace. The host reaches it through the init's root, resolved with
 * RESOLVE_IN_ROOT and no symlinks, and copies fd-relative without following anything,
 * while the sandbox is frozen. */

#ifndef RESOLVE_IN_ROOT
#define RESOLVE_NO_XDEV 0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_IN_ROOT 0x10
#endif
struct open_how_v0 {
	uint64_t flags, mode, resolve;
};

static int open_in_sandbox(struct ctr *c, const char *path, agentd_error *err)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/%d/root", c->init_pid);
	_cleanup_close_ int root = open(proc, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return agentd_error_errno(err, errno, "open the sandbox root");
	/* The pid is ours only while the init lives: check after the open. */
	if (syscall(SYS_pidfd_send_signal, c->init_pidfd, 0, NULL, 0) < 0)
		return agentd_error_set(err, ESRCH, "the sandbox is not running");
	while (*path == '/')
		path++;
	struct open_how_v0 how = {
		.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
	};
	int fd = (int)syscall(SYS_openat2, root, *path ? path : ".", &how, sizeof(how));
	if (fd < 0)
		return agentd_error_errno(err, errno, "open /%s in the sandbox", path);
	return fd;
}

static bool valid_snapshot_id(const char *id)
{
	size_t n = strlen(id);
	if (n != 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

/* The scratch tmpfs belongs to the sandbox's user namespace: only ids mapped there can own
 * files in it, and the snapshot must not be readable by anything the sandbox is not. So the
 * copy runs with this thread's filesystem ids set to the sandbox's host ids (per-thread,
 * undone after). */
struct fsids {
	uid_t uid;
	gid_t gid;
};

static struct fsids become_sandbox_fs(const struct ctr *c)
{
	struct fsids old = {(uid_t)setfsuid(geteuid()), (gid_t)setfsgid(getegid())};
	setfsgid(c->host_gid);
	setfsuid(c->host_uid);
	return old;
}

static void restore_fs(struct fsids old)
{
	setfsuid(old.uid);
	setfsgid(old.gid);
}

/* Freeze for a consistent copy unless the caller already suspended the sandbox. */
static int hold(struct ctr *c, bool *froze, agentd_error *err)
{
	*froze = false;
	if (c->suspended)
		return 0;
	if (cgroup_freeze(c->cg, true, err) < 0)
		return -1;
	*froze = true;
	return 0;
}

static const char *const state_dirs[2] = {"workdir", "tmp"};

static int ctr_snapshot(agentd_sandbox *sb, const char *name, char **snapshot_id,
			agentd_error *err)
{
	struct ctr *c = sb->priv;
	char id[40];
	random_id(id);
	pthread_mutex_lock(&c->lock);
	int ret = -1;
	bool froze = false;
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int dfd = -1;
	if (!c->snap_dir) {
		if (mkdir_p(sb->backend->work_root, 0711) < 0 ||
		    ((c->snap_dir = xasprintf("%s/%s", sb->backend->work_root, sb->id)),
		     mkdir(c->snap_dir, 0700) < 0 && errno != EEXIST)) {
			agentd_error_errno(err, errno, "create snapshot dir");
			free(c->snap_dir);
			c->snap_dir = NULL;
			goto out;
		}
		janitor_watch_dir(c->snap_dir);
	}
	dir = xasprintf("%s/%s", c->snap_dir, id);
	if (mkdir(dir, 0700) < 0 || chown(dir, c->host_uid, c->host_gid) < 0) {
		agentd_error_errno(err, errno, "create %s", dir);
		goto out;
	}
	if (hold(c, &froze, err) < 0)
		goto out;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		agentd_error_errno(err, errno, "open %s", dir);
		goto out;
	}
	if (name && *name) {
		/* The name is informational: the id is what restore takes. */
		int fd = openat(dfd, "name", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0) {
			if (write(fd, name, strlen(name)) < 0) {
				/* nothing to do */
			}
			close(fd);
		}
	}
	uint64_t budget = sb->spec.limits.max_write_bytes + (1 << 20);
	const char *paths[2] = {sb->spec.workdir, "/tmp"};
	for (int i = 0; i < 2; i++) {
		_cleanup_close_ int src = open_in_sandbox(c, paths[i], err);
		if (src < 0)
			goto out;
		struct fsids old = become_sandbox_fs(c);
		int r = mkdirat(dfd, state_dirs[i], 0700) < 0 ? -errno : 0;
		_cleanup_close_ int dst =
			r ? -1 : openat(dfd, state_dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (!r)
			r = dst < 0 ? -errno
				    : copy_tree_at(src, dst, (uid_t)-1, (gid_t)-1, &budget);
		restore_fs(old);
		if (r < 0) {
			agentd_error_errno(err, -r, "snapshot %s", paths[i]);
			goto out;
		}
	}
	*snapshot_id = xstrdup(id);
	ret = 0;
out:
	if (froze)
		cgroup_freeze(c->cg, false, NULL);
	if (ret < 0 && dir)
		rm_rf(dir);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static int ctr_restore(agentd_sandbox *sb, const char *snapshot_id, agentd_error *err)
{
	struct ctr *c = sb->priv;
	if (!valid_snapshot_id(snapshot_id))
		return agentd_error_set(err, EINVAL, "snapshot id %s: expected 32 hex digits",
					snapshot_id);
	pthread_mutex_lock(&c->lock);
	int ret = -1;
	bool froze = false;
	_cleanup_free_ char *dir = c->snap_dir ? xasprintf("%s/%s", c->snap_dir, snapshot_id)
					       : NULL;
	_cleanup_close_ int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (dfd < 0) {
		agentd_error_set(err, ENOENT, "no snapshot %s in sandbox %s", snapshot_id, sb->id);
		goto out;
	}
	if (hold(c, &froze, err) < 0)
		goto out;
	uint64_t budget = sb->spec.limits.max_write_bytes + (1 << 20);
	const char *paths[2] = {sb->spec.workdir, "/tmp"};
	for (int i = 0; i < 2; i++) {
		_cleanup_close_ int dst = open_in_sandbox(c, paths[i], err);
		if (dst < 0)
			goto out;
		_cleanup_close_ int src = openat(dfd, state_dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct fsids old = become_sandbox_fs(c);
		int r = src < 0 ? -errno : empty_dir_at(dst);
		if (r == 0)
			r = copy_tree_at(src, dst, (uid_t)-1, (gid_t)-1, &budget);
		restore_fs(old);
		if (r < 0) {
			agentd_error_errno(err, -r, "restore %s", paths[i]);
			goto out;
		}
	}
	ret = 0;
out:
	if (froze)
		cgroup_freeze(c->cg, false, NULL);
	pthread_mutex_unlock(&c->lock);
	return ret;
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
