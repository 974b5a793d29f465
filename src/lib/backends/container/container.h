/* container.h: what the container backend's files share: its lifecycle (container.c), the
 * start of its init (start.c), commands (run.c), the init itself (init.c), their control
 * protocol (ctl.c) and snapshots (snapshot.c). Private to them. */
#ifndef AGENTD_CONTAINER_H
#define AGENTD_CONTAINER_H

#include "lib/backends/backends.h"

#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <inttypes.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>

/* The sandbox's only user: commands run as uid/gid 1000 inside, the only id mapped, so
 * there is no root inside at all (files of the host's root show as nobody). run_as uid 0
 * makes it uid/gid 0 instead: root of the sandbox's own user namespace only, still mapped
 * to the sandbox's unprivileged host id, with no capability left once the init sealed. */
#define AGENT_ID 1000
#define MAX_EXECS 64
/* A durable init's table: MAX_EXECS running, and as many ended ones its host has not
 * forgotten yet (the oldest ended one goes first when it is full). */
#define MAX_ENTRIES (2 * MAX_EXECS)
#define MAX_PAYLOAD (8u << 20)	/* argv + env + cwd of one exec */
#define INIT_CTL_FD 3
#define INIT_SETUP_FD 4
#define INIT_LANDLOCK_FD 5
#define INIT_ONCE_FD 6	/* one-shot: the command's stdin, stdout, stderr (6, 7, 8) */
#define INIT_LANDLOCK_NET_FD 6	/* persistent: the connect layer of network "none" */
#define CHILD_REPORT_FD 3
#define DESTROY_WAIT_MS 2000
#define UNIT_POOL 8		/* idle kill units kept per sandbox */
#define STR_(x) #x
#define STR(x) STR_(x)

/* OP_ROOT_FD: the init's root (O_PATH, on the scratch tmpfs) once it is set up; a one-shot
 * init sends it over the kill socket before its command starts, so the host can fstatfs
 * the scratch even after the namespace is gone. */
enum {
	OP_EXEC = 1,
	OP_KILL = 2,
	OP_PROXY_FD = 3,	/* init → host: the egress proxy's listener */
	OP_ROOT_FD = 4,		/* init → host: its root (O_PATH), once set up */
	OP_SPAWN = 5,		/* a background process: OP_EXEC's fds, a REPORT_START back */
	OP_SIGNAL = 6,		/* sig to the main process of exec or process id */
	OP_SOCKET = 7,		/* host → init, with a reply socket: a TCP socket of the
				 * sandbox's network namespace comes back on it (connect.c),
				 * or no fd and the errno in id */
	/* issue 12: names */
	OP_NETWORK = 10,	/* host → init, with a reply socket: the network mode of the
				 * commands started from now on (flags: NET_MODE_*); for
				 * allowlist a new egress listener comes back on it, for none
				 * an empty reply; or no fd and the errno in id */
	/* issue 13: img-root */
	OP_IMAGE = 11,		/* host → init: its image's use lock (a shared flock), kept for
				 * the init's life: a durable sandbox keeps its image in use
				 * while no host holds it */
	OP_DURABLE = 8,		/* host → init: fds it keeps for a later host (flags:
				 * DURABLE_*, their mask in sig); a DURABLE_PERSIST is
				 * answered on the control socket (id: 0 or the errno) */
	OP_FORGET = 9,		/* host → init: the end of command id is known to the host:
				 * its entry (kept fds, payload) may go */
};
/* OP_DURABLE forms. PERSIST: fds = the endpoint (a bound unix socket the init listens
 * on), a memfd with the secret (DURABLE_SECRET_LEN bytes), then those of sig's KEPT_*
 * mask in bit order. KEEP: fds of command id the host holds (sig: KEEP_* mask, in bit
 * order), kept with its entry until it is forgotten. */
#define DURABLE_PERSIST 1u
#define DURABLE_KEEP 2u
#define DURABLE_SECRET_LEN 32
enum { KEPT_PIDFD, KEPT_ROOT, KEPT_WORKDIR, KEPT_PTS, KEPT_PROXY, KEPT_LEASE, KEPT_N };
enum { KEEP_IN, KEEP_OUT, KEEP_ERR, KEEP_REP, KEEP_PAYLOAD, KEEP_N };

/* The init's side of the durable protocol, on each connection it accepts (its endpoint):
 * a durable_hello with the KEPT_* fds, then n_entries durable_entry messages, each with
 * its KEEP_* fds; from then on that connection is its control socket (ops above).
 * DURABLE_PROTO is the version of what the init speaks: it only grows compatibly (fields
 * appended, new ops and flags a host may ignore), so a newer host adopts an older init. */
#define DURABLE_PROTO 1u
#define DURABLE_MAGIC 0x61647231u	/* "adr1" */
struct durable_hello {
	uint32_t magic, version;
	uint32_t kept;		/* KEPT_* mask of the fds attached */
	uint32_t n_entries;
	uint64_t next_id;	/* the highest command id it was sent */
	uint8_t secret[DURABLE_SECRET_LEN];
};
#define ENTRY_BACKGROUND 1u	/* OP_SPAWN's (else an OP_EXEC's, killed: its host is gone) */
#define ENTRY_ENDED 2u		/* reaped: status and ended_ms are set */
#define ENTRY_TTY 4u
struct durable_entry {
	uint64_t id;
	int32_t pid;		/* in the sandbox */
	int32_t status;		/* wait status, once ENTRY_ENDED */
	uint32_t flags;		/* ENTRY_* */
	uint32_t keep;		/* KEEP_* mask of the fds attached */
	int64_t started_ms, ended_ms;
	uint64_t unit;		/* its kill unit u<unit>, 0 = none (OP_EXEC's, OP_SPAWN's sig) */
};
#define NET_MODE_NONE 0u
#define NET_MODE_ALLOWLIST 1u
#define SPAWN_TTY 1u	/* OP_SPAWN flags: stdio is a terminal's slave, made its ctty */
#define CTL_KILL_ALL 0	/* OP_KILL's id for every process but the init (exec ids start at 1) */
struct ctl_msg {
	uint32_t op;
	uint32_t cpu_s;		/* OP_EXEC, OP_SPAWN: the command's RLIMIT_CPU (s), 0 = the
				 * sandbox's */
	uint64_t id;
	int32_t sig;		/* OP_SIGNAL; OP_EXEC, OP_SPAWN: its kill unit's number (u<n>),
				 * kept for a later host of a durable sandbox, 0 = none */
	uint32_t flags;		/* OP_SPAWN: SPAWN_* */
};

/* One-shot mode: the one command the init runs right after its setup (its stdio, report
 * pipe and the kill pipe are at fixed fds: init_plan_once in container.c). */
struct init_once {
	char *const *argv;
	char *const *envp;
	const char *cwd;
};

/* What the init needs, prepared by the parent before the clone (the child only reads). */
struct init_args {
	struct jail_init_plan jail;	/* its confinement; what follows is its storage */
	const struct init_once *once;	/* NULL: a persistent sandbox, served over ctl */
	const struct rlimit_set *rl;	/* its commands' */
	struct ctl_msg listener_msg;	/* OP_PROXY_FD, with the egress listener */
	const char *ll_ro[4];
	const char *ll_rw[64];
	const char *rw_check[64];
	bool net_none;			/* issue 12: its network starts as "none" */
};

struct ctr {
	int ctl;
	pid_t init_pid;
	int init_pidfd;
	struct cgroup *cg;
	uid_t host_uid;
	gid_t host_gid;
	uid_t inner_id;			/* its uid and gid inside: AGENT_ID, or 0 (run_as 0) */
	struct host_ids ids;		/* the leased host_uid/host_gid (lib/host/host_ids.c) */
	bool unprivileged;
	struct rlimit_set rl;
	pthread_mutex_t lock;
	bool suspended;
	uint64_t next_id;
	/* Kill units (cgroup_create_child) of ended commands, empty and ready for the next:
	 * making one per command would cost its mkdirs and rmdirs on every exec's path. */
	struct cgroup *idle_units[UNIT_POOL];
	int n_idle;
	uint64_t unit_seq;
	char *snap_dir;			/* <work_root>/<id>, created on the first snapshot */
	uint64_t snap_bytes;		/* host disk its snapshots occupy (max_snapshot_bytes) */
	uint64_t seed_bytes;		/* issue 12: what its overlays' lower layers hold (a
					 * snapshot of it may copy that beyond max_write_bytes) */
	int root_fd;			/* the sandbox's root (O_PATH), sent by its init: the host's
					 * way in, also when it may not open /proc/<init>/root
					 * (an unprivileged owner of a non-dumpable init), and,
					 * on the scratch tmpfs, what fstatfs measures writes by
					 * (bytes written, the write limit); -1 until sent */
	int workdir_fd;			/* the workdir in the sandbox's root, opened before any
					 * sandboxed code ran (files API) */
	int pts_fd;			/* its own devpts instance (/dev/pts), opened then too:
					 * where its processes' terminals come from; -1 without */
	uint64_t bytes_written;		/* of all its execs */
	uint64_t cpu_ms;		/* of all its execs (rusage): the budget's account
					 * where the cgroup has no CPU accounting */
	agentd_proxy *proxy;		/* serving this sandbox's listener (allowlist) */
	int proxy_fd;			/* a dup of that listener: the init keeps it for a
					 * later host (durable.c); -1 without */
	/* durable.c: agentd_sandbox_persist made it outlive its owner, or it was adopted */
	bool durable;
	char *token;			/* what agentd_backend_adopt needs */
	int sock_dir;			/* O_PATH: where its endpoint is, to remove it */
	char *sock_name;
	struct ctr_adoption *adoption;	/* what ran across the gap, until handed over */
	bool release_only;		/* a failed adopt's: its init is left as it was */
	/* issue 13: img-root */
	agentd_image_lease *image;	/* its root's image (layers, defaults, use lock), or NULL */
};

/* Everything a sandbox needs before its init is cloned, built by ctr_prepare. */
struct ctr_prep {
	struct mount_plan mp;
	struct seccomp_prog sc;
	struct netns_maker nm;
	struct init_args ia;
	struct init_once once;
	int sp[2];		/* control socketpair (persistent sandboxes) */
	int setup[2];		/* setup report pipe (persistent sandboxes) */
	int killp[2];		/* one-shot: the host's kill request to the init, and the
				 * init's root to the host (OP_ROOT_FD) */
	int go[2];		/* cgroup v1: "joined" to the init, after the clone */
	bool late_cgroup;	/* the cgroup is made and joined after the clone */
	agentd_proxy *proxy;	/* allowlist: the backend's egress proxy */
	/* issue 12: snapshots */
	bool overlay;		/* its workdir and /tmp are overlays on a snapshot's files */
};
/* start.c. seed_fd: a snapshot (agentd_sandbox_snapshot_to) whose files the workdir and
 * /tmp start from, shared as overlays' lower layers where the host allows it (p->overlay
 * then: root, idmapped mounts), or -1. */
int ctr_prepare(agentd_backend *b, const agentd_spec *spec, bool once, int seed_fd,
		agentd_sandbox **out, struct ctr_prep *p, agentd_error *err);
void ctr_prep_free(struct ctr_prep *p);
void init_plan_once(struct jail_init_plan *jp, const int cmd_fds[4], int kill_fd);
int ctr_spawn_init(agentd_sandbox *sb, struct ctr_prep *p, agentd_error *err);

/* The host side's state of a new sandbox (ids, rlimits), everything else closed. */
struct ctr *ctr_new(const agentd_spec *spec);

/* container.c: the sandbox object with its ctr, freed */
void ctr_sandbox_free(agentd_sandbox *sb);
/* EBUSY while sb is suspended (its init is frozen: nothing new starts), else 0. */
int ctr_refuse_suspended(agentd_sandbox *sb, agentd_error *err);

/* run.c */
char **ctr_envp(const agentd_sandbox *sb, const agentd_command *cmd);
/* A kill unit in c's cgroup for one command (an idle one, else a new one), or NULL + err;
 * back when the command ended: kept if it is empty and ended (reusable), else destroyed —
 * a command the init may still start (a frozen init, a timed-out request) then finds its
 * unit gone and fails to join it instead of joining another's. */
struct cgroup *ctr_unit_get(struct ctr *c, agentd_error *err);
void ctr_unit_put(struct ctr *c, struct cgroup *unit, bool reusable);
/* OP_EXEC or OP_SPAWN m with the command's fds (stdin, stdout, stderr, report), its
 * payload and its unit's cgroup.procs fds. */
int ctr_send_command(struct ctr *c, const struct ctl_msg *m, const int cmd_fds[4],
		     char *const *argv, char *const *envp, const char *cwd,
		     const struct cgroup *unit, agentd_error *err);
int ctr_exec(agentd_sandbox *sb, const agentd_command *cmd, const agentd_exec_ctx *ctx,
	     agentd_exec_output *out, agentd_error *err);
int ctr_run_once(agentd_backend *b, const agentd_spec *spec, const agentd_command *cmd,
		 const agentd_exec_ctx *ctx, agentd_exec_output *out, char id[AGENTD_ID_LEN],
		 agentd_error *err);

/* process.c: background processes */
int ctr_spawn(agentd_sandbox *sb, const agentd_command *cmd, const agentd_process_opts *opts,
	      agentd_process **out, agentd_error *err);
/* A durable sandbox's init keeps the host's ends of ap (OP_DURABLE KEEP): 0 or -1 + err. */
int ctr_proc_keep(struct ctr *c, agentd_process *ap, agentd_error *err);
/* A process of an adopted sandbox, on the fds its init kept (fds[KEEP_*], taken). */
agentd_process *ctr_proc_adopt(agentd_sandbox *sb, const struct durable_entry *e,
			       int fds[KEEP_N]);

/* durable.c: agentd_sandbox_persist and agentd_backend_adopt for containers */
int ctr_persist(agentd_sandbox *sb, const char *dir, char **token, agentd_error *err);
int ctr_adopt(agentd_backend *b, const agentd_spec *spec, const char *id, const char *token,
	      agentd_sandbox **out, agentd_error *err);
int ctr_adopted(agentd_sandbox *sb, agentd_adoption *out, agentd_error *err);
/* Fill sb's capabilities from its spec (create and adopt alike). */
void ctr_fill_caps(agentd_sandbox *sb, bool filtered);
/* Its init ends (durable: it no longer ends on our EOF), its endpoint is removed. */
void ctr_durable_release(struct ctr *c);

/* init.c: the init, cloned by the host (spawn_process child_fn). */
__attribute__((noreturn)) void container_init_main(void *arg);

/* ctl.c: the control protocol, both halves (the init's without malloc). */
/* An exec or a process: stdin, stdout, stderr, report, payload, then the cgroup.procs fds
 * of its kill unit (cgroup_procs_fds), which the command joins before it execs. */
#define CTL_MAX_FDS FDS_SEND_MAX
#define CTL_CMD_FDS 5
#define CTL_UNIT_FDS (CTL_MAX_FDS - CTL_CMD_FDS)
/* One message with nfds (1..CTL_MAX_FDS) fds attached; 0 or -1 + errno. */
int ctl_send(int sock, const struct ctl_msg *m, const int *fds, int nfds);
/* One message and its fds (CLOEXEC; *nfds counts all sent, those past CTL_MAX_FDS are
 * closed, the rest are in fds, -1 filled): recvmsg's result (sizeof(*m) when whole, 0 at
 * EOF, -1 + errno). */
ssize_t ctl_recv(int sock, struct ctl_msg *m, int fds[CTL_MAX_FDS], int *nfds, int flags);
/* ctl_recv for a message of len bytes of any layout (the durable handshake). */
ssize_t ctl_recv_any(int sock, void *buf, size_t len, int fds[CTL_MAX_FDS], int *nfds,
		     int flags);
/* fds[] (n slots) of the bits set in mask, in bit order, from got[] (ngot, at most what
 * was received): 0, or -1 when they differ (all of got closed then). */
int ctl_take_masked(uint32_t mask, int n, int fds[], int *got, int ngot);
void ctl_close_fds(int fds[CTL_MAX_FDS]);
/* host: argv, envp and cwd of an exec in a memfd (returned), or -1 + err. */
int exec_payload_encode(char *const *argv, char *const *envp, const char *cwd,
			agentd_error *err);
/* init: the payload mapped and split into pointer arrays, without malloc; 0, or -errno
 * with *why. Release in any case. */
struct exec_payload {
	void *map, *ptrs;
	size_t map_len, ptrs_len;
	char **argv, **envp;
	const char *cwd;
};
int exec_payload_decode(int fd, struct exec_payload *pl, const char **why);
void exec_payload_release(struct exec_payload *pl);

/* connect.c */
int ctr_connect(agentd_sandbox *sb, uint16_t port, agentd_error *err);
/* issue 12: names. m to the init with a reply socket, and its answer of the same op: the
 * fd it sent (want_fd), else 0; or -1 + err (the errno the init sent back, or why none
 * came). */
int ctr_ask_init(agentd_sandbox *sb, const struct ctl_msg *m, bool want_fd, agentd_error *err);

/* network.c: issue 12. Switch a live sandbox between "none" and "allowlist", or replace
 * its allowlist (agentd_sandbox_set_network). */
int ctr_set_network(agentd_sandbox *sb, const agentd_network *net, agentd_error *err);

/* image.c: issue 13, img-root */
/* sb->spec.image leased from the backend's store into c->image, and its defaults (Env,
 * WorkingDir, User as c->inner_id) applied under sb's policy: 0 or -1 + err (ENOENT: no
 * such image). */
int ctr_image_acquire(agentd_backend *b, agentd_sandbox *sb, struct ctr *c, agentd_error *err);
/* c->image's layers, bottom first, as idmapped read-only detached trees (*out malloc'd). */
int ctr_image_layers(const struct ctr *c, int **out, agentd_error *err);
void ctr_image_probe(agentd_backend_caps *caps, const agentd_platform *p);

/* container_snapshot.c */
int open_in_sandbox(struct ctr *c, const char *path, agentd_error *err);
int ctr_snapshot(agentd_sandbox *sb, const char *name, char **snapshot_id, agentd_error *err);
int ctr_restore(agentd_sandbox *sb, const char *snapshot_id, agentd_error *err);
int ctr_snapshot_to(agentd_sandbox *sb, int dir_fd, uint64_t max_bytes, uint64_t *bytes,
		    agentd_error *err);
int ctr_restore_from(agentd_sandbox *sb, int dir_fd, agentd_error *err);

#endif
