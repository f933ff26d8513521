/* Delivery status notifications: the RFC 3461 parameters passed on to a
 * next hop and the RFC 3464 report mxd sends itself (the parameters'
 * syntax is dsn_param.h). */
#ifndef MXD_DSN_H
#define MXD_DSN_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "dsn_param.h"
#include "spool.h"

/* An address as a DSN field value (RFC 3464 2.3.2, RFC 6533 3):
 * "rfc822; a@b" when it is printable ASCII without white space, else
 * "utf-8; " and its utf-8-addr-xtext, every character outside QCHAR as
 * \x{HEX} of its code point (a byte that is no valid UTF-8 as \x{HEX} of
 * the byte). */
void dsn_address_field(struct buf *out, const char *addr);

/* What to append to MAIL FROM:<...> and to RCPT TO:<...> for a next hop that
 * offers DSN: " RET=HDRS ENVID=abc", " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b"
 * (leading space; "" when nothing applies). A parameter that would not fit
 * in out is left out whole, never cut. */
void dsn_mail_params(const struct spool_env *env, char *out, size_t outsz);
void dsn_rcpt_params(const struct spool_env *env, size_t i, char *out, size_t outsz);

/* RFC 3464 2.3.3. FAILED is 0 so that "not delayed" reads as before. */
enum dsn_action {
	DSN_ACTION_FAILED = 0,
	DSN_ACTION_DELAYED,
	DSN_ACTION_DELIVERED,	/* final delivery (LMTP) */
	DSN_ACTION_RELAYED,	/* to a next hop without DSN (RFC 3461 5.2.2) */
};

/* Does recipient i of env want a notice of this kind (NOTIFY, RFC 3461
 * 4.1)? Without NOTIFY: failure and delay notices yes, success notices no. */
int dsn_wanted(const struct spool_env *env, size_t i, enum dsn_action kind);

struct dsn_rcpt {
	const char	*rcpt;
	const char	*status;	/* "5.1.1" */
	const char	*remote_mta;	/* next hop name, or NULL */
	const char	*reply;		/* full reply text, lines separated by \n */
	enum dsn_action	 action;	/* the same for every recipient of one DSN */
	const char	*orcpt;		/* ORCPT as received, or NULL */
};

/* A failure DSN returns the whole message (message/rfc822) when the sender
 * asked RET=FULL and it is no larger than this; else only its headers. */
#define DSN_RETURN_FULL_MAX	(10u * 1024 * 1024)

/* Build the DSN message into out: headers, a human-readable part quoting each
 * full reply, message/delivery-status, and the original message read from
 * fd at off (its headers; all of it for a failure under RET=FULL).
 *
 * Whatever the replies, addresses and names hold, the result is well-formed
 * mail: CRLF line ends only; remote text with CR, LF, NUL, other controls
 * or DEL shows them as \x{HEX}, and so 8-bit octets, except well-formed
 * UTF-8 in the text part of a notice about an SMTPUTF8 message; header
 * fields folded (at white space past 78 octets, between characters where
 * there is none) and body lines wrapped so that no line passes 998 octets
 * (a returned whole message stays as received); the MIME boundary is
 * random (RAND_bytes; fatalx when there is none) and absent from the
 * content. */
void dsn_build(struct buf *out, const char *hostname, const struct spool_env *orig,
    const struct dsn_rcpt *rcpts, size_t n, int fd, off_t off);
/* Enhanced status code from a reply ("550 5.1.1 ..." -> "5.1.1"), or a default
 * for the reply class. */
void dsn_status_from_reply(const char *reply, int code, char *out, size_t outsz);

#endif
