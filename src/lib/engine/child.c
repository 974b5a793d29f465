/* child.c: the child side of the report protocol, and what every command's child does
 * before its execve whoever forked it: signals reset, a PATH search without malloc. All of
 * it runs after a fork or clone of a possibly multithreaded process: async-signal-safe. */
#include "lib/engine/engine.h"

#include <fcntl.h>
#include <signal.h>

static void report_fail(int errfd, int exit_code, int errnum, const char *what,
			bool bad_workdir)
{
	struct child_report rep;
	memset(&rep, 0, sizeof(rep));
	rep.kind = REPORT_FAIL;
	rep.exit_code = exit_code;
	rep.errnum = errnum;
	rep.bad_workdir = bad_workdir;
	size_t n = strlen(what);
	if (n >= sizeof(rep.what))
		n = sizeof(rep.what) - 1;
	memcpy(rep.what, what, n);
	if (write(errfd, &rep, sizeof(rep)) < 0) {
		/* nothing left to tell anyone */
	}
}

void child_report_fail(int errfd, int exit_code, int errnum, const char *what)
{
	report_fail(errfd, exit_code, errnum, what, false);
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
	report_fail(errfd, 125, errno, cwd, true);
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

void child_report_start(int fd, pid_t pid)
{
	struct child_report rep;
	memset(&rep, 0, sizeof(rep));
	rep.kind = REPORT_START;
	rep.status = pid;
	if (write(fd, &rep, sizeof(rep)) < 0) {
		/* the host stopped listening: it kills the process */
	}
}

int exec_failure_code(int neg_errno)
{
	return neg_errno == -ENOENT || neg_errno == -ENOTDIR ? 127 : 126;
}

/* execve of one candidate; ENOENT from a file that is there means its interpreter (#! line
 * or ELF dynamic loader) is missing: remember the file for the report. */
static void exec_one(const char *file, char *const argv[], char *const envp[], char *found,
		     size_t found_size)
{
	execve(file, argv, envp);
	int e = errno;
	if (e == ENOENT && !found[0] && faccessat(AT_FDCWD, file, F_OK, AT_EACCESS) == 0 &&
	    strlen(file) < found_size)
		memcpy(found, file, strlen(file) + 1);
	errno = e;
}

/* execve with a PATH search over the command's own PATH; no malloc (we are post-fork).
 * Like execvp: EACCES is remembered, ENOENT keeps searching. */
int child_execvpe(char *const argv[], char *const envp[], char *found, size_t found_size)
{
	const char *file = argv[0];
	found[0] = '\0';
	if (strchr(file, '/')) {
		exec_one(file, argv, envp, found, found_size);
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
			exec_one(buf, argv, envp, found, found_size);
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

/* What a "#!" line names as the interpreter of found (read here, inside the sandbox, with
 * the command's own rights: the host never opens a file of the sandbox's): "FILE:
 * interpreter INTERP", or "FILE: dynamic loader (ELF interpreter)" without one. */
static void describe_missing_interpreter(const char *found, char *what, size_t size)
{
	char head[256];
	ssize_t n = -1;
	int fd = open(found, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd >= 0) {
		n = read(fd, head, sizeof(head) - 1);
		close(fd);
	}
	if (n > 2 && head[0] == '#' && head[1] == '!') {
		head[n] = '\0';
		char *p = head + 2;
		p += strspn(p, " \t");
		p[strcspn(p, " \t\r\n")] = '\0';
		snprintf(what, size, "%s: interpreter %s (its #! line)", found, p);
	} else {
		snprintf(what, size, "%s: its dynamic loader (ELF interpreter)", found);
	}
}

void child_fail_exec(int errfd, int neg_errno, const char *argv0, const char *found)
{
	char what[sizeof(((struct child_report *)0)->what)];
	if (neg_errno == -ENOENT && found[0])
		describe_missing_interpreter(found, what, sizeof(what));
	else
		snprintf(what, sizeof(what), "%s", argv0);
	child_fail(errfd, exec_failure_code(neg_errno), -neg_errno, what);
}
