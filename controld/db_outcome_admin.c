/* controld: what operators ask of the outcomes and hosts' health: the outcome summary, revoked certificates, upload health (db.h). */
#include "db.h"
#include "db_dns.h"
#include "db_identity.h"
#include "db_internal.h"
#include "db_rollover.h"
#include "db_tlsrpt_sender.h"
#include "db_rptrecv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "buf.h"
#include "log.h"
#include "utf8.h"
#include "xmalloc.h"


/* ---- outcome summary ---- */

struct summary_arg {
	const Mxfleet__V1__OutcomeQuery	*q;
	Mxfleet__V1__OutcomeReport	*out;
};

static int
db_summary_op(struct db *db, void *arg)
{
	struct summary_arg *a = arg;
	struct db_params p = { 0 };
	Mxfleet__V1__OutcomeReport *rep;
	uint32_t limit = a->q->limit;
	PGresult *res = NULL;
	int rc, n;

	if (limit == 0 || limit > DB_SUMMARY_MAX_ROWS)
		limit = DB_SUMMARY_MAX_ROWS;
	dbp_str(&p, a->q->host_id);
	dbp_i64(&p, a->q->since_unix);
	dbp_u64(&p, limit);
	/* start_ts bounds the partitions scanned. */
	if ((rc = db_query(db, "summary",
	    "SELECT host_id, direction, starttls, tls_version, tls_fail_reason,"
	    " count(*) FROM outcomes"
	    " WHERE ($1 = '' OR host_id = $1) AND start_ts >= to_timestamp($2::bigint)"
	    " GROUP BY host_id, direction, starttls, tls_version, tls_fail_reason"
	    " ORDER BY host_id, direction, starttls, tls_version, tls_fail_reason"
	    " LIMIT $3", &p, &res)) != DB_OK)
		return rc;
	n = PQntuples(res);
	rep = xmalloc(sizeof(*rep));
	mxfleet__v1__outcome_report__init(rep);
	rep->n_rows = (size_t)n;
	rep->rows = xcalloc((size_t)n, sizeof(*rep->rows));
	for (int r = 0; r < n; r++) {
		Mxfleet__V1__OutcomeSummary *s = xmalloc(sizeof(*s));

		mxfleet__v1__outcome_summary__init(s);
		s->host_id = db_get_str(res, r, 0);
		s->direction = (Mxfleet__V1__Direction)db_get_i64(res, r, 1);
		s->starttls = (Mxfleet__V1__StartTls)db_get_i64(res, r, 2);
		s->tls_version = db_get_str(res, r, 3);
		s->tls_fail_reason = db_get_str(res, r, 4);
		s->sessions = db_get_u64(res, r, 5);
		rep->rows[r] = s;
	}
	PQclear(res);
	a->out = rep;
	return DB_OK;
}

int
db_outcome_summary(struct db *db, const Mxfleet__V1__OutcomeQuery *q,
    Mxfleet__V1__OutcomeReport **out)
{
	struct summary_arg a = { .q = q };
	int rc;

	*out = NULL;
	db->err[0] = '\0';
	if (!db_utf8_valid(q->host_id) || q->since_unix < -DB_MAX_UNIX_S ||
	    q->since_unix > DB_MAX_UNIX_S) {
		db_seterr(db, "summary: host_id not UTF-8 or since out of range");
		return DB_EINVAL;
	}
	rc = db_call(db, db_summary_op, &a, DB_REPEAT_ALWAYS);
	if (rc == DB_OK)
		*out = a.out;
	return rc;
}

void
db_outcome_report_free(Mxfleet__V1__OutcomeReport *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_rows; i++) {
		db_str_free(r->rows[i]->host_id);
		db_str_free(r->rows[i]->tls_version);
		db_str_free(r->rows[i]->tls_fail_reason);
		free(r->rows[i]);
	}
	free(r->rows);
	free(r);
}

/* ---- revoked certificates (schema/006) ---- */

struct revoke_arg {
	const char	*serial, *name;
	int64_t		 not_after;
	int		 newly;
};

static int
db_revoke_op(struct db *db, void *arg)
{
	struct revoke_arg *a = arg;
	struct db_params p = { 0 };
	PGresult *res = NULL;
	int rc;

	dbp_str(&p, a->serial);
	dbp_str(&p, a->name);
	if (a->not_after > 0)
		dbp_i64(&p, a->not_after);
	else
		dbp_null(&p);
	if ((rc = db_run(db, "revoke",
	    "INSERT INTO revoked_certificates (serial, name, not_after) "
	    "VALUES ($1, $2, to_timestamp($3::bigint)) ON CONFLICT (serial) DO NOTHING",
	    &p, PGRES_COMMAND_OK, &res)) != DB_OK)
		return rc;
	a->newly = db_affected(res) == 1;
	PQclear(res);
	return DB_OK;
}

int
db_revoke(struct db *db, const char *serial, const char *name, int64_t not_after_unix,
    int *newly)
{
	struct revoke_arg a = { serial, name ? name : "", not_after_unix, 0 };
	int rc;

	db->err[0] = '\0';
	if ((rc = config_text_check(db, "revoke", a.name, 1)) != DB_OK)
		return rc;
	/* One statement, idempotent: safe to repeat after a lost connection. */
	rc = db_call(db, db_revoke_op, &a, DB_REPEAT_ALWAYS);
	if (rc == DB_OK && newly != NULL)
		*newly = a.newly;
	return rc;
}

struct revoked_arg {
	char	**serials;
	size_t	  n;
};

static int
db_revoked_op(struct db *db, void *arg)
{
	struct revoked_arg *a = arg;
	PGresult *res = NULL;
	int rc;

	if ((rc = db_query(db, "revoked list", "SELECT serial FROM revoked_certificates",
	    NULL, &res)) != DB_OK)
		return rc;
	a->n = (size_t)PQntuples(res);
	a->serials = xcalloc(a->n ? a->n : 1, sizeof(*a->serials));
	for (size_t i = 0; i < a->n; i++)
		a->serials[i] = db_get_str(res, (int)i, 0);
	PQclear(res);
	return DB_OK;
}

int
db_revoked_list(struct db *db, char ***serials, size_t *n)
{
	struct revoked_arg a = { NULL, 0 };
	int rc = db_call(db, db_revoked_op, &a, DB_REPEAT_ALWAYS);
	*serials = a.serials;
	*n = a.n;
	return rc;
}

/* ---- outcome upload health (schema/005_upload_health.sql) ---- */

struct upload_health_arg {
	const char	*host_id;
	uint64_t	 refused, quarantined;
	uint64_t	 old_refused, old_quarantined;
	int		 found;
};

static int
db_upload_health_op(struct db *db, void *arg)
{
	struct upload_health_arg *a = arg;
	struct db_params p = { 0 };
	PGresult *res = NULL;
	int rc;

	dbp_str(&p, a->host_id);
	dbp_u64(&p, a->refused);
	dbp_u64(&p, a->quarantined);
	/* The old values come from the row as it was before this statement. */
	if ((rc = db_query(db, "upload health",
	    "UPDATE hosts AS h SET batches_refused = $2, outcomes_quarantined = $3"
	    " FROM (SELECT host_id, batches_refused, outcomes_quarantined FROM hosts"
	    " WHERE host_id = $1 FOR UPDATE) AS old"
	    " WHERE h.host_id = old.host_id"
	    " RETURNING old.batches_refused, old.outcomes_quarantined", &p, &res)) != DB_OK)
		return rc;
	a->found = PQntuples(res) == 1;
	if (a->found) {
		a->old_refused = db_get_u64(res, 0, 0);
		a->old_quarantined = db_get_u64(res, 0, 1);
	}
	PQclear(res);
	return DB_OK;
}

int
db_host_upload_health(struct db *db, const char *host_id, uint64_t refused,
    uint64_t quarantined, uint64_t *refused_increase, uint64_t *quarantined_increase)
{
	struct upload_health_arg a = { host_id, refused, quarantined, 0, 0, 0 };
	int rc;

	db->err[0] = '\0';
	*refused_increase = *quarantined_increase = 0;
	if ((rc = host_id_check(db, "upload health", host_id)) != DB_OK)
		return rc;
	if (refused > INT64_MAX || quarantined > INT64_MAX) {
		db_seterr(db, "upload health: host %.100s: a number out of range", host_id);
		return DB_EINVAL;
	}
	if ((rc = db_call(db, db_upload_health_op, &a, DB_REPEAT_ALWAYS)) != DB_OK || !a.found)
		return rc;
	*refused_increase = refused > a.old_refused ? refused - a.old_refused : 0;
	*quarantined_increase = quarantined > a.old_quarantined ? quarantined - a.old_quarantined : 0;
	return DB_OK;
}

