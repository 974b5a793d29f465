/* netpolicy.c: the egress allowlist — entry syntax ("host:port", "*.domain:port",
 * "CIDR[:port]"), matching of names and addresses, and the classes of addresses (loopback,
 * private, link-local, metadata...) that a name may never lead to unless listed by address. */
#include "lib/net/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>

static bool np_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool np_alnum(char c)
{
	return np_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool np_all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!np_digit(s[i]))
			return false;
	return true;
}

/* Decimal in lo..hi; at most 5 digits keeps the arithmetic far from overflow. */
static bool np_number(const char *s, size_t n, unsigned lo, unsigned hi, unsigned *out)
{
	if (!np_all_digits(s, n) || n > 5)
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	if (v < lo || v > hi)
		return false;
	if (out)
		*out = v;
	return true;
}

bool net_valid_hostname(const char *s, size_t n)
{
	/* RFC 1123 labels of 1..63 letters, digits and hyphens, 253 bytes in all, and a last
	 * label that is not all digits (so a mistyped IPv4 address is not taken as a name). */
	if (n == 0 || n > 253)
		return false;
	size_t start = 0;
	bool last_numeric = false;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.') {
			if (!np_alnum(s[i]) && s[i] != '-')
				return false;
			continue;
		}
		size_t len = i - start;
		if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-')
			return false;
		last_numeric = np_all_digits(s + start, len);
		start = i + 1;
	}
	return !last_numeric;
}

/* An IPv4-mapped IPv6 address is the IPv4 address: matched and classified as such. */
static void normalise_addr(int *af, uint8_t addr[16])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (*af == AF_INET6 && memcmp(addr, mapped, 12) == 0) {
		memmove(addr, addr + 12, 4);
		memset(addr + 4, 0, 12);
		*af = AF_INET;
	}
}

/* addr[/prefix] of family af into e; s is not NUL-terminated. */
static const char *parse_cidr(const char *s, size_t n, int af, struct np_entry *e)
{
	char a[INET6_ADDRSTRLEN + 1];
	const char *slash = memchr(s, '/', n);
	size_t alen = slash ? (size_t)(slash - s) : n;
	const char *bad_addr = af == AF_INET ? "invalid IPv4 address" : "invalid IPv6 address";
	unsigned max = af == AF_INET ? 32 : 128, prefix = max;

	if (alen == 0 || alen >= sizeof(a))
		return bad_addr;
	memcpy(a, s, alen);
	a[alen] = '\0';
	memset(e->addr, 0, sizeof(e->addr));
	if (inet_pton(af, a, e->addr) != 1)
		return bad_addr;
	if (slash && !np_number(slash + 1, n - alen - 1, 0, max, &prefix))
		return af == AF_INET ? "invalid prefix length (0..32)"
				     : "invalid prefix length (0..128)";
	e->kind = NP_CIDR;
	e->af = af;
	e->prefix = prefix;
	int naf = af;
	normalise_addr(&naf, e->addr);
	if (naf != af) {
		e->af = AF_INET;
		e->prefix = prefix >= 96 ? prefix - 96 : 0;
	}
	/* host bits are ignored, as by every router: 10.1.2.3/8 is 10.0.0.0/8 */
	for (unsigned bit = e->prefix; bit < (e->af == AF_INET ? 32u : 128u); bit++)
		e->addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
	return NULL;
}

static const char *parse_port(const char *s, size_t n, struct np_entry *e)
{
	unsigned p;
	if (!np_number(s, n, 1, 65535, &p))
		return "invalid port (1..65535)";
	e->port = (uint16_t)p;
	return NULL;
}

const char *netpolicy_entry_parse(const char *s, struct np_entry *e)
{
	struct np_entry tmp;
	size_t n = strlen(s);
	const char *r;

	if (!e)
		e = &tmp;
	memset(e, 0, sizeof(*e));
	if (n == 0)
		return "empty";
	if (n > 512)
		return "too long";
	if (!utf8_valid((const uint8_t *)s, n))
		return "expected UTF-8";
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close)
			return "missing ']'";
		if ((r = parse_cidr(s + 1, (size_t)(close - s - 1), AF_INET6, e)))
			return r;
		if (close[1] == '\0')
			return NULL;
		if (close[1] != ':')
			return "expected ':port' after ']'";
		return parse_port(close + 2, strlen(close + 2), e);
	}

	size_t colons = 0;
	for (const char *c = s; *c; c++)
		colons += *c == ':';
	if (colons >= 2) {
		/* "::1:443" is a valid address: a port needs the brackets */
		r = parse_cidr(s, n, AF_INET6, e);
		if (r && strcmp(r, "invalid IPv6 address") == 0)
			return "invalid IPv6 address (with a port, write [addr]:port)";
		return r;
	}

	const char *colon = strchr(s, ':');
	size_t hlen = colon ? (size_t)(colon - s) : n;
	if (colon && (r = parse_port(colon + 1, strlen(colon + 1), e)))
		return r;
	uint16_t port = e->port;
	if (memchr(s, '/', hlen)) {
		r = parse_cidr(s, hlen, AF_INET, e);
		e->port = port;
		return r;
	}
	if (!parse_cidr(s, hlen, AF_INET, e)) {
		e->port = port;
		return NULL;
	}
	e->port = port;
	if (!colon)
		return "expected host:port, *.domain:port or CIDR[:port]";
	const char *name = s;
	e->kind = NP_NAME;
	if (hlen >= 2 && s[0] == '*' && s[1] == '.') {
		name += 2;
		hlen -= 2;
		e->kind = NP_SUFFIX;
		if (!net_valid_hostname(name, hlen))
			return "invalid domain after \"*.\"";
	} else if (!net_valid_hostname(name, hlen)) {
		return "invalid host name";
	}
	for (size_t i = 0; i < hlen; i++)
		e->name[i] =
		    (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
	e->name[hlen] = '\0';
	return NULL;
}

int netpolicy_build(const agentd_strv *allow, struct netpolicy *np, agentd_error *err)
{
	memset(np, 0, sizeof(*np));
	np->v = xcalloc(allow->n ? allow->n : 1, sizeof(*np->v));
	for (size_t i = 0; i < allow->n; i++) {
		const char *r = netpolicy_entry_parse(allow->v[i], &np->v[i]);
		if (r) {
			char q[128];
			quote_text(q, sizeof(q), allow->v[i]);
			netpolicy_free(np);
			return agentd_error_set(
			    err, EINVAL, "network.allow[%zu]: invalid entry %s: %s", i, q, r);
		}
		snprintf(np->v[i].text, sizeof(np->v[i].text), "%s", allow->v[i]);
		np->n++;
		np->has_cidr |= np->v[i].kind == NP_CIDR;
	}
	return 0;
}

void netpolicy_free(struct netpolicy *np)
{
	free(np->v);
	np->v = NULL;
	np->n = 0;
}

/* Host names compare case-insensitively and without a trailing dot. */
static size_t name_len(const char *host)
{
	size_t n = strlen(host);
	return n && host[n - 1] == '.' ? n - 1 : n;
}

const struct np_entry *netpolicy_match_name(const struct netpolicy *np, const char *host,
					    uint16_t port)
{
	size_t hn = name_len(host);
	for (size_t i = 0; i < np->n; i++) {
		const struct np_entry *e = &np->v[i];
		if (e->port != port || (e->kind != NP_NAME && e->kind != NP_SUFFIX))
			continue;
		size_t en = strlen(e->name);
		if (e->kind == NP_NAME) {
			if (hn == en && strncasecmp(host, e->name, en) == 0)
				return e;
			continue;
		}
		/* "*.example.com" is every name below example.com, not example.com itself */
		if (hn > en + 1 && host[hn - en - 1] == '.' &&
		    strncasecmp(host + hn - en, e->name, en) == 0)
			return e;
	}
	return NULL;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	size_t bytes = bits / 8;
	if (memcmp(a, b, bytes) != 0)
		return false;
	unsigned rest = bits % 8;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff00u >> rest);
	return (a[bytes] & mask) == (b[bytes] & mask);
}

const struct np_entry *netpolicy_match_addr(const struct netpolicy *np, int af,
					    const uint8_t *addr_in, uint16_t port)
{
	uint8_t addr[16] = {0};
	memcpy(addr, addr_in, af == AF_INET ? 4 : 16);
	normalise_addr(&af, addr);
	for (size_t i = 0; i < np->n; i++) {
		const struct np_entry *e = &np->v[i];
		if (e->kind != NP_CIDR || e->af != af || (e->port && e->port != port))
			continue;
		if (prefix_equal(addr, e->addr, e->prefix))
			return e;
	}
	return NULL;
}

/* ------------------------------------------------------- address classes */

struct v4_range {
	uint32_t net;
	unsigned bits;
	enum net_addr_class cls;
};

/* Most specific first: 169.254.169.254 is metadata before it is link-local. */
static const struct v4_range v4_ranges[] = {
    {0xa9fea9feu, 32, NET_ADDR_METADATA},   /* 169.254.169.254 (AWS, GCP, Azure...) */
    {0x646464c8u, 32, NET_ADDR_METADATA},   /* 100.100.100.200 (Alibaba metadata) */
    {0x00000000u, 8, NET_ADDR_UNSPECIFIED}, /* 0.0.0.0/8 "this network" */
    {0x0a000000u, 8, NET_ADDR_PRIVATE},	    /* 10/8 */
    {0x64400000u, 10, NET_ADDR_PRIVATE},    /* 100.64/10 carrier-grade NAT */
    {0x7f000000u, 8, NET_ADDR_LOOPBACK},    /* 127/8 */
    {0xa9fe0000u, 16, NET_ADDR_LINK_LOCAL}, /* 169.254/16 */
    {0xac100000u, 12, NET_ADDR_PRIVATE},    /* 172.16/12 */
    {0xc0000000u, 24, NET_ADDR_RESERVED},   /* 192.0.0/24 IETF protocol assignments */
    {0xc0a80000u, 16, NET_ADDR_PRIVATE},    /* 192.168/16 */
    {0xc6120000u, 15, NET_ADDR_PRIVATE},    /* 198.18/15 benchmarking, often internal */
    {0xe0000000u, 4, NET_ADDR_MULTICAST},   /* 224/4 */
    {0xf0000000u, 4, NET_ADDR_RESERVED},    /* 240/4 and the broadcast address */
};

/* The class of an IPv4 address and, in *bits, the prefix length of the range that gave it. */
static enum net_addr_class classify_v4(const uint8_t *a, unsigned *bits)
{
	uint32_t v = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
	for (size_t i = 0; i < ARRAY_SIZE(v4_ranges); i++) {
		uint32_t mask = v4_ranges[i].bits ? ~0u << (32 - v4_ranges[i].bits) : 0;
		if ((v & mask) == v4_ranges[i].net) {
			*bits = v4_ranges[i].bits;
			return v4_ranges[i].cls;
		}
	}
	*bits = 0;
	return NET_ADDR_PUBLIC;
}

/* An IPv4 address carried at bit offset `at` of an IPv6 one: its class, its range shifted. */
static enum net_addr_class classify_embedded(const uint8_t *v4, unsigned at, unsigned *bits,
					     enum net_addr_class if_public)
{
	enum net_addr_class c = classify_v4(v4, bits);
	*bits = c == NET_ADDR_PUBLIC ? (if_public == NET_ADDR_PUBLIC ? 0 : at) : at + *bits;
	return c == NET_ADDR_PUBLIC ? if_public : c;
}

/* addr already normalised (IPv4-mapped is IPv4). */
static enum net_addr_class classify(int af, const uint8_t *a, unsigned *bits)
{
	if (af == AF_INET)
		return classify_v4(a, bits);
	static const uint8_t zero[16] = {0};
	*bits = 128;
	if (memcmp(a, zero, 15) == 0)
		return a[15] == 1   ? NET_ADDR_LOOPBACK
		       : a[15] == 0 ? NET_ADDR_UNSPECIFIED
				    : NET_ADDR_RESERVED;
	/* Forms that carry an IPv4 address reach whatever that address is: NAT64
	 * 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16, IPv4-compatible ::/96. */
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
	static const uint8_t nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};
	if (memcmp(a, nat64, 12) == 0 || memcmp(a, nat64_local, 6) == 0)
		return classify_embedded(a + 12, 96, bits, NET_ADDR_PUBLIC);
	if (a[0] == 0x20 && a[1] == 0x02)
		return classify_embedded(a + 2, 16, bits, NET_ADDR_PUBLIC);
	if (memcmp(a, zero, 12) == 0)
		return classify_embedded(a + 12, 96, bits, NET_ADDR_RESERVED);
	static const struct {
		uint8_t b0, mask1, b1;
		unsigned bits;
		enum net_addr_class cls;
	} v6_ranges[] = {
	    {0xff, 0x00, 0x00, 8, NET_ADDR_MULTICAST},
	    {0xfe, 0xc0, 0x80, 10, NET_ADDR_LINK_LOCAL},
	    {0xfe, 0xc0, 0xc0, 10, NET_ADDR_PRIVATE}, /* fec0::/10 site-local (deprecated) */
	};
	for (size_t i = 0; i < ARRAY_SIZE(v6_ranges); i++)
		if (a[0] == v6_ranges[i].b0 && (a[1] & v6_ranges[i].mask1) == v6_ranges[i].b1) {
			*bits = v6_ranges[i].bits;
			return v6_ranges[i].cls;
		}
	if ((a[0] & 0xfe) == 0xfc) {
		*bits = 7;
		return NET_ADDR_PRIVATE; /* fc00::/7 unique local (fd00:ec2::254 too) */
	}
	if (a[0] == 0x01 && a[1] == 0 && memcmp(a + 2, zero, 6) == 0) {
		*bits = 64;
		return NET_ADDR_RESERVED; /* 100::/64 discard */
	}
	*bits = 0;
	return NET_ADDR_PUBLIC;
}

enum net_addr_class net_addr_classify(int af, const uint8_t *addr_in)
{
	uint8_t a[16] = {0};
	unsigned bits;
	memcpy(a, addr_in, af == AF_INET ? 4 : 16);
	normalise_addr(&af, a);
	return classify(af, a, &bits);
}

/* The CIDR entry that lists addr as specifically as its class asks: any entry for a public
 * address; for another, an entry no wider than the range that makes it internal — so
 * "0.0.0.0/0" is the internet, not also the loopback or the metadata service, while
 * "10.0.0.0/8" or "127.0.0.1:8080" name what they allow. */
static const struct np_entry *listed(const struct netpolicy *np, int af, const uint8_t *addr_in,
				     uint16_t port, enum net_addr_class *cls)
{
	uint8_t a[16] = {0};
	unsigned bits;
	memcpy(a, addr_in, af == AF_INET ? 4 : 16);
	normalise_addr(&af, a);
	*cls = classify(af, a, &bits);
	for (size_t i = 0; i < np->n; i++) {
		const struct np_entry *e = &np->v[i];
		if (e->kind != NP_CIDR || e->af != af || (e->port && e->port != port))
			continue;
		if (prefix_equal(a, e->addr, e->prefix) &&
		    (*cls == NET_ADDR_PUBLIC || e->prefix >= bits))
			return e;
	}
	return NULL;
}

const char *net_addr_class_name(enum net_addr_class c)
{
	static const char *const names[] = {
	    [NET_ADDR_PUBLIC] = "public",	    [NET_ADDR_LOOPBACK] = "loopback",
	    [NET_ADDR_PRIVATE] = "private",	    [NET_ADDR_LINK_LOCAL] = "link-local",
	    [NET_ADDR_METADATA] = "cloud metadata", [NET_ADDR_MULTICAST] = "multicast",
	    [NET_ADDR_UNSPECIFIED] = "unspecified", [NET_ADDR_RESERVED] = "reserved",
	};
	return (unsigned)c < ARRAY_SIZE(names) ? names[c] : "unknown";
}

/* ------------------------------------------------------------ decisions */

int netpolicy_decide_literal(const struct netpolicy *np, int af, const uint8_t *addr, uint16_t port,
			     const struct np_entry **by, char *why, size_t why_len)
{
	enum net_addr_class c;
	*by = listed(np, af, addr, port, &c);
	if (*by)
		return 1;
	if (c == NET_ADDR_PUBLIC)
		snprintf(why, why_len, "address not in the allowlist");
	else
		snprintf(why, why_len, "%s address not in the allowlist", net_addr_class_name(c));
	return 0;
}

int netpolicy_decide_resolved(const struct netpolicy *np, const struct np_entry *by_name, int af,
			      const uint8_t *addr, uint16_t port, const struct np_entry **by,
			      char *why, size_t why_len)
{
	/* An address listed as such is allowed whatever its class: the policy named it. */
	enum net_addr_class c;
	*by = listed(np, af, addr, port, &c);
	if (*by)
		return 1;
	if (by_name && c == NET_ADDR_PUBLIC) {
		*by = by_name;
		return 1;
	}
	char a[INET6_ADDRSTRLEN];
	inet_ntop(af, addr, a, sizeof(a));
	if (!by_name)
		snprintf(why, why_len, "name not in the allowlist and %s not in a listed range", a);
	else
		snprintf(why, why_len,
			 "resolves to %s address %s, refused unless the address itself is listed",
			 net_addr_class_name(c), a);
	return 0;
}

bool netpolicy_every_address_for_port(const struct netpolicy *np, uint16_t port)
{
	for (size_t i = 0; i < np->n; i++)
		if (np->v[i].kind == NP_CIDR && np->v[i].prefix == 0 &&
		    (np->v[i].port == 0 || np->v[i].port == port))
			return true;
	return false;
}
