/* hostile_init.c: a hostile guest agent for the microvm backend's tests — PID 1 of a test
 * initramfs (tests/microvm/pack.sh puts it over the real one's /init). It loads the virtio
 * modules, opens the agent's port and speaks enough of the protocol to be accepted (HELLO,
 * SETUP answered), then misbehaves as each EXEC's argv[0] asks:
 *   ok TEXT      behaves: STARTED, TEXT on stdout, EXIT 0 (the control case)
 *   flood        output without end, never waiting for credit (beyond what the host
 *                granted unless the host keeps up), deaf to the kill
 *   oversize     a frame header announcing more than GP_MAX_PAYLOAD
 *   malformed    an EXIT whose field runs past its payload
 *   badchan      output on a channel the host never opened
 *   spam         a storm of unsolicited PONGs on the control channel
 *   silent       nothing at all (the host's deadline must end it)
 *   deaf         egress streams opened and closed without end, never reading the port
 *                again: the host's answers (each refusal) fill it, its writes block
 * With the file /hostile-nohello in the initramfs it never says HELLO.
 * Static, no libc beyond syscalls it needs; links common/guestproto.c. */
#include "common/guestproto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int port = -1;
static uint8_t rxbuf[GP_HDR_SIZE + GP_MAX_PAYLOAD];
static uint8_t frame[GP_HDR_SIZE + GP_MAX_PAYLOAD];

static void load_modules(void)
{
	DIR *d = opendir("/lib/modules");
	struct dirent *e;
	char dep[512];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(dep, sizeof(dep), "/lib/modules/%s/modules.dep", e->d_name);
		FILE *f = fopen(dep, "r");
		char line[512];
		while (f && fgets(line, sizeof(line), f)) {
			char *c = strchr(line, ':');
			if (!c)
				continue;
			*c = '\0';
			char path[1024];
			snprintf(path, sizeof(path), "/lib/modules/%s/%s", e->d_name, line);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				syscall(SYS_finit_module, fd, "", 0);
				close(fd);
			}
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
}

static int open_port(void)
{
	for (int tries = 0; tries < 500; tries++) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char p[256], name[128] = "";
			snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", e->d_name);
			FILE *f = fopen(p, "r");
			if (f && fgets(name, sizeof(name), f))
				name[strcspn(name, "\n")] = '\0';
			if (f)
				fclose(f);
			if (strcmp(name, GP_PORT_NAME) == 0) {
				snprintf(p, sizeof(p), "/dev/%s", e->d_name);
				closedir(d);
				return open(p, O_RDWR | O_CLOEXEC);
			}
		}
		if (d)
			closedir(d);
		usleep(10000);
	}
	return -1;
}

static void put(const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(port, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		b += w;
		n -= (size_t)w;
	}
}

static void send_frame(uint16_t type, uint32_t chan, const void *payload, size_t len)
{
	struct gp_hdr h = {.len = (uint32_t)len, .type = type, .chan = chan};
	gp_hdr_encode(frame, &h);
	memcpy(frame + GP_HDR_SIZE, payload, len);
	put(frame, GP_HDR_SIZE + len);
}

static void send_fields(uint16_t type, uint32_t chan, struct gp_writer *w)
{
	send_frame(type, chan, w->buf, w->len);
}

static void misbehave(const char *mode, const char *arg, uint32_t chan)
{
	uint8_t buf[1024];
	struct gp_writer w;
	gp_w_init(&w, buf, sizeof(buf));
	if (strcmp(mode, "ok") == 0) {
		gp_w_u64(&w, GP_T_PID, 2);
		send_fields(GP_STARTED, chan, &w);
		send_frame(GP_STDOUT, chan, arg, strlen(arg));
		gp_w_init(&w, buf, sizeof(buf));
		gp_w_u64(&w, GP_T_EXIT_CODE, 0);
		send_fields(GP_EXIT, chan, &w);
	} else if (strcmp(mode, "flood") == 0) {
		static uint8_t junk[GP_MAX_PAYLOAD];
		memset(junk, 'x', sizeof(junk));
		for (;;)
			send_frame(GP_STDOUT, chan, junk, sizeof(junk));
	} else if (strcmp(mode, "oversize") == 0) {
		uint8_t h[GP_HDR_SIZE] = {0};
		uint32_t len = GP_MAX_PAYLOAD + 1;
		memcpy(h, &len, 4);
		h[4] = GP_STDOUT;
		memcpy(h + 8, &chan, 4);
		put(h, sizeof(h));
	} else if (strcmp(mode, "malformed") == 0) {
		/* tag EXIT_CODE, length 100, 8 bytes present */
		uint8_t p[14] = {GP_T_EXIT_CODE, 0, 100, 0, 0, 0};
		send_frame(GP_EXIT, chan, p, sizeof(p));
	} else if (strcmp(mode, "badchan") == 0) {
		send_frame(GP_STDOUT, chan + 4242, "x", 1);
	} else if (strcmp(mode, "spam") == 0) {
		gp_w_u64(&w, GP_T_SEQ, 1);
		for (int i = 0; i < 100000; i++)
			send_fields(GP_PONG, 0, &w);
	} else if (strcmp(mode, "deaf") == 0) {
		for (uint32_t i = 0;; i++) {
			uint32_t c = GP_GUEST_CHAN | (i % 512 + 1);
			send_frame(GP_STREAM_OPEN, c, "", 0);
			send_frame(GP_STREAM_CLOSE, c, "", 0);
		}
	}
	/* silent, and anything else: nothing */
}

int main(void)
{
	mkdir("/dev", 0755);
	mkdir("/sys", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	load_modules();
	port = open_port();
	struct stat st;
	if (port < 0 || stat("/hostile-nohello", &st) == 0)
		for (;;)
			pause();
	uint8_t buf[256];
	struct gp_writer w;
	gp_w_init(&w, buf, sizeof(buf));
	gp_w_u64(&w, GP_T_VERSION, (uint64_t)GP_VERSION_MAJOR << 16 | GP_VERSION_MINOR);
	gp_w_str(&w, GP_T_AGENT, "hostile-test-guest");
	gp_w_u64(&w, GP_T_CAPS, 0);
	send_fields(GP_HELLO, 0, &w);
	struct gp_rx rx;
	gp_rx_init(&rx, rxbuf, sizeof(rxbuf));
	for (;;) {
		size_t room;
		uint8_t *sp = gp_rx_space(&rx, &room);
		ssize_t n = read(port, sp, room);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			usleep(10000);
			continue;
		}
		gp_rx_commit(&rx, (size_t)n);
		struct gp_hdr h;
		const uint8_t *p;
		while (gp_rx_frame(&rx, &h, &p) == 1) {
			if (h.type == GP_SETUP || h.type == GP_PING) {
				gp_w_init(&w, buf, sizeof(buf));
				gp_w_u64(&w, GP_T_SEQ, 0);
				send_fields(h.type == GP_PING ? GP_PONG : GP_OK, 0, &w);
			} else if (h.type == GP_POWEROFF) {
				sync();
				syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, NULL);
			} else if (h.type == GP_EXEC) {
				char mode[64] = "", arg[256] = "";
				int argi = 0;
				struct gp_reader r;
				struct gp_field f;
				gp_r_init(&r, p, h.len);
				while (gp_r_next(&r, &f) == 1)
					if (f.tag == GP_T_ARG) {
						if (argi == 0)
							gp_f_str(&f, mode, sizeof(mode));
						else if (argi == 1)
							gp_f_str(&f, arg, sizeof(arg));
						argi++;
					}
				misbehave(mode, arg, h.chan);
			}
		}
	}
}
