/* sandbox_bench.c: in-process figures that a command-line timer cannot see — exec of
 * /bin/true in a running sandbox against a plain fork+exec measured in the same run,
 * create+destroy of a persistent sandbox, and host-side memory per idle sandbox.
 * usage: sandbox_bench [--backend NAME] [--runs N] [--idle N] */
#include "agentd.h"

#include <dirent.h>
#include <getopt.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void stats(const char *name, double *v, int n, double ref)
{
	qsort(v, (size_t)n, sizeof(double), cmp);
	double med = v[n / 2], p99 = v[(int)(0.99 * (n - 1))];
	printf("%-34s median %9.1f us  p99 %9.1f us", name, med, p99);
	if (ref > 0)
		printf("  x plain %.2f", med / ref);
	printf("\n");
}

static double plain_fork_exec(void)
{
	char *argv[] = {"/bin/true", NULL};
	double t0 = now_us();
	pid_t pid;
	if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0)
		return -1;
	waitpid(pid, NULL, 0);
	return now_us() - t0;
}

/* Proportional set size (kB) of a process and its descendants is not tracked by pid here:
 * we sum Pss of every process whose cgroup path mentions the sandbox id. */
static long pss_kb_of_pid(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char line[256];
	long kb = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pss: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static long self_rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* Children of this process (the sandboxes' init processes). */
static long children_pss_kb(int *count)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	long total = 0;
	*count = 0;
	pid_t self = getpid();
	while (d && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *rp = strrchr(buf, ')');
		int ppid = 0;
		if (rp && sscanf(rp + 1, " %*c %d", &ppid) == 1 && ppid == self) {
			total += pss_kb_of_pid(atoi(de->d_name));
			(*count)++;
		}
	}
	if (d)
		closedir(d);
	return total;
}

int main(int argc, char **argv)
{
	const char *backend = "container";
	int runs = 300, idle = 200;
	static const struct option opts[] = {{"backend", required_argument, NULL, 'b'},
					     {"runs", required_argument, NULL, 'r'},
					     {"idle", required_argument, NULL, 'i'},
					     {NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "b:r:i:", opts, NULL)) != -1) {
		if (c == 'b')
			backend = optarg;
		else if (c == 'r')
			runs = atoi(optarg);
		else if (c == 'i')
			idle = atoi(optarg);
		else
			return 2;
	}
	if (runs < 10)
		runs = 10;
	agentd_error err = {0};
	agentd_backend *b = NULL;
	if (agentd_create_backend(backend, NULL, &b, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	double *plain = calloc((size_t)runs, sizeof(double));
	double *ex = calloc((size_t)runs, sizeof(double));
	double *cd = calloc((size_t)runs, sizeof(double));

	agentd_sandbox *sb = NULL;
	if (agentd_backend_create_sandbox(b, &spec, &sb, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	char *targv[] = {"/bin/true", NULL};
	agentd_command cmd = {.argv = targv};
	for (int i = 0; i < 20; i++) { /* warm-up */
		agentd_exec_output o;
		agentd_sandbox_exec(sb, &cmd, NULL, &o, &err);
		agentd_exec_output_free(&o);
		plain_fork_exec();
	}
	/* Interleaved so that both see the same machine state. */
	for (int i = 0; i < runs; i++) {
		plain[i] = plain_fork_exec();
		agentd_exec_output o;
		double t0 = now_us();
		if (agentd_sandbox_exec(sb, &cmd, NULL, &o, &err) < 0 || o.exit_code != 0) {
			fprintf(stderr, "exec failed: %s (exit %d)\n", err.msg, o.exit_code);
			return 1;
		}
		ex[i] = now_us() - t0;
		agentd_exec_output_free(&o);
	}
	agentd_sandbox_destroy(sb, &err);
	for (int i = 0; i < runs; i++) {
		double t0 = now_us();
		if (agentd_backend_create_sandbox(b, &spec, &sb, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		agentd_sandbox_destroy(sb, &err);
		cd[i] = now_us() - t0;
	}
	printf("backend %s, %d runs\n", backend, runs);
	qsort(plain, (size_t)runs, sizeof(double), cmp);
	double ref = plain[runs / 2];
	stats("plain fork+exec /bin/true", plain, runs, ref);
	stats("exec /bin/true in a sandbox", ex, runs, ref);
	stats("create + destroy", cd, runs, 0);

	if (idle > 0) {
		long rss0 = self_rss_kb();
		agentd_sandbox **all = calloc((size_t)idle, sizeof(*all));
		for (int i = 0; i < idle; i++)
			if (agentd_backend_create_sandbox(b, &spec, &all[i], &err) < 0) {
				fprintf(stderr, "sandbox %d: %s\n", i, err.msg);
				idle = i;
				break;
			}
		int n = 0;
		long pss = children_pss_kb(&n);
		long rss1 = self_rss_kb();
		printf("%d idle sandboxes: %d host processes, PSS %ld kB total = %.1f kB each; "
		       "owner RSS +%ld kB = %.1f kB each; total %.2f MiB each\n",
		       idle, n, pss, idle ? (double)pss / idle : 0, rss1 - rss0,
		       idle ? (double)(rss1 - rss0) / idle : 0,
		       idle ? ((double)pss + (double)(rss1 - rss0)) / idle / 1024 : 0);
		for (int i = 0; i < idle; i++)
			agentd_sandbox_destroy(all[i], &err);
		free(all);
	}
	agentd_backend_free(b);
	agentd_spec_free(&spec);
	free(plain);
	free(ex);
	free(cd);
	return 0;
}
