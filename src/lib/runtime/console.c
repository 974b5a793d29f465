/* console.c: process.terminal: the pty made inside the container (its devpts), the master
 * handed to the engine's --console-socket by SCM_RIGHTS as runc does, the slave the
 * process's controlling terminal and stdio. */
#include "lib/runtime/verbs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

int ocirt_console_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return ocirt_fail("--console-socket %s: path too long", path), -1;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return ocirt_fail("--console-socket %s: connect: %s", path, strerror(e)), -1;
	}
	return fd;
}

static int fail(char *what, size_t what_len, const char *step)
{
	int e = errno;
	snprintf(what, what_len, "console: %s", step);
	return -e;
}

int ocirt_console_setup(int sock, unsigned rows, unsigned cols, char *what, size_t what_len)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return fail(what, what_len, "open /dev/ptmx (the container's devpts)");
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		return fail(what, what_len, "unlock the pty");
	/* the slave through the master: no path lookup in the container's /dev/pts */
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (slave < 0)
		return fail(what, what_len, "open the pty's slave");
	if (rows && cols) {
		struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
		(void)ioctl(slave, TIOCSWINSZ, &ws);
	}
	int n = 0;
	char name[32] = "/dev/ptmx";
	if (ioctl(master, TIOCGPTN, &n) == 0)
		snprintf(name, sizeof(name), "/dev/pts/%d", n);
	if (fds_send(sock, name, strlen(name), &master, 1) < 0)
		return fail(what, what_len, "send the pty master to --console-socket");
	close(master);
	close(sock);
	if (setsid() < 0 && errno != EPERM)
		return fail(what, what_len, "setsid");
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		return fail(what, what_len, "make the pty the controlling terminal");
	for (int fd = 0; fd < 3; fd++)
		if (dup2(slave, fd) < 0)
			return fail(what, what_len, "make the pty stdio");
	if (slave > 2)
		close(slave);
	return 0;
}
