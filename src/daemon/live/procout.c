/* procout.c: GET .../processes/{pid}/output — a process's kept output from an offset as
 * NDJSON lines, and with follow=1 what it writes next, until its exit line. Each reader is a
 * subscriber of its own: several follow one process, and one that goes away only ends its
 * own response (the process runs on). */
#include "daemon/live/procs.h"

#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define CHUNK_MAX 49152		/* bytes of output per line */

struct procout {
	struct proc *p;
	int efd;		/* woken by new output or the end (follow only) */
	int conn_fd;
	bool follow;
	bool want[2];
	uint64_t off[2];
	char *line;		/* the line being sent */
	size_t len, pos;
	bool finished;
	uint8_t buf[CHUNK_MAX];
};

static void set_line(struct procout *o, json_t *j)
{
	free(o->line);
	o->line = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	o->len = o->line ? strlen(o->line) : 0;
	if (o->line) {
		o->line = realloc(o->line, o->len + 2);
		o->line[o->len++] = '\n';
	}
	o->pos = 0;
}

/* The next line of stream s, if it has one: dropped bytes, or a chunk that ends on a
 * character boundary (an incomplete character waits for its end, unless none will come). */
static bool next_of(struct procout *o, int s)
{
	struct proc_read rd;
	if (proc_read(o->p, (enum proc_stream)s, o->off[s], o->buf, sizeof(o->buf), &rd) < 0)
		return false;
	const char *name = s == PROC_STDOUT ? "stdout" : "stderr";
	if (rd.offset > o->off[s]) {
		set_line(o, json_pack("{s:s, s:I, s:I}", "stream", name, "offset",
				      (json_int_t)rd.offset, "dropped",
				      (json_int_t)(rd.offset - o->off[s])));
		o->off[s] = rd.offset;
		return true;
	}
	size_t n = rd.n;
	if (!rd.ended)
		n -= utf8_incomplete_tail(o->buf, n);
	if (!n)
		return false;
	json_t *j = stream_chunk_json(s == PROC_STDOUT ? AGENTD_STREAM_STDOUT
						      : AGENTD_STREAM_STDERR,
				      o->buf, n);
	json_object_set_new(j, "offset", json_integer((json_int_t)rd.offset));
	set_line(o, j);
	o->off[s] += n;
	return true;
}

/* Every wanted stream read to its end, and the process ended? */
static bool all_ended(struct procout *o)
{
	for (int s = 0; s < 2; s++) {
		struct proc_read rd;
		if (o->want[s] && (proc_read(o->p, (enum proc_stream)s, o->off[s], o->buf, 0,
					     &rd) < 0 ||
				   !rd.ended))
			return false;
	}
	return true;
}

/* Wait for news; false when the client went away. */
static bool wait_news(struct procout *o)
{
	struct pollfd pf[2] = {{.fd = o->efd, .events = POLLIN},
			       {.fd = o->conn_fd, .events = POLLRDHUP}};
	int n = poll(pf, o->conn_fd >= 0 ? 2 : 1, 30000);
	if (n > 0 && (pf[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
		return false;
	uint64_t v;
	if (pf[0].revents & POLLIN && read(o->efd, &v, sizeof(v)) < 0) {
		/* drained by a racing wake-up */
	}
	return true;
}

/* Fill o->line with the next line; false at the end of the response. */
static bool produce(struct procout *o)
{
	for (;;) {
		if (o->finished)
			return false;
		for (int s = 0; s < 2; s++)
			if (o->want[s] && next_of(o, s))
				return true;
		if (all_ended(o)) {
			set_line(o, json_pack("{s:o}", "exit", proc_to_json(o->p)));
			o->finished = true;
			return true;
		}
		if (!o->follow)
			return false;
		if (!wait_news(o))
			return false;
	}
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct procout *o = cls;
	if (o->pos == o->len) {
		bool gone = o->follow && o->conn_fd >= 0 && !o->finished &&
			    poll(&(struct pollfd){.fd = o->conn_fd, .events = POLLRDHUP}, 1, 0) > 0;
		if (gone)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (!produce(o))
			return o->finished || !o->follow ? MHD_CONTENT_READER_END_OF_STREAM
							 : MHD_CONTENT_READER_END_WITH_ERROR;
	}
	size_t n = o->len - o->pos < max ? o->len - o->pos : max;
	memcpy(out, o->line + o->pos, n);
	o->pos += n;
	return (ssize_t)n;
}

static void release(void *cls)
{
	struct procout *o = cls;
	if (o->efd >= 0) {
		proc_unsubscribe(o->p, o->efd);
		close(o->efd);
	}
	proc_put(o->p);
	free(o->line);
	free(o);
}

void *procout_response_new(struct proc *p, const struct api_request *r, int conn_fd,
			   agentd_error *err)
{
	bool want_out = r->streams != API_STREAMS_STDERR;
	bool want_err = r->streams != API_STREAMS_STDOUT && !proc_is_tty(p);
	if (!want_out && !want_err) {
		agentd_error_set(err, EINVAL, "stream: a process on a terminal has stdout only");
		return NULL;
	}
	for (int s = 0; s < 2; s++) {
		uint64_t from, end;
		proc_output_span(p, (enum proc_stream)s, &from, &end);
		if ((s ? want_err : want_out) && r->offset > end) {
			agentd_error_set(err, ERANGE,
					 "offset: %llu is past the end of %s (%llu bytes so far)",
					 (unsigned long long)r->offset, s ? "stderr" : "stdout",
					 (unsigned long long)end);
			return NULL;
		}
	}
	struct procout *o = xcalloc(1, sizeof(*o));
	o->p = p;
	o->efd = -1;
	o->conn_fd = conn_fd;
	o->follow = r->follow;
	o->want[0] = want_out;
	o->want[1] = want_err;
	o->off[0] = o->off[1] = r->offset;
	if (o->follow) {
		o->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (o->efd < 0 || proc_subscribe(p, o->efd) < 0) {
			agentd_error_set(err, EAGAIN, "process %lld: %d readers follow it already",
					 (long long)proc_pid(p), PROC_MAX_SUBSCRIBERS);
			if (o->efd >= 0)
				close(o->efd);
			free(o);
			return NULL;
		}
	}
	struct MHD_Response *resp =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, o, release);
	if (!resp) {
		o->p = NULL;
		if (o->efd >= 0) {
			proc_unsubscribe(p, o->efd);
			close(o->efd);
		}
		free(o);
		agentd_error_set(err, ENOMEM, "cannot start the response");
		return NULL;
	}
	MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
	return resp;
}
