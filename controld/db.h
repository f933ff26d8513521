/* controld's PostgreSQL layer: migrations, outcome ingest, the fleet
 * registry, the configuration and its versions, outcome summaries.
 *
 * Every value reaches PostgreSQL as a statement parameter or through COPY,
 * never pasted into SQL text. Calls block (one connection, libpq's
 * synchronous API): controld runs them off its event loop. A handle is one
 * connection: one thread at a time; open one per worker.
 *
 * Errors: a call returns DB_OK (0) or a negative enum db_status, and
 * db_errmsg() says what happened in one line. DB_ECONN is the recoverable
 * case: the server went away, try again later. When a call finds the
 * connection broken it resets it once and, when repeating the call is safe,
 * repeats it once: reads, migrations, heartbeats and ingest (idempotent by
 * design) always; a configuration change only if the connection broke before
 * its COMMIT was sent, since after that the change may already be applied.
 *
 * Messages handed out (HostList, DomainList, RouteList, ConfigSnapshot,
 * OutcomeReport) are built here and owned by the caller: release them with
 * the matching db_*_free, not protobuf-c's __free_unpacked. */
#ifndef CONTROLD_DB_H
#define CONTROLD_DB_H

#include <stddef.h>
#include <stdint.h>

#include "mxfleet.pb-c.h"

enum db_status {
	DB_OK		= 0,
	DB_ENOTFOUND	= -1,	/* remove: no such domain or route */
	DB_EEXIST	= -2,	/* add: it is already there */
	DB_EINVAL	= -3,	/* refused before reaching the database */
	DB_ECONN	= -4,	/* the server is unreachable: retry later */
	DB_ESQL		= -5,	/* the server refused the statement */
	DB_EIO		= -6,	/* reading the schema directory failed */
};

/* Bounds applied before anything reaches the database. */
#define DB_SUMMARY_MAX_ROWS	10000	/* OutcomeQuery.limit 0 or larger */
#define DB_MIGRATION_MAX_BYTES	(1024 * 1024)
#define DB_STATEMENT_TIMEOUT_MS	30000

/* Advisory lock keys (two-int form), documented for operators reading
 * pg_locks: class 'mxfl', object 1 = migrations. Class 'mxpt' (one object per
 * day) is taken by outcomes_ensure_partition in schema/003_outcomes.sql. */
#define DB_LOCK_CLASS		1836607084	/* 'mxfl' */
#define DB_LOCK_MIGRATE		1

struct db;

/* Connect. conninfo is a libpq connection string or URI, with one host or
 * several (a primary and its standbys: libpq tries them in order); with
 * several and no target_session_attrs, target_session_attrs=read-write is
 * added, so the session lands on the primary. Every connect and reconnect
 * that reaches a server other than the last one the process reached logs
 * event=db_connected (host and port only). It may set
 * connect_timeout (default here: 10 s), keepalives_idle/_interval/_count
 * (30 s, 10 s, 3) and application_name. The client encoding is always UTF8.
 * The session's statement_timeout is DB_STATEMENT_TIMEOUT_MS until
 * db_set_statement_timeout. On failure returns DB_ECONN with the reason in
 * err; *out is NULL. */
int db_open(struct db **out, const char *conninfo, char *err, size_t errsz);
/* Every statement of every call (migrations excepted) is cancelled by the
 * server after ms milliseconds (0: never), so a lock held elsewhere or a
 * runaway query cannot stall the caller; the call fails with DB_ESQL. Kept
 * across reconnects. */
int db_set_statement_timeout(struct db *db, int ms);
void db_close(struct db *db);
/* Is the connection up and, as far as controld saw, on a server that takes
 * writes? 0 after the server went away or refused a write as read-only
 * (SQLSTATE 25006): the next call reconnects first. */
int db_connected(struct db *db);
/* The last error of this handle, "" if the last call succeeded. */
const char *db_errmsg(const struct db *db);

/* Apply the migrations NNN_name.sql of dir that schema_migrations does not
 * list, in version order, each in its own transaction with its record.
 * Holds an advisory lock meanwhile, so replicas starting together apply each
 * file once. *applied (may be NULL) gets the number applied now. A file whose
 * content differs from the one applied under its version is logged, not
 * applied again. */
int db_migrate(struct db *db, const char *dir, unsigned *applied);

/* Store a batch in one transaction: the outcomes, the batch key, the host's
 * counters; returns DB_OK only after COMMIT succeeded, so an Ack sent then
 * is true. The outcomes go by COPY straight into outcomes; if some are
 * already there (a resend, whole or regrouped), the transaction is redone
 * with COPY into a session-local staging table and INSERT ... ON CONFLICT DO
 * NOTHING. *stored gets the outcomes new to the database, *duplicates those
 * already there. The batch's dropped/corrupt counts are added to the host
 * once per (host_id, batch seq). Refused with DB_EINVAL, storing nothing: an
 * empty host_id, a seq or counter above INT64_MAX, a port above 65535, a
 * time before 1970 or after 9999. Text that is not UTF-8 is stored with
 * U+FFFD in place of the bad bytes. */
int db_ingest(struct db *db, const Mxfleet__V1__OutcomeBatch *b,
    uint64_t *stored, uint64_t *duplicates);

/* The fleet registry. Both upsert the host, set last_seen to now and hand
 * back the newest configuration version (may be NULL). */
int db_host_register(struct db *db, const Mxfleet__V1__RegisterRequest *req,
    uint64_t *config_version);
int db_host_heartbeat(struct db *db, const Mxfleet__V1__HeartbeatRequest *req,
    uint64_t *config_version);
/* All hosts, by host_id. */
int db_hosts_list(struct db *db, Mxfleet__V1__HostList **out);
void db_host_list_free(Mxfleet__V1__HostList *l);

/* Configuration. Each change bumps the configuration version in its own
 * transaction; *version (may be NULL) gets the version that includes it.
 * Domain names are stored as given and compared ignoring ASCII case. */
int db_domain_add(struct db *db, const Mxfleet__V1__DomainConfig *d, uint64_t *version);
int db_domain_remove(struct db *db, const char *name, uint64_t *version);
int db_domain_list(struct db *db, Mxfleet__V1__DomainList **out);
void db_domain_list_free(Mxfleet__V1__DomainList *l);
/* A route is named by all four fields; routes are listed in the order added. */
int db_route_add(struct db *db, const Mxfleet__V1__RouteConfig *r, uint64_t *version);
int db_route_remove(struct db *db, const Mxfleet__V1__RouteConfig *r, uint64_t *version);
int db_route_list(struct db *db, Mxfleet__V1__RouteList **out);
void db_route_list_free(Mxfleet__V1__RouteList *l);
/* TLS policy per destination domain: set (insert or replace), remove, list. */
int db_policy_set(struct db *db, const Mxfleet__V1__TlsPolicyConfig *p, uint64_t *version);
int db_policy_remove(struct db *db, const char *domain, uint64_t *version);
int db_policy_list(struct db *db, Mxfleet__V1__PolicyList **out);
void db_policy_list_free(Mxfleet__V1__PolicyList *l);
/* Is mode one of none, may, encrypt, dane, dane-only, verify, secure? */
int db_policy_mode_ok(const char *mode);
/* Recipient checks of a domain (schema/007): which recipients mxd accepts
 * at RCPT. set: mode "any" or "list" (DB_EEXIST: it has that mode already,
 * nothing changed). add/remove: local parts as rcpt_addr_local made them
 * (lower-cased, no '@'); add answers DB_EEXIST when all were listed,
 * remove DB_ENOTFOUND when none was. All answer DB_ENOTFOUND for a domain
 * that does not exist. list: the domain's mode ("" when not set) and every
 * listed local part, sorted; release with db_recipients_free. */
int db_recipient_check_set(struct db *db, const char *domain, const char *mode,
    uint64_t *version);
int db_recipients_add(struct db *db, const char *domain, char *const *locals, size_t n,
    uint64_t *version);
int db_recipients_remove(struct db *db, const char *domain, char *const *locals, size_t n,
    uint64_t *version);
int db_recipients_list(struct db *db, const char *domain, Mxfleet__V1__DomainRecipients **out);
void db_recipients_free(Mxfleet__V1__DomainRecipients *r);
/* Is mode one controld accepts (any, list, verify)? */
int db_recipient_mode_ok(const char *mode);
int db_config_version(struct db *db, uint64_t *version);
/* The version and the domains, routes, policies, recipient checks and
 * MTA-STS policies (db_dns_snapshot_sts) it stands for, read together. */
int db_config_snapshot(struct db *db, Mxfleet__V1__ConfigSnapshot **out);
void db_config_snapshot_free(Mxfleet__V1__ConfigSnapshot *s);

/* Sessions counted by host, direction, starttls, tls_version and
 * tls_fail_reason, for sessions that started at or after q->since_unix
 * (seconds), of q->host_id ("" = all hosts); at most q->limit rows (0 or more
 * than DB_SUMMARY_MAX_ROWS: DB_SUMMARY_MAX_ROWS), ordered by those columns. */
int db_outcome_summary(struct db *db, const Mxfleet__V1__OutcomeQuery *q,
    Mxfleet__V1__OutcomeReport **out);
void db_outcome_report_free(Mxfleet__V1__OutcomeReport *r);

/* Revoked certificates (schema/006). db_revoke records serial (checked by
 * the caller: pki_serial_ok) with the certificate's name and expiry (0:
 * unknown); revoking twice is not an error, *newly (may be NULL) says
 * whether this call added it. db_revoked_list hands out every revoked
 * serial in a malloc'd array of malloc'd strings (pki_revoked_take takes
 * them over); on failure *serials is NULL. */
int db_revoke(struct db *db, const char *serial, const char *name, int64_t not_after_unix,
    int *newly);
int db_revoked_list(struct db *db, char ***serials, size_t *n);

/* Outcome upload health, as a host's heartbeat reports it: batches controld
 * refused since its mxd started, records in its quarantine. Stores both and
 * hands back by how much each grew since the last report (0 when it did not,
 * or the host is unknown), for controld's counters. */
int db_host_upload_health(struct db *db, const char *host_id, uint64_t refused,
    uint64_t quarantined, uint64_t *refused_increase, uint64_t *quarantined_increase);


#endif
