/* The scheduler's DSNs (RFC 3464) to senders, built from the recipients'
 * results of an attempt. */
#ifndef MXD_QMGR_DSN_H
#define MXD_QMGR_DSN_H

#include <sys/types.h>

#include "agent_msg.h"
#include "spool.h"

struct qmgr_dsn_ctx {
	const char	*hostname;	/* the reporting MTA */
	struct spool	*sp;
	char		*dsn_id;	/* SPOOL_ID_MAX bytes: the id of a DSN queued
					   by the call, else left as it was */
};

/* Queue a DSN to the sender for the recipients whose result is `which`
 * (failure, or delay when delayed is set). -1 when one was due but could
 * not be queued (a full spool): the caller keeps the message. */
int qmgr_dsn_bounce(const struct qmgr_dsn_ctx *d, const struct spool_env *env, int fd, off_t off,
    struct rcpt_state *st, enum rcpt_result which, int delayed);
/* Queue a success DSN for the delivered (RCPT_DONE) recipients that asked
 * NOTIFY=SUCCESS and whose next hop did not take the request on
 * (dsn_passed 0): "delivered" after LMTP, else "relayed". */
void qmgr_dsn_success(const struct qmgr_dsn_ctx *d, const struct spool_env *env, int fd,
    off_t off, struct rcpt_state *st);

#endif
