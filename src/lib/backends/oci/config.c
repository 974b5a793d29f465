/* config.c: the oci backend's container model — what agentd wants of a container, built
 * from a spec (oci_config_build) — and its form as an OCI runtime-spec config.json: no
 * capability at all, no_new_privs, a read-only root, only the policy's binds, sized
 * tmpfs for /tmp and the workdir, the user, rlimits, every namespace, cgroup resources,
 * devices denied, masked paths and agentd's seccomp profile. */
#include "lib/backends/oci/oci.h"

#include <jansson.h>
#include <inttypes.h>
#include <sys/resource.h>
#include <sys/stat.h>

static void mount_add(struct oci_config *cfg, const char *source, const char *target,
		      bool readonly, uint64_t tmpfs_bytes)
{
	cfg->mounts = xrealloc(cfg->mounts, (cfg->n_mounts + 1) * sizeof(*cfg->mounts));
	cfg->mounts[cfg->n_mounts++] = (struct oci_mount){
		.source = source ? xstrdup(source) : NULL,
		.target = xstrdup(target),
		.readonly = readonly,
		.tmpfs = !source,
		.tmpfs_bytes = tmpfs_bytes,
	};
}

/* The host runtime, read-only: the same paths the container backend and Landlock give
 * (/usr, /bin, /lib*, the /etc allowlist), but not /proc and /dev, the container's own. */
static void host_runtime_binds(struct oci_config *cfg)
{
	agentd_strv sys = {0};
	landlock_system_ro_paths(&sys);
	for (size_t i = 0; i < sys.n; i++)
		if (strncmp(sys.v[i], "/dev/", 5) && strcmp(sys.v[i], "/proc"))
			mount_add(cfg, sys.v[i], sys.v[i], true, 0);
	strv_free(&sys);
}

void oci_image_env(const agentd_spec *spec, const agentd_image_lease *lease, agentd_kvv *kv)
{
	const agentd_image_config *ic = lease ? &lease->config : NULL;
	for (size_t i = 0; ic && i < ic->env.n; i++) {
		const char *eq = strchr(ic->env.v[i], '=');
		if (!eq)
			continue;
		_cleanup_free_ char *k = xasprintf("%.*s", (int)(eq - ic->env.v[i]), ic->env.v[i]);
		if (!kvv_get(&spec->environment, k))
			kvv_set(kv, k, eq + 1);
	}
}

/* The image's User when it is numeric ("uid[:gid]") and the spec sets none. */
static void image_user(const agentd_spec *spec, const agentd_image_config *ic,
		       struct oci_config *cfg)
{
	unsigned u, g;
	int n = ic->user ? sscanf(ic->user, "%u:%u", &u, &g) : 0;
	if (spec->run_as_uid >= 0 || n < 1)
		return;
	cfg->uid = u;
	cfg->gid = n == 2 ? g : u;
}

int oci_config_build(const agentd_spec *spec, const char *id, const agentd_image_lease *lease,
		     const char *netns_path, uint16_t proxy_port, struct oci_config *cfg,
		     agentd_error *err)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->name = xasprintf("agentd-%s", id);
	cfg->cgroup_name = xasprintf("oci-%s", id);
	cfg->uid = spec->run_as_uid >= 0 ? (uid_t)spec->run_as_uid : OCI_UID_NOBODY;
	cfg->gid = spec->run_as_gid >= 0 ? (gid_t)spec->run_as_gid
		   : spec->run_as_uid >= 0 ? (gid_t)spec->run_as_uid : OCI_UID_NOBODY;
	cfg->workdir = xstrdup(spec->workdir);
	cfg->image_ref = spec->image ? xstrdup(spec->image) : NULL;
	cfg->netns_path = netns_path ? xstrdup(netns_path) : NULL;
	cfg->proxy_port = proxy_port;
	cfg->limits = &spec->limits;
	agentd_kvv ienv = {0};
	oci_image_env(spec, lease, &ienv);
	cfg->env = env_prepare(spec, &ienv, spec->workdir, "/tmp");
	kvv_free(&ienv);
	if (lease) {
		image_user(spec, &lease->config, cfg);
		cfg->rootfs = xstrdup("rootfs/root");
		cfg->layers = xcalloc(lease->n_layers + 1, sizeof(char *));
		for (size_t i = 0; i < lease->n_layers; i++)
			cfg->layers[i] = xstrdup(lease->layer_paths[i]);
		cfg->n_layers = lease->n_layers;
		cfg->writable_root = spec->writable_root;
		cfg->root_bytes = spec->limits.max_write_bytes;
		mount_add(cfg, "/usr/bin/tini-static", OCI_IMAGE_INIT, true, 0);
	} else if (!spec->image) {	/* issue 13: oci-engine: an engine's image is the root */
		host_runtime_binds(cfg);
	}
	/* The writable state, each bounded by max_write_bytes: /tmp, then the workdir (which
	 * may lie beneath it); before the policy's binds, which a runtime mounts in order: a
	 * bind beneath /tmp (a path of the host's /tmp) must land on the tmpfs, not under it. */
	uint64_t size = spec->limits.max_write_bytes;
	if (size < OCI_TMPFS_MIN)
		size = OCI_TMPFS_MIN;
	mount_add(cfg, NULL, "/tmp", false, size);
	if (strcmp(spec->workdir, "/tmp") != 0)
		mount_add(cfg, NULL, spec->workdir, false, size);
	for (size_t i = 0; i < spec->allowed_paths_ro.n; i++)
		mount_add(cfg, spec->allowed_paths_ro.v[i], spec->allowed_paths_ro.v[i], true, 0);
	for (size_t i = 0; i < spec->allowed_paths_rw.n; i++)
		mount_add(cfg, spec->allowed_paths_rw.v[i], spec->allowed_paths_rw.v[i], false, 0);
	for (size_t i = 0; i < spec->n_bind_mounts; i++)
		mount_add(cfg, spec->bind_mounts[i].source, spec->bind_mounts[i].target,
			  spec->bind_mounts[i].readonly, 0);
	if (strcmp(spec->seccomp_profile, "none") == 0)
		return 0;
	if (strcmp(spec->seccomp_profile, "default") != 0)
		return agentd_error_set(err, ENOTSUP,
					"oci: seccomp_profile %s: only \"default\" and \"none\" "
					"are passed to an OCI runtime", spec->seccomp_profile);
	struct seccomp_opts so = {.profile = "default"};
	json_t *sc = seccomp_default_oci(&so, err);
	if (!sc)
		return -1;
	cfg->seccomp_json = json_dumps(sc, JSON_COMPACT);
	json_decref(sc);
	return 0;
}

void oci_config_free(struct oci_config *cfg)
{
	free(cfg->name);
	free(cfg->cgroup_name);
	free(cfg->workdir);
	env_free(cfg->env);
	free(cfg->rootfs);
	for (size_t i = 0; i < cfg->n_layers; i++)
		free(cfg->layers[i]);
	free(cfg->layers);
	free(cfg->image_ref);
	for (size_t i = 0; i < cfg->n_mounts; i++) {
		free(cfg->mounts[i].source);
		free(cfg->mounts[i].target);
	}
	free(cfg->mounts);
	free(cfg->netns_path);
	free(cfg->seccomp_json);
	memset(cfg, 0, sizeof(*cfg));
}

/* ------------------------------------------------------------- config.json */

static json_t *strs(const char *const *v)
{
	json_t *a = json_array();
	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

static json_t *mount_json(const char *dest, const char *type, const char *source,
			  const char *const *opts)
{
	return json_pack("{s:s, s:s, s:s, s:o}", "destination", dest, "type", type, "source",
			 source, "options", strs(opts));
}

/* /proc, /dev and its friends, as every runtime's default: the kernel's own. */
static void base_mounts(json_t *m)
{
	static const char *const proc[] = {"nosuid", "noexec", "nodev", NULL};
	static const char *const dev[] = {"nosuid", "strictatime", "mode=755", "size=65536k",
					  NULL};
	static const char *const pts[] = {"nosuid", "noexec", "newinstance", "ptmxmode=0666",
					  "mode=0620", NULL};
	static const char *const shm[] = {"nosuid", "noexec", "nodev", "mode=1777",
					  "size=65536k", NULL};
	static const char *const mq[] = {"nosuid", "noexec", "nodev", NULL};
	static const char *const sys[] = {"nosuid", "noexec", "nodev", "ro", NULL};
	json_array_append_new(m, mount_json("/proc", "proc", "proc", proc));
	json_array_append_new(m, mount_json("/dev", "tmpfs", "tmpfs", dev));
	json_array_append_new(m, mount_json("/dev/pts", "devpts", "devpts", pts));
	json_array_append_new(m, mount_json("/dev/shm", "tmpfs", "shm", shm));
	json_array_append_new(m, mount_json("/dev/mqueue", "mqueue", "mqueue", mq));
	json_array_append_new(m, mount_json("/sys", "sysfs", "sysfs", sys));
}

static json_t *mounts_json(const struct oci_config *cfg)
{
	json_t *m = json_array();
	base_mounts(m);
	for (size_t i = 0; i < cfg->n_mounts; i++) {
		const struct oci_mount *o = &cfg->mounts[i];
		if (o->tmpfs) {
			char size[64], owner[64];
			snprintf(size, sizeof(size), "size=%" PRIu64, o->tmpfs_bytes);
			snprintf(owner, sizeof(owner), "uid=%u,gid=%u", (unsigned)cfg->uid,
				 (unsigned)cfg->gid);
			const char *opts[] = {"nosuid", "nodev", "mode=0700", size, owner, NULL};
			json_array_append_new(m, mount_json(o->target, "tmpfs", "tmpfs", opts));
			continue;
		}
		/* ro alone leaves a bind's submounts writable: rro makes the tree read-only */
		const char *ro[] = {"rbind", "ro", "rro", "nosuid", "nodev", NULL};
		const char *rw[] = {"rbind", "rw", "nosuid", "nodev", NULL};
		const char *const *opts = o->readonly ? ro : rw;
		json_array_append_new(m, mount_json(o->target, "bind", o->source, opts));
	}
	return m;
}

static json_t *rlimits_json(const agentd_limits *l)
{
	static const struct {
		int res;
		const char *name;
	} names[] = {{RLIMIT_CPU, "RLIMIT_CPU"},     {RLIMIT_NOFILE, "RLIMIT_NOFILE"},
		     {RLIMIT_FSIZE, "RLIMIT_FSIZE"}, {RLIMIT_CORE, "RLIMIT_CORE"},
		     {RLIMIT_NPROC, "RLIMIT_NPROC"}, {RLIMIT_AS, "RLIMIT_AS"}};
	struct rlimit_set rs;
	rlimit_prepare(l, &rs);
	json_t *a = json_array();
	for (int i = 0; i < rs.n; i++)
		for (size_t k = 0; k < ARRAY_SIZE(names); k++)
			if (names[k].res == rs.resource[i])
				json_array_append_new(
				    a, json_pack("{s:s, s:I, s:I}", "type", names[k].name, "hard",
						 (json_int_t)rs.value[i].rlim_max, "soft",
						 (json_int_t)rs.value[i].rlim_cur));
	return a;
}

static json_t *process_json(const struct oci_config *cfg, char *const *argv, char *const *envp,
			    const char *cwd, uid_t uid, gid_t gid)
{
	json_t *caps = json_object();
	static const char *const sets[] = {"bounding", "effective", "inheritable", "permitted",
					   "ambient"};
	for (size_t i = 0; i < ARRAY_SIZE(sets); i++)
		json_object_set_new(caps, sets[i], json_array());
	return json_pack("{s:b, s:{s:i, s:i}, s:o, s:o, s:s, s:o, s:o, s:b}", "terminal", 0,
			 "user", "uid", (int)uid, "gid", (int)gid, "args",
			 strs((const char *const *)argv), "env", strs((const char *const *)envp),
			 "cwd", cwd, "capabilities", caps,
			 "rlimits", rlimits_json(cfg->limits), "noNewPrivileges", 1);
}

/* Every device denied but the standard ones a runtime creates in /dev. */
static json_t *devices_json(void)
{
	json_t *d = json_array();
	json_array_append_new(d, json_pack("{s:b, s:s}", "allow", 0, "access", "rwm"));
	static const struct {
		int major, minor;
	} std[] = {{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 2}, {136, -1}};
	for (size_t i = 0; i < ARRAY_SIZE(std); i++) {
		json_t *e = json_pack("{s:b, s:s, s:i, s:s}", "allow", 1, "type", "c", "major",
				      std[i].major, "access", "rwm");
		if (std[i].minor >= 0)
			json_object_set_new(e, "minor", json_integer(std[i].minor));
		json_array_append_new(d, e);
	}
	return d;
}

static json_t *resources_json(const agentd_limits *l)
{
	json_t *r = json_object();
	json_object_set_new(r, "devices", devices_json());
	if (l->max_memory_bytes)
		/* swap = memory: the memory+swap limit equals the memory limit, no swap. */
		json_object_set_new(r, "memory",
				    json_pack("{s:I, s:I}", "limit",
					      (json_int_t)l->max_memory_bytes, "swap",
					      (json_int_t)l->max_memory_bytes));
	if (l->max_processes)
		json_object_set_new(r, "pids",
				    json_pack("{s:I}", "limit", (json_int_t)l->max_processes));
	json_t *cpu = json_object();
	if (l->cpu_weight)
		/* v1 shares from the v2 weight (1..10000 -> 2..262144), as systemd maps them */
		json_object_set_new(cpu, "shares",
				    json_integer((json_int_t)l->cpu_weight * 1024 / 100));
	if (l->cpu_quota_pct) {
		json_object_set_new(cpu, "period", json_integer(100000));
		json_object_set_new(cpu, "quota",
				    json_integer((json_int_t)l->cpu_quota_pct * 1000));
	}
	if (json_object_size(cpu))
		json_object_set_new(r, "cpu", cpu);
	else
		json_decref(cpu);
	return r;
}

static json_t *linux_json(const struct oci_config *cfg, agentd_error *err)
{
	static const char *const masked[] = {
	    "/proc/acpi",	"/proc/asound",	    "/proc/kcore",	"/proc/keys",
	    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
	    "/proc/scsi",	"/sys/firmware",    "/sys/kernel",	"/proc/sysrq-trigger",
	    NULL};
	static const char *const readonly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
					       NULL};
	json_t *ns = json_array();
	static const char *const types[] = {"pid", "ipc", "uts", "mount", "cgroup"};
	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		json_array_append_new(ns, json_pack("{s:s}", "type", types[i]));
	if (cfg->netns_path)
		json_array_append_new(ns, json_pack("{s:s, s:s}", "type", "network", "path",
						    cfg->netns_path));
	/* As agentd's own cgroups: agentd/<name> at the top of every hierarchy. */
	char path[128];
	snprintf(path, sizeof(path), "/agentd/%s", cfg->cgroup_name);
	json_t *l = json_pack("{s:o, s:s, s:o, s:o, s:o}", "namespaces", ns, "cgroupsPath", path,
			      "resources", resources_json(cfg->limits), "maskedPaths",
			      strs(masked), "readonlyPaths", strs(readonly));
	if (cfg->seccomp_json) {
		json_error_t je;
		json_t *sc = json_loads(cfg->seccomp_json, 0, &je);
		if (!sc) {
			json_decref(l);
			agentd_error_set(err, EINVAL, "seccomp JSON: %s", je.text);
			return NULL;
		}
		json_object_set_new(l, "seccomp", sc);
	}
	return l;
}

char *oci_config_json(const struct oci_config *cfg, char *const *init_argv, agentd_error *err)
{
	json_t *lx = linux_json(cfg, err);
	if (!lx)
		return NULL;
	json_t *root = json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}", "ociVersion", "1.0.2-dev",
				 "process",
				 process_json(cfg, init_argv, cfg->env, "/", cfg->uid, cfg->gid), "root", "path",
				 cfg->rootfs ? cfg->rootfs : "rootfs", "readonly", !cfg->writable_root,
				 "hostname",
				 "sandbox", "mounts", mounts_json(cfg), "linux", lx);
	char *s = json_dumps(root, JSON_INDENT(1));
	json_decref(root);
	if (!s)
		agentd_error_set(err, ENOMEM, "config.json");
	return s;
}

char *oci_process_json(const struct oci_config *cfg, const struct oci_exec *x, agentd_error *err)
{
	json_t *p = process_json(cfg, x->argv, x->envp, x->cwd, x->uid, x->gid);
	char *s = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	if (!s)
		agentd_error_set(err, ENOMEM, "process.json");
	return s;
}
