/* network.c: a live container sandbox's network switched between "none" and "allowlist",
 * or its allowlist replaced (agentd_sandbox_set_network): the egress proxy's part (its
 * listener and the connections through it) and the init's (the connect rule of the
 * commands it starts from now on, OP_NETWORK). Narrowing closes at once what the new
 * policy does not allow; a command started before a widening keeps its stricter rule. */
#include "lib/backends/container/container.h"

/* none → allowlist: a listener from the init (commands started from now on may connect),
 * served by the proxy with allow; the init back to none if the proxy refuses it. */
static int widen(agentd_sandbox *sb, const agentd_strv *allow, agentd_error *err)
{
	struct ctr *c = sb->priv;
	agentd_proxy *proxy = backend_egress_proxy(sb->backend, err);
	if (!proxy)
		return agentd_error_prefix(err, "egress proxy");
	struct ctl_msg m = {.op = OP_NETWORK, .flags = NET_MODE_ALLOWLIST};
	int fd = ctr_ask_init(sb, &m, true, err);
	if (fd < 0)
		return agentd_error_prefix(err, "egress listener on 127.0.0.1:%u inside",
					   (unsigned)AGENTD_PROXY_PORT);
	/* Our copy, as at create: what a later persist hands the init to keep. */
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (agentd_proxy_add_sandbox(proxy, fd, sb->id, allow, err) < 0) {
		if (copy >= 0)
			close(copy);
		m.flags = NET_MODE_NONE;
		ctr_ask_init(sb, &m, false, NULL);
		return agentd_error_prefix(err, "egress proxy");
	}
	pthread_mutex_lock(&c->lock);
	c->proxy = proxy; /* the commands' proxy variables from now on (ctr_envp) */
	c->proxy_fd = copy;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* allowlist → none: the listener and every connection through the proxy closed first,
 * then the commands started from now on lose TCP connect. */
static int narrow_to_none(agentd_sandbox *sb, agentd_error *err)
{
	struct ctr *c = sb->priv;
	pthread_mutex_lock(&c->lock);
	agentd_proxy *proxy = c->proxy;
	c->proxy = NULL;
	/* Our copy of the listener too: kept, it would hold 127.0.0.1:AGENTD_PROXY_PORT
	 * inside listening (connections queued, never served) and make a later widening's new
	 * listener fail (EADDRINUSE). */
	int copy = c->proxy_fd;
	c->proxy_fd = -1;
	pthread_mutex_unlock(&c->lock);
	if (copy >= 0)
		close(copy);
	if (proxy)
		agentd_proxy_remove_sandbox(proxy, sb->id);
	struct ctl_msg m = {.op = OP_NETWORK, .flags = NET_MODE_NONE};
	return ctr_ask_init(sb, &m, false, err) < 0 ? agentd_error_prefix(err, "network none")
						    : 0;
}

int ctr_set_network(agentd_sandbox *sb, const agentd_network *net, agentd_error *err)
{
	if (ctr_refuse_suspended(sb, err) < 0)
		return -1;
	struct ctr *c = sb->priv;
	pthread_mutex_lock(&c->lock);
	agentd_proxy *proxy = c->proxy;
	pthread_mutex_unlock(&c->lock);
	bool was_allowlist = proxy != NULL;
	if (net->mode == AGENTD_NET_NONE)
		return was_allowlist ? narrow_to_none(sb, err) : 0;
	if (!was_allowlist)
		return widen(sb, &net->allow, err);
	return agentd_proxy_set_allowlist(proxy, sb->id, &net->allow, err) < 0
		       ? agentd_error_prefix(err, "egress proxy")
		       : 0;
}
