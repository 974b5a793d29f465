/* attach.c: one WebSocket attachment to a process's terminal (docs/api.md#attach). It runs
 * in the connection's own thread (libmicrohttpd's thread per connection may block in the
 * upgrade handler): the process's output ring is followed through an eventfd and sent as
 * binary frames; the client's frames (everything checked by common/ws.c) become the
 * terminal's input and window size. The client going away detaches: the process lives on,
 * unless the attachment is a foreground one (exec -it), whose process dies with it and is
 * forgotten when the attachment ends. */
#include "daemon/live/attach.h"
#include "common/ws.h"

#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* A client frame or message (typing, a paste): larger ones close the attachment (1009). */
#define ATTACH_MAX_MESSAGE (64u << 10)
#define ATTACH_MAX_CONTROL 1024
/* A client that takes no output for this long is dropped (its thread is not held). */
#define ATTACH_SEND_TIMEOUT_MS 30000
/* Input the terminal did not take yet is retried this often; the socket is not read
 * meanwhile, so a client typing faster than the program reads is slowed, not buffered. */
#define ATTACH_RETRY_MS 20
#define ATTACH_OUT_CHUNK (32u << 10)

struct attach {
	struct daemon *d;
	struct proc *p;
	char sandbox_id[API_ID_LEN + 1];
	struct client c;
	bool foreground;
	uint64_t offset;		/* the next output byte to send */
	/* the session */
	int sock, efd;
	struct ws_reader rd;
	uint8_t *pending;		/* input the terminal has not taken yet */
	size_t pending_len, pending_off;
	const char *result;		/* for the audit: exited, detached, a protocol error */
	bool ended;			/* the exit message went out */
	uint64_t t0;
};

void attach_release(void *ctx)
{
	struct attach *a = ctx;
	if (!a)
		return;
	proc_put(a->p);
	free(a);
}

/* The whole buffer, waiting (bounded) while the client's socket is full. */
static int send_all(struct attach *a, const struct iovec *iov, int n)
{
	struct iovec v[3];
	memcpy(v, iov, sizeof(*iov) * (size_t)n);
	uint64_t deadline = mono_ms() + ATTACH_SEND_TIMEOUT_MS;
	struct msghdr mh = {.msg_iov = v, .msg_iovlen = (size_t)n};
	while (mh.msg_iovlen) {
		ssize_t w = sendmsg(a->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN)
			return -1;
		if (w < 0) {
			uint64_t now = mono_ms();
			if (now >= deadline)
				return -1;
			struct pollfd pf = {.fd = a->sock, .events = POLLOUT};
			poll(&pf, 1, (int)(deadline - now));
			continue;
		}
		while (mh.msg_iovlen && (size_t)w >= mh.msg_iov->iov_len) {
			w -= (ssize_t)mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + w;
			mh.msg_iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int send_frame(struct attach *a, enum ws_opcode op, const void *data, size_t len)
{
	uint8_t h[WS_MAX_HEADER];
	struct iovec iov[2] = {{h, ws_frame_header(h, op, len, NULL)}, {(void *)data, len}};
	return send_all(a, iov, len ? 2 : 1);
}

static int send_control(struct attach *a, const struct ws_control *c)
{
	char *s = ws_control_format(c);
	int r = s ? send_frame(a, WS_OP_TEXT, s, strlen(s)) : -1;
	free(s);
	return r;
}

/* A close frame: code and a reason (cut to the 123 bytes a control frame leaves). */
static void send_close(struct attach *a, uint16_t code, const char *reason)
{
	uint8_t b[WS_MAX_CONTROL_PAYLOAD];
	size_t n = strlen(reason);
	if (n > sizeof(b) - 2)
		n = sizeof(b) - 2;
	n -= utf8_incomplete_tail((const uint8_t *)reason, n);
	b[0] = (uint8_t)(code >> 8);
	b[1] = (uint8_t)code;
	memcpy(b + 2, reason, n);
	(void)send_frame(a, WS_OP_CLOSE, b, n + 2); /* a client already gone is gone */
}

/* An error the client should read (a text message), then the close. */
static void fail(struct attach *a, uint16_t code, const char *why)
{
	struct ws_control e = {.type = WS_CTL_ERROR};
	snprintf(e.message, sizeof(e.message), "%s", why);
	(void)send_control(a, &e);
	send_close(a, code, why);
	a->result = why;
}

/* Its end as the process table records it. */
static void send_exit(struct attach *a)
{
	json_t *j = proc_to_json(a->p);
	struct ws_control e = {.type = WS_CTL_EXIT};
	json_t *code = json_object_get(j, "exit_code"), *sig = json_object_get(j, "signal");
	e.exit_code = json_is_integer(code) ? (int)json_integer_value(code) : 255;
	if (e.exit_code < 0 || e.exit_code > 255)
		e.exit_code = 255;
	int s = json_is_string(sig) ? api_signal_parse(json_string_value(sig)) : 0;
	e.term_signal = s > 0 ? s : 0;
	json_decref(j);
	if (send_control(a, &e) == 0)
		send_close(a, WS_CLOSE_NORMAL, "the process ended");
	a->ended = true;
	a->result = "exited";
}

/* Everything the ring holds past a->offset; the exit message once nothing follows the end.
 * -1: the client is gone. */
static int forward_output(struct attach *a)
{
	static __thread uint8_t buf[ATTACH_OUT_CHUNK];
	for (;;) {
		struct proc_read rd;
		if (proc_read(a->p, PROC_STDOUT, a->offset, buf, sizeof(buf), &rd) < 0)
			return -1;
		/* bytes the ring dropped before we sent them are skipped: a slow client misses
		 * output, it never holds the process up or grows the daemon */
		a->offset = rd.offset + rd.n;
		if (rd.n && send_frame(a, WS_OP_BINARY, buf, rd.n) < 0)
			return -1;
		if (rd.ended) {
			send_exit(a);
			return 0;
		}
		if (!rd.n)
			return 0;
	}
}

/* Give the terminal what input waits; what it does not take now stays pending. */
static void push_input(struct attach *a)
{
	size_t written = 0;
	agentd_error err = {0};
	int r = proc_write_stdin(a->p, a->pending + a->pending_off,
				 a->pending_len - a->pending_off, false, 0, &written, &err);
	a->pending_off += written;
	if (r < 0 && err.code != EAGAIN)
		a->pending_off = a->pending_len; /* it ended or closed its input: the exit follows */
	if (a->pending_off == a->pending_len)
		a->pending_len = a->pending_off = 0;
}

static int on_control(struct attach *a, const struct ws_message *m)
{
	struct ws_control c;
	const char *why = NULL;
	if (m->len > ATTACH_MAX_CONTROL) {
		fail(a, WS_CLOSE_TOO_BIG, "a control message over 1024 bytes");
		return -1;
	}
	if (ws_control_parse(m->data, m->len, &c, &why) < 0 || c.type != WS_CTL_RESIZE) {
		fail(a, WS_CLOSE_BAD_DATA, why ? why : "a client sends only resize messages");
		return -1;
	}
	agentd_error err = {0};
	if (proc_resize(a->p, c.rows, c.cols, &err) < 0 && err.code != ESRCH)
		dlog("warn", "msg=\"attach: resize failed\" sandbox=%s pid=%lld error=\"%s\"",
		     a->sandbox_id, (long long)proc_pid(a->p), err.msg);
	return 0;
}

/* One message from the client; -1 ends the attachment. */
static int on_message(struct attach *a, const struct ws_message *m)
{
	if (m->op == WS_OP_BINARY || m->op == WS_OP_TEXT)
		live_touch_id(a->d, a->sandbox_id); /* issue 12: typing is activity */
	switch (m->op) {
	case WS_OP_BINARY:
		if (!m->len)
			return 0;
		a->pending = xrealloc(a->pending, m->len);
		memcpy(a->pending, m->data, m->len);
		a->pending_len = m->len;
		a->pending_off = 0;
		push_input(a);
		return 0;
	case WS_OP_TEXT:
		return on_control(a, m);
	case WS_OP_PING:
		return send_frame(a, WS_OP_PONG, m->data, m->len);
	case WS_OP_CLOSE:
		send_close(a, WS_CLOSE_NORMAL, "detached");
		a->result = "detached";
		return -1;
	default:
		return 0; /* a pong */
	}
}

/* The messages buffered, acted on one at a time while the terminal takes its input (one
 * it has not taken yet stops the rest); -1 ends the attachment. */
static int next_messages(struct attach *a)
{
	struct ws_message m;
	int k;
	while (!a->pending_len && (k = ws_reader_next(&a->rd, &m)) != 0) {
		if (k < 0) {
			fail(a, a->rd.close_code, a->rd.why);
			return -1;
		}
		if (on_message(a, &m) < 0)
			return -1;
	}
	return 0;
}

/* What the client sent, read and acted on; -1 ends the attachment. */
static int read_client(struct attach *a)
{
	size_t space;
	uint8_t *dst = ws_reader_space(&a->rd, &space);
	ssize_t n = read(a->sock, dst, space);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		a->result = "detached";
		return -1;
	}
	ws_reader_commit(&a->rd, (size_t)n);
	return next_messages(a);
}

/* Pending input first; then more messages already buffered (read_client stopped there). */
static int drain_buffered(struct attach *a)
{
	push_input(a);
	return next_messages(a);
}

static void session_loop(struct attach *a, const char *extra, size_t extra_n)
{
	if (extra_n) {
		/* what the client sent right after its request: frames, read as such (bounded
		 * by libmicrohttpd's connection buffer) */
		size_t space;
		uint8_t *dst = ws_reader_space(&a->rd, &space);
		if (extra_n > space) {
			fail(a, WS_CLOSE_TOO_BIG, "too much data before the upgrade");
			return;
		}
		memcpy(dst, extra, extra_n);
		ws_reader_commit(&a->rd, extra_n);
		if (drain_buffered(a) < 0)
			return;
	}
	while (!a->ended) {
		if (forward_output(a) < 0) {
			a->result = "detached";
			return;
		}
		if (a->ended)
			return;
		struct pollfd pf[2] = {{.fd = a->efd, .events = POLLIN},
				       {.fd = a->sock, .events = a->pending_len ? 0 : POLLIN}};
		if (poll(pf, 2, a->pending_len ? ATTACH_RETRY_MS : -1) < 0 && errno != EINTR)
			return;
		uint64_t v;
		if ((pf[0].revents & POLLIN) && read(a->efd, &v, sizeof(v)) < 0) {
			/* EAGAIN: another wake-up consumed it */
		}
		if (a->pending_len && drain_buffered(a) < 0)
			return;
		if ((pf[1].revents & (POLLIN | POLLHUP | POLLERR)) && read_client(a) < 0)
			return;
	}
}

/* A foreground attachment ended: its process goes with it, killed if it still runs, and is
 * forgotten as an exec is (exec -it). */
static void remove_foreground(struct attach *a)
{
	struct live *l = live_get(a->d, a->sandbox_id);
	if (!l)
		return; /* destroyed: its processes with it */
	agentd_error err = {0};
	if (procs_remove(a->d, l, a->p, &a->c, &err) < 0 && err.code != ESRCH)
		dlog("warn", "msg=\"attach: kill of the foreground process failed\" sandbox=%s "
			     "pid=%lld error=\"%s\"",
		     a->sandbox_id, (long long)proc_pid(a->p), err.msg);
	live_put(a->d, l);
}

static void session(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra,
		    size_t extra_n, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct attach *a = cls;
	a->sock = sock;
	a->result = "detached";
	a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ws_reader_init(&a->rd, true, ATTACH_MAX_MESSAGE, ATTACH_MAX_MESSAGE);
	if (a->efd < 0 || proc_subscribe(a->p, a->efd) < 0) {
		fail(a, WS_CLOSE_INTERNAL, "too many readers of this process");
	} else {
		session_loop(a, extra, extra_n);
		proc_unsubscribe(a->p, a->efd);
	}
	if (a->efd >= 0)
		close(a->efd);
	ws_reader_free(&a->rd);
	free(a->pending);
	a->pending = NULL;
	if (a->foreground)
		remove_foreground(a);
	audit(a->d, &a->c, "process_attach", a->sandbox_id, NULL, NULL, NULL, a->result,
	      mono_ms() - a->t0);
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

void *attach_response_new(struct daemon *d, struct live *l, struct proc *p,
			  const struct api_request *r, const struct client *c, struct attach **ctx,
			  agentd_error *err)
{
	uint64_t kept_from, end;
	proc_output_span(p, PROC_STDOUT, &kept_from, &end);
	if (r->has_offset && r->offset > end) {
		agentd_error_set(err, ERANGE, "offset %llu is past the output's end (%llu)",
				 (unsigned long long)r->offset, (unsigned long long)end);
		return NULL;
	}
	struct MHD_Response *resp = NULL;
	struct attach *a = xcalloc(1, sizeof(*a));
	a->d = d;
	a->p = p;
	snprintf(a->sandbox_id, sizeof(a->sandbox_id), "%s", l->id);
	a->c = *c;
	a->foreground = r->foreground;
	a->offset = r->has_offset ? r->offset : end;
	a->efd = a->sock = -1;
	a->t0 = mono_ms();
	char accept[29];
	ws_accept_key(r->ws_key, accept);
	if (!(resp = MHD_create_response_for_upgrade(session, a)) ||
	    MHD_add_response_header(resp, "Upgrade", "websocket") != MHD_YES ||
	    MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept) != MHD_YES) {
		if (resp)
			MHD_destroy_response(resp);
		a->p = NULL; /* the caller keeps its reference on failure */
		free(a);
		agentd_error_set(err, ENOMEM, "attach: could not build the upgrade response");
		return NULL;
	}
	*ctx = a;
	return resp;
}
