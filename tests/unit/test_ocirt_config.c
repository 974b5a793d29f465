/* test_ocirt_config.c: the OCI runtime's config.json parser on configs the engines really
 * write (podman's, captured from `podman init`; `runc spec`'s; `ctr oci spec`'s, whose args
 * `ctr run` fills), and its refusals, each naming the JSON path of the field. */
#include "lib/runtime/runtime.h"

#include <fcntl.h>
#include <jansson.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

static char *sample_text(const char *name, size_t *len)
{
	const char *dir = getenv("OCIRT_SAMPLES");
	assert_non_null(dir);
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	char *text = read_file_at(AT_FDCWD, path, 1 << 22, len);
	if (!text)
		fail_msg("%s: %s", path, strerror(errno));
	return text;
}

static struct ocirt_config *parse_sample(const char *name)
{
	size_t len;
	_cleanup_free_ char *text = sample_text(name, &len);
	struct ocirt_config *c = NULL;
	agentd_error err = {0};
	if (ocirt_config_parse("/b", text, len, &c, &err) < 0)
		fail_msg("%s: %s", name, err.msg);
	return c;
}

static const struct ocirt_mount *mount_at(const struct ocirt_config *c, const char *dest)
{
	for (size_t i = 0; i < c->n_mounts; i++)
		if (!strcmp(c->mounts[i].destination, dest))
			return &c->mounts[i];
	fail_msg("no mount at %s", dest);
	return NULL;
}

static void podman_config_with_options_parses_every_field(void **state __attribute__((unused)))
{
	struct ocirt_config *c = parse_sample("podman-options.json");
	assert_true(c->process.terminal);
	assert_string_equal(c->process.args[0], "/bin/sh");
	assert_null(c->process.args[1]);
	assert_int_equal(c->process.umask, 022);
	assert_int_equal(c->process.uid, 0);
	assert_true(c->process.cap_bounding & (1ull << CAP_NET_ADMIN));
	assert_true(c->process.cap_effective & (1ull << CAP_SYS_CHROOT));
	assert_false(c->process.cap_bounding & (1ull << CAP_SYS_ADMIN));
	assert_int_equal(c->process.n_rlimits, 2);
	assert_int_equal(c->process.rlimits[0].resource, RLIMIT_NOFILE);
	assert_int_equal(c->process.rlimits[0].value.rlim_cur, 1024);
	assert_int_equal(c->process.rlimits[0].value.rlim_max, 2048);

	const struct ocirt_mount *scratch = mount_at(c, "/scratch");
	assert_string_equal(scratch->type, "tmpfs");
	assert_true(scratch->tmpcopyup);
	assert_int_equal(scratch->flags, MS_NOSUID | MS_NODEV);
	assert_int_equal(scratch->propagation, MS_PRIVATE | MS_REC);
	assert_null(scratch->data);	/* nothing left for mount(2) */
	const struct ocirt_mount *vol = mount_at(c, "/vol");
	assert_true(vol->bind && vol->recursive);
	assert_int_equal(vol->flags, MS_RDONLY);
	assert_string_equal(vol->source, "/var/lib/sample/vol");
	const struct ocirt_mount *pts = mount_at(c, "/dev/pts");
	assert_string_equal(pts->data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
	assert_int_equal(pts->flags, MS_NOSUID | MS_NOEXEC);

	assert_true(c->ns_wanted[OCIRT_NS_PID] && c->ns_wanted[OCIRT_NS_MOUNT]);
	assert_false(c->ns_wanted[OCIRT_NS_USER]);
	assert_null(c->ns_path[OCIRT_NS_PID]);
	assert_non_null(c->ns_path[OCIRT_NS_NET]);
	assert_int_equal(strncmp(c->ns_path[OCIRT_NS_NET], "/run/netns/", 11), 0);
	assert_string_equal(kvv_get(&c->sysctl, "net.ipv4.ip_forward"), "1");
	assert_int_equal(c->resources.memory_limit, 64 << 20);
	assert_int_equal(c->resources.pids_limit, 50);
	assert_true(c->resources.devices_deny_all);
	assert_non_null(c->seccomp);
	assert_string_equal(json_string_value(json_object_get(c->seccomp, "defaultAction")),
			    "SCMP_ACT_ERRNO");
	assert_true(c->masked_paths.n > 5);
	assert_false(c->has_hooks);
	ocirt_config_free(c);
}

static void engine_templates_parse_with_bundle_relative_root(void **state __attribute__((unused)))
{
	static const char *const samples[] = {"podman-default.json", "runc-spec.json",
					      "ctr-spec.json"};
	for (size_t i = 0; i < ARRAY_SIZE(samples); i++) {
		struct ocirt_config *c = parse_sample(samples[i]);
		assert_true(c->ns_wanted[OCIRT_NS_MOUNT]);
		assert_non_null(c->process.cwd);
		if (i > 0)
			assert_string_equal(c->root_path, "/b/rootfs");
		ocirt_config_free(c);
	}
	struct ocirt_config *c = parse_sample("runc-spec.json");
	assert_true(c->root_readonly);
	assert_true(c->process.no_new_privileges);
	ocirt_config_free(c);
}

/* The sample with one field replaced (a JSON pointer-ish path of object keys and array
 * indexes, the last one set to value), parsed: the error message, or NULL. */
static char *parse_edited(const char *sample, const char *const *path, json_t *value)
{
	size_t len;
	_cleanup_free_ char *text = sample_text(sample, &len);
	json_t *doc = json_loadb(text, len, 0, NULL), *at = doc;
	for (; path[1]; path++)
		at = a_digit(path[0][0]) ? json_array_get(at, strtoul(path[0], NULL, 10))
					 : json_object_get(at, path[0]);
	assert_non_null(at);
	if (json_is_array(at))
		json_array_set_new(at, strtoul(path[0], NULL, 10), value);
	else if (value)
		json_object_set_new(at, path[0], value);
	else
		json_object_del(at, path[0]);
	char *edited = json_dumps(doc, 0);
	json_decref(doc);
	struct ocirt_config *c = NULL;
	agentd_error err = {0};
	int r = ocirt_config_parse("/b", edited, strlen(edited), &c, &err);
	free(edited);
	ocirt_config_free(c);
	return r < 0 ? xstrdup(err.msg) : NULL;
}

#define P(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_error(const char *msg, const char *want)
{
	if (!msg)
		fail_msg("accepted; expected an error with %s", want);
	if (!strstr(msg, want))
		fail_msg("error \"%s\" does not contain \"%s\"", msg, want);
}

static void each_bad_field_is_named_by_its_json_path(void **state __attribute__((unused)))
{
	struct {
		const char *const *path;
		json_t *value;
		const char *want;
	} cases[] = {
		{P("process", "capabilities", "bounding", "3"), json_string("CAP_FOO"),
		 "config.json: process.capabilities.bounding[3]: \"CAP_FOO\": unknown capability"},
		{P("linux", "namespaces", "1", "type"), json_string("netw"),
		 "linux.namespaces[1].type: expected one of"},
		{P("linux", "namespaces", "1", "path"), json_string("run/netns/x"),
		 "linux.namespaces[1].path: expected an absolute path"},
		{P("mounts", "2", "destination"), NULL, "mounts[2].destination: required"},
		{P("process", "rlimits", "0", "soft"), json_integer(4096),
		 "process.rlimits[0]: soft 4096 is above hard 2048"},
		{P("process", "rlimits", "1", "type"), json_string("RLIMIT_NOFILE"),
		 "process.rlimits[1]: type RLIMIT_NOFILE: given twice"},
		{P("process", "user", "uid"), json_integer(-1),
		 "process.user.uid: -1 is out of range"},
		{P("process", "env", "0"), json_string("NOEQUALS"),
		 "process.env[0]: expected KEY=VALUE"},
		{P("process", "cwd"), json_string("relative"), "process.cwd: required: an absolute"},
		{P("process", "args"), json_array(), "process.args: required"},
		{P("linux", "uidMappings"),
		 json_pack("[{s:i,s:i}]", "containerID", 0, "hostID", 100000),
		 "linux.uidMappings[0].size: required"},
		{P("linux", "sysctl", "kernel.x"), json_integer(1),
		 "linux.sysctl[\"kernel.x\"]: expected a string"},
		{P("mounts", "0", "options", "0"), json_string("idmap"),
		 "mounts[0].options: idmap: idmapped mounts are not supported"},
		{P("annotations"), json_pack("{s:s}", "io.agentd.policy", "{not json"),
		 "annotations[\"io.agentd.policy\"]: not JSON"},
		{P("annotations"), json_pack("{s:s}", "io.agentd.policy", "[1]"),
		 "annotations[\"io.agentd.policy\"]: expected a JSON object"},
		{P("ociVersion"), json_string("2.0.0"), "ociVersion: \"2.0.0\": only runtime-spec 1.x"},
		{P("linux", "devices"), json_pack("[{s:s,s:s}]", "path", "/dev/x", "type", "q"),
		 "linux.devices[0].type: expected c, b, u or p"},
		{P("process", "consoleSize"), json_pack("{s:s}", "height", "24"),
		 "process.consoleSize.height: expected an integer"},
		{P("root"), json_object(), "root.path: required"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *msg = parse_edited("podman-options.json", cases[i].path,
							cases[i].value);
		expect_error(msg, cases[i].want);
	}
}

static void hooks_and_the_policy_annotation_are_recorded(void **state __attribute__((unused)))
{
	_cleanup_free_ char *msg = parse_edited(
		"runc-spec.json", P("hooks"),
		json_pack("{s:[{s:s}]}", "prestart", "path", "/usr/bin/setup-net"));
	assert_null(msg);

	size_t len;
	_cleanup_free_ char *text = sample_text("runc-spec.json", &len);
	json_t *doc = json_loadb(text, len, 0, NULL);
	json_object_set_new(doc, "hooks", json_pack("{s:[{s:s}]}", "poststop", "path", "/x"));
	json_object_set_new(doc, "annotations",
			    json_pack("{s:s}", "io.agentd.policy",
				      "{\"network\":{\"mode\":\"allowlist\"}}"));
	char *edited = json_dumps(doc, 0);
	json_decref(doc);
	struct ocirt_config *c = NULL;
	agentd_error err = {0};
	assert_int_equal(ocirt_config_parse("/b", edited, strlen(edited), &c, &err), 0);
	free(edited);
	assert_true(c->has_hooks);
	assert_non_null(c->agentd_policy);
	assert_non_null(json_object_get(c->agentd_policy, "network"));
	ocirt_config_free(c);
}

static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static char *make_bundle(void)
{
	char tmpl[] = "/tmp/ocirt-bundle-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	return xstrdup(tmpl);
}

static void remove_bundle(char *dir)
{
	_cleanup_free_ char *f = xasprintf("%s/config.json", dir);
	unlink(f);
	rmdir(dir);
	free(dir);
}

static void load_refuses_a_linked_or_oversized_config(void **state __attribute__((unused)))
{
	char *dir = make_bundle();
	_cleanup_free_ char *cfg = xasprintf("%s/config.json", dir);
	struct ocirt_config *c = NULL;
	agentd_error err = {0};

	/* a link: never followed, even to a good config */
	size_t len;
	_cleanup_free_ char *text = sample_text("runc-spec.json", &len);
	_cleanup_free_ char *real = xasprintf("%s.real", cfg);
	put_file(real, text);
	assert_int_equal(symlink(real, cfg), 0);
	assert_int_equal(ocirt_config_load(dir, &c, &err), -1);
	assert_null(c);
	expect_error(err.msg, "config.json (a symbolic link)");
	unlink(cfg);
	unlink(real);

	/* the same text as a file loads, root made absolute below the bundle */
	put_file(cfg, text);
	if (ocirt_config_load(dir, &c, &err) < 0)
		fail_msg("%s", err.msg);
	_cleanup_free_ char *root = xasprintf("%s/rootfs", dir);
	assert_string_equal(c->root_path, root);
	ocirt_config_free(c);

	/* past 4 MiB: refused before it is parsed */
	int fd = open(cfg, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (4 << 20) + 1), 0);
	close(fd);
	assert_int_equal(ocirt_config_load(dir, &c, &err), -1);
	assert_int_equal(err.code, EFBIG);
	remove_bundle(dir);
}

static void process_json_of_exec_loads_alone(void **state __attribute__((unused)))
{
	char *dir = make_bundle();
	_cleanup_free_ char *path = xasprintf("%s/config.json", dir);
	put_file(path,
				       "{\"terminal\":false,\"user\":{\"uid\":1000,\"gid\":1000,"
				       "\"additionalGids\":[10,20]},\"args\":[\"ps\",\"aux\"],"
				       "\"env\":[\"PATH=/bin\"],\"cwd\":\"/tmp\","
				       "\"capabilities\":{\"bounding\":[\"CAP_KILL\"]}}");
	struct ocirt_process p;
	agentd_error err = {0};
	if (ocirt_process_load(path, &p, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(p.uid, 1000);
	assert_int_equal(p.n_additional_gids, 2);
	assert_int_equal(p.additional_gids[1], 20);
	assert_string_equal(p.args[1], "aux");
	assert_int_equal(p.cap_bounding, 1ull << CAP_KILL);
	ocirt_process_clear(&p);

	put_file(path, "{\"user\":{},\"args\":[\"x\"]}");
	assert_int_equal(ocirt_process_load(path, &p, &err), -1);
	expect_error(err.msg, "process.cwd: required");
	remove_bundle(dir);
}

/* ---------------------------------------------------------------- the floor */
static char floor_dir[64];

/* A sample with its host paths moved under a fresh temp dir, each bind source made there. */
static struct ocirt_config *floor_sample(const char *name, json_t *(*edit)(json_t *))
{
	size_t len;
	_cleanup_free_ char *text = sample_text(name, &len);
	strcpy(floor_dir, "/tmp/ocirt-floor-XXXXXX");
	assert_non_null(mkdtemp(floor_dir));
	json_t *doc = json_loadb(text, len, 0, NULL);
	assert_non_null(doc);
	if (edit)
		doc = edit(doc);
	char *out = json_dumps(doc, 0);
	json_decref(doc);
	/* each "/var/lib/sample/..." into the temp dir */
	agentd_strv parts = {0};
	char *dup = xstrdup(out), *cur = dup, *hit;
	while ((hit = strstr(cur, "/var/lib/sample/"))) {
		*hit = '\0';
		strv_push(&parts, cur);
		cur = hit + strlen("/var/lib/sample/");
	}
	strv_push(&parts, cur);
	size_t cap = strlen(out) + parts.n * 64 + 1, n = 0;
	char *joined = xmalloc(cap);
	for (size_t i = 0; i < parts.n; i++)
		n += (size_t)snprintf(joined + n, cap - n, "%s%s%s", i ? floor_dir : "",
				      i ? "/" : "", parts.v[i]);
	strv_free(&parts);
	free(dup);
	free(out);
	struct ocirt_config *c = NULL;
	agentd_error err = {0};
	if (ocirt_config_parse("/b", joined, n, &c, &err) < 0)
		fail_msg("%s: %s", name, err.msg);
	free(joined);
	for (size_t i = 0; i < c->n_mounts; i++) {
		const char *src = c->mounts[i].source;
		if (!c->mounts[i].bind || strncmp(src, floor_dir, strlen(floor_dir)))
			continue;
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\" && touch '%s'", src, src);
		assert_int_equal(system(cmd), 0);
	}
	return c;
}

static void floor_done(struct ocirt_config *c)
{
	ocirt_config_free(c);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", floor_dir);
	assert_int_equal(system(cmd), 0);
}

static void expect_refused(struct ocirt_config *c, const struct ocirt_allow *a, int code,
			   const char *want)
{
	agentd_error err = {0};
	int r = ocirt_floor_apply(c, a, &err);
	if (r == 0)
		fail_msg("accepted; expected a refusal with %s", want);
	assert_int_equal(r, -code);
	expect_error(err.msg, want);
}

static void floor_tightens_podmans_default_config(void **state __attribute__((unused)))
{
	struct ocirt_config *c = floor_sample("podman-default.json", NULL);
	assert_false(c->ns_wanted[OCIRT_NS_CGROUP]);
	c->process.has_oom_score_adj = true;
	c->process.oom_score_adj = -997;	/* a Guaranteed pod's */
	agentd_error err = {0};
	struct ocirt_allow none = {0};
	if (ocirt_floor_apply(c, &none, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(c->ns_wanted[OCIRT_NS_CGROUP]);
	/* container root is not host root: a user namespace onto unprivileged host ids */
	assert_true(c->ns_wanted[OCIRT_NS_USER] && c->userns_added);
	assert_int_equal(c->n_uid_maps, 1);
	assert_int_equal(c->uid_maps[0].container_id, 0);
	assert_true(c->uid_maps[0].host_id >= OCIRT_USERNS_BASE || c->uid_maps[0].host_id > 65535);
	assert_int_equal(c->uid_maps[0].size, OCIRT_USERNS_SIZE);
	assert_true(c->process.no_new_privileges);
	assert_true(c->floor_seccomp);
	assert_int_equal(c->process.oom_score_adj, 0);
	assert_true(strv_contains(&c->masked_paths, "/proc/kallsyms"));
	assert_true(strv_contains(&c->masked_paths, "/proc/kcore"));
	assert_true(strv_contains(&c->readonly_paths, "/proc/sys"));
	floor_done(c);
}

static json_t *edit_host_root_map(json_t *d)
{
	json_t *lx = json_object_get(d, "linux");
	json_array_append_new(json_object_get(lx, "namespaces"), json_pack("{s:s}", "type", "user"));
	json_object_set_new(lx, "uidMappings",
			    json_pack("[{s:i,s:i,s:i},{s:i,s:i,s:i}]", "containerID", 1,
				      "hostID", 200000, "size", 100, "containerID", 0, "hostID", 0,
				      "size", 1));
	json_object_set_new(lx, "gidMappings",
			    json_pack("[{s:i,s:i,s:i}]", "containerID", 0, "hostID", 200000,
				      "size", 65536));
	return d;
}

static json_t *edit_devices(json_t *d)
{
	json_object_set_new(json_object_get(d, "linux"), "devices",
			    json_pack("[{s:s,s:s,s:i,s:i},{s:s,s:s,s:i,s:i}]", "path", "/dev/null",
				      "type", "c", "major", 1, "minor", 3, "path", "/dev/fuse",
				      "type", "c", "major", 10, "minor", 229));
	return d;
}

static json_t *edit_bind_proc(json_t *d)
{
	json_array_append_new(json_object_get(d, "mounts"),
			      json_pack("{s:s,s:s,s:s,s:[s]}", "destination", "/host", "type",
					"bind", "source", "/proc/../proc", "options", "rbind"));
	return d;
}

static json_t *edit_hooks(json_t *d)
{
	json_object_set_new(d, "hooks", json_pack("{s:[{s:s}]}", "createRuntime", "path",
						  "/usr/bin/true"));
	return d;
}

static json_t *edit_sysctl(json_t *d)
{
	json_object_set_new(json_object_get(d, "linux"), "sysctl",
			    json_pack("{s:s}", "kernel.panic", "0"));
	return d;
}

static json_t *edit_sysctl_escape(json_t *d)
{
	json_object_set_new(json_object_get(d, "linux"), "sysctl",
			    json_pack("{s:s}", "net.ipv4/../../../kernel/panic", "0"));
	return d;
}

static json_t *edit_no_netns(json_t *d)
{
	json_t *ns = json_object_get(json_object_get(d, "linux"), "namespaces");
	json_array_remove(ns, 1);	/* podman's: pid, network, ipc, uts, mount */
	return d;
}

static json_t *edit_host_netns(json_t *d)
{
	json_t *ns = json_object_get(json_object_get(d, "linux"), "namespaces");
	json_object_set_new(json_array_get(ns, 1), "path", json_string("/proc/self/ns/net"));
	return d;
}

/* d with io.agentd.policy set to policy */
static json_t *with_policy(json_t *d, const char *policy)
{
	json_object_set_new(d, "annotations", json_pack("{s:s}", "io.agentd.policy", policy));
	return d;
}

static json_t *edit_allowlist(json_t *d)
{
	return with_policy(d, "{\"labels\":{\"team\":\"a\"},\"network\":{\"mode\":"
			      "\"allowlist\",\"allow\":[\"example.com:443\"]}}");
}

/* issue 16: rt-egress */
static json_t *edit_bad_allow_entry(json_t *d)
{
	return with_policy(d, "{\"network\":{\"mode\":\"allowlist\",\"allow\":"
			      "[\"example.com:443\",\"foo:99999\"]}}");
}

static json_t *edit_host_network(json_t *d)
{
	return with_policy(d, "{\"network\":{\"mode\":\"host\"}}");
}

static json_t *edit_labels(json_t *d)
{
	return with_policy(d, "{\"labels\":{\"team\":\"a\"}}");
}

static void floor_refusals_name_their_field(void **state __attribute__((unused)))
{
	struct ocirt_allow none = {0}, all = {.caps = ~0ull, .devices = true,
					      .host_namespaces = true, .hooks = true,
					      .sysctl = true, .privileged_mounts = true,
					      .host_root = true};
	struct {
		const char *sample;
		json_t *(*edit)(json_t *);
		int code;
		const char *want;
	} cases[] = {
		{"podman-options.json", NULL, EPERM,
		 "process.capabilities.bounding[5]: CAP_NET_ADMIN: refused by agentd's floor "
		 "(the operator may allow it: \"allow\": {\"capabilities\": ...}"},
		{"podman-default.json", edit_host_root_map, EPERM,
		 "linux.uidMappings[1]: maps host id 0 (host root)"},
		{"podman-default.json", edit_devices, EPERM,
		 "linux.devices[1]: /dev/fuse (c 10:229): refused"},
		{"podman-default.json", edit_bind_proc, EPERM, "source: /proc/../proc (a host system path)"},
		{"podman-default.json", edit_hooks, EPERM, "hooks: run on the host as root"},
		{"podman-default.json", edit_sysctl, EPERM,
		 "linux.sysctl[\"kernel.panic\"]: not a namespaced sysctl"},
		{"podman-default.json", edit_no_netns, EPERM,
		 "linux.namespaces: no network namespace (the host's network)"},
		{"podman-default.json", edit_host_netns, EPERM,
		 "linux.namespaces: network namespace /proc/self/ns/net is the host's"},
		{"podman-default.json", edit_bad_allow_entry, EINVAL,
		 "annotations[\"io.agentd.policy\"].network.allow[1]: invalid entry "
		 "\"foo:99999\": invalid port (1..65535)"},
		{"podman-default.json", edit_host_network, EINVAL,
		 "annotations[\"io.agentd.policy\"].network.mode: expected one of \"none\", "
		 "\"allowlist\""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct ocirt_config *c = floor_sample(cases[i].sample, cases[i].edit);
		expect_refused(c, &none, cases[i].code, cases[i].want);
		floor_done(c);
		/* each allowance lets its own case through (the allowlist has none) */
		c = floor_sample(cases[i].sample, cases[i].edit);
		agentd_error err = {0};
		int r = ocirt_floor_apply(c, &all, &err);
		if (cases[i].code == EPERM && r < 0)
			fail_msg("case %zu allowed: %s", i, err.msg);
		floor_done(c);
	}
	/* a sysctl name is never a path out of /proc/sys, whatever the operator allows */
	struct ocirt_config *c = floor_sample("podman-default.json", edit_sysctl_escape);
	expect_refused(c, &all, EINVAL, "not a sysctl name");
	floor_done(c);

	c = floor_sample("podman-default.json", edit_labels);
	assert_int_equal(ocirt_floor_apply(c, &none, NULL), 0);
	assert_string_equal(kvv_get(&c->audit_labels, "team"), "a");
	floor_done(c);

	/* issue 16: rt-egress. An allowlist: the egress proxy's entries and variables */
	c = floor_sample("podman-default.json", edit_allowlist);
	agentd_error err = {0};
	if (ocirt_floor_apply(c, &none, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(c->egress);
	assert_int_equal(c->egress_allow.n, 1);
	assert_string_equal(c->egress_allow.v[0], "example.com:443");
	assert_true(c->ns_wanted[OCIRT_NS_NET]);
	bool http = false, https = false, no_proxy = false;
	for (char **e = c->process.env; e && *e; e++) {
		http |= !strcmp(*e, "HTTP_PROXY=http://127.0.0.1:3128");
		https |= !strcmp(*e, "https_proxy=http://127.0.0.1:3128");
		no_proxy |= !strcmp(*e, "NO_PROXY=");
	}
	assert_true(http && https && no_proxy);
	floor_done(c);
}

/* Joining a namespace an engine made (not the host's) needs no allowance. */
static void floor_lets_an_engine_made_netns_be_joined(void **state __attribute__((unused)))
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {	/* holds its namespace until killed */
		if (unshare(CLONE_NEWNET) < 0 || write(p[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	char b;
	assert_int_equal(read(p[0], &b, 1), 1);
	struct ocirt_config *c = floor_sample("podman-default.json", NULL);
	free(c->ns_path[OCIRT_NS_NET]);
	c->ns_path[OCIRT_NS_NET] = xasprintf("/proc/%d/ns/net", (int)pid);
	agentd_error err = {0};
	int r = ocirt_floor_apply(c, NULL, &err);
	close(p[1]);
	close(p[0]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	if (r < 0)
		fail_msg("%s", err.msg);
	floor_done(c);
}

static void put_operator_file(const char *path, const char *text, mode_t mode)
{
	put_file(path, text);
	assert_int_equal(chmod(path, mode), 0);
}

static void operator_file_is_trusted_only_when_root_owned(void **state __attribute__((unused)))
{
	char dir[] = "/tmp/ocirt-op-XXXXXX";
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	_cleanup_free_ char *path = xasprintf("%s/oci-runtime.json", dir);
	setenv("AGENTD_RUNTIME_CONFIG", path, 1);
	struct ocirt_allow a;
	agentd_error err = {0};

	/* named but missing: fail closed */
	assert_int_equal(ocirt_allow_load(NULL, &a, &err), -1);

	put_operator_file(path, "{\"allow\":{\"capabilities\":[\"CAP_NET_ADMIN\"]},"
				"\"annotation\":\"io.agentd.allow\"}", 0644);
	if (ocirt_allow_load(NULL, &a, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(a.caps, 1ull << CAP_NET_ADMIN);
	assert_false(a.devices);

	/* the annotation the operator names adds its allowances */
	struct ocirt_config *c = floor_sample("podman-default.json", edit_devices);
	kvv_set(&c->annotations, "io.agentd.allow", "{\"devices\":true}");
	if (ocirt_allow_load(c, &a, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(a.devices);
	assert_int_equal(ocirt_floor_apply(c, &a, &err), 0);
	floor_done(c);

	/* writable by others: nothing it says is trusted */
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(ocirt_allow_load(NULL, &a, &err), -1);
	expect_error(err.msg, "must be a regular file owned by root");
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(ocirt_allow_load(NULL, &a, &err), -1);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(chown(path, 1000, 0), 0);
	assert_int_equal(ocirt_allow_load(NULL, &a, &err), -1);

	put_operator_file(path, "{\"allow\":{\"everything\":true}}", 0644);
	assert_int_equal(chown(path, 0, 0), 0);
	assert_int_equal(ocirt_allow_load(NULL, &a, &err), -1);
	expect_error(err.msg, "\"everything\": unknown allowance");
	unsetenv("AGENTD_RUNTIME_CONFIG");
	unlink(path);
	rmdir(dir);
}

/* ---------------------------------------------------------------- the jail */
static char *describe(const struct mount_plan *mp)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	mount_plan_describe(mp, f);
	fclose(f);
	return buf;
}

static void jail_of_podmans_config_is_planned_in_order(void **state __attribute__((unused)))
{
	struct ocirt_config *c = floor_sample("podman-options.json", NULL);
	struct ocirt_allow a = {.caps = 1ull << CAP_NET_ADMIN};
	agentd_error err = {0};
	if (ocirt_floor_apply(c, &a, &err) < 0)
		fail_msg("%s", err.msg);
	struct ocirt_jail j;
	if (ocirt_jail_prepare(c, &j, &err) < 0)
		fail_msg("%s", err.msg);
	_cleanup_free_ char *plan = describe(&j.mounts);
	/* the rootfs first, the pivot last; the config's mounts in its order, /dev filled
	 * right after the config's /dev tmpfs, masks after */
	const char *want[] = {"make-private", "tmpfs", "mkdir", "bind", "enter", "mkdir        /sys", "mount        /sys",
			      "tmpfs        /scratch", "proc         /proc", "tmpfs        /dev",
			      "bind-dev     /dev/null", "symlink      /dev/ptmx -> pts/ptmx",
			      "bind         /vol", "devpts       /dev/pts", "mount        /dev/mqueue",
			      "bind-dev     /dev/shm", "mask-dir     /proc/acpi", "mask         /proc/keys",
			      "bind         /proc/sys <- (root)/proc/sys +ro", "pivot_root"};
	const char *at = plan;
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		const char *hit = strstr(at, want[i]);
		if (!hit)
			fail_msg("\"%s\" missing or out of order in:\n%s", want[i], plan);
		at = hit;
	}
	assert_null(strstr(plan, "tmpfs        /dev/shm"));	/* podman binds its own */
	assert_true(j.floor_seccomp.active);	/* agentd's profile, always */
	assert_true(j.config_seccomp.active);	/* podman's, stacked on it */
	assert_true(j.no_new_privs);
	assert_int_equal(j.cap_bounding & (1ull << CAP_NET_ADMIN), 1ull << CAP_NET_ADMIN);
	assert_int_equal(j.umask, 022);
	assert_int_equal(j.rlimits.n, 2);
	assert_string_equal(kvv_get(&j.sysctl, "net.ipv4.ip_forward"), "1");
	ocirt_jail_free(&j);

	/* exec: no capability beyond the container's bounding set */
	struct ocirt_process p = {0};
	p.cap_effective = 1ull << CAP_SYS_ADMIN;
	p.umask = (mode_t)-1;
	assert_int_equal(ocirt_jail_prepare_exec(c, &p, &j, &err), -1);
	expect_error(err.msg, "CAP_SYS_ADMIN is not in the container's bounding set");
	floor_done(c);
}

static json_t *edit_mask_outside(json_t *d)
{
	json_array_append_new(json_object_get(json_object_get(d, "linux"), "maskedPaths"),
			      json_string("/etc/shadow"));
	return d;
}

static json_t *edit_dotdot_mount(json_t *d)
{
	json_object_set_new(json_array_get(json_object_get(d, "mounts"), 1), "destination",
			    json_string("/scratch/../../etc"));
	return d;
}

static void jail_refuses_paths_it_cannot_keep_inside(void **state __attribute__((unused)))
{
	struct {
		json_t *(*edit)(json_t *);
		const char *want;
	} cases[] = {
		{edit_mask_outside, "linux.maskedPaths[11]: /etc/shadow: only paths below /proc"},
		{edit_dotdot_mount, "mounts[1].destination: /scratch/../../etc: expected an "
				    "absolute path with no"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct ocirt_config *c = floor_sample("podman-options.json", cases[i].edit);
		struct ocirt_jail j;
		agentd_error err = {0};
		assert_int_equal(ocirt_jail_prepare(c, &j, &err), -1);
		expect_error(err.msg, cases[i].want);
		floor_done(c);
	}
}

/* The plan applied for real (a private mount namespace of a child, as root): the rootfs, the
 * default /dev, a bind; and an image whose mount point is a link to a host path: refused,
 * nothing is bound through it. */
static int apply_in_child(struct ocirt_jail *j, char *what, size_t len)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0)
			_exit(100);
		int r = ocirt_jail_apply_root(j, what, len);
		if (r < 0) {
			fprintf(stderr, "apply: %s: %s\n", what, strerror(-r));
			_exit(r == -ELOOP ? 40 : 41);
		}
		struct stat st;
		if (stat("/dev/null", &st) < 0 || !S_ISCHR(st.st_mode))
			_exit(42);
		if (stat("/vol/marker", &st) < 0)
			_exit(43);
		if (access("/rootfs-marker", F_OK) < 0)
			_exit(44);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static json_t *edit_minimal_mounts(json_t *d)
{
	json_object_set_new(d, "mounts",
			    json_pack("[{s:s,s:s,s:s,s:[s,s]}]", "destination", "/vol", "type",
				      "bind", "source", "/var/lib/sample/vol", "options", "rbind",
				      "ro"));
	json_object_set_new(json_object_get(d, "linux"), "maskedPaths", json_array());
	json_object_set_new(json_object_get(d, "linux"), "readonlyPaths", json_array());
	json_object_set_new(d, "hostname", json_string("ctr"));
	return d;
}

static void jail_applies_and_keeps_binds_inside_the_rootfs(void **state __attribute__((unused)))
{
	if (geteuid() != 0)
		skip();
	struct ocirt_config *c = floor_sample("runc-spec.json", edit_minimal_mounts);
	/* the sample's bind source is a file; make it a directory with a marker */
	_cleanup_free_ char *vol = xasprintf("%s/vol", floor_dir);
	_cleanup_free_ char *cmd = xasprintf("rm -f '%s' && mkdir -p '%s' && touch '%s/marker' && "
					     "mkdir -p '%s/rootfs' && touch '%s/rootfs/rootfs-marker'",
					     vol, vol, vol, floor_dir, floor_dir);
	assert_int_equal(system(cmd), 0);
	free(c->root_path);
	c->root_path = xasprintf("%s/rootfs", floor_dir);
	c->root_readonly = false;
	struct ocirt_jail j;
	agentd_error err = {0};
	if (ocirt_jail_prepare(c, &j, &err) < 0)
		fail_msg("%s", err.msg);
	char what[256] = "";
	assert_int_equal(apply_in_child(&j, what, sizeof(what)), 0);

	/* a hostile image: its /vol is a link to a host directory */
	_cleanup_free_ char *host = xasprintf("%s/host-target", floor_dir);
	_cleanup_free_ char *evil = xasprintf("mkdir -p '%s' && rmdir '%s/rootfs/vol' && "
					      "ln -s '%s' '%s/rootfs/vol'",
					      host, floor_dir, host, floor_dir);
	assert_int_equal(system(evil), 0);
	assert_int_equal(apply_in_child(&j, what, sizeof(what)), 40);	/* ELOOP */
	ocirt_jail_free(&j);
	floor_done(c);
}

/* The process side for real, in a child: the config's capability sets exactly, ids,
 * no_new_privs, and two seccomp filters (agentd's under podman's). */
static void jail_process_side_sets_caps_ids_and_both_filters(void **state __attribute__((unused)))
{
	if (geteuid() != 0)
		skip();
	struct ocirt_config *c = floor_sample("podman-options.json", NULL);
	c->process.uid = 1000;
	c->process.gid = 1000;
	c->process.cap_ambient = 0;
	/* rlimits this test's own hard limits allow (raising one needs the host's
	 * CAP_SYS_RESOURCE, which a test machine's root may lack) */
	c->process.n_rlimits = 1;
	c->process.rlimits[0].resource = RLIMIT_NOFILE;
	c->process.rlimits[0].value = (struct rlimit){200, 256};
	struct ocirt_jail j;
	agentd_error err = {0};
	struct ocirt_allow a = {.caps = 1ull << CAP_NET_ADMIN};
	if (ocirt_floor_apply(c, &a, &err) < 0)
		fail_msg("%s", err.msg);
	if (ocirt_jail_prepare(c, &j, &err) < 0)
		fail_msg("%s", err.msg);
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char what[128] = "";
		close(p[0]);
		int r = ocirt_jail_apply_process(&j, what, sizeof(what));
		if (r < 0) {
			fprintf(stderr, "apply_process: %s: %s\n", what, strerror(-r));
			_exit(1);
		}
		/* what /proc says of us, after */
		size_t len;
		char *status = read_file_at(AT_FDCWD, "/proc/self/status", 1 << 16, &len);
		_exit(status && write(p[1], status, len) == (ssize_t)len ? 0 : 2);
	}
	close(p[1]);
	size_t len;
	_cleanup_free_ char *st = (char *)read_fd_all(p[0], &len);
	close(p[0]);
	int wst;
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
	char want[64];
	snprintf(want, sizeof(want), "CapBnd:\t%016llx", (unsigned long long)c->process.cap_bounding);
	expect_error(st, want);
	snprintf(want, sizeof(want), "CapEff:\t%016llx", (unsigned long long)c->process.cap_effective);
	expect_error(st, want);
	expect_error(st, "Uid:\t1000\t1000\t1000\t1000");
	expect_error(st, "NoNewPrivs:\t1");
	/* agentd's default profile, podman's profile, and the netlink rules beside it */
	expect_error(st, "Seccomp_filters:\t3");
	expect_error(st, "Umask:\t0022");
	ocirt_jail_free(&j);
	floor_done(c);
}

/* The rootfs tree, once opened as root, idmapped through the container's user namespace: a
 * file the image has owned by host root shows as the container's root's host id. */
static void jail_idmaps_the_rootfs_tree(void **state __attribute__((unused)))
{
	if (geteuid() != 0)
		skip();
	struct ocirt_config *c = floor_sample("runc-spec.json", edit_minimal_mounts);
	_cleanup_free_ char *cmd = xasprintf("rm -f '%s/vol' && mkdir -p '%s/vol' '%s/rootfs' && "
					     "touch '%s/rootfs/rootfs-marker'",
					     floor_dir, floor_dir, floor_dir, floor_dir);
	assert_int_equal(system(cmd), 0);
	free(c->root_path);
	c->root_path = xasprintf("%s/rootfs", floor_dir);
	struct ocirt_jail j;
	agentd_error err = {0};
	if (ocirt_jail_prepare(c, &j, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(ocirt_jail_idmap_root(&j, -1, &err), -1);	/* not opened yet */
	mount_plan_open_sources(&j.mounts, 0, 0);
	int userns = idmap_userns_new(0, OCIRT_USERNS_BASE, OCIRT_USERNS_BASE);
	assert_true(userns >= 0);
	if (ocirt_jail_idmap_root(&j, userns, &err) < 0)
		fail_msg("%s", err.msg);
	close(userns);
	ssize_t i = -1;
	for (size_t k = 0; k + 1 < j.mounts.n && i < 0; k++)
		if (j.mounts.ops[k + 1].kind == MOUNT_OP_ENTER)
			i = (ssize_t)k;
	struct stat st;
	assert_int_equal(fstatat(j.mounts.source_fds[i], "rootfs-marker", &st, 0), 0);
	assert_int_equal(st.st_uid, OCIRT_USERNS_BASE);
	ocirt_jail_free(&j);
	floor_done(c);
}

/* Mount points an image lacks are made by the runtime (root) in the image's own tree only,
 * never through one of its links, never inside what a mount covers (/dev's nodes). */
static void jail_makes_missing_mount_points_inside_the_image(void **state __attribute__((unused)))
{
	if (geteuid() != 0)
		skip();
	struct ocirt_config *c = floor_sample("runc-spec.json", edit_minimal_mounts);
	_cleanup_free_ char *cmd = xasprintf("rm -f '%s/vol' && mkdir -p '%s/vol' '%s/rootfs' "
					     "'%s/host-target' && ln -s '%s/host-target' "
					     "'%s/rootfs/vol'",
					     floor_dir, floor_dir, floor_dir, floor_dir, floor_dir,
					     floor_dir);
	assert_int_equal(system(cmd), 0);
	free(c->root_path);
	c->root_path = xasprintf("%s/rootfs", floor_dir);
	struct ocirt_jail j;
	agentd_error err = {0};
	if (ocirt_jail_prepare(c, &j, &err) < 0)
		fail_msg("%s", err.msg);
	ocirt_jail_make_mount_points(&j);
	struct stat st;
	_cleanup_free_ char *dev = xasprintf("%s/rootfs/dev", floor_dir);
	_cleanup_free_ char *null = xasprintf("%s/rootfs/dev/null", floor_dir);
	_cleanup_free_ char *host = xasprintf("%s/host-target", floor_dir);
	assert_int_equal(stat(dev, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(lstat(null, &st), -1);	/* under /dev's tmpfs, not the image's */
	assert_int_equal(rmdir(host), 0);	/* still empty: nothing made through the link */
	ocirt_jail_free(&j);
	floor_done(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(podman_config_with_options_parses_every_field),
		cmocka_unit_test(engine_templates_parse_with_bundle_relative_root),
		cmocka_unit_test(each_bad_field_is_named_by_its_json_path),
		cmocka_unit_test(hooks_and_the_policy_annotation_are_recorded),
		cmocka_unit_test(load_refuses_a_linked_or_oversized_config),
		cmocka_unit_test(process_json_of_exec_loads_alone),
		cmocka_unit_test(floor_tightens_podmans_default_config),
		cmocka_unit_test(floor_refusals_name_their_field),
		cmocka_unit_test(floor_lets_an_engine_made_netns_be_joined),
		cmocka_unit_test(operator_file_is_trusted_only_when_root_owned),
		cmocka_unit_test(jail_of_podmans_config_is_planned_in_order),
		cmocka_unit_test(jail_refuses_paths_it_cannot_keep_inside),
		cmocka_unit_test(jail_applies_and_keeps_binds_inside_the_rootfs),
		cmocka_unit_test(jail_process_side_sets_caps_ids_and_both_filters),
		cmocka_unit_test(jail_idmaps_the_rootfs_tree),
		cmocka_unit_test(jail_makes_missing_mount_points_inside_the_image),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
