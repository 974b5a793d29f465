/* cmd_sandbox_port.c: `agentd sandbox port ID PORT [--unix] [--close]` and `agentd sandbox
 * ports ID` — a sandbox's port forwarded to the host, listed, closed (docs/cli.md, the
 * daemon's /v1/sandboxes/ID/ports). */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

enum { OPT_SOCKET = 0x200, OPT_JSON, OPT_UNIX, OPT_CLOSE };

static void port_usage(FILE *f)
{
	fprintf(f, "usage: agentd sandbox port [--unix] [--json] ID PORT   prints the host address\n"
		   "       agentd sandbox port --close ID PORT\n"
		   "       agentd sandbox ports [--json] ID\n"
		   "  --unix   a unix socket under the daemon's state dir instead of 127.0.0.1\n"
		   "  --socket PATH   the daemon's socket\n");
}

/* A port number as the API takes it: 1..65535, digits only. */
static int parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *s >= '0' && *s <= '9' && !*end && v >= 1 && v <= 65535 ? (int)v : -1;
}

static int call(const char *verb, const char *socket, const char *method, const char *path,
		json_t *body, int ok, json_t **out)
{
	agentd_error err = {0};
	int status = 0;
	json_t *j = client_call(socket, method, path, body, &status, &err);
	json_decref(body);
	if (!j) {
		print_error("sandbox %s: %s", verb, err.msg);
		return EXIT_AGENTD;
	}
	if (status != ok) {
		int rc = client_report_error(verb, status, j);
		json_decref(j);
		return rc;
	}
	*out = j;
	return 0;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | term_json_flags());
	puts(s);
	free(s);
}

static int print_ports(json_t *j, bool as_json)
{
	json_t *ports = json_object_get(j, "ports"), *p;
	size_t i;
	if (as_json) {
		print_json(ports);
		return 0;
	}
	printf("%-6s  %-40s  %s\n", "PORT", "ADDRESS", "CONNECTIONS");
	json_array_foreach(ports, i, p)
		printf("%-6d  %-40s  %d\n", (int)json_integer_value(json_object_get(p, "port")),
		       json_string_value(json_object_get(p, "address")),
		       (int)json_integer_value(json_object_get(p, "connections")));
	return 0;
}

/* argv[0] is "port" or "ports". */
int cmd_sandbox_port(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"json", no_argument, NULL, OPT_JSON},
		{"unix", no_argument, NULL, OPT_UNIX},
		{"close", no_argument, NULL, OPT_CLOSE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *socket = NULL, *verb = argv[0];
	bool as_json = false, unix_sock = false, close_it = false, list = !strcmp(verb, "ports");
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET: socket = optarg; break;
		case OPT_JSON: as_json = true; break;
		case OPT_UNIX: unix_sock = true; break;
		case OPT_CLOSE: close_it = true; break;
		case 'h': port_usage(stdout); return 0;
		default: return cli_bad_option(list ? "sandbox ports" : "sandbox port", c, argv);
		}
	}
	socket = socket_path_default(socket);
	int want = list ? 1 : 2, port = list ? 0 : -1;
	if (argc - optind != want || strlen(argv[optind]) > 64 ||
	    (!list && (port = parse_port(argv[optind + 1])) < 0)) {
		print_error("sandbox %s: expected %s (see agentd sandbox --help)", verb,
			    list ? "ID" : "ID PORT, PORT 1 to 65535");
		return EXIT_AGENTD;
	}
	if (close_it && unix_sock) {
		print_error("sandbox port: --close and --unix do not go together");
		return EXIT_AGENTD;
	}
	char path[160];
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports", argv[optind]);
	json_t *j = NULL;
	int rc;
	if (list) {
		if (!(rc = call(verb, socket, "GET", path, NULL, 200, &j)))
			print_ports(j, as_json);
	} else if (close_it) {
		snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%d", port);
		rc = call(verb, socket, "DELETE", path, NULL, 200, &j);
	} else {
		json_t *body = json_pack("{s:i}", "port", port);
		if (unix_sock)
			json_object_set_new(body, "unix", json_true());
		if (!(rc = call(verb, socket, "POST", path, body, 201, &j))) {
			if (as_json)
				print_json(j);
			else
				puts(json_string_value(json_object_get(j, "address")));
		}
	}
	json_decref(j);
	return rc;
}
