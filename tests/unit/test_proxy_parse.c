/* test_proxy_parse.c: the egress proxy's parsers — proxy requests (CONNECT, absolute URI),
 * their rewrite for the origin server, and the SNI of a TLS ClientHello. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/socket.h>

#include "lib/core/core.h"

static int parse(const char *s, struct http_request *req, const char **why)
{
	*why = NULL;
	return http_parse_request((const uint8_t *)s, strlen(s), req, why);
}

static void bad(const char *s, const char *reason)
{
	struct http_request req;
	const char *why;
	assert_int_equal(parse(s, &req, &why), HTTP_PARSE_BAD);
	assert_string_equal(why, reason);
}

static void connect_requests(void **state __attribute__((unused)))
{
	struct http_request req;
	const char *why;
	const char *s = "CONNECT Pypi.ORG:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n\x16\x03";
	assert_int_equal(parse(s, &req, &why), HTTP_PARSE_DONE);
	assert_true(req.is_connect);
	assert_string_equal(req.host, "pypi.org");
	assert_int_equal(req.port, 443);
	assert_false(req.host_is_addr);
	assert_int_equal(req.header_len, strlen(s) - 2); /* the TLS bytes are not the header */

	assert_int_equal(parse("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n", &req, &why),
			 HTTP_PARSE_DONE);
	assert_true(req.host_is_addr);
	assert_int_equal(req.af, AF_INET6);
	assert_string_equal(req.host, "2001:db8::1");
	assert_int_equal(parse("CONNECT 169.254.169.254:80 HTTP/1.0\r\n\r\n", &req, &why),
			 HTTP_PARSE_DONE);
	assert_true(req.host_is_addr);
	assert_int_equal(req.af, AF_INET);

	bad("CONNECT pypi.org HTTP/1.1\r\n\r\n", "missing port");
	bad("CONNECT pypi.org:0 HTTP/1.1\r\n\r\n", "invalid port");
	bad("CONNECT pypi.org:65536 HTTP/1.1\r\n\r\n", "invalid port");
	bad("CONNECT pypi.org:44a HTTP/1.1\r\n\r\n", "invalid port");
	bad("CONNECT bad_host:443 HTTP/1.1\r\n\r\n", "invalid host name");
	bad("CONNECT [::1:443 HTTP/1.1\r\n\r\n", "missing ']'");
	bad("CONNECT [nothex]:443 HTTP/1.1\r\n\r\n", "invalid IPv6 address");
}

static void absolute_uri_requests(void **state __attribute__((unused)))
{
	struct http_request req;
	const char *why;
	const char *s = "GET http://127.0.0.1:8080/a/b?q=1 HTTP/1.1\r\nHost: x\r\n"
			"Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n"
			"Connection: keep-alive\r\nAccept: */*\r\n\r\nBODY";
	assert_int_equal(parse(s, &req, &why), HTTP_PARSE_DONE);
	assert_false(req.is_connect);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.host, "127.0.0.1");
	assert_int_equal(req.port, 8080);
	uint8_t out[1024];
	size_t n = http_rewrite_request((const uint8_t *)s, &req, out, sizeof(out));
	/* the client's Host ("x") is replaced by the target the proxy judged */
	const char *want = "GET /a/b?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\n"
			   "Connection: close\r\n\r\n";
	assert_int_equal(n, strlen(want));
	assert_memory_equal(out, want, n);
	assert_int_equal(http_rewrite_request((const uint8_t *)s, &req, out, 10), 0);

	assert_int_equal(parse("HEAD http://Example.com HTTP/1.0\r\n\r\n", &req, &why),
			 HTTP_PARSE_DONE);
	assert_string_equal(req.host, "example.com");
	assert_int_equal(req.port, 80);
	n = http_rewrite_request((const uint8_t *)"HEAD http://Example.com HTTP/1.0\r\n\r\n", &req,
				 out, sizeof(out));
	assert_memory_equal(out, "HEAD / HTTP/1.0\r\nHost: example.com\r\n", 36);
	/* fronting: a second Host, any case, is dropped too; IPv6 targets get brackets */
	const char *two = "GET http://[::1]:81/ HTTP/1.1\r\nHOST: admin\r\nhost: b\r\n\r\n";
	assert_int_equal(parse(two, &req, &why), HTTP_PARSE_DONE);
	n = http_rewrite_request((const uint8_t *)two, &req, out, sizeof(out));
	const char *want2 = "GET / HTTP/1.1\r\nHost: [::1]:81\r\nConnection: close\r\n\r\n";
	assert_int_equal(n, strlen(want2));
	assert_memory_equal(out, want2, n);

	bad("GET https://example.com/ HTTP/1.1\r\n\r\n", "https:// URIs need CONNECT");
	bad("GET / HTTP/1.1\r\n\r\n", "not a proxy request (origin-form target)");
	bad("GET ftp://example.com/ HTTP/1.1\r\n\r\n", "expected an http:// URI");
	bad("GET http://user:pw@example.com/ HTTP/1.1\r\n\r\n",
	    "credentials in the URI are not accepted");
	bad("GET http://example.com/#x HTTP/1.1\r\n\r\n", "fragment in the request target");
}

static void malformed_requests(void **state __attribute__((unused)))
{
	bad("GET http://a.com/ HTTP/2.0\r\n\r\n", "malformed request line");
	bad("GET  http://a.com/ HTTP/1.1\r\n\r\n", "malformed request line");
	bad("G(T http://a.com/ HTTP/1.1\r\n\r\n", "malformed request line");
	bad("GET http://a.com/ HTTP/1.1\n\n", "invalid line ending in the request line");
	bad("GET http://a.com/ HTTP/1.1\r\nA: b\n\r\n", "invalid line ending in a header");
	bad("GET http://a.com/ HTTP/1.1\r\nA: b\rc\r\n\r\n", "invalid line ending in a header");
	bad("GET http://a.com/ HTTP/1.1\r\n folded\r\n\r\n", "malformed header field");
	bad("GET http://a.com/ HTTP/1.1\r\nName : v\r\n\r\n", "malformed header field");
	bad("GET http://a.com/ HTTP/1.1\r\nA: \x01\r\n\r\n", "control character in a header value");
	bad("TOOLONGMETHODNAMEX http://a.com/ HTTP/1.1\r\n\r\n", "malformed request line");

	/* incomplete is not an error, until the header limit */
	struct http_request req;
	const char *why;
	assert_int_equal(parse("CONNECT a.com:443 HTTP/1.1\r\nHost: a", &req, &why),
			 HTTP_PARSE_MORE);
	assert_int_equal(parse("CONNECT a.com:4", &req, &why), HTTP_PARSE_MORE);
	static char big[HTTP_MAX_HEADER + 64];
	strcpy(big, "CONNECT a.com:443 HTTP/1.1\r\nX: ");
	memset(big + strlen(big), 'a', sizeof(big) - strlen(big) - 1);
	assert_int_equal(http_parse_request((const uint8_t *)big, sizeof(big) - 1, &req, &why),
			 HTTP_PARSE_BAD);
	assert_string_equal(why, "request header too large");
}

static void socks5_greetings_and_requests(void **state __attribute__((unused)))
{
	size_t used = 0;
	const char *why = NULL;
	assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x05", 1, &used, &why),
			 HTTP_PARSE_MORE);
	assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x05\x02\x02", 3, &used, &why),
			 HTTP_PARSE_MORE);
	assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x05\x02\x02\x00", 4, &used, &why),
			 HTTP_PARSE_DONE);
	assert_int_equal(used, 4);
	assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x05\x01\x02", 3, &used, &why),
			 HTTP_PARSE_BAD);
	assert_string_equal(why, "SOCKS5 client offers no method without authentication");

	struct http_request req;
	const uint8_t name[] = {5, 1, 0, 3, 8, 'p', 'y', 'p', 'i', '.', 'o', 'r', 'g', 1, 0xbb};
	assert_int_equal(socks5_parse_request(name, sizeof(name) - 1, &req, &why), HTTP_PARSE_MORE);
	assert_int_equal(socks5_parse_request(name, sizeof(name), &req, &why), HTTP_PARSE_DONE);
	assert_string_equal(req.host, "pypi.org");
	assert_int_equal(req.port, 443);
	assert_true(req.is_connect);
	assert_false(req.host_is_addr);
	assert_int_equal(req.header_len, sizeof(name));
	const uint8_t v4[] = {5, 1, 0, 1, 169, 254, 169, 254, 0, 80};
	assert_int_equal(socks5_parse_request(v4, sizeof(v4), &req, &why), HTTP_PARSE_DONE);
	assert_true(req.host_is_addr);
	assert_string_equal(req.host, "169.254.169.254");
	const uint8_t bind[] = {5, 2, 0, 1, 1, 2, 3, 4, 0, 80};
	assert_int_equal(socks5_parse_request(bind, sizeof(bind), &req, &why), HTTP_PARSE_BAD);
	assert_string_equal(why, "only the SOCKS5 CONNECT command is supported");
	const uint8_t smuggle[] = {5, 1, 0, 3, 8, 'a', '.', 'c', 'o', ':', '4', '4', '3', 0, 80};
	assert_int_equal(socks5_parse_request(smuggle, sizeof(smuggle), &req, &why),
			 HTTP_PARSE_BAD);
	const uint8_t zero_port[] = {5, 1, 0, 1, 1, 2, 3, 4, 0, 0};
	assert_int_equal(socks5_parse_request(zero_port, sizeof(zero_port), &req, &why),
			 HTTP_PARSE_BAD);
}

/* ------------------------------------------------------------ TLS */

static size_t put16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return 2;
}

/* A ClientHello as a TLS 1.3 client sends it: an extension before server_name, one after. */
static size_t client_hello(uint8_t *out, const char *sni)
{
	uint8_t body[512];
	size_t b = 0;
	b += put16(body + b, 0x0303);
	memset(body + b, 0xab, 32);
	b += 32;
	body[b++] = 32; /* session id */
	memset(body + b, 0xcd, 32);
	b += 32;
	b += put16(body + b, 4);
	b += put16(body + b, 0x1301);
	b += put16(body + b, 0x1302);
	body[b++] = 1;
	body[b++] = 0;
	uint8_t ext[300];
	size_t e = 0;
	e += put16(ext + e, 0x002b); /* supported_versions */
	e += put16(ext + e, 3);
	ext[e++] = 2;
	e += put16(ext + e, 0x0304);
	if (sni) {
		size_t n = strlen(sni);
		e += put16(ext + e, 0);
		e += put16(ext + e, n + 5);
		e += put16(ext + e, n + 3);
		ext[e++] = 0;
		e += put16(ext + e, n);
		memcpy(ext + e, sni, n);
		e += n;
	}
	e += put16(ext + e, 0x000a); /* supported_groups */
	e += put16(ext + e, 4);
	e += put16(ext + e, 2);
	e += put16(ext + e, 0x001d);
	b += put16(body + b, e);
	memcpy(body + b, ext, e);
	b += e;

	size_t o = 0;
	out[o++] = 0x16;
	o += put16(out + o, 0x0301);
	o += put16(out + o, b + 4);
	out[o++] = 1;
	out[o++] = 0;
	o += put16(out + o, b);
	memcpy(out + o, body, b);
	return o + b;
}

static void sni_is_extracted(void **state __attribute__((unused)))
{
	uint8_t hello[600];
	char sni[256];
	size_t n = client_hello(hello, "Outside.Test");
	assert_int_equal(tls_client_hello_sni(hello, n, sni, sizeof(sni)), TLS_SNI_FOUND);
	assert_string_equal(sni, "outside.test");
	/* every prefix is incomplete, never a wrong answer */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(tls_client_hello_sni(hello, k, sni, sizeof(sni)), TLS_INCOMPLETE);
	n = client_hello(hello, NULL);
	assert_int_equal(tls_client_hello_sni(hello, n, sni, sizeof(sni)), TLS_SNI_ABSENT);
	assert_int_equal(
	    tls_client_hello_sni((const uint8_t *)"GET / HTTP/1.1\r\n", 16, sni, sizeof(sni)),
	    TLS_NOT_TLS);
}

static void malformed_hellos_are_refused(void **state __attribute__((unused)))
{
	uint8_t hello[600], copy[600];
	char sni[256];
	size_t n = client_hello(hello, "a.example");
	/* an inner length one too large or small at each length field */
	static const size_t len_fields[] = {3, 7, 43 + 32, 43 + 32 + 6};
	for (size_t i = 0; i < ARRAY_SIZE(len_fields); i++) {
		memcpy(copy, hello, n);
		copy[len_fields[i] + 1]++;
		int r = tls_client_hello_sni(copy, n, sni, sizeof(sni));
		assert_true(r == TLS_MALFORMED || r == TLS_INCOMPLETE);
	}
	/* a name that is not a host name */
	n = client_hello(hello, "bad_name\x01");
	assert_int_equal(tls_client_hello_sni(hello, n, sni, sizeof(sni)), TLS_MALFORMED);
	/* not a ClientHello */
	n = client_hello(hello, "a.example");
	hello[5] = 2;
	assert_int_equal(tls_client_hello_sni(hello, n, sni, sizeof(sni)), TLS_MALFORMED);
	/* a record longer than TLS allows */
	uint8_t huge[5] = {0x16, 3, 1, 0xff, 0xff};
	assert_int_equal(tls_client_hello_sni(huge, 5, sni, sizeof(sni)), TLS_MALFORMED);
	/* every single-byte corruption gives an answer within bounds (ASan watches) */
	n = client_hello(hello, "a.example");
	for (size_t i = 0; i < n; i++) {
		memcpy(copy, hello, n);
		copy[i] ^= 0xff;
		int r = tls_client_hello_sni(copy, n, sni, sizeof(sni));
		assert_true(r >= TLS_MALFORMED && r <= TLS_SNI_FOUND);
		if (r == TLS_SNI_FOUND)
			assert_true(strlen(sni) < sizeof(sni));
	}
}

static int classify(const char *s)
{
	return tunnel_classify((const uint8_t *)s, strlen(s));
}

static void tunnel_first_bytes_are_classified(void **state __attribute__((unused)))
{
	assert_int_equal(classify(""), TUNNEL_MORE);
	assert_int_equal(classify("\x16\x03\x01"), TUNNEL_TLS);
	assert_int_equal(classify("GET / HTTP/1.1\r\n"), TUNNEL_HTTP);
	assert_int_equal(classify("GET / HTTP/1.1"), TUNNEL_HTTP); /* the version is enough */
	/* empty lines before a request line, which servers skip: HTTP (then refused) */
	assert_int_equal(classify("\r\n\r\nget /x http/1.0\r\n"), TUNNEL_HTTP);
	assert_int_equal(classify("\n"), TUNNEL_HTTP);
	assert_int_equal(classify("GET /"), TUNNEL_MORE); /* the version may still come */
	/* other protocols: SSH's banner, git's first packet (a NUL before any LF), a binary
	 * start (PostgreSQL's length), HTTP/0.9 (no headers, so no Host) */
	assert_int_equal(classify("SSH-2.0-OpenSSH_9.6\r\n"), TUNNEL_OTHER);
	assert_int_equal(tunnel_classify((const uint8_t *)"0032git-upload-pack /r\0host=x\0", 31),
			 TUNNEL_OTHER);
	assert_int_equal(tunnel_classify((const uint8_t *)"\0\0\0\x08\x04\xd2\x16\x2f", 8),
			 TUNNEL_OTHER);
	assert_int_equal(classify("GET /\r\n"), TUNNEL_OTHER);
}

static void requests_inside_a_tunnel_are_origin_form(void **state __attribute__((unused)))
{
	struct http_request req;
	const char *why = NULL;
	const char *s = "GET /a?b HTTP/1.1\r\nHost: evil.example\r\nConnection: keep-alive\r\n\r\n"
			"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n";
	assert_int_equal(http_parse_tunnel_request((const uint8_t *)s, strlen(s), &req, &why),
			 HTTP_PARSE_DONE);
	strcpy(req.host, "judged.example");
	req.port = 8080;
	uint8_t out[512];
	size_t n = http_rewrite_request((const uint8_t *)s, &req, out, sizeof(out));
	out[n] = '\0';
	assert_string_equal((char *)out, "GET /a?b HTTP/1.1\r\nHost: judged.example:8080\r\n"
					 "Connection: close\r\n\r\n");
	const char *refused[] = {"GET http://evil.example/ HTTP/1.1\r\n\r\n",
				 "CONNECT evil.example:443 HTTP/1.1\r\n\r\n",
				 "OPTIONS * HTTP/1.1\r\n\r\n", "GET / http/1.1\r\n\r\n",
				 "GET / HTTP/1.1\nHost: evil.example\n\n"};
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
		assert_int_equal(http_parse_tunnel_request((const uint8_t *)refused[i],
							   strlen(refused[i]), &req, &why),
				 HTTP_PARSE_BAD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(connect_requests),	  cmocka_unit_test(absolute_uri_requests),
	    cmocka_unit_test(malformed_requests), cmocka_unit_test(socks5_greetings_and_requests),
	    cmocka_unit_test(sni_is_extracted),	  cmocka_unit_test(malformed_hellos_are_refused),
	    cmocka_unit_test(tunnel_first_bytes_are_classified),
	    cmocka_unit_test(requests_inside_a_tunnel_are_origin_form),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
