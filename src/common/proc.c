/* proc.c: what a forked child shows of itself in /proc. */
#include "common/common.h"

#include <fcntl.h>
#include <sys/prctl.h>

void proc_hide_cmdline(const char *name)
{
	char buf[1024];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return;
	unsigned long start = 0, end = 0;
	int field = 2;
	for (p++; *p && field < 49; p++) {
		if (*p != ' ')
			continue;
		field++;
		if (field == 48)
			start = strtoul(p + 1, NULL, 10);
		else if (field == 49)
			end = strtoul(p + 1, NULL, 10);
	}
	size_t len = strlen(name) + 1;
	if (start && end > start && end - start < (1UL << 21)) {
		memset((void *)start, 0, end - start);
		memcpy((void *)start, name, end - start > len ? len : 0);
	}
}
