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
		   "  exec AGENT SESSION CODE [--language sh|python|node]  CODE - reads stdin\n"
		   "  rm AGENT SESSION\n\n%s",
		policy_flags_help());
}

int cmd_session(int argc, char **argv)
{
	enum { O_SOCKET = 0x200, O_JSON, O_BACKEND, O_LANG };
	static const struct option opts[] = {
		{"socket", required_argument, NULL, O_SOCKET},
		{"json", no_argument, NULL, O_JSON},
		{"backend", required_argument, NULL, O_BACKEND},
		{"language", required_argument, NULL, O_LANG},
		{"help", no_argument, NULL, 'h'},
		POLICY_LONG_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		session_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_AGENTD : 0;
	}
	const char *sub = argv[1];
	argc--;
	argv++;
	const char *sock = NULL, *backend = NULL, *lang = NULL;
	bool json = false;
	struct policy_flags pf;
	memset(&pf, 0, sizeof(pf));
	agentd_error err = {0};
	int c;
	optind = 1;
	/* no "+": options may follow the positional arguments */
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_SOCKET: sock = optarg; break;
		case O_JSON: json = true; break;
		case O_BACKEND: backend = optarg; break;
		case O_LANG: lang = optarg; break;
		case 'h': session_usage(stdout); return 0;
		case '?': session_usage(stderr); return EXIT_AGENTD;
		default:
			if (strcmp(sub, "create") || policy_flags_add(&pf, c, optarg, &err) < 0) {
				print_error("session %s: %s", sub,
					  err.msg[0] ? err.msg : "policy options are for create");
				return EXIT_AGENTD;
			}
		}
	}
	sock = socket_path_default(sock);
	int npos = argc - optind;
	char **pos = argv + optind;
	char path[256];
	int status = 0;
	json_t *body = NULL, *j = NULL;
	const char *method = "POST";
	int ok = 200;
	if (!strcmp(sub, "create") && npos == 1) {
		json_t *spec = policy_flags_json(&pf, &err);
		if (!spec) {
			print_error("%s", err.msg);
			return EXIT_AGENTD;
		}
		body = json_pack("{s:o}", "config", spec);
		if (backend)
			json_object_set_new(body, "backend", json_string(backend));
		snprintf(path, sizeof(path), "/v1/agents/%.64s/sessions", pos[0]);
		ok = 201;
	} else if (!strcmp(sub, "exec") && npos == 3) {
		const char *code = pos[2];
		char *buf = NULL;
		if (!strcmp(code, "-")) {
			size_t n;
			buf = (char *)read_fd_all(0, &n);
			if (!buf || strlen(buf) != n) {
				print_error("session exec: read the code from stdin: %s",
					  buf ? "contains a NUL byte" : strerror(errno));
				free(buf);
				return EXIT_AGENTD;
			}
			code = buf;
		}
		body = json_pack("{s:s}", "code", code);
		free(buf);
		if (!body) {
			print_error("session exec: the code is not UTF-8 text");
			return EXIT_AGENTD;
		}
		if (lang)
			json_object_set_new(body, "language", json_string(lang));
		snprintf(path, sizeof(path), "/v1/agents/%.64s/sessions/%.40s/executions", pos[0],
			 pos[1]);
	} else if (!strcmp(sub, "rm") && npos == 2) {
		method = "DELETE";
		snprintf(path, sizeof(path), "/v1/agents/%.64s/sessions/%.40s", pos[0], pos[1]);
	} else {
		session_usage(stderr);
		return EXIT_AGENTD;
	}
	j = client_call(sock, method, path, body, &status, &err);
	json_decref(body);
	if (!j) {
		print_error("session %s: %s", sub, err.msg);
		return EXIT_AGENTD;
	}
	int rc = 0;
	if (status != ok) {
		rc = client_report_error(sub, status, j);
	} else if (json) {
		char *s = json_dumps(j, JSON_INDENT(2));
		puts(s);
		free(s);
		if (!strcmp(sub, "exec"))
			rc = (int)json_integer_value(
				json_object_get(json_object_get(j, "result"), "exit_code"));
	} else if (!strcmp(sub, "create")) {
		puts(json_string_value(json_object_get(j, "session_id")));
	} else if (!strcmp(sub, "exec")) {
		json_t *res = json_object_get(j, "result");
		write_decoded(1, json_object_get(res, "stdout"),
			      json_string_value(json_object_get(res, "stdout_encoding")));
		write_decoded(2, json_object_get(res, "stderr"),
			      json_string_value(json_object_get(res, "stderr_encoding")));
		rc = (int)json_integer_value(json_object_get(res, "exit_code"));
	}
	json_decref(j);
	return rc;
}
