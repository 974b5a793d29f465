/* daemon_client.c: exec of /bin/true in a running sandbox through `agentd serve`, client
 * included (HTTP over the unix socket, one kept-alive connection per client thread), next
 * to a plain fork+exec+wait of /bin/true measured in the same run.
 * usage: daemon_client SOCKET SANDBOX_ID EXECS CLIENTS [processes]
 * prints: plain_p50_us, p50_us, p99_us and execs/s for CLIENTS concurrent clients; with
 * "processes", the start of a background /bin/true (POST .../processes: answered once it
 * runs) measured the same way, with the ratios (bench/daemon_bench.sh ... processes). */
#include "cli/cli.h"

#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct worker {
	const char *sock, *path;
	const char *body, *expect;	/* request body, a string its answer holds */
	int status;			/* the answer's status */
	int n;
	double *lat;
	int failures;
};

static void *run(void *arg)
{
	struct worker *w = arg;
	struct client_conn c;
	agentd_error err = {0};
	if (client_connect(w->sock, &c, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		w->failures = w->n;
		return NULL;
	}
	for (int i = 0; i < w->n; i++) {
		struct http_response r;
		double t0 = now_us();
		int rc = client_request(&c, "POST", w->path, "application/json", w->body,
					strlen(w->body), &r, NULL, NULL, &err);
		w->lat[i] = now_us() - t0;
		if (rc < 0 || r.status != w->status || !strstr(r.body, w->expect))
			w->failures++;
		http_response_free(&r);
	}
	client_close(&c);
	return NULL;
}

static double plain_median(int n)
{
	double *lat = calloc((size_t)n, sizeof(double));
	char *argv[] = {"/bin/true", NULL};
	for (int i = 0; i < n; i++) {
		double t0 = now_us();
		pid_t pid = fork();
		if (pid == 0) {
			execve(argv[0], argv, environ);
			_exit(127);
		}
		int st;
		waitpid(pid, &st, 0);
		lat[i] = now_us() - t0;
	}
	qsort(lat, (size_t)n, sizeof(double), cmp);
	double m = lat[n / 2];
	free(lat);
	return m;
}

static const char true_argv[] = "{\"argv\":[\"/bin/true\"]}";

/* The p50 of n requests by each of clients threads (exec of /bin/true unless proc). */
static double measure_what(const char *sock, const char *path, int n, int clients,
			   const char *label, bool proc)
{
	pthread_t th[64];
	struct worker w[64];
	double *all = calloc((size_t)n * (size_t)clients, sizeof(double));
	double t0 = now_us();
	for (int i = 0; i < clients; i++) {
		w[i] = (struct worker){.sock = sock, .path = path, .n = n, .lat = all + (size_t)i * n,
				       .body = true_argv, .status = proc ? 201 : 200,
				       .expect = proc ? "\"pid\":" : "\"exit_code\":0"};
		pthread_create(&th[i], NULL, run, &w[i]);
	}
	int failures = 0;
	for (int i = 0; i < clients; i++) {
		pthread_join(th[i], NULL);
		failures += w[i].failures;
	}
	double secs = (now_us() - t0) / 1e6;
	size_t total = (size_t)n * (size_t)clients;
	qsort(all, total, sizeof(double), cmp);
	printf("%s clients=%d execs=%zu p50_us=%.0f p99_us=%.0f execs_per_s=%.0f failures=%d\n",
	       label, clients, total, all[total / 2], all[total * 99 / 100], (double)total / secs,
	       failures);
	double p50 = all[total / 2];
	free(all);
	return p50;
}

static void measure(const char *sock, const char *path, int n, int clients, const char *label)
{
	measure_what(sock, path, n, clients, label, false);
}

/* Process start, exec and plain fork+exec, interleaved in one run. */
static int processes(const char *sock, const char *id, int n)
{
	char exec_path[128], proc_path[128];
	snprintf(exec_path, sizeof(exec_path), "/v1/sandboxes/%.40s/exec", id);
	snprintf(proc_path, sizeof(proc_path), "/v1/sandboxes/%.40s/processes", id);
	measure_what(sock, proc_path, n / 10, 1, "warmup", true);
	double plain = plain_median(n);
	double start = measure_what(sock, proc_path, n, 1, "process-start", true);
	double exec = measure_what(sock, exec_path, n, 1, "exec", false);
	double start2 = measure_what(sock, proc_path, n, 1, "process-start", true);
	double plain2 = plain_median(n);
	start = (start + start2) / 2;
	plain = (plain + plain2) / 2;
	printf("plain fork+exec+wait /bin/true: p50_us=%.0f\n", plain);
	printf("ratio process start / exec of /bin/true (medians): %.2fx\n", start / exec);
	printf("ratio process start / plain fork+exec (medians): %.2fx\n", start / plain);
	printf("ratio exec / plain fork+exec (medians): %.2fx\n", exec / plain);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5 && !(argc == 6 && !strcmp(argv[5], "processes"))) {
		fprintf(stderr, "usage: daemon_client SOCKET SANDBOX_ID EXECS CLIENTS [processes]\n");
		return 2;
	}
	const char *sock = argv[1];
	char path[128];
	snprintf(path, sizeof(path), "/v1/sandboxes/%.40s/exec", argv[2]);
	int n = atoi(argv[3]), clients = atoi(argv[4]);
	if (n < 10 || clients < 1 || clients > 64)
		return 2;
	if (argc == 6)
		return processes(sock, argv[2], n);
	measure(sock, path, n / 10, 1, "warmup");
	/* plain and daemon interleaved in the same run */
	double plain = plain_median(n);
	measure(sock, path, n, 1, "daemon");
	double plain2 = plain_median(n);
	printf("plain fork+exec+wait /bin/true: p50_us=%.0f (before) %.0f (after)\n", plain,
	       plain2);
	measure(sock, path, n / clients > 50 ? n / clients : 50, clients, "daemon-concurrent");
	return 0;
}
