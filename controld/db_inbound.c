/* controld: the inbound TLS view's read of the outcomes (db_inbound.h). */
#include <stdlib.h>

#include "db_inbound.h"
#include "db_internal.h"

#define DB_INBOUND_MAX_UNIX_S	INT64_C(253402300799)

struct db_inbound_arg {
	int64_t				 since;
	enum inbound_tls_by		 by;
	Mxfleet__V1__InboundTlsReport	*out;
};

/* The grouping columns of each --by: a PTR name keeps the address of a
 * session without one, for its network (inbound_tls_sender_domain). */
static const char *const db_inbound_keys[] = {
	[INBOUND_TLS_BY_SENDER_DOMAIN] =
	    "remote_ptr, CASE WHEN remote_ptr = '' THEN remote_ip ELSE '' END",
	[INBOUND_TLS_BY_REMOTE_IP] = "remote_ip, ''::text",
	[INBOUND_TLS_BY_STAGE] = "tls_fail_stage, ''::text",
	[INBOUND_TLS_BY_HOST] = "host_id, ''::text",
};

static int
db_inbound_op(struct db *db, void *arg)
{
	struct db_inbound_arg *a = arg;
	struct db_params p = { 0 };
	PGresult *res = NULL;
	char sql[640];
	int rc, n;

	dbp_i64(&p, a->since);
	dbp_u64(&p, DB_INBOUND_MAX_ROWS + 1);
	/* start_ts bounds the day partitions read (runtime pruning: the bound
	 * is a parameter). direction 1: inbound. Cut, the read keeps the
	 * largest groups. */
	snprintf(sql, sizeof(sql),
	    "SELECT %s, starttls, tls_fail_stage, tls_fail_reason, tls_version, tls_cipher,"
	    " count(*) FROM outcomes"
	    " WHERE direction = 1 AND start_ts >= to_timestamp($1::bigint)"
	    " GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 8 DESC LIMIT $2", db_inbound_keys[a->by]);
	if ((rc = db_query(db, "inbound tls", sql, &p, &res)) != DB_OK)
		return rc;
	n = PQntuples(res);
	struct inbound_tls_agg *agg = inbound_tls_agg_new(a->by);
	for (int r = 0; r < n && r < DB_INBOUND_MAX_ROWS; r++) {
		struct inbound_tls_row row = {
			PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), (int)db_get_i64(res, r, 2),
			PQgetvalue(res, r, 3), PQgetvalue(res, r, 4), PQgetvalue(res, r, 5),
			PQgetvalue(res, r, 6), db_get_u64(res, r, 7),
		};
		inbound_tls_agg_add(agg, &row);
	}
	a->out = inbound_tls_agg_finish(agg, a->since);
	a->out->truncated = n > DB_INBOUND_MAX_ROWS;
	PQclear(res);
	return DB_OK;
}

int
db_inbound_tls(struct db *db, int64_t since_unix, enum inbound_tls_by by,
    Mxfleet__V1__InboundTlsReport **out)
{
	struct db_inbound_arg a = { since_unix, by, NULL };
	int rc;

	*out = NULL;
	db->err[0] = '\0';
	if (since_unix < -DB_INBOUND_MAX_UNIX_S || since_unix > DB_INBOUND_MAX_UNIX_S) {
		db_seterr(db, "inbound tls: since out of range");
		return DB_EINVAL;
	}
	rc = db_call(db, db_inbound_op, &a, DB_REPEAT_ALWAYS);
	if (rc == DB_OK)
		*out = a.out;
	return rc;
}
