/* fuzz_http.c: libFuzzer target for the daemon's request path — what the HTTP handler calls
 * with the method, URL, query and body of every request (routing + strict body validation,
 * including the nested policy parser). Input: METHOD\nPATH\nQUERY-PATH\nBODY; a query
 * line "?k=v&k&..." is split into the whole argument list instead. */
#include "daemon/http/http.h"
#include "common/ws.h"

#include <stdlib.h>
#include <string.h>

static char *take_line(const uint8_t **p, size_t *n)
{
	const uint8_t *nl = memchr(*p, '\n', *n);
	size_t len = nl ? (size_t)(nl - *p) : *n;
	char *s = malloc(len + 1);
	memcpy(s, *p, len);
	s[len] = '\0';
	*p += nl ? len + 1 : len;
	*n -= nl ? len + 1 : len;
	return s;
}

/* "k=v&k2&..." split in place into args (at most max; the rest is dropped). */
static size_t split_query(char *s, struct api_query_arg *args, size_t max)
{
	size_t n = 0;
	for (char *tok = s; tok && n < max;) {
		char *amp = strchr(tok, '&');
		if (amp)
			*amp = '\0';
		char *eq = strchr(tok, '=');
		if (eq)
			*eq = '\0';
		args[n++] = (struct api_query_arg){tok, eq ? eq + 1 : NULL};
		tok = amp ? amp + 1 : NULL;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data;
	size_t n = size;
	char *method = take_line(&p, &n);
	char *path = take_line(&p, &n);
	char *qpath = take_line(&p, &n);
	const char *qv = *qpath ? qpath : NULL;
	/* attach: a well-formed upgrade, whose key is the query line when it has a key's length
	 * (else that line is ?foreground= and ?offset=) */
	bool key = qv && strlen(qv) == 24;
	struct api_query q = {.path = qv, .since = qv, .offset = key ? NULL : qv, .follow = qv,
			      .stream = qv, .foreground = key ? NULL : qv, .upgrade = "websocket",
			      .connection = "keep-alive, Upgrade", .ws_version = "13",
			      .ws_key = key ? qv : "dGhlIHNhbXBsZSBub25jZQ==",
			      /* issue 12: files */
			      .parents = qv && *qv == '1' ? "1" : NULL,
			      .recursive = qv && *qv == '1' ? "1" : NULL,
			      .content_type = qv && *qv == 'a' ? qv : NULL};
	/* a query line "?k=v&..." is the argument list (else the values above, as sent by
	 * the routes' clients, and no other argument) */
	char *qs = strdup(qpath);
	struct api_query_arg args[API_QUERY_MAX_ARGS + 2];
	q.args = args;
	q.nargs = qs[0] == '?' ? split_query(qs + 1, args, API_QUERY_MAX_ARGS + 2) : 0;
	struct api_request r;
	agentd_error err = {0};
	int status = api_request_parse(method, path, &q, p, n, &r, &err);
	if (status == 0) {
		/* what handlers rely on */
		if (r.route >= ROUTE__COUNT)
			abort();
		if (r.route == ROUTE_SANDBOX_EXEC && (!r.argv || !r.argv[0] || !r.argv[0][0]))
			abort();
		if (r.route == ROUTE_PROCESS_ATTACH && !ws_key_valid(r.ws_key))
			abort();
		/* {id}: an id, or a name that can never read as one */
		if (r.id[0] && !api_valid_id(r.id) &&
		    (api_name_reserved(r.id, strlen(r.id)) || strlen(r.id) > API_NAME_MAX ||
		     strspn(r.id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
			     strlen(r.id) || r.id[0] == '.'))
			abort();
		if (r.name && api_name_reserved(r.name, strlen(r.name)))
			abort();
		if (r.label_filter.n > API_LABEL_FILTERS_MAX)
			abort();
		if (r.route == ROUTE_SANDBOX_NETWORK &&
		    (!r.has_network || r.network.mode == AGENTD_NET_HOST ||
		     (r.network.mode != AGENTD_NET_ALLOWLIST && r.network.allow.n)))
			abort();
		if (r.route >= ROUTE_PROCESS_GET && r.route <= ROUTE_PROCESS_OUTPUT && r.pid < 1)
			abort();
		if (r.route == ROUTE_PROCESS_SIGNAL && (r.signal < 1 || r.signal > 64))
			abort();
		if ((r.route == ROUTE_PORT_OPEN || r.route == ROUTE_PORT_CLOSE) && r.port == 0)
			abort(); /* a forwarded port is 1..65535 */
		/* issue 12: files */
		if (r.route >= ROUTE_FILE_LIST && r.route <= ROUTE_FILE_WATCH &&
		    (!r.file_path || !r.file_path[0]))
			abort();
		if (r.route == ROUTE_FILE_CHMOD && r.file_mode > 0777)
			abort(); /* never setuid, setgid, sticky */
		if (r.route == ROUTE_FILE_RENAME && (!r.file_to || !r.file_to[0]))
			abort();
		if (r.has_spec) {
			char *json = agentd_policy_to_json(&r.spec);
			agentd_spec again;
			agentd_spec_init(&again, AGENTD_PROFILE_STRICT);
			if (agentd_policy_parse(json, strlen(json), &again, &err) < 0)
				abort(); /* emit(parse(x)) must parse */
			agentd_spec_free(&again);
			free(json);
		}
		api_request_free(&r);
	} else if (status < 400 || status > 499 || !err.msg[0]) {
		abort(); /* every refusal is a 4xx with a message */
	}
	free(method);
	free(path);
	free(qpath);
	free(qs);
	return 0;
}
