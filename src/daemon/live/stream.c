/* stream.c: exec with "stream": true — a chunked NDJSON response fed by the exec's output
 * callback (or by the events of other work: a context's cell). The exec runs in its own thread and appends lines to a queue; libmicrohttpd's
 * connection thread blocks in the reader until a line or the end arrives. A client that
 * goes away cancels the exec (its tree is killed). */
#include "daemon/live/live.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

struct stream {
	struct daemon *d;
	struct live *l;
	struct client c;
	struct api_request r;		/* moved from the handler: argv, env, stdin... */
	struct exec_slot slot;
	stream_work_fn work;		/* else an exec */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *buf;
	size_t len, off;
	bool done;
	bool started;			/* the exec thread runs (release joins it) */
	struct held_tail {
		uint8_t b[4];
		size_t n;
	} held[2];			/* stdout, stderr: an incomplete UTF-8 character */
};

static void push_line(struct stream *s, json_t *line)
{
	char *txt = json_dumps(line, JSON_COMPACT);
	json_decref(line);
	if (!txt)
		return;
	size_t n = strlen(txt);
	pthread_mutex_lock(&s->mu);
	s->buf = realloc(s->buf, s->len + n + 1);
	memcpy(s->buf + s->len, txt, n);
	s->buf[s->len + n] = '\n';
	s->len += n + 1;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	free(txt);
}

json_t *stream_chunk_json(agentd_stream st, const uint8_t *data, size_t len)
{
	const char *name = st == AGENTD_STREAM_STDOUT ? "stdout" : "stderr";
	json_t *text = memchr(data, '\0', len) ? NULL : json_stringn((const char *)data, len);
	if (text)
		return json_pack("{s:s, s:o}", "stream", name, "data", text);
	char *enc = base64_encode(data, len);
	json_t *line = json_pack("{s:s, s:s, s:s}", "stream", name, "data", enc, "encoding",
				 "base64");
	free(enc);
	return line;
}

static void push_chunk(struct stream *s, agentd_stream st, const uint8_t *data, size_t len)
{
	push_line(s, stream_chunk_json(st, data, len));
}

/* A chunk that ends inside a UTF-8 character keeps that character's start for the next
 * chunk of its stream, so text stays text; binary output goes as base64. */
static void on_output(void *ud, agentd_stream st, const uint8_t *data, size_t len)
{
	struct stream *s = ud;
	struct held_tail *h = &s->held[st == AGENTD_STREAM_STDOUT ? 0 : 1];
	_cleanup_free_ uint8_t *buf = xmalloc(h->n + len);
	memcpy(buf, h->b, h->n);
	memcpy(buf + h->n, data, len);
	len += h->n;
	h->n = utf8_incomplete_tail(buf, len);
	memcpy(h->b, buf + len - h->n, h->n);
	if (len > h->n)
		push_chunk(s, st, buf, len - h->n);
}

/* The command ended inside a character: what was held is not text. */
static void flush_held(struct stream *s)
{
	for (int i = 0; i < 2; i++)
		if (s->held[i].n)
			push_chunk(s, i ? AGENTD_STREAM_STDERR : AGENTD_STREAM_STDOUT, s->held[i].b,
				   s->held[i].n);
}

static void emit_line(void *ud, json_t *line)
{
	push_line(ud, line);
}

static void finish(struct stream *s)
{
	if (s->l) /* issue 13: img-build: work of no sandbox (an image build) */
		live_put(s->d, s->l);
	pthread_mutex_lock(&s->mu);
	s->done = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void *run(void *arg)
{
	struct stream *s = arg;
	static const uint8_t empty;
	if (s->work) {
		push_line(s, s->work(s->d, s->l, &s->c, &s->r, &s->slot, emit_line, s));
		finish(s);
		return NULL;
	}
	agentd_command cmd = {
		.argv = s->r.argv,
		.env = s->r.env,
		.workdir = s->r.workdir,
		.stdin_data = s->r.has_stdin ? (s->r.stdin_data ? s->r.stdin_data : &empty) : NULL,
		.stdin_len = s->r.stdin_len,
		.timeout_ms = s->r.timeout_ms,
	};
	agentd_exec_output o;
	agentd_error err = {0};
	int status = live_exec(s->d, s->l, &s->c, &cmd, on_output, s, &s->slot, &o, &err);
	flush_held(s);
	if (status) {
		push_line(s, json_pack("{s:{s:s, s:s}}", "error", "code", api_status_code(status),
				       "message", err.msg));
	} else {
		char *js = agentd_exec_output_to_json(&o, s->l->backend, s->l->id);
		json_t *res = json_loads(js, 0, NULL);
		free(js);
		/* stdout and stderr went out as chunks already */
		json_object_del(res, "stdout");
		json_object_del(res, "stderr");
		json_object_del(res, "stdout_encoding");
		json_object_del(res, "stderr_encoding");
		live_exec_mark_cancelled(res, &s->slot);
		push_line(s, json_pack("{s:o}", "exit", res));
	}
	agentd_exec_output_free(&o);
	finish(s);
	return NULL;
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct stream *s = cls;
	pthread_mutex_lock(&s->mu);
	/* libmicrohttpd only notices a vanished client when it writes; the exec's cancel fd
	 * watches the socket (exec_slot_init), so a quiet command still ends and wakes us. */
	while (s->off == s->len && !s->done)
		pthread_cond_wait(&s->cv, &s->mu);
	if (s->off == s->len) {
		pthread_mutex_unlock(&s->mu);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	size_t n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(out, s->buf + s->off, n);
	s->off += n;
	if (s->off == s->len)
		s->off = s->len = 0;
	pthread_mutex_unlock(&s->mu);
	return (ssize_t)n;
}

static void release(void *cls)
{
	struct stream *s = cls;
	pthread_mutex_lock(&s->mu);
	if (!s->done)
		exec_slot_cancel(&s->slot); /* the client went away mid-stream */
	pthread_mutex_unlock(&s->mu);
	if (s->started) {
		pthread_join(s->thread, NULL);
		pthread_mutex_lock(&s->d->lock);
		s->d->in_flight--;
		pthread_cond_broadcast(&s->d->cond);
		pthread_mutex_unlock(&s->d->lock);
	}
	exec_slot_close(&s->slot);
	api_request_free(&s->r);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->buf);
	free(s);
}

void *stream_work_response_new(struct daemon *d, struct live *l, const struct client *c,
			       struct api_request *r, int conn_fd, stream_work_fn work)
{
	struct stream *s = calloc(1, sizeof(*s));
	s->work = work;
	s->d = d;
	s->l = l;
	s->c = *c;
	s->r = *r;
	memset(r, 0, sizeof(*r)); /* the stream owns what the request held */
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (exec_slot_init(&s->slot, conn_fd) < 0)
		goto fail;
	struct MHD_Response *resp =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, s, release);
	if (!resp) {
		exec_slot_close(&s->slot);
		goto fail;
	}
	if (pthread_create(&s->thread, NULL, run, s) != 0) {
		s->done = true;
		MHD_destroy_response(resp); /* release() frees s, the caller keeps l */
		return NULL;
	}
	s->started = true;
	pthread_mutex_lock(&d->lock);
	d->in_flight++;
	pthread_mutex_unlock(&d->lock);
	MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
	return resp;
fail:
	*r = s->r;
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
	return NULL;
}
