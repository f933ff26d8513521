/* controld's PostgreSQL layer (see db.h). Values travel as parameters of
 * PQexecParams or as COPY data; SQL text here is constant, except migration
 * files, which are trusted SQL shipped with controld. */
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

#define DB_COPY_CHUNK		(64 * 1024)
#define DB_MAX_UNIX_MS		INT64_C(253402300799999)	/* 9999-12-31T23:59:59.999Z */
#define DB_MS_PER_DAY		INT64_C(86400000)

/* ---- text: UTF-8, COPY, JSON ---- */

/* Length of the well-formed UTF-8 sequence at s (n bytes left), 0 if there
 * is none: lib/utf8.c applies the rules PostgreSQL applies to text in a
 * UTF8 database (no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t
db_utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	int l = utf8_decode(s, n, &cp);
	return l < 0 ? 0 : (size_t)l;
}


#define UTF8_REPLACEMENT	"\xef\xbf\xbd"

/* One field of COPY's text format: backslash, tab, newline and CR escaped;
 * bytes that are not UTF-8 replaced by U+FFFD, since PostgreSQL would
 * refuse the whole batch for one bad byte in a client's EHLO. */
static void
copy_text(struct buf *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), run, l;

	while (n > 0) {
		for (run = 0; run < n && s[run] < 0x80 && s[run] != '\\' &&
		    s[run] != '\t' && s[run] != '\n' && s[run] != '\r'; run++)
			;
		buf_append(out, s, run);
		s += run;
		n -= run;
		if (n == 0)
			break;
		switch (*s) {
		case '\\':
			buf_append(out, "\\\\", 2);
			l = 1;
			break;
		case '\t':
			buf_append(out, "\\t", 2);
			l = 1;
			break;
		case '\n':
			buf_append(out, "\\n", 2);
			l = 1;
			break;
		case '\r':
			buf_append(out, "\\r", 2);
			l = 1;
			break;
		default:
			if ((l = db_utf8_len(s, n)) == 0) {
				buf_appends(out, UTF8_REPLACEMENT);
				l = 1;
			} else
				buf_append(out, s, l);
		}
		s += l;
		n -= l;
	}
}

static void
copy_sep(struct buf *out)
{
	buf_appendc(out, '\t');
}

static void
copy_u64(struct buf *out, uint64_t v)
{
	buf_printf(out, "%" PRIu64, v);
}

static void
copy_i64(struct buf *out, int64_t v)
{
	buf_printf(out, "%" PRId64, v);
}

static void
copy_null(struct buf *out)
{
	buf_append(out, "\\N", 2);
}

/* A JSON string, valid UTF-8 whatever the input (U+FFFD for bad bytes). */
static void
json_str(struct buf *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), l;

	buf_appendc(out, '"');
	while (n > 0) {
		if (*s == '"' || *s == '\\') {
			buf_appendc(out, '\\');
			buf_appendc(out, (char)*s);
			l = 1;
		} else if (*s < 0x20) {
			buf_printf(out, "\\u%04x", *s);
			l = 1;
		} else if ((l = db_utf8_len(s, n)) == 0) {
			buf_appends(out, "\\ufffd");
			l = 1;
		} else
			buf_append(out, s, l);
		s += l;
		n -= l;
	}
	buf_appendc(out, '"');
}

static void
json_key_str(struct buf *out, const char *key, const char *val, int first)
{
	if (!first)
		buf_appendc(out, ',');
	json_str(out, key);
	buf_appendc(out, ':');
	json_str(out, val);
}

static void
json_key_strs(struct buf *out, const char *key, char **vals, size_t n)
{
	buf_appendc(out, ',');
	json_str(out, key);
	buf_append(out, ":[", 2);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_appendc(out, ',');
		json_str(out, vals[i]);
	}
	buf_appendc(out, ']');
}

/* policy_results as a JSON array of objects named like the proto fields. */
static void
json_policy_results(struct buf *out, Mxfleet__V1__PolicyResult **prs, size_t n)
{
	buf_appendc(out, '[');
	for (size_t i = 0; i < n; i++) {
		const Mxfleet__V1__PolicyResult *pr = prs[i];

		if (i > 0)
			buf_appendc(out, ',');
		buf_appendc(out, '{');
		json_key_str(out, "policy_type", pr->policy_type, 1);
		json_key_str(out, "policy_domain", pr->policy_domain, 0);
		json_key_strs(out, "policy_strings", pr->policy_strings, pr->n_policy_strings);
		json_key_strs(out, "mx_host", pr->mx_host, pr->n_mx_host);
		json_key_str(out, "result_type", pr->result_type, 0);
		json_key_str(out, "sending_mta_ip", pr->sending_mta_ip, 0);
		json_key_str(out, "receiving_mx_hostname", pr->receiving_mx_hostname, 0);
		json_key_str(out, "receiving_mx_helo", pr->receiving_mx_helo, 0);
		json_key_str(out, "receiving_ip", pr->receiving_ip, 0);
		json_key_str(out, "failure_reason_code", pr->failure_reason_code, 0);
		json_key_str(out, "additional_information", pr->additional_information, 0);
		buf_appendc(out, '}');
	}
	buf_appendc(out, ']');
}

/* ---- ingest ---- */

/* Ingest has two paths over the same COPY data.
 *
 * Direct, the common case: COPY straight into outcomes as the first
 * statement of the batch's transaction, about as fast as COPY gets. If a row
 * is already there (a resend, whole or regrouped), the unique key refuses
 * the COPY with unique_violation; the transaction is rolled back and the
 * batch goes the staged way.
 *
 * Staged: COPY into a session-local temporary table, then INSERT ... ON
 * CONFLICT DO NOTHING into outcomes, which stores what is new and counts the
 * rest as duplicates.
 *
 * Either way the unique key (host_id, seq, start_ts) decides what is stored,
 * so both are idempotent; the fallback only costs a resend the rows written
 * before the conflict was found. */

/* The column order of the rows ingest_copy_row writes. */
#define DB_OUTCOME_COLUMNS \
    "host_id, seq, batch_seq, session_id, direction, start_ts, end_ts," \
    " local_ip, local_port, remote_ip, remote_port, remote_ehlo, remote_ptr," \
    " starttls, tls_version, tls_cipher, sni, tls_fail_stage, tls_fail_reason," \
    " messages, recipients, policy_results, tlsrpt_exempt"

/* LIKE outcomes: the staging table follows the schema's columns. */
static const char db_sql_staging[] =
    "CREATE TEMPORARY TABLE IF NOT EXISTS outcomes_staging"
    " (LIKE outcomes INCLUDING DEFAULTS) ON COMMIT DELETE ROWS";

static const char db_sql_copy_direct[] =
    "COPY outcomes (" DB_OUTCOME_COLUMNS ") FROM STDIN";

static const char db_sql_copy_staging[] =
    "COPY outcomes_staging (" DB_OUTCOME_COLUMNS ") FROM STDIN";

/* ORDER BY seq: concurrent ingests of overlapping batches (one host's
 * resend reaching two replicas) take the same keys in the same order and
 * cannot deadlock. */
static const char db_sql_ingest_staged[] =
    "INSERT INTO outcomes (" DB_OUTCOME_COLUMNS ")"
    " SELECT " DB_OUTCOME_COLUMNS " FROM outcomes_staging ORDER BY seq"
    " ON CONFLICT (host_id, seq, start_ts) DO NOTHING";

static const char db_sql_ingest_batch[] =
    "INSERT INTO outcome_batches (host_id, seq, outcomes, stored, dropped, corrupt)"
    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (host_id, seq) DO NOTHING";

static const char db_sql_ingest_host[] =
    "INSERT INTO hosts AS h (host_id, outcomes, dropped, corrupt)"
    " VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (host_id) DO UPDATE SET"
    " last_seen = greatest(h.last_seen, now()),"
    " outcomes = h.outcomes + EXCLUDED.outcomes,"
    " dropped = h.dropped + EXCLUDED.dropped,"
    " corrupt = h.corrupt + EXCLUDED.corrupt";

struct ingest_arg {
	const Mxfleet__V1__OutcomeBatch	*b;
	struct buf			 copy;		/* COPY text data */
	int64_t				*days;		/* distinct UTC days, sorted */
	size_t				 ndays;
	uint64_t			 stored;
	int				 staged;	/* took the staged path */
};

static int
ingest_check(struct db *db, const Mxfleet__V1__OutcomeBatch *b)
{
	if (b->host_id == NULL || b->host_id[0] == '\0') {
		db_seterr(db, "ingest: batch without host_id");
		return DB_EINVAL;
	}
	if (!db_utf8_valid(b->host_id)) {
		db_seterr(db, "ingest: host_id is not UTF-8");
		return DB_EINVAL;
	}
	if (b->seq > INT64_MAX || b->dropped > INT64_MAX || b->corrupt > INT64_MAX) {
		db_seterr(db, "ingest: host %.100s batch %" PRIu64 ": seq or counter"
		    " above 2^63-1", b->host_id, b->seq);
		return DB_EINVAL;
	}
	for (size_t i = 0; i < b->n_outcomes; i++) {
		const Mxfleet__V1__Outcome *o = b->outcomes[i];
		const char *bad = NULL;

		if (o->seq > INT64_MAX)
			bad = "seq above 2^63-1";
		else if (o->local_port > 65535 || o->remote_port > 65535)
			bad = "port above 65535";
		else if (o->start_unix_ms < 0 || o->start_unix_ms > DB_MAX_UNIX_MS)
			bad = "start time outside 1970..9999";
		else if (o->end_unix_ms < 0 || o->end_unix_ms > DB_MAX_UNIX_MS)
			bad = "end time outside 1970..9999";
		if (bad != NULL) {
			db_seterr(db, "ingest: host %.100s outcome seq %" PRIu64 ": %s",
			    b->host_id, o->seq, bad);
			return DB_EINVAL;
		}
	}
	return DB_OK;
}

/* A timestamp in ISO form, UTC, to the millisecond. The same text for the
 * same record every time it is sent: the same start_ts, the same key. */
static void
copy_ts(struct buf *out, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char s[40];

	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%S", &tm);
	buf_printf(out, "%s.%03d+00", s, (int)(ms % 1000));
}

static void
ingest_copy_row(struct buf *out, struct buf *json, const Mxfleet__V1__OutcomeBatch *b,
    const Mxfleet__V1__Outcome *o)
{
	copy_text(out, b->host_id);
	copy_sep(out);
	copy_u64(out, o->seq);
	copy_sep(out);
	copy_u64(out, b->seq);
	copy_sep(out);
	copy_text(out, o->session_id);
	copy_sep(out);
	copy_i64(out, o->direction);
	copy_sep(out);
	copy_ts(out, o->start_unix_ms);
	copy_sep(out);
	if (o->end_unix_ms != 0)
		copy_ts(out, o->end_unix_ms);
	else
		copy_null(out);
	copy_sep(out);
	copy_text(out, o->local_ip);
	copy_sep(out);
	copy_u64(out, o->local_port);
	copy_sep(out);
	copy_text(out, o->remote_ip);
	copy_sep(out);
	copy_u64(out, o->remote_port);
	copy_sep(out);
	copy_text(out, o->remote_ehlo);
	copy_sep(out);
	copy_text(out, o->remote_ptr);
	copy_sep(out);
	copy_i64(out, o->starttls);
	copy_sep(out);
	copy_text(out, o->tls_version);
	copy_sep(out);
	copy_text(out, o->tls_cipher);
	copy_sep(out);
	copy_text(out, o->sni);
	copy_sep(out);
	copy_text(out, o->tls_fail_stage);
	copy_sep(out);
	copy_text(out, o->tls_fail_reason);
	copy_sep(out);
	copy_u64(out, o->messages);
	copy_sep(out);
	copy_u64(out, o->recipients);
	copy_sep(out);
	if (o->n_policy_results > 0) {
		buf_reset(json);
		json_policy_results(json, o->policy_results, o->n_policy_results);
		copy_text(out, json->data);
	} else
		copy_null(out);
	copy_sep(out);
	copy_text(out, o->tlsrpt_exempt ? "t" : "f");
	buf_appendc(out, '\n');
}

static int
int64_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int
outcome_seq_cmp(const void *a, const void *b)
{
	const Mxfleet__V1__Outcome *x = *(Mxfleet__V1__Outcome *const *)a;
	const Mxfleet__V1__Outcome *y = *(Mxfleet__V1__Outcome *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Everything that does not need the database, done once even if the call
 * is repeated after a reconnect. Rows go out in seq order, so replicas
 * storing overlapping batches at once take the keys in the same order and
 * wait for each other instead of deadlocking. */
static void
ingest_prepare(struct ingest_arg *a)
{
	const Mxfleet__V1__OutcomeBatch *b = a->b;
	Mxfleet__V1__Outcome **sorted;
	struct buf json;
	size_t i, n = 0;

	buf_init(&a->copy);
	buf_init(&json);
	sorted = xcalloc(b->n_outcomes, sizeof(*sorted));
	if (b->n_outcomes > 0) {
		memcpy(sorted, b->outcomes, b->n_outcomes * sizeof(*sorted));
		qsort(sorted, b->n_outcomes, sizeof(*sorted), outcome_seq_cmp);
	}
	a->days = xcalloc(b->n_outcomes, sizeof(*a->days));
	for (i = 0; i < b->n_outcomes; i++) {
		ingest_copy_row(&a->copy, &json, b, sorted[i]);
		a->days[i] = sorted[i]->start_unix_ms / DB_MS_PER_DAY;
	}
	free(sorted);
	buf_free(&json);
	if (b->n_outcomes > 0) {
		qsort(a->days, b->n_outcomes, sizeof(*a->days), int64_cmp);
		for (i = 0; i < b->n_outcomes; i++)
			if (n == 0 || a->days[n - 1] != a->days[i])
				a->days[n++] = a->days[i];
	}
	a->ndays = n;
}

/* Partitions are created in their own short transactions before the
 * batch's, in day order: creating one locks outcomes exclusively, which
 * must not last as long as a batch, nor happen while holding row locks. */
static int
ingest_partitions(struct db *db, const struct ingest_arg *a)
{
	for (size_t i = 0; i < a->ndays; i++) {
		struct db_params p = { 0 };
		time_t t = (time_t)(a->days[i] * 86400);
		char day[16];
		struct tm tm;
		int rc;

		gmtime_r(&t, &tm);
		strftime(day, sizeof(day), "%Y-%m-%d", &tm);
		dbp_str(&p, day);
		if ((rc = db_query(db, "ingest: partition",
		    "SELECT outcomes_ensure_partition($1::date)", &p, NULL)) != DB_OK)
			return rc;
	}
	return DB_OK;
}

/* COPY data with sql; *conflict is set when a row broke a unique key.
 * On failure the transaction is rolled back. */
static int
ingest_copy(struct db *db, const char *sql, const struct buf *data, int *conflict)
{
	PGresult *res;
	size_t off, n;
	const char *state;

	*conflict = 0;
	res = PQexec(db->conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_IN)
		return db_fail(db, res, "ingest: copy");
	PQclear(res);
	for (off = 0; off < data->len; off += n) {
		n = data->len - off < DB_COPY_CHUNK ? data->len - off : DB_COPY_CHUNK;
		if (PQputCopyData(db->conn, data->data + off, (int)n) != 1)
			break;
	}
	if (off < data->len) {
		/* Only a broken connection makes PQputCopyData fail. */
		PQputCopyEnd(db->conn, "client gave up");
		while ((res = PQgetResult(db->conn)) != NULL)
			PQclear(res);
		return db_fail(db, NULL, "ingest: copy");
	}
	if (PQputCopyEnd(db->conn, NULL) != 1)
		return db_fail(db, NULL, "ingest: copy end");
	res = PQgetResult(db->conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		PGresult *more;

		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		*conflict = state != NULL && strcmp(state, "23505") == 0;
		while ((more = PQgetResult(db->conn)) != NULL)
			PQclear(more);
		return db_fail(db, res, "ingest: copy");
	}
	PQclear(res);
	while ((res = PQgetResult(db->conn)) != NULL)
		PQclear(res);
	return DB_OK;
}

/* The staged path; the transaction is open when it returns DB_OK. */
static int
ingest_staged(struct db *db, struct ingest_arg *a)
{
	PGresult *res = NULL;
	int rc, conflict;

	if (!db->staging_ready) {
		if ((rc = db_cmd(db, "ingest: staging table", db_sql_staging, NULL)) != DB_OK)
			return rc;
		db->staging_ready = 1;
	}
	if ((rc = db_cmd(db, "ingest: begin", "BEGIN", NULL)) != DB_OK ||
	    (rc = ingest_copy(db, db_sql_copy_staging, &a->copy, &conflict)) != DB_OK)
		return rc;
	if ((rc = db_run(db, "ingest: outcomes", db_sql_ingest_staged, NULL,
	    PGRES_COMMAND_OK, &res)) != DB_OK)
		return rc;
	a->stored = db_affected(res);
	PQclear(res);
	return DB_OK;
}

static int
db_ingest_op(struct db *db, void *arg)
{
	struct ingest_arg *a = arg;
	const Mxfleet__V1__OutcomeBatch *b = a->b;
	struct db_params p;
	PGresult *res = NULL;
	uint64_t newbatch;
	int rc, conflict = 0;

	a->stored = 0;
	a->staged = 0;
	if ((rc = ingest_partitions(db, a)) != DB_OK)
		return rc;
	if ((rc = db_cmd(db, "ingest: begin", "BEGIN", NULL)) != DB_OK)
		return rc;
	if (b->n_outcomes > 0) {
		rc = ingest_copy(db, db_sql_copy_direct, &a->copy, &conflict);
		if (rc == DB_OK)
			a->stored = b->n_outcomes;
		else if (conflict) {
			log_debug("event=db_ingest_resend host=%.100s seq=%" PRIu64,
			    b->host_id, b->seq);
			db->err[0] = '\0';
			a->staged = 1;
			if ((rc = ingest_staged(db, a)) != DB_OK)
				return rc;
		} else
			return rc;
	}

	memset(&p, 0, sizeof(p));
	dbp_str(&p, b->host_id);
	dbp_u64(&p, b->seq);
	dbp_u64(&p, b->n_outcomes);
	dbp_u64(&p, a->stored);
	dbp_u64(&p, b->dropped);
	dbp_u64(&p, b->corrupt);
	if ((rc = db_run(db, "ingest: batch key", db_sql_ingest_batch, &p,
	    PGRES_COMMAND_OK, &res)) != DB_OK)
		return rc;
	newbatch = db_affected(res);
	PQclear(res);

	/* Losses reported by a batch count once, with its first arrival. */
	memset(&p, 0, sizeof(p));
	dbp_str(&p, b->host_id);
	dbp_u64(&p, a->stored);
	dbp_u64(&p, newbatch ? b->dropped : 0);
	dbp_u64(&p, newbatch ? b->corrupt : 0);
	if ((rc = db_cmd(db, "ingest: host counters", db_sql_ingest_host, &p)) != DB_OK)
		return rc;
	return db_commit(db, "ingest: commit");
}

int
db_ingest(struct db *db, const Mxfleet__V1__OutcomeBatch *b,
    uint64_t *stored, uint64_t *duplicates)
{
	struct ingest_arg a = { .b = b };
	int rc;

	*stored = 0;
	*duplicates = 0;
	db->err[0] = '\0';
	if ((rc = ingest_check(db, b)) != DB_OK)
		return rc;
	ingest_prepare(&a);
	/* Idempotent, so repeated even when the first COMMIT may have
	 * landed: a second run then stores nothing and counts duplicates. */
	rc = db_call(db, db_ingest_op, &a, DB_REPEAT_ALWAYS);
	if (rc == DB_OK) {
		*stored = a.stored;
		*duplicates = b->n_outcomes - a.stored;
	}
	buf_free(&a.copy);
	free(a.days);
	return rc;
}

/* ---- configuration ---- */

struct config_arg {
	const void	*in;
	uint64_t	 version;
};


/* One change in its own transaction: 0 rows touched is want_none. */
static int
config_change(struct db *db, const char *what, const char *sql,
    const struct db_params *p, int want_none, uint64_t *version)
{
	int rc;

	if ((rc = db_cmd(db, what, "BEGIN", NULL)) != DB_OK)
		return rc;
	return config_change_open(db, what, sql, p, want_none, version);
}


static int
db_domain_add_op(struct db *db, void *arg)
{
	struct config_arg *a = arg;
	const Mxfleet__V1__DomainConfig *d = a->in;
	struct db_params p = { 0 };

	dbp_str(&p, d->name);
	dbp_str(&p, d->next_hop);
	return config_change(db, "domain add",
	    "INSERT INTO domains (name, next_hop) VALUES ($1, $2)"
	    " ON CONFLICT ((lower(name))) DO NOTHING", &p, DB_EEXIST, &a->version);
}


int
db_domain_add(struct db *db, const Mxfleet__V1__DomainConfig *d, uint64_t *version)
{
	struct config_arg a = { .in = d };
	int rc;

	db->err[0] = '\0';
	if ((rc = config_text_check(db, "domain add", d->name, 0)) != DB_OK ||
	    (rc = config_text_check(db, "domain add", d->next_hop, 1)) != DB_OK)
		return rc;
	rc = db_call(db, db_domain_add_op, &a, DB_REPEAT_UNTIL_COMMIT);
	if (rc == DB_OK && version != NULL)
		*version = a.version;
	return rc;
}

static int
db_domain_remove_op(struct db *db, void *arg)
{
	struct config_arg *a = arg;
	struct db_params p = { 0 };

	dbp_str(&p, a->in);
	return config_change(db, "domain remove",
	    "DELETE FROM domains WHERE lower(name) = lower($1)", &p, DB_ENOTFOUND,
	    &a->version);
}

int
db_domain_remove(struct db *db, const char *name, uint64_t *version)
{
	struct config_arg a = { .in = name };
	int rc;

	db->err[0] = '\0';
	if ((rc = config_text_check(db, "domain remove", name, 0)) != DB_OK)
		return rc;
	rc = db_call(db, db_domain_remove_op, &a, DB_REPEAT_UNTIL_COMMIT);
	if (rc == DB_OK && version != NULL)
		*version = a.version;
	return rc;
}

static const char db_sql_domains[] =
    "SELECT name, next_hop FROM domains ORDER BY lower(name), name";
static const char db_sql_routes[] =
    "SELECT match_sender_domain, match_recipient_domain, min_attempt, transport"
    " FROM routes ORDER BY id";

static Mxfleet__V1__DomainConfig **
domains_from(const PGresult *res, size_t *n)
{
	Mxfleet__V1__DomainConfig **v;

	*n = (size_t)PQntuples(res);
	v = xcalloc(*n, sizeof(*v));
	for (size_t r = 0; r < *n; r++) {
		v[r] = xmalloc(sizeof(*v[r]));
		mxfleet__v1__domain_config__init(v[r]);
		v[r]->name = db_get_str(res, (int)r, 0);
		v[r]->next_hop = db_get_str(res, (int)r, 1);
	}
	return v;
}

static void
domains_free(Mxfleet__V1__DomainConfig **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		db_str_free(v[i]->name);
		db_str_free(v[i]->next_hop);
		free(v[i]);
	}
	free(v);
}

static Mxfleet__V1__RouteConfig **
routes_from(const PGresult *res, size_t *n)
{
	Mxfleet__V1__RouteConfig **v;

	*n = (size_t)PQntuples(res);
	v = xcalloc(*n, sizeof(*v));
	for (size_t r = 0; r < *n; r++) {
		v[r] = xmalloc(sizeof(*v[r]));
		mxfleet__v1__route_config__init(v[r]);
		v[r]->match_sender_domain = db_get_str(res, (int)r, 0);
		v[r]->match_recipient_domain = db_get_str(res, (int)r, 1);
		v[r]->min_attempt = (uint32_t)db_get_u64(res, (int)r, 2);
		v[r]->transport = db_get_str(res, (int)r, 3);
	}
	return v;
}

static void
routes_free(Mxfleet__V1__RouteConfig **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		db_str_free(v[i]->match_sender_domain);
		db_str_free(v[i]->match_recipient_domain);
		db_str_free(v[i]->transport);
		free(v[i]);
	}
	free(v);
}

static int
db_domain_list_op(struct db *db, void *arg)
{
	Mxfleet__V1__DomainList **out = arg, *l;
	PGresult *res = NULL;
	int rc;

	if ((rc = db_query(db, "domain list", db_sql_domains, NULL, &res)) != DB_OK)
		return rc;
	l = xmalloc(sizeof(*l));
	mxfleet__v1__domain_list__init(l);
	l->domains = domains_from(res, &l->n_domains);
	PQclear(res);
	*out = l;
	return DB_OK;
}

int
db_domain_list(struct db *db, Mxfleet__V1__DomainList **out)
{
	*out = NULL;
	return db_call(db, db_domain_list_op, out, DB_REPEAT_ALWAYS);
}

void
db_domain_list_free(Mxfleet__V1__DomainList *l)
{
	if (l == NULL)
		return;
	domains_free(l->domains, l->n_domains);
	free(l);
}

static int
route_check(struct db *db, const char *what, const Mxfleet__V1__RouteConfig *r)
{
	int rc;

	if ((rc = config_text_check(db, what, r->match_sender_domain, 1)) != DB_OK ||
	    (rc = config_text_check(db, what, r->match_recipient_domain, 1)) != DB_OK ||
	    (rc = config_text_check(db, what, r->transport, 0)) != DB_OK)
		return rc;
	return DB_OK;
}

static void
route_params(struct db_params *p, const Mxfleet__V1__RouteConfig *r)
{
	dbp_str(p, r->match_sender_domain);
	dbp_str(p, r->match_recipient_domain);
	dbp_u64(p, r->min_attempt);
	dbp_str(p, r->transport);
}

static int
db_route_add_op(struct db *db, void *arg)
{
	struct config_arg *a = arg;
	struct db_params p = { 0 };

	route_params(&p, a->in);
	return config_change(db, "route add",
	    "INSERT INTO routes (match_sender_domain, match_recipient_domain,"
	    " min_attempt, transport) VALUES ($1, $2, $3, $4)"
	    " ON CONFLICT (match_sender_domain, match_recipient_domain, min_attempt,"
	    " transport) DO NOTHING", &p, DB_EEXIST, &a->version);
}

int
db_route_add(struct db *db, const Mxfleet__V1__RouteConfig *r, uint64_t *version)
{
	struct config_arg a = { .in = r };
	int rc;

	db->err[0] = '\0';
	if ((rc = route_check(db, "route add", r)) != DB_OK)
		return rc;
	rc = db_call(db, db_route_add_op, &a, DB_REPEAT_UNTIL_COMMIT);
	if (rc == DB_OK && version != NULL)
		*version = a.version;
	return rc;
}

static int
db_route_remove_op(struct db *db, void *arg)
{
	struct config_arg *a = arg;
	struct db_params p = { 0 };

	route_params(&p, a->in);
	return config_change(db, "route remove",
	    "DELETE FROM routes WHERE match_sender_domain = $1"
	    " AND match_recipient_domain = $2 AND min_attempt = $3 AND transport = $4",
	    &p, DB_ENOTFOUND, &a->version);
}

int
db_route_remove(struct db *db, const Mxfleet__V1__RouteConfig *r, uint64_t *version)
{
	struct config_arg a = { .in = r };
	int rc;

	db->err[0] = '\0';
	if ((rc = route_check(db, "route remove", r)) != DB_OK)
		return rc;
	rc = db_call(db, db_route_remove_op, &a, DB_REPEAT_UNTIL_COMMIT);
	if (rc == DB_OK && version != NULL)
		*version = a.version;
	return rc;
}

static int
db_route_list_op(struct db *db, void *arg)
{
	Mxfleet__V1__RouteList **out = arg, *l;
	PGresult *res = NULL;
	int rc;

	if ((rc = db_query(db, "route list", db_sql_routes, NULL, &res)) != DB_OK)
		return rc;
	l = xmalloc(sizeof(*l));
	mxfleet__v1__route_list__init(l);
	l->routes = routes_from(res, &l->n_routes);
	PQclear(res);
	*out = l;
	return DB_OK;
}

int
db_route_list(struct db *db, Mxfleet__V1__RouteList **out)
{
	*out = NULL;
	return db_call(db, db_route_list_op, out, DB_REPEAT_ALWAYS);
}

void
db_route_list_free(Mxfleet__V1__RouteList *l)
{
	if (l == NULL)
		return;
	routes_free(l->routes, l->n_routes);
	free(l);
}

static const char db_sql_policies[] =
    "SELECT domain, mode FROM tls_policies ORDER BY lower(domain), domain";

int
db_policy_mode_ok(const char *mode)
{
	static const char *const modes[] = {
		"none", "may", "encrypt", "dane", "dane-only", "verify", "secure", NULL
	};
	for (const char *const *m = modes; *m; m++)
		if (mode && strcmp(mode, *m) == 0)
			return 1;
	return 0;
}

static int
db_policy_set_op(struct db *db, void *arg)
{
	struct config_arg *a = arg;
	const Mxfleet__V1__TlsPolicyConfig *pc = a->in;
	struct db_params p = { 0 };

	dbp_str(&p, pc->domain);
	dbp_str(&p, pc->mode);
	/* Setting the mode it already has changes nothing: no new version. */
	return config_change(db, "policy set",
	    "INSERT INTO tls_policies (domain, mode) VALUES ($1, $2)"
	    " ON CONFLICT ((lower(domain))) DO UPDATE SET mode = EXCLUDED.mode"
	    " WHERE tls_policies.mode IS DISTINCT FROM EXCLUDED.mode", &p, DB_EEXIST, &a->version);
}

int
db_policy_set(struct db *db, const Mxfleet__V1__TlsPolicyConfig *pc, uint64_t *version)
{
	struct config_arg a = { .in = pc };
	int rc;

	db->err[0] = '\0';
	if ((rc = config_text_check(db, "policy set", pc->domain, 0)) != DB_OK)
		return rc;
	if (!db_policy_mode_ok(pc->mode)) {
		db_seterr(db, "policy set: mode must be none, may, encrypt, dane, dane-only, verify or secure");
		return DB_EINVAL;
	}
	rc = db_call(db, db_policy_set_op, &a, DB_REPEAT_UNTIL_COMMIT);
	if (rc == DB_OK && version != NULL)
		*version = a.version;
	return rc;
}

static int
db_policy_remove_op(struct db *db, void *arg)
{
	struct config_arg *a = arg;
	struct db_params p = { 0 };

	dbp_str(&p, a->in);
	return config_change(db, "policy remove",
	    "DELETE FROM tls_policies WHERE lower(domain) = lower($1)", &p, DB_ENOTFOUND,
	    &a->version);
}

int
db_policy_remove(struct db *db, const char *domain, uint64_t *version)
{
	struct config_arg a = { .in = domain };
	int rc;

	db->err[0] = '\0';
	if ((rc = config_text_check(db, "policy remove", domain, 0)) != DB_OK)
		return rc;
	rc = db_call(db, db_policy_remove_op, &a, DB_REPEAT_UNTIL_COMMIT);
	if (rc == DB_OK && version != NULL)
		*version = a.version;
	return rc;
}

static Mxfleet__V1__TlsPolicyConfig **
policies_from(const PGresult *res, size_t *n)
{
	Mxfleet__V1__TlsPolicyConfig **v;

	*n = (size_t)PQntuples(res);
	v = xcalloc(*n, sizeof(*v));
	for (size_t r = 0; r < *n; r++) {
		v[r] = xmalloc(sizeof(*v[r]));
		mxfleet__v1__tls_policy_config__init(v[r]);
		v[r]->domain = db_get_str(res, (int)r, 0);
		v[r]->mode = db_get_str(res, (int)r, 1);
	}
	return v;
}

static void
policies_free(Mxfleet__V1__TlsPolicyConfig **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		db_str_free(v[i]->domain);
		db_str_free(v[i]->mode);
		free(v[i]);
	}
	free(v);
}

static int
db_policy_list_op(struct db *db, void *arg)
{
	Mxfleet__V1__PolicyList **out = arg, *l;
	PGresult *res = NULL;
	int rc;

	if ((rc = db_query(db, "policy list", db_sql_policies, NULL, &res)) != DB_OK)
		return rc;
	l = xmalloc(sizeof(*l));
	mxfleet__v1__policy_list__init(l);
	l->policies = policies_from(res, &l->n_policies);
	PQclear(res);
	*out = l;
	return DB_OK;
}

int
db_policy_list(struct db *db, Mxfleet__V1__PolicyList **out)
{
	*out = NULL;
	return db_call(db, db_policy_list_op, out, DB_REPEAT_ALWAYS);
}

void
db_policy_list_free(Mxfleet__V1__PolicyList *l)
{
	if (l == NULL)
		return;
	policies_free(l->policies, l->n_policies);
	free(l);
}

static int
db_config_version_op(struct db *db, void *arg)
{
	return config_version_get(db, arg);
}

int
db_config_version(struct db *db, uint64_t *version)
{
	*version = 0;
	return db_call(db, db_config_version_op, version, DB_REPEAT_ALWAYS);
}

static int
db_config_snapshot_op(struct db *db, void *arg)
{
	Mxfleet__V1__ConfigSnapshot **out = arg, *s;
	PGresult *dres = NULL, *rres = NULL, *pres = NULL, *cres = NULL;
	Mxfleet__V1__MtaStsPolicy **sts = NULL;
	Mxfleet__V1__KeySwitch **ks = NULL;
	char *sender = NULL;
	char **rpt = NULL;
	size_t nsts = 0, nks = 0, nrpt = 0;
	uint64_t version;
	int rc;

	/* One snapshot of the database for all the reads: the version is
	 * exactly the one of these domains and routes. */
	if ((rc = db_cmd(db, "snapshot",
	    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL)) != DB_OK)
		return rc;
	if ((rc = config_version_get(db, &version)) != DB_OK ||
	    (rc = db_query(db, "snapshot: domains", db_sql_domains, NULL, &dres)) != DB_OK)
		return rc;
	if ((rc = db_query(db, "snapshot: routes", db_sql_routes, NULL, &rres)) != DB_OK) {
		PQclear(dres);
		return rc;
	}
	if ((rc = db_query(db, "snapshot: policies", db_sql_policies, NULL, &pres)) != DB_OK) {
		PQclear(dres);
		PQclear(rres);
		return rc;
	}
	if ((rc = db_query(db, "snapshot: recipient checks", db_sql_recipient_checks, NULL,
	    &cres)) != DB_OK || (rc = db_dns_snapshot_sts(db, &sts, &nsts)) != DB_OK ||
	    (rc = db_rollover_snapshot(db, &ks, &nks)) != DB_OK ||
	    (rc = db_tlsrpt_sender_snapshot(db, &sender)) != DB_OK ||
	    (rc = db_rptrecv_addresses(db, &rpt, &nrpt)) != DB_OK ||
	    (rc = db_commit(db, "snapshot")) != DB_OK) {
		PQclear(dres);
		PQclear(rres);
		PQclear(pres);
		PQclear(cres);
		db_dns_sts_free(sts, nsts);
		db_rollover_snapshot_free(ks, nks);
		free(sender);
		db_rptrecv_addresses_free(rpt, nrpt);
		return rc;
	}
	s = xmalloc(sizeof(*s));
	mxfleet__v1__config_snapshot__init(s);
	s->version = version;
	s->domains = domains_from(dres, &s->n_domains);
	s->routes = routes_from(rres, &s->n_routes);
	s->policies = policies_from(pres, &s->n_policies);
	s->recipient_checks = recipient_checks_from(cres, &s->n_recipient_checks);
	s->mta_sts = sts;
	s->n_mta_sts = nsts;
	s->key_switches = ks;
	s->n_key_switches = nks;
	s->tlsrpt_sender = sender;
	s->tlsrpt_addresses = rpt;
	s->n_tlsrpt_addresses = nrpt;
	PQclear(dres);
	PQclear(rres);
	PQclear(pres);
	PQclear(cres);
	*out = s;
	return DB_OK;
}

int
db_config_snapshot(struct db *db, Mxfleet__V1__ConfigSnapshot **out)
{
	*out = NULL;
	return db_call(db, db_config_snapshot_op, out, DB_REPEAT_ALWAYS);
}

void
db_config_snapshot_free(Mxfleet__V1__ConfigSnapshot *s)
{
	if (s == NULL)
		return;
	domains_free(s->domains, s->n_domains);
	routes_free(s->routes, s->n_routes);
	policies_free(s->policies, s->n_policies);
	recipient_checks_free(s->recipient_checks, s->n_recipient_checks);
	db_dns_sts_free(s->mta_sts, s->n_mta_sts);
	db_rollover_snapshot_free(s->key_switches, s->n_key_switches);
	free(s->tlsrpt_sender);
	db_rptrecv_addresses_free(s->tlsrpt_addresses, s->n_tlsrpt_addresses);
	free(s);
}

