/* exec.c: a command as our direct child (the process backends): clone3 into its cgroup,
 * the jail steps and execve in the child, then the job's loop and verdict (job.c). */
#include "lib/engine/engine.h"

#include <fcntl.h>
#include <sys/prctl.h>

/* fds the child sees: 0,1,2 stdio, 3 the error pipe; everything else is closed. */
#define CHILD_ERRFD 3

struct direct_child {
	const exec_request *req;
	const int *fds;		/* stdin, stdout, stderr, report */
	uint64_t ignored;
};

static __attribute__((noreturn)) void child_main(void *arg)
{
	const struct direct_child *dc = arg;
	const exec_request *req = dc->req;
	const int *f = dc->fds;

	/* Signal state is inherited across execve: give the command the defaults. */
	signals_reset(dc->ignored);

	if (dup3(f[3], CHILD_ERRFD, O_CLOEXEC) < 0)
		_exit(125);
	if (dup2(f[0], 0) < 0 || dup2(f[1], 1) < 0 || dup2(f[2], 2) < 0)
		child_fail(CHILD_ERRFD, 125, errno, "set up stdio");

	/* A new session: no controlling terminal, so no TIOCSTI into the caller's tty, and
	 * a process group the engine can signal as a whole. */
	if (setsid() < 0)
		child_fail(CHILD_ERRFD, 125, errno, "setsid");
	/* Die with the engine (one-shot runs): a crashed agentd leaves no command behind. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail(CHILD_ERRFD, 125, errno, "PR_SET_PDEATHSIG");

	if (req->child_setup)
		req->child_setup(req->child_arg, CHILD_ERRFD);

	int r = fds_close_from(CHILD_ERRFD + 1);
	if (r < 0)
		child_fail(CHILD_ERRFD, 125, -r, "close inherited fds");

	if (req->cwd)
		child_enter_workdir(CHILD_ERRFD, req->cwd);

	trace_mark("command execve");
	char found[PATH_MAX];
	r = child_execvpe(req->argv, req->envp, found, sizeof(found));
	child_fail_exec(CHILD_ERRFD, r, req->argv[0], found);
}

int exec_run(const exec_request *req, agentd_exec_output *out, agentd_error *err)
{
	struct exec_job j;
	if (exec_job_open(&j, req, out, err) < 0)
		return -1;
	/* We become the reaper of whatever the command orphans (sweep.c). */
	if (!req->cg)
		prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	struct direct_child dc = {.req = req, .fds = j.child_fds, .ignored = ignored_signals()};
	struct spawn_opts so = {.cg = req->cg, .child_fn = child_main, .child_arg = &dc};
	struct spawned sp;
	if (spawn_process(&so, &sp, err) < 0) {
		agentd_error_prefix(err, "spawn %s", req->argv[0]);
		exec_job_close(&j);
		return -1;
	}
	sweep_keep(sp.pid);
	exec_job_started(&j, sp.pid, sp.pidfd, NULL);
	return exec_job_wait(&j, err);
}
