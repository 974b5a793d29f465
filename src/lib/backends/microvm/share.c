/* share.c: the guest's files, one virtiofsd per sandbox (issue 15: vm-map).
 *
 * The tree is the container's root (mounts/ plan: same runtime list, same /etc allowlist,
 * same scratch tmpfs bounded by max_write_bytes, same policy binds with the same read-only
 * attributes), less what the guest's own kernel provides (/proc, devpts, host device nodes:
 * served over FUSE they would be the host's), and not pivoted into: virtiofsd is started
 * inside that mount namespace on the tree and pivots into it itself (-o sandbox=namespace:
 * its own mount, pid and net namespaces; it keeps only the capabilities serving files
 * needs, less mknod and setfcap here; its seccomp filter). Read-only is the host kernel's:
 * a ro bind refuses a write whatever the guest asks virtiofsd.
 *
 * The jail's process is cloned into fresh mount, pid, net, ipc and uts namespaces (and the
 * VM's host cgroup): when it dies the namespace and every mount in it go, so a destroy, a
 * failed create or a daemon crash (PDEATHSIG) leaves no mount on the host. Before it execs
 * virtiofsd it sends the host the tree's root, the workdir and the scratch as fds, which the
 * host holds for the files API and snapshots.
 *
 * The vhost-user socket: QEMU runs in its own jail (qemu.c) and gets only its standard fds,
 * so the listening socket, made here and passed to virtiofsd as --fd, is bound in QEMU's
 * jail directory: a tmpfs of the jail's mount namespace no other process sees; virtiofsd
 * accepts exactly one connection (QEMU's, made while its devices are realized) and the name
 * is removed as soon as QEMU is up. */
#include "lib/backends/microvm/share.h"

#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <sys/wait.h>

/* clone3's arguments up to cgroup (kernel 5.7) */
struct share_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
		set_tid, set_tid_size, cgroup;
};

#define VIRTIOFSD_DEBIAN "/usr/lib/qemu/virtiofsd"
#define VIRTIOFSD_LISTEN_FD 3
#define SHARE_NOFILE "65536" /* inodes the guest may hold looked up at once */

const char *vm_share_virtiofsd(void)
{
	const char *e = getenv("AGENTD_VIRTIOFSD");
	if (e && *e)
		return access(e, X_OK) == 0 ? e : NULL;
	return access(VIRTIOFSD_DEBIAN, X_OK) == 0 ? VIRTIOFSD_DEBIAN : NULL;
}

/* ------------------------------------------------------------ the tree's plan */

static bool guest_provides(const struct mount_op *op)
{
	switch (op->kind) {
	case MOUNT_OP_PROC:
	case MOUNT_OP_DEVPTS:
	case MOUNT_OP_DEV_NODE: /* a host device, opened by virtiofsd for the guest */
	case MOUNT_OP_PIVOT:	/* virtiofsd pivots into the tree itself */
		return true;
	case MOUNT_OP_MASK_FILE:
	case MOUNT_OP_MASK_DIR:
		return strncmp(op->target, "/proc", 5) == 0 || strncmp(op->target, "/sys", 4) == 0;
	default:
		return false;
	}
}

/* The container's plan for spec, less what the guest's kernel provides. */
static int share_plan(const struct vm_share_opts *o, struct mount_plan *mp, agentd_error *err)
{
	struct mount_plan_opts mo = {
	    .sandbox_uid = o->uid,
	    .sandbox_gid = o->gid,
	    .hostname = o->hostname ? o->hostname : "agentd",
	    .network_none = true, /* no NIC: names resolve through the proxy or not at all */
	};
	if (mount_plan_prepare(o->spec, &mo, mp, err) < 0)
		return agentd_error_prefix(err, "the guest's files");
	size_t k = 0;
	bool entered = false;
	for (size_t i = 0; i < mp->n; i++) {
		struct mount_op *op = &mp->ops[i];
		if (entered && guest_provides(op)) {
			free(op->source);
			free(op->target);
			free(op->data);
			continue;
		}
		entered |= op->kind == MOUNT_OP_ENTER;
		mp->ops[k++] = *op;
	}
	mp->n = k;
	/* Policy sources are reached as nobody: no further than an unprivileged user could,
	 * through whatever a sandbox may have planted on the way. */
	mount_plan_open_sources(mp, 65534, 65534);
	return 0;
}

/* ------------------------------------------------------------ the jail's process */

struct share_child {
	const struct mount_plan *mp;
	int ctl, listen_fd;
	char *const *argv;
};

struct share_fail {
	int err;
	char what[256];
};

/* No malloc, no stdio: a clone3 child of a multithreaded daemon. */
static int share_child_main(const struct share_child *a)
{
	struct share_fail f = {0};
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int r = mount_plan_apply(a->mp, f.what, sizeof(f.what));
	if (r < 0)
		goto fail;
	/* cwd: the tree's root; the scratch is the plan's base */
	int fds[3] = {open(".", O_PATH | O_DIRECTORY | O_CLOEXEC), -1, -1};
	int base = open(a->mp->base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (base >= 0) {
		fds[1] = openat(base, "workdir", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		fds[2] = base;
	}
	if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0) {
		r = -errno;
		snprintf(f.what, sizeof(f.what), "open the tree");
		goto fail;
	}
	if (fds_send(a->ctl, "ok", 2, fds, 3) < 0) {
		r = -errno;
		goto fail;
	}
	/* its stdio: nothing (its only peer is QEMU; a guest could make it log at will) */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 ||
	    dup2(a->listen_fd, VIRTIOFSD_LISTEN_FD) < 0 ||
	    fds_close_from(VIRTIOFSD_LISTEN_FD + 1) < 0)
		_exit(127);
	char *envp[] = {NULL};
	execve(a->argv[0], a->argv, envp);
	_exit(127);
fail:
	f.err = -r;
	if (send(a->ctl, &f, sizeof(f), MSG_NOSIGNAL) < 0) {
		/* the host sees EOF */
	}
	_exit(126);
}

/* The listening socket, bound as VM_SHARE_SOCK in dir_fd, QEMU's to connect to. */
static int share_listener(const struct vm_share_opts *o, agentd_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", o->sock_dir_fd,
		 VM_SHARE_SOCK);
	unlinkat(o->sock_dir_fd, VM_SHARE_SOCK, 0);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return agentd_error_errno(err, errno, "virtiofs socket");
	/* made as QEMU's user: the jail's tmpfs belongs to its user namespace, where host root
	 * is not mapped (EOVERFLOW); this thread's filesystem ids only */
	mode_t old = umask(0177);
	int ouid = setfsuid(o->sock_uid), ogid = setfsgid(o->sock_gid);
	int r = bind(s, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	setfsuid((uid_t)ouid);
	setfsgid((gid_t)ogid);
	umask(old);
	if (r < 0 || listen(s, 1) < 0) {
		agentd_error_errno(err, r < 0 ? e : errno, "virtiofs socket in QEMU's directory");
		close(s);
		unlinkat(o->sock_dir_fd, VM_SHARE_SOCK, 0);
		return -1;
	}
	return s;
}

/* The child's answer: the three fds, or why it failed. */
static int share_wait(int ctl, struct vm_share *s, agentd_error *err)
{
	struct pollfd p = {.fd = ctl, .events = POLLIN};
	int pr;
	while ((pr = poll(&p, 1, VM_SHARE_START_MS)) < 0 && errno == EINTR)
		;
	if (pr <= 0)
		return agentd_error_set(err, ETIMEDOUT, "virtiofsd's tree not built within %d ms",
					VM_SHARE_START_MS);
	struct share_fail f = {0};
	int fds[CTL_MAX_FDS], nfds;
	ssize_t n = ctl_recv_any(ctl, &f, sizeof(f), fds, &nfds, MSG_DONTWAIT);
	if (n == 2 && nfds == 3 && memcmp(&f, "ok", 2) == 0) {
		s->root_fd = fds[0];
		s->workdir_fd = fds[1];
		s->scratch_fd = fds[2];
		return 0;
	}
	ctl_close_fds(fds);
	if (n == (ssize_t)sizeof(f) && f.err > 0) {
		f.what[sizeof(f.what) - 1] = '\0';
		return agentd_error_errno(err, f.err, "virtiofsd's tree: %s", f.what);
	}
	return agentd_error_set(err, EIO, "virtiofsd's jail died before it was ready");
}

int vm_share_start(const struct vm_share_opts *o, struct vm_share *s, agentd_error *err)
{
	*s = (struct vm_share){.pid = -1, .pidfd = -1, .root_fd = -1, .workdir_fd = -1,
			       .scratch_fd = -1, .sock_dir_fd = -1};
	const char *bin = o->virtiofsd ? o->virtiofsd : vm_share_virtiofsd();
	if (!bin || access(bin, X_OK) < 0)
		return agentd_error_set(err, ENOENT,
					"virtiofsd is not installed (Debian: qemu-system-common, "
					"%s; or set AGENTD_VIRTIOFSD)",
					VIRTIOFSD_DEBIAN);
	struct mount_plan mp = {0};
	if (share_plan(o, &mp, err) < 0)
		return -1;
	int ret = -1, ctl[2] = {-1, -1}, lfd = share_listener(o, err);
	_cleanup_free_ char *src = xasprintf("source=%s/root", mp.base);
	char fdarg[32];
	snprintf(fdarg, sizeof(fdarg), "--fd=%d", VIRTIOFSD_LISTEN_FD);
	char *argv[] = {(char *)bin,
			fdarg,
			"-o", src,
			"-o", "sandbox=namespace",
			"-o", "cache=auto",
			"-o", "no_posix_lock",
			"-o", "no_xattr",
			/* a guest's mknod and file capabilities are not the host's to grant */
			"-o", "modcaps=-mknod:-setfcap",
			"-o", "log_level=err",
			"--rlimit-nofile=" SHARE_NOFILE,
			NULL};
	if (lfd < 0)
		goto out;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
		agentd_error_errno(err, errno, "virtiofsd: socketpair");
		goto out;
	}
	struct share_child a = {.mp = &mp, .ctl = ctl[1], .listen_fd = lfd, .argv = argv};
	int pidfd = -1;
	struct share_clone_args ca = {
	    .flags = CLONE_PIDFD | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
		     CLONE_NEWUTS | (o->cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0),
	    .pidfd = (uint64_t)(uintptr_t)&pidfd,
	    .exit_signal = SIGCHLD,
	    .cgroup = o->cgroup_fd >= 0 ? (uint64_t)o->cgroup_fd : 0,
	};
	long pid = sys_clone3(&ca, sizeof(ca));
	if (pid == 0)
		share_child_main(&a);
	if (pid < 0) {
		agentd_error_errno(err, errno, "virtiofsd: clone");
		goto out;
	}
	s->pid = (pid_t)pid;
	s->pidfd = pidfd;
	close(ctl[1]);
	ctl[1] = -1;
	if (share_wait(ctl[0], s, err) < 0) {
		agentd_error_prefix(err, "the guest's files");
		vm_share_stop(s);
		goto out;
	}
	s->sock_dir_fd = fcntl(o->sock_dir_fd, F_DUPFD_CLOEXEC, 3);
	s->workdir = xstrdup(o->spec->workdir ? o->spec->workdir : "/workspace");
	ret = 0;
out:
	if (ret < 0 && lfd >= 0)
		unlinkat(o->sock_dir_fd, VM_SHARE_SOCK, 0);
	for (int i = 0; i < 2; i++)
		if (ctl[i] >= 0)
			close(ctl[i]);
	if (lfd >= 0)
		close(lfd);
	mount_plan_free(&mp);
	return ret;
}

void vm_share_qemu_args(uint64_t mem_bytes, const char *sock_path, agentd_strv *a)
{
	char buf[PATH_MAX + 64];
	strv_push(a, "-object");
	snprintf(buf, sizeof(buf), "memory-backend-memfd,id=agentd-mem,share=on,size=%" PRIu64 "M",
		 (mem_bytes + (1 << 20) - 1) >> 20);
	strv_push(a, buf);
	strv_push(a, "-machine");
	strv_push(a, "memory-backend=agentd-mem");
	strv_push(a, "-global");
	strv_push(a, "virtio-mmio.force-legacy=false");
	strv_push(a, "-chardev");
	snprintf(buf, sizeof(buf), "socket,id=agentd-vfs,path=%s", sock_path);
	strv_push(a, buf);
	strv_push(a, "-device");
	strv_push(a, "vhost-user-fs-device,chardev=agentd-vfs,tag=" VM_SHARE_TAG);
}

void vm_share_connected(struct vm_share *s)
{
	if (s->sock_dir_fd < 0)
		return;
	unlinkat(s->sock_dir_fd, VM_SHARE_SOCK, 0);
	close(s->sock_dir_fd);
	s->sock_dir_fd = -1;
}

void vm_share_stop(struct vm_share *s)
{
	vm_share_connected(s);
	if (s->pidfd >= 0) {
		sys_pidfd_send_signal(s->pidfd, SIGKILL);
		close(s->pidfd);
		s->pidfd = -1;
	} else if (s->pid > 0) {
		kill(s->pid, SIGKILL);
	}
	if (s->pid > 0) {
		while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
			;
		s->pid = -1;
	}
	int *fds[] = {&s->root_fd, &s->workdir_fd, &s->scratch_fd};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
	free(s->workdir);
	s->workdir = NULL;
}
