/* ctxproto.c: the code-context protocol on the host's side (docs/contexts.md) — the
 * request encoder and the parser of what a runner sends, which is sandbox input: pure, no
 * I/O, fuzzed by fuzz/fuzz_ctxframe.c. */
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
	[CTXF_HELLO] = "hello", [CTXF_OUT] = "out",	[CTXF_ERR] = "err",
	[CTXF_RESULT] = "result", [CTXF_ERROR] = "error", [CTXF_DONE] = "done",
};

const char *ctx_frame_kind_name(enum ctx_frame_kind k)
{
	return k <= CTXF_DONE ? kind_names[k] : "?";
}

void ctx_parser_init(struct ctx_parser *p, size_t max_payload)
{
	memset(p, 0, sizeof(*p));
	p->max_payload = max_payload;
}

void ctx_parser_free(struct ctx_parser *p)
{
	free(p->buf);
	p->buf = NULL;
	p->cap = 0;
}

void ctx_encode(char **buf, size_t *len, const char *kind, uint32_t id, const void *payload,
		size_t plen)
{
	char head[CTX_HEADER_MAX + 1];
	int h = snprintf(head, sizeof(head), "%s %u %zu\n", kind, id, plen);
	*buf = xrealloc(*buf, *len + (size_t)h + plen);
	memcpy(*buf + *len, head, (size_t)h);
	memcpy(*buf + *len + h, payload, plen);
	*len += (size_t)h + plen;
}

/* Sandbox bytes quoted in an error message, which reaches the daemon's log and terminals:
 * printable ASCII but for quotes and backslashes, '?' for the rest (no forged log line,
 * field or escape sequence). */
static const char *shown(char *dst, size_t size, const char *s, size_t len)
{
	size_t i;
	for (i = 0; i < len && i + 1 < size; i++) {
		unsigned char ch = (unsigned char)s[i];
		dst[i] = ch >= 32 && ch < 127 && ch != '"' && ch != '\\' ? (char)ch : '?';
	}
	dst[i] = '\0';
	return dst;
}

/* A decimal without sign, leading zero or overflow of 32 bits. */
static bool parse_u32(const char *s, size_t n, uint32_t *out)
{
	if (n == 0 || n > 10 || (n > 1 && s[0] == '0'))
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* "KIND ID LEN" with single spaces, nothing else. */
static int parse_head(struct ctx_parser *p, agentd_error *err)
{
	const char *h = p->head, *sp1 = memchr(h, ' ', p->hlen);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', p->hlen - (size_t)(sp1 + 1 - h)) : NULL;
	if (!sp2)
		return agentd_error_set(err, EPROTO, "malformed frame header");
	size_t klen = (size_t)(sp1 - h);
	int kind = -1;
	for (int k = 0; k <= CTXF_DONE; k++)
		if (strlen(kind_names[k]) == klen && !memcmp(kind_names[k], h, klen))
			kind = k;
	char k[CTX_HEADER_MAX + 1];
	if (kind < 0)
		return agentd_error_set(err, EPROTO, "unknown frame kind '%s'",
					shown(k, sizeof(k), h, klen));
	uint32_t id, len;
	if (!parse_u32(sp1 + 1, (size_t)(sp2 - sp1 - 1), &id) ||
	    !parse_u32(sp2 + 1, p->hlen - (size_t)(sp2 + 1 - h), &len))
		return agentd_error_set(err, EPROTO, "malformed %s frame header", kind_names[kind]);
	size_t bound = kind == CTXF_HELLO || kind == CTXF_DONE ? CTX_SMALL_MAX
		       : kind == CTXF_ERROR			  ? CTX_ERROR_MAX
								  : p->max_payload;
	p->skip = false;
	if (len > bound) {
		/* output and results over the budget are dropped, not kept; the small frames
		 * say what the cell did and have no business being large */
		if (kind != CTXF_OUT && kind != CTXF_ERR && kind != CTXF_RESULT)
			return agentd_error_set(err, EPROTO, "%s frame of %u bytes (at most %zu)",
						kind_names[kind], len, bound);
		p->skip = true;
	}
	p->cur = (struct ctx_frame){.kind = (enum ctx_frame_kind)kind, .id = id, .len = len};
	p->have = 0;
	p->in_payload = true;
	return 0;
}

static int finish(struct ctx_parser *p, ctx_frame_cb cb, void *ud, agentd_error *err)
{
	p->in_payload = false;
	p->hlen = 0;
	p->cur.data = p->skip ? NULL : p->buf ? p->buf : (const uint8_t *)"";
	return cb(ud, &p->cur, err);
}

int ctx_parser_feed(struct ctx_parser *p, const uint8_t *data, size_t len, ctx_frame_cb cb,
		    void *ud, agentd_error *err)
{
	while (len) {
		if (!p->in_payload) {
			const uint8_t *nl = memchr(data, '\n', len);
			size_t take = nl ? (size_t)(nl - data) : len;
			if (p->hlen + take > CTX_HEADER_MAX)
				return agentd_error_set(err, EPROTO, "frame header over %d bytes",
							CTX_HEADER_MAX);
			memcpy(p->head + p->hlen, data, take);
			p->hlen += take;
			data += take;
			len -= take;
			if (!nl)
				return 0;
			data++;
			len--;
			p->head[p->hlen] = '\0';
			if (memchr(p->head, '\0', p->hlen))
				return agentd_error_set(err, EPROTO, "NUL in a frame header");
			if (parse_head(p, err) < 0)
				return -1;
			if (p->cur.len == 0 && finish(p, cb, ud, err) < 0)
				return -1;
			continue;
		}
		size_t take = p->cur.len - p->have < len ? p->cur.len - p->have : len;
		if (!p->skip) {
			/* grown as bytes arrive, not to what a header claims */
			if (p->have + take > p->cap) {
				size_t cap = p->cap ? p->cap : 4096;
				while (cap < p->have + take)
					cap *= 2;
				p->cap = cap < p->cur.len ? cap : p->cur.len;
				p->buf = xrealloc(p->buf, p->cap);
			}
			memcpy(p->buf + p->have, data, take);
		}
		p->have += take;
		data += take;
		len -= take;
		if (p->have == p->cur.len && finish(p, cb, ud, err) < 0)
			return -1;
	}
	return 0;
}

static json_t *load_object(const struct ctx_frame *f, agentd_error *err)
{
	if (!f->data)
		return agentd_error_set(err, EPROTO, "%s frame: payload dropped",
					kind_names[f->kind]), NULL;
	json_error_t je;
	json_t *j = json_loadb((const char *)f->data, f->len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(j)) {
		json_decref(j);
		agentd_error_set(err, EPROTO, "%s frame: not a JSON object", kind_names[f->kind]);
		return NULL;
	}
	return j;
}

/* A MIME type as notebooks use them: type/subtype of [a-z0-9.+-]. */
static bool mime_ok(const char *s)
{
	size_t n = strlen(s), slash = 0;
	if (n == 0 || n > 100)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '/')
			slash++;
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
			   c == '+' || c == '-'))
			return false;
	}
	return slash == 1 && s[0] != '/' && s[n - 1] != '/';
}

json_t *ctx_decode_bundle(const struct ctx_frame *f, agentd_error *err)
{
	json_t *j = load_object(f, err), *v;
	const char *k;
	if (!j)
		return NULL;
	if (json_object_size(j) == 0 || json_object_size(j) > 16) {
		json_decref(j);
		agentd_error_set(err, EPROTO, "result frame: expected 1 to 16 MIME types");
		return NULL;
	}
	json_object_foreach(j, k, v) {
		if (!mime_ok(k) || !json_is_string(v)) {
			char q[101];
			agentd_error_set(err, EPROTO, "result frame: bad entry '%s'",
					 shown(q, sizeof(q), k, strlen(k)));
			json_decref(j);
			return NULL;
		}
	}
	return j;
}

json_t *ctx_decode_error(const struct ctx_frame *f, agentd_error *err)
{
	json_t *j = load_object(f, err);
	if (!j)
		return NULL;
	static const char *const keys[] = {"name", "value", "traceback"};
	bool ok = json_object_size(j) == 3;
	for (int i = 0; i < 3 && ok; i++)
		ok = json_is_string(json_object_get(j, keys[i]));
	if (ok && json_string_length(json_object_get(j, "name")) > 256)
		ok = false;
	if (!ok) {
		json_decref(j);
		agentd_error_set(err, EPROTO, "error frame: expected {name, value, traceback}");
		return NULL;
	}
	return j;
}

int ctx_decode_done(const struct ctx_frame *f, struct ctx_done *d, agentd_error *err)
{
	json_t *j = load_object(f, err);
	if (!j)
		return -1;
	const char *st = json_string_value(json_object_get(j, "status"));
	json_t *ec = json_object_get(j, "exit_code"), *ex = json_object_get(j, "exited");
	size_t want = 1 + (ec != NULL) + (ex != NULL);
	int r = 0;
	if (!st || (strcmp(st, "ok") && strcmp(st, "error")) || json_object_size(j) != want ||
	    (ec && (!json_is_integer(ec) || json_integer_value(ec) < 0 ||
		    json_integer_value(ec) > 255)) ||
	    (ex && !json_is_boolean(ex))) {
		r = agentd_error_set(err, EPROTO,
				     "done frame: expected {status, exit_code?, exited?}");
	} else {
		d->ok = !strcmp(st, "ok");
		d->has_exit = ec != NULL;
		d->exit_code = ec ? (int)json_integer_value(ec) : 0;
		d->exited = json_is_true(ex);
	}
	json_decref(j);
	return r;
}

json_t *ctx_decode_hello(const struct ctx_frame *f, agentd_error *err)
{
	json_t *j = load_object(f, err);
	if (!j)
		return NULL;
	json_t *lang = json_object_get(j, "language"), *ver = json_object_get(j, "version"),
	       *pid = json_object_get(j, "pid");
	if (!json_is_string(lang) || (ver && (!json_is_string(ver) || json_string_length(ver) > 64)) ||
	    (pid && !json_is_integer(pid))) {
		json_decref(j);
		agentd_error_set(err, EPROTO, "hello frame: expected {language, version?, pid?}");
		return NULL;
	}
	return j;
}
