/* test_mcp.c: the MCP server's JSON-RPC dispatcher (src/mcp/jsonrpc.c) as a specification:
 * version negotiation, errors, batches per version, bounds, progress, cancellation and the
 * concurrent-call bound — with tools that answer at once and record what they saw. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mcp/mcp.h"

struct seen {
	json_t *notes;			/* notifications sent */
	unsigned cancels;
	json_t *inner;			/* a reply the tool got by dispatching meanwhile */
	const char *inner_msg;		/* what the tool dispatches while it runs */
};

static json_t *tool(struct mcp_call *c, const char *name, json_t *args, void *ud)
{
	struct seen *s = ud;
	mcp_progress(c, "working");
	if (s->inner_msg) {
		json_t *reply = NULL, *m = mcp_parse(s->inner_msg, strlen(s->inner_msg), &reply);
		s->inner = m ? mcp_dispatch(c->session, m, NULL) : reply;
		json_decref(m);
	}
	return mcp_tool_result(json_pack("{s:s, s:O}", "tool", name, "args", args), NULL);
}

static void notify(struct mcp_call *c, json_t *msg, void *ud)
{
	json_array_append(((struct seen *)ud)->notes, msg);
}

static void cancel(struct mcp_call *c, void *ud)
{
	((struct seen *)ud)->cancels++;
}

struct fixture {
	struct seen seen;
	struct mcp_ops ops;
	struct mcp_session s;
	json_t *tools;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->seen.notes = json_array();
	f->ops = (struct mcp_ops){.call_tool = tool, .notify = notify, .cancel = cancel,
				  .ud = &f->seen};
	f->tools = mcp_tools_list();
	mcp_session_init(&f->s, &f->ops, f->tools);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	mcp_session_destroy(&f->s);
	json_decref(f->tools);
	json_decref(f->seen.notes);
	json_decref(f->seen.inner);
	free(f);
	return 0;
}

/* The reply to one message text (NULL when there is none). */
static json_t *send(struct fixture *f, const char *text)
{
	json_t *reply = NULL, *m = mcp_parse(text, strlen(text), &reply);
	if (m)
		reply = mcp_dispatch(&f->s, m, NULL);
	json_decref(m);
	return reply;
}

static int error_code(json_t *r)
{
	return (int)json_integer_value(json_object_get(json_object_get(r, "error"), "code"));
}

static void initialize(struct fixture *f, const char *version)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
		 "\"params\":{\"protocolVersion\":\"%s\"}}", version);
	json_decref(send(f, buf));
}

static void the_clients_version_is_answered_when_supported_else_ours(void **state)
{
	struct fixture *f = *state;
	const char *cases[][2] = {{"2025-03-26", "2025-03-26"}, {"2025-06-18", "2025-06-18"},
				  {"2024-11-05", "2025-06-18"}, {"9999-01-01", "2025-06-18"}};
	for (size_t i = 0; i < 4; i++) {
		char buf[256];
		snprintf(buf, sizeof(buf), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
			 "\"params\":{\"protocolVersion\":\"%s\"}}", cases[i][0]);
		json_t *r = send(f, buf);
		assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"),
								      "protocolVersion")),
				    cases[i][1]);
		json_decref(r);
	}
	json_t *r = send(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}");
	assert_int_equal(error_code(r), JSONRPC_INVALID_PARAMS);
	json_decref(r);
}

static void malformed_messages_get_the_json_rpc_error_of_their_kind(void **state)
{
	struct fixture *f = *state;
	const struct {
		const char *text;
		int code;
	} cases[] = {
		{"{", JSONRPC_PARSE_ERROR},
		{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"method\":\"y\"}", JSONRPC_PARSE_ERROR},
		{"7", JSONRPC_INVALID_REQUEST},
		{"{\"id\":1,\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST},
		{"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}", JSONRPC_INVALID_REQUEST},
		{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":3}", JSONRPC_INVALID_REQUEST},
		{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":[]}", JSONRPC_INVALID_REQUEST},
		{"{\"jsonrpc\":\"2.0\",\"id\":1}", JSONRPC_INVALID_REQUEST},
		{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/list\"}", JSONRPC_METHOD_NOT_FOUND},
		{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"rm\"}}",
		 JSONRPC_INVALID_PARAMS},
		{"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"exec\","
		 "\"arguments\":[]}}", JSONRPC_INVALID_PARAMS},
		{"[]", JSONRPC_INVALID_REQUEST}, /* a batch under 2025-06-18 */
	};
	initialize(f, "2025-06-18");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		json_t *r = send(f, cases[i].text);
		assert_non_null(r);
		assert_int_equal(error_code(r), cases[i].code);
		json_decref(r);
	}
	/* notifications and responses to us are answered by nothing */
	assert_null(send(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
	assert_true(f->s.initialized);
	assert_null(send(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}"));
}

static void batches_are_answered_in_order_under_2025_03_26_and_bounded(void **state)
{
	struct fixture *f = *state;
	initialize(f, "2025-03-26");
	json_t *r = send(f, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
			    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
			    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{}},"
			    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":"
			    "{\"name\":\"sandbox_list\"}}]");
	assert_int_equal(json_array_size(r), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 0), "id")), 1);
	assert_int_equal(error_code(json_array_get(r, 1)), JSONRPC_INVALID_REQUEST);
	assert_false(json_is_true(json_object_get(json_object_get(json_array_get(r, 2), "result"),
						  "isError")));
	json_decref(r);
	assert_null(send(f, "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]"));
	char big[64 * 40] = "[";
	for (int i = 0; i < MCP_MAX_BATCH + 1; i++)
		strcat(big, i ? ",{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"
			      : "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	strcat(big, "]");
	r = send(f, big);
	assert_int_equal(error_code(r), JSONRPC_INVALID_REQUEST);
	json_decref(r);
}

static void size_and_nesting_are_bounded_before_parsing(void **state)
{
	(void)state;
	json_t *reply = NULL;
	char deep[2 * (MCP_MAX_DEPTH + 1) + 1] = "";
	for (int i = 0; i <= MCP_MAX_DEPTH; i++)
		strcat(deep, "[");
	for (int i = 0; i <= MCP_MAX_DEPTH; i++)
		strcat(deep, "]");
	assert_null(mcp_parse(deep, strlen(deep), &reply));
	assert_int_equal(error_code(reply), JSONRPC_INVALID_REQUEST);
	json_decref(reply);
	/* brackets inside strings are not nesting */
	const char *str = "{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[[\"}";
	json_t *m = mcp_parse(str, strlen(str), &reply);
	assert_non_null(m);
	json_decref(m);
	size_t n = MCP_MAX_MESSAGE + 1;
	char *huge = malloc(n);
	memset(huge, ' ', n);
	assert_null(mcp_parse(huge, n, &reply));
	assert_int_equal(error_code(reply), JSONRPC_INVALID_REQUEST);
	json_decref(reply);
	free(huge);
}

static void progress_carries_the_clients_token_and_grows(void **state)
{
	struct fixture *f = *state;
	initialize(f, "2025-06-18");
	json_t *r = send(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":"
			    "{\"name\":\"exec\",\"arguments\":{},\"_meta\":{\"progressToken\":\"tok\"}}}");
	json_decref(r);
	assert_int_equal(json_array_size(f->seen.notes), 1);
	json_t *p = json_object_get(json_array_get(f->seen.notes, 0), "params");
	assert_string_equal(json_string_value(json_object_get(p, "progressToken")), "tok");
	assert_true(json_number_value(json_object_get(p, "progress")) > 0);
	/* without a token: no progress */
	json_decref(send(f, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":"
			    "{\"name\":\"exec\"}}"));
	assert_int_equal(json_array_size(f->seen.notes), 1);
}

static void a_cancelled_call_is_cancelled_and_gets_no_answer(void **state)
{
	struct fixture *f = *state;
	f->seen.inner_msg = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
			    "\"params\":{\"requestId\":\"c1\"}}";
	json_t *r = send(f, "{\"jsonrpc\":\"2.0\",\"id\":\"c1\",\"method\":\"tools/call\","
			    "\"params\":{\"name\":\"exec\"}}");
	assert_null(r);
	assert_int_equal(f->seen.cancels, 1);
	assert_int_equal(f->s.n_calls, 0);
}

static void calls_past_the_sessions_bound_are_a_tool_error(void **state)
{
	struct fixture *f = *state;
	f->s.max_calls = 1;
	f->seen.inner_msg = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
			    "\"params\":{\"name\":\"exec\"}}";
	json_t *r = send(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
			    "\"params\":{\"name\":\"exec\"}}");
	assert_false(json_is_true(json_object_get(json_object_get(r, "result"), "isError")));
	json_t *inner = json_object_get(f->seen.inner, "result");
	assert_true(json_is_true(json_object_get(inner, "isError")));
	assert_non_null(strstr(json_string_value(json_object_get(
				       json_array_get(json_object_get(inner, "content"), 0), "text")),
			       "busy: 1 tool calls"));
	json_decref(r);
}

static void every_tool_has_a_description_and_object_schemas(void **state)
{
	(void)state;
	json_t *tools = mcp_tools_list();
	assert_int_equal(json_array_size(tools), 13);
	size_t i;
	json_t *t;
	json_array_foreach(tools, i, t) {
		assert_true(strlen(json_string_value(json_object_get(t, "description"))) > 40);
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(t, "inputSchema"), "type")), "object");
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(t, "outputSchema"), "type")), "object");
	}
	json_decref(tools);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(the_clients_version_is_answered_when_supported_else_ours, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_messages_get_the_json_rpc_error_of_their_kind, setup, teardown),
		cmocka_unit_test_setup_teardown(batches_are_answered_in_order_under_2025_03_26_and_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(size_and_nesting_are_bounded_before_parsing, setup, teardown),
		cmocka_unit_test_setup_teardown(progress_carries_the_clients_token_and_grows, setup, teardown),
		cmocka_unit_test_setup_teardown(a_cancelled_call_is_cancelled_and_gets_no_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(calls_past_the_sessions_bound_are_a_tool_error, setup, teardown),
		cmocka_unit_test(every_tool_has_a_description_and_object_schemas),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
