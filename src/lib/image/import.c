/* import.c: an image archive into the store — the format told apart (docker/podman save,
 * OCI image layout as a directory or tar, plain rootfs tar, any of them compressed), its
 * manifests and config read with every path confined to the archive, each layer unpacked
 * and verified (layer.c), then committed at once (store.c). */
#include "lib/image/image.h"

#include "lib/host/host.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#define OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define INDEX_DEPTH 4

struct import {
	struct image_work w;
	const agentd_image_import_opts *o;
	int src;			/* the layout's or archive's directory */
	bool src_callers;		/* src is the caller's (else this import's copy) */
	struct image_new n;
};

static void progress(struct import *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(struct import *im, const char *fmt, ...)
{
	if (!im->o || !im->o->progress)
		return;
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	im->o->progress(im->o->userdata, line);
}

/* ------------------------------------------------------------------ reading the archive */

/* A path the manifest names, opened inside the archive: nothing absolute, no "..", and
 * symlinks resolved as if the archive were the root. */
static int open_in(struct import *im, const char *rel, agentd_error *err)
{
	char q[96];
	quote_text(q, sizeof(q), rel ? rel : "");
	if (!rel || !*rel || *rel == '/')
		return agentd_error_set(err, EINVAL, "%s: a path outside the archive", q);
	for (const char *c = rel; *c;) {
		const char *e = strchrnul(c, '/');
		if (e - c == 2 && c[0] == '.' && c[1] == '.')
			return agentd_error_set(err, EINVAL, "%s: a path outside the archive", q);
		c = *e ? e + 1 : e;
	}
	int fd = openat_beneath(im->src, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0, 0);
	if (fd < 0)
		return agentd_error_errno(err, errno, "%s", q);
	return fd;
}

static char *blob_path(const char *digest, agentd_error *err)
{
	const char *hex = digest_hex(digest);
	if (!hex) {
		agentd_error_set(err, EINVAL, "%.80s: not a sha256 digest", digest ? digest : "(none)");
		return NULL;
	}
	return xasprintf("blobs/sha256/%s", hex);
}

/* A JSON document of the archive, its bytes kept (a config's bytes are its id). */
static json_t *read_json(struct import *im, const char *rel, char **raw, size_t *raw_len,
			 agentd_error *err)
{
	_cleanup_close_ int fd = open_in(im, rel, err);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > IMAGE_JSON_MAX) {
		agentd_error_set(err, EINVAL, "%s: not a JSON file of at most %u bytes", rel,
				 IMAGE_JSON_MAX);
		return NULL;
	}
	size_t len = 0;
	_cleanup_free_ char *text = (char *)read_fd_all(fd, &len);
	if (!text || len > IMAGE_JSON_MAX) {
		agentd_error_errno(err, text ? EFBIG : errno, "%s", rel);
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je);
	if (!j) {
		agentd_error_set(err, EINVAL, "%s: not valid JSON: %s", rel, j ? "" : je.text);
		json_decref(j);
		return NULL;
	}
	if (raw) {
		*raw = text;
		*raw_len = len;
		text = NULL;
	}
	return j;
}

/* A blob named by a descriptor, its digest checked. */
static json_t *read_blob_json(struct import *im, json_t *desc, char **raw, size_t *len,
			      agentd_error *err)
{
	const char *digest = json_string_value(json_object_get(desc, "digest"));
	_cleanup_free_ char *path = blob_path(digest, err);
	char *bytes = NULL;
	size_t n = 0;
	json_t *j = path ? read_json(im, path, &bytes, &n, err) : NULL;
	if (j && digest_verify(bytes, n, digest, path, err) < 0) {
		json_decref(j);
		j = NULL;
	}
	if (j && raw) {
		*raw = bytes;
		*len = n;
	} else {
		free(bytes);
	}
	return j;
}

/* ------------------------------------------------------------------ the config and layers */

/* The config as the image has it: its diff ids, checked against the layer count. */
static int take_config(struct import *im, char *raw, size_t len, size_t n_layers,
		       agentd_error *err)
{
	im->n.config = raw;
	im->n.config_len = len;
	json_t *c = json_loadb(raw, len, 0, NULL);
	json_t *ids = json_object_get(json_object_get(c, "rootfs"), "diff_ids");
	int r = 0;
	if (!json_is_object(c) || !json_is_array(ids))
		r = agentd_error_set(err, EINVAL, "the image config has no rootfs.diff_ids");
	else if (n_layers > IMAGE_MAX_LAYERS)
		r = agentd_error_set(err, E2BIG, "the image has %zu layers, more than %u", n_layers,
				     IMAGE_MAX_LAYERS);
	else if (json_array_size(ids) != n_layers)
		r = agentd_error_set(err, EINVAL, "the image config lists %zu diff_ids for %zu "
				     "layers", json_array_size(ids), n_layers);
	size_t i;
	json_t *d;
	json_array_foreach(ids, i, d) {
		if (r == 0 && !digest_hex(json_string_value(d)))
			r = agentd_error_set(err, EINVAL, "the image config's diff_id %zu is not a "
					     "sha256 digest", i + 1);
		if (r == 0)
			strv_push(&im->n.diff_ids, json_string_value(d));
	}
	json_decref(c);
	return r;
}

/* Layer i (0-based) of n from the archive's path rel, checked against blob_digest (NULL:
 * none given) and the config's diff id. */
static int take_layer(struct import *im, size_t i, size_t n, const char *rel,
		      const char *blob_digest, agentd_error *err)
{
	char what[128], diff[IMAGE_HEX_LEN + 8];
	snprintf(what, sizeof(what), "layer %zu/%zu (%.19s)", i + 1, n, im->n.diff_ids.v[i]);
	progress(im, "%s: verify and unpack", what);
	_cleanup_close_ int fd = open_in(im, rel, err);
	if (fd >= 0 && im->src_callers) {
		/* verified and unpacked from one copy, whoever else writes the layout */
		int copy = private_copy(&im->w, fd, layer_tar_max(im->w.s), rel, err);
		close(fd);
		fd = copy;
	}
	if (fd < 0)
		return agentd_error_prefix(err, "%s", what);
	return layer_unpack(&im->w, fd, blob_digest, im->n.diff_ids.v[i], what, diff, err);
}

static int add_tag(struct import *im, const char *tag, agentd_error *err)
{
	char *norm = tag_normalise(tag, err);
	if (!norm)
		return -1;
	if (!strv_contains(&im->n.tags, norm))
		strv_push(&im->n.tags, norm);
	free(norm);
	return 0;
}

/* ------------------------------------------------------------------ docker save */

static int import_docker(struct import *im, agentd_error *err)
{
	json_t *m = read_json(im, "manifest.json", NULL, NULL, err);
	if (!m)
		return -1;
	json_t *first = json_array_get(m, 0);
	json_t *layers = json_object_get(first, "Layers");
	const char *config = json_string_value(json_object_get(first, "Config"));
	int r = 0;
	if (!json_is_object(first) || !config || !json_is_array(layers))
		r = agentd_error_set(err, EINVAL, "manifest.json: not a docker save manifest "
				     "(Config, Layers)");
	char *raw = NULL;
	size_t len = 0;
	json_t *cj = r == 0 ? read_json(im, config, &raw, &len, err) : NULL;
	if (r == 0 && !cj)
		r = -1;
	json_decref(cj);
	/* "<hex>.json" (docker < 25) or "blobs/sha256/<hex>": the name is the digest */
	char want[IMAGE_HEX_LEN + 8] = "";
	const char *base = config ? strrchr(config, '/') ? strrchr(config, '/') + 1 : config : "";
	if (strlen(base) >= IMAGE_HEX_LEN)
		snprintf(want, sizeof(want), "sha256:%.64s", base);
	if (r == 0 && digest_hex(want) && digest_verify(raw, len, want, config, err) < 0)
		r = -1;
	if (r == 0)
		r = take_config(im, raw, len, json_array_size(layers), err);
	else
		free(raw);
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(first, "RepoTags"), i, t)
		if (r == 0 && json_string_value(t))
			r = add_tag(im, json_string_value(t), err);
	json_array_foreach(layers, i, t) {
		const char *rel = json_string_value(t);
		char blob[IMAGE_HEX_LEN + 8] = "";
		if (r == 0 && rel && !strncmp(rel, "blobs/sha256/", 13))
			snprintf(blob, sizeof(blob), "sha256:%s", rel + 13);
		if (r == 0)
			r = take_layer(im, i, json_array_size(layers), rel,
				       digest_hex(blob) ? blob : NULL, err);
	}
	im->n.source = "docker-archive";
	json_decref(m);
	return r;
}

/* ------------------------------------------------------------------ OCI layout */

static bool platform_fits(json_t *desc)
{
	json_t *p = json_object_get(desc, "platform");
	if (!p)
		return true;
	struct utsname u;
	uname(&u);
	const char *arch = !strcmp(u.machine, "x86_64") ? "amd64"
			   : !strcmp(u.machine, "aarch64") ? "arm64" : u.machine;
	const char *os = json_string_value(json_object_get(p, "os"));
	const char *a = json_string_value(json_object_get(p, "architecture"));
	return (!os || !strcmp(os, "linux")) && (!a || !strcmp(a, arch));
}

/* The image manifest an index leads to (nested indexes followed), its bytes in raw. */
static json_t *pick_manifest(struct import *im, json_t *index, int depth, char **raw,
			     size_t *len, agentd_error *err)
{
	if (depth > INDEX_DEPTH) {
		agentd_error_set(err, ELOOP, "image indexes nested deeper than %d", INDEX_DEPTH);
		return NULL;
	}
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(index, "manifests"), i, d) {
		const char *mt = json_string_value(json_object_get(d, "mediaType"));
		if (!platform_fits(d))
			continue;
		const char *name = json_string_value(
			json_object_get(json_object_get(d, "annotations"), "io.containerd.image.name"));
		const char *ref = json_string_value(json_object_get(
			json_object_get(d, "annotations"), "org.opencontainers.image.ref.name"));
		if (name)
			add_tag(im, name, err);
		else if (ref && strchr(ref, ':'))
			add_tag(im, ref, err);
		agentd_error_clear(err);
		if (mt && (!strcmp(mt, OCI_INDEX) || !strcmp(mt, DOCKER_LIST))) {
			json_t *sub = read_blob_json(im, d, NULL, NULL, err);
			json_t *m = sub ? pick_manifest(im, sub, depth + 1, raw, len, err) : NULL;
			json_decref(sub);
			return m;
		}
		if (!mt || !strcmp(mt, OCI_MANIFEST) || !strcmp(mt, DOCKER_MANIFEST))
			return read_blob_json(im, d, raw, len, err);
	}
	agentd_error_set(err, ENOENT, "the index lists no image manifest for this platform");
	return NULL;
}

static int import_oci(struct import *im, agentd_error *err)
{
	json_t *index = read_json(im, "index.json", NULL, NULL, err);
	if (!index)
		return -1;
	char *mraw = NULL;
	size_t mlen = 0;
	json_t *m = pick_manifest(im, index, 0, &mraw, &mlen, err);
	json_decref(index);
	if (!m)
		return -1;
	im->n.manifest = mraw;
	im->n.manifest_len = mlen;
	json_t *layers = json_object_get(m, "layers");
	char *craw = NULL;
	size_t clen = 0;
	json_t *c = json_is_array(layers)
			    ? read_blob_json(im, json_object_get(m, "config"), &craw, &clen, err)
			    : NULL;
	int r = c ? 0 : json_is_array(layers) ? -1
					       : agentd_error_set(err, EINVAL, "the image manifest "
								  "has no layers");
	json_decref(c);
	if (r == 0)
		r = take_config(im, craw, clen, json_array_size(layers), err);
	else
		free(craw);
	size_t i;
	json_t *d;
	json_array_foreach(layers, i, d) {
		const char *digest = json_string_value(json_object_get(d, "digest"));
		_cleanup_free_ char *path = r == 0 ? blob_path(digest, err) : NULL;
		if (r == 0)
			r = path ? take_layer(im, i, json_array_size(layers), path, digest, err) : -1;
	}
	im->n.source = "oci-layout";
	json_decref(m);
	return r;
}

/* ------------------------------------------------------------------ rootfs tar */

static int import_rootfs(struct import *im, int fd, agentd_error *err)
{
	char diff[IMAGE_HEX_LEN + 8];
	progress(im, "rootfs tar: verify and unpack");
	if (layer_unpack(&im->w, fd, NULL, NULL, "rootfs tar", diff, err) < 0)
		return -1;
	struct utsname u;
	uname(&u);
	json_t *c = json_pack("{s:s, s:s, s:{s:[s]}, s:{s:s, s:[s]}}", "architecture",
			      !strcmp(u.machine, "x86_64") ? "amd64"
			      : !strcmp(u.machine, "aarch64") ? "arm64" : u.machine,
			      "os", "linux", "config", "Env",
			      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			      "rootfs", "type", "layers", "diff_ids", diff);
	im->n.config = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
	im->n.config_len = strlen(im->n.config);
	json_decref(c);
	strv_push(&im->n.diff_ids, diff);
	im->n.source = "rootfs";
	return 0;
}

/* ------------------------------------------------------------------ telling them apart */

struct names {
	bool manifest, index, layout;
};

static int note_name(void *ud, const char *name)
{
	struct names *n = ud;
	n->manifest |= !strcmp(name, "manifest.json");
	n->index |= !strcmp(name, "index.json");
	n->layout |= !strcmp(name, "oci-layout");
	return 0;
}

static int import_dir(struct import *im, agentd_error *err)
{
	bool index = faccessat(im->src, "index.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	bool layout = faccessat(im->src, "oci-layout", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	if (index && layout)
		return import_oci(im, err);
	if (faccessat(im->src, "manifest.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return import_docker(im, err);
	return agentd_error_set(err, EINVAL, "neither an OCI image layout (oci-layout, "
				"index.json) nor a docker save archive (manifest.json)");
}

/* A tar file: an image archive (extracted into the work dir, then read as a directory) or
 * a root filesystem. */
static int import_tar(struct import *im, int fd, agentd_error *err)
{
	void *map;
	size_t len;
	if (map_file(fd, "archive", &map, &len, err) < 0)
		return -1;
	_cleanup_close_ int plain = -1;
	if (layer_compressed(map, len)) {
		char hex[IMAGE_HEX_LEN + 1];
		progress(im, "decompress");
		plain = layer_decompress(&im->w, map, len, 4 * im->w.s->max_bytes, hex, err);
		munmap(map, len);
		if (plain < 0 || map_file(plain, "archive", &map, &len, err) < 0)
			return agentd_error_prefix(err, "archive");
	}
	struct names n = {0};
	int r = tarx_each_name(map, len, im->w.s->max_entries, note_name, &n, err);
	bool archive = n.manifest || (n.index && n.layout);
	if (r == 0 && archive) {
		struct tarx_policy p = {.max_entries = im->w.s->max_entries,
					.max_bytes = 4 * im->w.s->max_bytes};
		struct tarx_stats st;
		progress(im, "read archive");
		if (mkdirat(im->w.dfd, "archive", 0700) < 0 ||
		    (im->src = openat(im->w.dfd, "archive", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			r = agentd_error_errno(err, errno, "archive");
		else if (tarx_extract(im->src, map, len, &p, &st, err) < 0)
			r = agentd_error_prefix(err, "archive");
	}
	if (map)
		munmap(map, len);
	if (r < 0)
		return -1;
	if (archive)
		return import_dir(im, err);
	if (!im->o || !im->o->tag)
		return agentd_error_set(err, EINVAL, "a root filesystem tar has no name of its own: "
					"give it a tag");
	return import_rootfs(im, plain >= 0 ? plain : fd, err);
}

int agentd_image_import(agentd_image_store *s, const char *path,
			const agentd_image_import_opts *o, agentd_image_info *out, agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	struct import im = {.o = o, .src = -1};
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return agentd_error_errno(err, errno, "import %s", path);
	if (work_begin(s, &im.w, err) < 0)
		return agentd_error_prefix(err, "import %s", path);
	int r = 0;
	if (o && o->tag)
		r = add_tag(&im, o->tag, err);
	im.n.caller_tags = im.n.tags.n;
	if (r == 0 && S_ISDIR(st.st_mode)) {
		im.src = take_fd(&fd);
		im.src_callers = true;
		r = import_dir(&im, err);
	} else if (r == 0) {
		/* the caller's file may change under the import (it may be a sandbox's): read
		 * and verified from a copy of this import's own, never mapped */
		_cleanup_close_ int copy =
			private_copy(&im.w, fd, 4 * layer_tar_max(s), "archive", err);
		r = copy < 0 ? -1 : import_tar(&im, copy, err);
	}
	if (r == 0) {
		progress(&im, "store");
		r = image_commit(&im.w, &im.n, out, err);
	}
	if (im.src >= 0)
		close(im.src);
	image_new_free(&im.n);
	work_end(&im.w);
	if (r < 0)
		return agentd_error_prefix(err, "import %s", path);
	progress(&im, "imported %s", out->id);
	return 0;
}
