/* Delivery status notifications (RFC 3464) for recipients that failed. */
#ifndef MXD_DSN_H
#define MXD_DSN_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "spool.h"

struct dsn_rcpt {
	const char	*rcpt;
	const char	*status;	/* "5.1.1" */
	const char	*remote_mta;	/* next hop name, or NULL */
	const char	*reply;		/* full reply text, lines separated by \n */
	int		 delayed;	/* 1: still trying (delay DSN), 0: failed */
};

/* Build the DSN message into out: headers, a human-readable part quoting each
 * full reply, message/delivery-status, and the original headers read from
 * fd at off. */
void dsn_build(struct buf *out, const char *hostname, const struct spool_env *orig,
    const struct dsn_rcpt *rcpts, size_t n, int fd, off_t off);
/* Enhanced status code from a reply ("550 5.1.1 ..." -> "5.1.1"), or a default
 * for the reply class. */
void dsn_status_from_reply(const char *reply, int code, char *out, size_t outsz);

#endif
