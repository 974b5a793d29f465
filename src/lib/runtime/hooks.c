/* hooks.c: the config's prestart and createRuntime hooks, run by create on the host as the
 * runtime (root) once the container's namespaces exist and its root is built, before the
 * state is saved: docker's libnetwork-setkey is one. Only where the operator allows "hooks"
 * (the floor refuses them otherwise: they run as root on the host). Each gets the state
 * JSON on stdin, its args and env (nothing of ours), /dev/null as stdout and stderr (the
 * runtime's are the container's stdio), and its timeout; a hook that fails, or outlives
 * its timeout (killed), fails the create. */
#include "lib/runtime/verbs.h"

#include "common/kernel.h"

#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const kind_names[] = {"prestart", "createRuntime"};

static void hook_child(const struct ocirt_hook *h, int in)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(in, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
		_exit(126);
	(void)fds_close_from(3);
	char *def[] = {h->path, NULL}, *noenv[] = {NULL};
	execve(h->path, h->args.n ? h->args.v : def, h->env.n ? h->env.v : noenv);
	_exit(127);
}

/* Wait for the hook, killed after its timeout; its wait status, or -1 when killed so. */
static int hook_wait(pid_t pid, int64_t timeout)
{
	int pidfd = sys_pidfd_open(pid, 0), status = 0;
	if (pidfd >= 0) {
		struct pollfd p = {.fd = pidfd, .events = POLLIN};
		int n;
		while ((n = poll(&p, 1, timeout ? (int)(timeout * 1000) : -1)) < 0 && errno == EINTR)
			;
		close(pidfd);
		if (n == 0) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			return -1;
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

static int run_one(const struct ocirt_hook *h, const char *state, const char *what)
{
	int in[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return ocirt_fail("%s: pipe: %s", what, strerror(errno)), -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(in[0]);
		close(in[1]);
		return ocirt_fail("%s: fork: %s", what, strerror(errno)), -1;
	}
	if (pid == 0)
		hook_child(h, in[0]);
	close(in[0]);
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_set, &old);	/* a hook that does not read stdin */
	(void)write_all(in[1], state, strlen(state));
	close(in[1]);
	sigprocmask(SIG_SETMASK, &old, NULL);
	int st = hook_wait(pid, h->timeout);
	if (st < 0)
		return ocirt_fail("%s %s: killed after its timeout of %lld s", what, h->path,
				  (long long)h->timeout), -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		return ocirt_fail("%s %s: %s %d", what, h->path,
				  WIFEXITED(st) ? "exit status" : "killed by signal",
				  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st)), -1;
	return 0;
}

int ocirt_run_create_hooks(const struct ocirt_config *c, const struct ocirt_state *st)
{
	const enum ocirt_hook_kind kinds[] = {OCIRT_HOOK_PRESTART, OCIRT_HOOK_CREATE_RUNTIME};
	if (!c->n_hooks[OCIRT_HOOK_PRESTART] && !c->n_hooks[OCIRT_HOOK_CREATE_RUNTIME])
		return 0;
	json_t *o = ocirt_state_json(st);
	json_object_set_new(o, "status", json_string("creating"));
	char *state = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!state)
		return ocirt_fail("hooks: the state JSON: out of memory"), -1;
	int r = 0;
	for (size_t k = 0; k < ARRAY_SIZE(kinds) && r == 0; k++)
		for (size_t i = 0; i < c->n_hooks[kinds[k]] && r == 0; i++) {
			char what[64];
			snprintf(what, sizeof(what), "hooks.%s[%zu]", kind_names[k], i);
			r = run_one(&c->hooks[kinds[k]][i], state, what);
		}
	free(state);
	return r;
}
