/* The SMTP TLS Reporting record (RFC 8460 3), `_smtp._tls.<domain>` TXT:
 * "v=TLSRPTv1; rua=mailto:...,https://...". I/O-free: the DNS lookup lives
 * elsewhere; this turns TXT RDATA into the list of places a report goes.
 *
 * Every rejection comes with a one-line reason in the caller's err buffer
 * (TLSRPT_TXT_ERR_MAX bytes are always enough). */
#ifndef MXFLEET_TLSRPT_TXT_H
#define MXFLEET_TLSRPT_TXT_H

#include <stddef.h>
#include <stdint.h>

#define TLSRPT_TXT_ERR_MAX	192
#define TLSRPT_TXT_RUA_MAX	32	/* more URIs than this: refused, not cut */

enum tlsrpt_txt_err {
	TLSRPT_TXT_OK = 0,
	TLSRPT_TXT_SYNTAX = -1,		/* not what RFC 8460 allows; err says why */
	TLSRPT_TXT_NO_RECORD = -2,	/* select: no RR begins with v=TLSRPTv1 */
	TLSRPT_TXT_MULTIPLE = -3,	/* select: more than one does */
	TLSRPT_TXT_UNSUPPORTED = -4,	/* well-formed, but no mailto: or https: URI */
};

enum tlsrpt_txt_scheme {
	TLSRPT_TXT_MAILTO = 1,
	TLSRPT_TXT_HTTPS,
	TLSRPT_TXT_OTHER,		/* a valid URI we cannot send to */
};

struct tlsrpt_txt_rua {
	enum tlsrpt_txt_scheme	 scheme;
	char			*uri;	/* as published */
	/* mailto: the recipient address, percent-decoded, without ?hfields;
	 * https: the URI to POST to (same as uri); other: NULL. */
	char			*target;
};

/* Read-only for callers; freed with tlsrpt_txt_free. In published order. */
struct tlsrpt_txt {
	struct tlsrpt_txt_rua	*rua;
	size_t			 n_rua;
	size_t			 n_usable;	/* mailto: and https: ones */
};

/* One TXT RR's RDATA in wire form (length-prefixed character-strings). */
struct tlsrpt_txt_rdata {
	const uint8_t	*data;
	size_t		 len;
};

/* A whole record, already concatenated. Returns TLSRPT_TXT_OK and *out, or
 * a negative tlsrpt_txt_err with *out == NULL and the reason in err. */
int tlsrpt_txt_parse_record(const char *rec, size_t len, struct tlsrpt_txt **out,
    char *err, size_t errsz);
/* One RR: character-strings concatenated without spaces (3), then parsed. */
int tlsrpt_txt_parse_rdata(const uint8_t *rdata, size_t len, struct tlsrpt_txt **out,
    char *err, size_t errsz);
/* The whole TXT answer for `_smtp._tls.<domain>`: RRs not beginning with
 * v=TLSRPTv1 are discarded; if the rest is not exactly one, the domain does
 * not implement TLSRPT (3). Either from each RR's RDATA, or from records
 * already concatenated (as dns_txt() hands them out: recs[i] is lens[i]
 * bytes, need not be NUL-terminated). */
int tlsrpt_txt_select_rdata(const struct tlsrpt_txt_rdata *rrs, size_t nrrs,
    struct tlsrpt_txt **out, char *err, size_t errsz);
int tlsrpt_txt_select_records(const char *const *recs, const size_t *lens, size_t n,
    struct tlsrpt_txt **out, char *err, size_t errsz);
void tlsrpt_txt_free(struct tlsrpt_txt *t);

const char *tlsrpt_txt_scheme_name(enum tlsrpt_txt_scheme s);	/* "mailto", "https", "other" */

#endif
