/* The I/O-free half of the SMTP server: command lines, paths and parameters,
 * and the DATA/BDAT content state machines. Bytes in, results out; nothing
 * here reads a socket, so all of it is fuzzed and unit-tested alone. */
#ifndef MXD_SMTP_PARSER_H
#define MXD_SMTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SMTP_LINE_MAX		2048	/* command line, CRLF included */
#define SMTP_PATH_MAX		256	/* RFC 5321 4.5.3.1.3 */
#define SMTP_LOCAL_MAX		64
#define SMTP_DOMAIN_MAX		255
#define SMTP_PARAMS_MAX		8

enum smtp_verb {
	SMTP_CMD_UNKNOWN = 0,
	SMTP_CMD_HELO, SMTP_CMD_EHLO, SMTP_CMD_LHLO, SMTP_CMD_MAIL, SMTP_CMD_RCPT,
	SMTP_CMD_DATA, SMTP_CMD_BDAT, SMTP_CMD_RSET, SMTP_CMD_NOOP, SMTP_CMD_QUIT,
	SMTP_CMD_VRFY, SMTP_CMD_EXPN, SMTP_CMD_HELP, SMTP_CMD_STARTTLS, SMTP_CMD_AUTH,
};

struct smtp_cmd {
	enum smtp_verb	 verb;
	const char	*name;	/* canonical verb text, "MAIL" */
	const char	*args;	/* after the verb and its separator; "" when none */
};

/* line excludes the line ending and is NUL-terminated at len. Never fails:
 * unknown verbs come back as SMTP_CMD_UNKNOWN. */
void smtp_parser_command(const char *line, size_t len, struct smtp_cmd *cmd);

/* MAIL FROM:/RCPT TO: argument: "FROM:<a@b> SIZE=1" (with the keyword).
 * Fills addr (without brackets; "" for the null path) and points *params at
 * what follows. Returns 0 or a negative smtp_parser_err. */
enum smtp_parser_err {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_SYNTAX = -1,		/* 501 5.5.4 / 5.1.7 */
	SMTP_PARSE_TOO_LONG = -2,	/* 501 5.1.3 */
	SMTP_PARSE_NEED_UTF8 = -3,	/* 553 5.6.7 non-ASCII without SMTPUTF8 */
	SMTP_PARSE_DUPLICATE = -4,	/* 501 5.5.4 a parameter given twice */
};
int smtp_parser_path(const char *arg, const char *keyword, int allow_empty,
    int allow_utf8, char *addr, size_t addrsz, const char **params);

struct smtp_param {
	char	key[32];
	char	value[SMTP_LINE_MAX];	/* any value a command line can carry, so
					   an overlong one is refused by name */
	int	has_value;
};
/* Parse "SIZE=100 BODY=8BITMIME"; returns the count or -1 on syntax error. */
int smtp_parser_params(const char *s, struct smtp_param *out, int max);

/* RFC 3461 parameters. For MAIL FROM: RET and ENVID; for RCPT TO: NOTIFY
 * and ORCPT. Returns 0 when p is none of them, 1 when it is and is good
 * (stored: *ret as DSN_RET_*, *envid and *orcpt pointing into p, *notify as
 * DSN_NOTIFY_* bits), SMTP_PARSE_DUPLICATE when it was already given (the
 * outputs start out as 0 / NULL), SMTP_PARSE_SYNTAX when malformed. */
int smtp_parser_dsn_mail(const struct smtp_param *p, int *ret, const char **envid);
int smtp_parser_dsn_rcpt(const struct smtp_param *p, unsigned *notify, const char **orcpt);

/* Does s hold a byte outside US-ASCII (UTF-8, RFC 6531)? */
int smtp_parser_has_utf8(const char *s);

/* Split "user@domain" at the last '@'. Returns the domain or NULL. */
const char *smtp_parser_domain(const char *addr);

/* Validate an EHLO/HELO argument: a domain or an address literal. */
int smtp_parser_helo_ok(const char *arg);

/* DATA content: CRLF lines, dot-stuffed, ended by <CRLF>.<CRLF> only.
 * Anything else that looks like an end (<LF>.<LF>, <CR>.<CR>, <LF>.<CRLF>,
 * <CRLF>.<LF> ...) and every bare LF or bare CR marks the message bad but
 * never ends it: the SMTP smuggling class is closed by construction. */
enum smtp_data_state {
	SMTP_DATA_BOL, SMTP_DATA_BOL_BARE, SMTP_DATA_TEXT, SMTP_DATA_CR,
	SMTP_DATA_DOT, SMTP_DATA_DOT_CR, SMTP_DATA_END,
};

#define SMTP_DATA_BARE_LF	0x01
#define SMTP_DATA_BARE_CR	0x02
#define SMTP_DATA_TOO_BIG	0x04

struct smtp_data {
	enum smtp_data_state	state;
	unsigned		flags;
	uint64_t		size;	/* content bytes after unstuffing */
	uint64_t		max;	/* 0: no cap */
};

void smtp_data_init(struct smtp_data *d, uint64_t max);
/* Consume input up to and including the end of data. Content goes to out
 * unless the message is already bad (then it is only scanned). Returns the
 * number of bytes consumed; d->state == SMTP_DATA_END when the end was seen. */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, struct buf *out);

/* BDAT chunks are not dot-stuffed, but the content will be relayed with DATA
 * later, so bare CR and LF are refused here as well. */
struct smtp_bdat {
	int		in_cr;
	unsigned	flags;
	uint64_t	size;
	uint64_t	max;
};
void smtp_bdat_init(struct smtp_bdat *b, uint64_t max);
void smtp_bdat_feed(struct smtp_bdat *b, const char *in, size_t len, struct buf *out);
/* At BDAT LAST: a chunk may not end in a CR without its LF. */
void smtp_bdat_finish(struct smtp_bdat *b);



#endif
