/* fuzz_ctxframe.c: libFuzzer target for the code-context protocol's parser
 * (src/common/ctxproto.c) — every byte a runner in a sandbox can send: frames fed in
 * pieces of any size, and each complete frame through the decoder of its kind. */
#include "common/common.h"

#include <stdlib.h>
#include <string.h>

static int on_frame(void *ud, const struct ctx_frame *f, agentd_error *err)
{
	size_t *bound = ud;
	if (f->data && f->len > *bound && f->kind != CTXF_HELLO && f->kind != CTXF_DONE &&
	    f->kind != CTXF_ERROR)
		abort(); /* a payload over the bound is never kept */
	json_t *j = NULL;
	struct ctx_done done;
	switch (f->kind) {
	case CTXF_RESULT: j = ctx_decode_bundle(f, err); break;
	case CTXF_ERROR: j = ctx_decode_error(f, err); break;
	case CTXF_HELLO: j = ctx_decode_hello(f, err); break;
	case CTXF_DONE:
		if (ctx_decode_done(f, &done, err) == 0 && (done.exit_code < 0 || done.exit_code > 255))
			abort();
		break;
	default: break;
	}
	json_decref(j);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t bound = 64 + data[0] * 16, step = 1 + data[0] % 7;
	struct ctx_parser p;
	ctx_parser_init(&p, bound);
	agentd_error err = {0};
	for (size_t off = 1; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		if (ctx_parser_feed(&p, data + off, n, on_frame, &bound, &err) < 0)
			break;
	}
	ctx_parser_free(&p);
	return 0;
}
