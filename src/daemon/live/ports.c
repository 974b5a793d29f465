/* ports.c: a sandbox's forwarded ports (docs/api.md#ports) — per port a host listener on
 * 127.0.0.1 (or a unix socket under the state dir) and a relay thread that connects each
 * client into the sandbox's network namespace (agentd_sandbox_connect) and moves its bytes.
 *
 * The relay is an epoll loop that splices each direction through a pipe of its own: the
 * bytes never enter our memory, a direction reads only while its pipe has room, so what a
 * connection holds in flight is bounded by its two pipes (PORT_PIPE_BYTES each), however
 * slowly (or never) either end reads. A sandbox has at most PORT_MAX_CONNS connections
 * over all its ports; one more is accepted and reset at once. Every port has its own
 * thread, so a sandbox whose init is slow to answer (frozen, starved of CPU) stalls only
 * its own port. Inbound only: the sandbox's network policy is untouched. */
#include "daemon/live/live.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PORT_PIPE_BYTES (256u << 10)	/* per direction of a connection */
#define PORT_ACCEPT_BATCH 16		/* accepts per wakeup: the relay keeps moving */

struct fwd_conn;
struct fwd_end {
	struct fwd_conn *c;
	int side;
};

/* One client: fd[0] the host's, fd[1] into the sandbox; pipe[d] carries fd[d]'s bytes to
 * fd[!d]. */
struct fwd_conn {
	struct fwd_end end[2];
	int fd[2];
	int pipe[2][2];
	size_t queued[2], cap[2];
	bool eof[2], full[2], shut[2];
	bool connecting, dead;
	struct fwd_conn *prev, *next;
};

struct port_fwd {
	struct live_ports *set;
	agentd_sandbox *sb;
	uint16_t port, host_port;
	char *path;			/* unix socket, or NULL */
	char address[128];		/* "127.0.0.1:41234" or the path */
	int listener, wake, ep;
	pthread_t thread;
	int64_t opened_ms;
	uint64_t accepted, refused;	/* under set->lock */
	bool closed;			/* the sandbox died: listening no more */
	unsigned conns;
	struct fwd_conn *head, *dead;	/* the relay thread's */
	struct port_fwd *next;
};

struct live_ports {
	pthread_mutex_t lock;
	struct port_fwd *head;
	unsigned n, conns;		/* ports, connections of all of them */
};

/* ------------------------------------------------------------------ relay */

/* Close c and count it out; its memory goes after the current batch of events, which may
 * still name it (dead). */
static void conn_free(struct port_fwd *pf, struct fwd_conn *c)
{
	for (int s = 0; s < 2; s++) {
		if (c->fd[s] >= 0)
			close(c->fd[s]); /* leaves the epoll set with it */
		for (int e = 0; e < 2; e++)
			if (c->pipe[s][e] >= 0)
				close(c->pipe[s][e]);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		pf->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->dead = true;
	c->next = pf->dead;
	pf->dead = c;
	pthread_mutex_lock(&pf->set->lock);
	pf->set->conns--;
	pf->conns--;
	pthread_mutex_unlock(&pf->set->lock);
}

static void conns_reap(struct port_fwd *pf)
{
	while (pf->dead) {
		struct fwd_conn *c = pf->dead;
		pf->dead = c->next;
		free(c);
	}
}

/* Move what fd[d] has to fd[!d] until neither side can (both fds are edge-triggered:
 * each event is followed until EAGAIN); -1 when the connection is over (an error, or a
 * peer gone while bytes were owed to it). */
static int pump(struct fwd_conn *c, int d)
{
	for (bool progress = true; progress;) {
		progress = false;
		if (!c->eof[d] && !c->full[d] && c->queued[d] < c->cap[d]) {
			ssize_t n = splice(c->fd[d], NULL, c->pipe[d][1], NULL,
					   c->cap[d] - c->queued[d], SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0)
				c->queued[d] += (size_t)n;
			else if (n == 0)
				c->eof[d] = true;
			else if (errno != EAGAIN && errno != EINTR)
				return -1;
			/* with bytes queued, EAGAIN may be the pipe's slots running out before
			 * its bytes (partial pages): no reading until some drained */
			else if (c->queued[d])
				c->full[d] = true;
			progress = n >= 0;
		}
		if (c->queued[d]) {
			ssize_t n = splice(c->pipe[d][0], NULL, c->fd[!d], NULL, c->queued[d],
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				c->queued[d] -= (size_t)n;
				c->full[d] = false;
				progress = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				return -1;
			}
		}
	}
	if (c->eof[d] && !c->queued[d] && !c->shut[d]) {
		shutdown(c->fd[!d], SHUT_WR); /* the half-close goes through */
		c->shut[d] = true;
	}
	return 0;
}

/* An event on side s: its bytes in (readable, EOF) go one way, room out the other; the
 * connect into the sandbox completes (or fails: nothing listens there) first. */
static void conn_event(struct port_fwd *pf, struct fwd_end *e, uint32_t events)
{
	struct fwd_conn *c = e->c;
	if (c->dead)
		return;
	int s = e->side, so_error = 0;
	socklen_t len = sizeof(so_error);
	if (c->connecting) {
		if (s == 0 && !(events & (EPOLLHUP | EPOLLERR)))
			return; /* the client's bytes wait for the connection */
		if (s == 0 || getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &so_error, &len) < 0 ||
		    so_error || !(events & EPOLLOUT)) {
			conn_free(pf, c);
			return;
		}
		c->connecting = false;
		events |= EPOLLIN | EPOLLERR; /* both ways, whatever came meanwhile */
	}
	bool in = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
	bool out = events & (EPOLLOUT | EPOLLHUP | EPOLLERR);
	if ((in && pump(c, s) < 0) || (out && pump(c, !s) < 0) || (c->shut[0] && c->shut[1]))
		conn_free(pf, c);
}

/* The sandbox is gone (its init died: a limit, a failure): refuse from now on, as its
 * destroy will; the fds go then. */
static void port_stop_listening(struct port_fwd *pf)
{
	epoll_ctl(pf->ep, EPOLL_CTL_DEL, pf->listener, NULL);
	shutdown(pf->listener, SHUT_RDWR); /* a listener shut down refuses what comes */
	pthread_mutex_lock(&pf->set->lock);
	pf->closed = true;
	pthread_mutex_unlock(&pf->set->lock);
}

/* A client accepted (counted): its way into the sandbox, or closed. */
static void conn_start(struct port_fwd *pf, int client)
{
	agentd_error err = {0};
	struct fwd_conn *c = calloc(1, sizeof(*c));
	c->fd[0] = client;
	c->fd[1] = -1;
	for (int s = 0; s < 2; s++) {
		c->pipe[s][0] = c->pipe[s][1] = -1;
		c->end[s] = (struct fwd_end){c, s};
	}
	c->next = pf->head;
	if (pf->head)
		pf->head->prev = c;
	pf->head = c;
	c->fd[1] = agentd_sandbox_connect(pf->sb, pf->port, &err);
	if (c->fd[1] < 0 || pipe_for_splice(c->pipe[0], PORT_PIPE_BYTES, &c->cap[0]) < 0 ||
	    pipe_for_splice(c->pipe[1], PORT_PIPE_BYTES, &c->cap[1]) < 0) {
		if (err.code && err.code != ECONNREFUSED && err.code != EBUSY)
			dlog("warn", "msg=\"port forward: no way in\" port=%u error=\"%s\"",
			     (unsigned)pf->port, err.msg);
		conn_free(pf, c);
		if (err.code && err.code != ECONNREFUSED && !agentd_sandbox_is_alive(pf->sb))
			port_stop_listening(pf);
		return;
	}
	/* edge-triggered, once for its life: no interest to re-arm as pipes fill and drain */
	c->connecting = true;
	for (int s = 0; s < 2; s++) {
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
					 .data.ptr = &c->end[s]};
		if (epoll_ctl(pf->ep, EPOLL_CTL_ADD, c->fd[s], &ev) < 0) {
			conn_free(pf, c);
			return;
		}
	}
}

/* Pending clients, each counted against the sandbox's bound or reset at once. */
static void accept_clients(struct port_fwd *pf)
{
	for (int i = 0; i < PORT_ACCEPT_BATCH; i++) {
		int fd = accept4(pf->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				usleep(10000); /* the listener stays readable: do not spin */
			return;
		}
		pthread_mutex_lock(&pf->set->lock);
		bool room = pf->set->conns < PORT_MAX_CONNS;
		if (room) {
			pf->set->conns++;
			pf->conns++;
			pf->accepted++;
		} else {
			pf->refused++;
		}
		pthread_mutex_unlock(&pf->set->lock);
		if (!room) {
			struct linger rst = {.l_onoff = 1, .l_linger = 0};
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
			close(fd);
			continue;
		}
		conn_start(pf, fd);
	}
}

static void *relay_main(void *arg)
{
	struct port_fwd *pf = arg;
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(pf->ep, evs, 64, -1);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &pf->wake)
				goto out;
			if (evs[i].data.ptr == &pf->listener)
				accept_clients(pf);
			else
				conn_event(pf, evs[i].data.ptr, evs[i].events);
		}
		conns_reap(pf);
	}
out:
	while (pf->head)
		conn_free(pf, pf->head);
	conns_reap(pf);
	return NULL;
}

/* ------------------------------------------------------------------ listeners */

/* want: the host port it had before a restart, taken again if free (0: any). */
static int listen_tcp(struct port_fwd *pf, uint16_t want, agentd_error *err)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				.sin_port = htons(want)};
	socklen_t len = sizeof(a);
	int one = 1;
	bool bound = false;
	if (fd >= 0 && want) {
		/* a connection of the previous daemon's may linger in TIME_WAIT */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		bound = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		a.sin_port = 0; /* taken meanwhile: any other */
	}
	if (fd < 0 || (!bound && bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) ||
	    listen(fd, SOMAXCONN) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return agentd_error_errno(err, e, "listen on 127.0.0.1");
	}
	pf->host_port = ntohs(a.sin_port);
	snprintf(pf->address, sizeof(pf->address), "127.0.0.1:%u", (unsigned)pf->host_port);
	return fd;
}

/* <state dir>/ports/<sandbox id>-<port>.sock, for whoever may use the API: mode 0660 and
 * the API socket's group. The name is ours (a fresh sandbox id): a leftover of a crash is
 * replaced. */
static int listen_unix(struct daemon *d, struct port_fwd *pf, const char *id,
		       agentd_error *err)
{
	_cleanup_free_ char *dir = xasprintf("%s/ports", d->cfg.state_dir);
	if (mkdir(dir, 0711) < 0 && errno != EEXIST)
		return agentd_error_errno(err, errno, "create %s", dir);
	pf->path = xasprintf("%s/%s-%u.sock", dir, id, (unsigned)pf->port);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(pf->path) >= sizeof(sa.sun_path))
		return agentd_error_set(err, ENAMETOOLONG, "%s: too long for a unix socket",
					pf->path);
	memcpy(sa.sun_path, pf->path, strlen(pf->path) + 1);
	unlink(pf->path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	mode_t old = umask(0117);
	int r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	struct group *g = d->cfg.socket_group ? getgrnam(d->cfg.socket_group) : NULL;
	if (r < 0 || chmod(pf->path, 0660) < 0 || (g && chown(pf->path, (uid_t)-1, g->gr_gid)) ||
	    listen(fd, SOMAXCONN) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		unlink(pf->path);
		return agentd_error_errno(err, e, "listen on %s", pf->path);
	}
	snprintf(pf->address, sizeof(pf->address), "%s", pf->path);
	return fd;
}

void ports_remove_stale(struct daemon *d)
{
	_cleanup_free_ char *path = xasprintf("%s/ports", d->cfg.state_dir);
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *dir = dfd < 0 ? NULL : fdopendir(dfd);
	if (!dir && dfd >= 0)
		close(dfd);
	struct dirent *e;
	while (dir && (e = readdir(dir))) {
		char id[API_ID_LEN + 1];
		snprintf(id, sizeof(id), "%s", e->d_name);
		struct stat st;
		if (api_valid_id(id) && e->d_name[API_ID_LEN] == '-' &&
		    fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode))
			unlinkat(dfd, e->d_name, 0);
	}
	if (dir)
		closedir(dir);
}

static json_t *port_json(struct port_fwd *pf)
{
	json_t *o = json_pack("{s:i, s:s, s:s, s:I, s:i, s:I, s:I}", "port", (int)pf->port,
			      "address", pf->address, "state", pf->closed ? "closed" : "open",
			      "opened_ms", (json_int_t)pf->opened_ms, "connections",
			      (int)pf->conns, "accepted", (json_int_t)pf->accepted, "refused",
			      (json_int_t)pf->refused);
	if (pf->path) {
		json_object_set_new(o, "path", json_string(pf->path));
	} else {
		json_object_set_new(o, "host", json_string("127.0.0.1"));
		json_object_set_new(o, "host_port", json_integer(pf->host_port));
	}
	return o;
}

/* Stop its relay (every connection closes), its listener, its socket file. */
static void port_free(struct port_fwd *pf)
{
	if (pf->thread) {
		uint64_t one = 1;
		if (write(pf->wake, &one, sizeof(one)) < 0) {
			/* an eventfd write of 1 fails only at its maximum: it is readable */
		}
		pthread_join(pf->thread, NULL);
	}
	if (pf->ep >= 0)
		close(pf->ep);
	if (pf->wake >= 0)
		close(pf->wake);
	if (pf->listener >= 0)
		close(pf->listener);
	if (pf->path)
		unlink(pf->path);
	free(pf->path);
	free(pf);
}

static void audit_port(struct daemon *d, const struct client *c, struct live *l,
		       const char *action, uint16_t port, const char *address, const char *result)
{
	char p[8];
	snprintf(p, sizeof(p), "%u", (unsigned)port);
	char *argv[] = {p, (char *)address, NULL};
	audit(d, c, action, l->id, address ? argv : (char *[]){p, NULL}, l->digest, l->backend,
	      result, 0);
}

static struct live_ports *ports_of(struct daemon *d, struct live *l)
{
	pthread_mutex_lock(&d->lock);
	if (!l->ports) {
		l->ports = calloc(1, sizeof(*l->ports));
		pthread_mutex_init(&l->ports->lock, NULL);
	}
	struct live_ports *set = l->ports;
	pthread_mutex_unlock(&d->lock);
	return set;
}

static struct port_fwd *port_start(struct daemon *d, struct live *l, uint16_t port,
				   bool unix_sock, uint16_t want, agentd_error *err)
{
	struct port_fwd *pf = calloc(1, sizeof(*pf));
	pf->sb = l->sb;
	pf->port = port;
	pf->opened_ms = now_ms_realtime();
	pf->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pf->ep = epoll_create1(EPOLL_CLOEXEC);
	pf->listener = unix_sock ? listen_unix(d, pf, l->id, err) : listen_tcp(pf, want, err);
	struct epoll_event w = {.events = EPOLLIN, .data.ptr = &pf->wake};
	struct epoll_event a = {.events = EPOLLIN, .data.ptr = &pf->listener};
	if (pf->listener < 0 || pf->wake < 0 || pf->ep < 0 ||
	    epoll_ctl(pf->ep, EPOLL_CTL_ADD, pf->wake, &w) < 0 ||
	    epoll_ctl(pf->ep, EPOLL_CTL_ADD, pf->listener, &a) < 0) {
		if (pf->listener >= 0)
			agentd_error_errno(err, errno, "port %u", (unsigned)port);
		port_free(pf);
		return NULL;
	}
	return pf;
}

/* issue 12: durable-daemon: what a later daemon reopens (adopt.c) */
static void port_keep(struct daemon *d, struct live *l, struct port_fwd *pf)
{
	char key[8];
	snprintf(key, sizeof(key), "%u", (unsigned)pf->port);
	live_item_put(d, l, "port", key,
		      json_pack("{s:i, s:b, s:i, s:s}", "port", (int)pf->port, "unix", pf->path != NULL,
				"host_port", (int)pf->host_port, "address", pf->address));
}

static void port_forget(struct daemon *d, struct live *l, uint16_t port)
{
	char key[8];
	snprintf(key, sizeof(key), "%u", (unsigned)port);
	live_item_del(d, l, "port", key);
}

/* ------------------------------------------------------------------ API */

/* ports_open, and ports_reopen with want (the host port it had) and its own record. */
static int port_open(struct daemon *d, struct live *l, const struct client *c, uint16_t port,
		     bool unix_sock, uint16_t want, const char *result, json_t **out,
		     agentd_error *err);

int ports_open(struct daemon *d, struct live *l, const struct client *c, uint16_t port,
	       bool unix_sock, json_t **out, agentd_error *err)
{
	return port_open(d, l, c, port, unix_sock, 0, "ok", out, err);
}

static int port_open(struct daemon *d, struct live *l, const struct client *c, uint16_t port,
		     bool unix_sock, uint16_t want, const char *result, json_t **out,
		     agentd_error *err)
{
	/* a backend without a way in says so before anything is opened */
	if (agentd_sandbox_connect(l->sb, 0, err) < 0)
		return err->code == ENOTSUP ? 501 : 500;
	pthread_mutex_lock(&d->lock);
	enum sb_state st = live_state(l);
	pthread_mutex_unlock(&d->lock);
	if (st == SB_FAILED || st == SB_ENFORCED || !agentd_sandbox_is_alive(l->sb))
		return agentd_error_set(err, EBUSY, "sandbox %s is %s: nothing runs in it",
					l->id, st == SB_ENFORCED ? "enforced" : "failed"), 409;
	struct live_ports *set = ports_of(d, l);
	pthread_mutex_lock(&set->lock);
	int status = 0;
	for (struct port_fwd *pf = set->head; pf; pf = pf->next)
		if (pf->port == port) {
			agentd_error_set(err, EEXIST, "port %u of sandbox %s is forwarded already "
						      "(%s)", (unsigned)port, l->id, pf->address);
			status = 409;
		}
	if (!status && set->n >= PORTS_MAX) {
		agentd_error_set(err, EAGAIN, "sandbox %s forwards %d ports already, the most "
					      "it may", l->id, PORTS_MAX);
		status = 429;
	}
	struct port_fwd *pf = status ? NULL : port_start(d, l, port, unix_sock, want, err);
	if (!status && !pf)
		status = 500;
	if (pf) {
		pf->set = set;
		int e = pthread_create(&pf->thread, NULL, relay_main, pf);
		if (e) {
			pf->thread = 0;
			port_free(pf);
			pf = NULL;
			agentd_error_errno(err, e, "port %u: relay thread", (unsigned)port);
			status = 500;
		}
	}
	if (pf) {
		pf->next = set->head;
		set->head = pf;
		set->n++;
		*out = port_json(pf);
	}
	pthread_mutex_unlock(&set->lock);
	audit_port(d, c, l, "port_open", port, pf ? pf->address : NULL, pf ? result : err->msg);
	if (pf)
		port_keep(d, l, pf);
	if (pf)
		dlog("info", "msg=\"port forwarded\" sandbox=%s port=%u address=%s", l->id,
		     (unsigned)port, pf->address);
	return status;
}

json_t *ports_list_json(struct daemon *d, struct live *l)
{
	struct live_ports *set = ports_of(d, l);
	json_t *a = json_array();
	pthread_mutex_lock(&set->lock);
	for (struct port_fwd *pf = set->head; pf; pf = pf->next)
		json_array_append_new(a, port_json(pf));
	pthread_mutex_unlock(&set->lock);
	return a;
}

/* Unlink port from set (NULL if it is not forwarded). */
static struct port_fwd *port_take(struct live_ports *set, uint16_t port)
{
	pthread_mutex_lock(&set->lock);
	struct port_fwd *pf = NULL;
	for (struct port_fwd **pp = &set->head; *pp; pp = &(*pp)->next)
		if ((*pp)->port == port) {
			pf = *pp;
			*pp = pf->next;
			set->n--;
			break;
		}
	pthread_mutex_unlock(&set->lock);
	return pf;
}

int ports_close(struct daemon *d, struct live *l, const struct client *c, uint16_t port,
		agentd_error *err)
{
	struct port_fwd *pf = port_take(ports_of(d, l), port);
	if (!pf)
		return agentd_error_set(err, ENOENT, "port %u of sandbox %s is not forwarded",
					(unsigned)port, l->id), 404;
	char address[sizeof(pf->address)];
	snprintf(address, sizeof(address), "%s", pf->address);
	port_forget(d, l, port);
	port_free(pf);
	audit_port(d, c, l, "port_close", port, address, "ok");
	return 0;
}

/* Every port of set unlinked, as a list. */
static struct port_fwd *ports_take_all(struct live_ports *set)
{
	pthread_mutex_lock(&set->lock);
	struct port_fwd *pf = set->head;
	set->head = NULL;
	set->n = 0;
	pthread_mutex_unlock(&set->lock);
	return pf;
}

void ports_close_all(struct daemon *d, struct live *l, const char *reason)
{
	struct live_ports *set = l->ports;
	if (!set)
		return;
	struct port_fwd *pf = ports_take_all(set);
	while (pf) {
		struct port_fwd *next = pf->next;
		char address[sizeof(pf->address)];
		snprintf(address, sizeof(address), "%s", pf->address);
		uint16_t port = pf->port;
		port_free(pf);
		audit_port(d, NULL, l, "port_close", port, address, reason);
		pf = next;
	}
	pthread_mutex_destroy(&set->lock);
	free(set);
	l->ports = NULL;
}

/* issue 12: durable-daemon */
int ports_reopen(struct daemon *d, struct live *l, json_t *item)
{
	json_int_t port = json_integer_value(json_object_get(item, "port"));
	json_int_t want = json_integer_value(json_object_get(item, "host_port"));
	const char *was = json_string_value(json_object_get(item, "address"));
	if (port <= 0 || port > 65535 || want < 0 || want > 65535)
		return -1;
	json_t *o = NULL;
	agentd_error err = {0};
	char result[200];
	snprintf(result, sizeof(result), "reopened at daemon restart (was %.128s)",
		 was ? was : "?");
	int status = port_open(d, l, NULL, (uint16_t)port,
			       json_is_true(json_object_get(item, "unix")), (uint16_t)want, result,
			       &o, &err);
	if (status) {
		port_forget(d, l, (uint16_t)port);
		dlog("warn", "msg=\"port not reopened\" sandbox=%s port=%lld error=\"%s\"", l->id,
		     (long long)port, err.msg);
		return -1;
	}
	json_decref(o);
	return 0;
}

void ports_release_all(struct daemon *d, struct live *l)
{
	for (struct port_fwd *pf = l->ports ? ports_take_all(l->ports) : NULL, *next; pf;
	     pf = next) {
		next = pf->next;
		port_free(pf);
	}
}
