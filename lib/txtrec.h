/* What the `_mta-sts` (RFC 8461 3.1) and `_smtp._tls` (RFC 8460 3) TXT
 * record parsers share. Both records are a version tag followed by
 * field-delim separated name=value fields, both arrive as one or more
 * character-strings per RR, and both count only if exactly one RR of the
 * answer begins with the version tag.
 *
 * Internal to lib/ (sts.c, tlsrpt_txt.c): functions that can fail return -1
 * with a one-line reason in err, and each parser turns that into its own
 * error code. Untrusted text in a reason is quoted truncated and printable. */
#ifndef MXFLEET_TXTREC_H
#define MXFLEET_TXTREC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The size of a buffer that quotes up to len bytes: "..." and the NUL. */
#define TXTREC_QUOTE_SIZE(len)	((len) + 4)
#define TXTREC_QUOTE_LEN_MAX	64	/* a kind's quote_len is cut to this */

/* One kind of record, as its messages name it. */
struct txtrec_kind {
	const char	*name;		/* "MTA-STS" in "MTA-STS record has ..." */
	const char	*version;	/* "v=STSv1": what a record begins with */
	size_t		 quote_len;	/* bytes of untrusted text a message shows */
};

/* The TXT answer's RRs, each turned into one record. recs[i] is lens[i]
 * bytes, as the select functions take them. */
struct txtrec_rrs {
	struct buf	 *b;
	const char	**recs;
	size_t		 *lens;
	size_t		  n;		/* RRs added so far */
	size_t		  nrrs;		/* RRs in the answer */
};

void txtrec_seterr(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* s for a message, in dst of dstsz == TXTREC_QUOTE_SIZE(n) bytes: its first
 * n bytes with non-printables as '?', and "..." if it was longer. */
const char *txtrec_quote(char *dst, size_t dstsz, const char *s, size_t len);

/* The ABNF's ALPHA, DIGIT and WSP, without the locale getting a say. */
int txtrec_alpha(unsigned char c);
int txtrec_digit(unsigned char c);
int txtrec_alnum(unsigned char c);
int txtrec_wsp(unsigned char c);
/* n bytes equal but for the case of ASCII letters. */
int txtrec_caseeq(const char *a, const char *b, size_t n);
/* ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."), the
 * same in both RFCs (and for the names in an MTA-STS policy file). */
int txtrec_name_ok(const char *s, size_t n);

/* One RR's character-strings laid end to end in out, without adding
 * spaces. -1 when the RDATA is malformed. */
int txtrec_rdata_join(const uint8_t *rdata, size_t len, struct buf *out, char *err,
    size_t errsz);
/* Does rec count towards "exactly one record"? It does if it begins with
 * the version and that is followed by the end, ';' or whitespace. */
int txtrec_is_candidate(const struct txtrec_kind *k, const char *rec, size_t len);
/* Of n records, the one that counts, in *which; or TXTREC_NONE or
 * TXTREC_MULTIPLE with the reason in err. */
enum { TXTREC_NONE = -1, TXTREC_MULTIPLE = -2 };
int txtrec_select(const struct txtrec_kind *k, const char *const *recs, const size_t *lens,
    size_t n, size_t *which, char *err, size_t errsz);

void txtrec_rrs_init(struct txtrec_rrs *rrs, size_t nrrs);
/* Joins the next RR; -1 names the RR in err when its RDATA is malformed. */
int txtrec_rrs_add(struct txtrec_rrs *rrs, const uint8_t *rdata, size_t len, char *err,
    size_t errsz);
void txtrec_rrs_free(struct txtrec_rrs *rrs);

/* A whole record, as far as both grammars go: printable US-ASCII (tabs
 * allowed) that is a candidate. *pos is then just past the version. */
int txtrec_head(const struct txtrec_kind *k, const char *rec, size_t len, size_t *pos,
    char *err, size_t errsz);
/* Steps over field-delim = *WSP ";" *WSP from *pos. 1 with *pos at the next
 * field, 0 at the end of the record (after a trailing delimiter too), or -1.
 * Where a field ends is up to the caller: the grammars differ there. */
int txtrec_next_field(const struct txtrec_kind *k, const char *rec, size_t len, size_t *pos,
    char *err, size_t errsz);
/* A field of flen bytes is name=value with a valid name; *nlen is the
 * name's length, the value starts at f + *nlen + 1. */
int txtrec_field_split(const struct txtrec_kind *k, const char *f, size_t flen, size_t *nlen,
    char *err, size_t errsz);

#endif
