/* test_engine.c: exec.c, the one spawn path, with real commands and no cgroup: exit code vs
 * signal, stdout/stderr, stdin fed through the loop, the output cap, the timeout and cancel
 * killing the whole tree (a grandchild in its own session included), the report protocol
 * (child_fail from child_setup, 126/127), and the orphan sweep that reaps what is reparented
 * to us while leaving the janitor and other execs' mains alone. Every command runs under a
 * short timeout; nothing forks without bound. */
#include "lib/core/core.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

static char env_path[] = "PATH=/usr/bin:/bin";
static char *envp[] = {env_path, NULL};
static char tmpdir[64];

struct run {
	exec_request req;
	agentd_exec_output out;
	agentd_error err;
	int rc;
};

static void req_init(struct run *r, char **argv)
{
	memset(r, 0, sizeof(*r));
	r->req.argv = argv;
	r->req.envp = envp;
	r->req.stdin_null = true;
	r->req.timeout_ms = 10000; /* every command is bounded */
	r->req.max_output_bytes = 1 << 20;
}

static void run(struct run *r)
{
	r->rc = exec_run(&r->req, &r->out, &r->err);
}

static void run_free(struct run *r)
{
	agentd_exec_output_free(&r->out);
}

static const char *out_str(const struct run *r)
{
	return r->out.out ? (const char *)r->out.out : "";
}

static const char *err_str(const struct run *r)
{
	return r->out.err ? (const char *)r->out.err : "";
}

/* A process that no longer exists (reaped: not even a zombie). */
static bool gone(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

/* No zombie child of ours is left unreaped. */
static void assert_no_zombies(void)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	int r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
	assert_true((r < 0 && errno == ECHILD) || (r == 0 && si.si_pid == 0));
}

static size_t count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	size_t n = 0;
	for (struct dirent *de; (de = readdir(d));)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int group_setup(void **state __attribute__((unused)))
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/agentd-test-engine-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state __attribute__((unused)))
{
	rm_rf(tmpdir);
	return 0;
}

/* ---------------------------------------------------------------- verdicts */

static void exit_code_and_streams(void **state __attribute__((unused)))
{
	char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 7", NULL};
	struct run r;
	req_init(&r, argv);
	run(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.out.exit_code, 7);
	assert_int_equal(r.out.term_signal, 0);
	assert_string_equal(out_str(&r), "out\n");
	assert_string_equal(err_str(&r), "err\n");
	assert_false(r.out.timed_out);
	assert_false(r.out.output_truncated);
	assert_int_equal(r.out.limit_hit, AGENTD_LIMIT_NONE);
	assert_false(r.out.resource_limited);
	assert_true(r.out.duration_ms < 5000);
	run_free(&r);

	char *t[] = {"true", NULL};
	req_init(&r, t);
	run(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.out.exit_code, 0);
	assert_int_equal(r.out.out_len, 0);
	run_free(&r);
}

static void signal_reported(void **state __attribute__((unused)))
{
	char *term[] = {"sh", "-c", "kill -TERM $$; sleep 5", NULL};
	struct run r;
	req_init(&r, term);
	run(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.out.term_signal, SIGTERM);
	assert_int_equal(r.out.exit_code, 128 + SIGTERM);
	assert_false(r.out.timed_out);
	run_free(&r);

	char *kill9[] = {"sh", "-c", "kill -KILL $$; sleep 5", NULL};
	req_init(&r, kill9);
	run(&r);
	assert_int_equal(r.out.term_signal, SIGKILL);
	assert_int_equal(r.out.exit_code, 128 + SIGKILL);
	assert_int_equal(r.out.limit_hit, AGENTD_LIMIT_NONE); /* no cpu limit: no attribution */
	run_free(&r);

	/* Exiting with 137 is an exit, not a signal. */
	char *e137[] = {"sh", "-c", "exit 137", NULL};
	req_init(&r, e137);
	run(&r);
	assert_int_equal(r.out.exit_code, 137);
	assert_int_equal(r.out.term_signal, 0);
	run_free(&r);
}

static void signals_reset_for_the_command(void **state __attribute__((unused)))
{
	/* What this process ignores or blocks is not what a command expects. */
	sigset_t usr1, old;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, &old);
	struct sigaction ign = {.sa_handler = SIG_IGN}, oldint, oldpipe;
	sigaction(SIGINT, &ign, &oldint);
	sigaction(SIGPIPE, &ign, &oldpipe);

	char *argv[] = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL};
	struct run r;
	req_init(&r, argv);
	run(&r);

	pthread_sigmask(SIG_SETMASK, &old, NULL);
	sigaction(SIGINT, &oldint, NULL);
	sigaction(SIGPIPE, &oldpipe, NULL);

	assert_int_equal(r.out.exit_code, 0);
	assert_string_equal(out_str(&r), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
	run_free(&r);
}

/* ---------------------------------------------------------------- stdin, output */

static void stdin_fed(void **state __attribute__((unused)))
{
	/* Several pipe buffers' worth, written while the output is drained. */
	size_t n = 300000;
	uint8_t *data = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	char *cat[] = {"cat", NULL};
	struct run r;
	req_init(&r, cat);
	r.req.stdin_null = false;
	r.req.stdin_data = data;
	r.req.stdin_len = n;
	run(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.out.exit_code, 0);
	assert_int_equal(r.out.out_len, n);
	assert_memory_equal(r.out.out, data, n);
	run_free(&r);
	free(data);

	/* Empty stdin: EOF at once. */
	req_init(&r, cat);
	r.req.stdin_null = false;
	r.req.stdin_data = (const uint8_t *)"";
	r.req.stdin_len = 0;
	run(&r);
	assert_int_equal(r.out.exit_code, 0);
	assert_int_equal(r.out.out_len, 0);
	assert_true(r.out.duration_ms < 5000);
	run_free(&r);

	/* stdin_null wins over data: /dev/null. */
	char *rd[] = {"sh", "-c", "if read x; then echo got; else echo eof; fi", NULL};
	req_init(&r, rd);
	r.req.stdin_null = true;
	r.req.stdin_data = (const uint8_t *)"line\n";
	r.req.stdin_len = 5;
	run(&r);
	assert_string_equal(out_str(&r), "eof\n");
	run_free(&r);

	/* A command that does not read its stdin does not hang the loop. */
	char *t[] = {"true", NULL};
	uint8_t *big = xcalloc(1, 1 << 20);
	req_init(&r, t);
	r.req.stdin_null = false;
	r.req.stdin_data = big;
	r.req.stdin_len = 1 << 20;
	run(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.out.exit_code, 0);
	assert_false(r.out.timed_out);
	run_free(&r);
	free(big);
}

struct counted {
	size_t out, err;
};

static void count_cb(void *userdata, agentd_stream s, const uint8_t *buf, size_t n)
{
	struct counted *c = userdata;
	(void)buf;
	if (s == AGENTD_STREAM_STDOUT)
		c->out += n;
	else
		c->err += n;
}

static void output_cap(void **state __attribute__((unused)))
{
	char *zeros[] = {"head", "-c", "100000", "/dev/zero", NULL};
	struct run r;
	struct counted c = {0};
	req_init(&r, zeros);
	r.req.max_output_bytes = 1000;
	r.req.on_output = count_cb;
	r.req.userdata = &c;
	run(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.out.exit_code, 0);
	/* the first and the last 500 bytes, the marker between */
	static const char marker[] = "\n[... 99000 bytes omitted ...]\n";
	assert_int_equal(r.out.out_len, 1000 + strlen(marker));
	assert_memory_equal(r.out.out + 500, marker, strlen(marker));
	assert_true(r.out.output_truncated);
	assert_int_equal(r.out.limit_hit, AGENTD_LIMIT_OUTPUT);
	assert_true(r.out.resource_limited);
	/* the callback sees the first 1000 bytes live, then a marker and the last 500 */
	assert_int_equal(c.out, 1000 + strlen("\n[... 98500 bytes omitted ...]\n") + 500);
	run_free(&r);

	/* The cap is per stream: each keeps its head and its tail. */
	char *both[] = {"sh", "-c", "printf 0123456789; printf abcdefghij >&2", NULL};
	memset(&c, 0, sizeof(c));
	req_init(&r, both);
	r.req.max_output_bytes = 6;
	r.req.on_output = count_cb;
	r.req.userdata = &c;
	run(&r);
	assert_string_equal((char *)r.out.out, "012\n[... 4 bytes omitted ...]\n789");
	assert_string_equal((char *)r.out.err, "abc\n[... 4 bytes omitted ...]\nhij");
	assert_int_equal(c.out, 6 + 3 + strlen("\n[... 1 byte omitted ...]\n"));
	assert_true(r.out.output_truncated);
	assert_int_equal(r.out.limit_hit, AGENTD_LIMIT_OUTPUT);
	run_free(&r);

	/* Exactly at the cap is not truncated. */
	char *ten[] = {"printf", "0123456789", NULL};
	req_init(&r, ten);
	r.req.max_output_bytes = 10;
	run(&r);
	assert_int_equal(r.out.out_len, 10);
	assert_memory_equal(r.out.out, "0123456789", 10);
	assert_false(r.out.output_truncated);
	assert_int_equal(r.out.limit_hit, AGENTD_LIMIT_NONE);
	run_free(&r);
}

/* ---------------------------------------------------------------- timeout, cancel, tree */

/* The grandchild prints its pid; the callback looks at it while it runs. */
struct watched {
	char buf[64];
	size_t len;
	pid_t pid;
	pid_t sid, pgrp, ppid;
	bool alive;
};

static void watch_cb(void *userdata, agentd_stream s, const uint8_t *buf, size_t n)
{
	struct watched *w = userdata;
	if (s != AGENTD_STREAM_STDOUT || w->pid)
		return;
	if (n > sizeof(w->buf) - 1 - w->len)
		n = sizeof(w->buf) - 1 - w->len;
	memcpy(w->buf + w->len, buf, n);
	w->len += n;
	w->buf[w->len] = '\0';
	if (!strchr(w->buf, '\n'))
		return;
	w->pid = (pid_t)atoi(w->buf);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)w->pid);
	_cleanup_free_ char *st = read_file_at(AT_FDCWD, path, 4096, NULL);
	char *rp = st ? strrchr(st, ')') : NULL;
	int ppid, pgrp, sid;
	if (rp && sscanf(rp + 1, " %*c %d %d %d", &ppid, &pgrp, &sid) == 3) {
		w->alive = true;
		w->ppid = ppid;
		w->pgrp = pgrp;
		w->sid = sid;
	}
}

/* Grandchild in a session of its own (outside the command's process group). */
#define ESCAPER "setsid sh -c 'echo $$; exec sleep 60' "

static void assert_escaped_then_gone(const struct watched *w)
{
	if (!w->pid)
		fail_msg("the grandchild never reported its pid");
	assert_true(w->alive);
	assert_int_equal(w->sid, w->pid);	/* its own session... */
	assert_int_equal(w->pgrp, w->pid);	/* ...and process group */
	assert_true(gone(w->pid));
}

static void timeout_kills_the_whole_tree(void **state __attribute__((unused)))
{
	char *argv[] = {"sh", "-c", ESCAPER "& sleep 60", NULL};
	struct run r;
	struct watched w = {0};
	req_init(&r, argv);
	r.req.timeout_ms = 700;
	r.req.on_output = watch_cb;
	r.req.userdata = &w;
	run(&r);
	assert_int_equal(r.rc, 0);
	assert_true(r.out.timed_out);
	assert_int_equal(r.out.exit_code, 124);
	assert_int_equal(r.out.term_signal, SIGKILL);
	assert_true(r.out.duration_ms >= 650);
	assert_true(r.out.duration_ms < 5000);
	assert_escaped_then_gone(&w);
	assert_true(w.pgrp != w.ppid); /* not in the group of the shell that started it */
	assert_no_zombies();
	run_free(&r);
}

static void orphans_reaped_after_exit(void **state __attribute__((unused)))
{
	/* The main process exits, leaving a grandchild of its own session behind. */
	char *left[] = {"sh", "-c", ESCAPER "& sleep 0.3; exit 3", NULL};
	struct run r;
	struct watched w = {0};
	req_init(&r, left);
	r.req.on_output = watch_cb;
	r.req.userdata = &w;
	run(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.out.exit_code, 3);
	assert_false(r.out.timed_out);
	assert_true(r.out.duration_ms < 3000); /* not the grandchild's 60 s */
	assert_escaped_then_gone(&w);
	assert_no_zombies();
	run_free(&r);
	/* Without a cgroup, exec_run made us the subreaper the orphans come back to. */
	int sub = 0;
	assert_int_equal(prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0), 0);
	assert_int_equal(sub, 1);

	/* Double fork: the grandchild is reparented to us while the command still runs. */
	char *dbl[] = {"sh", "-c", "(" ESCAPER "&); sleep 0.3; exit 4", NULL};
	memset(&w, 0, sizeof(w));
	req_init(&r, dbl);
	r.req.on_output = watch_cb;
	r.req.userdata = &w;
	run(&r);
	assert_int_equal(r.out.exit_code, 4);
	assert_true(r.out.duration_ms < 3000);
	assert_escaped_then_gone(&w);
	assert_no_zombies();
	run_free(&r);
}

struct canceller {
	int fd;
	unsigned delay_ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *c = arg;
	struct timespec ts = {.tv_sec = c->delay_ms / 1000,
			      .tv_nsec = (long)(c->delay_ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
	if (write(c->fd, "x", 1) != 1)
		abort(); /* not a cmocka assert: this is not the test's thread */
	return NULL;
}

static void cancel_kills_the_tree(void **state __attribute__((unused)))
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	struct canceller c = {.fd = p[1], .delay_ms = 500};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_later, &c), 0);

	char *argv[] = {"sh", "-c", ESCAPER "& sleep 60", NULL};
	struct run r;
	struct watched w = {0};
	req_init(&r, argv);
	r.req.timeout_ms = 20000;
	r.req.cancel_fd = p[0];
	r.req.on_output = watch_cb;
	r.req.userdata = &w;
	run(&r);
	pthread_join(t, NULL);
	assert_int_equal(r.rc, 0);
	assert_false(r.out.timed_out);
	assert_int_equal(r.out.term_signal, SIGKILL);
	assert_int_equal(r.out.exit_code, 128 + SIGKILL);
	assert_true(r.out.duration_ms >= 450);
	assert_true(r.out.duration_ms < 5000);
	assert_escaped_then_gone(&w);
	assert_no_zombies();
	run_free(&r);
	close(p[0]);
	close(p[1]);
}

static void early_kill_reaches_the_command(void **state __attribute__((unused)))
{
	/* Cancelled before the child has made its own session, or a timeout that fires at
	 * once: the kill must still reach the command (bounded: 10 runs of sleep 3). */
	for (int i = 0; i < 10; i++) {
		int p[2];
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		assert_int_equal(write(p[1], "x", 1), 1);
		char *argv[] = {"sleep", "3", NULL};
		struct run r;
		req_init(&r, argv);
		r.req.cancel_fd = p[0];
		run(&r);
		close(p[0]);
		close(p[1]);
		if (r.out.duration_ms >= 2500)
			fail_msg("run %d: cancelled command ran for %llu ms", i,
				 (unsigned long long)r.out.duration_ms);
		assert_int_equal(r.out.term_signal, SIGKILL);
		run_free(&r);

		req_init(&r, argv);
		r.req.timeout_ms = 1;
		run(&r);
		if (r.out.duration_ms >= 2500)
			fail_msg("run %d: timed-out command ran for %llu ms", i,
				 (unsigned long long)r.out.duration_ms);
		assert_true(r.out.timed_out);
		assert_int_equal(r.out.exit_code, 124);
		run_free(&r);
	}
	assert_no_zombies();
}

/* ---------------------------------------------------------------- sweep spares */

struct bg_run {
	struct run r;
	char *argv[4];
};

static void *bg_exec(void *arg)
{
	struct bg_run *b = arg;
	run(&b->r);
	return NULL;
}

static void sweep_spares_other_execs(void **state __attribute__((unused)))
{
	/* A: a long command. B: ends (with an orphan to sweep) while A runs. A's main is a
	 * child of ours too; the sweep of B must leave it alone. */
	struct bg_run a = {.argv = {"sh", "-c", "sleep 1.5; echo alive", NULL}};
	req_init(&a.r, a.argv);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, bg_exec, &a), 0);
	struct timespec ts = {.tv_nsec = 300 * 1000000};
	nanosleep(&ts, NULL);

	char *argv[] = {"sh", "-c", ESCAPER "& sleep 0.2; exit 0", NULL};
	struct run b;
	struct watched w = {0};
	req_init(&b, argv);
	b.req.on_output = watch_cb;
	b.req.userdata = &w;
	run(&b);
	assert_int_equal(b.out.exit_code, 0);
	assert_escaped_then_gone(&w);
	run_free(&b);

	pthread_join(t, NULL);
	assert_int_equal(a.r.rc, 0);
	assert_int_equal(a.r.out.term_signal, 0);
	assert_int_equal(a.r.out.exit_code, 0);
	assert_string_equal(out_str(&a.r), "alive\n");
	run_free(&a.r);
	assert_no_zombies();
}

static void sweep_spares_the_janitor(void **state __attribute__((unused)))
{
	char watched_dir[128];
	snprintf(watched_dir, sizeof(watched_dir), "%s/janitor-watched", tmpdir);
	assert_int_equal(mkdir(watched_dir, 0700), 0);
	janitor_watch_dir(watched_dir);
	pid_t jpid = janitor_pid();
	assert_true(jpid > 0);

	char *argv[] = {"sh", "-c", ESCAPER "& sleep 0.2; exit 0", NULL};
	struct run r;
	struct watched w = {0};
	req_init(&r, argv);
	r.req.on_output = watch_cb;
	r.req.userdata = &w;
	run(&r);
	assert_int_equal(r.out.exit_code, 0);
	assert_escaped_then_gone(&w);
	run_free(&r);

	/* The janitor (a child of ours too) is alive and not a zombie. */
	assert_int_equal(kill(jpid, 0), 0);
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)jpid, &si, WEXITED | WNOHANG | WNOWAIT), 0);
	assert_int_equal(si.si_pid, 0);
	assert_int_equal(janitor_pid(), jpid);
	janitor_forget_dir(watched_dir);
	rmdir(watched_dir);
}

/* ---------------------------------------------------------------- report protocol */

static void setup_fails(void *arg, int errfd)
{
	const char *what = arg;
	child_fail(errfd, 125, EPERM, what);
}

static void setup_fails_126(void *arg, int errfd)
{
	(void)arg;
	child_fail(errfd, 126, EACCES, "exec-ish step");
}

static void setup_says_hello(void *arg, int errfd)
{
	(void)arg;
	/* stdio is already the capture pipes; errfd is fd 3, close-on-exec. */
	char msg[64];
	int n = snprintf(msg, sizeof(msg), "setup errfd=%d cloexec=%d\n", errfd,
			 (fcntl(errfd, F_GETFD) & FD_CLOEXEC) ? 1 : 0);
	if (write(1, msg, (size_t)n) < 0)
		child_fail(errfd, 125, errno, "write");
}

static void child_fail_reported(void **state __attribute__((unused)))
{
	char *argv[] = {"sh", "-c", "echo ran", NULL};
	struct run r;
	req_init(&r, argv);
	r.req.child_setup = setup_fails;
	r.req.child_arg = "test step landlock";
	run(&r);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.out.exit_code, 125);
	assert_int_equal(r.err.code, EPERM);
	assert_non_null(strstr(r.err.msg, "test step landlock"));
	assert_non_null(strstr(r.err.msg, strerror(EPERM)));
	assert_int_equal(r.out.out_len, 0); /* the command never ran */
	run_free(&r);

	/* A long message is cut, not overflowed. */
	char what[400];
	memset(what, 'w', sizeof(what) - 1);
	what[sizeof(what) - 1] = '\0';
	memcpy(what, "LONG", 4);
	req_init(&r, argv);
	r.req.child_setup = setup_fails;
	r.req.child_arg = what;
	run(&r);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.out.exit_code, 125);
	assert_non_null(strstr(r.err.msg, "LONGwww"));
	run_free(&r);

	/* 126/127 from the child are a result (the command could not start), with the
	 * reason on stderr. */
	req_init(&r, argv);
	r.req.child_setup = setup_fails_126;
	run(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.out.exit_code, 126);
	assert_non_null(strstr(err_str(&r), "exec-ish step"));
	assert_non_null(strstr(err_str(&r), strerror(EACCES)));
	run_free(&r);

	/* A setup that succeeds runs in the child before the command, stdio in place. */
	req_init(&r, argv);
	r.req.child_setup = setup_says_hello;
	run(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.out.exit_code, 0);
	assert_string_equal(out_str(&r), "setup errfd=3 cloexec=1\nran\n");
	run_free(&r);
}

static void not_found_and_not_executable(void **state __attribute__((unused)))
{
	struct run r;
	char *nf[] = {"agentd-test-no-such-command", NULL};
	req_init(&r, nf);
	run(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.out.exit_code, 127);
	assert_non_null(strstr(err_str(&r), "agentd-test-no-such-command"));
	run_free(&r);

	char *nf_abs[] = {"/nonexistent/agentd/cmd", NULL};
	req_init(&r, nf_abs);
	run(&r);
	assert_int_equal(r.out.exit_code, 127);
	run_free(&r);

	/* A script without an x bit (root too: execve needs one). */
	char script[128];
	snprintf(script, sizeof(script), "%s/noexec", tmpdir);
	int fd = open(script, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, "#!/bin/sh\necho hi\n", 18), 0);
	close(fd);
	char *ne[] = {script, NULL};
	req_init(&r, ne);
	run(&r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.out.exit_code, 126);
	assert_non_null(strstr(err_str(&r), strerror(EACCES)));
	assert_int_equal(r.out.out_len, 0);
	run_free(&r);

	/* Found on PATH but not executable: 126, not 127. */
	char pathvar[128];
	snprintf(pathvar, sizeof(pathvar), "PATH=/nonexistent:%s", tmpdir);
	char *penv[] = {pathvar, NULL};
	char *byname[] = {"noexec", NULL};
	req_init(&r, byname);
	r.req.envp = penv;
	run(&r);
	assert_int_equal(r.out.exit_code, 126);
	run_free(&r);

	/* A directory. */
	char *d[] = {tmpdir, NULL};
	req_init(&r, d);
	run(&r);
	assert_int_equal(r.out.exit_code, 126);
	run_free(&r);

	/* A cwd that does not exist is a setup failure (125). */
	char *t[] = {"true", NULL};
	req_init(&r, t);
	r.req.cwd = "/nonexistent/agentd-cwd";
	run(&r);
	assert_int_equal(r.rc, -1);
	assert_int_equal(r.out.exit_code, 125);
	assert_non_null(strstr(r.err.msg, "/nonexistent/agentd-cwd"));
	run_free(&r);

	/* And one that does is where the command runs. */
	char *pwd[] = {"pwd", NULL};
	req_init(&r, pwd);
	r.req.cwd = tmpdir;
	run(&r);
	char want[96];
	snprintf(want, sizeof(want), "%s\n", tmpdir);
	assert_string_equal(out_str(&r), want);
	run_free(&r);
}

static void exec_failure_codes(void **state __attribute__((unused)))
{
	assert_int_equal(exec_failure_code(-ENOENT), 127);
	assert_int_equal(exec_failure_code(-ENOTDIR), 127);
	assert_int_equal(exec_failure_code(-EACCES), 126);
	assert_int_equal(exec_failure_code(-ENOEXEC), 126);
	assert_int_equal(exec_failure_code(-EPERM), 126);
}

/* ---------------------------------------------------------------- bounded repetition */

static void no_fd_or_zombie_leaks(void **state __attribute__((unused)))
{
	size_t before = count_fds();
	for (int i = 0; i < 20; i++) {
		char *argv[] = {"sh", "-c", "echo x; echo y >&2", NULL};
		struct run r;
		req_init(&r, argv);
		r.req.stdin_null = false;
		r.req.stdin_data = (const uint8_t *)"in";
		r.req.stdin_len = 2;
		run(&r);
		assert_int_equal(r.out.exit_code, 0);
		assert_string_equal(out_str(&r), "x\n");
		run_free(&r);
	}
	char *nf[] = {"agentd-test-no-such-command", NULL};
	struct run r;
	req_init(&r, nf);
	run(&r);
	run_free(&r);
	assert_int_equal(count_fds(), before);
	assert_no_zombies();
}

/* ---------------------------------------------------------------- spawn_process */

static void spawned_main(void *arg)
{
	int *pipe = arg;
	/* Held until released: the parent's byte is already in the pipe. */
	char c;
	_exit(read(pipe[0], &c, 1) == 1 && c == 'h' ? 42 : 1);
}

static void spawn_process_hold_release_abort(void **state __attribute__((unused)))
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	struct spawn_opts o = {.hold = true, .child_fn = spawned_main, .child_arg = p};
	agentd_error err = {0};
	struct spawned sp;
	assert_int_equal(spawn_process(&o, &sp, &err), 0);
	assert_true(sp.pid > 0);
	assert_true(sp.pidfd >= 10); /* moved above the fds a child dup2s onto */
	assert_true(sp.hold_fd >= 0);
	/* What must come first (the uid maps of a container) happens while it is held. */
	assert_int_equal(write(p[1], "h", 1), 1);
	assert_int_equal(spawn_release(&sp, &err), 0);
	assert_int_equal(sp.hold_fd, -1);
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)sp.pidfd, &si, WEXITED), 0);
	assert_int_equal(si.si_code, CLD_EXITED);
	assert_int_equal(si.si_status, 42);
	close(sp.pidfd);

	/* Aborted while held: the child never runs child_fn, nothing is left. */
	assert_int_equal(spawn_process(&o, &sp, &err), 0);
	pid_t pid = sp.pid;
	spawn_abort(&sp);
	assert_int_equal(sp.pid, -1);
	assert_int_equal(sp.pidfd, -1);
	assert_int_equal(sp.hold_fd, -1);
	char c;
	assert_int_equal(read(p[0], &c, 1), -1); /* nothing was written */
	assert_true(gone(pid));
	assert_no_zombies();
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exit_code_and_streams),
		cmocka_unit_test(signal_reported),
		cmocka_unit_test(signals_reset_for_the_command),
		cmocka_unit_test(stdin_fed),
		cmocka_unit_test(output_cap),
		cmocka_unit_test(timeout_kills_the_whole_tree),
		cmocka_unit_test(orphans_reaped_after_exit),
		cmocka_unit_test(cancel_kills_the_tree),
		cmocka_unit_test(early_kill_reaches_the_command),
		cmocka_unit_test(sweep_spares_other_execs),
		cmocka_unit_test(child_fail_reported),
		cmocka_unit_test(not_found_and_not_executable),
		cmocka_unit_test(exec_failure_codes),
		cmocka_unit_test(no_fd_or_zombie_leaks),
		cmocka_unit_test(spawn_process_hold_release_abort),
		/* Last: the janitor stays our child until the test exits. */
		cmocka_unit_test(sweep_spares_the_janitor),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
