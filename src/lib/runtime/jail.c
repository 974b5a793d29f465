/* jail.c: the confinement of an OCI container's process from its checked config: prepared by
 * the runtime (may allocate, names what is wrong), applied by the child with syscalls only. */
#include "lib/runtime/runtime.h"

#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* Both seccomp programs: agentd's default under the config's own, never instead of it. */
static int prepare_seccomp(const struct ocirt_config *c, struct ocirt_jail *j, agentd_error *err)
{
	struct seccomp_opts o = {.profile = "default"};
	if (c->floor_seccomp && seccomp_prepare(&o, &j->floor_seccomp, err) < 0)
		return agentd_error_prefix(err, "agentd's seccomp profile");
	if (c->seccomp && seccomp_oci_prepare_json(c->seccomp, &o, &j->config_seccomp, err) < 0)
		return agentd_error_prefix(err, "linux.seccomp");
	return 0;
}

static void prepare_process(const struct ocirt_process *p, struct ocirt_jail *j)
{
	j->rlimits.n = 0;
	_Static_assert(RLIMIT_SET_MAX >= OCIRT_RLIMITS_MAX, "every rlimit of a config fits");
	for (int i = 0; i < p->n_rlimits; i++) {
		j->rlimits.resource[j->rlimits.n] = p->rlimits[i].resource;
		j->rlimits.value[j->rlimits.n++] = p->rlimits[i].value;
	}
	j->cap_bounding = p->cap_bounding;
	j->cap_effective = p->cap_effective;
	j->cap_permitted = p->cap_permitted;
	j->cap_inheritable = p->cap_inheritable;
	/* An ambient capability must be permitted and inheritable (else PR_CAP_AMBIENT_RAISE
	 * is EPERM): runc only warns for those and runs the process (`runc spec`'s default
	 * lists ambient caps with no inheritable set); the rest are never raised. */
	j->cap_ambient = p->cap_ambient & p->cap_permitted & p->cap_inheritable;
	j->uid = p->uid;
	j->gid = p->gid;
	j->n_groups = p->n_additional_gids;
	j->groups = j->n_groups ? xmalloc(j->n_groups * sizeof(gid_t)) : NULL;
	if (j->n_groups)
		memcpy(j->groups, p->additional_gids, j->n_groups * sizeof(gid_t));
	j->no_new_privs = true;	/* the floor's, whatever the process asks */
	j->oom_score_adj = p->oom_score_adj;
	j->has_oom_score_adj = p->has_oom_score_adj;
	j->umask = p->umask == (mode_t)-1 ? 022 : p->umask;
}

/* For `exec`: the container's seccomp, this process's own ids, capabilities, rlimits. The
 * floor's rules apply to the exec'd process too: no capability beyond the container's bounding
 * set, no_new_privs on. */
int ocirt_jail_prepare_exec(const struct ocirt_config *c, const struct ocirt_process *p,
			    struct ocirt_jail *j, agentd_error *err)
{
	memset(j, 0, sizeof(*j));
	/* an exec asks for no more capabilities than the container's process was given */
	const uint64_t sets[] = {p->cap_bounding, p->cap_effective, p->cap_permitted,
				 p->cap_inheritable, p->cap_ambient};
	for (size_t s = 0; s < ARRAY_SIZE(sets); s++)
		if (sets[s] & ~c->process.cap_bounding) {
			int cap = __builtin_ctzll(sets[s] & ~c->process.cap_bounding);
			return agentd_error_set(err, EPERM,
						"process.capabilities: %s is not in the container's "
						"bounding set",
						ocirt_cap_name(cap));
		}
	if (prepare_seccomp(c, j, err) < 0) {
		ocirt_jail_free(j);
		return -1;
	}
	prepare_process(p, j);
	return 0;
}


/* ---------------------------------------------------------------- the mount plan
 * The rootfs bound onto itself and entered; every target inside it made or checked component
 * by component without following a symlink (MOUNT_OPF_RESOLVE: a hostile image's link at a
 * mount point must not carry a mount, least of all a bind, out of the rootfs); the config's
 * mounts in order with a default /dev; the masks and read-only paths; the pivot. */
static uint64_t ms_to_attr(unsigned long f)
{
	return (f & MS_RDONLY ? MOUNT_ATTR_RDONLY : 0) | (f & MS_NOSUID ? MOUNT_ATTR_NOSUID : 0) |
	       (f & MS_NODEV ? MOUNT_ATTR_NODEV : 0) | (f & MS_NOEXEC ? MOUNT_ATTR_NOEXEC : 0) |
	       (f & MS_NOATIME ? MOUNT_ATTR_NOATIME : 0) |
	       (f & MS_NODIRATIME ? MOUNT_ATTR_NODIRATIME : 0) |
	       (f & MS_STRICTATIME ? MOUNT_ATTR_STRICTATIME : 0);
}

/* Each ancestor of target, then target (a directory, or an empty file), made inside the
 * rootfs without following a symlink; one that exists must already be what it is. */
static void push_mount_point(struct mount_plan *mp, const char *target, bool file)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", target);
	for (char *s = path + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		struct mount_op *op = mount_plan_push(mp, MOUNT_OP_DIR, path);
		op->opflags = MOUNT_OPF_RESOLVE;
		op->mode = 0755;
		*s = '/';
	}
	struct mount_op *op = mount_plan_push(mp, file ? MOUNT_OP_FILE : MOUNT_OP_DIR, path);
	op->opflags = MOUNT_OPF_RESOLVE;
	op->mode = file ? 0644 : 0755;
}

/* A path inside the container: absolute, no "." or ".." component, not "/" itself. */
static int check_target(const char *t, const char *field, agentd_error *err)
{
	bool ok = t[0] == '/' && t[1] && strlen(t) < PATH_MAX - 1;
	for (const char *s = t; ok && *s; s++)
		if (s[0] == '/' && s[1] == '.' && (!s[2] || s[2] == '/' || (s[2] == '.' && (!s[3] || s[3] == '/'))))
			ok = false;
	if (!ok)
		return agentd_error_set(err, EINVAL, "%s: %s: expected an absolute path with no "
						     "\".\" or \"..\" component",
					field, t);
	return 0;
}

static bool mounted_at(const struct ocirt_config *c, const char *dest)
{
	for (size_t i = 0; i < c->n_mounts; i++)
		if (!strcmp(c->mounts[i].destination, dest))
			return true;
	return false;
}

/* The nodes a container expects in /dev, bound from the host's (no mknod in a user
 * namespace), the links, and pts/shm where the config has none. */
static void push_default_dev(struct mount_plan *mp, const struct ocirt_config *c)
{
	static const char *const nodes[] = {"/dev/null", "/dev/zero", "/dev/full",
					    "/dev/random", "/dev/urandom", "/dev/tty"};
	static const char *const links[][2] = {
		{"/dev/fd", "/proc/self/fd"},	    {"/dev/stdin", "/proc/self/fd/0"},
		{"/dev/stdout", "/proc/self/fd/1"}, {"/dev/stderr", "/proc/self/fd/2"},
		{"/dev/ptmx", "pts/ptmx"}};
	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
		push_mount_point(mp, nodes[i], true);
		struct mount_op *op = mount_plan_push(mp, MOUNT_OP_DEV_NODE, nodes[i]);
		op->source = xstrdup(nodes[i]);
		op->opflags = MOUNT_OPF_RESOLVE;
		op->attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
	}
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		struct mount_op *op = mount_plan_push(mp, MOUNT_OP_SYMLINK, links[i][0]);
		op->data = xstrdup(links[i][1]);
		op->data_len = strlen(links[i][1]);
	}
	if (!mounted_at(c, "/dev/pts")) {
		push_mount_point(mp, "/dev/pts", false);
		struct mount_op *op = mount_plan_push(mp, MOUNT_OP_DEVPTS, "/dev/pts");
		op->flags = MS_NOSUID | MS_NOEXEC;
		op->data = xstrdup("newinstance,ptmxmode=0666,mode=0620");
	}
	if (!mounted_at(c, "/dev/shm")) {
		push_mount_point(mp, "/dev/shm", false);
		struct mount_op *op = mount_plan_push(mp, MOUNT_OP_TMPFS, "/dev/shm");
		op->flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
		op->data = xstrdup("mode=1777,size=65536k");
	}
}

static int push_config_mount(struct mount_plan *mp, const struct ocirt_mount *m, size_t i,
			     agentd_error *err)
{
	struct mount_op *op;
	if (m->bind) {
		struct stat st;
		if (stat(m->source, &st) < 0)
			return agentd_error_errno(err, errno, "mounts[%zu].source: %s", i, m->source);
		push_mount_point(mp, m->destination, !S_ISDIR(st.st_mode));
		/* "bind" takes the one mount, "rbind" the tree below it too */
		op = mount_plan_push(mp, m->recursive ? MOUNT_OP_BIND : MOUNT_OP_DEV_NODE,
				     m->destination);
		op->source = xstrdup(m->source);
		op->opflags = MOUNT_OPF_RESOLVE;
		op->attr_set = ms_to_attr(m->flags);
		return 0;
	}
	push_mount_point(mp, m->destination, false);
	const char *type = m->type;
	if (!strcmp(type, "proc")) {
		op = mount_plan_push(mp, MOUNT_OP_PROC, m->destination);
	} else if (!strcmp(type, "tmpfs")) {
		op = mount_plan_push(mp, MOUNT_OP_TMPFS, m->destination);
		op->opflags = m->tmpcopyup ? MOUNT_OPF_COPYUP : 0;	/* issue 16: rt-gaps */
	} else if (!strcmp(type, "devpts")) {
		op = mount_plan_push(mp, MOUNT_OP_DEVPTS, m->destination);
	} else if (!strcmp(type, "mqueue") || !strcmp(type, "sysfs") || !strcmp(type, "cgroup") ||
		   !strcmp(type, "cgroup2")) {
		op = mount_plan_push(mp, MOUNT_OP_FS, m->destination);
		/* "cgroup" on a unified host is its cgroup2 (as runc reads it); the container's
		 * cgroup namespace makes its own cgroup the root */
		bool v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
		op->source = xstrdup(!strcmp(type, "cgroup") && v2 ? "cgroup2" : type);
		if (strcmp(type, "mqueue"))
			op->opflags = MOUNT_OPF_EMPTY_FALLBACK;
	} else {
		return agentd_error_set(err, EINVAL, "mounts[%zu].type: %s: not supported", i,
					type);
	}
	op->flags = m->flags & ~(MS_REMOUNT | MS_BIND | MS_REC);
	if (m->data)
		op->data = xstrdup(m->data);
	return 0;
}

/* maskedPaths and readonlyPaths lie in the container's own proc and sys (a fresh mount, no
 * link planted by the image); their kind is the host kernel's. Elsewhere: refused. */
static int push_proc_paths(struct mount_plan *mp, const agentd_strv *paths, bool mask,
			   agentd_error *err)
{
	for (size_t i = 0; i < paths->n; i++) {
		const char *p = paths->v[i];
		if (check_target(p, mask ? "linux.maskedPaths" : "linux.readonlyPaths", err) < 0)
			return -1;
		if (strncmp(p, "/proc/", 6) && strncmp(p, "/sys/", 5))
			return agentd_error_set(err, EINVAL,
						"linux.%s[%zu]: %s: only paths below /proc and /sys "
						"are supported",
						mask ? "maskedPaths" : "readonlyPaths", i, p);
		struct stat st;
		if (lstat(p, &st) < 0)
			continue;	/* this kernel has none */
		struct mount_op *op;
		if (!mask) {
			op = mount_plan_push(mp, MOUNT_OP_BIND, p);
			op->source = xstrdup(p);
			op->opflags = MOUNT_OPF_SOURCE_IN_ROOT | MOUNT_OPF_OPTIONAL;
			op->attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
				       MOUNT_ATTR_NOEXEC;
		} else if (S_ISDIR(st.st_mode)) {
			op = mount_plan_push(mp, MOUNT_OP_MASK_DIR, p);
			op->flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
			op->data = xstrdup("size=4k,nr_inodes=1,mode=0555");
			op->opflags = MOUNT_OPF_OPTIONAL;
		} else {
			op = mount_plan_push(mp, MOUNT_OP_MASK_FILE, p);
			op->source = xstrdup("/dev/null");
			op->opflags = MOUNT_OPF_OPTIONAL;
		}
	}
	return 0;
}

static bool mount_plan_has(const struct mount_plan *mp, const char *target)
{
	for (size_t i = 0; i < mp->n; i++)
		if (mp->ops[i].kind == MOUNT_OP_DEV_NODE && !strcmp(mp->ops[i].target, target))
			return true;
	return false;
}

/* The new root, reached without walking the bundle's path as the container's user (an
 * engine's storage is often below 0700 directories): the rootfs (a tree the runtime opens
 * as root, mount_plan_open_sources) is attached on a scratch tmpfs of the private namespace
 * over a host directory no bind source is in or above, and entered there. */
static int prepare_root(const struct ocirt_config *c, struct mount_plan *mp,
			struct mount_plan *body, agentd_error *err)
{
	mount_plan_push(body, MOUNT_OP_BIND, "/")->source = xstrdup(c->root_path);
	_cleanup_free_ char *base = mount_plan_choose_base(body, NULL, err);
	body->n--;
	free(body->ops[body->n].source);
	free(body->ops[body->n].target);
	if (!base)
		return -1;
	_cleanup_free_ char *root = xasprintf("%s/root", base);
	mount_plan_push(mp, MOUNT_OP_PRIVATE, "/");
	struct mount_op *op = mount_plan_push(mp, MOUNT_OP_TMPFS, base);
	op->flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	op->data = xstrdup("mode=0755,size=64k");
	mount_plan_push(mp, MOUNT_OP_DIR, root)->mode = 0755;
	op = mount_plan_push(mp, MOUNT_OP_BIND, root);
	op->source = xstrdup(c->root_path);
	/* nodev: an image's device nodes (made by the engine as host root, on a superblock of
	 * the host's) never open, whatever the host's device cgroup says (none on a cgroup v2
	 * host); the container's /dev is a tmpfs of its own with binds of the host's nodes */
	op->attr_set = MOUNT_ATTR_NODEV;
	mount_plan_push(mp, MOUNT_OP_ENTER, root);
	/* the rootfs tree is a clone of the engine's mount, in its peer group where that is
	 * shared (dockerd's data root): private before anything is mounted in it, or the
	 * container's /proc, /dev... would propagate to the host's rootfs (and pivot_root
	 * refuses a shared new root: EINVAL) */
	mount_plan_push(mp, MOUNT_OP_PRIVATE, "/");
	mount_plan_append(mp, body);
	return 0;
}

static int prepare_body(const struct ocirt_config *c, struct mount_plan *mp, agentd_error *err)
{
	char field[64];
	bool dev_done = false;
	if (!mounted_at(c, "/dev")) {
		push_mount_point(mp, "/dev", false);
		struct mount_op *op = mount_plan_push(mp, MOUNT_OP_TMPFS, "/dev");
		op->flags = MS_NOSUID | MS_NOEXEC | MS_STRICTATIME;
		op->data = xstrdup("mode=755,size=65536k");
		push_default_dev(mp, c);
		dev_done = true;
	}
	for (size_t i = 0; i < c->n_mounts; i++) {
		snprintf(field, sizeof(field), "mounts[%zu].destination", i);
		if (check_target(c->mounts[i].destination, field, err) < 0 ||
		    push_config_mount(mp, &c->mounts[i], i, err) < 0)
			return -1;
		if (!dev_done && !strcmp(c->mounts[i].destination, "/dev")) {
			push_default_dev(mp, c);
			dev_done = true;
		}
	}
	/* devices the operator allowed beyond the default ones: the host's node, bound */
	for (size_t i = 0; i < c->n_devices; i++) {
		snprintf(field, sizeof(field), "linux.devices[%zu].path", i);
		if (check_target(c->devices[i].path, field, err) < 0)
			return -1;
		if (mount_plan_has(mp, c->devices[i].path))
			continue;
		push_mount_point(mp, c->devices[i].path, true);
		struct mount_op *op = mount_plan_push(mp, MOUNT_OP_DEV_NODE, c->devices[i].path);
		op->source = xstrdup(c->devices[i].path);
		op->opflags = MOUNT_OPF_RESOLVE;
		op->attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
	}
	if (push_proc_paths(mp, &c->masked_paths, true, err) < 0 ||
	    push_proc_paths(mp, &c->readonly_paths, false, err) < 0)
		return -1;
	if (c->root_readonly)
		mount_plan_push(mp, MOUNT_OP_SET_ATTR, "/")->attr_set = MOUNT_ATTR_RDONLY;
	/* the config's binds too (clones of host mounts that may be shared) */
	mount_plan_push(mp, MOUNT_OP_PRIVATE, "/");
	mount_plan_push(mp, MOUNT_OP_PIVOT, "/");
	return 0;
}

static int prepare_mounts(const struct ocirt_config *c, struct mount_plan *mp, agentd_error *err)
{
	struct mount_plan body = {0};
	int r = prepare_body(c, &body, err);
	if (r == 0)
		r = prepare_root(c, mp, &body, err);
	mount_plan_free(&body);
	return r;
}

/* net.ipv4.ping_group_range is written in the container's user namespace, where a gid
 * outside its map is EINVAL: docker's "every group" ("0 2147483647") becomes every group
 * the map has, from the low end's mapping on (a range already inside is kept as is). */
static void clamp_ping_group_range(const struct ocirt_config *c, struct ocirt_jail *j)
{
	for (size_t i = 0; i < j->sysctl.n; i++) {
		unsigned long lo, hi;
		char end;
		if (strcmp(j->sysctl.v[i].key, "net.ipv4.ping_group_range") ||
		    sscanf(j->sysctl.v[i].value, "%lu %lu%c", &lo, &hi, &end) != 2)
			continue;
		for (size_t m = 0; m < c->n_gid_maps; m++) {
			const struct ocirt_idmap *g = &c->gid_maps[m];
			unsigned long last = (unsigned long)g->container_id + g->size - 1;
			if (g->size && lo >= g->container_id && lo <= last && hi > last) {
				free(j->sysctl.v[i].value);
				j->sysctl.v[i].value = xasprintf("%lu %lu", lo, last);
			}
		}
	}
}

int ocirt_jail_prepare(const struct ocirt_config *c, struct ocirt_jail *j, agentd_error *err)
{
	memset(j, 0, sizeof(*j));
	if (prepare_mounts(c, &j->mounts, err) < 0 || prepare_seccomp(c, j, err) < 0) {
		ocirt_jail_free(j);
		return -1;
	}
	prepare_process(&c->process, j);
	j->hostname = c->hostname ? xstrdup(c->hostname) : NULL;
	/* issue 16: rt-gaps. runc's rule: only in a UTS namespace of the container's own */
	bool domain = c->domainname && c->domainname[0];	/* "": unset, as runc reads it */
	if (domain && (!c->ns_wanted[OCIRT_NS_UTS] || c->ns_path[OCIRT_NS_UTS])) {
		ocirt_jail_free(j);
		return agentd_error_set(err, EINVAL, "domainname: unable to set it without a "
						     "new UTS namespace of the container's own");
	}
	j->domainname = domain ? xstrdup(c->domainname) : NULL;
	kvv_copy(&j->sysctl, &c->sysctl);
	clamp_ping_group_range(c, j);
	return 0;
}

/* The rootfs's bind in the plan: the BIND its ENTER follows. */
static ssize_t root_op(const struct mount_plan *mp)
{
	for (size_t i = 0; i + 1 < mp->n; i++)
		if (mp->ops[i].kind == MOUNT_OP_BIND && mp->ops[i + 1].kind == MOUNT_OP_ENTER &&
		    !strcmp(mp->ops[i].target, mp->ops[i + 1].target))
			return (ssize_t)i;
	return -1;
}

int ocirt_jail_idmap_root(struct ocirt_jail *j, int userns_fd, agentd_error *err)
{
	ssize_t i = root_op(&j->mounts);
	if (i < 0 || !j->mounts.source_fds || j->mounts.source_fds[i] < 0)
		return agentd_error_set(err, EBADF, "idmap the rootfs: its tree is not open "
						    "(mount_plan_open_sources first)");
	if (sys_mount_setattr_idmap(j->mounts.source_fds[i], userns_fd) < 0)
		return agentd_error_errno(err, errno, "idmap the rootfs %s",
					  j->mounts.ops[i].source);
	return 0;
}

int ocirt_jail_root_tree(const struct ocirt_jail *j)
{
	ssize_t i = root_op(&j->mounts);
	return i < 0 || !j->mounts.source_fds ? -1 : j->mounts.source_fds[i];
}

/* issue 16: rt-ids. Only the config's own binds: the plan's BIND (rbind) or DEV_NODE (bind)
 * of a config mount's source at its destination, whose tree the runtime opened. */
void ocirt_jail_idmap_binds(struct ocirt_jail *j, const struct ocirt_config *c, int userns_fd,
			    char **refused)
{
	const struct mount_plan *mp = &j->mounts;
	*refused = NULL;
	for (size_t i = 0; i < mp->n && mp->source_fds; i++) {
		const struct mount_op *op = &mp->ops[i];
		bool config_bind = false;
		if ((op->kind != MOUNT_OP_BIND && op->kind != MOUNT_OP_DEV_NODE) || !op->source ||
		    mp->source_fds[i] < 0)
			continue;
		for (size_t m = 0; m < c->n_mounts && !config_bind; m++)
			config_bind = c->mounts[m].bind &&
				      !strcmp(c->mounts[m].destination, op->target) &&
				      !strcmp(c->mounts[m].source, op->source);
		if (!config_bind || sys_mount_setattr_idmap(mp->source_fds[i], userns_fd) == 0)
			continue;
		char *was = *refused;
		*refused = xasprintf("%s%s%s (%s)", was ? was : "", was ? ", " : "", op->source,
				     strerror(errno));
		free(was);
	}
}

static bool below_or_at(const char *p, const char *dir)
{
	size_t n = strlen(dir);
	return !strcmp(dir, "/") || (!strncmp(p, dir, n) && (p[n] == '\0' || p[n] == '/'));
}

/* One mount point, made as root beneath the rootfs without following any of its links. */
static void make_point(int rootfd, const struct mount_op *op)
{
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", op->target + 1);
	char *slash = strrchr(parent, '/');
	const char *base = slash ? slash + 1 : parent;
	if (slash)
		*slash = '\0';
	int pfd = openat_beneath(rootfd, slash ? parent : ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
				 RESOLVE_NO_SYMLINKS);
	if (pfd < 0)
		return;
	if (op->kind == MOUNT_OP_DIR)
		(void)mkdirat(pfd, base, op->mode);
	else
		(void)mknodat(pfd, base, S_IFREG | op->mode, 0);
	close(pfd);
}

void ocirt_jail_make_mount_points(const struct ocirt_jail *j)
{
	ssize_t r = root_op(&j->mounts);
	if (r < 0)
		return;
	int rootfd = open(j->mounts.ops[r].source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return;
	for (size_t i = (size_t)r + 2; i < j->mounts.n; i++) {
		const struct mount_op *op = &j->mounts.ops[i];
		if (op->kind == MOUNT_OP_PIVOT)
			break;
		if (op->kind != MOUNT_OP_DIR && op->kind != MOUNT_OP_FILE)
			continue;
		/* only where the image's tree is, not in what an earlier mount covers */
		bool covered = false;
		for (size_t k = (size_t)r + 2; k < i && !covered; k++) {
			enum mount_op_kind kk = j->mounts.ops[k].kind;
			covered = kk != MOUNT_OP_DIR && kk != MOUNT_OP_FILE && kk != MOUNT_OP_PRIVATE &&
				  kk != MOUNT_OP_SYMLINK && below_or_at(op->target, j->mounts.ops[k].target);
		}
		if (!covered)
			make_point(rootfd, op);
	}
	close(rootfd);
}

void ocirt_jail_free(struct ocirt_jail *j)
{
	mount_plan_free(&j->mounts);
	seccomp_prog_free(&j->floor_seccomp);
	seccomp_prog_free(&j->config_seccomp);
	free(j->hostname);
	free(j->domainname);
	kvv_free(&j->sysctl);
	free(j->groups);
	memset(j, 0, sizeof(*j));
}

/* ---------------------------------------------------------------- child side, no malloc */
static int fail_what(char *what, size_t len, const char *step, int e)
{
	if (what && len) {
		size_t n = strlen(step);
		n = n < len - 1 ? n : len - 1;
		memcpy(what, step, n);
		what[n] = '\0';
	}
	return -e;
}

static int write_small(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	size_t n = strlen(text);
	ssize_t w = write(fd, text, n);
	int e = w < 0 ? errno : (size_t)w != n ? EIO : 0;
	close(fd);
	return -e;
}

/* linux.sysctl under the new namespaces' /proc/sys: names checked by the floor (no "/", no
 * ".."), dots become slashes. */
static int apply_sysctls(const struct ocirt_jail *j, char *what, size_t what_len)
{
	for (size_t i = 0; i < j->sysctl.n; i++) {
		char path[256] = "/proc/sys/";
		size_t n = strlen(path);
		const char *k = j->sysctl.v[i].key;
		for (; *k && n < sizeof(path) - 1; k++)
			path[n++] = *k == '.' ? '/' : *k;
		path[n] = '\0';
		int r = *k ? -ENAMETOOLONG : write_small(path, j->sysctl.v[i].value);
		if (r < 0)
			return fail_what(what, what_len, j->sysctl.v[i].key, -r);
	}
	return 0;
}

int ocirt_jail_apply_root(const struct ocirt_jail *j, char *what, size_t what_len)
{
	if (j->hostname && sethostname(j->hostname, strlen(j->hostname)) < 0)
		return fail_what(what, what_len, "sethostname", errno);
	if (j->domainname && setdomainname(j->domainname, strlen(j->domainname)) < 0)
		return fail_what(what, what_len, "setdomainname", errno);
	int r = apply_sysctls(j, what, what_len);
	if (r < 0)
		return r;
	if (j->mounts.n && (r = mount_plan_apply(&j->mounts, what, what_len)) < 0)
		return r;
	return 0;
}

static bool oom_score_adj_differs(int want)
{
	char cur[16] = "";
	int fd = open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, cur, sizeof(cur) - 1);
	if (fd >= 0)
		close(fd);
	return n <= 0 || atoi(cur) != want;
}

int ocirt_jail_set_oom_score_adj(const struct ocirt_jail *j)
{
	char buf[16];
	if (!j->has_oom_score_adj)
		return 0;
	snprintf(buf, sizeof(buf), "%d", j->oom_score_adj);
	return write_small("/proc/self/oom_score_adj", buf);
}

/* Before the ids change: dropping from the bounding set needs CAP_SETPCAP in effect. */
static int apply_bounding(const struct ocirt_jail *j)
{
	for (int cap = 0; cap < 64; cap++)
		if (!(j->cap_bounding & (1ull << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
		    errno != EINVAL)
			return -errno;
	return 0;
}

/* After: the sets exactly as the config gives them (KEEPCAPS kept permitted across the id
 * change; nothing outside the bounding set can be in them). */
static int apply_caps(const struct ocirt_jail *j)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2] = {
		{(uint32_t)j->cap_effective, (uint32_t)j->cap_permitted,
		 (uint32_t)j->cap_inheritable},
		{(uint32_t)(j->cap_effective >> 32), (uint32_t)(j->cap_permitted >> 32),
		 (uint32_t)(j->cap_inheritable >> 32)},
	};
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	for (int cap = 0; cap < 64; cap++)
		if ((j->cap_ambient & (1ull << cap)) &&
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			return -errno;
	return 0;
}

int ocirt_jail_apply_process(const struct ocirt_jail *j, char *what, size_t what_len)
{
	char buf[16];
	int r;
	if ((r = rlimit_apply(&j->rlimits)) < 0)
		return fail_what(what, what_len, "rlimits", -r);
	/* set by the runtime as host root before the clone (ocirt_jail_set_oom_score_adj) and
	 * inherited: here, in the container's /proc as its root, the file may be host root's
	 * (EACCES); written only where it still differs */
	if (j->has_oom_score_adj && oom_score_adj_differs(j->oom_score_adj)) {
		snprintf(buf, sizeof(buf), "%d", j->oom_score_adj);
		if ((r = write_small("/proc/self/oom_score_adj", buf)) < 0)
			return fail_what(what, what_len, "oom_score_adj", -r);
	}
	if ((r = apply_bounding(j)) < 0)
		return fail_what(what, what_len, "capability bounding set", -r);
	/* the ids keep the capabilities (KEEPCAPS), which capset then sets exactly */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return fail_what(what, what_len, "keepcaps", errno);
	if (syscall(SYS_setgroups, j->n_groups, j->groups) < 0)
		return fail_what(what, what_len, "setgroups", errno);
	if ((r = privs_set_ids(j->uid, j->gid, false)) < 0)
		return fail_what(what, what_len, "set ids", -r);
	if ((r = apply_caps(j)) < 0)
		return fail_what(what, what_len, "capabilities", -r);
	umask(j->umask);
	if (j->no_new_privs && (r = privs_no_new_privs()) < 0)
		return fail_what(what, what_len, "no_new_privs", -r);
	/* agentd's profile first, the config's stacked on it: the kernel runs both */
	if (j->floor_seccomp.active && (r = seccomp_apply(&j->floor_seccomp)) < 0)
		return fail_what(what, what_len, "agentd's seccomp", -r);
	if (j->config_seccomp.active && (r = seccomp_apply(&j->config_seccomp)) < 0)
		return fail_what(what, what_len, "linux.seccomp", -r);
	return 0;
}
