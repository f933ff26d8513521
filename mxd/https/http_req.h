/* The request head of an HTTP/1.1 request (RFC 9112), as the MTA-STS
 * policy host reads it: bytes in, a verdict out, no I/O.
 *
 * The caller collects what the client sent and calls http_req_parse on the
 * whole of it each time more arrives (the head is capped at
 * HTTP_REQ_HEAD_MAX bytes, so reparsing costs little). The parser is
 * strict where leniency has let requests be read two ways (request
 * smuggling): lines end in CRLF, no bare CR or LF, no folded header lines,
 * no space before a field's colon, one Host field. Anything else is 400.
 *
 * Only the request line and the Host field matter here: the body (if a
 * client sends one) is never read, because the server answers once and
 * closes the connection. */
#ifndef MXD_HTTP_REQ_H
#define MXD_HTTP_REQ_H

#include <stddef.h>

/* The request line and the header fields together, with their CRLFs. */
#define HTTP_REQ_HEAD_MAX	8192
/* A DNS name (RFC 1035 2.3.4), lower-cased, without port or final dot. */
#define HTTP_REQ_HOST_MAX	253

enum http_req_method {
	HTTP_REQ_GET,
	HTTP_REQ_HEAD,
	HTTP_REQ_OTHER,		/* any other token: 405 */
};

struct http_req {
	enum http_req_method	 method;
	/* The request-target as sent, pointing into the caller's buffer
	 * (valid while it is). */
	const char		*target;
	size_t			 target_len;
	char			 host[HTTP_REQ_HOST_MAX + 1];	/* "": none sent */
	int			 http10;	/* HTTP/1.0: Host may be absent */
	size_t			 head_len;	/* bytes of the head, final CRLF included */
};

enum http_req_result {
	HTTP_REQ_MORE = 0,	/* no end of head yet: read more */
	HTTP_REQ_DONE = 1,	/* *out filled */
	HTTP_REQ_ERROR = -1,	/* answer *status (400, 431, 505) and close */
};

/* Parse the head at the start of buf. */
enum http_req_result http_req_parse(const char *buf, size_t len, struct http_req *out,
    int *status);

/* Whether the request-target is exactly path (no query, no fragment). */
int http_req_target_is(const struct http_req *r, const char *path);

/* "Not Found" for 404, ...; "Error" for a code it does not know. */
const char *http_req_reason(int status);

#endif
