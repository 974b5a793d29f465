/* process.c: the public API of background processes (agentd_sandbox_spawn and
 * agentd_process_*): the arguments checked once here, then the backend's ops. */
#include "lib/core/core.h"

int agentd_sandbox_spawn(agentd_sandbox *sb, const agentd_command *cmd,
			 const agentd_process_opts *opts, agentd_process **out,
			 agentd_error *err)
{
	static const agentd_process_opts no_opts;
	*out = NULL;
	if (agentd_sandbox_check_command(sb, cmd, err) < 0)
		return agentd_error_prefix(err, "spawn");
	/* A background process has no request to feed or to time: its stdin is a pipe the
	 * caller writes (stdin_pipe) and it runs until it ends or is killed. */
	if (cmd->stdin_data || cmd->stdin_len)
		return agentd_error_set(err, EINVAL,
					"spawn: stdin_data is for exec; a process's stdin is a "
					"pipe (stdin_pipe) written through agentd_process_stdin_fd");
	if (cmd->timeout_ms)
		return agentd_error_set(err, EINVAL,
					"spawn: timeout_ms is for exec; a process runs until it "
					"ends or is killed");
	if (!opts)
		opts = &no_opts;
	if (!sb->ops->spawn)
		return agentd_error_set(err, ENOTSUP,
					"spawn: backend %s has no background processes (agentd "
					"probe says why)",
					sb->backend->ops->name);
	if (sb->ops->spawn(sb, cmd, opts, out, err) < 0)
		return agentd_error_prefix(err, "spawn %s", cmd->argv[0]);
	return 0;
}

/* What an orphaned handle answers to everything but its status and free. */
static int orphaned(agentd_error *err)
{
	return agentd_error_set(err, ESRCH, "the process ended with its sandbox (destroyed)");
}

/* Off sb's list (with its lock held). */
static void process_unlink(agentd_process *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		p->sb->procs = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->next = p->prev = NULL;
}

void process_orphan_all(agentd_sandbox *sb)
{
	pthread_mutex_lock(&sb->procs_lock);
	while (sb->procs) {
		agentd_process *p = sb->procs;
		process_unlink(p);
		p->ops->free(p);
		p->orphaned = true;
		p->orphaned_at_ms = now_ms_realtime();
		p->priv = NULL;
		p->sb = NULL;
		for (int i = 0; i < 4; i++)
			p->fds[i] = -1;
	}
	pthread_mutex_unlock(&sb->procs_lock);
}

int64_t agentd_process_pid(const agentd_process *p)
{
	return p->pid;
}

int agentd_process_stdin_fd(const agentd_process *p)
{
	return p->fds[0];
}

int agentd_process_stdout_fd(const agentd_process *p)
{
	return p->fds[1];
}

int agentd_process_stderr_fd(const agentd_process *p)
{
	return p->fds[2];
}

int agentd_process_wait_fd(const agentd_process *p)
{
	return p->fds[3];
}

void agentd_process_close_stdin(agentd_process *p)
{
	if (p->orphaned || p->fds[0] < 0)
		return;
	p->ops->close_stdin(p);
	/* With a tty the master stays (it is stdout too): only the EOF character went. */
	if (!p->tty)
		p->fds[0] = -1;
}

int agentd_process_get_status(agentd_process *p, agentd_process_status *st, agentd_error *err)
{
	memset(st, 0, sizeof(*st));
	if (p->orphaned) { /* killed by the destroy */
		st->term_signal = SIGKILL;
		st->exit_code = 128 + SIGKILL;
		st->ended_at_ms = p->orphaned_at_ms;
		return 0;
	}
	return p->ops->get_status(p, st, err);
}

int agentd_process_signal(agentd_process *p, int sig, agentd_error *err)
{
	if (sig < 1 || sig > 64)
		return agentd_error_set(err, EINVAL, "signal %d: expected 1..64", sig);
	return p->orphaned ? orphaned(err) : p->ops->signal(p, sig, err);
}

int agentd_process_kill(agentd_process *p, agentd_error *err)
{
	return p->orphaned ? 0 : p->ops->kill(p, err); /* idempotent: its tree is gone */
}

int agentd_process_resize(agentd_process *p, unsigned rows, unsigned cols, agentd_error *err)
{
	if (!p->tty)
		return agentd_error_set(err, EINVAL, "resize: the process has no terminal (tty)");
	if (rows < 1 || rows > USHRT_MAX || cols < 1 || cols > USHRT_MAX)
		return agentd_error_set(err, EINVAL, "resize: %ux%u: expected rows and cols in "
					"1..65535", rows, cols);
	return p->orphaned ? orphaned(err) : p->ops->resize(p, rows, cols, err);
}

int agentd_process_usage(agentd_process *p, agentd_usage *u, agentd_error *err)
{
	memset(u, 0, sizeof(*u));
	return p->orphaned ? orphaned(err) : p->ops->usage(p, u, err);
}

void agentd_process_free(agentd_process *p)
{
	if (!p)
		return;
	if (!p->orphaned) {
		agentd_sandbox *sb = p->sb;
		pthread_mutex_lock(&sb->procs_lock);
		process_unlink(p);
		pthread_mutex_unlock(&sb->procs_lock);
		p->ops->free(p);
	}
	free(p);
}
