/* fuzz_gondolin.c: what the gondolin plugin reads from its helper (hostile: it relays the
 * guest) — lines through the channel's reader (bounds, jansson), answers and base64 chunks. */
#include "../plugins/gondolin/gondolin.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every message of data as the channel would deliver it, each checked as an answer to
 * request 1 and its "data" decoded as an output chunk. */
static void read_all(int fd)
{
	gondolin_helper h;
	memset(&h, 0, sizeof(h));
	h.in_fd = h.err_fd = -1;
	h.out_fd = fd;
	json_t *msg;
	while (gondolin_helper_next(&h, gondolin_now_ms() + 1000, -1, &msg, NULL) == 0) {
		json_t *res;
		agentd_error err;
		gondolin_answer(msg, 1, &res, &err);
		json_t *d = json_object_get(msg, "data");
		uint8_t *bytes;
		size_t n;
		if (json_is_string(d) &&
		    gondolin_b64_decode(json_string_value(d), json_string_length(d), &bytes, &n) == 0) {
			char *again = gondolin_b64_encode(bytes, n);
			if (!again || strcmp(again, json_string_value(d)) != 0)
				abort(); /* decode accepts only what encode makes */
			free(again);
			free(bytes);
		}
		json_decref(msg);
	}
	gondolin_helper_kill(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int p[2];
	if (size > (1u << 20) || pipe2(p, O_CLOEXEC) < 0)
		return 0;
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	if (write(p[1], data, size) != (ssize_t)size) {
		close(p[0]);
		close(p[1]);
		return 0;
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	read_all(p[0]); /* closes p[0] */
	return 0;
}
