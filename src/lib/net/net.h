/* net.h: the egress allowlist (src/lib/net/): entries and matching, the pure parsers of
 * what a sandbox sends its proxy, and the resolver threads. The proxy itself is public
 * (agentd-proxy.h); its files share proxy.h. Includes only common/. */
#ifndef AGENTD_NET_H
#define AGENTD_NET_H

#include "common/common.h"
#include "agentd-proxy.h"

#include <pthread.h>


/* ---------------------------------------------------------------- netpolicy.c
 * The egress allowlist of network mode "allowlist": parsed entries, matching, and the
 * address classes a listed *name* may never lead to (DNS rebinding, metadata, private
 * ranges) unless the address itself is listed. */
enum np_kind { NP_NAME, NP_SUFFIX, NP_CIDR };
struct np_entry {
	enum np_kind kind;
	char name[254];			/* NAME: the host; SUFFIX: the domain after "*."; lower case */
	int af;				/* CIDR: AF_INET (IPv4-mapped IPv6 is stored as IPv4) or AF_INET6 */
	uint8_t addr[16];		/* CIDR: network address, host bits cleared */
	unsigned prefix;
	uint16_t port;			/* 0 = any port (CIDR without ":port") */
	char text[96];			/* the entry as written (for logs), cut */
};
struct netpolicy {
	struct np_entry *v;
	size_t n;
	bool has_cidr;			/* some entry is an address or a range */
};
enum net_addr_class {
	NET_ADDR_PUBLIC = 0,
	NET_ADDR_LOOPBACK,
	NET_ADDR_PRIVATE,		/* RFC 1918, 100.64/10, 198.18/15, fc00::/7, fec0::/10 */
	NET_ADDR_LINK_LOCAL,
	NET_ADDR_METADATA,		/* 169.254.169.254, 100.100.100.200 */
	NET_ADDR_MULTICAST,
	NET_ADDR_UNSPECIFIED,		/* 0.0.0.0/8, :: */
	NET_ADDR_RESERVED,
};
/* NULL when s is a valid entry (then *e, if e, holds it), else the reason. */
const char *netpolicy_entry_parse(const char *s, struct np_entry *e);
bool net_valid_hostname(const char *s, size_t n);	/* RFC 1123, last label not numeric */
int netpolicy_build(const agentd_strv *allow, struct netpolicy *np, agentd_error *err);
void netpolicy_free(struct netpolicy *np);
/* Whether a /0 entry (0.0.0.0/0, ::/0) allows port: the sandbox then reaches every public
 * address on it anyway, so looking up an unlisted name opens no channel it lacks. Any
 * narrower entry does not make names resolvable: the lookup alone would carry the name out
 * through DNS (an entry "127.0.0.1:8081" must not let the sandbox make the host resolve
 * "secret.attacker.example"). */
bool netpolicy_every_address_for_port(const struct netpolicy *np, uint16_t port);
/* The NAME/SUFFIX entry allowing host:port, or NULL. */
const struct np_entry *netpolicy_match_name(const struct netpolicy *np, const char *host,
					    uint16_t port);
/* The CIDR entry containing addr (4 or 16 bytes of family af) with a matching port. */
const struct np_entry *netpolicy_match_addr(const struct netpolicy *np, int af,
					    const uint8_t *addr, uint16_t port);
enum net_addr_class net_addr_classify(int af, const uint8_t *addr);
const char *net_addr_class_name(enum net_addr_class c);
/* A target given as an address: allowed (1, *by set) only when a CIDR entry lists it. */
int netpolicy_decide_literal(const struct netpolicy *np, int af, const uint8_t *addr,
			     uint16_t port, const struct np_entry **by, char *why, size_t why_len);
/* An address a name resolved to (by_name: the entry that listed the name, or NULL): allowed
 * when a CIDR entry lists it, or when the name is listed and the address is public. */
int netpolicy_decide_resolved(const struct netpolicy *np, const struct np_entry *by_name, int af,
			      const uint8_t *addr, uint16_t port, const struct np_entry **by,
			      char *why, size_t why_len);

/* ---------------------------------------------------------------- proxy_parse.c
 * Pure parsers of what a sandbox sends its egress proxy (hostile bytes; every read is
 * bounds-checked; fuzzed by fuzz/fuzz_proxy.c). */
#define HTTP_MAX_HEADER 16384		/* request line + headers */
struct http_request {
	char method[16];
	bool is_connect;		/* CONNECT host:port, else an absolute http:// URI */
	char host[256];			/* lower case; an IPv6 literal without brackets */
	bool host_is_addr;		/* host is an IP literal: af/addr hold it */
	int af;
	uint8_t addr[16];
	uint16_t port;
	size_t header_len;		/* bytes up to and including the blank line */
	size_t path_off, path_len;	/* origin-form target within the buffer ("" = "/") */
	size_t version_off;		/* "HTTP/1.x" within the buffer */
	size_t headers_off;		/* first header line within the buffer */
};
enum { HTTP_PARSE_MORE = 0, HTTP_PARSE_DONE = 1, HTTP_PARSE_BAD = -1 };
/* Parse a proxy request at the start of buf. MORE: no blank line yet (and within limits);
 * BAD: *why says what is wrong. */
int http_parse_request(const uint8_t *buf, size_t len, struct http_request *req,
		       const char **why);
/* The same for a request sent inside a tunnel (CONNECT, SOCKS5): origin-form target only;
 * the host and port in req are left unset. */
int http_parse_tunnel_request(const uint8_t *buf, size_t len, struct http_request *req,
			      const char **why);
/* What the first bytes a sandbox sends through a tunnel to a name are: a TLS ClientHello
 * (its SNI is checked), an HTTP/1.x request (parsed, its Host pinned) or another protocol
 * (relayed as it is: neither TLS nor HTTP/1.x, it carries no name a shared frontend routes
 * by); MORE: not known yet. */
enum { TUNNEL_MORE = 0, TUNNEL_TLS, TUNNEL_HTTP, TUNNEL_OTHER };
int tunnel_classify(const uint8_t *buf, size_t len);
/* The request as the origin server gets it: origin-form target, hop-by-hop and Proxy-*
 * headers removed, "Connection: close". Returns the length written, 0 when out is too small. */
size_t http_rewrite_request(const uint8_t *buf, const struct http_request *req, uint8_t *out,
			    size_t out_cap);
/* "host:port", "[v6]:port", "1.2.3.4:port" (port required unless default_port). NULL or why. */
const char *net_parse_authority(const char *s, size_t n, uint16_t default_port,
				struct http_request *req);
enum { TLS_SNI_FOUND = 1, TLS_SNI_ABSENT = 0, TLS_NOT_TLS = -1, TLS_INCOMPLETE = -2,
       TLS_MALFORMED = -3 };
#define TLS_MAX_HELLO_RECORD (16384 + 5)
/* The server_name of the ClientHello that starts buf (one TLS record), lower case. */
int tls_client_hello_sni(const uint8_t *buf, size_t len, char *sni, size_t sni_cap);
/* SOCKS5 (RFC 1928) without authentication, CONNECT only; the same MORE/DONE/BAD results.
 * The greeting: *used = its length; DONE only when "no authentication" is offered. */
int socks5_parse_greeting(const uint8_t *buf, size_t len, size_t *used, const char **why);
/* The request: req as for an HTTP CONNECT (method "SOCKS5"), header_len its length. */
int socks5_parse_request(const uint8_t *buf, size_t len, struct http_request *req,
			 const char **why);

/* ---------------------------------------------------------------- proxy_resolve.c
 * getaddrinfo on worker threads, a queue per owner (a sandbox) served in turn; results are
 * picked up by the proxy's loop. */
struct resolved_addr {
	int af;
	uint8_t addr[16];
};
struct resolve_result {
	uint64_t tag;			/* the caller's, returned as given */
	int error;			/* getaddrinfo's code, 0 = ok */
	size_t n;
	struct resolved_addr a[8];
};
struct resolver;
/* Workers are started as lookups need them, up to max_threads (0 = 64); an owner has at most
 * per_owner (0 = 4) lookups in flight, the rest wait in its queue. notify_fd (an eventfd)
 * gets a write for each finished lookup. */
struct resolver *resolver_start(unsigned max_threads, unsigned per_owner, int notify_fd,
				agentd_error *err);
void resolver_submit(struct resolver *r, uint64_t owner, uint64_t tag, const char *host);
/* The lookup is no longer wanted: dropped if it still waits (a running one cannot be stopped;
 * its answer comes back and is ignored, and until then it counts against its owner). */
void resolver_cancel(struct resolver *r, uint64_t owner, uint64_t tag);
size_t resolver_take(struct resolver *r, struct resolve_result *out, size_t max);
void resolver_stop(struct resolver *r);	/* joins the workers */

#endif
