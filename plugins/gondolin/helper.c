/* helper.c: the gondolin helper process and the NDJSON channel to it: start it in its own
 * process group, send requests, read bounded and validated lines, kill the group. */
#include "gondolin.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t gondolin_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* gondolin-helper.mjs beside this .so (installed there with it). */
static int helper_script(char *path, size_t n, agentd_error *err)
{
	Dl_info info;
	if (!dladdr((void *)helper_script, &info) || !info.dli_fname)
		return agentd_error_set(err, ENOENT, "cannot locate the gondolin plugin's file");
	const char *slash = strrchr(info.dli_fname, '/');
	int dir_len = slash ? (int)(slash - info.dli_fname) : 1;
	const char *dir = slash ? info.dli_fname : ".";
	if ((size_t)snprintf(path, n, "%.*s/gondolin-helper.mjs", dir_len, dir) >= n)
		return agentd_error_set(err, ENAMETOOLONG, "gondolin helper path too long");
	if (access(path, R_OK) < 0)
		return agentd_error_set(err, errno, "gondolin helper %s: %s", path,
					strerror(errno));
	return 0;
}

static void close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
}

int gondolin_helper_start(gondolin_helper *h, agentd_error *err)
{
	memset(h, 0, sizeof(*h));
	h->in_fd = h->out_fd = h->err_fd = -1;
	h->next_id = 1;
	char script[PATH_MAX];
	const char *exe = getenv("AGENTD_GONDOLIN_HELPER");
	char *argv[3] = {NULL, NULL, NULL};
	if (exe && *exe) {
		argv[0] = (char *)exe;
	} else {
		if (helper_script(script, sizeof(script), err) < 0)
			return -1;
		const char *node = getenv("AGENTD_GONDOLIN_NODE");
		argv[0] = (char *)(node && *node ? node : "node");
		argv[1] = script;
	}
	int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(er, O_CLOEXEC) < 0) {
		int e = errno;
		close_pair(in), close_pair(out), close_pair(er);
		return agentd_error_set(err, e, "gondolin helper: pipe: %s", strerror(e));
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close_pair(in), close_pair(out), close_pair(er);
		return agentd_error_set(err, e, "gondolin helper: fork: %s", strerror(e));
	}
	if (pid == 0) {
		/* its own process group: destroy and every timeout kill the group (node, the
		 * VM runner it starts and anything those start) */
		setpgid(0, 0);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(er[1], 2) < 0)
			_exit(127);
		closefrom(3);
		execvp(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid); /* both sides: no window where a kill of the group misses it */
	close(in[0]), close(out[1]), close(er[1]);
	h->pid = pid;
	h->in_fd = in[1];
	h->out_fd = out[0];
	h->err_fd = er[0];
	fcntl(h->in_fd, F_SETFL, O_NONBLOCK);
	fcntl(h->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(h->err_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

void gondolin_helper_kill(gondolin_helper *h)
{
	if (h->pid > 0) {
		/* the group: node, the VM runner it started, whatever those started. The leader
		 * is waited for unreaped (WNOWAIT), so its id names this group alone while the
		 * group is killed once more: for what a member forked as the first kill came */
		kill(-h->pid, SIGKILL);
		kill(h->pid, SIGKILL);
		siginfo_t si;
		while (waitid(P_PID, (id_t)h->pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
			;
		kill(-h->pid, SIGKILL);
		while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
			;
		h->pid = 0;
	}
	int *fds[] = {&h->in_fd, &h->out_fd, &h->err_fd};
	for (size_t i = 0; i < 3; i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
	free(h->buf);
	h->buf = NULL;
	h->len = 0;
	free(h->wq);
	h->wq = NULL;
	h->wq_len = h->wq_cap = 0;
}

static void drain_stderr(gondolin_helper *h)
{
	char chunk[1024];
	ssize_t n;
	while (h->err_fd >= 0 && (n = read(h->err_fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0)
			return; /* EAGAIN: nothing more now */
		for (ssize_t i = 0; i < n; i++) {
			if (h->tail_len == sizeof(h->tail) - 1) {
				memmove(h->tail, h->tail + 1, h->tail_len - 1);
				h->tail_len--;
			}
			unsigned char c = (unsigned char)chunk[i];
			h->tail[h->tail_len++] = (char)(c >= 0x20 && c < 0x7f ? c : ' ');
		}
		h->tail[h->tail_len] = '\0';
	}
	if (h->err_fd >= 0) { /* its end: no more polling on it */
		close(h->err_fd);
		h->err_fd = -1;
	}
}

int gondolin_helper_fail(gondolin_helper *h, agentd_error *err, const char *fmt, ...)
{
	if (!h->broken) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(h->broken_why, sizeof(h->broken_why), fmt, ap);
		va_end(ap);
		h->broken = true;
		drain_stderr(h);
		gondolin_helper_kill(h);
	}
	const char *tail = h->tail;
	while (*tail == ' ')
		tail++;
	while (h->tail_len && h->tail[h->tail_len - 1] == ' ')
		h->tail[--h->tail_len] = '\0';
	return agentd_error_set(err, EPROTO, "gondolin helper: %s%s%s%s", h->broken_why,
				*tail ? "; its stderr: " : "", tail,
				h->probe_only ? "" : "; the sandbox has ended");
}

static int queue(gondolin_helper *h, const char *s, size_t n, agentd_error *err)
{
	if (h->wq_len + n > h->wq_cap) {
		size_t cap = (h->wq_len + n) * 2;
		char *q = realloc(h->wq, cap);
		if (!q)
			return agentd_error_set(err, ENOMEM, "gondolin helper: out of memory");
		h->wq = q;
		h->wq_cap = cap;
	}
	memcpy(h->wq + h->wq_len, s, n);
	h->wq_len += n;
	return 0;
}

/* Write what the pipe takes now. */
static int flush(gondolin_helper *h, agentd_error *err)
{
	while (h->wq_len) {
		ssize_t w = write(h->in_fd, h->wq, h->wq_len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 0;
		if (w < 0)
			return gondolin_helper_fail(h, err, "write request: %s", strerror(errno));
		memmove(h->wq, h->wq + w, h->wq_len - (size_t)w);
		h->wq_len -= (size_t)w;
	}
	return 0;
}

size_t gondolin_helper_queued(const gondolin_helper *h)
{
	return h->wq_len;
}

int gondolin_helper_send(gondolin_helper *h, const char *op, json_t *fields, uint64_t *id,
			 agentd_error *err)
{
	json_t *req = fields ? fields : json_object();
	if (h->broken) {
		json_decref(req);
		return gondolin_helper_fail(h, err, "%s", h->broken_why);
	}
	uint64_t n = h->next_id++;
	json_object_set_new(req, "id", json_integer((json_int_t)n));
	json_object_set_new(req, "op", json_string(op));
	char *line = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!line)
		return agentd_error_set(err, ENOMEM, "gondolin helper: encode %s request", op);
	size_t len = strlen(line);
	int r = queue(h, line, len, err);
	if (r == 0)
		r = queue(h, "\n", 1, err);
	free(line);
	if (r == 0)
		r = flush(h, err);
	if (r == 0 && id)
		*id = n;
	return r;
}

/* One complete line out of h->buf: 1 (*msg), 0 none yet, -1 (broken). */
static int take_line(gondolin_helper *h, json_t **msg, agentd_error *err)
{
	char *nl = h->len ? memchr(h->buf, '\n', h->len) : NULL;
	if (!nl) {
		if (h->len > GONDOLIN_MAX_LINE)
			return gondolin_helper_fail(h, err, "a line longer than %u bytes",
						    GONDOLIN_MAX_LINE);
		return 0;
	}
	size_t n = (size_t)(nl - h->buf);
	if (n > GONDOLIN_MAX_LINE)
		return gondolin_helper_fail(h, err, "a line longer than %u bytes",
					    GONDOLIN_MAX_LINE);
	json_error_t je;
	json_t *j = json_loadb(h->buf, n, JSON_REJECT_DUPLICATES, &je);
	memmove(h->buf, nl + 1, h->len - n - 1);
	h->len -= n + 1;
	if (!j)
		return gondolin_helper_fail(h, err, "malformed JSON line: %s", je.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return gondolin_helper_fail(h, err, "a line that is not a JSON object");
	}
	*msg = j;
	return 1;
}

static int read_more(gondolin_helper *h, agentd_error *err)
{
	/* room for one line past the bound, so an oversized line is seen as such */
	size_t cap = GONDOLIN_MAX_LINE + 2;
	if (!h->buf && !(h->buf = malloc(cap)))
		return agentd_error_set(err, ENOMEM, "gondolin helper: out of memory");
	ssize_t n = read(h->out_fd, h->buf + h->len, cap - h->len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0)
		return gondolin_helper_fail(h, err, "read: %s", strerror(errno));
	if (n == 0) {
		h->eof = true;
		/* how it ended, left unreaped: the group kill still needs its id */
		siginfo_t si = {0};
		for (int i = 0; i < 50 && !si.si_pid; i++) /* its exit follows its output's end */
			if (waitid(P_PID, (id_t)h->pid, &si, WEXITED | WNOWAIT | WNOHANG) < 0 ||
			    (!si.si_pid && usleep(2000) < 0))
				break;
		if (!si.si_pid)
			return gondolin_helper_fail(h, err, "closed its output");
		return gondolin_helper_fail(h, err, "%s %d without answering",
					    si.si_code == CLD_EXITED ? "exited with status"
								     : "killed by signal",
					    si.si_status);
	}
	h->len += (size_t)n;
	return 0;
}

int gondolin_helper_next(gondolin_helper *h, int64_t deadline_ms, int extra_fd, json_t **msg,
			 agentd_error *err)
{
	*msg = NULL;
	if (h->broken)
		return gondolin_helper_fail(h, err, "%s", h->broken_why);
	for (;;) {
		int r = take_line(h, msg, err);
		if (r != 0)
			return r > 0 ? 0 : -1;
		int64_t left = deadline_ms - gondolin_now_ms();
		if (left <= 0)
			return 2;
		struct pollfd p[4] = {{.fd = h->out_fd, .events = POLLIN},
				      {.fd = h->err_fd, .events = POLLIN},
				      {.fd = h->wq_len ? h->in_fd : -1, .events = POLLOUT},
				      {.fd = extra_fd, .events = POLLIN}};
		int n = poll(p, extra_fd >= 0 ? 4 : 3, left > INT_MAX ? INT_MAX : (int)left);
		if (n < 0 && errno != EINTR)
			return gondolin_helper_fail(h, err, "poll: %s", strerror(errno));
		if (n <= 0)
			continue;
		if (p[1].revents)
			drain_stderr(h);
		if (p[2].revents && flush(h, err) < 0)
			return -1;
		if (p[0].revents && read_more(h, err) < 0)
			return -1;
		if (extra_fd >= 0 && p[3].revents)
			return 1;
	}
}

int gondolin_answer(json_t *msg, uint64_t id, json_t **result, agentd_error *err)
{
	json_t *jid = json_object_get(msg, "id");
	if (!json_is_integer(jid) || json_integer_value(jid) != (json_int_t)id)
		return 0;
	json_t *ok = json_object_get(msg, "ok");
	if (json_is_true(ok)) {
		json_t *res = json_object_get(msg, "result");
		if (res && !json_is_object(res))
			return agentd_error_set(err, EPROTO, "answer %llu: result is not an object",
						(unsigned long long)id);
		*result = res;
		return 1;
	}
	json_t *e = json_object_get(msg, "error");
	const char *m = json_string_value(json_object_get(e, "message"));
	const char *code = json_string_value(json_object_get(e, "code"));
	if (!json_is_false(ok) || !json_is_object(e) || !m)
		return agentd_error_set(err, EPROTO, "answer %llu: neither a result nor an error",
					(unsigned long long)id);
	/* printable only: the message may carry what the guest wrote */
	char clean[400];
	size_t k = 0;
	for (; m[k] && k < sizeof(clean) - 1; k++)
		clean[k] = (unsigned char)m[k] >= 0x20 && (unsigned char)m[k] < 0x7f ? m[k] : ' ';
	clean[k] = '\0';
	return agentd_error_set(err, code && !strcmp(code, "unsupported") ? ENOTSUP : EIO, "%s",
				clean);
}

/* A message no request of ours expects: a protocol error (it ends the sandbox). */
static int unexpected(gondolin_helper *h, json_t *msg, agentd_error *err)
{
	json_t *id = json_object_get(msg, "id");
	const char *ev = json_string_value(json_object_get(msg, "event"));
	if (json_is_integer(id))
		return gondolin_helper_fail(h, err, "an answer to unknown request id %lld",
					    (long long)json_integer_value(id));
	return gondolin_helper_fail(h, err, "an unexpected message (event %s)",
				    ev ? "of another request" : "missing");
}

int gondolin_helper_call(gondolin_helper *h, const char *op, json_t *fields, int64_t timeout_ms,
			 json_t **result, agentd_error *err)
{
	*result = NULL;
	uint64_t id;
	if (gondolin_helper_send(h, op, fields, &id, err) < 0)
		return -1;
	int64_t deadline = gondolin_now_ms() + timeout_ms;
	json_t *msg;
	int w = gondolin_helper_next(h, deadline, -1, &msg, err);
	if (w == 2)
		gondolin_helper_fail(h, err, "no answer within %lld ms", (long long)timeout_ms);
	if (w != 0)
		return agentd_error_prefix(err, "%s", op);
	json_t *res = NULL;
	int r = gondolin_answer(msg, id, &res, err);
	if (r == 0) {
		unexpected(h, msg, err);
		json_decref(msg);
		return agentd_error_prefix(err, "%s", op);
	}
	if (r < 0 && err && err->code == EPROTO) {
		char why[AGENTD_ERROR_MAX];
		snprintf(why, sizeof(why), "%s", err->msg);
		json_decref(msg);
		gondolin_helper_fail(h, err, "%s", why);
		return agentd_error_prefix(err, "%s", op);
	}
	if (r > 0)
		*result = json_incref(res);
	json_decref(msg);
	return r > 0 ? 0 : agentd_error_prefix(err, "%s", op);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *gondolin_b64_encode(const uint8_t *d, size_t n)
{
	char *s = malloc((n + 2) / 3 * 4 + 1), *o = s;
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) |
			     (i + 2 < n ? d[i + 2] : 0);
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? b64[v & 63] : '=';
	}
	*o = '\0';
	return s;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

int gondolin_b64_decode(const char *s, size_t n, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (n % 4)
		return -1;
	uint8_t *d = malloc(n / 4 * 3 + 1);
	if (!d)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int pad = 0;
		for (int j = 0; j < 4; j++) {
			bool last = i + 4 == n;
			if (s[i + j] == '=' && last && j >= 2 && (j == 3 || s[i + 3] == '=')) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad || (v[j] = b64_value(s[i + j])) < 0) {
				free(d);
				return -1;
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff))) {
			free(d); /* bits past the data: not what an encoder makes */
			return -1;
		}
		d[k++] = (uint8_t)(w >> 16);
		if (pad < 2)
			d[k++] = (uint8_t)(w >> 8);
		if (pad < 1)
			d[k++] = (uint8_t)w;
	}
	*out = d;
	*len = k;
	return 0;
}
