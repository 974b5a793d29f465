/* plan_entries.c: what the plan mounts, as unordered entries: the runtime (/usr...), /proc
 * and its masks, /dev, the scratch directories, and the policy's binds (validated). */
#include "lib/jail/mounts/mounts_internal.h"

#include <limits.h>
#include <pthread.h>
#include <sys/mount.h>
#include <sys/stat.h>

struct entry *add_entry(struct builder *b, enum mount_op_kind k, const char *target,
			const char *source)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
	}
	struct entry *e = &b->v[b->n++];
	memset(e, 0, sizeof(*e));
	e->op.kind = k;
	e->op.target = xstrdup(target);
	e->op.source = source ? xstrdup(source) : NULL;
	e->op.uid = (uid_t)-1;
	e->op.gid = (gid_t)-1;
	e->mount =
	    k != MOUNT_OP_DIR && k != MOUNT_OP_FILE && k != MOUNT_OP_COPY && k != MOUNT_OP_SYMLINK;
	e->dir = true;
	e->seq = b->n;
	e->tree = k == MOUNT_OP_BIND ? TREE_HOST : k == MOUNT_OP_DIR ? TREE_OWN : TREE_NONE;
	snprintf(e->label, sizeof(e->label), "system");
	return e;
}

struct entry *add_symlink(struct builder *b, const char *target, const char *link)
{
	struct entry *e = add_entry(b, MOUNT_OP_SYMLINK, target, NULL);
	op_set_data(&e->op, link, strlen(link));
	return e;
}

struct entry *add_file(struct builder *b, const char *target, const char *data, size_t len)
{
	struct entry *e = add_entry(b, MOUNT_OP_FILE, target, NULL);
	op_set_data(&e->op, data, len);
	e->op.mode = 0644;
	return e;
}

/* A read-only bind of a host path at target (dir tells the mount point type). */
struct entry *add_ro_bind(struct builder *b, const char *target, const char *source, bool dir)
{
	struct entry *e = add_entry(b, MOUNT_OP_BIND, target, source);
	e->op.attr_set = ATTR_RO;
	e->dir = dir;
	if (!dir)
		e->tree = TREE_NONE;
	return e;
}

/* /usr, and /bin /sbin /lib* as the symlinks they are on merged-/usr hosts. */
void add_runtime(struct builder *b, const agentd_strv *sys)
{
	for (size_t i = 0; i < sys->n; i++) {
		const char *p = sys->v[i];
		struct stat st;
		char link[PATH_MAX];
		if (path_within(p, "/etc") || path_within(p, "/dev") || path_within(p, "/proc") ||
		    lstat(p, &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlink(p, link, sizeof(link) - 1);
			if (n > 0) {
				link[n] = '\0';
				add_symlink(b, p, link);
			}
		} else if (S_ISDIR(st.st_mode)) {
			add_ro_bind(b, p, p, true);
			strv_push(&b->runtime, p);
		}
	}
}

/* A fresh proc, not subset=pid: that would hide /proc/cpuinfo, meminfo, stat, uptime and
 * loadavg, which ps, free, psutil and Node's os.cpus() read. Docker's masks instead; most
 * are already useless to a user namespace (they check init-namespace capabilities or
 * unmapped owners), so this is defence in depth. Only entries the kernel has are listed. */
/* What the kernel's /proc has: it does not change while we run. */
static const char *const proc_names[] = {
    "kcore",	     "sysrq-trigger", "keys", "timer_list", "sched_debug", "kallsyms",
    "latency_stats", "timer_stats",   "acpi", "scsi",	    "asound",	   "firmware",
    "sys",	     "irq",	      "bus",  "fs"};
static bool proc_present[ARRAY_SIZE(proc_names)];

static void proc_probe(void)
{
	char p[64];
	for (size_t i = 0; i < ARRAY_SIZE(proc_names); i++) {
		snprintf(p, sizeof(p), "/proc/%s", proc_names[i]);
		proc_present[i] = access(p, F_OK) == 0;
	}
}

static bool proc_has(const char *name)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, proc_probe);
	for (size_t i = 0; i < ARRAY_SIZE(proc_names); i++)
		if (strcmp(proc_names[i], name) == 0)
			return proc_present[i];
	return false;
}

void add_proc(struct builder *b)
{
	static const char *const mask_files[] = {"kcore",	  "sysrq-trigger", "keys",
						 "timer_list",	  "sched_debug",   "kallsyms",
						 "latency_stats", "timer_stats"};
	static const char *const mask_dirs[] = {"acpi", "scsi", "asound", "firmware"};
	static const char *const ro_dirs[] = {"sys", "irq", "bus", "fs"};
	char p[64];
	struct entry *e = add_entry(b, MOUNT_OP_PROC, "/proc", NULL);
	e->op.flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	e->tree = TREE_FIXED;
	for (size_t i = 0; i < ARRAY_SIZE(mask_files); i++) {
		if (!proc_has(mask_files[i]))
			continue;
		snprintf(p, sizeof(p), "/proc/%s", mask_files[i]);
		e = add_entry(b, MOUNT_OP_MASK_FILE, p, "/dev/null");
		e->op.opflags = MOUNT_OPF_OPTIONAL;
		e->dir = false;
	}
	for (size_t i = 0; i < ARRAY_SIZE(mask_dirs); i++) {
		if (!proc_has(mask_dirs[i]))
			continue;
		snprintf(p, sizeof(p), "/proc/%s", mask_dirs[i]);
		e = add_entry(b, MOUNT_OP_MASK_DIR, p, NULL);
		e->op.flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
		op_set_data(&e->op, "size=4k,nr_inodes=1,mode=0555", 30);
		e->op.opflags = MOUNT_OPF_OPTIONAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(ro_dirs); i++) {
		if (!proc_has(ro_dirs[i]))
			continue;
		snprintf(p, sizeof(p), "/proc/%s", ro_dirs[i]);
		e = add_ro_bind(b, p, p, true); /* the new proc's own, bound onto itself */
		e->op.attr_set |= MOUNT_ATTR_NOEXEC;
		e->op.opflags = MOUNT_OPF_SOURCE_IN_ROOT | MOUNT_OPF_OPTIONAL;
		e->tree = TREE_FIXED;
	}
}

/* The devices bound from the host, and the usual symlinks. */
static const char *const dev_skel_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
static const char *const dev_skel_links[][2] = {
    {"ptmx", "pts/ptmx"},	   {"fd", "/proc/self/fd"},	  {"stdin", "/proc/self/fd/0"},
    {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
};

/* /dev, a directory of the scratch root like /etc (read-only with it, so no mount shows a
 * host path for it): the symlinks, the mount points of the device binds, devpts and
 * /dev/shm. */
void add_dev(struct builder *b)
{
	char p[64];
	struct entry *e;
	for (size_t i = 0; i < ARRAY_SIZE(dev_skel_links); i++) {
		snprintf(p, sizeof(p), "/dev/%s", dev_skel_links[i][0]);
		add_symlink(b, p, dev_skel_links[i][1]);
	}
	/* Binds of the host's devices (nodes made in a user namespace would not open: its
	 * filesystems are SB_I_NODEV). No attributes: nosuid, noexec and ro mean nothing to a
	 * character device (only regular files execute; ro does not stop device writes), and
	 * each would cost a syscall. */
	for (size_t i = 0; i < ARRAY_SIZE(dev_skel_nodes); i++) {
		snprintf(p, sizeof(p), "/dev/%s", dev_skel_nodes[i]);
		e = add_entry(b, MOUNT_OP_DEV_NODE, p, p);
		e->op.mode = 0666;
		e->dir = false;
	}
	e = add_entry(b, MOUNT_OP_DEVPTS, "/dev/pts", NULL);
	e->op.flags = MS_NOSUID | MS_NOEXEC;
	/* Its own instance: the host's terminals are not in it, and max (64) bounds the ptys
	 * it takes from the kernel's pool (kernel.pty.max) that every sandbox shares. */
	static const char pts_opts[] = "newinstance,ptmxmode=0666,mode=620,max=64";
	op_set_data(&e->op, pts_opts, sizeof(pts_opts) - 1);
	e->tree = TREE_FIXED;
}

/* workdir, /tmp and /dev/shm are directories of one scratch tmpfs: one quota
 * (max_write_bytes) for everything the sandbox can write. The scratch mount has
 * nosuid,nodev, which binds inherit; /dev/shm adds noexec. */
void add_scratch(struct builder *b, const char *workdir)
{
	static const struct {
		const char *dir, *target;
	} s[] = {{"workdir", NULL}, {"tmp", "/tmp"}, {"shm", "/dev/shm"}};
	for (size_t i = 0; i < ARRAY_SIZE(s); i++) {
		if (i == 1 && strcmp(workdir, "/tmp") == 0)
			continue; /* the workdir is /tmp: one bind */
		struct entry *e =
		    add_entry(b, MOUNT_OP_BIND, s[i].target ? s[i].target : workdir, s[i].dir);
		e->op.opflags = OPF_SCRATCH_SOURCE;
		e->op.attr_set = i == 2 ? MOUNT_ATTR_NOEXEC : 0;
		e->tree = TREE_OWN;
		e->scratch = true;
		snprintf(e->label, sizeof(e->label), "%s", i == 0 ? "workdir" : "system");
	}
}

static int add_user(struct builder *b, const char *label, bool same, const char *source,
		    const char *target, bool ro)
{
	char t[PATH_MAX], tl[64], sl[64];
	snprintf(tl, sizeof(tl), "%s%s", label, same ? "" : ".target");
	snprintf(sl, sizeof(sl), "%s%s", label, same ? "" : ".source");
	if (!path_normalize(target, t, sizeof(t)))
		return agentd_error_set(b->err, EINVAL,
					"%s: %s: expected an absolute path without \"..\"", tl,
					target ? target : "(null)");
	if (!source || source[0] != '/')
		return agentd_error_set(b->err, EINVAL, "%s: %s: expected an absolute path", sl,
					source ? source : "(null)");
	if (strcmp(t, "/") == 0)
		return agentd_error_set(b->err, EINVAL, "%s: %s: would shadow the root", tl, t);
	if (path_within(t, "/proc") || strcmp(t, "/dev") == 0)
		return agentd_error_set(b->err, EINVAL, "%s: %s: would shadow %s", tl, t,
					path_within(t, "/proc") ? "/proc" : "/dev");
	_cleanup_free_ char *real = realpath(source, NULL);
	struct stat st;
	/* the caller's path: its absence is the caller's mistake (EINVAL: a 400), not ours */
	if (!real || stat(real, &st) < 0)
		return agentd_error_set(b->err, EINVAL, "%s: %s: %s", sl, source, strerror(errno));
	if (path_within(real, "/proc"))
		return agentd_error_set(b->err, EINVAL, "%s: %s: the host's /proc is not bound", sl,
					source);
	if (strcmp(real, "/") == 0)
		return agentd_error_set(b->err, EINVAL, "%s: %s: the host root is not bound", sl,
					source);
	if (S_ISBLK(st.st_mode))
		return agentd_error_set(b->err, EINVAL, "%s: %s: block devices are not bound", sl,
					source);
	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].user && strcmp(b->v[i].op.target, t) == 0)
			return agentd_error_set(b->err, EINVAL, "%s: %s: already the target of %s",
						tl, t, b->v[i].label);
	struct entry *e;
	if (S_ISCHR(st.st_mode)) {
		/* readonly cannot apply, see add_dev */
		e = add_entry(b, MOUNT_OP_DEV_NODE, t, real);
		e->dir = false;
	} else {
		e = add_entry(b, MOUNT_OP_BIND, t, real);
		e->op.attr_set = ro ? ATTR_RO : ATTR_RW;
		e->dir = S_ISDIR(st.st_mode);
		e->tree = e->dir ? TREE_HOST : TREE_NONE;
	}
	e->user = true;
	e->op.opflags |= MOUNT_OPF_POLICY;
	snprintf(e->label, sizeof(e->label), "%s", tl);
	return 0;
}

int add_user_binds(struct builder *b, const agentd_spec *spec)
{
	char label[48];
	for (size_t i = 0; i < spec->allowed_paths_ro.n; i++) {
		snprintf(label, sizeof(label), "allowed_paths_ro[%zu]", i);
		const char *p = spec->allowed_paths_ro.v[i];
		if (add_user(b, label, true, p, p, true) < 0)
			return -1;
	}
	for (size_t i = 0; i < spec->allowed_paths_rw.n; i++) {
		snprintf(label, sizeof(label), "allowed_paths_rw[%zu]", i);
		const char *p = spec->allowed_paths_rw.v[i];
		if (add_user(b, label, true, p, p, false) < 0)
			return -1;
	}
	for (size_t i = 0; i < spec->n_bind_mounts; i++) {
		const agentd_bind_mount *m = &spec->bind_mounts[i];
		snprintf(label, sizeof(label), "bind_mounts[%zu]", i);
		if (add_user(b, label, false, m->source, m->target, m->readonly) < 0)
			return -1;
	}
	return 0;
}
