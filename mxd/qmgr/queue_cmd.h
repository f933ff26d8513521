/* Requests of the queue-control socket (docs/mxd.md#queue-control): one text
 * line each, "LIST", "RETRY <id>", "RETRY ALL", "DROP <id>", "STAT". The parser does
 * no I/O, so it is fuzzed (tests/fuzz/fuzz_queue_cmd.c) and shared by the
 * server (qmgr/qmgr_queue.c) and the client (mxd -c FILE queue ...). */
#ifndef MXD_QUEUE_CMD_H
#define MXD_QUEUE_CMD_H

#include <stddef.h>

#include "spool.h"

/* The socket, in spool_dir. */
#define QUEUE_CMD_SOCK	"queue.sock"

/* Longest request line, line end included; longer gets "ERR line too long". */
#define QUEUE_CMD_LINE_MAX	256

enum queue_cmd_verb {
	QUEUE_CMD_LIST,
	QUEUE_CMD_RETRY,	/* one message: id */
	QUEUE_CMD_RETRY_ALL,
	QUEUE_CMD_DROP,		/* one message: id */
	QUEUE_CMD_STAT,		/* count and oldest arrival (the heartbeat's) */
	QUEUE_CMD_NVERBS
};

struct queue_cmd {
	enum queue_cmd_verb	verb;
	char			id[SPOOL_ID_MAX];	/* "" unless RETRY or DROP */
};

/* Parse one request line of len bytes (a trailing LF or CRLF is allowed;
 * NUL bytes are not). Verbs and ALL are case-insensitive, ids are not.
 * Returns 0, or -1 with *err set to the reply text after "ERR ". */
int queue_cmd_parse(const char *line, size_t len, struct queue_cmd *out, const char **err);

/* Is s a well-formed message id: 1..SPOOL_ID_MAX-1 bytes of [A-Za-z0-9._-],
 * not starting with '.' (so never a path)? */
int queue_cmd_id_ok(const char *s, size_t len);

#endif
