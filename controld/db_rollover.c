/* controld: TLSA key rollovers in PostgreSQL (db_rollover.h). */
#include "db_rollover.h"
#include "db_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

/* pg_try_advisory_xact_lock's key: "mxfr" (0x6d786672 = 1836607090), rollover steps
 * (db_dnspush.c's push lock is "mxfp"). */
#define DB_ROLLOVER_LOCK	"1836607090"

static int
db_rollover_decode(struct db *db, const char *host_id, const char *text, struct rollover *out)
{
	char err[ROLLOVER_ERR_MAX];

	if (rollover_decode(text, strlen(text), out, err, sizeof(err)) == 0)
		return DB_OK;
	db_seterr(db, "rollover of %s: the stored state does not decode: %s", host_id, err);
	return DB_ESQL;
}

/* The state sql ($1 = host_id) selects; DB_ENOTFOUND when no row. */
static int
db_rollover_read(struct db *db, const char *host_id, const char *sql, struct rollover *out)
{
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	dbp_str(&p, host_id);
	if ((rc = db_query(db, "rollover", sql, &p, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) == 0)
		rc = DB_ENOTFOUND;
	else
		rc = db_rollover_decode(db, host_id, PQgetvalue(res, 0, 0), out);
	PQclear(res);
	return rc;
}

/* ---- start ---- */

struct db_rollover_start_arg {
	const char	*host_id;
	int64_t		 now;
	uint32_t	 poll;
	struct rollover	*out;
	char		*why;
	size_t		 whysz;
};

static int
db_rollover_refuse(struct db *db, int rc)
{
	(void)db_cmd(db, "rollover: rollback", "ROLLBACK", NULL);
	return rc;
}

/* The host, its newest served key and its next key. */
static int
db_rollover_start_keys(struct db *db, struct db_rollover_start_arg *a, char **old, char **new)
{
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	dbp_str(&p, a->host_id);
	if ((rc = db_query(db, "rollover start: host", "SELECT coalesce(i.next_spki, ''),"
	    " (SELECT c.spki_sha256 FROM host_certs c WHERE c.host_id = h.host_id"
	    " AND c.retired_at IS NULL ORDER BY c.first_seen DESC, c.spki_sha256 LIMIT 1)"
	    " FROM hosts h LEFT JOIN host_identity i USING (host_id) WHERE h.host_id = $1",
	    &p, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		snprintf(a->why, a->whysz, "no host %s is known to controld", a->host_id);
		return db_rollover_refuse(db, DB_ENOTFOUND);
	}
	*new = db_get_str(res, 0, 0);
	*old = PQgetisnull(res, 0, 1) ? xstrdup("") : db_get_str(res, 0, 1);
	PQclear(res);
	return DB_OK;
}

static int
db_rollover_start_op(struct db *db, void *arg)
{
	struct db_rollover_start_arg *a = arg;
	struct db_params p = { 0 };
	char *old = NULL, *new = NULL, err[ROLLOVER_ERR_MAX];
	uint64_t rows;
	PGresult *res;
	int rc;

	if ((rc = db_cmd(db, "rollover start: begin", "BEGIN", NULL)) != DB_OK ||
	    (rc = db_rollover_start_keys(db, a, &old, &new)) != DB_OK)
		goto out;
	if (*old == '\0') {
		snprintf(a->why, a->whysz, "host %s reports no certificate it serves", a->host_id);
		rc = db_rollover_refuse(db, DB_EINVAL);
		goto out;
	}
	if (*new == '\0') {
		snprintf(a->why, a->whysz, "host %s reports no next key (mxd makes one: "
		    "tls.next_key, docs/dns.md \"Host identity\")", a->host_id);
		rc = db_rollover_refuse(db, DB_EINVAL);
		goto out;
	}
	if (rollover_start(a->out, a->host_id, old, new, a->now, err, sizeof(err)) < 0) {
		snprintf(a->why, a->whysz, "host %s: %s", a->host_id, err);
		rc = db_rollover_refuse(db, DB_EINVAL);
		goto out;
	}
	a->out->poll = a->poll;
	char *text = rollover_encode(a->out);
	dbp_str(&p, a->host_id);
	dbp_str(&p, text);
	rc = db_run(db, "rollover start", "INSERT INTO rollovers (host_id, state) VALUES ($1, $2)"
	    " ON CONFLICT (host_id) DO UPDATE SET state = EXCLUDED.state, done = false,"
	    " started_at = now(), updated_at = now() WHERE rollovers.done",
	    &p, PGRES_COMMAND_OK, &res);
	free(text);
	if (rc != DB_OK)
		goto out;
	rows = db_affected(res);
	PQclear(res);
	if (rows == 0) {
		snprintf(a->why, a->whysz, "a rollover of host %s is not done yet (mailctl tls "
		    "rollover %s --status)", a->host_id, a->host_id);
		rc = db_rollover_refuse(db, DB_EEXIST);
		goto out;
	}
	rc = db_commit(db, "rollover start");
out:
	free(old);
	free(new);
	return rc;
}

int
db_rollover_start(struct db *db, const char *host_id, int64_t now, uint32_t poll,
    struct rollover *out, char *why, size_t whysz)
{
	struct db_rollover_start_arg a = { host_id, now, poll, out, why, whysz };
	why[0] = '\0';
	return db_call(db, db_rollover_start_op, &a, DB_REPEAT_UNTIL_COMMIT);
}

/* ---- cancel ---- */

static int
db_rollover_cancel_op(struct db *db, void *arg)
{
	struct db_rollover_start_arg *a = arg;
	char err[ROLLOVER_ERR_MAX];
	int rc;

	if ((rc = db_cmd(db, "rollover cancel: begin", "BEGIN", NULL)) != DB_OK)
		return rc;
	if ((rc = db_rollover_read(db, a->host_id, "SELECT state FROM rollovers"
	    " WHERE host_id = $1 FOR UPDATE", a->out)) != DB_OK)
		return db_rollover_refuse(db, rc);
	if (rollover_cancel(a->out, a->now, err, sizeof(err)) < 0) {
		snprintf(a->why, a->whysz, "%s", err);
		return db_rollover_refuse(db, DB_EINVAL);
	}
	return db_rollover_save(db, a->out, DB_ROLLOVER_SWITCH_CLEAR);
}

int
db_rollover_cancel(struct db *db, const char *host_id, int64_t now, struct rollover *out,
    char *why, size_t whysz)
{
	struct db_rollover_start_arg a = { host_id, now, 0, out, why, whysz };
	why[0] = '\0';
	return db_call(db, db_rollover_cancel_op, &a, DB_REPEAT_UNTIL_COMMIT);
}

/* ---- reading ---- */

struct db_rollover_get_arg {
	const char	*host_id;
	struct rollover	*out;
};

static int
db_rollover_get_op(struct db *db, void *arg)
{
	struct db_rollover_get_arg *a = arg;

	return db_rollover_read(db, a->host_id, "SELECT state FROM rollovers WHERE host_id = $1",
	    a->out);
}

int
db_rollover_get(struct db *db, const char *host_id, struct rollover *out)
{
	struct db_rollover_get_arg a = { host_id, out };
	return db_call(db, db_rollover_get_op, &a, DB_REPEAT_ALWAYS);
}

static char **
db_rollover_column(PGresult *res, int col, size_t *n)
{
	*n = (size_t)PQntuples(res);
	char **v = xcalloc(*n + 1, sizeof(*v));
	for (size_t i = 0; i < *n; i++)
		v[i] = db_get_str(res, (int)i, col);
	return v;
}

int
db_rollover_active(struct db *db, char ***hosts, size_t *n)
{
	PGresult *res;
	int rc = db_query(db, "rollovers", "SELECT host_id FROM rollovers WHERE NOT done"
	    " ORDER BY host_id", NULL, &res);
	if (rc != DB_OK)
		return rc;
	*hosts = db_rollover_column(res, 0, n);
	PQclear(res);
	return DB_OK;
}

void
db_rollover_hosts_free(char **hosts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(hosts[i]);
	free(hosts);
}

/* ---- one step ---- */

int
db_rollover_lock(struct db *db, int *got)
{
	PGresult *res;
	int rc;

	*got = 0;
	if ((rc = db_cmd(db, "rollover: begin", "BEGIN", NULL)) != DB_OK ||
	    (rc = db_query(db, "rollover: lock", "SELECT pg_try_advisory_xact_lock("
	    DB_ROLLOVER_LOCK ")", NULL, &res)) != DB_OK)
		return rc;
	*got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return DB_OK;
}

int
db_rollover_load(struct db *db, const char *host_id, struct rollover *out)
{
	return db_rollover_read(db, host_id, "SELECT state FROM rollovers WHERE host_id = $1"
	    " AND NOT done FOR UPDATE", out);
}

static const char db_rollover_sql_domains[] =
	"SELECT lower(d.name), s.ttl FROM domains d JOIN domain_dns s ON s.domain = lower(d.name)"
	" WHERE s.publish AND CASE WHEN cardinality(s.hosts) = 0 THEN EXISTS (SELECT 1 FROM"
	" host_identity i WHERE i.host_id = $1) ELSE $1 = ANY(s.hosts) END ORDER BY 1";

int
db_rollover_report(struct db *db, const char *host_id, struct db_rollover_report *out)
{
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	memset(out, 0, sizeof(*out));
	dbp_str(&p, host_id);
	if ((rc = db_query(db, "rollover: identity", "SELECT hostname, next_spki,"
	    " next_cert_ready, next_cert_path FROM host_identity WHERE host_id = $1", &p,
	    &res)) != DB_OK)
		return rc;
	int have = PQntuples(res) > 0;
	out->hostname = have ? db_get_str(res, 0, 0) : xstrdup("");
	out->next_spki = have ? db_get_str(res, 0, 1) : xstrdup("");
	out->next_cert_ready = have && strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	out->next_cert_path = have ? db_get_str(res, 0, 3) : xstrdup("");
	PQclear(res);
	if ((rc = db_query(db, "rollover: served keys", "SELECT spki_sha256 FROM host_certs"
	    " WHERE host_id = $1 AND retired_at IS NULL ORDER BY spki_sha256", &p, &res)) != DB_OK)
		return rc;
	out->served = db_rollover_column(res, 0, &out->nserved);
	PQclear(res);
	if ((rc = db_query(db, "rollover: domains", db_rollover_sql_domains, &p, &res)) != DB_OK)
		return rc;
	out->domains = db_rollover_column(res, 0, &out->ndomains);
	for (int i = 0; i < PQntuples(res); i++) {
		uint32_t ttl = (uint32_t)db_get_u64(res, i, 1);
		if (ttl > out->ttl)
			out->ttl = ttl;
	}
	PQclear(res);
	return DB_OK;
}

void
db_rollover_report_free(struct db_rollover_report *r)
{
	free(r->hostname);
	db_rollover_hosts_free(r->served, r->nserved);
	free(r->next_spki);
	free(r->next_cert_path);
	db_rollover_hosts_free(r->domains, r->ndomains);
	memset(r, 0, sizeof(*r));
}

int
db_rollover_save(struct db *db, const struct rollover *r, enum db_rollover_switch sw)
{
	struct db_params p = { 0 }, k = { 0 };
	char *text = rollover_encode(r);
	int rc;

	dbp_str(&p, r->host);
	dbp_str(&p, text);
	dbp_str(&p, r->state == ROLLOVER_DONE ? "true" : "false");
	rc = db_cmd(db, "rollover: store", "UPDATE rollovers SET state = $2, done = $3::boolean,"
	    " updated_at = now() WHERE host_id = $1", &p);
	free(text);
	if (rc != DB_OK)
		return rc;
	dbp_str(&k, r->host);
	if (sw == DB_ROLLOVER_SWITCH_SET) {
		dbp_str(&k, r->new_spki);
		rc = db_cmd(db, "rollover: key switch", "INSERT INTO key_switches (host_id, to_spki)"
		    " VALUES ($1, $2) ON CONFLICT (host_id) DO UPDATE SET to_spki = EXCLUDED.to_spki,"
		    " created_at = now() WHERE key_switches.to_spki <> EXCLUDED.to_spki", &k);
	} else if (sw == DB_ROLLOVER_SWITCH_CLEAR) {
		rc = db_cmd(db, "rollover: key switch done", "DELETE FROM key_switches"
		    " WHERE host_id = $1", &k);
	}
	if (rc != DB_OK)
		return rc;
	return db_commit(db, "rollover: commit");
}

void
db_rollover_abort(struct db *db)
{
	(void)db_cmd(db, "rollover: rollback", "ROLLBACK", NULL);
}

/* ---- the snapshot ---- */

int
db_rollover_snapshot(struct db *db, Mxfleet__V1__KeySwitch ***out, size_t *n)
{
	PGresult *res;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = db_query(db, "snapshot: key switches", "SELECT host_id, to_spki FROM"
	    " key_switches ORDER BY host_id", NULL, &res)) != DB_OK)
		return rc;
	*n = (size_t)PQntuples(res);
	*out = xcalloc(*n + 1, sizeof(**out));
	for (size_t i = 0; i < *n; i++) {
		Mxfleet__V1__KeySwitch *k = xmalloc(sizeof(*k));
		mxfleet__v1__key_switch__init(k);
		k->host_id = db_get_str(res, (int)i, 0);
		k->to_spki_sha256 = db_get_str(res, (int)i, 1);
		(*out)[i] = k;
	}
	PQclear(res);
	return DB_OK;
}

void
db_rollover_snapshot_free(Mxfleet__V1__KeySwitch **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i]->host_id);
		free(v[i]->to_spki_sha256);
		free(v[i]);
	}
	free(v);
}
