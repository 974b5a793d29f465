/* security_table.c: `agentd probe --security` — the attacks of the security suite
 * (tests/security) that the verdict of the probe helper sbxprobe can judge on its own, run
 * inside a strict sandbox of each backend through the public API, printed as a table of
 * what each backend blocks. The names match the suite's expectation table
 * (tests/security/secsuite.py), which checks that both agree. */
#include "cli/cli.h"
#include "cli/security.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
/* Judged by the host: does the output survive the CLI's terminal rendering (term.c)? */
#define SEC_TERM_OUTPUT 8u
/* Judged by the host: does the output, fed to the code-context frame parser
 * (common/ctxproto.c), get refused before anything over its bounds is kept? */
#define SEC_CTX_FRAMES 32u
/* Run in a second sandbox, network mode allowlist listing only 127.0.0.1:{port} (attacks on
 * the egress proxy); a backend that refuses allowlist blocks them. */
#define SEC_ALLOWLIST 16u
/* Run as a background process on a terminal (agentd_sandbox_spawn with a tty, what the
 * daemon's attach serves); a backend without such processes refuses: nothing to attack. */
#define SEC_TTY 64u
/* Judged by the host, nothing runs inside: the way in of a forwarded port
 * (agentd_sandbox_connect) at the port of the host's loopback listener {port} must land in
 * the sandbox's own network namespace, where nothing listens (refused), never on the host's
 * listener; a backend without a way in (ENOTSUP) forwards nothing. */
#define SEC_WAY_IN 128u
/* issue 12: names. Run as a background process in the allowlist sandbox; once it prints
 * "tunnel open" the host takes {port} off the list (agentd_sandbox_set_network) and sends
 * it SIGUSR1, then puts the list back. */
#define SEC_NARROWED 2048u
/* issue 12: durable-lib. The sandbox is made durable first (its endpoint in a 0700 dir of
 * {tmp}), then the command tries to reach its own init's endpoint, {endpoint}: what would
 * make it its own host. The path is outside its root; and the init hangs up on any peer of
 * its pid namespace and proves itself to an adopter (tests/security/test_durable_adopt.py).
 * A backend without durable sandboxes has no endpoint: nothing to attack. */
#define SEC_DURABLE 256u
/* issue 12: files — judged by the host: the attack plants a symlink {argv[2]} -> {tmp} in
 * the sandbox's workdir; the host's files API (mkdir -p, a write with parents, a listing, a
 * tar upload) through it must stay inside the sandbox, never reach {tmp} on the host. */
#define SEC_FILES_API 1024u
/* issue 12: snapshots. Judged by the host: what argv[0] (a /bin/sh script run inside) plants
 * in the workdir and /tmp is snapshotted (agentd_sandbox_snapshot_to) and a sandbox made
 * from the snapshot (agentd_create_opts.from_snapshot): neither the snapshot on the host nor
 * that sandbox may hold a set-id file, a fifo, a device node or a hard link; a backend
 * without snapshots has nothing to restore. */
#define SEC_SNAPSHOT 512u
/* issue 13: img-store. Judged by the host: what argv[0] (a /bin/sh script run inside) packs
 * as two root filesystem tars (evil1.tar: a symlink to {tmp}, then a file through it;
 * evil2.tar: setuid and setgid entries) is imported as images into a store under {tmp}:
 * the first must be refused with nothing written through the link, the second stored
 * without its set-id bits. An image build stores what a sandbox made; an image archive
 * may come from anywhere. */
#define SEC_IMAGE_ARCHIVE 4096u
/* issue 13: img-root. Judged by the host: run in a sandbox of sb's spec whose root is an
 * image made for the table (one layer holding "target"), writable_root; the command writes
 * over /target, and the store's layer must not change (security_image.c). A backend that
 * gives no image root has none to write to. */
#define SEC_IMAGE 8192u
/* issue 13: oci-runtime. Judged on the line: the sandbox's pid 1 (an OCI runtime's init,
 * same uid as the commands) may be reachable, but its stdio must be /dev/null: a host pipe
 * or file there (a runtime's create hands its own stdio to the init) is a way to write
 * outside the sandbox, unbounded. */
#define SEC_PID1_STDIO 16384u
/* issue 13: oci-engine. Needs a container engine's API socket on the host ({enginesock}:
 * $DOCKER_HOST's, /run/docker.sock, podman's, containerd's): skipped without one. */
#define SEC_NEEDS_ENGINE_SOCK 32768u

/* Placeholders in argv and host_path: {tmp} a fresh 0777 host directory holding "secret"
 * (0644), "writable" (0666) and the unix socket "host.sock" (0777); {token} unique per
 * run; {pid} agentd's pid; {agentd} agentd's binary; {home} the caller's home; {blockdev}
 * a block device; {port} a TCP listener on 127.0.0.1; {abstract} an abstract unix socket
 * name; {fd} a host directory fd left open without CLOEXEC; {comm} agentd's (temporary)
 * unique process name, hex-encoded; {shmid} a host SysV shared memory segment (0644);
 * {state} the parent of the default work root (agentd's state dir, the rootfs cache's);
 * {enginesock} a container engine's API socket (issue 13: oci-engine). */
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
	{ "mountinfo-state-dir", "filesystem", {"mountinfo-path", "{state}"}, NULL, 0 },
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
	{ "pty-inject", "kernel", {"pty-inject"}, NULL, SEC_TTY | SEC_REFUSAL_BLOCKS },
	{ "pty-clipboard", "output", {"term-escapes"}, NULL,
	  SEC_TTY | SEC_TERM_OUTPUT | SEC_REFUSAL_BLOCKS },
	{ "terminal-escapes", "output", {"term-escapes"}, NULL, SEC_TERM_OUTPUT },
	{ "context-frame-forgery", "output", {"ctx-forge"}, NULL, SEC_CTX_FRAMES },
	{ "sysv-shm-host", "kernel", {"sysv-shm-attach", "{shmid}"}, NULL, 0 },
	{ "netlink-uevent", "kernel", {"netlink-bind", "15", "1"}, NULL, 0 },
	{ "budget-charged-to-host", "resources", {"budget-owner"}, NULL, 0 },
	{ "loopback-tcp", "network", {"connect-tcp", "127.0.0.1", "{port}"}, NULL, 0 },
	{ "abstract-unix", "network", {"connect-abstract", "{abstract}"}, NULL, 0 },
	{ "named-unix", "network", {"connect-unix", "{tmp}/host.sock"}, NULL, 0 },
	{ "egress", "network", {"connect-egress", "192.0.2.1", "80", "1500"}, NULL, 0 },
	{ "port-forward-to-host", "network", {"{port}"}, NULL, SEC_WAY_IN },
	/* issue 12: files */
	{ "files-api-through-symlink", "filesystem",
	  {"plant-symlink", "{tmp}", "agentd-link-{token}"}, NULL, SEC_FILES_API },
	{ "proxy-dns-exfil", "network", {"proxy-resolve", "exfil-{token}.invalid", "{port}"}, NULL,
	  SEC_ALLOWLIST },
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
	/* issue 12: names */
	{ "proxy-narrowed-live", "network", {"proxy-narrowed", "127.0.0.1", "{port}"}, NULL,
	  SEC_ALLOWLIST | SEC_NARROWED },
	/* issue 12: durable-lib */
	{ "durable-endpoint", "processes", {"connect-unix", "{endpoint}"}, NULL, SEC_DURABLE },
	/* issue 12: snapshots */
	{ "snapshot-setid-fork", "filesystem",
	  {"cp /bin/true su && chmod 6755 su && mkdir sgid && chmod 2775 sgid && echo x > a && "
	   "ln a hard && mkfifo fifo && cp su /tmp/su && chmod 4755 /tmp/su"}, NULL,
	  SEC_SNAPSHOT },
	/* issue 13: img-store */
	{ "hostile-image-archive", "filesystem",
	  {"rm -rf ia && mkdir ia && cd ia && cp /bin/true su && chmod 6755 su && mkdir sgid && "
	   "chmod 2775 sgid && ln -s {tmp} escape && echo pwned > x && tar cf ../evil1.tar escape "
	   "&& tar rf ../evil1.tar --transform 's,^x$,escape/agentd-img-{token},' x && "
	   "tar cf ../evil2.tar su sgid"}, NULL, SEC_IMAGE_ARCHIVE },
	/* issue 13: img-root */
	{ "image-layer-write", "filesystem", {"write", "/target"}, NULL, SEC_IMAGE },
	/* issue 13: oci-runtime */
	{ "pid1-stdio", "filesystem", {"readlink", "/proc/1/fd/1"}, NULL, SEC_PID1_STDIO },
	/* issue 13: oci-engine. The engine's API (docker.sock mounted in, the seed's classic
	 * escape): whoever connects runs containers as root on the host. */
	{ "engine-socket", "privileges", {"connect-unix", "{enginesock}"}, NULL,
	  SEC_NEEDS_ENGINE_SOCK },
};
/* clang-format on */
#define N_ATTACKS (sizeof(attacks) / sizeof(attacks[0]))

enum sec_result { SEC_BLOCKED, SEC_ALLOWED, SEC_ERROR, SEC_SKIPPED };

struct sec_cell {
	enum sec_result res;
	char detail[256]; /* sbxprobe's line, or the error */
};



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

/* What `agentd run` would show on a terminal for this output: an ESC or BEL that survives
 * is an escape sequence the sandbox plays on the caller's terminal. */
static void judge_terminal_output(const agentd_exec_output *o, struct sec_cell *c)
{
	int fd = memfd_create("agentd-term", MFD_CLOEXEC);
	if (fd < 0) {
		cell_set(c, SEC_ERROR, "memfd_create: %s", strerror(errno));
		return;
	}
	struct term_out t;
	term_out_init(&t, fd, false);
	t.escape = true; /* as on a terminal */
	term_out_write(&t, o->out, o->out_len);
	term_out_flush(&t);
	char shown[512];
	ssize_t n = pread(fd, shown, sizeof(shown) - 1, 0);
	close(fd);
	shown[n > 0 ? n : 0] = '\0';
	if (n > 0 && !strpbrk(shown, "\033\a"))
		cell_set(c, SEC_BLOCKED, "shown escaped: %.*s", (int)strcspn(shown, "\n"), shown);
	else
		cell_set(c, SEC_ALLOWED, "escape sequences reach the terminal");
}

/* cmd on a terminal of its own in sb: what it writes there, into o (its exit code too),
 * within 10 s. -1 with err when it cannot start (ENOTSUP: no such processes here). */
/* SEC_NARROWED: the process holds its tunnel; {port} goes off the list and it is told. */
static void narrow_live(agentd_sandbox *sb, agentd_process *p)
{
	agentd_network now = {.mode = AGENTD_NET_ALLOWLIST};
	strv_push(&now.allow, "127.0.0.1:1");
	agentd_error err = {0};
	if (agentd_sandbox_set_network(sb, &now, &err) == 0)
		agentd_process_signal(p, SIGUSR1, &err);
	strv_free(&now.allow);
}

/* A background process (on a terminal when tty) and its output, killed after 10 s or at
 * its end; at_mark runs once when the output holds "tunnel open" (SEC_NARROWED). */
static int spawn_collect(agentd_sandbox *sb, const agentd_command *cmd, bool tty,
			 void (*at_mark)(agentd_sandbox *sb, agentd_process *p),
			 agentd_exec_output *o, agentd_error *err)
{
	agentd_command bg = {.argv = cmd->argv};
	agentd_process_opts opts = {.tty = tty};
	agentd_process *p = NULL;
	if (agentd_sandbox_spawn(sb, &bg, &opts, &p, err) < 0)
		return -1;
	size_t cap = 0;
	uint64_t deadline = now_ms_monotonic() + (at_mark ? 30000 : 10000);
	for (;;) {
		struct pollfd pf = {.fd = agentd_process_stdout_fd(p), .events = POLLIN};
		uint64_t now = now_ms_monotonic();
		if (now >= deadline || poll(&pf, 1, (int)(deadline - now)) <= 0)
			break;
		uint8_t buf[4096];
		ssize_t n = read(pf.fd, buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0) /* EIO: the terminal's last user is gone */
			break;
		if (o->out_len + (size_t)n > cap)
			o->out = xrealloc(o->out, cap = o->out_len + 65536);
		for (ssize_t i = 0; i < n; i++) /* the terminal's \r\n as lines */
			if (buf[i] != '\r')
				o->out[o->out_len++] = buf[i];
		if (at_mark && memmem(o->out, o->out_len, "tunnel open\n", 12)) {
			at_mark(sb, p);
			at_mark = NULL;
		}
	}
	agentd_process_kill(p, err);
	agentd_process_status st = {0};
	struct pollfd wf = {.fd = agentd_process_wait_fd(p), .events = POLLIN};
	poll(&wf, 1, 5000);
	if (agentd_process_get_status(p, &st, err) == 0)
		o->exit_code = st.exit_code;
	agentd_process_free(p);
	return 0;
}

/* What `agentd sandbox attach` shows of a terminal's output (term_filter): escape
 * sequences pass, as a full-screen program needs them; OSC 52, the host's clipboard, must
 * not. */
static void judge_attached_output(const agentd_exec_output *o, struct sec_cell *c)
{
	struct term_filter f = {0};
	_cleanup_free_ uint8_t *shown = xmalloc(o->out_len + 8);
	size_t n = term_filter(&f, o->out, o->out_len, shown);
	if (memmem(shown, n, "\033]52", 4))
		cell_set(c, SEC_ALLOWED, "OSC 52 reaches the attached terminal (the clipboard)");
	else if (memmem(o->out, o->out_len, "\033]52", 4))
		cell_set(c, SEC_BLOCKED, "OSC 52 dropped from the attached terminal's output");
	else
		cell_set(c, SEC_ERROR, "the probe wrote no OSC 52");
}

static int count_frame(void *ud, const struct ctx_frame *f, agentd_error *err)
{
	(*(unsigned *)ud)++;
	return 0;
}

/* What a hostile cell writes onto its runner's protocol fd reaches this parser in the
 * daemon: it must refuse the forged frames, never keep a payload past its bound. */
static void judge_context_frames(const agentd_exec_output *o, struct sec_cell *c)
{
	struct ctx_parser p;
	ctx_parser_init(&p, 64u << 10);
	agentd_error err = {0};
	unsigned frames = 0;
	int r = ctx_parser_feed(&p, o->out, o->out_len, count_frame, &frames, &err);
	ctx_parser_free(&p);
	if (r < 0 && frames == 0)
		cell_set(c, SEC_BLOCKED, "frames refused: %s", err.msg);
	else
		cell_set(c, SEC_ALLOWED, "the parser accepted %u forged frame(s)", frames);
}

/* SEC_WAY_IN: where a connection into the sandbox at port lands. */
static void judge_way_in(agentd_sandbox *sb, const char *port, struct sec_cell *c)
{
	agentd_error err = {0};
	int fd = agentd_sandbox_connect(sb, (uint16_t)atoi(port), &err);
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int so = 0;
	socklen_t len = sizeof(so);
	if (fd >= 0 && (poll(&p, 1, 5000) != 1 ||
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len) < 0))
		so = ETIMEDOUT;
	if (fd >= 0)
		close(fd);
	if (fd < 0 && err.code == ENOTSUP)
		cell_set(c, SEC_BLOCKED, "no way in: %s", err.msg);
	else if ((fd < 0 && err.code == ECONNREFUSED) || so == ECONNREFUSED)
		cell_set(c, SEC_BLOCKED, "refused in the sandbox's own network namespace");
	else if (fd >= 0 && !so)
		cell_set(c, SEC_ALLOWED, "the way in reached the host's listener on port %s", port);
	else
		cell_set(c, SEC_ERROR, "%s", fd < 0 ? err.msg : strerror(so));
}

/* issue 12: files — SEC_FILES_API, once the link is planted: what the host's files API
 * does through it (stat, read, write, write with parents) must land inside the sandbox or
 * be refused, never reach {tmp} on the host. */
static void judge_files_api(agentd_sandbox *sb, const struct sec_env *e, const char *link,
			    struct sec_cell *c)
{
	char path[PATH_MAX], host[PATH_MAX], buf[64] = "";
	agentd_error err = {0};
	agentd_file_stat st;
	snprintf(path, sizeof(path), "%s/secret", link);
	bool statted = agentd_sandbox_stat(sb, path, &st, &err) == 0;
	if (statted)
		agentd_file_stat_free(&st);
	int fd = agentd_sandbox_open_path(sb, path, 0, &err);
	bool read_host = fd >= 0 && read(fd, buf, sizeof(buf) - 1) > 0 && strstr(buf, "SECRET");
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/writable", link);
	if ((fd = agentd_sandbox_open_path(sb, path, AGENTD_OPEN_WRITE, &err)) >= 0) {
		ssize_t w = write(fd, e->token, strlen(e->token));
		(void)w; /* judged on the host's side below */
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/agentd-planted-%s/f", link, e->token);
	if ((fd = agentd_sandbox_open_path(sb, path, AGENTD_OPEN_WRITE | AGENTD_OPEN_PARENTS,
					   &err)) >= 0)
		close(fd);
	snprintf(host, sizeof(host), "%s/writable", e->tmp);
	int hf = open(host, O_RDONLY | O_CLOEXEC);
	memset(buf, 0, sizeof(buf));
	bool wrote = hf >= 0 && read(hf, buf, sizeof(buf) - 1) >= 0 && strstr(buf, e->token);
	if (hf >= 0)
		close(hf);
	snprintf(host, sizeof(host), "%s/agentd-planted-%s/f", e->tmp, e->token);
	struct stat hs;
	bool planted = lstat(host, &hs) == 0;
	unlink(host);
	snprintf(host, sizeof(host), "%s/agentd-planted-%s", e->tmp, e->token);
	planted |= rmdir(host) == 0;
	if (statted || read_host || wrote || planted)
		cell_set(c, SEC_ALLOWED, "the files API %s {tmp} on the host through the link",
			 wrote || planted ? "wrote into" : read_host ? "read" : "found");
	else if (err.code == ENOTSUP)
		cell_set(c, SEC_BLOCKED, "no files API: %s", err.msg);
	else
		cell_set(c, SEC_BLOCKED, "resolved inside the sandbox (RESOLVE_IN_ROOT)");
}

/* issue 12: snapshots. SEC_SNAPSHOT: the entries of a stored snapshot that must not be. */
static unsigned snapshot_bad;
static int count_bad_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	bool special = !S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode) && !S_ISLNK(st->st_mode);
	if ((st->st_mode & (S_ISUID | S_ISGID)) || special ||
	    (!S_ISDIR(st->st_mode) && st->st_nlink > 1))
		snapshot_bad++;
	return 0;
}

/* A /bin/sh script in sb: 0 and its stdout (up to n), or -1 and why. */
static int sh_in(agentd_sandbox *sb, const char *script, char *out, size_t n, agentd_error *err)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	agentd_command cmd = {.argv = argv, .timeout_ms = 10000};
	agentd_exec_ctx ctx = {0};
	agentd_exec_output o;
	memset(&o, 0, sizeof(o));
	if (agentd_sandbox_exec(sb, &cmd, &ctx, &o, err) < 0)
		return -1;
	int r = o.exit_code == 0 ? 0 : agentd_error_set(err, EIO, "exit %d", o.exit_code);
	snprintf(out, n, "%.*s", (int)o.out_len, o.out ? (const char *)o.out : "");
	agentd_exec_output_free(&o);
	return r;
}

static void judge_snapshot_fork(agentd_sandbox *sb, const struct sec_env *e,
				const struct sec_attack *a, struct sec_cell *c)
{
	static const char check[] =
		"find . /tmp -xdev \\( -perm /6000 -o -type p -o -type c -o -type b -o \\( ! "
		"-type d -links +1 \\) \\) -print; test -f su && test -f hard";
	char dir[PATH_MAX], out[256];
	agentd_error err = {0};
	uint64_t bytes = 0;
	snprintf(dir, sizeof(dir), "%s/snapshot-%s", e->tmp, agentd_sandbox_id(sb));
	int fd = mkdir(dir, 0700) < 0 ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		cell_set(c, SEC_ERROR, "%s: %s", dir, strerror(errno));
		return;
	}
	/* Nothing is planted where there are no snapshots (the process backends' /tmp may be
	 * the host's): the empty sandbox's first. */
	int r = agentd_sandbox_snapshot_to(sb, fd, 64u << 20, &bytes, &err);
	if (r == 0)
		r = sh_in(sb, a->argv[0], out, sizeof(out), &err) < 0
			    ? agentd_error_prefix(&err, "plant")
			    : empty_dir_at(fd) < 0 ? agentd_error_set(&err, EIO, "empty %s", dir)
			    : agentd_sandbox_snapshot_to(sb, fd, 64u << 20, &bytes, &err);
	close(fd);
	if (r < 0) {
		cell_set(c, err.code == ENOTSUP ? SEC_BLOCKED : SEC_ERROR, "snapshot: %s", err.msg);
		return;
	}
	snapshot_bad = 0;
	nftw(dir, count_bad_entry, 16, FTW_PHYS);
	if (snapshot_bad) {
		cell_set(c, SEC_ALLOWED, "the snapshot holds %u set-id, special or linked file(s)",
			 snapshot_bad);
		return;
	}
	agentd_create_opts opts = {.allow_degraded = true, .from_snapshot = dir};
	agentd_sandbox *fork = NULL;
	if (agentd_backend_create_sandbox_opts(agentd_sandbox_backend(sb), agentd_sandbox_spec(sb),
					       &opts, &fork, &err) < 0) {
		cell_set(c, SEC_ERROR, "from snapshot: %s", err.msg);
		return;
	}
	if (sh_in(fork, check, out, sizeof(out), &err) < 0)
		cell_set(c, SEC_ERROR, "check the new sandbox: %s", err.msg);
	else if (out[0])
		cell_set(c, SEC_ALLOWED, "the new sandbox holds %.160s", out);
	else
		cell_set(c, SEC_BLOCKED, "no set-id, special or linked file stored or restored (%s)",
			 agentd_sandbox_get_caps(fork)->from_snapshot);
	agentd_sandbox_destroy(fork, NULL);
}

static void run_attack(agentd_sandbox *sb, const char *probe, const struct sec_env *e,
		       const struct sec_attack *a, struct sec_cell *c);

/* issue 13: img-store. SEC_IMAGE_ARCHIVE: set-id entries of an unpacked image store. */
static unsigned image_setid;
static int count_setid(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	image_setid += (st->st_mode & (S_ISUID | S_ISGID)) != 0;
	return 0;
}

/* The sandbox's file rel imported as a rootfs image into store: 0, or -1 and err. */
static int import_from(agentd_sandbox *sb, agentd_image_store *store, const char *rel,
		       agentd_error *err)
{
	int fd = agentd_sandbox_open_path(sb, rel, 0, err);
	if (fd < 0)
		return agentd_error_prefix(err, "read %s", rel);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	agentd_image_import_opts o = {.tag = "hostile"};
	agentd_image_info info;
	int r = agentd_image_import(store, path, &o, &info, err);
	if (r == 0)
		agentd_image_info_free(&info);
	close(fd);
	return r;
}

static void judge_image_archive(agentd_sandbox *sb, const struct sec_env *e,
				const struct sec_attack *a, struct sec_cell *c)
{
	char script[2048], out[256], dir[PATH_MAX], planted[PATH_MAX];
	agentd_error err = {0}, err1 = {0};
	expand(e, a->argv[0], script, sizeof(script));
	if (sh_in(sb, script, out, sizeof(out), &err) < 0) {
		cell_set(c, SEC_ERROR, "pack: %s", err.msg);
		return;
	}
	snprintf(dir, sizeof(dir), "%s/images-%s", e->tmp, agentd_sandbox_id(sb));
	agentd_image_store *store;
	if (agentd_image_store_open(dir, &store, &err) < 0) {
		cell_set(c, SEC_ERROR, "%s", err.msg);
		return;
	}
	bool refused = import_from(sb, store, "evil1.tar", &err1) < 0;
	int r2 = import_from(sb, store, "evil2.tar", &err);
	agentd_image_store_free(store);
	snprintf(planted, sizeof(planted), "%s/agentd-img-%s", e->tmp, e->token);
	struct stat st;
	bool escaped = lstat(planted, &st) == 0;
	unlink(planted);
	image_setid = 0;
	nftw(dir, count_setid, 16, FTW_PHYS);
	if (escaped)
		cell_set(c, SEC_ALLOWED, "the import wrote %s through the archive's symlink", planted);
	else if (image_setid)
		cell_set(c, SEC_ALLOWED, "%u set-id file(s) in the unpacked image", image_setid);
	else if (r2 < 0)
		cell_set(c, SEC_ERROR, "evil2.tar: %s", err.msg);
	else
		cell_set(c, SEC_BLOCKED, "%s; set-id bits stripped",
			 refused ? err1.msg : "the link's file was not written");
	rm_rf(dir);
}

/* SEC_DURABLE: persist sb under {tmp}/durable, then the attack at its endpoint. */
static void judge_durable_endpoint(agentd_sandbox *sb, const char *probe,
				   const struct sec_env *e, const struct sec_attack *a,
				   struct sec_cell *c)
{
	char dir[PATH_MAX], path[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/durable", e->tmp);
	mkdir(dir, 0700);
	agentd_error err = {0};
	char *token = NULL;
	if (agentd_sandbox_persist(sb, dir, &token, &err) < 0) {
		if (err.code == ENOTSUP)
			cell_set(c, SEC_BLOCKED, "no durable sandboxes: no endpoint to reach");
		else
			cell_set(c, SEC_ERROR, "%s", err.msg);
		return;
	}
	free(token);
	snprintf(path, sizeof(path), "%s/%s.sock", dir, agentd_sandbox_id(sb));
	struct sec_attack at = {.name = a->name, .category = a->category,
				.argv = {a->argv[0], path}};
	run_attack(sb, probe, e, &at, c);
}

static void run_attack(agentd_sandbox *sb, const char *probe, const struct sec_env *e,
		       const struct sec_attack *a, struct sec_cell *c)
{
	if (a->flags & SEC_DURABLE) {
		judge_durable_endpoint(sb, probe, e, a, c);
		return;
	}
	if (a->flags & SEC_WAY_IN) {
		judge_way_in(sb, e->port, c);
		return;
	}
	if (a->flags & SEC_SNAPSHOT) {
		judge_snapshot_fork(sb, e, a, c);
		return;
	}
	if (a->flags & SEC_IMAGE_ARCHIVE) { /* issue 13: img-store */
		judge_image_archive(sb, e, a, c);
		return;
	}
	if (a->flags & SEC_IMAGE) { /* issue 13: img-root */
		char detail[200];
		int v = judge_image_layer_write(sb, probe, e, detail, sizeof(detail));
		cell_set(c, v > 0 ? SEC_ALLOWED : v == 0 ? SEC_BLOCKED : SEC_ERROR, "%s", detail);
		return;
	}
	if ((a->flags & SEC_NEEDS_BLOCKDEV) && !e->blockdev[0]) {
		cell_set(c, SEC_SKIPPED, "no block device on this host");
		return;
	}
	if ((a->flags & SEC_NEEDS_ENGINE_SOCK) && !e->enginesock[0]) { /* issue 13: oci-engine */
		cell_set(c, SEC_SKIPPED, "no container engine API socket on this host");
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
	bool bg = a->flags & (SEC_TTY | SEC_NARROWED);
	agentd_network was = {.mode = agentd_sandbox_spec(sb)->network.mode};
	strv_copy(&was.allow, &agentd_sandbox_spec(sb)->network.allow);
	int r = bg ? spawn_collect(sb, &cmd, a->flags & SEC_TTY,
			       a->flags & SEC_NARROWED ? narrow_live : NULL, &o, &err)
		   : agentd_sandbox_exec(sb, &cmd, &ctx, &o, &err);
	/* SEC_NARROWED: the list as it was, for what runs next in this sandbox */
	agentd_error rerr = {0};
	if ((a->flags & SEC_NARROWED) && r == 0 && agentd_sandbox_set_network(sb, &was, &rerr) < 0)
		print_error("warning: put the allowlist back: %s", rerr.msg);
	strv_free(&was.allow);
	if (r < 0) {
		/* issue 13: oci-runtime. No background processes (ENOTSUP): no live tunnel
		 * to narrow, nothing to attack. */
		if ((a->flags & SEC_REFUSAL_BLOCKS) || (bg && err.code == ENOTSUP))
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
	if ((a->flags & SEC_TERM_OUTPUT) && c->res == SEC_ALLOWED)
		(a->flags & SEC_TTY) ? judge_attached_output(&o, c) : judge_terminal_output(&o, c);
	if ((a->flags & SEC_CTX_FRAMES) && c->res == SEC_ALLOWED)
		judge_context_frames(&o, c);
	if ((a->flags & SEC_FILES_API) && c->res == SEC_ALLOWED) /* issue 12: files */
		judge_files_api(sb, e, bufs[2], c);
	/* issue 13: oci-runtime */
	if ((a->flags & SEC_PID1_STDIO) && c->res == SEC_ALLOWED && strstr(c->detail, "-> /dev/null"))
		cell_set(c, SEC_BLOCKED, "pid 1's stdio is /dev/null (%.200s)", c->detail);
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

/* The attacks on the egress proxy, in an allowlist sandbox listing one address. */
static void run_allowlist_attacks(agentd_backend *b, const char *dir, const char *probe,
				  const struct sec_env *e, struct sec_cell *cells)
{
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	spec.allowed_paths_ro.v = calloc(2, sizeof(char *));
	spec.allowed_paths_ro.v[0] = strdup(dir);
	spec.allowed_paths_ro.n = 1;
	spec.limits.max_wall_time_ms = 15000;
	char entry[64];
	snprintf(entry, sizeof(entry), "127.0.0.1:%s", e->port);
	spec.network.mode = AGENTD_NET_ALLOWLIST;
	spec.network.allow.v = calloc(2, sizeof(char *));
	spec.network.allow.v[0] = strdup(entry);
	spec.network.allow.n = 1;
	agentd_sandbox *sb = NULL;
	agentd_error err = {0};
	int r = agentd_backend_create_sandbox(b, &spec, &sb, &err);
	for (size_t i = 0; i < N_ATTACKS; i++) {
		if (!(attacks[i].flags & SEC_ALLOWLIST))
			continue;
		if (r == 0)
			run_attack(sb, probe, e, &attacks[i], &cells[i]);
		else if (err.code == ENOTSUP) /* no allowlist here: nothing to attack */
			cell_set(&cells[i], SEC_BLOCKED, "refused: %s", err.msg);
		else
			cell_set(&cells[i], SEC_ERROR, "create allowlist sandbox: %s", err.msg);
	}
	if (r == 0 && agentd_sandbox_destroy(sb, &err) < 0)
		print_error("warning: destroy: %s", err.msg);
	agentd_spec_free(&spec);
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
	/* the table shows what each backend blocks, host-direct's missing walls included */
	static const agentd_create_opts degraded = {.allow_degraded = true};
	if (agentd_backend_create_sandbox_opts(b, &spec, &degraded, &sb, &err) < 0) {
		snprintf(why, wn, "create sandbox: %s", err.msg);
		agentd_spec_free(&spec);
		agentd_backend_free(b);
		return -1;
	}
	for (size_t i = 0; i < N_ATTACKS; i++)
		if (!(attacks[i].flags & SEC_ALLOWLIST))
			run_attack(sb, probe, e, &attacks[i], &cells[i]);
	if (agentd_sandbox_destroy(sb, &err) < 0)
		print_error("warning: %s: destroy: %s", name, err.msg);
	run_allowlist_attacks(b, dir, probe, e, cells);
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

/* No probe helper: nothing to run inside, said as such (an empty table in JSON). */
static int no_probe_helper(const char *looked, bool json)
{
	char msg[2 * PATH_MAX + 224];
	snprintf(msg, sizeof(msg),
		 "sbxprobe not found (looked at %s; set AGENTD_SBXPROBE to the probe helper "
		 "built as tests/sbxprobe): no security table",
		 looked);
	if (json) {
		json_t *root = json_pack("{s:o, s:s}", "security", json_object(), "skipped", msg);
		char *s = json_dumps(root, JSON_INDENT(2));
		puts(s);
		free(s);
		json_decref(root);
	}
	print_error("probe --security: %s", msg);
	return 0;
}

/* security: the verdicts; details: sbxprobe's line (or the error) for each. */
static void print_json(const char *const *cols, size_t nc, const struct sec_cell *cells,
		       const char *probe, json_t *unavail)
{
	json_t *sec = json_object(), *details = json_object();
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
			json_object_set_new(dcol, attacks[a].name, json_string(cell->detail));
		}
		json_object_set_new(sec, cols[c], col);
		json_object_set_new(details, cols[c], dcol);
	}
	json_t *root = json_pack("{s:o, s:o, s:s}", "security", sec, "details", details,
				 "sbxprobe", probe);
	if (json_object_size(unavail))
		json_object_set(root, "unavailable", unavail);
	char *s = json_dumps(root, JSON_INDENT(2));
	puts(s);
	free(s);
	json_decref(root);
}

/* An attack a row, a backend a column, then each backend's count and what got through. */
static void print_table(const char *const *cols, size_t nc, const struct sec_cell *cells)
{
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

int security_probe(const char *only, bool json)
{
	char probe[PATH_MAX], looked[2 * PATH_MAX + 64];
	if (!find_sbxprobe(probe, looked, sizeof(looked)))
		return no_probe_helper(looked, json);
	size_t nb;
	const char *const *names = agentd_available_backends(&nb);
	const char *want = only ? agentd_canonical_backend_name(only) : NULL;
	struct sec_env env;
	agentd_error err = {0};
	if (env_setup(&env, &err) < 0) {
		print_error("probe --security: %s", err.msg);
		return EXIT_AGENTD;
	}
	const char **cols = xcalloc(nb, sizeof(*cols));
	struct sec_cell *cells = xcalloc(nb * N_ATTACKS, sizeof(*cells));
	json_t *unavail = json_object();
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
	int rc = 0;
	if (nc == 0) {
		print_error("probe --security: no available backend to probe%s%s",
			    only ? " named " : "", only ? only : "");
		rc = EXIT_AGENTD;
	} else if (json) {
		print_json(cols, nc, cells, probe, unavail);
	} else {
		print_table(cols, nc, cells);
	}
	json_decref(unavail);
	free(cols);
	free(cells);
	return rc;
}
