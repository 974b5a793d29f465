/* tool_schemas.c: what `agentd mcp` tells a model about its tools — each tool's name,
 * description, JSON Schema of its input and of its structured output (tools/list). */
#include "mcp/mcp.h"

#define SID "\"sandbox_id\":{\"type\":\"string\",\"description\":\"the sandbox's id (or name), as sandbox_create returned it\"}"
#define CMD "\"command\":{\"type\":\"string\",\"description\":\"a shell command line, run by /bin/sh -c\"},\"argv\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1,\"description\":\"the program and its arguments, run without a shell (instead of command)\"}"
#define ENV "\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},\"description\":\"environment variables to add\"},\"workdir\":{\"type\":\"string\",\"description\":\"absolute directory to run in\"}"
#define OBJ(props, req) "{\"type\":\"object\",\"properties\":{" props "},\"required\":[" req "],\"additionalProperties\":false}"
#define OUT(props) "{\"type\":\"object\",\"properties\":{" props "}}"
#define S(name) "\"" name "\":{\"type\":\"string\"}"
#define I(name) "\"" name "\":{\"type\":\"integer\"}"
#define B(name) "\"" name "\":{\"type\":\"boolean\"}"
#define SN(name) "\"" name "\":{\"type\":[\"string\",\"null\"]}"
#define IN(name) "\"" name "\":{\"type\":[\"integer\",\"null\"]}"
#define A(name) "\"" name "\":{\"type\":\"array\"}"
#define SANDBOX_OUT OUT(S("sandbox_id") "," SN("name") "," S("backend") "," S("state") "," A("unenforced"))

static const struct {
	const char *name, *title, *description, *input, *output;
} tools[] = {
	{"sandbox_create", "Create a sandbox",
	 "Create an isolated Linux sandbox to run untrusted code in. Returns sandbox_id, which every "
	 "other tool takes. Profiles: strict (default; no network, 512 MiB), standard, permissive. "
	 "Network is off unless network.mode is \"allowlist\" (with allow: host names or CIDRs) or "
	 "\"host\" (permissive only). The sandbox is destroyed when this MCP session ends unless "
	 "keep is true, or after ttl_s seconds.",
	 OBJ("\"profile\":{\"type\":\"string\",\"enum\":[\"strict\",\"standard\",\"permissive\"]},"
	     "\"name\":{\"type\":\"string\",\"pattern\":\"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$\",\"description\":\"a name to address it by instead of its id\"},"
	     "\"backend\":{\"type\":\"string\",\"description\":\"container, linux-native, host-direct or auto (default)\"},"
	     "\"network\":{\"type\":\"object\",\"properties\":{\"mode\":{\"type\":\"string\",\"enum\":[\"none\",\"allowlist\",\"host\"]},"
	     "\"allow\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"description\":\"host names (*.example.com), host:port or CIDRs\"}},\"additionalProperties\":false},"
	     "\"limits\":{\"type\":\"object\",\"properties\":{\"memory_mb\":{\"type\":\"integer\",\"minimum\":1},"
	     "\"cpu_time_s\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"description\":\"CPU seconds for the sandbox's whole life\"},"
	     "\"timeout_s\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"description\":\"wall-clock limit of each command\"},"
	     "\"max_processes\":{\"type\":\"integer\",\"minimum\":1}},\"additionalProperties\":false},"
	     "\"ttl_s\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"destroy it after this many seconds (0: no ttl)\"},"
	     "\"keep\":{\"type\":\"boolean\",\"description\":\"keep it after this MCP session ends\"}", ""),
	 SANDBOX_OUT},
	{"run_code", "Run code in a stateful context",
	 "Run a cell of code in the sandbox's interpreter for language (python, node or bash). "
	 "State persists between calls of the same language in the same sandbox (variables, "
	 "imports, cwd), as in a notebook. Returns stdout, stderr, the value of the last "
	 "expression (result) and the error with its traceback. Output streams as progress.",
	 OBJ(SID ",\"language\":{\"type\":\"string\",\"enum\":[\"python\",\"node\",\"bash\"]},"
	     "\"code\":{\"type\":\"string\"},\"timeout_s\":{\"type\":\"number\",\"exclusiveMinimum\":0}",
	     "\"sandbox_id\",\"language\",\"code\""),
	 OUT(S("status") "," S("stdout") "," S("stderr") "," SN("result") ","
	     "\"error\":{\"type\":[\"object\",\"null\"]}," I("duration_ms") "," S("context_id"))},
	{"exec", "Run a command",
	 "Run a command in the sandbox and wait for it: returns exit_code, stdout and stderr. Use "
	 "command for a shell line or argv for a program and its arguments. A limit (time, "
	 "memory, processes) that ends it is reported as an error naming the limit. Output "
	 "streams as progress.",
	 OBJ(SID "," CMD "," ENV ",\"stdin\":{\"type\":\"string\",\"description\":\"text for its standard input\"},"
	     "\"timeout_s\":{\"type\":\"number\",\"exclusiveMinimum\":0}", "\"sandbox_id\""),
	 OUT(I("exit_code") "," S("stdout") "," S("stderr") "," B("timed_out") "," SN("limit_hit") ","
	     I("duration_ms"))},
	{"read_file", "Read a file",
	 "Read a file of the sandbox: its text (UTF-8), or base64 when it is binary. At most "
	 "max_bytes (default 1 MiB) are returned.",
	 OBJ(SID ",\"path\":{\"type\":\"string\",\"description\":\"absolute path in the sandbox\"},"
	     "\"max_bytes\":{\"type\":\"integer\",\"minimum\":1}", "\"sandbox_id\",\"path\""),
	 OUT(S("path") "," I("size") "," S("content") "," S("encoding") "," B("truncated"))},
	{"write_file", "Write a file",
	 "Write a file in the sandbox (made with its missing parent directories; replaced if it "
	 "exists). content is text, or base64 with encoding \"base64\".",
	 OBJ(SID ",\"path\":{\"type\":\"string\"},\"content\":{\"type\":\"string\"},"
	     "\"encoding\":{\"type\":\"string\",\"enum\":[\"utf-8\",\"base64\"]}",
	     "\"sandbox_id\",\"path\",\"content\""),
	 OUT(S("path") "," I("size"))},
	{"list_files", "List a directory",
	 "List a directory of the sandbox: name, type, size, mode and mtime of each entry.",
	 OBJ(SID ",\"path\":{\"type\":\"string\"}", "\"sandbox_id\",\"path\""),
	 OUT(S("path") "," A("entries") "," B("truncated"))},
	{"process_start", "Start a background process",
	 "Start a long-running command in the background (a server, a watcher) and return its pid "
	 "at once; read its output with process_read.",
	 OBJ(SID "," CMD "," ENV, "\"sandbox_id\""),
	 OUT(I("pid") "," S("state"))},
	{"process_read", "Read a background process's output",
	 "Read what a background process wrote since offset (0: from the start) and whether it "
	 "still runs. Pass the returned next offsets to read only what is new.",
	 OBJ(SID ",\"pid\":{\"type\":\"integer\"},\"stream\":{\"type\":\"string\",\"enum\":[\"stdout\",\"stderr\",\"both\"]},"
	     "\"offset\":{\"type\":\"integer\",\"minimum\":0}", "\"sandbox_id\",\"pid\""),
	 OUT(I("pid") "," S("state") "," IN("exit_code") "," S("stdout") "," S("stderr") ","
	     I("stdout_next_offset") "," I("stderr_next_offset"))},
	{"port_open", "Expose a port",
	 "Forward a TCP port a server in the sandbox listens on to the host (container sandboxes); "
	 "returns the host address (host:port) to connect to.",
	 OBJ(SID ",\"port\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":65535}",
	     "\"sandbox_id\",\"port\""),
	 OUT(I("port") "," S("address") "," S("state"))},
	{"snapshot", "Snapshot a sandbox",
	 "Save the sandbox's files as a snapshot (container sandboxes) to restore later.",
	 OBJ(SID ",\"name\":{\"type\":\"string\"}", "\"sandbox_id\""),
	 OUT(S("id") "," S("sandbox_id"))},
	{"restore", "Restore a snapshot",
	 "Put the sandbox's files back as they were in one of its snapshots.",
	 OBJ(SID ",\"snapshot_id\":{\"type\":\"string\",\"description\":\"the snapshot's id or name\"}",
	     "\"sandbox_id\",\"snapshot_id\""),
	 OUT(S("sandbox_id") "," S("snapshot_id"))},
	{"sandbox_destroy", "Destroy a sandbox",
	 "Destroy a sandbox: every process in it is killed and its files are removed.",
	 OBJ(SID, "\"sandbox_id\""), OUT(S("id") "," S("state"))},
	{"sandbox_list", "List sandboxes",
	 "List the live sandboxes of the daemon with their id, name, backend and state.",
	 OBJ("", ""), OUT(A("sandboxes"))},
};

json_t *mcp_tools_list(void)
{
	json_t *list = json_array();
	for (size_t i = 0; i < ARRAY_SIZE(tools); i++) {
		json_error_t je;
		json_t *in = json_loads(tools[i].input, 0, &je);
		json_t *out = json_loads(tools[i].output, 0, &je);
		if (!in || !out) /* a bug of this file: the build's unit test catches it */
			abort();
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:o, s:o}", "name",
						      tools[i].name, "title", tools[i].title,
						      "description", tools[i].description,
						      "inputSchema", in, "outputSchema", out));
	}
	return list;
}
