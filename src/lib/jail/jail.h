/* jail.h: the kernel mechanisms that confine a process, one file each (src/lib/jail/):
 * rlimits, environment, seccomp, Landlock, network namespace, cgroups, ids and capabilities,
 * fds, the container's mounts, and the pipeline that applies them in order. Each has a
 * parent-side X_prepare (may allocate, may fail with a message) and a child-side X_apply
 * (async-signal-safe, raw syscalls only). Includes only common/. */
#ifndef AGENTD_JAIL_H
#define AGENTD_JAIL_H

#include "common/common.h"
#include "common/kernel.h"

#include <pthread.h>
#include <sys/resource.h>


/* ---------------------------------------------------------------- rlimit.c */
#define RLIMIT_SET_MAX 16	/* issue 16: rt-config: every RLIMIT_* an OCI config may set */
struct rlimit_set {
	int n;
	int resource[RLIMIT_SET_MAX];
	struct rlimit value[RLIMIT_SET_MAX];
};
/* RLIMIT_CPU (ceil s, hard = soft+1), RLIMIT_NOFILE, RLIMIT_FSIZE (max_write_bytes),
 * RLIMIT_CORE 0; RLIMIT_NPROC is not used (per uid: shared by the process backends'
 * sandboxes): pids come from the cgroup, whose events name the limit that was hit. */
void rlimit_prepare(const agentd_limits *l, struct rlimit_set *out);
/* RLIMIT_CPU of rs set (or added) to cpu_ms, rounded up to whole seconds: the per-process
 * backstop of a sandbox's CPU budget is what remains of it. No malloc (an init's child). */
void rlimit_set_cpu(struct rlimit_set *rs, uint64_t cpu_ms);
int rlimit_apply(const struct rlimit_set *rs);	/* child: 0 or -errno */
/* A sandbox with a host uid of its own (container): the budgets the kernel counts per user
 * (and charges up to its user namespace's owner) get a per-sandbox cap: pending signals,
 * POSIX message queue bytes. */
#define SANDBOX_SIGPENDING 4096
#define SANDBOX_MSGQUEUE (800 * 1024)
void rlimit_per_user(struct rlimit_set *rs);
/* In the sandbox's user namespace, with its capabilities: lower /proc/sys/user's counts
 * for it (inotify instances and watches, namespaces of each type). 0, or -errno with
 * *failed the knob. No malloc. */
#define SANDBOX_INOTIFY_INSTANCES 64
#define SANDBOX_INOTIFY_WATCHES 16384
#define SANDBOX_NAMESPACES 64
int userns_limits_lower(const char **failed);

/* ---------------------------------------------------------------- env.c */
/* The environment a command sees: host env cleared, then PATH, HOME, TMPDIR, LANG (sane
 * values), then spec->environment, then cmd->env. NULL-terminated, malloc'd. */
char **env_prepare(const agentd_spec *spec, const agentd_kvv *extra, const char *home,
		 const char *tmpdir);
void env_free(char **envp);
/* Names that may never be set by policy (LD_PRELOAD, LD_LIBRARY_PATH...)? returns reason */
const char *env_name_forbidden(const char *name);

/* ---------------------------------------------------------------- seccomp.c */
struct seccomp_prog {
	void *filter;			/* struct sock_filter[], malloc'd */
	unsigned short len;
	bool active;			/* false: profile "none" (and no socket rules) */
	/* deny_inet_sockets with a JSON profile: the socket rules as a second, stacked filter;
	 * with profile "none": the only one (filter NULL). seccomp_apply installs both. */
	void *net_filter;
	unsigned short net_len;
};
struct seccomp_opts {
	const char *profile;		/* "default", "none", or path to OCI/Docker JSON */
	bool deny_inet_sockets;		/* no AF_INET/AF_INET6/AF_PACKET/AF_NETLINK sockets
					 * (backends without a network namespace, net none) */
	bool allow_namespaces;		/* container init needs unshare/mount before its own filter */
	bool deny_sysv_ipc;		/* no SysV IPC (backends without an IPC namespace) */
};
/* The default profile's variants: one program per combination of the three bools. */
#define SECCOMP_DEFAULT_VARIANTS 8
static inline unsigned seccomp_variant(const struct seccomp_opts *o)
{
	return (o->deny_inet_sockets ? 1u : 0) | (o->allow_namespaces ? 2u : 0) |
	       (o->deny_sysv_ipc ? 4u : 0);
}
static inline struct seccomp_opts seccomp_variant_opts(unsigned v)
{
	return (struct seccomp_opts){.profile = "default", .deny_inet_sockets = v & 1,
				     .allow_namespaces = v & 2, .deny_sysv_ipc = v & 4};
}
/* The category the sysv-ipc rules are reported under (not in seccomp_blocked_categories:
 * only the backends that set deny_sysv_ipc have them). */
#define SECCOMP_SYSV_IPC_CATEGORY "sysv-ipc"
/* Compile in the parent (libseccomp, exported to BPF). The default profile is a copy of a
 * program compiled at build time (seccomp_default_bpf.h); JSON profiles are compiled here. */
int seccomp_prepare(const struct seccomp_opts *o, struct seccomp_prog *out, agentd_error *err);
/* The default profile for o's variant (seccomp_variant), compiled now with
 * libseccomp (*filter malloc'd): what seccomp_gen writes into seccomp_default_bpf.h, and
 * what the tests compare the build-time copy with. */
int seccomp_compile_default(const struct seccomp_opts *o, void **filter, unsigned short *len,
			    agentd_error *err);
/* child: install with no_new_privs already set; 0 or -errno */
int seccomp_apply(const struct seccomp_prog *p);
void seccomp_prog_free(struct seccomp_prog *p);
/* Informational categories the default profile blocks (for sandbox caps). */
extern const char *const seccomp_blocked_categories[];
/* Probe: a filter really installs in a forked child. */
bool seccomp_probe(void);
/* issue 13: oci-runtime. seccomp_oci_emit.c: the default profile for o as the OCI
 * runtime-spec's linux.seccomp object (a jansson json_t *, the caller's), NULL + err. */
struct json_t;
struct json_t *seccomp_default_oci(const struct seccomp_opts *o, agentd_error *err);
/* issue 16: rt-config. seccomp_oci.c: compile an OCI/Docker profile already parsed (an OCI
 * config's linux.seccomp), as seccomp_prepare does a profile's path (plus the backend
 * floor's second filter for o). 0, or -1 + err naming the profile's JSON path. */
int seccomp_oci_prepare_json(struct json_t *profile, const struct seccomp_opts *o,
			     struct seccomp_prog *out, agentd_error *err);

/* ---------------------------------------------------------------- landlock.c */
struct landlock_rules {
	agentd_strv ro;			/* read + execute, files or dirs */
	agentd_strv rw;			/* read + write + execute + create/remove */
	bool deny_tcp;			/* handle TCP bind/connect (ABI >= 4) with no port allowed */
	bool scope_signals;		/* ABI >= 6: LANDLOCK_SCOPE_SIGNAL */
	bool scope_abstract_unix;	/* ABI >= 6: LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET */
};
/* Best ABI (0 if unavailable). */
int landlock_abi(void);
/* Create the ruleset fd; paths that do not exist are skipped (ro) or an error (rw).
 * Degradations (old ABI) are appended to warnings. */
int landlock_prepare(const struct landlock_rules *r, int *ruleset_fd, agentd_strv *warnings,
		     agentd_error *err);
int landlock_apply(int ruleset_fd);	/* child: landlock_restrict_self; 0 or -errno */
/* child, no malloc: ro paths get read+execute, rw paths everything (NULL-terminated
 * lists, missing paths skipped); TCP connect denied (deny_connect) and signals/abstract
 * sockets scoped when the ABI has them. Returns the ruleset fd or -errno. */
int landlock_ruleset_child(const char *const *ro, const char *const *rw, bool deny_connect,
			   bool scopes);
/* issue 12: names. child, no malloc: a ruleset that handles TCP connect only and allows
 * none, a layer on top of the filesystem one (network "none" of a sandbox whose network
 * can be switched). The ruleset fd, or -EOPNOTSUPP below ABI 4 (no network rules). */
int landlock_connect_ruleset_child(void);
/* The read-only system runtime every sandbox sees (/usr, /lib*, /bin, /sbin, and /etc
 * entry by entry from an allowlist — never shadow, gshadow, sudoers, ssh keys...). */
void landlock_system_ro_paths(agentd_strv *out);

/* ---------------------------------------------------------------- netns.c */
/* An empty network namespace (lo up) made by a second thread, as root only: start it,
 * build the rest of the sandbox, then finish (the namespace's fd, or -1 + err) or cancel.
 * The init is cloned from inside it with netns_enter_for_clone/netns_leave_after_clone. */
struct netns_maker {
	pthread_t thread;
	int fd;
	int err;
	bool started;
};
int netns_make_start(struct netns_maker *m);	/* 0, or -1 when not available */
int netns_make_finish(struct netns_maker *m, agentd_error *err);
void netns_make_cancel(struct netns_maker *m);
int netns_enter_for_clone(int netfd, int *saved);	/* 0 or -1 + errno */
void netns_leave_after_clone(int saved);
int netns_loopback_up(void);	/* in the caller's namespace; 0 or -errno */
/* A TCP listener on 127.0.0.1:port in the caller's network namespace (a socket's namespace
 * is fixed when it is made), sent with msg over sock and not kept: nothing in the
 * namespace can accept on it. 0 or -errno; no malloc. */
int netns_listener_send(int sock, uint16_t port, const void *msg, size_t len);
/* The same, and the listener kept in *keep when sent (a durable init's copy for its next
 * host), unless keep is NULL. */
int netns_listener_send_keep(int sock, uint16_t port, const void *msg, size_t len, int *keep);
/* An unbound TCP socket of the caller's network namespace, sent with msg over sock and not
 * kept (the host's way in at a port: it connects it). 0 or -errno; no malloc. */
int netns_socket_send(int sock, const void *msg, size_t len);
/* issue 16: rt-egress. Inside the network namespace netfd (entered on this thread and left):
 * the interfaces but lo named in others (", "-separated, cut to len), lo brought up, a TCP
 * listener made on 127.0.0.1:port. The listener's fd, or -errno: -EEXIST when the namespace
 * has an interface but lo (never served: a way out around the proxy). */
int netns_loopback_listener(int netfd, uint16_t port, char *others, size_t len);
/* issue 16: rt-egress. A detached sysfs (fsmount, attr MOUNT_ATTR_*) of the network namespace
 * netfd, made by its owner (host root) for a container whose user namespace does not own it
 * (its own mount of sysfs there is EPERM); move_mount attaches it. fd or -errno. */
int netns_sysfs_tree(int netfd, uint64_t attr);

/* ---------------------------------------------------------------- platform.c */
/* Append "; <message>" to p->reasons (what a probe found missing); cut when full. */
/* platform_cache.c: a verdict of the last minute for this euid, cgroup, boot and build
 * (*key_out: the key to store under, malloc'd); store writes one. */
bool platform_cache_load(agentd_platform *p, char **key_out);
void platform_cache_store(const agentd_platform *p, const char *key);
void platform_reason(agentd_platform *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* fn(arg) in a child that shares our memory while we wait (clone CLONE_VM | CLONE_VFORK,
 * as posix_spawn does), so no page table is copied: most of what a fork costs, several ms
 * under a paravirtualised MMU. ns_flags adds namespaces for the child (CLONE_NEWUSER). fn
 * makes only async-signal-safe calls and reports through memory it shares with us. Returns
 * the child's wait status, or -errno when it could not start. Sanitizer builds fork (their
 * runtime cannot follow such a child); fn then reports through a jail_shared_page. */
int jail_light_child(int (*fn)(void *), void *arg, int ns_flags);
/* One zeroed page shared with children, fork or not; NULL on failure. */
void *jail_shared_page(void);
void jail_shared_page_free(void *page);

/* ---------------------------------------------------------------- cgroup/ */
struct cgroup;	/* one interface over v1 (incl. hybrid) and v2 */
struct cgroup_events {
	uint64_t oom_kills;		/* v2 memory.events oom_kill, v1 memory.oom_control oom_kill */
	uint64_t pids_max_hits;		/* pids.events max */
};
/* Create agentd/<name> under each needed hierarchy, apply limits (memory + no swap,
 * pids.max, cpu weight/quota). NULL + err when cgroups are unusable. */
struct cgroup *cgroup_create(const char *name, const agentd_limits *l, agentd_error *err);
/* Does l ask for a limit only a cgroup enforces (memory, pids, cpu weight/quota)? */
bool cgroup_limits_needed(const agentd_limits *l);
/* child: join (writes "0" to pre-opened cgroup.procs fds); 0 or -errno */
int cgroup_attach_self(const struct cgroup *cg);
int cgroup_attach_pid(const struct cgroup *cg, pid_t pid);
/* true when new cgroups span v1 hierarchies, which have no CLONE_INTO_CGROUP: a child is
 * moved in by a write anyway, so it may be cloned first and the cgroup made meanwhile. */
bool cgroup_join_after_clone(void);
/* v2 only: fd of the cgroup dir for clone3(CLONE_INTO_CGROUP), else -1. On a hybrid host
 * this is the unified (tracking) cgroup: the child must still cgroup_attach_self() to join
 * the v1 hierarchies that carry the limits. */
int cgroup_dir_fd(const struct cgroup *cg);
/* true when CLONE_INTO_CGROUP(cgroup_dir_fd) alone puts a child in every hierarchy (pure
 * v2), so the child may skip cgroup_attach_self. */
bool cgroup_clone_into_complete(const struct cgroup *cg);
/* A kill unit: the child cgroup name of parent (a sandbox's), for one exec or background
 * process, in the hierarchies its kill (cgroup2 cgroup.kill, else the v1 freezer), its
 * accounting (cpu, peak memory) and its limit events (memory, pids) need; the sandbox's
 * limits, on parent, hold for all its units together. Events of a controller the unit is
 * not in (a v2 controller not delegated to children) are parent's. The command joins with
 * cgroup_attach_self on the fds of cgroup_procs_fds; cgroup_destroy kills and removes it.
 * parent must outlive it. NULL + err. */
struct cgroup *cgroup_create_child(const struct cgroup *parent, const char *name,
				   agentd_error *err);
/* An existing kill unit name of parent (made by an earlier owner of a durable sandbox),
 * as cgroup_create_child's; NULL + err when it is not there. */
struct cgroup *cgroup_open_child(const struct cgroup *parent, const char *name,
				 agentd_error *err);
/* Its name (a kill unit's "u<n>", a sandbox's id). */
const char *cgroup_name(const struct cgroup *cg);
/* Make an ended unit ready for another command: 0 when it is empty (its peak memory reset;
 * its cpu and event counters go on, read against a baseline), -EBUSY while it is not. */
int cgroup_unit_reset(struct cgroup *cg);
/* Its cgroup.procs fds (O_WRONLY, borrowed), at most max: how many. */
int cgroup_procs_fds(const struct cgroup *cg, int *fds, int max);
/* Reattach to an existing agentd/<name> (daemon restart); limits are left as they are.
 * NULL + err when it does not exist. */
struct cgroup *cgroup_open(const char *name, agentd_error *err);
/* SIGKILL every process in the cgroup (v2 cgroup.kill, else freeze + kill + thaw), wait
 * until empty (bounded). */
int cgroup_kill_all(struct cgroup *cg);
bool cgroup_is_populated(const struct cgroup *cg);
int cgroup_freeze(struct cgroup *cg, bool frozen, agentd_error *err);
/* Frozen (cgroup.freeze 1, or the v1 freezer not THAWED): a suspended sandbox's. */
bool cgroup_is_frozen(const struct cgroup *cg);
/* pid (of our namespace) is a member of cg itself (not of a child). */
bool cgroup_has_pid(const struct cgroup *cg, pid_t pid);
/* The names of cg's child cgroups (its kill units), pushed to names; 0 or -errno. */
int cgroup_children(const struct cgroup *cg, agentd_strv *names);
int cgroup_read_usage(const struct cgroup *cg, agentd_usage *u);
/* CPU time of everything the cgroup ever held (v2 cpu.stat usage_usec, v1 cpuacct.usage),
 * in ms: 0, or -ENOTSUP without CPU accounting. */
int cgroup_cpu_ms(const struct cgroup *cg, uint64_t *ms);
int cgroup_read_events(const struct cgroup *cg, struct cgroup_events *ev);
/* Free without touching the cgroup (one cgroup_open only looked at). Safe on NULL. */
void cgroup_close(struct cgroup *cg);
/* Kill all, rmdir everywhere, free. Safe on NULL. 0 when every dir is gone (nothing of
 * it can run any more), else -errno (EBUSY: processes remained). */
int cgroup_destroy(struct cgroup *cg);
/* Fill platform cgroup fields (version, hybrid, controllers, writable). */
void cgroup_probe(agentd_platform *p);
/* Remove leftover agentd cgroups whose processes are gone (after a crash). Cgroups held by
 * a live struct cgroup (of any process: each holds a flock on its dir) are left alone. */
void cgroup_gc(void);
/* issue 13: oci-runtime */
/* cgroup_open of a cgroup an OCI runtime made (its cgroupsPath /agentd/<name>): on a hybrid
 * host without the unified hierarchy, so its kill units are v1 ones a runtime can put an
 * exec in. */
struct cgroup *cgroup_open_runtime(const char *name, agentd_error *err);
/* A kill unit of such a cgroup as `runc exec --cgroup` values: "ctrl:<name>" per v1
 * controller, or "<name>" on cgroup v2; 0 or -ENOTSUP. */
int cgroup_runtime_paths(const struct cgroup *unit, agentd_strv *out);
/* issue 13: oci-engine */
/* SIGKILL every process of cg but keep (a container's init), frozen meanwhile so nothing
 * forks past the kill; 0 once only keep is left, -ETIMEDOUT. */
int cgroup_kill_all_but(struct cgroup *cg, pid_t keep);

/* ---------------------------------------------------------------- privs.c */
struct privs_plan {
	bool switch_user;		/* setgroups(0)+setresgid+setresuid to uid/gid */
	uid_t uid;
	gid_t gid;
	bool drop_caps;			/* clear bounding, ambient, inheritable, permitted, effective */
};
/* parent: uid/gid commands run as when agentd is root (spec run_as or 65534), every
 * capability dropped. */
void privs_prepare(const agentd_spec *spec, struct privs_plan *out);
int privs_apply(const struct privs_plan *p);	/* child: 0 or -errno */
/* child: setgroups(0) (when drop_groups) + setresgid + setresuid as raw syscalls, safe in a
 * clone3 child of a multithreaded process. 0 or -errno. */
int privs_set_ids(uid_t uid, gid_t gid, bool drop_groups);
int privs_no_new_privs(void);			/* child */

/* ---------------------------------------------------------------- signals.c */
/* parent: the signals this process ignores (a bit per signal, bit 0 = signal 1). */
uint64_t ignored_signals(void);
/* child: empty the signal mask and reset the ignored signals to their defaults (handlers
 * are reset by execve), which is what a command expects. */
void signals_reset(uint64_t ignored);

/* ---------------------------------------------------------------- fds.c */
/* child: close every fd >= lowfd (close_range, /proc/self/fd fallback). */
int fds_close_from(int lowfd);
/* One message with nfds (1..FDS_SEND_MAX) fds attached (SCM_RIGHTS, no SIGPIPE); 0 or -1 +
 * errno. No malloc. */
#define FDS_SEND_MAX 10
int fds_send(int sock, const void *msg, size_t len, const int *fds, int nfds);
/* child: stdio to /dev/null, each mv[i].fd to exactly mv[i].to (CLOEXEC), every other fd
 * from 3 up closed. *moved_report (may be NULL), an fd among mv, follows its move. 0 or
 * -errno. */
#define FDS_PLACE_MAX 6
struct fd_move {
	int fd, to;
};
int fds_place(const struct fd_move *mv, int n, int close_from, int *moved_report);

/* ---------------------------------------------------------------- pipeline.c
 * The two ordered step lists, side by side (nsjail's containProc): the process backends'
 * child before its execve (jail_apply) and the container's init, PID 1 of its namespaces,
 * before it serves (jail_init_apply). Each fails with -errno and the failed step in what. */
struct jail_plan {
	struct rlimit_set rlimits;
	struct privs_plan privs;
	int landlock_fd;		/* -1 = no Landlock */
	struct seccomp_prog seccomp;
	agentd_strv rw_check;		/* paths that must be writable after the uid switch */
};
void jail_plan_init(struct jail_plan *p);
void jail_plan_free(struct jail_plan *p);
/* child: the process backends' steps in order (rlimits, ids, writable-path check,
 * no_new_privs, Landlock, seccomp). 0, or -errno with the failed step in what. */
int jail_apply(const struct jail_plan *p, char *what, size_t what_len);

/* The container init's confinement, prepared by the host before the clone (the init only
 * reads it). */
struct jail_init_plan {
	uid_t uid;
	gid_t gid;			/* its ids in the user namespace (the only ones mapped) */
	bool set_groups;		/* root: drop supplementary groups inside */
	uid_t host_uid;			/* for messages */
	const char *name;		/* what /proc shows of it ("init") */
	bool pdeathsig;			/* SIGKILL when the cloning *thread* exits (a one-shot
					 * run's); a persistent init ends on its control
					 * socket's EOF instead: it belongs to a process */
	uint64_t ignored;		/* signals the owner ignores, reset */
	const struct mount_plan *mp;
	const char *const *rw_check;	/* policy paths its user must be able to write */
	const char *hostname;
	bool loopback;			/* bring lo up (a network namespace of its own) */
	int listener_sock;		/* >= 0: hand a TCP listener on 127.0.0.1:listener_port */
	uint16_t listener_port;		/* to the host over this socket, with listener_msg */
	const void *listener_msg;
	size_t listener_msg_len;
	int placed_fd;			/* >= 0: wait for a byte (the host moved it into every
					 * cgroup), then a cgroup namespace of its own */
	int placed_wr;			/* the host's end: closed here */
	int report_fd;			/* where failures are reported; among place[] */
	struct fd_move place[FDS_PLACE_MAX];	/* fds it keeps, at fixed numbers */
	int nplace;
	int close_from;			/* every other fd from 3 up is closed */
	const char *const *ll_ro;	/* Landlock: read-only and writable paths */
	const char *const *ll_rw;
	bool ll_deny_connect;		/* TCP connect (the namespace is empty: bind stays) */
	int ll_slot;			/* the ruleset's fd number, for its commands */
	const struct seccomp_prog *sc;
	/* issue 12: names */
	int ll_net_slot;		/* >= 0: landlock_connect_ruleset_child's there too (a
					 * network that can be switched: ll_deny_connect is
					 * then off, commands of mode "none" add this layer) */
	/* issue 13: img-build */
	int keep_slot;			/* > 2: the mount plan's kept directory (an image root's
					 * upper layer) stays open at this number (< close_from),
					 * for the host to reach through /proc/PID/fd */
};
struct jail_init_state {
	int report_fd;			/* where it is now */
	bool landlock;			/* the ruleset is in ll_slot */
	bool landlock_net;		/* issue 12: the connect ruleset is in ll_net_slot */
};
/* 0; or -errno with what (empty: the host gave up and reports why itself). */
int jail_init_apply(const struct jail_init_plan *p, struct jail_init_state *st, char *what,
		    size_t what_len);

/* ---------------------------------------------------------------- mounts/
 * The container's fresh root, bubblewrap style: mount_plan_prepare turns a spec into an
 * ordered list of small operations (parent: may allocate, validates, names the bad path);
 * mount_plan_apply replays them in the child with syscalls only and pivots into the
 * result. Data first, then one loop that acts on it. */
enum mount_op_kind {
	MOUNT_OP_PRIVATE,	/* make target and everything below it MS_PRIVATE */
	MOUNT_OP_TMPFS,		/* tmpfs at target: flags (MS_*), data = options */
	MOUNT_OP_DIR,		/* mkdir (mode), then chown to uid/gid unless (uid_t)-1 */
	MOUNT_OP_FILE,		/* create with data/data_len (empty: a mount point) */
	MOUNT_OP_COPY,		/* create (mode) with data_len bytes of the pack source at offset */
	MOUNT_OP_SYMLINK,	/* target -> data */
	MOUNT_OP_BIND,		/* recursive bind source -> target, then attr_set */
	MOUNT_OP_DEV_NODE,	/* bind a host character device onto an empty file */
	MOUNT_OP_PROC,		/* a fresh proc (the caller's pid namespace) */
	MOUNT_OP_DEVPTS,	/* a new devpts instance, data = options */
	MOUNT_OP_MASK_FILE,	/* /dev/null over a file */
	MOUNT_OP_MASK_DIR,	/* an empty read-only tmpfs over a directory */
	MOUNT_OP_SET_ATTR,	/* mount_setattr(target, attr_set), recursive with MOUNT_OPF_RECURSIVE */
	MOUNT_OP_ENTER,		/* chdir into the new root: later targets are relative to it */
	MOUNT_OP_PIVOT,		/* pivot_root(".", "."), detach the old root, chdir("/") */
	/* issue 12: snapshots */
	MOUNT_OP_OVERLAY,	/* attach the lower tree (its source fd) at source, then an
				 * overlay at target, data = its options */
	/* issue 16: rt-config */
	MOUNT_OP_FS,		/* mount a filesystem of type source (sysfs, mqueue, cgroup2...)
				 * at target: flags (MS_*), data = options */
};
#define MOUNT_OPF_SOURCE_IN_ROOT 0x1	/* source is a path in the new root, not on the host */
#define MOUNT_OPF_RECURSIVE 0x2		/* SET_ATTR applies to the whole tree */
#define MOUNT_OPF_OPTIONAL 0x4		/* a missing target is skipped (/proc masks) */
#define MOUNT_OPF_RESOLVE 0x8		/* the target lies in a host tree: resolve it in the new
					 * root without following symlinks (openat2) */
#define MOUNT_OPF_POLICY 0x10		/* the source is the policy's (it may lie in a tree a
					 * sandbox can write): reached as the sandbox's user */
/* issue 13: img-root */
#define MOUNT_OPF_LAYER 0x20		/* BIND of an image layer: its source fd is the caller's
					 * (mount_plan_set_layers); without one the plan fails */
/* issue 13: img-build */
#define MOUNT_OPF_KEEP 0x40		/* DIR: the applier keeps an O_PATH fd of it (an image
					 * root's upper layer, for the host to commit) */
/* issue 16: rt-config */
#define MOUNT_OPF_EMPTY_FALLBACK 0x80	/* FS: where the kernel refuses it (EPERM: a namespace
					 * owned by another user namespace), an empty read-only
					 * tmpfs in its place */
/* issue 16: rt-gaps */
#define MOUNT_OPF_COPYUP 0x100		/* TMPFS over a directory of the new root: starts with
					 * a copy of what the directory held (copyup.c) */
struct mount_op {
	enum mount_op_kind kind;
	unsigned opflags;		/* MOUNT_OPF_* */
	char *source;			/* host path (BIND, DEV_NODE, MASK_FILE; COPY: the pack) */
	char *target;			/* absolute; in the new root once ENTER has run */
	char *data;			/* FILE content, SYMLINK target, mount options */
	size_t data_len;		/* of data; COPY: of the content */
	uint64_t offset;		/* COPY: where its content starts in the pack */
	unsigned long flags;		/* MS_* of TMPFS, PROC, DEVPTS, MASK_DIR */
	uint64_t attr_set;		/* MOUNT_ATTR_* of BIND, DEV_NODE, MASK_FILE, SET_ATTR */
	mode_t mode;
	uid_t uid;
	gid_t gid;
};
struct mount_plan {
	struct mount_op *ops;
	size_t n, cap;
	char *base;			/* host dir the scratch tmpfs covers in the private namespace */
	char *cache;			/* the cache variant used (NULL: none) */
	char *pack;			/* its etc.pack, the content of the COPY ops, or NULL */
	char *warning;			/* why the cache was not used (for a log), or NULL */
	/* Per op, a detached clone (open_tree) of its host source made by the privileged
	 * side, or -1 (mount_plan_open_sources); NULL when none was opened. */
	int *source_fds;
	int pack_fd;			/* with source_fds: the pack, opened by the same, or -1 */
};
struct mount_plan_opts {
	uid_t sandbox_uid;		/* owner of the workdir: ids INSIDE the namespace, mapped */
	gid_t sandbox_gid;
	const char *hostname;		/* /etc/hostname, /etc/hosts; NULL = "agentd" */
	bool network_none;		/* resolv.conf says "nameserver 127.0.0.1"; else the host's */
	/* Host directory (root-owned, created 0711) where the parent keeps the allowlisted
	 * /etc files' content in one file (etc.pack), one variant per fingerprint of them:
	 * the init copies each from there into its tmpfs root, so no mount shows a host path
	 * of agentd's. NULL = each file a read-only bind of its host path instead. */
	const char *cache_dir;
	const char *base_dir;		/* NULL = the first of /tmp, /mnt, ... clear of every source */
	/* issue 12: snapshots. The scratch's workdir and tmp are overlays: their upper layers
	 * on the scratch, their lower ones trees the caller gives (mount_plan_set_lowers). */
	bool overlay_scratch;
	/* issue 13: img-root. > 0: the root is an image, an overlay of that many layers (trees
	 * the caller gives: mount_plan_set_layers) under a skeleton of the plan's own mount
	 * points and /etc files, in place of the host's runtime; writable_root: with its upper
	 * layer on the scratch (max_write_bytes), else read-only. */
	size_t image_layers;
	bool writable_root;
};
/* Parent side: validate the spec's paths and build the ordered operations. Errors name
 * the JSON path and the host path ("bind_mounts[1].target: /proc/x: would shadow /proc"). */
int mount_plan_prepare(const agentd_spec *spec, const struct mount_plan_opts *o,
		       struct mount_plan *plan, agentd_error *err);
void mount_plan_free(struct mount_plan *plan);	/* safe on a zeroed or half-built plan */
/* Parent side, with the privileges of the caller (before the clone): every host source of
 * a bind as a detached mount tree (open_tree(OPEN_TREE_CLONE)), attached by the child with
 * move_mount, so the sandbox's own uid never has to traverse the host path to agentd's own
 * sources (nor to the cache's pack, opened once: in a state dir below a 0700 directory).
 * The policy's sources are reached with this thread's filesystem ids set to the sandbox's
 * host uid/gid and no supplementary groups: no further than the sandbox's user could,
 * through whatever a sandbox may have planted on the way. Where the kernel or the caller cannot (ENOSYS,
 * EPERM when unprivileged) the child binds by path as before; a source that cannot be
 * opened is left to the child, whose error names the mount. */
void mount_plan_open_sources(struct mount_plan *plan, uid_t uid, gid_t gid);
/* Child side (no malloc, no stdio): in a fresh mount namespace, with CAP_SYS_ADMIN in the
 * user namespace owning it, id maps written (the workdir is chowned), in the pid namespace
 * /proc is for. Ends in the new root, cwd "/", root read-only, umask as it was. On failure
 * returns -errno with the failing operation in what ("bind /usr"). */
int mount_plan_apply(const struct mount_plan *plan, char *what, size_t what_len);
/* issue 13: img-build. The same; *kept: the O_PATH fd of the plan's MOUNT_OPF_KEEP
 * directory, else -1. */
int mount_plan_apply_keep(const struct mount_plan *plan, char *what, size_t what_len,
			  int *kept);
/* issue 16: rt-config. Append an operation (zeroed, target copied, uid/gid -1) to a plan
 * built by hand (the OCI runtime's, from a config.json). */
struct mount_op *mount_plan_push(struct mount_plan *plan, enum mount_op_kind k,
				 const char *target);
/* src's operations moved to the end of dst (src left empty). */
void mount_plan_append(struct mount_plan *dst, struct mount_plan *src);
/* The host directory a scratch tmpfs may cover in the private namespace: want, or the first
 * of /tmp, /mnt, ... with no bind source of body in or above it. malloc'd, or NULL + err. */
char *mount_plan_choose_base(const struct mount_plan *body, const char *want,
			     agentd_error *err);
/* One line per operation (tests, debugging). */
void mount_plan_describe(const struct mount_plan *plan, FILE *out);
/* issue 12: snapshots. With overlay_scratch, after mount_plan_open_sources: the detached
 * trees (taken) the workdir's and tmp's overlays have as lower layers. */
void mount_plan_set_lowers(struct mount_plan *plan, const int lowers[2]);
/* issue 13: img-root. With image_layers, after mount_plan_open_sources: the layers' detached
 * trees (taken, bottom first, n == image_layers). */
void mount_plan_set_layers(struct mount_plan *plan, const int *layers, size_t n);

/* ---------------------------------------------------------------- idmap.c (issue 12)
 * A user namespace (fd, or -errno) mapping inner to host_uid/host_gid and nothing else,
 * for idmapped mounts only (no process stays in it). Needs CAP_SETUID/CAP_SETGID. */
int idmap_userns_new(uid_t inner, uid_t host_uid, gid_t host_gid);
/* A detached clone of dir_fd/name's mount, idmapped by userns_fd, with MOUNT_ATTR_* attrs
 * added: its files show with the ids userns maps their on-disk ids to. fd or -errno. */
int idmap_tree(int dir_fd, const char *name, int userns_fd, uint64_t attrs);

#endif
