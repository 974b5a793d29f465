/* term.c: a sandbox's output on the caller's terminal. Written verbatim, it could set the
 * clipboard (OSC 52), clear or repaint the screen, retitle the window or hide lines, so on a
 * terminal every control character but newline and tab is shown escaped (docs/cli.md#output). */
#include "cli/cli.h"

#include <unistd.h>

void term_out_init(struct term_out *t, int fd, bool raw)
{
	memset(t, 0, sizeof(*t));
	t->fd = fd;
	t->escape = !raw && isatty(fd);
}

/* Controls that move, erase or reorder what is shown: C1 (U+0080..U+009F: a terminal may
 * read U+009B as CSI) and the bidirectional overrides and isolates that make text read
 * differently from its bytes. */
static bool hidden_effect(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

struct outbuf {
	int fd;
	char b[4096];
	size_t n;
};

static void ob_flush(struct outbuf *o)
{
	(void)write_all(o->fd, o->b, o->n); /* a reader that went away is its choice */
	o->n = 0;
}

static void ob_put(struct outbuf *o, const void *p, size_t n)
{
	if (o->n + n > sizeof(o->b))
		ob_flush(o);
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

/* \xNN for a byte, \uNNNN for a code point */
static void ob_escape(struct outbuf *o, bool code_point, uint32_t v)
{
	char e[16];
	int n = code_point ? snprintf(e, sizeof(e), "\\u%04x", v)
			   : snprintf(e, sizeof(e), "\\x%02x", v);
	ob_put(o, e, (size_t)n);
}

/* Escape data[0..len); returns how many trailing bytes wait for the next chunk (an
 * incomplete character, or a \r that a \n may follow), 0 when final. */
static size_t escape_into(struct outbuf *o, const uint8_t *d, size_t len, bool final)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = d[i];
		uint32_t cp;
		if (c == '\r' && i + 1 == len && !final)
			return 1;
		if (c == '\n' || c == '\t' || (c == '\r' && i + 1 < len && d[i + 1] == '\n')) {
			ob_put(o, &c, 1);
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7F) {
			ob_escape(o, false, c);
			i++;
			continue;
		}
		int n = utf8_next(d + i, len - i, &cp);
		if (n == 0 && !final)
			return len - i;
		if (n <= 0) {
			ob_escape(o, false, c); /* not UTF-8: C1 as a raw byte, say */
			i++;
		} else if (hidden_effect(cp)) {
			ob_escape(o, true, cp);
			i += (size_t)n;
		} else {
			ob_put(o, d + i, (size_t)n);
			i += (size_t)n;
		}
	}
	return 0;
}

static void term_escape(struct term_out *t, const uint8_t *data, size_t len, bool final)
{
	struct outbuf o = {.fd = t->fd};
	_cleanup_free_ uint8_t *buf = xmalloc(t->n_held + len + 1);
	memcpy(buf, t->held, t->n_held);
	if (len)
		memcpy(buf + t->n_held, data, len);
	len += t->n_held;
	size_t left = escape_into(&o, buf, len, final);
	memcpy(t->held, buf + len - left, left);
	t->n_held = left;
	ob_flush(&o);
}

void term_out_write(struct term_out *t, const uint8_t *data, size_t len)
{
	if (!t->escape) {
		(void)write_all(t->fd, data, len);
		return;
	}
	term_escape(t, data, len, false);
}

void term_out_flush(struct term_out *t)
{
	if (t->escape && t->n_held)
		term_escape(t, NULL, 0, true);
}

int term_json_flags(void)
{
	/* lossless: \uNNNN is the same string to a JSON reader, and a terminal sees no C1 */
	return isatty(1) ? JSON_ENSURE_ASCII : 0;
}

void term_puts_json(const char *compact)
{
	json_t *j = term_json_flags() ? json_loads(compact, 0, NULL) : NULL;
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII) : NULL;
	puts(s ? s : compact);
	free(s);
	json_decref(j);
}

/* ------------------------------------------------------------ an attached terminal */

enum { TF_TEXT, TF_ESC, TF_OSC, TF_DROP, TF_DROP_ESC };

size_t term_filter(struct term_filter *f, const uint8_t *in, size_t n, uint8_t *out)
{
	static const char osc52[] = "\033]52;";
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = in[i];
		switch (f->state) {
		case TF_TEXT:
		case TF_ESC:
		case TF_OSC:
			if (c == (uint8_t)osc52[f->held]) {
				/* still a prefix of ESC ] 5 2 ; : held back */
				f->state = ++f->held == sizeof(osc52) - 1 ? TF_DROP : TF_OSC;
				if (f->state == TF_DROP)
					f->held = 0;
				continue;
			}
			/* not OSC 52: what was held goes out, and c is looked at afresh */
			memcpy(out + k, osc52, f->held);
			k += f->held;
			f->held = 0;
			f->state = TF_TEXT;
			if (c == '\033') {
				f->held = 1;
				f->state = TF_ESC;
			} else {
				out[k++] = c;
			}
			break;
		case TF_DROP: /* until its terminator, BEL or ST (ESC \) */
			f->state = c == '\a' ? TF_TEXT : c == '\033' ? TF_DROP_ESC : TF_DROP;
			break;
		case TF_DROP_ESC:
			f->state = c == '\\' ? TF_TEXT : c == '\033' ? TF_DROP_ESC : TF_DROP;
			break;
		}
	}
	return k;
}
