/* image.h: the image store's private interface — the store handle, its locks and records
 * (store.c), digests (digest.c), layer unpacking (layer.c), import (import.c), export and
 * commit (export.c). docs/images.md describes the layout on disk. */
#ifndef AGENTD_LIB_IMAGE_H
#define AGENTD_LIB_IMAGE_H

#include "common/common.h"

#include <jansson.h>
#include <nettle/sha2.h>

#define IMAGE_HEX_LEN 64
#define IMAGE_JSON_MAX (4u << 20)	/* manifests, indexes, configs, records */
#define IMAGE_DEFAULT_MAX_ENTRIES 65536u
#define IMAGE_DEFAULT_MAX_BYTES (8ull << 30)
/* An image's layers together: at most this many, and this many times the bounds of one
 * (a layer bound alone let N layers of zeros fill N times it). */
#define IMAGE_MAX_LAYERS 128u
#define IMAGE_TOTAL_FACTOR 4u

struct agentd_image_store {
	char *dir;
	int dfd;			/* DIR, O_PATH */
	uint64_t max_entries;		/* per layer */
	uint64_t max_bytes;		/* per layer, its files' data */
};

/* ------------------------------------------------------------------ digest.c */
/* "sha256:<64 lowercase hex>" -> hex (a pointer into d), or NULL. */
const char *digest_hex(const char *d);
bool hex64_valid(const char *h);
void sha256_hex_of(const void *data, size_t len, char hex[IMAGE_HEX_LEN + 1]);
void sha256_ctx_hex(struct sha256_ctx *c, char hex[IMAGE_HEX_LEN + 1]);
/* The file's bytes mapped read-only (len 0: *map = NULL); unmap with munmap. */
int map_file(int fd, const char *what, void **map, size_t *len, agentd_error *err);
/* Check data against "sha256:<hex>" (want): EINVAL naming what on a mismatch. */
int digest_verify(const void *data, size_t len, const char *want, const char *what,
		  agentd_error *err);

/* ------------------------------------------------------------------ bootstrap.c */
/* argv run on the host (mmdebstrap; mkfs.ext4 for the microvm's templates), its stdout and
 * stderr read together; a failure ends err with what it printed last. */
int run_host_tool(char *const argv[], agentd_error *err);

/* ------------------------------------------------------------------ store.c */
/* An import or commit in progress: its own dir under DIR/tmp (flocked, so prune leaves it)
 * and the shared store lock (prune takes it exclusively). */
struct image_work {
	agentd_image_store *s;
	int lock_fd;			/* DIR/lock, shared */
	char name[64];			/* under DIR/tmp */
	int dfd;			/* DIR/tmp/<name>, O_RDONLY, flocked */
	unsigned seq;			/* for the names of its files */
	uint64_t entries, bytes;	/* of the layers it unpacked so far */
};
int work_begin(agentd_image_store *s, struct image_work *w, agentd_error *err);
void work_end(struct image_work *w);	/* removes what is left under DIR/tmp */
/* DIR/name opened and flocked (op: LOCK_SH, LOCK_EX, | LOCK_NB: -1 + EWOULDBLOCK and err
 * untouched when taken). Locks: "lock" shared by imports and commits, exclusive by prune;
 * "records.lock" exclusive around every change of the records and the use locks' tests.
 * Order: "lock" before "records.lock". */
int store_lock(agentd_image_store *s, const char *name, int op, agentd_error *err);
/* A new file dfd/name (O_EXCL) with data: 0 or -errno (nothing left behind). */
int write_new_at(int dfd, const char *name, const char *data, size_t len, mode_t mode);
json_t *record_load(agentd_image_store *s, const char *hex);
/* ref resolved and its record loaded (ENOENT when it went meanwhile); NULL + err. */
json_t *record_of_ref(agentd_image_store *s, const char *ref, char hex[IMAGE_HEX_LEN + 1],
		      bool *by_tag, agentd_error *err);
/* The strings as a JSON array. */
json_t *strv_json(const agentd_strv *v);
int record_save(agentd_image_store *s, const char *hex, json_t *rec, agentd_error *err);
/* Every record (incl. those removed while in use); cb < 0 stops. */
int records_each(agentd_image_store *s, int (*cb)(void *ud, const char *hex, json_t *rec),
		 void *ud, agentd_error *err);
/* tag off every other record, onto rec (NULL: only off). Under the records lock. */
int record_move_tag(agentd_image_store *s, const char *tag, const char *hex, json_t *rec,
		    agentd_error *err);
int record_info(agentd_image_store *s, const char *hex, json_t *rec, agentd_image_info *out,
		agentd_error *err);
/* ref -> the image's hex id; by_tag: ref named one of its tags. ENOENT, EINVAL. */
int ref_resolve(agentd_image_store *s, const char *ref, char hex[IMAGE_HEX_LEN + 1],
		bool *by_tag, agentd_error *err);
/* The config blob of image id_hex parsed, or NULL. */
json_t *config_blob(agentd_image_store *s, const char *id_hex);
int config_load(agentd_image_store *s, const char *id_hex, agentd_image_config *out,
		agentd_error *err);

/* What an import or commit adds to the store. */
struct image_new {
	char *config;			/* the config JSON as the image has it (its id's bytes) */
	size_t config_len;
	agentd_strv diff_ids;		/* "sha256:<hex>", bottom first */
	agentd_strv tags;		/* normalised */
	size_t caller_tags;		/* the first ones are the caller's: they move a tag from
					 * another image; the archive's own names (after them)
					 * never take one another image holds */
	const char *source;
	char *manifest;			/* NULL or the manifest JSON, kept as a blob */
	size_t manifest_len;
};
void image_new_free(struct image_new *n);
/* Move w's unpacked layers into place and write (or merge into) the image's record; the
 * layers named in n must be there or in w's dir. */
int image_commit(struct image_work *w, struct image_new *n, agentd_image_info *out,
		 agentd_error *err);
/* "name" -> "name:latest"; NULL + EINVAL for what is no tag. Malloc'd. */
char *tag_normalise(const char *tag, agentd_error *err);
/* Parse an OCI image config's defaults. */
void config_defaults(json_t *config, agentd_image_config *out);

/* ------------------------------------------------------------------ layer.c */
/* One layer blob (fd, maybe gzip/zstd/xz compressed) into w's dir as "layer-<diffhex>",
 * unless the store or w has it already. blob_digest ("sha256:<hex>" or NULL) is checked
 * against the blob's bytes, diff_id (or NULL) against the uncompressed tar's; the diff id
 * found goes to diff_out. */
int layer_unpack(struct image_work *w, int fd, const char *blob_digest, const char *diff_id,
		 const char *what, char diff_out[IMAGE_HEX_LEN + 8], agentd_error *err);
/* fd's content uncompressed into a new file of w (its fd back), bounded by max bytes; the
 * sha256 of what was written in hex. A file that is not compressed: -1 + ENOMSG. */
int layer_decompress(struct image_work *w, const void *data, size_t len, uint64_t max,
		     char hex[IMAGE_HEX_LEN + 1], agentd_error *err);
/* fd's bytes (a regular file someone else may still write: the caller's archive, a blob of
 * its layout directory) copied into a new unlinked file of w, at most max bytes: what is
 * verified and what is unpacked are then the same bytes, and a truncation cannot fault a
 * mapping. The copy's fd, or -1 + err (E2BIG past max). */
int private_copy(struct image_work *w, int fd, uint64_t max, const char *what,
		 agentd_error *err);
/* The bound on one layer's tar: its files' data plus headers (long names in pax ones). */
uint64_t layer_tar_max(const agentd_image_store *s);
/* data looks gzip, zstd or xz compressed. */
bool layer_compressed(const void *data, size_t len);
/* The size in bytes recorded for an unpacked layer (DIR/layers/<hex>.json). */
uint64_t layer_size(agentd_image_store *s, const char *hex);

#endif
