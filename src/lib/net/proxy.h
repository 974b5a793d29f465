/* proxy.h: what the egress proxy's files share — the connection table, listeners and the
 * command queue of one agentd_proxy. Private to proxy.c and proxy_api.c. */
#ifndef AGENTD_NET_PROXY_H
#define AGENTD_NET_PROXY_H

#include "lib/net/net.h"

#include <netinet/in.h>
#include <pthread.h>

enum { TAG_WAKE = 0, TAG_LISTENER = 1, TAG_CLIENT = 2, TAG_UPSTREAM = 3 };
#define TAG(kind, slot, gen) ((uint64_t)(gen) << 32 | (uint64_t)(slot) << 2 | (kind))
#define TICK_MS 250
/* Connections each sandbox is sure to get, however busy the others are (fewer when the
 * table cannot hold that many for every sandbox). */
#define PROXY_GUARANTEED_CONNS 16
/* Memory part of each direction: a request header and its rewrite, or a ClientHello record,
 * fit; bulk data goes through the pipe (cfg.buffer_bytes). */
#define PROXY_MEM_BUF (64u << 10)

enum conn_state { ST_HEADER, ST_RESOLVE, ST_CONNECT, ST_RELAY };

struct listener {
	uint32_t slot, gen;
	int fd; /* -1: connections come only through agentd_proxy_add_connection */
	char id[AGENTD_ID_LEN];
	struct netpolicy np;
	uint32_t nconns; /* open connections from this sandbox */
};

/* A connection as the resolver knows it: slot and generation. */
#define conn_tag(p, c) ((uint64_t)(c)->gen << 32 | (uint32_t)((c) - (p)->conns))

/* The resolver's name for a listener's lookups (its owner): unique while it lives. */
static inline uint64_t listener_key(const struct listener *l)
{
	return (uint64_t)l->slot << 32 | l->gen;
}

/* One direction's pending bytes: first those in the memory buffer (headers, a ClientHello
 * under inspection), then those in the pipe that splice() moves without copying. */
struct buf {
	uint8_t *p;
	size_t off, len; /* pending bytes are p[off..len) */
	int pipe[2];	 /* -1 until the first splice */
	size_t plen;	 /* bytes in the pipe */
	size_t pipe_cap;
	bool no_splice; /* splice refused (EINVAL): memory only */
};

struct conn {
	bool used;
	uint32_t gen;
	enum conn_state state;
	struct listener *l;
	int cfd, ufd;
	uint32_t cev, uev;   /* epoll interest currently registered */
	struct buf up, down; /* client → upstream, upstream → client */
	bool ceof, ueof;     /* read side reached EOF */
	bool cshut, ushut;   /* we shut down our write side towards it */
	bool inspect_pending; /* tunnel to a name: its first bytes are judged before any goes
			       * out (a ClientHello, an HTTP request, or neither) */
	bool lookup_pending; /* the resolver has its name (ST_RESOLVE) */
	bool first_line_done; /* inspect_pending: an LF or NUL has come */
	uint8_t socks;	     /* 0 HTTP; SOCKS5: 1 greeting answered, 2 request read,
			      * 3 greeting refused */
	struct http_request req;
	const struct np_entry *by; /* entry that allowed it */
	const struct np_entry *by_name;
	struct resolved_addr addrs[8];
	size_t naddrs, next_addr;
	char addr[INET6_ADDRSTRLEN];
	uint64_t t0, deadline;
	uint64_t bytes_up, bytes_down;
};

struct cmd {
	enum { CMD_ADD, CMD_REMOVE, CMD_STOP, CMD_SET, CMD_CONN } op; /* CMD_SET: issue 12;
								       * CMD_CONN: issue 15 */
	int fd;
	const char *id;
	const agentd_strv *allow;
	agentd_error *err;
	int result;
	bool done;
	struct cmd *next;
};

struct agentd_proxy {
	agentd_proxy_config cfg;
	int ep, wake;
	pthread_t thread;
	struct resolver *res;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct cmd *cmds;
	struct conn *conns;
	size_t nconns, used_conns;
	uint32_t *free_slots;
	size_t nfree;
	struct listener **ls; /* by slot; NULL = free */
	uint32_t *ls_gen;     /* per slot, survives the listener (stale events) */
	size_t nls;
	size_t nlisteners; /* live ones: the sandboxes served */
	bool listeners_paused;
	bool stopping;
};

/* proxy.c, called by the loop in proxy_api.c */
void proxy_log_line(void *ud, const agentd_netlog *ev);
void proxy_conn_close(struct agentd_proxy *p, struct conn *c, const char *how);
void proxy_on_resolved(struct agentd_proxy *p, const struct resolve_result *r);
void proxy_sweep(struct agentd_proxy *p, uint64_t now);
void proxy_dispatch(struct agentd_proxy *p, uint64_t tag, uint32_t events);
/* issue 15: vm-map. fd (taken) as a client connection of l's sandbox. */
void proxy_take_client(struct agentd_proxy *p, struct listener *l, int fd);

/* Shared by proxy.c, proxy_connect.c and proxy_relay.c. */
void proxy_emit(struct agentd_proxy *p, struct conn *c, agentd_netlog_event e, const char *reason);
void proxy_update_interest(struct agentd_proxy *p, struct conn *c);
void proxy_conn_deny(struct agentd_proxy *p, struct conn *c, int status, const char *reason);
size_t proxy_room(const struct agentd_proxy *p, const struct buf *b);
bool proxy_pending(const struct buf *b);
void proxy_decide(struct agentd_proxy *p, struct conn *c);
void proxy_inspect_tunnel(struct agentd_proxy *p, struct conn *c);
void proxy_connected(struct agentd_proxy *p, struct conn *c);	/* the target accepted */
void proxy_on_header_data(struct agentd_proxy *p, struct conn *c);
void proxy_relay(struct agentd_proxy *p, struct conn *c, bool from_client, uint32_t events);
/* issue 12: names. c (of a listener whose allowlist is being replaced by np) judged again:
 * true, with its entries pointing into np, when np still allows what it was allowed. */
bool proxy_rejudge(const struct netpolicy *np, struct conn *c);

#endif
