/* agentd.h: the public C API of libagentd.
 * Policy → spec → backend (registry) → sandbox → exec output. Everything else is private. */
#ifndef AGENTD_H
#define AGENTD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AGENTD_VERSION "0.1.0"

/* A sandbox id: 32 lowercase hex characters and the NUL, with room to spare. */
#define AGENTD_ID_LEN 40

/* ---------------------------------------------------------------- errors
 * Every fallible call takes an agentd_error * (may be NULL) and returns a negative value
 * (or NULL) on failure. Each layer prefixes its context, so the user reads
 * "create sandbox: landlock: add rule /opt/x: No such file or directory". */
#define AGENTD_ERROR_MAX 1024
typedef struct agentd_error {
	int code;			  /* errno value describing the failure (EINVAL for bad input) */
	char msg[AGENTD_ERROR_MAX];	  /* human readable, context first */
} agentd_error;

/* Set *err (if non-NULL); returns -1 (or -code when code > 0 is wanted, see agentd_fail). */
int agentd_error_set(agentd_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prepend "ctx: " to the existing message; returns -1. */
int agentd_error_prefix(agentd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void agentd_error_clear(agentd_error *err);

/* --------------------------------------------------------------- policy */
typedef enum agentd_profile {
	AGENTD_PROFILE_STRICT = 0,
	AGENTD_PROFILE_STANDARD,
	AGENTD_PROFILE_PERMISSIVE,
} agentd_profile;

typedef enum agentd_net_mode {
	AGENTD_NET_NONE = 0,
	AGENTD_NET_ALLOWLIST,
	AGENTD_NET_HOST,
} agentd_net_mode;

typedef struct agentd_strv {
	char **v;
	size_t n;
} agentd_strv;

typedef struct agentd_kv {
	char *key;
	char *value;
} agentd_kv;

typedef struct agentd_kvv {
	agentd_kv *v;
	size_t n;
} agentd_kvv;

typedef struct agentd_bind_mount {
	char *source;	/* host path */
	char *target;	/* path inside the sandbox */
	bool readonly;
} agentd_bind_mount;

typedef struct agentd_limits {
	uint64_t max_memory_bytes;	/* cgroup memory limit, no swap */
	uint64_t max_cpu_time_ms;	/* RLIMIT_CPU + accounting */
	uint64_t max_wall_time_ms;	/* per exec */
	uint32_t max_processes;		/* pids.max */
	uint32_t max_open_files;	/* RLIMIT_NOFILE */
	uint64_t max_output_bytes;	/* stdout+stderr captured */
	uint64_t max_write_bytes;	/* scratch size / RLIMIT_FSIZE */
	uint32_t cpu_weight;		/* 1..10000 */
	uint32_t cpu_quota_pct;		/* % of one CPU */
	uint64_t max_snapshot_bytes;	/* host disk (allocated) of all its snapshots */
	uint64_t max_process_output_bytes; /* kept per stream of a background process */
} agentd_limits;

typedef struct agentd_network {
	agentd_net_mode mode;
	agentd_strv allow;	/* "host:port", "*.domain:port", "CIDR[:port]" */
} agentd_network;

/* The validated, typed sandbox spec (docs/policy.md). Owns all its strings. */
typedef struct agentd_spec {
	agentd_profile profile;
	char *workdir;			/* path inside the sandbox, absolute */
	agentd_strv allowed_paths_ro;
	agentd_strv allowed_paths_rw;
	agentd_bind_mount *bind_mounts;
	size_t n_bind_mounts;
	agentd_network network;
	agentd_kvv environment;
	agentd_limits limits;
	char *seccomp_profile;		/* "default", "none" or a path to an OCI/Docker seccomp JSON */
	agentd_kvv labels;
	/* agentd extension ("run_as"): identity of sandboxed commands when agentd is root.
	 * -1 = the default (65534:65534); 0 = stay uid 0 with every capability dropped. */
	int64_t run_as_uid;
	int64_t run_as_gid;
	/* issue 13: images (docs/images.md). The sandbox's root filesystem: NULL = the host's
	 * runtime (read-only binds of /usr, /bin, /lib...); else a reference into the image
	 * store ("name", "name:tag", "sha256:<64 hex>" or a unique prefix of 12+ hex). */
	char *image;
	/* With image: a writable overlay over the whole root (its upper layer on the scratch,
	 * bounded by limits.max_write_bytes) rather than a read-only root. */
	bool writable_root;
} agentd_spec;

/* Fill *spec with the profile's defaults (docs/policy.md#keys). */
void agentd_spec_init(agentd_spec *spec, agentd_profile profile);
/* Re-apply a profile's presets (limits, network) keeping the other keys. */
void agentd_spec_set_profile(agentd_spec *spec, agentd_profile profile);
void agentd_spec_free(agentd_spec *spec);
int agentd_spec_copy(agentd_spec *dst, const agentd_spec *src, agentd_error *err);
/* Semantic checks shared by the JSON parser and CLI flags (absolute paths, ranges...). */
int agentd_spec_validate(const agentd_spec *spec, agentd_error *err);
/* The accepted range of limits.KEY (e.g. "max_memory_bytes"): 0, or -1 for an unknown key. */
int agentd_limit_range(const char *key, uint64_t *min, uint64_t *max);

const char *agentd_profile_name(agentd_profile p);
int agentd_profile_from_name(const char *name, agentd_profile *out); /* 0 or -1 */
const char *agentd_net_mode_name(agentd_net_mode m);

/* Strict JSON policy parser: unknown key, wrong type or out-of-range value fails with
 * err->msg naming the JSON path ("limits.max_memory_bytes: expected integer >= 1048576").
 * On failure *spec is left untouched. */
int agentd_policy_parse(const char *json, size_t len, agentd_spec *spec, agentd_error *err);
int agentd_policy_load_file(const char *path, agentd_spec *spec, agentd_error *err);
/* Emits the full spec as JSON (every key); malloc'd, NUL-terminated. parse(emit(s)) == s. */
char *agentd_policy_to_json(const agentd_spec *spec);


/* --------------------------------------------------------------- exec */
typedef struct agentd_command {
	char **argv;			/* NULL-terminated, argv[0] is the program */
	agentd_kvv env;			/* additions on top of the spec's environment */
	const char *workdir;		/* NULL = spec workdir */
	const uint8_t *stdin_data;	/* NULL = /dev/null */
	size_t stdin_len;
	uint64_t timeout_ms;		/* 0 = spec limit; above it: EINVAL (docs/policy.md) */
} agentd_command;

typedef enum agentd_stream {
	AGENTD_STREAM_STDOUT = 1,
	AGENTD_STREAM_STDERR = 2,
} agentd_stream;

/* Called from the exec loop for each chunk as it arrives (before truncation is applied the
 * chunk is already cut to what fits in max_output_bytes; dropped bytes are not delivered). */
typedef void (*agentd_output_cb)(void *userdata, agentd_stream stream, const uint8_t *data,
				 size_t len);

typedef struct agentd_exec_ctx {
	const char *trace_id;
	const char *request_id;
	agentd_output_cb on_output;	/* NULL = no streaming */
	void *userdata;
	int cancel_fd;			/* > 0: readable = cancel (kill the command's tree) */
} agentd_exec_ctx;

typedef struct agentd_usage {
	uint64_t peak_memory_bytes;
	uint64_t cpu_time_ms;
	uint64_t wall_time_ms;
	uint64_t bytes_written;
	uint64_t bytes_read;
} agentd_usage;

typedef enum agentd_limit_kind {
	AGENTD_LIMIT_NONE = 0,
	AGENTD_LIMIT_MEMORY,
	AGENTD_LIMIT_PIDS,
	AGENTD_LIMIT_CPU,
	AGENTD_LIMIT_OUTPUT,
	AGENTD_LIMIT_WRITE,
} agentd_limit_kind;
const char *agentd_limit_kind_name(agentd_limit_kind k); /* "memory"... or NULL for NONE */

typedef struct agentd_exec_output {
	int exit_code;			/* docs/exit-codes.md: 124..127, 128+N */
	int term_signal;		/* signal that ended the main process, 0 if it exited */
	uint8_t *out;			/* stdout bytes (malloc'd, may be NULL when empty) */
	size_t out_len;
	uint8_t *err;			/* stderr bytes */
	size_t err_len;
	uint64_t duration_ms;
	bool timed_out;
	bool resource_limited;
	agentd_limit_kind limit_hit;
	bool output_truncated;
	agentd_usage usage;
	agentd_strv unenforced;		/* policy items the sandbox runs without, "item: reason" */
} agentd_exec_output;
void agentd_exec_output_free(agentd_exec_output *o);
/* docs/exit-codes.md#json-output object (stdout/stderr base64 when not UTF-8). malloc'd. */
char *agentd_exec_output_to_json(const agentd_exec_output *o, const char *backend,
				 const char *sandbox_id);

/* ------------------------------------------------------- enforcement
 * The policy items a spec can ask for and a backend may be unable to enforce on a host
 * (docs/policy.md#enforcement). None is ever dropped silently: auto skips a backend that
 * cannot enforce a spec; a create on one fails (ENOTSUP) naming the items and why, unless
 * the caller allows degradation (agentd_create_opts), and then the sandbox and every exec
 * result list them as "unenforced". */
typedef enum agentd_policy_item {
	AGENTD_ITEM_MEMORY = 0,		/* limits.max_memory_bytes */
	AGENTD_ITEM_PIDS,		/* limits.max_processes */
	AGENTD_ITEM_CPU,		/* limits.cpu_weight other than 100, limits.cpu_quota_pct */
	AGENTD_ITEM_CPU_TIME,		/* limits.max_cpu_time_ms */
	AGENTD_ITEM_WALL_TIME,		/* limits.max_wall_time_ms */
	AGENTD_ITEM_OPEN_FILES,		/* limits.max_open_files */
	AGENTD_ITEM_OUTPUT,		/* limits.max_output_bytes */
	AGENTD_ITEM_WRITE,		/* limits.max_write_bytes other than 0 */
	AGENTD_ITEM_FILESYSTEM,		/* only the runtime, the workspace and the allowed paths */
	AGENTD_ITEM_BIND_MOUNTS,	/* bind_mounts whose target is not their source */
	AGENTD_ITEM_NETWORK_NONE,	/* network.mode "none" */
	AGENTD_ITEM_NETWORK_ALLOWLIST,	/* network.mode "allowlist" */
	AGENTD_ITEM_RUN_AS,		/* run_as other than the caller's own ids */
	AGENTD_ITEM_SECCOMP,		/* seccomp_profile other than "none" */
	AGENTD_ITEM_IMAGE,		/* issue 13: image (a root filesystem of its own) */
	AGENTD_ITEM_COUNT,
} agentd_policy_item;
#define AGENTD_ITEM_BIT(i) (1u << (i))
/* "memory", "pids", "cpu", "cpu_time", "wall_time", "open_files", "output", "write",
 * "filesystem", "bind_mounts", "network_none", "network_allowlist", "run_as", "seccomp",
 * "image". */
const char *agentd_policy_item_name(agentd_policy_item i);
/* The items spec asks for, as AGENTD_ITEM_BIT()s. */
uint32_t agentd_spec_items(const agentd_spec *spec);

/* ------------------------------------------------------- capabilities */
typedef struct agentd_backend_caps {
	char name[64];
	bool filesystem_isolation;
	bool network_isolation;
	bool process_isolation;
	bool resource_limits;
	bool syscall_filtering;
	bool persistent_sandboxes;
	bool snapshots;
	uint32_t max_concurrent_sandboxes;	/* 0 = unlimited */
	agentd_strv available_profiles;
	agentd_strv platform_features;		/* e.g. "landlock-abi-7", "cgroup-v1" */
	agentd_strv warnings;			/* degraded features, with reasons */
	bool available;				/* usable on this host */
	char unavailable_reason[256];
	uint32_t enforceable;			/* AGENTD_ITEM_BIT()s enforced on this host */
	char unenforceable_reason[AGENTD_ITEM_COUNT][256];	/* why not, per other item */
} agentd_backend_caps;
void agentd_backend_caps_free(agentd_backend_caps *c);
/* docs/backends.md#score: filesystem 4, process 2, network 2, syscall filter 2, limits 1. */
unsigned agentd_backend_score(const agentd_backend_caps *c);
bool agentd_caps_fully_isolated(const agentd_backend_caps *c);
bool agentd_caps_soft_isolation(const agentd_backend_caps *c);

typedef struct agentd_sandbox_caps {
	char sandbox_id[AGENTD_ID_LEN];
	char backend[64];
	agentd_profile profile;
	bool can_write_filesystem;
	agentd_strv readable_paths;
	agentd_strv writable_paths;
	bool has_network;
	agentd_strv allowed_destinations;
	agentd_limits limits;
	bool syscall_filter_active;
	agentd_strv blocked_syscall_categories;
	bool is_persistent;
	time_t created_at;
	agentd_strv unenforced;		/* items of its spec it runs without, "item: reason" */
	/* issue 12: snapshots. Made from a snapshot (agentd_create_opts.from_snapshot):
	 * "overlay" (its workdir and /tmp are overlays whose read-only lower layers are the
	 * snapshot's files, shared by every sandbox made from it: the snapshot's directory
	 * must stay until they are all destroyed) or "copy"; NULL otherwise. Static. */
	const char *from_snapshot;
} agentd_sandbox_caps;
void agentd_sandbox_caps_free(agentd_sandbox_caps *c);

typedef struct agentd_backend_health {
	bool healthy;
	uint32_t active_sandboxes;
	float resource_utilization;	/* 0..1 */
	agentd_strv warnings;
	time_t last_sandbox_created;	/* 0 = never */
} agentd_backend_health;
void agentd_backend_health_free(agentd_backend_health *h);

/* ------------------------------------------------- backends, sandboxes */
typedef struct agentd_backend agentd_backend;
typedef struct agentd_sandbox agentd_sandbox;

/* Backends are written against agentd-backend.h (the ops, the allocators, the ABI
 * version plugins are checked against); users only hold these handles. */
const char *agentd_sandbox_id(const agentd_sandbox *sb);
const agentd_spec *agentd_sandbox_spec(const agentd_sandbox *sb);
const agentd_sandbox_caps *agentd_sandbox_get_caps(const agentd_sandbox *sb);
agentd_backend *agentd_sandbox_backend(const agentd_sandbox *sb);
const char *agentd_backend_work_root(const agentd_backend *b);

/* Registry (docs/backends.md#registry). Names are normalised: trimmed, lower-case, '_' ≡ '-'. */
/* Canonical name for name/alias, or NULL. Returned string lives as long as the registry. */
const char *agentd_canonical_backend_name(const char *name);
/* Canonical names in registration order; *n set. Array owned by the registry. */
const char *const *agentd_available_backends(size_t *n);
/* Aliases of a canonical backend (NULL-terminated, owned by the registry). */
const char *const *agentd_backend_aliases(const char *canonical);
int agentd_create_backend(const char *name, const char *work_root, agentd_backend **out,
			  agentd_error *err);
/* Highest score wins (ties: registration order); host-direct when nothing probes;
 * warn (may be NULL) receives the reason when falling back. Spec-blind: a program that
 * creates sandboxes picks with agentd_select_backend. */
agentd_backend *agentd_detect_best_backend(const char *work_root, agentd_error *warn);

/* What a create accepts beyond the spec. NULL = all zero. */
typedef struct agentd_create_opts {
	bool allow_degraded;	/* run without the items the backend cannot enforce (listed) */
	/* issue 12: snapshots */
	/* A directory agentd_sandbox_snapshot_to filled (the caller's, trusted): the new
	 * sandbox's workdir and /tmp start as it, before anything runs in it. The container
	 * backend as root shares its files (overlays, read-only lower layers idmapped to the
	 * new sandbox's ids: keep the directory while the sandbox lives); elsewhere they are
	 * copied in (agentd_sandbox_restore_from). caps.from_snapshot says which. A failure
	 * fails the create. NULL = none. */
	const char *from_snapshot;
	/* Copy it even where it could be shared: the sandbox then depends on the directory
	 * no longer once created, at the cost of its scratch holding the whole copy. */
	bool from_snapshot_copy;
} agentd_create_opts;
/* auto for spec (docs/backends.md#score): the highest-scoring available backend that
 * enforces every item spec asks for; when none does and opts allow degradation, the
 * highest-scoring one that can still run it. *canonical is owned by the registry. Else -1
 * and err (ENOTSUP) says per backend what it cannot enforce. */
int agentd_select_backend(const agentd_spec *spec, const agentd_create_opts *opts,
			  const char **canonical, agentd_error *err);
/* dlopen every *.so in dir; each must be built against agentd-backend.h, export
 * AGENTD_PLUGIN_ABI (checked before anything of it runs: a plugin built for another ABI
 * version is refused, naming both) and `int agentd_plugin_init(void)` that calls
 * agentd_register_backend(). Returns the number loaded or -1. */
int agentd_load_plugins(const char *dir, agentd_error *err);
/* Default work root: $AGENTD_WORK_ROOT, else /var/lib/agentd (root) or
 * $XDG_RUNTIME_DIR/agentd, else /tmp/agentd-$UID. Returned string is static. */
const char *agentd_default_work_root(void);

const char *agentd_backend_name(const agentd_backend *b);
int agentd_backend_probe(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err);
/* The items spec asks for that b cannot enforce here, "item: reason" each (none: empty). */
int agentd_backend_unenforced(agentd_backend *b, const agentd_spec *spec, agentd_strv *out,
			      agentd_error *err);
/* Ownership (docs/backends.md#ownership): a sandbox belongs to the *process* that created
 * it, not to a thread: any thread may use or destroy it, and the creating thread's exit
 * changes nothing. It ends at agentd_sandbox_destroy, or when that process exits or dies
 * (the janitor then removes what is left), unless agentd_sandbox_persist made it durable:
 * a durable sandbox outlives its process until a later one adopts it
 * (agentd_backend_adopt) and destroys it. */
/* An item of spec that b cannot enforce fails the create (ENOTSUP, naming each item and
 * why) unless opts->allow_degraded; the sandbox then runs without it and lists it in its
 * caps' unenforced. The plain form is the _opts form with NULL opts. */
int agentd_backend_create_sandbox(agentd_backend *b, const agentd_spec *spec,
				  agentd_sandbox **out, agentd_error *err);
int agentd_backend_create_sandbox_opts(agentd_backend *b, const agentd_spec *spec,
				       const agentd_create_opts *opts, agentd_sandbox **out,
				       agentd_error *err);
/* Sandbox ids of live sandboxes (malloc'd array of malloc'd strings). */
int agentd_backend_list(agentd_backend *b, agentd_strv *ids, agentd_error *err);
agentd_sandbox *agentd_backend_get(agentd_backend *b, const char *id);
int agentd_backend_destroy_all(agentd_backend *b, agentd_error *err);
int agentd_backend_health_check(agentd_backend *b, agentd_backend_health *h, agentd_error *err);
void agentd_backend_free(agentd_backend *b);	/* destroy_all, then free */

/* out->unenforced lists what the sandbox runs without (its caps' unenforced). */
int agentd_sandbox_exec(agentd_sandbox *sb, const agentd_command *cmd,
			const agentd_exec_ctx *ctx, agentd_exec_output *out, agentd_error *err);
/* What agentd_sandbox_exec checks before it runs anything: EINVAL for an empty argv, a
 * forbidden env name, a relative workdir, a timeout_ms above limits.max_wall_time_ms. */
int agentd_sandbox_check_command(const agentd_sandbox *sb, const agentd_command *cmd,
				 agentd_error *err);
/* One-shot: a sandbox for spec, cmd run in it, the sandbox destroyed — in one pass where
 * the backend has one (container), else create + exec + destroy. sandbox_id receives the
 * transient sandbox's id. 0 when the command ran (its result in out), -1 + err if not. */
int agentd_backend_run(agentd_backend *b, const agentd_spec *spec, const agentd_command *cmd,
		       const agentd_exec_ctx *ctx, agentd_exec_output *out,
		       char sandbox_id[AGENTD_ID_LEN], agentd_error *err);
int agentd_backend_run_opts(agentd_backend *b, const agentd_spec *spec,
			    const agentd_create_opts *opts, const agentd_command *cmd,
			    const agentd_exec_ctx *ctx, agentd_exec_output *out,
			    char sandbox_id[AGENTD_ID_LEN], agentd_error *err);
bool agentd_sandbox_is_alive(agentd_sandbox *sb);
int agentd_sandbox_suspend(agentd_sandbox *sb, agentd_error *err);
int agentd_sandbox_resume(agentd_sandbox *sb, agentd_error *err);
int agentd_sandbox_snapshot(agentd_sandbox *sb, const char *name, char **snapshot_id,
			    agentd_error *err);
int agentd_sandbox_restore(agentd_sandbox *sb, const char *snapshot_id, agentd_error *err);
/* The snapshots above are the library's: under <work_root>/<sandbox id>/<snapshot id>,
 * charged to the sandbox's limits.max_snapshot_bytes, removed with the sandbox (its destroy,
 * or the janitor when its owner dies). Snapshots that must outlive their sandbox (templates,
 * forks: agentd serve's) are stored by the caller in a directory of its own:
 *
 * Copy sb's writable state (its workdir and /tmp) into dir_fd, an empty directory of the
 * caller's (0700, on a disk only the caller reaches), while sb is held still (frozen unless
 * suspended). Nothing is followed: the sandbox's tree is read beneath its root without
 * symlinks, symlinks are stored as symlinks, special files (fifos, devices, sockets) are
 * left out, set-id bits dropped, hard links stored as separate files. Where agentd runs as
 * root, the files are stored with the ids they have inside (through a mount idmapped by
 * sb's user namespace), so that any sandbox can be restored from them; else with the
 * caller's ids. The copy may occupy at most max_bytes of host disk (allocated, the entries
 * counted) and the spec's limits.max_snapshot_bytes: beyond either it fails EDQUOT and
 * dir_fd is emptied. *bytes: what it occupies. */
int agentd_sandbox_snapshot_to(agentd_sandbox *sb, int dir_fd, uint64_t max_bytes,
			       uint64_t *bytes, agentd_error *err);
/* Replace sb's workdir and /tmp with the snapshot in dir_fd (made by
 * agentd_sandbox_snapshot_to of any sandbox with the same workdir path), with the same
 * rules (nothing followed, no special files, no set-id bits, no hard links), written with
 * sb's own ids and bounded by its limits.max_write_bytes. */
int agentd_sandbox_restore_from(agentd_sandbox *sb, int dir_fd, agentd_error *err);
int agentd_sandbox_usage(agentd_sandbox *sb, agentd_usage *u, agentd_error *err);
/* Destroys and frees sb (unlinks it from its backend). */
int agentd_sandbox_destroy(agentd_sandbox *sb, agentd_error *err);

/* ------------------------------------------------------------ processes
 * A process that outlives the call that started it: a dev server, a database, a shell on a
 * terminal, the interpreter of a code context (docs/api.md#processes). The caller holds its
 * stdio and learns of its end from a pollable fd. Each process, like each exec, is its own
 * kill unit (its own child cgroup of the sandbox's where the host has cgroups, v1 or v2;
 * else its process group and session), so ending one never touches another, while the
 * sandbox's limits (memory, pids, cpu) hold for all of them together. A foreground exec's
 * tree still dies with it; the sandbox's processes do not. */
typedef struct agentd_process agentd_process;

typedef struct agentd_process_opts {
	bool tty;			/* a pseudo-terminal as its stdin, stdout and stderr */
	unsigned short rows, cols;	/* the terminal's size (0: 24 x 80) */
	bool stdin_pipe;		/* without tty: stdin is a pipe the caller writes
					 * (else /dev/null) */
} agentd_process_opts;

typedef struct agentd_process_status {
	bool running;
	int exit_code;			/* once ended: docs/exit-codes.md (128+N for signal N) */
	int term_signal;		/* the signal that ended it, 0 if it exited */
	agentd_limit_kind limit_hit;	/* a sandbox limit killed it (memory, pids, cpu) */
	int64_t started_at_ms;		/* wall clock, ms since the epoch */
	int64_t ended_at_ms;		/* 0 while it runs */
} agentd_process_status;

/* Start cmd (argv, env, workdir; stdin_data and timeout_ms must be unset: EINVAL) in the
 * background; returns at once. -1 + err: ENOTSUP where the backend has no background
 * processes (probe says why), EBUSY when the sandbox is suspended or runs its maximum of
 * processes, the exec errors of agentd_sandbox_check_command, 127/126-style failures to
 * start as ENOENT/EACCES naming the program. */
int agentd_sandbox_spawn(agentd_sandbox *sb, const agentd_command *cmd,
			 const agentd_process_opts *opts, agentd_process **out,
			 agentd_error *err);
/* Its pid in the sandbox's own pid namespace (what ps inside shows). */
int64_t agentd_process_pid(const agentd_process *p);
/* Its stdio, borrowed (the process owns them; non-blocking, CLOEXEC): stdin is the write end
 * (-1 unless stdin_pipe or tty), stdout and stderr the read ends. With tty, stdin and stdout
 * are the terminal's master and stderr is -1. */
int agentd_process_stdin_fd(const agentd_process *p);
int agentd_process_stdout_fd(const agentd_process *p);
int agentd_process_stderr_fd(const agentd_process *p);
/* Close its stdin: it reads EOF (with tty: the terminal's EOF character is sent). */
void agentd_process_close_stdin(agentd_process *p);
/* Readable (POLLIN) once the process ended; agentd_process_get_status then says how. */
int agentd_process_wait_fd(const agentd_process *p);
/* Its state now; never blocks. */
int agentd_process_get_status(agentd_process *p, agentd_process_status *st,
			      agentd_error *err);
/* Signal sig (1..64, else EINVAL) to its main process; ESRCH once it ended. */
int agentd_process_signal(agentd_process *p, int sig, agentd_error *err);
/* SIGKILL to its whole tree (setsid'd and daemonized descendants included) and to nothing
 * else in the sandbox. Idempotent. */
int agentd_process_kill(agentd_process *p, agentd_error *err);
/* The terminal's new size (EINVAL without tty). */
int agentd_process_resize(agentd_process *p, unsigned rows, unsigned cols,
			  agentd_error *err);
/* What its tree used so far: cpu time, peak memory where its cgroup accounts it, wall time. */
int agentd_process_usage(agentd_process *p, agentd_usage *u, agentd_error *err);
/* Kill its tree if it still runs, release its unit and fds, free. A handle outlives its
 * sandbox: agentd_sandbox_destroy kills and releases every process whose handle is still
 * open, and such a handle then only reports the end (get_status: killed, SIGKILL; signal,
 * resize and usage: ESRCH; kill: 0; its fds -1) until it is freed. */
void agentd_process_free(agentd_process *p);

/* ------------------------------------------------------------ durable sandboxes
 * A durable sandbox outlives the process that created it (a daemon's restart, an upgrade
 * to a new binary, kill -9): its init keeps a control endpoint (a unix socket, 0600, under
 * a directory of the caller's) that a later process reconnects to. While nobody is
 * connected, its background processes keep running (their output waits in their pipes,
 * whose host ends the init keeps) and a foreground exec is killed (its client is gone):
 * the adopter learns of each, once.
 *
 * Make sb durable. dir: a directory only the caller can write (0700), where the endpoint
 * is made. *token (malloc'd, printable, NUL-terminated) is what agentd_backend_adopt needs,
 * a secret among it: keep it where only the caller can read it (agentd serve: its state
 * database). ENOTSUP where the backend cannot (the process backends: probe says why).
 * Destroy removes the endpoint too. */
int agentd_sandbox_persist(agentd_sandbox *sb, const char *dir, char **token,
			   agentd_error *err);
/* Reconnect to the durable sandbox id of backend b (spec: the one it was created with,
 * token: agentd_sandbox_persist's). Nothing from the endpoint is trusted before it proves to
 * be that sandbox's init: the token's secret, its pid and start time (not a reused pid), its
 * cgroup, the peer that listens. -1 + err: ESRCH when its init is gone, EPERM when the proof
 * fails (a planted socket, a reused pid: nothing it sent is used); in both cases what is
 * left of the sandbox is killed by the cgroup the token names (never by a pid the endpoint
 * gave) and agentd_cleanup_stale_sandbox then removes it. ETIMEDOUT when its init did not
 * answer (another live process still owns it: untouched), EPROTO/EINVAL for a token or an
 * init this build cannot speak to (untouched). The new sandbox is durable as before and
 * suspended if it was. */
int agentd_backend_adopt(agentd_backend *b, const agentd_spec *spec, const char *id,
			 const char *token, agentd_sandbox **out, agentd_error *err);
/* A foreground exec an adopted sandbox's init killed because its owner went away. */
typedef struct agentd_lost_exec {
	char **argv;			/* as it was started (NULL-terminated) */
	int exit_code;			/* docs/exit-codes.md (137 when killed) */
	int64_t started_at_ms, ended_at_ms;
} agentd_lost_exec;
typedef struct agentd_adoption {
	agentd_process **processes;	/* background processes, running or ended while
					 * away (the caller frees each with
					 * agentd_process_free) */
	size_t n_processes;
	agentd_lost_exec *execs;
	size_t n_execs;
} agentd_adoption;
/* What ran across the gap, handed over once (a second call returns nothing). */
int agentd_sandbox_adopted(agentd_sandbox *sb, agentd_adoption *out, agentd_error *err);
/* Frees the exec list and the array (not the processes, which the caller now owns). */
void agentd_adoption_free(agentd_adoption *a);
/* Whether sb is durable (agentd_sandbox_persist succeeded or it was adopted). */
bool agentd_sandbox_is_durable(const agentd_sandbox *sb);

/* issue 12: names. Live network policy (docs/policy.md#live-network): switch a running
 * sandbox between "none" and "allowlist", or replace its allowlist (net->allow, entries as
 * in agentd_network; net->mode "host" and a sandbox of mode "host" are EINVAL: that mode is
 * the host's namespace, nothing to switch). Narrowing closes at once every connection
 * through the egress proxy the new policy does not allow; commands started from now on
 * follow the new mode; a command started before a widening keeps its stricter rule (it
 * stays unable to connect). On success agentd_sandbox_spec(sb)->network and the caps'
 * has_network and allowed_destinations show the new policy: the caller serialises this
 * call with its readers of those. ENOTSUP where the backend cannot (the process backends:
 * probe says why), EBUSY while suspended. */
int agentd_sandbox_set_network(agentd_sandbox *sb, const agentd_network *net,
			       agentd_error *err);

/* A TCP connection to 127.0.0.1:port inside the sandbox's own network namespace, what a
 * host-side port forward relays to (docs/api.md#ports). The sandbox's network policy is
 * untouched: the socket belongs to its namespace, so it reaches nothing outside it, and
 * nothing inside gains a way out. Returns a non-blocking CLOEXEC socket, connected or still
 * connecting (poll POLLOUT, then SO_ERROR), or -1 + err: ECONNREFUSED when nothing listens
 * there (or later, from SO_ERROR), ENOTSUP where the backend has no network namespace of
 * its own (the process backends: probe says so), EBUSY while the sandbox is suspended.
 * Port 0 only asks: 0 where the backend can connect (nothing is made), else ENOTSUP. Safe from any thread, concurrently with execs; not after
 * agentd_sandbox_destroy. */
int agentd_sandbox_connect(agentd_sandbox *sb, uint16_t port, agentd_error *err);

/* Files of a sandbox, from the host side. Everything inside is hostile: path is relative
 * to the workdir (or absolute: under the spec's workdir, or on a backend with a root fd op
 * where the sandbox writes — or reads, to read; see the files API below), without "..",
 * "." or empty components (EINVAL otherwise); it is resolved beneath the workdir (or root)
 * fd the backend held from creation (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, so a
 * symlink planted inside can only point back inside), the last component is never a
 * symlink (ELOOP), only regular files open (EINVAL), and the open runs with the sandbox's
 * filesystem ids, so the
 * host reads and writes no more than the sandbox itself could. write: O_WRONLY|O_CREAT|
 * O_TRUNC (mode 0644), else O_RDONLY. Returns the fd or -1 + err. */
int agentd_sandbox_open_file(agentd_sandbox *sb, const char *path, bool write,
			     agentd_error *err);
/* The workdir-relative form of path as agentd_sandbox_open_file accepts it (a pointer into
 * path), or NULL + err (EINVAL) naming why it is refused. */
const char *agentd_sandbox_path_relative(const agentd_spec *spec, const char *path,
					 agentd_error *err);
/* issue 12: files — the full files API (docs/api.md#files). Every call below takes a path
 * as agentd_sandbox_open_file does (relative to the workdir, or absolute under it), and on a
 * backend with a root fd op (the container) also an absolute path anywhere the sandbox can
 * write (its caps' writable_paths: the workdir, /tmp, --rw paths) or, for the calls that only
 * read, read (readable_paths). Such a path is resolved beneath the sandbox's own root fd held
 * from before any sandboxed code ran (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS: a symlink on
 * the way can only lead back inside), its last component is never followed, /proc and /sys
 * are refused, and every call runs with the sandbox's filesystem ids: the host does no more
 * than the sandbox itself could. Without a root fd op an absolute path outside the workdir
 * is ENOTSUP (naming why). "." (or the workdir's own path) names the workdir. */
typedef enum agentd_file_type {
	AGENTD_FILE_REGULAR,
	AGENTD_FILE_DIRECTORY,
	AGENTD_FILE_SYMLINK,
	AGENTD_FILE_OTHER,		/* fifo, socket, device */
} agentd_file_type;
/* "file", "dir", "symlink", "other" */
const char *agentd_file_type_name(agentd_file_type t);
typedef struct agentd_file_stat {
	char *name;			/* its last component ("." for the workdir) */
	agentd_file_type type;
	uint64_t size;
	uint32_t mode;			/* permission bits (& 07777) */
	int64_t mtime_ms;
	char *link_target;		/* a symlink's target as text, never followed, else NULL */
} agentd_file_stat;
void agentd_file_stat_free(agentd_file_stat *st);
/* Stat path itself (a symlink is reported, not followed). */
int agentd_sandbox_stat(agentd_sandbox *sb, const char *path, agentd_file_stat *out,
			agentd_error *err);
/* The entries of directory path (not "." nor ".."), at most max (*truncated when there were
 * more); *out is an array of *n, free each with agentd_file_stat_free and the array. */
int agentd_sandbox_list(agentd_sandbox *sb, const char *path, size_t max,
			agentd_file_stat **out, size_t *n, bool *truncated, agentd_error *err);
/* mkdir path (0755): with parents, every missing parent too, and an existing directory is
 * no error (mkdir -p). */
int agentd_sandbox_mkdir(agentd_sandbox *sb, const char *path, bool parents, agentd_error *err);
/* Remove a file, a symlink (not what it points to) or an empty directory; recursive: a
 * whole tree, fd-relative, never through a symlink nor across a mount (EXDEV then). */
int agentd_sandbox_remove(agentd_sandbox *sb, const char *path, bool recursive,
			  agentd_error *err);
/* rename(2) from to to; noreplace: EEXIST rather than replace what is there. */
int agentd_sandbox_rename(agentd_sandbox *sb, const char *from, const char *to,
			  bool noreplace, agentd_error *err);
/* chmod to mode, which only permission bits may be in (0777: never setuid, setgid or
 * sticky, EINVAL); a symlink is refused (ELOOP). */
int agentd_sandbox_chmod(agentd_sandbox *sb, const char *path, uint32_t mode,
			 agentd_error *err);
#define AGENTD_OPEN_WRITE 1u	/* O_WRONLY|O_CREAT|O_TRUNC (0644) rather than O_RDONLY */
#define AGENTD_OPEN_PARENTS 2u	/* with WRITE: make the missing parent directories first */
/* agentd_sandbox_open_file with flags, and the paths above. */
int agentd_sandbox_open_path(agentd_sandbox *sb, const char *path, unsigned flags,
			     agentd_error *err);

/* Directories as tar streams (ustar/pax). Bounds: the archive's entries and the bytes of its
 * files' data; 0 takes the default (AGENTD_TAR_MAX_*). */
#define AGENTD_TAR_MAX_ENTRIES 100000u
#define AGENTD_TAR_MAX_BYTES (1ull << 30)
typedef struct agentd_tar_limits {
	uint64_t max_entries;
	uint64_t max_bytes;
} agentd_tar_limits;
typedef struct agentd_tar_stats {
	uint64_t entries;
	uint64_t bytes;
} agentd_tar_stats;
/* Extract the tar archive tar[0, len) into the directory path (made, with parents, if
 * missing). Checked whole before anything is written (E2BIG past a bound, EINVAL for an
 * absolute path, a ".." component, a device node, fifo or socket, a hard link to anything
 * but a regular file of the archive's destination, a symlink whose target is absolute or
 * leaves the destination): a refused archive leaves nothing. Then every entry is made
 * fd-relative beneath the destination, never through a symlink (RESOLVE_NO_SYMLINKS, also
 * those the archive itself or the sandbox made), mode & 0777, owned by the sandbox; an error
 * then (disk full, a sandbox racing the extraction) leaves what was made before it. */
int agentd_sandbox_tar_extract(agentd_sandbox *sb, const char *path, const void *tar,
			       size_t len, const agentd_tar_limits *lim, agentd_tar_stats *st,
			       agentd_error *err);
/* A tar stream of the directory path, read in pieces (a download needs no buffer of the
 * whole): directories, regular files and symlinks (as links), fifos, sockets and devices
 * left out; walked fd-relative without following anything. Past a bound the stream fails. */
typedef struct agentd_tar_reader agentd_tar_reader;
agentd_tar_reader *agentd_sandbox_tar_open(agentd_sandbox *sb, const char *path,
					   const agentd_tar_limits *lim, agentd_error *err);
/* Up to n bytes of the archive into buf: > 0, 0 at its end, -1 + err. */
ssize_t agentd_tar_read(agentd_tar_reader *tr, void *buf, size_t n, agentd_error *err);
void agentd_tar_reader_free(agentd_tar_reader *tr);
/* The same two on a directory of the caller's (the host side of `agentd sandbox cp`): dir is
 * the caller's fd (not taken), the caller's own ids apply. An archive from a sandbox is as
 * hostile here: the same checks, nothing made through a symlink. */
int agentd_tar_extract_dir(int dir, const void *tar, size_t len, const agentd_tar_limits *lim,
			   agentd_tar_stats *st, agentd_error *err);
agentd_tar_reader *agentd_tar_open_dir(int dir, const agentd_tar_limits *lim,
				       agentd_error *err);

/* A watch of the directory path and every directory beneath it (inotify), its inotify
 * instance and watches made with the sandbox's host uid as the effective one (charged to it,
 * and only what it may read is watched). At most max_dirs directories (0: 1024): E2BIG past
 * them at the start, an "overflow" event later. Not bound to sb once made: it holds no more
 * than its own fds; free it when the sandbox goes. */
typedef struct agentd_watch agentd_watch;
typedef enum agentd_watch_kind {
	AGENTD_WATCH_CREATE,
	AGENTD_WATCH_MODIFY,
	AGENTD_WATCH_DELETE,
	AGENTD_WATCH_MOVE_FROM,		/* a rename's old name ... */
	AGENTD_WATCH_MOVE_TO,		/* ... and its new one (the same cookie) */
	AGENTD_WATCH_OVERFLOW,		/* events were lost (a queue or a bound): the watch ends */
} agentd_watch_kind;
typedef struct agentd_watch_event {
	agentd_watch_kind kind;
	agentd_file_type type;		/* AGENTD_FILE_DIRECTORY or _REGULAR (anything else) */
	uint32_t cookie;		/* pairs MOVE_FROM with MOVE_TO */
	char path[4097];		/* relative to the watched directory */
} agentd_watch_event;
/* "create", "modify", "delete", "move", "move", "overflow" */
const char *agentd_watch_kind_name(agentd_watch_kind k);
agentd_watch *agentd_sandbox_watch(agentd_sandbox *sb, const char *path, unsigned max_dirs,
				   agentd_error *err);
/* Readable (poll POLLIN) when events may be there. */
int agentd_watch_fd(const agentd_watch *w);
/* The next event: 1 (*ev filled), 0 none now, -1 + err. After an OVERFLOW, or once the
 * watched directory itself is gone (a DELETE of "."), only 0. */
int agentd_watch_next(agentd_watch *w, agentd_watch_event *ev, agentd_error *err);
void agentd_watch_free(agentd_watch *w);

/* After the owner of sandbox id died without destroying it (a daemon crash): remove what
 * its janitor may not have reached yet — the sandbox dir under work_root and every agentd
 * cgroup no live process holds. Idempotent; nothing held by a running sandbox is touched. */
void agentd_cleanup_stale_sandbox(const char *work_root, const char *id);

/* --------------------------------------------------------- egress proxy (agentd-proxy.h) */
typedef struct agentd_proxy agentd_proxy;
/* The proxy a backend attaches its allowlist sandboxes to (not owned: stop it after the
 * backend is freed). Without one, the backend starts its own on first need (stderr log)
 * and stops it in agentd_backend_free. */
void agentd_backend_set_proxy(agentd_backend *b, agentd_proxy *p);

/* ------------------------------------------------------------- images (issue 13)
 * A content-addressed store of root filesystems under a state dir (docs/images.md):
 *   DIR/blobs/sha256/<hex>        configs and manifests as imported (0400)
 *   DIR/layers/<hex>/             one unpacked layer per diff id (sha256 of the
 *                                 uncompressed layer tar), read-only, root-owned, 0700
 *                                 parents; overlay whiteouts as 0/0 char devices, opaque
 *                                 dirs with the user.overlay.opaque xattr (userxattr mounts)
 *   DIR/images/<hex>.json         one record per image id: tags, layers, config, source
 *   DIR/tmp/                      imports in progress (removed by prune and on failure)
 * All of it is written by the host side only; no sandbox ever holds a writable view. An
 * image id is the sha256 of its config JSON, "sha256:<64 hex>". Concurrent users (the CLI
 * without a daemon, the daemon, a build) take locks (flock) on DIR/lock; a sandbox's use
 * of an image is a shared flock on DIR/images/<hex>.use that rm and prune test. */
#define AGENTD_IMAGE_ID_LEN 80
typedef struct agentd_image_store agentd_image_store;
/* Opens (creating 0700 dirs as needed) the store at dir. */
int agentd_image_store_open(const char *dir, agentd_image_store **out, agentd_error *err);
void agentd_image_store_free(agentd_image_store *s);
const char *agentd_image_store_dir(const agentd_image_store *s);
/* The store used when nobody names one: $AGENTD_IMAGE_DIR, else the default state dir's
 * images/ (/var/lib/agentd/images as root, $XDG_RUNTIME_DIR/agentd/images, or
 * /tmp/agentd-UID/images), the same dir `agentd serve` uses with its default --state-dir. */
const char *agentd_default_image_dir(void);

/* An image's defaults (its OCI config's Env, WorkingDir, User, Cmd, Entrypoint); the
 * policy overrides each (docs/images.md#defaults). */
typedef struct agentd_image_config {
	agentd_strv env;		/* "KEY=VALUE" */
	char *workdir;			/* NULL = none */
	char *user;			/* as the image says: "uid[:gid]" or "name[:group]"; NULL */
	agentd_strv cmd;
	agentd_strv entrypoint;
	/* issue 13: img-build. The OCI config's "Labels" (a build stores its inputs' hash
	 * as org.agentd.build.inputs: docs/images.md#building-templates). */
	agentd_kvv labels;
} agentd_image_config;

typedef struct agentd_image_info {
	char id[AGENTD_IMAGE_ID_LEN];	/* "sha256:<64 hex>" */
	agentd_strv tags;		/* "name:tag", normalised (a bare name gets ":latest") */
	agentd_strv layers;		/* diff ids "sha256:<hex>", bottom first */
	uint64_t size_bytes;		/* unpacked, all its layers */
	int64_t created;		/* unix seconds, when it entered the store */
	char *source;			/* "docker-archive", "oci-layout", "rootfs", "build" */
	agentd_image_config config;
	bool in_use;			/* a sandbox holds it now */
} agentd_image_info;
void agentd_image_info_free(agentd_image_info *i);
void agentd_image_config_free(agentd_image_config *c);

/* Progress of a long call: one line per stage ("unpack layer 2/3: 12.0 MiB"). */
typedef void (*agentd_progress_cb)(void *userdata, const char *line);

typedef struct agentd_image_import_opts {
	const char *tag;		/* tag to add (a rootfs tar has no name of its own: its
					 * tag is required); NULL = the archive's own tags */
	agentd_progress_cb progress;	/* NULL = quiet */
	void *userdata;
} agentd_image_import_opts;
/* path: a docker/podman save tar, an OCI image layout (directory or tar), or a plain
 * rootfs tar (optionally gzip/zstd/xz compressed). Every layer's digest is verified;
 * hostile content (traversal, links out of the layer, device nodes, setuid/setgid bits,
 * oversize or too many entries) is refused or neutralised as docs/images.md says, and a
 * failed import leaves nothing behind. */
int agentd_image_import(agentd_image_store *s, const char *path,
			const agentd_image_import_opts *o, agentd_image_info *out, agentd_error *err);
/* ref: "name", "name:tag", "sha256:<hex>" or a unique prefix of 12+ hex. ENOENT. */
int agentd_image_inspect(agentd_image_store *s, const char *ref, agentd_image_info *out,
			 agentd_error *err);
int agentd_image_list(agentd_image_store *s, agentd_image_info **out, size_t *n,
		      agentd_error *err);
void agentd_image_list_free(agentd_image_info *v, size_t n);
int agentd_image_tag(agentd_image_store *s, const char *ref, const char *tag, agentd_error *err);
/* Removes the tag (ref names a tag and the image has others) or the image; EBUSY while a
 * sandbox uses it unless force (its sandboxes keep their mounted layers). */
int agentd_image_remove(agentd_image_store *s, const char *ref, bool force, agentd_error *err);
/* Layers and blobs no image refers to, and leftovers of failed imports. */
int agentd_image_prune(agentd_image_store *s, uint64_t *freed_bytes, agentd_error *err);
/* A docker-archive tar of the image on fd (for `docker load` / `podman load`). */
int agentd_image_export(agentd_image_store *s, const char *ref, int fd, agentd_error *err);
/* A new image: the tree under dir_fd as one layer on top of base's layers (base NULL: the
 * tree alone), with config (NULL: base's). What `agentd image build` stores. */
int agentd_image_commit_dir(agentd_image_store *s, const char *base, int dir_fd,
			    const agentd_image_config *config, const char *tag,
			    agentd_image_info *out, agentd_error *err);

/* What a backend mounts: the layers' directories, bottom first, as O_PATH|O_DIRECTORY
 * fds, the image's defaults, and its use lock (held until agentd_image_lease_free, or for
 * as long as a process the fd was passed to keeps it: a durable sandbox's init). */
typedef struct agentd_image_lease {
	char id[AGENTD_IMAGE_ID_LEN];
	int *layer_fds;
	size_t n_layers;
	char **layer_paths;		/* host paths of the same (for OCI bundles, engines) */
	agentd_image_config config;
	int use_fd;			/* the shared flock on images/<hex>.use */
} agentd_image_lease;
int agentd_image_acquire(agentd_image_store *s, const char *ref, agentd_image_lease **out,
			 agentd_error *err);
void agentd_image_lease_free(agentd_image_lease *l);

/* The store a backend resolves spec->image in (not owned; the daemon sets its state dir's).
 * Without one, the backend opens agentd_default_image_dir() on first need. */
void agentd_backend_set_image_store(agentd_backend *b, agentd_image_store *s);
agentd_image_store *agentd_backend_image_store(agentd_backend *b, agentd_error *err);

/* issue 13: img-store. Bounds of each layer of an import (0: keep): its entries (default
 * 65536) and its files' bytes (default 8 GiB); `agentd serve --image-max-entries/-bytes`. */
void agentd_image_store_set_limits(agentd_image_store *s, uint64_t max_entries,
				   uint64_t max_bytes);
/* The info as the API and `agentd image inspect --json` show it (docs/api.md#images): a
 * malloc'd JSON object text {"id", "tags", "layers", "size_bytes", "created", "source",
 * "in_use", "config": {"env", "workdir", "user", "cmd", "entrypoint", "labels" (issue 13:
 * img-build; only when it has any)}}. */
char *agentd_image_info_json(const agentd_image_info *i);

/* issue 13: img-build. A template built from Debian packages (docs/images.md#building-
 * templates). from "debian:SUITE": a root filesystem bootstrapped by mmdebstrap (variant
 * minbase plus packages) through the host's apt sources (mirror overrides them), outside
 * the host's root, docs and apt caches trimmed, stored as one layer. from an image ref:
 * that image extended. Packages (on an image) and every run command (either way) run as
 * root inside an agentd sandbox of backend b on the image with writable_root (never on
 * the host; apt reaches the mirror only through the egress proxy, the sandbox's network
 * allowing the mirror's host:port alone), and what they changed becomes a new layer. A
 * command that fails fails the build (err names it and ends with its output) and leaves
 * no image. The inputs' hash is stored as a label: a later build with the same inputs
 * returns that image at once (tagged) unless no_cache. */
#define AGENTD_IMAGE_BUILD_LABEL "org.agentd.build.inputs"
typedef struct agentd_image_build_opts {
	const char *from;		/* "debian:SUITE" or an image ref */
	agentd_strv packages;		/* Debian package names */
	agentd_strv run;		/* shell commands, in order (sh -c) */
	const char *tag;		/* required */
	const char *mirror;		/* http(s) URL; NULL: the host's apt sources' */
	bool no_cache;
	agentd_progress_cb progress;	/* one line per stage, with elapsed time; NULL = quiet */
	void *userdata;
} agentd_image_build_opts;
/* *cached (may be NULL): the image came from the build cache. */
int agentd_image_build(agentd_image_store *s, agentd_backend *b,
		       const agentd_image_build_opts *o, agentd_image_info *out, bool *cached,
		       agentd_error *err);
/* The sandbox's writable-root overlay upper layer, as O_RDONLY|O_DIRECTORY fd on *dir_fd:
 * its files seen with the ids they have inside the sandbox, deletions as overlay
 * whiteouts. ENOTSUP for a sandbox without writable_root. (What a build commits.) */
int agentd_sandbox_root_upper(agentd_sandbox *sb, int *dir_fd, agentd_error *err);

/* --------------------------------------------------------------- probe */
typedef struct agentd_platform {
	int landlock_abi;		/* 0 = unavailable */
	bool seccomp_filter;		/* seccomp filter mode is there and not refused */
	int cgroup_version;		/* 0 none usable, 1 v1 (incl. hybrid), 2 unified */
	bool cgroup_hybrid;
	bool cgroup_memory, cgroup_pids, cgroup_cpu, cgroup_cpuacct, cgroup_freezer;
	bool cgroup_writable;		/* we may create cgroups */
	bool user_namespaces;		/* unshare(CLONE_NEWUSER) worked in a child */
	bool kvm;			/* /dev/kvm opened and KVM_GET_API_VERSION == 12 */
	bool pidfd;
	bool clone3;
	char kernel[128];
	char reasons[1024];		/* why things are unavailable, "; "-separated */
	char cgroup_reason[256];	/* why no cgroup could be made, or a controller is missing */
} agentd_platform;
/* Real attempts, cached after the first call; a verdict of the last minute for the same
 * euid, cgroup, boot and build is reused (/run/agentd or $XDG_RUNTIME_DIR/agentd). */
const agentd_platform *agentd_probe_platform(void);
/* Before the first agentd_probe_platform(): attempt everything anew (agentd probe). */
void agentd_platform_no_cache(void);

/* --------------------------------------------------------------- OCI runtime (issue 16) */
/* agentd as a runc-compatible OCI runtime: `agentd oci VERB ...`, or main() of the binary
 * invoked under a runtime name (agentd-runc). argv[0] is the program name; returns the
 * exit status. docs/oci-runtime.md. */
int agentd_oci_runtime_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
