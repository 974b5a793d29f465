/* filestream.c: the files API's streamed answers (issue 12): a directory as a tar stream,
 * pulled from the library piece by piece as the client reads, and a watch as NDJSON,
 * bounded per sandbox and per daemon and ended by the client or the sandbox's destroy. */
#include "daemon/live/live.h"

#include <microhttpd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ------------------------------------------------------------------ tar download */

static ssize_t tar_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	agentd_error err = {0};
	ssize_t n = agentd_tar_read(cls, buf, max, &err);
	if (n < 0) {
		/* Headers are gone: the only way to say it is a stream that does not end
		 * well (no last chunk), which every client sees as a failed transfer. */
		dlog("warn", "msg=\"tar download cut\" error=\"%s\"", err.msg);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return n ? n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void tar_release(void *cls)
{
	agentd_tar_reader_free(cls);
}

void *files_tar_response(agentd_tar_reader *tr)
{
	struct MHD_Response *resp =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 65536, tar_reader, tr,
						  tar_release);
	if (!resp) {
		agentd_tar_reader_free(tr);
		return NULL;
	}
	MHD_add_response_header(resp, "Content-Type", "application/x-tar");
	return resp;
}

/* ------------------------------------------------------------------ watch */

struct file_watch {
	struct daemon *d;
	char sandbox_id[API_ID_LEN + 1];
	agentd_watch *w;		/* NULL once ended (d->lock) */
	int cancel;			/* eventfd: the sandbox is being destroyed */
	int client_fd;
	char *buf;
	size_t len, off;
	bool ended;
	struct file_watch *next;
};

static void push(struct file_watch *fw, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	size_t n = strlen(s);
	fw->buf = realloc(fw->buf, fw->len + n + 1);
	memcpy(fw->buf + fw->len, s, n);
	fw->buf[fw->len + n] = '\n';
	fw->len += n + 1;
	free(s);
}

static void end_watch(struct file_watch *fw, const char *reason)
{
	if (reason)
		push(fw, json_pack("{s:s, s:s}", "event", "end", "reason", reason));
	fw->ended = true;
	pthread_mutex_lock(&fw->d->lock);
	agentd_watch *w = fw->w;
	fw->w = NULL;
	pthread_cond_broadcast(&fw->d->cond);
	pthread_mutex_unlock(&fw->d->lock);
	agentd_watch_free(w);
}

/* What the watch has now, as lines; past the buffer's bound, an overflow and the end. */
static void drain(struct file_watch *fw)
{
	agentd_watch_event ev;
	agentd_error err = {0};
	int r;
	while (!fw->ended && (r = agentd_watch_next(fw->w, &ev, &err)) != 0) {
		if (r < 0) {
			push(fw, json_pack("{s:s, s:s}", "event", "error", "message", err.msg));
			end_watch(fw, NULL);
			return;
		}
		json_t *j = json_pack("{s:s, s:s, s:s}", "event", agentd_watch_kind_name(ev.kind),
				      "path", ev.path, "type", agentd_file_type_name(ev.type));
		if (ev.kind == AGENTD_WATCH_OVERFLOW) {
			json_object_del(j, "path");
			json_object_del(j, "type");
		}
		if (!json_object_get(j, "event")) /* a name that is not UTF-8: skipped */
			continue;
		if (ev.kind == AGENTD_WATCH_MOVE_FROM || ev.kind == AGENTD_WATCH_MOVE_TO) {
			json_object_set_new(j, "direction", json_string(ev.kind == AGENTD_WATCH_MOVE_FROM
									? "from" : "to"));
			json_object_set_new(j, "cookie", json_integer(ev.cookie));
		}
		push(fw, j);
		if (ev.kind == AGENTD_WATCH_OVERFLOW)
			end_watch(fw, "overflow");
		else if (ev.kind == AGENTD_WATCH_DELETE && !strcmp(ev.path, "."))
			end_watch(fw, "the watched directory was removed");
		else if (fw->len > FILES_WATCH_BUFFER) {
			push(fw, json_pack("{s:s}", "event", "overflow"));
			end_watch(fw, "overflow");
		}
	}
}

static ssize_t watch_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct file_watch *fw = cls;
	for (;;) {
		if (fw->off < fw->len) {
			size_t n = fw->len - fw->off < max ? fw->len - fw->off : max;
			memcpy(out, fw->buf + fw->off, n);
			fw->off += n;
			if (fw->off == fw->len)
				fw->off = fw->len = 0;
			return (ssize_t)n;
		}
		if (fw->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		drain(fw);
		if (fw->len || fw->ended)
			continue;
		struct pollfd p[3] = {{agentd_watch_fd(fw->w), POLLIN, 0},
				      {fw->cancel, POLLIN, 0},
				      {fw->client_fd, POLLRDHUP, 0}};
		if (poll(p, fw->client_fd >= 0 ? 3 : 2, -1) < 0)
			continue;
		if (p[1].revents)
			end_watch(fw, "the sandbox was destroyed");
		else if (p[2].revents & (POLLRDHUP | POLLHUP | POLLERR))
			end_watch(fw, NULL); /* the client went away */
	}
}

static void watch_release(void *cls)
{
	struct file_watch *fw = cls;
	struct daemon *d = fw->d;
	pthread_mutex_lock(&d->lock);
	for (struct file_watch **pp = &d->watches; *pp; pp = &(*pp)->next)
		if (*pp == fw) {
			*pp = fw->next;
			break;
		}
	d->n_watches--;
	agentd_watch *w = fw->w;
	fw->w = NULL;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	agentd_watch_free(w);
	close(fw->cancel);
	free(fw->buf);
	free(fw);
}

int files_watch_open(struct daemon *d, struct live *l, const char *path, int client_fd,
		     void **resp, agentd_error *err)
{
	pthread_mutex_lock(&d->lock);
	unsigned mine = 0;
	for (struct file_watch *fw = d->watches; fw; fw = fw->next)
		mine += !strcmp(fw->sandbox_id, l->id);
	bool full = d->n_watches >= FILES_WATCH_MAX || mine >= FILES_WATCH_PER_SANDBOX;
	if (!full)
		d->n_watches++; /* held while the watch is made */
	pthread_mutex_unlock(&d->lock);
	if (full)
		return agentd_error_set(err, EAGAIN,
					"too many watches (%u per sandbox, %u in all)",
					FILES_WATCH_PER_SANDBOX, FILES_WATCH_MAX);
	struct file_watch *fw = calloc(1, sizeof(*fw));
	fw->d = d;
	fw->client_fd = client_fd;
	snprintf(fw->sandbox_id, sizeof(fw->sandbox_id), "%s", l->id);
	fw->cancel = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fw->w = fw->cancel < 0 ? NULL : agentd_sandbox_watch(l->sb, path, FILES_WATCH_DIRS, err);
	struct MHD_Response *r = !fw->w ? NULL
					: MHD_create_response_from_callback(
						  MHD_SIZE_UNKNOWN, 16384, watch_reader, fw,
						  watch_release);
	if (!r) {
		if (fw->w && !err->code)
			agentd_error_set(err, ENOMEM, "watch stream");
		else if (fw->cancel < 0)
			agentd_error_errno(err, errno, "eventfd");
		agentd_watch_free(fw->w);
		if (fw->cancel >= 0)
			close(fw->cancel);
		free(fw);
		pthread_mutex_lock(&d->lock);
		d->n_watches--;
		pthread_mutex_unlock(&d->lock);
		return -1;
	}
	push(fw, json_pack("{s:s, s:s}", "event", "watching", "path", path));
	MHD_add_response_header(r, "Content-Type", "application/x-ndjson");
	pthread_mutex_lock(&d->lock);
	fw->next = d->watches;
	d->watches = fw;
	pthread_mutex_unlock(&d->lock);
	*resp = r;
	return 0;
}

void files_watch_end_all(struct daemon *d, const char *sandbox_id)
{
	uint64_t one = 1;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&d->lock);
	for (struct file_watch *fw = d->watches; fw; fw = fw->next)
		if (!strcmp(fw->sandbox_id, sandbox_id) && write(fw->cancel, &one, 8) < 0)
			dlog("warn", "msg=\"watch: cannot signal its end\" sandbox=%s", sandbox_id);
	/* Until every watch of the sandbox let go of its inotify instance (each reader does at
	 * once; a bound against a thread that cannot run). */
	for (;;) {
		bool held = false;
		for (struct file_watch *fw = d->watches; fw; fw = fw->next)
			held |= !strcmp(fw->sandbox_id, sandbox_id) && fw->w;
		if (!held || pthread_cond_timedwait(&d->cond, &d->lock, &until) != 0)
			break;
	}
	pthread_mutex_unlock(&d->lock);
}
