/* exec.c: the one spawn path of every backend. clone3 (pidfd, straight into the cgroup),
 * stdio pipes drained by one epoll loop, wall timeout, output cap, and no survivors. */
#include "lib/engine/engine.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

/* fds the child sees: 0,1,2 stdio, 3 the error pipe; everything else is closed. */
#define CHILD_ERRFD 3
/* Parent-side fds are moved above this so dup2 onto 0..3 in the child never collides. */
#define HIGH_FD 10
/* After the main process ends and its tree is killed, how long to keep draining pipes
 * that something outside our control still holds open. */
#define DRAIN_GRACE_MS 2000

/* ------------------------------------------------------------------ child side */

void child_report_fail(int errfd, int exit_code, int errnum, const char *what)
{
	struct child_report rep;
	memset(&rep, 0, sizeof(rep));
	rep.kind = REPORT_FAIL;
	rep.exit_code = exit_code;
	rep.errnum = errnum;
	size_t n = strlen(what);
	if (n >= sizeof(rep.what))
		n = sizeof(rep.what) - 1;
	memcpy(rep.what, what, n);
	if (write(errfd, &rep, sizeof(rep)) < 0) {
		/* nothing left to tell anyone */
	}
}

void child_fail(int errfd, int exit_code, int errnum, const char *what)
{
	child_report_fail(errfd, exit_code, errnum, what);
	_exit(exit_code);
}

int exec_failure_code(int neg_errno)
{
	return neg_errno == -ENOENT || neg_errno == -ENOTDIR ? 127 : 126;
}

/* Signals this process ignores (SigIgn of /proc/self/status): the only dispositions that
 * survive execve, handlers are reset by the kernel. Read in the parent, before the fork. */
uint64_t ignored_signals(void)
{
	_cleanup_free_ char *st = read_file_at(AT_FDCWD, "/proc/self/status", 1 << 16, NULL);
	const char *p = st ? strstr(st, "\nSigIgn:") : NULL;
	if (!p)
		return ~0ULL; /* unknown: reset them all */
	return strtoull(p + 9, NULL, 16);
}

void child_reset_signals(uint64_t ignored)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < _NSIG && s <= 64; s++) {
		if (s == SIGKILL || s == SIGSTOP || !(ignored & (1ULL << (s - 1))))
			continue;
		struct sigaction sa = {.sa_handler = SIG_DFL};
		sigaction(s, &sa, NULL);
	}
}

/* execve with a PATH search over the command's own PATH; no malloc (we are post-fork).
 * Like execvp: EACCES is remembered, ENOENT keeps searching. */
int child_execvpe(char *const argv[], char *const envp[])
{
	const char *file = argv[0];
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return -errno;
	}
	const char *path = "/usr/local/bin:/usr/bin:/bin";
	for (char *const *e = envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	size_t flen = strlen(file);
	int saved = ENOENT;
	char buf[4096];
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dlen = (size_t)(end - p);
		if (dlen + 1 + flen + 1 <= sizeof(buf)) {
			if (dlen) {
				memcpy(buf, p, dlen);
				buf[dlen] = '/';
				memcpy(buf + dlen + 1, file, flen + 1);
			} else {
				memcpy(buf, file, flen + 1);
			}
			execve(buf, argv, envp);
			if (errno == EACCES || errno == ENOEXEC || errno == EPERM)
				saved = errno;
			else if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP &&
				 errno != ENAMETOOLONG)
				return -errno;
		}
		if (!*end)
			break;
		p = end;
	}
	return -saved;
}

struct child_fds {
	int in, out, err, errpipe;
};

struct direct_child {
	const exec_request *req;
	const struct child_fds *f;
	uint64_t ignored;
};

static __attribute__((noreturn)) void child_main(void *arg)
{
	const struct direct_child *dc = arg;
	const exec_request *req = dc->req;
	const struct child_fds *f = dc->f;

	/* Signal state is inherited across execve: give the command the defaults. */
	child_reset_signals(dc->ignored);

	if (dup3(f->errpipe, CHILD_ERRFD, O_CLOEXEC) < 0)
		_exit(125);
	if (dup2(f->in, 0) < 0 || dup2(f->out, 1) < 0 || dup2(f->err, 2) < 0)
		child_fail(CHILD_ERRFD, 125, errno, "set up stdio");

	/* A new session: no controlling terminal, so no TIOCSTI into the caller's tty, and
	 * a process group the engine can signal as a whole. */
	if (setsid() < 0)
		child_fail(CHILD_ERRFD, 125, errno, "setsid");
	/* Die with the engine (one-shot runs): a crashed agentd leaves no command behind. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail(CHILD_ERRFD, 125, errno, "PR_SET_PDEATHSIG");

	if (req->child_setup)
		req->child_setup(req->child_arg, CHILD_ERRFD);

	int r = fds_close_from(CHILD_ERRFD + 1);
	if (r < 0)
		child_fail(CHILD_ERRFD, 125, -r, "close inherited fds");

	if (req->cwd && chdir(req->cwd) < 0) {
		char what[300];
		snprintf(what, sizeof(what), "chdir %s", req->cwd);
		child_fail(CHILD_ERRFD, 125, errno, what);
	}

	r = child_execvpe(req->argv, req->envp);
	char what[300];
	snprintf(what, sizeof(what), "%s", req->argv[0]);
	child_fail(CHILD_ERRFD, exec_failure_code(r), -r, what);
}

/* ------------------------------------------------------------------ spawn */

struct clone_args_v2 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
		set_tid, set_tid_size, cgroup;
};

static __attribute__((noreturn)) void spawned_child(const struct spawn_opts *o, int syncfd,
						     bool into_cgroup)
{
	if (syncfd >= 0) {
		/* Wait for the parent's hook (uid maps...): EOF without a byte = abort. */
		char c;
		ssize_t n;
		do
			n = read(syncfd, &c, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1)
			_exit(125);
		close(syncfd);
	}
	/* On pure v2, clone3(CLONE_INTO_CGROUP) already placed us; v1 hierarchies (and a
	 * fork fallback) need an explicit join before anything else runs. */
	if (o->cg && !(into_cgroup && cgroup_clone_into_complete(o->cg))) {
		if (cgroup_attach_self(o->cg) < 0)
			_exit(125);
	}
	o->child_fn(o->child_arg);
	_exit(125);
}

pid_t spawn_process(const struct spawn_opts *o, int *pidfd, agentd_error *err)
{
	static int clone3_works = -1; /* -1 unknown, 0 no, 1 yes; racy reads are benign */
	int cgfd = o->cg ? cgroup_dir_fd(o->cg) : -1;
	int sync[2] = {-1, -1};
	if (o->after_clone && pipe2(sync, O_CLOEXEC) < 0) {
		agentd_error_errno(err, errno, "pipe");
		return -1;
	}
	pid_t pid = -1;
	*pidfd = -1;

	if (clone3_works != 0 || o->clone_flags) {
		struct clone_args_v2 args;
		memset(&args, 0, sizeof(args));
		args.flags = CLONE_PIDFD | o->clone_flags;
		args.pidfd = (uint64_t)(uintptr_t)pidfd;
		args.exit_signal = SIGCHLD;
		if (cgfd >= 0) {
			args.flags |= CLONE_INTO_CGROUP;
			args.cgroup = (uint64_t)cgfd;
		}
		long r = syscall(SYS_clone3, &args, sizeof(args));
		if (r == 0) {
			if (sync[1] >= 0)
				close(sync[1]);
			spawned_child(o, sync[0], cgfd >= 0);
		}
		if (r > 0) {
			clone3_works = 1;
			pid = (pid_t)r;
		} else if (o->clone_flags || (errno != ENOSYS && errno != E2BIG)) {
			agentd_error_errno(err, errno, "clone3");
			goto out;
		} else {
			clone3_works = 0;
		}
	}
	if (pid < 0) {
		pid = fork();
		if (pid == 0) {
			if (sync[1] >= 0)
				close(sync[1]);
			spawned_child(o, sync[0], false);
		}
		if (pid < 0) {
			agentd_error_errno(err, errno, "fork");
			goto out;
		}
		*pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (*pidfd < 0) {
			agentd_error_errno(err, errno, "pidfd_open");
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			pid = -1;
			goto out;
		}
	}
	if (*pidfd >= 0 && *pidfd < HIGH_FD) {
		int hi = fcntl(*pidfd, F_DUPFD_CLOEXEC, HIGH_FD);
		if (hi >= 0) {
			close(*pidfd);
			*pidfd = hi;
		}
	}
	if (o->after_clone) {
		close(sync[0]);
		sync[0] = -1;
		if (o->after_clone(o->after_arg, pid, err) < 0) {
			kill(pid, SIGKILL);
			close(sync[1]); /* EOF: the child aborts */
			sync[1] = -1;
			siginfo_t si;
			waitid((idtype_t)P_PIDFD, (id_t)*pidfd, &si, WEXITED);
			close(*pidfd);
			*pidfd = -1;
			pid = -1;
			goto out;
		}
		if (write(sync[1], "g", 1) != 1) {
			agentd_error_errno(err, errno, "release child");
			kill(pid, SIGKILL);
		}
	}
out:
	if (sync[0] >= 0)
		close(sync[0]);
	if (sync[1] >= 0)
		close(sync[1]);
	return pid;
}

/* ------------------------------------------------------- no-cgroup tree cleanup
 * Without a cgroup, descendants that left the process group are found as orphans
 * reparented to us (we are a child subreaper). Main processes of running execs are kept
 * in a set so a sweep only takes what no exec owns. */
static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t active_pids[1024];
static size_t n_active;

static void active_add(pid_t p)
{
	pthread_mutex_lock(&active_lock);
	if (n_active < ARRAY_SIZE(active_pids))
		active_pids[n_active++] = p;
	pthread_mutex_unlock(&active_lock);
}

static void active_del(pid_t p)
{
	pthread_mutex_lock(&active_lock);
	for (size_t i = 0; i < n_active; i++)
		if (active_pids[i] == p) {
			active_pids[i] = active_pids[--n_active];
			break;
		}
	pthread_mutex_unlock(&active_lock);
}

static bool active_has(pid_t p)
{
	bool r = false;
	pthread_mutex_lock(&active_lock);
	for (size_t i = 0; i < n_active; i++)
		if (active_pids[i] == p)
			r = true;
	pthread_mutex_unlock(&active_lock);
	return r;
}

/* Kill and reap every orphan reparented to us; returns how many were found. */
static int sweep_orphans(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	pid_t self = getpid();
	int found = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char path[300];
		snprintf(path, sizeof(path), "%s/stat", de->d_name);
		_cleanup_free_ char *st = read_file_at(dirfd(d), path, 4096, NULL);
		if (!st)
			continue;
		char *rp = strrchr(st, ')');
		int ppid = 0;
		if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1 || ppid != self)
			continue;
		pid_t pid = (pid_t)atoi(de->d_name);
		if (active_has(pid) || pid == janitor_pid())
			continue;
		kill(pid, SIGKILL);
		siginfo_t si;
		waitid(P_PID, (id_t)pid, &si, WEXITED);
		found++;
	}
	closedir(d);
	return found;
}

static void kill_tree(const exec_request *req, pid_t pid, uint64_t handle)
{
	if (req->launcher) {
		req->launcher->kill(req->launcher_arg, handle);
		return;
	}
	/* The main process itself first: killed early (cancel already readable, a timeout
	 * of a few ms), it may not have made its process group yet (setsid) nor joined the
	 * cgroup (v1: attached by the child). Not reaped yet, so the pid is still its own. */
	if (pid > 0)
		kill(pid, SIGKILL);
	if (req->cg) {
		/* The common case: the command left nothing behind. One read instead of a
		 * kill and a wait. */
		if (cgroup_is_populated(req->cg))
			cgroup_kill_all(req->cg);
		return;
	}
	kill(-pid, SIGKILL);
	for (int i = 0; i < 50 && sweep_orphans() > 0; i++)
		;
}

/* ------------------------------------------------------------------ the loop */

struct capture {
	const exec_request *req;
	agentd_exec_output *out;
	uint64_t total;
};

static void capture_chunk(struct capture *c, agentd_stream s, const uint8_t *buf, size_t n)
{
	uint64_t room = c->req->max_output_bytes > c->total ? c->req->max_output_bytes - c->total
							    : 0;
	size_t keep = n < room ? n : (size_t)room;
	if (keep < n)
		c->out->output_truncated = true;
	if (!keep)
		return;
	uint8_t **dst = s == AGENTD_STREAM_STDOUT ? &c->out->out : &c->out->err;
	size_t *len = s == AGENTD_STREAM_STDOUT ? &c->out->out_len : &c->out->err_len;
	*dst = xrealloc(*dst, *len + keep + 1);
	memcpy(*dst + *len, buf, keep);
	*len += keep;
	(*dst)[*len] = '\0';
	c->total += keep;
	if (c->req->on_output)
		c->req->on_output(c->req->userdata, s, buf, keep);
}

static int move_high(int fd)
{
	if (fd < 0 || fd >= HIGH_FD)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, HIGH_FD);
	close(fd);
	return n;
}

static int make_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	p[0] = move_high(p[0]);
	p[1] = move_high(p[1]);
	return p[0] < 0 || p[1] < 0 ? -1 : 0;
}

static void close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0) {
			close(p[i]);
			p[i] = -1;
		}
}

/* write() to the command's stdin: a command that exits without reading it all must not
 * kill its caller with SIGPIPE (a library cannot count on the process ignoring it). The
 * signal is blocked around the write and a SIGPIPE the write raised is consumed. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t n)
{
	sigset_t pipe_set, old, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	bool was_pending = sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	ssize_t w = write(fd, buf, n);
	int e = errno;
	if (w < 0 && e == EPIPE && !was_pending) {
		struct timespec zero = {0, 0};
		sigtimedwait(&pipe_set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return w;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void add_usage_from_rusage(agentd_usage *u, const struct rusage *ru)
{
	uint64_t cpu = (uint64_t)ru->ru_utime.tv_sec * 1000 + (uint64_t)ru->ru_utime.tv_usec / 1000 +
		       (uint64_t)ru->ru_stime.tv_sec * 1000 + (uint64_t)ru->ru_stime.tv_usec / 1000;
	if (cpu > u->cpu_time_ms)
		u->cpu_time_ms = cpu;
	uint64_t rss = (uint64_t)ru->ru_maxrss * 1024;
	if (rss > u->peak_memory_bytes)
		u->peak_memory_bytes = rss;
	if ((uint64_t)ru->ru_oublock * 512 > u->bytes_written)
		u->bytes_written = (uint64_t)ru->ru_oublock * 512;
	if ((uint64_t)ru->ru_inblock * 512 > u->bytes_read)
		u->bytes_read = (uint64_t)ru->ru_inblock * 512;
}

static void report_exec_failure(struct capture *c, const struct child_report *rep)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), "agentd: %s: %s\n", rep->what, strerror(rep->errnum));
	if (n > 0)
		capture_chunk(c, AGENTD_STREAM_STDERR, (const uint8_t *)msg,
			      (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

enum { TAG_OUT = 1, TAG_ERR, TAG_IN, TAG_PID, TAG_TIMER, TAG_REPORT, TAG_CANCEL };

struct reports {
	bool have_fail, have_exit;
	struct child_report fail, exit;
	size_t partial;
	struct child_report buf;
};

/* Reports arrive whole (one write of < PIPE_BUF) but read defensively. Returns false at
 * EOF or error. */
static bool read_reports(int fd, struct reports *rs)
{
	for (;;) {
		ssize_t r = read(fd, (char *)&rs->buf + rs->partial, sizeof(rs->buf) - rs->partial);
		if (r < 0)
			return errno == EAGAIN || errno == EINTR;
		if (r == 0)
			return false;
		rs->partial += (size_t)r;
		if (rs->partial < sizeof(rs->buf))
			continue;
		rs->partial = 0;
		if (rs->buf.kind == REPORT_EXIT && !rs->have_exit) {
			rs->exit = rs->buf;
			rs->have_exit = true;
		} else if (rs->buf.kind == REPORT_FAIL && !rs->have_fail) {
			rs->fail = rs->buf;
			rs->have_fail = true;
		}
	}
}

int exec_run(const exec_request *req, agentd_exec_output *out, agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	out->exit_code = 125;
	uint64_t start = now_ms_monotonic();

	/* We become the reaper of whatever the command orphans (see sweep_orphans). */
	if (!req->launcher && !req->cg)
		prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1}, prep[2] = {-1, -1};
	_cleanup_close_ int devnull = -1, ep = -1, tfd = -1, pidfd = -1;
	int ret = -1;
	bool loop_failed = false;
	pid_t pid = -1;
	uint64_t handle = 0;
	struct capture cap = {.req = req, .out = out};
	struct reports rs;
	memset(&rs, 0, sizeof(rs));

	if (make_pipe(pout) < 0 || make_pipe(perr) < 0 || make_pipe(prep) < 0) {
		agentd_error_errno(err, errno, "create pipes");
		goto out;
	}
	if (req->stdin_data && !req->stdin_null) {
		if (make_pipe(pin) < 0) {
			agentd_error_errno(err, errno, "create stdin pipe");
			goto out;
		}
	} else {
		devnull = move_high(open("/dev/null", O_RDONLY | O_CLOEXEC));
		if (devnull < 0) {
			agentd_error_errno(err, errno, "open /dev/null");
			goto out;
		}
	}

	struct child_fds cf = {
		.in = pin[0] >= 0 ? pin[0] : devnull,
		.out = pout[1],
		.err = perr[1],
		.errpipe = prep[1],
	};
	/* A persistent sandbox's cgroup counts every exec: report this one's share. */
	struct cgroup_events ev0 = {0};
	agentd_usage cu0 = {0};
	if (req->cg) {
		cgroup_read_events(req->cg, &ev0);
		cgroup_read_usage(req->cg, &cu0);
	}
	if (req->launcher) {
		int fds[4] = {cf.in, cf.out, cf.err, cf.errpipe};
		if (req->launcher->start(req->launcher_arg, fds, &handle, err) < 0)
			goto out;
	} else {
		struct direct_child dc = {.req = req, .f = &cf, .ignored = ignored_signals()};
		struct spawn_opts so = {.cg = req->cg, .child_fn = child_main, .child_arg = &dc};
		pid = spawn_process(&so, &pidfd, err);
		if (pid < 0) {
			agentd_error_prefix(err, "spawn %s", req->argv[0]);
			goto out;
		}
		active_add(pid);
	}
	/* A launcher may have made the (fresh) cgroup just now: its counters start at zero. */
	struct cgroup *cg = req->cg ? req->cg : req->cg_late ? *req->cg_late : NULL;
	/* Child ends belong to the child now. */
	if (pin[0] >= 0) {
		close(pin[0]);
		pin[0] = -1;
	}
	close(pout[1]);
	pout[1] = -1;
	close(perr[1]);
	perr[1] = -1;
	close(prep[1]);
	prep[1] = -1;

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		agentd_error_errno(err, errno, "epoll_create1");
		loop_failed = true;
		kill_tree(req, pid, handle);
		goto reap;
	}
	struct epoll_event ev = {.events = EPOLLIN};
	int fds[][2] = {{pout[0], TAG_OUT}, {perr[0], TAG_ERR}, {pidfd, TAG_PID},
			{prep[0], TAG_REPORT}};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		if (fds[i][0] < 0)
			continue;
		set_nonblock(fds[i][0]);
		ev.data.u32 = (uint32_t)fds[i][1];
		epoll_ctl(ep, EPOLL_CTL_ADD, fds[i][0], &ev);
	}
	if (req->cancel_fd > 0) {
		struct epoll_event cev = {.events = EPOLLIN, .data.u32 = TAG_CANCEL};
		epoll_ctl(ep, EPOLL_CTL_ADD, req->cancel_fd, &cev);
	}
	size_t in_off = 0;
	if (pin[1] >= 0) {
		set_nonblock(pin[1]);
		if (req->stdin_len == 0) {
			close(pin[1]);
			pin[1] = -1;
		} else {
			struct epoll_event wev = {.events = EPOLLOUT, .data.u32 = TAG_IN};
			epoll_ctl(ep, EPOLL_CTL_ADD, pin[1], &wev);
		}
	}
	if (req->timeout_ms) {
		tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		struct itimerspec its = {.it_value = {.tv_sec = (time_t)(req->timeout_ms / 1000),
						      .tv_nsec = (long)(req->timeout_ms % 1000) *
								 1000000}};
		if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0) {
			agentd_error_errno(err, errno, "arm timeout");
			loop_failed = true;
			kill_tree(req, pid, handle);
			goto reap;
		}
		struct epoll_event tev = {.events = EPOLLIN, .data.u32 = TAG_TIMER};
		epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);
	}

	bool exited = false;
	uint64_t drain_deadline = 0;
	int open_streams = 2;
	uint8_t buf[65536];

	while (open_streams > 0 || !exited) {
		int wait_ms = -1;
		if (exited) {
			uint64_t now = now_ms_monotonic();
			if (now >= drain_deadline)
				break;
			wait_ms = (int)(drain_deadline - now);
		}
		struct epoll_event evs[8];
		int n = epoll_wait(ep, evs, 8, wait_ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			agentd_error_errno(err, errno, "epoll_wait");
			loop_failed = true;
			kill_tree(req, pid, handle);
			goto reap;
		}
		for (int i = 0; i < n; i++) {
			bool main_ended = false;
			switch (evs[i].data.u32) {
			case TAG_OUT:
			case TAG_ERR: {
				int fd = evs[i].data.u32 == TAG_OUT ? pout[0] : perr[0];
				agentd_stream s = evs[i].data.u32 == TAG_OUT ? AGENTD_STREAM_STDOUT
									     : AGENTD_STREAM_STDERR;
				ssize_t r = read(fd, buf, sizeof(buf));
				if (r > 0) {
					capture_chunk(&cap, s, buf, (size_t)r);
				} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
					epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
					open_streams--;
					if (s == AGENTD_STREAM_STDOUT) {
						close(pout[0]);
						pout[0] = -1;
					} else {
						close(perr[0]);
						perr[0] = -1;
					}
				}
				break;
			}
			case TAG_IN: {
				ssize_t w = write_nosigpipe(pin[1], req->stdin_data + in_off,
							    req->stdin_len - in_off);
				if (w > 0)
					in_off += (size_t)w;
				if ((w < 0 && errno != EAGAIN && errno != EINTR) ||
				    in_off == req->stdin_len) {
					epoll_ctl(ep, EPOLL_CTL_DEL, pin[1], NULL);
					close(pin[1]);
					pin[1] = -1;
				}
				break;
			}
			case TAG_REPORT:
				if (!read_reports(prep[0], &rs)) {
					epoll_ctl(ep, EPOLL_CTL_DEL, prep[0], NULL);
					close(prep[0]);
					prep[0] = -1;
					/* Launched commands end when their reporter lets go. */
					main_ended = req->launcher != NULL;
				}
				break;
			case TAG_CANCEL:
				epoll_ctl(ep, EPOLL_CTL_DEL, req->cancel_fd, NULL);
				kill_tree(req, pid, handle);
				break;
			case TAG_TIMER:
				out->timed_out = true;
				epoll_ctl(ep, EPOLL_CTL_DEL, tfd, NULL);
				kill_tree(req, pid, handle);
				break;
			case TAG_PID:
				epoll_ctl(ep, EPOLL_CTL_DEL, pidfd, NULL);
				main_ended = true;
				break;
			}
			if (main_ended && !exited) {
				exited = true;
				/* The command is over: so is everything it started (a launcher's
				 * init has already done it). */
				if (!req->launcher)
					kill_tree(req, pid, handle);
				drain_deadline = now_ms_monotonic() + DRAIN_GRACE_MS;
			}
		}
	}

reap:;
	siginfo_t si;
	struct rusage ru;
	memset(&si, 0, sizeof(si));
	memset(&ru, 0, sizeof(ru));
	if (pidfd >= 0 && syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED, &ru) < 0) {
		kill(pid, SIGKILL);
		syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED, &ru);
	}
	if (pid > 0)
		active_del(pid);
	if (!req->cg && !req->launcher)
		sweep_orphans();
	if (prep[0] >= 0)
		read_reports(prep[0], &rs); /* written just before the exit notification */

	out->duration_ms = now_ms_monotonic() - start;
	out->usage.wall_time_ms = out->duration_ms;
	if (rs.have_exit) {
		/* The launcher's (or init's) view of the command replaces ours. */
		si.si_code = WIFEXITED(rs.exit.status) ? CLD_EXITED : CLD_KILLED;
		si.si_status = WIFEXITED(rs.exit.status) ? WEXITSTATUS(rs.exit.status)
							  : WTERMSIG(rs.exit.status);
		ru = rs.exit.ru;
	}
	add_usage_from_rusage(&out->usage, &ru);
	if (cg) {
		agentd_usage cu = {0};
		if (cgroup_read_usage(cg, &cu) == 0) {
			/* The cgroup's peak is the sandbox's lifetime peak: it speaks for this
			 * exec only if this exec raised it. */
			if (cu.peak_memory_bytes > cu0.peak_memory_bytes &&
			    cu.peak_memory_bytes > out->usage.peak_memory_bytes)
				out->usage.peak_memory_bytes = cu.peak_memory_bytes;
			if (cu.cpu_time_ms - cu0.cpu_time_ms > out->usage.cpu_time_ms)
				out->usage.cpu_time_ms = cu.cpu_time_ms - cu0.cpu_time_ms;
			if (cu.bytes_written - cu0.bytes_written > out->usage.bytes_written)
				out->usage.bytes_written = cu.bytes_written - cu0.bytes_written;
			if (cu.bytes_read - cu0.bytes_read > out->usage.bytes_read)
				out->usage.bytes_read = cu.bytes_read - cu0.bytes_read;
		}
	}

	if (rs.have_fail) {
		out->exit_code = rs.fail.exit_code;
		if (rs.fail.exit_code == 126 || rs.fail.exit_code == 127) {
			/* The command could not be started: a result, not an agentd failure. */
			report_exec_failure(&cap, &rs.fail);
			ret = 0;
		} else {
			agentd_error_set(err, rs.fail.errnum, "sandbox setup: %s: %s", rs.fail.what,
					 strerror(rs.fail.errnum));
			ret = -1;
		}
		goto out;
	}
	if (loop_failed)
		goto out; /* already described in err */
	if (req->launcher && !rs.have_exit) {
		agentd_error_set(err, EPIPE, "the sandbox's init went away during the command");
		goto out;
	}

	if (si.si_code == CLD_EXITED) {
		out->exit_code = si.si_status;
	} else {
		out->term_signal = si.si_status;
		out->exit_code = 128 + si.si_status;
	}
	if (out->timed_out)
		out->exit_code = 124;

	/* Which limit, if any, ended or constrained the command. */
	struct cgroup_events cev = {0};
	if (cg)
		cgroup_read_events(cg, &cev);
	if (cev.oom_kills > ev0.oom_kills)
		out->limit_hit = AGENTD_LIMIT_MEMORY;
	else if (out->term_signal == SIGXCPU ||
		 (out->term_signal == SIGKILL && req->cpu_limit_ms &&
		  out->usage.cpu_time_ms + 50 >= req->cpu_limit_ms && !out->timed_out))
		out->limit_hit = AGENTD_LIMIT_CPU;
	else if (out->term_signal == SIGXFSZ)
		out->limit_hit = AGENTD_LIMIT_WRITE;
	else if (cev.pids_max_hits > ev0.pids_max_hits)
		out->limit_hit = AGENTD_LIMIT_PIDS;
	else if (out->output_truncated)
		out->limit_hit = AGENTD_LIMIT_OUTPUT;
	out->resource_limited = out->limit_hit != AGENTD_LIMIT_NONE;
	ret = 0;

out:
	close_pair(pin);
	close_pair(pout);
	close_pair(perr);
	close_pair(prep);
	if (!out->duration_ms)
		out->duration_ms = now_ms_monotonic() - start;
	return ret;
}
