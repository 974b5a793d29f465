/* floor.c: agentd's hardening as the floor of every OCI container: a config asking for more
 * is refused naming its field, unless the operator's file (never the pod) allows it. */
#include "lib/runtime/runtime.h"
#include "lib/host/host.h"

#include "lib/backends/backends.h"
#include "lib/net/net.h"

#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>

#define OPERATOR_MAX_BYTES (64u << 10)
#define CAP_BIT(c) (1ull << (c))

/* docker's and podman's default set (moby's defaultCapabilities, containers.conf's
 * default_capabilities): what a container gets inside its own user namespace. */
static const uint64_t floor_caps =
	CAP_BIT(CAP_CHOWN) | CAP_BIT(CAP_DAC_OVERRIDE) | CAP_BIT(CAP_FSETID) |
	CAP_BIT(CAP_FOWNER) | CAP_BIT(CAP_MKNOD) | CAP_BIT(CAP_NET_RAW) | CAP_BIT(CAP_SETGID) |
	CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SETFCAP) | CAP_BIT(CAP_SETPCAP) |
	CAP_BIT(CAP_NET_BIND_SERVICE) | CAP_BIT(CAP_SYS_CHROOT) | CAP_BIT(CAP_KILL) |
	CAP_BIT(CAP_AUDIT_WRITE);

/* agentd's masks (as its container backend's /proc, plus docker's /sys ones), added to the
 * config's own. */
static const char *const floor_masked[] = {
	"/proc/acpi",	     "/proc/asound",	 "/proc/kcore",	      "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
	"/proc/scsi",	     "/proc/kallsyms",	 "/sys/firmware",     "/sys/devices/virtual/powercap",
	"/sys/kernel/debug", "/sys/kernel/security",
};
static const char *const floor_readonly[] = {"/proc/bus", "/proc/fs", "/proc/irq",
					     "/proc/sys", "/proc/sysrq-trigger"};

/* ---------------------------------------------------------------- the operator's file */
static int allow_from_json(json_t *o, const char *where, struct ocirt_allow *a,
			   agentd_error *err)
{
	static const struct {
		const char *key;
		size_t off;
	} flags[] = {
		{"devices", offsetof(struct ocirt_allow, devices)},
		{"host_namespaces", offsetof(struct ocirt_allow, host_namespaces)},
		{"no_seccomp", offsetof(struct ocirt_allow, no_seccomp)},
		{"hooks", offsetof(struct ocirt_allow, hooks)},
		{"sysctl", offsetof(struct ocirt_allow, sysctl)},
		{"privileged_mounts", offsetof(struct ocirt_allow, privileged_mounts)},
		{"host_root", offsetof(struct ocirt_allow, host_root)},
	};
	const char *k;
	json_t *v;
	if (!json_is_object(o))
		return agentd_error_set(err, EINVAL, "%s: expected an object", where);
	json_object_foreach(o, k, v) {
		bool known = false;
		for (size_t i = 0; i < ARRAY_SIZE(flags) && !known; i++) {
			if (strcmp(k, flags[i].key))
				continue;
			if (!json_is_boolean(v))
				return agentd_error_set(err, EINVAL, "%s.%s: expected true or false",
							where, k);
			*(bool *)((char *)a + flags[i].off) |= json_is_true(v);
			known = true;
		}
		if (known)
			continue;
		if (strcmp(k, "capabilities")) {
			char q[96];
			quote_text(q, sizeof(q), k);
			return agentd_error_set(err, EINVAL, "%s: %s: unknown allowance", where, q);
		}
		size_t i;
		json_t *c;
		if (!json_is_array(v))
			return agentd_error_set(err, EINVAL, "%s.capabilities: expected an array",
						where);
		json_array_foreach(v, i, c) {
			int n = json_is_string(c) ? ocirt_cap_from_name(json_string_value(c)) : -1;
			if (n < 0)
				return agentd_error_set(err, EINVAL,
							"%s.capabilities[%zu]: unknown capability",
							where, i);
			a->caps |= CAP_BIT(n);
		}
	}
	return 0;
}

/* The operator's file: root's, not writable by group or others, nor its directory (fail
 * closed: a file anyone could have written allows nothing, it stops the container). */
static json_t *operator_file_load(const char *path, bool must_exist, agentd_error *err)
{
	const char *slash = strrchr(path, '/');
	if (path[0] != '/' || !slash[1]) {
		agentd_error_set(err, EINVAL, "operator file %s: expected an absolute path", path);
		return NULL;
	}
	_cleanup_free_ char *dir = slash == path ? xstrdup("/") : strndup(path, (size_t)(slash - path));
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int fd =
		dfd < 0 ? -1 : openat(dfd, slash + 1, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT && !must_exist)
			return json_object();
		agentd_error_errno(err, errno, "operator file %s", path);
		return NULL;
	}
	struct stat ds, st;
	if (fstat(dfd, &ds) < 0 || fstat(fd, &st) < 0) {
		agentd_error_errno(err, errno, "operator file %s", path);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) || ds.st_uid != 0 ||
	    (ds.st_mode & 022)) {
		agentd_error_set(err, EPERM,
				 "operator file %s: must be a regular file owned by root, neither it "
				 "nor its directory writable by group or others",
				 path);
		return NULL;
	}
	if ((uint64_t)st.st_size > OPERATOR_MAX_BYTES) {
		agentd_error_set(err, EFBIG, "operator file %s: larger than %u bytes", path,
				 OPERATOR_MAX_BYTES);
		return NULL;
	}
	json_error_t jerr;
	json_t *doc = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		text_scrub_line(jerr.text);
		agentd_error_set(err, EINVAL, "operator file %s: line %d column %d: %s", path,
				 jerr.line, jerr.column, jerr.text);
	}
	return doc;
}

int ocirt_allow_load(const struct ocirt_config *c, struct ocirt_allow *out, agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	const char *env = getenv("AGENTD_RUNTIME_CONFIG");
	const char *path = env && *env ? env : OCIRT_OPERATOR_FILE;
	json_t *doc = operator_file_load(path, env && *env, err);
	if (!doc)
		return -1;
	int r = 0;
	const char *k;
	json_t *v, *annotation = NULL;
	json_object_foreach(doc, k, v) {
		if (!strcmp(k, "allow")) {
			r = allow_from_json(v, "allow", out, err);
		} else if (!strcmp(k, "annotation")) {
			if (!json_is_string(v))
				r = agentd_error_set(err, EINVAL, "annotation: expected a string");
			annotation = v;
		} else if (strcmp(k, "comment")) {
			char q[96];
			quote_text(q, sizeof(q), k);
			r = agentd_error_set(err, EINVAL, "%s: unknown key", q);
		}
		if (r < 0)
			break;
	}
	/* The annotation the operator names (set on the RuntimeClass's side: containerd passes
	 * a pod's annotations only where its runtime entry lists them) adds allowances. */
	const char *text = r == 0 && annotation && c
				   ? kvv_get(&c->annotations, json_string_value(annotation))
				   : NULL;
	if (text) {
		json_error_t jerr;
		json_t *a = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
		char where[160];
		snprintf(where, sizeof(where), "annotations[\"%.100s\"]",
			 json_string_value(annotation));
		if (!a) {
			text_scrub_line(jerr.text);
			r = agentd_error_set(err, EINVAL, "%s: not JSON: %s", where, jerr.text);
		} else {
			r = allow_from_json(a, where, out, err);
		}
		json_decref(a);
	}
	json_decref(doc);
	return r < 0 ? agentd_error_prefix(err, "operator file %s", path) : 0;
}

/* ---------------------------------------------------------------- the checks */
static int refuse(agentd_error *err, const char *allowance, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(agentd_error *err, const char *allowance, const char *fmt, ...)
{
	char msg[AGENTD_ERROR_MAX / 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	agentd_error_set(err, EPERM, "%s: refused by agentd's floor (the operator may allow it: "
				     "\"allow\": {\"%s\": ...} in %s)",
			 msg, allowance, OCIRT_OPERATOR_FILE);
	return -EPERM;
}

/* Is the namespace at path one of the host's: pid 1's, or the runtime's own (the engine's,
 * which runs in the host's; also the reference where pid 1's cannot be read)? */
static bool ns_is_host(const char *path, enum ocirt_ns ns)
{
	static const char *const proc_names[OCIRT_NS_COUNT] = {
		[OCIRT_NS_PID] = "pid",	    [OCIRT_NS_NET] = "net",	  [OCIRT_NS_IPC] = "ipc",
		[OCIRT_NS_UTS] = "uts",	    [OCIRT_NS_MOUNT] = "mnt",	  [OCIRT_NS_USER] = "user",
		[OCIRT_NS_CGROUP] = "cgroup", [OCIRT_NS_TIME] = "time",
	};
	char host[64], self[64];
	struct stat h, s, b;
	snprintf(host, sizeof(host), "/proc/1/ns/%s", proc_names[ns]);
	snprintf(self, sizeof(self), "/proc/self/ns/%s", proc_names[ns]);
	bool have_h = stat(host, &h) == 0, have_s = stat(self, &s) == 0;
	if (!have_h && !have_s)
		return true;	/* cannot tell: treated as the host's */
	if (stat(path, &b) < 0)
		return false;	/* the join fails later, naming the path */
	return (have_h && h.st_dev == b.st_dev && h.st_ino == b.st_ino) ||
	       (have_s && s.st_dev == b.st_dev && s.st_ino == b.st_ino);
}

static int check_namespaces(struct ocirt_config *c, const struct ocirt_allow *a,
			    agentd_error *err)
{
	static const enum ocirt_ns always_new[] = {OCIRT_NS_MOUNT, OCIRT_NS_PID, OCIRT_NS_IPC,
						   OCIRT_NS_UTS, OCIRT_NS_CGROUP};
	for (int ns = 0; ns < OCIRT_NS_COUNT; ns++)
		if (c->ns_path[ns] && ns_is_host(c->ns_path[ns], ns) && !a->host_namespaces)
			return refuse(err, "host_namespaces",
				      "linux.namespaces: %s namespace %s is the host's",
				      ocirt_ns_name(ns), c->ns_path[ns]);
	if (!c->ns_wanted[OCIRT_NS_NET] && !a->host_namespaces)
		return refuse(err, "host_namespaces",
			      "linux.namespaces: no network namespace (the host's network)");
	for (size_t i = 0; i < ARRAY_SIZE(always_new); i++)
		c->ns_wanted[always_new[i]] = true;
	return 0;
}

static int check_maps(const struct ocirt_idmap *m, size_t n, const char *key,
		      const struct ocirt_allow *a, agentd_error *err)
{
	for (size_t i = 0; i < n && !a->host_root; i++)
		if (m[i].host_id == 0)
			return refuse(err, "host_root", "linux.%s[%zu]: maps host id 0 (host root)",
				      key, i);
	return 0;
}

static int check_userns(struct ocirt_config *c, const struct ocirt_allow *a, agentd_error *err)
{
	if (c->ns_wanted[OCIRT_NS_USER]) {
		if (check_maps(c->uid_maps, c->n_uid_maps, "uidMappings", a, err) < 0 ||
		    check_maps(c->gid_maps, c->n_gid_maps, "gidMappings", a, err) < 0)
			return -EPERM;
		if (!c->ns_path[OCIRT_NS_USER] && (!c->n_uid_maps || !c->n_gid_maps))
			return agentd_error_set(err, EINVAL, "linux.uidMappings, linux.gidMappings: "
							     "required with a new user namespace");
		return 0;
	}
	/* None asked: container root must still never be host root. */
	c->ns_wanted[OCIRT_NS_USER] = true;
	c->userns_added = true;
	free(c->uid_maps);
	free(c->gid_maps);
	c->uid_maps = xmalloc(sizeof(*c->uid_maps));
	c->gid_maps = xmalloc(sizeof(*c->gid_maps));
	/* the range's first slot; create leases the container's own (userns.c) */
	struct host_id_pool range;
	ocirt_userns_pool(&range);
	c->uid_maps[0] = (struct ocirt_idmap){0, range.uid_base, OCIRT_USERNS_SIZE};
	c->gid_maps[0] = (struct ocirt_idmap){0, range.gid_base, OCIRT_USERNS_SIZE};
	c->n_uid_maps = c->n_gid_maps = 1;
	if (c->process.uid >= OCIRT_USERNS_SIZE || c->process.gid >= OCIRT_USERNS_SIZE)
		return agentd_error_set(err, EINVAL,
					"process.user: uid %u gid %u: above the %u ids of the user "
					"namespace agentd adds",
					(unsigned)c->process.uid, (unsigned)c->process.gid,
					OCIRT_USERNS_SIZE);
	return 0;
}

static int check_caps(const struct ocirt_process *p, const struct ocirt_allow *a,
		      agentd_error *err)
{
	static const char *const sets[] = {"bounding", "effective", "permitted", "inheritable",
					   "ambient"};
	const uint64_t masks[] = {p->cap_bounding, p->cap_effective, p->cap_permitted,
				  p->cap_inheritable, p->cap_ambient};
	for (size_t s = 0; s < ARRAY_SIZE(sets); s++) {
		uint64_t extra = masks[s] & ~(floor_caps | a->caps);
		if (!extra)
			continue;
		int cap = __builtin_ctzll(extra);
		return refuse(err, "capabilities", "process.capabilities.%s[%d]: %s", sets[s],
			      p->cap_pos[s][cap] - 1, ocirt_cap_name(cap));
	}
	return 0;
}

/* The default /dev agentd makes holds these: a config listing them asks for nothing more. */
static bool device_is_default(const struct ocirt_device *d)
{
	static const struct {
		const char *path;
		int64_t major, minor;
	} defaults[] = {{"/dev/null", 1, 3},	{"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
			{"/dev/random", 1, 8},	{"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
	for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
		if (d->type == 'c' && !strcmp(d->path, defaults[i].path) &&
		    d->major == defaults[i].major && d->minor == defaults[i].minor)
			return true;
	return false;
}

/* Host paths a bind must not expose: the kernel's views, the devices, the engines' sockets
 * (a docker.sock inside is root on the host), agentd's own configuration. */
static bool host_path_privileged(const char *real)
{
	static const char *const prefixes[] = {
		"/proc", "/sys", "/dev", "/boot", "/run/containerd", "/run/docker",
		"/var/run/docker", "/run/podman", "/run/crio", "/var/lib/docker",
		"/var/lib/containerd", "/var/lib/kubelet/pods", "/etc/agentd", "/run/agentd",
		"/var/lib/agentd",
	};
	if (!strcmp(real, "/"))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
		size_t n = strlen(prefixes[i]);
		if (!strncmp(real, prefixes[i], n) && (real[n] == '\0' || real[n] == '/'))
			return true;
	}
	return false;
}

static int check_mounts(const struct ocirt_config *c, const struct ocirt_allow *a,
			agentd_error *err)
{
	static const char *const fs_types[] = {"bind", "proc", "tmpfs", "sysfs", "devpts",
					       "mqueue", "cgroup", "cgroup2", NULL};
	for (size_t i = 0; i < c->n_mounts && !a->privileged_mounts; i++) {
		const struct ocirt_mount *m = &c->mounts[i];
		bool known = m->bind;
		for (size_t k = 0; fs_types[k] && !known && m->type; k++)
			known = !strcmp(m->type, fs_types[k]);
		if (!known)
			return refuse(err, "privileged_mounts", "mounts[%zu].type: %s at %s", i,
				      m->type, m->destination);
		if (m->propagation & MS_SHARED)
			return refuse(err, "privileged_mounts",
				      "mounts[%zu].options: shared propagation at %s", i,
				      m->destination);
		if (!m->bind)
			continue;
		char real[PATH_MAX];
		struct stat st;
		if (!realpath(m->source, real) || stat(real, &st) < 0)
			return agentd_error_errno(err, errno, "mounts[%zu].source: %s", i,
						  m->source);
		if (host_path_privileged(real) || S_ISSOCK(st.st_mode) || S_ISBLK(st.st_mode) ||
		    S_ISCHR(st.st_mode))
			return refuse(err, "privileged_mounts", "mounts[%zu].source: %s (%s)", i,
				      m->source,
				      S_ISSOCK(st.st_mode)			? "a socket"
				      : S_ISBLK(st.st_mode) || S_ISCHR(st.st_mode) ? "a device"
										: "a host system path");
	}
	if (c->rootfs_propagation && strstr(c->rootfs_propagation, "shared") &&
	    !a->privileged_mounts)
		return refuse(err, "privileged_mounts", "linux.rootfsPropagation: %s",
			      c->rootfs_propagation);
	return 0;
}

/* The sysctls a container's own namespaces hold (runc's validation: net.* needs a network
 * namespace of its own, the IPC ones an IPC namespace, which the floor forces). */
static bool sysctl_namespaced(const char *k)
{
	return !strncmp(k, "net.", 4) || !strncmp(k, "kernel.shm", 10) ||
	       !strncmp(k, "kernel.msg", 10) || !strcmp(k, "kernel.sem") ||
	       !strncmp(k, "fs.mqueue.", 10);
}

static int check_sysctls(const struct ocirt_config *c, const struct ocirt_allow *a,
			 agentd_error *err)
{
	for (size_t i = 0; i < c->sysctl.n; i++) {
		const char *k = c->sysctl.v[i].key;
		char q[96];
		quote_text(q, sizeof(q), k);
		/* written under /proc/sys with dots as slashes: never a way out of it */
		bool name_ok = *k && !strstr(k, "..") && k[0] != '.' && !strchr(k, '/');
		for (const char *p = k; name_ok && *p; p++)
			name_ok = a_alnum(*p) || *p == '.' || *p == '_' || *p == '-';
		if (!name_ok)
			return agentd_error_set(err, EINVAL, "linux.sysctl[%s]: not a sysctl name", q);
		if (!sysctl_namespaced(k) && !a->sysctl)
			return refuse(err, "sysctl", "linux.sysctl[%s]: not a namespaced sysctl", q);
		if (!strncmp(k, "net.", 4) && !a->sysctl && c->ns_path[OCIRT_NS_NET] &&
		    ns_is_host(c->ns_path[OCIRT_NS_NET], OCIRT_NS_NET))
			return refuse(err, "sysctl", "linux.sysctl[%s]: in the host's network "
						     "namespace", q);
	}
	return 0;
}

static bool apparmor_enabled(void)
{
	char buf[4] = "";
	_cleanup_close_ int fd = open("/sys/module/apparmor/parameters/enabled", O_RDONLY | O_CLOEXEC);
	return fd >= 0 && read(fd, buf, 1) == 1 && buf[0] == 'Y';
}

static void add_paths(agentd_strv *to, const char *const *paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strv_contains(to, paths[i]))
			strv_push(to, paths[i]);
}

static void env_set(char ***env, const agentd_kvv *vars)
{
	size_t n = 0;
	while (*env && (*env)[n])
		n++;
	*env = xrealloc(*env, (n + vars->n + 1) * sizeof(char *));
	for (size_t i = 0; i < vars->n; i++) {
		const char *k = vars->v[i].key;
		size_t klen = strlen(k), m = 0;
		while (m < n && !(!strncmp((*env)[m], k, klen) && (*env)[m][klen] == '='))
			m++;
		char *kv = xasprintf("%s=%s", k, vars->v[i].value);
		if (m < n)
			free((*env)[m]);
		else
			n++;
		(*env)[m] = kv;
	}
	(*env)[n] = NULL;
}

void ocirt_proxy_env(char ***env)
{
	agentd_kvv vars = {0};
	backend_proxy_env(&vars);	/* the container backend's variables */
	env_set(env, &vars);
	kvv_free(&vars);
}

/* issue 16: rt-egress. io.agentd.policy's "network": the same object as an agentd policy's
 * (docs/policy.md): "mode" "none" or "allowlist", "allow" only with "allowlist", each entry
 * checked by netpolicy.c (the proxy's own parser) with the policy's messages. "host" is the
 * engine's business (its --network host, which the floor refuses anyway). */
static int apply_network(struct ocirt_config *c, json_t *v, const char *where,
			 agentd_error *err)
{
	if (!json_is_object(v))
		return agentd_error_set(err, EINVAL, "%s.network: expected object", where);
	const char *mode = "none", *k;
	json_t *e, *allow = NULL;
	json_object_foreach(v, k, e) {
		char q[96];
		quote_text(q, sizeof(q), k);
		if (!strcmp(k, "mode")) {
			mode = json_string_value(e);
			if (!mode || (strcmp(mode, "none") && strcmp(mode, "allowlist")))
				return agentd_error_set(err, EINVAL,
							"%s.network.mode: expected one of \"none\", "
							"\"allowlist\" (the host's network is the "
							"engine's --network host)",
							where);
		} else if (!strcmp(k, "allow")) {
			if (!json_is_array(e))
				return agentd_error_set(err, EINVAL,
							"%s.network.allow: expected array of strings",
							where);
			allow = e;
		} else {
			return agentd_error_set(err, EINVAL, "%s.network.%s: unknown key", where, q);
		}
	}
	c->ns_wanted[OCIRT_NS_NET] = true;
	if (!strcmp(mode, "none")) {
		if (allow)
			return agentd_error_set(err, EINVAL,
						"%s.network.allow: only valid with mode \"allowlist\"",
						where);
		if (c->ns_path[OCIRT_NS_NET])
			return agentd_error_set(err, EPERM,
						"%s.network: mode none, but the config joins the network "
						"namespace %s (the engine's, with its interfaces)",
						where, c->ns_path[OCIRT_NS_NET]);
		return 0;
	}
	size_t i;
	json_array_foreach(allow, i, e) {
		const char *entry = json_string_value(e);
		const char *why = entry ? netpolicy_entry_parse(entry, NULL) : "expected string";
		if (why) {
			char q[128];
			quote_text(q, sizeof(q), entry ? entry : "");
			return agentd_error_set(err, EINVAL, "%s.network.allow[%zu]: invalid entry %s: %s",
						where, i, q, why);
		}
		strv_push(&c->egress_allow, entry);
	}
	/* the container's only way out: agentd's proxy at 127.0.0.1:3128 inside (create) */
	c->egress = true;
	ocirt_proxy_env(&c->process.env);
	return 0;
}

/* io.agentd.policy: what OCI cannot say. Labels are recorded for the audit (and go with each
 * egress audit record); the network as an agentd policy's. */
static int apply_agentd_policy(struct ocirt_config *c, agentd_error *err)
{
	static const char *const where = "annotations[\"io.agentd.policy\"]";
	const char *k;
	json_t *v;
	json_object_foreach(c->agentd_policy, k, v) {
		char q[96];
		quote_text(q, sizeof(q), k);
		if (!strcmp(k, "labels")) {
			const char *lk;
			json_t *lv;
			if (!json_is_object(v))
				return agentd_error_set(err, EINVAL, "%s.labels: expected an object",
							where);
			json_object_foreach(v, lk, lv) {
				if (!json_is_string(lv))
					return agentd_error_set(err, EINVAL,
								"%s.labels: expected strings", where);
				kvv_set(&c->audit_labels, lk, json_string_value(lv));
			}
		} else if (!strcmp(k, "network")) {
			if (apply_network(c, v, where, err) < 0)
				return -1;
		} else {
			return agentd_error_set(err, EINVAL,
						"%s.%s: not supported by the OCI runtime (labels, "
						"network)",
						where, q);
		}
	}
	return 0;
}

static int floor_apply(struct ocirt_config *c, const struct ocirt_allow *allow,
		       agentd_error *err)
{
	const struct ocirt_allow none = {0};
	const struct ocirt_allow *a = allow ? allow : &none;
	int r;
	if ((r = check_namespaces(c, a, err)) < 0 || (r = check_userns(c, a, err)) < 0 ||
	    (r = check_caps(&c->process, a, err)) < 0 || (r = check_mounts(c, a, err)) < 0 ||
	    (r = check_sysctls(c, a, err)) < 0)
		return -1;
	for (size_t i = 0; i < c->n_devices && !a->devices; i++)
		if (!device_is_default(&c->devices[i]))
			return refuse(err, "devices", "linux.devices[%zu]: %s (%c %lld:%lld)", i,
				      c->devices[i].path, c->devices[i].type,
				      (long long)c->devices[i].major, (long long)c->devices[i].minor);
	/* the device cgroup (v1) denies all but the default /dev's nodes whether or not the
	 * config's resources say so (runc's default too); extra devices, where allowed, keep
	 * the config's rules */
	if (!a->devices)
		c->resources.devices_deny_all = true;
	if (c->has_hooks && !a->hooks)
		return refuse(err, "hooks", "hooks: run on the host as root");
	/* issue 16: rt-fix. Run: prestart and createRuntime (create, on the host); the others
	 * are not, so a config that needs them is refused rather than run without them */
	static const struct {
		enum ocirt_hook_kind kind;
		const char *name;
	} unrun[] = {{OCIRT_HOOK_CREATE_CONTAINER, "createContainer"},
		     {OCIRT_HOOK_START_CONTAINER, "startContainer"},
		     {OCIRT_HOOK_POSTSTART, "poststart"},
		     {OCIRT_HOOK_POSTSTOP, "poststop"}};
	for (size_t i = 0; i < ARRAY_SIZE(unrun); i++)
		if (c->n_hooks[unrun[i].kind])
			return agentd_error_set(err, ENOTSUP,
						"hooks.%s: not supported by agentd-runc (only "
						"prestart and createRuntime hooks are run)",
						unrun[i].name);
	/* as runc: a profile means nothing where AppArmor is off; where it is on, agentd does
	 * not load it, so the container is refused rather than run without it */
	const char *aa = c->process.apparmor_profile;
	if (aa && *aa && strcmp(aa, "unconfined") && apparmor_enabled()) {
		char q[96];
		quote_text(q, sizeof(q), aa);
		return agentd_error_set(err, ENOTSUP,
					"process.apparmorProfile: %s: AppArmor profiles are not "
					"applied by agentd's runtime",
					q);
	}
	if (c->process.selinux_label && *c->process.selinux_label)
		return agentd_error_set(err, ENOTSUP,
					"process.selinuxLabel: SELinux labels are not supported");
	if (c->agentd_policy && apply_agentd_policy(c, err) < 0)
		return -1;
	c->process.no_new_privileges = true;
	(void)ocirt_floor_oom_score_adj(&c->process);
	add_paths(&c->masked_paths, floor_masked, ARRAY_SIZE(floor_masked));
	add_paths(&c->readonly_paths, floor_readonly, ARRAY_SIZE(floor_readonly));
	c->floor_seccomp = !a->no_seccomp;
	return 0;
}

/* issue 16: rt-gaps. The runtime writes oom_score_adj as host root (runc writes the value
 * as given), but an untrusted container's processes are never made safer from the OOM
 * killer than the host's own: never below 0. */
int ocirt_floor_oom_score_adj(struct ocirt_process *p)
{
	int asked = p->has_oom_score_adj && p->oom_score_adj < 0 ? p->oom_score_adj : 0;
	if (asked)
		p->oom_score_adj = 0;
	return asked;
}

/* 0, or -errno of the refusal (-EPERM: the floor; -EINVAL: a config that cannot be). */
int ocirt_floor_apply(struct ocirt_config *c, const struct ocirt_allow *allow,
		      agentd_error *err)
{
	agentd_error local = {0};
	agentd_error *e = err ? err : &local;
	e->code = 0;
	if (floor_apply(c, allow, e) == 0)
		return 0;
	return -(e->code > 0 ? e->code : EPERM);
}
