/* connect.c: the container's way in at a port (agentd_sandbox_connect, the daemon's port
 * forwards) — a TCP socket its init makes in the sandbox's network namespace, connected by
 * the host to 127.0.0.1:port there.
 *
 * Why the init makes it: a socket's network namespace is the one of the task that made it,
 * so a host thread could setns() into the namespace by the init's pidfd and make it there;
 * but joining a network namespace takes CAP_SYS_ADMIN in the caller's own user namespace
 * as well, which an unprivileged agentd does not have, and joining the sandbox's user
 * namespace first is allowed to single-threaded processes only (a fork per connection).
 * The init lives in the namespace for a root and an unprivileged agentd alike and already
 * serves the host over its control socket: it makes the socket, socket() and nothing more,
 * and the host does the rest. The init shares the sandbox's namespaces, so what comes back
 * is checked as if hostile: a TCP socket of the AF_INET family, else refused. Connecting a
 * socket of the sandbox's namespace reaches only that namespace: the sandbox's network
 * policy is untouched and nothing inside gains a way out. */
#include "lib/backends/container/container.h"

#include <netinet/tcp.h>

/* An init answers at once unless its cgroup is frozen or starved of CPU by its sandbox. */
#define CONNECT_WAIT_MS 5000

/* The init's answer to op on reply: the fd it sent (want_fd) or 0, or -1 + err. */
static int recv_answer(agentd_sandbox *sb, int reply, uint32_t op, bool want_fd,
		       agentd_error *err)
{
	struct pollfd p = {.fd = reply, .events = POLLIN};
	int r;
	do
		r = poll(&p, 1, CONNECT_WAIT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return agentd_error_set(err, ETIMEDOUT, "sandbox %s: its init did not answer in "
							"%d ms", sb->id, CONNECT_WAIT_MS);
	struct ctl_msg m;
	int fds[CTL_MAX_FDS], nfds;
	ssize_t n = ctl_recv(reply, &m, fds, &nfds, MSG_DONTWAIT);
	int fd = fds[0];
	fds[0] = -1;
	ctl_close_fds(fds);
	if (n == (ssize_t)sizeof(m) && m.op == op && want_fd && nfds == 1 && fd >= 0)
		return fd;
	if (fd >= 0)
		close(fd);
	if (n == (ssize_t)sizeof(m) && m.op == op && nfds == 0 && !want_fd && m.id == 0)
		return 0;
	if (n == (ssize_t)sizeof(m) && m.op == op && nfds == 0 && m.id > 0 && m.id < 4096)
		return agentd_error_errno(err, (int)m.id, "sandbox %s: its init", sb->id);
	return agentd_error_set(err, EPROTO, "sandbox %s: its init sent no %s", sb->id,
				want_fd ? "socket" : "answer");
}

int ctr_ask_init(agentd_sandbox *sb, const struct ctl_msg *m, bool want_fd, agentd_error *err)
{
	struct ctr *c = sb->priv;
	int rp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rp) < 0)
		return agentd_error_errno(err, errno, "socketpair");
	int r = ctl_send(c->ctl, m, &rp[1], 1);
	int e = errno;
	close(rp[1]);
	if (r < 0) {
		close(rp[0]);
		return agentd_error_errno(err, e, "sandbox %s is not running", sb->id);
	}
	int fd = recv_answer(sb, rp[0], m->op, want_fd, err);
	close(rp[0]);
	return fd;
}

/* fd is a TCP socket of the AF_INET family: what the init was asked for, nothing else. */
static bool is_tcp_socket(int fd)
{
	int v[3];
	socklen_t len = sizeof(int);
	static const int opts[3] = {SO_DOMAIN, SO_TYPE, SO_PROTOCOL};
	for (int i = 0; i < 3; i++, len = sizeof(int))
		if (getsockopt(fd, SOL_SOCKET, opts[i], &v[i], &len) < 0)
			return false;
	return v[0] == AF_INET && v[1] == SOCK_STREAM && v[2] == IPPROTO_TCP;
}

int ctr_connect(agentd_sandbox *sb, uint16_t port, agentd_error *err)
{
	if (ctr_refuse_suspended(sb, err) < 0)
		return -1;
	struct ctl_msg m = {.op = OP_SOCKET};
	int fd = ctr_ask_init(sb, &m, true, err);
	if (fd < 0)
		return agentd_error_prefix(err, "a socket in its network namespace");
	if (!is_tcp_socket(fd)) {
		close(fd);
		return agentd_error_set(err, EPROTO, "sandbox %s: its init sent something other "
						     "than a TCP socket", sb->id);
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in to = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ||
	    (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0 && errno != EINPROGRESS)) {
		int e = errno;
		close(fd);
		return agentd_error_errno(err, e, "sandbox %s: connect to 127.0.0.1:%u inside",
					  sb->id, (unsigned)port);
	}
	return fd;
}
