/* The TLS report inside a received mail (RFC 8460 5.3): a multipart/report
 * (report-type="tlsrpt") whose part of type application/tlsrpt+gzip or
 * application/tlsrpt+json holds the report. I/O-free: the bytes of one
 * message in, the decoded report bytes (for tlsrpt_parse) and the headers an
 * operator looks at out.
 *
 * Tolerant of what senders do, as the report parser is: the report part may
 * sit at any depth of nested multiparts (up to TLSRPT_MIME_DEPTH), may be
 * labelled application/gzip, application/json, application/octet-stream or
 * application/zip when its file name ends in .json.gz, .json or .gz, and the
 * whole message may be the report (a single-part message of such a type).
 * Transfer encodings: base64 (line breaks and other white space skipped),
 * quoted-printable, 7bit, 8bit, binary. Header lines may end in LF alone.
 *
 * Refused, with a one-line reason in err (TLSRPT_MIME_ERR_MAX bytes are
 * enough): no report part, more than one, a part in an unknown transfer
 * encoding, base64 that does not decode, more than TLSRPT_MIME_PARTS parts
 * or nesting deeper than TLSRPT_MIME_DEPTH, a message whose header block never ends. */
#ifndef CONTROLD_TLSRPT_MIME_H
#define CONTROLD_TLSRPT_MIME_H

#include <stddef.h>

#define TLSRPT_MIME_ERR_MAX	256
#define TLSRPT_MIME_DEPTH	8
#define TLSRPT_MIME_PARTS	64
#define TLSRPT_MIME_HEADER_MAX	998	/* a header value kept is cut here */

struct tlsrpt_mime {
	/* The message's own headers, unfolded, NULL when absent. Remote
	 * text: log it with log_quote. */
	char		*from;
	char		*message_id;
	char		*subject;
	char		*report_domain;		/* TLS-Report-Domain */
	char		*report_submitter;	/* TLS-Report-Submitter */
	/* The report part: its media type (lower case) and decoded bytes. */
	char		*content_type;
	unsigned char	*report;
	size_t		 report_len;
};

/* 0 and *out filled (free with tlsrpt_mime_free), or -1 with err set and
 * *out zeroed. */
int	tlsrpt_mime_extract(const void *msg, size_t len, struct tlsrpt_mime *out, char *err,
	    size_t errlen);
void	tlsrpt_mime_free(struct tlsrpt_mime *m);

#endif
