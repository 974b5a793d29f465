/* job.c: one command's run from the host's side — its pipes, then one epoll loop that
 * feeds stdin, captures stdout and stderr under the output cap, reads the report pipe,
 * enforces the wall timeout and cancel, and once the command ends kills whatever it left
 * and drains what is still buffered. The verdict is verdict.c's. */
#include "lib/engine/engine.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

/* After the main process ends and its tree is killed, how long to keep draining pipes
 * that something outside our control still holds open. */
#define DRAIN_GRACE_MS 2000

enum { TAG_OUT = 1, TAG_ERR, TAG_IN, TAG_PID, TAG_TIMER, TAG_REPORT, TAG_CANCEL };

static int move_high(int fd)
{
	if (fd < 0 || fd >= ENGINE_HIGH_FD)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, ENGINE_HIGH_FD);
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

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void close_pair(int p[2])
{
	close_fd(&p[0]);
	close_fd(&p[1]);
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

int exec_job_open(struct exec_job *j, const exec_request *req, agentd_exec_output *out,
		  agentd_error *err)
{
	memset(j, 0, sizeof(*j));
	memset(out, 0, sizeof(*out));
	out->exit_code = 125;
	j->req = req;
	j->out = out;
	j->start_ms = now_ms_monotonic();
	j->pid = -1;
	j->pidfd = -1;
	j->devnull = -1;
	for (int i = 0; i < 2; i++)
		j->in[i] = j->stdout_p[i] = j->stderr_p[i] = j->rep[i] = -1;
	if (make_pipe(j->stdout_p) < 0 || make_pipe(j->stderr_p) < 0 || make_pipe(j->rep) < 0) {
		agentd_error_errno(err, errno, "create pipes");
		goto fail;
	}
	if (req->stdin_data && !req->stdin_null) {
		if (make_pipe(j->in) < 0) {
			agentd_error_errno(err, errno, "create stdin pipe");
			goto fail;
		}
	} else {
		j->devnull = move_high(open("/dev/null", O_RDONLY | O_CLOEXEC));
		if (j->devnull < 0) {
			agentd_error_errno(err, errno, "open /dev/null");
			goto fail;
		}
	}
	j->child_fds[0] = j->in[0] >= 0 ? j->in[0] : j->devnull;
	j->child_fds[1] = j->stdout_p[1];
	j->child_fds[2] = j->stderr_p[1];
	j->child_fds[3] = j->rep[1];
	/* A persistent sandbox's cgroup counts every exec: report this one's share, of its
	 * own unit where it has one (which counted the commands before it that used it;
	 * events of a hierarchy the unit is not in are the sandbox's). */
	j->unit = req->unit;
	struct cgroup *acct = req->unit ? req->unit : req->cg;
	if (acct) {
		cgroup_read_events(acct, &j->ev0);
		cgroup_read_usage(acct, &j->cu0);
	}
	j->cg = req->cg;
	capture_init(&j->cap[0], req->max_output_bytes);
	capture_init(&j->cap[1], req->max_output_bytes);
	return 0;
fail:
	exec_job_close(j);
	return -1;
}

void exec_job_started(struct exec_job *j, pid_t pid, int pidfd, struct cgroup *cg)
{
	j->pid = pid;
	j->pidfd = pidfd;
	bool fresh = cg && cg != j->cg;
	if (fresh) {
		/* made for this command: its counters start at zero */
		j->cg = cg;
		memset(&j->ev0, 0, sizeof(j->ev0));
		memset(&j->cu0, 0, sizeof(j->cu0));
	}
	watch_start(j, fresh);
	/* The child's ends belong to the child now. */
	close_fd(&j->in[0]);
	close_fd(&j->devnull);
	close_fd(&j->stdout_p[1]);
	close_fd(&j->stderr_p[1]);
	close_fd(&j->rep[1]);
	for (int i = 0; i < 4; i++)
		j->child_fds[i] = -1;
}

void exec_job_close(struct exec_job *j)
{
	close_pair(j->in);
	close_pair(j->stdout_p);
	close_pair(j->stderr_p);
	close_pair(j->rep);
	close_fd(&j->devnull);
	close_fd(&j->pidfd);
	capture_free(&j->cap[0]);
	capture_free(&j->cap[1]);
	if (!j->out->duration_ms)
		j->out->duration_ms = now_ms_monotonic() - j->start_ms;
}

/* Kill the command's whole tree: its init's way, its cgroup, or its process group and
 * the orphans it left us. */
static void kill_unit(struct exec_job *j)
{
	/* Its own cgroup holds its tree and nothing else. */
	if (j->unit && cgroup_is_populated(j->unit))
		cgroup_kill_all(j->unit);
}

static void kill_tree(struct exec_job *j)
{
	kill_unit(j);
	if (j->pid <= 0) {
		if (j->req->kill)
			j->req->kill(j->req->kill_arg);
		return;
	}
	/* The main process itself first: killed early (cancel already readable, a timeout of
	 * a few ms), it may not have made its process group yet (setsid) nor joined the cgroup
	 * (v1: attached by the child). Not reaped yet, so the pid is still its own. */
	kill(j->pid, SIGKILL);
	if (j->cg) {
		/* The common case: the command left nothing behind. One read instead of a
		 * kill and a wait. */
		if (cgroup_is_populated(j->cg))
			cgroup_kill_all(j->cg);
		return;
	}
	kill(-j->pid, SIGKILL);
	for (int i = 0; i < 50 && sweep_orphans() > 0; i++)
		;
}

static void capture_chunk(struct exec_job *j, agentd_stream s, const uint8_t *buf, size_t n)
{
	agentd_exec_output *out = j->out;
	bool is_out = s == AGENTD_STREAM_STDOUT;
	struct capture *c = &j->cap[is_out ? 0 : 1];
	size_t live;
	capture_add(c, is_out ? &out->out : &out->err, is_out ? &out->out_len : &out->err_len,
		    buf, n, &live);
	if (c->seen > c->max)
		out->output_truncated = true;
	if (live && j->req->on_output)
		j->req->on_output(j->req->userdata, s, buf, live);
}

/* The kept head and tail of each stream become the output. */
static void capture_done(struct exec_job *j)
{
	agentd_exec_output *out = j->out;
	capture_finish(&j->cap[0], &out->out, &out->out_len, AGENTD_STREAM_STDOUT,
		       j->req->on_output, j->req->userdata);
	capture_finish(&j->cap[1], &out->err, &out->err_len, AGENTD_STREAM_STDERR,
		       j->req->on_output, j->req->userdata);
}

void exec_job_stderr_note(struct exec_job *j, const char *msg, size_t n)
{
	capture_chunk(j, AGENTD_STREAM_STDERR, (const uint8_t *)msg, n);
}

/* Reports arrive whole (one write of < PIPE_BUF) but read defensively. Returns false at
 * EOF or error. */
static bool read_reports(int fd, struct exec_reports *rs)
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

/* The loop's state beyond the job. */
struct loop {
	struct exec_job *j;
	int ep, tfd;
	size_t in_off;
	int open_streams;
	bool exited, timed_out;
	uint64_t drain_deadline;
};

static void watch(int ep, int fd, uint32_t events, uint32_t tag)
{
	struct epoll_event ev = {.events = events, .data.u32 = tag};
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int loop_arm(struct loop *l, agentd_error *err)
{
	struct exec_job *j = l->j;
	const exec_request *req = j->req;
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep < 0)
		return agentd_error_errno(err, errno, "epoll_create1");
	int fds[][2] = {{j->stdout_p[0], TAG_OUT}, {j->stderr_p[0], TAG_ERR},
			{j->pidfd, TAG_PID}, {j->rep[0], TAG_REPORT}};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		if (fds[i][0] < 0)
			continue;
		set_nonblock(fds[i][0]);
		watch(l->ep, fds[i][0], EPOLLIN, (uint32_t)fds[i][1]);
	}
	if (req->cancel_fd > 0)
		watch(l->ep, req->cancel_fd, EPOLLIN, TAG_CANCEL);
	if (j->in[1] >= 0) {
		set_nonblock(j->in[1]);
		if (req->stdin_len == 0)
			close_fd(&j->in[1]);
		else
			watch(l->ep, j->in[1], EPOLLOUT, TAG_IN);
	}
	if (req->timeout_ms) {
		l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		struct itimerspec its = {.it_value = {.tv_sec = (time_t)(req->timeout_ms / 1000),
						      .tv_nsec = (long)(req->timeout_ms % 1000) *
								 1000000}};
		if (l->tfd < 0 || timerfd_settime(l->tfd, 0, &its, NULL) < 0)
			return agentd_error_errno(err, errno, "arm timeout");
		watch(l->ep, l->tfd, EPOLLIN, TAG_TIMER);
	}
	return 0;
}

static void on_stream(struct loop *l, uint32_t tag)
{
	struct exec_job *j = l->j;
	int *fd = tag == TAG_OUT ? &j->stdout_p[0] : &j->stderr_p[0];
	agentd_stream s = tag == TAG_OUT ? AGENTD_STREAM_STDOUT : AGENTD_STREAM_STDERR;
	uint8_t buf[65536];
	ssize_t r = read(*fd, buf, sizeof(buf));
	if (r > 0) {
		capture_chunk(j, s, buf, (size_t)r);
	} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
		epoll_ctl(l->ep, EPOLL_CTL_DEL, *fd, NULL);
		close_fd(fd);
		l->open_streams--;
	}
}

static void on_stdin(struct loop *l)
{
	struct exec_job *j = l->j;
	const exec_request *req = j->req;
	ssize_t w = write_nosigpipe(j->in[1], req->stdin_data + l->in_off,
				    req->stdin_len - l->in_off);
	if (w > 0)
		l->in_off += (size_t)w;
	if ((w < 0 && errno != EAGAIN && errno != EINTR) || l->in_off == req->stdin_len) {
		epoll_ctl(l->ep, EPOLL_CTL_DEL, j->in[1], NULL);
		close_fd(&j->in[1]);
	}
}

/* One event; true when it says the command ended. */
static bool on_event(struct loop *l, uint32_t tag)
{
	struct exec_job *j = l->j;
	switch (tag) {
	case TAG_OUT:
	case TAG_ERR:
		on_stream(l, tag);
		return false;
	case TAG_IN:
		on_stdin(l);
		return false;
	case TAG_REPORT:
		if (read_reports(j->rep[0], &j->rs))
			return false;
		epoll_ctl(l->ep, EPOLL_CTL_DEL, j->rep[0], NULL);
		close_fd(&j->rep[0]);
		/* A command that is not our child ends when its reporter lets go. */
		return j->pid <= 0;
	case TAG_CANCEL:
		epoll_ctl(l->ep, EPOLL_CTL_DEL, j->req->cancel_fd, NULL);
		kill_tree(j);
		return false;
	case TAG_TIMER:
		l->timed_out = true;
		epoll_ctl(l->ep, EPOLL_CTL_DEL, l->tfd, NULL);
		kill_tree(j);
		return false;
	case TAG_PID:
		epoll_ctl(l->ep, EPOLL_CTL_DEL, j->pidfd, NULL);
		return true;
	}
	return false;
}

static int loop_run(struct loop *l, agentd_error *err)
{
	while (l->open_streams > 0 || !l->exited) {
		int wait_ms = watch_wait_ms(l->j);
		if (l->exited) {
			uint64_t now = now_ms_monotonic();
			if (now >= l->drain_deadline)
				break;
			wait_ms = (int)(l->drain_deadline - now);
		}
		struct epoll_event evs[8];
		int n = epoll_wait(l->ep, evs, 8, wait_ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return agentd_error_errno(err, errno, "epoll_wait");
		}
		/* The sandbox's CPU budget is spent by all its processes together. */
		if (!l->exited && watch_due(l->j))
			kill_tree(l->j);
		for (int i = 0; i < n; i++) {
			if (!on_event(l, evs[i].data.u32) || l->exited)
				continue;
			l->exited = true;
			trace_mark("command ended");
			/* The command is over: so is everything it started (an init that
			 * reaps its commands killed its process group). */
			if (l->j->pid > 0)
				kill_tree(l->j);
			else
				kill_unit(l->j);
			l->drain_deadline = now_ms_monotonic() + DRAIN_GRACE_MS;
		}
	}
	return 0;
}

int exec_job_wait(struct exec_job *j, agentd_error *err)
{
	struct loop l = {.j = j, .ep = -1, .tfd = -1, .open_streams = 2};
	if (loop_arm(&l, err) < 0 || loop_run(&l, err) < 0) {
		j->loop_failed = true;
		kill_tree(j);
	}
	if (l.ep >= 0)
		close(l.ep);
	if (l.tfd >= 0)
		close(l.tfd);

	siginfo_t si;
	struct rusage ru;
	memset(&si, 0, sizeof(si));
	memset(&ru, 0, sizeof(ru));
	if (j->pidfd >= 0 && syscall(SYS_waitid, P_PIDFD, j->pidfd, &si, WEXITED, &ru) < 0) {
		kill(j->pid, SIGKILL);
		syscall(SYS_waitid, P_PIDFD, j->pidfd, &si, WEXITED, &ru);
	}
	if (j->pid > 0) {
		sweep_forget(j->pid);
		if (!j->cg)
			sweep_orphans();
	}
	if (j->rep[0] >= 0)
		read_reports(j->rep[0], &j->rs); /* written just before the exit notification */
	int r = exec_verdict(j, &si, &ru, l.timed_out, err);
	capture_done(j);
	exec_job_close(j);
	return r;
}
