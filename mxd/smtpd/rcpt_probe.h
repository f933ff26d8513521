/* One recipient verification probe (recipient_check "verify"), the dialogue
 * without I/O: greeting, EHLO (LHLO for LMTP), MAIL FROM:<>, RCPT TO:<addr>,
 * QUIT. The caller owns the connection to the domain's next hop: it feeds
 * what the next hop sends to rcpt_probe_input, writes what
 * rcpt_probe_output holds, and ends the probe with rcpt_probe_fail on a
 * connection error or timeout. One command at a time, no pipelining, no
 * STARTTLS (the next hop of a hosted domain is the operator's own store).
 *
 * Driven by rcpt_prober.c on an SMTP worker's loop.
 *
 * The answer to RCPT decides: 2xx ACCEPTED, 5xx REJECTED (a delivery would
 * bounce), 4xx FAILED (ask again later). Anything unexpected before it (a
 * greeting other than 220, EHLO or MAIL refused, a reply that does not
 * parse) is FAILED: the probe says nothing about the recipient. */
#ifndef MXD_RCPT_PROBE_H
#define MXD_RCPT_PROBE_H

#include <stddef.h>

#include "buf.h"
#include "rcpt_verify.h"
#include "smtp_client.h"

enum rcpt_probe_step {
	RCPT_PROBE_GREETING,
	RCPT_PROBE_HELLO,
	RCPT_PROBE_MAIL,
	RCPT_PROBE_RCPT,
	RCPT_PROBE_DONE,	/* result is set; output may still hold QUIT */
};

struct rcpt_probe {
	enum rcpt_probe_step		 step;
	enum rcpt_probe_result		 result;
	char				 why[300];	/* the deciding reply, or what failed */
	char				*addr;
	char				*hello;		/* "EHLO name" or "LHLO name" */
	struct buf			 out;		/* bytes to write */
	struct smtp_reply		 reply;
	struct smtp_reply_parser	 parser;
};

/* addr: the recipient; name: our EHLO name. */
void rcpt_probe_init(struct rcpt_probe *p, const char *name, const char *addr, int lmtp);
void rcpt_probe_free(struct rcpt_probe *p);
/* Take bytes from the next hop: *consumed of len are used (the rest belongs
 * to a later call, with more bytes appended). 1 once the probe is DONE. */
int rcpt_probe_input(struct rcpt_probe *p, const char *buf, size_t len, size_t *consumed);
/* Bytes to send now (may be empty); rcpt_probe_sent says how many went. */
const char *rcpt_probe_output(const struct rcpt_probe *p, size_t *len);
void rcpt_probe_sent(struct rcpt_probe *p, size_t n);
/* The connection failed (refused, reset, timeout): FAILED with why. */
void rcpt_probe_fail(struct rcpt_probe *p, const char *why);

#endif
