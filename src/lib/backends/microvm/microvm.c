/* microvm.c: the microvm backend (docs/microvm.md) — one QEMU micro-VM per sandbox, kept
 * for the sandbox's life: create boots it (qemu.c launches QEMU in its jail, chan.c waits
 * for the guest agent's HELLO and sends SETUP), exec runs each command in it over an exec
 * channel, destroy powers it off and removes the jail. A VM whose guest breaks the
 * protocol, or whose QEMU ends, is killed at once; its sandbox reports every later exec as
 * failed, and nothing else is affected. */
#include "lib/backends/microvm/microvm.h"
#include "lib/backends/microvm/share.h" /* issue 15: vm-map */
#include "lib/backends/microvm/state.h" /* issue 15: vm-state */

#include <sys/random.h>

#define BOOT_TIMEOUT_MS 30000	/* launch to HELLO: ~2-5 s under TCG, 6x for a loaded host */
#define SETUP_TIMEOUT_MS 10000
#define QMP_TIMEOUT_MS 5000
#define POWEROFF_WAIT_MS 2000

struct microvm_backend {
	agentd_backend *jail;	/* a container backend of our own: QEMU's jails */
	pthread_mutex_t lock;
	bool probed;
	struct vm_verdict verdict;
};

agentd_backend *microvm_jail_backend(agentd_backend *b)
{
	return ((struct microvm_backend *)b->priv)->jail;
}

/* ------------------------------------------------------------- guest files */

static bool file_ok(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int vm_guest_files(struct vm_guest_files *g, agentd_error *err)
{
	const char *dir = getenv("AGENTD_GUEST_DIR");
	if (!dir || !*dir)
		dir = AGENTD_GUEST_BUILD_DIR;
	const char *k = getenv("AGENTD_GUEST_KERNEL"), *i = getenv("AGENTD_GUEST_INITRD");
	if (k && *k)
		snprintf(g->kernel, sizeof(g->kernel), "%s", k);
	else
		snprintf(g->kernel, sizeof(g->kernel), "%s/vmlinux", dir);
	if (i && *i)
		snprintf(g->initrd, sizeof(g->initrd), "%s", i);
	else
		snprintf(g->initrd, sizeof(g->initrd), "%s/initramfs.cpio.gz", dir);
	const char *missing = !file_ok(g->kernel) ? g->kernel : !file_ok(g->initrd) ? g->initrd : NULL;
	if (missing)
		return agentd_error_set(err, ENOENT,
					"the guest's %s is missing (%s): build it with "
					"scripts/build-guest.sh, or set AGENTD_GUEST_DIR",
					missing == g->kernel ? "kernel" : "initramfs", missing);
	return 0;
}

/* ------------------------------------------------------------- boot */

static void vm_kill_now(void *arg)
{
	struct vm *vm = arg;
	/* The reader thread saw a protocol error or QEMU's end: QEMU and all it runs go now;
	 * the jail itself is removed by destroy. */
	if (vm->q.unit)
		cgroup_kill_all(vm->q.unit);
}

/* SETUP: hostname, network, clock, entropy, the seccomp program of agentd's default
 * profile (what T_SECCOMP 1 installs for each command). */
static void put_mount(struct gp_writer *w, const struct vm_mount *m)
{
	size_t off = gp_w_begin(w, GP_T_MOUNT);
	gp_w_str(w, GP_T_SOURCE, m->source);
	gp_w_str(w, GP_T_TARGET, m->target);
	gp_w_str(w, GP_T_FSTYPE, m->fstype);
	gp_w_u64(w, GP_T_READONLY, m->readonly ? 1 : 0);
	gp_w_end(w, off);
}

static int send_setup(struct vm *vm, const agentd_spec *spec, const struct vm_launch *extra,
		      agentd_error *err)
{
	struct seccomp_prog sc = {0};
	struct seccomp_opts so = {.profile = "default"};
	if (seccomp_prepare(&so, &sc, err) < 0)
		return agentd_error_prefix(err, "seccomp program for the guest");
	uint8_t *buf = xmalloc(GP_MAX_PAYLOAD);
	struct gp_writer w;
	gp_w_init(&w, buf, GP_MAX_PAYLOAD);
	gp_w_str(&w, GP_T_HOSTNAME, "agentd");
	/* issue 15: vm-map: the shared tree (runtime, workdir, /tmp, policy paths) is the
	 * execs' root, the first mount the guest makes; without it the guest's own root */
	if (vm_map_setup(vm->map, &w)) {
	} else if (extra && extra->n_mounts) {
		for (size_t i = 0; i < extra->n_mounts; i++)
			put_mount(&w, &extra->mounts[i]);
	} else {
		/* the guest's own root (its initramfs), a scratch at the workdir and /tmp: gone
		 * with the VM */
		struct vm_mount wd = {"tmpfs", spec->workdir, "tmpfs", false};
		struct vm_mount tmp = {"tmpfs", "/tmp", "tmpfs", false};
		put_mount(&w, &wd);
		if (strcmp(spec->workdir, "/tmp") != 0)
			put_mount(&w, &tmp);
	}
	gp_w_u64(&w, GP_T_NETWORK,
		 spec->network.mode == AGENTD_NET_ALLOWLIST ? GP_NET_ALLOWLIST : GP_NET_NONE);
	gp_w_u64(&w, GP_T_CLOCK_NS, (uint64_t)now_ms_realtime() * 1000000ull);
	uint8_t seed[32];
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		memset(seed, 0, sizeof(seed));
	gp_w_bytes(&w, GP_T_SEED, seed, sizeof(seed));
	if (sc.active && sc.filter)
		gp_w_bytes(&w, GP_T_SECCOMP_BPF, sc.filter, (size_t)sc.len * 8);
	seccomp_prog_free(&sc);
	int r = gp_w_done(&w) < 0
			? agentd_error_set(err, EMSGSIZE, "the guest's SETUP exceeds one frame")
			: vm_chan_control(vm->ch, GP_SETUP, buf, w.len, SETUP_TIMEOUT_MS, err);
	free(buf);
	return r;
}

uint64_t vm_guest_mem(const agentd_spec *spec)
{
	uint64_t m = spec->limits.max_memory_bytes ? spec->limits.max_memory_bytes
						   : VM_GUEST_DEFAULT_MEM;
	return m + VM_GUEST_OVERHEAD;
}

unsigned vm_guest_vcpus(const agentd_spec *spec)
{
	unsigned pct = spec->limits.cpu_quota_pct;
	long host = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = pct ? (pct + 99) / 100 : 1;
	if (host > 0 && n > (unsigned)host)
		n = (unsigned)host;
	return n ? n : 1;
}

int vm_boot(agentd_backend *jail, const agentd_spec *spec, const struct vm_verdict *v,
	    const struct vm_launch *extra, uint64_t boot_timeout_ms, struct vm *vm,
	    agentd_error *err)
{
	memset(vm, 0, sizeof(*vm));
	vm->qmp.fd = -1;
	vm->map = extra ? extra->map : NULL; /* issue 15: vm-map: ours from now on */
	pthread_mutex_init(&vm->lock, NULL);
	struct vm_guest_files files;
	if (vm_guest_files(&files, err) < 0) {
		vm_map_free(vm->map);
		return -1;
	}
	struct vm_launch l = {
		.files = &files,
		.kvm = v->kvm,
		.guest_mem_bytes = vm_guest_mem(spec),
		.vcpus = vm_guest_vcpus(spec),
		.limits = &spec->limits,
	};
	if (extra) {
		l.append = extra->append;
		if (extra->guest_mem_bytes)
			l.guest_mem_bytes = extra->guest_mem_bytes;
		strv_copy(&l.extra_args, &extra->extra_args);
		strv_copy(&l.extra_ro, &extra->extra_ro);
		l.map = vm->map; /* issue 15: vm-map */
		l.no_setup = extra->no_setup;
		if (extra->incoming) {	/* issue 15: vm-state: QEMU waits for the template */
			strv_push(&l.extra_args, "-incoming");
			strv_push(&l.extra_args, "defer");
		}
	}
	uint64_t t0 = now_ms_monotonic();
	int r = vm_qemu_start(jail, &l, &vm->q, err);
	strv_free(&l.extra_args);
	strv_free(&l.extra_ro);
	if (r < 0) {
		vm_map_free(vm->map); /* released with the jail already */
		return -1;
	}
	vm->kvm = v->kvm;
	vm_qmp_init(&vm->qmp, take_fd(&vm->q.qmp_fd));
	vm->ch = vm_chan_new(take_fd(&vm->q.chan_fd), take_fd(&vm->q.rep_fd),
			     take_fd(&vm->q.err_fd), err);
	if (!vm->ch)
		goto fail;
	vm_chan_on_broken(vm->ch, vm_kill_now, vm);
	if (vm_qmp_handshake(&vm->qmp, QMP_TIMEOUT_MS * 4, err) < 0) {
		agentd_error_prefix(err, "QEMU's monitor");
		goto fail;
	}
	vm_map_qemu_up(vm->map); /* issue 15: vm-map: QEMU is connected to virtiofsd */
	if (extra && extra->incoming) {	/* issue 15: vm-state */
		vm_chan_set_hello(vm->ch, extra->incoming_hello);
		if (vm_tmpl_load(&vm->qmp, extra->incoming_fd,
				 boot_timeout_ms ? boot_timeout_ms : BOOT_TIMEOUT_MS, err) < 0)
			goto fail;
		vm->hello = *extra->incoming_hello;
	} else if (vm_chan_wait_hello(vm->ch, boot_timeout_ms ? boot_timeout_ms : BOOT_TIMEOUT_MS,
				      &vm->hello, err) < 0) {
		goto fail;
	}
	vm->boot_ms = now_ms_monotonic() - t0;
	trace_mark("vm: guest ready");
	if (extra && extra->no_setup)
		return 0;
	if (send_setup(vm, spec, extra, err) < 0) {
		agentd_error_prefix(err, "guest setup");
		goto fail;
	}
	return 0;
fail:;
	char tail[256] = "";
	if (vm->ch)
		vm_chan_qemu_stderr(vm->ch, tail, sizeof(tail));
	if (tail[0] && err && !strstr(err->msg, tail))
		agentd_error_prefix(err, "boot (QEMU said: %s)", tail);
	else
		agentd_error_prefix(err, "boot");
	vm_shutdown(vm);
	return -1;
}

void vm_shutdown(struct vm *vm)
{
	if (vm->ch && !vm_chan_broken(vm->ch, NULL, 0)) {
		/* A clean power-off when the guest is healthy: it syncs and stops; QEMU exits
		 * (-no-reboot). The jail's removal kills whatever is left anyway. */
		vm_chan_control(vm->ch, GP_POWEROFF, NULL, 0, POWEROFF_WAIT_MS, NULL);
		uint64_t deadline = now_ms_monotonic() + POWEROFF_WAIT_MS;
		while (!vm_chan_broken(vm->ch, NULL, 0) && now_ms_monotonic() < deadline)
			usleep(10000);
	}
	if (vm->q.unit)
		cgroup_kill_all(vm->q.unit);
	vm_chan_free(vm->ch);
	vm->ch = NULL;
	vm_map_release(vm->map, vm->q.jail); /* issue 15: vm-map */
	vm_map_free(vm->map);
	vm->map = NULL;
	vm_qmp_close(&vm->qmp);
	vm_qemu_stop(&vm->q);
	pthread_mutex_destroy(&vm->lock);
}

/* ------------------------------------------------------------- sandbox ops */

static int mv_exec(agentd_sandbox *sb, const agentd_command *cmd, const agentd_exec_ctx *ctx,
		   agentd_exec_output *out, agentd_error *err)
{
	struct vm *vm = sb->priv;
	char why[256];
	if (vm_chan_broken(vm->ch, why, sizeof(why)))
		return agentd_error_set(err, EPIPE, "sandbox %s: its VM is gone: %s", sb->id, why);
	pthread_mutex_lock(&vm->lock);
	bool suspended = vm->suspended;
	pthread_mutex_unlock(&vm->lock);
	if (suspended)
		return agentd_error_set(err, EBUSY, "sandbox %s is suspended", sb->id);
	agentd_kvv extra = {0};
	char **envp = backend_envp(sb, &extra, sb->spec.network.mode == AGENTD_NET_ALLOWLIST, cmd);
	exec_request er = backend_exec_request(sb, cmd, ctx, envp, cmd->workdir ? cmd->workdir
										: sb->spec.workdir, NULL);
	const agentd_limits *l = &sb->spec.limits;
	/* the sandbox's CPU budget is its commands' (not QEMU's own, booting included): what
	 * is left of it bounds this one */
	pthread_mutex_lock(&vm->lock);
	uint64_t spent = vm->cpu_ms;
	pthread_mutex_unlock(&vm->lock);
	uint64_t cpu_left = !l->max_cpu_time_ms		  ? 0
			    : spent < l->max_cpu_time_ms ? l->max_cpu_time_ms - spent
							 : 1;
	struct vm_exec_req rq = {
		.argv = cmd->argv,
		.envp = envp,
		.cwd = er.cwd,
		.stdin_data = cmd->stdin_data,
		.stdin_len = cmd->stdin_len,
		.stdin_null = !cmd->stdin_data,
		.timeout_ms = er.timeout_ms,
		.max_output_bytes = l->max_output_bytes,
		.mem_bytes = l->max_memory_bytes,
		.pids = l->max_processes,
		.cpu_ms = cpu_left,
		.nofile = l->max_open_files,
		.fsize = l->max_write_bytes,
		/* as on container: uid/gid 1000, or 0 when run_as asks for it (root of the
		 * guest only, its commands still under the seccomp filter and its cgroup) */
		.uid = sb->spec.run_as_uid == 0 ? 0 : VM_GUEST_ID,
		.gid = sb->spec.run_as_uid == 0 ? 0 : VM_GUEST_ID,
		.seccomp = strcmp(sb->spec.seccomp_profile, "none") != 0,
		.net_none = sb->spec.network.mode != AGENTD_NET_ALLOWLIST,
		.on_output = ctx->on_output,
		.userdata = ctx->userdata,
		.cancel_fd = ctx->cancel_fd,
	};
	int r = vm_exec(vm->ch, &rq, out, err);
	env_free(envp);
	if (r == 0) {
		pthread_mutex_lock(&vm->lock);
		vm->cpu_ms += out->usage.cpu_time_ms;
		pthread_mutex_unlock(&vm->lock);
	}
	if (r < 0)
		return agentd_error_prefix(err, "exec %s", cmd->argv[0]);
	return 0;
}

static bool mv_is_alive(agentd_sandbox *sb)
{
	struct vm *vm = sb->priv;
	return vm && vm->ch && !vm_chan_broken(vm->ch, NULL, 0);
}

static int mv_usage(agentd_sandbox *sb, agentd_usage *u, agentd_error *err)
{
	struct vm *vm = sb->priv;
	struct ctr *c = vm->q.jail ? vm->q.jail->priv : NULL;
	if (c && c->cg) {
		int r = cgroup_read_usage(c->cg, u);
		if (r < 0)
			return agentd_error_errno(err, -r, "read the VM's cgroup usage");
	}
	/* the host cgroup's memory and I/O are the VM's (QEMU's) cost; CPU time is the
	 * commands', what the policy's budget counts */
	pthread_mutex_lock(&vm->lock);
	u->cpu_time_ms = vm->cpu_ms;
	pthread_mutex_unlock(&vm->lock);
	u->wall_time_ms = (uint64_t)(time(NULL) - sb->created_at) * 1000;
	return 0;
}

static int mv_destroy(agentd_sandbox *sb, agentd_error *err)
{
	(void)err;
	struct vm *vm = sb->priv;
	if (vm) {
		vm_state_release(vm);
		vm_shutdown(vm);
		vm_state_free(vm);
		free(vm);
	}
	sb->priv = NULL;
	return 0;
}

/* issue 15: vm-map. The files API on the fds held since before the guest ran. */
static int mv_workdir_fd(agentd_sandbox *sb, uid_t *uid, gid_t *gid, agentd_error *err)
{
	struct vm *vm = sb->priv;
	return vm_map_workdir_fd(vm->map, false, uid, gid, err);
}

static int mv_root_fd(agentd_sandbox *sb, uid_t *uid, gid_t *gid, agentd_error *err)
{
	struct vm *vm = sb->priv;
	return vm_map_workdir_fd(vm->map, true, uid, gid, err);
}

static const agentd_sandbox_ops microvm_sandbox_ops = {
	.exec = mv_exec,
	.is_alive = mv_is_alive,
	.usage = mv_usage,
	.destroy = mv_destroy,
	/* issue 15: vm-map */
	.workdir_fd = mv_workdir_fd,
	.root_fd = mv_root_fd,
	/* issue 15: vm-state */
	.suspend = vm_state_suspend,
	.resume = vm_state_resume,
	.snapshot = vm_state_snapshot,
	.restore = vm_state_restore,
	.snapshot_to = vm_state_snapshot_to,
	.restore_from = vm_state_restore_from,
};

/* ------------------------------------------------------------- backend */

static const struct vm_verdict *verdict(agentd_backend *b)
{
	struct microvm_backend *mb = b->priv;
	pthread_mutex_lock(&mb->lock);
	if (!mb->probed) {
		vm_probe_verdict(mb->jail, &mb->verdict);
		mb->probed = true;
	}
	pthread_mutex_unlock(&mb->lock);
	return &mb->verdict;
}

/* What a VM of this build cannot give a spec yet: refused, naming the key. */
static int spec_refuse(const agentd_spec *spec, agentd_error *err)
{
	if (spec->network.mode == AGENTD_NET_HOST)
		return agentd_error_set(err, ENOTSUP, "network.mode: host: a micro-VM has no host "
						      "network (use none or allowlist)");
	if (spec->image)
		return agentd_error_set(err, ENOTSUP, "image: the microvm backend boots its own "
						      "guest, not an image");
	/* Host paths reach a guest only through file sharing (virtiofs): never dropped. */
	if ((spec->allowed_paths_ro.n || spec->allowed_paths_rw.n || spec->n_bind_mounts) &&
	    !vm_share_virtiofsd())
		return agentd_error_set(err, ENOTSUP,
					"%s: host paths need file sharing into the guest: "
					"virtiofsd is not installed (qemu-system-common)",
					spec->allowed_paths_ro.n   ? "allowed_paths_ro"
					: spec->allowed_paths_rw.n ? "allowed_paths_rw"
								   : "bind_mounts");
	return 0;
}

static int mv_create(agentd_backend *b, const agentd_spec *spec, agentd_sandbox **out,
		     agentd_error *err)
{
	if (spec_refuse(spec, err) < 0)
		return -1;
	const struct vm_verdict *v = verdict(b);
	if (!v->available)
		return agentd_error_set(err, ENOTSUP, "microvm: %s", v->reason);
	agentd_sandbox *sb = agentd_sandbox_alloc(b, spec, &microvm_sandbox_ops, err);
	if (!sb)
		return -1;
	struct vm *vm = xcalloc(1, sizeof(*vm));
	/* issue 15: vm-map: the policy's files (virtiofs) and network (the proxy); issue 15:
	 * vm-state: none of it for a sandbox that starts from the memory-snapshot template */
	bool from_template = vm_tmpl_wanted(&sb->spec);
	struct vm_launch extra = {.map = from_template ? NULL : vm_map_new(&sb->spec)};
	agentd_proxy *proxy = NULL;
	if (spec->network.mode == AGENTD_NET_ALLOWLIST &&
	    !(proxy = backend_egress_proxy(b, err))) {
		vm_map_free(extra.map);
		free(vm);
		backend_sandbox_free(sb);
		return agentd_error_prefix(err, "egress proxy");
	}
	char why[256];
	snprintf(why, sizeof(why), "template start: not available: %s",
		 "virtiofs shares cannot migrate (the sandbox's files are shared by virtiofs)");
	int t = 0;
	if (from_template) {
		_cleanup_free_ char *troot = xasprintf("%s/" VM_TMPL_DIR, b->work_root);
		t = vm_tmpl_start(microvm_jail_backend(b), &sb->spec, v, troot, vm, why,
				  sizeof(why), err);
	}
	if (t == 0)
		trace_mark("vm: cold boot");
	if (t < 0 || (t == 0 && vm_boot(microvm_jail_backend(b), &sb->spec, v, &extra, 0, vm,
					err) < 0)) {
		free(vm); /* the map went with it */
		backend_sandbox_free(sb);
		return -1;
	}
	vm->start_how = xstrdup(why);
	sb->priv = vm;
	/* The sandbox's id is its jail's: its cgroup (agentd/<id>), what the janitor removes
	 * after a crash, names it. */
	snprintf(sb->id, sizeof(sb->id), "%s", vm->q.jail->id);
	snprintf(sb->caps.sandbox_id, sizeof(sb->caps.sandbox_id), "%s", sb->id);
	if (vm->map && vm_map_network(vm->map, vm->ch, proxy, sb->id, err) < 0) {
		vm_shutdown(vm);
		free(vm);
		sb->priv = NULL;
		backend_sandbox_free(sb);
		return -1;
	}
	backend_caps_fill(sb, spec->network.mode != AGENTD_NET_NONE,
			  strcmp(spec->seccomp_profile, "none") != 0);
	strv_push(&sb->caps.writable_paths, spec->workdir);
	strv_push(&sb->caps.writable_paths, "/tmp");
	*out = sb;
	return 0;
}

static int mv_probe(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err)
{
	(void)err;
	const agentd_platform *p = agentd_probe_platform();
	process_probe_common(caps, p);
	const struct vm_verdict *v = verdict(b);
	caps->available = v->available;
	if (!v->available) {
		snprintf(caps->unavailable_reason, sizeof(caps->unavailable_reason), "%s", v->reason);
		return 0;
	}
	/* What the guest enforces (a kernel of its own, a cgroup per command, seccomp, rlimits)
	 * behind a hardware (or, under TCG, an emulated) boundary. */
	static const agentd_policy_item guest[] = {
		AGENTD_ITEM_MEMORY, AGENTD_ITEM_PIDS,	  AGENTD_ITEM_CPU_TIME,
		AGENTD_ITEM_SECCOMP, AGENTD_ITEM_NETWORK_NONE, AGENTD_ITEM_FILESYSTEM,
	};
	for (size_t i = 0; i < ARRAY_SIZE(guest); i++)
		agentd_caps_enforce(caps, guest[i]);
	/* issue 15: vm-map: the egress proxy through guest streams; host paths over virtiofs
	 * (without virtiofsd a create fails, naming it) */
	agentd_caps_enforce(caps, AGENTD_ITEM_NETWORK_ALLOWLIST);
	if (vm_share_virtiofsd())
		agentd_caps_enforce(caps, AGENTD_ITEM_BIND_MOUNTS);
	else
		agentd_caps_cannot_enforce(caps, AGENTD_ITEM_BIND_MOUNTS,
					   "virtiofsd is not installed (qemu-system-common)");
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_IMAGE,
				   "the guest boots its own initramfs, not an image");
	caps->filesystem_isolation = true;
	caps->process_isolation = true;
	caps->network_isolation = true;
	caps->syscall_filtering = true;
	caps->resource_limits = true;
	caps->persistent_sandboxes = true;
	char f[160];
	snprintf(f, sizeof(f), "accelerator-%s", v->kvm ? "kvm" : "tcg");
	strv_push(&caps->platform_features, f);
	if (v->pvm)
		strv_push(&caps->platform_features, "kvm-pvm");
	strv_push(&caps->platform_features, "hardware-boundary");
	if (vm_share_virtiofsd()) /* host paths reach the guest (virtiofs) */
		strv_push(&caps->platform_features, "file-sharing");
	/* issue 15: vm-state: sandboxes start from a memory-snapshot template (state.h) */
	strv_push(&caps->platform_features, "template-start");
	if (!v->kvm) {
		char w[512];
		snprintf(w, sizeof(w),
			 "no usable KVM (%s): guests run under TCG emulation, boot to ready %" PRIu64
			 " ms measured",
			 v->accel_why, v->boot_ms);
		strv_push(&caps->warnings, w);
	}
	return 0;
}

static void mv_backend_free(agentd_backend *b)
{
	struct microvm_backend *mb = b->priv;
	if (!mb)
		return;
	agentd_backend_free(mb->jail);
	pthread_mutex_destroy(&mb->lock);
	free(mb);
	b->priv = NULL;
}

static const agentd_backend_ops microvm_ops = {
	.name = "microvm",
	.probe = mv_probe,
	.create_sandbox = mv_create,
	.free_backend = mv_backend_free,
};

int microvm_backend_new(const char *work_root, agentd_backend **out, agentd_error *err)
{
	agentd_backend *jail = NULL;
	if (container_backend_new(work_root, &jail, err) < 0)
		return -1;
	*out = agentd_backend_alloc(&microvm_ops, work_root);
	struct microvm_backend *mb = xcalloc(1, sizeof(*mb));
	mb->jail = jail;
	pthread_mutex_init(&mb->lock, NULL);
	(*out)->priv = mb;
	return 0;
}
