/* proc.c: what a forked child shows of itself in /proc, and a process's start time there. */
#include "common/common.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

int proc_start_time(pid_t pid, unsigned long long *start, bool *zombie)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* comm may hold spaces and parentheses: fields restart after the last ')' */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -1;
	p += 2;
	if (zombie)
		*zombie = *p == 'Z' || *p == 'X';
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	*start = strtoull(p, NULL, 10);
	return 0;
}
