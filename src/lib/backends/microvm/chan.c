/* chan.c: the host side of the guest protocol (common/guestproto.h) over the VM's one
 * virtio-serial port. A reader thread reassembles frames (gp_rx) and validates each before
 * any field is used: the type must be one the guest may send on that channel, the channel
 * one that is open (host channels: opened here; guest channels: opened by GP_STREAM_OPEN),
 * data within the credit granted. Anything else is a protocol error: the VM is marked
 * broken (its owner kills it), every channel ends, and nothing else is touched — not the
 * daemon, not another VM.
 *
 * Execs (vm_exec) are channels whose sink queues output for the calling thread, which
 * delivers it in order, returns credit as it consumes, feeds stdin as the guest grants
 * credit, and keeps its own deadline. */
#include "lib/backends/microvm/microvm.h"

#include <sys/eventfd.h>

#define SEND_TIMEOUT_MS 10000	/* a guest that stops reading its port for this long is broken */
#define KILL_GRACE_MS 10000	/* a timed-out command's EXIT must come within this */
#define ERR_TAIL 1024

struct slot {
	uint32_t chan;		/* 0 = free */
	bool linger;		/* closed by the host: frames dropped until its last one */
	bool refused;		/* a guest stream we refused: dropped until its close */
	struct vm_sink sink;
};

struct vm_chan {
	int fd, rep, errfd, stopfd;
	pthread_t thr;
	bool thr_started;
	pthread_mutex_t lock;	/* everything below; sinks run under it */
	pthread_cond_t cond;
	pthread_mutex_t wlock;	/* writes to fd */
	pthread_mutex_t ctl_serial;
	bool broken;
	char why[256];
	bool in_sink;		/* the reader is in a sink's on_frame (the lock held) */
	bool sink_broke;	/* ...and a send of that sink broke the VM */
	bool have_hello;
	struct vm_hello hello;
	bool ctl_waiting, ctl_done;
	uint16_t ctl_answer;	/* the frame type that answered */
	int ctl_errno;
	char ctl_msg[256];
	struct slot slots[GP_MAX_CHANNELS];
	uint32_t next_chan;
	vm_opener_fn opener;
	void *opener_ud;
	void (*on_broken)(void *ud);
	void *broken_ud;
	char errtail[ERR_TAIL];
	size_t errlen;
	uint8_t *rxbuf;
	struct gp_rx rx;
};

/* ------------------------------------------------------------- frames out */

static bool break_locked(struct vm_chan *ch, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

int vm_chan_send(struct vm_chan *ch, uint16_t type, uint32_t chan, const void *payload,
		 size_t len, agentd_error *err)
{
	if (len > GP_MAX_PAYLOAD)
		return agentd_error_set(err, EMSGSIZE, "guest frame %s: %zu bytes", gp_type_name(type),
					len);
	uint8_t hdr[GP_HDR_SIZE];
	struct gp_hdr h = {.len = (uint32_t)len, .type = type, .chan = chan};
	gp_hdr_encode(hdr, &h);
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, len}};
	pthread_mutex_lock(&ch->wlock);
	int r = 0;
	size_t done = 0, total = sizeof(hdr) + len;
	uint64_t deadline = now_ms_monotonic() + SEND_TIMEOUT_MS;
	while (done < total) {
		struct iovec v[2];
		int nv = 0;
		size_t skip = done;
		for (int i = 0; i < 2; i++) {
			if (skip >= iov[i].iov_len) {
				skip -= iov[i].iov_len;
				continue;
			}
			v[nv].iov_base = (uint8_t *)iov[i].iov_base + skip;
			v[nv++].iov_len = iov[i].iov_len - skip;
			skip = 0;
		}
		struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)nv};
		ssize_t n = sendmsg(ch->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		uint64_t now = now_ms_monotonic();
		if (n < 0 && errno == EAGAIN && now < deadline) {
			struct pollfd p = {.fd = ch->fd, .events = POLLOUT};
			poll(&p, 1, (int)(deadline - now));
			continue;
		}
		r = n < 0 && errno != EAGAIN
			    ? agentd_error_errno(err, errno, "write to the guest")
			    : agentd_error_set(err, ETIMEDOUT, "the guest stopped reading its port");
		break;
	}
	pthread_mutex_unlock(&ch->wlock);
	/* A frame not written whole, or not at all within the send timeout: the guest stopped
	 * reading its port (the next frame would wait as long again, the reader's answers
	 * too), or a part of a frame is on the wire. The VM is not used again. */
	if (r < 0) {
		const char *why = done > 0 ? "a frame to the guest was cut off"
					   : "the guest stopped reading its port";
		if (ch->thr_started && pthread_equal(pthread_self(), ch->thr) && ch->in_sink)
			ch->sink_broke |= break_locked(ch, "%s", why); /* a sink: the lock is held */
		else
			vm_chan_break(ch, why);
	}
	return r;
}

/* ------------------------------------------------------------- broken */

static void end_all_locked(struct vm_chan *ch)
{
	for (size_t i = 0; i < GP_MAX_CHANNELS; i++) {
		struct slot *s = &ch->slots[i];
		if (!s->chan)
			continue;
		struct vm_sink sk = s->sink;
		bool call = !s->linger && !s->refused;
		memset(s, 0, sizeof(*s));
		if (call && sk.on_end)
			sk.on_end(sk.ud, true);
	}
}

/* The lock held. Returns whether this call broke it (the caller then runs on_broken). */
static bool break_locked(struct vm_chan *ch, const char *fmt, ...)
{
	if (ch->broken)
		return false;
	ch->broken = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ch->why, sizeof(ch->why), fmt, ap);
	va_end(ap);
	end_all_locked(ch);
	pthread_cond_broadcast(&ch->cond);
	return true;
}

static void run_on_broken(struct vm_chan *ch, bool now_broken)
{
	if (now_broken && ch->on_broken)
		ch->on_broken(ch->broken_ud);
}

void vm_chan_break(struct vm_chan *ch, const char *why)
{
	pthread_mutex_lock(&ch->lock);
	bool b = break_locked(ch, "%s", why);
	pthread_mutex_unlock(&ch->lock);
	run_on_broken(ch, b);
}

bool vm_chan_broken(struct vm_chan *ch, char *why, size_t why_len)
{
	pthread_mutex_lock(&ch->lock);
	bool b = ch->broken;
	if (b && why)
		snprintf(why, why_len, "%s", ch->why);
	pthread_mutex_unlock(&ch->lock);
	return b;
}

void vm_chan_qemu_stderr(struct vm_chan *ch, char *out, size_t len)
{
	pthread_mutex_lock(&ch->lock);
	size_t n = ch->errlen < len - 1 ? ch->errlen : len - 1;
	memcpy(out, ch->errtail + ch->errlen - n, n);
	out[n] = '\0';
	pthread_mutex_unlock(&ch->lock);
	for (size_t i = 0; i < n; i++)
		if (out[i] == '\n' && i + 1 < n)
			out[i] = ' ';
		else if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] >= 0x7f)
			out[i] = out[i] == '\n' ? '\0' : '?';
}

/* ------------------------------------------------------------- slots */

static struct slot *slot_find(struct vm_chan *ch, uint32_t chan)
{
	for (size_t i = 0; i < GP_MAX_CHANNELS; i++)
		if (ch->slots[i].chan == chan)
			return &ch->slots[i];
	return NULL;
}

uint32_t vm_chan_open(struct vm_chan *ch, const struct vm_sink *sink, agentd_error *err)
{
	pthread_mutex_lock(&ch->lock);
	uint32_t chan = 0;
	struct slot *free_slot = NULL;
	if (ch->broken) {
		agentd_error_set(err, EPIPE, "the VM is broken: %s", ch->why);
		goto out;
	}
	for (size_t i = 0; i < GP_MAX_CHANNELS && !free_slot; i++)
		if (!ch->slots[i].chan)
			free_slot = &ch->slots[i];
	if (!free_slot) {
		agentd_error_set(err, EMFILE, "the VM has %u channels open", GP_MAX_CHANNELS);
		goto out;
	}
	do {
		chan = ch->next_chan++;
		if (ch->next_chan >= GP_GUEST_CHAN)
			ch->next_chan = 1;
	} while (chan == 0 || slot_find(ch, chan));
	free_slot->chan = chan;
	free_slot->sink = *sink;
out:
	pthread_mutex_unlock(&ch->lock);
	return chan;
}

void vm_chan_close(struct vm_chan *ch, uint32_t chan, bool linger)
{
	pthread_mutex_lock(&ch->lock);
	struct slot *s = slot_find(ch, chan);
	struct vm_sink sk = {0};
	if (s && !s->linger) {
		sk = s->sink;
		if (linger) {
			s->linger = true;
			memset(&s->sink, 0, sizeof(s->sink));
		} else {
			memset(s, 0, sizeof(*s));
		}
	}
	if (sk.on_end)
		sk.on_end(sk.ud, false);
	pthread_mutex_unlock(&ch->lock);
}

void vm_chan_set_opener(struct vm_chan *ch, vm_opener_fn fn, void *ud)
{
	pthread_mutex_lock(&ch->lock);
	ch->opener = fn;
	ch->opener_ud = ud;
	pthread_mutex_unlock(&ch->lock);
}

void vm_chan_on_broken(struct vm_chan *ch, void (*fn)(void *ud), void *ud)
{
	pthread_mutex_lock(&ch->lock);
	ch->on_broken = fn;
	ch->broken_ud = ud;
	pthread_mutex_unlock(&ch->lock);
}

/* ------------------------------------------------------------- frames in */

/* GP_T_ERRNO and GP_T_MESSAGE of an ERROR frame. */
static int parse_error(const uint8_t *p, size_t len, int *errnum, char *msg, size_t msg_len)
{
	struct gp_reader r;
	struct gp_field f;
	int k;
	uint64_t v;
	*errnum = EIO;
	msg[0] = '\0';
	gp_r_init(&r, p, len);
	while ((k = gp_r_next(&r, &f)) == 1) {
		if (f.tag == GP_T_ERRNO) {
			if (gp_f_u64(&f, &v) < 0)
				return -EPROTO;
			*errnum = v > 0 && v < 4096 ? (int)v : EIO;
		} else if (f.tag == GP_T_MESSAGE) {
			char m[GP_MAX_STRING + 1];
			if (gp_f_str(&f, m, sizeof(m)) < 0)
				return -EPROTO;
			quote_text(msg, msg_len, m);
		}
	}
	return k < 0 ? -EPROTO : 0;
}

static int parse_hello(const uint8_t *p, size_t len, struct vm_hello *h)
{
	struct gp_reader r;
	struct gp_field f;
	int k;
	bool version = false;
	memset(h, 0, sizeof(*h));
	gp_r_init(&r, p, len);
	while ((k = gp_r_next(&r, &f)) == 1) {
		int e = 0;
		if (f.tag == GP_T_VERSION)
			e = gp_f_u64(&f, &h->version), version = true;
		else if (f.tag == GP_T_CAPS)
			e = gp_f_u64(&f, &h->caps);
		else if (f.tag == GP_T_BOOT_MS)
			e = gp_f_u64(&f, &h->boot_ms);
		else if (f.tag == GP_T_AGENT)
			e = gp_f_str(&f, h->agent, sizeof(h->agent));
		if (e < 0)
			return -EPROTO;
	}
	return k < 0 || !version ? -EPROTO : 0;
}

/* Channel 0. The lock held; -EPROTO with why. */
static int on_control(struct vm_chan *ch, const struct gp_hdr *h, const uint8_t *p,
		      const char **why)
{
	if (h->type == GP_HELLO) {
		if (ch->have_hello)
			return *why = "a second HELLO", -EPROTO;
		if (parse_hello(p, h->len, &ch->hello) < 0)
			return *why = "a malformed HELLO", -EPROTO;
		if (ch->hello.version >> 16 != GP_VERSION_MAJOR)
			return *why = "a HELLO of another protocol version", -EPROTO;
		ch->have_hello = true;
		pthread_cond_broadcast(&ch->cond);
		return 0;
	}
	if (h->type != GP_OK && h->type != GP_ERROR && h->type != GP_PONG)
		return *why = "a frame the guest may not send on the control channel", -EPROTO;
	if (!ch->ctl_waiting || ch->ctl_done)
		return *why = "an answer to no request", -EPROTO;
	if (h->type == GP_ERROR &&
	    parse_error(p, h->len, &ch->ctl_errno, ch->ctl_msg, sizeof(ch->ctl_msg)) < 0)
		return *why = "a malformed ERROR", -EPROTO;
	ch->ctl_answer = h->type;
	ch->ctl_done = true;
	pthread_cond_broadcast(&ch->cond);
	return 0;
}

static bool is_last_frame(uint16_t type)
{
	return type == GP_EXIT || type == GP_ERROR || type == GP_FILE_END || type == GP_STREAM_CLOSE;
}

/* A guest channel (top bit). The lock held. */
static int on_guest_chan(struct vm_chan *ch, const struct gp_hdr *h, const uint8_t *p,
			 const char **why, bool *refuse)
{
	struct slot *s = slot_find(ch, h->chan);
	if (h->type == GP_STREAM_OPEN) {
		if (s)
			return *why = "STREAM_OPEN of a channel already open", -EPROTO;
		struct slot *fs = slot_find(ch, 0);
		if (!fs)
			return *why = "more channels than GP_MAX_CHANNELS", -EPROTO;
		struct vm_sink sk = {0};
		fs->chan = h->chan;
		ch->in_sink = true;
		int acc = ch->opener ? ch->opener(ch->opener_ud, h->chan, p, h->len, &sk) : -1;
		ch->in_sink = false;
		if (acc < 0) {
			fs->refused = true;
			*refuse = true;
		} else {
			fs->sink = sk;
		}
		return 0;
	}
	if (!s)
		return *why = "a frame on a channel that is not open", -EPROTO;
	if (h->type != GP_STREAM_DATA && h->type != GP_STREAM_CLOSE && h->type != GP_CREDIT)
		return *why = "a frame the guest may not send on a stream", -EPROTO;
	if (s->refused || s->linger) {
		if (h->type == GP_STREAM_CLOSE)
			memset(s, 0, sizeof(*s));
		return 0;
	}
	ch->in_sink = true;
	int r = s->sink.on_frame(s->sink.ud, h, p);
	ch->in_sink = false;
	if (r < 0)
		return *why = "a stream frame its handler refused", -EPROTO;
	if (r == 1)
		memset(s, 0, sizeof(*s));
	return 0;
}

static int dispatch(struct vm_chan *ch, const struct gp_hdr *h, const uint8_t *p,
		    const char **why)
{
	static const uint16_t host_only[] = {GP_SETUP, GP_EXEC, GP_STDIN, GP_SIGNAL, GP_PING,
					     GP_FREEZE, GP_THAW, GP_POWEROFF, GP_RESIZE,
					     GP_FILE_GET, GP_FILE_PUT, GP_FILE_STAT, GP_FILE_LIST,
					     GP_FILE_REMOVE, GP_FILE_MKDIR};
	for (size_t i = 0; i < ARRAY_SIZE(host_only); i++)
		if (h->type == host_only[i])
			return *why = "a frame only the host sends", -EPROTO;
	if (!ch->have_hello && h->type != GP_HELLO)
		return *why = "a frame before HELLO", -EPROTO;
	if (h->chan == 0)
		return on_control(ch, h, p, why);
	if (h->chan & GP_GUEST_CHAN) {
		bool refuse = false;
		int r = on_guest_chan(ch, h, p, why, &refuse);
		if (r == 0 && refuse) {
			pthread_mutex_unlock(&ch->lock);
			vm_chan_send(ch, GP_STREAM_CLOSE, h->chan, NULL, 0, NULL);
			pthread_mutex_lock(&ch->lock);
		}
		return r;
	}
	struct slot *s = slot_find(ch, h->chan);
	if (!s)
		return *why = "a frame on a channel that is not open", -EPROTO;
	if (h->type == GP_HELLO || h->type == GP_PONG || h->type == GP_STREAM_OPEN)
		return *why = "a control frame on a host channel", -EPROTO;
	if (s->linger) {
		if (is_last_frame(h->type))
			memset(s, 0, sizeof(*s));
		return 0;
	}
	ch->in_sink = true;
	int r = s->sink.on_frame(s->sink.ud, h, p);
	ch->in_sink = false;
	if (r == -EDQUOT)
		return *why = "data beyond the credit the host granted", -EPROTO;
	if (r < 0)
		return *why = "a frame its channel does not accept", -EPROTO;
	if (r == 1)
		memset(s, 0, sizeof(*s));
	return 0;
}

static void drain_stderr(struct vm_chan *ch)
{
	char buf[512];
	ssize_t n = read(ch->errfd, buf, sizeof(buf));
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			close(ch->errfd);
			ch->errfd = -1;
		}
		return;
	}
	pthread_mutex_lock(&ch->lock);
	if (ch->errlen + (size_t)n > ERR_TAIL) {
		size_t drop = ch->errlen + (size_t)n - ERR_TAIL;
		if (drop > ch->errlen)
			drop = ch->errlen;
		memmove(ch->errtail, ch->errtail + drop, ch->errlen - drop);
		ch->errlen -= drop;
	}
	size_t take = (size_t)n > ERR_TAIL ? ERR_TAIL : (size_t)n;
	memcpy(ch->errtail + ch->errlen, buf + n - take, take);
	ch->errlen += take;
	pthread_mutex_unlock(&ch->lock);
}

/* The jail's report of QEMU: its exit (or the jail's end). */
static bool qemu_ended(struct vm_chan *ch)
{
	struct child_report r;
	ssize_t n = read(ch->rep, &r, sizeof(r));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (n == (ssize_t)sizeof(r) && r.kind == REPORT_START)
		return false;
	close(ch->rep);
	ch->rep = -1;
	return true;
}

static void *reader_main(void *arg)
{
	struct vm_chan *ch = arg;
	for (;;) {
		struct pollfd p[4] = {{.fd = ch->stopfd, .events = POLLIN},
				      {.fd = ch->fd, .events = POLLIN},
				      {.fd = ch->errfd, .events = POLLIN},
				      {.fd = ch->rep, .events = POLLIN}};
		if (poll(p, 4, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[2].revents)
			drain_stderr(ch);
		if (p[3].revents && qemu_ended(ch)) {
			while (ch->errfd >= 0)
				drain_stderr(ch);
			char tail[256];
			vm_chan_qemu_stderr(ch, tail, sizeof(tail));
			pthread_mutex_lock(&ch->lock);
			bool b = break_locked(ch, "QEMU exited%s%s", tail[0] ? ": " : "", tail);
			pthread_mutex_unlock(&ch->lock);
			run_on_broken(ch, b);
			break;
		}
		if (!p[1].revents)
			continue;
		size_t room;
		uint8_t *space = gp_rx_space(&ch->rx, &room);
		ssize_t n = read(ch->fd, space, room);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			vm_chan_break(ch, "the guest's port closed");
			break;
		}
		gp_rx_commit(&ch->rx, (size_t)n);
		struct gp_hdr h;
		const uint8_t *payload;
		int k = 0;
		const char *why = NULL;
		pthread_mutex_lock(&ch->lock);
		while (!ch->broken && (k = gp_rx_frame(&ch->rx, &h, &payload)) == 1)
			if (dispatch(ch, &h, payload, &why) < 0)
				break;
		bool b = ch->sink_broke;
		ch->sink_broke = false;
		if (!ch->broken && (why || k < 0))
			b = break_locked(ch, "protocol error from the guest: %s%s%s",
					 why ? why : "a malformed frame header",
					 why ? " (" : "", why ? gp_type_name(h.type) : "");
		if (b && why)
			strncat(ch->why, ")", sizeof(ch->why) - strlen(ch->why) - 1);
		bool broken = ch->broken;
		pthread_mutex_unlock(&ch->lock);
		run_on_broken(ch, b);
		if (broken)
			break;
	}
	return NULL;
}

struct vm_chan *vm_chan_new(int fd, int qemu_rep, int qemu_err, agentd_error *err)
{
	struct vm_chan *ch = xcalloc(1, sizeof(*ch));
	ch->fd = fd;
	ch->rep = qemu_rep;
	ch->errfd = qemu_err;
	ch->next_chan = 1;
	pthread_mutex_init(&ch->lock, NULL);
	pthread_mutex_init(&ch->wlock, NULL);
	pthread_mutex_init(&ch->ctl_serial, NULL);
	cond_init_monotonic(&ch->cond);
	ch->rxbuf = xmalloc(GP_HDR_SIZE + GP_MAX_PAYLOAD);
	gp_rx_init(&ch->rx, ch->rxbuf, GP_HDR_SIZE + GP_MAX_PAYLOAD);
	int fl = fcntl(fd, F_GETFL);
	ch->stopfd = eventfd(0, EFD_CLOEXEC);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || ch->stopfd < 0) {
		agentd_error_errno(err, errno, "guest channel");
		vm_chan_free(ch);
		return NULL;
	}
	int r = pthread_create(&ch->thr, NULL, reader_main, ch);
	if (r) {
		agentd_error_errno(err, r, "guest channel: start its reader");
		vm_chan_free(ch);
		return NULL;
	}
	ch->thr_started = true;
	return ch;
}

void vm_chan_free(struct vm_chan *ch)
{
	if (!ch)
		return;
	if (ch->thr_started) {
		uint64_t one = 1;
		if (write(ch->stopfd, &one, sizeof(one)) < 0) {
			/* an eventfd write fails only on overflow: the reader stops anyway */
		}
		pthread_join(ch->thr, NULL);
	}
	pthread_mutex_lock(&ch->lock);
	if (!ch->broken)
		snprintf(ch->why, sizeof(ch->why), "the VM was shut down");
	ch->broken = true;
	end_all_locked(ch);
	pthread_mutex_unlock(&ch->lock);
	int fds[] = {ch->fd, ch->rep, ch->errfd, ch->stopfd};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(ch->rxbuf);
	pthread_cond_destroy(&ch->cond);
	pthread_mutex_destroy(&ch->lock);
	pthread_mutex_destroy(&ch->wlock);
	pthread_mutex_destroy(&ch->ctl_serial);
	free(ch);
}

/* Wait on the cond until pred or the deadline; the lock held. false on the deadline. */
static bool wait_until(struct vm_chan *ch, uint64_t deadline, bool (*pred)(struct vm_chan *))
{
	while (!pred(ch) && !ch->broken) {
		uint64_t now = now_ms_monotonic();
		if (now >= deadline)
			return false;
		struct timespec ts = monotonic_after_ms(deadline - now);
		pthread_cond_timedwait(&ch->cond, &ch->lock, &ts);
	}
	return true;
}

static bool hello_pred(struct vm_chan *ch)
{
	return ch->have_hello;
}

static bool ctl_pred(struct vm_chan *ch)
{
	return ch->ctl_done;
}

int vm_chan_wait_hello(struct vm_chan *ch, uint64_t timeout_ms, struct vm_hello *out,
		       agentd_error *err)
{
	pthread_mutex_lock(&ch->lock);
	bool in_time = wait_until(ch, now_ms_monotonic() + timeout_ms, hello_pred);
	int r = 0;
	if (ch->have_hello && !ch->broken)
		*out = ch->hello;
	else if (ch->broken)
		r = agentd_error_set(err, EPROTO, "the guest failed before it was ready: %s",
				     ch->why);
	else if (!in_time)
		r = agentd_error_set(err, ETIMEDOUT,
				     "the guest agent did not say HELLO within %" PRIu64 " ms",
				     timeout_ms);
	pthread_mutex_unlock(&ch->lock);
	return r;
}

/* issue 15: vm-state */
void vm_chan_set_hello(struct vm_chan *ch, const struct vm_hello *h)
{
	pthread_mutex_lock(&ch->lock);
	ch->hello = *h;
	ch->have_hello = true;
	pthread_mutex_unlock(&ch->lock);
}

int vm_chan_control(struct vm_chan *ch, uint16_t type, const uint8_t *payload, size_t len,
		    uint64_t timeout_ms, agentd_error *err)
{
	pthread_mutex_lock(&ch->ctl_serial);
	pthread_mutex_lock(&ch->lock);
	ch->ctl_waiting = true;
	ch->ctl_done = false;
	ch->ctl_msg[0] = '\0';
	pthread_mutex_unlock(&ch->lock);
	int r = vm_chan_send(ch, type, 0, payload, len, err);
	pthread_mutex_lock(&ch->lock);
	if (r == 0) {
		bool in_time = wait_until(ch, now_ms_monotonic() + timeout_ms, ctl_pred);
		if (ch->broken)
			r = agentd_error_set(err, EPIPE, "the VM is broken: %s", ch->why);
		else if (!in_time)
			r = agentd_error_set(err, ETIMEDOUT, "the guest did not answer %s within %" PRIu64
					     " ms", gp_type_name(type), timeout_ms);
		else if (ch->ctl_answer == GP_ERROR)
			r = agentd_error_set(err, ch->ctl_errno, "the guest refused %s: %s",
					     gp_type_name(type), ch->ctl_msg);
		else if ((type == GP_PING) != (ch->ctl_answer == GP_PONG))
			r = agentd_error_set(err, EPROTO, "the guest answered %s with %s",
					     gp_type_name(type), gp_type_name(ch->ctl_answer));
	}
	bool timed_out = r < 0 && ch->ctl_waiting && !ch->ctl_done && !ch->broken;
	ch->ctl_waiting = false;
	pthread_mutex_unlock(&ch->lock);
	pthread_mutex_unlock(&ch->ctl_serial);
	/* An answer may still come for a request we gave up on: nothing could tell it from the
	 * next one's, so a guest that does not answer in time is not used again. */
	if (timed_out)
		vm_chan_break(ch, "the guest did not answer a control request in time");
	return r;
}

/* ------------------------------------------------------------- exec */

struct chunk {
	struct chunk *next;
	agentd_stream stream;
	size_t len;
	uint8_t data[];
};

struct vm_exec_st {
	int wake;		/* eventfd: something changed */
	struct chunk *head, *tail;
	uint64_t credit;	/* output bytes the guest may still send */
	uint64_t stdin_credit;	/* stdin bytes we may still send */
	bool started, ended, failed, dead;
	int fail_errno;
	char fail_msg[256];
	bool have_signal;
	uint64_t code, sig, limit, cpu_ms, peak, wall, trunc;
};

static void wake(struct vm_exec_st *e)
{
	uint64_t one = 1;
	if (write(e->wake, &one, sizeof(one)) < 0) {
		/* overflow only: it is readable anyway */
	}
}

static int parse_exit(struct vm_exec_st *e, const uint8_t *p, size_t len)
{
	struct gp_reader r;
	struct gp_field f;
	int k;
	gp_r_init(&r, p, len);
	while ((k = gp_r_next(&r, &f)) == 1) {
		uint64_t *dst = f.tag == GP_T_EXIT_CODE	  ? &e->code
				: f.tag == GP_T_SIGNAL	  ? &e->sig
				: f.tag == GP_T_LIMIT	  ? &e->limit
				: f.tag == GP_T_CPU_MS	  ? &e->cpu_ms
				: f.tag == GP_T_PEAK_MEM  ? &e->peak
				: f.tag == GP_T_WALL_MS	  ? &e->wall
				: f.tag == GP_T_OUT_TRUNC ? &e->trunc
							  : NULL;
		if (dst && gp_f_u64(&f, dst) < 0)
			return -EPROTO;
		if (f.tag == GP_T_SIGNAL)
			e->have_signal = true;
	}
	if (k < 0 || e->code > 255 || (e->have_signal && (e->sig == 0 || e->sig > 64)))
		return -EPROTO;
	return 0;
}

/* The exec channel's sink (reader thread, the chan lock held). */
static int exec_on_frame(void *ud, const struct gp_hdr *h, const uint8_t *p)
{
	struct vm_exec_st *e = ud;
	int r = 0;
	uint64_t v;
	switch (h->type) {
	case GP_STARTED:
		if (e->started)
			r = -EPROTO;
		e->started = true;
		break;
	case GP_STDOUT:
	case GP_STDERR:
		if (h->len > e->credit) {
			r = -EDQUOT;
			break;
		}
		e->credit -= h->len;
		if (h->len) {
			struct chunk *c = xmalloc(sizeof(*c) + h->len);
			c->next = NULL;
			c->stream = h->type == GP_STDOUT ? AGENTD_STREAM_STDOUT : AGENTD_STREAM_STDERR;
			c->len = h->len;
			memcpy(c->data, p, h->len);
			if (e->tail)
				e->tail->next = c;
			else
				e->head = c;
			e->tail = c;
		}
		break;
	case GP_EXIT:
		if (parse_exit(e, p, h->len) < 0) {
			r = -EPROTO;
			break;
		}
		e->ended = true;
		r = 1;
		break;
	case GP_ERROR:
		if (parse_error(p, h->len, &e->fail_errno, e->fail_msg, sizeof(e->fail_msg)) < 0) {
			r = -EPROTO;
			break;
		}
		e->ended = e->failed = true;
		r = 1;
		break;
	case GP_CREDIT: {
		struct gp_reader rd;
		struct gp_field f;
		bool got = false;
		gp_r_init(&rd, p, h->len);
		while (gp_r_next(&rd, &f) == 1)
			if (f.tag == GP_T_BYTES && gp_f_u64(&f, &v) == 0)
				got = true;
		if (!got || v > GP_INITIAL_CREDIT || e->stdin_credit + v > 4ull * GP_INITIAL_CREDIT)
			r = -EPROTO;
		else
			e->stdin_credit += v;
		break;
	}
	default:
		r = -EPROTO;
	}
	wake(e);
	return r;
}

static void exec_on_end(void *ud, bool dead)
{
	struct vm_exec_st *e = ud;
	if (dead)
		e->dead = true;
	wake(e);
}

/* The EXEC frame of rq: its payload length, or -1 + err. */
static int exec_frame(const struct vm_exec_req *rq, uint8_t *buf, agentd_error *err)
{
	struct gp_writer w;
	gp_w_init(&w, buf, GP_MAX_PAYLOAD);
	size_t n = 0;
	for (char *const *a = rq->argv; *a; a++, n++) {
		if (strlen(*a) > GP_MAX_STRING || n >= GP_MAX_ARGS)
			return agentd_error_set(err, E2BIG, "argv: an argument longer than %u bytes or "
					        "more than %u of them", GP_MAX_STRING, GP_MAX_ARGS);
		gp_w_str(&w, GP_T_ARG, *a);
	}
	n = 0;
	for (char *const *e = rq->envp; e && *e; e++, n++) {
		if (strlen(*e) > GP_MAX_STRING || n >= GP_MAX_ENV)
			return agentd_error_set(err, E2BIG, "env: a variable longer than %u bytes or "
					        "more than %u of them", GP_MAX_STRING, GP_MAX_ENV);
		gp_w_str(&w, GP_T_ENV, *e);
	}
	gp_w_str(&w, GP_T_CWD, rq->cwd);
	gp_w_u64(&w, GP_T_UID, rq->uid);
	gp_w_u64(&w, GP_T_GID, rq->gid);
	gp_w_u64(&w, GP_T_STDIN, rq->stdin_null ? 0 : 1);
	gp_w_u64(&w, GP_T_TIMEOUT_MS, rq->timeout_ms);
	gp_w_u64(&w, GP_T_MEM_BYTES, rq->mem_bytes);
	gp_w_u64(&w, GP_T_PIDS, rq->pids);
	gp_w_u64(&w, GP_T_CPU_MS, rq->cpu_ms);
	gp_w_u64(&w, GP_T_NOFILE, rq->nofile);
	gp_w_u64(&w, GP_T_FSIZE, rq->fsize);
	gp_w_u64(&w, GP_T_OUTPUT_MAX, rq->max_output_bytes);
	gp_w_u64(&w, GP_T_SECCOMP, rq->seccomp ? 1 : 0);
	gp_w_u64(&w, GP_T_NET_NONE, rq->net_none ? 1 : 0);
	if (gp_w_done(&w) < 0)
		return agentd_error_set(err, E2BIG, "argv and env together exceed one frame (%u "
				        "bytes)", GP_MAX_PAYLOAD);
	return (int)w.len;
}

static void send_credit(struct vm_chan *ch, uint32_t chan, uint64_t bytes)
{
	uint8_t buf[32];
	struct gp_writer w;
	gp_w_init(&w, buf, sizeof(buf));
	gp_w_u64(&w, GP_T_BYTES, bytes);
	vm_chan_send(ch, GP_CREDIT, chan, buf, w.len, NULL);
}

static void send_kill(struct vm_chan *ch, uint32_t chan)
{
	uint8_t buf[64];
	struct gp_writer w;
	gp_w_init(&w, buf, sizeof(buf));
	gp_w_u64(&w, GP_T_SIGNO, SIGKILL);
	gp_w_u64(&w, GP_T_GROUP, 1);
	vm_chan_send(ch, GP_SIGNAL, chan, buf, w.len, NULL);
}

static agentd_limit_kind limit_kind(uint64_t l)
{
	switch (l) {
	case GP_LIMIT_MEMORY:
		return AGENTD_LIMIT_MEMORY;
	case GP_LIMIT_PIDS:
		return AGENTD_LIMIT_PIDS;
	case GP_LIMIT_CPU_TIME:
		return AGENTD_LIMIT_CPU;
	case GP_LIMIT_OUTPUT:
		return AGENTD_LIMIT_OUTPUT;
	case GP_LIMIT_WRITE:
		return AGENTD_LIMIT_WRITE;
	default:
		return AGENTD_LIMIT_NONE;
	}
}

/* The run's state for the exec loop (the calling thread's side). */
struct exec_run {
	struct vm_chan *ch;
	const struct vm_exec_req *rq;
	struct vm_exec_st *e;
	uint32_t chan;
	agentd_exec_output *out;
	struct capture cap[2];
	size_t stdin_pos;
	bool eof_sent;
};

/* Output queued by the reader, delivered in order; credit returned for it. */
static void deliver(struct exec_run *x)
{
	pthread_mutex_lock(&x->ch->lock);
	struct chunk *c = x->e->head;
	x->e->head = x->e->tail = NULL;
	pthread_mutex_unlock(&x->ch->lock);
	uint64_t consumed = 0;
	while (c) {
		struct chunk *next = c->next;
		int i = c->stream == AGENTD_STREAM_STDOUT ? 0 : 1;
		uint8_t **buf = i == 0 ? &x->out->out : &x->out->err;
		size_t *len = i == 0 ? &x->out->out_len : &x->out->err_len;
		size_t live = 0;
		capture_add(&x->cap[i], buf, len, c->data, c->len, &live);
		if (live && x->rq->on_output)
			x->rq->on_output(x->rq->userdata, c->stream, c->data, live);
		consumed += c->len;
		free(c);
		c = next;
	}
	if (consumed) {
		pthread_mutex_lock(&x->ch->lock);
		x->e->credit += consumed;
		pthread_mutex_unlock(&x->ch->lock);
		send_credit(x->ch, x->chan, consumed);
	}
}

/* stdin as far as the guest's credit allows, then its EOF (an empty frame). */
static void feed_stdin(struct exec_run *x)
{
	if (x->rq->stdin_null || x->eof_sent)
		return;
	for (;;) {
		pthread_mutex_lock(&x->ch->lock);
		uint64_t credit = x->e->stdin_credit;
		pthread_mutex_unlock(&x->ch->lock);
		size_t left = x->rq->stdin_len - x->stdin_pos;
		if (!left) {
			if (vm_chan_send(x->ch, GP_STDIN, x->chan, NULL, 0, NULL) == 0)
				x->eof_sent = true;
			return;
		}
		size_t n = left < GP_MAX_PAYLOAD ? left : GP_MAX_PAYLOAD;
		if (n > credit)
			n = (size_t)credit;
		if (!n || vm_chan_send(x->ch, GP_STDIN, x->chan, x->rq->stdin_data + x->stdin_pos, n,
				       NULL) < 0)
			return;
		x->stdin_pos += n;
		pthread_mutex_lock(&x->ch->lock);
		x->e->stdin_credit -= n;
		pthread_mutex_unlock(&x->ch->lock);
	}
}

static void fill_result(struct exec_run *x, bool host_timeout, uint64_t t0)
{
	struct vm_exec_st *e = x->e;
	agentd_exec_output *out = x->out;
	for (int i = 0; i < 2; i++) {
		if (x->cap[i].seen > x->cap[i].max && x->cap[i].max)
			out->output_truncated = true;
		capture_finish(&x->cap[i], i == 0 ? &out->out : &out->err,
			       i == 0 ? &out->out_len : &out->err_len,
			       i == 0 ? AGENTD_STREAM_STDOUT : AGENTD_STREAM_STDERR,
			       x->rq->on_output, x->rq->userdata);
	}
	if (e->trunc)
		out->output_truncated = true;
	out->duration_ms = now_ms_monotonic() - t0;
	if (e->have_signal) {
		out->term_signal = (int)e->sig;
		out->exit_code = 128 + (int)e->sig;
	} else {
		out->exit_code = (int)e->code;
	}
	out->usage.cpu_time_ms = e->cpu_ms;
	out->usage.peak_memory_bytes = e->peak;
	out->usage.wall_time_ms = e->wall ? e->wall : out->duration_ms;
	out->limit_hit = limit_kind(e->limit);
	if (e->limit == GP_LIMIT_OUTPUT)
		out->output_truncated = true;
	out->timed_out = host_timeout || e->limit == GP_LIMIT_WALL_TIME;
	if (out->timed_out)
		out->exit_code = 124;
	out->resource_limited = out->limit_hit != AGENTD_LIMIT_NONE;
}

/* A command the guest could not start: 127/126 with the reason on stderr (as a container's
 * exec reports it), else an error. */
static int start_failure(struct exec_run *x, agentd_error *err)
{
	struct vm_exec_st *e = x->e;
	if (e->fail_errno != ENOENT && e->fail_errno != EACCES)
		return agentd_error_set(err, e->fail_errno, "the guest could not run %s: %s",
					x->rq->argv[0], e->fail_msg);
	x->out->exit_code = e->fail_errno == ENOENT ? 127 : 126;
	char *msg = xasprintf("agentd: %s: %s\n", x->rq->argv[0], e->fail_msg);
	free(x->out->err);
	x->out->err = (uint8_t *)msg;
	x->out->err_len = strlen(msg);
	return 0;
}

int vm_exec(struct vm_chan *ch, const struct vm_exec_req *rq, agentd_exec_output *out,
	    agentd_error *err)
{
	uint64_t t0 = now_ms_monotonic();
	struct vm_exec_st *e = xcalloc(1, sizeof(*e));
	e->credit = GP_INITIAL_CREDIT;
	e->stdin_credit = GP_INITIAL_CREDIT;
	e->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->wake < 0) {
		free(e);
		return agentd_error_errno(err, errno, "eventfd");
	}
	struct exec_run x = {.ch = ch, .rq = rq, .e = e, .out = out};
	capture_init(&x.cap[0], rq->max_output_bytes);
	capture_init(&x.cap[1], rq->max_output_bytes);
	int r = -1;
	uint8_t *frame = xmalloc(GP_MAX_PAYLOAD);
	int len = exec_frame(rq, frame, err);
	struct vm_sink sink = {exec_on_frame, exec_on_end, e};
	if (len >= 0)
		x.chan = vm_chan_open(ch, &sink, err);
	if (len < 0 || !x.chan || vm_chan_send(ch, GP_EXEC, x.chan, frame, (size_t)len, err) < 0) {
		free(frame);
		goto out;
	}
	free(frame);
	uint64_t deadline = rq->timeout_ms ? t0 + rq->timeout_ms : UINT64_MAX;
	uint64_t grace = UINT64_MAX;
	bool killed = false, host_timeout = false;
	for (;;) {
		deliver(&x);
		feed_stdin(&x);
		pthread_mutex_lock(&ch->lock);
		bool ended = e->ended, dead = e->dead, more = e->head != NULL;
		pthread_mutex_unlock(&ch->lock);
		if (ended && !more)
			break;
		if (dead) {
			char why[256];
			if (!vm_chan_broken(ch, why, sizeof(why)))
				snprintf(why, sizeof(why), "its channel ended");
			agentd_error_set(err, EPIPE, "the VM failed during the command: %s", why);
			x.chan = 0; /* ended with the VM */
			goto out;
		}
		uint64_t now = now_ms_monotonic();
		if (!killed && now >= deadline) {
			killed = host_timeout = true;
			send_kill(ch, x.chan);
			grace = now + KILL_GRACE_MS;
		}
		if (killed && now >= grace) {
			vm_chan_break(ch, "the guest did not end a timed-out command");
			agentd_error_set(err, ETIMEDOUT, "the guest did not end the command within "
					 "%u ms of its kill: the VM was stopped", KILL_GRACE_MS);
			x.chan = 0;
			goto out;
		}
		struct pollfd p[2] = {{.fd = e->wake, .events = POLLIN},
				      {.fd = rq->cancel_fd > 0 ? rq->cancel_fd : -1, .events = POLLIN}};
		uint64_t until = killed ? grace : deadline;
		/* more output queued: deliver it first (a look at cancel only); the deadline
		 * above holds under a flood too */
		int ms = more		       ? 0
			 : until == UINT64_MAX ? 1000
			 : until > now	       ? (int)(until - now < 1000 ? until - now : 1000)
					       : 0;
		if (poll(p, 2, ms) > 0) {
			uint64_t v;
			if (p[0].revents && read(e->wake, &v, sizeof(v)) < 0) {
				/* EAGAIN: a wake already consumed */
			}
			if (p[1].revents && !killed) {
				killed = true;
				send_kill(ch, x.chan);
				grace = now_ms_monotonic() + KILL_GRACE_MS;
			}
		}
	}
	x.chan = 0; /* its last frame released the channel */
	if (e->failed)
		r = start_failure(&x, err);
	else {
		fill_result(&x, host_timeout, t0);
		r = 0;
	}
out:
	if (x.chan)
		vm_chan_close(ch, x.chan, true);
	capture_free(&x.cap[0]);
	capture_free(&x.cap[1]);
	while (e->head) {
		struct chunk *c = e->head;
		e->head = c->next;
		free(c);
	}
	close(e->wake);
	free(e);
	return r;
}
