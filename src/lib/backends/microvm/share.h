/* share.h: the policy's files and network mapped into a micro-VM (issue 15: vm-map).
 *
 * Files (share.c): one virtiofsd per sandbox serves the guest the same tree a container
 * sandbox gets as its root (the mount plan of lib/jail/mounts: the host runtime read-only at
 * its own paths, the allowlisted /etc files, the scratch tmpfs sized by max_write_bytes
 * holding the workdir and /tmp, the policy's ro/rw paths), built in virtiofsd's own mount
 * namespace, where the host kernel enforces read-only. The guest mounts it as the root of
 * its execs (one GP_T_MOUNT "/" of tag VM_SHARE_TAG). The host keeps fds of the tree, the
 * workdir and the scratch, opened before any guest code ran (files API, cp, snapshots).
 *
 * Network (egress.c): "none" and "allowlist" give QEMU no NIC; the guest agent's listener on
 * 127.0.0.1:GP_EGRESS_PORT carries each connection as a guest channel, which the host hands
 * to agentd's egress proxy as a connection of this sandbox (agentd_proxy_add_connection). */
#ifndef AGENTD_MICROVM_SHARE_H
#define AGENTD_MICROVM_SHARE_H

#include "lib/backends/microvm/egress.h"

/* ---------------------------------------------------------------- share.c */
#define VM_SHARE_TAG "agentd-root"
#define VM_SHARE_SOCK "vfs.sock"	/* the vhost-user socket's name in QEMU's jail dir */
#define VM_SHARE_START_MS 10000		/* the tree built, its fds back */

struct vm_share_opts {
	const agentd_spec *spec;	/* workdir, ro/rw paths, bind mounts, max_write_bytes */
	uid_t uid;			/* the workdir's owner in the guest (the execs' user) */
	gid_t gid;
	const char *hostname;		/* /etc/hostname, /etc/hosts; NULL = "agentd" */
	/* QEMU's jail directory (its /vm): the vhost-user socket is bound there, visible only
	 * in the jail's mount namespace, and unlinked once QEMU is connected
	 * (vm_share_connected). */
	int sock_dir_fd;
	uid_t sock_uid;			/* the socket's owner: QEMU's host uid */
	gid_t sock_gid;
	int cgroup_fd;			/* the VM's host cgroup (CLONE_INTO_CGROUP), or -1 */
	const char *virtiofsd;		/* NULL = $AGENTD_VIRTIOFSD, else Debian's */
};

struct vm_share {
	pid_t pid;			/* virtiofsd (PID 1 of its pid namespace), or -1 */
	int pidfd;
	int root_fd;			/* O_PATH: the tree's root, what the guest sees as "/" */
	int workdir_fd;			/* O_DIRECTORY: the workdir (on the scratch) */
	int scratch_fd;			/* O_DIRECTORY: the scratch tmpfs (workdir/, tmp/) */
	int sock_dir_fd;		/* a dup of opts.sock_dir_fd until connected, or -1 */
	char *workdir;			/* the workdir's path in the guest */
};

/* The virtiofsd binary: $AGENTD_VIRTIOFSD, else /usr/lib/qemu/virtiofsd; NULL when neither
 * is executable. */
const char *vm_share_virtiofsd(void);
/* Build the tree and start virtiofsd jailed on it: 0, or -1 + err (nothing left behind). */
int vm_share_start(const struct vm_share_opts *o, struct vm_share *s, agentd_error *err);
/* QEMU's arguments for the share: guest RAM as a shared memfd (vhost-user needs it; it
 * replaces QEMU's -m backing, mem_bytes must equal -m), the vhost-user-fs device on the
 * socket at sock_path (the jail's path of VM_SHARE_SOCK), modern virtio-mmio. */
void vm_share_qemu_args(uint64_t mem_bytes, const char *sock_path, agentd_strv *args);
/* QEMU is up (its devices realized: it connected): the socket's name is removed. */
void vm_share_connected(struct vm_share *s);
/* Kill virtiofsd (its pid namespace with it), close every fd. Safe after vm_share_start,
 * failed or not, and twice. */
void vm_share_stop(struct vm_share *s);

/* ---------------------------------------------------------------- map.c
 * The backend's side (microvm.c, qemu.c): a sandbox's share and egress over its VM's life. */
struct vm_map {
	const agentd_spec *spec;	/* the sandbox's (lives as long as it) */
	struct vm_share share;
	struct cgroup *unit;		/* virtiofsd's kill unit in QEMU's jail cgroup */
	struct vm_egress *egress;	/* network allowlist, else NULL */
};
struct vm_map *vm_map_new(const agentd_spec *spec);
/* QEMU's jail exists, QEMU not yet: virtiofsd started for the spec, its QEMU arguments
 * appended to args (mem_bytes: QEMU's -m). 0 or -1 + err. */
int vm_map_before_qemu(struct vm_map *m, agentd_sandbox *jail, uint64_t mem_bytes,
		       agentd_strv *args, agentd_error *err);
/* QEMU is up (its monitor answered): the socket's name goes. */
void vm_map_qemu_up(struct vm_map *m);
/* SETUP's part: the shared tree as the execs' root. */
void vm_map_setup(const struct vm_map *m, struct gp_writer *w);
/* After SETUP: network allowlist served for sandbox id through proxy. 0 or -1 + err. */
int vm_map_network(struct vm_map *m, struct vm_chan *ch, agentd_proxy *proxy, const char *id,
		   agentd_error *err);
/* Files API: new fds of the held workdir and root (the guest's execs' user as owner). */
int vm_map_workdir_fd(const struct vm_map *m, bool root, uid_t *uid, gid_t *gid,
		      agentd_error *err);
/* After the VM's channel is freed, before its jail goes: egress, virtiofsd, its unit.
 * Safe on NULL and twice. */
void vm_map_release(struct vm_map *m, agentd_sandbox *jail);
/* Released (the unit, if any, needs the jail) and freed. Safe on NULL. */
void vm_map_free(struct vm_map *m);

#endif
