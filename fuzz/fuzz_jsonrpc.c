/* fuzz_jsonrpc.c: libFuzzer target for the MCP server's JSON-RPC reader and dispatcher
 * (src/mcp/jsonrpc.c) — every byte an MCP client can send on stdio or in a POST: one
 * message through the bounds, the parser and the dispatcher, under either protocol version
 * (batches only under 2025-03-26), with tools that answer at once. */
#include "mcp/mcp.h"

static json_t *echo_tool(struct mcp_call *c, const char *name, json_t *args, void *ud)
{
	(void)ud;
	mcp_progress(c, name);
	return mcp_tool_result(json_pack("{s:O}", "args", args), NULL);
}

static void drop(struct mcp_call *c, json_t *msg, void *ud)
{
	(void)c, (void)ud;
	if (!json_is_object(msg))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *tools;
	if (!tools)
		tools = mcp_tools_list();
	static const struct mcp_ops ops = {.call_tool = echo_tool, .notify = drop};
	struct mcp_session s;
	mcp_session_init(&s, &ops, tools);
	if (size && (data[0] & 1)) /* the older version: batches allowed */
		snprintf(s.protocol, sizeof(s.protocol), "2025-03-26");
	json_t *reply = NULL;
	json_t *msg = mcp_parse((const char *)data, size, &reply);
	if (!msg == !reply)
		abort(); /* a message or an error, never both, never neither */
	if (msg) {
		reply = mcp_dispatch(&s, msg, NULL);
		if (reply && !json_is_object(reply) && !json_is_array(reply))
			abort();
	}
	if (reply) {
		char *out = json_dumps(reply, JSON_COMPACT);
		if (!out)
			abort(); /* every reply can be sent */
		free(out);
	}
	json_decref(reply);
	json_decref(msg);
	mcp_session_destroy(&s);
	return 0;
}
