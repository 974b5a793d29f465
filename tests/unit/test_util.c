/* test_util.c: the shared helpers of util.c: string vectors, key/value lists, base64 (RFC 4648
 * vectors), UTF-8 validation (overlong, surrogates, truncation), ids and small file I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>

#include "lib/core/core.h"

static void strv_push_copies_and_keeps_a_null_terminator(void **state __attribute__((unused)))
{
	agentd_strv sv = { 0 };
	char buf[8] = "one";
	strv_push(&sv, buf);
	strcpy(buf, "xyz");	/* the vector owns its copy */
	strv_push(&sv, "two");
	strv_push(&sv, "");
	assert_int_equal(sv.n, 3);
	assert_string_equal(sv.v[0], "one");
	assert_string_equal(sv.v[1], "two");
	assert_string_equal(sv.v[2], "");
	assert_null(sv.v[3]);	/* usable as an argv */
	assert_true(strv_contains(&sv, "two"));
	assert_true(strv_contains(&sv, ""));
	assert_false(strv_contains(&sv, "xyz"));
	assert_false(strv_contains(&sv, "tw"));

	agentd_strv cp;
	strv_copy(&cp, &sv);
	assert_int_equal(cp.n, 3);
	assert_ptr_not_equal(cp.v[0], sv.v[0]);
	assert_string_equal(cp.v[0], "one");
	strv_free(&sv);
	assert_int_equal(sv.n, 0);
	assert_null(sv.v);
	assert_string_equal(cp.v[1], "two");	/* the copy outlives the original */
	strv_free(&cp);
	strv_free(&cp);	/* freed vectors are empty vectors */

	agentd_strv empty = { 0 }, cp2;
	strv_copy(&cp2, &empty);
	assert_int_equal(cp2.n, 0);
	assert_false(strv_contains(&cp2, ""));
	strv_free(&cp2);
}

static void kvv_set_replaces_or_appends(void **state __attribute__((unused)))
{
	agentd_kvv kv = { 0 };
	assert_null(kvv_get(&kv, "A"));
	kvv_set(&kv, "A", "1");
	kvv_set(&kv, "B", "2");
	kvv_set(&kv, "A", "3");	/* replace keeps position and count */
	assert_int_equal(kv.n, 2);
	assert_string_equal(kv.v[0].key, "A");
	assert_string_equal(kv.v[0].value, "3");
	assert_string_equal(kvv_get(&kv, "B"), "2");
	assert_null(kvv_get(&kv, "a"));	/* case-sensitive */

	agentd_kvv cp;
	kvv_copy(&cp, &kv);
	kvv_set(&cp, "B", "changed");
	assert_string_equal(kvv_get(&kv, "B"), "2");
	assert_string_equal(kvv_get(&cp, "B"), "changed");
	kvv_free(&kv);
	kvv_free(&cp);
	assert_int_equal(kv.n, 0);
	assert_null(kv.v);
}

static void base64_matches_rfc4648_vectors(void **state __attribute__((unused)))
{
	static const struct {
		const char *in, *out;
	} v[] = {
		{ "", "" },	    { "f", "Zg==" },	     { "fo", "Zm8=" },
		{ "foo", "Zm9v" }, { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		_cleanup_free_ char *b = base64_encode((const uint8_t *)v[i].in, strlen(v[i].in));
		assert_string_equal(b, v[i].out);
	}
	/* every alphabet edge, including + and / (not the URL-safe alphabet) */
	static const uint8_t bin[] = { 0x00, 0x10, 0x83, 0xfb, 0xff, 0xbf };
	_cleanup_free_ char *b = base64_encode(bin, sizeof(bin));
	assert_string_equal(b, "ABCD+/+/");
}

static void utf8_accepts_well_formed_text(void **state __attribute__((unused)))
{
	static const char *const ok[] = {
		"",
		"plain ascii",
		"\xc2\x80",		/* U+0080, smallest 2-byte */
		"caf\xc3\xa9",		/* é */
		"\xe0\xa0\x80",		/* U+0800, smallest 3-byte */
		"\xe2\x82\xac",		/* € */
		"\xed\x9f\xbf",		/* U+D7FF, just below the surrogates */
		"\xee\x80\x80",		/* U+E000, just above */
		"\xef\xbf\xbf",		/* U+FFFF */
		"\xf0\x90\x80\x80",	/* U+10000, smallest 4-byte */
		"\xf0\x9d\x84\x9e",	/* 𝄞 */
		"\xf4\x8f\xbf\xbf",	/* U+10FFFF, the last code point */
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		assert_true(utf8_valid((const uint8_t *)ok[i], strlen(ok[i])));
	/* NUL is a code point like any other; the length decides */
	assert_true(utf8_valid((const uint8_t *)"a\0b", 3));
	/* only len bytes are read: a sequence cut by len is judged as cut */
	assert_true(utf8_valid((const uint8_t *)"ab\xc3\xa9", 2));
	assert_false(utf8_valid((const uint8_t *)"ab\xc3\xa9", 3));
}

static void utf8_refuses_overlong_surrogates_and_truncation(void **state __attribute__((unused)))
{
	static const char *const bad[] = {
		/* overlong encodings */
		"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xf0\x80\x80\x80",
		"\xf0\x8f\xbf\xbf",
		/* UTF-16 surrogates */
		"\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80",
		/* beyond U+10FFFF */
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf7\xbf\xbf\xbf",
		/* bytes that never start a sequence */
		"\x80", "\xbf", "a\x80z", "\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80", "\xfe",
		"\xff",
		/* truncated or interrupted sequences */
		"\xc3", "a\xc3", "\xe2\x82", "\xf0\x9d\x84", "\xc3\x41", "\xe2\x28\xa1",
		"\xf0\x9d\x84\x41",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (utf8_valid((const uint8_t *)bad[i], strlen(bad[i])))
			print_message("accepted case %zu\n", i);
		assert_false(utf8_valid((const uint8_t *)bad[i], strlen(bad[i])));
	}
}

static void random_id_is_32_lowercase_hex_and_unique(void **state __attribute__((unused)))
{
	char a[AGENTD_ID_LEN], b[AGENTD_ID_LEN];
	memset(a, 'X', sizeof(a));
	random_id(a);
	random_id(b);
	assert_int_equal(strlen(a), 32);
	assert_int_equal(strspn(a, "0123456789abcdef"), 32);
	assert_string_not_equal(a, b);
}

static void xasprintf_formats(void **state __attribute__((unused)))
{
	_cleanup_free_ char *s = xasprintf("%s-%d", "sandbox", 42);
	assert_string_equal(s, "sandbox-42");
	_cleanup_free_ char *d = xstrdup(NULL);	/* NULL duplicates as "" */
	assert_string_equal(d, "");
}

static void small_files_round_trip_and_respect_the_cap(void **state __attribute__((unused)))
{
	char dir[] = "/tmp/agentd-test-util-XXXXXX";
	assert_non_null(mkdtemp(dir));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);

	/* write_file_at only writes existing files (cgroup/proc knobs), never creates */
	assert_int_equal(write_file_at(dfd, "f", "x"), -ENOENT);
	int fd = openat(dfd, "f", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(write_file_at(dfd, "f", "hello world"), 0);

	size_t len = 0;
	_cleanup_free_ char *buf = read_file_at(dfd, "f", 100, &len);
	assert_non_null(buf);
	assert_int_equal(len, 11);
	assert_string_equal(buf, "hello world");

	/* a file larger than the cap is refused, not cut */
	char big[1000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(write_file_at(dfd, "f", big), 0);
	errno = 0;
	assert_null(read_file_at(dfd, "f", 600, NULL));
	assert_int_equal(errno, EFBIG);
	assert_null(read_file_at(dfd, "missing", 100, NULL));
	assert_int_equal(errno, ENOENT);

	assert_int_equal(unlinkat(dfd, "f", 0), 0);
	close(dfd);
	assert_int_equal(rmdir(dir), 0);
}

/* The cap holds even below read_file_at's first buffer size (256 bytes). */
static void read_file_at_honours_a_small_cap(void **state __attribute__((unused)))
{
	char path[] = "/tmp/agentd-test-util-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello world", 11), 11);
	close(fd);
	errno = 0;
	char *r = read_file_at(AT_FDCWD, path, 5, NULL);
	int e = errno;
	bool refused = r == NULL;
	unlink(path);
	free(r);
	assert_true(refused);
	assert_int_equal(e, EFBIG);
}

/* A message too long for agentd_error loses its middle, never its root cause at the end. */
static void long_error_messages_keep_the_root_cause(void **state __attribute__((unused)))
{
	agentd_error err = {0};
	agentd_error_errno(&err, ENOSPC, "write %s", "/x");
	char ctx[700];
	memset(ctx, 'a', sizeof(ctx) - 1);
	ctx[sizeof(ctx) - 1] = '\0';
	agentd_error_prefix(&err, "copy %s", ctx);
	agentd_error_prefix(&err, "create sandbox: %s", ctx);
	size_t n = strlen(err.msg);
	assert_true(n < AGENTD_ERROR_MAX);
	assert_true(n > AGENTD_ERROR_MAX - 16);
	assert_int_equal(strncmp(err.msg, "create sandbox: aaa", 19), 0);
	const char *cause = "write /x: No space left on device";
	assert_string_equal(err.msg + n - strlen(cause), cause);
	assert_non_null(strstr(err.msg, " [...] "));
	assert_int_equal(err.code, ENOSPC);
	assert_true(utf8_valid((const uint8_t *)err.msg, n));

	/* cuts fall between UTF-8 sequences */
	char wide[1600] = "";
	for (size_t i = 0; i + 3 < sizeof(wide); i += 2)
		strcat(wide, "\xc3\xa9");
	agentd_error_set(&err, EINVAL, "%s%s", wide, ": root cause");
	assert_true(utf8_valid((const uint8_t *)err.msg, strlen(err.msg)));
	assert_non_null(strstr(err.msg, ": root cause"));

	/* what fits is left alone */
	agentd_error_set(&err, EINVAL, "short");
	agentd_error_prefix(&err, "ctx");
	assert_string_equal(err.msg, "ctx: short");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(strv_push_copies_and_keeps_a_null_terminator),
		cmocka_unit_test(kvv_set_replaces_or_appends),
		cmocka_unit_test(base64_matches_rfc4648_vectors),
		cmocka_unit_test(utf8_accepts_well_formed_text),
		cmocka_unit_test(utf8_refuses_overlong_surrogates_and_truncation),
		cmocka_unit_test(random_id_is_32_lowercase_hex_and_unique),
		cmocka_unit_test(xasprintf_formats),
		cmocka_unit_test(small_files_round_trip_and_respect_the_cap),
		cmocka_unit_test(read_file_at_honours_a_small_cap),
		cmocka_unit_test(long_error_messages_keep_the_root_cause),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
