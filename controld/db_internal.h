/* What the db_<subject>.c files share with db.c: statements with
 * parameters, results, errors, and db_call's reconnect-and-repeat rule
 * (db.h). Not for code outside controld's PostgreSQL layer: everything else
 * goes through db.h and the db_<subject>.h headers. */
#ifndef CONTROLD_DB_INTERNAL_H
#define CONTROLD_DB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "db.h"

/* One connection and what controld keeps about its session. */
struct db {
	PGconn	*conn;
	char	 err[512];
	/* The staging table is a temporary table: it lives as long as the
	 * session, so it is created again after a reconnect. */
	int	 staging_ready;
	/* Set once a call's COMMIT has been sent: from then on a lost
	 * connection leaves the outcome unknown. */
	int	 commit_sent;
	/* Set on the session at connect and after every reconnect. */
	int	 statement_timeout_ms;
	/* The server refused a write as read-only (SQLSTATE 25006: a standby
	 * not yet promoted): the session is no use, reconnect. */
	int	 read_only;
	/* The session-level advisory lock this session holds (NULL: none).
	 * Losing the connection loses the lock: db_call then does not
	 * reconnect behind the holder's back (db_session_lock). */
	const char *session_lock;
};

#define DB_PARAMS_MAX		12

/* A statement's parameters: strings as given (NULL is SQL NULL), numbers
 * printed into num. */
struct db_params {
	int		 n;
	const char	*v[DB_PARAMS_MAX];
	char		 num[DB_PARAMS_MAX][24];
};

void dbp_str(struct db_params *p, const char *s);
void dbp_u64(struct db_params *p, uint64_t v);
void dbp_i64(struct db_params *p, int64_t v);
void dbp_null(struct db_params *p);

void db_seterr(struct db *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A statement failed: record why, roll back, DB_ESQL or DB_ECONN. */
int db_fail(struct db *db, PGresult *res, const char *what);
/* Run one statement that must end in want; *out (if not NULL) gets the
 * result, which the caller clears. */
int db_run(struct db *db, const char *what, const char *sql, const struct db_params *p,
    ExecStatusType want, PGresult **out);
int db_cmd(struct db *db, const char *what, const char *sql, const struct db_params *p);
int db_query(struct db *db, const char *what, const char *sql, const struct db_params *p,
    PGresult **out);
uint64_t db_affected(PGresult *res);
int db_commit(struct db *db, const char *what);
uint64_t db_get_u64(const PGresult *res, int row, int col);
int64_t db_get_i64(const PGresult *res, int row, int col);
char *db_get_str(const PGresult *res, int row, int col);

/* A text[] literal of n strings, {"a","b"}, each element quoted and
 * escaped whatever it holds: one parameter ($1::text[]) for a list. The
 * caller frees it. (db_array.c) */
char *db_array_literal(char *const *v, size_t n);

/* Is the connection up (PQstatus OK) and not found read-only? */
int db_conn_ok(struct db *db);
/* The session took (name, a static string) or released (NULL) a
 * session-level advisory lock. While it holds one, a lost connection is not
 * reset by db_call: the call fails with DB_ECONN, the holder ends its round
 * and releases, and the next call reconnects (and the next round takes the
 * lock again, on whichever replica gets it first). */
void db_session_lock(struct db *db, const char *name);
/* SET statement_timeout on the session (after a connect or a reset). */
int db_apply_statement_timeout(struct db *db, int ms);

typedef int (*db_op)(struct db *, void *);

enum db_repeat {
	DB_REPEAT_UNTIL_COMMIT,	/* repeating after COMMIT was sent could mislead */
	DB_REPEAT_ALWAYS,	/* a read, or idempotent */
};

/* Run op; if it fails because the connection is gone, reset the connection
 * once and, if that is safe, run op once more (db.h). */
int db_call(struct db *db, db_op op, void *arg, enum db_repeat repeat);

/* Shared by db.c and the db_<subject>.c files split from it; the helpers
 * are in db_util.c, a leaf. */
#define DB_MAX_UNIX_S		INT64_C(253402300799)	/* 9999-12-31T23:59:59Z */
/* Free a reply string unless it is protobuf-c's shared empty string. */
void db_str_free(char *s);
/* In a transaction the caller began: run the change sql (0 rows touched
 * is want_none), read the configuration version it bumped, and end it. */
int config_change_open(struct db *db, const char *what, const char *sql,
    const struct db_params *p, int want_none, uint64_t *version);
/* The configuration version as this transaction sees it. */
int config_version_get(struct db *db, uint64_t *version);
/* Refuse text that is not UTF-8 (or empty unless may_be_empty). */
int config_text_check(struct db *db, const char *what, const char *s, int may_be_empty);
/* Is s (NUL-terminated) all UTF-8? */
int db_utf8_valid(const char *s);
/* The current configuration version's query; host_id non-empty UTF-8
 * (db_util.c; host_id_check: db_hosts.c). */
extern const char db_sql_config_version[];
int host_id_check(struct db *db, const char *what, const char *host_id);
/* The snapshot's recipient checks (db_recipients.c). */
extern const char db_sql_recipient_checks[];
Mxfleet__V1__DomainRecipients **recipient_checks_from(const PGresult *res, size_t *n);
void recipient_checks_free(Mxfleet__V1__DomainRecipients **v, size_t n);

#endif
