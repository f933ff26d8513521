/* controld's Fleet service: Register, Heartbeat (answered at once, written
 * by a worker), WatchConfig (from the snapshot held in memory), and the
 * poll that keeps that snapshot current. */
#ifndef CONTROLD_FLEET_H
#define CONTROLD_FLEET_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "controld.h"
#include "grpc.h"

void fleet_register(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void fleet_heartbeat(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void fleet_watch(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
/* A snapshot read from the database: kept when newer than the one held and
 * pushed to every watcher. Takes snap. */
void fleet_snapshot_take(Mxfleet__V1__ConfigSnapshot *snap);
void fleet_watch_remove(struct watcher *w);
/* Timer: other replicas' changes. */
void fleet_poll_cb(evutil_socket_t fd, short what, void *arg);

#endif
