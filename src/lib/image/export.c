/* export.c: images out of the store and directories into it — a docker-archive tar of an
 * image (for `docker load` / `podman load`), and a directory tree committed as a new layer
 * on top of a base image (what `agentd image build` stores). Both go through tarx's writer,
 * which turns overlay whiteouts back into the image spec's ".wh." entries. */
#include "lib/image/image.h"

#include "lib/host/host.h"
#include "lib/host/tarx_la.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* The tree under dir (taken) as a layer tar in an anonymous file of w: its fd, the sha256
 * of the tar in hex (its diff id) and its size. */
static int tar_of_dir(struct image_work *w, int dir, char hex[IMAGE_HEX_LEN + 1],
		      uint64_t *size, agentd_error *err)
{
	struct tarx_policy p = {.max_entries = w->s->max_entries, .max_bytes = w->s->max_bytes,
				.symlinks_any_target = true, .keep_owners = true,
				.keep_sticky = true, .overlay_whiteouts = true};
	struct tarx_writer *tw = tarx_writer_new(dir, &p, err);
	if (!tw)
		return -1;
	char name[32];
	snprintf(name, sizeof(name), "tar-%u", w->seq++);
	int fd = openat(w->dfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		unlinkat(w->dfd, name, 0);
	struct sha256_ctx c;
	sha256_init(&c);
	_cleanup_free_ char *buf = xmalloc(1u << 16);
	ssize_t n = fd < 0 ? -1 : 0;
	*size = 0;
	while (fd >= 0 && (n = tarx_writer_read(tw, buf, 1u << 16, err)) > 0) {
		sha256_update(&c, (size_t)n, (const uint8_t *)buf);
		*size += (uint64_t)n;
		if (write_all(fd, buf, (size_t)n) < 0) {
			n = agentd_error_errno(err, errno, "write the layer tar");
			break;
		}
	}
	tarx_writer_free(tw);
	if (fd < 0)
		return agentd_error_errno(err, errno, "create the layer tar");
	if (n < 0) {
		close(fd);
		return -1;
	}
	sha256_ctx_hex(&c, hex);
	return fd;
}

/* ------------------------------------------------------------------ export */

struct outer {
	const struct tarx_la *la;
	struct archive *a;
};

/* One regular file entry of the outer tar from data or (data NULL) from fd. */
static int put_file(struct outer *o, const char *name, const void *data, int fd,
		    uint64_t size, agentd_error *err)
{
	struct archive_entry *e = o->la->archive_entry_new();
	o->la->archive_entry_set_pathname(e, name);
	o->la->archive_entry_set_filetype(e, AE_IFREG);
	o->la->archive_entry_set_perm(e, 0644);
	o->la->archive_entry_set_size(e, (la_int64_t)size);
	int r = o->la->archive_write_header(o->a, e);
	o->la->archive_entry_free(e);
	if (r < ARCHIVE_WARN)
		return agentd_error_set(err, EIO, "%s: %s", name, o->la->archive_error_string(o->a));
	void *map = NULL;
	if (!data && size) {
		map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED)
			return agentd_error_errno(err, errno, "%s", name);
		data = map;
	}
	for (uint64_t off = 0; off < size;) {
		la_ssize_t n = o->la->archive_write_data(o->a, (const char *)data + off,
							 size - off > (1u << 20) ? (1u << 20)
										 : size - off);
		if (n <= 0) {
			if (map)
				munmap(map, size);
			return agentd_error_set(err, EIO, "%s: %s", name,
						o->la->archive_error_string(o->a));
		}
		off += (uint64_t)n;
	}
	if (map)
		munmap(map, size);
	o->la->archive_write_finish_entry(o->a);
	return 0;
}

/* The image's layers re-tarred (their diff ids as written now) into o, then its config
 * with those diff ids and the manifest. */
static int write_archive(struct image_work *w, json_t *rec, json_t *config, struct outer *o,
			 agentd_error *err)
{
	json_t *ids = json_array(), *paths = json_array();
	json_t *layers = json_object_get(rec, "layers");
	int r = 0;
	for (size_t i = 0; r == 0 && i < json_array_size(layers); i++) {
		const char *hex = digest_hex(json_string_value(json_array_get(layers, i)));
		char rel[IMAGE_HEX_LEN + 16], tar_hex[IMAGE_HEX_LEN + 1], name[IMAGE_HEX_LEN + 16];
		snprintf(rel, sizeof(rel), "layers/%s", hex ? hex : "-");
		int dir = openat(w->s->dfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		uint64_t size = 0;
		int fd = dir < 0 ? agentd_error_errno(err, errno, "layer %s", rel)
				 : tar_of_dir(w, dir, tar_hex, &size, err);
		if (fd < 0) {
			r = -1;
			break;
		}
		snprintf(name, sizeof(name), "%s/layer.tar", tar_hex);
		r = put_file(o, name, NULL, fd, size, err);
		close(fd);
		json_array_append_new(ids, json_sprintf("sha256:%s", tar_hex));
		json_array_append_new(paths, json_string(name));
	}
	json_object_set(json_object_get(config, "rootfs"), "diff_ids", ids);
	char *cfg = json_dumps(config, JSON_COMPACT | JSON_SORT_KEYS);
	char cfg_hex[IMAGE_HEX_LEN + 1], cfg_name[IMAGE_HEX_LEN + 8];
	sha256_hex_of(cfg, strlen(cfg), cfg_hex);
	snprintf(cfg_name, sizeof(cfg_name), "%s.json", cfg_hex);
	if (r == 0)
		r = put_file(o, cfg_name, cfg, -1, strlen(cfg), err);
	json_t *m = json_pack("[{s:s, s:O, s:o}]", "Config", cfg_name, "RepoTags",
			      json_object_get(rec, "tags"), "Layers", paths);
	char *ms = json_dumps(m, JSON_COMPACT);
	if (r == 0)
		r = put_file(o, "manifest.json", ms, -1, strlen(ms), err);
	free(ms);
	free(cfg);
	json_decref(m);
	json_decref(ids);
	return r;
}

int agentd_image_export(agentd_image_store *s, const char *ref, int fd, agentd_error *err)
{
	char hex[IMAGE_HEX_LEN + 1] = "";
	struct image_work w;
	if (work_begin(s, &w, err) < 0)
		return agentd_error_prefix(err, "export %s", ref);
	json_t *rec = record_of_ref(s, ref, hex, NULL, err);
	int r = rec ? 0 : -1;
	json_t *config = rec ? config_blob(s, hex) : NULL;
	struct outer o = {.la = r == 0 ? tarx_la(err) : NULL};
	if (r == 0 && (!config || !o.la))
		r = o.la ? agentd_error_set(err, EIO, "image sha256:%.12s: its config is missing",
					    hex)
			 : -1;
	if (r == 0) {
		o.a = o.la->archive_write_new();
		o.la->archive_write_set_format_pax_restricted(o.a);
		if (o.la->archive_write_open_fd(o.a, fd) != ARCHIVE_OK)
			r = agentd_error_set(err, EIO, "%s", o.la->archive_error_string(o.a));
		if (r == 0)
			r = write_archive(&w, rec, config, &o, err);
		if (r == 0 && o.la->archive_write_close(o.a) != ARCHIVE_OK)
			r = agentd_error_set(err, EIO, "%s", o.la->archive_error_string(o.a));
		o.la->archive_write_free(o.a);
	}
	json_decref(config);
	json_decref(rec);
	work_end(&w);
	return r < 0 ? agentd_error_prefix(err, "export %s", ref) : 0;
}

/* ------------------------------------------------------------------ commit a directory */

/* base's config JSON (or a new one) with the defaults of c and the diff ids. */
static json_t *config_for(json_t *base, const agentd_image_config *c, json_t *diff_ids)
{
	json_t *cfg = base ? json_deep_copy(base)
			   : json_pack("{s:s, s:s, s:{s:[s]}}", "architecture",
				       sizeof(void *) == 8 ? "amd64" : "386", "os", "linux",
				       "config", "Env",
				       "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:"
				       "/bin");
	json_t *cc = json_object_get(cfg, "config");
	if (!cc)
		json_object_set_new(cfg, "config", cc = json_object());
	if (c) {
		json_object_set_new(cc, "Env", strv_json(&c->env));
		json_object_set_new(cc, "Cmd", strv_json(&c->cmd));
		json_object_set_new(cc, "Entrypoint", strv_json(&c->entrypoint));
		json_object_set_new(cc, "WorkingDir", json_string(c->workdir ? c->workdir : ""));
		json_object_set_new(cc, "User", json_string(c->user ? c->user : ""));
		/* issue 13: img-build */
		json_t *labels = json_object();
		for (size_t i = 0; i < c->labels.n; i++)
			json_object_set_new(labels, c->labels.v[i].key,
					    json_string(c->labels.v[i].value));
		json_object_set_new(cc, "Labels", labels);
	}
	json_object_set_new(cfg, "rootfs", json_pack("{s:s, s:O}", "type", "layers", "diff_ids",
						     diff_ids));
	return cfg;
}

int agentd_image_commit_dir(agentd_image_store *s, const char *base, int dir_fd,
			    const agentd_image_config *config, const char *tag,
			    agentd_image_info *out, agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	struct image_work w;
	struct image_new n = {.source = "build"};
	if (work_begin(s, &w, err) < 0)
		return agentd_error_prefix(err, "commit");
	json_t *base_cfg = NULL, *ids = json_array();
	char hex[IMAGE_HEX_LEN + 1], diff[IMAGE_HEX_LEN + 8];
	int r = 0;
	if (tag) {
		char *t = tag_normalise(tag, err);
		r = t ? 0 : -1;
		if (t)
			strv_push(&n.tags, t);
		n.caller_tags = n.tags.n;
		free(t);
	}
	json_t *rec = r == 0 && base ? record_of_ref(s, base, hex, NULL, err) : NULL;
	if (r == 0 && base && !rec)
		r = -1;
	if (rec) {
		base_cfg = config_blob(s, hex);
		json_array_extend(ids, json_object_get(rec, "layers"));
		json_decref(rec);
		if (!base_cfg)
			r = agentd_error_set(err, EIO, "base %s: its config is missing", base);
	}
	uint64_t size;
	int dir = r == 0 ? fcntl(dir_fd, F_DUPFD_CLOEXEC, 3) : -1;
	int fd = dir >= 0 ? tar_of_dir(&w, dir, hex, &size, err) : -1;
	if (r == 0 && fd < 0)
		r = -1;
	if (r == 0)
		r = layer_unpack(&w, fd, NULL, NULL, "the new layer", diff, err);
	if (fd >= 0)
		close(fd);
	if (r == 0) {
		json_array_append_new(ids, json_string(diff));
		json_t *cfg = config_for(base_cfg, config, ids);
		n.config = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
		n.config_len = strlen(n.config);
		json_decref(cfg);
		size_t i;
		json_t *d;
		json_array_foreach(ids, i, d)
			strv_push(&n.diff_ids, json_string_value(d));
		r = image_commit(&w, &n, out, err);
	}
	json_decref(ids);
	json_decref(base_cfg);
	image_new_free(&n);
	work_end(&w);
	return r < 0 ? agentd_error_prefix(err, "commit") : 0;
}
