/* DKIM signing (RFC 6376) with OpenSSL: rsa-sha256, c=relaxed/relaxed.
 * I/O-free: a whole message (CRLF) and a key PEM in, the DKIM-Signature
 * header field to prepend out. The clock is the caller's (t=).
 *
 * Which headers are signed (h=): every name in params->headers, once for
 * each instance the message holds. RFC 6376 5.4.2: instances are taken from
 * the bottom of the header up, so a name listed n times in h= covers the
 * last n instances. A name in params->oversign is listed once more than
 * the message holds it: that extra entry signs "no such header", so a
 * second From: or Subject: added on the way breaks the signature instead
 * of being shown to the reader (RFC 6376 8.15). From is always signed and
 * oversigned (RFC 6376 5.4: it MUST be signed), named or not. h= lists the
 * names in the caller's order, lowercased, without duplicates.
 *
 * The key is a secret: it is never copied into err or any log line; an
 * encrypted PEM is refused, never prompted for. Refused, with the reason
 * in err (DKIM_SIGN_ERR_MAX bytes are always enough): a message with bare
 * CR or LF, a malformed header or no From; a key that is not RSA or has
 * fewer than DKIM_SIGN_MIN_BITS bits; d=, s= or a header name that would
 * not fit in its tag. */
#ifndef MXFLEET_DKIM_SIGN_H
#define MXFLEET_DKIM_SIGN_H

#include <stddef.h>
#include <time.h>

#include "buf.h"

#define DKIM_SIGN_ERR_MAX	256
#define DKIM_SIGN_MIN_BITS	1024	/* RFC 8301 3.2: verifiers refuse less */
#define DKIM_SIGN_FOLD		78	/* the header's lines stay this short */

struct dkim_sign_params {
	const char		*domain;	/* d= */
	const char		*selector;	/* s= */
	const char		*key_pem;	/* RSA private key, PEM (PKCS#8 or PKCS#1) */
	const char *const	*headers;	/* names to sign, NULL-terminated; may be NULL */
	const char *const	*oversign;	/* names to oversign, NULL-terminated; may be NULL */
	time_t			 now;		/* t= */
};

/* Signs msg (len bytes: header, empty line, body; all CRLF). Returns 0 and
 * a malloc'd, NUL-terminated "DKIM-Signature: ...\r\n" in *out, folded so
 * no line exceeds DKIM_SIGN_FOLD bytes, or -1 with *out == NULL and the
 * reason in err. */
int	dkim_sign(const struct dkim_sign_params *p, const char *msg, size_t len,
	    char **out, char *err, size_t errlen);

/* RFC 6376 3.4.4 relaxed body canonicalization of body (the bytes after the
 * empty line), appended to out: runs of WSP become one SP, WSP at line ends
 * goes, empty lines at the end go, a non-empty body ends with CRLF, an
 * empty one stays empty. Exported for the tests. */
void	dkim_sign_canon_body(const char *body, size_t len, struct buf *out);

/* RFC 6376 3.4.2 relaxed header canonicalization of one header field
 * (name, colon, value, with its folding CRLFs but without the final CRLF),
 * appended to out with a CRLF: name lowercased, value unfolded, runs of
 * WSP one SP, no WSP around the colon or at the end. Exported for the
 * tests. */
void	dkim_sign_canon_header(const char *field, size_t len, struct buf *out);

#endif
