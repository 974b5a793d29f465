/* mcp_http.c: the MCP server's Streamable HTTP transport (protocol 2025-06-18, 2025-03-26):
 * POST /mcp of JSON-RPC, answered as application/json or, for tool calls when the client
 * accepts it, as a text/event-stream carrying progress then the result; sessions by
 * Mcp-Session-Id (DELETE ends one; idle ones expire), MCP-Protocol-Version checked. Served
 * by `agentd mcp --listen` (bearer token) and by `agentd serve` at /mcp. */
#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <poll.h>
#include <strings.h>

#define SESSION_IDLE_MS (30 * 60 * 1000)
#define MAX_SESSIONS 256

struct http_session {
	char id[33];
	struct mcp_session session;
	struct mcp_tools tools;
	struct mcp_ops ops;
	int64_t last_ms;
	unsigned users; /* requests using it now */
	bool ended;
	struct http_session *next;
};

static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;
static struct http_session *sessions;

/* An SSE answer being written: events queued by the call's thread, read by libmicrohttpd's. */
struct sse {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *buf;
	size_t len, off;
	bool done, gone;
	unsigned refs;
	struct http_session *hs;
	json_t *msg;
};

static void sse_unref(struct sse *s)
{
	pthread_mutex_lock(&s->lock);
	bool last = --s->refs == 0;
	pthread_mutex_unlock(&s->lock);
	if (!last)
		return;
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	json_decref(s->msg);
	free(s->buf);
	free(s);
}

static void sse_push(struct sse *s, json_t *msg)
{
	char *j = json_dumps(msg, JSON_COMPACT);
	if (!j)
		return;
	char *ev = xasprintf("event: message\ndata: %s\n\n", j);
	free(j);
	pthread_mutex_lock(&s->lock);
	size_t n = strlen(ev);
	s->buf = xrealloc(s->buf, s->len + n + 1);
	memcpy(s->buf + s->len, ev, n);
	s->len += n;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	free(ev);
}

static void http_notify(struct mcp_call *c, json_t *msg, void *ud)
{
	(void)ud;
	if (c->transport)
		sse_push(c->transport, msg);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
	(void)pos;
	struct sse *s = cls;
	pthread_mutex_lock(&s->lock);
	while (s->off == s->len && !s->done)
		pthread_cond_wait(&s->cond, &s->lock);
	ssize_t n;
	if (s->off == s->len) {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		n = (ssize_t)(s->len - s->off < max ? s->len - s->off : max);
		memcpy(out, s->buf + s->off, (size_t)n);
		s->off += (size_t)n;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void session_release(struct http_session *hs);

/* The client went away before the end: its calls on this stream are cancelled. */
static void sse_free(void *cls)
{
	struct sse *s = cls;
	/* under the stream's lock: the worker cannot end (and release the session) meanwhile */
	pthread_mutex_lock(&s->lock);
	s->gone = true;
	if (!s->done) {
		pthread_mutex_lock(&s->hs->session.lock);
		for (struct mcp_call *c = s->hs->session.calls; c; c = c->next)
			if (c->transport == s) {
				atomic_store(&c->cancelled, true);
				mcp_cancel_call(c, NULL);
			}
		pthread_mutex_unlock(&s->hs->session.lock);
	}
	pthread_mutex_unlock(&s->lock);
	sse_unref(s);
}

static void *sse_worker(void *arg)
{
	struct sse *s = arg;
	json_t *reply = mcp_dispatch(&s->hs->session, s->msg, s);
	if (reply)
		sse_push(s, reply);
	json_decref(reply);
	pthread_mutex_lock(&s->lock);
	s->done = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	session_release(s->hs);
	sse_unref(s);
	return NULL;
}

/* ------------------------------------------------------------------ sessions */

static void session_end(struct http_session *hs)
{
	mcp_session_cancel_all(&hs->session);
}

static void session_free(struct http_session *hs)
{
	mcp_tools_cleanup(&hs->tools);
	mcp_session_destroy(&hs->session);
	mcp_tools_free(&hs->tools);
	free(hs);
}

static void session_release(struct http_session *hs)
{
	pthread_mutex_lock(&sessions_lock);
	hs->last_ms = (int64_t)now_ms_monotonic();
	bool last = --hs->users == 0 && hs->ended;
	pthread_mutex_unlock(&sessions_lock);
	if (last)
		session_free(hs);
}

/* Unlink the sessions idle past their time (and all when all): ended, freed when unused. */
static void sessions_sweep(bool all)
{
	struct http_session *gone = NULL;
	pthread_mutex_lock(&sessions_lock);
	int64_t now = (int64_t)now_ms_monotonic();
	for (struct http_session **p = &sessions; *p;) {
		struct http_session *hs = *p;
		if (all || (!hs->users && now - hs->last_ms > SESSION_IDLE_MS)) {
			*p = hs->next;
			hs->ended = true;
			hs->next = gone;
			gone = hs;
		} else {
			p = &hs->next;
		}
	}
	pthread_mutex_unlock(&sessions_lock);
	while (gone) {
		struct http_session *hs = gone;
		gone = hs->next;
		session_end(hs);
		pthread_mutex_lock(&sessions_lock);
		bool unused = hs->users == 0;
		pthread_mutex_unlock(&sessions_lock);
		if (unused)
			session_free(hs);
	}
}

static struct http_session *session_new(const char *socket)
{
	struct http_session *hs = xcalloc(1, sizeof(*hs));
	agentd_error err = {0};
	mcp_tools_init(&hs->tools, socket, &err);
	hs->ops = (struct mcp_ops){.call_tool = mcp_tools_call,
				   .notify = http_notify,
				   .cancel = mcp_cancel_call,
				   .ud = &hs->tools};
	mcp_session_init(&hs->session, &hs->ops, hs->tools.list);
	random_id(hs->id);
	hs->users = 1;
	hs->last_ms = (int64_t)now_ms_monotonic();
	return hs;
}

static bool session_add(struct http_session *hs)
{
	pthread_mutex_lock(&sessions_lock);
	unsigned n = 0;
	for (struct http_session *s = sessions; s; s = s->next)
		n++;
	bool ok = n < MAX_SESSIONS;
	if (ok) {
		hs->next = sessions;
		sessions = hs;
	}
	pthread_mutex_unlock(&sessions_lock);
	return ok;
}

static struct http_session *session_get(const char *id)
{
	pthread_mutex_lock(&sessions_lock);
	struct http_session *hs = sessions;
	while (hs && strcmp(hs->id, id))
		hs = hs->next;
	if (hs)
		hs->users++;
	pthread_mutex_unlock(&sessions_lock);
	return hs;
}

static void session_delete(struct http_session *hs)
{
	pthread_mutex_lock(&sessions_lock);
	for (struct http_session **p = &sessions; *p; p = &(*p)->next)
		if (*p == hs) {
			*p = hs->next;
			hs->ended = true;
			break;
		}
	pthread_mutex_unlock(&sessions_lock);
	session_end(hs);
}

/* ------------------------------------------------------------------ requests */

static enum MHD_Result mcp_reply_json(struct MHD_Connection *conn, int status, json_t *body,
				      const char *session_id)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    s ? strlen(s) : 0, s ? s : "", s ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (s)
		MHD_add_response_header(r, "Content-Type", "application/json");
	if (session_id)
		MHD_add_response_header(r, "Mcp-Session-Id", session_id);
	enum MHD_Result res = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return res;
}

static enum MHD_Result mcp_reply_rpc_error(struct MHD_Connection *conn, int status, int code,
					   const char *msg)
{
	return mcp_reply_json(conn, status,
			      json_pack("{s:s, s:n, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", "error",
					"code", code, "message", msg),
			      NULL);
}

static bool is_initialize(const json_t *msg)
{
	const char *m = json_string_value(json_object_get(msg, "method"));
	return m && !strcmp(m, "initialize");
}

static enum MHD_Result post_stream(struct MHD_Connection *conn, struct http_session *hs,
				   json_t *msg)
{
	struct sse *s = xcalloc(1, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->refs = 2;
	s->hs = hs;
	s->msg = msg;
	pthread_t th;
	if (pthread_create(&th, NULL, sse_worker, s) != 0) {
		s->refs = 1;
		sse_unref(s);
		session_release(hs);
		return mcp_reply_rpc_error(conn, 503, JSONRPC_INTERNAL_ERROR,
					   "no thread for the call");
	}
	pthread_detach(th);
	struct MHD_Response *r =
	    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	MHD_add_response_header(r, "Mcp-Session-Id", hs->id);
	enum MHD_Result res = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	return res;
}

static enum MHD_Result handle_post(struct MHD_Connection *conn, const char *body, size_t len,
				   const char *socket, const char *sid)
{
	json_t *err_reply = NULL;
	json_t *msg = mcp_parse(body ? body : "", len, &err_reply);
	if (!msg)
		return mcp_reply_json(conn, 400, err_reply, NULL);
	const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept");
	bool sse_ok = accept && strcasestr(accept, "text/event-stream");
	struct http_session *hs;
	if (!sid) {
		if (!is_initialize(msg)) {
			json_decref(msg);
			return mcp_reply_rpc_error(
			    conn, 400, JSONRPC_INVALID_REQUEST,
			    "Mcp-Session-Id header required (initialize first)");
		}
		hs = session_new(socket);
		if (!session_add(hs)) {
			json_decref(msg);
			hs->ended = true;
			session_release(hs);
			return mcp_reply_rpc_error(conn, 503, JSONRPC_INTERNAL_ERROR,
						   "too many MCP sessions");
		}
	} else if (!(hs = session_get(sid))) {
		json_decref(msg);
		return mcp_reply_rpc_error(
		    conn, 404, JSONRPC_INVALID_REQUEST,
		    "no such MCP session (it ended or expired): initialize again");
	}
	if (sse_ok && mcp_message_blocks(msg))
		return post_stream(conn, hs, msg);
	json_t *reply = mcp_dispatch(&hs->session, msg, NULL);
	json_decref(msg);
	char id[33];
	memcpy(id, hs->id, sizeof(id));
	session_release(hs);
	if (!reply)
		return mcp_reply_json(conn, 202, NULL, NULL);
	return mcp_reply_json(conn, 200, reply, id);
}

enum MHD_Result mcp_http_handle(struct MHD_Connection *conn, const char *method, const char *body,
				size_t len, const char *socket)
{
	const char *sid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Mcp-Session-Id");
	const char *ver =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "MCP-Protocol-Version");
	if (ver && strcmp(ver, "2025-06-18") && strcmp(ver, "2025-03-26"))
		return mcp_reply_rpc_error(
		    conn, 400, JSONRPC_INVALID_REQUEST,
		    "unsupported MCP-Protocol-Version (2025-06-18, 2025-03-26)");
	sessions_sweep(false); /* the idle ones expire */
	if (!strcmp(method, "POST"))
		return handle_post(conn, body, len, socket, sid);
	if (!strcmp(method, "DELETE")) {
		struct http_session *hs = sid ? session_get(sid) : NULL;
		if (!hs)
			return mcp_reply_rpc_error(conn, 404, JSONRPC_INVALID_REQUEST,
						   "no such MCP session");
		session_delete(hs);
		session_release(hs);
		return mcp_reply_json(conn, 200, NULL, NULL);
	}
	/* GET: no stream of server-initiated messages (we send none) */
	struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Allow", "POST, DELETE");
	enum MHD_Result res = MHD_queue_response(conn, 405, r);
	MHD_destroy_response(r);
	return res;
}

void mcp_http_stop_all(void)
{
	sessions_sweep(true);
}

/* ------------------------------------------------------------------ agentd mcp --listen */

struct listen_ctx {
	const char *socket;
	char *token;
};

struct body {
	char *data;
	size_t len;
	bool too_large;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	(void)version;
	struct listen_ctx *lc = cls;
	struct body *b = *con_cls;
	if (!b) {
		*con_cls = xcalloc(1, sizeof(*b));
		return MHD_YES;
	}
	if (*upload_size) {
		if (b->len + *upload_size > MCP_MAX_MESSAGE) {
			b->too_large = true;
		} else {
			b->data = xrealloc(b->data, b->len + *upload_size + 1);
			memcpy(b->data + b->len, upload, *upload_size);
			b->len += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	if (!http_bearer_ok(auth, lc->token, strlen(lc->token))) {
		json_t *e = json_pack("{s:s, s:n, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", "error",
				      "code", JSONRPC_INVALID_REQUEST, "message",
				      auth ? "invalid token" : "a bearer token is required");
		char *s = json_dumps(e, JSON_COMPACT);
		json_decref(e);
		struct MHD_Response *r =
		    MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
		MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
		MHD_add_response_header(r, "Content-Type", "application/json");
		enum MHD_Result res = MHD_queue_response(conn, 401, r);
		MHD_destroy_response(r);
		return res;
	}
	if (strcmp(url, "/mcp"))
		return mcp_reply_rpc_error(conn, 404, JSONRPC_INVALID_REQUEST,
					   "the endpoint is /mcp");
	if (b->too_large)
		return mcp_reply_rpc_error(conn, 413, JSONRPC_INVALID_REQUEST,
					   "message over the limit of 4194304 bytes");
	return mcp_http_handle(conn, method, b->data, b->len, lc->socket);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)conn, (void)toe;
	struct body *b = *con_cls;
	if (b)
		free(b->data);
	free(b);
	*con_cls = NULL;
}

int mcp_http_listen(const char *listen, const char *token_file, const char *socket, int stop_fd)
{
	struct listen_ctx lc = {.socket = socket};
	struct sockaddr_in sin;
	agentd_error err = {0};
	if (parse_listen(listen, &sin, &err) < 0 || read_token(token_file, &lc.token, &err) < 0) {
		print_error("mcp: %s", err.msg);
		return EXIT_AGENTD;
	}
	struct MHD_Daemon *m = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
		MHD_USE_ERROR_LOG,
	    ntohs(sin.sin_port), NULL, NULL, on_request, &lc, MHD_OPTION_SOCK_ADDR, &sin,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, 256,
	    MHD_OPTION_CONNECTION_TIMEOUT, 600, MHD_OPTION_END);
	if (!m) {
		print_error("mcp: listen on %s: %s", listen, strerror(errno));
		free(lc.token);
		return EXIT_AGENTD;
	}
	fprintf(stderr, "agentd mcp: listening on http://%s/mcp (daemon at %s)\n", listen, socket);
	struct pollfd p = {.fd = stop_fd, .events = POLLIN};
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	mcp_http_stop_all();
	MHD_stop_daemon(m);
	free(lc.token);
	return 0;
}
