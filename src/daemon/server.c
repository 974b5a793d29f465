/* server.c: `agentd serve` — HTTP/1.1 over a unix socket (and optionally loopback TCP with
 * a bearer token) through libmicrohttpd, a thread per connection; request bodies bounded;
 * startup reconciliation with the state of a previous run; drain on SIGTERM/SIGINT. */
#include "daemon/daemon.h"
#include "daemon/live/procs.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct listener {
	struct daemon *d;
	bool tcp;
	const char *token;
	size_t token_len;
	struct peers *peers;
};

struct conn_ctx {
	char *body;
	size_t len, cap, limit;
	bool too_large;
	void *upgrade_ctx;		/* an attachment's, released at completion */
	void (*upgrade_release)(void *ctx);
	/* issue 13: img-store — an image archive body, streamed to a file */
	bool uploading;
	int upload_fd;
	int upload_errno;
};

/* issue 13: img-store. POST /v1/images/import with an archive (not JSON) body: the body
 * goes to an unnamed file of the image store, bounded, instead of memory. */
static int image_upload_begin(struct daemon *d, struct MHD_Connection *conn, const char *method,
			      const char *url, struct conn_ctx *cx)
{
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
	if (strcmp(method, "POST") || strcmp(url, "/v1/images/import") || !ct ||
	    !strncasecmp(ct, "application/json", 16))
		return 0;
	cx->upload_fd = api_image_upload_file(d, &cx->limit);
	if (cx->upload_fd < 0)
		return -1;
	cx->uploading = true;
	return 0;
}

static void image_upload_chunk(struct conn_ctx *cx, const char *data, size_t n)
{
	if (cx->too_large || cx->upload_errno)
		return;
	if (cx->len + n > cx->limit) {
		cx->too_large = true;
		return;
	}
	if (write_all(cx->upload_fd, data, n) < 0)
		cx->upload_errno = errno;
	cx->len += n;
}

/* A daemon that left durable sandboxes running keeps their handles, its backends and table
 * entries until the process exits (freeing a handle would kill what runs in it): held here,
 * reachable to the end. */
static struct daemon *volatile left_for_exit;

static const api_handler handlers[ROUTE__COUNT] = {
	[ROUTE_HEALTH] = api_health,
	[ROUTE_METRICS] = api_metrics,
	[ROUTE_BACKENDS] = api_backends,
	[ROUTE_BACKEND] = api_backends,
	[ROUTE_SANDBOX_CREATE] = api_sandboxes,
	[ROUTE_SANDBOX_LIST] = api_sandboxes,
	[ROUTE_SANDBOX_GET] = api_sandboxes,
	[ROUTE_SANDBOX_DELETE] = api_sandboxes,
	[ROUTE_SANDBOX_EXEC] = api_exec,
	[ROUTE_SANDBOX_SUSPEND] = api_sandboxes,
	[ROUTE_SANDBOX_RESUME] = api_sandboxes,
	[ROUTE_SANDBOX_SNAPSHOT] = api_sandboxes,
	[ROUTE_SANDBOX_RESTORE] = api_sandboxes,
	[ROUTE_SANDBOX_USAGE] = api_sandboxes,
	[ROUTE_FILE_PUT] = api_files,
	[ROUTE_FILE_GET] = api_files,
	[ROUTE_SESSION_CREATE] = api_sessions,
	[ROUTE_SESSION_EXEC] = api_sessions,
	[ROUTE_SESSION_DELETE] = api_sessions,
	[ROUTE_AUDIT] = api_audit,
	[ROUTE_AUDIT_VERIFY] = api_audit_verify,
	[ROUTE_PROCESS_CREATE] = api_processes,
	[ROUTE_PROCESS_LIST] = api_processes,
	[ROUTE_PROCESS_GET] = api_processes,
	[ROUTE_PROCESS_DELETE] = api_processes,
	[ROUTE_PROCESS_SIGNAL] = api_processes,
	[ROUTE_PROCESS_STDIN] = api_processes,
	[ROUTE_PROCESS_OUTPUT] = api_processes,
	[ROUTE_PROCESS_ATTACH] = api_processes,
	[ROUTE_CONTEXT_CREATE] = api_contexts,
	[ROUTE_CONTEXT_LIST] = api_contexts,
	[ROUTE_CONTEXT_GET] = api_contexts,
	[ROUTE_CONTEXT_DELETE] = api_contexts,
	[ROUTE_CONTEXT_RUN] = api_contexts,
	[ROUTE_SESSION_EXECUTIONS] = api_sessions,
	[ROUTE_PORT_OPEN] = api_ports,
	[ROUTE_PORT_LIST] = api_ports,
	[ROUTE_PORT_CLOSE] = api_ports,
	/* issue 12: names */
	[ROUTE_SANDBOX_NETWORK] = api_sandboxes,
	/* issue 12: files */
	[ROUTE_FILE_LIST] = api_files,
	[ROUTE_FILE_STAT] = api_files,
	[ROUTE_FILE_MKDIR] = api_files,
	[ROUTE_FILE_DELETE] = api_files,
	[ROUTE_FILE_RENAME] = api_files,
	[ROUTE_FILE_CHMOD] = api_files,
	[ROUTE_FILE_TAR_PUT] = api_files,
	[ROUTE_FILE_TAR_GET] = api_files,
	[ROUTE_FILE_WATCH] = api_files,
	/* issue 12: ttl */
	[ROUTE_SANDBOX_TIMEOUT] = api_sandbox_timeout,
	/* issue 12: snapshots */
	[ROUTE_SANDBOX_SNAPSHOTS] = api_snapshots,
	[ROUTE_SANDBOX_SNAPSHOT_DELETE] = api_snapshots,
	[ROUTE_SNAPSHOT_LIST] = api_snapshots,
	[ROUTE_SNAPSHOT_GET] = api_snapshots,
	[ROUTE_SNAPSHOT_DELETE] = api_snapshots,
	/* issue 13: img-store */
	[ROUTE_IMAGE_LIST] = api_images,
	[ROUTE_IMAGE_IMPORT] = api_images,
	[ROUTE_IMAGE_PRUNE] = api_images,
	[ROUTE_IMAGE_TAG] = api_images,
	[ROUTE_IMAGE_GET] = api_images,
	[ROUTE_IMAGE_DELETE] = api_images,
	/* issue 13: img-build */
	[ROUTE_IMAGE_BUILD] = api_image_build,
};

/* Every query argument, in order (one past API_QUERY_MAX_ARGS is kept: the parser refuses
 * that many). The strings are libmicrohttpd's, alive for the request. */
struct query_args {
	struct api_query_arg v[API_QUERY_MAX_ARGS + 1];
	size_t n;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct query_args *qa = cls;
	if (qa->n < API_QUERY_MAX_ARGS + 1)
		qa->v[qa->n++] = (struct api_query_arg){key, value};
	return MHD_YES;
}

static enum MHD_Result send_reply(struct daemon *d, struct MHD_Connection *conn,
				  struct reply *rp)
{
	struct MHD_Response *resp = rp->mhd_response;
	if (!resp) {
		if (rp->json) {
			char *s = json_dumps(rp->json, JSON_COMPACT);
			size_t n = strlen(s);
			s = realloc(s, n + 2);
			s[n++] = '\n';
			s[n] = '\0';
			resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
			MHD_add_response_header(resp, "Content-Type", "application/json");
		} else {
			resp = MHD_create_response_from_buffer(rp->raw_len, rp->raw ? rp->raw : "",
							       rp->raw ? MHD_RESPMEM_MUST_FREE
								       : MHD_RESPMEM_PERSISTENT);
			rp->raw = NULL;
			if (rp->content_type)
				MHD_add_response_header(resp, "Content-Type", rp->content_type);
		}
	}
	if (rp->status == 401) {
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
		/* a connection without the token is not kept: it stays unadmitted until closed */
		MHD_add_response_header(resp, "Connection", "close");
	}
	enum MHD_Result r = MHD_queue_response(conn, (unsigned)rp->status, resp);
	MHD_destroy_response(resp);
	json_decref(rp->json);
	free(rp->raw);
	pthread_mutex_lock(&d->lock);
	d->m.requests++;
	if (rp->status >= 500)
		d->m.errors_5xx++;
	else if (rp->status >= 400)
		d->m.errors_4xx++;
	pthread_mutex_unlock(&d->lock);
	return r;
}

__attribute__((format(printf, 4, 5))) static enum MHD_Result
send_error(struct daemon *d, struct MHD_Connection *conn, int status, const char *fmt, ...)
{
	struct reply rp = {0};
	va_list ap;
	va_start(ap, fmt);
	vreply_error(&rp, status, fmt, ap);
	va_end(ap);
	return send_reply(d, conn, &rp);
}

/* Bearer token, compared in constant time over the expected length: NULL when it is
 * right, else why not (none given, or a wrong one). */
static const char *unauthorized(const struct listener *ls, struct MHD_Connection *conn)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	if (http_bearer_ok(h, ls->token, ls->token_len))
		return NULL;
	return h ? "invalid token" : "a bearer token is required";
}

static void identify(const struct listener *ls, struct MHD_Connection *conn, struct client *c)
{
	c->uid = -1;
	c->fd = -1;
	snprintf(c->desc, sizeof(c->desc), "unknown");
	const union MHD_ConnectionInfo *fdi =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (fdi)
		c->fd = fdi->connect_fd;
	if (ls->tcp) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		const struct sockaddr_in *sin = ci ? (const void *)ci->client_addr : NULL;
		char a[INET_ADDRSTRLEN] = "?";
		if (sin && sin->sin_family == AF_INET)
			inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		snprintf(c->desc, sizeof(c->desc), "tcp:%s:%u", a,
			 sin ? (unsigned)ntohs(sin->sin_port) : 0);
		return;
	}
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred uc;
	socklen_t len = sizeof(uc);
	if (ci && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
		c->uid = uc.uid;
		snprintf(c->desc, sizeof(c->desc), "unix:pid=%d,uid=%u,gid=%u", (int)uc.pid,
			 (unsigned)uc.uid, (unsigned)uc.gid);
	}
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct listener *ls = cls;
	struct daemon *d = ls->d;
	struct conn_ctx *cx = *con_cls;
	if (!cx) {
		/* the request head is complete: a connection that was shut meanwhile (evicted,
		 * timed out) goes, one with the token (or on the unix socket) is admitted */
		const union MHD_ConnectionInfo *sc =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		struct peer_conn *pc = sc ? sc->socket_context : NULL;
		cx = calloc(1, sizeof(*cx));
		*con_cls = cx;
		const char *why = ls->tcp ? unauthorized(ls, conn) : NULL;
		if (why)
			return send_error(d, conn, 401, "%s", why);
		if (!peers_admit(ls->peers, pc))
			return MHD_NO;
		cx->limit = !strcmp(method, "PUT") ? d->cfg.max_file_bytes : API_MAX_BODY;
		if (image_upload_begin(d, conn, method, url, cx) < 0) /* issue 13: img-store */
			return send_error(d, conn, 500, "image upload: %s", strerror(errno));
		const char *cl =
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > cx->limit)
			return send_error(d, conn, 413, "body of %s bytes is over the limit of %zu",
					  cl, cx->limit);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (cx->uploading) { /* issue 13: img-store */
			image_upload_chunk(cx, upload_data, n);
			return MHD_YES;
		}
		if (cx->too_large || cx->len + n > cx->limit) {
			cx->too_large = true;
			free(cx->body);
			cx->body = NULL;
			cx->len = 0;
			return MHD_YES;
		}
		if (cx->len + n > cx->cap) {
			cx->cap = (cx->len + n) * 2 > cx->limit ? cx->limit : (cx->len + n) * 2;
			cx->body = realloc(cx->body, cx->cap + 1);
		}
		memcpy(cx->body + cx->len, upload_data, n);
		cx->len += n;
		return MHD_YES;
	}
	if (cx->too_large)
		return send_error(d, conn, 413, "body over the limit of %zu bytes", cx->limit);
	if (cx->upload_errno) /* issue 13: img-store */
		return send_error(d, conn, cx->upload_errno == ENOSPC ? 507 : 500,
				  "image upload: %s", strerror(cx->upload_errno));
	/* issue 14: mcp — the MCP server's Streamable HTTP endpoint, after the daemon's auth */
	if (!strcmp(url, "/mcp"))
		return mcp_http_handle(conn, method, cx->body, cx->len, d->cfg.socket_path);

	struct query_args qa = {.n = 0};
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &qa);
	struct api_query q = {
		.args = qa.v,
		.nargs = qa.n,
		.path = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "path"),
		.since = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since"),
		.offset = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "offset"),
		.follow = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "follow"),
		.stream = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "stream"),
		.foreground = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
							  "foreground"),
		.upgrade = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade"),
		.connection = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Connection"),
		.ws_version = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							  "Sec-WebSocket-Version"),
		.ws_key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key"),
		/* issue 12: files */
		.parents = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "parents"),
		.recursive = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "recursive"),
		.content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"),
	};
	struct api_request r;
	agentd_error err = {0};
	int status = api_request_parse(method, url, &q, (const uint8_t *)cx->body,
				       cx->uploading ? 0 : cx->len, &r, &err);
	if (status == 0 && r.image_upload) { /* issue 13: img-store */
		if (!cx->uploading) {
			api_request_free(&r);
			return send_error(d, conn, 400, "an image archive body needs a Content-Type "
					  "of application/x-tar (gzip, zstd, x-xz, octet-stream)");
		}
		r.image_upload_fd = cx->upload_fd;
	}
	if (status) {
		dlog("info", "msg=request method=%.16s path=\"%.200s\" status=%d error=\"%.200s\"",
		     method, url, status, err.msg);
		return send_error(d, conn, status, "%s", err.msg);
	}
	struct client c;
	identify(ls, conn, &c);
	pthread_mutex_lock(&d->lock);
	bool draining = d->draining;
	if (!draining)
		d->in_flight++;
	pthread_mutex_unlock(&d->lock);
	if (draining && r.route != ROUTE_HEALTH) {
		api_request_free(&r);
		return send_error(d, conn, 503, "the daemon is shutting down");
	}
	struct reply rp = {0};
	expiry_note_request(d, method, &r); /* issue 12: ttl */
	handlers[r.route](d, &r, &c, &rp);
	if (!rp.status)
		reply_error(&rp, 500, "no answer");
	/* A server error's log line says why, not only that it happened. */
	json_t *why = rp.status >= 500 ? json_object_get(json_object_get(rp.json, "error"),
							  "message")
				       : NULL;
	if (!json_is_string(why))
		why = NULL;
	dlog(rp.status >= 500 ? "error" : "info",
	     "msg=request method=%s path=\"%.200s\" status=%d uid=%lld%s%.400s%s", method, url,
	     rp.status, (long long)c.uid, why ? " error=\"" : "",
	     why ? json_string_value(why) : "", why ? "\"" : "");
	api_request_free(&r);
	cx->upgrade_ctx = rp.upgrade_ctx;
	cx->upgrade_release = rp.upgrade_release;
	enum MHD_Result res = send_reply(d, conn, &rp);
	if (!draining) {
		pthread_mutex_lock(&d->lock);
		d->in_flight--;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
	return res;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct conn_ctx *cx = *con_cls;
	if (cx) {
		if (cx->upgrade_release)
			cx->upgrade_release(cx->upgrade_ctx);
		if (cx->uploading) /* issue 13: img-store */
			close(cx->upload_fd);
		free(cx->body);
		free(cx);
		*con_cls = NULL;
	}
}

/* Every connection is counted by its listener's admission (peers.c) from accept to close. */
static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			      enum MHD_ConnectionNotificationCode code)
{
	struct listener *ls = cls;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		peers_closed(ls->peers, *socket_context);
		*socket_context = NULL;
		return;
	}
	const union MHD_ConnectionInfo *fdi =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	const union MHD_ConnectionInfo *ai =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (fdi)
		*socket_context = peers_connected(ls->peers, fdi->connect_fd,
						  ai ? ai->client_addr : NULL);
}

/* libmicrohttpd's messages, at most 20 per 10 s: each connection a flood opens and the
 * admission shuts would be one ("Connection socket is closed when reading request"). */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static uint64_t window_ms, logged, suppressed;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	uint64_t now = now_ms_monotonic(), dropped = 0;
	pthread_mutex_lock(&lock);
	if (now - window_ms >= 10000) {
		dropped = suppressed;
		window_ms = now;
		logged = suppressed = 0;
	}
	bool log = logged < 20;
	if (log)
		logged++;
	else
		suppressed++;
	pthread_mutex_unlock(&lock);
	if (dropped)
		dlog("warn", "msg=\"http: %llu more messages not logged\"",
		     (unsigned long long)dropped);
	if (log)
		dlog("warn", "msg=\"http: %s\"", msg);
}

/* The unix socket, created by us (mode 0660) and handed to libmicrohttpd. A socket file left
 * by a dead daemon is replaced; one a live daemon answers on is not. */
static int unix_listen(const char *path, const char *group, agentd_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return agentd_error_set(err, ENAMETOOLONG, "socket path %s: too long", path);
	strcpy(sa.sun_path, path);
	char dir[sizeof(sa.sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return agentd_error_set(err, errno, "create %s: %s", dir, strerror(errno));
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return agentd_error_set(err, errno, "socket: %s", strerror(errno));
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			close(fd);
			return agentd_error_set(err, EEXIST, "%s exists and is not a socket", path);
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			return agentd_error_set(err, EADDRINUSE, "a daemon already listens on %s",
						path);
		}
		unlink(path);
	}
	mode_t old = umask(0117);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	/* a deep backlog: a flood of connects (peers.c sheds them) does not refuse the next one */
	if (r < 0 || chmod(path, 0660) < 0 || listen(fd, SOMAXCONN) < 0) {
		int e = errno;
		close(fd);
		return agentd_error_set(err, e, "listen on %s: %s", path, strerror(e));
	}
	if (group) {
		struct group *g = getgrnam(group);
		if (!g || chown(path, (uid_t)-1, g->gr_gid) < 0) {
			int e = g ? errno : ENOENT;
			close(fd);
			unlink(path);
			return agentd_error_set(err, e, "--socket-group %s: %s", group,
						g ? strerror(e) : "no such group");
		}
	}
	return fd;
}

int read_token(const char *path, char **out, agentd_error *err)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return agentd_error_set(err, errno, "token file %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077))
		dlog("warn", "msg=\"token file is readable by others\" path=%s", path);
	char buf[512];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (strlen(buf) < 16)
		return agentd_error_set(err, EINVAL, "token file %s: token shorter than 16 bytes",
					path);
	*out = strdup(buf);
	return 0;
}

int parse_listen(const char *s, struct sockaddr_in *sin, agentd_error *err)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return agentd_error_set(err, EINVAL, "--listen: expected ADDR:PORT, got '%s'", s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	if (*end || port == 0 || port > 65535 || inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return agentd_error_set(err, EINVAL, "--listen: expected IPv4:PORT, got '%s'", s);
	return 0;
}

static void lost_sandbox(void *arg, const char *id)
{
	struct daemon *d = arg;
	agentd_cleanup_stale_sandbox(d->work_root, id);
	dlog("warn", "msg=\"sandbox lost at daemon restart\" sandbox=%s", id);
}

/* What a previous run left: rows still live that are not durable are failed (their
 * sandboxes died with that process), and the unix sockets of its forwarded ports go (an
 * adopted sandbox's are made anew). The durable ones are adopted once the backends are
 * ready (adopt_and_sweep). */
static int reconcile(struct daemon *d, agentd_error *err)
{
	if (state_reconcile(d->st, lost_sandbox, d, err) < 0)
		return -1;
	ports_remove_stale(d);
	return 0;
}

/* Whether id's row is still live: adopted, or left for a later daemon (adopt.c). */
static bool is_kept(struct daemon *d, const char *id)
{
	json_t *row = state_sandbox_get(d->st, id);
	const char *s = json_string_value(json_object_get(row, "state"));
	bool kept = s && strcmp(s, "destroyed") && strcmp(s, "failed");
	json_decref(row);
	return kept;
}

/* Every durable sandbox adopted (or failed), then whatever is on disk under our work root
 * that no live row owns is removed, and the cgroups nothing holds. */
static void adopt_and_sweep(struct daemon *d)
{
	live_adopt_all(d);
	int dfd = open(d->work_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = dfd < 0 ? NULL : fdopendir(dfd);
	struct dirent *e;
	while (dir && (e = readdir(dir)))
		if (api_valid_id(e->d_name) && !is_kept(d, e->d_name)) {
			agentd_cleanup_stale_sandbox(d->work_root, e->d_name);
			dlog("warn", "msg=\"removed a leftover sandbox dir\" sandbox=%s", e->d_name);
		}
	if (dir)
		closedir(dir);
	else if (dfd >= 0)
		close(dfd);
	agentd_cleanup_stale_sandbox(NULL, NULL);
}

/* libmicrohttpd's own limit leaves room for connections peers.c shut that are still
 * closing; peers.c's is the one that holds. The timeout is the idle one (keep-alive, a
 * stalled client); the header timeout is peers.c's. */
static struct MHD_Daemon *start_mhd(struct listener *ls, int fd, const struct sockaddr_in *sin,
				    agentd_error *err)
{
	const struct server_cfg *cfg = &ls->d->cfg;
	struct peers_cfg pc = {
		.tcp = ls->tcp,
		.header_timeout_ms = cfg->header_timeout_ms,
		.max_connections = cfg->max_connections,
		.max_per_peer = cfg->max_peer_connections,
		/* half, as overall: a burst of one client's connects is not shed as a flood */
		.max_waiting_per_peer = cfg->max_peer_connections / 2,
	};
	if (!(ls->peers = peers_new(&pc, err)))
		return NULL;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG |
			 /* attach (WebSocket): the upgrade handler runs the session in the
			  * connection's thread */
			 MHD_ALLOW_UPGRADE;
	unsigned limit = cfg->max_connections + cfg->max_connections / 2 + 64;
	struct MHD_Daemon *m;
	if (fd >= 0)
		m = MHD_start_daemon(flags, 0, NULL, NULL, handle, ls, MHD_OPTION_EXTERNAL_LOGGER,
				     mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
				     MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
				     MHD_OPTION_NOTIFY_CONNECTION, notify_connection, ls,
				     MHD_OPTION_CONNECTION_LIMIT, limit,
				     MHD_OPTION_CONNECTION_TIMEOUT, 600, MHD_OPTION_END);
	else
		m = MHD_start_daemon(flags, ntohs(sin->sin_port), NULL, NULL, handle, ls,
				     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
				     sin, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
				     MHD_OPTION_NOTIFY_CONNECTION, notify_connection, ls,
				     MHD_OPTION_LISTEN_BACKLOG_SIZE, SOMAXCONN, MHD_OPTION_CONNECTION_LIMIT,
				     limit, MHD_OPTION_CONNECTION_TIMEOUT, 600, MHD_OPTION_END);
	if (!m)
		agentd_error_set(err, EADDRINUSE, "start the HTTP server");
	return m;
}

/* Seals (with the hashes to keep elsewhere, as the chain's anchor), prunes, problems. */
static void log_audit_event(void *arg, const char *msg)
{
	dlog("info", "msg=\"%s\"", msg);
}

/* The state dir, held by one daemon at a time (an flock on its lock file), its sandboxes'
 * dir and the SQLite state, reconciled with what a previous daemon left. */
static int open_state(struct daemon *d, int *lock_fd, agentd_error *err)
{
	const struct server_cfg *cfg = &d->cfg;
	agentd_strv fixed = {0};
	int r = statedir_secure(cfg->state_dir, &fixed, err);
	for (size_t i = 0; i < fixed.n; i++)
		dlog("warn", "msg=\"state dir: mode fixed\" what=\"%s\"", fixed.v[i]);
	strv_free(&fixed);
	if (r < 0)
		return -1;
	_cleanup_free_ char *lockp = xasprintf("%s/lock", cfg->state_dir);
	*lock_fd = open(lockp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*lock_fd < 0 || flock(*lock_fd, LOCK_EX | LOCK_NB) < 0)
		return agentd_error_set(err, EBUSY, "state dir %s: in use by another agentd serve",
					cfg->state_dir);
	d->work_root = xasprintf("%s/sandboxes", cfg->state_dir);
	if (mkdir(d->work_root, 0711) < 0 && errno != EEXIST)
		return agentd_error_set(err, errno, "%s: %s", d->work_root, strerror(errno));
	if (chmod(d->work_root, 0711) < 0) /* whatever the umask */
		return agentd_error_set(err, errno, "chmod %s: %s", d->work_root, strerror(errno));
	agentd_error nserr = {0};
	if (statedir_private_cache(cfg->state_dir, &nserr) < 0)
		dlog("warn", "msg=\"rootfs cache stays on disk\" error=\"%s\"", nserr.msg);
	_cleanup_free_ char *db = xasprintf("%s/agentd.db", cfg->state_dir);
	if (statedir_create_file(cfg->state_dir, "agentd.db", err) < 0 ||
	    state_open(db, cfg->sync_full, &d->st, err) < 0 || reconcile(d, err) < 0 ||
	    api_snapshots_open(d, err) < 0 || api_images_open(d, err) < 0)
		return -1;
	state_audit_set_budget(d->st, cfg->state_max_bytes, log_audit_event, NULL);
	return 0;
}

/* What serving needs before the first request: the platform probed and the default
 * backend resolved while we are single-threaded (the probe makes a child in a user
 * namespace), the egress proxy of every allowlist sandbox, logged to the audit. */
static int prepare_backends(struct daemon *d, agentd_error *err)
{
	agentd_probe_platform();
	if (!(d->netaudit = netaudit_start(d, &d->proxy, err)))
		return -1;
	agentd_backend *defb = daemon_backend(d, NULL, err);
	if (!defb)
		return agentd_error_prefix(err, "--backend %s", d->cfg.default_backend);
	d->default_backend = agentd_backend_name(defb);
	adopt_and_sweep(d);
	return 0;
}

/* Stop accepting, let running requests finish (bounded by --drain), then cancel what is
 * left (its result says why) and destroy every sandbox that is not durable (every one with
 * --destroy-on-exit); the durable ones are left running for the next daemon. */
static void drain(struct daemon *d, struct MHD_Daemon *mu, struct MHD_Daemon *mt)
{
	MHD_socket lfd = MHD_quiesce_daemon(mu);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	if (mt && (lfd = MHD_quiesce_daemon(mt)) != MHD_INVALID_SOCKET)
		close(lfd);
	unlink(d->cfg.socket_path);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += d->cfg.drain_ms / 1000;
	until.tv_nsec += (long)(d->cfg.drain_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&d->lock);
	d->draining = true;
	while (d->in_flight && pthread_cond_timedwait(&d->cond, &d->lock, &until) == 0)
		;
	unsigned left = d->in_flight;
	pthread_mutex_unlock(&d->lock);
	if (left)
		dlog("warn", "msg=\"cancelling requests still running\" count=%u", left);
	expiry_stop(d); /* issue 12: before the stops, the last activities written */
	live_cancel_execs(d, "daemon shutting down");
	live_stop_all(d, "daemon stopped");
}

/* The HTTP servers: the unix socket (taken over from ufd), and TCP with --listen. */
static int start_servers(struct daemon *d, struct listener *lu, struct listener *lt, int *ufd,
			 struct MHD_Daemon **mu, struct MHD_Daemon **mt, agentd_error *err)
{
	const struct server_cfg *cfg = &d->cfg;
	if (!(*mu = start_mhd(lu, *ufd, NULL, err)))
		return agentd_error_prefix(err, "%s", cfg->socket_path);
	*ufd = -1; /* libmicrohttpd owns it */
	if (!cfg->listen)
		return 0;
	struct sockaddr_in sin;
	if (parse_listen(cfg->listen, &sin, err) < 0)
		return -1;
	if (!(*mt = start_mhd(lt, -1, &sin, err)))
		return agentd_error_prefix(err, "listen on %s", cfg->listen);
	return 0;
}

int agentd_serve(const struct server_cfg *cfg, agentd_error *err)
{
	struct daemon *d = xcalloc(1, sizeof(*d));
	d->cfg = *cfg;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	d->started_ms = (int64_t)time(NULL) * 1000;
	int ret = -1, lock_fd = -1, ufd = -1;
	struct MHD_Daemon *mu = NULL, *mt = NULL;
	struct listener lu = {.d = d}, lt = {.d = d, .tcp = true};
	char *token = NULL;

	if (open_state(d, &lock_fd, err) < 0)
		goto out;
	if (cfg->listen) {
		if (!cfg->token_file) {
			agentd_error_set(err, EINVAL, "--listen needs --token-file");
			goto out;
		}
		if (read_token(cfg->token_file, &token, err) < 0)
			goto out;
		lt.token = token;
		lt.token_len = strlen(token);
	}
	if (prepare_backends(d, err) < 0 ||
	    (ufd = unix_listen(cfg->socket_path, cfg->socket_group, err)) < 0)
		goto out;
	/* Only this thread takes the stop signals; every other thread inherits the mask. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	if (expiry_start(d, err) < 0) /* issue 12: ttl */
		goto out;
	if (start_servers(d, &lu, &lt, &ufd, &mu, &mt, err) < 0)
		goto out;
	dlog("info", "msg=\"agentd serve ready\" socket=%s state_dir=%s listen=%s backend=%s "
		     "max_sandboxes=%u pid=%d",
	     cfg->socket_path, cfg->state_dir, cfg->listen ? cfg->listen : "-", d->default_backend,
	     cfg->max_sandboxes, (int)getpid());
	int sig = 0;
	sigwait(&stop, &sig);
	dlog("info", "msg=\"draining\" signal=%d", sig);
	mcp_http_stop_all(); /* issue 14: mcp — before the drain refuses their DELETEs */
	drain(d, mu, mt);
	ret = 0;
out:
	if (mt)
		MHD_stop_daemon(mt);
	peers_free(lt.peers);
	if (mu) {
		/* after the last handler: nothing can add a sandbox any more */
		MHD_stop_daemon(mu);
		expiry_stop(d);
		live_stop_all(d, "daemon stopped");
		unlink(cfg->socket_path);
	}
	peers_free(lu.peers);
	if (ufd >= 0) {
		close(ufd);
		unlink(cfg->socket_path);
	}
	expiry_stop(d);
	procs_pump_stop();	/* after every sandbox: no process is left to read */
	/* a backend's free destroys its sandboxes: not those left for the next daemon (the
	 * process's exit releases what they hold of ours) */
	for (size_t i = 0; i < d->n_backends && !d->left_running; i++)
		agentd_backend_free(d->backends[i].b);
	agentd_proxy_stop(d->proxy);	/* after the backends: no sandbox uses it any more */
	agentd_image_store_free(d->images); /* issue 13: img-store; after the backends too */
	netaudit_stop(d->netaudit);	/* the proxy's last records are written */
	state_close(d->st);
	if (lock_fd >= 0)
		close(lock_fd);
	if (ret == 0)
		dlog("info", "msg=\"stopped\"");
	free(token);
	if (d->left_running) {
		left_for_exit = d;
		return ret;
	}
	free(d->work_root);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d);
	return ret;
}
