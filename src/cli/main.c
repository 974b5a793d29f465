/* main.c: the agentd binary — dispatches to one file per verb; the library does the work.
 * Plugins ($AGENTD_PLUGIN_DIR or the default dir) are loaded before any verb runs. */
#include "cli/cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* meson passes <prefix>/lib/agentd/plugins (issue 15: vm-gondolin) */
#ifdef AGENTD_PLUGIN_DIR_DEFAULT
#define DEFAULT_PLUGIN_DIR AGENTD_PLUGIN_DIR_DEFAULT
#else
#define DEFAULT_PLUGIN_DIR "/usr/local/lib/agentd/plugins"
#endif

static void usage(FILE *f)
{
	fprintf(f, "agentd %s — run untrusted commands in sandboxes\n\n"
		   "usage:\n"
		   "  agentd backends [--json]\n"
		   "  agentd probe [--backend NAME] [--json]\n"
		   "  agentd run [--backend NAME|auto] [policy options] [--json] [-i] -- PROG ARGS...\n"
		   "  agentd serve [--socket PATH] [--state-dir DIR] [--listen ADDR:PORT --token-file F]\n"
		   "  agentd sandbox create|exec|ls|inspect|usage|suspend|resume|rm|snapshot|restore|cp ...\n"
		   "  agentd session create AGENT | exec AGENT SESSION CODE | rm AGENT SESSION\n"
		   "  agentd image import|ls|inspect|rm|prune|tag|export|build ...\n"
		   "  agentd audit verify [--state-dir DIR] [--json]\n"
		   "  agentd mcp [--socket PATH | --embedded] [--listen ADDR:PORT --token-file F]\n"
		   "  agentd oci [--root DIR] create|start|state|kill|delete|exec|... (runc's CLI;\n"
		   "             also the binary linked as agentd-runc)\n"
		   "  agentd version\n\n"
		   "exit codes: the command's own; 124 timed out, 125 agentd failed, 126 not\n"
		   "executable, 127 not found, 128+N killed by signal N.\n",
		AGENTD_VERSION);
}

static void load_plugins(void)
{
	const char *dir = getenv("AGENTD_PLUGIN_DIR");
	struct stat st;
	if (!dir) {
		if (stat(DEFAULT_PLUGIN_DIR, &st) < 0)
			return;
		dir = DEFAULT_PLUGIN_DIR;
	}
	agentd_error err = {0};
	if (agentd_load_plugins(dir, &err) < 0)
		print_error("warning: %s", err.msg);
}

/* issue 16: rt-cli — the binary under a runtime name (agentd-runc, or any name ending in
 * -runc the install links) is the OCI runtime: no plugins, nothing else on the way. */
static bool invoked_as_runtime(const char *argv0)
{
	const char *base = strrchr(argv0, '/');
	base = base ? base + 1 : argv0;
	size_t n = strlen(base);
	return n >= 5 && !strcmp(base + n - 5, "-runc");
}

int main(int argc, char **argv)
{
	if (argc > 0 && invoked_as_runtime(argv[0]))
		return agentd_oci_runtime_main(argc, argv);
	/* Writes to a closed pipe are reported as EPIPE, never kill agentd; the exec
	 * engine restores the default for commands. */
	signal(SIGPIPE, SIG_IGN);
	/* `run --trace-timing` times the run from here (cmd_run prints it). */
	if (argc > 2 && !strcmp(argv[1], "run"))
		for (int i = 2; i < argc && strcmp(argv[i], "--"); i++)
			if (!strcmp(argv[i], "--trace-timing") && trace_enable() == 0)
				trace_mark("main");
	if (argc < 2) {
		usage(stderr);
		return EXIT_AGENTD;
	}
	const char *verb = argv[1];
	if (!strcmp(verb, "-h") || !strcmp(verb, "--help") || !strcmp(verb, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(verb, "version") || !strcmp(verb, "--version")) {
		printf("agentd %s\n", AGENTD_VERSION);
		return 0;
	}
	load_plugins();
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} verbs[] = {
		{"backends", cmd_backends},
		{"probe", cmd_probe},
		{"run", cmd_run},
		{"serve", cmd_serve},
		{"audit", cmd_audit},
		{"sandbox", cmd_sandbox},
		{"session", cmd_session},
		/* issue 13: img-store */
		{"image", cmd_image},
		/* issue 14: mcp */
		{"mcp", cmd_mcp},
		/* issue 16: rt-cli */
		{"oci", agentd_oci_runtime_main},
	};
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verb, verbs[i].name))
			return verbs[i].fn(argc - 1, argv + 1);
	print_error("unknown command '%s' (try: agentd --help)", verb);
	return EXIT_AGENTD;
}
