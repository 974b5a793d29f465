/* boot.c: PID 1's early work in the VM — the basic filesystems, the virtio modules of the
 * initramfs (modules.dep in load order, kernel-cmdline parameters applied as modprobe would),
 * the virtio-serial port to the host found by name, and power-off. */
#include "guest/guest.h"

#include "common/kernel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static void mnt(const char *src, const char *dst, const char *type, unsigned long flags,
		const char *data)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY)
		glog("mount %s on %s: %s", type, dst, strerror(errno));
}

void boot_mount_basics(void)
{
	const unsigned long nosuid = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	mnt("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755");
	mnt("proc", "/proc", "proc", nosuid, NULL);
	mnt("sysfs", "/sys", "sysfs", nosuid, NULL);
	mnt("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666");
	mnt("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mnt("cgroup2", GUEST_CGROUP, "cgroup2", nosuid, "nsdelegate");
	mnt("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mnt("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
}

/* The parameters the kernel command line gives module name ("name.param=value" words, '-'
 * and '_' alike in the name), space-separated into out, as modprobe passes them. */
static void cmdline_params(const char *cmdline, const char *name, char *out, size_t cap)
{
	size_t n = strlen(name), used = 0;
	out[0] = '\0';
	for (const char *w = cmdline; *w;) {
		while (*w == ' ' || *w == '\n')
			w++;
		size_t len = strcspn(w, " \n");
		bool match = len > n + 1 && w[n] == '.';
		for (size_t i = 0; match && i < n; i++)
			match = (w[i] == '-' ? '_' : w[i]) == name[i];
		if (match && used + len - n < cap) {
			if (used)
				out[used++] = ' ';
			memcpy(out + used, w + n + 1, len - n - 1);
			used += len - n - 1;
			out[used] = '\0';
		}
		w += len;
	}
}

void boot_load_modules(void)
{
	struct utsname u;
	char dir[128], path[384], cmdline[2048] = "", params[1024], line[256];
	if (uname(&u) < 0)
		return;
	snprintf(dir, sizeof(dir), "/lib/modules/%s", u.release);
	int cfd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (cfd >= 0) {
		ssize_t n = read(cfd, cmdline, sizeof(cmdline) - 1);
		cmdline[n > 0 ? n : 0] = '\0';
		close(cfd);
	}
	snprintf(path, sizeof(path), "%s/modules.dep", dir);
	FILE *dep = fopen(path, "re");
	if (!dep) {
		glog("%s: %s (no modules loaded)", path, strerror(errno));
		return;
	}
	/* modules.dep as build-guest.sh writes it: one module a line, dependencies first */
	while (fgets(line, sizeof(line), dep)) {
		line[strcspn(line, ":\n")] = '\0';
		if (!line[0])
			continue;
		const char *base = strrchr(line, '/') ? strrchr(line, '/') + 1 : line;
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(base, "."), base);
		for (char *c = name; *c; c++)
			*c = *c == '-' ? '_' : *c;
		cmdline_params(cmdline, name, params, sizeof(params));
		snprintf(path, sizeof(path), "%s/%s", dir, line);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || syscall(SYS_finit_module, fd, params, 0) < 0) {
			if (errno != EEXIST)
				glog("load %s: %s", path, strerror(errno));
		}
		if (fd >= 0)
			close(fd);
	}
	fclose(dep);
}

/* The port's /dev node, by its name in /sys/class/virtio-ports: "" when not there (yet). */
static int find_port(char *dev, size_t cap)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	int found = -1;
	while (d && (e = readdir(d))) {
		char path[320], name[128] = "";
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, name, sizeof(name) - 1);
		close(fd);
		name[n > 0 ? n : 0] = '\0';
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, GP_PORT_NAME) == 0) {
			snprintf(dev, cap, "/dev/%s", e->d_name);
			found = 0;
			break;
		}
	}
	if (d)
		closedir(d);
	return found;
}

int boot_open_port(void)
{
	char dev[300];
	/* devices probe asynchronously after the module loads: wait for the port (10 s) */
	for (int i = 0; i < 1000; i++) {
		if (find_port(dev, sizeof(dev)) == 0) {
			int fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
			if (fd >= 0)
				return fd;
			if (errno != ENOENT)
				glog("open %s: %s", dev, strerror(errno));
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

void boot_poweroff(void)
{
	sync();
	if (getpid() == 1) {
		reboot(RB_POWER_OFF);
		/* no ACPI power-off: a reboot, which QEMU's -no-reboot turns into an exit */
		reboot(RB_AUTOBOOT);
	}
	_exit(1);
}
