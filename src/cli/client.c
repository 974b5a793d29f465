/* client.c: the CLI's side of the daemon API — one-shot requests and their JSON answers,
 * error reports; the HTTP/1.1 client itself is src/common/uclient.c. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>


int client_send(const char *sock, const char *method, const char *path, json_t *body,
		struct http_response *resp, void (*on_line)(void *, const char *, size_t),
		void *ud, agentd_error *err)
{
	struct client_conn c;
	if (client_connect(sock, &c, err) < 0)
		return -1;
	char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int r = client_request(&c, method, path, b ? "application/json" : NULL, b,
			       b ? strlen(b) : 0, resp, on_line, ud, err);
	free(b);
	client_close(&c);
	return r;
}

json_t *client_call(const char *sock, const char *method, const char *path, json_t *body,
		    int *status, agentd_error *err)
{
	struct http_response resp;
	if (client_send(sock, method, path, body, &resp, NULL, NULL, err) < 0)
		return NULL;
	*status = resp.status;
	json_error_t je;
	json_t *j = json_loadb(resp.body ? resp.body : "", resp.len, 0, &je);
	if (!j)
		agentd_error_set(err, EPROTO, "daemon answered %d with no JSON: %.200s", resp.status,
				 resp.body ? resp.body : "");
	http_response_free(&resp);
	return j;
}

int client_report_error(const char *verb, int status, json_t *j)
{
	const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	print_error("%s: %s (HTTP %d)", verb, msg ? msg : "failed", status);
	return EXIT_AGENTD;
}
