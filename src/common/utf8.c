/* utf8.c: strict UTF-8 validation (no overlongs, surrogates or code points past U+10FFFF). */
#include "common/common.h"

bool utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if ((c & 0xE0) == 0xC0) {
			n = 1;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		/* overlong, surrogates, out of range */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			return false;
		i += n + 1;
	}
	return true;
}

/* The range of the second byte after lead byte c (RFC 3629's table), so that a prefix is
 * judged as early as the whole: no overlongs (E0 80, F0 80), surrogates (ED A0) or code
 * points past U+10FFFF (F4 90). */
static void second_byte_range(uint8_t c, uint8_t *lo, uint8_t *hi)
{
	*lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
	*hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
}

int utf8_next(const uint8_t *s, size_t len, uint32_t *cp)
{
	uint8_t c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
		   : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
	if (!n)
		return -1;
	uint8_t lo, hi;
	second_byte_range(c, &lo, &hi);
	uint32_t v = c & (0x7F >> n);
	for (size_t k = 1; k < n; k++) {
		if (k == len)
			return 0;
		uint8_t b = s[k];
		if (k == 1 ? b < lo || b > hi : (b & 0xC0) != 0x80)
			return -1;
		v = v << 6 | (b & 0x3F);
	}
	*cp = v;
	return (int)n;
}

size_t utf8_incomplete_tail(const uint8_t *s, size_t len)
{
	uint32_t cp;
	for (size_t k = 1; k <= 3 && k <= len; k++) {
		uint8_t c = s[len - k];
		if ((c & 0xC0) == 0x80)
			continue; /* a continuation byte: its lead is further back */
		return c >= 0xC2 && utf8_next(s + len - k, k, &cp) == 0 ? k : 0;
	}
	return 0;
}

char *utf8_lossy(const uint8_t *s, size_t len, size_t *out_len)
{
	char *out = xmalloc(len * 3 + 1), *o = out;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		int l = utf8_next(s + i, len - i, &cp);
		if (l > 0 && cp != 0) {
			memcpy(o, s + i, (size_t)l);
			o += l;
			i += (size_t)l;
		} else {
			memcpy(o, "\xEF\xBF\xBD", 3); /* U+FFFD */
			o += 3;
			i++;
		}
	}
	*o = '\0';
	*out_len = (size_t)(o - out);
	return out;
}
