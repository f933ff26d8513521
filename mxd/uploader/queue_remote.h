/* The uploader's side of queue control through controld (docs/mxd.md
 * "Queue control", docs/control-plane.md): it keeps Fleet.WatchQueueCommands
 * open like WatchConfig, runs each QueueCommand against the local
 * scheduler's socket (queue_client.h) and answers with
 * Fleet.QueueCommandDone. It also asks the scheduler for the heartbeat's
 * queue counts (STAT).
 *
 * The scheduler answers between turns of its loop, so a command blocks the
 * uploader for that long: milliseconds for retry and drop, about a second
 * per 10,000 queued messages for a listing (which the uploader bounds to
 * max_messages entries, counting the rest). */
#ifndef MXD_QUEUE_REMOTE_H
#define MXD_QUEUE_REMOTE_H

#include <event2/event.h>
#include <stdint.h>

#include "grpc.h"

#define QUEUE_REMOTE_TIMEOUT_MS	5000	/* the scheduler's silence we wait out */
#define QUEUE_REMOTE_STAT_MS	1000	/* the same for the heartbeat's STAT */
#define QUEUE_REMOTE_RETRY_MS	1000

struct queue_remote;

struct queue_remote *queue_remote_new(struct event_base *base, struct grpc_client *cl,
    const char *spool_dir, const char *host_id);
/* Open the watch if it is not open and the connection is up. */
void queue_remote_kick(struct queue_remote *qr);
/* The queue's size and its oldest message's arrival (0: empty or unknown);
 * -1 when the scheduler did not answer: then the last values it gave (0
 * before the first), never a made-up empty queue. */
int queue_remote_stat(struct queue_remote *qr, uint64_t *messages, int64_t *oldest);
void queue_remote_free(struct queue_remote *qr);

#endif
