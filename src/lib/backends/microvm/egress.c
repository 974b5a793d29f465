/* egress.c: network "allowlist" of a micro-VM (issue 15: vm-map).
 *
 * The guest has no NIC. Its agent listens on 127.0.0.1:GP_EGRESS_PORT and carries each
 * connection as a guest channel (GP_STREAM_OPEN, _DATA, _CLOSE, GP_CREDIT both ways). Here
 * each such stream becomes one end of a socketpair handed to agentd's egress proxy as a
 * connection of this sandbox (agentd_proxy_add_connection): the same allowlist, the same
 * audit records as a container's. One pump thread per VM moves bytes between the socketpair
 * and the channel, with credit both ways: the guest may have at most GP_INITIAL_CREDIT bytes
 * in flight to us (held in the stream's buffer until the proxy takes them; credit goes back
 * as it does), and we send it no more than it granted. A guest that overdraws its credit or
 * opens more streams than the proxy lets this sandbox have is refused, never buffered. */
#include "lib/backends/microvm/egress.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#define EG_CREDIT_BATCH (32u << 10)	/* credit returned to the guest in steps of this */
#define EG_MAX_GUEST_CREDIT (16u << 20) /* credit the guest may grant us beyond what we use */

struct eg_stream {
	struct vm_egress *eg;
	uint32_t chan;
	int fd;				/* our end of the socketpair; the proxy has the other */
	uint8_t *in;			/* guest -> proxy bytes not yet written */
	size_t in_len;
	uint64_t guest_may_send;	/* credit the guest still has from us */
	uint64_t credit_due;		/* written to the proxy, not yet returned */
	uint64_t may_send;		/* credit the guest granted us */
	uint32_t events;		/* epoll interest registered */
	bool need_ok;			/* accepted: GP_OK not sent yet (the pump sends it first) */
	bool guest_eof, sent_eof, shut_wr;
	bool gone;			/* the channel is gone: free at the next sweep */
	struct eg_stream *next;
};

struct vm_egress {
	struct vm_chan *ch;
	agentd_proxy *proxy;
	char id[AGENTD_ID_LEN];
	pthread_mutex_t lock;
	struct eg_stream *streams;
	int ep, wake;
	pthread_t thread;
	bool stopping, started;
};

static void eg_wake(struct vm_egress *eg)
{
	uint64_t one = 1;
	if (write(eg->wake, &one, sizeof(one)) < 0) {
		/* saturated: the pump is awake anyway */
	}
}

/* The interest s needs now; none at all: out of the epoll set (a hang-up is reported
 * whatever the interest, and would spin while the guest gives no credit). The lock held. */
static void eg_interest(struct vm_egress *eg, struct eg_stream *s)
{
	uint32_t want = 0;
	if (!s->need_ok && !s->sent_eof && s->may_send > 0)
		want |= EPOLLIN;
	if (s->in_len)
		want |= EPOLLOUT;
	if (want == s->events)
		return;
	struct epoll_event ev = {.events = want, .data.ptr = s};
	epoll_ctl(eg->ep, !want ? EPOLL_CTL_DEL : s->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd,
		  &ev);
	s->events = want;
}

/* Guest bytes to the proxy, as many as it takes now. The lock held. */
static void eg_flush(struct vm_egress *eg, struct eg_stream *s)
{
	while (s->in_len) {
		ssize_t n = send(s->fd, s->in, s->in_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno != EAGAIN) { /* the proxy closed it: what is left goes */
				s->credit_due += s->in_len;
				s->in_len = 0;
			}
			break;
		}
		memmove(s->in, s->in + n, s->in_len - (size_t)n);
		s->in_len -= (size_t)n;
		s->credit_due += (uint64_t)n;
	}
	if (!s->in_len && s->guest_eof && !s->shut_wr) {
		shutdown(s->fd, SHUT_WR);
		s->shut_wr = true;
	}
	eg_interest(eg, s);
}

/* ------------------------------------------------------------ the reader thread's side */

static int eg_on_frame(void *ud, const struct gp_hdr *h, const uint8_t *p)
{
	struct eg_stream *s = ud;
	struct vm_egress *eg = s->eg;
	int r = 0;
	pthread_mutex_lock(&eg->lock);
	switch (h->type) {
	case GP_STREAM_DATA:
		if (s->guest_eof || h->len > s->guest_may_send) {
			r = -EDQUOT; /* beyond the credit we granted, or after its close */
			break;
		}
		memcpy(s->in + s->in_len, p, h->len);
		s->in_len += h->len;
		s->guest_may_send -= h->len;
		eg_flush(eg, s);
		break;
	case GP_CREDIT: {
		struct gp_reader rd;
		struct gp_field f;
		uint64_t more = 0;
		gp_r_init(&rd, p, h->len);
		int k;
		while ((k = gp_r_next(&rd, &f)) == 1)
			if (f.tag == GP_T_BYTES && gp_f_u64(&f, &more) < 0)
				k = -EPROTO;
		if (k < 0 || more > EG_MAX_GUEST_CREDIT ||
		    s->may_send + more > EG_MAX_GUEST_CREDIT) {
			r = -EPROTO;
			break;
		}
		s->may_send += more;
		eg_interest(eg, s);
		break;
	}
	case GP_STREAM_CLOSE:
		s->guest_eof = true;
		eg_flush(eg, s);
		if (s->sent_eof) {
			s->gone = true; /* both sides closed: the channel's slot is freed now */
			r = 1;
		}
		break;
	default:
		r = -EPROTO;
	}
	pthread_mutex_unlock(&eg->lock);
	eg_wake(eg);
	return r;
}

static void eg_on_end(void *ud, bool dead)
{
	struct eg_stream *s = ud;
	pthread_mutex_lock(&s->eg->lock);
	s->gone = true;
	pthread_mutex_unlock(&s->eg->lock);
	eg_wake(s->eg);
}

static int eg_open(void *ud, uint32_t chan, const uint8_t *payload, size_t len,
		   struct vm_sink *sink)
{
	struct vm_egress *eg = ud;
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
		return -errno;
	agentd_error err = {0};
	/* the proxy judges, counts and logs it as any connection of this sandbox */
	if (agentd_proxy_add_connection(eg->proxy, eg->id, sp[1], &err) < 0) {
		close(sp[0]);
		return -(err.code ? err.code : EIO);
	}
	struct eg_stream *s = xcalloc(1, sizeof(*s));
	*s = (struct eg_stream){.eg = eg, .chan = chan, .fd = sp[0],
				.in = xmalloc(GP_INITIAL_CREDIT),
				.guest_may_send = GP_INITIAL_CREDIT,
				.may_send = GP_INITIAL_CREDIT,
				.need_ok = true};
	pthread_mutex_lock(&eg->lock); /* out of the epoll set until GP_OK is sent */
	s->next = eg->streams;
	eg->streams = s;
	pthread_mutex_unlock(&eg->lock);
	*sink = (struct vm_sink){.on_frame = eg_on_frame, .on_end = eg_on_end, .ud = s};
	eg_wake(eg); /* the pump answers GP_OK (not this thread: it holds the channel's lock) */
	return 0;
}

/* ------------------------------------------------------------ the pump thread */

/* Proxy bytes to the guest while it has credit for them; EOF passed on once. */
static void eg_read(struct vm_egress *eg, struct eg_stream *s, uint8_t *buf)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		pthread_mutex_lock(&eg->lock);
		if (s->gone || s->need_ok || s->sent_eof || !s->may_send) {
			eg_interest(eg, s);
			pthread_mutex_unlock(&eg->lock);
			return;
		}
		size_t want = s->may_send < GP_MAX_PAYLOAD ? (size_t)s->may_send : GP_MAX_PAYLOAD;
		ssize_t n = recv(s->fd, buf, want, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			pthread_mutex_unlock(&eg->lock);
			return;
		}
		bool eof = n <= 0;
		if (eof)
			s->sent_eof = true;
		else
			s->may_send -= (uint64_t)n;
		eg_interest(eg, s);
		bool both = eof && s->guest_eof;
		uint32_t chan = s->chan;
		pthread_mutex_unlock(&eg->lock);
		/* outside our lock: the channel's lock is taken there (on_end comes back here) */
		if (eof) {
			vm_chan_send(eg->ch, GP_STREAM_CLOSE, chan, NULL, 0, NULL);
			if (both)
				vm_chan_close(eg->ch, chan, false);
			return;
		}
		if (vm_chan_send(eg->ch, GP_STREAM_DATA, chan, buf, (size_t)n, NULL) < 0)
			return;
	}
}

/* Credit for what the proxy took, in batches (and whatever is left once all is taken). */
static void eg_credit(struct vm_egress *eg)
{
	for (;;) {
		uint32_t chan = 0;
		uint64_t due = 0;
		pthread_mutex_lock(&eg->lock);
		for (struct eg_stream *s = eg->streams; s && !chan; s = s->next)
			if (!s->gone && !s->need_ok && !s->guest_eof && s->credit_due &&
			    (s->credit_due >= EG_CREDIT_BATCH || !s->in_len)) {
				chan = s->chan;
				due = s->credit_due;
				s->credit_due = 0;
				s->guest_may_send += due;
			}
		pthread_mutex_unlock(&eg->lock);
		if (!chan)
			return;
		uint8_t pl[32];
		struct gp_writer w;
		gp_w_init(&w, pl, sizeof(pl));
		gp_w_u64(&w, GP_T_BYTES, due);
		vm_chan_send(eg->ch, GP_CREDIT, chan, pl, w.len, NULL);
	}
}

/* GP_OK for the streams accepted since: before anything else is sent on them. */
static void eg_answer_opens(struct vm_egress *eg)
{
	for (;;) {
		uint32_t chan = 0;
		pthread_mutex_lock(&eg->lock);
		for (struct eg_stream *s = eg->streams; s && !chan; s = s->next)
			if (s->need_ok && !s->gone) {
				chan = s->chan;
				s->need_ok = false;
				eg_interest(eg, s);
			}
		pthread_mutex_unlock(&eg->lock);
		if (!chan)
			return;
		vm_chan_send(eg->ch, GP_OK, chan, NULL, 0, NULL);
	}
}

/* Streams whose channel is gone: their fds closed (the proxy sees EOF and logs the end). */
static void eg_sweep(struct vm_egress *eg, bool all)
{
	pthread_mutex_lock(&eg->lock);
	for (struct eg_stream **pp = &eg->streams; *pp;) {
		struct eg_stream *s = *pp;
		if (!s->gone && !all) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		if (s->events)
			epoll_ctl(eg->ep, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
		free(s->in);
		free(s);
	}
	pthread_mutex_unlock(&eg->lock);
}

static void *eg_main(void *arg)
{
	struct vm_egress *eg = arg;
	uint8_t *buf = xmalloc(GP_MAX_PAYLOAD);
	struct epoll_event evs[64];
	while (!__atomic_load_n(&eg->stopping, __ATOMIC_ACQUIRE)) {
		eg_answer_opens(eg);
		int n = epoll_wait(eg->ep, evs, ARRAY_SIZE(evs), 1000);
		for (int i = 0; i < n; i++) {
			if (!evs[i].data.ptr) {
				uint64_t v;
				if (read(eg->wake, &v, sizeof(v)) < 0) {
					/* spurious */
				}
				continue;
			}
			struct eg_stream *s = evs[i].data.ptr;
			if (evs[i].events & EPOLLOUT) {
				pthread_mutex_lock(&eg->lock);
				if (!s->gone)
					eg_flush(eg, s);
				pthread_mutex_unlock(&eg->lock);
			}
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				eg_read(eg, s, buf);
		}
		eg_answer_opens(eg);
		eg_credit(eg);
		eg_sweep(eg, false);
	}
	free(buf);
	return NULL;
}

struct vm_egress *vm_egress_start(struct vm_chan *ch, agentd_proxy *proxy, const char *id,
				  const agentd_strv *allow, agentd_error *err)
{
	struct vm_egress *eg = xcalloc(1, sizeof(*eg));
	eg->ch = ch;
	eg->proxy = proxy;
	snprintf(eg->id, sizeof(eg->id), "%s", id);
	pthread_mutex_init(&eg->lock, NULL);
	eg->ep = epoll_create1(EPOLL_CLOEXEC);
	eg->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (eg->ep < 0 || eg->wake < 0 || epoll_ctl(eg->ep, EPOLL_CTL_ADD, eg->wake, &ev) < 0) {
		agentd_error_errno(err, errno, "egress: epoll");
		goto fail;
	}
	/* no listener: the guest's connections are handed over one by one */
	if (agentd_proxy_add_sandbox(proxy, -1, id, allow, err) < 0) {
		agentd_error_prefix(err, "egress proxy");
		goto fail;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&eg->thread, NULL, eg_main, eg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		agentd_proxy_remove_sandbox(proxy, id);
		agentd_error_errno(err, e, "egress: start the thread");
		goto fail;
	}
	eg->started = true;
	vm_chan_set_opener(ch, eg_open, eg);
	return eg;
fail:
	if (eg->ep >= 0)
		close(eg->ep);
	if (eg->wake >= 0)
		close(eg->wake);
	pthread_mutex_destroy(&eg->lock);
	free(eg);
	return NULL;
}

void vm_egress_stop(struct vm_egress *eg)
{
	if (!eg)
		return;
	/* the proxy's ends first: every connection of this sandbox closed and logged */
	agentd_proxy_remove_sandbox(eg->proxy, eg->id);
	__atomic_store_n(&eg->stopping, true, __ATOMIC_RELEASE);
	eg_wake(eg);
	pthread_join(eg->thread, NULL);
	eg_sweep(eg, true);
	close(eg->ep);
	close(eg->wake);
	pthread_mutex_destroy(&eg->lock);
	free(eg);
}
