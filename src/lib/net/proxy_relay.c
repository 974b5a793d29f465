/* proxy_relay.c: the egress proxy's bytes — the request header (HTTP or SOCKS5) read up to
 * its end, then both directions relayed through memory or a pipe (splice), with
 * backpressure: a direction reads only what the other side has room for. */
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
	size_t space = proxy_room(p, b);
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
	if (b->pipe[0] < 0 && pipe_for_splice(b->pipe, p->cfg.buffer_bytes, &b->pipe_cap) < 0) {
		b->pipe[0] = b->pipe[1] = -1;
		b->no_splice = true;
		return fill(p, b, fd);
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

/* Whether the bytes a tunnel's client sent since old can change how its first bytes are
 * judged (the first byte, the end of the first line, the end of an HTTP header, a full
 * buffer): judging again on every byte of a line sent a byte at a time would cost the
 * square of its length. */
static bool tunnel_may_be_judged(const struct agentd_proxy *p, struct conn *c, size_t old)
{
	const uint8_t *s = c->up.p + c->up.off;
	size_t n = c->up.len - c->up.off;
	old -= c->up.off;
	if (n == old)
		return false;
	bool line_was_done = c->first_line_done;
	for (size_t i = old; i < n && !c->first_line_done; i++)
		c->first_line_done = s[i] == '\n' || s[i] == '\0';
	if (old == 0 || s[0] == 0x16 || proxy_room(p, &c->up) == 0)
		return true; /* a ClientHello's completeness is known from its record header */
	return line_was_done ? header_may_be_done(s, old, n) : c->first_line_done;
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

void proxy_on_header_data(struct agentd_proxy *p, struct conn *c)
{
	size_t old = c->up.len;
	int r = fill(p, &c->up, c->cfd);
	if (r == 0 || r == -1) {
		proxy_conn_close(p, c, NULL);
		return;
	}
	if (r == 2)
		return;
	if (!old) /* the first bytes: the header's own clock from now */
		c->deadline = c->t0 + p->cfg.header_timeout_ms;
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
		proxy_conn_deny(p, c, 400, why);
		return;
	}
	proxy_decide(p, c);
}

#define RELAY_ROUNDS 16

void proxy_relay(struct agentd_proxy *p, struct conn *c, bool from_client, uint32_t events)
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
		bool inspect = from_client && c->inspect_pending;
		size_t before = in->len;
		int r = inspect || in->no_splice || in->len > in->off ? fill(p, in, src)
								      : fill_splice(p, in, src);
		if (r == -1) {
			proxy_conn_close(p, c, from_client ? "sandbox side reset" : "target reset");
			return;
		}
		if (r == 0)
			*eof = true;
		if (from_client && c->inspect_pending && tunnel_may_be_judged(p, c, before)) {
			uint32_t gen = c->gen;
			proxy_inspect_tunnel(p, c);
			if (!c->used || c->gen != gen)
				return;
		}
		/* forward at once: saves a round through epoll on the hot path */
		if (from_client && c->inspect_pending)
			break;
		if (!flush(in, dst, in_count)) {
			proxy_conn_close(p, c, from_client ? "target reset" : "sandbox side reset");
			return;
		}
		if (proxy_pending(in) || r != 1)
			break; /* the destination is full, or the source is dry or ended */
	}
	if (!c->inspect_pending)
		c->deadline = now_ms_monotonic() + p->cfg.idle_timeout_ms;
	/* half-close travels once the pending bytes are through */
	if (c->ceof && !proxy_pending(&c->up) && !c->ushut && !c->inspect_pending) {
		shutdown(c->ufd, SHUT_WR);
		c->ushut = true;
	}
	if (c->ueof && !proxy_pending(&c->down) && !c->cshut) {
		shutdown(c->cfd, SHUT_WR);
		c->cshut = true;
	}
	if (c->ushut && c->cshut) {
		proxy_conn_close(p, c, NULL);
		return;
	}
	if (c->inspect_pending && c->ceof) {
		proxy_conn_deny(p, c, 400, "closed before the first bytes of the tunnel could be judged");
		return;
	}
	proxy_update_interest(p, c);
}
