#include "dsn.h"
#include "log.h"
#include "timeutil.h"
#include "utf8.h"

#include <openssl/rand.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int
dsn_wanted(const struct spool_env *env, size_t i, enum dsn_action kind)
{
	unsigned notify = spool_env_notify(env, i);

	switch (kind) {
	case DSN_ACTION_FAILED:
		return notify == 0 || (notify & DSN_NOTIFY_FAILURE) != 0;
	case DSN_ACTION_DELAYED:
		return notify == 0 || (notify & DSN_NOTIFY_DELAY) != 0;
	default:
		return (notify & DSN_NOTIFY_SUCCESS) != 0;
	}
}

/* Append a whole parameter or nothing. */
static void
dsn_param_add(char *out, size_t outsz, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
dsn_param_add(char *out, size_t outsz, size_t *len, const char *fmt, ...)
{
	va_list ap;

	if (*len >= outsz)
		return;
	va_start(ap, fmt);
	int w = vsnprintf(out + *len, outsz - *len, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= outsz - *len)
		out[*len] = '\0';
	else
		*len += (size_t)w;
}

void
dsn_mail_params(const struct spool_env *env, char *out, size_t outsz)
{
	size_t len = 0;

	if (outsz == 0)
		return;
	out[0] = '\0';
	if (env->ret == DSN_RET_FULL || env->ret == DSN_RET_HDRS)
		dsn_param_add(out, outsz, &len, " RET=%s", env->ret == DSN_RET_FULL ? "FULL" : "HDRS");
	if (env->envid)
		dsn_param_add(out, outsz, &len, " ENVID=%s", env->envid);
}

void
dsn_rcpt_params(const struct spool_env *env, size_t i, char *out, size_t outsz)
{
	char notify[64];
	size_t len = 0;

	if (outsz == 0)
		return;
	out[0] = '\0';
	if (i >= env->nrcpts)
		return;
	dsn_notify_format(spool_env_notify(env, i), notify, sizeof(notify));
	if (notify[0])
		dsn_param_add(out, outsz, &len, " NOTIFY=%s", notify);
	if (spool_env_orcpt(env, i))
		dsn_param_add(out, outsz, &len, " ORCPT=%s", spool_env_orcpt(env, i));
}

void
dsn_status_from_reply(const char *reply, int code, char *out, size_t outsz)
{
	/* "550 5.1.1 text" or "550-5.1.1 text": class digit, dot, digits, dot, digits. */
	if (reply && strlen(reply) > 4) {
		const char *p = reply + 4;
		int cls = p[0];
		if ((cls == '2' || cls == '4' || cls == '5') && p[1] == '.') {
			size_t i = 2, d1 = 0, d2 = 0;
			while (isdigit((unsigned char)p[i]) && d1 < 3) {
				i++;
				d1++;
			}
			if (d1 && p[i] == '.') {
				i++;
				while (isdigit((unsigned char)p[i]) && d2 < 3) {
					i++;
					d2++;
				}
				if (d2 && (p[i] == ' ' || p[i] == '\0' || p[i] == '\n' || p[i] == '\r')) {
					snprintf(out, outsz, "%.*s", (int)i, p);
					return;
				}
			}
		}
	}
	snprintf(out, outsz, "%d.0.0", code >= 500 ? 5 : code >= 400 ? 4 : code >= 200 ? 2 : 4);
}

/* RFC 5322 2.1.1: a line holds at most 998 octets before its CRLF and
 * should hold at most 78. Header fields are folded at white space past
 * DSN_FOLD_AT where they have some, and cut wherever needed at DSN_LINE_MAX. */
#define DSN_LINE_MAX		998
#define DSN_FOLD_AT		78
/* A header block larger than this is not worth returning. */
#define DSN_HEADERS_MAX		65536
/* Random octets in a MIME boundary and in a Message-ID. */
#define DSN_RANDOM_OCTETS	18
#define DSN_BOUNDARY_SIZE	(sizeof("=_mxd_") + 2 * DSN_RANDOM_OCTETS)
/* The boundary occurs in the Content-Type field, in three delimiters and
 * in the close delimiter; anywhere else means the content holds it. */
#define DSN_BOUNDARY_USES	5

/* Append s[0..len) as text that can stand in a header field or a body line
 * of the notice: what could end a line or a field (CR, LF), NUL, the other
 * C0 controls and DEL become \x{HEX}, the notation of RFC 6533 3 (as in
 * dsn_address_field); so does every octet of 8 bits, unless utf8 lets a
 * well-formed UTF-8 character through (a C1 control never). Tabs stay. */
static void
dsn_text(struct buf *out, const char *s, size_t len, int utf8)
{
	const unsigned char *p = (const unsigned char *)s;

	while (len > 0) {
		uint32_t cp;
		int n = 1;
		if (*p == '\t' || (*p >= 0x20 && *p < 0x7f))
			buf_appendc(out, (char)*p);
		else if (*p < 0x80 || (n = utf8_decode(p, len, &cp)) < 0) {
			n = 1;
			buf_printf(out, "\\x{%02X}", *p);
		} else if (utf8 && cp >= 0xa0)
			buf_append(out, p, (size_t)n);
		else
			buf_printf(out, "\\x{%02X}", (unsigned)cp);
		p += n;
		len -= (size_t)n;
	}
}

static int
dsn_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Runs of white space as one space, none at either end: what a structured
 * field means anyway, and a folded field then never has a line of white
 * space only (RFC 5322 3.2.2). */
static void
dsn_squeeze(struct buf *out, const char *s, size_t len)
{
	size_t start = out->len;
	int space = 0;

	for (size_t i = 0; i < len; i++) {
		if (dsn_wsp(s[i])) {
			space = out->len > start;
			continue;
		}
		if (space)
			buf_appendc(out, ' ');
		space = 0;
		buf_appendc(out, s[i]);
	}
}

/* May a line be cut before s[i] without splitting a UTF-8 character or an
 * \x{HEX} escape (at most 10 octets)? */
static int
dsn_cut_ok(const char *s, size_t len, size_t i)
{
	if (((unsigned char)s[i] & 0xc0) == 0x80)
		return 0;
	for (size_t j = i; j > 0 && i - j < 10; j--) {
		if (s[j - 1] == '}')
			return 1;
		if (s[j - 1] == '\\' && j + 1 < len && s[j] == 'x' && s[j + 1] == '{')
			return 0;
	}
	return 1;
}

/* Where to cut s[0..len) on a line with room for room more octets: before
 * the last white space within soft, else the first within room, that
 * follows something else (*wsp = 1: that white space begins the next
 * line, as RFC 5322 2.2.3 folds). Else, when len does not fit, before the
 * last character that does (*wsp = 0). 0 when no cut is needed. */
static size_t
dsn_cut(const char *s, size_t len, size_t soft, size_t room, int *wsp)
{
	size_t cut = 0;

	*wsp = 1;
	for (size_t i = 1; i < len && i <= room; i++) {
		if (!dsn_wsp(s[i]) || dsn_wsp(s[i - 1]))
			continue;
		if (i <= soft || cut == 0)
			cut = i;
		if (i > soft)
			break;
	}
	if (cut > 0 || len <= room)
		return cut;
	*wsp = 0;
	for (cut = room; cut > 1 && !dsn_cut_ok(s, len, cut); cut--)
		;
	return cut;
}

/* Append the line s[0..len) (no CR or LF in it) to out, whose current line
 * already holds col octets, as lines of at most DSN_LINE_MAX octets (and
 * soft, where white space allows). Without cont it is a header field,
 * folded: the next line begins with the white space cut before, or with a
 * space added where the cut fell between two characters. With cont it is
 * body text, and each further line begins with cont instead. The last line
 * gets no CRLF. */
static void
dsn_fold(struct buf *out, size_t col, const char *s, size_t len, size_t soft, const char *cont)
{
	while (col + len > soft) {
		int wsp;
		size_t cut = dsn_cut(s, len, soft > col ? soft - col : 0,
		    col < DSN_LINE_MAX ? DSN_LINE_MAX - col : 0, &wsp);
		if (cut == 0)
			break;
		buf_append(out, s, cut);
		buf_appends(out, "\r\n");
		s += cut;
		len -= cut;
		if (cont) {
			buf_appends(out, cont);
			col = strlen(cont);
			s += wsp;
			len -= (size_t)wsp;
		} else if (!wsp) {
			buf_appendc(out, ' ');
			col = 1;
		} else
			col = 0;
	}
	buf_append(out, s, len);
}

/* The header field "name: value", value squeezed and folded, with CRLF. */
static void
dsn_field(struct buf *out, const char *name, const struct buf *value)
{
	struct buf v;

	buf_init(&v);
	dsn_squeeze(&v, value->data, value->len);
	buf_printf(out, "%s: ", name);
	dsn_fold(out, strlen(name) + 2, v.data, v.len, DSN_FOLD_AT, NULL);
	buf_appends(out, "\r\n");
	buf_free(&v);
}

/* The header field "name: " prefix text, text made safe (ASCII). */
static void
dsn_field_text(struct buf *out, const char *name, const char *prefix, const char *text)
{
	struct buf v;

	buf_init(&v);
	buf_appends(&v, prefix);
	dsn_text(&v, text, strlen(text), 0);
	dsn_field(out, name, &v);
	buf_free(&v);
}

/* A body line of safe text, wrapped at DSN_LINE_MAX (continued with four
 * spaces), with CRLF. */
static void
dsn_body_wrap(struct buf *out, const struct buf *line)
{
	dsn_fold(out, 0, line->data, line->len, DSN_LINE_MAX, "    ");
	buf_appends(out, "\r\n");
}

/* Body text: s[0..len) made safe, indented by indent, wrapped. */
static void
dsn_body_line(struct buf *out, const char *indent, const char *s, size_t len, int utf8)
{
	struct buf line;

	buf_init(&line);
	buf_appends(&line, indent);
	dsn_text(&line, s, len, utf8);
	dsn_body_wrap(out, &line);
	buf_free(&line);
}

/* The next line of a reply (lines end in LF, maybe CR LF): its length in
 * *len, without the line end; NULL after the last one. */
static const char *
dsn_reply_line(const char **p, size_t *len)
{
	const char *line = *p;

	if (*line == '\0')
		return NULL;
	const char *eol = strchr(line, '\n');
	*len = eol ? (size_t)(eol - line) : strlen(line);
	*p = eol ? eol + 1 : line + *len;
	if (*len > 0 && line[*len - 1] == '\r')
		(*len)--;
	return line;
}

static void
dsn_random_hex(char *out, size_t outsz)
{
	unsigned char r[DSN_RANDOM_OCTETS];

	/* Without randomness the notice is not sent rather than sent with a
	 * boundary a sender could have guessed; the message stays queued. */
	if (RAND_bytes(r, sizeof(r)) != 1)
		fatalx("dsn: OpenSSL RAND_bytes failed: no random MIME boundary");
	for (size_t i = 0; i < sizeof(r) && 2 * i + 2 < outsz; i++)
		snprintf(out + 2 * i, outsz - 2 * i, "%02x", r[i]);
}

/* How often the boundary occurs in the notice. */
static size_t
dsn_boundary_count(const char *p, size_t len, const char *boundary)
{
	size_t n = 0, bl = strlen(boundary);

	for (const char *q = p; (q = memmem(q, len - (size_t)(q - p), boundary, bl)) != NULL; q++)
		n++;
	return n;
}

/* Copy the original message's header block (up to the first empty line). */
static void
dsn_copy_headers(struct buf *out, int fd, off_t off)
{
	char chunk[8192];
	int bol = 1;

	for (;;) {
		ssize_t n = pread(fd, chunk, sizeof(chunk), off);
		if (n <= 0)
			return;
		for (ssize_t i = 0; i < n; i++) {
			if (bol && chunk[i] == '\r' && i + 1 < n && chunk[i + 1] == '\n')
				return;
			if (bol && chunk[i] == '\n')
				return;
			buf_appendc(out, chunk[i]);
			bol = chunk[i] == '\n';
			if (out->len >= DSN_HEADERS_MAX)
				return;
		}
		off += n;
	}
}

/* Copy the whole original message into an empty buffer; 0, or -1 when it
 * could not be read in full. */
static int
dsn_copy_message(struct buf *out, int fd, off_t off, uint64_t size)
{
	char chunk[65536];
	uint64_t left = size;

	while (left > 0) {
		size_t want = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
		ssize_t n = pread(fd, chunk, want, off);
		if (n <= 0)
			return -1;
		buf_append(out, chunk, (size_t)n);
		off += n;
		left -= (uint64_t)n;
	}
	if (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2) != 0)
		buf_appends(out, "\r\n");
	return 0;
}

/* A value received as xtext, decoded when that is safe to show (RFC 3464
 * 2.2.1, 2.3.1), else as received. */
static const char *
dsn_shown(const char *xtext, char *tmp, size_t tmpsz)
{
	return dsn_xtext_decode(xtext, tmp, tmpsz) == 0 ? tmp : xtext;
}

void
dsn_address_field(struct buf *out, const char *addr)
{
	const unsigned char *p = (const unsigned char *)addr;
	size_t left = strlen(addr);
	int plain = 1;

	/* Printable ASCII as it is; anything else (UTF-8, and white space or
	 * controls that a header field can not carry) as utf-8-addr-xtext. */
	for (size_t i = 0; i < left; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			plain = 0;
	if (plain) {
		buf_printf(out, "rfc822; %s", addr);
		return;
	}
	buf_appends(out, "utf-8; ");
	while (left > 0) {
		uint32_t cp;
		/* QCHAR: %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e */
		if (*p >= 0x21 && *p <= 0x7e && *p != '+' && *p != '=' && *p != '\\') {
			buf_appendc(out, (char)*p++);
			left--;
			continue;
		}
		int len = utf8_decode(p, left, &cp);
		if (len < 0) {
			cp = *p;
			len = 1;
		}
		p += len;
		left -= (size_t)len;
		buf_printf(out, "\\x{%02X}", (unsigned)cp);
	}
}

static const char *const dsn_action_names[] = {
	[DSN_ACTION_FAILED] = "failed", [DSN_ACTION_DELAYED] = "delayed",
	[DSN_ACTION_DELIVERED] = "delivered", [DSN_ACTION_RELAYED] = "relayed",
};

static void
dsn_intro(struct buf *out, enum dsn_action kind)
{
	switch (kind) {
	case DSN_ACTION_DELAYED:
		buf_appends(out, "Your message could not be delivered yet. The mail system will keep\r\n"
		    "trying; you do not need to send it again.\r\n\r\n");
		break;
	case DSN_ACTION_DELIVERED:
	case DSN_ACTION_RELAYED:
		buf_appends(out, "You asked to be told when your message was delivered. It was\r\n"
		    "delivered, or, where it says \"relayed\", handed on to a system that does\r\n"
		    "not send delivery notifications: no further notice will come from there.\r\n\r\n");
		break;
	default:
		buf_appends(out, "Your message could not be delivered to one or more recipients.\r\n"
		    "The reply of the remote system is quoted in full below.\r\n\r\n");
		break;
	}
}

/* What one notice is about, worked out once for every part. */
struct dsn_job {
	const char		*host;		/* our name, made safe */
	const struct spool_env	*orig;
	const struct dsn_rcpt	*rcpts;
	size_t			 n;
	enum dsn_action		 kind;
	int			 utf8;		/* UTF-8 allowed in the text part */
	int			 too_big;	/* RET=FULL, but only headers go back */
	int			 whole;		/* copy is the whole message */
	const struct buf	*copy;		/* the original, or its headers */
	char			 boundary[DSN_BOUNDARY_SIZE];
};

static int
dsn_success(enum dsn_action kind)
{
	return kind == DSN_ACTION_DELIVERED || kind == DSN_ACTION_RELAYED;
}

/* To: the sender, when the address can stand in the field as it is
 * (printable; UTF-8 only when the notice travels as SMTPUTF8; short
 * enough); else the empty group: the envelope is what delivers. */
static void
dsn_to(struct buf *out, const char *from, int utf8)
{
	size_t len = strlen(from);
	int ok = len > 0 && len <= DSN_LINE_MAX - 8;

	for (size_t i = 0; ok && i < len; i++) {
		unsigned char c = (unsigned char)from[i];
		if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
			ok = 0;
	}
	if (ok && utf8 && !utf8_valid((const unsigned char *)from, len))
		ok = 0;
	if (ok)
		buf_printf(out, "To: <%s>\r\n", from);
	else
		buf_appends(out, "To: undisclosed-recipients:;\r\n");
}

static void
dsn_headers(struct buf *out, const struct dsn_job *j)
{
	char date[64], rnd[2 * DSN_RANDOM_OCTETS + 1];
	struct buf v;

	buf_init(&v);
	buf_printf(&v, "MAILER-DAEMON@%s (Mail Delivery System)", j->host);
	dsn_field(out, "From", &v);
	dsn_to(out, j->orig->from, j->orig->smtputf8);
	buf_printf(out, "Subject: %s\r\n", j->kind == DSN_ACTION_DELAYED ?
	    "Delayed Mail (still being retried)" : dsn_success(j->kind) ?
	    "Successful Mail Delivery Report" : "Undelivered Mail Returned to Sender");
	timeutil_rfc5322(date, sizeof(date), time(NULL));
	buf_printf(out, "Date: %s\r\n", date);
	/* Unique even for two notices about one message in one second. */
	dsn_random_hex(rnd, sizeof(rnd));
	buf_reset(&v);
	buf_appendc(&v, '<');
	dsn_text(&v, j->orig->id, strnlen(j->orig->id, sizeof(j->orig->id)), 0);
	buf_printf(&v, ".dsn.%.16s@%s>", rnd, j->host);
	dsn_field(out, "Message-ID", &v);
	buf_appends(out, "Auto-Submitted: auto-replied\r\n");
	buf_appends(out, "MIME-Version: 1.0\r\n");
	buf_printf(out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n\r\n", j->boundary);
	buf_appends(out, "This is a MIME-encapsulated message.\r\n\r\n");
	buf_free(&v);
}

/* The human-readable part: each recipient and its full reply, quoted. */
static void
dsn_notification(struct buf *out, const struct dsn_job *j)
{
	struct buf line;

	buf_printf(out, "--%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n%s\r\n", j->boundary,
	    j->utf8 ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	buf_printf(out, "This is the mail system at host %s.\r\n\r\n", j->host);
	dsn_intro(out, j->kind);
	if (j->too_big)
		buf_appends(out, "The message is too large to be returned in full; its headers follow.\r\n\r\n");
	buf_init(&line);
	for (size_t i = 0; i < j->n; i++) {
		const struct dsn_rcpt *r = &j->rcpts[i];
		buf_reset(&line);
		buf_appendc(&line, '<');
		dsn_text(&line, r->rcpt, strlen(r->rcpt), j->utf8);
		buf_appends(&line, ">: ");
		if (r->action == DSN_ACTION_RELAYED)
			buf_appends(&line, "relayed; ");
		if (r->remote_mta) {
			buf_appends(&line, "host ");
			dsn_text(&line, r->remote_mta, strlen(r->remote_mta), j->utf8);
		} else
			buf_appends(&line, "the mail system");
		buf_appends(&line, " said:");
		dsn_body_wrap(out, &line);
		const char *p = r->reply ? r->reply : "", *l;
		size_t len;
		while ((l = dsn_reply_line(&p, &len)) != NULL)
			dsn_body_line(out, "    ", l, len, j->utf8);
		buf_appends(out, "\r\n");
	}
	buf_free(&line);
}

/* Diagnostic-Code carries every line of the reply (RFC 3464 2.3.6), each
 * on a line of its own, folded where longer. */
static void
dsn_diagnostic(struct buf *out, const char *reply)
{
	struct buf text, line;
	const char *p = reply ? reply : "", *l;
	size_t len;
	int first = 1;

	buf_init(&text);
	buf_init(&line);
	while ((l = dsn_reply_line(&p, &len)) != NULL) {
		buf_reset(&text);
		buf_reset(&line);
		dsn_text(&text, l, len, 0);
		dsn_squeeze(&line, text.data, text.len);
		if (line.len == 0)
			continue;
		buf_appends(out, first ? "Diagnostic-Code: smtp; " : "\r\n    ");
		dsn_fold(out, first ? strlen("Diagnostic-Code: smtp; ") : 4, line.data, line.len,
		    DSN_FOLD_AT, NULL);
		first = 0;
	}
	if (!first)
		buf_appends(out, "\r\n");
	buf_free(&text);
	buf_free(&line);
}

static void
dsn_status_rcpt(struct buf *out, const struct dsn_rcpt *r)
{
	enum dsn_action a = r->action <= DSN_ACTION_RELAYED ? r->action : DSN_ACTION_FAILED;
	char shown[DSN_ORCPT_MAX + 1];
	struct buf v;

	buf_init(&v);
	buf_appends(out, "\r\n");
	if (r->orcpt) {
		/* "addr-type;xtext": the type as is, the address decoded. */
		const char *semi = strchr(r->orcpt, ';');
		if (semi) {
			dsn_text(&v, r->orcpt, (size_t)(semi - r->orcpt), 0);
			buf_appends(&v, "; ");
			const char *s = dsn_shown(semi + 1, shown, sizeof(shown));
			dsn_text(&v, s, strlen(s), 0);
			dsn_field(out, "Original-Recipient", &v);
		}
	}
	buf_reset(&v);
	dsn_address_field(&v, r->rcpt);
	dsn_field(out, "Final-Recipient", &v);
	dsn_field_text(out, "Action", "", dsn_action_names[a]);
	dsn_field_text(out, "Status", "", r->status ? r->status : "");
	if (r->remote_mta)
		dsn_field_text(out, "Remote-MTA", "dns; ", r->remote_mta);
	dsn_diagnostic(out, r->reply);
	buf_free(&v);
}

/* message/delivery-status (RFC 3464 2.1): per-message fields, then a
 * block per recipient. US-ASCII throughout. */
static void
dsn_status(struct buf *out, const struct dsn_job *j)
{
	char arrival[64], shown[DSN_ORCPT_MAX + 1];
	const struct spool_env *orig = j->orig;

	buf_printf(out, "--%s\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n", j->boundary);
	if (orig->envid)
		dsn_field_text(out, "Original-Envelope-Id", "",
		    dsn_shown(orig->envid, shown, sizeof(shown)));
	dsn_field_text(out, "Reporting-MTA", "dns; ", j->host);
	dsn_field_text(out, "X-Mxd-Queue-ID", "", orig->id);
	timeutil_rfc5322(arrival, sizeof(arrival), orig->created);
	buf_printf(out, "Arrival-Date: %s\r\n", arrival);
	for (size_t i = 0; i < j->n; i++)
		dsn_status_rcpt(out, &j->rcpts[i]);
	buf_appends(out, "\r\n");
}

/* The returned header block, each line made safe and at most
 * DSN_LINE_MAX long (folded). */
static void
dsn_returned_headers(struct buf *out, const struct buf *hdrs, int utf8)
{
	struct buf text;
	const char *p = hdrs->len ? hdrs->data : "", *l;
	size_t len;

	buf_init(&text);
	while ((l = dsn_reply_line(&p, &len)) != NULL) {
		buf_reset(&text);
		dsn_text(&text, l, len, utf8);
		dsn_fold(out, 0, text.data, text.len, DSN_LINE_MAX, NULL);
		buf_appends(out, "\r\n");
	}
	buf_free(&text);
}

/* The last part: the whole message (RET=FULL) or its headers. RFC 6533
 * 6.3, 6.4: UTF-8 headers go back as message/global*. */
static void
dsn_original(struct buf *out, const struct dsn_job *j)
{
	const struct spool_env *orig = j->orig;

	if (j->whole) {
		buf_printf(out, "--%s\r\nContent-Description: Undelivered Message\r\n"
		    "Content-Type: %s\r\n%s\r\n", j->boundary,
		    orig->smtputf8 ? "message/global" : "message/rfc822",
		    orig->body8bit || orig->smtputf8 ? "Content-Transfer-Encoding: 8bit\r\n" : "");
		buf_append(out, j->copy->data, j->copy->len);
	} else {
		buf_printf(out, "--%s\r\nContent-Description: %s\r\n"
		    "Content-Type: %s\r\n%s\r\n", j->boundary,
		    dsn_success(j->kind) ? "Message Headers" : "Undelivered Message Headers",
		    orig->smtputf8 ? "message/global-headers" : "text/rfc822-headers",
		    orig->smtputf8 ? "Content-Transfer-Encoding: 8bit\r\n" : "");
		dsn_returned_headers(out, j->copy, orig->smtputf8);
	}
	buf_printf(out, "\r\n--%s--\r\n", j->boundary);
}

void
dsn_build(struct buf *out, const char *hostname, const struct spool_env *orig,
    const struct dsn_rcpt *rcpts, size_t n, int fd, off_t off)
{
	struct dsn_job j;
	struct buf host, copy;

	memset(&j, 0, sizeof(j));
	j.kind = n > 0 && rcpts[0].action <= DSN_ACTION_RELAYED ? rcpts[0].action :
	    DSN_ACTION_FAILED;
	/* RFC 3461 4.3: RET concerns failure DSNs; without it, and for every
	 * other kind, the headers are returned. RFC 8689 5: never the body of
	 * a REQUIRETLS message, RET=FULL or not. */
	int full = j.kind == DSN_ACTION_FAILED && orig->ret == DSN_RET_FULL && fd >= 0 &&
	    !orig->requiretls;
	j.too_big = full && orig->size > DSN_RETURN_FULL_MAX;
	/* RFC 6531 3.7.4.2, RFC 6533: a notice that travels as SMTPUTF8 may
	 * quote a UTF-8 reply in its text; message/delivery-status stays
	 * US-ASCII (utf-8-addr-xtext, escaped diagnostics). */
	j.utf8 = orig->smtputf8;
	j.orig = orig;
	j.rcpts = rcpts;
	j.n = n;

	buf_init(&host);
	buf_init(&copy);
	dsn_text(&host, hostname, strlen(hostname), 0);
	j.host = host.len ? host.data : "";
	/* Unreadable now, or holding NUL (which no mail may carry, RFC 5322
	 * 2.3): the headers are what can go back. */
	j.whole = full && !j.too_big && dsn_copy_message(&copy, fd, off, orig->size) == 0 &&
	    memchr(copy.data, '\0', copy.len) == NULL;
	if (!j.whole) {
		buf_reset(&copy);
		if (fd >= 0)
			dsn_copy_headers(&copy, fd, off);
	}
	j.copy = &copy;

	/* RFC 2046 5.1.1: the boundary must not occur in what it encloses. It
	 * is random, so no sender can plant it; should the content hold it all
	 * the same, the notice is written again with another. */
	size_t mark = out->len;
	do {
		out->len = mark;
		memcpy(j.boundary, "=_mxd_", 6);
		dsn_random_hex(j.boundary + 6, sizeof(j.boundary) - 6);
		dsn_headers(out, &j);
		dsn_notification(out, &j);
		dsn_status(out, &j);
		dsn_original(out, &j);
	} while (dsn_boundary_count(out->data + mark, out->len - mark, j.boundary) !=
	    DSN_BOUNDARY_USES);
	buf_free(&copy);
	buf_free(&host);
}
