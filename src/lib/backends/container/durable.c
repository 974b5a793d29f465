/* durable.c: container sandboxes that outlive their owner process, host side — persist (an
 * endpoint the init listens on, a secret, the fds a later host needs handed to the init to
 * keep) and adopt (connect, prove the init by its secret, its pid and start time, its
 * cgroup; only then use what it sent: the fds, the table of its commands).
 *
 * The token: "v1:PID:START:UID:GID:INNER:LEASED:CGROUP:SECRET:PATH", PID the init's on the
 * host, START its start time (/proc/PID/stat field 22, so a reused pid is told apart),
 * UID/GID its host ids, INNER its uid inside, LEASED 1 when the ids are a lease of its own
 * (host_ids.c), CGROUP the sandbox cgroup's name, SECRET 64 hex digits, PATH the endpoint
 * (last: it may hold any character but NUL). */
#include "lib/backends/container/container.h"

#include <sys/random.h>
#include <sys/un.h>

#define TOKEN_VERSION "v1"
#define ADOPT_WAIT_MS 5000	/* an init answers at once; one whose owner lives does not */

struct ctr_adoption {
	agentd_process **procs;
	size_t n_procs;
	agentd_lost_exec *execs;
	size_t n_execs;
};

struct durable_token {
	pid_t pid;
	unsigned long long start;
	unsigned uid, gid, inner;
	int leased;
	char cg[AGENTD_ID_LEN];
	uint8_t secret[DURABLE_SECRET_LEN];
	const char *path;	/* in the token string */
};

/* ------------------------------------------------------------- shared */

/* Field 22 of /proc/pid/stat (after the comm, which may hold anything but ends at the
 * last ')'): 0, or -1 when the process is gone. */
/* The pid a pidfd refers to (/proc/self/fdinfo "Pid:"), or -1 (not a pidfd, or its
 * process is gone: the kernel says -1 then). */
static pid_t pidfd_pid(int pidfd)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	const char *p = strstr(buf, "\nPid:");
	return p ? (pid_t)strtol(p + 5, NULL, 10) : -1;
}

/* dir/name as a path of at most sun_path's length: through the O_PATH fd of dir. */
static void endpoint_addr(int dirfd, const char *name, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dirfd, name);
}

/* The directory of path (O_PATH) and its last component (in path). */
static int open_parent(const char *path, const char **name, agentd_error *err)
{
	const char *slash = strrchr(path, '/');
	if (!slash || !slash[1] || strlen(slash + 1) > 64)
		return agentd_error_set(err, EINVAL, "endpoint %s: not a path to a socket", path);
	_cleanup_free_ char *dir = slash == path ? xstrdup("/")
						 : xasprintf("%.*s", (int)(slash - path), path);
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return agentd_error_errno(err, errno, "open %s", dir);
	*name = slash + 1;
	return fd;
}

static bool secret_equal(const uint8_t *a, const uint8_t *b)
{
	uint8_t d = 0;
	for (size_t i = 0; i < DURABLE_SECRET_LEN; i++)
		d |= (uint8_t)(a[i] ^ b[i]);
	return d == 0;
}

/* ------------------------------------------------------------- persist */

/* A bound (not yet listening: the init listens, so a peer's credentials name it) unix
 * socket at dir/<id>.sock, 0600. dir must be the caller's own and not writable by others. */
static int make_endpoint(struct ctr *c, const char *id, const char *dir, agentd_error *err)
{
	_cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (dfd < 0 || fstat(dfd, &st) < 0)
		return agentd_error_errno(err, errno, "persist: %s", dir);
	if (st.st_uid != geteuid() || (st.st_mode & 022))
		return agentd_error_set(err, EPERM, "persist: %s must be a directory of uid %u "
					"that no one else can write (0700)", dir,
					(unsigned)geteuid());
	char name[AGENTD_ID_LEN + 8];
	snprintf(name, sizeof(name), "%s.sock", id);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return agentd_error_errno(err, errno, "persist: socket");
	struct sockaddr_un sa;
	endpoint_addr(dfd, name, &sa);
	unlinkat(dfd, name, 0);
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    fchmodat(dfd, name, 0600, 0) < 0) {
		int e = errno;
		close(s);
		unlinkat(dfd, name, 0);
		return agentd_error_errno(err, e, "persist: bind %s/%s", dir, name);
	}
	c->sock_dir = take_fd(&dfd);
	c->sock_name = xstrdup(name);
	return s;
}

static void remove_endpoint(struct ctr *c)
{
	if (c->sock_dir >= 0 && c->sock_name)
		unlinkat(c->sock_dir, c->sock_name, 0);
	if (c->sock_dir >= 0)
		close(c->sock_dir);
	c->sock_dir = -1;
	free(c->sock_name);
	c->sock_name = NULL;
}

/* The init's answer to a DURABLE_PERSIST (the only message it sends after setup). */
static int persist_answer(struct ctr *c, agentd_error *err)
{
	struct pollfd p = {.fd = c->ctl, .events = POLLIN};
	int r;
	do
		r = poll(&p, 1, ADOPT_WAIT_MS);
	while (r < 0 && errno == EINTR);
	struct ctl_msg m;
	int fds[CTL_MAX_FDS], nfds;
	ssize_t n = r > 0 ? ctl_recv(c->ctl, &m, fds, &nfds, MSG_DONTWAIT) : -1;
	ctl_close_fds(fds);
	if (n != (ssize_t)sizeof(m) || m.op != OP_DURABLE)
		return agentd_error_set(err, r == 0 ? ETIMEDOUT : EPROTO,
					"persist: the sandbox init did not answer");
	if (m.id)
		return agentd_error_errno(err, m.id < 4096 ? (int)m.id : EPROTO,
					  "persist: the sandbox init");
	return 0;
}

/* Hand the init the endpoint s, the secret and the fds a later host needs. */
static int send_persist(struct ctr *c, int s, const uint8_t *secret, agentd_error *err)
{
	_cleanup_close_ int mfd = memfd_create("agentd-secret", MFD_CLOEXEC);
	if (mfd < 0 || write_all(mfd, secret, DURABLE_SECRET_LEN) < 0)
		return agentd_error_errno(err, errno, "persist: secret");
	int kept[KEPT_N] = {c->init_pidfd, c->root_fd, c->workdir_fd, c->pts_fd, c->proxy_fd,
			    c->ids.lease_fd};
	int fds[CTL_MAX_FDS] = {s, mfd}, n = 2;
	uint32_t mask = 0;
	for (int i = 0; i < KEPT_N; i++)
		if (kept[i] >= 0) {
			mask |= 1u << i;
			fds[n++] = kept[i];
		}
	struct ctl_msg m = {.op = OP_DURABLE, .flags = DURABLE_PERSIST, .sig = (int32_t)mask};
	if (ctl_send(c->ctl, &m, fds, n) < 0)
		return agentd_error_errno(err, errno, "persist: the sandbox is not running");
	return persist_answer(c, err);
}

static char *make_token(const struct ctr *c, const agentd_sandbox *sb, const char *dir,
			unsigned long long start, const uint8_t *secret)
{
	char hex[2 * DURABLE_SECRET_LEN + 1];
	for (int i = 0; i < DURABLE_SECRET_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", secret[i]);
	return xasprintf(TOKEN_VERSION ":%d:%llu:%u:%u:%u:%d:%s:%s:%s/%s", (int)c->init_pid,
			 start, (unsigned)c->host_uid, (unsigned)c->host_gid,
			 (unsigned)c->inner_id, c->ids.lease_fd >= 0, sb->id, hex, dir,
			 c->sock_name);
}

/* From now on no janitor of ours may remove it: a killed owner leaves it to its adopter. */
static void janitor_release(struct ctr *c, const char *id)
{
	janitor_forget_cgroup(id);
	if (c->ids.lease_fd >= 0)
		janitor_forget_ids(&c->ids, id);
	if (c->snap_dir)
		janitor_forget_dir(c->snap_dir);
}

/* The processes started before it became durable: their host ends to the init too. */
static int keep_processes(agentd_sandbox *sb, agentd_error *err)
{
	int r = 0;
	pthread_mutex_lock(&sb->procs_lock);
	for (agentd_process *p = sb->procs; p && r == 0; p = p->next)
		r = ctr_proc_keep(sb->priv, p, err);
	pthread_mutex_unlock(&sb->procs_lock);
	return r;
}

static int persist_thawed(agentd_sandbox *sb, const char *dir, char **token,
			  agentd_error *err)
{
	struct ctr *c = sb->priv;
	unsigned long long start;
	if (proc_start_time(c->init_pid, &start, NULL) < 0)
		return agentd_error_set(err, ESRCH, "persist: the sandbox init is gone");
	uint8_t secret[DURABLE_SECRET_LEN];
	if (getrandom(secret, sizeof(secret), 0) != (ssize_t)sizeof(secret))
		return agentd_error_errno(err, errno, "persist: getrandom");
	int s = make_endpoint(c, sb->id, dir, err);
	if (s < 0)
		return -1;
	int r = send_persist(c, s, secret, err);
	close(s);
	if (r == 0 && keep_processes(sb, err) < 0)
		r = -1;
	if (r < 0) {
		remove_endpoint(c);
		return -1;
	}
	c->durable = true;
	c->token = make_token(c, sb, dir, start, secret);
	explicit_bzero(secret, sizeof(secret));
	janitor_release(c, sb->id);
	*token = xstrdup(c->token);
	return 0;
}

int ctr_persist(agentd_sandbox *sb, const char *dir, char **token, agentd_error *err)
{
	struct ctr *c = sb->priv;
	/* Not with c->lock held: keep_processes takes the process list's lock, which a destroy
	 * holds while a process's release takes c->lock. */
	pthread_mutex_lock(&c->lock);
	bool suspended = c->suspended;
	pthread_mutex_unlock(&c->lock);
	if (c->durable) {
		*token = xstrdup(c->token);
		return 0;
	}
	/* A suspended sandbox's init answers once thawed, and is frozen again. */
	if (suspended && cgroup_freeze(c->cg, false, err) < 0)
		return agentd_error_prefix(err, "persist: thaw");
	int r = persist_thawed(sb, dir, token, err);
	if (suspended)
		cgroup_freeze(c->cg, true, NULL);
	return r;
}

void ctr_durable_release(struct ctr *c)
{
	remove_endpoint(c);
	if (c->token)
		explicit_bzero(c->token, strlen(c->token));
	free(c->token);
	c->token = NULL;
	if (c->adoption) {
		struct ctr_adoption *a = c->adoption;
		agentd_adoption out = {.execs = a->execs, .n_execs = a->n_execs};
		agentd_adoption_free(&out);
		free(a->procs); /* the handles are the sandbox's: freed with it */
		free(a);
		c->adoption = NULL;
	}
}

/* ------------------------------------------------------------- adopt */

static int parse_token(const char *token, struct durable_token *t, agentd_error *err)
{
	char hex[2 * DURABLE_SECRET_LEN + 1];
	int pid, off = 0;
	if (strncmp(token, TOKEN_VERSION ":", 3) != 0)
		return agentd_error_set(err, EPROTO, "adopt: a token of another version (this "
					"build reads " TOKEN_VERSION ")");
	if (sscanf(token, TOKEN_VERSION ":%d:%llu:%u:%u:%u:%d:%32[0-9a-f]:%64[0-9a-f]:%n", &pid,
		   &t->start, &t->uid, &t->gid, &t->inner, &t->leased, t->cg, hex, &off) != 8 ||
	    !off || pid <= 1 || strlen(hex) != 2 * DURABLE_SECRET_LEN || token[off] != '/')
		return agentd_error_set(err, EINVAL, "adopt: not a durable sandbox's token");
	for (int i = 0; i < DURABLE_SECRET_LEN; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		t->secret[i] = (uint8_t)v;
	}
	explicit_bzero(hex, sizeof(hex));
	t->pid = pid;
	t->path = token + off;
	return 0;
}

/* What the init sent: its proof and fds, then its commands. */
struct hello {
	struct durable_hello h;
	int kept[KEPT_N];
	struct durable_entry e[MAX_ENTRIES];
	int efds[MAX_ENTRIES][KEEP_N];
	size_t n;
};

static void hello_close(struct hello *h)
{
	for (int i = 0; i < KEPT_N; i++)
		if (h->kept[i] >= 0)
			close(h->kept[i]);
	for (size_t i = 0; i < h->n; i++)
		for (int k = 0; k < KEEP_N; k++)
			if (h->efds[i][k] >= 0)
				close(h->efds[i][k]);
	explicit_bzero(&h->h, sizeof(h->h));
}

static ssize_t recv_wait(int s, void *buf, size_t len, int fds[CTL_MAX_FDS], int *nfds)
{
	struct pollfd p = {.fd = s, .events = POLLIN};
	int r;
	do
		r = poll(&p, 1, ADOPT_WAIT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		for (int i = 0; i < CTL_MAX_FDS; i++)
			fds[i] = -1;
		errno = ETIMEDOUT;
		return -1;
	}
	return ctl_recv_any(s, buf, len, fds, nfds, MSG_DONTWAIT);
}

/* The hello alone (the entries come once it proved itself). */
static int recv_hello(int s, struct hello *h, agentd_error *err)
{
	int fds[CTL_MAX_FDS], nfds;
	memset(h, 0, sizeof(*h));
	for (int i = 0; i < KEPT_N; i++)
		h->kept[i] = -1;
	ssize_t n = recv_wait(s, &h->h, sizeof(h->h), fds, &nfds);
	if (n < 0 && errno == ETIMEDOUT) {
		ctl_close_fds(fds);
		return agentd_error_set(err, ETIMEDOUT, "adopt: the sandbox init did not answer "
					"in %d ms (is another process its owner still?)",
					ADOPT_WAIT_MS);
	}
	if (n == 0) {
		ctl_close_fds(fds);
		return agentd_error_set(err, EPERM, "adopt: the endpoint closed without a word: "
					"not the sandbox's init");
	}
	if (n < (ssize_t)sizeof(h->h) || h->h.magic != DURABLE_MAGIC) {
		ctl_close_fds(fds);
		return agentd_error_set(err, EPERM, "adopt: the endpoint did not speak as a "
					"sandbox init");
	}
	if (h->h.version == 0 || h->h.version > DURABLE_PROTO) {
		ctl_close_fds(fds);
		return agentd_error_set(err, EPROTO, "adopt: the sandbox init speaks protocol "
					"%u, this build at most %u", h->h.version, DURABLE_PROTO);
	}
	if (nfds > CTL_MAX_FDS || ctl_take_masked(h->h.kept, KEPT_N, h->kept, fds, nfds) < 0)
		return agentd_error_set(err, EPERM, "adopt: the sandbox init sent other fds than "
					"it named");
	return 0;
}

/* Before anything it sent is used: the same secret, its pidfd is the token's pid and
 * that pid's start time is the token's (not a reused pid), the pid is in the sandbox's
 * cgroup, and the peer is the process that listens (the init listened). */
static int prove(int s, const struct hello *h, const struct durable_token *t,
		 const struct cgroup *cg, agentd_error *err)
{
	if (!secret_equal(h->h.secret, t->secret))
		return agentd_error_set(err, EPERM, "adopt: the endpoint does not know the "
					"sandbox's secret: not its init (a planted socket?)");
	int pidfd = h->kept[KEPT_PIDFD];
	unsigned long long start;
	if (pidfd < 0 || pidfd_pid(pidfd) != t->pid)
		return agentd_error_set(err, EPERM, "adopt: the init's pidfd is not pid %d",
					(int)t->pid);
	if (proc_start_time(t->pid, &start, NULL) < 0 || start != t->start)
		return agentd_error_set(err, EPERM, "adopt: pid %d is not the sandbox init "
					"(another start time: a reused pid)", (int)t->pid);
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	if (poll(&p, 1, 0) != 0)
		return agentd_error_set(err, ESRCH, "adopt: the sandbox init is exiting");
	if (!cgroup_has_pid(cg, t->pid))
		return agentd_error_set(err, EPERM, "adopt: pid %d is not in the sandbox's cgroup",
					(int)t->pid);
	struct ucred uc;
	socklen_t len = sizeof(uc);
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 || uc.pid != t->pid)
		return agentd_error_set(err, EPERM, "adopt: the endpoint's listener is not pid %d",
					(int)t->pid);
	return 0;
}

static int recv_entries(int s, struct hello *h, agentd_error *err)
{
	if (h->h.n_entries > MAX_ENTRIES)
		return agentd_error_set(err, EPROTO, "adopt: %u commands (at most %d)",
					h->h.n_entries, MAX_ENTRIES);
	for (uint32_t i = 0; i < h->h.n_entries; i++) {
		int fds[CTL_MAX_FDS], nfds;
		struct durable_entry *e = &h->e[h->n];
		memset(e, 0, sizeof(*e));
		ssize_t n = recv_wait(s, e, sizeof(*e), fds, &nfds);
		if (n < (ssize_t)sizeof(*e)) {
			ctl_close_fds(fds);
			return agentd_error_set(err, EPROTO, "adopt: the sandbox init's command "
						"table ended early");
		}
		if (nfds > CTL_MAX_FDS ||
		    ctl_take_masked(e->keep, KEEP_N, h->efds[h->n], fds, nfds) < 0)
			return agentd_error_set(err, EPROTO, "adopt: a command's fds");
		h->n++;
	}
	return 0;
}

/* Connect to the endpoint: ESRCH when nobody listens there (the init is gone). */
static int connect_endpoint(const struct durable_token *t, agentd_error *err)
{
	const char *name;
	_cleanup_close_ int dfd = open_parent(t->path, &name, err);
	if (dfd < 0)
		return errno == ENOENT ? agentd_error_set(err, ESRCH, "adopt: %s is gone",
							  t->path)
				       : -1;
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return agentd_error_errno(err, errno, "adopt: socket");
	struct sockaddr_un sa;
	endpoint_addr(dfd, name, &sa);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(s);
		if (e == ENOENT || e == ECONNREFUSED)
			return agentd_error_set(err, ESRCH, "adopt: no sandbox init listens at %s",
						t->path);
		return agentd_error_errno(err, e, "adopt: connect %s", t->path);
	}
	return s;
}

/* The next kill unit's number: past every u<n> its cgroup holds. */
static uint64_t unit_seq_after(const struct cgroup *cg)
{
	agentd_strv names = {0};
	uint64_t max = 0;
	cgroup_children(cg, &names);
	for (size_t i = 0; i < names.n; i++) {
		char *end;
		unsigned long long v = names.v[i][0] == 'u' ? strtoull(names.v[i] + 1, &end, 10) : 0;
		if (v > max && !*end)
			max = v;
	}
	strv_free(&names);
	return max;
}

static char **payload_argv(int fd)
{
	struct exec_payload pl;
	const char *why;
	agentd_strv argv = {0};
	if (fd >= 0 && exec_payload_decode(fd, &pl, &why) == 0)
		for (char **a = pl.argv; *a; a++)
			strv_push(&argv, *a);
	exec_payload_release(&pl);
	if (!argv.n)
		strv_push(&argv, "?"); /* started before it became durable */
	return argv.v;
}

/* A lost exec's tree dies with it, as an exec's always does: what left its process group
 * (the init killed that) is still in its unit. */
static void kill_unit_of(struct ctr *c, uint64_t n)
{
	char name[32];
	snprintf(name, sizeof(name), "u%" PRIu64, n);
	struct cgroup *unit = n && c->cg ? cgroup_open_child(c->cg, name, NULL) : NULL;
	if (!unit)
		return;
	cgroup_kill_all(unit);
	cgroup_destroy(unit);
}

/* Its commands: background processes as handles on the fds the init kept, the execs it
 * killed as lost. The lost ones are forgotten by the init at once (handed over here). */
static void take_entries(agentd_sandbox *sb, struct hello *h)
{
	struct ctr *c = sb->priv;
	struct ctr_adoption *a = xcalloc(1, sizeof(*a));
	a->procs = xcalloc(h->n + 1, sizeof(*a->procs));
	a->execs = xcalloc(h->n + 1, sizeof(*a->execs));
	for (size_t i = 0; i < h->n; i++) {
		const struct durable_entry *e = &h->e[i];
		int *fds = h->efds[i];
		if (e->flags & ENTRY_BACKGROUND) {
			if (fds[KEEP_PAYLOAD] >= 0)
				close(fds[KEEP_PAYLOAD]);
			fds[KEEP_PAYLOAD] = -1;
			a->procs[a->n_procs++] = ctr_proc_adopt(sb, e, fds);
			continue;
		}
		agentd_lost_exec *x = &a->execs[a->n_execs++];
		x->argv = payload_argv(fds[KEEP_PAYLOAD]);
		int ws = e->status;
		x->exit_code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws)
										  : SIGKILL);
		x->started_at_ms = e->started_ms;
		x->ended_at_ms = e->ended_ms;
		for (int k = 0; k < KEEP_N; k++)
			if (fds[k] >= 0)
				close(fds[k]);
		kill_unit_of(c, e->unit);
		struct ctl_msg m = {.op = OP_FORGET, .id = e->id};
		if (send(c->ctl, &m, sizeof(m), MSG_NOSIGNAL) < 0) {
			/* the init is gone: so is its table */
		}
	}
	h->n = 0;
	c->adoption = a;
}

/* The host state of the sandbox the init proved to be: its kept fds taken. */
static int build_ctr(agentd_sandbox *sb, const struct durable_token *t, struct hello *h,
		     struct cgroup *cg, int s, agentd_error *err)
{
	struct ctr *c = ctr_new(&sb->spec);
	sb->priv = c;
	c->ctl = s;
	c->cg = cg;
	c->init_pid = t->pid;
	c->host_uid = t->uid;
	c->host_gid = t->gid;
	/* issue 13: img-root. Its image's defaults again (the stored policy is the caller's);
	 * its init holds the image in use, so it is there unless removed by force. */
	agentd_error ierr = {0};
	if (sb->spec.image && ctr_image_acquire(sb->backend, sb, c, &ierr) < 0) {
		agentd_image_lease_free(c->image);
		c->image = NULL;
	}
	c->inner_id = t->inner;
	int *k = h->kept;
	c->init_pidfd = take_fd(&k[KEPT_PIDFD]);
	c->root_fd = take_fd(&k[KEPT_ROOT]);
	c->workdir_fd = take_fd(&k[KEPT_WORKDIR]);
	c->pts_fd = take_fd(&k[KEPT_PTS]);
	if (t->leased) {
		c->ids = (struct host_ids){.uid = t->uid, .gid = t->gid,
					   .lease_fd = take_fd(&k[KEPT_LEASE])};
	}
	c->next_id = h->h.next_id;
	/* Its snapshots, if it took any: removed with it. */
	char *snaps = xasprintf("%s/%s", sb->backend->work_root, sb->id);
	struct stat st;
	if (stat(snaps, &st) == 0 && S_ISDIR(st.st_mode))
		c->snap_dir = snaps;
	else
		free(snaps);
	c->unit_seq = unit_seq_after(cg);
	c->durable = true;
	if (c->root_fd < 0 || c->workdir_fd < 0)
		return agentd_error_set(err, EPROTO, "adopt: the sandbox init kept no root");
	if (sb->spec.network.mode == AGENTD_NET_ALLOWLIST) {
		agentd_proxy *proxy = backend_egress_proxy(sb->backend, err);
		if (!proxy || k[KEPT_PROXY] < 0)
			return agentd_error_prefix(err, "adopt: egress proxy");
		c->proxy_fd = take_fd(&k[KEPT_PROXY]);
		int l = fcntl(c->proxy_fd, F_DUPFD_CLOEXEC, 3);
		if (l < 0 || agentd_proxy_add_sandbox(proxy, l, sb->id, &sb->spec.network.allow,
						      err) < 0)
			return agentd_error_prefix(err, "adopt: egress proxy");
		c->proxy = proxy;
	}
	return 0;
}

int ctr_adopt(agentd_backend *b, const agentd_spec *spec, const char *id, const char *token,
	      agentd_sandbox **out, agentd_error *err)
{
	agentd_error scratch = {0};
	if (!err)
		err = &scratch; /* its code decides what becomes of the sandbox */
	struct durable_token t;
	if (parse_token(token, &t, err) < 0)
		return -1;
	if (strcmp(t.cg, id) != 0)
		return agentd_error_set(err, EINVAL, "adopt: the token is sandbox %s's, not %s",
					t.cg, id);
	struct cgroup *cg = cgroup_open(t.cg, NULL);
	if (!cg)
		return agentd_error_set(err, ESRCH, "adopt: sandbox %s has no cgroup: it is gone",
					id);
	/* A suspended sandbox's init is frozen: it answers once thawed, and is frozen again. */
	bool frozen = cgroup_is_frozen(cg);
	if (frozen && cgroup_freeze(cg, false, err) < 0) {
		cgroup_close(cg);
		return agentd_error_prefix(err, "adopt: thaw");
	}
	struct hello *h = xcalloc(1, sizeof(*h));
	agentd_sandbox *sb = NULL;
	int s = connect_endpoint(&t, err);
	int r = s < 0 ? -1 : recv_hello(s, h, err);
	if (r == 0 && (r = prove(s, h, &t, cg, err)) == 0)
		r = recv_entries(s, h, err);
	if (r == 0 && !(sb = agentd_sandbox_alloc_id(b, spec, &container_sandbox_ops, id, err)))
		r = -1;
	if (r == 0) {
		r = build_ctr(sb, &t, h, cg, s, err);
		cg = NULL;
		s = -1;
	}
	if (r == 0) {
		struct ctr *c = sb->priv;
		c->token = xstrdup(token);
		c->suspended = frozen;
		take_entries(sb, h);
		ctr_fill_caps(sb, strcmp(spec->seccomp_profile, "none") != 0);
		const char *name;
		c->sock_dir = open_parent(t.path, &name, NULL);
		c->sock_name = xstrdup(name);
	}
	explicit_bzero(&t, sizeof(t));
	hello_close(h);
	free(h);
	if (s >= 0)
		close(s);
	/* Not proven (EPERM), or its init is gone (ESRCH): it is ended, by the cgroup our
	 * token names (never by a pid the endpoint gave), so nothing unproven runs on;
	 * agentd_cleanup_stale_sandbox removes the rest. */
	if (r < 0 && cg && (err->code == EPERM || err->code == ESRCH))
		cgroup_kill_all(cg);
	else if (frozen && cg)
		cgroup_freeze(cg, true, NULL);
	else if (frozen && sb && sb->priv)
		cgroup_freeze(((struct ctr *)sb->priv)->cg, true, NULL);
	cgroup_close(cg);
	if (r < 0) {
		if (sb && sb->priv) {
			/* proven, but not usable: it stays as it was for a later try */
			struct ctr *c = sb->priv;
			c->release_only = true;
		}
		if (sb)
			ctr_sandbox_free(sb);
		return -1;
	}
	*out = sb;
	return 0;
}

int ctr_adopted(agentd_sandbox *sb, agentd_adoption *out, agentd_error *err)
{
	(void)err;
	struct ctr *c = sb->priv;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&c->lock);
	struct ctr_adoption *a = c->adoption;
	c->adoption = NULL;
	pthread_mutex_unlock(&c->lock);
	if (!a)
		return 0;
	out->processes = a->procs;
	out->n_processes = a->n_procs;
	out->execs = a->execs;
	out->n_execs = a->n_execs;
	free(a);
	return 0;
}
