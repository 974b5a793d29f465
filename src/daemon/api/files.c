/* api_files.c: PUT/GET /v1/sandboxes/{id}/files?path=P. The library resolves P beneath the
 * sandbox's workdir fd with the sandbox's own ids (agentd_sandbox_open_file); here nothing
 * about the file is trusted either: reads stop at the size limit whatever fstat said. */
#include "daemon/api/api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Read to EOF, at most max bytes: one more is "too large", the file may be growing. */
static int read_bounded(int fd, size_t max, char **out, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (n == cap) {
			if (cap > max) {
				free(buf);
				errno = EFBIG;
				return -1;
			}
			cap *= 2;
			buf = realloc(buf, cap);
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			free(buf);
			errno = EFBIG;
			return -1;
		}
	}
	*out = buf;
	*len = n;
	return 0;
}

void api_files(struct daemon *d, struct api_request *r, const struct client *c,
	       struct reply *out)
{
	struct live *l = live_get(d, r->id);
	if (!l) {
		reply_error(out, 404, "no sandbox %s", r->id);
		return;
	}
	bool put = r->route == ROUTE_FILE_PUT;
	agentd_error err = {0};
	uint64_t t0 = mono_ms();
	int fd = agentd_sandbox_open_file(l->sb, r->file_path, put, &err);
	if (fd < 0) {
		reply_agentd_error(out, 0, &err);
		char *const argv[] = {r->file_path, NULL};
		audit(d, c, put ? "file_put" : "file_get", l->id, argv, l->digest, l->backend,
		      err.msg, mono_ms() - t0);
		live_put(d, l);
		return;
	}
	char result[64] = "ok";
	if (put) {
		if (write_all(fd, r->raw, r->raw_len) < 0) {
			agentd_error_set(&err, errno, "write %s: %s", r->file_path, strerror(errno));
			reply_agentd_error(out, 0, &err);
			snprintf(result, sizeof(result), "error: %s", strerror(err.code));
		} else {
			reply_json(out, 200, json_pack("{s:s, s:I}", "path", r->file_path, "size",
						       (json_int_t)r->raw_len));
			snprintf(result, sizeof(result), "wrote %zu bytes", r->raw_len);
		}
	} else {
		char *data;
		size_t len;
		if (read_bounded(fd, d->cfg.max_file_bytes, &data, &len) < 0) {
			int e = errno;
			if (e == EFBIG)
				reply_error(out, 413, "%s: larger than %zu bytes", r->file_path,
					    d->cfg.max_file_bytes);
			else
				reply_error(out, 500, "read %s: %s", r->file_path, strerror(e));
			snprintf(result, sizeof(result), "error: %s", strerror(e));
		} else {
			out->status = 200;
			out->raw = data;
			out->raw_len = len;
			out->content_type = "application/octet-stream";
			snprintf(result, sizeof(result), "read %zu bytes", len);
		}
	}
	close(fd);
	char *const argv[] = {r->file_path, NULL};
	audit(d, c, put ? "file_put" : "file_get", l->id, argv, l->digest, l->backend, result,
	      mono_ms() - t0);
	live_put(d, l);
}
