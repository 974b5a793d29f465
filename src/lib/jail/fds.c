/* fds.c: closing every inherited file descriptor before a sandboxed command starts (a
 * leaked fd is a way out of any sandbox, CVE-2024-21626, so this never fails open), fds at
 * fixed numbers for a sandbox's init, and fds passed over a unix socket. */
#include "lib/jail/jail.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/socket.h>
#include <sys/syscall.h>

int fds_close_from(int lowfd)
{
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
		return 0;
	/* Kernels before 5.9: walk /proc/self/fd with raw getdents so no malloc is needed
	 * after fork. */
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	char buf[4096];
	for (;;) {
		long n = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
		if (n < 0) {
			int e = errno;
			close(dfd);
			return -e;
		}
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (void *)(buf + off);
			off += d->reclen;
			if (d->name[0] < '0' || d->name[0] > '9')
				continue;
			int fd = atoi(d->name);
			if (fd >= lowfd && fd != dfd)
				close(fd);
		}
	}
	close(dfd);
	return 0;
}

int fds_send(int sock, const void *msg, size_t len, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(FDS_SEND_MAX * sizeof(int))];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int))};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	if (!cm || nfds < 1 || nfds > FDS_SEND_MAX) {
		errno = EINVAL;
		return -1;
	}
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Move fd to exactly to (no collision: every fd to place was moved high first). */
static int place_one(int fd, int to)
{
	if (fd == to)
		return 0;
	if (dup3(fd, to, O_CLOEXEC) < 0)
		return -errno;
	close(fd);
	return 0;
}

int fds_place(const struct fd_move *mv, int n, int close_from, int *moved_report)
{
	int high[FDS_PLACE_MAX];
	if (n > FDS_PLACE_MAX)
		return -EINVAL;
	/* stdio is /dev/null: nothing a process writes there reaches anyone. */
	int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd < 0 || dup2(nullfd, 0) < 0 || dup2(nullfd, 1) < 0 || dup2(nullfd, 2) < 0)
		return -errno;
	if (nullfd > 2)
		close(nullfd);
	/* First all above every target, then each to its number. */
	for (int i = 0; i < n; i++)
		if ((high[i] = fcntl(mv[i].fd, F_DUPFD_CLOEXEC, 100)) < 0)
			return -errno;
	for (int i = 0; i < n; i++) {
		int r = place_one(high[i], mv[i].to);
		if (r < 0)
			return r;
		if (moved_report && mv[i].fd == *moved_report)
			*moved_report = mv[i].to;
	}
	/* Everything else goes, the gaps below close_from too. */
	for (int fd = 3; fd < close_from; fd++) {
		bool kept = false;
		for (int i = 0; i < n; i++)
			kept |= mv[i].to == fd;
		if (!kept)
			close(fd);
	}
	return fds_close_from(close_from);
}
