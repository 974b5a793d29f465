/* test_registry.c: the backend registry as docs/backends.md#registry specifies it —
 * aliases, normalisation, registration order, collisions, unknown names, plugins, and
 * detection by score. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentd-backend.h"

#include <errno.h>
#include <stdio.h>

static void canonical_of(const char *alias, const char *want)
{
	const char *got = agentd_canonical_backend_name(alias);
	if (!want) {
		assert_null(got);
		return;
	}
	assert_non_null(got);
	assert_string_equal(got, want);
}

static void test_host_direct_aliases(void **state)
{
	const char *aliases[] = {"none", "host", "host-direct", "host_direct", "workstation",
				 "  HOST_Direct  ", "Workstation"};
	for (size_t i = 0; i < sizeof(aliases) / sizeof(*aliases); i++) {
		canonical_of(aliases[i], "host-direct");
		agentd_backend *b = NULL;
		agentd_error err = {0};
		assert_int_equal(agentd_create_backend(aliases[i], "/tmp/agentd-test-reg", &b, &err), 0);
		assert_string_equal(agentd_backend_name(b), "host-direct");
		agentd_backend_free(b);
	}
}

static void test_linux_native_aliases(void **state)
{
	const char *aliases[] = {"linux", "native", "linux-native", "linux_native", "LANDLOCK"};
	for (size_t i = 0; i < sizeof(aliases) / sizeof(*aliases); i++)
		canonical_of(aliases[i], "linux-native");
}

static void test_unknown_and_empty_names(void **state)
{
	canonical_of("unknown-backend", NULL);
	canonical_of("", NULL);
	canonical_of("   ", NULL);
	canonical_of(NULL, NULL);
	agentd_backend *b = NULL;
	agentd_error err = {0};
	assert_int_equal(agentd_create_backend("unknown-backend", NULL, &b, &err), -1);
	assert_null(b);
	assert_non_null(strstr(err.msg, "unknown isolation backend 'unknown-backend'"));
	assert_non_null(strstr(err.msg, "host-direct"));
	assert_non_null(strstr(err.msg, "linux-native"));
}

static void test_registration_order(void **state)
{
	size_t n = 0;
	const char *const *names = agentd_available_backends(&n);
	assert_true(n >= 2);
	assert_string_equal(names[0], "host-direct");
	assert_string_equal(names[1], "linux-native");
}

static int custom_factory(const char *work_root, agentd_backend **out, agentd_error *err)
{
	static const char *const none[] = {NULL};
	(void)none;
	/* a custom provider may wrap a built-in one (a plugin adding policy to host-direct) */
	return agentd_create_backend("host-direct", work_root, out, err);
}

static void test_register_custom_provider(void **state)
{
	agentd_error err = {0};
	const char *aliases[] = {"My_Provider-Alias", "", NULL};
	assert_int_equal(agentd_register_backend("Test-Provider", aliases, custom_factory, &err), 0);
	canonical_of("test_provider", "test-provider");
	canonical_of("my-provider-alias", "test-provider");
	agentd_backend *b = NULL;
	assert_int_equal(agentd_create_backend("MY_PROVIDER_ALIAS", NULL, &b, &err), 0);
	assert_string_equal(agentd_backend_name(b), "host-direct");
	agentd_backend_free(b);

	size_t n = 0;
	const char *const *names = agentd_available_backends(&n);
	assert_string_equal(names[n - 1], "test-provider");
}

static void test_collisions_rejected(void **state)
{
	agentd_error err = {0};
	const char *steal_host[] = {"host", NULL};
	assert_int_equal(agentd_register_backend("test-collision", steal_host, custom_factory, &err),
			 -1);
	assert_non_null(strstr(err.msg, "already registered"));
	assert_non_null(strstr(err.msg, "host-direct"));
	/* nothing of the failed registration remains */
	canonical_of("test-collision", NULL);

	agentd_error_clear(&err);
	assert_int_equal(agentd_register_backend("LINUX_NATIVE", NULL, custom_factory, &err), -1);
	assert_non_null(strstr(err.msg, "already registered"));

	agentd_error_clear(&err);
	assert_int_equal(agentd_register_backend("landlock", NULL, custom_factory, &err), -1);
	assert_non_null(strstr(err.msg, "already registered for 'linux-native'"));

	agentd_error_clear(&err);
	assert_int_equal(agentd_register_backend("  ", NULL, custom_factory, &err), -1);
	assert_non_null(strstr(err.msg, "cannot be empty"));
}

static void test_detect_best_backend(void **state)
{
	agentd_error warn = {0};
	agentd_backend *best = agentd_detect_best_backend("/tmp/agentd-test-reg", &warn);
	assert_non_null(best);
	agentd_backend_caps best_caps;
	assert_int_equal(agentd_backend_probe(best, &best_caps, NULL), 0);
	assert_true(best_caps.available);
	unsigned best_score = agentd_backend_score(&best_caps);

	/* no available backend scores higher than the one picked */
	size_t n = 0;
	const char *const *names = agentd_available_backends(&n);
	for (size_t i = 0; i < n; i++) {
		agentd_backend *b = NULL;
		if (agentd_create_backend(names[i], "/tmp/agentd-test-reg", &b, NULL) < 0)
			continue;
		agentd_backend_caps caps;
		if (agentd_backend_probe(b, &caps, NULL) == 0 && caps.available)
			assert_true(agentd_backend_score(&caps) <= best_score);
		agentd_backend_caps_free(&caps);
		agentd_backend_free(b);
	}
	agentd_backend_caps_free(&best_caps);
	agentd_backend_free(best);
}

/* What a spec asks for (docs/policy.md#enforcement): the profiles' limits always; the
 * network, seccomp and run_as items only when set; a bind mount only when remapped. */
static void test_spec_items(void **state)
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	uint32_t m = agentd_spec_items(&s);
	static const agentd_policy_item strict[] = {
		AGENTD_ITEM_MEMORY, AGENTD_ITEM_PIDS, AGENTD_ITEM_CPU, AGENTD_ITEM_FILESYSTEM,
		AGENTD_ITEM_NETWORK_NONE, AGENTD_ITEM_SECCOMP, AGENTD_ITEM_WALL_TIME,
	};
	for (size_t i = 0; i < sizeof(strict) / sizeof(strict[0]); i++)
		assert_true(m & AGENTD_ITEM_BIT(strict[i]));
	assert_false(m & AGENTD_ITEM_BIT(AGENTD_ITEM_RUN_AS));
	assert_false(m & AGENTD_ITEM_BIT(AGENTD_ITEM_BIND_MOUNTS));
	assert_false(m & AGENTD_ITEM_BIT(AGENTD_ITEM_NETWORK_ALLOWLIST));
	free(s.seccomp_profile);
	s.seccomp_profile = strdup("none");
	s.network.mode = AGENTD_NET_ALLOWLIST;
	s.run_as_uid = s.run_as_gid = (int64_t)getegid() + 1;
	s.limits.cpu_quota_pct = 0;
	m = agentd_spec_items(&s);
	assert_false(m & AGENTD_ITEM_BIT(AGENTD_ITEM_SECCOMP));
	assert_false(m & AGENTD_ITEM_BIT(AGENTD_ITEM_NETWORK_NONE));
	assert_false(m & AGENTD_ITEM_BIT(AGENTD_ITEM_CPU));	/* weight 100, no quota */
	assert_true(m & AGENTD_ITEM_BIT(AGENTD_ITEM_NETWORK_ALLOWLIST));
	assert_true(m & AGENTD_ITEM_BIT(AGENTD_ITEM_RUN_AS));
	s.run_as_uid = geteuid();
	s.run_as_gid = getegid();
	assert_false(agentd_spec_items(&s) & AGENTD_ITEM_BIT(AGENTD_ITEM_RUN_AS));
	agentd_spec_free(&s);
	assert_string_equal(agentd_policy_item_name(AGENTD_ITEM_NETWORK_NONE), "network_none");
	assert_null(agentd_policy_item_name(AGENTD_ITEM_COUNT));
}

static void test_plugin_loading(void **state)
{
	const char *dir = getenv("AGENTD_TEST_PLUGIN_DIR");
	if (!dir)
		skip();
	agentd_error err = {0};
	assert_int_equal(agentd_load_plugins(dir, &err), 1);
	canonical_of("test-plugin", "test-plugin");
	canonical_of("tp_alias", "test-plugin");
	agentd_backend *b = NULL;
	assert_int_equal(agentd_create_backend("TP-ALIAS", NULL, &b, &err), 0);
	assert_string_equal(agentd_backend_name(b), "test-plugin");
	agentd_backend_caps caps;
	assert_int_equal(agentd_backend_probe(b, &caps, &err), 0);
	assert_true(caps.available);
	agentd_backend_caps_free(&caps);

	/* It states no policy item it enforces: a create is refused before it is called,
	 * naming the items; allowed to degrade, the create reaches the plugin. */
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	agentd_sandbox *sb = NULL;
	assert_int_equal(agentd_backend_create_sandbox(b, &spec, &sb, &err), -1);
	assert_int_equal(err.code, ENOTSUP);
	assert_non_null(strstr(err.msg, "backend test-plugin cannot enforce memory limit 512M, "
					"process limit 64"));
	assert_non_null(strstr(err.msg, "the backend does not say it enforces it"));
	assert_null(strstr(err.msg, "creates no sandboxes"));
	agentd_strv un;
	assert_int_equal(agentd_backend_unenforced(b, &spec, &un, &err), 0);
	assert_true(un.n >= 3);
	assert_non_null(strstr(un.v[0], "memory: "));
	for (size_t i = 0; i < un.n; i++)
		free(un.v[i]);
	free(un.v);
	agentd_create_opts degrade = {.allow_degraded = true};
	agentd_error_clear(&err);
	assert_int_equal(agentd_backend_create_sandbox_opts(b, &spec, &degrade, &sb, &err), -1);
	assert_non_null(strstr(err.msg, "creates no sandboxes"));
	agentd_spec_free(&spec);
	agentd_backend_free(b);

	agentd_error_clear(&err);
	assert_int_equal(agentd_load_plugins("/nonexistent-agentd-plugins", &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent-agentd-plugins"));
}

/* A plugin built for another backend ABI, or without saying which, is refused before its
 * init runs: the message names both versions, and nothing is registered. */
static void test_plugin_abi_refused(void **state)
{
	const char *other = getenv("AGENTD_TEST_PLUGIN_DIR_OTHER_ABI");
	const char *none = getenv("AGENTD_TEST_PLUGIN_DIR_NO_ABI");
	if (!other || !none)
		skip();
	agentd_error err = {0};
	assert_int_equal(agentd_load_plugins(other, &err), -1);
	assert_int_equal(err.code, ENOEXEC);
	char want[160];
	snprintf(want, sizeof(want), "built for backend ABI version %u, this agentd has version %u",
		 AGENTD_BACKEND_ABI_VERSION + 7, AGENTD_BACKEND_ABI_VERSION);
	assert_non_null(strstr(err.msg, want));
	assert_null(agentd_canonical_backend_name("test-plugin-other-abi"));

	agentd_error_clear(&err);
	assert_int_equal(agentd_load_plugins(none, &err), -1);
	assert_non_null(strstr(err.msg, "no AGENTD_PLUGIN_ABI"));
	assert_null(agentd_canonical_backend_name("test-plugin-no-abi"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_direct_aliases),
		cmocka_unit_test(test_linux_native_aliases),
		cmocka_unit_test(test_unknown_and_empty_names),
		cmocka_unit_test(test_registration_order),
		cmocka_unit_test(test_register_custom_provider),
		cmocka_unit_test(test_collisions_rejected),
		cmocka_unit_test(test_detect_best_backend),
		cmocka_unit_test(test_spec_items),
		cmocka_unit_test(test_plugin_loading),
		cmocka_unit_test(test_plugin_abi_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
