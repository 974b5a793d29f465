/* seccomp_oci_emit.c: agentd's default seccomp profile as OCI runtime-spec JSON
 * (linux.seccomp of a config.json), for runtimes that install the filter themselves; the
 * rules are seccomp.c's own, recorded as data instead of compiled. */
#include "lib/jail/seccomp_internal.h"

#include <jansson.h>

struct emit {
	struct sc_recorder rec;
	json_t *syscalls;
};

static const char *op_name(enum scmp_compare op)
{
	switch (op) {
	case SCMP_CMP_NE: return "SCMP_CMP_NE";
	case SCMP_CMP_LT: return "SCMP_CMP_LT";
	case SCMP_CMP_LE: return "SCMP_CMP_LE";
	case SCMP_CMP_EQ: return "SCMP_CMP_EQ";
	case SCMP_CMP_GE: return "SCMP_CMP_GE";
	case SCMP_CMP_GT: return "SCMP_CMP_GT";
	case SCMP_CMP_MASKED_EQ: return "SCMP_CMP_MASKED_EQ";
	default: return NULL;
	}
}

static int emit_rule(struct sc_recorder *r, uint32_t action, const char *name, unsigned n,
		     const struct scmp_arg_cmp *cmp, agentd_error *err)
{
	struct emit *e = (struct emit *)r;
	if ((action & SCMP_ACT_ERRNO(0)) != SCMP_ACT_ERRNO(0) || (action & ~0xffffu) !=
	    SCMP_ACT_ERRNO(0))
		return agentd_error_set(err, EINVAL, "seccomp: %s: only errno actions are emitted",
					name);
	json_t *args = json_array();
	for (unsigned i = 0; i < n; i++) {
		const char *op = op_name(cmp[i].op);
		if (!op) {
			json_decref(args);
			return agentd_error_set(err, EINVAL, "seccomp: %s: comparison %d", name,
						(int)cmp[i].op);
		}
		json_array_append_new(args, json_pack("{s:I, s:I, s:I, s:s}", "index",
						      (json_int_t)cmp[i].arg, "value",
						      (json_int_t)cmp[i].datum_a, "valueTwo",
						      (json_int_t)cmp[i].datum_b, "op", op));
	}
	json_t *rule = json_pack("{s:[s], s:s, s:I}", "names", name, "action", "SCMP_ACT_ERRNO",
				 "errnoRet", (json_int_t)(action & 0xffffu));
	if (n)
		json_object_set_new(rule, "args", args);
	else
		json_decref(args);
	json_array_append_new(e->syscalls, rule);
	return 0;
}

json_t *seccomp_default_oci(const struct seccomp_opts *o, agentd_error *err)
{
	struct emit e = {.rec.add = emit_rule, .syscalls = json_array()};
	sc_recorder = &e.rec;
	int r = sc_build_default(NULL, o, err);
	sc_recorder = NULL;
	if (r < 0) {
		json_decref(e.syscalls);
		agentd_error_prefix(err, "seccomp profile as OCI JSON");
		return NULL;
	}
#if defined(__x86_64__)
	const char *arch = "SCMP_ARCH_X86_64";
#elif defined(__aarch64__)
	const char *arch = "SCMP_ARCH_AARCH64";
#endif
	/* Default allow (a deny-list, as the compiled one); native architecture only. */
	return json_pack("{s:s, s:[s], s:o}", "defaultAction", "SCMP_ACT_ALLOW", "architectures",
			 arch, "syscalls", e.syscalls);
}
