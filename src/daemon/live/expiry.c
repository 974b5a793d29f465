/* expiry.c: a sandbox's ttl (a lifetime) and idle timeout (no activity), each ending in a
 * destroy or a suspend (docs/api.md#timeouts): the settings and their daemon-wide bounds,
 * the activity clock, and the one thread that sleeps until the nearest deadline and acts. */
#include "daemon/live/live.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void live_touch(struct live *l)
{
	atomic_store_explicit(&l->last_activity_ms, now_ms_realtime(), memory_order_relaxed);
}

void live_touch_id(struct daemon *d, const char *id)
{
	pthread_mutex_lock(&d->lock);
	for (struct live *l = d->head; l; l = l->next)
		if (l->sb && (!strcmp(l->id, id) || (l->name && !strcmp(l->name, id))))
			live_touch(l);
	pthread_mutex_unlock(&d->lock);
}

void expiry_note_request(struct daemon *d, const char *method, const struct api_request *r)
{
	/* looking (the sandbox, its usage, its processes' state and output, its contexts and
	 * ports) is not using it: a dashboard that polls does not keep sandboxes alive; every
	 * files API call is (a download, a listing, a watch), as is an attachment */
	bool files = r->route == ROUTE_FILE_GET || r->route == ROUTE_FILE_LIST ||
		     r->route == ROUTE_FILE_STAT || r->route == ROUTE_FILE_TAR_GET ||
		     r->route == ROUTE_FILE_WATCH;
	if (!r->id[0] ||
	    (!strcmp(method, "GET") && !files && r->route != ROUTE_PROCESS_ATTACH))
		return;
	live_touch_id(d, r->id);
}

void expiry_kick_locked(struct daemon *d)
{
	d->expiry_kicked = true;
	pthread_cond_signal(&d->expiry_cond);
}

/* One of a create's durations: what it asks, else the daemon's default, else its max; never
 * above the max (0, none, is above any). */
static int bounded(const char *field, const char *flag, bool has, uint64_t asked, uint64_t def,
		   uint64_t max, uint64_t *out, agentd_error *err)
{
	uint64_t v = has ? asked : def ? def : max;
	if (max && !v)
		return agentd_error_set(err, EINVAL, "%s: 0 (none) is not allowed: the daemon's "
					"--%s is %llu ms", field, flag, (unsigned long long)max);
	if (max && v > max)
		return agentd_error_set(err, EINVAL, "%s: %llu is above the daemon's --%s of %llu "
					"ms", field, (unsigned long long)v, flag,
					(unsigned long long)max);
	*out = v;
	return 0;
}

int expiry_resolve(struct daemon *d, const struct api_request *r, struct state_expiry *out,
		   agentd_error *err)
{
	const struct server_cfg *cfg = &d->cfg;
	memset(out, 0, sizeof(*out));
	if (bounded("ttl_ms", "max-ttl", r->has_ttl, r->ttl_ms, cfg->default_ttl_ms,
		    cfg->max_ttl_ms, &out->ttl_ms, err) < 0 ||
	    bounded("idle_timeout_ms", "max-idle", r->has_idle, r->idle_timeout_ms,
		    cfg->default_idle_ms, cfg->max_idle_ms, &out->idle_timeout_ms, err) < 0)
		return 400;
	out->on_expire_suspend = r->has_on_expire && r->on_expire_suspend;
	return 0;
}

/* "suspend" is promised only where it works: a suspend and a resume of l itself (the process
 * backends without a cgroup have no freezer). Fail closed: refused, not a destroy later. */
static int check_suspendable(struct daemon *d, struct live *l, agentd_error *err)
{
	pthread_mutex_lock(&d->lock);
	bool suspended = l->state == SB_SUSPENDED;
	pthread_mutex_unlock(&d->lock);
	if (suspended)
		return 0;
	if (agentd_sandbox_suspend(l->sb, err) < 0 || agentd_sandbox_resume(l->sb, err) < 0)
		return agentd_error_prefix(err, "on_expire \"suspend\": backend %s cannot suspend "
					   "sandbox %s", l->backend, l->id);
	return 0;
}

static void save(struct daemon *d, struct live *l)
{
	pthread_mutex_lock(&d->lock);
	struct state_expiry e = l->expiry;
	pthread_mutex_unlock(&d->lock);
	agentd_error err = {0};
	if (state_sandbox_set_expiry(d->st, l->id, &e, &err) < 0)
		dlog("error", "msg=\"sandbox timeouts not stored\" sandbox=%s error=\"%s\"", l->id,
		     err.msg);
}

int expiry_attach(struct daemon *d, struct live *l, const struct state_expiry *e,
		  agentd_error *err)
{
	if (e->on_expire_suspend && check_suspendable(d, l, err) < 0)
		return 400;
	int64_t now = now_ms_realtime();
	pthread_mutex_lock(&d->lock);
	l->expiry = *e;
	l->expiry.expires_at_ms = e->ttl_ms ? now + (int64_t)e->ttl_ms : 0;
	l->expiry.last_activity_ms = now;
	atomic_store(&l->last_activity_ms, now);
	struct state_expiry saved = l->expiry;
	expiry_kick_locked(d);
	pthread_mutex_unlock(&d->lock);
	return state_sandbox_set_expiry(d->st, l->id, &saved, err) < 0 ? 500 : 0;
}

int expiry_update(struct daemon *d, struct live *l, const struct api_request *r,
		  agentd_error *err)
{
	const struct server_cfg *cfg = &d->cfg;
	uint64_t ttl = 0, idle = 0;
	if ((r->has_ttl && bounded("ttl_ms", "max-ttl", true, r->ttl_ms, 0, cfg->max_ttl_ms, &ttl,
				   err) < 0) ||
	    (r->has_idle && bounded("idle_timeout_ms", "max-idle", true, r->idle_timeout_ms, 0,
				    cfg->max_idle_ms, &idle, err) < 0))
		return 400;
	if (r->has_on_expire && r->on_expire_suspend && check_suspendable(d, l, err) < 0)
		return 400;
	int64_t now = now_ms_realtime();
	pthread_mutex_lock(&d->lock);
	if (r->has_ttl) {
		l->expiry.ttl_ms = ttl;
		l->expiry.expires_at_ms = ttl ? now + (int64_t)ttl : 0;
	}
	if (r->has_idle)
		l->expiry.idle_timeout_ms = idle;
	if (r->has_on_expire)
		l->expiry.on_expire_suspend = r->on_expire_suspend;
	live_touch(l);
	expiry_kick_locked(d);
	pthread_mutex_unlock(&d->lock);
	save(d, l);
	return 0;
}

void expiry_load(struct daemon *d, struct live *l)
{
	struct state_expiry e;
	if (state_sandbox_get_expiry(d->st, l->id, &e) < 0)
		return;
	if (!e.last_activity_ms) /* a row without one: its idle clock starts now */
		e.last_activity_ms = now_ms_realtime();
	pthread_mutex_lock(&d->lock);
	l->expiry = e;
	atomic_store(&l->last_activity_ms, e.last_activity_ms);
	pthread_mutex_unlock(&d->lock);
}

void expiry_resumed(struct daemon *d, struct live *l)
{
	pthread_mutex_lock(&d->lock);
	if (l->expiry.ttl_ms && !l->expiry.expires_at_ms)
		l->expiry.expires_at_ms = now_ms_realtime() + (int64_t)l->expiry.ttl_ms;
	live_touch(l);
	expiry_kick_locked(d);
	pthread_mutex_unlock(&d->lock);
	save(d, l);
}

/* The idle deadline (d->lock held): none while suspended or while an exec or a cell runs. */
static int64_t idle_deadline(const struct live *l)
{
	if (!l->expiry.idle_timeout_ms || l->state == SB_SUSPENDED || l->slots)
		return 0;
	return atomic_load_explicit(&l->last_activity_ms, memory_order_relaxed) +
	       (int64_t)l->expiry.idle_timeout_ms;
}

static json_t *ms_or_null(int64_t v)
{
	return v ? json_integer((json_int_t)v) : json_null();
}

void expiry_to_json(struct daemon *d, struct live *l, json_t *o)
{
	pthread_mutex_lock(&d->lock);
	struct state_expiry e = l->expiry;
	int64_t idle = idle_deadline(l);
	int64_t act = atomic_load_explicit(&l->last_activity_ms, memory_order_relaxed);
	pthread_mutex_unlock(&d->lock);
	json_object_set_new(o, "ttl_ms", ms_or_null((int64_t)e.ttl_ms));
	json_object_set_new(o, "expires_at_ms", ms_or_null(e.expires_at_ms));
	json_object_set_new(o, "idle_timeout_ms", ms_or_null((int64_t)e.idle_timeout_ms));
	json_object_set_new(o, "idle_deadline_ms", ms_or_null(idle));
	json_object_set_new(o, "last_activity_ms", ms_or_null(act));
	json_object_set_new(o, "on_expire",
			    json_string(e.on_expire_suspend ? "suspend" : "destroy"));
}

/* ------------------------------------------------------------------ the thread */

struct activity_save {
	char id[API_ID_LEN + 1];
	int64_t ms;
};

/* The last activities to write (d->lock held): each at most every EXPIRY_SAVE_MS (all of
 * them when flush), so the exec path never writes; *next is when the next one is due. */
static size_t activities_due(struct daemon *d, int64_t now, bool flush,
			     struct activity_save **out, int64_t *next)
{
	size_t n = 0, cap = 0;
	*out = NULL;
	for (struct live *l = d->head; l; l = l->next) {
		int64_t act = atomic_load_explicit(&l->last_activity_ms, memory_order_relaxed);
		if (!l->sb || act == l->expiry.last_activity_ms)
			continue;
		int64_t due = l->expiry.last_activity_ms + EXPIRY_SAVE_MS;
		if (!flush && due > now) {
			if (due < *next)
				*next = due;
			continue;
		}
		if (n == cap)
			*out = xrealloc(*out, (cap = cap ? 2 * cap : 8) * sizeof(**out));
		snprintf((*out)[n].id, sizeof((*out)[n].id), "%s", l->id);
		(*out)[n++].ms = l->expiry.last_activity_ms = act;
	}
	return n;
}

static void write_activities(struct daemon *d, struct activity_save *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		state_sandbox_set_activity(d->st, v[i].id, v[i].ms);
	free(v);
}

/* The sandbox whose deadline passed (referenced, marked expiring), or NULL and *next the
 * nearest deadline (d->lock held). */
static struct live *due_sandbox(struct daemon *d, int64_t now, int64_t *next, bool *idle)
{
	for (struct live *l = d->head; l; l = l->next) {
		if (!l->sb || l->state == SB_PROVISIONING || l->state == SB_DESTROYING ||
		    l->expiring)
			continue;
		int64_t ttl = l->expiry.expires_at_ms, id = idle_deadline(l);
		int64_t when = ttl && (!id || ttl <= id) ? ttl : id;
		if (!when)
			continue;
		if (when <= now) {
			*idle = when != ttl;
			l->refs++;
			l->expiring = true;
			return l;
		}
		if (when < *next)
			*next = when;
	}
	return NULL;
}

/* Expiry in the suspend form: 0, or -1 with err when the suspend failed (the caller
 * destroys: a sandbox is never left running past its deadline). */
static int expire_suspend(struct daemon *d, struct live *l, bool idle, bool *already,
			  agentd_error *err)
{
	pthread_mutex_lock(&d->lock);
	*already = l->state == SB_SUSPENDED;
	if (!idle)
		l->expiry.expires_at_ms = 0; /* spent (before anyone sees it suspended): it
					      * starts again at the next resume */
	pthread_mutex_unlock(&d->lock);
	if (!*already && live_freeze(d, l, true, err) != 0) {
		pthread_mutex_lock(&d->lock);
		*already = l->state == SB_SUSPENDED; /* a client's suspend came first */
		pthread_mutex_unlock(&d->lock);
		if (!*already)
			return -1; /* destroyed: the deadline stays passed */
	}
	save(d, l);
	return 0;
}

static void expire(struct daemon *d, struct live *l, bool idle)
{
	const char *why = idle ? "idle timeout" : "ttl expired";
	char id[API_ID_LEN + 1], backend[64], digest[65], result[400];
	snprintf(id, sizeof(id), "%s", l->id);
	snprintf(backend, sizeof(backend), "%s", l->backend);
	snprintf(digest, sizeof(digest), "%s", l->digest);
	pthread_mutex_lock(&d->lock);
	bool suspend = l->expiry.on_expire_suspend && l->state != SB_FAILED &&
		       l->state != SB_ENFORCED;
	/* a request since the pass decided (activity, a new timeout, a suspend) wins */
	int64_t when = idle ? idle_deadline(l) : l->expiry.expires_at_ms;
	bool stale = !when || when > now_ms_realtime();
	if (stale)
		l->expiring = false;
	pthread_mutex_unlock(&d->lock);
	if (stale) {
		live_put(d, l);
		return;
	}
	uint64_t t0 = mono_ms();
	agentd_error err = {0};
	bool already = false;
	if (suspend && expire_suspend(d, l, idle, &already, &err) == 0) {
		snprintf(result, sizeof(result), "suspend: %s%s", why,
			 already ? " (already suspended)" : "");
		pthread_mutex_lock(&d->lock);
		l->expiring = false;
		d->m.expired[idle][1]++;
		pthread_mutex_unlock(&d->lock);
		live_put(d, l);
	} else {
		char failed[300] = "";
		if (suspend)
			snprintf(failed, sizeof(failed), " (the suspend failed: %.250s)", err.msg);
		agentd_error derr = {0};
		int rc = live_destroy(d, l, why, &derr); /* takes our reference */
		snprintf(result, sizeof(result), "destroy: %s%s%s%.200s", why, failed,
			 rc < 0 ? ": error: " : "", rc < 0 ? derr.msg : "");
		pthread_mutex_lock(&d->lock);
		d->m.expired[idle][0]++;
		pthread_mutex_unlock(&d->lock);
	}
	audit(d, NULL, "expire", id, NULL, digest, backend, result, mono_ms() - t0);
	dlog("info", "msg=\"sandbox expired\" sandbox=%s result=\"%s\"", id, result);
}

static void *expiry_main(void *arg)
{
	struct daemon *d = arg;
	pthread_mutex_lock(&d->lock);
	while (!d->expiry_stop) {
		int64_t now = now_ms_realtime(), next = now + 60000;
		bool idle = false;
		struct activity_save *saves;
		size_t n = activities_due(d, now, false, &saves, &next);
		struct live *l = due_sandbox(d, now, &next, &idle);
		if (n || l) {
			pthread_mutex_unlock(&d->lock);
			write_activities(d, saves, n);
			if (l)
				expire(d, l, idle);
			pthread_mutex_lock(&d->lock);
			continue;
		}
		free(saves);
		if (!d->expiry_kicked) {
			struct timespec until = {.tv_sec = next / 1000,
						 .tv_nsec = (long)(next % 1000) * 1000000L};
			pthread_cond_timedwait(&d->expiry_cond, &d->lock, &until);
		}
		d->expiry_kicked = false;
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int expiry_start(struct daemon *d, agentd_error *err)
{
	pthread_cond_init(&d->expiry_cond, NULL); /* CLOCK_REALTIME: deadlines are wall clock */
	int e = pthread_create(&d->expiry_thread, NULL, expiry_main, d);
	if (e)
		return agentd_error_set(err, e, "start the expiry thread: %s", strerror(e));
	d->expiry_running = true;
	return 0;
}

void expiry_stop(struct daemon *d)
{
	if (!d->expiry_running)
		return;
	pthread_mutex_lock(&d->lock);
	d->expiry_stop = true;
	pthread_cond_signal(&d->expiry_cond);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->expiry_thread, NULL);
	d->expiry_running = false;
	pthread_mutex_lock(&d->lock);
	int64_t next = 0;
	struct activity_save *saves;
	size_t n = activities_due(d, now_ms_realtime(), true, &saves, &next);
	pthread_mutex_unlock(&d->lock);
	write_activities(d, saves, n);
	pthread_cond_destroy(&d->expiry_cond);
}
