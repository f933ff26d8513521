/* DKIM signing, rsa-sha256 relaxed/relaxed (dkim_sign.h). */
#include "dkim_sign.h"
#include "dnsname.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "xmalloc.h"

#define DKIM_SIGN_DOMAIN_MAX	253
#define DKIM_SIGN_NAME_MAX	128	/* a header name we are asked to sign */

/* One header field of the message: name, colon, value, folding CRLFs;
 * without the CRLF that ends it. */
struct dkim_field {
	const char	*start;
	size_t		 len;
	size_t		 namelen;	/* the name, without WSP before the colon */
};

struct dkim_msg {
	struct dkim_field	*fields;
	size_t			 n;
	const char		*body;
	size_t			 bodylen;
};

/* One name of h=: how often it is listed and how many instances are left
 * to take from the bottom up while hashing (RFC 6376 5.4.2). */
struct dkim_hname {
	char	*name;		/* lowercased */
	size_t	 listed;
	size_t	 next;		/* instances already hashed */
};

static int dkim_sign_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
dkim_sign_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(err, errlen, "dkim sign: ");
	if (n < 0 || (size_t)n >= errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int
dkim_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

void
dkim_sign_canon_body(const char *body, size_t len, struct buf *out)
{
	size_t pos = 0, empty = 0;
	struct buf line;

	buf_init(&line);
	while (pos < len) {
		const char *eol = memmem(body + pos, len - pos, "\r\n", 2);
		size_t end = eol != NULL ? (size_t)(eol - body) : len;
		int wsp = 0;

		buf_reset(&line);
		for (size_t i = pos; i < end; i++) {
			if (dkim_is_wsp(body[i])) {
				wsp = 1;
				continue;
			}
			if (wsp)
				buf_appendc(&line, ' ');
			wsp = 0;
			buf_appendc(&line, body[i]);
		}
		/* WSP at the end of the line is dropped with the pending flag */
		if (line.len == 0) {
			empty++;
		} else {
			for (; empty > 0; empty--)
				buf_append(out, "\r\n", 2);
			buf_append(out, line.data, line.len);
			buf_append(out, "\r\n", 2);
		}
		pos = eol != NULL ? end + 2 : len;
	}
	buf_free(&line);
}

void
dkim_sign_canon_header(const char *field, size_t len, struct buf *out)
{
	const char *colon = memchr(field, ':', len);
	size_t namelen = colon != NULL ? (size_t)(colon - field) : len;
	int wsp = 0, started = 0;

	while (namelen > 0 && dkim_is_wsp(field[namelen - 1]))
		namelen--;
	for (size_t i = 0; i < namelen; i++)
		buf_appendc(out, (char)tolower((unsigned char)field[i]));
	buf_appendc(out, ':');
	for (size_t i = colon != NULL ? (size_t)(colon - field) + 1 : len; i < len; i++) {
		char c = field[i];

		if (c == '\r' || c == '\n')
			continue;
		if (dkim_is_wsp(c)) {
			wsp = 1;
			continue;
		}
		if (wsp && started)
			buf_appendc(out, ' ');
		wsp = 0;
		started = 1;
		buf_appendc(out, c);
	}
	buf_append(out, "\r\n", 2);
}

/* RFC 5322 2.2 ftext, minus ';' which would end the h= tag. */
static int
dkim_is_name_char(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':' && c != ';';
}

/* Where the name of the header line at p ends (the colon, or WSP before
 * it); 0 when the line is not "name:". */
static size_t
dkim_field_namelen(const char *p, size_t len)
{
	size_t n = 0, colon;

	while (n < len && dkim_is_name_char((unsigned char)p[n]))
		n++;
	colon = n;
	while (colon < len && dkim_is_wsp(p[colon]))
		colon++;
	if (n == 0 || colon >= len || p[colon] != ':')
		return 0;
	return n;
}

/* Bare CR or LF anywhere: refused (the signature would cover bytes that
 * differ from what an SMTP server stores). */
static int
dkim_check_crlf(const char *msg, size_t len, char *err, size_t errlen)
{
	for (size_t i = 0; i < len; i++) {
		if (msg[i] == '\r' && (i + 1 >= len || msg[i + 1] != '\n'))
			return dkim_sign_fail(err, errlen, "bare CR at byte %zu", i);
		if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
			return dkim_sign_fail(err, errlen, "bare LF at byte %zu", i);
	}
	return 0;
}

/* Splits msg into header fields and body. A message without an empty line
 * is all header, with an empty body. */
static int
dkim_msg_split(const char *msg, size_t len, struct dkim_msg *m, char *err, size_t errlen)
{
	size_t pos = 0, cap = 0;

	memset(m, 0, sizeof(*m));
	if (dkim_check_crlf(msg, len, err, errlen) != 0)
		return -1;
	while (pos < len) {
		const char *eol = memmem(msg + pos, len - pos, "\r\n", 2);
		size_t end = eol != NULL ? (size_t)(eol - msg) : len;

		if (end == pos) {
			pos += 2;
			break;
		}
		if (dkim_is_wsp(msg[pos])) {
			if (m->n == 0)
				return dkim_sign_fail(err, errlen,
				    "message begins with a continuation line");
			m->fields[m->n - 1].len = (size_t)(msg + end - m->fields[m->n - 1].start);
		} else {
			size_t nl = dkim_field_namelen(msg + pos, end - pos);

			if (nl == 0)
				return dkim_sign_fail(err, errlen,
				    "header line at byte %zu is not \"name: value\"", pos);
			if (m->n == cap) {
				cap = cap ? cap * 2 : 16;
				m->fields = xreallocarray(m->fields, cap, sizeof(*m->fields));
			}
			m->fields[m->n++] = (struct dkim_field){ msg + pos, end - pos, nl };
		}
		pos = eol != NULL ? end + 2 : len;
	}
	m->body = msg + (pos < len ? pos : len);
	m->bodylen = pos < len ? len - pos : 0;
	return 0;
}

static size_t
dkim_msg_count(const struct dkim_msg *m, const char *name)
{
	size_t n = 0, nl = strlen(name);

	for (size_t i = 0; i < m->n; i++)
		if (m->fields[i].namelen == nl && strncasecmp(m->fields[i].start, name, nl) == 0)
			n++;
	return n;
}

/* The k-th instance of name counted from the bottom (k = 0: the last). */
static const struct dkim_field *
dkim_msg_from_bottom(const struct dkim_msg *m, const char *name, size_t k)
{
	size_t nl = strlen(name);

	for (size_t i = m->n; i-- > 0;) {
		if (m->fields[i].namelen != nl || strncasecmp(m->fields[i].start, name, nl) != 0)
			continue;
		if (k-- == 0)
			return &m->fields[i];
	}
	return NULL;
}

static int
dkim_name_in(const char *const *list, const char *name)
{
	for (; list != NULL && *list != NULL; list++)
		if (strcasecmp(*list, name) == 0)
			return 1;
	return 0;
}

static void
dkim_hnames_free(struct dkim_hname *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(h[i].name);
	free(h);
}

/* Adds name to h= unless already there; refuses a name h= cannot hold. */
static int
dkim_hnames_add(struct dkim_hname **h, size_t *n, const char *name, char *err,
    size_t errlen)
{
	size_t len = strlen(name);

	if (len == 0 || len > DKIM_SIGN_NAME_MAX)
		return dkim_sign_fail(err, errlen, "a header name to sign is empty or too long");
	for (size_t i = 0; i < len; i++)
		if (!dkim_is_name_char((unsigned char)name[i]))
			return dkim_sign_fail(err, errlen,
			    "header name to sign holds byte 0x%02x", (unsigned char)name[i]);
	for (size_t i = 0; i < *n; i++)
		if (strcasecmp((*h)[i].name, name) == 0)
			return 0;
	*h = xreallocarray(*h, *n + 1, sizeof(**h));
	(*h)[*n] = (struct dkim_hname){ .name = xstrdup(name) };
	for (char *c = (*h)[*n].name; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	(*n)++;
	return 0;
}

/* The h= names with how often each is listed: every instance, plus one
 * for oversigned names; From always, and always oversigned. */
static int
dkim_hnames_make(const struct dkim_sign_params *p, const struct dkim_msg *m,
    struct dkim_hname **out, size_t *nout, char *err, size_t errlen)
{
	struct dkim_hname *h = NULL;
	size_t n = 0;
	int rc = dkim_hnames_add(&h, &n, "from", err, errlen);

	for (const char *const *s = p->headers; rc == 0 && s != NULL && *s != NULL; s++)
		rc = dkim_hnames_add(&h, &n, *s, err, errlen);
	for (const char *const *s = p->oversign; rc == 0 && s != NULL && *s != NULL; s++)
		rc = dkim_hnames_add(&h, &n, *s, err, errlen);
	if (rc != 0) {
		dkim_hnames_free(h, n);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		h[i].listed = dkim_msg_count(m, h[i].name) +
		    (strcmp(h[i].name, "from") == 0 || dkim_name_in(p->oversign, h[i].name));
	*out = h;
	*nout = n;
	return 0;
}

/* Appends what RFC 6376 3.7 hashes for the header: each h= entry's field,
 * relaxed, taking instances from the bottom up; an entry with no instance
 * left (oversigning) adds nothing. */
static void
dkim_hash_headers(const struct dkim_msg *m, struct dkim_hname *h, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < h[i].listed; k++) {
			const struct dkim_field *f = dkim_msg_from_bottom(m, h[i].name, h[i].next);

			h[i].next++;
			if (f != NULL)
				dkim_sign_canon_header(f->start, f->len, out);
		}
	}
}

/* Writes tokens onto lines of at most DKIM_SIGN_FOLD bytes, folding with
 * CRLF TAB where a tag allows FWS. */
struct dkim_fold {
	struct buf	*b;
	size_t		 col;
};

static void
dkim_fold_put(struct dkim_fold *f, const char *tok, int space)
{
	size_t len = strlen(tok);

	if (f->col + (size_t)space + len > DKIM_SIGN_FOLD) {
		buf_append(f->b, "\r\n\t", 3);
		f->col = 1;
	} else if (space) {
		buf_appendc(f->b, ' ');
		f->col++;
	}
	buf_append(f->b, tok, len);
	f->col += len;
}

/* Base64 may be broken by FWS anywhere (RFC 6376 2.4); fills each line. */
static void
dkim_fold_b64(struct dkim_fold *f, const char *b64)
{
	size_t len = strlen(b64);

	while (len > 0) {
		size_t room = f->col < DKIM_SIGN_FOLD ? DKIM_SIGN_FOLD - f->col : 0;
		size_t n = len < room ? len : room;

		if (n == 0) {
			buf_append(f->b, "\r\n\t", 3);
			f->col = 1;
			continue;
		}
		buf_append(f->b, b64, n);
		f->col += n;
		b64 += n;
		len -= n;
	}
}

static char *
dkim_b64(const unsigned char *data, size_t len)
{
	char *b64 = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)b64, data, (int)len);
	return b64;
}

/* The DKIM-Signature header up to and including an empty "b=". */
static void
dkim_sig_head(const struct dkim_sign_params *p, const struct dkim_hname *h, size_t n,
    const char *bh, struct buf *out)
{
	struct dkim_fold f = { out, 0 };
	char tok[DKIM_SIGN_DOMAIN_MAX + DKIM_SIGN_NAME_MAX + 8];
	int first = 1;

	buf_appends(out, "DKIM-Signature:");
	f.col = out->len;
	dkim_fold_put(&f, "v=1;", 1);
	dkim_fold_put(&f, "a=rsa-sha256;", 1);
	dkim_fold_put(&f, "c=relaxed/relaxed;", 1);
	snprintf(tok, sizeof(tok), "d=%s;", p->domain);
	dkim_fold_put(&f, tok, 1);
	snprintf(tok, sizeof(tok), "s=%s;", p->selector);
	dkim_fold_put(&f, tok, 1);
	snprintf(tok, sizeof(tok), "t=%lld;", (long long)p->now);
	dkim_fold_put(&f, tok, 1);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < h[i].listed; k++) {
			snprintf(tok, sizeof(tok), "%s%s", first ? "h=" : ":", h[i].name);
			dkim_fold_put(&f, tok, first);
			first = 0;
		}
	}
	dkim_fold_put(&f, ";", 0);
	snprintf(tok, sizeof(tok), "bh=%s;", bh);
	dkim_fold_put(&f, tok, 1);
	buf_append(out, "\r\n\tb=", 5);
}

/* RFC 6376 3.5: d= and s= are DNS names; anything else could break out of
 * its tag. */
static int
dkim_check_dns_name(const char *what, const char *s, char *err, size_t errlen)
{
	char why[160];
	size_t len = s != NULL ? strlen(s) : 0;

	if (len == 0 || len > DKIM_SIGN_DOMAIN_MAX)
		return dkim_sign_fail(err, errlen, "%s is empty or too long", what);
	/* The byte that breaks a tag, named; then lib/dnsname.c's rule (label
	 * lengths, hyphens) without the trailing dot a tag must not carry. */
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return dkim_sign_fail(err, errlen, "%s holds byte 0x%02x", what,
			    (unsigned char)s[i]);
	if (s[0] == '.' || s[len - 1] == '.' || strstr(s, "..") != NULL)
		return dkim_sign_fail(err, errlen, "%s has an empty label", what);
	if (dnsname_check(s, why, sizeof(why)) < 0)
		return dkim_sign_fail(err, errlen, "%s: %s", what, why);
	return 0;
}

static int
dkim_openssl_fail(const char *what, char *err, size_t errlen)
{
	unsigned long e = ERR_get_error();
	char msg[160];

	ERR_error_string_n(e, msg, sizeof(msg));
	ERR_clear_error();
	return dkim_sign_fail(err, errlen, "%s: %s", what, e ? msg : "failed");
}

/* Never prompts for a passphrase: an encrypted key is refused. */
static int
dkim_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return 0;
}

static EVP_PKEY *
dkim_load_key(const char *pem, char *err, size_t errlen)
{
	BIO *bio = pem != NULL ? BIO_new_mem_buf(pem, -1) : NULL;
	EVP_PKEY *pk = NULL;

	if (bio == NULL) {
		dkim_sign_fail(err, errlen, "no private key");
		return NULL;
	}
	pk = PEM_read_bio_PrivateKey(bio, NULL, dkim_no_passphrase, NULL);
	BIO_free(bio);
	if (pk == NULL) {
		dkim_openssl_fail("reading the private key", err, errlen);
		return NULL;
	}
	if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
		dkim_sign_fail(err, errlen, "the key is %s, not RSA (a=rsa-sha256)",
		    OBJ_nid2sn(EVP_PKEY_get_base_id(pk)));
	} else if (EVP_PKEY_get_bits(pk) < DKIM_SIGN_MIN_BITS) {
		dkim_sign_fail(err, errlen, "the RSA key has %d bits, fewer than %d",
		    EVP_PKEY_get_bits(pk), DKIM_SIGN_MIN_BITS);
	} else {
		return pk;
	}
	EVP_PKEY_free(pk);
	return NULL;
}

/* RSASSA-PKCS1-v1_5 with SHA-256 over data; the base64 signature. */
static char *
dkim_rsa_sign(EVP_PKEY *pk, const struct buf *data, char *err, size_t errlen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *sig = NULL;
	size_t siglen = 0;
	char *b64 = NULL;

	if (ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk) == 1 &&
	    EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)data->data,
	    data->len) == 1) {
		sig = xmalloc(siglen);
		if (EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)data->data,
		    data->len) == 1)
			b64 = dkim_b64(sig, siglen);
	}
	if (b64 == NULL)
		dkim_openssl_fail("signing", err, errlen);
	free(sig);
	EVP_MD_CTX_free(ctx);
	return b64;
}

static char *
dkim_body_hash(const struct dkim_msg *m)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct buf canon;
	char *b64;

	buf_init(&canon);
	dkim_sign_canon_body(m->body, m->bodylen, &canon);
	EVP_Digest(canon.data != NULL ? canon.data : "", canon.len, md, &mdlen,
	    EVP_sha256(), NULL);
	buf_free(&canon);
	b64 = dkim_b64(md, mdlen);
	return b64;
}

/* Checks the request and the message; fills m and the h= names. */
static int
dkim_sign_prepare(const struct dkim_sign_params *p, const char *msg, size_t len,
    struct dkim_msg *m, struct dkim_hname **h, size_t *nh, char *err, size_t errlen)
{
	if (dkim_check_dns_name("d= (signing domain)", p->domain, err, errlen) != 0 ||
	    dkim_check_dns_name("s= (selector)", p->selector, err, errlen) != 0)
		return -1;
	if (p->now < 0)
		return dkim_sign_fail(err, errlen, "t= is before 1970");
	if (dkim_msg_split(msg, len, m, err, errlen) != 0)
		return -1;
	if (dkim_msg_count(m, "from") == 0)
		return dkim_sign_fail(err, errlen, "the message has no From header "
		    "(RFC 6376 5.4: From must be signed)");
	return dkim_hnames_make(p, m, h, nh, err, errlen);
}

int
dkim_sign(const struct dkim_sign_params *p, const char *msg, size_t len, char **out,
    char *err, size_t errlen)
{
	struct dkim_msg m = { 0 };
	struct dkim_hname *h = NULL;
	size_t nh = 0;
	struct buf sig, hashed;
	EVP_PKEY *pk = NULL;
	char *bh = NULL, *b = NULL;

	*out = NULL;
	buf_init(&sig);
	buf_init(&hashed);
	if (dkim_sign_prepare(p, msg, len, &m, &h, &nh, err, errlen) != 0 ||
	    (pk = dkim_load_key(p->key_pem, err, errlen)) == NULL)
		goto done;
	bh = dkim_body_hash(&m);
	dkim_sig_head(p, h, nh, bh, &sig);
	dkim_hash_headers(&m, h, nh, &hashed);
	/* RFC 6376 3.7: the signature's own header, relaxed, b= empty,
	 * without a trailing CRLF */
	dkim_sign_canon_header(sig.data, sig.len, &hashed);
	hashed.len -= 2;
	if ((b = dkim_rsa_sign(pk, &hashed, err, errlen)) == NULL)
		goto done;
	{
		struct dkim_fold f = { &sig, 3 };

		dkim_fold_b64(&f, b);
	}
	buf_append(&sig, "\r\n", 2);
	*out = sig.data;
	sig.data = NULL;
done:
	EVP_PKEY_free(pk);
	free(bh);
	free(b);
	free(m.fields);
	dkim_hnames_free(h, nh);
	buf_free(&sig);
	buf_free(&hashed);
	return *out != NULL ? 0 : -1;
}
