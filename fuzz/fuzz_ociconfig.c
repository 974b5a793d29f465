/* fuzz_ociconfig.c: libFuzzer target for the OCI runtime's config.json parser (the engine's
 * text, read by a root process): no input may crash, leak or hang it, every error is one line
 * of UTF-8 naming where it is, and every config accepted holds what the jail relies on. */
#include "lib/runtime/runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what, const char *detail)
{
	if (!ok) {
		fprintf(stderr, "fuzz_ociconfig: %s\n%s\n", what, detail ? detail : "");
		abort();
	}
}

static void check_message(const agentd_error *err)
{
	size_t n = strlen(err->msg);
	check(n > 0, "error without message", NULL);
	check(!strncmp(err->msg, "config.json", 11), "error does not say where", err->msg);
	check(utf8_valid((const uint8_t *)err->msg, n), "error message is not UTF-8", err->msg);
	for (size_t i = 0; i < n; i++)
		check((unsigned char)err->msg[i] >= 0x20 && err->msg[i] != 0x7f,
		      "control byte in error message", err->msg);
}

static void check_accepted(const struct ocirt_config *c)
{
	const struct ocirt_process *p = &c->process;
	check(p->args && p->args[0], "accepted without args", NULL);
	check(p->env != NULL, "env not a vector", NULL);
	check(p->cwd && p->cwd[0] == '/', "cwd not absolute", p->cwd);
	check(c->root_path && c->root_path[0] == '/', "root not absolute", c->root_path);
	check(p->n_rlimits <= OCIRT_RLIMITS_MAX, "rlimits overflow", NULL);
	for (size_t i = 0; i < c->n_mounts; i++) {
		const struct ocirt_mount *m = &c->mounts[i];
		check(m->destination[0] == '/', "mount destination not absolute", m->destination);
		check(m->type || m->bind, "mount of no type", m->destination);
		check(!m->bind || (m->source && m->source[0] == '/'), "bind source not absolute",
		      m->destination);
	}
	for (size_t i = 0; i < c->n_devices; i++)
		check(c->devices[i].path[0] == '/', "device path not absolute", c->devices[i].path);
	for (int i = 0; i < OCIRT_NS_COUNT; i++)
		check(!c->ns_path[i] || (c->ns_wanted[i] && c->ns_path[i][0] == '/'),
		      "namespace path", c->ns_path[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ocirt_config *c = NULL;
	agentd_error err = {0};
	if (ocirt_config_parse("/bundle", (const char *)data, size, &c, &err) < 0) {
		check(c == NULL, "a failed parse returned a config", NULL);
		check_message(&err);
		return 0;
	}
	check_accepted(c);
	ocirt_config_free(c);
	return 0;
}
