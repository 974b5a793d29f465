/* durable.c: what the state database keeps of a durable sandbox for the daemon that adopts
 * it after a restart — its token and policy on its row, and the items it runs. */
#include "daemon/store/store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

/* Run sql with its text arguments (NULL = SQL NULL) on the locked connection: 0 or -1. */
static int run(struct state *st, agentd_error *err, const char *sql, int n, ...)
{
	sqlite3 *db = state_lock_db(st);
	sqlite3_stmt *s = NULL;
	int r = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
		va_list ap;
		va_start(ap, n);
		for (int i = 0; i < n; i++) {
			const char *v = va_arg(ap, const char *);
			if (v)
				sqlite3_bind_text(s, i + 1, v, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(s, i + 1);
		}
		va_end(ap);
		r = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
	}
	if (r < 0)
		agentd_error_set(err, EIO, "state: %s", sqlite3_errmsg(db));
	sqlite3_finalize(s);
	state_unlock_db(st);
	return r;
}

int state_durable_set(struct state *st, const char *id, const char *token, const char *spec_json,
		      agentd_error *err)
{
	return run(st, err, "UPDATE sandboxes SET durable_token = ?, durable_spec = ? WHERE id = ?",
		   3, token, spec_json, id);
}

int state_durable_clear(struct state *st, const char *id)
{
	int r = run(st, NULL, "DELETE FROM durable_items WHERE sandbox_id = ?", 1, id);
	return run(st, NULL,
		   "UPDATE sandboxes SET durable_token = NULL, durable_spec = NULL WHERE id = ?", 1,
		   id) < 0
		   ? -1
		   : r;
}

int state_item_put(struct state *st, const char *id, const char *kind, const char *key,
		   json_t *data)
{
	char *s = json_dumps(data, JSON_COMPACT);
	int r = run(st, NULL,
		    "INSERT OR REPLACE INTO durable_items(sandbox_id, kind, key, data)"
		    " VALUES(?, ?, ?, ?)",
		    4, id, kind, key, s ? s : "{}");
	free(s);
	return r;
}

int state_item_del(struct state *st, const char *id, const char *kind, const char *key)
{
	return run(st, NULL,
		   "DELETE FROM durable_items WHERE sandbox_id = ? AND kind = ? AND key = ?", 3, id,
		   kind, key);
}

/* Every row of sql (one text argument or none) as an object by column name. */
static json_t *select_rows(struct state *st, const char *sql, const char *arg)
{
	sqlite3 *db = state_lock_db(st);
	sqlite3_stmt *s = NULL;
	json_t *a = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
		if (arg)
			sqlite3_bind_text(s, 1, arg, -1, SQLITE_TRANSIENT);
		a = json_array();
		while (sqlite3_step(s) == SQLITE_ROW) {
			json_t *o = json_object();
			for (int i = 0; i < sqlite3_column_count(s); i++) {
				json_t *v =
				    sqlite3_column_type(s, i) == SQLITE_INTEGER
					? json_integer(sqlite3_column_int64(s, i))
				    : sqlite3_column_type(s, i) == SQLITE_NULL
					? json_null()
					: json_string((const char *)sqlite3_column_text(s, i));
				json_object_set_new(o, sqlite3_column_name(s, i),
						    v ? v : json_null());
			}
			json_array_append_new(a, o);
		}
	}
	sqlite3_finalize(s);
	state_unlock_db(st);
	return a;
}

json_t *state_durable_list(struct state *st, agentd_error *err)
{
	json_t *a =
	    select_rows(st,
			"SELECT id, name, backend, state, session, created_ms, policy_digest,"
			" durable_token, durable_spec FROM sandboxes WHERE durable_token IS"
			" NOT NULL AND state NOT IN ('destroyed', 'failed') ORDER BY created_ms",
			NULL);
	if (!a)
		agentd_error_set(err, EIO, "state: list the durable sandboxes");
	return a;
}

json_t *state_items(struct state *st, const char *id)
{
	json_t *a = select_rows(st,
				"SELECT kind, key, data FROM durable_items WHERE sandbox_id = ?"
				" ORDER BY rowid",
				id);
	if (!a)
		return json_array();
	size_t i;
	json_t *o;
	json_array_foreach(a, i, o)
	{
		json_t *d = json_loads(json_string_value(json_object_get(o, "data")), 0, NULL);
		json_object_set_new(o, "data", d ? d : json_object());
	}
	return a;
}
