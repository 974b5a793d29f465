/* proxy.c: the egress proxy of network mode "allowlist" — one thread, one epoll loop, a
 * bounded table of connections, each a small state machine: header → (resolve) → connect →
 * relay with backpressure. Listeners are sockets inside sandboxes' network namespaces. */
#include "lib/net/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "lib/net/proxy.h"

/* ------------------------------------------------------------ logging */

void proxy_log_line(void *ud, const agentd_netlog *ev)
{
	static const char *const names[] = {"", "allowed", "DENIED", "closed"};
	char target[300];
	if (strchr(ev->host, ':'))
		snprintf(target, sizeof(target), "[%s]:%u", ev->host, ev->port);
	else
		snprintf(target, sizeof(target), "%s:%u", ev->host[0] ? ev->host : "?", ev->port);
	if (ev->event == AGENTD_NETLOG_CLOSED)
		fprintf(stderr,
			"agentd: net: sandbox %s: closed %s %s (%s): %llu bytes up, %llu down, "
			"%llu ms%s%s\n",
			ev->sandbox_id, ev->method, target, ev->address,
			(unsigned long long)ev->bytes_up, (unsigned long long)ev->bytes_down,
			(unsigned long long)ev->duration_ms, ev->reason[0] ? ": " : "", ev->reason);
	else
		fprintf(stderr, "agentd: net: sandbox %s: %s %s %s%s%s%s: %s\n", ev->sandbox_id,
			names[ev->event], ev->method[0] ? ev->method : "request", target,
			ev->address[0] ? " (" : "", ev->address, ev->address[0] ? ")" : "",
			ev->reason);
}

static void emit(struct agentd_proxy *p, struct conn *c, agentd_netlog_event e, const char *reason)
{
	agentd_netlog ev = {
	    .event = e,
	    .sandbox_id = c->l->id,
	    .method = c->req.method,
	    .host = c->req.host,
	    .port = c->req.port,
	    .address = c->addr,
	    .reason = reason ? reason : "",
	    .bytes_up = c->bytes_up,
	    .bytes_down = c->bytes_down,
	    .duration_ms = now_ms_monotonic() - c->t0,
	};
	p->cfg.on_log(p->cfg.log_userdata, &ev);
}

/* ------------------------------------------------------------ connections */

static void set_interest(struct agentd_proxy *p, struct conn *c, int fd, int kind, uint32_t *cur,
			 uint32_t want)
{
	if (fd < 0 || *cur == want)
		return;
	struct epoll_event ev = {.events = want, .data.u64 = TAG(kind, c - p->conns, c->gen)};
	epoll_ctl(p->ep, EPOLL_CTL_MOD, fd, &ev);
	*cur = want;
}

static size_t room(const struct agentd_proxy *p, const struct buf *b)
{
	/* the pipe takes over once the memory part is drained (see fill_splice) */
	if (b->pipe[0] >= 0 && b->len == b->off)
		return b->pipe_cap - b->plen;
	return PROXY_MEM_BUF - b->len;
}

static bool pending(const struct buf *b)
{
	return b->len > b->off || b->plen;
}

/* Interest follows the buffers: read a side only while the buffer towards the other has
 * room (backpressure), write a side only while something waits for it. */
static void update_interest(struct agentd_proxy *p, struct conn *c)
{
	uint32_t cw = 0, uw = 0;
	switch (c->state) {
	case ST_HEADER:
		cw = EPOLLIN;
		break;
	case ST_RESOLVE:
		break;
	case ST_CONNECT:
		uw = EPOLLOUT;
		cw = pending(&c->down) ? EPOLLOUT : 0;
		break;
	case ST_RELAY:
		if (!c->ceof && room(p, &c->up))
			cw |= EPOLLIN;
		if (pending(&c->down))
			cw |= EPOLLOUT;
		if (!c->ueof && room(p, &c->down))
			uw |= EPOLLIN;
		if (pending(&c->up) && !c->sni_pending)
			uw |= EPOLLOUT;
		break;
	}
	set_interest(p, c, c->cfd, TAG_CLIENT, &c->cev, cw);
	set_interest(p, c, c->ufd, TAG_UPSTREAM, &c->uev, uw);
}

void proxy_conn_close(struct agentd_proxy *p, struct conn *c, const char *how)
{
	if (c->state == ST_RELAY)
		emit(p, c, AGENTD_NETLOG_CLOSED, how);
	if (c->cfd >= 0)
		close(c->cfd);
	if (c->ufd >= 0)
		close(c->ufd);
	free(c->up.p);
	free(c->down.p);
	for (int i = 0; i < 2; i++) {
		if (c->up.pipe[i] >= 0)
			close(c->up.pipe[i]);
		if (c->down.pipe[i] >= 0)
			close(c->down.pipe[i]);
	}
	c->l->nconns--;
	uint32_t gen = c->gen + 1;
	memset(c, 0, sizeof(*c));
	c->gen = gen;
	c->cfd = c->ufd = -1;
	p->free_slots[p->nfree++] = (uint32_t)(c - p->conns);
	p->used_conns--;
}

/* Refuse with an HTTP status the client can show, log the reason, close. */
static void conn_deny(struct agentd_proxy *p, struct conn *c, int status, const char *reason)
{
	static const struct {
		int code;
		const char *text;
	} statuses[] = {{400, "Bad Request"},	      {403, "Forbidden"},
			{408, "Request Timeout"},     {502, "Bad Gateway"},
			{503, "Service Unavailable"}, {504, "Gateway Timeout"}};
	const char *text = "Forbidden";
	for (size_t i = 0; i < ARRAY_SIZE(statuses); i++)
		if (statuses[i].code == status)
			text = statuses[i].text;
	emit(p, c, AGENTD_NETLOG_DENIED, reason);
	if (c->socks == 3) {
		/* the SOCKS5 greeting was refused with its own reply */
	} else if (c->socks && c->state != ST_RELAY) {
		/* RFC 1928 replies: 2 not allowed by ruleset, 4 host unreachable, 1 failure */
		uint8_t rep[10] = {5, status == 403 ? 2 : status >= 502 ? 4 : 1, 0, 1};
		if (send(c->cfd, rep, sizeof(rep), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			/* the client is gone: nothing to tell */
		}
	} else if (c->state != ST_RELAY) {
		char body[512], msg[1024];
		int bn = snprintf(body, sizeof(body), "agentd egress proxy: %s %s:%u denied: %s\n",
				  c->req.method[0] ? c->req.method : "request",
				  c->req.host[0] ? c->req.host : "?", c->req.port, reason);
		if (bn < 0 || (size_t)bn >= sizeof(body))
			bn = (int)strlen(body);
		int n =
		    snprintf(msg, sizeof(msg),
			     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nConnection: close\r\n"
			     "Content-Length: %d\r\n\r\n%s",
			     status, text, bn, body);
		if (n > 0 && (size_t)n < sizeof(msg) &&
		    send(c->cfd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			/* the client is gone: nothing to tell */
		}
		/* Unread bytes would turn close() into a reset that can discard the answer
		 * before the client reads it: end our side, drain what is queued (bounded). */
		shutdown(c->cfd, SHUT_WR);
		for (int i = 0; i < 4 && recv(c->cfd, msg, sizeof(msg), MSG_DONTWAIT) > 0; i++)
			;
	}
	if (c->ufd >= 0) {
		close(c->ufd);
		c->ufd = -1;
	}
	c->state = ST_HEADER; /* no "closed" record: it was never allowed through */
	proxy_conn_close(p, c, NULL);
}

static void fmt_addr(struct conn *c, const struct resolved_addr *a)
{
	inet_ntop(a->af, a->addr, c->addr, sizeof(c->addr));
}

static void start_connect(struct agentd_proxy *p, struct conn *c);
static void check_sni(struct agentd_proxy *p, struct conn *c);

static void connect_next_or_fail(struct agentd_proxy *p, struct conn *c, int e)
{
	if (c->ufd >= 0) {
		epoll_ctl(p->ep, EPOLL_CTL_DEL, c->ufd, NULL);
		close(c->ufd);
		c->ufd = -1;
		c->uev = 0;
	}
	if (c->next_addr < c->naddrs) {
		start_connect(p, c);
		return;
	}
	char why[160];
	snprintf(why, sizeof(why), "connect %s: %s", c->addr, strerror(e));
	conn_deny(p, c, 502, why);
}

static void start_connect(struct agentd_proxy *p, struct conn *c)
{
	const struct resolved_addr *a = &c->addrs[c->next_addr++];
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	if (a->af == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(c->req.port);
		memcpy(&in->sin_addr, a->addr, 4);
		sl = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(c->req.port);
		memcpy(&in6->sin6_addr, a->addr, 16);
		sl = sizeof(*in6);
	}
	fmt_addr(c, a);
	c->state = ST_CONNECT;
	c->ufd = socket(a->af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (c->ufd < 0) {
		connect_next_or_fail(p, c, errno);
		return;
	}
	int one = 1;
	setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->ufd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
		connect_next_or_fail(p, c, errno);
		return;
	}
	struct epoll_event ev = {.events = EPOLLOUT,
				 .data.u64 = TAG(TAG_UPSTREAM, c - p->conns, c->gen)};
	if (epoll_ctl(p->ep, EPOLL_CTL_ADD, c->ufd, &ev) < 0) {
		connect_next_or_fail(p, c, errno);
		return;
	}
	c->uev = EPOLLOUT;
	update_interest(p, c);
}

static void queue_down(struct agentd_proxy *p, struct conn *c, const char *s)
{
	size_t n = strlen(s);
	if (n <= room(p, &c->down)) {
		memcpy(c->down.p + c->down.len, s, n);
		c->down.len += n;
	}
}

/* Upstream connected: answer a CONNECT, or send the rewritten request line and headers. */
static void connected(struct agentd_proxy *p, struct conn *c)
{
	int e = 0;
	socklen_t el = sizeof(e);
	if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
		e = errno;
	if (e) {
		connect_next_or_fail(p, c, e);
		return;
	}
	char why[200];
	snprintf(why, sizeof(why), "listed by \"%s\"", c->by->text);
	emit(p, c, AGENTD_NETLOG_ALLOWED, why);
	c->down.p = xmalloc(PROXY_MEM_BUF);
	if (c->req.is_connect) {
		/* bytes after the header (an eager ClientHello) stay queued in up */
		memmove(c->up.p, c->up.p + c->req.header_len, c->up.len - c->req.header_len);
		c->up.len -= c->req.header_len;
		c->sni_pending = !c->req.host_is_addr;
		if (c->socks) {
			/* succeeded; the bound address is nothing the sandbox needs to know */
			static const uint8_t ok[10] = {5, 0, 0, 1};
			memcpy(c->down.p, ok, sizeof(ok));
			c->down.len = sizeof(ok);
		} else {
			queue_down(p, c, "HTTP/1.1 200 Connection established\r\n\r\n");
		}
	} else {
		uint8_t *out = xmalloc(PROXY_MEM_BUF);
		size_t n = http_rewrite_request(c->up.p, &c->req, out, PROXY_MEM_BUF);
		size_t rest = c->up.len - c->req.header_len;
		if (n == 0 || rest > PROXY_MEM_BUF - n) {
			free(out);
			conn_deny(p, c, 400, "request does not fit the buffer once rewritten");
			return;
		}
		memcpy(out + n, c->up.p + c->req.header_len, rest);
		free(c->up.p);
		c->up.p = out;
		c->up.len = n + rest;
	}
	c->state = ST_RELAY;
	/* until the ClientHello is judged, the header's clock still runs */
	c->deadline = now_ms_monotonic() +
		      (c->sni_pending ? p->cfg.header_timeout_ms : p->cfg.idle_timeout_ms);
	if (c->sni_pending && c->up.len) {
		uint32_t gen = c->gen;
		check_sni(p, c); /* an eager client sent it with the CONNECT */
		if (!c->used || c->gen != gen)
			return;
	}
	update_interest(p, c);
}

void proxy_on_resolved(struct agentd_proxy *p, const struct resolve_result *r)
{
	uint32_t slot = (uint32_t)(r->tag & 0xffffffffu), gen = (uint32_t)(r->tag >> 32);
	if (slot >= p->nconns)
		return;
	struct conn *c = &p->conns[slot];
	if (!c->used || c->gen != gen || c->state != ST_RESOLVE)
		return; /* closed (timeout, removal) while the lookup ran */
	if (r->error) {
		char why[200];
		snprintf(why, sizeof(why), "cannot resolve %s: %s", c->req.host,
			 gai_strerror(r->error));
		conn_deny(p, c, 502, why);
		return;
	}
	char why[200] = "no address";
	const struct np_entry *by = NULL;
	for (size_t i = 0; i < r->n; i++) {
		char w[200];
		if (netpolicy_decide_resolved(&c->l->np, c->by_name, r->a[i].af, r->a[i].addr,
					      c->req.port, &by, w, sizeof(w))) {
			if (!c->naddrs)
				c->by = by;
			c->addrs[c->naddrs++] = r->a[i];
		} else if (!c->naddrs) {
			memcpy(why, w, sizeof(why));
			fmt_addr(c, &r->a[i]);
		}
	}
	if (!c->naddrs) {
		conn_deny(p, c, 403, why);
		return;
	}
	start_connect(p, c);
}

/* The request header is complete: judge it. */
static void decide(struct agentd_proxy *p, struct conn *c)
{
	const struct netpolicy *np = &c->l->np;
	char why[200];
	c->deadline = now_ms_monotonic() + p->cfg.connect_timeout_ms;
	if (c->req.host_is_addr) {
		struct resolved_addr a = {.af = c->req.af};
		memcpy(a.addr, c->req.addr, 16);
		fmt_addr(c, &a);
		if (!netpolicy_decide_literal(np, a.af, a.addr, c->req.port, &c->by, why,
					      sizeof(why))) {
			conn_deny(p, c, 403, why);
			return;
		}
		c->addrs[0] = a;
		c->naddrs = 1;
		start_connect(p, c);
		return;
	}
	c->by_name = netpolicy_match_name(np, c->req.host, c->req.port);
	/* An unlisted name is looked up only when a listed range, for this port, could
	 * contain it: the lookup itself would otherwise carry data out through DNS. */
	if (!c->by_name && !netpolicy_cidr_for_port(np, c->req.port)) {
		conn_deny(p, c, 403, "not in the allowlist");
		return;
	}
	if (resolver_submit(p->res, (uint64_t)c->gen << 32 | (uint32_t)(c - p->conns),
			    c->req.host) < 0) {
		conn_deny(p, c, 503, "too many name lookups waiting");
		return;
	}
	c->state = ST_RESOLVE;
	update_interest(p, c);
}

static void check_sni(struct agentd_proxy *p, struct conn *c)
{
	char sni[256];
	int r = tls_client_hello_sni(c->up.p + c->up.off, c->up.len - c->up.off, sni, sizeof(sni));
	if (r == TLS_INCOMPLETE) {
		if (room(p, &c->up) == 0)
			conn_deny(p, c, 400, "TLS ClientHello larger than the buffer");
		return;
	}
	if (r == TLS_MALFORMED) {
		conn_deny(p, c, 400, "malformed TLS ClientHello");
		return;
	}
	/* A TLS client that names nothing to a named target: what it reaches behind a
	 * shared frontend is not what the policy judged. */
	if (r == TLS_SNI_ABSENT && !c->req.host_is_addr) {
		conn_deny(p, c, 403, "TLS ClientHello without SNI for a CONNECT to a name");
		return;
	}
	if (r == TLS_SNI_FOUND && strcasecmp(sni, c->req.host) != 0) {
		char why[600];
		snprintf(why, sizeof(why), "TLS SNI \"%s\" does not match the CONNECT target", sni);
		conn_deny(p, c, 403, why);
		return;
	}
	c->sni_pending = false;
	update_interest(p, c);
}

/* Move what is pending in b to fd; false when the connection must close. */
static bool flush(struct buf *b, int fd, uint64_t *count)
{
	while (b->len > b->off) {
		ssize_t w = send(fd, b->p + b->off, b->len - b->off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN;
		}
		b->off += (size_t)w;
		*count += (uint64_t)w;
	}
	b->off = b->len = 0;
	while (b->plen) {
		ssize_t w =
		    splice(b->pipe[0], NULL, fd, NULL, b->plen, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN;
		}
		b->plen -= (size_t)w;
		*count += (uint64_t)w;
	}
	return true;
}

/* Read from fd into b; 1 data, 0 EOF, -1 error, 2 would block. */
static int fill(struct agentd_proxy *p, struct buf *b, int fd)
{
	if (b->off && b->len == PROXY_MEM_BUF) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	size_t space = room(p, b);
	if (!space)
		return 2;
	ssize_t n = recv(fd, b->p + b->len, space, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 2 : -1;
	if (n == 0)
		return 0;
	b->len += (size_t)n;
	return 1;
}

/* Read from fd into b's pipe (zero copy) when nothing waits in its memory buffer, so the
 * order of bytes is kept; the caller wants memory when it must look at the bytes.
 * 1 data, 0 EOF, -1 error, 2 would block or no room. */
static int fill_splice(struct agentd_proxy *p, struct buf *b, int fd)
{
	if (b->pipe[0] < 0) {
		if (pipe2(b->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
			b->pipe[0] = b->pipe[1] = -1;
			b->no_splice = true;
			return fill(p, b, fd);
		}
		/* Pages are taken as data comes, so a large pipe costs only what is in
		 * flight; the kernel may give less (unprivileged pipe limits). */
		int sz = fcntl(b->pipe[1], F_SETPIPE_SZ, (int)p->cfg.buffer_bytes);
		if (sz < 0)
			sz = fcntl(b->pipe[1], F_GETPIPE_SZ);
		b->pipe_cap = sz > 0 ? (size_t)sz : 65536;
	}
	size_t space = b->pipe_cap - b->plen;
	if (!space)
		return 2;
	ssize_t n = splice(fd, NULL, b->pipe[1], NULL, space, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n < 0) {
		if (errno == EINVAL) {
			b->no_splice = true;
			return fill(p, b, fd);
		}
		return errno == EAGAIN || errno == EINTR ? 2 : -1;
	}
	if (n == 0)
		return 0;
	b->plen += (size_t)n;
	return 1;
}

/* The new bytes buf[old..len) end the header, or hold what the parser refuses at once (a
 * bare LF, a NUL): only then is it worth parsing. */
static bool header_may_be_done(const uint8_t *buf, size_t old, size_t len)
{
	size_t from = old > 3 ? old - 3 : 0;
	if (memmem(buf + from, len - from, "\r\n\r\n", 4))
		return true;
	for (size_t i = old; i < len; i++)
		if (buf[i] == '\0' || (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r')))
			return true;
	return false;
}

/* SOCKS5: answer the greeting (no authentication), then read the CONNECT request; the
 * request then goes the way of an HTTP CONNECT. */
static int on_socks_data(struct conn *c, const char **why)
{
	if (!c->socks) {
		size_t used = 0;
		int r = socks5_parse_greeting(c->up.p, c->up.len, &used, why);
		if (r == HTTP_PARSE_BAD) {
			static const uint8_t no_method[2] = {5, 0xff};
			if (send(c->cfd, no_method, 2, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
				/* gone */
			}
			c->socks = 3;
		}
		if (r != HTTP_PARSE_DONE)
			return r;
		static const uint8_t no_auth[2] = {5, 0};
		if (send(c->cfd, no_auth, 2, MSG_DONTWAIT | MSG_NOSIGNAL) != 2) {
			*why = "SOCKS5 client does not take the method reply";
			return HTTP_PARSE_BAD;
		}
		memmove(c->up.p, c->up.p + used, c->up.len - used);
		c->up.len -= used;
		c->socks = 1;
	}
	int r = socks5_parse_request(c->up.p, c->up.len, &c->req, why);
	if (r == HTTP_PARSE_DONE)
		c->socks = 2;
	return r;
}

static void on_header_data(struct agentd_proxy *p, struct conn *c)
{
	size_t old = c->up.len;
	int r = fill(p, &c->up, c->cfd);
	if (r == 0 || r == -1) {
		proxy_conn_close(p, c, NULL);
		return;
	}
	if (r == 2)
		return;
	const char *why = NULL;
	int pr;
	if (c->socks || c->up.p[0] == 5) {
		pr = on_socks_data(c, &why);
	} else {
		/* Parse once the blank line is in: re-parsing on every byte of a header sent a
		 * byte at a time would cost the square of its length. */
		if (c->up.len < HTTP_MAX_HEADER && !header_may_be_done(c->up.p, old, c->up.len))
			return;
		pr = http_parse_request(c->up.p, c->up.len, &c->req, &why);
	}
	if (pr == HTTP_PARSE_MORE)
		return;
	if (pr == HTTP_PARSE_BAD) {
		conn_deny(p, c, 400, why);
		return;
	}
	decide(p, c);
}

#define RELAY_ROUNDS 16

static void relay(struct agentd_proxy *p, struct conn *c, bool from_client, uint32_t events)
{
	int src = from_client ? c->cfd : c->ufd, dst = from_client ? c->ufd : c->cfd;
	struct buf *in = from_client ? &c->up : &c->down, *out = from_client ? &c->down : &c->up;
	uint64_t *in_count = from_client ? &c->bytes_up : &c->bytes_down;
	uint64_t *out_count = from_client ? &c->bytes_down : &c->bytes_up;
	bool *eof = from_client ? &c->ceof : &c->ueof;

	if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN)) {
		proxy_conn_close(p, c, from_client ? "sandbox side reset" : "target reset");
		return;
	}
	/* pending towards this side */
	if ((events & EPOLLOUT) && !flush(out, src, out_count)) {
		proxy_conn_close(p, c, from_client ? "sandbox side reset" : "target reset");
		return;
	}
	/* While the source has data and the destination takes it all, keep relaying: a bulk
	 * transfer then costs one epoll round per burst, not one per chunk. */
	for (int round = 0; round < RELAY_ROUNDS && (events & EPOLLIN) && !*eof; round++) {
		bool inspect = from_client && c->sni_pending;
		int r = inspect || in->no_splice || in->len > in->off ? fill(p, in, src)
								      : fill_splice(p, in, src);
		if (r == -1) {
			proxy_conn_close(p, c, from_client ? "sandbox side reset" : "target reset");
			return;
		}
		if (r == 0)
			*eof = true;
		if (from_client && c->sni_pending) {
			uint32_t gen = c->gen;
			check_sni(p, c);
			if (!c->used || c->gen != gen)
				return;
		}
		/* forward at once: saves a round through epoll on the hot path */
		if (from_client && c->sni_pending)
			break;
		if (!flush(in, dst, in_count)) {
			proxy_conn_close(p, c, from_client ? "target reset" : "sandbox side reset");
			return;
		}
		if (pending(in) || r != 1)
			break; /* the destination is full, or the source is dry or ended */
	}
	if (!c->sni_pending)
		c->deadline = now_ms_monotonic() + p->cfg.idle_timeout_ms;
	/* half-close travels once the pending bytes are through */
	if (c->ceof && !pending(&c->up) && !c->ushut && !c->sni_pending) {
		shutdown(c->ufd, SHUT_WR);
		c->ushut = true;
	}
	if (c->ueof && !pending(&c->down) && !c->cshut) {
		shutdown(c->cfd, SHUT_WR);
		c->cshut = true;
	}
	if (c->ushut && c->cshut) {
		proxy_conn_close(p, c, NULL);
		return;
	}
	if (c->sni_pending && c->ceof) {
		conn_deny(p, c, 400, "closed before the TLS ClientHello was complete");
		return;
	}
	update_interest(p, c);
}

/* ------------------------------------------------------------ accept, timers */

static void pause_listeners(struct agentd_proxy *p, bool paused)
{
	for (size_t i = 0; i < p->nls; i++) {
		struct listener *l = p->ls[i];
		if (!l)
			continue;
		struct epoll_event ev = {.events = paused ? 0 : EPOLLIN,
					 .data.u64 = TAG(TAG_LISTENER, i, l->gen)};
		epoll_ctl(p->ep, EPOLL_CTL_MOD, l->fd, &ev);
	}
	p->listeners_paused = paused;
}

static void on_accept(struct agentd_proxy *p, struct listener *l)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			/* out of fds: stop accepting until the next tick instead of spinning */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				pause_listeners(p, true);
			return;
		}
		if (!p->nfree || l->nconns >= p->cfg.max_per_sandbox) {
			/* one sandbox must not take every slot from the others */
			struct conn tmp = {.l = l, .cfd = fd, .ufd = -1, .t0 = now_ms_monotonic()};
			emit(p, &tmp, AGENTD_NETLOG_DENIED,
			     p->nfree ? "too many connections from this sandbox"
				      : "too many connections through the proxy");
			close(fd);
			continue;
		}
		uint32_t slot = p->free_slots[--p->nfree];
		struct conn *c = &p->conns[slot];
		c->used = true;
		c->state = ST_HEADER;
		c->l = l;
		l->nconns++;
		c->cfd = fd;
		c->ufd = -1;
		c->up.pipe[0] = c->up.pipe[1] = c->down.pipe[0] = c->down.pipe[1] = -1;
		c->up.p = xmalloc(PROXY_MEM_BUF);
		c->t0 = now_ms_monotonic();
		c->deadline = c->t0 + p->cfg.header_timeout_ms;
		p->used_conns++;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct epoll_event ev = {.events = EPOLLIN,
					 .data.u64 = TAG(TAG_CLIENT, slot, c->gen)};
		c->cev = EPOLLIN;
		if (epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			proxy_conn_close(p, c, NULL);
	}
}

void proxy_sweep(struct agentd_proxy *p, uint64_t now)
{
	if (p->listeners_paused)
		pause_listeners(p, false);
	for (size_t i = 0; i < p->nconns; i++) {
		struct conn *c = &p->conns[i];
		if (!c->used || now < c->deadline)
			continue;
		char why[128];
		switch (c->state) {
		case ST_HEADER:
			snprintf(why, sizeof(why), "request header not complete within %u ms",
				 p->cfg.header_timeout_ms);
			conn_deny(p, c, 408, why);
			break;
		case ST_RESOLVE:
		case ST_CONNECT:
			snprintf(why, sizeof(why), "no connection to the target within %u ms",
				 p->cfg.connect_timeout_ms);
			conn_deny(p, c, 504, why);
			break;
		case ST_RELAY:
			if (c->sni_pending) {
				conn_deny(p, c, 408, "TLS ClientHello not complete in time");
			} else {
				snprintf(why, sizeof(why), "idle for %u ms",
					 p->cfg.idle_timeout_ms);
				proxy_conn_close(p, c, why);
			}
			break;
		}
	}
}

void proxy_dispatch(struct agentd_proxy *p, uint64_t tag, uint32_t events)
{
	unsigned kind = tag & 3;
	uint32_t slot = (uint32_t)(tag >> 2) & 0x3fffffffu, gen = (uint32_t)(tag >> 32);
	if (kind == TAG_LISTENER) {
		if (slot < p->nls && p->ls[slot] && p->ls[slot]->gen == gen)
			on_accept(p, p->ls[slot]);
		return;
	}
	if (slot >= p->nconns)
		return;
	struct conn *c = &p->conns[slot];
	if (!c->used || c->gen != gen)
		return; /* closed earlier in this batch */
	bool client = kind == TAG_CLIENT;
	switch (c->state) {
	case ST_HEADER:
		if (client)
			on_header_data(p, c);
		break;
	case ST_RESOLVE:
		if (client && events & (EPOLLHUP | EPOLLERR))
			proxy_conn_close(p, c, NULL);
		break;
	case ST_CONNECT:
		if (!client)
			connected(p, c);
		else if (events & (EPOLLHUP | EPOLLERR))
			proxy_conn_close(p, c, NULL);
		break;
	case ST_RELAY:
		relay(p, c, client, events);
		break;
	}
}
