/* seccomp.c: the syscall filter — agentd's default deny-list, compiled with libseccomp (at
 * build time, by seccomp_gen), and installing BPF in the child; JSON profiles: seccomp_oci.c. */
#include "lib/jail/seccomp_internal.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define TIOCSTI_NR 0x5412 /* asm-generic/ioctls.h; no tty header pulled in for two numbers */
#define TIOCLINUX_NR 0x541C

#if defined(__x86_64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "add this architecture's AUDIT_ARCH (seccomp_probe, seccomp_default_bpf.h)"
#endif

/* ------------------------------------------------------------ syscall names */

/* Syscalls newer than the libseccomp we build against (2.5.4 stops at 450). A name the
 * library does not know would otherwise be skipped, which for a deny rule means allowed. */
struct syscall_nr {
	const char *name;
	int nr;
};
#if defined(__x86_64__)
/* clang-format off */
static const struct syscall_nr newer_syscalls[] = {
	{ "cachestat", 451 },		{ "fchmodat2", 452 },	    { "map_shadow_stack", 453 },
	{ "futex_wake", 454 },		{ "futex_wait", 455 },	    { "futex_requeue", 456 },
	{ "statmount", 457 },		{ "listmount", 458 },	    { "lsm_get_self_attr", 459 },
	{ "lsm_set_self_attr", 460 },	{ "lsm_list_modules", 461 }, { "mseal", 462 },
	{ "setxattrat", 463 },		{ "getxattrat", 464 },	    { "listxattrat", 465 },
	{ "removexattrat", 466 },	{ "open_tree_attr", 467 },  { "file_getattr", 468 },
	{ "file_setattr", 469 },
};
/* clang-format on */
#define LAST_KNOWN_SYSCALL 469 /* file_setattr, Linux 6.17 */
#define FIRST_UNUSED_SYSCALL 512
#else
static const struct syscall_nr newer_syscalls[] = {{NULL, -1}};
#define LAST_KNOWN_SYSCALL 0
#define FIRST_UNUSED_SYSCALL 0
#endif

/* Native syscall number, or -1 when the name does not exist on this architecture (libseccomp
 * returns a negative pseudo number for those) or is unknown: such rules are skipped. */
static int syscall_lookup(const char *name)
{
	int nr = seccomp_syscall_resolve_name_arch(SCMP_ARCH_NATIVE, name);
	if (nr >= 0)
		return nr;
	if (nr == __NR_SCMP_ERROR) {
		for (size_t i = 0; i < ARRAY_SIZE(newer_syscalls); i++)
			if (newer_syscalls[i].name && !strcmp(newer_syscalls[i].name, name))
				return newer_syscalls[i].nr;
	}
	return -1;
}

__thread struct sc_recorder *sc_recorder;

int sc_rule_add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
		const struct scmp_arg_cmp *cmp, agentd_error *err)
{
	if (sc_recorder) /* issue 13: oci-runtime. The rule as data (seccomp_oci_emit.c). */
		return sc_recorder->add(sc_recorder, action, name, n, cmp, err);
	int nr = syscall_lookup(name);
	if (nr < 0)
		return 0;
	/* _exact: no rewriting behind our back (socketcall and friends on other arches). */
	int r = seccomp_rule_add_exact_array(ctx, action, nr, n, cmp);
	if (r < 0)
		return agentd_error_errno(err, -r, "add rule for %s", name);
	return 0;
}

/* ------------------------------------------------------- the default profile
 * A deny-list (default allow) at least as strict as Docker's default profile for a
 * container without capabilities, plus io_uring, TIOCSTI/TIOCLINUX, AF_ALG, device nodes and
 * the new mount API. Plain EPERM: the answer a capability check would have given. */

#define NS_ONLY (1u << 0)	  /* left out with opts->allow_namespaces */
#define SYSV_IPC_ONLY (1u << 1) /* only with opts->deny_sysv_ipc */

struct deny_group {
	const char *category;
	unsigned flags;
	const char *names[14];
};

/* clang-format off */
static const struct deny_group deny_groups[] = {
	{ "namespaces", NS_ONLY, { "unshare", "setns" } },
	{ "mount", NS_ONLY,
	  { "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount",
	    "fspick", "move_mount", "open_tree", "open_tree_attr", "mount_setattr" } },
	{ "kernel-modules", 0,
	  { "init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms",
	    "query_module" } },
	{ "kexec", 0, { "kexec_load", "kexec_file_load" } },
	{ "reboot", 0, { "reboot" } },
	{ "swap", 0, { "swapon", "swapoff" } },
	/* Cross-process access. Landlock only forbids it across domains: inside one sandbox a
	 * command could still read its siblings' memory, and ptrace is old attack surface. */
	{ "ptrace", 0,
	  { "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	    "process_madvise" } },
	{ "bpf", 0, { "bpf" } },
	{ "perf", 0, { "perf_event_open" } },
	{ "keyring", 0, { "keyctl", "add_key", "request_key" } },
	/* io_uring bypasses seccomp for the operations it performs, and is a rich kernel
	 * attack surface: Docker dropped it from its allowlist for the same reason. */
	{ "io_uring", 0, { "io_uring_setup", "io_uring_enter", "io_uring_register" } },
	{ "userfaultfd", 0, { "userfaultfd" } },	/* makes kernel races easy to win */
	{ "clock", 0, { "clock_settime", "clock_adjtime", "settimeofday", "adjtimex", "stime" } },
	{ "raw-io", 0, { "iopl", "ioperm" } },
	{ "tty-injection", 0, { "vhangup" } },	/* + ioctl TIOCSTI/TIOCLINUX below */
	{ "syslog", 0, { "syslog" } },
	{ "accounting", 0, { "acct" } },
	{ "quota", 0, { "quotactl", "quotactl_fd" } },
	/* open_by_handle_at walks around every path-based check (the "shocker" escape). */
	{ "file-handles", 0, { "open_by_handle_at", "name_to_handle_at" } },
	{ "numa", 0,
	  { "mbind", "set_mempolicy", "set_mempolicy_home_node", "get_mempolicy", "move_pages",
	    "migrate_pages" } },
	{ "fanotify", 0, { "fanotify_init" } },
	{ "lsm", 0, { "lsm_set_self_attr" } },
	{ "hostname", 0, { "sethostname", "setdomainname" } },
	/* Without an IPC namespace SysV IPC is the host's: a sandbox could attach a host
	 * process's shared memory (its mode is the only check) and leave segments,
	 * semaphores and queues behind that outlive it. The container has its own. */
	{ SECCOMP_SYSV_IPC_CATEGORY, SYSV_IPC_ONLY,
	  { "shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semtimedop", "semctl",
	    "msgget", "msgsnd", "msgrcv", "msgctl", "ipc" } },
	{ "obsolete", 0,
	  { "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl", "lookup_dcookie", "vm86",
	    "vm86old" } },
};
/* clang-format on */

/* What the default profile blocks, for sandbox caps and `agentd probe`: the groups above,
 * in order, then the argument-filtered rules of build_default(). Keep the two in step. */
/* clang-format off */
const char *const seccomp_blocked_categories[] = {
	"namespaces", "mount", "kernel-modules", "kexec", "reboot", "swap", "ptrace", "bpf",
	"perf", "keyring", "io_uring", "userfaultfd", "clock", "raw-io", "tty-injection",
	"syslog", "accounting", "quota", "file-handles", "numa", "fanotify", "lsm", "hostname",
	"obsolete", "personality", "device-nodes", "vsock-alg-sockets", "netlink-host-info",
	"foreign-abi", "future-syscalls", NULL,
};
/* clang-format on */

#define A_MASKED_EQ(i, mask, val) SCMP_CMP((i), SCMP_CMP_MASKED_EQ, (mask), (val))

/* clone() cannot make namespaces: one rule per CLONE_NEW* bit, as a deny-list cannot say
 * "none of these bits" in one comparison. Only the low 32 bits reach the kernel. clone3's
 * flags live in memory where BPF cannot look, so clone3 is answered ENOSYS and glibc falls
 * back to clone(), which we can inspect. */
static int deny_clone_namespaces(scmp_filter_ctx ctx, agentd_error *err)
{
	static const uint32_t ns_bits[] = {CLONE_NEWNS,	 CLONE_NEWCGROUP, CLONE_NEWUTS,
					   CLONE_NEWIPC, CLONE_NEWUSER,	  CLONE_NEWPID,
					   CLONE_NEWNET, CLONE_NEWTIME};
	for (size_t i = 0; i < ARRAY_SIZE(ns_bits); i++) {
		struct scmp_arg_cmp c = A_MASKED_EQ(0, ns_bits[i], ns_bits[i]);
		if (sc_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, &c, err) < 0)
			return -1;
	}
	return 0;
}

/* personality: Docker allows exactly 0 (PER_LINUX), 8 (UNAME26), 0x20000 (PER_LINUX32),
 * 0x20008 and 0xffffffff (query). libseccomp takes one comparison per argument and no ALLOW
 * rule under a default-allow filter, so the complement is written as masked equalities:
 * a value is denied iff it has a bit outside {3, 17} set and is not all ones. Look at the
 * (cyclic) run of ones holding such a bit: it ends at some bit i followed by a zero. If i is
 * outside {3, 17}, "bit i set, bit i+1 clear" matches; if i is 3 or 17 the run is longer
 * than one bit and its bit i-1 (2 or 16) is outside, so "bits i-1 and i set, bit i+1 clear"
 * matches. Neither pattern matches an allowed value. The kernel reads an unsigned int. */
static int deny_personality(scmp_filter_ctx ctx, agentd_error *err)
{
	const uint32_t allowed_bits = 0x8 | 0x20000;
	for (unsigned i = 0; i < 32; i++) {
		uint32_t bit = 1u << i, next = 1u << ((i + 1) % 32), prev = 1u << ((i + 31) % 32);
		uint32_t mask = bit | next, val = bit;
		if (bit & allowed_bits) {
			mask |= prev;
			val |= prev;
		}
		struct scmp_arg_cmp c = A_MASKED_EQ(0, mask, val);
		if (sc_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), "personality", 1, &c, err) < 0)
			return -1;
	}
	return 0;
}

/* Netlink beyond NETLINK_ROUTE (which getaddrinfo's AI_ADDRCONFIG and `ip` read) tells a
 * sandbox what it has no business with: KOBJECT_UEVENT broadcasts the host's device
 * events into every network namespace its user namespace owns (the host's, for a netns
 * agentd made as root), SOCK_DIAG lists the sockets of a shared network namespace with
 * their inodes and unix paths, AUDIT, CONNECTOR (process events), NETFILTER, XFRM,
 * GENERIC (taskstats, every genl family) are host subsystems. An allow-list of one
 * protocol: a family the kernel adds later stays refused. The protocol is an int to the
 * kernel but compared on 64 bits: garbage in the upper half is refused (fail closed). */
static int deny_netlink_protocols(scmp_filter_ctx ctx, agentd_error *err)
{
	struct scmp_arg_cmp c[2] = {A_MASKED_EQ(0, 0xffffffff, AF_NETLINK),
				    SCMP_CMP(2, SCMP_CMP_NE, NETLINK_ROUTE, 0)};
	return sc_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 2, c, err);
}

/* Sockets: AF_VSOCK reaches the hypervisor, AF_ALG is kernel crypto attack surface. With
 * deny_inet only AF_UNIX remains; EAFNOSUPPORT is what a kernel without the family says, so
 * libraries take their "no network" paths. The comparison is on all 64 bits, so garbage in
 * the upper half is refused too (fail closed). */
int sc_deny_sockets(scmp_filter_ctx ctx, bool unix_only, agentd_error *err)
{
	static const char *const calls[] = {"socket", "socketpair"};
	for (size_t i = 0; i < ARRAY_SIZE(calls); i++) {
		if (unix_only) {
			struct scmp_arg_cmp c = SCMP_CMP(0, SCMP_CMP_NE, AF_UNIX, 0);
			if (sc_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), calls[i], 1, &c, err) < 0)
				return -1;
			continue;
		}
		static const int families[] = {AF_VSOCK, AF_ALG};
		for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
			struct scmp_arg_cmp c = A_MASKED_EQ(0, 0xffffffff, (uint32_t)families[f]);
			if (sc_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), calls[i], 1, &c, err) < 0)
				return -1;
		}
	}
	return unix_only ? 0 : deny_netlink_protocols(ctx, err);
}

static int add_group(scmp_filter_ctx ctx, const struct deny_group *grp, agentd_error *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(grp->names) && grp->names[i]; i++)
		if (sc_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), grp->names[i], 0, NULL, err) < 0)
			return -1;
	return 0;
}

int sc_backend_floor(scmp_filter_ctx ctx, const struct seccomp_opts *o, agentd_error *err)
{
	if (o->deny_inet_sockets ? sc_deny_sockets(ctx, true, err) < 0
				 : deny_netlink_protocols(ctx, err) < 0)
		return -1;
	for (size_t g = 0; o->deny_sysv_ipc && g < ARRAY_SIZE(deny_groups); g++)
		if ((deny_groups[g].flags & SYSV_IPC_ONLY) && add_group(ctx, &deny_groups[g], err) < 0)
			return -1;
	return 0;
}

static bool category_listed(const char *category)
{
	for (size_t i = 0; seccomp_blocked_categories[i]; i++)
		if (!strcmp(seccomp_blocked_categories[i], category))
			return true;
	return false;
}

int sc_build_default(scmp_filter_ctx ctx, const struct seccomp_opts *o, agentd_error *err)
{
	for (size_t g = 0; g < ARRAY_SIZE(deny_groups); g++) {
		const struct deny_group *grp = &deny_groups[g];
		/* What `agentd probe` reports must be what the filter does. */
		if (!category_listed(grp->category) && !(grp->flags & SYSV_IPC_ONLY))
			return agentd_error_set(err, EINVAL, "category %s not reported",
						grp->category);
		if (((grp->flags & NS_ONLY) && o->allow_namespaces) ||
		    ((grp->flags & SYSV_IPC_ONLY) && !o->deny_sysv_ipc))
			continue;
		if (add_group(ctx, grp, err) < 0)
			return -1;
	}
	if (!o->allow_namespaces && deny_clone_namespaces(ctx, err) < 0)
		return -1;
	if (sc_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, err) < 0)
		return -1;

	/* Typing into the controlling terminal (TIOCSTI) or the console (TIOCLINUX) runs
	 * commands outside the sandbox. The request is an unsigned int to the kernel. */
	static const uint32_t tty_requests[] = {TIOCSTI_NR, TIOCLINUX_NR};
	for (size_t i = 0; i < ARRAY_SIZE(tty_requests); i++) {
		struct scmp_arg_cmp c = A_MASKED_EQ(1, 0xffffffff, tty_requests[i]);
		if (sc_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &c, err) < 0)
			return -1;
	}

	/* Device nodes only; FIFOs, sockets and regular files stay possible. mode is umode_t. */
	static const uint32_t dev_types[] = {S_IFCHR, S_IFBLK};
	for (size_t i = 0; i < ARRAY_SIZE(dev_types); i++) {
		struct scmp_arg_cmp c1 = A_MASKED_EQ(1, S_IFMT, dev_types[i]);
		struct scmp_arg_cmp c2 = A_MASKED_EQ(2, S_IFMT, dev_types[i]);
		if (sc_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), "mknod", 1, &c1, err) < 0 ||
		    sc_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), "mknodat", 1, &c2, err) < 0)
			return -1;
	}

	if (deny_personality(ctx, err) < 0)
		return -1;
	if (sc_deny_sockets(ctx, o->deny_inet_sockets, err) < 0)
		return -1;

	/* A deny-list must not open up what future kernels add: numbers past the newest
	 * syscall we know are answered ENOSYS, so libc takes its fallback path. On x86_64
	 * everything from 512 up already is ENOSYS (the old x32 slots). */
	for (int nr = LAST_KNOWN_SYSCALL + 1; !sc_recorder && nr < FIRST_UNUSED_SYSCALL; nr++) {
		int r = seccomp_rule_add_exact(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
		if (r < 0)
			return agentd_error_errno(err, -r, "add rule for syscall %d", nr);
	}
	return 0;
}

/* ------------------------------------------------------------- compilation */

/* Every filter is native-only: the i386 (int $0x80) and x32 (nr | 0x40000000) ABIs reach
 * the bad-arch action, which kills the process. libseccomp's x86_64 prologue sends
 * nr >= 0x40000000 there as long as the x32 arch is not added (checked by the tests). */
scmp_filter_ctx sc_filter_new(uint32_t default_action, agentd_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(default_action);
	if (!ctx) {
		agentd_error_set(err, ENOMEM, "seccomp_init failed");
		return NULL;
	}
	int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r == 0)
		/* Binary search over syscall numbers: a deny-list is walked on every syscall. */
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (r < 0) {
		seccomp_release(ctx);
		agentd_error_errno(err, -r, "set filter attributes");
		return NULL;
	}
	return ctx;
}

/* libseccomp 2.5 only exports to an fd; a memfd keeps it off the filesystem. */
int sc_filter_export(scmp_filter_ctx ctx, void **filter, unsigned short *len, agentd_error *err)
{
	_cleanup_close_ int fd = memfd_create("agentd-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return agentd_error_errno(err, errno, "memfd_create");
	int r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return agentd_error_errno(err, -r, "export BPF");
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		return agentd_error_errno(err, errno, "size of BPF program");
	if (size == 0 || size % sizeof(struct sock_filter) ||
	    size / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return agentd_error_set(err, E2BIG, "BPF program of %lld bytes unusable",
					(long long)size);
	_cleanup_free_ void *buf = xmalloc((size_t)size);
	for (off_t off = 0; off < size;) {
		ssize_t n = pread(fd, (char *)buf + off, (size_t)(size - off), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return agentd_error_errno(err, n < 0 ? errno : EIO, "read BPF");
		off += n;
	}
	*len = (unsigned short)(size / sizeof(struct sock_filter));
	*filter = take_ptr(buf);
	return 0;
}

/* libseccomp is not documented as thread-safe across contexts; compilation is rare (JSON
 * profiles; the default profile only in seccomp_gen, the tests and cross builds), so one
 * lock serialises it. */
pthread_mutex_t sc_compile_lock = PTHREAD_MUTEX_INITIALIZER;

int seccomp_compile_default(const struct seccomp_opts *o, void **filter, unsigned short *len,
			    agentd_error *err)
{
	pthread_mutex_lock(&sc_compile_lock);
	scmp_filter_ctx ctx = sc_filter_new(SCMP_ACT_ALLOW, err);
	int r = ctx ? sc_build_default(ctx, o, err) : -1;
	if (r == 0)
		r = sc_filter_export(ctx, filter, len, err);
	if (ctx)
		seccomp_release(ctx);
	pthread_mutex_unlock(&sc_compile_lock);
	return r;
}

static void *memdup(const void *p, size_t n)
{
	void *r = xmalloc(n);
	memcpy(r, p, n);
	return r;
}

#ifdef AGENTD_SECCOMP_PREBUILT
/* The eight programs, compiled at build time by seccomp_gen (src/lib/jail/seccomp_gen.c) from the
 * tables above with seccomp_compile_default(): `agentd run` is one process per command and
 * would otherwise pay ~0.4 ms of libseccomp per run. tests/unit/test_seccomp.c checks they
 * are byte-identical to what libseccomp compiles at run time. */
#include "seccomp_default_bpf.h"
#if SECCOMP_DEFAULT_BPF_ARCH != NATIVE_AUDIT_ARCH
#error "seccomp_default_bpf.h was generated for another architecture"
#endif

static int prepare_default(const struct seccomp_opts *o, struct seccomp_prog *out,
			   agentd_error *err)
{
	const struct seccomp_default_bpf *b = &seccomp_default_bpf[seccomp_variant(o)];
	out->filter = memdup(b->insns, b->len * sizeof(struct sock_filter));
	out->len = b->len;
	out->active = true;
	return 0;
}
#else
/* No prebuilt programs (cross builds): compiled on first use, then cached. */
struct cached_prog {
	void *filter;
	unsigned short len;
};
static struct cached_prog default_cache[SECCOMP_DEFAULT_VARIANTS]; /* [seccomp_variant] */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int prepare_default(const struct seccomp_opts *o, struct seccomp_prog *out,
			   agentd_error *err)
{
	struct cached_prog *c = &default_cache[seccomp_variant(o)];
	int r = 0;
	pthread_mutex_lock(&cache_lock);
	if (!c->filter)
		r = seccomp_compile_default(o, &c->filter, &c->len, err);
	if (r == 0) {
		out->filter = memdup(c->filter, c->len * sizeof(struct sock_filter));
		out->len = c->len;
		out->active = true;
	}
	pthread_mutex_unlock(&cache_lock);
	return r < 0 ? agentd_error_prefix(err, "default profile") : 0;
}
#endif

/* ------------------------------------------------------------------ public */

/* Profile "none" under network "none" without a network namespace: no syscall filter, but
 * the socket rules still, as the only filter (net_filter), or the network mode would be
 * dropped with the profile. */
static int prepare_sockets_only(struct seccomp_prog *out, agentd_error *err)
{
	pthread_mutex_lock(&sc_compile_lock);
	scmp_filter_ctx net = sc_filter_new(SCMP_ACT_ALLOW, err);
	int r = net ? sc_deny_sockets(net, true, err) : -1;
	if (r == 0)
		r = sc_filter_export(net, &out->net_filter, &out->net_len, err);
	if (net)
		seccomp_release(net);
	pthread_mutex_unlock(&sc_compile_lock);
	out->active = r == 0;
	return r;
}

int seccomp_prepare(const struct seccomp_opts *o, struct seccomp_prog *out, agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	const char *profile = o->profile && *o->profile ? o->profile : "default";
	if (!strcmp(profile, "none"))
		return o->deny_inet_sockets ? prepare_sockets_only(out, err) : 0;
	if (!strcmp(profile, "default"))
		return prepare_default(o, out, err);
	return seccomp_oci_prepare(profile, o, out, err);
}

static int install(void *filter, unsigned short len)
{
	struct sock_fprog prog = {.len = len, .filter = filter};
	/* flags 0: the kernel keeps its speculative-store-bypass mitigation on. */
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
		return -errno;
	return 0;
}

int seccomp_apply(const struct seccomp_prog *p)
{
	if (!p->active)
		return 0;
	if ((!p->filter || !p->len) && (!p->net_filter || !p->net_len))
		return -EINVAL; /* an active, empty filter is a bug: fail closed */
	int r = p->filter ? install(p->filter, p->len) : 0;
	if (r == 0 && p->net_filter)
		r = install(p->net_filter, p->net_len);
	return r;
}

void seccomp_prog_free(struct seccomp_prog *p)
{
	free(p->filter);
	free(p->net_filter);
	memset(p, 0, sizeof(*p));
}

/* Filter mode is there (CONFIG_SECCOMP_FILTER) and usable by us: PR_GET_SECCOMP says
 * seccomp is built in (EINVAL otherwise), SECCOMP_GET_ACTION_AVAIL answers only where
 * filters are (Linux 4.14+), and fails with ENOSYS/EPERM where an outer filter refuses
 * seccomp(2) itself. No child: a fork costs milliseconds under a paravirtualised MMU, on
 * every run. A filter that still cannot be installed fails the sandbox's setup, closed. */
bool seccomp_probe(void)
{
	uint32_t action = SECCOMP_RET_ERRNO;
	return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 &&
	       syscall(__NR_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
}
