/* netaudit.c: the egress proxy's decisions (allowed, denied, closed with bytes) in the
 * audit log. The proxy thread must never wait for SQLite, so its callback only queues a
 * copy; a writer thread appends the records. A sandbox triggers these at will, so what it
 * can write is bounded: the first decision for a (sandbox, decision, target, reason) is a
 * record at once, its repeats within an interval one aggregate record (count, first and
 * last time, samples); past NETAUDIT_NEW_PER_INTERVAL first decisions in an interval, or
 * NETAUDIT_KEYS_PER_SANDBOX targets aggregated at once, a sandbox's further new targets are
 * counted into one "suppressed" record per interval. The queue is
 * bounded too: past NETAUDIT_MAX_QUEUED a decision is counted into a "dropped" record. */
#include "daemon/live/live.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NETAUDIT_MAX_QUEUED 65536
#define NETAUDIT_INTERVAL_MS 10000
#define NETAUDIT_NEW_PER_INTERVAL 32	/* first-decision records per sandbox and interval */
#define NETAUDIT_KEYS_PER_SANDBOX 64	/* targets aggregated at once per sandbox */
#define NETAUDIT_SAMPLES 3
#define NETAUDIT_BUCKETS 1024

struct netrec {
	struct netrec *next;
	int event;
	char sandbox_id[AGENTD_ID_LEN];
	char *detail_json;		/* method, target, address, reason, bytes */
	uint64_t duration_ms;
};

/* When the events counted in a record happened, and a few of them. */
struct tally {
	int64_t first_ms, last_ms;
	json_t *samples;		/* up to NETAUDIT_SAMPLES details */
};

/* Repeats of one decision of one sandbox for one target within the current interval. */
struct agg {
	struct agg *next;
	struct budget *owner;
	char *key;			/* sandbox, event, host, port, reason */
	char sandbox_id[AGENTD_ID_LEN];
	int event;
	uint64_t count, bytes_up, bytes_down;
	struct tally tally;
	bool active;			/* seen this interval (else dropped at its end) */
};

/* A sandbox's first-decision records this interval, its aggregated targets, and what went
 * over either bound. */
struct budget {
	struct budget *next;
	char sandbox_id[AGENTD_ID_LEN];
	unsigned records;
	unsigned keys;
	uint64_t over[4];		/* by event */
	struct tally tally;
};

struct netaudit {
	struct daemon *d;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct netrec *head, **tail;
	size_t queued;
	uint64_t dropped;
	bool stop;
	pthread_t thread;
	/* the writer thread's own */
	struct agg *buckets[NETAUDIT_BUCKETS];
	struct budget *budgets;
	uint64_t next_flush_ms;		/* monotonic */
};

static const char *event_name(int e)
{
	switch (e) {
	case AGENTD_NETLOG_ALLOWED:
		return "allowed";
	case AGENTD_NETLOG_DENIED:
		return "denied";
	default:
		return "closed";
	}
}

static void on_netlog(void *userdata, const agentd_netlog *ev)
{
	struct netaudit *na = userdata;
	json_t *j = json_pack("{s:s?, s:s?, s:i, s:s?, s:s?, s:I, s:I}", "method", ev->method,
			      "host", ev->host, "port", (int)ev->port, "address", ev->address,
			      "reason", ev->reason, "bytes_up", (json_int_t)ev->bytes_up,
			      "bytes_down", (json_int_t)ev->bytes_down);
	char *detail = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	struct netrec *r = detail ? calloc(1, sizeof(*r)) : NULL;
	pthread_mutex_lock(&na->lock);
	if (!r || na->queued >= NETAUDIT_MAX_QUEUED) {
		na->dropped++;
		pthread_mutex_unlock(&na->lock);
		free(r);
		free(detail);
		return;
	}
	r->event = ev->event;
	snprintf(r->sandbox_id, sizeof(r->sandbox_id), "%s", ev->sandbox_id ? ev->sandbox_id : "");
	r->detail_json = detail;
	r->duration_ms = ev->duration_ms;
	*na->tail = r;
	na->tail = &r->next;
	na->queued++;
	pthread_cond_signal(&na->cond);
	pthread_mutex_unlock(&na->lock);
}

static void append(struct netaudit *na, const char *sandbox_id, const char *result,
		   const char *detail_json, uint64_t duration_ms, uint64_t count, int64_t first_ms,
		   int64_t last_ms)
{
	struct audit_record rec = {
		.uid = -1,
		.client = "egress-proxy",
		.action = "network",
		.sandbox_id = sandbox_id && *sandbox_id ? sandbox_id : NULL,
		.argv_json = detail_json,
		.backend = "container",
		.result = result,
		.duration_ms = duration_ms,
		.count = count,
		.first_ms = first_ms,
		.last_ms = last_ms,
	};
	agentd_error err = {0};
	if (state_audit_append(na->d->st, &rec, &err) < 0)
		dlog("error", "msg=\"audit record lost\" action=network sandbox=%s error=\"%s\"",
		     sandbox_id ? sandbox_id : "-", err.msg);
}

/* Write an aggregate or budget record: detail is taken. */
static void append_json(struct netaudit *na, const char *sandbox_id, const char *result,
			json_t *detail, uint64_t count, int64_t first_ms, int64_t last_ms)
{
	char *s = json_dumps(detail, JSON_COMPACT);
	json_decref(detail);
	append(na, sandbox_id, result, s, 0, count, first_ms, last_ms);
	free(s);
}

static void tally_add(struct tally *t, int64_t now, const char *detail_json)
{
	if (!t->first_ms)
		t->first_ms = now;
	t->last_ms = now;
	if (!t->samples)
		t->samples = json_array();
	json_t *d;
	if (json_array_size(t->samples) < NETAUDIT_SAMPLES &&
	    (d = json_loads(detail_json, 0, NULL)))
		json_array_append_new(t->samples, d);
}

static void tally_reset(struct tally *t)
{
	json_decref(t->samples);
	memset(t, 0, sizeof(*t));
}

static char *agg_key(const struct netrec *r, json_t *detail)
{
	json_t *host = json_object_get(detail, "host"), *reason = json_object_get(detail, "reason");
	return xasprintf("%s\x1f%d\x1f%s\x1f%lld\x1f%s", r->sandbox_id, r->event,
			 json_string_value(host) ? json_string_value(host) : "",
			 (long long)json_integer_value(json_object_get(detail, "port")),
			 json_string_value(reason) ? json_string_value(reason) : "");
}

static unsigned key_bucket(const char *k)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *k; k++)
		h = (h ^ (uint8_t)*k) * 16777619u;
	return h % NETAUDIT_BUCKETS;
}

static struct budget *budget_of(struct netaudit *na, const char *sandbox_id)
{
	for (struct budget *b = na->budgets; b; b = b->next)
		if (!strcmp(b->sandbox_id, sandbox_id))
			return b;
	struct budget *b = xcalloc(1, sizeof(*b));
	snprintf(b->sandbox_id, sizeof(b->sandbox_id), "%s", sandbox_id);
	b->next = na->budgets;
	na->budgets = b;
	return b;
}

/* One decision: a repeat joins its aggregate; a new one is a record at once while the
 * sandbox's budget lasts, else it is counted as suppressed. */
static void account(struct netaudit *na, struct netrec *r)
{
	int64_t t = now_ms_realtime();
	json_t *detail = json_loads(r->detail_json, 0, NULL);
	char *key = agg_key(r, detail);
	unsigned b = key_bucket(key);
	struct agg *g = na->buckets[b];
	while (g && strcmp(g->key, key))
		g = g->next;
	if (g) {
		g->active = true;
		g->count++;
		g->bytes_up += (uint64_t)json_integer_value(json_object_get(detail, "bytes_up"));
		g->bytes_down += (uint64_t)json_integer_value(json_object_get(detail, "bytes_down"));
		tally_add(&g->tally, t, r->detail_json);
		free(key);
	} else {
		struct budget *bg = budget_of(na, r->sandbox_id);
		if (bg->records >= NETAUDIT_NEW_PER_INTERVAL || bg->keys >= NETAUDIT_KEYS_PER_SANDBOX) {
			bg->over[r->event & 3]++;
			tally_add(&bg->tally, t, r->detail_json);
			free(key);
		} else {
			bg->records++;
			bg->keys++;
			append(na, r->sandbox_id, event_name(r->event), r->detail_json,
			       r->duration_ms, 1, 0, 0);
			g = xcalloc(1, sizeof(*g));
			g->key = key;
			g->owner = bg;
			g->event = r->event;
			g->active = true;
			snprintf(g->sandbox_id, sizeof(g->sandbox_id), "%s", r->sandbox_id);
			g->next = na->buckets[b];
			na->buckets[b] = g;
		}
	}
	json_decref(detail);
}

/* The end of an interval: each aggregate with repeats and each sandbox over its budget
 * becomes one record; targets not seen in the interval are forgotten. */
static void flush(struct netaudit *na)
{
	for (unsigned i = 0; i < NETAUDIT_BUCKETS; i++) {
		struct agg **pp = &na->buckets[i];
		while (*pp) {
			struct agg *g = *pp;
			if (g->count) {
				json_t *first = json_array_get(g->tally.samples, 0);
				append_json(na, g->sandbox_id, event_name(g->event),
					    json_pack("{s:O?, s:O?, s:O?, s:I, s:I, s:O}",
						      "host", json_object_get(first, "host"),
						      "port", json_object_get(first, "port"),
						      "reason", json_object_get(first, "reason"),
						      "bytes_up", (json_int_t)g->bytes_up,
						      "bytes_down", (json_int_t)g->bytes_down,
						      "samples", g->tally.samples),
					    g->count, g->tally.first_ms, g->tally.last_ms);
			}
			tally_reset(&g->tally);
			g->count = g->bytes_up = g->bytes_down = 0;
			if (g->active) {
				g->active = false;
				pp = &g->next;
				continue;
			}
			*pp = g->next;
			g->owner->keys--;
			free(g->key);
			free(g);
		}
	}
	for (struct budget **pb = &na->budgets; *pb;) {
		struct budget *b = *pb;
		uint64_t n = b->over[1] + b->over[2] + b->over[3];
		if (n) {
			char reason[128];
			snprintf(reason, sizeof(reason), "more than %d new targets in %d s or %d at"
				 " once: counted, not recorded one by one", NETAUDIT_NEW_PER_INTERVAL,
				 NETAUDIT_INTERVAL_MS / 1000, NETAUDIT_KEYS_PER_SANDBOX);
			append_json(na, b->sandbox_id, "suppressed",
				    json_pack("{s:s, s:I, s:I, s:I, s:O}", "reason", reason,
					      "allowed", (json_int_t)b->over[AGENTD_NETLOG_ALLOWED],
					      "denied", (json_int_t)b->over[AGENTD_NETLOG_DENIED],
					      "closed", (json_int_t)b->over[AGENTD_NETLOG_CLOSED],
					      "samples", b->tally.samples),
				    n, b->tally.first_ms, b->tally.last_ms);
		}
		tally_reset(&b->tally);
		b->records = 0;
		memset(b->over, 0, sizeof(b->over));
		if (b->keys) {
			pb = &b->next;
			continue;
		}
		*pb = b->next;
		free(b);
	}
}

static void *writer_main(void *arg)
{
	struct netaudit *na = arg;
	pthread_mutex_lock(&na->lock);
	na->next_flush_ms = mono_ms() + NETAUDIT_INTERVAL_MS;
	for (;;) {
		while (!na->head && !na->stop && mono_ms() < na->next_flush_ms) {
			struct timespec until = monotonic_after_ms(na->next_flush_ms - mono_ms());
			pthread_cond_timedwait(&na->cond, &na->lock, &until);
		}
		struct netrec *batch = na->head;
		uint64_t dropped = na->dropped;
		na->head = NULL;
		na->tail = &na->head;
		na->queued = 0;
		na->dropped = 0;
		bool stop = na->stop;
		pthread_mutex_unlock(&na->lock);
		if (dropped) {
			dlog("warn", "msg=\"egress proxy records dropped (queue full)\" count=%llu",
			     (unsigned long long)dropped);
			append_json(na, NULL, "dropped",
				    json_pack("{s:s}", "reason", "the audit queue was full"), dropped,
				    now_ms_realtime(), now_ms_realtime());
		}
		while (batch) {
			struct netrec *r = batch;
			batch = r->next;
			account(na, r);
			free(r->detail_json);
			free(r);
		}
		if (stop || mono_ms() >= na->next_flush_ms) {
			flush(na);
			na->next_flush_ms = mono_ms() + NETAUDIT_INTERVAL_MS;
		}
		pthread_mutex_lock(&na->lock);
		if (stop && !na->head)
			break;
	}
	pthread_mutex_unlock(&na->lock);
	/* the last flush wrote every aggregate and marked them idle: this one frees them */
	flush(na);
	return NULL;
}

struct netaudit *netaudit_start(struct daemon *d, agentd_proxy **proxy, agentd_error *err)
{
	struct netaudit *na = calloc(1, sizeof(*na));
	if (!na) {
		agentd_error_set(err, ENOMEM, "egress proxy audit");
		return NULL;
	}
	na->d = d;
	na->tail = &na->head;
	pthread_mutex_init(&na->lock, NULL);
	cond_init_monotonic(&na->cond); /* the writer's interval */
	if (pthread_create(&na->thread, NULL, writer_main, na) != 0) {
		agentd_error_set(err, EAGAIN, "egress proxy audit: start the writer thread");
		free(na);
		return NULL;
	}
	agentd_proxy_config cfg = {.on_log = on_netlog, .log_userdata = na};
	*proxy = agentd_proxy_start(&cfg, err);
	if (!*proxy) {
		agentd_error_prefix(err, "egress proxy");
		netaudit_stop(na);
		return NULL;
	}
	return na;
}

void netaudit_stop(struct netaudit *na)
{
	if (!na)
		return;
	pthread_mutex_lock(&na->lock);
	na->stop = true;
	pthread_cond_signal(&na->cond);
	pthread_mutex_unlock(&na->lock);
	pthread_join(na->thread, NULL);
	pthread_mutex_destroy(&na->lock);
	pthread_cond_destroy(&na->cond);
	free(na);
}
