/* util.c: small helpers every file shares: allocation that never returns NULL, string
 * vectors and key/value lists, clocks, ids, base64, UTF-8 checks, small file I/O. */
#include "internal.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/random.h>
#include <time.h>

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		abort();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		abort();
	return p;
}

char *xstrdup(const char *s)
{
	char *r = strdup(s ? s : "");
	if (!r)
		abort();
	return r;
}

char *xasprintf(const char *fmt, ...)
{
	char *r = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&r, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	return r;
}

void strv_push(agentd_strv *sv, const char *s)
{
	sv->v = xrealloc(sv->v, (sv->n + 2) * sizeof(char *));
	sv->v[sv->n++] = xstrdup(s);
	sv->v[sv->n] = NULL;
}

void strv_free(agentd_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

void strv_copy(agentd_strv *dst, const agentd_strv *src)
{
	dst->v = NULL;
	dst->n = 0;
	for (size_t i = 0; i < src->n; i++)
		strv_push(dst, src->v[i]);
}

bool strv_contains(const agentd_strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return true;
	return false;
}

void kvv_set(agentd_kvv *kv, const char *key, const char *value)
{
	for (size_t i = 0; i < kv->n; i++) {
		if (strcmp(kv->v[i].key, key) == 0) {
			free(kv->v[i].value);
			kv->v[i].value = xstrdup(value);
			return;
		}
	}
	kv->v = xrealloc(kv->v, (kv->n + 1) * sizeof(agentd_kv));
	kv->v[kv->n].key = xstrdup(key);
	kv->v[kv->n].value = xstrdup(value);
	kv->n++;
}

const char *kvv_get(const agentd_kvv *kv, const char *key)
{
	for (size_t i = 0; i < kv->n; i++)
		if (strcmp(kv->v[i].key, key) == 0)
			return kv->v[i].value;
	return NULL;
}

void kvv_free(agentd_kvv *kv)
{
	for (size_t i = 0; i < kv->n; i++) {
		free(kv->v[i].key);
		free(kv->v[i].value);
	}
	free(kv->v);
	kv->v = NULL;
	kv->n = 0;
}

void kvv_copy(agentd_kvv *dst, const agentd_kvv *src)
{
	dst->v = NULL;
	dst->n = 0;
	for (size_t i = 0; i < src->n; i++)
		kvv_set(dst, src->v[i].key, src->v[i].value);
}

uint64_t now_ms_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void random_id(char out[40])
{
	uint8_t b[16];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		got += (size_t)r;
	}
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[32] = '\0';
}

char *base64_encode(const uint8_t *data, size_t len)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t olen = 4 * ((len + 2) / 3);
	char *out = xmalloc(olen + 1), *o = out;
	size_t i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
		*o++ = tbl[v >> 18];
		*o++ = tbl[(v >> 12) & 63];
		*o++ = tbl[(v >> 6) & 63];
		*o++ = tbl[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)data[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)data[i + 1] << 8;
		*o++ = tbl[v >> 18];
		*o++ = tbl[(v >> 12) & 63];
		*o++ = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

char *agentd_base64_encode(const uint8_t *data, size_t len)
{
	return base64_encode(data, len);
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int agentd_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len)
{
	if (n % 4)
		return -1;
	uint8_t *buf = xmalloc(n / 4 * 3 + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		for (int k = 0; k < 4; k++) {
			v[k] = s[i + k] == '=' ? -2 : b64val((unsigned char)s[i + k]);
			if (v[k] == -1 || (v[k] == -2 && (i + 4 < n || k < 2)) ||
			    (k == 3 && v[2] == -2 && v[3] != -2)) {
				free(buf);
				return -1;
			}
		}
		buf[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (v[2] >= 0)
			buf[o++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
		if (v[3] >= 0)
			buf[o++] = (uint8_t)(v[2] << 6 | v[3]);
	}
	*out = buf;
	*out_len = o;
	return 0;
}


bool utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if ((c & 0xE0) == 0xC0) {
			n = 1;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		/* overlong, surrogates, out of range */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			return false;
		i += n + 1;
	}
	return true;
}

char *read_file_at(int dirfd, const char *path, size_t max, size_t *len_out)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return NULL;
	size_t cap = max < 256 ? max : 256, len = 0;
	char *buf = xmalloc(cap + 1);
	for (;;) {
		if (len == cap) {
			if (cap >= max) {
				free(buf);
				errno = EFBIG;
				return NULL;
			}
			cap = cap * 2 > max ? max : cap * 2;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			return NULL;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	if (len_out)
		*len_out = len;
	return buf;
}

int write_file_at(int dirfd, const char *path, const char *data)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	size_t len = strlen(data);
	ssize_t w = write(fd, data, len);
	if (w < 0)
		return -errno;
	if ((size_t)w != len)
		return -EIO;
	return 0;
}

/* Blank this process's copy of the argument area (fields 48-49 of /proc/self/stat: after a
 * fork it is our own copy-on-write memory, the parent keeps its argv) and put name there.
 * Syscalls only: safe in a child cloned from a multithreaded process. */
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
