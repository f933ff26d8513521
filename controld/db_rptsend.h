/* The deliveries of the TLS reports we send (schema/012_report_deliveries.sql;
 * docs/reports.md, "Sending"). Same rules as db.h: parameters only,
 * blocking, one handle per thread, DB_* codes with db_errmsg. Every time is
 * given by the caller (seconds since the epoch, its clock), never now().
 *
 * A delivery is one (day, policy domain, kind, rua URI) and is inserted at
 * most once (the unique key). It is claimed (pending -> sending, committed)
 * before its bytes leave and marked sent after the receiver accepted them,
 * all under the one sender lock (db_rptsend_lock), so a second replica
 * never sends at the same time. A row left in sending was claimed by a
 * round that died: db_rptsend_recover puts it back. */
#ifndef CONTROLD_DB_RPTSEND_H
#define CONTROLD_DB_RPTSEND_H

#include <stdint.h>
#include <time.h>

#include "db.h"
#include "mxfleet.pb-c.h"

/* pg_try_advisory_lock's key: "mxft" (0x6d786674 = 1836607092), the one
 * replica that plans and sends TLS reports. Session-level: held for a whole
 * round, released when the round ends or the session dies. A session that
 * dies (a failover) is not reconnected within the round (db_session_lock):
 * the round fails, and the next one takes the lock again. */
#define DB_RPTSEND_LOCK	"1836607092"

struct db_rptsend_new {
	time_t		 day;		/* 00:00:00Z of the UTC day */
	const char	*policy_domain;
	const char	*kind;		/* "domain" / "host" */
	const char	*rua, *scheme, *target;
	const char	*report_id, *report_json;
	time_t		 next_attempt;
};

/* A claimed delivery (malloc'd strings; db_rptsend_delivery_free). */
struct db_rptsend_delivery {
	int64_t	 id;
	char	*policy_domain, *kind, *rua, *scheme, *target, *report_id, *report_json;
	time_t	 day, first_attempt;
	int	 attempts;		/* before this one */
};

int db_rptsend_lock(struct db *db, int *got);
void db_rptsend_unlock(struct db *db);
/* *planned: the daily round already planned day. */
int db_rptsend_day_planned(struct db *db, time_t day, int *planned);
int db_rptsend_day_mark(struct db *db, time_t day);
/* *added 1 when new, 0 when that delivery was already there. */
int db_rptsend_add(struct db *db, const struct db_rptsend_new *d, int *added);
/* sending -> pending (a round that died mid-send); *n rows. */
int db_rptsend_recover(struct db *db, time_t now, uint64_t *n);
/* pending deliveries whose target or rua is suppressed at now -> suppressed. */
int db_rptsend_suppress_due(struct db *db, time_t now, uint64_t *n);
/* The pending delivery due first (next_attempt <= now): claimed (sending,
 * committed) into out, *got 1; or *got 0. */
int db_rptsend_claim(struct db *db, time_t now, struct db_rptsend_delivery *out, int *got);
/* After a try: state "sent", "pending" (retry at next) or "failed"; tried
 * 0 when nothing was attempted (no DKIM key: attempts and first_attempt
 * unchanged). */
int db_rptsend_finish(struct db *db, int64_t id, const char *state, time_t now,
    time_t next, int tried, const char *error);
void db_rptsend_delivery_free(struct db_rptsend_delivery *d);

/* The submitter domain's active DKIM key (issue 11's dkim_keys): DB_ENOTFOUND
 * when it has none. *selector and *pem malloc'd. */
int db_rptsend_dkim_key(struct db *db, const char *domain, char **selector, char **pem);

/* mailctl reports sent|pending|show: which "sent", "pending" (pending and
 * sending), "" every state; id > 0: that one delivery, with its JSON
 * (DB_ENOTFOUND when there is none). At most 10000 rows, newest day first. */
int db_rptsend_list(struct db *db, const char *which, int64_t id,
    Mxfleet__V1__ReportDeliveriesReply **out);
void db_rptsend_list_free(Mxfleet__V1__ReportDeliveriesReply *r);
/* until 0: remove. *changed: a row was added, changed or removed. */
int db_rptsend_suppress(struct db *db, const char *address, time_t until, int *changed);

#endif
