/* features.c: the `features` verb: what this runtime implements, in the JSON shape of runc's
 * (engines read it to decide, e.g., whether idmapped mounts or a seccomp flag may be asked). */
#include "lib/runtime/verbs.h"

#include <jansson.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stdlib.h>

static json_t *strings(const char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

int ocirt_cmd_features(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return ocirt_fail("features: no arguments expected");
	static const char *const mount_opts[] = {
		"async", "atime", "bind", "defaults", "dev", "diratime", "exec", "mand", "noatime",
		"nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid",
		"private", "rbind", "relatime", "remount", "ro", "rprivate", "rshared", "rslave",
		"rw", "shared", "slave", "strictatime", "suid", "sync", "tmpcopyup"};
	static const char *const namespaces[] = {"cgroup", "ipc", "mount", "network",
						 "pid",	   "time", "user",  "uts"};
	static const char *const actions[] = {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO",
					      "SCMP_ACT_KILL",	"SCMP_ACT_KILL_PROCESS",
					      "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
					      "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"};
	static const char *const operators[] = {"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
						"SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
						"SCMP_CMP_NE"};
	static const char *const archs[] = {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32",
					    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
	json_t *caps = json_array();
	for (int c = 0; c <= CAP_LAST_CAP; c++)
		if (ocirt_cap_name(c))
			json_array_append_new(caps, json_string(ocirt_cap_name(c)));
	const struct scmp_version *v = seccomp_version();
	char scmp[32];
	snprintf(scmp, sizeof(scmp), "%u.%u.%u", v->major, v->minor, v->micro);
	json_t *o = json_pack(
		"{s:s, s:s, s:[], s:o, s:{s:o, s:o, s:{s:b, s:b, s:b}, s:{s:b, s:o, s:o, s:o, "
		"s:[]}, s:{s:b}, s:{s:b}}, s:{s:s, s:s, s:s}}",
		"ociVersionMin", "1.0.0", "ociVersionMax", OCIRT_VERSION, "hooks", "mountOptions",
		strings(mount_opts, ARRAY_SIZE(mount_opts)), "linux", "namespaces",
		strings(namespaces, ARRAY_SIZE(namespaces)), "capabilities", caps, "cgroup", "v1",
		1, "v2", 1, "systemd", 0, "seccomp", "enabled", 1, "actions",
		strings(actions, ARRAY_SIZE(actions)), "operators",
		strings(operators, ARRAY_SIZE(operators)), "archs", strings(archs, ARRAY_SIZE(archs)),
		"knownFlags", "apparmor", "enabled", 0, "selinux", "enabled", 0, "annotations",
		"io.github.seccomp.libseccomp.version", scmp, "io.agentd.floor",
		"agentd's hardening is the floor: capabilities, devices, host namespaces, hooks "
		"and an unconfined seccomp are refused unless " OCIRT_OPERATOR_FILE " allows them",
		"io.agentd.policy",
		"an agentd policy fragment: network {mode none|allowlist, allow} (an allowlist "
		"through agentd's egress proxy at 127.0.0.1:3128 inside), labels for the audit");
	char *s = json_dumps(o, JSON_INDENT(2));
	printf("%s\n", s);
	free(s);
	json_decref(o);
	return 0;
}
