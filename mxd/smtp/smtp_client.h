/* A blocking SMTP/LMTP client for the delivery agents: one connection to a
 * next hop, STARTTLS when offered, full multi-line replies kept for logs and
 * DSNs.
 *
 * Every wait is bounded by a deadline, not by an idle timer: a server that
 * trickles a byte every few seconds gains nothing by it (struct
 * smtp_client_limits). A deadline that passes marks the connection broken
 * and comes back as a reply with code 0 and the text "451 4.4.2 timeout:
 * ..." naming what was not complete, after how long, and the peer. */
#ifndef MXD_SMTP_CLIENT_H
#define MXD_SMTP_CLIENT_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "buf.h"
#include "smtp_reply.h"
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

/* BDAT chunk size (RFC 3030): the message goes out in pieces this large. */
#define SMTP_BDAT_CHUNK		(1024 * 1024)

/* The deadlines of a connection, in milliseconds (docs/delivery.md,
 * "Deadlines and limits"; mxd sets them from delivery.*_timeout). */
struct smtp_client_limits {
	int	connect_ms;	/* TCP connect, per address */
	int	command_ms;	/* sending a command, and its whole reply: greeting,
				   EHLO, STARTTLS with the TLS handshake, AUTH,
				   MAIL, RCPT, DATA, a BDAT chunk, RSET; QUIT gets
				   at most 5 s */
	int	data_ms;	/* the reply to the end of the message ("." or
				   BDAT LAST; with LMTP each recipient's) */
	int	body_min_ms;	/* sending the message: this, plus ... */
	int	min_data_rate;	/* ... one second per min_data_rate bytes */
	int	transaction_ms;	/* connect (MAIL on a reused connection) to the
				   end-of-data reply, plus the message's share
				   (size / min_data_rate); 0: none */
};

/* A reply's deadline counts from when its command went out, or from the end
 * of the reply before it when that came later (pipelined commands: each
 * reply gets its own time, but no more). */

/* What the connection waits for, for the timeout reply. */
enum smtp_client_op {
	SMTP_OP_REPLY,		/* the reply to c->stage */
	SMTP_OP_SEND,		/* sending commands */
	SMTP_OP_TLS,		/* the TLS handshake */
	SMTP_OP_BODY,		/* sending the message */
};

/* A command sent whose reply is still to be read. */
struct smtp_client_pending {
	char	verb[12];	/* "MAIL", "end-of-data", ... */
	int	data;		/* answered within data_ms */
};

struct smtp_client {
	int		 fd;
	SSL		*ssl;
	int		 lmtp;
	unsigned	 ext;
	char		 auth_mechs[128];	/* as advertised: "PLAIN LOGIN" */
	struct smtp_client_limits lim;
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
	int		 greeted;	/* a whole greeting came (any code) */
	/* deadlines (monotonic ms) */
	uint64_t	 sent_ms;	/* the last write ended */
	uint64_t	 replied_ms;	/* the last reply was complete */
	uint64_t	 deadline_ms;	/* of the wait in progress (op) */
	uint64_t	 body_deadline_ms;	/* while the message goes out; 0 */
	uint64_t	 txn_start_ms, txn_deadline_ms;	/* 0: no transaction */
	int		 txn_fresh;	/* opened, no MAIL yet: counts from connect */
	int		 body_sent;	/* the next command ends the transaction */
	enum smtp_client_op op;
	char		 stage[12];	/* what the reply being read answers */
	int		 stage_data;
	char		 send_stage[12];	/* the last command queued */
	int		 timed_out;	/* 1: the op's deadline, 2: the transaction's */
	uint64_t	 body_size;	/* of the message being sent, for the reply */
	uint64_t	 body_ms;	/* ... and the time it has */
	struct smtp_client_pending *pend;	/* FIFO of unanswered commands */
	size_t		 npend, pend_head, pend_cap;
};

/* The limits as mxd's configuration sets them (delivery.*). */
void smtp_client_limits_config(struct smtp_client_limits *lim, const struct mxd_config *cfg);

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
 * when offered and allowed, each within lim. On failure r holds what the
 * server said or what went wrong; c->greeted says whether a server answered.
 * The transaction deadline starts here, before the connect. */
int smtp_client_open(struct smtp_client *c, const struct mxd_nexthop *nh,
    const char *helo, SSL_CTX *tls, const struct smtp_client_limits *lim,
    const struct smtp_client_source *src, struct smtp_reply *r);
void smtp_client_close(struct smtp_client *c, int send_quit);

/* Queue a command (sent at the next flush or read). Its reply is expected
 * in order. MAIL starts a transaction (on a reused connection its deadline
 * counts from now); RSET, QUIT, or any command after the message, ends it. */
void smtp_client_cmd(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int smtp_client_flush(struct smtp_client *c);
int smtp_client_read_reply(struct smtp_client *c, struct smtp_reply *r);
/* Send message content from fd (CRLF lines, to its end), dot-stuffed, then
 * ".", within body_min_ms plus a second per min_data_rate bytes. The next
 * reply read is the end-of-data reply (data_ms). 0, or -1 with r saying why
 * (code 0) and the connection broken. */
int smtp_client_send_data(struct smtp_client *c, int fd, off_t off, struct smtp_reply *r);

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
