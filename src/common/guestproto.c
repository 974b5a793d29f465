/* guestproto.c: the codec of the host/guest framed protocol (guestproto.h) — headers,
 * fields, frame reassembly. Pure and allocation-free: the static guest links it as it is,
 * and the host feeds it hostile bytes (fuzzed by fuzz/fuzz_guestproto.c). */
#include "common/guestproto.h"

#include <errno.h>
#include <string.h>

#define GP_FIELD_HDR 6u /* u16 tag | u32 len */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static const char *const type_names[] = {
	[GP_HELLO] = "HELLO",
	[GP_STARTED] = "STARTED",
	[GP_STDOUT] = "STDOUT",
	[GP_STDERR] = "STDERR",
	[GP_EXIT] = "EXIT",
	[GP_ERROR] = "ERROR",
	[GP_OK] = "OK",
	[GP_PONG] = "PONG",
	[GP_SETUP] = "SETUP",
	[GP_EXEC] = "EXEC",
	[GP_STDIN] = "STDIN",
	[GP_SIGNAL] = "SIGNAL",
	[GP_PING] = "PING",
	[GP_FREEZE] = "FREEZE",
	[GP_THAW] = "THAW",
	[GP_POWEROFF] = "POWEROFF",
	[GP_RESIZE] = "RESIZE",
	[GP_CREDIT] = "CREDIT",
	[GP_STREAM_OPEN] = "STREAM_OPEN",
	[GP_STREAM_DATA] = "STREAM_DATA",
	[GP_STREAM_CLOSE] = "STREAM_CLOSE",
	[GP_FILE_GET] = "FILE_GET",
	[GP_FILE_PUT] = "FILE_PUT",
	[GP_FILE_DATA] = "FILE_DATA",
	[GP_FILE_END] = "FILE_END",
	[GP_FILE_STAT] = "FILE_STAT",
	[GP_FILE_LIST] = "FILE_LIST",
	[GP_FILE_REMOVE] = "FILE_REMOVE",
	[GP_FILE_MKDIR] = "FILE_MKDIR",
};

/* The types of enum gp_type are the only ones with a name. */
const char *gp_type_name(uint16_t type)
{
	if (type < sizeof(type_names) / sizeof(type_names[0]) && type_names[type])
		return type_names[type];
	return "?";
}

bool gp_type_is_data(uint16_t type)
{
	return type == GP_STDIN || type == GP_STDOUT || type == GP_STDERR ||
	       type == GP_STREAM_DATA || type == GP_FILE_DATA;
}

int gp_hdr_decode(const uint8_t *buf, struct gp_hdr *h)
{
	h->len = get32(buf);
	h->type = get16(buf + 4);
	h->flags = get16(buf + 6);
	h->chan = get32(buf + 8);
	if (h->len > GP_MAX_PAYLOAD || h->flags != 0 || gp_type_name(h->type)[0] == '?')
		return -EPROTO;
	return 0;
}

void gp_hdr_encode(uint8_t *buf, const struct gp_hdr *h)
{
	put32(buf, h->len);
	put16(buf + 4, h->type);
	put16(buf + 6, h->flags);
	put32(buf + 8, h->chan);
}

void gp_w_init(struct gp_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = false;
}

/* Room for a field of n value bytes? Marks the overflow (sticky) when not. */
static bool w_room(struct gp_writer *w, size_t n)
{
	if (w->overflow || n > UINT32_MAX || w->cap - w->len < GP_FIELD_HDR ||
	    w->cap - w->len - GP_FIELD_HDR < n) {
		w->overflow = true;
		return false;
	}
	return true;
}

static void w_field_hdr(struct gp_writer *w, uint16_t tag, uint32_t n)
{
	put16(w->buf + w->len, tag);
	put32(w->buf + w->len + 2, n);
	w->len += GP_FIELD_HDR;
}

void gp_w_u64(struct gp_writer *w, uint16_t tag, uint64_t v)
{
	if (!w_room(w, 8))
		return;
	w_field_hdr(w, tag, 8);
	put32(w->buf + w->len, (uint32_t)v);
	put32(w->buf + w->len + 4, (uint32_t)(v >> 32));
	w->len += 8;
}

void gp_w_bytes(struct gp_writer *w, uint16_t tag, const void *p, size_t n)
{
	if (!w_room(w, n))
		return;
	w_field_hdr(w, tag, (uint32_t)n);
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void gp_w_str(struct gp_writer *w, uint16_t tag, const char *s)
{
	size_t n = strlen(s);
	if (n > GP_MAX_STRING) {
		w->overflow = true; /* the peer would refuse it: fail here, not there */
		return;
	}
	gp_w_bytes(w, tag, s, n);
}

size_t gp_w_begin(struct gp_writer *w, uint16_t tag)
{
	if (!w_room(w, 0))
		return (size_t)-1;
	size_t off = w->len;
	w_field_hdr(w, tag, 0);
	return off;
}

void gp_w_end(struct gp_writer *w, size_t off)
{
	if (w->overflow || off > w->len || w->len - off < GP_FIELD_HDR) {
		w->overflow = true;
		return;
	}
	size_t n = w->len - off - GP_FIELD_HDR;
	if (n > UINT32_MAX) {
		w->overflow = true;
		return;
	}
	put32(w->buf + off + 2, (uint32_t)n);
}

int gp_w_done(const struct gp_writer *w)
{
	return w->overflow || w->len > GP_MAX_PAYLOAD ? -EMSGSIZE : 0;
}

void gp_r_init(struct gp_reader *r, const void *payload, size_t len)
{
	r->p = payload;
	r->left = len;
	r->count = 0;
}

int gp_r_next(struct gp_reader *r, struct gp_field *f)
{
	if (r->left == 0)
		return 0;
	if (r->left < GP_FIELD_HDR || r->count >= GP_MAX_FIELDS)
		goto bad;
	uint32_t n = get32(r->p + 2);
	if (n > r->left - GP_FIELD_HDR)
		goto bad;
	f->tag = get16(r->p);
	f->len = n;
	f->val = r->p + GP_FIELD_HDR;
	r->p += GP_FIELD_HDR + n;
	r->left -= GP_FIELD_HDR + n;
	r->count++;
	return 1;
bad:
	r->left = 0; /* a broken payload stays broken: nothing after it is read */
	return -EPROTO;
}

int gp_f_u64(const struct gp_field *f, uint64_t *v)
{
	if (f->len != 8)
		return -EPROTO;
	*v = (uint64_t)get32(f->val) | (uint64_t)get32(f->val + 4) << 32;
	return 0;
}

int gp_f_str(const struct gp_field *f, char *out, size_t out_cap)
{
	if (f->len > GP_MAX_STRING || f->len >= out_cap || memchr(f->val, 0, f->len))
		return -EPROTO;
	if (f->len)
		memcpy(out, f->val, f->len);
	out[f->len] = '\0';
	return 0;
}

void gp_rx_init(struct gp_rx *rx, uint8_t *buf, size_t cap)
{
	rx->buf = buf;
	rx->cap = cap;
	rx->have = 0;
	rx->off = 0;
}

uint8_t *gp_rx_space(struct gp_rx *rx, size_t *room)
{
	if (rx->off > 0) {
		memmove(rx->buf, rx->buf + rx->off, rx->have - rx->off);
		rx->have -= rx->off;
		rx->off = 0;
	}
	*room = rx->cap - rx->have;
	return rx->buf + rx->have;
}

void gp_rx_commit(struct gp_rx *rx, size_t n)
{
	rx->have += n <= rx->cap - rx->have ? n : rx->cap - rx->have;
}

int gp_rx_frame(struct gp_rx *rx, struct gp_hdr *h, const uint8_t **payload)
{
	size_t avail = rx->have - rx->off;
	if (avail < GP_HDR_SIZE)
		return 0;
	/* a bad header is not consumed: every later call fails the same way */
	if (gp_hdr_decode(rx->buf + rx->off, h) < 0 || GP_HDR_SIZE + (size_t)h->len > rx->cap)
		return -EPROTO;
	if (avail - GP_HDR_SIZE < h->len)
		return 0;
	*payload = rx->buf + rx->off + GP_HDR_SIZE;
	rx->off += GP_HDR_SIZE + h->len;
	return 1;
}
