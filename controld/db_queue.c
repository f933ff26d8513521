/* controld: remote queue control in PostgreSQL (db_queue.h). */
#include "db_queue.h"
#include "db_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xmalloc.h"

void
db_queue_cmds_free(struct db_queue_cmds *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].host_id);
		free(c->v[i].op);
		free(c->v[i].arg);
		free(c->v[i].result);
	}
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

struct db_queue_arg {
	const char		*host_id, *op, *arg;
	uint32_t		 max;
	char			*list;		/* a text[] literal */
	const uint8_t		*result;
	size_t			 len;
	uint64_t		 id;
	int			 found;
	struct db_queue_cmds	*out;
};

/* The rows of res (id, host_id[, op, arg, max_messages | last_seen]). */
static void
db_queue_rows(PGresult *res, struct db_queue_cmds *out, int taken)
{
	int n = PQntuples(res);
	out->v = xcalloc((size_t)n + 1, sizeof(*out->v));
	out->n = (size_t)n;
	for (int r = 0; r < n; r++) {
		struct db_queue_cmd *c = &out->v[r];
		c->id = db_get_u64(res, r, 0);
		c->host_id = db_get_str(res, r, 1);
		if (taken) {
			c->op = db_get_str(res, r, 2);
			c->arg = db_get_str(res, r, 3);
			c->max_messages = (uint32_t)db_get_u64(res, r, 4);
		} else
			c->last_seen = db_get_i64(res, r, 2);
	}
}

static int
db_queue_insert_op(struct db *db, void *arg)
{
	struct db_queue_arg *a = arg;
	struct db_params p = { 0 };
	PGresult *res = NULL;
	char recent[24];
	int rc;

	snprintf(recent, sizeof(recent), "%d", DB_QUEUE_RECENT_SECONDS);
	dbp_str(&p, a->host_id);
	dbp_str(&p, a->op);
	dbp_str(&p, a->arg);
	dbp_u64(&p, a->max);
	dbp_str(&p, recent);
	if ((rc = db_cmd(db, "queue expire",
	    "DELETE FROM queue_commands WHERE created < now() - interval '1 day'", NULL)) != DB_OK)
		return rc;
	if ((rc = db_query(db, "queue insert",
	    "WITH t AS (SELECT host_id, coalesce(extract(epoch FROM last_seen)::bigint, 0) AS seen"
	    " FROM hosts WHERE ($1 = '' AND last_seen > now() - make_interval(secs => $5::int))"
	    " OR host_id = $1),"
	    " i AS (INSERT INTO queue_commands (host_id, op, arg, max_messages)"
	    " SELECT host_id, $2, $3, $4::int FROM t RETURNING id, host_id)"
	    " SELECT i.id, i.host_id, t.seen FROM i JOIN t USING (host_id) ORDER BY i.host_id",
	    &p, &res)) != DB_OK)
		return rc;
	db_queue_rows(res, a->out, 0);
	PQclear(res);
	return DB_OK;
}

int
db_queue_insert(struct db *db, const char *host_id, const char *op, const char *arg,
    uint32_t max_messages, struct db_queue_cmds *out)
{
	struct db_queue_arg a = { .host_id = host_id, .op = op, .arg = arg, .max = max_messages,
	    .out = out };
	db->err[0] = '\0';
	memset(out, 0, sizeof(*out));
	int rc = db_call(db, db_queue_insert_op, &a, DB_REPEAT_UNTIL_COMMIT);
	if (rc == DB_OK && out->n == 0 && host_id[0] != '\0') {
		db_seterr(db, "unknown host: %.200s", host_id);
		return DB_ENOTFOUND;
	}
	return rc;
}

static int
db_queue_take_op(struct db *db, void *arg)
{
	struct db_queue_arg *a = arg;
	struct db_params p = { 0 };
	PGresult *res = NULL;
	int rc;

	dbp_str(&p, a->list);
	if ((rc = db_query(db, "queue take",
	    "UPDATE queue_commands SET taken = now() WHERE taken IS NULL"
	    " AND host_id = ANY($1::text[]) AND created > now() - interval '1 minute'"
	    " RETURNING id, host_id, op, arg, max_messages", &p, &res)) != DB_OK)
		return rc;
	db_queue_rows(res, a->out, 1);
	PQclear(res);
	return DB_OK;
}

int
db_queue_take(struct db *db, char *const *hosts, size_t nhosts, struct db_queue_cmds *out)
{
	struct db_queue_arg a = { .list = db_array_literal(hosts, nhosts), .out = out };
	db->err[0] = '\0';
	memset(out, 0, sizeof(*out));
	int rc = db_call(db, db_queue_take_op, &a, DB_REPEAT_UNTIL_COMMIT);
	free(a.list);
	return rc;
}

static int
db_queue_done_op(struct db *db, void *arg)
{
	struct db_queue_arg *a = arg;
	struct db_params p = { 0 };
	PGresult *res = NULL;
	char *hex = xmalloc(2 * a->len + 1);
	int rc;

	for (size_t i = 0; i < a->len; i++)
		snprintf(hex + 2 * i, 3, "%02x", a->result[i]);
	hex[2 * a->len] = '\0';
	dbp_u64(&p, a->id);
	dbp_str(&p, a->host_id);
	dbp_str(&p, hex);
	rc = db_run(db, "queue done", "UPDATE queue_commands SET done = now(),"
	    " result = decode($3, 'hex') WHERE id = $1 AND host_id = $2 AND done IS NULL", &p,
	    PGRES_COMMAND_OK, &res);
	free(hex);
	if (rc != DB_OK)
		return rc;
	a->found = db_affected(res) > 0;
	PQclear(res);
	return DB_OK;
}

int
db_queue_done(struct db *db, const char *host_id, uint64_t id, const uint8_t *result,
    size_t len, int *found)
{
	struct db_queue_arg a = { .host_id = host_id, .id = id, .result = result, .len = len };
	db->err[0] = '\0';
	if (id > INT64_MAX) {
		db_seterr(db, "queue done: command id out of range");
		return DB_EINVAL;
	}
	int rc = db_call(db, db_queue_done_op, &a, DB_REPEAT_ALWAYS);
	*found = a.found;
	return rc;
}

static int
db_queue_hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0;
}

struct db_queue_results_arg {
	struct db_queue_cmds	*c;
	int			 final;
};

/* Withdraw the commands of c no host took. */
static int
db_queue_cancel(struct db *db, struct db_queue_cmds *c, const struct db_params *p)
{
	PGresult *res = NULL;
	int rc = db_query(db, "queue cancel", "UPDATE queue_commands SET taken = now(),"
	    " done = now() WHERE id = ANY($1::bigint[]) AND taken IS NULL RETURNING id", p, &res);
	if (rc != DB_OK)
		return rc;
	for (int r = 0; r < PQntuples(res); r++)
		for (size_t i = 0; i < c->n; i++)
			if (c->v[i].id == db_get_u64(res, r, 0))
				c->v[i].cancelled = 1;
	PQclear(res);
	return DB_OK;
}

static int
db_queue_results_op(struct db *db, void *arg)
{
	struct db_queue_results_arg *a = arg;
	struct db_queue_cmds *c = a->c;
	struct db_params p = { 0 };
	PGresult *res = NULL;
	struct buf ids;
	int rc;

	buf_init(&ids);
	buf_appendc(&ids, '{');
	for (size_t i = 0; i < c->n; i++)
		buf_printf(&ids, "%s%" PRIu64, i ? "," : "", c->v[i].id);
	buf_appends(&ids, "}");
	dbp_str(&p, ids.data);
	if (a->final && (rc = db_queue_cancel(db, c, &p)) != DB_OK) {
		buf_free(&ids);
		return rc;
	}
	rc = db_query(db, "queue results", "SELECT id, taken IS NOT NULL, done IS NOT NULL,"
	    " coalesce(encode(result, 'hex'), '') FROM queue_commands WHERE id = ANY($1::bigint[])",
	    &p, &res);
	buf_free(&ids);
	if (rc != DB_OK)
		return rc;
	for (int r = 0; r < PQntuples(res); r++) {
		uint64_t id = db_get_u64(res, r, 0);
		for (size_t i = 0; i < c->n; i++) {
			struct db_queue_cmd *q = &c->v[i];
			if (q->id != id || q->cancelled)
				continue;
			q->taken = PQgetvalue(res, r, 1)[0] == 't';
			q->done = PQgetvalue(res, r, 2)[0] == 't';
			const char *hex = PQgetvalue(res, r, 3);
			free(q->result);
			q->result_len = strlen(hex) / 2;
			q->result = xmalloc(q->result_len + 1);
			for (size_t k = 0; k < q->result_len; k++)
				q->result[k] = (uint8_t)(db_queue_hexval(hex[2 * k]) << 4 |
				    db_queue_hexval(hex[2 * k + 1]));
		}
	}
	PQclear(res);
	return DB_OK;
}

int
db_queue_results(struct db *db, struct db_queue_cmds *c, int final)
{
	struct db_queue_results_arg a = { c, final };
	db->err[0] = '\0';
	return c->n ? db_call(db, db_queue_results_op, &a, DB_REPEAT_ALWAYS) : DB_OK;
}
