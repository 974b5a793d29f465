/* daemon.h: `agentd serve` (src/daemon/): serve.c parses the verb's flags, server.c runs
 * the HTTP server (libmicrohttpd) and maps routes to the handlers of api/. The daemon is
 * layered as the library: store <- http <- live <- api <- this folder. */
#ifndef AGENTD_DAEMON_H
#define AGENTD_DAEMON_H

#include "daemon/api/api.h"

int agentd_serve(const struct server_cfg *cfg, agentd_error *err);

/* ------------------------------------------------------------------ peers.c
 * Admission of one listener's connections (server.c calls these from libmicrohttpd's
 * connection notifications and from the first call of each request). */
struct peers_cfg {
	bool tcp;			/* peers are IPv4 addresses, else uids (SO_PEERCRED) */
	unsigned header_timeout_ms;	/* accept to a complete (authorized) request head */
	unsigned max_connections;	/* half of them at most waiting for a request head */
	unsigned max_per_peer;
	unsigned max_waiting_per_peer;
};
struct peers;
struct sockaddr;
struct peer_conn;
struct peers *peers_new(const struct peers_cfg *cfg, agentd_error *err);
void peers_free(struct peers *p);
/* A new connection (fd valid for the call): counted, and room made or refused (answered
 * 503 and shut); the handle goes to peers_closed. */
struct peer_conn *peers_connected(struct peers *p, int fd, const struct sockaddr *addr);
/* Its request head is complete (over TCP: with the token); false if it was shut meanwhile. */
bool peers_admit(struct peers *p, struct peer_conn *c);
void peers_closed(struct peers *p, struct peer_conn *c);

/* issue 14: mcp — `agentd mcp` (mcp_main.c) and its Streamable HTTP transport (mcp_http.c),
 * also served by `agentd serve` at /mcp (the daemon's own auth before it). */
#include "mcp/mcp.h"
#include <microhttpd.h>
enum MHD_Result mcp_http_handle(struct MHD_Connection *conn, const char *method,
				const char *body, size_t len, const char *socket);
/* `agentd mcp --listen ADDR:PORT --token-file F`: until stop_fd is readable; exit code. */
/* Every MCP session ends: its calls cancelled, its sandboxes destroyed (the server stops). */
void mcp_http_stop_all(void);
/* server.c's, shared with mcp_http.c: the --token-file's token, --listen's address. */
struct sockaddr_in;
int read_token(const char *path, char **out, agentd_error *err);
int parse_listen(const char *s, struct sockaddr_in *sin, agentd_error *err);
int mcp_http_listen(const char *listen, const char *token_file, const char *socket,
		    int stop_fd);

#endif
