/* test_process.c: background processes of container sandboxes through the public API —
 * stdio, status, signals, each process and exec its own kill unit, the sandbox's limits over
 * all of them, suspend, terminals, and bad input. Root only (real sandboxes). */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentd.h"

/* Generous: the machine may be loaded; nothing here is timed against these. */
#define WAIT_MS 30000

static agentd_backend *backend;

static int setup(void **state)
{
	if (geteuid() != 0)
		return 0;
	agentd_error err = {0};
	if (agentd_create_backend("container", NULL, &backend, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	agentd_backend_free(backend);
	return 0;
}

static agentd_sandbox *new_sandbox_with(const agentd_limits *limits)
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

static agentd_sandbox *new_sandbox(void)
{
	return new_sandbox_with(NULL);
}

/* A process running sh -c SCRIPT. */
static agentd_process *spawn_sh(agentd_sandbox *sb, const char *script,
				const agentd_process_opts *opts)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	agentd_command cmd = {.argv = argv};
	agentd_process *p = NULL;
	agentd_error err = {0};
	int r = agentd_sandbox_spawn(sb, &cmd, opts, &p, &err);
	if (r < 0)
		fprintf(stderr, "spawn: %s\n", err.msg);
	assert_int_equal(r, 0);
	assert_non_null(p);
	return p;
}

/* An exec of sh -c SCRIPT (with timeout_ms); its exit code, stdout in out. */
static int sh_exec(agentd_sandbox *sb, const char *script, uint64_t timeout_ms, char *out,
		   size_t outlen)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	agentd_command cmd = {.argv = argv, .timeout_ms = timeout_ms};
	agentd_exec_output o;
	agentd_error err = {0};
	int r = agentd_sandbox_exec(sb, &cmd, NULL, &o, &err);
	if (r < 0)
		fprintf(stderr, "exec: %s\n", err.msg);
	assert_int_equal(r, 0);
	if (out) {
		size_t n = o.out_len < outlen - 1 ? o.out_len : outlen - 1;
		memcpy(out, o.out ? (char *)o.out : "", n);
		out[n] = '\0';
	}
	int code = o.exit_code;
	agentd_exec_output_free(&o);
	return code;
}

static int sh(agentd_sandbox *sb, const char *script, char *out, size_t outlen)
{
	return sh_exec(sb, script, 0, out, outlen);
}

static bool readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, ms) > 0;
}

/* Read fd (non-blocking) until want appears in what was read, EOF, or WAIT_MS. */
static bool read_until(int fd, const char *want, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	time_t end = time(NULL) + WAIT_MS / 1000;
	while (!strstr(buf, want) && time(NULL) < end && n < len - 1) {
		if (!readable(fd, 1000))
			continue;
		ssize_t r = read(fd, buf + n, len - 1 - n);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			break;
		if (r > 0)
			n += (size_t)r;
		buf[n] = '\0';
	}
	return strstr(buf, want) != NULL;
}

/* Wait for its end (wait_fd), then its status. */
static agentd_process_status wait_end(agentd_process *p)
{
	assert_true(readable(agentd_process_wait_fd(p), WAIT_MS));
	agentd_process_status st;
	assert_int_equal(agentd_process_get_status(p, &st, NULL), 0);
	assert_false(st.running);
	return st;
}

static bool running(agentd_process *p)
{
	agentd_process_status st;
	assert_int_equal(agentd_process_get_status(p, &st, NULL), 0);
	return st.running;
}

/* How many processes named comm run in the sandbox, seen by an exec there. */
static int count_in(agentd_sandbox *sb, const char *comm)
{
	char script[128], out[32];
	snprintf(script, sizeof(script), "ps -e -o comm= | grep -c '^%s$' || true", comm);
	assert_int_equal(sh(sb, script, out, sizeof(out)), 0);
	return atoi(out);
}

static void spawn_runs_in_the_background_with_its_stdio(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_process_opts o = {.stdin_pipe = true};
	agentd_process *p = spawn_sh(sb, "echo started; read line; echo got $line; "
					 "echo err >&2; exit 7", &o);
	assert_true(agentd_process_pid(p) > 1);
	char buf[256];
	assert_true(read_until(agentd_process_stdout_fd(p), "started\n", buf, sizeof(buf)));
	/* it outlived the call that started it, and an exec in between */
	assert_true(running(p));
	assert_int_equal(sh(sb, "true", NULL, 0), 0);
	assert_true(running(p));
	assert_int_equal(write(agentd_process_stdin_fd(p), "hello\n", 6), 6);
	assert_true(read_until(agentd_process_stdout_fd(p), "got hello\n", buf, sizeof(buf)));
	assert_true(read_until(agentd_process_stderr_fd(p), "err\n", buf, sizeof(buf)));
	agentd_process_status st = wait_end(p);
	assert_int_equal(st.exit_code, 7);
	assert_int_equal(st.term_signal, 0);
	assert_true(st.started_at_ms > 0 && st.ended_at_ms >= st.started_at_ms);
	agentd_process_free(p);
	agentd_sandbox_destroy(sb, NULL);
}

static void close_stdin_gives_eof_and_pid_is_the_sandboxes(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_process_opts o = {.stdin_pipe = true};
	agentd_process *p = spawn_sh(sb, "echo $$; cat; echo eof", &o);
	char buf[256], want[32];
	snprintf(want, sizeof(want), "%lld\n", (long long)agentd_process_pid(p));
	assert_true(read_until(agentd_process_stdout_fd(p), want, buf, sizeof(buf)));
	assert_int_equal(write(agentd_process_stdin_fd(p), "x\n", 2), 2);
	agentd_process_close_stdin(p);
	assert_int_equal(agentd_process_stdin_fd(p), -1);
	assert_true(read_until(agentd_process_stdout_fd(p), "x\neof\n", buf, sizeof(buf)));
	assert_int_equal(wait_end(p).exit_code, 0);
	agentd_process_free(p);
	/* without stdin_pipe its stdin is /dev/null, and the caller has no stdin fd */
	p = spawn_sh(sb, "cat; echo done", NULL);
	assert_int_equal(agentd_process_stdin_fd(p), -1);
	assert_true(read_until(agentd_process_stdout_fd(p), "done\n", buf, sizeof(buf)));
	assert_int_equal(wait_end(p).exit_code, 0);
	agentd_process_free(p);
	agentd_sandbox_destroy(sb, NULL);
}

static void signal_reaches_the_main_process(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_process *p = spawn_sh(sb, "trap 'echo term; exit 3' TERM; echo ready; "
					 "while :; do sleep 0.1; done", NULL);
	char buf[256];
	assert_true(read_until(agentd_process_stdout_fd(p), "ready\n", buf, sizeof(buf)));
	agentd_error err = {0};
	assert_int_equal(agentd_process_signal(p, SIGTERM, &err), 0);
	assert_true(read_until(agentd_process_stdout_fd(p), "term\n", buf, sizeof(buf)));
	assert_int_equal(wait_end(p).exit_code, 3);
	/* once it ended: ESRCH */
	assert_int_equal(agentd_process_signal(p, SIGTERM, &err), -1);
	assert_int_equal(err.code, ESRCH);
	agentd_process_free(p);

	p = spawn_sh(sb, "echo ready; exec sleep 100", NULL);
	assert_true(read_until(agentd_process_stdout_fd(p), "ready\n", buf, sizeof(buf)));
	assert_int_equal(agentd_process_signal(p, SIGKILL, &err), 0);
	agentd_process_status st = wait_end(p);
	assert_int_equal(st.term_signal, SIGKILL);
	assert_int_equal(st.exit_code, 128 + SIGKILL);
	agentd_process_free(p);
	agentd_sandbox_destroy(sb, NULL);
}

static void kill_takes_the_whole_tree_and_nothing_else(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_process *other = spawn_sh(sb, "echo ready; exec sleep 1000", NULL);
	agentd_process *p = spawn_sh(sb, "sh -c 'exec sleep 999' </dev/null >/dev/null "
					 "2>&1 & echo ready; exec sleep 998", NULL);
	char buf[256];
	assert_true(read_until(agentd_process_stdout_fd(other), "ready\n", buf, sizeof(buf)));
	assert_true(read_until(agentd_process_stdout_fd(p), "ready\n", buf, sizeof(buf)));
	for (int i = 0; i < 100 && count_in(sb, "sleep") < 3; i++)
		usleep(100000);
	assert_int_equal(count_in(sb, "sleep"), 3);
	agentd_error err = {0};
	assert_int_equal(agentd_process_kill(p, &err), 0);
	assert_int_equal(wait_end(p).term_signal, SIGKILL);
	assert_int_equal(agentd_process_kill(p, &err), 0); /* idempotent */
	for (int i = 0; i < 100 && count_in(sb, "sleep") > 1; i++)
		usleep(100000);
	assert_int_equal(count_in(sb, "sleep"), 1);
	assert_true(running(other));
	agentd_process_free(p);
	agentd_process_free(other);
	agentd_sandbox_destroy(sb, NULL);
}

static void a_missing_program_is_an_error_naming_it(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	char *argv[] = {"no-such-program", NULL};
	agentd_command cmd = {.argv = argv};
	agentd_process *p = NULL;
	agentd_error err = {0};
	assert_int_equal(agentd_sandbox_spawn(sb, &cmd, NULL, &p, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.msg, "no-such-program"));
	assert_null(p);
	/* the sandbox goes on */
	assert_int_equal(sh(sb, "true", NULL, 0), 0);
	agentd_sandbox_destroy(sb, NULL);
}

static void bad_input_is_refused(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	char *argv[] = {"/bin/cat", NULL};
	agentd_process *p = NULL;
	agentd_error err = {0};
	agentd_command with_stdin = {.argv = argv, .stdin_data = (const uint8_t *)"x", .stdin_len = 1};
	assert_int_equal(agentd_sandbox_spawn(sb, &with_stdin, NULL, &p, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_non_null(strstr(err.msg, "stdin_data"));
	agentd_command with_timeout = {.argv = argv, .timeout_ms = 100};
	assert_int_equal(agentd_sandbox_spawn(sb, &with_timeout, NULL, &p, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_non_null(strstr(err.msg, "timeout_ms"));
	char *empty[] = {NULL};
	agentd_command none = {.argv = empty};
	assert_int_equal(agentd_sandbox_spawn(sb, &none, NULL, &p, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_null(p);

	agentd_process_opts o = {.stdin_pipe = true};
	p = spawn_sh(sb, "exec cat", &o);
	assert_int_equal(agentd_process_signal(p, 0, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_int_equal(agentd_process_signal(p, 65, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_int_equal(agentd_process_resize(p, 30, 100, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_non_null(strstr(err.msg, "tty"));
	assert_true(running(p));
	agentd_process_close_stdin(p);
	assert_int_equal(wait_end(p).exit_code, 0);
	agentd_process_free(p);
	agentd_sandbox_destroy(sb, NULL);
}

static void process_backends_answer_enotsup(void **state)
{
	if (!backend)
		skip();
	agentd_backend *ln = NULL;
	agentd_error err = {0};
	assert_int_equal(agentd_create_backend("linux-native", NULL, &ln, &err), 0);
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	agentd_sandbox *sb = NULL;
	agentd_create_opts co = {.allow_degraded = true};
	assert_int_equal(agentd_backend_create_sandbox_opts(ln, &spec, &co, &sb, &err), 0);
	char *argv[] = {"/bin/true", NULL};
	agentd_command cmd = {.argv = argv};
	agentd_process *p = NULL;
	assert_int_equal(agentd_sandbox_spawn(sb, &cmd, NULL, &p, &err), -1);
	assert_int_equal(err.code, ENOTSUP);
	assert_non_null(strstr(err.msg, "linux-native"));
	assert_null(p);
	agentd_sandbox_destroy(sb, NULL);
	agentd_spec_free(&spec);
	agentd_backend_free(ln);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(spawn_runs_in_the_background_with_its_stdio),
		cmocka_unit_test(close_stdin_gives_eof_and_pid_is_the_sandboxes),
		cmocka_unit_test(signal_reaches_the_main_process),
		cmocka_unit_test(kill_takes_the_whole_tree_and_nothing_else),
		cmocka_unit_test(a_missing_program_is_an_error_naming_it),
		cmocka_unit_test(bad_input_is_refused),
		cmocka_unit_test(process_backends_answer_enotsup),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
