/* TLSA key rollovers in PostgreSQL (schema/010_rollovers.sql, docs/dns.md
 * "Rollover"): the state of each host's rollover as rollover_encode makes
 * it, what the host reported for the driver's observation, and the
 * key_switches rows the configuration snapshot carries. Same rules as db.h:
 * parameters only, blocking, one handle per thread, DB_* codes.
 *
 * The driver (rollover_run.c) steps one host at a time:
 *   db_rollover_lock      BEGIN; pg_try_advisory_xact_lock (one replica
 *                         drives at a time: *got 0 means another does)
 *   db_rollover_load      the stored state, row locked (DB_ENOTFOUND: done
 *                         or gone)
 *   db_rollover_report    what the host reported
 *   db_rollover_save      the new state and the key_switches row, COMMIT
 * (db_rollover_abort rolls back). */
#ifndef CONTROLD_DB_ROLLOVER_H
#define CONTROLD_DB_ROLLOVER_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "mxfleet.pb-c.h"
#include "rollover.h"

/* What a host last reported (host_identity, host_certs), and the hosted
 * domains whose records name it and that controld publishes. */
struct db_rollover_report {
	char		*hostname;	/* its MX name ("" when it reported none) */
	char		**served;	/* SPKIs not retired */
	size_t		 nserved;
	char		*next_spki;
	int		 next_cert_ready;
	char		*next_cert_path;
	char		**domains;	/* publish is on */
	size_t		 ndomains;
	uint32_t	 ttl;		/* the longest of those domains' ttl */
};

/* Start a rollover of host_id at now, checks in one transaction. Refused:
 * DB_ENOTFOUND (no such host), DB_EINVAL (it reported no served key or no
 * next key; why in *why), DB_EEXIST (a rollover of it is not done). A
 * rollover that is done is replaced. *out gets the state stored. */
int db_rollover_start(struct db *db, const char *host_id, int64_t now, uint32_t poll,
    struct rollover *out, char *why, size_t whysz);
/* Cancel host_id's rollover at now (rollover_cancel) and remove its
 * key_switches row, in one transaction that waits for the driver's step on
 * the same row. Refused: DB_ENOTFOUND (no rollover of the host), DB_EINVAL
 * (it is done already; why in *why). *out gets the state stored. */
int db_rollover_cancel(struct db *db, const char *host_id, int64_t now, struct rollover *out,
    char *why, size_t whysz);
/* The host's last rollover (done or not); DB_ENOTFOUND: none. */
int db_rollover_get(struct db *db, const char *host_id, struct rollover *out);
/* The hosts with a rollover not done. */
int db_rollover_active(struct db *db, char ***hosts, size_t *n);
void db_rollover_hosts_free(char **hosts, size_t n);

int db_rollover_lock(struct db *db, int *got);
int db_rollover_load(struct db *db, const char *host_id, struct rollover *out);
int db_rollover_report(struct db *db, const char *host_id, struct db_rollover_report *out);
void db_rollover_report_free(struct db_rollover_report *r);
enum db_rollover_switch {
	DB_ROLLOVER_SWITCH_KEEP = 0,	/* the key_switches row as it is */
	DB_ROLLOVER_SWITCH_SET,		/* the host is to switch to r->new_spki */
	DB_ROLLOVER_SWITCH_CLEAR,	/* the row goes */
};
/* Store r (done when its state is DONE) and do sw to the host's
 * key_switches row, then COMMIT. */
int db_rollover_save(struct db *db, const struct rollover *r, enum db_rollover_switch sw);
void db_rollover_abort(struct db *db);

/* For db_config_snapshot, inside its transaction. */
int db_rollover_snapshot(struct db *db, Mxfleet__V1__KeySwitch ***out, size_t *n);
void db_rollover_snapshot_free(Mxfleet__V1__KeySwitch **v, size_t n);

#endif
