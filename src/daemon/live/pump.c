/* pump.c: the output of every background process — one epoll thread (the pump) reads each
 * process's stdout, stderr and end into a bounded ring per stream, so a process costs no
 * thread and never unbounded memory; readers copy from the rings and are woken by it. */
#include "daemon/live/procs_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- ring */

static void ring_copy_out(const struct ring *r, uint64_t o, uint8_t *dst, size_t n)
{
	while (n) {
		size_t at = (size_t)(o % r->cap), k = r->cap - at < n ? r->cap - at : n;
		memcpy(dst, r->buf + at, k);
		dst += k;
		o += k;
		n -= k;
	}
}

static void ring_copy_in(struct ring *r, uint64_t o, const uint8_t *src, size_t n)
{
	while (n) {
		size_t at = (size_t)(o % r->cap), k = r->cap - at < n ? r->cap - at : n;
		memcpy(r->buf + at, src, k);
		src += k;
		o += k;
		n -= k;
	}
}

static void ring_grow(struct ring *r, size_t need)
{
	size_t cap = r->cap ? r->cap : 16384;
	while (cap < need)
		cap *= 2;
	if (cap > r->max)
		cap = r->max;
	if (cap <= r->cap)
		return;
	struct ring nr = {.buf = xmalloc(cap), .cap = cap};
	size_t kept = (size_t)(r->end - r->start);
	if (kept) {
		uint8_t *tmp = xmalloc(kept);
		ring_copy_out(r, r->start, tmp, kept);
		ring_copy_in(&nr, r->start, tmp, kept);
		free(tmp);
	}
	free(r->buf);
	r->buf = nr.buf;
	r->cap = cap;
}

/* Keep data, dropping the oldest bytes past max. */
static void ring_append(struct ring *r, const uint8_t *data, size_t n)
{
	if (!r->max) {
		r->end += n;
		r->start = r->end;
		return;
	}
	if (n > r->max) {
		r->end += n - r->max;
		r->start = r->end;
		data += n - r->max;
		n = r->max;
	}
	size_t kept = (size_t)(r->end - r->start);
	if (kept + n > r->cap)
		ring_grow(r, kept + n);
	if (kept + n > r->cap)
		r->start = r->end + n - r->cap;
	ring_copy_in(r, r->end, data, n);
	r->end += n;
}

void proc_notify(struct proc *p)
{
	uint64_t one = 1;
	for (size_t i = 0; i < p->n_subs; i++)
		if (write(p->subs[i], &one, sizeof(one)) < 0) {
			/* full: it has a wake-up pending already */
		}
	pthread_cond_broadcast(&p->cv);
}

/* ---------------------------------------------------------------- the pump */

static struct {
	pthread_mutex_t mu;
	int ep, wake;
	pthread_t thread;
	bool running;
	struct proc *grave;	/* detached, put after the batch that may still name them */
} pump = {.mu = PTHREAD_MUTEX_INITIALIZER, .ep = -1, .wake = -1};

static void src_unregister(struct pump_src *s)
{
	if (s->fd >= 0)
		epoll_ctl(pump.ep, EPOLL_CTL_DEL, s->fd, NULL);
	s->fd = -1;
}

/* Read what one stream has now, up to a budget (the others get their turn; the epoll is
 * level-triggered). EOF, or EIO of a terminal whose last holder closed it, ends it. */
static void pump_read(struct proc *p, int which, size_t budget)
{
	static uint8_t buf[65536]; /* the pump's only: pump.mu held */
	struct pump_src *s = &p->src[which];
	while (s->fd >= 0 && budget) {
		ssize_t n = read(s->fd, buf, sizeof(buf) < budget ? sizeof(buf) : budget);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		pthread_mutex_lock(&p->mu);
		if (n > 0)
			ring_append(&p->out[which], buf, (size_t)n);
		else
			p->out[which].eof = true;
		proc_notify(p);
		pthread_mutex_unlock(&p->mu);
		if (n <= 0) {
			src_unregister(s);
			return;
		}
		budget -= (size_t)n;
	}
}

/* How it ended, once its status says so: its handle's get_status also kills what is left of
 * its tree (its unit), which may take a while (a unit slow to empty); not on the pump. */
static void proc_settle(struct proc *p)
{
	agentd_process_status st;
	agentd_error err = {0};
	int r;
	for (;;) {
		pthread_mutex_lock(&p->h_mu);
		r = p->h ? agentd_process_get_status(p->h, &st, &err) : -1;
		pthread_mutex_unlock(&p->h_mu);
		if (r != 0 || !st.running)
			break;
		usleep(10000); /* its exit report is on its way */
	}
	pthread_mutex_lock(&p->mu);
	if (r == 0)
		p->st = st;
	else
		p->st.running = false;
	if (!p->st.ended_at_ms)
		p->st.ended_at_ms = now_ms_realtime();
	p->done = true;
	proc_notify(p);
	pthread_mutex_unlock(&p->mu);
}

static void *settle_main(void *arg)
{
	proc_settle(arg);
	proc_put(arg);
	return NULL;
}

/* It ended: what it wrote until then goes into the rings first, so a follower's exit line
 * comes after all of it (a descendant that keeps writing is read on, bounded per round);
 * then the rest on a thread of its own, so one process slow to settle stalls no other. */
static void pump_end(struct proc *p)
{
	for (int i = 0; i < 2; i++)
		pump_read(p, i, 2 * (p->out[i].max + 65536));
	src_unregister(&p->src[SRC_WAIT]);
	proc_get(p);
	pthread_attr_t a;
	pthread_t t;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, settle_main, p) != 0)
		settle_main(p); /* no thread to spare: here, then */
	pthread_attr_destroy(&a);
}

static void *pump_main(void *arg)
{
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(pump.ep, evs, 64, -1);
		if (n < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&pump.mu);
		bool stop = !pump.running;
		for (int i = 0; i < n && !stop; i++) {
			struct pump_src *s = evs[i].data.ptr;
			if (!s) {
				uint64_t v;
				if (read(pump.wake, &v, sizeof(v)) < 0) {
					/* spurious */
				}
				continue;
			}
			if (s->p->detached || s->fd < 0)
				continue;
			if (s->which == SRC_WAIT)
				pump_end(s->p);
			else
				pump_read(s->p, s->which, 262144);
		}
		while (pump.grave) {
			struct proc *p = pump.grave;
			pump.grave = p->grave_next;
			proc_put(p);
		}
		pthread_mutex_unlock(&pump.mu);
		if (stop)
			break;
	}
	return NULL;
}

/* pump.mu held */
static int pump_start(agentd_error *err)
{
	if (pump.running)
		return 0;
	pump.ep = epoll_create1(EPOLL_CLOEXEC);
	pump.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (pump.ep < 0 || pump.wake < 0 || epoll_ctl(pump.ep, EPOLL_CTL_ADD, pump.wake, &ev) < 0)
		goto fail;
	pump.running = true;
	if (pthread_create(&pump.thread, NULL, pump_main, NULL) != 0) {
		pump.running = false;
		goto fail;
	}
	return 0;
fail:
	if (pump.ep >= 0)
		close(pump.ep);
	if (pump.wake >= 0)
		close(pump.wake);
	pump.ep = pump.wake = -1;
	return agentd_error_set(err, EAGAIN, "start the process output thread");
}

static void pump_wake(void)
{
	uint64_t one = 1;
	if (write(pump.wake, &one, sizeof(one)) < 0) {
		/* a wake-up is pending */
	}
}

void procs_pump_stop(void)
{
	pthread_mutex_lock(&pump.mu);
	bool running = pump.running;
	pump.running = false;
	if (running)
		pump_wake();
	pthread_mutex_unlock(&pump.mu);
	if (!running)
		return;
	pthread_join(pump.thread, NULL);
	while (pump.grave) {
		struct proc *p = pump.grave;
		pump.grave = p->grave_next;
		proc_put(p);
	}
	close(pump.ep);
	close(pump.wake);
	pump.ep = pump.wake = -1;
}

int pump_attach(struct proc *p, agentd_error *err)
{
	int fds[3] = {agentd_process_stdout_fd(p->h), agentd_process_stderr_fd(p->h),
		      agentd_process_wait_fd(p->h)};
	pthread_mutex_lock(&pump.mu);
	if (pump_start(err) < 0) {
		p->detached = true;
		pthread_mutex_unlock(&pump.mu);
		return -1;
	}
	proc_get(p);
	for (int i = 0; i < 3; i++) {
		p->src[i] = (struct pump_src){.p = p, .which = i, .fd = -1};
		if (fds[i] < 0) {
			if (i < 2)
				p->out[i].eof = true;
			continue;
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->src[i]};
		if (epoll_ctl(pump.ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			int e = errno;
			for (int k = 0; k < i; k++)
				src_unregister(&p->src[k]);
			p->detached = true;
			pthread_mutex_unlock(&pump.mu);
			proc_put(p);
			return agentd_error_set(err, e, "watch the process's output: %s",
						strerror(e));
		}
		p->src[i].fd = fds[i];
	}
	pthread_mutex_unlock(&pump.mu);
	return 0;
}

/* Unregister p: the pump reads it no more and puts its reference after the batch that
 * may still name it. */
void pump_detach(struct proc *p)
{
	pthread_mutex_lock(&pump.mu);
	if (!p->detached) {
		for (int i = 0; i < 3; i++)
			src_unregister(&p->src[i]);
		p->detached = true;
		p->grave_next = pump.grave;
		pump.grave = p; /* the pump's reference, put after its current batch */
		pump_wake();
	}
	pthread_mutex_unlock(&pump.mu);
}

/* ---------------------------------------------------------------- output */

int proc_read(struct proc *p, enum proc_stream s, uint64_t offset, uint8_t *buf, size_t max,
	      struct proc_read *rd)
{
	memset(rd, 0, sizeof(*rd));
	pthread_mutex_lock(&p->mu);
	const struct ring *r = &p->out[s];
	rd->end = r->end;
	if (offset > r->end) {
		pthread_mutex_unlock(&p->mu);
		errno = ERANGE;
		return -1;
	}
	rd->offset = offset < r->start ? r->start : offset;
	size_t avail = (size_t)(r->end - rd->offset);
	rd->n = avail < max ? avail : max;
	if (rd->n)
		ring_copy_out(r, rd->offset, buf, rd->n);
	rd->ended = p->done && rd->offset + rd->n == r->end;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

void proc_output_span(struct proc *p, enum proc_stream s, uint64_t *kept_from, uint64_t *end)
{
	pthread_mutex_lock(&p->mu);
	*kept_from = p->out[s].start;
	*end = p->out[s].end;
	pthread_mutex_unlock(&p->mu);
}

int proc_subscribe(struct proc *p, int efd)
{
	pthread_mutex_lock(&p->mu);
	int r = 0;
	if (p->n_subs == PROC_MAX_SUBSCRIBERS) {
		errno = EAGAIN;
		r = -1;
	} else {
		p->subs[p->n_subs++] = efd;
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

void proc_unsubscribe(struct proc *p, int efd)
{
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->n_subs; i++)
		if (p->subs[i] == efd) {
			p->subs[i] = p->subs[--p->n_subs];
			break;
		}
	pthread_mutex_unlock(&p->mu);
}
