/* proxy_api.c: the egress proxy's public API and its thread — commands from other threads
 * (add/remove a sandbox, stop) go through a queue and an eventfd, so the loop in proxy.c
 * owns every connection and listener alone. */
#include "lib/net/proxy.h"

#include <sys/resource.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

/* ------------------------------------------------------------ commands */

static int do_add(struct agentd_proxy *p, struct cmd *m)
{
	struct netpolicy np;
	if (netpolicy_build(m->allow, &np, m->err) < 0)
		return -1;
	size_t slot = p->nls;
	for (size_t i = 0; i < p->nls; i++)
		if (!p->ls[i]) {
			slot = i;
			break;
		}
	if (slot == p->nls) {
		size_t n = p->nls ? p->nls * 2 : 16;
		p->ls = xrealloc(p->ls, n * sizeof(*p->ls));
		p->ls_gen = xrealloc(p->ls_gen, n * sizeof(*p->ls_gen));
		memset(p->ls + p->nls, 0, (n - p->nls) * sizeof(*p->ls));
		memset(p->ls_gen + p->nls, 0, (n - p->nls) * sizeof(*p->ls_gen));
		p->nls = n;
	}
	struct listener *l = xcalloc(1, sizeof(*l));
	l->slot = (uint32_t)slot;
	l->gen = ++p->ls_gen[slot];
	l->fd = m->fd;
	l->np = np;
	snprintf(l->id, sizeof(l->id), "%s", m->id);
	struct epoll_event ev = {.events = p->listeners_paused ? 0 : EPOLLIN,
				 .data.u64 = TAG(TAG_LISTENER, slot, l->gen)};
	/* issue 15: vm-map. No listener: a micro-VM's connections are handed over one by one */
	if (l->fd >= 0 && (fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK) < 0 ||
			   epoll_ctl(p->ep, EPOLL_CTL_ADD, l->fd, &ev) < 0)) {
		netpolicy_free(&l->np);
		free(l);
		return agentd_error_errno(m->err, errno, "proxy: watch the listener");
	}
	p->ls[slot] = l;
	p->nlisteners++;
	m->fd = -1;
	return 0;
}

static void remove_listener(struct agentd_proxy *p, struct listener *l, const char *why)
{
	for (size_t i = 0; i < p->nconns; i++)
		if (p->conns[i].used && p->conns[i].l == l)
			proxy_conn_close(p, &p->conns[i], why);
	if (l->fd >= 0) {
		epoll_ctl(p->ep, EPOLL_CTL_DEL, l->fd, NULL);
		close(l->fd);
	}
	netpolicy_free(&l->np);
	p->ls[l->slot] = NULL;
	p->nlisteners--;
	free(l);
}

static void do_remove(struct agentd_proxy *p, const char *id)
{
	for (size_t i = 0; i < p->nls; i++)
		if (p->ls[i] && strcmp(p->ls[i]->id, id) == 0)
			remove_listener(p, p->ls[i], "sandbox removed");
}

/* issue 12: a new allowlist for a served sandbox; its connections judged again by it. */
static int do_set(struct agentd_proxy *p, struct cmd *m)
{
	struct listener *l = NULL;
	for (size_t i = 0; i < p->nls && !l; i++)
		if (p->ls[i] && strcmp(p->ls[i]->id, m->id) == 0)
			l = p->ls[i];
	if (!l)
		return agentd_error_set(m->err, ENOENT, "proxy: sandbox %s is not served", m->id);
	struct netpolicy np;
	if (netpolicy_build(m->allow, &np, m->err) < 0)
		return -1;
	for (size_t i = 0; i < p->nconns; i++) {
		struct conn *c = &p->conns[i];
		if (!c->used || c->l != l || proxy_rejudge(&np, c))
			continue;
		if (c->state == ST_RELAY)
			proxy_conn_close(p, c, "no longer allowed: the allowlist changed");
		else
			proxy_conn_deny(p, c, 403, "no longer allowed: the allowlist changed");
	}
	netpolicy_free(&l->np);
	l->np = np;
	return 0;
}

/* issue 15: vm-map. A connection handed over for a served sandbox. */
static int do_conn(struct agentd_proxy *p, struct cmd *m)
{
	for (size_t i = 0; i < p->nls; i++)
		if (p->ls[i] && strcmp(p->ls[i]->id, m->id) == 0) {
			proxy_take_client(p, p->ls[i], m->fd);
			m->fd = -1;
			return 0;
		}
	return agentd_error_set(m->err, ENOENT, "proxy: sandbox %s is not served", m->id);
}

static void run_commands(struct agentd_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	for (struct cmd *m = p->cmds; m; m = m->next) {
		if (m->op == CMD_ADD)
			m->result = do_add(p, m);
		else if (m->op == CMD_REMOVE)
			do_remove(p, m->id);
		else if (m->op == CMD_SET)
			m->result = do_set(p, m);
		else if (m->op == CMD_CONN)
			m->result = do_conn(p, m);
		else
			p->stopping = true;
		m->done = true;
	}
	p->cmds = NULL;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void on_wake(struct agentd_proxy *p)
{
	uint64_t v;
	if (read(p->wake, &v, sizeof(v)) < 0) {
		/* spurious: nothing counted */
	}
	run_commands(p);
	struct resolve_result rs[16];
	size_t n;
	while ((n = resolver_take(p->res, rs, ARRAY_SIZE(rs))) > 0)
		for (size_t i = 0; i < n; i++)
			proxy_on_resolved(p, &rs[i]);
}

static void *proxy_main(void *arg)
{
	struct agentd_proxy *p = arg;
	struct epoll_event evs[256];
	uint64_t next_tick = now_ms_monotonic() + TICK_MS;
	while (!p->stopping) {
		int n = epoll_wait(p->ep, evs, ARRAY_SIZE(evs), TICK_MS);
		for (int i = 0; i < n; i++) {
			if ((evs[i].data.u64 & 3) == TAG_WAKE)
				on_wake(p);
			else
				proxy_dispatch(p, evs[i].data.u64, evs[i].events);
		}
		uint64_t now = now_ms_monotonic();
		if (now >= next_tick) {
			proxy_sweep(p, now);
			next_tick = now + TICK_MS;
		}
	}
	for (size_t i = 0; i < p->nls; i++)
		if (p->ls[i])
			remove_listener(p, p->ls[i], "proxy stopped");
	return NULL;
}

/* ------------------------------------------------------------ public API */

static void post(struct agentd_proxy *p, struct cmd *m)
{
	pthread_mutex_lock(&p->lock);
	m->next = p->cmds;
	p->cmds = m;
	uint64_t one = 1;
	if (write(p->wake, &one, sizeof(one)) < 0) {
		/* saturated counter: the loop is awake anyway */
	}
	while (!m->done)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

static void raise_nofile(rlim_t want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

agentd_proxy *agentd_proxy_start(const agentd_proxy_config *cfg, agentd_error *err)
{
	struct agentd_proxy *p = xcalloc(1, sizeof(*p));
	if (cfg)
		p->cfg = *cfg;
	agentd_proxy_config *c = &p->cfg;
	if (!c->max_connections)
		c->max_connections = 1024;
	if (c->max_connections > (1u << 20))
		c->max_connections = 1u << 20;
	if (!c->max_per_sandbox)
		c->max_per_sandbox = 256;
	if (c->max_per_sandbox > c->max_connections)
		c->max_per_sandbox = c->max_connections;
	if (!c->buffer_bytes)
		c->buffer_bytes = 256 << 10;
	if (c->buffer_bytes < 64 << 10)
		c->buffer_bytes = 64 << 10;
	if (!c->header_timeout_ms)
		c->header_timeout_ms = 10000;
	if (!c->connect_timeout_ms)
		c->connect_timeout_ms = 10000;
	if (!c->idle_timeout_ms)
		c->idle_timeout_ms = 300000;
	if (!c->silent_timeout_ms)
		c->silent_timeout_ms = 5000;
	if (!c->lookup_timeout_ms)
		c->lookup_timeout_ms = 5000;
	if (!c->on_log)
		c->on_log = proxy_log_line;
	p->ep = p->wake = -1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->nconns = c->max_connections;
	p->conns = xcalloc(p->nconns, sizeof(*p->conns));
	p->free_slots = xcalloc(p->nconns, sizeof(*p->free_slots));
	for (size_t i = 0; i < p->nconns; i++) {
		p->conns[i].cfd = p->conns[i].ufd = -1;
		p->free_slots[p->nfree++] = (uint32_t)(p->nconns - 1 - i);
	}
	raise_nofile(6 * (rlim_t)p->nconns + 256); /* two sockets, two pipes */
	p->ep = epoll_create1(EPOLL_CLOEXEC);
	p->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->ep < 0 || p->wake < 0) {
		agentd_error_errno(err, errno, "proxy: epoll");
		goto fail;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
	if (epoll_ctl(p->ep, EPOLL_CTL_ADD, p->wake, &ev) < 0) {
		agentd_error_errno(err, errno, "proxy: epoll");
		goto fail;
	}
	p->res = resolver_start(c->resolver_threads, c->max_lookups_per_sandbox, p->wake, err);
	if (!p->res)
		goto fail;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&p->thread, NULL, proxy_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		agentd_error_errno(err, e, "proxy: start the thread");
		goto fail;
	}
	return p;
fail:
	resolver_stop(p->res);
	if (p->ep >= 0)
		close(p->ep);
	if (p->wake >= 0)
		close(p->wake);
	free(p->conns);
	free(p->free_slots);
	free(p);
	return NULL;
}

int agentd_proxy_add_sandbox(agentd_proxy *p, int listen_fd, const char *sandbox_id,
			     const agentd_strv *allow, agentd_error *err)
{
	struct cmd m = {
	    .op = CMD_ADD, .fd = listen_fd, .id = sandbox_id, .allow = allow, .err = err};
	post(p, &m);
	if (m.fd >= 0)
		close(m.fd);
	return m.result;
}

void agentd_proxy_remove_sandbox(agentd_proxy *p, const char *sandbox_id)
{
	struct cmd m = {.op = CMD_REMOVE, .id = sandbox_id};
	post(p, &m);
}

int agentd_proxy_set_allowlist(agentd_proxy *p, const char *sandbox_id, const agentd_strv *allow,
			       agentd_error *err)
{
	struct cmd m = {.op = CMD_SET, .fd = -1, .id = sandbox_id, .allow = allow, .err = err};
	post(p, &m);
	return m.result;
}

/* issue 15: vm-map */
int agentd_proxy_add_connection(agentd_proxy *p, const char *sandbox_id, int fd,
				agentd_error *err)
{
	struct cmd m = {.op = CMD_CONN, .fd = fd, .id = sandbox_id, .err = err};
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		close(fd);
		return agentd_error_errno(err, errno, "proxy: connection of %s", sandbox_id);
	}
	post(p, &m);
	if (m.fd >= 0)
		close(m.fd);
	return m.result;
}

void agentd_proxy_stop(agentd_proxy *p)
{
	if (!p)
		return;
	struct cmd m = {.op = CMD_STOP};
	post(p, &m);
	pthread_join(p->thread, NULL);
	resolver_stop(p->res);
	close(p->ep);
	close(p->wake);
	/* every connection belonged to a listener: all closed by the thread */
	free(p->conns);
	free(p->free_slots);
	free(p->ls);
	free(p->ls_gen);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
