/* request.c: routing and strict validation of API requests — the whole path from method,
 * URL and body bytes to a typed request, with no I/O, so the fuzzer drives exactly what the
 * HTTP handler calls. Unknown fields, wrong types and bad ids are 400s naming the field. */
#include "daemon/http/http.h"
#include "common/ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct route_def {
	enum api_route route;
	const char *method;
	const char *pattern;		/* "/v1/sandboxes/{id}/exec" */
	bool json_body;			/* a JSON object body is allowed (else none) */
};

static const struct route_def routes[] = {
	{ROUTE_HEALTH, "GET", "/v1/health", false},
	{ROUTE_METRICS, "GET", "/v1/metrics", false},
	{ROUTE_BACKENDS, "GET", "/v1/backends", false},
	{ROUTE_BACKEND, "GET", "/v1/backends/{name}", false},
	{ROUTE_SANDBOX_CREATE, "POST", "/v1/sandboxes", true},
	{ROUTE_SANDBOX_LIST, "GET", "/v1/sandboxes", false},
	{ROUTE_SANDBOX_GET, "GET", "/v1/sandboxes/{id}", false},
	{ROUTE_SANDBOX_DELETE, "DELETE", "/v1/sandboxes/{id}", false},
	{ROUTE_SANDBOX_EXEC, "POST", "/v1/sandboxes/{id}/exec", true},
	{ROUTE_SANDBOX_SUSPEND, "POST", "/v1/sandboxes/{id}/suspend", true},
	{ROUTE_SANDBOX_RESUME, "POST", "/v1/sandboxes/{id}/resume", true},
	{ROUTE_SANDBOX_SNAPSHOT, "POST", "/v1/sandboxes/{id}/snapshots", true},
	{ROUTE_SANDBOX_RESTORE, "POST", "/v1/sandboxes/{id}/restore", true},
	{ROUTE_SANDBOX_USAGE, "GET", "/v1/sandboxes/{id}/usage", false},
	{ROUTE_FILE_PUT, "PUT", "/v1/sandboxes/{id}/files", false},
	{ROUTE_FILE_GET, "GET", "/v1/sandboxes/{id}/files", false},
	{ROUTE_SESSION_CREATE, "POST", "/v1/agents/{agent}/sessions", true},
	{ROUTE_SESSION_EXEC, "POST", "/v1/agents/{agent}/sessions/{sid}/executions", true},
	{ROUTE_SESSION_DELETE, "DELETE", "/v1/agents/{agent}/sessions/{sid}", false},
	{ROUTE_AUDIT, "GET", "/v1/audit", false},
	{ROUTE_AUDIT_VERIFY, "GET", "/v1/audit/verify", false},
	{ROUTE_PROCESS_CREATE, "POST", "/v1/sandboxes/{id}/processes", true},
	{ROUTE_PROCESS_LIST, "GET", "/v1/sandboxes/{id}/processes", false},
	{ROUTE_PROCESS_GET, "GET", "/v1/sandboxes/{id}/processes/{pid}", false},
	{ROUTE_PROCESS_DELETE, "DELETE", "/v1/sandboxes/{id}/processes/{pid}", false},
	{ROUTE_PROCESS_SIGNAL, "POST", "/v1/sandboxes/{id}/processes/{pid}/signal", true},
	{ROUTE_PROCESS_STDIN, "POST", "/v1/sandboxes/{id}/processes/{pid}/stdin", true},
	{ROUTE_PROCESS_OUTPUT, "GET", "/v1/sandboxes/{id}/processes/{pid}/output", false},
	{ROUTE_PROCESS_ATTACH, "GET", "/v1/sandboxes/{id}/processes/{pid}/attach", false},
	{ROUTE_CONTEXT_CREATE, "POST", "/v1/sandboxes/{id}/contexts", true},
	{ROUTE_CONTEXT_LIST, "GET", "/v1/sandboxes/{id}/contexts", false},
	{ROUTE_CONTEXT_GET, "GET", "/v1/sandboxes/{id}/contexts/{cid}", false},
	{ROUTE_CONTEXT_DELETE, "DELETE", "/v1/sandboxes/{id}/contexts/{cid}", false},
	{ROUTE_CONTEXT_RUN, "POST", "/v1/sandboxes/{id}/contexts/{cid}/run", true},
	{ROUTE_SESSION_EXECUTIONS, "GET", "/v1/agents/{agent}/sessions/{sid}/executions", false},
	{ROUTE_PORT_OPEN, "POST", "/v1/sandboxes/{id}/ports", true},
	{ROUTE_PORT_LIST, "GET", "/v1/sandboxes/{id}/ports", false},
	{ROUTE_PORT_CLOSE, "DELETE", "/v1/sandboxes/{id}/ports/{port}", false},
	/* issue 12: names */
	{ROUTE_SANDBOX_NETWORK, "PATCH", "/v1/sandboxes/{id}/network", true},
	/* issue 12: files */
	{ROUTE_FILE_LIST, "GET", "/v1/sandboxes/{id}/files/list", false},
	{ROUTE_FILE_STAT, "GET", "/v1/sandboxes/{id}/files/stat", false},
	{ROUTE_FILE_MKDIR, "POST", "/v1/sandboxes/{id}/files/mkdir", true},
	{ROUTE_FILE_DELETE, "DELETE", "/v1/sandboxes/{id}/files", false},
	{ROUTE_FILE_RENAME, "POST", "/v1/sandboxes/{id}/files/rename", true},
	{ROUTE_FILE_CHMOD, "POST", "/v1/sandboxes/{id}/files/chmod", true},
	{ROUTE_FILE_TAR_PUT, "PUT", "/v1/sandboxes/{id}/files/tar", false},
	{ROUTE_FILE_TAR_GET, "GET", "/v1/sandboxes/{id}/files/tar", false},
	{ROUTE_FILE_WATCH, "GET", "/v1/sandboxes/{id}/files/watch", false},
	/* issue 12: ttl */
	{ROUTE_SANDBOX_TIMEOUT, "POST", "/v1/sandboxes/{id}/timeout", true},
	/* issue 12: snapshots */
	{ROUTE_SANDBOX_SNAPSHOTS, "GET", "/v1/sandboxes/{id}/snapshots", false},
	{ROUTE_SANDBOX_SNAPSHOT_DELETE, "DELETE", "/v1/sandboxes/{id}/snapshots/{snap}", false},
	{ROUTE_SNAPSHOT_LIST, "GET", "/v1/snapshots", false},
	{ROUTE_SNAPSHOT_GET, "GET", "/v1/snapshots/{snap}", false},
	{ROUTE_SNAPSHOT_DELETE, "DELETE", "/v1/snapshots/{snap}", false},
	/* issue 13: img-store. {ref...} takes the rest of the path but the pattern's tail: a
	 * reference's '/' may stay literal or be %2F (decoded first), ':' literal or %3A. */
	{ROUTE_IMAGE_LIST, "GET", "/v1/images", false},
	{ROUTE_IMAGE_IMPORT, "POST", "/v1/images/import", true},
	{ROUTE_IMAGE_PRUNE, "POST", "/v1/images/prune", false},
	{ROUTE_IMAGE_TAG, "POST", "/v1/images/{ref...}/tag", true},
	{ROUTE_IMAGE_GET, "GET", "/v1/images/{ref...}", false},
	{ROUTE_IMAGE_DELETE, "DELETE", "/v1/images/{ref...}", false},
	/* issue 13: img-build */
	{ROUTE_IMAGE_BUILD, "POST", "/v1/images/build", true},
};

/* The body fields each route accepts; anything else is an unknown field. */
struct field {
	const char *name;
	json_type type;			/* JSON_TRUE stands for a boolean, JSON_NULL for
					 * a type the route's parser checks */
	bool required;
};
#define MAX_FIELDS 12
static const struct field route_fields[ROUTE__COUNT][MAX_FIELDS] = {
	[ROUTE_SANDBOX_CREATE] = {{"backend", JSON_STRING, false},
				  {"spec", JSON_OBJECT, false},
				  {"name", JSON_STRING, false},
				  {"allow_degraded", JSON_TRUE, false},
				  /* issue 12: ttl */
				  {"ttl_ms", JSON_INTEGER, false},
				  {"idle_timeout_ms", JSON_INTEGER, false},
				  {"on_expire", JSON_STRING, false},
				  /* issue 12: snapshots */
				  {"from_snapshot", JSON_STRING, false},
				  {"from_snapshot_copy", JSON_TRUE, false}},
	[ROUTE_SANDBOX_EXEC] = {{"argv", JSON_ARRAY, true},
				{"env", JSON_OBJECT, false},
				{"workdir", JSON_STRING, false},
				{"stdin", JSON_STRING, false},
				{"timeout_ms", JSON_INTEGER, false},
				{"stream", JSON_TRUE, false}},
	[ROUTE_SANDBOX_SNAPSHOT] = {{"name", JSON_STRING, false}},
	[ROUTE_SANDBOX_RESTORE] = {{"snapshot_id", JSON_STRING, true}},
	[ROUTE_SESSION_CREATE] = {{"config", JSON_OBJECT, false},
				  {"backend", JSON_STRING, false},
				  {"allow_degraded", JSON_TRUE, false}},
	[ROUTE_SESSION_EXEC] = {{"code", JSON_STRING, true},
				{"language", JSON_STRING, false},
				{"timeout_ms", JSON_INTEGER, false},
				{"env", JSON_OBJECT, false},
				{"stream", JSON_TRUE, false}},
	[ROUTE_CONTEXT_CREATE] = {{"language", JSON_STRING, true},
				  {"env", JSON_OBJECT, false},
				  {"workdir", JSON_STRING, false}},
	[ROUTE_CONTEXT_RUN] = {{"code", JSON_STRING, true},
			       {"timeout_ms", JSON_INTEGER, false},
			       {"env", JSON_OBJECT, false},
			       {"stream", JSON_TRUE, false}},
	[ROUTE_PROCESS_CREATE] = {{"argv", JSON_ARRAY, true},
				  {"env", JSON_OBJECT, false},
				  {"workdir", JSON_STRING, false},
				  {"tty", JSON_TRUE, false},
				  {"rows", JSON_INTEGER, false},
				  {"cols", JSON_INTEGER, false},
				  {"stdin", JSON_TRUE, false}},
	[ROUTE_PROCESS_SIGNAL] = {{"signal", JSON_NULL, true}},
	[ROUTE_PROCESS_STDIN] = {{"data", JSON_STRING, false},
				 {"encoding", JSON_STRING, false},
				 {"close", JSON_TRUE, false}},
	[ROUTE_PORT_OPEN] = {{"port", JSON_INTEGER, true}, {"unix", JSON_TRUE, false}},
	/* issue 12: names */
	[ROUTE_SANDBOX_NETWORK] = {{"mode", JSON_STRING, true}, {"allow", JSON_ARRAY, false}},
	/* issue 13: img-store */
	[ROUTE_IMAGE_IMPORT] = {{"path", JSON_STRING, true}, {"tag", JSON_STRING, false}},
	[ROUTE_IMAGE_TAG] = {{"tag", JSON_STRING, true}},
	/* issue 12: files */
	[ROUTE_FILE_MKDIR] = {{"path", JSON_STRING, true}, {"parents", JSON_TRUE, false}},
	[ROUTE_FILE_RENAME] = {{"from", JSON_STRING, true},
			       {"to", JSON_STRING, true},
			       {"noreplace", JSON_TRUE, false}},
	[ROUTE_FILE_CHMOD] = {{"path", JSON_STRING, true}, {"mode", JSON_NULL, true}},
	/* issue 12: ttl */
	[ROUTE_SANDBOX_TIMEOUT] = {{"ttl_ms", JSON_INTEGER, false},
				   {"idle_timeout_ms", JSON_INTEGER, false},
				   {"on_expire", JSON_STRING, false}},
	/* issue 13: img-build */
	[ROUTE_IMAGE_BUILD] = {{"from", JSON_STRING, true},
			       {"tag", JSON_STRING, true},
			       {"packages", JSON_ARRAY, false},
			       {"run", JSON_ARRAY, false},
			       {"mirror", JSON_STRING, false},
			       {"no_cache", JSON_TRUE, false},
			       {"backend", JSON_STRING, false}},
};

/* The query parameters each route takes; any other is a 400 naming it. */
#define MAX_QUERY 6
static const char *const route_query[ROUTE__COUNT][MAX_QUERY] = {
	[ROUTE_FILE_GET] = {"path"},
	[ROUTE_AUDIT] = {"since"},
	[ROUTE_PROCESS_OUTPUT] = {"offset", "follow", "stream"},
	[ROUTE_PROCESS_ATTACH] = {"offset", "foreground"},
	/* issue 12: names */
	[ROUTE_SANDBOX_LIST] = {"label", "state", "backend", "name"},
	/* issue 12: files */
	[ROUTE_FILE_PUT] = {"path", "parents"},
	[ROUTE_FILE_LIST] = {"path"},
	[ROUTE_FILE_STAT] = {"path"},
	[ROUTE_FILE_DELETE] = {"path", "recursive"},
	[ROUTE_FILE_TAR_PUT] = {"path"},
	[ROUTE_FILE_TAR_GET] = {"path"},
	[ROUTE_FILE_WATCH] = {"path"},
	/* issue 13: img-store */
	[ROUTE_IMAGE_IMPORT] = {"tag"},
	[ROUTE_IMAGE_DELETE] = {"force"},
};

/* Linux's standard signals; 32..64 are real-time ones, by number only. */
static const char *const signal_names[32] = {
	[1] = "HUP",   [2] = "INT",	[3] = "QUIT",	 [4] = "ILL",	  [5] = "TRAP",
	[6] = "ABRT",  [7] = "BUS",	[8] = "FPE",	 [9] = "KILL",	  [10] = "USR1",
	[11] = "SEGV", [12] = "USR2",	[13] = "PIPE",	 [14] = "ALRM",	  [15] = "TERM",
	[16] = "STKFLT", [17] = "CHLD", [18] = "CONT",	 [19] = "STOP",	  [20] = "TSTP",
	[21] = "TTIN", [22] = "TTOU",	[23] = "URG",	 [24] = "XCPU",	  [25] = "XFSZ",
	[26] = "VTALRM", [27] = "PROF", [28] = "WINCH", [29] = "IO",	  [30] = "PWR",
	[31] = "SYS",
};

const char *api_signal_name(int sig)
{
	return sig > 0 && sig < 32 ? signal_names[sig] : NULL;
}

int api_signal_parse(const char *s)
{
	if (*s >= '1' && *s <= '9' && strlen(s) <= 2) {
		char *end;
		long v = strtol(s, &end, 10);
		return !*end && v >= 1 && v <= 64 ? (int)v : -1;
	}
	if (!strncmp(s, "SIG", 3))
		s += 3;
	for (int i = 1; i < 32; i++)
		if (!strcmp(s, signal_names[i]))
			return i;
	return -1;
}

const char *api_route_name(enum api_route r)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (routes[i].route == r)
			return routes[i].pattern;
	return "?";
}

const char *api_language_name(enum api_language l)
{
	return l == LANG_PYTHON ? "python" : l == LANG_NODE ? "node" : l == LANG_BASH ? "bash" : "sh";
}

const char *api_status_code(int status)
{
	switch (status) {
	case 400: return "bad_request";
	case 401: return "unauthorized";
	case 404: return "not_found";
	case 405: return "method_not_allowed";
	case 409: return "conflict";
	case 413: return "too_large";
	case 415: return "unsupported_media_type"; /* issue 12: files */
	case 507: return "insufficient_storage";
	case 429: return "over_capacity";
	case 501: return "not_supported";
	case 503: return "unavailable";
	default: return status >= 500 ? "internal" : "error";
	}
}

int api_status_from_errno(int e)
{
	switch (e) {
	case EINVAL: case ELOOP: case ENAMETOOLONG: case EISDIR: case ENOTDIR: case EACCES:
	case EPERM: case EROFS:
		return 400;
	case ENOENT: case ESRCH:
		return 404;
	case EBUSY: case EALREADY: case EEXIST:
	case ENOTEMPTY: /* issue 12: files */
		return 409;
	case EXDEV: /* issue 12: files (a rename across filesystems) */
		return 400;
	case E2BIG: case EFBIG: case ENOSPC: case EDQUOT:
		return 413;
	case EAGAIN:
		return 429;
	case ENOTSUP:
		return 501;
	default:
		return 500;
	}
}

bool api_valid_id(const char *s)
{
	return state_is_id(s);
}

bool api_name_reserved(const char *s, size_t len)
{
	size_t n = 0;
	while (n < len && strchr("0123456789abcdefABCDEF", s[n]) && s[n])
		n++;
	return len == API_ID_LEN && n == len;
}

static bool valid_name(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return s[0] != '.';
}

bool api_valid_snapshot_name(const char *s)
{
	return valid_name(s, strlen(s), API_NAME_MAX) && !api_valid_id(s);
}

/* A snapshot's id or name ({snap}, a restore's snapshot_id, from_snapshot). */
static bool valid_snapshot_ref(const char *s, size_t len)
{
	return valid_name(s, len, API_NAME_MAX);
}

/* issue 13: img-store. An image reference: the characters of a name[:tag] or a
 * sha256:<hex> id, no empty, "." or ".." segment. */
static bool valid_image_ref(const char *s, size_t len)
{
	if (len == 0 || len > API_IMAGE_REF_MAX || s[0] == '/' || s[len - 1] == '/')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!a_alnum(c) && !strchr("._-/:", c))
			return false;
		if (c == '/' && (s[i + 1] == '/' || s[i + 1] == '.'))
			return false;
	}
	return s[0] != '.';
}

/* "{ref...}" at p: the rest of u but the pattern's literal tail. 1 match, 0 none. */
static int match_rest(const char *p, const char *u, struct api_request *r, agentd_error *err,
		      int *bad)
{
	const char *tail = p + strlen("{ref...}");
	size_t ulen = strlen(u), tlen = strlen(tail);
	if (ulen <= tlen || strcmp(u + ulen - tlen, tail))
		return 0;
	ulen -= tlen;
	if (!valid_image_ref(u, ulen)) {
		*bad = 1;
		agentd_error_set(err, EINVAL, "bad image reference '%.*s'",
				 (int)(ulen > 80 ? 80 : ulen), u);
		return 0;
	}
	memcpy(r->image_ref, u, ulen);
	r->image_ref[ulen] = '\0';
	return 1;
}

/* Match path against pattern segment by segment; captures go into r. 1 = match. */
static int match(const char *pattern, const char *path, struct api_request *r,
		 agentd_error *err, int *bad)
{
	const char *p = pattern, *u = path;
	while (*p && *u) {
		if (p[0] == '/' && u[0] == '/' && !strncmp(p + 1, "{ref...}", 8))
			return match_rest(p + 1, u + 1, r, err, bad);
		if (*p != '/' || *u != '/')
			return 0;
		p++;
		u++;
		const char *pe = strchrnul(p, '/'), *ue = strchrnul(u, '/');
		size_t plen = (size_t)(pe - p), ulen = (size_t)(ue - u);
		if (*p == '{') {
			char *dst = NULL;
			size_t max = 0;
			bool ok;
			const char *what = "";
			if (!strncmp(p, "{id}", plen)) {
				/* an id, or a name (which is never 32 hex digits) */
				dst = r->id;
				max = API_NAME_MAX;
				char tmp[API_ID_LEN + 2] = "";
				if (ulen <= API_ID_LEN)
					memcpy(tmp, u, ulen);
				ok = api_valid_id(tmp) || (valid_name(u, ulen, max) &&
							   !api_name_reserved(u, ulen));
				what = "sandbox id or name";
			} else if (!strncmp(p, "{sid}", plen) || !strncmp(p, "{cid}", plen)) {
				dst = p[1] == 's' ? r->session : r->context;
				max = API_ID_LEN;
				char tmp[API_ID_LEN + 2] = "";
				if (ulen <= API_ID_LEN)
					memcpy(tmp, u, ulen);
				ok = ulen == API_ID_LEN && api_valid_id(tmp);
				what = p[1] == 's' ? "session id" : "context id";
			} else if (!strncmp(p, "{pid}", plen)) {
				char tmp[12] = "";
				if (ulen <= 10)
					memcpy(tmp, u, ulen);
				char *end = tmp;
				long long v = ulen && tmp[0] != '0' ? strtoll(tmp, &end, 10) : 0;
				ok = ulen <= 10 && v >= 1 && v <= INT32_MAX && !*end;
				if (!ok) {
					*bad = 1;
					agentd_error_set(err, EINVAL, "bad pid '%.*s'",
							 (int)(ulen > 80 ? 80 : ulen), u);
					return 0;
				}
				r->pid = v;
				p = pe;
				u = ue;
				continue;
			} else if (!strncmp(p, "{port}", plen)) {
				/* digits only, 1..65535: the sandbox's port, not a name */
				unsigned v = 0;
				ok = ulen >= 1 && ulen <= 5;
				for (size_t i = 0; ok && i < ulen; i++) {
					ok = u[i] >= '0' && u[i] <= '9';
					v = v * 10 + (unsigned)(u[i] - '0');
				}
				ok = ok && v >= 1 && v <= 65535;
				r->port = (uint16_t)v;
				what = "port";
			} else if (!strncmp(p, "{snap}", plen)) {
				dst = r->snapshot_ref;
				ok = valid_snapshot_ref(u, ulen);
				what = "snapshot id or name";
			} else if (!strncmp(p, "{agent}", plen)) {
				dst = r->agent;
				max = API_AGENT_MAX;
				ok = valid_name(u, ulen, max);
				what = "agent id";
			} else {
				dst = r->param;
				max = API_NAME_MAX;
				ok = valid_name(u, ulen, max);
				what = "name";
			}
			if (!ok) {
				/* The route is right, the id is not: a 400 naming it, not a 404. */
				*bad = 1;
				agentd_error_set(err, EINVAL, "bad %s '%.*s'", what,
						 (int)(ulen > 80 ? 80 : ulen), u);
				return 0;
			}
			if (dst) {
				memcpy(dst, u, ulen);
				dst[ulen] = '\0';
			}
		} else if (plen != ulen || strncmp(p, u, plen) != 0) {
			return 0;
		}
		p = pe;
		u = ue;
	}
	return !*p && !*u;
}

static char *dup_string(json_t *v, const char *field, size_t max, agentd_error *err)
{
	size_t n = json_string_length(v);
	const char *s = json_string_value(v);
	if (memchr(s, '\0', n)) {
		agentd_error_set(err, EINVAL, "%s: contains a NUL byte", field);
		return NULL;
	}
	if (max && n > max) {
		agentd_error_set(err, EINVAL, "%s: longer than %zu bytes", field, max);
		return NULL;
	}
	return strdup(s);
}

static int parse_spec(json_t *obj, const char *field, agentd_spec *spec, agentd_error *err)
{
	char *s = json_dumps(obj, JSON_COMPACT);
	if (!s)
		return agentd_error_set(err, ENOMEM, "%s: cannot re-encode", field);
	int r = agentd_policy_parse(s, strlen(s), spec, err);
	free(s);
	return r < 0 ? agentd_error_prefix(err, "%s", field) : 0;
}

static int parse_env(json_t *b, struct api_request *r, agentd_error *err)
{
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(b, "env"), k, v) {
		if (!json_is_string(v))
			return agentd_error_set(err, EINVAL, "env.%s: expected string", k);
		if (!*k || strchr(k, '='))
			return agentd_error_set(err, EINVAL, "env: bad variable name '%s'", k);
		char f[64];
		snprintf(f, sizeof(f), "env.%.50s", k);
		char *val = dup_string(v, f, 0, err);
		if (!val)
			return -1;
		r->env.v = realloc(r->env.v, (r->env.n + 1) * sizeof(agentd_kv));
		r->env.v[r->env.n].key = strdup(k);
		r->env.v[r->env.n].value = val;
		r->env.n++;
	}
	return 0;
}

static int parse_timeout(json_t *b, struct api_request *r, agentd_error *err)
{
	json_t *v = json_object_get(b, "timeout_ms");
	if (v) {
		json_int_t t = json_integer_value(v);
		if (t < 1)
			return agentd_error_set(err, EINVAL, "timeout_ms: expected integer >= 1");
		r->timeout_ms = (uint64_t)t;
	}
	return 0;
}

static int parse_language(const char *l, enum api_language *out, agentd_error *err)
{
	static const enum api_language all[] = {LANG_PYTHON, LANG_NODE, LANG_SH, LANG_BASH};
	for (size_t i = 0; l && i < sizeof(all) / sizeof(all[0]); i++)
		if (!strcmp(l, api_language_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	return agentd_error_set(err, EINVAL, "language: expected python, node, sh or bash");
}

/* A cell's code: a string without NUL, at most API_CODE_MAX bytes (413 past it). */
static int parse_code(json_t *b, struct api_request *r, agentd_error *err)
{
	json_t *v = json_object_get(b, "code");
	if (json_string_length(v) > API_CODE_MAX)
		return agentd_error_set(err, E2BIG, "code: %zu bytes, over the limit of %u",
					json_string_length(v), API_CODE_MAX);
	return (r->code = dup_string(v, "code", 0, err)) ? 0 : -1;
}


/* argv, env and workdir of an exec or a process; max_bytes bounds argv's strings together
 * (0: only the body's size does). */
static int parse_command(json_t *b, struct api_request *r, size_t max_bytes, agentd_error *err)
{
	json_t *argv = json_object_get(b, "argv"), *v;
	size_t n = json_array_size(argv), i, total = 0;
	if (n == 0 || n > 4096)
		return agentd_error_set(err, EINVAL, "argv: expected 1 to 4096 strings");
	r->argv = calloc(n + 1, sizeof(char *));
	json_array_foreach(argv, i, v) {
		char f[32];
		snprintf(f, sizeof(f), "argv[%zu]", i);
		if (!json_is_string(v))
			return agentd_error_set(err, EINVAL, "%s: expected string", f);
		if (!(r->argv[i] = dup_string(v, f, 0, err)))
			return -1;
		total += json_string_length(v) + 1;
		if (max_bytes && total > max_bytes)
			return agentd_error_set(err, EINVAL, "argv: longer than %zu bytes in all",
						max_bytes);
	}
	if (!r->argv[0][0])
		return agentd_error_set(err, EINVAL, "argv[0]: empty");
	if (parse_env(b, r, err) < 0)
		return -1;
	if ((v = json_object_get(b, "workdir"))) {
		if (!(r->workdir = dup_string(v, "workdir", 4096, err)))
			return -1;
		if (r->workdir[0] != '/')
			return agentd_error_set(err, EINVAL, "workdir: expected an absolute path");
	}
	return 0;
}

static int parse_exec(json_t *b, struct api_request *r, agentd_error *err)
{
	json_t *v;
	if (parse_command(b, r, 0, err) < 0)
		return -1;
	if ((v = json_object_get(b, "stdin"))) {
		if (base64_decode(json_string_value(v), json_string_length(v),
					 &r->stdin_data, &r->stdin_len) < 0)
			return agentd_error_set(err, EINVAL, "stdin: expected base64");
		r->has_stdin = true;
	}
	if (parse_timeout(b, r, err) < 0)
		return -1;
	r->stream = json_is_true(json_object_get(b, "stream"));
	return 0;
}

static bool wants_tty(json_t *b)
{
	return json_is_true(json_object_get(b, "tty"));
}

static int parse_tty_size(json_t *b, const char *field, unsigned *out, agentd_error *err)
{
	json_t *v = json_object_get(b, field);
	if (!v)
		return 0;
	json_int_t n = json_integer_value(v);
	if (n < 1 || n > API_TTY_MAX)
		return agentd_error_set(err, EINVAL, "%s: expected integer in 1..%u", field,
					API_TTY_MAX);
	if (!wants_tty(b))
		return agentd_error_set(err, EINVAL, "%s: only with \"tty\": true", field);
	*out = (unsigned)n;
	return 0;
}

static int parse_process(json_t *b, struct api_request *r, agentd_error *err)
{
	if (parse_command(b, r, API_ARGV_MAX_BYTES, err) < 0)
		return -1;
	r->tty = wants_tty(b);
	r->keep_stdin = json_is_true(json_object_get(b, "stdin"));
	if (parse_tty_size(b, "rows", &r->rows, err) < 0 ||
	    parse_tty_size(b, "cols", &r->cols, err) < 0)
		return -1;
	return 0;
}

static int parse_signal(json_t *b, struct api_request *r, agentd_error *err)
{
	json_t *v = json_object_get(b, "signal");
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		r->signal = n >= 1 && n <= 64 ? (int)n : -1;
	} else if (json_is_string(v) && !memchr(json_string_value(v), '\0', json_string_length(v))) {
		r->signal = api_signal_parse(json_string_value(v));
	} else {
		return agentd_error_set(err, EINVAL, "signal: expected a name or a number");
	}
	if (r->signal < 0) {
		char q[96];
		quote_text(q, sizeof(q), json_is_string(v) ? json_string_value(v) : "?");
		return agentd_error_set(err, EINVAL,
					"signal: unknown signal %s (expected a name such as "
					"TERM or a number in 1..64)",
					json_is_string(v) ? q : "number");
	}
	return 0;
}

static int parse_stdin_write(json_t *b, struct api_request *r, agentd_error *err)
{
	json_t *data = json_object_get(b, "data");
	const char *enc = json_string_value(json_object_get(b, "encoding"));
	r->close_stdin = json_is_true(json_object_get(b, "close"));
	if (!data && !r->close_stdin)
		return agentd_error_set(err, EINVAL, "data: required (or \"close\": true)");
	if (enc && strcmp(enc, "base64"))
		return agentd_error_set(err, EINVAL,
					"encoding: expected \"base64\" (or none: text)");
	if (enc && !data)
		return agentd_error_set(err, EINVAL, "encoding: without data");
	if (!data)
		return 0;
	const char *s = json_string_value(data);
	size_t n = json_string_length(data);
	r->has_stdin = true;
	if (enc) {
		if (base64_decode(s, n, &r->stdin_data, &r->stdin_len) < 0)
			return agentd_error_set(err, EINVAL, "data: expected base64");
		return 0;
	}
	r->stdin_data = malloc(n ? n : 1);
	memcpy(r->stdin_data, s, n);
	r->stdin_len = n;
	return 0;
}

/* ?offset=N&follow=1&stream=stdout|stderr|both of GET .../output */
static int parse_output_query(const struct api_query *q, struct api_request *r,
			      agentd_error *err)
{
	const char *o = q ? q->offset : NULL, *f = q ? q->follow : NULL,
		   *s = q ? q->stream : NULL;
	if (o && *o) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(o, &end, 10);
		if (*end || errno || *o < '0' || *o > '9' || strlen(o) > 20)
			return agentd_error_set(err, EINVAL,
						"offset: expected a byte offset (integer >= 0)");
		r->offset = v;
	}
	if (f && *f) {
		if (!strcmp(f, "1") || !strcmp(f, "true"))
			r->follow = true;
		else if (strcmp(f, "0") && strcmp(f, "false"))
			return agentd_error_set(err, EINVAL, "follow: expected 1 or 0");
	}
	if (s && *s) {
		if (!strcmp(s, "stdout"))
			r->streams = API_STREAMS_STDOUT;
		else if (!strcmp(s, "stderr"))
			r->streams = API_STREAMS_STDERR;
		else if (strcmp(s, "both"))
			return agentd_error_set(err, EINVAL,
						"stream: expected stdout, stderr or both");
	}
	return 0;
}

/* A comma-separated header value holds token (case-insensitive), as Connection: keep-alive,
 * Upgrade does. */
static bool has_token(const char *v, const char *token)
{
	size_t tl = strlen(token);
	while (v && *v) {
		v += strspn(v, " \t,");
		size_t n = strcspn(v, ",");
		size_t m = n;
		while (m && (v[m - 1] == ' ' || v[m - 1] == '\t'))
			m--;
		if (m == tl && !strncasecmp(v, token, tl))
			return true;
		v += n;
	}
	return false;
}

/* GET .../attach: a WebSocket upgrade (RFC 6455 4.2.1) and its query. */
static int parse_attach(const struct api_query *q, struct api_request *r, agentd_error *err)
{
	if (!q || !has_token(q->upgrade, "websocket") || !has_token(q->connection, "upgrade"))
		return agentd_error_set(err, EINVAL, "attach is a WebSocket: expected the headers "
					"Upgrade: websocket and Connection: Upgrade");
	if (!q->ws_version || strcmp(q->ws_version, "13"))
		return agentd_error_set(err, EINVAL, "Sec-WebSocket-Version: expected 13");
	if (!ws_key_valid(q->ws_key))
		return agentd_error_set(err, EINVAL,
					"Sec-WebSocket-Key: expected base64 of 16 bytes");
	snprintf(r->ws_key, sizeof(r->ws_key), "%s", q->ws_key);
	const char *f = q->foreground;
	if (f && *f) {
		if (!strcmp(f, "1") || !strcmp(f, "true"))
			r->foreground = true;
		else if (strcmp(f, "0") && strcmp(f, "false"))
			return agentd_error_set(err, EINVAL, "foreground: expected 1 or 0");
	}
	struct api_query oq = {.offset = q->offset};
	r->has_offset = q->offset && *q->offset;
	return parse_output_query(&oq, r, err);
}

/* PATCH .../network: {"mode": "none" | "allowlist", "allow": [...]}, checked as the
 * policy's network object is (entries, allow only with allowlist); "host" is no mode a
 * live sandbox can be switched to. */
static int parse_network(json_t *b, struct api_request *r, agentd_error *err)
{
	const char *mode = json_string_value(json_object_get(b, "mode"));
	if (!strcmp(mode, "host"))
		return agentd_error_set(err, EINVAL,
					"mode: a live sandbox cannot be switched to \"host\" (it "
					"would leave its network namespace): expected \"none\" or "
					"\"allowlist\"");
	json_t *policy = json_pack("{s:O}", "network", b);
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	char *s = json_dumps(policy, JSON_COMPACT);
	json_decref(policy);
	int rc = agentd_policy_parse(s, strlen(s), &spec, err);
	free(s);
	if (rc == 0) {
		r->network = spec.network;
		memset(&spec.network, 0, sizeof(spec.network));
		r->has_network = true;
	} else {
		/* "network.mode: ..." names the field as the body has it */
		const char *m = strncmp(err->msg, "network.", 8) ? NULL : err->msg + 8;
		if (m)
			memmove(err->msg, m, strlen(m) + 1);
	}
	agentd_spec_free(&spec);
	return rc;
}

/* issue 12: files — a path of the files API: a string of 1..4096 bytes without NUL. */
static char *dup_file_path(json_t *v, const char *field, agentd_error *err)
{
	char *s = dup_string(v, field, 4096, err);
	if (s && !*s) {
		free(s);
		agentd_error_set(err, EINVAL, "%s: empty", field);
		return NULL;
	}
	return s;
}

/* chmod's mode: an integer or an octal string ("755"), permission bits only. */
static int parse_file_mode(json_t *v, uint32_t *out, agentd_error *err)
{
	long long m = -1;
	if (json_is_integer(v)) {
		m = json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		m = strtoll(s, &end, 8);
		if (!*s || *end || errno || *s == '-' || *s == '+' || strlen(s) > 6)
			m = -1;
	}
	if (m < 0 || m > 07777)
		return agentd_error_set(err, EINVAL,
					"mode: expected permission bits, e.g. \"755\" or 493");
	if (m & ~0777)
		return agentd_error_set(err, EINVAL,
					"mode: %#llo has setuid, setgid or sticky bits (only 0777 "
					"may be set)", m);
	*out = (uint32_t)m;
	return 0;
}

static int parse_file_body(json_t *b, struct api_request *r, agentd_error *err)
{
	if (r->route == ROUTE_FILE_RENAME) {
		if (!(r->file_path = dup_file_path(json_object_get(b, "from"), "from", err)) ||
		    !(r->file_to = dup_file_path(json_object_get(b, "to"), "to", err)))
			return -1;
		r->file_noreplace = json_is_true(json_object_get(b, "noreplace"));
		return 0;
	}
	if (!(r->file_path = dup_file_path(json_object_get(b, "path"), "path", err)))
		return -1;
	r->file_parents = json_is_true(json_object_get(b, "parents"));
	if (r->route == ROUTE_FILE_CHMOD)
		return parse_file_mode(json_object_get(b, "mode"), &r->file_mode, err);
	return 0;
}

/* A boolean query parameter: absent, 1/true or 0/false. */
static int query_bool(const char *v, const char *name, bool *out, agentd_error *err)
{
	if (!v || !*v)
		return 0;
	if (!strcmp(v, "1") || !strcmp(v, "true"))
		*out = true;
	else if (strcmp(v, "0") && strcmp(v, "false"))
		return agentd_error_set(err, EINVAL, "%s: expected 1 or 0", name);
	return 0;
}

static bool file_query_route(enum api_route route)
{
	return route == ROUTE_FILE_PUT || route == ROUTE_FILE_GET || route == ROUTE_FILE_LIST ||
	       route == ROUTE_FILE_STAT || route == ROUTE_FILE_DELETE ||
	       route == ROUTE_FILE_TAR_PUT || route == ROUTE_FILE_TAR_GET ||
	       route == ROUTE_FILE_WATCH;
}

/* issue 12: ttl */
static int parse_duration_field(json_t *b, const char *field, bool *has, uint64_t *out,
				agentd_error *err)
{
	json_t *v = json_object_get(b, field);
	if (!v)
		return 0;
	json_int_t n = json_integer_value(v);
	if (n < 0 || (uint64_t)n > API_MAX_TIMEOUT_MS)
		return agentd_error_set(err, EINVAL, "%s: expected milliseconds in 0..%llu (0: none)",
					field, (unsigned long long)API_MAX_TIMEOUT_MS);
	*has = true;
	*out = (uint64_t)n;
	return 0;
}

/* ttl_ms, idle_timeout_ms and on_expire of a create or a POST .../timeout. */
static int parse_expiry(json_t *b, struct api_request *r, agentd_error *err)
{
	if (parse_duration_field(b, "ttl_ms", &r->has_ttl, &r->ttl_ms, err) < 0 ||
	    parse_duration_field(b, "idle_timeout_ms", &r->has_idle, &r->idle_timeout_ms, err) < 0)
		return -1;
	json_t *v = json_object_get(b, "on_expire");
	if (!v)
		return 0;
	const char *s = json_string_value(v);
	if (strcmp(s, "destroy") && strcmp(s, "suspend"))
		return agentd_error_set(err, EINVAL, "on_expire: expected \"destroy\" or \"suspend\"");
	r->has_on_expire = true;
	r->on_expire_suspend = !strcmp(s, "suspend");
	return 0;
}

/* issue 13: img-build. An array of strings (each at most max bytes, no NUL). */
static int parse_strings(json_t *a, const char *field, size_t max, agentd_strv *out,
			 agentd_error *err)
{
	size_t i;
	json_t *v;
	if (json_array_size(a) > 256)
		return agentd_error_set(err, E2BIG, "%s: more than 256 entries", field);
	json_array_foreach(a, i, v) {
		char name[64];
		snprintf(name, sizeof(name), "%s[%zu]", field, i);
		if (!json_is_string(v))
			return agentd_error_set(err, EINVAL, "%s: expected a string", name);
		char *s = dup_string(v, name, max, err);
		if (!s)
			return -1;
		strv_push(out, s);
		free(s);
	}
	return 0;
}

static int parse_image_build(json_t *b, struct api_request *r, agentd_error *err)
{
	struct api_image_build *o = &r->build;
	json_t *v;
	if (!(o->from = dup_string(json_object_get(b, "from"), "from", API_NAME_MAX, err)) ||
	    !(o->tag = dup_string(json_object_get(b, "tag"), "tag", API_NAME_MAX, err)))
		return -1;
	if ((v = json_object_get(b, "mirror")) && !(o->mirror = dup_string(v, "mirror", 1024, err)))
		return -1;
	if ((v = json_object_get(b, "backend")) &&
	    !(o->backend = dup_string(v, "backend", API_NAME_MAX, err)))
		return -1;
	o->no_cache = json_is_true(json_object_get(b, "no_cache"));
	if (parse_strings(json_object_get(b, "packages"), "packages", 256, &o->packages, err) < 0)
		return -1;
	return parse_strings(json_object_get(b, "run"), "run", 65536, &o->run, err);
}

static int parse_body(struct api_request *r, json_t *b, agentd_error *err)
{
	json_t *v;
	switch (r->route) {
	/* issue 13: img-store */
	case ROUTE_IMAGE_IMPORT:
		if (!(r->image_path = dup_string(json_object_get(b, "path"), "path", 4096, err)))
			return -1;
		if (r->image_path[0] != '/')
			return agentd_error_set(err, EINVAL, "path: expected an absolute path");
		if ((v = json_object_get(b, "tag")) &&
		    !(r->image_tag = dup_string(v, "tag", API_IMAGE_REF_MAX, err)))
			return -1;
		return 0;
	case ROUTE_IMAGE_TAG:
		return (r->image_tag = dup_string(json_object_get(b, "tag"), "tag",
						  API_IMAGE_REF_MAX, err)) ? 0 : -1;
	case ROUTE_SANDBOX_CREATE:
	case ROUTE_SESSION_CREATE:
		if ((v = json_object_get(b, "backend"))) {
			if (!(r->backend = dup_string(v, "backend", API_NAME_MAX, err)))
				return -1;
			if (!valid_name(r->backend, strlen(r->backend), API_NAME_MAX))
				return agentd_error_set(err, EINVAL, "backend: bad name");
		}
		if ((v = json_object_get(b, "name"))) {
			if (!(r->name = dup_string(v, "name", API_NAME_MAX, err)))
				return -1;
			if (!valid_name(r->name, strlen(r->name), API_NAME_MAX))
				return agentd_error_set(err, EINVAL,
							"name: expected [A-Za-z0-9._-]{1,64}");
			if (api_name_reserved(r->name, strlen(r->name)))
				return agentd_error_set(err, EINVAL,
							"name: 32 hex digits would read as a "
							"sandbox id; choose another name");
		}
		r->allow_degraded = json_is_true(json_object_get(b, "allow_degraded"));
		if ((v = json_object_get(b, "from_snapshot"))) {
			if (!(r->from_snapshot = dup_string(v, "from_snapshot", API_NAME_MAX, err)))
				return -1;
			if (!valid_snapshot_ref(r->from_snapshot, strlen(r->from_snapshot)))
				return agentd_error_set(err, EINVAL, "from_snapshot: expected a "
							"snapshot's id or name");
		}
		r->from_snapshot_copy = json_is_true(json_object_get(b, "from_snapshot_copy"));
		if (r->from_snapshot_copy && !r->from_snapshot)
			return agentd_error_set(err, EINVAL, "from_snapshot_copy: needs from_snapshot");
		v = json_object_get(b, r->route == ROUTE_SESSION_CREATE ? "config" : "spec");
		if (v) {
			if (parse_spec(v, r->route == ROUTE_SESSION_CREATE ? "config" : "spec",
				       &r->spec, err) < 0)
				return -1;
			r->has_spec = true;
		}
		return parse_expiry(b, r, err);
	case ROUTE_SANDBOX_EXEC:
		return parse_exec(b, r, err);
	case ROUTE_PROCESS_CREATE:
		return parse_process(b, r, err);
	case ROUTE_PROCESS_SIGNAL:
		return parse_signal(b, r, err);
	case ROUTE_PROCESS_STDIN:
		return parse_stdin_write(b, r, err);
	case ROUTE_SANDBOX_SNAPSHOT:
		if (!(v = json_object_get(b, "name")))
			return 0;
		if (!(r->snapshot_name = dup_string(v, "name", API_NAME_MAX, err)))
			return -1;
		if (!api_valid_snapshot_name(r->snapshot_name))
			return agentd_error_set(err, EINVAL, "name: expected [A-Za-z0-9._-]{1,64}, "
						"not 32 hex digits (an id's form)");
		return 0;
	case ROUTE_SANDBOX_RESTORE:
		if (!(r->snapshot_id = dup_string(json_object_get(b, "snapshot_id"),
						  "snapshot_id", API_NAME_MAX, err)))
			return -1;
		if (!valid_snapshot_ref(r->snapshot_id, strlen(r->snapshot_id)))
			return agentd_error_set(err, EINVAL,
						"snapshot_id: expected a snapshot's id or name");
		return 0;
	case ROUTE_SESSION_EXEC:
	case ROUTE_CONTEXT_RUN: {
		const char *l = json_string_value(json_object_get(b, "language"));
		r->language = LANG_PYTHON;
		if (parse_code(b, r, err) < 0 || (l && parse_language(l, &r->language, err) < 0) ||
		    parse_env(b, r, err) < 0 || parse_timeout(b, r, err) < 0)
			return -1;
		r->stream = json_is_true(json_object_get(b, "stream"));
		return 0;
	}
	case ROUTE_CONTEXT_CREATE:
		if (parse_language(json_string_value(json_object_get(b, "language")),
				   &r->language, err) < 0 ||
		    parse_env(b, r, err) < 0)
			return -1;
		if ((v = json_object_get(b, "workdir"))) {
			if (!(r->workdir = dup_string(v, "workdir", 4096, err)))
				return -1;
			if (r->workdir[0] != '/')
				return agentd_error_set(err, EINVAL,
							"workdir: expected an absolute path");
		}
		return 0;
	case ROUTE_SANDBOX_NETWORK:
		return parse_network(b, r, err);
	case ROUTE_PORT_OPEN: {
		json_int_t port = json_integer_value(json_object_get(b, "port"));
		if (port < 1 || port > 65535)
			return agentd_error_set(err, EINVAL, "port: expected 1 to 65535");
		r->port = (uint16_t)port;
		r->port_unix = json_is_true(json_object_get(b, "unix"));
		return 0;
	}
	/* issue 12: files */
	case ROUTE_FILE_MKDIR:
	case ROUTE_FILE_RENAME:
	case ROUTE_FILE_CHMOD:
		return parse_file_body(b, r, err);
	/* issue 12: ttl */
	case ROUTE_SANDBOX_TIMEOUT:
		if (parse_expiry(b, r, err) < 0)
			return -1;
		if (!r->has_ttl && !r->has_idle && !r->has_on_expire)
			return agentd_error_set(err, EINVAL,
						"expected ttl_ms, idle_timeout_ms or on_expire");
		return 0;
	/* issue 13: img-build */
	case ROUTE_IMAGE_BUILD:
		return parse_image_build(b, r, err);
	default:
		return 0;
	}
}

/* The query: every parameter one the route takes (a 400 naming the first that is not,
 * as an unknown JSON field is); GET /v1/sandboxes's filters. */
static int parse_query(enum api_route route, const struct api_query *q, struct api_request *r,
		       agentd_error *err)
{
	if (!q)
		return 0;
	if (q->nargs > API_QUERY_MAX_ARGS)
		return agentd_error_set(err, EINVAL, "more than %d query parameters",
					API_QUERY_MAX_ARGS);
	for (size_t i = 0; i < q->nargs; i++) {
		const char *k = q->args[i].key, *v = q->args[i].value ? q->args[i].value : "";
		bool known = false;
		for (int j = 0; j < MAX_QUERY && route_query[route][j]; j++)
			known |= !strcmp(route_query[route][j], k);
		if (!known) {
			char qk[96];
			quote_text(qk, sizeof(qk), k);
			return agentd_error_set(err, EINVAL, "unknown query parameter %s%s", qk,
						route_query[route][0] ? "" : " (this route takes none)");
		}
		if (route != ROUTE_SANDBOX_LIST)
			continue;
		if (!strcmp(k, "label")) {
			const char *eq = strchr(v, '=');
			if (!eq || eq == v || strlen(v) > 512)
				return agentd_error_set(err, EINVAL,
							"label: expected KEY=VALUE (e.g. label=team=a)");
			if (r->label_filter.n == API_LABEL_FILTERS_MAX)
				return agentd_error_set(err, EINVAL, "label: at most %d filters",
							API_LABEL_FILTERS_MAX);
			/* appended, not set: label=team=a&label=team=b is an AND too */
			agentd_kvv *f = &r->label_filter;
			f->v = realloc(f->v, (f->n + 1) * sizeof(*f->v));
			f->v[f->n].key = strndup(v, (size_t)(eq - v));
			f->v[f->n++].value = strdup(eq + 1);
			continue;
		}
		char **dst = !strcmp(k, "state")     ? &r->state_filter
			     : !strcmp(k, "backend") ? &r->backend_filter
						     : &r->name_filter;
		if (!*v || strlen(v) > API_NAME_MAX)
			return agentd_error_set(err, EINVAL, "%s: expected a value of 1 to %d bytes",
						k, API_NAME_MAX);
		if (*dst)
			return agentd_error_set(err, EINVAL, "%s: given twice", k);
		*dst = strdup(v);
	}
	return 0;
}

/* Every key known, every type right, every required key present. */
static int check_fields(enum api_route route, json_t *b, agentd_error *err)
{
	const struct field *fs = route_fields[route];
	const char *k;
	json_t *v;
	json_object_foreach(b, k, v) {
		const struct field *f = NULL;
		for (int i = 0; i < MAX_FIELDS && fs[i].name; i++)
			if (!strcmp(fs[i].name, k))
				f = &fs[i];
		if (!f)
			return agentd_error_set(err, EINVAL, "unknown field '%.64s'", k);
		bool ok = f->type == JSON_TRUE	 ? json_is_boolean(v)
			  : f->type == JSON_NULL ? true
						 : json_typeof(v) == f->type;
		if (!ok) {
			static const char *const names[] = {
				[JSON_OBJECT] = "object", [JSON_ARRAY] = "array",
				[JSON_STRING] = "string", [JSON_INTEGER] = "integer",
				[JSON_TRUE] = "boolean"};
			return agentd_error_set(err, EINVAL, "%s: expected %s", k, names[f->type]);
		}
	}
	for (int i = 0; i < MAX_FIELDS && fs[i].name; i++)
		if (fs[i].required && !json_object_get(b, fs[i].name))
			return agentd_error_set(err, EINVAL, "%s: required", fs[i].name);
	return 0;
}

static int parse_since(const char *s, struct api_request *r, agentd_error *err)
{
	r->since_seq = 0;
	r->since_ms = 0;
	if (!s || !*s)
		return 0;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*end && !errno && v >= 0 && *s != '-' && *s != '+') {
		r->since_seq = v;
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end || (*end && strcmp(end, "Z") != 0))
		return agentd_error_set(err, EINVAL,
					"since: expected a record seq or YYYY-MM-DDTHH:MM:SSZ");
	r->since_ms = (int64_t)timegm(&tm) * 1000;
	return 0;
}

/* issue 13: img-store. DELETE ?force=; an import whose body is the archive itself
 * (Content-Type application/x-tar, application/gzip, application/zstd, application/x-xz or
 * application/octet-stream: server.c streams it to a file, len is 0) takes ?tag=. */
static int parse_image_query(enum api_route route, const struct api_query *q, size_t len,
			     struct api_request *r, agentd_error *err)
{
	const char *force = NULL, *tag = NULL;
	for (size_t i = 0; q && i < q->nargs; i++) {
		if (!strcmp(q->args[i].key, "force"))
			force = q->args[i].value ? q->args[i].value : "";
		if (!strcmp(q->args[i].key, "tag"))
			tag = q->args[i].value ? q->args[i].value : "";
	}
	if (route == ROUTE_IMAGE_DELETE)
		return query_bool(force, "force", &r->image_force, err) < 0 ? 400 : 0;
	const char *ct = q ? q->content_type : NULL;
	static const char *const archive_types[] = {"application/x-tar", "application/gzip",
		"application/zstd", "application/x-xz", "application/octet-stream"};
	for (size_t i = 0; ct && i < sizeof(archive_types) / sizeof(archive_types[0]); i++) {
		size_t n = strlen(archive_types[i]);
		if (!strncasecmp(ct, archive_types[i], n) && (!ct[n] || ct[n] == ';'))
			r->image_upload = true;
	}
	if (!r->image_upload && tag)
		return agentd_error_set(err, EINVAL, "tag: a query parameter of an archive body "
					"only (a JSON body says \"tag\")"), 400;
	if (r->image_upload && len)
		return agentd_error_set(err, EINVAL, "the archive body was not streamed"), 400;
	if (r->image_upload && tag && !(r->image_tag = strndup(tag, API_IMAGE_REF_MAX)))
		return 500;
	return 0;
}

static int parse_request(const char *method, const char *path, const struct api_query *q,
			 const uint8_t *body, size_t len, struct api_request *r, agentd_error *err)
{
	memset(r, 0, sizeof(*r));
	const struct route_def *rd = NULL;
	bool path_known = false;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		int bad = 0;
		struct api_request tmp;
		memset(&tmp, 0, sizeof(tmp));
		if (!match(routes[i].pattern, path, &tmp, err, &bad)) {
			if (bad)
				return 400;
			continue;
		}
		path_known = true;
		if (strcmp(routes[i].method, method) == 0) {
			rd = &routes[i];
			*r = tmp;
			break;
		}
	}
	if (!rd) {
		if (path_known) {
			agentd_error_set(err, EINVAL, "method %.16s not allowed on %.200s", method,
					 path);
			return 405;
		}
		agentd_error_set(err, ENOENT, "no such endpoint %.200s", path);
		return 404;
	}
	r->route = rd->route;
	if (parse_query(rd->route, q, r, err) < 0)
		return 400;
	if (file_query_route(rd->route)) {
		if (!q || !q->path || !*q->path) {
			agentd_error_set(err, EINVAL, "query parameter 'path' is required");
			return 400;
		}
		if (strlen(q->path) > 4096) {
			agentd_error_set(err, EINVAL, "path: longer than 4096 bytes");
			return 400;
		}
		if (query_bool(q->parents, "parents", &r->file_parents, err) < 0 ||
		    query_bool(q->recursive, "recursive", &r->file_recursive, err) < 0)
			return 400;
		if ((q->parents && rd->route != ROUTE_FILE_PUT) ||
		    (q->recursive && rd->route != ROUTE_FILE_DELETE)) {
			agentd_error_set(err, EINVAL, "%s: not a parameter of %s %s",
					 q->parents ? "parents" : "recursive", method, rd->pattern);
			return 400;
		}
		if (rd->route == ROUTE_FILE_TAR_PUT &&
		    (!q->content_type || strncasecmp(q->content_type, "application/x-tar", 17) ||
		     (q->content_type[17] && q->content_type[17] != ';'))) {
			agentd_error_set(err, EINVAL, "Content-Type: expected application/x-tar");
			return 415;
		}
		if (len && rd->route != ROUTE_FILE_PUT && rd->route != ROUTE_FILE_TAR_PUT) {
			agentd_error_set(err, EINVAL, "%s %s takes no body", method, rd->pattern);
			return 400;
		}
		r->file_path = strdup(q->path);
		r->raw = body;
		r->raw_len = len;
		return 0;
	}
	if (rd->route == ROUTE_AUDIT && parse_since(q ? q->since : NULL, r, err) < 0)
		return 400;
	if (rd->route == ROUTE_PROCESS_OUTPUT && parse_output_query(q, r, err) < 0)
		return 400;
	if (rd->route == ROUTE_PROCESS_ATTACH && parse_attach(q, r, err) < 0)
		return 400;
	/* issue 13: img-store */
	if (rd->route == ROUTE_IMAGE_IMPORT || rd->route == ROUTE_IMAGE_DELETE) {
		int st = parse_image_query(rd->route, q, len, r, err);
		if (st)
			return st;
		if (r->image_upload)
			return 0;
	}
	if (len == 0) {
		if (check_fields(rd->route, NULL, err) < 0)
			return 400;
		if (rd->route == ROUTE_PROCESS_STDIN) {
			agentd_error_set(err, EINVAL, "data: required (or \"close\": true)");
			return 400;
		}
		/* issue 12: ttl */
		if (rd->route == ROUTE_SANDBOX_TIMEOUT) {
			agentd_error_set(err, EINVAL, "expected ttl_ms, idle_timeout_ms or on_expire");
			return 400;
		}
		return 0;
	}
	if (!rd->json_body) {
		agentd_error_set(err, EINVAL, "%s %s takes no body", method, rd->pattern);
		return 400;
	}
	if (len > API_MAX_BODY) {
		agentd_error_set(err, E2BIG, "body larger than %u bytes", API_MAX_BODY);
		return 413;
	}
	json_error_t je;
	json_t *b = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
	if (!b) {
		agentd_error_set(err, EINVAL, "malformed JSON body: %s (line %d column %d)", je.text,
				 je.line, je.column);
		return 400;
	}
	int status = 0;
	if (!json_is_object(b)) {
		agentd_error_set(err, EINVAL, "body: expected a JSON object");
		status = 400;
	} else if (check_fields(rd->route, b, err) < 0 || parse_body(r, b, err) < 0) {
		status = err && err->code == E2BIG ? 413 : 400;
	}
	json_decref(b);
	if (status)
		api_request_free(r);
	return status;
}

int api_request_parse(const char *method, const char *path, const struct api_query *q,
		      const uint8_t *body, size_t len, struct api_request *r, agentd_error *err)
{
	int status = parse_request(method, path, q, body, len, r, err);
	if (status)
		api_request_free(r); /* whatever a failed step had filled */
	return status;
}

void api_request_free(struct api_request *r)
{
	free(r->backend);
	free(r->name);
	if (r->has_spec)
		agentd_spec_free(&r->spec);
	if (r->argv)
		for (char **a = r->argv; *a; a++)
			free(*a);
	free(r->argv);
	for (size_t i = 0; i < r->env.n; i++) {
		free(r->env.v[i].key);
		free(r->env.v[i].value);
	}
	free(r->env.v);
	free(r->workdir);
	free(r->stdin_data);
	free(r->snapshot_name);
	free(r->snapshot_id);
	free(r->from_snapshot);
	/* issue 13: img-build */
	free(r->build.from);
	free(r->build.tag);
	free(r->build.mirror);
	free(r->build.backend);
	strv_free(&r->build.packages);
	strv_free(&r->build.run);
	free(r->code);
	free(r->file_path);
	/* issue 12: names */
	kvv_free(&r->label_filter);
	free(r->state_filter);
	free(r->backend_filter);
	free(r->name_filter);
	strv_free(&r->network.allow);
	free(r->file_to); /* issue 12: files */
	free(r->image_path); /* issue 13: img-store */
	free(r->image_tag);
	memset(r, 0, sizeof(*r));
}
