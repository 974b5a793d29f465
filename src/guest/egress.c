/* egress.c: the guest's only way out under an allowlist — a listener on 127.0.0.1:3128 whose
 * every connection becomes a guest-opened stream to the host (GP_STREAM_OPEN/DATA/CLOSE),
 * where agentd's egress proxy applies the policy. Credit both ways: the socket is not read
 * while the host granted nothing, and the host may send at most what the guest granted. */
#include "guest/guest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAM_BUF GP_INITIAL_CREDIT

struct stream {
	uint32_t chan;
	struct watch sock;
	bool accepted, host_closed, guest_closed, rd_eof;
	uint64_t credit; /* what the guest may still send */
	uint8_t *buf;	 /* host data not yet written to the socket */
	size_t len;
};

static struct watch listener = {-1, NULL};
static uint32_t next_chan;
static struct stream *streams[GP_MAX_CHANNELS];

static struct stream *stream_of(struct watch *w)
{
	for (unsigned i = 0; i < GP_MAX_CHANNELS; i++)
		if (streams[i] && &streams[i]->sock == w)
			return streams[i];
	return NULL;
}

static void stream_events(struct stream *s)
{
	uint32_t ev = 0;
	if (s->accepted && !s->rd_eof && s->credit)
		ev |= EPOLLIN;
	if (s->len)
		ev |= EPOLLOUT;
	watch_mod(&s->sock, ev);
}

static void stream_free(struct stream *s)
{
	struct chan *c = chan_find(s->chan);
	if (c)
		chan_free(c);
	watch_del(&s->sock);
	for (unsigned i = 0; i < GP_MAX_CHANNELS; i++)
		if (streams[i] == s)
			streams[i] = NULL;
	free(s->buf);
	free(s);
}

/* This side's last frame; the channel ends once both sides sent theirs. */
static void guest_close(struct stream *s, int err)
{
	if (!s->guest_closed) {
		s->guest_closed = true;
		uint8_t buf[16];
		struct gp_writer w;
		gp_w_init(&w, buf, sizeof(buf));
		if (err)
			gp_w_u64(&w, GP_T_ERRNO, (uint64_t)err);
		send_frame(GP_STREAM_CLOSE, s->chan, buf, w.len);
	}
	if (s->host_closed && s->len == 0)
		stream_free(s);
	else
		stream_events(s);
}

static void on_sock(struct watch *w, uint32_t events)
{
	static uint8_t buf[GP_MAX_PAYLOAD];
	struct stream *s = stream_of(w);
	if (!s)
		return;
	if ((events & EPOLLOUT) && s->len) {
		ssize_t n = send(w->fd, s->buf, s->len, MSG_NOSIGNAL);
		if (n > 0) {
			memmove(s->buf, s->buf + n, s->len - (size_t)n);
			s->len -= (size_t)n;
			send_credit(s->chan, (uint64_t)n);
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			s->len = 0; /* the client is gone: drop what it will never read */
			guest_close(s, errno);
			return;
		}
		if (s->len == 0 && s->host_closed) {
			shutdown(w->fd, SHUT_WR);
			if (s->guest_closed) {
				stream_free(s);
				return;
			}
		}
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !s->rd_eof && s->credit) {
		size_t want = s->credit < sizeof(buf) ? (size_t)s->credit : sizeof(buf);
		ssize_t n = recv(w->fd, buf, want, 0);
		if (n > 0) {
			send_frame(GP_STREAM_DATA, s->chan, buf, (size_t)n);
			s->credit -= (uint64_t)n;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			s->rd_eof = true;
			guest_close(s, n == 0 ? 0 : errno);
			return;
		}
	}
	stream_events(s);
}

static void on_accept(struct watch *w, uint32_t events)
{
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	int fd = accept4(w->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct stream *s = calloc(1, sizeof(*s));
	unsigned slot = GP_MAX_CHANNELS;
	for (unsigned i = 0; i < GP_MAX_CHANNELS && slot == GP_MAX_CHANNELS; i++)
		if (!streams[i])
			slot = i;
	uint32_t id = 0;
	for (unsigned tries = 0; s && slot < GP_MAX_CHANNELS && tries < GP_MAX_CHANNELS; tries++) {
		next_chan = (next_chan + 1) & ~GP_GUEST_CHAN;
		if (next_chan && !chan_find(GP_GUEST_CHAN | next_chan)) {
			id = GP_GUEST_CHAN | next_chan;
			break;
		}
	}
	if (!s || !id || !(s->buf = malloc(STREAM_BUF)) || !chan_new(id, CHAN_STREAM, s)) {
		glog("egress: connection refused: no channel left");
		if (s)
			free(s->buf);
		free(s);
		close(fd);
		return;
	}
	s->chan = id;
	s->sock = (struct watch){fd, on_sock};
	s->credit = GP_INITIAL_CREDIT;
	streams[slot] = s;
	watch_add(&s->sock, 0);
	char addr[64], peerstr[80];
	inet_ntop(AF_INET, &peer.sin_addr, addr, sizeof(addr));
	snprintf(peerstr, sizeof(peerstr), "%s:%u", addr, ntohs(peer.sin_port));
	struct gp_writer wr;
	fields_begin(&wr);
	gp_w_str(&wr, GP_T_PEER, peerstr);
	send_fields(GP_STREAM_OPEN, id, &wr);
}

int egress_listen(void)
{
	if (listener.fd >= 0)
		return 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(GP_EGRESS_PORT),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	listener = (struct watch){fd, on_accept};
	return watch_add(&listener, EPOLLIN);
}

void egress_frame(struct chan *c, const struct gp_hdr *h, const uint8_t *p)
{
	struct stream *s = c->obj;
	struct gp_reader r;
	struct gp_field f;
	uint64_t v;
	switch (h->type) {
	case GP_OK: /* the host took the connection: start reading it */
		s->accepted = true;
		break;
	case GP_STREAM_DATA:
		if (s->host_closed || h->len > STREAM_BUF - s->len) {
			send_error(s->chan, EPROTO, "STREAM_DATA past the credit granted");
			return;
		}
		memcpy(s->buf + s->len, p, h->len);
		s->len += h->len;
		break;
	case GP_CREDIT:
		gp_r_init(&r, p, h->len);
		while (gp_r_next(&r, &f) == 1)
			if (f.tag == GP_T_BYTES && gp_f_u64(&f, &v) == 0)
				s->credit =
				    s->credit + v > (1ull << 40) ? 1ull << 40 : s->credit + v;
		break;
	case GP_STREAM_CLOSE:
		s->host_closed = true;
		if (!s->accepted) { /* refused by the host */
			s->len = 0;
			guest_close(s, ECONNREFUSED);
			return;
		}
		if (s->len == 0)
			shutdown(s->sock.fd, SHUT_WR);
		if (s->guest_closed && s->len == 0) {
			stream_free(s);
			return;
		}
		break;
	default:
		send_error(s->chan, EPROTO, "%s on a stream channel", gp_type_name(h->type));
		return;
	}
	stream_events(s);
}
