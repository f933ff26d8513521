/* controld: the signed mail that carries a TLS report (tlsrpt_mail.h). */
#include "tlsrpt_mail.h"
#include "dnsname.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "buf.h"
#include "dkim_sign.h"
#include "timeutil.h"
#include "xmalloc.h"

#define TLSRPT_MAIL_FOLD	78
#define TLSRPT_MAIL_LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define TLSRPT_MAIL_DOMAIN_MAX	253
#define TLSRPT_MAIL_ID_MAX	255
#define TLSRPT_MAIL_B64_IN	57	/* bytes per 76-character base64 line */
#define TLSRPT_MAIL_FNAME_MAX	768

/* Signed, and oversigned so none can be added on the way (RFC 6376 8.15):
 * a second Subject or TLS-Report-Domain would otherwise be shown or
 * parsed by the receiver under our signature. */
static const char *const tlsrpt_mail_signed[] = {
	"From", "To", "Date", "Subject", "Message-ID", "TLS-Report-Domain",
	"TLS-Report-Submitter", "TLS-Required", "MIME-Version", "Content-Type", NULL
};

/* "tlsrpt mail: <what><why>" into err; always -1. */
static int
tlsrpt_mail_fail(char *err, size_t errlen, const char *what, const char *why)
{
	snprintf(err, errlen, "tlsrpt mail: %s%s", what, why);
	return -1;
}

/* RFC 5322 3.2.3 atext. */
static int
tlsrpt_mail_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5322 dot-atom-text of len bytes at s. */
static int
tlsrpt_mail_dot_atom(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.' && i + 1 < len && s[i + 1] == '.')
			return 0;
		if (s[i] != '.' && !tlsrpt_mail_atext((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

/* A host name in LDH form (A-labels for IDNs), as lib/dnsname.c has it,
 * without the trailing dot a header must not carry. */
static int
tlsrpt_mail_domain(const char *s)
{
	char why[160];
	size_t len = strlen(s);

	return len > 0 && len <= TLSRPT_MAIL_DOMAIN_MAX && s[len - 1] != '.' &&
	    dnsname_check(s, why, sizeof(why)) == 0;
}

/* local@domain with a dot-atom local part: no quoting, no comments, no
 * display name, nothing that could end the header. */
static int
tlsrpt_mail_check_addr(const char *what, const char *a, char *err, size_t errlen)
{
	const char *at = a != NULL ? strrchr(a, '@') : NULL;

	if (at == NULL || at - a > TLSRPT_MAIL_LOCAL_MAX ||
	    !tlsrpt_mail_dot_atom(a, (size_t)(at - a)) ||
	    !tlsrpt_mail_domain(at + 1))
		return tlsrpt_mail_fail(err, errlen, what,
		    " is not an address of the form local@domain.example");
	return 0;
}

static int
tlsrpt_mail_check_domain(const char *what, const char *d, char *err, size_t errlen)
{
	if (d == NULL || !tlsrpt_mail_domain(d))
		return tlsrpt_mail_fail(err, errlen, what, " is not a domain name");
	return 0;
}

/* RFC 5322 3.6.4 msg-id without the brackets: dot-atom "@" dot-atom. */
static int
tlsrpt_mail_check_id(const char *what, const char *id, size_t len, char *err,
    size_t errlen)
{
	const char *at = id != NULL ? memchr(id, '@', len) : NULL;

	if (at == NULL || len > TLSRPT_MAIL_ID_MAX ||
	    !tlsrpt_mail_dot_atom(id, (size_t)(at - id)) ||
	    !tlsrpt_mail_dot_atom(at + 1, len - (size_t)(at - id) - 1))
		return tlsrpt_mail_fail(err, errlen, what, " is not of the form left@right "
		    "(RFC 5322 msg-id, dot-atom on both sides)");
	return 0;
}

static int
tlsrpt_mail_check_msgid(const char *mid, char *err, size_t errlen)
{
	size_t len = strlen(mid);

	if (len < 2 || mid[0] != '<' || mid[len - 1] != '>')
		return tlsrpt_mail_fail(err, errlen, "the Message-ID", " is not in <>");
	return tlsrpt_mail_check_id("the Message-ID", mid + 1, len - 2, err, errlen);
}

/* d= must be From's domain or a parent of it. */
static int
tlsrpt_mail_check_aligned(const struct tlsrpt_mail *m, char *err, size_t errlen)
{
	const char *dom = strrchr(m->from, '@') + 1;
	size_t dl = strlen(dom), kl = strlen(m->dkim_domain);

	if (strcasecmp(dom, m->dkim_domain) == 0 ||
	    (dl > kl && dom[dl - kl - 1] == '.' && strcasecmp(dom + dl - kl, m->dkim_domain) == 0))
		return 0;
	return tlsrpt_mail_fail(err, errlen, "the DKIM domain",
	    " is neither From's domain nor a parent of it");
}

static int
tlsrpt_mail_check(const struct tlsrpt_report *r, const struct tlsrpt_mail *m, char *err,
    size_t errlen)
{
	if (tlsrpt_mail_check_addr("From", m->from, err, errlen) != 0 ||
	    tlsrpt_mail_check_addr("To (the rua address)", m->to, err, errlen) != 0 ||
	    tlsrpt_mail_check_domain("the submitter", m->submitter, err, errlen) != 0 ||
	    tlsrpt_mail_check_domain("the policy domain", m->policy_domain, err, errlen) != 0 ||
	    tlsrpt_mail_check_domain("the DKIM domain", m->dkim_domain, err, errlen) != 0)
		return -1;
	if (r->report_id == NULL)
		return tlsrpt_mail_fail(err, errlen, "the report", " has no report-id");
	if (tlsrpt_mail_check_id("the report-id", r->report_id, strlen(r->report_id),
	    err, errlen) != 0 ||
	    (m->message_id != NULL && tlsrpt_mail_check_msgid(m->message_id, err, errlen) != 0))
		return -1;
	return tlsrpt_mail_check_aligned(m, err, errlen);
}

/* "Name: tok tok ...\r\n", folding before a token that would pass column
 * TLSRPT_MAIL_FOLD (each space between tokens is FWS in the header's
 * grammar). */
static void
tlsrpt_mail_header(struct buf *b, const char *name, const char *const *toks)
{
	size_t col = strlen(name) + 1;

	buf_appends(b, name);
	buf_appendc(b, ':');
	for (; *toks != NULL; toks++) {
		size_t len = strlen(*toks);

		if (col + 1 + len > TLSRPT_MAIL_FOLD && col > strlen(name) + 1) {
			buf_append(b, "\r\n ", 3);
			col = 1;
		} else {
			buf_appendc(b, ' ');
			col++;
		}
		buf_append(b, *toks, len);
		col += len;
	}
	buf_append(b, "\r\n", 2);
}

#define TLSRPT_MAIL_HEADER(b, name, ...) \
	tlsrpt_mail_header(b, name, (const char *const[]){ __VA_ARGS__, NULL })

static void
tlsrpt_mail_headers(const struct tlsrpt_report *r, const struct tlsrpt_mail *m,
    const char *boundary, struct buf *b)
{
	char date[64], *rid = xasprintf("<%s>", r->report_id);
	char *mid = m->message_id != NULL ? xstrdup(m->message_id) :
	    xasprintf("<%016" PRIx64 ".%s>", m->nonce, r->report_id);
	char *bnd = xasprintf("boundary=\"%s\"", boundary);

	TLSRPT_MAIL_HEADER(b, "From", m->from);
	TLSRPT_MAIL_HEADER(b, "To", m->to);
	TLSRPT_MAIL_HEADER(b, "Date", timeutil_rfc5322(date, sizeof(date), m->now));
	/* RFC 8460 5.3: tls-report-subject */
	TLSRPT_MAIL_HEADER(b, "Subject", "Report", "Domain:", m->policy_domain,
	    "Submitter:", m->submitter, "Report-ID:", rid);
	TLSRPT_MAIL_HEADER(b, "Message-ID", mid);
	TLSRPT_MAIL_HEADER(b, "TLS-Report-Domain", m->policy_domain);
	TLSRPT_MAIL_HEADER(b, "TLS-Report-Submitter", m->submitter);
	/* RFC 8689 5: deliver even where TLS fails, or the report about the
	 * failure could never arrive */
	TLSRPT_MAIL_HEADER(b, "TLS-Required", "No");
	TLSRPT_MAIL_HEADER(b, "MIME-Version", "1.0");
	TLSRPT_MAIL_HEADER(b, "Content-Type", "multipart/report;", "report-type=\"tlsrpt\";",
	    bnd);
	free(rid);
	free(mid);
	free(bnd);
}

static void
tlsrpt_mail_utc(char *out, size_t outsz, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The human-readable part: what this is, from whom, about what. */
static void
tlsrpt_mail_text(const struct tlsrpt_report *r, const struct tlsrpt_mail *m,
    const char *boundary, struct buf *b)
{
	char begin[32], end[32];

	tlsrpt_mail_utc(begin, sizeof(begin), r->begin);
	tlsrpt_mail_utc(end, sizeof(end), r->end);
	buf_printf(b, "--%s\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n"
	    "This is an aggregate SMTP TLS report (RFC 8460).\r\n"
	    "\r\n"
	    "Submitter: %s\r\n"
	    "Policy domain: %s\r\n"
	    "Report-ID: <%s>\r\n"
	    "Period: %s to %s\r\n"
	    "\r\n"
	    "The report is the attached application/tlsrpt+gzip file.\r\n"
	    "\r\n", boundary, m->submitter, m->policy_domain, r->report_id, begin, end);
}

static void
tlsrpt_mail_report_part(const unsigned char *gz, size_t gzlen, const char *fname,
    const char *boundary, struct buf *b)
{
	char line[80];

	buf_printf(b, "--%s\r\n"
	    "Content-Type: application/tlsrpt+gzip\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment;\r\n"
	    " filename=\"%s\"\r\n"
	    "\r\n", boundary, fname);
	for (size_t off = 0; off < gzlen; off += TLSRPT_MAIL_B64_IN) {
		size_t n = gzlen - off < TLSRPT_MAIL_B64_IN ? gzlen - off : TLSRPT_MAIL_B64_IN;

		EVP_EncodeBlock((unsigned char *)line, gz + off, (int)n);
		buf_appends(b, line);
		buf_append(b, "\r\n", 2);
	}
	buf_printf(b, "\r\n--%s--\r\n", boundary);
}

/* The report as gzip and its RFC 8460 5.1 file name. */
static int
tlsrpt_mail_payload(const struct tlsrpt_report *r, const struct tlsrpt_mail *m,
    unsigned char **gz, size_t *gzlen, char *fname, char *err, size_t errlen)
{
	char *json = NULL;
	size_t jlen = 0;
	int rc;

	if (tlsrpt_filename(m->submitter, m->policy_domain, r->begin, r->end, m->unique_id,
	    1, fname, TLSRPT_MAIL_FNAME_MAX) != 0)
		return tlsrpt_mail_fail(err, errlen, "no RFC 8460 file name can be made",
		    " from the submitter, policy domain, dates and unique-id");
	if (tlsrpt_build_json(r, &json, &jlen, err, errlen) != 0)
		return -1;
	rc = tlsrpt_gzip(json, jlen, gz, gzlen, err, errlen);
	free(json);
	return rc;
}

static int
tlsrpt_mail_sign(const struct tlsrpt_mail *m, struct buf *msg, char **out, size_t *outlen,
    char *err, size_t errlen)
{
	struct dkim_sign_params p = { .domain = m->dkim_domain, .selector = m->dkim_selector,
		.key_pem = m->dkim_key_pem, .headers = tlsrpt_mail_signed,
		.oversign = tlsrpt_mail_signed, .now = m->now };
	char derr[DKIM_SIGN_ERR_MAX];
	char *sig = NULL;
	struct buf b;

	if (dkim_sign(&p, msg->data, msg->len, &sig, derr, sizeof(derr)) != 0)
		return tlsrpt_mail_fail(err, errlen, derr, "");
	buf_init(&b);
	buf_appends(&b, sig);
	buf_append(&b, msg->data, msg->len);
	free(sig);
	*out = b.data;
	*outlen = b.len;
	return 0;
}

int
tlsrpt_mail_compose(const struct tlsrpt_report *r, const struct tlsrpt_mail *m,
    char **out, size_t *outlen, char *err, size_t errlen)
{
	char fname[TLSRPT_MAIL_FNAME_MAX], boundary[40];
	unsigned char *gz = NULL;
	size_t gzlen = 0;
	struct buf msg;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (tlsrpt_mail_check(r, m, err, errlen) != 0 ||
	    tlsrpt_mail_payload(r, m, &gz, &gzlen, fname, err, errlen) != 0)
		return -1;
	/* "=_" never occurs in base64 or in our text part */
	snprintf(boundary, sizeof(boundary), "=_tlsrpt_%016" PRIx64, m->nonce);
	buf_init(&msg);
	tlsrpt_mail_headers(r, m, boundary, &msg);
	buf_appends(&msg, "\r\nThis is a multipart message in MIME format.\r\n\r\n");
	tlsrpt_mail_text(r, m, boundary, &msg);
	tlsrpt_mail_report_part(gz, gzlen, fname, boundary, &msg);
	free(gz);
	rc = tlsrpt_mail_sign(m, &msg, out, outlen, err, errlen);
	buf_free(&msg);
	return rc;
}
