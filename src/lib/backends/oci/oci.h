/* oci.h: what the oci backend's files share (src/lib/backends/oci/): the backend over real
 * OCI runtimes and engines (oci.c), its drivers (runtime.c: runc, crun; engine.c: docker,
 * podman), the container model built from a spec (config.c) and the cgroup read back.
 * Private to them.
 *
 * One backend, canonical name "oci", aliases docker, podman, runc, crun. The name the caller
 * used picks the driver (agentd_backend_requested_name); plain "oci" takes the first usable
 * runtime (runc, crun), then the first usable engine (podman, docker). */
#ifndef AGENTD_OCI_H
#define AGENTD_OCI_H

#include "lib/backends/backends.h"

#include <pthread.h>
#include <sys/types.h>

#define OCI_UID_NOBODY 65534
#define OCI_TMPFS_MIN (1u << 20)	/* a tmpfs smaller than this is not worth having */

/* ---------------------------------------------------------------- config.c
 * The container as agentd wants it, from a spec, before any driver sees it: what both
 * kinds of driver apply (a runtime as config.json, an engine as CLI flags). */
struct oci_mount {
	char *source;			/* host path (binds), NULL for tmpfs */
	char *target;			/* path inside */
	bool readonly;
	bool tmpfs;
	uint64_t tmpfs_bytes;		/* tmpfs: size= */
};
struct oci_config {
	char *name;			/* container id: "agentd-<sandbox id>" */
	char *cgroup_name;		/* agentd/<cgroup_name> in every hierarchy: "oci-<id>" */
	uid_t uid;			/* run_as, else OCI_UID_NOBODY (0: uid 0, no caps) */
	gid_t gid;
	char *workdir;			/* the spec's */
	char **env;			/* "K=V", NULL-terminated: the spec's environment */
	/* The root: NULL, the host runtime's read-only binds in mounts; else an image's
	 * layers (host dirs, bottom first), stacked by an overlay a runtime driver mounts in
	 * its create's private mount namespace (rootfs_layers). */
	char *rootfs;
	char **layers;
	size_t n_layers;
	/* writable_root: the overlay's upper layer (on the private root's tmpfs, sized
	 * root_bytes) stays writable rather than the root being mounted read-only. */
	bool writable_root;
	uint64_t root_bytes;
	char *image_ref;		/* spec->image for an engine's own store, or NULL */
	struct oci_mount *mounts;	/* binds of the policy, host runtime, tmpfs /tmp, workdir */
	size_t n_mounts;
	/* Network: NULL = none (an empty network namespace of the runtime's), else the path
	 * of the agentd-made namespace (/proc/<agentd>/fd/N) that carries the egress listener
	 * for allowlist. An engine always gets --network=none. */
	char *netns_path;
	uint16_t proxy_port;		/* allowlist: the listener's port on the netns's lo */
	const agentd_limits *limits;	/* the spec's: memory (= swap), cpu, pids, rlimits */
	/* agentd's seccomp profile (or the spec's JSON) as OCI JSON, NULL = "none" */
	char *seccomp_json;
};
/* cfg from spec for sandbox id; lease: its image (NULL: the host runtime), whose config's
 * Env, WorkingDir and User are defaults the spec overrides; netns_path and proxy_port as
 * made by the caller. 0 or -1 + err. */
int oci_config_build(const agentd_spec *spec, const char *id, const agentd_image_lease *lease,
		     const char *netns_path, uint16_t proxy_port, struct oci_config *cfg,
		     agentd_error *err);
/* The image's Env entries the spec's environment does not set, into kv (defaults). */
void oci_image_env(const agentd_spec *spec, const agentd_image_lease *lease, agentd_kvv *kv);
/* Where a sandbox on an image has its init: the host's tini-static, bound read-only. */
#define OCI_IMAGE_INIT "/.agentd-init"
void oci_config_free(struct oci_config *cfg);
/* The runtime-spec config.json of cfg (process: the long-lived init argv), malloc'd. */
char *oci_config_json(const struct oci_config *cfg, char *const *init_argv, agentd_error *err);

/* ---------------------------------------------------------------- the container */
struct oci_driver;
struct oci_ctr {
	const struct oci_driver *drv;
	void *drv_priv;			/* the driver's own state of this container */
	char *dir;			/* <work_root>/<id>: bundle, state, scratch */
	struct oci_config cfg;
	struct cgroup *cg;		/* read back after create (usage, limits, freezing) */
	pid_t init_pid;			/* its pid 1 in our pid namespace, 0 unknown */
	int root_fd;			/* O_PATH of its root, taken before anything ran; -1 */
	int workdir_fd;			/* its workdir, then too; -1 */
	int netns_fd;			/* the agentd-made network namespace, -1 */
	agentd_proxy *proxy;		/* allowlist: serving our listener */
	pthread_mutex_t lock;
	bool suspended;
	uint64_t next_exec;		/* kill unit numbers */
	uint64_t cpu_ms;		/* of all its execs, where the cgroup cannot say */
	agentd_image_lease *lease;	/* spec->image: held (its use lock) until destroy */
};

/* One command inside, as a driver turns it into a host command. */
struct oci_exec {
	char *const *argv;
	char *const *envp;		/* complete: spec env + command env */
	const char *cwd;
	uid_t uid;
	gid_t gid;
	bool tty;
	/* The kill unit the command must run in (a child cgroup of c->cg), or NULL when the
	 * driver cannot place it (drv->exec_in_unit false). */
	const struct cgroup *unit;
	agentd_strv unit_paths;		/* "ctrl:u<n>" per hierarchy (runc exec --cgroup) */
	char *file;			/* set by exec_argv: a file of ours the host command
					 * reads (process.json), removed after it (malloc'd) */
};

/* config.c: x as the runtime-spec's process object (runc exec -p): the container's
 * process settings (no capabilities, no_new_privs, rlimits) with x's argv, env, cwd, user. */
char *oci_process_json(const struct oci_config *cfg, const struct oci_exec *x, agentd_error *err);

/* ---------------------------------------------------------------- drivers */
struct oci_probe {
	bool found;			/* its binary is on PATH */
	bool usable;			/* and a real attempt succeeded */
	char path[256];			/* where it was found */
	char version[128];		/* first line of its --version */
	char reason[256];		/* !usable: why (the error of the attempt) */
};

struct oci_driver {
	const char *name;		/* "runc", "crun", "podman", "docker" */
	bool engine;			/* a CLI with its own store (docker, podman) */
	bool exec_in_unit;		/* exec_argv places the command in x->unit */
	/* Is it there, and does a real attempt work here? Cached by the caller. */
	void (*probe)(const struct oci_driver *d, const char *work_root, struct oci_probe *p);
	/* Create and start c (c->cfg, c->dir made): a long-lived init as its pid 1; fills
	 * c->init_pid. An engine whose container's cgroup is not agentd/<cfg.cgroup_name> puts
	 * the name it got under agentd/ there (its --cgroup-parent). On failure the caller
	 * still calls destroy, which must leave nothing. */
	int (*create)(struct oci_ctr *c, agentd_error *err);
	/* The host command (argv pushed to out) that runs x inside c with its stdio ours. */
	int (*exec_argv)(struct oci_ctr *c, struct oci_exec *x, agentd_strv *out,
			 agentd_error *err);
	/* Kill x's tree when the driver could not put it in a unit (may be NULL). */
	void (*exec_kill)(struct oci_ctr *c, const struct oci_exec *x);
	/* issue 13: oci-engine. Runs req (argv: exec_argv's) itself where the host command is
	 * not the command (an engine's CLI): usage, limits and kills from c->cg. NULL:
	 * exec_run. */
	int (*exec_run)(struct oci_ctr *c, const struct oci_exec *x, exec_request *req,
			agentd_exec_output *out, agentd_error *err);
	int (*pause)(struct oci_ctr *c, agentd_error *err);
	int (*resume)(struct oci_ctr *c, agentd_error *err);
	/* Kill and delete: no process, state, cgroup or file of it left. Idempotent; safe on
	 * a container whose create failed half way. */
	void (*destroy)(struct oci_ctr *c);
};
extern const struct oci_driver oci_runc_driver, oci_crun_driver;	/* runtime.c */
extern const struct oci_driver oci_podman_driver, oci_docker_driver;	/* engine.c */

/* ---------------------------------------------------------------- runtime.c helpers
 * Shared with engine.c: run a host tool to completion. */
/* argv run with stdin /dev/null, stdout (when out) captured up to 64 KiB, stderr captured
 * into why (the last line, for an error); its exit status (0..255), or -1 + err when it
 * could not be run or took longer than timeout_ms (killed). OCI_TOOL_NULL_STDIO: stdout
 * and stderr are /dev/null too (a runtime's create: the container's init inherits them, a
 * pipe would never see EOF; its errors go to its --log). */
#define OCI_TOOL_NULL_STDIO 1u
int oci_tool_run(char *const *argv, unsigned flags, char **out, char *why, size_t why_len,
		 int timeout_ms, agentd_error *err);
/* The first line of `path --version`, into buf. */
void oci_tool_version(const char *path, char *buf, size_t n);
/* name on PATH (of /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin) into
 * path: true when found. */
bool oci_tool_find(const char *name, char *path, size_t n);

/* ---------------------------------------------------------------- snapshot.c
 * The writable state (workdir, /tmp) into the caller's dir_fd and back. */
int oci_snapshot_to(agentd_sandbox *sb, int dir_fd, uint64_t max_bytes, uint64_t *bytes,
		    agentd_error *err);
int oci_restore_from(agentd_sandbox *sb, int dir_fd, agentd_error *err);

/* ---------------------------------------------------------------- oci.c */
int oci_backend_new(const char *work_root, agentd_backend **out, agentd_error *err);

#endif
