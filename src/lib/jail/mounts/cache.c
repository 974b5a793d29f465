/* cache.c: the rootfs cache: prepared copies of the allowlisted /etc and a /dev skeleton in
 * a host directory, one variant per fingerprint of their sources, bound whole by sandboxes. */
#include "lib/jail/mounts/mounts_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>

/* The /dev skeleton: mount points for the device binds, devpts and shm, and the usual
 * symlinks. Read-only in the sandbox like everything that is not scratch. */
const char *const dev_skel_nodes[6] = {"null", "zero", "full", "random", "urandom", "tty"};
const char *const dev_skel_links[5][2] = {
    {"ptmx", "pts/ptmx"},	   {"fd", "/proc/self/fd"},	  {"stdin", "/proc/self/fd/0"},
    {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
};

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

static char *fingerprint(const struct etc_set *s)
{
	size_t len = 0, cap = 4096;
	char *fp = xmalloc(cap);
	len = (size_t)snprintf(fp, cap, "agentd-rootfs-cache 1\n");
	for (size_t i = 0; i < s->n; i++) {
		const struct etc_item *it = &s->v[i];
		const struct stat *st = &it->st;
		_cleanup_free_ char *line = NULL;
		if (it->kind == ETC_FILE)
			line =
			    xasprintf("F %s %s %o %lu %lu %lld %lld.%09ld %lld.%09ld\n", it->path,
				      it->source, st->st_mode, (unsigned long)st->st_dev,
				      (unsigned long)st->st_ino, (long long)st->st_size,
				      (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
				      (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
		else if (it->kind == ETC_DIR)
			line = xasprintf("D %s\n", it->path);
		else if (it->kind == ETC_LINK)
			line = xasprintf("L %s %s\n", it->path, it->data);
		else
			line = xasprintf("G %s %zu\n%s\n", it->path, strlen(it->data), it->data);
		size_t n = strlen(line);
		if (len + n + 1 > cap) {
			cap = 2 * (len + n + 1);
			fp = xrealloc(fp, cap);
		}
		memcpy(fp + len, line, n + 1);
		len += n;
	}
	return fp;
}

static int mkdir_mode_at(int dfd, const char *name, mode_t mode)
{
	if (mkdirat(dfd, name, mode) < 0)
		return -errno;
	return fchmodat(dfd, name, mode, 0) < 0 ? -errno : 0; /* whatever the umask */
}

static int write_new_at(int dfd, const char *name, const char *data, size_t len, mode_t mode)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, data, len) < 0 ? -errno : 0;
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int copy_file_at(int dfd, const char *name, const char *src, mode_t mode)
{
	_cleanup_close_ int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -errno;
	_cleanup_close_ int out =
	    openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	char buf[65536];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		if (write_all(out, buf, (size_t)n) < 0)
			return -errno;
	}
	return fchmod(out, mode & 0777) < 0 ? -errno : 0;
}

/* Create the parents of rel ("ssl/certs") under dfd. */
static int mkparents_at(int dfd, const char *rel)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", rel);
	for (char *p = strchr(buf, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		int r = mkdir_mode_at(dfd, buf, 0755);
		*p = '/';
		if (r < 0 && r != -EEXIST)
			return r;
	}
	return 0;
}

static int cache_fill(int dfd, const struct etc_set *s, const char *fp)
{
	int r;
	if ((r = mkdir_mode_at(dfd, "etc", 0755)) < 0 || (r = mkdir_mode_at(dfd, "dev", 0755)) < 0)
		return r;
	for (size_t i = 0; i < s->n; i++) {
		const struct etc_item *it = &s->v[i];
		const char *rel = it->path + 1; /* "etc/..." */
		if ((r = mkparents_at(dfd, rel)) < 0)
			return r;
		if (it->kind == ETC_FILE)
			r = copy_file_at(dfd, rel, it->source, it->st.st_mode);
		else if (it->kind == ETC_DIR)
			r = mkdir_mode_at(dfd, rel, 0755); /* mount point */
		else if (it->kind == ETC_LINK)
			r = symlinkat(it->data, dfd, rel) < 0 ? -errno : 0;
		else
			r = write_new_at(dfd, rel, it->data, strlen(it->data), 0644);
		if (r < 0)
			return r;
	}
	char rel[64];
	for (size_t i = 0; i < ARRAY_SIZE(dev_skel_nodes); i++) {
		snprintf(rel, sizeof(rel), "dev/%s", dev_skel_nodes[i]);
		if ((r = write_new_at(dfd, rel, "", 0, 0666)) < 0)
			return r;
	}
	if ((r = mkdir_mode_at(dfd, "dev/pts", 0755)) < 0 ||
	    (r = mkdir_mode_at(dfd, "dev/shm", 0755)) < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(dev_skel_links); i++) {
		snprintf(rel, sizeof(rel), "dev/%s", dev_skel_links[i][0]);
		if (symlinkat(dev_skel_links[i][1], dfd, rel) < 0)
			return -errno;
	}
	return write_new_at(dfd, "fingerprint", fp, strlen(fp), 0644);
}

/* Leftovers of builders that died midway (nothing ever mounts a .tmp- directory). */
static void cache_sweep(const char *cache_dir)
{
	DIR *d = opendir(cache_dir);
	if (!d)
		return;
	time_t now = time(NULL);
	for (struct dirent *de; (de = readdir(d));) {
		struct stat st;
		if (strncmp(de->d_name, ".tmp-", 5) == 0 &&
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    now - st.st_mtime > 600)
			rm_rf_at(dirfd(d), de->d_name);
	}
	closedir(d);
}

static bool variant_matches(const char *variant, const char *fp)
{
	_cleanup_free_ char *path = xasprintf("%s/fingerprint", variant);
	_cleanup_free_ char *have = read_file_at(AT_FDCWD, path, 1 << 20, NULL);
	return have && strcmp(have, fp) == 0;
}

/* <cache>/<hash of the fingerprint>/{etc,dev}: built once in a temporary directory and
 * renamed into place, so concurrent builders and crashes leave either nothing or a whole
 * tree. Files are copies (stat fingerprinted: a changed source gives a new variant);
 * directories stay live binds over the empty mount points. Variants are never removed
 * here: a running sandbox may have mounts on their mount points. NULL + reason on failure
 * (the caller builds /etc in the scratch instead). */
char *cache_variant(const char *cache_dir, const struct etc_set *s, char *why, size_t wlen)
{
	_cleanup_free_ char *fp = fingerprint(s);
	char *variant =
	    xasprintf("%s/%016llx", cache_dir, (unsigned long long)fnv1a(fp, strlen(fp)));
	if (variant_matches(variant, fp))
		return variant;

	int r = mkdir_p(cache_dir, 0711);
	/* ids of a user namespace are "others" to root-owned host dirs: they must traverse */
	if (r == 0 && chmod(cache_dir, 0711) < 0)
		r = -errno;
	if (r == 0)
		cache_sweep(cache_dir);
	char id[AGENTD_ID_LEN];
	random_id(id);
	_cleanup_free_ char *tmp = xasprintf("%s/.tmp-%s", cache_dir, id);
	if (r == 0 && mkdir(tmp, 0700) < 0)
		r = -errno;
	if (r == 0) {
		_cleanup_close_ int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = dfd < 0 ? -errno : cache_fill(dfd, s, fp);
		if (r == 0 && fchmod(dfd, 0755) < 0)
			r = -errno;
		if (r == 0 && rename(tmp, variant) < 0)
			r = -errno;
		if (r < 0)
			rm_rf(tmp);
		if (r == -EEXIST || r == -ENOTEMPTY) /* built by someone else meanwhile */
			r = variant_matches(variant, fp) ? 0 : -EEXIST;
	}
	if (r < 0) {
		snprintf(why, wlen, "%s: %s", variant, strerror(-r));
		free(variant);
		return NULL;
	}
	return variant;
}
