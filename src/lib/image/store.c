/* store.c: the image store on disk — its directories and locks, the work dirs of imports,
 * the image records (DIR/images/<hex>.json) and what commits into them. References,
 * listing and removal are in refs.c, leases in lease.c. */
#include "lib/image/image.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

const char *agentd_default_image_dir(void)
{
	static char buf[512];
	const char *env = getenv("AGENTD_IMAGE_DIR");
	if (env && *env == '/')
		return env;
	if (geteuid() == 0)
		return "/var/lib/agentd/images";
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (xdg && *xdg == '/')
		snprintf(buf, sizeof(buf), "%s/agentd/images", xdg);
	else
		snprintf(buf, sizeof(buf), "/tmp/agentd-%u/images", (unsigned)geteuid());
	return buf;
}

static const char *const store_dirs[] = {"blobs", "blobs/sha256", "layers", "images", "tmp"};

int agentd_image_store_open(const char *dir, agentd_image_store **out, agentd_error *err)
{
	*out = NULL;
	if (!dir || *dir != '/')
		return agentd_error_set(err, EINVAL, "image store %s: not an absolute path",
					dir ? dir : "(none)");
	if (mkdir_p(dir, 0700) < 0)
		return agentd_error_errno(err, errno, "image store %s", dir);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return agentd_error_errno(err, errno, "image store %s", dir);
	/* 0700: the unpacked layers are the images' own files, setuid stripped or not; only
	 * the host side walks them (a sandbox gets them mounted) */
	fchmod(dfd, 0700);
	for (size_t i = 0; i < sizeof(store_dirs) / sizeof(store_dirs[0]); i++)
		if (mkdirat(dfd, store_dirs[i], 0700) < 0 && errno != EEXIST) {
			agentd_error_errno(err, errno, "image store %s/%s", dir, store_dirs[i]);
			close(dfd);
			return -1;
		}
	agentd_image_store *s = xcalloc(1, sizeof(*s));
	s->dir = xstrdup(dir);
	s->dfd = dfd;
	s->max_entries = IMAGE_DEFAULT_MAX_ENTRIES;
	s->max_bytes = IMAGE_DEFAULT_MAX_BYTES;
	*out = s;
	return 0;
}

void agentd_image_store_set_limits(agentd_image_store *s, uint64_t max_entries,
				   uint64_t max_bytes)
{
	if (max_entries)
		s->max_entries = max_entries;
	if (max_bytes)
		s->max_bytes = max_bytes;
}

void agentd_image_store_free(agentd_image_store *s)
{
	if (!s)
		return;
	close(s->dfd);
	free(s->dir);
	free(s);
}

const char *agentd_image_store_dir(const agentd_image_store *s)
{
	return s->dir;
}

int store_lock(agentd_image_store *s, const char *name, int op, agentd_error *err)
{
	int fd = openat(s->dfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return agentd_error_errno(err, errno, "image store %s/%s", s->dir, name);
	int r;
	while ((r = flock(fd, op)) < 0 && errno == EINTR)
		;
	if (r < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return e == EWOULDBLOCK ? -1
					: agentd_error_errno(err, e, "lock %s/%s", s->dir, name);
	}
	return fd;
}

/* ------------------------------------------------------------------ work dirs */

int work_begin(agentd_image_store *s, struct image_work *w, agentd_error *err)
{
	memset(w, 0, sizeof(*w));
	w->s = s;
	w->dfd = -1;
	if ((w->lock_fd = store_lock(s, "lock", LOCK_SH, err)) < 0)
		return -1;
	char id[33];
	random_id(id);
	snprintf(w->name, sizeof(w->name), "tmp/work-%s", id);
	if (mkdirat(s->dfd, w->name, 0700) < 0 ||
	    (w->dfd = openat(s->dfd, w->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
		    0 ||
	    flock(w->dfd, LOCK_EX) < 0) {
		agentd_error_errno(err, errno, "image store %s/%s", s->dir, w->name);
		work_end(w);
		return -1;
	}
	return 0;
}

void work_end(struct image_work *w)
{
	if (w->name[0])
		rm_rf_at(w->s->dfd, w->name);
	if (w->dfd >= 0)
		close(w->dfd);
	if (w->lock_fd >= 0)
		close(w->lock_fd);
	w->dfd = w->lock_fd = -1;
	w->name[0] = '\0';
}

int write_new_at(int dfd, const char *name, const char *data, size_t len, mode_t mode)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, data, len) < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		unlinkat(dfd, name, 0);
	return r;
}

/* ------------------------------------------------------------------ records */

json_t *record_load(agentd_image_store *s, const char *hex)
{
	char path[IMAGE_HEX_LEN + 16];
	snprintf(path, sizeof(path), "images/%s.json", hex);
	_cleanup_free_ char *text = read_file_at(s->dfd, path, IMAGE_JSON_MAX, NULL);
	return text ? json_loads(text, 0, NULL) : NULL;
}

json_t *record_of_ref(agentd_image_store *s, const char *ref, char hex[IMAGE_HEX_LEN + 1],
		      bool *by_tag, agentd_error *err)
{
	if (ref_resolve(s, ref, hex, by_tag, err) < 0)
		return NULL;
	json_t *rec = record_load(s, hex);
	if (!rec)
		agentd_error_set(err, ENOENT, "image sha256:%s: removed meanwhile", hex);
	return rec;
}

int record_save(agentd_image_store *s, const char *hex, json_t *rec, agentd_error *err)
{
	char path[IMAGE_HEX_LEN + 16], tmp[IMAGE_HEX_LEN + 24];
	snprintf(path, sizeof(path), "images/%s.json", hex);
	snprintf(tmp, sizeof(tmp), "images/.%s.json.new", hex);
	_cleanup_free_ char *text = json_dumps(rec, JSON_INDENT(1) | JSON_SORT_KEYS);
	unlinkat(s->dfd, tmp, 0);
	int r = write_new_at(s->dfd, tmp, text, strlen(text), 0600);
	if (r < 0 || renameat(s->dfd, tmp, s->dfd, path) < 0) {
		unlinkat(s->dfd, tmp, 0);
		return agentd_error_errno(err, r < 0 ? -r : errno, "image record %s", hex);
	}
	return 0;
}

int records_each(agentd_image_store *s, int (*cb)(void *ud, const char *hex, json_t *rec),
		 void *ud, agentd_error *err)
{
	int fd = openat(s->dfd, "images", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return agentd_error_errno(err, errno, "image store %s/images", s->dir);
	}
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char hex[IMAGE_HEX_LEN + 1];
		if (n != IMAGE_HEX_LEN + 5 || strcmp(de->d_name + IMAGE_HEX_LEN, ".json"))
			continue;
		snprintf(hex, sizeof(hex), "%.*s", IMAGE_HEX_LEN, de->d_name);
		if (!hex64_valid(hex))
			continue;
		json_t *rec = record_load(s, hex);
		if (rec)
			r = cb(ud, hex, rec);
		json_decref(rec);
	}
	closedir(d);
	return r;
}

/* A tag off every record but keep_hex's (a tag names one image). */
struct untag {
	agentd_image_store *s;
	const char *tag, *keep_hex;
	agentd_error *err;
};

static int untag_one(void *ud, const char *hex, json_t *rec)
{
	struct untag *u = ud;
	if (u->keep_hex && !strcmp(hex, u->keep_hex))
		return 0;
	json_t *tags = json_object_get(rec, "tags");
	size_t i;
	json_t *t;
	json_array_foreach(tags, i, t) {
		if (!strcmp(json_string_value(t) ? json_string_value(t) : "", u->tag)) {
			json_array_remove(tags, i);
			return record_save(u->s, hex, rec, u->err);
		}
	}
	return 0;
}

int record_move_tag(agentd_image_store *s, const char *tag, const char *hex, json_t *rec,
		    agentd_error *err)
{
	struct untag u = {s, tag, hex, err};
	if (records_each(s, untag_one, &u, err) < 0)
		return -1;
	if (!rec)
		return 0;
	json_t *tags = json_object_get(rec, "tags");
	size_t i;
	json_t *t;
	json_array_foreach(tags, i, t)
		if (!strcmp(json_string_value(t) ? json_string_value(t) : "", tag))
			return 0;
	json_array_append_new(tags, json_string(tag));
	return 0;
}

/* ------------------------------------------------------------------ commit */

void image_new_free(struct image_new *n)
{
	free(n->config);
	free(n->manifest);
	strv_free(&n->diff_ids);
	strv_free(&n->tags);
	memset(n, 0, sizeof(*n));
}

/* data as DIR/blobs/sha256/<hex> (0400), unless there. */
static int blob_store(struct image_work *w, const char *data, size_t len, char hex[65],
		      agentd_error *err)
{
	sha256_hex_of(data, len, hex);
	char path[IMAGE_HEX_LEN + 16], tmp[32];
	snprintf(path, sizeof(path), "blobs/sha256/%s", hex);
	if (faccessat(w->s->dfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	snprintf(tmp, sizeof(tmp), "blob-%u", w->seq++);
	_cleanup_close_ int fd = openat(w->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
	if (fd < 0 || write_all(fd, data, len) < 0 || renameat(w->dfd, tmp, w->s->dfd, path) < 0)
		return agentd_error_errno(err, errno, "store blob sha256:%s", hex);
	return 0;
}

/* The layers this import unpacked moved into DIR/layers; those it shares must be there. */
static int layers_into_place(struct image_work *w, const agentd_strv *diff_ids,
			     agentd_error *err)
{
	for (size_t i = 0; i < diff_ids->n; i++) {
		const char *hex = digest_hex(diff_ids->v[i]);
		char mine[IMAGE_HEX_LEN + 16], meta[IMAGE_HEX_LEN + 16];
		char dst[IMAGE_HEX_LEN + 16], dst_meta[IMAGE_HEX_LEN + 16];
		snprintf(mine, sizeof(mine), "layer-%s", hex);
		snprintf(meta, sizeof(meta), "layer-%s.json", hex);
		snprintf(dst, sizeof(dst), "layers/%s", hex);
		snprintf(dst_meta, sizeof(dst_meta), "layers/%s.json", hex);
		bool have = faccessat(w->s->dfd, dst, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
		bool made = faccessat(w->dfd, mine, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
		if (!have && !made)
			return agentd_error_set(err, EAGAIN,
						"layer %s was removed from the store meanwhile: "
						"import again", diff_ids->v[i]);
		if (have)
			continue;
		if (renameat(w->dfd, meta, w->s->dfd, dst_meta) < 0 ||
		    renameat(w->dfd, mine, w->s->dfd, dst) < 0)
			return agentd_error_errno(err, errno, "store layer %s", diff_ids->v[i]);
	}
	return 0;
}

json_t *strv_json(const agentd_strv *v)
{
	json_t *a = json_array();
	for (size_t i = 0; i < v->n; i++)
		json_array_append_new(a, json_string(v->v[i]));
	return a;
}

int image_commit(struct image_work *w, struct image_new *n, agentd_image_info *out,
		 agentd_error *err)
{
	agentd_image_store *s = w->s;
	char id_hex[IMAGE_HEX_LEN + 1], manifest_hex[IMAGE_HEX_LEN + 1];
	_cleanup_close_ int rl = store_lock(s, "records.lock", LOCK_EX, err);
	if (rl < 0 || layers_into_place(w, &n->diff_ids, err) < 0 ||
	    blob_store(w, n->config, n->config_len, id_hex, err) < 0 ||
	    (n->manifest && blob_store(w, n->manifest, n->manifest_len, manifest_hex, err) < 0))
		return -1;
	json_t *rec = record_load(s, id_hex);
	if (!rec || json_is_true(json_object_get(rec, "removed"))) {
		json_decref(rec);
		rec = json_object();
		json_object_set_new(rec, "id", json_sprintf("sha256:%s", id_hex));
		json_object_set_new(rec, "tags", json_array());
		json_object_set_new(rec, "created", json_integer(time(NULL)));
		json_object_set_new(rec, "source", json_string(n->source));
	}
	uint64_t size = 0;
	for (size_t i = 0; i < n->diff_ids.n; i++)
		size += layer_size(s, digest_hex(n->diff_ids.v[i]));
	json_object_set_new(rec, "layers", strv_json(&n->diff_ids));
	json_object_set_new(rec, "size_bytes", json_integer((json_int_t)size));
	json_t *blobs = json_array();
	json_array_append_new(blobs, json_sprintf("sha256:%s", id_hex));
	if (n->manifest)
		json_array_append_new(blobs, json_sprintf("sha256:%s", manifest_hex));
	json_object_set_new(rec, "blobs", blobs);
	int r = 0;
	for (size_t i = 0; r == 0 && i < n->tags.n; i++) {
		/* an archive naming itself after an image of the store (the one policies run
		 * as "python:3.12") does not take its name: only the caller moves a tag */
		char held[IMAGE_HEX_LEN + 1];
		bool by_tag = false;
		if (i >= n->caller_tags &&
		    ref_resolve(s, n->tags.v[i], held, &by_tag, NULL) == 0 && by_tag &&
		    strcmp(held, id_hex))
			continue;
		r = record_move_tag(s, n->tags.v[i], id_hex, rec, err);
	}
	if (r == 0)
		r = record_save(s, id_hex, rec, err);
	if (r == 0 && out)
		r = record_info(s, id_hex, rec, out, err);
	json_decref(rec);
	return r;
}
