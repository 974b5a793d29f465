/* process.c: background processes of a container sandbox, host side — started by the
 * sandbox's init like an exec (OP_SPAWN), but nobody runs the exec loop: the caller holds
 * the stdio, and the report pipe (REPORT_START with the pid, later REPORT_EXIT) is its wait fd.
 *
 * A terminal comes from the sandbox's own devpts instance (newinstance, mounted at /dev/pts
 * by its init and opened by the host at create, before anything of the sandbox ran): the
 * sandbox never holds a pty of the host's devpts, so it can neither see nor reach a host
 * terminal (no TIOCSTI into one, no /dev/pts/N of the host), and its ptys count against its
 * own instance. The host holds the master; the slave goes in as the process's stdio, made
 * its controlling terminal there. */
#include "lib/backends/container/container.h"

#include <termios.h>

#define SPAWN_WAIT_MS 10000	/* the init answers at once; a frozen or dying one does not */

struct ctr_proc {
	struct ctr *c;
	uint64_t id;
	struct cgroup *unit;	/* its kill unit (a child of the sandbox's cgroup), or NULL */
	struct cgroup_events ev0;	/* the unit's counters at the start (a unit is reused) */
	bool started;			/* the init said so (REPORT_START) */
	uint64_t cpu_limit_ms;		/* the sandbox's CPU budget, 0 = none */
	agentd_usage cu0;
	bool tty;
	int in, out, err, rep;	/* ours: stdin (or the master), stdout, stderr, report */
	pthread_mutex_t lock;	/* the reports and what they say */
	bool ended;
	bool have_exit;
	struct child_report exit;
	int64_t started_at_ms, ended_at_ms;
	uint64_t start_mono;
};

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* The command's ends (child[]: stdin, stdout, stderr, report) and ours (p->in, out, err,
 * rep): pipes, /dev/null for stdin, or a terminal of the sandbox's devpts. */
static int open_stdio(struct ctr_proc *p, const agentd_process_opts *o, int child[4],
		      agentd_error *err)
{
	int pp[2];
	if (o->tty) {
		if (p->c->pts_fd < 0)
			return agentd_error_set(err, ENOTSUP, "tty: the sandbox has no devpts");
		p->in = openat(p->c->pts_fd, "ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
		if (p->in < 0)
			return agentd_error_errno(err, errno, "tty: open the sandbox's ptmx");
		int unlock = 0;
		struct winsize ws = {.ws_row = o->rows ? o->rows : 24, .ws_col = o->cols ? o->cols : 80};
		if (ioctl(p->in, TIOCSPTLCK, &unlock) < 0 || ioctl(p->in, TIOCSWINSZ, &ws) < 0)
			return agentd_error_errno(err, errno, "tty: set up the terminal");
		/* The slave by the master, not by a path in the sandbox's /dev. */
		int slave = ioctl(p->in, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (slave < 0)
			return agentd_error_errno(err, errno, "tty: open the terminal's slave");
		child[0] = slave;
		child[1] = dup(slave);
		child[2] = dup(slave);
		if (child[1] < 0 || child[2] < 0)
			return agentd_error_errno(err, errno, "tty: dup");
		p->out = p->in;
	} else if (o->stdin_pipe) {
		if (pipe2(pp, O_CLOEXEC) < 0)
			return agentd_error_errno(err, errno, "create stdin pipe");
		child[0] = pp[0];
		p->in = pp[1];
	} else if ((child[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		return agentd_error_errno(err, errno, "open /dev/null");
	}
	for (int s = o->tty ? 3 : 1; s <= 3; s++) {
		if (pipe2(pp, O_CLOEXEC) < 0)
			return agentd_error_errno(err, errno, "create pipes");
		child[s] = pp[1];
		*(s == 1 ? &p->out : s == 2 ? &p->err : &p->rep) = pp[0];
	}
	int mine[] = {p->in, p->out, p->err, p->rep};
	for (size_t i = 0; i < ARRAY_SIZE(mine); i++)
		if (mine[i] >= 0 && set_nonblock(mine[i]) < 0)
			return agentd_error_errno(err, errno, "set O_NONBLOCK");
	return 0;
}

/* One whole report, if one is there (each is one write of less than PIPE_BUF): 1, 0 at EOF,
 * -1 + errno (EAGAIN: none yet). */
static int read_report(int fd, struct child_report *r)
{
	ssize_t n;
	do
		n = read(fd, r, sizeof(*r));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(*r)) {
		errno = EPROTO;
		return -1;
	}
	return 1;
}

/* Until REPORT_START: it runs, with its pid. A failure to start is reported first (the
 * command is the init's vfork child); it is the caller's error, like exec's 126/127. */
static int wait_started(struct ctr_proc *p, const char *prog, pid_t *pid, agentd_error *err)
{
	struct child_report r, fail = {.kind = -1};
	uint64_t deadline = now_ms_monotonic() + SPAWN_WAIT_MS;
	for (;;) {
		int k = read_report(p->rep, &r);
		if (k == 1 && r.kind == REPORT_FAIL && fail.kind < 0)
			fail = r;
		if (k == 1 && r.kind == REPORT_START && fail.kind < 0) {
			*pid = r.status;
			return 0;
		}
		if (k == 0 || (k == 1 && fail.kind >= 0 && r.kind != REPORT_FAIL))
			break;
		if (k < 0 && errno != EAGAIN)
			return agentd_error_errno(err, errno, "read the start report");
		uint64_t now = now_ms_monotonic();
		struct pollfd pfd[2] = {{.fd = p->rep, .events = POLLIN},
					{.fd = p->c->init_pidfd, .events = POLLIN}};
		if (k < 0 && (now >= deadline || poll(pfd, 2, (int)(deadline - now)) == 0))
			return agentd_error_set(err, ETIMEDOUT, "the sandbox did not start it");
		if (k < 0 && pfd[1].revents && !pfd[0].revents)
			return agentd_error_set(err, ESRCH, "the sandbox is not running");
	}
	if (fail.kind < 0)
		return agentd_error_set(err, ESRCH, "the sandbox is not running");
	fail.what[sizeof(fail.what) - 1] = '\0';
	int code = fail.exit_code == 127 ? ENOENT : fail.exit_code == 126 ? EACCES : fail.errnum;
	if (fail.bad_workdir)
		return agentd_error_set(err, EINVAL, "workdir %s: %s", fail.what,
					strerror(fail.errnum));
	return agentd_error_set(err, code ? code : EIO, "%s: %s (%s)",
				fail.exit_code == 127	? "program not found"
				: fail.exit_code == 126 ? "program cannot be executed"
							: "could not start",
				prog, fail.errnum ? strerror(fail.errnum) : fail.what);
}

/* Read what the init reported; the lock held. */
static void poll_reports(struct ctr_proc *p)
{
	struct child_report r;
	while (!p->ended) {
		int k = read_report(p->rep, &r);
		if (k < 0 && errno == EAGAIN)
			return;
		if (k == 1 && r.kind != REPORT_EXIT)
			continue;
		/* Its exit report, or EOF without one: the init, and the sandbox with it, is
		 * gone (destroyed). */
		if (k == 1) {
			p->exit = r;
			p->have_exit = true;
		}
		p->ended = true;
		p->ended_at_ms = now_ms_realtime();
		/* Its tree ends with it, as an exec's does (the init killed its process
		 * group; what left the group is still in its unit). */
		if (p->unit && cgroup_is_populated(p->unit))
			cgroup_kill_all(p->unit);
	}
}

/* Which sandbox limit killed or constrained it: its unit's events since it started. */
static agentd_limit_kind proc_limit_hit(const struct ctr_proc *p, int term_signal)
{
	struct cgroup_events ev = {0};
	if (p->unit)
		cgroup_read_events(p->unit, &ev);
	if (ev.oom_kills > p->ev0.oom_kills)
		return AGENTD_LIMIT_MEMORY;
	/* its RLIMIT_CPU, or the kill of everything when an exec found the budget spent */
	uint64_t spent;
	if (term_signal == SIGXCPU ||
	    (term_signal == SIGKILL && p->cpu_limit_ms && p->c->cg &&
	     cgroup_cpu_ms(p->c->cg, &spent) == 0 && spent + 50 >= p->cpu_limit_ms))
		return AGENTD_LIMIT_CPU;
	if (ev.pids_max_hits > p->ev0.pids_max_hits)
		return AGENTD_LIMIT_PIDS;
	return AGENTD_LIMIT_NONE;
}

static int proc_get_status(agentd_process *ap, agentd_process_status *st, agentd_error *err)
{
	(void)err;
	struct ctr_proc *p = agentd_process_priv(ap);
	pthread_mutex_lock(&p->lock);
	poll_reports(p);
	st->running = !p->ended;
	st->started_at_ms = p->started_at_ms;
	if (p->ended) {
		st->ended_at_ms = p->ended_at_ms;
		int ws = p->have_exit ? p->exit.status : SIGKILL;
		if (WIFEXITED(ws)) {
			st->exit_code = WEXITSTATUS(ws);
		} else {
			st->term_signal = WIFSIGNALED(ws) ? WTERMSIG(ws) : SIGKILL;
			st->exit_code = 128 + st->term_signal;
		}
	}
	st->limit_hit = proc_limit_hit(p, st->term_signal);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static bool proc_ended(struct ctr_proc *p)
{
	pthread_mutex_lock(&p->lock);
	poll_reports(p);
	bool ended = p->ended;
	pthread_mutex_unlock(&p->lock);
	return ended;
}

static int send_op(struct ctr_proc *p, uint32_t op, int sig, agentd_error *err)
{
	struct ctl_msg m = {.op = op, .id = p->id, .sig = sig};
	if (send(p->c->ctl, &m, sizeof(m), MSG_NOSIGNAL) < 0)
		return agentd_error_errno(err, errno, "the sandbox is not running");
	return 0;
}

static int proc_signal(agentd_process *ap, int sig, agentd_error *err)
{
	struct ctr_proc *p = agentd_process_priv(ap);
	if (proc_ended(p))
		return agentd_error_set(err, ESRCH, "signal %d: process %" PRId64 " has ended",
					sig, agentd_process_pid(ap));
	return send_op(p, OP_SIGNAL, sig, err);
}

/* Its unit (its whole tree, setsid'd and daemonized descendants included, and nothing
 * else), and its process group by the init where the host has no cgroup. */
static int kill_unit(struct ctr_proc *p, agentd_error *err)
{
	if (p->unit) {
		int r = cgroup_kill_all(p->unit);
		if (r < 0)
			return agentd_error_errno(err, -r, "kill its cgroup");
	}
	return send_op(p, OP_KILL, 0, p->unit ? NULL : err);
}

static int proc_kill(agentd_process *ap, agentd_error *err)
{
	struct ctr_proc *p = agentd_process_priv(ap);
	if (proc_ended(p))
		return 0;
	return kill_unit(p, err);
}

static int proc_resize(agentd_process *ap, unsigned rows, unsigned cols, agentd_error *err)
{
	struct ctr_proc *p = agentd_process_priv(ap);
	struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
	if (ioctl(p->in, TIOCSWINSZ, &ws) < 0)
		return agentd_error_errno(err, errno, "resize the terminal");
	return 0;
}

static int proc_usage(agentd_process *ap, agentd_usage *u, agentd_error *err)
{
	(void)err;
	struct ctr_proc *p = agentd_process_priv(ap);
	pthread_mutex_lock(&p->lock);
	poll_reports(p);
	/* Its unit counts its whole tree; the exit report only the main process. */
	if (p->unit && cgroup_read_usage(p->unit, u) == 0) {
		u->cpu_time_ms -= p->cu0.cpu_time_ms;
		u->bytes_read = u->bytes_written = 0; /* the sandbox's only (io) */
	} else if (p->have_exit) {
		const struct rusage *ru = &p->exit.ru;
		u->cpu_time_ms = (uint64_t)ru->ru_utime.tv_sec * 1000 +
				 (uint64_t)ru->ru_utime.tv_usec / 1000 +
				 (uint64_t)ru->ru_stime.tv_sec * 1000 +
				 (uint64_t)ru->ru_stime.tv_usec / 1000;
		u->peak_memory_bytes = (uint64_t)ru->ru_maxrss * 1024;
	}
	u->wall_time_ms = p->ended ? (uint64_t)(p->ended_at_ms - p->started_at_ms)
				   : now_ms_monotonic() - p->start_mono;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* EOF on its stdin: a pipe's end closed; a terminal's EOF character (the line discipline
 * turns it into a read of 0 for a canonical reader, as ^D at a keyboard does). */
static void proc_close_stdin(agentd_process *ap)
{
	struct ctr_proc *p = agentd_process_priv(ap);
	if (!p->tty) {
		close_fd(&p->in);
		return;
	}
	struct termios t;
	char eof = tcgetattr(p->in, &t) == 0 && t.c_cc[VEOF] ? (char)t.c_cc[VEOF] : 4;
	if (write(p->in, &eof, 1) < 0) {
		/* the terminal is gone or full: the process ends or reads later */
	}
}

static void proc_release(struct ctr_proc *p)
{
	if (p->unit) {
		/* a free while it runs, or a failed spawn: its tree goes first */
		if (cgroup_is_populated(p->unit))
			cgroup_kill_all(p->unit);
		ctr_unit_put(p->c, p->unit, p->started);
	}
	close_fd(&p->in);
	if (!p->tty)
		close_fd(&p->out);
	p->out = -1;
	close_fd(&p->err);
	close_fd(&p->rep);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static void proc_free(agentd_process *ap)
{
	struct ctr_proc *p = agentd_process_priv(ap);
	if (!proc_ended(p))
		kill_unit(p, NULL);
	/* A durable init kept its entry (and our ends of it) for us: no longer needed. */
	if (p->c->durable)
		send_op(p, OP_FORGET, 0, NULL);
	proc_release(p);
}

static const agentd_process_ops ctr_process_ops = {
	.get_status = proc_get_status,
	.signal = proc_signal,
	.kill = proc_kill,
	.resize = proc_resize,
	.usage = proc_usage,
	.close_stdin = proc_close_stdin,
	.free = proc_free,
};

/* Hand the command to the init: its fds (child[]), the payload, its unit. */
static int send_spawn(struct ctr_proc *p, const agentd_sandbox *sb, const agentd_command *cmd,
		      bool tty, int child[4], agentd_error *err)
{
	char **envp = ctr_envp(sb, cmd);
	struct ctl_msg m = {.op = OP_SPAWN, .id = p->id, .flags = tty ? SPAWN_TTY : 0};
	/* Like an exec's command, it may use what remains of the sandbox's CPU budget (its
	 * RLIMIT_CPU): the budget is watched while an exec runs, this bounds it meanwhile. */
	uint64_t spent;
	if (p->cpu_limit_ms && p->c->cg && cgroup_cpu_ms(p->c->cg, &spent) == 0) {
		uint64_t left = p->cpu_limit_ms > spent ? p->cpu_limit_ms - spent : 1;
		m.cpu_s = (uint32_t)((left + 999) / 1000);
	}
	int r = ctr_send_command(p->c, &m, child, cmd->argv, envp,
				 cmd->workdir ? cmd->workdir : sb->spec.workdir, p->unit, err);
	env_free(envp);
	return r;
}

int ctr_spawn(agentd_sandbox *sb, const agentd_command *cmd, const agentd_process_opts *opts,
	      agentd_process **out, agentd_error *err)
{
	struct ctr *c = sb->priv;
	struct ctr_proc *p = xcalloc(1, sizeof(*p));
	p->c = c;
	p->tty = opts->tty;
	p->cpu_limit_ms = sb->spec.limits.max_cpu_time_ms;
	p->in = p->out = p->err = p->rep = -1;
	pthread_mutex_init(&p->lock, NULL);
	int child[4] = {-1, -1, -1, -1};
	pid_t pid = -1;
	pthread_mutex_lock(&c->lock);
	bool suspended = c->suspended;
	p->id = ++c->next_id;
	pthread_mutex_unlock(&c->lock);
	int r = suspended ? agentd_error_set(err, EBUSY, "sandbox %s is suspended", sb->id) : 0;
	if (r == 0 && c->cg && !(p->unit = ctr_unit_get(c, err)))
		r = -1;
	if (p->unit) {
		cgroup_read_events(p->unit, &p->ev0);
		cgroup_read_usage(p->unit, &p->cu0);
	}
	if (r == 0)
		r = open_stdio(p, opts, child, err);
	p->started_at_ms = now_ms_realtime();
	p->start_mono = now_ms_monotonic();
	if (r == 0)
		r = send_spawn(p, sb, cmd, opts->tty, child, err);
	for (int i = 0; i < 4; i++)
		close_fd(&child[i]);
	if (r == 0 && (r = wait_started(p, cmd->argv[0], &pid, err)) == 0)
		p->started = true;
	if (r < 0) {
		proc_release(p); /* kills what its unit holds */
		return -1;
	}
	*out = agentd_process_alloc(sb, &ctr_process_ops, p, opts->tty);
	agentd_process_set_fds(*out, pid, p->in, p->out, p->err, p->rep);
	if (c->durable && ctr_proc_keep(c, *out, err) < 0) {
		agentd_process_free(*out);
		*out = NULL;
		return agentd_error_prefix(err, "durable sandbox");
	}
	return 0;
}

/* What it writes while no host reads waits in its pipes: as much of it as we may. */
#define KEPT_PIPE_BYTES (1 << 20)

int ctr_proc_keep(struct ctr *c, agentd_process *ap, agentd_error *err)
{
	struct ctr_proc *p = agentd_process_priv(ap);
	/* Not a stdin pipe's write end: a copy in the init would keep the process from ever
	 * reading EOF (a terminal's master is its stdout too). */
	int mine[KEEP_N - 1] = {p->tty ? p->in : -1, p->tty ? -1 : p->out, p->err, p->rep};
	int fds[KEEP_N];
	int n = 0;
	uint32_t mask = 0;
	for (int k = 0; k < KEEP_N - 1; k++) {
		if (mine[k] < 0)
			continue;
		if (k == KEEP_OUT || k == KEEP_ERR)
			fcntl(mine[k], F_SETPIPE_SZ, KEPT_PIPE_BYTES); /* else the default */
		mask |= 1u << k;
		fds[n++] = mine[k];
	}
	struct ctl_msg m = {.op = OP_DURABLE, .flags = DURABLE_KEEP, .id = p->id,
			    .sig = (int32_t)mask};
	if (ctl_send(c->ctl, &m, fds, n) < 0)
		return agentd_error_errno(err, errno, "the sandbox is not running");
	return 0;
}

agentd_process *ctr_proc_adopt(agentd_sandbox *sb, const struct durable_entry *e,
			       int fds[KEEP_N])
{
	struct ctr_proc *p = xcalloc(1, sizeof(*p));
	p->c = sb->priv;
	p->id = e->id;
	p->started = true;
	p->tty = e->flags & ENTRY_TTY;
	p->cpu_limit_ms = sb->spec.limits.max_cpu_time_ms;
	pthread_mutex_init(&p->lock, NULL);
	p->in = take_fd(&fds[KEEP_IN]);
	p->out = p->tty ? p->in : take_fd(&fds[KEEP_OUT]);
	p->err = take_fd(&fds[KEEP_ERR]);
	p->rep = take_fd(&fds[KEEP_REP]);
	for (int k = 0; k < KEEP_N; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	int mine[] = {p->in, p->out, p->err, p->rep};
	for (size_t i = 0; i < ARRAY_SIZE(mine); i++)
		if (mine[i] >= 0)
			set_nonblock(mine[i]);
	p->started_at_ms = e->started_ms;
	int64_t age = now_ms_realtime() - e->started_ms;
	uint64_t mono = now_ms_monotonic();
	p->start_mono = age > 0 && (uint64_t)age < mono ? mono - (uint64_t)age : mono;
	/* Its kill unit, as the init remembered it (else its kill goes through the init: its
	 * process group). Its counters from now on: what it did before is not known here. */
	if (e->unit && p->c->cg) {
		char name[32];
		snprintf(name, sizeof(name), "u%" PRIu64, e->unit);
		if ((p->unit = cgroup_open_child(p->c->cg, name, NULL)))
			cgroup_read_events(p->unit, &p->ev0);
	}
	agentd_process *ap = agentd_process_alloc(sb, &ctr_process_ops, p, p->tty);
	agentd_process_set_fds(ap, e->pid, p->in, p->out, p->err, p->rep);
	return ap;
}
