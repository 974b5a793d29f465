/* cache.c: the rootfs cache: the allowlisted /etc files' content in one file (etc.pack) in a
 * host directory, one variant per fingerprint of their sources, copied from by sandboxes. */
#include "lib/jail/mounts/mounts_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

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
	len = (size_t)snprintf(fp, cap, "agentd-rootfs-cache 2\n");
	for (size_t i = 0; i < s->n; i++) {
		const struct etc_item *it = &s->v[i];
		const struct stat *st = &it->st;
		if (it->kind != ETC_FILE) /* the pack holds the files alone */
			continue;
		_cleanup_free_ char *line = xasprintf(
		    "F %s %s %o %lu %lu %lld %lld.%09ld %lld.%09ld\n", it->path, it->source,
		    st->st_mode, (unsigned long)st->st_dev, (unsigned long)st->st_ino,
		    (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
		    (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
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

/* All of src, which must be as long as when it was fingerprinted (offsets in the pack
 * follow from those sizes), appended to out. */
static int append_file(int out, const char *src, off_t size)
{
	_cleanup_close_ int in = open(src, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	off_t done;
	int r = copy_fd_bytes(in, out, size, &done);
	if (r == -EFBIG)
		return -ESTALE;
	return r < 0 ? r : done == size ? 0 : -ESTALE;
}

/* etc.pack: the set's files back to back, in its order; then the fingerprint. */
static int cache_fill(int dfd, const struct etc_set *s, const char *fp)
{
	_cleanup_close_ int out =
	    openat(dfd, "etc.pack", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0)
		return -errno;
	for (size_t i = 0; i < s->n; i++) {
		const struct etc_item *it = &s->v[i];
		int r = it->kind == ETC_FILE ? append_file(out, it->source, it->st.st_size) : 0;
		if (r < 0)
			return r;
	}
	if (fchmod(out, 0644) < 0)
		return -errno;
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

/* <cache>/<hash of the fingerprint>/etc.pack: built once in a temporary directory and
 * renamed into place, so concurrent builders and crashes leave either nothing or a whole
 * variant. The sources are stat fingerprinted: a changed one gives a new variant. Variants
 * are never removed here: a sandbox being set up may be reading one. NULL + reason on
 * failure (the caller binds /etc's files instead). */
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
