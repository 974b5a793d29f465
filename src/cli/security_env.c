/* security_env.c: the host side of `agentd probe --security` — the probe helper found, and
 * what the attacks aim at (a directory with a secret, sockets, a listener, a leaked fd, a
 * block device, agentd's own process) set up before the table runs and removed after. */
#include "cli/cli.h"
#include "cli/security.h"

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
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ------------------------------------------------------------ sbxprobe */

static bool executable(const char *p)
{
	return access(p, X_OK) == 0;
}

/* $AGENTD_SBXPROBE, else tests/sbxprobe next to the binary (a build tree), else
 * <prefix>/libexec/agentd/sbxprobe for an installed <prefix>/bin/agentd. */
/* out: PATH_MAX bytes (realpath). */
bool find_sbxprobe(char *out, char *looked, size_t ln)
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

/* issue 13: oci-engine. The host's container engine API socket (whoever reaches it is root
 * on the host): $DOCKER_HOST's or $CONTAINER_HOST's unix path, else the usual places. */
static void first_engine_socket(char *out, size_t n)
{
	static const char *const places[] = {"/run/docker.sock", "/var/run/docker.sock",
					     "/run/podman/podman.sock",
					     "/run/containerd/containerd.sock"};
	const char *env[] = {getenv("DOCKER_HOST"), getenv("CONTAINER_HOST")};
	struct stat st;
	out[0] = '\0';
	for (size_t i = 0; i < 2; i++)
		if (env[i] && !strncmp(env[i], "unix://", 7) && stat(env[i] + 7, &st) == 0 &&
		    S_ISSOCK(st.st_mode)) {
			snprintf(out, n, "%s", env[i] + 7);
			return;
		}
	for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++)
		if (stat(places[i], &st) == 0 && S_ISSOCK(st.st_mode)) {
			snprintf(out, n, "%s", places[i]);
			return;
		}
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

int env_setup(struct sec_env *e, agentd_error *err)
{
	memset(e, 0, sizeof(*e));
	e->tcp_fd = e->abstract_fd = e->unix_fd = e->leaked_fd = e->shm_id = -1;
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

	/* A host SysV shared memory segment any uid may read (0644), as a careless host
	 * program leaves one: only an IPC namespace or the filter keeps a sandbox out. */
	e->shm_id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0644);
	snprintf(e->shmid, sizeof(e->shmid), "%d", e->shm_id);

	/* Deliberately without O_CLOEXEC: the exec engine must close it. */
	e->leaked_fd = open(e->tmp, O_RDONLY | O_DIRECTORY);
	snprintf(e->fd, sizeof(e->fd), "%d", e->leaked_fd);

	ssize_t n = readlink("/proc/self/exe", e->agentd, sizeof(e->agentd) - 1);
	e->agentd[n > 0 ? n : 0] = '\0';
	const char *home = getenv("HOME");
	struct passwd *pw = home && *home ? NULL : getpwuid(geteuid());
	snprintf(e->home, sizeof(e->home), "%s", home && *home ? home : pw ? pw->pw_dir : "/root");
	first_block_device(e->blockdev, sizeof(e->blockdev));
	first_engine_socket(e->enginesock, sizeof(e->enginesock));
	snprintf(e->state, sizeof(e->state), "%s", agentd_default_work_root());
	char *slash = strrchr(e->state, '/');
	if (slash && slash != e->state)
		*slash = '\0'; /* the work root's parent: the rootfs cache's too */

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

void env_cleanup(struct sec_env *e)
{
	int fds[] = {e->tcp_fd, e->abstract_fd, e->unix_fd, e->leaked_fd};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (e->tmp[0])
		nftw(e->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (e->shm_id >= 0)
		shmctl(e->shm_id, IPC_RMID, NULL);
	if (e->old_comm[0])
		prctl(PR_SET_NAME, e->old_comm, 0, 0, 0);
}

void expand(const struct sec_env *e, const char *tpl, char *out, size_t n)
{
	static const char *const keys[] = {"{tmp}",  "{token}",	   "{pid}",   "{agentd}",
					   "{home}", "{blockdev}", "{port}",  "{abstract}",
					   "{fd}",   "{comm}",	   "{shmid}", "{state}",
					   "{enginesock}"};
	const char *vals[] = {e->tmp,  e->token,    e->pid, e->agentd,	 e->home,  e->blockdev,
			      e->port, e->abstract, e->fd,  e->comm_hex, e->shmid, e->state,
			      e->enginesock};
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
