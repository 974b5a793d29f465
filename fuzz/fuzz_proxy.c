/* fuzz_proxy.c: libFuzzer target for what a sandbox sends its egress proxy — the proxy
 * request parser and its rewrite, what goes through a tunnel (its classification and the
 * HTTP request parser there), the TLS SNI extractor, and allowlist entries: no input
 * may crash or read out of bounds, and what is accepted must be self-consistent. */
#include "lib/core/core.h"

#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_proxy: %s\n", what);
		abort();
	}
}

static void fuzz_request(const uint8_t *data, size_t size)
{
	struct http_request req;
	const char *why = NULL;
	int r = http_parse_request(data, size, &req, &why);
	check(r == HTTP_PARSE_MORE || r == HTTP_PARSE_DONE || r == HTTP_PARSE_BAD, "result");
	if (r == HTTP_PARSE_BAD)
		check(why && *why, "BAD without a reason");
	if (r != HTTP_PARSE_DONE)
		return;
	check(req.header_len <= size && req.header_len <= HTTP_MAX_HEADER, "header length");
	check(req.port != 0 && req.host[0], "target");
	check(strlen(req.host) < sizeof(req.host), "host");
	if (req.is_connect)
		return;
	check(req.path_off + req.path_len <= req.header_len, "path within the header");
	static uint8_t out[HTTP_MAX_HEADER + 64];
	size_t n = http_rewrite_request(data, &req, out, sizeof(out));
	check(n > 0, "a parsed header fits its rewrite");
	/* the rewrite is itself a complete request (origin-form, so not a proxy request) */
	check(n >= 4 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0, "rewrite ends the header");
}

/* The same bytes as the first ones through a tunnel to a name. */
static void fuzz_tunnel(const uint8_t *data, size_t size)
{
	int c = tunnel_classify(data, size);
	check(c >= TUNNEL_MORE && c <= TUNNEL_OTHER, "class");
	check(c != TUNNEL_TLS || data[0] == 0x16, "TLS starts with a handshake record");
	struct http_request req;
	const char *why = NULL;
	int r = http_parse_tunnel_request(data, size, &req, &why);
	if (r == HTTP_PARSE_BAD)
		check(why && *why, "BAD without a reason");
	if (r != HTTP_PARSE_DONE)
		return;
	check(c == TUNNEL_HTTP, "a parsed request is classified as HTTP");
	check(req.path_off + req.path_len <= req.header_len && data[req.path_off] == '/',
	      "origin-form path within the header");
	strcpy(req.host, "judged.example");
	req.port = 8080;
	static uint8_t out[HTTP_MAX_HEADER + 64];
	size_t n = http_rewrite_request(data, &req, out, sizeof(out));
	static const char host[] = "\r\nHost: judged.example:8080\r\n";
	check(n > 0 && memmem(out, n, host, sizeof(host) - 1), "the rewrite carries the judged Host");
}

static void fuzz_sni(const uint8_t *data, size_t size)
{
	char sni[256];
	memset(sni, 0x55, sizeof(sni));
	int r = tls_client_hello_sni(data, size, sni, sizeof(sni));
	check(r >= TLS_MALFORMED && r <= TLS_SNI_FOUND, "result");
	if (r == TLS_SNI_FOUND)
		check(memchr(sni, '\0', sizeof(sni)) && net_valid_hostname(sni, strlen(sni)),
		      "SNI is a host name");
	/* one byte short of a complete record is never an answer about it */
	if (r >= TLS_SNI_ABSENT && size > 5) {
		size_t rec = 5 + ((size_t)data[3] << 8 | data[4]);
		char again[256];
		check(rec > size || tls_client_hello_sni(data, rec - 1, again, sizeof(again)) ==
					TLS_INCOMPLETE,
		      "a truncated record is incomplete");
	}
}

static void fuzz_socks(const uint8_t *data, size_t size)
{
	size_t used = 0;
	const char *why = NULL;
	if (socks5_parse_greeting(data, size, &used, &why) == HTTP_PARSE_DONE)
		check(used <= size, "greeting length");
	struct http_request req;
	if (socks5_parse_request(data, size, &req, &why) == HTTP_PARSE_DONE) {
		check(req.header_len <= size && req.port != 0 && req.host[0], "request");
		check(req.host_is_addr || net_valid_hostname(req.host, strlen(req.host)), "host");
	}
}

static void fuzz_entry(const uint8_t *data, size_t size)
{
	char s[600];
	size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
	memcpy(s, data, n);
	s[n] = '\0';
	struct np_entry e;
	if (netpolicy_entry_parse(s, &e))
		return;
	if (e.kind == NP_CIDR)
		check(e.prefix <= (e.af == AF_INET ? 32u : 128u), "prefix");
	else
		check(net_valid_hostname(e.name, strlen(e.name)), "name");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	/* the first byte picks the parser, so one corpus covers them all */
	switch (data[0] % 4) {
	case 0:
		fuzz_request(data + 1, size - 1);
		fuzz_tunnel(data + 1, size - 1);
		break;
	case 1:
		fuzz_sni(data + 1, size - 1);
		break;
	case 2:
		fuzz_entry(data + 1, size - 1);
		break;
	default:
		fuzz_socks(data + 1, size - 1);
		break;
	}
	return 0;
}
