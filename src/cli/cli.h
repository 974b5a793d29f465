/* cli.h: what the agentd binary's verbs share: the policy flags of run (and later sandbox
 * create / session create), error printing, and the verb entry points. */
#ifndef AGENTD_CLI_H
#define AGENTD_CLI_H

#include "common/common.h"
#include "agentd-proxy.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>

/* Options every policy-taking verb accepts; values are ≥ 0x100 to stay clear of short
 * options. */
enum {
	OPT_POLICY = 0x100,
	OPT_PROFILE,
	OPT_RO,
	OPT_RW,
	OPT_NET,
	OPT_MEMORY,
	OPT_CPU_TIME,
	OPT_TIMEOUT,
	OPT_PIDS,
	OPT_MAX_OUTPUT,
	OPT_ENV,
	OPT_WORKDIR,
	OPT_SECCOMP,
	OPT_USER,
	OPT_ALLOW_DEGRADED,
	/* issue 13: img-root */
	OPT_IMAGE,
	OPT_WRITABLE_ROOT,
	OPT_POLICY_LAST,
};

#define POLICY_LONG_OPTIONS                                                                      \
	{"policy", required_argument, NULL, OPT_POLICY},                                         \
		{"profile", required_argument, NULL, OPT_PROFILE},                               \
		{"ro", required_argument, NULL, OPT_RO}, {"rw", required_argument, NULL, OPT_RW}, \
		{"net", required_argument, NULL, OPT_NET},                                       \
		{"memory", required_argument, NULL, OPT_MEMORY},                                 \
		{"cpu-time", required_argument, NULL, OPT_CPU_TIME},                             \
		{"timeout", required_argument, NULL, OPT_TIMEOUT},                               \
		{"pids", required_argument, NULL, OPT_PIDS},                                     \
		{"max-output", required_argument, NULL, OPT_MAX_OUTPUT},                         \
		{"env", required_argument, NULL, OPT_ENV},                                       \
		{"workdir", required_argument, NULL, OPT_WORKDIR},                               \
		{"seccomp", required_argument, NULL, OPT_SECCOMP},                               \
		{"user", required_argument, NULL, OPT_USER},                                     \
		{"allow-degraded", no_argument, NULL, OPT_ALLOW_DEGRADED},                        \
		{"image", required_argument, NULL, OPT_IMAGE},                                   \
		{"writable-root", no_argument, NULL, OPT_WRITABLE_ROOT}

/* Flags collected in order, applied after the policy file so that flags win. */
struct policy_flags {
	const char *policy_file;
	const char *profile;
	bool allow_degraded;		/* run without what the backend cannot enforce (listed) */
	struct {
		int opt;
		const char *val;
	} items[256];
	int n;
};

/* Record one policy option; returns 0, or -1 when opt is not a policy option. */
int policy_flags_add(struct policy_flags *pf, int opt, const char *val, agentd_error *err);
/* Build the spec: profile → policy file → --profile → each flag in order → validate. */
int policy_flags_build(const struct policy_flags *pf, agentd_spec *spec, agentd_error *err);
const char *policy_flags_help(void);
/* getopt_long (opterr 0, optstring starting with ':') returned '?' or ':': one line naming
 * the option and the verb's --help; returns -1. */
int cli_bad_option(const char *verb, int c, char *const *argv);
/* --env K=V into env (a JSON object of the request); -1 with the message printed. */
int cli_env_opt(json_t *env, const char *arg);



/* term.c: a sandbox's output for one of our fds. On a terminal (and without --raw) control
 * characters but \n, \t and \r\n are written as \xNN, C1 and bidi controls as \uNNNN,
 * bytes that are not UTF-8 as \xNN; a character or \r split across writes is held until
 * the next write or the flush. Elsewhere the bytes go through unchanged. */
struct term_out {
	int fd;
	bool escape;
	uint8_t held[4];
	size_t n_held;
};
void term_out_init(struct term_out *t, int fd, bool raw);
void term_out_write(struct term_out *t, const uint8_t *data, size_t len);
void term_out_flush(struct term_out *t);
/* JSON for stdout: on a terminal every non-ASCII character as \uNNNN (C1 controls are not
 * escaped by JSON itself); the extra json_dumps flags, and a compact document printed so. */
int term_json_flags(void);
void term_puts_json(const char *compact);

/* An attached terminal's output (cmd_attach.c) goes through as the program wrote it — a
 * shell or an editor draws with escape sequences — but for OSC 52, which would set the
 * host's clipboard (a command you paste later): dropped, up to its BEL or ST, also when
 * split across writes. out has room for n + 5 bytes; returns how many it holds. */
struct term_filter {
	int state;
	size_t held;			/* bytes of "ESC ] 5 2 ;" matched and held back */
};
size_t term_filter(struct term_filter *f, const uint8_t *in, size_t n, uint8_t *out);

/* client.c: the daemon API over its unix socket. */
struct client_conn {
	int fd;
	char *buf;
	size_t len, off, cap;
};
struct http_response {
	int status;
	char *body;			/* NUL-terminated */
	size_t len;
	size_t line_off;		/* on_line bookkeeping */
};
int client_connect(const char *path, struct client_conn *c, agentd_error *err);
void client_close(struct client_conn *c);
/* One request on a kept-alive connection; on_line (may be NULL) gets each body line as it
 * arrives (NDJSON streaming). */
int client_request(struct client_conn *c, const char *method, const char *path,
		   const char *ctype, const void *body, size_t len, struct http_response *resp,
		   void (*on_line)(void *, const char *, size_t), void *ud, agentd_error *err);
void http_response_free(struct http_response *r);
/* Connect, send body (may be NULL; JSON), get the answer (lines to on_line), close. */
int client_send(const char *sock, const char *method, const char *path, json_t *body,
		struct http_response *resp, void (*on_line)(void *, const char *, size_t),
		void *ud, agentd_error *err);
/* An NDJSON line of a streamed answer, parsed (NULL if it is not JSON); printed first with
 * --json (echo). */
json_t *ndjson_line(const char *line, size_t len, bool echo);
/* Connect, send body (may be NULL), parse the JSON answer. */
json_t *client_call(const char *sock, const char *method, const char *path, json_t *body,
		    int *status, agentd_error *err);
/* "agentd: VERB: message (HTTP n)"; returns EXIT_AGENTD. */
int client_report_error(const char *verb, int status, json_t *j);
char *url_escape(const char *s);	/* for query values; malloc'd */
/* cmd_sandbox.c, shared with cmd_session.c */
json_t *policy_flags_json(const struct policy_flags *pf, agentd_error *err);
/* Every "unenforced" entry of a daemon's answer as a warning line on stderr. */
void warn_unenforced_json(json_t *answer);
/* One call of a `sandbox` command: the answer (--json, or print_key NULL) or its print_key
 * printed, a daemon error reported; the exit code. */
int sandbox_call(const char *socket, bool json, const char *verb, const char *method,
		 const char *path, json_t *body, int ok, const char *print_key);
/* Write a JSON string to t, base64-decoded when encoding is "base64". */
void write_decoded(struct term_out *t, json_t *data, const char *encoding);
/* One NDJSON line of a streamed answer, parsed (NULL if it is not JSON); printed on our
 * stdout first when echo (--json). */
json_t *ndjson_line(const char *line, size_t len, bool echo);
/* An exec output object's stdout and stderr to ours (escaped for a terminal unless raw). */
void write_exec_output(json_t *res, bool raw);

int cmd_serve(int argc, char **argv);
int cmd_audit(int argc, char **argv);
/* A symbol of the daemon module (cmd_serve_load.c); NULL after a message. */
void *serve_module_symbol(const char *verb, const char *name);
int cmd_sandbox(int argc, char **argv);
/* cmd_process.c: sandbox spawn|ps|logs|kill|stdin (argv[0] is sub). */
int cmd_process(const char *sub, int argc, char **argv);
/* cmd_attach.c: sandbox attach ID PID (argv[i], argv[i+1]), and exec -it's session: the
 * command started on a terminal, attached, killed when we go; its exit code is ours. */
int cmd_attach(const char *sock, int argc, char **argv, int i);
int cmd_exec_tty(const char *sock, const char *id, char **argv, const agentd_kvv *env,
		 const char *workdir);
int cmd_sandbox_port(int argc, char **argv);	/* sandbox port|ports */
/* issue 12: names */
int cmd_sandbox_network(int argc, char **argv);	/* sandbox network */
/* issue 12: files — sandbox cp (cmd_sandbox_cp.c) */
int sandbox_cp(const char *socket, bool raw, const char *src, const char *dst);
/* issue 12: ttl. cmd_sandbox_timeout.c: `sandbox timeout` (argv[0] "timeout"), and the
 * --ttl, --idle, --on-expire flags it shares with `sandbox create`. */
enum { OPT_TTL = 0x300, OPT_IDLE, OPT_ON_EXPIRE };
#define EXPIRY_LONG_OPTIONS                                                                      \
	{"ttl", required_argument, NULL, OPT_TTL}, {"idle", required_argument, NULL, OPT_IDLE},  \
		{"on-expire", required_argument, NULL, OPT_ON_EXPIRE}
int cmd_sandbox_timeout(int argc, char **argv);
/* The flags' values (NULL: not given) as ttl_ms, idle_timeout_ms, on_expire of body; -1
 * after a message. */
int expiry_flags_add(json_t *body, const char *ttl, const char *idle, const char *on_expire);
/* issue 12: snapshots */
int cmd_snapshot(int argc, char **argv);	/* sandbox snapshot ls|rm */
int cmd_session(int argc, char **argv);
int cmd_image(int argc, char **argv);	/* issue 13: img-store (cmd_image.c) */
/* `agentd sandbox context|contexts|context-rm|run-code` (cmd_context.c); argv[0] is sub. */
int cmd_context(const char *sub, int argc, char **argv);
int cmd_backends(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_run(int argc, char **argv);

/* `agentd probe --security` (security_table.c): the attack table, per backend (or only
 * the backend named), as text or JSON. */
int security_probe(const char *only, bool json);

#endif
