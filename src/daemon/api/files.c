/* api_files.c: /v1/sandboxes/{id}/files... — one file up and down, and (issue 12) list,
 * stat, mkdir, delete, rename, chmod, tar up and down, watch. The library resolves every
 * path beneath the sandbox's held workdir or root fd with its own ids; here nothing about
 * a file is trusted either: reads stop at the size limit whatever fstat said. */
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

/* issue 12: files ------------------------------------------------------------------ */

#define FILES_LIST_MAX 10000	/* entries of one listing; more: "truncated": true */

static json_t *stat_json(const agentd_file_stat *st)
{
	json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:I}", "name", st->name, "type",
			      agentd_file_type_name(st->type), "size", (json_int_t)st->size,
			      "mode", "", "mtime_ms", (json_int_t)st->mtime_ms);
	char mode[8];
	snprintf(mode, sizeof(mode), "%04o", st->mode);
	json_object_set_new(j, "mode", json_string(mode));
	if (st->link_target) {
		/* a target is the sandbox's bytes: not necessarily UTF-8 */
		json_t *t = json_string(st->link_target);
		json_object_set_new(j, "link_target", t ? t : json_stringn_nocheck(
								     st->link_target,
								     strlen(st->link_target)));
	}
	return j;
}

static int files_list(struct live *l, struct api_request *r, struct reply *out,
		      agentd_error *err)
{
	agentd_file_stat *v;
	size_t n;
	bool truncated;
	if (agentd_sandbox_list(l->sb, r->file_path, FILES_LIST_MAX, &v, &n, &truncated, err) < 0)
		return -1;
	json_t *entries = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(entries, stat_json(&v[i]));
		agentd_file_stat_free(&v[i]);
	}
	free(v);
	reply_json(out, 200, json_pack("{s:s, s:o, s:b}", "path", r->file_path, "entries",
				       entries, "truncated", truncated));
	return 0;
}

static int files_stat(struct live *l, struct api_request *r, struct reply *out,
		      agentd_error *err)
{
	agentd_file_stat st;
	if (agentd_sandbox_stat(l->sb, r->file_path, &st, err) < 0)
		return -1;
	json_t *j = stat_json(&st);
	json_object_set_new(j, "path", json_string(r->file_path));
	agentd_file_stat_free(&st);
	reply_json(out, 200, j);
	return 0;
}

static int files_tar_put(struct daemon *d, struct live *l, struct api_request *r,
			 struct reply *out, char *result, size_t rlen, agentd_error *err)
{
	agentd_tar_limits lim = {.max_bytes = d->cfg.max_file_bytes};
	agentd_tar_stats st = {0};
	if (agentd_sandbox_tar_extract(l->sb, r->file_path, r->raw, r->raw_len, &lim, &st,
				       err) < 0)
		return -1;
	snprintf(result, rlen, "extracted %llu entries, %llu bytes",
		 (unsigned long long)st.entries, (unsigned long long)st.bytes);
	reply_json(out, 200, json_pack("{s:s, s:I, s:I}", "path", r->file_path, "entries",
				       (json_int_t)st.entries, "bytes", (json_int_t)st.bytes));
	return 0;
}

static int files_tar_get(struct daemon *d, struct live *l, struct api_request *r,
			 struct reply *out, agentd_error *err)
{
	agentd_tar_limits lim = {.max_bytes = d->cfg.max_file_bytes};
	agentd_tar_reader *tr = agentd_sandbox_tar_open(l->sb, r->file_path, &lim, err);
	if (!tr)
		return -1;
	out->mhd_response = files_tar_response(tr); /* takes tr */
	if (!out->mhd_response)
		return agentd_error_set(err, ENOMEM, "tar stream");
	out->status = 200;
	return 0;
}

static const char *files_action(enum api_route route)
{
	switch (route) {
	case ROUTE_FILE_PUT: return "file_put";
	case ROUTE_FILE_GET: return "file_get";
	case ROUTE_FILE_LIST: return "file_list";
	case ROUTE_FILE_STAT: return "file_stat";
	case ROUTE_FILE_MKDIR: return "file_mkdir";
	case ROUTE_FILE_DELETE: return "file_delete";
	case ROUTE_FILE_RENAME: return "file_rename";
	case ROUTE_FILE_CHMOD: return "file_chmod";
	case ROUTE_FILE_TAR_PUT: return "file_tar_put";
	case ROUTE_FILE_TAR_GET: return "file_tar_get";
	default: return "file_watch";
	}
}

/* Everything but a single file's PUT and GET: 0 (out set, result the audit's) or -1 + err. */
static int files_op(struct daemon *d, struct live *l, struct api_request *r,
		    const struct client *c, struct reply *out, char *result, size_t rlen,
		    agentd_error *err)
{
	agentd_sandbox *sb = l->sb;
	int rc = 0;
	switch (r->route) {
	case ROUTE_FILE_LIST:
		return files_list(l, r, out, err);
	case ROUTE_FILE_STAT:
		return files_stat(l, r, out, err);
	case ROUTE_FILE_TAR_PUT:
		return files_tar_put(d, l, r, out, result, rlen, err);
	case ROUTE_FILE_TAR_GET:
		return files_tar_get(d, l, r, out, err);
	case ROUTE_FILE_WATCH:
		if (files_watch_open(d, l, r->file_path, c->fd, &out->mhd_response, err) < 0)
			return -1;
		out->status = 200;
		return 0;
	case ROUTE_FILE_MKDIR:
		rc = agentd_sandbox_mkdir(sb, r->file_path, r->file_parents, err);
		break;
	case ROUTE_FILE_DELETE:
		rc = agentd_sandbox_remove(sb, r->file_path, r->file_recursive, err);
		break;
	case ROUTE_FILE_RENAME:
		rc = agentd_sandbox_rename(sb, r->file_path, r->file_to, r->file_noreplace, err);
		break;
	case ROUTE_FILE_CHMOD:
		rc = agentd_sandbox_chmod(sb, r->file_path, r->file_mode, err);
		break;
	default:
		return agentd_error_set(err, EINVAL, "route %s not handled",
					api_route_name(r->route));
	}
	if (rc < 0)
		return -1;
	json_t *j = json_pack("{s:s}", "path", r->file_path);
	if (r->file_to)
		json_object_set_new(j, "to", json_string(r->file_to));
	reply_json(out, 200, j);
	return 0;
}

static void api_files_more(struct daemon *d, struct live *l, struct api_request *r,
			   const struct client *c, struct reply *out)
{
	agentd_error err = {0};
	uint64_t t0 = mono_ms();
	char result[160] = "ok";
	if (files_op(d, l, r, c, out, result, sizeof(result), &err) < 0) {
		reply_agentd_error(out, 0, &err);
		snprintf(result, sizeof(result), "error: %s", err.msg);
	}
	char *const argv[] = {r->file_path, r->file_to, NULL};
	audit(d, c, files_action(r->route), l->id, argv, l->digest, l->backend, result,
	      mono_ms() - t0);
}

void api_files(struct daemon *d, struct api_request *r, const struct client *c,
	       struct reply *out)
{
	struct live *l = live_get(d, r->id);
	if (!l) {
		reply_error(out, 404, "no sandbox %s", r->id);
		return;
	}
	if (r->route != ROUTE_FILE_PUT && r->route != ROUTE_FILE_GET) {
		api_files_more(d, l, r, c, out);
		live_put(d, l);
		return;
	}
	bool put = r->route == ROUTE_FILE_PUT;
	agentd_error err = {0};
	uint64_t t0 = mono_ms();
	unsigned flags = put ? AGENTD_OPEN_WRITE | (r->file_parents ? AGENTD_OPEN_PARENTS : 0) : 0;
	int fd = agentd_sandbox_open_path(l->sb, r->file_path, flags, &err);
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
