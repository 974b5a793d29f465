/* verdict.c: what became of a command — exit code or signal, its resource usage (its own
 * rusage, or its share of the cgroup's counters), and which limit, if any, ended or
 * constrained it. */
#include "lib/engine/engine.h"

#include <fcntl.h>
#include <sys/wait.h>

static void add_usage_from_rusage(agentd_usage *u, const struct rusage *ru)
{
	uint64_t cpu = (uint64_t)ru->ru_utime.tv_sec * 1000 + (uint64_t)ru->ru_utime.tv_usec / 1000 +
		       (uint64_t)ru->ru_stime.tv_sec * 1000 + (uint64_t)ru->ru_stime.tv_usec / 1000;
	if (cpu > u->cpu_time_ms)
		u->cpu_time_ms = cpu;
	uint64_t rss = (uint64_t)ru->ru_maxrss * 1024;
	if (rss > u->peak_memory_bytes)
		u->peak_memory_bytes = rss;
	if ((uint64_t)ru->ru_oublock * 512 > u->bytes_written)
		u->bytes_written = (uint64_t)ru->ru_oublock * 512;
	if ((uint64_t)ru->ru_inblock * 512 > u->bytes_read)
		u->bytes_read = (uint64_t)ru->ru_inblock * 512;
}

/* The cgroup's counters since the command started, where they say more than its rusage. */
static void add_usage_from_cgroup(const struct exec_job *j, agentd_usage *u)
{
	agentd_usage cu = {0};
	const agentd_usage *cu0 = &j->cu0;
	const struct cgroup *acct = j->unit ? j->unit : j->cg;
	if (!acct || cgroup_read_usage(acct, &cu) < 0)
		return;
	/* The cgroup's peak is the sandbox's lifetime peak: it speaks for this exec only if
	 * this exec raised it. */
	if (cu.peak_memory_bytes > cu0->peak_memory_bytes &&
	    cu.peak_memory_bytes > u->peak_memory_bytes)
		u->peak_memory_bytes = cu.peak_memory_bytes;
	if (cu.cpu_time_ms - cu0->cpu_time_ms > u->cpu_time_ms)
		u->cpu_time_ms = cu.cpu_time_ms - cu0->cpu_time_ms;
	if (cu.bytes_written - cu0->bytes_written > u->bytes_written)
		u->bytes_written = cu.bytes_written - cu0->bytes_written;
	if (cu.bytes_read - cu0->bytes_read > u->bytes_read)
		u->bytes_read = cu.bytes_read - cu0->bytes_read;
}

/* The command the sandbox does not have is a host file (a path of the caller's, looked up
 * without following any symlink, so that a link a sandbox planted in a shared directory
 * says nothing about the host). */
static bool on_host_only(const char *path)
{
	if (path[0] != '/')
		return false;
	_cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return false;
	_cleanup_close_ int fd = openat_beneath(root, path + 1, O_PATH | O_CLOEXEC, 0,
						RESOLVE_NO_SYMLINKS);
	return fd >= 0;
}

/* A command that could not be started is a result (126/127, with the reason on its
 * stderr); a setup that failed is agentd's failure. */
static int report_failure(struct exec_job *j, agentd_error *err)
{
	const struct child_report *rep = &j->rs.fail;
	j->out->exit_code = rep->exit_code;
	if (rep->bad_workdir)
		return agentd_error_set(err, EINVAL, "workdir %s: %s", rep->what,
					strerror(rep->errnum));
	if (rep->exit_code != 126 && rep->exit_code != 127)
		return agentd_error_set(err, rep->errnum, "sandbox setup: %s: %s", rep->what,
					strerror(rep->errnum));
	char msg[1024];
	int n;
	const char *argv0 = j->req->argv[0];
	if (rep->errnum == ENOENT && !strcmp(rep->what, argv0) && on_host_only(argv0))
		n = snprintf(msg, sizeof(msg),
			     "agentd: %s: not found in the sandbox, but it exists on the host: "
			     "make it visible with --ro %s (or --rw; allowed_paths_ro in a "
			     "policy)\n",
			     argv0, argv0);
	else
		n = snprintf(msg, sizeof(msg), "agentd: %s: %s\n", rep->what,
			     strerror(rep->errnum));
	if (n > 0)
		exec_job_stderr_note(j, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
	return 0;
}

/* What the sandbox has spent of its CPU budget, this command included: its cgroup's
 * accounting, else the sandbox's earlier commands and this one's rusage. */
static uint64_t sandbox_cpu_ms(const struct exec_job *j)
{
	uint64_t ms;
	if (exec_budget_cg(j) && cgroup_cpu_ms(exec_budget_cg(j), &ms) == 0)
		return ms;
	return j->req->cpu_spent_ms + j->out->usage.cpu_time_ms;
}

/* Which limit, if any, ended or constrained the command. */
static agentd_limit_kind limit_hit(const struct exec_job *j)
{
	const agentd_exec_output *out = j->out;
	struct cgroup_events cev = {0};
	if (j->unit || j->cg)
		cgroup_read_events(j->unit ? j->unit : j->cg, &cev);
	if (cev.oom_kills > j->ev0.oom_kills)
		return AGENTD_LIMIT_MEMORY;
	if (j->w.cpu_spent || out->term_signal == SIGXCPU ||
	    (out->term_signal == SIGKILL && j->req->cpu_limit_ms && !out->timed_out &&
	     sandbox_cpu_ms(j) + 50 >= j->req->cpu_limit_ms))
		return AGENTD_LIMIT_CPU;
	if (out->term_signal == SIGXFSZ || j->w.scratch_full)
		return AGENTD_LIMIT_WRITE;
	if (cev.pids_max_hits > j->ev0.pids_max_hits)
		return AGENTD_LIMIT_PIDS;
	if (out->output_truncated)
		return AGENTD_LIMIT_OUTPUT;
	return AGENTD_LIMIT_NONE;
}

int exec_verdict(struct exec_job *j, const siginfo_t *si_in, const struct rusage *ru_in,
		 bool timed_out, agentd_error *err)
{
	agentd_exec_output *out = j->out;
	siginfo_t si = *si_in;
	struct rusage ru = *ru_in;
	out->timed_out = timed_out;
	out->duration_ms = now_ms_monotonic() - j->start_ms;
	out->usage.wall_time_ms = out->duration_ms;
	if (j->rs.have_exit) {
		/* The reaper's (a sandbox init's) view of the command replaces ours. */
		int st = j->rs.exit.status;
		si.si_code = WIFEXITED(st) ? CLD_EXITED : CLD_KILLED;
		si.si_status = WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st);
		ru = j->rs.exit.ru;
	}
	add_usage_from_rusage(&out->usage, &ru);
	add_usage_from_cgroup(j, &out->usage);
	watch_finish(j);

	if (j->rs.have_fail)
		return report_failure(j, err);
	if (j->loop_failed)
		return -1; /* already described in err */
	if (j->pid <= 0 && !j->rs.have_exit)
		return agentd_error_set(err, EPIPE, "the sandbox's init went away during the command");

	if (si.si_code == CLD_EXITED) {
		out->exit_code = si.si_status;
	} else {
		out->term_signal = si.si_status;
		out->exit_code = 128 + si.si_status;
	}
	if (out->timed_out)
		out->exit_code = 124;
	out->limit_hit = limit_hit(j);
	out->resource_limited = out->limit_hit != AGENTD_LIMIT_NONE;
	return 0;
}
