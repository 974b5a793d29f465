/* common.h: the private helpers of every layer (systemd's src/basic idea): linked into the
 * library, the CLI and the daemon alike. Nothing here knows about sandboxes: allocation,
 * string vectors, errors, clocks, ids, base64, UTF-8, quoting, parsers, byte I/O, and
 * fd-relative file trees. Kernel compat lives in kernel.h. */
#ifndef AGENTD_COMMON_H
#define AGENTD_COMMON_H

#include "agentd.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------- cleanup helpers */
static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int e = errno;
		close(*fd);
		errno = e;
	}
}
static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
static inline int take_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}
static inline void *take_ptr_(void **p)
{
	void *r = *p;
	*p = NULL;
	return r;
}
#define take_ptr(p) take_ptr_((void **)&(p))

/* Exit status of a verb when agentd itself failed (not the command): docker run's 125. */
#define EXIT_AGENTD 125

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ASCII classes, not <ctype.h>: a policy must not mean something else under another locale. */
static inline bool a_digit(char c) { return c >= '0' && c <= '9'; }
static inline bool a_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static inline bool a_alnum(char c) { return a_alpha(c) || a_digit(c); }
static inline char a_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* ---------------------------------------------------------------- error.c */
/* agentd_error_set with ": strerror(errnum)" appended and code = errnum. */
int agentd_error_errno(agentd_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "agentd: message" on stderr: what every verb prints before it exits non-zero. */
void print_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---------------------------------------------------------------- alloc.c */
void *xmalloc(size_t n);		/* abort on OOM */
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---------------------------------------------------------------- strv.c */
void strv_push(agentd_strv *sv, const char *s);	/* copies s */
void strv_free(agentd_strv *sv);
/* A formatted string pushed (issue 15: vm-host). */
void strv_pushf(agentd_strv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strv_vpushf(agentd_strv *sv, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
void strv_copy(agentd_strv *dst, const agentd_strv *src);
bool strv_contains(const agentd_strv *sv, const char *s);
void kvv_set(agentd_kvv *kv, const char *key, const char *value);	/* replace or append */
const char *kvv_get(const agentd_kvv *kv, const char *key);
void kvv_free(agentd_kvv *kv);
void kvv_copy(agentd_kvv *dst, const agentd_kvv *src);

/* ---------------------------------------------------------------- clock.c */
uint64_t now_ms_monotonic(void);
/* Wall clock, ms since the epoch (timestamps shown to people). */
int64_t now_ms_realtime(void);
/* A condition variable whose timed waits are on CLOCK_MONOTONIC, and the deadline ms from
 * now to give them. */
void cond_init_monotonic(pthread_cond_t *c);
struct timespec monotonic_after_ms(uint64_t ms);
/* 32 lowercase hex chars from getrandom() and the NUL (sandbox, session, context ids) */
void random_id(char out[33]);

/* ---------------------------------------------------------------- base64.c, utf8.c */
char *base64_encode(const uint8_t *data, size_t len);	/* malloc'd, NUL-terminated */
/* 0 and a malloc'd *out, or -1 on bad input (length, alphabet, padding). */
int base64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len);
bool utf8_valid(const uint8_t *s, size_t len);
/* The character at s (len >= 1): its length with *cp set; 0 when s[0..len) is a valid
 * but incomplete start of one (more bytes may complete it); -1 when s[0] starts no valid
 * character. */
int utf8_next(const uint8_t *s, size_t len, uint32_t *cp);
/* How many trailing bytes of s (0..3) are the valid, incomplete start of a character: what
 * a reader of a stream holds back until the next chunk. */
size_t utf8_incomplete_tail(const uint8_t *s, size_t len);
/* issue 14: mcp — s as text for a reader that takes only UTF-8 (a model, through agentd
 * mcp): each byte that starts no character, and NUL, becomes U+FFFD. malloc'd, terminated,
 * its length in *out_len. */
char *utf8_lossy(const uint8_t *s, size_t len, size_t *out_len);

/* ---------------------------------------------------------------- quote.c */
/* Quote s for an error message: "..." with \xNN escapes, cut after ~64 bytes. */
void quote_text(char *buf, size_t size, const char *s);
/* JSON path of key under prefix: "prefix.key", or prefix["odd key"] when key is not an
 * identifier (prefix may be "" for the root). */
void json_path_key(char *buf, size_t size, const char *prefix, const char *key);
/* s made one line of valid UTF-8 in place: control bytes and broken sequences become '?'
 * (a parser's error text quoting hostile input). */
void text_scrub_line(char *s);

/* ---------------------------------------------------------------- parse.c */
/* "512M", "1.5GiB", "1048576" (bytes; k/m/g/t are powers of 1024). */
int parse_size(const char *s, uint64_t *out, agentd_error *err);
/* "30s", "1.5m", "250ms", "2h" -> milliseconds ("30" alone is seconds). */
int parse_duration_ms(const char *s, uint64_t *out, agentd_error *err);

/* ---------------------------------------------------------------- io.c */
/* Read a whole small file into a NUL-terminated buffer (max bytes); NULL + errno. */
char *read_file_at(int dirfd, const char *path, size_t max, size_t *len_out);
/* The same from an open fd (read from where it is). */
char *read_fd_max(int fd, size_t max, size_t *len_out);
int write_file_at(int dirfd, const char *path, const char *data);	/* 0 or -errno */
/* A whole fd into a malloc'd, NUL-terminated buffer (NULL + errno). */
uint8_t *read_fd_all(int fd, size_t *len);
int write_all(int fd, const void *p, size_t n);	/* 0 or -1 + errno */
/* A non-blocking CLOEXEC pipe to splice through, of want bytes where the kernel allows
 * (its pages are taken as data comes, so a large pipe costs only what is in flight; an
 * unprivileged user's pipe budget may give less): *cap is what it holds. 0 or -1 + errno. */
int pipe_for_splice(int p[2], size_t want, size_t *cap);

/* ---------------------------------------------------------------- proc.c */
/* In a forked child: replace what /proc/self/cmdline shows (agentd's own command line, which
 * may carry a sandboxed command's argv) with name. */
void proc_hide_cmdline(const char *name);
/* /proc/PID/stat's start time (field 22, clock ticks since boot): with the pid, the identity
 * of a process a recycled pid never matches; *zombie (may be NULL): it has exited. 0 or -1. */
int proc_start_time(pid_t pid, unsigned long long *start, bool *zombie);

/* ---------------------------------------------------------------- paths.c */
/* The daemon's socket: flag, else $AGENTD_SOCKET, else /run/agentd/agentd.sock (root) or
 * $XDG_RUNTIME_DIR/agentd.sock. The same rule for `agentd serve` and every client. */
const char *socket_path_default(const char *flag);

/* ---------------------------------------------------------------- trace.c
 * Phase timing of one run (--trace-timing): marks from this process, its threads and its
 * clones (async-signal-safe, no malloc), printed sorted by time. No-ops until enabled. */
int trace_enable(void);			/* 0 or -errno */
bool trace_enabled(void);
void trace_mark(const char *name);	/* name: a string literal */
void trace_print(FILE *f);

/* ---------------------------------------------------------------- fsutil.c
 * Host-side file work on directories a sandbox may have written into: fd-relative,
 * never following symlinks. */
/* mkdir -p; the dirs it makes get mode (the parents 0755) whatever the umask. */
int mkdir_p(const char *path, mode_t mode);
/* Remove dirfd/name recursively without following any symlink or crossing mounts. */
int rm_rf_at(int dirfd, const char *name);
int rm_rf(const char *path);
/* Copy the tree under src_dirfd into dst_dirfd without following symlinks; files chowned
 * to uid/gid ((uid_t)-1 = leave), set-id bits dropped, holes kept (and zero blocks made
 * holes); at most *budget bytes of data blocks and entries (-EFBIG past it). */
int copy_tree_at(int src_dirfd, int dst_dirfd, uid_t uid, gid_t gid, uint64_t *budget);
/* The disk space (st_blocks * 512) of dirfd and everything under it, symlinks not followed. */
int tree_allocated_at(int dirfd, uint64_t *bytes);
/* Remove everything inside the directory (fd-relative, no symlink followed). */
int empty_dir_at(int dirfd);

#include <jansson.h>

/* ---------------------------------------------------------------- ctxproto.c
 * The framed protocol between the daemon and a code context's runner (docs/contexts.md):
 * encoder of the requests, strict parser of the frames, decoders of their JSON payloads.
 * Every frame comes from inside a sandbox: headers, ids, lengths and payloads are bounded
 * and validated; a violation is an error for the caller to end that one context with. The
 * daemon speaks it (src/daemon/live/contexts.c); `agentd probe --security` feeds it what a
 * sandbox forges. */
enum ctx_frame_kind { CTXF_HELLO, CTXF_OUT, CTXF_ERR, CTXF_RESULT, CTXF_ERROR, CTXF_DONE };
#define CTX_HEADER_MAX 40		/* "result 4294967295 4294967295\n" fits */
#define CTX_SMALL_MAX (64u << 10)	/* hello, done: larger is a violation */
#define CTX_ERROR_MAX (1u << 20)	/* an error's name, value and traceback */

struct ctx_frame {
	enum ctx_frame_kind kind;
	uint32_t id;
	const uint8_t *data;		/* the payload; NULL when skipped */
	size_t len;			/* its length as declared */
};

struct ctx_parser {
	size_t max_payload;		/* out, err, result payloads over it are skipped */
	char head[CTX_HEADER_MAX + 1];
	size_t hlen;
	bool in_payload, skip;
	struct ctx_frame cur;
	uint8_t *buf;
	size_t have, cap;
};
/* Called per complete frame; a negative return stops the parse with that error. */
typedef int (*ctx_frame_cb)(void *ud, const struct ctx_frame *f, agentd_error *err);
void ctx_parser_init(struct ctx_parser *p, size_t max_payload);
void ctx_parser_free(struct ctx_parser *p);
/* 0, or -1 + err on a malformed header, an unknown kind, a bad number or a small frame
 * over its bound (the parser is then unusable). */
int ctx_parser_feed(struct ctx_parser *p, const uint8_t *data, size_t len, ctx_frame_cb cb,
		    void *ud, agentd_error *err);
const char *ctx_frame_kind_name(enum ctx_frame_kind k);
/* A request frame ("env", "run") appended to *buf (malloc'd, grown). */
void ctx_encode(char **buf, size_t *len, const char *kind, uint32_t id, const void *payload,
		size_t plen);
/* result: an object of MIME type -> string; error: {name, value, traceback} strings;
 * done: {status: "ok"|"error", exit_code?, exited?}; hello: {language, version?, pid?}. NULL/-1 +
 * err when the payload is not exactly that. */
json_t *ctx_decode_bundle(const struct ctx_frame *f, agentd_error *err);
json_t *ctx_decode_error(const struct ctx_frame *f, agentd_error *err);
struct ctx_done {
	bool ok;			/* status "ok", else "error" */
	bool has_exit;			/* exit_code given (shell cells) */
	int exit_code;
	bool exited;			/* the interpreter ends after this cell (a shell's exit) */
};
int ctx_decode_done(const struct ctx_frame *f, struct ctx_done *d, agentd_error *err);
json_t *ctx_decode_hello(const struct ctx_frame *f, agentd_error *err);

#endif
