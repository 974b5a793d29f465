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
void janitor_watch_dir(const char *path);
void janitor_forget_dir(const char *path);
/* The janitor's pid (a child of ours the orphan sweep leaves alone), 0 before it starts. */
pid_t janitor_pid(void);

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

#endif
