/* proxy_resolve.c: name resolution for the egress proxy — a few worker threads run the
 * blocking getaddrinfo so the event loop never waits; results come back tagged and the
 * loop is woken through an eventfd. */
#include "lib/net/net.h"

#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>

struct job {
	struct resolve_result res;
	char host[256];
	struct job *next;
};

struct resolver {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *todo, **todo_tail;
	struct job *done;
	size_t queued; /* jobs in todo */
	bool stopping;
	int notify_fd;
	size_t nthreads;
	pthread_t threads[16];
};

static void resolve_one(struct job *j)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	int r = getaddrinfo(j->host, NULL, &hints, &ai);
	j->res.error = r;
	j->res.n = 0;
	if (r != 0)
		return;
	for (struct addrinfo *a = ai; a && j->res.n < ARRAY_SIZE(j->res.a); a = a->ai_next) {
		struct resolved_addr *out = &j->res.a[j->res.n];
		if (a->ai_family == AF_INET && a->ai_addrlen >= sizeof(struct sockaddr_in)) {
			out->af = AF_INET;
			memcpy(out->addr, &((struct sockaddr_in *)a->ai_addr)->sin_addr, 4);
		} else if (a->ai_family == AF_INET6 &&
			   a->ai_addrlen >= sizeof(struct sockaddr_in6)) {
			out->af = AF_INET6;
			memcpy(out->addr, &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr, 16);
		} else {
			continue;
		}
		bool dup = false;
		for (size_t i = 0; i < j->res.n && !dup; i++)
			dup = j->res.a[i].af == out->af && !memcmp(j->res.a[i].addr, out->addr, 16);
		if (!dup)
			j->res.n++;
	}
	freeaddrinfo(ai);
}

static void *worker(void *arg)
{
	struct resolver *r = arg;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->todo && !r->stopping)
			pthread_cond_wait(&r->cond, &r->lock);
		if (r->stopping)
			break;
		struct job *j = r->todo;
		r->todo = j->next;
		r->queued--;
		if (!r->todo)
			r->todo_tail = &r->todo;
		pthread_mutex_unlock(&r->lock);
		resolve_one(j);
		pthread_mutex_lock(&r->lock);
		j->next = r->done;
		r->done = j;
		uint64_t one = 1;
		if (write(r->notify_fd, &one, sizeof(one)) < 0) {
			/* the counter is saturated: the loop is awake anyway */
		}
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

struct resolver *resolver_start(unsigned threads, int notify_fd, agentd_error *err)
{
	struct resolver *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->todo_tail = &r->todo;
	r->notify_fd = notify_fd;
	if (threads == 0)
		threads = 4;
	if (threads > ARRAY_SIZE(r->threads))
		threads = ARRAY_SIZE(r->threads);
	/* The workers must not take signals meant for the process (the CLI's SIGINT). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; r->nthreads < threads; r->nthreads++) {
		int e = pthread_create(&r->threads[r->nthreads], NULL, worker, r);
		if (e) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			resolver_stop(r);
			agentd_error_errno(err, e, "start a resolver thread");
			return NULL;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

int resolver_submit(struct resolver *r, uint64_t tag, const char *host)
{
	pthread_mutex_lock(&r->lock);
	/* Lookups of connections that timed out stay queued: slow DNS must not let them pile
	 * up without end. */
	if (r->queued >= RESOLVER_MAX_QUEUED) {
		pthread_mutex_unlock(&r->lock);
		return -1;
	}
	struct job *j = xcalloc(1, sizeof(*j));
	j->res.tag = tag;
	snprintf(j->host, sizeof(j->host), "%s", host);
	r->queued++;
	*r->todo_tail = j;
	r->todo_tail = &j->next;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

size_t resolver_take(struct resolver *r, struct resolve_result *out, size_t max)
{
	size_t n = 0;
	pthread_mutex_lock(&r->lock);
	while (r->done && n < max) {
		struct job *j = r->done;
		r->done = j->next;
		out[n++] = j->res;
		free(j);
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

static void free_list(struct job *j)
{
	while (j) {
		struct job *next = j->next;
		free(j);
		j = next;
	}
}

void resolver_stop(struct resolver *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	/* a worker inside getaddrinfo finishes that lookup first (bounded by resolv.conf) */
	for (size_t i = 0; i < r->nthreads; i++)
		pthread_join(r->threads[i], NULL);
	free_list(r->todo);
	free_list(r->done);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
