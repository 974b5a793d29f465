/* rlimit.c: the per-process resource limits every backend applies to a command.
 * Computed in the parent from the spec's limits, applied in the child before execve. */
#include "lib/jail/jail.h"

static void add(struct rlimit_set *rs, int resource, rlim_t soft, rlim_t hard)
{
	rs->resource[rs->n] = resource;
	rs->value[rs->n].rlim_cur = soft;
	rs->value[rs->n].rlim_max = hard;
	rs->n++;
}

void rlimit_set_cpu(struct rlimit_set *rs, uint64_t cpu_ms)
{
	/* RLIMIT_CPU is in whole seconds: round up so a limit is never shorter than asked;
	 * the hard limit one second later turns SIGXCPU into SIGKILL. */
	rlim_t s = (rlim_t)((cpu_ms + 999) / 1000);
	if (s == 0)
		s = 1;	/* the kernel reads 0 as 1 anyway */
	for (int i = 0; i < rs->n; i++)
		if (rs->resource[i] == RLIMIT_CPU) {
			rs->value[i].rlim_cur = s;
			rs->value[i].rlim_max = s + 1;
			return;
		}
	if (rs->n < RLIMIT_SET_MAX)
		add(rs, RLIMIT_CPU, s, s + 1);
}

void rlimit_prepare(const agentd_limits *l, struct rlimit_set *out)
{
	memset(out, 0, sizeof(*out));
	if (l->max_cpu_time_ms)
		rlimit_set_cpu(out, l->max_cpu_time_ms);
	if (l->max_open_files)
		add(out, RLIMIT_NOFILE, l->max_open_files, l->max_open_files);
	/* max_write_bytes caps any single file a command writes (the tmpfs size caps the
	 * total where the backend owns the filesystem). */
	add(out, RLIMIT_FSIZE, l->max_write_bytes ? l->max_write_bytes : RLIM_INFINITY,
	    l->max_write_bytes ? l->max_write_bytes : RLIM_INFINITY);
	/* No core dumps: they would write sandbox memory to the host. */
	add(out, RLIMIT_CORE, 0, 0);
	/* Locked memory is host memory outside the cgroup's reclaim: keep the default small. */
	add(out, RLIMIT_MEMLOCK, 64 * 1024, 64 * 1024);
}

int rlimit_apply(const struct rlimit_set *rs)
{
	for (int i = 0; i < rs->n; i++)
		if (setrlimit((__rlimit_resource_t)rs->resource[i], &rs->value[i]) < 0)
			return -errno;
	return 0;
}
