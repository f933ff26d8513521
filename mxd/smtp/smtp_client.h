/* A blocking SMTP/LMTP client for the delivery agents: one connection to a
 * next hop, STARTTLS when offered, full multi-line replies kept for logs and
 * DSNs. Every read and write is bounded by a timeout. */
#ifndef MXD_SMTP_CLIENT_H
#define MXD_SMTP_CLIENT_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "buf.h"
#include "mxd_config.h"

#define SMTP_EXT_PIPELINING	0x01
#define SMTP_EXT_STARTTLS	0x02
#define SMTP_EXT_8BITMIME	0x04
#define SMTP_EXT_SMTPUTF8	0x08
#define SMTP_EXT_SIZE		0x10
#define SMTP_EXT_CHUNKING	0x20
#define SMTP_EXT_REQUIRETLS	0x40
#define SMTP_EXT_DSN		0x80
#define SMTP_EXT_AUTH_PLAIN	0x100	/* "AUTH ... PLAIN ..." or "AUTH=... PLAIN" */

/* Limits on what a server may send as one reply. */
#define SMTP_REPLY_LINE_MAX	16384	/* a line, CRLF included, fits in this */
#define SMTP_REPLY_LINES_MAX	1000	/* continuation lines ("250-") */
#define SMTP_REPLY_TEXT_MAX	8192	/* text kept; later lines are dropped */

/* BDAT chunk size (RFC 3030): the message goes out in pieces this large. */
#define SMTP_BDAT_CHUNK		(1024 * 1024)

struct smtp_reply {
	int		code;		/* 0: no reply (I/O error, see text) */
	struct buf	text;		/* every line, "250-..." CRLF-separated */
};

struct smtp_client {
	int		 fd;
	SSL		*ssl;
	int		 lmtp;
	unsigned	 ext;
	char		 auth_mechs[128];	/* as advertised: "PLAIN LOGIN" */
	int		 timeout_ms;
	char		 peer[300];	/* "host:port" or unix path, for logs */
	char		 tls_version[16];
	char		 tls_cipher[64];
	char		 sni[256];	/* the SNI name sent; "" when none */
	char		 rbuf[16384];
	size_t		 rpos, rlen;
	struct buf	 wbuf;
	int		 broken;	/* the connection can not be reused */
	/* what the session looked like, for the outbound outcome record */
	int		 starttls_offered;
	int		 tls_failed;	/* the handshake failed: tls_fail says how */
	char		 tls_fail_stage[64];
	char		 tls_fail_reason[160];
	char		 greeting_name[256];	/* the server's name in its 220 */
	int		 verified;	/* PKIX-valid for the name asked (nh->verify) */
	int		 dane_usable;	/* TLSA records OpenSSL could use */
	int		 dane_ok;	/* the certificate matched one (RFC 7672) */
	long		 verify_result;	/* X509_V_OK or why not */
	char		 local_ip[64], remote_ip[64];
	int		 local_port, remote_port;
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

/* The local addresses connections come from (delivery.source_ipv4/6), per
 * family; a length of 0 lets the kernel pick. */
struct smtp_client_source {
	struct sockaddr_storage	v4, v6;
	socklen_t		v4len, v6len;
};
/* Fill src from literal addresses ("" or NULL: none). 0, or -1 when one is
 * not an address of its family. */
int smtp_client_source_set(struct smtp_client_source *src, const char *v4, const char *v6);

/* Connect (from src when given), read the greeting, EHLO/LHLO, STARTTLS
 * when offered and allowed. On failure r holds what the server said or
 * what went wrong. */
int smtp_client_open(struct smtp_client *c, const struct mxd_nexthop *nh,
    const char *helo, SSL_CTX *tls, int timeout_ms, const struct smtp_client_source *src,
    struct smtp_reply *r);
void smtp_client_close(struct smtp_client *c, int send_quit);

/* Queue a command (sent at the next flush or read). */
void smtp_client_cmd(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int smtp_client_flush(struct smtp_client *c);
int smtp_client_read_reply(struct smtp_client *c, struct smtp_reply *r);
/* Send message content from fd (CRLF lines), dot-stuffed, then ".". */
int smtp_client_send_data(struct smtp_client *c, int fd, off_t off);

/* SASL PLAIN (RFC 4954, 4616) with an initial response; an empty 334
 * challenge is answered with the same response. Only over TLS and only when
 * the server offers PLAIN. 0: authenticated (235, in r). -1: not
 * authenticated: r->code is the server's refusal, or 0 when nothing was sent
 * (no TLS, PLAIN not offered, user empty or user or password over 255 bytes)
 * or the exchange failed (I/O error, a challenge after the response; r->text
 * says which). The credentials never reach r->text: a server that
 * echoes them has them replaced with "********". */
int smtp_client_auth_plain(struct smtp_client *c, const char *user, const char *pass,
    struct smtp_reply *r);

/* CHUNKING (RFC 3030): send size bytes of fd from off, as they are (CRLF
 * lines, not dot-stuffed), in BDAT chunks of SMTP_BDAT_CHUNK, the last
 * "BDAT n LAST" ("BDAT 0 LAST" for an empty message). Every earlier
 * command's reply must have been read: the next reply is the first chunk's.
 * With PIPELINING up to 8 chunks go out unanswered, every reply to what was
 * sent is read, and the first refusal wins; without, each chunk waits for its
 * reply. A refused (non-2xx) chunk ends the transfer: the caller should RSET.
 * 0: a final reply was read and is in r (the LAST chunk's reply, or the first
 * refusal), whatever its code; with LMTP the other recipients' replies follow
 * and are the caller's to read. A server that refused and then hung up leaves
 * c->broken set. -1: I/O error, or fd ends before size bytes; r->text says
 * which (code 0) and the connection is marked broken. */
int smtp_client_send_bdat(struct smtp_client *c, int fd, off_t off, uint64_t size,
    struct smtp_reply *r);

#endif
