/* proxy_resolve.c: name resolution for the egress proxy — worker threads run the blocking
 * getaddrinfo so the event loop never waits; each sandbox has its own queue, served in
 * turn with a cap on its lookups in flight, so names that never answer hold back only the
 * sandbox that asked for them. Results come back tagged through an eventfd. */
#include "lib/net/net.h"

#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>

struct owner;

struct job {
	struct resolve_result res;
	char host[256];
	struct owner *owner;
	struct job *next;
};

/* One sandbox's lookups: waiting ones in order, and how many a worker runs. */
struct owner {
	uint64_t key;
	struct job *todo, **todo_tail;
	size_t running;
};

struct resolver {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct owner **owners; /* with a lookup waiting or running */
	size_t nowners, owners_cap;
	size_t next_owner; /* round robin: the owner served first next time */
	struct job *done;
	size_t per_owner; /* lookups in flight per owner */
	bool stopping;
	int notify_fd;
	size_t nthreads, idle, max_threads;
	pthread_t *threads;
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

/* ------------------------------------------------------------ owners (locked) */

static struct owner *owner_find(struct resolver *r, uint64_t key, size_t *at)
{
	for (size_t i = 0; i < r->nowners; i++)
		if (r->owners[i]->key == key) {
			if (at)
				*at = i;
			return r->owners[i];
		}
	return NULL;
}

/* An owner with nothing waiting or running is forgotten. */
static void owner_release_if_idle(struct resolver *r, struct owner *o)
{
	size_t at;
	if (o->todo || o->running || !owner_find(r, o->key, &at))
		return;
	memmove(r->owners + at, r->owners + at + 1, (r->nowners - at - 1) * sizeof(*r->owners));
	r->nowners--;
	if (r->next_owner > at)
		r->next_owner--;
	free(o);
}

/* The next lookup to run: owners in turn, each below its cap on lookups in flight. */
static struct job *next_job(struct resolver *r)
{
	for (size_t k = 0; k < r->nowners; k++) {
		size_t i = (r->next_owner + k) % r->nowners;
		struct owner *o = r->owners[i];
		if (!o->todo || o->running >= r->per_owner)
			continue;
		struct job *j = o->todo;
		o->todo = j->next;
		if (!o->todo)
			o->todo_tail = &o->todo;
		o->running++;
		r->next_owner = (i + 1) % r->nowners;
		return j;
	}
	return NULL;
}

/* Lookups that a worker could start now. */
static size_t runnable(const struct resolver *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->nowners; i++) {
		const struct owner *o = r->owners[i];
		size_t q = 0;
		for (const struct job *j = o->todo; j && o->running + q < r->per_owner; j = j->next)
			q++;
		n += q;
	}
	return n;
}

/* ------------------------------------------------------------ workers */

static void *worker(void *arg)
{
	struct resolver *r = arg;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		struct job *j = NULL;
		while (!r->stopping && !(j = next_job(r))) {
			r->idle++;
			pthread_cond_wait(&r->cond, &r->lock);
			r->idle--;
		}
		if (r->stopping)
			break;
		pthread_mutex_unlock(&r->lock);
		resolve_one(j);
		pthread_mutex_lock(&r->lock);
		struct owner *o = j->owner;
		o->running--;
		j->owner = NULL;
		j->next = r->done;
		r->done = j;
		owner_release_if_idle(r, o);
		uint64_t one = 1;
		if (write(r->notify_fd, &one, sizeof(one)) < 0) {
			/* the counter is saturated: the loop is awake anyway */
		}
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* A worker for each lookup that could run now beyond the idle ones (lock held): a lookup
 * must not wait behind another sandbox's that never answers. */
static void maybe_spawn(struct resolver *r)
{
	if (r->nthreads >= r->max_threads || runnable(r) <= r->idle)
		return;
	/* The workers must not take signals meant for the process (the CLI's SIGINT). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&r->threads[r->nthreads], NULL, worker, r) == 0)
		r->nthreads++;
	/* else: the lookup waits for a worker that exists (there is one at least) */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

struct resolver *resolver_start(unsigned max_threads, unsigned per_owner, int notify_fd,
				agentd_error *err)
{
	struct resolver *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->notify_fd = notify_fd;
	r->max_threads = max_threads ? max_threads : 64;
	r->per_owner = per_owner ? per_owner : 4;
	r->threads = xcalloc(r->max_threads, sizeof(*r->threads));
	/* one worker from the start, so a lookup never depends on creating a thread */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&r->threads[0], NULL, worker, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		resolver_stop(r);
		agentd_error_errno(err, e, "start a resolver thread");
		return NULL;
	}
	r->nthreads = 1;
	return r;
}

void resolver_submit(struct resolver *r, uint64_t owner, uint64_t tag, const char *host)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->res.tag = tag;
	snprintf(j->host, sizeof(j->host), "%s", host);
	pthread_mutex_lock(&r->lock);
	struct owner *o = owner_find(r, owner, NULL);
	if (!o) {
		o = xcalloc(1, sizeof(*o));
		o->key = owner;
		o->todo_tail = &o->todo;
		if (r->nowners == r->owners_cap) {
			r->owners_cap = r->owners_cap ? r->owners_cap * 2 : 16;
			r->owners = xrealloc(r->owners, r->owners_cap * sizeof(*r->owners));
		}
		r->owners[r->nowners++] = o;
	}
	j->owner = o;
	*o->todo_tail = j;
	o->todo_tail = &j->next;
	maybe_spawn(r);
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void resolver_cancel(struct resolver *r, uint64_t owner, uint64_t tag)
{
	pthread_mutex_lock(&r->lock);
	struct owner *o = owner_find(r, owner, NULL);
	for (struct job **pj = o ? &o->todo : NULL; pj && *pj; pj = &(*pj)->next) {
		struct job *j = *pj;
		if (j->res.tag != tag)
			continue;
		*pj = j->next;
		if (!*pj)
			o->todo_tail = pj;
		free(j);
		owner_release_if_idle(r, o);
		break;
	}
	/* a lookup already running cannot be stopped: its answer is dropped on arrival */
	pthread_mutex_unlock(&r->lock);
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
	for (size_t i = 0; i < r->nowners; i++) {
		free_list(r->owners[i]->todo);
		free(r->owners[i]);
	}
	free(r->owners);
	free_list(r->done);
	free(r->threads);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
