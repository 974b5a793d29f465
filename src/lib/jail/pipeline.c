/* pipeline.c: the two ordered step lists, side by side (nsjail's containProc): the child of
 * a process backend (host-direct, linux-native) before its execve, and the container's
 * init, PID 1 of its namespaces, before it serves. Each step is one mechanism of this
 * folder; the first that fails stops the list and names itself. Both run after a clone of
 * a possibly multithreaded process: syscalls only, no malloc. */
#include "lib/jail/jail.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>

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

/* ------------------------------------------------------------ process backends */

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

/* ------------------------------------------------------------ the container's init */

static int writable_or_fail(const char *const *paths, uid_t host_uid, char *what, size_t len)
{
	for (size_t i = 0; paths[i]; i++) {
		if (access(paths[i], W_OK) == 0)
			continue;
		int r = -errno;
		snprintf(what, len,
			 "read-write path %s is not writable by the sandbox's user (host uid %u)",
			 paths[i], (unsigned)host_uid);
		return r;
	}
	return 0;
}

/* Wait until the host has moved us into every cgroup hierarchy, then root a cgroup
 * namespace there. 1 when the host gave up (it reports why). */
static int wait_placed(const struct jail_init_plan *p)
{
	close(p->placed_wr);
	char go;
	ssize_t n;
	do
		n = read(p->placed_fd, &go, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		return 1;
	close(p->placed_fd);
	return unshare(CLONE_NEWCGROUP) < 0 ? -errno : 0;
}

/* A ruleset (or landlock_*_child's -errno) at its fixed slot: 1 placed, 0 no Landlock
 * (or no network rules) here, -errno. */
static int place_ruleset(int ll, int slot)
{
	if (ll == -EOPNOTSUPP || ll == -ENOSYS)
		return 0;
	if (ll < 0)
		return ll;
	if (ll != slot) {
		if (dup3(ll, slot, O_CLOEXEC) < 0)
			return -errno;
		close(ll);
	}
	return 1;
}

/* Everything visible read-only but the writable scratch, in the ruleset's fixed slot. No
 * Landlock here: seccomp and the namespaces still hold. */
static int landlock_slot(const struct jail_init_plan *p, struct jail_init_state *st)
{
	int r = place_ruleset(landlock_ruleset_child(p->ll_ro, p->ll_rw, p->ll_deny_connect, true),
			      p->ll_slot);
	if (r <= 0)
		return r;
	st->landlock = true;
	/* issue 12: the connect layer of a network that can be switched. Built now, as the
	 * filesystem one is: no sandboxed code has run yet. Without network rules (ABI < 4)
	 * the empty namespace alone keeps "none" closed, as it does for any sandbox there. */
	if (p->ll_net_slot < 0)
		return 0;
	r = place_ruleset(landlock_connect_ruleset_child(), p->ll_net_slot);
	st->landlock_net = r > 0;
	return r < 0 ? r : 0;
}

/* PID 1 gives up everything before it serves: not dumpable, no capabilities (in any user
 * namespace), no new privileges, the seccomp filter. Its commands inherit all of it. */
static int seal(const struct jail_init_plan *p, const char **step)
{
	int r;
	struct privs_plan pp = {.drop_caps = true};
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return *step = "PR_SET_DUMPABLE", -errno;
	if ((r = privs_apply(&pp)) < 0)
		return *step = "drop capabilities", r;
	if ((r = privs_no_new_privs()) < 0)
		return *step = "PR_SET_NO_NEW_PRIVS", r;
	if (p->sc->active && (r = seccomp_apply(p->sc)) < 0)
		return *step = "seccomp", r;
	return 0;
}

int jail_init_apply(const struct jail_init_plan *p, struct jail_init_state *st, char *what,
		    size_t what_len)
{
	int r;
	const char *step = NULL;
	st->report_fd = p->report_fd;
	st->landlock = false;
	st->landlock_net = false;
	what[0] = '\0';

	/* 1. Its ids in the user namespace before touching anything: until now its kernel uid
	 * is the caller's. Uid 0 is not mapped, so this is no move away from root and the
	 * namespace's capabilities stay until the seal drops them. */
	trace_mark("init: started");
	if ((r = privs_set_ids(p->uid, p->gid, p->set_groups)) < 0)
		return step_fail(r, "set the sandbox's uid/gid in the user namespace", what,
				 what_len);
	/* 1b. Its user namespace's own caps on the per-user counts (inotify, namespaces),
	 * written with the namespace's capabilities while the host's /proc is still here. */
	const char *knob = NULL;
	if ((r = userns_limits_lower(&knob)) < 0) {
		snprintf(what, what_len, "lower %s in the sandbox's user namespace", knob);
		return r;
	}
	/* 2. Not agentd's name or arguments (/proc/1/cmdline would show agentd's command
	 * line); a one-shot run's parent-death signal the credential change cleared (a
	 * persistent init belongs to its owner *process*: the EOF of its control socket,
	 * whose end every thread of the owner shares, ends it); its own session; the signal
	 * dispositions a command expects. */
	prctl(PR_SET_NAME, p->name, 0, 0, 0);
	proc_hide_cmdline(p->name);
	if (p->pdeathsig && prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return step_fail(-errno, "PR_SET_PDEATHSIG", what, what_len);
	if (setsid() < 0)
		return step_fail(-errno, "setsid", what, what_len);
	signals_reset(p->ignored);
	/* 3. The fresh root (mounts/apply.c): tmpfs root, read-only runtime, filtered /etc,
	 * proc, minimal dev, scratch for workdir and /tmp, pivot_root. */
	int kept = -1; /* issue 13: img-build: an image root's upper layer, for the host */
	if ((r = mount_plan_apply_keep(p->mp, what, what_len, &kept)) < 0)
		return what[0] ? r : step_fail(r, "set up the root filesystem", what, what_len);
	trace_mark("init: root mounted");
	/* 4. Paths the policy wants writable must be, for the sandbox's user. */
	if ((r = writable_or_fail(p->rw_check, p->host_uid, what, what_len)) < 0)
		return r;
	if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
		return step_fail(-errno, "sethostname", what, what_len);
	/* 5. The network: lo up in a namespace of its own (one made by netns.c has it, and
	 * is not ours to change), the egress proxy's listener handed to the host. */
	if (p->loopback && (r = netns_loopback_up()) < 0)
		return step_fail(r, "bring up lo", what, what_len);
	if (p->listener_sock >= 0 &&
	    (r = netns_listener_send(p->listener_sock, p->listener_port, p->listener_msg,
				     p->listener_msg_len)) < 0)
		return step_fail(r, "egress proxy listener on 127.0.0.1", what, what_len);
	/* 6. The cgroup: on v1 the host moves us in while we set up the root (it makes the
	 * cgroup meanwhile): nothing else runs before we are in it. */
	if (p->placed_fd >= 0) {
		if ((r = wait_placed(p)) != 0)
			return r > 0 ? -ECANCELED : step_fail(r, "unshare the cgroup namespace",
								what, what_len);
		trace_mark("init: in its cgroup");
	}
	/* 7. fds at fixed numbers, stdio /dev/null, everything else closed. */
	struct fd_move place[FDS_PLACE_MAX];
	int nplace = p->nplace;
	memcpy(place, p->place, sizeof(place));
	if (kept >= 0 && p->keep_slot > 2 && nplace < FDS_PLACE_MAX)
		place[nplace++] = (struct fd_move){kept, p->keep_slot};
	if ((r = fds_place(place, nplace, p->close_from, &st->report_fd)) < 0)
		return step_fail(r, "place fds", what, what_len);
	trace_mark("init: fds placed");
	/* 8. Landlock as defence in depth, built here because the tmpfs mounts exist only in
	 * this namespace (commands restrict themselves with it). */
	if ((r = landlock_slot(p, st)) < 0)
		return step_fail(r, "landlock ruleset", what, what_len);
	/* 9. Sealed. */
	if ((r = seal(p, &step)) < 0)
		return step_fail(r, step, what, what_len);
	trace_mark("init: sealed");
	return 0;
}
