/* netaudit.c: the egress proxy's decisions (allowed, denied, closed with bytes) in the
 * audit log. The proxy thread must never wait for SQLite, so its callback only queues a
 * copy; a writer thread appends the records, many to a transaction when they come fast.
 * The queue is bounded: past NETAUDIT_MAX_QUEUED a record is counted as dropped (a log
 * line says how many), so a sandbox flooding the proxy cannot grow the daemon. */
#include "daemon/live/live.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NETAUDIT_MAX_QUEUED 65536

struct netrec {
	struct netrec *next;
	int event;
	char sandbox_id[AGENTD_ID_LEN];
	char *detail_json;		/* method, target, address, reason, bytes */
	uint64_t duration_ms;
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

static void *writer_main(void *arg)
{
	struct netaudit *na = arg;
	pthread_mutex_lock(&na->lock);
	for (;;) {
		while (!na->head && !na->stop)
			pthread_cond_wait(&na->cond, &na->lock);
		struct netrec *batch = na->head;
		uint64_t dropped = na->dropped;
		na->head = NULL;
		na->tail = &na->head;
		na->queued = 0;
		na->dropped = 0;
		bool stop = na->stop;
		pthread_mutex_unlock(&na->lock);
		if (dropped)
			dlog("warn", "msg=\"egress proxy records dropped (queue full)\" count=%llu",
			     (unsigned long long)dropped);
		while (batch) {
			struct netrec *r = batch;
			batch = r->next;
			struct audit_record rec = {
				.uid = -1,
				.client = "egress-proxy",
				.action = "network",
				.sandbox_id = r->sandbox_id,
				.argv_json = r->detail_json,
				.backend = "container",
				.result = event_name(r->event),
				.duration_ms = r->duration_ms,
			};
			agentd_error err = {0};
			if (state_audit_append(na->d->st, &rec, &err) < 0)
				dlog("error", "msg=\"audit record lost\" action=network sandbox=%s "
					      "error=\"%s\"", r->sandbox_id, err.msg);
			free(r->detail_json);
			free(r);
		}
		pthread_mutex_lock(&na->lock);
		if (stop && !na->head)
			break;
	}
	pthread_mutex_unlock(&na->lock);
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
	pthread_cond_init(&na->cond, NULL);
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
