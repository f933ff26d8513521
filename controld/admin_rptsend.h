/* controld's Admin calls for sending TLS reports (docs/reports.md,
 * "Sending"): ReportDeliveries (mailctl reports sent|pending|show),
 * ReportSendNow (mailctl reports send-now [--day D]: a round at once, on
 * the report worker) and ReportSuppress (mailctl reports suppress|unsuppress). */
#ifndef CONTROLD_ADMIN_RPTSEND_H
#define CONTROLD_ADMIN_RPTSEND_H

#include <stddef.h>
#include <stdint.h>

#include "grpc.h"

void admin_rptsend_deliveries(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_rptsend_send_now(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_rptsend_suppress(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);

#endif
