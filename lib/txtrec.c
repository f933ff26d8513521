#include "txtrec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "xmalloc.h"

#define TXTREC_NAME_MAX	32			/* 1 + *31 in ext-name */

/* Untrusted text in k's messages, quoted in q of
 * TXTREC_QUOTE_SIZE(TXTREC_QUOTE_LEN_MAX) bytes. */
static const char *
txtrec_kind_quote(const struct txtrec_kind *k, char *q, const char *s, size_t len)
{
	size_t n = k->quote_len < TXTREC_QUOTE_LEN_MAX ? k->quote_len : TXTREC_QUOTE_LEN_MAX;

	return txtrec_quote(q, TXTREC_QUOTE_SIZE(n), s, len);
}

void
txtrec_seterr(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

const char *
txtrec_quote(char *dst, size_t dstsz, const char *s, size_t len)
{
	size_t max = dstsz - TXTREC_QUOTE_SIZE(0), n = 0;

	for (size_t i = 0; i < len && n < max; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (len > max) {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
	return dst;
}

int
txtrec_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int
txtrec_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

int
txtrec_alnum(unsigned char c)
{
	return txtrec_alpha(c) || txtrec_digit(c);
}

int
txtrec_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static unsigned char
txtrec_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

int
txtrec_caseeq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (txtrec_lower((unsigned char)a[i]) != txtrec_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

int
txtrec_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > TXTREC_NAME_MAX || !txtrec_alnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 1; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!txtrec_alnum(c) && c != '_' && c != '-' && c != '.')
			return 0;
	}
	return 1;
}

int
txtrec_rdata_join(const uint8_t *rdata, size_t len, struct buf *out, char *err, size_t errsz)
{
	char why[160];

	if (dns_txt_rdata_join(rdata, len, out, why, sizeof(why)) < 0) {
		txtrec_seterr(err, errsz, "%s", why);
		return -1;
	}
	return 0;
}

/* Both RFCs' prose discards records not beginning with "<version>;", but
 * their ABNF lets whitespace come before the ';' (RFC 8461 erratum 6285),
 * and a bare version tag is plainly meant as a record too. Counting all
 * three keeps a broken second record from being silently ignored: two
 * records mean none. A longer tag ("v=STSv10") is another record type. */
int
txtrec_is_candidate(const struct txtrec_kind *k, const char *rec, size_t len)
{
	size_t vlen = strlen(k->version);

	if (len < vlen || memcmp(rec, k->version, vlen) != 0)
		return 0;
	return len == vlen || rec[vlen] == ';' || txtrec_wsp((unsigned char)rec[vlen]);
}

int
txtrec_select(const struct txtrec_kind *k, const char *const *recs, const size_t *lens,
    size_t n, size_t *which, char *err, size_t errsz)
{
	size_t found = 0;

	*which = 0;
	for (size_t i = 0; i < n; i++) {
		if (txtrec_is_candidate(k, recs[i], lens[i])) {
			found++;
			*which = i;
		}
	}
	if (found == 0) {
		txtrec_seterr(err, errsz, "none of the %zu TXT records begins with %s", n,
		    k->version);
		return TXTREC_NONE;
	}
	if (found > 1) {
		txtrec_seterr(err, errsz, "%zu TXT records begin with %s; exactly one may", found,
		    k->version);
		return TXTREC_MULTIPLE;
	}
	return 0;
}

void
txtrec_rrs_init(struct txtrec_rrs *rrs, size_t nrrs)
{
	rrs->b = xcalloc(nrrs, sizeof(*rrs->b));
	rrs->recs = xcalloc(nrrs, sizeof(*rrs->recs));
	rrs->lens = xcalloc(nrrs, sizeof(*rrs->lens));
	rrs->n = 0;
	rrs->nrrs = nrrs;
}

int
txtrec_rrs_add(struct txtrec_rrs *rrs, const uint8_t *rdata, size_t len, char *err,
    size_t errsz)
{
	struct buf *b = &rrs->b[rrs->n];
	char why[160];

	buf_init(b);
	rrs->n++;
	if (dns_txt_rdata_join(rdata, len, b, why, sizeof(why)) < 0) {
		txtrec_seterr(err, errsz, "TXT RR %zu of %zu: %s", rrs->n, rrs->nrrs, why);
		return -1;
	}
	rrs->recs[rrs->n - 1] = b->data;
	rrs->lens[rrs->n - 1] = b->len;
	return 0;
}

void
txtrec_rrs_free(struct txtrec_rrs *rrs)
{
	while (rrs->n > 0)
		buf_free(&rrs->b[--rrs->n]);
	free(rrs->b);
	free(rrs->recs);
	free(rrs->lens);
}

int
txtrec_head(const struct txtrec_kind *k, const char *rec, size_t len, size_t *pos,
    char *err, size_t errsz)
{
	char q[TXTREC_QUOTE_SIZE(TXTREC_QUOTE_LEN_MAX)];

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)rec[i];
		if (c >= 0x80) {
			txtrec_seterr(err, errsz, "%s record is not US-ASCII (byte %zu is 0x%02x)",
			    k->name, i + 1, c);
			return -1;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			txtrec_seterr(err, errsz, "%s record has a control character (0x%02x) "
			    "at byte %zu", k->name, c, i + 1);
			return -1;
		}
	}
	if (!txtrec_is_candidate(k, rec, len)) {
		txtrec_seterr(err, errsz, "\"%s\" does not begin with %s",
		    txtrec_kind_quote(k, q, rec, len), k->version);
		return -1;
	}
	*pos = strlen(k->version);
	return 0;
}

int
txtrec_next_field(const struct txtrec_kind *k, const char *rec, size_t len, size_t *pos,
    char *err, size_t errsz)
{
	char q[TXTREC_QUOTE_SIZE(TXTREC_QUOTE_LEN_MAX)];
	size_t p = *pos;

	while (p < len && txtrec_wsp((unsigned char)rec[p]))
		p++;
	if (p == len)
		return 0;
	if (rec[p] != ';') {
		txtrec_seterr(err, errsz, "expected ';' before \"%s\"",
		    txtrec_kind_quote(k, q, rec + p, len - p));
		return -1;
	}
	p++;
	while (p < len && txtrec_wsp((unsigned char)rec[p]))
		p++;
	*pos = p;
	if (p == len)
		return 0;	/* a trailing delimiter is allowed */
	if (rec[p] == ';') {
		txtrec_seterr(err, errsz, "empty field at byte %zu (two ';' in a row)", p + 1);
		return -1;
	}
	return 1;
}

int
txtrec_field_split(const struct txtrec_kind *k, const char *f, size_t flen, size_t *nlen,
    char *err, size_t errsz)
{
	char q[TXTREC_QUOTE_SIZE(TXTREC_QUOTE_LEN_MAX)];
	const char *eq = memchr(f, '=', flen);

	if (eq == NULL) {
		txtrec_seterr(err, errsz, "field \"%s\" is not name=value",
		    txtrec_kind_quote(k, q, f, flen));
		return -1;
	}
	*nlen = (size_t)(eq - f);
	if (!txtrec_name_ok(f, *nlen)) {
		txtrec_seterr(err, errsz, "field \"%s\" does not have a valid name (letters, "
		    "digits, '_', '-', '.'; no space around '=')",
		    txtrec_kind_quote(k, q, f, flen));
		return -1;
	}
	return 0;
}
