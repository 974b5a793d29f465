/* fuzz_tarx.c: libFuzzer target for the tar extraction of the files API and image import
 * (src/lib/host/tarx.c). Input: byte 0 picks the policy (bit 0: symlinks to any target),
 * the rest is the archive. Each input is extracted into a fresh directory inside a private
 * parent; then nothing may exist beside it, nothing inside may be a device, fifo or socket
 * or carry setuid/setgid/sticky bits, no symlink may leave it (unless the policy allows),
 * the data written stays within the bound, and the tree written back as a tar (the
 * download half) passes the check again. */
#include "lib/host/host.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_ENTRIES 64
#define MAX_BYTES (1u << 20)

static char parent[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	snprintf(parent, sizeof(parent), "/tmp/fuzz-tarx-XXXXXX");
	if (!mkdtemp(parent))
		abort();
	return 0;
}

static uint64_t check_tree(int dir, bool any_target, int depth)
{
	if (depth > 300)
		abort();
	DIR *d = fdopendir(dir);
	if (!d)
		abort();
	uint64_t bytes = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			abort();
		if (S_ISLNK(st.st_mode)) {
			char t[4097];
			ssize_t n = readlinkat(dirfd(d), de->d_name, t, sizeof(t) - 1);
			if (n < 0)
				abort();
			t[n] = '\0';
			if (!any_target && t[0] == '/')
				abort();
			continue;
		}
		if (st.st_mode & 07000)
			abort();
		if (S_ISREG(st.st_mode)) {
			bytes += (uint64_t)st.st_size;
			continue;
		}
		if (!S_ISDIR(st.st_mode))
			abort(); /* a device, fifo or socket */
		int c = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		if (c < 0) {
			fchmodat(dirfd(d), de->d_name, 0700, 0);
			c = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		}
		if (c < 0)
			abort();
		bytes += check_tree(c, any_target, depth + 1);
	}
	closedir(d);
	return bytes;
}

/* The directory written back as a tar and checked as an upload would be. */
static void round_trip(int dir)
{
	struct tarx_policy p = {.max_entries = 1u << 20, .max_bytes = 1u << 30,
				.symlinks_any_target = true};
	agentd_error err = {0};
	struct tarx_writer *w = tarx_writer_new(dir, &p, &err);
	if (!w)
		return;
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (cap - n < 4096)
			buf = realloc(buf, cap *= 2);
		ssize_t r = tarx_writer_read(w, buf + n, cap - n, &err);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	tarx_writer_free(w);
	struct tarx_stats st;
	if (n && !err.code && tarx_check(buf, n, &p, &st, &err) < 0)
		abort();
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct tarx_policy p = {.max_entries = MAX_ENTRIES, .max_bytes = MAX_BYTES,
				.symlinks_any_target = data[0] & 1};
	int top = open(parent, O_RDONLY | O_DIRECTORY);
	if (top < 0 || mkdirat(top, "x", 0700) < 0)
		abort();
	int dir = openat(top, "x", O_RDONLY | O_DIRECTORY);
	struct tarx_stats st;
	agentd_error err = {0};
	tarx_extract(dir, data + 1, size - 1, &p, &st, &err);
	if (st.entries > MAX_ENTRIES || st.bytes > MAX_BYTES)
		abort();
	/* nothing beside the destination */
	DIR *d = fdopendir(dup(top));
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "x"))
			abort();
	closedir(d);
	if (check_tree(dup(dir), p.symlinks_any_target, 0) > MAX_BYTES)
		abort();
	round_trip(dup(dir));
	close(dir);
	if (rm_rf_at(top, "x") < 0)
		abort();
	close(top);
	return 0;
}
