/* sbxprobe.c: the static multi-call probe the integration and security tests run INSIDE a
 * sandbox; each subcommand makes one attempt (an attack, or a harmless everyday action).
 *
 * Attempts print exactly one line on stdout, "ALLOWED <detail>" or "BLOCKED <ERRNO|reason>
 * <detail>", and exit 0 if the attempt succeeded (for an attack: an escape), 1 if it was
 * refused, 2 on usage or unexpected errors ("ERROR ..."). Utilities (ids, env, hostname,
 * sleep, spin, burn, output, cat-stdin, exit, kill-self) print their natural output.
 *
 * Attempts that probe a privilege without wanting its effect (reboot, swapon, init-module,
 * pivot-root...) pass arguments the kernel rejects only after its permission check: EPERM
 * means blocked, any later error (EINVAL, ENOENT, EBADF...) means the check was passed and
 * is reported as ALLOWED. Built with -static and only libc, so it runs in an empty root. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 1
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#define X32_SYSCALL_BIT 0x40000000
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* Every subcommand has this shape; argv[0] is the subcommand's name. */
#define CMD(fn) static int fn(__attribute__((unused)) int argc, __attribute__((unused)) char **argv)

/* ------------------------------------------------------------------ output */

/* One write(2) per line: no stdio buffer to lose or duplicate across fork(). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	for (char *p = buf; n > 0;) {
		ssize_t w = write(STDOUT_FILENO, p, (size_t)n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (int)w;
	}
}

static const char *errname(int e)
{
	const char *s = strerrorname_np(e);
	static char buf[16];
	if (s)
		return s;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

static int allowed(const char *detail)
{
	say("ALLOWED %s", detail);
	return 0;
}

/* The current errno, named, as the reason. */
static int blocked_errno(const char *what)
{
	say("BLOCKED %s %s", errname(errno), what);
	return 1;
}

static int error(const char *what)
{
	say("ERROR %s", what);
	return 2;
}

/* r < 0 with errno set: EPERM/EACCES/ENOSYS/EOPNOTSUPP are refusals; anything else was
 * raised after the permission check (see the header). */
static int privilege_result(long r, const char *what)
{
	char d[256];
	if (r >= 0) {
		snprintf(d, sizeof(d), "%s succeeded", what);
		return allowed(d);
	}
	if (errno == EPERM || errno == EACCES || errno == ENOSYS || errno == EOPNOTSUPP)
		return blocked_errno(what);
	snprintf(d, sizeof(d), "%s passed the permission check (%s)", what, errname(errno));
	return allowed(d);
}

static bool parse_long(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		return false;
	*out = v;
	return true;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --------------------------------------------------------------- filesystem */

CMD(cmd_read)
{
	char buf[256], d[512];
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return blocked_errno(argv[1]);
	ssize_t n = read(fd, buf, sizeof(buf));
	int e = errno;
	close(fd);
	errno = e;
	if (n < 0 && errno != EAGAIN)
		return blocked_errno(argv[1]);
	snprintf(d, sizeof(d), "read %zd bytes from %s", n < 0 ? 0 : n, argv[1]);
	return allowed(d);
}

CMD(cmd_write)
{
	static const char data[] = "sbxprobe\n";
	char d[512];
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0)
		return blocked_errno(argv[1]);
	ssize_t n = write(fd, data, sizeof(data) - 1);
	int e = errno;
	close(fd);
	errno = e;
	if (n < 0)
		return blocked_errno(argv[1]);
	snprintf(d, sizeof(d), "wrote %zd bytes to %s", n, argv[1]);
	return allowed(d);
}

/* A symlink planted in the cwd (the workspace) pointing at TARGET, then read or written
 * through: the sandbox's walls must hold whatever path the link resolves to. */
static int cmd_read(int argc, char **argv);
static int cmd_write(int argc, char **argv);
CMD(cmd_via_symlink)
{
	bool w = !strcmp(argv[1], "write");
	if (!w && strcmp(argv[1], "read"))
		return error("usage: via-symlink read|write TARGET");
	char link[64];
	snprintf(link, sizeof(link), "sbxprobe-link-%d", (int)getpid());
	if (symlink(argv[2], link) < 0)
		return error("symlink: cannot plant the link in the cwd");
	char *args[] = {argv[1], link, NULL};
	int r = w ? cmd_write(2, args) : cmd_read(2, args);
	unlink(link);
	return r;
}

/* issue 12: files — a symlink NAME -> TARGET left in the cwd for the host's files API to
 * meet (the security table's files-api rows judge what the host then does). */
CMD(cmd_plant_symlink)
{
	if (symlink(argv[1], argv[2]) < 0)
		return error("symlink: cannot plant the link in the cwd");
	return allowed("planted");
}

CMD(cmd_mkdir)
{
	if (mkdir(argv[1], 0755) < 0)
		return blocked_errno(argv[1]);
	return allowed(argv[1]);
}

CMD(cmd_exec)
{
	/* The exec error travels over a CLOEXEC pipe: EOF means execve succeeded. */
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return error("pipe");
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return error("fork");
	if (pid == 0) {
		close(p[0]);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		for (int fd = 0; fd < 3; fd++) {
			if (null >= 0)
				dup2(null, fd);
			else
				close(fd);
		}
		char *args[] = {argv[1], NULL};
		execv(argv[1], args);
		int e = errno;
		(void)!write(p[1], &e, sizeof(e));
		_exit(127);
	}
	close(p[1]);
	int e = 0;
	ssize_t n;
	while ((n = read(p[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(p[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(e)) {
		errno = e;
		return blocked_errno(argv[1]);
	}
	char d[512];
	snprintf(d, sizeof(d), "executed %s (%s %d)", argv[1],
		 WIFEXITED(status) ? "exit" : "signal",
		 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return allowed(d);
}

CMD(cmd_listdir)
{
	DIR *d = opendir(argv[1]);
	if (!d)
		return blocked_errno(argv[1]);
	int n = 0;
	errno = 0;
	while (readdir(d))
		n++;
	int e = errno;
	closedir(d);
	if (e) {
		errno = e;
		return blocked_errno(argv[1]);
	}
	char msg[512];
	snprintf(msg, sizeof(msg), "%d entries in %s", n, argv[1]);
	return allowed(msg);
}

CMD(cmd_readlink)
{
	char target[1024], d[1536];
	ssize_t n = readlink(argv[1], target, sizeof(target) - 1);
	if (n < 0)
		return blocked_errno(argv[1]);
	target[n] = '\0';
	snprintf(d, sizeof(d), "%s -> %s", argv[1], target);
	return allowed(d);
}

static int cmd_mknod(const char *path, mode_t type, dev_t dev)
{
	if (mknod(path, type | 0600, dev) < 0)
		return blocked_errno(path);
	unlink(path);
	char d[512];
	snprintf(d, sizeof(d), "created device node %s (removed)", path);
	return allowed(d);
}

CMD(cmd_mknod_char)
{
	return cmd_mknod(argv[1], S_IFCHR, makedev(1, 3)); /* /dev/null's numbers */
}

CMD(cmd_mknod_block)
{
	return cmd_mknod(argv[1], S_IFBLK, makedev(8, 0)); /* sda */
}

CMD(cmd_open_dev)
{
	int fd = open(argv[1], O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return blocked_errno(argv[1]);
	close(fd);
	char d[512];
	snprintf(d, sizeof(d), "opened %s", argv[1]);
	return allowed(d);
}

/* Write back what is there, so that a successful attempt changes nothing. */
static int write_back(const char *path, const char *fallback)
{
	char cur[4096] = "";
	ssize_t len = -1;
	int rfd = open(path, O_RDONLY | O_CLOEXEC);
	if (rfd >= 0) {
		len = read(rfd, cur, sizeof(cur) - 1);
		close(rfd);
	}
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return blocked_errno(path);
	const char *data = len > 0 ? cur : fallback;
	size_t n = len > 0 ? (size_t)len : (fallback ? strlen(fallback) : 0);
	char d[512];
	if (!data) {
		close(fd);
		snprintf(d, sizeof(d), "opened %s for writing (content unknown: nothing written)",
			 path);
		return allowed(d);
	}
	ssize_t w = write(fd, data, n);
	int e = errno;
	close(fd);
	errno = e;
	if (w < 0)
		return blocked_errno(path);
	snprintf(d, sizeof(d), "wrote %zd bytes to %s", w, path);
	return allowed(d);
}

CMD(cmd_sysrq)
{
	/* 'h' only prints the sysrq help to the kernel log. */
	int fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return blocked_errno("/proc/sysrq-trigger");
	ssize_t w = write(fd, "h", 1);
	int e = errno;
	close(fd);
	errno = e;
	if (w < 0)
		return blocked_errno("/proc/sysrq-trigger");
	return allowed("wrote 'h' to /proc/sysrq-trigger");
}

CMD(cmd_write_proc_sys)
{
	return write_back(argc > 1 ? argv[1] : "/proc/sys/kernel/hostname", NULL);
}

/* Does the sandbox's mount table name PATH (agentd's state dir)? A bind's root within its
 * filesystem is field 4 of /proc/self/mountinfo: a bind from below the state dir names it. */
CMD(cmd_mountinfo_path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return blocked_errno("/proc/self/mountinfo");
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, argv[1])) {
			fclose(f);
			line[strcspn(line, "\n")] = '\0';
			return allowed(line);
		}
	}
	fclose(f);
	say("BLOCKED no mount names %s", argv[1]);
	return 1;
}

CMD(cmd_kallsyms)
{
	FILE *f = fopen("/proc/kallsyms", "re");
	if (!f)
		return blocked_errno("/proc/kallsyms");
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		unsigned long long addr = strtoull(line, NULL, 16);
		if (addr) {
			fclose(f);
			line[strcspn(line, "\n")] = '\0';
			return allowed(line);
		}
	}
	fclose(f);
	say("BLOCKED zeroed /proc/kallsyms addresses are hidden");
	return 1;
}

/* Whose per-user kernel budgets (pending signals and timers, inotify instances, message
 * queues) ours are charged to: the kernel charges a user namespace's use up to the
 * namespace's owner. ALLOWED when that owner is a user outside the sandbox, not mapped in
 * it (host root, when root made the namespace): exhausting a budget here starves it.
 * BLOCKED when the owner is the sandbox's own user, or in the host's namespace when we are
 * not root (then only our own uid's budgets are used). */
CMD(cmd_budget_owner)
{
	char map[128] = "";
	FILE *f = fopen("/proc/self/uid_map", "re");
	if (!f || !fgets(map, sizeof(map), f))
		return error("read /proc/self/uid_map");
	fclose(f);
	unsigned in, out, count;
	if (sscanf(map, "%u %u %u", &in, &out, &count) == 3 && in == 0 && out == 0 &&
	    count == 4294967295u) {
		if (getuid() == 0)
			return allowed("uid 0 of the host's user namespace: root's own budgets");
		say("BLOCKED host user namespace, charged to our uid %u only", (unsigned)getuid());
		return 1;
	}
	int fd = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
	uid_t owner;
	if (fd < 0 || ioctl(fd, NS_GET_OWNER_UID, &owner) < 0)
		return error("NS_GET_OWNER_UID");
	close(fd);
	if (owner == getuid()) {
		say("BLOCKED our user namespace is owned by our own user (uid %u)",
		    (unsigned)owner);
		return 1;
	}
	char why[160];
	snprintf(why, sizeof(why),
		 "our user namespace is owned by uid %u, not us (%u): a user outside the sandbox "
		 "is charged for what we queue",
		 (unsigned)owner, (unsigned)getuid());
	return allowed(why);
}

static int open_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return blocked_errno(path);
	close(fd);
	char d[512];
	snprintf(d, sizeof(d), "opened %s for writing", path);
	return allowed(d);
}

CMD(cmd_proc_self_exe_write)
{
	return open_write("/proc/self/exe");
}

CMD(cmd_proc_pid_exe_write)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%s/exe", argv[1]);
	return open_write(path);
}

CMD(cmd_open_write)
{
	return open_write(argv[1]);
}

/* CVE-2019-5736 class: no binary of any process visible from inside (the host's, agentd's,
 * our own) may be opened for writing. ETXTBSY counts as reachable: it comes after the DAC
 * check (for a running binary), so the file would be writable once that process is gone.
 * (Conservative under Landlock, whose file_open hook runs after that.) */
CMD(cmd_proc_exe_write_all)
{
	DIR *dir = opendir("/proc");
	if (!dir)
		return blocked_errno("/proc");
	int links = 0, firsterr = 0;
	char hit[1024] = "";
	struct dirent *de;
	pid_t self = getpid();
	while ((de = readdir(dir))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char path[64], target[512];
		snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n < 0)
			continue; /* kernel thread, gone, or not ours to see */
		target[n] = '\0';
		links++;
		int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
		if (fd >= 0 || errno == ETXTBSY) {
			if (fd >= 0)
				close(fd);
			snprintf(hit, sizeof(hit), "%s (%s%s) -> %s opened for writing%s", path,
				 pid == self ? "self" : "pid ", pid == self ? "" : de->d_name,
				 target, fd >= 0 ? "" : " up to ETXTBSY");
			break;
		}
		if (!firsterr)
			firsterr = errno;
	}
	closedir(dir);
	if (hit[0])
		return allowed(hit);
	say("BLOCKED %s none of the %d readable /proc/*/exe links opened for writing",
	    firsterr ? errname(firsterr) : "-", links);
	return 1;
}

/* ------------------------------------------------------------------ network */

static bool sockaddr_from(const char *host, const char *port, struct sockaddr_storage *ss,
			  socklen_t *len)
{
	long p;
	if (!parse_long(port, &p) || p < 0 || p > 65535)
		return false;
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)p);
		*len = sizeof(*in);
		return true;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*in6);
		return true;
	}
	return false; /* no resolver in a static binary: numeric addresses only */
}

static int connect_inet(char **argv, int type, const char *what)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char d[256];
	if (!sockaddr_from(argv[1], argv[2], &ss, &len))
		return error("usage: numeric HOST (or localhost) and PORT");
	snprintf(d, sizeof(d), "%s %s:%s", what, argv[1], argv[2]);
	int fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return blocked_errno(d);
	/* Bounded: a filtered network must not hang the test. */
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		int e = errno;
		close(fd);
		errno = e == EINPROGRESS ? ETIMEDOUT : e;
		return blocked_errno(d);
	}
	if (type == SOCK_DGRAM && send(fd, "sbxprobe", 8, 0) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return blocked_errno(d);
	}
	close(fd);
	return allowed(d);
}

CMD(cmd_connect_tcp)
{
	return connect_inet(argv, SOCK_STREAM, "tcp connect");
}

CMD(cmd_connect_udp)
{
	return connect_inet(argv, SOCK_DGRAM, "udp send");
}

/* The egress proxy's answer head (and body, up to its end) to req; "" when none. */
static void proxy_ask(int fd, const char *req, char *buf, size_t cap)
{
	size_t got = 0;
	buf[0] = '\0';
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		return;
	for (ssize_t r; got < cap - 1 && (r = read(fd, buf + got, cap - 1 - got)) > 0;) {
		got += (size_t)r;
		buf[got] = '\0';
		if (!strncmp(buf, "HTTP/1.1 200", 12) && strstr(buf, "\r\n\r\n"))
			break; /* a tunnel: nothing more comes */
	}
}

/* DNS exfiltration through the egress proxy: ask it (127.0.0.1:3128 in an allowlist
 * sandbox) for NAME:PORT, a name its list does not hold. ALLOWED when the proxy looked the
 * name up (it answers that it cannot resolve it, or what it resolves to): the lookup alone
 * carries the name out. BLOCKED when it refuses before any lookup, or there is no proxy. */
CMD(cmd_proxy_resolve)
{
	char d[320], req[320], buf[2048];
	snprintf(d, sizeof(d), "egress proxy asked for unlisted %s:%s", argv[1], argv[2]);
	struct sockaddr_in in = {.sin_family = AF_INET,
				 .sin_port = htons(3128),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return blocked_errno(d);
	struct timeval tv = {.tv_sec = 15};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&in, sizeof(in)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return blocked_errno(d);
	}
	snprintf(req, sizeof(req), "CONNECT %s:%s HTTP/1.1\r\n\r\n", argv[1], argv[2]);
	proxy_ask(fd, req, buf, sizeof(buf));
	close(fd);
	char *body = strstr(buf, "\r\n\r\n");
	const char *why = body ? body + 4 : buf;
	char m[sizeof(d) + 200];
	snprintf(m, sizeof(m), "%s: %.190s", d, why);
	for (char *c = m; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	if (strstr(why, "cannot resolve") || strstr(why, "resolves to") ||
	    strstr(why, "not in a listed range") || strstr(why, "no answer for") ||
	    !strncmp(buf, "HTTP/1.1 200", 12))
		return allowed(m);
	if (!strncmp(buf, "HTTP/1.1 403", 12)) {
		say("BLOCKED %s", m);
		return 1;
	}
	return error(buf[0] ? m : "the proxy closed without an answer");
}

/* issue 12: names. A network narrowed live: a tunnel through the egress proxy to
 * HOST:PORT (listed), "tunnel open", then wait for SIGUSR1 (sent by the host once it took
 * HOST:PORT off the list). ALLOWED when the tunnel stays open, or a new one is granted;
 * BLOCKED when the tunnel was closed and a new CONNECT is refused. */
static int proxy_socket(void)
{
	struct sockaddr_in in = {.sin_family = AF_INET,
				 .sin_port = htons(3128),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = 15};
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&in, sizeof(in)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

CMD(cmd_proxy_narrowed)
{
	char req[320], buf[2048];
	snprintf(req, sizeof(req), "CONNECT %s:%s HTTP/1.1\r\n\r\n", argv[1], argv[2]);
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	int tunnel = proxy_socket();
	if (tunnel < 0)
		return error("no egress proxy before the narrowing");
	proxy_ask(tunnel, req, buf, sizeof(buf));
	if (strncmp(buf, "HTTP/1.1 200", 12))
		return error("the tunnel was not granted before the narrowing");
	say("tunnel open");
	struct timespec wait = {.tv_sec = 20};
	if (sigtimedwait(&usr1, NULL, &wait) < 0)
		return error("no narrowing (SIGUSR1) within 20 s");
	struct pollfd p = {.fd = tunnel, .events = POLLIN | POLLRDHUP};
	char c;
	if (poll(&p, 1, 3000) == 0 || recv(tunnel, &c, 1, MSG_DONTWAIT) > 0)
		return allowed("the tunnel opened before the narrowing stays open");
	close(tunnel);
	int fd = proxy_socket();
	if (fd < 0)
		return blocked_errno("tunnel closed at the narrowing; no proxy for a new one");
	proxy_ask(fd, req, buf, sizeof(buf));
	close(fd);
	if (!strncmp(buf, "HTTP/1.1 200", 12))
		return allowed("a new tunnel to the host taken off the list was granted");
	buf[strcspn(buf, "\r\n")] = '\0';
	say("BLOCKED tunnel closed at the narrowing; a new one refused (%.80s)", buf);
	return 1;
}

/* Egress with a verdict that means "the sandbox refused": blocked only when socket() or
 * connect() is refused locally (EPERM, EACCES, EAFNOSUPPORT, ENETUNREACH). A refusal from
 * the other end (ECONNREFUSED), an ICMP error or a timeout mean the packets left. */
CMD(cmd_connect_egress)
{
	struct sockaddr_storage ss;
	socklen_t len;
	long ms;
	char d[256];
	if (!sockaddr_from(argv[1], argv[2], &ss, &len) || !parse_long(argv[3], &ms) || ms < 0)
		return error("usage: connect-egress HOST PORT TIMEOUT_MS");
	snprintf(d, sizeof(d), "tcp connect %s:%s", argv[1], argv[2]);
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return blocked_errno(d);
	int e = 0;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		e = errno;
		if (e == EINPROGRESS) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int r;
			while ((r = poll(&pfd, 1, (int)ms)) < 0 && errno == EINTR)
				;
			socklen_t el = sizeof(e);
			if (r == 0)
				e = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
				e = errno;
		}
	}
	close(fd);
	if (e == EPERM || e == EACCES || e == EAFNOSUPPORT || e == ENETUNREACH) {
		errno = e;
		return blocked_errno(d);
	}
	char m[320];
	if (!e)
		snprintf(m, sizeof(m), "%s connected", d);
	else
		snprintf(m, sizeof(m), "%s left the sandbox (%s from the network)", d, errname(e));
	return allowed(m);
}

CMD(cmd_bind_tcp)
{
	long port;
	if (!parse_long(argv[1], &port) || port < 0 || port > 65535)
		return error("usage: bind-tcp PORT");
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return blocked_errno("socket");
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&in, sizeof(in)) < 0 || listen(fd, 1) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return blocked_errno("bind");
	}
	close(fd);
	return allowed("bound and listening");
}

static int connect_unix(const char *name, bool abstract)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	if (n + 1 + abstract > sizeof(un.sun_path))
		return error("socket name too long");
	memcpy(un.sun_path + abstract, name, n);
	socklen_t len =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + abstract + n + !abstract);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return blocked_errno("socket");
	if (connect(fd, (struct sockaddr *)&un, len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return blocked_errno(name);
	}
	close(fd);
	char d[256];
	snprintf(d, sizeof(d), "connected to %s%s", abstract ? "@" : "", name);
	return allowed(d);
}

CMD(cmd_connect_unix)
{
	return connect_unix(argv[1], false);
}

CMD(cmd_connect_abstract)
{
	return connect_unix(argv[1], true);
}

struct name_val {
	const char *name;
	long val;
};

static bool lookup(const struct name_val *t, size_t n, const char *s, long *out)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].name, s)) {
			*out = t[i].val;
			return true;
		}
	return parse_long(s, out);
}

CMD(cmd_socket)
{
	static const struct name_val families[] = {
	    {"unix", AF_UNIX},	   {"inet", AF_INET},	    {"inet6", AF_INET6},
	    {"packet", AF_PACKET}, {"netlink", AF_NETLINK}, {"vsock", AF_VSOCK},
	    {"alg", AF_ALG},	   {"raw", AF_INET},
	};
	static const struct name_val types[] = {
	    {"stream", SOCK_STREAM},
	    {"dgram", SOCK_DGRAM},
	    {"raw", SOCK_RAW},
	    {"seqpacket", SOCK_SEQPACKET},
	};
	long family, type = -1, proto = 0;
	if (!lookup(families, ARRAY_SIZE(families), argv[1], &family))
		return error("usage: socket FAMILY [TYPE]");
	if (argc > 2 && !lookup(types, ARRAY_SIZE(types), argv[2], &type))
		return error("usage: socket FAMILY [TYPE]");
	if (type < 0) {
		/* The type each family is usually attacked with. */
		type = family == AF_PACKET || family == AF_NETLINK ? SOCK_RAW
		       : family == AF_ALG			   ? SOCK_SEQPACKET
		       : family == AF_INET || family == AF_INET6   ? SOCK_STREAM
								   : SOCK_STREAM;
		if (!strcmp(argv[1], "raw"))
			type = SOCK_RAW;
	}
	if (!strcmp(argv[1], "raw") || (family == AF_INET && type == SOCK_RAW))
		proto = IPPROTO_ICMP;
	char d[128];
	snprintf(d, sizeof(d), "socket(%ld, %ld, %ld)", family, type, proto);
	int fd = socket((int)family, (int)type | SOCK_CLOEXEC, (int)proto);
	if (fd < 0)
		return blocked_errno(d);
	close(fd);
	return allowed(d);
}

/* A netlink socket of PROTOCOL bound to multicast GROUPS: NETLINK_KOBJECT_UEVENT (15)
 * group 1 receives the host's device events where the kernel broadcasts them. */
CMD(cmd_netlink_bind)
{
	long proto, groups;
	if (!parse_long(argv[1], &proto) || !parse_long(argv[2], &groups))
		return error("usage: netlink-bind PROTOCOL GROUPS");
	char d[128];
	snprintf(d, sizeof(d), "socket(AF_NETLINK, SOCK_DGRAM, %ld) bound to groups %ld", proto,
		 groups);
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, (int)proto);
	if (fd < 0)
		return blocked_errno(d);
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = (uint32_t)groups};
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	close(fd);
	errno = e;
	return r < 0 ? blocked_errno(d) : allowed(d);
}

/* Attach the SysV shared memory segment ID (made on the host) and read its first byte. */
CMD(cmd_sysv_shm_attach)
{
	long id;
	if (!parse_long(argv[1], &id))
		return error("usage: sysv-shm-attach ID");
	char d[128];
	snprintf(d, sizeof(d), "shmat(%ld)", id);
	void *p = shmat((int)id, NULL, SHM_RDONLY);
	if (p == (void *)-1)
		return blocked_errno(d);
	snprintf(d, sizeof(d), "shmat(%ld), read byte 0x%02x", id, *(volatile unsigned char *)p);
	shmdt(p);
	return allowed(d);
}

/* Create a SysV object (shm, sem or msg) under KEY and leave it: it would outlive the
 * sandbox on a host without an IPC namespace. */
CMD(cmd_sysv_create)
{
	long key;
	if (!parse_long(argv[2], &key))
		return error("usage: sysv-create shm|sem|msg KEY");
	char d[128];
	snprintf(d, sizeof(d), "%sget(0x%lx, IPC_CREAT)", argv[1], key);
	int r;
	if (!strcmp(argv[1], "shm"))
		r = shmget((key_t)key, 4096, IPC_CREAT | 0600);
	else if (!strcmp(argv[1], "sem"))
		r = semget((key_t)key, 1, IPC_CREAT | 0600);
	else if (!strcmp(argv[1], "msg"))
		r = msgget((key_t)key, IPC_CREAT | 0600);
	else
		return error("usage: sysv-create shm|sem|msg KEY");
	return r < 0 ? blocked_errno(d) : allowed(d);
}

/* ---------------------------------------------------------------- processes */

static bool parse_pid(const char *s, pid_t *pid)
{
	long v;
	if (!parse_long(s, &v) || v <= 0 || v > 0x3fffffff)
		return false;
	*pid = (pid_t)v;
	return true;
}

CMD(cmd_ptrace)
{
	pid_t pid;
	if (!parse_pid(argv[1], &pid))
		return error("usage: ptrace PID");
	/* SEIZE does not stop the target; detach again at once. */
	if (syscall(SYS_ptrace, 0x4206 /* PTRACE_SEIZE */, pid, 0, 0) < 0)
		return blocked_errno("PTRACE_SEIZE");
	syscall(SYS_ptrace, 17 /* PTRACE_DETACH */, pid, 0, 0);
	return allowed("attached with PTRACE_SEIZE");
}

CMD(cmd_ptrace_traceme)
{
	if (syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0) < 0)
		return blocked_errno("PTRACE_TRACEME");
	return allowed("PTRACE_TRACEME");
}

static const char probe_marker[16] = "sbxprobe-marker";

CMD(cmd_process_vm_readv)
{
	pid_t pid;
	if (!parse_pid(argv[1], &pid))
		return error("usage: process-vm-readv PID");
	/* The start of the target's first mapping, else our own (non-PIE) data address. */
	unsigned long addr = (unsigned long)probe_marker;
	char maps[64];
	snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
	FILE *f = fopen(maps, "re");
	if (f) {
		if (fscanf(f, "%lx", &addr) != 1)
			addr = (unsigned long)probe_marker;
		fclose(f);
	}
	char buf[16];
	struct iovec local = {buf, sizeof(buf)}, remote = {(void *)addr, sizeof(buf)};
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n < 0 && errno == EFAULT)
		return allowed("process_vm_readv passed the permission check (EFAULT)");
	if (n < 0)
		return blocked_errno("process_vm_readv");
	return allowed("read another process's memory");
}

CMD(cmd_pidfd_getfd)
{
	pid_t pid;
	long fd;
	if (!parse_pid(argv[1], &pid) || !parse_long(argv[2], &fd))
		return error("usage: pidfd-getfd PID FD");
	int pidfd = (int)syscall(__NR_pidfd_open, pid, 0);
	if (pidfd < 0)
		return blocked_errno("pidfd_open");
	long r = syscall(__NR_pidfd_getfd, pidfd, (int)fd, 0);
	int e = errno;
	close(pidfd);
	errno = e;
	if (r < 0)
		return blocked_errno("pidfd_getfd");
	close((int)r);
	return allowed("stole a file descriptor with pidfd_getfd");
}

/* Any visible process whose cmdline or comm contains the token (given in hex, so that the
 * token is not in our own argv nor in that of the agentd that started us). */
CMD(cmd_find_proc)
{
	char token[256];
	size_t hl = strlen(argv[1]);
	if (hl % 2 || hl / 2 >= sizeof(token) || !hl)
		return error("usage: find-proc HEX-TOKEN");
	for (size_t i = 0; i < hl / 2; i++) {
		unsigned v;
		if (sscanf(argv[1] + 2 * i, "%2x", &v) != 1)
			return error("usage: find-proc HEX-TOKEN");
		token[i] = (char)v;
	}
	token[hl / 2] = '\0';
	DIR *dir = opendir("/proc");
	if (!dir)
		return blocked_errno("/proc");
	int seen = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid == getpid())
			continue;
		seen++;
		static const char *const files[] = {"cmdline", "comm"};
		for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
			char path[64], buf[4096];
			snprintf(path, sizeof(path), "/proc/%ld/%s", pid, files[f]);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			ssize_t n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			if (n <= 0)
				continue;
			for (ssize_t i = 0; i < n; i++)
				if (!buf[i])
					buf[i] = ' ';
			buf[n] = '\0';
			if (strstr(buf, token)) {
				closedir(dir);
				char d[128];
				snprintf(d, sizeof(d), "process %ld is visible (%s matches)", pid,
					 files[f]);
				return allowed(d);
			}
		}
	}
	closedir(dir);
	say("BLOCKED not-visible no process matches among %d visible", seen);
	return 1;
}

CMD(cmd_kill)
{
	long pid, sig;
	if (!parse_long(argv[1], &pid) || !parse_long(argv[2], &sig))
		return error("usage: kill PID SIG");
	if (kill((pid_t)pid, (int)sig) < 0)
		return blocked_errno("kill");
	return allowed("signal delivered");
}

CMD(cmd_personality)
{
	uint64_t v;
	if (!parse_u64(argv[1], &v))
		return error("usage: personality VALUE");
	long old = syscall(SYS_personality, 0xffffffffUL);
	long r = syscall(SYS_personality, (unsigned long)v);
	if (r < 0)
		return blocked_errno("personality");
	if (old >= 0)
		syscall(SYS_personality, (unsigned long)old);
	char d[64];
	snprintf(d, sizeof(d), "personality(%#llx)", (unsigned long long)v);
	return allowed(d);
}

CMD(cmd_setuid0)
{
	uid_t r0, e0, s0;
	getresuid(&r0, &e0, &s0);
	int rc = setuid(0);
	int e = errno;
	uid_t r1, e1, s1;
	getresuid(&r1, &e1, &s1);
	char d[256];
	snprintf(d, sizeof(d), "before uid=%u/%u/%u after uid=%u/%u/%u", r0, e0, s0, r1, e1, s1);
	if (rc < 0 || (r1 && e1 && s1)) {
		say("BLOCKED %s %s", rc < 0 ? errname(e) : "unchanged", d);
		return 1;
	}
	return allowed(d);
}

CMD(cmd_caps)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return error("open /proc/self/status");
	static const char *const keys[] = {
	    "CapEff:", "CapPrm:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:"};
	char line[256], out[1024] = "";
	bool eff = false;
	while (fgets(line, sizeof(line), f)) {
		for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
			size_t k = strlen(keys[i]);
			if (strncmp(line, keys[i], k))
				continue;
			char *v = line + k + strspn(line + k, " \t");
			v[strcspn(v, "\n")] = '\0';
			if (i == 0)
				eff = strtoull(v, NULL, 16) != 0;
			size_t o = strlen(out);
			snprintf(out + o, sizeof(out) - o, "%s%.*s=%s", o ? " " : "", (int)k - 1,
				 keys[i], v);
		}
	}
	fclose(f);
	if (eff)
		return allowed(out);
	say("BLOCKED no-effective-caps %s", out);
	return 1;
}

CMD(cmd_fds)
{
	char out[2048] = "";
	int found = 0;
	for (int fd = 3; fd < 1024; fd++) {
		if (fcntl(fd, F_GETFD) < 0)
			continue;
		char link[64], target[256] = "?";
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n >= 0)
			target[n] = '\0';
		size_t o = strlen(out);
		snprintf(out + o, sizeof(out) - o, "%s%d->%s", found++ ? " " : "", fd, target);
	}
	if (found)
		return allowed(out);
	say("BLOCKED no fd above 2 is open");
	return 1;
}

CMD(cmd_ids)
{
	gid_t groups[64];
	int n = getgroups(ARRAY_SIZE(groups), groups);
	char g[512] = "";
	for (int i = 0; i < n; i++) {
		size_t o = strlen(g);
		snprintf(g + o, sizeof(g) - o, "%s%u", i ? "," : "", groups[i]);
	}
	say("uid=%u euid=%u gid=%u egid=%u groups=%s", getuid(), geteuid(), getgid(), getegid(), g);
	return 0;
}

CMD(cmd_env)
{
	extern char **environ;
	for (char **e = environ; e && *e; e++)
		say("%s", *e);
	return 0;
}

CMD(cmd_hostname)
{
	struct utsname u;
	if (uname(&u) < 0)
		return error("uname");
	say("%s", u.nodename);
	return 0;
}

/* ------------------------------------------------- namespaces and mounts */

CMD(cmd_unshare)
{
	static const struct name_val flags[] = {
	    {"user", CLONE_NEWUSER},	 {"mount", CLONE_NEWNS},  {"net", CLONE_NEWNET},
	    {"pid", CLONE_NEWPID},	 {"uts", CLONE_NEWUTS},	  {"ipc", CLONE_NEWIPC},
	    {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME},
	};
	long flag;
	if (!lookup(flags, ARRAY_SIZE(flags), argv[1], &flag))
		return error("usage: unshare user|mount|net|pid|uts|ipc|cgroup|time");
	char d[64];
	snprintf(d, sizeof(d), "unshare(%s)", argv[1]);
	if (unshare((int)flag) < 0)
		return blocked_errno(d);
	return allowed(d);
}

static int reap(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status;
}

CMD(cmd_clone_newuser)
{
	/* Raw clone without CLONE_VM behaves like fork: the child runs on a copy of our stack. */
	long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, NULL, NULL, 0);
	if (pid < 0)
		return blocked_errno("clone(CLONE_NEWUSER)");
	if (pid == 0)
		_exit(0);
	reap((pid_t)pid);
	return allowed("clone(CLONE_NEWUSER)");
}

CMD(cmd_clone3)
{
	struct clone_args args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0)
		return blocked_errno("clone3(CLONE_NEWUSER)");
	if (pid == 0)
		_exit(0);
	reap((pid_t)pid);
	return allowed("clone3(CLONE_NEWUSER)");
}

/* unshare(CLONE_NEWUSER) through the x32 (272 | x32 bit) and i386 (int 0x80, 310) entry
 * points: a filter that checks only the x86_64 table would let these through. */
CMD(cmd_x32_unshare_user)
{
	if (syscall(X32_SYSCALL_BIT | 272, CLONE_NEWUSER) < 0)
		return blocked_errno("x32 unshare(CLONE_NEWUSER)");
	return allowed("x32 unshare(CLONE_NEWUSER)");
}

CMD(cmd_i386_unshare_user)
{
#if defined(__x86_64__)
	long r;
	__asm__ volatile("int $0x80"
			 : "=a"(r)
			 : "a"(310L), "b"((long)CLONE_NEWUSER)
			 : "memory", "cc", "r8", "r9", "r10", "r11");
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return blocked_errno("int 0x80 unshare(CLONE_NEWUSER)");
	}
	return allowed("int 0x80 unshare(CLONE_NEWUSER)");
#else
	return error("not x86_64");
#endif
}

CMD(cmd_setns)
{
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return blocked_errno(argv[1]);
	int r = setns(fd, 0);
	int e = errno;
	close(fd);
	errno = e;
	if (r < 0)
		return blocked_errno("setns");
	return allowed("joined the namespace");
}

CMD(cmd_mount)
{
	/* A real tmpfs mount on a fresh directory, undone at once if it worked. */
	const char *tmp = getenv("TMPDIR");
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/sbxprobe-mnt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	const char *target = mkdtemp(dir) ? dir : "/";
	int r = mount("sbxprobe", target, "tmpfs", 0, "size=64k");
	int e = errno;
	if (r == 0)
		umount2(target, MNT_DETACH);
	if (target == dir)
		rmdir(dir);
	errno = e;
	if (r < 0)
		return blocked_errno("mount tmpfs");
	return allowed("mounted a tmpfs");
}

CMD(cmd_umount)
{
	if (umount2(argv[1], 0) < 0)
		return blocked_errno(argv[1]);
	return allowed("unmounted");
}

CMD(cmd_chroot)
{
	if (chroot(argv[1]) < 0)
		return blocked_errno(argv[1]);
	return allowed("chroot");
}

CMD(cmd_pivot_root)
{
	/* The capability check comes before the lookup of new_root, which does not exist. */
	long r = syscall(SYS_pivot_root, "/sbxprobe-nonexistent", "/sbxprobe-nonexistent");
	return privilege_result(r, "pivot_root");
}

CMD(cmd_open_tree)
{
	long fd = syscall(SYS_open_tree, AT_FDCWD, argv[1], OPEN_TREE_CLONE | O_CLOEXEC);
	if (fd < 0)
		return blocked_errno("open_tree(OPEN_TREE_CLONE)");
	close((int)fd);
	return allowed("cloned a mount tree");
}

CMD(cmd_fsopen)
{
	long fd = syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
	if (fd < 0)
		return blocked_errno("fsopen(tmpfs)");
	close((int)fd);
	return allowed("fsopen(tmpfs)");
}

/* ------------------------------------------------------------ kernel surface */

CMD(cmd_init_module)
{
	return privilege_result(syscall(SYS_init_module, NULL, 0, ""), "init_module");
}

CMD(cmd_finit_module)
{
	return privilege_result(syscall(SYS_finit_module, -1, "", 0), "finit_module");
}

CMD(cmd_delete_module)
{
	return privilege_result(syscall(SYS_delete_module, "sbxprobe_no_such_module", O_NONBLOCK),
				"delete_module");
}

CMD(cmd_keyctl)
{
	long r = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
	if (r < 0)
		return blocked_errno("keyctl");
	return allowed("keyctl(KEYCTL_GET_KEYRING_ID)");
}

CMD(cmd_add_key)
{
	long r = syscall(SYS_add_key, "user", "sbxprobe", "x", 1, KEY_SPEC_PROCESS_KEYRING);
	if (r < 0)
		return blocked_errno("add_key");
	return allowed("add_key");
}

CMD(cmd_bpf)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	if (fd < 0)
		return blocked_errno("bpf(BPF_MAP_CREATE)");
	close((int)fd);
	return allowed("bpf(BPF_MAP_CREATE)");
}

CMD(cmd_perf_event_open)
{
	struct perf_event_attr pe;
	memset(&pe, 0, sizeof(pe));
	pe.type = PERF_TYPE_SOFTWARE;
	pe.size = sizeof(pe);
	pe.config = PERF_COUNT_SW_CPU_CLOCK;
	pe.disabled = 1;
	pe.exclude_kernel = 1;
	pe.exclude_hv = 1;
	long fd = syscall(SYS_perf_event_open, &pe, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		return blocked_errno("perf_event_open");
	close((int)fd);
	return allowed("perf_event_open");
}

CMD(cmd_userfaultfd)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return blocked_errno("userfaultfd");
	close((int)fd);
	return allowed("userfaultfd");
}

CMD(cmd_io_uring)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	long fd = syscall(SYS_io_uring_setup, 1, &p);
	if (fd < 0)
		return blocked_errno("io_uring_setup");
	close((int)fd);
	return allowed("io_uring_setup");
}

CMD(cmd_tiocsti)
{
	/* Injects a harmless newline if it works at all. */
	char c = '\n';
	char d[256];
	int e0 = ioctl(0, TIOCSTI, &c) < 0 ? errno : 0;
	int e1 = 0;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		e1 = errno;
	} else {
		e1 = ioctl(fd, TIOCSTI, &c) < 0 ? errno : 0;
		close(fd);
	}
	if (!e0 || !e1) {
		snprintf(d, sizeof(d), "TIOCSTI injected on %s", !e0 ? "fd 0" : "/dev/tty");
		return allowed(d);
	}
	say("BLOCKED %s fd0, %s /dev/tty", errname(e0), errname(e1));
	return 1;
}

/* Escape sequences for the caller's terminal: OSC 52 (set the clipboard), clear the screen,
 * retitle the window. Only the host can judge whether they reach a terminal: agentd's
 * `probe --security` and the suite look at what the CLI makes of this output. */
CMD(cmd_term_escapes)
{
	static const char seq[] = "\033]52;c;YWdlbnRk\a\033[2J\033]0;pwned\a\n";
	if (write(STDOUT_FILENO, seq, sizeof(seq) - 1) < 0)
		return error("write stdout");
	return allowed("wrote OSC 52, CSI 2J and OSC 0 to stdout");
}

/* Frames of the code-context protocol forged on stdout, as a hostile cell writes them onto
 * its runner's protocol fd: a done frame claiming 4 GiB, then a header without an end. Only
 * the host can judge them: `probe --security` feeds them to its frame parser. */
CMD(cmd_ctx_forge)
{
	static const char seq[] = "done 1 4294967295\n{\"status\":\"ok\"}";
	if (write(STDOUT_FILENO, seq, sizeof(seq) - 1) < 0)
		return error("write stdout");
	for (int i = 0; i < 64; i++)
		if (write(STDOUT_FILENO, "result 1 1", 10) < 0)
			return error("write stdout");
	if (write(STDOUT_FILENO, "\n", 1) < 0)
		return error("write stdout");
	return allowed("wrote a 4 GiB done frame and an endless frame header");
}

/* issue 14: mcp — messages of the MCP protocol forged on stdout, as a hostile command writes
 * them for `agentd mcp` to relay: a whole JSON-RPC answer on a line of its own, a CR, a NUL,
 * a byte that is no UTF-8, U+2028, closing brackets. Only the host can judge them: `probe
 * --security` frames this output as agentd mcp does. */
CMD(cmd_mcp_forge)
{
	static const char seq[] = "\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[],"
				  "\"isError\":false}}\n\r\0\377\342\200\250}]\n";
	if (write(STDOUT_FILENO, seq, sizeof(seq) - 1) < 0)
		return error("write stdout");
	return allowed("wrote a forged JSON-RPC answer, CR, NUL, 0xFF and U+2028");
}

CMD(cmd_tioclinux)
{
	char sub = 7; /* TIOCL_GETSHIFTSTATE: read-only */
	if (ioctl(0, TIOCLINUX, &sub) < 0)
		return blocked_errno("TIOCLINUX on fd 0");
	return allowed("TIOCLINUX");
}

/* From a process on a terminal (a tty process of `agentd serve`, attached to a person's
 * terminal): push input into any terminal — TIOCSTI and TIOCLINUX on its own, then every
 * terminal it can open (/dev/tty, the console, virtual consoles, serial lines, every
 * /dev/pts/N), each also written a marker the host can look for. ALLOWED when an injection
 * works or a terminal outside the sandbox's own devpts instance opens. */
static int pty_try(const char *path, const struct stat *own, int *reached, char *d, size_t dn)
{
	int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	(*reached)++;
	char c = '\n';
	struct stat st;
	int r = 0;
	if (ioctl(fd, TIOCSTI, &c) == 0) {
		snprintf(d, dn, "TIOCSTI on %s", path);
		r = 1;
	} else if (fstat(fd, &st) == 0 && strcmp(path, "/dev/tty") &&
		   (!S_ISCHR(st.st_mode) || st.st_dev != own->st_dev)) {
		snprintf(d, dn, "opened %s, a terminal outside its own devpts", path);
		r = 1;
	}
	if (write(fd, "AGENTD-PTY-MARK\n", 16) < 0) {
		/* not writable: nothing reached */
	}
	close(fd);
	return r;
}

CMD(cmd_pty_inject)
{
	struct stat own;
	char d[256], path[64];
	if (!isatty(STDIN_FILENO) || fstat(STDIN_FILENO, &own) < 0)
		return error("stdin is not a terminal (run it as a tty process)");
	char c = '\n', sub = 7; /* TIOCL_GETSHIFTSTATE: read-only */
	if (ioctl(STDIN_FILENO, TIOCSTI, &c) == 0)
		return allowed("TIOCSTI on its own terminal");
	int e_sti = errno;
	if (ioctl(STDIN_FILENO, TIOCLINUX, &sub) == 0)
		return allowed("TIOCLINUX on its own terminal");
	int e_linux = errno;
	static const char *const fixed[] = {"/dev/tty", "/dev/console", "/dev/tty0", "/dev/tty1",
					    "/dev/tty63", "/dev/ttyS0", "/dev/ptmx"};
	int reached = 0;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (pty_try(fixed[i], &own, &reached, d, sizeof(d)))
			return allowed(d);
	for (int n = 0; n < 256; n++) {
		snprintf(path, sizeof(path), "/dev/pts/%d", n);
		if (pty_try(path, &own, &reached, d, sizeof(d)))
			return allowed(d);
	}
	say("BLOCKED TIOCSTI %s, TIOCLINUX %s; %d terminals open, all its own devpts",
	    errname(e_sti), errname(e_linux), reached);
	return 1;
}

CMD(cmd_sethostname)
{
	if (sethostname(argv[1], strlen(argv[1])) < 0)
		return blocked_errno("sethostname");
	return allowed("hostname changed");
}

CMD(cmd_netdev_config)
{
	/* Write lo's flags back unchanged (SIOCSIFFLAGS): permission is the only question. */
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return blocked_errno("socket(AF_INET)");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		int e = errno;
		close(s);
		errno = e;
		return blocked_errno("SIOCGIFFLAGS lo");
	}
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
		int e = errno;
		close(s);
		errno = e;
		return blocked_errno("SIOCSIFFLAGS lo");
	}
	close(s);
	return allowed("reconfigured lo (SIOCSIFFLAGS)");
}

CMD(cmd_sethostname_same)
{
	/* Set the hostname to what it already is: permission is the only question. */
	struct utsname u;
	if (uname(&u) < 0)
		return error("uname");
	if (sethostname(u.nodename, strlen(u.nodename)) < 0)
		return blocked_errno("sethostname");
	return allowed("sethostname (to its current value)");
}

static bool read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* Leave the sandbox's cgroup: our pid into the root (and the parent) of every hierarchy
 * visible under /sys/fs/cgroup, and release_agent (CVE-2022-0492) opened for writing. Only
 * a change of /proc/self/cgroup counts as an escape (writing ourselves into the cgroup we
 * are already in, e.g. the root of a cgroup namespace, moves nothing). */
CMD(cmd_cgroup_view)
{
	/* A cgroup namespace rooted at the sandbox's cgroup shows "/" in every hierarchy, or
	 * "/<unit>" where the command is in its kill unit, a child of that root; a path
	 * outside the root starts with "/..", and without a namespace it is the host's
	 * (<parent>/agentd/<sandbox>..., two components at least). */
	char buf[4096] = "";
	if (!read_small("/proc/self/cgroup", buf, sizeof(buf)))
		return blocked_errno("read /proc/self/cgroup");
	for (char *save, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		const char *path = c2 ? c2 + 1 : "/";
		if (path[0] != '/' || strchr(path + 1, '/') || strncmp(path, "/..", 3) == 0) {
			say("ALLOWED host cgroup path visible: %s", l);
			return 0;
		}
	}
	say("BLOCKED every hierarchy shows / or the command's own unit");
	return 1;
}

CMD(cmd_cgroup_escape)
{
	char before[4096] = "", after[4096] = "", pid[32], hit[512] = "";
	read_small("/proc/self/cgroup", before, sizeof(before));
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	char dirs[64][300];
	int nd = 0, firsterr = 0;
	snprintf(dirs[nd++], sizeof(dirs[0]), "/sys/fs/cgroup");
	DIR *d = opendir("/sys/fs/cgroup");
	struct dirent *de;
	while (d && (de = readdir(d)) && nd < 48)
		if (de->d_name[0] != '.')
			snprintf(dirs[nd++], sizeof(dirs[0]), "/sys/fs/cgroup/%.200s", de->d_name);
	if (d)
		closedir(d);
	/* Parents of our own cgroups ("N:ctrl:/a/b" -> <hier>/a). */
	char copy[4096];
	memcpy(copy, before, sizeof(copy));
	for (char *save, *l = strtok_r(copy, "\n", &save); l && nd < 64;
	     l = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		char *ctrl = c1 + 1, *path = c2 + 1, *slash = strrchr(path, '/');
		if (!slash || slash == path)
			continue;
		*slash = '\0';
		if (!strncmp(ctrl, "name=", 5))
			ctrl += 5;
		const char *hier = *ctrl ? ctrl : "unified";
		snprintf(dirs[nd++], sizeof(dirs[0]), "/sys/fs/cgroup/%.64s%.200s", hier, path);
		if (!*ctrl)
			snprintf(dirs[nd++], sizeof(dirs[0]), "/sys/fs/cgroup%.200s", path);
	}
	for (int i = 0; i < nd && !hit[0]; i++) {
		static const char *const files[] = {"cgroup.procs", "release_agent"};
		for (size_t f = 0; f < ARRAY_SIZE(files) && !hit[0]; f++) {
			char path[400];
			snprintf(path, sizeof(path), "%s/%s", dirs[i], files[f]);
			int fd = open(path, O_WRONLY | O_CLOEXEC);
			if (fd < 0) {
				if (errno != ENOENT && errno != ENOTDIR && !firsterr)
					firsterr = errno;
				continue;
			}
			if (f == 1) {
				close(fd); /* opened for writing is enough: nothing written */
				snprintf(hit, sizeof(hit), "opened %s for writing", path);
				break;
			}
			ssize_t w = write(fd, pid, strlen(pid));
			int e = errno;
			close(fd);
			read_small("/proc/self/cgroup", after, sizeof(after));
			if (w > 0 && strcmp(before, after)) {
				snprintf(hit, sizeof(hit), "moved into %s", dirs[i]);
				break;
			}
			if (w < 0 && !firsterr)
				firsterr = e;
		}
	}
	if (hit[0])
		return allowed(hit);
	say("BLOCKED %s no cgroup.procs or release_agent of %d candidates let us out",
	    firsterr ? errname(firsterr) : "-", nd);
	return 1;
}

CMD(cmd_settime)
{
	/* Set the clock to what it already says: permission is the only question. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (clock_settime(CLOCK_REALTIME, &now) < 0)
		return blocked_errno("clock_settime");
	return allowed("clock_settime");
}

CMD(cmd_adjtimex)
{
	struct timex tx = {.modes = 0};
	if (adjtimex(&tx) < 0)
		return blocked_errno("adjtimex(read)");
	tx.modes = ADJ_TICK; /* rewrite the current tick: a change that changes nothing */
	if (adjtimex(&tx) < 0)
		return blocked_errno("adjtimex(ADJ_TICK)");
	return allowed("adjtimex(ADJ_TICK)");
}

CMD(cmd_reboot)
{
	/* Bad magic: EINVAL, but only after the CAP_SYS_BOOT check. */
	return privilege_result(syscall(SYS_reboot, 0, 0, 0, NULL), "reboot");
}

CMD(cmd_swapon)
{
	return privilege_result(syscall(SYS_swapon, "/sbxprobe-nonexistent", 0), "swapon");
}

/* x32: the x86_64 getpid number with the x32 bit. A filter that lets it through would apply
 * its x86_64 rules to the wrong table. */
CMD(cmd_x32_getpid)
{
	long r = syscall(X32_SYSCALL_BIT | 39);
	if (r < 0)
		return blocked_errno("x32 getpid");
	char d[64];
	snprintf(d, sizeof(d), "x32 getpid returned %ld", r);
	return allowed(d);
}

CMD(cmd_i386_getpid)
{
#if defined(__x86_64__)
	long r;
	/* int $0x80 enters the i386 table (getpid is 20); r8-r11 are clobbered. */
	__asm__ volatile("int $0x80"
			 : "=a"(r)
			 : "a"(20L)
			 : "memory", "cc", "r8", "r9", "r10", "r11");
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return blocked_errno("int 0x80 getpid");
	}
	char d[64];
	snprintf(d, sizeof(d), "int 0x80 getpid returned %ld", r);
	return allowed(d);
#else
	return error("not x86_64");
#endif
}

/* ------------------------------------------------------------------ limits */

CMD(cmd_fork_bomb)
{
	long secs, want;
	if (!parse_long(argv[1], &secs) || !parse_long(argv[2], &want) || secs < 0 || want < 1)
		return error("usage: fork-bomb SECONDS COUNT");
	pid_t *pids = calloc((size_t)want, sizeof(pid_t));
	if (!pids)
		return error("calloc");
	double end = now_s() + (double)secs;
	long n = 0;
	int e = 0;
	while (n < want && now_s() < end) {
		pid_t pid = fork();
		if (pid < 0) {
			e = errno;
			break;
		}
		if (pid == 0) {
			/* Stay alive (and counted) until the parent is done, at most the limit. */
			struct timespec ts = {.tv_sec = secs + 1};
			nanosleep(&ts, NULL);
			_exit(0);
		}
		pids[n++] = pid;
	}
	for (long i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	for (long i = 0; i < n; i++)
		reap(pids[i]);
	free(pids);
	if (n >= want) {
		char d[64];
		snprintf(d, sizeof(d), "forked %ld processes", n);
		return allowed(d);
	}
	say("BLOCKED %s after %ld processes", e ? errname(e) : "timeout", n);
	return 1;
}

CMD(cmd_mem_bomb)
{
	uint64_t want, done = 0;
	if (!parse_u64(argv[1], &want))
		return error("usage: mem-bomb BYTES");
	const size_t chunk = 1 << 20;
	long page = sysconf(_SC_PAGESIZE);
	while (done < want) {
		size_t n = want - done < chunk ? (size_t)(want - done) : chunk;
		char *p = malloc(n);
		if (!p) {
			say("BLOCKED ENOMEM after %llu bytes", (unsigned long long)done);
			return 1;
		}
		for (size_t i = 0; i < n; i += (size_t)page)
			p[i] = 1; /* touch: make the kernel really back it */
		done += n;
	}
	char d[64];
	snprintf(d, sizeof(d), "touched %llu bytes", (unsigned long long)done);
	return allowed(d);
}

/* BYTES in total, spread over FILES files (PATH.0, PATH.1... when FILES > 1): a per-file
 * limit such as RLIMIT_FSIZE stops one big file, not many small ones. */
CMD(cmd_disk_fill)
{
	uint64_t want, files = 1, done = 0;
	if (!parse_u64(argv[2], &want) || (argc > 3 && (!parse_u64(argv[3], &files) || !files)))
		return error("usage: disk-fill PATH BYTES [FILES]");
	/* EFBIG instead of death by SIGXFSZ, so the line below still gets printed. */
	signal(SIGXFSZ, SIG_IGN);
	static char buf[65536];
	memset(buf, 'x', sizeof(buf));
	for (uint64_t f = 0; f < files; f++) {
		char path[4096];
		if (files > 1)
			snprintf(path, sizeof(path), "%s.%llu", argv[1], (unsigned long long)f);
		else
			snprintf(path, sizeof(path), "%s", argv[1]);
		uint64_t mine = want / files + (f == files - 1 ? want % files : 0), wrote = 0;
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return blocked_errno(path);
		while (wrote < mine) {
			size_t n =
			    mine - wrote < sizeof(buf) ? (size_t)(mine - wrote) : sizeof(buf);
			ssize_t w = write(fd, buf, n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				int e = w < 0 ? errno : ENOSPC;
				close(fd);
				say("BLOCKED %s after %llu bytes", errname(e),
				    (unsigned long long)(done + wrote));
				return 1;
			}
			wrote += (uint64_t)w;
		}
		close(fd);
		done += wrote;
	}
	char d[96];
	snprintf(d, sizeof(d), "wrote %llu bytes in %llu file(s)", (unsigned long long)done,
		 (unsigned long long)files);
	return allowed(d);
}

CMD(cmd_daemonize)
{
	long secs;
	if (!parse_long(argv[1], &secs) || secs < 0)
		return error("usage: daemonize SECONDS PIDFILE");
	const char *pidfile = argv[2];
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return error("pipe");
	pid_t child = fork();
	if (child < 0)
		return blocked_errno("fork");
	if (child == 0) {
		close(p[0]);
		setsid();
		pid_t gc = fork();
		if (gc < 0)
			_exit(1);
		if (gc > 0) {
			(void)!write(p[1], &gc, sizeof(gc));
			_exit(0);
		}
		/* Grandchild: detached, orphaned, in its own session. It must not survive the
		 * sandbox: the test checks the marker never appears. */
		close(p[1]);
		for (int fd = 0; fd < 3; fd++)
			close(fd);
		struct timespec ts = {.tv_sec = secs};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		char marker[4096];
		snprintf(marker, sizeof(marker), "%s.marker", pidfile);
		int fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			(void)!write(fd, "survived\n", 9);
			close(fd);
		}
		_exit(0);
	}
	close(p[1]);
	pid_t gc = 0;
	ssize_t n;
	while ((n = read(p[0], &gc, sizeof(gc))) < 0 && errno == EINTR)
		;
	close(p[0]);
	reap(child);
	if (n != (ssize_t)sizeof(gc))
		return error("second fork failed");
	char d[128];
	snprintf(d, sizeof(d), "%d\n", gc);
	int fd = open(pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, d, strlen(d)) < 0)
		return blocked_errno(pidfile);
	close(fd);
	snprintf(d, sizeof(d), "daemon pid %d, marker %s.marker after %lds", gc, pidfile, secs);
	return allowed(d);
}

CMD(cmd_sleep)
{
	double s = strtod(argv[1], NULL);
	struct timespec ts = {.tv_sec = (time_t)s,
			      .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	say("slept %s", argv[1]);
	return 0;
}

CMD(cmd_spin)
{
	double end = now_s() + strtod(argv[1], NULL);
	unsigned long x = 0;
	while (now_s() < end)
		for (int i = 0; i < 100000; i++)
			__asm__ volatile(""
					 : "+r"(x)
					 : "r"((unsigned long)i)); /* not optimised out */
	say("spun %s", argv[1]);
	return 0;
}

/* SECONDS of CPU time (not wall time: on a loaded machine spin gets less), in each of
 * PROCS processes (default 1: this one; more: forked children, this one waits). */
static void burn_cpu(double secs)
{
	unsigned long x = 0;
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
		if ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 >= secs)
			return;
		for (int i = 0; i < 100000; i++)
			__asm__ volatile("" : "+r"(x) : "r"((unsigned long)i));
	}
}

CMD(cmd_burn)
{
	double secs = strtod(argv[1], NULL);
	long procs = argc > 2 ? strtol(argv[2], NULL, 10) : 1;
	if (procs <= 1) {
		burn_cpu(secs);
		say("burned %s", argv[1]);
		return 0;
	}
	for (long i = 0; i < procs; i++) {
		pid_t p = fork();
		if (p < 0)
			return blocked_errno("fork");
		if (p == 0) {
			burn_cpu(secs);
			_exit(0);
		}
	}
	while (wait(NULL) > 0 || errno == EINTR)
		;
	say("burned %s in %ld processes", argv[1], procs);
	return 0;
}

CMD(cmd_output)
{
	uint64_t n;
	if (!parse_u64(argv[1], &n))
		return error("usage: output BYTES [out|err]");
	int fd = argc > 2 && !strcmp(argv[2], "err") ? STDERR_FILENO : STDOUT_FILENO;
	static char buf[65536];
	memset(buf, 'x', sizeof(buf));
	while (n > 0) {
		ssize_t w = write(fd, buf, n < sizeof(buf) ? (size_t)n : sizeof(buf));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return 2;
		n -= (uint64_t)w;
	}
	return 0;
}

CMD(cmd_cat_stdin)
{
	static char buf[65536];
	for (;;) {
		ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return 2;
		if (r == 0)
			return 0;
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(r - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return 2;
			off += w;
		}
	}
}

CMD(cmd_exit)
{
	long code;
	if (!parse_long(argv[1], &code))
		return error("usage: exit CODE");
	_exit((int)code & 0xff);
}

CMD(cmd_kill_self)
{
	long sig;
	if (!parse_long(argv[1], &sig) || sig <= 0 || sig >= NSIG)
		return error("usage: kill-self SIG");
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, (int)sig);
	signal((int)sig, SIG_DFL);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise((int)sig);
	return error("still alive after raise()");
}

/* ------------------------------------------------------------------- table */

/* IN_CHILD: run in a forked child, so that a filter's kill (SIGSYS), the OOM killer or
 * SIGSEGV is reported on the one line instead of ending the probe silently. */
#define IN_CHILD 1u

struct command {
	const char *name;
	const char *usage;
	int nargs; /* required arguments */
	unsigned flags;
	int (*fn)(int argc, char **argv);
};

/* clang-format off */
static const struct command commands[] = {
	{ "read", "PATH", 1, 0, cmd_read },
	{ "write", "PATH", 1, 0, cmd_write },
	{ "mkdir", "PATH", 1, 0, cmd_mkdir },
	{ "exec", "PATH", 1, 0, cmd_exec },
	{ "listdir", "PATH", 1, 0, cmd_listdir },
	{ "readlink", "PATH", 1, 0, cmd_readlink },
	{ "via-symlink", "read|write TARGET", 2, 0, cmd_via_symlink },
	/* issue 12: files */
	{ "plant-symlink", "TARGET NAME", 2, 0, cmd_plant_symlink },
	{ "open-write", "PATH", 1, 0, cmd_open_write },
	{ "connect-tcp", "HOST PORT", 2, 0, cmd_connect_tcp },
	{ "connect-udp", "HOST PORT", 2, 0, cmd_connect_udp },
	{ "connect-egress", "HOST PORT TIMEOUT_MS", 3, 0, cmd_connect_egress },
	{ "proxy-resolve", "NAME PORT", 2, 0, cmd_proxy_resolve },
	/* issue 12: names */
	{ "proxy-narrowed", "HOST PORT", 2, 0, cmd_proxy_narrowed },
	{ "bind-tcp", "PORT", 1, 0, cmd_bind_tcp },
	{ "connect-unix", "PATH", 1, 0, cmd_connect_unix },
	{ "connect-abstract", "NAME", 1, 0, cmd_connect_abstract },
	{ "socket", "FAMILY [TYPE]", 1, 0, cmd_socket },
	{ "netlink-bind", "PROTOCOL GROUPS", 2, 0, cmd_netlink_bind },
	{ "sysv-shm-attach", "ID", 1, 0, cmd_sysv_shm_attach },
	{ "sysv-create", "shm|sem|msg KEY", 2, 0, cmd_sysv_create },
	{ "ptrace", "PID", 1, 0, cmd_ptrace },
	{ "ptrace-traceme", "", 0, IN_CHILD, cmd_ptrace_traceme },
	{ "process-vm-readv", "PID", 1, 0, cmd_process_vm_readv },
	{ "pidfd-getfd", "PID FD", 2, 0, cmd_pidfd_getfd },
	{ "find-proc", "HEX-TOKEN", 1, 0, cmd_find_proc },
	{ "unshare", "user|mount|net|pid|uts|ipc|cgroup|time", 1, IN_CHILD, cmd_unshare },
	{ "clone-newuser", "", 0, 0, cmd_clone_newuser },
	{ "clone3", "", 0, 0, cmd_clone3 },
	{ "x32-getpid", "", 0, IN_CHILD, cmd_x32_getpid },
	{ "i386-getpid", "", 0, IN_CHILD, cmd_i386_getpid },
	{ "x32-unshare-user", "", 0, IN_CHILD, cmd_x32_unshare_user },
	{ "i386-unshare-user", "", 0, IN_CHILD, cmd_i386_unshare_user },
	{ "mount", "", 0, IN_CHILD, cmd_mount },
	{ "umount", "PATH", 1, 0, cmd_umount },
	{ "chroot", "PATH", 1, IN_CHILD, cmd_chroot },
	{ "pivot-root", "", 0, 0, cmd_pivot_root },
	{ "setns", "PATH", 1, IN_CHILD, cmd_setns },
	{ "open-tree", "PATH", 1, 0, cmd_open_tree },
	{ "fsopen", "", 0, 0, cmd_fsopen },
	{ "init-module", "", 0, 0, cmd_init_module },
	{ "finit-module", "", 0, 0, cmd_finit_module },
	{ "delete-module", "", 0, 0, cmd_delete_module },
	{ "keyctl", "", 0, 0, cmd_keyctl },
	{ "add-key", "", 0, 0, cmd_add_key },
	{ "bpf", "", 0, 0, cmd_bpf },
	{ "perf-event-open", "", 0, 0, cmd_perf_event_open },
	{ "userfaultfd", "", 0, 0, cmd_userfaultfd },
	{ "io-uring", "", 0, 0, cmd_io_uring },
	{ "tiocsti", "", 0, 0, cmd_tiocsti },
	{ "tioclinux", "", 0, 0, cmd_tioclinux },
	{ "pty-inject", "", 0, 0, cmd_pty_inject },
	{ "term-escapes", "", 0, 0, cmd_term_escapes },
	{ "ctx-forge", "", 0, 0, cmd_ctx_forge },
	{ "mcp-forge", "", 0, 0, cmd_mcp_forge }, /* issue 14: mcp */
	{ "kill", "PID SIG", 2, 0, cmd_kill },
	{ "sethostname", "NAME", 1, 0, cmd_sethostname },
	{ "netdev-config", "", 0, 0, cmd_netdev_config },
	{ "sethostname-same", "", 0, 0, cmd_sethostname_same },
	{ "settime", "", 0, 0, cmd_settime },
	{ "adjtimex", "", 0, 0, cmd_adjtimex },
	{ "mknod-char", "PATH", 1, 0, cmd_mknod_char },
	{ "mknod-block", "PATH", 1, 0, cmd_mknod_block },
	{ "open-dev", "PATH", 1, 0, cmd_open_dev },
	{ "sysrq", "", 0, 0, cmd_sysrq },
	{ "write-proc-sys", "[PATH]", 0, 0, cmd_write_proc_sys },
	{ "kallsyms", "", 0, 0, cmd_kallsyms },
	{ "mountinfo-path", "PATH", 1, 0, cmd_mountinfo_path },
	{ "budget-owner", "", 0, 0, cmd_budget_owner },
	{ "cgroup-escape", "", 0, IN_CHILD, cmd_cgroup_escape },
	{ "cgroup-view", "", 0, 0, cmd_cgroup_view },
	{ "personality", "VALUE", 1, IN_CHILD, cmd_personality },
	{ "reboot", "", 0, 0, cmd_reboot },
	{ "swapon", "", 0, 0, cmd_swapon },
	{ "setuid0", "", 0, IN_CHILD, cmd_setuid0 },
	{ "caps", "", 0, 0, cmd_caps },
	{ "ids", "", 0, 0, cmd_ids },
	{ "env", "", 0, 0, cmd_env },
	{ "fds", "", 0, 0, cmd_fds },
	{ "fork-bomb", "SECONDS COUNT", 2, 0, cmd_fork_bomb },
	{ "mem-bomb", "BYTES", 1, IN_CHILD, cmd_mem_bomb },
	{ "disk-fill", "PATH BYTES [FILES]", 2, 0, cmd_disk_fill },
	{ "daemonize", "SECONDS PIDFILE (marker: PIDFILE.marker)", 2, 0, cmd_daemonize },
	{ "sleep", "SECONDS", 1, 0, cmd_sleep },
	{ "spin", "SECONDS", 1, 0, cmd_spin },
	{ "burn", "SECONDS [PROCS]", 1, 0, cmd_burn },
	{ "output", "BYTES [out|err]", 1, 0, cmd_output },
	{ "cat-stdin", "", 0, 0, cmd_cat_stdin },
	{ "exit", "CODE", 1, 0, cmd_exit },
	{ "kill-self", "SIG", 1, 0, cmd_kill_self },
	{ "proc-self-exe-write", "", 0, 0, cmd_proc_self_exe_write },
	{ "proc-pid-exe-write", "PID", 1, 0, cmd_proc_pid_exe_write },
	{ "proc-exe-write-all", "", 0, 0, cmd_proc_exe_write_all },
	{ "hostname", "", 0, 0, cmd_hostname },
};
/* clang-format on */

static int usage(void)
{
	fprintf(stderr, "usage: sbxprobe TEST [ARGS...]\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(stderr, "  %s %s\n", commands[i].name, commands[i].usage);
	say("ERROR usage");
	return 2;
}

static int run_in_child(const struct command *c, int argc, char **argv)
{
	pid_t pid = fork();
	if (pid < 0)
		return c->fn(argc, argv); /* no fork (pids limit): try in place */
	if (pid == 0)
		_exit(c->fn(argc, argv));
	int status = reap(pid);
	if (status < 0)
		return error("waitpid");
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	const char *sig = sigabbrev_np(WTERMSIG(status));
	say("BLOCKED killed by SIG%s", sig ? sig : "?");
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		const struct command *c = &commands[i];
		if (strcmp(argv[1], c->name))
			continue;
		if (argc - 2 < c->nargs) {
			fprintf(stderr, "usage: sbxprobe %s %s\n", c->name, c->usage);
			say("ERROR usage: %s %s", c->name, c->usage);
			return 2;
		}
		if (c->flags & IN_CHILD)
			return run_in_child(c, argc - 1, argv + 1);
		return c->fn(argc - 1, argv + 1);
	}
	return usage();
}
