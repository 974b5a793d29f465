/* test_vm_template.c: the microvm's memory-snapshot templates (src/lib/backends/microvm/
 * template.c) against a real QEMU: a template is built (a blank ext4 disk, the VM saved with
 * `migrate` to an fd), published whole under a key that follows its inputs, loaded by a
 * new QEMU with `migrate-incoming` from an fd and run; a corrupt memory file and a failed
 * build leave nothing behind; the directory is private; prune keeps the current and the
 * locked ones; a sandbox's disk copy keeps the blank's content and its holes. QEMU's
 * guest here has no kernel (firmware only): the migration is the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/backends/microvm/state.h"

#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>

static char tmp[] = "/tmp/agentd-vmtmpl-XXXXXX";
static char root[PATH_MAX];

struct qvm {
	pid_t pid;
	struct vm_qmp qmp;
	bool fail_boot;
	bool incoming;
};

/* QEMU -M microvm with a virtio-blk disk (disk: its path) and QMP on fd 3. */
static int qvm_start(struct qvm *v, const char *disk, agentd_error *err)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return agentd_error_errno(err, errno, "socketpair");
	char drive[PATH_MAX + 64];
	snprintf(drive, sizeof(drive), "file=%s,format=raw,if=none,id=wd", disk);
	char *argv[] = {(char *)vm_qemu_binary(), "-M", "microvm,isa-serial=off", "-nodefaults",
			"-no-user-config", "-display", "none", "-accel", "tcg", "-m", "64M",
			"-global", "virtio-mmio.force-legacy=false", "-drive", drive, "-device",
			"virtio-blk-device,drive=wd", "-chardev", "socket,id=qmp,fd=3", "-mon",
			"chardev=qmp,mode=control", "-incoming", "defer", NULL};
	if (!v->incoming)
		argv[ARRAY_SIZE(argv) - 3] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sp[1], 3);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	int rc = posix_spawn(&v->pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(sp[1]);
	if (rc) {
		close(sp[0]);
		return agentd_error_errno(err, rc, "spawn QEMU");
	}
	vm_qmp_init(&v->qmp, sp[0]);
	return vm_qmp_handshake(&v->qmp, 20000, err);
}

static void qvm_stop(struct qvm *v)
{
	if (v->pid <= 0)
		return;
	vm_qmp_close(&v->qmp);
	kill(v->pid, SIGKILL);
	waitpid(v->pid, NULL, 0);
	v->pid = 0;
}

static int boot_cb(void *ud, const char *disk, struct vm_qmp **qmp, agentd_error *err)
{
	struct qvm *v = ud;
	if (v->fail_boot)
		return agentd_error_set(err, EIO, "the guest did not say HELLO");
	assert_non_null(disk);
	if (qvm_start(v, disk, err) < 0)
		return -1;
	*qmp = &v->qmp;
	return 0;
}

static void shutdown_cb(void *ud)
{
	qvm_stop(ud);
}

static bool exists_at(int dfd, const char *name)
{
	struct stat st;
	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void put(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, data, strlen(data)), 0);
	close(fd);
}

static void fake_files(struct vm_guest_files *g)
{
	snprintf(g->kernel, sizeof(g->kernel), "%s/vmlinux", tmp);
	snprintf(g->initrd, sizeof(g->initrd), "%s/initramfs.cpio.gz", tmp);
	put(g->kernel, "kernel");
	put(g->initrd, "initrd");
}

static void the_directory_is_root_only(void **state)
{
	(void)state;
	agentd_error err = {0};
	int fd = vm_tmpl_root_open(root, &err);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(st.st_uid, geteuid());
	close(fd);
	/* opened up by someone: closed again */
	assert_int_equal(chmod(root, 0755), 0);
	fd = vm_tmpl_root_open(root, &err);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	close(fd);
	/* not ours: refused */
	if (geteuid() == 0) {
		assert_int_equal(chown(root, 65534, 65534), 0);
		assert_true(vm_tmpl_root_open(root, &err) < 0);
		assert_int_equal(err.code, EPERM);
		assert_int_equal(chown(root, 0, 0), 0);
	}
}

static void the_key_follows_every_input(void **state)
{
	(void)state;
	if (!vm_qemu_binary())
		skip();
	struct vm_guest_files g;
	fake_files(&g);
	struct vm_tmpl_inputs in = {.files = &g, .guest_mem_bytes = 256 << 20, .vcpus = 1,
				    .disk_bytes = 64 << 20};
	char k0[VM_TMPL_KEY_LEN + 1], k1[VM_TMPL_KEY_LEN + 1];
	agentd_error err = {0};
	assert_int_equal(vm_tmpl_key(&in, k0, &err), 0);
	assert_int_equal(strlen(k0), VM_TMPL_KEY_LEN);
	assert_int_equal(vm_tmpl_key(&in, k1, &err), 0);
	assert_string_equal(k0, k1);
	struct vm_tmpl_inputs changed[4] = {in, in, in, in};
	changed[0].guest_mem_bytes <<= 1;
	changed[1].vcpus = 2;
	changed[2].kvm = true;
	changed[3].disk_bytes = 0;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(vm_tmpl_key(&changed[i], k1, &err), 0);
		assert_string_not_equal(k0, k1);
	}
	/* a rebuilt initramfs is a new template */
	unlink(g.initrd);
	put(g.initrd, "initrd2");
	assert_int_equal(vm_tmpl_key(&in, k1, &err), 0);
	assert_string_not_equal(k0, k1);
	unlink(g.kernel);
	assert_true(vm_tmpl_key(&in, k1, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.msg, "kernel"));
}

static void virtiofs_is_refused_with_its_reason(void **state)
{
	(void)state;
	struct vm_tmpl_inputs in = {.virtiofs = true};
	const char *why = vm_tmpl_unavailable(&in);
	assert_non_null(why);
	assert_non_null(strstr(why, "virtiofs shares cannot migrate"));
	in.virtiofs = false;
	assert_null(vm_tmpl_unavailable(&in));
}

static const char *KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void a_built_template_is_loaded_by_a_new_vm(void **state)
{
	(void)state;
	if (!vm_qemu_binary() || access("/sbin/mkfs.ext4", X_OK) != 0)
		skip();
	agentd_error err = {0};
	_cleanup_close_ int rfd = vm_tmpl_root_open(root, &err);
	assert_true(rfd >= 0);
	int lock = vm_tmpl_lock(rfd, KEY, &err);
	assert_true(lock >= 0);
	struct qvm src = {0};
	struct vm_tmpl_build b = {.key = KEY, .disk_bytes = 32 << 20, .boot = boot_cb,
				  .shutdown = shutdown_cb, .ud = &src};
	int r = vm_tmpl_build(rfd, &b, &err);
	if (r < 0)
		print_error("%s\n", err.msg);
	assert_int_equal(r, 0);
	assert_int_equal(src.pid, 0);	/* shut down */
	close(lock);
	/* published whole: nothing of the build left beside it */
	_cleanup_free_ char *tmpname = xasprintf("%s.tmp", KEY);
	assert_false(exists_at(rfd, tmpname));
	_cleanup_close_ int kd = openat(rfd, KEY, O_RDONLY | O_DIRECTORY);
	assert_true(kd >= 0);
	assert_true(exists_at(kd, "meta.json"));
	assert_false(exists_at(kd, "boot.img"));
	int mem = -1, blank = -1;
	assert_int_equal(vm_tmpl_open(rfd, KEY, &mem, &blank), 0);
	assert_true(mem >= 0 && blank >= 0);
	char magic[4];
	assert_int_equal(pread(mem, magic, 4, 0), 4);
	assert_memory_equal(magic, "QEVM", 4);	/* QEMU's migration stream */
	uint8_t sb[2];
	assert_int_equal(pread(blank, sb, 2, 1024 + 0x38), 2);
	assert_int_equal(sb[0] | sb[1] << 8, 0xEF53);	/* ext4's superblock magic */
	/* a sandbox's disk: the blank's bytes, its holes kept */
	_cleanup_close_ int wd = open(tmp, O_RDONLY | O_DIRECTORY);
	assert_int_equal(vm_tmpl_disk_copy(blank, wd, "sb.img", &err), 0);
	assert_true(vm_tmpl_disk_copy(blank, wd, "sb.img", &err) < 0);	/* never over a file */
	struct stat a, c;
	assert_int_equal(fstat(blank, &a), 0);
	assert_int_equal(fstatat(wd, "sb.img", &c, 0), 0);
	assert_int_equal(a.st_size, c.st_size);
	assert_true(c.st_blocks * 512 < c.st_size);
	assert_int_equal(pread(blank, sb, 2, 1024 + 0x38), 2);
	/* a new VM with the same devices loads it and runs */
	struct qvm dst = {.incoming = true};
	_cleanup_free_ char *disk = xasprintf("%s/sb.img", tmp);
	assert_int_equal(qvm_start(&dst, disk, &err), 0);
	r = vm_tmpl_load(&dst.qmp, mem, 60000, &err);
	if (r < 0)
		print_error("%s\n", err.msg);
	assert_int_equal(r, 0);
	json_t *st = vm_qmp_execute(&dst.qmp, "query-status", NULL, -1, 5000, &err);
	assert_non_null(st);
	assert_string_equal(json_string_value(json_object_get(st, "status")), "running");
	json_decref(st);
	qvm_stop(&dst);
	/* a memory file cut short: the load fails, with QEMU's reason or its end */
	_cleanup_close_ int cut = openat(wd, "cut.mem", O_RDWR | O_CREAT | O_TRUNC, 0600);
	char buf[4096];
	assert_int_equal(pread(mem, buf, sizeof(buf), 0), sizeof(buf));
	assert_int_equal(write(cut, buf, sizeof(buf)), sizeof(buf));
	struct qvm bad = {.incoming = true};
	assert_int_equal(qvm_start(&bad, disk, &err), 0);
	lseek(cut, 0, SEEK_SET);
	assert_true(vm_tmpl_load(&bad.qmp, cut, 20000, &err) < 0);
	assert_non_null(strstr(err.msg, "template load"));
	qvm_stop(&bad);
	close(mem);
	close(blank);
	unlinkat(wd, "sb.img", 0);
	unlinkat(wd, "cut.mem", 0);
}

static void a_failed_build_leaves_nothing(void **state)
{
	(void)state;
	if (access("/sbin/mkfs.ext4", X_OK) != 0)
		skip();
	agentd_error err = {0};
	_cleanup_close_ int rfd = vm_tmpl_root_open(root, &err);
	const char *key = "1111111111111111111111111111111111111111111111111111111111111111";
	struct qvm v = {.fail_boot = true};
	struct vm_tmpl_build b = {.key = key, .disk_bytes = 8 << 20, .boot = boot_cb,
				  .shutdown = shutdown_cb, .ud = &v};
	assert_true(vm_tmpl_build(rfd, &b, &err) < 0);
	assert_non_null(strstr(err.msg, "build the template"));
	assert_non_null(strstr(err.msg, "HELLO"));
	_cleanup_free_ char *t = xasprintf("%s.tmp", key);
	assert_false(exists_at(rfd, key));
	assert_false(exists_at(rfd, t));
	int mem, disk;
	assert_true(vm_tmpl_open(rfd, key, &mem, &disk) < 0);
	assert_int_equal(errno, ENOENT);
}

static void prune_keeps_the_current_and_the_busy(void **state)
{
	(void)state;
	agentd_error err = {0};
	_cleanup_close_ int rfd = vm_tmpl_root_open(root, &err);
	const char *keys[3] = {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
			       "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
			       "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(mkdirat(rfd, keys[i], 0700), 0);
		int l = vm_tmpl_lock(rfd, keys[i], &err);
		assert_true(l >= 0);
		close(l);
	}
	assert_int_equal(mkdirat(rfd, "not-a-template", 0700), 0);
	int busy = vm_tmpl_lock(rfd, keys[2], &err);	/* being built or loaded */
	const char *keep[] = {keys[0]};
	int n = vm_tmpl_prune(rfd, keep, 1, &err);
	assert_true(n >= 1);	/* b, and the first test's template */
	assert_true(exists_at(rfd, keys[0]));
	assert_false(exists_at(rfd, keys[1]));
	_cleanup_free_ char *bl = xasprintf("%s.lock", keys[1]);
	assert_false(exists_at(rfd, bl));
	assert_true(exists_at(rfd, keys[2]));
	assert_true(exists_at(rfd, "not-a-template"));
	assert_false(exists_at(rfd, KEY));
	close(busy);
	n = vm_tmpl_prune(rfd, keep, 1, &err);
	if (n < 0)
		print_error("%s\n", err.msg);
	assert_int_equal(n, 1);
	assert_false(exists_at(rfd, keys[2]));
	assert_true(exists_at(rfd, keys[0]));
}

int main(void)
{
	if (!mkdtemp(tmp))
		return 1;
	snprintf(root, sizeof(root), "%s/templates", tmp);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_directory_is_root_only),
		cmocka_unit_test(the_key_follows_every_input),
		cmocka_unit_test(virtiofs_is_refused_with_its_reason),
		cmocka_unit_test(a_built_template_is_loaded_by_a_new_vm),
		cmocka_unit_test(a_failed_build_leaves_nothing),
		cmocka_unit_test(prune_keeps_the_current_and_the_busy),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	rm_rf(tmp);
	return r;
}
