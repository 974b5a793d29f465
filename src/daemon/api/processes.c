/* api/processes.c: /v1/sandboxes/{id}/processes — background processes: start, list,
 * inspect, signal, kill (DELETE), write stdin, read or follow output (docs/api.md#processes).
 * The table, the rings and the pump are live/procs.c's. */
#include "daemon/api/api.h"
#include "daemon/live/procs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* How long a stdin write waits for a process that does not read. */
#define STDIN_WAIT_MS 5000

static void create(struct daemon *d, struct live *l, struct api_request *r,
		   const struct client *c, struct reply *out)
{
	agentd_command cmd = {.argv = r->argv, .env = r->env, .workdir = r->workdir};
	agentd_error err = {0};
	if (agentd_sandbox_check_command(l->sb, &cmd, &err) < 0) {
		reply_agentd_error(out, 400, &err);
		return;
	}
	agentd_process_opts o = {.tty = r->tty,
				 .rows = (unsigned short)r->rows,
				 .cols = (unsigned short)r->cols,
				 .stdin_pipe = r->keep_stdin};
	struct proc *p = NULL;
	int status = procs_spawn(d, l, c, &cmd, &o, &p, &err);
	if (status) {
		reply_agentd_error(out, status, &err);
		return;
	}
	reply_json(out, 201, proc_to_json(p));
	proc_put(p);
}

static void list(struct live *l, struct reply *out)
{
	struct proc **v;
	size_t n = procs_list(l, &v);
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(a, proc_to_json(v[i]));
		proc_put(v[i]);
	}
	free(v);
	reply_json(out, 200, json_pack("{s:s, s:o, s:i}", "sandbox_id", l->id, "processes", a,
				       "max_processes", PROCS_MAX));
}

static void kill_one(struct daemon *d, struct live *l, struct proc *p, const struct client *c,
		     struct reply *out)
{
	agentd_error err = {0};
	if (procs_remove(d, l, p, c, &err) < 0) {
		reply_agentd_error(out, 0, &err);
		return;
	}
	reply_json(out, 200, proc_to_json(p));
}

static void signal_one(struct daemon *d, struct live *l, struct proc *p, int sig,
		       const struct client *c, struct reply *out)
{
	agentd_error err = {0};
	uint64_t t0 = mono_ms();
	int rc = proc_signal(p, sig, &err);
	const char *name = api_signal_name(sig);
	char result[160];
	if (rc < 0)
		snprintf(result, sizeof(result), "pid %lld: %.120s", (long long)proc_pid(p), err.msg);
	else
		snprintf(result, sizeof(result), "pid %lld: SIG%s", (long long)proc_pid(p),
			 name ? name : "RT");
	audit(d, c, "process_signal", l->id, NULL, l->digest, l->backend, result, mono_ms() - t0);
	if (rc < 0) {
		/* an ended process is not a missing one: a conflict with its state */
		reply_agentd_error(out, err.code == ESRCH ? 409 : 0, &err);
		return;
	}
	reply_json(out, 200, proc_to_json(p));
}

static void write_stdin(struct proc *p, struct api_request *r, struct reply *out)
{
	agentd_error err = {0};
	size_t written = 0;
	if (proc_write_stdin(p, r->stdin_data, r->stdin_len, r->close_stdin, STDIN_WAIT_MS,
			     &written, &err) < 0) {
		reply_agentd_error(out, 409, &err);
		return;
	}
	reply_json(out, 200, json_pack("{s:I, s:I, s:b}", "pid", (json_int_t)proc_pid(p),
				       "written", (json_int_t)written, "closed", r->close_stdin));
}

static void output(struct proc *p, struct api_request *r, const struct client *c,
		   struct reply *out)
{
	agentd_error err = {0};
	proc_get(p); /* the response's */
	out->mhd_response = procout_response_new(p, r, c->fd, &err);
	if (!out->mhd_response) {
		proc_put(p);
		reply_agentd_error(out, err.code == ERANGE || err.code == EINVAL ? 400 : 429, &err);
		return;
	}
	out->status = 200;
}

void api_processes(struct daemon *d, struct api_request *r, const struct client *c,
		   struct reply *out)
{
	struct live *l = api_live_or_reply(d, r->id, out);
	if (!l)
		return;
	if (r->route == ROUTE_PROCESS_CREATE) {
		create(d, l, r, c, out);
	} else if (r->route == ROUTE_PROCESS_LIST) {
		list(l, out);
	} else {
		struct proc *p = procs_find(l, r->pid);
		if (!p) {
			reply_error(out, 404, "no process %lld in sandbox %s", (long long)r->pid,
				    l->id);
			live_put(d, l);
			return;
		}
		switch (r->route) {
		case ROUTE_PROCESS_GET:
			reply_json(out, 200, proc_to_json(p));
			break;
		case ROUTE_PROCESS_DELETE:
			kill_one(d, l, p, c, out);
			break;
		case ROUTE_PROCESS_SIGNAL:
			signal_one(d, l, p, r->signal, c, out);
			break;
		case ROUTE_PROCESS_STDIN:
			write_stdin(p, r, out);
			break;
		case ROUTE_PROCESS_OUTPUT:
			output(p, r, c, out);
			break;
		default:
			reply_error(out, 500, "route %s not handled", api_route_name(r->route));
		}
		proc_put(p);
	}
	live_put(d, l);
}
