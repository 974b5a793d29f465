/* refs.c: what a user names an image by (name, name:tag, sha256:<hex>, a 12+ hex prefix)
 * resolved against the records, and the verbs over them: inspect, list, tag, remove, and
 * prune (the layers, blobs and leftovers no record needs). */
#include "lib/image/image.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ tags */

static bool tag_char(char c)
{
	return a_alnum(c) || c == '.' || c == '_' || c == '-' || c == '/' || c == ':';
}

char *tag_normalise(const char *tag, agentd_error *err)
{
	size_t n = tag ? strlen(tag) : 0;
	char q[96];
	quote_text(q, sizeof(q), tag ? tag : "");
	if (n == 0 || n > 255 || !a_alnum(tag[0]) || tag[n - 1] == ':' || tag[n - 1] == '/' ||
	    strstr(tag, "..") || strstr(tag, "//") || !strncmp(tag, "sha256:", 7)) {
		agentd_error_set(err, EINVAL, "%s: not an image name (name[:tag], letters, digits "
				 "and . _ - / :)", q);
		return NULL;
	}
	for (const char *c = tag; *c; c++)
		if (!tag_char(*c)) {
			agentd_error_set(err, EINVAL, "%s: not an image name (name[:tag], letters, "
					 "digits and . _ - / :)", q);
			return NULL;
		}
	/* the tag is after the last ':' that follows the last '/' (a registry's port is not) */
	const char *slash = strrchr(tag, '/');
	const char *colon = strrchr(slash ? slash : tag, ':');
	return colon ? xstrdup(tag) : xasprintf("%s:latest", tag);
}

/* ------------------------------------------------------------------ resolution */

struct resolve {
	const char *tag;		/* normalised, or NULL */
	const char *prefix;		/* hex, or NULL */
	char hex[IMAGE_HEX_LEN + 1];
	int matches;
};

static bool has_tag(json_t *rec, const char *tag)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(rec, "tags"), i, t)
		if (json_string_value(t) && !strcmp(json_string_value(t), tag))
			return true;
	return false;
}

static int resolve_one(void *ud, const char *hex, json_t *rec)
{
	struct resolve *r = ud;
	if (json_is_true(json_object_get(rec, "removed")))
		return 0;
	bool hit = r->tag ? has_tag(rec, r->tag) : !strncmp(hex, r->prefix, strlen(r->prefix));
	if (hit && r->matches++ == 0)
		snprintf(r->hex, sizeof(r->hex), "%s", hex);
	return 0;
}

static bool all_hex(const char *s)
{
	for (; *s; s++)
		if (!a_digit(*s) && !(*s >= 'a' && *s <= 'f'))
			return false;
	return true;
}

int ref_resolve(agentd_image_store *s, const char *ref, char hex[IMAGE_HEX_LEN + 1],
		bool *by_tag, agentd_error *err)
{
	char q[96];
	quote_text(q, sizeof(q), ref ? ref : "");
	if (by_tag)
		*by_tag = false;
	if (!ref || !*ref)
		return agentd_error_set(err, EINVAL, "no image named");
	struct resolve r = {0};
	_cleanup_free_ char *tag = NULL;
	if (!strncmp(ref, "sha256:", 7)) {
		if (strlen(ref + 7) < 12 || strlen(ref + 7) > IMAGE_HEX_LEN || !all_hex(ref + 7))
			return agentd_error_set(err, EINVAL, "%s: not an image id", q);
		r.prefix = ref + 7;
	} else {
		agentd_error ignored = {0};
		if ((tag = tag_normalise(ref, &ignored))) {
			r.tag = tag;
			if (records_each(s, resolve_one, &r, err) < 0)
				return -1;
			if (r.matches) {
				if (by_tag)
					*by_tag = true;
				snprintf(hex, IMAGE_HEX_LEN + 1, "%s", r.hex);
				return 0;
			}
		}
		if (strlen(ref) < 12 || strlen(ref) > IMAGE_HEX_LEN || !all_hex(ref))
			return agentd_error_set(err, ENOENT, "image %s: no such image", q);
		r = (struct resolve){.prefix = ref};
	}
	if (records_each(s, resolve_one, &r, err) < 0)
		return -1;
	if (r.matches == 0)
		return agentd_error_set(err, ENOENT, "image %s: no such image", q);
	if (r.matches > 1)
		return agentd_error_set(err, EINVAL, "image %s: an ambiguous id prefix (%d images)",
					q, r.matches);
	snprintf(hex, IMAGE_HEX_LEN + 1, "%s", r.hex);
	return 0;
}

/* ------------------------------------------------------------------ info */

static void strv_from_json(agentd_strv *out, json_t *a)
{
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
		if (json_is_string(v))
			strv_push(out, json_string_value(v));
}

void config_defaults(json_t *config, agentd_image_config *out)
{
	memset(out, 0, sizeof(*out));
	json_t *c = json_object_get(config, "config");
	strv_from_json(&out->env, json_object_get(c, "Env"));
	strv_from_json(&out->cmd, json_object_get(c, "Cmd"));
	strv_from_json(&out->entrypoint, json_object_get(c, "Entrypoint"));
	const char *wd = json_string_value(json_object_get(c, "WorkingDir"));
	const char *user = json_string_value(json_object_get(c, "User"));
	out->workdir = wd && *wd ? xstrdup(wd) : NULL;
	out->user = user && *user ? xstrdup(user) : NULL;
	/* issue 13: img-build: the Labels whose values are strings */
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(c, "Labels"), k, v)
		if (json_is_string(v))
			kvv_set(&out->labels, k, json_string_value(v));
}

json_t *config_blob(agentd_image_store *s, const char *id_hex)
{
	char path[IMAGE_HEX_LEN + 16];
	snprintf(path, sizeof(path), "blobs/sha256/%s", id_hex);
	_cleanup_free_ char *text = read_file_at(s->dfd, path, IMAGE_JSON_MAX, NULL);
	return text ? json_loads(text, 0, NULL) : NULL;
}

int config_load(agentd_image_store *s, const char *id_hex, agentd_image_config *out,
		agentd_error *err)
{
	json_t *j = config_blob(s, id_hex);
	if (!j)
		return agentd_error_set(err, EIO, "image sha256:%s: its config blob is missing or "
					"unreadable", id_hex);
	config_defaults(j, out);
	json_decref(j);
	return 0;
}

/* A sandbox holds the image's use lock (a shared flock on images/<hex>.use). */
static bool in_use(agentd_image_store *s, const char *hex)
{
	char path[IMAGE_HEX_LEN + 16];
	snprintf(path, sizeof(path), "images/%s.use", hex);
	_cleanup_close_ int fd = openat(s->dfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK;
	flock(fd, LOCK_UN);
	return false;
}

int record_info(agentd_image_store *s, const char *hex, json_t *rec, agentd_image_info *out,
		agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "sha256:%s", hex);
	strv_from_json(&out->tags, json_object_get(rec, "tags"));
	strv_from_json(&out->layers, json_object_get(rec, "layers"));
	out->size_bytes = (uint64_t)json_integer_value(json_object_get(rec, "size_bytes"));
	out->created = json_integer_value(json_object_get(rec, "created"));
	const char *src = json_string_value(json_object_get(rec, "source"));
	out->source = xstrdup(src ? src : "");
	out->in_use = in_use(s, hex);
	if (config_load(s, hex, &out->config, err) < 0) {
		agentd_image_info_free(out);
		return -1;
	}
	return 0;
}

void agentd_image_config_free(agentd_image_config *c)
{
	if (!c)
		return;
	strv_free(&c->env);
	strv_free(&c->cmd);
	strv_free(&c->entrypoint);
	free(c->workdir);
	free(c->user);
	kvv_free(&c->labels); /* issue 13: img-build */
	memset(c, 0, sizeof(*c));
}

void agentd_image_info_free(agentd_image_info *i)
{
	if (!i)
		return;
	strv_free(&i->tags);
	strv_free(&i->layers);
	free(i->source);
	agentd_image_config_free(&i->config);
	memset(i, 0, sizeof(*i));
}

int agentd_image_inspect(agentd_image_store *s, const char *ref, agentd_image_info *out,
			 agentd_error *err)
{
	char hex[IMAGE_HEX_LEN + 1];
	memset(out, 0, sizeof(*out));
	json_t *rec = record_of_ref(s, ref, hex, NULL, err);
	if (!rec)
		return -1;
	int r = record_info(s, hex, rec, out, err);
	json_decref(rec);
	return r;
}

struct lister {
	agentd_image_store *s;
	agentd_image_info *v;
	size_t n;
	agentd_error *err;
};

static int list_one(void *ud, const char *hex, json_t *rec)
{
	struct lister *l = ud;
	if (json_is_true(json_object_get(rec, "removed")))
		return 0;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	if (record_info(l->s, hex, rec, &l->v[l->n], l->err) < 0)
		return -1;
	l->n++;
	return 0;
}

static int by_created(const void *a, const void *b)
{
	const agentd_image_info *x = a, *y = b;
	return x->created != y->created ? (x->created > y->created ? -1 : 1)
					: strcmp(x->id, y->id);
}

int agentd_image_list(agentd_image_store *s, agentd_image_info **out, size_t *n,
		      agentd_error *err)
{
	struct lister l = {s, NULL, 0, err};
	*out = NULL;
	*n = 0;
	if (records_each(s, list_one, &l, err) < 0) {
		agentd_image_list_free(l.v, l.n);
		return -1;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), by_created);
	*out = l.v;
	*n = l.n;
	return 0;
}

void agentd_image_list_free(agentd_image_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		agentd_image_info_free(&v[i]);
	free(v);
}

/* ------------------------------------------------------------------ tag, remove */

int agentd_image_tag(agentd_image_store *s, const char *ref, const char *tag, agentd_error *err)
{
	_cleanup_free_ char *norm = tag_normalise(tag, err);
	if (!norm)
		return -1;
	_cleanup_close_ int rl = store_lock(s, "records.lock", LOCK_EX, err);
	char hex[IMAGE_HEX_LEN + 1];
	json_t *rec = rl < 0 ? NULL : record_of_ref(s, ref, hex, NULL, err);
	if (!rec)
		return -1;
	int r = record_move_tag(s, norm, hex, rec, err);
	if (r == 0)
		r = record_save(s, hex, rec, err);
	json_decref(rec);
	return r;
}

/* The record of hex goes (its use file too); in use (force): kept, marked removed, so that
 * prune spares its layers while its sandboxes run. */
static int drop_record(agentd_image_store *s, const char *hex, json_t *rec, bool busy,
		       agentd_error *err)
{
	char path[IMAGE_HEX_LEN + 16];
	if (busy) {
		json_object_set_new(rec, "removed", json_true());
		json_object_set_new(rec, "tags", json_array());
		return record_save(s, hex, rec, err);
	}
	snprintf(path, sizeof(path), "images/%s.json", hex);
	if (unlinkat(s->dfd, path, 0) < 0 && errno != ENOENT)
		return agentd_error_errno(err, errno, "remove image sha256:%s", hex);
	snprintf(path, sizeof(path), "images/%s.use", hex);
	unlinkat(s->dfd, path, 0);
	return 0;
}

static int gc_locked(agentd_image_store *s, uint64_t *freed, agentd_error *err);

int agentd_image_remove(agentd_image_store *s, const char *ref, bool force, agentd_error *err)
{
	_cleanup_close_ int rl = store_lock(s, "records.lock", LOCK_EX, err);
	char hex[IMAGE_HEX_LEN + 1];
	bool by_tag;
	json_t *rec = rl < 0 ? NULL : record_of_ref(s, ref, hex, &by_tag, err);
	if (!rec)
		return -1;
	int r;
	json_t *tags = json_object_get(rec, "tags");
	if (by_tag && json_array_size(tags) > 1) {
		/* one of its names: the image stays under the others */
		_cleanup_free_ char *norm = tag_normalise(ref, err);
		r = record_move_tag(s, norm, NULL, NULL, err);
		json_decref(rec);
		return r;
	}
	bool busy = in_use(s, hex);
	if (busy && !force) {
		json_decref(rec);
		return agentd_error_set(err, EBUSY, "image sha256:%.12s is in use by a sandbox "
					"(remove it with force to untag it now and free it when the "
					"sandbox is gone)", hex);
	}
	r = drop_record(s, hex, rec, busy, err);
	json_decref(rec);
	/* its layers now, unless an import or a prune runs (then prune frees them later) */
	_cleanup_close_ int gl = r == 0 ? store_lock(s, "lock", LOCK_EX | LOCK_NB, NULL) : -1;
	if (gl >= 0)
		gc_locked(s, NULL, NULL);
	return r;
}

/* ------------------------------------------------------------------ prune */

struct refs {
	agentd_image_store *s;
	agentd_strv layers, blobs;
	agentd_error *err;
};

static int collect_refs(void *ud, const char *hex, json_t *rec)
{
	struct refs *r = ud;
	if (json_is_true(json_object_get(rec, "removed")) && !in_use(r->s, hex))
		return drop_record(r->s, hex, rec, false, r->err);
	strv_from_json(&r->layers, json_object_get(rec, "layers"));
	strv_from_json(&r->blobs, json_object_get(rec, "blobs"));
	return 0;
}

/* dir's entries named by no ref ("<hex>" and "<hex>.json"), removed; bytes counted. */
static int sweep(agentd_image_store *s, const char *dir, const agentd_strv *keep,
		 uint64_t *freed, agentd_error *err)
{
	int fd = openat(s->dfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return agentd_error_errno(err, errno, "image store %s/%s", s->dir, dir);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char digest[IMAGE_HEX_LEN + 8];
		snprintf(digest, sizeof(digest), "sha256:%.64s", de->d_name);
		if (strv_contains(keep, digest))
			continue;
		uint64_t bytes = 0;
		struct stat st;
		int c = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (c >= 0 && fstat(c, &st) == 0)
			bytes = S_ISDIR(st.st_mode) && tree_allocated_at(c, &bytes) == 0
					? bytes
					: (uint64_t)st.st_blocks * 512;
		if (c >= 0)
			close(c);
		if (rm_rf_at(dirfd(d), de->d_name) == 0 && freed)
			*freed += bytes;
	}
	closedir(d);
	return 0;
}

/* DIR/tmp's work dirs whose import is gone (their flock is free). */
static void sweep_tmp(agentd_image_store *s, uint64_t *freed)
{
	int fd = openat(s->dfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_close_ int c = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW |
								     O_CLOEXEC);
		if (c >= 0 && flock(c, LOCK_EX | LOCK_NB) < 0)
			continue; /* an import at work */
		uint64_t bytes = 0;
		if (c >= 0)
			tree_allocated_at(c, &bytes);
		if (rm_rf_at(dirfd(d), de->d_name) == 0 && freed)
			*freed += bytes;
	}
	closedir(d);
}

/* Under the exclusive store lock (no import runs): records, then what they leave. */
static int gc_locked(agentd_image_store *s, uint64_t *freed, agentd_error *err)
{
	_cleanup_close_ int rl = -1;
	struct refs r = {.s = s, .err = err};
	int ret = records_each(s, collect_refs, &r, err);
	if (ret == 0)
		ret = sweep(s, "layers", &r.layers, freed, err);
	if (ret == 0)
		ret = sweep(s, "blobs/sha256", &r.blobs, freed, err);
	if (ret == 0)
		sweep_tmp(s, freed);
	strv_free(&r.layers);
	strv_free(&r.blobs);
	(void)rl;
	return ret;
}

int agentd_image_prune(agentd_image_store *s, uint64_t *freed_bytes, agentd_error *err)
{
	uint64_t freed = 0;
	_cleanup_close_ int gl = store_lock(s, "lock", LOCK_EX, err);
	if (gl < 0)
		return -1;
	_cleanup_close_ int rl = store_lock(s, "records.lock", LOCK_EX, err);
	if (rl < 0)
		return -1;
	int r = gc_locked(s, &freed, err);
	if (freed_bytes)
		*freed_bytes = freed;
	return r;
}

/* ------------------------------------------------------------------ as JSON */

char *agentd_image_info_json(const agentd_image_info *i)
{
	const agentd_image_config *c = &i->config;
	json_t *j = json_pack("{s:s, s:o, s:o, s:I, s:I, s:s, s:b, s:{s:o, s:o, s:o, s:o, s:o}}",
			      "id", i->id, "tags", strv_json(&i->tags), "layers",
			      strv_json(&i->layers), "size_bytes", (json_int_t)i->size_bytes,
			      "created", (json_int_t)i->created, "source",
			      i->source ? i->source : "", "in_use", i->in_use, "config", "env",
			      strv_json(&c->env), "workdir",
			      c->workdir ? json_string(c->workdir) : json_null(), "user",
			      c->user ? json_string(c->user) : json_null(), "cmd",
			      strv_json(&c->cmd), "entrypoint", strv_json(&c->entrypoint));
	/* issue 13: img-build: its labels, when it has any */
	json_t *labels = c->labels.n ? json_object() : NULL;
	for (size_t k = 0; k < c->labels.n; k++)
		json_object_set_new(labels, c->labels.v[k].key, json_string(c->labels.v[k].value));
	if (labels)
		json_object_set_new(json_object_get(j, "config"), "labels", labels);
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}
