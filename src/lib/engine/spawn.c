/* spawn.c: start a process with clone3 — a pidfd from the start, new namespaces, straight
 * into a v2 cgroup — or fork + pidfd_open where clone3 is missing. A held child waits on a
 * pipe until the parent has done what must come first (uid maps) and releases it. */
#include "lib/engine/engine.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <linux/securebits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct clone_args_v2 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
		set_tid, set_tid_size, cgroup;
};

static __attribute__((noreturn)) void spawned_child(const struct spawn_opts *o, int holdfd,
						     bool into_cgroup)
{
	trace_mark("child running");
	if (holdfd >= 0) {
		/* Wait for the release: EOF without a byte = abort. */
		char c;
		ssize_t n;
		do
			n = read(holdfd, &c, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1)
			_exit(125);
		close(holdfd);
		trace_mark("child released");
	}
	/* On pure v2, clone3(CLONE_INTO_CGROUP) already placed us; v1 hierarchies (and a
	 * fork fallback) need an explicit join before anything else runs. */
	if (o->cg && !(into_cgroup && cgroup_clone_into_complete(o->cg))) {
		if (cgroup_attach_self(o->cg) < 0)
			_exit(125);
	}
	o->child_fn(o->child_arg);
	_exit(125);
}

/* The calling thread's effective uid/gid become the namespace owner's for the clone:
 * clone3(CLONE_NEWUSER) makes the new namespace's owner the caller's euid. Raw syscalls
 * change this thread only (glibc's wrappers would signal every thread of a daemon), and
 * SECBIT_NO_SETUID_FIXUP keeps its capabilities meanwhile (CLONE_INTO_CGROUP checks them).
 * The child's new namespace resets its securebits and gives it a full set there; until
 * its maps are written its kernel ids are the owner's and root's (real, saved). */
struct owner_switch {
	bool on;
	int bits;
	gid_t egid;
};

static int owner_enter(const struct spawn_opts *o, struct owner_switch *os)
{
	os->on = false;
	if (!o->ns_owner_uid || !(o->clone_flags & CLONE_NEWUSER) || geteuid() != 0)
		return 0; /* unprivileged: the namespace is the caller's anyway */
	os->bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	os->egid = getegid();
	if (os->bits < 0 ||
	    prctl(PR_SET_SECUREBITS, (unsigned long)os->bits | SECBIT_NO_SETUID_FIXUP, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_setresgid, -1, o->ns_owner_gid, -1) < 0 ||
	    syscall(SYS_setresuid, -1, o->ns_owner_uid, -1) < 0) {
		int e = errno;
		syscall(SYS_setresgid, -1, os->egid, -1);
		prctl(PR_SET_SECUREBITS, (unsigned long)os->bits, 0, 0, 0);
		return -e;
	}
	os->on = true;
	return 0;
}

static void owner_leave(struct owner_switch *os)
{
	if (!os->on)
		return;
	/* The saved uid is still 0: coming back cannot fail short of a kernel bug, and a
	 * thread left with another identity must not go on. */
	if (syscall(SYS_setresuid, -1, 0, -1) < 0 || syscall(SYS_setresgid, -1, os->egid, -1) < 0 ||
	    prctl(PR_SET_SECUREBITS, (unsigned long)os->bits, 0, 0, 0) < 0)
		abort();
	os->on = false;
}

/* clone3, or 0 with *pid -1 when this kernel has none (then the caller forks). */
static int try_clone3(const struct spawn_opts *o, int hold[2], int *pidfd, pid_t *pid,
		      agentd_error *err)
{
	static int clone3_works = -1; /* -1 unknown, 0 no, 1 yes; racy reads are benign */
	*pid = -1;
	if (clone3_works == 0 && !o->clone_flags)
		return 0;
	int cgfd = o->cg ? cgroup_dir_fd(o->cg) : -1;
	struct clone_args_v2 args;
	memset(&args, 0, sizeof(args));
	args.flags = CLONE_PIDFD | o->clone_flags;
	args.pidfd = (uint64_t)(uintptr_t)pidfd;
	args.exit_signal = SIGCHLD;
	if (cgfd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)cgfd;
	}
	struct owner_switch os;
	int e = owner_enter(o, &os);
	if (e < 0)
		return agentd_error_errno(err, -e, "become the user namespace's owner (uid %u)",
					  (unsigned)o->ns_owner_uid);
	long r = sys_clone3(&args, sizeof(args));
	if (r == 0) {
		if (hold[1] >= 0)
			close(hold[1]);
		spawned_child(o, hold[0], cgfd >= 0);
	}
	e = errno;
	owner_leave(&os);
	errno = e;
	if (r > 0) {
		clone3_works = 1;
		*pid = (pid_t)r;
		return 0;
	}
	if (o->clone_flags || (errno != ENOSYS && errno != E2BIG))
		return agentd_error_errno(err, errno, "clone3");
	clone3_works = 0;
	return 0;
}

static int fork_pidfd(const struct spawn_opts *o, int hold[2], int *pidfd, pid_t *pid,
		      agentd_error *err)
{
	*pid = fork();
	if (*pid == 0) {
		if (hold[1] >= 0)
			close(hold[1]);
		spawned_child(o, hold[0], false);
	}
	if (*pid < 0)
		return agentd_error_errno(err, errno, "fork");
	*pidfd = sys_pidfd_open(*pid, 0);
	if (*pidfd < 0) {
		agentd_error_errno(err, errno, "pidfd_open");
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
		*pid = -1;
		return -1;
	}
	return 0;
}

int spawn_process(const struct spawn_opts *o, struct spawned *sp, agentd_error *err)
{
	int hold[2] = {-1, -1};
	sp->pid = -1;
	sp->pidfd = -1;
	sp->hold_fd = -1;
	if (o->hold && pipe2(hold, O_CLOEXEC) < 0)
		return agentd_error_errno(err, errno, "pipe");
	int r = try_clone3(o, hold, &sp->pidfd, &sp->pid, err);
	if (r == 0 && sp->pid < 0)
		r = fork_pidfd(o, hold, &sp->pidfd, &sp->pid, err);
	if (hold[0] >= 0)
		close(hold[0]);
	if (r < 0) {
		if (hold[1] >= 0)
			close(hold[1]);
		return -1;
	}
	if (sp->pidfd < ENGINE_HIGH_FD) {
		int hi = fcntl(sp->pidfd, F_DUPFD_CLOEXEC, ENGINE_HIGH_FD);
		if (hi >= 0) {
			close(sp->pidfd);
			sp->pidfd = hi;
		}
	}
	sp->hold_fd = hold[1];
	return 0;
}

int spawn_release(struct spawned *sp, agentd_error *err)
{
	if (sp->hold_fd < 0)
		return 0;
	ssize_t n = write(sp->hold_fd, "g", 1);
	int e = errno;
	close(sp->hold_fd);
	sp->hold_fd = -1;
	if (n != 1)
		return agentd_error_errno(err, e, "release the child");
	return 0;
}

void spawn_abort(struct spawned *sp)
{
	if (sp->pid > 0)
		kill(sp->pid, SIGKILL);
	if (sp->hold_fd >= 0) {
		close(sp->hold_fd); /* EOF: a held child aborts */
		sp->hold_fd = -1;
	}
	if (sp->pidfd >= 0) {
		siginfo_t si;
		waitid((idtype_t)P_PIDFD, (id_t)sp->pidfd, &si, WEXITED);
		close(sp->pidfd);
		sp->pidfd = -1;
	}
	sp->pid = -1;
}
