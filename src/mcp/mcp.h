/* mcp.h: `agentd mcp`, a Model Context Protocol server: the JSON-RPC reader and dispatcher
 * (jsonrpc.c, no I/O), the tools that drive the daemon API (tools.c), the sessions. */
#ifndef AGENTD_MCP_H
#define AGENTD_MCP_H

#include "common/common.h"

#include <jansson.h>
#include <stdatomic.h>

/* Bounds of what a client may send. */
#define MCP_MAX_MESSAGE (4u << 20)	/* bytes of one message (a line, a POST body) */
#define MCP_MAX_DEPTH 32		/* nesting of arrays and objects */
#define MCP_MAX_BATCH 32		/* messages in one batch (protocol 2025-03-26) */
#define MCP_MAX_CALLS 8			/* tools/call running at once in one session */

#define MCP_PROTOCOL_LATEST "2025-06-18"

/* JSON-RPC 2.0 error codes. */
enum {
	JSONRPC_PARSE_ERROR = -32700,
	JSONRPC_INVALID_REQUEST = -32600,
	JSONRPC_METHOD_NOT_FOUND = -32601,
	JSONRPC_INVALID_PARAMS = -32602,
	JSONRPC_INTERNAL_ERROR = -32603,
};

struct mcp_session;

/* One tools/call in flight: what the tool needs to report progress and to be cancelled. */
struct mcp_call {
	struct mcp_session *session;
	json_t *id;			/* the request's id */
	json_t *progress_token;		/* the client's _meta.progressToken, or NULL */
	void *transport;		/* the transport's own, for notify (an SSE stream) */
	atomic_bool cancelled;
	pthread_mutex_t lock;
	int cancel_fd;			/* the daemon connection to shut on cancel, or -1 */
	double progress;		/* last progress value sent (strictly increasing) */
	struct mcp_call *next;
};

/* What the dispatcher needs from outside: the tools and a way to the client. */
struct mcp_ops {
	/* Run a tool; returns its CallToolResult (content, structuredContent?, isError). */
	json_t *(*call_tool)(struct mcp_call *c, const char *name, json_t *args, void *ud);
	/* Send a notification (progress) of a running call to its client. */
	void (*notify)(struct mcp_call *c, json_t *msg, void *ud);
	/* A notifications/cancelled arrived for c (after c->cancelled was set). */
	void (*cancel)(struct mcp_call *c, void *ud);
	void *ud;
};

struct mcp_session {
	const struct mcp_ops *ops;
	const json_t *tools;		/* the tools/list array (borrowed) */
	char protocol[16];		/* negotiated; "" before initialize */
	bool initialized;		/* notifications/initialized seen */
	json_t *client_info;
	pthread_mutex_t lock;
	struct mcp_call *calls;		/* in flight */
	unsigned n_calls;
	unsigned max_calls;
};

void mcp_session_init(struct mcp_session *s, const struct mcp_ops *ops, const json_t *tools);
void mcp_session_destroy(struct mcp_session *s);

/* Read one message: within the bounds (size, depth), JSON. NULL with *reply set to the
 * JSON-RPC error to send (-32700, -32600). */
json_t *mcp_parse(const char *buf, size_t len, json_t **reply);
/* True when msg holds a tools/call (the transport runs it off its reading thread). */
bool mcp_message_blocks(const json_t *msg);
/* Handle a parsed message (one object, or a batch where the protocol allows it): the reply
 * to send (an object or an array), or NULL when there is none (notifications, responses, a
 * cancelled call). Blocks while the tool calls in it run; `transport` goes to the calls. */
json_t *mcp_dispatch(struct mcp_session *s, json_t *msg, void *transport);
/* Cancel every call in flight (the session ends). */
void mcp_session_cancel_all(struct mcp_session *s);

/* A message as the stdio transport writes it: one line of compact JSON, every control
 * character and line separator escaped, and its newline. malloc'd; NULL if msg cannot be
 * encoded. */
char *mcp_frame(const json_t *msg);
/* A progress notification of c (no-op without a progress token). */
void mcp_progress(struct mcp_call *c, const char *message);
/* Tool results. */
json_t *mcp_tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
json_t *mcp_tool_result(json_t *structured, const char *text);

/* tools.c: the tools, driving the daemon API at a socket. */
struct mcp_tools {
	char *socket;			/* the daemon's */
	json_t *list;			/* tools/list's array */
	pthread_mutex_t lock;
	json_t *created;		/* ids of the sandboxes this session made, not kept */
	void *transport;		/* the transport's, for its notify */
};
int mcp_tools_init(struct mcp_tools *t, const char *socket, agentd_error *err);
json_t *mcp_tools_call(struct mcp_call *c, const char *name, json_t *args, void *tools);
/* mcp_ops.cancel: shut the call's daemon connection (the daemon kills its command). */
void mcp_cancel_call(struct mcp_call *c, void *tools);
/* Destroy the sandboxes the session created (not those created with keep: true). */
void mcp_tools_cleanup(struct mcp_tools *t);
void mcp_tools_free(struct mcp_tools *t);
/* The tools/list array (the schemas), for the dispatcher and its fuzzer. */
json_t *mcp_tools_list(void);

#endif
