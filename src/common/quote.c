/* quote.c: pieces of error messages built from hostile or odd input: a string quoted with
 * escapes and cut, and the JSON path of a key. */
#include "common/common.h"

/* Length of the valid UTF-8 sequence at s (NUL-terminated), 0 if none starts there. */
static size_t utf8_seq_len(const char *s)
{
	unsigned char c = (unsigned char)s[0];
	size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
	if (strnlen(s, n) < n || !utf8_valid((const uint8_t *)s, n))
		return 0;
	return n;
}

void quote_text(char *buf, size_t size, const char *s)
{
	/* Inputs come from users and files: keep the message one readable line of valid UTF-8
	 * (it may end up in a JSON error) whatever they hold, and short enough that the reason
	 * after it still fits in agentd_error. */
	size_t o = 0;
	if (size < 16) {
		if (size)
			buf[0] = '\0';
		return;
	}
	if (!s) {
		snprintf(buf, size, "(null)");
		return;
	}
	buf[o++] = '"';
	for (size_t i = 0; s[i];) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c >= 0x80 ? utf8_seq_len(s + i) : 1;
		/* room for the longest step (4 bytes), "...", the closing quote and NUL */
		if (i >= 64 || o + 4 + 5 >= size) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f || n == 0) {
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
			n = 1;
		} else {
			memcpy(buf + o, s + i, n);
			o += n;
		}
		i += n;
	}
	buf[o++] = '"';
	buf[o] = '\0';
}

/* Keys written bare in a JSON path: identifiers, dashes allowed. */
static bool is_path_ident(const char *s)
{
	if (!s || !(a_alpha(*s) || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!(a_alnum(*s) || *s == '_' || *s == '-'))
			return false;
	return true;
}

void json_path_key(char *buf, size_t size, const char *prefix, const char *key)
{
	if (is_path_ident(key) && strlen(key) <= 64) {
		snprintf(buf, size, "%s%s%s", prefix, *prefix ? "." : "", key);
	} else {
		char q[128];
		quote_text(q, sizeof(q), key);
		snprintf(buf, size, "%s[%s]", prefix, q);
	}
}

/* jansson quotes the input near a syntax error and cuts its text at a fixed length: keep the
 * message one line of valid UTF-8 (it may be sent on as a JSON error) whatever the input. */
void text_scrub_line(char *s)
{
	for (size_t i = 0; s[i];) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		if (c < 0x20 || c == 0x7f) {
			s[i++] = '?';
		} else if (c < 0x80) {
			i++;
		} else if (strnlen(s + i, n) == n && utf8_valid((const uint8_t *)s + i, n)) {
			i += n;
		} else {
			s[i++] = '?';
		}
	}
}
