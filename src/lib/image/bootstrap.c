/* bootstrap.c: a Debian root filesystem from packages — the host's apt mirror for a suite
 * (its sources.list files), and mmdebstrap run into a private directory of the store. */
#include "lib/image/build.h"
#include "lib/image/image.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define APT_DIR "/etc/apt"

bool build_valid_package(const char *p)
{
	/* Debian policy 5.6.1: [a-z0-9][a-z0-9+.-]+, then an optional =VERSION or :ARCH; it
	 * never starts with '-', so mmdebstrap and apt never read one as an option */
	size_t n = strlen(p), name = strcspn(p, "=:");
	if (name < 2 || n > 200 || !(a_digit(p[0]) || (p[0] >= 'a' && p[0] <= 'z')))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		bool ok = a_digit(c) || (c >= 'a' && c <= 'z') || strchr("+-.", c);
		if (i >= name)
			ok = a_alnum(c) || strchr("+-.~:=_", c);
		if (!ok || !c)
			return false;
	}
	return true;
}

bool build_valid_suite(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64 || s[0] == '-')
		return false;
	for (; *s; s++)
		if (!(a_alnum(*s) || *s == '-' || *s == '.' || *s == '_'))
			return false;
	return true;
}

int build_mirror_hostport(const char *url, char **hostport, agentd_error *err)
{
	const char *h;
	unsigned port;
	if (!strncmp(url, "http://", 7)) {
		h = url + 7;
		port = 80;
	} else if (!strncmp(url, "https://", 8)) {
		h = url + 8;
		port = 443;
	} else {
		return agentd_error_set(err, EINVAL, "mirror %.200s: expected an http:// or "
					"https:// URL", url);
	}
	size_t n = strcspn(h, "/");
	for (const char *c = url; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == '\'' || *c == '"' || *c == '\\')
			return agentd_error_set(err, EINVAL, "mirror %.200s: a character a URL "
						"does not have", url);
	if (n == 0 || memchr(h, '@', n))
		return agentd_error_set(err, EINVAL, "mirror %.200s: expected http(s)://HOST[:"
					"PORT]/PATH", url);
	if (memchr(h, ':', n) || h[0] == '[')
		*hostport = xasprintf("%.*s", (int)n, h);
	else
		*hostport = xasprintf("%.*s:%u", (int)n, h, port);
	return 0;
}

/* ----------------------------------------------------------- the host's apt sources */
/* The URI of an entry of type deb that lists suite: one-line format ("deb [opts] URI
 * SUITE COMPONENT...") */
static char *pick_one_line(char *text, const char *suite)
{
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *tok[4] = {0}, *s2 = NULL;
		size_t n = 0;
		for (char *t = strtok_r(line, " \t", &s2); t && n < 4; t = strtok_r(NULL, " \t", &s2)) {
			if (n == 1 && t[0] == '[') { /* options up to the closing ] */
				while (t && !strchr(t, ']'))
					t = strtok_r(NULL, " \t", &s2);
				continue;
			}
			tok[n++] = t;
		}
		if (n >= 3 && !strcmp(tok[0], "deb") && (!suite || !strcmp(tok[2], suite)))
			return xstrdup(tok[1]);
	}
	return NULL;
}

/* ... and deb822 (".sources": stanzas of Types, URIs, Suites, Enabled). */
static char *pick_deb822(char *text, const char *suite)
{
	char *types = NULL, *uris = NULL, *suites = NULL, *enabled = NULL;
	for (char *line = text;; ) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		bool blank = strspn(line, " \t") == strlen(line);
		if (blank && types && uris && suites && strstr(types, "deb") &&
		    !(enabled && strstr(enabled, "no"))) {
			char *s2 = NULL;
			bool has = false;
			for (char *t = strtok_r(suites, " \t", &s2); t; t = strtok_r(NULL, " \t", &s2))
				has |= !suite || !strcmp(t, suite);
			if (has)
				return xasprintf("%.*s", (int)strcspn(uris, " \t"), uris);
		}
		if (blank)
			types = uris = suites = enabled = NULL;
		else if (line[0] != '#' && line[0] != ' ' && line[0] != '\t') {
			char *colon = strchr(line, ':');
			if (colon) {
				*colon = '\0';
				char *v = colon + 1 + strspn(colon + 1, " \t");
				if (!strcasecmp(line, "Types"))
					types = v;
				else if (!strcasecmp(line, "URIs"))
					uris = v;
				else if (!strcasecmp(line, "Suites"))
					suites = v;
				else if (!strcasecmp(line, "Enabled"))
					enabled = v;
			}
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What apt reads: sources.list, then sources.list.d's *.list and *.sources in name order. */
static char *pick_file(int dfd, const char *name, const char *suite)
{
	size_t len;
	_cleanup_free_ char *text = read_file_at(dfd, name, 1u << 20, &len);
	if (!text)
		return NULL;
	size_t n = strlen(name);
	if (n > 8 && !strcmp(name + n - 8, ".sources")) {
		/* a final stanza needs its blank line */
		_cleanup_free_ char *t = xasprintf("%s\n\n", text);
		return pick_deb822(t, suite);
	}
	return pick_one_line(text, suite);
}

int build_host_mirror(const char *suite, char **url, agentd_error *err)
{
	_cleanup_close_ int etc = open(APT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (etc >= 0 && (*url = pick_file(etc, "sources.list", suite)))
		return 0;
	_cleanup_close_ int d = etc >= 0 ? openat(etc, "sources.list.d",
						  O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	DIR *dir = d >= 0 ? fdopendir(dup(d)) : NULL;
	agentd_strv names = {0};
	for (struct dirent *e; dir && (e = readdir(dir));) {
		size_t n = strlen(e->d_name);
		if ((n > 5 && !strcmp(e->d_name + n - 5, ".list")) ||
		    (n > 8 && !strcmp(e->d_name + n - 8, ".sources")))
			strv_push(&names, e->d_name);
	}
	if (dir)
		closedir(dir);
	if (names.n)
		qsort(names.v, names.n, sizeof(*names.v), cmp_str);
	for (size_t i = 0; i < names.n && !*url; i++)
		*url = pick_file(d, names.v[i], suite);
	strv_free(&names);
	if (*url)
		return 0;
	return agentd_error_set(err, ENOENT, "no apt source of %s lists %s%.64s: pass "
				"--mirror URL", APT_DIR "/sources.list*", suite ? "suite " : "a deb entry",
				suite ? suite : "");
}

/* ------------------------------------------------------------------- mmdebstrap */
void build_tail_append(char tail[BUILD_TAIL], size_t *len, const void *data, size_t n)
{
	const char *p = data;
	if (n >= BUILD_TAIL) {
		p += n - (BUILD_TAIL - 1);
		n = BUILD_TAIL - 1;
	}
	if (*len + n >= BUILD_TAIL) {
		size_t drop = *len + n - (BUILD_TAIL - 1);
		memmove(tail, tail + drop, *len - drop);
		*len -= drop;
	}
	memcpy(tail + *len, p, n);
	*len += n;
	tail[*len] = '\0';
}

int run_host_tool(char *const argv[], agentd_error *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return agentd_error_errno(err, errno, "pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(p[1]);
	if (rc) {
		close(p[0]);
		return agentd_error_errno(err, rc, "run %s (install it: apt-get install %s)",
					  argv[0], argv[0]);
	}
	char tail[BUILD_TAIL], buf[4096];
	size_t tlen = 0;
	tail[0] = '\0';
	for (ssize_t n; (n = read(p[0], buf, sizeof(buf))) != 0;) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		build_tail_append(tail, &tlen, buf, (size_t)n);
	}
	close(p[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFSIGNALED(st))
		return agentd_error_set(err, EIO, "%s killed by signal %d; its output:\n%s",
					argv[0], WTERMSIG(st), tail);
	return agentd_error_set(err, EIO, "%s exited with %d; its output:\n%s", argv[0],
				WEXITSTATUS(st), tail);
}

int build_mmdebstrap(const char *suite, const agentd_strv *packages, const char *mirror,
		     const char *target, agentd_error *err)
{
	agentd_strv a = {0};
	strv_push(&a, "mmdebstrap");
	/* As root, unshare mode is root mode (the maintainer scripts run as root, chrooted
	 * in target) in a private mount, pid, uts and ipc namespace: the /proc, /sys and /dev
	 * it mounts in target vanish with it, even when it is killed (docs/images.md). */
	strv_push(&a, "--mode=unshare");
	strv_push(&a, "--variant=minbase");
	strv_push(&a, "--format=directory");
	if (packages->n) {
		_cleanup_free_ char *inc = xstrdup("--include=");
		for (size_t i = 0; i < packages->n; i++) {
			char *next = xasprintf("%s%s%s", inc, i ? "," : "", packages->v[i]);
			free(inc);
			inc = next;
		}
		strv_push(&a, inc);
	}
	static const char *const trim[] = {
		/* no fsync per file: a build that a crash interrupts is thrown away whole */
		"--dpkgopt=force-unsafe-io",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-include=/usr/share/locale/locale.alias",
		"--aptopt=Acquire::Languages \"none\"",
		"--aptopt=APT::Install-Recommends \"false\"",
		/* neither the host's resolver nor its name goes into the image; mmdebstrap
		 * itself empties the apt lists and caches at its end */
		"--customize-hook=: > \"$1/etc/resolv.conf\"; echo agentd > \"$1/etc/hostname\"",
	};
	for (size_t i = 0; i < sizeof(trim) / sizeof(trim[0]); i++)
		strv_push(&a, trim[i]);
	strv_push(&a, suite);
	strv_push(&a, target);
	strv_push(&a, mirror);
	a.v = xrealloc(a.v, (a.n + 1) * sizeof(*a.v));
	a.v[a.n] = NULL;
	int rc = run_host_tool(a.v, err);
	strv_free(&a);
	return rc;
}
