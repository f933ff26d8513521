#include "dsn.h"
#include "timeutil.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

void
dsn_build(struct buf *out, const char *hostname, const struct spool_env *orig,
    const struct dsn_rcpt *rcpts, size_t n, int fd, off_t off)
{
	char date[64], boundary[96], arrival[64];
	int delayed = n > 0 && rcpts[0].delayed;

	snprintf(boundary, sizeof(boundary), "%s.%lld/%s", orig->id, (long long)time(NULL), hostname);
	timeutil_rfc5322(date, sizeof(date), time(NULL));
	timeutil_rfc5322(arrival, sizeof(arrival), orig->created);

	buf_printf(out, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n", hostname);
	buf_printf(out, "To: <%s>\r\n", orig->from);
	buf_printf(out, "Subject: %s\r\n", delayed ? "Delayed Mail (still being retried)" :
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
	if (delayed)
		buf_appends(out, "Your message could not be delivered yet. The mail system will keep\r\n"
		    "trying; you do not need to send it again.\r\n\r\n");
	else
		buf_appends(out, "Your message could not be delivered to one or more recipients.\r\n"
		    "The reply of the remote system is quoted in full below.\r\n\r\n");
	for (size_t i = 0; i < n; i++) {
		buf_printf(out, "<%s>: %s%s%s said:\r\n", rcpts[i].rcpt,
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
	buf_printf(out, "Reporting-MTA: dns; %s\r\n", hostname);
	buf_printf(out, "X-Mxd-Queue-ID: %s\r\n", orig->id);
	buf_printf(out, "Arrival-Date: %s\r\n", arrival);
	for (size_t i = 0; i < n; i++) {
		buf_printf(out, "\r\nFinal-Recipient: rfc822; %s\r\n", rcpts[i].rcpt);
		buf_printf(out, "Action: %s\r\n", rcpts[i].delayed ? "delayed" : "failed");
		buf_printf(out, "Status: %s\r\n", rcpts[i].status);
		if (rcpts[i].remote_mta)
			buf_printf(out, "Remote-MTA: dns; %s\r\n", rcpts[i].remote_mta);
		/* Diagnostic-Code carries every line of the reply, folded. */
		buf_printf(out, "Diagnostic-Code: smtp;");
		const char *p = rcpts[i].reply ? rcpts[i].reply : "";
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
		buf_appends(out, "\r\n");
	}
	buf_appends(out, "\r\n");

	buf_printf(out, "--%s\r\nContent-Description: Undelivered Message Headers\r\n"
	    "Content-Type: text/rfc822-headers\r\n\r\n", boundary);
	if (fd >= 0)
		dsn_copy_headers(out, fd, off);
	buf_printf(out, "\r\n--%s--\r\n", boundary);
}
