/* What mxd-https answers to a request, without I/O: the bytes a client
 * sent in, the whole HTTP answer out (docs/dns.md#mta-sts-hosting).
 *
 * GET or HEAD of /.well-known/mta-sts.txt with Host mta-sts.<domain>, for
 * a domain whose policy the configuration holds: 200, Content-Type
 * text/plain, the policy's bytes exactly (RFC 8461 3.2, 3.3). Another
 * method: 405; another path or host: 404; a malformed head: 400; a head of
 * more than HTTP_REQ_HEAD_MAX bytes: 431. Never a redirect. Every answer
 * says Connection: close: one request per connection. */
#ifndef MXD_HTTPS_ANSWER_H
#define MXD_HTTPS_ANSWER_H

#include <stddef.h>

#include "buf.h"
#include "http_req.h"
#include "mxd_config.h"

#define HTTPS_ANSWER_PATH	"/.well-known/mta-sts.txt"

/* For the log line of the request. */
struct https_answer_info {
	int			 status;
	const char		*method;	/* "GET", "HEAD", "other", "-" (unparsed) */
	char			 host[HTTP_REQ_HOST_MAX + 1];	/* "" when none */
	const char		*target;	/* into in; NULL when unparsed */
	size_t			 target_len;
	size_t			 body_len;	/* bytes of the body sent */
};

/* 0: the head is not complete yet (read more); 1: the answer is in out. */
int https_answer(const struct mxd_config *cfg, const char *in, size_t len, struct buf *out,
    struct https_answer_info *info);
/* An answer of status alone (its reason phrase as the body); returns the
 * body's length (0 for head). */
size_t https_answer_status(struct buf *out, int status, int head);

#endif
