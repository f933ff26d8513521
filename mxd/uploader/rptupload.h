/* The uploader's side of received TLS reports (rptspool.h): each file in
 * <spool_dir>/reports/ goes to controld as Collector.SubmitReport, one at a
 * time, and is deleted once controld has acknowledged it (stored, or
 * refused and kept aside there). Until then it is sent again: after a
 * failed call, a lost connection, or a restart. The directory is looked at
 * every few seconds and whenever the connection comes up. */
#ifndef MXD_RPTUPLOAD_H
#define MXD_RPTUPLOAD_H

#include <event2/event.h>

#include "grpc.h"

#define RPTUPLOAD_SCAN_MS	2000

struct rptupload;

struct rptupload *rptupload_new(struct event_base *base, struct grpc_client *cl,
    const char *spool_dir, const char *host_id);
/* Send the next file now if nothing is in flight. */
void rptupload_kick(struct rptupload *r);
void rptupload_free(struct rptupload *r);

#endif
