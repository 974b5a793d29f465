/* ws.h: the WebSocket protocol (RFC 6455) of a process attachment, defined once for both
 * ends (the daemon's attach endpoint and the CLI's client): the handshake key, frames,
 * messages, and the JSON control messages carried in text frames (docs/api.md#attach).
 * Pure code, no I/O: fuzz/fuzz_ws.c drives the reader with arbitrary bytes. */
#ifndef AGENTD_WS_H
#define AGENTD_WS_H

#include "common/common.h"

enum ws_opcode {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 7.4.1) this protocol sends. */
enum {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_UNSUPPORTED = 1003,
	WS_CLOSE_BAD_DATA = 1007,	/* text that is not UTF-8, a control message not understood */
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_INTERNAL = 1011,
};

#define WS_MAX_HEADER 14		/* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_MAX_CONTROL_PAYLOAD 125	/* RFC 6455 5.5 */

/* Sec-WebSocket-Key: base64 of 16 bytes (24 characters). */
bool ws_key_valid(const char *key);
/* Sec-WebSocket-Accept for key: base64(SHA-1(key + the RFC's GUID)), 28 chars + NUL. */
void ws_accept_key(const char *key, char out[29]);

/* The header of one unfragmented frame (fin set) carrying len bytes; mask: NULL from a
 * server, 4 bytes from a client (RFC 6455 5.3: every client frame is masked). Returns the
 * header's length (<= WS_MAX_HEADER). */
size_t ws_frame_header(uint8_t out[WS_MAX_HEADER], enum ws_opcode op, uint64_t len,
		       const uint8_t *mask);
/* XOR data with mask, data being the payload from byte offset on. */
void ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/* A stream of frames from the peer, reassembled into messages. Every byte is checked:
 * masking as the side requires, reserved bits, opcodes, control frames (final, <= 125
 * bytes), continuation order, sizes (a frame's and a message's), UTF-8 of text and of a
 * close reason, the close code. The first violation ends the stream with its close code;
 * nothing the peer sends makes it allocate past max_message + max_frame + a header. */
struct ws_reader {
	bool from_client;		/* frames must be masked (the server's reader) */
	size_t max_frame;		/* payload of one frame */
	size_t max_message;		/* payload of a reassembled data message */
	uint8_t *in;			/* raw bytes received, not yet parsed */
	size_t in_len, in_cap;
	uint8_t *msg;			/* the data message being reassembled */
	size_t msg_len;
	int msg_op;			/* 0: none in progress */
	uint8_t ctl[WS_MAX_CONTROL_PAYLOAD];	/* the last control frame's payload */
	uint16_t close_code;		/* why the stream failed */
	const char *why;
};

struct ws_message {
	enum ws_opcode op;		/* TEXT, BINARY, CLOSE, PING, PONG */
	const uint8_t *data;		/* valid until the next ws_reader call */
	size_t len;
	uint16_t close_code;		/* CLOSE: the peer's code (1005 when none given) */
};

void ws_reader_init(struct ws_reader *r, bool from_client, size_t max_frame, size_t max_message);
void ws_reader_free(struct ws_reader *r);
/* Room for the next read() (at least one byte while the stream is good): *space bytes at
 * the returned pointer. Then ws_reader_commit with what was read. */
uint8_t *ws_reader_space(struct ws_reader *r, size_t *space);
void ws_reader_commit(struct ws_reader *r, size_t n);
/* The next complete message: 1 (out filled), 0 (more bytes needed), -1 (a protocol
 * violation: r->close_code and r->why say which; the connection is to be closed). */
int ws_reader_next(struct ws_reader *r, struct ws_message *out);

/* ------------------------------------------------------------ control messages (JSON text)
 * client → server: {"type":"resize","rows":R,"cols":C} (1..WS_MAX_WINSIZE each)
 * server → client: {"type":"exit","exit_code":N,"signal":S|null,"limit":L|null}
 *                  {"type":"error","message":"..."} before a close the server chose */
#define WS_MAX_WINSIZE 4096

enum ws_control_type { WS_CTL_RESIZE, WS_CTL_EXIT, WS_CTL_ERROR };
struct ws_control {
	enum ws_control_type type;
	unsigned rows, cols;		/* resize */
	int exit_code;			/* exit */
	int term_signal;		/* exit: 0 when it exited */
	char message[256];		/* error */
};
/* Parse one control message, unknown types and fields refused; -1 with why (static). */
int ws_control_parse(const uint8_t *data, size_t len, struct ws_control *c, const char **why);
/* Compact JSON text of c; malloc'd. */
char *ws_control_format(const struct ws_control *c);

#endif
