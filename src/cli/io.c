/* io.c: the byte plumbing the verbs share — read a whole fd (stdin for run -i, sandbox exec
 * --stdin, cp and session exec -), write all of a buffer. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

uint8_t *cli_read_fd(int fd, size_t *len)
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

int cli_write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}
