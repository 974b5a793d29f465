/* cli.h: what the agentd binary's verbs share: the policy flags of run (and later sandbox
 * create / session create), error printing, and the verb entry points. */
#ifndef AGENTD_CLI_H
#define AGENTD_CLI_H

#include "common/common.h"
#include "agentd-proxy.h"

#include <getopt.h>
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
		{"allow-degraded", no_argument, NULL, OPT_ALLOW_DEGRADED}

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



/* client.c: the daemon API over its unix socket. */
#include <jansson.h>
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
/* Write a JSON string to fd, base64-decoded when encoding is "base64". */
void write_decoded(int fd, json_t *data, const char *encoding);

int cmd_serve(int argc, char **argv);
int cmd_sandbox(int argc, char **argv);
int cmd_session(int argc, char **argv);
int cmd_backends(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_run(int argc, char **argv);

/* `agentd probe --security` (security_table.c): the attack table, per backend (or only
 * the backend named), as text or JSON. */
int security_probe(const char *only, bool json);

#endif
