/* qmp.c: a minimal QMP client over an inherited socket (QEMU's `-chardev socket,fd=N -mon
 * chardev=...,mode=control`): the greeting, qmp_capabilities, then one command at a time
 * with a deadline. Events are skipped. What QEMU sends is bounded (one line at most
 * VM_QMP_LINE_MAX bytes) and parsed with jansson; QEMU runs the guest, so a guest that
 * took it over could write here: nothing it sends is trusted beyond "a JSON object". */
#include "lib/backends/microvm/microvm.h"

#include <jansson.h>

void vm_qmp_init(struct vm_qmp *q, int fd)
{
	memset(q, 0, sizeof(*q));
	q->fd = fd;
	pthread_mutex_init(&q->lock, NULL);
}

void vm_qmp_close(struct vm_qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	free(q->buf);
	q->buf = NULL;
	pthread_mutex_destroy(&q->lock);
}

/* One line (without its end) into q->buf as a NUL-terminated string: its length, or -1 +
 * err (EOF, a line too long, the deadline). */
static ssize_t read_line(struct vm_qmp *q, uint64_t deadline, agentd_error *err)
{
	if (!q->buf)
		q->buf = xmalloc(VM_QMP_LINE_MAX + 1);
	/* drop the line returned last time */
	if (q->consumed) {
		memmove(q->buf, q->buf + q->consumed, q->have - q->consumed);
		q->have -= q->consumed;
		q->consumed = 0;
	}
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->have);
		if (nl) {
			*nl = '\0';
			q->consumed = (size_t)(nl - q->buf) + 1;
			return nl - q->buf;
		}
		if (q->have >= VM_QMP_LINE_MAX)
			return agentd_error_set(err, EPROTO, "QMP: a line longer than %u bytes",
						VM_QMP_LINE_MAX);
		uint64_t now = now_ms_monotonic();
		if (now >= deadline)
			return agentd_error_set(err, ETIMEDOUT, "QMP: no answer in time");
		struct pollfd p = {.fd = q->fd, .events = POLLIN};
		int r = poll(&p, 1, (int)(deadline - now));
		if (r < 0 && errno != EINTR)
			return agentd_error_errno(err, errno, "QMP: poll");
		if (r <= 0)
			continue;
		ssize_t n = read(q->fd, q->buf + q->have, VM_QMP_LINE_MAX - q->have);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return agentd_error_errno(err, errno, "QMP: read");
		if (n == 0)
			return agentd_error_set(err, EPIPE, "QMP: QEMU closed the monitor");
		q->have += (size_t)n;
	}
}

/* The next JSON object that is not an event: a new reference, or NULL + err. */
static json_t *read_reply(struct vm_qmp *q, uint64_t deadline, agentd_error *err)
{
	for (;;) {
		ssize_t n = read_line(q, deadline, err);
		if (n < 0)
			return NULL;
		json_error_t je;
		json_t *o = json_loadb(q->buf, (size_t)n, JSON_REJECT_DUPLICATES, &je);
		if (!o || !json_is_object(o)) {
			json_decref(o);
			agentd_error_set(err, EPROTO, "QMP: not a JSON object");
			return NULL;
		}
		if (json_object_get(o, "event")) {
			json_decref(o);
			continue;
		}
		return o;
	}
}

static int send_json(struct vm_qmp *q, json_t *msg, int pass_fd, agentd_error *err)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	if (!s)
		return agentd_error_set(err, ENOMEM, "QMP: encode the command");
	size_t len = strlen(s);
	int r;
	if (pass_fd >= 0) {
		/* getfd/add-fd: the fd rides with the command's first byte */
		r = fds_send(q->fd, s, len, &pass_fd, 1) < 0 ? -1 : 0;
	} else {
		r = write_all(q->fd, s, len);
	}
	free(s);
	if (r < 0)
		return agentd_error_errno(err, errno, "QMP: write");
	return 0;
}

int vm_qmp_handshake(struct vm_qmp *q, uint64_t timeout_ms, agentd_error *err)
{
	uint64_t deadline = now_ms_monotonic() + timeout_ms;
	pthread_mutex_lock(&q->lock);
	json_t *g = read_reply(q, deadline, err);
	int r = -1;
	if (g && !json_object_get(g, "QMP"))
		agentd_error_set(err, EPROTO, "QMP: no greeting");
	else if (g)
		r = 0;
	json_decref(g);
	pthread_mutex_unlock(&q->lock);
	if (r < 0)
		return -1;
	json_t *ret = vm_qmp_execute(q, "qmp_capabilities", NULL, -1, timeout_ms, err);
	if (!ret)
		return -1;
	json_decref(ret);
	return 0;
}

json_t *vm_qmp_execute(struct vm_qmp *q, const char *cmd, json_t *args, int pass_fd,
		       uint64_t timeout_ms, agentd_error *err)
{
	uint64_t deadline = now_ms_monotonic() + timeout_ms;
	json_t *msg = json_pack("{s:s}", "execute", cmd);
	if (args)
		json_object_set_new(msg, "arguments", args);
	pthread_mutex_lock(&q->lock);
	json_t *ret = NULL, *reply = NULL;
	if (q->fd < 0) {
		agentd_error_set(err, EPIPE, "QMP: not connected");
		goto out;
	}
	if (send_json(q, msg, pass_fd, err) < 0 || !(reply = read_reply(q, deadline, err)))
		goto out;
	json_t *e = json_object_get(reply, "error");
	if (e) {
		const char *desc = json_string_value(json_object_get(e, "desc"));
		char quoted[128];
		quote_text(quoted, sizeof(quoted), desc ? desc : "?");
		agentd_error_set(err, EIO, "QMP %s: %s", cmd, quoted);
		goto out;
	}
	ret = json_object_get(reply, "return");
	if (!ret) {
		agentd_error_set(err, EPROTO, "QMP %s: neither return nor error", cmd);
		goto out;
	}
	json_incref(ret);
out:
	pthread_mutex_unlock(&q->lock);
	json_decref(reply);
	json_decref(msg);
	return ret;
}

int vm_qmp_simple(struct vm_qmp *q, const char *cmd, uint64_t timeout_ms, agentd_error *err)
{
	json_t *r = vm_qmp_execute(q, cmd, NULL, -1, timeout_ms, err);
	json_decref(r);
	return r ? 0 : -1;
}
