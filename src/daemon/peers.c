/* peers.c: admission of the daemon's connections. Each starts "waiting" (no complete request
 * head yet, or over TCP no valid token) and must be admitted within the header timeout;
 * waiting ones are bounded per peer (IP, or uid on the unix socket) and overall, the oldest
 * evicted first, so idle or half-sent connections can neither outlast the timeout nor take
 * the room kept for admitted clients; every peer's connections are bounded too. */
#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct peer_conn {
	struct peer_conn *next, *prev;	/* in accept order: the oldest first */
	int fd;				/* a dup of the connection's socket, ours to shut down */
	uint64_t peer;			/* (family << 32) | IPv4 address or uid */
	uint64_t accepted_ms;
	bool admitted;
	bool evicted;			/* shut down by us, counted nowhere, closing */
};

struct peers {
	struct peers_cfg cfg;
	const char *what;		/* "unix socket", "tcp" */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct peer_conn *head, *tail;
	unsigned waiting, admitted;
	uint64_t evicted, refused, timed_out;	/* since the last log line */
	uint64_t logged_ms;
	bool stop;
	pthread_t reaper;
};

/* Answer (best effort, never blocking) and shut the socket: the connection's own thread sees
 * the end and closes it. */
static void shut(struct peers *p, struct peer_conn *c, int status, const char *msg)
{
	char body[256], buf[512];
	int bn = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n",
			  status == 408 ? "request_timeout" : "unavailable", msg);
	int n = snprintf(buf, sizeof(buf),
			 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
			 "Content-Length: %d\r\n\r\n%s",
			 status, status == 408 ? "Request Timeout" : "Service Unavailable", bn, body);
	if (send(c->fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* nothing to do: the shutdown below ends it anyway */
	}
	shutdown(c->fd, SHUT_RDWR);
	if (!c->evicted) {
		if (c->admitted)
			p->admitted--;
		else
			p->waiting--;
	}
	c->evicted = true;
}

static void count_peer(struct peers *p, uint64_t peer, unsigned *all, unsigned *waiting,
		       struct peer_conn **oldest_waiting)
{
	*all = *waiting = 0;
	*oldest_waiting = NULL;
	for (struct peer_conn *c = p->head; c; c = c->next) {
		if (c->evicted || c->peer != peer)
			continue;
		(*all)++;
		if (!c->admitted) {
			(*waiting)++;
			if (!*oldest_waiting)
				*oldest_waiting = c;
		}
	}
}

static struct peer_conn *oldest_waiting(struct peers *p)
{
	for (struct peer_conn *c = p->head; c; c = c->next)
		if (!c->evicted && !c->admitted)
			return c;
	return NULL;
}

static uint64_t peer_of(const struct peers *p, int fd, const struct sockaddr *addr)
{
	if (!p->cfg.tcp) {
		struct ucred uc;
		socklen_t len = sizeof(uc);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0)
			return (uint64_t)AF_UNIX << 32 | uc.uid;
		return (uint64_t)AF_UNIX << 32 | 0xffffffffu;
	}
	const struct sockaddr_in *sin = (const void *)addr;
	if (sin && sin->sin_family == AF_INET)
		return (uint64_t)AF_INET << 32 | ntohl(sin->sin_addr.s_addr);
	return (uint64_t)AF_INET6 << 32;
}

static void peer_name(const struct peers *p, uint64_t peer, char *out, size_t len)
{
	if (!p->cfg.tcp) {
		snprintf(out, len, "uid %u", (unsigned)(peer & 0xffffffffu));
		return;
	}
	struct in_addr a = {.s_addr = htonl((uint32_t)peer)};
	char s[INET_ADDRSTRLEN] = "?";
	inet_ntop(AF_INET, &a, s, sizeof(s));
	snprintf(out, len, "%s", s);
}

struct peer_conn *peers_connected(struct peers *p, int fd, const struct sockaddr *addr)
{
	struct peer_conn *c = xcalloc(1, sizeof(*c));
	c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	c->peer = peer_of(p, fd, addr);
	c->accepted_ms = now_ms_monotonic();
	pthread_mutex_lock(&p->lock);
	c->prev = p->tail;
	if (p->tail)
		p->tail->next = c;
	else
		p->head = c;
	p->tail = c;
	if (c->fd < 0) {
		c->fd = fd; /* valid for this call: shut it now, the dup is what we lacked */
		c->evicted = true;
		shutdown(fd, SHUT_RDWR);
		c->fd = -1;
		p->refused++;
		pthread_mutex_unlock(&p->lock);
		return c;
	}
	p->waiting++;
	unsigned all, waiting;
	struct peer_conn *old;
	count_peer(p, c->peer, &all, &waiting, &old);
	char who[64], msg[160];
	peer_name(p, c->peer, who, sizeof(who));
	if (all > p->cfg.max_per_peer || waiting > p->cfg.max_waiting_per_peer) {
		/* the peer's oldest waiting connection makes room, else this one goes */
		snprintf(msg, sizeof(msg), "too many connections from %s (at most %u, %u of them"
			 " waiting for a request)", who, p->cfg.max_per_peer,
			 p->cfg.max_waiting_per_peer);
		shut(p, old && old != c ? old : c, 503, msg);
		p->evicted++;
	}
	if (!c->evicted && p->waiting > p->cfg.max_connections / 2 && (old = oldest_waiting(p))) {
		snprintf(msg, sizeof(msg), "too many connections waiting for a request");
		shut(p, old, 503, msg);
		p->evicted++;
	}
	if (!c->evicted && p->waiting + p->admitted > p->cfg.max_connections) {
		snprintf(msg, sizeof(msg), "the daemon is at its limit of %u connections",
			 p->cfg.max_connections);
		shut(p, c, 503, msg);
		p->refused++;
	}
	pthread_mutex_unlock(&p->lock);
	return c;
}

bool peers_admit(struct peers *p, struct peer_conn *c)
{
	if (!c)
		return true; /* not tracked (cannot happen with the notify callback set) */
	pthread_mutex_lock(&p->lock);
	bool ok = !c->evicted;
	if (ok && !c->admitted) {
		c->admitted = true;
		p->waiting--;
		p->admitted++;
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

void peers_closed(struct peers *p, struct peer_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&p->lock);
	if (!c->evicted) {
		if (c->admitted)
			p->admitted--;
		else
			p->waiting--;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		p->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		p->tail = c->prev;
	pthread_mutex_unlock(&p->lock);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

/* Waiting connections past the header timeout are answered 408 and shut. */
static void *reaper_main(void *arg)
{
	struct peers *p = arg;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct timespec until = monotonic_after_ms(200);
		pthread_cond_timedwait(&p->cond, &p->lock, &until);
		uint64_t now = now_ms_monotonic();
		for (struct peer_conn *c = p->head; c; c = c->next) {
			if (c->accepted_ms + p->cfg.header_timeout_ms > now)
				break; /* accept order: the rest are younger */
			if (!c->evicted && !c->admitted) {
				shut(p, c, 408, "no complete request within the header timeout");
				p->timed_out++;
			}
		}
		if ((p->evicted || p->refused || p->timed_out) && now - p->logged_ms >= 10000) {
			dlog("warn", "msg=\"connections shut before a request\" listener=\"%s\""
				     " evicted=%llu refused=%llu timed_out=%llu waiting=%u admitted=%u",
			     p->what, (unsigned long long)p->evicted,
			     (unsigned long long)p->refused, (unsigned long long)p->timed_out,
			     p->waiting, p->admitted);
			p->evicted = p->refused = p->timed_out = 0;
			p->logged_ms = now;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct peers *peers_new(const struct peers_cfg *cfg, agentd_error *err)
{
	struct peers *p = xcalloc(1, sizeof(*p));
	p->cfg = *cfg;
	p->what = cfg->tcp ? "tcp" : "unix socket";
	pthread_mutex_init(&p->lock, NULL);
	cond_init_monotonic(&p->cond);
	if (pthread_create(&p->reaper, NULL, reaper_main, p) != 0) {
		agentd_error_set(err, EAGAIN, "start the connection reaper thread");
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->cond);
		free(p);
		return NULL;
	}
	return p;
}

/* After the HTTP server stopped: every connection was closed (peers_closed). */
void peers_free(struct peers *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->reaper, NULL);
	while (p->head) {
		struct peer_conn *c = p->head;
		p->head = c->next;
		if (c->fd >= 0)
			close(c->fd);
		free(c);
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}
