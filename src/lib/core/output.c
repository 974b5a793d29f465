/* output.c: exec results and capability records: freeing them, the JSON form of an exec
 * output (docs/exit-codes.md#json-output), and the backend score and isolation predicates
 * (docs/backends.md#score). */
#include "lib/core/core.h"

#include <jansson.h>

void agentd_exec_output_free(agentd_exec_output *o)
{
	if (!o)
		return;
	free(o->out);
	free(o->err);
	strv_free(&o->unenforced);
	memset(o, 0, sizeof(*o));
}

/* Counters are uint64 but JSON integers are int64 here: saturate instead of going negative. */
static json_t *u64_json(uint64_t v)
{
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* Text stays text (embedded NULs included, escaped by jansson); anything that is not UTF-8
 * goes out as base64 with "<name>_encoding" beside it, so no byte is lost or altered. */
static bool put_stream(json_t *obj, const char *name, const uint8_t *data, size_t len)
{
	char enc_key[32];
	json_t *v;

	if (!data)
		len = 0;
	if (len == 0 || utf8_valid(data, len)) {
		v = json_stringn(len ? (const char *)data : "", len);
		return json_object_set_new(obj, name, v) == 0;
	}
	_cleanup_free_ char *b64 = base64_encode(data, len);
	snprintf(enc_key, sizeof(enc_key), "%s_encoding", name);
	return json_object_set_new(obj, name, json_string(b64)) == 0 &&
	       json_object_set_new(obj, enc_key, json_string("base64")) == 0;
}

static json_t *str_or_null(const char *s)
{
	json_t *v = s ? json_string(s) : NULL;
	/* a name that is not UTF-8 cannot be written as a JSON string: say null, not fail */
	return v ? v : json_null();
}

char *agentd_exec_output_to_json(const agentd_exec_output *o, const char *backend,
				 const char *sandbox_id)
{
	if (!o)
		return NULL;
	json_auto_t *root = json_object();
	bool ok = true;
	/* NULL for AGENTD_LIMIT_NONE: written as null, the key is always present */
	const char *limit = agentd_limit_kind_name(o->limit_hit);

	ok &= json_object_set_new(root, "exit_code", json_integer(o->exit_code)) == 0;
	if (o->term_signal)
		ok &= json_object_set_new(root, "term_signal", json_integer(o->term_signal)) == 0;
	ok &= put_stream(root, "stdout", o->out, o->out_len);
	ok &= put_stream(root, "stderr", o->err, o->err_len);
	ok &= json_object_set_new(root, "duration_ms", u64_json(o->duration_ms)) == 0;
	ok &= json_object_set_new(root, "timed_out", json_boolean(o->timed_out)) == 0;
	ok &= json_object_set_new(root, "resource_limited", json_boolean(o->resource_limited)) == 0;
	ok &= json_object_set_new(root, "limit_hit", str_or_null(limit)) == 0;
	ok &= json_object_set_new(root, "output_truncated", json_boolean(o->output_truncated)) == 0;
	json_t *un = json_array();
	for (size_t i = 0; i < o->unenforced.n; i++)
		ok &= json_array_append_new(un, str_or_null(o->unenforced.v[i])) == 0;
	ok &= json_object_set_new(root, "unenforced", un) == 0;

	json_t *u = json_object();
	ok &= json_object_set_new(u, "peak_memory_bytes", u64_json(o->usage.peak_memory_bytes)) == 0;
	ok &= json_object_set_new(u, "cpu_time_ms", u64_json(o->usage.cpu_time_ms)) == 0;
	ok &= json_object_set_new(u, "wall_time_ms", u64_json(o->usage.wall_time_ms)) == 0;
	ok &= json_object_set_new(u, "bytes_written", u64_json(o->usage.bytes_written)) == 0;
	ok &= json_object_set_new(u, "bytes_read", u64_json(o->usage.bytes_read)) == 0;
	ok &= json_object_set_new(root, "resource_usage", u) == 0;

	ok &= json_object_set_new(root, "backend", str_or_null(backend)) == 0;
	ok &= json_object_set_new(root, "sandbox_id", str_or_null(sandbox_id)) == 0;
	if (!ok)
		return NULL;
	return json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

void agentd_backend_caps_free(agentd_backend_caps *c)
{
	if (!c)
		return;
	strv_free(&c->available_profiles);
	strv_free(&c->platform_features);
	strv_free(&c->warnings);
}

void agentd_sandbox_caps_free(agentd_sandbox_caps *c)
{
	if (!c)
		return;
	strv_free(&c->readable_paths);
	strv_free(&c->writable_paths);
	strv_free(&c->allowed_destinations);
	strv_free(&c->blocked_syscall_categories);
	strv_free(&c->unenforced);
}

void agentd_backend_health_free(agentd_backend_health *h)
{
	if (!h)
		return;
	strv_free(&h->warnings);
}

/* docs/backends.md#score: filesystem isolation matters most, limits least. */
unsigned agentd_backend_score(const agentd_backend_caps *c)
{
	unsigned score = 0;
	if (c->filesystem_isolation)
		score += 4;
	if (c->process_isolation)
		score += 2;
	if (c->network_isolation)
		score += 2;
	if (c->syscall_filtering)
		score += 2;
	if (c->resource_limits)
		score += 1;
	return score;
}

/* docs/backends.md#score: resource limits are not isolation, so they do not count here. */
bool agentd_caps_fully_isolated(const agentd_backend_caps *c)
{
	return c->filesystem_isolation && c->network_isolation && c->process_isolation &&
	       c->syscall_filtering;
}

/* docs/backends.md#score: nothing the kernel enforces on files or syscalls, only policy guards. */
bool agentd_caps_soft_isolation(const agentd_backend_caps *c)
{
	return !c->filesystem_isolation && !c->syscall_filtering;
}
