#include "sts.h"

#include <stdlib.h>
#include <string.h>

#include "txtrec.h"
#include "utf8.h"
#include "xmalloc.h"

#define STS_QUOTE_LEN	40			/* untrusted text shown in a message */
#define STS_QUOTE_MAX	TXTREC_QUOTE_SIZE(STS_QUOTE_LEN)
#define STS_HOST_MAX	253			/* RFC 1035 2.3.4, without the root dot */
#define STS_LABEL_MAX	63

static const struct txtrec_kind sts_txt_kind = { "MTA-STS", "v=STSv1", STS_QUOTE_LEN };

/* ---- `_mta-sts` TXT record ---- */

/* sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E); the caller has already cut
 * the field at ';' and whitespace and refused CTLs and non-ASCII, which
 * leaves '=' as the only thing to refuse here. */
static int
sts_txt_value_ok(const char *v, size_t n)
{
	return n > 0 && memchr(v, '=', n) == NULL;
}

/* Fills out only when the whole record is valid. */
static int
sts_txt_record(const char *rec, size_t len, struct sts_txt *out, char *err, size_t errsz)
{
	char q[STS_QUOTE_MAX];
	size_t pos;
	int have_id = 0, more;

	if (txtrec_head(&sts_txt_kind, rec, len, &pos, err, errsz) == -1)
		return STS_ERR_SYNTAX;
	while ((more = txtrec_next_field(&sts_txt_kind, rec, len, &pos, err, errsz)) == 1) {
		size_t start = pos, nlen;
		while (pos < len && rec[pos] != ';' && !txtrec_wsp((unsigned char)rec[pos]))
			pos++;
		const char *f = rec + start;
		size_t flen = pos - start;
		if (txtrec_field_split(&sts_txt_kind, f, flen, &nlen, err, errsz) == -1)
			return STS_ERR_SYNTAX;
		const char *eq = f + nlen;
		size_t vlen = flen - nlen - 1;
		if (!sts_txt_value_ok(eq + 1, vlen)) {
			txtrec_seterr(err, errsz, "field \"%s\" has an empty value or an '=' in it",
			    txtrec_quote(q, sizeof(q), f, flen));
			return STS_ERR_SYNTAX;
		}
		/* 3.2: a repeated field counts only the first time. */
		if (nlen == 2 && memcmp(f, "id", 2) == 0 && !have_id) {
			if (vlen > STS_ID_MAX) {
				txtrec_seterr(err, errsz, "id \"%s\" is longer than %d characters",
				    txtrec_quote(q, sizeof(q), eq + 1, vlen), STS_ID_MAX);
				return STS_ERR_SYNTAX;
			}
			for (size_t i = 0; i < vlen; i++) {
				if (!txtrec_alnum((unsigned char)eq[1 + i])) {
					txtrec_seterr(err, errsz, "id \"%s\" has a character other "
					    "than letters and digits",
					    txtrec_quote(q, sizeof(q), eq + 1, vlen));
					return STS_ERR_SYNTAX;
				}
			}
			memcpy(out->id, eq + 1, vlen);
			out->id[vlen] = '\0';
			have_id = 1;
		}
	}
	if (more == -1)
		return STS_ERR_SYNTAX;
	if (!have_id) {
		txtrec_seterr(err, errsz, "MTA-STS record has no id field");
		return STS_ERR_SYNTAX;
	}
	return STS_OK;
}

int
sts_txt_parse_record(const char *rec, size_t len, struct sts_txt *out, char *err, size_t errsz)
{
	struct sts_txt t;
	int rc;

	memset(&t, 0, sizeof(t));
	rc = sts_txt_record(rec, len, &t, err, errsz);
	if (rc == STS_OK)
		*out = t;
	else
		memset(out, 0, sizeof(*out));
	return rc;
}

int
sts_txt_parse_rdata(const uint8_t *rdata, size_t len, struct sts_txt *out, char *err, size_t errsz)
{
	struct buf b;
	int rc;

	memset(out, 0, sizeof(*out));
	buf_init(&b);
	if (txtrec_rdata_join(rdata, len, &b, err, errsz) == -1)
		rc = STS_ERR_SYNTAX;
	else
		rc = sts_txt_parse_record(b.data, b.len, out, err, errsz);
	buf_free(&b);
	return rc;
}

int
sts_txt_select_records(const char *const *recs, const size_t *lens, size_t n,
    struct sts_txt *out, char *err, size_t errsz)
{
	size_t which;

	memset(out, 0, sizeof(*out));
	switch (txtrec_select(&sts_txt_kind, recs, lens, n, &which, err, errsz)) {
	case TXTREC_NONE:
		return STS_ERR_NO_RECORD;
	case TXTREC_MULTIPLE:
		return STS_ERR_MULTIPLE;
	}
	return sts_txt_parse_record(recs[which], lens[which], out, err, errsz);
}

int
sts_txt_select_rdata(const struct sts_txt_rdata *rrs, size_t nrrs, struct sts_txt *out,
    char *err, size_t errsz)
{
	struct txtrec_rrs set;
	int rc = STS_ERR_SYNTAX;

	memset(out, 0, sizeof(*out));
	txtrec_rrs_init(&set, nrrs);
	for (size_t i = 0; i < nrrs; i++)
		if (txtrec_rrs_add(&set, rrs[i].data, rrs[i].len, err, errsz) == -1)
			goto done;
	rc = sts_txt_select_records(set.recs, set.lens, nrrs, out, err, errsz);
done:
	txtrec_rrs_free(&set);
	return rc;
}

/* ---- policy file ---- */

enum sts_field { STS_F_VERSION, STS_F_MODE, STS_F_MAX_AGE, STS_F_MX, STS_F_COUNT };

static const char *const sts_field_names[STS_F_COUNT] = { "version", "mode", "max_age", "mx" };

struct sts_parse {
	struct sts_policy	*p;
	size_t			 cap_mx, cap_lines;
	unsigned		 line;
	int			 seen[STS_F_COUNT];
	unsigned		 case_hint[STS_F_COUNT];	/* first "Mode:"-like line */
	char			*err;
	size_t			 errsz;
};

static void
sts_push(char ***arr, size_t *n, size_t *cap, const char *s, size_t len)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		*arr = xreallocarray(*arr, *cap, sizeof(**arr));
	}
	(*arr)[(*n)++] = xstrndup(s, len);
}

/* sts-policy-mx-value = ["*."] Domain, Domain from RFC 5321: LDH labels
 * that begin and end with a letter or digit. One trailing dot is accepted
 * and dropped (it names the same host). Returns the pattern's length
 * without that dot, or 0 with the reason in why. */
static size_t
sts_mx_pattern_check(const char *v, size_t n, const char **why)
{
	size_t i = 0, label = 0;

	if (n > 0 && v[n - 1] == '.')
		n--;
	if (n >= 2 && v[0] == '*' && v[1] == '.')
		i = 2;
	if (memchr(v + i, '*', n - i) != NULL) {
		*why = "a '*' may only be the whole leftmost label, as in *.example.com";
		return 0;
	}
	if (n - i > STS_HOST_MAX) {
		*why = "host name longer than 253 characters";
		return 0;
	}
	if (i == n) {
		*why = "no host name";
		return 0;
	}
	for (; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)v[i] : '.';
		if (c == '.') {
			if (label == 0) {
				*why = "empty label";
				return 0;
			}
			if (v[i - 1] == '-') {
				*why = "a label ends with '-'";
				return 0;
			}
			label = 0;
			continue;
		}
		if (c >= 0x80) {
			*why = "internationalized names must be given as A-labels (xn--...)";
			return 0;
		}
		if (!txtrec_alnum(c) && c != '-') {
			*why = "only letters, digits, '-' and '.' make a host name";
			return 0;
		}
		if (c == '-' && label == 0) {
			*why = "a label begins with '-'";
			return 0;
		}
		if (++label > STS_LABEL_MAX) {
			*why = "a label is longer than 63 characters";
			return 0;
		}
	}
	return n;
}

/* One known field, the first time it appears. */
static int
sts_policy_field(struct sts_parse *st, enum sts_field f, const char *v, size_t vlen)
{
	struct sts_policy *p = st->p;
	char q[STS_QUOTE_MAX];

	switch (f) {
	case STS_F_VERSION:
		if (vlen != 5 || memcmp(v, "STSv1", 5) != 0) {
			txtrec_seterr(st->err, st->errsz, "line %u: version \"%s\" is not STSv1",
			    st->line, txtrec_quote(q, sizeof(q), v, vlen));
			return STS_ERR_SYNTAX;
		}
		return STS_OK;
	case STS_F_MODE:
		if (vlen == 7 && memcmp(v, "enforce", 7) == 0)
			p->mode = STS_MODE_ENFORCE;
		else if (vlen == 7 && memcmp(v, "testing", 7) == 0)
			p->mode = STS_MODE_TESTING;
		else if (vlen == 4 && memcmp(v, "none", 4) == 0)
			p->mode = STS_MODE_NONE;
		else {
			txtrec_seterr(st->err, st->errsz, "line %u: mode \"%s\" is not enforce, "
			    "testing or none", st->line, txtrec_quote(q, sizeof(q), v, vlen));
			return STS_ERR_SYNTAX;
		}
		return STS_OK;
	case STS_F_MAX_AGE: {
		uint64_t age = 0;
		if (vlen > 10) {
			txtrec_seterr(st->err, st->errsz, "line %u: max_age \"%s\" has more than "
			    "10 digits", st->line, txtrec_quote(q, sizeof(q), v, vlen));
			return STS_ERR_SYNTAX;
		}
		for (size_t i = 0; i < vlen; i++) {
			if (v[i] < '0' || v[i] > '9') {
				txtrec_seterr(st->err, st->errsz, "line %u: max_age \"%s\" is not "
				    "a number of seconds", st->line,
				    txtrec_quote(q, sizeof(q), v, vlen));
				return STS_ERR_SYNTAX;
			}
			age = age * 10 + (uint64_t)(v[i] - '0');
		}
		/* The ABNF allows 10 digits and parsers must accept what it allows
		 * (3.2); the prose caps the value. Cap rather than refuse, so a
		 * domain that overshoots keeps its protection for a year. */
		if (age > STS_MAX_AGE_MAX) {
			age = STS_MAX_AGE_MAX;
			p->max_age_capped = 1;
		}
		p->max_age = (uint32_t)age;
		return STS_OK;
	}
	case STS_F_MX: {
		const char *why = "";
		size_t n = sts_mx_pattern_check(v, vlen, &why);
		if (n == 0) {
			txtrec_seterr(st->err, st->errsz, "line %u: mx \"%s\": %s", st->line,
			    txtrec_quote(q, sizeof(q), v, vlen), why);
			return STS_ERR_SYNTAX;
		}
		sts_push(&p->mx, &p->n_mx, &st->cap_mx, v, n);
		return STS_OK;
	}
	default:
		break;
	}
	return STS_OK;
}

static int
sts_policy_line(struct sts_parse *st, const char *line, size_t len)
{
	char q[STS_QUOTE_MAX];
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == '\r') {
			txtrec_seterr(st->err, st->errsz, "line %u: bare CR (lines end in CRLF or "
			    "LF)", st->line);
			return STS_ERR_SYNTAX;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			txtrec_seterr(st->err, st->errsz, "line %u: control character 0x%02x",
			    st->line, c);
			return STS_ERR_SYNTAX;
		}
	}
	/* Policy lines end up as JSON strings in TLS reports: UTF-8 only. */
	if (!utf8_valid((const unsigned char *)line, len)) {
		txtrec_seterr(st->err, st->errsz, "line %u: not valid UTF-8", st->line);
		return STS_ERR_SYNTAX;
	}
	for (i = 0; i < len && txtrec_wsp((unsigned char)line[i]); i++)
		;
	if (i == len)
		return STS_OK;		/* blank lines carry nothing: skipped */
	if (i > 0) {
		txtrec_seterr(st->err, st->errsz, "line %u: begins with whitespace (there are no "
		    "continuation lines)", st->line);
		return STS_ERR_SYNTAX;
	}
	const char *colon = memchr(line, ':', len);
	if (colon == NULL) {
		txtrec_seterr(st->err, st->errsz, "line %u: \"%s\" is not a key: value line",
		    st->line, txtrec_quote(q, sizeof(q), line, len));
		return STS_ERR_SYNTAX;
	}
	size_t klen = (size_t)(colon - line);
	if (!txtrec_name_ok(line, klen)) {
		txtrec_seterr(st->err, st->errsz, "line %u: \"%s\" is not a field name (letters, "
		    "digits, '_', '-', '.'; no space before ':')", st->line,
		    txtrec_quote(q, sizeof(q), line, klen));
		return STS_ERR_SYNTAX;
	}
	const char *v = colon + 1, *end = line + len;
	while (v < end && txtrec_wsp((unsigned char)*v))
		v++;
	while (end > v && txtrec_wsp((unsigned char)end[-1]))
		end--;
	size_t vlen = (size_t)(end - v);
	if (vlen == 0) {
		txtrec_seterr(st->err, st->errsz, "line %u: %s has no value", st->line,
		    txtrec_quote(q, sizeof(q), line, klen));
		return STS_ERR_SYNTAX;
	}
	if (memchr(v, '\t', vlen) != NULL) {
		txtrec_seterr(st->err, st->errsz, "line %u: a tab inside the value of %s", st->line,
		    txtrec_quote(q, sizeof(q), line, klen));
		return STS_ERR_SYNTAX;
	}
	sts_push(&st->p->lines, &st->p->n_lines, &st->cap_lines, line, len);

	/* Field names are case-sensitive (%s in the ABNF); "Mode:" is an unknown
	 * field. Remember it to explain a missing field later. */
	for (int f = 0; f < STS_F_COUNT; f++) {
		const char *name = sts_field_names[f];
		if (strlen(name) != klen)
			continue;
		if (memcmp(name, line, klen) != 0) {
			if (txtrec_caseeq(name, line, klen) && st->case_hint[f] == 0)
				st->case_hint[f] = st->line;
			continue;
		}
		/* 3.2: of a repeated field other than mx, only the first counts. */
		if (st->seen[f] && f != STS_F_MX)
			return STS_OK;
		st->seen[f] = 1;
		return sts_policy_field(st, (enum sts_field)f, v, vlen);
	}
	return STS_OK;			/* unknown fields are ignored (3.2) */
}

static int
sts_policy_missing(struct sts_parse *st, enum sts_field f, const char *extra)
{
	if (st->case_hint[f] != 0)
		txtrec_seterr(st->err, st->errsz, "no %s field%s (line %u spells it differently: "
		    "field names are case-sensitive)", sts_field_names[f], extra, st->case_hint[f]);
	else
		txtrec_seterr(st->err, st->errsz, "no %s field%s", sts_field_names[f], extra);
	return STS_ERR_SYNTAX;
}

int
sts_policy_parse(const char *body, size_t len, struct sts_policy **out, char *err, size_t errsz)
{
	struct sts_parse st;
	size_t pos = 0;
	int rc = STS_OK;

	*out = NULL;
	if (len > STS_POLICY_MAX) {
		txtrec_seterr(err, errsz, "policy is %zu bytes, over the %d-byte cap", len,
		    STS_POLICY_MAX);
		return STS_ERR_TOO_LARGE;
	}
	memset(&st, 0, sizeof(st));
	st.err = err;
	st.errsz = errsz;
	st.p = xcalloc(1, sizeof(*st.p));
	/* A byte order mark from a Windows editor is not content. */
	if (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len && rc == STS_OK) {
		const char *line = body + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos;
		pos += llen + (nl != NULL);
		/* sts-policy-term = CRLF / LF (3.2, erratum 6253) */
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		st.line++;
		rc = sts_policy_line(&st, line, llen);
	}
	if (rc != STS_OK)
		goto fail;
	rc = STS_ERR_SYNTAX;
	if (st.p->n_lines == 0) {
		txtrec_seterr(err, errsz, "policy is empty");
		goto fail;
	}
	if (!st.seen[STS_F_VERSION]) {
		sts_policy_missing(&st, STS_F_VERSION, "");
		goto fail;
	}
	if (!st.seen[STS_F_MODE]) {
		sts_policy_missing(&st, STS_F_MODE, "");
		goto fail;
	}
	if (!st.seen[STS_F_MAX_AGE]) {
		sts_policy_missing(&st, STS_F_MAX_AGE, "");
		goto fail;
	}
	if (st.p->n_mx == 0 && st.p->mode != STS_MODE_NONE) {
		sts_policy_missing(&st, STS_F_MX, " (required unless mode is none)");
		goto fail;
	}
	*out = st.p;
	return STS_OK;
fail:
	sts_policy_free(st.p);
	return rc;
}

void
sts_policy_free(struct sts_policy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_mx; i++)
		free(p->mx[i]);
	for (size_t i = 0; i < p->n_lines; i++)
		free(p->lines[i]);
	free(p->mx);
	free(p->lines);
	free(p);
}

const char *
sts_mode_name(enum sts_mode m)
{
	switch (m) {
	case STS_MODE_ENFORCE:
		return "enforce";
	case STS_MODE_TESTING:
		return "testing";
	case STS_MODE_NONE:
		return "none";
	}
	return "unknown";
}

void
sts_policy_render(const struct sts_policy *p, struct buf *out)
{
	buf_appends(out, "version: STSv1\r\n");
	buf_printf(out, "mode: %s\r\n", sts_mode_name(p->mode));
	for (size_t i = 0; i < p->n_mx; i++)
		buf_printf(out, "mx: %s\r\n", p->mx[i]);
	buf_printf(out, "max_age: %lu\r\n", (unsigned long)p->max_age);
}

const char *const *
sts_policy_strings(const struct sts_policy *p, size_t *n)
{
	*n = p->n_lines;
	return (const char *const *)p->lines;
}

const char *const *
sts_policy_mx_hosts(const struct sts_policy *p, size_t *n)
{
	*n = p->n_mx;
	return (const char *const *)p->mx;
}

/* ---- MX host validation (4.1) ---- */

/* RFC 8461 4.1: the MX record's name is matched, by RFC 6125 rules with the
 * wildcard restricted to the whole leftmost label. The name is the one the
 * MX record holds, not a CNAME target it leads to: 4.2 then wants the
 * certificate to be valid for that same name (and 7.1 puts it in SNI). */
int
sts_mx_pattern_match(const char *pattern, const char *mx_host)
{
	size_t plen = strlen(pattern), hlen = strlen(mx_host);

	if (plen > 0 && pattern[plen - 1] == '.')
		plen--;
	if (hlen > 0 && mx_host[hlen - 1] == '.')
		hlen--;
	if (plen == 0 || hlen == 0 || memchr(mx_host, '*', hlen) != NULL)
		return 0;
	if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		const char *suffix = pattern + 1;	/* ".example.com" */
		size_t slen = plen - 1;
		if (slen < 2 || hlen <= slen)
			return 0;
		size_t llen = hlen - slen;		/* the label '*' stands for */
		if (memchr(mx_host, '.', llen) != NULL)
			return 0;
		return txtrec_caseeq(mx_host + llen, suffix, slen);
	}
	return plen == hlen && txtrec_caseeq(pattern, mx_host, plen);
}

int
sts_mx_match(const struct sts_policy *p, const char *mx_host)
{
	for (size_t i = 0; i < p->n_mx; i++)
		if (sts_mx_pattern_match(p->mx[i], mx_host))
			return 1;
	return 0;
}
