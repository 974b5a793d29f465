/* fuzz_policy.c: libFuzzer target for the policy parsers (JSON policy, and the size/duration
 * syntax of the same policy's CLI flags): no input may crash, leak or hang them, every error is
 * one line of UTF-8, and every policy accepted survives emit → parse unchanged. */
#include "lib/core/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what, const char *detail)
{
	if (!ok) {
		fprintf(stderr, "fuzz_policy: %s\n%s\n", what, detail ? detail : "");
		abort();
	}
}

/* Errors go to terminals, logs and JSON responses: non-empty, UTF-8, no control bytes. */
static void check_message(const agentd_error *err)
{
	size_t n = strlen(err->msg);
	check(n > 0, "error without message", NULL);
	check(utf8_valid((const uint8_t *)err->msg, n), "error message is not UTF-8", err->msg);
	for (size_t i = 0; i < n; i++)
		check((unsigned char)err->msg[i] >= 0x20 && err->msg[i] != 0x7f,
		      "control byte in error message", err->msg);
}

static void fuzz_units(const uint8_t *data, size_t size)
{
	char s[64];
	uint64_t v;
	agentd_error err = { 0 };

	if (size >= sizeof(s))
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	if (parse_size(s, &v, &err) < 0)
		check_message(&err);
	if (parse_duration_ms(s, &v, &err) < 0)
		check_message(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	agentd_spec a, b;
	agentd_error err = { 0 };

	fuzz_units(data, size);

	agentd_spec_init(&a, AGENTD_PROFILE_STRICT);
	if (agentd_policy_parse((const char *)data, size, &a, &err) < 0) {
		check_message(&err);
		agentd_spec_free(&a);
		return 0;
	}
	check(agentd_spec_validate(&a, &err) == 0, "accepted spec fails validate", err.msg);

	char *json = agentd_policy_to_json(&a);
	check(json != NULL, "accepted spec cannot be emitted", NULL);
	agentd_spec_init(&b, AGENTD_PROFILE_STRICT);
	check(agentd_policy_parse(json, strlen(json), &b, &err) == 0, "emitted policy rejected",
	      err.msg);
	check(spec_equal(&a, &b), "parse(emit(s)) != s", json);

	/* the emitted text is a fixed point */
	char *again = agentd_policy_to_json(&b);
	check(again && strcmp(json, again) == 0, "emit(parse(emit(s))) != emit(s)", json);

	free(again);
	free(json);
	agentd_spec_free(&a);
	agentd_spec_free(&b);
	return 0;
}
