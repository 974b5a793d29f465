/* pipeline.c: the containment pipeline of the process backends (host-direct, linux-native),
 * in the order it runs in the child. Each step lives in its own file; any failure aborts. */
#include "lib/jail/jail.h"

void jail_plan_init(struct jail_plan *p)
{
	memset(p, 0, sizeof(*p));
	p->landlock_fd = -1;
}

void jail_plan_free(struct jail_plan *p)
{
	if (p->landlock_fd >= 0)
		close(p->landlock_fd);
	p->landlock_fd = -1;
	seccomp_prog_free(&p->seccomp);
	strv_free(&p->rw_check);
}

/* Fail step what with -r; returns r. */
static int step_fail(int r, const char *what, char *out, size_t out_len)
{
	snprintf(out, out_len, "%s", what);
	return r;
}

int jail_apply(const struct jail_plan *p, char *what, size_t what_len)
{
	int r;

	/* 1. rlimits first: lowering needs no privilege, raising would. */
	if ((r = rlimit_apply(&p->rlimits)) < 0)
		return step_fail(r, "setrlimit", what, what_len);
	/* 2. identity: bounding set dropped while still root, then the uid switch. */
	if ((r = privs_apply(&p->privs)) < 0)
		return step_fail(r, "drop privileges", what, what_len);
	/* 3. paths the policy wants writable must be, for the identity we now have. */
	for (size_t i = 0; i < p->rw_check.n; i++) {
		if (access(p->rw_check.v[i], W_OK) < 0) {
			r = -errno;
			snprintf(what, what_len,
				 "read-write path %s is not writable by uid %u (set run_as or fix "
				 "its permissions)",
				 p->rw_check.v[i], (unsigned)getuid());
			return r;
		}
	}
	/* 4. no_new_privs: setuid binaries and file capabilities give nothing. */
	if ((r = privs_no_new_privs()) < 0)
		return step_fail(r, "PR_SET_NO_NEW_PRIVS", what, what_len);
	/* 5. Landlock: filesystem (and TCP, signal, abstract socket) confinement. */
	if (p->landlock_fd >= 0 && (r = landlock_apply(p->landlock_fd)) < 0)
		return step_fail(r, "landlock_restrict_self", what, what_len);
	/* 6. seccomp last: it may forbid what the steps above needed. */
	if (p->seccomp.active && (r = seccomp_apply(&p->seccomp)) < 0)
		return step_fail(r, "seccomp", what, what_len);
	return 0;
}
