/* exec.c: GP_EXEC — a process in its own cgroup, confined to the execs' root, with the
 * host's argv, environment (exactly), identity, rlimits and seccomp; stdio over pipes or a
 * pty, streamed with credit (a pipe is not read while the host has granted nothing), an
 * output cap and a wall deadline that kill the tree, and GP_EXIT with usage and the limit
 * hit. When the process exits, what is left in its cgroup is killed with it. */
#include "guest/exec.h"

#include "common/kernel.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define STDIN_CAP GP_INITIAL_CREDIT

/* The request's integer fields: where each tag lands. */
static const struct u64_field u64_fields[] = {
    {GP_T_UID, offsetof(struct exec_req, uid)},
    {GP_T_GID, offsetof(struct exec_req, gid)},
    {GP_T_STDIN, offsetof(struct exec_req, stdin_frames)},
    {GP_T_TIMEOUT_MS, offsetof(struct exec_req, timeout_ms)},
    {GP_T_MEM_BYTES, offsetof(struct exec_req, mem)},
    {GP_T_PIDS, offsetof(struct exec_req, pids)},
    {GP_T_CPU_MS, offsetof(struct exec_req, cpu_ms)},
    {GP_T_NOFILE, offsetof(struct exec_req, nofile)},
    {GP_T_FSIZE, offsetof(struct exec_req, fsize)},
    {GP_T_OUTPUT_MAX, offsetof(struct exec_req, out_max)},
    {GP_T_SECCOMP, offsetof(struct exec_req, seccomp)},
    {GP_T_NET_NONE, offsetof(struct exec_req, net_none)},
    {GP_T_TTY_ROWS, offsetof(struct exec_req, rows)},
    {GP_T_TTY_COLS, offsetof(struct exec_req, cols)},
};

struct exec {
	uint32_t chan;
	pid_t pid;
	struct cgroup cg;
	struct watch out, err, in; /* out is the pty master with a tty; in its dup */
	struct exec *self_out, *self_err, *self_in;
	bool tty, exited, killed, in_eof, trunc;
	int status, limit;
	uint8_t *inbuf;
	size_t in_len;
	uint64_t credit, out_total, out_max, timeout_ms, cpu_ms, start_ms;
};

static struct exec *execs[GP_MAX_CHANNELS];

static struct exec *exec_of(struct watch *w)
{
	for (unsigned i = 0; i < GP_MAX_CHANNELS; i++) {
		struct exec *e = execs[i];
		if (e && (w == &e->out || w == &e->err || w == &e->in))
			return e;
	}
	return NULL;
}

bool exec_any(void)
{
	for (unsigned i = 0; i < GP_MAX_CHANNELS; i++)
		if (execs[i])
			return true;
	return false;
}

/* ---- the request ---- */

static void req_free(struct exec_req *q)
{
	free(q->argv);
	free(q->envp);
	free(q->strs);
}

static int req_parse(uint32_t chan, const uint8_t *p, size_t len, struct exec_req *q)
{
	struct gp_reader r;
	struct gp_field f;
	size_t nargs = 0, nenv = 0, used = 0;
	int rc;
	memset(q, 0, sizeof(*q));
	strcpy(q->cwd, "/");
	q->nofile = q->fsize = NOT_GIVEN;
	/* count first: the strings fit in len bytes plus a NUL each */
	gp_r_init(&r, p, len);
	while ((rc = gp_r_next(&r, &f)) == 1) {
		nargs += f.tag == GP_T_ARG;
		nenv += f.tag == GP_T_ENV;
	}
	if (rc < 0) {
		send_error(chan, EPROTO, "EXEC: malformed fields");
		return -1;
	}
	if (nargs == 0 || nargs > GP_MAX_ARGS || nenv > GP_MAX_ENV) {
		send_error(chan, E2BIG, "EXEC: %zu arguments, %zu environment entries", nargs,
			   nenv);
		return -1;
	}
	q->argv = calloc(nargs + 1, sizeof(char *));
	q->envp = calloc(nenv + 1, sizeof(char *));
	q->strs = malloc(len + nargs + nenv + 1);
	if (!q->argv || !q->envp || !q->strs) {
		send_error(chan, ENOMEM, "EXEC: out of memory");
		return -1;
	}
	nargs = nenv = 0;
	gp_r_init(&r, p, len);
	while (gp_r_next(&r, &f) == 1) {
		switch (f.tag) {
		case GP_T_ARG:
		case GP_T_ENV:
			if (field_str(chan, &f, q->strs + used, GP_MAX_STRING + 1,
				      f.tag == GP_T_ARG ? "EXEC arg" : "EXEC env") < 0)
				return -1;
			if (f.tag == GP_T_ENV && !strchr(q->strs + used, '=')) {
				send_error(chan, EINVAL, "EXEC: env entry without '='");
				return -1;
			}
			if (f.tag == GP_T_ARG)
				q->argv[nargs++] = q->strs + used;
			else
				q->envp[nenv++] = q->strs + used;
			used += f.len + 1;
			break;
		case GP_T_CWD:
			if (field_str(chan, &f, q->cwd, sizeof(q->cwd), "EXEC cwd") < 0)
				return -1;
			break;
		default:
			if (field_u64_table(chan, &f, u64_fields,
					    sizeof(u64_fields) / sizeof(u64_fields[0]), q,
					    "EXEC limit") < 0)
				return -1;
		}
	}
	if (q->cwd[0] != '/' || q->uid > 0xfffffffeu || q->gid > 0xfffffffeu || q->rows > 0xffff ||
	    q->cols > 0xffff) {
		send_error(chan, EINVAL,
			   "EXEC: cwd not absolute, or uid/gid/tty size out of range");
		return -1;
	}
	if (q->seccomp > 1) {
		send_error(chan, EINVAL, "EXEC: unknown seccomp profile %llu",
			   (unsigned long long)q->seccomp);
		return -1;
	}
	return 0;
}

/* ---- the parent ---- */

static void on_out(struct watch *w, uint32_t events);
static void on_in(struct watch *w, uint32_t events);

static void out_pause(struct exec *e, bool paused)
{
	uint32_t ev = paused ? 0 : EPOLLIN;
	watch_mod(&e->out, ev);
	watch_mod(&e->err, ev);
}

static void kill_tree(struct exec *e, int limit)
{
	if (!e->limit && limit)
		e->limit = limit;
	e->killed = true;
	cg_kill(&e->cg);
}

static void finish(struct exec *e)
{
	struct gp_writer w;
	uint64_t cpu_ms = cg_read_key(&e->cg, "cpu.stat", "usage_usec") / 1000;
	uint64_t peak = cg_read_u64(&e->cg, "memory.peak");
	int limit = e->limit;
	int sig = WIFSIGNALED(e->status) ? WTERMSIG(e->status) : 0;
	if (!limit && cg_read_key(&e->cg, "memory.events", "oom_kill"))
		limit = GP_LIMIT_MEMORY;
	else if (!limit && cg_read_key(&e->cg, "pids.events", "max"))
		limit = GP_LIMIT_PIDS;
	else if (!limit && (sig == SIGXCPU || (sig == SIGKILL && e->cpu_ms && cpu_ms >= e->cpu_ms)))
		limit = GP_LIMIT_CPU_TIME;
	else if (!limit && sig == SIGXFSZ)
		limit = GP_LIMIT_WRITE;
	fields_begin(&w);
	if (sig)
		gp_w_u64(&w, GP_T_SIGNAL, (uint64_t)sig);
	else
		gp_w_u64(&w, GP_T_EXIT_CODE, (uint64_t)WEXITSTATUS(e->status));
	gp_w_u64(&w, GP_T_LIMIT, (uint64_t)limit);
	gp_w_u64(&w, GP_T_CPU_MS, cpu_ms);
	gp_w_u64(&w, GP_T_PEAK_MEM, peak);
	gp_w_u64(&w, GP_T_WALL_MS, now_ms() - e->start_ms);
	gp_w_u64(&w, GP_T_OUT_TRUNC, e->trunc);
	send_fields(GP_EXIT, e->chan, &w);

	watch_del(&e->in);
	cg_destroy(&e->cg);
	struct chan *c = chan_find(e->chan);
	if (c)
		chan_free(c);
	for (unsigned i = 0; i < GP_MAX_CHANNELS; i++)
		if (execs[i] == e)
			execs[i] = NULL;
	free(e->inbuf);
	free(e);
}

static void maybe_finish(struct exec *e)
{
	if (e->exited && e->out.fd < 0 && e->err.fd < 0)
		finish(e);
}

static void on_out(struct watch *w, uint32_t events)
{
	static uint8_t buf[GP_MAX_PAYLOAD];
	struct exec *e = exec_of(w);
	if (!e)
		return;
	size_t want =
	    e->trunc ? sizeof(buf) : (size_t)(e->credit < sizeof(buf) ? e->credit : sizeof(buf));
	if (want == 0) {
		out_pause(e, true);
		return;
	}
	ssize_t n = read(w->fd, buf, want);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) { /* EOF, or EIO from a pty whose last slave closed */
		watch_del(w);
		if (w == &e->out && e->tty)
			watch_del(&e->in);
		maybe_finish(e);
		return;
	}
	if (e->trunc)
		return; /* past the cap: drained, not sent */
	size_t send = (size_t)n;
	if (e->out_max && e->out_total + send > e->out_max) {
		send = (size_t)(e->out_max - e->out_total);
		e->trunc = true;
		kill_tree(e, GP_LIMIT_OUTPUT);
	}
	if (send) {
		send_frame(w == &e->err ? GP_STDERR : GP_STDOUT, e->chan, buf, send);
		e->out_total += send;
		e->credit -= send;
	}
	if (e->credit == 0 && !e->trunc)
		out_pause(e, true);
}

/* Writes buffered stdin to the process; returns credit to the host for what went. */
static void stdin_flush(struct exec *e)
{
	size_t done = 0;
	while (e->in.fd >= 0 && done < e->in_len) {
		ssize_t n = write(e->in.fd, e->inbuf + done, e->in_len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) { /* the process closed its stdin: what is left is dropped */
			done = e->in_len;
			if (!e->tty)
				watch_del(&e->in);
			break;
		}
		done += (size_t)n;
	}
	if (done) {
		memmove(e->inbuf, e->inbuf + done, e->in_len - done);
		e->in_len -= done;
		send_credit(e->chan, done);
	}
	if (e->in.fd >= 0) {
		if (e->in_len == 0 && e->in_eof) {
			if (e->tty) /* ^D at a line start: EOF for a canonical-mode reader */
				(void)!write(e->in.fd, "\x04", 1);
			else
				watch_del(&e->in);
		}
		if (e->in.fd >= 0)
			watch_mod(&e->in, e->in_len ? EPOLLOUT : 0);
	}
}

static void on_in(struct watch *w, uint32_t events)
{
	struct exec *e = exec_of(w);
	if (e)
		stdin_flush(e);
}

static int open_pty(int *master, int *slave, const struct exec_req *q)
{
	char name[64];
	*master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (*master < 0)
		return -errno;
	struct winsize ws = {.ws_row = (unsigned short)q->rows, .ws_col = (unsigned short)q->cols};
	if (unlockpt(*master) < 0 || ptsname_r(*master, name, sizeof(name)) != 0 ||
	    ioctl(*master, TIOCSWINSZ, &ws) < 0)
		goto fail;
	*slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*slave >= 0)
		return 0;
fail:;
	int err = errno;
	close(*master);
	return -err;
}

/* stdio for the child (fds[]) and the parent's ends; -errno. */
static int make_stdio(struct exec *e, const struct exec_req *q, int fds[3], int *slave)
{
	int p[2];
	*slave = -1;
	if (q->rows || q->cols) {
		int m, rc = open_pty(&m, slave, q);
		if (rc < 0)
			return rc;
		e->tty = true;
		e->out.fd = m;
		e->in.fd = q->stdin_frames ? fcntl(m, F_DUPFD_CLOEXEC, 3) : -1;
		fds[0] = fds[1] = fds[2] = *slave;
		return 0;
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	e->out.fd = p[0], fds[1] = p[1];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	e->err.fd = p[0], fds[2] = p[1];
	if (q->stdin_frames) {
		/* our end never blocks: a process that does not read its stdin must not hold
		 * PID 1 (the rest waits in inbuf, under the credit granted) */
		if (pipe2(p, O_CLOEXEC) < 0)
			return -errno;
		fds[0] = p[0], e->in.fd = p[1];
		if (fcntl(e->in.fd, F_SETFL, O_NONBLOCK) < 0)
			return -errno;
	} else {
		fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fds[0] < 0)
			return -errno;
	}
	return 0;
}

static void close_fds(int fds[3], int slave)
{
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0 && fds[i] != slave)
			close(fds[i]);
	if (slave >= 0)
		close(slave);
}

static int spawn(struct exec *e, const struct exec_req *q, struct child_err *ce)
{
	int fds[3] = {-1, -1, -1}, slave = -1, errp[2];
	int rc = make_stdio(e, q, fds, &slave);
	if (rc < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		close_fds(fds, slave);
		snprintf(ce->step, sizeof(ce->step), "stdio");
		return rc < 0 ? rc : -errno;
	}
	struct {
		uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
		    set_tid, set_tid_size, cgroup;
	} args = {.exit_signal = SIGCHLD};
	if (e->cg.dirfd >= 0) {
		args.flags = CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)e->cg.dirfd;
	}
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0) {
		close(errp[0]);
		exec_child(q, fds, slave, errp[1]);
	}
	int err = errno;
	close(errp[1]);
	close_fds(fds, slave);
	if (pid < 0) {
		close(errp[0]);
		snprintf(ce->step, sizeof(ce->step), "clone3");
		return -err;
	}
	e->pid = (pid_t)pid;
	/* the child reports a failed step before execve, or the pipe closes on exec */
	ssize_t n;
	do
		n = read(errp[0], ce, sizeof(*ce));
	while (n < 0 && errno == EINTR);
	close(errp[0]);
	if (n == (ssize_t)sizeof(*ce)) {
		ce->step[sizeof(ce->step) - 1] = '\0';
		return -(ce->err ? ce->err : EIO);
	}
	return 0;
}

static void exec_abort(struct exec *e)
{
	watch_del(&e->out);
	watch_del(&e->err);
	watch_del(&e->in);
	cg_destroy(&e->cg);
	free(e->inbuf);
	free(e);
}

void exec_start(uint32_t chan, const uint8_t *p, size_t len)
{
	struct exec_req q;
	struct exec *e = NULL;
	struct child_err ce = {0};
	unsigned slot = GP_MAX_CHANNELS;
	int rc;
	if (req_parse(chan, p, len, &q) < 0)
		goto out;
	for (unsigned i = 0; i < GP_MAX_CHANNELS && slot == GP_MAX_CHANNELS; i++)
		if (!execs[i])
			slot = i;
	e = calloc(1, sizeof(*e));
	if (!e || slot == GP_MAX_CHANNELS || !chan_new(chan, CHAN_EXEC, e)) {
		send_error(chan, EAGAIN, "EXEC: too many channels");
		free(e);
		goto out;
	}
	*e = (struct exec){.chan = chan,
			   .out = {-1, on_out},
			   .err = {-1, on_out},
			   .in = {-1, on_in},
			   .cg = {.dirfd = -1},
			   .credit = GP_INITIAL_CREDIT,
			   .out_max = q.out_max,
			   .timeout_ms = q.timeout_ms,
			   .cpu_ms = q.cpu_ms,
			   .start_ms = now_ms()};
	if (q.stdin_frames && !(e->inbuf = malloc(STDIN_CAP))) {
		rc = -ENOMEM;
		snprintf(ce.step, sizeof(ce.step), "stdin buffer");
		goto fail;
	}
	if ((rc = cg_create(&e->cg, chan, q.mem, q.pids)) < 0 && (q.mem || q.pids)) {
		snprintf(ce.step, sizeof(ce.step), "cgroup");
		goto fail; /* limits asked for and not enforceable: fail closed */
	}
	if ((rc = spawn(e, &q, &ce)) < 0)
		goto fail;
	execs[slot] = e;
	if (watch_add(&e->out, EPOLLIN) < 0 ||
	    (e->err.fd >= 0 && watch_add(&e->err, EPOLLIN) < 0) ||
	    (e->in.fd >= 0 && watch_add(&e->in, 0) < 0))
		glog("exec %u: epoll: %s", chan, strerror(errno));
	uint8_t buf[16];
	struct gp_writer w;
	gp_w_init(&w, buf, sizeof(buf));
	gp_w_u64(&w, GP_T_PID, (uint64_t)e->pid);
	send_frame(GP_STARTED, chan, buf, w.len);
	goto out;
fail:
	send_error(chan, -rc, "exec %s: %s: %s", q.argv ? q.argv[0] : "?", ce.step, strerror(-rc));
	chan_free(chan_find(chan));
	if (e->pid > 0)
		waitpid(e->pid, NULL, 0);
	exec_abort(e);
out:
	req_free(&q);
}

static void on_stdin(struct exec *e, const uint8_t *p, size_t n)
{
	if (e->in.fd < 0 || e->in_eof) {
		if (n)
			send_credit(e->chan, n); /* nobody reads it: the host's credit comes back */
		return;
	}
	if (n == 0) {
		e->in_eof = true;
	} else if (n > STDIN_CAP - e->in_len) {
		glog("exec %u: stdin past the credit granted: dropped", e->chan);
		return;
	} else {
		memcpy(e->inbuf + e->in_len, p, n);
		e->in_len += n;
	}
	stdin_flush(e);
}

void exec_frame(struct chan *c, const struct gp_hdr *h, const uint8_t *p)
{
	struct exec *e = c->obj;
	struct gp_reader r;
	struct gp_field f;
	uint64_t v, signo = 0, group = 0, rows = 0, cols = 0;
	gp_r_init(&r, p, h->len);
	switch (h->type) {
	case GP_STDIN:
		on_stdin(e, p, h->len);
		return;
	case GP_CREDIT:
		while (gp_r_next(&r, &f) == 1)
			if (f.tag == GP_T_BYTES && gp_f_u64(&f, &v) == 0)
				e->credit =
				    e->credit + v > (1ull << 40) ? 1ull << 40 : e->credit + v;
		if (e->credit)
			out_pause(e, false);
		return;
	case GP_SIGNAL:
		while (gp_r_next(&r, &f) == 1) {
			if (f.tag == GP_T_SIGNO)
				gp_f_u64(&f, &signo);
			else if (f.tag == GP_T_GROUP)
				gp_f_u64(&f, &group);
		}
		if (signo == 0 || signo >= 65) {
			send_error(e->chan, EINVAL, "SIGNAL: no valid signal number");
			return;
		}
		if (group && signo == SIGKILL)
			cg_kill(&e->cg);
		else if (group)
			cg_signal(&e->cg, (int)signo);
		else if (!e->exited)
			kill(e->pid, (int)signo);
		return;
	case GP_RESIZE:
		while (gp_r_next(&r, &f) == 1) {
			if (f.tag == GP_T_TTY_ROWS)
				gp_f_u64(&f, &rows);
			else if (f.tag == GP_T_TTY_COLS)
				gp_f_u64(&f, &cols);
		}
		if (e->tty && e->out.fd >= 0 && rows <= 0xffff && cols <= 0xffff) {
			struct winsize ws = {.ws_row = (unsigned short)rows,
					     .ws_col = (unsigned short)cols};
			ioctl(e->out.fd, TIOCSWINSZ, &ws);
		}
		return;
	default:
		send_error(e->chan, EPROTO, "%s on an exec channel", gp_type_name(h->type));
	}
}

bool exec_reaped(pid_t pid, int status)
{
	for (unsigned i = 0; i < GP_MAX_CHANNELS; i++) {
		struct exec *e = execs[i];
		if (!e || e->pid != pid || e->exited)
			continue;
		e->exited = true;
		e->status = status;
		cg_kill(&e->cg); /* the tree goes with its process: the pipes then reach EOF */
		maybe_finish(e);
		return true;
	}
	return false;
}

void exec_tick(void)
{
	uint64_t now = now_ms();
	for (unsigned i = 0; i < GP_MAX_CHANNELS; i++) {
		struct exec *e = execs[i];
		if (!e || e->killed)
			continue;
		if (e->timeout_ms && now - e->start_ms >= e->timeout_ms)
			kill_tree(e, GP_LIMIT_WALL_TIME);
		else if (e->cpu_ms &&
			 cg_read_key(&e->cg, "cpu.stat", "usage_usec") / 1000 >= e->cpu_ms)
			kill_tree(e, GP_LIMIT_CPU_TIME); /* the tree's time, not one process's */
	}
}

int exec_freeze_all(bool frozen)
{
	int rc = 0;
	for (unsigned i = 0; i < GP_MAX_CHANNELS; i++)
		if (execs[i]) {
			int r = cg_freeze(&execs[i]->cg, frozen);
			rc = rc ? rc : r;
		}
	return rc;
}

void exec_kill_all(void)
{
	for (unsigned i = 0; i < GP_MAX_CHANNELS; i++)
		if (execs[i])
			cg_kill(&execs[i]->cg);
	kill(-1, SIGKILL);
}
