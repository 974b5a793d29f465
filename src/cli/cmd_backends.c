/* cmd_backends.c: `agentd backends` — registered backends in registration order with
 * their aliases, availability on this host and auto-detection score. */
#include "cli/cli.h"

#include <jansson.h>
#include <string.h>

int cmd_backends(int argc, char **argv)
{
	bool json = false;
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:jh", opts, NULL)) != -1) {
		if (c == 'j') {
			json = true;
		} else if (c == 'h') {
			printf("usage: agentd backends [--json]\n");
			return 0;
		} else {
			cli_bad_option("backends", c, argv);
			return EXIT_AGENTD;
		}
	}
	if (optind < argc) {
		print_error("backends: unexpected argument '%s'", argv[optind]);
		return EXIT_AGENTD;
	}

	size_t n;
	const char *const *names = agentd_available_backends(&n);
	json_t *arr = json_array();
	if (!json)
		printf("%-14s %-34s %-10s %s\n", "NAME", "ALIASES", "AVAILABLE", "SCORE");
	for (size_t i = 0; i < n; i++) {
		agentd_backend *b = NULL;
		agentd_error err = {0};
		agentd_backend_caps caps;
		memset(&caps, 0, sizeof(caps));
		bool avail = false;
		unsigned score = 0;
		const char *reason = "";
		if (agentd_create_backend(names[i], NULL, &b, &err) == 0 &&
		    agentd_backend_probe(b, &caps, &err) == 0) {
			avail = caps.available;
			score = agentd_backend_score(&caps);
			reason = caps.unavailable_reason;
		} else {
			reason = err.msg;
		}
		char aliases[256] = "";
		json_t *ja = json_array();
		const char *const *al = agentd_backend_aliases(names[i]);
		for (size_t k = 0; al && al[k]; k++) {
			size_t l = strlen(aliases);
			snprintf(aliases + l, sizeof(aliases) - l, "%s%s", k ? "," : "", al[k]);
			json_array_append_new(ja, json_string(al[k]));
		}
		if (json) {
			json_t *o = json_pack("{s:s, s:o, s:b, s:i}", "name", names[i], "aliases",
					      ja, "available", avail, "score", (int)score);
			if (!avail && reason[0])
				json_object_set_new(o, "reason", json_string(reason));
			json_array_append_new(arr, o);
		} else {
			json_decref(ja);
			printf("%-14s %-34s %-10s %u%s%s\n", names[i], aliases, avail ? "yes" : "no",
			       score, !avail && reason[0] ? "  " : "", !avail ? reason : "");
		}
		agentd_backend_caps_free(&caps);
		agentd_backend_free(b);
	}
	if (json) {
		char *s = json_dumps(arr, JSON_INDENT(2));
		puts(s);
		free(s);
	}
	json_decref(arr);
	return 0;
}
