/* engine.h: the one spawn path every backend uses (src/lib/engine/): clone3 into
 * namespaces and a cgroup, the child's report protocol, one epoll loop for stdin, output,
 * timeout and cancel, the verdict (exit, signal, limit hit), and the orphan sweep. Includes
 * jail/, host/ and common/. */
#ifndef AGENTD_ENGINE_H
#define AGENTD_ENGINE_H

#include "lib/host/host.h"
#include "lib/jail/jail.h"

#include <sys/resource.h>


/* ---------------------------------------------------------------- exec.c
 * The one spawn path every backend uses. */
enum { REPORT_FAIL = 0, REPORT_EXIT = 1 };
struct child_report {
	int kind;			/* REPORT_FAIL: setup/exec failed; REPORT_EXIT: status */
	int exit_code;			/* FAIL: what to report (125/126/127) */
	int errnum;
	int status;			/* EXIT: wait status of the command */
	struct rusage ru;		/* EXIT: the command's resource usage */
	char what[256];			/* "landlock_restrict_self", "execve /bin/foo", ... */
};
/* child: report a setup failure on the error pipe and _exit(exit_code); the report alone
 * (no exit) for a process that goes on, the container's init. */
void child_report_fail(int errfd, int exit_code, int errnum, const char *what);
__attribute__((noreturn)) void child_fail(int errfd, int exit_code, int errnum, const char *what);
/* child: execve with a PATH search over envp's PATH, no malloc; returns -errno. */
int child_execvpe(char *const argv[], char *const envp[]);
/* child: exit code for a failed child_execvpe (127 not found, 126 otherwise). */
int exec_failure_code(int neg_errno);
/* parent: the signals this process ignores (a bit per signal, bit 0 = signal 1). */
uint64_t ignored_signals(void);
/* child: empty the signal mask and reset the ignored signals to their defaults (handlers
 * are reset by execve), which is what a command expects. */
void child_reset_signals(uint64_t ignored);

/* A process started with clone3 (fork semantics, optional namespaces, straight into a
 * cgroup). With after_clone set, the child first waits until the parent hook (e.g. uid
 * maps) has run; child_fn must not return. */
struct spawn_opts {
	uint64_t clone_flags;		/* CLONE_NEW* */
	struct cgroup *cg;		/* joined before child_fn runs; may be NULL */
	int (*after_clone)(void *arg, pid_t pid, agentd_error *err);
	void *after_arg;
	void (*child_fn)(void *arg);
	void *child_arg;
};
pid_t spawn_process(const struct spawn_opts *o, int *pidfd, agentd_error *err);

/* How a command is started when it is not a direct child (e.g. forked by a sandbox's
 * init). Exit is then signalled by EOF on the report pipe, after a REPORT_EXIT. */
struct exec_launcher {
	/* Start with these fds (in, out, err, report write end); 0 or -1 + err. */
	int (*start)(void *arg, const int fds[4], uint64_t *handle, agentd_error *err);
	/* Kill the command's tree (timeout, cancel). */
	void (*kill)(void *arg, uint64_t handle);
};

typedef struct exec_request {
	char *const *argv;
	char *const *envp;
	const char *cwd;		/* chdir target (in the child, after jail setup) */
	const uint8_t *stdin_data;
	size_t stdin_len;
	bool stdin_null;		/* stdin from /dev/null */
	uint64_t timeout_ms;		/* 0 = none */
	uint64_t max_output_bytes;
	uint64_t cpu_limit_ms;		/* for limit attribution (SIGXCPU/SIGKILL) */
	struct cgroup *cg;		/* may be NULL: then process-group + subreaper cleanup */
	/* Or: the launcher makes the cgroup during start() (a fresh one, counters at zero)
	 * and stores it here. */
	struct cgroup *const *cg_late;
	/* Jail steps: run in the child after setsid and dup of stdio, before execve.
	 * errfd is the error pipe (CLOEXEC) at fd 3; must call child_fail on error. */
	void (*child_setup)(void *arg, int errfd);
	void *child_arg;
	const struct exec_launcher *launcher;	/* NULL = spawn directly */
	void *launcher_arg;
	agentd_output_cb on_output;
	void *userdata;
	int cancel_fd;			/* > 0: readable = kill the tree and stop */
} exec_request;
/* Spawn, feed stdin, capture stdout/stderr with one epoll loop, enforce timeout and output
 * cap, kill everything the command started once it ends, fill out. Returns 0 when the
 * command ran (whatever its exit code, 126/127 included) and -1 when agentd itself failed
 * (err set, out->exit_code = 125). */
int exec_run(const exec_request *req, agentd_exec_output *out, agentd_error *err);

#endif
