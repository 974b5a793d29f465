/* setup.c: GP_SETUP — hostname, lo, the host's mounts in order (a mount at "/" becomes the
 * execs' root; the others land beneath it, each target resolved inside it so a symlink in
 * a disk image cannot move a mount out), the network mode, the clock, entropy, and the
 * seccomp program execs install. The first SETUP sets everything; a later one (after a
 * restore) may carry only the clock and entropy. */
#include "guest/guest.h"

#include "common/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/random.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_BPF_INSNS 4096

static bool done, have_root, mounted;
static int network = GP_NET_NONE;
static struct sock_filter bpf[MAX_BPF_INSNS];
static size_t bpf_len;

const char *setup_exec_root(void)
{
	return have_root ? GUEST_EXEC_ROOT : "/";
}

const void *setup_seccomp(size_t *n_insns)
{
	*n_insns = bpf_len;
	return bpf_len ? bpf : NULL;
}

int setup_network(void)
{
	return network;
}

int net_lo_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct ifreq ifr = {0};
	strcpy(ifr.ifr_name, "lo");
	int rc = 0;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		rc = -errno;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (rc == 0 && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		rc = -errno;
	close(s);
	return rc;
}

/* Opens (O_PATH) directory path beneath rootfd, creating missing components; the walk never
 * leaves the root (RESOLVE_IN_ROOT) nor follows /proc magic links. -errno on failure. */
static int mkdir_beneath(int rootfd, const char *path)
{
	char part[GP_MAX_STRING + 1];
	int fd = dup(rootfd);
	for (const char *p = path; fd >= 0 && *p;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 0)
			break;
		if (n >= sizeof(part) || (n == 2 && p[0] == '.' && p[1] == '.')) {
			close(fd);
			return -EINVAL;
		}
		memcpy(part, p, n);
		part[n] = '\0';
		p += n;
		if (mkdirat(fd, part, 0755) < 0 && errno != EEXIST) {
			int e = errno;
			close(fd);
			return -e;
		}
		struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
		int next = (int)syscall(SYS_openat2, fd, part, &how, sizeof(how));
		int e = errno;
		close(fd);
		if (next < 0)
			return -e;
		fd = next;
	}
	return fd;
}

struct mount_req {
	char source[GP_MAX_STRING + 1], target[GP_MAX_STRING + 1], fstype[32];
	bool readonly;
};

static int parse_mount(const struct gp_field *outer, struct mount_req *m)
{
	struct gp_reader r;
	struct gp_field f;
	uint64_t v;
	int rc;
	memset(m, 0, sizeof(*m));
	gp_r_init(&r, outer->val, outer->len);
	while ((rc = gp_r_next(&r, &f)) == 1) {
		if (f.tag == GP_T_SOURCE)
			rc = field_str(0, &f, m->source, sizeof(m->source), "SETUP mount source");
		else if (f.tag == GP_T_TARGET)
			rc = field_str(0, &f, m->target, sizeof(m->target), "SETUP mount target");
		else if (f.tag == GP_T_FSTYPE)
			rc = field_str(0, &f, m->fstype, sizeof(m->fstype), "SETUP mount fstype");
		else if (f.tag == GP_T_READONLY) {
			rc = field_u64(0, &f, &v, "SETUP mount readonly");
			m->readonly = v != 0;
		}
		if (rc < 0)
			return -1;
	}
	if (rc < 0) {
		send_error(0, EPROTO, "SETUP: malformed mount fields");
		return -1;
	}
	if (m->target[0] != '/' || !m->fstype[0]) {
		send_error(0, EINVAL, "SETUP: a mount needs an absolute target and a type");
		return -1;
	}
	return 0;
}

/* A block device source must be one of the VM's virtio disks. */
static bool is_vd(const char *s)
{
	if (strncmp(s, "/dev/vd", 7) != 0 || !s[7])
		return false;
	for (const char *c = s + 7; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
			return false;
	return true;
}

static int do_mount(const struct mount_req *m)
{
	unsigned long flags = MS_NOSUID | MS_NODEV | (m->readonly ? MS_RDONLY : 0);
	const char *src = m->source, *data = NULL;
	if (strcmp(m->fstype, "tmpfs") == 0)
		src = "tmpfs", data = "mode=1777";
	else if (strcmp(m->fstype, "virtiofs") == 0) {
		if (!src[0])
			return -EINVAL;
	} else if (strcmp(m->fstype, "ext4") == 0) {
		if (!is_vd(src))
			return -EINVAL;
	} else {
		return -EPROTONOSUPPORT;
	}
	bool root = strcmp(m->target, "/") == 0;
	if (root) {
		if (mounted)
			return -EINVAL; /* the root comes first: the others land beneath it */
		mkdir("/run/agentd", 0700);
		mkdir(GUEST_EXEC_ROOT, 0755);
		if (mount(src, GUEST_EXEC_ROOT, m->fstype, flags, data) < 0)
			return -errno;
		have_root = mounted = true;
		return 0;
	}
	mounted = true;
	int rootfd = open(setup_exec_root(), O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	int dfd = mkdir_beneath(rootfd, m->target);
	close(rootfd);
	if (dfd < 0)
		return dfd;
	char at[64];
	snprintf(at, sizeof(at), "/proc/self/fd/%d", dfd);
	int rc = mount(src, at, m->fstype, flags, data) < 0 ? -errno : 0;
	close(dfd);
	return rc;
}

/* The execs' root sees /proc and the VM's /dev like the initramfs does. */
static void root_basics(void)
{
	if (!have_root)
		return;
	mkdir(GUEST_EXEC_ROOT "/proc", 0555);
	mkdir(GUEST_EXEC_ROOT "/dev", 0755);
	if (mount("proc", GUEST_EXEC_ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) <
	    0)
		glog("mount proc in the execs' root: %s", strerror(errno));
	if (mount("/dev", GUEST_EXEC_ROOT "/dev", NULL, MS_BIND | MS_REC, NULL) < 0)
		glog("bind /dev in the execs' root: %s", strerror(errno));
}

static void add_entropy(const uint8_t *p, size_t n)
{
	struct {
		int entropy_count, buf_size;
		uint8_t buf[64];
	} info;
	if (n > sizeof(info.buf))
		n = sizeof(info.buf);
	info.entropy_count = (int)n * 8;
	info.buf_size = (int)n;
	memcpy(info.buf, p, n);
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (ioctl(fd, RNDADDENTROPY, &info) < 0)
			(void)!write(fd, p, n);
		close(fd);
	}
	memset(&info, 0, sizeof(info));
}

void setup_handle(const uint8_t *p, size_t len)
{
	struct gp_reader r;
	struct gp_field f;
	char host[65];
	uint64_t v;
	int rc;
	/* first pass: validate and apply the clock and entropy; refuse a repeated full SETUP */
	gp_r_init(&r, p, len);
	while ((rc = gp_r_next(&r, &f)) == 1) {
		if (f.tag == GP_T_CLOCK_NS) {
			if (field_u64(0, &f, &v, "SETUP clock") < 0)
				return;
			struct timespec ts = {(time_t)(v / 1000000000u), (long)(v % 1000000000u)};
			clock_settime(CLOCK_REALTIME, &ts);
		} else if (f.tag == GP_T_SEED) {
			add_entropy(f.val, f.len);
		} else if (done && (f.tag == GP_T_HOSTNAME || f.tag == GP_T_MOUNT ||
				    f.tag == GP_T_NETWORK || f.tag == GP_T_SECCOMP_BPF)) {
			send_error(0, EALREADY, "SETUP: the VM is set up already");
			return;
		}
	}
	if (rc < 0) {
		send_error(0, EPROTO, "SETUP: malformed fields");
		return;
	}
	if (done) {
		send_ok(0);
		return;
	}
	done = true;
	gp_r_init(&r, p, len);
	while (gp_r_next(&r, &f) == 1) {
		if (f.tag == GP_T_HOSTNAME) {
			if (field_str(0, &f, host, sizeof(host), "SETUP hostname") < 0)
				return;
			if (sethostname(host, strlen(host)) < 0)
				glog("sethostname: %s", strerror(errno));
		} else if (f.tag == GP_T_MOUNT) {
			static struct mount_req m;
			if (parse_mount(&f, &m) < 0)
				return;
			if ((rc = do_mount(&m)) < 0) {
				send_error(0, -rc, "SETUP: mount %s (%s) on %s: %s", m.source,
					   m.fstype, m.target, strerror(-rc));
				return;
			}
		} else if (f.tag == GP_T_NETWORK) {
			if (field_u64(0, &f, &v, "SETUP network") < 0)
				return;
			if (v != GP_NET_NONE && v != GP_NET_ALLOWLIST) {
				send_error(0, EINVAL, "SETUP: unknown network mode %llu",
					   (unsigned long long)v);
				return;
			}
			network = (int)v;
		} else if (f.tag == GP_T_SECCOMP_BPF) {
			if (f.len == 0 || f.len % sizeof(struct sock_filter) ||
			    f.len / sizeof(struct sock_filter) > MAX_BPF_INSNS) {
				send_error(0, EINVAL, "SETUP: seccomp program of %u bytes", f.len);
				return;
			}
			memcpy(bpf, f.val, f.len);
			bpf_len = f.len / sizeof(struct sock_filter);
		}
	}
	root_basics();
	if ((rc = net_lo_up()) < 0)
		glog("lo up: %s", strerror(-rc));
	if (network == GP_NET_ALLOWLIST && (rc = egress_listen()) < 0) {
		send_error(0, -rc, "SETUP: egress listener on 127.0.0.1:%d: %s", GP_EGRESS_PORT,
			   strerror(-rc));
		return;
	}
	send_ok(0);
}
