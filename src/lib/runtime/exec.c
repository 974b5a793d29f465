/* exec.c: another process in a running (or created) container: the namespaces of its init joined through
 * a pidfd (checked against the init's start time), its cgroup, the confinement of
 * process.json clamped by the floor, then execve. The process is the caller's child (a
 * CLONE_PARENT from the joining helper); --detach leaves it to the caller. */
#include "lib/runtime/verbs.h"

#include "common/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct exec_opts {
	const char *process, *pid_file, *console_socket, *cwd, *user, *preserve_fds;
	bool detach, tty, no_new_privs, ignored;
	const char *ignored_val;
	agentd_strv env, caps, gids;
};

struct exec_report {
	pid_t pid;		/* the helper's report: the process's pid (host) */
	int err;		/* the process's report: why it could not exec */
	char what[400];
};

/* The namespaces where the init's differ from ours (setns refuses re-entering our own
 * user namespace). */
static int ns_differ(pid_t pid)
{
	static const struct {
		const char *name;
		int flag;
	} ns[] = {{"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS},	{"pid", CLONE_NEWPID},
		  {"net", CLONE_NEWNET},   {"ipc", CLONE_NEWIPC},	{"uts", CLONE_NEWUTS},
		  {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME}};
	int flags = 0;
	for (size_t i = 0; i < ARRAY_SIZE(ns); i++) {
		char a[64], b[64];
		struct stat sa, sb;
		snprintf(a, sizeof(a), "/proc/self/ns/%s", ns[i].name);
		snprintf(b, sizeof(b), "/proc/%d/ns/%s", (int)pid, ns[i].name);
		if (stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_ino != sb.st_ino)
			flags |= ns[i].flag;
	}
	return flags;
}

static void send_report(int sync, pid_t pid, int err, const char *what)
{
	struct exec_report r = {.pid = pid, .err = err};
	snprintf(r.what, sizeof(r.what), "%s", what);
	if (write(sync, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(1);
}

/* The process itself: in the container's namespaces, joined to its cgroup by the verb. */
static void process_main(const struct ocirt_process *p, const struct ocirt_jail *j, int sync,
			 int console, int preserve_fds)
{
	char what[400] = "";
	char go;
	int r;
	if (read(sync, &go, 1) != 1)
		_exit(1);
	if (p->cwd && chdir(p->cwd) < 0) {
		send_report(sync, 0, errno, "chdir to process.cwd");
		_exit(1);
	}
	if (p->terminal && (r = ocirt_console_setup(console, p->console_rows, p->console_cols,
						     what, sizeof(what))) < 0) {
		send_report(sync, 0, -r, what);
		_exit(1);
	}
	if ((r = ocirt_jail_apply_process(j, what, sizeof(what))) < 0) {
		send_report(sync, 0, -r, what);
		_exit(1);
	}
	(void)fds_close_from(3 + preserve_fds);
	/* sync is CLOEXEC: its EOF tells the verb the exec happened (fds_close_from spares
	 * nothing above the preserved ones, so it is re-opened here only if kept) */
	environ = p->env;
	execvp(p->args[0], p->args);
	_exit(errno == ENOENT ? 127 : 126);
}

/* The helper: joins the init's namespaces, clones the process as a child of the verb, says
 * its pid, exits. */
static void helper_main(int pidfd, int nsflags, const struct ocirt_process *p,
			const struct ocirt_jail *j, int sync, int console, int preserve_fds)
{
	if (nsflags && setns(pidfd, nsflags) < 0) {
		send_report(sync, 0, errno, "join the container's namespaces");
		_exit(1);
	}
	struct clone_args ca = {.flags = CLONE_PARENT};
	pid_t pid = (pid_t)sys_clone3(&ca, sizeof(ca));
	if (pid < 0) {
		send_report(sync, 0, errno, "clone the process");
		_exit(1);
	}
	if (pid == 0)
		process_main(p, j, sync, console, preserve_fds);
	send_report(sync, pid, 0, "");
	_exit(0);
}

static char **env_merge(char **base, const agentd_strv *add)
{
	size_t n = 0;
	while (base && base[n])
		n++;
	char **env = xcalloc(n + add->n + 1, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		env[k++] = base[i];
	for (size_t i = 0; i < add->n; i++) {
		const char *eq = strchr(add->v[i], '=');
		size_t klen = eq ? (size_t)(eq - add->v[i]) : strlen(add->v[i]);
		size_t m = 0;
		while (m < k && !(strncmp(env[m], add->v[i], klen) == 0 && env[m][klen] == '='))
			m++;
		env[m] = add->v[i];
		if (m == k)
			k++;
	}
	return env;
}

/* The process of `exec ARGS...`: the config's process with the command line's changes. */
static int process_from_flags(const struct ocirt_config *c, struct exec_opts *o, char **args,
			      struct ocirt_process *p, char ***env_owned)
{
	*p = c->process;
	p->args = args;
	p->terminal = o->tty;
	p->console_rows = p->console_cols = 0;
	*env_owned = env_merge(c->process.env, &o->env);
	p->env = *env_owned;
	if (o->cwd)
		p->cwd = (char *)o->cwd;
	if (o->no_new_privs)
		p->no_new_privileges = true;
	if (o->user) {
		char *end;
		unsigned long uid = strtoul(o->user, &end, 10);
		if (end == o->user || (*end && *end != ':'))
			return ocirt_fail("--user %s: uid[:gid] numbers expected", o->user), -1;
		p->uid = (uid_t)uid;
		if (*end == ':')
			p->gid = (gid_t)strtoul(end + 1, NULL, 10);
	}
	if (o->caps.n)
		return ocirt_fail("--cap: extra capabilities for exec are refused by agentd's "
				  "floor (set them in the config's process, which the floor "
				  "checks)"), -1;
	return 0;
}

static int wait_process(pid_t pid)
{
	/* the caller's signals go to the process, as runc forwards them */
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		siginfo_t si;
		struct timespec ts = {0, 200 * 1000000L};
		int sig = sigtimedwait(&all, &si, &ts);
		if (sig > 0 && sig != SIGCHLD)
			(void)kill(pid, sig);
		int status;
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (w < 0 && errno != EINTR)
			return ocirt_fail("wait for the process: %s", strerror(errno));
	}
}

static int parse_exec(int argc, char **argv, struct exec_opts *o, int *first)
{
	const struct ocirt_opt opts[] = {
		{"process", 'p', true, &o->process, NULL, NULL},
		{"detach", 'd', false, NULL, &o->detach, NULL},
		{"pid-file", 0, true, &o->pid_file, NULL, NULL},
		{"console-socket", 0, true, &o->console_socket, NULL, NULL},
		{"tty", 't', false, NULL, &o->tty, NULL},
		{"cwd", 0, true, &o->cwd, NULL, NULL},
		{"env", 'e', true, NULL, NULL, &o->env},
		{"user", 'u', true, &o->user, NULL, NULL},
		{"additional-gids", 'g', true, NULL, NULL, &o->gids},
		{"cap", 'c', true, NULL, NULL, &o->caps},
		{"no-new-privs", 0, false, NULL, &o->no_new_privs, NULL},
		{"preserve-fds", 0, true, &o->preserve_fds, NULL, NULL},
		{"process-label", 0, true, &o->ignored_val, NULL, NULL},
		{"apparmor", 0, true, &o->ignored_val, NULL, NULL},
		{"cgroup", 0, true, &o->ignored_val, NULL, NULL},
		{"ignore-paused", 0, false, NULL, &o->ignored, NULL},
		{NULL, 0, false, NULL, NULL, NULL},
	};
	if (ocirt_parse_opts(argc, argv, opts, first) < 0)
		return -1;
	if (*first >= argc)
		return ocirt_fail("exec: a container id expected"), -1;
	if (!o->process && *first + 1 >= argc)
		return ocirt_fail("exec: --process FILE or the command's args expected"), -1;
	return 0;
}

static int run_exec(struct ocirt_state *st, struct ocirt_config *c, struct ocirt_process *p,
		    const struct exec_opts *o)
{
	struct ocirt_jail j = {0};
	agentd_error err = {0};
	if (ocirt_jail_prepare_exec(c, p, &j, &err) < 0)
		return ocirt_fail("%s", err.msg);
	ocirt_warn_ambient(p);
	int rc = 1, pidfd = -1, console = -1, sv[2] = {-1, -1};
	struct ocirt_cgroup cg = {0};
	struct exec_report rep = {0};
	pid_t helper = -1;
	if ((pidfd = ocirt_init_pidfd(st)) < 0) {
		ocirt_fail("container %s is not running", st->id);
		goto out;
	}
	if (ocirt_cgroup_open(st->cgroup, false, &cg) < 0) {
		ocirt_fail("container %s: its cgroup %s is gone", st->id, st->cgroup);
		goto out;
	}
	/* a created container paused (its status says created): the process would freeze in
	 * it and the attached exec wait forever; runc refuses a paused one */
	if (ocirt_cgroup_frozen(&cg)) {
		ocirt_fail("cannot exec in a paused container %s", st->id);
		goto out;
	}
	if (p->terminal && !o->console_socket) {
		ocirt_fail("exec -t / process.terminal: --console-socket is required");
		goto out;
	}
	if (p->terminal && (console = ocirt_console_connect(o->console_socket)) < 0)
		goto out;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		ocirt_fail("socketpair: %s", strerror(errno));
		goto out;
	}
	int nsflags = ns_differ(st->pid), oom = ocirt_jail_set_oom_score_adj(&j);
	if (oom < 0) {
		ocirt_fail("process.oomScoreAdj: %s", strerror(-oom));
		goto out;
	}
	helper = fork();
	if (helper < 0) {
		ocirt_fail("fork: %s", strerror(errno));
		goto out;
	}
	if (helper == 0) {
		close(sv[0]);
		helper_main(pidfd, nsflags, p, &j, sv[1], console,
			    o->preserve_fds ? atoi(o->preserve_fds) : 0);
	}
	close(sv[1]);
	sv[1] = -1;
	int status;
	while (waitpid(helper, &status, 0) < 0 && errno == EINTR)
		;
	if (read(sv[0], &rep, sizeof(rep)) != (ssize_t)sizeof(rep) || rep.err) {
		rep.what[sizeof(rep.what) - 1] = 0;
		ocirt_fail("exec in %s: %s: %s", st->id, rep.err ? rep.what : "helper failed",
			   strerror(rep.err ? rep.err : EIO));
		goto out;
	}
	if (ocirt_cgroup_attach(&cg, rep.pid) < 0 || write(sv[0], "g", 1) != 1) {
		(void)kill(rep.pid, SIGKILL);
		goto out;
	}
	struct exec_report fail;
	if (read(sv[0], &fail, sizeof(fail)) == (ssize_t)sizeof(fail)) {
		fail.what[sizeof(fail.what) - 1] = 0;
		ocirt_fail("exec in %s: %s: %s", st->id, fail.what, strerror(fail.err));
		(void)waitpid(rep.pid, &status, 0);
		goto out;
	}
	if (o->pid_file) {
		int r = ocirt_write_pid_file(o->pid_file, rep.pid);
		if (r < 0) {
			ocirt_fail("--pid-file %s: %s", o->pid_file, strerror(-r));
			(void)kill(rep.pid, SIGKILL);
			goto out;
		}
	}
	rc = o->detach ? 0 : wait_process(rep.pid);
out:
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
	if (pidfd >= 0)
		close(pidfd);
	if (console >= 0)
		close(console);
	ocirt_cgroup_free(&cg);
	ocirt_jail_free(&j);
	return rc;
}

int ocirt_cmd_exec(int argc, char **argv)
{
	struct exec_opts o = {0};
	int first;
	if (parse_exec(argc, argv, &o, &first) < 0)
		return 1;
	struct ocirt_state st;
	struct ocirt_config *c = NULL;
	struct ocirt_process p = {0};
	char **env_owned = NULL;
	bool p_loaded = false;
	int rc = 1;
	if (ocirt_state_open(argv[first], false, &st) < 0)
		goto out;
	enum ocirt_status s = ocirt_status(&st);
	/* a created one too, as runc allows (the runtime-tools validation execs into one): its
	 * pid 1 is still the runtime's init, waiting on the exec fifo, but the process joins
	 * the same namespaces and cgroup and applies the same confinement as into a running
	 * one; it is cloned from here, not from the init, so it inherits none of the init's fds
	 * (the fifo, its fd dir of the host's /proc), and the init is not dumpable (create.c),
	 * so no process of the container reaches them through /proc/1 */
	if (s != OCIRT_RUNNING && s != OCIRT_CREATED) {
		ocirt_fail("cannot exec in a %s container", ocirt_status_name(s));
		goto out;
	}
	if (ocirt_load_checked(st.bundle, &c) < 0)
		goto out;
	if (o.process) {
		agentd_error err = {0};
		if (ocirt_process_load(o.process, &p, &err) < 0) {
			ocirt_fail("--process %s: %s", o.process, err.msg);
			goto out;
		}
		p_loaded = true;
		if (c->egress) {	/* issue 16: rt-egress. The proxy, as for the init */
			ocirt_proxy_env(&p.env);
		}
		ocirt_floor_oom_warned(&p);	/* issue 16: rt-gaps: as the config's */
	} else if (process_from_flags(c, &o, argv + first + 1, &p, &env_owned) < 0) {
		goto out;
	}
	rc = run_exec(&st, c, &p, &o);
out:
	if (p_loaded)
		ocirt_process_clear(&p);
	free(env_owned);
	ocirt_config_free(c);
	ocirt_state_close(&st);
	strv_free(&o.env);
	strv_free(&o.caps);
	strv_free(&o.gids);
	return rc;
}
