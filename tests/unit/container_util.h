/* container_util.h: what the container backend's tests share (test_container.c,
 * test_process.c): the backend made once per run (root only, else each test skips),
 * sandboxes of the strict profile, and an exec of sh -c. Included once per test program. */
#ifndef AGENTD_TEST_CONTAINER_UTIL_H
#define AGENTD_TEST_CONTAINER_UTIL_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agentd.h"

static agentd_backend *backend;

static inline int setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	agentd_error err = {0};
	if (agentd_create_backend("container", NULL, &backend, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	return 0;
}

static inline int teardown(void **state)
{
	(void)state;
	agentd_backend_free(backend);
	return 0;
}

/* The strict profile's limits, to change one of them. */
static inline agentd_limits strict_limits(void)
{
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	agentd_limits l = spec.limits;
	agentd_spec_free(&spec);
	return l;
}

/* A sandbox of the strict profile, with limits when not NULL. */
static inline agentd_sandbox *new_sandbox_with(const agentd_limits *limits)
{
	if (!backend)
		skip();
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	if (limits)
		spec.limits = *limits;
	agentd_sandbox *sb = NULL;
	agentd_error err = {0};
	int r = agentd_backend_create_sandbox(backend, &spec, &sb, &err);
	if (r < 0)
		fprintf(stderr, "create: %s\n", err.msg);
	assert_int_equal(r, 0);
	agentd_spec_free(&spec);
	return sb;
}

static inline agentd_sandbox *new_sandbox(void)
{
	return new_sandbox_with(NULL);
}

/* Run sh -c SCRIPT (with timeout_ms, 0 = none); returns the exit code (-1 when the exec
 * failed), stdout copied to out (NUL-terminated). */
static inline int sh_exec(agentd_sandbox *sb, const char *script, uint64_t timeout_ms, char *out,
		   size_t outlen)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	agentd_command cmd = {.argv = argv, .timeout_ms = timeout_ms};
	agentd_exec_output o;
	agentd_error err = {0};
	int r = agentd_sandbox_exec(sb, &cmd, NULL, &o, &err);
	if (r < 0) {
		fprintf(stderr, "exec: %s\n", err.msg);
		agentd_exec_output_free(&o);
		return -1;
	}
	if (out) {
		size_t n = o.out_len < outlen - 1 ? o.out_len : outlen - 1;
		memcpy(out, o.out ? (char *)o.out : "", n);
		out[n] = '\0';
	}
	int code = o.exit_code;
	agentd_exec_output_free(&o);
	return code;
}

static inline int sh(agentd_sandbox *sb, const char *script, char *out, size_t outlen)
{
	return sh_exec(sb, script, 0, out, outlen);
}

#endif
