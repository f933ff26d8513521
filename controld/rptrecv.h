/* controld: TLS reports other domains send us (docs/reports.md,
 * "Receiving"). Collector.SubmitReport takes a mail an mxd received for
 * one of ConfigSnapshot.tlsrpt_addresses; on a database worker it is read
 * (tlsrpt_mime_extract, then tlsrpt_parse) and stored, accepted or refused
 * (kept aside with the reason), then acknowledged, so the mxd deletes its
 * copy. Admin.ReceivedReports and ShowReceivedReport show what was stored
 * (mailctl reports received / show). */
#ifndef CONTROLD_RPTRECV_H
#define CONTROLD_RPTRECV_H

#include <stddef.h>
#include <stdint.h>

#include "grpc.h"

#define RPTRECV_KEEP_MAX	(1024 * 1024)	/* bytes of a refused mail kept */
#define RPTRECV_ID_MAX		200		/* bytes of an mxd's mail id */

void rptrecv_submit(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void rptrecv_list(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void rptrecv_show(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);

#endif
