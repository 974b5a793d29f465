/* test_output.c: the JSON form of an exec output (docs/exit-codes.md#json-output: text or
 * base64 streams, null limit_hit, optional term_signal) and the capability score and
 * predicates (docs/backends.md#score). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "lib/core/core.h"

static uint8_t *dup_bytes(const void *p, size_t n)
{
	uint8_t *r = xmalloc(n);
	memcpy(r, p, n);
	return r;
}

/* Render o and parse it back, so the tests check JSON values, not formatting. */
static json_t *render(const agentd_exec_output *o, const char *backend, const char *id)
{
	_cleanup_free_ char *text = agentd_exec_output_to_json(o, backend, id);
	assert_non_null(text);
	assert_null(strchr(text, '\n'));	/* one line: NDJSON and logs take it as is */
	json_error_t je;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!j)
		print_message("%s: %s\n", text, je.text);
	assert_non_null(j);
	return j;
}

static const char *str(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);
	assert_true(json_is_string(v));
	return json_string_value(v);
}

static json_int_t num(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);
	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static bool flag(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);
	assert_true(json_is_boolean(v));
	return json_is_true(v);
}

static void text_output_has_every_spec_field(void **state __attribute__((unused)))
{
	agentd_exec_output o = {
		.exit_code = 3,
		.out = dup_bytes("hello\n", 6),
		.out_len = 6,
		.err = dup_bytes("caf\xc3\xa9", 5),
		.err_len = 5,
		.duration_ms = 42,
		.usage = { .peak_memory_bytes = 1 << 20, .cpu_time_ms = 7, .wall_time_ms = 42,
			   .bytes_written = 100, .bytes_read = 200 },
	};
	json_auto_t *j = render(&o, "container", "0123456789abcdef0123456789abcdef");

	assert_int_equal(num(j, "exit_code"), 3);
	assert_string_equal(str(j, "stdout"), "hello\n");
	assert_string_equal(str(j, "stderr"), "caf\xc3\xa9");
	assert_null(json_object_get(j, "stdout_encoding"));
	assert_null(json_object_get(j, "stderr_encoding"));
	assert_int_equal(num(j, "duration_ms"), 42);
	assert_false(flag(j, "timed_out"));
	assert_false(flag(j, "resource_limited"));
	assert_true(json_is_null(json_object_get(j, "limit_hit")));
	assert_false(flag(j, "output_truncated"));
	assert_string_equal(str(j, "backend"), "container");
	assert_string_equal(str(j, "sandbox_id"), "0123456789abcdef0123456789abcdef");
	assert_null(json_object_get(j, "term_signal"));	/* only when a signal ended it */
	/* always present: empty when the sandbox enforces every item of its policy */
	assert_true(json_is_array(json_object_get(j, "unenforced")));
	assert_int_equal(json_array_size(json_object_get(j, "unenforced")), 0);

	json_t *u = json_object_get(j, "resource_usage");
	assert_true(json_is_object(u));
	assert_int_equal(json_object_size(u), 5);
	assert_int_equal(num(u, "peak_memory_bytes"), 1 << 20);
	assert_int_equal(num(u, "cpu_time_ms"), 7);
	assert_int_equal(num(u, "wall_time_ms"), 42);
	assert_int_equal(num(u, "bytes_written"), 100);
	assert_int_equal(num(u, "bytes_read"), 200);
	assert_int_equal(json_object_size(j), 12);	/* docs/exit-codes.md, no term_signal */

	agentd_exec_output_free(&o);
	assert_null(o.out);
	assert_null(o.err);
	agentd_exec_output_free(&o);	/* zeroed: a second free is harmless */
}

static void invalid_utf8_streams_are_base64_with_encoding_key(void **state __attribute__((unused)))
{
	static const uint8_t bin[] = { 'f', 'o', 'o', 0xff, 0x00, 0xc0, 0x80 };
	agentd_exec_output o = {
		.out = dup_bytes(bin, sizeof(bin)),
		.out_len = sizeof(bin),
		.err = dup_bytes("ok", 2),
		.err_len = 2,
	};
	json_auto_t *j = render(&o, "host-direct", NULL);
	assert_string_equal(str(j, "stdout"), "Zm9v/wDAgA==");
	assert_string_equal(str(j, "stdout_encoding"), "base64");
	assert_string_equal(str(j, "stderr"), "ok");
	assert_null(json_object_get(j, "stderr_encoding"));
	agentd_exec_output_free(&o);

	/* each stream is judged on its own */
	agentd_exec_output o2 = {
		.out = dup_bytes("ok", 2),
		.out_len = 2,
		.err = dup_bytes("\xed\xa0\x80", 3),	/* a UTF-16 surrogate */
		.err_len = 3,
	};
	json_auto_t *j2 = render(&o2, "host-direct", NULL);
	assert_null(json_object_get(j2, "stdout_encoding"));
	assert_string_equal(str(j2, "stderr"), "7aCA");
	assert_string_equal(str(j2, "stderr_encoding"), "base64");
	agentd_exec_output_free(&o2);
}

static void nul_bytes_in_valid_text_stay_text(void **state __attribute__((unused)))
{
	agentd_exec_output o = { .out = dup_bytes("a\0b", 3), .out_len = 3 };
	json_auto_t *j = render(&o, "host-direct", NULL);
	json_t *v = json_object_get(j, "stdout");
	assert_int_equal(json_string_length(v), 3);
	assert_memory_equal(json_string_value(v), "a\0b", 3);
	assert_null(json_object_get(j, "stdout_encoding"));
	agentd_exec_output_free(&o);
}

static void empty_streams_are_empty_strings(void **state __attribute__((unused)))
{
	agentd_exec_output o = { 0 };
	json_auto_t *j = render(&o, NULL, NULL);
	assert_string_equal(str(j, "stdout"), "");
	assert_string_equal(str(j, "stderr"), "");
	assert_true(json_is_null(json_object_get(j, "backend")));
	assert_true(json_is_null(json_object_get(j, "sandbox_id")));
}

static void limits_timeouts_and_signals_are_reported(void **state __attribute__((unused)))
{
	static const struct {
		agentd_limit_kind k;
		const char *name;
	} kinds[] = {
		{ AGENTD_LIMIT_MEMORY, "memory" }, { AGENTD_LIMIT_PIDS, "pids" },
		{ AGENTD_LIMIT_CPU, "cpu" },	   { AGENTD_LIMIT_OUTPUT, "output" },
		{ AGENTD_LIMIT_WRITE, "write" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		agentd_exec_output o = {
			.exit_code = 137,
			.term_signal = 9,
			.resource_limited = true,
			.limit_hit = kinds[i].k,
			.output_truncated = kinds[i].k == AGENTD_LIMIT_OUTPUT,
		};
		json_auto_t *j = render(&o, "linux-native", "id");
		assert_int_equal(num(j, "exit_code"), 137);
		assert_int_equal(num(j, "term_signal"), 9);
		assert_true(flag(j, "resource_limited"));
		assert_string_equal(str(j, "limit_hit"), kinds[i].name);
		assert_int_equal(flag(j, "output_truncated"), kinds[i].k == AGENTD_LIMIT_OUTPUT);
	}

	agentd_exec_output t = { .exit_code = 124, .timed_out = true, .duration_ms = 1000 };
	json_auto_t *j = render(&t, "linux-native", "id");
	assert_int_equal(num(j, "exit_code"), 124);
	assert_true(flag(j, "timed_out"));
	assert_true(json_is_null(json_object_get(j, "limit_hit")));
}

static void counters_beyond_int64_saturate(void **state __attribute__((unused)))
{
	agentd_exec_output o = { .duration_ms = UINT64_MAX, .usage.bytes_read = UINT64_MAX };
	json_auto_t *j = render(&o, NULL, NULL);
	assert_int_equal(num(j, "duration_ms"), INT64_MAX);
	assert_int_equal(num(json_object_get(j, "resource_usage"), "bytes_read"), INT64_MAX);
}

static void null_output_gives_null(void **state __attribute__((unused)))
{
	assert_null(agentd_exec_output_to_json(NULL, "x", "y"));
	agentd_exec_output_free(NULL);
}

/* ------------------------------------------------------------ capabilities */

static void score_weights_follow_seed_001(void **state __attribute__((unused)))
{
	agentd_backend_caps c = { 0 };
	assert_int_equal(agentd_backend_score(&c), 0);
	c.filesystem_isolation = true;
	assert_int_equal(agentd_backend_score(&c), 4);
	c.process_isolation = true;
	assert_int_equal(agentd_backend_score(&c), 6);
	c.network_isolation = true;
	assert_int_equal(agentd_backend_score(&c), 8);
	c.syscall_filtering = true;
	assert_int_equal(agentd_backend_score(&c), 10);
	c.resource_limits = true;
	assert_int_equal(agentd_backend_score(&c), 11);
	/* the rest does not count */
	c.persistent_sandboxes = c.snapshots = c.available = true;
	assert_int_equal(agentd_backend_score(&c), 11);

	agentd_backend_caps only_limits = { .resource_limits = true };
	agentd_backend_caps only_net = { .network_isolation = true };
	assert_int_equal(agentd_backend_score(&only_limits), 1);
	assert_int_equal(agentd_backend_score(&only_net), 2);
}

static void fully_isolated_needs_fs_net_process_and_syscalls(void **state __attribute__((unused)))
{
	agentd_backend_caps c = {
		.filesystem_isolation = true,
		.network_isolation = true,
		.process_isolation = true,
		.syscall_filtering = true,
	};
	assert_true(agentd_caps_fully_isolated(&c));	/* limits are not isolation */
	c.network_isolation = false;
	assert_false(agentd_caps_fully_isolated(&c));
	c.network_isolation = true;
	c.process_isolation = false;
	assert_false(agentd_caps_fully_isolated(&c));
	c.process_isolation = true;
	c.syscall_filtering = false;
	assert_false(agentd_caps_fully_isolated(&c));
	c.syscall_filtering = true;
	c.filesystem_isolation = false;
	assert_false(agentd_caps_fully_isolated(&c));
}

static void soft_isolation_means_no_fs_and_no_syscall_filter(void **state __attribute__((unused)))
{
	agentd_backend_caps host = { .resource_limits = true, .network_isolation = true };
	assert_true(agentd_caps_soft_isolation(&host));
	agentd_backend_caps fs = { .filesystem_isolation = true };
	assert_false(agentd_caps_soft_isolation(&fs));
	agentd_backend_caps sc = { .syscall_filtering = true };
	assert_false(agentd_caps_soft_isolation(&sc));
}

static void caps_free_releases_lists(void **state __attribute__((unused)))
{
	agentd_backend_caps c = { 0 };
	strv_push(&c.available_profiles, "strict");
	strv_push(&c.platform_features, "landlock-abi-4");
	strv_push(&c.warnings, "no cgroup");
	agentd_backend_caps_free(&c);
	assert_int_equal(c.available_profiles.n + c.platform_features.n + c.warnings.n, 0);
	assert_null(c.warnings.v);

	agentd_sandbox_caps s = { 0 };
	strv_push(&s.readable_paths, "/usr");
	strv_push(&s.writable_paths, "/workspace");
	strv_push(&s.allowed_destinations, "a.com:443");
	strv_push(&s.blocked_syscall_categories, "mount");
	agentd_sandbox_caps_free(&s);
	assert_int_equal(s.readable_paths.n + s.writable_paths.n + s.allowed_destinations.n +
				 s.blocked_syscall_categories.n,
			 0);

	agentd_backend_health h = { 0 };
	strv_push(&h.warnings, "degraded");
	agentd_backend_health_free(&h);
	assert_int_equal(h.warnings.n, 0);
	assert_null(h.warnings.v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(text_output_has_every_spec_field),
		cmocka_unit_test(invalid_utf8_streams_are_base64_with_encoding_key),
		cmocka_unit_test(nul_bytes_in_valid_text_stay_text),
		cmocka_unit_test(empty_streams_are_empty_strings),
		cmocka_unit_test(limits_timeouts_and_signals_are_reported),
		cmocka_unit_test(counters_beyond_int64_saturate),
		cmocka_unit_test(null_output_gives_null),
		cmocka_unit_test(score_weights_follow_seed_001),
		cmocka_unit_test(fully_isolated_needs_fs_net_process_and_syscalls),
		cmocka_unit_test(soft_isolation_means_no_fs_and_no_syscall_filter),
		cmocka_unit_test(caps_free_releases_lists),
	};
	return cmocka_run_group_tests_name("output", tests, NULL, NULL);
}
