/* SMTP replies as a client reads them (RFC 5321 4.2): the I/O-free reply
 * parser (fuzzed by fuzz_smtp_reply) and the small helpers around struct
 * smtp_reply. Shared by mxd's delivery client (mxd/smtp/smtp_client.c) and
 * controld's live STARTTLS check (controld/dnscheck_probe.c). */
#ifndef MXFLEET_SMTP_REPLY_H
#define MXFLEET_SMTP_REPLY_H

#include <stddef.h>

#include "buf.h"

/* Limits on what a server may send as one reply. */
#define SMTP_REPLY_LINE_MAX	16384	/* a line, CRLF included, fits in this */
#define SMTP_REPLY_LINES_MAX	1000	/* continuation lines ("250-") */
#define SMTP_REPLY_TEXT_MAX	8192	/* text kept; later lines are dropped */

struct smtp_reply {
	int		code;		/* 0: no reply (I/O error, see text) */
	struct buf	text;		/* every line, "250-..." CRLF-separated */
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_free(struct smtp_reply *r);
/* Set an I/O failure as the reply ("connect to x: refused"). */
void smtp_reply_set_error(struct smtp_reply *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The reply on one line, lines joined by " / ", for logs. */
const char *smtp_reply_oneline(const struct smtp_reply *r, char *out, size_t outsz);

/* Reply parsing, no I/O: bytes go in as they arrive, complete lines come
 * out into the reply. One parser per reply. */
struct smtp_reply_parser {
	struct smtp_reply	*r;	/* filled line by line */
	unsigned		 lines;	/* continuation lines so far */
};

enum smtp_reply_status {
	SMTP_REPLY_DONE		=  1,	/* the last line was taken */
	SMTP_REPLY_MORE		=  0,	/* every complete line was taken: feed more */
	SMTP_REPLY_ESYNTAX	= -1,	/* not "ddd", "ddd text" or "ddd-text", 2xx..5xx */
	SMTP_REPLY_ECODE	= -2,	/* a line's code differs from the first line's */
	SMTP_REPLY_ELONG	= -3,	/* a line does not fit in SMTP_REPLY_LINE_MAX */
	SMTP_REPLY_ELINES	= -4,	/* more than SMTP_REPLY_LINES_MAX continuations */
};

/* Start parsing a reply into r (emptied). */
void smtp_reply_parser_init(struct smtp_reply_parser *p, struct smtp_reply *r);
/* Take the complete lines of buf[0..len): each goes into r->text (CR
 * stripped, LF-terminated, up to SMTP_REPLY_TEXT_MAX) and sets r->code. A
 * line ends at LF; a CR before it is optional.
 * DONE: *consumed is the end of the last line; later bytes are the next
 * reply's. MORE: *consumed is the end of the last complete line; call again
 * with what follows plus new bytes. An error: *consumed is where the line at
 * fault starts; the reply is unusable (r->code is 0). */
int smtp_reply_parse(struct smtp_reply_parser *p, const char *buf, size_t len,
    size_t *consumed);
/* What a negative smtp_reply_parse result means, for an error reply. */
const char *smtp_reply_strerror(int rc);

/* One line of a server reply: "250-text" or "250 text". Returns 0 with the
 * code, whether more lines follow, and the text; -1 when malformed. */
int smtp_reply_line(const char *line, size_t len, int *code, int *more, const char **text);

#endif
