/* backends.h: what the built-in backends share (src/lib/backends/): the backend and sandbox
 * objects behind the public handles, the one-shot fast path, the egress proxy a backend's
 * allowlist sandboxes attach to, the process backends (host-direct, linux-native) and the
 * factories the registry calls. The container backend has its own folder below. Includes
 * engine/, net/ and what they include. */
#ifndef AGENTD_BACKENDS_H
#define AGENTD_BACKENDS_H

#include "lib/engine/engine.h"
#include "lib/net/net.h"
#include "agentd-backend.h"

#include <pthread.h>

/* ---------------------------------------------------------------- base.c
 * The objects behind the public handles (opaque to users; plugins use accessors). */
/* A built-in backend's one-shot path for agentd_backend_run: set up, run cmd and tear
 * down in one pass (the sandbox is never listed). Plugins keep create + exec + destroy,
 * and so does a spec the fast path does not serve (it returns 1). */
typedef int (*backend_run_once_fn)(agentd_backend *b, const agentd_spec *spec,
				   const agentd_command *cmd, const agentd_exec_ctx *ctx,
				   agentd_exec_output *out, char id[AGENTD_ID_LEN], agentd_error *err);
struct agentd_backend_internal {
	backend_run_once_fn run_once;	/* a built-in backend's one-pass one-shot, or NULL */
	pthread_mutex_t lock;
	agentd_sandbox *head;
	uint32_t active;
	time_t last_created;
	agentd_proxy *proxy;		/* egress proxy of allowlist sandboxes */
	agentd_proxy *own_proxy;	/* started here: stopped with the backend */
	/* issue 13: img-store */
	agentd_image_store *image_store;	/* where spec->image resolves (not owned) */
	agentd_image_store *own_image_store;	/* the default one, opened here on first need */
};

struct agentd_backend {
	const agentd_backend_ops *ops;
	char *work_root;		/* per-backend state directory */
	void *priv;
	struct agentd_backend_internal *internal;	/* core bookkeeping (sandbox list) */
};

struct agentd_sandbox {
	const agentd_sandbox_ops *ops;
	agentd_backend *backend;
	char id[AGENTD_ID_LEN];
	agentd_spec spec;
	agentd_sandbox_caps caps;
	time_t created_at;
	void *priv;
	agentd_sandbox *next;		/* core list linkage */
	pthread_mutex_t procs_lock;	/* procs */
	agentd_process *procs;		/* its process handles not freed yet */
	bool durable;			/* persisted or adopted (agentd_sandbox_is_durable) */
};

/* A background process (agentd_sandbox_spawn): the backend's ops and state, and what the
 * core answers itself. */
struct agentd_process {
	const agentd_process_ops *ops;
	agentd_sandbox *sb;
	void *priv;
	bool tty;
	int64_t pid;
	int fds[4];			/* stdin, stdout, stderr, wait: the backend's */
	agentd_process *next, *prev;	/* in sb->procs while attached */
	/* Its sandbox was destroyed before the handle was freed: the backend's part is gone
	 * (its tree killed, its fds closed), the handle only reports that it ended. */
	bool orphaned;
	int64_t orphaned_at_ms;
};
/* core/process.c: every handle of sb still open released (its tree killed), each left to
 * report the end until its owner frees it; the first step of a destroy. */
void process_orphan_all(agentd_sandbox *sb);

/* The object of agentd_sandbox_alloc, its spec and caps (not what the backend keeps in priv:
 * that is its destroy's, or its failed create's). */
void backend_sandbox_free(agentd_sandbox *sb);


/* ---------------------------------------------------------------- base.c: the one-shot hook */
void backend_set_run_once(agentd_backend *b, backend_run_once_fn fn);

/* ---------------------------------------------------------------- base.c: the egress proxy */
/* The proxy allowlist sandboxes of b attach to: the one set, else one started now. */
agentd_proxy *backend_egress_proxy(agentd_backend *b, agentd_error *err);

/* ---------------------------------------------------------------- shared.c */
/* The engine's request for cmd in sb: the wall timeout (the command's own when shorter than
 * the sandbox's), output cap, CPU limit for attribution, stdin, callbacks. */
exec_request backend_exec_request(const agentd_sandbox *sb, const agentd_command *cmd,
				  const agentd_exec_ctx *ctx, char **envp, const char *cwd,
				  struct cgroup *cg);
/* The capabilities every backend reports alike: writable, network and its destinations,
 * the syscall filter's categories, persistent. Paths are the backend's to fill. */
void backend_caps_fill(agentd_sandbox *sb, bool has_network, bool filtered);
/* issue 13: oci-runtime. Every client pointed at the egress proxy, the only way out of an
 * allowlist sandbox: HTTP_PROXY and friends into extra. */
void backend_proxy_env(agentd_kvv *extra);
/* A command's environment: the spec's, extra's defaults (consumed), the proxy's when
 * proxied, then the command's own. */
char **backend_envp(const agentd_sandbox *sb, agentd_kvv *extra, bool proxied,
		    const agentd_command *cmd);

/* ---------------------------------------------------------------- factories (registry.c) */
int host_direct_backend_new(const char *work_root, agentd_backend **out, agentd_error *err);
int linux_native_backend_new(const char *work_root, agentd_backend **out, agentd_error *err);
int container_backend_new(const char *work_root, agentd_backend **out, agentd_error *err);
extern const agentd_sandbox_ops container_sandbox_ops;

/* ---------------------------------------------------------------- backends/process.c
 * Sandboxes whose isolation is applied to each command as it starts (no long-lived
 * init): a private dir and a cgroup that persist across execs. host-direct and
 * linux-native differ only in these options. */
struct process_sandbox_opts {
	bool landlock;			/* Landlock filesystem rules (+ TCP, scopes) */
	bool seccomp;			/* the spec's seccomp profile */
};
int process_sandbox_create(agentd_backend *b, const agentd_spec *spec,
			   const struct process_sandbox_opts *o, const agentd_sandbox_ops *ops,
			   agentd_sandbox **out, agentd_error *err);
extern const agentd_sandbox_ops process_sandbox_ops;
/* Probe fields common to every built-in backend: features, warnings, and the policy items
 * they enforce alike (cgroup limits, rlimits, wall time, output, run_as when root). */
void process_probe_common(agentd_backend_caps *caps, const agentd_platform *p);
/* The items no backend without mount and network namespaces can provide. */
void process_probe_items(agentd_backend_caps *caps, const char *backend);

#endif
