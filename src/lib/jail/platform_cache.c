/* platform_cache.c: the platform probe's verdict kept for a minute, so that a one-shot
 * `agentd run` does not pay its trial cgroup and user-namespace child (about 2 ms here) on
 * every run. The verdict is only reused by the same euid, in the same cgroup, on the same
 * boot, kernel and agentd build; it sits in a directory only that user may write
 * (/run/agentd as root, $XDG_RUNTIME_DIR/agentd otherwise), in a 0600 file of its own.
 * A stale "yes" cannot weaken a sandbox: the sandbox's own setup still fails closed. */
#include "lib/jail/jail.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#define CACHE_TTL_S 60
#define CACHE_MAGIC 0x61706331u /* "apc1" */

struct cache_head {
	uint32_t magic;
	uint32_t key_len;
	uint32_t body_len;
	uint32_t pad;
	int64_t written; /* CLOCK_REALTIME seconds */
};

static bool cache_disabled;

void agentd_platform_no_cache(void)
{
	cache_disabled = true;
}

static char *cache_dir(void)
{
	if (geteuid() == 0)
		return xstrdup("/run/agentd");
	const char *x = getenv("XDG_RUNTIME_DIR");
	return x && x[0] == '/' ? xasprintf("%s/agentd", x) : NULL;
}

/* What the verdict depends on, beyond the code (AGENTD_VERSION and the struct's size). */
static char *cache_key(void)
{
	struct utsname u;
	if (uname(&u) < 0)
		return NULL;
	_cleanup_free_ char *boot = read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", 64, NULL);
	_cleanup_free_ char *cg = read_file_at(AT_FDCWD, "/proc/self/cgroup", 8192, NULL);
	if (!boot || !cg)
		return NULL;
	return xasprintf("%s %zu euid=%u egid=%u %s %s\n%s\n%s", AGENTD_VERSION,
			 sizeof(agentd_platform), (unsigned)geteuid(), (unsigned)getegid(),
			 u.release, u.version, boot, cg);
}

bool platform_cache_load(agentd_platform *p, char **key_out)
{
	*key_out = NULL;
	if (cache_disabled)
		return false;
	_cleanup_free_ char *dir = cache_dir();
	char *key = cache_key();
	if (!dir || !key) {
		free(key);
		return false;
	}
	*key_out = key;
	_cleanup_free_ char *path = xasprintf("%s/platform.cache", dir);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st;
	struct cache_head h;
	size_t klen = strlen(key);
	bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
		  !(st.st_mode & 077) &&
		  (size_t)st.st_size == sizeof(h) + klen + sizeof(*p) &&
		  read(fd, &h, sizeof(h)) == (ssize_t)sizeof(h) && h.magic == CACHE_MAGIC &&
		  h.key_len == klen && h.body_len == sizeof(*p);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	ok = ok && h.written <= now.tv_sec && now.tv_sec - h.written < CACHE_TTL_S;
	if (ok) {
		char *k = xmalloc(klen);
		agentd_platform body;
		ok = read(fd, k, klen) == (ssize_t)klen && memcmp(k, key, klen) == 0 &&
		     read(fd, &body, sizeof(body)) == (ssize_t)sizeof(body);
		free(k);
		if (ok) {
			/* strings from the file are ended whatever it holds */
			body.kernel[sizeof(body.kernel) - 1] = '\0';
			body.reasons[sizeof(body.reasons) - 1] = '\0';
			body.cgroup_reason[sizeof(body.cgroup_reason) - 1] = '\0';
			*p = body;
		}
	}
	close(fd);
	return ok;
}

void platform_cache_store(const agentd_platform *p, const char *key)
{
	if (cache_disabled || !key)
		return;
	_cleanup_free_ char *dir = cache_dir();
	if (!dir || (mkdir(dir, 0700) < 0 && errno != EEXIST))
		return;
	struct stat st;
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022))
		return; /* only a directory no one else may write */
	_cleanup_free_ char *path = xasprintf("%s/platform.cache", dir);
	_cleanup_free_ char *tmp = xasprintf("%s/.platform.cache.%d", dir, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct cache_head h = {.magic = CACHE_MAGIC, .key_len = (uint32_t)strlen(key),
			       .body_len = sizeof(*p), .written = now.tv_sec};
	bool ok = write_all(fd, &h, sizeof(h)) == 0 && write_all(fd, key, h.key_len) == 0 &&
		  write_all(fd, p, sizeof(*p)) == 0;
	close(fd);
	if (!ok || rename(tmp, path) < 0)
		unlink(tmp);
}
