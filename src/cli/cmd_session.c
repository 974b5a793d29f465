/* cmd_session.c: `agentd session create AGENT | exec AGENT SESSION CODE | rm AGENT SESSION`
 * — the agent session model of the daemon API; exec prints the code's output and passes its
 * exit code through. */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void session_usage(FILE *f)
{
	fprintf(f, "usage: agentd session COMMAND [--socket PATH] [--json] ...\n\n"
		   "  create AGENT [--backend B] [policy options]       prints the session id\n"
		   "  exec AGENT SESSION CODE [--language python|node|sh|bash] [--raw]\n"
		   "                                    CODE - reads stdin\n"
		   "  rm AGENT SESSION\n\n%s",
		policy_flags_help());
}

struct session_args {
	const char *sub, *sock, *backend, *lang;
	bool json, raw;
	struct policy_flags pf;
	int npos;
	char **pos;
};

/* The verb's flags (they may follow the positional arguments); 0, 1 after --help, -1. */
static int parse_session_args(int argc, char **argv, struct session_args *sa)
{
	enum { O_SOCKET = 0x200, O_JSON, O_BACKEND, O_LANG, O_RAW };
	static const struct option opts[] = {
		{"socket", required_argument, NULL, O_SOCKET},
		{"json", no_argument, NULL, O_JSON},
		{"backend", required_argument, NULL, O_BACKEND},
		{"language", required_argument, NULL, O_LANG},
		{"raw", no_argument, NULL, O_RAW},
		{"help", no_argument, NULL, 'h'},
		POLICY_LONG_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	agentd_error err = {0};
	int c;
	optind = 1;
	opterr = 0;
	/* no "+": options may follow the positional arguments */
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case O_SOCKET: sa->sock = optarg; break;
		case O_JSON: sa->json = true; break;
		case O_BACKEND: sa->backend = optarg; break;
		case O_LANG: sa->lang = optarg; break;
		case O_RAW: sa->raw = true; break;
		case 'h': session_usage(stdout); return 1;
		case '?': case ':': return cli_bad_option("session", c, argv);
		default:
			if (strcmp(sa->sub, "create") || policy_flags_add(&sa->pf, c, optarg, &err) < 0) {
				print_error("session %s: %s", sa->sub,
					    err.msg[0] ? err.msg
						       : "policy options are only for `session create` "
							 "(see agentd session --help)");
				return -1;
			}
		}
	}
	sa->sock = socket_path_default(sa->sock);
	sa->npos = argc - optind;
	sa->pos = argv + optind;
	return 0;
}

/* The code of an exec: as given, or stdin for "-"; a body {code, language}, or NULL. */
static json_t *exec_body(const struct session_args *sa)
{
	const char *code = sa->pos[2];
	char *buf = NULL;
	if (!strcmp(code, "-")) {
		size_t n;
		buf = (char *)read_fd_all(0, &n);
		if (!buf || strlen(buf) != n) {
			print_error("session exec: read the code from stdin: %s",
				    buf ? "contains a NUL byte" : strerror(errno));
			free(buf);
			return NULL;
		}
		code = buf;
	}
	json_t *body = json_pack("{s:s}", "code", code);
	free(buf);
	if (!body) {
		print_error("session exec: the code is not UTF-8 text");
		return NULL;
	}
	if (sa->lang)
		json_object_set_new(body, "language", json_string(sa->lang));
	return body;
}

/* One line on what is wrong with the subcommand or its arguments; -1. */
static int session_args_error(const struct session_args *sa)
{
	static const struct {
		const char *sub, *args;
		int n;
	} subs[] = {{"create", "AGENT", 1}, {"exec", "AGENT SESSION CODE", 3},
		    {"rm", "AGENT SESSION", 2}};
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		if (strcmp(sa->sub, subs[i].sub))
			continue;
		static const char *const names[] = {"AGENT", "SESSION", "CODE"};
		if (sa->npos < subs[i].n)
			print_error("session %s: %s is missing: agentd session %s %s (see agentd "
				    "session --help)",
				    sa->sub, names[sa->npos], sa->sub, subs[i].args);
		else
			print_error("session %s: unexpected argument '%s' (see agentd session "
				    "--help)",
				    sa->sub, sa->pos[subs[i].n]);
		return -1;
	}
	print_error("session: unknown command '%s' (see agentd session --help)", sa->sub);
	return -1;
}

/* The request of the subcommand: method, path, body and the status that means success;
 * -1 after a message (bad arguments, bad code). */
static int session_request(const struct session_args *sa, const char **method, char *path,
			   size_t plen, json_t **body, int *ok)
{
	agentd_error err = {0};
	*method = "POST";
	*ok = 200;
	*body = NULL;
	if (!strcmp(sa->sub, "create") && sa->npos == 1) {
		json_t *spec = policy_flags_json(&sa->pf, &err);
		if (!spec) {
			print_error("%s", err.msg);
			return -1;
		}
		*body = json_pack("{s:o}", "config", spec);
		if (sa->backend)
			json_object_set_new(*body, "backend", json_string(sa->backend));
		if (sa->pf.allow_degraded)
			json_object_set_new(*body, "allow_degraded", json_true());
		snprintf(path, plen, "/v1/agents/%.64s/sessions", sa->pos[0]);
		*ok = 201;
	} else if (!strcmp(sa->sub, "exec") && sa->npos == 3) {
		if (!(*body = exec_body(sa)))
			return -1;
		snprintf(path, plen, "/v1/agents/%.64s/sessions/%.40s/executions", sa->pos[0],
			 sa->pos[1]);
	} else if (!strcmp(sa->sub, "rm") && sa->npos == 2) {
		*method = "DELETE";
		snprintf(path, plen, "/v1/agents/%.64s/sessions/%.40s", sa->pos[0], sa->pos[1]);
	} else {
		return session_args_error(sa);
	}
	return 0;
}

/* A successful answer: JSON, the session id, or the execution's output and exit code. */
static int session_output(const struct session_args *sa, json_t *j)
{
	if (!strcmp(sa->sub, "create"))
		warn_unenforced_json(j);
	if (sa->json) {
		char *s = json_dumps(j, JSON_INDENT(2) | term_json_flags());
		puts(s);
		free(s);
		if (!strcmp(sa->sub, "exec"))
			return (int)json_integer_value(
				json_object_get(json_object_get(j, "result"), "exit_code"));
		return 0;
	}
	if (!strcmp(sa->sub, "create")) {
		puts(json_string_value(json_object_get(j, "session_id")));
	} else if (!strcmp(sa->sub, "exec")) {
		json_t *res = json_object_get(j, "result");
		write_exec_output(res, sa->raw);
		return (int)json_integer_value(json_object_get(res, "exit_code"));
	}
	return 0;
}

int cmd_session(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		session_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_AGENTD : 0;
	}
	struct session_args sa;
	memset(&sa, 0, sizeof(sa));
	sa.sub = argv[1];
	int pr = parse_session_args(argc - 1, argv + 1, &sa);
	if (pr != 0)
		return pr > 0 ? 0 : EXIT_AGENTD;
	const char *method;
	char path[256];
	json_t *body;
	int ok, status = 0;
	if (session_request(&sa, &method, path, sizeof(path), &body, &ok) < 0)
		return EXIT_AGENTD;
	agentd_error err = {0};
	json_t *j = client_call(sa.sock, method, path, body, &status, &err);
	json_decref(body);
	if (!j) {
		print_error("session %s: %s", sa.sub, err.msg);
		return EXIT_AGENTD;
	}
	int rc = status != ok ? client_report_error(sa.sub, status, j) : session_output(&sa, j);
	json_decref(j);
	return rc;
}
