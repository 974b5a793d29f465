/* test_process.c: background processes of container sandboxes through the public API —
 * stdio, status, signals, each process and exec its own kill unit, the sandbox's limits over
 * all of them, suspend, terminals, and bad input. Root only (real sandboxes). */
#include <dirent.h>
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
#include "container_util.h"

/* Generous: the machine may be loaded; nothing here is timed against these. */
#define WAIT_MS 30000

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
	/* a grandchild in a session of its own, daemonized out of the process's group */
	agentd_process *p = spawn_sh(sb, "setsid sh -c 'exec sleep 999' </dev/null >/dev/null "
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

/* The file at path of the sandbox's workdir, read from the host (files API). */
static void read_file(agentd_sandbox *sb, const char *path, char *buf, size_t len)
{
	agentd_error err = {0};
	int fd = agentd_sandbox_open_file(sb, path, false, &err);
	if (fd < 0)
		fprintf(stderr, "open %s: %s\n", path, err.msg);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
}

/* agentd/<id>[/unit] exists in hierarchy hier. */
static bool cgroup_dir_exists(const char *hier, const char *id, const char *unit)
{
	char path[256];
	struct stat st;
	snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/agentd/%s%s%s", hier, id,
		 unit ? "/" : "", unit ? unit : "");
	return stat(path, &st) == 0;
}

static void an_exec_takes_its_tree_but_not_the_processes(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_process *p = spawn_sh(sb, "echo ready; exec sleep 1000", NULL);
	char buf[256];
	assert_true(read_until(agentd_process_stdout_fd(p), "ready\n", buf, sizeof(buf)));
	/* setsid, nohup and & : all of the exec's tree dies when it ends */
	assert_int_equal(sh(sb, "setsid sleep 101 </dev/null >/dev/null 2>&1 & "
				"nohup sleep 102 </dev/null >/dev/null 2>&1 & "
				"sleep 103 </dev/null >/dev/null 2>&1 & "
				"setsid sh -c 'sleep 104 & exec sleep 105' </dev/null >/dev/null 2>&1 & "
				"sleep 0.3; echo started",
			    buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "started\n");
	assert_int_equal(count_in(sb, "sleep"), 1);
	assert_true(running(p));
	/* a timeout of an exec likewise */
	assert_int_equal(sh_exec(sb, "setsid sleep 106 </dev/null >/dev/null 2>&1 & sleep 100",
				 300, NULL, 0),
			 124);
	assert_int_equal(count_in(sb, "sleep"), 1);
	assert_true(running(p));
	/* and the process ends only when killed */
	assert_int_equal(agentd_process_kill(p, NULL), 0);
	assert_int_equal(wait_end(p).term_signal, SIGKILL);
	assert_int_equal(count_in(sb, "sleep"), 0);
	agentd_process_free(p);
	agentd_sandbox_destroy(sb, NULL);
}

static void a_process_tree_ends_with_its_main_process(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_process *p = spawn_sh(sb, "setsid sleep 201 </dev/null >/dev/null 2>&1 & "
					 "sleep 0.3; exit 4", NULL);
	assert_int_equal(wait_end(p).exit_code, 4);
	assert_int_equal(count_in(sb, "sleep"), 0);
	agentd_process_free(p);
	agentd_sandbox_destroy(sb, NULL);
}

static void a_fork_bomb_hits_pids_and_the_others_run_on(void **state)
{
	agentd_limits l = strict_limits();
	l.max_processes = 32;
	agentd_sandbox *sb = new_sandbox_with(&l);
	agentd_process_opts o = {.stdin_pipe = true};
	agentd_process *other = spawn_sh(sb, "while read x; do echo got $x; done", &o);
	/* forks until the sandbox's pids limit refuses, then keeps trying; its own fork
	 * failures are its unit's */
	agentd_process *bomb = spawn_sh(sb, "while :; do sleep 30 & done", NULL);
	agentd_process_status st;
	for (int i = 0; i < 300; i++) {
		assert_int_equal(agentd_process_get_status(bomb, &st, NULL), 0);
		if (st.limit_hit == AGENTD_LIMIT_PIDS)
			break;
		usleep(100000);
	}
	assert_int_equal(st.limit_hit, AGENTD_LIMIT_PIDS);
	char buf[256];
	/* the other process still works (it needs no new process to answer) */
	assert_int_equal(write(agentd_process_stdin_fd(other), "x\n", 2), 2);
	assert_true(read_until(agentd_process_stdout_fd(other), "got x\n", buf, sizeof(buf)));
	assert_int_equal(agentd_process_kill(bomb, NULL), 0);
	st = wait_end(bomb);
	assert_int_equal(st.limit_hit, AGENTD_LIMIT_PIDS);
	assert_true(running(other));
	agentd_process_status ost;
	assert_int_equal(agentd_process_get_status(other, &ost, NULL), 0);
	assert_int_equal(ost.limit_hit, AGENTD_LIMIT_NONE);
	/* the bomb's tree is gone: an exec runs again */
	assert_int_equal(sh(sb, "echo ok", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "ok\n");
	agentd_process_free(bomb);
	agentd_process_free(other);
	agentd_sandbox_destroy(sb, NULL);
}

static void an_oom_kill_is_the_hog_s_alone(void **state)
{
	agentd_limits l = strict_limits();
	l.max_memory_bytes = 64 << 20;
	agentd_sandbox *sb = new_sandbox_with(&l);
	agentd_process *other = spawn_sh(sb, "echo ready; exec sleep 100", NULL);
	char buf[64];
	assert_true(read_until(agentd_process_stdout_fd(other), "ready\n", buf, sizeof(buf)));
	agentd_process *hog = spawn_sh(sb, "x=$(head -c 200000000 /dev/zero | tr '\\0' a); "
					   "echo survived", NULL);
	agentd_process_status st = wait_end(hog);
	assert_int_equal(st.limit_hit, AGENTD_LIMIT_MEMORY);
	assert_true(running(other));
	agentd_process_status ost;
	assert_int_equal(agentd_process_get_status(other, &ost, NULL), 0);
	assert_int_equal(ost.limit_hit, AGENTD_LIMIT_NONE);
	agentd_process_free(hog);
	agentd_process_free(other);
	agentd_sandbox_destroy(sb, NULL);
}

static void a_spent_cpu_budget_stops_the_processes_too(void **state)
{
	agentd_limits l = strict_limits();
	l.max_cpu_time_ms = 1500;
	agentd_sandbox *sb = new_sandbox_with(&l);
	agentd_process *burner = spawn_sh(sb, "while :; do :; done", NULL);
	char *argv[] = {"/bin/sh", "-c", "while :; do :; done", NULL};
	agentd_command cmd = {.argv = argv, .timeout_ms = 60000};
	agentd_exec_output o;
	assert_int_equal(agentd_sandbox_exec(sb, &cmd, NULL, &o, NULL), 0);
	assert_int_equal(o.limit_hit, AGENTD_LIMIT_CPU);
	agentd_exec_output_free(&o);
	agentd_process_status st = wait_end(burner);
	assert_int_equal(st.limit_hit, AGENTD_LIMIT_CPU);
	agentd_process_free(burner);
	agentd_sandbox_destroy(sb, NULL);
}

static void usage_is_per_process(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_process *idle = spawn_sh(sb, "exec sleep 100", NULL);
	agentd_process *busy = spawn_sh(sb, "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; "
					    "echo done; exec sleep 100", NULL);
	char buf[64];
	assert_true(read_until(agentd_process_stdout_fd(busy), "done\n", buf, sizeof(buf)));
	agentd_usage ub, ui;
	assert_int_equal(agentd_process_usage(busy, &ub, NULL), 0);
	assert_int_equal(agentd_process_usage(idle, &ui, NULL), 0);
	assert_true(ub.cpu_time_ms >= 50);
	assert_true(ui.cpu_time_ms < ub.cpu_time_ms / 4);
	assert_true(ub.peak_memory_bytes > 0);
	assert_true(ub.wall_time_ms > 0);
	agentd_process_free(busy);
	agentd_process_free(idle);
	agentd_sandbox_destroy(sb, NULL);
}

static void suspend_stops_a_background_loop_and_snapshot_works(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_process *p = spawn_sh(sb, "i=0; while :; do i=$((i+1)); echo $i > n.new; "
					 "mv n.new n; sleep 0.05; done", NULL);
	char a[32], b[32];
	for (int i = 0; i < 100; i++) {
		assert_int_equal(sh(sb, "cat n 2>/dev/null || echo 0", a, sizeof(a)), 0);
		if (atoi(a) >= 3)
			break;
		usleep(100000);
	}
	assert_true(atoi(a) >= 3);
	agentd_error err = {0};
	char *snap = NULL;
	assert_int_equal(agentd_sandbox_snapshot(sb, "running", &snap, &err), 0);
	assert_true(running(p));
	assert_int_equal(agentd_sandbox_suspend(sb, &err), 0);
	/* spawn refuses while suspended, as exec does */
	char *argv[] = {"/bin/true", NULL};
	agentd_command cmd = {.argv = argv};
	agentd_process *q = NULL;
	assert_int_equal(agentd_sandbox_spawn(sb, &cmd, NULL, &q, &err), -1);
	assert_int_equal(err.code, EBUSY);
	/* read from the host while frozen: the counter does not move */
	read_file(sb, "n", a, sizeof(a));
	usleep(600000);
	read_file(sb, "n", b, sizeof(b));
	assert_true(atoi(a) >= 3);
	assert_string_equal(a, b);
	assert_true(running(p));
	assert_int_equal(agentd_sandbox_resume(sb, &err), 0);
	for (int i = 0; i < 100 && !strcmp(a, b); i++) {
		usleep(100000);
		assert_int_equal(sh(sb, "cat n", b, sizeof(b)), 0);
	}
	assert_string_not_equal(a, b);
	free(snap);
	agentd_process_free(p);
	agentd_sandbox_destroy(sb, NULL);
}

/* A process of the host whose command line starts with cmd (NULs between arguments). */
static bool host_runs(const char *cmd)
{
	size_t n = strlen(cmd) + 1 + strlen(cmd + strlen(cmd) + 1);
	DIR *d = opendir("/proc");
	struct dirent *e;
	bool found = false;
	while (d && !found && (e = readdir(d))) {
		char path[64], buf[256];
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		FILE *f = fopen(path, "re");
		size_t got = f ? fread(buf, 1, sizeof(buf), f) : 0;
		if (f)
			fclose(f);
		found = got >= n && !memcmp(buf, cmd, n);
	}
	if (d)
		closedir(d);
	return found;
}

static void destroy_leaves_no_process_and_no_unit(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	char id[AGENTD_ID_LEN];
	snprintf(id, sizeof(id), "%s", agentd_sandbox_id(sb));
	agentd_process *p = spawn_sh(sb, "setsid sleep 301 </dev/null >/dev/null 2>&1 & "
					 "echo ready; exec sleep 300", NULL);
	char buf[64];
	assert_true(read_until(agentd_process_stdout_fd(p), "ready\n", buf, sizeof(buf)));
	/* its own cgroup, a child of the sandbox's (the first unit made in it) */
	assert_true(cgroup_dir_exists("unified", id, "u1") || cgroup_dir_exists("pids", id, "u1"));
	agentd_process_free(p);
	assert_int_equal(count_in(sb, "sleep"), 0);
	/* one still running when the sandbox is destroyed, its handle never freed (as by a
	 * caller that crashed) */
	p = spawn_sh(sb, "setsid sleep 302 </dev/null >/dev/null 2>&1 & exec sleep 303", NULL);
	for (int i = 0; i < 100 && count_in(sb, "sleep") < 2; i++)
		usleep(100000);
	assert_int_equal(count_in(sb, "sleep"), 2);
	agentd_sandbox_destroy(sb, NULL);
	const char *hier[] = {"unified", "pids", "memory", "cpuacct", "freezer"};
	for (size_t i = 0; i < sizeof(hier) / sizeof(*hier); i++)
		assert_false(cgroup_dir_exists(hier[i], id, NULL));
	/* nothing of it runs on the host, and the handle outlives the sandbox: it reports
	 * the end (killed by the destroy) until it is freed */
	assert_false(host_runs("sleep\0" "302") || host_runs("sleep\0" "303"));
	agentd_process_status st;
	assert_int_equal(agentd_process_get_status(p, &st, NULL), 0);
	assert_false(st.running);
	assert_int_equal(st.term_signal, SIGKILL);
	assert_true(st.ended_at_ms > 0);
	agentd_error err = {0};
	assert_int_equal(agentd_process_signal(p, SIGTERM, &err), -1);
	assert_int_equal(err.code, ESRCH);
	assert_int_equal(agentd_process_kill(p, NULL), 0);
	assert_int_equal(agentd_process_wait_fd(p), -1);
	agentd_process_free(p);
}

static void the_command_holds_only_its_stdio(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	/* not its unit's cgroup.procs, its report pipe nor the request: 0, 1, 2 and the
	 * directory ls reads */
	agentd_process *p = spawn_sh(sb, "exec ls /proc/self/fd", NULL);
	char buf[256];
	assert_true(read_until(agentd_process_stdout_fd(p), "3\n", buf, sizeof(buf)));
	assert_int_equal(wait_end(p).exit_code, 0);
	assert_string_equal(buf, "0\n1\n2\n3\n");
	agentd_process_free(p);
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

static void tty_is_a_terminal_of_the_sandbox_with_its_size(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_process_opts o = {.tty = true, .rows = 30, .cols = 100};
	agentd_process *p = spawn_sh(sb, "test -t 0 && test -t 1 && test -t 2 && echo istty; "
					 "echo ctty=$(ps -o tty= -p $$); stty size; "
					 "read x; echo got=$x; stty size; cat; echo eof",
				     &o);
	int master = agentd_process_stdin_fd(p);
	assert_true(master >= 0);
	assert_int_equal(agentd_process_stdout_fd(p), master);
	assert_int_equal(agentd_process_stderr_fd(p), -1);
	char buf[1024];
	/* its controlling terminal, of the sandbox's own devpts (the first pty there) */
	assert_true(read_until(master, "30 100", buf, sizeof(buf)));
	assert_non_null(strstr(buf, "istty"));
	assert_non_null(strstr(buf, "ctty=pts/0"));
	agentd_error err = {0};
	assert_int_equal(agentd_process_resize(p, 40, 120, &err), 0);
	assert_int_equal(write(master, "hi\n", 3), 3);
	assert_true(read_until(master, "40 120", buf, sizeof(buf)));
	assert_non_null(strstr(buf, "got=hi"));
	/* close_stdin sends the terminal's EOF character: cat ends, the master stays */
	agentd_process_close_stdin(p);
	assert_int_equal(agentd_process_stdin_fd(p), master);
	assert_true(read_until(master, "eof", buf, sizeof(buf)));
	assert_int_equal(wait_end(p).exit_code, 0);
	agentd_process_free(p);
	agentd_sandbox_destroy(sb, NULL);
}

static void tty_default_size_and_signals_from_the_keyboard(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	agentd_process_opts o = {.tty = true};
	agentd_process *p = spawn_sh(sb, "stty size; echo ready; exec sleep 100", &o);
	int master = agentd_process_stdin_fd(p);
	char buf[1024];
	assert_true(read_until(master, "ready", buf, sizeof(buf)));
	assert_non_null(strstr(buf, "24 80"));
	/* ^C at the terminal is SIGINT to its foreground process group */
	assert_int_equal(write(master, "\003", 1), 1);
	agentd_process_status st = wait_end(p);
	assert_int_equal(st.term_signal, SIGINT);
	agentd_process_free(p);
	agentd_sandbox_destroy(sb, NULL);
}

static void a_sandbox_has_at_most_64_terminals(void **state)
{
	agentd_sandbox *sb = new_sandbox();
	char out[64];
	/* its own devpts instance is bounded: the kernel's pool is every sandbox's */
	assert_int_equal(sh(sb, "python3 -c \"import os\n"
				"n = 0\n"
				"try:\n"
				"    while n < 200: os.open('/dev/ptmx', os.O_RDWR | os.O_NOCTTY); n += 1\n"
				"except OSError as e: print(n, e.errno)\"",
			    out, sizeof(out)),
			 0);
	assert_string_equal(out, "64 28\n"); /* ENOSPC */
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
		cmocka_unit_test(an_exec_takes_its_tree_but_not_the_processes),
		cmocka_unit_test(a_process_tree_ends_with_its_main_process),
		cmocka_unit_test(a_fork_bomb_hits_pids_and_the_others_run_on),
		cmocka_unit_test(an_oom_kill_is_the_hog_s_alone),
		cmocka_unit_test(a_spent_cpu_budget_stops_the_processes_too),
		cmocka_unit_test(usage_is_per_process),
		cmocka_unit_test(suspend_stops_a_background_loop_and_snapshot_works),
		cmocka_unit_test(destroy_leaves_no_process_and_no_unit),
		cmocka_unit_test(the_command_holds_only_its_stdio),
		cmocka_unit_test(a_missing_program_is_an_error_naming_it),
		cmocka_unit_test(bad_input_is_refused),
		cmocka_unit_test(a_sandbox_has_at_most_64_terminals),
		cmocka_unit_test(process_backends_answer_enotsup),
		cmocka_unit_test(tty_is_a_terminal_of_the_sandbox_with_its_size),
		cmocka_unit_test(tty_default_size_and_signals_from_the_keyboard),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
