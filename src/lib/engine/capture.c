/* capture.c: a command's stdout and stderr under max_output_bytes, per stream: the head
 * and the tail are kept (the traceback at the end is what a reader needs most), the middle
 * is counted and replaced by a marker; live output stops at the cap and resumes with the
 * tail when the command ends. */
#include "lib/engine/engine.h"

/* Bytes past the head go to a ring of the tail's size, so its last wrap holds the tail. */
static void ring_put(struct capture *c, const uint8_t *buf, size_t n)
{
	size_t cap = c->tail_cap;
	if (n > cap) {
		buf += n - cap;
		n = cap;
	}
	size_t first = cap - c->ring_pos < n ? cap - c->ring_pos : n;
	memcpy(c->ring + c->ring_pos, buf, first);
	memcpy(c->ring, buf + first, n - first);
	c->ring_pos = (c->ring_pos + n) % cap;
}

/* Copy the ring's last n bytes (n <= what it holds) to dst, oldest first. */
static void ring_last(const struct capture *c, size_t n, uint8_t *dst)
{
	size_t cap = c->tail_cap;
	size_t start = (c->ring_pos + cap - n) % cap;
	size_t first = cap - start < n ? cap - start : n;
	memcpy(dst, c->ring + start, first);
	memcpy(dst + first, c->ring, n - first);
}

/* Append n bytes to a NUL-terminated output buffer (left as it is for n == 0). */
static void append(uint8_t **out, size_t *len, const void *p, size_t n)
{
	if (!n)
		return;
	*out = xrealloc(*out, *len + n + 1);
	memcpy(*out + *len, p, n);
	*len += n;
	(*out)[*len] = '\0';
}

void capture_init(struct capture *c, uint64_t max)
{
	memset(c, 0, sizeof(*c));
	c->max = max;
	c->head_cap = max - max / 2;
	c->tail_cap = max / 2;
}

void capture_free(struct capture *c)
{
	free(c->ring);
	c->ring = NULL;
}

void capture_add(struct capture *c, uint8_t **out, size_t *out_len, const uint8_t *buf,
		 size_t n, size_t *live)
{
	uint64_t before = c->seen;
	c->seen += n;
	/* live: what of this chunk is within the first max bytes */
	*live = before >= c->max ? 0 : c->max - before < n ? (size_t)(c->max - before) : n;
	size_t head = before >= c->head_cap ? 0
		      : c->head_cap - before < n ? (size_t)(c->head_cap - before) : n;
	append(out, out_len, buf, head);
	if (n > head && c->tail_cap) {
		if (!c->ring)
			c->ring = xmalloc(c->tail_cap);
		ring_put(c, buf + head, n - head);
	}
}

/* Where to cut so that no UTF-8 character is split: the head loses an incomplete last
 * character, the tail its leading continuation bytes. Binary output loses at most 3 bytes
 * more than the marker says. */
static size_t tail_skip(const uint8_t *t, size_t n)
{
	size_t k = 0;
	while (k < 3 && k < n && (t[k] & 0xC0) == 0x80)
		k++;
	return k < n && k < 3 ? k : 0;
}

static size_t marker_text(char m[80], uint64_t omitted)
{
	return (size_t)snprintf(m, 80, "\n[... %llu byte%s omitted ...]\n",
				(unsigned long long)omitted, omitted == 1 ? "" : "s");
}

void capture_finish(struct capture *c, uint8_t **out, size_t *out_len, agentd_stream s,
		    agentd_output_cb on_output, void *ud)
{
	uint64_t ringed = c->seen > c->head_cap ? c->seen - c->head_cap : 0;
	size_t held = ringed < c->tail_cap ? (size_t)ringed : c->tail_cap;
	_cleanup_free_ uint8_t *tail = xmalloc(held + 1);
	if (held)
		ring_last(c, held, tail);
	capture_free(c);
	if (c->seen <= c->max) {
		append(out, out_len, tail, held); /* nothing dropped: the rest, in order */
		return;
	}
	if (on_output) {
		/* live readers saw the first max bytes; they get the tail beyond those */
		uint64_t tail_from = c->seen - held > c->max ? c->seen - held : c->max;
		size_t n = (size_t)(c->seen - tail_from);
		if (n) {
			char m[80];
			size_t mn = marker_text(m, tail_from - c->max);
			if (tail_from > c->max)
				on_output(ud, s, (const uint8_t *)m, mn);
			on_output(ud, s, tail + held - n, n);
		}
	}
	if (!c->max)
		return; /* 0 captures nothing, not even a marker */
	*out_len -= utf8_incomplete_tail(*out, *out_len);
	size_t skip = tail_skip(tail, held);
	char m[80];
	size_t mn = marker_text(m, c->seen - *out_len - (held - skip));
	append(out, out_len, m, mn);
	append(out, out_len, tail + skip, held - skip);
}
