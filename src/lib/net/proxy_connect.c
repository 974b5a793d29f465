/* proxy_connect.c: the egress proxy's decision on a parsed request (allowlist, resolution,
 * address classes), the connection to the target, and the TLS SNI check of a CONNECT. */
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


static void proxy_start_connect(struct agentd_proxy *p, struct conn *c);

static void fmt_addr(struct conn *c, const struct resolved_addr *a)
{
	inet_ntop(a->af, a->addr, c->addr, sizeof(c->addr));
}


static void connect_next_or_fail(struct agentd_proxy *p, struct conn *c, int e)
{
	if (c->ufd >= 0) {
		epoll_ctl(p->ep, EPOLL_CTL_DEL, c->ufd, NULL);
		close(c->ufd);
		c->ufd = -1;
		c->uev = 0;
	}
	if (c->next_addr < c->naddrs) {
		proxy_start_connect(p, c);
		return;
	}
	char why[160];
	snprintf(why, sizeof(why), "connect %s: %s", c->addr, strerror(e));
	proxy_conn_deny(p, c, 502, why);
}

static void proxy_start_connect(struct agentd_proxy *p, struct conn *c)
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
	proxy_update_interest(p, c);
}

static void proxy_queue_down(struct agentd_proxy *p, struct conn *c, const char *s)
{
	size_t n = strlen(s);
	if (n <= proxy_room(p, &c->down)) {
		memcpy(c->down.p + c->down.len, s, n);
		c->down.len += n;
	}
}

/* The request header at the start of c->up's pending bytes, parsed into req (whose host and
 * port are the judged target), replaced by its rewrite for the origin; the bytes after it
 * follow unchanged. False when it does not fit. */
static bool rewrite_pending_request(struct conn *c, const struct http_request *req)
{
	const uint8_t *head = c->up.p + c->up.off;
	size_t have = c->up.len - c->up.off;
	uint8_t *out = xmalloc(PROXY_MEM_BUF);
	size_t n = http_rewrite_request(head, req, out, PROXY_MEM_BUF);
	size_t rest = have - req->header_len;
	if (n == 0 || rest > PROXY_MEM_BUF - n) {
		free(out);
		return false;
	}
	memcpy(out + n, head + req->header_len, rest);
	free(c->up.p);
	c->up.p = out;
	c->up.off = 0;
	c->up.len = n + rest;
	return true;
}

/* Upstream connected: answer a CONNECT, or send the rewritten request line and headers. */
void proxy_connected(struct agentd_proxy *p, struct conn *c)
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
	proxy_emit(p, c, AGENTD_NETLOG_ALLOWED, why);
	c->down.p = xmalloc(PROXY_MEM_BUF);
	if (c->req.is_connect) {
		/* bytes after the header (an eager ClientHello) stay queued in up */
		memmove(c->up.p, c->up.p + c->req.header_len, c->up.len - c->req.header_len);
		c->up.len -= c->req.header_len;
		c->inspect_pending = !c->req.host_is_addr;
		c->first_line_done =
		    memchr(c->up.p, '\n', c->up.len) || memchr(c->up.p, '\0', c->up.len);
		if (c->socks) {
			/* succeeded; the bound address is nothing the sandbox needs to know */
			static const uint8_t ok[10] = {5, 0, 0, 1};
			memcpy(c->down.p, ok, sizeof(ok));
			c->down.len = sizeof(ok);
		} else {
			proxy_queue_down(p, c, "HTTP/1.1 200 Connection established\r\n\r\n");
		}
	} else if (!rewrite_pending_request(c, &c->req)) {
		proxy_conn_deny(p, c, 400, "request does not fit the buffer once rewritten");
		return;
	}
	c->state = ST_RELAY;
	/* until the ClientHello is judged, the header's clock still runs */
	c->deadline = now_ms_monotonic() +
		      (c->inspect_pending ? p->cfg.header_timeout_ms : p->cfg.idle_timeout_ms);
	if (c->inspect_pending && c->up.len) {
		uint32_t gen = c->gen;
		proxy_inspect_tunnel(p, c); /* an eager client sent it with the CONNECT */
		if (!c->used || c->gen != gen)
			return;
	}
	proxy_update_interest(p, c);
}

void proxy_on_resolved(struct agentd_proxy *p, const struct resolve_result *r)
{
	uint32_t slot = (uint32_t)(r->tag & 0xffffffffu), gen = (uint32_t)(r->tag >> 32);
	if (slot >= p->nconns)
		return;
	struct conn *c = &p->conns[slot];
	if (!c->used || c->gen != gen || c->state != ST_RESOLVE)
		return; /* closed (timeout, removal) while the lookup ran */
	c->lookup_pending = false;
	c->deadline = now_ms_monotonic() + p->cfg.connect_timeout_ms;
	if (r->error) {
		char why[200];
		snprintf(why, sizeof(why), "cannot resolve %s: %s", c->req.host,
			 gai_strerror(r->error));
		proxy_conn_deny(p, c, 502, why);
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
		proxy_conn_deny(p, c, 403, why);
		return;
	}
	proxy_start_connect(p, c);
}

/* issue 12: names. A header still being read is judged later, by whatever list is the
 * listener's then; a target that was judged is judged again: its name (or address), then
 * the address it is connected or connecting to and those left to try. */
bool proxy_rejudge(const struct netpolicy *np, struct conn *c)
{
	const struct np_entry *by = NULL, *by_name = NULL;
	char why[200];
	if (c->state == ST_HEADER)
		return true;
	if (c->req.host_is_addr) {
		if (!netpolicy_decide_literal(np, c->req.af, c->req.addr, c->req.port, &by, why,
					      sizeof(why)))
			return false;
		c->by = by;
		return true;
	}
	by_name = netpolicy_match_name(np, c->req.host, c->req.port);
	if (!by_name && !netpolicy_every_address_for_port(np, c->req.port))
		return false;
	/* the one in use (connecting or connected), then the ones left: those the new list
	 * refuses are dropped */
	size_t first = c->state == ST_RESOLVE || !c->next_addr ? c->next_addr : c->next_addr - 1;
	size_t kept = first;
	for (size_t i = first; i < c->naddrs; i++) {
		const struct np_entry *e = NULL;
		if (netpolicy_decide_resolved(np, by_name, c->addrs[i].af, c->addrs[i].addr,
					      c->req.port, &e, why, sizeof(why))) {
			if (!by)
				by = e;
			c->addrs[kept++] = c->addrs[i];
		} else if (i == first && c->state != ST_RESOLVE) {
			return false; /* the address in use */
		}
	}
	c->naddrs = kept;
	c->by_name = by_name;
	if (by)
		c->by = by;
	return c->state == ST_RESOLVE || by;
}

/* The request header is complete: judge it. */
void proxy_decide(struct agentd_proxy *p, struct conn *c)
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
			proxy_conn_deny(p, c, 403, why);
			return;
		}
		c->addrs[0] = a;
		c->naddrs = 1;
		proxy_start_connect(p, c);
		return;
	}
	c->by_name = netpolicy_match_name(np, c->req.host, c->req.port);
	/* Only a listed name is looked up (or any, when every address is listed for the
	 * port): the lookup itself would otherwise carry data out through DNS. */
	if (!c->by_name && !netpolicy_every_address_for_port(np, c->req.port)) {
		proxy_conn_deny(p, c, 403, "not in the allowlist");
		return;
	}
	resolver_submit(p->res, listener_key(c->l), conn_tag(p, c), c->req.host);
	c->lookup_pending = true;
	c->deadline = now_ms_monotonic() + p->cfg.lookup_timeout_ms;
	c->state = ST_RESOLVE;
	proxy_update_interest(p, c);
}

static void check_sni(struct agentd_proxy *p, struct conn *c)
{
	char sni[256];
	int r = tls_client_hello_sni(c->up.p + c->up.off, c->up.len - c->up.off, sni, sizeof(sni));
	if (r == TLS_INCOMPLETE) {
		if (proxy_room(p, &c->up) == 0)
			proxy_conn_deny(p, c, 400, "TLS ClientHello larger than the buffer");
		return;
	}
	if (r == TLS_MALFORMED) {
		proxy_conn_deny(p, c, 400, "malformed TLS ClientHello");
		return;
	}
	/* A TLS client that names nothing to a named target: what it reaches behind a
	 * shared frontend is not what the policy judged. */
	if (r == TLS_SNI_ABSENT && !c->req.host_is_addr) {
		proxy_conn_deny(p, c, 403, "TLS ClientHello without SNI for a CONNECT to a name");
		return;
	}
	if (r == TLS_SNI_FOUND && strcasecmp(sni, c->req.host) != 0) {
		char why[600];
		snprintf(why, sizeof(why), "TLS SNI \"%s\" does not match the CONNECT target", sni);
		proxy_conn_deny(p, c, 403, why);
		return;
	}
	c->inspect_pending = false;
	proxy_update_interest(p, c);
}

/* A plain-HTTP request through a tunnel to a name: the rule of absolute-URI proxying applies
 * (Host is the judged target, whatever the sandbox wrote; the connection closes after the
 * answer, so no later request on it is read by the server). Behind a shared frontend (a CDN)
 * another Host would reach another tenant. */
static void pin_tunnel_request(struct agentd_proxy *p, struct conn *c)
{
	struct http_request treq;
	const char *why = NULL;
	int r = http_parse_tunnel_request(c->up.p + c->up.off, c->up.len - c->up.off, &treq, &why);
	if (r == HTTP_PARSE_MORE) {
		if (proxy_room(p, &c->up) == 0)
			proxy_conn_deny(p, c, 400, "HTTP request in the tunnel larger than the buffer");
		return;
	}
	if (r == HTTP_PARSE_BAD) {
		char msg[200];
		snprintf(msg, sizeof(msg), "HTTP request in a tunnel to a name: %s", why);
		proxy_conn_deny(p, c, 403, msg);
		return;
	}
	memcpy(treq.host, c->req.host, sizeof(treq.host));
	treq.port = c->req.port;
	treq.host_is_addr = false;
	if (!rewrite_pending_request(c, &treq)) {
		proxy_conn_deny(p, c, 400, "HTTP request in the tunnel does not fit once rewritten");
		return;
	}
	c->inspect_pending = false;
	proxy_update_interest(p, c);
}

/* The first bytes through a tunnel to a name, before any goes out. */
void proxy_inspect_tunnel(struct agentd_proxy *p, struct conn *c)
{
	switch (tunnel_classify(c->up.p + c->up.off, c->up.len - c->up.off)) {
	case TUNNEL_MORE:
		if (proxy_room(p, &c->up) == 0)
			proxy_conn_deny(p, c, 400, "first line of the tunnel larger than the buffer");
		return;
	case TUNNEL_HTTP:
		pin_tunnel_request(p, c);
		return;
	case TUNNEL_OTHER:
		/* neither TLS nor HTTP/1.x (SSH, git, a database): no name to check */
		c->inspect_pending = false;
		proxy_update_interest(p, c);
		return;
	default:
		check_sni(p, c);
		return;
	}
}
