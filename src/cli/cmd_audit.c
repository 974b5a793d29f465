/* cmd_audit.c: `agentd audit verify` — the audit log's hash chain recomputed, by the daemon
 * (GET /v1/audit/verify) or offline on a state dir (through the daemon module's SQLite). */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static void audit_usage(FILE *f)
{
	fprintf(f, "usage: agentd audit verify [--state-dir DIR] [--socket PATH] [--json]\n\n"
		   "  recompute the audit log's hash chain: every kept record and every seal;\n"
		   "  exit 0 intact, 1 changed (the first changed record or seal is named), 125 error\n"
		   "  --state-dir DIR  read DIR/agentd.db directly (no daemon needed)\n"
		   "  --socket PATH    else ask the daemon there ($AGENTD_SOCKET, ...)\n");
}

static void print_report(json_t *r)
{
	json_t *pruned = json_object_get(r, "pruned");
	json_int_t records = json_integer_value(json_object_get(r, "records"));
	if (json_is_true(json_object_get(r, "ok"))) {
		printf("audit chain intact: %lld records verified", (long long)records);
		if (records)
			printf(" (seq %lld..%lld)",
			       (long long)json_integer_value(json_object_get(r, "first_seq")),
			       (long long)json_integer_value(json_object_get(r, "head_seq")));
		printf(", %lld sealed segments",
		       (long long)json_integer_value(json_object_get(r, "segments")));
		if (json_is_array(pruned))
			printf(", segments %lld..%lld pruned (seals kept)",
			       (long long)json_integer_value(json_array_get(pruned, 0)),
			       (long long)json_integer_value(json_array_get(pruned, 1)));
		printf("\nhead: seq %lld sha256 %s\n",
		       (long long)json_integer_value(json_object_get(r, "head_seq")),
		       json_string_value(json_object_get(r, "head")));
		return;
	}
	json_t *e = json_object_get(r, "error");
	print_error("audit verify: chain broken: %s", json_string_value(json_object_get(e, "message")));
	if (json_is_array(pruned))
		fprintf(stderr, "(segments %lld..%lld were pruned, their seals kept)\n",
			(long long)json_integer_value(json_array_get(pruned, 0)),
			(long long)json_integer_value(json_array_get(pruned, 1)));
}

static json_t *verify_offline(const char *state_dir)
{
	char *(*verify)(const char *, char *, size_t) = (char *(*)(const char *, char *, size_t))
		serve_module_symbol("audit verify", "agentd_audit_verify_dir");
	if (!verify)
		return NULL;
	char msg[AGENTD_ERROR_MAX] = "";
	char *s = verify(state_dir, msg, sizeof(msg));
	if (!s) {
		print_error("%s", msg);
		return NULL;
	}
	json_t *r = json_loads(s, 0, NULL);
	free(s);
	return r;
}

int cmd_audit(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, 'd'},
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *state_dir = NULL, *sock = NULL;
	bool as_json = false;
	if (argc < 2 || strcmp(argv[1], "verify")) {
		audit_usage(argc > 1 && !strcmp(argv[1], "--help") ? stdout : stderr);
		return argc > 1 && !strcmp(argv[1], "--help") ? 0 : EXIT_AGENTD;
	}
	argc--;
	argv++;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			state_dir = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'j':
			as_json = true;
			break;
		case 'h':
			audit_usage(stdout);
			return 0;
		default:
			audit_usage(stderr);
			return EXIT_AGENTD;
		}
	}
	if (optind < argc) {
		audit_usage(stderr);
		return EXIT_AGENTD;
	}
	json_t *r;
	if (state_dir) {
		r = verify_offline(state_dir);
	} else {
		int status = 0;
		agentd_error err = {0};
		r = client_call(socket_path_default(sock), "GET", "/v1/audit/verify", NULL, &status,
				&err);
		if (!r) {
			print_error("audit verify: %s", err.msg);
			return EXIT_AGENTD;
		}
		if (status != 200) {
			int rc = client_report_error("audit verify", status, r);
			json_decref(r);
			return rc;
		}
	}
	if (!r)
		return EXIT_AGENTD;
	if (as_json) {
		char *s = json_dumps(r, JSON_INDENT(2));
		puts(s);
		free(s);
	} else {
		print_report(r);
	}
	int rc = json_is_true(json_object_get(r, "ok")) ? 0 : 1;
	json_decref(r);
	return rc;
}
