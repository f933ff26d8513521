/* controld: queue control of the fleet's hosts (docs/control-plane.md,
 * "Queue control"). controld cannot connect to an mxd, so a command goes
 * through the database: Admin.QueueControl stores one row per target host
 * (queue_commands) and waits, bounded, for their answers; every replica
 * looks for rows of the hosts whose Fleet.WatchQueueCommands stream it
 * holds (a short poll), takes them and pushes them; the host answers with
 * Fleet.QueueCommandDone, stored in the row, whichever replica gets it. A
 * host that took nothing by the deadline is "not connected to controld", one
 * that took it and did not answer "did not answer"; such rows are withdrawn
 * so they never run late. All database work is on the workers. */
#ifndef CONTROLD_QUEUE_REMOTE_H
#define CONTROLD_QUEUE_REMOTE_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "grpc.h"

#define QUEUE_REMOTE_POLL_MS		300	/* looking for commands of our hosts */
#define QUEUE_REMOTE_WAIT_POLL_MS	200	/* looking for answers */
#define QUEUE_REMOTE_WAIT_DEFAULT	10	/* seconds */
#define QUEUE_REMOTE_WAIT_MAX		60
#define QUEUE_REMOTE_LIST_DEFAULT	1000
#define QUEUE_REMOTE_LIST_MAX		10000

void queue_remote_control(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void queue_remote_watch(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void queue_remote_done(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void queue_remote_start(struct event_base *base);
/* After the database workers are gone. */
void queue_remote_stop(void);

#endif
