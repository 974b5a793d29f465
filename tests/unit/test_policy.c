/* test_policy.c: the JSON policy contract (docs/policy.md): what is accepted, the exact
 * error for what is not, profile presets, the emitter round trip, spec validate/copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>

#include "lib/core/core.h"

/* Policies are written with ' for " so that the tests stay readable. */
static char *q(const char *s)
{
	char *r = xstrdup(s);
	for (char *p = r; *p; p++)
		if (*p == '\'')
			*p = '"';
	return r;
}

#define MiB (1024ULL * 1024)
#define GiB (1024ULL * MiB)

static void parse_ok_at(const char *policy, agentd_spec *out, const char *file, int line)
{
	_cleanup_free_ char *json = q(policy);
	agentd_error err = { 0 };
	int r = agentd_policy_parse(json, strlen(json), out, &err);
	if (r != 0)
		print_message("unexpected error for %s: %s\n", json, err.msg);
	_assert_int_equal(r, 0, file, line);
}
#define parse_ok(p, s) parse_ok_at(p, s, __FILE__, __LINE__)

/* Fails with exactly msg, and leaves a spec that held another policy untouched. */
static void parse_fails_at(const char *policy, size_t len, const char *msg, const char *file,
			   int line)
{
	_cleanup_free_ char *json = q(policy);
	agentd_spec spec, before;
	agentd_error err = { 0 };

	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	kvv_set(&spec.labels, "marker", "kept");
	spec.limits.max_processes = 7;
	agentd_spec_copy(&before, &spec, NULL);

	int r = agentd_policy_parse(json, len ? len : strlen(json), &spec, &err);
	if (r == 0)
		print_message("parse of %s succeeded, expected: %s\n", json, msg);
	_assert_int_equal(r, -1, file, line);
	_assert_int_equal(err.code, EINVAL, file, line);
	_assert_string_equal(err.msg, msg, file, line);
	_assert_true(spec_equal(&spec, &before), "spec unchanged", file, line);
	agentd_spec_free(&spec);
	agentd_spec_free(&before);
}
#define parse_fails(p, msg) parse_fails_at(p, 0, msg, __FILE__, __LINE__)

/* For jansson's own messages: only our "line L column C: " framing is ours to assert. */
static void syntax_error_at(const char *policy, size_t len, const char *needle,
			    const char *file, int line)
{
	_cleanup_free_ char *json = q(policy);
	agentd_spec spec;
	agentd_error err = { 0 };

	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	_assert_int_equal(agentd_policy_parse(json, len ? len : strlen(json), &spec, &err), -1,
			  file, line);
	_assert_true(strncmp(err.msg, "line ", 5) == 0 && strstr(err.msg, " column ") &&
			     strstr(err.msg, needle),
		     err.msg, file, line);
	agentd_spec_free(&spec);
}
#define syntax_error(p, needle) syntax_error_at(p, 0, needle, __FILE__, __LINE__)

static void assert_default_limits(const agentd_limits *l)
{
	assert_int_equal(l->max_memory_bytes, 536870912);
	assert_int_equal(l->max_cpu_time_ms, 60000);
	assert_int_equal(l->max_wall_time_ms, 120000);
	assert_int_equal(l->max_processes, 64);
	assert_int_equal(l->max_open_files, 256);
	assert_int_equal(l->max_output_bytes, 10485760);
	assert_int_equal(l->max_write_bytes, 104857600);
	assert_int_equal(l->cpu_weight, 100);
	assert_int_equal(l->cpu_quota_pct, 200);
}

/* ------------------------------------------------------------ defaults and profiles */

static void empty_policy_is_strict_with_spec_defaults(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_PERMISSIVE);
	parse_ok("{}", &s);
	assert_int_equal(s.profile, AGENTD_PROFILE_STRICT);
	assert_string_equal(s.workdir, "/workspace");
	assert_int_equal(s.allowed_paths_ro.n, 0);
	assert_int_equal(s.allowed_paths_rw.n, 0);
	assert_int_equal(s.n_bind_mounts, 0);
	assert_int_equal(s.network.mode, AGENTD_NET_NONE);
	assert_int_equal(s.network.allow.n, 0);
	assert_int_equal(s.environment.n, 0);
	assert_default_limits(&s.limits);
	assert_string_equal(s.seccomp_profile, "default");
	assert_int_equal(s.labels.n, 0);
	assert_int_equal(s.run_as_uid, -1);
	assert_int_equal(s.run_as_gid, -1);
	agentd_spec_free(&s);
}

static void standard_profile_is_allowlist_with_empty_list(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok("{'profile': 'standard'}", &s);
	assert_int_equal(s.profile, AGENTD_PROFILE_STANDARD);
	assert_int_equal(s.network.mode, AGENTD_NET_ALLOWLIST);
	assert_int_equal(s.network.allow.n, 0);
	assert_default_limits(&s.limits);
	agentd_spec_free(&s);
}

static void permissive_is_host_network_and_larger_limits(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok("{'profile': 'permissive'}", &s);
	assert_int_equal(s.profile, AGENTD_PROFILE_PERMISSIVE);
	assert_int_equal(s.network.mode, AGENTD_NET_HOST);
	assert_int_equal(s.limits.max_memory_bytes, 2 * GiB);
	assert_int_equal(s.limits.max_cpu_time_ms, 600000);
	assert_int_equal(s.limits.max_wall_time_ms, 1800000);
	assert_int_equal(s.limits.max_processes, 256);
	assert_int_equal(s.limits.max_open_files, 1024);
	assert_int_equal(s.limits.max_output_bytes, 64 * MiB);
	assert_int_equal(s.limits.max_write_bytes, 1 * GiB);
	assert_int_equal(s.limits.cpu_weight, 100);
	assert_int_equal(s.limits.cpu_quota_pct, 400);
	agentd_spec_free(&s);
}

static void profile_applies_first_wherever_it_is_written(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok("{'limits': {'max_processes': 10}, 'network': {'mode': 'none'},"
		 " 'profile': 'permissive'}",
		 &s);
	assert_int_equal(s.limits.max_processes, 10);			/* refined */
	assert_int_equal(s.limits.max_memory_bytes, 2 * GiB);		/* from the profile */
	assert_int_equal(s.network.mode, AGENTD_NET_NONE);		/* refined */
	agentd_spec_free(&s);
}

static void profile_must_be_a_known_name(void **state __attribute__((unused)))
{
	const char *m = "profile: expected one of \"strict\", \"standard\", \"permissive\"";
	parse_fails("{'profile': 'custom'}", m);
	parse_fails("{'profile': 'Strict'}", m);
	parse_fails("{'profile': 1}", m);
	parse_fails("{'profile': null}", m);
}

/* ------------------------------------------------------------ every key */

static const char full_policy[] =
	"{'profile': 'standard',"
	" 'workdir': '/work/dir',"
	" 'allowed_paths_ro': ['/opt/data', '/srv/ro'],"
	" 'allowed_paths_rw': ['/tmp/out'],"
	" 'bind_mounts': [{'source': '/host/a', 'target': '/a', 'readonly': false},"
	"                 {'source': '/host/b', 'target': '/b', 'readonly': true},"
	"                 {'source': '/host/c', 'target': '/c'}],"
	" 'network': {'mode': 'allowlist', 'allow': ['pypi.org:443', '*.github.com:443',"
	"             '10.0.0.0/8', '192.168.1.0/24:8080', '[::1]:443', 'fd00::/8']},"
	" 'environment': {'FOO': 'bar', '_X1': '', 'PATH': '/opt/bin:/usr/bin'},"
	" 'limits': {'max_memory_bytes': 1048576, 'max_cpu_time_ms': 1,"
	"            'max_wall_time_ms': 2, 'max_processes': 1, 'max_open_files': 3,"
	"            'max_output_bytes': 0, 'max_write_bytes': 0, 'cpu_weight': 10000,"
	"            'cpu_quota_pct': 100000},"
	" 'seccomp_profile': '/etc/agentd/seccomp.json',"
	" 'labels': {'team': 'infra', 'odd key': 'v\\u00e9'},"
	" 'run_as': {'uid': 1000, 'gid': 100}}";

static void every_key_is_accepted_with_a_valid_value(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok(full_policy, &s);
	assert_int_equal(s.profile, AGENTD_PROFILE_STANDARD);
	assert_string_equal(s.workdir, "/work/dir");
	assert_int_equal(s.allowed_paths_ro.n, 2);
	assert_string_equal(s.allowed_paths_ro.v[0], "/opt/data");
	assert_string_equal(s.allowed_paths_ro.v[1], "/srv/ro");
	assert_int_equal(s.allowed_paths_rw.n, 1);
	assert_string_equal(s.allowed_paths_rw.v[0], "/tmp/out");
	assert_int_equal(s.n_bind_mounts, 3);
	assert_string_equal(s.bind_mounts[0].source, "/host/a");
	assert_string_equal(s.bind_mounts[0].target, "/a");
	assert_false(s.bind_mounts[0].readonly);
	assert_true(s.bind_mounts[1].readonly);
	assert_true(s.bind_mounts[2].readonly);	/* omitted readonly: read-only */
	assert_int_equal(s.network.mode, AGENTD_NET_ALLOWLIST);
	assert_int_equal(s.network.allow.n, 6);
	assert_string_equal(s.network.allow.v[1], "*.github.com:443");
	assert_string_equal(s.network.allow.v[5], "fd00::/8");
	assert_int_equal(s.environment.n, 3);
	assert_string_equal(kvv_get(&s.environment, "FOO"), "bar");
	assert_string_equal(kvv_get(&s.environment, "_X1"), "");
	assert_string_equal(kvv_get(&s.environment, "PATH"), "/opt/bin:/usr/bin");
	assert_int_equal(s.limits.max_memory_bytes, 1048576);
	assert_int_equal(s.limits.max_cpu_time_ms, 1);
	assert_int_equal(s.limits.max_wall_time_ms, 2);
	assert_int_equal(s.limits.max_processes, 1);
	assert_int_equal(s.limits.max_open_files, 3);
	assert_int_equal(s.limits.max_output_bytes, 0);
	assert_int_equal(s.limits.max_write_bytes, 0);
	assert_int_equal(s.limits.cpu_weight, 10000);
	assert_int_equal(s.limits.cpu_quota_pct, 100000);
	assert_string_equal(s.seccomp_profile, "/etc/agentd/seccomp.json");
	assert_string_equal(kvv_get(&s.labels, "team"), "infra");
	assert_string_equal(kvv_get(&s.labels, "odd key"), "v\xc3\xa9");
	assert_int_equal(s.run_as_uid, 1000);
	assert_int_equal(s.run_as_gid, 100);
	assert_int_equal(agentd_spec_validate(&s, NULL), 0);
	agentd_spec_free(&s);
}

static void seccomp_profile_is_default_none_or_absolute_path(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok("{'seccomp_profile': 'none'}", &s);
	assert_string_equal(s.seccomp_profile, "none");
	parse_ok("{'seccomp_profile': 'default'}", &s);
	assert_string_equal(s.seccomp_profile, "default");
	agentd_spec_free(&s);

	const char *m = "seccomp_profile: expected \"default\", \"none\" or an absolute path";
	parse_fails("{'seccomp_profile': 'strict.json'}", m);
	parse_fails("{'seccomp_profile': '/etc/../x.json'}", m);
	parse_fails("{'seccomp_profile': ''}", m);
	parse_fails("{'seccomp_profile': 1}", "seccomp_profile: expected string");
}

static void run_as_takes_both_ids_or_null(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok("{'run_as': {'uid': 0, 'gid': 0}}", &s);
	assert_int_equal(s.run_as_uid, 0);
	assert_int_equal(s.run_as_gid, 0);
	parse_ok("{'run_as': {'gid': 4294967294, 'uid': 4294967294}}", &s);
	assert_int_equal(s.run_as_uid, 4294967294LL);
	assert_int_equal(s.run_as_gid, 4294967294LL);
	parse_ok("{'run_as': null}", &s);
	assert_int_equal(s.run_as_uid, -1);
	assert_int_equal(s.run_as_gid, -1);
	agentd_spec_free(&s);

	parse_fails("{'run_as': {'uid': 1}}", "run_as.gid: missing");
	parse_fails("{'run_as': {'gid': 1}}", "run_as.uid: missing");
	parse_fails("{'run_as': {'uid': -1, 'gid': 0}}",
		    "run_as.uid: expected integer in 0..4294967294");
	parse_fails("{'run_as': {'uid': 0, 'gid': 4294967295}}",
		    "run_as.gid: expected integer in 0..4294967294");
	parse_fails("{'run_as': {'uid': '0', 'gid': 0}}",
		    "run_as.uid: expected integer in 0..4294967294");
	parse_fails("{'run_as': {'uid': 0.0, 'gid': 0}}",
		    "run_as.uid: expected integer in 0..4294967294");
	parse_fails("{'run_as': 1000}", "run_as: expected object {\"uid\", \"gid\"} or null");
	parse_fails("{'run_as': {'uid': 1, 'gid': 1, 'groups': []}}", "run_as.groups: unknown key");
}

/* ------------------------------------------------------------ paths */

static void paths_must_be_absolute_without_dotdot(void **state __attribute__((unused)))
{
	parse_fails("{'workdir': 'workspace'}", "workdir: expected absolute path");
	parse_fails("{'workdir': ''}", "workdir: expected absolute path");
	parse_fails("{'workdir': '/a/../etc'}",
		    "workdir: expected absolute path without \"..\" components");
	parse_fails("{'workdir': '/a/..'}",
		    "workdir: expected absolute path without \"..\" components");
	parse_fails("{'allowed_paths_ro': ['/usr', '/opt', 'rel/path']}",
		    "allowed_paths_ro[2]: expected absolute path");
	parse_fails("{'allowed_paths_rw': ['/..']}",
		    "allowed_paths_rw[0]: expected absolute path without \"..\" components");
	parse_fails("{'bind_mounts': [{'source': 'src', 'target': '/t'}]}",
		    "bind_mounts[0].source: expected absolute path");
	parse_fails("{'bind_mounts': [{'source': '/s', 'target': '/t'},"
		    " {'source': '/s', 'target': '//x/../y'}]}",
		    "bind_mounts[1].target: expected absolute path without \"..\" components");

	/* ".." only as a whole component; "." and "//" are harmless */
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok("{'workdir': '/a/..b/c../..././/d/'}", &s);
	assert_string_equal(s.workdir, "/a/..b/c../..././/d/");
	agentd_spec_free(&s);
}

static void paths_longer_than_path_max_are_refused(void **state __attribute__((unused)))
{
	char *policy = xmalloc(PATH_MAX + 64);
	strcpy(policy, "{'workdir': '");
	size_t n = strlen(policy);
	memset(policy + n, 'a', PATH_MAX);
	policy[n] = '/';
	strcpy(policy + n + PATH_MAX, "'}");
	parse_fails(policy, "workdir: path too long (at most 4095 bytes)");
	free(policy);
}

static void strings_with_nul_are_refused(void **state __attribute__((unused)))
{
	/* escaped NUL: jansson refuses it without JSON_ALLOW_NUL */
	syntax_error("{'workdir': '/a\\u0000b'}", "\\u0000");
	syntax_error("{'env\\u0000ironment': {}}", "NUL");
	/* a raw NUL byte inside the given length */
	static const char raw[] = "{\"workdir\": \"/a\0b\"}";
	agentd_spec s;
	agentd_error err;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	assert_int_equal(agentd_policy_parse(raw, sizeof(raw) - 1, &s, &err), -1);
	assert_true(strncmp(err.msg, "line 1 column ", 14) == 0);
	assert_string_equal(s.workdir, "/workspace");
	agentd_spec_free(&s);
}

static void invalid_utf8_is_a_syntax_error(void **state __attribute__((unused)))
{
	syntax_error("{'workdir': '/a\xff'}", "unable to decode byte 0xff");
}

/* ------------------------------------------------------------ bind mounts */

static void bind_mounts_errors_name_the_element(void **state __attribute__((unused)))
{
	parse_fails("{'bind_mounts': [{'source': '/s'}]}", "bind_mounts[0].target: missing");
	parse_fails("{'bind_mounts': [{'target': '/t'}]}", "bind_mounts[0].source: missing");
	parse_fails("{'bind_mounts': [{'source': '/s', 'target': '/t'}, {}]}",
		    "bind_mounts[1].source: missing");
	parse_fails("{'bind_mounts': [{'source': '/s', 'target': '/t', 'rw': true}]}",
		    "bind_mounts[0].rw: unknown key");
	parse_fails("{'bind_mounts': [{'source': '/s', 'target': '/t', 'readonly': 'yes'}]}",
		    "bind_mounts[0].readonly: expected boolean");
	parse_fails("{'bind_mounts': [{'source': 1, 'target': '/t'}]}",
		    "bind_mounts[0].source: expected string");
	parse_fails("{'bind_mounts': ['/s:/t']}", "bind_mounts[0]: expected object");
	parse_fails("{'bind_mounts': {'source': '/s', 'target': '/t'}}",
		    "bind_mounts: expected array of objects");
}

/* ------------------------------------------------------------ network */

static void network_allow_accepts_every_documented_form(void **state __attribute__((unused)))
{
	static const char *const ok[] = {
		"example.com:443", "localhost:80", "a-b.c-d.example:1", "pypi.org:65535",
		"*.github.com:443", "*.internal:8080", "1.2.3.4:443", "1.2.3.4",
		"10.0.0.0/8", "0.0.0.0/0", "192.168.0.0/16:5432", "[::1]:443", "[::1]",
		"fd00::/8", "::1", "2001:db8::1", "[2001:db8::/32]:443", "::/0",
		"[::ffff:1.2.3.4]:80",
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		char policy[256];
		agentd_spec s;
		snprintf(policy, sizeof(policy),
			 "{'network': {'mode': 'allowlist', 'allow': ['%s']}}", ok[i]);
		agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
		parse_ok(policy, &s);
		assert_string_equal(s.network.allow.v[0], ok[i]);
		agentd_spec_free(&s);
	}
}

static void network_allow_refuses_malformed_entries(void **state __attribute__((unused)))
{
	static const struct {
		const char *entry, *reason;
	} bad[] = {
		{ "", "empty" },
		{ "example.com", "expected host:port, *.domain:port or CIDR[:port]" },
		{ "example.com:", "invalid port (1..65535)" },
		{ "example.com:0", "invalid port (1..65535)" },
		{ "example.com:65536", "invalid port (1..65535)" },
		{ "example.com:443x", "invalid port (1..65535)" },
		{ "example.com:-1", "invalid port (1..65535)" },
		{ "example.com:100000", "invalid port (1..65535)" },
		{ ":443", "invalid host name" },
		{ "-bad.com:443", "invalid host name" },
		{ "bad-.com:443", "invalid host name" },
		{ "a..b:443", "invalid host name" },
		{ "under_score.com:443", "invalid host name" },
		{ "1.2.3:80", "invalid host name" },
		{ "1.2.3.256:80", "invalid host name" },
		{ "*:443", "invalid host name" },
		{ "*.:443", "invalid domain after \"*.\"" },
		{ "**.a.com:443", "invalid host name" },
		{ "a.*.com:443", "invalid host name" },
		{ "10.0.0.0/33", "invalid prefix length (0..32)" },
		{ "10.0.0.0/", "invalid prefix length (0..32)" },
		{ "10.0.0/8", "invalid IPv4 address" },
		{ "10.0.0.0/8:0", "invalid port (1..65535)" },
		{ "fd00::/129", "invalid prefix length (0..128)" },
		{ "fd00::1:443:x", "invalid IPv6 address (with a port, write [addr]:port)" },
		{ "[::1", "missing ']'" },
		{ "[::1]443", "expected ':port' after ']'" },
		{ "[::1]:", "invalid port (1..65535)" },
		{ "[example.com]:443", "invalid IPv6 address" },
		{ "[1.2.3.4]:443", "invalid IPv6 address" },
		{ "[]:443", "invalid IPv6 address" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char policy[256], msg[256];
		snprintf(policy, sizeof(policy),
			 "{'network': {'mode': 'allowlist', 'allow': ['x.org:1', '%s']}}",
			 bad[i].entry);
		snprintf(msg, sizeof(msg), "network.allow[1]: invalid entry \"%s\": %s",
			 bad[i].entry, bad[i].reason);
		parse_fails(policy, msg);
	}
}

static void network_host_only_with_permissive_profile(void **state __attribute__((unused)))
{
	const char *m = "network.mode: \"host\" shares the host's network and needs profile "
			"\"permissive\"; use \"allowlist\" for controlled egress";
	parse_fails("{'network': {'mode': 'host'}}", m);
	parse_fails("{'profile': 'standard', 'network': {'mode': 'host'}}", m);
	/* the key order does not matter: validation sees the whole policy */
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok("{'network': {'mode': 'host'}, 'profile': 'permissive'}", &s);
	assert_int_equal(s.network.mode, AGENTD_NET_HOST);
	agentd_spec_free(&s);
}

static void network_allow_only_with_allowlist_mode(void **state __attribute__((unused)))
{
	const char *m = "network.allow: only valid with mode \"allowlist\"";
	parse_fails("{'network': {'mode': 'none', 'allow': ['a.com:443']}}", m);
	parse_fails("{'profile': 'permissive', 'network': {'mode': 'host', 'allow': ['a.com:443']}}",
		    m);
	/* strict's mode is none: a list alone does not switch it */
	parse_fails("{'network': {'allow': ['a.com:443']}}", m);
	parse_fails("{'profile': 'permissive', 'network': {'allow': ['a.com:443']}}", m);

	/* an empty list is no allowance at all, so any mode takes it */
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok("{'profile': 'permissive', 'network': {'mode': 'host', 'allow': []}}", &s);
	assert_int_equal(s.network.mode, AGENTD_NET_HOST);
	/* standard is already allowlist: the list alone is enough */
	parse_ok("{'profile': 'standard', 'network': {'allow': ['a.com:443']}}", &s);
	assert_int_equal(s.network.mode, AGENTD_NET_ALLOWLIST);
	assert_int_equal(s.network.allow.n, 1);
	agentd_spec_free(&s);
}

static void network_type_errors(void **state __attribute__((unused)))
{
	parse_fails("{'network': 'none'}", "network: expected object");
	parse_fails("{'network': {'mode': 'all'}}",
		    "network.mode: expected one of \"none\", \"allowlist\", \"host\"");
	parse_fails("{'network': {'mode': null}}",
		    "network.mode: expected one of \"none\", \"allowlist\", \"host\"");
	parse_fails("{'network': {'mode': 'allowlist', 'allow': 'a.com:443'}}",
		    "network.allow: expected array of strings");
	parse_fails("{'network': {'mode': 'allowlist', 'allow': ['a.com:1', 443]}}",
		    "network.allow[1]: expected string");
	parse_fails("{'network': {'mode': 'none', 'proxy': true}}",
		    "network.proxy: unknown key");
}

/* ------------------------------------------------------------ environment, labels */

static void environment_names_are_posix_not_loader_vars(void **state __attribute__((unused)))
{
	parse_fails("{'environment': {'LD_PRELOAD': '/x.so'}}",
		    "environment.LD_PRELOAD: dynamic loader variables (LD_*) cannot be set");
	parse_fails("{'environment': {'LD_LIBRARY_PATH': '/x'}}",
		    "environment.LD_LIBRARY_PATH: dynamic loader variables (LD_*) cannot be set");
	parse_fails("{'environment': {'A': '1', 'LD_AUDIT': '/x.so'}}",
		    "environment.LD_AUDIT: dynamic loader variables (LD_*) cannot be set");
	parse_fails("{'environment': {'LD_ANYTHING': ''}}",
		    "environment.LD_ANYTHING: dynamic loader variables (LD_*) cannot be set");
	parse_fails("{'environment': {'1A': 'x'}}",
		    "environment[\"1A\"]: must start with a letter or '_'");
	parse_fails("{'environment': {'A-B': 'x'}}",
		    "environment.A-B: only letters, digits and '_' are allowed");
	parse_fails("{'environment': {'A=B': 'x'}}",
		    "environment[\"A=B\"]: only letters, digits and '_' are allowed");
	parse_fails("{'environment': {'': 'x'}}",
		    "environment[\"\"]: empty name");
	parse_fails("{'environment': {'A': 1}}", "environment.A: expected string");
	parse_fails("{'environment': {'A': null}}", "environment.A: expected string");
	parse_fails("{'environment': ['A=1']}", "environment: expected object of strings");

	/* lower case, and names that merely contain LD_, are fine */
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok("{'environment': {'ld_preload': 'x', 'OLD_PATH': 'y', 'LD': 'z'}}", &s);
	assert_int_equal(s.environment.n, 3);
	agentd_spec_free(&s);
}

static void labels_take_any_string_pairs(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok("{'labels': {'a.b/c': 'x y', '': '', 'LD_PRELOAD': 'just a label'}}", &s);
	assert_int_equal(s.labels.n, 3);
	assert_string_equal(kvv_get(&s.labels, "a.b/c"), "x y");
	agentd_spec_free(&s);

	parse_fails("{'labels': {'a': true}}", "labels.a: expected string");
	parse_fails("{'labels': {'a b': 1}}", "labels[\"a b\"]: expected string");
	parse_fails("{'labels': 'x'}", "labels: expected object of strings");
}

/* ------------------------------------------------------------ limits */

static void limits_accept_their_bounds_and_refuse_beyond(void **state __attribute__((unused)))
{
	static const struct {
		const char *key;
		long long min, max;	/* max < 0: no upper bound below INT64_MAX */
		const char *msg;
	} lim[] = {
		{ "max_memory_bytes", 1048576, -1, "expected integer >= 1048576" },
		{ "max_cpu_time_ms", 1, -1, "expected integer >= 1" },
		{ "max_wall_time_ms", 1, -1, "expected integer >= 1" },
		{ "max_processes", 1, 1048576, "expected integer in 1..1048576" },
		{ "max_open_files", 3, 1048576, "expected integer in 3..1048576" },
		{ "max_output_bytes", 0, -1, "expected integer >= 0" },
		{ "max_write_bytes", 0, -1, "expected integer >= 0" },
		{ "cpu_weight", 1, 10000, "expected integer in 1..10000" },
		{ "cpu_quota_pct", 1, 100000, "expected integer in 1..100000" },
		{ "max_snapshot_bytes", 0, -1, "expected integer >= 0" },
		{ "max_process_output_bytes", 0, 67108864, "expected integer in 0..67108864" },
	};
	char policy[256], msg[256];
	agentd_spec s;

	assert_int_equal(ARRAY_SIZE(lim), spec_limit_fields_n);
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	for (size_t i = 0; i < ARRAY_SIZE(lim); i++) {
		const struct spec_limit_field *f = &spec_limit_fields[i];
		long long max = lim[i].max < 0 ? INT64_MAX : lim[i].max;
		assert_string_equal(f->name, lim[i].key);

		snprintf(policy, sizeof(policy), "{'limits': {'%s': %lld}}", lim[i].key, lim[i].min);
		parse_ok(policy, &s);
		assert_int_equal(spec_limit_get(&s.limits, f), lim[i].min);
		snprintf(policy, sizeof(policy), "{'limits': {'%s': %lld}}", lim[i].key, max);
		parse_ok(policy, &s);
		assert_int_equal(spec_limit_get(&s.limits, f), max);

		snprintf(msg, sizeof(msg), "limits.%s: %s", lim[i].key, lim[i].msg);
		snprintf(policy, sizeof(policy), "{'limits': {'%s': %lld}}", lim[i].key,
			 lim[i].min - 1);
		parse_fails(policy, msg);
		if (lim[i].max >= 0) {
			snprintf(policy, sizeof(policy), "{'limits': {'%s': %lld}}", lim[i].key,
				 max + 1);
			parse_fails(policy, msg);
			/* beyond uint32: must not wrap around into range */
			snprintf(policy, sizeof(policy), "{'limits': {'%s': %lld}}", lim[i].key,
				 (1LL << 32) + lim[i].min);
			parse_fails(policy, msg);
		}
		/* only JSON integers: not reals, strings, booleans or null */
		static const char *const wrong[] = { "1.0", "1e3", "'100'", "true", "null", "[]" };
		for (size_t w = 0; w < ARRAY_SIZE(wrong); w++) {
			snprintf(policy, sizeof(policy), "{'limits': {'%s': %s}}", lim[i].key,
				 wrong[w]);
			parse_fails(policy, msg);
		}
	}
	agentd_spec_free(&s);
}

static void limits_beyond_json_integers_are_syntax_errors(void **state __attribute__((unused)))
{
	syntax_error("{'limits': {'max_memory_bytes': 9223372036854775808}}", "too big");
}

static void limits_errors_for_the_object(void **state __attribute__((unused)))
{
	parse_fails("{'limits': {'max_memory': 1048576}}", "limits.max_memory: unknown key");
	parse_fails("{'limits': [1]}", "limits: expected object");
	parse_fails("{'limits': null}", "limits: expected object");
}

/* ------------------------------------------------------------ structure */

static void unknown_keys_are_refused_at_every_level(void **state __attribute__((unused)))
{
	parse_fails("{'foo': 1}", "foo: unknown key");
	parse_fails("{'workdir': '/w', 'Workdir': '/w'}", "Workdir: unknown key");
	parse_fails("{'allowed_paths': []}", "allowed_paths: unknown key");
	parse_fails("{'a b': 1}", "[\"a b\"]: unknown key");
	parse_fails("{'\\u0001\\\"': 1}", "[\"\\x01\\\"\"]: unknown key");
	parse_fails("{'limits': {'foo': 1}}", "limits.foo: unknown key");
	parse_fails("{'network': {'foo': 1}}", "network.foo: unknown key");
	parse_fails("{'bind_mounts': [{'source': '/s', 'target': '/t', 'foo': 1}]}",
		    "bind_mounts[0].foo: unknown key");
	parse_fails("{'run_as': {'foo': 1}}", "run_as.foo: unknown key");
}

static void duplicate_keys_are_refused(void **state __attribute__((unused)))
{
	syntax_error("{'workdir': '/a', 'workdir': '/b'}", "duplicate object key");
	syntax_error("{'limits': {'cpu_weight': 1, 'cpu_weight': 2}}", "duplicate object key");
	syntax_error("{'environment': {'A': '1', 'A': '1'}}", "duplicate object key");
	syntax_error("{'bind_mounts': [{'source': '/a', 'source': '/b', 'target': '/t'}]}",
		     "duplicate object key");
}

static void wrong_types_name_the_key(void **state __attribute__((unused)))
{
	parse_fails("{'workdir': 1}", "workdir: expected string");
	parse_fails("{'workdir': null}", "workdir: expected string");
	parse_fails("{'allowed_paths_ro': '/usr'}",
		    "allowed_paths_ro: expected array of absolute paths");
	parse_fails("{'allowed_paths_rw': ['/a', ['/b']]}", "allowed_paths_rw[1]: expected string");
	parse_fails("{'seccomp_profile': null}", "seccomp_profile: expected string");
}

static void root_must_be_an_object(void **state __attribute__((unused)))
{
	parse_fails("[]", "(root): expected object");
	parse_fails("42", "(root): expected object");
	parse_fails("null", "(root): expected object");
	parse_fails("'strict'", "(root): expected object");
}

static void syntax_errors_give_line_and_column(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_error err;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	const char *text = "{\n  \"workdir\": \"/w\",\n  \"limits\": {,}\n}";
	assert_int_equal(agentd_policy_parse(text, strlen(text), &s, &err), -1);
	assert_true(strncmp(err.msg, "line 3 column ", 14) == 0);
	agentd_spec_free(&s);

	syntax_error("", "");
	syntax_error("{", "");
	syntax_error("{'workdir': }", "");
	syntax_error("{} {}", "end of file expected");
	syntax_error("{'workdir': '/a',}", "");
}

/* Messages reach terminals, logs and JSON error bodies: always one line of UTF-8. */
static void error_messages_are_one_line_of_utf8(void **state __attribute__((unused)))
{
	static const char *const inputs[] = {
		"{\"workdir\": \"/a\nb\"}",			/* raw control byte in a string */
		"{\"workdir\": \"/\xc3\xa9\xe2\x82\"}",	/* cut UTF-8 sequence */
		"{\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\": 1}",
		"{\"labels\": {\"a\": \"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
		"\x01\"}}",						/* long token near the error */
		"{\"network\": {\"mode\": \"allowlist\", \"allow\": [\"\xc3\xa9\t:1\"]}}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(inputs); i++) {
		agentd_spec s;
		agentd_error err = { 0 };
		agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
		assert_int_equal(agentd_policy_parse(inputs[i], strlen(inputs[i]), &s, &err), -1);
		size_t n = strlen(err.msg);
		assert_true(n > 0);
		assert_true(utf8_valid((const uint8_t *)err.msg, n));
		for (size_t k = 0; k < n; k++)
			assert_true((unsigned char)err.msg[k] >= 0x20 && err.msg[k] != 0x7f);
		agentd_spec_free(&s);
	}
	/* the first unknown key, quoted and cut after 64 bytes on a character boundary */
	agentd_spec s;
	agentd_error err = { 0 };
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	assert_int_equal(agentd_policy_parse(inputs[2], strlen(inputs[2]), &s, &err), -1);
	char want[256] = "[\"";
	for (int k = 0; k < 32; k++)
		strcat(want, "\xc3\xa9");
	strcat(want, "...\"]: unknown key");
	assert_string_equal(err.msg, want);
	agentd_spec_free(&s);
}

static void parse_replaces_the_whole_spec(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok("{'environment': {'A': '1'}, 'allowed_paths_ro': ['/x']}", &s);
	parse_ok("{'labels': {'b': '2'}}", &s);
	/* nothing of the previous policy survives: a policy is complete in itself */
	assert_int_equal(s.environment.n, 0);
	assert_int_equal(s.allowed_paths_ro.n, 0);
	assert_int_equal(s.labels.n, 1);
	agentd_spec_free(&s);
}

/* ------------------------------------------------------------ emitter */

static void roundtrip_at(const char *policy, const char *file, int line)
{
	agentd_spec a, b;
	agentd_spec_init(&a, AGENTD_PROFILE_STRICT);
	agentd_spec_init(&b, AGENTD_PROFILE_STRICT);
	parse_ok_at(policy, &a, file, line);
	_cleanup_free_ char *json = agentd_policy_to_json(&a);
	_assert_true(json != NULL, "emitted", file, line);
	agentd_error err = { 0 };
	if (agentd_policy_parse(json, strlen(json), &b, &err) < 0)
		print_message("re-parse failed: %s\n%s\n", err.msg, json);
	_assert_true(spec_equal(&a, &b), "parse(emit(s)) == s", file, line);
	/* and the text is a fixed point: same spec, same bytes */
	_cleanup_free_ char *again = agentd_policy_to_json(&b);
	_assert_string_equal(json, again, file, line);
	agentd_spec_free(&a);
	agentd_spec_free(&b);
}
#define roundtrip(p) roundtrip_at(p, __FILE__, __LINE__)

static void emit_then_parse_gives_the_same_spec(void **state __attribute__((unused)))
{
	roundtrip("{}");
	roundtrip("{'profile': 'standard'}");
	roundtrip("{'profile': 'permissive'}");
	roundtrip(full_policy);
	roundtrip("{'labels': {'\\u00e9\\t\\n': '\\\"\\\\', 'z': 'a', 'a': 'z'}}");
	roundtrip("{'limits': {'max_memory_bytes': 9223372036854775807}}");
	roundtrip("{'run_as': {'uid': 0, 'gid': 4294967294}}");
	roundtrip("{'image': 'debian:bookworm', 'writable_root': true}");
}

/* issue 13: image is a reference the store resolves; writable_root needs one */
static void image_keys_are_checked(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	parse_ok("{'image': 'registry.example/py-numpy:1.2', 'writable_root': true}", &s);
	assert_string_equal(s.image, "registry.example/py-numpy:1.2");
	assert_true(s.writable_root);
	parse_ok("{'image': null}", &s);
	assert_null(s.image);
	assert_false(s.writable_root);
	agentd_spec_free(&s);
	parse_fails("{'image': 'Upper'}", "image: expected an image name, name:tag or sha256:<hex> (lower-case letters, digits and ._-/:@, at most 255)");
	parse_fails("{'image': '../../etc'}", "image: expected an image name, name:tag or sha256:<hex> (lower-case letters, digits and ._-/:@, at most 255)");
	parse_fails("{'image': ''}", "image: expected an image name, name:tag or sha256:<hex> (lower-case letters, digits and ._-/:@, at most 255)");
	parse_fails("{'image': 3}", "image: expected string");
	parse_fails("{'writable_root': 'yes'}", "writable_root: expected boolean");
	parse_fails("{'writable_root': true}",
		    "writable_root: needs an image (the host's runtime is never writable)");
}

static void emitter_writes_every_key_in_a_fixed_order(void **state __attribute__((unused)))
{
	static const char *const keys[] = {
		"profile", "workdir", "allowed_paths_ro", "allowed_paths_rw", "bind_mounts",
		"network", "environment", "limits", "seccomp_profile", "labels", "run_as",
		"image", "writable_root",
	};
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	_cleanup_free_ char *text = agentd_policy_to_json(&s);
	assert_non_null(text);
	json_auto_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), ARRAY_SIZE(keys));
	size_t i = 0;
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v) {
		assert_string_equal(k, keys[i]);
		i++;
	}
	assert_string_equal(json_string_value(json_object_get(j, "profile")), "strict");
	assert_true(json_is_null(json_object_get(j, "run_as")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "network"), "mode")),
			    "none");
	json_t *lim = json_object_get(j, "limits");
	assert_int_equal(json_object_size(lim), spec_limit_fields_n);
	assert_int_equal(json_integer_value(json_object_get(lim, "max_memory_bytes")), 536870912);
	agentd_spec_free(&s);
}

static void emitter_refuses_what_json_cannot_hold(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	free(s.workdir);
	s.workdir = xstrdup("/bad\xff");
	assert_null(agentd_policy_to_json(&s));
	assert_int_equal(agentd_spec_validate(&s, NULL), -1);
	free(s.workdir);
	s.workdir = xstrdup("/ok");
	s.limits.max_write_bytes = UINT64_MAX;
	assert_null(agentd_policy_to_json(&s));
	agentd_spec_free(&s);
}

/* ------------------------------------------------------------ files */

static void load_file_reads_and_prefixes_errors_with_the_path(void **state __attribute__((unused)))
{
	char path[] = "/tmp/agentd-test-policy-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *good = "{\"profile\": \"standard\", \"workdir\": \"/w\"}";
	assert_int_equal(write(fd, good, strlen(good)), (ssize_t)strlen(good));

	agentd_spec s;
	agentd_error err = { 0 };
	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	assert_int_equal(agentd_policy_load_file(path, &s, &err), 0);
	assert_int_equal(s.profile, AGENTD_PROFILE_STANDARD);
	assert_string_equal(s.workdir, "/w");

	const char *bad = "{\"limits\": {\"max_processes\": 0}}";
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, bad, strlen(bad), 0), (ssize_t)strlen(bad));
	assert_int_equal(agentd_policy_load_file(path, &s, &err), -1);
	char want[256];
	snprintf(want, sizeof(want), "policy %s: limits.max_processes: expected integer in 1..1048576",
		 path);
	assert_string_equal(err.msg, want);
	assert_string_equal(s.workdir, "/w");	/* unchanged */

	/* 1 MiB is the cap: a policy that big is not a policy */
	char *big = xmalloc((1 << 20) + 1);
	memset(big, ' ', (1 << 20) + 1);
	big[0] = '{';
	big[1 << 20] = '}';
	assert_int_equal(pwrite(fd, big, (1 << 20) + 1, 0), (1 << 20) + 1);
	assert_int_equal(agentd_policy_load_file(path, &s, &err), -1);
	snprintf(want, sizeof(want), "policy %s: larger than 1 MiB", path);
	assert_string_equal(err.msg, want);
	assert_int_equal(err.code, EFBIG);
	/* exactly 1 MiB still loads */
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	big[(1 << 20) - 1] = '}';
	assert_int_equal(pwrite(fd, big, 1 << 20, 0), 1 << 20);
	assert_int_equal(agentd_policy_load_file(path, &s, &err), 0);
	free(big);

	close(fd);
	unlink(path);
	assert_int_equal(agentd_policy_load_file(path, &s, &err), -1);
	snprintf(want, sizeof(want), "policy %s: No such file or directory", path);
	assert_string_equal(err.msg, want);
	assert_int_equal(err.code, ENOENT);
	agentd_spec_free(&s);
}

/* ------------------------------------------------------------ spec API */

static void set_profile_resets_limits_and_network_only(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_spec_init(&s, AGENTD_PROFILE_STANDARD);
	strv_push(&s.network.allow, "a.com:443");
	kvv_set(&s.environment, "A", "1");
	s.limits.max_processes = 5;
	agentd_spec_set_profile(&s, AGENTD_PROFILE_PERMISSIVE);
	assert_int_equal(s.profile, AGENTD_PROFILE_PERMISSIVE);
	assert_int_equal(s.network.mode, AGENTD_NET_HOST);
	assert_int_equal(s.network.allow.n, 0);
	assert_int_equal(s.limits.max_processes, 256);
	assert_string_equal(kvv_get(&s.environment, "A"), "1");
	assert_string_equal(s.workdir, "/workspace");
	agentd_spec_set_profile(&s, AGENTD_PROFILE_STRICT);
	assert_int_equal(s.network.mode, AGENTD_NET_NONE);
	assert_default_limits(&s.limits);
	agentd_spec_free(&s);
}

static void copy_is_deep_and_equal(void **state __attribute__((unused)))
{
	agentd_spec a, b;
	agentd_spec_init(&a, AGENTD_PROFILE_STRICT);
	parse_ok(full_policy, &a);
	assert_int_equal(agentd_spec_copy(&b, &a, NULL), 0);
	assert_true(spec_equal(&a, &b));
	assert_ptr_not_equal(a.workdir, b.workdir);
	assert_ptr_not_equal(a.bind_mounts, b.bind_mounts);
	b.bind_mounts[0].readonly = true;
	assert_false(spec_equal(&a, &b));
	b.bind_mounts[0].readonly = false;
	kvv_set(&b.labels, "team", "other");
	assert_false(spec_equal(&a, &b));
	assert_string_equal(kvv_get(&a.labels, "team"), "infra");
	agentd_spec_free(&a);
	agentd_spec_free(&b);
	agentd_spec_free(&b);	/* free leaves a zeroed spec: a second free is harmless */
}

static void validate_checks_specs_built_in_code(void **state __attribute__((unused)))
{
	agentd_spec s;
	agentd_error err;
	for (int p = AGENTD_PROFILE_STRICT; p <= AGENTD_PROFILE_PERMISSIVE; p++) {
		agentd_spec_init(&s, (agentd_profile)p);
		assert_int_equal(agentd_spec_validate(&s, &err), 0);
		agentd_spec_free(&s);
	}

	agentd_spec_init(&s, AGENTD_PROFILE_STRICT);
	s.run_as_uid = 1000;
	assert_int_equal(agentd_spec_validate(&s, &err), -1);
	assert_string_equal(err.msg, "run_as: uid and gid must be set together");
	s.run_as_gid = 1000;
	assert_int_equal(agentd_spec_validate(&s, &err), 0);

	s.profile = (agentd_profile)7;
	assert_int_equal(agentd_spec_validate(&s, &err), -1);
	assert_string_equal(err.msg,
			    "profile: expected one of \"strict\", \"standard\", \"permissive\"");
	s.profile = AGENTD_PROFILE_STRICT;

	s.network.mode = (agentd_net_mode)-1;
	assert_int_equal(agentd_spec_validate(&s, &err), -1);
	assert_string_equal(err.msg, "network.mode: expected one of \"none\", \"allowlist\", \"host\"");
	s.network.mode = AGENTD_NET_NONE;

	s.limits.max_memory_bytes = 1048575;
	assert_int_equal(agentd_spec_validate(&s, &err), -1);
	assert_string_equal(err.msg, "limits.max_memory_bytes: expected integer >= 1048576");
	s.limits.max_memory_bytes = 1048576;

	kvv_set(&s.environment, "LD_PRELOAD", "x");
	assert_int_equal(agentd_spec_validate(&s, &err), -1);
	assert_string_equal(err.msg,
			    "environment.LD_PRELOAD: dynamic loader variables (LD_*) cannot be set");
	agentd_spec_free(&s);
}

static void names_of_profiles_modes_and_limits(void **state __attribute__((unused)))
{
	agentd_profile p = AGENTD_PROFILE_STRICT;
	assert_string_equal(agentd_profile_name(AGENTD_PROFILE_STRICT), "strict");
	assert_string_equal(agentd_profile_name(AGENTD_PROFILE_STANDARD), "standard");
	assert_string_equal(agentd_profile_name(AGENTD_PROFILE_PERMISSIVE), "permissive");
	assert_null(agentd_profile_name((agentd_profile)3));
	assert_int_equal(agentd_profile_from_name("permissive", &p), 0);
	assert_int_equal(p, AGENTD_PROFILE_PERMISSIVE);
	assert_int_equal(agentd_profile_from_name("standard", &p), 0);
	assert_int_equal(p, AGENTD_PROFILE_STANDARD);
	assert_int_equal(agentd_profile_from_name("custom", &p), -1);
	assert_int_equal(agentd_profile_from_name(NULL, &p), -1);
	assert_int_equal(p, AGENTD_PROFILE_STANDARD);	/* untouched on failure */

	assert_string_equal(agentd_net_mode_name(AGENTD_NET_NONE), "none");
	assert_string_equal(agentd_net_mode_name(AGENTD_NET_ALLOWLIST), "allowlist");
	assert_string_equal(agentd_net_mode_name(AGENTD_NET_HOST), "host");
	assert_null(agentd_net_mode_name((agentd_net_mode)3));

	assert_null(agentd_limit_kind_name(AGENTD_LIMIT_NONE));
	assert_string_equal(agentd_limit_kind_name(AGENTD_LIMIT_MEMORY), "memory");
	assert_string_equal(agentd_limit_kind_name(AGENTD_LIMIT_PIDS), "pids");
	assert_string_equal(agentd_limit_kind_name(AGENTD_LIMIT_CPU), "cpu");
	assert_string_equal(agentd_limit_kind_name(AGENTD_LIMIT_OUTPUT), "output");
	assert_string_equal(agentd_limit_kind_name(AGENTD_LIMIT_WRITE), "write");
	assert_null(agentd_limit_kind_name((agentd_limit_kind)6));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_policy_is_strict_with_spec_defaults),
		cmocka_unit_test(standard_profile_is_allowlist_with_empty_list),
		cmocka_unit_test(permissive_is_host_network_and_larger_limits),
		cmocka_unit_test(profile_applies_first_wherever_it_is_written),
		cmocka_unit_test(profile_must_be_a_known_name),
		cmocka_unit_test(every_key_is_accepted_with_a_valid_value),
		cmocka_unit_test(seccomp_profile_is_default_none_or_absolute_path),
		cmocka_unit_test(run_as_takes_both_ids_or_null),
		cmocka_unit_test(paths_must_be_absolute_without_dotdot),
		cmocka_unit_test(paths_longer_than_path_max_are_refused),
		cmocka_unit_test(strings_with_nul_are_refused),
		cmocka_unit_test(invalid_utf8_is_a_syntax_error),
		cmocka_unit_test(bind_mounts_errors_name_the_element),
		cmocka_unit_test(network_allow_accepts_every_documented_form),
		cmocka_unit_test(network_allow_refuses_malformed_entries),
		cmocka_unit_test(network_allow_only_with_allowlist_mode),
		cmocka_unit_test(network_host_only_with_permissive_profile),
		cmocka_unit_test(network_type_errors),
		cmocka_unit_test(environment_names_are_posix_not_loader_vars),
		cmocka_unit_test(labels_take_any_string_pairs),
		cmocka_unit_test(limits_accept_their_bounds_and_refuse_beyond),
		cmocka_unit_test(limits_beyond_json_integers_are_syntax_errors),
		cmocka_unit_test(limits_errors_for_the_object),
		cmocka_unit_test(unknown_keys_are_refused_at_every_level),
		cmocka_unit_test(duplicate_keys_are_refused),
		cmocka_unit_test(wrong_types_name_the_key),
		cmocka_unit_test(root_must_be_an_object),
		cmocka_unit_test(syntax_errors_give_line_and_column),
		cmocka_unit_test(error_messages_are_one_line_of_utf8),
		cmocka_unit_test(parse_replaces_the_whole_spec),
		cmocka_unit_test(emit_then_parse_gives_the_same_spec),
		cmocka_unit_test(emitter_writes_every_key_in_a_fixed_order),
		cmocka_unit_test(image_keys_are_checked),
		cmocka_unit_test(emitter_refuses_what_json_cannot_hold),
		cmocka_unit_test(load_file_reads_and_prefixes_errors_with_the_path),
		cmocka_unit_test(set_profile_resets_limits_and_network_only),
		cmocka_unit_test(copy_is_deep_and_equal),
		cmocka_unit_test(validate_checks_specs_built_in_code),
		cmocka_unit_test(names_of_profiles_modes_and_limits),
	};
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
