/* template.c: memory-snapshot templates for fast starts (state.h, docs/microvm.md#templates).
 * One booted VM per set of inputs, saved at its agent's HELLO with QMP `migrate` to a file
 * under agentd's state directory; a new sandbox's QEMU loads it with `migrate-incoming`
 * from an fd and continues. Everything here runs on files agentd made, in a directory only
 * root can enter; the guest never sees the template's files (QEMU gets fds). */
#include "lib/backends/microvm/state.h"
#include "lib/image/image.h"

#include <dirent.h>
#include <sys/file.h>
#include <linux/fs.h>

#define TMPL_FORMAT "agentd-microvm-template 1"
#define POLL_US 5000

const char *vm_tmpl_unavailable(const struct vm_tmpl_inputs *in)
{
	if (in->virtiofs)
		return "virtiofs shares cannot migrate (QEMU refuses to migrate a vhost-user-fs "
		       "device)";
	return NULL;
}

static int hash_file(struct sha256_ctx *c, const char *what, const char *path,
		     agentd_error *err)
{
	struct stat st;
	if (!path || stat(path, &st) < 0)
		return agentd_error_errno(err, path ? errno : ENOENT, "template key: %s %s", what,
					  path ? path : "(none)");
	char buf[PATH_MAX + 256];
	int n = snprintf(buf, sizeof(buf), "%s=%s dev=%llu ino=%llu size=%lld mtime=%lld.%09ld "
			 "ctime=%lld.%09ld\n",
			 what, path, (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
			 (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
			 (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	sha256_update(c, (size_t)n, (const uint8_t *)buf);
	return 0;
}

int vm_tmpl_key(const struct vm_tmpl_inputs *in, char key[VM_TMPL_KEY_LEN + 1],
		agentd_error *err)
{
	struct sha256_ctx c;
	sha256_init(&c);
	char buf[256];
	int n = snprintf(buf, sizeof(buf), TMPL_FORMAT "\nmem=%" PRIu64 " vcpus=%u accel=%s disk=%"
			 PRIu64 "\n", in->guest_mem_bytes, in->vcpus, in->kvm ? "kvm" : "tcg",
			 in->disk_bytes);
	sha256_update(&c, (size_t)n, (const uint8_t *)buf);
	if (hash_file(&c, "qemu", vm_qemu_binary(), err) < 0 ||
	    hash_file(&c, "kernel", in->files->kernel, err) < 0 ||
	    hash_file(&c, "initrd", in->files->initrd, err) < 0)
		return -1;
	sha256_ctx_hex(&c, key);
	return 0;
}

int vm_tmpl_root_open(const char *root, agentd_error *err)
{
	if (mkdir_p(root, 0700) < 0)
		return agentd_error_errno(err, errno, "templates: create %s", root);
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return agentd_error_errno(err, e, "templates: open %s", root);
	}
	if (st.st_uid != geteuid()) {
		close(fd);
		return agentd_error_set(err, EPERM, "templates: %s is owned by uid %u, not by us",
					root, (unsigned)st.st_uid);
	}
	if ((st.st_mode & 077) && fchmod(fd, 0700) < 0) {
		close(fd);
		return agentd_error_errno(err, errno, "templates: chmod 0700 %s", root);
	}
	return fd;
}

/* The lock file of key, locked (op: LOCK_EX, maybe | LOCK_NB); it is the file now at the
 * path (a prune may have removed the one we waited on). */
static int lock_at(int rootfd, const char *name, int op)
{
	for (;;) {
		int fd = openat(rootfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return -1;
		if (flock(fd, op) < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		struct stat a, b;
		if (fstat(fd, &a) == 0 && fstatat(rootfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			return fd;
		close(fd);
	}
}

int vm_tmpl_lock(int rootfd, const char *key, agentd_error *err)
{
	_cleanup_free_ char *name = xasprintf("%s.lock", key);
	int fd = lock_at(rootfd, name, LOCK_EX);
	return fd < 0 ? agentd_error_errno(err, errno, "templates: lock %s", name) : fd;
}

int vm_tmpl_open(int rootfd, const char *key, int *mem_fd, int *disk_fd)
{
	*mem_fd = *disk_fd = -1;
	_cleanup_close_ int d = openat(rootfd, key, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0)
		return -1;
	*mem_fd = openat(d, "mem", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (*mem_fd < 0)
		return -1;
	*disk_fd = openat(d, "blank.img", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (*disk_fd < 0 && errno != ENOENT) {
		int e = errno;
		close(take_fd(mem_fd));
		errno = e;
		return -1;
	}
	return 0;
}

int vm_tmpl_make_blank(int dirfd, const char *name, uint64_t bytes, agentd_error *err)
{
	_cleanup_close_ int fd =
		openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0)
		return agentd_error_errno(err, errno, "templates: create the blank disk");
	/* mkfs sees the file through our fd table: no path of ours is reused */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)getpid(), fd);
	char *argv[] = {"mkfs.ext4", "-q", "-F", "-m", "0", "-E",
			"lazy_itable_init=0,lazy_journal_init=0,nodiscard", path, NULL};
	if (run_host_tool(argv, err) < 0)
		return agentd_error_prefix(err, "templates: format the blank disk");
	return fsync(fd) < 0 ? agentd_error_errno(err, errno, "templates: sync the blank disk") : 0;
}

/* Poll cmd's answer until its "status" is not one of busy[] (or the deadline): the status
 * (copied to st), or -1 + err. */
static int wait_status(struct vm_qmp *q, const char *cmd, const char *const *busy, char *st,
		       size_t st_len, uint64_t deadline, agentd_error *err)
{
	for (;;) {
		json_t *r = vm_qmp_execute(q, cmd, NULL, -1, 5000, err);
		if (!r)
			return -1;
		const char *s = json_string_value(json_object_get(r, "status"));
		const char *why = json_string_value(json_object_get(r, "error-desc"));
		snprintf(st, st_len, "%s", s ? s : "");
		if (why)
			agentd_error_set(err, EIO, "%s", why);
		json_decref(r);
		bool waiting = false;
		for (size_t i = 0; busy[i]; i++)
			waiting |= strcmp(st, busy[i]) == 0;
		if (!waiting)
			return 0;
		if (now_ms_monotonic() >= deadline)
			return agentd_error_set(err, ETIMEDOUT, "still %s after the deadline", st);
		usleep(POLL_US);
	}
}

/* fd handed to QEMU (getfd "tmpl"), then cmd (migrate, migrate-incoming) on "fd:tmpl". */
static int qmp_on_fd(struct vm_qmp *q, int fd, const char *cmd, uint64_t timeout_ms,
		     agentd_error *err)
{
	json_t *r = vm_qmp_execute(q, "getfd", json_pack("{s:s}", "fdname", "tmpl"), fd,
				   timeout_ms, err);
	if (r) {
		json_decref(r);
		r = vm_qmp_execute(q, cmd, json_pack("{s:s}", "uri", "fd:tmpl"), -1, timeout_ms,
				   err);
	}
	json_decref(r);
	return r ? 0 : -1;
}

int vm_tmpl_save(struct vm_qmp *q, int mem_fd, uint64_t timeout_ms, agentd_error *err)
{
	uint64_t deadline = now_ms_monotonic() + timeout_ms;
	static const char *const busy[] = {"none", "setup", "active", "device", "pre-switchover",
					   "cancelling", "wait-unplug", NULL};
	char st[32];
	if (qmp_on_fd(q, mem_fd, "migrate", timeout_ms, err) < 0 ||
	    wait_status(q, "query-migrate", busy, st, sizeof(st), deadline, err) < 0)
		return agentd_error_prefix(err, "template save");
	if (strcmp(st, "completed") != 0)
		return agentd_error_prefix(err, "template save: migration %s", st);
	return 0;
}

int vm_tmpl_load(struct vm_qmp *q, int mem_fd, uint64_t timeout_ms, agentd_error *err)
{
	uint64_t deadline = now_ms_monotonic() + timeout_ms;
	static const char *const busy[] = {"inmigrate", NULL};
	char st[32];
	if (qmp_on_fd(q, mem_fd, "migrate-incoming", timeout_ms, err) < 0 ||
	    wait_status(q, "query-status", busy, st, sizeof(st), deadline, err) < 0)
		return agentd_error_prefix(err, "template load");
	if (strcmp(st, "running") == 0)
		return 0;
	/* -S, or a source saved while stopped: loaded, not yet running */
	if (strcmp(st, "paused") == 0 || strcmp(st, "postmigrate") == 0 ||
	    strcmp(st, "prelaunch") == 0)
		return vm_qmp_simple(q, "cont", timeout_ms, err) < 0
			       ? agentd_error_prefix(err, "template load")
			       : 0;
	return agentd_error_set(err, EIO, "template load: the VM is %s after loading", st);
}

int vm_tmpl_disk_copy(int blank_fd, int dirfd, const char *name, agentd_error *err)
{
	struct stat st;
	if (fstat(blank_fd, &st) < 0)
		return agentd_error_errno(err, errno, "templates: the blank disk");
	_cleanup_close_ int fd =
		openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return agentd_error_errno(err, errno, "templates: create the sandbox's disk");
	if (ioctl(fd, FICLONE, blank_fd) == 0)
		return 0;
	/* the blank's data extents only: the rest stays a hole */
	if (ftruncate(fd, st.st_size) < 0)
		goto fail;
	for (off_t off = 0; off < st.st_size;) {
		off_t data = lseek(blank_fd, off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;
		off_t hole = data < 0 ? -1 : lseek(blank_fd, data, SEEK_HOLE);
		if (hole < 0)
			goto fail;
		for (off_t in = data, out = data; in < hole;) {
			ssize_t n = copy_file_range(blank_fd, &in, fd, &out, (size_t)(hole - in), 0);
			if (n <= 0)
				goto fail;
		}
		off = hole;
	}
	return 0;
fail:
	agentd_error_errno(err, errno ? errno : EIO, "templates: copy the blank disk");
	unlinkat(dirfd, name, 0);
	return -1;
}

static int write_meta(int dirfd, const struct vm_tmpl_build *b, uint64_t build_ms,
		      uint64_t mem_bytes, agentd_error *err)
{
	json_t *m = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "format", TMPL_FORMAT, "key",
			      b->key, "disk_bytes", (json_int_t)b->disk_bytes, "build_ms",
			      (json_int_t)build_ms, "mem_file_bytes", (json_int_t)mem_bytes,
			      "created", (json_int_t)time(NULL));
	if (b->in && b->in->files)
		json_object_set_new(m, "inputs",
				    json_pack("{s:s, s:s, s:I, s:i, s:b, s:I}", "kernel",
					      b->in->files->kernel, "initrd", b->in->files->initrd,
					      "guest_mem_bytes", (json_int_t)b->in->guest_mem_bytes,
					      "vcpus", (int)b->in->vcpus, "kvm", b->in->kvm,
					      "disk_bytes", (json_int_t)b->in->disk_bytes));
	if (b->hello)
		json_object_set_new(m, "hello",
				    json_pack("{s:I, s:I, s:I, s:s}", "version",
					      (json_int_t)b->hello->version, "caps",
					      (json_int_t)b->hello->caps, "boot_ms",
					      (json_int_t)b->hello->boot_ms, "agent", b->hello->agent));
	_cleanup_free_ char *s = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	_cleanup_close_ int fd =
		openat(dirfd, "meta.json", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, s, strlen(s)) < 0)
		return agentd_error_errno(err, errno, "templates: write meta.json");
	return 0;
}

int vm_tmpl_build(int rootfd, const struct vm_tmpl_build *b, agentd_error *err)
{
	uint64_t t0 = now_ms_monotonic();
	_cleanup_free_ char *tmp = xasprintf("%s.tmp", b->key);
	rm_rf_at(rootfd, tmp);	/* a build that crashed, under this same lock */
	if (mkdirat(rootfd, tmp, 0700) < 0)
		return agentd_error_errno(err, errno, "templates: create %s", tmp);
	_cleanup_close_ int dfd = openat(rootfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int mem = -1;
	bool booted = false;
	char disk_path[64] = "";
	if (dfd < 0) {
		agentd_error_errno(err, errno, "templates: open %s", tmp);
		goto fail;
	}
	if (b->disk_bytes) {
		_cleanup_close_ int blank = -1;
		if (vm_tmpl_make_blank(dfd, "blank.img", b->disk_bytes, err) < 0)
			goto fail;
		blank = openat(dfd, "blank.img", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		/* the template VM's own disk: a copy, the blank stays as made */
		if (blank < 0 || vm_tmpl_disk_copy(blank, dfd, "boot.img", err) < 0)
			goto fail;
		snprintf(disk_path, sizeof(disk_path), "/proc/%d/fd/%d/boot.img", (int)getpid(),
			 dfd);
	}
	struct vm_qmp *q = NULL;
	if (b->boot(b->ud, disk_path[0] ? disk_path : NULL, &q, err) < 0)
		goto fail;
	booted = true;
	mem = openat(dfd, "mem", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (mem < 0) {
		agentd_error_errno(err, errno, "templates: create the memory file");
		goto fail;
	}
	if (vm_qmp_simple(q, "stop", 5000, err) < 0 || vm_tmpl_save(q, mem, 120000, err) < 0)
		goto fail;
	b->shutdown(b->ud);
	booted = false;
	struct stat st;
	if (fsync(mem) < 0 || fstat(mem, &st) < 0) {
		agentd_error_errno(err, errno, "templates: sync the memory file");
		goto fail;
	}
	if (disk_path[0])
		unlinkat(dfd, "boot.img", 0);
	if (write_meta(dfd, b, now_ms_monotonic() - t0, (uint64_t)st.st_size, err) < 0 ||
	    fsync(dfd) < 0)
		goto fail;
	rm_rf_at(rootfd, b->key);	/* one that could not be opened whole */
	if (renameat(rootfd, tmp, rootfd, b->key) < 0) {
		agentd_error_errno(err, errno, "templates: publish %s", b->key);
		goto fail;
	}
	fsync(rootfd);
	return 0;
fail:
	if (booted)
		b->shutdown(b->ud);
	rm_rf_at(rootfd, tmp);
	return agentd_error_prefix(err, "build the template");
}

static bool kept(const char *name, const char *const *keep, size_t n_keep)
{
	for (size_t i = 0; i < n_keep; i++)
		if (strcmp(name, keep[i]) == 0)
			return true;
	return false;
}

int vm_tmpl_prune(int rootfd, const char *const *keep, size_t n_keep, agentd_error *err)
{
	/* a description of its own: a dup would share (and leave at the end) rootfd's offset */
	int dup = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dup < 0 ? NULL : fdopendir(dup);
	if (!d) {
		if (dup >= 0)
			close(dup);
		return agentd_error_errno(err, errno, "templates: list");
	}
	int removed = 0;
	agentd_strv names = {0};
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			strv_push(&names, e->d_name);
	closedir(d);
	for (size_t i = 0; i < names.n; i++) {
		char key[VM_TMPL_KEY_LEN + 16];
		snprintf(key, sizeof(key), "%s", names.v[i]);
		char *dot = strchr(key, '.');
		bool is_lock = dot && strcmp(dot, ".lock") == 0;
		bool is_tmp = dot && strcmp(dot, ".tmp") == 0;
		if (dot)
			*dot = '\0';
		if (strlen(key) != VM_TMPL_KEY_LEN || !hex64_valid(key) || (dot && !is_lock && !is_tmp))
			continue;	/* not ours */
		if (kept(key, keep, n_keep) && !is_tmp)
			continue;
		if (is_lock)
			continue;	/* removed with its template, below */
		_cleanup_free_ char *lname = xasprintf("%s.lock", key);
		int l = lock_at(rootfd, lname, LOCK_EX | LOCK_NB);
		if (l < 0)
			continue;	/* in use: being built */
		if (rm_rf_at(rootfd, names.v[i]) == 0)
			removed++;
		if (!kept(key, keep, n_keep))
			unlinkat(rootfd, lname, 0);
		close(l);
	}
	/* locks left without a template (a build that failed) */
	for (size_t i = 0; i < names.n; i++) {
		size_t n = strlen(names.v[i]);
		if (n != VM_TMPL_KEY_LEN + 5 || strcmp(names.v[i] + VM_TMPL_KEY_LEN, ".lock"))
			continue;
		char key[VM_TMPL_KEY_LEN + 1];
		memcpy(key, names.v[i], VM_TMPL_KEY_LEN);
		key[VM_TMPL_KEY_LEN] = '\0';
		struct stat st;
		if (kept(key, keep, n_keep) || fstatat(rootfd, key, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		int l = lock_at(rootfd, names.v[i], LOCK_EX | LOCK_NB);
		if (l >= 0) {
			unlinkat(rootfd, names.v[i], 0);
			close(l);
		}
	}
	strv_free(&names);
	return removed;
}

static json_t *read_meta(int rootfd, const char *key)
{
	_cleanup_free_ char *path = xasprintf("%s/meta.json", key);
	_cleanup_free_ char *text = read_file_at(rootfd, path, 1 << 16, NULL);
	return text ? json_loads(text, 0, NULL) : NULL;
}

int vm_tmpl_hello(int rootfd, const char *key, struct vm_hello *h, agentd_error *err)
{
	json_t *m = read_meta(rootfd, key);
	json_t *j = json_object_get(m, "hello");
	const char *agent = json_string_value(json_object_get(j, "agent"));
	if (!j || !agent) {
		json_decref(m);
		return agentd_error_set(err, EINVAL, "template %.12s: meta.json has no HELLO", key);
	}
	memset(h, 0, sizeof(*h));
	h->version = (uint64_t)json_integer_value(json_object_get(j, "version"));
	h->caps = (uint64_t)json_integer_value(json_object_get(j, "caps"));
	h->boot_ms = (uint64_t)json_integer_value(json_object_get(j, "boot_ms"));
	snprintf(h->agent, sizeof(h->agent), "%s", agent);
	json_decref(m);
	return 0;
}

/* The key its meta.json's inputs give now, or false (unreadable, a file gone). */
static bool current_key(int rootfd, const char *name, char key[VM_TMPL_KEY_LEN + 1])
{
	json_t *m = read_meta(rootfd, name);
	json_t *in = json_object_get(m, "inputs");
	const char *k = json_string_value(json_object_get(in, "kernel"));
	const char *i = json_string_value(json_object_get(in, "initrd"));
	bool ok = false;
	if (k && i && strlen(k) < PATH_MAX && strlen(i) < PATH_MAX) {
		struct vm_guest_files g;
		snprintf(g.kernel, sizeof(g.kernel), "%s", k);
		snprintf(g.initrd, sizeof(g.initrd), "%s", i);
		struct vm_tmpl_inputs t = {
			.files = &g,
			.guest_mem_bytes = (uint64_t)json_integer_value(json_object_get(in, "guest_mem_bytes")),
			.vcpus = (unsigned)json_integer_value(json_object_get(in, "vcpus")),
			.kvm = json_is_true(json_object_get(in, "kvm")),
			.disk_bytes = (uint64_t)json_integer_value(json_object_get(in, "disk_bytes")),
		};
		ok = vm_tmpl_key(&t, key, NULL) == 0;
	}
	json_decref(m);
	return ok;
}

int vm_tmpl_prune_stale(int rootfd, agentd_error *err)
{
	int dfd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return agentd_error_errno(err, errno, "templates: list");
	}
	agentd_strv keep = {0};
	for (struct dirent *e; (e = readdir(d));) {
		char key[VM_TMPL_KEY_LEN + 1];
		if (strlen(e->d_name) == VM_TMPL_KEY_LEN && current_key(rootfd, e->d_name, key) &&
		    strcmp(key, e->d_name) == 0)
			strv_push(&keep, e->d_name);
	}
	closedir(d);
	int r = vm_tmpl_prune(rootfd, (const char *const *)keep.v, keep.n, err);
	strv_free(&keep);
	return r;
}

/* ------------------------------------------------------------- the backend's start */

struct tmpl_boot {
	agentd_backend *jail;
	const agentd_spec *spec;
	const struct vm_verdict *v;
	struct vm vm;
	bool up;
};

static int tb_boot(void *ud, const char *disk, struct vm_qmp **q, agentd_error *err)
{
	struct tmpl_boot *t = ud;
	(void)disk;	/* this build's VMs have no workdir disk: the template has none */
	struct vm_launch extra = {.no_setup = true};
	if (vm_boot(t->jail, t->spec, t->v, &extra, 0, &t->vm, err) < 0)
		return -1;
	t->up = true;
	*q = &t->vm.qmp;
	return 0;
}

static void tb_shutdown(void *ud)
{
	struct tmpl_boot *t = ud;
	if (!t->up)
		return;
	/* stopped for good (saved): no power-off to wait for */
	vm_chan_break(t->vm.ch, "template saved");
	vm_shutdown(&t->vm);
	t->up = false;
}

bool vm_tmpl_wanted(const agentd_spec *spec)
{
	const char *e = getenv("AGENTD_MICROVM_TEMPLATES");
	return e && strncmp(e, "nofiles", 7) == 0 && spec->network.mode == AGENTD_NET_NONE &&
	       !spec->allowed_paths_ro.n && !spec->allowed_paths_rw.n && !spec->n_bind_mounts;
}

int vm_tmpl_start(agentd_backend *jail, const agentd_spec *spec, const struct vm_verdict *v,
		  const char *root, struct vm *vm, char *why, size_t why_len, agentd_error *err)
{
	struct vm_guest_files files;
	if (vm_guest_files(&files, err) < 0)
		return -1;
	struct vm_tmpl_inputs in = {
		.files = &files,
		.guest_mem_bytes = vm_guest_mem(spec),
		.vcpus = vm_guest_vcpus(spec),
		.kvm = v->kvm,
		.virtiofs = false,	/* a template's sandbox gets no file share (vm_tmpl_wanted) */
	};
	const char *no = vm_tmpl_unavailable(&in);
	const char *e = getenv("AGENTD_MICROVM_TEMPLATES");
	if (!no && e && strcmp(e, "nofiles-cold") == 0)
		no = "turned off (AGENTD_MICROVM_TEMPLATES=nofiles-cold)";
	if (no) {
		snprintf(why, why_len, "template start: not available: %s", no);
		return 0;
	}
	char key[VM_TMPL_KEY_LEN + 1];
	if (vm_tmpl_key(&in, key, err) < 0)
		return -1;
	_cleanup_close_ int rfd = vm_tmpl_root_open(root, err);
	if (rfd < 0)
		return -1;
	_cleanup_close_ int lock = vm_tmpl_lock(rfd, key, err);
	if (lock < 0)
		return -1;
	_cleanup_close_ int mem = -1, disk = -1;
	if (vm_tmpl_open(rfd, key, &mem, &disk) < 0) {
		if (errno != ENOENT)
			return agentd_error_errno(err, errno, "templates: open %.12s", key);
		struct tmpl_boot tb = {.jail = jail, .spec = spec, .v = v};
		struct vm_tmpl_build b = {.key = key, .in = &in, .hello = &tb.vm.hello,
					  .boot = tb_boot, .shutdown = tb_shutdown, .ud = &tb};
		trace_mark("vm: template build");
		if (vm_tmpl_build(rfd, &b, err) < 0)
			return -1;
		vm_tmpl_prune_stale(rfd, NULL);	/* what the new inputs replaced */
		if (vm_tmpl_open(rfd, key, &mem, &disk) < 0)
			return agentd_error_errno(err, errno, "templates: open %.12s", key);
	}
	struct vm_hello hello;
	if (vm_tmpl_hello(rfd, key, &hello, err) < 0)
		return -1;
	close(take_fd(&lock));	/* the open memory file outlives a prune */
	struct vm_launch extra = {.incoming = true, .incoming_fd = mem, .incoming_hello = &hello};
	if (vm_boot(jail, spec, v, &extra, 0, vm, err) < 0)
		return agentd_error_prefix(err, "start from template %.12s", key);
	snprintf(why, why_len, "template start: from %.12s", key);
	return 1;
}
