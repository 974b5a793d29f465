/* test_netpolicy.c: the egress allowlist — which names and addresses each entry form
 * allows, and which address classes a listed name may never lead to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include "lib/core/core.h"

static struct netpolicy build(const char *const *entries, size_t n)
{
	agentd_strv sv = {0};
	for (size_t i = 0; i < n; i++)
		strv_push(&sv, entries[i]);
	struct netpolicy np;
	agentd_error err = {0};
	assert_int_equal(netpolicy_build(&sv, &np, &err), 0);
	strv_free(&sv);
	return np;
}

static int addr_of(const char *s, uint8_t out[16])
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, out) == 1)
		return AF_INET;
	assert_int_equal(inet_pton(AF_INET6, s, out), 1);
	return AF_INET6;
}

static enum net_addr_class cls(const char *s)
{
	uint8_t a[16];
	int af = addr_of(s, a);
	return net_addr_classify(af, a);
}

static void entries_parse_into_kinds(void **state __attribute__((unused)))
{
	struct np_entry e;
	assert_null(netpolicy_entry_parse("Example.COM:443", &e));
	assert_int_equal(e.kind, NP_NAME);
	assert_string_equal(e.name, "example.com");
	assert_int_equal(e.port, 443);
	assert_null(netpolicy_entry_parse("*.github.com:443", &e));
	assert_int_equal(e.kind, NP_SUFFIX);
	assert_string_equal(e.name, "github.com");
	assert_null(netpolicy_entry_parse("10.1.2.3/8", &e));
	assert_int_equal(e.kind, NP_CIDR);
	assert_int_equal(e.prefix, 8);
	assert_int_equal(e.port, 0);
	assert_int_equal(e.addr[1], 0); /* host bits cleared */
	assert_null(netpolicy_entry_parse("[::ffff:10.0.0.0/104]:80", &e));
	assert_int_equal(e.af, AF_INET); /* IPv4-mapped is IPv4 */
	assert_int_equal(e.prefix, 8);
	assert_int_equal(e.port, 80);
	assert_string_equal(netpolicy_entry_parse("foo:99999", NULL), "invalid port (1..65535)");
}

static void build_names_the_bad_entry(void **state __attribute__((unused)))
{
	agentd_strv sv = {0};
	strv_push(&sv, "a.com:443");
	strv_push(&sv, "10.0.0.0/8");
	strv_push(&sv, "foo:99999");
	struct netpolicy np;
	agentd_error err = {0};
	assert_int_equal(netpolicy_build(&sv, &np, &err), -1);
	assert_string_equal(
	    err.msg, "network.allow[2]: invalid entry \"foo:99999\": invalid port (1..65535)");
	strv_free(&sv);
}

static void names_match_exactly_or_below_a_suffix(void **state __attribute__((unused)))
{
	static const char *const e[] = {"api.example.com:443", "*.github.com:443", "pypi.org:80"};
	struct netpolicy np = build(e, 3);
	assert_non_null(netpolicy_match_name(&np, "api.example.com", 443));
	assert_non_null(netpolicy_match_name(&np, "API.Example.com.", 443)); /* case, root dot */
	assert_null(netpolicy_match_name(&np, "api.example.com", 80)); /* port is part of it */
	assert_null(netpolicy_match_name(&np, "x.api.example.com", 443));
	assert_null(netpolicy_match_name(&np, "example.com", 443));
	assert_non_null(netpolicy_match_name(&np, "codeload.github.com", 443));
	assert_non_null(netpolicy_match_name(&np, "a.b.github.com", 443));
	assert_null(netpolicy_match_name(&np, "github.com", 443)); /* *. is below only */
	assert_null(netpolicy_match_name(&np, "evilgithub.com", 443));
	assert_null(netpolicy_match_name(&np, "github.com.evil.net", 443));
	assert_non_null(netpolicy_match_name(&np, "pypi.org", 80));
	assert_false(np.has_cidr);
	netpolicy_free(&np);
}

static void addresses_match_ranges_and_ports(void **state __attribute__((unused)))
{
	static const char *const e[] = {"10.0.0.0/8:5432", "127.0.0.1:8080", "fd00::/8",
					"203.0.113.7"};
	struct netpolicy np = build(e, 4);
	uint8_t a[16];
	int af;
	af = addr_of("10.200.3.4", a);
	assert_non_null(netpolicy_match_addr(&np, af, a, 5432));
	assert_null(netpolicy_match_addr(&np, af, a, 5433));
	af = addr_of("11.0.0.1", a);
	assert_null(netpolicy_match_addr(&np, af, a, 5432));
	af = addr_of("127.0.0.1", a);
	assert_non_null(netpolicy_match_addr(&np, af, a, 8080));
	assert_null(netpolicy_match_addr(&np, af, a, 8081));
	af = addr_of("::ffff:127.0.0.1", a); /* the same address, written as IPv6 */
	assert_non_null(netpolicy_match_addr(&np, af, a, 8080));
	af = addr_of("fd12::1", a);
	assert_non_null(netpolicy_match_addr(&np, af, a, 1));
	af = addr_of("fe80::1", a);
	assert_null(netpolicy_match_addr(&np, af, a, 1));
	af = addr_of("203.0.113.7", a);
	assert_non_null(netpolicy_match_addr(&np, af, a, 65535)); /* no port: any port */
	assert_true(np.has_cidr);
	netpolicy_free(&np);
}

static void address_classes(void **state __attribute__((unused)))
{
	assert_int_equal(cls("8.8.8.8"), NET_ADDR_PUBLIC);
	assert_int_equal(cls("203.0.113.5"), NET_ADDR_PUBLIC);
	assert_int_equal(cls("2606:4700::1111"), NET_ADDR_PUBLIC);
	assert_int_equal(cls("127.0.0.1"), NET_ADDR_LOOPBACK);
	assert_int_equal(cls("127.255.0.9"), NET_ADDR_LOOPBACK);
	assert_int_equal(cls("::1"), NET_ADDR_LOOPBACK);
	assert_int_equal(cls("::ffff:127.0.0.1"), NET_ADDR_LOOPBACK);
	assert_int_equal(cls("10.1.1.1"), NET_ADDR_PRIVATE);
	assert_int_equal(cls("172.16.0.1"), NET_ADDR_PRIVATE);
	assert_int_equal(cls("172.31.255.255"), NET_ADDR_PRIVATE);
	assert_int_equal(cls("172.32.0.1"), NET_ADDR_PUBLIC);
	assert_int_equal(cls("192.168.1.1"), NET_ADDR_PRIVATE);
	assert_int_equal(cls("100.64.0.1"), NET_ADDR_PRIVATE);
	assert_int_equal(cls("100.128.0.1"), NET_ADDR_PUBLIC);
	assert_int_equal(cls("fc00::1"), NET_ADDR_PRIVATE);
	assert_int_equal(cls("fd00:ec2::254"), NET_ADDR_PRIVATE);
	assert_int_equal(cls("::ffff:192.168.0.1"), NET_ADDR_PRIVATE);
	assert_int_equal(cls("169.254.169.254"), NET_ADDR_METADATA);
	assert_int_equal(cls("100.100.100.200"), NET_ADDR_METADATA);
	assert_int_equal(cls("100.100.100.201"), NET_ADDR_PRIVATE); /* still in 100.64/10 */
	assert_int_equal(cls("::ffff:169.254.169.254"), NET_ADDR_METADATA);
	assert_int_equal(cls("169.254.1.1"), NET_ADDR_LINK_LOCAL);
	assert_int_equal(cls("fe80::1"), NET_ADDR_LINK_LOCAL);
	assert_int_equal(cls("0.0.0.0"), NET_ADDR_UNSPECIFIED);
	assert_int_equal(cls("0.1.2.3"), NET_ADDR_UNSPECIFIED);
	assert_int_equal(cls("::"), NET_ADDR_UNSPECIFIED);
	assert_int_equal(cls("224.0.0.1"), NET_ADDR_MULTICAST);
	assert_int_equal(cls("ff02::1"), NET_ADDR_MULTICAST);
	assert_int_equal(cls("255.255.255.255"), NET_ADDR_RESERVED);
	/* IPv6 forms that carry an IPv4 address are what they carry */
	assert_int_equal(cls("64:ff9b::7f00:1"), NET_ADDR_LOOPBACK);
	assert_int_equal(cls("64:ff9b::808:808"), NET_ADDR_PUBLIC);
	assert_int_equal(cls("2002:a9fe:a9fe::1"), NET_ADDR_METADATA);
	assert_int_equal(cls("::127.0.0.1"), NET_ADDR_LOOPBACK);
}

static void listed_names_never_reach_internal_addresses(void **state __attribute__((unused)))
{
	static const char *const e[] = {"localhost:8080", "svc.example:80", "127.0.0.1:9000"};
	struct netpolicy np = build(e, 3);
	const struct np_entry *by_name = netpolicy_match_name(&np, "localhost", 8080), *by;
	char why[200];
	uint8_t a[16];
	int af = addr_of("127.0.0.1", a);
	assert_non_null(by_name);
	/* DNS rebinding: the name is listed, the address it gives is loopback */
	assert_int_equal(
	    netpolicy_decide_resolved(&np, by_name, af, a, 8080, &by, why, sizeof(why)), 0);
	assert_string_equal(why, "resolves to loopback address 127.0.0.1, refused unless the "
				 "address itself is listed");
	/* ... unless the policy lists that address (and port) itself */
	assert_int_equal(netpolicy_decide_resolved(&np, NULL, af, a, 9000, &by, why, sizeof(why)),
			 1);
	assert_string_equal(by->text, "127.0.0.1:9000");
	by_name = netpolicy_match_name(&np, "svc.example", 80);
	af = addr_of("169.254.169.254", a);
	assert_int_equal(netpolicy_decide_resolved(&np, by_name, af, a, 80, &by, why, sizeof(why)),
			 0);
	assert_non_null(strstr(why, "cloud metadata"));
	af = addr_of("::ffff:10.0.0.1", a);
	assert_int_equal(netpolicy_decide_resolved(&np, by_name, af, a, 80, &by, why, sizeof(why)),
			 0);
	assert_non_null(strstr(why, "private"));
	af = addr_of("198.51.100.20", a);
	assert_int_equal(netpolicy_decide_resolved(&np, by_name, af, a, 80, &by, why, sizeof(why)),
			 1);
	assert_string_equal(by->text, "svc.example:80");
	netpolicy_free(&np);
}

static void literal_targets_need_an_address_entry(void **state __attribute__((unused)))
{
	static const char *const e[] = {"example.com:443", "192.168.7.0/24:22"};
	struct netpolicy np = build(e, 2);
	const struct np_entry *by;
	char why[200];
	uint8_t a[16];
	int af = addr_of("93.184.216.34", a);
	assert_int_equal(netpolicy_decide_literal(&np, af, a, 443, &by, why, sizeof(why)), 0);
	assert_string_equal(why, "address not in the allowlist");
	af = addr_of("169.254.169.254", a);
	assert_int_equal(netpolicy_decide_literal(&np, af, a, 80, &by, why, sizeof(why)), 0);
	assert_string_equal(why, "cloud metadata address not in the allowlist");
	af = addr_of("192.168.7.9", a);
	assert_int_equal(netpolicy_decide_literal(&np, af, a, 22, &by, why, sizeof(why)), 1);
	assert_int_equal(netpolicy_decide_literal(&np, af, a, 23, &by, why, sizeof(why)), 0);
	assert_string_equal(why, "private address not in the allowlist");
	netpolicy_free(&np);
}

static void wide_ranges_do_not_list_internal_addresses(void **state __attribute__((unused)))
{
	static const char *const e[] = {"0.0.0.0/0", "::/0", "169.254.0.0/16", "10.0.0.0/8:22",
					"fd00::/8"};
	struct netpolicy np = build(e, 5);
	const struct np_entry *by;
	char why[200];
	uint8_t a[16];
	static const struct {
		const char *addr;
		uint16_t port;
		int allowed;
	} cases[] = {
	    {"8.8.8.8", 443, 1},      /* 0.0.0.0/0 is the internet */
	    {"2606:4700::1", 443, 1}, /* so is ::/0 */
	    {"127.0.0.1", 80, 0},     /* ... but not the loopback */
	    {"::1", 80, 0},
	    {"::ffff:127.0.0.1", 80, 0},
	    {"10.9.9.9", 80, 0},	/* nor a private range it was not told about */
	    {"10.9.9.9", 22, 1},	/* which "10.0.0.0/8:22" does name */
	    {"169.254.1.1", 80, 1},	/* link-local, listed as such */
	    {"169.254.169.254", 80, 0}, /* the metadata service needs its own entry */
	    {"fd00::5", 80, 1},		/* fd00::/8 is narrower than fc00::/7 */
	    {"64:ff9b::7f00:1", 80, 0}, /* NAT64 of the loopback */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int af = addr_of(cases[i].addr, a);
		int r = netpolicy_decide_literal(&np, af, a, cases[i].port, &by, why, sizeof(why));
		if (r != cases[i].allowed)
			fail_msg("%s:%u: expected %d, got %d (%s)", cases[i].addr, cases[i].port,
				 cases[i].allowed, r, why);
		r = netpolicy_decide_resolved(&np, NULL, af, a, cases[i].port, &by, why,
					      sizeof(why));
		assert_int_equal(r, cases[i].allowed);
	}
	netpolicy_free(&np);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(entries_parse_into_kinds),
	    cmocka_unit_test(build_names_the_bad_entry),
	    cmocka_unit_test(names_match_exactly_or_below_a_suffix),
	    cmocka_unit_test(addresses_match_ranges_and_ports),
	    cmocka_unit_test(address_classes),
	    cmocka_unit_test(listed_names_never_reach_internal_addresses),
	    cmocka_unit_test(literal_targets_need_an_address_entry),
	    cmocka_unit_test(wide_ranges_do_not_list_internal_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
