/* parse.c: the size ("512M", "1.5GiB") and duration ("30s", "1.5m") parsers of policy
 * files, CLI flags and the daemon's options. Exact integer arithmetic, no locale. */
#include "common/common.h"

/* A decimal number "D+[.D+]" at *pp; the fraction keeps its first 18 digits (exact in a
 * uint64) and the rest only has to be digits. Returns false on overflow or bad syntax. */
struct decimal {
	uint64_t ip;		/* integer part */
	uint64_t frac;		/* fraction digits as an integer */
	uint64_t frac_div;	/* 10^(number of kept fraction digits), 1 if none */
	bool has_frac;
	bool overflow;
};

static bool parse_decimal(const char **pp, struct decimal *d)
{
	const char *p = *pp;
	memset(d, 0, sizeof(*d));
	d->frac_div = 1;
	if (!a_digit(*p))
		return false;
	for (; a_digit(*p); p++) {
		uint64_t c = (uint64_t)(*p - '0');
		if (d->ip > (UINT64_MAX - c) / 10)
			d->overflow = true;
		else
			d->ip = d->ip * 10 + c;
	}
	if (*p == '.') {
		p++;
		if (!a_digit(*p))
			return false;
		d->has_frac = true;
		for (int nd = 0; a_digit(*p); p++, nd++) {
			if (nd < 18) {
				d->frac = d->frac * 10 + (uint64_t)(*p - '0');
				d->frac_div *= 10;
			}
		}
	}
	*pp = p;
	return true;
}

/* d * mult, the fraction rounded down; false if it does not fit in a uint64. */
static bool decimal_scale(const struct decimal *d, uint64_t mult, uint64_t *out)
{
	if (d->overflow)
		return false;
	unsigned __int128 v = (unsigned __int128)d->ip * mult;
	v += (unsigned __int128)d->frac * mult / d->frac_div;
	if (v > UINT64_MAX)
		return false;
	*out = (uint64_t)v;
	return true;
}

static int bad_value(agentd_error *err, const char *what, const char *s, const char *reason)
{
	char q[128];
	quote_text(q, sizeof(q), s);
	return agentd_error_set(err, EINVAL, "invalid %s %s: %s", what, q, reason);
}

int parse_size(const char *s, uint64_t *out, agentd_error *err)
{
	static const char syntax[] =
		"expected a number with an optional binary unit K, M, G or T (e.g. 512M, 1GiB, 1.5G)";
	const char *p = s;
	struct decimal d;
	unsigned shift = 0;

	if (!s)
		return bad_value(err, "size", s, "missing");
	if (!*s)
		return bad_value(err, "size", s, "empty");
	if (*s == '-')
		return bad_value(err, "size", s, "must not be negative");
	if (!parse_decimal(&p, &d))
		return bad_value(err, "size", s, syntax);
	const char *u = strchr("kmgt", a_lower(*p));
	if (*p && u) {
		shift = 10 * (unsigned)(u - "kmgt" + 1);
		p++;
		if (a_lower(*p) == 'i')
			p++;
	}
	if (a_lower(*p) == 'b')
		p++;
	if (*p)
		return bad_value(err, "size", s, syntax);
	if (d.has_frac && shift == 0)
		return bad_value(err, "size", s, "a fraction needs a unit (e.g. 1.5G)");
	uint64_t v;
	if (!decimal_scale(&d, 1ULL << shift, &v))
		return bad_value(err, "size", s, "too large");
	*out = v;
	return 0;
}

/* The n letters at p spell name, in any case. */
static bool unit_is(const char *p, size_t n, const char *name)
{
	if (strlen(name) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (a_lower(p[i]) != name[i])
			return false;
	return true;
}

/* Sums "<number><unit>" parts ("1m30s"); a lone bare number is seconds, like sleep(1). */
int parse_duration_ms(const char *s, uint64_t *out, agentd_error *err)
{
	static const char syntax[] =
		"expected a number with a unit ms, s, m, h or d (e.g. 500ms, 2s, 1m30s, 1.5h); "
		"a bare number is seconds";
	static const struct {
		const char *name;
		uint64_t ms;
	} units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	};
	const char *p = s;
	uint64_t total = 0;
	bool first = true;

	if (!s)
		return bad_value(err, "duration", s, "missing");
	if (!*s)
		return bad_value(err, "duration", s, "empty");
	if (*s == '-')
		return bad_value(err, "duration", s, "must not be negative");
	while (*p) {
		struct decimal d;
		if (!parse_decimal(&p, &d))
			return bad_value(err, "duration", s, syntax);
		size_t ulen = 0;
		while (a_alpha(p[ulen]))
			ulen++;
		uint64_t mult = 0;
		if (ulen == 0) {
			/* bare number: only as the whole string */
			if (p[0] || !first)
				return bad_value(err, "duration", s, syntax);
			mult = 1000;
		}
		for (size_t i = 0; i < ARRAY_SIZE(units) && ulen; i++)
			if (unit_is(p, ulen, units[i].name))
				mult = units[i].ms;
		if (!mult)
			return bad_value(err, "duration", s, syntax);
		p += ulen;
		uint64_t v;
		if (!decimal_scale(&d, mult, &v) || v > UINT64_MAX - total)
			return bad_value(err, "duration", s, "too large");
		total += v;
		first = false;
	}
	*out = total;
	return 0;
}
