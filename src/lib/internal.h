/* internal.h: private interfaces between libagentd's files.
 * One section per file; each kernel mechanism has a parent-side "prepare" (may allocate,
 * may fail with a message) and a child-side "apply" (async-signal-safe, raw syscalls only). */
#ifndef AGENTD_INTERNAL_H
#define AGENTD_INTERNAL_H

#include "agentd.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

/* ---------------------------------------------------------- cleanup helpers */
static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int e = errno;
		close(*fd);
		errno = e;
	}
}
static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
static inline int take_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}
static inline void *take_ptr_(void **p)
{
	void *r = *p;
	*p = NULL;
	return r;
}
#define take_ptr(p) take_ptr_((void **)&(p))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* err helpers: set from errno. */
int agentd_error_errno(agentd_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- util.c */
void *xmalloc(size_t n);		/* abort on OOM */
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void strv_push(agentd_strv *sv, const char *s);	/* copies s */
void strv_free(agentd_strv *sv);
void strv_copy(agentd_strv *dst, const agentd_strv *src);
bool strv_contains(const agentd_strv *sv, const char *s);
void kvv_set(agentd_kvv *kv, const char *key, const char *value);	/* replace or append */
const char *kvv_get(const agentd_kvv *kv, const char *key);
void kvv_free(agentd_kvv *kv);
void kvv_copy(agentd_kvv *dst, const agentd_kvv *src);
uint64_t now_ms_monotonic(void);

void random_id(char out[40]);		/* 32 lowercase hex chars from getrandom() */
char *base64_encode(const uint8_t *data, size_t len);
bool utf8_valid(const uint8_t *s, size_t len);
/* Read a whole small file into a NUL-terminated buffer (max bytes); NULL + errno. */
char *read_file_at(int dirfd, const char *path, size_t max, size_t *len_out);
int write_file_at(int dirfd, const char *path, const char *data);	/* 0 or -errno */
/* In a forked child: replace what /proc/self/cmdline shows (agentd's own command line, which
 * may carry a sandboxed command's argv) with name. */
void proc_hide_cmdline(const char *name);

/* ---------------------------------------------------------------- spec.c
 * One table of the resource limits, shared by the validator, the JSON parser and emitter,
 * so a limit added here is parsed, range-checked and emitted everywhere at once. */
struct spec_limit_field {
	const char *name;		/* JSON key under "limits" */
	size_t offset;			/* into agentd_limits */
	bool is_u32;			/* uint32_t field, else uint64_t */
	uint64_t min, max;		/* inclusive; max is at most INT64_MAX (a JSON integer) */
	const char *expect;		/* "expected integer >= 1048576" */
};
extern const struct spec_limit_field spec_limit_fields[];
extern const size_t spec_limit_fields_n;
uint64_t spec_limit_get(const agentd_limits *l, const struct spec_limit_field *f);
void spec_limit_set(agentd_limits *l, const struct spec_limit_field *f, uint64_t v);
/* run_as ids: -1 (default) or 0..SPEC_ID_MAX ((uid_t)-1 is "no change" to the kernel). */
#define SPEC_ID_MAX 4294967294LL
/* Quote s for an error message: "..." with \xNN escapes, cut after ~64 bytes. */
void spec_quote(char *buf, size_t size, const char *s);
/* JSON path of key under prefix: "prefix.key", or prefix["odd key"] when key is not an
 * identifier (prefix may be "" for the root). */
void spec_path_key(char *buf, size_t size, const char *prefix, const char *key);
/* Deep equality; environment and labels compare as maps. */
bool spec_equal(const agentd_spec *a, const agentd_spec *b);

/* ---------------------------------------------------------------- fsutil.c
 * Host-side file work on directories a sandbox may have written into: fd-relative,
 * never following symlinks. */
/* mkdir -p with mode, then chown the last component to uid/gid (-1 = leave). */
int mkdir_p(const char *path, mode_t mode);
/* Remove dirfd/name recursively without following any symlink or crossing mounts. */
int rm_rf_at(int dirfd, const char *name);
int rm_rf(const char *path);
/* Copy the tree under src_dirfd into dst_dirfd without following symlinks; files chowned
 * to uid/gid ((uid_t)-1 = leave), set-id bits dropped, at most *budget bytes. */
int copy_tree_at(int src_dirfd, int dst_dirfd, uid_t uid, gid_t gid, uint64_t *budget);
/* Remove everything inside the directory (fd-relative, no symlink followed). */
int empty_dir_at(int dirfd);

/* ---------------------------------------------------------------- rlimit.c */
#define RLIMIT_SET_MAX 8
struct rlimit_set {
	int n;
	int resource[RLIMIT_SET_MAX];
	struct rlimit value[RLIMIT_SET_MAX];
};
/* RLIMIT_CPU (ceil s, hard = soft+1), RLIMIT_NOFILE, RLIMIT_FSIZE (max_write_bytes),
 * RLIMIT_CORE 0; RLIMIT_NPROC is not used (per-uid, shared): pids come from the cgroup. */
void rlimits_from_limits(const agentd_limits *l, struct rlimit_set *out);
int rlimits_apply(const struct rlimit_set *rs);	/* child: 0 or -errno */

/* ---------------------------------------------------------------- env.c */
/* The environment a command sees: host env cleared, then PATH, HOME, TMPDIR, LANG (sane
 * values), then spec->environment, then cmd->env. NULL-terminated, malloc'd. */
char **env_build(const agentd_spec *spec, const agentd_kvv *extra, const char *home,
		 const char *tmpdir);
void env_free(char **envp);
/* Names that may never be set by policy (LD_PRELOAD, LD_LIBRARY_PATH...)? returns reason */
const char *env_name_forbidden(const char *name);

/* ---------------------------------------------------------------- seccomp.c */
struct seccomp_prog {
	void *filter;			/* struct sock_filter[], malloc'd */
	unsigned short len;
	bool active;			/* false: profile "none" */
	/* JSON profile + deny_inet_sockets: the socket rules as a second, stacked filter
	 * (NULL otherwise); seccomp_apply installs both. */
	void *net_filter;
	unsigned short net_len;
};
struct seccomp_opts {
	const char *profile;		/* "default", "none", or path to OCI/Docker JSON */
	bool deny_inet_sockets;		/* no AF_INET/AF_INET6/AF_PACKET/AF_NETLINK sockets
					 * (backends without a network namespace, net none) */
	bool allow_namespaces;		/* container init needs unshare/mount before its own filter */
};
/* Compile in the parent (libseccomp, exported to BPF). The default profile is a copy of a
 * program compiled at build time (seccomp_default_bpf.h); JSON profiles are compiled here. */
int seccomp_prepare(const struct seccomp_opts *o, struct seccomp_prog *out, agentd_error *err);
/* The default profile for o's deny_inet_sockets/allow_namespaces, compiled now with
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
 * lists, missing paths skipped); TCP denied and signals/abstract sockets scoped when the
 * ABI has them. Returns the ruleset fd or -errno. */
int landlock_ruleset_child(const char *const *ro, const char *const *rw, bool deny_tcp,
			   bool scopes);
/* The read-only system runtime every sandbox sees (/usr, /lib*, /bin, /sbin, and /etc
 * entry by entry from an allowlist — never shadow, gshadow, sudoers, ssh keys...). */
void landlock_system_ro_paths(agentd_strv *out);

/* ---------------------------------------------------------------- backend.c */
/* A built-in backend's one-shot path for agentd_backend_run: set up, run cmd and tear
 * down in one pass (the sandbox is never listed). Plugins keep create + exec + destroy,
 * and so does a spec the fast path does not serve (it returns 1). */
typedef int (*backend_run_once_fn)(agentd_backend *b, const agentd_spec *spec,
				   const agentd_command *cmd, const agentd_exec_ctx *ctx,
				   agentd_exec_output *out, char id[40], agentd_error *err);
void backend_set_run_once(agentd_backend *b, backend_run_once_fn fn);

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

/* ---------------------------------------------------------------- cgroup.c */
struct cgroup;	/* one interface over v1 (incl. hybrid) and v2 */
struct cgroup_events {
	uint64_t oom_kills;		/* v2 memory.events oom_kill, v1 memory.oom_control oom_kill */
	uint64_t pids_max_hits;		/* pids.events max */
};
/* Create agentd/<name> under each needed hierarchy, apply limits (memory + no swap,
 * pids.max, cpu weight/quota). NULL + err when cgroups are unusable. */
struct cgroup *cgroup_create(const char *name, const agentd_limits *l, agentd_error *err);
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
/* Reattach to an existing agentd/<name> (daemon restart); limits are left as they are.
 * NULL + err when it does not exist. */
struct cgroup *cgroup_open(const char *name, agentd_error *err);
/* SIGKILL every process in the cgroup (v2 cgroup.kill, else freeze + kill + thaw), wait
 * until empty (bounded). */
int cgroup_kill_all(struct cgroup *cg);
bool cgroup_is_populated(const struct cgroup *cg);
int cgroup_freeze(struct cgroup *cg, bool frozen, agentd_error *err);
int cgroup_read_usage(const struct cgroup *cg, agentd_usage *u);
int cgroup_read_events(const struct cgroup *cg, struct cgroup_events *ev);
/* Kill all, rmdir everywhere, free. Safe on NULL. */
void cgroup_destroy(struct cgroup *cg);
/* Fill platform cgroup fields (version, hybrid, controllers, writable). */
void cgroup_probe(agentd_platform *p);
/* Remove leftover agentd cgroups whose processes are gone (after a crash). Cgroups held by
 * a live struct cgroup (of any process: each holds a flock on its dir) are left alone. */
void cgroup_gc(void);
/* Tests only: forget the detected layout; v1_only ignores a hybrid host's unified
 * hierarchy, legacy_kill kills through the freezer even where cgroup.kill exists. Call
 * with no struct cgroup alive. */
void cgroup_test_mode(bool v1_only, bool legacy_kill);

/* ---------------------------------------------------------------- janitor.c
 * Cleanup that survives a SIGKILL of the sandbox's owner: watched cgroups and dirs are
 * destroyed by a separate process when the owner goes away without forgetting them. */
void janitor_watch_cgroup(const char *name);
void janitor_forget_cgroup(const char *name);
void janitor_watch_dir(const char *path);
void janitor_forget_dir(const char *path);

/* ---------------------------------------------------------------- privs.c */
struct privs_plan {
	bool switch_user;		/* setgroups(0)+setresgid+setresuid to uid/gid */
	uid_t uid;
	gid_t gid;
	bool drop_caps;			/* clear bounding, ambient, inheritable, permitted, effective */
};
int privs_apply(const struct privs_plan *p);	/* child: 0 or -errno */
/* child: setgroups(0) (when drop_groups) + setresgid + setresuid as raw syscalls, safe in a
 * clone3 child of a multithreaded process. 0 or -errno. */
int privs_set_ids(uid_t uid, gid_t gid, bool drop_groups);
int privs_no_new_privs(void);			/* child */

/* ---------------------------------------------------------------- fds.c */
/* child: close every fd >= lowfd (close_range, /proc/self/fd fallback). */
int fds_close_from(int lowfd);

/* ---------------------------------------------------------------- exec.c
 * The one spawn path every backend uses. */
enum { REPORT_FAIL = 0, REPORT_EXIT = 1 };
struct child_report {
	int kind;			/* REPORT_FAIL: setup/exec failed; REPORT_EXIT: status */
	int exit_code;			/* FAIL: what to report (125/126/127) */
	int errnum;
	int status;			/* EXIT: wait status of the command */
	struct rusage ru;		/* EXIT: the command's resource usage */
	char what[256];			/* "landlock_restrict_self", "execve /bin/foo", ... */
};
/* child: report a setup failure on the error pipe and _exit(exit_code); the report alone
 * (no exit) for a process that goes on, the container's init. */
void child_report_fail(int errfd, int exit_code, int errnum, const char *what);
__attribute__((noreturn)) void child_fail(int errfd, int exit_code, int errnum, const char *what);
/* child: execve with a PATH search over envp's PATH, no malloc; returns -errno. */
int child_execvpe(char *const argv[], char *const envp[]);
/* child: exit code for a failed child_execvpe (127 not found, 126 otherwise). */
int exec_failure_code(int neg_errno);
/* parent: the signals this process ignores (a bit per signal, bit 0 = signal 1). */
uint64_t ignored_signals(void);
/* child: empty the signal mask and reset the ignored signals to their defaults (handlers
 * are reset by execve), which is what a command expects. */
void child_reset_signals(uint64_t ignored);

/* A process started with clone3 (fork semantics, optional namespaces, straight into a
 * cgroup). With after_clone set, the child first waits until the parent hook (e.g. uid
 * maps) has run; child_fn must not return. */
struct spawn_opts {
	uint64_t clone_flags;		/* CLONE_NEW* */
	struct cgroup *cg;		/* joined before child_fn runs; may be NULL */
	int (*after_clone)(void *arg, pid_t pid, agentd_error *err);
	void *after_arg;
	void (*child_fn)(void *arg);
	void *child_arg;
};
pid_t spawn_process(const struct spawn_opts *o, int *pidfd, agentd_error *err);
/* A child of ours that the no-cgroup orphan sweep must leave alone (the janitor). */
void exec_keep_child(pid_t pid);

/* How a command is started when it is not a direct child (e.g. forked by a sandbox's
 * init). Exit is then signalled by EOF on the report pipe, after a REPORT_EXIT. */
struct exec_launcher {
	/* Start with these fds (in, out, err, report write end); 0 or -1 + err. */
	int (*start)(void *arg, const int fds[4], uint64_t *handle, agentd_error *err);
	/* Kill the command's tree (timeout, cancel). */
	void (*kill)(void *arg, uint64_t handle);
};

typedef struct exec_request {
	char *const *argv;
	char *const *envp;
	const char *cwd;		/* chdir target (in the child, after jail setup) */
	const uint8_t *stdin_data;
	size_t stdin_len;
	bool stdin_null;		/* stdin from /dev/null */
	uint64_t timeout_ms;		/* 0 = none */
	uint64_t max_output_bytes;
	uint64_t cpu_limit_ms;		/* for limit attribution (SIGXCPU/SIGKILL) */
	struct cgroup *cg;		/* may be NULL: then process-group + subreaper cleanup */
	/* Or: the launcher makes the cgroup during start() (a fresh one, counters at zero)
	 * and stores it here. */
	struct cgroup *const *cg_late;
	/* Jail steps: run in the child after setsid and dup of stdio, before execve.
	 * errfd is the error pipe (CLOEXEC) at fd 3; must call child_fail on error. */
	void (*child_setup)(void *arg, int errfd);
	void *child_arg;
	const struct exec_launcher *launcher;	/* NULL = spawn directly */
	void *launcher_arg;
	agentd_output_cb on_output;
	void *userdata;
	int cancel_fd;			/* > 0: readable = kill the tree and stop */
} exec_request;
/* Spawn, feed stdin, capture stdout/stderr with one epoll loop, enforce timeout and output
 * cap, kill everything the command started once it ends, fill out. Returns 0 when the
 * command ran (whatever its exit code, 126/127 included) and -1 when agentd itself failed
 * (err set, out->exit_code = 125). */
int exec_run(const exec_request *req, agentd_exec_output *out, agentd_error *err);

/* ---------------------------------------------------------------- jail.c
 * The jail pipeline shared by host-direct and linux-native (nsjail contain.cc style). */
struct jail_plan {
	struct rlimit_set rlimits;
	struct privs_plan privs;
	int landlock_fd;		/* -1 = no Landlock */
	struct seccomp_prog seccomp;
	agentd_strv rw_check;		/* paths that must be writable after the uid switch */
};
void jail_plan_init(struct jail_plan *p);
void jail_plan_free(struct jail_plan *p);
void jail_child_apply(void *plan, int errfd);	/* exec_request.child_setup */
/* uid/gid commands run as when agentd is root (spec run_as or 65534). */
void jail_run_identity(const agentd_spec *spec, struct privs_plan *out);

/* ---------------------------------------------------------------- sandbox_dir.c */
/* <work_root>/<id>/{workspace,tmp} owned by uid:gid (mode 0700), work_root 0711. */
int sandbox_dir_create(const char *work_root, const char *id, uid_t uid, gid_t gid,
		       char **dir_out, agentd_error *err);
void sandbox_dir_remove(const char *work_root, const char *id);

/* ---------------------------------------------------------------- netpolicy.c
 * The egress allowlist of network mode "allowlist": parsed entries, matching, and the
 * address classes a listed *name* may never lead to (DNS rebinding, metadata, private
 * ranges) unless the address itself is listed. */
enum np_kind { NP_NAME, NP_SUFFIX, NP_CIDR };
struct np_entry {
	enum np_kind kind;
	char name[254];			/* NAME: the host; SUFFIX: the domain after "*."; lower case */
	int af;				/* CIDR: AF_INET (IPv4-mapped IPv6 is stored as IPv4) or AF_INET6 */
	uint8_t addr[16];		/* CIDR: network address, host bits cleared */
	unsigned prefix;
	uint16_t port;			/* 0 = any port (CIDR without ":port") */
	char text[96];			/* the entry as written (for logs), cut */
};
struct netpolicy {
	struct np_entry *v;
	size_t n;
	bool has_cidr;			/* unlisted names are resolved only to test them against a range */
};
enum net_addr_class {
	NET_ADDR_PUBLIC = 0,
	NET_ADDR_LOOPBACK,
	NET_ADDR_PRIVATE,		/* RFC 1918, 100.64/10, 198.18/15, fc00::/7, fec0::/10 */
	NET_ADDR_LINK_LOCAL,
	NET_ADDR_METADATA,		/* 169.254.169.254, 100.100.100.200 */
	NET_ADDR_MULTICAST,
	NET_ADDR_UNSPECIFIED,		/* 0.0.0.0/8, :: */
	NET_ADDR_RESERVED,
};
/* NULL when s is a valid entry (then *e, if e, holds it), else the reason. */
const char *netpolicy_entry_parse(const char *s, struct np_entry *e);
bool net_valid_hostname(const char *s, size_t n);	/* RFC 1123, last label not numeric */
int netpolicy_build(const agentd_strv *allow, struct netpolicy *np, agentd_error *err);
void netpolicy_free(struct netpolicy *np);
/* Whether an address/CIDR entry allows port (then an unlisted name may be resolved, to test
 * its addresses against the ranges; otherwise resolving it would only leak it to DNS). */
bool netpolicy_cidr_for_port(const struct netpolicy *np, uint16_t port);
/* The NAME/SUFFIX entry allowing host:port, or NULL. */
const struct np_entry *netpolicy_match_name(const struct netpolicy *np, const char *host,
					    uint16_t port);
/* The CIDR entry containing addr (4 or 16 bytes of family af) with a matching port. */
const struct np_entry *netpolicy_match_addr(const struct netpolicy *np, int af,
					    const uint8_t *addr, uint16_t port);
enum net_addr_class net_addr_classify(int af, const uint8_t *addr);
const char *net_addr_class_name(enum net_addr_class c);
/* A target given as an address: allowed (1, *by set) only when a CIDR entry lists it. */
int netpolicy_decide_literal(const struct netpolicy *np, int af, const uint8_t *addr,
			     uint16_t port, const struct np_entry **by, char *why, size_t why_len);
/* An address a name resolved to (by_name: the entry that listed the name, or NULL): allowed
 * when a CIDR entry lists it, or when the name is listed and the address is public. */
int netpolicy_decide_resolved(const struct netpolicy *np, const struct np_entry *by_name, int af,
			      const uint8_t *addr, uint16_t port, const struct np_entry **by,
			      char *why, size_t why_len);

/* ---------------------------------------------------------------- proxy_parse.c
 * Pure parsers of what a sandbox sends its egress proxy (hostile bytes; every read is
 * bounds-checked; fuzzed by fuzz/fuzz_proxy.c). */
#define HTTP_MAX_HEADER 16384		/* request line + headers */
struct http_request {
	char method[16];
	bool is_connect;		/* CONNECT host:port, else an absolute http:// URI */
	char host[256];			/* lower case; an IPv6 literal without brackets */
	bool host_is_addr;		/* host is an IP literal: af/addr hold it */
	int af;
	uint8_t addr[16];
	uint16_t port;
	size_t header_len;		/* bytes up to and including the blank line */
	size_t path_off, path_len;	/* origin-form target within the buffer ("" = "/") */
	size_t version_off;		/* "HTTP/1.x" within the buffer */
	size_t headers_off;		/* first header line within the buffer */
};
enum { HTTP_PARSE_MORE = 0, HTTP_PARSE_DONE = 1, HTTP_PARSE_BAD = -1 };
/* Parse a proxy request at the start of buf. MORE: no blank line yet (and within limits);
 * BAD: *why says what is wrong. */
int http_parse_request(const uint8_t *buf, size_t len, struct http_request *req,
		       const char **why);
/* The request as the origin server gets it: origin-form target, hop-by-hop and Proxy-*
 * headers removed, "Connection: close". Returns the length written, 0 when out is too small. */
size_t http_rewrite_request(const uint8_t *buf, const struct http_request *req, uint8_t *out,
			    size_t out_cap);
/* "host:port", "[v6]:port", "1.2.3.4:port" (port required unless default_port). NULL or why. */
const char *net_parse_authority(const char *s, size_t n, uint16_t default_port,
				struct http_request *req);
enum { TLS_SNI_FOUND = 1, TLS_SNI_ABSENT = 0, TLS_NOT_TLS = -1, TLS_INCOMPLETE = -2,
       TLS_MALFORMED = -3 };
#define TLS_MAX_HELLO_RECORD (16384 + 5)
/* The server_name of the ClientHello that starts buf (one TLS record), lower case. */
int tls_client_hello_sni(const uint8_t *buf, size_t len, char *sni, size_t sni_cap);
/* SOCKS5 (RFC 1928) without authentication, CONNECT only; the same MORE/DONE/BAD results.
 * The greeting: *used = its length; DONE only when "no authentication" is offered. */
int socks5_parse_greeting(const uint8_t *buf, size_t len, size_t *used, const char **why);
/* The request: req as for an HTTP CONNECT (method "SOCKS5"), header_len its length. */
int socks5_parse_request(const uint8_t *buf, size_t len, struct http_request *req,
			 const char **why);

/* ---------------------------------------------------------------- proxy_resolve.c
 * getaddrinfo on worker threads; results are picked up by the proxy's loop. */
struct resolved_addr {
	int af;
	uint8_t addr[16];
};
struct resolve_result {
	uint64_t tag;			/* the caller's, returned as given */
	int error;			/* getaddrinfo's code, 0 = ok */
	size_t n;
	struct resolved_addr a[8];
};
struct resolver;
/* notify_fd (an eventfd) gets a write for each finished lookup. */
struct resolver *resolver_start(unsigned threads, int notify_fd, agentd_error *err);
/* -1 when RESOLVER_MAX_QUEUED lookups already wait. */
#define RESOLVER_MAX_QUEUED 1024
int resolver_submit(struct resolver *r, uint64_t tag, const char *host);
size_t resolver_take(struct resolver *r, struct resolve_result *out, size_t max);
void resolver_stop(struct resolver *r);	/* joins the workers */

/* ---------------------------------------------------------------- backend.c (proxy) */
/* The proxy allowlist sandboxes of b attach to: the one set, else one started now. */
agentd_proxy *backend_egress_proxy(agentd_backend *b, agentd_error *err);

/* ---------------------------------------------------------------- sandbox_files.c */
/* The workdir_fd op of a backend that holds its workdir fd: a CLOEXEC dup of fd, and the
 * fs ids (uid/gid, (uid_t)-1 = leave) files made there get. */
int sandbox_workdir_dup(int fd, uid_t uid, gid_t gid, uid_t *uid_out, gid_t *gid_out,
			agentd_error *err);

/* ---------------------------------------------------------------- registry.c */
void registry_ensure_builtins(void);
/* built-in factories */
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
	bool require_cgroup;		/* fail create when cgroups are unusable */
};
int process_sandbox_create(agentd_backend *b, const agentd_spec *spec,
			   const struct process_sandbox_opts *o, const agentd_sandbox_ops *ops,
			   agentd_sandbox **out, agentd_error *err);
extern const agentd_sandbox_ops process_sandbox_ops;
/* Probe fields common to the process backends. */
void process_probe_common(agentd_backend_caps *caps, const agentd_platform *p);

/* ---------------------------------------------------------------- mounts.c
 * The container's fresh root, bubblewrap style: mount_plan_build turns a spec into an
 * ordered list of small operations (parent: may allocate, validates, names the bad path);
 * mount_plan_execute replays them in the child with syscalls only and pivots into the
 * result. Data first, then one loop that acts on it. */
enum mount_op_kind {
	MOUNT_OP_PRIVATE,	/* make target and everything below it MS_PRIVATE */
	MOUNT_OP_TMPFS,		/* tmpfs at target: flags (MS_*), data = options */
	MOUNT_OP_DIR,		/* mkdir (mode), then chown to uid/gid unless (uid_t)-1 */
	MOUNT_OP_FILE,		/* create with data/data_len (empty: a mount point) */
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
};
#define MOUNT_OPF_SOURCE_IN_ROOT 0x1	/* source is a path in the new root, not on the host */
#define MOUNT_OPF_RECURSIVE 0x2		/* SET_ATTR applies to the whole tree */
#define MOUNT_OPF_OPTIONAL 0x4		/* a missing target is skipped (/proc masks) */
#define MOUNT_OPF_RESOLVE 0x8		/* the target lies in a host tree: resolve it in the new
					 * root without following symlinks (openat2) */
struct mount_op {
	enum mount_op_kind kind;
	unsigned opflags;		/* MOUNT_OPF_* */
	char *source;			/* host path (BIND, DEV_NODE, MASK_FILE) */
	char *target;			/* absolute; in the new root once ENTER has run */
	char *data;			/* FILE content, SYMLINK target, mount options */
	size_t data_len;
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
	char *cache;			/* prepared /etc and /dev (NULL: built in the scratch) */
	char *warning;			/* why the cache was not used (for a log), or NULL */
};
struct mount_plan_opts {
	uid_t sandbox_uid;		/* owner of the workdir: ids INSIDE the namespace, mapped */
	gid_t sandbox_gid;
	const char *hostname;		/* /etc/hostname, /etc/hosts; NULL = "agentd" */
	bool network_none;		/* resolv.conf says "nameserver 127.0.0.1"; else the host's */
	/* Host directory (root-owned, created 0711) where the parent keeps read-only copies
	 * of the allowlisted /etc files and a /dev skeleton, one variant per fingerprint of
	 * their sources: a sandbox then binds /etc and /dev whole instead of building them
	 * entry by entry (about 40 fewer mounts). NULL = build both in the scratch. */
	const char *cache_dir;
	const char *base_dir;		/* NULL = the first of /tmp, /mnt, ... clear of every source */
};
/* Parent side: validate the spec's paths and build the ordered operations. Errors name
 * the JSON path and the host path ("bind_mounts[1].target: /proc/x: would shadow /proc"). */
int mount_plan_build(const agentd_spec *spec, const struct mount_plan_opts *o,
		     struct mount_plan *plan, agentd_error *err);
void mount_plan_free(struct mount_plan *plan);	/* safe on a zeroed or half-built plan */
/* Child side (no malloc, no stdio): in a fresh mount namespace, with CAP_SYS_ADMIN in the
 * user namespace owning it, id maps written (the workdir is chowned), in the pid namespace
 * /proc is for. Ends in the new root, cwd "/", root read-only, umask as it was. On failure
 * returns -errno with the failing operation in what ("bind /usr"). */
int mount_plan_execute(const struct mount_plan *plan, char *what, size_t what_len);
/* One line per operation (tests, debugging). */
void mount_plan_describe(const struct mount_plan *plan, FILE *out);
/* Tests only: execute as on a kernel before 5.12 (no mount_setattr, open_tree, openat2),
 * i.e. through MS_REMOUNT with the flags a mount already has. */
void mount_plan_test_legacy(bool on);

#endif
