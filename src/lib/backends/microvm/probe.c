/* probe.c: the honest accelerator verdict. Opening /dev/kvm, or even running a bare vCPU,
 * proves nothing about booting a guest: under KVM-PVM (nested, paravirtualised) a vCPU
 * runs while a stock kernel hangs or dies on an emulation failure. So the verdict boots the
 * real guest under KVM with a deadline and counts KVM only when its agent says HELLO;
 * otherwise the backend uses TCG, and the verdict says why and what a boot costs there
 * (measured by a TCG boot of the same guest). The verdict is cached, keyed by the host
 * kernel's release, QEMU's build, the guest's files, /dev/kvm's device and the boot id. */
#include "lib/backends/microvm/microvm.h"

#include <linux/kvm.h>
#include <sys/utsname.h>

#define KVM_BOOT_TIMEOUT_MS 20000
#define VERDICT_MAGIC 0x766d7631u /* "vmv1" */

bool vm_kvm_vcpu_runs(char *why, size_t why_len)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		snprintf(why, why_len, "/dev/kvm: %s", strerror(errno));
		return false;
	}
	bool ok = false;
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	int vcpu = -1;
	void *mem = MAP_FAILED, *run = MAP_FAILED;
	long run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm < 0 || run_size <= 0) {
		snprintf(why, why_len, "KVM_CREATE_VM: %s", strerror(errno));
		goto out;
	}
	mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		goto out;
	((uint8_t *)mem)[0] = 0xf4; /* hlt */
	struct kvm_userspace_memory_region reg = {.slot = 0, .guest_phys_addr = 0x1000,
						  .memory_size = 0x1000,
						  .userspace_addr = (uint64_t)(uintptr_t)mem};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &reg) < 0 ||
	    (vcpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0) {
		snprintf(why, why_len, "KVM vCPU: %s", strerror(errno));
		goto out;
	}
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	struct kvm_sregs sregs;
	struct kvm_regs regs = {.rip = 0x1000, .rflags = 2};
	if (run == MAP_FAILED || ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(why, why_len, "KVM vCPU state: %s", strerror(errno));
		goto out;
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0 ||
	    ioctl(vcpu, KVM_RUN, 0) < 0) {
		snprintf(why, why_len, "KVM_RUN: %s", strerror(errno));
		goto out;
	}
	ok = ((struct kvm_run *)run)->exit_reason == KVM_EXIT_HLT;
	if (!ok)
		snprintf(why, why_len, "a vCPU exited with reason %u", ((struct kvm_run *)run)->exit_reason);
out:
	if (run != MAP_FAILED)
		munmap(run, (size_t)run_size);
	if (mem != MAP_FAILED)
		munmap(mem, 0x1000);
	if (vcpu >= 0)
		close(vcpu);
	if (vm >= 0)
		close(vm);
	close(kvm);
	return ok;
}

static bool host_is_pvm(void)
{
	struct stat st;
	return stat("/sys/module/kvm_pvm", &st) == 0;
}

/* ------------------------------------------------------------- cache */

static char *cache_key(const struct vm_guest_files *g)
{
	struct utsname u;
	struct stat q, k, i, d;
	const char *bin = vm_qemu_binary();
	if (uname(&u) < 0 || !bin || stat(bin, &q) < 0 || stat(g->kernel, &k) < 0 ||
	    stat(g->initrd, &i) < 0)
		return NULL;
	if (stat("/dev/kvm", &d) < 0)
		d.st_rdev = 0;
	_cleanup_free_ char *boot = read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", 64, NULL);
	return xasprintf("%s %zu %s qemu=%lu:%lld:%lld kernel=%s:%lld:%lld initrd=%s:%lld:%lld "
			 "kvm=%lu euid=%u boot=%s",
			 AGENTD_VERSION, sizeof(struct vm_verdict), u.release, (unsigned long)q.st_ino,
			 (long long)q.st_size, (long long)q.st_mtime, g->kernel, (long long)k.st_size,
			 (long long)k.st_mtime, g->initrd, (long long)i.st_size,
			 (long long)i.st_mtime, (unsigned long)d.st_rdev, (unsigned)geteuid(),
			 boot ? boot : "?");
}

static char *cache_path(void)
{
	if (geteuid() == 0)
		return xstrdup("/run/agentd/microvm-verdict");
	const char *x = getenv("XDG_RUNTIME_DIR");
	return x && x[0] == '/' ? xasprintf("%s/agentd/microvm-verdict", x) : NULL;
}

static bool cache_load(const char *key, struct vm_verdict *v)
{
	if (getenv("AGENTD_MICROVM_NO_CACHE"))
		return false;
	_cleanup_free_ char *path = cache_path();
	size_t len;
	_cleanup_free_ char *s = path ? read_file_at(AT_FDCWD, path, 64 * 1024, &len) : NULL;
	size_t kl = strlen(key);
	if (!s || len != kl + 1 + sizeof(uint32_t) + sizeof(*v) || memcmp(s, key, kl) != 0 ||
	    s[kl] != '\n')
		return false;
	uint32_t magic;
	memcpy(&magic, s + kl + 1, sizeof(magic));
	if (magic != VERDICT_MAGIC)
		return false;
	memcpy(v, s + kl + 1 + sizeof(magic), sizeof(*v));
	v->reason[sizeof(v->reason) - 1] = v->accel_why[sizeof(v->accel_why) - 1] = '\0';
	v->qemu_version[sizeof(v->qemu_version) - 1] = '\0';
	return true;
}

static void cache_store(const char *key, const struct vm_verdict *v)
{
	_cleanup_free_ char *path = cache_path();
	if (!path)
		return;
	_cleanup_free_ char *dir = xstrdup(path);
	*strrchr(dir, '/') = '\0';
	mkdir(dir, 0700);
	_cleanup_free_ char *tmp = xasprintf("%s.%d", path, getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return;
	uint32_t magic = VERDICT_MAGIC;
	bool ok = write_all(fd, key, strlen(key)) == 0 && write_all(fd, "\n", 1) == 0 &&
		  write_all(fd, &magic, sizeof(magic)) == 0 && write_all(fd, v, sizeof(*v)) == 0;
	close(fd);
	if (!ok || rename(tmp, path) < 0)
		unlink(tmp);
}

/* ------------------------------------------------------------- verdict */

/* One boot of the real guest: launch to HELLO, ms; or -1 with why. */
static int64_t trial_boot(agentd_backend *jail, bool kvm, char *why, size_t why_len)
{
	agentd_spec spec;
	agentd_spec_init(&spec, AGENTD_PROFILE_STRICT);
	struct vm_verdict tv = {.available = true, .kvm = kvm};
	struct vm vm;
	agentd_error err = {0};
	uint64_t t0 = now_ms_monotonic();
	int r = vm_boot(jail, &spec, &tv, NULL, kvm ? KVM_BOOT_TIMEOUT_MS : 0, &vm, &err);
	agentd_spec_free(&spec);
	if (r < 0) {
		snprintf(why, why_len, "%s", err.msg);
		return -1;
	}
	int64_t ms = (int64_t)(now_ms_monotonic() - t0);
	vm_shutdown(&vm);
	return ms;
}

void vm_verdict_decide(struct vm_verdict *v, bool kvm_hello, const char *kvm_why)
{
	/* Only the guest's own HELLO under KVM counts; a vCPU that runs, a device that opens,
	 * say nothing about a guest kernel booting there. */
	v->kvm = kvm_hello;
	if (!kvm_hello)
		snprintf(v->accel_why, sizeof(v->accel_why), "%s%s", kvm_why,
			 v->pvm ? " (host is KVM-PVM: nested, a stock guest kernel does not boot)"
				: "");
	else
		v->accel_why[0] = '\0';
}

void vm_probe_verdict(agentd_backend *jail, struct vm_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->pvm = host_is_pvm();
	const char *bin = vm_qemu_binary();
	if (!bin) {
		snprintf(v->reason, sizeof(v->reason),
			 "QEMU is not installed (apt-get install qemu-system-x86)");
		return;
	}
	const agentd_platform *p = agentd_probe_platform();
	if (!p->user_namespaces || !p->seccomp_filter || !p->pidfd) {
		snprintf(v->reason, sizeof(v->reason),
			 "QEMU's jail needs user namespaces, seccomp and pidfd: %.160s", p->reasons);
		return;
	}
	struct vm_guest_files g;
	agentd_error err = {0};
	if (vm_guest_files(&g, &err) < 0) {
		snprintf(v->reason, sizeof(v->reason), "%s", err.msg);
		return;
	}
	_cleanup_free_ char *key = cache_key(&g);
	if (key && cache_load(key, v))
		return;
	char why[256] = "";
	bool kvm_hello = false;
	if (access("/dev/kvm", R_OK | W_OK) == 0) {
		char vw[128];
		v->vcpu_runs = vm_kvm_vcpu_runs(vw, sizeof(vw)); /* said, never counted */
		int64_t ms = trial_boot(jail, true, why, sizeof(why));
		if (ms >= 0) {
			kvm_hello = true;
			v->boot_ms = (uint64_t)ms;
		} else {
			char w2[256];
			snprintf(w2, sizeof(w2), "%sthe guest did not boot under KVM: %s",
				 v->vcpu_runs ? "a bare vCPU runs, but " : "", why);
			snprintf(why, sizeof(why), "%s", w2);
		}
	} else {
		snprintf(why, sizeof(why), "/dev/kvm: %s", strerror(errno));
	}
	vm_verdict_decide(v, kvm_hello, why);
	if (!kvm_hello) {
		char tw[256];
		int64_t ms = trial_boot(jail, false, tw, sizeof(tw));
		if (ms < 0) {
			snprintf(v->reason, sizeof(v->reason), "the guest does not boot under TCG: %s",
				 tw);
			return; /* not cached: a fix of the guest or the host shows at once */
		}
		v->boot_ms = (uint64_t)ms;
	}
	v->available = true;
	if (key)
		cache_store(key, v);
}
