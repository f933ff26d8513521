/* The inbound TLS view's read of the outcomes (docs/reports.md, "Inbound
 * TLS view"): one GROUP BY over the inbound sessions of every host since a
 * time, folded by inbound_tls.h into a report. */
#ifndef CONTROLD_DB_INBOUND_H
#define CONTROLD_DB_INBOUND_H

#include <stdint.h>

#include "db.h"
#include "inbound_tls.h"
#include "mxfleet.pb-c.h"

/* Distinct rows read at most; past that the report says truncated. */
#define DB_INBOUND_MAX_ROWS	200000

/* The inbound sessions started at or after since_unix, grouped by `by`.
 * DB_EINVAL for a since out of range. Free with inbound_tls_report_free. */
int db_inbound_tls(struct db *db, int64_t since_unix, enum inbound_tls_by by,
    Mxfleet__V1__InboundTlsReport **out);

#endif
