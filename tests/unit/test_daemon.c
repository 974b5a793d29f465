/* test_daemon.c: the pure parts of `agentd serve` — SHA-256 (FIPS 180-4 vectors), routing
 * (every endpoint, 404/405, bad ids), strict body validation (unknown fields, types,
 * required keys, base64, nested policy errors), and the state schema: fresh creation,
 * migration from version 1, refusal of a newer schema, reconciliation, append-only audit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/http/http.h"

static void sha256_matches_the_fips_vectors(void **state __attribute__((unused)))
{
	char hex[65];
	sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes */
	sha256_hex(two, strlen(two), hex);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	char *mil = malloc(1000000);
	memset(mil, 'a', 1000000);
	sha256_hex(mil, 1000000, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(mil);
	/* 55, 63 and 64 bytes: the padding edge cases */
	static const struct { size_t n; const char *hex; } edges[] = {
		{55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
		{63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
		{64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
	};
	char buf[64];
	memset(buf, 'a', sizeof(buf));
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		sha256_hex(buf, edges[i].n, hex);
		assert_string_equal(hex, edges[i].hex);
	}
}

static int parse(const char *method, const char *path, const char *body, struct api_request *r,
		 agentd_error *err)
{
	memset(err, 0, sizeof(*err));
	struct api_query q = {.path = "f.txt", .since = NULL};
	return api_request_parse(method, path, &q, (const uint8_t *)body, body ? strlen(body) : 0,
				 r, err);
}

#define ID "0123456789abcdef0123456789abcdef"

/* issue 12: names */
static void a_sandbox_is_addressed_by_id_or_name(void **state __attribute__((unused)))
{
	struct api_request r;
	agentd_error err;
	assert_int_equal(parse("GET", "/v1/sandboxes/web-1.a_b", NULL, &r, &err), 0);
	assert_string_equal(r.id, "web-1.a_b");
	api_request_free(&r);
	assert_int_equal(parse("POST", "/v1/sandboxes/" ID "/exec", "{\"argv\":[\"x\"]}", &r,
			       &err), 0);
	assert_string_equal(r.id, ID);
	api_request_free(&r);
	/* 32 hex digits that are no id (upper case) are no name either */
	assert_int_equal(parse("GET", "/v1/sandboxes/0123456789ABCDEF0123456789ABCDEF", NULL, &r,
			       &err), 400);
	assert_non_null(strstr(err.msg, "sandbox id or name"));
	/* and a sandbox may not take such a name */
	assert_int_equal(parse("POST", "/v1/sandboxes", "{\"name\":\"" ID "\"}", &r, &err),
			 400);
	assert_non_null(strstr(err.msg, "read as a sandbox id"));
	assert_int_equal(parse("POST", "/v1/sandboxes",
			       "{\"name\":\"0123456789ABCDEF0123456789abcdeF\"}", &r, &err), 400);
	assert_int_equal(parse("POST", "/v1/sandboxes", "{\"name\":\"" ID "0\"}", &r, &err),
			 0);
	api_request_free(&r);
}

static void unknown_query_parameters_are_refused_by_name(void **state __attribute__((unused)))
{
	struct api_request r;
	agentd_error err = {0};
	struct api_query_arg bad[] = {{"path", "f"}, {"recursive", "1"}};
	struct api_query q = {.path = "f", .args = bad, .nargs = 2};
	assert_int_equal(api_request_parse("GET", "/v1/sandboxes/" ID "/files", &q, NULL, 0, &r,
					   &err), 400);
	assert_non_null(strstr(err.msg, "unknown query parameter \"recursive\""));
	struct api_query_arg none[] = {{"x", NULL}};
	q = (struct api_query){.args = none, .nargs = 1};
	assert_int_equal(api_request_parse("GET", "/v1/health", &q, NULL, 0, &r, &err), 400);
	assert_non_null(strstr(err.msg, "takes none"));
	/* the list's filters: labels ANDed, in order, the others once each */
	struct api_query_arg f[] = {{"label", "team=a"}, {"label", "team=b"}, {"state", "ready"},
				    {"backend", "container"}, {"name", "n"}};
	q = (struct api_query){.args = f, .nargs = 5};
	assert_int_equal(api_request_parse("GET", "/v1/sandboxes", &q, NULL, 0, &r, &err), 0);
	assert_int_equal(r.label_filter.n, 2);
	assert_string_equal(r.label_filter.v[1].value, "b");
	assert_string_equal(r.state_filter, "ready");
	assert_string_equal(r.name_filter, "n");
	api_request_free(&r);
	static const struct api_query_arg bads[][2] = {
		{{"label", "team"}, {"state", "ready"}},
		{{"label", "=a"}, {"state", "ready"}},
		{{"state", "ready"}, {"state", "failed"}},
		{{"state", ""}, {"name", "x"}},
	};
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		q = (struct api_query){.args = bads[i], .nargs = 2};
		if (api_request_parse("GET", "/v1/sandboxes", &q, NULL, 0, &r, &err) != 400)
			fail_msg("case %zu parsed", i);
	}
}

static void network_patches_parse_as_the_policy_network(void **state __attribute__((unused)))
{
	struct api_request r;
	agentd_error err;
	const char *path = "/v1/sandboxes/web/network";
	assert_int_equal(parse("PATCH", path, "{\"mode\":\"allowlist\",\"allow\":"
			       "[\"example.com:443\"]}", &r, &err), 0);
	assert_int_equal(r.route, ROUTE_SANDBOX_NETWORK);
	assert_int_equal(r.network.mode, AGENTD_NET_ALLOWLIST);
	assert_int_equal(r.network.allow.n, 1);
	api_request_free(&r);
	assert_int_equal(parse("PATCH", path, "{\"mode\":\"none\"}", &r, &err), 0);
	assert_int_equal(r.network.mode, AGENTD_NET_NONE);
	api_request_free(&r);
	static const struct {
		const char *body, *msg;
	} bad[] = {
		{"{\"mode\":\"host\"}", "cannot be switched to \"host\""},
		{"{}", "mode: required"},
		{"{\"mode\":\"none\",\"allow\":[\"a.com:1\"]}", "allow: only valid"},
		{"{\"mode\":\"allowlist\",\"allow\":[\"no port\"]}", "allow[0]"},
		{"{\"mode\":\"sometimes\"}", "mode"},
		{"{\"mode\":\"none\",\"force\":true}", "unknown field"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = parse("PATCH", path, bad[i].body, &r, &err);
		if (st != 400 || !strstr(err.msg, bad[i].msg))
			fail_msg("%s: got %d (%s)", bad[i].body, st, err.msg);
	}
}

/* issue 12: snapshots. Ids or names in {snap}, the restore body and from_snapshot; names
 * never in an id's form, nothing that could leave a path segment. */
static void snapshot_references_are_checked(void **state __attribute__((unused)))
{
	struct api_request r;
	agentd_error err;
	assert_int_equal(parse("GET", "/v1/snapshots/tpl", NULL, &r, &err), 0);
	assert_string_equal(r.snapshot_ref, "tpl");
	api_request_free(&r);
	assert_int_equal(parse("GET", "/v1/snapshots/.hidden", NULL, &r, &err), 400);
	assert_int_equal(parse("GET", "/v1/snapshots/" ID ID ID, NULL, &r, &err), 400);
	assert_int_equal(parse("POST", "/v1/sandboxes", "{\"from_snapshot\":\"tpl\","
			       "\"from_snapshot_copy\":true}", &r, &err), 0);
	assert_string_equal(r.from_snapshot, "tpl");
	assert_true(r.from_snapshot_copy);
	api_request_free(&r);
	assert_int_equal(parse("POST", "/v1/sandboxes", "{\"from_snapshot\":\"../x\"}", &r,
			       &err), 400);
	assert_int_equal(parse("POST", "/v1/sandboxes", "{\"from_snapshot_copy\":true}", &r,
			       &err), 400);
	assert_int_equal(parse("POST", "/v1/sandboxes/" ID "/snapshots", "{\"name\":\"" ID "\"}",
			       &r, &err), 400);
	assert_non_null(strstr(err.msg, "32 hex digits"));
	assert_int_equal(parse("POST", "/v1/sandboxes/" ID "/snapshots", "{\"name\":\"a b\"}",
			       &r, &err), 400);
	assert_int_equal(parse("POST", "/v1/sandboxes/" ID "/restore", "{\"snapshot_id\":\"tpl\"}",
			       &r, &err), 0);
	assert_string_equal(r.snapshot_id, "tpl");
	api_request_free(&r);
}

/* issue 13: img-store. An image reference is the rest of the path ('/' and ':' kept, as
 * the server hands the decoded path over); POST .../tag takes it up to the last "/tag". */
static void image_references_take_the_rest_of_the_path(void **state __attribute__((unused)))
{
	struct api_request r;
	agentd_error err;
	assert_int_equal(parse("GET", "/v1/images/reg:5000/team/app:v1", NULL, &r, &err), 0);
	assert_int_equal(r.route, ROUTE_IMAGE_GET);
	assert_string_equal(r.image_ref, "reg:5000/team/app:v1");
	api_request_free(&r);
	assert_int_equal(parse("POST", "/v1/images/a/tag/tag", "{\"tag\":\"b:2\"}", &r, &err), 0);
	assert_int_equal(r.route, ROUTE_IMAGE_TAG);
	assert_string_equal(r.image_ref, "a/tag");
	assert_string_equal(r.image_tag, "b:2");
	api_request_free(&r);
	assert_int_equal(parse("POST", "/v1/images/import", "{\"path\":\"/x.tar\",\"tag\":\"t\"}",
			       &r, &err), 0);
	assert_int_equal(r.route, ROUTE_IMAGE_IMPORT);
	assert_string_equal(r.image_path, "/x.tar");
	api_request_free(&r);
	assert_int_equal(parse("POST", "/v1/images/prune", NULL, &r, &err), 0);
	assert_int_equal(r.route, ROUTE_IMAGE_PRUNE);
	api_request_free(&r);
	assert_int_equal(parse("DELETE", "/v1/images/sha256:0123456789ab", NULL, &r, &err), 0);
	assert_int_equal(r.route, ROUTE_IMAGE_DELETE);
	api_request_free(&r);
	static const char *const bad[] = {"/v1/images/a/../b", "/v1/images/a//b", "/v1/images/.x",
					  "/v1/images/a/", "/v1/images/a b", "/v1/images/a%2Fb"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse("GET", bad[i], NULL, &r, &err) != 400)
			fail_msg("%s: not a 400", bad[i]);
	assert_int_equal(parse("POST", "/v1/images/import", "{\"path\":\"rel.tar\"}", &r, &err), 400);
	assert_int_equal(parse("POST", "/v1/images/import", NULL, &r, &err), 400);
	assert_int_equal(parse("POST", "/v1/images/x/tag", "{}", &r, &err), 400);
	assert_int_equal(parse("PUT", "/v1/images/x", NULL, &r, &err), 405);
}

static void every_endpoint_routes(void **state __attribute__((unused)))
{
	static const struct {
		const char *method, *path, *body;
		enum api_route route;
	} cases[] = {
		{"GET", "/v1/health", NULL, ROUTE_HEALTH},
		{"GET", "/v1/metrics", NULL, ROUTE_METRICS},
		{"GET", "/v1/backends", NULL, ROUTE_BACKENDS},
		{"GET", "/v1/backends/container", NULL, ROUTE_BACKEND},
		{"POST", "/v1/sandboxes", "{}", ROUTE_SANDBOX_CREATE},
		{"POST", "/v1/sandboxes", NULL, ROUTE_SANDBOX_CREATE},
		{"GET", "/v1/sandboxes", NULL, ROUTE_SANDBOX_LIST},
		{"GET", "/v1/sandboxes/" ID, NULL, ROUTE_SANDBOX_GET},
		{"DELETE", "/v1/sandboxes/" ID, NULL, ROUTE_SANDBOX_DELETE},
		{"POST", "/v1/sandboxes/" ID "/exec", "{\"argv\":[\"/bin/true\"]}", ROUTE_SANDBOX_EXEC},
		{"POST", "/v1/sandboxes/" ID "/suspend", NULL, ROUTE_SANDBOX_SUSPEND},
		{"POST", "/v1/sandboxes/" ID "/resume", "{}", ROUTE_SANDBOX_RESUME},
		{"POST", "/v1/sandboxes/" ID "/snapshots", "{\"name\":\"s\"}", ROUTE_SANDBOX_SNAPSHOT},
		{"POST", "/v1/sandboxes/" ID "/restore", "{\"snapshot_id\":\"" ID "\"}",
		 ROUTE_SANDBOX_RESTORE},
		{"GET", "/v1/sandboxes/" ID "/usage", NULL, ROUTE_SANDBOX_USAGE},
		{"PUT", "/v1/sandboxes/" ID "/files", "raw bytes, not JSON", ROUTE_FILE_PUT},
		{"GET", "/v1/sandboxes/" ID "/files", NULL, ROUTE_FILE_GET},
		{"POST", "/v1/agents/a.b-c_d/sessions", "{}", ROUTE_SESSION_CREATE},
		{"POST", "/v1/agents/a/sessions/" ID "/executions", "{\"code\":\"1\"}",
		 ROUTE_SESSION_EXEC},
		{"DELETE", "/v1/agents/a/sessions/" ID, NULL, ROUTE_SESSION_DELETE},
		{"GET", "/v1/audit", NULL, ROUTE_AUDIT},
		{"GET", "/v1/audit/verify", NULL, ROUTE_AUDIT_VERIFY},
		/* issue 12: snapshots */
		{"GET", "/v1/sandboxes/" ID "/snapshots", NULL, ROUTE_SANDBOX_SNAPSHOTS},
		{"DELETE", "/v1/sandboxes/" ID "/snapshots/base-1", NULL,
		 ROUTE_SANDBOX_SNAPSHOT_DELETE},
		{"GET", "/v1/snapshots", NULL, ROUTE_SNAPSHOT_LIST},
		{"GET", "/v1/snapshots/" ID, NULL, ROUTE_SNAPSHOT_GET},
		{"DELETE", "/v1/snapshots/tpl.v2", NULL, ROUTE_SNAPSHOT_DELETE},
		{"POST", "/v1/sandboxes/" ID "/snapshots", "{}", ROUTE_SANDBOX_SNAPSHOT},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct api_request r;
		agentd_error err;
		int st = parse(cases[i].method, cases[i].path, cases[i].body, &r, &err);
		if (st)
			fail_msg("%s %s: %d %s", cases[i].method, cases[i].path, st, err.msg);
		assert_int_equal(r.route, cases[i].route);
		api_request_free(&r);
	}
	struct api_request r;
	agentd_error err;
	assert_int_equal(parse("POST", "/v1/agents/bot/sessions/" ID "/executions",
			       "{\"code\":\"print(1)\",\"language\":\"python\"}", &r, &err), 0);
	assert_string_equal(r.agent, "bot");
	assert_string_equal(r.session, ID);
	assert_string_equal(r.code, "print(1)");
	assert_int_equal(r.language, LANG_PYTHON);
	api_request_free(&r);
	assert_int_equal(parse("PUT", "/v1/sandboxes/" ID "/files", "xyz", &r, &err), 0);
	assert_string_equal(r.id, ID);
	assert_string_equal(r.file_path, "f.txt");
	assert_int_equal(r.raw_len, 3);
	api_request_free(&r);
}

static void wrong_routes_methods_and_ids(void **state __attribute__((unused)))
{
	static const struct {
		const char *method, *path;
		int status;
	} cases[] = {
		{"GET", "/", 404},
		{"GET", "/v1", 404},
		{"GET", "/v1/", 404},
		{"GET", "/v1/nothing", 404},
		{"GET", "/v1/sandboxes/" ID "/nothing", 404},
		{"GET", "/v2/health", 404},
		{"GET", "/v1/health/", 404},
		{"POST", "/v1/health", 405},
		{"PUT", "/v1/sandboxes", 405},
		{"PATCH", "/v1/sandboxes/" ID, 405},
		{"GET", "/v1/sandboxes/" ID "/exec", 405},
		{"GET", "/v1/sandboxes/a b", 400},
		{"GET", "/v1/sandboxes/" ID ID "0", 400},	/* past a name's 64 bytes */
		{"GET", "/v1/sandboxes/0123456789ABCDEF0123456789abcdef", 400},
		{"GET", "/v1/sandboxes/..", 400},
		{"GET", "/v1/sandboxes/", 400},
		{"POST", "/v1/agents/../sessions", 400},
		{"POST", "/v1/agents/.hidden/sessions", 400},
		{"POST", "/v1/agents/a%2Fb/sessions", 400},
		{"DELETE", "/v1/agents/a/sessions/nothex", 400},
		{"GET", "/v1/backends/a b", 400},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct api_request r;
		agentd_error err;
		int st = parse(cases[i].method, cases[i].path, NULL, &r, &err);
		if (st != cases[i].status)
			fail_msg("%s %s: got %d (%s), want %d", cases[i].method, cases[i].path, st,
				 err.msg, cases[i].status);
		assert_true(err.msg[0] != '\0');
	}
}

static void bodies_are_validated_strictly(void **state __attribute__((unused)))
{
	static const struct {
		const char *path, *body, *msg;
	} bad[] = {
		{"/v1/sandboxes", "{", "malformed JSON"},
		{"/v1/sandboxes", "[]", "expected a JSON object"},
		{"/v1/sandboxes", "\"x\"", "malformed JSON"},
		{"/v1/sandboxes", "{\"x\":1}", "unknown field 'x'"},
		{"/v1/sandboxes", "{\"name\":\"a\",\"name\":\"b\"}", "duplicate"},
		{"/v1/sandboxes", "{\"backend\":1}", "backend: expected string"},
		{"/v1/sandboxes", "{\"spec\":[]}", "spec: expected object"},
		{"/v1/sandboxes", "{\"spec\":{\"limits\":{\"max_processes\":-1}}}",
		 "spec: limits.max_processes"},
		{"/v1/sandboxes", "{\"spec\":{\"workdir\":\"rel\"}}", "spec: workdir"},
		{"/v1/sandboxes", "{\"name\":\"\"}", "name"},
		{"/v1/sandboxes", "{\"name\":\"a/b\"}", "name"},
		{"/v1/sandboxes/" ID "/exec", "{}", "argv: required"},
		{"/v1/sandboxes/" ID "/exec", "{\"argv\":[]}", "argv: expected 1"},
		{"/v1/sandboxes/" ID "/exec", "{\"argv\":[\"\"]}", "argv[0]: empty"},
		{"/v1/sandboxes/" ID "/exec", "{\"argv\":[\"a\",2]}", "argv[1]: expected string"},
		{"/v1/sandboxes/" ID "/exec", "{\"argv\":[\"a\\u0000\"]}", "NUL"},
		{"/v1/sandboxes/" ID "/exec", "{\"argv\":[\"a\"],\"env\":{\"K\":1}}", "env.K"},
		{"/v1/sandboxes/" ID "/exec", "{\"argv\":[\"a\"],\"env\":{\"A=B\":\"c\"}}", "env"},
		{"/v1/sandboxes/" ID "/exec", "{\"argv\":[\"a\"],\"stdin\":\"abc\"}", "base64"},
		{"/v1/sandboxes/" ID "/exec", "{\"argv\":[\"a\"],\"stdin\":\"a===\"}", "base64"},
		{"/v1/sandboxes/" ID "/exec", "{\"argv\":[\"a\"],\"timeout_ms\":0}", "timeout_ms"},
		{"/v1/sandboxes/" ID "/exec", "{\"argv\":[\"a\"],\"timeout_ms\":1.5}", "timeout_ms"},
		{"/v1/sandboxes/" ID "/exec", "{\"argv\":[\"a\"],\"stream\":1}", "stream"},
		{"/v1/sandboxes/" ID "/exec", "{\"argv\":[\"a\"],\"workdir\":\"x\"}", "workdir"},
		{"/v1/sandboxes/" ID "/snapshots", "{\"name\":\"\"}", "name"},
		{"/v1/sandboxes/" ID "/restore", "{\"snapshot_id\":\"../x\"}", "snapshot_id"},
		{"/v1/sandboxes/" ID "/suspend", "{\"force\":true}", "unknown field"},
		{"/v1/agents/a/sessions", "{\"config\":{\"nope\":1}}", "config"},
		{"/v1/agents/a/sessions/" ID "/executions", "{\"code\":\"1\",\"language\":\"c\"}",
		 "language"},
		{"/v1/agents/a/sessions/" ID "/executions", "{\"code\":7}", "code"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct api_request r;
		agentd_error err;
		int st = parse("POST", bad[i].path, bad[i].body, &r, &err);
		if (st != 400 || !strstr(err.msg, bad[i].msg))
			fail_msg("%s %s: got %d '%s', want 400 with '%s'", bad[i].path, bad[i].body,
				 st, err.msg, bad[i].msg);
	}
	struct api_request r;
	agentd_error err;
	assert_int_equal(parse("GET", "/v1/health", "{}", &r, &err), 400);
	assert_int_equal(parse("DELETE", "/v1/sandboxes/" ID, "{}", &r, &err), 400);
	/* files need ?path= */
	struct api_query q = {0};
	assert_int_equal(api_request_parse("GET", "/v1/sandboxes/" ID "/files", &q, NULL, 0, &r,
					   &err), 400);
	assert_non_null(strstr(err.msg, "path"));
}

static void exec_body_is_typed(void **state __attribute__((unused)))
{
	struct api_request r;
	agentd_error err;
	assert_int_equal(parse("POST", "/v1/sandboxes/" ID "/exec",
			       "{\"argv\":[\"/bin/sh\",\"-c\",\"x\"],\"env\":{\"A\":\"1\"},"
			       "\"workdir\":\"/tmp\",\"stdin\":\"aGk=\",\"timeout_ms\":250,"
			       "\"stream\":true}",
			       &r, &err),
			 0);
	assert_string_equal(r.argv[0], "/bin/sh");
	assert_string_equal(r.argv[2], "x");
	assert_null(r.argv[3]);
	assert_int_equal(r.env.n, 1);
	assert_string_equal(r.env.v[0].key, "A");
	assert_string_equal(r.workdir, "/tmp");
	assert_true(r.has_stdin);
	assert_int_equal(r.stdin_len, 2);
	assert_memory_equal(r.stdin_data, "hi", 2);
	assert_int_equal(r.timeout_ms, 250);
	assert_true(r.stream);
	api_request_free(&r);
	assert_int_equal(parse("POST", "/v1/sandboxes", "{\"backend\":\"container\",\"name\":\"n\","
						    "\"spec\":{\"limits\":{\"max_processes\":9}}}",
			       &r, &err),
			 0);
	assert_true(r.has_spec);
	assert_int_equal(r.spec.limits.max_processes, 9);
	assert_string_equal(r.backend, "container");
	api_request_free(&r);
	/* the audit cursor: a sequence number or a UTC time */
	struct api_query q = {.since = "42"};
	assert_int_equal(api_request_parse("GET", "/v1/audit", &q, NULL, 0, &r, &err), 0);
	assert_int_equal(r.since_seq, 42);
	q.since = "2026-01-02T03:04:05Z";
	assert_int_equal(api_request_parse("GET", "/v1/audit", &q, NULL, 0, &r, &err), 0);
	assert_int_equal(r.since_ms, 1767323045000LL);
	q.since = "-1";
	assert_int_equal(api_request_parse("GET", "/v1/audit", &q, NULL, 0, &r, &err), 400);
	q.since = "2026-01-02";
	assert_int_equal(api_request_parse("GET", "/v1/audit", &q, NULL, 0, &r, &err), 400);
}

static int parse_q(const char *method, const char *path, const struct api_query *q,
		   const char *body, struct api_request *r, agentd_error *err)
{
	memset(err, 0, sizeof(*err));
	return api_request_parse(method, path, q, (const uint8_t *)body, body ? strlen(body) : 0,
				 r, err);
}

#define PROCS "/v1/sandboxes/" ID "/processes"

static void process_requests_are_typed(void **state __attribute__((unused)))
{
	struct api_request r;
	agentd_error err;
	assert_int_equal(parse("POST", PROCS, "{\"argv\":[\"/bin/sh\"],\"tty\":true,"
			       "\"rows\":30,\"cols\":100,\"env\":{\"A\":\"1\"}}", &r, &err), 0);
	assert_int_equal(r.route, ROUTE_PROCESS_CREATE);
	assert_true(r.tty);
	assert_false(r.keep_stdin);
	assert_int_equal(r.rows, 30);
	assert_int_equal(r.cols, 100);
	assert_string_equal(r.argv[0], "/bin/sh");
	api_request_free(&r);
	assert_int_equal(parse("GET", PROCS, NULL, &r, &err), 0);
	assert_int_equal(r.route, ROUTE_PROCESS_LIST);
	assert_int_equal(parse("DELETE", PROCS "/2147483647", NULL, &r, &err), 0);
	assert_int_equal(r.route, ROUTE_PROCESS_DELETE);
	assert_int_equal(r.pid, 2147483647);

	/* signals: names with or without SIG, numbers as integers or strings */
	static const struct {
		const char *body;
		int sig;
	} sigs[] = {{"{\"signal\":\"TERM\"}", 15}, {"{\"signal\":\"SIGKILL\"}", 9},
		    {"{\"signal\":\"HUP\"}", 1},  {"{\"signal\":2}", 2},
		    {"{\"signal\":\"64\"}", 64},   {"{\"signal\":\"WINCH\"}", 28}};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		assert_int_equal(parse("POST", PROCS "/7/signal", sigs[i].body, &r, &err), 0);
		assert_int_equal(r.signal, sigs[i].sig);
		assert_int_equal(r.pid, 7);
	}
	assert_string_equal(api_signal_name(15), "TERM");
	assert_null(api_signal_name(40));

	assert_int_equal(parse("POST", PROCS "/7/stdin", "{\"data\":\"w\\u00f6rld\\n\"}", &r, &err),
			 0);
	assert_int_equal(r.stdin_len, 7); /* text goes as its UTF-8 bytes */
	assert_memory_equal(r.stdin_data, "w\xc3\xb6rld\n", 7);
	assert_false(r.close_stdin);
	api_request_free(&r);
	assert_int_equal(parse("POST", PROCS "/7/stdin",
			       "{\"data\":\"aGk=\",\"encoding\":\"base64\",\"close\":true}", &r,
			       &err), 0);
	assert_memory_equal(r.stdin_data, "hi", 2);
	assert_true(r.close_stdin);
	api_request_free(&r);
	assert_int_equal(parse("POST", PROCS "/7/stdin", "{\"close\":true}", &r, &err), 0);
	assert_false(r.has_stdin);
	api_request_free(&r);

	struct api_query q = {.offset = "12", .follow = "1", .stream = "stderr"};
	assert_int_equal(parse_q("GET", PROCS "/7/output", &q, NULL, &r, &err), 0);
	assert_int_equal(r.offset, 12);
	assert_true(r.follow);
	assert_int_equal(r.streams, API_STREAMS_STDERR);
	struct api_query none = {0};
	assert_int_equal(parse_q("GET", PROCS "/7/output", &none, NULL, &r, &err), 0);
	assert_int_equal(r.offset, 0);
	assert_false(r.follow);
	assert_int_equal(r.streams, API_STREAMS_BOTH);
}

static void bad_process_requests_name_the_field(void **state __attribute__((unused)))
{
	static const struct {
		const char *method, *path, *body, *msg;
	} cases[] = {
		{"GET", PROCS "/0", NULL, "bad pid '0'"},
		{"GET", PROCS "/01", NULL, "bad pid '01'"},
		{"GET", PROCS "/2147483648", NULL, "bad pid '2147483648'"},
		{"GET", PROCS "/-1", NULL, "bad pid '-1'"},
		{"GET", PROCS "/1x", NULL, "bad pid '1x'"},
		{"POST", PROCS, "{\"argv\":[]}", "argv: expected 1 to 4096 strings"},
		{"POST", PROCS, "{}", "argv: required"},
		{"POST", PROCS, "{\"argv\":[\"x\"],\"rows\":3}", "rows: only with \"tty\": true"},
		{"POST", PROCS, "{\"argv\":[\"x\"],\"tty\":true,\"cols\":4097}",
		 "cols: expected integer in 1..4096"},
		{"POST", PROCS, "{\"argv\":[\"x\"],\"stdin\":\"aGk=\"}", "stdin: expected boolean"},
		{"POST", PROCS, "{\"argv\":[\"x\"],\"timeout_ms\":5}", "unknown field 'timeout_ms'"},
		{"POST", PROCS "/7/signal", "{\"signal\":\"TERMX\"}", "signal: unknown signal"},
		{"POST", PROCS "/7/signal", "{\"signal\":0}", "signal: unknown signal"},
		{"POST", PROCS "/7/signal", "{\"signal\":\"0\"}", "signal: unknown signal"},
		{"POST", PROCS "/7/signal", "{\"signal\":65}", "signal: unknown signal"},
		{"POST", PROCS "/7/signal", "{\"signal\":true}", "signal: expected a name or a number"},
		{"POST", PROCS "/7/signal", NULL, "signal: required"},
		{"POST", PROCS "/7/stdin", NULL, "data: required"},
		{"POST", PROCS "/7/stdin", "{}", "data: required"},
		{"POST", PROCS "/7/stdin", "{\"data\":\"x\",\"encoding\":\"hex\"}", "encoding: expected"},
		{"POST", PROCS "/7/stdin", "{\"encoding\":\"base64\",\"close\":true}",
		 "encoding: without data"},
		{"POST", PROCS "/7/stdin", "{\"data\":\"@@\",\"encoding\":\"base64\"}",
		 "data: expected base64"},
		{"GET", PROCS "/7/output", "{}", "takes no body"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct api_request r;
		agentd_error err;
		int st = parse(cases[i].method, cases[i].path, cases[i].body, &r, &err);
		if (st != 400 || !strstr(err.msg, cases[i].msg))
			fail_msg("%s %s %s: %d '%s', expected 400 '%s'", cases[i].method,
				 cases[i].path, cases[i].body ? cases[i].body : "", st, err.msg,
				 cases[i].msg);
	}
	static const struct {
		const char *offset, *follow, *stream, *msg;
	} queries[] = {
		{"-1", NULL, NULL, "offset: expected"},   {"1x", NULL, NULL, "offset: expected"},
		{"99999999999999999999999", NULL, NULL, "offset: expected"},
		{NULL, "yes", NULL, "follow: expected"}, {NULL, NULL, "all", "stream: expected"},
	};
	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
		struct api_query q = {.offset = queries[i].offset, .follow = queries[i].follow,
				      .stream = queries[i].stream};
		struct api_request r;
		agentd_error err;
		assert_int_equal(parse_q("GET", PROCS "/7/output", &q, NULL, &r, &err), 400);
		assert_non_null(strstr(err.msg, queries[i].msg));
	}
	/* argv past 256 KiB in all */
	size_t n = (256u << 10) + 64;
	char *body = malloc(n + 64);
	int k = snprintf(body, n + 64, "{\"argv\":[\"/bin/echo\",\"");
	memset(body + k, 'x', n);
	strcpy(body + k + n, "\"]}");
	struct api_request r;
	agentd_error err;
	assert_int_equal(parse("POST", PROCS, body, &r, &err), 400);
	assert_non_null(strstr(err.msg, "argv: longer than 262144 bytes in all"));
	free(body);
}

static void status_mapping(void **state __attribute__((unused)))
{
	assert_int_equal(api_status_from_errno(EINVAL), 400);
	assert_int_equal(api_status_from_errno(ELOOP), 400);
	assert_int_equal(api_status_from_errno(ENOENT), 404);
	assert_int_equal(api_status_from_errno(EBUSY), 409);
	assert_int_equal(api_status_from_errno(EFBIG), 413);
	assert_int_equal(api_status_from_errno(EAGAIN), 429);
	assert_int_equal(api_status_from_errno(EIO), 500);
	assert_string_equal(api_status_code(429), "over_capacity");
	assert_string_equal(api_status_code(413), "too_large");
}

static char *tmp_db(void)
{
	char *dir = strdup("/tmp/agentd-test-state-XXXXXX");
	assert_non_null(mkdtemp(dir));
	char *p;
	assert_true(asprintf(&p, "%s/agentd.db", dir) > 0);
	free(dir);
	return p;
}

static void rm_db(char *p)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf \"$(dirname '%s')\"", p);
	assert_int_equal(system(cmd), 0);
	free(p);
}

static int sql_int(const char *path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *s;
	int v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static int sql_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	int r = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return r;
}

static void fresh_state_has_the_latest_schema_in_wal(void **state __attribute__((unused)))
{
	char *p = tmp_db();
	struct state *st;
	agentd_error err = {0};
	assert_int_equal(state_open(p, false, &st, &err), 0);
	assert_int_equal(state_schema_version(st), state_schema_latest);
	assert_true(state_schema_latest >= 2);
	state_close(st);
	assert_int_equal(sql_int(p, "PRAGMA user_version"), state_schema_latest);
	sqlite3 *db;
	sqlite3_open(p, &db);
	sqlite3_stmt *s;
	sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	sqlite3_close(db);
	/* reopening changes nothing */
	assert_int_equal(state_open(p, true, &st, &err), 0);
	assert_int_equal(state_schema_version(st), state_schema_latest);
	state_close(st);
	rm_db(p);
}

static void a_version_1_database_is_migrated_with_its_rows(void **state __attribute__((unused)))
{
	char *p = tmp_db();
	char *v1;
	assert_true(asprintf(&v1, "%s PRAGMA user_version = 1;"
				  "INSERT INTO sandboxes VALUES('" ID "', 'old', 'container', '{}', 'd',"
				  " 'ready', NULL, 1, 1);"
				  "INSERT INTO audit(ts_ms, client_uid, client, action, result)"
				  " VALUES(1, 0, 'unix:old', 'create', 'ok');",
			     state_migrations[0]) > 0);
	assert_int_equal(sql_exec(p, v1), SQLITE_OK);
	free(v1);
	assert_int_equal(sql_int(p, "PRAGMA user_version"), 1);
	struct state *st;
	agentd_error err = {0};
	assert_int_equal(state_open(p, false, &st, &err), 0);
	assert_int_equal(state_schema_version(st), state_schema_latest);
	json_t *row = state_sandbox_get(st, ID);
	assert_non_null(row);
	assert_string_equal(json_string_value(json_object_get(row, "name")), "old");
	assert_int_equal(json_integer_value(json_object_get(row, "session")), 0); /* v2 column */
	json_decref(row);
	/* v3: the old record is chained, and the chain goes on from it */
	struct audit_record a = {.uid = 0, .client = "unix:new", .action = "exec", .result = "ok"};
	assert_int_equal(state_audit_append(st, &a, &err), 0);
	state_close(st);
	json_t *r = state_audit_verify(p, &err);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(json_integer_value(json_object_get(r, "records")), 2);
	json_decref(r);
	rm_db(p);
}

static void a_newer_schema_is_refused(void **state __attribute__((unused)))
{
	char *p = tmp_db();
	assert_int_equal(sql_exec(p, "PRAGMA user_version = 999;"), SQLITE_OK);
	struct state *st = NULL;
	agentd_error err = {0};
	assert_int_equal(state_open(p, false, &st, &err), -1);
	assert_non_null(strstr(err.msg, "newer than this agentd"));
	rm_db(p);
}

static void a_failed_migration_leaves_the_old_version(void **state __attribute__((unused)))
{
	char *p = tmp_db();
	/* version 1 whose audit table already has the index migration 2 creates */
	char *v1;
	assert_true(asprintf(&v1, "%s PRAGMA user_version = 1; CREATE INDEX audit_ts ON audit(seq);",
			     state_migrations[0]) > 0);
	assert_int_equal(sql_exec(p, v1), SQLITE_OK);
	free(v1);
	struct state *st = NULL;
	agentd_error err = {0};
	assert_int_equal(state_open(p, false, &st, &err), -1);
	assert_non_null(strstr(err.msg, "migrate to schema 2"));
	assert_int_equal(sql_int(p, "PRAGMA user_version"), 1);
	/* and the ALTER TABLE of migration 2 was rolled back with it */
	assert_int_equal(sql_int(p, "SELECT count(*) FROM pragma_table_info('sandboxes') WHERE"
				    " name = 'session'"), 0);
	rm_db(p);
}

static int lost_count;
static void on_lost(void *arg, const char *id)
{
	assert_string_equal(id, (const char *)arg);
	lost_count++;
}

static void reconcile_fails_live_rows_once(void **state __attribute__((unused)))
{
	char *p = tmp_db();
	struct state *st;
	agentd_error err = {0};
	assert_int_equal(state_open(p, false, &st, &err), 0);
	const char *live = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", *gone = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
	assert_int_equal(state_sandbox_insert(st, live, NULL, "container", "{}", "d", "ready", true,
					      &err), 0);
	assert_int_equal(state_sandbox_insert(st, gone, "g", "container", "{}", "d", "ready", false,
					      &err), 0);
	assert_int_equal(state_sandbox_set_state(st, gone, "destroyed", "deleted", &err), 0);
	assert_int_equal(state_session_insert(st, ID, "agent", live, &err), 0);
	struct snapshot_row snap = {.id = "cccccccccccccccccccccccccccccccc", .sandbox_id = live,
				    .name = "s", .backend = "container", .workdir = "/workspace",
				    .size_bytes = 4096};
	assert_int_equal(state_snapshot_insert(st, &snap, &err), 0);
	/* names are unique */
	struct snapshot_row twin = snap;
	twin.id = "dddddddddddddddddddddddddddddddd";
	assert_int_equal(state_snapshot_insert(st, &twin, &err), -1);
	assert_int_equal(err.code, EEXIST);
	lost_count = 0;
	assert_int_equal(state_reconcile(st, on_lost, (void *)live, &err), 0);
	assert_int_equal(lost_count, 1);
	json_t *row = state_sandbox_get(st, live);
	assert_string_equal(json_string_value(json_object_get(row, "state")), "failed");
	assert_string_equal(json_string_value(json_object_get(row, "reason")),
			    "lost at daemon restart");
	json_decref(row);
	row = state_sandbox_get(st, gone);
	assert_string_equal(json_string_value(json_object_get(row, "state")), "destroyed");
	json_decref(row);
	char sb[API_ID_LEN + 1], status[16];
	assert_int_equal(state_session_get(st, "agent", ID, sb, status), 0);
	assert_string_equal(status, "failed");
	assert_int_equal(state_session_get(st, "other", ID, sb, status), -1);
	/* snapshots outlive their sandbox (templates): kept, found by id and by name */
	json_t *kept = state_snapshot_find(st, "s");
	assert_non_null(kept);
	assert_string_equal(json_string_value(json_object_get(kept, "id")), snap.id);
	assert_int_equal(json_integer_value(json_object_get(kept, "size_bytes")), 4096);
	json_decref(kept);
	assert_int_equal(state_snapshot_bytes(st, live), 4096);
	assert_int_equal(state_reconcile(st, on_lost, (void *)live, &err), 0);
	assert_int_equal(lost_count, 1); /* nothing left to reconcile */
	state_close(st);
	rm_db(p);
}

/* issue 12: durable-daemon */
static void reconcile_leaves_durable_rows_to_the_adoption(void **state __attribute__((unused)))
{
	char *p = tmp_db();
	struct state *st;
	agentd_error err = {0};
	assert_int_equal(state_open(p, false, &st, &err), 0);
	const char *durable = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	const char *snap = "cccccccccccccccccccccccccccccccc";
	assert_int_equal(state_sandbox_insert(st, durable, NULL, "container", "{}", "d", "ready",
					      true, &err), 0);
	assert_int_equal(state_durable_set(st, durable, "v1:token", "{\"env\":1}", &err), 0);
	assert_int_equal(state_session_insert(st, ID, "agent", durable, &err), 0);
	struct snapshot_row row = {.id = snap, .sandbox_id = durable, .name = "s"};
	assert_int_equal(state_snapshot_insert(st, &row, &err), 0);
	json_t *data = json_pack("{s:i}", "pid", 7);
	assert_int_equal(state_item_put(st, durable, "process", "7", data), 0);
	json_decref(data);
	lost_count = 0;
	assert_int_equal(state_reconcile(st, on_lost, (void *)durable, &err), 0);
	assert_int_equal(lost_count, 0);
	json_t *rows = state_durable_list(st, &err);
	assert_int_equal(json_array_size(rows), 1);
	json_t *r0 = json_array_get(rows, 0);
	assert_string_equal(json_string_value(json_object_get(r0, "durable_token")), "v1:token");
	assert_string_equal(json_string_value(json_object_get(r0, "durable_spec")), "{\"env\":1}");
	json_decref(rows);
	char sb[API_ID_LEN + 1], status[16];
	assert_int_equal(state_session_get(st, "agent", ID, sb, status), 0);
	assert_string_equal(status, "ready");
	json_t *kept = state_snapshot_find(st, snap);
	assert_non_null(kept);
	json_decref(kept);
	json_t *items = state_items(st, durable);
	assert_int_equal(json_array_size(items), 1);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(json_array_get(items, 0), "data"), "pid")), 7);
	json_decref(items);
	/* its end clears the secret and what it ran */
	assert_int_equal(state_durable_clear(st, durable), 0);
	items = state_items(st, durable);
	assert_int_equal(json_array_size(items), 0);
	json_decref(items);
	rows = state_durable_list(st, &err);
	assert_int_equal(json_array_size(rows), 0);
	json_decref(rows);
	state_close(st);
	rm_db(p);
}

static void the_audit_log_is_append_only(void **state __attribute__((unused)))
{
	char *p = tmp_db();
	struct state *st;
	agentd_error err = {0};
	assert_int_equal(state_open(p, false, &st, &err), 0);
	for (int i = 0; i < 3; i++) {
		struct audit_record a = {.uid = 1000, .client = "unix:test", .action = "exec",
					 .sandbox_id = ID, .argv_json = "[\"/bin/true\"]",
					 .policy_digest = "d", .backend = "container",
					 .result = "exit 0", .duration_ms = (uint64_t)i};
		assert_int_equal(state_audit_append(st, &a, &err), 0);
	}
	json_t *recs = state_audit_list(st, 1, 0, 100, &err);
	assert_int_equal(json_array_size(recs), 2);
	json_t *r0 = json_array_get(recs, 0);
	assert_int_equal(json_integer_value(json_object_get(r0, "seq")), 2);
	assert_string_equal(json_string_value(json_array_get(json_object_get(r0, "argv"), 0)),
			    "/bin/true");
	json_decref(recs);
	state_close(st);
	assert_int_not_equal(sql_exec(p, "UPDATE audit SET result = 'forged'"), SQLITE_OK);
	assert_int_not_equal(sql_exec(p, "DELETE FROM audit"), SQLITE_OK);
	assert_int_equal(sql_int(p, "SELECT count(*) FROM audit WHERE result = 'exit 0'"), 3);
	rm_db(p);
}

static void append_exec(struct state *st, int i, size_t argv_len)
{
	char *arg = malloc(argv_len + 1);
	memset(arg, 'a' + i % 26, argv_len);
	arg[argv_len] = '\0';
	char *argv;
	assert_true(asprintf(&argv, "[\"/bin/echo\", \"%s\"]", arg) > 0);
	struct audit_record a = {.uid = 0, .client = "unix:test", .action = "exec",
				 .sandbox_id = ID, .argv_json = argv, .policy_digest = "d",
				 .backend = "container", .result = "exit 0", .duration_ms = 1};
	agentd_error err = {0};
	assert_int_equal(state_audit_append(st, &a, &err), 0);
	free(argv);
	free(arg);
}

static json_int_t report_int(json_t *r, const char *k)
{
	return json_integer_value(json_object_get(r, k));
}

/* Each record hashes its content and its predecessor's hash: verify names the first record
 * whose content changed, even when the tamperer also rewrote that record's hash. */
static void a_changed_audit_record_is_named_by_verify(void **state __attribute__((unused)))
{
	char *p = tmp_db();
	struct state *st;
	agentd_error err = {0};
	assert_int_equal(state_open(p, false, &st, &err), 0);
	for (int i = 0; i < 20; i++)
		append_exec(st, i, 10);
	state_close(st);
	json_t *r = state_audit_verify(p, &err);
	assert_non_null(r);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(report_int(r, "records"), 20);
	assert_int_equal(report_int(r, "head_seq"), 20);
	json_decref(r);
	assert_int_equal(sql_exec(p, "DROP TRIGGER audit_no_update;"
				     "UPDATE audit SET result = 'exit 1' WHERE seq = 7"), SQLITE_OK);
	r = state_audit_verify(p, &err);
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(report_int(json_object_get(r, "error"), "seq"), 7);
	json_decref(r);
	/* the hash rewritten too: still row 7 (its hash is not the chain's) */
	assert_int_equal(sql_exec(p, "DROP TRIGGER audit_hash_once; UPDATE audit SET hash ="
				     " (SELECT hash FROM audit WHERE seq = 8) WHERE seq = 7"),
			 SQLITE_OK);
	r = state_audit_verify(p, &err);
	assert_int_equal(report_int(json_object_get(r, "error"), "seq"), 7);
	json_decref(r);
	/* a deleted record is named as missing */
	assert_int_equal(sql_exec(p, "UPDATE audit SET result = 'exit 0', hash = NULL WHERE"
				     " seq = 7"), SQLITE_OK);
	assert_int_equal(state_open(p, false, &st, &err), 0); /* re-chains a NULL hash only */
	state_close(st);
	r = state_audit_verify(p, &err);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	assert_int_equal(sql_exec(p, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE"
				     " seq = 12"), SQLITE_OK);
	r = state_audit_verify(p, &err);
	assert_int_equal(report_int(json_object_get(r, "error"), "seq"), 12);
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"),
								 "message")), "missing"));
	json_decref(r);
	rm_db(p);
}

static void count_event(void *arg, const char *msg)
{
	if (strstr(msg, "pruned"))
		(*(int *)arg)++;
}

/* Over its budget the database loses its oldest sealed segments' records, keeps their
 * seals, stays near the budget, and what is kept still verifies; a changed seal fails. */
static void retention_prunes_sealed_segments_and_the_chain_still_verifies(void **state
									  __attribute__((unused)))
{
	char *p = tmp_db();
	struct state *st;
	agentd_error err = {0};
	int pruned = 0;
	assert_int_equal(state_open(p, false, &st, &err), 0);
	state_audit_set_budget(st, 1 << 20, count_event, &pruned);
	for (int i = 0; i < 1500; i++) /* ~3 MiB of records into a 1 MiB budget */
		append_exec(st, i, 2000);
	state_close(st);
	assert_true(pruned > 0);
	int used = sql_int(p, "SELECT (SELECT page_count FROM pragma_page_count) -"
			      " (SELECT freelist_count FROM pragma_freelist_count)") *
		   sql_int(p, "PRAGMA page_size");
	assert_true(used <= 1 << 20);
	assert_true(sql_int(p, "SELECT count(*) FROM audit") < 1500);
	assert_int_equal(sql_int(p, "SELECT count(*) FROM audit_seals WHERE pruned_ms IS NOT NULL"),
			 pruned);
	json_t *r = state_audit_verify(p, &err);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(json_integer_value(json_array_get(json_object_get(r, "pruned"), 0)), 1);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(r, "pruned"), 1)),
			 pruned);
	assert_int_equal(report_int(r, "head_seq"), 1500);
	json_decref(r);
	/* the rows of a pruned segment are the only ones that can be deleted */
	assert_int_not_equal(sql_exec(p, "DELETE FROM audit"), SQLITE_OK);
	assert_int_not_equal(sql_exec(p, "DELETE FROM audit_seals"), SQLITE_OK);
	/* a kept segment marked pruned (and emptied) after the pruned ones is named */
	char *sql;
	assert_true(asprintf(&sql, "DROP TRIGGER audit_no_delete; UPDATE audit_seals SET"
				   " pruned_ms = 1 WHERE segment = %d; DELETE FROM audit WHERE seq"
				   " BETWEEN (SELECT first_seq FROM audit_seals WHERE segment = %d) AND"
				   " (SELECT last_seq FROM audit_seals WHERE segment = %d)",
			     pruned + 2, pruned + 2, pruned + 2) > 0);
	assert_int_equal(sql_exec(p, sql), SQLITE_OK);
	free(sql);
	r = state_audit_verify(p, &err);
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(report_int(json_object_get(r, "error"), "segment"), pruned + 2);
	json_decref(r);
	/* a pruned seal whose recorded head is changed breaks the seal chain */
	assert_int_equal(sql_exec(p, "DROP TRIGGER audit_seals_no_update; UPDATE audit_seals SET"
				     " rows = rows + 1 WHERE segment = 1"), SQLITE_OK);
	r = state_audit_verify(p, &err);
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(report_int(json_object_get(r, "error"), "segment"), 1);
	json_decref(r);
	rm_db(p);
}

/* The TCP listener's bearer check: exact token only, whatever its length. */
static void bearer_token_exact(void **state)
{
	const char *tok = "0123456789abcdef";
	assert_true(http_bearer_ok("Bearer 0123456789abcdef", tok, 16));
	assert_false(http_bearer_ok(NULL, tok, 16));
	assert_false(http_bearer_ok("", tok, 16));
	assert_false(http_bearer_ok("Bearer ", tok, 16));
	assert_false(http_bearer_ok("bearer 0123456789abcdef", tok, 16));
	assert_false(http_bearer_ok("Basic 0123456789abcdef", tok, 16));
	assert_false(http_bearer_ok("Bearer 0123456789abcde", tok, 16));
	assert_false(http_bearer_ok("Bearer 0123456789abcdeff", tok, 16));
	assert_false(http_bearer_ok("Bearer 0123456789abcdeF", tok, 16));
	assert_false(http_bearer_ok("Bearer x0123456789abcdef", tok, 16));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bearer_token_exact),
		cmocka_unit_test(sha256_matches_the_fips_vectors),
		cmocka_unit_test(every_endpoint_routes),
		cmocka_unit_test(snapshot_references_are_checked),
		cmocka_unit_test(image_references_take_the_rest_of_the_path), /* issue 13 */
		cmocka_unit_test(wrong_routes_methods_and_ids),
		cmocka_unit_test(bodies_are_validated_strictly),
		cmocka_unit_test(process_requests_are_typed),
		cmocka_unit_test(bad_process_requests_name_the_field),
		cmocka_unit_test(exec_body_is_typed),
		cmocka_unit_test(status_mapping),
		cmocka_unit_test(fresh_state_has_the_latest_schema_in_wal),
		cmocka_unit_test(a_version_1_database_is_migrated_with_its_rows),
		cmocka_unit_test(a_newer_schema_is_refused),
		cmocka_unit_test(a_sandbox_is_addressed_by_id_or_name),
		cmocka_unit_test(unknown_query_parameters_are_refused_by_name),
		cmocka_unit_test(network_patches_parse_as_the_policy_network),
		cmocka_unit_test(a_failed_migration_leaves_the_old_version),
		cmocka_unit_test(reconcile_fails_live_rows_once),
		cmocka_unit_test(the_audit_log_is_append_only),
		cmocka_unit_test(a_changed_audit_record_is_named_by_verify),
		cmocka_unit_test(retention_prunes_sealed_segments_and_the_chain_still_verifies),
		/* issue 12: durable-daemon */
		cmocka_unit_test(reconcile_leaves_durable_rows_to_the_adoption),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
