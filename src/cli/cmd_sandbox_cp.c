/* cmd_sandbox_cp.c: `agentd sandbox cp SRC DST` as `docker cp`: one side ID:PATH, files and
 * directories (tar streams through the files API) both ways, a destination directory gets
 * the source under its own name, "-" a tar stream; the daemon's errors shown as its own. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cp {
	const char *socket;
	bool raw;
	char id[65];
};

/* ID:PATH, where ID is a sandbox's id or its name ([A-Za-z0-9._-], at most 64 bytes: a
 * host path with a '/' before its first ':' is never one). */
static bool split_remote(const char *s, char id[65], const char **path)
{
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : 0;
	if (!n || n > 64 || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "0123456789._-") < n)
		return false;
	memcpy(id, s, n);
	id[n] = '\0';
	*path = colon + 1;
	return true;
}

/* /v1/sandboxes/ID/files<what>?path=P<extra> */
static char *url(const struct cp *cp, const char *what, const char *path, const char *extra)
{
	char *q = url_escape(path), *u = NULL;
	if (asprintf(&u, "/v1/sandboxes/%s/files%s?path=%s%s", cp->id, what, q, extra) < 0)
		abort();
	free(q);
	return u;
}

/* One request; 0 with resp (status 200) or EXIT_AGENTD, the daemon's error shown. */
static int call(const struct cp *cp, const char *method, char *path, const char *ctype,
		const void *body, size_t len, struct http_response *resp)
{
	agentd_error err = {0};
	struct client_conn c;
	int r = client_connect(cp->socket, &c, &err);
	if (r == 0) {
		r = client_request(&c, method, path, ctype, body, len, resp, NULL, NULL, &err);
		client_close(&c);
	}
	free(path);
	if (r < 0) {
		print_error("sandbox cp: %s", err.msg);
		return EXIT_AGENTD;
	}
	if (resp->status != 200) {
		json_t *j = json_loadb(resp->body ? resp->body : "", resp->len, 0, NULL);
		client_report_error("sandbox cp", resp->status, j);
		json_decref(j);
		http_response_free(resp);
		return EXIT_AGENTD;
	}
	return 0;
}

/* The remote path's type: "dir", "file", ... or NULL when there is nothing (404); *rc set
 * for any other error. */
static char *remote_type(const struct cp *cp, const char *path, int *rc)
{
	struct http_response resp;
	agentd_error err = {0};
	struct client_conn c;
	*rc = 0;
	char *u = url(cp, "/stat", path, "");
	int r = client_connect(cp->socket, &c, &err);
	if (r == 0) {
		r = client_request(&c, "GET", u, NULL, NULL, 0, &resp, NULL, NULL, &err);
		client_close(&c);
	}
	free(u);
	if (r < 0) {
		print_error("sandbox cp: %s", err.msg);
		*rc = EXIT_AGENTD;
		return NULL;
	}
	json_t *j = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
	char *type = NULL;
	if (resp.status == 200)
		type = strdup(json_string_value(json_object_get(j, "type")) ?: "other");
	else if (resp.status != 404)
		*rc = client_report_error("sandbox cp", resp.status, j);
	json_decref(j);
	http_response_free(&resp);
	return type;
}

/* "a/b/" -> "b"; "." and "/" -> NULL (the contents, not a name). */
static char *base_name(const char *p)
{
	char *copy = strdup(p), *b = basename(copy);
	char *r = !strcmp(b, ".") || !strcmp(b, "/") || !strcmp(b, "..") ? NULL : strdup(b);
	free(copy);
	return r;
}

static char *join(const char *dir, const char *name)
{
	char *r;
	size_t n = strlen(dir);
	if (asprintf(&r, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name) < 0)
		abort();
	return r;
}

/* ------------------------------------------------------------------ sandbox -> host */

static int write_out(const struct cp *cp, const char *dst, const struct http_response *resp)
{
	if (!strcmp(dst, "-")) {
		/* the sandbox's bytes on our stdout: escaped if that is a terminal */
		struct term_out t;
		term_out_init(&t, 1, cp->raw);
		term_out_write(&t, (const uint8_t *)resp->body, resp->len);
		term_out_flush(&t);
		return 0;
	}
	int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, resp->body, resp->len) < 0) {
		print_error("sandbox cp: %s: %s", dst, strerror(errno));
		if (fd >= 0)
			close(fd);
		return EXIT_AGENTD;
	}
	close(fd);
	return 0;
}

static int extract_here(const char *dir, const struct http_response *resp)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		print_error("sandbox cp: mkdir %s: %s", dir, strerror(errno));
		return EXIT_AGENTD;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	agentd_error err = {0};
	if (fd < 0) {
		print_error("sandbox cp: %s: %s", dir, strerror(errno));
		return EXIT_AGENTD;
	}
	int r = agentd_tar_extract_dir(fd, resp->body, resp->len, NULL, NULL, &err);
	close(fd);
	if (r < 0) {
		print_error("sandbox cp: extract into %s: %s", dir, err.msg);
		return EXIT_AGENTD;
	}
	return 0;
}

static int copy_from(const struct cp *cp, const char *rpath, const char *dst)
{
	int rc;
	char *type = remote_type(cp, rpath, &rc);
	if (!type) {
		if (!rc) {
			print_error("sandbox cp: %s:%s: No such file or directory (HTTP 404)", cp->id,
				    rpath);
			rc = EXIT_AGENTD;
		}
		return rc;
	}
	bool dir = !strcmp(type, "dir");
	free(type);
	struct stat st;
	bool dst_dir = strcmp(dst, "-") && stat(dst, &st) == 0 && S_ISDIR(st.st_mode);
	char *name = base_name(rpath);
	/* A destination directory receives the source under its own name. */
	char *target = dst_dir && name ? join(dst, name) : strdup(dst);
	free(name);
	struct http_response resp;
	if (dir) {
		if ((rc = call(cp, "GET", url(cp, "/tar", rpath, ""), NULL, NULL, 0, &resp)) == 0) {
			if (!strcmp(dst, "-")) {
				if (isatty(1)) {
					print_error("sandbox cp: not writing a tar stream to a "
						    "terminal");
					rc = EXIT_AGENTD;
				} else if (write_all(1, resp.body, resp.len) < 0) {
					print_error("sandbox cp: stdout: %s", strerror(errno));
					rc = EXIT_AGENTD;
				}
			} else {
				rc = extract_here(target, &resp);
			}
			http_response_free(&resp);
		}
	} else if ((rc = call(cp, "GET", url(cp, "", rpath, ""), NULL, NULL, 0, &resp)) == 0) {
		rc = write_out(cp, target, &resp);
		http_response_free(&resp);
	}
	free(target);
	return rc;
}

/* ------------------------------------------------------------------ host -> sandbox */

static uint8_t *tar_of_dir(const char *src, size_t *len)
{
	agentd_error err = {0};
	int fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	agentd_tar_reader *tr = fd < 0 ? NULL : agentd_tar_open_dir(fd, NULL, &err);
	if (fd >= 0)
		close(fd);
	if (!tr) {
		print_error("sandbox cp: %s: %s", src, fd < 0 ? strerror(errno) : err.msg);
		return NULL;
	}
	size_t cap = 1 << 20, n = 0;
	uint8_t *buf = malloc(cap);
	for (;;) {
		if (cap - n < 65536)
			buf = realloc(buf, cap *= 2);
		ssize_t r = agentd_tar_read(tr, buf + n, cap - n, &err);
		if (r < 0) {
			print_error("sandbox cp: %s: %s", src, err.msg);
			free(buf);
			buf = NULL;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	agentd_tar_reader_free(tr);
	*len = n;
	return buf;
}

static int copy_to(const struct cp *cp, const char *src, const char *rpath)
{
	size_t len = 0;
	uint8_t *data = NULL;
	bool tar = !strcmp(src, "-");
	struct stat st;
	if (tar) {
		data = read_fd_all(0, &len);
	} else if (stat(src, &st) < 0) {
		print_error("sandbox cp: %s: %s", src, strerror(errno));
		return EXIT_AGENTD;
	} else if (S_ISDIR(st.st_mode)) {
		tar = true;
		if (!(data = tar_of_dir(src, &len)))
			return EXIT_AGENTD;
	} else {
		int fd = open(src, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			print_error("sandbox cp: %s: %s", src, strerror(errno));
			return EXIT_AGENTD;
		}
		data = read_fd_all(fd, &len);
		close(fd);
	}
	int rc = 0;
	char *type = strcmp(src, "-") ? remote_type(cp, rpath, &rc) : NULL;
	char *name = strcmp(src, "-") ? base_name(src) : NULL;
	char *target = type && !strcmp(type, "dir") && name ? join(rpath, name) : strdup(rpath);
	free(type);
	free(name);
	struct http_response resp;
	if (rc == 0 &&
	    (rc = call(cp, "PUT", url(cp, tar ? "/tar" : "", target, ""),
		       tar ? "application/x-tar" : "application/octet-stream", data, len,
		       &resp)) == 0)
		http_response_free(&resp);
	free(target);
	free(data);
	return rc;
}

int sandbox_cp(const char *socket, bool raw, const char *src, const char *dst)
{
	struct cp cp = {.socket = socket, .raw = raw};
	const char *rpath;
	char other[65];
	bool from = split_remote(src, cp.id, &rpath);
	if (from ? split_remote(dst, other, &(const char *){NULL})
		 : !split_remote(dst, cp.id, &rpath)) {
		print_error("sandbox cp: exactly one of SRC and DST must be ID:PATH");
		return EXIT_AGENTD;
	}
	return from ? copy_from(&cp, rpath, dst) : copy_to(&cp, src, rpath);
}
