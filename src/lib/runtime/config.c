/* config.c: a bundle's config.json (OCI runtime-spec 1.x) into struct ocirt_config: read
 * bounded and without following a link, each field checked, every error naming its JSON path. */
#include "lib/runtime/runtime.h"

#include <fcntl.h>
#include <jansson.h>
#include <linux/capability.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/stat.h>

#define CONFIG_MAX_BYTES (4u << 20)
#define JP_MAX 256
#define GROUPS_MAX 65536

/* Capability names, by number (CAP_LAST_CAP of Linux 6.x is 40). */
static const char *const cap_names[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};

const char *ocirt_cap_name(int cap)
{
	return cap >= 0 && (size_t)cap < ARRAY_SIZE(cap_names) ? cap_names[cap] : "CAP_?";
}

int ocirt_cap_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
		if (!strcmp(name, cap_names[i]))
			return (int)i;
	return -1;
}

static int jfail(agentd_error *err, const char *jp, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void jp_key(char out[JP_MAX], const char *parent, const char *key);
static int jfail(agentd_error *err, const char *jp, const char *fmt, ...)
{
	char msg[AGENTD_ERROR_MAX / 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return agentd_error_set(err, EINVAL, "%s: %s", jp, msg);
}

/* jfail at parent.key */
#define jfail_at(err, parent, key, ...)                                                   \
	({                                                                                \
		char jp_[JP_MAX];                                                         \
		jp_key(jp_, parent, key);                                                 \
		jfail(err, jp_, __VA_ARGS__);                                             \
	})

/* The path of key, or of element i, under parent. */
static void jp_key(char out[JP_MAX], const char *parent, const char *key)
{
	json_path_key(out, JP_MAX, parent, key);
}
static void jp_idx(char out[JP_MAX], const char *parent, size_t i)
{
	snprintf(out, JP_MAX, "%s[%zu]", parent, i);
}

/* A string of v (NULL when absent): copied to *out; no NUL inside (jansson allows "\u0000"). */
static int get_str(json_t *obj, const char *key, const char *parent, char **out,
		   agentd_error *err)
{
	char jp[JP_MAX];
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return 0;
	jp_key(jp, parent, key);
	if (!json_is_string(v))
		return jfail(err, jp, "expected a string");
	if (strlen(json_string_value(v)) != json_string_length(v))
		return jfail(err, jp, "contains a NUL byte");
	free(*out);
	*out = xstrdup(json_string_value(v));
	return 0;
}

static int get_bool(json_t *obj, const char *key, const char *parent, bool *out,
		    agentd_error *err)
{
	char jp[JP_MAX];
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return 0;
	jp_key(jp, parent, key);
	if (!json_is_boolean(v))
		return jfail(err, jp, "expected true or false");
	*out = json_is_true(v);
	return 0;
}

/* An integer in [min, max] (present: 1, absent: 0). */
static int get_int(json_t *obj, const char *key, const char *parent, json_int_t min,
		   json_int_t max, int64_t *out, agentd_error *err)
{
	char jp[JP_MAX];
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return 0;
	jp_key(jp, parent, key);
	if (!json_is_integer(v))
		return jfail(err, jp, "expected an integer");
	int64_t n = json_integer_value(v);
	if (n < min || n > max)
		return jfail(err, jp, "%lld is out of range %lld..%lld", (long long)n,
			     (long long)min, (long long)max);
	*out = n;
	return 1;
}

/* The same, required. */
static int get_int_req(json_t *obj, const char *key, const char *parent, json_int_t min,
		       json_int_t max, int64_t *out, agentd_error *err)
{
	int r = get_int(obj, key, parent, min, max, out, err);
	if (r == 0) {
		char jp[JP_MAX];
		jp_key(jp, parent, key);
		return jfail(err, jp, "required");
	}
	return r < 0 ? -1 : 0;
}

/* An object or array member of the expected kind (NULL when absent). */
static int get_kind(json_t *obj, const char *key, const char *parent, json_type kind,
		    json_t **out, agentd_error *err)
{
	char jp[JP_MAX];
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	jp_key(jp, parent, key);
	if (json_typeof(v) != kind)
		return jfail(err, jp, "expected %s", kind == JSON_ARRAY ? "an array" : "an object");
	*out = v;
	return 0;
}

/* The array at parent.key whose elements must all be objects (each named when it is not),
 * with *items calloc'd of elem bytes per element (NULL when there are none). */
static int get_object_array(json_t *obj, const char *key, const char *parent, size_t elem,
			    json_t **arr, void **items, agentd_error *err)
{
	char jp[JP_MAX], ip[JP_MAX];
	json_t *v;
	size_t i;
	*items = NULL;
	if (get_kind(obj, key, parent, JSON_ARRAY, arr, err) < 0)
		return -1;
	jp_key(jp, parent, key);
	json_array_foreach(*arr, i, v) {
		jp_idx(ip, jp, i);
		if (!json_is_object(v))
			return jfail(err, ip, "expected an object");
	}
	*items = json_array_size(*arr) ? xcalloc(json_array_size(*arr), elem) : NULL;
	return 0;
}

/* An array of strings into a NULL-terminated vector (each without NUL; with_eq: "K=V"). */
static int get_strarr(json_t *obj, const char *key, const char *parent, bool with_eq,
		      agentd_strv *out, agentd_error *err)
{
	char jp[JP_MAX], ip[JP_MAX];
	json_t *arr, *v;
	size_t i;
	if (get_kind(obj, key, parent, JSON_ARRAY, &arr, err) < 0)
		return -1;
	jp_key(jp, parent, key);
	json_array_foreach(arr, i, v) {
		jp_idx(ip, jp, i);
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
			return jfail(err, ip, "expected a string without NUL bytes");
		if (with_eq && !strchr(json_string_value(v), '='))
			return jfail(err, ip, "expected KEY=VALUE");
		strv_push(out, json_string_value(v));
	}
	return 0;
}

static char **strv_take(agentd_strv *sv)
{
	if (!sv->v)
		sv->v = xcalloc(1, sizeof(char *));
	char **v = sv->v;
	sv->v = NULL;
	sv->n = 0;
	return v;
}

static void argv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* ---------------------------------------------------------------- process */
static const struct {
	const char *name;
	int resource;
} rlimit_names[] = {
	{"RLIMIT_AS", RLIMIT_AS},	    {"RLIMIT_CORE", RLIMIT_CORE},
	{"RLIMIT_CPU", RLIMIT_CPU},	    {"RLIMIT_DATA", RLIMIT_DATA},
	{"RLIMIT_FSIZE", RLIMIT_FSIZE},	    {"RLIMIT_LOCKS", RLIMIT_LOCKS},
	{"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
	{"RLIMIT_NICE", RLIMIT_NICE},	    {"RLIMIT_NOFILE", RLIMIT_NOFILE},
	{"RLIMIT_NPROC", RLIMIT_NPROC},	    {"RLIMIT_RSS", RLIMIT_RSS},
	{"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME},
	{"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING}, {"RLIMIT_STACK", RLIMIT_STACK},
};

static int parse_rlimits(json_t *proc, struct ocirt_process *p, agentd_error *err)
{
	char ip[JP_MAX];
	json_t *arr, *v;
	size_t i;
	if (get_kind(proc, "rlimits", "process", JSON_ARRAY, &arr, err) < 0)
		return -1;
	json_array_foreach(arr, i, v) {
		jp_idx(ip, "process.rlimits", i);
		if (!json_is_object(v))
			return jfail(err, ip, "expected an object");
		_cleanup_free_ char *type = NULL;
		int64_t hard = 0, soft = 0;
		if (get_str(v, "type", ip, &type, err) < 0)
			return -1;
		if (!type)
			return jfail_at(err, ip, "type", "required");
		int res = -1;
		for (size_t k = 0; k < ARRAY_SIZE(rlimit_names); k++)
			if (!strcmp(type, rlimit_names[k].name))
				res = rlimit_names[k].resource;
		if (res < 0) {
			char q[96];
			quote_text(q, sizeof(q), type);
			return jfail_at(err, ip, "type", "%s: unknown rlimit", q);
		}
		for (int k = 0; k < p->n_rlimits; k++)
			if (p->rlimits[k].resource == res)
				return jfail(err, ip, "type %s: given twice", type);
		/* RLIM_INFINITY is UINT64_MAX; jansson's integers stop at INT64_MAX, which the
		 * engines use for "unlimited" as well. */
		if (get_int_req(v, "hard", ip, 0, INT64_MAX, &hard, err) < 0 ||
		    get_int_req(v, "soft", ip, 0, INT64_MAX, &soft, err) < 0)
			return -1;
		if (soft > hard)
			return jfail(err, ip, "soft %lld is above hard %lld", (long long)soft,
				     (long long)hard);
		struct ocirt_rlimit *r = &p->rlimits[p->n_rlimits++];
		r->resource = res;
		r->value.rlim_cur = soft == INT64_MAX ? RLIM_INFINITY : (rlim_t)soft;
		r->value.rlim_max = hard == INT64_MAX ? RLIM_INFINITY : (rlim_t)hard;
	}
	return 0;
}

static int parse_caps(json_t *proc, struct ocirt_process *p, agentd_error *err)
{
	static const char *const sets[] = {"bounding", "effective", "permitted", "inheritable",
					   "ambient"};
	uint64_t *masks[] = {&p->cap_bounding, &p->cap_effective, &p->cap_permitted,
			     &p->cap_inheritable, &p->cap_ambient};
	char jp[JP_MAX], ip[JP_MAX];
	json_t *caps, *arr, *v;
	size_t i;
	if (get_kind(proc, "capabilities", "process", JSON_OBJECT, &caps, err) < 0)
		return -1;
	for (size_t s = 0; caps && s < ARRAY_SIZE(sets); s++) {
		if (get_kind(caps, sets[s], "process.capabilities", JSON_ARRAY, &arr, err) < 0)
			return -1;
		jp_key(jp, "process.capabilities", sets[s]);
		json_array_foreach(arr, i, v) {
			jp_idx(ip, jp, i);
			if (!json_is_string(v))
				return jfail(err, ip, "expected a string");
			int c = ocirt_cap_from_name(json_string_value(v));
			if (c < 0) {
				char q[96];
				quote_text(q, sizeof(q), json_string_value(v));
				return jfail(err, ip, "%s: unknown capability", q);
			}
			*masks[s] |= 1ull << c;
			if (!p->cap_pos[s][c])
				p->cap_pos[s][c] = (uint8_t)(i < 254 ? i + 1 : 255);
		}
	}
	return 0;
}

static int parse_user(json_t *proc, struct ocirt_process *p, agentd_error *err)
{
	char ip[JP_MAX];
	json_t *user, *arr, *v;
	int64_t n;
	size_t i;
	if (get_kind(proc, "user", "process", JSON_OBJECT, &user, err) < 0)
		return -1;
	if (!user)
		return jfail(err, "process.user", "required");
	if ((n = 0, get_int(user, "uid", "process.user", 0, UINT32_MAX - 1, &n, err)) < 0)
		return -1;
	p->uid = (uid_t)n;
	if ((n = 0, get_int(user, "gid", "process.user", 0, UINT32_MAX - 1, &n, err)) < 0)
		return -1;
	p->gid = (gid_t)n;
	int has = get_int(user, "umask", "process.user", 0, 0777, &n, err);
	if (has < 0)
		return -1;
	p->umask = has ? (mode_t)n : (mode_t)-1;
	if (get_kind(user, "additionalGids", "process.user", JSON_ARRAY, &arr, err) < 0)
		return -1;
	if (json_array_size(arr) > GROUPS_MAX)
		return jfail(err, "process.user.additionalGids", "more than %d groups", GROUPS_MAX);
	p->additional_gids = json_array_size(arr) ? xcalloc(json_array_size(arr), sizeof(gid_t))
						  : NULL;
	json_array_foreach(arr, i, v) {
		jp_idx(ip, "process.user.additionalGids", i);
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) >= UINT32_MAX)
			return jfail(err, ip, "expected a gid");
		p->additional_gids[p->n_additional_gids++] = (gid_t)json_integer_value(v);
	}
	return 0;
}

static int parse_process(json_t *proc, struct ocirt_process *p, agentd_error *err)
{
	agentd_strv args = {0}, env = {0};
	json_t *cs;
	int64_t n;

	p->umask = (mode_t)-1;
	if (!json_is_object(proc))
		return jfail(err, "process", "expected an object");
	if (get_bool(proc, "terminal", "process", &p->terminal, err) < 0 ||
	    get_kind(proc, "consoleSize", "process", JSON_OBJECT, &cs, err) < 0)
		return -1;
	if (cs) {
		if ((n = 0, get_int(cs, "height", "process.consoleSize", 0, 65535, &n, err)) < 0)
			return -1;
		p->console_rows = (unsigned)n;
		if ((n = 0, get_int(cs, "width", "process.consoleSize", 0, 65535, &n, err)) < 0)
			return -1;
		p->console_cols = (unsigned)n;
	}
	if (parse_user(proc, p, err) < 0)
		return -1;
	int r = get_strarr(proc, "args", "process", false, &args, err);
	p->args = strv_take(&args);
	if (r < 0)
		return -1;
	if (!p->args[0])
		return jfail(err, "process.args", "required: at least the program");
	r = get_strarr(proc, "env", "process", true, &env, err);
	p->env = strv_take(&env);
	if (r < 0 || get_str(proc, "cwd", "process", &p->cwd, err) < 0)
		return -1;
	if (!p->cwd || p->cwd[0] != '/')
		return jfail(err, "process.cwd", "required: an absolute path");
	if (parse_rlimits(proc, p, err) < 0 || parse_caps(proc, p, err) < 0 ||
	    get_bool(proc, "noNewPrivileges", "process", &p->no_new_privileges, err) < 0)
		return -1;
	r = get_int(proc, "oomScoreAdj", "process", -1000, 1000, &n, err);
	if (r < 0)
		return -1;
	p->has_oom_score_adj = r > 0;
	p->oom_score_adj = r > 0 ? (int)n : 0;
	if (get_str(proc, "apparmorProfile", "process", &p->apparmor_profile, err) < 0 ||
	    get_str(proc, "selinuxLabel", "process", &p->selinux_label, err) < 0)
		return -1;
	return 0;
}

void ocirt_process_clear(struct ocirt_process *p)
{
	free(p->additional_gids);
	argv_free(p->args);
	argv_free(p->env);
	free(p->cwd);
	free(p->apparmor_profile);
	free(p->selinux_label);
	memset(p, 0, sizeof(*p));
}

/* ---------------------------------------------------------------- mounts */
static const struct {
	const char *name;
	unsigned long set, clear;
} mount_flags[] = {
	{"ro", MS_RDONLY, 0},		{"rw", 0, MS_RDONLY},
	{"nosuid", MS_NOSUID, 0},	{"suid", 0, MS_NOSUID},
	{"nodev", MS_NODEV, 0},		{"dev", 0, MS_NODEV},
	{"noexec", MS_NOEXEC, 0},	{"exec", 0, MS_NOEXEC},
	{"sync", MS_SYNCHRONOUS, 0},	{"async", 0, MS_SYNCHRONOUS},
	{"dirsync", MS_DIRSYNC, 0},	{"remount", MS_REMOUNT, 0},
	{"mand", MS_MANDLOCK, 0},	{"nomand", 0, MS_MANDLOCK},
	{"noatime", MS_NOATIME, 0},	{"atime", 0, MS_NOATIME},
	{"nodiratime", MS_NODIRATIME, 0}, {"diratime", 0, MS_NODIRATIME},
	{"relatime", MS_RELATIME, 0},	{"norelatime", 0, MS_RELATIME},
	{"strictatime", MS_STRICTATIME, 0}, {"nostrictatime", 0, MS_STRICTATIME},
	{"lazytime", MS_LAZYTIME, 0},	{"nolazytime", 0, MS_LAZYTIME},
};
static const struct {
	const char *name;
	unsigned long prop;
} mount_props[] = {
	{"private", MS_PRIVATE},	      {"rprivate", MS_PRIVATE | MS_REC},
	{"shared", MS_SHARED},		      {"rshared", MS_SHARED | MS_REC},
	{"slave", MS_SLAVE},		      {"rslave", MS_SLAVE | MS_REC},
	{"unbindable", MS_UNBINDABLE},	      {"runbindable", MS_UNBINDABLE | MS_REC},
};
/* Options of engines' own (podman's SELinux relabel and copy-up hints) that are not mount
 * data: tmpcopyup is recorded, the others have no meaning here. */
static const char *const mount_engine_opts[] = {"z", "Z", "U", "notmpcopyup", "nocopyup",
						"copy-symlink", "nosymfollow-hint", NULL};

static int parse_mount_options(json_t *m, const char *ip, struct ocirt_mount *out,
			       agentd_error *err)
{
	agentd_strv opts = {0};
	char data[4096] = "";
	size_t dlen = 0;
	if (get_strarr(m, "options", ip, false, &opts, err) < 0) {
		strv_free(&opts);
		return -1;
	}
	int r = 0;
	for (size_t i = 0; i < opts.n && r == 0; i++) {
		const char *o = opts.v[i];
		bool known = false;
		for (size_t k = 0; k < ARRAY_SIZE(mount_flags) && !known; k++)
			if (!strcmp(o, mount_flags[k].name)) {
				out->flags = (out->flags | mount_flags[k].set) & ~mount_flags[k].clear;
				known = true;
			}
		for (size_t k = 0; k < ARRAY_SIZE(mount_props) && !known; k++)
			if (!strcmp(o, mount_props[k].name)) {
				out->propagation = mount_props[k].prop;
				known = true;
			}
		for (size_t k = 0; mount_engine_opts[k] && !known; k++)
			known = !strcmp(o, mount_engine_opts[k]);
		if (known)
			continue;
		if (!strcmp(o, "bind") || !strcmp(o, "rbind")) {
			out->bind = true;
			out->recursive |= o[0] == 'r';
		} else if (!strcmp(o, "tmpcopyup")) {
			out->tmpcopyup = true;
		} else if (!strcmp(o, "idmap") || !strcmp(o, "ridmap")) {
			char jp[JP_MAX];
			jp_key(jp, ip, "options");
			r = jfail(err, jp, "%s: idmapped mounts are not supported", o);
		} else if (dlen + strlen(o) + 2 > sizeof(data)) {
			char jp[JP_MAX];
			jp_key(jp, ip, "options");
			r = jfail(err, jp, "the mount data is longer than %zu bytes", sizeof(data));
		} else {
			dlen += (size_t)snprintf(data + dlen, sizeof(data) - dlen, "%s%s",
						 dlen ? "," : "", o);
		}
	}
	strv_free(&opts);
	if (r == 0 && dlen)
		out->data = xstrdup(data);
	return r;
}

static char *bundle_path(const char *bundle, const char *p)
{
	return p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", bundle, p);
}

static int parse_mounts(json_t *root, struct ocirt_config *c, agentd_error *err)
{
	char ip[JP_MAX];
	json_t *arr, *m;
	size_t i;
	if (get_object_array(root, "mounts", "", sizeof(*c->mounts), &arr, (void **)&c->mounts,
			     err) < 0)
		return -1;
	json_array_foreach(arr, i, m) {
		jp_idx(ip, "mounts", i);
		struct ocirt_mount *o = &c->mounts[c->n_mounts++];
		_cleanup_free_ char *src = NULL;
		if (get_str(m, "destination", ip, &o->destination, err) < 0 ||
		    get_str(m, "type", ip, &o->type, err) < 0 ||
		    get_str(m, "source", ip, &src, err) < 0 ||
		    parse_mount_options(m, ip, o, err) < 0)
			return -1;
		if (!o->destination || o->destination[0] != '/')
			return jfail_at(err, ip, "destination", "required: an absolute path");
		if (o->type && !strcmp(o->type, "bind"))
			o->bind = true;
		if (!o->type && !o->bind)
			return jfail_at(err, ip, "type", "required unless the options say bind");
		if (o->bind && !src)
			return jfail_at(err, ip, "source", "required for a bind");
		if (src)
			o->source = o->bind ? bundle_path(c->bundle, src) : xstrdup(src);
	}
	return 0;
}

/* ---------------------------------------------------------------- linux */
static const char *const ns_names[OCIRT_NS_COUNT] = {
	[OCIRT_NS_PID] = "pid",	    [OCIRT_NS_NET] = "network", [OCIRT_NS_IPC] = "ipc",
	[OCIRT_NS_UTS] = "uts",	    [OCIRT_NS_MOUNT] = "mount", [OCIRT_NS_USER] = "user",
	[OCIRT_NS_CGROUP] = "cgroup", [OCIRT_NS_TIME] = "time",
};

const char *ocirt_ns_name(enum ocirt_ns ns)
{
	return ns < OCIRT_NS_COUNT ? ns_names[ns] : "?";
}

static int parse_namespaces(json_t *lx, struct ocirt_config *c, agentd_error *err)
{
	char ip[JP_MAX];
	json_t *arr, *v;
	size_t i;
	if (get_kind(lx, "namespaces", "linux", JSON_ARRAY, &arr, err) < 0)
		return -1;
	json_array_foreach(arr, i, v) {
		jp_idx(ip, "linux.namespaces", i);
		if (!json_is_object(v))
			return jfail(err, ip, "expected an object");
		_cleanup_free_ char *type = NULL, *path = NULL;
		if (get_str(v, "type", ip, &type, err) < 0 || get_str(v, "path", ip, &path, err) < 0)
			return -1;
		int ns = -1;
		for (int k = 0; type && k < OCIRT_NS_COUNT; k++)
			if (!strcmp(type, ns_names[k]))
				ns = k;
		if (ns < 0)
			return jfail_at(err, ip, "type", "expected one of pid, network, ipc, uts, "
					"mount, user, cgroup, time");
		if (c->ns_wanted[ns])
			return jfail(err, ip, "type %s: given twice", type);
		if (path && path[0] != '/')
			return jfail_at(err, ip, "path", "expected an absolute path");
		c->ns_wanted[ns] = true;
		c->ns_path[ns] = path && *path ? take_ptr(path) : NULL;
	}
	return 0;
}

static int parse_idmaps(json_t *lx, const char *key, struct ocirt_idmap **out, size_t *n,
			agentd_error *err)
{
	char jp[JP_MAX], ip[JP_MAX];
	json_t *arr, *v;
	size_t i;
	if (get_kind(lx, key, "linux", JSON_ARRAY, &arr, err) < 0)
		return -1;
	jp_key(jp, "linux", key);
	if (json_array_size(arr) > 340)	/* the kernel's limit on lines of a map */
		return jfail(err, jp, "more than 340 ranges");
	*out = json_array_size(arr) ? xcalloc(json_array_size(arr), sizeof(**out)) : NULL;
	json_array_foreach(arr, i, v) {
		jp_idx(ip, jp, i);
		if (!json_is_object(v))
			return jfail(err, ip, "expected an object");
		int64_t cid, hid, size;
		if (get_int_req(v, "containerID", ip, 0, UINT32_MAX - 1, &cid, err) < 0 ||
		    get_int_req(v, "hostID", ip, 0, UINT32_MAX - 1, &hid, err) < 0 ||
		    get_int_req(v, "size", ip, 1, UINT32_MAX, &size, err) < 0)
			return -1;
		if (cid + size > (json_int_t)UINT32_MAX || hid + size > (json_int_t)UINT32_MAX)
			return jfail(err, ip, "the range passes 2^32");
		(*out)[(*n)++] = (struct ocirt_idmap){(uint32_t)cid, (uint32_t)hid, (uint32_t)size};
	}
	return 0;
}

static int parse_kv_object(json_t *obj, const char *key, const char *parent, agentd_kvv *out,
			   agentd_error *err)
{
	char jp[JP_MAX], kp[JP_MAX];
	json_t *o, *v;
	const char *k;
	if (get_kind(obj, key, parent, JSON_OBJECT, &o, err) < 0)
		return -1;
	jp_key(jp, parent, key);
	json_object_foreach(o, k, v) {
		jp_key(kp, jp, k);
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
			return jfail(err, kp, "expected a string without NUL bytes");
		kvv_set(out, k, json_string_value(v));
	}
	return 0;
}

static int parse_resources(json_t *lx, struct ocirt_resources *r, agentd_error *err)
{
	json_t *res, *mem, *pids, *cpu, *devs;
	int64_t n;
	r->memory_limit = r->memory_swap = r->memory_reservation = -1;
	if (get_kind(lx, "resources", "linux", JSON_OBJECT, &res, err) < 0)
		return -1;
	if (!res)
		return 0;
	if (get_kind(res, "memory", "linux.resources", JSON_OBJECT, &mem, err) < 0 ||
	    get_kind(res, "pids", "linux.resources", JSON_OBJECT, &pids, err) < 0 ||
	    get_kind(res, "cpu", "linux.resources", JSON_OBJECT, &cpu, err) < 0 ||
	    get_kind(res, "devices", "linux.resources", JSON_ARRAY, &devs, err) < 0)
		return -1;
	const char *mp = "linux.resources.memory", *cp = "linux.resources.cpu";
	/* -1 is the spec's "unlimited" for memory and pids */
	if (get_int(mem, "limit", mp, -1, INT64_MAX, &r->memory_limit, err) < 0 ||
	    get_int(mem, "swap", mp, -1, INT64_MAX, &r->memory_swap, err) < 0 ||
	    get_int(mem, "reservation", mp, -1, INT64_MAX, &r->memory_reservation, err) < 0 ||
	    get_int(pids, "limit", "linux.resources.pids", -1, INT64_MAX, &r->pids_limit, err) < 0)
		return -1;
	n = 0;
	if (get_int(cpu, "shares", cp, 0, 262144, &n, err) < 0)
		return -1;
	r->cpu_shares = (uint64_t)n;
	if (get_int(cpu, "quota", cp, -1, INT64_MAX, &r->cpu_quota, err) < 0)
		return -1;
	n = 0;
	if (get_int(cpu, "period", cp, 0, 1000000, &n, err) < 0)
		return -1;
	r->cpu_period = (uint64_t)n;
	if (get_str(cpu, "cpus", cp, &r->cpuset_cpus, err) < 0 ||
	    get_str(cpu, "mems", cp, &r->cpuset_mems, err) < 0)
		return -1;
	/* Only the deny-all head matters to agentd: its own /dev holds no other device. */
	json_t *first = json_array_get(devs, 0);
	if (first) {
		if (!json_is_object(first))
			return jfail(err, "linux.resources.devices[0]", "expected an object");
		json_t *allow = json_object_get(first, "allow"), *t = json_object_get(first, "type");
		r->devices_deny_all = json_is_false(allow) &&
				      (!t || (json_is_string(t) && !strcmp(json_string_value(t), "a"))) &&
				      !json_object_get(first, "major") &&
				      !json_object_get(first, "minor");
	}
	return 0;
}

static int parse_devices(json_t *lx, struct ocirt_config *c, agentd_error *err)
{
	char ip[JP_MAX];
	json_t *arr, *v;
	size_t i;
	if (get_object_array(lx, "devices", "linux", sizeof(*c->devices), &arr,
			     (void **)&c->devices, err) < 0)
		return -1;
	json_array_foreach(arr, i, v) {
		jp_idx(ip, "linux.devices", i);
		struct ocirt_device *d = &c->devices[c->n_devices++];
		_cleanup_free_ char *type = NULL;
		int64_t n;
		d->mode = 0666;
		if (get_str(v, "path", ip, &d->path, err) < 0 || get_str(v, "type", ip, &type, err) < 0)
			return -1;
		if (!d->path || d->path[0] != '/')
			return jfail_at(err, ip, "path", "required: an absolute path");
		if (!type || strlen(type) != 1 || !strchr("cbup", type[0]))
			return jfail_at(err, ip, "type", "expected c, b, u or p");
		d->type = type[0];
		if (get_int(v, "major", ip, -1, INT64_MAX, &d->major, err) < 0 ||
		    get_int(v, "minor", ip, -1, INT64_MAX, &d->minor, err) < 0)
			return -1;
		if ((n = 0666, get_int(v, "fileMode", ip, 0, 07777, &n, err)) < 0)
			return -1;
		d->mode = (mode_t)n;
		if ((n = 0, get_int(v, "uid", ip, 0, UINT32_MAX - 1, &n, err)) < 0)
			return -1;
		d->uid = (uid_t)n;
		if ((n = 0, get_int(v, "gid", ip, 0, UINT32_MAX - 1, &n, err)) < 0)
			return -1;
		d->gid = (gid_t)n;
	}
	return 0;
}

static int parse_linux(json_t *root, struct ocirt_config *c, agentd_error *err)
{
	json_t *lx;
	if (get_kind(root, "linux", "", JSON_OBJECT, &lx, err) < 0)
		return -1;
	c->resources.memory_limit = c->resources.memory_swap = -1;
	c->resources.memory_reservation = -1;
	if (!lx)
		return 0;
	if (parse_namespaces(lx, c, err) < 0 ||
	    parse_idmaps(lx, "uidMappings", &c->uid_maps, &c->n_uid_maps, err) < 0 ||
	    parse_idmaps(lx, "gidMappings", &c->gid_maps, &c->n_gid_maps, err) < 0 ||
	    parse_kv_object(lx, "sysctl", "linux", &c->sysctl, err) < 0 ||
	    parse_resources(lx, &c->resources, err) < 0 ||
	    get_str(lx, "cgroupsPath", "linux", &c->cgroups_path, err) < 0 ||
	    parse_devices(lx, c, err) < 0 ||
	    get_str(lx, "rootfsPropagation", "linux", &c->rootfs_propagation, err) < 0 ||
	    get_strarr(lx, "maskedPaths", "linux", false, &c->masked_paths, err) < 0 ||
	    get_strarr(lx, "readonlyPaths", "linux", false, &c->readonly_paths, err) < 0)
		return -1;
	for (size_t i = 0; i < c->masked_paths.n + c->readonly_paths.n; i++) {
		bool m = i < c->masked_paths.n;
		const char *p = m ? c->masked_paths.v[i] : c->readonly_paths.v[i - c->masked_paths.n];
		if (p[0] != '/') {
			char ip[JP_MAX];
			jp_idx(ip, m ? "linux.maskedPaths" : "linux.readonlyPaths",
			       m ? i : i - c->masked_paths.n);
			return jfail(err, ip, "expected an absolute path");
		}
	}
	json_t *sc;
	if (get_kind(lx, "seccomp", "linux", JSON_OBJECT, &sc, err) < 0)
		return -1;
	c->seccomp = sc ? json_incref(sc) : NULL;
	return 0;
}

/* ---------------------------------------------------------------- the rest */
static const char *const hook_names[] = {"prestart",	     "createRuntime",
					  "createContainer", "startContainer",
					  "poststart",	     "poststop"};

/* One hook: path (absolute), args, env, timeout. */
static int parse_hook(json_t *h, const char *jp, struct ocirt_hook *out, agentd_error *err)
{
	if (get_str(h, "path", jp, &out->path, err) < 0 ||
	    get_strarr(h, "args", jp, false, &out->args, err) < 0 ||
	    get_strarr(h, "env", jp, true, &out->env, err) < 0 ||
	    get_int(h, "timeout", jp, 1, 86400, &out->timeout, err) < 0)
		return -1;
	if (!out->path || out->path[0] != '/') {
		char pp[JP_MAX];
		jp_key(pp, jp, "path");
		return jfail(err, pp, "required: an absolute path");
	}
	return 0;
}

static int parse_hooks(json_t *root, struct ocirt_config *c, agentd_error *err)
{
	json_t *hooks, *v, *h;
	const char *k;
	size_t i;
	if (get_kind(root, "hooks", "", JSON_OBJECT, &hooks, err) < 0)
		return -1;
	json_object_foreach(hooks, k, v) {
		char jp[JP_MAX], ip[JP_MAX];
		jp_key(jp, "hooks", k);
		if (!json_is_array(v) && !json_is_null(v))
			return jfail(err, jp, "expected an array");
		c->has_hooks |= json_array_size(v) > 0;
		size_t kind = 0;
		while (kind < ARRAY_SIZE(hook_names) && strcmp(hook_names[kind], k))
			kind++;
		if (kind == ARRAY_SIZE(hook_names) || !json_array_size(v))
			continue;	/* an unknown kind is not run (nor refused: the floor sees it) */
		c->hooks[kind] = xcalloc(json_array_size(v), sizeof(struct ocirt_hook));
		json_array_foreach(v, i, h) {
			jp_idx(ip, jp, i);
			c->n_hooks[kind] = i + 1;
			if (!json_is_object(h))
				return jfail(err, ip, "expected an object");
			if (parse_hook(h, ip, &c->hooks[kind][i], err) < 0)
				return -1;
		}
	}
	return 0;
}

static int parse_policy_annotation(struct ocirt_config *c, agentd_error *err)
{
	const char *text = kvv_get(&c->annotations, "io.agentd.policy");
	if (!text)
		return 0;
	json_error_t jerr;
	c->agentd_policy = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!c->agentd_policy) {
		text_scrub_line(jerr.text);
		return jfail(err, "annotations[\"io.agentd.policy\"]",
			     "not JSON: line %d column %d: %s", jerr.line, jerr.column, jerr.text);
	}
	if (!json_is_object(c->agentd_policy))
		return jfail(err, "annotations[\"io.agentd.policy\"]", "expected a JSON object");
	return 0;
}

static int parse_root(json_t *doc, struct ocirt_config *c, agentd_error *err)
{
	json_t *root, *proc;
	if (!json_is_object(doc))
		return jfail(err, "(root)", "expected an object");
	if (get_str(doc, "ociVersion", "", &c->oci_version, err) < 0)
		return -1;
	if (!c->oci_version)
		return jfail(err, "ociVersion", "required");
	if (strncmp(c->oci_version, "1.", 2)) {
		char q[96];
		quote_text(q, sizeof(q), c->oci_version);
		return jfail(err, "ociVersion", "%s: only runtime-spec 1.x is supported", q);
	}
	if (get_kind(doc, "root", "", JSON_OBJECT, &root, err) < 0)
		return -1;
	_cleanup_free_ char *rp = NULL;
	if (root && get_str(root, "path", "root", &rp, err) < 0)
		return -1;
	if (!rp || !*rp)
		return jfail(err, "root.path", "required");
	c->root_path = bundle_path(c->bundle, rp);
	if (get_bool(root, "readonly", "root", &c->root_readonly, err) < 0)
		return -1;
	proc = json_object_get(doc, "process");
	if (!proc)
		return jfail(err, "process", "required");
	if (parse_process(proc, &c->process, err) < 0 ||
	    get_str(doc, "hostname", "", &c->hostname, err) < 0 ||
	    get_str(doc, "domainname", "", &c->domainname, err) < 0 ||
	    parse_mounts(doc, c, err) < 0 || parse_linux(doc, c, err) < 0 ||
	    parse_hooks(doc, c, err) < 0 ||
	    parse_kv_object(doc, "annotations", "", &c->annotations, err) < 0)
		return -1;
	return parse_policy_annotation(c, err);
}

int ocirt_config_parse(const char *bundle, const char *text, size_t len,
		       struct ocirt_config **out, agentd_error *err)
{
	*out = NULL;
	if (len > CONFIG_MAX_BYTES)
		return agentd_error_set(err, EFBIG, "config.json: larger than %u bytes",
					CONFIG_MAX_BYTES);
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		text_scrub_line(jerr.text);
		return agentd_error_set(err, EINVAL, "config.json: line %d column %d: %s",
					jerr.line, jerr.column, jerr.text);
	}
	struct ocirt_config *c = xcalloc(1, sizeof(*c));
	c->bundle = xstrdup(bundle);
	agentd_error_clear(err);
	int r = parse_root(doc, c, err);
	json_decref(doc);
	if (r < 0) {
		ocirt_config_free(c);
		return agentd_error_prefix(err, "config.json");
	}
	*out = c;
	return 0;
}

/* A regular file below dirfd, not a link, at most max bytes (NULL + errno). */
static char *read_bounded_nofollow(int dirfd, const char *name, size_t max, size_t *len)
{
	_cleanup_close_ int fd =
		openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return NULL;
	}
	if ((uint64_t)st.st_size > max) {
		errno = EFBIG;
		return NULL;
	}
	return read_fd_max(fd, max + 1, len);	/* + 1: a file of max bytes still fits */
}

int ocirt_config_load(const char *bundle, struct ocirt_config **out, agentd_error *err)
{
	*out = NULL;
	_cleanup_free_ char *abs = NULL;
	if (bundle[0] != '/') {
		char cwd[4096];
		if (!getcwd(cwd, sizeof(cwd)))
			return agentd_error_errno(err, errno, "bundle %s: getcwd", bundle);
		abs = xasprintf("%s/%s", cwd, bundle);
	}
	_cleanup_close_ int dfd = open(abs ? abs : bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return agentd_error_errno(err, errno, "bundle %s", bundle);
	size_t len;
	_cleanup_free_ char *text =
		read_bounded_nofollow(dfd, "config.json", CONFIG_MAX_BYTES, &len);
	if (!text)
		return agentd_error_errno(err, errno == ELOOP ? ELOOP : errno,
					  "bundle %s: config.json%s", bundle,
					  errno == ELOOP ? " (a symbolic link)" : "");
	return ocirt_config_parse(abs ? abs : bundle, text, len, out, err);
}

void ocirt_config_free(struct ocirt_config *c)
{
	if (!c)
		return;
	free(c->bundle);
	free(c->oci_version);
	free(c->root_path);
	ocirt_process_clear(&c->process);
	strv_free(&c->egress_allow);
	free(c->hostname);
	free(c->domainname);
	for (size_t i = 0; i < c->n_mounts; i++) {
		free(c->mounts[i].destination);
		free(c->mounts[i].type);
		free(c->mounts[i].source);
		free(c->mounts[i].data);
	}
	free(c->mounts);
	for (int i = 0; i < OCIRT_NS_COUNT; i++)
		free(c->ns_path[i]);
	free(c->uid_maps);
	free(c->gid_maps);
	kvv_free(&c->sysctl);
	for (size_t k = 0; k < ARRAY_SIZE(c->hooks); k++) {
		for (size_t i = 0; i < c->n_hooks[k]; i++) {
			free(c->hooks[k][i].path);
			strv_free(&c->hooks[k][i].args);
			strv_free(&c->hooks[k][i].env);
		}
		free(c->hooks[k]);
	}
	strv_free(&c->masked_paths);
	strv_free(&c->readonly_paths);
	free(c->cgroups_path);
	free(c->resources.cpuset_cpus);
	free(c->resources.cpuset_mems);
	for (size_t i = 0; i < c->n_devices; i++)
		free(c->devices[i].path);
	free(c->devices);
	json_decref(c->seccomp);
	kvv_free(&c->annotations);
	json_decref(c->agentd_policy);
	kvv_free(&c->audit_labels);
	free(c);
}

/* exec's process.json: the same object as config.json's process, bounded the same way. */
int ocirt_process_load(const char *path, struct ocirt_process *out, agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	size_t len;
	_cleanup_free_ char *text = read_bounded_nofollow(AT_FDCWD, path, CONFIG_MAX_BYTES, &len);
	if (!text)
		return agentd_error_errno(err, errno, "process %s", path);
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		text_scrub_line(jerr.text);
		return agentd_error_set(err, EINVAL, "process %s: line %d column %d: %s", path,
					jerr.line, jerr.column, jerr.text);
	}
	agentd_error_clear(err);
	int r = parse_process(doc, out, err);
	json_decref(doc);
	if (r < 0) {
		ocirt_process_clear(out);
		return agentd_error_prefix(err, "process %s", path);
	}
	return 0;
}
