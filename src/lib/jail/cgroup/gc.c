/* gc.c: removing the agentd/<name> cgroups a crashed agentd left behind, in every
 * hierarchy; those a live owner holds (flock) or that still have processes stay. */
#include "lib/jail/cgroup/cgroup_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>

/* <parent>/agentd of every hierarchy we can set up, in hierarchy order; returns how many. */
static int gc_bases(char **bases)
{
	int nb = 0;

	pthread_mutex_lock(&cg_layout.lock);
	cg_layout_detect();
	for (int i = 0; i < cg_layout.n; i++)
		if (cg_hier_setup(&cg_layout.h[i], NULL) == 0)
			bases[nb++] = xstrdup(cg_layout.h[i].base);
	pthread_mutex_unlock(&cg_layout.lock);
	return nb;
}

/* Every sandbox name found under any base, once. */
static void gc_names(char *const *bases, int nb, agentd_strv *names)
{
	for (int i = 0; i < nb; i++) {
		DIR *d = opendir(bases[i]);
		struct dirent *e;
		if (!d)
			continue;
		while ((e = readdir(d)))
			if (e->d_type == DT_DIR && cg_name_valid(e->d_name) &&
			    !strv_contains(names, e->d_name))
				strv_push(names, e->d_name);
		closedir(d);
	}
}

/* Remove name in every hierarchy unless its owner lives or a process is still in it. */
static void gc_one(char *const *bases, int nb, const char *name)
{
	char *paths[CG_MAX_HIER];
	int np = 0;
	bool busy = false;

	for (int i = 0; i < nb; i++) {
		char *p = cg_path(bases[i], name);
		if (access(p, F_OK) == 0)
			paths[np++] = p;
		else
			free(p);
	}
	/* paths[0] is the primary (hierarchy order = create order): a live owner holds
	 * LOCK_SH on it. */
	_cleanup_close_ int fd = np ? open(paths[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
		busy = true;
	for (int i = 0; i < np && !busy; i++) {
		struct pidv pv = { 0 };
		cg_collect_pids(paths[i], &pv, 0);
		busy = pv.n > 0;
		free(pv.v);
	}
	for (int i = np - 1; i >= 0; i--) {
		if (!busy)
			cg_rmdir_tree(paths[i], 0);
		free(paths[i]);
	}
}

void cgroup_gc(void)
{
	char *bases[CG_MAX_HIER];
	agentd_strv names = { 0 };
	int nb = gc_bases(bases);

	gc_names(bases, nb, &names);
	for (size_t k = 0; k < names.n; k++)
		gc_one(bases, nb, names.v[k]);
	strv_free(&names);
	for (int i = 0; i < nb; i++)
		free(bases[i]);
}

