/* controld's Admin calls for the TLS reports we send (docs/reports.md):
 * ReportPreview, the report of a domain or an MX host for a UTC day exactly
 * as it would be sent, built on the database workers from the aggregation
 * of db_tlsrpt.h. */
#ifndef CONTROLD_ADMIN_REPORTS_H
#define CONTROLD_ADMIN_REPORTS_H

#include <stddef.h>
#include <stdint.h>

#include "grpc.h"

void admin_reports_preview(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);

#endif
