/* controld: the deliveries of the TLS reports we send (db_rptsend.h). */
#include "db_rptsend.h"
#include "db_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

int
db_rptsend_lock(struct db *db, int *got)
{
	PGresult *res;
	int rc;

	*got = 0;
	if ((rc = db_query(db, "reports: lock", "SELECT pg_try_advisory_lock(" DB_RPTSEND_LOCK ")",
	    NULL, &res)) != DB_OK)
		return rc;
	*got = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (*got)
		db_session_lock(db, "reports");
	return DB_OK;
}

void
db_rptsend_unlock(struct db *db)
{
	PGresult *res;

	db_session_lock(db, NULL);
	if (db_query(db, "reports: unlock", "SELECT pg_advisory_unlock(" DB_RPTSEND_LOCK ")",
	    NULL, &res) == DB_OK)
		PQclear(res);
}

int
db_rptsend_day_planned(struct db *db, time_t day, int *planned)
{
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	dbp_i64(&p, (int64_t)day);
	if ((rc = db_query(db, "reports: day planned", "SELECT 1 FROM report_days"
	    " WHERE day = (to_timestamp($1) AT TIME ZONE 'UTC')::date", &p, &res)) != DB_OK)
		return rc;
	*planned = PQntuples(res) > 0;
	PQclear(res);
	return DB_OK;
}

int
db_rptsend_day_mark(struct db *db, time_t day)
{
	struct db_params p = { 0 };

	dbp_i64(&p, (int64_t)day);
	return db_cmd(db, "reports: day planned", "INSERT INTO report_days (day)"
	    " VALUES ((to_timestamp($1) AT TIME ZONE 'UTC')::date) ON CONFLICT DO NOTHING", &p);
}

int
db_rptsend_add(struct db *db, const struct db_rptsend_new *d, int *added)
{
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	dbp_i64(&p, (int64_t)d->day);
	dbp_str(&p, d->policy_domain);
	dbp_str(&p, d->kind);
	dbp_str(&p, d->rua);
	dbp_str(&p, d->scheme);
	dbp_str(&p, d->target);
	dbp_str(&p, d->report_id);
	dbp_str(&p, d->report_json);
	dbp_i64(&p, (int64_t)d->next_attempt);
	if ((rc = db_run(db, "reports: add delivery", "INSERT INTO report_deliveries (day,"
	    " policy_domain, kind, rua, scheme, target, report_id, report_json, next_attempt)"
	    " VALUES ((to_timestamp($1) AT TIME ZONE 'UTC')::date, $2, $3, $4, $5, $6, $7, $8,"
	    " to_timestamp($9)) ON CONFLICT DO NOTHING", &p, PGRES_COMMAND_OK, &res)) != DB_OK)
		return rc;
	*added = db_affected(res) > 0;
	PQclear(res);
	return DB_OK;
}

static int
db_rptsend_update(struct db *db, const char *what, const char *sql, time_t now, uint64_t *n)
{
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	dbp_i64(&p, (int64_t)now);
	if ((rc = db_run(db, what, sql, &p, PGRES_COMMAND_OK, &res)) != DB_OK)
		return rc;
	*n = db_affected(res);
	PQclear(res);
	return DB_OK;
}

int
db_rptsend_recover(struct db *db, time_t now, uint64_t *n)
{
	return db_rptsend_update(db, "reports: recover", "UPDATE report_deliveries SET"
	    " state = 'pending', next_attempt = to_timestamp($1), last_error ="
	    " 'interrupted while sending (controld stopped); sent again'"
	    " WHERE state = 'sending'", now, n);
}

int
db_rptsend_suppress_due(struct db *db, time_t now, uint64_t *n)
{
	return db_rptsend_update(db, "reports: suppress", "UPDATE report_deliveries d SET"
	    " state = 'suppressed', last_error = 'suppressed until ' ||"
	    " to_char(s.until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	    " FROM report_suppressions s WHERE d.state = 'pending' AND s.until > to_timestamp($1)"
	    " AND (lower(d.target) = s.address OR lower(d.rua) = s.address)", now, n);
}

#define DB_RPTSEND_COLS "id, policy_domain, kind, rua, scheme, target, report_id, report_json," \
	" extract(epoch FROM day::timestamp AT TIME ZONE 'UTC')::bigint," \
	" coalesce(extract(epoch FROM first_attempt)::bigint, 0), attempts"

int
db_rptsend_claim(struct db *db, time_t now, struct db_rptsend_delivery *d, int *got)
{
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	*got = 0;
	memset(d, 0, sizeof(*d));
	dbp_i64(&p, (int64_t)now);
	if ((rc = db_query(db, "reports: claim", "UPDATE report_deliveries SET state = 'sending'"
	    " WHERE id = (SELECT id FROM report_deliveries WHERE state = 'pending'"
	    " AND next_attempt <= to_timestamp($1) ORDER BY next_attempt, id LIMIT 1"
	    " FOR UPDATE SKIP LOCKED) RETURNING " DB_RPTSEND_COLS, &p, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) == 1) {
		*got = 1;
		d->id = db_get_i64(res, 0, 0);
		d->policy_domain = db_get_str(res, 0, 1);
		d->kind = db_get_str(res, 0, 2);
		d->rua = db_get_str(res, 0, 3);
		d->scheme = db_get_str(res, 0, 4);
		d->target = db_get_str(res, 0, 5);
		d->report_id = db_get_str(res, 0, 6);
		d->report_json = db_get_str(res, 0, 7);
		d->day = (time_t)db_get_i64(res, 0, 8);
		d->first_attempt = (time_t)db_get_i64(res, 0, 9);
		d->attempts = (int)db_get_i64(res, 0, 10);
	}
	PQclear(res);
	return DB_OK;
}

int
db_rptsend_finish(struct db *db, int64_t id, const char *state, time_t now, time_t next,
    int tried, const char *error)
{
	struct db_params p = { 0 };

	dbp_i64(&p, id);
	dbp_str(&p, state);
	dbp_i64(&p, (int64_t)now);
	dbp_i64(&p, (int64_t)next);
	dbp_i64(&p, tried);
	dbp_str(&p, error);
	return db_cmd(db, "reports: delivery done", "UPDATE report_deliveries SET state = $2,"
	    " attempts = attempts + $5, first_attempt = CASE WHEN $5 = 1 THEN"
	    " coalesce(first_attempt, to_timestamp($3)) ELSE first_attempt END,"
	    " next_attempt = to_timestamp($4), last_error = $6,"
	    " sent_at = CASE WHEN $2 = 'sent' THEN to_timestamp($3) END WHERE id = $1", &p);
}

void
db_rptsend_delivery_free(struct db_rptsend_delivery *d)
{
	free(d->policy_domain);
	free(d->kind);
	free(d->rua);
	free(d->scheme);
	free(d->target);
	free(d->report_id);
	free(d->report_json);
	memset(d, 0, sizeof(*d));
}

int
db_rptsend_dkim_key(struct db *db, const char *domain, char **selector, char **pem)
{
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	*selector = *pem = NULL;
	dbp_str(&p, domain);
	if ((rc = db_query(db, "reports: dkim key", "SELECT selector, private_pem FROM dkim_keys"
	    " WHERE domain = lower($1) AND state = 'active' ORDER BY created_at DESC LIMIT 1",
	    &p, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		db_seterr(db, "no active DKIM key for %s (mailctl dns set %s ... makes one)", domain,
		    domain);
		return DB_ENOTFOUND;
	}
	*selector = db_get_str(res, 0, 0);
	*pem = db_get_str(res, 0, 1);
	PQclear(res);
	return DB_OK;
}

static Mxfleet__V1__ReportDelivery *
db_rptsend_row(const PGresult *res, int i, int with_json)
{
	Mxfleet__V1__ReportDelivery *d = xmalloc(sizeof(*d));

	mxfleet__v1__report_delivery__init(d);
	d->id = db_get_u64(res, i, 0);
	d->day = db_get_str(res, i, 1);
	d->policy_domain = db_get_str(res, i, 2);
	d->kind = db_get_str(res, i, 3);
	d->rua = db_get_str(res, i, 4);
	d->state = db_get_str(res, i, 5);
	d->attempts = (uint32_t)db_get_u64(res, i, 6);
	d->next_attempt_unix = db_get_i64(res, i, 7);
	d->first_attempt_unix = db_get_i64(res, i, 8);
	d->last_error = db_get_str(res, i, 9);
	d->sent_unix = db_get_i64(res, i, 10);
	d->report_id = db_get_str(res, i, 11);
	d->report_json = with_json ? db_get_str(res, i, 12) : xstrdup("");
	return d;
}

int
db_rptsend_list(struct db *db, const char *which, int64_t id,
    Mxfleet__V1__ReportDeliveriesReply **out)
{
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	*out = NULL;
	dbp_str(&p, which);
	dbp_i64(&p, id);
	if ((rc = db_query(db, "reports: deliveries", "SELECT id, to_char(day, 'YYYY-MM-DD'),"
	    " policy_domain, kind, rua, state, attempts, extract(epoch FROM next_attempt)::bigint,"
	    " coalesce(extract(epoch FROM first_attempt)::bigint, 0), last_error,"
	    " coalesce(extract(epoch FROM sent_at)::bigint, 0), report_id, report_json"
	    " FROM report_deliveries WHERE ($2 > 0 AND id = $2) OR ($2 = 0 AND ($1 = ''"
	    " OR ($1 = 'sent' AND state = 'sent')"
	    " OR ($1 = 'pending' AND state IN ('pending', 'sending'))))"
	    " ORDER BY day DESC, policy_domain, kind, rua LIMIT 10000", &p, &res)) != DB_OK)
		return rc;
	if (id > 0 && PQntuples(res) == 0) {
		PQclear(res);
		db_seterr(db, "no report delivery %lld", (long long)id);
		return DB_ENOTFOUND;
	}
	Mxfleet__V1__ReportDeliveriesReply *r = xmalloc(sizeof(*r));
	mxfleet__v1__report_deliveries_reply__init(r);
	r->n_deliveries = (size_t)PQntuples(res);
	r->deliveries = xcalloc(r->n_deliveries + 1, sizeof(*r->deliveries));
	for (size_t i = 0; i < r->n_deliveries; i++)
		r->deliveries[i] = db_rptsend_row(res, (int)i, id > 0);
	PQclear(res);
	*out = r;
	return DB_OK;
}

void
db_rptsend_list_free(Mxfleet__V1__ReportDeliveriesReply *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_deliveries; i++) {
		Mxfleet__V1__ReportDelivery *d = r->deliveries[i];
		free(d->day);
		free(d->policy_domain);
		free(d->kind);
		free(d->rua);
		free(d->state);
		free(d->last_error);
		free(d->report_id);
		free(d->report_json);
		free(d);
	}
	free(r->deliveries);
	free(r);
}

int
db_rptsend_suppress(struct db *db, const char *address, time_t until, int *changed)
{
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	dbp_str(&p, address);
	if (until == 0)
		rc = db_run(db, "reports: unsuppress", "DELETE FROM report_suppressions"
		    " WHERE address = lower($1)", &p, PGRES_COMMAND_OK, &res);
	else {
		dbp_i64(&p, (int64_t)until);
		rc = db_run(db, "reports: suppress", "INSERT INTO report_suppressions (address,"
		    " until) VALUES (lower($1), to_timestamp($2)) ON CONFLICT (address) DO UPDATE"
		    " SET until = EXCLUDED.until, added_at = now()", &p, PGRES_COMMAND_OK, &res);
	}
	if (rc != DB_OK)
		return rc;
	*changed = db_affected(res) > 0;
	PQclear(res);
	return DB_OK;
}
