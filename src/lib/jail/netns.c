/* netns.c: a sandbox's empty network namespace (loopback up, nothing else), made on a
 * second thread while the creating thread builds the rest of the sandbox.
 *
 * copy_net_ns is the largest single cost of starting a sandbox (~0.3 ms here: sysctl
 * tables, loopback registration, under a global lock) and it needs nothing from the rest
 * of the setup, so it runs in parallel with the mount plan, the seccomp program and the
 * cgroup. The sandbox's init is then cloned without CLONE_NEWNET from inside the
 * namespace (setns before clone3, back after) and inherits it.
 *
 * The namespace is made by host root, so it belongs to the initial user namespace: the
 * sandbox, whose capabilities exist only in its own user namespace, can never reconfigure
 * it (no interface, route, address or sysctl change, no raw socket). It lives as long as
 * a process is in it: nothing is mounted or left behind. */
#include "lib/jail/jail.h"

#include "common/kernel.h"

#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

int netns_loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	int r = 0;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		r = -errno;
	} else {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			r = -errno;
	}
	close(s);
	return r;
}

int netns_listener_send(int sock, uint16_t port, const void *msg, size_t len)
{
	return netns_listener_send_keep(sock, port, msg, len, NULL);
}

int netns_listener_send_keep(int sock, uint16_t port, const void *msg, size_t len, int *keep)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct sockaddr_in in = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	/* A listener made again after a switch to none (issue 12) binds past the connections
	 * the proxy closed, in TIME_WAIT; one a process of the sandbox listens on still
	 * refuses it (EADDRINUSE). */
	int one = 1, r = 0;
	if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(s, (struct sockaddr *)&in, sizeof(in)) < 0 || listen(s, 4096) < 0 ||
	    fds_send(sock, msg, len, &s, 1) < 0)
		r = -errno;
	if (r == 0 && keep)
		*keep = s;
	else
		close(s);
	return r;
}

int netns_socket_send(int sock, const void *msg, size_t len)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (s < 0)
		return -errno;
	int r = fds_send(sock, msg, len, &s, 1) < 0 ? -errno : 0;
	close(s);
	return r;
}

/* Network namespaces are per task: unshare() here moves only this thread, which then
 * exits; the fd it opened keeps the namespace alive. */
static void *maker_main(void *arg)
{
	struct netns_maker *m = arg;
	int r;
	if (unshare(CLONE_NEWNET) < 0) {
		m->err = errno;
		return NULL;
	}
	if ((r = netns_loopback_up()) < 0) {
		m->err = -r;
		return NULL;
	}
	m->fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (m->fd < 0)
		m->err = errno;
	return NULL;
}

int netns_make_start(struct netns_maker *m)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (geteuid() != 0)
		return -1; /* an unprivileged caller gets its namespace from clone3 itself */
	/* The maker takes no signals: a handler must not run in the wrong namespace. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&m->thread, NULL, maker_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		return -1;
	m->started = true;
	return 0;
}

int netns_make_finish(struct netns_maker *m, agentd_error *err)
{
	if (!m->started)
		return agentd_error_set(err, ENOTSUP, "no network namespace maker");
	pthread_join(m->thread, NULL);
	m->started = false;
	if (m->fd < 0)
		return agentd_error_errno(err, m->err ? m->err : EIO,
					  "create the network namespace");
	int fd = m->fd;
	m->fd = -1;
	return fd;
}

void netns_make_cancel(struct netns_maker *m)
{
	if (m->started) {
		pthread_join(m->thread, NULL);
		m->started = false;
	}
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

int netns_enter_for_clone(int netfd, int *saved)
{
	*saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*saved < 0)
		return -1;
	if (setns(netfd, CLONE_NEWNET) < 0) {
		int e = errno;
		close(*saved);
		*saved = -1;
		errno = e;
		return -1;
	}
	return 0;
}

void netns_leave_after_clone(int saved)
{
	if (saved < 0)
		return;
	/* Cannot fail for our own namespace short of a kernel bug; a thread left in a
	 * sandbox's namespace would give the next "network: host" sandbox the wrong one. */
	if (setns(saved, CLONE_NEWNET) < 0) {
		fprintf(stderr, "agentd: cannot return to the host network namespace: %s\n",
			strerror(errno));
		abort();
	}
	close(saved);
}

/* issue 16: rt-egress */
int netns_loopback_listener(int netfd, uint16_t port, char *others, size_t len)
{
	int saved, r = 0, s = -1;
	if (len)
		others[0] = 0;
	if (netns_enter_for_clone(netfd, &saved) < 0)
		return -errno;
	struct if_nameindex *ifs = if_nameindex();
	if (!ifs) {
		r = -errno;
		goto out;
	}
	size_t off = 0;
	for (struct if_nameindex *i = ifs; i->if_index; i++)
		if (strcmp(i->if_name, "lo")) {
			r = -EEXIST;
			if (len > off + 1)
				off += (size_t)snprintf(others + off, len - off, "%s%s",
							off ? ", " : "", i->if_name);
			off = off < len ? off : len;
		}
	if_freenameindex(ifs);
	if (r < 0 || (r = netns_loopback_up()) < 0)
		goto out;
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in in = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (s < 0 || bind(s, (struct sockaddr *)&in, sizeof(in)) < 0 || listen(s, 4096) < 0)
		r = -errno;
out:
	netns_leave_after_clone(saved);
	if (r < 0 && s >= 0)
		close(s);
	return r < 0 ? r : s;
}

/* issue 16: rt-egress. fsopen/fsconfig/fsmount (5.2) by number: glibc 2.36 wraps them only
 * with <sys/mount.h>'s newer header set. */
#define FSCONFIG_CMD_CREATE_ 6
#define FSMOUNT_CLOEXEC_ 1
int netns_sysfs_tree(int netfd, uint64_t attr)
{
	int saved, r = -1, fs = -1;
	if (netns_enter_for_clone(netfd, &saved) < 0)
		return -errno;
	/* sysfs shows the network namespace of the task that makes its context */
	fs = (int)syscall(SYS_fsopen, "sysfs", 1u /* FSOPEN_CLOEXEC */);
	if (fs >= 0 && syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE_, NULL, NULL, 0) == 0)
		r = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC_, (unsigned)attr);
	r = r < 0 ? -errno : r;
	if (fs >= 0)
		close(fs);
	netns_leave_after_clone(saved);
	return r;
}
