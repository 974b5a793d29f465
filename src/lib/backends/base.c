/* base.c: the backend and sandbox objects behind the public handles — allocation, the
 * accessors plugins use, the one-shot hook and the egress proxy of allowlist sandboxes. */
#include "lib/backends/backends.h"

#include <pthread.h>
#include <stdarg.h>

agentd_backend *agentd_backend_alloc(const agentd_backend_ops *ops, const char *work_root)
{
	agentd_backend *b = xcalloc(1, sizeof(*b));
	b->ops = ops;
	b->work_root = xstrdup(work_root ? work_root : agentd_default_work_root());
	b->internal = xcalloc(1, sizeof(*b->internal));
	pthread_mutex_init(&b->internal->lock, NULL);
	return b;
}

agentd_sandbox *agentd_sandbox_alloc(agentd_backend *b, const agentd_spec *spec,
				     const agentd_sandbox_ops *ops, agentd_error *err)
{
	agentd_sandbox *sb = xcalloc(1, sizeof(*sb));
	if (agentd_spec_copy(&sb->spec, spec, err) < 0) {
		free(sb);
		return NULL;
	}
	sb->ops = ops;
	sb->backend = b;
	pthread_mutex_init(&sb->procs_lock, NULL);
	random_id(sb->id);
	sb->created_at = time(NULL);
	snprintf(sb->caps.sandbox_id, sizeof(sb->caps.sandbox_id), "%s", sb->id);
	snprintf(sb->caps.backend, sizeof(sb->caps.backend), "%s", b->ops->name);
	sb->caps.profile = spec->profile;
	sb->caps.limits = spec->limits;
	sb->caps.created_at = sb->created_at;
	return sb;
}

agentd_sandbox *agentd_sandbox_alloc_id(agentd_backend *b, const agentd_spec *spec,
					const agentd_sandbox_ops *ops, const char *id,
					agentd_error *err)
{
	agentd_sandbox *sb = agentd_sandbox_alloc(b, spec, ops, err);
	if (sb) {
		snprintf(sb->id, sizeof(sb->id), "%s", id);
		snprintf(sb->caps.sandbox_id, sizeof(sb->caps.sandbox_id), "%s", id);
	}
	return sb;
}

void backend_sandbox_free(agentd_sandbox *sb)
{
	agentd_spec_free(&sb->spec);
	agentd_sandbox_caps_free(&sb->caps);
	pthread_mutex_destroy(&sb->procs_lock);
	free(sb);
}

const char *agentd_sandbox_id(const agentd_sandbox *sb)
{
	return sb->id;
}

const agentd_spec *agentd_sandbox_spec(const agentd_sandbox *sb)
{
	return &sb->spec;
}

const agentd_sandbox_caps *agentd_sandbox_get_caps(const agentd_sandbox *sb)
{
	return &sb->caps;
}

agentd_sandbox_caps *agentd_sandbox_caps_mut(agentd_sandbox *sb)
{
	return &sb->caps;
}

void agentd_caps_enforce(agentd_backend_caps *caps, agentd_policy_item item)
{
	if ((unsigned)item >= AGENTD_ITEM_COUNT)
		return;
	caps->enforceable |= AGENTD_ITEM_BIT(item);
	caps->unenforceable_reason[item][0] = '\0';
}

void agentd_caps_cannot_enforce(agentd_backend_caps *caps, agentd_policy_item item,
				const char *fmt, ...)
{
	if ((unsigned)item >= AGENTD_ITEM_COUNT)
		return;
	caps->enforceable &= ~AGENTD_ITEM_BIT(item);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(caps->unenforceable_reason[item], sizeof(caps->unenforceable_reason[item]), fmt,
		  ap);
	va_end(ap);
}

agentd_backend *agentd_sandbox_backend(const agentd_sandbox *sb)
{
	return sb->backend;
}

const char *agentd_backend_work_root(const agentd_backend *b)
{
	return b->work_root;
}

void *agentd_backend_priv(const agentd_backend *b)
{
	return b->priv;
}

void agentd_backend_set_priv(agentd_backend *b, void *priv)
{
	b->priv = priv;
}

void *agentd_sandbox_priv(const agentd_sandbox *sb)
{
	return sb->priv;
}

void agentd_sandbox_set_priv(agentd_sandbox *sb, void *priv)
{
	sb->priv = priv;
}

agentd_process *agentd_process_alloc(agentd_sandbox *sb, const agentd_process_ops *ops,
				     void *priv, bool tty)
{
	agentd_process *p = xcalloc(1, sizeof(*p));
	p->ops = ops;
	p->sb = sb;
	p->priv = priv;
	p->tty = tty;
	p->pid = -1;
	for (int i = 0; i < 4; i++)
		p->fds[i] = -1;
	pthread_mutex_lock(&sb->procs_lock);
	p->next = sb->procs;
	if (sb->procs)
		sb->procs->prev = p;
	sb->procs = p;
	pthread_mutex_unlock(&sb->procs_lock);
	return p;
}

void agentd_process_set_fds(agentd_process *p, int64_t pid, int stdin_fd, int stdout_fd,
			    int stderr_fd, int wait_fd)
{
	p->pid = pid;
	p->fds[0] = stdin_fd;
	p->fds[1] = stdout_fd;
	p->fds[2] = stderr_fd;
	p->fds[3] = wait_fd;
}

void *agentd_process_priv(const agentd_process *p)
{
	return p->priv;
}

void backend_set_run_once(agentd_backend *b, backend_run_once_fn fn)
{
	b->internal->run_once = fn;
}

void agentd_backend_set_proxy(agentd_backend *b, agentd_proxy *p)
{
	/* sandboxes attached to a proxy started here keep it until the backend is freed */
	pthread_mutex_lock(&b->internal->lock);
	b->internal->proxy = p ? p : b->internal->own_proxy;
	pthread_mutex_unlock(&b->internal->lock);
}

agentd_proxy *backend_egress_proxy(agentd_backend *b, agentd_error *err)
{
	pthread_mutex_lock(&b->internal->lock);
	if (!b->internal->proxy)
		b->internal->proxy = b->internal->own_proxy = agentd_proxy_start(NULL, err);
	agentd_proxy *p = b->internal->proxy;
	pthread_mutex_unlock(&b->internal->lock);
	return p;
}

void agentd_adoption_free(agentd_adoption *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n_execs; i++) {
		for (char **v = a->execs[i].argv; v && *v; v++)
			free(*v);
		free(a->execs[i].argv);
	}
	free(a->execs);
	free(a->processes);
	memset(a, 0, sizeof(*a));
}

bool agentd_sandbox_is_durable(const agentd_sandbox *sb)
{
	return sb->durable;
}
