/* ctl.c: the control protocol between the host and a sandbox's init, defined once: a
 * message (op, id) with fds attached over a SOCK_SEQPACKET pair, and the exec payload (argv,
 * envp, cwd in a memfd). The init's half runs without malloc; the payload comes from the
 * host (trusted) but is parsed as if it were not. */
#include "lib/backends/container/container.h"

int ctl_send(int sock, const struct ctl_msg *m, const int *fds, int nfds)
{
	return fds_send(sock, m, sizeof(*m), fds, nfds);
}

ssize_t ctl_recv(int sock, struct ctl_msg *m, int fds[CTL_MAX_FDS], int *nfds, int flags)
{
	return ctl_recv_any(sock, m, sizeof(*m), fds, nfds, flags);
}

int ctl_take_masked(uint32_t mask, int n, int fds[], int *got, int ngot)
{
	int want = 0;
	for (int i = 0; i < n; i++)
		want += (mask >> i) & 1;
	for (int i = 0; i < n; i++)
		fds[i] = -1;
	if (want != ngot || (mask >> n)) {
		for (int i = 0; i < ngot; i++)
			if (got[i] >= 0) {
				close(got[i]);
				got[i] = -1;
			}
		return -1;
	}
	for (int i = 0, k = 0; i < n; i++)
		if (mask & (1u << i)) {
			fds[i] = got[k];
			got[k++] = -1;
		}
	return 0;
}

ssize_t ctl_recv_any(int sock, void *buf, size_t len, int fds[CTL_MAX_FDS], int *nfds,
		     int flags)
{
	char cbuf[CMSG_SPACE(CTL_MAX_FDS * sizeof(int))];
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	*nfds = 0;
	for (int i = 0; i < CTL_MAX_FDS; i++)
		fds[i] = -1;
	ssize_t n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int cnt = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < cnt; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*nfds < CTL_MAX_FDS)
				fds[*nfds] = fd;
			else
				close(fd);
			(*nfds)++;
		}
	}
	return n;
}

void ctl_close_fds(int fds[CTL_MAX_FDS])
{
	for (int i = 0; i < CTL_MAX_FDS; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* Payload layout: u32 argc, u32 envc, then cwd, argv[], envp[] as NUL-terminated strings. */
int exec_payload_encode(char *const *argv, char *const *envp, const char *cwd,
			agentd_error *err)
{
	uint32_t argc = 0, envc = 0;
	size_t len = 8 + strlen(cwd) + 1;
	for (; argv[argc]; argc++)
		len += strlen(argv[argc]) + 1;
	for (; envp[envc]; envc++)
		len += strlen(envp[envc]) + 1;
	if (len > MAX_PAYLOAD)
		return agentd_error_set(err, E2BIG, "argument list too long (%zu bytes)", len);
	_cleanup_close_ int mfd = memfd_create("agentd-exec", MFD_CLOEXEC);
	if (mfd < 0)
		return agentd_error_errno(err, errno, "memfd_create");
	_cleanup_free_ char *buf = xmalloc(len);
	char *p = buf;
	memcpy(p, &argc, 4);
	memcpy(p + 4, &envc, 4);
	p += 8;
	p = stpcpy(p, cwd) + 1;
	for (uint32_t i = 0; i < argc; i++)
		p = stpcpy(p, argv[i]) + 1;
	for (uint32_t i = 0; i < envc; i++)
		p = stpcpy(p, envp[i]) + 1;
	if (write_all(mfd, buf, len) < 0)
		return agentd_error_errno(err, errno, "write exec request");
	return take_fd(&mfd);
}

int exec_payload_decode(int fd, struct exec_payload *pl, const char **why)
{
	struct stat st;
	memset(pl, 0, sizeof(*pl));
	pl->map = pl->ptrs = MAP_FAILED;
	*why = "bad exec request";
	if (fstat(fd, &st) < 0 || st.st_size < 8 || st.st_size > MAX_PAYLOAD)
		return -EINVAL;
	pl->map_len = (size_t)st.st_size;
	pl->map = mmap(NULL, pl->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (pl->map == MAP_FAILED) {
		*why = "map exec request";
		return -errno;
	}
	const char *p = pl->map, *end = p + st.st_size;
	uint32_t argc, envc;
	memcpy(&argc, p, 4);
	memcpy(&envc, p + 4, 4);
	p += 8;
	if (argc < 1 || argc > 1u << 20 || envc > 1u << 20 || end[-1] != '\0')
		return -EINVAL;
	pl->ptrs_len = ((size_t)argc + envc + 2) * sizeof(char *);
	pl->ptrs = mmap(NULL, pl->ptrs_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	if (pl->ptrs == MAP_FAILED) {
		*why = "map exec request";
		return -errno;
	}
	pl->argv = pl->ptrs;
	pl->envp = pl->argv + argc + 1;
	pl->cwd = p;
	p += strlen(p) + 1;
	for (uint32_t i = 0; i < argc + envc; i++) {
		if (p >= end)
			return -EINVAL;
		if (i < argc)
			pl->argv[i] = (char *)p;
		else
			pl->envp[i - argc] = (char *)p;
		p += strlen(p) + 1;
	}
	pl->argv[argc] = NULL;
	pl->envp[envc] = NULL;
	return 0;
}

void exec_payload_release(struct exec_payload *pl)
{
	if (pl->ptrs != MAP_FAILED && pl->ptrs)
		munmap(pl->ptrs, pl->ptrs_len);
	if (pl->map != MAP_FAILED && pl->map)
		munmap(pl->map, pl->map_len);
	pl->ptrs = pl->map = MAP_FAILED;
}
