/* controld's PostgreSQL layer: the connection (open, reset, the
 * reconnect-and-repeat rule of db_call), errors and statements with
 * parameters (db_internal.h). A leaf: db.c and the db_<subject>.c files
 * call it, it calls none of them. */
#include "db.h"
#include "db_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <libpq-fe.h>

#include "log.h"
#include "xmalloc.h"

/* ---- errors ---- */

void
db_seterr(struct db *db, const char *fmt, ...)
{
	char tmp[sizeof(db->err)], *w = db->err;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	/* libpq messages span lines ("ERROR:  ...\nDETAIL:  ..."): make one
	 * line, each run of white space a single space. */
	for (const char *r = tmp; *r != '\0'; r++) {
		if (*r == ' ' || *r == '\n' || *r == '\r' || *r == '\t') {
			if (w > db->err && w[-1] != ' ')
				*w++ = ' ';
		} else
			*w++ = *r;
	}
	while (w > db->err && w[-1] == ' ')
		w--;
	*w = '\0';
}

const char *
db_errmsg(const struct db *db)
{
	return db->err;
}

int
db_conn_ok(struct db *db)
{
	return !db->read_only && PQstatus(db->conn) == CONNECTION_OK;
}

int
db_connected(struct db *db)
{
	return db_conn_ok(db);
}

void
db_session_lock(struct db *db, const char *name)
{
	db->session_lock = name;
}

/* A statement failed: record why, leave the session usable (no open
 * transaction) and say whether the connection is the problem. */
int
db_fail(struct db *db, PGresult *res, const char *what)
{
	const char *m = res != NULL ? PQresultErrorMessage(res) : NULL;
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (m == NULL || *m == '\0')
		m = PQerrorMessage(db->conn);
	db_seterr(db, "%s: %s", what, m);
	/* read_only_sql_transaction: this server takes no writes (a standby
	 * not yet promoted, reached without target_session_attrs=read-write).
	 * Nothing of the transaction was applied; another server may take it. */
	if (state != NULL && strcmp(state, "25006") == 0)
		db->read_only = 1;
	if (res != NULL)
		PQclear(res);
	if (!db_conn_ok(db))
		return DB_ECONN;
	if (PQtransactionStatus(db->conn) != PQTRANS_IDLE)
		PQclear(PQexec(db->conn, "ROLLBACK"));
	return db_conn_ok(db) ? DB_ESQL : DB_ECONN;
}

static void
db_notice(void *arg, const PGresult *res)
{
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char q[LOG_QUOTE_SIZE(300)];

	(void)arg;
	if (msg == NULL)
		return;
	log_quote(q, sizeof(q), msg, strlen(msg), 300);
	if (sev != NULL && strcmp(sev, "WARNING") == 0)
		log_warnx("event=db_notice severity=warning msg=%s", q);
	else
		log_debug("event=db_notice severity=%s msg=%s", sev ? sev : "-", q);
}

/* ---- parameters and statements ---- */

void
dbp_str(struct db_params *p, const char *s)
{
	if (p->n >= DB_PARAMS_MAX)
		panic("db: too many parameters");
	p->v[p->n++] = s;
}

void
dbp_u64(struct db_params *p, uint64_t v)
{
	if (p->n >= DB_PARAMS_MAX)
		panic("db: too many parameters");
	snprintf(p->num[p->n], sizeof(p->num[0]), "%" PRIu64, v);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

void
dbp_i64(struct db_params *p, int64_t v)
{
	if (p->n >= DB_PARAMS_MAX)
		panic("db: too many parameters");
	snprintf(p->num[p->n], sizeof(p->num[0]), "%" PRId64, v);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

void
dbp_null(struct db_params *p)
{
	dbp_str(p, NULL);
}

/* Run one statement that must end in want; *out (if not NULL) gets the
 * result, which the caller clears. */
int
db_run(struct db *db, const char *what, const char *sql,
    const struct db_params *p, ExecStatusType want, PGresult **out)
{
	PGresult *res = NULL;

	res = PQexecParams(db->conn, sql, p != NULL ? p->n : 0, NULL,
	    p != NULL ? p->v : NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != want)
		return db_fail(db, res, what);
	if (out != NULL)
		*out = res;
	else
		PQclear(res);
	return DB_OK;
}

int
db_cmd(struct db *db, const char *what, const char *sql, const struct db_params *p)
{
	return db_run(db, what, sql, p, PGRES_COMMAND_OK, NULL);
}

int
db_query(struct db *db, const char *what, const char *sql,
    const struct db_params *p, PGresult **out)
{
	return db_run(db, what, sql, p, PGRES_TUPLES_OK, out);
}

/* Rows a command touched (INSERT/UPDATE/DELETE). */
uint64_t
db_affected(PGresult *res)
{
	return strtoull(PQcmdTuples(res), NULL, 10);
}

int
db_commit(struct db *db, const char *what)
{
	PGresult *res = NULL;
	int rc;

	db->commit_sent = 1;
	if ((rc = db_run(db, what, "COMMIT", NULL, PGRES_COMMAND_OK, &res)) != DB_OK)
		return rc;
	/* COMMIT of a failed transaction "succeeds" and says ROLLBACK. */
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		db_seterr(db, "%s: transaction rolled back", what);
		PQclear(res);
		return DB_ESQL;
	}
	PQclear(res);
	return DB_OK;
}

uint64_t
db_get_u64(const PGresult *res, int row, int col)
{
	return strtoull(PQgetvalue(res, row, col), NULL, 10);
}

int64_t
db_get_i64(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

char *
db_get_str(const PGresult *res, int row, int col)
{
	return xstrdup(PQgetvalue(res, row, col));
}

/* ---- connection, reconnection ---- */

/* A session setting, not a connection option: it holds whatever options the
 * conninfo brings, and is set again after a reconnect. */
int
db_apply_statement_timeout(struct db *db, int ms)
{
	struct db_params p = { 0 };

	dbp_i64(&p, ms);
	return db_query(db, "set statement_timeout",
	    "SELECT set_config('statement_timeout', $1::text, false)", &p, NULL);
}

/* The server this session reached, logged once per change of server for
 * the whole process (every worker's connection lands on the same one): one
 * line at start and one per failover. Host and port only, never the rest of
 * the connection string (it may hold a password). */
static pthread_mutex_t db_server_mu = PTHREAD_MUTEX_INITIALIZER;
static char db_server_last[300];

static void
db_log_server(struct db *db)
{
	const char *host = PQhost(db->conn), *port = PQport(db->conn);
	const char *hs = PQparameterStatus(db->conn, "in_hot_standby");
	const char *ro = PQparameterStatus(db->conn, "default_transaction_read_only");
	char server[sizeof(db_server_last)], q[LOG_QUOTE_SIZE(200)];
	const char *kind = (hs != NULL && strcmp(hs, "on") == 0) ||
	    (ro != NULL && strcmp(ro, "on") == 0) ? "read-only" : "read-write";
	int changed;

	snprintf(server, sizeof(server), "%s:%s", host ? host : "-", port ? port : "-");
	pthread_mutex_lock(&db_server_mu);
	changed = strcmp(server, db_server_last) != 0;
	if (changed)
		snprintf(db_server_last, sizeof(db_server_last), "%s", server);
	pthread_mutex_unlock(&db_server_mu);
	if (!changed)
		return;
	log_quote(q, sizeof(q), server, strlen(server), 200);
	log_info("event=db_connected server=%s session=%s msg=\"database: connected to %s (%s)\"",
	    q, kind, server, kind);
}

/* With several hosts and no target_session_attrs, libpq would take the
 * first that answers, a standby included: controld writes, so it asks for
 * a read-write session unless the string (or PGTARGETSESSIONATTRS) says
 * otherwise. A string libpq cannot parse is left for the connect to
 * report. */
static int
db_wants_read_write(const char *conninfo)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	int several = 0, given = getenv("PGTARGETSESSIONATTRS") != NULL;

	if (opts == NULL)
		return 0;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || *o->val == '\0')
			continue;
		if (strcmp(o->keyword, "target_session_attrs") == 0)
			given = 1;
		else if ((strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0)
		    && strchr(o->val, ',') != NULL)
			several = 1;
	}
	PQconninfoFree(opts);
	return several && !given;
}

int
db_open(struct db **out, const char *conninfo, char *err, size_t errsz)
{
	/* Processed in order, the expanded conninfo overriding what comes
	 * before it and overridden by what follows: connect_timeout, TCP
	 * keepalives (a server gone without a word is noticed within a
	 * minute, not after the kernel's two hours) and the application name
	 * are defaults, UTF8 is not negotiable (COPY data and the sanitizing
	 * of text assume it). */
	const char *kw[] = { "connect_timeout", "keepalives_idle",
	    "keepalives_interval", "keepalives_count", "fallback_application_name",
	    "dbname", "client_encoding", NULL, NULL };
	const char *val[] = { "10", "30", "10", "3", "mxfleet-controld",
	    conninfo, "UTF8", NULL, NULL };
	struct db *db;

	*out = NULL;
	if (db_wants_read_write(conninfo)) {
		kw[7] = "target_session_attrs";
		val[7] = "read-write";
	}
	db = xcalloc(1, sizeof(*db));
	db->conn = PQconnectdbParams(kw, val, 1);
	if (db->conn == NULL) {
		snprintf(err, errsz, "connect: out of memory");
		free(db);
		return DB_ECONN;
	}
	if (!db_conn_ok(db)) {
		db_seterr(db, "connect: %s", PQerrorMessage(db->conn));
		snprintf(err, errsz, "%s", db->err);
		PQfinish(db->conn);
		free(db);
		return DB_ECONN;
	}
	PQsetNoticeReceiver(db->conn, db_notice, NULL);
	db_log_server(db);
	db->statement_timeout_ms = DB_STATEMENT_TIMEOUT_MS;
	if (db_apply_statement_timeout(db, db->statement_timeout_ms) != DB_OK) {
		snprintf(err, errsz, "%s", db->err);
		db_close(db);
		return DB_ECONN;
	}
	*out = db;
	return DB_OK;
}

int
db_set_statement_timeout(struct db *db, int ms)
{
	db->err[0] = '\0';
	db->statement_timeout_ms = ms;
	return db_apply_statement_timeout(db, ms);
}

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	PQfinish(db->conn);
	free(db);
}

static int
db_reset(struct db *db)
{
	int rc;

	PQreset(db->conn);
	db->staging_ready = 0;
	db->read_only = 0;
	if (!db_conn_ok(db)) {
		db_seterr(db, "reconnect: %s", PQerrorMessage(db->conn));
		return DB_ECONN;
	}
	if ((rc = db_apply_statement_timeout(db, db->statement_timeout_ms)) != DB_OK)
		return rc == DB_ESQL ? DB_ECONN : rc;
	log_info("event=db_reconnected");
	db_log_server(db);
	return DB_OK;
}

/* A session-level advisory lock lives and dies with its session: after a
 * lost connection (a failover) the lock is gone, and another replica may
 * hold it by now. Reconnecting and going on would run the singleton twice. */
static int
db_lock_lost(struct db *db, const char *why)
{
	db_seterr(db, "%s (the session held the %s lock, gone with the connection: the "
	    "round ends here)", why, db->session_lock);
	return DB_ECONN;
}

/* Run op; if it fails because the connection is gone, or the server turned
 * out read-only (25006), reset the connection once and, if that is safe,
 * run op once more. A connection found broken by an earlier call is reset
 * first. Safe: always for DB_REPEAT_ALWAYS; for DB_REPEAT_UNTIL_COMMIT when
 * COMMIT was not sent, or the server refused the write as read-only (then
 * nothing was applied). Never while the session holds an advisory lock. */
int
db_call(struct db *db, db_op op, void *arg, enum db_repeat repeat)
{
	char first[sizeof(db->err)], q[LOG_QUOTE_SIZE(200)];
	int rc;

	db->err[0] = '\0';
	if (!db_conn_ok(db) && db->session_lock != NULL)
		return db_lock_lost(db, "connection lost");
	if (!db_conn_ok(db) && db_reset(db) != DB_OK)
		return DB_ECONN;
	db->commit_sent = 0;
	if ((rc = op(db, arg)) != DB_ECONN)
		return rc;
	snprintf(first, sizeof(first), "%s", db->err);
	if (db->session_lock != NULL)
		return db_lock_lost(db, first);
	if (repeat == DB_REPEAT_UNTIL_COMMIT && db->commit_sent && !db->read_only) {
		db_seterr(db, "%s (connection lost after COMMIT was sent: the change may"
		    " have been applied)", first);
		return DB_ECONN;
	}
	log_quote(q, sizeof(q), first, strlen(first), 200);
	log_warnx("event=%s error=%s", db->read_only ? "db_server_read_only" :
	    "db_connection_lost", q);
	if (db_reset(db) != DB_OK) {
		db_seterr(db, "%s; reconnect failed: %s", first,
		    PQerrorMessage(db->conn));
		return DB_ECONN;
	}
	db->err[0] = '\0';
	db->commit_sent = 0;
	return op(db, arg);
}
