/* janitor.c: what cleans up after a sandbox's owner is SIGKILLed. A small process, forked
 * once per owner and outside every sandbox, learns each sandbox's cgroup and directory over
 * a pipe; when the pipe reaches EOF (the owner exited or died) it destroys what is left. */
#include "lib/host/host.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define JANITOR_MAX 4096
#define LINE_MAX_LEN 1024

static pthread_mutex_t jlock = PTHREAD_MUTEX_INITIALIZER;
static int jfd = -1;		/* write end, owner side */
static bool jfailed;
static pid_t jpid;		/* the janitor, our child until we exit */

/* Entries: "C<name>" a cgroup, "D<path>" a directory, "I<uid>:<sandbox id>" a host id
 * lease; '+' adds, '-' forgets. Leases go last: each only once its sandbox's cgroup is. */
static void janitor_cleanup(char **items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!items[i])
			continue;
		if (items[i][0] == 'C') {
			struct cgroup *cg = cgroup_open(items[i] + 1, NULL);
			cgroup_destroy(cg);
		} else if (items[i][0] == 'D') {
			rm_rf(items[i] + 1);
		}
	}
	/* A cgroup still emptying (its processes take a moment to die on a loaded host)
	 * holds its lease back: retried for a while, the cgroup's removal with it. */
	for (int round = 0; round < 50; round++) {
		bool pending = false;
		for (size_t i = 0; i < n; i++) {
			char *id;
			if (!items[i] || items[i][0] != 'I' || !(id = strchr(items[i], ':')))
				continue;
			if (host_ids_reap((uid_t)strtoul(items[i] + 1, NULL, 10), id + 1) == 0) {
				free(items[i]);
				items[i] = NULL;
				continue;
			}
			cgroup_destroy(cgroup_open(id + 1, NULL));
			pending = true;
		}
		if (!pending)
			break;
		usleep(200 * 1000);
	}
}

static __attribute__((noreturn)) void janitor_main(int rfd)
{
	/* Outlive the owner: own session (no terminal signals), no parent-death signal. */
	setsid();
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_NAME, "agentd-janitor", 0, 0, 0);
	/* Our copy of the owner's argv would name its sandboxed command: a process that only
	 * cleans up must not look like one of its survivors. */
	proc_hide_cmdline("agentd-janitor");
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
	}
	if (rfd != 3) {
		dup2(rfd, 3);
		rfd = 3;
	}
	fds_close_from(4);

	static char *items[JANITOR_MAX];
	size_t n = 0;
	char buf[LINE_MAX_LEN * 4], line[LINE_MAX_LEN];
	size_t ll = 0;
	for (;;) {
		ssize_t r = read(rfd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] != '\n') {
				if (ll < sizeof(line) - 1)
					line[ll++] = buf[i];
				continue;
			}
			line[ll] = '\0';
			ll = 0;
			if (line[0] == '+' && n < JANITOR_MAX) {
				items[n++] = strdup(line + 1);
			} else if (line[0] == '-') {
				for (size_t k = 0; k < n; k++)
					if (items[k] && strcmp(items[k], line + 1) == 0) {
						free(items[k]);
						items[k] = items[--n];
						items[n] = NULL;
						break;
					}
			}
		}
	}
	janitor_cleanup(items, n);
	_exit(0);
}

static int janitor_start_locked(void)
{
	if (jfd >= 0)
		return 0;
	if (jfailed)
		return -1;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		jfailed = true;
		return -1;
	}
	/* glibc's fork (not a raw clone) so that malloc is usable in the child even when
	 * the owner is multithreaded. One fork and no wait: the janitor stays our child
	 * until we exit, then init (or a subreaper) adopts it. */
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		jfailed = true;
		return -1;
	}
	if (pid == 0) {
		close(p[1]);
		janitor_main(p[0]);
	}
	close(p[0]);
	__atomic_store_n(&jpid, pid, __ATOMIC_RELAXED);
	jfd = p[1];
	return 0;
}

static void janitor_send(char op, char kind, const char *what)
{
	char line[LINE_MAX_LEN];
	int n = snprintf(line, sizeof(line), "%c%c%s\n", op, kind, what);
	if (n <= 0 || (size_t)n >= sizeof(line))
		return;
	pthread_mutex_lock(&jlock);
	if (op == '-' && jfd < 0) {
		pthread_mutex_unlock(&jlock);
		return;
	}
	if (janitor_start_locked() == 0) {
		/* Lines are shorter than PIPE_BUF: each write is atomic. */
		if (write(jfd, line, (size_t)n) < 0) {
			/* janitor gone: cleanup falls back to cgroup_gc at the next start */
		}
	}
	pthread_mutex_unlock(&jlock);
}

void janitor_watch_cgroup(const char *name)
{
	janitor_send('+', 'C', name);
}

void janitor_forget_cgroup(const char *name)
{
	janitor_send('-', 'C', name);
}

void janitor_watch_ids(const struct host_ids *ids, const char *sandbox_id)
{
	char item[64];
	snprintf(item, sizeof(item), "%u:%s", (unsigned)ids->uid, sandbox_id);
	janitor_send('+', 'I', item);
}

void janitor_forget_ids(const struct host_ids *ids, const char *sandbox_id)
{
	char item[64];
	snprintf(item, sizeof(item), "%u:%s", (unsigned)ids->uid, sandbox_id);
	janitor_send('-', 'I', item);
}

void janitor_watch_dir(const char *path)
{
	janitor_send('+', 'D', path);
}

void janitor_forget_dir(const char *path)
{
	janitor_send('-', 'D', path);
}

pid_t janitor_pid(void)
{
	return __atomic_load_n(&jpid, __ATOMIC_RELAXED);
}
