/* proxy.c: the egress proxy of network mode "allowlist" — one thread, one epoll loop, a
 * bounded table of connections, each a small state machine: header → (resolve) → connect
 * (proxy_connect.c) → relay with backpressure (proxy_relay.c). This file: the log, the
 * connection table, accept, timers and the dispatch of events. Listeners are sockets
 * inside sandboxes' network namespaces. */
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

void proxy_emit(struct agentd_proxy *p, struct conn *c, agentd_netlog_event e, const char *reason)
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

static void proxy_set_interest(struct agentd_proxy *p, struct conn *c, int fd, int kind, uint32_t *cur,
			 uint32_t want)
{
	if (fd < 0 || *cur == want)
		return;
	struct epoll_event ev = {.events = want, .data.u64 = TAG(kind, c - p->conns, c->gen)};
	epoll_ctl(p->ep, EPOLL_CTL_MOD, fd, &ev);
	*cur = want;
}

size_t proxy_room(const struct agentd_proxy *p, const struct buf *b)
{
	/* the pipe takes over once the memory part is drained (see fill_splice) */
	if (b->pipe[0] >= 0 && b->len == b->off)
		return b->pipe_cap - b->plen;
	return PROXY_MEM_BUF - b->len;
}

bool proxy_pending(const struct buf *b)
{
	return b->len > b->off || b->plen;
}

/* Interest follows the buffers: read a side only while the buffer towards the other has
 * room (backpressure), write a side only while something waits for it. */
void proxy_update_interest(struct agentd_proxy *p, struct conn *c)
{
	uint32_t cw = 0, uw = 0;
	switch (c->state) {
	case ST_HEADER:
		cw = EPOLLIN;
		break;
	case ST_RESOLVE:
		/* a client that ends its side while its target is looked up has left (or
		 * half-closed before any answer): its lookup is dropped, not made for nobody */
		cw = EPOLLRDHUP;
		break;
	case ST_CONNECT:
		uw = EPOLLOUT;
		cw = proxy_pending(&c->down) ? EPOLLOUT : 0;
		break;
	case ST_RELAY:
		if (!c->ceof && proxy_room(p, &c->up))
			cw |= EPOLLIN;
		if (proxy_pending(&c->down))
			cw |= EPOLLOUT;
		if (!c->ueof && proxy_room(p, &c->down))
			uw |= EPOLLIN;
		if (proxy_pending(&c->up) && !c->inspect_pending)
			uw |= EPOLLOUT;
		break;
	}
	proxy_set_interest(p, c, c->cfd, TAG_CLIENT, &c->cev, cw);
	proxy_set_interest(p, c, c->ufd, TAG_UPSTREAM, &c->uev, uw);
}

void proxy_conn_close(struct agentd_proxy *p, struct conn *c, const char *how)
{
	if (c->state == ST_RELAY)
		proxy_emit(p, c, AGENTD_NETLOG_CLOSED, how);
	if (c->lookup_pending) /* nobody waits for it: not worth a worker */
		resolver_cancel(p->res, listener_key(c->l), conn_tag(p, c));
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
void proxy_conn_deny(struct agentd_proxy *p, struct conn *c, int status, const char *reason)
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
	proxy_emit(p, c, AGENTD_NETLOG_DENIED, reason);
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

/* ------------------------------------------------------------ accept, timers */

static void pause_listeners(struct agentd_proxy *p, bool paused)
{
	for (size_t i = 0; i < p->nls; i++) {
		struct listener *l = p->ls[i];
		if (!l || l->fd < 0) /* issue 15: vm-map: served by handed connections only */
			continue;
		struct epoll_event ev = {.events = paused ? 0 : EPOLLIN,
					 .data.u64 = TAG(TAG_LISTENER, i, l->gen)};
		epoll_ctl(p->ep, EPOLL_CTL_MOD, l->fd, &ev);
	}
	p->listeners_paused = paused;
}

/* Why l may not open one more connection, or NULL. Each sandbox is guaranteed a share of
 * the table: another takes a slot beyond its own share only while the free ones still cover
 * every other sandbox's unused share (four busy sandboxes cannot take all 1024). */
static const char *slot_refused(const struct agentd_proxy *p, const struct listener *l)
{
	if (l->nconns >= p->cfg.max_per_sandbox)
		return "too many connections from this sandbox";
	if (!p->nfree)
		return "too many connections through the proxy";
	size_t share = p->cfg.max_connections / (p->nlisteners ? p->nlisteners : 1);
	if (share > PROXY_GUARANTEED_CONNS)
		share = PROXY_GUARANTEED_CONNS;
	if (share > p->cfg.max_per_sandbox)
		share = p->cfg.max_per_sandbox;
	if (l->nconns < share)
		return NULL;
	size_t reserved = 0;
	for (size_t i = 0; i < p->nls; i++) {
		const struct listener *o = p->ls[i];
		if (o && o != l && o->nconns < share)
			reserved += share - o->nconns;
	}
	return p->nfree > reserved ? NULL
				   : "too many connections from this sandbox (the rest is other "
				     "sandboxes' share)";
}

/* A client connection of l's sandbox (accepted, or handed over by agentd_proxy_add_connection)
 * into the table, or refused (logged) when l has no slot left; fd is taken. */
void proxy_take_client(struct agentd_proxy *p, struct listener *l, int fd)
{
	const char *full = slot_refused(p, l);
	if (full) {
		struct conn tmp = {.l = l, .cfd = fd, .ufd = -1, .t0 = now_ms_monotonic()};
		proxy_emit(p, &tmp, AGENTD_NETLOG_DENIED, full);
		close(fd);
		return;
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
	/* a connection holding a slot must use it soon */
	c->deadline = c->t0 + (p->cfg.silent_timeout_ms < p->cfg.header_timeout_ms
				   ? p->cfg.silent_timeout_ms
				   : p->cfg.header_timeout_ms);
	p->used_conns++;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* a socketpair: no-op */
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG(TAG_CLIENT, slot, c->gen)};
	c->cev = EPOLLIN;
	if (epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		proxy_conn_close(p, c, NULL);
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
		proxy_take_client(p, l, fd);
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
		char why[320]; /* a host name (253) fits */
		switch (c->state) {
		case ST_HEADER:
			if (c->up.len || c->socks)
				snprintf(why, sizeof(why), "request header not complete within %u ms",
					 p->cfg.header_timeout_ms);
			else
				snprintf(why, sizeof(why), "sent nothing within %u ms",
					 p->cfg.silent_timeout_ms);
			proxy_conn_deny(p, c, 408, why);
			break;
		case ST_RESOLVE:
			snprintf(why, sizeof(why), "no answer for %s within %u ms", c->req.host,
				 p->cfg.lookup_timeout_ms);
			proxy_conn_deny(p, c, 504, why);
			break;
		case ST_CONNECT:
			snprintf(why, sizeof(why), "no connection to the target within %u ms",
				 p->cfg.connect_timeout_ms);
			proxy_conn_deny(p, c, 504, why);
			break;
		case ST_RELAY:
			if (c->inspect_pending) {
				proxy_conn_deny(p, c, 408,
						"first bytes of the tunnel not complete in time");
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
			proxy_on_header_data(p, c);
		break;
	case ST_RESOLVE:
		if (client && events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
			proxy_conn_close(p, c, NULL);
		break;
	case ST_CONNECT:
		if (!client)
			proxy_connected(p, c);
		else if (events & (EPOLLHUP | EPOLLERR))
			proxy_conn_close(p, c, NULL);
		break;
	case ST_RELAY:
		proxy_relay(p, c, client, events);
		break;
	}
}
