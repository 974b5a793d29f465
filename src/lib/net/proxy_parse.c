/* proxy_parse.c: what the egress proxy reads from a sandbox — the HTTP proxy request
 * (CONNECT or absolute-URI), its rewrite for the origin server, and the SNI of a TLS
 * ClientHello. Pure functions over hostile bytes: no allocation, every read bounds-checked. */
#include "lib/net/net.h"

#include <arpa/inet.h>
#include <strings.h>
#include <sys/socket.h>

static bool is_tchar(uint8_t c)
{
	/* RFC 9110 token characters */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Offset just past the next CRLF at or after off, 0 if none within len; a bare CR or LF
 * (a request-smuggling favourite) or a NUL makes the line invalid: *bad set. */
static size_t line_end(const uint8_t *buf, size_t len, size_t off, bool *bad)
{
	for (size_t i = off; i < len; i++) {
		if (buf[i] == '\r') {
			if (i + 1 >= len)
				return 0;
			if (buf[i + 1] != '\n') {
				*bad = true;
				return 0;
			}
			return i + 2;
		}
		if (buf[i] == '\n' || buf[i] == '\0') {
			*bad = true;
			return 0;
		}
	}
	return 0;
}

const char *net_parse_authority(const char *s, size_t n, uint16_t default_port,
				struct http_request *req)
{
	const char *host = s, *colon = NULL;
	size_t hlen;
	if (n == 0)
		return "empty host";
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return "missing ']'";
		host = s + 1;
		hlen = (size_t)(close - s - 1);
		size_t rest = n - (size_t)(close - s) - 1;
		if (rest && close[1] != ':')
			return "expected ':port' after ']'";
		colon = rest ? close + 1 : NULL;
	} else {
		colon = memchr(s, ':', n);
		hlen = colon ? (size_t)(colon - s) : n;
	}
	if (colon) {
		size_t plen = n - (size_t)(colon - s) - 1;
		unsigned v = 0;
		if (plen == 0 || plen > 5)
			return "invalid port";
		for (size_t i = 0; i < plen; i++) {
			if (colon[1 + i] < '0' || colon[1 + i] > '9')
				return "invalid port";
			v = v * 10 + (unsigned)(colon[1 + i] - '0');
		}
		if (v < 1 || v > 65535)
			return "invalid port";
		req->port = (uint16_t)v;
	} else if (default_port) {
		req->port = default_port;
	} else {
		return "missing port";
	}
	if (hlen == 0 || hlen >= sizeof(req->host))
		return "invalid host";
	for (size_t i = 0; i < hlen; i++)
		req->host[i] = lower(host[i]);
	req->host[hlen] = '\0';
	req->host_is_addr = false;
	if (host != s) {
		if (inet_pton(AF_INET6, req->host, req->addr) != 1)
			return "invalid IPv6 address";
		req->af = AF_INET6;
		req->host_is_addr = true;
	} else if (inet_pton(AF_INET, req->host, req->addr) == 1) {
		req->af = AF_INET;
		req->host_is_addr = true;
	} else if (!net_valid_hostname(req->host, hlen)) {
		return "invalid host name";
	}
	return NULL;
}

/* The target of a non-CONNECT request: http://authority[/path][?query]. */
static const char *parse_absolute_uri(const uint8_t *buf, size_t off, size_t n,
				      struct http_request *req)
{
	const char *t = (const char *)buf + off;
	if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
		return "https:// URIs need CONNECT";
	if (n < 7 || strncasecmp(t, "http://", 7) != 0)
		return n && t[0] == '/' ? "not a proxy request (origin-form target)"
					: "expected an http:// URI";
	size_t a = 7, e = a;
	while (e < n && t[e] != '/' && t[e] != '?')
		e++;
	if (memchr(t + a, '@', e - a))
		return "credentials in the URI are not accepted";
	const char *r = net_parse_authority(t + a, e - a, 80, req);
	if (r)
		return r;
	if (memchr(t + e, '#', n - e))
		return "fragment in the request target";
	req->path_off = off + e;
	req->path_len = n - e;
	return NULL;
}

/* The target of a request inside a tunnel: origin-form only ("/path?query"). An
 * absolute-form target would name a host the server must prefer to Host (RFC 9112 §3.2.2),
 * and asterisk-form (OPTIONS *) is not worth the exception. */
static const char *parse_origin_form(const uint8_t *buf, size_t off, size_t n,
				     struct http_request *req)
{
	if (buf[off] != '/')
		return "only origin-form targets (\"/path\") inside a tunnel";
	if (memchr(buf + off, '#', n))
		return "fragment in the request target";
	req->path_off = off;
	req->path_len = n;
	return NULL;
}

static int parse_request(const uint8_t *buf, size_t len, struct http_request *req,
			 const char **why, bool in_tunnel)
{
	bool bad = false;
	memset(req, 0, sizeof(*req));
	if (len > HTTP_MAX_HEADER)
		len = HTTP_MAX_HEADER;
	size_t end = line_end(buf, len, 0, &bad);
	if (bad) {
		*why = "invalid line ending in the request line";
		return HTTP_PARSE_BAD;
	}
	if (!end) {
		*why = "request header too large";
		return len == HTTP_MAX_HEADER ? HTTP_PARSE_BAD : HTTP_PARSE_MORE;
	}
	/* request-line = method SP request-target SP HTTP-version */
	size_t lend = end - 2, i = 0;
	while (i < lend && is_tchar(buf[i]))
		i++;
	if (i == 0 || i >= sizeof(req->method) || i >= lend || buf[i] != ' ') {
		*why = "malformed request line";
		return HTTP_PARSE_BAD;
	}
	memcpy(req->method, buf, i);
	req->method[i] = '\0';
	size_t t0 = ++i;
	while (i < lend && buf[i] > ' ' && buf[i] < 0x7f)
		i++;
	size_t tlen = i - t0;
	if (tlen == 0 || i >= lend || buf[i] != ' ' || lend - i - 1 != 8 ||
	    (memcmp(buf + i + 1, "HTTP/1.1", 8) != 0 && memcmp(buf + i + 1, "HTTP/1.0", 8) != 0)) {
		*why = "malformed request line";
		return HTTP_PARSE_BAD;
	}
	req->version_off = i + 1;
	req->is_connect = strcmp(req->method, "CONNECT") == 0;
	const char *r = in_tunnel	   ? parse_origin_form(buf, t0, tlen, req)
			: req->is_connect ? net_parse_authority((const char *)buf + t0, tlen, 0, req)
					  : parse_absolute_uri(buf, t0, tlen, req);
	if (r) {
		*why = r;
		return HTTP_PARSE_BAD;
	}

	/* header fields: name ":" value CRLF, until an empty line */
	req->headers_off = end;
	for (size_t off = end;;) {
		size_t next = line_end(buf, len, off, &bad);
		if (bad) {
			*why = "invalid line ending in a header";
			return HTTP_PARSE_BAD;
		}
		if (!next) {
			*why = "request header too large";
			return len == HTTP_MAX_HEADER ? HTTP_PARSE_BAD : HTTP_PARSE_MORE;
		}
		if (next == off + 2) {
			req->header_len = next;
			return HTTP_PARSE_DONE;
		}
		size_t k = off;
		while (k < next - 2 && is_tchar(buf[k]))
			k++;
		/* no name, whitespace before ':' or obsolete line folding: refused, as by
		 * every strict server, since two parsers could read them differently */
		if (k == off || buf[k] != ':') {
			*why = "malformed header field";
			return HTTP_PARSE_BAD;
		}
		for (size_t v = k + 1; v < next - 2; v++)
			if (buf[v] < ' ' && buf[v] != '\t') {
				*why = "control character in a header value";
				return HTTP_PARSE_BAD;
			}
		off = next;
	}
}

int http_parse_request(const uint8_t *buf, size_t len, struct http_request *req, const char **why)
{
	return parse_request(buf, len, req, why, false);
}

int http_parse_tunnel_request(const uint8_t *buf, size_t len, struct http_request *req,
			      const char **why)
{
	return parse_request(buf, len, req, why, true);
}

/* "HTTP/" anywhere in buf[0..n), in any case: lenient servers accept "http/1.1". */
static bool has_http_version(const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i + 5 <= n; i++)
		if (strncasecmp((const char *)buf + i, "HTTP/", 5) == 0)
			return true;
	return false;
}

int tunnel_classify(const uint8_t *buf, size_t len)
{
	if (len == 0)
		return TUNNEL_MORE;
	if (buf[0] == 0x16)
		return TUNNEL_TLS;
	/* servers skip empty lines before a request line (RFC 9112 §2.2): taken as HTTP, whose
	 * strict parser then refuses them */
	if (buf[0] == '\r' || buf[0] == '\n')
		return TUNNEL_HTTP;
	/* every method is a token: a stream starting otherwise is no HTTP request */
	if (!is_tchar(buf[0]))
		return TUNNEL_OTHER;
	/* The first line decides: with an HTTP version in it, it is an HTTP/1.x request and
	 * carries headers (Host among them); without one it is HTTP/0.9 at most, which has
	 * none. It ends at LF, or at a NUL, which no server takes in a request line (git's
	 * protocol sends one before any LF). */
	size_t e = 0;
	while (e < len && buf[e] != '\n' && buf[e] != '\0')
		e++;
	if (has_http_version(buf, e))
		return TUNNEL_HTTP;
	return e < len ? TUNNEL_OTHER : TUNNEL_MORE;
}

static bool header_is(const uint8_t *line, size_t n, const char *name)
{
	size_t k = strlen(name);
	return n > k && line[k] == ':' && strncasecmp((const char *)line, name, k) == 0;
}

size_t http_rewrite_request(const uint8_t *buf, const struct http_request *req, uint8_t *out,
			    size_t out_cap)
{
	/* host: the origin gets the target the proxy judged and connected to, never a name of
	 * the sandbox's choosing (a shared frontend would route by it: domain fronting) */
	static const char *const hop[] = {"host",
					  "connection",
					  "proxy-connection",
					  "keep-alive",
					  "proxy-authorization",
					  "proxy-authenticate",
					  "te",
					  "upgrade"};
	size_t o = 0;
#define PUT(p, n)                                                                                  \
	do {                                                                                       \
		if ((n) > out_cap - o)                                                             \
			return 0;                                                                  \
		memcpy(out + o, (p), (n));                                                         \
		o += (n);                                                                          \
	} while (0)
	PUT(req->method, strlen(req->method));
	PUT(" ", 1);
	if (req->path_len == 0 || buf[req->path_off] != '/')
		PUT("/", 1);
	PUT(buf + req->path_off, req->path_len);
	PUT(" ", 1);
	PUT(buf + req->version_off, 8);
	PUT("\r\n", 2);
	char host[300];
	bool v6 = req->host_is_addr && req->af == AF_INET6;
	int hl = req->port == 80 ? snprintf(host, sizeof(host), "Host: %s%s%s\r\n", v6 ? "[" : "",
					    req->host, v6 ? "]" : "")
				 : snprintf(host, sizeof(host), "Host: %s%s%s:%u\r\n", v6 ? "[" : "",
					    req->host, v6 ? "]" : "", (unsigned)req->port);
	if (hl < 0 || (size_t)hl >= sizeof(host))
		return 0;
	PUT(host, (size_t)hl);
	for (size_t off = req->headers_off; off + 2 < req->header_len;) {
		const uint8_t *nl = memchr(buf + off, '\n', req->header_len - off);
		size_t next = nl ? (size_t)(nl - buf) + 1 : req->header_len;
		bool drop = false;
		for (size_t h = 0; h < ARRAY_SIZE(hop) && !drop; h++)
			drop = header_is(buf + off, next - off, hop[h]);
		if (!drop)
			PUT(buf + off, next - off);
		off = next;
	}
	PUT("Connection: close\r\n\r\n", 21);
#undef PUT
	return o;
}

/* ------------------------------------------------------------ TLS SNI */

struct rd {
	const uint8_t *p;
	size_t n;
};

static bool take(struct rd *r, size_t k, struct rd *sub)
{
	if (k > r->n)
		return false;
	if (sub) {
		sub->p = r->p;
		sub->n = k;
	}
	r->p += k;
	r->n -= k;
	return true;
}

static bool u8(struct rd *r, unsigned *v)
{
	if (r->n < 1)
		return false;
	*v = r->p[0];
	return take(r, 1, NULL);
}

static bool u16(struct rd *r, unsigned *v)
{
	if (r->n < 2)
		return false;
	*v = (unsigned)r->p[0] << 8 | r->p[1];
	return take(r, 2, NULL);
}

static bool vec8(struct rd *r, struct rd *sub)
{
	unsigned n;
	return u8(r, &n) && take(r, n, sub);
}

static bool vec16(struct rd *r, struct rd *sub)
{
	unsigned n;
	return u16(r, &n) && take(r, n, sub);
}

/* server_name extension (RFC 6066 §3): a list of (type, name); host_name is type 0. */
static int parse_server_name(struct rd ext, char *sni, size_t cap)
{
	struct rd list;
	if (!vec16(&ext, &list) || ext.n != 0)
		return TLS_MALFORMED;
	while (list.n) {
		unsigned type;
		struct rd name;
		if (!u8(&list, &type) || !vec16(&list, &name))
			return TLS_MALFORMED;
		if (type != 0)
			continue;
		if (name.n == 0 || name.n >= cap ||
		    !net_valid_hostname((const char *)name.p, name.n))
			return TLS_MALFORMED;
		for (size_t i = 0; i < name.n; i++)
			sni[i] = lower((char)name.p[i]);
		sni[name.n] = '\0';
		return TLS_SNI_FOUND;
	}
	return TLS_SNI_ABSENT;
}

int tls_client_hello_sni(const uint8_t *buf, size_t len, char *sni, size_t sni_cap)
{
	if (len == 0)
		return TLS_INCOMPLETE;
	if (buf[0] != 0x16) /* handshake record */
		return TLS_NOT_TLS;
	if (len < 5)
		return TLS_INCOMPLETE;
	unsigned rec_len = (unsigned)buf[3] << 8 | buf[4];
	if (buf[1] != 3 || rec_len == 0 || rec_len > TLS_MAX_HELLO_RECORD - 5)
		return TLS_MALFORMED;
	if (len < 5 + (size_t)rec_len)
		return TLS_INCOMPLETE;
	struct rd rec = {buf + 5, rec_len}, hello, sid, suites, comp, exts;
	unsigned type, ver;
	if (!u8(&rec, &type) || type != 1 || rec.n < 3) /* ClientHello */
		return TLS_MALFORMED;
	size_t hs_len = (size_t)rec.p[0] << 16 | (size_t)rec.p[1] << 8 | rec.p[2];
	take(&rec, 3, NULL);
	/* a ClientHello split over several records is not reassembled: refused */
	if (!take(&rec, hs_len, &hello))
		return TLS_MALFORMED;
	if (!u16(&hello, &ver) || (ver >> 8) != 3 || !take(&hello, 32, NULL) ||
	    !vec8(&hello, &sid) || sid.n > 32 || !vec16(&hello, &suites) || suites.n < 2 ||
	    suites.n % 2 || !vec8(&hello, &comp) || comp.n < 1)
		return TLS_MALFORMED;
	if (hello.n == 0)
		return TLS_SNI_ABSENT; /* no extensions at all */
	if (!vec16(&hello, &exts) || hello.n != 0)
		return TLS_MALFORMED;
	int found = TLS_SNI_ABSENT;
	while (exts.n) {
		unsigned etype;
		struct rd data;
		if (!u16(&exts, &etype) || !vec16(&exts, &data))
			return TLS_MALFORMED;
		if (etype != 0)
			continue;
		if (found != TLS_SNI_ABSENT) /* two server_name extensions */
			return TLS_MALFORMED;
		found = parse_server_name(data, sni, sni_cap);
		if (found == TLS_MALFORMED)
			return found;
	}
	return found;
}

/* ------------------------------------------------------------ SOCKS5 */

int socks5_parse_greeting(const uint8_t *buf, size_t len, size_t *used, const char **why)
{
	if (len < 2)
		return HTTP_PARSE_MORE;
	if (buf[0] != 5 || buf[1] == 0) {
		*why = "malformed SOCKS5 greeting";
		return HTTP_PARSE_BAD;
	}
	size_t n = 2 + (size_t)buf[1];
	if (len < n)
		return HTTP_PARSE_MORE;
	*used = n;
	if (!memchr(buf + 2, 0x00, buf[1])) {
		*why = "SOCKS5 client offers no method without authentication";
		return HTTP_PARSE_BAD;
	}
	return HTTP_PARSE_DONE;
}

int socks5_parse_request(const uint8_t *buf, size_t len, struct http_request *req, const char **why)
{
	memset(req, 0, sizeof(*req));
	if (len < 5)
		return HTTP_PARSE_MORE;
	if (buf[0] != 5 || buf[2] != 0) {
		*why = "malformed SOCKS5 request";
		return HTTP_PARSE_BAD;
	}
	if (buf[1] != 1) {
		*why = "only the SOCKS5 CONNECT command is supported";
		return HTTP_PARSE_BAD;
	}
	size_t alen;
	switch (buf[3]) {
	case 1:
		alen = 4;
		break;
	case 4:
		alen = 16;
		break;
	case 3:
		alen = 1 + (size_t)buf[4];
		break;
	default:
		*why = "unknown SOCKS5 address type";
		return HTTP_PARSE_BAD;
	}
	size_t total = 4 + alen + 2;
	if (len < total)
		return HTTP_PARSE_MORE;
	strcpy(req->method, "SOCKS5");
	req->is_connect = true;
	req->header_len = total;
	req->port = (uint16_t)(buf[4 + alen] << 8 | buf[5 + alen]);
	if (req->port == 0) {
		*why = "invalid port";
		return HTTP_PARSE_BAD;
	}
	if (buf[3] == 3) {
		/* a name, or an address written as text: both as a CONNECT authority would be */
		size_t n = buf[4];
		if (n == 0 || memchr(buf + 5, '\0', n)) {
			*why = "invalid host name";
			return HTTP_PARSE_BAD;
		}
		uint16_t port = req->port;
		const char *r = net_parse_authority((const char *)buf + 5, n, port, req);
		if (r || req->port != port) {
			*why = r ? r : "invalid host name";
			return HTTP_PARSE_BAD;
		}
		return HTTP_PARSE_DONE;
	}
	req->host_is_addr = true;
	req->af = buf[3] == 1 ? AF_INET : AF_INET6;
	memcpy(req->addr, buf + 4, alen);
	inet_ntop(req->af, req->addr, req->host, sizeof(req->host));
	return HTTP_PARSE_DONE;
}
