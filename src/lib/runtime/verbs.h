/* verbs.h: what the runtime's command-line files share (main.c, state.c, cgroups.c,
 * create.c, exec.c, console.c, verbs.c): the global options, a container's state, its cgroup.
 * Private to src/lib/runtime/; the config half's contract is runtime.h. */
#ifndef AGENTD_RUNTIME_VERBS_H
#define AGENTD_RUNTIME_VERBS_H

#include "lib/runtime/runtime.h"
#include "lib/host/host.h"

#include <stdio.h>

/* ---------------------------------------------------------------- main.c */
struct ocirt_globals {
	const char *root;		/* --root */
	const char *log_path;		/* --log, NULL: stderr only */
	bool log_json;			/* --log-format json */
	bool debug;
	bool systemd_cgroup;
};
extern struct ocirt_globals ocirt_g;
/* An error the engine reads: on stderr, and as a line on --log (a JSON object
 * {"level":"error","msg":...,"time":...} with --log-format json, as runc writes). Returns 1. */
int ocirt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ocirt_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ocirt_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Ambient capabilities the process asks for but cannot have (not both permitted and
 * inheritable: the jail skips them), warned of as runc does. */
void ocirt_warn_ambient(const struct ocirt_process *p);
void ocirt_time_now(char *buf, size_t size);	/* RFC 3339, UTC, nanoseconds */
/* issue 16: rt-egress. A line of --log in its format (malloc'd, with its newline), or NULL. */
char *ocirt_log_text(const char *level, const char *msg);

/* A small getopt for runc's flags: "--name value", "--name=value", "-x value" and boolean
 * flags. Options end at the first operand (the container id) or "--". */
struct ocirt_opt {
	const char *name;		/* long name without "--" */
	char short_name;		/* 0: none */
	bool has_arg;
	const char **value;		/* has_arg: where the value goes (last one wins) */
	bool *flag;			/* !has_arg */
	agentd_strv *multi;		/* has_arg and repeatable (--env, --cap) */
};
/* 0 and *first_operand, or -1 after ocirt_fail naming the flag. */
int ocirt_parse_opts(int argc, char **argv, const struct ocirt_opt *opts, int *first_operand);

/* ---------------------------------------------------------------- state.c */
enum ocirt_status { OCIRT_CREATING, OCIRT_CREATED, OCIRT_RUNNING, OCIRT_STOPPED, OCIRT_PAUSED };
struct ocirt_state {
	char *id;
	char *bundle;
	char *rootfs;
	pid_t pid;			/* the init, in the host's pid namespace; 0: not yet */
	unsigned long long start_time;	/* its /proc/PID/stat field 22: a recycled pid never matches */
	char *created;			/* RFC 3339 */
	uid_t owner;
	char *cgroup;			/* the cgroupsPath resolved (ocirt_cgroup_path) */
	bool started;			/* `start` opened the exec fifo */
	agentd_kvv annotations;
	/* issue 16: rt-egress. The egress proxy helper (egress.c), 0: none */
	pid_t proxy_pid;
	unsigned long long proxy_start_time;
	int dirfd;			/* <root>/<id>, O_PATH|O_DIRECTORY */
	int lockfd;			/* <root>/<id>/lock, flocked while held */
	/* issue 16: rt-ids. The slot of the user namespace the floor added (userns.c) */
	bool userns_leased;
	uid_t userns_uid;
	gid_t userns_gid;
};
/* [A-Za-z0-9_.-]+, at most 1024 bytes, not "." or "..": runc's rule. */
bool ocirt_id_valid(const char *id);
/* --root made (0700) when missing; an fd of it, or -1 after ocirt_fail. */
int ocirt_root_open(void);
/* <root>/<id> created 0700 (EEXIST: "container ID already exists"), opened and locked. */
int ocirt_state_new(const char *id, struct ocirt_state *st);
/* An existing container's state read; locked (LOCK_EX) when lock, else not. -1 after
 * ocirt_fail ("container ID does not exist"). */
int ocirt_state_open(const char *id, bool lock, struct ocirt_state *st);
int ocirt_state_save(const struct ocirt_state *st);	/* atomic: tmp + rename; 0 or -errno */
void ocirt_state_close(struct ocirt_state *st);
/* The state dir removed (after the cgroup and processes are gone). */
int ocirt_state_remove(struct ocirt_state *st);
/* The init alive (same pid and start time, not a zombie)? */
bool ocirt_init_alive(const struct ocirt_state *st);
/* A pidfd of the init checked against the recorded start time, or -1 (gone). */
int ocirt_init_pidfd(const struct ocirt_state *st);
enum ocirt_status ocirt_status(const struct ocirt_state *st);
const char *ocirt_status_name(enum ocirt_status s);
/* The `state` verb's JSON (a new reference). */
struct json_t *ocirt_state_json(const struct ocirt_state *st);
/* Write path atomically (dir's tmp + rename) with "text\n"-less content: pid files. */
int ocirt_write_pid_file(const char *path, pid_t pid);

/* ---------------------------------------------------------------- cgroups.c
 * runc's layout: the cgroupsPath under each mounted hierarchy (cgroup v1 hybrid: every v1
 * mount; v2: the unified mount). */
#define OCIRT_CG_MAX 12
struct ocirt_cgroup {
	char *dirs[OCIRT_CG_MAX];	/* <mount>/<path> per hierarchy */
	bool v2[OCIRT_CG_MAX];
	char *freezer;			/* the dir carrying the freezer (v1) or the v2 dir */
	char *pids_dir;			/* a dir whose cgroup.procs lists the processes */
	int n;
};
/* cgroupsPath (NULL: /agentd-runc/<id>; "slice:prefix:name" with --systemd-cgroup: the
 * cgroupfs path systemd would give it) to a relative path; NULL after ocirt_fail. */
char *ocirt_cgroup_path(const char *cgroups_path, const char *id);
/* Resolve path under every hierarchy; create: mkdir them. 0 or -1 after ocirt_fail. */
int ocirt_cgroup_open(const char *path, bool create, struct ocirt_cgroup *cg);
int ocirt_cgroup_set(const struct ocirt_cgroup *cg, const struct ocirt_resources *r);
int ocirt_cgroup_attach(const struct ocirt_cgroup *cg, pid_t pid);
int ocirt_cgroup_freeze(const struct ocirt_cgroup *cg, bool frozen);
bool ocirt_cgroup_frozen(const struct ocirt_cgroup *cg);
/* The pids (host pid ns) in the cgroup, -1 terminated malloc'd array; NULL when none. */
pid_t *ocirt_cgroup_pids(const struct ocirt_cgroup *cg, size_t *n);
int ocirt_cgroup_signal_all(const struct ocirt_cgroup *cg, int sig);
/* Kill everything (SIGKILL, frozen first so nothing forks meanwhile) and rmdir; 0 or -1. */
int ocirt_cgroup_destroy(struct ocirt_cgroup *cg);
void ocirt_cgroup_free(struct ocirt_cgroup *cg);

/* ---------------------------------------------------------------- console.c */
/* Connect to the engine's --console-socket (a unix stream socket); fd or -1 after ocirt_fail. */
int ocirt_console_connect(const char *path);
/* child, no malloc: a pty from /dev/ptmx (the container's devpts once pivoted), its master
 * sent to sock by SCM_RIGHTS (runc's protocol: one message, the fd), the slave made the
 * controlling terminal and stdio. 0 or -errno + what. */
int ocirt_console_setup(int sock, unsigned rows, unsigned cols, char *what, size_t what_len);

/* ---------------------------------------------------------------- verbs */
int ocirt_cmd_create(int argc, char **argv);
int ocirt_cmd_run(int argc, char **argv);
int ocirt_cmd_start(int argc, char **argv);
int ocirt_cmd_exec(int argc, char **argv);
int ocirt_cmd_state(int argc, char **argv);
int ocirt_cmd_kill(int argc, char **argv);
int ocirt_cmd_delete(int argc, char **argv);
int ocirt_cmd_pause(int argc, char **argv);
int ocirt_cmd_resume(int argc, char **argv);
int ocirt_cmd_ps(int argc, char **argv);
int ocirt_cmd_update(int argc, char **argv);
int ocirt_cmd_list(int argc, char **argv);
int ocirt_cmd_features(int argc, char **argv);
/* The config of a bundle loaded, checked against the floor and the operator's allowances. */
int ocirt_load_checked(const char *bundle, struct ocirt_config **out);
/* issue 16: rt-gaps. The floor's oomScoreAdj applied to p, with a warning on --log where it
 * raised the value (runc would have written it as given). */
void ocirt_floor_oom_warned(struct ocirt_process *p);
/* A signal by name ("TERM", "SIGTERM") or number; -1 when unknown. */
int ocirt_signal_parse(const char *s);

/* ---------------------------------------------------------------- hooks.c (issue 16: rt-fix)
 * The config's prestart then createRuntime hooks, the init's pid in st; 0, or -1 after
 * ocirt_fail naming the hook. */
int ocirt_run_create_hooks(const struct ocirt_config *c, const struct ocirt_state *st);

/* ---------------------------------------------------------------- egress.c (issue 16: rt-egress)
 * io.agentd.policy's egress allowlist: the container's network namespace with only lo and a
 * listener on 127.0.0.1:AGENTD_PROXY_PORT in it, served by a proxy helper process. */
struct ocirt_egress {
	int netfd;			/* the container's network namespace */
	bool made;			/* netfd is a new one (the init is cloned into it), not
					 * the config's (joined by path) */
	int ctl;			/* to the helper: the init once the container exists */
	pid_t pid;			/* the helper */
	unsigned long long start_time;
	int pidfd;
};
/* create, before joining the config's namespaces (nothing without c->egress): the
 * namespace (new, or the config's checked to hold only lo: refused naming the field
 * otherwise), its listener, its net.* sysctls written (taken off j's), the helper in cg
 * serving it. 0, or -1 after ocirt_fail with nothing left. */
int ocirt_egress_start(const struct ocirt_config *c, struct ocirt_jail *j,
		       const struct ocirt_state *st, const struct ocirt_cgroup *cg,
		       struct ocirt_egress *e);
/* The container exists (state.json written): the helper stays while its init (pid, start
 * time) lives. 0, or -1 after ocirt_fail. */
int ocirt_egress_commit(struct ocirt_egress *e, pid_t init, unsigned long long start_time);
void ocirt_egress_abort(struct ocirt_egress *e);	/* helper killed and waited for */
void ocirt_egress_done(struct ocirt_egress *e);		/* create's fds closed */
/* delete: the helper of st killed (never a recycled pid) and waited for. */
void ocirt_egress_stop(const struct ocirt_state *st);
/* ---------------------------------------------------------------- userns.c (issue 16: rt-ids)
 * With a user namespace the floor added: a slot of the range leased for st's container
 * (the lease names <--root>/<id>), c's maps and st's slot set; 0 (also when there is
 * nothing to lease), or -1 after ocirt_fail (the range exhausted: how to widen it). */
int ocirt_userns_lease(struct ocirt_config *c, struct ocirt_state *st, struct host_ids *ids);
/* After create: the lease file kept naming the container (its state records the slot), or
 * removed when cleaned (a failed create whose processes are gone). */
void ocirt_userns_keep(struct host_ids *ids, bool cleaned);
/* delete, once the processes are gone and the state dir removed: the slot's lease removed
 * (kept while a process still has one of its uids). */
void ocirt_userns_forget(const struct ocirt_state *st);

#endif
