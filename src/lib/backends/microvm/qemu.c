/* qemu.c: QEMU's command line and its launch inside agentd's own container jail.
 *
 * The jail is a container sandbox (container/) of a spec built here: user, mount, pid,
 * net, ipc, uts and cgroup namespaces; a root that shows the host runtime read-only (QEMU's
 * binary, libraries and firmware), the guest's kernel and initramfs, /dev/kvm only when the
 * probe counted KVM, and a private scratch as the VM's own directory; no network at all;
 * no capabilities; agentd's default seccomp profile (QEMU's own `-sandbox on` filter stacks
 * on it); a cgroup on the whole VM (memory backstop, pids, cpu). QEMU is started by the
 * jail's init like a background process (OP_SPAWN), with its channels as inherited fds:
 * fd 0 is the virtio-serial port's socket, fd 1 the QMP socket, fd 2 a pipe of its stderr;
 * nothing connectable lies on any filesystem. */
#include "lib/backends/microvm/microvm.h"
#include "lib/backends/microvm/share.h" /* issue 15: vm-map */

#include <sys/utsname.h>

#define START_WAIT_MS 10000
#define CHAN_FD 0
#define QMP_FD 1

const char *vm_qemu_binary(void)
{
	static const char *const paths[] = {"/usr/bin/qemu-system-x86_64",
					    "/usr/local/bin/qemu-system-x86_64"};
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

unsigned long vm_host_khz(void)
{
	/* The TSC's rate where the kernel says it (tsc_khz is not exported): cpuinfo's MHz of
	 * the first CPU. A guest that calibrates against the PIT under TCG may hang. */
	_cleanup_free_ char *s = read_file_at(AT_FDCWD, "/proc/cpuinfo", 1 << 20, NULL);
	const char *p = s ? strstr(s, "cpu MHz") : NULL;
	if (!p || !(p = strchr(p, ':')))
		return 0;
	double mhz = strtod(p + 1, NULL);
	return mhz > 0 && mhz < 100000 ? (unsigned long)(mhz * 1000) : 0;
}

void vm_qemu_argv(const struct vm_launch *l, agentd_strv *a)
{
	const char *bin = vm_qemu_binary();
	strv_push(a, bin ? bin : "qemu-system-x86_64");
	static const char *const fixed[] = {
		"-M", "microvm,isa-serial=off",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		/* no spawn, no privilege change, no resource control, no obsolete calls */
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		/* modern virtio-mmio (virtiofs needs it; the guest's drivers take both) */
		"-global", "virtio-mmio.force-legacy=false",
		"-device", "virtio-serial-device",
		"-device", "virtserialport,chardev=agent,name=" GP_PORT_NAME,
		"-mon", "chardev=qmp,mode=control",
	};
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		strv_push(a, fixed[i]);
	strv_push(a, "-chardev");
	strv_pushf(a, "socket,id=agent,fd=%d", CHAN_FD);
	strv_push(a, "-chardev");
	strv_pushf(a, "socket,id=qmp,fd=%d", QMP_FD);
	strv_push(a, "-accel");
	strv_push(a, l->kvm ? "kvm" : "tcg");
	if (l->kvm) {
		strv_push(a, "-cpu");
		strv_push(a, "host");
	}
	strv_push(a, "-m");
	strv_pushf(a, "%" PRIu64 "M", (l->guest_mem_bytes + (1 << 20) - 1) >> 20);
	strv_push(a, "-smp");
	strv_pushf(a, "%u", l->vcpus ? l->vcpus : 1);
	strv_push(a, "-kernel");
	strv_push(a, l->files->kernel);
	strv_push(a, "-initrd");
	strv_push(a, l->files->initrd);
	unsigned long khz = vm_host_khz();
	strv_push(a, "-append");
	char khz_arg[48] = "";
	if (khz)
		snprintf(khz_arg, sizeof(khz_arg), " tsc_early_khz=%lu", khz);
	strv_pushf(a, "console=hvc0 quiet panic=-1 reboot=t%s%s%s", khz_arg, l->append ? " " : "",
		 l->append ? l->append : "");
	for (size_t i = 0; i < l->extra_args.n; i++)
		strv_push(a, l->extra_args.v[i]);
}

/* The jail's spec: what QEMU sees and what bounds it. */
static void jail_spec(const struct vm_launch *l, agentd_spec *s)
{
	agentd_spec_init(s, AGENTD_PROFILE_STRICT);
	free(s->workdir);
	s->workdir = xstrdup("/vm");
	s->network.mode = AGENTD_NET_NONE;
	strv_push(&s->allowed_paths_ro, l->files->kernel);
	strv_push(&s->allowed_paths_ro, l->files->initrd);
	for (size_t i = 0; i < l->extra_ro.n; i++)
		strv_push(&s->allowed_paths_ro, l->extra_ro.v[i]);
	if (l->kvm) {
		s->bind_mounts = xcalloc(1, sizeof(*s->bind_mounts));
		s->bind_mounts[0] = (agentd_bind_mount){.source = xstrdup("/dev/kvm"),
							.target = xstrdup("/dev/kvm")};
		s->n_bind_mounts = 1;
	}
	agentd_limits *lim = &s->limits;
	const agentd_limits *pl = l->limits;
	/* The backstop: guest RAM and QEMU's own; the guest's cgroup holds the exact limit. */
	lim->max_memory_bytes = l->guest_mem_bytes + VM_QEMU_OVERHEAD;
	lim->max_processes = VM_QEMU_PIDS;
	lim->max_cpu_time_ms = 0;	/* the VM lives on; commands' budgets are the guest's */
	lim->max_wall_time_ms = 0;
	lim->max_open_files = 4096;
	lim->max_write_bytes = 16ull << 20;	/* its scratch: QEMU writes nothing there */
	/* issue 15: vm-map. virtiofs needs guest RAM in a shared memfd, whose ftruncate meets
	 * RLIMIT_FSIZE (SIGXFSZ); tmpfs pages are charged to the memory backstop anyway */
	if (l->map && lim->max_write_bytes < l->guest_mem_bytes)
		lim->max_write_bytes = l->guest_mem_bytes;
	/* issue 15: vm-state: a template's build writes guest RAM to the fd it is given, and
	 * RLIMIT_FSIZE bounds that write too */
	if (l->no_setup)
		lim->max_write_bytes = l->guest_mem_bytes + (64ull << 20);
	lim->max_output_bytes = 1 << 20;
	lim->cpu_weight = pl ? pl->cpu_weight : 100;
	lim->cpu_quota_pct = pl ? pl->cpu_quota_pct : 0;
}

static int wait_start(int rep, int jail_pidfd, pid_t *pid, agentd_error *err)
{
	uint64_t deadline = now_ms_monotonic() + START_WAIT_MS;
	for (;;) {
		struct child_report r;
		ssize_t n = read(rep, &r, sizeof(r));
		if (n == (ssize_t)sizeof(r)) {
			if (r.kind == REPORT_START) {
				*pid = r.status;
				return 0;
			}
			r.what[sizeof(r.what) - 1] = '\0';
			return agentd_error_set(err, r.errnum ? r.errnum : EIO,
						"start QEMU in its jail: %s: %s", r.what,
						strerror(r.errnum));
		}
		if (n == 0)
			return agentd_error_set(err, ESRCH, "QEMU's jail ended before it started");
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return agentd_error_errno(err, errno, "read QEMU's start report");
		uint64_t now = now_ms_monotonic();
		if (now >= deadline)
			return agentd_error_set(err, ETIMEDOUT, "QEMU's jail did not start it");
		struct pollfd p[2] = {{.fd = rep, .events = POLLIN}, {.fd = jail_pidfd, .events = POLLIN}};
		if (poll(p, 2, (int)(deadline - now)) > 0 && p[1].revents && !p[0].revents)
			return agentd_error_set(err, ESRCH, "QEMU's jail is not running");
	}
}

int vm_qemu_start(agentd_backend *jb, const struct vm_launch *l, struct vm_qemu *q,
		  agentd_error *err)
{
	memset(q, 0, sizeof(*q));
	q->chan_fd = q->qmp_fd = q->err_fd = q->rep_fd = -1;
	if (!vm_qemu_binary())
		return agentd_error_set(err, ENOENT, "QEMU (qemu-system-x86_64) is not installed");
	agentd_spec js;
	jail_spec(l, &js);
	int r = jb->ops->create_sandbox(jb, &js, &q->jail, err);
	agentd_spec_free(&js);
	if (r < 0)
		return agentd_error_prefix(err, "QEMU's jail");
	trace_mark("vm: jail ready");
	struct ctr *c = q->jail->priv;
	int chan[2] = {-1, -1}, qmp[2] = {-1, -1}, errp[2] = {-1, -1}, rep[2] = {-1, -1};
	agentd_strv argv = {0};
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qmp) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
		agentd_error_errno(err, errno, "QEMU's channels");
		goto fail;
	}
	if (fcntl(errp[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(rep[0], F_SETFL, O_NONBLOCK) < 0) {
		agentd_error_errno(err, errno, "QEMU's channels");
		goto fail;
	}
	if (c->cg && !(q->unit = ctr_unit_get(c, err)))
		goto fail;
	vm_qemu_argv(l, &argv);
	/* issue 15: vm-map. virtiofsd before QEMU, which connects to it at start */
	if (l->map && vm_map_before_qemu(l->map, q->jail, l->guest_mem_bytes, &argv, err) < 0) {
		strv_free(&argv);
		goto fail;
	}
	char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	struct ctl_msg m = {.op = OP_SPAWN, .id = ++c->next_id};
	int child[4] = {chan[1], qmp[1], errp[1], rep[1]};
	r = ctr_send_command(c, &m, child, argv.v, envp, "/vm", q->unit, err);
	strv_free(&argv);
	for (int i = 0; i < 4; i++)
		close(child[i]);
	chan[1] = qmp[1] = errp[1] = rep[1] = -1;
	if (r < 0 || wait_start(rep[0], c->init_pidfd, &q->pid, err) < 0) {
		/* its stderr says why, when it said anything */
		char buf[512];
		ssize_t n = read(errp[0], buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			agentd_error_prefix(err, "%s", buf);
		}
		goto fail;
	}
	trace_mark("vm: QEMU started");
	q->chan_fd = chan[0];
	q->qmp_fd = qmp[0];
	q->err_fd = errp[0];
	q->rep_fd = rep[0];
	return 0;
fail:
	vm_map_release(l->map, q->jail); /* issue 15: vm-map: its unit is the jail's */
	for (int i = 0; i < 2; i++) {
		int fds[] = {chan[i], qmp[i], errp[i], rep[i]};
		for (size_t k = 0; k < ARRAY_SIZE(fds); k++)
			if (fds[k] >= 0)
				close(fds[k]);
	}
	vm_qemu_stop(q);
	return -1;
}

void vm_qemu_stop(struct vm_qemu *q)
{
	int fds[] = {q->chan_fd, q->qmp_fd, q->err_fd, q->rep_fd};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	q->chan_fd = q->qmp_fd = q->err_fd = q->rep_fd = -1;
	if (q->jail) {
		struct ctr *c = q->jail->priv;
		/* its unit killed and removed, then the jail: the init, its cgroup, its ids */
		ctr_unit_put(c, q->unit, false);
		q->unit = NULL;
		ctr_sandbox_free(q->jail);
		q->jail = NULL;
	}
}
