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

/* A command the init started. A durable init keeps an ended one (its status, and what the
 * host held of it) until the host forgets it: a process's end, or an exec lost with its
 * host, is never lost in a crash. */
struct running {
	uint64_t id;
	pid_t pid;		/* 0 once reaped */
	int report;		/* its report pipe's write end, -1 once reaped */
	uint32_t flags;		/* ENTRY_* */
	bool lost;		/* an exec killed because its host went away */
	bool forgotten;		/* the host forgot it: it goes once reaped */
	int status;
	int payload;		/* an exec's request (its argv, for a lost exec) */
	int keep[KEEP_N - 1];	/* the host's ends of a process's stdio and report */
	int64_t started_ms, ended_ms;
	uint32_t unit;		/* its kill unit's number, for a later host */
};

/* The durable state (OP_DURABLE): set once, read by the loop. */
static struct {
	bool on;
	int listener;			/* the endpoint a later host connects to */
	uint8_t secret[DURABLE_SECRET_LEN];
	uint32_t kept;			/* KEPT_* of fds[] */
	int fds[KEPT_N];
	uint64_t max_id;
} dur;

static int64_t realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_slot(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Entry i goes (its fds closed), the last takes its place. */
static void drop_entry(struct running *run, size_t *nrun, size_t i)
{
	close_slot(&run[i].report);
	close_slot(&run[i].payload);
	for (int k = 0; k < KEEP_N - 1; k++)
		close_slot(&run[i].keep[k]);
	run[i] = run[--*nrun];
}

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
	/* The init's other fds (a durable one keeps hundreds for its host) go before its
	 * RLIMIT_NOFILE applies: the Landlock rulesets' dups and the workdir need free slots
	 * below it. The fd table is the command's own copy (no CLONE_FILES). */
	_Static_assert(INIT_LANDLOCK_NET_FD > INIT_LANDLOCK_FD, "the rulesets' slots come last");
	int r = fds_close_from(INIT_LANDLOCK_NET_FD + 1);
	if (r < 0)
		child_fail(CHILD_REPORT_FD, 125, -r, "close inherited fds");
	close(INIT_SETUP_FD);
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
	r = rlimit_apply(&rl);
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

/* Room for one more command: fewer than MAX_EXECS running, and a free slot, made by
 * dropping the oldest ended entry its host has not forgotten yet if need be. */
static bool make_room(struct running *run, size_t *nrun)
{
	size_t running = 0, oldest = *nrun;
	for (size_t i = 0; i < *nrun; i++) {
		if (run[i].pid)
			running++;
		else if (oldest == *nrun || run[i].ended_ms < run[oldest].ended_ms)
			oldest = i;
	}
	if (running >= MAX_EXECS)
		return false;
	if (*nrun == MAX_ENTRIES)
		drop_entry(run, nrun, oldest);
	return true;
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
	if (!make_room(run, nrun)) {
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
	if (m->id > dur.max_id)
		dur.max_id = m->id;
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
	struct running *e = &run[*nrun];
	*e = (struct running){.id = m->id, .pid = pid, .report = fds[3], .payload = -1,
			      .started_ms = realtime_ms(), .unit = (uint32_t)m->sig};
	for (int k = 0; k < KEEP_N - 1; k++)
		e->keep[k] = -1;
	e->flags = background ? ENTRY_BACKGROUND | (cs.tty ? ENTRY_TTY : 0) : 0;
	if (!background) {
		e->payload = fds[4]; /* its argv, should its host go away */
		fds[4] = -1;
	}
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
			struct running *e = &run[i];
			if (e->pid != p)
				continue;
			/* The command is over: so is everything it started in its session. */
			kill(-p, SIGKILL);
			child_report_exit(e->report, status, &ru);
			close_slot(&e->report);
			e->pid = 0;
			e->status = status;
			e->ended_ms = realtime_ms();
			e->flags |= ENTRY_ENDED;
			if (!dur.on || e->forgotten || !((e->flags & ENTRY_BACKGROUND) || e->lost))
				drop_entry(run, nrun, i);
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
		if (run[i].id != m->id || !run[i].pid)
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
 * from then on; a durable init keeps a copy for its next host); a port some process of the sandbox took meanwhile
 * fails the switch (EADDRINUSE, the mode unchanged). For none, an empty answer: the host
 * closed the listener already. */
static void switch_network(int reply, const struct ctl_msg *req)
{
	struct ctl_msg m = {.op = OP_NETWORK};
	int r = 0, kept = -1;
	if (req->flags == NET_MODE_ALLOWLIST)
		r = netns_listener_send_keep(reply, AGENTD_PROXY_PORT, &m, sizeof(m),
					     dur.on ? &kept : NULL);
	else if (req->flags != NET_MODE_NONE)
		r = -EINVAL;
	if (r == 0) {
		init_net_none = req->flags == NET_MODE_NONE;
		/* A durable init hands its next host the listener of its network now (none:
		 * none, the port free again). */
		if (dur.on) {
			if (dur.fds[KEPT_PROXY] >= 0)
				close(dur.fds[KEPT_PROXY]);
			dur.fds[KEPT_PROXY] = kept;
			if (kept >= 0)
				dur.kept |= 1u << KEPT_PROXY;
			else
				dur.kept &= ~(1u << KEPT_PROXY);
		}
	}
	if (r < 0 || req->flags == NET_MODE_NONE) {
		m.id = (uint64_t)(r < 0 ? -r : 0);
		if (send(reply, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* the host gave up waiting */
		}
	}
}

/* Until fd is readable (true) or a command ended (reaped here: false). */
static bool wait_readable(int fd, int sfd, struct running *run, size_t *nrun)
{
	struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
	if (poll(pfd, 2, -1) < 0) {
		if (errno == EINTR)
			return false;
		_exit(125);
	}
	if (pfd[1].revents)
		reap_signalled(sfd, run, nrun);
	return pfd[0].revents != 0;
}

/* ------------------------------------------------------------- durable */

/* OP_DURABLE PERSIST: the endpoint, the secret and the fds a later host needs; from now on
 * the host's EOF is not our end. The answer (0 or the errno) goes back at once. */
static void durable_persist(const struct ctl_msg *m, int fds[CTL_MAX_FDS], int nfds)
{
	int kept[KEPT_N] = {-1, -1, -1, -1, -1, -1};
	int r = 0;
	if (dur.on)
		r = EALREADY;
	else if (nfds < 2 || nfds > CTL_MAX_FDS || ctl_take_masked((uint32_t)m->sig, KEPT_N, kept, fds + 2,
					     nfds - 2) < 0 || !(m->sig & (1 << KEPT_PIDFD)))
		r = EINVAL;
	else if (pread(fds[1], dur.secret, sizeof(dur.secret), 0) != (ssize_t)sizeof(dur.secret))
		r = EINVAL;
	/* We listen, not the host: a connecting peer's SO_PEERCRED names us. */
	else if (listen(fds[0], 8) < 0)
		r = errno;
	if (r == 0) {
		dur.on = true;
		dur.listener = fds[0];
		fds[0] = -1;
		dur.kept = (uint32_t)m->sig;
		for (int i = 0; i < KEPT_N; i++)
			dur.fds[i] = kept[i];
	} else {
		for (int i = 0; i < KEPT_N; i++)
			close_slot(&kept[i]);
	}
	ctl_close_fds(fds);
	struct ctl_msg ans = {.op = OP_DURABLE, .id = (uint64_t)r};
	if (send(INIT_CTL_FD, &ans, sizeof(ans), MSG_NOSIGNAL) < 0) {
		/* the host is gone: its EOF is next */
	}
}

/* OP_DURABLE KEEP: what the host holds of command id, kept with its entry. */
static void durable_keep(struct running *run, size_t nrun, const struct ctl_msg *m,
			 int fds[CTL_MAX_FDS], int nfds)
{
	int keep[KEEP_N];
	if (!dur.on || nfds > CTL_MAX_FDS || ctl_take_masked((uint32_t)m->sig & 0xf, KEEP_N, keep, fds, nfds) < 0)
		return ctl_close_fds(fds);
	for (size_t i = 0; i < nrun; i++) {
		if (run[i].id != m->id || run[i].forgotten)
			continue;
		for (int k = 0; k < KEEP_N - 1; k++) {
			close_slot(&run[i].keep[k]);
			run[i].keep[k] = keep[k];
			keep[k] = -1;
		}
	}
	for (int k = 0; k < KEEP_N; k++)
		close_slot(&keep[k]);
}

/* OP_FORGET: the host knows how id ended (or no longer cares): its entry goes. */
static void forget(struct running *run, size_t *nrun, uint64_t id)
{
	for (size_t i = 0; i < *nrun; i++) {
		if (run[i].id != id)
			continue;
		if (run[i].pid == 0) {
			drop_entry(run, nrun, i);
			return;
		}
		run[i].forgotten = true;
		close_slot(&run[i].payload);
		for (int k = 0; k < KEEP_N - 1; k++)
			close_slot(&run[i].keep[k]);
	}
}

/* The host went away from a durable sandbox: its foreground execs had only it to report
 * to (killed, their end kept as lost); background processes run on. */
static void host_gone(struct running *run, size_t nrun)
{
	for (size_t i = 0; i < nrun; i++) {
		if ((run[i].flags & ENTRY_BACKGROUND) || run[i].pid == 0)
			continue;
		run[i].lost = true;
		kill(-run[i].pid, SIGKILL);
		kill(run[i].pid, SIGKILL);
	}
}

static int send_masked(int sock, const void *msg, size_t len, uint32_t mask, const int *fds,
		       int n)
{
	int out[CTL_MAX_FDS], k = 0;
	for (int i = 0; i < n; i++)
		if (mask & (1u << i))
			out[k++] = fds[i];
	return k ? fds_send(sock, msg, len, out, k)
		 : (send(sock, msg, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1);
}

/* What a new host needs, on the connection s: our proof (secret, pidfd, ...), then every
 * entry with what we kept of it. 0, or -1 (the host went away meanwhile). */
static int send_hello(int s, struct running *run, size_t nrun)
{
	struct durable_hello h = {.magic = DURABLE_MAGIC, .version = DURABLE_PROTO,
				  .kept = dur.kept, .n_entries = (uint32_t)nrun,
				  .next_id = dur.max_id};
	memcpy(h.secret, dur.secret, sizeof(h.secret));
	if (send_masked(s, &h, sizeof(h), dur.kept, dur.fds, KEPT_N) < 0)
		return -1;
	for (size_t i = 0; i < nrun; i++) {
		const struct running *e = &run[i];
		struct durable_entry de = {.id = e->id, .pid = e->pid, .status = e->status,
					   .flags = e->flags, .started_ms = e->started_ms,
					   .ended_ms = e->ended_ms, .unit = e->unit};
		/* A lost exec being killed: it ends as SIGKILL made it. */
		if (e->lost && e->pid) {
			de.flags |= ENTRY_ENDED;
			de.status = SIGKILL;
			de.ended_ms = realtime_ms();
		}
		int fds[KEEP_N];
		for (int k = 0; k < KEEP_N - 1; k++)
			if ((fds[k] = e->keep[k]) >= 0)
				de.keep |= 1u << k;
		if ((fds[KEEP_PAYLOAD] = e->payload) >= 0)
			de.keep |= 1u << KEEP_PAYLOAD;
		if (send_masked(s, &de, sizeof(de), de.keep, fds, KEEP_N) < 0)
			return -1;
	}
	return 0;
}

/* Until a new host connects to our endpoint (reaping meanwhile): it becomes our control
 * socket. Only a peer outside our pid namespace (its pid reads 0 here: the host's side)
 * may: nothing of the sandbox can become its own host. */
static void wait_for_host(int sfd, struct running *run, size_t *nrun)
{
	close(INIT_CTL_FD);
	for (;;) {
		if (!wait_readable(dur.listener, sfd, run, nrun))
			continue;
		int s = accept4(dur.listener, NULL, NULL, SOCK_CLOEXEC);
		if (s < 0)
			continue;
		struct ucred uc;
		socklen_t len = sizeof(uc);
		struct timeval tv = {.tv_sec = 5};
		if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 || uc.pid != 0 ||
		    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
		    send_hello(s, run, *nrun) < 0 ||
		    (s != INIT_CTL_FD && dup3(s, INIT_CTL_FD, O_CLOEXEC) < 0)) {
			close(s);
			continue;
		}
		if (s != INIT_CTL_FD) /* it may have got the number its predecessor left */
			close(s);
		return;
	}
}

static __attribute__((noreturn)) void init_loop(const struct init_args *a)
{
	struct running run[MAX_ENTRIES];
	size_t nrun = 0;
	int sfd = sigchld_fd();
	if (sfd < 0)
		_exit(125);
	for (;;) {
		if (!wait_readable(INIT_CTL_FD, sfd, run, &nrun))
			continue;
		struct ctl_msg m;
		int fds[CTL_MAX_FDS], nfds;
		ssize_t n = ctl_recv(INIT_CTL_FD, &m, fds, &nfds, 0);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			/* The owner is gone or destroyed us: the sandbox ends with PID 1, unless
			 * it is durable (a later host adopts it, or destroys it by its cgroup). */
			if (!dur.on)
				_exit(0);
			host_gone(run, nrun);
			wait_for_host(sfd, run, &nrun);
			continue;
		}
		if (n == sizeof(m) && m.op == OP_DURABLE && m.flags == DURABLE_PERSIST) {
			durable_persist(&m, fds, nfds);
			continue;
		}
		if (n == sizeof(m) && m.op == OP_DURABLE && m.flags == DURABLE_KEEP) {
			durable_keep(run, nrun, &m, fds, nfds);
			continue;
		}
		if (n == sizeof(m) && m.op == OP_IMAGE && nfds == 1) {
			/* issue 13: held, never used (CLOEXEC: no command inherits it) */
			static int image_lock = -1;
			close_slot(&image_lock);
			image_lock = fds[0];
			continue;
		}
		if (n == sizeof(m) && m.op == OP_FORGET) {
			ctl_close_fds(fds);
			forget(run, &nrun, m.id);
			continue;
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
