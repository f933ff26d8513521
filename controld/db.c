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
#define DB_MAX_UNIX_S		INT64_C(253402300799)
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

/* A NUL-terminated string that is all UTF-8. */
static int
db_utf8_valid(const char *s)
{
	return utf8_valid((const unsigned char *)s, strlen(s));
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

/* ---- migrations ---- */

struct migration {
	unsigned	 version;
	char		*file;
	char		*sql;
	char		 checksum[8 + 2 * 32 + 1];	/* "sha256:" + hex */
};

struct migrate_arg {
	struct migration	*m;
	size_t			 n;
	unsigned		 applied;
};

static const char db_sql_migrations_table[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

static int
migration_cmp(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	return x->version < y->version ? -1 : x->version > y->version;
}

/* NNN_name.sql -> NNN; -1 for any other name (READMEs, editor files). */
static long
migration_version(const char *name)
{
	const char *p = name;
	long v = 0;
	size_t len = strlen(name);

	if (len < 6 || strcmp(name + len - 4, ".sql") != 0)
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (*p - '0');
		if (v > 1000000)
			return -1;
	}
	if (p == name || *p != '_')
		return -1;
	return v;
}

static void
migrations_free(struct migration *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].file);
		free(m[i].sql);
	}
	free(m);
}

static int
migration_read(struct db *db, const char *dir, struct migration *m)
{
	char *path = xasprintf("%s/%s", dir, m->file);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct stat st;
	ssize_t r;
	size_t got = 0;
	int fd, rc = DB_EIO;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		db_seterr(db, "migration %s: %s", path, strerror(errno));
		goto out;
	}
	if (st.st_size > DB_MIGRATION_MAX_BYTES) {
		db_seterr(db, "migration %s: larger than %d bytes", path,
		    DB_MIGRATION_MAX_BYTES);
		goto out;
	}
	m->sql = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		r = read(fd, m->sql + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			db_seterr(db, "migration %s: %s", path,
			    r < 0 ? strerror(errno) : "short read");
			goto out;
		}
		got += (size_t)r;
	}
	m->sql[got] = '\0';
	if (memchr(m->sql, '\0', got) != NULL) {
		db_seterr(db, "migration %s: contains a NUL byte", path);
		goto out;
	}
	if (EVP_Digest(m->sql, got, md, &mdlen, EVP_sha256(), NULL) != 1) {
		db_seterr(db, "migration %s: sha256 failed", path);
		goto out;
	}
	strcpy(m->checksum, "sha256:");
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(m->checksum + 7 + 2 * i, 3, "%02x", md[i]);
	rc = DB_OK;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

static int
migrations_load(struct db *db, const char *dir, struct migration **out, size_t *nout)
{
	struct migration *m = NULL;
	struct dirent *de;
	size_t n = 0;
	DIR *d;
	long v;

	*out = NULL;
	*nout = 0;
	if ((d = opendir(dir)) == NULL) {
		db_seterr(db, "schema directory %s: %s", dir, strerror(errno));
		return DB_EIO;
	}
	while ((de = readdir(d)) != NULL) {
		if ((v = migration_version(de->d_name)) < 0)
			continue;
		m = xreallocarray(m, n + 1, sizeof(*m));
		memset(&m[n], 0, sizeof(m[n]));
		m[n].version = (unsigned)v;
		m[n].file = xstrdup(de->d_name);
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(m, n, sizeof(*m), migration_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && m[i].version == m[i - 1].version) {
			db_seterr(db, "schema directory %s: %s and %s share version %u",
			    dir, m[i - 1].file, m[i].file, m[i].version);
			migrations_free(m, n);
			return DB_EINVAL;
		}
		if (migration_read(db, dir, &m[i]) != DB_OK) {
			migrations_free(m, n);
			return DB_EIO;
		}
	}
	*out = m;
	*nout = n;
	return DB_OK;
}

static int
migration_apply(struct db *db, const struct migration *m)
{
	struct db_params p = { 0 };
	PGresult *res = NULL;
	char what[300];
	int rc;

	snprintf(what, sizeof(what), "migration %s", m->file);
	if ((rc = db_cmd(db, what, "BEGIN", NULL)) != DB_OK)
		return rc;
	/* A file holds several statements: the simple query protocol. */
	res = PQexec(db->conn, m->sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		return db_fail(db, res, what);
	PQclear(res);
	dbp_u64(&p, m->version);
	dbp_str(&p, m->file);
	dbp_str(&p, m->checksum);
	if ((rc = db_cmd(db, what, "INSERT INTO schema_migrations (version, name, checksum)"
	    " VALUES ($1, $2, $3)", &p)) != DB_OK)
		return rc;
	if ((rc = db_commit(db, what)) != DB_OK)
		return rc;
	log_info("event=db_migrated version=%u file=%s", m->version, m->file);
	return DB_OK;
}

static int
db_migrate_locked(struct db *db, struct migrate_arg *a)
{
	PGresult *res = NULL;
	size_t i, known = 0;
	int rc, r, found;

	if ((rc = db_cmd(db, "migrate: create schema_migrations",
	    db_sql_migrations_table, NULL)) != DB_OK)
		return rc;
	if ((rc = db_query(db, "migrate: read schema_migrations",
	    "SELECT version, checksum, name FROM schema_migrations ORDER BY version",
	    NULL, &res)) != DB_OK)
		return rc;
	for (i = 0; i < a->n; i++) {
		struct migration *m = &a->m[i];

		found = 0;
		for (r = 0; r < PQntuples(res); r++) {
			if (db_get_u64(res, r, 0) != m->version)
				continue;
			found = 1;
			known++;
			if (strcmp(PQgetvalue(res, r, 1), m->checksum) != 0)
				log_warnx("event=db_migration_changed version=%u file=%s"
				    " note=\"applied as %s with other content; not applied again\"",
				    m->version, m->file, PQgetvalue(res, r, 2));
			break;
		}
		if (found)
			continue;
		if ((rc = migration_apply(db, m)) != DB_OK) {
			PQclear(res);
			return rc;
		}
		a->applied++;
	}
	if ((size_t)PQntuples(res) > known)
		log_warnx("event=db_schema_newer applied=%d known=%zu"
		    " note=\"the database has migrations this controld does not ship\"",
		    PQntuples(res), known);
	PQclear(res);
	return DB_OK;
}

static int
db_migrate_op(struct db *db, void *arg)
{
	struct migrate_arg *a = arg;
	struct db_params p = { 0 };
	int rc;

	a->applied = 0;
	/* A migration may rewrite a large table, and a replica may wait here
	 * for another's: no statement timeout meanwhile. */
	if ((rc = db_apply_statement_timeout(db, 0)) != DB_OK)
		return rc;
	dbp_i64(&p, DB_LOCK_CLASS);
	dbp_i64(&p, DB_LOCK_MIGRATE);
	/* Session-level: held across the per-file transactions, released at
	 * the end or when the connection dies. */
	if ((rc = db_query(db, "migrate: lock", "SELECT pg_advisory_lock($1, $2)",
	    &p, NULL)) != DB_OK)
		return rc;
	rc = db_migrate_locked(db, a);
	if (db_conn_ok(db)) {
		PGresult *res = PQexecParams(db->conn, "SELECT pg_advisory_unlock($1, $2)",
		    p.n, NULL, p.v, NULL, NULL, 0);

		/* A failure here is reported only if nothing failed before. */
		if (PQresultStatus(res) != PGRES_TUPLES_OK && rc == DB_OK)
			return db_fail(db, res, "migrate: unlock");
		PQclear(res);
		int trc = db_apply_statement_timeout(db, db->statement_timeout_ms);
		if (rc == DB_OK)
			rc = trc;
	}
	return rc;
}

int
db_migrate(struct db *db, const char *dir, unsigned *applied)
{
	struct migrate_arg a = { 0 };
	int rc;

	if (applied != NULL)
		*applied = 0;
	db->err[0] = '\0';
	if ((rc = migrations_load(db, dir, &a.m, &a.n)) != DB_OK)
		return rc;
	/* Repeating is safe: the second run skips what the first recorded. */
	rc = db_call(db, db_migrate_op, &a, DB_REPEAT_ALWAYS);
	if (applied != NULL)
		*applied = a.applied;
	migrations_free(a.m, a.n);
	return rc;
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

/* ---- hosts ---- */

static const char db_sql_config_version[] = "SELECT version FROM config_state";

struct host_arg {
	const void	*req;
	uint64_t	 config_version;
};

static int
db_register_op(struct db *db, void *arg)
{
	struct host_arg *a = arg;
	const Mxfleet__V1__RegisterRequest *req = a->req;
	struct db_params p = { 0 };
	struct buf listen;
	PGresult *res = NULL;
	int rc;

	buf_init(&listen);
	for (size_t i = 0; i < req->n_listen; i++) {
		if (i > 0)
			buf_appendc(&listen, '\n');
		buf_appends(&listen, req->listen[i]);
	}
	dbp_str(&p, req->host_id);
	dbp_str(&p, req->version);
	dbp_str(&p, listen.len > 0 ? listen.data : "");
	rc = db_query(db, "register",
	    "INSERT INTO hosts AS h (host_id, version, listen, registered_at)"
	    " VALUES ($1, $2, string_to_array($3, E'\\n'), now())"
	    " ON CONFLICT (host_id) DO UPDATE SET version = EXCLUDED.version,"
	    " listen = EXCLUDED.listen, registered_at = now(),"
	    " last_seen = greatest(h.last_seen, now())"
	    " RETURNING (SELECT version FROM config_state)", &p, &res);
	buf_free(&listen);
	if (rc != DB_OK)
		return rc;
	a->config_version = db_get_u64(res, 0, 0);
	PQclear(res);
	return DB_OK;
}

static int
host_id_check(struct db *db, const char *what, const char *host_id)
{
	if (host_id == NULL || host_id[0] == '\0' || !db_utf8_valid(host_id)) {
		db_seterr(db, "%s: host_id empty or not UTF-8", what);
		return DB_EINVAL;
	}
	return DB_OK;
}

int
db_host_register(struct db *db, const Mxfleet__V1__RegisterRequest *req,
    uint64_t *config_version)
{
	struct host_arg a = { .req = req };
	int rc;

	db->err[0] = '\0';
	if ((rc = host_id_check(db, "register", req->host_id)) != DB_OK)
		return rc;
	if (!db_utf8_valid(req->version)) {
		db_seterr(db, "register: version is not UTF-8");
		return DB_EINVAL;
	}
	for (size_t i = 0; i < req->n_listen; i++) {
		if (strchr(req->listen[i], '\n') != NULL || !db_utf8_valid(req->listen[i])) {
			db_seterr(db, "register: listen address %zu has a newline or"
			    " is not UTF-8", i);
			return DB_EINVAL;
		}
	}
	rc = db_call(db, db_register_op, &a, DB_REPEAT_ALWAYS);
	if (rc == DB_OK && config_version != NULL)
		*config_version = a.config_version;
	return rc;
}

static int
db_heartbeat_op(struct db *db, void *arg)
{
	struct host_arg *a = arg;
	const Mxfleet__V1__HeartbeatRequest *req = a->req;
	struct db_params p = { 0 };
	PGresult *res = NULL;
	int rc;

	dbp_str(&p, req->host_id);
	dbp_str(&p, req->version);
	dbp_u64(&p, req->journal_backlog);
	dbp_u64(&p, req->config_version);
	if (req->cert_not_after_unix != 0)
		dbp_i64(&p, req->cert_not_after_unix);
	else
		dbp_null(&p);
	/* An empty version or a zero expiry means "not told": keep what we had. */
	if ((rc = db_query(db, "heartbeat",
	    "INSERT INTO hosts AS h (host_id, version, journal_backlog, config_version,"
	    " cert_not_after)"
	    " VALUES ($1, $2, $3, $4, to_timestamp($5::bigint))"
	    " ON CONFLICT (host_id) DO UPDATE SET"
	    " version = coalesce(nullif(EXCLUDED.version, ''), h.version),"
	    " journal_backlog = EXCLUDED.journal_backlog,"
	    " config_version = EXCLUDED.config_version,"
	    " cert_not_after = coalesce(EXCLUDED.cert_not_after, h.cert_not_after),"
	    " last_seen = greatest(h.last_seen, now())"
	    " RETURNING (SELECT version FROM config_state)", &p, &res)) != DB_OK)
		return rc;
	a->config_version = db_get_u64(res, 0, 0);
	PQclear(res);
	return DB_OK;
}

int
db_host_heartbeat(struct db *db, const Mxfleet__V1__HeartbeatRequest *req,
    uint64_t *config_version)
{
	struct host_arg a = { .req = req };
	int rc;

	db->err[0] = '\0';
	if ((rc = host_id_check(db, "heartbeat", req->host_id)) != DB_OK)
		return rc;
	if (!db_utf8_valid(req->version) || req->journal_backlog > INT64_MAX ||
	    req->config_version > INT64_MAX || req->cert_not_after_unix < 0 ||
	    req->cert_not_after_unix > DB_MAX_UNIX_S) {
		db_seterr(db, "heartbeat: host %.100s: version not UTF-8 or a number"
		    " out of range", req->host_id);
		return DB_EINVAL;
	}
	rc = db_call(db, db_heartbeat_op, &a, DB_REPEAT_ALWAYS);
	if (rc == DB_OK && config_version != NULL)
		*config_version = a.config_version;
	return rc;
}

static int
db_hosts_list_op(struct db *db, void *arg)
{
	Mxfleet__V1__HostList **out = arg, *l;
	PGresult *res = NULL;
	int rc, n;

	if ((rc = db_query(db, "hosts",
	    "SELECT host_id, version, floor(extract(epoch FROM last_seen))::bigint,"
	    " journal_backlog, config_version,"
	    " coalesce(floor(extract(epoch FROM cert_not_after))::bigint, 0),"
	    " outcomes, dropped, corrupt"
	    " FROM hosts ORDER BY host_id", NULL, &res)) != DB_OK)
		return rc;
	n = PQntuples(res);
	l = xmalloc(sizeof(*l));
	mxfleet__v1__host_list__init(l);
	l->n_hosts = (size_t)n;
	l->hosts = xcalloc((size_t)n, sizeof(*l->hosts));
	for (int r = 0; r < n; r++) {
		Mxfleet__V1__HostInfo *h = xmalloc(sizeof(*h));

		mxfleet__v1__host_info__init(h);
		h->host_id = db_get_str(res, r, 0);
		h->version = db_get_str(res, r, 1);
		h->last_seen_unix = db_get_i64(res, r, 2);
		h->journal_backlog = db_get_u64(res, r, 3);
		h->config_version = db_get_u64(res, r, 4);
		h->cert_not_after_unix = db_get_i64(res, r, 5);
		h->outcomes = db_get_u64(res, r, 6);
		h->dropped = db_get_u64(res, r, 7);
		h->corrupt = db_get_u64(res, r, 8);
		l->hosts[r] = h;
	}
	PQclear(res);
	*out = l;
	return DB_OK;
}

int
db_hosts_list(struct db *db, Mxfleet__V1__HostList **out)
{
	*out = NULL;
	return db_call(db, db_hosts_list_op, out, DB_REPEAT_ALWAYS);
}

/* Strings of the messages built here are all allocated, but be safe with
 * a field left at protobuf-c's shared empty string. */
static void
db_str_free(char *s)
{
	if (s != NULL && s != protobuf_c_empty_string)
		free(s);
}

void
db_host_list_free(Mxfleet__V1__HostList *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n_hosts; i++) {
		db_str_free(l->hosts[i]->host_id);
		db_str_free(l->hosts[i]->version);
		db_identity_free(l->hosts[i]->identity);
		free(l->hosts[i]);
	}
	free(l->hosts);
	free(l);
}

/* ---- configuration ---- */

struct config_arg {
	const void	*in;
	uint64_t	 version;
};

/* The version as this transaction sees it, after its own changes. */
static int
config_version_get(struct db *db, uint64_t *version)
{
	PGresult *res = NULL;
	int rc;

	if ((rc = db_query(db, "config version", db_sql_config_version, NULL, &res)) != DB_OK)
		return rc;
	*version = PQntuples(res) == 1 ? db_get_u64(res, 0, 0) : 0;
	PQclear(res);
	return DB_OK;
}

static int config_change_open(struct db *db, const char *what, const char *sql,
    const struct db_params *p, int want_none, uint64_t *version);

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

/* config_change inside a transaction the caller began: it ends it. */
static int
config_change_open(struct db *db, const char *what, const char *sql,
    const struct db_params *p, int want_none, uint64_t *version)
{
	PGresult *res = NULL;
	uint64_t n;
	int rc;

	if ((rc = db_run(db, what, sql, p, PGRES_COMMAND_OK, &res)) != DB_OK)
		return rc;
	n = db_affected(res);
	PQclear(res);
	if (n == 0) {
		PQclear(PQexec(db->conn, "ROLLBACK"));
		if (!db_conn_ok(db)) {
			db_seterr(db, "%s: %s", what, PQerrorMessage(db->conn));
			return DB_ECONN;
		}
		db_seterr(db, "%s: %s", what, want_none == DB_EEXIST ?
		    "already present" : "not found");
		return want_none;
	}
	if ((rc = config_version_get(db, version)) != DB_OK)
		return rc;
	return db_commit(db, what);
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

static int
config_text_check(struct db *db, const char *what, const char *s, int may_be_empty)
{
	if (s == NULL || (!may_be_empty && s[0] == '\0') || !db_utf8_valid(s)) {
		db_seterr(db, "%s: a field is empty or not UTF-8", what);
		return DB_EINVAL;
	}
	return DB_OK;
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

/* ---- recipient checks (schema/007) ---- */

struct recipients_arg {
	const char	*domain;
	const char	*mode;		/* set */
	const char	*locals;	/* add, remove: local parts, '\n' between */
	const char	*sql;
	int		 want_none;
	uint64_t	 version;
	Mxfleet__V1__DomainRecipients *list;	/* list */
};

/* Lock the domain's row for this transaction: its list cannot outlive it. */
static int
recipients_domain_lock(struct db *db, const char *what, const char *domain)
{
	struct db_params p = { 0 };
	PGresult *res = NULL;
	int rc, found;

	dbp_str(&p, domain);
	if ((rc = db_query(db, what, "SELECT 1 FROM domains WHERE lower(name) = lower($1)"
	    " FOR SHARE", &p, &res)) != DB_OK)
		return rc;
	found = PQntuples(res) > 0;
	PQclear(res);
	if (found)
		return DB_OK;
	PQclear(PQexec(db->conn, "ROLLBACK"));
	if (!db_conn_ok(db)) {
		db_seterr(db, "%s: %s", what, PQerrorMessage(db->conn));
		return DB_ECONN;
	}
	db_seterr(db, "%s: no domain %s (mailctl domain add first)", what, domain);
	return DB_ENOTFOUND;
}

static int
db_recipients_op(struct db *db, void *arg)
{
	struct recipients_arg *a = arg;
	struct db_params p = { 0 };
	int rc;

	if ((rc = db_cmd(db, "recipients", "BEGIN", NULL)) != DB_OK ||
	    (rc = recipients_domain_lock(db, "recipients", a->domain)) != DB_OK)
		return rc;
	dbp_str(&p, a->domain);
	dbp_str(&p, a->mode ? a->mode : a->locals);
	return config_change_open(db, "recipients", a->sql, &p, a->want_none, &a->version);
}

static int
recipients_change(struct db *db, struct recipients_arg *a, uint64_t *version)
{
	int rc;

	db->err[0] = '\0';
	if ((rc = config_text_check(db, "recipients", a->domain, 0)) != DB_OK)
		return rc;
	rc = db_call(db, db_recipients_op, a, DB_REPEAT_UNTIL_COMMIT);
	if (rc == DB_OK && version != NULL)
		*version = a->version;
	return rc;
}

int
db_recipient_check_set(struct db *db, const char *domain, const char *mode,
    uint64_t *version)
{
	struct recipients_arg a = { .domain = domain, .mode = mode, .want_none = DB_EEXIST,
	    .sql = "UPDATE domains SET recipient_check = $2 WHERE lower(name) = lower($1)"
	    " AND recipient_check <> $2" };

	if (!db_recipient_mode_ok(mode)) {
		db_seterr(db, "recipients: mode must be any, list or verify");
		return DB_EINVAL;
	}
	return recipients_change(db, &a, version);
}

/* Local parts joined by '\n' (none may hold one) for string_to_array. */
static int
recipients_join(struct db *db, char *const *locals, size_t n, struct buf *out)
{
	if (n == 0) {
		db_seterr(db, "recipients: no address given");
		return DB_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (config_text_check(db, "recipients", locals[i], 0) != DB_OK ||
		    strchr(locals[i], '\n') != NULL) {
			db_seterr(db, "recipients: an address is empty, not UTF-8 or has a newline");
			return DB_EINVAL;
		}
		if (i > 0)
			buf_appendc(out, '\n');
		buf_appends(out, locals[i]);
	}
	return DB_OK;
}

static int
recipients_list_change(struct db *db, struct recipients_arg *a, char *const *locals,
    size_t n, uint64_t *version)
{
	struct buf joined;
	int rc;

	buf_init(&joined);
	if ((rc = recipients_join(db, locals, n, &joined)) == DB_OK) {
		a->locals = joined.data;
		rc = recipients_change(db, a, version);
	}
	buf_free(&joined);
	return rc;
}

int
db_recipients_add(struct db *db, const char *domain, char *const *locals, size_t n,
    uint64_t *version)
{
	struct recipients_arg a = { .domain = domain, .want_none = DB_EEXIST,
	    .sql = "INSERT INTO domain_recipients (domain, local_part)"
	    " SELECT lower($1), x FROM unnest(string_to_array($2, E'\\n')) AS x"
	    " ON CONFLICT DO NOTHING" };

	return recipients_list_change(db, &a, locals, n, version);
}

int
db_recipients_remove(struct db *db, const char *domain, char *const *locals, size_t n,
    uint64_t *version)
{
	struct recipients_arg a = { .domain = domain, .want_none = DB_ENOTFOUND,
	    .sql = "DELETE FROM domain_recipients WHERE domain = lower($1)"
	    " AND local_part = ANY (string_to_array($2, E'\\n'))" };

	return recipients_list_change(db, &a, locals, n, version);
}

int
db_recipient_mode_ok(const char *mode)
{
	return mode != NULL && (strcmp(mode, "any") == 0 || strcmp(mode, "list") == 0 ||
	    strcmp(mode, "verify") == 0);
}

/* Rows (domain, mode, local_part or NULL) ordered by domain: one message
 * per domain. */
static Mxfleet__V1__DomainRecipients **
recipient_checks_from(const PGresult *res, size_t *n)
{
	Mxfleet__V1__DomainRecipients **v = NULL, *cur = NULL;
	int rows = PQntuples(res);

	*n = 0;
	for (int r = 0; r < rows; r++) {
		if (cur == NULL || strcmp(cur->domain, PQgetvalue(res, r, 0)) != 0) {
			v = xreallocarray(v, *n + 1, sizeof(*v));
			cur = v[(*n)++] = xmalloc(sizeof(*cur));
			mxfleet__v1__domain_recipients__init(cur);
			cur->domain = db_get_str(res, r, 0);
			cur->mode = db_get_str(res, r, 1);
		}
		if (PQgetisnull(res, r, 2))
			continue;
		if ((cur->n_local_parts & (cur->n_local_parts - 1)) == 0)
			cur->local_parts = xreallocarray(cur->local_parts,
			    cur->n_local_parts ? cur->n_local_parts * 2 : 1, sizeof(char *));
		cur->local_parts[cur->n_local_parts++] = db_get_str(res, r, 2);
	}
	return v;
}

void
db_recipients_free(Mxfleet__V1__DomainRecipients *r)
{
	if (r == NULL)
		return;
	db_str_free(r->domain);
	db_str_free(r->mode);
	for (size_t j = 0; j < r->n_local_parts; j++)
		db_str_free(r->local_parts[j]);
	free(r->local_parts);
	free(r);
}

static void
recipient_checks_free(Mxfleet__V1__DomainRecipients **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		db_recipients_free(v[i]);
	free(v);
}

/* Every domain whose check is set; the local parts only where they apply. */
static const char db_sql_recipient_checks[] =
    "SELECT d.name, d.recipient_check, r.local_part FROM domains d"
    " LEFT JOIN domain_recipients r ON d.recipient_check = 'list'"
    " AND r.domain = lower(d.name)"
    " WHERE d.recipient_check <> '' ORDER BY lower(d.name), d.name, r.local_part";

static int
db_recipients_list_op(struct db *db, void *arg)
{
	struct recipients_arg *a = arg;
	Mxfleet__V1__DomainRecipients **v;
	struct db_params p = { 0 };
	PGresult *res = NULL;
	size_t n;
	int rc;

	dbp_str(&p, a->domain);
	if ((rc = db_query(db, "recipients list",
	    "SELECT d.name, d.recipient_check, r.local_part FROM domains d"
	    " LEFT JOIN domain_recipients r ON r.domain = lower(d.name)"
	    " WHERE lower(d.name) = lower($1) ORDER BY r.local_part", &p, &res)) != DB_OK)
		return rc;
	v = recipient_checks_from(res, &n);
	PQclear(res);
	if (n == 0) {
		free(v);
		db_seterr(db, "recipients list: no domain %s", a->domain);
		return DB_ENOTFOUND;
	}
	a->list = v[0];	/* one domain: one message */
	free(v);
	return DB_OK;
}

int
db_recipients_list(struct db *db, const char *domain, Mxfleet__V1__DomainRecipients **out)
{
	struct recipients_arg a = { .domain = domain };
	int rc;

	*out = NULL;
	db->err[0] = '\0';
	if ((rc = config_text_check(db, "recipients list", domain, 0)) != DB_OK)
		return rc;
	if ((rc = db_call(db, db_recipients_list_op, &a, DB_REPEAT_ALWAYS)) == DB_OK)
		*out = a.list;
	return rc;
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

static int
db_hosts_upload_health_op(struct db *db, void *arg)
{
	Mxfleet__V1__HostList *l = arg;
	PGresult *res = NULL;
	int rc;

	if ((rc = db_query(db, "hosts upload health",
	    "SELECT host_id, batches_refused, outcomes_quarantined FROM hosts", NULL,
	    &res)) != DB_OK)
		return rc;
	for (int r = 0; r < PQntuples(res); r++) {
		const char *id = PQgetvalue(res, r, 0);
		for (size_t i = 0; i < l->n_hosts; i++) {
			if (strcmp(l->hosts[i]->host_id, id) != 0)
				continue;
			l->hosts[i]->batches_refused = db_get_u64(res, r, 1);
			l->hosts[i]->outcomes_quarantined = db_get_u64(res, r, 2);
		}
	}
	PQclear(res);
	return DB_OK;
}

int
db_hosts_upload_health(struct db *db, Mxfleet__V1__HostList *l)
{
	db->err[0] = '\0';
	return db_call(db, db_hosts_upload_health_op, l, DB_REPEAT_ALWAYS);
}
