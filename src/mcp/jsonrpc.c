/* jsonrpc.c: the MCP server's JSON-RPC 2.0 reader and dispatcher — bounds (size, nesting,
 * batch length, calls in flight), version negotiation, initialize, ping, tools/list,
 * tools/call, cancellation, progress. No I/O: the transports feed it messages and send what
 * it returns, the tools are behind mcp_ops (fuzz/fuzz_jsonrpc.c drives it as it is). */
#include "mcp/mcp.h"

#include <stdarg.h>

static const char *const protocols[] = {"2025-06-18", "2025-03-26"};

static json_t *rpc_error(json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static json_t *rpc_error(json_t *id, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* the parser's message quotes the client's bytes: what is not UTF-8 becomes '?', or
	 * the error could not be sent at all */
	size_t n = strlen(msg);
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		int l = utf8_next((const uint8_t *)msg + i, n - i, &cp);
		if (l <= 0) {
			msg[i++] = '?';
			continue;
		}
		i += (size_t)l;
	}
	return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
			 "error", "code", code, "message", msg);
}

static json_t *rpc_result(json_t *id, json_t *result)
{
	return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

void mcp_session_init(struct mcp_session *s, const struct mcp_ops *ops, const json_t *tools)
{
	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->tools = tools;
	s->max_calls = MCP_MAX_CALLS;
	pthread_mutex_init(&s->lock, NULL);
}

void mcp_session_destroy(struct mcp_session *s)
{
	json_decref(s->client_info);
	pthread_mutex_destroy(&s->lock);
}

/* Deepest nesting of arrays and objects in buf, counted outside strings; stops past max. */
static unsigned nesting(const char *buf, size_t len, unsigned max)
{
	unsigned depth = 0, deepest = 0;
	bool in_string = false, escaped = false;
	for (size_t i = 0; i < len && deepest <= max; i++) {
		char ch = buf[i];
		if (in_string) {
			if (escaped)
				escaped = false;
			else if (ch == '\\')
				escaped = true;
			else if (ch == '"')
				in_string = false;
		} else if (ch == '"') {
			in_string = true;
		} else if (ch == '[' || ch == '{') {
			if (++depth > deepest)
				deepest = depth;
		} else if ((ch == ']' || ch == '}') && depth) {
			depth--;
		}
	}
	return deepest;
}

json_t *mcp_parse(const char *buf, size_t len, json_t **reply)
{
	*reply = NULL;
	if (len > MCP_MAX_MESSAGE) {
		*reply = rpc_error(NULL, JSONRPC_INVALID_REQUEST,
				   "message of %zu bytes is over the limit of %u bytes", len,
				   MCP_MAX_MESSAGE);
		return NULL;
	}
	if (nesting(buf, len, MCP_MAX_DEPTH) > MCP_MAX_DEPTH) {
		*reply =
		    rpc_error(NULL, JSONRPC_INVALID_REQUEST,
			      "message nested deeper than %u arrays or objects", MCP_MAX_DEPTH);
		return NULL;
	}
	json_error_t je;
	json_t *msg = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!msg)
		*reply = rpc_error(NULL, JSONRPC_PARSE_ERROR, "parse error: %s (line %d column %d)",
				   je.text, je.line, je.column);
	return msg;
}

static bool is_call(const json_t *m)
{
	const char *method = json_string_value(json_object_get(m, "method"));
	return method && !strcmp(method, "tools/call");
}

bool mcp_message_blocks(const json_t *msg)
{
	if (!json_is_array(msg))
		return is_call(msg);
	size_t i;
	const json_t *m;
	json_array_foreach(msg, i, m) if (is_call(m)) return true;
	return false;
}

static json_t *initialize(struct mcp_session *s, json_t *id, json_t *params)
{
	const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
	if (!asked)
		return rpc_error(id, JSONRPC_INVALID_PARAMS,
				 "initialize: protocolVersion: expected "
				 "a string");
	/* the client's version when we speak it, else our latest: the client decides */
	const char *v = protocols[0];
	for (size_t i = 0; i < ARRAY_SIZE(protocols); i++)
		if (!strcmp(asked, protocols[i]))
			v = protocols[i];
	pthread_mutex_lock(&s->lock);
	snprintf(s->protocol, sizeof(s->protocol), "%s", v);
	json_decref(s->client_info);
	s->client_info = json_incref(json_object_get(params, "clientInfo"));
	pthread_mutex_unlock(&s->lock);
	return rpc_result(
	    id, json_pack(
		    "{s:s, s:{s:{s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion", v,
		    "capabilities", "tools", "listChanged", 0, "serverInfo", "name", "agentd",
		    "title", "agentd sandboxes", "version", AGENTD_VERSION, "instructions",
		    "Run untrusted code in agentd sandboxes: sandbox_create first (it returns "
		    "sandbox_id), then run_code, exec, the file and process tools on that id; "
		    "sandbox_destroy when done (sandboxes this session created are destroyed when "
		    "it ends unless created with keep: true)."));
}

static struct mcp_call *call_new(struct mcp_session *s, json_t *id, json_t *params, void *transport)
{
	struct mcp_call *c = xcalloc(1, sizeof(*c));
	c->session = s;
	c->id = json_incref(id);
	json_t *tok = json_object_get(json_object_get(params, "_meta"), "progressToken");
	if (json_is_string(tok) || json_is_integer(tok))
		c->progress_token = json_incref(tok);
	c->transport = transport;
	c->cancel_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	atomic_init(&c->cancelled, false);
	return c;
}

static void call_free(struct mcp_call *c)
{
	json_decref(c->id);
	json_decref(c->progress_token);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static bool tool_known(const struct mcp_session *s, const char *name)
{
	size_t i;
	const json_t *t;
	json_array_foreach(
	    s->tools, i,
	    t) if (!strcmp(json_string_value(json_object_get(t, "name")), name)) return true;
	return false;
}

static json_t *tools_call(struct mcp_session *s, json_t *id, json_t *params, void *transport)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	json_t *args = json_object_get(params, "arguments");
	if (!name)
		return rpc_error(id, JSONRPC_INVALID_PARAMS, "tools/call: name: expected a string");
	if (args && !json_is_object(args))
		return rpc_error(id, JSONRPC_INVALID_PARAMS,
				 "tools/call: arguments: expected an "
				 "object");
	if (!tool_known(s, name))
		return rpc_error(id, JSONRPC_INVALID_PARAMS,
				 "unknown tool: %.100s (tools/list "
				 "names them)",
				 name);
	pthread_mutex_lock(&s->lock);
	if (s->n_calls >= s->max_calls) {
		pthread_mutex_unlock(&s->lock);
		return rpc_result(id, mcp_tool_error("busy: %u tool calls of this session are "
						     "running already (the limit); wait for one "
						     "to finish",
						     s->max_calls));
	}
	struct mcp_call *c = call_new(s, id, params, transport);
	c->next = s->calls;
	s->calls = c;
	s->n_calls++;
	pthread_mutex_unlock(&s->lock);

	json_t *empty = args ? NULL : json_object();
	json_t *res = s->ops->call_tool(c, name, args ? args : empty, s->ops->ud);
	json_decref(empty);

	pthread_mutex_lock(&s->lock);
	for (struct mcp_call **p = &s->calls; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	s->n_calls--;
	pthread_mutex_unlock(&s->lock);
	bool cancelled = atomic_load(&c->cancelled);
	call_free(c);
	if (!res)
		res = mcp_tool_error("internal: the tool gave no result");
	if (cancelled) { /* the client forgot the request: no answer */
		json_decref(res);
		return NULL;
	}
	return rpc_result(id, res);
}

static void cancel_request(struct mcp_session *s, const json_t *request_id)
{
	pthread_mutex_lock(&s->lock);
	for (struct mcp_call *c = s->calls; c; c = c->next)
		if (json_equal(c->id, (json_t *)request_id)) {
			atomic_store(&c->cancelled, true);
			if (s->ops->cancel)
				s->ops->cancel(c, s->ops->ud);
		}
	pthread_mutex_unlock(&s->lock);
}

void mcp_session_cancel_all(struct mcp_session *s)
{
	pthread_mutex_lock(&s->lock);
	for (struct mcp_call *c = s->calls; c; c = c->next) {
		atomic_store(&c->cancelled, true);
		if (s->ops->cancel)
			s->ops->cancel(c, s->ops->ud);
	}
	pthread_mutex_unlock(&s->lock);
}

static json_t *notification(struct mcp_session *s, const char *method, json_t *params)
{
	if (!strcmp(method, "notifications/initialized")) {
		pthread_mutex_lock(&s->lock);
		s->initialized = true;
		pthread_mutex_unlock(&s->lock);
	} else if (!strcmp(method, "notifications/cancelled")) {
		json_t *rid = json_object_get(params, "requestId");
		if (rid)
			cancel_request(s, rid);
	}
	return NULL; /* others (notifications/progress of ours, roots...) need nothing */
}

static json_t *request(struct mcp_session *s, const char *method, json_t *id, json_t *params,
		       void *transport)
{
	if (!strcmp(method, "initialize"))
		return initialize(s, id, params);
	if (!strcmp(method, "ping"))
		return rpc_result(id, json_object());
	if (!strcmp(method, "tools/list"))
		return rpc_result(id, json_pack("{s:O}", "tools", (json_t *)s->tools));
	if (!strcmp(method, "tools/call"))
		return tools_call(s, id, params, transport);
	return rpc_error(id, JSONRPC_METHOD_NOT_FOUND,
			 "method not found: %.100s (agentd mcp "
			 "serves initialize, ping, tools/list, tools/call)",
			 method);
}

static json_t *handle_one(struct mcp_session *s, json_t *m, void *transport)
{
	if (!json_is_object(m))
		return rpc_error(NULL, JSONRPC_INVALID_REQUEST, "a message must be a JSON object");
	json_t *id = json_object_get(m, "id");
	if (id && !json_is_string(id) && !json_is_integer(id))
		return rpc_error(NULL, JSONRPC_INVALID_REQUEST,
				 "id: expected a string or an "
				 "integer");
	const char *v = json_string_value(json_object_get(m, "jsonrpc"));
	if (!v || strcmp(v, "2.0"))
		return rpc_error(id, JSONRPC_INVALID_REQUEST, "jsonrpc: expected \"2.0\"");
	json_t *method = json_object_get(m, "method");
	if (!method) {
		if (id && (json_object_get(m, "result") || json_object_get(m, "error")))
			return NULL; /* a response: we send no requests, nothing waits for it */
		return rpc_error(id, JSONRPC_INVALID_REQUEST, "method: required");
	}
	if (!json_is_string(method))
		return rpc_error(id, JSONRPC_INVALID_REQUEST, "method: expected a string");
	json_t *params = json_object_get(m, "params");
	if (params && !json_is_object(params))
		return rpc_error(id, JSONRPC_INVALID_REQUEST, "params: expected an object");
	if (!id)
		return notification(s, json_string_value(method), params);
	return request(s, json_string_value(method), id, params, transport);
}

json_t *mcp_dispatch(struct mcp_session *s, json_t *msg, void *transport)
{
	if (!json_is_array(msg))
		return handle_one(s, msg, transport);
	pthread_mutex_lock(&s->lock);
	bool batches = !strcmp(s->protocol, "2025-03-26");
	char proto[sizeof(s->protocol)];
	memcpy(proto, s->protocol, sizeof(proto));
	pthread_mutex_unlock(&s->lock);
	if (!batches)
		return rpc_error(NULL, JSONRPC_INVALID_REQUEST,
				 "batches are not supported by "
				 "protocol version %s (only by 2025-03-26)",
				 proto[0] ? proto : "(not initialized)");
	if (json_array_size(msg) == 0)
		return rpc_error(NULL, JSONRPC_INVALID_REQUEST, "empty batch");
	if (json_array_size(msg) > MCP_MAX_BATCH)
		return rpc_error(NULL, JSONRPC_INVALID_REQUEST,
				 "batch of %zu messages is over the "
				 "limit of %u",
				 json_array_size(msg), MCP_MAX_BATCH);
	json_t *replies = json_array();
	size_t i;
	json_t *m;
	json_array_foreach(msg, i, m)
	{
		const char *method = json_string_value(json_object_get(m, "method"));
		json_t *r = method && !strcmp(method, "initialize")
				? rpc_error(json_object_get(m, "id"), JSONRPC_INVALID_REQUEST,
					    "initialize cannot be part of a batch")
				: handle_one(s, m, transport);
		if (r)
			json_array_append_new(replies, r);
	}
	if (json_array_size(replies) == 0) {
		json_decref(replies);
		return NULL;
	}
	return replies;
}

void mcp_progress(struct mcp_call *c, const char *message)
{
	if (!c->progress_token || atomic_load(&c->cancelled) || !c->session->ops->notify)
		return;
	pthread_mutex_lock(&c->lock);
	c->progress += 1;
	json_t *n = json_pack("{s:s, s:s, s:{s:O, s:f, s:s}}", "jsonrpc", "2.0", "method",
			      "notifications/progress", "params", "progressToken",
			      c->progress_token, "progress", c->progress, "message", message);
	pthread_mutex_unlock(&c->lock);
	if (n)
		c->session->ops->notify(c, n, c->session->ops->ud);
	json_decref(n);
}

json_t *mcp_tool_error(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", msg, "isError",
			 1);
}

json_t *mcp_tool_result(json_t *structured, const char *text)
{
	char *dump = text ? NULL : json_dumps(structured, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_t *r = json_pack("{s:[{s:s, s:s}], s:o, s:b}", "content", "type", "text", "text",
			      text   ? text
			      : dump ? dump
				     : "",
			      "structuredContent", structured, "isError", 0);
	free(dump);
	return r;
}

char *mcp_frame(const json_t *msg)
{
	/* ASCII only: U+2028 and U+2029, which some JSON readers take for line ends, and any
	 * other character a sandbox printed travel as \uXXXX */
	char *s = json_dumps(msg, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	s = xrealloc(s, n + 2);
	memcpy(s + n, "\n", 2);
	return s;
}
