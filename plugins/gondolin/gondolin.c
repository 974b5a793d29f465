/* gondolin.c: the `gondolin` backend plugin: registration, the probe (what the helper finds
 * missing), create, checkpoints, usage and destroy, each sandbox one helper process group. */
#include "gondolin.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

AGENTD_PLUGIN_ABI;

#define PROBE_MS 30000
#define PROBE_CACHE_MS 30000
#define PROBE_MAX_ITEMS 16

/* The backend: its last probe answer (the helper's "result"), reused for a while since a
 * create probes first (enforce) and the probe starts Node. */
struct gondolin_backend {
	pthread_mutex_t lock;
	json_t *probe;
	int64_t probed_at;
};

static int strv_add(agentd_strv *v, const char *s)
{
	char **n = realloc(v->v, (v->n + 2) * sizeof(*n));
	if (!n)
		return -1;
	v->v = n;
	if (!(n[v->n] = strdup(s)))
		return -1;
	n[++v->n] = NULL;
	return 0;
}

/* A probe list: an array of at most PROBE_MAX_ITEMS strings, else NULL. */
static json_t *string_list(json_t *res, const char *key)
{
	json_t *a = json_object_get(res, key), *x;
	size_t i;
	if (!json_is_array(a) || json_array_size(a) > PROBE_MAX_ITEMS)
		return NULL;
	json_array_foreach (a, i, x)
		if (!json_is_string(x))
			return NULL;
	return a;
}

/* Ask a helper of its own what is missing here; *res: its checked result. */
static int ask_probe(json_t **res, agentd_error *err)
{
	gondolin_helper h;
	if (gondolin_helper_start(&h, err) < 0)
		return -1;
	h.probe_only = true;
	int r = gondolin_helper_call(&h, "probe", NULL, PROBE_MS, res, err);
	gondolin_helper_kill(&h);
	if (r < 0)
		return -1;
	if (!*res || !json_is_boolean(json_object_get(*res, "available")) ||
	    !string_list(*res, "missing") || !string_list(*res, "features") ||
	    !string_list(*res, "warnings")) {
		json_decref(*res);
		*res = NULL;
		return agentd_error_set(err, EPROTO, "probe: the gondolin helper's answer is not "
						     "{available, missing[], features[], warnings[]}");
	}
	return 0;
}

static int cached_probe(agentd_backend *b, json_t **res, agentd_error *err)
{
	struct gondolin_backend *gb = agentd_backend_priv(b);
	pthread_mutex_lock(&gb->lock);
	if (!gb->probe || gondolin_now_ms() - gb->probed_at > PROBE_CACHE_MS) {
		json_t *fresh = NULL;
		if (ask_probe(&fresh, err) < 0) {
			pthread_mutex_unlock(&gb->lock);
			return -1;
		}
		json_decref(gb->probe);
		gb->probe = fresh;
		gb->probed_at = gondolin_now_ms();
	}
	*res = json_incref(gb->probe);
	pthread_mutex_unlock(&gb->lock);
	return 0;
}

/* What a VM boundary with gondolin's options holds, and what it does not. */
static void items(agentd_backend_caps *caps)
{
	static const agentd_policy_item held[] = {
		AGENTD_ITEM_MEMORY,	    AGENTD_ITEM_CPU,	       AGENTD_ITEM_WALL_TIME,
		AGENTD_ITEM_OUTPUT,	    AGENTD_ITEM_FILESYSTEM,    AGENTD_ITEM_BIND_MOUNTS,
		AGENTD_ITEM_NETWORK_NONE, AGENTD_ITEM_NETWORK_ALLOWLIST,
	};
	for (size_t i = 0; i < sizeof(held) / sizeof(*held); i++)
		agentd_caps_enforce(caps, held[i]);
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_PIDS,
				   "gondolin sets no process limit inside its guest");
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_CPU_TIME,
				   "gondolin sets no CPU-time limit inside its guest");
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_OPEN_FILES,
				   "gondolin sets no open-files limit inside its guest");
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_WRITE,
				   "gondolin's guest disk is a copy-on-write overlay with no size "
				   "limit");
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_RUN_AS,
				   "commands run as the gondolin guest's own user (the VM is the "
				   "boundary)");
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_SECCOMP,
				   "no seccomp filter inside the gondolin guest (the VM is the "
				   "boundary)");
	agentd_caps_cannot_enforce(caps, AGENTD_ITEM_IMAGE,
				   "gondolin boots its own guest image, not agentd's images");
}

static void join(char *buf, size_t n, json_t *list)
{
	size_t len = 0, i;
	json_t *x;
	buf[0] = '\0';
	json_array_foreach (list, i, x)
		if (len < n)
			len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? "; " : "",
						json_string_value(x));
}

int gondolin_probe(agentd_backend *b, agentd_backend_caps *caps, agentd_error *err)
{
	memset(caps, 0, sizeof(*caps));
	snprintf(caps->name, sizeof(caps->name), "gondolin");
	/* what it is where it runs; whether it runs here is the helper's answer */
	caps->filesystem_isolation = caps->network_isolation = caps->process_isolation = true;
	caps->resource_limits = true;
	caps->persistent_sandboxes = true;
	caps->snapshots = true;
	static const char *const profiles[] = {"strict", "standard", "permissive"};
	for (size_t k = 0; k < 3; k++)
		strv_add(&caps->available_profiles, profiles[k]);
	items(caps);
	json_t *res;
	agentd_error perr = {0};
	if (cached_probe(b, &res, &perr) < 0) {
		/* no helper to ask is an answer too: unavailable, and why */
		snprintf(caps->unavailable_reason, sizeof(caps->unavailable_reason), "%s",
			 perr.msg);
		return 0;
	}
	(void)err;
	caps->available = json_is_true(json_object_get(res, "available")) &&
			  json_array_size(json_object_get(res, "missing")) == 0;
	if (!caps->available)
		join(caps->unavailable_reason, sizeof(caps->unavailable_reason),
		     json_object_get(res, "missing"));
	size_t i;
	json_t *x;
	json_array_foreach (json_object_get(res, "features"), i, x)
		strv_add(&caps->platform_features, json_string_value(x));
	json_array_foreach (json_object_get(res, "warnings"), i, x)
		strv_add(&caps->warnings, json_string_value(x));
	json_decref(res);
	return 0;
}

/* ------------------------------------------------------------------ sandboxes */

static bool sb_alive(agentd_sandbox *sb)
{
	gondolin_sandbox *g = agentd_sandbox_priv(sb);
	pthread_mutex_lock(&g->lock);
	siginfo_t si = {0}; /* not reaped: the group kill at destroy still needs its id */
	bool alive = !g->helper.broken && g->helper.pid > 0 &&
		     waitid(P_PID, (id_t)g->helper.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		     si.si_pid == 0;
	pthread_mutex_unlock(&g->lock);
	return alive;
}

static int sb_usage(agentd_sandbox *sb, agentd_usage *u, agentd_error *err)
{
	(void)err;
	gondolin_sandbox *g = agentd_sandbox_priv(sb);
	memset(u, 0, sizeof(*u));
	pthread_mutex_lock(&g->lock);
	u->wall_time_ms = g->wall_ms;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

static int sb_destroy(agentd_sandbox *sb, agentd_error *err)
{
	(void)err;
	gondolin_sandbox *g = agentd_sandbox_priv(sb);
	pthread_mutex_lock(&g->lock);
	if (!g->helper.broken && g->helper.pid > 0) {
		/* the VM closed cleanly where it answers in time; the group goes either way */
		json_t *res = NULL;
		agentd_error ignored;
		if (gondolin_helper_call(&g->helper, "close", NULL, GONDOLIN_CLOSE_MS, &res,
					 &ignored) == 0)
			json_decref(res);
	}
	gondolin_helper_kill(&g->helper);
	gondolin_remove_checkpoints(g);
	pthread_mutex_unlock(&g->lock);
	pthread_mutex_destroy(&g->lock);
	free(g);
	agentd_sandbox_set_priv(sb, NULL);
	return 0;
}

static const agentd_sandbox_ops sandbox_ops = {
	.exec = gondolin_exec,
	.is_alive = sb_alive,
	.snapshot = gondolin_snapshot,
	.restore = gondolin_restore,
	.usage = sb_usage,
	.destroy = sb_destroy,
	.snapshot_to = gondolin_snapshot_to,
	.restore_from = gondolin_restore_from,
};

/* What the sandbox reports of itself: the host paths it reads, its destinations. */
static void fill_caps(agentd_sandbox *sb, const agentd_spec *spec)
{
	agentd_sandbox_caps *c = agentd_sandbox_caps_mut(sb);
	strv_add(&c->readable_paths, spec->workdir);
	strv_add(&c->writable_paths, spec->workdir);
	for (size_t i = 0; i < spec->allowed_paths_ro.n; i++)
		strv_add(&c->readable_paths, spec->allowed_paths_ro.v[i]);
	for (size_t i = 0; i < spec->n_bind_mounts; i++)
		strv_add(&c->readable_paths, spec->bind_mounts[i].target);
	c->can_write_filesystem = true;
	c->has_network = spec->network.mode == AGENTD_NET_ALLOWLIST;
	for (size_t i = 0; c->has_network && i < spec->network.allow.n; i++)
		strv_add(&c->allowed_destinations, spec->network.allow.v[i]);
}

static int create_sandbox(agentd_backend *b, const agentd_spec *spec, agentd_sandbox **out,
			  agentd_error *err)
{
	agentd_backend_caps caps;
	gondolin_probe(b, &caps, err);
	bool ok = caps.available;
	char why[sizeof(caps.unavailable_reason)];
	snprintf(why, sizeof(why), "%s", caps.unavailable_reason);
	agentd_backend_caps_free(&caps);
	if (!ok)
		return agentd_error_set(err, ENOTSUP, "gondolin is unavailable here: %s", why);
	json_t *config = gondolin_policy_config(spec, err);
	if (!config)
		return -1;
	gondolin_sandbox *g = calloc(1, sizeof(*g));
	if (!g) {
		json_decref(config);
		return agentd_error_set(err, ENOMEM, "out of memory");
	}
	pthread_mutex_init(&g->lock, NULL);
	g->created_ms = gondolin_now_ms();
	json_t *f = json_object(), *res = NULL;
	json_object_set_new(f, "config", config);
	bool started = gondolin_helper_start(&g->helper, err) == 0;
	if (!started)
		json_decref(f);
	if (!started ||
	    gondolin_helper_call(&g->helper, "create", f, GONDOLIN_BOOT_MS, &res, err) < 0) {
		gondolin_helper_kill(&g->helper);
		pthread_mutex_destroy(&g->lock);
		free(g);
		return -1;
	}
	json_decref(res);
	agentd_sandbox *sb = agentd_sandbox_alloc(b, spec, &sandbox_ops, err);
	if (!sb) {
		gondolin_helper_kill(&g->helper);
		pthread_mutex_destroy(&g->lock);
		free(g);
		return -1;
	}
	agentd_sandbox_set_priv(sb, g);
	fill_caps(sb, spec);
	*out = sb;
	return 0;
}

static void free_backend(agentd_backend *b)
{
	struct gondolin_backend *gb = agentd_backend_priv(b);
	if (!gb)
		return;
	json_decref(gb->probe);
	pthread_mutex_destroy(&gb->lock);
	free(gb);
}

static const agentd_backend_ops backend_ops = {
	.name = "gondolin",
	.probe = gondolin_probe,
	.create_sandbox = create_sandbox,
	.free_backend = free_backend,
};

static int factory(const char *work_root, agentd_backend **out, agentd_error *err)
{
	struct gondolin_backend *gb = calloc(1, sizeof(*gb));
	if (!gb)
		return agentd_error_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&gb->lock, NULL);
	*out = agentd_backend_alloc(&backend_ops, work_root);
	agentd_backend_set_priv(*out, gb);
	return 0;
}

int agentd_plugin_init(void);
int agentd_plugin_init(void)
{
	return agentd_register_backend("gondolin", NULL, factory, NULL);
}
