#include "tlsrpt_txt.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "txtrec.h"
#include "xmalloc.h"

#define TLSRPT_TXT_QUOTE_LEN	48
#define TLSRPT_TXT_QUOTE_MAX	TXTREC_QUOTE_SIZE(TLSRPT_TXT_QUOTE_LEN)

static const struct txtrec_kind tlsrpt_txt_kind = {
	"TLSRPT", "v=TLSRPTv1", TLSRPT_TXT_QUOTE_LEN
};

static int
tlsrpt_txt_hex(unsigned char c)
{
	return txtrec_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int
tlsrpt_txt_hexval(unsigned char c)
{
	if (txtrec_digit(c))
		return c - '0';
	return (c | 0x20) - 'a' + 10;
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
				txtrec_seterr(err, errsz, "rua URI \"%s\": '%%' not followed by "
				    "two hex digits", txtrec_quote(q, sizeof(q), u, n));
				return TLSRPT_TXT_SYNTAX;
			}
			i += 2;
			continue;
		}
		if (c == '!') {
			/* DMARC's "!10m" size limit has no place here (3). */
			txtrec_seterr(err, errsz, "rua URI \"%s\": '!' must be written %%21 "
			    "(TLSRPT has no DMARC-style size limit)",
			    txtrec_quote(q, sizeof(q), u, n));
			return TLSRPT_TXT_SYNTAX;
		}
		if (c == '#' && ++hashes > 1) {
			txtrec_seterr(err, errsz, "rua URI \"%s\": more than one '#'",
			    txtrec_quote(q, sizeof(q), u, n));
			return TLSRPT_TXT_SYNTAX;
		}
		if (txtrec_alnum(c) || strchr("-._~:/?#[]@$&'()*+=", c) != NULL)
			continue;
		txtrec_seterr(err, errsz, "rua URI \"%s\": '%c' is not allowed in a URI",
		    txtrec_quote(q, sizeof(q), u, n), c);
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
		txtrec_seterr(err, errsz, "rua URI \"%s\": a mailto: URI has no fragment",
		    txtrec_quote(q, sizeof(q), u, n));
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
				    : !(txtrec_alnum(c) || c == '-'))
					why = "the address's domain is not a host name";
			}
		}
	}
	if (why != NULL) {
		txtrec_seterr(err, errsz, "rua URI \"%s\": %s", txtrec_quote(q, sizeof(q), u, n),
		    why);
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
			if (!txtrec_digit((unsigned char)*p)) {
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
	txtrec_seterr(err, errsz, "rua URI \"%s\": %s", txtrec_quote(q, sizeof(q), u, n), why);
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
	if (n > 0 && txtrec_alpha((unsigned char)u[0]))
		for (s = 1; s < n && (txtrec_alnum((unsigned char)u[s]) ||
		    u[s] == '+' || u[s] == '-' || u[s] == '.'); s++)
			;
	if (s == 0 || s == n || u[s] != ':') {
		txtrec_seterr(err, errsz, "rua URI \"%s\" does not begin with a scheme "
		    "(mailto: or https:)", txtrec_quote(q, sizeof(q), u, n));
		return TLSRPT_TXT_SYNTAX;
	}
	if ((rc = tlsrpt_txt_uri_chars(u, n, err, errsz)) != TLSRPT_TXT_OK)
		return rc;
	/* Schemes are case-insensitive (RFC 3986 3.1). */
	if (s == 6 && txtrec_caseeq(u, "mailto", 6))
		rc = tlsrpt_txt_mailto(u, n, r, err, errsz);
	else if (s == 5 && txtrec_caseeq(u, "https", 5))
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

	if (n == 0 || txtrec_wsp((unsigned char)v[0])) {
		txtrec_seterr(err, errsz, "rua= must be followed directly by a URI");
		return TLSRPT_TXT_SYNTAX;
	}
	while (pos <= n) {
		const char *comma = memchr(v + pos, ',', n - pos);
		size_t end = comma ? (size_t)(comma - v) : n;
		size_t a = pos, b = end;
		while (a < b && txtrec_wsp((unsigned char)v[a]))
			a++;
		while (b > a && txtrec_wsp((unsigned char)v[b - 1]))
			b--;
		if (a == b) {
			txtrec_seterr(err, errsz, "rua has an empty URI (a stray ',' at byte "
			    "%zu of the list)", end + 1);
			return TLSRPT_TXT_SYNTAX;
		}
		for (size_t i = a; i < b; i++) {
			if (txtrec_wsp((unsigned char)v[i])) {
				txtrec_seterr(err, errsz, "rua URI \"%s\" has whitespace in it "
				    "(URIs are separated by ',')",
				    txtrec_quote(q, sizeof(q), v + a, b - a));
				return TLSRPT_TXT_SYNTAX;
			}
		}
		if (++count > TLSRPT_TXT_RUA_MAX) {
			txtrec_seterr(err, errsz, "rua lists more than %d URIs",
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
	int have_rua = 0, rc = TLSRPT_TXT_SYNTAX, more;

	*out = NULL;
	if (txtrec_head(&tlsrpt_txt_kind, rec, len, &pos, err, errsz) == -1)
		return TLSRPT_TXT_SYNTAX;
	t = xcalloc(1, sizeof(*t));
	/* field-delim = *WSP ";" *WSP. A URI carries no raw ';' (it must be
	 * encoded), so every ';' ends a field. */
	while ((more = txtrec_next_field(&tlsrpt_txt_kind, rec, len, &pos, err, errsz)) == 1) {
		const char *f = rec + pos;
		const char *semi = memchr(f, ';', len - pos);
		size_t flen = semi ? (size_t)(semi - f) : len - pos, nlen;
		pos += flen;
		while (flen > 0 && txtrec_wsp((unsigned char)f[flen - 1]))
			flen--;		/* belongs to the next delimiter */
		if (txtrec_field_split(&tlsrpt_txt_kind, f, flen, &nlen, err, errsz) == -1)
			goto fail;
		const char *eq = f + nlen;
		size_t vlen = flen - nlen - 1;
		if (nlen == 3 && memcmp(f, "rua", 3) == 0) {
			rc = tlsrpt_txt_rua_list(t, eq + 1, vlen, !have_rua, err, errsz);
			if (rc != TLSRPT_TXT_OK)
				goto fail;
			rc = TLSRPT_TXT_SYNTAX;
			have_rua = 1;
		} else if (!tlsrpt_txt_ext_value_ok(eq + 1, vlen)) {
			txtrec_seterr(err, errsz, "field \"%s\": an extension value is one run "
			    "of visible characters other than '=' and ';'",
			    txtrec_quote(q, sizeof(q), f, flen));
			goto fail;
		}
		/* Unknown fields are ignored (3). */
	}
	if (more == -1)
		goto fail;
	if (!have_rua) {
		txtrec_seterr(err, errsz, "TLSRPT record has no rua field");
		goto fail;
	}
	if (t->n_usable == 0) {
		txtrec_seterr(err, errsz, "rua lists no mailto: or https: URI (\"%s\" is "
		    "neither)", txtrec_quote(q, sizeof(q), t->rua[0].uri, strlen(t->rua[0].uri)));
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
	if (txtrec_rdata_join(rdata, len, &b, err, errsz) == -1)
		rc = TLSRPT_TXT_SYNTAX;
	else
		rc = tlsrpt_txt_parse_record(b.data, b.len, out, err, errsz);
	buf_free(&b);
	return rc;
}

int
tlsrpt_txt_select_records(const char *const *recs, const size_t *lens, size_t n,
    struct tlsrpt_txt **out, char *err, size_t errsz)
{
	size_t which;

	*out = NULL;
	switch (txtrec_select(&tlsrpt_txt_kind, recs, lens, n, &which, err, errsz)) {
	case TXTREC_NONE:
		return TLSRPT_TXT_NO_RECORD;
	case TXTREC_MULTIPLE:
		return TLSRPT_TXT_MULTIPLE;
	}
	return tlsrpt_txt_parse_record(recs[which], lens[which], out, err, errsz);
}

int
tlsrpt_txt_select_rdata(const struct tlsrpt_txt_rdata *rrs, size_t nrrs,
    struct tlsrpt_txt **out, char *err, size_t errsz)
{
	struct txtrec_rrs set;
	int rc = TLSRPT_TXT_SYNTAX;

	*out = NULL;
	txtrec_rrs_init(&set, nrrs);
	for (size_t i = 0; i < nrrs; i++)
		if (txtrec_rrs_add(&set, rrs[i].data, rrs[i].len, err, errsz) == -1)
			goto done;
	rc = tlsrpt_txt_select_records(set.recs, set.lens, nrrs, out, err, errsz);
done:
	txtrec_rrs_free(&set);
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
