/* io.c: byte plumbing: small files read and written fd-relative, a whole fd read, all of a
 * buffer written (EINTR and short writes handled). */
#include "common/common.h"

#include <fcntl.h>

char *read_file_at(int dirfd, const char *path, size_t max, size_t *len_out)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return NULL;
	return read_fd_max(fd, max, len_out);
}

char *read_fd_max(int fd, size_t max, size_t *len_out)
{
	size_t cap = max < 256 ? max : 256, len = 0;
	char *buf = xmalloc(cap + 1);
	for (;;) {
		if (len == cap) {
			if (cap >= max) {
				free(buf);
				errno = EFBIG;
				return NULL;
			}
			cap = cap * 2 > max ? max : cap * 2;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			return NULL;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	if (len_out)
		*len_out = len;
	return buf;
}

int write_file_at(int dirfd, const char *path, const char *data)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	size_t len = strlen(data);
	ssize_t w = write(fd, data, len);
	if (w < 0)
		return -errno;
	if ((size_t)w != len)
		return -EIO;
	return 0;
}

/* Blank this process's copy of the argument area (fields 48-49 of /proc/self/stat: after a
 * fork it is our own copy-on-write memory, the parent keeps its argv) and put name there.
 * Syscalls only: safe in a child cloned from a multithreaded process. */

uint8_t *read_fd_all(int fd, size_t *len)
{
	size_t cap = 65536, n = 0;
	uint8_t *buf = malloc(cap + 1);
	for (;;) {
		if (!buf)
			return NULL;
		if (n == cap) {
			uint8_t *nb = realloc(buf, (cap *= 2) + 1);
			if (!nb)
				free(buf);
			buf = nb;
			continue;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0'; /* usable as text too */
	*len = n;
	return buf;
}

int write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w == 0)
			errno = EIO;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int pipe_for_splice(int p[2], size_t want, size_t *cap)
{
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	int sz = fcntl(p[1], F_SETPIPE_SZ, (int)want);
	if (sz < 0)
		sz = fcntl(p[1], F_GETPIPE_SZ);
	*cap = sz > 0 ? (size_t)sz : 65536;
	return 0;
}
