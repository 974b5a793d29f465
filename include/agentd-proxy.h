/* agentd-proxy.h: the egress proxy of network mode "allowlist", usable on its own (the
 * daemon runs one for all its sandboxes and audits every decision). */
#ifndef AGENTD_PROXY_H
#define AGENTD_PROXY_H

#include "agentd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --------------------------------------------------------- egress proxy
 * Network mode "allowlist": the sandbox keeps its own network namespace, where a listening
 * socket on 127.0.0.1:AGENTD_PROXY_PORT is its only way out. The socket is created inside the
 * sandbox and its fd held by the proxy, so every connection accepted on it belongs to that
 * sandbox and is judged by that sandbox's allowlist. The proxy speaks HTTP CONNECT,
 * absolute-URI HTTP proxying and SOCKS5 CONNECT, resolves only listed names itself, refuses
 * loopback, private, link-local, metadata and multicast addresses unless the policy lists the
 * address, checks the first bytes of a tunnel to a name (TLS: the SNI must be the name;
 * HTTP/1.x: Host is set to it), and logs every decision. One proxy (one thread, epoll) serves
 * any number of sandboxes, each with a guaranteed share of connections and of name lookups. */
#define AGENTD_PROXY_PORT 3128

typedef enum agentd_netlog_event {
	AGENTD_NETLOG_ALLOWED = 1,	/* connecting to the target (reason: the allowlist entry) */
	AGENTD_NETLOG_DENIED,		/* refused (reason: why); the sandbox got 403/400/502 */
	AGENTD_NETLOG_CLOSED,		/* an allowed connection ended (reason: how) */
} agentd_netlog_event;

typedef struct agentd_netlog {
	agentd_netlog_event event;
	const char *sandbox_id;
	const char *method;		/* "CONNECT", "GET"...; "" when no request was parsed */
	const char *host;		/* target as the sandbox asked for it; "" when unknown */
	uint16_t port;
	const char *address;		/* the address connected to (or refused), "" when none */
	const char *reason;
	uint64_t bytes_up;		/* sandbox → target, payload only */
	uint64_t bytes_down;		/* target → sandbox */
	uint64_t duration_ms;		/* since the sandbox connected to the proxy */
} agentd_netlog;
/* Called on the proxy thread for each event: must be quick and must not block (queue the
 * record for an audit log); the strings live only for the call. */
typedef void (*agentd_netlog_cb)(void *userdata, const agentd_netlog *ev);

typedef struct agentd_proxy_config {
	uint32_t max_connections;	/* 0 = 1024 (two fds each); more are refused */
	uint32_t max_per_sandbox;	/* 0 = 256; besides, each sandbox is guaranteed
					 * min(16, max_connections / sandboxes): others take
					 * a connection only while that many stay free for it */
	uint32_t buffer_bytes;		/* in flight per direction and connection (a pipe that
					 * splice() fills, pages taken as needed), 0 = 256 KiB:
					 * what a slow reader can pin in the host's memory */
	uint32_t header_timeout_ms;	/* request header (and ClientHello) within, 0 = 10 s */
	uint32_t connect_timeout_ms;	/* TCP connect, 0 = 10 s */
	uint32_t idle_timeout_ms;	/* no byte either way, 0 = 300 s */
	uint32_t resolver_threads;	/* getaddrinfo workers, started as needed, 0 = 64 */
	agentd_netlog_cb on_log;	/* NULL = one line per event on stderr */
	void *log_userdata;
	uint32_t silent_timeout_ms;	/* a connection's first byte within, 0 = 5 s */
	uint32_t lookup_timeout_ms;	/* a name's answer within, 0 = 5 s */
	uint32_t max_lookups_per_sandbox; /* name lookups in flight, 0 = 4; more wait in the
					 * sandbox's own queue, sandboxes are served in turn */
} agentd_proxy_config;

/* Start the proxy thread (cfg may be NULL for the defaults). Raises this process's
 * RLIMIT_NOFILE soft limit towards the hard one to fit max_connections. */
agentd_proxy *agentd_proxy_start(const agentd_proxy_config *cfg, agentd_error *err);
/* Serve a sandbox: listen_fd (a listening TCP socket, taken over: closed by the proxy) with
 * the allowlist (entries as in agentd_network.allow, validated here). listen_fd -1: the
 * sandbox has no listener; its connections come through agentd_proxy_add_connection. */
int agentd_proxy_add_sandbox(agentd_proxy *p, int listen_fd, const char *sandbox_id,
			     const agentd_strv *allow, agentd_error *err);
/* Close the sandbox's listener and every connection it has open; returns once done. */
void agentd_proxy_remove_sandbox(agentd_proxy *p, const char *sandbox_id);
/* issue 12: names. Replace the sandbox's allowlist (validated as at add; on error nothing
 * changes). Every connection of the sandbox is judged again by the new list at once, as a
 * new one would be, and closed when it no longer passes (logged as closed or denied:
 * "no longer allowed"); requests still being read are judged by the new list. ENOENT for a
 * sandbox the proxy does not serve. Returns once done. */
int agentd_proxy_set_allowlist(agentd_proxy *p, const char *sandbox_id, const agentd_strv *allow,
			       agentd_error *err);
/* issue 15: vm-map. fd (a connected stream socket, taken over) is a connection from the
 * served sandbox sandbox_id, as if accepted on its listener: judged by its allowlist, logged
 * as its own, counted in its share. A micro-VM has no socket on the host: each connection
 * its guest makes to 127.0.0.1:AGENTD_PROXY_PORT comes as one end of a socketpair whose
 * other end carries the guest channel. ENOENT for a sandbox the proxy does not serve. */
int agentd_proxy_add_connection(agentd_proxy *p, const char *sandbox_id, int fd,
				agentd_error *err);
/* Close everything and join the thread. Safe on NULL. */
void agentd_proxy_stop(agentd_proxy *p);
#ifdef __cplusplus
}
#endif
#endif
