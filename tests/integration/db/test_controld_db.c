/* controld's PostgreSQL layer against a real PostgreSQL 15: run under
 * tests/tools/with-postgres, which provides PGURI (and PGCTL to restart the
 * server). Each test gets a fresh database and checks what an operator
 * would see in it with psql: row counts, partitions, counters, versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db.h"
#include "db_dnspush.h"
#include "db_internal.h"
#include "log.h"

#ifndef MXFLEET_SCHEMA_DIR
#define MXFLEET_SCHEMA_DIR "schema"
#endif

/* 2024-03-01T00:00:00Z and the next day, in ms. */
#define DAY1_MS		INT64_C(1709251200000)
#define DAY2_MS		(DAY1_MS + INT64_C(86400000))

static const char *pguri;
static const char *schema_dir;
static unsigned db_counter;

struct fixture {
	char		 dbname[64];
	char		*conninfo;
	struct db	*db;
};

/* ---- the operator's view: plain libpq, a fresh connection per question,
 * so a server restart in a test does not get in the way ---- */

static PGconn *
connect_to(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(c));
	return c;
}

static PGresult *
sql_exec(const char *conninfo, const char *sql, const char *param)
{
	PGconn *c = connect_to(conninfo);
	PGresult *res = PQexecParams(c, sql, param != NULL ? 1 : 0, NULL,
	    param != NULL ? &param : NULL, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK &&
	    PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	PQfinish(c);
	return res;
}

static long long
sql_int(struct fixture *f, const char *sql, const char *param)
{
	PGresult *res = sql_exec(f->conninfo, sql, param);
	long long v;

	assert_int_equal(PQntuples(res), 1);
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

/* The single value of a query, as text; "(null)" for NULL. */
static char *
sql_text(struct fixture *f, const char *sql, const char *param)
{
	PGresult *res = sql_exec(f->conninfo, sql, param);
	char *v;

	assert_int_equal(PQntuples(res), 1);
	v = strdup(PQgetisnull(res, 0, 0) ? "(null)" : PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

static void
sql_do(struct fixture *f, const char *sql)
{
	PQclear(sql_exec(f->conninfo, sql, NULL));
}

static long long
outcome_rows(struct fixture *f)
{
	return sql_int(f, "SELECT count(*) FROM outcomes", NULL);
}

/* PGURI with another database, as a keyword=value string. */
static char *
conninfo_for(const char *uri, const char *dbname)
{
	PQconninfoOption *opts, *o;
	char *err = NULL, *out;
	size_t cap = 1024, len = 0;

	if ((opts = PQconninfoParse(uri, &err)) == NULL)
		fail_msg("PGURI: %s", err ? err : "unparsable");
	out = calloc(1, cap);
	for (o = opts; o->keyword != NULL; o++) {
		const char *v = strcmp(o->keyword, "dbname") == 0 ? dbname : o->val;

		if (v == NULL)
			continue;
		len += (size_t)snprintf(out + len, cap - len, "%s='", o->keyword);
		for (; *v != '\0' && len + 4 < cap; v++) {
			if (*v == '\'' || *v == '\\')
				out[len++] = '\\';
			out[len++] = *v;
		}
		len += (size_t)snprintf(out + len, cap - len, "' ");
		assert_true(len < cap - 64);
	}
	PQconninfoFree(opts);
	return out;
}

/* prefix, the quoted identifier, suffix: CREATE/DROP DATABASE take no
 * parameters. */
static void
admin_sql(const char *prefix, const char *ident, const char *suffix)
{
	PGconn *c = connect_to(pguri);
	char *q = PQescapeIdentifier(c, ident, strlen(ident)), sql[256];
	PGresult *res;

	snprintf(sql, sizeof(sql), "%s%s%s", prefix, q, suffix);
	res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfreemem(q);
	PQfinish(c);
}

/* ---- fixtures ---- */

static int
group_setup(void **state)
{
	(void)state;
	log_init("test_controld_db", LOG_LEVEL_WARN, 0);
	if ((pguri = getenv("PGURI")) == NULL) {
		fprintf(stderr, "PGURI unset: run under tests/tools/with-postgres\n");
		return -1;
	}
	if ((schema_dir = getenv("MXFLEET_SCHEMA_DIR")) == NULL)
		schema_dir = MXFLEET_SCHEMA_DIR;
	return 0;
}

static int
setup_unmigrated(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[512];

	snprintf(f->dbname, sizeof(f->dbname), "mxtest_%ld_%u", (long)getpid(),
	    ++db_counter);
	admin_sql("CREATE DATABASE ", f->dbname, "");
	f->conninfo = conninfo_for(pguri, f->dbname);
	if (db_open(&f->db, f->conninfo, err, sizeof(err)) != DB_OK) {
		fprintf(stderr, "db_open: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
setup(void **state)
{
	struct fixture *f;

	if (setup_unmigrated(state) != 0)
		return -1;
	f = *state;
	if (db_migrate(f->db, schema_dir, NULL) != DB_OK) {
		fprintf(stderr, "db_migrate: %s\n", db_errmsg(f->db));
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	db_close(f->db);
	admin_sql("DROP DATABASE ", f->dbname, " WITH (FORCE)");
	free(f->conninfo);
	free(f);
	return 0;
}

/* ---- batches ---- */

static Mxfleet__V1__Outcome *
outcome_new(uint64_t seq, int64_t start_ms)
{
	Mxfleet__V1__Outcome *o = calloc(1, sizeof(*o));

	mxfleet__v1__outcome__init(o);
	o->seq = seq;
	o->session_id = (char *)"sess";
	o->direction = MXFLEET__V1__DIRECTION__DIRECTION_INBOUND;
	o->start_unix_ms = start_ms;
	o->end_unix_ms = start_ms + 1500;
	o->local_ip = (char *)"192.0.2.1";
	o->local_port = 25;
	o->remote_ip = (char *)"198.51.100.7";
	o->remote_port = 40001;
	o->remote_ehlo = (char *)"client.example.net";
	o->remote_ptr = (char *)"client.example.net";
	o->starttls = MXFLEET__V1__START_TLS__STARTTLS_ESTABLISHED;
	o->tls_version = (char *)"TLSv1.3";
	o->tls_cipher = (char *)"TLS_AES_256_GCM_SHA384";
	o->sni = (char *)"mx1.example.test";
	o->messages = 1;
	o->recipients = 2;
	return o;
}

/* Outcomes seq first..last of host, one per second from day_ms + seq s. */
static Mxfleet__V1__OutcomeBatch *
batch_new(const char *host, uint64_t first, uint64_t last, int64_t day_ms)
{
	Mxfleet__V1__OutcomeBatch *b = calloc(1, sizeof(*b));

	mxfleet__v1__outcome_batch__init(b);
	b->host_id = (char *)host;
	b->seq = last;
	b->n_outcomes = last - first + 1;
	b->outcomes = calloc(b->n_outcomes, sizeof(*b->outcomes));
	for (uint64_t s = first; s <= last; s++)
		b->outcomes[s - first] = outcome_new(s, day_ms + (int64_t)s * 1000);
	return b;
}

static void
batch_free(Mxfleet__V1__OutcomeBatch *b)
{
	for (size_t i = 0; i < b->n_outcomes; i++)
		free(b->outcomes[i]);
	free(b->outcomes);
	free(b);
}

static void
ingest_ok(struct fixture *f, const Mxfleet__V1__OutcomeBatch *b,
    uint64_t want_stored, uint64_t want_dup)
{
	uint64_t stored = 99999, dup = 99999;
	int rc = db_ingest(f->db, b, &stored, &dup);

	if (rc != DB_OK)
		fail_msg("db_ingest: %d %s", rc, db_errmsg(f->db));
	assert_int_equal(stored, want_stored);
	assert_int_equal(dup, want_dup);
}

/* ---- migrations ---- */

static unsigned
schema_files(void)
{
	DIR *d = opendir(schema_dir);
	struct dirent *de;
	unsigned n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && l > 4 &&
		    strcmp(de->d_name + l - 4, ".sql") == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void
test_migrate_applies_every_file_once_then_nothing(void **state)
{
	struct fixture *f = *state;
	unsigned files = schema_files(), applied = 0;

	assert_true(files >= 3);
	assert_int_equal(db_migrate(f->db, schema_dir, &applied), DB_OK);
	assert_int_equal(applied, files);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM schema_migrations", NULL), files);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM pg_tables WHERE tablename ="
	    " ANY ('{hosts,outcomes,outcome_batches,domains,routes,config_state}')",
	    NULL), 6);

	assert_int_equal(db_migrate(f->db, schema_dir, &applied), DB_OK);
	assert_int_equal(applied, 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM schema_migrations", NULL), files);
	/* Versions recorded in order, the last one is the highest file. */
	assert_int_equal(sql_int(f, "SELECT min(version) FROM schema_migrations", NULL), 1);
}

struct migrate_thread {
	const char	*conninfo;
	unsigned	 applied;
	int		 rc;
	char		 err[512];
};

static void *
migrate_thread(void *arg)
{
	struct migrate_thread *t = arg;
	struct db *db;

	if ((t->rc = db_open(&db, t->conninfo, t->err, sizeof(t->err))) != DB_OK)
		return NULL;
	t->rc = db_migrate(db, schema_dir, &t->applied);
	snprintf(t->err, sizeof(t->err), "%s", db_errmsg(db));
	db_close(db);
	return NULL;
}

static void
test_migrate_by_two_replicas_at_once_applies_each_file_once(void **state)
{
	struct fixture *f = *state;
	struct migrate_thread t[2] = { { .conninfo = f->conninfo }, { .conninfo = f->conninfo } };
	pthread_t th[2];

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &t[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < 2; i++)
		if (t[i].rc != DB_OK)
			fail_msg("replica %d: %s", i, t[i].err);
	assert_int_equal(t[0].applied + t[1].applied, schema_files());
	assert_int_equal(sql_int(f, "SELECT count(*) FROM schema_migrations", NULL),
	    schema_files());
}

static void
test_migrate_reports_a_broken_file_and_applies_nothing_of_it(void **state)
{
	struct fixture *f = *state;
	char dir[] = "/tmp/mxtest-schema.XXXXXX", path[512], cmd[1024];
	unsigned applied = 99;
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "cp '%s'/[0-9]*.sql '%s'/", schema_dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/900_broken.sql", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("CREATE TABLE half_done (x int);\nTHIS IS NOT SQL;\n", fp);
	fclose(fp);

	assert_int_equal(db_migrate(f->db, dir, &applied), DB_ESQL);
	assert_non_null(strstr(db_errmsg(f->db), "900_broken.sql"));
	/* The good files are in, the broken one left no trace. */
	assert_int_equal(applied, schema_files());
	assert_int_equal(sql_int(f, "SELECT count(*) FROM schema_migrations", NULL),
	    schema_files());
	assert_int_equal(sql_int(f, "SELECT count(*) FROM pg_tables WHERE tablename"
	    " = 'half_done'", NULL), 0);
	/* The lock was released: migrating again does not hang. */
	assert_int_equal(db_migrate(f->db, schema_dir, &applied), DB_OK);
	assert_int_equal(applied, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* ---- ingest ---- */

static void
test_ingest_stores_every_outcome_of_a_batch(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__OutcomeBatch *b = batch_new("mx1", 1, 500, DAY1_MS);

	ingest_ok(f, b, 500, 0);
	assert_int_equal(outcome_rows(f), 500);
	assert_int_equal(sql_int(f, "SELECT count(DISTINCT seq) FROM outcomes"
	    " WHERE host_id = $1", "mx1"), 500);
	assert_int_equal(sql_int(f, "SELECT outcomes FROM hosts WHERE host_id = $1",
	    "mx1"), 500);
	batch_free(b);
}

static void
test_ingest_resent_batch_is_stored_once_and_reported_duplicate(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__OutcomeBatch *b = batch_new("mx1", 1, 200, DAY1_MS);

	ingest_ok(f, b, 200, 0);
	ingest_ok(f, b, 0, 200);
	ingest_ok(f, b, 0, 200);
	assert_int_equal(outcome_rows(f), 200);
	assert_int_equal(sql_int(f, "SELECT outcomes FROM hosts WHERE host_id = $1",
	    "mx1"), 200);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM outcome_batches", NULL), 1);
	batch_free(b);
}

static void
test_ingest_regrouped_resend_stores_each_seq_once(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__OutcomeBatch *a = batch_new("mx1", 1, 100, DAY1_MS);
	Mxfleet__V1__OutcomeBatch *b = batch_new("mx1", 51, 150, DAY1_MS);
	Mxfleet__V1__OutcomeBatch *c = batch_new("mx1", 1, 150, DAY1_MS);

	ingest_ok(f, a, 100, 0);
	ingest_ok(f, b, 50, 50);	/* 51..100 again, 101..150 new */
	ingest_ok(f, c, 0, 150);	/* everything again, as one batch */
	assert_int_equal(outcome_rows(f), 150);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM (SELECT seq FROM outcomes"
	    " GROUP BY seq HAVING count(*) > 1) d", NULL), 0);
	assert_int_equal(sql_int(f, "SELECT outcomes FROM hosts WHERE host_id = $1",
	    "mx1"), 150);
	/* Another host's seqs are its own. */
	a->host_id = (char *)"mx2";
	ingest_ok(f, a, 100, 0);
	assert_int_equal(outcome_rows(f), 250);
	batch_free(a);
	batch_free(b);
	batch_free(c);
}

struct ingest_thread {
	const char	*conninfo;
	uint64_t	 per_batch;
	int		 backwards;	/* last batch first */
	uint64_t	 stored, duplicates;
	int		 rc;
	char		 err[512];
};

#define REPLICA_OUTCOMES	3000

/* One replica receiving seq 1..REPLICA_OUTCOMES in batches of per_batch. */
static void *
ingest_thread(void *arg)
{
	struct ingest_thread *t = arg;
	uint64_t nbatches = (REPLICA_OUTCOMES + t->per_batch - 1) / t->per_batch;
	struct db *db;

	if ((t->rc = db_open(&db, t->conninfo, t->err, sizeof(t->err))) != DB_OK)
		return NULL;
	for (uint64_t k = 0; k < nbatches; k++) {
		uint64_t i = t->backwards ? nbatches - 1 - k : k, st, du;
		uint64_t first = i * t->per_batch + 1, last = first + t->per_batch - 1;
		Mxfleet__V1__OutcomeBatch *b;

		if (last > REPLICA_OUTCOMES)
			last = REPLICA_OUTCOMES;
		b = batch_new("mx1", first, last, DAY1_MS);
		t->rc = db_ingest(db, b, &st, &du);
		batch_free(b);
		if (t->rc != DB_OK) {
			snprintf(t->err, sizeof(t->err), "%s", db_errmsg(db));
			break;
		}
		t->stored += st;
		t->duplicates += du;
	}
	db_close(db);
	return NULL;
}

static void
test_ingest_by_two_replicas_at_once_stores_each_seq_once(void **state)
{
	struct fixture *f = *state;
	/* The same outcomes, grouped differently (the batches overlap) and in
	 * opposite orders, so the replicas meet in the middle. */
	struct ingest_thread t[2] = {
		{ .conninfo = f->conninfo, .per_batch = 100 },
		{ .conninfo = f->conninfo, .per_batch = 150, .backwards = 1 },
	};
	pthread_t th[2];

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, ingest_thread, &t[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < 2; i++) {
		if (t[i].rc != DB_OK)
			fail_msg("replica %d: %s", i, t[i].err);
		assert_int_equal(t[i].stored + t[i].duplicates, REPLICA_OUTCOMES);
	}
	assert_int_equal(t[0].stored + t[1].stored, REPLICA_OUTCOMES);
	assert_int_equal(outcome_rows(f), REPLICA_OUTCOMES);
	assert_int_equal(sql_int(f, "SELECT outcomes FROM hosts WHERE host_id = $1",
	    "mx1"), REPLICA_OUTCOMES);
}

static void
test_ingest_outcomes_of_two_days_land_in_two_partitions(void **state)
{
	struct fixture *f = *state;
	/* 30 on March 1st, 20 on March 2nd, in one batch. */
	Mxfleet__V1__OutcomeBatch *b = batch_new("mx1", 1, 50, DAY1_MS);
	PGresult *res;

	for (size_t i = 30; i < 50; i++)
		b->outcomes[i]->start_unix_ms += DAY2_MS - DAY1_MS;
	ingest_ok(f, b, 50, 0);
	ingest_ok(f, b, 0, 50);

	res = sql_exec(f->conninfo, "SELECT tableoid::regclass::text, count(*)"
	    " FROM outcomes GROUP BY 1 ORDER BY 1", NULL);
	assert_int_equal(PQntuples(res), 2);
	assert_string_equal(PQgetvalue(res, 0, 0), "outcomes_20240301");
	assert_string_equal(PQgetvalue(res, 0, 1), "30");
	assert_string_equal(PQgetvalue(res, 1, 0), "outcomes_20240302");
	assert_string_equal(PQgetvalue(res, 1, 1), "20");
	PQclear(res);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM outcomes_default", NULL), 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM pg_inherits WHERE"
	    " inhparent = 'outcomes'::regclass", NULL), 3);
	batch_free(b);
}

static void
test_ingest_day_already_in_default_partition_keeps_using_it(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__OutcomeBatch *b = batch_new("mx1", 1, 10, DAY1_MS);

	/* An operator's stray row for March 1st, before any partition. */
	sql_do(f, "INSERT INTO outcomes (host_id, seq, batch_seq, session_id, direction,"
	    " start_ts, local_ip, local_port, remote_ip, remote_port, remote_ehlo,"
	    " remote_ptr, starttls, tls_version, tls_cipher, sni, tls_fail_stage,"
	    " tls_fail_reason, messages, recipients) VALUES ('by-hand', 1, 1, 'x', 1,"
	    " '2024-03-01 12:00:00+00', '', 0, '', 0, '', '', 0, '', '', '', '', '', 0, 0)");
	ingest_ok(f, b, 10, 0);
	ingest_ok(f, b, 0, 10);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM outcomes_default", NULL), 11);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM pg_tables WHERE tablename"
	    " = 'outcomes_20240301'", NULL), 0);
	/* Other days still get their own partition. */
	for (size_t i = 0; i < b->n_outcomes; i++)
		b->outcomes[i]->start_unix_ms += DAY2_MS - DAY1_MS;
	ingest_ok(f, b, 10, 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM outcomes_20240302", NULL), 10);
	batch_free(b);
}

static void
test_host_counters_count_outcomes_and_losses_once(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__OutcomeBatch *a = batch_new("mx1", 1, 10, DAY1_MS);
	Mxfleet__V1__OutcomeBatch *b = batch_new("mx1", 11, 15, DAY1_MS);
	Mxfleet__V1__OutcomeBatch empty = MXFLEET__V1__OUTCOME_BATCH__INIT;

	a->dropped = 3;
	a->corrupt = 2;
	b->dropped = 1;
	ingest_ok(f, a, 10, 0);
	ingest_ok(f, a, 0, 10);		/* resent: its losses are not counted again */
	ingest_ok(f, b, 5, 0);
	/* A batch with no outcomes can still report losses. */
	empty.host_id = (char *)"mx1";
	empty.seq = 16;
	empty.corrupt = 4;
	ingest_ok(f, &empty, 0, 0);
	ingest_ok(f, &empty, 0, 0);

	assert_int_equal(sql_int(f, "SELECT outcomes FROM hosts WHERE host_id = $1", "mx1"), 15);
	assert_int_equal(sql_int(f, "SELECT dropped FROM hosts WHERE host_id = $1", "mx1"), 4);
	assert_int_equal(sql_int(f, "SELECT corrupt FROM hosts WHERE host_id = $1", "mx1"), 6);
	assert_int_equal(outcome_rows(f), 15);
	batch_free(a);
	batch_free(b);
}

static void
test_ingest_refuses_a_bad_batch_and_stores_nothing(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__OutcomeBatch *b = batch_new("", 1, 5, DAY1_MS);
	uint64_t stored, dup;

	assert_int_equal(db_ingest(f->db, b, &stored, &dup), DB_EINVAL);
	assert_non_null(strstr(db_errmsg(f->db), "host_id"));
	b->host_id = (char *)"mx1";
	b->outcomes[3]->remote_port = 70000;
	assert_int_equal(db_ingest(f->db, b, &stored, &dup), DB_EINVAL);
	assert_non_null(strstr(db_errmsg(f->db), "seq 4"));
	b->outcomes[3]->remote_port = 25;
	b->outcomes[2]->start_unix_ms = -1;
	assert_int_equal(db_ingest(f->db, b, &stored, &dup), DB_EINVAL);
	assert_int_equal(outcome_rows(f), 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM hosts", NULL), 0);
	/* The handle is fine afterwards. */
	b->outcomes[2]->start_unix_ms = DAY1_MS;
	ingest_ok(f, b, 5, 0);
	batch_free(b);
}

static void
test_ingest_stores_every_field_and_hostile_text_literally(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__OutcomeBatch *b = batch_new("mx1", 7, 7, DAY1_MS);
	Mxfleet__V1__Outcome *o = b->outcomes[0];
	char *v;

	o->session_id = (char *)"S-7";
	o->start_unix_ms = DAY1_MS + 123;
	o->end_unix_ms = 0;	/* not recorded */
	/* COPY's own syntax, a JSON-ish quote and bytes that are not UTF-8. */
	o->remote_ehlo = (char *)"evil\\.\t\n\r\\N'\"; DROP TABLE outcomes; --\xff\xc0\xaf end";
	o->remote_ptr = (char *)"\xce\xbb.example";	/* valid UTF-8: kept */
	o->starttls = MXFLEET__V1__START_TLS__STARTTLS_ATTEMPTED;
	o->tls_fail_stage = (char *)"after_server_finished";
	o->tls_fail_reason = (char *)"eof";
	ingest_ok(f, b, 1, 0);

	v = sql_text(f, "SELECT remote_ehlo FROM outcomes WHERE seq = 7", NULL);
	assert_string_equal(v, "evil\\.\t\n\r\\N'\"; DROP TABLE outcomes; --"
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
	free(v);
	v = sql_text(f, "SELECT remote_ptr FROM outcomes WHERE seq = 7", NULL);
	assert_string_equal(v, "\xce\xbb.example");
	free(v);
	v = sql_text(f, "SELECT concat_ws('|', session_id, direction, start_ts AT TIME"
	    " ZONE 'UTC', coalesce(end_ts::text, 'null'), local_ip, local_port, remote_ip,"
	    " remote_port, starttls, tls_version, tls_cipher, sni, tls_fail_stage,"
	    " tls_fail_reason, messages, recipients, coalesce(policy_results::text, 'null'),"
	    " batch_seq) FROM outcomes WHERE seq = 7", NULL);
	assert_string_equal(v, "S-7|1|2024-03-01 00:00:00.123|null|192.0.2.1|25|"
	    "198.51.100.7|40001|3|TLSv1.3|TLS_AES_256_GCM_SHA384|mx1.example.test|"
	    "after_server_finished|eof|1|2|null|7");
	free(v);
	batch_free(b);
}

static void
test_ingest_keeps_policy_results_as_json(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__OutcomeBatch *b = batch_new("mx1", 1, 1, DAY1_MS);
	Mxfleet__V1__PolicyResult pr[2] = { MXFLEET__V1__POLICY_RESULT__INIT,
	    MXFLEET__V1__POLICY_RESULT__INIT };
	Mxfleet__V1__PolicyResult *prs[2] = { &pr[0], &pr[1] };
	char *strs[] = { (char *)"version: STSv1", (char *)"mode: enforce" };
	char *mx[] = { (char *)"mx1.example.org", (char *)"*.example.org" };
	char *v;

	b->outcomes[0]->direction = MXFLEET__V1__DIRECTION__DIRECTION_OUTBOUND;
	pr[0].policy_type = (char *)"sts";
	pr[0].policy_domain = (char *)"example.org";
	pr[0].n_policy_strings = 2;
	pr[0].policy_strings = strs;
	pr[0].n_mx_host = 2;
	pr[0].mx_host = mx;
	pr[0].result_type = (char *)"certificate-host-mismatch";
	pr[0].receiving_mx_hostname = (char *)"mx1.example.org";
	pr[0].additional_information = (char *)"quote \" backslash \\ ctl \x01 bad \xff";
	pr[1].policy_type = (char *)"no-policy-found";
	pr[1].result_type = (char *)"success";
	b->outcomes[0]->n_policy_results = 2;
	b->outcomes[0]->policy_results = prs;
	ingest_ok(f, b, 1, 0);

	assert_int_equal(sql_int(f, "SELECT jsonb_array_length(policy_results)"
	    " FROM outcomes", NULL), 2);
	v = sql_text(f, "SELECT concat_ws('|', policy_results->0->>'result_type',"
	    " policy_results->0->'mx_host'->>1, policy_results->0->'policy_strings'->>1,"
	    " policy_results->0->>'additional_information',"
	    " policy_results->1->>'policy_type', policy_results->1->>'policy_domain')"
	    " FROM outcomes", NULL);
	assert_string_equal(v, "certificate-host-mismatch|*.example.org|mode: enforce|"
	    "quote \" backslash \\ ctl \x01 bad \xef\xbf\xbd|no-policy-found|");
	free(v);
	b->outcomes[0]->n_policy_results = 0;
	b->outcomes[0]->policy_results = NULL;
	batch_free(b);
}

static void
restart_postgres(const char *how)
{
	const char *pgctl = getenv("PGCTL");
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "'%s' %s >/dev/null", pgctl, how);
	assert_int_equal(system(cmd), 0);
}

static void
test_ingest_reconnects_after_postgres_restart(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__OutcomeBatch *a = batch_new("mx1", 1, 100, DAY1_MS);
	Mxfleet__V1__OutcomeBatch *b = batch_new("mx1", 101, 200, DAY1_MS);

	if (getenv("PGCTL") == NULL)
		skip();
	ingest_ok(f, a, 100, 0);
	restart_postgres("restart -m fast");
	/* The handle's connection is dead; the call resets it and goes on. */
	ingest_ok(f, b, 100, 0);
	ingest_ok(f, a, 0, 100);
	assert_int_equal(outcome_rows(f), 200);
	assert_int_equal(sql_int(f, "SELECT outcomes FROM hosts WHERE host_id = $1",
	    "mx1"), 200);
	batch_free(a);
	batch_free(b);
}

static void
test_ingest_while_postgres_is_down_fails_with_a_message_then_succeeds(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__OutcomeBatch *b = batch_new("mx1", 1, 50, DAY1_MS);
	uint64_t stored = 7, dup = 7;
	int rc;

	if (getenv("PGCTL") == NULL)
		skip();
	restart_postgres("stop -m fast");
	rc = db_ingest(f->db, b, &stored, &dup);
	/* Start it again before asserting, so a failure leaves a server. */
	restart_postgres("start");
	assert_int_equal(rc, DB_ECONN);
	assert_true(strlen(db_errmsg(f->db)) > 0);
	assert_int_equal(stored, 0);
	/* The next call reconnects first. */
	ingest_ok(f, b, 50, 0);
	assert_int_equal(outcome_rows(f), 50);
	batch_free(b);
}

/* ---- hosts ---- */

static void
test_register_and_heartbeat_show_in_host_list(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__RegisterRequest reg = MXFLEET__V1__REGISTER_REQUEST__INIT;
	Mxfleet__V1__HeartbeatRequest hb = MXFLEET__V1__HEARTBEAT_REQUEST__INIT;
	Mxfleet__V1__HostList *l;
	Mxfleet__V1__OutcomeBatch *b = batch_new("mx1", 1, 3, DAY1_MS);
	char *listen[] = { (char *)"127.0.0.11:25", (char *)"[::1]:25" };
	uint64_t cv = 0, cur = 0;

	assert_int_equal(db_config_version(f->db, &cur), DB_OK);
	reg.host_id = (char *)"mx1";
	reg.version = (char *)"0.1.0";
	reg.n_listen = 2;
	reg.listen = listen;
	assert_int_equal(db_host_register(f->db, &reg, &cv), DB_OK);
	assert_int_equal(cv, cur);
	hb.host_id = (char *)"mx1";
	hb.journal_backlog = 7;
	hb.config_version = 1;
	hb.cert_not_after_unix = 1900000000;
	assert_int_equal(db_host_heartbeat(f->db, &hb, &cv), DB_OK);
	assert_int_equal(cv, cur);
	/* A heartbeat from a host never registered creates it. */
	hb.host_id = (char *)"mx0";
	hb.version = (char *)"0.0.9";
	hb.cert_not_after_unix = 0;
	assert_int_equal(db_host_heartbeat(f->db, &hb, NULL), DB_OK);
	ingest_ok(f, b, 3, 0);

	assert_int_equal(db_hosts_list(f->db, &l), DB_OK);
	assert_int_equal(l->n_hosts, 2);
	assert_string_equal(l->hosts[0]->host_id, "mx0");
	assert_string_equal(l->hosts[0]->version, "0.0.9");
	assert_int_equal(l->hosts[0]->cert_not_after_unix, 0);
	assert_string_equal(l->hosts[1]->host_id, "mx1");
	assert_string_equal(l->hosts[1]->version, "0.1.0");	/* kept: heartbeat said "" */
	assert_int_equal(l->hosts[1]->journal_backlog, 7);
	assert_int_equal(l->hosts[1]->config_version, 1);
	assert_int_equal(l->hosts[1]->cert_not_after_unix, 1900000000);
	assert_int_equal(l->hosts[1]->outcomes, 3);
	assert_true(l->hosts[1]->last_seen_unix > 1700000000);
	db_host_list_free(l);
	assert_int_equal(sql_int(f, "SELECT cardinality(listen) FROM hosts WHERE"
	    " host_id = $1", "mx1"), 2);
	batch_free(b);
}

/* ---- configuration ---- */

static long long
config_version_seen(struct fixture *f)
{
	return sql_int(f, "SELECT version FROM config_state", NULL);
}

static void
test_domain_add_list_remove_bumps_config_version(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__DomainConfig d = MXFLEET__V1__DOMAIN_CONFIG__INIT;
	Mxfleet__V1__DomainList *l;
	uint64_t v0 = 0, v1 = 0, v2 = 0;

	assert_int_equal(db_config_version(f->db, &v0), DB_OK);
	d.name = (char *)"example.test";
	d.next_hop = (char *)"lmtp:127.0.0.1:24";
	assert_int_equal(db_domain_add(f->db, &d, &v1), DB_OK);
	assert_int_equal(v1, v0 + 1);
	assert_int_equal(config_version_seen(f), (long long)v1);

	assert_int_equal(db_domain_list(f->db, &l), DB_OK);
	assert_int_equal(l->n_domains, 1);
	assert_string_equal(l->domains[0]->name, "example.test");
	assert_string_equal(l->domains[0]->next_hop, "lmtp:127.0.0.1:24");
	db_domain_list_free(l);

	/* Same name in other case: refused, nothing changes. */
	d.name = (char *)"EXAMPLE.test";
	assert_int_equal(db_domain_add(f->db, &d, &v2), DB_EEXIST);
	assert_int_equal(config_version_seen(f), (long long)v1);

	assert_int_equal(db_domain_remove(f->db, "Example.Test", &v2), DB_OK);
	assert_int_equal(v2, v1 + 1);
	assert_int_equal(db_domain_list(f->db, &l), DB_OK);
	assert_int_equal(l->n_domains, 0);
	db_domain_list_free(l);
	assert_int_equal(db_domain_remove(f->db, "example.test", NULL), DB_ENOTFOUND);
	assert_int_equal(config_version_seen(f), (long long)v2);
}

static void
test_domain_name_with_sql_is_stored_literally(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__DomainConfig d = MXFLEET__V1__DOMAIN_CONFIG__INIT;
	Mxfleet__V1__DomainList *l;
	const char *evil = "x'); DROP TABLE domains; --";

	d.name = (char *)evil;
	d.next_hop = (char *)"smtp:a'b\\c$1:25";
	assert_int_equal(db_domain_add(f->db, &d, NULL), DB_OK);
	assert_int_equal(db_domain_list(f->db, &l), DB_OK);
	assert_int_equal(l->n_domains, 1);
	assert_string_equal(l->domains[0]->name, evil);
	assert_string_equal(l->domains[0]->next_hop, "smtp:a'b\\c$1:25");
	db_domain_list_free(l);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM domains WHERE name = $1", evil), 1);
	assert_int_equal(db_domain_remove(f->db, evil, NULL), DB_OK);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM domains", NULL), 0);
}

static void
test_route_add_list_remove_keeps_order_and_bumps_version(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__RouteConfig r1 = MXFLEET__V1__ROUTE_CONFIG__INIT;
	Mxfleet__V1__RouteConfig r2 = MXFLEET__V1__ROUTE_CONFIG__INIT;
	Mxfleet__V1__RouteList *l;
	uint64_t v0 = 0, v = 0;

	assert_int_equal(db_config_version(f->db, &v0), DB_OK);
	r1.match_recipient_domain = (char *)"example.org";
	r1.transport = (char *)"smtp:relay1.example.net:25";
	r2.min_attempt = 3;
	r2.transport = (char *)"submission:fallback.example.net:587";
	assert_int_equal(db_route_add(f->db, &r1, &v), DB_OK);
	assert_int_equal(db_route_add(f->db, &r2, &v), DB_OK);
	assert_int_equal(v, v0 + 2);
	assert_int_equal(db_route_add(f->db, &r1, NULL), DB_EEXIST);

	assert_int_equal(db_route_list(f->db, &l), DB_OK);
	assert_int_equal(l->n_routes, 2);
	assert_string_equal(l->routes[0]->match_recipient_domain, "example.org");
	assert_string_equal(l->routes[0]->match_sender_domain, "");
	assert_string_equal(l->routes[0]->transport, "smtp:relay1.example.net:25");
	assert_int_equal(l->routes[1]->min_attempt, 3);
	db_route_list_free(l);

	assert_int_equal(db_route_remove(f->db, &r1, &v), DB_OK);
	assert_int_equal(v, v0 + 3);
	assert_int_equal(db_route_remove(f->db, &r1, NULL), DB_ENOTFOUND);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM routes", NULL), 1);
	assert_int_equal(config_version_seen(f), (long long)v0 + 3);
}

static void
test_config_snapshot_is_a_version_and_exactly_its_contents(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__DomainConfig d = MXFLEET__V1__DOMAIN_CONFIG__INIT;
	Mxfleet__V1__RouteConfig r = MXFLEET__V1__ROUTE_CONFIG__INIT;
	Mxfleet__V1__ConfigSnapshot *s;
	uint64_t v = 0;

	d.name = (char *)"b.example";
	assert_int_equal(db_domain_add(f->db, &d, NULL), DB_OK);
	d.name = (char *)"a.example";
	d.next_hop = (char *)"smtp:10.0.0.1:25";
	assert_int_equal(db_domain_add(f->db, &d, NULL), DB_OK);
	r.transport = (char *)"smtp:relay.example.net:25";
	assert_int_equal(db_route_add(f->db, &r, &v), DB_OK);

	assert_int_equal(db_config_snapshot(f->db, &s), DB_OK);
	assert_int_equal(s->version, v);
	assert_int_equal(s->n_domains, 2);
	assert_string_equal(s->domains[0]->name, "a.example");
	assert_string_equal(s->domains[0]->next_hop, "smtp:10.0.0.1:25");
	assert_string_equal(s->domains[1]->name, "b.example");
	assert_int_equal(s->n_routes, 1);
	assert_string_equal(s->routes[0]->transport, "smtp:relay.example.net:25");
	db_config_snapshot_free(s);

	/* An operator's change in psql makes a new version too. */
	sql_do(f, "DELETE FROM domains WHERE name = 'b.example'");
	assert_int_equal(db_config_snapshot(f->db, &s), DB_OK);
	assert_int_equal(s->version, v + 1);
	assert_int_equal(s->n_domains, 1);
	db_config_snapshot_free(s);
	/* A statement that changes nothing does not. */
	sql_do(f, "DELETE FROM domains WHERE name = 'nonexistent.example'");
	assert_int_equal(config_version_seen(f), (long long)v + 1);
}

/* ---- summary ---- */

static void
set_tls(Mxfleet__V1__Outcome *o, int dir, int starttls, const char *ver, const char *why)
{
	o->direction = (Mxfleet__V1__Direction)dir;
	o->starttls = (Mxfleet__V1__StartTls)starttls;
	o->tls_version = (char *)ver;
	o->tls_fail_reason = (char *)why;
}

static void
test_summary_groups_sessions_by_host_direction_and_tls(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__OutcomeBatch *a = batch_new("mx-a", 1, 6, DAY1_MS);
	Mxfleet__V1__OutcomeBatch *b = batch_new("mx-b", 1, 4, DAY2_MS);
	Mxfleet__V1__OutcomeQuery q = MXFLEET__V1__OUTCOME_QUERY__INIT;
	Mxfleet__V1__OutcomeReport *r;
	size_t i;

	/* mx-a: 3 inbound TLSv1.3, 2 inbound failed (eof), 1 outbound TLSv1.2. */
	set_tls(a->outcomes[3], 1, 3, "", "eof");
	set_tls(a->outcomes[4], 1, 3, "", "eof");
	set_tls(a->outcomes[5], 2, 4, "TLSv1.2", "");
	/* mx-b, a day later: 4 inbound without STARTTLS. */
	for (i = 0; i < 4; i++)
		set_tls(b->outcomes[i], 1, 1, "", "");
	ingest_ok(f, a, 6, 0);
	ingest_ok(f, b, 4, 0);

	assert_int_equal(db_outcome_summary(f->db, &q, &r), DB_OK);
	assert_int_equal(r->n_rows, 4);
	/* Ordered by host, direction, starttls, version, reason. */
	assert_string_equal(r->rows[0]->host_id, "mx-a");
	assert_int_equal(r->rows[0]->direction, 1);
	assert_int_equal(r->rows[0]->starttls, 3);
	assert_string_equal(r->rows[0]->tls_fail_reason, "eof");
	assert_int_equal(r->rows[0]->sessions, 2);
	assert_int_equal(r->rows[1]->starttls, 4);
	assert_string_equal(r->rows[1]->tls_version, "TLSv1.3");
	assert_int_equal(r->rows[1]->sessions, 3);
	assert_int_equal(r->rows[2]->direction, 2);
	assert_string_equal(r->rows[2]->tls_version, "TLSv1.2");
	assert_int_equal(r->rows[2]->sessions, 1);
	assert_string_equal(r->rows[3]->host_id, "mx-b");
	assert_int_equal(r->rows[3]->starttls, 1);
	assert_int_equal(r->rows[3]->sessions, 4);
	db_outcome_report_free(r);

	q.host_id = (char *)"mx-b";
	assert_int_equal(db_outcome_summary(f->db, &q, &r), DB_OK);
	assert_int_equal(r->n_rows, 1);
	assert_int_equal(r->rows[0]->sessions, 4);
	db_outcome_report_free(r);

	q.host_id = (char *)"";
	q.since_unix = DAY2_MS / 1000;		/* only the second day */
	assert_int_equal(db_outcome_summary(f->db, &q, &r), DB_OK);
	assert_int_equal(r->n_rows, 1);
	assert_string_equal(r->rows[0]->host_id, "mx-b");
	db_outcome_report_free(r);

	q.since_unix = 0;
	q.limit = 2;
	assert_int_equal(db_outcome_summary(f->db, &q, &r), DB_OK);
	assert_int_equal(r->n_rows, 2);
	db_outcome_report_free(r);
	batch_free(a);
	batch_free(b);
}

/* ---- connection ---- */

static void
test_open_without_a_server_fails_with_a_message(void **state)
{
	struct db *db = (struct db *)1;
	char err[512] = "";

	(void)state;
	assert_int_equal(db_open(&db, "postgresql://postgres@127.0.0.1:1/mxfleet"
	    "?connect_timeout=2", err, sizeof(err)), DB_ECONN);
	assert_null(db);
	assert_non_null(strstr(err, "connect"));
	assert_null(strchr(err, '\n'));
}

/* A session on a server that takes no writes (as on a standby not yet
 * promoted): the change is refused with 25006, made on a fresh session,
 * once. */
static void
test_write_refused_as_read_only_is_made_once_on_a_fresh_connection(void **state)
{
	struct fixture *f = *state;
	Mxfleet__V1__DomainConfig d = MXFLEET__V1__DOMAIN_CONFIG__INIT;
	uint64_t before, version = 0;

	assert_int_equal(db_config_version(f->db, &before), DB_OK);
	PQclear(PQexec(f->db->conn, "SET default_transaction_read_only = on"));
	d.name = "ro.test";
	d.next_hop = "127.0.0.1:25";
	assert_int_equal(db_domain_add(f->db, &d, &version), DB_OK);
	assert_int_equal(version, before + 1);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM domains WHERE name = $1",
	    "ro.test"), 1);
	assert_true(db_connected(f->db));
}

/* The auto-push round holds a session-level advisory lock; the connection
 * dies (a failover): the lock is gone, so the round's next call must fail
 * instead of reconnecting and going on without it. After the round
 * releases, calls reconnect again. */
static void
test_lost_connection_while_holding_a_session_lock_ends_the_round(void **state)
{
	struct fixture *f = *state;
	char **domains;
	size_t n;
	uint64_t v;
	int got;

	assert_int_equal(db_dnspush_auto_begin(f->db, &got, &domains, &n), DB_OK);
	assert_int_equal(got, 1);
	free(domains);
	assert_int_equal(sql_int(f, "SELECT count(pg_terminate_backend(pid)) FROM"
	    " pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", f->dbname), 1);
	assert_int_equal(db_config_version(f->db, &v), DB_ECONN);
	assert_non_null(strstr(db_errmsg(f->db), "dns auto push lock"));
	/* Another replica may take the lock (its key: db_dnspush.c) now. */
	assert_int_equal(sql_int(f, "SELECT count(*) FROM (SELECT pg_try_advisory_lock("
	    "1836606049)) l WHERE l.pg_try_advisory_lock", NULL), 1);
	db_dnspush_auto_end(f->db);
	assert_int_equal(db_config_version(f->db, &v), DB_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrate_applies_every_file_once_then_nothing,
		    setup_unmigrated, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_by_two_replicas_at_once_applies_each_file_once,
		    setup_unmigrated, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_reports_a_broken_file_and_applies_nothing_of_it,
		    setup_unmigrated, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_stores_every_outcome_of_a_batch,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_resent_batch_is_stored_once_and_reported_duplicate,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_regrouped_resend_stores_each_seq_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_by_two_replicas_at_once_stores_each_seq_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_outcomes_of_two_days_land_in_two_partitions,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_day_already_in_default_partition_keeps_using_it,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_counters_count_outcomes_and_losses_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_refuses_a_bad_batch_and_stores_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_stores_every_field_and_hostile_text_literally,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_keeps_policy_results_as_json,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_reconnects_after_postgres_restart,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_while_postgres_is_down_fails_with_a_message_then_succeeds,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_and_heartbeat_show_in_host_list,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_domain_add_list_remove_bumps_config_version,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_domain_name_with_sql_is_stored_literally,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_route_add_list_remove_keeps_order_and_bumps_version,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_snapshot_is_a_version_and_exactly_its_contents,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_summary_groups_sessions_by_host_direction_and_tls,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_refused_as_read_only_is_made_once_on_a_fresh_connection,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_connection_while_holding_a_session_lock_ends_the_round,
		    setup, teardown),
		cmocka_unit_test(test_open_without_a_server_fails_with_a_message),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
