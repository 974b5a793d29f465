/* audit.c: the audit log's rows and their hash chain — each row's sha256 covers its content
 * and the previous row's hash; sealed segments (a row range with its last hash, chained seal
 * to seal); retention that prunes the oldest sealed segments' rows under the database's
 * budget and keeps their seals; and the verification that recomputes all of it. */
#include "daemon/store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The columns a row's hash covers, in the order they are hashed. */
#define AUDIT_COLUMNS                                                                      \
	"seq, ts_ms, client_uid, client, action, sandbox_id, argv, policy_digest, backend, " \
	"result, duration_ms, count, first_ms, last_ms"
#define AUDIT_NCOLS 14
/* A full budget holds about this many segments: the unit retention deletes. */
#define AUDIT_SEGMENTS_PER_BUDGET 16
/* Pruning goes down to this share of the budget, so it does not run at every seal. */
#define AUDIT_PRUNE_TO_PERCENT 75

struct audit_chain {
	int64_t last_seq;
	uint8_t last_hash[32];		/* of row last_seq (zeros before the first row) */
	int64_t segment;		/* the last seal's number, 0 before the first */
	int64_t sealed_seq;		/* its last row */
	uint8_t seal_hash[32];
	int64_t open_bytes;		/* hashed bytes of the rows after sealed_seq */
	uint64_t budget;
	int64_t warned_ms;
	void (*notify)(void *arg, const char *msg);
	void *notify_arg;
};

/* A column value as hashed: integer, NULL, text, or anything else (as its text). */
struct val {
	char type;			/* 'i', 'n', 's', 'x' */
	int64_t i;
	const char *s;
	size_t n;
};

struct canon {
	uint8_t *buf;
	size_t len, cap;
};

static void canon_put(struct canon *c, const void *p, size_t n)
{
	if (c->len + n > c->cap) {
		c->cap = (c->len + n) * 2 + 256;
		c->buf = xrealloc(c->buf, c->cap);
	}
	memcpy(c->buf + c->len, p, n);
	c->len += n;
}

/* Each value typed and length-prefixed, so no two rows encode alike. */
static void canon_val(struct canon *c, const struct val *v)
{
	char head[48];
	int n;
	if (v->type == 'i')
		n = snprintf(head, sizeof(head), "i%" PRId64 ";", v->i);
	else if (v->type == 'n')
		n = snprintf(head, sizeof(head), "n");
	else
		n = snprintf(head, sizeof(head), "%c%zu:", v->type, v->n);
	canon_put(c, head, (size_t)n);
	if (v->type == 's' || v->type == 'x')
		canon_put(c, v->s, v->n);
}

/* sha256(prev || the values); returns how many bytes were hashed. */
static size_t hash_vals(const uint8_t prev[32], const struct val *v, int n, uint8_t out[32])
{
	struct canon c = {0};
	canon_put(&c, prev, 32);
	for (int i = 0; i < n; i++)
		canon_val(&c, &v[i]);
	sha256(c.buf, c.len, out);
	size_t len = c.len;
	free(c.buf);
	return len;
}

static void hex(const uint8_t h[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static bool unhex(const char *s, uint8_t out[32])
{
	if (!s || strlen(s) != 64)
		return false;
	for (int i = 0; i < 32; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return false;
		out[i] = (uint8_t)v;
	}
	return true;
}

static struct val vint(int64_t i)
{
	return (struct val){.type = 'i', .i = i};
}

static struct val vtext(const char *s)
{
	return s ? (struct val){.type = 's', .s = s, .n = strlen(s)} : (struct val){.type = 'n'};
}

static struct val vcol(sqlite3_stmt *s, int i)
{
	switch (sqlite3_column_type(s, i)) {
	case SQLITE_INTEGER:
		return vint(sqlite3_column_int64(s, i));
	case SQLITE_NULL:
		return (struct val){.type = 'n'};
	default: {
		char type = sqlite3_column_type(s, i) == SQLITE_TEXT ? 's' : 'x';
		const char *t = (const char *)sqlite3_column_text(s, i);
		return (struct val){.type = type, .s = t ? t : "", .n = (size_t)sqlite3_column_bytes(s, i)};
	}
	}
}

static int sql_fail(sqlite3 *db, agentd_error *err, const char *what)
{
	return agentd_error_set(err, EIO, "audit: %s: %s", what, sqlite3_errmsg(db));
}

static int64_t sql_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static void notify(struct audit_chain *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notify(struct audit_chain *ch, const char *fmt, ...)
{
	if (!ch->notify)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ch->notify(ch->notify_arg, msg);
}

/* ------------------------------------------------------------------ seals */

/* A seal's hash covers the previous seal's hash and every field of this one. */
static void seal_hash(const uint8_t prev[32], sqlite3_stmt *s, uint8_t out[32])
{
	/* columns 0..7: segment, first_seq, last_seq, rows, bytes, first_ms, last_ms, head;
	 * 10: sealed_ms */
	struct val v[9];
	for (int i = 0; i < 8; i++)
		v[i] = vcol(s, i);
	v[8] = vcol(s, 10);
	hash_vals(prev, v, 9, out);
}

#define SEAL_COLUMNS                                                                       \
	"segment, first_seq, last_seq, rows, bytes, first_ms, last_ms, head, prev, hash, "  \
	"sealed_ms, pruned_ms"

/* Seal the rows after the last seal as the next segment (with the lock held). */
static int seal(sqlite3 *db, struct audit_chain *ch, agentd_error *err)
{
	if (ch->last_seq == ch->sealed_seq)
		return 0;
	int64_t seg = ch->segment + 1, first = ch->sealed_seq + 1, t = now_ms_realtime();
	char head[65], prev[65], hh[65];
	hex(ch->last_hash, head);
	hex(ch->seal_hash, prev);
	sqlite3_stmt *s = NULL, *q = NULL;
	uint8_t h[32];
	int r = -1;
	if (sqlite3_prepare_v2(db, "SELECT ?, ?, ?, ?, ?, min(ts_ms), max(ts_ms), ?, ?, ?, ?"
			       " FROM audit WHERE seq BETWEEN ? AND ?", -1, &q, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(q, 1, seg);
	sqlite3_bind_int64(q, 2, first);
	sqlite3_bind_int64(q, 3, ch->last_seq);
	sqlite3_bind_int64(q, 4, ch->last_seq - first + 1);
	sqlite3_bind_int64(q, 5, ch->open_bytes);
	sqlite3_bind_text(q, 6, head, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 7, prev, -1, SQLITE_STATIC);
	sqlite3_bind_null(q, 8);
	sqlite3_bind_int64(q, 9, t);
	sqlite3_bind_int64(q, 10, first);
	sqlite3_bind_int64(q, 11, ch->last_seq);
	if (sqlite3_step(q) != SQLITE_ROW)
		goto out;
	/* the seal's columns as seal_hash reads them back from audit_seals */
	seal_hash(ch->seal_hash, q, h);
	hex(h, hh);
	if (sqlite3_prepare_v2(db, "INSERT INTO audit_seals(" SEAL_COLUMNS ") VALUES(?, ?, ?, ?,"
			       " ?, ?, ?, ?, ?, ?, ?, NULL)", -1, &s, NULL) != SQLITE_OK)
		goto out;
	for (int i = 0; i < 11; i++) {
		if (i == 9)
			sqlite3_bind_text(s, 10, hh, -1, SQLITE_STATIC);
		else if (sqlite3_column_type(q, i) == SQLITE_INTEGER)
			sqlite3_bind_int64(s, i + 1, sqlite3_column_int64(q, i));
		else if (sqlite3_column_type(q, i) == SQLITE_NULL)
			sqlite3_bind_null(s, i + 1);
		else
			sqlite3_bind_text(s, i + 1, (const char *)sqlite3_column_text(q, i), -1,
					  SQLITE_TRANSIENT);
	}
	if (sqlite3_step(s) != SQLITE_DONE)
		goto out;
	r = 0;
	notify(ch, "audit segment %" PRId64 " sealed: records %" PRId64 "..%" PRId64
		   ", head sha256 %s, seal %s", seg, first, ch->last_seq, head, hh);
	ch->segment = seg;
	ch->sealed_seq = ch->last_seq;
	memcpy(ch->seal_hash, h, 32);
	ch->open_bytes = 0;
out:
	if (r < 0)
		sql_fail(db, err, "seal a segment");
	sqlite3_finalize(q);
	sqlite3_finalize(s);
	return r;
}

static int64_t used_bytes(sqlite3 *db)
{
	return (sql_int(db, "PRAGMA page_count") - sql_int(db, "PRAGMA freelist_count")) *
	       sql_int(db, "PRAGMA page_size");
}

/* Delete the rows of the oldest sealed segment not yet pruned, keeping its seal.
 * 1 = pruned one, 0 = none left, -1 = error. */
static int prune_oldest(sqlite3 *db, struct audit_chain *ch, agentd_error *err)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "SELECT segment, first_seq, last_seq FROM audit_seals WHERE"
			       " pruned_ms IS NULL ORDER BY segment LIMIT 1", -1, &s, NULL) != SQLITE_OK)
		return sql_fail(db, err, "prune");
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_finalize(s);
		return 0;
	}
	int64_t seg = sqlite3_column_int64(s, 0), first = sqlite3_column_int64(s, 1),
		last = sqlite3_column_int64(s, 2);
	sqlite3_finalize(s);
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "BEGIN IMMEDIATE; UPDATE audit_seals SET pruned_ms = %" PRId64 " WHERE segment ="
		 " %" PRId64 "; DELETE FROM audit WHERE seq BETWEEN %" PRId64 " AND %" PRId64 ";"
		 " COMMIT;", now_ms_realtime(), seg, first, last);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		sql_fail(db, err, "prune");
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	notify(ch, "audit segment %" PRId64 " pruned (records %" PRId64 "..%" PRId64
		   "): the database is over its budget of %" PRIu64 " bytes; its seal is kept",
	       seg, first, last, ch->budget);
	return 1;
}

/* After an append: seal a full segment, then prune the oldest ones while over budget. */
static void maintain(sqlite3 *db, struct audit_chain *ch)
{
	agentd_error err = {0};
	if (ch->open_bytes < (int64_t)(ch->budget / AUDIT_SEGMENTS_PER_BUDGET))
		return;
	if (seal(db, ch, &err) < 0) {
		notify(ch, "%s", err.msg);
		return;
	}
	int64_t target = (int64_t)(ch->budget / 100 * AUDIT_PRUNE_TO_PERCENT);
	int64_t used = used_bytes(db);
	if (used <= (int64_t)ch->budget)
		return;
	int r = 1;
	while (used > target && (r = prune_oldest(db, ch, &err)) > 0)
		used = used_bytes(db);
	if (r < 0)
		notify(ch, "%s", err.msg);
	else if (used > (int64_t)ch->budget && now_ms_realtime() - ch->warned_ms > 60000) {
		ch->warned_ms = now_ms_realtime();
		notify(ch, "the state database uses %" PRId64 " bytes, over its budget of %" PRIu64
			   ", with no sealed audit segment left to prune", used, ch->budget);
	}
}

/* ------------------------------------------------------------------ append */

void state_audit_set_budget(struct state *st, uint64_t max_bytes,
			    void (*on_event)(void *arg, const char *msg), void *arg)
{
	sqlite3 *db = state_lock_db(st);
	struct audit_chain *ch = *state_audit_chain(st);
	ch->budget = max_bytes;
	ch->notify = on_event;
	ch->notify_arg = arg;
	if (ch->budget)
		maintain(db, ch);
	state_unlock_db(st);
}

int state_audit_append(struct state *st, const struct audit_record *a, agentd_error *err)
{
	sqlite3 *db = state_lock_db(st);
	struct audit_chain *ch = *state_audit_chain(st);
	struct val v[AUDIT_NCOLS] = {
		vint(ch->last_seq + 1), vint(now_ms_realtime()), vint(a->uid), vtext(a->client),
		vtext(a->action), vtext(a->sandbox_id), vtext(a->argv_json),
		vtext(a->policy_digest), vtext(a->backend), vtext(a->result),
		vint((int64_t)a->duration_ms), vint(a->count ? (int64_t)a->count : 1),
		a->first_ms ? vint(a->first_ms) : (struct val){.type = 'n'},
		a->last_ms ? vint(a->last_ms) : (struct val){.type = 'n'},
	};
	uint8_t h[32];
	size_t bytes = hash_vals(ch->last_hash, v, AUDIT_NCOLS, h);
	char hh[65];
	hex(h, hh);
	sqlite3_stmt *s;
	int r = -1;
	if (sqlite3_prepare_v2(db, "INSERT INTO audit(" AUDIT_COLUMNS ", hash) VALUES(?, ?, ?, ?,"
			       " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &s, NULL) == SQLITE_OK) {
		for (int i = 0; i < AUDIT_NCOLS; i++) {
			if (v[i].type == 'i')
				sqlite3_bind_int64(s, i + 1, v[i].i);
			else if (v[i].type == 's')
				sqlite3_bind_text(s, i + 1, v[i].s, (int)v[i].n, SQLITE_STATIC);
			else
				sqlite3_bind_null(s, i + 1);
		}
		sqlite3_bind_text(s, AUDIT_NCOLS + 1, hh, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_DONE)
			r = 0;
	}
	if (r < 0)
		sql_fail(db, err, "append audit record");
	sqlite3_finalize(s);
	if (!r) {
		ch->last_seq++;
		memcpy(ch->last_hash, h, 32);
		ch->open_bytes += (int64_t)bytes;
		if (ch->budget)
			maintain(db, ch);
	}
	state_unlock_db(st);
	return r;
}

/* ------------------------------------------------------------------ open */

/* The rows after the last seal: their size, the chain's head, and a hash for each row an
 * older agentd wrote without one (the no-update trigger lets a NULL hash be set once). */
static int load_open_rows(sqlite3 *db, struct audit_chain *ch, agentd_error *err)
{
	sqlite3_stmt *s, *u = NULL;
	if (sqlite3_prepare_v2(db, "SELECT " AUDIT_COLUMNS ", hash FROM audit WHERE seq > ?"
			       " ORDER BY seq", -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "UPDATE audit SET hash = ? WHERE seq = ? AND hash IS NULL", -1,
			       &u, NULL) != SQLITE_OK) {
		sqlite3_finalize(s);
		return sql_fail(db, err, "read the audit chain");
	}
	sqlite3_bind_int64(s, 1, ch->sealed_seq);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct val v[AUDIT_NCOLS];
		for (int i = 0; i < AUDIT_NCOLS; i++)
			v[i] = vcol(s, i);
		uint8_t h[32];
		ch->open_bytes += (int64_t)hash_vals(ch->last_hash, v, AUDIT_NCOLS, h);
		ch->last_seq = v[0].i;
		const char *stored = (const char *)sqlite3_column_text(s, AUDIT_NCOLS);
		if (stored && unhex(stored, ch->last_hash))
			continue; /* a changed row is for verify to find, not to re-chain */
		memcpy(ch->last_hash, h, 32);
		char hh[65];
		hex(h, hh);
		sqlite3_reset(u);
		sqlite3_bind_text(u, 1, hh, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(u, 2, ch->last_seq);
		if (sqlite3_step(u) != SQLITE_DONE)
			break;
	}
	sqlite3_finalize(s);
	sqlite3_finalize(u);
	return rc == SQLITE_DONE ? 0 : sql_fail(db, err, "chain the audit rows");
}

int audit_chain_open(struct state *st, agentd_error *err)
{
	sqlite3 *db = state_lock_db(st);
	struct audit_chain *ch = xcalloc(1, sizeof(*ch));
	*state_audit_chain(st) = ch;
	int r = 0;
	/* the WAL is truncated back to 4 MiB after a checkpoint: part of the budget's slack */
	sqlite3_exec(db, "PRAGMA journal_size_limit = 4194304", NULL, NULL, NULL);
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "SELECT segment, last_seq, head, hash FROM audit_seals ORDER BY"
			       " segment DESC LIMIT 1", -1, &s, NULL) != SQLITE_OK) {
		r = sql_fail(db, err, "read the audit seals");
		goto out;
	}
	if (sqlite3_step(s) == SQLITE_ROW) {
		ch->segment = sqlite3_column_int64(s, 0);
		ch->sealed_seq = ch->last_seq = sqlite3_column_int64(s, 1);
		unhex((const char *)sqlite3_column_text(s, 2), ch->last_hash);
		unhex((const char *)sqlite3_column_text(s, 3), ch->seal_hash);
	}
	sqlite3_finalize(s);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
	    load_open_rows(db, ch, err) < 0 ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		r = err->msg[0] ? -1 : sql_fail(db, err, "chain the audit rows");
	}
out:
	state_unlock_db(st);
	return r;
}

void audit_chain_close(struct state *st)
{
	struct audit_chain **ch = state_audit_chain(st);
	free(*ch);
	*ch = NULL;
}

/* ------------------------------------------------------------------ verify */

struct verify {
	sqlite3 *db;
	json_t *report;
	int64_t records, first_seq, head_seq;
	uint8_t chain[32];
};

static json_t *broken(struct verify *v, int64_t seq, int64_t segment, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static json_t *broken(struct verify *v, int64_t seq, int64_t segment, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *e = json_pack("{s:s}", "message", msg);
	if (seq > 0)
		json_object_set_new(e, "seq", json_integer(seq));
	if (segment > 0)
		json_object_set_new(e, "segment", json_integer(segment));
	json_object_set_new(v->report, "ok", json_false());
	json_object_set_new(v->report, "error", e);
	return NULL;
}

/* Recompute rows from..to on the running chain; 0 = intact (count in *n), -1 = broken. */
static int verify_rows(struct verify *v, int64_t from, int64_t to, int64_t segment, int64_t *n)
{
	sqlite3_stmt *s;
	*n = 0;
	if (sqlite3_prepare_v2(v->db, "SELECT " AUDIT_COLUMNS ", hash FROM audit WHERE seq BETWEEN"
			       " ? AND ? ORDER BY seq", -1, &s, NULL) != SQLITE_OK) {
		broken(v, 0, segment, "cannot read the audit rows: %s", sqlite3_errmsg(v->db));
		return -1;
	}
	sqlite3_bind_int64(s, 1, from);
	sqlite3_bind_int64(s, 2, to);
	int64_t expect = from;
	int r = 0;
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct val val[AUDIT_NCOLS];
		for (int i = 0; i < AUDIT_NCOLS; i++)
			val[i] = vcol(s, i);
		int64_t seq = val[0].i;
		if (seq != expect) {
			broken(v, expect, segment, "records %" PRId64 "..%" PRId64 " are missing",
			       expect, seq - 1);
			r = -1;
			break;
		}
		uint8_t h[32], stored[32];
		hash_vals(v->chain, val, AUDIT_NCOLS, h);
		if (!unhex((const char *)sqlite3_column_text(s, AUDIT_NCOLS), stored) ||
		    memcmp(h, stored, 32)) {
			broken(v, seq, segment, "record %" PRId64 " was changed: its content or hash"
			       " does not match the chain", seq);
			r = -1;
			break;
		}
		memcpy(v->chain, h, 32);
		if (!v->first_seq)
			v->first_seq = seq;
		v->head_seq = seq;
		expect++;
		(*n)++;
	}
	sqlite3_finalize(s);
	v->records += *n;
	return r;
}

/* Each seal chains to the previous one; a kept segment's rows end on its head hash. */
static int verify_seals(struct verify *v, int64_t *next_seq)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(v->db, "SELECT " SEAL_COLUMNS " FROM audit_seals ORDER BY segment",
			       -1, &s, NULL) != SQLITE_OK) {
		broken(v, 0, 0, "cannot read the audit seals: %s", sqlite3_errmsg(v->db));
		return -1;
	}
	uint8_t prev[32] = {0};
	int64_t expect_seg = 1, pruned_first = 0, pruned_last = 0, segments = 0;
	*next_seq = 1;
	int r = 0;
	while (r == 0 && sqlite3_step(s) == SQLITE_ROW) {
		int64_t seg = sqlite3_column_int64(s, 0), first = sqlite3_column_int64(s, 1),
			last = sqlite3_column_int64(s, 2), rows = sqlite3_column_int64(s, 3);
		uint8_t h[32], stored[32], head[32], sprev[32];
		seal_hash(prev, s, h);
		if (seg != expect_seg) {
			r = -1;
			broken(v, 0, expect_seg, "the seal of segment %" PRId64 " is missing",
			       expect_seg);
		} else if (!unhex((const char *)sqlite3_column_text(s, 8), sprev) ||
			   memcmp(sprev, prev, 32) ||
			   !unhex((const char *)sqlite3_column_text(s, 9), stored) ||
			   memcmp(h, stored, 32) ||
			   !unhex((const char *)sqlite3_column_text(s, 7), head) ||
			   first != *next_seq) {
			r = -1;
			broken(v, 0, seg, "the seal of segment %" PRId64 " was changed", seg);
		} else if (sqlite3_column_type(s, 11) != SQLITE_NULL && pruned_last != seg - 1) {
			/* retention prunes the oldest first: a gap is a segment emptied by hand */
			r = -1;
			broken(v, 0, seg, "segment %" PRId64 " is marked pruned after the kept"
			       " segment %" PRId64 ": retention prunes only the oldest", seg, seg - 1);
		} else if (sqlite3_column_type(s, 11) != SQLITE_NULL) {
			if (!pruned_first)
				pruned_first = seg;
			pruned_last = seg;
			memcpy(v->chain, head, 32); /* the next segment chains from here */
		} else {
			int64_t n;
			if (verify_rows(v, first, last, seg, &n) < 0) {
				r = -1;
			} else if (n != rows || memcmp(v->chain, head, 32)) {
				r = -1;
				broken(v, first + n, seg, "segment %" PRId64 " has %" PRId64 " of its %"
				       PRId64 " records, or they do not end on its sealed hash",
				       seg, n, rows);
			}
		}
		memcpy(prev, h, 32);
		*next_seq = last + 1;
		v->head_seq = last;
		expect_seg++;
		segments++;
	}
	sqlite3_finalize(s);
	json_object_set_new(v->report, "segments", json_integer(segments));
	json_object_set_new(v->report, "pruned", pruned_first ? json_pack("[I, I]",
			    (json_int_t)pruned_first, (json_int_t)pruned_last) : json_null());
	return r;
}

json_t *state_audit_verify(const char *db_path, agentd_error *err)
{
	struct verify v = {0};
	if (sqlite3_open_v2(db_path, &v.db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		agentd_error_set(err, EIO, "audit verify: open %s: %s", db_path,
				 v.db ? sqlite3_errmsg(v.db) : "out of memory");
		sqlite3_close(v.db);
		return NULL;
	}
	sqlite3_busy_timeout(v.db, 5000);
	if (sql_int(v.db, "PRAGMA user_version") < 3) {
		agentd_error_set(err, EPROTO, "audit verify: %s has no audit chain (schema older"
				 " than 3: start agentd serve on it once to upgrade)", db_path);
		sqlite3_close(v.db);
		return NULL;
	}
	/* one read transaction: the seals and rows of a single moment */
	sqlite3_exec(v.db, "BEGIN", NULL, NULL, NULL);
	v.report = json_pack("{s:b}", "ok", true);
	int64_t next = 1, n = 0;
	if (verify_seals(&v, &next) == 0)
		verify_rows(&v, next, INT64_MAX, 0, &n);
	char head[65];
	hex(v.chain, head);
	json_object_set_new(v.report, "records", json_integer(v.records));
	json_object_set_new(v.report, "first_seq", json_integer(v.first_seq));
	json_object_set_new(v.report, "head_seq", json_integer(v.head_seq));
	json_object_set_new(v.report, "head", json_string(head));
	sqlite3_exec(v.db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(v.db);
	return v.report;
}
