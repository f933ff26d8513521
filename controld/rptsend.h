/* Sending the TLS reports controld aggregates (RFC 8460; docs/reports.md,
 * "Sending"). A round, on controld's report worker (its own database
 * connection; never on the event loop), under a PostgreSQL advisory lock
 * (db_rptsend.h, DB_RPTSEND_LOCK) so exactly one replica plans and sends:
 *
 *   1. deliveries left in "sending" by a round that died go back to pending;
 *   2. from 00:00 UTC + reports.send.jitter, yesterday's reports are planned
 *      once: every report of the day (db_tlsrpt_reports), the rua of each
 *      policy domain's `_smtp._tls` TXT record (dns.resolver), one delivery
 *      per (day, domain, kind, rua), each due at a point of
 *      reports.send.window spread by a hash of the report and the URI;
 *   3. pending deliveries to a suppressed address become "suppressed";
 *   4. each due delivery is claimed (committed as "sending"), sent (mailto:
 *      DKIM-signed mail handed to an mxd; https: POST), then marked sent,
 *      or retried with a doubling delay, or failed reports.send.give_up
 *      seconds after its first try.
 *
 * The clock is the wall clock plus MXFLEET_REPORTS_CLOCK_OFFSET seconds
 * (read at start): a test hook that moves the day boundary, documented as
 * such in docs/reports.md. */
#ifndef CONTROLD_RPTSEND_H
#define CONTROLD_RPTSEND_H

#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "db.h"
#include "dbq.h"
#include "reports_conf.h"

/* What one round did (send-now answers with it). */
struct rptsend_round {
	time_t		 now;
	time_t		 day;		/* plan this day (send-now), or -1: the daily rule */
	int		 busy;		/* another replica holds the lock */
	uint32_t	 planned, sent, retrying, failed, suppressed;
	char		**errors;
	size_t		 nerrors;
};

/* The reports clock: time(NULL) + the test offset. */
time_t rptsend_clock(void);
/* One round on a worker's db (the caller sets now and day). */
int rptsend_round_run(struct db *db, struct rptsend_round *r);
void rptsend_round_free(struct rptsend_round *r);
/* The report worker's queue (NULL before rptsend_start). */
struct dbq *rptsend_queue(void);

/* The queue always (send-now works with the round off); the timer when
 * reports.send.enabled. */
void rptsend_start(struct event_base *base);
void rptsend_stop(void);

#endif
