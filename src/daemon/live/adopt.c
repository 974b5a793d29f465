/* adopt.c: sandboxes that outlive the daemon — made durable at create, left running at stop,
 * adopted back at start with their processes, contexts and ports, or marked failed with
 * everything they left removed when they cannot be (their init died, or the proof failed). */
#include "daemon/live/live.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* <state dir>/durable/<id>: where the sandbox's endpoint is, 0700 like its parent. */
static char *endpoint_dir(struct daemon *d, const char *id, bool create, agentd_error *err)
{
	_cleanup_free_ char *top = xasprintf("%s/durable", d->cfg.state_dir);
	char *dir = xasprintf("%s/%s", top, id);
	if (!create)
		return dir;
	if ((mkdir(top, 0700) < 0 && errno != EEXIST) || chmod(top, 0700) < 0 ||
	    (mkdir(dir, 0700) < 0 && errno != EEXIST) || chmod(dir, 0700) < 0) {
		agentd_error_errno(err, errno, "create %s", dir);
		free(dir);
		return NULL;
	}
	return dir;
}

/* The endpoint dir and what is in it (a socket, nothing deeper): ours, never followed. */
static void endpoint_dir_remove(struct daemon *d, const char *id)
{
	_cleanup_free_ char *dir = endpoint_dir(d, id, false, NULL);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *dp = dfd < 0 ? NULL : fdopendir(dfd);
	if (!dp && dfd >= 0)
		close(dfd);
	struct dirent *e;
	while (dp && (e = readdir(dp)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dfd, e->d_name, 0);
	if (dp)
		closedir(dp);
	rmdir(dir);
}

int live_make_durable(struct daemon *d, struct live *l, const char *policy_json, agentd_error *err)
{
	if (d->cfg.destroy_on_exit)
		return 0; /* it ends with the daemon, as it always did, even in a crash */
	_cleanup_free_ char *dir = endpoint_dir(d, l->id, true, err);
	if (!dir)
		return -1;
	char *token = NULL;
	agentd_error perr = {0};
	if (agentd_sandbox_persist(l->sb, dir, &token, &perr) < 0) {
		endpoint_dir_remove(d, l->id);
		if (perr.code == ENOTSUP)
			return 0; /* a process backend: it ends with the daemon */
		*err = perr;
		return agentd_error_prefix(err, "make sandbox %s durable", l->id);
	}
	int r = state_durable_set(d->st, l->id, token, policy_json, err);
	explicit_bzero(token, strlen(token));
	free(token);
	l->durable = r == 0;
	return r;
}

void live_forget_durable(struct daemon *d, struct live *l)
{
	if (l->durable)
		state_durable_clear(d->st, l->id);
	endpoint_dir_remove(d, l->id); /* also one a failed persist left */
}

void live_item_put(struct daemon *d, struct live *l, const char *kind, const char *key,
		   json_t *data)
{
	if (l->durable)
		state_item_put(d->st, l->id, kind, key, data);
	json_decref(data);
}

void live_item_del(struct daemon *d, struct live *l, const char *kind, const char *key)
{
	if (l->durable)
		state_item_del(d->st, l->id, kind, key);
}

/* ------------------------------------------------------------------ at start */

struct row {
	const char *id, *name, *backend, *state, *digest, *token, *spec;
	bool session;
	int64_t created_ms;
};

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* It cannot come back (ESRCH: its init died; EPERM: the proof failed, and the library
 * killed it through the cgroup its token names, never by a pid the endpoint gave): failed
 * with why, its sessions too, and whatever it left removed (its dir and cgroup through
 * agentd_cleanup_stale_sandbox, its endpoint). A failed proof is a security event. */
static void adopt_failed(struct daemon *d, const struct row *w, const agentd_error *err,
			 uint64_t dt)
{
	bool attack = err->code == EPERM;
	char reason[320];
	snprintf(reason, sizeof(reason), "%s at daemon restart: %.250s", attack ? "refused" : "gone",
		 err->msg);
	state_sandbox_set_state(d->st, w->id, "failed", reason, NULL);
	state_session_set_status_by_sandbox(d->st, w->id, "failed");
	state_durable_clear(d->st, w->id);
	endpoint_dir_remove(d, w->id);
	agentd_cleanup_stale_sandbox(d->work_root, w->id);
	audit(d, NULL, attack ? "security" : "adopt", w->id, NULL, w->digest, w->backend, reason,
	      dt);
	dlog(attack ? "error" : "warn", "msg=\"sandbox not adopted\" sandbox=%s reason=\"%s\"",
	     w->id, reason);
}

/* It did not answer as this build can adopt (a newer protocol, still owned by a live
 * process, a policy this build cannot parse): the library leaves it as it is, and so do we —
 * its row, token and dirs stay for a later daemon, which tries again; the reason says why. */
static void adopt_deferred(struct daemon *d, const struct row *w, const agentd_error *err,
			   uint64_t dt)
{
	char reason[320];
	snprintf(reason, sizeof(reason), "not adopted at daemon restart (left as it is): %.250s",
		 err->msg);
	state_sandbox_set_state(d->st, w->id, w->state, reason, NULL);
	audit(d, NULL, "adopt", w->id, NULL, w->digest, w->backend, reason, dt);
	dlog("error", "msg=\"sandbox not adopted\" sandbox=%s reason=\"%s\"", w->id, reason);
}

/* The foreground execs its init killed while nobody was connected: one record each. */
static void audit_lost_execs(struct daemon *d, struct live *l, const agentd_adoption *ad)
{
	for (size_t i = 0; i < ad->n_execs; i++) {
		const agentd_lost_exec *x = &ad->execs[i];
		char result[96];
		snprintf(result, sizeof(result), "cancelled (exit %d), reason: daemon restarted",
			 x->exit_code);
		audit(d, NULL, "exec", l->id, x->argv, l->digest, l->backend, result,
		      x->ended_at_ms > x->started_at_ms
			  ? (uint64_t)(x->ended_at_ms - x->started_at_ms)
			  : 0);
	}
}

/* The stored item of kind whose data's field (a pid) is pid (NULL: none). */
static json_t *item_of_pid(json_t *items, const char *kind, const char *field, int64_t pid)
{
	size_t i;
	json_t *o;
	json_array_foreach(items, i, o)
	{
		json_t *data = json_object_get(o, "data");
		if (!strcmp(str(o, "kind"), kind) &&
		    json_integer_value(json_object_get(data, field)) == pid)
			return o;
	}
	return NULL;
}

/* Each process handed over goes back where it was: a background process into the process
 * table, an interpreter under its context; one nothing names is killed. Items left
 * without a process (it ended and was reaped while away) are dropped. */
static void restore_items(struct daemon *d, struct live *l, agentd_adoption *ad, unsigned *n_procs,
			  unsigned *n_ctx, unsigned *n_ports)
{
	json_t *items = state_items(d->st, l->id);
	for (size_t i = 0; i < ad->n_processes; i++) {
		agentd_process *h = ad->processes[i];
		int64_t pid = agentd_process_pid(h);
		json_t *it = item_of_pid(items, "process", "pid", pid);
		int r = -1;
		if (it) {
			r = procs_adopt(d, l, h, json_object_get(it, "data"));
			*n_procs += r == 0;
		} else if ((it = item_of_pid(items, "context", "pid", pid))) {
			r = ctx_adopt(d, l, h, json_object_get(it, "data"));
			*n_ctx += r == 0;
		} else if (item_of_pid(items, "context", "feed_pid", pid)) {
			agentd_process_free(h); /* a context's feeder: it ended with its pipe */
		} else {
			dlog("warn", "msg=\"adopted process unknown: killed\" sandbox=%s pid=%lld",
			     l->id, (long long)pid);
			agentd_process_kill(h, NULL);
			agentd_process_free(h);
		}
		if (it)
			json_object_set_new(it, "restored", json_boolean(r == 0));
	}
	size_t k;
	json_t *o;
	json_array_foreach(items, k, o)
	{
		const char *kind = str(o, "kind");
		if (!strcmp(kind, "port"))
			*n_ports += ports_reopen(d, l, json_object_get(o, "data")) == 0;
		else if (!json_is_true(json_object_get(o, "restored")))
			state_item_del(d->st, l->id, kind, str(o, "key"));
	}
	json_decref(items);
}

/* One durable sandbox back into the live table. */
static void adopt_one(struct daemon *d, const struct row *w)
{
	uint64_t t0 = mono_ms();
	agentd_error err = {0};
	agentd_spec spec;
	memset(&spec, 0, sizeof(spec));
	agentd_sandbox *sb = NULL;
	agentd_backend *b = NULL;
	if (!w->spec || agentd_policy_parse(w->spec, strlen(w->spec), &spec, &err) < 0) {
		if (!err.msg[0])
			agentd_error_set(&err, EINVAL, "its policy is not stored");
		agentd_error_prefix(&err, "stored policy");
	} else if ((b = daemon_backend(d, w->backend, &err))) {
		agentd_backend_adopt(b, &spec, w->id, w->token, &sb, &err);
	}
	agentd_spec_free(&spec);
	if (!sb) {
		if (err.code == ESRCH || err.code == EPERM)
			adopt_failed(d, w, &err, mono_ms() - t0);
		else
			adopt_deferred(d, w, &err, mono_ms() - t0);
		return;
	}
	struct live *l = xcalloc(1, sizeof(*l));
	snprintf(l->id, sizeof(l->id), "%s", w->id);
	snprintf(l->backend, sizeof(l->backend), "%s", agentd_backend_name(b));
	snprintf(l->digest, sizeof(l->digest), "%s", w->digest ? w->digest : "");
	l->name = w->name ? xstrdup(w->name) : NULL;
	l->session = w->session;
	l->created_ms = w->created_ms;
	l->sb = sb;
	l->durable = true;
	l->state = w->state && !strcmp(w->state, "suspended") ? SB_SUSPENDED : SB_READY;
	expiry_load(d, l); /* issue 12: ttl: its deadlines, a passed one acted on at once */
	pthread_mutex_lock(&d->lock);
	l->next = d->head;
	d->head = l;
	d->n_live++;
	pthread_mutex_unlock(&d->lock);

	agentd_adoption ad = {0};
	unsigned np = 0, nc = 0, nport = 0;
	if (agentd_sandbox_adopted(sb, &ad, &err) < 0) {
		dlog("warn",
		     "msg=\"what ran across the restart is unknown\" sandbox=%s error=\"%s\"",
		     l->id, err.msg);
	} else {
		audit_lost_execs(d, l, &ad);
		restore_items(d, l, &ad, &np, &nc, &nport);
	}
	char result[160];
	snprintf(result, sizeof(result),
		 "ok: %u processes, %u contexts, %u ports restored; %zu execs lost", np, nc, nport,
		 ad.n_execs);
	agentd_adoption_free(&ad);
	audit(d, NULL, "adopt", l->id, NULL, l->digest, l->backend, result, mono_ms() - t0);
	dlog("info", "msg=\"sandbox adopted\" sandbox=%s state=%s %s", l->id,
	     sb_state_name(l->state), result);
}

void live_adopt_all(struct daemon *d)
{
	agentd_error err = {0};
	json_t *rows = state_durable_list(d->st, &err);
	if (!rows) {
		dlog("error", "msg=\"durable sandboxes not adopted\" error=\"%s\"", err.msg);
		return;
	}
	size_t i;
	json_t *o;
	json_array_foreach(rows, i, o)
	{
		struct row w = {
		    .id = str(o, "id"),
		    .name = str(o, "name"),
		    .backend = str(o, "backend"),
		    .state = str(o, "state"),
		    .digest = str(o, "policy_digest"),
		    .token = str(o, "durable_token"),
		    .spec = str(o, "durable_spec"),
		    .session = json_integer_value(json_object_get(o, "session")) != 0,
		    .created_ms = json_integer_value(json_object_get(o, "created_ms")),
		};
		if (w.id && api_valid_id(w.id) && w.backend && w.token)
			adopt_one(d, &w);
	}
	json_decref(rows);
}

/* ------------------------------------------------------------------ at stop */

void live_cancel_execs(struct daemon *d, const char *reason)
{
	uint64_t until = mono_ms() + 10000;
	pthread_mutex_lock(&d->lock);
	for (;;) {
		bool running = false;
		for (struct live *l = d->head; l; l = l->next)
			for (struct exec_slot *s = l->slots; s; s = s->next) {
				running = true;
				if (!s->cancel_reason) {
					s->cancel_reason = reason;
					exec_slot_cancel(s);
				}
			}
		if (!running || mono_ms() >= until)
			break;
		struct timespec ts = monotonic_after_ms(50);
		pthread_mutex_unlock(&d->lock);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
}

/* The first live sandbox that is_target accepts, referenced (NULL: none left). */
static struct live *next_to_stop(struct daemon *d, bool durable)
{
	pthread_mutex_lock(&d->lock);
	struct live *l = d->head;
	while (l &&
	       (l->state == SB_DESTROYING || l->state == SB_PROVISIONING || l->durable != durable))
		l = l->next;
	if (l)
		l->refs++;
	pthread_mutex_unlock(&d->lock);
	return l;
}

void live_stop_all(struct daemon *d, const char *reason)
{
	if (d->cfg.destroy_on_exit) {
		live_destroy_all(d, reason);
		return;
	}
	struct live *l;
	while ((l = next_to_stop(d, false)))
		live_destroy(d, l, reason, NULL);
	/* The durable ones stay as they are: their processes run on (their handles are not
	 * freed: that would kill them), their rows keep them for the next daemon; only the
	 * ports' listeners, which are ours, close. */
	while ((l = next_to_stop(d, true))) {
		pthread_mutex_lock(&d->lock);
		for (struct live **pp = &d->head; *pp; pp = &(*pp)->next)
			if (*pp == l) {
				*pp = l->next;
				break;
			}
		d->n_live--;
		d->left_running++;
		l->next = d->left;
		d->left = l;
		pthread_mutex_unlock(&d->lock);
		ports_release_all(d, l);
		dlog("info", "msg=\"sandbox left running\" sandbox=%s", l->id);
	}
	live_destroy_all(d, reason); /* a create that raced the drain */
}

void live_exec_mark_cancelled(json_t *result, const struct exec_slot *slot)
{
	const char *why = slot ? __atomic_load_n(&slot->cancel_reason, __ATOMIC_ACQUIRE) : NULL;
	if (!result || !why)
		return;
	json_object_set_new(result, "cancelled", json_true());
	json_object_set_new(result, "reason", json_string(why));
}
