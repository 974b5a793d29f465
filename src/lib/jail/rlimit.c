/* rlimit.c: the per-process resource limits every backend applies to a command.
 * Computed in the parent from the spec's limits, applied in the child before execve. And
 * the per-user budgets of a sandbox that has a host uid and user namespace of its own:
 * rlimits counted per user, and the per-namespace counts of /proc/sys/user. */
#include "lib/jail/jail.h"

#include <fcntl.h>

#define STR_(x) #x
#define STR(x) STR_(x)

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

void rlimit_per_user(struct rlimit_set *rs)
{
	add(rs, RLIMIT_SIGPENDING, SANDBOX_SIGPENDING, SANDBOX_SIGPENDING);
	add(rs, RLIMIT_MSGQUEUE, SANDBOX_MSGQUEUE, SANDBOX_MSGQUEUE);
}

int userns_limits_lower(const char **failed)
{
	static const struct {
		const char *path;
		const char *value;
	} knobs[] = {
	    {"/proc/sys/user/max_inotify_instances", STR(SANDBOX_INOTIFY_INSTANCES)},
	    {"/proc/sys/user/max_inotify_watches", STR(SANDBOX_INOTIFY_WATCHES)},
	    {"/proc/sys/user/max_user_namespaces", STR(SANDBOX_NAMESPACES)},
	    {"/proc/sys/user/max_mnt_namespaces", STR(SANDBOX_NAMESPACES)},
	    {"/proc/sys/user/max_pid_namespaces", STR(SANDBOX_NAMESPACES)},
	    {"/proc/sys/user/max_net_namespaces", STR(SANDBOX_NAMESPACES)},
	    {"/proc/sys/user/max_ipc_namespaces", STR(SANDBOX_NAMESPACES)},
	    {"/proc/sys/user/max_uts_namespaces", STR(SANDBOX_NAMESPACES)},
	    {"/proc/sys/user/max_cgroup_namespaces", STR(SANDBOX_NAMESPACES)},
	};
	for (size_t i = 0; i < ARRAY_SIZE(knobs); i++) {
		int r = write_file_at(AT_FDCWD, knobs[i].path, knobs[i].value);
		if (r == -ENOENT)
			continue; /* a kernel without inotify or that namespace type */
		if (r < 0) {
			*failed = knobs[i].path;
			return r;
		}
	}
	return 0;
}
