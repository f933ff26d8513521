#include "dsn.h"
#include "smtp_parser.h"
#include "timeutil.h"
#include "utf8.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int
dsn_hexdigit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

int
dsn_xtext_ok(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			if (i + 2 >= len || !dsn_hexdigit(s[i + 1]) || !dsn_hexdigit(s[i + 2]))
				return 0;
			i += 2;
		} else if (c < '!' || c > '~' || c == '=')
			return 0;
	}
	return 1;
}

int
dsn_envid_ok(const char *s, size_t len)
{
	return len <= DSN_ENVID_MAX && dsn_xtext_ok(s, len);
}

int
dsn_orcpt_ok(const char *s, size_t len)
{
	const char *semi = memchr(s, ';', len);
	if (len > DSN_ORCPT_MAX || semi == NULL || semi == s)
		return 0;
	/* addr-type: an atom (RFC 5322 atext), as "rfc822" or "utf-8". */
	for (const char *p = s; p < semi; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\0' || !(isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL))
			return 0;
	}
	return dsn_xtext_ok(semi + 1, len - (size_t)(semi + 1 - s));
}

static const struct {
	const char	*name;
	unsigned	 bit;
} dsn_notify_names[] = {
	{ "SUCCESS", DSN_NOTIFY_SUCCESS }, { "FAILURE", DSN_NOTIFY_FAILURE },
	{ "DELAY", DSN_NOTIFY_DELAY }, { "NEVER", DSN_NOTIFY_NEVER },
};

int
dsn_notify_parse(const char *s, size_t len, unsigned *out)
{
	unsigned bits = 0;
	size_t i = 0;

	while (i <= len) {
		size_t j = i;
		while (j < len && s[j] != ',')
			j++;
		unsigned bit = 0;
		for (size_t k = 0; k < sizeof(dsn_notify_names) / sizeof(dsn_notify_names[0]); k++) {
			const char *n = dsn_notify_names[k].name;
			if (strlen(n) == j - i && strncasecmp(s + i, n, j - i) == 0)
				bit = dsn_notify_names[k].bit;
		}
		if (bit == 0)
			return -1;	/* unknown or empty item */
		bits |= bit;
		i = j + 1;
	}
	/* RFC 3461 4.1: NEVER excludes the others. */
	if ((bits & DSN_NOTIFY_NEVER) && bits != DSN_NOTIFY_NEVER)
		return -1;
	*out = bits;
	return 0;
}

void
dsn_notify_format(unsigned notify, char *out, size_t outsz)
{
	size_t len = 0;

	if (outsz == 0)
		return;
	out[0] = '\0';
	for (size_t k = 0; k < sizeof(dsn_notify_names) / sizeof(dsn_notify_names[0]); k++) {
		if (!(notify & dsn_notify_names[k].bit))
			continue;
		int w = snprintf(out + len, outsz - len, "%s%s", len ? "," : "",
		    dsn_notify_names[k].name);
		if (w < 0 || (size_t)w >= outsz - len) {
			out[len] = '\0';
			return;
		}
		len += (size_t)w;
	}
}

int
dsn_xtext_decode(const char *s, char *out, size_t outsz)
{
	size_t n = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '+' && dsn_hexdigit(s[1]) && dsn_hexdigit(s[2])) {
			char hex[3] = { s[1], s[2], '\0' };
			c = (unsigned char)strtoul(hex, NULL, 16);
			s += 2;
		}
		/* Shown in a header field: nothing that could end or fold it. */
		if (c < ' ' || c > '~' || n + 1 >= outsz)
			return -1;
		out[n++] = (char)c;
	}
	if (outsz == 0)
		return -1;
	out[n] = '\0';
	return 0;
}

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

/* Copy the original message's header block (up to the first empty line). */
static void
dsn_copy_headers(struct buf *out, int fd, off_t off)
{
	char chunk[8192];
	size_t total = 0;
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
			/* A header block larger than this is not worth returning. */
			if (++total > 65536)
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

	if (!smtp_parser_has_utf8(addr)) {
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
		buf_printf(out, "\\x{%X}", (unsigned)cp);
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

void
dsn_build(struct buf *out, const char *hostname, const struct spool_env *orig,
    const struct dsn_rcpt *rcpts, size_t n, int fd, off_t off)
{
	char date[64], boundary[96], arrival[64], shown[DSN_ORCPT_MAX + 1];
	enum dsn_action kind = n > 0 && rcpts[0].action <= DSN_ACTION_RELAYED ? rcpts[0].action :
	    DSN_ACTION_FAILED;
	int success = kind == DSN_ACTION_DELIVERED || kind == DSN_ACTION_RELAYED;
	/* RFC 3461 4.3: RET concerns failure DSNs; without it, and for every
	 * other kind, the headers are returned. RFC 8689 5: never the body of
	 * a REQUIRETLS message, RET=FULL or not. */
	int full = kind == DSN_ACTION_FAILED && orig->ret == DSN_RET_FULL && fd >= 0 &&
	    !orig->requiretls;
	int too_big = full && orig->size > DSN_RETURN_FULL_MAX;

	snprintf(boundary, sizeof(boundary), "%s.%lld/%s", orig->id, (long long)time(NULL), hostname);
	timeutil_rfc5322(date, sizeof(date), time(NULL));
	timeutil_rfc5322(arrival, sizeof(arrival), orig->created);

	buf_printf(out, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n", hostname);
	buf_printf(out, "To: <%s>\r\n", orig->from);
	buf_printf(out, "Subject: %s\r\n", kind == DSN_ACTION_DELAYED ?
	    "Delayed Mail (still being retried)" : success ? "Successful Mail Delivery Report" :
	    "Undelivered Mail Returned to Sender");
	buf_printf(out, "Date: %s\r\n", date);
	buf_printf(out, "Message-ID: <%s.dsn.%lld@%s>\r\n", orig->id, (long long)time(NULL), hostname);
	buf_appends(out, "Auto-Submitted: auto-replied\r\n");
	buf_appends(out, "MIME-Version: 1.0\r\n");
	buf_printf(out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n\r\n", boundary);
	buf_appends(out, "This is a MIME-encapsulated message.\r\n\r\n");

	buf_printf(out, "--%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n", boundary);
	buf_printf(out, "This is the mail system at host %s.\r\n\r\n", hostname);
	dsn_intro(out, kind);
	if (too_big)
		buf_appends(out, "The message is too large to be returned in full; its headers follow.\r\n\r\n");
	for (size_t i = 0; i < n; i++) {
		buf_printf(out, "<%s>: %s%s%s%s said:\r\n", rcpts[i].rcpt,
		    rcpts[i].action == DSN_ACTION_RELAYED ? "relayed; " : "",
		    rcpts[i].remote_mta ? "host " : "", rcpts[i].remote_mta ? rcpts[i].remote_mta : "",
		    rcpts[i].remote_mta ? "" : "the mail system");
		const char *p = rcpts[i].reply ? rcpts[i].reply : "";
		while (*p) {
			const char *eol = strchr(p, '\n');
			size_t len = eol ? (size_t)(eol - p) : strlen(p);
			if (len && p[len - 1] == '\r')
				len--;
			buf_printf(out, "    %.*s\r\n", (int)len, p);
			p = eol ? eol + 1 : p + len;
		}
		buf_appends(out, "\r\n");
	}

	buf_printf(out, "--%s\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n", boundary);
	if (orig->envid)
		buf_printf(out, "Original-Envelope-Id: %s\r\n", dsn_shown(orig->envid, shown, sizeof(shown)));
	buf_printf(out, "Reporting-MTA: dns; %s\r\n", hostname);
	buf_printf(out, "X-Mxd-Queue-ID: %s\r\n", orig->id);
	buf_printf(out, "Arrival-Date: %s\r\n", arrival);
	for (size_t i = 0; i < n; i++) {
		enum dsn_action a = rcpts[i].action <= DSN_ACTION_RELAYED ? rcpts[i].action :
		    DSN_ACTION_FAILED;
		buf_appends(out, "\r\n");
		if (rcpts[i].orcpt) {
			/* "addr-type;xtext": the type as is, the address decoded. */
			const char *semi = strchr(rcpts[i].orcpt, ';');
			if (semi)
				buf_printf(out, "Original-Recipient: %.*s; %s\r\n",
				    (int)(semi - rcpts[i].orcpt), rcpts[i].orcpt,
				    dsn_shown(semi + 1, shown, sizeof(shown)));
		}
		buf_appends(out, "Final-Recipient: ");
		dsn_address_field(out, rcpts[i].rcpt);
		buf_appends(out, "\r\n");
		buf_printf(out, "Action: %s\r\n", dsn_action_names[a]);
		buf_printf(out, "Status: %s\r\n", rcpts[i].status);
		if (rcpts[i].remote_mta)
			buf_printf(out, "Remote-MTA: dns; %s\r\n", rcpts[i].remote_mta);
		/* Diagnostic-Code carries every line of the reply, folded. */
		const char *p = rcpts[i].reply ? rcpts[i].reply : "";
		if (*p)
			buf_printf(out, "Diagnostic-Code: smtp;");
		int first = 1;
		while (*p) {
			const char *eol = strchr(p, '\n');
			size_t len = eol ? (size_t)(eol - p) : strlen(p);
			if (len && p[len - 1] == '\r')
				len--;
			buf_printf(out, "%s%.*s", first ? " " : "\r\n    ", (int)len, p);
			first = 0;
			p = eol ? eol + 1 : p + len;
		}
		if (!first)
			buf_appends(out, "\r\n");
	}
	buf_appends(out, "\r\n");

	if (full && !too_big) {
		struct buf whole;
		buf_init(&whole);
		/* Unreadable now: the headers below are what can be had. */
		if (dsn_copy_message(&whole, fd, off, orig->size) == 0) {
			buf_printf(out, "--%s\r\nContent-Description: Undelivered Message\r\n"
			    "Content-Type: %s\r\n%s\r\n", boundary,
			    orig->smtputf8 ? "message/global" : "message/rfc822",
			    orig->body8bit || orig->smtputf8 ? "Content-Transfer-Encoding: 8bit\r\n" : "");
			buf_append(out, whole.data, whole.len);
			buf_printf(out, "\r\n--%s--\r\n", boundary);
			buf_free(&whole);
			return;
		}
		buf_free(&whole);
	}
	/* RFC 6533 6.3, 6.4: UTF-8 headers go back as message/global*. */
	buf_printf(out, "--%s\r\nContent-Description: %s\r\n"
	    "Content-Type: %s\r\n%s\r\n", boundary,
	    success ? "Message Headers" : "Undelivered Message Headers",
	    orig->smtputf8 ? "message/global-headers" : "text/rfc822-headers",
	    orig->smtputf8 ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	if (fd >= 0)
		dsn_copy_headers(out, fd, off);
	buf_printf(out, "\r\n--%s--\r\n", boundary);
}
