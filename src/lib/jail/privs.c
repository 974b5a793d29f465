/* privs.c: the identity a sandboxed command runs with. When agentd is root, a command never
 * keeps a capability: it switches to an unprivileged uid, or stays uid 0 with none left. */
#include "lib/jail/jail.h"

#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define NOBODY 65534

void privs_prepare(const agentd_spec *spec, struct privs_plan *out)
{
	memset(out, 0, sizeof(*out));
	out->drop_caps = true;
	if (geteuid() != 0)
		return; /* already unprivileged: keep the caller's identity */
	if (spec->run_as_uid == 0)
		return; /* uid 0, but with every capability dropped (privs_apply) */
	out->switch_user = true;
	out->uid = spec->run_as_uid > 0 ? (uid_t)spec->run_as_uid : NOBODY;
	out->gid = spec->run_as_gid >= 0 ? (gid_t)spec->run_as_gid
					 : (spec->run_as_uid > 0 ? (gid_t)spec->run_as_uid : NOBODY);
}

static int drop_bounding_set(void)
{
	for (int cap = 0; cap <= 63; cap++) {
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break; /* past the kernel's last capability */
			return -errno;
		}
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -errno;
	}
	return 0;
}

int privs_set_ids(uid_t uid, gid_t gid, bool drop_groups)
{
	/* Raw syscalls, not glibc's wrappers: a child cloned with clone3 from a multithreaded
	 * process (the daemon, the egress proxy's threads) still has glibc's list of its
	 * parent's threads, and setresuid() would wait forever for them to follow the change
	 * (nptl setxid broadcast). The kernel call changes this thread, the only one here. */
	if (drop_groups && syscall(SYS_setgroups, 0, NULL) < 0)
		return -errno;
	if (syscall(SYS_setresgid, gid, gid, gid) < 0)
		return -errno;
	/* Without PR_SET_KEEPCAPS, moving every uid away from 0 clears the permitted and
	 * effective sets. */
	if (syscall(SYS_setresuid, uid, uid, uid) < 0)
		return -errno;
	return 0;
}

static int clear_capabilities(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	return 0;
}

int privs_apply(const struct privs_plan *p)
{
	if (geteuid() == 0) {
		/* The bounding set can only shrink with CAP_SETPCAP, so drop it while we are
		 * still root: even a setuid-root binary could not regain a capability. */
		int r = drop_bounding_set();
		if (r < 0)
			return r;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
			return -errno;
	}
	if (geteuid() == 0 && !p->switch_user && p->drop_caps) {
		/* Staying uid 0: lock the securebits so that exec of anything, setuid-root
		 * included, never hands capabilities back. */
		unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
				     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED;
		if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
			return -errno;
	}
	if (p->switch_user) {
		int r = privs_set_ids(p->uid, p->gid, true);
		if (r < 0)
			return r;
	}
	if (p->drop_caps || p->switch_user) {
		int r = clear_capabilities();
		if (r < 0)
			return r;
	}
	return 0;
}

int privs_no_new_privs(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	return 0;
}
