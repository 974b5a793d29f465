/* metrics.c: GET /v1/metrics in the Prometheus text format — sandboxes by state, execs by
 * result, an exec latency histogram, request counters. */
#include "daemon/api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const result_names[EXEC__COUNT] = {"ok", "nonzero", "timeout", "limit",
						      "error"};

struct buf {
	char *p;
	size_t len;
	FILE *f;
};

void api_metrics(struct daemon *d, struct api_request *r, const struct client *c,
		 struct reply *out)
{
	struct buf b = {0};
	b.f = open_memstream(&b.p, &b.len);
	unsigned by_state[SB__COUNT] = {0};
	pthread_mutex_lock(&d->lock);
	for (struct live *l = d->head; l; l = l->next)
		by_state[live_state(l)]++;
	struct metrics m = d->m;
	pthread_mutex_unlock(&d->lock);

	fprintf(b.f, "# HELP agentd_sandboxes Live sandboxes by lifecycle state.\n"
		     "# TYPE agentd_sandboxes gauge\n");
	for (int s = 0; s < SB__COUNT; s++)
		if (s != SB_DESTROYED)
			fprintf(b.f, "agentd_sandboxes{state=\"%s\"} %u\n", sb_state_name(s),
				by_state[s]);
	fprintf(b.f, "# HELP agentd_sandboxes_created_total Sandboxes created.\n"
		     "# TYPE agentd_sandboxes_created_total counter\n"
		     "agentd_sandboxes_created_total %llu\n"
		     "# HELP agentd_sandboxes_destroyed_total Sandboxes destroyed.\n"
		     "# TYPE agentd_sandboxes_destroyed_total counter\n"
		     "agentd_sandboxes_destroyed_total %llu\n"
		     "# HELP agentd_sandbox_create_failures_total Failed sandbox creations.\n"
		     "# TYPE agentd_sandbox_create_failures_total counter\n"
		     "agentd_sandbox_create_failures_total %llu\n",
		(unsigned long long)m.created, (unsigned long long)m.destroyed,
		(unsigned long long)m.create_failed);
	fprintf(b.f, "# HELP agentd_execs_total Execs by result.\n"
		     "# TYPE agentd_execs_total counter\n");
	for (int i = 0; i < EXEC__COUNT; i++)
		fprintf(b.f, "agentd_execs_total{result=\"%s\"} %llu\n", result_names[i],
			(unsigned long long)m.execs[i]);
	fprintf(b.f, "# HELP agentd_exec_duration_seconds Exec wall time in the sandbox.\n"
		     "# TYPE agentd_exec_duration_seconds histogram\n");
	for (int i = 0; i < LATENCY_BUCKETS; i++)
		fprintf(b.f, "agentd_exec_duration_seconds_bucket{le=\"%g\"} %llu\n", live_latency_bucket_s[i],
			(unsigned long long)m.latency_le[i]);
	fprintf(b.f,
		"agentd_exec_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
		"agentd_exec_duration_seconds_sum %.6f\n"
		"agentd_exec_duration_seconds_count %llu\n"
		"# HELP agentd_http_requests_total HTTP requests answered.\n"
		"# TYPE agentd_http_requests_total counter\n"
		"agentd_http_requests_total %llu\n"
		"# HELP agentd_http_errors_total HTTP error answers by class.\n"
		"# TYPE agentd_http_errors_total counter\n"
		"agentd_http_errors_total{class=\"4xx\"} %llu\n"
		"agentd_http_errors_total{class=\"5xx\"} %llu\n",
		(unsigned long long)m.latency_count, m.latency_sum_s,
		(unsigned long long)m.latency_count, (unsigned long long)m.requests,
		(unsigned long long)m.errors_4xx, (unsigned long long)m.errors_5xx);
	/* issue 12: ttl */
	fprintf(b.f, "# HELP agentd_sandboxes_expired_total Sandboxes whose ttl or idle timeout "
		     "ended, by what was done.\n"
		     "# TYPE agentd_sandboxes_expired_total counter\n");
	for (int idle = 0; idle < 2; idle++)
		for (int susp = 0; susp < 2; susp++)
			fprintf(b.f, "agentd_sandboxes_expired_total{reason=\"%s\",action=\"%s\"} "
				     "%llu\n", idle ? "idle" : "ttl", susp ? "suspend" : "destroy",
				(unsigned long long)m.expired[idle][susp]);
	fclose(b.f);
	out->status = 200;
	out->raw = b.p;
	out->raw_len = b.len;
	out->content_type = "text/plain; version=0.0.4";
}
