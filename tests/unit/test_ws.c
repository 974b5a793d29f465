/* test_ws.c: the WebSocket codec of process attachments (src/common/ws.c): the RFC 6455
 * handshake vector, frames read back as written, and each rule a hostile client can break
 * (unmasked, oversized, reserved bits, unknown opcode, fragmented or long control frames,
 * continuation order, UTF-8, close codes) ending the stream with the right close code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ws.h"

#define MAX_FRAME 1024
#define MAX_MESSAGE 2048

/* A client frame: masked unless mask is NULL; first byte b0 as given (FIN, RSV, opcode). */
static size_t frame(uint8_t *out, uint8_t b0, const void *payload, size_t n, const uint8_t *mask)
{
	size_t h = ws_frame_header(out, (enum ws_opcode)(b0 & 0x0F), n, mask);
	out[0] = b0;
	memcpy(out + h, payload, n);
	if (mask)
		ws_mask(out + h, n, mask, 0);
	return h + n;
}

static const uint8_t M[4] = {0xA1, 0xB2, 0xC3, 0xD4};

/* Feed bytes one at a time (the worst cut a socket can make); returns what next gave
 * last, with the message in *m. */
static int feed(struct ws_reader *r, const uint8_t *b, size_t n, struct ws_message *m)
{
	int k = 0;
	for (size_t i = 0; i < n; i++) {
		size_t space;
		uint8_t *dst = ws_reader_space(r, &space);
		assert_true(space >= 1);
		*dst = b[i];
		ws_reader_commit(r, 1);
		if ((k = ws_reader_next(r, m)) != 0)
			return k;
	}
	return k;
}

static int read_one(bool from_client, const uint8_t *b, size_t n, struct ws_message *m,
		    uint16_t *code)
{
	struct ws_reader r;
	ws_reader_init(&r, from_client, MAX_FRAME, MAX_MESSAGE);
	int k = feed(&r, b, n, m);
	*code = r.close_code;
	static uint8_t copy[MAX_MESSAGE];	/* the message outlives the reader */
	if (k == 1) {
		memcpy(copy, m->data, m->len);
		m->data = copy;
	}
	ws_reader_free(&r);
	return k;
}

static void the_accept_key_is_the_rfc_example(void **state)
{
	char acc[29];
	assert_true(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=="));
	ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", acc);
	assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ="));	/* 23 chars */
	assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ!!"));
	assert_false(ws_key_valid(NULL));
}

static void masked_frames_of_every_length_form_read_back(void **state)
{
	static uint8_t payload[MAX_FRAME], buf[MAX_FRAME + WS_MAX_HEADER];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	size_t lens[] = {0, 1, 125, 126, 1000, MAX_FRAME};
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		size_t n = frame(buf, 0x82, payload, lens[i], M);
		struct ws_message m;
		uint16_t code;
		assert_int_equal(read_one(true, buf, n, &m, &code), 1);
		assert_int_equal(m.op, WS_OP_BINARY);
		assert_int_equal(m.len, lens[i]);
		if (lens[i])
			assert_memory_equal(m.data, payload, lens[i]);
	}
}

static void a_fragmented_message_is_reassembled_around_a_ping(void **state)
{
	uint8_t buf[256];
	size_t n = frame(buf, 0x02, "ab", 2, M);	/* binary, not final */
	n += frame(buf + n, 0x89, "p", 1, M);		/* ping in between */
	n += frame(buf + n, 0x80, "cd", 2, M);		/* final continuation */
	struct ws_reader r;
	ws_reader_init(&r, true, MAX_FRAME, MAX_MESSAGE);
	struct ws_message m;
	size_t space;
	memcpy(ws_reader_space(&r, &space), buf, n);
	ws_reader_commit(&r, n);
	assert_int_equal(ws_reader_next(&r, &m), 1);
	assert_int_equal(m.op, WS_OP_PING);
	assert_int_equal(ws_reader_next(&r, &m), 1);
	assert_int_equal(m.op, WS_OP_BINARY);
	assert_int_equal(m.len, 4);
	assert_memory_equal(m.data, "abcd", 4);
	assert_int_equal(ws_reader_next(&r, &m), 0);
	ws_reader_free(&r);
}

/* Each hostile frame ends the stream with the close code the RFC asks for. */
static void each_violation_ends_the_stream_with_its_close_code(void **state)
{
	static uint8_t big[MAX_FRAME + 1];
	uint8_t buf[MAX_FRAME + 64];
	struct {
		const char *what;
		uint8_t b0;
		const void *p;
		size_t n;
		bool masked;
		uint16_t code;
	} cases[] = {
		{"unmasked", 0x82, "x", 1, false, WS_CLOSE_PROTOCOL},
		{"oversized", 0x82, big, sizeof(big), true, WS_CLOSE_TOO_BIG},
		{"reserved bit", 0xC2, "x", 1, true, WS_CLOSE_PROTOCOL},
		{"opcode 3", 0x83, "x", 1, true, WS_CLOSE_PROTOCOL},
		{"opcode 0xB", 0x8B, "x", 1, true, WS_CLOSE_PROTOCOL},
		{"fragmented ping", 0x09, "x", 1, true, WS_CLOSE_PROTOCOL},
		{"long ping", 0x89, big, 126, true, WS_CLOSE_PROTOCOL},
		{"lone continuation", 0x80, "x", 1, true, WS_CLOSE_PROTOCOL},
		{"bad UTF-8 text", 0x81, "\xC0\xAF", 2, true, WS_CLOSE_BAD_DATA},
		{"surrogate text", 0x81, "\xED\xA0\x80", 3, true, WS_CLOSE_BAD_DATA},
		{"close of 1 byte", 0x88, "\x03", 1, true, WS_CLOSE_PROTOCOL},
		{"close code 1005", 0x88, "\x03\xED", 2, true, WS_CLOSE_PROTOCOL},
		{"close reason not UTF-8", 0x88, "\x03\xE8\xFF", 3, true, WS_CLOSE_BAD_DATA},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t n = frame(buf, cases[i].b0, cases[i].p, cases[i].n,
				 cases[i].masked ? M : NULL);
		struct ws_message m;
		uint16_t code;
		int k = read_one(true, buf, n, &m, &code);
		if (k != -1 || code != cases[i].code)
			fail_msg("%s: got %d, close code %u", cases[i].what, k, code);
	}
}

static void a_message_past_its_bound_in_fragments_is_refused(void **state)
{
	static uint8_t chunk[MAX_FRAME], buf[4 * (MAX_FRAME + WS_MAX_HEADER)];
	size_t n = frame(buf, 0x02, chunk, MAX_FRAME, M);
	n += frame(buf + n, 0x00, chunk, MAX_FRAME, M);
	n += frame(buf + n, 0x80, chunk, 1, M);		/* 2049 > MAX_MESSAGE */
	struct ws_message m;
	uint16_t code;
	assert_int_equal(read_one(true, buf, n, &m, &code), -1);
	assert_int_equal(code, WS_CLOSE_TOO_BIG);
}

static void a_client_reads_unmasked_frames_and_refuses_masked_ones(void **state)
{
	uint8_t buf[64];
	struct ws_message m;
	uint16_t code;
	size_t n = frame(buf, 0x88, "\x03\xE8", 2, NULL);
	assert_int_equal(read_one(false, buf, n, &m, &code), 1);
	assert_int_equal(m.op, WS_OP_CLOSE);
	assert_int_equal(m.close_code, 1000);
	n = frame(buf, 0x82, "x", 1, M);
	assert_int_equal(read_one(false, buf, n, &m, &code), -1);
}

static void control_messages_parse_strictly_and_round_trip(void **state)
{
	struct ws_control c;
	const char *why;
	const char *ok = "{\"type\":\"resize\",\"rows\":40,\"cols\":120}";
	assert_int_equal(ws_control_parse((const uint8_t *)ok, strlen(ok), &c, &why), 0);
	assert_int_equal(c.type, WS_CTL_RESIZE);
	assert_int_equal(c.rows, 40);
	assert_int_equal(c.cols, 120);
	const char *bad[] = {
		"{\"type\":\"resize\",\"rows\":0,\"cols\":80}",
		"{\"type\":\"resize\",\"rows\":24,\"cols\":5000}",
		"{\"type\":\"resize\",\"rows\":24}",
		"{\"type\":\"resize\",\"rows\":24,\"cols\":80,\"x\":1}",
		"{\"type\":\"resize\",\"rows\":24,\"rows\":25,\"cols\":80}",
		"{\"type\":\"reboot\"}",
		"[1]",
		"not json",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		why = NULL;
		if (ws_control_parse((const uint8_t *)bad[i], strlen(bad[i]), &c, &why) != -1 || !why)
			fail_msg("accepted %s", bad[i]);
	}
	struct ws_control e = {.type = WS_CTL_EXIT, .exit_code = 130, .term_signal = 2};
	char *s = ws_control_format(&e);
	assert_int_equal(ws_control_parse((const uint8_t *)s, strlen(s), &c, &why), 0);
	assert_int_equal(c.type, WS_CTL_EXIT);
	assert_int_equal(c.exit_code, 130);
	assert_int_equal(c.term_signal, 2);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_accept_key_is_the_rfc_example),
		cmocka_unit_test(masked_frames_of_every_length_form_read_back),
		cmocka_unit_test(a_fragmented_message_is_reassembled_around_a_ping),
		cmocka_unit_test(each_violation_ends_the_stream_with_its_close_code),
		cmocka_unit_test(a_message_past_its_bound_in_fragments_is_refused),
		cmocka_unit_test(a_client_reads_unmasked_frames_and_refuses_masked_ones),
		cmocka_unit_test(control_messages_parse_strictly_and_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
