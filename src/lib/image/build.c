/* build.c: agentd_image_build — a template's stages (resolve, bootstrap, install, run,
 * commit, tag), its cache by the inputs' hash, and the sandbox that runs its commands. */
#include "lib/image/build.h"
#include "lib/image/image.h"

#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUILD_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define BUILD_PROXY "http://127.0.0.1:3128/"	/* the egress proxy inside a sandbox */
#define BUILD_WORKDIR "/agentd-build"		/* the build sandbox's (its scratch, not the layer) */

struct build {
	agentd_image_store *s;
	agentd_backend *b;
	const agentd_image_build_opts *o;
	uint64_t start_ms;
	char *suite;			/* "debian:SUITE"; else NULL and base is an image */
	char base[AGENTD_IMAGE_ID_LEN];
	agentd_image_config base_config;
	char *mirror;			/* the resolved mirror URL (packages or a bootstrap) */
	agentd_strv packages;		/* sorted */
};

static void stage(struct build *bd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void stage(struct build *bd, const char *fmt, ...)
{
	if (!bd->o->progress)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint64_t ms = now_ms_monotonic() - bd->start_ms;
	char line[600];
	snprintf(line, sizeof(line), "[%4llu.%llus] %s", (unsigned long long)(ms / 1000),
		 (unsigned long long)(ms % 1000 / 100), msg);
	bd->o->progress(bd->o->userdata, line);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ------------------------------------------------------------------ the inputs */
static int check_opts(struct build *bd, agentd_error *err)
{
	const agentd_image_build_opts *o = bd->o;
	if (!o->from || !*o->from)
		return agentd_error_set(err, EINVAL, "--from: required (debian:SUITE or an image)");
	if (!o->tag || !*o->tag)
		return agentd_error_set(err, EINVAL, "--tag: required");
	for (size_t i = 0; i < o->packages.n; i++) {
		if (!build_valid_package(o->packages.v[i]))
			return agentd_error_set(err, EINVAL, "--packages: %.200s: not a Debian "
						"package name", o->packages.v[i]);
		if (!strv_contains(&bd->packages, o->packages.v[i]))
			strv_push(&bd->packages, o->packages.v[i]);
	}
	if (bd->packages.n)
		qsort(bd->packages.v, bd->packages.n, sizeof(*bd->packages.v), cmp_str);
	for (size_t i = 0; i < o->run.n; i++)
		if (!o->run.v[i][0])
			return agentd_error_set(err, EINVAL, "--run %zu: an empty command", i + 1);
	if (!strncmp(o->from, "debian:", 7)) {
		if (!build_valid_suite(o->from + 7))
			return agentd_error_set(err, EINVAL, "--from %.100s: not a Debian suite",
						o->from);
		bd->suite = xstrdup(o->from + 7);
	}
	return 0;
}

/* The base image (--from IMAGE) and the mirror, each as the build will use it. */
static int resolve(struct build *bd, agentd_error *err)
{
	const agentd_image_build_opts *o = bd->o;
	if (!bd->suite) {
		agentd_image_info base = {0};
		if (agentd_image_inspect(bd->s, o->from, &base, err) < 0)
			return agentd_error_prefix(err, "--from %.100s", o->from);
		snprintf(bd->base, sizeof(bd->base), "%s", base.id);
		bd->base_config = base.config;
		memset(&base.config, 0, sizeof(base.config));
		agentd_image_info_free(&base);
	}
	if (!bd->suite && !bd->packages.n)
		return 0; /* commands only: no mirror in the inputs */
	if (o->mirror) {
		_cleanup_free_ char *hp = NULL;
		if (build_mirror_hostport(o->mirror, &hp, err) < 0)
			return -1;
		bd->mirror = xstrdup(o->mirror);
		return 0;
	}
	/* On an image, whose own apt sources name its suite: the host's first mirror. */
	return build_host_mirror(bd->suite, &bd->mirror, err);
}

/* "sha256:<hex>" of what the image is made of: where from, which packages (sorted), which
 * commands (in order), through which mirror. n_run: how many of the commands count. */
static void inputs_hash(const struct build *bd, size_t n_run, char out[AGENTD_IMAGE_ID_LEN])
{
	json_t *pk = json_array(), *rn = json_array();
	for (size_t i = 0; i < bd->packages.n; i++)
		json_array_append_new(pk, json_string(bd->packages.v[i]));
	for (size_t i = 0; i < n_run; i++)
		json_array_append_new(rn, json_string(bd->o->run.v[i]));
	json_t *in = json_pack("{s:i, s:s, s:s?, s:o, s:o, s:s?}", "v", 1, "from",
			       bd->suite ? "debian" : bd->base, "suite", bd->suite, "packages", pk,
			       "run", rn, "mirror", bd->mirror);
	char *txt = json_dumps(in, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(in);
	char hex[IMAGE_HEX_LEN + 1];
	sha256_hex_of(txt, strlen(txt), hex);
	free(txt);
	snprintf(out, AGENTD_IMAGE_ID_LEN, "sha256:%s", hex);
}

/* The image whose label is key, if the store has one (its id in id). */
static bool cache_find(agentd_image_store *s, const char *key, char id[AGENTD_IMAGE_ID_LEN])
{
	agentd_image_info *v = NULL;
	size_t n = 0;
	agentd_error ignored = {0};
	if (agentd_image_list(s, &v, &n, &ignored) < 0)
		return false;
	bool found = false;
	for (size_t i = 0; i < n && !found; i++) {
		const char *l = kvv_get(&v[i].config.labels, AGENTD_IMAGE_BUILD_LABEL);
		if ((found = l && !strcmp(l, key)))
			snprintf(id, AGENTD_IMAGE_ID_LEN, "%s", v[i].id);
	}
	agentd_image_list_free(v, n);
	return found;
}

/* ------------------------------------------------------------------ the stages */
/* debian:SUITE: mmdebstrap into a private directory of the store's tmp, then one layer. */
static int bootstrap(struct build *bd, const char *key, const char *tag, agentd_image_info *out,
		     agentd_error *err)
{
	stage(bd, "bootstrap %s: %zu package%s from %s", bd->suite, bd->packages.n,
	      bd->packages.n == 1 ? "" : "s", bd->mirror);
	struct image_work w;
	if (work_begin(bd->s, &w, err) < 0)
		return -1;
	_cleanup_free_ char *target = xasprintf("%s/%s/rootfs",
						agentd_image_store_dir(bd->s), w.name);
	int rc = build_mmdebstrap(bd->suite, &bd->packages, bd->mirror, target, err);
	if (rc < 0) {
		agentd_error_prefix(err, "bootstrap %s", bd->suite);
	} else {
		stage(bd, "commit layer");
		_cleanup_close_ int fd = openat(w.dfd, "rootfs", O_RDONLY | O_DIRECTORY |
						O_NOFOLLOW | O_CLOEXEC);
		agentd_image_config c = {0};
		strv_push(&c.env, BUILD_PATH);
		strv_push(&c.cmd, "/bin/sh");
		kvv_set(&c.labels, AGENTD_IMAGE_BUILD_LABEL, key);
		if (fd < 0)
			rc = agentd_error_errno(err, errno, "bootstrap %s: open its tree", bd->suite);
		else
			rc = agentd_image_commit_dir(bd->s, NULL, fd, &c, tag, out, err);
		agentd_image_config_free(&c);
	}
	work_end(&w);
	return rc;
}

/* One command in the build's sandbox as root: 0, or -1 with err naming it (what) and
 * ending with its output. */
static int sandbox_run(agentd_sandbox *sb, const char *what, const char *script,
		       const agentd_kvv *env, agentd_error *err)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	agentd_command cmd = {.argv = argv, .workdir = "/"};
	if (env)
		cmd.env = *env;
	agentd_exec_output o = {0};
	if (agentd_sandbox_exec(sb, &cmd, NULL, &o, err) < 0)
		return agentd_error_prefix(err, "%s", what);
	int rc = 0;
	if (o.exit_code != 0) {
		char tail[BUILD_TAIL] = "";
		size_t len = 0;
		build_tail_append(tail, &len, o.out ? o.out : (const uint8_t *)"", o.out_len);
		build_tail_append(tail, &len, o.err ? o.err : (const uint8_t *)"", o.err_len);
		const char *why = o.timed_out ? "timed out"
				: o.limit_hit ? agentd_limit_kind_name(o.limit_hit) : NULL;
		rc = agentd_error_set(err, EIO, "%s: exited with %d%s%s%s; its output:\n%s", what,
				      o.exit_code, why ? " (" : "", why ? why : "", why ? ")" : "",
				      tail);
	}
	agentd_exec_output_free(&o);
	return rc;
}

/* The sandbox the packages and commands run in: root (of its user namespace) on base with
 * a writable root, its network the mirror's host:port alone through the egress proxy (or
 * none without packages), generous limits. */
static int build_spec(struct build *bd, const char *base, agentd_spec *spec, agentd_error *err)
{
	agentd_spec_init(spec, AGENTD_PROFILE_PERMISSIVE);
	spec->image = xstrdup(base);
	spec->writable_root = true;
	/* a workdir of the build's own, not the image's WorkingDir: the commands run in "/"
	 * and the image keeps its defaults for the sandboxes made from it later */
	free(spec->workdir);
	spec->workdir = xstrdup(BUILD_WORKDIR);
	spec->run_as_uid = 0;
	spec->run_as_gid = 0;
	spec->limits.max_write_bytes = 8ULL << 30;
	spec->limits.max_processes = 1024;
	spec->limits.max_output_bytes = 1ULL << 20;
	spec->network.mode = AGENTD_NET_NONE;
	if (!bd->suite && bd->packages.n) {
		_cleanup_free_ char *hp = NULL;
		if (build_mirror_hostport(bd->mirror, &hp, err) < 0)
			return -1;
		spec->network.mode = AGENTD_NET_ALLOWLIST;
		strv_push(&spec->network.allow, hp);
	}
	return agentd_spec_validate(spec, err);
}

static char *install_script(const struct build *bd)
{
	_cleanup_free_ char *pk = xstrdup("");
	for (size_t i = 0; i < bd->packages.n; i++) {
		char *next = xasprintf("%s %s", pk, bd->packages.v[i]);
		free(pk);
		pk = next;
	}
	/* apt's own download sandbox (the _apt user) is not mapped in a sandbox that has
	 * root alone: it downloads as root, which is the sandbox's root, not the host's */
	const char *opts = "-o Acquire::http::Proxy=" BUILD_PROXY
			   " -o Acquire::https::Proxy=" BUILD_PROXY
			   " -o Acquire::http::Pipeline-Depth=0"
			   " -o APT::Sandbox::User=root -o Acquire::Languages=none"
			   " -o APT::Install-Recommends=false";
	return xasprintf("set -e; apt-get %s -q update; apt-get %s -q -y install%s; "
			 "apt-get clean; rm -rf /var/lib/apt/lists/*", opts, opts, pk);
}

/* What the sandbox stage commits: base's defaults, the new inputs' hash as its label. */
static void layer_config(const agentd_image_config *base, const char *key,
			 agentd_image_config *c)
{
	memset(c, 0, sizeof(*c));
	strv_copy(&c->env, &base->env);
	strv_copy(&c->cmd, &base->cmd);
	strv_copy(&c->entrypoint, &base->entrypoint);
	c->workdir = base->workdir ? xstrdup(base->workdir) : NULL;
	c->user = base->user ? xstrdup(base->user) : NULL;
	kvv_copy(&c->labels, &base->labels);
	kvv_set(&c->labels, AGENTD_IMAGE_BUILD_LABEL, key);
}

static int sandbox_steps(struct build *bd, agentd_sandbox *sb, agentd_error *err)
{
	if (!bd->suite && bd->packages.n) {
		stage(bd, "install %zu package%s from %s", bd->packages.n,
		      bd->packages.n == 1 ? "" : "s", bd->mirror);
		agentd_kvv env = {0};
		kvv_set(&env, "DEBIAN_FRONTEND", "noninteractive");
		_cleanup_free_ char *script = install_script(bd);
		int rc = sandbox_run(sb, "install packages", script, &env, err);
		kvv_free(&env);
		if (rc < 0)
			return -1;
	}
	for (size_t i = 0; i < bd->o->run.n; i++) {
		stage(bd, "run %zu/%zu: %.200s", i + 1, bd->o->run.n, bd->o->run.v[i]);
		_cleanup_free_ char *what = xasprintf("run %zu/%zu (%.200s)", i + 1, bd->o->run.n,
						      bd->o->run.v[i]);
		if (sandbox_run(sb, what, bd->o->run.v[i], NULL, err) < 0)
			return -1;
	}
	return 0;
}

/* The upper layer copied into a private directory of the store's tmp (ids as inside), then
 * committed on base. */
static int commit_upper(struct build *bd, const char *base,
			const agentd_image_config *base_config, const char *key, int upper,
			agentd_image_info *out, agentd_error *err)
{
	struct image_work w;
	if (work_begin(bd->s, &w, err) < 0)
		return -1;
	int rc = mkdirat(w.dfd, "layer", 0700);
	_cleanup_close_ int dst = rc < 0 ? -1 : openat(w.dfd, "layer", O_RDONLY | O_DIRECTORY |
						       O_NOFOLLOW | O_CLOEXEC);
	if (dst < 0)
		rc = agentd_error_errno(err, errno, "commit layer");
	else
		rc = build_copy_upper(upper, dst, bd->s->max_entries, bd->s->max_bytes, err);
	if (rc == 0) {
		agentd_image_config c;
		layer_config(base_config, key, &c);
		rc = agentd_image_commit_dir(bd->s, base, dst, &c, bd->o->tag, out, err);
		agentd_image_config_free(&c);
	}
	work_end(&w);
	return rc;
}

/* On base (an image id): the packages installed and the commands run in a sandbox, its
 * root's upper layer committed on base. */
static int extend(struct build *bd, const char *base, const agentd_image_config *base_config,
		  const char *key, agentd_image_info *out, agentd_error *err)
{
	agentd_spec spec;
	if (build_spec(bd, base, &spec, err) < 0) {
		agentd_spec_free(&spec);
		return agentd_error_prefix(err, "the build's sandbox");
	}
	agentd_sandbox *sb = NULL;
	int rc = agentd_backend_create_sandbox(bd->b, &spec, &sb, err);
	agentd_spec_free(&spec);
	if (rc < 0)
		return agentd_error_prefix(err, "the build's sandbox");
	rc = sandbox_steps(bd, sb, err);
	int upper = -1;
	if (rc == 0) {
		stage(bd, "commit layer");
		rc = agentd_sandbox_suspend(sb, err);
		if (rc == 0)
			rc = agentd_sandbox_root_upper(sb, &upper, err);
		if (rc < 0)
			agentd_error_prefix(err, "commit layer");
	}
	if (rc == 0)
		rc = commit_upper(bd, base, base_config, key, upper, out, err);
	if (upper >= 0)
		close(upper);
	agentd_error ignored = {0};
	agentd_sandbox_destroy(sb, &ignored);
	return rc;
}

/* The image for key found in the store: tagged, and it is the result. */
static int from_cache(struct build *bd, const char *id, agentd_image_info *out,
		      agentd_error *err)
{
	stage(bd, "cached: %s", id);
	if (agentd_image_tag(bd->s, id, bd->o->tag, err) < 0 ||
	    agentd_image_inspect(bd->s, id, out, err) < 0)
		return -1;
	stage(bd, "tag %s", bd->o->tag);
	return 0;
}

static int build_run(struct build *bd, agentd_image_info *out, bool *cached,
		     agentd_error *err)
{
	if (check_opts(bd, err) < 0)
		return -1;
	stage(bd, "resolve %s", bd->o->from);
	if (resolve(bd, err) < 0)
		return -1;
	char key[AGENTD_IMAGE_ID_LEN], id[AGENTD_IMAGE_ID_LEN];
	inputs_hash(bd, bd->o->run.n, key);
	if (!bd->o->no_cache && cache_find(bd->s, key, id)) {
		*cached = true;
		return from_cache(bd, id, out, err);
	}
	if (bd->suite) {
		/* The bootstrap alone is an image of its own (its inputs without the commands
		 * as label, untagged when commands follow): the slow part, cached apart. */
		char boot_key[AGENTD_IMAGE_ID_LEN];
		inputs_hash(bd, 0, boot_key);
		agentd_image_info boot = {0};
		if (bd->o->run.n && !bd->o->no_cache && cache_find(bd->s, boot_key, id)) {
			stage(bd, "bootstrap cached: %s", id);
			if (agentd_image_inspect(bd->s, id, &boot, err) < 0)
				return -1;
		} else if (bootstrap(bd, boot_key, bd->o->run.n ? NULL : bd->o->tag,
				     bd->o->run.n ? &boot : out, err) < 0) {
			return -1;
		}
		if (!bd->o->run.n) {
			stage(bd, "tag %s: %s", bd->o->tag, out->id);
			return 0;
		}
		snprintf(bd->base, sizeof(bd->base), "%s", boot.id);
		agentd_image_config_free(&bd->base_config);
		bd->base_config = boot.config;
		memset(&boot.config, 0, sizeof(boot.config));
		agentd_image_info_free(&boot);
	}
	if (extend(bd, bd->base, &bd->base_config, key, out, err) < 0)
		return -1;
	stage(bd, "tag %s: %s", bd->o->tag, out->id);
	return 0;
}

int agentd_image_build(agentd_image_store *s, agentd_backend *b,
		       const agentd_image_build_opts *o, agentd_image_info *out, bool *cached,
		       agentd_error *err)
{
	struct build bd = {.s = s, .b = b, .o = o, .start_ms = now_ms_monotonic()};
	bool was_cached = false;
	memset(out, 0, sizeof(*out));
	int rc = build_run(&bd, out, &was_cached, err);
	if (cached)
		*cached = was_cached;
	free(bd.suite);
	free(bd.mirror);
	strv_free(&bd.packages);
	agentd_image_config_free(&bd.base_config);
	return rc < 0 ? -1 : 0;
}
