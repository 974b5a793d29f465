/* test_cgroup.c: cgroup/ against the real kernel (root only; skipped otherwise): limits in
 * the files, attach, kill of escaped descendants, freeze, usage, OOM and pids events, gc.
 * Tests of another host (v1 only, no cgroup.kill) run in a re-executed child made so. */
#include "lib/core/core.h"

#include <fcntl.h>
#include <glob.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

static agentd_platform plat;
static bool usable;		/* root and cgroup_probe says we may create cgroups */

static void need_root(void)
{
	if (!usable)
		skip();
}

static char *name_for(const char *what)
{
	return xasprintf("t-%s-%d", what, (int)getpid());
}

/* Where a controller's file lives: /sys/fs/cgroup/agentd/<name> on v2, else under the
 * controller's own mount (cpu may be a symlink to cpu,cpuacct). */
static char *cgfile(const char *ctrl, const char *name, const char *file)
{
	if (plat.cgroup_version == 2)
		return xasprintf("/sys/fs/cgroup/agentd/%s/%s", name, file);
	return xasprintf("/sys/fs/cgroup/%s/agentd/%s/%s", ctrl, name, file);
}

static char *slurp(const char *path)
{
	char *t = read_file_at(AT_FDCWD, path, 1 << 20, NULL);
	if (t)
		t[strcspn(t, "\n")] = '\0';
	return t;
}

static void assert_file(const char *ctrl, const char *name, const char *file, const char *want)
{
	_cleanup_free_ char *p = cgfile(ctrl, name, file);
	_cleanup_free_ char *t = slurp(p);
	if (!t)
		fail_msg("%s: %s", p, strerror(errno));
	if (strcmp(t, want) != 0)
		fail_msg("%s: got '%s', want '%s'", p, t, want);
}

/* How many agentd/<name> directories exist across every hierarchy. */
static size_t count_dirs(const char *name)
{
	_cleanup_free_ char *a = xasprintf("/sys/fs/cgroup/*/agentd/%s", name);
	_cleanup_free_ char *b = xasprintf("/sys/fs/cgroup/agentd/%s", name);
	glob_t g;
	size_t n = 0;

	if (glob(a, GLOB_NOSORT, NULL, &g) == 0)
		n += g.gl_pathc;
	globfree(&g);
	if (glob(b, GLOB_NOSORT, NULL, &g) == 0)
		n += g.gl_pathc;
	globfree(&g);
	return n;
}

static bool pid_listed(const char *ctrl, const char *name, pid_t pid)
{
	_cleanup_free_ char *p = cgfile(ctrl, name, "cgroup.procs");
	_cleanup_free_ char *t = read_file_at(AT_FDCWD, p, 1 << 20, NULL);
	for (char *s = t, *end; s && *s; s = end) {
		long v = strtol(s, &end, 10);
		if (end == s)
			break;
		if (v == pid)
			return true;
	}
	return false;
}

static void msleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

static void read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r = read(fd, (char *)buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		assert_true(r > 0);
		got += (size_t)r;
	}
}

static void write_full(int fd, const void *buf, size_t len)
{
	if (write(fd, buf, len) != (ssize_t)len)
		_exit(91);
}

/* Fork a child that joins cg (as exec.c's children do) and runs fn; its pipe comes back. */
static pid_t spawn_in(struct cgroup *cg, void (*fn)(int wfd), int *rfd)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		if (cgroup_attach_self(cg) != 0)
			_exit(90);
		fn(p[1]);
		_exit(0);
	}
	close(p[1]);
	*rfd = p[0];
	return pid;
}

static void reap_all(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static bool pid_gone(pid_t pid)
{
	char path[64], st[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	ssize_t n = read(fd, st, sizeof(st) - 1);
	close(fd);
	if (n <= 0)
		return true;
	st[n] = '\0';
	char *rp = strrchr(st, ')');
	return rp && (rp[2] == 'Z' || rp[2] == 'X');
}

/* Dead (reaped or zombie) within 2 s; an emptied cgroup can still have tasks finishing
 * do_exit(), and escaped ones come back to us (the subreaper) to be reaped. */
static bool wait_gone(pid_t pid)
{
	for (int i = 0; i < 200; i++) {
		reap_all();
		if (pid_gone(pid))
			return true;
		struct timespec ts = { 0, 10 * 1000000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

/* utime + stime in clock ticks */
static unsigned long long cpu_ticks(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_free_ char *t = read_file_at(AT_FDCWD, path, 4096, NULL);
	assert_non_null(t);
	char *p = strrchr(t, ')');
	assert_non_null(p);
	unsigned long long ut = 0, st = 0;
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt ut st */
	assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&ut, &st), 2);
	return ut + st;
}

/* ---------------------------------------------------------------- child bodies */

static void child_pause(int wfd)
{
	pid_t me = getpid();
	write_full(wfd, &me, sizeof(me));
	for (;;)
		pause();
}

/* Forks a grandchild that setsid()s and double-forks away, as a daemonizing tool would. */
static void child_escape(int wfd)
{
	pid_t me = getpid();
	write_full(wfd, &me, sizeof(me));
	pid_t g = fork();
	if (g == 0) {
		setsid();
		pid_t gg = fork();
		if (gg == 0) {
			pid_t x = getpid();
			write_full(wfd, &x, sizeof(x));
			for (;;)
				pause();
		}
		pid_t x = getpid();
		write_full(wfd, &x, sizeof(x));
		for (;;)
			pause();
	}
	for (;;)
		pause();
}

static void child_burn(int wfd)
{
	pid_t me = getpid();
	write_full(wfd, &me, sizeof(me));
	for (volatile unsigned long i = 0;; i++)
		;
}

static void child_work(int wfd)
{
	/* ~300 ms of CPU and 8 MiB touched, then exit */
	size_t len = 8u << 20;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		_exit(92);
	memset(m, 1, len);
	uint64_t end = now_ms_monotonic() + 300;
	volatile unsigned long x = 0;
	while (now_ms_monotonic() < end)
		for (int i = 0; i < 100000; i++)
			x = x + (unsigned long)i;
	(void)x;
}

static void child_hog(int wfd)
{
	size_t len = 64u << 20;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		_exit(92);
	for (size_t i = 0; i < len; i += 4096)
		m[i] = 1;
	_exit(93);	/* must not get here: the cgroup allows 16 MiB */
}

static void child_forker(int wfd)
{
	int ok = 0, err = 0;
	for (int i = 0; i < 32; i++) {
		pid_t p = fork();
		if (p == 0) {
			for (;;)
				pause();
		}
		if (p < 0) {
			err = errno;
			break;
		}
		ok++;
	}
	write_full(wfd, &ok, sizeof(ok));
	write_full(wfd, &err, sizeof(err));
	for (;;)
		pause();
}

/* ---------------------------------------------------------------- tests */

static void test_invalid_names(void **state)
{
	static const char *const bad[] = {
		"", ".", "..", "../x", "a/b", "a.b", "cgroup.procs", "x y", "a\nb", "é",
		/* 81: past CG_NAME_MAX (80, for podman's libpod-<64 hex>) */
		"01234567890123456789012345678901234567890123456789012345678901234567890123456789x",
	};
	agentd_limits l = { 0 };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		agentd_error err = { 0 };
		assert_null(cgroup_create(bad[i], &l, &err));
		assert_int_equal(err.code, EINVAL);
		assert_non_null(strstr(err.msg, "invalid name"));
	}
	agentd_error err = { 0 };
	assert_null(cgroup_create(NULL, &l, &err));
	assert_int_equal(err.code, EINVAL);
	assert_null(cgroup_open("../../memory", &err));
	assert_int_equal(err.code, EINVAL);
	cgroup_destroy(NULL);
}

static void test_max_name(void **state)
{
	need_root();
	char name[65];
	int n = snprintf(name, sizeof(name), "t-max-%d-", (int)getpid());
	memset(name + n, 'a', (size_t)(64 - n));
	name[64] = '\0';
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, NULL, &err);
	if (!cg)
		fail_msg("%s", err.msg);
	assert_true(count_dirs(name) > 0);
	cgroup_destroy(cg);
	assert_int_equal(count_dirs(name), 0);
}

static void test_limits_written(void **state)
{
	need_root();
	_cleanup_free_ char *name = name_for("limits");
	agentd_limits l = { .max_memory_bytes = 64u << 20, .max_processes = 32,
			    .cpu_weight = 200, .cpu_quota_pct = 50 };
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, &l, &err);
	if (!cg)
		fail_msg("%s", err.msg);
	if (plat.cgroup_version == 2) {
		assert_file("", name, "memory.max", "67108864");
		assert_file("", name, "memory.oom.group", "1");
		_cleanup_free_ char *sw = cgfile("", name, "memory.swap.max");
		if (access(sw, F_OK) == 0)
			assert_file("", name, "memory.swap.max", "0");
		assert_file("", name, "pids.max", "32");
		assert_file("", name, "cpu.weight", "200");
		assert_file("", name, "cpu.max", "50000 100000");
	} else {
		assert_file("memory", name, "memory.limit_in_bytes", "67108864");
		_cleanup_free_ char *sw = cgfile("memory", name, "memory.memsw.limit_in_bytes");
		if (access(sw, F_OK) == 0)
			assert_file("memory", name, "memory.memsw.limit_in_bytes", "67108864");
		else
			assert_file("memory", name, "memory.swappiness", "0");
		assert_file("pids", name, "pids.max", "32");
		assert_file("cpu", name, "cpu.shares", "2048");
		assert_file("cpu", name, "cpu.cfs_period_us", "100000");
		assert_file("cpu", name, "cpu.cfs_quota_us", "50000");
	}
	cgroup_destroy(cg);

	/* weight 1 → the v1 floor of 2 shares; 10000 → 102400 */
	l = (agentd_limits){ .cpu_weight = 1 };
	cg = cgroup_create(name, &l, &err);
	assert_non_null(cg);
	assert_file(plat.cgroup_version == 2 ? "" : "cpu", name,
		    plat.cgroup_version == 2 ? "cpu.weight" : "cpu.shares",
		    plat.cgroup_version == 2 ? "1" : "10");
	cgroup_destroy(cg);
	assert_int_equal(count_dirs(name), 0);
}

static void test_limit_failure_fails_closed(void **state)
{
	need_root();
	_cleanup_free_ char *name = name_for("badlimit");
	/* pids.max only takes values up to PID_MAX_LIMIT */
	agentd_limits l = { .max_processes = 4294967295u };
	agentd_error err = { 0 };
	assert_null(cgroup_create(name, &l, &err));
	assert_non_null(strstr(err.msg, "pids.max"));
	assert_int_equal(count_dirs(name), 0);
}

static void test_exists_is_an_error(void **state)
{
	need_root();
	_cleanup_free_ char *name = name_for("exists");
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, NULL, &err);
	assert_non_null(cg);
	assert_null(cgroup_create(name, NULL, &err));
	assert_int_equal(err.code, EEXIST);
	/* the failed create must not have removed the first one */
	assert_true(count_dirs(name) > 0);
	cgroup_destroy(cg);
	assert_int_equal(count_dirs(name), 0);
}

static void test_attach(void **state)
{
	need_root();
	_cleanup_free_ char *name = name_for("attach");
	agentd_limits l = { .max_memory_bytes = 64u << 20, .max_processes = 16 };
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, &l, &err);
	if (!cg)
		fail_msg("%s", err.msg);
	int rfd;
	pid_t pid = spawn_in(cg, child_pause, &rfd), got;
	read_full(rfd, &got, sizeof(got));
	assert_int_equal(got, pid);
	assert_true(pid_listed(plat.cgroup_version == 2 ? "" : "memory", name, pid));
	if (plat.cgroup_version == 1) {
		assert_true(pid_listed("pids", name, pid));
		assert_true(pid_listed("cpu", name, pid));
		if (plat.cgroup_hybrid)
			assert_true(pid_listed("unified", name, pid));
	}
	assert_true(cgroup_is_populated(cg));
	if (plat.cgroup_version == 2 || plat.cgroup_hybrid)
		assert_true(cgroup_dir_fd(cg) >= 0);
	assert_int_equal(cgroup_clone_into_complete(cg), plat.cgroup_version == 2);

	/* attach_pid: a process started outside joins */
	pid_t other = fork();
	if (other == 0) {
		for (;;)
			pause();
	}
	assert_int_equal(cgroup_attach_pid(cg, other), 0);
	assert_true(pid_listed(plat.cgroup_version == 2 ? "" : "memory", name, other));

	assert_int_equal(cgroup_kill_all(cg), 0);
	assert_false(cgroup_is_populated(cg));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(waitpid(other, &status, 0), other);
	close(rfd);
	cgroup_destroy(cg);
	assert_int_equal(count_dirs(name), 0);
}

/* Make the cgroup's cgroup.kill read-only in our (private) mount namespace, as on a kernel
 * without it (< 5.14) cgroup_kill_all must then freeze, kill and thaw. Returns the file to
 * unmount, NULL when there is none (v1 only: the freezer path runs anyway). */
static char *mask_cgroup_kill(const char *name)
{
	char *file = xasprintf("/sys/fs/cgroup/%sagentd/%s/cgroup.kill",
			       plat.cgroup_hybrid ? "unified/" : "", name);
	if (access(file, F_OK) != 0) {
		free(file);
		return NULL;
	}
	assert_int_equal(mount(file, file, NULL, MS_BIND, NULL), 0);
	assert_int_equal(mount(NULL, file, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL), 0);
	assert_int_equal(write_file_at(AT_FDCWD, file, "1"), -EROFS);
	return file;
}

static void kill_escapees(const char *what, bool no_cgroup_kill)
{
	_cleanup_free_ char *name = name_for(what);
	agentd_limits l = { .max_memory_bytes = 64u << 20, .max_processes = 16 };
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, &l, &err);
	if (!cg)
		fail_msg("%s", err.msg);
	_cleanup_free_ char *masked = no_cgroup_kill ? mask_cgroup_kill(name) : NULL;
	int rfd;
	pid_t pid = spawn_in(cg, child_escape, &rfd), pids[3];
	read_full(rfd, pids, sizeof(pids));
	assert_int_equal(pids[0], pid);
	for (int i = 0; i < 3; i++)
		assert_false(pid_gone(pids[i]));
	assert_int_equal(cgroup_kill_all(cg), 0);
	assert_false(cgroup_is_populated(cg));
	waitpid(pid, NULL, 0);
	for (int i = 0; i < 3; i++)
		assert_true(wait_gone(pids[i]));
	close(rfd);
	if (masked)
		assert_int_equal(umount2(masked, 0), 0);
	cgroup_destroy(cg);
	assert_int_equal(count_dirs(name), 0);
}

static void test_kill_all_escaped(void **state)
{
	need_root();
	kill_escapees("kill", false);
}

static void freeze_thaw(const char *what)
{
	_cleanup_free_ char *name = name_for(what);
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, NULL, &err);
	if (!cg)
		fail_msg("%s", err.msg);
	int rfd;
	pid_t pid = spawn_in(cg, child_burn, &rfd), got;
	read_full(rfd, &got, sizeof(got));
	msleep(20);
	assert_int_equal(cgroup_freeze(cg, true, &err), 0);
	unsigned long long t1 = cpu_ticks(pid);
	msleep(200);
	unsigned long long t2 = cpu_ticks(pid);
	assert_true(t2 - t1 <= 1);	/* a tick may be accounted late */
	assert_int_equal(cgroup_freeze(cg, false, &err), 0);
	msleep(200);
	assert_true(cpu_ticks(pid) > t2);
	/* killing a frozen cgroup works and leaves it thawed */
	assert_int_equal(cgroup_freeze(cg, true, &err), 0);
	assert_int_equal(cgroup_kill_all(cg), 0);
	assert_false(cgroup_is_populated(cg));
	waitpid(pid, NULL, 0);
	close(rfd);
	pid = spawn_in(cg, child_pause, &rfd);
	read_full(rfd, &got, sizeof(got));	/* a frozen child could not answer */
	assert_int_equal(got, pid);
	cgroup_destroy(cg);
	waitpid(pid, NULL, 0);
	close(rfd);
	assert_int_equal(count_dirs(name), 0);
}

static void test_freeze_thaw(void **state)
{
	need_root();
	freeze_thaw("freeze");
}

static void test_usage(void **state)
{
	need_root();
	_cleanup_free_ char *name = name_for("usage");
	agentd_limits l = { .max_memory_bytes = 128u << 20, .max_processes = 16 };
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, &l, &err);
	if (!cg)
		fail_msg("%s", err.msg);
	int rfd, status;
	pid_t pid = spawn_in(cg, child_work, &rfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	agentd_usage u = { 0 };
	assert_int_equal(cgroup_read_usage(cg, &u), 0);
	assert_true(u.cpu_time_ms > 0);
	assert_true(u.peak_memory_bytes >= (4u << 20));
	struct cgroup_events ev;
	assert_int_equal(cgroup_read_events(cg, &ev), 0);
	assert_int_equal(ev.oom_kills, 0);
	assert_int_equal(ev.pids_max_hits, 0);
	close(rfd);
	cgroup_destroy(cg);
}

static void test_oom_counted(void **state)
{
	need_root();
	_cleanup_free_ char *name = name_for("oom");
	agentd_limits l = { .max_memory_bytes = 16u << 20, .max_processes = 16 };
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, &l, &err);
	if (!cg)
		fail_msg("%s", err.msg);
	int rfd, status;
	pid_t pid = spawn_in(cg, child_hog, &rfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	struct cgroup_events ev;
	assert_int_equal(cgroup_read_events(cg, &ev), 0);
	assert_true(ev.oom_kills >= 1);
	agentd_usage u = { 0 };
	assert_int_equal(cgroup_read_usage(cg, &u), 0);
	assert_true(u.peak_memory_bytes <= (17u << 20));
	close(rfd);
	cgroup_destroy(cg);
	assert_int_equal(count_dirs(name), 0);
}

static void test_pids_max(void **state)
{
	need_root();
	_cleanup_free_ char *name = name_for("pids");
	agentd_limits l = { .max_memory_bytes = 64u << 20, .max_processes = 8 };
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, &l, &err);
	if (!cg)
		fail_msg("%s", err.msg);
	int rfd, ok, e;
	pid_t pid = spawn_in(cg, child_forker, &rfd);
	read_full(rfd, &ok, sizeof(ok));
	read_full(rfd, &e, sizeof(e));
	assert_true(ok <= 7);		/* the forker itself is one of the 8 */
	assert_int_equal(e, EAGAIN);
	struct cgroup_events ev;
	assert_int_equal(cgroup_read_events(cg, &ev), 0);
	assert_true(ev.pids_max_hits >= 1);
	assert_int_equal(cgroup_kill_all(cg), 0);
	waitpid(pid, NULL, 0);
	msleep(10);
	reap_all();
	close(rfd);
	cgroup_destroy(cg);
	assert_int_equal(count_dirs(name), 0);
}

static void test_destroy_removes_everything(void **state)
{
	need_root();
	_cleanup_free_ char *name = name_for("destroy");
	agentd_limits l = { .max_memory_bytes = 64u << 20, .max_processes = 16, .cpu_weight = 100,
			    .cpu_quota_pct = 100 };
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, &l, &err);
	if (!cg)
		fail_msg("%s", err.msg);
	assert_true(count_dirs(name) >= (plat.cgroup_version == 2 ? 1u : 3u));
	int rfd;
	pid_t pid = spawn_in(cg, child_escape, &rfd), pids[3];
	read_full(rfd, pids, sizeof(pids));
	/* a sandbox that made a sub-cgroup of its own must not block removal */
	_cleanup_free_ char *sub = cgfile(plat.cgroup_version == 2 ? "" : "memory", name, "sub");
	assert_int_equal(mkdir(sub, 0755), 0);
	cgroup_destroy(cg);
	assert_int_equal(count_dirs(name), 0);
	waitpid(pid, NULL, 0);
	for (int i = 0; i < 3; i++)
		assert_true(wait_gone(pids[i]));
	close(rfd);
}

static void test_gc(void **state)
{
	need_root();
	_cleanup_free_ char *dead = name_for("gcdead");
	_cleanup_free_ char *busy = name_for("gcbusy");
	_cleanup_free_ char *live = name_for("gclive");
	agentd_error err = { 0 };

	/* An agentd that crashed: one cgroup left empty, one with a process still in it. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t crasher = fork();
	if (crasher == 0) {
		struct cgroup *a = cgroup_create(dead, NULL, NULL);
		struct cgroup *b = cgroup_create(busy, NULL, NULL);
		if (!a || !b)
			_exit(1);
		pid_t c = fork();
		if (c == 0) {
			close(p[0]);
			if (cgroup_attach_self(b) != 0)
				_exit(1);
			/* as execve would (CLOEXEC): a forked child keeps the flocks otherwise.
			 * Before telling the parent, or gc may still find "dead" locked by us. */
			if (p[1] > 3)
				close_range(3, (unsigned)p[1] - 1, 0);
			close_range((unsigned)p[1] + 1, ~0u, 0);
			write_full(p[1], "x", 1);
			close(p[1]);
			for (;;)
				pause();
		}
		char x;
		if (read(p[0], &x, 1) != 1)
			_exit(1);
		_exit(0);	/* no destroy: a crash */
	}
	int status;
	assert_int_equal(waitpid(crasher, &status, 0), crasher);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(p[0]);
	close(p[1]);
	assert_true(count_dirs(dead) > 0);

	struct cgroup *held = cgroup_create(live, NULL, &err);	/* empty but ours */
	assert_non_null(held);
	cgroup_gc();
	assert_int_equal(count_dirs(dead), 0);
	assert_true(count_dirs(busy) > 0);
	assert_true(count_dirs(live) > 0);

	/* a restarted daemon finds the busy one again and cleans it */
	struct cgroup *again = cgroup_open(busy, &err);
	if (!again)
		fail_msg("%s", err.msg);
	assert_true(cgroup_is_populated(again));
	cgroup_destroy(again);
	assert_int_equal(count_dirs(busy), 0);
	msleep(10);
	reap_all();
	assert_null(cgroup_open(busy, &err));
	cgroup_destroy(held);
	assert_int_equal(count_dirs(live), 0);
}

struct worker {
	int id;
	int fails;
	char msg[AGENTD_ERROR_MAX];
};

static void *create_many(void *arg)
{
	struct worker *w = arg;
	agentd_limits l = { .max_memory_bytes = 64u << 20, .max_processes = 16 };
	for (int i = 0; i < 10; i++) {
		char name[64];
		agentd_error err = { 0 };
		snprintf(name, sizeof(name), "t-conc-%d-%d-%d", (int)getpid(), w->id, i);
		struct cgroup *cg = cgroup_create(name, &l, &err);
		if (!cg) {
			w->fails++;
			memcpy(w->msg, err.msg, sizeof(w->msg));
			continue;
		}
		cgroup_destroy(cg);
	}
	return NULL;
}

/* ---------------------------------------------------------------- another host, in a child */

/* The layout is detected once per process, so a test of another host runs in a child that
 * makes the environment so and re-executes this binary: its first cgroup call detects
 * afresh, through the same code as on such a host, with no switch in the product. */
static void run_child(const char *mode, bool hide_unified)
{
	fflush(NULL);		/* or the child's copy of our output comes out first */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Our own mounts, private before anything is unmounted: a shared / would carry
		 * the umount to the host. */
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(80);
		char fd_arg[16] = "-1";
		if (hide_unified) {
			/* Kept open across exec so the child can still see the real unified
			 * hierarchy; mountinfo, which the detection reads, no longer lists it. */
			int ufd = open("/sys/fs/cgroup/unified", O_PATH | O_DIRECTORY);
			if (ufd < 0 || umount2("/sys/fs/cgroup/unified", MNT_DETACH) < 0)
				_exit(81);
			snprintf(fd_arg, sizeof(fd_arg), "%d", ufd);
		}
		execl("/proc/self/exe", "test_cgroup", mode, fd_arg, (char *)NULL);
		_exit(82);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("child '%s' failed (status 0x%x)", mode, status);
}

static void test_kill_all_legacy(void **state)
{
	need_root();
	run_child("no-cgroup-kill", false);
}

static void test_concurrent_creates(void **state)
{
	need_root();
	run_child("fresh", false);	/* the first creates race on setup too */
}

static void test_v1_only_paths(void **state)
{
	need_root();
	if (!plat.cgroup_hybrid)
		skip();
	run_child("v1-only", true);	/* pure v1 with the v1 freezer */
}

/* In the "no-cgroup-kill" child: the kill loop (freeze, kill, thaw) where cgroup.kill is
 * there but cannot be used. */
static void child_kill_through_freezer(void **state)
{
	kill_escapees("killfz", true);
}

/* In the "fresh" child: the first cgroup calls of a process, from four threads at once. */
static void child_concurrent_creates(void **state)
{
	pthread_t t[4];
	struct worker w[4] = { { 0 } };
	for (int i = 0; i < 4; i++) {
		w[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, create_many, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		if (w[i].fails)
			fail_msg("worker %d: %d failures, last: %s", i, w[i].fails, w[i].msg);
	}
}

static int unified_fd = -1;	/* the hidden unified hierarchy, in the "v1-only" child */

/* In the "v1-only" child: the host looks like v1 only, and nothing goes to unified. */
static void child_v1_only_paths(void **state)
{
	assert_int_equal(plat.cgroup_version, 1);
	assert_false(plat.cgroup_hybrid);
	assert_true(plat.cgroup_freezer);
	_cleanup_free_ char *name = name_for("v1only");
	_cleanup_free_ char *uni = xasprintf("agentd/%s", name);
	agentd_error err = { 0 };
	struct cgroup *cg = cgroup_create(name, NULL, &err);
	if (!cg)
		fail_msg("%s", err.msg);
	assert_true(count_dirs(name) > 0);
	assert_int_equal(faccessat(unified_fd, uni, F_OK, 0), -1);
	assert_int_equal(cgroup_dir_fd(cg), -1);
	cgroup_destroy(cg);
	freeze_thaw("v1fz");
	kill_escapees("v1kill", false);
}

static int child_main(const char *mode, const char *fd_arg)
{
	/* orphans of the kill tests come back to us to be reaped */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	usable = true;		/* the parent checked */
	unified_fd = atoi(fd_arg);
	if (strcmp(mode, "fresh") == 0) {
		const struct CMUnitTest t[] = { cmocka_unit_test(child_concurrent_creates) };
		return cmocka_run_group_tests_name("fresh process", t, NULL, NULL);
	}
	cgroup_probe(&plat);
	if (strcmp(mode, "v1-only") == 0) {
		const struct CMUnitTest t[] = { cmocka_unit_test(child_v1_only_paths) };
		return cmocka_run_group_tests_name("v1-only host", t, NULL, NULL);
	}
	if (strcmp(mode, "no-cgroup-kill") == 0) {
		const struct CMUnitTest t[] = { cmocka_unit_test(child_kill_through_freezer) };
		return cmocka_run_group_tests_name("no cgroup.kill", t, NULL, NULL);
	}
	fprintf(stderr, "test_cgroup: unknown mode '%s'\n", mode);
	return 2;
}

static void test_probe(void **state)
{
	need_root();
	agentd_platform p = { 0 };
	cgroup_probe(&p);
	assert_true(p.cgroup_version == 1 || p.cgroup_version == 2);
	assert_true(p.cgroup_writable);
	assert_true(p.cgroup_memory);
	assert_true(p.cgroup_pids);
	assert_true(p.cgroup_cpu);
	assert_true(p.cgroup_cpuacct);
	assert_true(p.cgroup_freezer);
	if (p.cgroup_hybrid)
		assert_int_equal(p.cgroup_version, 1);
	_cleanup_free_ char *probe = xasprintf("probe-%d-*", (int)getpid());
	assert_int_equal(count_dirs(probe), 0);
}

/* The parents are shared with other agentd users: remove them only when empty. */
static int teardown_parents(void **state)
{
	glob_t g;
	if (glob("/sys/fs/cgroup/*/agentd", GLOB_NOSORT, NULL, &g) == 0)
		for (size_t i = 0; i < g.gl_pathc; i++)
			rmdir(g.gl_pathv[i]);
	globfree(&g);
	rmdir("/sys/fs/cgroup/agentd");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3)
		return child_main(argv[1], argv[2]);
	if (geteuid() == 0) {
		/* orphans of the kill tests come back to us to be reaped */
		prctl(PR_SET_CHILD_SUBREAPER, 1);
		cgroup_probe(&plat);
		usable = plat.cgroup_writable;
		if (!usable)
			fprintf(stderr, "cgroups not usable: %s\n", plat.reasons);
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid_names),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_max_name),
		cmocka_unit_test(test_limits_written),
		cmocka_unit_test(test_limit_failure_fails_closed),
		cmocka_unit_test(test_exists_is_an_error),
		cmocka_unit_test(test_attach),
		cmocka_unit_test(test_kill_all_escaped),
		cmocka_unit_test(test_kill_all_legacy),
		cmocka_unit_test(test_freeze_thaw),
		cmocka_unit_test(test_usage),
		cmocka_unit_test(test_oom_counted),
		cmocka_unit_test(test_pids_max),
		cmocka_unit_test(test_destroy_removes_everything),
		cmocka_unit_test(test_gc),
		cmocka_unit_test(test_concurrent_creates),
		cmocka_unit_test(test_v1_only_paths),
	};
	return cmocka_run_group_tests(tests, NULL, teardown_parents);
}
