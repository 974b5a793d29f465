/* test_parse.c: the size ("512M", "1GiB") and duration ("500ms", "1m30s") parsers the CLI
 * flags use: what each accepts, and the exact error for what it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/core/core.h"

#define KiB 1024ULL
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define TiB (1024 * GiB)

static void size_is_at(const char *s, uint64_t want, const char *file, int line)
{
	uint64_t v = 12345;
	agentd_error err = { 0 };
	int r = parse_size(s, &v, &err);
	if (r < 0)
		print_message("\"%s\": %s\n", s, err.msg);
	_assert_int_equal(r, 0, file, line);
	_assert_int_equal(v, want, file, line);
}
#define size_is(s, want) size_is_at(s, want, __FILE__, __LINE__)

/* Fails with exactly msg and leaves *out alone. */
static void size_fails_at(const char *s, const char *msg, const char *file, int line)
{
	uint64_t v = 12345;
	agentd_error err = { 0 };
	_assert_int_equal(parse_size(s, &v, &err), -1, file, line);
	_assert_int_equal(err.code, EINVAL, file, line);
	_assert_string_equal(err.msg, msg, file, line);
	_assert_int_equal(v, 12345, file, line);
}
#define size_fails(s, msg) size_fails_at(s, msg, __FILE__, __LINE__)

static void duration_is_at(const char *s, uint64_t want, const char *file, int line)
{
	uint64_t v = 12345;
	agentd_error err = { 0 };
	int r = parse_duration_ms(s, &v, &err);
	if (r < 0)
		print_message("\"%s\": %s\n", s, err.msg);
	_assert_int_equal(r, 0, file, line);
	_assert_int_equal(v, want, file, line);
}
#define duration_is(s, want) duration_is_at(s, want, __FILE__, __LINE__)

static void duration_fails_at(const char *s, const char *msg, const char *file, int line)
{
	uint64_t v = 12345;
	agentd_error err = { 0 };
	_assert_int_equal(parse_duration_ms(s, &v, &err), -1, file, line);
	_assert_int_equal(err.code, EINVAL, file, line);
	_assert_string_equal(err.msg, msg, file, line);
	_assert_int_equal(v, 12345, file, line);
}
#define duration_fails(s, msg) duration_fails_at(s, msg, __FILE__, __LINE__)

#define SIZE_SYNTAX \
	"expected a number with an optional binary unit K, M, G or T (e.g. 512M, 1GiB, 1.5G)"
#define DUR_SYNTAX \
	"expected a number with a unit ms, s, m, h or d (e.g. 500ms, 2s, 1m30s, 1.5h); " \
	"a bare number is seconds"

/* ------------------------------------------------------------ sizes */

static void size_bare_numbers_are_bytes(void **state __attribute__((unused)))
{
	size_is("0", 0);
	size_is("1", 1);
	size_is("1048576", 1048576);
	size_is("18446744073709551615", UINT64_MAX);
	size_is("007", 7);
	size_is("10b", 10);
	size_is("10B", 10);
}

static void size_units_are_binary_multiples_in_any_spelling(void **state __attribute__((unused)))
{
	size_is("10k", 10 * KiB);
	size_is("10K", 10 * KiB);
	size_is("10KB", 10 * KiB);
	size_is("10KiB", 10 * KiB);
	size_is("10kib", 10 * KiB);
	size_is("10Ki", 10 * KiB);
	size_is("512M", 512 * MiB);
	size_is("512m", 512 * MiB);
	size_is("512MB", 512 * MiB);
	size_is("1GiB", GiB);
	size_is("1g", GiB);
	size_is("1G", GiB);
	size_is("2T", 2 * TiB);
	size_is("2tib", 2 * TiB);
	size_is("16777215T", 16777215 * TiB);	/* just below 2^64 */
}

static void size_fractions_scale_and_round_down(void **state __attribute__((unused)))
{
	size_is("1.5G", GiB + GiB / 2);
	size_is("1.5GiB", GiB + GiB / 2);
	size_is("0.5K", 512);
	size_is("1.1K", 1126);		/* 1126.4 */
	size_is("0.25m", 256 * KiB);
	size_is("1.000000000000000000001K", 1024);	/* digits past 18 are read, not used */
}

static void size_refuses_garbage_with_the_input_quoted(void **state __attribute__((unused)))
{
	size_fails("", "invalid size \"\": empty");
	size_fails("-1", "invalid size \"-1\": must not be negative");
	size_fails("-1G", "invalid size \"-1G\": must not be negative");
	size_fails("+1", "invalid size \"+1\": " SIZE_SYNTAX);
	size_fails("abc", "invalid size \"abc\": " SIZE_SYNTAX);
	size_fails("G", "invalid size \"G\": " SIZE_SYNTAX);
	size_fails(" 1G", "invalid size \" 1G\": " SIZE_SYNTAX);
	size_fails("1G ", "invalid size \"1G \": " SIZE_SYNTAX);
	size_fails("1 G", "invalid size \"1 G\": " SIZE_SYNTAX);
	size_fails("1X", "invalid size \"1X\": " SIZE_SYNTAX);
	size_fails("1GG", "invalid size \"1GG\": " SIZE_SYNTAX);
	size_fails("1iB", "invalid size \"1iB\": " SIZE_SYNTAX);
	size_fails("1GBi", "invalid size \"1GBi\": " SIZE_SYNTAX);
	size_fails("1P", "invalid size \"1P\": " SIZE_SYNTAX);
	size_fails(".5G", "invalid size \".5G\": " SIZE_SYNTAX);
	size_fails("1.G", "invalid size \"1.G\": " SIZE_SYNTAX);
	size_fails("1..5G", "invalid size \"1..5G\": " SIZE_SYNTAX);
	size_fails("1,5G", "invalid size \"1,5G\": " SIZE_SYNTAX);
	size_fails("0x10", "invalid size \"0x10\": " SIZE_SYNTAX);
	size_fails("1e3", "invalid size \"1e3\": " SIZE_SYNTAX);
	size_fails("1.5", "invalid size \"1.5\": a fraction needs a unit (e.g. 1.5G)");
	size_fails("1.5B", "invalid size \"1.5B\": a fraction needs a unit (e.g. 1.5G)");
	size_fails("a\"b\n", "invalid size \"a\\\"b\\x0a\": " SIZE_SYNTAX);
	size_fails(NULL, "invalid size (null): missing");
}

static void size_refuses_overflow(void **state __attribute__((unused)))
{
	size_fails("18446744073709551616", "invalid size \"18446744073709551616\": too large");
	size_fails("99999999999999999999999", "invalid size \"99999999999999999999999\": too large");
	size_fails("16777216T", "invalid size \"16777216T\": too large");
	size_fails("17179869184G", "invalid size \"17179869184G\": too large");
	size_fails("16777216.5T", "invalid size \"16777216.5T\": too large");
	size_is("16777215.5T", 16777215 * TiB + TiB / 2);
}

static void size_quotes_long_input_shortened(void **state __attribute__((unused)))
{
	char in[200], want[300];
	memset(in, '9', sizeof(in) - 2);
	in[sizeof(in) - 2] = 'X';
	in[sizeof(in) - 1] = '\0';
	snprintf(want, sizeof(want), "invalid size \"%.64s...\": %s", in, SIZE_SYNTAX);
	size_fails(in, want);
}

static void size_errors_stay_valid_utf8(void **state __attribute__((unused)))
{
	/* text is quoted as is, stray bytes as \xNN, and a cut never splits a character */
	size_fails("\xc3\xa9", "invalid size \"\xc3\xa9\": " SIZE_SYNTAX);
	size_fails("1\xff\xc3", "invalid size \"1\\xff\\xc3\": " SIZE_SYNTAX);
	char in[2 * 40 + 1], want[300];
	for (int i = 0; i < 40; i++)
		memcpy(in + 2 * i, "\xc3\xa9", 2);
	in[80] = '\0';
	snprintf(want, sizeof(want), "invalid size \"%.64s...\": %s", in, SIZE_SYNTAX);
	size_fails(in, want);
	assert_true(utf8_valid((const uint8_t *)want, strlen(want)));
}

/* ------------------------------------------------------------ durations */

static void duration_units(void **state __attribute__((unused)))
{
	duration_is("500ms", 500);
	duration_is("2s", 2000);
	duration_is("1m", 60000);
	duration_is("1h", 3600000);
	duration_is("1d", 86400000);
	duration_is("0ms", 0);
	duration_is("2S", 2000);
	duration_is("500MS", 500);
}

static void duration_bare_number_is_seconds(void **state __attribute__((unused)))
{
	duration_is("0", 0);
	duration_is("250", 250000);
	duration_is("1.5", 1500);
}

static void duration_fractions_round_down_to_ms(void **state __attribute__((unused)))
{
	duration_is("1.5s", 1500);
	duration_is("0.5m", 30000);
	duration_is("1.5h", 5400000);
	duration_is("0.0015s", 1);
	duration_is("1.9ms", 1);
}

static void duration_compound_parts_add_up(void **state __attribute__((unused)))
{
	duration_is("1m30s", 90000);
	duration_is("1h2m3s4ms", 3723004);
	duration_is("2s2s", 4000);
}

static void duration_refuses_garbage(void **state __attribute__((unused)))
{
	duration_fails("", "invalid duration \"\": empty");
	duration_fails("-1s", "invalid duration \"-1s\": must not be negative");
	duration_fails("s", "invalid duration \"s\": " DUR_SYNTAX);
	duration_fails("1x", "invalid duration \"1x\": " DUR_SYNTAX);
	duration_fails("1sec", "invalid duration \"1sec\": " DUR_SYNTAX);
	duration_fails("1us", "invalid duration \"1us\": " DUR_SYNTAX);
	duration_fails("1 s", "invalid duration \"1 s\": " DUR_SYNTAX);
	duration_fails("1s ", "invalid duration \"1s \": " DUR_SYNTAX);
	duration_fails("1m30", "invalid duration \"1m30\": " DUR_SYNTAX);
	duration_fails("1s-1s", "invalid duration \"1s-1s\": " DUR_SYNTAX);
	duration_fails(".5s", "invalid duration \".5s\": " DUR_SYNTAX);
	duration_fails("1.s", "invalid duration \"1.s\": " DUR_SYNTAX);
	duration_fails("+1s", "invalid duration \"+1s\": " DUR_SYNTAX);
	duration_fails(NULL, "invalid duration (null): missing");
}

static void duration_refuses_overflow(void **state __attribute__((unused)))
{
	duration_fails("18446744073709551616ms",
		       "invalid duration \"18446744073709551616ms\": too large");
	duration_fails("18446744073709552s", "invalid duration \"18446744073709552s\": too large");
	duration_fails("213503982335d", "invalid duration \"213503982335d\": too large");
	duration_fails("18446744073709551615ms1ms",
		       "invalid duration \"18446744073709551615ms1ms\": too large");
	duration_is("18446744073709551615ms", UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(size_bare_numbers_are_bytes),
		cmocka_unit_test(size_units_are_binary_multiples_in_any_spelling),
		cmocka_unit_test(size_fractions_scale_and_round_down),
		cmocka_unit_test(size_refuses_garbage_with_the_input_quoted),
		cmocka_unit_test(size_refuses_overflow),
		cmocka_unit_test(size_quotes_long_input_shortened),
		cmocka_unit_test(size_errors_stay_valid_utf8),
		cmocka_unit_test(duration_units),
		cmocka_unit_test(duration_bare_number_is_seconds),
		cmocka_unit_test(duration_fractions_round_down_to_ms),
		cmocka_unit_test(duration_compound_parts_add_up),
		cmocka_unit_test(duration_refuses_garbage),
		cmocka_unit_test(duration_refuses_overflow),
	};
	return cmocka_run_group_tests_name("parse", tests, NULL, NULL);
}
