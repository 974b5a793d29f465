/* container_init.c: the container's init (PID 1) — its setup in order (ids, root, fds,
 * Landlock, privileges, seccomp), then the exec server of a persistent sandbox or the one
 * command of a one-shot run. It is a clone3 child of agentd that never execs and may have
 * been cloned from a multithreaded daemon: syscalls only, no malloc, no stdio. */
#include "lib/backends/container/container.h"

/* Set in the init only (commands inherit the memory): the Landlock ruleset exists. */
static bool init_has_landlock;

/* ------------------------------------------------------------- init (child) side */

static __attribute__((noreturn)) void init_fail(int fd, int r, const char *what)
{
	child_fail(fd, 125, r < 0 ? -r : r, what);
}

/* One control message with nfds (<= 5) fds attached; 0 or -1 + errno. No malloc: the init
 * sends on it too. */
int ctl_send(int sock, const struct ctl_msg *m, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(5 * sizeof(int))];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof(*m)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int))};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	if (!cm || nfds < 1 || nfds > 5) {
		errno = EINVAL;
		return -1;
	}
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
	/* The OOM killer's first choice, so a memory limit kills the command and not PID 1
	 * (a copy of a large process, a daemon, can be the bigger task of the cgroup). Raising
	 * a score needs no privilege, but /proc/self of a non-dumpable process is root's: it
	 * is dumpable for these few calls only, and with Landlock nothing of the sandbox
	 * (a younger domain) may open its memory meanwhile. */
	if (init_has_landlock && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0) {
		int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		if (oom >= 0) {
			if (write(oom, "1000", 4) != 4) {
				/* a kernel without it: the default scores apply */
			}
			close(oom);
		}
	}
	int r = rlimit_apply(a->rl);
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
		child_report_fail(fds[3], 125, EBUSY, "too many concurrent execs in this sandbox");
		goto out;
	}
	if (fstat(fds[4], &st) < 0 || st.st_size < 8 || st.st_size > MAX_PAYLOAD) {
		child_report_fail(fds[3], 125, EINVAL, "bad exec request");
		goto out;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fds[4], 0);
	if (map == MAP_FAILED) {
		child_report_fail(fds[3], 125, errno, "map exec request");
		goto out;
	}
	const char *p = map, *end = p + st.st_size;
	uint32_t argc, envc;
	memcpy(&argc, p, 4);
	memcpy(&envc, p + 4, 4);
	p += 8;
	if (argc < 1 || argc > 1u << 20 || envc > 1u << 20 || end[-1] != '\0') {
		child_report_fail(fds[3], 125, EINVAL, "bad exec request");
		goto out;
	}
	ptrs_len = ((size_t)argc + envc + 2) * sizeof(char *);
	ptrs = mmap(NULL, ptrs_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ptrs == MAP_FAILED) {
		child_report_fail(fds[3], 125, errno, "map exec request");
		goto out;
	}
	char **argv = ptrs, **envp = argv + argc + 1;
	const char *cwd = p;
	p += strlen(p) + 1;
	for (uint32_t i = 0; i < argc + envc; i++) {
		if (p >= end) {
			child_report_fail(fds[3], 125, EINVAL, "bad exec request");
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
		child_report_fail(fds[3], 125, errno, "fork");
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

/* SIGCHLD as a readable fd (blocked first, so no exit is missed); -1 + errno. */
static int sigchld_fd(void)
{
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	return signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* sfd is readable: take the signals, then every exit there is. */
static void reap_signalled(int sfd, struct running *run, size_t *nrun)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) > 0)
		;
	reap(run, nrun);
}

static __attribute__((noreturn)) void init_loop(const struct init_args *a)
{
	struct running run[MAX_EXECS];
	size_t nrun = 0;
	int sfd = sigchld_fd();
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
		if (pfd[1].revents)
			reap_signalled(sfd, run, &nrun);
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
		/* A timeout or cancel kills the exec's whole tree. Its session is what it can
		 * be told apart by; when it is the only exec running, everything but PID 1 is
		 * its tree (setsid'd and daemonized descendants included), so all of it goes. */
		if (n == sizeof(m) && m.op == OP_KILL)
			for (size_t i = 0; i < nrun; i++)
				if (run[i].id == m.id) {
					kill(-run[i].pid, SIGKILL);
					if (nrun == 1)
						kill(-1, SIGKILL);
				}
	}
}

/* One-shot PID 1: fork the command, reap, and when the command ends report its status
 * and end the sandbox (PID 1's exit kills everything left in the namespace). A byte or EOF
 * on the kill pipe (timeout, cancel, owner gone) kills the command's session first, so
 * its status is still reported. Nothing inside can reach the pipe: it is the host's. */
static __attribute__((noreturn)) void init_run_once(const struct init_args *a)
{
	int sfd = sigchld_fd();
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
	struct running run = {.id = 1, .pid = pid, .report = INIT_SETUP_FD};
	size_t nrun = 1;
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
		reap_signalled(sfd, &run, &nrun); /* the command's status is reported here */
		if (nrun == 0) {
			kill(-1, SIGKILL); /* everything else in the namespace */
			_exit(0);
		}
	}
}

__attribute__((noreturn)) void container_init_main(void *arg)
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

	/* 2. The fresh root (mounts/apply.c): tmpfs root, read-only runtime, filtered /etc, proc,
	 * minimal dev, scratch for workdir and /tmp, pivot_root. */
	what[0] = '\0';
	r = mount_plan_apply(a->mp, what, sizeof(what));
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
	/* Everything else goes; a one-shot init's stdio sits above the Landlock slot, which
	 * is closed too until the ruleset takes it (an inherited fd must not linger there). */
	if ((r = fds_close_from(a->once ? INIT_ONCE_FD + 3 : INIT_SETUP_FD + 1)) < 0)
		init_fail(setup, r, "close inherited fds");
	if (a->once)
		close(INIT_LANDLOCK_FD);

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
