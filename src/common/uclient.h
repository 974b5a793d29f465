/* uclient.h: the HTTP/1.1 client of the daemon API over its unix socket (uclient.c), shared
 * by the CLI and `agentd mcp`. */
#ifndef AGENTD_UCLIENT_H
#define AGENTD_UCLIENT_H

#include "common/common.h"

struct client_conn {
	int fd;
	char *buf;
	size_t len, off, cap;
};
struct http_response {
	int status;
	char *body;			/* NUL-terminated */
	size_t len;
	size_t line_off;		/* on_line bookkeeping */
};
int client_connect(const char *path, struct client_conn *c, agentd_error *err);
void client_close(struct client_conn *c);
/* One request on a kept-alive connection; on_line (may be NULL) gets each body line as it
 * arrives (NDJSON streaming). */
int client_request(struct client_conn *c, const char *method, const char *path,
		   const char *ctype, const void *body, size_t len, struct http_response *resp,
		   void (*on_line)(void *, const char *, size_t), void *ud, agentd_error *err);
void http_response_free(struct http_response *r);
char *url_escape(const char *s);	/* for query values; malloc'd */

#endif
