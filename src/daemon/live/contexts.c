/* contexts.c: the code contexts of live sandboxes (docs/contexts.md) — an interpreter
 * started in the sandbox with agentd's runner for its language and kept across requests;
 * cells sent to it and its frames read back under the sandbox's output budget, with the
 * cell's timeout as SIGINT first and a kill of the context after a grace. */
#include "daemon/live/live.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTX_RESULTS_MAX (16u << 20)	/* a cell's results (figures...) in all */

struct context {
	char id[API_ID_LEN + 1];
	enum api_language lang;
	agentd_process *p;		/* NULL once gone */
	agentd_process *feed;		/* writes the cells into its FIFO (below); NULL: gone */
	char version[64];
	int64_t pid;
	int64_t created_ms;
	uint32_t cells;
	bool busy, session, doomed;
	char gone[320];			/* why it ended; "" while it lives */
	struct exec_slot *run;		/* the running cell's */
	struct context *next;
};

/* d->lock held */
static struct context *find(struct live *l, const char *cid)
{
	struct context *c = l->contexts;
	while (c && strcmp(c->id, cid))
		c = c->next;
	return c;
}

static json_t *ctx_json(const struct live *l, const struct context *c)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:b, s:s?}", "id", c->id,
			 "sandbox_id", l->id, "language", api_language_name(c->lang), "version",
			 c->version, "pid", (json_int_t)c->pid, "created_ms",
			 (json_int_t)c->created_ms, "cells", (json_int_t)c->cells, "state",
			 c->gone[0] ? "gone" : c->busy ? "running" : "ready", "session",
			 c->session, "reason", c->gone[0] ? c->gone : NULL);
}

/* The runner's own stderr (an interpreter's crash, a runner's complaint): its last bytes
 * are kept for the message that says why a context ended. */
struct diag {
	char tail[512];
	size_t n;
};

/* false at EOF: the caller stops polling fd (a runner closes it: python's dup2 over fd 2). */
static bool diag_read(int fd, struct diag *dg)
{
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		size_t k = (size_t)n;
		if (k >= sizeof(dg->tail) - 1) {
			memcpy(dg->tail, buf + k - (sizeof(dg->tail) - 1), sizeof(dg->tail) - 1);
			dg->n = sizeof(dg->tail) - 1;
		} else {
			size_t keep = dg->n + k > sizeof(dg->tail) - 1 ? sizeof(dg->tail) - 1 - k : dg->n;
			memmove(dg->tail, dg->tail + dg->n - keep, keep);
			memcpy(dg->tail + keep, buf, k);
			dg->n = keep + k;
		}
	}
	dg->tail[dg->n] = '\0';
	for (size_t i = 0; i < dg->n; i++) /* one line in a JSON message */
		if ((unsigned char)dg->tail[i] < 32 || dg->tail[i] == '"')
			dg->tail[i] = ' ';
	return n != 0;
}

/* ------------------------------------------------------------------ one cell */

struct cell {
	uint32_t id;
	size_t budget;			/* output kept: the sandbox's max_output_bytes */
	size_t kept;
	size_t results_kept;		/* results: CTX_RESULTS_MAX in all */
	bool truncated;
	uint8_t *out[2];
	size_t out_len[2];
	json_t *results, *error;
	bool done;
	struct ctx_done end;
	ctx_event_cb cb;
	void *ud;
};

static json_t *bytes_json(const uint8_t *b, size_t n, bool *base64)
{
	*base64 = false;
	if (!memchr(b, '\0', n) && utf8_valid(b, n))
		return json_stringn((const char *)b, n);
	*base64 = true;
	char *enc = base64_encode(b, n);
	json_t *j = json_string(enc);
	free(enc);
	return j;
}

static int on_frame(void *ud, const struct ctx_frame *f, agentd_error *err)
{
	struct cell *cl = ud;
	if (f->kind == CTXF_HELLO || f->id != cl->id)
		return agentd_error_set(err, EPROTO, "%s frame for cell %u during cell %u",
					ctx_frame_kind_name(f->kind), f->id, cl->id);
	if (cl->done)
		return agentd_error_set(err, EPROTO, "%s frame after the cell's done",
					ctx_frame_kind_name(f->kind));
	bool fits = f->data && cl->kept + f->len <= cl->budget;
	switch (f->kind) {
	case CTXF_OUT:
	case CTXF_ERR: {
		int i = f->kind == CTXF_ERR;
		if (f->data && !f->len)
			return 0; /* nothing to keep or stream (a flood of them is no event each) */
		if (!fits) {
			cl->truncated = true;
			return 0;
		}
		cl->out[i] = xrealloc(cl->out[i], cl->out_len[i] + f->len + 1);
		memcpy(cl->out[i] + cl->out_len[i], f->data, f->len);
		cl->out_len[i] += f->len;
		cl->kept += f->len;
		if (cl->cb) {
			bool b64;
			json_t *data = bytes_json(f->data, f->len, &b64);
			json_t *ev = json_pack("{s:s, s:o}", "stream", i ? "stderr" : "stdout",
					       "data", data);
			if (b64)
				json_object_set_new(ev, "encoding", json_string("base64"));
			cl->cb(cl->ud, ev);
		}
		return 0;
	}
	case CTXF_RESULT: {
		if (!f->data) {
			cl->truncated = true;
			return 0;
		}
		json_t *b = ctx_decode_bundle(f, err);
		if (!b)
			return -1;
		if (cl->results_kept + f->len > CTX_RESULTS_MAX ||
		    json_array_size(cl->results) >= 64) {
			json_decref(b);
			cl->truncated = true;
			return 0;
		}
		cl->results_kept += f->len;
		json_array_append(cl->results, b);
		if (cl->cb)
			cl->cb(cl->ud, json_pack("{s:O}", "result", b));
		json_decref(b);
		return 0;
	}
	case CTXF_ERROR: {
		json_t *e = ctx_decode_error(f, err);
		if (!e)
			return -1;
		json_decref(cl->error);
		cl->error = e;
		/* the last one is kept; those streamed count with the results, or a cell
		 * repeating them would queue its events without bound for a slow reader */
		if (cl->cb && cl->results_kept + f->len > CTX_RESULTS_MAX) {
			cl->truncated = true;
		} else if (cl->cb) {
			cl->results_kept += f->len;
			cl->cb(cl->ud, json_pack("{s:O}", "error", e));
		}
		return 0;
	}
	case CTXF_DONE:
		if (ctx_decode_done(f, &cl->end, err) < 0)
			return -1;
		cl->done = true;
		return 0;
	default:
		return agentd_error_set(err, EPROTO, "unexpected frame");
	}
}

/* Read what the runner sent; -1 + err on a protocol violation, 1 at EOF. */
static int read_frames(int fd, struct ctx_parser *pp, ctx_frame_cb cb, void *ud,
		       agentd_error *err)
{
	uint8_t buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0)
			return 1;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : 1;
		if (ctx_parser_feed(pp, buf, (size_t)n, cb, ud, err) < 0)
			return -1;
	}
}

static void describe_end(agentd_process *p, const struct diag *dg, char *out, size_t n)
{
	agentd_process_status st;
	agentd_error e = {0};
	/* its pipe closes a moment before its end is reported */
	struct pollfd w = {.fd = agentd_process_wait_fd(p), .events = POLLIN};
	if (poll(&w, 1, 1000) < 0) {
		/* then its status says it runs */
	}
	if (agentd_process_get_status(p, &st, &e) == 0 && !st.running)
		snprintf(out, n, "the interpreter exited (%s %d)%s%s",
			 st.term_signal ? "signal" : "status",
			 st.term_signal ? st.term_signal : st.exit_code, dg->n ? ": " : "", dg->tail);
	else
		snprintf(out, n, "the interpreter closed its protocol pipe%s%s", dg->n ? ": " : "",
			 dg->tail);
}

enum run_end { END_DONE, END_TIMEOUT, END_KILLED };

/* The cell's loop: write the request, read frames, interrupt at the timeout, kill after the
 * grace. Returns how it ended; *why says why a context was killed. */
static enum run_end pump_cell(struct daemon *d, struct live *l, struct context *c,
			      struct ctx_parser *pp, struct cell *cl,
			      const char *req, size_t req_len, uint64_t timeout_ms,
			      struct exec_slot *slot, bool *interrupted, char *why, size_t whyn)
{
	agentd_process *p = c->p;
	int in = c->feed ? agentd_process_stdin_fd(c->feed) : -1, out = agentd_process_stdout_fd(p),
	    errfd = agentd_process_stderr_fd(p), wfd = agentd_process_wait_fd(p);
	struct diag dg = {0};
	size_t sent = 0;
	uint64_t t0 = mono_ms(), deadline = t0 + timeout_ms, kill_at = 0;
	agentd_error perr = {0};
	int watch = slot ? slot->watch : -1;
	bool client_gone = false;
	for (;;) {
		struct pollfd fds[5] = {
			{.fd = out, .events = POLLIN},
			{.fd = errfd, .events = POLLIN},
			{.fd = wfd, .events = POLLIN},
			{.fd = watch, .events = POLLIN},
			{.fd = sent < req_len ? in : -1, .events = POLLOUT},
		};
		uint64_t now = mono_ms(), until = kill_at ? kill_at : deadline;
		int wait = until > now ? (int)(until - now) : 0;
		int n = poll(fds, 5, wait);
		if (n < 0 && errno != EINTR) {
			snprintf(why, whyn, "poll: %s", strerror(errno));
			return END_KILLED;
		}
		if (fds[4].revents & (POLLOUT | POLLERR | POLLHUP)) {
			ssize_t w = write(in, req + sent, req_len - sent);
			if (w > 0)
				sent += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR)
				sent = req_len; /* the runner is gone: its end says why */
		}
		if (fds[1].revents && !diag_read(errfd, &dg))
			errfd = -1;
		if (fds[0].revents || fds[2].revents) {
			int r = read_frames(out, pp, on_frame, cl, &perr);
			if (r < 0) {
				snprintf(why, whyn, "it broke the protocol: %s", perr.msg);
				return END_KILLED;
			}
			if (cl->done)
				return *interrupted ? END_TIMEOUT : END_DONE;
			if (r > 0 || fds[2].revents) {
				if (errfd >= 0)
					diag_read(errfd, &dg);
				describe_end(p, &dg, why, whyn);
				return END_KILLED;
			}
		}
		if (fds[3].revents) {
			/* destroy, or the client went away: the cell is interrupted as at a
			 * timeout, a sandbox going away does not wait for it */
			watch = -1;
			pthread_mutex_lock(&d->lock);
			bool now_gone = c->doomed || l->state == SB_DESTROYING;
			pthread_mutex_unlock(&d->lock);
			if (now_gone) {
				snprintf(why, whyn, "deleted while its cell ran");
				return END_KILLED;
			}
			if (!kill_at) {
				deadline = mono_ms();
				client_gone = true;
			}
		}
		now = mono_ms();
		if (kill_at && now >= kill_at) {
			char at[64];
			if (client_gone)
				snprintf(at, sizeof(at), "its client went away");
			else
				snprintf(at, sizeof(at), "its timeout of %llu ms",
					 (unsigned long long)timeout_ms);
			snprintf(why, whyn,
				 "its cell was interrupted at %s and did not stop within %d ms of "
				 "SIGINT; the context was killed and its state is lost",
				 at, CTX_INTERRUPT_GRACE_MS);
			return END_KILLED;
		}
		if (!kill_at && now >= deadline) {
			agentd_process_signal(p, SIGINT, NULL);
			*interrupted = true;
			kill_at = now + CTX_INTERRUPT_GRACE_MS;
		}
	}
}

static json_t *cell_json(struct context *c, struct cell *cl, enum run_end end, bool interrupted,
			 const char *why, uint64_t dt)
{
	json_t *o = json_object();
	json_object_set_new(o, "context_id", json_string(c->id));
	json_object_set_new(o, "cell", json_integer(cl->id));
	const char *status = end == END_KILLED ? "killed"
			     : interrupted	   ? "timeout"
			     : cl->end.ok	   ? "ok"
						   : "error";
	json_object_set_new(o, "status", json_string(status));
	static const char *const names[] = {"stdout", "stderr"};
	for (int i = 0; i < 2; i++) {
		bool b64;
		json_object_set_new(o, names[i],
				    bytes_json(cl->out[i] ? cl->out[i] : (const uint8_t *)"",
					       cl->out_len[i], &b64));
		if (b64) {
			char k[32];
			snprintf(k, sizeof(k), "%s_encoding", names[i]);
			json_object_set_new(o, k, json_string("base64"));
		}
	}
	size_t nres = json_array_size(cl->results);
	json_object_set(o, "result", nres ? json_array_get(cl->results, nres - 1) : json_null());
	json_object_set(o, "results", cl->results);
	if (end == END_KILLED)
		json_object_set_new(o, "error",
				    json_pack("{s:s, s:s, s:s}", "name", "ContextKilled", "value",
					      why, "traceback", ""));
	else
		json_object_set(o, "error", cl->error ? cl->error : json_null());
	if (cl->end.has_exit)
		json_object_set_new(o, "exit_code", json_integer(cl->end.exit_code));
	json_object_set_new(o, "duration_ms", json_integer((json_int_t)dt));
	json_object_set_new(o, "timed_out", json_boolean(interrupted));
	json_object_set_new(o, "output_truncated", json_boolean(cl->truncated));
	json_object_set_new(o, "context_alive", json_boolean(end != END_KILLED && c->p));
	return o;
}

static size_t output_budget(struct live *l)
{
	uint64_t b = agentd_sandbox_spec(l->sb)->limits.max_output_bytes;
	return b ? (size_t)b : (size_t)16 << 20;
}

/* The largest out/err/result frame kept (bigger ones are dropped): a PNG fits. */
static size_t frame_bound(struct live *l)
{
	size_t b = output_budget(l);
	return b < (64u << 10) ? (64u << 10) : b > (16u << 20) ? (16u << 20) : b;
}

static void end_context(struct context *c, const char *why)
{
	snprintf(c->gone, sizeof(c->gone), "%s", why);
	if (c->feed) {
		agentd_process_kill(c->feed, NULL);
		agentd_process_free(c->feed);
		c->feed = NULL;
	}
	if (c->p) {
		agentd_process_kill(c->p, NULL);
		agentd_process_free(c->p);
		c->p = NULL;
	}
}

int ctx_run(struct daemon *d, struct live *l, const char *cid, const struct ctx_run_req *req,
	    struct exec_slot *slot, ctx_event_cb cb, void *ud, json_t **out, agentd_error *err)
{
	pthread_mutex_lock(&d->lock);
	struct context *c = find(l, cid);
	/* a session's executions of one language take turns */
	while (req->queue && c && c->busy && !c->doomed && l->state != SB_DESTROYING) {
		pthread_cond_wait(&d->cond, &d->lock);
		c = find(l, cid);
	}
	enum sb_state s = live_state(l);
	int status = 0;
	if (!c || c->doomed) {
		status = 404;
		agentd_error_set(err, ENOENT, "sandbox %s has no context %s", l->id, cid);
	} else if (c->gone[0]) {
		status = 409;
		agentd_error_set(err, EBUSY, "context %s is gone: %s", cid, c->gone);
	} else if (c->busy) {
		status = 409;
		agentd_error_set(err, EBUSY, "context %s is running a cell", cid);
	} else if (s != SB_READY && s != SB_EXECUTING) {
		status = 409;
		agentd_error_set(err, EBUSY, "sandbox %s is %s", l->id, sb_state_name(s));
	} else {
		c->busy = true;
		c->run = slot;
		if (slot) {
			slot->next = l->slots;
			l->slots = slot;
		}
		c->cells++;
	}
	uint32_t id = c && !status ? c->cells : 0;
	pthread_mutex_unlock(&d->lock);
	if (status)
		return status;

	char *rq = NULL;
	size_t rq_len = 0;
	for (size_t i = 0; req->env && i < req->env->n; i++) {
		char *kv = xasprintf("%s=%s", req->env->v[i].key, req->env->v[i].value);
		ctx_encode(&rq, &rq_len, "env", id, kv, strlen(kv));
		free(kv);
	}
	ctx_encode(&rq, &rq_len, "run", id, req->code, strlen(req->code));
	uint64_t timeout = req->timeout_ms ? req->timeout_ms
					   : agentd_sandbox_spec(l->sb)->limits.max_wall_time_ms;
	if (!timeout)
		timeout = 3600000;
	struct cell cl = {.id = id, .budget = output_budget(l), .results = json_array(),
			  .cb = cb, .ud = ud};
	struct ctx_parser pp;
	ctx_parser_init(&pp, frame_bound(l));
	bool interrupted = false;
	char why[300] = "";
	uint64_t t0 = mono_ms();
	enum run_end end = pump_cell(d, l, c, &pp, &cl, rq, rq_len, timeout, slot, &interrupted, why,
				     sizeof(why));
	uint64_t dt = mono_ms() - t0;
	free(rq);
	ctx_parser_free(&pp);
	if (end == END_KILLED) {
		dlog("warn", "msg=\"context killed\" sandbox=%s context=%s reason=\"%s\"", l->id,
		     c->id, why);
	} else if (cl.end.exited) {
		/* a shell whose cell ran `exit`: its runner ends after the done frame */
		struct pollfd w = {.fd = agentd_process_wait_fd(c->p), .events = POLLIN};
		if (poll(&w, 1, 2000) < 0) {
			/* it is killed below either way */
		}
		snprintf(why, sizeof(why), "the shell exited (exit %d)", cl.end.exit_code);
	}
	pthread_mutex_lock(&d->lock);
	if (end == END_KILLED || why[0])
		end_context(c, why);
	json_t *o = cell_json(c, &cl, end, interrupted, why, dt);
	c->busy = false;
	c->run = NULL;
	if (slot)
		for (struct exec_slot **pp2 = &l->slots; *pp2; pp2 = &(*pp2)->next)
			if (*pp2 == slot) {
				*pp2 = slot->next;
				break;
			}
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	free(cl.out[0]);
	free(cl.out[1]);
	json_decref(cl.results);
	json_decref(cl.error);
	*out = o;
	return 0;
}

/* ------------------------------------------------------------------ lifecycle */

static int on_hello(void *ud, const struct ctx_frame *f, agentd_error *err)
{
	json_t **hello = ud;
	if (f->kind != CTXF_HELLO || *hello)
		return agentd_error_set(err, EPROTO, "%s frame before the runner's hello",
					ctx_frame_kind_name(f->kind));
	return (*hello = ctx_decode_hello(f, err)) ? 0 : -1;
}

/* The runner's hello, within 30 s (an interpreter's start on a loaded machine). */
static int await_hello(agentd_process *p, json_t **hello, agentd_error *err)
{
	struct ctx_parser pp;
	ctx_parser_init(&pp, CTX_SMALL_MAX);
	struct diag dg = {0};
	uint64_t until = mono_ms() + 30000;
	int r = -1, errfd = agentd_process_stderr_fd(p);
	*hello = NULL;
	while (!*hello) {
		uint64_t now = mono_ms();
		if (now >= until) {
			agentd_error_set(err, ETIMEDOUT, "the runner did not start within 30 s");
			break;
		}
		struct pollfd fds[3] = {{.fd = agentd_process_stdout_fd(p), .events = POLLIN},
					{.fd = errfd, .events = POLLIN},
					{.fd = agentd_process_wait_fd(p), .events = POLLIN}};
		if (poll(fds, 3, (int)(until - now)) < 0 && errno != EINTR)
			break;
		if (fds[1].revents && !diag_read(fds[1].fd, &dg))
			errfd = -1;
		if (fds[0].revents || fds[2].revents) {
			int rr = read_frames(fds[0].fd, &pp, on_hello, hello, err);
			if (rr < 0)
				break;
			if (*hello)
				break;
			if (rr > 0 || fds[2].revents) {
				char why[300];
				if (errfd >= 0)
					diag_read(errfd, &dg);
				describe_end(p, &dg, why, sizeof(why));
				agentd_error_set(err, EINVAL, "%s", why);
				break;
			}
		}
	}
	if (*hello)
		r = 0;
	ctx_parser_free(&pp);
	return r;
}

static int spawn_status(int e)
{
	return e == ENOTSUP ? 501 : e == EAGAIN ? 429 : e == EBUSY ? 409
	       : e == ENOENT || e == EACCES || e == EINVAL ? 400 : 500;
}

/* issue 12: durable-daemon. The interpreter reads its cells from a FIFO of its sandbox,
 * opened read-write before it starts (it never reads EOF), not from a pipe of ours: a pipe's
 * host end would close with the daemon, ending the interpreter and its state. A feeder
 * process (cat, its stdin a pipe of ours) writes the cells into the FIFO; a daemon after a
 * restart starts a new one. /dev/shm: scratch, never in a snapshot a restore puts back.
 * Everything about it is the sandbox's own: its code may write to the FIFO as it may type
 * cells into its own interpreter. */
#define CTX_LAUNCH "f=$1; shift; rm -f \"$f\" && mkfifo -m 600 \"$f\" && exec \"$@\" <>\"$f\""

static char *ctx_fifo(const char *cid)
{
	return xasprintf("/dev/shm/.agentd-ctx-%s", cid);
}

static agentd_process *ctx_feeder(struct live *l, const char *cid, agentd_error *err)
{
	_cleanup_free_ char *fifo = ctx_fifo(cid);
	char *argv[] = {"/bin/sh", "-c", "[ -p \"$0\" ] && exec cat >\"$0\"", fifo, NULL};
	agentd_command cmd = {.argv = argv};
	agentd_process_opts opts = {.stdin_pipe = true};
	agentd_process *f = NULL;
	if (agentd_sandbox_spawn(l->sb, &cmd, &opts, &f, err) < 0) {
		agentd_error_prefix(err, "the context's feeder");
		return NULL;
	}
	return f;
}

/* issue 12: durable-daemon: what a later daemon needs to take c back (adopt.c) */
static void ctx_keep(struct daemon *d, struct live *l, const struct context *c)
{
	live_item_put(d, l, "context", c->id,
		      json_pack("{s:s, s:i, s:I, s:I, s:I, s:b, s:s}", "id", c->id, "language",
				(int)c->lang, "pid", (json_int_t)c->pid, "feed_pid",
				(json_int_t)(c->feed ? agentd_process_pid(c->feed) : 0), "created_ms",
				(json_int_t)c->created_ms, "session", c->session, "version",
				c->version));
}

int ctx_create(struct daemon *d, struct live *l, enum api_language lang, const agentd_kvv *env,
	       const char *workdir, bool for_session, json_t **out, agentd_error *err)
{
	pthread_mutex_lock(&d->lock);
	enum sb_state s = live_state(l);
	if (s != SB_READY && s != SB_EXECUTING) {
		pthread_mutex_unlock(&d->lock);
		agentd_error_set(err, EBUSY, "sandbox %s is %s", l->id, sb_state_name(s));
		return 409;
	}
	if (l->n_contexts >= LIVE_MAX_CONTEXTS) {
		pthread_mutex_unlock(&d->lock);
		agentd_error_set(err, EAGAIN, "sandbox %s has %u contexts already (at most %u)",
				 l->id, l->n_contexts, LIVE_MAX_CONTEXTS);
		return 429;
	}
	l->n_contexts++; /* reserved while it starts */
	pthread_mutex_unlock(&d->lock);

	const char *src = lang == LANG_PYTHON ? ctx_runner_python
			  : lang == LANG_NODE ? ctx_runner_node
					      : ctx_runner_sh;
	const char *shell = lang == LANG_BASH ? "bash" : "/bin/sh";
	char cid[API_ID_LEN + 1];
	random_id(cid);
	_cleanup_free_ char *fifo = ctx_fifo(cid);
	char *argv_py[] = {"/bin/sh", "-c", CTX_LAUNCH, "sh", fifo, "python3", "-c", (char *)src,
			   NULL};
	char *argv_node[] = {"/bin/sh", "-c", CTX_LAUNCH, "sh", fifo, "node", "-e", (char *)src,
			     NULL};
	char *argv_sh[] = {"/bin/sh", "-c", CTX_LAUNCH, "sh", fifo, (char *)shell, "-c",
			   (char *)src, (char *)shell, (char *)src, NULL};
	agentd_command cmd = {
		.argv = lang == LANG_PYTHON ? argv_py : lang == LANG_NODE ? argv_node : argv_sh,
		.workdir = workdir,
	};
	if (env)
		cmd.env = *env;
	agentd_process_opts opts = {0};
	agentd_process *p = NULL, *feed = NULL;
	json_t *hello = NULL;
	int status = 0;
	if (agentd_sandbox_spawn(l->sb, &cmd, &opts, &p, err) < 0) {
		status = spawn_status(err->code);
	} else if (await_hello(p, &hello, err) < 0 || !(feed = ctx_feeder(l, cid, err))) {
		status = err->code == ETIMEDOUT ? 500 : feed || hello ? spawn_status(err->code) : 400;
		agentd_process_kill(p, NULL);
		agentd_process_free(p);
		json_decref(hello);
	}
	if (status) {
		agentd_error_prefix(err, "context %s", api_language_name(lang));
		pthread_mutex_lock(&d->lock);
		l->n_contexts--;
		pthread_mutex_unlock(&d->lock);
		return status;
	}
	struct context *c = xcalloc(1, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", cid);
	c->lang = lang;
	c->p = p;
	c->feed = feed;
	c->session = for_session;
	c->created_ms = now_ms_realtime();
	c->pid = agentd_process_pid(p);
	snprintf(c->version, sizeof(c->version), "%s",
		 json_string_value(json_object_get(hello, "version"))
			 ? json_string_value(json_object_get(hello, "version"))
			 : "");
	json_decref(hello);
	pthread_mutex_lock(&d->lock);
	c->next = l->contexts;
	l->contexts = c;
	if (out)
		*out = ctx_json(l, c);
	pthread_mutex_unlock(&d->lock);
	ctx_keep(d, l, c);
	dlog("info", "msg=\"context started\" sandbox=%s context=%s language=%s", l->id, c->id,
	     api_language_name(lang));
	return 0;
}

/* issue 12: durable-daemon: a context of an adopted sandbox back on its interpreter, which
 * kept its variables. A cell cut short by the restart may have left frames in its pipe:
 * they are read and dropped, and the cells go on numbered past the stored ones. */
int ctx_adopt(struct daemon *d, struct live *l, agentd_process *h, json_t *item)
{
	const char *id = json_string_value(json_object_get(item, "id"));
	enum api_language lang = (enum api_language)json_integer_value(json_object_get(item,
										      "language"));
	if (!id || !api_valid_id(id) || (lang != LANG_PYTHON && lang != LANG_NODE &&
					  lang != LANG_BASH && lang != LANG_SH)) {
		agentd_process_kill(h, NULL);
		agentd_process_free(h);
		return -1;
	}
	uint8_t junk[4096];
	int out = agentd_process_stdout_fd(h);
	struct pollfd pfd = {.fd = out, .events = POLLIN};
	while (out >= 0 && poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN) &&
	       read(out, junk, sizeof(junk)) > 0)
		;
	agentd_error err = {0};
	agentd_process *feed = ctx_feeder(l, id, &err);
	if (!feed) {
		dlog("warn", "msg=\"context not restored\" sandbox=%s context=%s error=\"%s\"",
		     l->id, id, err.msg);
		agentd_process_kill(h, NULL);
		agentd_process_free(h);
		return -1;
	}
	struct context *c = xcalloc(1, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->lang = lang;
	c->p = h;
	c->feed = feed;
	c->pid = agentd_process_pid(h);
	c->created_ms = json_integer_value(json_object_get(item, "created_ms"));
	c->session = json_is_true(json_object_get(item, "session"));
	c->cells = 1000000; /* past any id of a frame left from before */
	snprintf(c->version, sizeof(c->version), "%s",
		 json_string_value(json_object_get(item, "version"))
			 ? json_string_value(json_object_get(item, "version"))
			 : "");
	pthread_mutex_lock(&d->lock);
	c->next = l->contexts;
	l->contexts = c;
	l->n_contexts++;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

json_t *ctx_list_json(struct daemon *d, struct live *l)
{
	json_t *a = json_array();
	pthread_mutex_lock(&d->lock);
	for (struct context *c = l->contexts; c; c = c->next)
		json_array_append_new(a, ctx_json(l, c));
	pthread_mutex_unlock(&d->lock);
	return a;
}

int ctx_get_json(struct daemon *d, struct live *l, const char *cid, json_t **out,
		 agentd_error *err)
{
	pthread_mutex_lock(&d->lock);
	struct context *c = find(l, cid);
	if (c)
		*out = ctx_json(l, c);
	pthread_mutex_unlock(&d->lock);
	if (!c)
		return agentd_error_set(err, ENOENT, "sandbox %s has no context %s", l->id, cid),
		       404;
	return 0;
}

/* Unlinked from l (d->lock held, not busy). */
static void unlink_ctx(struct live *l, struct context *c)
{
	for (struct context **pp = &l->contexts; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	l->n_contexts--;
}

int ctx_delete(struct daemon *d, struct live *l, const char *cid, agentd_error *err)
{
	pthread_mutex_lock(&d->lock);
	struct context *c = find(l, cid);
	if (!c || c->doomed) {
		pthread_mutex_unlock(&d->lock);
		return agentd_error_set(err, ENOENT, "sandbox %s has no context %s", l->id, cid),
		       404;
	}
	c->doomed = true;
	if (c->busy && c->run)
		exec_slot_cancel(c->run);
	while (c->busy)
		pthread_cond_wait(&d->cond, &d->lock);
	unlink_ctx(l, c);
	pthread_mutex_unlock(&d->lock);
	live_item_del(d, l, "context", c->id);
	end_context(c, "deleted");
	free(c);
	return 0;
}

void ctx_free_all(struct daemon *d, struct live *l)
{
	pthread_mutex_lock(&d->lock);
	struct context *c = l->contexts;
	l->contexts = NULL;
	l->n_contexts = 0;
	pthread_mutex_unlock(&d->lock);
	while (c) {
		struct context *next = c->next;
		end_context(c, "sandbox destroyed");
		free(c);
		c = next;
	}
}

/* Held while a session's context is found or started: concurrent first executions share
 * one context, not one each. */
static pthread_mutex_t session_start_lock = PTHREAD_MUTEX_INITIALIZER;

static int session_context(struct daemon *d, struct live *l, enum api_language lang,
			   char cid[API_ID_LEN + 1], agentd_error *err)
{
	pthread_mutex_lock(&d->lock);
	struct context *found = NULL, *stale = NULL;
	for (struct context *c = l->contexts; c; c = c->next)
		if (c->session && c->lang == lang && !c->doomed) {
			if (c->gone[0] && !c->busy)
				stale = c;
			else
				found = c;
		}
	if (stale) /* ended (a shell's `exit`, a kill): the session starts a new one */
		unlink_ctx(l, stale);
	if (found)
		snprintf(cid, API_ID_LEN + 1, "%s", found->id);
	pthread_mutex_unlock(&d->lock);
	if (stale) {
		live_item_del(d, l, "context", stale->id);
		end_context(stale, "replaced");
		free(stale);
	}
	if (found)
		return 0;
	json_t *j = NULL;
	int st = ctx_create(d, l, lang, NULL, NULL, true, &j, err);
	if (st)
		return st;
	snprintf(cid, API_ID_LEN + 1, "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	return 0;
}

int ctx_session_context(struct daemon *d, struct live *l, enum api_language lang,
			char cid[API_ID_LEN + 1], agentd_error *err)
{
	pthread_mutex_lock(&session_start_lock);
	int r = session_context(d, l, lang, cid, err);
	pthread_mutex_unlock(&session_start_lock);
	return r;
}
