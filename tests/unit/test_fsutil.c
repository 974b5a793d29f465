/* test_fsutil.c: fsutil.c, the host-side file work on trees a sandbox wrote. rm_rf_at never
 * follows a planted symlink nor crosses a mount (tmpfs or bind, in a private mount namespace
 * of a forked child); copy_tree_at copies symlinks as symlinks, drops set-id bits, keeps to
 * its byte budget and never writes through a symlink in the destination; empty_dir_at;
 * mkdir_p's modes; trees 300 levels deep on a small thread stack and few fds. */
#include "lib/core/core.h"

#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

static char base[64];	/* per-test scratch directory */
static int basefd = -1;

static int setup(void **state __attribute__((unused)))
{
	snprintf(base, sizeof(base), "/tmp/agentd-test-fsutil-XXXXXX");
	if (!mkdtemp(base))
		return -1;
	basefd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return basefd < 0 ? -1 : 0;
}

static int teardown(void **state __attribute__((unused)))
{
	close(basefd);
	basefd = -1;
	rm_rf(base);
	return 0;
}

static void put(const char *rel, const char *text, mode_t mode)
{
	int fd = openat(basefd, rel, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		fail_msg("create %s: %s", rel, strerror(errno));
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	assert_int_equal(fchmod(fd, mode), 0); /* past the umask, set-id bits included */
	close(fd);
}

static void dir(const char *rel, mode_t mode)
{
	if (mkdirat(basefd, rel, mode) < 0)
		fail_msg("mkdir %s: %s", rel, strerror(errno));
	assert_int_equal(fchmodat(basefd, rel, mode, 0), 0);
}

static void link_(const char *target, const char *rel)
{
	if (symlinkat(target, basefd, rel) < 0)
		fail_msg("symlink %s: %s", rel, strerror(errno));
}

static bool exists(const char *rel)
{
	struct stat st;
	return fstatat(basefd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void assert_content(const char *rel, const char *want)
{
	_cleanup_free_ char *t = read_file_at(basefd, rel, 1 << 20, NULL);
	if (!t)
		fail_msg("%s: %s", rel, strerror(errno));
	assert_string_equal(t, want);
}

static size_t count_entries(const char *rel)
{
	int fd = openat(basefd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	DIR *d = fdopendir(fd);
	size_t n = 0;
	for (struct dirent *de; (de = readdir(d));)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* outside/ with a canary the symlinks below point at. */
static void plant_outside(void)
{
	dir("outside", 0755);
	dir("outside/sub", 0755);
	put("outside/canary", "alive", 0644);
	put("outside/sub/canary2", "alive2", 0644);
}

static void assert_outside_intact(void)
{
	assert_content("outside/canary", "alive");
	assert_content("outside/sub/canary2", "alive2");
	assert_int_equal(count_entries("outside"), 2);
	assert_int_equal(count_entries("outside/sub"), 1);
}

/* A tree full of symlinks a sandbox could plant: absolute and relative, to the directory,
 * to the file, to the parent, dangling, and a chain. */
static void plant_links(const char *tree)
{
	char p[256], t[256];
	snprintf(p, sizeof(p), "%s/abs_dir", tree);
	snprintf(t, sizeof(t), "%s/outside", base);
	link_(t, p);
	snprintf(p, sizeof(p), "%s/abs_file", tree);
	snprintf(t, sizeof(t), "%s/outside/canary", base);
	link_(t, p);
	snprintf(p, sizeof(p), "%s/deep/rel_dir", tree);
	link_("../../outside", p);
	snprintf(p, sizeof(p), "%s/deep/rel_sub", tree);
	link_("../../outside/sub", p);
	snprintf(p, sizeof(p), "%s/deep/dotdot", tree);
	link_("..", p);
	snprintf(p, sizeof(p), "%s/dangling", tree);
	link_("/nonexistent/agentd", p);
	snprintf(p, sizeof(p), "%s/chain", tree);
	link_("abs_dir", p);
}

static void rm_rf_never_follows_symlinks(void **state __attribute__((unused)))
{
	plant_outside();
	dir("tree", 0755);
	dir("tree/deep", 0755);
	put("tree/deep/file", "x", 0644);
	plant_links("tree");

	assert_int_equal(rm_rf_at(basefd, "tree"), 0);
	assert_false(exists("tree"));
	assert_outside_intact();

	/* A symlink as the name itself: only the link goes. */
	char t[256];
	snprintf(t, sizeof(t), "%s/outside", base);
	link_(t, "top_link");
	assert_int_equal(rm_rf_at(basefd, "top_link"), 0);
	assert_false(exists("top_link"));
	assert_outside_intact();

	/* Missing is success, a plain file is unlinked. */
	assert_int_equal(rm_rf_at(basefd, "nothing-here"), 0);
	put("plain", "p", 0600);
	assert_int_equal(rm_rf_at(basefd, "plain"), 0);
	assert_false(exists("plain"));
}

static void rm_rf_removes_unwritable_dirs(void **state __attribute__((unused)))
{
	/* A sandbox may leave a directory without permissions: rm_rf fixes the mode. Root
	 * bypasses the modes anyway, so this says something only as another user. */
	dir("tree", 0755);
	dir("tree/locked", 0755);
	put("tree/locked/f", "x", 0644);
	assert_int_equal(fchmodat(basefd, "tree/locked", 0, 0), 0);
	assert_int_equal(fchmodat(basefd, "tree", 0500, 0), 0);
	assert_int_equal(rm_rf_at(basefd, "tree"), 0);
	assert_false(exists("tree"));
}

/* ---------------------------------------------------------------- mounts */

#define CHILD_CHECK(code, cond)                                                                    \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "check %d: %s (errno %s)\n", code, #cond, strerror(errno)); \
			return code;                                                               \
		}                                                                                  \
	} while (0)

static int mounts_child(void)
{
	CHILD_CHECK(1, unshare(CLONE_NEWNS) == 0);
	CHILD_CHECK(2, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	/* An fd opened before unshare still walks the old namespace's mounts. */
	close(basefd);
	basefd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHILD_CHECK(7, basefd >= 0);
	char p[256], src[256];

	/* A tmpfs inside the tree, and a bind of a directory of the same filesystem (same
	 * st_dev as the tree: the harder case). */
	snprintf(p, sizeof(p), "%s/tree/a/tmp", base);
	CHILD_CHECK(3, mount("tmpfs", p, "tmpfs", 0, "size=1m") == 0);
	snprintf(p, sizeof(p), "%s/tree/a/tmp/on_tmpfs", base);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHILD_CHECK(4, fd >= 0 && write_all(fd, "tmpfs data", 10) == 0);
	close(fd);
	snprintf(src, sizeof(src), "%s/keep", base);
	snprintf(p, sizeof(p), "%s/tree/b/bind", base);
	CHILD_CHECK(5, mount(src, p, NULL, MS_BIND, NULL) == 0);
	/* And a bind of a single file. */
	snprintf(src, sizeof(src), "%s/keepfile", base);
	snprintf(p, sizeof(p), "%s/tree/b/filebind", base);
	CHILD_CHECK(6, mount(src, p, NULL, MS_BIND, NULL) == 0);

	int r = rm_rf_at(basefd, "tree");
	/* The mounts are not ours to remove: an error, and everything in them left. */
	CHILD_CHECK(10, r < 0);
	CHILD_CHECK(11, exists("tree/a/tmp/on_tmpfs"));
	CHILD_CHECK(12, exists("keep/precious"));
	CHILD_CHECK(13, exists("keep/sub/precious2"));
	CHILD_CHECK(14, exists("tree/b/bind/precious"));
	CHILD_CHECK(15, exists("keepfile"));
	/* What was not under a mount is gone. */
	CHILD_CHECK(16, !exists("tree/a/other"));
	CHILD_CHECK(17, !exists("tree/c"));

	snprintf(p, sizeof(p), "%s/tree/a/tmp", base);
	CHILD_CHECK(20, umount2(p, MNT_DETACH) == 0);
	snprintf(p, sizeof(p), "%s/tree/b/bind", base);
	CHILD_CHECK(21, umount2(p, MNT_DETACH) == 0);
	snprintf(p, sizeof(p), "%s/tree/b/filebind", base);
	CHILD_CHECK(22, umount2(p, MNT_DETACH) == 0);
	/* Unmounted, it all goes. */
	CHILD_CHECK(23, rm_rf_at(basefd, "tree") == 0);
	CHILD_CHECK(24, !exists("tree"));
	CHILD_CHECK(25, exists("keep/precious"));
	return 0;
}

static void rm_rf_does_not_cross_mounts(void **state __attribute__((unused)))
{
	if (geteuid() != 0)
		skip();
	dir("keep", 0755);
	dir("keep/sub", 0755);
	put("keep/precious", "p", 0644);
	put("keep/sub/precious2", "p", 0644);
	put("keepfile", "k", 0644);
	dir("tree", 0755);
	dir("tree/a", 0755);
	dir("tree/a/tmp", 0755);
	put("tree/a/other", "o", 0644);
	dir("tree/b", 0755);
	dir("tree/b/bind", 0755);
	put("tree/b/filebind", "", 0644);
	dir("tree/c", 0755);
	put("tree/c/f", "f", 0644);

	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(mounts_child());
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status))
		fail_msg("child check %d failed", WEXITSTATUS(status));
	/* Seen from here (the host's namespace), the bind source is whole too. */
	assert_content("keep/precious", "p");
	assert_content("keep/sub/precious2", "p");
	assert_content("keepfile", "k");
}

/* ---------------------------------------------------------------- copy */

static int open_dir(const char *rel)
{
	int fd = openat(basefd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fail_msg("open %s: %s", rel, strerror(errno));
	return fd;
}

static void copy_never_follows_and_drops_setid(void **state __attribute__((unused)))
{
	plant_outside();
	dir("src", 0755);
	dir("src/deep", 0755);
	dir("src/sgid", 02775);
	put("src/file", "hello", 0640);
	put("src/suid", "#!/bin/sh\n", 04755);
	put("src/both", "b", 06711);
	put("src/sgid/inner", "i", 0600);
	plant_links("src");
	assert_int_equal(mkfifoat(basefd, "src/fifo", 0644), 0);
	dir("dst", 0755);

	bool root = geteuid() == 0;
	uid_t uid = root ? 1234 : (uid_t)-1;
	gid_t gid = root ? 5678 : (gid_t)-1;
	_cleanup_close_ int s = open_dir("src");
	_cleanup_close_ int d = open_dir("dst");
	uint64_t budget = 1 << 20;
	assert_int_equal(copy_tree_at(s, d, uid, gid, &budget), 0);

	assert_content("dst/file", "hello");
	assert_content("dst/sgid/inner", "i");
	struct stat st;
	assert_int_equal(fstatat(basefd, "dst/file", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	if (root) {
		assert_int_equal(st.st_uid, 1234);
		assert_int_equal(st.st_gid, 5678);
	}
	assert_int_equal(fstatat(basefd, "dst/suid", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(fstatat(basefd, "dst/both", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_mode & 07777, 0711);
	assert_int_equal(fstatat(basefd, "dst/sgid", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0775);
	if (root)
		assert_int_equal(st.st_uid, 1234);
	/* Special files are skipped. */
	assert_false(exists("dst/fifo"));

	/* Symlinks are copied as symlinks with the same target, never through. */
	static const char *const links[] = {"abs_dir", "abs_file", "deep/rel_dir", "deep/rel_sub",
					    "deep/dotdot", "dangling", "chain"};
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		char sp[128], dp[128], a[256], b[256];
		snprintf(sp, sizeof(sp), "src/%s", links[i]);
		snprintf(dp, sizeof(dp), "dst/%s", links[i]);
		assert_int_equal(fstatat(basefd, dp, &st, AT_SYMLINK_NOFOLLOW), 0);
		if (!S_ISLNK(st.st_mode))
			fail_msg("%s is not a symlink", dp);
		if (root)
			assert_int_equal(st.st_uid, 1234);
		ssize_t la = readlinkat(basefd, sp, a, sizeof(a) - 1);
		ssize_t lb = readlinkat(basefd, dp, b, sizeof(b) - 1);
		assert_true(la > 0 && la == lb);
		a[la] = b[lb] = '\0';
		assert_string_equal(a, b);
	}
	assert_int_equal(count_entries("dst/deep"), 3);
	assert_outside_intact();
}

static void copy_never_writes_through_dst_symlinks(void **state __attribute__((unused)))
{
	plant_outside();
	dir("src", 0755);
	put("src/canary", "overwritten!", 0644);
	dir("src/sub", 0755);
	put("src/sub/canary2", "overwritten!", 0644);
	dir("dst", 0755);
	/* A destination prepared by a hostile party: names of the copy are symlinks out. */
	char t[256];
	snprintf(t, sizeof(t), "%s/outside/canary", base);
	link_(t, "dst/canary");
	snprintf(t, sizeof(t), "%s/outside/sub", base);
	link_(t, "dst/sub");

	_cleanup_close_ int s = open_dir("src");
	_cleanup_close_ int d = open_dir("dst");
	uint64_t budget = 1 << 20;
	int r = copy_tree_at(s, d, (uid_t)-1, (gid_t)-1, &budget);
	assert_true(r < 0); /* a file could not be written where a symlink is */
	assert_outside_intact();
	struct stat st;
	assert_int_equal(fstatat(basefd, "outside/canary", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
}

/* A sparse file is copied as one: its holes stay holes (and zero blocks become holes), the
 * content is equal, and only the data blocks count against the budget. */
static void copy_keeps_holes(void **state __attribute__((unused)))
{
	enum { MIB = 1 << 20 };
	dir("sparse", 0755);
	dir("sparse_copy", 0755);
	{
		_cleanup_close_ int s = open_dir("sparse");
		_cleanup_close_ int f = openat(s, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		assert_true(f >= 0);
		static const char head[] = "head", tail[] = "tail";
		static char zeros[3 * 4096];
		assert_int_equal(pwrite(f, head, 4, 0), 4);
		assert_int_equal(pwrite(f, zeros, sizeof(zeros), 4096), (ssize_t)sizeof(zeros));
		assert_int_equal(pwrite(f, tail, 4, 100 * MIB), 4);
	}
	_cleanup_close_ int s = open_dir("sparse");
	_cleanup_close_ int d = open_dir("sparse_copy");
	uint64_t budget = 4096 + 2 * 4096; /* the entry and the two data blocks */
	assert_int_equal(copy_tree_at(s, d, (uid_t)-1, (gid_t)-1, &budget), 0);
	assert_int_equal(budget, 0);
	struct stat st;
	assert_int_equal(fstatat(d, "f", &st, 0), 0);
	assert_int_equal(st.st_size, 100 * MIB + 4);
	assert_true((uint64_t)st.st_blocks * 512 < MIB);
	_cleanup_close_ int a = openat(s, "f", O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int b = openat(d, "f", O_RDONLY | O_CLOEXEC);
	static char x[1 << 16], y[1 << 16];
	for (off_t off = 0; off < st.st_size; off += (off_t)sizeof(x)) {
		ssize_t n = pread(a, x, sizeof(x), off);
		assert_true(n > 0);
		assert_int_equal(pread(b, y, sizeof(y), off), n);
		assert_memory_equal(x, y, (size_t)n);
	}
	assert_int_equal(lseek(b, 4096, SEEK_DATA), 100 * MIB / 4096 * 4096);
	uint64_t alloc = 0;
	assert_int_equal(tree_allocated_at(d, &alloc), 0);
	assert_true(alloc < MIB);
}

static void copy_respects_budget(void **state __attribute__((unused)))
{
	enum { ENTRY = 4096 };	/* COPY_ENTRY_COST */
	char big[10001];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	dir("src", 0755);
	put("src/big", big, 0644);
	dir("ok", 0755);
	dir("short", 0755);
	_cleanup_close_ int s = open_dir("src");

	/* Exactly enough: one entry plus its data blocks (4096 bytes each, 3 for 10000). */
	uint64_t budget = ENTRY + 3 * 4096;
	{
		_cleanup_close_ int d = open_dir("ok");
		assert_int_equal(copy_tree_at(s, d, (uid_t)-1, (gid_t)-1, &budget), 0);
		assert_int_equal(budget, 0);
		assert_content("ok/big", big);
	}
	/* One byte short: refused, and never more than the budget written. */
	budget = ENTRY + 3 * 4096 - 1;
	{
		_cleanup_close_ int d = open_dir("short");
		assert_int_equal(copy_tree_at(s, d, (uid_t)-1, (gid_t)-1, &budget), -EFBIG);
		struct stat st;
		if (fstatat(basefd, "short/big", &st, 0) == 0)
			assert_true(st.st_size <= 2 * 4096);
	}

	/* Entries cost even when empty: 3 empty files need 3 entries. */
	dir("empties", 0755);
	put("empties/a", "", 0644);
	put("empties/b", "", 0644);
	dir("empties/c", 0755);
	dir("e1", 0755);
	dir("e2", 0755);
	_cleanup_close_ int es = open_dir("empties");
	budget = 3 * ENTRY;
	{
		_cleanup_close_ int d = open_dir("e1");
		assert_int_equal(copy_tree_at(es, d, (uid_t)-1, (gid_t)-1, &budget), 0);
		assert_int_equal(budget, 0);
		assert_int_equal(count_entries("e1"), 3);
	}
	budget = 3 * ENTRY - 1;
	{
		_cleanup_close_ int d = open_dir("e2");
		assert_int_equal(copy_tree_at(es, d, (uid_t)-1, (gid_t)-1, &budget), -EFBIG);
		assert_true(count_entries("e2") <= 2);
	}
}

/* ---------------------------------------------------------------- empty_dir_at, mkdir_p */

static void empty_dir_keeps_the_dir(void **state __attribute__((unused)))
{
	plant_outside();
	dir("box", 0751);
	dir("box/d", 0755);
	dir("box/d/e", 0755);
	dir("box/d/deep", 0755);
	put("box/d/e/f", "f", 0644);
	put("box/.hidden", "h", 0600);
	plant_links("box/d");
	char t[256];
	snprintf(t, sizeof(t), "%s/outside", base);
	link_(t, "box/out");

	_cleanup_close_ int fd = open_dir("box");
	assert_int_equal(empty_dir_at(fd), 0);
	assert_true(exists("box"));
	assert_int_equal(count_entries("box"), 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0751);
	assert_outside_intact();
	/* Already empty: fine. */
	assert_int_equal(empty_dir_at(fd), 0);
	/* The same fd again, after new entries: it starts from the first entry (the fd's
	 * offset was left at the end by the first call). */
	put("box/again", "a", 0644);
	dir("box/again_dir", 0755);
	assert_int_equal(empty_dir_at(fd), 0);
	assert_int_equal(count_entries("box"), 0);
	assert_int_equal(empty_dir_at(-1), -EBADF);
}

static void mkdir_p_modes(void **state __attribute__((unused)))
{
	/* whatever the umask (UMask=0077 in the unit): a parent left 0700 would shut out the
	 * sandboxes' uids that traverse it */
	mode_t old = umask(0077);
	char p[256];
	snprintf(p, sizeof(p), "%s/a/b/c", base);
	assert_int_equal(mkdir_p(p, 0711), 0);
	umask(old);
	struct stat st;
	assert_int_equal(fstatat(basefd, "a/b/c", &st, 0), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0711);
	assert_int_equal(fstatat(basefd, "a", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0755);	/* parents: 0755 */
	assert_int_equal(fstatat(basefd, "a/b", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0755);

	/* Existing is fine and leaves the mode alone. */
	assert_int_equal(mkdir_p(p, 0700), 0);
	assert_int_equal(fstatat(basefd, "a/b/c", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0711);

	/* A file in the way of a parent is an error. */
	put("file", "x", 0644);
	snprintf(p, sizeof(p), "%s/file/sub", base);
	assert_int_equal(mkdir_p(p, 0755), -ENOTDIR);
	/* ... and so is a file where the directory should be. */
	snprintf(p, sizeof(p), "%s/file", base);
	assert_int_equal(mkdir_p(p, 0755), -ENOTDIR);
	/* A symlink to a directory is a directory (mkdir -p). */
	link_("a/b", "link_to_dir");
	snprintf(p, sizeof(p), "%s/link_to_dir", base);
	assert_int_equal(mkdir_p(p, 0755), 0);

	/* Too long for its buffer. */
	char *lng = xmalloc(5000);
	memset(lng, 'a', 4999);
	lng[0] = '/';
	lng[4999] = '\0';
	assert_int_equal(mkdir_p(lng, 0755), -ENAMETOOLONG);
	free(lng);
}

/* ---------------------------------------------------------------- deep trees */

#define DEEP 300

/* rel/d/d/d... DEEP levels, a file at the bottom; made fd-relative (no path limits). */
static void make_deep(const char *rel, int levels)
{
	dir(rel, 0755);
	int fd = open_dir(rel);
	for (int i = 0; i < levels; i++) {
		if (mkdirat(fd, "d", 0755) < 0)
			fail_msg("level %d: %s", i, strerror(errno));
		int n = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(n >= 0);
		close(fd);
		fd = n;
	}
	int f = openat(fd, "bottom", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(f >= 0);
	close(f);
	close(fd);
}

/* How many levels of d/ below rel, and whether "bottom" is at the end. */
static int depth_of(const char *rel, bool *bottom)
{
	int fd = open_dir(rel);
	int n = 0;
	for (;;) {
		int c = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (c < 0)
			break;
		close(fd);
		fd = c;
		n++;
	}
	struct stat st;
	*bottom = fstatat(fd, "bottom", &st, 0) == 0;
	close(fd);
	return n;
}

/* A small stack: the recursions must not grow with the tree beyond their caps. Sanitizer
 * frames are several times larger. */
#if defined(__SANITIZE_ADDRESS__)
#define SMALL_STACK (4u << 20)
#else
#define SMALL_STACK (256u << 10)
#endif

struct deep_job {
	int which;	/* 0 rm_rf_at, 1 empty_dir_at, 2 copy_tree_at */
	int r;
	int src, dst;
	uint64_t budget;
};

static void *deep_thread(void *arg)
{
	struct deep_job *j = arg;
	if (j->which == 0)
		j->r = rm_rf_at(basefd, "deep");
	else if (j->which == 1)
		j->r = empty_dir_at(j->src);
	else
		j->r = copy_tree_at(j->src, j->dst, (uid_t)-1, (gid_t)-1, &j->budget);
	return NULL;
}

static void run_small_stack(struct deep_job *j)
{
	pthread_attr_t a;
	pthread_attr_init(&a);
	assert_int_equal(pthread_attr_setstacksize(&a, SMALL_STACK), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, &a, deep_thread, j), 0);
	pthread_join(t, NULL);
	pthread_attr_destroy(&a);
}

static void deep_rm_rf_and_empty(void **state __attribute__((unused)))
{
	make_deep("deep", DEEP);
	bool bottom;
	assert_int_equal(depth_of("deep", &bottom), DEEP);
	assert_true(bottom);
	struct deep_job j = {.which = 0};
	run_small_stack(&j);
	assert_int_equal(j.r, 0);
	assert_false(exists("deep"));
	/* Nothing of it was moved out of the tree. */
	assert_int_equal(count_entries("."), 0);

	make_deep("deep2", DEEP);
	j = (struct deep_job){.which = 1, .src = open_dir("deep2")};
	run_small_stack(&j);
	close(j.src);
	assert_int_equal(j.r, 0);
	assert_int_equal(count_entries("deep2"), 0);
}

static void deep_rm_rf_with_few_fds(void **state __attribute__((unused)))
{
	/* An fd per level would run out: rm_rf flattens the tree instead. */
	make_deep("deep", DEEP);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = {.rlim_cur = 128, .rlim_max = 128};
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(2);
		_exit(rm_rf_at(basefd, "deep") == 0 ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_false(exists("deep"));
	assert_int_equal(count_entries("."), 0);
}

static void deep_copy_is_bounded(void **state __attribute__((unused)))
{
	/* Within the copy's depth cap: the whole tree. */
	make_deep("src", 200);
	dir("dst", 0755);
	struct deep_job j = {.which = 2, .src = open_dir("src"), .dst = open_dir("dst"),
			     .budget = 1ull << 30};
	run_small_stack(&j);
	close(j.src);
	close(j.dst);
	assert_int_equal(j.r, 0);
	bool bottom;
	assert_int_equal(depth_of("dst", &bottom), 200);
	assert_true(bottom);

	/* Deeper than the cap: refused (ELOOP), not a crash. */
	make_deep("src2", DEEP);
	dir("dst2", 0755);
	j = (struct deep_job){.which = 2, .src = open_dir("src2"), .dst = open_dir("dst2"),
			      .budget = 1ull << 30};
	run_small_stack(&j);
	close(j.src);
	close(j.dst);
	assert_int_equal(j.r, -ELOOP);
	assert_true(depth_of("dst2", &bottom) < DEEP);
	assert_false(bottom);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(rm_rf_never_follows_symlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(rm_rf_removes_unwritable_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(rm_rf_does_not_cross_mounts, setup, teardown),
		cmocka_unit_test_setup_teardown(copy_never_follows_and_drops_setid, setup, teardown),
		cmocka_unit_test_setup_teardown(copy_never_writes_through_dst_symlinks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(copy_keeps_holes, setup, teardown),
		cmocka_unit_test_setup_teardown(copy_respects_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(empty_dir_keeps_the_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(mkdir_p_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(deep_rm_rf_and_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(deep_rm_rf_with_few_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(deep_copy_is_bounded, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
