/* procs.c: the background processes of the live sandboxes — a table per sandbox, their start,
 * lookup and end, and what is done to one process (signal, stdin, resize, its object). Their
 * output is pump.c's. */
#include "daemon/live/procs_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct proc_table {
	pthread_mutex_t mu;
	struct proc *v[PROCS_MAX];	/* oldest first */
	size_t n;
};

/* ---------------------------------------------------------------- references */

static void proc_free(struct proc *p)
{
	for (int i = 0; i < 2; i++)
		free(p->out[i].buf);
	for (char **a = p->argv; a && *a; a++)
		free(*a);
	free(p->argv);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->h_mu);
	pthread_mutex_destroy(&p->in_mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

void proc_get(struct proc *p)
{
	__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
}

void proc_put(struct proc *p)
{
	if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
		proc_free(p);
}

int64_t proc_pid(const struct proc *p)
{
	return p->pid;
}

bool proc_is_tty(const struct proc *p)
{
	return p->tty;
}

/* Unregister p and free its handle (which kills its tree if it still runs). Followers are
 * told the end: the sandbox ended it (reason) if it had not ended by itself. */
static void proc_release(struct proc *p, const char *reason)
{
	pump_detach(p);
	pthread_mutex_lock(&p->in_mu);
	pthread_mutex_lock(&p->h_mu);
	agentd_process *h = p->h;
	agentd_error err = {0};
	if (h && agentd_process_usage(h, &p->usage, &err) == 0)
		p->has_usage = true; /* kept for the exit line and GETs after */
	p->h = NULL;
	pthread_mutex_unlock(&p->h_mu);
	pthread_mutex_unlock(&p->in_mu);
	if (h)
		agentd_process_free(h);
	pthread_mutex_lock(&p->mu);
	if (!p->done) {
		p->done = true;
		p->st.running = false;
		p->st.term_signal = SIGKILL;
		p->st.exit_code = 128 + SIGKILL;
		p->st.ended_at_ms = (int64_t)time(NULL) * 1000;
		p->end_reason = reason;
	}
	for (int i = 0; i < 2; i++)
		p->out[i].eof = true;
	proc_notify(p);
	pthread_mutex_unlock(&p->mu);
}

/* ---------------------------------------------------------------- the table */

static struct proc_table *table_of(struct daemon *d, struct live *l)
{
	pthread_mutex_lock(&d->lock);
	if (!l->procs) {
		l->procs = xcalloc(1, sizeof(*l->procs));
		pthread_mutex_init(&l->procs->mu, NULL);
	}
	struct proc_table *t = l->procs;
	pthread_mutex_unlock(&d->lock);
	return t;
}

/* issue 12: durable-daemon: what a later daemon needs to take p back (adopt.c) */
static void proc_keep(struct daemon *d, struct live *l, struct proc *p)
{
	if (!l->durable)
		return;
	json_t *argv = json_array();
	for (char **a = p->argv; *a; a++)
		json_array_append_new(argv, json_string(*a) ? json_string(*a) : json_string("?"));
	char key[24];
	snprintf(key, sizeof(key), "%lld", (long long)p->pid);
	live_item_put(d, l, "process", key,
		      json_pack("{s:I, s:o, s:b, s:b, s:I}", "pid", (json_int_t)p->pid, "argv", argv,
				"tty", p->tty, "stdin", p->has_stdin, "started_at",
				(json_int_t)p->st.started_at_ms));
}

static void proc_forget(struct daemon *d, struct live *l, struct proc *p)
{
	char key[24];
	snprintf(key, sizeof(key), "%lld", (long long)p->pid);
	live_item_del(d, l, "process", key);
}

/* t->mu held: room for one more, forgetting the oldest ended process if need be. */
static int table_make_room(struct daemon *d, struct live *l, struct proc_table *t,
			   agentd_error *err)
{
	if (t->n < PROCS_MAX)
		return 0;
	for (size_t i = 0; i < t->n; i++) {
		struct proc *p = t->v[i];
		pthread_mutex_lock(&p->mu);
		bool done = p->done;
		pthread_mutex_unlock(&p->mu);
		if (!done)
			continue;
		memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(t->v[0]));
		t->n--;
		proc_forget(d, l, p);
		proc_release(p, NULL);
		proc_put(p);
		return 0;
	}
	return agentd_error_set(err, EAGAIN, "the sandbox runs %d processes, its maximum",
				PROCS_MAX);
}

static char **argv_copy(char *const *v)
{
	size_t n = 0;
	while (v[n])
		n++;
	char **c = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		c[i] = xstrdup(v[i]);
	return c;
}

static struct proc *proc_new(agentd_process *h, const agentd_command *cmd,
			     const agentd_process_opts *o, uint64_t ring_max)
{
	struct proc *p = xcalloc(1, sizeof(*p));
	p->refs = 1;
	p->h = h;
	p->pid = agentd_process_pid(h);
	p->argv = argv_copy(cmd->argv);
	p->tty = o->tty;
	p->has_stdin = agentd_process_stdin_fd(h) >= 0;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->h_mu, NULL);
	pthread_mutex_init(&p->in_mu, NULL);
	cond_init_monotonic(&p->cv);
	for (int i = 0; i < 2; i++)
		p->out[i].max = (size_t)ring_max;
	agentd_error err = {0};
	if (agentd_process_get_status(h, &p->st, &err) < 0 || !p->st.started_at_ms) {
		p->st.running = true;
		p->st.started_at_ms = (int64_t)time(NULL) * 1000;
	}
	p->st.running = true; /* its end is the pump's to learn, after its output */
	return p;
}

static int spawn_status(int e)
{
	switch (e) {
	case ENOTSUP: return 501;
	case EBUSY: return 409;
	case EAGAIN: return 429;
	case ENOENT: case EACCES: case EINVAL: case E2BIG: case ENAMETOOLONG: return 400;
	default: return api_status_from_errno(e);
	}
}

int procs_spawn(struct daemon *d, struct live *l, const struct client *c,
		const agentd_command *cmd, const agentd_process_opts *opts, struct proc **out,
		agentd_error *err)
{
	pthread_mutex_lock(&d->lock);
	enum sb_state s = live_state(l);
	pthread_mutex_unlock(&d->lock);
	if (s != SB_READY && s != SB_EXECUTING) {
		agentd_error_set(err, EBUSY, "sandbox %s is %s", l->id, sb_state_name(s));
		return 409;
	}
	struct proc_table *t = table_of(d, l);
	uint64_t t0 = mono_ms();
	pthread_mutex_lock(&t->mu);
	if (table_make_room(d, l, t, err) < 0) {
		pthread_mutex_unlock(&t->mu);
		return 429;
	}
	agentd_process *h = NULL;
	int status = 0;
	if (agentd_sandbox_spawn(l->sb, cmd, opts, &h, err) < 0) {
		status = spawn_status(err->code);
		pthread_mutex_unlock(&t->mu);
		audit(d, c, "process_start", l->id, cmd->argv, l->digest, l->backend, err->msg,
		      mono_ms() - t0);
		return status;
	}
	uint64_t ring = agentd_sandbox_spec(l->sb)->limits.max_process_output_bytes;
	struct proc *p = proc_new(h, cmd, opts, ring);
	if (pump_attach(p, err) < 0) {
		pthread_mutex_unlock(&t->mu);
		proc_release(p, "killed");
		proc_put(p);
		return 500;
	}
	t->v[t->n++] = p;
	proc_get(p);
	pthread_mutex_unlock(&t->mu);
	proc_keep(d, l, p);
	char result[48];
	snprintf(result, sizeof(result), "pid %lld", (long long)p->pid);
	audit(d, c, "process_start", l->id, cmd->argv, l->digest, l->backend, result,
	      mono_ms() - t0);
	dlog("info", "msg=\"process started\" sandbox=%s pid=%lld tty=%d", l->id,
	     (long long)p->pid, opts->tty);
	*out = p;
	return 0;
}

struct proc *procs_find(struct live *l, int64_t pid)
{
	struct proc_table *t = l->procs;
	if (!t)
		return NULL;
	struct proc *found = NULL;
	pthread_mutex_lock(&t->mu);
	/* the newest first: a pid the sandbox reused names its latest process */
	for (size_t i = t->n; i-- > 0 && !found;)
		if (t->v[i]->pid == pid) {
			found = t->v[i];
			proc_get(found);
		}
	pthread_mutex_unlock(&t->mu);
	return found;
}

size_t procs_list(struct live *l, struct proc ***out)
{
	struct proc_table *t = l->procs;
	*out = NULL;
	if (!t)
		return 0;
	pthread_mutex_lock(&t->mu);
	size_t n = t->n;
	*out = xcalloc(n ? n : 1, sizeof(struct proc *));
	for (size_t i = 0; i < n; i++) {
		(*out)[i] = t->v[i];
		proc_get(t->v[i]);
	}
	pthread_mutex_unlock(&t->mu);
	return n;
}

static bool table_remove(struct proc_table *t, struct proc *p)
{
	bool found = false;
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i] == p) {
			memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(t->v[0]));
			t->n--;
			found = true;
			break;
		}
	pthread_mutex_unlock(&t->mu);
	return found;
}

/* How it ended, for an audit record or a log line (p->mu held). */
static void describe_end(const struct proc *p, char *buf, size_t size)
{
	const char *sig = api_signal_name(p->st.term_signal);
	if (p->st.term_signal)
		snprintf(buf, size, "pid %lld: signal %s%s", (long long)p->pid, sig ? "SIG" : "",
			 sig ? sig : "?");
	else
		snprintf(buf, size, "pid %lld: exit %d", (long long)p->pid, p->st.exit_code);
}

int procs_remove(struct daemon *d, struct live *l, struct proc *p, const struct client *c,
		 agentd_error *err)
{
	uint64_t t0 = mono_ms();
	pthread_mutex_lock(&p->mu);
	if (!p->done)
		p->end_reason = "killed";
	pthread_mutex_unlock(&p->mu);
	pthread_mutex_lock(&p->h_mu);
	int r = p->h ? agentd_process_kill(p->h, err) : 0;
	pthread_mutex_unlock(&p->h_mu);
	if (r < 0)
		return -1;
	/* its end as the pump learns it (exit status, output drained), bounded: a tree the
	 * kernel has not reaped yet (a frozen v1 cgroup) is forgotten all the same */
	struct timespec until = monotonic_after_ms(5000);
	pthread_mutex_lock(&p->mu);
	while (!p->done && pthread_cond_timedwait(&p->cv, &p->mu, &until) == 0)
		;
	pthread_mutex_unlock(&p->mu);
	if (!table_remove(l->procs, p)) {
		return agentd_error_set(err, ESRCH, "process %lld: already removed",
					(long long)p->pid);
	}
	proc_forget(d, l, p);
	proc_release(p, "killed");
	proc_put(p); /* the table's */
	char result[96];
	pthread_mutex_lock(&p->mu);
	describe_end(p, result, sizeof(result));
	pthread_mutex_unlock(&p->mu);
	audit(d, c, "process_kill", l->id, p->argv, l->digest, l->backend, result, mono_ms() - t0);
	return 0;
}

void procs_table_free(struct live *l)
{
	struct proc_table *t = l->procs;
	if (!t)
		return;
	l->procs = NULL;
	for (size_t i = 0; i < t->n; i++) {
		proc_release(t->v[i], "sandbox destroyed");
		proc_put(t->v[i]);
	}
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* issue 12: durable-daemon: a process of an adopted sandbox back in its table, as stored
 * (its argv, terminal, start); what it wrote while no daemon read waits in its pipe. */
int procs_adopt(struct daemon *d, struct live *l, agentd_process *h, json_t *item)
{
	json_t *jargv = json_object_get(item, "argv");
	size_t n = json_array_size(jargv);
	char **argv = xcalloc(n + 2, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		argv[i] = (char *)(json_string_value(json_array_get(jargv, i))
					   ? json_string_value(json_array_get(jargv, i))
					   : "?");
	if (!n)
		argv[0] = "?";
	agentd_command cmd = {.argv = argv};
	agentd_process_opts o = {.tty = json_is_true(json_object_get(item, "tty"))};
	uint64_t ring = agentd_sandbox_spec(l->sb)->limits.max_process_output_bytes;
	struct proc *p = proc_new(h, &cmd, &o, ring);
	free(argv);
	json_t *started = json_object_get(item, "started_at");
	if (json_is_integer(started) && json_integer_value(started) > 0)
		p->st.started_at_ms = json_integer_value(started);
	struct proc_table *t = table_of(d, l);
	agentd_error err = {0};
	pthread_mutex_lock(&t->mu);
	if (t->n >= PROCS_MAX || pump_attach(p, &err) < 0) {
		pthread_mutex_unlock(&t->mu);
		proc_release(p, "killed");
		proc_put(p);
		return -1;
	}
	t->v[t->n++] = p;
	pthread_mutex_unlock(&t->mu);
	return 0;
}

/* ---------------------------------------------------------------- one process */

static json_t *stream_json(const struct ring *r)
{
	return json_pack("{s:I, s:I, s:I}", "kept_bytes", (json_int_t)(r->end - r->start),
			 "kept_from", (json_int_t)r->start, "total_bytes", (json_int_t)r->end);
}

json_t *proc_to_json(struct proc *p)
{
	agentd_usage u;
	memset(&u, 0, sizeof(u));
	agentd_error err = {0};
	pthread_mutex_lock(&p->h_mu);
	bool has_usage = p->h ? agentd_process_usage(p->h, &u, &err) == 0 : p->has_usage;
	if (!p->h)
		u = p->usage;
	pthread_mutex_unlock(&p->h_mu);
	json_t *argv = json_array();
	for (char **a = p->argv; *a; a++) {
		json_t *s = json_string(*a);
		json_array_append_new(argv, s ? s : json_string("<not utf-8>"));
	}
	pthread_mutex_lock(&p->mu);
	const char *state = !p->done ? "running" : p->st.term_signal ? "killed" : "exited";
	json_t *o = json_pack("{s:I, s:o, s:b, s:b, s:s, s:I}", "pid", (json_int_t)p->pid,
			      "argv", argv, "tty", p->tty, "stdin", p->has_stdin && !p->stdin_closed,
			      "state", state, "started_at", (json_int_t)p->st.started_at_ms);
	json_object_set_new(o, "ended_at",
			    p->done ? json_integer(p->st.ended_at_ms) : json_null());
	json_object_set_new(o, "exit_code", p->done ? json_integer(p->st.exit_code) : json_null());
	const char *sig = p->done ? api_signal_name(p->st.term_signal) : NULL;
	json_object_set_new(o, "signal",
			    p->done && p->st.term_signal
				    ? (sig ? json_sprintf("SIG%s", sig)
					   : json_sprintf("%d", p->st.term_signal))
				    : json_null());
	json_object_set_new(o, "limit_hit",
			    p->done && p->st.limit_hit != AGENTD_LIMIT_NONE
				    ? json_string(agentd_limit_kind_name(p->st.limit_hit))
				    : json_null());
	json_object_set_new(o, "ended_by", p->end_reason ? json_string(p->end_reason)
							 : json_null());
	json_t *outj = json_pack("{s:o}", "stdout", stream_json(&p->out[0]));
	if (!p->tty)
		json_object_set_new(outj, "stderr", stream_json(&p->out[1]));
	json_object_set_new(outj, "max_bytes_per_stream", json_integer((json_int_t)p->out[0].max));
	json_object_set_new(o, "output", outj);
	pthread_mutex_unlock(&p->mu);
	json_object_set_new(o, "usage",
			    has_usage ? json_pack("{s:I, s:I, s:I}", "cpu_time_ms",
						  (json_int_t)u.cpu_time_ms, "peak_memory_bytes",
						  (json_int_t)u.peak_memory_bytes, "wall_time_ms",
						  (json_int_t)u.wall_time_ms)
				      : json_null());
	return o;
}

int proc_signal(struct proc *p, int sig, agentd_error *err)
{
	pthread_mutex_lock(&p->h_mu);
	int r = p->h ? agentd_process_signal(p->h, sig, err)
		     : agentd_error_set(err, ESRCH, "process %lld has ended", (long long)p->pid);
	pthread_mutex_unlock(&p->h_mu);
	return r;
}

int proc_resize(struct proc *p, unsigned rows, unsigned cols, agentd_error *err)
{
	if (!p->tty)
		return agentd_error_set(err, EINVAL, "process %lld has no terminal",
					(long long)p->pid);
	pthread_mutex_lock(&p->h_mu);
	int r = p->h ? agentd_process_resize(p->h, rows, cols, err)
		     : agentd_error_set(err, ESRCH, "process %lld has ended", (long long)p->pid);
	pthread_mutex_unlock(&p->h_mu);
	return r;
}

/* A dup of its stdin (h_mu held only for that): a write that waits does not hold up the
 * pump or a kill, and the fd stays ours if the handle is released meanwhile. */
static int stdin_dup(struct proc *p, agentd_error *err)
{
	pthread_mutex_lock(&p->h_mu);
	int fd = p->h && !p->stdin_closed ? agentd_process_stdin_fd(p->h) : -1;
	if (fd >= 0)
		fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	pthread_mutex_unlock(&p->h_mu);
	if (fd < 0)
		agentd_error_set(err, EPIPE, "process %lld: %s", (long long)p->pid,
				 !p->has_stdin	  ? "it has no stdin (start it with \"stdin\": true)"
				 : p->stdin_closed ? "its stdin is closed"
						   : "it has ended");
	return fd;
}

static int write_waiting(int fd, const uint8_t *data, size_t len, unsigned timeout_ms,
			 size_t *written)
{
	uint64_t deadline = mono_ms() + timeout_ms;
	while (*written < len) {
		ssize_t n = write(fd, data + *written, len - *written);
		if (n > 0) {
			*written += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -errno;
		uint64_t now = mono_ms();
		if (now >= deadline)
			return -EAGAIN;
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		poll(&pfd, 1, (int)(deadline - now > 1000 ? 1000 : deadline - now));
	}
	return 0;
}

int proc_write_stdin(struct proc *p, const uint8_t *data, size_t len, bool close_after,
		     unsigned timeout_ms, size_t *written, agentd_error *err)
{
	*written = 0;
	pthread_mutex_lock(&p->in_mu);
	int r = 0;
	if (len) {
		int fd = stdin_dup(p, err);
		if (fd < 0) {
			pthread_mutex_unlock(&p->in_mu);
			return -1;
		}
		r = write_waiting(fd, data, len, timeout_ms, written);
		close(fd);
		if (r == -EAGAIN)
			agentd_error_set(err, EAGAIN,
					 "process %lld does not read its stdin: %zu of %zu bytes "
					 "written",
					 (long long)p->pid, *written, len);
		else if (r < 0)
			agentd_error_set(err, EPIPE, "process %lld: stdin: %s", (long long)p->pid,
					 strerror(-r));
	}
	if (r == 0 && close_after) {
		pthread_mutex_lock(&p->h_mu);
		if (p->h && !p->stdin_closed && p->has_stdin)
			agentd_process_close_stdin(p->h);
		else if (!p->has_stdin)
			r = agentd_error_set(err, EPIPE, "process %lld has no stdin",
					     (long long)p->pid);
		pthread_mutex_lock(&p->mu);
		p->stdin_closed = true;
		pthread_mutex_unlock(&p->mu);
		pthread_mutex_unlock(&p->h_mu);
	}
	pthread_mutex_unlock(&p->in_mu);
	return r < 0 ? -1 : 0;
}
