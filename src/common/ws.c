/* ws.c: the WebSocket codec (RFC 6455) and the attach control messages, for the daemon and
 * the CLI alike. Bytes from the peer are hostile: every field is checked before it is used,
 * and no length the peer announces is allocated before it is known to be within bounds. */
#include "common/ws.h"

#include <jansson.h>
#include <nettle/sha1.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

bool ws_key_valid(const char *key)
{
	uint8_t *raw;
	size_t n;
	if (!key || strlen(key) != 24 || base64_decode(key, 24, &raw, &n) < 0)
		return false;
	free(raw);
	return n == 16;
}

void ws_accept_key(const char *key, char out[29])
{
	struct sha1_ctx ctx;
	uint8_t digest[SHA1_DIGEST_SIZE];
	sha1_init(&ctx);
	sha1_update(&ctx, strlen(key), (const uint8_t *)key);
	sha1_update(&ctx, strlen(WS_GUID), (const uint8_t *)WS_GUID);
	sha1_digest(&ctx, sizeof(digest), digest);
	char *b = base64_encode(digest, sizeof(digest));
	snprintf(out, 29, "%s", b);
	free(b);
}

size_t ws_frame_header(uint8_t out[WS_MAX_HEADER], enum ws_opcode op, uint64_t len,
		       const uint8_t *mask)
{
	size_t n = 0;
	out[n++] = (uint8_t)(0x80 | op);
	uint8_t m = mask ? 0x80 : 0;
	if (len < 126) {
		out[n++] = (uint8_t)(m | len);
	} else if (len <= 0xFFFF) {
		out[n++] = m | 126;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		out[n++] = m | 127;
		for (int i = 7; i >= 0; i--)
			out[n++] = (uint8_t)(len >> (8 * i));
	}
	if (mask) {
		memcpy(out + n, mask, 4);
		n += 4;
	}
	return n;
}

void ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
	for (size_t i = 0; i < len; i++)
		data[i] ^= mask[(offset + i) & 3];
}

void ws_reader_init(struct ws_reader *r, bool from_client, size_t max_frame, size_t max_message)
{
	memset(r, 0, sizeof(*r));
	r->from_client = from_client;
	r->max_frame = max_frame;
	r->max_message = max_message;
}

void ws_reader_free(struct ws_reader *r)
{
	free(r->in);
	free(r->msg);
	r->in = r->msg = NULL;
	r->in_len = r->in_cap = r->msg_len = 0;
}

uint8_t *ws_reader_space(struct ws_reader *r, size_t *space)
{
	/* what ws_reader_next consumed is gone: the buffer holds at most one partial frame,
	 * which fits in header + max_frame once its header was checked */
	size_t limit = WS_MAX_HEADER + r->max_frame;
	if (r->in_len == r->in_cap && r->in_cap < limit) {
		size_t cap = r->in_cap ? r->in_cap * 2 : 4096;
		r->in_cap = cap < limit ? cap : limit;
		r->in = xrealloc(r->in, r->in_cap);
	}
	*space = r->in_cap - r->in_len;
	return r->in + r->in_len;
}

void ws_reader_commit(struct ws_reader *r, size_t n)
{
	r->in_len += n;
}

static int fail(struct ws_reader *r, uint16_t code, const char *why)
{
	r->close_code = code;
	r->why = why;
	return -1;
}

static bool known_opcode(unsigned op)
{
	return op == WS_OP_CONT || op == WS_OP_TEXT || op == WS_OP_BINARY || op == WS_OP_CLOSE ||
	       op == WS_OP_PING || op == WS_OP_PONG;
}

/* RFC 6455 7.4: codes a peer may send (1004-1006 and 1015 are never on the wire). */
static bool valid_close_code(unsigned c)
{
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
}

struct frame_head {
	bool fin;
	unsigned op;
	uint64_t len;
	size_t head_len;
	const uint8_t *mask;
};

/* The header at the start of the buffer: 1 (parsed), 0 (incomplete), -1 (violation). */
static int parse_head(struct ws_reader *r, struct frame_head *h)
{
	const uint8_t *b = r->in;
	size_t n = r->in_len;
	if (n < 2)
		return 0;
	if (b[0] & 0x70)
		return fail(r, WS_CLOSE_PROTOCOL, "reserved bits set (no extension was agreed)");
	h->fin = b[0] & 0x80;
	h->op = b[0] & 0x0F;
	bool masked = b[1] & 0x80;
	if (!known_opcode(h->op))
		return fail(r, WS_CLOSE_PROTOCOL, "unknown opcode");
	if (masked != r->from_client)
		return fail(r, WS_CLOSE_PROTOCOL, r->from_client ? "a client frame is not masked"
								 : "a server frame is masked");
	uint64_t len = b[1] & 0x7F;
	size_t hl = 2;
	if (len == 126) {
		if (n < 4)
			return 0;
		len = (uint64_t)b[2] << 8 | b[3];
		hl = 4;
		if (len < 126)
			return fail(r, WS_CLOSE_PROTOCOL, "length not in its shortest form");
	} else if (len == 127) {
		if (n < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | b[2 + i];
		hl = 10;
		if (len >> 63)
			return fail(r, WS_CLOSE_PROTOCOL, "length with its top bit set");
		if (len <= 0xFFFF)
			return fail(r, WS_CLOSE_PROTOCOL, "length not in its shortest form");
	}
	if (h->op >= WS_OP_CLOSE) {
		if (!h->fin)
			return fail(r, WS_CLOSE_PROTOCOL, "a fragmented control frame");
		if (len > WS_MAX_CONTROL_PAYLOAD)
			return fail(r, WS_CLOSE_PROTOCOL, "a control frame over 125 bytes");
	} else if (len > r->max_frame) {
		return fail(r, WS_CLOSE_TOO_BIG, "a frame over the size limit");
	}
	if (masked) {
		if (n < hl + 4)
			return 0;
		h->mask = b + hl;
		hl += 4;
	} else {
		h->mask = NULL;
	}
	h->len = len;
	h->head_len = hl;
	return 1;
}

static int close_message(struct ws_reader *r, const uint8_t *p, size_t len,
			 struct ws_message *out)
{
	out->close_code = 1005; /* "no status received" */
	if (len == 1)
		return fail(r, WS_CLOSE_PROTOCOL, "a close frame with a 1-byte payload");
	if (len >= 2) {
		out->close_code = (uint16_t)(p[0] << 8 | p[1]);
		if (!valid_close_code(out->close_code))
			return fail(r, WS_CLOSE_PROTOCOL, "an invalid close code");
		if (!utf8_valid(p + 2, len - 2))
			return fail(r, WS_CLOSE_BAD_DATA, "a close reason that is not UTF-8");
	}
	return 1;
}

/* One data frame into the message being reassembled: 1 when the message is complete. */
static int data_frame(struct ws_reader *r, const struct frame_head *h, const uint8_t *p,
		      struct ws_message *out)
{
	if (h->op == WS_OP_CONT && !r->msg_op)
		return fail(r, WS_CLOSE_PROTOCOL, "a continuation frame with no message started");
	if (h->op != WS_OP_CONT && r->msg_op)
		return fail(r, WS_CLOSE_PROTOCOL, "a new message inside a fragmented one");
	if (r->msg_len + h->len > r->max_message)
		return fail(r, WS_CLOSE_TOO_BIG, "a message over the size limit");
	if (h->op != WS_OP_CONT)
		r->msg_op = (int)h->op;
	if (h->len) {
		r->msg = xrealloc(r->msg, r->msg_len + h->len);
		memcpy(r->msg + r->msg_len, p, h->len);
		r->msg_len += h->len;
	}
	if (!h->fin)
		return 0;
	out->op = (enum ws_opcode)r->msg_op;
	out->data = r->msg ? r->msg : r->ctl; /* never NULL, even when empty */
	out->len = r->msg_len;
	r->msg_op = 0;
	r->msg_len = 0;
	if (out->op == WS_OP_TEXT && !utf8_valid(out->data, out->len))
		return fail(r, WS_CLOSE_BAD_DATA, "a text message that is not UTF-8");
	return 1;
}

int ws_reader_next(struct ws_reader *r, struct ws_message *out)
{
	if (r->close_code)
		return -1;
	for (;;) {
		struct frame_head h;
		int k = parse_head(r, &h);
		if (k <= 0)
			return k;
		if (r->in_len - h.head_len < h.len)
			return 0;
		size_t flen = h.head_len + (size_t)h.len;
		uint8_t *p = r->in + h.head_len;
		if (h.mask) {
			uint8_t mask[4];
			memcpy(mask, h.mask, 4);
			ws_mask(p, (size_t)h.len, mask, 0);
		}
		memset(out, 0, sizeof(*out));
		if (h.op >= WS_OP_CLOSE) {
			/* control frames may come between the fragments of a message */
			memcpy(r->ctl, p, (size_t)h.len);
			out->op = (enum ws_opcode)h.op;
			out->data = r->ctl;
			out->len = (size_t)h.len;
			k = h.op == WS_OP_CLOSE ? close_message(r, r->ctl, out->len, out) : 1;
		} else {
			k = data_frame(r, &h, p, out);
		}
		memmove(r->in, r->in + flen, r->in_len - flen);
		r->in_len -= flen;
		if (k)
			return k;
	}
}

/* ------------------------------------------------------------ control messages */

static int get_dim(json_t *o, const char *key, unsigned *v)
{
	json_t *x = json_object_get(o, key);
	if (!json_is_integer(x) || json_integer_value(x) < 1 ||
	    json_integer_value(x) > WS_MAX_WINSIZE)
		return -1;
	*v = (unsigned)json_integer_value(x);
	return 0;
}

/* o has exactly the n keys of keys[]. */
static bool only_keys(json_t *o, const char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!json_object_get(o, keys[i]))
			return false;
	return json_object_size(o) == n;
}

static int parse_fields(json_t *o, const char *type, struct ws_control *c, const char **why)
{
	if (!strcmp(type, "resize")) {
		static const char *const k[] = {"type", "rows", "cols"};
		c->type = WS_CTL_RESIZE;
		if (!only_keys(o, k, 3) || get_dim(o, "rows", &c->rows) < 0 ||
		    get_dim(o, "cols", &c->cols) < 0)
			return (*why = "resize: expected {\"type\":\"resize\",\"rows\":1..4096,"
				       "\"cols\":1..4096}", -1);
		return 0;
	}
	if (!strcmp(type, "exit")) {
		static const char *const k[] = {"type", "exit_code", "signal"};
		json_t *ec = json_object_get(o, "exit_code"), *sig = json_object_get(o, "signal");
		c->type = WS_CTL_EXIT;
		if (!only_keys(o, k, 3) || !json_is_integer(ec) || !json_is_integer(sig) ||
		    json_integer_value(ec) < 0 || json_integer_value(ec) > 255 ||
		    json_integer_value(sig) < 0 || json_integer_value(sig) > 64)
			return (*why = "exit: expected exit_code 0..255 and signal 0..64", -1);
		c->exit_code = (int)json_integer_value(ec);
		c->term_signal = (int)json_integer_value(sig);
		return 0;
	}
	if (!strcmp(type, "error")) {
		static const char *const k[] = {"type", "message"};
		json_t *m = json_object_get(o, "message");
		c->type = WS_CTL_ERROR;
		if (!only_keys(o, k, 2) || !json_is_string(m))
			return (*why = "error: expected a message string", -1);
		snprintf(c->message, sizeof(c->message), "%s", json_string_value(m));
		return 0;
	}
	return (*why = "unknown control message type", -1);
}

int ws_control_parse(const uint8_t *data, size_t len, struct ws_control *c, const char **why)
{
	memset(c, 0, sizeof(*c));
	json_error_t je;
	json_t *o = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &je);
	json_t *type = json_object_get(o, "type");
	int r;
	if (!json_is_object(o) || !json_is_string(type))
		r = (*why = "a control message is a JSON object with a \"type\"", -1);
	else
		r = parse_fields(o, json_string_value(type), c, why);
	json_decref(o);
	return r;
}

char *ws_control_format(const struct ws_control *c)
{
	json_t *o;
	switch (c->type) {
	case WS_CTL_RESIZE:
		o = json_pack("{s:s, s:i, s:i}", "type", "resize", "rows", (int)c->rows, "cols",
			      (int)c->cols);
		break;
	case WS_CTL_EXIT:
		o = json_pack("{s:s, s:i, s:i}", "type", "exit", "exit_code", c->exit_code,
			      "signal", c->term_signal);
		break;
	default:
		o = json_pack("{s:s, s:s}", "type", "error", "message", c->message);
		break;
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}
