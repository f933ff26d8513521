/* A blocking SMTP/LMTP client for the delivery process: one connection to a
 * next hop, STARTTLS when offered, full multi-line replies kept for logs and
 * DSNs. Every read and write is bounded by a timeout. */
#ifndef MXD_SMTP_CLIENT_H
#define MXD_SMTP_CLIENT_H

#include <openssl/ssl.h>
#include <stddef.h>

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

struct smtp_reply {
	int		code;		/* 0: no reply (I/O error, see text) */
	struct buf	text;		/* every line, "250-..." CRLF-separated */
};

struct smtp_client {
	int		 fd;
	SSL		*ssl;
	int		 lmtp;
	unsigned	 ext;
	int		 timeout_ms;
	char		 peer[300];	/* "host:port" or unix path, for logs */
	char		 tls_version[16];
	char		 tls_cipher[64];
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

/* Connect, read the greeting, EHLO/LHLO, STARTTLS when offered and allowed.
 * On failure r holds what the server said or what went wrong. */
int smtp_client_open(struct smtp_client *c, const struct mxd_nexthop *nh,
    const char *helo, SSL_CTX *tls, int timeout_ms, struct smtp_reply *r);
void smtp_client_close(struct smtp_client *c, int send_quit);

/* Queue a command (sent at the next flush or read). */
void smtp_client_cmd(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int smtp_client_flush(struct smtp_client *c);
int smtp_client_read_reply(struct smtp_client *c, struct smtp_reply *r);
/* Send message content from fd (CRLF lines), dot-stuffed, then ".". */
int smtp_client_send_data(struct smtp_client *c, int fd, off_t off);

#endif
