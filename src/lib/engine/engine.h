/* engine.h: the one spawn path every backend uses (src/lib/engine/): clone3 into
 * namespaces and a cgroup, the child's report protocol, one epoll loop for stdin, output,
 * timeout and cancel, the verdict (exit, signal, limit hit), and the orphan sweep. Includes
 * jail/, host/ and common/. */
#ifndef AGENTD_ENGINE_H
#define AGENTD_ENGINE_H

#include "lib/host/host.h"
#include "lib/jail/jail.h"

#include <limits.h>
#include <signal.h>
#include <sys/resource.h>


/* ---------------------------------------------------------------- child.c
 * The report protocol: a child that cannot start its command writes one child_report on
 * its report pipe (CLOEXEC: a successful execve closes it, which says "started"); whoever
 * reaps the command (we, or a sandbox's init) writes a REPORT_EXIT with its status. */
enum { REPORT_FAIL = 0, REPORT_EXIT = 1, REPORT_START = 2 };
struct child_report {
	int kind;			/* REPORT_FAIL: setup/exec failed; REPORT_EXIT: status */
	int exit_code;			/* FAIL: what to report (125/126/127) */
	int errnum;
	int status;			/* EXIT: wait status of the command; START (a
					 * sandbox's background process): its pid there */
	struct rusage ru;		/* EXIT: the command's resource usage */
	bool bad_workdir;		/* FAIL: the caller's workdir cannot be entered */
	char what[256];			/* "landlock_restrict_self", "execve /bin/foo", ... */
};
/* child: report a setup failure on the error pipe and _exit(exit_code); the report alone
 * (no exit) for a process that goes on, the container's init. */
void child_report_fail(int errfd, int exit_code, int errnum, const char *what);
__attribute__((noreturn)) void child_fail(int errfd, int exit_code, int errnum, const char *what);
/* child: chdir to the command's workdir, or report that it cannot be entered (a 400 of the
 * caller's, not a failure of agentd's) and _exit. */
void child_enter_workdir(int errfd, const char *cwd);
/* The exit report of a command we reaped (a sandbox's init for its commands). */
void child_report_exit(int fd, int status, const struct rusage *ru);
/* A sandbox's init: its background process started, with this pid. */
void child_report_start(int fd, pid_t pid);
/* child: execve with a PATH search over envp's PATH, no malloc; returns -errno. found (of
 * found_size) gets the file that exists but failed with ENOENT (a missing interpreter). */
int child_execvpe(char *const argv[], char *const envp[], char *found, size_t found_size);
/* child: report a failed child_execvpe (naming a missing interpreter) and _exit. */
__attribute__((noreturn)) void child_fail_exec(int errfd, int neg_errno, const char *argv0,
					       const char *found);
/* child: exit code for a failed child_execvpe (127 not found, 126 otherwise). */
int exec_failure_code(int neg_errno);

/* Our fds a child inherits are kept at or above this (pipes, pidfds), so its dup2 onto
 * 0..3 never overwrites one it still needs. */
#define ENGINE_HIGH_FD 10

/* ---------------------------------------------------------------- spawn.c
 * A process started with clone3 (fork semantics, optional namespaces, straight into a
 * cgroup on v2). With hold, the child waits until spawn_release (after the parent wrote
 * its uid maps, say) and aborts on spawn_abort; child_fn must not return. */
struct spawn_opts {
	uint64_t clone_flags;		/* CLONE_NEW* */
	/* With CLONE_NEWUSER and nonzero: the new user namespace's owner, the effective ids
	 * the calling thread (alone) clones with. The namespace's per-user budgets (pending
	 * signals, message queues, inotify...) are then charged to this uid, not the
	 * caller's (root's). */
	uid_t ns_owner_uid;
	gid_t ns_owner_gid;
	struct cgroup *cg;		/* joined before child_fn runs; may be NULL */
	bool hold;			/* wait for spawn_release before child_fn */
	void (*child_fn)(void *arg);
	void *child_arg;
};
struct spawned {
	pid_t pid;
	int pidfd;			/* CLOEXEC, above the fds a child dup2s onto */
	int hold_fd;			/* with hold: the release pipe's write end, else -1 */
};
int spawn_process(const struct spawn_opts *o, struct spawned *sp, agentd_error *err);
int spawn_release(struct spawned *sp, agentd_error *err);	/* the child goes on */
/* Kill a held or running child, reap it, close its fds. */
void spawn_abort(struct spawned *sp);

/* ---------------------------------------------------------------- job.c, verdict.c
 * One command's run, in three steps a backend calls in order: open (pipes, counters),
 * started (the command runs: our child, or a sandbox init's), wait (one epoll loop feeds
 * stdin, captures output under the cap, enforces the timeout and cancel, kills what the
 * command left, then the verdict: exit, signal, usage, which limit). exec_run does the
 * three for a direct child. */
typedef struct exec_request {
	char *const *argv;
	char *const *envp;
	const char *cwd;		/* chdir target (in the child, after jail setup) */
	const uint8_t *stdin_data;
	size_t stdin_len;
	bool stdin_null;		/* stdin from /dev/null */
	uint64_t timeout_ms;		/* 0 = none */
	uint64_t max_output_bytes;
	/* The sandbox's CPU budget (max_cpu_time_ms, 0 = none), spent by all its commands
	 * together: while the command runs, the loop reads the cgroup's CPU accounting and
	 * kills the tree when the budget is gone. cpu_spent_ms is what the sandbox spent
	 * before, used only where the cgroup does not account CPU (then RLIMIT_CPU per
	 * process is the only bound). */
	uint64_t cpu_limit_ms;
	uint64_t cpu_spent_ms;
	struct cgroup *cg;		/* may be NULL: then process-group + subreaper cleanup */
	/* issue 13: oci-runtime. Without cg: the sandbox's cgroup read for its CPU budget
	 * only; the command is neither placed in it nor killed with it (an OCI runtime's
	 * container, whose exec the runtime places in unit). */
	struct cgroup *budget_cg;
	/* The command's own kill unit (a child of cg, cgroup_create_child), or NULL: its
	 * tree dies with it when it ends, times out or is cancelled, and its usage and limit
	 * events are its own, not the sandbox's. The caller destroys it after the wait. */
	struct cgroup *unit;
	/* The sandbox's writable scratch filesystem (a tmpfs with write_quota bytes for the
	 * sandbox beside agentd's own files), read with fstatfs for bytes_written and the
	 * write limit: scratch_fd returns a borrowed fd on it, or -1 while it is not known
	 * yet (a one-shot sandbox's arrives once its init is set up). NULL: no scratch. */
	int (*scratch_fd)(void *arg);
	void *scratch_arg;
	uint64_t write_quota;
	/* exec_run: jail steps in the child after setsid and dup of stdio, before execve.
	 * errfd is the error pipe (CLOEXEC) at fd 3; must call child_fail on error. */
	void (*child_setup)(void *arg, int errfd);
	void *child_arg;
	/* A command that is not our child (a sandbox init's): how to kill its tree on a
	 * timeout or cancel. Its end is EOF on the report pipe, after a REPORT_EXIT. */
	void (*kill)(void *arg);
	void *kill_arg;
	agentd_output_cb on_output;
	void *userdata;
	int cancel_fd;			/* > 0: readable = kill the tree and stop */
} exec_request;

/* capture.c: one stream's output under max_output_bytes: the first half kept in the
 * output's buffer, the bytes after it in a ring of the second half's size; finish joins
 * them, with "[... N bytes omitted ...]" between when the stream was longer than max. */
struct capture {
	uint64_t max, seen;
	uint64_t head_cap, tail_cap;
	uint8_t *ring;
	size_t ring_pos;
};
void capture_init(struct capture *c, uint64_t max);
/* Keep what the cap allows of buf; *live is how much of buf a live reader gets now. */
void capture_add(struct capture *c, uint8_t **out, size_t *out_len, const uint8_t *buf,
		 size_t n, size_t *live);
/* The final output (head, marker, tail cut on UTF-8 boundaries); live readers get the tail
 * they have not seen, after a marker. Frees the ring. */
void capture_finish(struct capture *c, uint8_t **out, size_t *out_len, agentd_stream s,
		    agentd_output_cb on_output, void *ud);
void capture_free(struct capture *c);

struct exec_reports {
	bool have_fail, have_exit;
	struct child_report fail, exit;
	size_t partial;
	struct child_report buf;
};

/* What the loop watches while the command runs (watch.c). */
struct exec_watch {
	bool cpu;			/* a budget, and a cgroup that accounts CPU */
	bool cpu_spent;			/* the budget ran out: the loop killed the tree */
	uint64_t next_ms;		/* monotonic time of the next look, 0 = never */
	bool scratch_known;		/* scratch0 was read (else the scratch is new: 0) */
	bool scratch_room;		/* seen with room during this command */
	bool scratch_full;		/* then seen without a free block or inode */
	uint64_t scratch0;		/* the sandbox's bytes on its scratch before */
};

struct exec_job {
	const exec_request *req;
	agentd_exec_output *out;
	uint64_t start_ms;
	int in[2], stdout_p[2], stderr_p[2], rep[2];
	int devnull;
	/* The command's stdin, stdout, stderr and report write end, from open to started. */
	int child_fds[4];
	pid_t pid;			/* our child, or -1 */
	int pidfd;
	struct cgroup *cg;		/* the command's cgroup, read for usage and limits */
	struct cgroup *unit;		/* req->unit: read instead of cg, fresh */
	struct cgroup_events ev0;	/* its counters before the command */
	agentd_usage cu0;
	struct capture cap[2];		/* stdout, stderr */
	bool loop_failed;
	struct exec_reports rs;
	struct exec_watch w;
};
/* Pipes and the cgroup's counters before the command; 0 or -1 + err. */
int exec_job_open(struct exec_job *j, const exec_request *req, agentd_exec_output *out,
		  agentd_error *err);
/* The command runs: pid/pidfd when it is our child (else -1), cg its cgroup when the
 * caller made it after open (a fresh one: counters from zero), else NULL for req->cg. */
void exec_job_started(struct exec_job *j, pid_t pid, int pidfd, struct cgroup *cg);
/* Run the loop and the verdict, close everything. 0 when the command ran (whatever its
 * exit code, 126/127 included), -1 when agentd failed (err set, exit_code 125). */
int exec_job_wait(struct exec_job *j, agentd_error *err);
/* A note on the command's stderr (counted in the output cap), e.g. why it did not start. */
void exec_job_stderr_note(struct exec_job *j, const char *msg, size_t n);
/* A job that never started (the caller's start failed): close it, keep err. */
void exec_job_close(struct exec_job *j);
/* verdict.c: out from the reaped status, usage, reports and cgroup counters. */
int exec_verdict(struct exec_job *j, const siginfo_t *si, const struct rusage *ru,
		 bool timed_out, agentd_error *err);

/* watch.c: the sandbox's CPU budget and scratch, looked at by the loop. */
/* The cgroup whose CPU accounting is the sandbox's budget: the command's, else
 * req->budget_cg (issue 13: oci-runtime). */
static inline struct cgroup *exec_budget_cg(const struct exec_job *j)
{
	return j->cg ? j->cg : j->req->budget_cg;
}
/* What remains of req->cpu_limit_ms after what the sandbox spent (its cgroup's accounting,
 * else req->cpu_spent_ms); at least 1 ms: a spent budget is refused before an exec starts
 * (agentd_sandbox_exec). For RLIMIT_CPU, the per-process backstop. */
uint64_t exec_cpu_remaining_ms(const exec_request *req);
/* At the start; fresh: the sandbox was made for this command (its scratch starts empty). */
void watch_start(struct exec_job *j, bool fresh);
/* ms until the next look (for epoll_wait), -1 = none. */
int watch_wait_ms(const struct exec_job *j);
/* Look if it is time: true when the CPU budget is spent and the tree must be killed. */
bool watch_due(struct exec_job *j);
/* After the command: the scratch's growth into out->usage.bytes_written, the full flag. */
void watch_finish(struct exec_job *j);

/* exec.c: spawn req's command directly (clone3, jail steps in the child) and run it. */
int exec_run(const exec_request *req, agentd_exec_output *out, agentd_error *err);

/* ---------------------------------------------------------------- sweep.c
 * Without a cgroup, what a command leaves behind is found as orphans reparented to us (a
 * child subreaper): the sweep kills them, except the main processes of running execs and
 * the janitor. */
void sweep_keep(pid_t pid);
void sweep_forget(pid_t pid);
int sweep_orphans(void);		/* kills and reaps; returns how many */

#endif
