/* test_guestproto.c: the host/guest protocol codec (src/common/guestproto.c): frames and
 * fields read back as written, nested fields, unknown tags skipped, frames reassembled from
 * any cut of the byte stream, and each malformed input (oversized length, flags, unknown
 * type, a field past its payload, too many fields, a u64 of the wrong size, a string with a
 * NUL or over its bound, a writer past its buffer) refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/guestproto.h"

static uint8_t rxbuf[GP_HDR_SIZE + GP_MAX_PAYLOAD];
static uint8_t big[2 * (GP_HDR_SIZE + GP_MAX_PAYLOAD)];

/* A whole frame (header + payload) into out; its size. */
static size_t frame(uint8_t *out, uint16_t type, uint32_t chan, const void *payload, size_t n)
{
	struct gp_hdr h = {.len = (uint32_t)n, .type = type, .flags = 0, .chan = chan};
	gp_hdr_encode(out, &h);
	memcpy(out + GP_HDR_SIZE, payload, n);
	return GP_HDR_SIZE + n;
}

static void an_exec_request_reads_back_field_by_field(void **state)
{
	(void)state;
	uint8_t buf[512];
	struct gp_writer w;
	gp_w_init(&w, buf, sizeof(buf));
	gp_w_str(&w, GP_T_ARG, "/bin/echo");
	gp_w_str(&w, GP_T_ARG, "");
	gp_w_str(&w, GP_T_ENV, "PATH=/usr/bin");
	gp_w_u64(&w, GP_T_MEM_BYTES, 0x0123456789abcdefULL);
	gp_w_u64(&w, 999, 7); /* a tag this version does not know */
	gp_w_u64(&w, GP_T_TIMEOUT_MS, 0);
	assert_int_equal(gp_w_done(&w), 0);

	struct gp_reader r;
	struct gp_field f;
	char s[64];
	uint64_t v;
	gp_r_init(&r, buf, w.len);
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(f.tag, GP_T_ARG);
	assert_int_equal(gp_f_str(&f, s, sizeof(s)), 0);
	assert_string_equal(s, "/bin/echo");
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(gp_f_str(&f, s, sizeof(s)), 0);
	assert_string_equal(s, "");
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(f.tag, GP_T_ENV);
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(gp_f_u64(&f, &v), 0);
	assert_true(v == 0x0123456789abcdefULL);
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(f.tag, 999); /* unknown: the reader hands it over, the caller skips it */
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(f.tag, GP_T_TIMEOUT_MS);
	assert_int_equal(gp_r_next(&r, &f), 0);
	assert_int_equal(gp_r_next(&r, &f), 0);
}

static void a_nested_mount_reads_back_inside_its_field(void **state)
{
	(void)state;
	uint8_t buf[256];
	struct gp_writer w;
	gp_w_init(&w, buf, sizeof(buf));
	gp_w_str(&w, GP_T_HOSTNAME, "vm");
	size_t m = gp_w_begin(&w, GP_T_MOUNT);
	gp_w_str(&w, GP_T_SOURCE, "workdir");
	gp_w_str(&w, GP_T_TARGET, "/work");
	gp_w_u64(&w, GP_T_READONLY, 1);
	gp_w_end(&w, m);
	gp_w_u64(&w, GP_T_NETWORK, GP_NET_NONE);
	assert_int_equal(gp_w_done(&w), 0);

	struct gp_reader r, in;
	struct gp_field f, g;
	char s[32];
	gp_r_init(&r, buf, w.len);
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(f.tag, GP_T_MOUNT);
	gp_r_init(&in, f.val, f.len);
	assert_int_equal(gp_r_next(&in, &g), 1);
	assert_int_equal(gp_f_str(&g, s, sizeof(s)), 0);
	assert_string_equal(s, "workdir");
	assert_int_equal(gp_r_next(&in, &g), 1);
	assert_int_equal(gp_f_str(&g, s, sizeof(s)), 0);
	assert_string_equal(s, "/work");
	assert_int_equal(gp_r_next(&in, &g), 1);
	assert_int_equal(g.tag, GP_T_READONLY);
	assert_int_equal(gp_r_next(&in, &g), 0);
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(f.tag, GP_T_NETWORK);
	assert_int_equal(gp_r_next(&r, &f), 0);
}

static void a_header_round_trips_and_bad_ones_are_refused(void **state)
{
	(void)state;
	uint8_t b[GP_HDR_SIZE];
	struct gp_hdr h = {.len = GP_MAX_PAYLOAD, .type = GP_EXEC, .flags = 0, .chan = 0x80000001u},
		      g;
	gp_hdr_encode(b, &h);
	assert_int_equal(gp_hdr_decode(b, &g), 0);
	assert_int_equal(g.len, GP_MAX_PAYLOAD);
	assert_int_equal(g.type, GP_EXEC);
	assert_int_equal(g.chan, 0x80000001u);
	assert_string_equal(gp_type_name(GP_EXEC), "EXEC");
	assert_true(gp_type_is_data(GP_STDOUT) && !gp_type_is_data(GP_EXIT));

	h.len = GP_MAX_PAYLOAD + 1;
	gp_hdr_encode(b, &h);
	assert_int_equal(gp_hdr_decode(b, &g), -EPROTO);
	h.len = 0xffffffffu;
	gp_hdr_encode(b, &h);
	assert_int_equal(gp_hdr_decode(b, &g), -EPROTO);
	h.len = 0;
	h.flags = 1;
	gp_hdr_encode(b, &h);
	assert_int_equal(gp_hdr_decode(b, &g), -EPROTO);
	h.flags = 0;
	for (unsigned t = 0; t < 0x10000; t++) {
		h.type = (uint16_t)t;
		gp_hdr_encode(b, &h);
		bool known = strcmp(gp_type_name((uint16_t)t), "?") != 0;
		assert_int_equal(gp_hdr_decode(b, &g), known ? 0 : -EPROTO);
	}
	assert_string_equal(gp_type_name(0), "?");
	assert_string_equal(gp_type_name(GP_FILE_MKDIR + 1), "?");
}

static void malformed_fields_are_refused(void **state)
{
	(void)state;
	struct gp_reader r;
	struct gp_field f;
	uint64_t v;
	char s[8];

	/* fewer bytes than a field header */
	const uint8_t short_hdr[5] = {1, 0, 0, 0, 0};
	gp_r_init(&r, short_hdr, sizeof(short_hdr));
	assert_int_equal(gp_r_next(&r, &f), -EPROTO);
	assert_int_equal(gp_r_next(&r, &f), 0); /* and nothing after it */

	/* a length past the payload, by one and by 4 GiB */
	const uint8_t past[6 + 3] = {1, 0, 4, 0, 0, 0, 'a', 'b', 'c'};
	gp_r_init(&r, past, sizeof(past));
	assert_int_equal(gp_r_next(&r, &f), -EPROTO);
	const uint8_t huge[6] = {1, 0, 0xff, 0xff, 0xff, 0xff};
	gp_r_init(&r, huge, sizeof(huge));
	assert_int_equal(gp_r_next(&r, &f), -EPROTO);

	/* a u64 of 7 or 9 bytes */
	const uint8_t seven[6 + 7] = {GP_T_PID, 0, 7, 0, 0, 0};
	gp_r_init(&r, seven, sizeof(seven));
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(gp_f_u64(&f, &v), -EPROTO);
	const uint8_t nine[6 + 9] = {GP_T_PID, 0, 9, 0, 0, 0};
	gp_r_init(&r, nine, sizeof(nine));
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(gp_f_u64(&f, &v), -EPROTO);

	/* a string with a NUL, one that does not fit the caller's buffer */
	const uint8_t nul[6 + 3] = {GP_T_ARG, 0, 3, 0, 0, 0, 'a', 0, 'b'};
	gp_r_init(&r, nul, sizeof(nul));
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(gp_f_str(&f, s, sizeof(s)), -EPROTO);
	uint8_t eight[6 + 8] = {GP_T_ARG, 0, 8};
	memcpy(eight + 6, "abcdefgh", 8);
	gp_r_init(&r, eight, sizeof(eight));
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(gp_f_str(&f, s, sizeof(s)), -EPROTO); /* 8 chars + NUL > 8 */

	/* a string over GP_MAX_STRING even into a buffer that would hold it */
	static uint8_t longstr[6 + GP_MAX_STRING + 1];
	static char out[GP_MAX_STRING + 8];
	memset(longstr, 'x', sizeof(longstr));
	longstr[0] = GP_T_ARG, longstr[1] = 0;
	longstr[2] = (uint8_t)((GP_MAX_STRING + 1) & 0xff);
	longstr[3] = (uint8_t)((GP_MAX_STRING + 1) >> 8);
	longstr[4] = longstr[5] = 0;
	gp_r_init(&r, longstr, sizeof(longstr));
	assert_int_equal(gp_r_next(&r, &f), 1);
	assert_int_equal(gp_f_str(&f, out, sizeof(out)), -EPROTO);
}

static void more_than_max_fields_are_refused(void **state)
{
	(void)state;
	static uint8_t buf[(GP_MAX_FIELDS + 1) * 6];
	memset(buf, 0, sizeof(buf)); /* empty fields of tag 0 */
	struct gp_reader r;
	struct gp_field f;
	gp_r_init(&r, buf, GP_MAX_FIELDS * 6);
	unsigned n = 0;
	int rc;
	while ((rc = gp_r_next(&r, &f)) == 1)
		n++;
	assert_int_equal(rc, 0);
	assert_int_equal(n, GP_MAX_FIELDS);
	gp_r_init(&r, buf, sizeof(buf));
	while ((rc = gp_r_next(&r, &f)) == 1)
		;
	assert_int_equal(rc, -EPROTO);
}

static void a_writer_past_its_buffer_fails_and_writes_nothing_past_cap(void **state)
{
	(void)state;
	uint8_t buf[32 + 4];
	memset(buf, 0xAA, sizeof(buf));
	struct gp_writer w;
	gp_w_init(&w, buf, 32);
	gp_w_u64(&w, GP_T_PID, 1);		    /* 14 */
	gp_w_str(&w, GP_T_MESSAGE, "0123456789ab"); /* 18: 32 exactly */
	assert_int_equal(gp_w_done(&w), 0);
	gp_w_u64(&w, GP_T_PID, 2);
	assert_int_equal(gp_w_done(&w), -EMSGSIZE);
	gp_w_str(&w, GP_T_MESSAGE, ""); /* sticks even when a smaller one would fit */
	assert_int_equal(gp_w_done(&w), -EMSGSIZE);
	for (size_t i = 32; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xAA);

	/* a nested field whose contents overflow */
	gp_w_init(&w, buf, 16);
	size_t m = gp_w_begin(&w, GP_T_MOUNT);
	gp_w_u64(&w, GP_T_READONLY, 1);
	gp_w_end(&w, m);
	assert_int_equal(gp_w_done(&w), -EMSGSIZE);

	/* a string the peer would refuse (over GP_MAX_STRING) fails at the writer */
	static uint8_t wide[2 * GP_MAX_STRING];
	static char s[GP_MAX_STRING + 2];
	memset(s, 'y', GP_MAX_STRING + 1);
	gp_w_init(&w, wide, sizeof(wide));
	gp_w_str(&w, GP_T_PATH, s);
	assert_int_equal(gp_w_done(&w), -EMSGSIZE);

	/* a payload over GP_MAX_PAYLOAD in a bigger buffer fails too */
	static uint8_t blob[GP_MAX_PAYLOAD];
	gp_w_init(&w, big, sizeof(big));
	gp_w_bytes(&w, GP_T_SEED, blob, sizeof(blob));
	assert_int_equal(gp_w_done(&w), -EMSGSIZE);
}

/* Two frames cut at every possible point come out whole and in order. */
static void frames_are_reassembled_from_any_cut(void **state)
{
	(void)state;
	uint8_t stream[128];
	size_t n = frame(stream, GP_STDOUT, 3, "hello", 5);
	n += frame(stream + n, GP_STDIN, 3, "", 0);
	n += frame(stream + n, GP_STDERR, 0x7fffffffu, "x", 1);
	for (size_t cut = 1; cut <= n; cut++) {
		struct gp_rx rx;
		struct gp_hdr h;
		const uint8_t *p;
		gp_rx_init(&rx, rxbuf, sizeof(rxbuf));
		unsigned got = 0;
		for (size_t off = 0; off < n; off += cut) {
			size_t room, k = n - off < cut ? n - off : cut;
			uint8_t *dst = gp_rx_space(&rx, &room);
			assert_true(room >= k);
			memcpy(dst, stream + off, k);
			gp_rx_commit(&rx, k);
			int rc;
			while ((rc = gp_rx_frame(&rx, &h, &p)) == 1) {
				if (got == 0) {
					assert_int_equal(h.type, GP_STDOUT);
					assert_int_equal(h.len, 5);
					assert_memory_equal(p, "hello", 5);
				} else if (got == 1) {
					assert_int_equal(h.type, GP_STDIN);
					assert_int_equal(h.len, 0);
				} else {
					assert_int_equal(h.chan, 0x7fffffffu);
					assert_memory_equal(p, "x", 1);
				}
				got++;
			}
			assert_int_equal(rc, 0);
		}
		assert_int_equal(got, 3);
	}
}

static void a_full_size_frame_fits_and_a_bad_header_stops_the_stream(void **state)
{
	(void)state;
	struct gp_rx rx;
	struct gp_hdr h;
	const uint8_t *p;
	size_t room;
	gp_rx_init(&rx, rxbuf, sizeof(rxbuf));
	uint8_t *dst = gp_rx_space(&rx, &room);
	assert_int_equal(room, sizeof(rxbuf));
	struct gp_hdr full = {.len = GP_MAX_PAYLOAD, .type = GP_STDOUT, .chan = 1};
	gp_hdr_encode(dst, &full);
	memset(dst + GP_HDR_SIZE, 'z', GP_MAX_PAYLOAD);
	gp_rx_commit(&rx, GP_HDR_SIZE + GP_MAX_PAYLOAD - 1);
	assert_int_equal(gp_rx_frame(&rx, &h, &p), 0); /* one byte short */
	gp_rx_commit(&rx, 1);
	assert_int_equal(gp_rx_frame(&rx, &h, &p), 1);
	assert_int_equal(h.len, GP_MAX_PAYLOAD);
	assert_int_equal(p[GP_MAX_PAYLOAD - 1], 'z');

	/* then a header with an unknown type: refused now and on every later call */
	dst = gp_rx_space(&rx, &room);
	struct gp_hdr bad = {.len = 0, .type = 9999, .chan = 1};
	gp_hdr_encode(dst, &bad);
	gp_rx_commit(&rx, GP_HDR_SIZE);
	assert_int_equal(gp_rx_frame(&rx, &h, &p), -EPROTO);
	assert_int_equal(gp_rx_frame(&rx, &h, &p), -EPROTO);

	/* an oversized length is refused from its header, before any payload arrives */
	gp_rx_init(&rx, rxbuf, sizeof(rxbuf));
	dst = gp_rx_space(&rx, &room);
	struct gp_hdr over = {.len = GP_MAX_PAYLOAD + 1, .type = GP_STDOUT, .chan = 1};
	gp_hdr_encode(dst, &over);
	gp_rx_commit(&rx, GP_HDR_SIZE);
	assert_int_equal(gp_rx_frame(&rx, &h, &p), -EPROTO);

	/* a commit larger than the room given is clamped, never past the buffer */
	gp_rx_init(&rx, rxbuf, 16);
	gp_rx_space(&rx, &room);
	gp_rx_commit(&rx, 1000);
	assert_int_equal(rx.have, 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(an_exec_request_reads_back_field_by_field),
	    cmocka_unit_test(a_nested_mount_reads_back_inside_its_field),
	    cmocka_unit_test(a_header_round_trips_and_bad_ones_are_refused),
	    cmocka_unit_test(malformed_fields_are_refused),
	    cmocka_unit_test(more_than_max_fields_are_refused),
	    cmocka_unit_test(a_writer_past_its_buffer_fails_and_writes_nothing_past_cap),
	    cmocka_unit_test(frames_are_reassembled_from_any_cut),
	    cmocka_unit_test(a_full_size_frame_fits_and_a_bad_header_stops_the_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
