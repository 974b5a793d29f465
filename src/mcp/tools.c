/* tools.c: the MCP tools, each a call or two of the daemon API (over its unix socket):
 * arguments checked with messages a model can act on, daemon errors and limits as tool
 * errors (isError), streamed output as progress, cancellation by shutting the connection
 * (the daemon kills an exec or cell whose client went away). */
#include "mcp/mcp.h"
#include "common/uclient.h"

#include <math.h>
#include <sys/socket.h>

struct api_answer {
	int status;
	json_t *json; /* the body as JSON, or NULL */
	struct http_response raw;
};

static void answer_free(struct api_answer *a)
{
	json_decref(a->json);
	http_response_free(&a->raw);
}

/* One request to the daemon on a connection the call can shut; 0, or -1 with err. */
static int api(struct mcp_tools *t, struct mcp_call *c, const char *method, const char *path,
	       const char *ctype, const void *body, size_t len, struct api_answer *a,
	       void (*on_line)(void *, const char *, size_t), void *ud, agentd_error *err)
{
	memset(a, 0, sizeof(*a));
	if (c && atomic_load(&c->cancelled))
		return agentd_error_set(err, ECANCELED, "cancelled");
	struct client_conn conn;
	if (client_connect(t->socket, &conn, err) < 0)
		return -1;
	if (c) {
		pthread_mutex_lock(&c->lock);
		c->cancel_fd = conn.fd;
		pthread_mutex_unlock(&c->lock);
		if (atomic_load(&c->cancelled))
			shutdown(conn.fd, SHUT_RDWR);
	}
	int r = client_request(&conn, method, path, ctype, body, len, &a->raw, on_line, ud, err);
	if (c) {
		pthread_mutex_lock(&c->lock);
		c->cancel_fd = -1;
		pthread_mutex_unlock(&c->lock);
	}
	client_close(&conn);
	if (r < 0)
		return -1;
	a->status = a->raw.status;
	return 0;
}

static int api_json(struct mcp_tools *t, struct mcp_call *c, const char *method, const char *path,
		    json_t *body, struct api_answer *a,
		    void (*on_line)(void *, const char *, size_t), void *ud, agentd_error *err)
{
	char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int r = api(t, c, method, path, b ? "application/json" : NULL, b, b ? strlen(b) : 0, a,
		    on_line, ud, err);
	free(b);
	if (r == 0 && !a->json && a->raw.len)
		a->json = json_loadb(a->raw.body, a->raw.len, 0, NULL);
	return r;
}

/* The daemon's refusal as a tool error: "verb: message". */
static json_t *daemon_error(const char *verb, const struct api_answer *a)
{
	const char *msg =
	    json_string_value(json_object_get(json_object_get(a->json, "error"), "message"));
	return mcp_tool_error("%s: %s (HTTP %d)", verb, msg ? msg : "failed", a->status);
}

static json_t *transport_error(const char *verb, struct mcp_call *c, const agentd_error *err)
{
	if (c && atomic_load(&c->cancelled))
		return mcp_tool_error("%s: cancelled", verb);
	return mcp_tool_error("%s: %s", verb, err->msg);
}

/* ------------------------------------------------------------------ arguments */

static const char *arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

/* A sandbox id or name: [A-Za-z0-9._-]{1,64}, so that it stays one path segment. */
static const char *sandbox_arg(json_t *args, json_t **bad)
{
	const char *id = arg_str(args, "sandbox_id");
	size_t n = id ? strlen(id) : 0;
	bool ok = n >= 1 && n <= 64 && id[0] != '.';
	for (size_t i = 0; ok && i < n; i++)
		ok = a_alnum(id[i]) || id[i] == '.' || id[i] == '_' || id[i] == '-';
	if (!ok) {
		*bad = mcp_tool_error("sandbox_id: expected the id or name sandbox_create returned "
				      "(letters, digits, '.', '_', '-'; sandbox_list lists them)");
		return NULL;
	}
	return id;
}

/* argv from "argv" (strings) or "command" (sh -c); NULL with *bad set. */
static json_t *argv_arg(json_t *args, json_t **bad)
{
	json_t *argv = json_object_get(args, "argv");
	const char *cmd = arg_str(args, "command");
	if (argv && cmd) {
		*bad = mcp_tool_error("give either command or argv, not both");
		return NULL;
	}
	if (cmd)
		return json_pack("[s, s, s]", "/bin/sh", "-c", cmd);
	size_t i;
	json_t *v;
	bool ok = json_is_array(argv) && json_array_size(argv) > 0;
	json_array_foreach(argv, i, v) ok = ok && json_is_string(v);
	if (!ok) {
		*bad = mcp_tool_error("command (a shell line) or argv (an array of strings) is "
				      "required");
		return NULL;
	}
	return json_incref(argv);
}

/* seconds → ms, for timeout_s, ttl_s...; 0 when absent; -1 when not a positive number. */
static long long seconds_ms(json_t *args, const char *key)
{
	json_t *v = json_object_get(args, key);
	if (!v)
		return 0;
	double s = json_number_value(v);
	if (!json_is_number(v) || !(s > 0) || s > 3.2e8)
		return -1;
	return (long long)ceil(s * 1000);
}

static void copy_env_workdir(json_t *args, json_t *body)
{
	json_t *env = json_object_get(args, "env");
	if (json_is_object(env))
		json_object_set(body, "env", env);
	if (arg_str(args, "workdir"))
		json_object_set(body, "workdir", json_object_get(args, "workdir"));
}

/* "/v1/sandboxes/SID" + route + the query value escaped (may be NULL). */
static char *path_of(const char *sid, const char *route, const char *value)
{
	_cleanup_free_ char *esc = value ? url_escape(value) : NULL;
	return xasprintf("/v1/sandboxes/%s%s%s", sid, route, esc ? esc : "");
}

/* ------------------------------------------------------------------ streams */

/* What a streamed exec or cell sent: its output so far, and its last line. */
struct stream_acc {
	struct mcp_call *call;
	char *out[2]; /* stdout, stderr */
	size_t len[2];
	json_t *last; /* {"exit": ...}, {"done": ...} or {"error": ...} */
};

static void acc_append(struct stream_acc *s, int which, const char *data, size_t n)
{
	s->out[which] = xrealloc(s->out[which], s->len[which] + n + 1);
	memcpy(s->out[which] + s->len[which], data, n);
	s->len[which] += n;
	s->out[which][s->len[which]] = '\0';
}

/* A chunk the daemon sent as base64 (not UTF-8, or with a NUL), as text a model can read:
 * what is not a character, and NUL, becomes U+FFFD. malloc'd, NUL-terminated, its length
 * in *n; *bytes: how many bytes the chunk held. */
static char *lossy_text(const char *b64, size_t *n, size_t *bytes)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	if (base64_decode(b64, strlen(b64), &raw, &len) < 0)
		len = 0;
	if (bytes)
		*bytes = len;
	char *out = utf8_lossy(raw, len, n);
	free(raw);
	return out;
}

static void on_stream_line(void *ud, const char *line, size_t len)
{
	struct stream_acc *s = ud;
	json_t *j = json_loadb(line, len, 0, NULL);
	const char *stream = json_string_value(json_object_get(j, "stream"));
	const char *data = json_string_value(json_object_get(j, "data"));
	if (stream && data) {
		int which = !strcmp(stream, "stderr");
		size_t n = strlen(data);
		char *text = arg_str(j, "encoding") ? lossy_text(data, &n, NULL) : NULL;
		acc_append(s, which, text ? text : data, n);
		mcp_progress(s->call, text ? text : data);
		free(text);
	} else if (json_object_get(j, "exit") || json_object_get(j, "done") ||
		   json_object_get(j, "error")) {
		json_decref(s->last);
		s->last = json_incref(j);
	}
	json_decref(j);
}

static void acc_free(struct stream_acc *s)
{
	free(s->out[0]);
	free(s->out[1]);
	json_decref(s->last);
}

/* A sandbox's limit as a model reads it, from its policy: "memory limit 256 MiB". */
static char *limit_text(struct mcp_tools *t, const char *sid, const char *hit)
{
	char *path = xasprintf("/v1/sandboxes/%s", sid);
	struct api_answer a;
	agentd_error err = {0};
	json_t *limits = NULL;
	if (api_json(t, NULL, "GET", path, NULL, &a, NULL, NULL, &err) == 0)
		limits = json_object_get(json_object_get(a.json, "spec"), "limits");
	free(path);
	long long v;
	char *s;
	if (!strcmp(hit, "memory") &&
	    (v = json_integer_value(json_object_get(limits, "max_memory_bytes"))))
		s = xasprintf("memory limit %lld MiB", v >> 20);
	else if (!strcmp(hit, "pids") &&
		 (v = json_integer_value(json_object_get(limits, "max_processes"))))
		s = xasprintf("process limit %lld", v);
	else if (!strcmp(hit, "cpu") &&
		 (v = json_integer_value(json_object_get(limits, "max_cpu_time_ms"))))
		s = xasprintf("CPU time limit %g s (the sandbox's whole budget)", v / 1000.0);
	else
		s = xasprintf("%s limit", hit);
	answer_free(&a);
	return s;
}

/* stdout, stderr and a last line, as the text a model reads. */
static char *output_text(const struct stream_acc *s, const char *tail)
{
	return xasprintf("%s%s%s%s%s", s->out[0] ? s->out[0] : "",
			 s->len[1] ? (s->len[0] ? "\n[stderr]\n" : "[stderr]\n") : "",
			 s->out[1] ? s->out[1] : "", s->len[0] || s->len[1] ? "\n" : "", tail);
}

/* POST a streamed exec or cell (path and body are taken): NULL with *final the last line's
 * object under key ("exit", "done"), or the tool error. */
static json_t *stream_post(struct mcp_tools *t, struct mcp_call *c, const char *verb, char *path,
			   json_t *body, struct stream_acc *s, const char *key, json_t **final)
{
	struct api_answer a;
	agentd_error err = {0};
	int r = api_json(t, c, "POST", path, body, &a, on_stream_line, s, &err);
	json_decref(body);
	free(path);
	json_t *res = NULL;
	*final = json_object_get(s->last, key);
	if (r < 0) {
		res = transport_error(verb, c, &err);
	} else if (a.status != 200) {
		res = daemon_error(verb, &a);
	} else if (!*final) {
		const char *m = json_string_value(
		    json_object_get(json_object_get(s->last, "error"), "message"));
		res = mcp_tool_error("%s: %s", verb, m ? m : "the stream ended without a result");
	}
	answer_free(&a);
	return res;
}

/* ------------------------------------------------------------------ the tools */

static json_t *tool_sandbox_create(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	json_t *spec = json_object(), *limits = json_object();
	if (arg_str(args, "profile"))
		json_object_set(spec, "profile", json_object_get(args, "profile"));
	if (json_is_object(json_object_get(args, "network")))
		json_object_set(spec, "network", json_object_get(args, "network"));
	json_t *l = json_object_get(args, "limits");
	json_int_t mb = json_integer_value(json_object_get(l, "memory_mb"));
	if (mb > 0)
		json_object_set_new(limits, "max_memory_bytes", json_integer(mb << 20));
	long long cpu = seconds_ms(l, "cpu_time_s"), wall = seconds_ms(l, "timeout_s");
	if (cpu > 0)
		json_object_set_new(limits, "max_cpu_time_ms", json_integer(cpu));
	if (wall > 0)
		json_object_set_new(limits, "max_wall_time_ms", json_integer(wall));
	json_int_t procs = json_integer_value(json_object_get(l, "max_processes"));
	if (procs > 0)
		json_object_set_new(limits, "max_processes", json_integer(procs));
	if (json_object_size(limits))
		json_object_set(spec, "limits", limits);
	json_decref(limits);
	json_t *body = json_pack("{s:o}", "spec", spec);
	if (arg_str(args, "name"))
		json_object_set(body, "name", json_object_get(args, "name"));
	if (arg_str(args, "backend"))
		json_object_set(body, "backend", json_object_get(args, "backend"));
	json_int_t ttl = json_integer_value(json_object_get(args, "ttl_s"));
	if (ttl > 0)
		json_object_set_new(body, "ttl_ms", json_integer(ttl * 1000));
	struct api_answer a;
	agentd_error err = {0};
	int r = api_json(t, c, "POST", "/v1/sandboxes", body, &a, NULL, NULL, &err);
	json_decref(body);
	if (r < 0)
		return transport_error("sandbox_create", c, &err);
	json_t *res;
	if (a.status != 201) {
		res = daemon_error("sandbox_create", &a);
	} else {
		const char *id = json_string_value(json_object_get(a.json, "id"));
		if (!json_is_true(json_object_get(args, "keep"))) {
			pthread_mutex_lock(&t->lock);
			json_array_append_new(t->created, json_string(id));
			pthread_mutex_unlock(&t->lock);
		}
		json_t *name = json_object_get(a.json, "name");
		json_t *s = json_pack("{s:s, s:O, s:O, s:O, s:O}", "sandbox_id", id, "name",
				      name ? name : json_null(), "backend",
				      json_object_get(a.json, "backend"), "state",
				      json_object_get(a.json, "state"), "unenforced",
				      json_object_get(a.json, "unenforced"));
		res = mcp_tool_result(s, NULL);
	}
	answer_free(&a);
	return res;
}

/* How an exec ended, as the last line of its text: "killed: memory limit 256 MiB (exit
 * code 137)", "timed out after 5 s", "[exit code 3]". */
static char *exec_tail(struct mcp_tools *t, const char *sid, json_t *exit, long long timeout)
{
	long long code = json_integer_value(json_object_get(exit, "exit_code"));
	const char *hit = arg_str(exit, "limit_hit");
	if (hit) {
		_cleanup_free_ char *limit = limit_text(t, sid, hit);
		return xasprintf("killed: %s (exit code %lld)", limit, code);
	}
	if (json_is_true(json_object_get(exit, "timed_out")))
		return xasprintf(
		    "timed out after %g s",
		    (timeout ? timeout : json_integer_value(json_object_get(exit, "duration_ms"))) /
			1000.0);
	return xasprintf("[exit code %lld]", code);
}

static json_t *tool_exec(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	json_t *bad = NULL;
	const char *sid = sandbox_arg(args, &bad);
	json_t *argv = sid ? argv_arg(args, &bad) : NULL;
	long long timeout = seconds_ms(args, "timeout_s");
	if (!argv)
		return bad;
	if (timeout < 0) {
		json_decref(argv);
		return mcp_tool_error("timeout_s: expected a number of seconds > 0");
	}
	json_t *body = json_pack("{s:o, s:b}", "argv", argv, "stream", 1);
	copy_env_workdir(args, body);
	if (timeout)
		json_object_set_new(body, "timeout_ms", json_integer(timeout));
	const char *in = arg_str(args, "stdin");
	if (in) {
		char *b64 = base64_encode((const uint8_t *)in, strlen(in));
		json_object_set_new(body, "stdin", json_string(b64));
		free(b64);
	}
	struct stream_acc s = {.call = c};
	json_t *exit;
	json_t *res =
	    stream_post(t, c, "exec", path_of(sid, "/exec", NULL), body, &s, "exit", &exit);
	if (!res) {
		json_int_t code = json_integer_value(json_object_get(exit, "exit_code"));
		const char *hit = arg_str(exit, "limit_hit");
		bool timed_out = json_is_true(json_object_get(exit, "timed_out"));
		char *tail = exec_tail(t, sid, exit, timeout);
		char *text = output_text(&s, tail);
		if (hit || timed_out) {
			res = mcp_tool_error("%s", text);
		} else {
			json_t *st =
			    json_pack("{s:I, s:s, s:s, s:b, s:n, s:I}", "exit_code", code, "stdout",
				      s.out[0] ? s.out[0] : "", "stderr", s.out[1] ? s.out[1] : "",
				      "timed_out", 0, "limit_hit", "duration_ms",
				      json_integer_value(json_object_get(exit, "duration_ms")));
			res = mcp_tool_result(st, text);
		}
		free(text);
		free(tail);
	}
	acc_free(&s);
	return res;
}

/* The sandbox's context of language that is not gone, or a new one: its id (malloc'd). */
static char *context_for(struct mcp_tools *t, struct mcp_call *c, const char *sid,
			 const char *language, json_t **bad)
{
	char *path = xasprintf("/v1/sandboxes/%s/contexts", sid);
	struct api_answer a;
	agentd_error err = {0};
	char *cid = NULL;
	if (api_json(t, c, "GET", path, NULL, &a, NULL, NULL, &err) < 0) {
		*bad = transport_error("run_code", c, &err);
		goto out;
	}
	if (a.status != 200) {
		*bad = daemon_error("run_code", &a);
		goto out;
	}
	size_t i;
	json_t *ctx;
	json_array_foreach(json_object_get(a.json, "contexts"), i, ctx)
	{
		const char *st = arg_str(ctx, "state");
		if (!strcmp(arg_str(ctx, "language") ?: "", language) && st && strcmp(st, "gone") &&
		    !json_is_string(json_object_get(ctx, "session"))) {
			cid = xstrdup(arg_str(ctx, "id"));
			goto out;
		}
	}
	answer_free(&a);
	json_t *body = json_pack("{s:s}", "language", language);
	int r = api_json(t, c, "POST", path, body, &a, NULL, NULL, &err);
	json_decref(body);
	if (r < 0)
		*bad = transport_error("run_code: start the interpreter", c, &err);
	else if (a.status != 201)
		*bad = daemon_error("run_code: start the interpreter", &a);
	else
		cid = xstrdup(arg_str(a.json, "id"));
out:
	answer_free(&a);
	free(path);
	return cid;
}

/* A cell's outcome as a tool error, with what it printed. */
static json_t *cell_error(struct mcp_tools *t, const char *sid, const struct stream_acc *s,
			  json_t *run, long long timeout)
{
	const char *status = arg_str(run, "status") ?: "error";
	json_t *e = json_object_get(run, "error");
	char *tail;
	if (!strcmp(status, "timeout")) {
		tail = timeout ? xasprintf("timed out after %g s (the context keeps its state)",
					   timeout / 1000.0)
			       : xasprintf("timed out after %g s (the context keeps its state)",
					   json_integer_value(json_object_get(run, "duration_ms")) /
					       1000.0);
	} else if (!strcmp(status, "killed")) {
		const char *why = arg_str(e, "value") ?: "";
		const char *hit = strstr(why, "memory") ? "memory"
				  : strstr(why, "pids") ? "pids"
							: NULL;
		_cleanup_free_ char *lim = hit ? limit_text(t, sid, hit) : NULL;
		tail = xasprintf("killed: %s%s%s (the context is gone: the next run_code starts a "
				 "new one)",
				 lim ? lim : why, lim && *why ? ": " : "", lim ? why : "");
	} else {
		const char *tb = arg_str(e, "traceback");
		tail = xasprintf("%s: %s%s%s", arg_str(e, "name") ?: "error",
				 arg_str(e, "value") ?: "",
				 tb && *tb && !strstr(s->out[1] ?: "", tb) ? "\n" : "",
				 tb && !strstr(s->out[1] ?: "", tb) ? tb : "");
	}
	char *text = output_text(s, tail);
	json_t *res = mcp_tool_error("%s", text);
	free(text);
	free(tail);
	return res;
}

static json_t *tool_run_code(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	json_t *bad = NULL;
	const char *sid = sandbox_arg(args, &bad);
	const char *language = arg_str(args, "language"), *code = arg_str(args, "code");
	long long timeout = seconds_ms(args, "timeout_s");
	if (!sid)
		return bad;
	if (!language ||
	    (strcmp(language, "python") && strcmp(language, "node") && strcmp(language, "bash")))
		return mcp_tool_error("language: expected python, node or bash");
	if (!code)
		return mcp_tool_error("code: required (the code to run, a string)");
	if (timeout < 0)
		return mcp_tool_error("timeout_s: expected a number of seconds > 0");
	_cleanup_free_ char *cid = context_for(t, c, sid, language, &bad);
	if (!cid)
		return bad;
	json_t *body = json_pack("{s:s, s:b}", "code", code, "stream", 1);
	if (timeout)
		json_object_set_new(body, "timeout_ms", json_integer(timeout));
	struct stream_acc s = {.call = c};
	json_t *run;
	json_t *res =
	    stream_post(t, c, "run_code", xasprintf("/v1/sandboxes/%s/contexts/%s/run", sid, cid),
			body, &s, "done", &run);
	if (!res && strcmp(arg_str(run, "status") ?: "", "ok")) {
		res = cell_error(t, sid, &s, run, timeout);
	} else if (!res) {
		const char *value = arg_str(json_object_get(run, "result"), "text/plain");
		char *text = output_text(&s, value ? value : "");
		json_t *st = json_pack("{s:s, s:s, s:s, s:s?, s:n, s:I, s:s}", "status", "ok",
				       "stdout", s.out[0] ?: "", "stderr", s.out[1] ?: "", "result",
				       value, "error", "duration_ms",
				       json_integer_value(json_object_get(run, "duration_ms")),
				       "context_id", cid);
		if (!value)
			json_object_set_new(st, "result", json_null());
		res = mcp_tool_result(st, text);
		free(text);
	}
	acc_free(&s);
	return res;
}

/* A call whose answer is the tool's structured result as the daemon gave it. */
static json_t *plain_call(struct mcp_tools *t, struct mcp_call *c, const char *verb,
			  const char *method, const char *path, json_t *body, int ok)
{
	struct api_answer a;
	agentd_error err = {0};
	if (api_json(t, c, method, path, body, &a, NULL, NULL, &err) < 0)
		return transport_error(verb, c, &err);
	json_t *res = a.status == ok && json_is_object(a.json)
			  ? mcp_tool_result(json_incref(a.json), NULL)
			  : daemon_error(verb, &a);
	answer_free(&a);
	return res;
}

/* plain_call of the sandbox's route; takes body (may be NULL). */
static json_t *sandbox_call(struct mcp_tools *t, struct mcp_call *c, const char *verb,
			    const char *method, const char *sid, const char *route, json_t *body,
			    int ok)
{
	_cleanup_free_ char *path = path_of(sid, route, NULL);
	json_t *res = plain_call(t, c, verb, method, path, body, ok);
	json_decref(body);
	return res;
}

/* The sandbox_id and the required string argument key (described by what for the model):
 * the id, or NULL with *bad set. */
static const char *sandbox_and(json_t *args, const char *key, const char *what, const char **val,
			       json_t **bad)
{
	const char *sid = sandbox_arg(args, bad);
	*val = arg_str(args, key);
	if (sid && !*val) {
		*bad = mcp_tool_error("%s: required (%s)", key, what);
		return NULL;
	}
	return sid;
}

static json_t *tool_read_file(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	json_t *bad = NULL;
	const char *p;
	const char *sid = sandbox_and(args, "path", "an absolute path in the sandbox", &p, &bad);
	if (!sid)
		return bad;
	json_int_t max = json_integer_value(json_object_get(args, "max_bytes"));
	if (max <= 0)
		max = 1 << 20;
	_cleanup_free_ char *path = path_of(sid, "/files?path=", p);
	struct api_answer a;
	agentd_error err = {0};
	if (api(t, c, "GET", path, NULL, NULL, 0, &a, NULL, NULL, &err) < 0)
		return transport_error("read_file", c, &err);
	json_t *res;
	if (a.status != 200) {
		a.json = json_loadb(a.raw.body ?: "", a.raw.len, 0, NULL);
		res = daemon_error("read_file", &a);
	} else {
		size_t n = a.raw.len > (size_t)max ? (size_t)max : a.raw.len;
		while (n < a.raw.len && n > 0 && utf8_incomplete_tail((uint8_t *)a.raw.body, n))
			n--;
		bool text = utf8_valid((uint8_t *)a.raw.body, n) && !memchr(a.raw.body, 0, n);
		char *content = text ? xasprintf("%.*s", (int)n, a.raw.body)
				     : base64_encode((uint8_t *)a.raw.body, n);
		json_t *st = json_pack("{s:s, s:I, s:s, s:s, s:b}", "path", p, "size",
				       (json_int_t)a.raw.len, "content", content, "encoding",
				       text ? "utf-8" : "base64", "truncated", n < a.raw.len);
		res = text ? mcp_tool_result(st, content) : mcp_tool_result(st, NULL);
		free(content);
	}
	answer_free(&a);
	return res;
}

static json_t *tool_write_file(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	json_t *bad = NULL;
	const char *sid = sandbox_arg(args, &bad), *p = arg_str(args, "path");
	const char *content = arg_str(args, "content"), *enc = arg_str(args, "encoding");
	if (!sid)
		return bad;
	if (!p || !content)
		return mcp_tool_error("path and content are required (strings)");
	uint8_t *data = NULL;
	size_t len = json_string_length(json_object_get(args, "content"));
	if (enc && !strcmp(enc, "base64")) {
		if (base64_decode(content, len, &data, &len) < 0)
			return mcp_tool_error("content: not valid base64");
	} else if (enc && strcmp(enc, "utf-8")) {
		return mcp_tool_error("encoding: expected utf-8 or base64");
	}
	_cleanup_free_ char *path = path_of(sid, "/files?parents=1&path=", p);
	struct api_answer a;
	agentd_error err = {0};
	int r = api(t, c, "PUT", path, "application/octet-stream", data ? data : (void *)content,
		    len, &a, NULL, NULL, &err);
	free(data);
	if (r < 0)
		return transport_error("write_file", c, &err);
	if (!a.json)
		a.json = json_loadb(a.raw.body ?: "", a.raw.len, 0, NULL);
	json_t *res = a.status == 200 ? mcp_tool_result(json_incref(a.json), NULL)
				      : daemon_error("write_file", &a);
	answer_free(&a);
	return res;
}

static json_t *tool_list_files(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	json_t *bad = NULL;
	const char *sid = sandbox_arg(args, &bad), *p = arg_str(args, "path");
	if (!sid)
		return bad;
	_cleanup_free_ char *path = path_of(sid, "/files/list?path=", p ?: "/");
	return plain_call(t, c, "list_files", "GET", path, NULL, 200);
}

static json_t *tool_process_start(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	json_t *bad = NULL;
	const char *sid = sandbox_arg(args, &bad);
	json_t *argv = sid ? argv_arg(args, &bad) : NULL;
	if (!argv)
		return bad;
	json_t *body = json_pack("{s:o}", "argv", argv);
	copy_env_workdir(args, body);
	return sandbox_call(t, c, "process_start", "POST", sid, "/processes", body, 201);
}

static void on_output_line(void *ud, const char *line, size_t len)
{
	struct stream_acc *s = ud;
	json_t *j = json_loadb(line, len, 0, NULL);
	const char *stream = arg_str(j, "stream"), *data = arg_str(j, "data");
	if (stream && data) {
		int which = !strcmp(stream, "stderr");
		size_t n = json_string_length(json_object_get(j, "data")), bytes = n;
		char *text = arg_str(j, "encoding") ? lossy_text(data, &n, &bytes) : NULL;
		acc_append(s, which, text ? text : data, n);
		free(text);
		/* the next offset to ask (in bytes of the stream), kept in the last line */
		json_int_t next =
		    json_integer_value(json_object_get(j, "offset")) + (json_int_t)bytes;
		if (!s->last)
			s->last = json_object();
		json_object_set_new(s->last, which ? "stderr" : "stdout", json_integer(next));
	}
	json_decref(j);
}

static json_t *tool_process_read(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	json_t *bad = NULL;
	const char *sid = sandbox_arg(args, &bad), *stream = arg_str(args, "stream") ?: "both";
	json_t *pidj = json_object_get(args, "pid");
	if (!sid)
		return bad;
	if (!json_is_integer(pidj) || json_integer_value(pidj) < 1)
		return mcp_tool_error("pid: required (the pid process_start returned)");
	long long pid = json_integer_value(pidj);
	json_int_t offset = json_integer_value(json_object_get(args, "offset"));
	char *path =
	    xasprintf("/v1/sandboxes/%s/processes/%lld/output?offset=%lld&stream=%s", sid, pid,
		      (long long)(offset > 0 ? offset : 0),
		      !strcmp(stream, "stdout") || !strcmp(stream, "stderr") ? stream : "both");
	struct stream_acc s = {.call = c};
	struct api_answer a;
	agentd_error err = {0};
	int r = api(t, c, "GET", path, NULL, NULL, 0, &a, on_output_line, &s, &err);
	free(path);
	json_t *res;
	if (r < 0) {
		res = transport_error("process_read", c, &err);
	} else if (a.status != 200) {
		a.json = json_loadb(a.raw.body ?: "", a.raw.len, 0, NULL);
		res = daemon_error("process_read", &a);
	} else {
		answer_free(&a);
		path = xasprintf("/v1/sandboxes/%s/processes/%lld", sid, pid);
		r = api_json(t, c, "GET", path, NULL, &a, NULL, NULL, &err);
		free(path);
		json_t *ec = json_object_get(a.json, "exit_code");
		json_int_t o = offset > 0 ? offset : 0;
		json_t *st =
		    json_pack("{s:I, s:s, s:O, s:s, s:s, s:I, s:I}", "pid", (json_int_t)pid,
			      "state", arg_str(a.json, "state") ?: "unknown", "exit_code",
			      json_is_integer(ec) ? ec : json_null(), "stdout", s.out[0] ?: "",
			      "stderr", s.out[1] ?: "", "stdout_next_offset",
			      json_integer_value(json_object_get(s.last, "stdout")) ?: o,
			      "stderr_next_offset",
			      json_integer_value(json_object_get(s.last, "stderr")) ?: o);
		char *tail = xasprintf("[process %lld: %s]", pid, arg_str(st, "state"));
		char *text = output_text(&s, tail);
		res = mcp_tool_result(st, text);
		free(text);
		free(tail);
	}
	acc_free(&s);
	answer_free(&a);
	return res;
}

static json_t *tool_port_open(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	json_t *bad = NULL;
	const char *sid = sandbox_arg(args, &bad);
	json_t *port = json_object_get(args, "port");
	if (!sid)
		return bad;
	if (!json_is_integer(port))
		return mcp_tool_error("port: required (the TCP port the server listens on)");
	return sandbox_call(t, c, "port_open", "POST", sid, "/ports",
			    json_pack("{s:O}", "port", port), 201);
}

static json_t *tool_snapshot(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	json_t *bad = NULL;
	const char *sid = sandbox_arg(args, &bad);
	if (!sid)
		return bad;
	json_t *body = json_object();
	if (arg_str(args, "name"))
		json_object_set(body, "name", json_object_get(args, "name"));
	return sandbox_call(t, c, "snapshot", "POST", sid, "/snapshots", body, 201);
}

static json_t *tool_restore(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	json_t *bad = NULL;
	const char *snap;
	const char *sid =
	    sandbox_and(args, "snapshot_id", "the id or name snapshot returned", &snap, &bad);
	if (!sid)
		return bad;
	return sandbox_call(t, c, "restore", "POST", sid, "/restore",
			    json_pack("{s:s}", "snapshot_id", snap), 200);
}

static void forget_created(struct mcp_tools *t, const char *id)
{
	pthread_mutex_lock(&t->lock);
	size_t i;
	json_t *v;
	json_array_foreach(t->created, i, v) if (!strcmp(json_string_value(v), id))
	{
		json_array_remove(t->created, i);
		break;
	}
	pthread_mutex_unlock(&t->lock);
}

static json_t *tool_sandbox_destroy(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	json_t *bad = NULL;
	const char *sid = sandbox_arg(args, &bad);
	if (!sid)
		return bad;
	json_t *res = sandbox_call(t, c, "sandbox_destroy", "DELETE", sid, "", NULL, 200);
	const char *id = arg_str(json_object_get(res, "structuredContent"), "id");
	if (id)
		forget_created(t, id);
	return res;
}

static json_t *tool_sandbox_list(struct mcp_tools *t, struct mcp_call *c, json_t *args)
{
	(void)args;
	return plain_call(t, c, "sandbox_list", "GET", "/v1/sandboxes", NULL, 200);
}

static const struct {
	const char *name;
	json_t *(*fn)(struct mcp_tools *, struct mcp_call *, json_t *);
} handlers[] = {
    {"sandbox_create", tool_sandbox_create},
    {"run_code", tool_run_code},
    {"exec", tool_exec},
    {"read_file", tool_read_file},
    {"write_file", tool_write_file},
    {"list_files", tool_list_files},
    {"process_start", tool_process_start},
    {"process_read", tool_process_read},
    {"port_open", tool_port_open},
    {"snapshot", tool_snapshot},
    {"restore", tool_restore},
    {"sandbox_destroy", tool_sandbox_destroy},
    {"sandbox_list", tool_sandbox_list},
};

json_t *mcp_tools_call(struct mcp_call *c, const char *name, json_t *args, void *tools)
{
	for (size_t i = 0; i < ARRAY_SIZE(handlers); i++)
		if (!strcmp(handlers[i].name, name))
			return handlers[i].fn(tools, c, args);
	return mcp_tool_error("unknown tool %s", name);
}

int mcp_tools_init(struct mcp_tools *t, const char *socket, agentd_error *err)
{
	(void)err;
	memset(t, 0, sizeof(*t));
	t->socket = xstrdup(socket);
	t->list = mcp_tools_list();
	t->created = json_array();
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

void mcp_tools_cleanup(struct mcp_tools *t)
{
	pthread_mutex_lock(&t->lock);
	json_t *ids = t->created;
	t->created = json_array();
	pthread_mutex_unlock(&t->lock);
	size_t i;
	json_t *v;
	json_array_foreach(ids, i, v)
	{
		char *path = xasprintf("/v1/sandboxes/%s", json_string_value(v));
		struct api_answer a;
		agentd_error err = {0};
		if (api_json(t, NULL, "DELETE", path, NULL, &a, NULL, NULL, &err) < 0)
			print_error("mcp: destroy sandbox %s at session end: %s",
				    json_string_value(v), err.msg);
		answer_free(&a);
		free(path);
	}
	json_decref(ids);
}

void mcp_tools_free(struct mcp_tools *t)
{
	free(t->socket);
	json_decref(t->list);
	json_decref(t->created);
	pthread_mutex_destroy(&t->lock);
}

void mcp_cancel_call(struct mcp_call *c, void *tools)
{
	(void)tools;
	pthread_mutex_lock(&c->lock);
	if (c->cancel_fd >= 0)
		shutdown(c->cancel_fd, SHUT_RDWR);
	pthread_mutex_unlock(&c->lock);
}
