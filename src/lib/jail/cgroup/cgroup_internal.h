/* cgroup_internal.h: what the files of cgroup/ share: the detected layout (one global),
 * struct cgroup, and the small file and pid-list helpers of util.c. Private to cgroup/. */
#ifndef AGENTD_JAIL_CGROUP_INTERNAL_H
#define AGENTD_JAIL_CGROUP_INTERNAL_H

#include "lib/jail/jail.h"

#include <pthread.h>

#define CG_FS_ROOT "/sys/fs/cgroup"
#define CG_MAX_HIER 8		/* memory, pids, cpu, cpuacct, freezer, blkio, cgroup2 */
#define CG_NAME_MAX 80	/* issue 13: a podman container's libpod-<64 hex> */
#define CG_WAIT_MS 2000		/* kill and freeze give up after this long */
/* A freeze asked for (suspend, a snapshot's consistent copy) waits longer: on a loaded
 * 2-core host a v1 freezer took over 2 s to catch a task in a disk write (CI, oci
 * snapshot). Still bounded, and undone when it gives up. */
#define CG_FREEZE_WAIT_MS 10000
#define CG_RMDIR_MS 1000	/* rmdir retries EBUSY (tasks still exiting) this long */
#define CG_PROCS_MAX (4u << 20)
#define CG_CPU_PERIOD_US 100000
#define CG_SUPERVISOR "agentd-supervisor"

/* The controllers agentd uses. cpuacct and freezer are core features on v2 (cpu.stat,
 * cgroup.freeze); io is accounting only (bytes read/written). */
enum { C_MEMORY, C_PIDS, C_CPU, C_CPUACCT, C_FREEZER, C_IO, C_COUNT };
extern const char *const cg_v1_ctrl[C_COUNT];	/* v1 names, also used in messages */
#define BIT(c) (1u << (c))

/* One mounted hierarchy: a v1 mount (possibly co-mounting controllers) or cgroup2. */
struct hier {
	char *mount;		/* mount point */
	char *mroot;		/* cgroup shown at the mount point (mountinfo root field) */
	char *dev;		/* "maj:min": bind mounts of one hierarchy share it */
	bool v2;
	unsigned ctrls;		/* v1: bound controllers; v2: enabled under base */
	char *base;		/* "<parent>/agentd" once set up, else NULL */
	char msg[320];		/* why a v2 controller could not be enabled */
};

/* The layout, detected once per process (layout.c). */
struct cg_layout {
	pthread_mutex_t lock;	/* guards everything here; cgroups themselves need no lock */
	bool detected;
	struct hier h[CG_MAX_HIER];
	int n;
	int v2;			/* index of the cgroup2 hierarchy, -1 */
	int v1of[C_COUNT];	/* index of the v1 hierarchy carrying a controller, -1 */
	bool v2_kill, v2_freeze;	/* cgroup.kill (>= 5.14), cgroup.freeze (>= 5.2) */
};
extern struct cg_layout cg_layout;

struct cg_dir {
	char *path;		/* <base>/<name> */
	int procs_fd;		/* cgroup.procs, O_WRONLY, opened at create for attach_self */
	bool v2;
	bool created;		/* we made it (cleanup of a failed create) */
};

struct cgroup {
	char name[CG_NAME_MAX + 1];
	int n;
	struct cg_dir d[CG_MAX_HIER];	/* d[0] is the primary: cgroup2 when there is one */
	int of[C_COUNT];	/* index into d[] serving each controller, -1 */
	int v2;			/* index of the cgroup2 dir, -1 */
	int dir_fd;		/* d[0] opened, LOCK_SH held for our lifetime so cgroup_gc of
				 * any agentd process leaves us alone; CLONE_INTO_CGROUP fd */
	bool v2_kill, v2_freeze;
	const struct cgroup *parent;	/* a kill unit's sandbox cgroup, else NULL */
};

/* layout.c; the first three with cg_layout.lock held */
void cg_layout_detect(void);
bool cg_layout_has_v1(void);
int cg_hier_setup(struct hier *h, agentd_error *err);

/* util.c: names, cgroup files, pid lists, removal */
bool cg_name_valid(const char *name);
char *cg_path(const char *a, const char *b);
int cg_write(const char *dir, const char *file, const char *val);
char *cg_read(const char *dir, const char *file);
void cg_nap(unsigned *us);

struct pidv {
	pid_t *v;
	size_t n, cap;
};
void cg_pidv_push(struct pidv *pv, pid_t p);
void cg_collect_pids(const char *dir, struct pidv *pv, int depth);
int cg_rmdir_tree(const char *path, int depth);

#endif
