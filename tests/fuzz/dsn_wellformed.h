/* Is a DSN as dsn_build writes it well-formed mail? Shared by the fuzz
 * harness (fuzz_dsn.c) and the unit tests (test_dsn.c). No I/O.
 *
 * dsn_wellformed(p, len, nrcpt, utf8_text) returns NULL when
 *  - every line ends in CRLF, with no bare CR, bare LF or NUL anywhere;
 *  - every line is at most 998 octets (RFC 5322 2.1.1), except inside a
 *    returned message (message/rfc822, message/global: the original as
 *    received, which is not ours to change);
 *  - the header section and the header section of each part are fields
 *    ("name:" with a field-name of printable ASCII) and folded continuation
 *    lines (beginning with white space, not white space only), US-ASCII
 *    (the message's own header section: UTF-8 when utf8_text, RFC 6532);
 *  - it is multipart/report; report-type=delivery-status with a boundary of
 *    1..70 characters that occurs in the body only as delimiter lines
 *    ("--B" and a final "--B--"), and parts: text/plain (US-ASCII, or
 *    well-formed UTF-8 when utf8_text), message/delivery-status (US-ASCII:
 *    a per-message block with Reporting-MTA, then nrcpt per-recipient
 *    blocks, each with Final-Recipient, Action and Status, separated by
 *    blank lines, RFC 3464 2.1), then the returned headers or message;
 * else a short reason. */
#ifndef DSN_WELLFORMED_H
#define DSN_WELLFORMED_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DSN_WF_LINE_MAX	998

struct dsn_wf_line {
	const char	*p;
	size_t		 len;	/* without CRLF */
};

/* The next line at *pos (CRLF-terminated, checked before). */
static struct dsn_wf_line
dsn_wf_next(const char *p, size_t len, size_t *pos)
{
	struct dsn_wf_line l = { p + *pos, 0 };
	const char *nl = memchr(p + *pos, '\n', len - *pos);
	l.len = (size_t)(nl - (p + *pos)) - 1;
	*pos = (size_t)(nl - p) + 1;
	return l;
}

static int
dsn_wf_has(const struct dsn_wf_line *l, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; n <= l->len && i <= l->len - n; i++)
		if (memcmp(l->p + i, needle, n) == 0)
			return 1;
	return 0;
}

static int
dsn_wf_ascii(const struct dsn_wf_line *l)
{
	for (size_t i = 0; i < l->len; i++)
		if ((unsigned char)l->p[i] >= 0x80)
			return 0;
	return 1;
}

static int
dsn_wf_utf8(const struct dsn_wf_line *l)
{
	const unsigned char *s = (const unsigned char *)l->p;
	for (size_t i = 0; i < l->len; ) {
		unsigned char c = s[i];
		size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 :
		    c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		if (n == 0 || i + n > l->len)
			return 0;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		i += n;
	}
	return 1;
}

/* A header line: a field "name:" or a continuation. *name gets the field's
 * name (or stays when a continuation). UTF-8 only when utf8 (RFC 6532).
 * Returns a reason or NULL. */
static const char *
dsn_wf_field(const struct dsn_wf_line *l, int first, struct dsn_wf_line *name, int utf8)
{
	if (!(utf8 ? dsn_wf_utf8(l) : dsn_wf_ascii(l)))
		return utf8 ? "header field is not UTF-8" : "8-bit octet in a header field";
	if (l->p[0] == ' ' || l->p[0] == '\t') {
		if (first)
			return "header section begins with a continuation line";
		for (size_t i = 0; i < l->len; i++)
			if (l->p[i] != ' ' && l->p[i] != '\t')
				return NULL;
		return "continuation line of white space only";
	}
	size_t i = 0;
	while (i < l->len && l->p[i] > ' ' && l->p[i] < 0x7f && l->p[i] != ':')
		i++;
	if (i == 0 || i >= l->len || l->p[i] != ':')
		return "header line is neither a field nor a continuation";
	name->p = l->p;
	name->len = i;
	return NULL;
}

static int
dsn_wf_prefix(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static int
dsn_wf_is(const struct dsn_wf_line *name, const char *want)
{
	return name->len == strlen(want) && strncasecmp(name->p, want, name->len) == 0;
}

/* The value of the header field "name" (unfolded into out), searched in the
 * header section starting at pos. */
static void
dsn_wf_value(const char *p, size_t len, size_t pos, const char *fname, char *out, size_t outsz)
{
	struct dsn_wf_line name = { NULL, 0 };
	size_t o = 0;
	int in = 0;
	out[0] = '\0';
	while (pos < len) {
		struct dsn_wf_line l = dsn_wf_next(p, len, &pos);
		if (l.len == 0)
			break;
		if (l.p[0] != ' ' && l.p[0] != '\t') {
			if (dsn_wf_field(&l, 0, &name, 1) != NULL)
				break;
			in = dsn_wf_is(&name, fname);
			if (in)
				l.p += name.len + 1, l.len -= name.len + 1;
		}
		for (size_t i = 0; in && i < l.len && o + 1 < outsz; i++)
			out[o++] = l.p[i];
		out[o] = '\0';
	}
}

/* A header section from *pos to its blank line; names of interest are
 * counted in seen[] (by the index in want[]). */
static const char *
dsn_wf_header(const char *p, size_t len, size_t *pos, const char *const *want, int *seen,
    int utf8)
{
	struct dsn_wf_line name = { NULL, 0 };
	int first = 1;
	for (;;) {
		if (*pos >= len)
			return "header section without its blank line";
		struct dsn_wf_line l = dsn_wf_next(p, len, pos);
		if (l.len == 0)
			return first ? "empty header section" : NULL;
		const char *why = dsn_wf_field(&l, first, &name, utf8);
		if (why)
			return why;
		if (l.p[0] != ' ' && l.p[0] != '\t')
			for (size_t k = 0; want && want[k]; k++)
				seen[k] += dsn_wf_is(&name, want[k]);
		first = 0;
	}
}

/* The blocks of message/delivery-status in lines [pos, end). */
static const char *
dsn_wf_status(const char *p, size_t end, size_t pos, size_t nrcpt)
{
	static const char *const msgf[] = { "Reporting-MTA", NULL };
	static const char *const rcptf[] = { "Final-Recipient", "Action", "Status", NULL };
	size_t blocks = 0;

	while (pos < end) {
		int seen[3] = { 0, 0, 0 };
		const char *why = dsn_wf_header(p, end, &pos, blocks == 0 ? msgf : rcptf, seen, 0);
		if (why)
			return why;
		if (blocks == 0 && seen[0] != 1)
			return "per-message fields without one Reporting-MTA";
		if (blocks > 0 && (seen[0] != 1 || seen[1] != 1 || seen[2] != 1))
			return "per-recipient fields without one Final-Recipient, Action, Status";
		blocks++;
		/* Blank lines after the last block are allowed (RFC 3464 2.1). */
		size_t q = pos;
		while (q + 1 < end && p[q] == '\r' && p[q + 1] == '\n')
			q += 2;
		if (q >= end)
			break;
	}
	if (blocks != nrcpt + 1)
		return "delivery-status has not one block per recipient";
	return NULL;
}

static const char *
dsn_wellformed(const char *p, size_t len, size_t nrcpt, int utf8_text)
{
	static const char *const ctf[] = { "Content-Type", NULL };
	char ct[512], boundary[80], delim[84], close[86];

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\0')
			return "NUL";
		if (p[i] == '\r' && (i + 1 >= len || p[i + 1] != '\n'))
			return "bare CR";
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return "bare LF";
	}
	if (len < 2 || p[len - 1] != '\n')
		return "does not end with CRLF";

	size_t pos = 0;
	int seen[1] = { 0 };
	const char *why = dsn_wf_header(p, len, &pos, ctf, seen, utf8_text);
	if (why)
		return why;
	if (seen[0] != 1)
		return "not one Content-Type";
	dsn_wf_value(p, len, 0, "Content-Type", ct, sizeof(ct));
	const char *b = strstr(ct, "boundary=\"");
	if (!dsn_wf_prefix(ct, " multipart/report; report-type=delivery-status;") || !b)
		return "not multipart/report; report-type=delivery-status";
	b += 10;
	size_t bl = strcspn(b, "\"");
	if (bl == 0 || bl > 70 || b[bl] != '"')
		return "boundary missing or longer than 70";
	memcpy(boundary, b, bl);
	boundary[bl] = '\0';
	snprintf(delim, sizeof(delim), "--%s", boundary);
	snprintf(close, sizeof(close), "--%s--", boundary);
	/* Lines of the header section are no longer than the limit either. */
	for (size_t q = 0; q < pos; ) {
		struct dsn_wf_line l = dsn_wf_next(p, len, &q);
		if (l.len > DSN_WF_LINE_MAX)
			return "header line longer than 998 octets";
	}

	/* The body: preamble, parts, the close delimiter, nothing after. */
	size_t starts[8], nparts = 0, ends[8];
	int closed = 0;
	while (pos < len) {
		size_t at = pos;
		struct dsn_wf_line l = dsn_wf_next(p, len, &pos);
		if (closed)
			return "text after the close delimiter";
		if (l.len == strlen(delim) && memcmp(l.p, delim, l.len) == 0) {
			if (nparts == 8)
				return "too many parts";
			if (nparts > 0)
				ends[nparts - 1] = at;
			starts[nparts++] = pos;
		} else if (l.len == strlen(close) && memcmp(l.p, close, l.len) == 0) {
			if (nparts == 0)
				return "close delimiter before any part";
			ends[nparts - 1] = at;
			closed = 1;
		} else if (dsn_wf_has(&l, boundary))
			return "boundary inside content";
	}
	if (!closed)
		return "no close delimiter";
	if (nparts != 3)
		return "not three parts";

	for (size_t k = 0; k < nparts; k++) {
		size_t q = starts[k];
		int s1[1] = { 0 };
		/* A part's content ends before the CRLF that precedes its delimiter. */
		size_t end = ends[k] >= 2 ? ends[k] - 2 : ends[k];
		if (end < q)
			end = q;
		why = dsn_wf_header(p, ends[k], &q, ctf, s1, 0);
		if (why)
			return why;
		if (s1[0] != 1)
			return "part without one Content-Type";
		dsn_wf_value(p, len, starts[k], "Content-Type", ct, sizeof(ct));
		int whole = strcasecmp(ct, " message/rfc822") == 0 || strcasecmp(ct, " message/global") == 0;
		if (k == 0 && !dsn_wf_prefix(ct, " text/plain"))
			return "first part is not text/plain";
		if (k == 1 && strcasecmp(ct, " message/delivery-status") != 0)
			return "second part is not message/delivery-status";
		if (k == 2 && !whole && strcasecmp(ct, " text/rfc822-headers") != 0 &&
		    strcasecmp(ct, " message/global-headers") != 0)
			return "third part is not the returned message or its headers";
		for (size_t r = q; r < end; ) {
			struct dsn_wf_line l = dsn_wf_next(p, len, &r);
			if (!whole && l.len > DSN_WF_LINE_MAX)
				return "line longer than 998 octets";
			if (k == 0 && !(utf8_text ? dsn_wf_utf8(&l) : dsn_wf_ascii(&l)))
				return utf8_text ? "text part is not UTF-8" : "8-bit octet in the text part";
			if (k == 1 && !dsn_wf_ascii(&l))
				return "8-bit octet in delivery-status";
		}
		if (k == 1 && (why = dsn_wf_status(p, end + 2 <= len ? end + 2 : end, q, nrcpt)))
			return why;
	}
	return NULL;
}

#endif
