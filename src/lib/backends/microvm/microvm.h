/* microvm.h: the microvm backend (src/lib/backends/microvm/): one QEMU `-M microvm` per
 * sandbox, started inside agentd's own container jail (container/), its guest agent
 * (src/guest/, PID 1 of the initramfs) spoken to over one virtio-serial port with the
 * framed protocol of common/guestproto.h. Files: microvm.c (the backend and sandbox ops),
 * qemu.c (command line and launch in the jail), chan.c (the host side of the protocol:
 * reader thread, channels, execs), qmp.c (QMP client), probe.c (the accelerator verdict).
 *
 * Hooks for the other parts of issue 15 (docs/microvm.md#hooks): extra QEMU arguments and
 * read-only host paths for the jail (struct vm_launch.extra_args, extra_ro), channels of
 * their own (vm_chan_open with a sink, vm_chan_send), guest-opened streams
 * (vm_chan_set_opener), QMP (struct vm::qmp). */
#ifndef AGENTD_MICROVM_H
#define AGENTD_MICROVM_H

#include "lib/backends/container/container.h"
#include "common/guestproto.h"

struct vm_map; /* issue 15: vm-map (share.h) */

#include <jansson.h>

/* ---------------------------------------------------------------- files of the guest */
/* The guest's kernel and initramfs: $AGENTD_GUEST_KERNEL / $AGENTD_GUEST_INITRD, else
 * vmlinuz / initramfs.cpio.gz in $AGENTD_GUEST_DIR, else in the build's guest dir. 0, or
 * -1 + err (ENOENT naming the missing file and how to build it). */
struct vm_guest_files {
	char kernel[PATH_MAX];
	char initrd[PATH_MAX];
};
int vm_guest_files(struct vm_guest_files *g, agentd_error *err);

/* ---------------------------------------------------------------- qmp.c */
#define VM_QMP_LINE_MAX (256u * 1024u)
struct vm_qmp {
	int fd;
	pthread_mutex_t lock;		/* one command at a time */
	char *buf;
	size_t have, consumed;
};
void vm_qmp_init(struct vm_qmp *q, int fd);	/* fd taken */
void vm_qmp_close(struct vm_qmp *q);
/* Greeting and qmp_capabilities: 0 or -1 + err. */
int vm_qmp_handshake(struct vm_qmp *q, uint64_t timeout_ms, agentd_error *err);
/* cmd with args (taken, may be NULL), pass_fd >= 0 sent with it (getfd, add-fd): its
 * "return" (a new reference), or NULL + err (QEMU's error desc, the deadline, EOF). */
json_t *vm_qmp_execute(struct vm_qmp *q, const char *cmd, json_t *args, int pass_fd,
		       uint64_t timeout_ms, agentd_error *err);
int vm_qmp_simple(struct vm_qmp *q, const char *cmd, uint64_t timeout_ms, agentd_error *err);

/* ---------------------------------------------------------------- chan.c */
struct vm_chan;
/* A channel's receiver, called on the reader thread with each frame of its channel (the
 * payload valid during the call, the channel layer's lock held: no vm_chan_* call but
 * vm_chan_send): 0; 1 when it was the channel's last frame (it is then free); -EPROTO when
 * the frame is not one it accepts, -EDQUOT when it is data beyond the credit granted (the
 * VM is then broken). on_end: the channel is gone (closed by vm_chan_close, or the VM
 * died: dead true). */
struct vm_sink {
	int (*on_frame)(void *ud, const struct gp_hdr *h, const uint8_t *payload);
	void (*on_end)(void *ud, bool dead);
	void *ud;
};
/* The guest opened a channel (GP_STREAM_OPEN on a guest channel): fill *sink to accept it
 * (0), or refuse (-errno: the host answers GP_STREAM_CLOSE). Reader thread. */
typedef int (*vm_opener_fn)(void *ud, uint32_t chan, const uint8_t *payload, size_t len,
			    struct vm_sink *sink);

struct vm_hello {
	uint64_t version, caps, boot_ms;
	char agent[128];
};
/* The reader thread on fd (the host's end of the port; taken). qemu_rep: the jail's
 * report pipe of QEMU (EOF or an exit report: QEMU is gone), qemu_err: its stderr (the
 * last bytes kept for messages); both taken, -1 = none. */
struct vm_chan *vm_chan_new(int fd, int qemu_rep, int qemu_err, agentd_error *err);
/* Stops the reader, ends every channel (dead), closes the fds. Safe on NULL. */
void vm_chan_free(struct vm_chan *ch);
/* Until GP_HELLO (validated: our major version), or the deadline, QEMU's end or a
 * protocol error: 0 or -1 + err. */
int vm_chan_wait_hello(struct vm_chan *ch, uint64_t timeout_ms, struct vm_hello *out,
		       agentd_error *err);
/* issue 15: vm-state. A guest resumed from a template said HELLO before it was saved:
 * its channel starts past it (before the VM runs). */
void vm_chan_set_hello(struct vm_chan *ch, const struct vm_hello *h);
/* A control request on channel 0 (SETUP, PING, FREEZE, THAW) and its answer (GP_OK,
 * GP_PONG; GP_ERROR's message as err): 0 or -1 + err. */
int vm_chan_control(struct vm_chan *ch, uint16_t type, const uint8_t *payload, size_t len,
		    uint64_t timeout_ms, agentd_error *err);
/* A frame, whole, under the write lock (bounded by a send timeout: a guest that stops
 * reading breaks its VM, it does not block us). 0 or -1 + err. */
int vm_chan_send(struct vm_chan *ch, uint16_t type, uint32_t chan, const void *payload,
		 size_t len, agentd_error *err);
/* A new host channel whose frames go to sink: its number, or 0 + err (too many, broken). */
uint32_t vm_chan_open(struct vm_chan *ch, const struct vm_sink *sink, agentd_error *err);
/* Forget chan (its sink's on_end(false) runs); frames that still come for it are a
 * protocol error unless linger: then they are dropped until its last frame. */
void vm_chan_close(struct vm_chan *ch, uint32_t chan, bool linger);
void vm_chan_set_opener(struct vm_chan *ch, vm_opener_fn fn, void *ud);
/* fn(ud) on the reader thread when the VM breaks (its owner kills QEMU there). */
void vm_chan_on_broken(struct vm_chan *ch, void (*fn)(void *ud), void *ud);
/* The VM is broken (a protocol error, QEMU gone): why, else NULL. */
bool vm_chan_broken(struct vm_chan *ch, char *why, size_t why_len);
/* Mark it broken (the host gave up on it: a deadline): every channel ends. */
void vm_chan_break(struct vm_chan *ch, const char *why);
/* QEMU's last words (stderr tail), for messages. */
void vm_chan_qemu_stderr(struct vm_chan *ch, char *out, size_t len);

/* One command over an exec channel: streamed output under the cap, stdin, the host's
 * deadline (then the guest must still answer a PING), cancel. */
struct vm_exec_req {
	char *const *argv;
	char *const *envp;
	const char *cwd;
	const uint8_t *stdin_data;
	size_t stdin_len;
	bool stdin_null;
	uint64_t timeout_ms;		/* the host's deadline; the guest gets the same */
	uint64_t max_output_bytes;
	uint64_t mem_bytes, pids, cpu_ms, nofile, fsize;
	uint32_t uid, gid;		/* in the guest */
	bool seccomp;
	bool net_none;
	agentd_output_cb on_output;
	void *userdata;
	int cancel_fd;
};
int vm_exec(struct vm_chan *ch, const struct vm_exec_req *rq, agentd_exec_output *out,
	    agentd_error *err);

/* ---------------------------------------------------------------- qemu.c */
/* A T_MOUNT of SETUP (the guest mounts them in order; a target "/" first is the execs'
 * root). */
struct vm_mount {
	const char *source, *target, *fstype;
	bool readonly;
};
#define VM_MOUNTS_MAX 64
struct vm_launch {
	const struct vm_guest_files *files;
	bool kvm;
	uint64_t guest_mem_bytes;	/* guest RAM */
	unsigned vcpus;
	const agentd_limits *limits;	/* the host cgroup's backstop is derived from these */
	agentd_strv extra_args;		/* hooks: more QEMU arguments (devices...) */
	agentd_strv extra_ro;		/* hooks: more host paths QEMU sees read-only */
	const char *append;		/* more kernel command line, or NULL */
	/* hooks: SETUP's mounts (file sharing); none: the guest's own root with a tmpfs at the
	 * workdir and at /tmp */
	const struct vm_mount *mounts;
	size_t n_mounts;
	/* issue 15: vm-state (vm_boot's extra only) */
	bool incoming;			/* load a template (incoming_fd) instead of booting */
	int incoming_fd;		/* its memory file */
	const struct vm_hello *incoming_hello;	/* the HELLO its guest said */
	bool no_setup;			/* stop at HELLO: a template's build */
	/* issue 15: vm-map */
	struct vm_map *map;		/* the sandbox's files and network (share.h), or NULL */
};
/* QEMU running in its jail. */
struct vm_qemu {
	agentd_sandbox *jail;		/* the container sandbox that holds it */
	struct cgroup *unit;		/* its kill unit in the jail's cgroup */
	pid_t pid;			/* in the jail's pid namespace */
	int chan_fd, qmp_fd, err_fd, rep_fd;	/* our ends (taken by vm_chan/vm_qmp) */
};
/* Guest RAM beyond the policy's memory (kernel, agent, page tables) and the host cgroup's
 * room for QEMU itself beyond guest RAM (TCG's translation cache, its own heap). */
#define VM_GUEST_ID 1000	/* the commands' uid and gid in the guest (container's too) */
#define VM_GUEST_OVERHEAD (96ull << 20)
#define VM_GUEST_DEFAULT_MEM (256ull << 20)
#define VM_QEMU_OVERHEAD (384ull << 20)
#define VM_QEMU_PIDS 64
/* The whole command line (argv[0] the binary), for l: malloc'd strv. */
void vm_qemu_argv(const struct vm_launch *l, agentd_strv *argv);
int vm_qemu_start(agentd_backend *jail_backend, const struct vm_launch *l, struct vm_qemu *q,
		  agentd_error *err);
/* Kill it, destroy the jail (cgroup, namespaces, scratch). Safe to call twice. */
void vm_qemu_stop(struct vm_qemu *q);
/* The host's CPU frequency in kHz (tsc_early_khz), 0 when unknown. */
unsigned long vm_host_khz(void);
/* The installed QEMU binary, or NULL. */
const char *vm_qemu_binary(void);

/* ---------------------------------------------------------------- probe.c */
struct vm_verdict {
	bool available;
	char reason[256];		/* why not */
	bool kvm;			/* the real guest booted under KVM to a HELLO */
	bool pvm;			/* the host is KVM-PVM (nested) */
	bool vcpu_runs;			/* a bare vCPU ran (reported, never counted) */
	char accel_why[256];		/* why not KVM, or "" */
	uint64_t boot_ms;		/* of the probe's boot with the chosen accelerator */
	char qemu_version[64];
};
/* The verdict for this host, from the cache (keyed by kernel release, QEMU version,
 * /dev/kvm's device and the boot id) or measured now (one or two real boots). */
void vm_probe_verdict(agentd_backend *jail_backend, struct vm_verdict *v);
/* A bare vCPU check (open /dev/kvm, KVM_CREATE_VM, KVM_CREATE_VCPU, KVM_RUN a hlt): what
 * the verdict never counts as "KVM boots the guest". */
bool vm_kvm_vcpu_runs(char *why, size_t why_len);
/* The accelerator part of v: KVM only when the guest said HELLO under it (kvm_hello);
 * else TCG, with why (and KVM-PVM named where v->pvm). */
void vm_verdict_decide(struct vm_verdict *v, bool kvm_hello, const char *kvm_why);

/* ---------------------------------------------------------------- microvm.c */
struct vm {
	struct vm_qemu q;
	struct vm_chan *ch;
	struct vm_qmp qmp;
	struct vm_hello hello;
	bool kvm;
	uint64_t boot_ms;		/* host-measured, launch to HELLO */
	pthread_mutex_t lock;
	bool suspended;
	uint64_t cpu_ms;		/* its commands' CPU time in the guest (the budget's) */
	/* issue 15: vm-map */
	struct vm_map *map;		/* the sandbox's files and network, or NULL (the probe) */
	/* issue 15: vm-state */
	char *snap_dir;			/* the library's snapshots of it */
	uint64_t snap_bytes;		/* what they occupy */
	char *start_how;		/* "template start: from <key>" or why not */
};
int microvm_backend_new(const char *work_root, agentd_backend **out, agentd_error *err);
/* The backend's jail backend (a container backend object of its own). */
agentd_backend *microvm_jail_backend(agentd_backend *b);
/* Boot a VM for spec under the verdict in a jail of jail_backend: QEMU up, HELLO (within
 * boot_timeout_ms, 0 = the default), SETUP sent. extra: hooks' launch additions (its
 * files, kvm, limits are ignored), or NULL. */
int vm_boot(agentd_backend *jail_backend, const agentd_spec *spec, const struct vm_verdict *v,
	    const struct vm_launch *extra, uint64_t boot_timeout_ms, struct vm *vm,
	    agentd_error *err);
void vm_shutdown(struct vm *vm);
/* issue 15: vm-state. The guest RAM and vCPUs vm_boot gives spec. */
uint64_t vm_guest_mem(const agentd_spec *spec);
unsigned vm_guest_vcpus(const agentd_spec *spec);

#endif
