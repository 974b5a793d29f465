/* child.c: the child side of the report protocol, and what every command's child does
 * before its execve whoever forked it: signals reset, a PATH search without malloc. All of
 * it runs after a fork or clone of a possibly multithreaded process: async-signal-safe. */
#include "lib/engine/engine.h"

#include <fcntl.h>
#include <signal.h>

void child_report_fail(int errfd, int exit_code, int errnum, const char *what)
{
	struct child_report rep;
	memset(&rep, 0, sizeof(rep));
	rep.kind = REPORT_FAIL;
	rep.exit_code = exit_code;
	rep.errnum = errnum;
	size_t n = strlen(what);
	if (n >= sizeof(rep.what))
		n = sizeof(rep.what) - 1;
	memcpy(rep.what, what, n);
	if (write(errfd, &rep, sizeof(rep)) < 0) {
		/* nothing left to tell anyone */
	}
}

void child_fail(int errfd, int exit_code, int errnum, const char *what)
{
	child_report_fail(errfd, exit_code, errnum, what);
	_exit(exit_code);
}

void child_enter_workdir(int errfd, const char *cwd)
{
	if (chdir(cwd) == 0)
		return;
	struct child_report rep;
	memset(&rep, 0, sizeof(rep));
	rep.kind = REPORT_FAIL;
	rep.exit_code = 125;
	rep.errnum = errno;
	rep.bad_workdir = true;
	size_t n = strlen(cwd);
	if (n >= sizeof(rep.what))
		n = sizeof(rep.what) - 1;
	memcpy(rep.what, cwd, n);
	if (write(errfd, &rep, sizeof(rep)) < 0) {
		/* nothing left to tell anyone */
	}
	_exit(125);
}

void child_report_exit(int fd, int status, const struct rusage *ru)
{
	struct child_report rep;
	memset(&rep, 0, sizeof(rep));
	rep.kind = REPORT_EXIT;
	rep.status = status;
	rep.ru = *ru;
	if (write(fd, &rep, sizeof(rep)) < 0) {
		/* the host stopped listening: nothing to do */
	}
}

int exec_failure_code(int neg_errno)
{
	return neg_errno == -ENOENT || neg_errno == -ENOTDIR ? 127 : 126;
}

/* execve with a PATH search over the command's own PATH; no malloc (we are post-fork).
 * Like execvp: EACCES is remembered, ENOENT keeps searching. */
int child_execvpe(char *const argv[], char *const envp[])
{
	const char *file = argv[0];
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return -errno;
	}
	const char *path = "/usr/local/bin:/usr/bin:/bin";
	for (char *const *e = envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	size_t flen = strlen(file);
	int saved = ENOENT;
	char buf[4096];
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dlen = (size_t)(end - p);
		if (dlen + 1 + flen + 1 <= sizeof(buf)) {
			if (dlen) {
				memcpy(buf, p, dlen);
				buf[dlen] = '/';
				memcpy(buf + dlen + 1, file, flen + 1);
			} else {
				memcpy(buf, file, flen + 1);
			}
			execve(buf, argv, envp);
			if (errno == EACCES || errno == ENOEXEC || errno == EPERM)
				saved = errno;
			else if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP &&
				 errno != ENAMETOOLONG)
				return -errno;
		}
		if (!*end)
			break;
		p = end;
	}
	return -saved;
}
