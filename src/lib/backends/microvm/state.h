/* state.h: the microvm backend's lifecycle beyond boot and exec (docs/microvm.md#lifecycle):
 * suspend/resume and snapshots of the writable state (state.c), memory-snapshot templates
 * for fast starts (template.c). */
#ifndef AGENTD_MICROVM_STATE_H
#define AGENTD_MICROVM_STATE_H

#include "lib/backends/microvm/microvm.h"

/* ---------------------------------------------------------------- state.c
 * Sandbox ops of the microvm backend (agentd-backend.h): suspend and resume (QMP stop/cont,
 * QEMU's cgroup frozen as a backstop), snapshot/restore of the workdir shared from the host
 * (the scratch's workdir/ and tmp/, share.h) under GP_FREEZE/GP_THAW. */
int vm_state_suspend(agentd_sandbox *sb, agentd_error *err);
int vm_state_resume(agentd_sandbox *sb, agentd_error *err);
int vm_state_snapshot(agentd_sandbox *sb, const char *name, char **snapshot_id,
		      agentd_error *err);
int vm_state_restore(agentd_sandbox *sb, const char *snapshot_id, agentd_error *err);
int vm_state_snapshot_to(agentd_sandbox *sb, int dir_fd, uint64_t max_bytes, uint64_t *bytes,
			 agentd_error *err);
int vm_state_restore_from(agentd_sandbox *sb, int dir_fd, agentd_error *err);
/* Before destroy's power-off: a suspended VM thawed and continued. */
void vm_state_release(struct vm *vm);
/* Its snapshots removed (destroy). */
void vm_state_free(struct vm *vm);

/* ---------------------------------------------------------------- template.c
 * A template is one booted VM, stopped at the guest agent's HELLO (before SETUP: nothing of
 * any sandbox is in it) and saved with QMP `migrate` to a file; a sandbox whose VM has the
 * same inputs starts QEMU with `-incoming defer`, loads it (`migrate-incoming` from an fd
 * passed with `getfd`), continues it and sends SETUP (a fresh seed and the clock).
 *
 * Only migratable devices may be in such a VM: QEMU 7.2 refuses to migrate a vhost-user-fs
 * (virtiofs) device, so a sandbox that shares host directories by virtiofs boots cold
 * (vm_tmpl_unavailable says why). A virtio-blk disk migrates: the template's disk is a
 * blank ext4 image of the sandbox's size, made once per template, and each sandbox's disk
 * starts as a copy of it (the guest's page cache of the device then matches its disk).
 *
 * Layout (root-owned, 0700): <root>/<key>/{mem,blank.img,meta.json}, <root>/<key>.lock;
 * key = sha256 of the inputs (vm_tmpl_key). A template is published by renaming its
 * complete directory into place, under the key's lock. */
#define VM_TMPL_KEY_LEN 64
struct vm_tmpl_inputs {
	const struct vm_guest_files *files;
	uint64_t guest_mem_bytes;
	unsigned vcpus;
	bool kvm;
	uint64_t disk_bytes;	/* the workdir disk's size, 0: none */
	bool virtiofs;		/* the VM would carry a virtiofs device */
};
/* Why a VM of these inputs cannot start from a template ("virtiofs shares cannot
 * migrate"), or NULL when it can. */
const char *vm_tmpl_unavailable(const struct vm_tmpl_inputs *in);
/* The key: sha256 over a format version, QEMU's binary, the kernel's and the initramfs's
 * identity (device, inode, size, mtime, ctime: a rebuilt file is a new key), memory,
 * vCPUs, accelerator, disk size. 0 or -1 + err (a file missing). */
int vm_tmpl_key(const struct vm_tmpl_inputs *in, char key[VM_TMPL_KEY_LEN + 1],
		agentd_error *err);
/* The templates' directory (made 0700; refused when not ours or open to others): an fd. */
int vm_tmpl_root_open(const char *root, agentd_error *err);
/* The key's lock, held exclusively (blocks while another builds it): an fd to close. */
int vm_tmpl_lock(int rootfd, const char *key, agentd_error *err);
/* The key's template, complete: 0 with its memory file and its blank disk opened
 * read-only (*disk_fd -1 when it has none), -1 with errno ENOENT when there is none. */
int vm_tmpl_open(int rootfd, const char *key, int *mem_fd, int *disk_fd);
/* Publish: make <key>.tmp, a blank ext4 disk of disk_bytes there (disk_bytes 0: none),
 * then save_fn saves the VM's memory into mem_fd, and the directory is renamed into
 * place. The caller holds the key's lock. */
int vm_tmpl_make_blank(int dirfd, const char *name, uint64_t bytes, agentd_error *err);
/* A VM stopped (QMP stop) to a file: `getfd` + `migrate fd:`, until completed. */
int vm_tmpl_save(struct vm_qmp *q, int mem_fd, uint64_t timeout_ms, agentd_error *err);
/* A VM started with `-incoming defer` from mem_fd: `getfd` + `migrate-incoming fd:`, until
 * it is loaded; then running (cont). */
int vm_tmpl_load(struct vm_qmp *q, int mem_fd, uint64_t timeout_ms, agentd_error *err);
/* The whole build of key's template: boot (boot_fn, the VM at HELLO), stop, save, publish.
 * The caller holds the lock; a partial build leaves nothing. */
struct vm_tmpl_build {
	const char *key;
	uint64_t disk_bytes;
	const struct vm_tmpl_inputs *in;	/* kept in meta.json (a prune recomputes the key) */
	const struct vm_hello *hello;	/* the guest's HELLO, read once boot returned */
	/* boot a VM whose workdir disk is the file at disk_path (NULL: none), stopped before
	 * SETUP; its QMP for the save */
	int (*boot)(void *ud, const char *disk_path, struct vm_qmp **qmp, agentd_error *err);
	void (*shutdown)(void *ud);
	void *ud;
};
int vm_tmpl_build(int rootfd, const struct vm_tmpl_build *b, agentd_error *err);
/* A sandbox's own disk from the template's blank (a reflink where the filesystem has
 * them, else a sparse copy) at dirfd/name, 0600. */
int vm_tmpl_disk_copy(int blank_fd, int dirfd, const char *name, agentd_error *err);
/* Remove every template (and stale partial build) whose key is not in keep, skipping those
 * whose lock someone holds: how many were removed, or -1 + err. */
int vm_tmpl_prune(int rootfd, const char *const *keep, size_t n_keep, agentd_error *err);
/* Prune what no longer matches its inputs (a kernel, initramfs or QEMU rebuilt, removed):
 * the keys recomputed from each template's meta.json. How many were removed, or -1. */
int vm_tmpl_prune_stale(int rootfd, agentd_error *err);
/* The HELLO the template's guest said (meta.json): 0, or -1 + err. */
int vm_tmpl_hello(int rootfd, const char *key, struct vm_hello *h, agentd_error *err);

/* The backend's use: start vm for spec from its template under root (built first when
 * missing; stale ones pruned then): 1 started from it, 0 not available (why says so: the
 * caller boots cold), -1 + err. */
#define VM_TMPL_DIR "microvm-templates"	/* under the backend's work root */
/* Does spec's sandbox start from a template? Its VM must carry no virtiofs device, so only
 * a sandbox without file sharing: asked for with AGENTD_MICROVM_TEMPLATES=nofiles (the
 * guest's own root and a tmpfs workdir: what the initramfs has, no host runtime), network
 * none, no host paths (=nofiles-cold: the same sandbox, booted cold: what a benchmark
 * compares). Every other sandbox boots cold: "virtiofs shares cannot migrate". */
bool vm_tmpl_wanted(const agentd_spec *spec);
int vm_tmpl_start(agentd_backend *jail, const agentd_spec *spec, const struct vm_verdict *v,
		  const char *root, struct vm *vm, char *why, size_t why_len, agentd_error *err);

#endif
