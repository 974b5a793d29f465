/* test_vm_share.c (issue 15: vm-map): the micro-VM's shared tree, virtiofsd's jail and its
 * vhost-user socket, on the real virtiofsd and QEMU (skipped where they are not installed).
 * What the guest sees is the tree virtiofsd serves: checked through the fds the host holds
 * and through virtiofsd's own root (/proc/PID/root of the process that pivoted into it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "lib/backends/microvm/share.h"

#define MAX_WRITE (8u << 20)

struct fx {
	char dir[64];	 /* the test's host tree */
	char ro[96], rw[96], qdir[96];
	int qdir_fd;
	agentd_spec spec;
	struct vm_share s;
};

static void write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(data, f);
	fclose(f);
}

static int fx_setup(void **state)
{
	if (geteuid() != 0 || !vm_share_virtiofsd()) {
		print_message("skipped: needs root and virtiofsd\n");
		*state = NULL;
		return 0;
	}
	struct fx *f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/vmshare.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->ro, sizeof(f->ro), "%s/ro", f->dir);
	snprintf(f->rw, sizeof(f->rw), "%s/rw", f->dir);
	snprintf(f->qdir, sizeof(f->qdir), "%s/qemu", f->dir);
	assert_int_equal(mkdir(f->ro, 0755), 0);
	assert_int_equal(mkdir(f->rw, 0755), 0);
	assert_int_equal(mkdir(f->qdir, 0700), 0);
	char p[160];
	snprintf(p, sizeof(p), "%s/data", f->ro);
	write_file(p, "host data\n");
	agentd_spec_init(&f->spec, AGENTD_PROFILE_STRICT);
	f->spec.limits.max_write_bytes = MAX_WRITE;
	strv_push(&f->spec.allowed_paths_ro, f->ro);
	strv_push(&f->spec.allowed_paths_rw, f->rw);
	f->qdir_fd = open(f->qdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct vm_share_opts o = {.spec = &f->spec, .uid = 1000, .gid = 1000,
				  .sock_dir_fd = f->qdir_fd, .sock_uid = 0, .sock_gid = 0,
				  .cgroup_fd = -1};
	agentd_error err = {0};
	if (vm_share_start(&o, &f->s, &err) < 0)
		fail_msg("vm_share_start: %s", err.msg);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	if (!f)
		return 0;
	vm_share_stop(&f->s);
	close(f->qdir_fd);
	agentd_spec_free(&f->spec);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* A vhost-user client on the socket, standing in for QEMU: virtiofsd builds its sandbox
 * only once it has its client. */
static int connect_client(const struct fx *f)
{
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", f->qdir, VM_SHARE_SOCK);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return c;
}

/* The process that serves the tree: virtiofsd's child (namespace mode) once it has its
 * client, pivoted into the tree and under its seccomp filter (its last setup step). */
static pid_t server_pid(pid_t top)
{
	for (int tries = 0; tries < 500; tries++) {
		char p[64];
		snprintf(p, sizeof(p), "/proc/%d/task/%d/children", top, top);
		_cleanup_free_ char *s = read_file_at(AT_FDCWD, p, 4096, NULL);
		int pid = s ? atoi(s) : 0;
		snprintf(p, sizeof(p), "/proc/%d/status", pid);
		_cleanup_free_ char *st = pid > 0 ? read_file_at(AT_FDCWD, p, 1 << 16, NULL) : NULL;
		if (st && strstr(st, "Seccomp:\t2"))
			return pid;
		usleep(20000);
	}
	return -1;
}

static size_t count_entries(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return (size_t)-1;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void tree_is_the_policys_with_the_host_enforcing_read_only(void **state)
{
	struct fx *f = *state;
	if (!f)
		skip();
	int root = f->s.root_fd;
	/* the runtime at its own paths */
	assert_int_equal(faccessat(root, "usr/bin/env", X_OK, 0), 0);
	assert_int_equal(faccessat(root, "bin/sh", X_OK, 0), 0);
	/* read-only: the host kernel refuses */
	assert_int_equal(openat(root, "usr/agentd-test", O_CREAT | O_WRONLY, 0644), -1);
	assert_int_equal(errno, EROFS);
	assert_int_equal(mkdirat(root, "newdir", 0755), -1);
	assert_int_equal(errno, EROFS);
	char p[200];
	snprintf(p, sizeof(p), "%s/data", f->ro + 1);
	assert_int_equal(openat(root, p, O_WRONLY | O_TRUNC), -1);
	assert_int_equal(errno, EROFS);
	snprintf(p, sizeof(p), "%s/data", f->ro);
	_cleanup_free_ char *host = read_file_at(AT_FDCWD, p, 4096, NULL);
	assert_string_equal(host, "host data\n");
	/* the policy's rw path is the host's directory */
	snprintf(p, sizeof(p), "%s/out", f->rw + 1);
	int fd = openat(root, p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	snprintf(p, sizeof(p), "%s/out", f->rw);
	assert_int_equal(access(p, F_OK), 0);
	/* /etc: the allowlist, not the host's whole /etc */
	assert_int_equal(faccessat(root, "etc/shadow", F_OK, 0), -1);
	assert_int_equal(faccessat(root, "etc/passwd", F_OK, 0), 0);
	/* the workdir: the scratch, writable, owned by the guest's user */
	struct stat st;
	assert_int_equal(fstatat(root, "workspace", &st, 0), 0);
	assert_int_equal(st.st_uid, 1000);
	fd = openat(f->s.workdir_fd, "hello", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(faccessat(root, "workspace/hello", F_OK, 0), 0);
	assert_int_equal(faccessat(f->s.scratch_fd, "workdir/hello", F_OK, 0), 0);
}

static void served_tree_has_no_host_proc_nor_devices(void **state)
{
	struct fx *f = *state;
	if (!f)
		skip();
	int client = connect_client(f);
	pid_t srv = server_pid(f->s.pid);
	assert_true(srv > 0);
	char p[96];
	/* virtiofsd's root is the tree: the runtime is there, its /proc and /dev are empty
	 * mount points (the guest's kernel mounts its own), no host device node */
	snprintf(p, sizeof(p), "/proc/%d/root/usr/bin/env", srv);
	assert_int_equal(access(p, X_OK), 0);
	snprintf(p, sizeof(p), "/proc/%d/root/proc", srv);
	assert_int_equal(count_entries(p), 0);
	snprintf(p, sizeof(p), "/proc/%d/root/dev/null", srv);
	struct stat st;
	if (stat(p, &st) == 0)
		assert_false(S_ISCHR(st.st_mode));
	/* its own namespaces: not the host's mounts nor network */
	char a[64], b[64];
	snprintf(p, sizeof(p), "/proc/%d/ns/mnt", srv);
	ssize_t n = readlink(p, a, sizeof(a) - 1);
	assert_true(n > 0);
	a[n] = '\0';
	n = readlink("/proc/self/ns/mnt", b, sizeof(b) - 1);
	b[n] = '\0';
	assert_string_not_equal(a, b);
	/* capabilities: none beyond serving files (no sys_admin, no mknod) */
	snprintf(p, sizeof(p), "/proc/%d/status", srv);
	_cleanup_free_ char *status = read_file_at(AT_FDCWD, p, 1 << 16, NULL);
	const char *eff = strstr(status, "CapEff:");
	assert_non_null(eff);
	unsigned long long caps = strtoull(eff + 7, NULL, 16);
	assert_false(caps & (1ull << 21)); /* CAP_SYS_ADMIN */
	assert_false(caps & (1ull << 27)); /* CAP_MKNOD */
	assert_non_null(strstr(status, "Seccomp:\t2"));
	close(client);
}

static void disk_bomb_stops_at_max_write_bytes(void **state)
{
	struct fx *f = *state;
	if (!f)
		skip();
	int fd = openat(f->s.workdir_fd, "bomb", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	static char buf[1 << 16];
	memset(buf, 'b', sizeof(buf));
	uint64_t total = 0;
	ssize_t w;
	while ((w = write(fd, buf, sizeof(buf))) > 0 && total < 4ull * MAX_WRITE)
		total += (uint64_t)w;
	assert_int_equal(w, -1);
	assert_int_equal(errno, ENOSPC);
	close(fd);
	assert_true(total <= MAX_WRITE + (1u << 20));
	assert_true(total >= MAX_WRITE / 2);
	unlinkat(f->s.workdir_fd, "bomb", 0);
}

/* QEMU (paused, no guest needed: vhost-user's handshake runs as its devices are realized)
 * on the socket; then the name is gone and virtiofsd takes no second client. */
static void qemu_connects_once_and_the_socket_goes(void **state)
{
	struct fx *f = *state;
	if (!f)
		skip();
	if (access("/usr/bin/qemu-system-x86_64", X_OK) < 0)
		skip();
	char sock[160];
	snprintf(sock, sizeof(sock), "%s/%s", f->qdir, VM_SHARE_SOCK);
	agentd_strv a = {0};
	static const char *const base[] = {"/usr/bin/qemu-system-x86_64", "-M", "microvm",
					   "-nodefaults", "-no-user-config", "-display", "none",
					   "-S", "-m", "128M", "-accel", "tcg"};
	for (size_t i = 0; i < ARRAY_SIZE(base); i++)
		strv_push(&a, base[i]);
	vm_share_qemu_args(128 << 20, sock, &a);
	strv_push(&a, "-monitor");
	strv_push(&a, "none");
	pid_t q;
	char *envp[] = {NULL};
	assert_int_equal(posix_spawn(&q, a.v[0], NULL, NULL, a.v, envp), 0);
	strv_free(&a);
	/* connected once its devices are realized (virtiofsd then builds its sandbox, a
	 * child); QEMU is still up: the one client virtiofsd took was QEMU */
	assert_true(server_pid(f->s.pid) > 0);
	usleep(300000);
	int st;
	assert_int_equal(waitpid(q, &st, WNOHANG), 0);
	/* a second client finds nobody */
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	bool accepted = connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == ECONNREFUSED;
	close(c);
	assert_true(accepted);
	vm_share_connected(&f->s);
	assert_int_equal(access(sock, F_OK), -1);
	assert_int_equal(waitpid(q, &st, WNOHANG), 0);
	kill(q, SIGKILL);
	waitpid(q, &st, 0);
}

static void stop_leaves_no_process_and_no_mount(void **state)
{
	struct fx *f = *state;
	if (!f)
		skip();
	int client = connect_client(f);
	pid_t top = f->s.pid, srv = server_pid(top);
	assert_true(srv > 0);
	_cleanup_free_ char *before = read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 22, NULL);
	vm_share_stop(&f->s);
	assert_int_equal(kill(top, 0), -1);
	/* the served process died with its pid namespace (reaped by its parent there) */
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/ns/mnt", srv);
	for (int i = 0; i < 100 && access(p, F_OK) == 0; i++)
		usleep(20000);
	assert_int_equal(access(p, F_OK), -1);
	_cleanup_free_ char *after = read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 22, NULL);
	assert_string_equal(before, after);
	assert_null(strstr(after, "vmshare"));
	close(client);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(tree_is_the_policys_with_the_host_enforcing_read_only,
					    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(served_tree_has_no_host_proc_nor_devices, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(disk_bomb_stops_at_max_write_bytes, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(qemu_connects_once_and_the_socket_goes, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(stop_leaves_no_process_and_no_mount, fx_setup,
					    fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
