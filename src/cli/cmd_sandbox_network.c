/* cmd_sandbox_network.c: `agentd sandbox network ID --none | --allow HOST:PORT...` — a live
 * container sandbox's network switched between none and allowlist, or its allowlist
 * replaced (docs/cli.md, PATCH /v1/sandboxes/ID/network). */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

enum { OPT_SOCKET = 0x200, OPT_JSON, OPT_NONE, OPT_ALLOW };

static void network_usage(FILE *f)
{
	fprintf(f, "usage: agentd sandbox network [--json] ID --none\n"
		   "       agentd sandbox network [--json] ID --allow HOST:PORT [--allow ...]\n"
		   "  --none    no network: connections through the egress proxy are closed now,\n"
		   "            commands started from now on cannot connect\n"
		   "  --allow   allowlist mode with exactly these entries (as network.allow): open\n"
		   "            connections to what is no longer listed are closed now\n"
		   "  prints the sandbox's network policy; ID is its id or its name\n"
		   "  --socket PATH   the daemon's socket\n");
}

int cmd_sandbox_network(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"json", no_argument, NULL, OPT_JSON},
		{"none", no_argument, NULL, OPT_NONE},
		{"allow", required_argument, NULL, OPT_ALLOW},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *socket = NULL;
	bool json = false, none = false;
	json_t *allow = json_array();
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET:
			socket = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_NONE:
			none = true;
			break;
		case OPT_ALLOW:
			json_array_append_new(allow, json_string(optarg));
			break;
		case 'h':
			network_usage(stdout);
			json_decref(allow);
			return 0;
		default:
			json_decref(allow);
			return cli_bad_option("sandbox network", c, argv);
		}
	}
	bool any = json_array_size(allow) > 0;
	if (argc - optind != 1 || none == any) {
		print_error("sandbox network: expected ID and either --none or --allow HOST:PORT... "
			    "(see agentd sandbox network --help)");
		json_decref(allow);
		return EXIT_AGENTD;
	}
	const char *id = argv[optind];
	if (strlen(id) > 64 || strchr(id, '/') || strchr(id, '?')) {
		print_error("sandbox network: bad sandbox id or name '%.64s'", id);
		json_decref(allow);
		return EXIT_AGENTD;
	}
	char path[128];
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/network", id);
	json_t *body = none ? json_pack("{s:s}", "mode", "none")
			    : json_pack("{s:s, s:o}", "mode", "allowlist", "allow", allow);
	if (none)
		json_decref(allow);
	if (json)
		return sandbox_call(socket_path_default(socket), true, "sandbox network", "PATCH",
				    path, body, 200, NULL);
	/* the policy it now runs under, one line */
	agentd_error err = {0};
	int status = 0;
	json_t *j = client_call(socket_path_default(socket), "PATCH", path, body, &status, &err);
	json_decref(body);
	if (!j) {
		print_error("sandbox network: %s", err.msg);
		return EXIT_AGENTD;
	}
	int rc = status == 200 ? 0 : client_report_error("sandbox network", status, j);
	if (!rc) {
		json_t *net = json_object_get(j, "network"), *v;
		size_t i;
		printf("%s", json_string_value(json_object_get(net, "mode")));
		json_array_foreach(json_object_get(net, "allow"), i, v)
			printf(" %s", json_string_value(v));
		putchar('\n');
	}
	json_decref(j);
	return rc;
}
