/* images_build.c: POST /v1/images/build — agentd_image_build into the daemon's image store,
 * its stages streamed as NDJSON lines while it runs, then the image (docs/api.md#images). */
#include "daemon/api/api.h"

#include <string.h>

struct build_emit {
	ctx_event_cb emit;
	void *ud;
};

static void on_progress(void *ud, const char *line)
{
	struct build_emit *e = ud;
	e->emit(e->ud, json_pack("{s:s}", "progress", line));
}

static json_t *image_json(const agentd_image_info *info, bool cached)
{
	json_t *tags = json_array(), *layers = json_array();
	for (size_t i = 0; i < info->tags.n; i++)
		json_array_append_new(tags, json_string(info->tags.v[i]));
	for (size_t i = 0; i < info->layers.n; i++)
		json_array_append_new(layers, json_string(info->layers.v[i]));
	return json_pack("{s:{s:s, s:o, s:o, s:I}, s:b}", "image", "id", info->id, "tags", tags,
			 "layers", layers, "size_bytes", (json_int_t)info->size_bytes, "cached",
			 cached);
}

/* The stream's work (stream.c runs it on its own thread; l is NULL). */
static json_t *build_work(struct daemon *d, struct live *l, const struct client *c,
			  struct api_request *r, struct exec_slot *slot, ctx_event_cb emit,
			  void *emit_ud)
{
	(void)l;
	(void)slot;
	struct api_image_build *rb = &r->build;
	struct build_emit e = {emit, emit_ud};
	agentd_image_build_opts o = {
		.from = rb->from,
		.packages = rb->packages,
		.run = rb->run,
		.tag = rb->tag,
		.mirror = rb->mirror,
		.no_cache = rb->no_cache,
		.progress = on_progress,
		.userdata = &e,
	};
	const char *backend = rb->backend ? rb->backend : "container";
	agentd_error err = {0};
	agentd_image_info info = {0};
	bool cached = false;
	uint64_t t0 = mono_ms();
	agentd_backend *b = daemon_backend(d, backend, &err);
	agentd_image_store *s = b ? agentd_backend_image_store(b, &err) : NULL;
	int rc = s ? agentd_image_build(s, b, &o, &info, &cached, &err) : -1;
	json_t *last;
	if (rc == 0)
		last = image_json(&info, cached);
	else
		last = json_pack("{s:{s:s, s:s}}", "error", "code",
				 api_status_code(api_status_from_errno(err.code)), "message",
				 err.msg);
	audit(d, c, "image.build", NULL, NULL, rc == 0 ? info.id : NULL, backend,
	      rc == 0 ? "ok" : "error", mono_ms() - t0);
	agentd_image_info_free(&info);
	return last;
}

void api_image_build(struct daemon *d, struct api_request *r, const struct client *c,
		     struct reply *out)
{
	out->mhd_response = stream_work_response_new(d, NULL, c, r, c->fd, build_work);
	if (!out->mhd_response) {
		reply_error(out, 500, "cannot start the stream");
		return;
	}
	out->status = 200;
}
