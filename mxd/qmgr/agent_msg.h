/* What the scheduler (qmgr.c) and its delivery agents (deliver.c) say to
 * each other, on one socketpair per agent.
 *
 * Frames: a 4-byte big-endian body length, then the body; bodies over
 * AGENT_MSG_MAX are refused (the peer is then treated as broken). A body
 * is a sequence of fields, each a 4-byte big-endian unsigned or a string
 * (4-byte length, the bytes, no NUL). The codec does no I/O: the scheduler
 * reads frames without blocking into a buffer and takes whole ones out;
 * an agent reads and writes with blocking calls (it has nothing else to do).
 *
 * The scheduler sends a job: one message, the recipients (by index in its
 * envelope) that go to one destination, the attempt's number. The agent
 * reads the spool file itself (read only: it never writes to the queue),
 * runs the transaction and answers with one result per recipient and what
 * the attempt says of the destination (qmgr_sched.h feedback). Before that
 * it may send progress: a result with feedback QMGR_FB_PROGRESS and no
 * recipients, when a new connection of the job was greeted. */
#ifndef MXD_AGENT_MSG_H
#define MXD_AGENT_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "qmgr_sched.h"
#include "spool.h"
#include "sts.h"

#define AGENT_MSG_MAX		(8u << 20)
#define AGENT_JOB_RCPTS_MAX	1000	/* recipient_limit's ceiling */

/* RCPT_FINAL: finished on an earlier attempt (its spool status is DONE):
 * not tried, not reported again. */
enum rcpt_result { RCPT_PENDING, RCPT_DONE, RCPT_BOUNCE, RCPT_DEFER, RCPT_FINAL };

struct rcpt_state {
	enum rcpt_result	 result;
	int			 code;
	char			*reply;		/* full reply text */
	char			*hop;		/* next hop as configured, for logs */
	char			*mta;		/* its host name, for DSNs */
	int			 dsn_passed;	/* the next hop took our NOTIFY/ORCPT
						   (it offered DSN): it notifies now */
	int			 lmtp;		/* delivered to the final store */
	const char		*transfer;	/* "DATA" or "BDAT" (CHUNKING), for logs */
	char			 sts_id[STS_ID_MAX + 1];	/* deferred under this enforced
							   MTA-STS policy (recheck it
							   before returning, RFC 8461 10.2) */
	int			 sts_hold;	/* its id changed, the new policy
						   could not be had: do not return yet */
	int			 stored;	/* a return decided on an earlier attempt
						   (spool status BOUNCED): only its DSN
						   is owed, nothing is sent to a hop */
};

/* Record a recipient's result; the state keeps its own copies. */
void rcpt_set(struct rcpt_state *r, enum rcpt_result res, int code, const char *text,
    const char *hop, const char *mta);
/* Frees what r holds (not r). */
void rcpt_state_clear(struct rcpt_state *r);

enum agent_job_kind {
	AGENT_JOB_DELIVER = 1,
	AGENT_JOB_STS_REFRESH = 2	/* refetch the MTA-STS policies due (no message) */
};

struct agent_job {
	enum agent_job_kind kind;
	char		 id[SPOOL_ID_MAX];
	int		 attempt;	/* this attempt's number, from 1 */
	int		 expired;	/* past max_age: recheck MTA-STS first (RFC 8461 10.2) */
	size_t		 n;
	uint32_t	 idx[AGENT_JOB_RCPTS_MAX];
};

struct agent_result {
	enum qmgr_feedback fb;
	size_t		 n;
	uint32_t	*idx;
	struct rcpt_state *st;	/* st[k] is recipient idx[k]'s */
};

/* Appends one frame to out. */
void agent_job_encode(const struct agent_job *job, struct buf *out);
/* 0, or -1 for a malformed body. */
int agent_job_decode(const uint8_t *p, size_t len, struct agent_job *out);
/* Appends one frame: st[idx[k]] for k in [0, n). */
void agent_result_encode(enum qmgr_feedback fb, const struct rcpt_state *st,
    const uint32_t *idx, size_t n, struct buf *out);
/* 0, or -1 for a malformed body; out is then empty. Free with
 * agent_result_free. */
int agent_result_decode(const uint8_t *p, size_t len, struct agent_result *out);
void agent_result_free(struct agent_result *r);
/* A whole frame at the start of in: 1 (*body, *len point into in; consume
 * AGENT_FRAME_HDR + len when done), 0 not yet, -1 too long. */
#define AGENT_FRAME_HDR	4
int agent_frame_peek(const struct buf *in, const uint8_t **body, size_t *len);

#endif
