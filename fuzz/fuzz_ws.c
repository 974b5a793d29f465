/* fuzz_ws.c: libFuzzer target for the WebSocket codec of process attachments (src/common/
 * ws.c) — what the daemon reads from an attach client and the CLI from the daemon. Input:
 * byte 0 picks the side (bit 0: the server's reader) and the read sizes (a seed for how the
 * stream is cut, as a socket would); the rest is the byte stream. Every message the reader
 * yields must keep its promises (bounds, UTF-8 text, control rules), text goes through the
 * control-message parser, and a frame built by ws_frame_header reads back as itself. */
#include "common/ws.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FRAME 4096
#define MAX_MESSAGE 8192

static void check_message(const struct ws_message *m)
{
	switch (m->op) {
	case WS_OP_TEXT: {
		if (m->len > MAX_MESSAGE || !utf8_valid(m->data, m->len))
			abort();
		struct ws_control c;
		const char *why = NULL;
		if (ws_control_parse(m->data, m->len, &c, &why) == 0) {
			if (c.type == WS_CTL_RESIZE &&
			    (c.rows < 1 || c.cols < 1 || c.rows > WS_MAX_WINSIZE ||
			     c.cols > WS_MAX_WINSIZE))
				abort();
			free(ws_control_format(&c));
		} else if (!why) {
			abort();
		}
		break;
	}
	case WS_OP_BINARY:
		if (m->len > MAX_MESSAGE)
			abort();
		break;
	case WS_OP_CLOSE: case WS_OP_PING: case WS_OP_PONG:
		if (m->len > WS_MAX_CONTROL_PAYLOAD)
			abort();
		break;
	default:
		abort();
	}
}

/* Feed the stream in pieces whose sizes come from seed. */
static void read_stream(bool from_client, unsigned seed, const uint8_t *p, size_t n)
{
	struct ws_reader r;
	ws_reader_init(&r, from_client, MAX_FRAME, MAX_MESSAGE);
	size_t off = 0;
	while (off < n) {
		size_t space;
		uint8_t *dst = ws_reader_space(&r, &space);
		if (space == 0)
			abort(); /* a good stream always has room after its messages were read */
		seed = seed * 1103515245u + 12345u;
		size_t chunk = 1 + (seed >> 16) % 700;
		if (chunk > space)
			chunk = space;
		if (chunk > n - off)
			chunk = n - off;
		memcpy(dst, p + off, chunk);
		ws_reader_commit(&r, chunk);
		off += chunk;
		struct ws_message m;
		int k;
		while ((k = ws_reader_next(&r, &m)) == 1)
			check_message(&m);
		if (k < 0) {
			if (!r.close_code || !r.why)
				abort();
			break;
		}
	}
	ws_reader_free(&r);
}

/* The payload framed by our writer (client side: masked) comes back unchanged. */
static void round_trip(const uint8_t *p, size_t n)
{
	if (n > MAX_FRAME)
		n = MAX_FRAME;
	uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
	uint8_t *buf = malloc(WS_MAX_HEADER + n + 1);
	size_t h = ws_frame_header(buf, WS_OP_BINARY, n, mask);
	memcpy(buf + h, p, n);
	ws_mask(buf + h, n, mask, 0);
	struct ws_reader r;
	ws_reader_init(&r, true, MAX_FRAME, MAX_MESSAGE);
	size_t space;
	uint8_t *dst = ws_reader_space(&r, &space);
	size_t off = 0;
	struct ws_message m;
	int k = 0;
	while (off < h + n) {
		size_t c = space < h + n - off ? space : h + n - off;
		memcpy(dst, buf + off, c);
		ws_reader_commit(&r, c);
		off += c;
		if ((k = ws_reader_next(&r, &m)) != 0)
			break;
		dst = ws_reader_space(&r, &space);
	}
	if (k != 1 || m.op != WS_OP_BINARY || m.len != n || (n && memcmp(m.data, p, n)))
		abort();
	ws_reader_free(&r);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	read_stream(data[0] & 1, data[0], data + 1, size - 1);
	round_trip(data + 1, size - 1);
	if (size >= 25) {
		char key[25];
		memcpy(key, data + 1, 24);
		key[24] = '\0';
		if (strlen(key) == 24 && ws_key_valid(key)) {
			char acc[29];
			ws_accept_key(key, acc);
			if (strlen(acc) != 28)
				abort();
		}
	}
	return 0;
}
