/* controld's Collector service: outcome batches from the hosts (Export,
 * Stream), stored by the database workers, acknowledged after COMMIT. */
#ifndef CONTROLD_COLLECTOR_H
#define CONTROLD_COLLECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "grpc.h"

void collector_batch(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void collector_half_close(struct grpc_call *c, void *arg);

#endif
