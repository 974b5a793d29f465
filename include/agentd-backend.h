/* agentd-backend.h: the interface a backend implements, for the built-in ones and for
 * third-party backends built as .so plugins (agentd_load_plugins). A backend fills the ops
 * tables below, allocates its objects with the two allocators and keeps its own state
 * behind the priv pointers; the core owns everything else (lists, ids, the public API). */
#ifndef AGENTD_BACKEND_H
#define AGENTD_BACKEND_H

#include "agentd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Raised whenever an ops table, an allocator or an accessor below changes shape. A plugin
 * records the version it was built with (AGENTD_PLUGIN_ABI); the loader refuses any other. */
/* 3: agentd_limits.max_snapshot_bytes, enforcement items; 4: background processes
 * (agentd_sandbox_ops.spawn, agentd_process_ops, the agentd_process allocator) and
 * agentd_sandbox_ops.connect (ports, at the end); 5: durable sandboxes
 * (agentd_sandbox_ops.persist and .adopted, agentd_backend_ops.adopt); 6: live network
 * policy (agentd_sandbox_ops.set_network), the files API's agentd_sandbox_ops.root_fd,
 * snapshots the caller stores (agentd_sandbox_ops.snapshot_to and .restore_from),
 * agentd_backend_ops.create_sandbox_from, agentd_sandbox_caps.from_snapshot; 7: images
 * (agentd_spec.image and .writable_root, AGENTD_ITEM_IMAGE) */
#define AGENTD_BACKEND_ABI_VERSION 7u

/* In exactly one file of a plugin: the ABI version it was built against. */
#define AGENTD_PLUGIN_ABI \
	const unsigned agentd_plugin_abi_version = AGENTD_BACKEND_ABI_VERSION

/* What a backend implements. Third-party backends (and .so plugins) fill these. */
typedef struct agentd_sandbox_ops {
	int (*exec)(agentd_sandbox *sb, const agentd_command *cmd, const agentd_exec_ctx *ctx,
		    agentd_exec_output *out, agentd_error *err);
	bool (*is_alive)(agentd_sandbox *sb);
	int (*suspend)(agentd_sandbox *sb, agentd_error *err);		/* NULL = unsupported */
	int (*resume)(agentd_sandbox *sb, agentd_error *err);
	int (*snapshot)(agentd_sandbox *sb, const char *name, char **snapshot_id, agentd_error *err);
	int (*restore)(agentd_sandbox *sb, const char *snapshot_id, agentd_error *err);
	int (*usage)(agentd_sandbox *sb, agentd_usage *u, agentd_error *err);
	/* Release every resource (processes, mounts, cgroup, files). The core frees *sb. */
	int (*destroy)(agentd_sandbox *sb, agentd_error *err);
	/* Files API: a new fd (the caller closes it) of the sandbox's workdir as it was when
	 * the sandbox was created, before any sandboxed code ran, and the host ids files made
	 * there must get. The core resolves every path beneath it (agentd_sandbox_open_file);
	 * a backend never opens a sandbox-controlled path itself. NULL = unsupported. */
	int (*workdir_fd)(agentd_sandbox *sb, uid_t *uid, gid_t *gid, agentd_error *err);
	/* Background processes (agentd_sandbox_spawn): cmd and opts are validated by the
	 * core (stdin_data and timeout_ms unset). Allocate *out with agentd_process_alloc.
	 * NULL = unsupported (the probe says why). */
	int (*spawn)(agentd_sandbox *sb, const agentd_command *cmd,
		     const agentd_process_opts *opts, agentd_process **out, agentd_error *err);
	/* agentd_sandbox_connect: a TCP socket made in the sandbox's network namespace,
	 * connected or connecting to 127.0.0.1:port there (port > 0, checked by the core).
	 * NULL = no network namespace of its own (ENOTSUP). */
	int (*connect)(agentd_sandbox *sb, uint16_t port, agentd_error *err);
	/* agentd_sandbox_persist: the endpoint under dir, *token filled. NULL = ENOTSUP. */
	int (*persist)(agentd_sandbox *sb, const char *dir, char **token, agentd_error *err);
	/* agentd_sandbox_adopted (of a sandbox the backend's adopt made). */
	int (*adopted)(agentd_sandbox *sb, agentd_adoption *out, agentd_error *err);
	/* issue 12: names. agentd_sandbox_set_network (net checked by the core: none or
	 * allowlist, the sandbox's current mode one of those). NULL = ENOTSUP. */
	int (*set_network)(agentd_sandbox *sb, const agentd_network *net, agentd_error *err);
	/* issue 12: files. As workdir_fd, for the sandbox's root ("/" as its processes see
	 * it, held from before any sandboxed code ran; O_PATH will do): the files API resolves
	 * absolute paths outside the workdir beneath it. NULL = only the workdir is reachable. */
	int (*root_fd)(agentd_sandbox *sb, uid_t *uid, gid_t *gid, agentd_error *err);
	/* issue 12: snapshots */
	/* agentd_sandbox_snapshot_to / _restore_from (dir_fd: the caller's directory).
	 * NULL = unsupported. */
	int (*snapshot_to)(agentd_sandbox *sb, int dir_fd, uint64_t max_bytes, uint64_t *bytes,
			   agentd_error *err);
	int (*restore_from)(agentd_sandbox *sb, int dir_fd, agentd_error *err);
} agentd_sandbox_ops;

/* What a backend's background process implements; the core validates the arguments
 * (signal range, tty for resize) and answers the fd and pid accessors. */
typedef struct agentd_process_ops {
	int (*get_status)(agentd_process *p, agentd_process_status *st, agentd_error *err);
	int (*signal)(agentd_process *p, int sig, agentd_error *err);	/* its main process */
	int (*kill)(agentd_process *p, agentd_error *err);		/* its whole tree */
	int (*resize)(agentd_process *p, unsigned rows, unsigned cols, agentd_error *err);
	int (*usage)(agentd_process *p, agentd_usage *u, agentd_error *err);
	/* Its stdin reads EOF; the stdin fd set with agentd_process_set_fds is closed. */
	void (*close_stdin)(agentd_process *p);
	/* Kill the tree if it runs, release the unit, close every fd, free priv. The core
	 * frees the handle. */
	void (*free)(agentd_process *p);
} agentd_process_ops;

typedef struct agentd_backend_ops {
	const char *name;		/* canonical name */
	int (*probe)(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err);
	/* Build a sandbox for spec: allocate with agentd_sandbox_alloc(), set ops/priv. */
	int (*create_sandbox)(agentd_backend *b, const agentd_spec *spec, agentd_sandbox **out,
			      agentd_error *err);
	void (*free_backend)(agentd_backend *b);	/* backend-private teardown, may be NULL */
	/* agentd_backend_adopt: the sandbox id (allocated with that id) back from token.
	 * NULL = no durable sandboxes (ENOTSUP). */
	int (*adopt)(agentd_backend *b, const agentd_spec *spec, const char *id,
		     const char *token, agentd_sandbox **out, agentd_error *err);
	/* issue 12: snapshots */
	/* create_sandbox whose workdir and /tmp start as the snapshot in seed_fd
	 * (agentd_create_opts.from_snapshot): shared where the backend can, else copied; it
	 * sets caps.from_snapshot to say which. NULL: the core creates, then restores. */
	int (*create_sandbox_from)(agentd_backend *b, const agentd_spec *spec, int seed_fd,
				   agentd_sandbox **out, agentd_error *err);
} agentd_backend_ops;

/* Backend factory as the registry stores it. */
typedef int (*agentd_backend_factory)(const char *work_root, agentd_backend **out,
				      agentd_error *err);

int agentd_register_backend(const char *canonical, const char *const *aliases,
			    agentd_backend_factory factory, agentd_error *err);

/* Helpers for backend authors. */
agentd_backend *agentd_backend_alloc(const agentd_backend_ops *ops, const char *work_root);
agentd_sandbox *agentd_sandbox_alloc(agentd_backend *b, const agentd_spec *spec,
				     const agentd_sandbox_ops *ops, agentd_error *err);
/* The same with the id of a sandbox that already exists (adopt). */
agentd_sandbox *agentd_sandbox_alloc_id(agentd_backend *b, const agentd_spec *spec,
					const agentd_sandbox_ops *ops, const char *id,
					agentd_error *err);

/* A background process of sb (for spawn), with the backend's state; its pid in the sandbox,
 * stdio and wait fd (owned by the backend, closed by its free) set once it started. */
agentd_process *agentd_process_alloc(agentd_sandbox *sb, const agentd_process_ops *ops,
				     void *priv, bool tty);
void agentd_process_set_fds(agentd_process *p, int64_t pid, int stdin_fd, int stdout_fd,
			    int stderr_fd, int wait_fd);
void *agentd_process_priv(const agentd_process *p);

/* The backend's and the sandbox's private state (NULL until set). */
void *agentd_backend_priv(const agentd_backend *b);
void agentd_backend_set_priv(agentd_backend *b, void *priv);
void *agentd_sandbox_priv(const agentd_sandbox *sb);
void agentd_sandbox_set_priv(agentd_sandbox *sb, void *priv);
/* What the sandbox reports of itself (agentd_sandbox_get_caps), for create to fill in:
 * readable/writable paths, network, the syscall filter. */
agentd_sandbox_caps *agentd_sandbox_caps_mut(agentd_sandbox *sb);

/* issue 13: oci-runtime. While the registry calls a factory: the name the caller asked for,
 * normalised (an alias or the canonical name), so one backend can serve several tools;
 * NULL outside a factory call. */
const char *agentd_backend_requested_name(void);

/* For probe: item is enforced on this host, or is not, and why (what would make it so).
 * An item never marked enforceable is not: a probe states each one it enforces. */
void agentd_caps_enforce(agentd_backend_caps *caps, agentd_policy_item item);
void agentd_caps_cannot_enforce(agentd_backend_caps *caps, agentd_policy_item item,
				const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
