/* The client side of the scheduler's queue-control socket (qmgr/queue_cmd.h,
 * docs/mxd.md "Queue control"), shared by `mxd -c FILE queue ...`
 * (mxd_queue_cli.c) and the uploader, which runs controld's queue commands
 * (uploader/queue_remote.c). Errors are written to err, never printed. */
#ifndef MXD_QUEUE_CLIENT_H
#define MXD_QUEUE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Recipients kept per MSG line; the rest are counted. */
#define QUEUE_CLIENT_RCPTS	20

/* One MSG line, its strings pointing into the line (parsed in place). */
struct queue_client_msg {
	const char	*id;
	const char	*from;		/* NULL: not given */
	const char	*last_reply;	/* NULL: none */
	const char	*error;		/* NULL: none */
	long long	 created, age, next;	/* age -1: not given */
	unsigned long long size;
	int		 attempts;
	int		 delivering;
	const char	*rcpts[QUEUE_CLIENT_RCPTS];
	size_t		 nrcpts;	/* all of them; at most QUEUE_CLIENT_RCPTS kept */
};

/* Send one request line to spool_dir's socket and read the whole answer
 * into ans, giving up after timeout_ms without a byte. 0; -2 with err set
 * when the socket is missing or refused (the scheduler is not running, or
 * restarting after a reload); -1 with err set on other failures. */
int queue_client_run(const char *spool_dir, const char *req, int timeout_ms, struct buf *ans,
    char *err, size_t errsz);

/* Parse a MSG line's key=value pairs (after "MSG "), in place. */
void queue_client_parse_msg(char *line, struct queue_client_msg *m);

#endif
