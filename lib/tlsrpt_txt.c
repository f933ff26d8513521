#include "tlsrpt_txt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dns.h"
#include "xmalloc.h"

#define TLSRPT_TXT_QUOTE_LEN	48
#define TLSRPT_TXT_QUOTE_MAX	(TLSRPT_TXT_QUOTE_LEN + 4)
#define TLSRPT_TXT_VERSION	"v=TLSRPTv1"
#define TLSRPT_TXT_VERSION_LEN	(sizeof(TLSRPT_TXT_VERSION) - 1)
#define TLSRPT_TXT_NAME_MAX	32

static void tlsrpt_txt_seterr(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
tlsrpt_txt_seterr(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

/* Untrusted text in a message: truncated, non-printables shown as '?'. */
static const char *
tlsrpt_txt_quote(char dst[TLSRPT_TXT_QUOTE_MAX], const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n < TLSRPT_TXT_QUOTE_LEN; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (len > TLSRPT_TXT_QUOTE_LEN) {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
	return dst;
}

static int
tlsrpt_txt_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
tlsrpt_txt_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
tlsrpt_txt_alnum(unsigned char c)
{
	return tlsrpt_txt_alpha(c) || tlsrpt_txt_digit(c);
}

static int
tlsrpt_txt_hex(unsigned char c)
{
	return tlsrpt_txt_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int
tlsrpt_txt_hexval(unsigned char c)
{
	if (tlsrpt_txt_digit(c))
		return c - '0';
	return (c | 0x20) - 'a' + 10;
}

static int
tlsrpt_txt_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static int
tlsrpt_txt_caseeq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (y >= 'A' && y <= 'Z')
			y += 32;
		if (x != y)
			return 0;
	}
	return 1;
}

/* tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static int
tlsrpt_txt_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > TLSRPT_TXT_NAME_MAX || !tlsrpt_txt_alnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 1; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!tlsrpt_txt_alnum(c) && c != '_' && c != '-' && c != '.')
			return 0;
	}
	return 1;
}

/* tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E): no space, '=' or ';'. */
static int
tlsrpt_txt_ext_value_ok(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e || c == '=' || c == ';')
			return 0;
	}
	return 1;
}

/* TXT RDATA is one or more <character-string>s; RFC 8460 3 has them
 * concatenated without adding spaces. */
static int
tlsrpt_txt_rdata_concat(const uint8_t *rdata, size_t len, struct buf *out, char *err,
    size_t errsz)
{
	char why[160];

	if (dns_txt_rdata_join(rdata, len, out, why, sizeof(why)) < 0) {
		tlsrpt_txt_seterr(err, errsz, "%s", why);
		return TLSRPT_TXT_SYNTAX;
	}
	return TLSRPT_TXT_OK;
}

/* Which RRs count towards "exactly one" (3): as for MTA-STS, whitespace may
 * come before the ';' in the ABNF, and a bare "v=TLSRPTv1" is meant as a
 * record too, so both count; "v=TLSRPTv10" does not. */
static int
tlsrpt_txt_is_candidate(const char *rec, size_t len)
{
	if (len < TLSRPT_TXT_VERSION_LEN ||
	    memcmp(rec, TLSRPT_TXT_VERSION, TLSRPT_TXT_VERSION_LEN) != 0)
		return 0;
	return len == TLSRPT_TXT_VERSION_LEN || rec[TLSRPT_TXT_VERSION_LEN] == ';' ||
	    tlsrpt_txt_wsp((unsigned char)rec[TLSRPT_TXT_VERSION_LEN]);
}

/* tlsrpt-uri = URI (RFC 3986), with ',', '!' and ';' percent-encoded. The
 * caller cut at ',' and ';' and refused whitespace, CTLs and non-ASCII. */
static int
tlsrpt_txt_uri_chars(const char *u, size_t n, char *err, size_t errsz)
{
	char q[TLSRPT_TXT_QUOTE_MAX];
	int hashes = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];
		if (c == '%') {
			if (n - i < 3 || !tlsrpt_txt_hex((unsigned char)u[i + 1]) ||
			    !tlsrpt_txt_hex((unsigned char)u[i + 2])) {
				tlsrpt_txt_seterr(err, errsz, "rua URI \"%s\": '%%' not followed by "
				    "two hex digits", tlsrpt_txt_quote(q, u, n));
				return TLSRPT_TXT_SYNTAX;
			}
			i += 2;
			continue;
		}
		if (c == '!') {
			/* DMARC's "!10m" size limit has no place here (3). */
			tlsrpt_txt_seterr(err, errsz, "rua URI \"%s\": '!' must be written %%21 "
			    "(TLSRPT has no DMARC-style size limit)", tlsrpt_txt_quote(q, u, n));
			return TLSRPT_TXT_SYNTAX;
		}
		if (c == '#' && ++hashes > 1) {
			tlsrpt_txt_seterr(err, errsz, "rua URI \"%s\": more than one '#'",
			    tlsrpt_txt_quote(q, u, n));
			return TLSRPT_TXT_SYNTAX;
		}
		if (tlsrpt_txt_alnum(c) || strchr("-._~:/?#[]@$&'()*+=", c) != NULL)
			continue;
		tlsrpt_txt_seterr(err, errsz, "rua URI \"%s\": '%c' is not allowed in a URI",
		    tlsrpt_txt_quote(q, u, n), c);
		return TLSRPT_TXT_SYNTAX;
	}
	return TLSRPT_TXT_OK;
}

/* mailto:addr[?hfields] (RFC 6068). Reports go to exactly that address. */
static int
tlsrpt_txt_mailto(const char *u, size_t n, struct tlsrpt_txt_rua *r, char *err, size_t errsz)
{
	char q[TLSRPT_TXT_QUOTE_MAX];
	const char *to = u + 7, *end = u + n;
	const char *qm = memchr(to, '?', (size_t)(end - to));
	const char *why = NULL;
	struct buf a;

	if (memchr(to, '#', (size_t)(end - to)) != NULL) {
		tlsrpt_txt_seterr(err, errsz, "rua URI \"%s\": a mailto: URI has no fragment",
		    tlsrpt_txt_quote(q, u, n));
		return TLSRPT_TXT_SYNTAX;
	}
	if (qm != NULL)
		end = qm;
	buf_init(&a);
	for (const char *p = to; p < end; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '%') {
			c = (unsigned char)(tlsrpt_txt_hexval((unsigned char)p[1]) * 16 +
			    tlsrpt_txt_hexval((unsigned char)p[2]));
			p += 2;
		}
		if (c <= 0x20 || c >= 0x7f) {
			why = "the address has a space, control or non-ASCII character";
			break;
		}
		if (c == ',') {
			why = "more than one address (give each its own mailto: URI)";
			break;
		}
		buf_appendc(&a, (char)c);
	}
	if (why == NULL && a.len == 0)
		why = "no address";
	if (why == NULL) {
		const char *at = strrchr(a.data, '@');
		const char *dom = at ? at + 1 : NULL;
		size_t dlen = dom ? strlen(dom) : 0;
		if (at == NULL || at == a.data || dlen == 0)
			why = "the address is not local-part@domain";
		else if (dom[0] == '[') {
			if (dom[dlen - 1] != ']' || dlen < 3)
				why = "the address literal is not closed with ']'";
		} else {
			for (size_t i = 0; i < dlen && why == NULL; i++) {
				unsigned char c = (unsigned char)dom[i];
				if (c == '.' ? (i == 0 || dom[i - 1] == '.')
				    : !(tlsrpt_txt_alnum(c) || c == '-'))
					why = "the address's domain is not a host name";
			}
		}
	}
	if (why != NULL) {
		tlsrpt_txt_seterr(err, errsz, "rua URI \"%s\": %s", tlsrpt_txt_quote(q, u, n), why);
		buf_free(&a);
		return TLSRPT_TXT_SYNTAX;
	}
	r->scheme = TLSRPT_TXT_MAILTO;
	r->target = xstrndup(a.data, a.len);
	buf_free(&a);
	return TLSRPT_TXT_OK;
}

/* https://host[:port][/path][?query][#fragment]: reports are POSTed there. */
static int
tlsrpt_txt_https(const char *u, size_t n, struct tlsrpt_txt_rua *r, char *err, size_t errsz)
{
	char q[TLSRPT_TXT_QUOTE_MAX];
	const char *why = NULL;
	const char *auth = u + 6, *end = u + n, *host, *hend;

	if (n < 8 || memcmp(auth, "//", 2) != 0) {
		why = "an https: URI begins https://";
		goto bad;
	}
	auth += 2;
	hend = auth;
	while (hend < end && *hend != '/' && *hend != '?' && *hend != '#')
		hend++;
	host = auth;
	for (const char *p = auth; p < hend; p++)
		if (*p == '@')
			host = p + 1;		/* past any userinfo */
	if (host < hend && *host == '[') {
		const char *close = memchr(host, ']', (size_t)(hend - host));
		if (close == NULL || close == host + 1) {
			why = "the IP literal is not closed with ']'";
			goto bad;
		}
		host = close + 1;	/* only a port may follow */
		if (host < hend && *host != ':') {
			why = "junk after the IP literal";
			goto bad;
		}
	} else {
		const char *colon = memchr(host, ':', (size_t)(hend - host));
		const char *name_end = colon ? colon : hend;
		if (name_end == host) {
			why = "no host";
			goto bad;
		}
		for (const char *p = host; p < name_end; p++)
			if (*p == '[' || *p == ']' || *p == '@') {
				why = "the host is not a host name";
				goto bad;
			}
		host = name_end;
	}
	if (host < hend) {			/* ":port" */
		unsigned long port = 0;
		if (hend - host > 6) {
			why = "the port is not a number up to 65535";
			goto bad;
		}
		for (const char *p = host + 1; p < hend; p++) {
			if (!tlsrpt_txt_digit((unsigned char)*p)) {
				why = "the port is not a number up to 65535";
				goto bad;
			}
			port = port * 10 + (unsigned long)(*p - '0');
		}
		if (port > 65535) {
			why = "the port is not a number up to 65535";
			goto bad;
		}
	}
	r->scheme = TLSRPT_TXT_HTTPS;
	r->target = xstrndup(u, n);
	return TLSRPT_TXT_OK;
bad:
	tlsrpt_txt_seterr(err, errsz, "rua URI \"%s\": %s", tlsrpt_txt_quote(q, u, n), why);
	return TLSRPT_TXT_SYNTAX;
}

static int
tlsrpt_txt_uri(const char *u, size_t n, struct tlsrpt_txt_rua *r, char *err, size_t errsz)
{
	char q[TLSRPT_TXT_QUOTE_MAX];
	size_t s = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
	if (n > 0 && tlsrpt_txt_alpha((unsigned char)u[0]))
		for (s = 1; s < n && (tlsrpt_txt_alnum((unsigned char)u[s]) ||
		    u[s] == '+' || u[s] == '-' || u[s] == '.'); s++)
			;
	if (s == 0 || s == n || u[s] != ':') {
		tlsrpt_txt_seterr(err, errsz, "rua URI \"%s\" does not begin with a scheme "
		    "(mailto: or https:)", tlsrpt_txt_quote(q, u, n));
		return TLSRPT_TXT_SYNTAX;
	}
	if ((rc = tlsrpt_txt_uri_chars(u, n, err, errsz)) != TLSRPT_TXT_OK)
		return rc;
	/* Schemes are case-insensitive (RFC 3986 3.1). */
	if (s == 6 && tlsrpt_txt_caseeq(u, "mailto", 6))
		rc = tlsrpt_txt_mailto(u, n, r, err, errsz);
	else if (s == 5 && tlsrpt_txt_caseeq(u, "https", 5))
		rc = tlsrpt_txt_https(u, n, r, err, errsz);
	else
		r->scheme = TLSRPT_TXT_OTHER;
	if (rc != TLSRPT_TXT_OK)
		return rc;
	r->uri = xstrndup(u, n);
	return TLSRPT_TXT_OK;
}

/* tlsrpt-rua = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri). A repeated
 * rua field must still be well-formed; only the first one is kept (keep is
 * 0 for the others), as RFC 8461 3.2 does for its own repeated fields. */
static int
tlsrpt_txt_rua_list(struct tlsrpt_txt *t, const char *v, size_t n, int keep, char *err,
    size_t errsz)
{
	char q[TLSRPT_TXT_QUOTE_MAX];
	size_t pos = 0, count = 0;

	if (n == 0 || tlsrpt_txt_wsp((unsigned char)v[0])) {
		tlsrpt_txt_seterr(err, errsz, "rua= must be followed directly by a URI");
		return TLSRPT_TXT_SYNTAX;
	}
	while (pos <= n) {
		const char *comma = memchr(v + pos, ',', n - pos);
		size_t end = comma ? (size_t)(comma - v) : n;
		size_t a = pos, b = end;
		while (a < b && tlsrpt_txt_wsp((unsigned char)v[a]))
			a++;
		while (b > a && tlsrpt_txt_wsp((unsigned char)v[b - 1]))
			b--;
		if (a == b) {
			tlsrpt_txt_seterr(err, errsz, "rua has an empty URI (a stray ',' at byte "
			    "%zu of the list)", end + 1);
			return TLSRPT_TXT_SYNTAX;
		}
		for (size_t i = a; i < b; i++) {
			if (tlsrpt_txt_wsp((unsigned char)v[i])) {
				tlsrpt_txt_seterr(err, errsz, "rua URI \"%s\" has whitespace in it "
				    "(URIs are separated by ',')", tlsrpt_txt_quote(q, v + a, b - a));
				return TLSRPT_TXT_SYNTAX;
			}
		}
		if (++count > TLSRPT_TXT_RUA_MAX) {
			tlsrpt_txt_seterr(err, errsz, "rua lists more than %d URIs",
			    TLSRPT_TXT_RUA_MAX);
			return TLSRPT_TXT_SYNTAX;
		}
		struct tlsrpt_txt_rua r;
		int rc = tlsrpt_txt_uri(v + a, b - a, &r, err, errsz);
		if (rc != TLSRPT_TXT_OK)
			return rc;
		if (keep) {
			t->rua = xreallocarray(t->rua, t->n_rua + 1, sizeof(*t->rua));
			t->rua[t->n_rua++] = r;
			if (r.scheme != TLSRPT_TXT_OTHER)
				t->n_usable++;
		} else {
			free(r.uri);
			free(r.target);
		}
		if (comma == NULL)
			break;
		pos = end + 1;
	}
	return TLSRPT_TXT_OK;
}

int
tlsrpt_txt_parse_record(const char *rec, size_t len, struct tlsrpt_txt **out, char *err,
    size_t errsz)
{
	char q[TLSRPT_TXT_QUOTE_MAX];
	struct tlsrpt_txt *t;
	size_t pos;
	int have_rua = 0, rc = TLSRPT_TXT_SYNTAX;

	*out = NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)rec[i];
		if (c >= 0x80) {
			tlsrpt_txt_seterr(err, errsz, "TLSRPT record is not US-ASCII (byte %zu is "
			    "0x%02x)", i + 1, c);
			return TLSRPT_TXT_SYNTAX;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			tlsrpt_txt_seterr(err, errsz, "TLSRPT record has a control character "
			    "(0x%02x) at byte %zu", c, i + 1);
			return TLSRPT_TXT_SYNTAX;
		}
	}
	if (!tlsrpt_txt_is_candidate(rec, len)) {
		tlsrpt_txt_seterr(err, errsz, "\"%s\" does not begin with v=TLSRPTv1",
		    tlsrpt_txt_quote(q, rec, len));
		return TLSRPT_TXT_SYNTAX;
	}
	t = xcalloc(1, sizeof(*t));
	pos = TLSRPT_TXT_VERSION_LEN;
	/* field-delim = *WSP ";" *WSP. A URI carries no raw ';' (it must be
	 * encoded), so every ';' ends a field. */
	for (;;) {
		while (pos < len && tlsrpt_txt_wsp((unsigned char)rec[pos]))
			pos++;
		if (pos == len)
			break;
		if (rec[pos] != ';') {
			tlsrpt_txt_seterr(err, errsz, "expected ';' before \"%s\"",
			    tlsrpt_txt_quote(q, rec + pos, len - pos));
			goto fail;
		}
		pos++;
		while (pos < len && tlsrpt_txt_wsp((unsigned char)rec[pos]))
			pos++;
		if (pos == len)
			break;		/* a trailing delimiter is allowed */
		if (rec[pos] == ';') {
			tlsrpt_txt_seterr(err, errsz, "empty field at byte %zu (two ';' in a row)",
			    pos + 1);
			goto fail;
		}
		const char *f = rec + pos;
		const char *semi = memchr(f, ';', len - pos);
		size_t flen = semi ? (size_t)(semi - f) : len - pos;
		pos += flen;
		while (flen > 0 && tlsrpt_txt_wsp((unsigned char)f[flen - 1]))
			flen--;		/* belongs to the next delimiter */
		const char *eq = memchr(f, '=', flen);
		if (eq == NULL) {
			tlsrpt_txt_seterr(err, errsz, "field \"%s\" is not name=value",
			    tlsrpt_txt_quote(q, f, flen));
			goto fail;
		}
		size_t nlen = (size_t)(eq - f), vlen = flen - nlen - 1;
		if (!tlsrpt_txt_name_ok(f, nlen)) {
			tlsrpt_txt_seterr(err, errsz, "field \"%s\" does not have a valid name "
			    "(letters, digits, '_', '-', '.'; no space around '=')",
			    tlsrpt_txt_quote(q, f, flen));
			goto fail;
		}
		if (nlen == 3 && memcmp(f, "rua", 3) == 0) {
			rc = tlsrpt_txt_rua_list(t, eq + 1, vlen, !have_rua, err, errsz);
			if (rc != TLSRPT_TXT_OK)
				goto fail;
			rc = TLSRPT_TXT_SYNTAX;
			have_rua = 1;
		} else if (!tlsrpt_txt_ext_value_ok(eq + 1, vlen)) {
			tlsrpt_txt_seterr(err, errsz, "field \"%s\": an extension value is one run "
			    "of visible characters other than '=' and ';'",
			    tlsrpt_txt_quote(q, f, flen));
			goto fail;
		}
		/* Unknown fields are ignored (3). */
	}
	if (!have_rua) {
		tlsrpt_txt_seterr(err, errsz, "TLSRPT record has no rua field");
		goto fail;
	}
	if (t->n_usable == 0) {
		tlsrpt_txt_seterr(err, errsz, "rua lists no mailto: or https: URI (\"%s\" is "
		    "neither)", tlsrpt_txt_quote(q, t->rua[0].uri, strlen(t->rua[0].uri)));
		rc = TLSRPT_TXT_UNSUPPORTED;
		goto fail;
	}
	*out = t;
	return TLSRPT_TXT_OK;
fail:
	tlsrpt_txt_free(t);
	return rc;
}

int
tlsrpt_txt_parse_rdata(const uint8_t *rdata, size_t len, struct tlsrpt_txt **out, char *err,
    size_t errsz)
{
	struct buf b;
	int rc;

	*out = NULL;
	buf_init(&b);
	rc = tlsrpt_txt_rdata_concat(rdata, len, &b, err, errsz);
	if (rc == TLSRPT_TXT_OK)
		rc = tlsrpt_txt_parse_record(b.data, b.len, out, err, errsz);
	buf_free(&b);
	return rc;
}

int
tlsrpt_txt_select_records(const char *const *recs, const size_t *lens, size_t n,
    struct tlsrpt_txt **out, char *err, size_t errsz)
{
	size_t found = 0, which = 0;

	*out = NULL;
	for (size_t i = 0; i < n; i++) {
		if (tlsrpt_txt_is_candidate(recs[i], lens[i])) {
			found++;
			which = i;
		}
	}
	if (found == 0) {
		tlsrpt_txt_seterr(err, errsz, "none of the %zu TXT records begins with v=TLSRPTv1",
		    n);
		return TLSRPT_TXT_NO_RECORD;
	}
	if (found > 1) {
		tlsrpt_txt_seterr(err, errsz, "%zu TXT records begin with v=TLSRPTv1; exactly one "
		    "may", found);
		return TLSRPT_TXT_MULTIPLE;
	}
	return tlsrpt_txt_parse_record(recs[which], lens[which], out, err, errsz);
}

int
tlsrpt_txt_select_rdata(const struct tlsrpt_txt_rdata *rrs, size_t nrrs,
    struct tlsrpt_txt **out, char *err, size_t errsz)
{
	char why[TLSRPT_TXT_ERR_MAX];
	struct buf *b = xcalloc(nrrs, sizeof(*b));
	const char **recs = xcalloc(nrrs, sizeof(*recs));
	size_t *lens = xcalloc(nrrs, sizeof(*lens)), i;
	int rc = TLSRPT_TXT_OK;

	*out = NULL;
	for (i = 0; i < nrrs && rc == TLSRPT_TXT_OK; i++) {
		buf_init(&b[i]);
		rc = tlsrpt_txt_rdata_concat(rrs[i].data, rrs[i].len, &b[i], why, sizeof(why));
		if (rc != TLSRPT_TXT_OK)
			tlsrpt_txt_seterr(err, errsz, "TXT RR %zu of %zu: %s", i + 1, nrrs, why);
		recs[i] = b[i].data;
		lens[i] = b[i].len;
	}
	if (rc == TLSRPT_TXT_OK)
		rc = tlsrpt_txt_select_records(recs, lens, nrrs, out, err, errsz);
	while (i > 0)
		buf_free(&b[--i]);
	free(b);
	free(recs);
	free(lens);
	return rc;
}

void
tlsrpt_txt_free(struct tlsrpt_txt *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n_rua; i++) {
		free(t->rua[i].uri);
		free(t->rua[i].target);
	}
	free(t->rua);
	free(t);
}

const char *
tlsrpt_txt_scheme_name(enum tlsrpt_txt_scheme s)
{
	switch (s) {
	case TLSRPT_TXT_MAILTO:
		return "mailto";
	case TLSRPT_TXT_HTTPS:
		return "https";
	case TLSRPT_TXT_OTHER:
		return "other";
	}
	return "unknown";
}
