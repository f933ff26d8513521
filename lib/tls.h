/* TLS contexts built from operator config: several certificates (RSA and ECDSA
 * side by side, others chosen by SNI), a minimum version, and session tickets
 * off unless asked for (strict STARTTLS clients abort on an early ticket). */
#ifndef MXFLEET_TLS_H
#define MXFLEET_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

struct tls_cert_spec {
	const char	*cert;	/* PEM chain, leaf first */
	const char	*key;
};

struct tls_server;

/* What a handshake got to, for the outcome record when it fails. */
struct tls_trace {
	int	last_in;	/* last handshake message type received, -1 none */
	int	last_out;	/* last handshake message type sent, -1 none */
	int	alert_in;	/* alert description received, -1 none */
	int	alert_out;	/* alert description sent, -1 none */
};

int tls_version_parse(const char *s);
const char *tls_version_name(int v);

int tls_server_new(struct tls_server **out, const struct tls_cert_spec *certs,
    size_t ncerts, int min_version, int session_tickets, char *err, size_t errsz);
void tls_server_free(struct tls_server *ts);
/* A new server-side SSL with tracing attached to trace (may be NULL). */
SSL *tls_server_ssl(struct tls_server *ts, struct tls_trace *trace);

SSL_CTX *tls_client_ctx_new(int min_version, char *err, size_t errsz);
/* A client SSL; sni is sent when it is a host name: not NULL, "" or an
 * IPv4/IPv6 literal (RFC 6066 3). SSL_get_servername tells what was set. */
SSL *tls_client_ssl(SSL_CTX *ctx, const char *sni, struct tls_trace *trace);

void tls_trace_init(struct tls_trace *t);
/* "client_hello", "server_finished", ... : the furthest step seen. */
const char *tls_trace_stage(const struct tls_trace *t);
/* Fill reason for a failed handshake: "alert_received:handshake_failure",
 * "eof", or the OpenSSL error text. */
void tls_trace_reason(const struct tls_trace *t, int saw_eof, unsigned long ossl_err,
    char *out, size_t outsz);
/* Drain OpenSSL's thread error queue into "lib:reason" text. */
void tls_error_string(char *out, size_t outsz);

#endif
