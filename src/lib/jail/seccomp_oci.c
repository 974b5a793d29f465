/* seccomp_oci.c: OCI/Docker JSON seccomp profiles (runc's and Docker's format), checked
 * strictly and compiled with libseccomp in the parent; the rule helpers are seccomp.c's. */
#include "lib/jail/seccomp_internal.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <sys/utsname.h>

/* Profiles are read whole; anything larger is not a seccomp profile. */
#define PROFILE_MAX_BYTES (1024 * 1024)

#define JPATH_MAX 128

/* JSON path of the element being parsed, e.g. "syscalls[3].args[0]" (long ones are cut). */
static void jpath_fmt(char out[JPATH_MAX], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void jpath_fmt(char out[JPATH_MAX], const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out, JPATH_MAX, fmt, ap);
	va_end(ap);
}

static int json_fail(agentd_error *err, const char *jpath, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int json_fail(agentd_error *err, const char *jpath, const char *fmt, ...)
{
	char msg[AGENTD_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return agentd_error_set(err, EINVAL, "%s: %s", jpath, msg);
}

static int json_errno_ret(json_t *v, const char *jpath, uint16_t *out, agentd_error *err)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 4095)
		return json_fail(err, jpath, "expected integer 0..4095");
	*out = (uint16_t)json_integer_value(v);
	return 0;
}

/* "SCMP_ACT_ERRNO" + errnoRet → libseccomp action. NOTIFY needs a listener agentd does not
 * run; an unknown action is an error, never a guess. */
static int parse_action(json_t *v, json_t *errno_ret, uint16_t default_errno, const char *jpath,
			const char *errno_jpath, uint32_t *out, agentd_error *err)
{
	static const struct {
		const char *name;
		uint32_t action;
		bool takes_errno;
	} actions[] = {
	    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, false},
	    {"SCMP_ACT_LOG", SCMP_ACT_LOG, false},
	    {"SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD, false},
	    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, false},
	    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, false},
	    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP, false},
	    {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0), true},
	    {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0), true},
	};
	if (!json_is_string(v))
		return json_fail(err, jpath, "expected string");
	const char *s = json_string_value(v);
	if (!strcmp(s, "SCMP_ACT_NOTIFY"))
		return json_fail(err, jpath, "SCMP_ACT_NOTIFY is not supported");
	for (size_t i = 0; i < ARRAY_SIZE(actions); i++) {
		if (strcmp(s, actions[i].name))
			continue;
		uint16_t e = default_errno;
		if (errno_ret) {
			if (!actions[i].takes_errno)
				return json_fail(err, jpath,
						 "errnoRet is only valid with SCMP_ACT_ERRNO or "
						 "SCMP_ACT_TRACE");
			if (json_errno_ret(errno_ret, errno_jpath, &e, err) < 0)
				return -1;
		}
		*out = actions[i].takes_errno ? (actions[i].action | e) : actions[i].action;
		return 0;
	}
	return json_fail(err, jpath, "unknown action \"%s\"", s);
}

static int parse_op(const char *s, enum scmp_compare *op)
{
	static const struct {
		const char *name;
		enum scmp_compare op;
	} ops[] = {
	    {"SCMP_CMP_NE", SCMP_CMP_NE},
	    {"SCMP_CMP_LT", SCMP_CMP_LT},
	    {"SCMP_CMP_LE", SCMP_CMP_LE},
	    {"SCMP_CMP_EQ", SCMP_CMP_EQ},
	    {"SCMP_CMP_GE", SCMP_CMP_GE},
	    {"SCMP_CMP_GT", SCMP_CMP_GT},
	    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (!strcmp(s, ops[i].name)) {
			*op = ops[i].op;
			return 0;
		}
	return -1;
}

static int check_keys(json_t *obj, const char *const *known, const char *jpath, agentd_error *err)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		bool ok = false;
		for (size_t i = 0; known[i] && !ok; i++)
			ok = !strcmp(key, known[i]);
		if (!ok)
			return json_fail(err, jpath, "unknown key \"%s\"", key);
	}
	return 0;
}

/* args[{index, value, valueTwo, op}] → comparisons. For SCMP_CMP_MASKED_EQ, value is the
 * mask and valueTwo the datum, as in runc. */
static int parse_args(json_t *args, const char *jpath, struct scmp_arg_cmp *cmp, unsigned *n,
		      agentd_error *err)
{
	static const char *const keys[] = {"index", "value", "valueTwo", "op", NULL};
	char p[JPATH_MAX];
	size_t i;
	json_t *a;
	*n = 0;
	if (!args || json_is_null(args))
		return 0;
	if (!json_is_array(args))
		return json_fail(err, jpath, "expected array");
	if (json_array_size(args) > 6)
		return json_fail(err, jpath, "at most 6 conditions");
	json_array_foreach(args, i, a) {
		jpath_fmt(p, "%s[%zu]", jpath, i);
		if (!json_is_object(a))
			return json_fail(err, p, "expected object");
		if (check_keys(a, keys, p, err) < 0)
			return -1;
		json_t *idx = json_object_get(a, "index"), *op = json_object_get(a, "op");
		json_t *v1 = json_object_get(a, "value"), *v2 = json_object_get(a, "valueTwo");
		if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
		    json_integer_value(idx) > 5)
			return json_fail(err, p, "index: expected integer 0..5");
		if (!json_is_string(op))
			return json_fail(err, p, "op: expected string");
		if (!json_is_integer(v1) || (v2 && !json_is_integer(v2)))
			return json_fail(err, p, "value/valueTwo: expected integers");
		struct scmp_arg_cmp *c = &cmp[(*n)++];
		c->arg = (unsigned)json_integer_value(idx);
		if (parse_op(json_string_value(op), &c->op) < 0)
			return json_fail(err, p, "op: unknown operator \"%s\"",
					 json_string_value(op));
		c->datum_a = (uint64_t)json_integer_value(v1);
		c->datum_b = v2 ? (uint64_t)json_integer_value(v2) : 0;
		/* libseccomp ANDs conditions but allows one per argument; runc turns several
		 * into an OR of rules, which silently changes the meaning. Refuse instead. */
		for (unsigned k = 0; k + 1 < *n; k++)
			if (cmp[k].arg == c->arg)
				return json_fail(err, p,
						 "more than one condition on argument %u "
						 "is not supported",
						 c->arg);
	}
	return 0;
}

static bool kernel_at_least(const char *version)
{
	struct utsname u;
	unsigned want_major = 0, want_minor = 0, major = 0, minor = 0;
	if (sscanf(version, "%u.%u", &want_major, &want_minor) < 1 || uname(&u) < 0 ||
	    sscanf(u.release, "%u.%u", &major, &minor) < 1)
		return false;
	return major > want_major || (major == want_major && minor >= want_minor);
}

static bool names_native_arch(json_t *arches)
{
	size_t i;
	json_t *a;
	json_array_foreach(arches, i, a) {
		const char *s = json_string_value(a);
		if (s &&
		    (!strcmp(s, "amd64") || !strcmp(s, "x86_64") || !strcmp(s, "SCMP_ARCH_X86_64")))
			return true;
	}
	return false;
}

/* Docker's "includes"/"excludes" (caps, arches, minKernel). Sandboxed commands hold no
 * capabilities, so a rule that needs one never applies and one excluded by one always does. */
static int rule_applies(json_t *inc, json_t *exc, const char *jpath, bool *applies,
			agentd_error *err)
{
	static const char *const keys[] = {"caps", "arches", "minKernel", NULL};
	char p[JPATH_MAX];
	*applies = true;
	for (int pass = 0; pass < 2; pass++) {
		json_t *o = pass ? exc : inc;
		jpath_fmt(p, "%s.%s", jpath, pass ? "excludes" : "includes");
		if (!o || json_is_null(o))
			continue;
		if (!json_is_object(o))
			return json_fail(err, p, "expected object");
		if (check_keys(o, keys, p, err) < 0)
			return -1;
		json_t *caps = json_object_get(o, "caps"), *arches = json_object_get(o, "arches");
		json_t *kern = json_object_get(o, "minKernel");
		if ((caps && !json_is_array(caps)) || (arches && !json_is_array(arches)) ||
		    (kern && !json_is_string(kern)))
			return json_fail(err, p, "caps/arches: arrays, minKernel: string");
		if (!pass) {
			if (json_array_size(caps) > 0)
				*applies = false;
			if (json_array_size(arches) > 0 && !names_native_arch(arches))
				*applies = false;
			if (kern && !kernel_at_least(json_string_value(kern)))
				*applies = false;
		} else {
			if (arches && names_native_arch(arches))
				*applies = false;
			if (kern && kernel_at_least(json_string_value(kern)))
				*applies = false;
		}
	}
	return 0;
}

static int parse_syscall_entry(scmp_filter_ctx ctx, json_t *e, const char *jpath,
			       uint32_t default_action, uint16_t default_errno, agentd_error *err)
{
	static const char *const keys[] = {"names",   "name",	  "action",   "errnoRet", "args",
					   "comment", "includes", "excludes", NULL};
	char p[JPATH_MAX];
	if (!json_is_object(e))
		return json_fail(err, jpath, "expected object");
	if (check_keys(e, keys, jpath, err) < 0)
		return -1;

	json_t *names = json_object_get(e, "names"), *name = json_object_get(e, "name");
	if (names && (!json_is_array(names) || json_array_size(names) == 0)) {
		jpath_fmt(p, "%s.names", jpath);
		return json_fail(err, p, "expected non-empty array of strings");
	}
	if (!names && !json_is_string(name))
		return json_fail(err, jpath, "names: required");

	uint32_t action;
	char ep[JPATH_MAX];
	jpath_fmt(p, "%s.action", jpath);
	jpath_fmt(ep, "%s.errnoRet", jpath);
	if (parse_action(json_object_get(e, "action"), json_object_get(e, "errnoRet"),
			 default_errno, p, ep, &action, err) < 0)
		return -1;

	struct scmp_arg_cmp cmp[6];
	unsigned ncmp;
	jpath_fmt(p, "%s.args", jpath);
	if (parse_args(json_object_get(e, "args"), p, cmp, &ncmp, err) < 0)
		return -1;

	bool applies;
	if (rule_applies(json_object_get(e, "includes"), json_object_get(e, "excludes"), jpath,
			 &applies, err) < 0)
		return -1;

	size_t count = names ? json_array_size(names) : 1;
	for (size_t i = 0; i < count; i++) {
		json_t *n = names ? json_array_get(names, i) : name;
		jpath_fmt(p, "%s.names[%zu]", jpath, i);
		if (!json_is_string(n))
			return json_fail(err, p, "expected string");
		/* Same action as the default: nothing to add (libseccomp refuses it). */
		if (!applies || action == default_action)
			continue;
		if (sc_rule_add(ctx, action, json_string_value(n), ncmp, cmp, err) < 0)
			return agentd_error_prefix(err, "%s", p);
	}
	return 0;
}

/* The profile's top level but its syscalls: the default action and errno, architectures,
 * flags, and no notify listener. */
static int parse_top(json_t *root, uint32_t *default_action, uint16_t *default_errno,
		     agentd_error *err)
{
	static const char *const keys[] = {"defaultAction", "defaultErrnoRet",	"architectures",
					   "archMap",	    "syscalls",		"flags",
					   "listenerPath",  "listenerMetadata", NULL};
	static const char *const flags[] = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
					    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
					    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", NULL};
	char p[JPATH_MAX];
	size_t i;
	json_t *v;

	if (!json_is_object(root))
		return json_fail(err, "(root)", "expected object");
	if (check_keys(root, keys, "(root)", err) < 0)
		return -1;

	*default_errno = EPERM;
	json_t *der = json_object_get(root, "defaultErrnoRet");
	if (der && json_errno_ret(der, "defaultErrnoRet", default_errno, err) < 0)
		return -1;
	json_t *da = json_object_get(root, "defaultAction");
	if (!da)
		return json_fail(err, "defaultAction", "required");
	if (parse_action(da, NULL, *default_errno, "defaultAction", NULL, default_action, err) < 0)
		return -1;

	/* Architectures are checked but only the native one is ever added: agentd never runs
	 * i386 or x32 code under a filter written for x86_64 numbers. */
	json_t *arches = json_object_get(root, "architectures");
	if (arches && !json_is_array(arches))
		return json_fail(err, "architectures", "expected array");
	json_array_foreach(arches, i, v) {
		jpath_fmt(p, "architectures[%zu]", i);
		if (!json_is_string(v) || strncmp(json_string_value(v), "SCMP_ARCH_", 10))
			return json_fail(err, p, "expected \"SCMP_ARCH_...\"");
	}
	json_t *archmap = json_object_get(root, "archMap");
	if (archmap && !json_is_array(archmap))
		return json_fail(err, "archMap", "expected array");

	/* Flags only change how a filter is installed. The child never sets SPEC_ALLOW (the
	 * stricter choice), TSYNC is moot before exec, so all known flags are accepted. */
	json_t *fl = json_object_get(root, "flags");
	if (fl && !json_is_array(fl))
		return json_fail(err, "flags", "expected array");
	json_array_foreach(fl, i, v) {
		jpath_fmt(p, "flags[%zu]", i);
		bool known = false;
		for (size_t k = 0; flags[k] && json_is_string(v); k++)
			known |= !strcmp(json_string_value(v), flags[k]);
		if (!known)
			return json_fail(err, p, "unknown flag");
	}
	json_t *lp = json_object_get(root, "listenerPath");
	if (lp && !(json_is_string(lp) && !*json_string_value(lp)))
		return json_fail(err, "listenerPath", "seccomp notify listeners are not supported");
	return 0;
}

static int parse_profile(json_t *root, scmp_filter_ctx *out, agentd_error *err)
{
	char p[JPATH_MAX];
	size_t i;
	json_t *v;
	uint32_t default_action;
	uint16_t default_errno;

	if (parse_top(root, &default_action, &default_errno, err) < 0)
		return -1;
	scmp_filter_ctx ctx = sc_filter_new(default_action, err);
	if (!ctx)
		return -1;
	json_t *calls = json_object_get(root, "syscalls");
	if (calls && !json_is_array(calls)) {
		seccomp_release(ctx);
		return json_fail(err, "syscalls", "expected array");
	}
	json_array_foreach(calls, i, v) {
		jpath_fmt(p, "syscalls[%zu]", i);
		if (parse_syscall_entry(ctx, v, p, default_action, default_errno, err) < 0) {
			seccomp_release(ctx);
			return -1;
		}
	}
	*out = ctx;
	return 0;
}

/* What the backend needs refused whatever the profile (sc_backend_floor: sockets, netlink,
 * SysV IPC) goes into a second filter: merged into a user's profile its rules could be
 * swallowed by the profile's own unconditional rule for socket(). The kernel runs both
 * filters and takes the stricter answer. */
int seccomp_oci_prepare(const char *path, const struct seccomp_opts *o, struct seccomp_prog *out,
			agentd_error *err)
{
	size_t len;
	_cleanup_free_ char *text = read_file_at(AT_FDCWD, path, PROFILE_MAX_BYTES, &len);
	if (!text) /* the policy's path: a caller's mistake (EINVAL), named as the key */
		return agentd_error_set(err, EINVAL, "seccomp_profile %s: %s", path,
					strerror(errno));
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return agentd_error_set(err, EINVAL, "profile %s: line %d column %d: %s", path,
					jerr.line, jerr.column, jerr.text);
	int r = seccomp_oci_prepare_json(root, o, out, err);
	json_decref(root);
	return r < 0 ? agentd_error_prefix(err, "profile %s", path) : 0;
}

/* issue 16: rt-config. The same from a parsed profile (an OCI config's linux.seccomp). */
int seccomp_oci_prepare_json(struct json_t *root, const struct seccomp_opts *o,
			     struct seccomp_prog *out, agentd_error *err)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&sc_compile_lock);
	scmp_filter_ctx ctx = NULL, net = NULL;
	int r = parse_profile(root, &ctx, err);
	if (r == 0)
		r = sc_filter_export(ctx, &out->filter, &out->len, err);
	if (r == 0) {
		net = sc_filter_new(SCMP_ACT_ALLOW, err);
		r = net ? sc_backend_floor(net, o, err) : -1;
		if (r == 0)
			r = sc_filter_export(net, &out->net_filter, &out->net_len, err);
	}
	if (ctx)
		seccomp_release(ctx);
	if (net)
		seccomp_release(net);
	pthread_mutex_unlock(&sc_compile_lock);
	if (r < 0) {
		seccomp_prog_free(out);
		return -1;
	}
	out->active = true;
	return 0;
}
