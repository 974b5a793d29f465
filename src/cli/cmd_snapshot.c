/* cmd_snapshot.c: `agentd sandbox snapshot ls [ID]` and `agentd sandbox snapshot rm SNAPSHOT...`
 * — the daemon's durable snapshots listed and deleted (docs/cli.md, docs/api.md#snapshots);
 * `sandbox snapshot ID [NAME]` and `sandbox create --from-snapshot` are cmd_sandbox.c's. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

enum { OPT_SOCKET = 0x200, OPT_JSON };

static void snapshot_usage(FILE *f)
{
	fprintf(f, "usage: agentd sandbox snapshot ID [NAME]          prints the snapshot id\n"
		   "       agentd sandbox snapshot ls [--json] [ID]   every snapshot, or ID's\n"
		   "       agentd sandbox snapshot rm SNAPSHOT...     by id or name\n"
		   "  Snapshots outlive their sandbox: a sandbox made with\n"
		   "  `agentd sandbox create --from-snapshot SNAPSHOT` starts from one.\n"
		   "  --socket PATH   the daemon's socket\n");
}

static int list(const char *socket, bool as_json, const char *id)
{
	char path[160];
	if (id)
		snprintf(path, sizeof(path), "/v1/sandboxes/%.64s/snapshots", id);
	else
		snprintf(path, sizeof(path), "/v1/snapshots");
	agentd_error err = {0};
	int status = 0;
	json_t *j = client_call(socket, "GET", path, NULL, &status, &err);
	if (!j) {
		print_error("sandbox snapshot ls: %s", err.msg);
		return EXIT_AGENTD;
	}
	int rc = status == 200 ? 0 : client_report_error("snapshot ls", status, j);
	json_t *snaps = json_object_get(j, "snapshots"), *s;
	size_t i;
	if (!rc && as_json) {
		char *out = json_dumps(snaps, JSON_INDENT(2) | term_json_flags());
		puts(out);
		free(out);
	} else if (!rc) {
		printf("%-32s  %-20s  %-32s  %12s\n", "ID", "NAME", "SANDBOX", "BYTES");
		json_array_foreach(snaps, i, s) {
			const char *name = json_string_value(json_object_get(s, "name"));
			printf("%-32s  %-20s  %-32s  %12lld\n",
			       json_string_value(json_object_get(s, "id")), name ? name : "-",
			       json_string_value(json_object_get(s, "sandbox_id")),
			       (long long)json_integer_value(json_object_get(s, "size_bytes")));
		}
	}
	json_decref(j);
	return rc;
}

/* argv[0] is "snapshot", argv[1] "ls" or "rm". */
int cmd_snapshot(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"json", no_argument, NULL, OPT_JSON},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *socket = NULL, *verb = argv[1];
	bool as_json = false;
	int c;
	optind = 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET: socket = optarg; break;
		case OPT_JSON: as_json = true; break;
		case 'h': snapshot_usage(stdout); return 0;
		default: return cli_bad_option("sandbox snapshot", c, argv);
		}
	}
	socket = socket_path_default(socket);
	int n = argc - optind;
	if (!strcmp(verb, "ls")) {
		if (n > 1) {
			print_error("sandbox snapshot ls: expected at most one sandbox ID");
			return EXIT_AGENTD;
		}
		return list(socket, as_json, n ? argv[optind] : NULL);
	}
	if (n < 1) {
		print_error("sandbox snapshot rm: expected SNAPSHOT... (ids or names)");
		return EXIT_AGENTD;
	}
	int rc = 0;
	for (int i = optind; i < argc; i++) {
		char path[160];
		snprintf(path, sizeof(path), "/v1/snapshots/%.64s", argv[i]);
		int r = sandbox_call(socket, as_json, "snapshot rm", "DELETE", path, NULL, 200, "id");
		if (r)
			rc = r;
	}
	return rc;
}
