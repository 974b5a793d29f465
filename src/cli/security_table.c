/* security_table.c: `agentd probe --security` — the attacks of the security suite
 * (tests/security) that the verdict of the probe helper sbxprobe can judge on its own, run
 * inside a strict sandbox of each backend through the public API, printed as a table of
 * what each backend blocks. The names match the suite's expectation table
 * (tests/security/secsuite.py), which checks that both agree. */
#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Agentd refusing to run the attack at all (exit 125 or a failed exec) counts as blocked. */
#define SEC_REFUSAL_BLOCKS 1u
/* Run with the command's workdir set to /proc/self/fd/{fd} (the leaked host directory). */
#define SEC_WORKDIR_FD 2u
/* Skip when the host has no block device. */
#define SEC_NEEDS_BLOCKDEV 4u

/* Placeholders in argv and host_path: {tmp} a fresh 0777 host directory holding "secret"
 * (0644), "writable" (0666) and the unix socket "host.sock" (0777); {token} unique per
 * run; {pid} agentd's pid; {agentd} agentd's binary; {home} the caller's home; {blockdev}
 * a block device; {port} a TCP listener on 127.0.0.1; {abstract} an abstract unix socket
 * name; {fd} a host directory fd left open without CLOEXEC; {comm} agentd's (temporary)
 * unique process name, hex-encoded. */
struct sec_attack {
	const char *name;
	const char *category;
	const char *argv[5];
	/* When set, ALLOWED counts only if this host path exists afterwards (it is removed):
	 * a write that stayed inside the sandbox's own root is no escape. */
	const char *host_path;
	unsigned flags;
};

/* clang-format off */
static const struct sec_attack attacks[] = {
	{ "read-host-secret", "filesystem", {"read", "{tmp}/secret"}, NULL, 0 },
	{ "read-etc-shadow", "filesystem", {"read", "/etc/shadow"}, NULL, 0 },
	{ "write-usr", "filesystem", {"write", "/usr/.agentd-probe-{token}"},
	  "/usr/.agentd-probe-{token}", 0 },
	{ "write-etc", "filesystem", {"write", "/etc/.agentd-probe-{token}"},
	  "/etc/.agentd-probe-{token}", 0 },
	{ "write-home", "filesystem", {"write", "{home}/.agentd-probe-{token}"},
	  "{home}/.agentd-probe-{token}", 0 },
	{ "write-host-dir", "filesystem", {"write", "{tmp}/planted-{token}"},
	  "{tmp}/planted-{token}", 0 },
	{ "read-proc1-root", "filesystem", {"read", "/proc/1/root{tmp}/secret"}, NULL, 0 },
	{ "listdir-proc1-root", "filesystem", {"listdir", "/proc/1/root{tmp}"}, NULL, 0 },
	{ "write-proc1-root", "filesystem", {"write", "/proc/1/root{tmp}/planted1-{token}"},
	  "{tmp}/planted1-{token}", 0 },
	{ "proc-self-exe-write", "filesystem", {"proc-self-exe-write"}, NULL, 0 },
	{ "proc-exe-write-all", "filesystem", {"proc-exe-write-all"}, NULL, 0 },
	{ "write-agentd-binary", "filesystem", {"open-write", "{agentd}"}, NULL, 0 },
	{ "symlink-read", "filesystem", {"via-symlink", "read", "{tmp}/secret"}, NULL, 0 },
	{ "symlink-write", "filesystem", {"via-symlink", "write", "{tmp}/writable"}, NULL, 0 },
	{ "leaked-fd", "filesystem", {"fds"}, NULL, 0 },
	{ "leaked-fd-read", "filesystem", {"read", "/proc/self/fd/{fd}"}, NULL, 0 },
	{ "workdir-proc-fd", "filesystem", {"read", "secret"}, NULL,
	  SEC_WORKDIR_FD | SEC_REFUSAL_BLOCKS },
	{ "no-new-privs", "privileges", {"caps"}, NULL, 0 },
	{ "setuid0", "privileges", {"setuid0"}, NULL, 0 },
	{ "dev-kmsg", "devices", {"read", "/dev/kmsg"}, NULL, 0 },
	{ "dev-mem", "devices", {"open-dev", "/dev/mem"}, NULL, 0 },
	{ "block-device", "devices", {"open-dev", "{blockdev}"}, NULL, SEC_NEEDS_BLOCKDEV },
	{ "mknod-char", "devices", {"mknod-char", "agentd-probe-c-{token}"}, NULL, 0 },
	{ "mknod-block", "devices", {"mknod-block", "agentd-probe-b-{token}"}, NULL, 0 },
	{ "unshare-user", "namespaces", {"unshare", "user"}, NULL, 0 },
	{ "clone-newuser", "namespaces", {"clone-newuser"}, NULL, 0 },
	{ "clone3-newuser", "namespaces", {"clone3"}, NULL, 0 },
	{ "x32-unshare-user", "namespaces", {"x32-unshare-user"}, NULL, 0 },
	{ "i386-unshare-user", "namespaces", {"i386-unshare-user"}, NULL, 0 },
	{ "mount", "namespaces", {"mount"}, NULL, 0 },
	{ "chroot", "namespaces", {"chroot", "/"}, NULL, 0 },
	{ "pivot-root", "namespaces", {"pivot-root"}, NULL, 0 },
	{ "setns-mnt", "namespaces", {"setns", "/proc/1/ns/mnt"}, NULL, 0 },
	{ "init-module", "kernel", {"init-module"}, NULL, 0 },
	{ "finit-module", "kernel", {"finit-module"}, NULL, 0 },
	{ "keyctl", "kernel", {"keyctl"}, NULL, 0 },
	{ "bpf", "kernel", {"bpf"}, NULL, 0 },
	{ "perf-event-open", "kernel", {"perf-event-open"}, NULL, 0 },
	{ "userfaultfd", "kernel", {"userfaultfd"}, NULL, 0 },
	{ "io-uring", "kernel", {"io-uring"}, NULL, 0 },
	{ "sethostname", "kernel", {"sethostname-same"}, NULL, 0 },
	{ "netdev-config", "network", {"netdev-config"}, NULL, 0 },
	{ "settime", "kernel", {"settime"}, NULL, 0 },
	{ "adjtimex", "kernel", {"adjtimex"}, NULL, 0 },
	{ "write-proc-sys", "kernel", {"write-proc-sys"}, NULL, 0 },
	{ "sysrq", "kernel", {"sysrq"}, NULL, 0 },
	{ "kallsyms", "kernel", {"kallsyms"}, NULL, 0 },
	{ "cgroup-escape", "kernel", {"cgroup-escape"}, NULL, 0 },
	{ "cgroup-view", "kernel", {"cgroup-view"}, NULL, 0 },
	{ "tiocsti", "kernel", {"tiocsti"}, NULL, 0 },
	{ "loopback-tcp", "network", {"connect-tcp", "127.0.0.1", "{port}"}, NULL, 0 },
	{ "abstract-unix", "network", {"connect-abstract", "{abstract}"}, NULL, 0 },
	{ "named-unix", "network", {"connect-unix", "{tmp}/host.sock"}, NULL, 0 },
	{ "egress", "network", {"connect-egress", "192.0.2.1", "80", "1500"}, NULL, 0 },
	{ "raw-socket", "network", {"socket", "raw"}, NULL, 0 },
	{ "packet-socket", "network", {"socket", "packet"}, NULL, 0 },
	{ "vsock-socket", "network", {"socket", "vsock"}, NULL, 0 },
	{ "alg-socket", "network", {"socket", "alg"}, NULL, 0 },
	{ "see-host-process", "processes", {"find-proc", "{comm}"}, NULL, 0 },
	{ "signal-agentd", "processes", {"kill", "{pid}", "0"}, NULL, 0 },
	{ "ptrace-agentd", "processes", {"ptrace", "{pid}"}, NULL, 0 },
	{ "process-vm-readv-agentd", "processes", {"process-vm-readv", "{pid}"}, NULL, 0 },
	{ "ptrace-pid1", "processes", {"ptrace", "1"}, NULL, 0 },
	{ "process-vm-readv-pid1", "processes", {"process-vm-readv", "1"}, NULL, 0 },
};
/* clang-format on */
#define N_ATTACKS (sizeof(attacks) / sizeof(attacks[0]))

enum sec_result { SEC_BLOCKED, SEC_ALLOWED, SEC_ERROR, SEC_SKIPPED };

struct sec_cell {
	enum sec_result res;
	char detail[256]; /* sbxprobe's line, or the error */
};

/* The host side of the attacks: what they aim at, set up before and removed after. */
struct sec_env {
	char tmp[64];
	char token[17];
	char pid[16];
	char agentd[PATH_MAX];
	char home[PATH_MAX];
	char blockdev[300];
	char port[8];
	char abstract[64];
	char fd[12];
	char comm_hex[40];
	char old_comm[17];
	int tcp_fd, abstract_fd, unix_fd, leaked_fd;
};

/* ------------------------------------------------------------ sbxprobe */

static bool executable(const char *p)
{
	return access(p, X_OK) == 0;
}

/* $AGENTD_SBXPROBE, else tests/sbxprobe next to the binary (a build tree), else
 * <prefix>/libexec/agentd/sbxprobe for an installed <prefix>/bin/agentd. */
/* out: PATH_MAX bytes (realpath). */
static bool find_sbxprobe(char *out, char *looked, size_t ln)
{
	const char *env = getenv("AGENTD_SBXPROBE");
	if (env && *env) {
		snprintf(looked, ln, "$AGENTD_SBXPROBE=%s", env);
		return executable(env) && realpath(env, out);
	}
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len < 0) {
		snprintf(looked, ln, "/proc/self/exe unreadable: %s", strerror(errno));
		return false;
	}
	exe[len] = '\0';
	char *slash = strrchr(exe, '/');
	*slash = '\0';
	char a[PATH_MAX + 32], b[PATH_MAX + 48];
	snprintf(a, sizeof(a), "%s/tests/sbxprobe", exe);
	snprintf(b, sizeof(b), "%s/../libexec/agentd/sbxprobe", exe);
	snprintf(looked, ln, "%s, %s", a, b);
	const char *found = executable(a) ? a : executable(b) ? b : NULL;
	return found && realpath(found, out);
}

/* ---------------------------------------------------------- host setup */

static void put_file(const char *dir, const char *name, const char *data, mode_t mode)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return;
	if (write(fd, data, strlen(data)) < 0) {
		/* the attack then reads an empty file: same verdict */
	}
	fchmod(fd, mode); /* past the umask */
	close(fd);
}

static int listen_unix(const char *path, bool abstract)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n + 2 > sizeof(un.sun_path))
		return -1;
	memcpy(un.sun_path + abstract, path, n);
	socklen_t len =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + abstract + n + !abstract);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&un, len) < 0 || listen(fd, 8) < 0) {
		close(fd);
		return -1;
	}
	if (!abstract)
		chmod(path, 0777);
	return fd;
}

static void first_block_device(char *out, size_t n)
{
	out[0] = '\0';
	DIR *d = opendir("/sys/class/block");
	if (!d)
		return;
	struct dirent *de;
	char loop[300] = "";
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char dev[300];
		snprintf(dev, sizeof(dev), "/dev/%.250s", de->d_name);
		if (access(dev, F_OK) < 0)
			continue;
		bool virt = !strncmp(de->d_name, "loop", 4) || !strncmp(de->d_name, "ram", 3) ||
			    !strncmp(de->d_name, "zram", 4);
		if (!virt && (!out[0] || strcmp(dev, out) < 0))
			snprintf(out, n, "%s", dev);
		else if (virt && !loop[0])
			snprintf(loop, sizeof(loop), "%s", dev);
	}
	closedir(d);
	if (!out[0])
		snprintf(out, n, "%s", loop);
}

static int env_setup(struct sec_env *e, agentd_error *err)
{
	memset(e, 0, sizeof(*e));
	e->tcp_fd = e->abstract_fd = e->unix_fd = e->leaked_fd = -1;
	unsigned char rnd[8] = {0};
	int rfd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (rfd < 0 || read(rfd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd)) {
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)(getpid() >> (i % 4 * 8)) ^ (unsigned char)i;
	}
	if (rfd >= 0)
		close(rfd);
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(e->token + 2 * i, 3, "%02x", rnd[i]);
	snprintf(e->pid, sizeof(e->pid), "%d", (int)getpid());

	snprintf(e->tmp, sizeof(e->tmp), "/var/tmp/agentd-probe-XXXXXX");
	if (!mkdtemp(e->tmp)) {
		snprintf(e->tmp, sizeof(e->tmp), "/tmp/agentd-probe-XXXXXX");
		if (!mkdtemp(e->tmp))
			return agentd_error_set(err, errno,
						"create a host directory for the "
						"attacks: %s",
						strerror(errno));
	}
	chmod(e->tmp, 0777);
	put_file(e->tmp, "secret", "AGENTD-PROBE-SECRET\n", 0644);
	put_file(e->tmp, "writable", "AGENTD-PROBE-ORIGINAL\n", 0666);
	char sock[128];
	snprintf(sock, sizeof(sock), "%s/host.sock", e->tmp);
	e->unix_fd = listen_unix(sock, false);

	snprintf(e->abstract, sizeof(e->abstract), "agentd-probe-%s", e->token);
	e->abstract_fd = listen_unix(e->abstract, true);

	e->tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t il = sizeof(in);
	if (e->tcp_fd >= 0 && bind(e->tcp_fd, (struct sockaddr *)&in, sizeof(in)) == 0 &&
	    listen(e->tcp_fd, 8) == 0 && getsockname(e->tcp_fd, (struct sockaddr *)&in, &il) == 0)
		snprintf(e->port, sizeof(e->port), "%u", ntohs(in.sin_port));
	else
		snprintf(e->port, sizeof(e->port), "1"); /* nothing listens: the verdict stays */

	/* Deliberately without O_CLOEXEC: the exec engine must close it. */
	e->leaked_fd = open(e->tmp, O_RDONLY | O_DIRECTORY);
	snprintf(e->fd, sizeof(e->fd), "%d", e->leaked_fd);

	ssize_t n = readlink("/proc/self/exe", e->agentd, sizeof(e->agentd) - 1);
	e->agentd[n > 0 ? n : 0] = '\0';
	const char *home = getenv("HOME");
	struct passwd *pw = home && *home ? NULL : getpwuid(geteuid());
	snprintf(e->home, sizeof(e->home), "%s", home && *home ? home : pw ? pw->pw_dir : "/root");
	first_block_device(e->blockdev, sizeof(e->blockdev));

	/* A name no other process has, for the sandbox to look for in /proc. */
	prctl(PR_GET_NAME, e->old_comm, 0, 0, 0);
	char comm[16];
	snprintf(comm, sizeof(comm), "agentd-%.8s", e->token);
	prctl(PR_SET_NAME, comm, 0, 0, 0);
	for (size_t i = 0; comm[i] && 2 * i + 2 < sizeof(e->comm_hex); i++)
		snprintf(e->comm_hex + 2 * i, 3, "%02x", (unsigned char)comm[i]);
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void env_cleanup(struct sec_env *e)
{
	int fds[] = {e->tcp_fd, e->abstract_fd, e->unix_fd, e->leaked_fd};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (e->tmp[0])
		nftw(e->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (e->old_comm[0])
		prctl(PR_SET_NAME, e->old_comm, 0, 0, 0);
}

static void expand(const struct sec_env *e, const char *tpl, char *out, size_t n)
{
	static const char *const keys[] = {"{tmp}",  "{token}",	   "{pid}",  "{agentd}",
					   "{home}", "{blockdev}", "{port}", "{abstract}",
					   "{fd}",   "{comm}"};
	const char *vals[] = {e->tmp,	   e->token, e->pid,	  e->agentd, e->home,
			      e->blockdev, e->port,  e->abstract, e->fd,     e->comm_hex};
	size_t o = 0;
	while (*tpl && o + 1 < n) {
		size_t k = 0;
		for (; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (!strncmp(tpl, keys[k], strlen(keys[k])))
				break;
		if (k < sizeof(keys) / sizeof(keys[0])) {
			o += (size_t)snprintf(out + o, n - o, "%s", vals[k]);
			if (o >= n)
				o = n - 1;
			tpl += strlen(keys[k]);
		} else {
			out[o++] = *tpl++;
		}
	}
	out[o] = '\0';
}

/* ------------------------------------------------------------ running */

static void cell_set(struct sec_cell *c, enum sec_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cell_set(struct sec_cell *c, enum sec_result r, const char *fmt, ...)
{
	c->res = r;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
}

/* sbxprobe's last ALLOWED/BLOCKED/ERROR line. */
static const char *verdict_line(const agentd_exec_output *o, size_t *len)
{
	const char *best = NULL;
	size_t blen = 0;
	const char *p = (const char *)o->out, *end = p ? p + o->out_len : NULL;
	while (p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if ((l >= 7 && (!memcmp(p, "ALLOWED", 7) || !memcmp(p, "BLOCKED", 7))) ||
		    (l >= 5 && !memcmp(p, "ERROR", 5))) {
			best = p;
			blen = l;
		}
		p = nl ? nl + 1 : end;
	}
	*len = blen;
	return best;
}

static void run_attack(agentd_sandbox *sb, const char *probe, const struct sec_env *e,
		       const struct sec_attack *a, struct sec_cell *c)
{
	if ((a->flags & SEC_NEEDS_BLOCKDEV) && !e->blockdev[0]) {
		cell_set(c, SEC_SKIPPED, "no block device on this host");
		return;
	}
	char bufs[5][PATH_MAX];
	char *argv[7] = {(char *)probe};
	size_t n = 1;
	for (size_t i = 0; i < 5 && a->argv[i]; i++) {
		expand(e, a->argv[i], bufs[i], sizeof(bufs[i]));
		argv[n++] = bufs[i];
	}
	argv[n] = NULL;
	char workdir[64];
	snprintf(workdir, sizeof(workdir), "/proc/self/fd/%s", e->fd);
	agentd_command cmd = {
	    .argv = argv,
	    .workdir = (a->flags & SEC_WORKDIR_FD) ? workdir : NULL,
	    .timeout_ms = 10000,
	};
	agentd_exec_ctx ctx = {0};
	agentd_exec_output o;
	memset(&o, 0, sizeof(o));
	agentd_error err = {0};
	if (agentd_sandbox_exec(sb, &cmd, &ctx, &o, &err) < 0) {
		if (a->flags & SEC_REFUSAL_BLOCKS)
			cell_set(c, SEC_BLOCKED, "refused: %s", err.msg);
		else
			cell_set(c, SEC_ERROR, "%s", err.msg);
		agentd_exec_output_free(&o);
		return;
	}
	size_t len;
	const char *line = verdict_line(&o, &len);
	if (!line) {
		int el = o.err_len > 160 ? 160 : (int)o.err_len;
		const char *tail = o.err ? (const char *)o.err + o.err_len - (size_t)el : "";
		if ((a->flags & SEC_REFUSAL_BLOCKS) && o.exit_code == EXIT_AGENTD)
			cell_set(c, SEC_BLOCKED, "refused: %.*s", el, tail);
		else
			cell_set(c, SEC_ERROR, "no verdict (exit %d%s%s) %.*s", o.exit_code,
				 o.timed_out ? ", timed out" : "", o.term_signal ? ", signal" : "",
				 el, tail);
	} else if (!strncmp(line, "ERROR", 5)) {
		cell_set(c, SEC_ERROR, "%.*s", (int)len, line);
	} else {
		cell_set(c, line[0] == 'A' ? SEC_ALLOWED : SEC_BLOCKED, "%.*s", (int)len, line);
	}
	if (a->host_path) {
		char hp[PATH_MAX];
		expand(e, a->host_path, hp, sizeof(hp));
		struct stat st;
		bool exists = lstat(hp, &st) == 0;
		if (exists)
			unlink(hp);
		if (c->res == SEC_ALLOWED && !exists) /* it wrote into its own root */
			cell_set(c, SEC_BLOCKED, "host unchanged (%.200s)", c->detail);
		else if (exists && c->res != SEC_ALLOWED)
			cell_set(c, SEC_ALLOWED, "%s appeared on the host", hp);
	}
	agentd_exec_output_free(&o);
}

/* One strict sandbox per backend, every attack exec'd in it. Returns 0, or -1 with
 * *why set when the backend cannot run sandboxes here. */
static int run_backend(const char *name, const char *probe, const struct sec_env *e,
		       struct sec_cell *cells, char *why, size_t wn)
{
	agentd_backend *b = NULL;
	agentd_error err = {0};
	agentd_backend_caps caps;
	memset(&caps, 0, sizeof(caps));
	if (agentd_create_backend(name, NULL, &b, &err) < 0 ||
	    agentd_backend_probe(b, &caps, &err) < 0) {
		snprintf(why, wn, "%s", err.msg);
		agentd_backend_caps_free(&caps);
		agentd_backend_free(b);
		return -1;
	}
	if (!caps.available) {
		snprintf(why, wn, "%s", caps.unavailable_reason);
		agentd_backend_caps_free(&caps);
		agentd_backend_free(b);
		return -1;
	}
	agentd_backend_caps_free(&caps);

	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", probe);
	*strrchr(dir, '/') = '\0';
	spec.allowed_paths_ro.v = calloc(2, sizeof(char *));
	spec.allowed_paths_ro.v[0] = strdup(dir);
	spec.allowed_paths_ro.n = 1;
	spec.limits.max_wall_time_ms = 15000;
	agentd_sandbox *sb = NULL;
	if (agentd_backend_create_sandbox(b, &spec, &sb, &err) < 0) {
		snprintf(why, wn, "create sandbox: %s", err.msg);
		agentd_spec_free(&spec);
		agentd_backend_free(b);
		return -1;
	}
	for (size_t i = 0; i < N_ATTACKS; i++)
		run_attack(sb, probe, e, &attacks[i], &cells[i]);
	if (agentd_sandbox_destroy(sb, &err) < 0)
		print_error("warning: %s: destroy: %s", name, err.msg);
	agentd_spec_free(&spec);
	agentd_backend_free(b);
	return 0;
}

/* ------------------------------------------------------------- output */

static const char *cell_word(const struct sec_cell *c)
{
	switch (c->res) {
	case SEC_BLOCKED:
		return "blocked";
	case SEC_ALLOWED:
		return "ALLOWED";
	case SEC_SKIPPED:
		return "-";
	default:
		return "error";
	}
}

int security_probe(const char *only, bool json)
{
	char probe[PATH_MAX], looked[2 * PATH_MAX + 64];
	if (!find_sbxprobe(probe, looked, sizeof(looked))) {
		char msg[sizeof(looked) + 160];
		snprintf(
		    msg, sizeof(msg),
		    "sbxprobe not found (looked at %s; set AGENTD_SBXPROBE to the probe helper "
		    "built as tests/sbxprobe): no security table",
		    looked);
		if (json) {
			json_t *root =
			    json_pack("{s:o, s:s}", "security", json_object(), "skipped", msg);
			char *s = json_dumps(root, JSON_INDENT(2));
			puts(s);
			free(s);
			json_decref(root);
		}
		print_error("probe --security: %s", msg);
		return 0;
	}

	size_t nb;
	const char *const *names = agentd_available_backends(&nb);
	const char *want = only ? agentd_canonical_backend_name(only) : NULL;
	struct sec_env env;
	agentd_error err = {0};
	if (env_setup(&env, &err) < 0) {
		print_error("probe --security: %s", err.msg);
		return EXIT_AGENTD;
	}

	const char **cols = calloc(nb, sizeof(*cols));
	struct sec_cell *cells = calloc(nb * N_ATTACKS, sizeof(*cells));
	json_t *sec = json_object(), *unavail = json_object();
	size_t nc = 0;
	if (!json)
		printf("security: what each backend blocks (strict policy; probe %s)\n", probe);
	for (size_t i = 0; i < nb; i++) {
		if (want && strcmp(want, names[i]) != 0)
			continue;
		char why[AGENTD_ERROR_MAX];
		if (run_backend(names[i], probe, &env, cells + nc * N_ATTACKS, why, sizeof(why)) <
		    0) {
			json_object_set_new(unavail, names[i], json_string(why));
			if (!json)
				printf("  %s: not available here: %s\n", names[i], why);
			continue;
		}
		cols[nc++] = names[i];
	}
	env_cleanup(&env);
	if (nc == 0) {
		print_error("probe --security: no available backend to probe%s%s",
			  only ? " named " : "", only ? only : "");
		json_decref(sec);
		json_decref(unavail);
		free(cols);
		free(cells);
		return EXIT_AGENTD;
	}

	if (json) {
		json_t *details = json_object();
		for (size_t c = 0; c < nc; c++) {
			json_t *col = json_object(), *dcol = json_object();
			for (size_t a = 0; a < N_ATTACKS; a++) {
				const struct sec_cell *cell = &cells[c * N_ATTACKS + a];
				if (cell->res == SEC_SKIPPED)
					continue;
				char v[300];
				snprintf(v, sizeof(v), "%s",
					 cell->res == SEC_BLOCKED   ? "blocked"
					 : cell->res == SEC_ALLOWED ? "allowed"
								    : "");
				if (cell->res == SEC_ERROR)
					snprintf(v, sizeof(v), "error: %s", cell->detail);
				json_object_set_new(col, attacks[a].name, json_string(v));
				json_object_set_new(dcol, attacks[a].name,
						    json_string(cell->detail));
			}
			json_object_set_new(sec, cols[c], col);
			json_object_set_new(details, cols[c], dcol);
		}
		/* security: the verdicts; details: sbxprobe's line (or the error) for each */
		json_t *root = json_pack("{s:o, s:o, s:s}", "security", sec, "details", details,
					 "sbxprobe", probe);
		if (json_object_size(unavail))
			json_object_set(root, "unavailable", unavail);
		char *s = json_dumps(root, JSON_INDENT(2));
		puts(s);
		free(s);
		json_decref(root);
	} else {
		json_decref(sec);
		printf("\n%-26s %-11s", "attack", "category");
		for (size_t c = 0; c < nc; c++)
			printf("  %-13s", cols[c]);
		printf("\n");
		for (size_t a = 0; a < N_ATTACKS; a++) {
			printf("%-26s %-11s", attacks[a].name, attacks[a].category);
			for (size_t c = 0; c < nc; c++)
				printf("  %-13s", cell_word(&cells[c * N_ATTACKS + a]));
			printf("\n");
		}
		printf("\n");
		for (size_t c = 0; c < nc; c++) {
			size_t blocked = 0, total = 0;
			for (size_t a = 0; a < N_ATTACKS; a++) {
				const struct sec_cell *cell = &cells[c * N_ATTACKS + a];
				total += cell->res != SEC_SKIPPED;
				blocked += cell->res == SEC_BLOCKED;
			}
			printf("%s: %zu of %zu blocked\n", cols[c], blocked, total);
			for (size_t a = 0; a < N_ATTACKS; a++) {
				const struct sec_cell *cell = &cells[c * N_ATTACKS + a];
				if (cell->res == SEC_ALLOWED || cell->res == SEC_ERROR)
					printf("  %-24s %s\n", attacks[a].name, cell->detail);
			}
		}
	}
	json_decref(unavail);
	free(cols);
	free(cells);
	return 0;
}
