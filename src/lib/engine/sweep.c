/* sweep.c: the no-cgroup tree cleanup. Descendants that left the command's process group
 * are found as orphans reparented to us (a child subreaper); the main processes of running
 * execs are kept in a set, and the janitor is ours too, so a sweep takes only what no exec
 * owns. */
#include "lib/engine/engine.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t active_pids[1024];
static size_t n_active;

void sweep_keep(pid_t p)
{
	pthread_mutex_lock(&active_lock);
	if (n_active < ARRAY_SIZE(active_pids))
		active_pids[n_active++] = p;
	pthread_mutex_unlock(&active_lock);
}

void sweep_forget(pid_t p)
{
	pthread_mutex_lock(&active_lock);
	for (size_t i = 0; i < n_active; i++)
		if (active_pids[i] == p) {
			active_pids[i] = active_pids[--n_active];
			break;
		}
	pthread_mutex_unlock(&active_lock);
}

static bool active_has(pid_t p)
{
	bool r = false;
	pthread_mutex_lock(&active_lock);
	for (size_t i = 0; i < n_active; i++)
		if (active_pids[i] == p)
			r = true;
	pthread_mutex_unlock(&active_lock);
	return r;
}

int sweep_orphans(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	pid_t self = getpid();
	int found = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char path[300];
		snprintf(path, sizeof(path), "%s/stat", de->d_name);
		_cleanup_free_ char *st = read_file_at(dirfd(d), path, 4096, NULL);
		if (!st)
			continue;
		char *rp = strrchr(st, ')');
		int ppid = 0;
		if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1 || ppid != self)
			continue;
		pid_t pid = (pid_t)atoi(de->d_name);
		if (active_has(pid) || pid == janitor_pid())
			continue;
		kill(pid, SIGKILL);
		siginfo_t si;
		waitid(P_PID, (id_t)pid, &si, WEXITED);
		found++;
	}
	closedir(d);
	return found;
}
