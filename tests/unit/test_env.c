/* test_env.c: env.c. The environment a command sees never carries the host's: a fixed base
 * (PATH, HOME, TMPDIR, LANG), then the spec's variables, then the command's, each name
 * once; and the names a policy may never set. */
#include "lib/core/core.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define SANE_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static size_t env_count(char **envp)
{
	size_t n = 0;
	while (envp[n])
		n++;
	return n;
}

/* The value of name in envp, failing the test when it appears more than once. */
static const char *env_get(char **envp, const char *name)
{
	size_t nl = strlen(name);
	const char *found = NULL;
	for (char **e = envp; *e; e++) {
		if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=') {
			if (found)
				fail_msg("%s appears twice in the environment", name);
			found = *e + nl + 1;
		}
	}
	return found;
}

static void base_env_only_no_host_variables(void **state __attribute__((unused)))
{
	setenv("AGENTD_TEST_HOST_SECRET", "s3cret", 1);
	setenv("LD_PRELOAD", "/tmp/evil.so", 1);
	setenv("PATH", "/host/only/bin", 1);
	setenv("HOME", "/root/host-home", 1);

	char **envp = env_prepare(NULL, NULL, NULL, NULL);
	assert_non_null(envp);
	assert_int_equal(env_count(envp), 4);
	assert_string_equal(env_get(envp, "PATH"), SANE_PATH);
	assert_string_equal(env_get(envp, "HOME"), "/");
	assert_string_equal(env_get(envp, "TMPDIR"), "/tmp");
	assert_string_equal(env_get(envp, "LANG"), "C.UTF-8");
	assert_null(env_get(envp, "AGENTD_TEST_HOST_SECRET"));
	assert_null(env_get(envp, "LD_PRELOAD"));
	env_free(envp);

	unsetenv("AGENTD_TEST_HOST_SECRET");
	unsetenv("LD_PRELOAD");
}

static void home_and_tmpdir_given(void **state __attribute__((unused)))
{
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STANDARD);
	char **envp = env_prepare(&spec, NULL, "/work", "/work/tmp");
	assert_string_equal(env_get(envp, "HOME"), "/work");
	assert_string_equal(env_get(envp, "TMPDIR"), "/work/tmp");
	assert_string_equal(env_get(envp, "PATH"), SANE_PATH);
	assert_string_equal(env_get(envp, "LANG"), "C.UTF-8");
	/* A fresh spec adds nothing of the host's either. */
	assert_int_equal(env_count(envp), 4 + spec.environment.n);
	env_free(envp);
	agentd_spec_free(&spec);
}

static void spec_then_command_override_order(void **state __attribute__((unused)))
{
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STANDARD);
	kvv_free(&spec.environment);
	kvv_set(&spec.environment, "HOME", "/from-spec");	/* spec beats the base */
	kvv_set(&spec.environment, "LANG", "en_US.UTF-8");
	kvv_set(&spec.environment, "FOO", "spec");
	kvv_set(&spec.environment, "ONLY_SPEC", "1");
	agentd_kvv cmd = {0};
	kvv_set(&cmd, "FOO", "cmd");				/* the command beats the spec */
	kvv_set(&cmd, "PATH", "/cmd/bin");			/* ... and the base */
	kvv_set(&cmd, "ONLY_CMD", "2");

	char **envp = env_prepare(&spec, &cmd, "/work", NULL);
	assert_string_equal(env_get(envp, "HOME"), "/from-spec");
	assert_string_equal(env_get(envp, "LANG"), "en_US.UTF-8");
	assert_string_equal(env_get(envp, "FOO"), "cmd");
	assert_string_equal(env_get(envp, "PATH"), "/cmd/bin");
	assert_string_equal(env_get(envp, "TMPDIR"), "/tmp");
	assert_string_equal(env_get(envp, "ONLY_SPEC"), "1");
	assert_string_equal(env_get(envp, "ONLY_CMD"), "2");
	/* Each name once: 4 base + FOO + ONLY_SPEC + ONLY_CMD. */
	assert_int_equal(env_count(envp), 7);
	env_free(envp);

	/* The command's variables alone, without a spec. */
	envp = env_prepare(NULL, &cmd, NULL, NULL);
	assert_string_equal(env_get(envp, "FOO"), "cmd");
	assert_string_equal(env_get(envp, "HOME"), "/");
	assert_int_equal(env_count(envp), 6);
	env_free(envp);

	kvv_free(&cmd);
	agentd_spec_free(&spec);
	env_free(NULL); /* safe */
}

static void empty_values_and_equals_in_values(void **state __attribute__((unused)))
{
	agentd_kvv cmd = {0};
	kvv_set(&cmd, "EMPTY", "");
	kvv_set(&cmd, "EQ", "a=b=c");
	char **envp = env_prepare(NULL, &cmd, NULL, NULL);
	assert_string_equal(env_get(envp, "EMPTY"), "");
	assert_string_equal(env_get(envp, "EQ"), "a=b=c");
	env_free(envp);
	kvv_free(&cmd);
}

static void forbidden_names(void **state __attribute__((unused)))
{
	/* The dynamic loader's variables: code injection into every binary. */
	static const char *const loader[] = {
		"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_DEBUG", "LD_BIND_NOW",
		"LD_PROFILE", "LD_", "LD_ANYTHING_NEW",
	};
	for (size_t i = 0; i < ARRAY_SIZE(loader); i++) {
		const char *why = env_name_forbidden(loader[i]);
		if (!why)
			fail_msg("%s is allowed", loader[i]);
		assert_non_null(strstr(why, "LD_"));
	}
	/* Not names at all. */
	static const char *const bad[] = {
		"", "1ABC", "A=B", "A B", "A-B", "A.B", "=", "FOO\n", "-X", "\xc3\xa9T\xc3\xa9",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (!env_name_forbidden(bad[i]))
			fail_msg("bad name \"%s\" is allowed", bad[i]);
	assert_non_null(env_name_forbidden(NULL));

	/* Ordinary names pass. */
	static const char *const ok[] = {
		"PATH", "HOME", "_", "_X", "FOO_1", "a", "LD", "LDX", "OLD_PRELOAD", "ld_preload",
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		if (env_name_forbidden(ok[i]))
			fail_msg("%s refused: %s", ok[i], env_name_forbidden(ok[i]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base_env_only_no_host_variables),
		cmocka_unit_test(home_and_tmpdir_given),
		cmocka_unit_test(spec_then_command_override_order),
		cmocka_unit_test(empty_values_and_equals_in_values),
		cmocka_unit_test(forbidden_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
