/* test_durable.c: who a container sandbox belongs to (its creating process, not a thread),
 * and durable sandboxes through the public API — persist, the owner exits or is killed, a
 * new process adopts: files, background processes and their output, execs lost meanwhile,
 * a new exec, a destroy that leaves nothing. Root only (real sandboxes). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentd.h"
#include "container_util.h"
/* The wire format of the init's endpoint: what a planted socket forges. */
#include "lib/backends/container/container.h"

#define WAIT_MS 30000

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A 0700 directory for endpoints, removed (with what is left in it) at the end. */
static char *endpoint_dir(void)
{
	char *d = strdup("/tmp/agentd-durable-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void remove_dir(char *d)
{
	DIR *dir = opendir(d);
	struct dirent *e;
	while (dir && (e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		char p[512];
		snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
		unlink(p);
	}
	if (dir)
		closedir(dir);
	rmdir(d);
	free(d);
}

static int dir_entries(const char *d)
{
	int n = 0;
	DIR *dir = opendir(d);
	struct dirent *e;
	while (dir && (e = readdir(dir)))
		n += e->d_name[0] != '.';
	if (dir)
		closedir(dir);
	return n;
}

/* The sandbox's cgroup exists in some hierarchy (v1 or v2). */
static bool cgroup_left(const char *id)
{
	static const char *const bases[] = {"/sys/fs/cgroup/agentd", "/sys/fs/cgroup/unified/agentd",
					    "/sys/fs/cgroup/memory/agentd", "/sys/fs/cgroup/pids/agentd",
					    "/sys/fs/cgroup/freezer/agentd", "/sys/fs/cgroup/cpu/agentd"};
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		char p[256];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", bases[i], id);
		if (stat(p, &st) == 0)
			return true;
	}
	return false;
}

/* A lease file of /run/agentd/ids names the sandbox (its host uid not released). */
static bool lease_left(const char *id)
{
	DIR *dir = opendir("/run/agentd/ids");
	struct dirent *e;
	bool found = false;
	while (dir && (e = readdir(dir)) && !found) {
		char p[512], v[64] = "";
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/run/agentd/ids/%s", e->d_name);
		ssize_t n = getxattr(p, "trusted.agentd.sandbox", v, sizeof(v) - 1);
		if (n < 0) {
			int fd = open(p, O_RDONLY | O_CLOEXEC);
			n = fd >= 0 ? read(fd, v, sizeof(v) - 1) : -1;
			if (fd >= 0)
				close(fd);
		}
		v[n > 0 ? n : 0] = '\0';
		found = strcmp(v, id) == 0;
	}
	if (dir)
		closedir(dir);
	return found;
}

/* Until nothing of sandbox id is left (its cgroup, its lease) or WAIT_MS. */
static bool gone_in_time(const char *id)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	while (now_ms() < deadline) {
		if (!cgroup_left(id) && !lease_left(id))
			return true;
		usleep(50 * 1000);
	}
	fprintf(stderr, "sandbox %s: cgroup %s, lease %s\n", id, cgroup_left(id) ? "left" : "gone",
		lease_left(id) ? "left" : "gone");
	return false;
}

static agentd_spec strict_spec(void)
{
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	return spec;
}

/* The directory of this program (and of sbxprobe, the static probe of the suites). */
static const char *build_tests_dir(void)
{
	static char dir[512];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	dir[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	return dir;
}

/* Network allowlist of one loopback port, this program's dir readable (sbxprobe). */
static agentd_spec allowlist_spec(int port)
{
	agentd_spec spec = strict_spec();
	char entry[64];
	snprintf(entry, sizeof(entry), "127.0.0.1:%d", port);
	spec.network.mode = AGENTD_NET_ALLOWLIST;
	spec.network.allow.v = calloc(2, sizeof(char *));
	spec.network.allow.v[0] = strdup(entry);
	spec.network.allow.n = 1;
	spec.allowed_paths_ro.v = calloc(2, sizeof(char *));
	spec.allowed_paths_ro.v[0] = strdup(build_tests_dir());
	spec.allowed_paths_ro.n = 1;
	return spec;
}

struct owner_result {
	char id[AGENTD_ID_LEN];
	char token[1024];
	int64_t proc_pid;
};

static void *exec_forever(void *arg)
{
	agentd_sandbox *sb = arg;
	/* with a descendant outside its process group: its kill unit holds it */
	char *argv[] = {"/bin/sh", "-c", "setsid sleep 300 & exec sleep 100", NULL};
	agentd_command cmd = {.argv = argv};
	agentd_exec_output o;
	agentd_sandbox_exec(sb, &cmd, NULL, &o, NULL);
	return NULL;
}

/* The owner, a fresh process (this program run as "owner DIR MODE", the library's state its
 * own): create a sandbox, persist it under DIR ("-": not durable), write a file, start a
 * process that writes a line every 0.2 s and an exec that sleeps; report on fd 3, then
 * _exit without a destroy (MODE "exit") or wait for the parent's SIGKILL ("kill9"). */
static int owner_main(const char *dir, const char *mode)
{
	agentd_backend *b = NULL;
	agentd_error err = {0};
	agentd_spec spec = strict_spec();
	agentd_sandbox *sb = NULL;
	struct owner_result r = {0};
	char *tok = NULL;
	bool suspend = strcmp(mode, "suspend") == 0; /* suspended, then persisted */
	if (strncmp(mode, "allow", 5) == 0) { /* allowlist of 127.0.0.1:<port> */
		agentd_spec_free(&spec);
		spec = allowlist_spec(atoi(mode + 5));
	}
	if (agentd_create_backend("container", NULL, &b, &err) < 0 ||
	    agentd_backend_create_sandbox(b, &spec, &sb, &err) < 0 ||
	    (strcmp(dir, "-") != 0 && !suspend && agentd_sandbox_persist(sb, dir, &tok, &err) < 0)) {
		fprintf(stderr, "owner: %s\n", err.msg);
		return 1;
	}
	char out[64];
	if (sh_exec(sb, "echo kept > /workspace/file", 0, out, sizeof(out)) != 0)
		return 2;
	char *argv[] = {"/bin/sh", "-c",
			"setsid sleep 400 & i=0; while :; do i=$((i+1)); echo line$i; sleep 0.2; "
			"done", NULL};
	agentd_command cmd = {.argv = argv};
	agentd_process *proc = NULL;
	if (agentd_sandbox_spawn(sb, &cmd, NULL, &proc, &err) < 0) {
		fprintf(stderr, "owner: %s\n", err.msg);
		return 3;
	}
	pthread_t t;
	pthread_create(&t, NULL, exec_forever, sb);
	usleep(500 * 1000); /* the exec runs */
	if (suspend && (agentd_sandbox_suspend(sb, &err) < 0 ||
			agentd_sandbox_persist(sb, dir, &tok, &err) < 0)) {
		fprintf(stderr, "owner: %s\n", err.msg);
		return 5;
	}
	snprintf(r.id, sizeof(r.id), "%s", agentd_sandbox_id(sb));
	snprintf(r.token, sizeof(r.token), "%s", tok ? tok : "");
	r.proc_pid = agentd_process_pid(proc);
	if (write(3, &r, sizeof(r)) != (ssize_t)sizeof(r))
		return 4;
	if (strcmp(mode, "kill9") == 0)
		pause();
	_exit(0); /* no destroy */
}

static void owner_run_mode(const char *dir, struct owner_result *res, const char *mode);

/* Run the owner (dir NULL: not durable) until it reported, then let it exit or kill it. */
static void owner_run(const char *dir, struct owner_result *res, bool kill9)
{
	owner_run_mode(dir, res, kill9 ? "kill9" : "exit");
}

static void owner_run_mode(const char *dir, struct owner_result *res, const char *mode)
{
	bool kill9 = strcmp(mode, "kill9") == 0;
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 3);
		execl("/proc/self/exe", "test_durable", "owner", dir ? dir : "-", mode,
		      (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	ssize_t n = read(p[0], res, sizeof(*res));
	close(p[0]);
	assert_int_equal(n, (ssize_t)sizeof(*res));
	if (kill9)
		kill(pid, SIGKILL);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
}

/* A durable sandbox its owner left (mode: owner_main's), in a fresh endpoint dir. */
static char *left_by_owner(struct owner_result *r, const char *mode)
{
	if (!backend)
		skip();
	char *dir = endpoint_dir();
	owner_run_mode(dir, r, mode);
	return dir;
}

/* ------------------------------------------------------------- ownership */

static void *create_on_thread(void *arg)
{
	*(agentd_sandbox **)arg = new_sandbox();
	return NULL;
}

/* The creating thread exits: the sandbox is the process's, and serves another thread. */
static void a_sandbox_outlives_the_thread_that_created_it(void **state)
{
	(void)state;
	if (!backend)
		skip();
	agentd_sandbox *sb = NULL;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, create_on_thread, &sb), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_non_null(sb);
	usleep(300 * 1000); /* what a parent-death signal would have done, it has done by now */
	assert_true(agentd_sandbox_is_alive(sb));
	char out[64];
	assert_int_equal(sh_exec(sb, "echo alive", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "alive\n");
	assert_int_equal(agentd_sandbox_destroy(sb, NULL), 0);
}

/* Its owner process exits without a destroy: a sandbox that is not durable ends with it
 * and leaves nothing (cgroup, host uid lease). */
static void a_sandbox_ends_with_its_owner_process(void **state)
{
	(void)state;
	if (!backend)
		skip();
	struct owner_result r;
	owner_run(NULL, &r, false);
	assert_true(r.id[0]);
	assert_true(gone_in_time(r.id));
}

/* ------------------------------------------------------------- durable */

/* Read what fd has until it holds want or WAIT_MS passed. */
static bool read_until(int fd, const char *want, char *buf, size_t len)
{
	size_t got = 0;
	uint64_t deadline = now_ms() + WAIT_MS;
	buf[0] = '\0';
	while (now_ms() < deadline && !strstr(buf, want)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 200) <= 0)
			continue;
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n <= 0)
			continue;
		got += (size_t)n;
		buf[got] = '\0';
		if (got == len - 1)
			got = 0;
	}
	return strstr(buf, want) != NULL;
}

/* Adopt r with spec (NULL: the strict profile's, as the owner made it); NULL + *errnum. */
static agentd_sandbox *adopt_as(const struct owner_result *r, const agentd_spec *spec,
				int *errnum)
{
	agentd_spec strict = strict_spec();
	agentd_sandbox *sb = NULL;
	agentd_error err = {0};
	int rc = agentd_backend_adopt(backend, spec ? spec : &strict, r->id, r->token, &sb, &err);
	agentd_spec_free(&strict);
	if (rc < 0)
		fprintf(stderr, "adopt: %s\n", err.msg);
	*errnum = rc < 0 ? err.code : 0;
	return rc < 0 ? NULL : sb;
}

static agentd_sandbox *adopt(const struct owner_result *r, int *errnum)
{
	return adopt_as(r, NULL, errnum);
}

/* Adopt r: refused with want; then the sandbox (killed for EPERM and ESRCH) leaves nothing
 * behind once the stale cleanup ran. */
static void assert_refused(const struct owner_result *r, int want, char *dir)
{
	int e;
	agentd_sandbox *sb = adopt(r, &e);
	if (sb)
		agentd_sandbox_destroy(sb, NULL);
	assert_null(sb);
	assert_int_equal(e, want);
	if (want != EPERM && want != ESRCH)
		return;
	agentd_cleanup_stale_sandbox(agentd_backend_work_root(backend), r->id);
	assert_true(gone_in_time(r->id));
	remove_dir(dir);
}

/* Hand sb's processes back, destroy: nothing is left. */
static void destroy_adopted(agentd_sandbox *sb, const struct owner_result *r, char *dir)
{
	agentd_adoption a;
	agentd_sandbox_adopted(sb, &a, NULL);
	for (size_t i = 0; i < a.n_processes; i++)
		agentd_process_free(a.processes[i]);
	agentd_adoption_free(&a);
	assert_int_equal(agentd_sandbox_destroy(sb, NULL), 0);
	assert_true(gone_in_time(r->id));
	remove_dir(dir);
}

/* Adopt r (it must work), then destroy_adopted. */
static void adopt_and_destroy(const struct owner_result *r, char *dir)
{
	int e;
	agentd_sandbox *sb = adopt(r, &e);
	assert_non_null(sb);
	destroy_adopted(sb, r, dir);
}

/* Until the sandbox runs want processes whose command line is cmd (WAIT_MS at most). */
static bool procs_in_sandbox(agentd_sandbox *sb, const char *cmd, int want)
{
	char script[512], out[64];
	snprintf(script, sizeof(script),
		 "n=0; for f in /proc/[0-9]*/cmdline; do "
		 "[ \"$(tr '\\0' ' ' < $f 2>/dev/null)\" = '%s ' ] && n=$((n+1)); done; echo $n",
		 cmd);
	uint64_t deadline = now_ms() + WAIT_MS;
	while (now_ms() < deadline) {
		if (sh_exec(sb, script, 0, out, sizeof(out)) == 0 && atoi(out) == want)
			return true;
		usleep(100 * 1000);
	}
	fprintf(stderr, "%s: %s running, want %d\n", cmd, out, want);
	return false;
}

/* What ran across the gap comes back; a new exec works; destroy leaves nothing. */
static void check_adopted(const struct owner_result *r, const char *dir)
{
	int e;
	uint64_t t0 = now_ms();
	agentd_sandbox *sb = adopt(r, &e);
	assert_non_null(sb);
	fprintf(stderr, "adopt took %llu ms\n", (unsigned long long)(now_ms() - t0));
	assert_true(agentd_sandbox_is_durable(sb));
	char out[256];
	assert_int_equal(sh_exec(sb, "cat /workspace/file", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "kept\n");

	agentd_adoption a;
	assert_int_equal(agentd_sandbox_adopted(sb, &a, NULL), 0);
	assert_int_equal(a.n_processes, 1);
	assert_int_equal(a.n_execs, 1);
	assert_string_equal(a.execs[0].argv[0], "/bin/sh");
	assert_non_null(strstr(a.execs[0].argv[2], "sleep 100"));
	assert_int_equal(a.execs[0].exit_code, 137);
	assert_true(a.execs[0].ended_at_ms >= a.execs[0].started_at_ms);
	agentd_process *proc = a.processes[0];
	assert_int_equal(agentd_process_pid(proc), r->proc_pid);
	agentd_process_status st;
	assert_int_equal(agentd_process_get_status(proc, &st, NULL), 0);
	assert_true(st.running);
	/* the lines it wrote while nobody read, and it goes on */
	assert_true(read_until(agentd_process_stdout_fd(proc), "line1\n", out, sizeof(out)));
	assert_true(read_until(agentd_process_stdout_fd(proc), "\n", out, sizeof(out)));
	agentd_adoption_free(&a);
	/* handed over once */
	assert_int_equal(agentd_sandbox_adopted(sb, &a, NULL), 0);
	assert_int_equal(a.n_processes + a.n_execs, 0);

	assert_int_equal(sh_exec(sb, "echo new", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "new\n");
	/* the lost exec's whole tree is gone (its unit killed); the process's is there */
	assert_true(procs_in_sandbox(sb, "sleep 300", 0));
	assert_true(procs_in_sandbox(sb, "sleep 400", 1));
	assert_int_equal(agentd_process_kill(proc, NULL), 0);
	/* its kill unit known again: its setsid'd descendant dies with it */
	assert_true(procs_in_sandbox(sb, "sleep 400", 0));
	agentd_process_free(proc);
	char id[AGENTD_ID_LEN];
	snprintf(id, sizeof(id), "%s", r->id);
	assert_int_equal(agentd_sandbox_destroy(sb, NULL), 0);
	assert_true(gone_in_time(id));
	assert_int_equal(dir_entries(dir), 0); /* the endpoint went too */
}

/* The owner exits (mode "exit") or is killed ("kill9"); a new process adopts. */
static void outlives_its_owner(const char *mode)
{
	struct owner_result r;
	char *dir = left_by_owner(&r, mode);
	usleep(600 * 1000); /* output piles up while nobody reads */
	assert_true(cgroup_left(r.id));
	check_adopted(&r, dir);
	remove_dir(dir);
}

static void a_durable_sandbox_outlives_its_owner_process(void **state)
{
	(void)state;
	outlives_its_owner("exit");
}

static void a_durable_sandbox_outlives_a_kill_9_of_its_owner(void **state)
{
	(void)state;
	outlives_its_owner("kill9");
}

/* An allowlist sandbox's way out, its egress proxy, serves it again once adopted: the
 * listener its init kept is attached to this process's proxy. */
static void an_adopted_allowlist_sandbox_keeps_its_egress_proxy(void **state)
{
	(void)state;
	if (!backend)
		skip();
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(in);
	assert_int_equal(bind(l, (struct sockaddr *)&in, sizeof(in)), 0);
	assert_int_equal(listen(l, 16), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&in, &len), 0);
	int port = ntohs(in.sin_port);
	char mode[32];
	snprintf(mode, sizeof(mode), "allow%d", port);
	struct owner_result r;
	char *dir = left_by_owner(&r, mode);
	agentd_spec spec = allowlist_spec(port);
	int e;
	agentd_sandbox *sb = adopt_as(&r, &spec, &e);
	assert_non_null(sb);
	agentd_error err = {0};
	char probe[600], portstr[16];
	snprintf(probe, sizeof(probe), "%s/sbxprobe", build_tests_dir());
	snprintf(portstr, sizeof(portstr), "%d", port);
	char *argv[] = {probe, "proxy-resolve", "127.0.0.1", portstr, NULL};
	agentd_command cmd = {.argv = argv, .timeout_ms = 20000};
	agentd_exec_output o;
	assert_int_equal(agentd_sandbox_exec(sb, &cmd, NULL, &o, &err), 0);
	fprintf(stderr, "%.*s", (int)o.out_len, (const char *)o.out);
	assert_non_null(o.out);
	assert_non_null(strstr((const char *)o.out, "ALLOWED"));
	agentd_exec_output_free(&o);
	agentd_spec_free(&spec);
	close(l);
	destroy_adopted(sb, &r, dir);
}

/* Persisted while suspended: adopted suspended (nothing starts), and it resumes. */
static void a_suspended_durable_sandbox_is_adopted_suspended(void **state)
{
	(void)state;
	struct owner_result r;
	char *dir = left_by_owner(&r, "suspend");
	int e;
	agentd_sandbox *sb = adopt(&r, &e);
	assert_non_null(sb);
	char out[64];
	assert_int_equal(sh_exec(sb, "true", 0, out, sizeof(out)), -1); /* EBUSY: suspended */
	assert_int_equal(agentd_sandbox_resume(sb, NULL), 0);
	assert_int_equal(sh_exec(sb, "cat /workspace/file", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "kept\n");
	destroy_adopted(sb, &r, dir);
}

/* A durable init keeps ended processes until their handles are freed, but never at the
 * cost of new commands: 80 ended and still held, and a spawn and an exec still start. */
static void ended_processes_kept_for_the_host_do_not_block_new_commands(void **state)
{
	(void)state;
	agentd_sandbox *sb = new_sandbox();
	char *dir = endpoint_dir();
	char *tok = NULL;
	agentd_error err = {0};
	assert_int_equal(agentd_sandbox_persist(sb, dir, &tok, &err), 0);
	free(tok);
	enum { N = 80 };
	agentd_process *ps[N];
	char *argv[] = {"/bin/true", NULL};
	agentd_command cmd = {.argv = argv};
	for (int i = 0; i < N; i++) {
		int r = agentd_sandbox_spawn(sb, &cmd, NULL, &ps[i], &err);
		if (r < 0)
			fprintf(stderr, "spawn %d: %s\n", i, err.msg);
		assert_int_equal(r, 0);
		struct pollfd p = {.fd = agentd_process_wait_fd(ps[i]), .events = POLLIN};
		agentd_process_status st = {.running = true};
		uint64_t deadline = now_ms() + WAIT_MS;
		while (st.running && now_ms() < deadline) {
			poll(&p, 1, 100);
			agentd_process_get_status(ps[i], &st, NULL);
		}
		assert_false(st.running);
	}
	char out[64];
	assert_int_equal(sh_exec(sb, "echo still", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "still\n");
	for (int i = 0; i < N; i++)
		agentd_process_free(ps[i]);
	assert_int_equal(agentd_sandbox_destroy(sb, NULL), 0);
	remove_dir(dir);
}

/* Its init killed while nobody owned it: ESRCH, and the stale cleanup leaves nothing. */
static void a_durable_sandbox_whose_init_died_is_gone(void **state)
{
	(void)state;
	struct owner_result r;
	char *dir = left_by_owner(&r, "exit");
	int pid;
	assert_int_equal(sscanf(r.token, "v1:%d:", &pid), 1);
	assert_int_equal(kill(pid, SIGKILL), 0);
	usleep(300 * 1000);
	assert_refused(&r, ESRCH, dir);
}

/* The process backends cannot: ENOTSUP with the reason. */
static void process_backends_have_no_durable_sandboxes(void **state)
{
	(void)state;
	agentd_backend *b = NULL;
	agentd_error err = {0};
	assert_int_equal(agentd_create_backend("host-direct", NULL, &b, &err), 0);
	agentd_spec spec = strict_spec();
	agentd_sandbox *sb = NULL;
	agentd_create_opts opts = {.allow_degraded = true};
	int r = agentd_backend_create_sandbox_opts(b, &spec, &opts, &sb, &err);
	if (r < 0)
		fprintf(stderr, "create: %s\n", err.msg);
	assert_int_equal(r, 0);
	char *tok = NULL;
	assert_int_equal(agentd_sandbox_persist(sb, "/tmp", &tok, &err), -1);
	assert_int_equal(err.code, ENOTSUP);
	assert_non_null(strstr(err.msg, "container backend"));
	assert_false(agentd_sandbox_is_durable(sb));
	agentd_sandbox *other = NULL;
	assert_int_equal(agentd_backend_adopt(b, &spec, "0123456789abcdef0123456789abcdef",
					      "v1:x", &other, &err), -1);
	assert_int_equal(err.code, ENOTSUP);
	/* probe says so: a warning here, the platform feature "durable" for container */
	agentd_backend_caps caps;
	assert_int_equal(agentd_backend_probe(b, &caps, &err), 0);
	bool said = false;
	for (size_t i = 0; i < caps.warnings.n; i++)
		said |= strstr(caps.warnings.v[i], "not durable") != NULL;
	assert_true(said);
	agentd_backend_caps_free(&caps);
	if (backend) {
		assert_int_equal(agentd_backend_probe(backend, &caps, &err), 0);
		bool durable = false;
		for (size_t i = 0; i < caps.platform_features.n; i++)
			durable |= strcmp(caps.platform_features.v[i], "durable") == 0;
		assert_true(durable);
		agentd_backend_caps_free(&caps);
	}
	agentd_spec_free(&spec);
	agentd_backend_free(b);
}

/* ------------------------------------------------------------- attacks on the re-adoption
 * (tests/security/test_durable_adopt.py runs these by name). Each owner persists and exits;
 * what then answers at the endpoint, or what the token says, is the attacker's. */

/* A planted endpoint at the token's path (the real one moved to path.real): it accepts one
 * host and sends it the forged hello h with fds. */
struct fake_init {
	char path[512], moved[520];
	int listener;
	struct durable_hello h;
	int fds[2], nfds;
	pthread_t thread;
};

static void *fake_init_main(void *arg)
{
	struct fake_init *f = arg;
	int s = accept4(f->listener, NULL, NULL, SOCK_CLOEXEC);
	if (s >= 0) {
		fds_send(s, &f->h, sizeof(f->h), f->fds, f->nfds);
		usleep(500 * 1000);
		close(s);
	}
	return NULL;
}

static pid_t token_pid(const char *token)
{
	int pid = 0;
	sscanf(token, "v1:%d:", &pid);
	return pid;
}

/* The endpoint's path in the token. */
static const char *token_path(const char *token)
{
	return strchr(token, '/');
}

/* The hello (version, kept mask) sent with the real init's pidfd (and extra, if >= 0). */
static void plant_endpoint(struct fake_init *f, const struct owner_result *r, uint32_t version,
			   uint32_t kept, int extra)
{
	snprintf(f->path, sizeof(f->path), "%s", token_path(r->token));
	snprintf(f->moved, sizeof(f->moved), "%s.real", f->path);
	assert_int_equal(rename(f->path, f->moved), 0);
	f->h = (struct durable_hello){.magic = DURABLE_MAGIC, .version = version, .kept = kept};
	f->fds[0] = (int)syscall(SYS_pidfd_open, token_pid(r->token), 0);
	assert_true(f->fds[0] >= 0);
	f->fds[1] = extra;
	f->nfds = extra >= 0 ? 2 : 1;
	f->listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	assert_int_equal(bind(f->listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->listener, 1), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_init_main, f), 0);
}

static void unplant_endpoint(struct fake_init *f)
{
	pthread_join(f->thread, NULL);
	close(f->fds[0]);
	close(f->listener);
}

/* Adopt with a planted endpoint, which sends the real init's pidfd and a pipe (as the root
 * fd): refused with EPERM, and the pipe closed (nothing it sent kept). know_secret: it
 * knows the secret (a leaked token). */
static void planted_endpoint_is_refused(bool know_secret)
{
	struct owner_result r;
	char *dir = left_by_owner(&r, "exit");
	int pp[2];
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	struct fake_init f;
	plant_endpoint(&f, &r, DURABLE_PROTO, 1u << KEPT_PIDFD | 1u << KEPT_ROOT, pp[1]);
	if (know_secret) {
		/* ...:SECRET:/path */
		const char *p = token_path(r.token) - 1 - 2 * DURABLE_SECRET_LEN;
		for (int i = 0; i < DURABLE_SECRET_LEN; i++) {
			unsigned v;
			sscanf(p + 2 * i, "%2x", &v);
			f.h.secret[i] = (uint8_t)v;
		}
	}
	int e;
	agentd_sandbox *sb = adopt(&r, &e);
	unplant_endpoint(&f);
	close(pp[1]);
	/* every copy of the pipe's write end is closed: the refused adopt kept none */
	struct pollfd p = {.fd = pp[0], .events = POLLIN};
	char c;
	bool closed = poll(&p, 1, 5000) == 1 && read(pp[0], &c, 1) == 0;
	close(pp[0]);
	if (sb)
		agentd_sandbox_destroy(sb, NULL);
	assert_null(sb);
	assert_int_equal(e, EPERM);
	assert_true(closed);
	/* the sandbox it could not prove was killed; the stale cleanup leaves nothing */
	agentd_cleanup_stale_sandbox(agentd_backend_work_root(backend), r.id);
	assert_true(gone_in_time(r.id));
	remove_dir(dir);
}

static void attack_planted_endpoint_without_the_secret_is_refused(void **state)
{
	(void)state;
	planted_endpoint_is_refused(false);
}

static void attack_planted_endpoint_with_a_leaked_secret_is_refused(void **state)
{
	(void)state;
	planted_endpoint_is_refused(true);
}

/* An init of a newer protocol than this build's (a downgrade): EPROTO, and the sandbox is
 * left as it was (a build that knows it adopts it). */
static void an_init_of_a_newer_protocol_is_left_alone(void **state)
{
	(void)state;
	struct owner_result r;
	char *dir = left_by_owner(&r, "exit");
	struct fake_init f;
	plant_endpoint(&f, &r, DURABLE_PROTO + 1, 1u << KEPT_PIDFD, -1);
	assert_refused(&r, EPROTO, dir);
	unplant_endpoint(&f);
	assert_int_equal(rename(f.moved, f.path), 0); /* back at its place: adopted */
	adopt_and_destroy(&r, dir);
}

/* The start time (field 22 of /proc/pid/stat) of pid. */
static unsigned long long start_time(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *fp = fopen(path, "re");
	assert_non_null(fp);
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	char *q = strrchr(buf, ')') + 2;
	for (int i = 3; i < 22; i++)
		q = strchr(q, ' ') + 1;
	return strtoull(q, NULL, 10);
}

/* The real init answers, but the token names another pid (a live process of ours: forged)
 * or the init's pid with another start time (reused): EPERM. */
static void edited_token_is_refused(bool forged)
{
	struct owner_result r;
	char *dir = left_by_owner(&r, "exit");
	struct owner_result bad = r;
	int pid;
	unsigned long long start;
	char rest[1024];
	assert_int_equal(sscanf(r.token, "v1:%d:%llu:%1023s", &pid, &start, rest), 3);
	pid_t other = forged ? fork() : -1;
	if (other == 0) {
		pause();
		_exit(0);
	}
	if (forged) {
		usleep(100 * 1000);
		pid = other;
		start = start_time(other);
	} else {
		start++;
	}
	snprintf(bad.token, sizeof(bad.token), "v1:%d:%llu:%s", pid, start, rest);
	assert_refused(&bad, EPERM, dir);
	if (forged) {
		kill(other, SIGKILL);
		waitpid(other, NULL, 0);
	}
}

static void attack_reused_pid_is_refused(void **state)
{
	(void)state;
	edited_token_is_refused(false);
}

static void attack_forged_pid_is_refused(void **state)
{
	(void)state;
	edited_token_is_refused(true);
}

/* A process in the sandbox's pid namespace (this test's grandchild, setns'd into it, so it
 * can even see the endpoint) connects: the init hangs up without a word. The real adopt
 * then works, and a command inside cannot see the endpoint at all. */
static void attack_sandbox_process_cannot_become_its_host(void **state)
{
	(void)state;
	struct owner_result r;
	char *dir = left_by_owner(&r, "exit");
	const char *path = token_path(r.token);
	pid_t child = fork();
	if (child == 0) {
		int pidfd = (int)syscall(SYS_pidfd_open, token_pid(r.token), 0);
		if (pidfd < 0 || setns(pidfd, CLONE_NEWPID) < 0)
			_exit(2);
		pid_t g = fork();
		if (g == 0) {
			int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
			struct sockaddr_un sa = {.sun_family = AF_UNIX};
			snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
			if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
				_exit(0); /* not even connected */
			char buf[256];
			struct pollfd p = {.fd = s, .events = POLLIN};
			if (poll(&p, 1, 10000) != 1)
				_exit(3);
			_exit(recv(s, buf, sizeof(buf), 0) > 0 ? 1 : 0); /* 1: it was answered */
		}
		int st;
		waitpid(g, &st, 0);
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 4);
	}
	int st;
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	int e;
	agentd_sandbox *sb = adopt(&r, &e);
	assert_non_null(sb);
	char cmd[600], out[64];
	snprintf(cmd, sizeof(cmd), "test -e '%s' && echo visible || echo hidden", path);
	assert_int_equal(sh_exec(sb, cmd, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "hidden\n");
	destroy_adopted(sb, &r, dir);
}

/* bench/adopt.sh: n sandboxes persisted by an owner that exits, then adopted one after
 * the other; prints the time per adopt (not a test: nothing is asserted on timing). */
static int owner_many(const char *dir, int n)
{
	agentd_backend *b = NULL;
	agentd_error err = {0};
	if (agentd_create_backend("container", NULL, &b, &err) < 0)
		return 1;
	for (int i = 0; i < n; i++) {
		agentd_spec spec = strict_spec();
		agentd_sandbox *sb = NULL;
		struct owner_result r = {0};
		char *tok = NULL;
		if (agentd_backend_create_sandbox(b, &spec, &sb, &err) < 0 ||
		    agentd_sandbox_persist(sb, dir, &tok, &err) < 0) {
			fprintf(stderr, "owner: %s\n", err.msg);
			return 1;
		}
		snprintf(r.id, sizeof(r.id), "%s", agentd_sandbox_id(sb));
		snprintf(r.token, sizeof(r.token), "%s", tok);
		if (write(3, &r, sizeof(r)) != (ssize_t)sizeof(r))
			return 1;
	}
	_exit(0);
}

static int bench_main(int n)
{
	if (setup(NULL) < 0 || !backend)
		return 1;
	char *dir = endpoint_dir();
	int p[2];
	if (pipe(p) < 0)
		return 1;
	char num[16];
	snprintf(num, sizeof(num), "%d", n);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 3);
		execl("/proc/self/exe", "test_durable", "owner-many", dir, num, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	struct owner_result *r = calloc((size_t)n, sizeof(*r));
	int got = 0;
	while (got < n && read(p[0], &r[got], sizeof(*r)) == (ssize_t)sizeof(*r))
		got++;
	waitpid(pid, NULL, 0);
	agentd_sandbox **sbs = calloc((size_t)n, sizeof(*sbs));
	uint64_t t0 = now_ms();
	int ok = 0;
	for (int i = 0; i < got; i++) {
		int e;
		if ((sbs[i] = adopt(&r[i], &e)))
			ok++;
	}
	uint64_t dt = now_ms() - t0;
	printf("adopted %d of %d sandboxes in %llu ms (%.2f ms each)\n", ok, n,
	       (unsigned long long)dt, ok ? (double)dt / ok : 0.0);
	for (int i = 0; i < got; i++)
		if (sbs[i])
			agentd_sandbox_destroy(sbs[i], NULL);
	free(sbs);
	free(r);
	remove_dir(dir);
	teardown(NULL);
	return ok == n ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "owner-many") == 0)
		return owner_many(argv[2], atoi(argv[3]));
	if (argc == 3 && strcmp(argv[1], "bench") == 0)
		return bench_main(atoi(argv[2]));
	if (argc == 4 && strcmp(argv[1], "owner") == 0)
		return owner_main(argv[2], argv[3]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_sandbox_outlives_the_thread_that_created_it),
		cmocka_unit_test(a_sandbox_ends_with_its_owner_process),
		cmocka_unit_test(a_durable_sandbox_outlives_its_owner_process),
		cmocka_unit_test(a_durable_sandbox_outlives_a_kill_9_of_its_owner),
		cmocka_unit_test(a_suspended_durable_sandbox_is_adopted_suspended),
		cmocka_unit_test(an_adopted_allowlist_sandbox_keeps_its_egress_proxy),
		cmocka_unit_test(a_durable_sandbox_whose_init_died_is_gone),
		cmocka_unit_test(ended_processes_kept_for_the_host_do_not_block_new_commands),
		cmocka_unit_test(process_backends_have_no_durable_sandboxes),
		cmocka_unit_test(attack_planted_endpoint_without_the_secret_is_refused),
		cmocka_unit_test(attack_planted_endpoint_with_a_leaked_secret_is_refused),
		cmocka_unit_test(attack_reused_pid_is_refused),
		cmocka_unit_test(attack_forged_pid_is_refused),
		cmocka_unit_test(attack_sandbox_process_cannot_become_its_host),
		cmocka_unit_test(an_init_of_a_newer_protocol_is_left_alone),
	};
	/* one test by name (tests/security/test_durable_adopt.py) */
	if (getenv("AGENTD_TEST_FILTER"))
		cmocka_set_test_filter(getenv("AGENTD_TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
