/* controld: schema migrations (schema/NNN_*.sql, applied in order, recorded; db.h). */
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
