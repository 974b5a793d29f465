/* exec.c: one command in a gondolin sandbox through its helper: the exec request, stdin in
 * chunks, output events in order under the output cap, the wall timeout and cancel as SIGKILL. */
#include "gondolin.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* What one exec loop tracks. Every request it sends while it holds the sandbox's lock has an
 * id above the exec's own; each is answered exactly once. */
struct run {
	gondolin_sandbox *g;
	const agentd_command *cmd;
	const agentd_exec_ctx *ctx;
	agentd_exec_output *out;
	uint64_t exec_id;
	bool started;			/* the exec request was answered */
	bool exited;
	uint64_t sent, answered;	/* requests of this loop other than the exec itself */
	uint8_t *seen;			/* seen[k]: request exec_id + 1 + k was answered */
	size_t stdin_off;
	bool stdin_done;
	uint64_t max_output, kept;
	bool killed;			/* SIGKILL sent (timeout or cancel) */
	int64_t deadline;		/* the next thing due: an answer, the wall limit, the kill */
};

static int append(uint8_t **buf, size_t *len, const uint8_t *d, size_t n)
{
	uint8_t *b = realloc(*buf, *len + n + 1);
	if (!b)
		return -1;
	memcpy(b + *len, d, n);
	*len += n;
	b[*len] = 0;
	*buf = b;
	return 0;
}

static int on_output_event(struct run *r, json_t *msg, agentd_error *err)
{
	const char *stream = json_string_value(json_object_get(msg, "stream"));
	json_t *data = json_object_get(msg, "data");
	agentd_stream s = stream && !strcmp(stream, "stdout")	? AGENTD_STREAM_STDOUT
			  : stream && !strcmp(stream, "stderr") ? AGENTD_STREAM_STDERR
								: 0;
	uint8_t *bytes;
	size_t n;
	if (!s || !json_is_string(data) ||
	    gondolin_b64_decode(json_string_value(data), json_string_length(data), &bytes, &n) < 0)
		return gondolin_helper_fail(&r->g->helper, err,
					    "a malformed output event (stream or base64 data)");
	uint64_t room = r->max_output > r->kept ? r->max_output - r->kept : 0;
	size_t keep = n > room ? (size_t)room : n;
	if (keep < n)
		r->out->output_truncated = true;
	int rc = 0;
	if (keep) {
		r->kept += keep;
		rc = s == AGENTD_STREAM_STDOUT ? append(&r->out->out, &r->out->out_len, bytes, keep)
					       : append(&r->out->err, &r->out->err_len, bytes, keep);
		if (rc == 0 && r->ctx && r->ctx->on_output)
			r->ctx->on_output(r->ctx->userdata, s, bytes, keep);
	}
	free(bytes);
	return rc < 0 ? agentd_error_set(err, ENOMEM, "exec: out of memory") : 0;
}

static int on_exit_event(struct run *r, json_t *msg, agentd_error *err)
{
	json_t *code = json_object_get(msg, "exit_code");
	json_t *sig = json_object_get(msg, "signal");
	if (!json_is_integer(code) || json_integer_value(code) < 0 ||
	    json_integer_value(code) > 255 ||
	    (sig && !json_is_null(sig) &&
	     (!json_is_integer(sig) || json_integer_value(sig) < 1 || json_integer_value(sig) > 64)))
		return gondolin_helper_fail(&r->g->helper, err,
					    "a malformed exit event (exit_code 0..255, signal 1..64)");
	r->exited = true;
	r->deadline = gondolin_now_ms() + GONDOLIN_ANSWER_MS; /* for the answers still due */
	int n = json_is_integer(sig) ? (int)json_integer_value(sig) : 0;
	r->out->term_signal = n;
	r->out->exit_code = n ? 128 + n : (int)json_integer_value(code);
	return 0;
}

/* An event of this exec, or an answer to a request of this loop. */
static int on_message(struct run *r, json_t *msg, agentd_error *err)
{
	gondolin_helper *h = &r->g->helper;
	const char *ev = json_string_value(json_object_get(msg, "event"));
	if (ev) {
		json_t *x = json_object_get(msg, "exec");
		if (!json_is_integer(x) || (uint64_t)json_integer_value(x) != r->exec_id)
			return gondolin_helper_fail(h, err, "an event for an unknown exec id");
		if (!r->started || r->exited)
			return gondolin_helper_fail(h, err, "an event %s its exec",
						    r->exited ? "after the end of" : "before the start of");
		if (!strcmp(ev, "output"))
			return on_output_event(r, msg, err);
		if (!strcmp(ev, "exit"))
			return on_exit_event(r, msg, err);
		return gondolin_helper_fail(h, err, "an unknown event");
	}
	json_t *jid = json_object_get(msg, "id");
	if (!json_is_integer(jid))
		return gondolin_helper_fail(h, err, "a message with neither id nor event");
	uint64_t id = (uint64_t)json_integer_value(jid);
	json_t *res;
	if (id == r->exec_id && !r->started) {
		int a = gondolin_answer(msg, id, &res, err);
		if (a < 0 && err && err->code == EPROTO)
			return gondolin_helper_fail(h, err, "%s", err->msg);
		if (a < 0)
			return agentd_error_prefix(err, "exec"); /* refused: the sandbox lives */
		r->started = true;
		return 0;
	}
	if (id <= r->exec_id || id > r->exec_id + r->sent || r->seen[id - r->exec_id - 1])
		return gondolin_helper_fail(h, err, "an answer to unknown request id %llu",
					    (unsigned long long)id);
	r->seen[id - r->exec_id - 1] = 1;
	r->answered++;
	/* a refused stdin or signal (the command already ended) changes nothing */
	agentd_error ignored;
	if (gondolin_answer(msg, id, &res, &ignored) < 0 && ignored.code == EPROTO)
		return gondolin_helper_fail(h, err, "%s", ignored.msg);
	return 0;
}

/* Room to mark one more request of this loop answered. */
static int grow_seen(struct run *r, agentd_error *err)
{
	uint8_t *s = realloc(r->seen, r->sent + 1);
	if (!s)
		return agentd_error_set(err, ENOMEM, "exec: out of memory");
	s[r->sent] = 0;
	r->seen = s;
	r->sent++;
	return 0;
}

static int send_signal(struct run *r, int sig, agentd_error *err)
{
	json_t *f = json_object();
	json_object_set_new(f, "exec", json_integer((json_int_t)r->exec_id));
	json_object_set_new(f, "signal", json_integer(sig));
	if (grow_seen(r, err) < 0) {
		json_decref(f);
		return -1;
	}
	return gondolin_helper_send(&r->g->helper, "signal", f, NULL, err);
}

/* The next stdin chunk (or its end), while the helper keeps up. */
static int feed_stdin(struct run *r, agentd_error *err)
{
	if (r->stdin_done || !r->started || r->exited ||
	    gondolin_helper_queued(&r->g->helper) > 2 * GONDOLIN_STDIN_CHUNK)
		return 0;
	json_t *f = json_object();
	json_object_set_new(f, "exec", json_integer((json_int_t)r->exec_id));
	size_t left = r->cmd->stdin_len - r->stdin_off;
	if (left) {
		size_t n = left > GONDOLIN_STDIN_CHUNK ? GONDOLIN_STDIN_CHUNK : left;
		char *b = gondolin_b64_encode(r->cmd->stdin_data + r->stdin_off, n);
		if (!b) {
			json_decref(f);
			return agentd_error_set(err, ENOMEM, "exec: out of memory");
		}
		json_object_set_new(f, "data", json_string(b));
		free(b);
		r->stdin_off += n;
	} else {
		json_object_set_new(f, "eof", json_true());
		r->stdin_done = true;
	}
	if (grow_seen(r, err) < 0) {
		json_decref(f);
		return -1;
	}
	return gondolin_helper_send(&r->g->helper, "stdin", f, NULL, err);
}

/* The wall limit passed or the caller cancelled: SIGKILL, then the grace to end. */
static int kill_exec(struct run *r, bool timeout, agentd_error *err)
{
	r->killed = true;
	r->out->timed_out = timeout;
	r->deadline = gondolin_now_ms() + GONDOLIN_KILL_GRACE_MS;
	return send_signal(r, SIGKILL, err);
}

static json_t *exec_request(const agentd_sandbox *sb, const agentd_command *cmd)
{
	json_t *f = json_object(), *argv = json_array(), *env = json_object();
	for (char **a = cmd->argv; *a; a++)
		json_array_append_new(argv, json_string(*a));
	for (size_t i = 0; i < cmd->env.n; i++)
		json_object_set_new(env, cmd->env.v[i].key, json_string(cmd->env.v[i].value));
	json_object_set_new(f, "argv", argv);
	json_object_set_new(f, "env", env);
	json_object_set_new(f, "cwd", json_string(cmd->workdir ? cmd->workdir
							       : agentd_sandbox_spec(sb)->workdir));
	json_object_set_new(f, "stdin", json_boolean(cmd->stdin_data != NULL));
	return f;
}

static int loop(struct run *r, uint64_t wall_ms, agentd_error *err)
{
	gondolin_helper *h = &r->g->helper;
	int64_t wall_end = wall_ms ? gondolin_now_ms() + (int64_t)wall_ms : INT64_MAX;
	r->deadline = gondolin_now_ms() + GONDOLIN_ANSWER_MS;
	int cancel = r->ctx && r->ctx->cancel_fd > 0 ? r->ctx->cancel_fd : -1;
	while (!r->exited || r->answered < r->sent) {
		if (r->started && !r->cmd->stdin_data)
			r->stdin_done = true;
		if (feed_stdin(r, err) < 0)
			return -1;
		bool running = r->started && !r->killed && !r->exited;
		json_t *msg;
		int w = gondolin_helper_next(h, running ? wall_end : r->deadline,
					     running ? cancel : -1, &msg, err);
		if (w < 0)
			return -1;
		if (w == 1 || (w == 2 && running)) { /* cancelled, or the wall limit */
			if (kill_exec(r, w == 2, err) < 0)
				return -1;
			continue;
		}
		if (w == 2)
			return gondolin_helper_fail(h, err, r->killed && !r->exited
					? "the command did not end within %d ms of SIGKILL"
					: "no answer within %d ms",
				r->killed && !r->exited ? GONDOLIN_KILL_GRACE_MS : GONDOLIN_ANSWER_MS);
		int rc = on_message(r, msg, err);
		json_decref(msg);
		if (rc < 0)
			return -1;
	}
	return 0;
}

int gondolin_exec(agentd_sandbox *sb, const agentd_command *cmd, const agentd_exec_ctx *ctx,
		  agentd_exec_output *out, agentd_error *err)
{
	gondolin_sandbox *g = agentd_sandbox_priv(sb);
	const agentd_spec *spec = agentd_sandbox_spec(sb);
	uint64_t wall = cmd->timeout_ms ? cmd->timeout_ms : spec->limits.max_wall_time_ms;
	memset(out, 0, sizeof(*out));
	struct run r = {.g = g, .cmd = cmd, .ctx = ctx, .out = out,
			.max_output = spec->limits.max_output_bytes
					      ? spec->limits.max_output_bytes
					      : UINT64_MAX};
	pthread_mutex_lock(&g->lock);
	int64_t t0 = gondolin_now_ms();
	int rc = gondolin_helper_send(&g->helper, "exec", exec_request(sb, cmd), &r.exec_id, err);
	if (rc == 0)
		rc = loop(&r, wall, err);
	out->duration_ms = (uint64_t)(gondolin_now_ms() - t0);
	g->wall_ms += out->duration_ms;
	pthread_mutex_unlock(&g->lock);
	free(r.seen);
	out->usage.wall_time_ms = out->duration_ms;
	if (rc < 0) {
		agentd_exec_output_free(out);
		return -1;
	}
	if (out->timed_out)
		out->exit_code = 124;
	return 0;
}
