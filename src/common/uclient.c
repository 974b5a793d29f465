/* uclient.c: a small HTTP/1.1 client of the daemon API over its unix socket (we control
 * both ends: Content-Length requests, Content-Length or chunked responses), keep-alive, and
 * NDJSON lines delivered as they arrive for streaming execs. Used by the CLI and `agentd mcp`. */
#include "common/uclient.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int client_connect(const char *path, struct client_conn *c, agentd_error *err)
{
	memset(c, 0, sizeof(*c));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return agentd_error_set(err, ENAMETOOLONG, "socket path %s: too long", path);
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		return agentd_error_set(err, e, "connect to the daemon at %s: %s (is `agentd serve` "
					"running? --socket or $AGENTD_SOCKET)", path, strerror(e));
	}
	return 0;
}

void client_close(struct client_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
}

/* Make sure at least n bytes are buffered past off; 0, or -1 on EOF/error. */
static int fill(struct client_conn *c, size_t n)
{
	while (c->len - c->off < n) {
		if (c->off && c->off == c->len)
			c->off = c->len = 0;
		if (c->len + 65536 > c->cap) {
			c->cap = c->len + 65536 + c->cap;
			c->buf = realloc(c->buf, c->cap + 1);
		}
		ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
	return 0;
}

/* Offset of the end of the next CRLF-terminated line from off, filling as needed. */
static ssize_t line_end(struct client_conn *c)
{
	for (size_t scanned = 0;;) {
		char *p = c->len > c->off + scanned
				  ? memmem(c->buf + c->off + scanned, c->len - c->off - scanned, "\r\n", 2)
				  : NULL;
		if (p)
			return p - c->buf;
		scanned = c->len - c->off > 0 ? c->len - c->off - 1 : 0;
		if (c->len - c->off > (1u << 20) || fill(c, c->len - c->off + 1) < 0)
			return -1;
	}
}

/* Body bytes: appended to resp, and split into lines for on_line when given. */
static void body_bytes(struct http_response *resp, const char *p, size_t n,
		       void (*on_line)(void *, const char *, size_t), void *ud)
{
	resp->body = realloc(resp->body, resp->len + n + 1);
	memcpy(resp->body + resp->len, p, n);
	resp->len += n;
	resp->body[resp->len] = '\0';
	if (!on_line)
		return;
	char *nl;
	while ((nl = memchr(resp->body + resp->line_off, '\n', resp->len - resp->line_off))) {
		on_line(ud, resp->body + resp->line_off, (size_t)(nl - resp->body - resp->line_off));
		resp->line_off = (size_t)(nl - resp->body) + 1;
	}
}

int client_request(struct client_conn *c, const char *method, const char *path,
		   const char *ctype, const void *body, size_t len, struct http_response *resp,
		   void (*on_line)(void *, const char *, size_t), void *ud, agentd_error *err)
{
	memset(resp, 0, sizeof(*resp));
	char head[8192];
	int n = snprintf(head, sizeof(head),
			 "%s %s HTTP/1.1\r\nHost: agentd\r\nContent-Length: %zu\r\n%s%s%s\r\n",
			 method, path, len, ctype ? "Content-Type: " : "", ctype ? ctype : "",
			 ctype ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head))
		return agentd_error_set(err, E2BIG, "request path too long");
	/* The daemon may answer before it read the whole body (413 past its limit, a bad
	 * path) and close: the send then fails (EPIPE), but its answer is there to read, and
	 * it, not "Broken pipe", is what the user must see. */
	int send_errno = 0;
	if (write_all(c->fd, head, (size_t)n) < 0 || (len && write_all(c->fd, body, len) < 0))
		send_errno = errno;
	ssize_t e = line_end(c);
	if (e < 0 || sscanf(c->buf + c->off, "HTTP/1.%*d %d", &resp->status) != 1) {
		if (send_errno)
			return agentd_error_set(err, send_errno, "send to the daemon: %s",
						strerror(send_errno));
		return agentd_error_set(err, EPROTO, "the daemon closed the connection or sent no "
					"HTTP status");
	}
	c->off = (size_t)e + 2;
	long long clen = -1;
	bool chunked = false;
	for (;;) {
		if ((e = line_end(c)) < 0)
			return agentd_error_set(err, EPROTO, "truncated response headers");
		char *l = c->buf + c->off;
		size_t ll = (size_t)e - c->off;
		c->off = (size_t)e + 2;
		if (ll == 0)
			break;
		l[ll] = '\0';
		if (!strncasecmp(l, "Content-Length:", 15))
			clen = strtoll(l + 15, NULL, 10);
		else if (!strncasecmp(l, "Transfer-Encoding:", 18) && strcasestr(l, "chunked"))
			chunked = true;
	}
	if (!chunked) {
		if (clen < 0)
			return agentd_error_set(err, EPROTO, "response without a length");
		if (fill(c, (size_t)clen) < 0)
			return agentd_error_set(err, EPROTO, "truncated response body");
		body_bytes(resp, c->buf + c->off, (size_t)clen, on_line, ud);
		c->off += (size_t)clen;
		return 0;
	}
	for (;;) {
		if ((e = line_end(c)) < 0)
			return agentd_error_set(err, EPROTO, "truncated chunked body");
		size_t sz = strtoul(c->buf + c->off, NULL, 16);
		c->off = (size_t)e + 2;
		if (sz == 0) {
			while ((e = line_end(c)) >= 0 && (size_t)e != c->off) /* trailers */
				c->off = (size_t)e + 2;
			if (e >= 0)
				c->off += 2;
			return 0;
		}
		if (fill(c, sz + 2) < 0)
			return agentd_error_set(err, EPROTO, "truncated chunk");
		body_bytes(resp, c->buf + c->off, sz, on_line, ud);
		c->off += sz + 2;
	}
}

void http_response_free(struct http_response *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

char *url_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *o = malloc(strlen(s) * 3 + 1), *q = o;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-_.~/", *p)) {
			*q++ = (char)*p;
		} else {
			*q++ = '%';
			*q++ = hex[*p >> 4];
			*q++ = hex[*p & 15];
		}
	}
	*q = '\0';
	return o;
}
