/* cmd_context.c: `agentd sandbox context|contexts|context-rm|run-code` — the code contexts
 * of a sandbox through the daemon API (docs/cli.md#code-contexts, docs/contexts.md): start
 * an interpreter that keeps its state, list and delete them, run a cell in one. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OPT_SOCKET = 0x200, OPT_JSON, OPT_LANGUAGE, OPT_TIMEOUT_C, OPT_STREAM, OPT_ENV_C,
       OPT_WORKDIR_C, OPT_RAW };

struct ctx_opts {
	const char *socket;
	bool json, stream, raw;
	const char *language, *timeout, *workdir, *code;
	json_t *env;
};

static void context_usage(FILE *f)
{
	fprintf(f,
		"usage: agentd sandbox context ID --language python|node|sh|bash [--env K=V] "
		"[--workdir D]\n"
		"                                 starts a code context, prints its id (CID)\n"
		"       agentd sandbox run-code ID CID [--timeout DUR] [--stream] [--env K=V] "
		"[--raw] [-c CODE]\n"
		"                                 runs a cell (the code from -c or stdin); prints its\n"
		"                                 output, then its value; exit 0 ok, 1 it raised,\n"
		"                                 124 timed out, 137 its context was killed\n"
		"       agentd sandbox contexts ID | context-rm ID CID\n"
		"  common: [--socket PATH] [--json]\n");
}

static int parse(int argc, char **argv, struct ctx_opts *o)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"json", no_argument, NULL, OPT_JSON},
		{"language", required_argument, NULL, OPT_LANGUAGE},
		{"timeout", required_argument, NULL, OPT_TIMEOUT_C},
		{"stream", no_argument, NULL, OPT_STREAM},
		{"env", required_argument, NULL, OPT_ENV_C},
		{"workdir", required_argument, NULL, OPT_WORKDIR_C},
		{"raw", no_argument, NULL, OPT_RAW},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hc:", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET: o->socket = optarg; break;
		case OPT_JSON: o->json = true; break;
		case OPT_LANGUAGE: o->language = optarg; break;
		case OPT_TIMEOUT_C: o->timeout = optarg; break;
		case OPT_STREAM: o->stream = true; break;
		case OPT_WORKDIR_C: o->workdir = optarg; break;
		case OPT_RAW: o->raw = true; break;
		case 'c': o->code = optarg; break;
		case OPT_ENV_C:
			if (cli_env_opt(o->env, optarg) < 0)
				return -1;
			break;
		case 'h':
			context_usage(stdout);
			exit(0);
		default:
			return cli_bad_option("sandbox", c, argv);
		}
	}
	return optind;
}

/* The exit code of a run: 0 ok, 1 the cell raised (a shell cell's own status), 124 timed
 * out (the context lives), 137 the context was killed. */
static int run_exit_code(json_t *done)
{
	const char *st = json_string_value(json_object_get(done, "status"));
	json_t *ec = json_object_get(done, "exit_code");
	if (!st)
		return EXIT_AGENTD;
	if (!strcmp(st, "timeout"))
		return 124;
	if (!strcmp(st, "killed"))
		return 137;
	if (ec)
		return (int)json_integer_value(ec);
	return strcmp(st, "ok") ? 1 : 0;
}

struct run_state {
	bool json;
	int rc;
	struct term_out term[2];
};

static void print_value(struct term_out *t, json_t *bundle)
{
	json_t *txt = json_object_get(bundle, "text/plain");
	if (!json_is_string(txt))
		return;
	term_out_write(t, (const uint8_t *)json_string_value(txt), json_string_length(txt));
	term_out_write(t, (const uint8_t *)"\n", 1);
}

static void print_error_obj(struct term_out *t, json_t *e)
{
	const char *tb = json_string_value(json_object_get(e, "traceback"));
	if (!tb || !*tb)
		tb = json_string_value(json_object_get(e, "value"));
	if (tb) {
		term_out_write(t, (const uint8_t *)tb, strlen(tb));
		if (*tb && tb[strlen(tb) - 1] != '\n')
			term_out_write(t, (const uint8_t *)"\n", 1);
	}
}

static void on_event(void *ud, const char *line, size_t len)
{
	struct run_state *st = ud;
	json_t *j = ndjson_line(line, len, st->json);
	if (!j)
		return;
	json_t *v;
	if ((v = json_object_get(j, "done"))) {
		st->rc = run_exit_code(v);
	} else if ((v = json_object_get(j, "error")) && json_object_get(v, "code")) {
		print_error("sandbox run-code: %s", json_string_value(json_object_get(v, "message")));
		st->rc = EXIT_AGENTD;
	} else if (!st->json) {
		if ((v = json_object_get(j, "result")))
			print_value(&st->term[0], v);
		else if ((v = json_object_get(j, "error")))
			print_error_obj(&st->term[1], v);
		else {
			const char *name = json_string_value(json_object_get(j, "stream"));
			write_decoded(&st->term[name && !strcmp(name, "stderr") ? 1 : 0],
				      json_object_get(j, "data"),
				      json_string_value(json_object_get(j, "encoding")));
		}
	}
	json_decref(j);
}

static int do_run(struct ctx_opts *o, const char *id, const char *cid)
{
	agentd_error err = {0};
	char *code = o->code ? strdup(o->code) : NULL;
	if (!code) {
		size_t n;
		uint8_t *in = read_fd_all(0, &n);
		code = in ? strndup((const char *)in, n) : strdup("");
		free(in);
	}
	json_t *body = json_pack("{s:s}", "code", code);
	free(code);
	if (json_object_size(o->env))
		json_object_set(body, "env", o->env);
	if (o->timeout) {
		uint64_t ms;
		if (parse_duration_ms(o->timeout, &ms, &err) < 0) {
			json_decref(body);
			print_error("--timeout: %s", err.msg);
			return EXIT_AGENTD;
		}
		json_object_set_new(body, "timeout_ms", json_integer((json_int_t)ms));
	}
	if (o->stream)
		json_object_set_new(body, "stream", json_true());
	char path[160];
	snprintf(path, sizeof(path), "/v1/sandboxes/%.40s/contexts/%.40s/run", id, cid);
	struct run_state st = {.json = o->json, .rc = EXIT_AGENTD};
	term_out_init(&st.term[0], 1, o->raw);
	term_out_init(&st.term[1], 2, o->raw);
	struct http_response resp;
	int r = client_send(o->socket, "POST", path, body, &resp, o->stream ? on_event : NULL, &st,
			    &err);
	json_decref(body);
	if (r < 0) {
		print_error("sandbox run-code: %s", err.msg);
		return EXIT_AGENTD;
	}
	json_t *j = resp.status != 200 || !o->stream
			    ? json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL)
			    : NULL;
	int rc = st.rc;
	if (resp.status != 200) {
		rc = client_report_error("sandbox run-code", resp.status, j);
	} else if (!o->stream && o->json) {
		char *s = json_dumps(j, JSON_INDENT(2) | term_json_flags());
		puts(s ? s : "null");
		free(s);
		rc = run_exit_code(j);
	} else if (!o->stream) {
		write_exec_output(j, o->raw);
		json_t *v;
		size_t i;
		json_array_foreach(json_object_get(j, "results"), i, v) print_value(&st.term[0], v);
		if (json_is_object(json_object_get(j, "error")))
			print_error_obj(&st.term[1], json_object_get(j, "error"));
		rc = run_exit_code(j);
	}
	term_out_flush(&st.term[0]);
	term_out_flush(&st.term[1]);
	json_decref(j);
	http_response_free(&resp);
	return rc;
}

/* The contexts of a sandbox as a table (--json: the answer). */
static int list(struct ctx_opts *o, const char *path)
{
	if (o->json)
		return sandbox_call(o->socket, true, "contexts", "GET", path, NULL, 200, NULL);
	agentd_error err = {0};
	int status = 0;
	json_t *j = client_call(o->socket, "GET", path, NULL, &status, &err), *v;
	if (!j) {
		print_error("sandbox contexts: %s", err.msg);
		return EXIT_AGENTD;
	}
	int rc = status == 200 ? 0 : client_report_error("contexts", status, j);
	size_t i;
	if (!rc)
		printf("%-32s  %-8s %-8s %s\n", "CONTEXT", "LANGUAGE", "STATE", "CELLS");
	json_array_foreach(rc ? NULL : json_object_get(j, "contexts"), i, v)
		printf("%-32s  %-8s %-8s %lld\n", json_string_value(json_object_get(v, "id")),
		       json_string_value(json_object_get(v, "language")),
		       json_string_value(json_object_get(v, "state")),
		       (long long)json_integer_value(json_object_get(v, "cells")));
	json_decref(j);
	return rc;
}

int cmd_context(const char *sub, int argc, char **argv)
{
	struct ctx_opts o = {.env = json_object()};
	int i = parse(argc, argv, &o);
	int rc = EXIT_AGENTD;
	if (i < 0)
		goto out;
	o.socket = socket_path_default(o.socket);
	int want = !strcmp(sub, "run-code") || !strcmp(sub, "context-rm") ? 2 : 1;
	if (argc - i != want) {
		print_error("sandbox %s: expected ID%s (see agentd sandbox context --help)", sub,
			    want == 2 ? " CID" : "");
		goto out;
	}
	const char *id = argv[i], *cid = want == 2 ? argv[i + 1] : NULL;
	char path[160];
	if (!strcmp(sub, "run-code")) {
		rc = do_run(&o, id, cid);
	} else if (!strcmp(sub, "context")) {
		if (!o.language) {
			print_error("sandbox context: --language is required (python, node, sh or "
				    "bash)");
			goto out;
		}
		json_t *body = json_pack("{s:s}", "language", o.language);
		if (json_object_size(o.env))
			json_object_set(body, "env", o.env);
		if (o.workdir)
			json_object_set_new(body, "workdir", json_string(o.workdir));
		snprintf(path, sizeof(path), "/v1/sandboxes/%.40s/contexts", id);
		rc = sandbox_call(o.socket, o.json, "context", "POST", path, body, 201, "id");
	} else if (!strcmp(sub, "contexts")) {
		snprintf(path, sizeof(path), "/v1/sandboxes/%.40s/contexts", id);
		rc = list(&o, path);
	} else {
		snprintf(path, sizeof(path), "/v1/sandboxes/%.40s/contexts/%.40s", id, cid);
		rc = sandbox_call(o.socket, o.json, "context-rm", "DELETE", path, NULL, 200, "id");
	}
out:
	json_decref(o.env);
	return rc;
}
