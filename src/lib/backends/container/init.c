/* init.c: the container's init (PID 1) — its confinement (jail_init_apply, in
 * jail/pipeline.c), then the exec server of a persistent sandbox or the one command of a
 * one-shot run. It is a clone3 child of agentd that never execs and may have
 * been cloned from a multithreaded daemon: syscalls only, no malloc, no stdio. */
#include "lib/backends/container/container.h"

/* Set in the init only (commands inherit the memory): the Landlock ruleset exists. */
static bool init_has_landlock;
/* issue 12: the connect layer exists (a network that can be switched), and whether the
 * commands started from now on are of network "none" (they add it) (OP_NETWORK). */
static bool init_has_landlock_net;
static bool init_net_none;

/* ------------------------------------------------------------- init (child) side */

static __attribute__((noreturn)) void init_fail(int fd, int r, const char *what)
{
	child_fail(fd, 125, r < 0 ? -r : r, what);
}

struct running {
	uint64_t id;
	pid_t pid;
	int report;
};

/* What the command's process is started with (the init's memory: it only reads). */
struct command_start {
	const struct init_args *a;
	int *fds;		/* CTL_CMD_FDS, then nunit of its kill unit's cgroup.procs */
	int nunit;
	char **argv, **envp;
	const char *cwd;
	uint32_t cpu_s;
	bool tty;
};

/* The command's process, forked by init: its own session, stdio, rlimits, Landlock, then
 * execve. The seccomp filter, no_new_privs and the empty capability sets are inherited. */
static __attribute__((noreturn)) void command_child(const struct command_start *cs)
{
	const struct init_args *a = cs->a;
	int *fds = cs->fds;
	/* The init ignores no signal and only blocks SIGCHLD (for its signalfd). */
	signals_reset(0);
	if (setsid() < 0)
		_exit(125);
	if (dup3(fds[3], CHILD_REPORT_FD, O_CLOEXEC) < 0)
		_exit(125);
	/* Its own kill unit, before it runs anything: all it starts is born there. The fds
	 * are the host's (opened by root outside); the command never holds them. */
	for (int i = 0; i < cs->nunit; i++)
		if (write(fds[CTL_CMD_FDS + i], "0", 1) != 1)
			child_fail(CHILD_REPORT_FD, 125, errno, "join its cgroup");
	if (dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[2], 2) < 0)
		child_fail(CHILD_REPORT_FD, 125, errno, "set up stdio");
	/* Its terminal (the slave of a pty of the sandbox's own devpts) as its controlling
	 * terminal: job control and ^C reach its foreground process group. */
	if (cs->tty && ioctl(0, TIOCSCTTY, 0) < 0)
		child_fail(CHILD_REPORT_FD, 125, errno, "make the terminal its controlling tty");
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
	/* Its own copy (it shares the init's memory until execve): RLIMIT_CPU is what remains
	 * of the sandbox's budget. */
	struct rlimit_set rl = *a->rl;
	if (cs->cpu_s)
		rlimit_set_cpu(&rl, (uint64_t)cs->cpu_s * 1000);
	int r = rlimit_apply(&rl);
	if (r < 0)
		child_fail(CHILD_REPORT_FD, 125, -r, "setrlimit");
	if (init_has_landlock) {
		int ll = dup(INIT_LANDLOCK_FD);
		if (ll < 0 || (r = landlock_apply(ll)) < 0)
			child_fail(CHILD_REPORT_FD, 125, ll < 0 ? errno : -r,
				   "landlock_restrict_self");
	}
	/* Network "none" now: no TCP connect, a layer the command keeps for its life (a later
	 * switch to allowlist does not lift it). */
	if (init_has_landlock_net && init_net_none) {
		int ll = dup(INIT_LANDLOCK_NET_FD);
		if (ll < 0 || (r = landlock_apply(ll)) < 0)
			child_fail(CHILD_REPORT_FD, 125, ll < 0 ? errno : -r,
				   "landlock_restrict_self (network none)");
	}
	r = fds_close_from(CHILD_REPORT_FD + 1);
	if (r < 0)
		child_fail(CHILD_REPORT_FD, 125, -r, "close inherited fds");
	child_enter_workdir(CHILD_REPORT_FD, cs->cwd);
	trace_mark("command: execve");
	char found[PATH_MAX];
	r = child_execvpe(cs->argv, cs->envp, found, sizeof(found));
	child_fail_exec(CHILD_REPORT_FD, r, cs->argv[0], found);
}


static int command_entry(void *arg)
{
	command_child(arg);
}

/* The command's process, as posix_spawn makes one: clone(CLONE_VM | CLONE_VFORK) on a
 * stack of the init's, so the init's page tables (a copy of agentd's) are not copied for
 * a process that execs at once; the init sleeps until the command has exec'd or failed.
 * The command only writes its own stack before execve (and the oom_score_adj of a vfork
 * child is its own). Where no stack could be mapped, and in sanitizer builds, a copy of
 * the init (fork semantics) with CLONE_VFORK all the same: the init still wakes only once
 * the command exec'd or reported its failure, which a background process's start report
 * must follow (a missing program is the spawn's error, not a later exit 127). */
static pid_t start_command(const struct command_start *cs)
{
	enum { STACK = 256 << 10 };
	static void *stack = MAP_FAILED;
#ifndef __SANITIZE_ADDRESS__	/* its runtime cannot follow a child that shares our memory */
	if (stack == MAP_FAILED)
		stack = mmap(NULL, STACK, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
#endif
	if (stack == MAP_FAILED) {
		pid_t pid = (pid_t)syscall(SYS_clone, CLONE_VFORK | SIGCHLD, 0, NULL, NULL, 0);
		if (pid == 0)
			command_child(cs);
		return pid;
	}
	return clone(command_entry, (char *)stack + STACK, CLONE_VM | CLONE_VFORK | SIGCHLD,
		     (void *)cs);
}

/* Start the command of an exec or spawn request: fds are its stdin, stdout, stderr, report
 * pipe and payload (all closed here; the report pipe is kept until the command ends). A
 * background process's pid goes back on its report pipe once it started (REPORT_START):
 * with the command a vfork child, after its execve or its failure report. */
static void start_exec(const struct init_args *a, struct running *run, size_t *nrun,
		       const struct ctl_msg *m, int fds[CTL_MAX_FDS], int nfds)
{
	struct exec_payload pl;
	const char *why;
	int r;
	if (*nrun == MAX_EXECS) {
		child_report_fail(fds[3], 125, EBUSY,
				  "too many execs and processes running in this sandbox (max "
				  STR(MAX_EXECS) ")");
		goto out;
	}
	if ((r = exec_payload_decode(fds[4], &pl, &why)) < 0) {
		child_report_fail(fds[3], 125, -r, why);
		exec_payload_release(&pl);
		goto out;
	}
	bool background = m->op == OP_SPAWN;
	struct command_start cs = {.a = a, .fds = fds, .nunit = nfds - CTL_CMD_FDS,
				   .argv = pl.argv, .envp = pl.envp, .cwd = pl.cwd,
				   .cpu_s = m->cpu_s, .tty = background && (m->flags & SPAWN_TTY)};
	pid_t pid = start_command(&cs);
	exec_payload_release(&pl);
	if (pid < 0) {
		child_report_fail(fds[3], 125, errno, "fork");
		goto out;
	}
	if (background)
		child_report_start(fds[3], pid);
	run[*nrun].id = m->id;
	run[*nrun].pid = pid;
	run[*nrun].report = fds[3];
	fds[3] = -1; /* kept until the command ends */
	(*nrun)++;
out:
	ctl_close_fds(fds);
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
			child_report_exit(run[i].report, status, &ru);
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

/* OP_KILL, OP_SIGNAL. The main process is ours until we reap it: its pid cannot be
 * another's meanwhile. */
static void control(struct running *run, size_t nrun, const struct ctl_msg *m)
{
	/* CTL_KILL_ALL (a spent CPU budget) is everything but PID 1. */
	if (m->op == OP_KILL && m->id == CTL_KILL_ALL) {
		kill(-1, SIGKILL);
		return;
	}
	for (size_t i = 0; i < nrun; i++) {
		if (run[i].id != m->id)
			continue;
		if (m->op == OP_SIGNAL) {
			kill(run[i].pid, m->sig);
			continue;
		}
		if (m->op != OP_KILL)
			continue;
		/* A timeout, cancel or kill: its process group here; the host kills the rest
		 * of its tree by its cgroup (its kill unit), which nothing else is in. */
		kill(-run[i].pid, SIGKILL);
	}
}

/* OP_SOCKET: a TCP socket of our network namespace for the host's port forward, made and
 * handed over on reply and not kept; the host connects it (connect.c). On failure (the
 * seccomp profile refuses sockets, no memory) the errno goes back instead. The reply
 * socket is the host's fresh one: this send does not block. */
static void send_socket(int reply)
{
	struct ctl_msg m = {.op = OP_SOCKET};
	int r = netns_socket_send(reply, &m, sizeof(m));
	if (r < 0) {
		m.id = (uint64_t)-r;
		if (send(reply, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* the host gave up waiting */
		}
	}
}

/* OP_NETWORK: commands started from now on are of network m->flags. For allowlist, a new
 * egress listener on 127.0.0.1:AGENTD_PROXY_PORT goes back on reply (the proxy serves it
 * from then on; nothing here keeps it); a port some process of the sandbox took meanwhile
 * fails the switch (EADDRINUSE, the mode unchanged). For none, an empty answer: the host
 * closed the listener already. */
static void switch_network(int reply, const struct ctl_msg *req)
{
	struct ctl_msg m = {.op = OP_NETWORK};
	int r = 0;
	if (req->flags == NET_MODE_ALLOWLIST)
		r = netns_listener_send(reply, AGENTD_PROXY_PORT, &m, sizeof(m));
	else if (req->flags != NET_MODE_NONE)
		r = -EINVAL;
	if (r == 0)
		init_net_none = req->flags == NET_MODE_NONE;
	if (r < 0 || req->flags == NET_MODE_NONE) {
		m.id = (uint64_t)(r < 0 ? -r : 0);
		if (send(reply, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* the host gave up waiting */
		}
	}
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
		int fds[CTL_MAX_FDS], nfds;
		ssize_t n = ctl_recv(INIT_CTL_FD, &m, fds, &nfds, 0);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			/* The owner is gone or destroyed us: the sandbox ends with PID 1. */
			_exit(0);
		}
		if (n == sizeof(m) && (m.op == OP_EXEC || m.op == OP_SPAWN) &&
		    nfds >= CTL_CMD_FDS && nfds <= CTL_MAX_FDS) {
			start_exec(a, run, &nrun, &m, fds, nfds);
			continue;
		}
		if (n == sizeof(m) && m.op == OP_SOCKET && nfds == 1) {
			send_socket(fds[0]);
			ctl_close_fds(fds);
			continue;
		}
		if (n == sizeof(m) && m.op == OP_NETWORK && nfds == 1) {
			switch_network(fds[0], &m);
			ctl_close_fds(fds);
			continue;
		}
		ctl_close_fds(fds);
		if (n == sizeof(m))
			control(run, nrun, &m);
	}
}

/* Our root (O_PATH, on the scratch tmpfs) to the host, OP_ROOT_FD on the control socket
 * (a one-shot init's kill socket): 0, or -1 + errno. */
static int send_root(void)
{
	int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct ctl_msg m = {.op = OP_ROOT_FD};
	int r = root < 0 ? -1 : ctl_send(INIT_CTL_FD, &m, &root, 1);
	int e = errno;
	if (root >= 0)
		close(root);
	errno = e;
	return r < 0 ? -1 : 0;
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
	/* The root to the host before the command runs: the host measures what the command
	 * writes by it, even after this namespace is gone. Not sent: the host is gone (the
	 * kill socket's EOF ends us below), or it goes without the measurement. */
	(void)send_root();
	trace_mark("init: start command");
	struct command_start cs = {.a = a, .fds = fds, .argv = (char **)a->once->argv,
				   .envp = (char **)a->once->envp, .cwd = a->once->cwd};
	pid_t pid = start_command(&cs);
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
		trace_mark("init: command reaped");
		if (nrun == 0) {
			kill(-1, SIGKILL); /* everything else in the namespace */
			_exit(0);
		}
	}
}

__attribute__((noreturn)) void container_init_main(void *arg)
{
	const struct init_args *a = arg;
	struct jail_init_state st;
	char what[256];

	/* Its confinement, in order (jail/pipeline.c, beside the process backends' list). */
	int r = jail_init_apply(&a->jail, &st, what, sizeof(what));
	if (r == -ECANCELED && !what[0])
		_exit(125); /* the host gave up: it reports why */
	if (r < 0)
		init_fail(st.report_fd, r, what);
	init_has_landlock = st.landlock;
	init_has_landlock_net = st.landlock_net;
	init_net_none = a->net_none;
	/* Ready: closing the setup pipe without a report says so; a one-shot init runs its
	 * command instead. */
	if (a->once)
		init_run_once(a);
	/* The host's way into our root, before it hears we are ready. */
	if (send_root() < 0)
		init_fail(INIT_SETUP_FD, errno, "send the sandbox root to the host");
	close(INIT_SETUP_FD);
	init_loop(a);
}
