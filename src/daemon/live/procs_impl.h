/* procs_impl.h: a background process's insides, shared by the table and its handle's uses
 * (procs.c) and the output thread with the rings (pump.c); nothing else includes it. */
#ifndef AGENTD_PROCS_IMPL_H
#define AGENTD_PROCS_IMPL_H

#include "daemon/live/procs.h"

/* The last max bytes of a stream; byte o (start <= o < end) is at buf[o % cap]. The buffer
 * grows on demand up to max, so a quiet process holds little. */
struct ring {
	uint8_t *buf;
	size_t cap, max;
	uint64_t start, end;
	bool eof;
};

enum { SRC_STDOUT, SRC_STDERR, SRC_WAIT };

/* What an epoll event points at: one fd of one process. */
struct pump_src {
	struct proc *p;
	int which;
	int fd;			/* -1: not (or no longer) registered */
};

struct proc {
	unsigned refs;		/* atomic */
	int64_t pid;
	char **argv;
	bool tty, has_stdin;
	/* h and what is done with it: h_mu (after pump.mu). NULL once released. */
	pthread_mutex_t h_mu;
	agentd_process *h;
	agentd_usage usage;	/* what it used, as of its handle's release */
	bool has_usage;
	/* stdin writers, one at a time (before h_mu) */
	pthread_mutex_t in_mu;
	bool stdin_closed;
	/* output and state: mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* done */
	struct ring out[2];
	bool done;		/* ended, and what it had written then is in the rings */
	agentd_process_status st;
	const char *end_reason;	/* why the daemon ended it: NULL, "killed", "sandbox destroyed" */
	int subs[PROC_MAX_SUBSCRIBERS];
	size_t n_subs;
	/* the pump's (pump.mu) */
	struct pump_src src[3];
	bool detached;
	struct proc *grave_next;
};

/* ------------------------------------------------------------------ pump.c */
/* Register p's stdout, stderr and end; the pump holds a reference. On failure p is
 * detached already (its release has nothing of the pump's to undo). */
int pump_attach(struct proc *p, agentd_error *err);
/* Unregister p (idempotent): the pump reads it no more. */
void pump_detach(struct proc *p);
/* Wake every follower of p (p->mu held). */
void proc_notify(struct proc *p);

#endif
