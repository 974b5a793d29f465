/* env.c: the environment a sandboxed command sees. The host environment is never passed
 * through: a fixed sane base, then the policy's variables, then the command's additions. */
#include "lib/jail/jail.h"

#include <ctype.h>

#define SANE_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

const char *env_name_forbidden(const char *name)
{
	if (!name || !*name)
		return "empty name";
	if (!(isalpha((unsigned char)name[0]) || name[0] == '_'))
		return "must start with a letter or '_'";
	for (const char *c = name; *c; c++)
		if (!(isalnum((unsigned char)*c) || *c == '_'))
			return "only letters, digits and '_' are allowed";
	/* The dynamic loader's variables would let a policy inject code into every binary
	 * the sandbox runs, agentd's own helpers included. */
	if (strncmp(name, "LD_", 3) == 0)
		return "dynamic loader variables (LD_*) cannot be set";
	return NULL;
}

char **env_prepare(const agentd_spec *spec, const agentd_kvv *extra, const char *home,
		 const char *tmpdir)
{
	agentd_kvv kv = {0};
	kvv_set(&kv, "PATH", SANE_PATH);
	kvv_set(&kv, "HOME", home ? home : "/");
	kvv_set(&kv, "TMPDIR", tmpdir ? tmpdir : "/tmp");
	kvv_set(&kv, "LANG", "C.UTF-8");
	if (spec)
		for (size_t i = 0; i < spec->environment.n; i++)
			kvv_set(&kv, spec->environment.v[i].key, spec->environment.v[i].value);
	if (extra)
		for (size_t i = 0; i < extra->n; i++)
			kvv_set(&kv, extra->v[i].key, extra->v[i].value);

	char **envp = xcalloc(kv.n + 1, sizeof(char *));
	for (size_t i = 0; i < kv.n; i++)
		envp[i] = xasprintf("%s=%s", kv.v[i].key, kv.v[i].value);
	kvv_free(&kv);
	return envp;
}

void env_free(char **envp)
{
	if (!envp)
		return;
	for (char **e = envp; *e; e++)
		free(*e);
	free(envp);
}
