/* images.c: the image store under /v1/images (docs/api.md#images) — list, inspect, import
 * (a path on the daemon's host, or the archive as the request body, which server.c streams
 * to an unnamed file in the store's tmp dir), tag, remove and prune, each change audited.
 * The store is <state-dir>/images, set on every backend (live.c). */
#include "daemon/api/api.h"

#include "common/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

int api_images_open(struct daemon *d, agentd_error *err)
{
	_cleanup_free_ char *dir = xasprintf("%s/images", d->cfg.state_dir);
	if (agentd_image_store_open(dir, &d->images, err) < 0)
		return -1;
	agentd_image_store_set_limits(d->images, d->cfg.image_max_entries,
				      d->cfg.image_max_bytes);
	return 0;
}

int api_image_upload_file(struct daemon *d, size_t *limit)
{
	/* an archive holds layers of up to the layer bound each, compressed or not */
	*limit = (size_t)(4 * (d->cfg.image_max_bytes ? d->cfg.image_max_bytes : 8ull << 30));
	_cleanup_free_ char *tmp = xasprintf("%s/tmp", agentd_image_store_dir(d->images));
	return open(tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}

static json_t *info_json(const agentd_image_info *i)
{
	char *s = agentd_image_info_json(i);
	json_t *j = json_loads(s, 0, NULL);
	free(s);
	return j;
}

static void reply_err(struct reply *out, const agentd_error *err)
{
	reply_agentd_error(out, 0, err);
}

static void image_list(struct daemon *d, struct reply *out)
{
	agentd_error err = {0};
	agentd_image_info *v;
	size_t n;
	if (agentd_image_list(d->images, &v, &n, &err) < 0)
		return reply_err(out, &err);
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, info_json(&v[i]));
	agentd_image_list_free(v, n);
	reply_json(out, 200, json_pack("{s:o}", "images", a));
}

static void image_get(struct daemon *d, const char *ref, struct reply *out)
{
	agentd_error err = {0};
	agentd_image_info info;
	if (agentd_image_inspect(d->images, ref, &info, &err) < 0)
		return reply_err(out, &err);
	reply_json(out, 200, info_json(&info));
	agentd_image_info_free(&info);
}

static void image_import(struct daemon *d, struct api_request *r, const struct client *c,
			 struct reply *out)
{
	char fdpath[64];
	uint64_t t0 = mono_ms();
	agentd_error err = {0};
	agentd_image_info info;
	agentd_image_import_opts o = {.tag = r->image_tag};
	int rc = 0;
	_cleanup_close_ int fd = -1;
	if (r->image_upload) {
		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", r->image_upload_fd);
	} else {
		/* issue 13: review13. Never through a magic link: /proc/PID/root/... of a
		 * sandbox's process would follow the sandbox's own symlinks (an absolute one to
		 * a host file) as the daemon, /proc/self/fd/N reads the daemon's own files. */
		_cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		fd = root < 0 ? -1
			      : openat_beneath(root, r->image_path,
					       O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0, 0);
		if (fd < 0)
			rc = agentd_error_errno(&err, errno, "import %s%s", r->image_path,
						errno == ELOOP ? " (a magic link such as "
								 "/proc/PID/root is never followed)"
							       : "");
		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	}
	if (rc == 0)
		rc = agentd_image_import(d->images, fdpath, &o, &info, &err);
	char pre[96];
	snprintf(pre, sizeof(pre), "import %s: ", fdpath);
	if (rc < 0 && fd >= 0 && !strncmp(err.msg, pre, strlen(pre))) {
		/* the caller's path in the message, not the fd it was opened as */
		memmove(err.msg, err.msg + strlen(pre), strlen(err.msg + strlen(pre)) + 1);
		agentd_error_prefix(&err, "import %s", r->image_path);
	}
	json_t *detail = json_pack("{s:s, s:s?}", "source", r->image_upload ? "(request body)"
								     : r->image_path,
				   "tag", r->image_tag);
	audit_detail(d, c, "image-import", NULL, detail, NULL, NULL, rc < 0 ? err.msg : info.id,
		     mono_ms() - t0);
	json_decref(detail);
	if (rc < 0)
		return reply_err(out, &err);
	reply_json(out, 201, info_json(&info));
	agentd_image_info_free(&info);
}

static void image_tag(struct daemon *d, struct api_request *r, const struct client *c,
		      struct reply *out)
{
	agentd_error err = {0};
	agentd_image_info info;
	int rc = agentd_image_tag(d->images, r->image_ref, r->image_tag, &err);
	if (rc == 0)
		rc = agentd_image_inspect(d->images, r->image_tag, &info, &err);
	json_t *detail = json_pack("{s:s, s:s}", "ref", r->image_ref, "tag", r->image_tag);
	audit_detail(d, c, "image-tag", NULL, detail, NULL, NULL, rc < 0 ? err.msg : info.id, 0);
	json_decref(detail);
	if (rc < 0)
		return reply_err(out, &err);
	reply_json(out, 200, info_json(&info));
	agentd_image_info_free(&info);
}

static void image_delete(struct daemon *d, struct api_request *r, const struct client *c,
			 struct reply *out)
{
	agentd_error err = {0};
	int rc = agentd_image_remove(d->images, r->image_ref, r->image_force, &err);
	json_t *detail = json_pack("{s:s, s:b}", "ref", r->image_ref, "force", r->image_force);
	audit_detail(d, c, "image-rm", NULL, detail, NULL, NULL, rc < 0 ? err.msg : "removed", 0);
	json_decref(detail);
	if (rc < 0)
		return reply_err(out, &err);
	reply_json(out, 200, json_pack("{s:s, s:b}", "removed", r->image_ref, "force",
				       r->image_force));
}

static void image_prune(struct daemon *d, const struct client *c, struct reply *out)
{
	agentd_error err = {0};
	uint64_t freed = 0;
	int rc = agentd_image_prune(d->images, &freed, &err);
	char result[64];
	snprintf(result, sizeof(result), "freed %llu bytes", (unsigned long long)freed);
	audit_detail(d, c, "image-prune", NULL, NULL, NULL, NULL, rc < 0 ? err.msg : result, 0);
	if (rc < 0)
		return reply_err(out, &err);
	reply_json(out, 200, json_pack("{s:I}", "freed_bytes", (json_int_t)freed));
}

void api_images(struct daemon *d, struct api_request *r, const struct client *c,
		struct reply *out)
{
	switch (r->route) {
	case ROUTE_IMAGE_LIST: image_list(d, out); break;
	case ROUTE_IMAGE_GET: image_get(d, r->image_ref, out); break;
	case ROUTE_IMAGE_IMPORT: image_import(d, r, c, out); break;
	case ROUTE_IMAGE_TAG: image_tag(d, r, c, out); break;
	case ROUTE_IMAGE_DELETE: image_delete(d, r, c, out); break;
	case ROUTE_IMAGE_PRUNE: image_prune(d, c, out); break;
	default: reply_error(out, 404, "no such endpoint"); break;
	}
}
