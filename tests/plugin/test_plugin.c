/* test_plugin.c: a third-party backend built as a .so, loaded by agentd_load_plugins() in
 * test_registry: it registers itself from agentd_plugin_init(). Built twice more, once for
 * another backend ABI version and once with none, which the loader must refuse. */
#include "agentd-backend.h"

#include <string.h>

static int tp_probe(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err)
{
	(void)b;
	(void)err;
	caps->available = true;
	caps->resource_limits = true;
	return 0;
}

static int tp_create(agentd_backend *b, const agentd_spec *spec, agentd_sandbox **out,
		     agentd_error *err)
{
	(void)b;
	(void)spec;
	(void)out;
	return agentd_error_set(err, 95, "test-plugin creates no sandboxes");
}

#ifndef TEST_PLUGIN_NAME
#define TEST_PLUGIN_NAME "test-plugin"
#endif

static const agentd_backend_ops tp_ops = {
	.name = TEST_PLUGIN_NAME,
	.probe = tp_probe,
	.create_sandbox = tp_create,
};

static int tp_factory(const char *work_root, agentd_backend **out, agentd_error *err)
{
	(void)err;
	*out = agentd_backend_alloc(&tp_ops, work_root);
	return 0;
}

#if defined(TEST_PLUGIN_OTHER_ABI)
/* Built as if against another agentd-backend.h: the loader must refuse it. */
const unsigned agentd_plugin_abi_version = AGENTD_BACKEND_ABI_VERSION + 7;
#elif !defined(TEST_PLUGIN_NO_ABI)
AGENTD_PLUGIN_ABI;
#endif

int agentd_plugin_init(void);
int agentd_plugin_init(void)
{
#ifdef TEST_PLUGIN_NAME_SET
	return agentd_register_backend(TEST_PLUGIN_NAME, NULL, tp_factory, NULL);
#else
	static const char *const aliases[] = {"tp_alias", NULL};
	return agentd_register_backend("test-plugin", aliases, tp_factory, NULL);
#endif
}
