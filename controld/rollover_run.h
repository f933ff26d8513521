/* controld's side of the TLSA key rollover (docs/dns.md, "Rollover"): the
 * driver that steps every active rollover (rollover.h) every
 * dns.rollover_interval seconds on the DNS workers, and the Admin calls
 * StartRollover and GetRollover. */
#ifndef CONTROLD_ROLLOVER_RUN_H
#define CONTROLD_ROLLOVER_RUN_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "grpc.h"

/* Arm the driver's timer on base (controld_timers); rollover_run_stop frees
 * it (controld_shutdown). */
void rollover_run_start(struct event_base *base);
void rollover_run_stop(void);

/* Admin.StartRollover and Admin.GetRollover (method table of controld.c). */
void rollover_admin_start(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void rollover_admin_cancel(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void rollover_admin_get(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);

#endif
