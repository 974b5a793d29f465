/* test_plugin.c: a third-party backend built as a .so, loaded by agentd_load_plugins() in
 * test_registry: it registers itself from agentd_plugin_init(). */
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

static const agentd_backend_ops tp_ops = {
	.name = "test-plugin",
	.probe = tp_probe,
	.create_sandbox = tp_create,
};

static int tp_factory(const char *work_root, agentd_backend **out, agentd_error *err)
{
	(void)err;
	*out = agentd_backend_alloc(&tp_ops, work_root);
	return 0;
}

AGENTD_PLUGIN_ABI;

int agentd_plugin_init(void);
int agentd_plugin_init(void)
{
	static const char *const aliases[] = {"tp_alias", NULL};
	return agentd_register_backend("test-plugin", aliases, tp_factory, NULL);
}
