/* cmd_sandbox_timeout.c: `agentd sandbox timeout ID --ttl DUR --idle DUR --on-expire A` — a
 * live sandbox's ttl and idle timeout changed (POST /v1/sandboxes/ID/timeout), and the same
 * flags of `sandbox create` as API fields (docs/cli.md, docs/api.md#timeouts). */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

enum { OPT_SOCKET = 0x200, OPT_JSON };

static void timeout_usage(FILE *f)
{
	fprintf(f, "usage: agentd sandbox timeout [--ttl DUR] [--idle DUR] [--on-expire ACTION]\n"
		   "                              [--json] ID\n"
		   "  --ttl DUR          the sandbox's lifetime from now (0: none)\n"
		   "  --idle DUR         its idle timeout (0: none)\n"
		   "  --on-expire A      destroy (the default) or suspend\n"
		   "  --socket PATH      the daemon's socket\n");
}

int expiry_flags_add(json_t *body, const char *ttl, const char *idle, const char *on_expire)
{
	const char *const flag[2] = {"--ttl", "--idle"}, *const field[2] = {"ttl_ms",
									 "idle_timeout_ms"};
	const char *const val[2] = {ttl, idle};
	for (int i = 0; i < 2; i++) {
		agentd_error err = {0};
		uint64_t ms;
		if (!val[i])
			continue;
		if (parse_duration_ms(val[i], &ms, &err) < 0) {
			print_error("%s: %s", flag[i], err.msg);
			return -1;
		}
		json_object_set_new(body, field[i], json_integer((json_int_t)ms));
	}
	if (on_expire && strcmp(on_expire, "destroy") && strcmp(on_expire, "suspend")) {
		print_error("--on-expire: expected destroy or suspend, got '%s'", on_expire);
		return -1;
	}
	if (on_expire)
		json_object_set_new(body, "on_expire", json_string(on_expire));
	return 0;
}

/* argv[0] is "timeout". */
int cmd_sandbox_timeout(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"json", no_argument, NULL, OPT_JSON},
		EXPIRY_LONG_OPTIONS,
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *socket = NULL, *ttl = NULL, *idle = NULL, *on_expire = NULL;
	bool json = false;
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
		case OPT_TTL:
			ttl = optarg;
			break;
		case OPT_IDLE:
			idle = optarg;
			break;
		case OPT_ON_EXPIRE:
			on_expire = optarg;
			break;
		case 'h':
			timeout_usage(stdout);
			return 0;
		default:
			cli_bad_option("sandbox timeout", c, argv);
			return EXIT_AGENTD;
		}
	}
	if (argc - optind != 1 || strlen(argv[optind]) > 64) {
		print_error("sandbox timeout: expected one sandbox ID (see agentd sandbox timeout "
			    "--help)");
		return EXIT_AGENTD;
	}
	if (!ttl && !idle && !on_expire) {
		print_error("sandbox timeout: nothing to change: give --ttl, --idle or --on-expire");
		return EXIT_AGENTD;
	}
	json_t *body = json_object();
	if (expiry_flags_add(body, ttl, idle, on_expire) < 0) {
		json_decref(body);
		return EXIT_AGENTD;
	}
	char path[128];
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/timeout", argv[optind]);
	agentd_error err = {0};
	int status = 0;
	json_t *j = client_call(socket_path_default(socket), "POST", path, body, &status, &err);
	json_decref(body);
	if (!j) {
		print_error("sandbox timeout: %s", err.msg);
		return EXIT_AGENTD;
	}
	int rc = status == 200 ? 0 : client_report_error("sandbox timeout", status, j);
	if (!rc) {
		/* the sandbox's timeouts as they now are (null: none) */
		static const char *const keys[] = {"ttl_ms", "expires_at_ms", "idle_timeout_ms",
						   "idle_deadline_ms", "on_expire"};
		json_t *o = json ? json_incref(j) : json_object();
		for (size_t i = 0; !json && i < ARRAY_SIZE(keys); i++)
			json_object_set(o, keys[i], json_object_get(j, keys[i]));
		char *s = json_dumps(o, (json ? JSON_INDENT(2) : JSON_COMPACT) | term_json_flags());
		puts(s);
		free(s);
		json_decref(o);
	}
	json_decref(j);
	return rc;
}
