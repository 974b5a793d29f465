/* runtime.h: agentd as an OCI runtime (src/lib/runtime/): the runc-compatible command line
 * podman, containerd's runc shim, CRI-O and dockerd call in place of runc (`agentd oci ...`,
 * or the binary under a runtime name such as `agentd-runc`). Private to the runtime's files.
 *
 * Two halves meet here:
 *   - the container from config.json (config.c, floor.c, jail.c): the bundle's config
 *     parsed into struct ocirt_config, checked against agentd's hardening floor (a config
 *     asking for more than the floor is refused naming the JSON field, unless the operator
 *     allows it), then turned into what the container's init applies (struct ocirt_jail);
 *   - the verbs (main.c, state.c, create.c, exec.c, console.c, ...): each verb is a new
 *     process; a container's state lives under --root/<id>/ and survives them.
 *
 * Threat model as everywhere in agentd: the engine (caller) and the operator are trusted,
 * the bundle's config.json is the caller's, but the rootfs and everything the container's
 * processes do is hostile: the runtime never follows a path inside the rootfs without
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) or an fd held from before. */
#ifndef AGENTD_RUNTIME_H
#define AGENTD_RUNTIME_H

#include "common/common.h"
#include "lib/jail/jail.h"

#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

struct json_t;

#define OCIRT_VERSION "1.2.0"		/* the runtime-spec version `state` reports */

/* ---------------------------------------------------------------- config.c */
struct ocirt_mount {
	char *destination;		/* absolute, inside the container */
	char *type;			/* "bind", "proc", "tmpfs", "sysfs", "devpts", "mqueue",
					 * "cgroup", "cgroup2"... NULL = bind when options say so */
	char *source;			/* host path for binds (absolute, or bundle-relative made
					 * absolute), else the fs's source string */
	unsigned long flags;		/* MS_* from options (ro, nosuid, nodev, noexec, ...) */
	unsigned long propagation;	/* MS_PRIVATE / MS_SLAVE / MS_SHARED (| MS_REC), or 0 */
	bool bind;			/* "bind" or "rbind" in options (or type "bind") */
	bool recursive;			/* "rbind" */
	char *data;			/* the remaining options, comma-joined, for mount(2) */
	bool tmpcopyup;			/* rt-config: crun's "tmpcopyup" (podman's tmpfs): the
					 * image's content under destination copied onto the tmpfs */
};
struct ocirt_idmap {
	uint32_t container_id, host_id, size;
};
#define OCIRT_RLIMITS_MAX 16
struct ocirt_rlimit {
	int resource;			/* RLIMIT_* */
	struct rlimit value;
};
struct ocirt_process {
	bool terminal;
	unsigned console_rows, console_cols;	/* consoleSize, 0 = unset */
	uid_t uid;
	gid_t gid;
	gid_t *additional_gids;
	size_t n_additional_gids;
	mode_t umask;			/* (mode_t)-1 = unset */
	char **args;			/* NULL-terminated, at least one */
	char **env;			/* NULL-terminated "K=V" */
	char *cwd;			/* absolute */
	struct ocirt_rlimit rlimits[OCIRT_RLIMITS_MAX];
	int n_rlimits;
	/* capability sets as bit masks (bit n = capability n) */
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	/* rt-config: where each capability was in its set's array (index + 1, 0 = absent):
	 * the floor's refusals name process.capabilities.<set>[i]. Sets in the order
	 * bounding, effective, permitted, inheritable, ambient. */
	uint8_t cap_pos[5][64];
	bool no_new_privileges;
	int oom_score_adj;
	bool has_oom_score_adj;
	char *apparmor_profile;		/* recorded; refused when set and not "unconfined" */
	char *selinux_label;		/* recorded; refused when set */
};
struct ocirt_resources {
	int64_t memory_limit;		/* bytes, -1 = unset */
	int64_t memory_swap;		/* memory + swap bytes, -1 = unset */
	int64_t memory_reservation;
	int64_t pids_limit;		/* <= 0 = unset */
	uint64_t cpu_shares;		/* 0 = unset */
	int64_t cpu_quota;		/* microseconds per period, <= 0 = unset */
	uint64_t cpu_period;
	char *cpuset_cpus, *cpuset_mems;
	bool devices_deny_all;		/* the device cgroup's first rule denies everything */
};
/* Namespaces: which ones the config asks for, and for each a path to join (NULL: new). */
enum ocirt_ns {
	OCIRT_NS_PID, OCIRT_NS_NET, OCIRT_NS_IPC, OCIRT_NS_UTS, OCIRT_NS_MOUNT,
	OCIRT_NS_USER, OCIRT_NS_CGROUP, OCIRT_NS_TIME, OCIRT_NS_COUNT
};
struct ocirt_device {
	char *path;			/* inside the container */
	char type;			/* 'c', 'b', 'u', 'p' */
	int64_t major, minor;
	mode_t mode;
	uid_t uid;
	gid_t gid;
};
/* issue 16: rt-fix. hooks.<kind>, in ocirt_config.hooks[] */
enum ocirt_hook_kind {
	OCIRT_HOOK_PRESTART, OCIRT_HOOK_CREATE_RUNTIME, OCIRT_HOOK_CREATE_CONTAINER,
	OCIRT_HOOK_START_CONTAINER, OCIRT_HOOK_POSTSTART, OCIRT_HOOK_POSTSTOP,
};
struct ocirt_config {
	char *bundle;			/* absolute, as given */
	char *oci_version;
	char *root_path;		/* absolute (bundle-relative made absolute) */
	bool root_readonly;
	struct ocirt_process process;
	char *hostname, *domainname;
	struct ocirt_mount *mounts;
	size_t n_mounts;
	bool ns_wanted[OCIRT_NS_COUNT];
	char *ns_path[OCIRT_NS_COUNT];
	struct ocirt_idmap *uid_maps, *gid_maps;
	size_t n_uid_maps, n_gid_maps;
	agentd_kvv sysctl;
	agentd_strv masked_paths, readonly_paths;
	char *cgroups_path;		/* as given ("/a/b" or systemd "slice:prefix:name") */
	struct ocirt_resources resources;
	struct ocirt_device *devices;
	size_t n_devices;
	struct json_t *seccomp;		/* linux.seccomp as given (a new reference), or NULL */
	char *rootfs_propagation;
	bool has_hooks;			/* any hooks: refused unless allowed */
	/* issue 16: rt-fix. The hooks by kind (OCIRT_HOOK_*), run where the operator allows
	 * "hooks": prestart and createRuntime by create, poststart by start, poststop by delete;
	 * createContainer and startContainer (in the container's namespaces) are refused. */
	struct ocirt_hook {
		char *path;
		agentd_strv args, env;
		int64_t timeout;	/* seconds; 0: none */
	} *hooks[6];
	size_t n_hooks[6];
	agentd_kvv annotations;
	/* io.agentd.policy: what OCI cannot say, as an agentd policy fragment (network
	 * allowlist through agentd's egress proxy, audit labels); NULL when absent. */
	struct json_t *agentd_policy;
	/* rt-config: what ocirt_floor_apply decided, for the jail: agentd's seccomp profile
	 * stacked under the config's (false only when the operator allows no_seccomp); a user
	 * namespace the floor added (the config had none: uid_maps/gid_maps are the floor's). */
	bool floor_seccomp;
	bool userns_added;
	agentd_kvv audit_labels;	/* io.agentd.policy's labels */
	/* issue 16: rt-egress. io.agentd.policy's network mode "allowlist": the container gets
	 * a network namespace with only lo, agentd's egress proxy listening in it at
	 * 127.0.0.1:AGENTD_PROXY_PORT (egress.c) and the proxy variables in process.env. */
	bool egress;
	agentd_strv egress_allow;	/* the entries, checked by netpolicy_entry_parse */
};
/* Parse <bundle>/config.json (bounded: at most 4 MiB; opened O_NOFOLLOW below the bundle
 * dir). Errors name the JSON path ("process.capabilities.bounding[3]: CAP_FOO: unknown
 * capability"). *out is the caller's (ocirt_config_free). */
int ocirt_config_load(const char *bundle, struct ocirt_config **out, agentd_error *err);
/* The same from a JSON text (the fuzzer's entry): bundle is only used to make paths
 * absolute. */
int ocirt_config_parse(const char *bundle, const char *text, size_t len,
		       struct ocirt_config **out, agentd_error *err);
void ocirt_config_free(struct ocirt_config *c);
/* A `process.json` of `exec --process FILE` (the same object as config.json's process). */
int ocirt_process_load(const char *path, struct ocirt_process *out, agentd_error *err);
void ocirt_process_clear(struct ocirt_process *p);
/* rt-config: names for messages: "CAP_SYS_ADMIN" of 21 (and back, -1 when unknown);
 * "network" of OCIRT_NS_NET (the config's spelling). */
const char *ocirt_cap_name(int cap);
int ocirt_cap_from_name(const char *name);
const char *ocirt_ns_name(enum ocirt_ns ns);

/* ---------------------------------------------------------------- floor.c
 * agentd's hardening is the floor, not a suggestion. What the operator allows beyond it
 * comes from the operator, never from the pod: a root-owned file (OCIRT_OPERATOR_FILE, or
 * the one named by $AGENTD_RUNTIME_CONFIG in the runtime handler's environment), which may
 * in turn let a named annotation carry allowances (so a RuntimeClass-level admission policy,
 * not the pod author, sets it). */
#define OCIRT_OPERATOR_FILE "/etc/agentd/oci-runtime.json"
struct ocirt_allow {
	uint64_t caps;			/* capabilities allowed beyond the floor's set */
	bool devices;			/* linux.devices entries */
	bool host_namespaces;		/* joining a namespace of the host (pid 1's) */
	bool no_seccomp;		/* run without agentd's seccomp floor */
	bool hooks;
	bool sysctl;			/* sysctls outside the namespaced safe list */
	bool privileged_mounts;		/* binds of host /proc, /sys, /dev, devices, sockets */
	bool host_root;			/* rt-config: a uid/gid map that maps host id 0 */
};
/* rt-config: the user namespace the floor adds to a config without one: container ids
 * [0, OCIRT_USERNS_SIZE) onto host ids of a slot of its own (issue 16: rt-ids, userns.c):
 * the floor maps the range's first; create leases the container's and maps that. The range:
 * the first "agentd-runc:START:COUNT" of /etc/subuid (/etc/subgid), COUNT / SIZE slots,
 * else OCIRT_USERNS_SLOTS slots from OCIRT_USERNS_BASE. */
#define OCIRT_USERNS_BASE 1090519040u	/* 2^30 + 2^24: above the container backend's ids */
#define OCIRT_USERNS_SIZE 65536u
/* issue 16: rt-ids */
#define OCIRT_USERNS_SLOTS 4096u	/* the default range ends at 2^30 + 2^24 + 2^28 < 2^31 */
#define OCIRT_USERNS_DIR "/run/agentd/runc-ids"	/* the leases, one file per slot */
struct host_id_pool;
void ocirt_userns_pool(struct host_id_pool *p);
/* The allowances for c: the operator file's, plus an annotation's where the operator file
 * names it. 0, or -1 + err (an unreadable or malformed operator file: fail closed). */
int ocirt_allow_load(const struct ocirt_config *c, struct ocirt_allow *out, agentd_error *err);
/* Check c against the floor and the allowances: 0, or -EPERM with a message naming the
 * field and the allowance that would permit it. May tighten c (no_new_privileges on,
 * agentd's masked and read-only paths added, a user namespace added when none asked). */
int ocirt_floor_apply(struct ocirt_config *c, const struct ocirt_allow *allow,
		      agentd_error *err);
/* issue 16: rt-egress. The egress proxy's variables (HTTP_PROXY... at 127.0.0.1:
 * AGENTD_PROXY_PORT, as the container backend sets them) set in a NULL-terminated, malloc'd
 * "K=V" array (replacing a variable of the same name, else appended). */
void ocirt_proxy_env(char ***env);

/* issue 16: rt-gaps. The floor's oomScoreAdj for a process (the config's, or an exec's
 * process.json): a negative one raised to 0; the value asked when raised, else 0. */
int ocirt_floor_oom_score_adj(struct ocirt_process *p);

/* ---------------------------------------------------------------- jail.c
 * The container's confinement, prepared by the runtime process from a checked config and
 * applied by the container's init: mounts in a fresh mount namespace ending in a pivot into
 * the rootfs (create), then, after `start`, ids, capabilities, rlimits, no_new_privs,
 * seccomp (agentd's default profile stacked under the config's own), execve. */
struct ocirt_jail {
	struct mount_plan mounts;	/* the rootfs, config mounts, masks, /dev */
	struct seccomp_prog floor_seccomp;	/* agentd's default (unless allowed off) */
	struct seccomp_prog config_seccomp;	/* linux.seccomp compiled, or inactive */
	struct rlimit_set rlimits;
	char *hostname;
	char *domainname;		/* issue 16: rt-gaps: set in the new UTS namespace */
	agentd_kvv sysctl;
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;
	bool no_new_privs;
	int oom_score_adj;
	bool has_oom_score_adj;
	mode_t umask;
};
int ocirt_jail_prepare(const struct ocirt_config *c, struct ocirt_jail *j, agentd_error *err);
void ocirt_jail_free(struct ocirt_jail *j);
/* child, no malloc: in the new mount/user/pid/... namespaces with maps written: hostname,
 * domainname, sysctls, the mount plan (ends in the new root). 0 or -errno + what. */
int ocirt_jail_apply_root(const struct ocirt_jail *j, char *what, size_t what_len);
/* child, no malloc, just before execve (also for `exec`, after setns): rlimits, oom score,
 * groups and ids, capabilities, no_new_privs, seccomp. 0 or -errno + what. */
int ocirt_jail_apply_process(const struct ocirt_jail *j, char *what, size_t what_len);
/* rt-fix: host side, before the clone (create) or fork (exec): the process's oomScoreAdj on
 * the runtime itself, as host root, for the child to inherit. 0 or -errno. */
int ocirt_jail_set_oom_score_adj(const struct ocirt_jail *j);
/* For `exec`: the same confinement for another process of a running container (its own
 * process.json's ids, caps, rlimits, env; the container's seccomp). */
/* rt-config: after mount_plan_open_sources(&j->mounts, ...) and once the container's user
 * namespace has its maps (host side, before the init applies the plan): the rootfs's tree
 * idmapped through it, so the image's files owned by host root show as the container's
 * root (who can then make the mount points and files an image lacks: /etc/hostname...).
 * 0, or -1 + err (a filesystem without idmapped mounts: EINVAL). */
int ocirt_jail_idmap_root(struct ocirt_jail *j, int userns_fd, agentd_error *err);
/* issue 16: rt-ids. The same for the config's bind mounts (c's binds only: never the
 * default /dev nodes nor the masks), after the rootfs: on disk, what the container's root
 * writes there is stored as id 0, as the config's ids, so a volume passes from one
 * container to the next whatever slot each has. A read-only bind stays read-only (the
 * plan's attributes are set on the tree after). Each bind whose filesystem refuses is
 * left as it is and named in *refused (malloc'd, comma-separated, NULL when none). */
void ocirt_jail_idmap_binds(struct ocirt_jail *j, const struct ocirt_config *c, int userns_fd,
			    char **refused);
/* rt-config: host side, as root, before the clone: the mount points the plan needs in the
 * image's own tree (not in what its mounts cover), made beneath the rootfs without following
 * any of its links (openat2), so a container root that cannot write the image's root-owned
 * directories (no idmapped rootfs: overlayfs) still finds them. Best effort: whatever fails
 * here fails again in the init, named. */
void ocirt_jail_make_mount_points(const struct ocirt_jail *j);
int ocirt_jail_prepare_exec(const struct ocirt_config *c, const struct ocirt_process *p,
			    struct ocirt_jail *j, agentd_error *err);

/* issue 16: rt-overlay. The rootfs's tree fd in the plan (after mount_plan_open_sources), or
 * -1; async-signal-safe (the init puts a rebuilt rootfs in its place: dup3). */
int ocirt_jail_root_tree(const struct ocirt_jail *j);

/* ---------------------------------------------------------------- overlay.c (rt-overlay)
 * An engine's overlayfs rootfs rebuilt from its layers, each idmapped through userns_fd (the
 * container's user namespace, maps written): a detached overlay mount of the same lowerdirs,
 * upperdir, workdir and options, whose writes land in the engine's upperdir with the
 * container's ids (root as 0, as under runc). Host side, as root; root_uid/root_gid: the
 * host ids the container's root maps to. The mount's fd, or -1 + err (not an overlay, its
 * files already the container's, relative layer paths, a kernel before 6.13...): nothing
 * is left mounted either way. */
int ocirt_overlay_idmapped(const char *rootfs, int userns_fd, uid_t root_uid, gid_t root_gid,
			   agentd_error *err);

/* ---------------------------------------------------------------- state.c
 * <root>/<id>/state.json (the `state` verb's answer plus what later verbs need: the init's
 * pid and its start time (a recycled pid is never signalled), the bundle, the cgroup's
 * name, created time, the exec fifo's path). Written atomically (tmp + rename) under a
 * flock of <root>/<id>/lock held by every verb that changes it. */
#define OCIRT_DEFAULT_ROOT "/run/agentd-runc"

/* ---------------------------------------------------------------- main.c */
/* The command line (argv[0] is the verb's parent: "agentd oci" or "agentd-runc"); the exit
 * status runc would give (0, 1). */
int ocirt_main(int argc, char **argv);

#endif
