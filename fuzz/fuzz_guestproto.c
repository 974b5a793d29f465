/* fuzz_guestproto.c: libFuzzer target for the host/guest protocol codec
 * (src/common/guestproto.c) — every byte a hostile guest can write to its virtio-serial
 * port: fed through the reassembly in pieces of any size, as the host reads them, and every
 * complete frame's fields read as the host would (integers, strings, nested mounts). */
#include "common/guestproto.h"

#include <stdlib.h>
#include <string.h>

static uint8_t rxbuf[GP_HDR_SIZE + GP_MAX_PAYLOAD];

static void read_fields(const uint8_t *p, size_t len, int depth)
{
	struct gp_reader r;
	struct gp_field f;
	char s[GP_MAX_STRING + 1];
	uint64_t v;
	gp_r_init(&r, p, len);
	while (gp_r_next(&r, &f) == 1) {
		if (f.len > len || (f.len && (f.val < p || f.val + f.len > p + len)))
			abort(); /* a field never points outside its payload */
		if (gp_f_u64(&f, &v) == 0 && f.len != 8)
			abort();
		if (gp_f_str(&f, s, sizeof(s)) == 0 && strlen(s) != f.len)
			abort(); /* a string accepted has no NUL inside */
		if (f.tag == GP_T_MOUNT && depth < 2)
			read_fields(f.val, f.len, depth + 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = 1 + (size_t)data[0] * 61;
	struct gp_rx rx;
	struct gp_hdr h;
	const uint8_t *payload;
	gp_rx_init(&rx, rxbuf, sizeof(rxbuf));
	for (size_t off = 1; off < size;) {
		size_t room;
		uint8_t *dst = gp_rx_space(&rx, &room);
		size_t n = size - off < step ? size - off : step;
		if (n > room)
			n = room;
		if (n == 0)
			abort(); /* a buffer of GP_HDR_SIZE + GP_MAX_PAYLOAD always has room */
		memcpy(dst, data + off, n);
		gp_rx_commit(&rx, n);
		off += n;
		int rc;
		while ((rc = gp_rx_frame(&rx, &h, &payload)) == 1) {
			if (h.len > GP_MAX_PAYLOAD || h.flags != 0)
				abort();
			if (!gp_type_is_data(h.type))
				read_fields(payload, h.len, 0);
		}
		if (rc < 0)
			return 0; /* the host ends the channel here */
	}
	return 0;
}
