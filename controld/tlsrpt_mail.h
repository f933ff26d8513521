/* The mail that carries a TLS report to a mailto: rua (RFC 8460 5.3),
 * composed and DKIM-signed without I/O: a report and the sending details
 * in, the bytes to hand to an mxd over SMTP out (CRLF only, no line over
 * 998 bytes, dot-stuffing left to the SMTP client).
 *
 * Layout (docs/reports.md, "Sending by mail"):
 *
 *     DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=...; s=...; t=...;
 *     From: <from>
 *     To: <to>
 *     Date: <now, RFC 5322>
 *     Subject: Report Domain: <policy-domain> Submitter: <submitter>
 *      Report-ID: <<report-id>>
 *     Message-ID: <...>
 *     TLS-Report-Domain: <policy-domain>
 *     TLS-Report-Submitter: <submitter>
 *     TLS-Required: No
 *     MIME-Version: 1.0
 *     Content-Type: multipart/report; report-type="tlsrpt"; boundary="..."
 *
 *     text/plain (us-ascii): who reports what for which day
 *     application/tlsrpt+gzip (base64, 76-column lines), attachment,
 *         filename = tlsrpt_filename(submitter, policy-domain, begin, end,
 *         unique-id, gz)
 *
 * Every header value is checked, not escaped: addresses are dot-atom
 * local parts at LDH domain names, domains are LDH names, the report-id is
 * dot-atom "@" dot-atom; anything else (a CR or LF above all) is refused,
 * so no input can add a header. The signing domain must be From's domain
 * or a parent of it (RFC 8460 3: signed by the reporting domain). */
#ifndef CONTROLD_TLSRPT_MAIL_H
#define CONTROLD_TLSRPT_MAIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tlsrpt.h"

struct tlsrpt_mail {
	const char	*from;		/* the submitter's reporting address */
	const char	*to;		/* the rua mailto: address, percent-decoded */
	const char	*submitter;	/* TLS-Report-Submitter: our domain */
	const char	*policy_domain;	/* TLS-Report-Domain: whose rua this is */
	const char	*message_id;	/* "<left@right>"; NULL: made from nonce */
	uint64_t	 nonce;		/* the caller's random number: Message-ID, boundary */
	const char	*unique_id;	/* file name unique-id (1*ALNUM); may be NULL */
	time_t		 now;		/* Date: and DKIM t= */
	const char	*dkim_domain;	/* d= */
	const char	*dkim_selector;	/* s= */
	const char	*dkim_key_pem;	/* the domain's DKIM private key (dkim.h) */
};

/* Builds r's JSON, gzips it and writes the signed message. Returns 0 and a
 * malloc'd *out (*outlen bytes, NUL-terminated), or -1 with *out == NULL
 * and the reason in err (TLSRPT_ERR_MAX bytes are enough). The same
 * inputs give the same bytes. */
int	tlsrpt_mail_compose(const struct tlsrpt_report *r, const struct tlsrpt_mail *m,
	    char **out, size_t *outlen, char *err, size_t errlen);

#endif
