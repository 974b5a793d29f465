/* http.c: the reply a handler fills — JSON, or an error as {"error": {code, message}} with
 * the status a client can act on — and the bearer-token check of the TCP listener. */
#include "daemon/http/http.h"

#include <stdarg.h>

void reply_json(struct reply *out, int status, json_t *j)
{
	if (out->json)
		json_decref(out->json);
	out->status = status;
	out->json = j ? j : json_pack("{s:{s:s, s:s}}", "error", "code", "internal", "message",
				      "cannot encode the answer");
}

int vreply_error(struct reply *out, int status, const char *fmt, va_list ap)
{
	char msg[AGENTD_ERROR_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	json_t *m = json_string(msg);
	if (!m) {
		/* not UTF-8 (a client's bytes quoted back): keep it printable ASCII */
		for (char *c = msg; *c; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
				*c = '?';
		m = json_string(msg);
	}
	reply_json(out, status,
		   json_pack("{s:{s:s, s:o}}", "error", "code", api_status_code(status), "message",
			     m));
	return -1;
}

int reply_error(struct reply *out, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreply_error(out, status, fmt, ap);
	va_end(ap);
	return -1;
}

int reply_agentd_error(struct reply *out, int status, const agentd_error *err)
{
	if (status <= 0)
		status = api_status_from_errno(err->code);
	return reply_error(out, status, "%s", err->msg[0] ? err->msg : "failed");
}

bool http_bearer_ok(const char *header, const char *token, size_t token_len)
{
	if (!header || strncmp(header, "Bearer ", 7) != 0)
		return false;
	const char *t = header + 7;
	size_t n = strlen(t);
	/* In constant time for the token's length: the timing says nothing of its bytes. */
	unsigned char diff = n != token_len;
	for (size_t i = 0; i < token_len; i++)
		diff |= (unsigned char)(token[i] ^ (i < n ? t[i] : 0));
	return diff == 0;
}
