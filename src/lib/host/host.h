/* host.h: what a sandbox leaves on the host and how it is found and removed again
 * (src/lib/host/): its private dirs, files reached beneath a held workdir fd, the janitor
 * that cleans up after a killed owner, and stale-sandbox cleanup. Includes jail/ (cgroups)
 * and common/. */
#ifndef AGENTD_HOST_H
#define AGENTD_HOST_H

#include "lib/jail/jail.h"


/* ---------------------------------------------------------------- janitor.c
 * Cleanup that survives a SIGKILL of the sandbox's owner: watched cgroups and dirs are
 * destroyed by a separate process when the owner goes away without forgetting them. */
void janitor_watch_cgroup(const char *name);
void janitor_forget_cgroup(const char *name);
struct host_ids;
void janitor_watch_ids(const struct host_ids *ids, const char *sandbox_id);
void janitor_forget_ids(const struct host_ids *ids, const char *sandbox_id);
void janitor_watch_dir(const char *path);
void janitor_forget_dir(const char *path);
/* The janitor's pid (a child of ours the orphan sweep leaves alone), 0 before it starts. */
pid_t janitor_pid(void);

/* ---------------------------------------------------------------- host_ids.c
 * Each container sandbox's own host uid/gid, leased from a subordinate range (the
 * /etc/subuid and /etc/subgid entries of user "agentd", else the default below) and
 * reusable only after its sandbox's cleanup. */
#define HOST_IDS_DEFAULT_BASE 1073741824u	/* 2^30, far above login and system ids */
#define HOST_IDS_DEFAULT_COUNT 65536u
#define HOST_IDS_DIR "/run/agentd/ids"		/* one lease file per uid, root's, 0700 */
struct host_id_range {
	uid_t uid_base;
	gid_t gid_base;
	uint32_t count;
	bool from_subid;	/* the entries of "agentd" in /etc/subuid and /etc/subgid */
};
struct host_ids {
	uid_t uid;
	gid_t gid;
	int lease_fd;	/* the slot's locked lease file, -1 when none is held */
};
void host_ids_range(struct host_id_range *r);
/* Lease a free uid/gid pair for the sandbox id (root only); 0, or -1 + err when every id
 * is held. */
int host_ids_lease(const char *sandbox_id, struct host_ids *out, agentd_error *err);
/* After the sandbox's cleanup; cleaned: its cgroup is gone (no process of it is left),
 * else the lease file keeps naming it so the uid waits for the sweep. Safe twice. */
void host_ids_release(struct host_ids *ids, bool cleaned);
/* The janitor, after a killed owner's cleanup: remove uid's lease file if it still names
 * sandbox_id, nobody holds it and the sandbox's cgroup is gone. 0 when done or not ours
 * to do (gone, leased again, held), 1 while the sandbox's cgroup is still there. */
int host_ids_reap(uid_t uid, const char *sandbox_id);
/* Every lease naming sandbox_id reaped as above (a stale sandbox whose uid is unknown). */
void host_ids_reap_sandbox(const char *sandbox_id);
/* issue 16: rt-ids. The same lease for any pool of slots of slot_size consecutive ids (the
 * container backend's: one id per sandbox; the OCI runtime's: a user namespace's 65536 per
 * container). The lease file of a slot is named by its first uid and names its holder; a
 * slot whose file is left (no flock, not unlinked) is skipped while held() says its
 * holder has something left of it. */
#define HOST_IDS_HOLDER_MAX 4096	/* bytes of a holder's name */
struct host_id_pool {
	const char *dir;		/* the lease files, root's, 0700 (made on first use) */
	uid_t uid_base;
	gid_t gid_base;
	uint32_t slots, slot_size;
	const char *what;		/* "host uid in the sandbox range": for the errors */
	const char *widen;		/* how to widen it, added to the exhaustion error, or NULL */
	bool (*held)(const char *holder, uid_t uid, void *arg);
	void *arg;
};
int host_ids_lease_from(const struct host_id_pool *p, const char *holder,
			struct host_ids *out, agentd_error *err);
void host_ids_release_from(const struct host_id_pool *p, struct host_ids *ids, bool cleaned);
int host_ids_reap_from(const struct host_id_pool *p, uid_t uid, const char *holder);
/* The pool's lease files whose holders left nothing, removed (each checked under its flock). */
void host_ids_sweep_from(const struct host_id_pool *p);
/* Does a process of the host (not a zombie: exited) have a real, effective, saved or fs
 * uid in [base, base + n)? (true when /proc cannot be read: cannot tell.) */
bool host_ids_any_process(uid_t base, uint32_t n);

/* ---------------------------------------------------------------- sandbox_dir.c */
/* <work_root>/<id>/{workspace,tmp} owned by uid:gid (mode 0700), work_root 0711. */
int sandbox_dir_create(const char *work_root, const char *id, uid_t uid, gid_t gid,
		       char **dir_out, agentd_error *err);
void sandbox_dir_remove(const char *work_root, const char *id);

/* ---------------------------------------------------------------- sandbox_files.c */
/* The workdir_fd op of a backend that holds its workdir fd: a CLOEXEC dup of fd, and the
 * fs ids (uid/gid, (uid_t)-1 = leave) files made there get. */
/* Open rel (checked by agentd_sandbox_path_relative) beneath the workdir fd dir with the
 * sandbox's fs ids uid/gid ((uid_t)-1: our own), never through a symlink or magic link, a
 * regular file only; path names it in errors. The fd, or -1 + err. */
int workdir_open_file(int dir, const char *rel, bool write, uid_t uid, gid_t gid,
		      const char *path, agentd_error *err);
int sandbox_workdir_dup(int fd, uid_t uid, gid_t gid, uid_t *uid_out, gid_t *gid_out,
			agentd_error *err);

/* issue 12: files ------------------------------------------------ sandbox_fs.c
 * A path of the files API as the core resolved it: rel (checked: no "..", "." or empty
 * components; "." = base itself) beneath base (the workdir or root fd the backend held from
 * creation), acted on with fs ids uid/gid ((uid_t)-1: ours); path names it in errors. */
struct sbfs {
	int base;
	const char *rel;
	const char *path;
	uid_t uid;
	gid_t gid;
};
/* The calling thread's supplementary groups, dropped and given back (this thread only). */
struct groups_save {
	int n;			/* -1: they could not be saved (dropped all the same) */
	gid_t *list;		/* freed by groups_restore */
};
void groups_drop(struct groups_save *g);
void groups_restore(const struct groups_save *g);
/* The calling thread's fs ids switched to uid/gid (as root only; -1: left) and back, its
 * supplementary groups dropped meanwhile. */
struct fsid_save {
	bool on;
	uid_t uid;
	gid_t gid;
	struct groups_save groups;
};
struct fsid_save fsids_enter(uid_t uid, gid_t gid);
void fsids_leave(struct fsid_save old);
/* rel's directory beneath base (RESOLVE_IN_ROOT | NO_MAGICLINKS), /proc and /sys refused. */
int sbfs_open_dir(const struct sbfs *fs, const char *rel, uint64_t flags, agentd_error *err);
/* The parent of fs->rel (an O_PATH fd) and its last component, which nothing here follows. */
struct sbfs_target {
	int parent;
	char leaf[256];
};
int sbfs_target(const struct sbfs *fs, struct sbfs_target *t, agentd_error *err);
int sbfs_stat(const struct sbfs *fs, agentd_file_stat *out, agentd_error *err);
int sbfs_list(const struct sbfs *fs, size_t max, agentd_file_stat **out, size_t *n,
	      bool *truncated, agentd_error *err);
int sbfs_mkdir(const struct sbfs *fs, bool parents, agentd_error *err);
int sbfs_make_parents(const struct sbfs *fs, agentd_error *err);	/* of fs->rel */
int sbfs_remove(const struct sbfs *fs, bool recursive, agentd_error *err);
int sbfs_rename(const struct sbfs *from, const struct sbfs *to, bool noreplace,
		agentd_error *err);
int sbfs_chmod(const struct sbfs *fs, uint32_t mode, agentd_error *err);

/* issue 12: files ------------------------------------------------ sandbox_watch.c
 * agentd_watch beneath the directory fd dir (taken), inotify made and watches added with
 * uid/gid as the effective ids (raw setresuid/setresgid: this thread only, then back). */
agentd_watch *sandbox_watch_new(int dir, uid_t uid, gid_t gid, unsigned max_dirs,
				agentd_error *err);

/* issue 12: files ------------------------------------------------ tarx.c
 * Tar archives into and out of a directory fd, with every path handled here, fd-relative:
 * libarchive only parses and writes the format. Reused by image import (docker save, OCI
 * layers), hence the policy knobs. */
struct tarx_policy {
	uint64_t max_entries;		/* entries of the archive */
	uint64_t max_bytes;		/* its regular files' data together */
	bool symlinks_any_target;	/* else: a relative target that stays beneath the
					 * destination, nothing absolute */
	/* Devices, fifos and sockets are always refused; modes always & 0777; owners never
	 * applied (what is made belongs to the caller's fs ids), unless: */
	/* issue 13: img-store — image layers (src/lib/image/layer.c) */
	bool keep_owners;		/* the entries' numeric uid/gid applied (root extracting), and
					 * written by the writer */
	bool keep_sticky;		/* modes & 01777 (setuid/setgid still dropped) */
	bool overlay_whiteouts;		/* ".wh.NAME" -> a 0/0 char device NAME, ".wh..wh..opq" ->
					 * the opaque xattrs on its directory; the writer turns
					 * them back */
};
struct tarx_stats {
	uint64_t entries, bytes;
};
/* Check the archive tar[0, len) whole against p (nothing written), then extract it beneath
 * dir, never through a symlink. 0, or -1 + err (E2BIG past a bound, EINVAL refused). */
int tarx_extract(int dir, const void *tar, size_t len, const struct tarx_policy *p,
		 struct tarx_stats *st, agentd_error *err);
/* Only the check (fuzz/fuzz_tarx.c drives both halves). */
int tarx_check(const void *tar, size_t len, const struct tarx_policy *p,
	       struct tarx_stats *st, agentd_error *err);
/* A tar stream of the directory dir (taken), pulled in pieces. */
struct tarx_writer;
struct tarx_writer *tarx_writer_new(int dir, const struct tarx_policy *p, agentd_error *err);
/* > 0 bytes in buf, 0 at the end, -1 + err. */
ssize_t tarx_writer_read(struct tarx_writer *w, void *buf, size_t n, agentd_error *err);
void tarx_writer_free(struct tarx_writer *w);
/* issue 13: img-store. The names of the archive's entries in order, headers only (nothing
 * written): cb returns < 0 to stop with that value; -1 + err on a malformed archive or past
 * max_entries. */
int tarx_each_name(const void *tar, size_t len, uint64_t max_entries,
		   int (*cb)(void *userdata, const char *name), void *userdata, agentd_error *err);

#endif
