/* test_mounts.c: the mount plan (jail/mounts/). What a spec's plan holds (operations, their
 * order, validation errors naming the path), and as root the real thing: a child in new
 * mount+pid (and user) namespaces replays the plan without allocating and probes its new
 * root from inside, also on a kernel without the new mount API (seccomp makes one). */
#include "lib/core/core.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>
#include <seccomp.h>

#define FORBID_MALLOC_WHAT "mount_plan_apply"
#include "forbid_malloc.h"

static char tmp_root[64]; /* host dirs the tests bind (0755: a user namespace traverses) */

static void create_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0) {
			/* the probe reports what is missing */
		}
		close(fd);
	}
}

static int group_setup(void **state)
{
	snprintf(tmp_root, sizeof(tmp_root), "/tmp/agentd-test-mounts-XXXXXX");
	if (!mkdtemp(tmp_root) || chmod(tmp_root, 0755) < 0)
		return -1;
	char p[128];
	snprintf(p, sizeof(p), "%s/ro", tmp_root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/ro/hello", tmp_root);
	create_file(p, "hello from the host\n");
	snprintf(p, sizeof(p), "%s/ro/sub", tmp_root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/rw", tmp_root);
	mkdir(p, 0777);
	chmod(p, 0777);
	return 0;
}

static int group_teardown(void **state)
{
	rm_rf(tmp_root);
	return 0;
}

static char *tpath(const char *rel)
{
	return xasprintf("%s/%s", tmp_root, rel);
}

static const struct mount_op *find_op(const struct mount_plan *p, enum mount_op_kind k,
				      const char *target)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->ops[i].kind == k && strcmp(p->ops[i].target, target) == 0)
			return &p->ops[i];
	return NULL;
}

/* find_op that fails the test when missing (abort() tells the compiler it returns one). */
static const struct mount_op *must_find(const struct mount_plan *p, enum mount_op_kind k,
					const char *target)
{
	const struct mount_op *op = find_op(p, k, target);
	if (!op) {
		fail_msg("no %d operation at %s", (int)k, target);
		abort();
	}
	return op;
}

static size_t count_ops(const struct mount_plan *p, const char *target)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n; i++)
		n += strcmp(p->ops[i].target, target) == 0;
	return n;
}

static const struct mount_plan_opts default_opts = {
    .sandbox_uid = 0, .sandbox_gid = 0, .hostname = "agentd", .network_none = true};

static void build_ok(const agentd_spec *spec, const struct mount_plan_opts *o,
		     struct mount_plan *plan)
{
	agentd_error err = {0};
	if (mount_plan_prepare(spec, o, plan, &err) < 0)
		fail_msg("mount_plan_prepare: %s", err.msg);
}

static void build_fails(const agentd_spec *spec, const char *want1, const char *want2)
{
	struct mount_plan plan;
	agentd_error err = {0};
	int r = mount_plan_prepare(spec, &default_opts, &plan, &err);
	mount_plan_free(&plan);
	if (r == 0)
		fail_msg("build succeeded, want an error with '%s'", want1);
	if (strstr(err.msg, want1) == NULL || (want2 && strstr(err.msg, want2) == NULL))
		fail_msg("error '%s' does not mention '%s' and '%s'", err.msg, want1,
			 want2 ? want2 : "");
}

static bool is_link(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0 && S_ISLNK(st.st_mode);
}

/* --------------------------------------------------------------- plan shape */

static void strict_plan_has_the_documented_layout(void **state)
{
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	struct mount_plan plan;
	build_ok(&spec, &default_opts, &plan);
	if (getenv("AGENTD_TEST_VERBOSE"))
		mount_plan_describe(&plan, stdout);

	/* prologue, epilogue */
	assert_int_equal(plan.ops[0].kind, MOUNT_OP_PRIVATE);
	assert_int_equal(plan.ops[1].kind, MOUNT_OP_TMPFS);
	assert_string_equal(plan.ops[1].target, plan.base);
	/* max_write_bytes, plus the pages of the files the plan itself writes into the root */
	unsigned long long size = 0;
	assert_int_equal(sscanf(plan.ops[1].data, "size=%llu,", &size), 1);
	assert_true(size >= spec.limits.max_write_bytes &&
		    size <= spec.limits.max_write_bytes + 65536);
	assert_int_equal(plan.ops[plan.n - 2].kind, MOUNT_OP_PIVOT);
	const struct mount_op *last = &plan.ops[plan.n - 1];
	assert_int_equal(last->kind, MOUNT_OP_SET_ATTR);
	assert_string_equal(last->target, "/");
	assert_true(last->attr_set & MOUNT_ATTR_RDONLY);

	/* the read-only runtime */
	const struct mount_op *usr = must_find(&plan, MOUNT_OP_BIND, "/usr");
	assert_string_equal(usr->source, "/usr");
	assert_int_equal(usr->attr_set & (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV),
			 MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (is_link("/bin")) {
		const struct mount_op *bin = must_find(&plan, MOUNT_OP_SYMLINK, "/bin");
		assert_string_equal(bin->data, "usr/bin");
	}

	/* a filtered, partly generated /etc */
	const struct mount_op *f = must_find(&plan, MOUNT_OP_FILE, "/etc/hostname");
	assert_string_equal(f->data, "agentd\n");
	f = must_find(&plan, MOUNT_OP_FILE, "/etc/hosts");
	assert_non_null(strstr(f->data, "127.0.0.1\tlocalhost agentd\n::1\tlocalhost\n"));
	f = must_find(&plan, MOUNT_OP_FILE, "/etc/resolv.conf");
	assert_string_equal(f->data, "nameserver 127.0.0.1\n");
	f = must_find(&plan, MOUNT_OP_FILE, "/etc/passwd");
	assert_non_null(strstr(f->data, "root:x:0:0:root:/workspace:/bin/sh\n"));
	if (access("/etc/ld.so.cache", F_OK) == 0)
		assert_non_null(find_op(&plan, MOUNT_OP_BIND, "/etc/ld.so.cache"));
	for (size_t i = 0; i < plan.n; i++) {
		static const char *const secret[] = {"shadow",	    "sudoers",	  "/ssh",
						     "ssl/private", "machine-id", "ld.so.preload"};
		for (size_t s = 0; s < ARRAY_SIZE(secret); s++) {
			assert_null(strstr(plan.ops[i].target, secret[s]));
			assert_true(!plan.ops[i].source || !strstr(plan.ops[i].source, secret[s]));
		}
		assert_false(strncmp(plan.ops[i].target, "/sys", 4) == 0);
	}

	/* proc and its masks */
	assert_non_null(find_op(&plan, MOUNT_OP_PROC, "/proc"));
	if (access("/proc/keys", F_OK) == 0)
		assert_non_null(find_op(&plan, MOUNT_OP_MASK_FILE, "/proc/keys"));
	const struct mount_op *sys = must_find(&plan, MOUNT_OP_BIND, "/proc/sys");
	assert_true(sys->opflags & MOUNT_OPF_SOURCE_IN_ROOT);
	assert_true(sys->attr_set & MOUNT_ATTR_RDONLY);

	/* a minimal /dev */
	static const char *const nodes[] = {"/dev/null",   "/dev/zero",	   "/dev/full",
					    "/dev/random", "/dev/urandom", "/dev/tty"};
	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
		const struct mount_op *n = must_find(&plan, MOUNT_OP_DEV_NODE, nodes[i]);
		assert_string_equal(n->source, nodes[i]);
		assert_false(n->attr_set & MOUNT_ATTR_NODEV);
		assert_non_null(find_op(&plan, MOUNT_OP_FILE, nodes[i])); /* its mount point */
	}
	const struct mount_op *pts = must_find(&plan, MOUNT_OP_DEVPTS, "/dev/pts");
	assert_non_null(strstr(pts->data, "newinstance"));
	const struct mount_op *ptmx = must_find(&plan, MOUNT_OP_SYMLINK, "/dev/ptmx");
	assert_string_equal(ptmx->data, "pts/ptmx");

	/* one scratch: workdir, /tmp and /dev/shm are its directories */
	static const char *const scratch[][2] = {
	    {"/workspace", "workdir"}, {"/tmp", "tmp"}, {"/dev/shm", "shm"}};
	for (size_t i = 0; i < ARRAY_SIZE(scratch); i++) {
		const struct mount_op *s = must_find(&plan, MOUNT_OP_BIND, scratch[i][0]);
		_cleanup_free_ char *want = xasprintf("%s/%s", plan.base, scratch[i][1]);
		assert_string_equal(s->source, want);
	}

	/* Parents first: every operation's parent is the root or something set up before. */
	size_t enter = 0;
	while (plan.ops[enter].kind != MOUNT_OP_ENTER)
		enter++;
	for (size_t i = enter + 1; i < plan.n - 2; i++) {
		char parent[PATH_MAX];
		snprintf(parent, sizeof(parent), "%s", plan.ops[i].target);
		*strrchr(parent, '/') = '\0';
		if (!parent[0])
			continue;
		bool seen = false;
		for (size_t j = enter + 1; j < i && !seen; j++)
			seen =
			    strcmp(plan.ops[j].target, parent) == 0 ||
			    (plan.ops[j].kind != MOUNT_OP_DIR &&
			     strncmp(parent, plan.ops[j].target, strlen(plan.ops[j].target)) == 0);
		if (!seen)
			fail_msg("op %zu (%s) comes before its parent %s", i, plan.ops[i].target,
				 parent);
	}
	print_message("strict plan without cache: %zu operations\n", plan.n);
	mount_plan_free(&plan);
	agentd_spec_free(&spec);
}

/* The cache holds /etc's files in one pack; the plan copies each from its place there into
 * the scratch root's /etc, and binds neither /etc nor /dev (mountinfo would show the cache's
 * host path as their root). */
static void cache_packs_etc_and_is_reused(void **state)
{
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	_cleanup_free_ char *cache = tpath("cache");
	struct mount_plan_opts o = default_opts;
	o.cache_dir = cache;
	struct mount_plan plan, again, other;
	build_ok(&spec, &o, &plan);
	assert_non_null(plan.cache);
	assert_null(plan.warning);
	if (getenv("AGENTD_TEST_VERBOSE"))
		mount_plan_describe(&plan, stdout);

	_cleanup_free_ char *pack = xasprintf("%s/etc.pack", plan.cache);
	assert_string_equal(plan.pack, pack);
	assert_null(find_op(&plan, MOUNT_OP_BIND, "/etc"));
	assert_null(find_op(&plan, MOUNT_OP_BIND, "/dev"));
	must_find(&plan, MOUNT_OP_FILE, "/etc/hostname"); /* generated: not in the pack */
	assert_non_null(find_op(&plan, MOUNT_OP_FILE, "/dev/null")); /* its mount point */
	struct stat st;
	if (stat("/etc/ld.so.cache", &st) == 0 && S_ISREG(st.st_mode)) {
		const struct mount_op *c = must_find(&plan, MOUNT_OP_COPY, "/etc/ld.so.cache");
		assert_string_equal(c->source, pack);
		assert_int_equal(c->data_len, st.st_size);
		assert_int_equal(c->mode, st.st_mode & 0777);
		assert_null(find_op(&plan, MOUNT_OP_BIND, "/etc/ld.so.cache"));
		size_t len = 0;
		_cleanup_free_ char *all = read_file_at(AT_FDCWD, pack, 64 << 20, &len);
		_cleanup_free_ char *host =
		    read_file_at(AT_FDCWD, "/etc/ld.so.cache", 64 << 20, NULL);
		assert_non_null(all);
		assert_non_null(host);
		assert_true(c->offset + c->data_len <= len);
		assert_memory_equal(all + c->offset, host, c->data_len);
	}
	assert_int_equal(stat(cache, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0711);
	ino_t ino = (stat(plan.cache, &st), st.st_ino);

	build_ok(&spec, &o, &again);
	assert_string_equal(again.cache, plan.cache);
	assert_int_equal((stat(again.cache, &st), st.st_ino), ino); /* not rebuilt */

	o.hostname = "other"; /* generated files are not in the pack: the same variant */
	build_ok(&spec, &o, &other);
	assert_string_equal(other.cache, plan.cache);

	struct mount_plan plain;
	build_ok(&spec, &default_opts, &plain);
	print_message("strict plan: %zu operations with the cache, %zu without\n", plan.n, plain.n);
	assert_true(plan.n < plain.n);
	mount_plan_free(&plain);
	mount_plan_free(&plan);
	mount_plan_free(&again);
	mount_plan_free(&other);
	agentd_spec_free(&spec);
}

static void policy_binds_are_placed_and_replace_what_they_cover(void **state)
{
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	_cleanup_free_ char *ro = tpath("ro"), *rw = tpath("rw");
	strv_push(&spec.allowed_paths_ro, ro);
	strv_push(&spec.allowed_paths_rw, rw);
	spec.bind_mounts = xcalloc(3, sizeof(*spec.bind_mounts));
	spec.n_bind_mounts = 3;
	spec.bind_mounts[0] = (agentd_bind_mount){xstrdup(rw), xstrdup("/workspace"), false};
	spec.bind_mounts[1] = (agentd_bind_mount){xstrdup(rw), xstrdup("//etc/./myapp/"), true};
	_cleanup_free_ char *nested = xasprintf("%s/sub", ro);
	spec.bind_mounts[2] = (agentd_bind_mount){xstrdup(rw), nested, false};
	nested = NULL;
	_cleanup_free_ char *cache = tpath("cache");
	struct mount_plan_opts o = default_opts;
	o.cache_dir = cache;
	struct mount_plan plan;
	build_ok(&spec, &o, &plan);

	const struct mount_op *m = must_find(&plan, MOUNT_OP_BIND, ro);
	assert_true(m->attr_set & MOUNT_ATTR_RDONLY);
	m = must_find(&plan, MOUNT_OP_BIND, rw);
	assert_false(m->attr_set & MOUNT_ATTR_RDONLY);
	assert_true(m->attr_set & MOUNT_ATTR_NOSUID);
	/* the policy's /workspace replaces the scratch one */
	assert_int_equal(count_ops(&plan, "/workspace"), 2); /* mount point + the bind */
	assert_string_equal(must_find(&plan, MOUNT_OP_BIND, "/workspace")->source, rw);
	/* a target under /etc: its mount point is made in the scratch root's /etc */
	assert_non_null(find_op(&plan, MOUNT_OP_BIND, "/etc/myapp"));
	assert_non_null(find_op(&plan, MOUNT_OP_DIR, "/etc/myapp"));
	assert_null(find_op(&plan, MOUNT_OP_BIND, "/etc"));
	assert_null(find_op(&plan, MOUNT_OP_BIND, "/dev"));
	/* inside a host tree: checked now, resolved without symlinks then */
	_cleanup_free_ char *sub = xasprintf("%s/sub", ro);
	m = must_find(&plan, MOUNT_OP_BIND, sub);
	assert_true(m->opflags & MOUNT_OPF_RESOLVE);
	assert_null(find_op(&plan, MOUNT_OP_DIR, sub)); /* nothing created on the host */
	/* sources below /tmp: the scratch goes elsewhere */
	assert_string_not_equal(plan.base, "/tmp");
	mount_plan_free(&plan);
	agentd_spec_free(&spec);
}

static void bad_paths_fail_with_their_json_path(void **state)
{
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	_cleanup_free_ char *ro = tpath("ro");
	spec.bind_mounts = xcalloc(1, sizeof(*spec.bind_mounts));
	spec.n_bind_mounts = 1;
	agentd_bind_mount *bm = &spec.bind_mounts[0];
	bm->source = xstrdup(ro);

	static const struct {
		const char *target, *want1, *want2;
	} bad[] = {
	    {"relative/x", "bind_mounts[0].target: relative/x", "absolute"},
	    {"/data/../etc", "bind_mounts[0].target", "\"..\""},
	    {"/", "bind_mounts[0].target: /: would shadow the root", NULL},
	    {"/proc", "would shadow /proc", NULL},
	    {"/proc/sys/kernel", "bind_mounts[0].target: /proc/sys/kernel: would shadow /proc",
	     NULL},
	    {"/dev", "would shadow /dev", NULL},
	    {"/usr/share/agentd-no-such-dir",
	     "bind_mounts[0].target: /usr/share/agentd-no-such-dir", "creates none on the host"},
	    {"/etc/hostname/x", "/etc/hostname is not a directory", NULL},
	    {"/bin/x", "/bin", NULL}, /* a symlink in the sandbox on merged /usr */
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (strcmp(bad[i].target, "/bin/x") == 0 && !is_link("/bin"))
			continue;
		free(bm->target);
		bm->target = xstrdup(bad[i].target);
		build_fails(&spec, bad[i].want1, bad[i].want2);
	}

	free(bm->target);
	bm->target = xstrdup("/data");
	free(bm->source);
	bm->source = xstrdup("/nonexistent-agentd-source");
	build_fails(&spec, "bind_mounts[0].source: /nonexistent-agentd-source",
		    "No such file or directory");
	free(bm->source);
	bm->source = xstrdup("/proc/self");
	build_fails(&spec, "bind_mounts[0].source", "/proc");
	free(bm->source);
	bm->source = xstrdup(ro);

	strv_push(&spec.allowed_paths_ro, "/nonexistent-agentd-ro");
	build_fails(&spec, "allowed_paths_ro[0]: /nonexistent-agentd-ro", "No such file");
	strv_free(&spec.allowed_paths_ro);
	strv_push(&spec.allowed_paths_ro, ro);
	strv_push(&spec.allowed_paths_rw, ro);
	build_fails(&spec, "allowed_paths_rw[0]", "already the target of allowed_paths_ro[0]");
	strv_free(&spec.allowed_paths_ro);
	strv_free(&spec.allowed_paths_rw);

	free(spec.workdir);
	spec.workdir = xstrdup("/proc/work");
	build_fails(&spec, "workdir: /proc/work", "/proc");
	agentd_spec_free(&spec);
}

/* --------------------------------------------------------------- the real thing */

struct probe_result {
	int failed;
	char msg[512];
	double exec_us;
	int mounts;
	char root_list[512];
};

static void probe_fail(struct probe_result *r, const char *fmt, ...)
{
	if (r->failed)
		return;
	r->failed = 1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
}

static void expect_errno(struct probe_result *r, const char *what, int ret, int want)
{
	if (ret >= 0)
		probe_fail(r, "%s: succeeded, want %s", what, strerror(want));
	else if (errno != want)
		probe_fail(r, "%s: %s, want %s", what, strerror(errno), strerror(want));
}

static int create_write(const char *path, size_t n, size_t *written)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	static char buf[65536];
	memset(buf, 'x', sizeof(buf));
	int ret = 0;
	while (n) {
		ssize_t w = write(fd, buf, n < sizeof(buf) ? n : sizeof(buf));
		if (w < 0) {
			ret = -errno;
			break;
		}
		*written += (size_t)w;
		n -= (size_t)w;
	}
	close(fd);
	return ret;
}

#define PROBE_LIMIT (1u << 20)

/* The id the namespace child runs as, mapped to 65534: 0, or 1000 with 0 unmapped (the
 * container backend's layout: the init keeps its namespace capabilities as uid 1000). */
static unsigned inside_id;

/* From inside the new root (as PID 1 of its pid namespace). */
static void probe_inside(struct probe_result *r, bool with_binds)
{
	char buf[4096];
	int fd;
	expect_errno(r, "/etc/shadow", access("/etc/shadow", F_OK), ENOENT);
	expect_errno(r, "/etc/gshadow", access("/etc/gshadow", F_OK), ENOENT);
	expect_errno(r, "/etc/sudoers", access("/etc/sudoers", F_OK), ENOENT);
	_cleanup_free_ char *hn = read_file_at(AT_FDCWD, "/etc/hostname", 4096, NULL);
	if (!hn || strcmp(hn, "agentd\n") != 0)
		probe_fail(r, "/etc/hostname: %s", hn ? hn : strerror(errno));
	if (access("/etc/ld.so.cache", R_OK) < 0)
		probe_fail(r, "/etc/ld.so.cache: %s", strerror(errno));
	_cleanup_free_ char *pw = read_file_at(AT_FDCWD, "/etc/passwd", 4096, NULL);
	if (!pw || strncmp(pw, "root:x:0:0:", 11) != 0)
		probe_fail(r, "/etc/passwd: %s", pw ? pw : strerror(errno));
	expect_errno(r, "create in /usr", open("/usr/agentd-probe", O_WRONLY | O_CREAT, 0644),
		     EROFS);
	expect_errno(r, "create in /etc", open("/etc/agentd-probe", O_WRONLY | O_CREAT, 0644),
		     EROFS);
	expect_errno(r, "mkdir /x", mkdir("/x", 0755), EROFS);
	expect_errno(r, "/sys", access("/sys", F_OK), ENOENT);
	if (access("/bin/sh", X_OK) < 0)
		probe_fail(r, "/bin/sh: %s", strerror(errno));

	/* one quota for the workdir, /tmp and /dev/shm */
	size_t written = 0;
	int a = create_write("/workspace/a", PROBE_LIMIT / 2, &written);
	int b = create_write("/tmp/b", PROBE_LIMIT / 4, &written);
	int c = create_write("/dev/shm/c", PROBE_LIMIT, &written);
	if (a < 0 || b < 0)
		probe_fail(r, "write workdir/tmp within the quota: %s", strerror(-(a < 0 ? a : b)));
	else if (c != -ENOSPC)
		probe_fail(r, "write past the quota: %s after %zu bytes, want ENOSPC",
			   c ? strerror(-c) : "no error", written);
	else if (written > PROBE_LIMIT + 16384)
		probe_fail(r, "wrote %zu bytes with a quota of %u", written, PROBE_LIMIT);
	struct stat st;
	if (stat("/tmp", &st) < 0 || (st.st_mode & 07777) != 01777)
		probe_fail(r, "/tmp mode %o", st.st_mode & 07777);
	struct statvfs sv;
	if (statvfs("/dev/shm", &sv) < 0 || !(sv.f_flag & ST_NOEXEC) || !(sv.f_flag & ST_NOSUID))
		probe_fail(r, "/dev/shm not noexec,nosuid");
	if (statvfs("/workspace", &sv) < 0 || !(sv.f_flag & ST_NOSUID) || !(sv.f_flag & ST_NODEV))
		probe_fail(r, "/workspace not nosuid,nodev");
	if (stat("/workspace", &st) < 0 || st.st_uid != inside_id || st.st_gid != inside_id)
		probe_fail(r, "/workspace owned by %u:%u, want %u", st.st_uid, st.st_gid,
			   inside_id);
	if (inside_id && (!pw || !strstr(pw, "agent:x:1000:1000:agent:/workspace:")))
		probe_fail(r, "/etc/passwd has no entry for uid 1000: %s", pw ? pw : "");

	/* /proc: ours (we are PID 1), masked and read-only where it matters */
	if (getpid() != 1)
		probe_fail(r, "pid %d, want 1", (int)getpid());
	ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);
	if (n != 1 || buf[0] != '1')
		probe_fail(r, "/proc/self: %s", n < 0 ? strerror(errno) : "not 1");
	if (access("/proc/cpuinfo", R_OK) < 0 || access("/proc/meminfo", R_OK) < 0)
		probe_fail(r, "/proc/cpuinfo, meminfo: %s", strerror(errno));
	if (stat("/proc/keys", &st) == 0 && st.st_rdev != makedev(1, 3))
		probe_fail(r, "/proc/keys is not masked");
	if (statvfs("/proc/sys", &sv) < 0 || !(sv.f_flag & ST_RDONLY))
		probe_fail(r, "/proc/sys is not read-only");
	if (stat("/proc/acpi", &st) == 0 && statvfs("/proc/acpi", &sv) == 0 &&
	    !(sv.f_flag & ST_RDONLY))
		probe_fail(r, "/proc/acpi is not masked");

	/* /dev: devices work, a private pts */
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0 || write(fd, "abc", 3) != 3 || read(fd, buf, 1) != 0)
		probe_fail(r, "/dev/null: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, 16) != 16)
		probe_fail(r, "/dev/urandom: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		probe_fail(r, "/dev/ptmx: %s", strerror(errno));
	else if (access("/dev/pts/0", F_OK) < 0)
		probe_fail(r, "/dev/pts/0 after opening ptmx: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	expect_errno(r, "create in /dev", open("/dev/agentd", O_WRONLY | O_CREAT, 0644), EROFS);

	if (with_binds) {
		_cleanup_free_ char *hello = read_file_at(AT_FDCWD, "/data/hello", 4096, NULL);
		if (!hello || strcmp(hello, "hello from the host\n") != 0)
			probe_fail(r, "/data/hello: %s", hello ? hello : strerror(errno));
		expect_errno(r, "write /data", open("/data/new", O_WRONLY | O_CREAT, 0644), EROFS);
		written = 0;
		if (create_write("/out/file", 10, &written) < 0)
			probe_fail(r, "write /out: %s", strerror(errno));
		if (access("/data/sub/file", F_OK) < 0) /* /out and /data/sub are one dir */
			probe_fail(r, "/data/sub is not the rw bind: %s", strerror(errno));
	}

	DIR *d = opendir("/");
	size_t len = 0;
	for (struct dirent *de; d && (de = readdir(d));)
		if (de->d_name[0] != '.' && len + strlen(de->d_name) + 2 < sizeof(r->root_list))
			len += (size_t)snprintf(r->root_list + len, sizeof(r->root_list) - len,
						"%s ", de->d_name);
	if (d)
		closedir(d);
	_cleanup_free_ char *mi = read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 20, NULL);
	for (const char *p = mi; p && *p; p++)
		r->mounts += *p == '\n';
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* PID 1 of the new pid namespace: replay the plan (timed, no allocation), then probe. */
static __attribute__((noreturn)) void pid1(const struct mount_plan *plan, int out, bool probe,
					   bool with_binds)
{
	struct probe_result r = {0};
	char what[256];
	double t0 = now_us();
	FORBID_MALLOC(1);
	int ret = mount_plan_apply(plan, what, sizeof(what));
	FORBID_MALLOC(0);
	r.exec_us = now_us() - t0;
	if (ret < 0)
		probe_fail(&r, "mount_plan_apply: %s: %s", what, strerror(-ret));
	else if (probe)
		probe_inside(&r, with_binds);
	if (write(out, &r, sizeof(r)) != sizeof(r))
		_exit(3);
	_exit(0);
}

static int write_map(pid_t pid, const char *file, const char *map)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	return write_file_at(AT_FDCWD, path, map);
}

/* A kernel before 5.2, the way crun's tests/no_openat2.c makes one: the calls the plan
 * prefers answer ENOSYS, so mount_plan_apply takes its real fallback (plain paths and
 * MS_REMOUNT). Checked: a filter that did not load would test the new path again. */
static void pretend_old_kernel(void)
{
	static const int calls[] = {__NR_openat2, __NR_mount_setattr, __NR_open_tree,
				    __NR_move_mount};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	for (size_t i = 0; ctx && i < ARRAY_SIZE(calls); i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), calls[i], 0) < 0)
			_exit(14);
	if (!ctx || seccomp_load(ctx) < 0)
		_exit(14);
	seccomp_release(ctx);
	for (size_t i = 0; i < ARRAY_SIZE(calls); i++)
		if (syscall(calls[i], -1, NULL, 0, 0, 0) != -1 || errno != ENOSYS)
			_exit(15);
}

/* fork; the child unshares (user+)mount+pid namespaces (on an old kernel: see above), the
 * parent writes the id maps (0 -> 65534, as the container backend does), the child forks
 * PID 1. */
static struct probe_result run_in_namespaces(const struct mount_plan *plan, bool userns, bool probe,
					     bool with_binds, bool old_kernel)
{
	struct probe_result r = {0};
	int res[2], sync1[2], sync2[2];
	assert_int_equal(pipe2(res, O_CLOEXEC), 0);
	assert_int_equal(pipe2(sync1, O_CLOEXEC), 0);
	assert_int_equal(pipe2(sync2, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c = 0;
		int flags = CLONE_NEWNS | CLONE_NEWPID | (userns ? CLONE_NEWUSER : 0);
		if (old_kernel)
			pretend_old_kernel();
		if (unshare(flags) < 0)
			_exit(10);
		if (write(sync1[1], &c, 1) != 1 || read(sync2[0], &c, 1) != 1)
			_exit(11);
		unsigned id = inside_id;
		if (userns && (setresgid(id, id, id) < 0 || setresuid(id, id, id) < 0))
			_exit(12);
		pid_t init = fork();
		if (init == 0)
			pid1(plan, res[1], probe, with_binds);
		int st;
		if (init < 0 || waitpid(init, &st, 0) < 0)
			_exit(13);
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	close(res[1]);
	close(sync1[1]);
	close(sync2[0]);
	char c;
	if (read(sync1[0], &c, 1) == 1 && userns) {
		char map[32];
		snprintf(map, sizeof(map), "%u 65534 1\n", inside_id);
		assert_int_equal(write_map(pid, "uid_map", map), 0);
		assert_int_equal(write_map(pid, "setgroups", "deny"), 0);
		assert_int_equal(write_map(pid, "gid_map", map), 0);
	}
	assert_int_equal(write(sync2[1], "g", 1), 1);
	ssize_t n = read(res[0], &r, sizeof(r));
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	close(res[0]);
	close(sync1[0]);
	close(sync2[1]);
	if (n != (ssize_t)sizeof(r))
		fail_msg("the namespace child reported nothing (exit status %d)",
			 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return r;
}

static void need_root(void)
{
	if (geteuid() != 0)
		skip();
}

static void build_probe_plan(struct mount_plan *plan, bool cache, bool with_binds)
{
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	spec.limits.max_write_bytes = PROBE_LIMIT;
	if (with_binds) {
		_cleanup_free_ char *ro = tpath("ro"), *rw = tpath("rw");
		spec.bind_mounts = xcalloc(3, sizeof(*spec.bind_mounts));
		spec.n_bind_mounts = 3;
		spec.bind_mounts[0] = (agentd_bind_mount){xstrdup(ro), xstrdup("/data"), true};
		spec.bind_mounts[1] = (agentd_bind_mount){xstrdup(rw), xstrdup("/out"), false};
		/* nested in a host tree: its mount point is resolved without symlinks */
		spec.bind_mounts[2] = (agentd_bind_mount){xstrdup(rw), xstrdup("/data/sub"), false};
	}
	_cleanup_free_ char *cache_dir = tpath("cache");
	struct mount_plan_opts o = default_opts;
	o.cache_dir = cache ? cache_dir : NULL;
	o.sandbox_uid = o.sandbox_gid = inside_id;
	build_ok(&spec, &o, plan);
	(void)cache;
	agentd_spec_free(&spec);
}

static void run_and_probe(bool userns, bool cache, bool old_kernel)
{
	need_root();
	_cleanup_free_ char *before = read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 20, NULL);
	struct mount_plan plan;
	build_probe_plan(&plan, cache, true);
	struct probe_result r = run_in_namespaces(&plan, userns, true, true, old_kernel);
	mount_plan_free(&plan);
	_cleanup_free_ char *written = tpath("rw/file");
	unlink(written);
	if (r.failed)
		fail_msg("%s", r.msg);
	print_message("%s, %s: / holds: %s; %d mounts inside\n", userns ? "user ns" : "root",
		      cache ? "cache" : "no cache", r.root_list, r.mounts);
	_cleanup_free_ char *after = read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 20, NULL);
	assert_non_null(before);
	assert_non_null(after);
	assert_string_equal(before, after); /* the host's mount table is untouched */
}

static void root_in_mount_and_pid_namespaces(void **state)
{
	run_and_probe(false, false, false);
}

static void user_namespace_with_cache(void **state)
{
	inside_id = 1000;
	run_and_probe(true, true, false);
	inside_id = 0;
}

static void user_namespace_without_cache(void **state)
{
	run_and_probe(true, false, false);
}

/* Kernels before 5.12: read-only through MS_REMOUNT, which in a user namespace must repeat
 * the flags the host locked (statfs); the result seen from inside is the same. */
static void user_namespace_without_mount_setattr(void **state)
{
	run_and_probe(true, true, true);
}

/* The nested mount point is checked when the plan is prepared; if a symlink replaces it
 * before the plan runs (a sandbox with that host dir writable could do it), the mount
 * must fail, not follow the link out of the new root. */

static void symlink_at_a_nested_mount_point_fails_closed(void **state)
{
	need_root();
	struct mount_plan plan;
	build_probe_plan(&plan, false, true);
	_cleanup_free_ char *sub = tpath("ro/sub"), *aside = tpath("ro/sub.aside");
	assert_int_equal(rename(sub, aside), 0);
	assert_int_equal(symlink("/etc", sub), 0);
	struct probe_result r = run_in_namespaces(&plan, true, false, false, false);
	unlink(sub);
	assert_int_equal(rename(aside, sub), 0);
	mount_plan_free(&plan);
	if (!r.failed || !strstr(r.msg, "bind /data/sub") || !strstr(r.msg, strerror(ELOOP)))
		fail_msg("want bind /data/sub to fail with ELOOP, got: %s",
			 r.failed ? r.msg : "success");
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Informational (quality bars are measured by bench/, not by unit tests). */
static void apply_timing(void **state)
{
	need_root();
	enum { RUNS = 21 };
	static const struct {
		bool userns, cache;
		const char *name;
	} modes[] = {{true, true, "user ns, cache"},
		     {true, false, "user ns, no cache"},
		     {false, true, "root, cache"}};
	for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
		struct mount_plan plan;
		double t[RUNS], b0 = now_us();
		build_probe_plan(&plan, modes[m].cache, false);
		double prepare_us = now_us() - b0;
		for (int i = 0; i < RUNS; i++) {
			struct probe_result r =
			    run_in_namespaces(&plan, modes[m].userns, false, false, false);
			if (r.failed)
				fail_msg("%s", r.msg);
			t[i] = r.exec_us;
		}
		qsort(t, RUNS, sizeof(double), cmp_double);
		print_message("mount_plan_apply (%s, %zu ops): median %.0f us, min %.0f, max %.0f; "
			      "mount_plan_prepare %.0f us\n",
			      modes[m].name, plan.n, t[RUNS / 2], t[0], t[RUNS - 1], prepare_us);
		mount_plan_free(&plan);
	}
}

/* issue 13: img-root. An image root: no host runtime, no host /etc but hostname, hosts and
 * resolv.conf; the layers attached from the caller's trees, the plan's own mount points and
 * files made in a skeleton before the overlay stacks it over the layers (top first). */
static size_t op_index(const struct mount_plan *p, enum mount_op_kind k, const char *target)
{
	const struct mount_op *op = must_find(p, k, target);
	return (size_t)(op - p->ops);
}

static void image_plan_stacks_a_skeleton_over_the_layers(void **state)
{
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	for (int writable = 0; writable < 2; writable++) {
		struct mount_plan_opts o = default_opts;
		o.image_layers = 2;
		o.writable_root = writable;
		struct mount_plan plan;
		build_ok(&spec, &o, &plan);
		if (getenv("AGENTD_TEST_VERBOSE"))
			mount_plan_describe(&plan, stdout);
		assert_null(find_op(&plan, MOUNT_OP_BIND, "/usr"));
		assert_null(find_op(&plan, MOUNT_OP_FILE, "/etc/passwd"));
		_cleanup_free_ char *l0 = xasprintf("%s/lyr/0", plan.base);
		_cleanup_free_ char *l1 = xasprintf("%s/lyr/1", plan.base);
		_cleanup_free_ char *root = xasprintf("%s/root", plan.base);
		assert_true(must_find(&plan, MOUNT_OP_BIND, l0)->opflags & MOUNT_OPF_LAYER);
		assert_true(must_find(&plan, MOUNT_OP_BIND, l1)->opflags & MOUNT_OPF_LAYER);
		size_t ov = op_index(&plan, MOUNT_OP_OVERLAY, root);
		_cleanup_free_ char *lower =
		    xasprintf("lowerdir=%s/skel:%s:%s", plan.base, l1, l0);
		assert_non_null(strstr(plan.ops[ov].data, lower));
		assert_non_null(strstr(plan.ops[ov].data, "userxattr"));
		assert_true(strstr(plan.ops[ov].data, "upperdir=") ? writable : !writable);
		/* the skeleton before the overlay, the mounts in the overlay after it */
		assert_true(op_index(&plan, MOUNT_OP_FILE, "/etc/hostname") < ov);
		assert_true(op_index(&plan, MOUNT_OP_DIR, "/proc") < ov);
		assert_true(op_index(&plan, MOUNT_OP_PROC, "/proc") > ov);
		assert_true(op_index(&plan, MOUNT_OP_BIND, "/workspace") > ov);
		const struct mount_op *last = &plan.ops[plan.n - 1];
		assert_int_equal(last->kind, MOUNT_OP_SET_ATTR);
		assert_true((last->attr_set & MOUNT_ATTR_RDONLY) ? !writable : writable);
		mount_plan_free(&plan);
	}
	agentd_spec_free(&spec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(strict_plan_has_the_documented_layout),
	    cmocka_unit_test(cache_packs_etc_and_is_reused),
	    cmocka_unit_test(policy_binds_are_placed_and_replace_what_they_cover),
	    cmocka_unit_test(bad_paths_fail_with_their_json_path),
	    cmocka_unit_test(root_in_mount_and_pid_namespaces),
	    cmocka_unit_test(user_namespace_with_cache),
	    cmocka_unit_test(user_namespace_without_cache),
	    cmocka_unit_test(user_namespace_without_mount_setattr),
	    cmocka_unit_test(symlink_at_a_nested_mount_point_fails_closed),
	    cmocka_unit_test(apply_timing),
	    /* issue 13: img-root */
	    cmocka_unit_test(image_plan_stacks_a_skeleton_over_the_layers),
	};
	return cmocka_run_group_tests_name("mounts", tests, group_setup, group_teardown);
}
