/* policy.c: the JSON policy (docs/policy.md, "run_as" included): a strict parser whose
 * every error names the JSON path, a size-capped file loader, and the emitter that writes
 * the full spec back. */
#include "lib/core/core.h"

#include <fcntl.h>
#include <jansson.h>

#define POLICY_FILE_MAX (1U << 20)

static int fail(agentd_error *err, const char *path, const char *reason)
{
	agentd_error_set(err, EINVAL, "%s: %s", *path ? path : "(root)", reason);
	return -1;	/* visibly constant, so the compiler sees outputs are set on success */
}

/* "key: unknown key" — one message for every level, so typos are found wherever they are. */
static int fail_unknown(agentd_error *err, const char *prefix, const char *key)
{
	char path[256];
	json_path_key(path, sizeof(path), prefix, key);
	return fail(err, path, "unknown key");
}

static int get_string(json_t *v, const char *path, const char **out, agentd_error *err)
{
	if (!json_is_string(v))
		return fail(err, path, "expected string");
	/* jansson refuses \u0000 (no JSON_ALLOW_NUL): a C string then holds the whole value */
	*out = json_string_value(v);
	return 0;
}

/* A JSON integer (not 1.0, "1" or true) within [min, max]; expect is the whole reason. */
static int get_int(json_t *v, const char *path, int64_t min, int64_t max, const char *expect,
		   int64_t *out, agentd_error *err)
{
	if (!json_is_integer(v))
		return fail(err, path, expect);
	json_int_t i = json_integer_value(v);
	if (i < min || i > max)
		return fail(err, path, expect);
	*out = i;
	return 0;
}

static int parse_path_array(json_t *v, const char *name, agentd_strv *out, agentd_error *err)
{
	char path[64];
	size_t i;
	json_t *e;

	if (!json_is_array(v))
		return fail(err, name, "expected array of absolute paths");
	json_array_foreach(v, i, e) {
		const char *s;
		snprintf(path, sizeof(path), "%s[%zu]", name, i);
		if (get_string(e, path, &s, err) < 0)
			return -1;
		strv_push(out, s);
	}
	return 0;
}

static int parse_string_map(json_t *v, const char *name, agentd_kvv *out, agentd_error *err)
{
	char path[256];
	const char *k;
	json_t *e;

	if (!json_is_object(v))
		return fail(err, name, "expected object of strings");
	json_object_foreach(v, k, e) {
		const char *s;
		json_path_key(path, sizeof(path), name, k);
		if (get_string(e, path, &s, err) < 0)
			return -1;
		kvv_set(out, k, s);
	}
	return 0;
}

static int p_workdir(json_t *v, agentd_spec *s, agentd_error *err)
{
	const char *str;
	if (get_string(v, "workdir", &str, err) < 0)
		return -1;
	free(s->workdir);
	s->workdir = xstrdup(str);
	return 0;
}

static int p_paths_ro(json_t *v, agentd_spec *s, agentd_error *err)
{
	return parse_path_array(v, "allowed_paths_ro", &s->allowed_paths_ro, err);
}

static int p_paths_rw(json_t *v, agentd_spec *s, agentd_error *err)
{
	return parse_path_array(v, "allowed_paths_rw", &s->allowed_paths_rw, err);
}

static int p_bind_mounts(json_t *v, agentd_spec *s, agentd_error *err)
{
	char path[96];
	size_t i;
	json_t *m;

	if (!json_is_array(v))
		return fail(err, "bind_mounts", "expected array of objects");
	s->bind_mounts = xcalloc(json_array_size(v), sizeof(agentd_bind_mount));
	json_array_foreach(v, i, m) {
		agentd_bind_mount *bm = &s->bind_mounts[i];
		const char *k, *str;
		char prefix[48];
		json_t *e;

		snprintf(prefix, sizeof(prefix), "bind_mounts[%zu]", i);
		if (!json_is_object(m))
			return fail(err, prefix, "expected object");
		/* counted before filling, so a failure part way is freed by spec_free */
		s->n_bind_mounts = i + 1;
		/* A mount the policy does not ask to be writable is not: the safe default. */
		bm->readonly = true;
		json_object_foreach(m, k, e) {
			snprintf(path, sizeof(path), "%s.%s", prefix, k);
			if (strcmp(k, "source") == 0 || strcmp(k, "target") == 0) {
				if (get_string(e, path, &str, err) < 0)
					return -1;
				*(k[0] == 's' ? &bm->source : &bm->target) = xstrdup(str);
			} else if (strcmp(k, "readonly") == 0) {
				if (!json_is_boolean(e))
					return fail(err, path, "expected boolean");
				bm->readonly = json_is_true(e);
			} else {
				return fail_unknown(err, prefix, k);
			}
		}
		if (!bm->source || !bm->target) {
			snprintf(path, sizeof(path), "%s.%s", prefix, bm->source ? "target" : "source");
			return fail(err, path, "missing");
		}
	}
	return 0;
}

static int p_network(json_t *v, agentd_spec *s, agentd_error *err)
{
	char path[64];
	const char *k, *str;
	json_t *e, *a;
	size_t i;

	if (!json_is_object(v))
		return fail(err, "network", "expected object");
	json_object_foreach(v, k, e) {
		if (strcmp(k, "mode") == 0) {
			static const agentd_net_mode modes[] = {
				AGENTD_NET_NONE, AGENTD_NET_ALLOWLIST, AGENTD_NET_HOST,
			};
			size_t m;
			str = json_is_string(e) ? json_string_value(e) : "";
			for (m = 0; m < ARRAY_SIZE(modes); m++)
				if (strcmp(str, agentd_net_mode_name(modes[m])) == 0)
					break;
			if (m == ARRAY_SIZE(modes))
				return fail(err, "network.mode",
					    "expected one of \"none\", \"allowlist\", \"host\"");
			s->network.mode = modes[m];
		} else if (strcmp(k, "allow") == 0) {
			if (!json_is_array(e))
				return fail(err, "network.allow", "expected array of strings");
			/* replaces the profile's list: the policy says what it allows */
			strv_free(&s->network.allow);
			json_array_foreach(e, i, a) {
				snprintf(path, sizeof(path), "network.allow[%zu]", i);
				if (get_string(a, path, &str, err) < 0)
					return -1;
				strv_push(&s->network.allow, str);
			}
		} else {
			return fail_unknown(err, "network", k);
		}
	}
	return 0;
}

static int p_environment(json_t *v, agentd_spec *s, agentd_error *err)
{
	return parse_string_map(v, "environment", &s->environment, err);
}

static int p_labels(json_t *v, agentd_spec *s, agentd_error *err)
{
	return parse_string_map(v, "labels", &s->labels, err);
}

static int p_limits(json_t *v, agentd_spec *s, agentd_error *err)
{
	char path[64];
	const char *k;
	json_t *e;

	if (!json_is_object(v))
		return fail(err, "limits", "expected object");
	json_object_foreach(v, k, e) {
		const struct spec_limit_field *f = NULL;
		for (size_t i = 0; i < spec_limit_fields_n && !f; i++)
			if (strcmp(k, spec_limit_fields[i].name) == 0)
				f = &spec_limit_fields[i];
		if (!f)
			return fail_unknown(err, "limits", k);
		snprintf(path, sizeof(path), "limits.%s", k);
		int64_t i;
		/* range-checked before the store: a uint32 field must not wrap into range */
		if (get_int(e, path, (int64_t)f->min, (int64_t)f->max, f->expect, &i, err) < 0)
			return -1;
		spec_limit_set(&s->limits, f, (uint64_t)i);
	}
	return 0;
}

static int p_seccomp(json_t *v, agentd_spec *s, agentd_error *err)
{
	const char *str;
	if (get_string(v, "seccomp_profile", &str, err) < 0)
		return -1;
	free(s->seccomp_profile);
	s->seccomp_profile = xstrdup(str);
	return 0;
}

/* issue 13: images. null is the host's runtime, so the emitter can write every key. */
static int p_image(json_t *v, agentd_spec *s, agentd_error *err)
{
	const char *str = NULL;
	if (!json_is_null(v) && get_string(v, "image", &str, err) < 0)
		return -1;
	free(s->image);
	s->image = str ? xstrdup(str) : NULL;
	return 0;
}

static int p_writable_root(json_t *v, agentd_spec *s, agentd_error *err)
{
	if (!json_is_boolean(v))
		return fail(err, "writable_root", "expected boolean");
	s->writable_root = json_is_true(v);
	return 0;
}

/* null is the default identity, so the emitter can write every key. */
static int p_run_as(json_t *v, agentd_spec *s, agentd_error *err)
{
	static const char expect[] = "expected integer in 0..4294967294";
	const char *k;
	json_t *e;
	int64_t uid = -1, gid = -1;

	if (json_is_null(v)) {
		s->run_as_uid = s->run_as_gid = -1;
		return 0;
	}
	if (!json_is_object(v))
		return fail(err, "run_as", "expected object {\"uid\", \"gid\"} or null");
	json_object_foreach(v, k, e) {
		if (strcmp(k, "uid") == 0) {
			if (get_int(e, "run_as.uid", 0, SPEC_ID_MAX, expect, &uid, err) < 0)
				return -1;
		} else if (strcmp(k, "gid") == 0) {
			if (get_int(e, "run_as.gid", 0, SPEC_ID_MAX, expect, &gid, err) < 0)
				return -1;
		} else {
			return fail_unknown(err, "run_as", k);
		}
	}
	if (uid < 0)
		return fail(err, "run_as.uid", "missing");
	if (gid < 0)
		return fail(err, "run_as.gid", "missing");
	s->run_as_uid = uid;
	s->run_as_gid = gid;
	return 0;
}

static const struct {
	const char *key;
	int (*parse)(json_t *v, agentd_spec *s, agentd_error *err);
} root_keys[] = {
	{ "profile", NULL },	/* applied before the others */
	{ "workdir", p_workdir },
	{ "allowed_paths_ro", p_paths_ro },
	{ "allowed_paths_rw", p_paths_rw },
	{ "bind_mounts", p_bind_mounts },
	{ "network", p_network },
	{ "environment", p_environment },
	{ "limits", p_limits },
	{ "seccomp_profile", p_seccomp },
	{ "labels", p_labels },
	{ "run_as", p_run_as },
	/* issue 13 */
	{ "image", p_image },
	{ "writable_root", p_writable_root },
};

static int parse_root(json_t *root, agentd_spec *tmp, agentd_error *err)
{
	agentd_profile profile = AGENTD_PROFILE_STRICT;
	const char *k;
	json_t *v;

	if (!json_is_object(root))
		return fail(err, "", "expected object");
	v = json_object_get(root, "profile");
	if (v && (!json_is_string(v) ||
		  agentd_profile_from_name(json_string_value(v), &profile) < 0))
		return fail(err, "profile",
			    "expected one of \"strict\", \"standard\", \"permissive\"");
	agentd_spec_init(tmp, profile);

	json_object_foreach(root, k, v) {
		size_t i;
		for (i = 0; i < ARRAY_SIZE(root_keys); i++)
			if (strcmp(k, root_keys[i].key) == 0)
				break;
		if (i == ARRAY_SIZE(root_keys))
			return fail_unknown(err, "", k);
		if (root_keys[i].parse && root_keys[i].parse(v, tmp, err) < 0)
			return -1;
	}
	return agentd_spec_validate(tmp, err);
}

int agentd_policy_parse(const char *json, size_t len, agentd_spec *spec, agentd_error *err)
{
	json_error_t je;
	agentd_spec tmp;

	if (!json)
		return agentd_error_set(err, EINVAL, "(root): no policy text");
	/* DECODE_ANY so that a bare scalar gets "(root): expected object", not a syntax error;
	 * duplicates are refused because which one wins is a guess a policy must not need. */
	json_auto_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!root) {
		text_scrub_line(je.text);
		return agentd_error_set(err, EINVAL, "line %d column %d: %s", je.line, je.column,
					je.text);
	}
	memset(&tmp, 0, sizeof(tmp));
	if (parse_root(root, &tmp, err) < 0) {
		agentd_spec_free(&tmp);
		return -1;
	}
	/* only now is the caller's spec touched: a failed parse leaves it as it was */
	agentd_spec_free(spec);
	*spec = tmp;
	return 0;
}

int agentd_policy_load_file(const char *path, agentd_spec *spec, agentd_error *err)
{
	size_t len;
	if (!path)
		return agentd_error_set(err, EINVAL, "policy: no file name");
	/* one byte over the cap so that a file of exactly 1 MiB still loads */
	_cleanup_free_ char *buf = read_file_at(AT_FDCWD, path, POLICY_FILE_MAX + 1, &len);
	if (!buf) {
		if (errno == EFBIG)
			return agentd_error_set(err, EFBIG, "policy %s: larger than 1 MiB", path);
		return agentd_error_errno(err, errno, "policy %s", path);
	}
	if (agentd_policy_parse(buf, len, spec, err) < 0)
		return agentd_error_prefix(err, "policy %s", path);
	return 0;
}

/* ------------------------------------------------------------ emitter */

/* Each helper returns false when jansson refused a value (a string that is not UTF-8, a
 * number beyond json_int_t): the spec was never validated, and no JSON is better than JSON
 * that parses into something else. */
static bool put(json_t *obj, const char *key, json_t *v)
{
	return json_object_set_new(obj, key, v) == 0;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *strv_json(const agentd_strv *sv, bool *ok)
{
	json_t *a = json_array();
	for (size_t i = 0; i < sv->n; i++)
		*ok &= json_array_append_new(a, str_or_null(sv->v[i])) == 0;
	return a;
}

static json_t *kvv_json(const agentd_kvv *kv, bool *ok)
{
	json_t *o = json_object();
	for (size_t i = 0; i < kv->n; i++)
		*ok &= kv->v[i].key && put(o, kv->v[i].key, str_or_null(kv->v[i].value));
	return o;
}

static json_t *u64_json(uint64_t v)
{
	return v <= INT64_MAX ? json_integer((json_int_t)v) : NULL;
}

char *agentd_policy_to_json(const agentd_spec *spec)
{
	bool ok = true;
	json_auto_t *root = json_object();

	ok &= put(root, "profile", str_or_null(agentd_profile_name(spec->profile)));
	ok &= put(root, "workdir", str_or_null(spec->workdir));
	ok &= put(root, "allowed_paths_ro", strv_json(&spec->allowed_paths_ro, &ok));
	ok &= put(root, "allowed_paths_rw", strv_json(&spec->allowed_paths_rw, &ok));

	json_t *mounts = json_array();
	for (size_t i = 0; i < spec->n_bind_mounts; i++) {
		const agentd_bind_mount *bm = &spec->bind_mounts[i];
		json_t *m = json_object();
		ok &= put(m, "source", str_or_null(bm->source));
		ok &= put(m, "target", str_or_null(bm->target));
		ok &= put(m, "readonly", json_boolean(bm->readonly));
		ok &= json_array_append_new(mounts, m) == 0;
	}
	ok &= put(root, "bind_mounts", mounts);

	json_t *net = json_object();
	ok &= put(net, "mode", str_or_null(agentd_net_mode_name(spec->network.mode)));
	ok &= put(net, "allow", strv_json(&spec->network.allow, &ok));
	ok &= put(root, "network", net);

	ok &= put(root, "environment", kvv_json(&spec->environment, &ok));

	json_t *lim = json_object();
	for (size_t i = 0; i < spec_limit_fields_n; i++) {
		const struct spec_limit_field *f = &spec_limit_fields[i];
		ok &= put(lim, f->name, u64_json(spec_limit_get(&spec->limits, f)));
	}
	ok &= put(root, "limits", lim);

	ok &= put(root, "seccomp_profile", str_or_null(spec->seccomp_profile));
	ok &= put(root, "labels", kvv_json(&spec->labels, &ok));

	if (spec->run_as_uid < 0 && spec->run_as_gid < 0) {
		ok &= put(root, "run_as", json_null());
	} else {
		json_t *ra = json_object();
		ok &= put(ra, "uid", json_integer(spec->run_as_uid));
		ok &= put(ra, "gid", json_integer(spec->run_as_gid));
		ok &= put(root, "run_as", ra);
	}
	ok &= put(root, "image", str_or_null(spec->image));
	ok &= put(root, "writable_root", json_boolean(spec->writable_root));

	if (!ok)
		return NULL;
	return json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
}
