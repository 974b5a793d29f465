/* landlock.c: Landlock rulesets — which host paths a sandbox may read, write or execute, and
 * (ABI >= 4, >= 6) its TCP and IPC scoping. Built in the parent, enforced by the child. */
#include "lib/jail/jail.h"

#include <fcntl.h>
#include <dirent.h>
#include <fnmatch.h>
#include <pthread.h>
#include <limits.h>
#include <stdarg.h>
#include <linux/landlock.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* Debian 12's linux-libc-dev (6.1) knows ABI 1-2; the rest of the ABI is stable kernel ABI
 * spelled out here so we can use what the running kernel offers. */

/* The ABI 6 layout; older kernels get a prefix of it (size says how much). */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;	     /* ABI 6 */
};

/* ABI 1: EXECUTE .. MAKE_SYM, bits 0-12. */
#define FS_ABI1 ((LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1)
/* The only rights the kernel accepts on a rule for a non-directory. */
#define FS_FILE_RIGHTS                                                                             \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |                              \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV)
#define FS_READ_ONLY                                                                               \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_EXECUTE)

static uint64_t fs_rights_for_abi(int abi)
{
	uint64_t r = FS_ABI1;
	if (abi >= 2)
		r |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		r |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		r |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return r;
}

/* The ABI, or 0 with *errnum saying why (ENOSYS: not built in; EOPNOTSUPP: not enabled
 * at boot, e.g. missing from lsm=). */
static int abi_query(int *errnum)
{
	long r = sys_landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (r < 0) {
		*errnum = errno;
		return 0;
	}
	*errnum = 0;
	return (int)r;
}

int landlock_abi(void)
{
	/* Fixed for the life of the kernel: ask once. -1 = not asked yet. */
	static int cached = -1;
	int abi = __atomic_load_n(&cached, __ATOMIC_RELAXED);
	if (abi < 0) {
		int e;
		abi = abi_query(&e);
		__atomic_store_n(&cached, abi, __ATOMIC_RELAXED);
	}
	return abi;
}

static const char *unavailable_reason(int errnum)
{
	switch (errnum) {
	case ENOSYS:
		return "kernel built without CONFIG_SECURITY_LANDLOCK";
	case EOPNOTSUPP:
		return "Landlock is not enabled at boot (add it to lsm=)";
	default:
		return strerror(errnum);
	}
}

/* Policy paths are trusted (they come from the operator's policy, not from the sandbox),
 * so symlinks are followed: the rule lands on what the path names today. */
static int add_path_rule(int ruleset, const char *path, uint64_t want, uint64_t handled,
			 bool must_exist, agentd_error *err)
{
	_cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		if (!must_exist && (errno == ENOENT || errno == ENOTDIR))
			return 0;
		return agentd_error_errno(err, errno, "add rule %s", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return agentd_error_errno(err, errno, "add rule %s", path);
	uint64_t access = want & handled;
	if (!S_ISDIR(st.st_mode))
		access &= FS_FILE_RIGHTS;
	struct landlock_path_beneath_attr pb = {.allowed_access = access, .parent_fd = fd};
	if (sys_landlock_add_rule(ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb) < 0)
		return agentd_error_errno(err, errno, "add rule %s", path);
	return 0;
}

static void add_warning(agentd_strv *warnings, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_warning(agentd_strv *warnings, const char *fmt, ...)
{
	char w[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w, sizeof(w), fmt, ap);
	va_end(ap);
	if (warnings)
		strv_push(warnings, w);
}

int landlock_prepare(const struct landlock_rules *r, int *ruleset_fd, agentd_strv *warnings,
		     agentd_error *err)
{
	*ruleset_fd = -1;
	int abi = landlock_abi();
	if (abi <= 0) {
		int errnum;
		abi_query(&errnum);
		return agentd_error_set(err, errnum ? errnum : EOPNOTSUPP,
					"landlock unavailable: %s", unavailable_reason(errnum));
	}

	struct ll_ruleset_attr attr = {.handled_access_fs = fs_rights_for_abi(abi)};
	size_t attr_size = offsetof(struct ll_ruleset_attr, handled_access_net);

	/* Degradations: say what this kernel cannot enforce rather than fail, so that an
	 * older host still gets the rest of the isolation. */
	if (abi < 2) /* without REFER, every cross-directory rename/link is denied */
		add_warning(warnings,
			    "landlock ABI %d < 2: files cannot be renamed or linked "
			    "across directories",
			    abi);
	if (abi < 3)
		add_warning(warnings, "landlock ABI %d < 3: truncate not restricted", abi);
	if (abi < 5)
		add_warning(warnings, "landlock ABI %d < 5: device ioctls not restricted", abi);
	if (r->deny_tcp && abi >= 4) {
		/* Handled with no rule: no TCP bind or connect to any port. */
		attr.handled_access_net =
		    LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
		attr_size = offsetof(struct ll_ruleset_attr, scoped);
	} else if (r->deny_tcp) {
		add_warning(warnings, "landlock ABI %d < 4: TCP connect/bind not restricted", abi);
	}
	if ((r->scope_signals || r->scope_abstract_unix) && abi >= 6) {
		if (r->scope_signals)
			attr.scoped |= LANDLOCK_SCOPE_SIGNAL;
		if (r->scope_abstract_unix)
			attr.scoped |= LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET;
		attr_size = sizeof(attr);
	} else if (r->scope_signals || r->scope_abstract_unix) {
		add_warning(warnings, "landlock ABI %d < 6: %s not scoped", abi,
			    r->scope_signals && r->scope_abstract_unix
				? "signals and abstract unix sockets"
			    : r->scope_signals ? "signals"
					       : "abstract unix sockets");
	}

	_cleanup_close_ int fd = sys_landlock_create_ruleset(&attr, attr_size, 0);
	if (fd < 0)
		return agentd_error_errno(err, errno, "create ruleset (ABI %d)", abi);
	for (size_t i = 0; i < r->ro.n; i++)
		if (add_path_rule(fd, r->ro.v[i], FS_READ_ONLY, attr.handled_access_fs, false,
				  err) < 0)
			return -1;
	for (size_t i = 0; i < r->rw.n; i++)
		if (add_path_rule(fd, r->rw.v[i], attr.handled_access_fs, attr.handled_access_fs,
				  true, err) < 0)
			return -1;
	*ruleset_fd = take_fd(&fd);
	return 0;
}

/* Child side, after no_new_privs: from here on the ruleset is the process's for good.
 * flags 0: ABI 7 audit logging keeps its default (denials of this exec are logged). */
int landlock_apply(int ruleset_fd)
{
	if (ruleset_fd < 0)
		return -EBADF;
	long r = sys_landlock_restrict_self(ruleset_fd);
	int e = errno;
	close(ruleset_fd);
	return r < 0 ? -e : 0;
}

/* /etc, entry by entry: what the dynamic loader, libc (NSS, DNS, locale, time zone), TLS
 * libraries, sh/bash and python3 read. Never: shadow, gshadow, sudoers, ssh/, ssl/private,
 * security/, krb5.keytab, /etc/agentd, and nothing that commonly carries credentials
 * (pip.conf, npmrc, gitconfig, wgetrc, environment — the latter may hold proxy passwords).
 * machine-id is left out on purpose: it is a stable host identifier that systemd asks not to
 * expose to untrusted code (sd_id128_get_machine_app_specific exists for that reason), and
 * nothing a sandboxed command runs needs it. ld.so.preload is left out: ld.so skips an
 * unreadable one, and a host's preload hooks are not for the sandbox. */
/* clang-format off */
static const char *const etc_allowlist[] = {
	"ld.so.cache", "ld.so.conf", "ld.so.conf.d",
	"passwd", "group", "nsswitch.conf", "hosts", "host.conf", "resolv.conf", "gai.conf",
	"protocols", "services", "rpc", "networks", "ethertypes",
	"localtime", "timezone", "locale.alias", "locale.gen", "locale.conf", "default/locale",
	"ssl/certs", "ssl/openssl.cnf", "ca-certificates.conf",
	"pki/tls/certs", "pki/tls/openssl.cnf", "pki/ca-trust/extracted", "crypto-policies",
	"alternatives", "mime.types", "mailcap", "magic", "magic.mime",
	"python3", "python3.*", "perl", "java-*",	/* Debian keeps JDK config under /etc */
	"os-release", "lsb-release", "debian_version", "issue", "issue.net",
	"bash.bashrc", "profile", "profile.d", "inputrc", "shells", "terminfo", "xdg", "fonts",
	"mtab",
};
/* clang-format on */

/* Character devices every program may open, read-only here: writing to /dev/null (shell
 * redirections, subprocess.DEVNULL) needs it in the rw list as well. */
static const char *const dev_ro[] = {
    "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
};

static void push_existing(agentd_strv *out, const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0 && !strv_contains(out, path))
		strv_push(out, path);
}

/* The /etc allowlist's patterns (python3.*, java-*), in one pass over /etc. */
static void push_etc_patterns(agentd_strv *out)
{
	DIR *d = opendir("/etc");
	if (!d)
		return;
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		for (size_t i = 0; i < ARRAY_SIZE(etc_allowlist); i++) {
			if (!strchr(etc_allowlist[i], '*') ||
			    fnmatch(etc_allowlist[i], de->d_name, FNM_PATHNAME) != 0)
				continue;
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "/etc/%s", de->d_name);
			push_existing(out, path);
			break;
		}
	}
	closedir(d);
}

static void system_ro_paths_scan(agentd_strv *out)
{
	/* /opt and /usr/local/etc are not part of the base runtime; policies add them. */
	static const char *const runtime[] = {
	    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
	};
	for (size_t i = 0; i < ARRAY_SIZE(runtime); i++)
		push_existing(out, runtime[i]);

	for (size_t i = 0; i < ARRAY_SIZE(etc_allowlist); i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "/etc/%s", etc_allowlist[i]);
		if (!strchr(path, '*'))
			push_existing(out, path);
	}
	push_etc_patterns(out);

	for (size_t i = 0; i < ARRAY_SIZE(dev_ro); i++)
		push_existing(out, dev_ro[i]);
	/* Processes need /proc/self. Other processes' sensitive files (environ, mem, fd/) are
	 * guarded by ptrace access checks, which Landlock denies across domains. */
	push_existing(out, "/proc");
}

/* Every sandbox start needs this list (twice for a container: its mounts and its
 * capabilities), and building it costs ~70 stat calls and a scan of /etc. It is kept for
 * a second, and dropped at once when /etc itself changes (an entry added, removed or
 * renamed there, e.g. a new python3.X), so a long-running daemon sees a changed host. */
#define SYSTEM_PATHS_TTL_MS 1000
static struct {
	pthread_mutex_t lock;
	agentd_strv paths;
	uint64_t at_ms;
	struct timespec etc_mtime;
	ino_t etc_ino;
	bool valid;
} sys_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

void landlock_system_ro_paths(agentd_strv *out)
{
	struct stat est;
	bool have_etc = stat("/etc", &est) == 0;
	uint64_t now = now_ms_monotonic();
	pthread_mutex_lock(&sys_cache.lock);
	if (!sys_cache.valid || !have_etc || now - sys_cache.at_ms >= SYSTEM_PATHS_TTL_MS ||
	    est.st_ino != sys_cache.etc_ino ||
	    est.st_mtim.tv_sec != sys_cache.etc_mtime.tv_sec ||
	    est.st_mtim.tv_nsec != sys_cache.etc_mtime.tv_nsec) {
		strv_free(&sys_cache.paths);
		system_ro_paths_scan(&sys_cache.paths);
		sys_cache.at_ms = now;
		sys_cache.valid = have_etc;
		if (have_etc) {
			sys_cache.etc_ino = est.st_ino;
			sys_cache.etc_mtime = est.st_mtim;
		}
	}
	for (size_t i = 0; i < sys_cache.paths.n; i++)
		if (!strv_contains(out, sys_cache.paths.v[i]))
			strv_push(out, sys_cache.paths.v[i]);
	pthread_mutex_unlock(&sys_cache.lock);
}

/* Child side, no malloc: a ruleset built inside a sandbox's own mount namespace (the
 * container's tmpfs mounts exist only there). Missing paths are skipped. */
int landlock_connect_ruleset_child(void)
{
	int errnum;
	int abi = abi_query(&errnum);
	if (abi < 4)
		return abi < 0 ? -(errnum ? errnum : EOPNOTSUPP) : -EOPNOTSUPP;
	struct ll_ruleset_attr attr = {.handled_access_net = LANDLOCK_ACCESS_NET_CONNECT_TCP};
	int rs = sys_landlock_create_ruleset(&attr, offsetof(struct ll_ruleset_attr, scoped), 0);
	return rs < 0 ? -errno : rs;
}

int landlock_ruleset_child(const char *const *ro, const char *const *rw, bool deny_connect,
			   bool scopes)
{
	int errnum;
	int abi = abi_query(&errnum);
	if (abi <= 0)
		return -(errnum ? errnum : EOPNOTSUPP);
	struct ll_ruleset_attr attr = {.handled_access_fs = fs_rights_for_abi(abi)};
	size_t attr_size = offsetof(struct ll_ruleset_attr, handled_access_net);
	/* Connect only: the container's network namespace is its own and empty, so a
	 * listener there is reachable from nowhere but the host's port forward (the host
	 * connects the socket, agentd_sandbox_connect), which is no way out for the sandbox. */
	if (abi >= 4 && deny_connect) {
		attr.handled_access_net = LANDLOCK_ACCESS_NET_CONNECT_TCP;
		attr_size = offsetof(struct ll_ruleset_attr, scoped);
	}
	if (abi >= 6 && scopes) {
		attr.scoped = LANDLOCK_SCOPE_SIGNAL | LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET;
		attr_size = sizeof(attr);
	}
	int rs = sys_landlock_create_ruleset(&attr, attr_size, 0);
	if (rs < 0)
		return -errno;
	for (int pass = 0; pass < 2; pass++) {
		const char *const *list = pass ? rw : ro;
		uint64_t want = pass ? attr.handled_access_fs : FS_READ_ONLY;
		for (size_t i = 0; list && list[i]; i++) {
			int fd = open(list[i], O_PATH | O_CLOEXEC);
			if (fd < 0)
				continue;
			struct stat st;
			uint64_t access = want & attr.handled_access_fs;
			if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
				access &= FS_FILE_RIGHTS;
			struct landlock_path_beneath_attr pb = {.allowed_access = access,
								.parent_fd = fd};
			long r = sys_landlock_add_rule(rs, LANDLOCK_RULE_PATH_BENEATH, &pb);
			int e = errno;
			close(fd);
			if (r < 0) {
				close(rs);
				return -e;
			}
		}
	}
	return rs;
}
