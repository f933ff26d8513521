/* mxd -c FILE queue list|retry ID|retry all|drop ID: the client side of
 * queue control, talking to the running mxd's scheduler over its socket in
 * the spool (qmgr/qmgr_queue.c, docs/mxd.md "Queue control"). */
#ifndef MXD_QUEUE_CLI_H
#define MXD_QUEUE_CLI_H

#include "mxd_config.h"

#define MXD_QUEUE_USAGE	(-2)	/* not a queue command: show the usage */

/* The exit status for the command in argv (after "queue"), or
 * MXD_QUEUE_USAGE. */
int mxd_queue_main(const struct mxd_config *cfg, int argc, char **argv);

#endif
