/* layer.c: one image layer from its blob to an unpacked directory — decompression
 * (libarchive's gzip/zstd/xz filters), its digests checked, and the tar extracted by tarx
 * with the image policy: numeric owners kept, setuid/setgid dropped, overlay whiteouts,
 * devices refused, links never followed, entries and bytes bounded. */
#include "lib/image/image.h"

#include "lib/host/host.h"
#include "lib/host/tarx_la.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

bool layer_compressed(const void *data, size_t len)
{
	static const struct {
		const char *magic;
		size_t len;
	} m[] = {{"\x1f\x8b", 2}, {"\x28\xb5\x2f\xfd", 4}, {"\xfd" "7zXZ\0", 6}};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (len >= m[i].len && !memcmp(data, m[i].magic, m[i].len))
			return true;
	return false;
}

/* The decompressed stream of a (raw format) into fd, hashed, at most max bytes. */
static int inflate_into(const struct tarx_la *la, struct archive *a, int fd, uint64_t max,
			char hex[IMAGE_HEX_LEN + 1], agentd_error *err)
{
	struct archive_entry *e;
	if (la->archive_read_next_header(a, &e) != ARCHIVE_OK)
		return agentd_error_set(err, EINVAL, "not a compressed stream: %s",
					la->archive_error_string(a) ? la->archive_error_string(a)
								    : "?");
	struct sha256_ctx c;
	sha256_init(&c);
	_cleanup_free_ char *buf = xmalloc(1u << 20);
	uint64_t total = 0;
	for (;;) {
		la_ssize_t n = la->archive_read_data(a, buf, 1u << 20);
		if (n == 0)
			break;
		if (n < 0)
			return agentd_error_set(err, EINVAL, "decompress: %s",
						la->archive_error_string(a));
		total += (uint64_t)n;
		if (total > max)
			return agentd_error_set(err, E2BIG,
						"decompresses to more than %llu bytes (the layer "
						"bound)", (unsigned long long)max);
		sha256_update(&c, (size_t)n, (const uint8_t *)buf);
		if (write_all(fd, buf, (size_t)n) < 0)
			return agentd_error_errno(err, errno, "decompress: write");
	}
	sha256_ctx_hex(&c, hex);
	return 0;
}

/* A new file of w, unlinked at once: nothing to clean up. */
static int anon_file(struct image_work *w, const char *kind, agentd_error *err)
{
	char name[32];
	snprintf(name, sizeof(name), "%s-%u", kind, w->seq++);
	int fd = openat(w->dfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return agentd_error_errno(err, errno, "create %s", name);
	unlinkat(w->dfd, name, 0);
	return fd;
}

uint64_t layer_tar_max(const agentd_image_store *s)
{
	return s->max_bytes + (s->max_entries + 2) * (16u << 10);
}

int private_copy(struct image_work *w, int fd, uint64_t max, const char *what,
		 agentd_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return agentd_error_errno(err, errno, "%s", what);
	if (!S_ISREG(st.st_mode))
		return agentd_error_set(err, EINVAL, "%s: not a regular file", what);
	if ((uint64_t)st.st_size > max)
		return agentd_error_set(err, E2BIG, "%s: more than %llu bytes (the bound)", what,
					(unsigned long long)max);
	int out = anon_file(w, "copy", err);
	if (out < 0)
		return agentd_error_prefix(err, "%s", what);
	/* the file may grow meanwhile: never more than max + 1 bytes (that one says "over") */
	uint64_t total = 0;
	bool plain_io = false;
	_cleanup_free_ char *buf = NULL;
	for (;;) {
		size_t want = (size_t)(max + 1 - total < (1u << 20) ? max + 1 - total : 1u << 20);
		ssize_t n = -1;
		if (!plain_io) {
			n = copy_file_range(fd, NULL, out, NULL, want, 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
				      errno == EOPNOTSUPP)) {
				plain_io = true;
				buf = xmalloc(1u << 20);
				continue;
			}
		} else {
			n = read(fd, buf, want);
			if (n > 0 && write_all(out, buf, (size_t)n) < 0)
				n = -1;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			agentd_error_errno(err, errno, "%s: copy", what);
			close(out);
			return -1;
		}
		if (n == 0)
			break;
		if ((total += (uint64_t)n) > max) {
			agentd_error_set(err, E2BIG, "%s: more than %llu bytes (the bound)", what,
					 (unsigned long long)max);
			close(out);
			return -1;
		}
	}
	return out;
}

int layer_decompress(struct image_work *w, const void *data, size_t len, uint64_t max,
		     char hex[IMAGE_HEX_LEN + 1], agentd_error *err)
{
	const struct tarx_la *la = tarx_la(err);
	if (!la)
		return -1;
	int fd = anon_file(w, "plain", err);
	if (fd < 0)
		return agentd_error_prefix(err, "decompress");
	struct archive *a = la->archive_read_new();
	la->archive_read_support_filter_gzip(a);
	la->archive_read_support_filter_xz(a);
	la->archive_read_support_filter_zstd(a);
	la->archive_read_support_format_raw(a);
	int r = la->archive_read_open_memory2(a, data, len, 1u << 20) == ARCHIVE_OK
			? inflate_into(la, a, fd, max, hex, err)
			: agentd_error_set(err, EINVAL, "decompress: %s",
					   la->archive_error_string(a));
	la->archive_read_free(a);
	if (r < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

uint64_t layer_size(agentd_image_store *s, const char *hex)
{
	char path[128];
	snprintf(path, sizeof(path), "layers/%s.json", hex);
	_cleanup_free_ char *text = read_file_at(s->dfd, path, 4096, NULL);
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	uint64_t size = (uint64_t)json_integer_value(json_object_get(j, "size"));
	json_decref(j);
	return size;
}

/* The uncompressed layer tar (map, len) extracted into w's "layer-<hex>". */
static int extract_layer(struct image_work *w, const void *map, size_t len, const char *hex,
			 agentd_error *err)
{
	char name[IMAGE_HEX_LEN + 16];
	snprintf(name, sizeof(name), "layer-%s", hex);
	if (mkdirat(w->dfd, name, 0755) < 0)
		return agentd_error_errno(err, errno, "create %s", name);
	_cleanup_close_ int dir = openat(w->dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
							    O_CLOEXEC);
	if (dir < 0)
		return agentd_error_errno(err, errno, "open %s", name);
	/* one layer's bounds, or what the image's earlier layers left of their total */
	uint64_t left_entries = IMAGE_TOTAL_FACTOR * w->s->max_entries - w->entries;
	uint64_t left_bytes = IMAGE_TOTAL_FACTOR * w->s->max_bytes - w->bytes;
	bool total = left_entries < w->s->max_entries || left_bytes < w->s->max_bytes;
	struct tarx_policy p = {
		.max_entries = total && left_entries < w->s->max_entries ? left_entries
									  : w->s->max_entries,
		.max_bytes = total && left_bytes < w->s->max_bytes ? left_bytes : w->s->max_bytes,
		.symlinks_any_target = true,	/* they resolve in the sandbox's root only */
		.keep_owners = true,
		.keep_sticky = true,
		.overlay_whiteouts = true,
	};
	struct tarx_stats st;
	if (tarx_extract(dir, map, len, &p, &st, err) < 0) {
		if (total && err && err->code == E2BIG)
			agentd_error_prefix(err, "the image's layers together are over %u times the "
					    "bounds of one (%llu entries, %llu bytes)",
					    IMAGE_TOTAL_FACTOR,
					    (unsigned long long)w->s->max_entries,
					    (unsigned long long)w->s->max_bytes);
		return -1;
	}
	w->entries += st.entries;
	w->bytes += st.bytes;
	char meta[128];
	snprintf(meta, sizeof(meta), "{\"size\": %llu, \"entries\": %llu}\n",
		 (unsigned long long)st.bytes, (unsigned long long)st.entries);
	snprintf(name, sizeof(name), "layer-%s.json", hex);
	int r = write_new_at(w->dfd, name, meta, strlen(meta), 0600);
	return r < 0 ? agentd_error_errno(err, -r, "write %s", name) : 0;
}

/* The store or this import has the layer already. */
static bool layer_present(struct image_work *w, const char *hex)
{
	char path[IMAGE_HEX_LEN + 16];
	snprintf(path, sizeof(path), "layers/%s", hex);
	if (faccessat(w->s->dfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return true;
	snprintf(path, sizeof(path), "layer-%s", hex);
	return faccessat(w->dfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int layer_unpack(struct image_work *w, int fd, const char *blob_digest, const char *diff_id,
		 const char *what, char diff_out[IMAGE_HEX_LEN + 8], agentd_error *err)
{
	void *map, *plain_map = NULL;
	size_t len, plain_len = 0;
	if (map_file(fd, what, &map, &len, err) < 0)
		return -1;
	int r = -1, plain = -1;
	char hex[IMAGE_HEX_LEN + 1];
	if (blob_digest && digest_verify(map, len, blob_digest, what, err) < 0)
		goto out;
	if (layer_compressed(map, len)) {
		/* tar headers and padding on top of the data bound */
		/* tar headers and padding on top of the data bound */
		uint64_t max = w->s->max_bytes + (w->s->max_entries + 2) * 3 * 512;
		plain = layer_decompress(w, map, len, max, hex, err);
		if (plain < 0 || map_file(plain, what, &plain_map, &plain_len, err) < 0) {
			agentd_error_prefix(err, "%s", what);
			goto out;
		}
	} else if (blob_digest) {
		snprintf(hex, sizeof(hex), "%s", digest_hex(blob_digest));
	} else {
		sha256_hex_of(map, len, hex);
	}
	if (diff_id && (!digest_hex(diff_id) || strcmp(digest_hex(diff_id), hex))) {
		agentd_error_set(err, EINVAL,
				 "%s: the uncompressed layer is sha256:%s, the image config's "
				 "diff_id says %.80s", what, hex, diff_id);
		goto out;
	}
	snprintf(diff_out, IMAGE_HEX_LEN + 8, "sha256:%s", hex);
	if (layer_present(w, hex)) {
		r = 0; /* shared with an image already there (same diff id: same content) */
		goto out;
	}
	r = plain >= 0 ? extract_layer(w, plain_map, plain_len, hex, err)
		       : extract_layer(w, map, len, hex, err);
	if (r < 0)
		agentd_error_prefix(err, "%s", what);
out:
	if (plain_map)
		munmap(plain_map, plain_len);
	if (plain >= 0)
		close(plain);
	if (map)
		munmap(map, len);
	return r;
}
