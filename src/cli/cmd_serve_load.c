/* cmd_serve_load.c: `agentd serve` loads the daemon (agentd-serve.so: HTTP server, SQLite
 * state) for that verb only, so the other verbs never load libmicrohttpd and GnuTLS. */
#include "cli/cli.h"

#include <dlfcn.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#define SERVE_MODULE "agentd-serve.so"

/* Next to the binary (a build tree, or a self-contained install), else the install dir. */
static void *load_serve_module(char *tried, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *dirs[2] = {NULL, AGENTD_SERVE_MODULE_DIR};
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			dirs[0] = exe;
		}
	}
	tried[0] = '\0';
	for (size_t i = 0; i < 2; i++) {
		if (!dirs[i])
			continue;
		char path[PATH_MAX + 32];
		snprintf(path, sizeof(path), "%s/%s", dirs[i], SERVE_MODULE);
		if (access(path, R_OK) != 0) {
			size_t used = strlen(tried);
			snprintf(tried + used, len - used, "%s%s", used ? ", " : "", path);
			continue;
		}
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			snprintf(tried, len, "%s", dlerror());
			return NULL;
		}
		return h;
	}
	return NULL;
}

int cmd_serve(int argc, char **argv)
{
	char tried[2 * PATH_MAX + 64];
	void *h = load_serve_module(tried, sizeof(tried));
	if (!h) {
		print_error("serve: cannot load the daemon module %s (%s)", SERVE_MODULE, tried);
		return EXIT_AGENTD;
	}
	int (*serve_main)(int, char **) = (int (*)(int, char **))dlsym(h, "agentd_serve_main");
	if (!serve_main) {
		print_error("serve: %s has no agentd_serve_main: %s", SERVE_MODULE, dlerror());
		return EXIT_AGENTD;
	}
	return serve_main(argc, argv);
}
