/* main.c: agentd-guest's entry and its one event loop — the port to the host (frames in,
 * frames out), the channel table, zombies reaped (it is PID 1), a tick for deadlines. A bad
 * frame is answered with GP_ERROR, never a crash: PID 1 exiting would panic the VM. */
#include "guest/guest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int epfd = -1;
static struct watch port, sigchld, tick;
static bool tick_armed, port_down, cg_pending;
static int log_fd = 2;
static struct chan chans[GP_MAX_CHANNELS];
static uint8_t rxbuf[GP_HDR_SIZE + GP_MAX_PAYLOAD];
static struct gp_rx rx;
static uint8_t txbuf[GP_HDR_SIZE + GP_MAX_PAYLOAD];

void glog(const char *fmt, ...)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "agentd-guest: ");
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(log_fd, line, (size_t)n);
}

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int watch_add(struct watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};
	return epoll_ctl(epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0 ? -errno : 0;
}

void watch_mod(struct watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};
	if (w->fd >= 0)
		epoll_ctl(epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void watch_del(struct watch *w)
{
	if (w->fd < 0)
		return;
	epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
	close(w->fd);
	w->fd = -1;
}

struct chan *chan_find(uint32_t id)
{
	for (unsigned i = 0; i < GP_MAX_CHANNELS; i++)
		if (chans[i].kind && chans[i].id == id)
			return &chans[i];
	return NULL;
}

struct chan *chan_new(uint32_t id, enum chan_kind kind, void *obj)
{
	if (id == 0 || chan_find(id))
		return NULL;
	for (unsigned i = 0; i < GP_MAX_CHANNELS; i++)
		if (!chans[i].kind) {
			chans[i] = (struct chan){.id = id, .kind = kind, .obj = obj};
			return &chans[i];
		}
	return NULL;
}

void chan_free(struct chan *c)
{
	if (c)
		memset(c, 0, sizeof(*c));
}

/* The port is written in whole frames; while the host does not read, wait for it (data is
 * bounded by credit, so this is short unless the host is stuck, when nothing else matters). */
static void port_write(const struct iovec *iov, int n)
{
	struct iovec v[2];
	memcpy(v, iov, sizeof(*iov) * (size_t)n);
	while (n > 0) {
		ssize_t w = writev(port.fd, v, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pfd = {.fd = port.fd, .events = POLLOUT};
				poll(&pfd, 1, 1000);
				continue;
			}
			glog("port write: %s", strerror(errno));
			return;
		}
		while (n > 0 && (size_t)w >= v[0].iov_len) {
			w -= (ssize_t)v[0].iov_len;
			memmove(v, v + 1, sizeof(v[0]) * (size_t)(n - 1));
			n--;
		}
		if (n > 0) {
			v[0].iov_base = (uint8_t *)v[0].iov_base + w;
			v[0].iov_len -= (size_t)w;
		}
	}
}

void send_frame(uint16_t type, uint32_t chan, const void *payload, size_t len)
{
	uint8_t hdr[GP_HDR_SIZE];
	struct gp_hdr h = {.len = (uint32_t)len, .type = type, .flags = 0, .chan = chan};
	if (len > GP_MAX_PAYLOAD)
		return;
	gp_hdr_encode(hdr, &h);
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, len}};
	port_write(iov, len ? 2 : 1);
}

void fields_begin(struct gp_writer *w)
{
	gp_w_init(w, txbuf, GP_MAX_PAYLOAD);
}

void send_fields(uint16_t type, uint32_t chan, const struct gp_writer *w)
{
	if (gp_w_done(w) < 0) {
		send_error(chan, EMSGSIZE, "%s answer does not fit a frame", gp_type_name(type));
		return;
	}
	send_frame(type, chan, w->buf, w->len);
}

void send_error(uint32_t chan, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint8_t buf[600];
	struct gp_writer w;
	gp_w_init(&w, buf, sizeof(buf));
	gp_w_u64(&w, GP_T_ERRNO, (uint64_t)err);
	gp_w_str(&w, GP_T_MESSAGE, msg);
	send_frame(GP_ERROR, chan, buf, w.len);
}

void send_ok(uint32_t chan)
{
	send_frame(GP_OK, chan, NULL, 0);
}

void send_credit(uint32_t chan, uint64_t bytes)
{
	uint8_t buf[16];
	struct gp_writer w;
	gp_w_init(&w, buf, sizeof(buf));
	gp_w_u64(&w, GP_T_BYTES, bytes);
	send_frame(GP_CREDIT, chan, buf, w.len);
}

int field_str(uint32_t chan, const struct gp_field *f, char *out, size_t cap, const char *what)
{
	if (gp_f_str(f, out, cap) == 0)
		return 0;
	send_error(chan, EPROTO, "%s: not a string of at most %zu bytes without NUL", what,
		   cap - 1);
	return -1;
}

int field_u64(uint32_t chan, const struct gp_field *f, uint64_t *v, const char *what)
{
	if (gp_f_u64(f, v) == 0)
		return 0;
	send_error(chan, EPROTO, "%s: not a u64", what);
	return -1;
}

int field_u64_table(uint32_t chan, const struct gp_field *f, const struct u64_field *table,
		    size_t n, void *req, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (table[i].tag == f->tag)
			return field_u64(chan, f, (uint64_t *)((char *)req + table[i].off), what);
	return 0;
}

static void send_hello(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	struct gp_writer w;
	fields_begin(&w);
	gp_w_u64(&w, GP_T_VERSION, GP_VERSION_MAJOR << 16 | GP_VERSION_MINOR);
	gp_w_str(&w, GP_T_AGENT, GUEST_AGENT);
	gp_w_u64(&w, GP_T_CAPS,
		 GP_CAP_CGROUP2 | GP_CAP_SECCOMP | GP_CAP_TTY | GP_CAP_FREEZE | GP_CAP_FILES |
		     GP_CAP_EGRESS);
	gp_w_u64(&w, GP_T_BOOT_MS, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
	send_fields(GP_HELLO, 0, &w);
}

static void control_frame(const struct gp_hdr *h, const uint8_t *p)
{
	struct gp_reader r;
	struct gp_field f;
	uint64_t seq = 0;
	switch (h->type) {
	case GP_SETUP:
		setup_handle(p, h->len);
		return;
	case GP_PING:
		gp_r_init(&r, p, h->len);
		while (gp_r_next(&r, &f) == 1)
			if (f.tag == GP_T_SEQ && field_u64(0, &f, &seq, "PING seq") < 0)
				return;
		uint8_t buf[16];
		struct gp_writer w;
		gp_w_init(&w, buf, sizeof(buf));
		gp_w_u64(&w, GP_T_SEQ, seq);
		send_frame(GP_PONG, 0, buf, w.len);
		return;
	case GP_FREEZE:
	case GP_THAW: {
		/* issue 15: vm-state. The host may have restored the shared files while frozen:
		 * the kernel's cached names and pages of them go (virtiofs looks them up anew) */
		if (h->type == GP_THAW) {
			int dc = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
			if (dc >= 0) {
				(void)!write(dc, "3", 1);
				close(dc);
			}
		}
		int rc = exec_freeze_all(h->type == GP_FREEZE);
		if (h->type == GP_FREEZE)
			sync();
		if (rc < 0)
			send_error(0, -rc, "%s: cgroup.freeze: %s", gp_type_name(h->type),
				   strerror(-rc));
		else
			send_ok(0);
		return;
	}
	case GP_POWEROFF:
		exec_kill_all();
		sync();
		send_ok(0);
		boot_poweroff();
	default:
		send_error(0, EPROTO, "%s is not a control-channel request", gp_type_name(h->type));
	}
}

static void dispatch(const struct gp_hdr *h, const uint8_t *p)
{
	if (h->chan == 0) {
		control_frame(h, p);
		return;
	}
	struct chan *c = chan_find(h->chan);
	switch (h->type) {
	case GP_EXEC:
		if (h->chan & GP_GUEST_CHAN)
			send_error(h->chan, EPROTO, "EXEC on a guest channel number");
		else if (c)
			send_error(h->chan, EBUSY, "channel %u is in use", h->chan);
		else
			exec_start(h->chan, p, h->len);
		return;
	case GP_FILE_GET:
	case GP_FILE_PUT:
	case GP_FILE_STAT:
	case GP_FILE_LIST:
	case GP_FILE_REMOVE:
	case GP_FILE_MKDIR:
		if (c || (h->chan & GP_GUEST_CHAN))
			send_error(h->chan, EBUSY, "channel %u is in use", h->chan);
		else
			files_request(h->chan, h, p);
		return;
	default:
		break;
	}
	if (!c) {
		/* late frames for a channel that just ended (stdin, credit, a signal racing
		 * the exit) are dropped; anything else is answered */
		if (h->type == GP_STDIN || h->type == GP_CREDIT || h->type == GP_SIGNAL ||
		    h->type == GP_RESIZE || h->type == GP_STREAM_DATA || h->type == GP_OK ||
		    h->type == GP_STREAM_CLOSE || h->type == GP_FILE_DATA || h->type == GP_FILE_END)
			return;
		send_error(h->chan, ENOENT, "%s on channel %u, which is not open",
			   gp_type_name(h->type), h->chan);
		return;
	}
	switch (c->kind) {
	case CHAN_EXEC:
		exec_frame(c, h, p);
		break;
	case CHAN_STREAM:
		egress_frame(c, h, p);
		break;
	case CHAN_FILE_GET:
	case CHAN_FILE_PUT:
		files_frame(c, h, p);
		break;
	}
}

static void on_port(struct watch *w, uint32_t events)
{
	size_t room;
	uint8_t *dst = gp_rx_space(&rx, &room);
	ssize_t n = read(w->fd, dst, room);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* the host end is not connected (yet, or any more): look again on the tick
		 * (a disconnected port reports HUP however it is watched) */
		epoll_ctl(epfd, EPOLL_CTL_DEL, port.fd, NULL);
		port_down = true;
		return;
	}
	gp_rx_commit(&rx, (size_t)n);
	struct gp_hdr h;
	const uint8_t *p;
	int rc;
	while ((rc = gp_rx_frame(&rx, &h, &p)) == 1)
		dispatch(&h, p);
	if (rc < 0) {
		/* a broken header: nothing after it can be framed; drop what is buffered */
		send_error(0, EPROTO, "bad frame header (len %u type %u flags %u)", h.len, h.type,
			   h.flags);
		gp_rx_init(&rx, rxbuf, sizeof(rxbuf));
	}
}

static void on_sigchld(struct watch *w, uint32_t events)
{
	struct signalfd_siginfo si;
	while (read(w->fd, &si, sizeof(si)) == sizeof(si))
		;
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		exec_reaped(pid, status);
}

static void arm_tick(bool on)
{
	if (on == tick_armed)
		return;
	struct itimerspec it = {0};
	if (on)
		it.it_interval.tv_nsec = it.it_value.tv_nsec = 100 * 1000 * 1000;
	timerfd_settime(tick.fd, 0, &it, NULL);
	tick_armed = on;
}

static void on_tick(struct watch *w, uint32_t events)
{
	uint64_t n;
	(void)!read(w->fd, &n, sizeof(n));
	exec_tick();
	cg_pending = cg_reap_tick();
	if (port_down && watch_add(&port, EPOLLIN) == 0)
		port_down = false;
}

int main(void)
{
	int kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (getpid() == 1) {
		boot_mount_basics();
		kmsg = kmsg >= 0 ? kmsg : open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	}
	if (kmsg >= 0)
		log_fd = kmsg;
	/* the kernel gives init no stdio without /dev/console: fill 0-2 so that no later fd
	 * lands there and a child's dup2 onto its stdio cannot clobber it */
	for (int fd; (fd = open("/dev/null", O_RDWR)) >= 0;)
		if (fd > 2) {
			close(fd);
			break;
		}
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (getpid() == 1)
		boot_load_modules();
	if (cg_init() < 0)
		glog("cgroup v2 controllers unavailable: execs run without guest limits");

	epfd = epoll_create1(EPOLL_CLOEXEC);
	port.fd = boot_open_port();
	if (epfd < 0 || port.fd < 0) {
		glog("no port named %s: powering off", GP_PORT_NAME);
		boot_poweroff();
	}
	port.fn = on_port;
	gp_rx_init(&rx, rxbuf, sizeof(rxbuf));
	sigchld.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	sigchld.fn = on_sigchld;
	tick.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	tick.fn = on_tick;
	if (watch_add(&port, EPOLLIN) < 0 || watch_add(&sigchld, EPOLLIN) < 0 ||
	    watch_add(&tick, EPOLLIN) < 0) {
		glog("epoll: %s", strerror(errno));
		boot_poweroff();
	}
	send_hello();
	for (;;) {
		struct epoll_event ev[32];
		arm_tick(exec_any() || port_down || cg_pending);
		int n = epoll_wait(epfd, ev, 32, -1);
		for (int i = 0; i < n; i++) {
			struct watch *w = ev[i].data.ptr;
			w->fn(w, ev[i].events);
		}
	}
}
