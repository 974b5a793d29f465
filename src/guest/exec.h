/* exec.h: an exec's request as parsed (exec.c) and the child's side between clone3 and
 * execve (child.c), which reports a failed step through a pipe as a struct child_err. */
#ifndef AGENTD_GUEST_EXEC_H
#define AGENTD_GUEST_EXEC_H

#include "guest/guest.h"

struct exec_req {
	char **argv, **envp; /* into strs */
	char *strs;
	char cwd[GP_MAX_STRING + 1];
	uint64_t uid, gid, stdin_frames, timeout_ms, mem, pids, cpu_ms, out_max, seccomp, net_none,
	    rows, cols;
	uint64_t nofile, fsize; /* NOT_GIVEN: left as they are */
};

struct child_err {
	int err;
	char step[64];
};

/* In the child: stdio from fds (slave: the pty, or -1), the root, namespaces, limits,
 * identity, seccomp, execve; a failure goes to errfd and the child exits 127. */
void exec_child(const struct exec_req *q, int fds[3], int slave, int errfd)
    __attribute__((noreturn));

#endif
