/* cmd_serve_load.c: `agentd serve` loads the daemon (agentd-serve.so: HTTP server, SQLite
 * state) for that verb only, so the other verbs never load libmicrohttpd and GnuTLS;
 * `agentd audit verify --state-dir` loads it for the SQLite state. */
#include "cli/cli.h"

#include <dlfcn.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#define SERVE_MODULE "agentd-serve.so"

/* Next to the binary (a build tree), else where `meson install` put it relative to the
 * binary (AGENTD_SERVE_MODULE_REL: from $bindir to $libdir/agentd, so that an install
 * moved or staged under a DESTDIR finds its own module), else the configured install dir. */
static void *load_serve_module(char *tried, size_t len)
{
	char exe[PATH_MAX], rel[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *dirs[3] = {NULL, NULL, AGENTD_SERVE_MODULE_DIR};
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			dirs[0] = exe;
			if (AGENTD_SERVE_MODULE_REL[0]) {
				snprintf(rel, sizeof(rel), "%s/%s", exe, AGENTD_SERVE_MODULE_REL);
				dirs[1] = rel;
			}
		}
	}
	tried[0] = '\0';
	for (size_t i = 0; i < 3; i++) {
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

void *serve_module_symbol(const char *verb, const char *name)
{
	char tried[2 * PATH_MAX + 64];
	void *h = load_serve_module(tried, sizeof(tried));
	if (!h) {
		print_error("%s: cannot load the daemon module %s (%s)", verb, SERVE_MODULE, tried);
		return NULL;
	}
	void *sym = dlsym(h, name);
	if (!sym)
		print_error("%s: %s has no %s: %s", verb, SERVE_MODULE, name, dlerror());
	return sym;
}

int cmd_serve(int argc, char **argv)
{
	int (*serve_main)(int, char **) =
		(int (*)(int, char **))serve_module_symbol("serve", "agentd_serve_main");
	return serve_main ? serve_main(argc, argv) : EXIT_AGENTD;
}

/* issue 14: mcp — `agentd mcp` lives in the serve module too (its HTTP transport is
 * libmicrohttpd's, --embedded runs the daemon). */
int cmd_mcp(int argc, char **argv)
{
	int (*mcp_main)(int, char **) =
		(int (*)(int, char **))serve_module_symbol("mcp", "agentd_mcp_main");
	return mcp_main ? mcp_main(argc, argv) : EXIT_AGENTD;
}
