/* The live STARTTLS of dns check: connect, 220, EHLO, STARTTLS, handshake
 * with the MX name as SNI, keep the certificate. No verification: the point
 * is to see what a sender is served and compare it with the names and the
 * TLSA records (dnscheck_host.c). Replies are read with the delivery
 * client's parser (lib/smtp_reply.c, fuzzed by fuzz_smtp_reply). One
 * deadline for the whole probe. */
#include "dnscheck_int.h"
#include "log.h"
#include "smtp_reply.h"
#include "tls.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct probe_conn {
	int		 fd;
	int64_t		 deadline;	/* CLOCK_MONOTONIC ms */
	char		 rbuf[SMTP_REPLY_LINE_MAX];
	size_t		 rlen;
	const char	*peer;
};

static int64_t
probe_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void __attribute__((format(printf, 2, 3)))
probe_fail(struct dnscheck_probe *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->fail, sizeof(p->fail), fmt, ap);
	va_end(ap);
}

/* Wait for events on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int
probe_wait(struct probe_conn *pc, short events)
{
	for (;;) {
		int64_t left = pc->deadline - probe_now_ms();
		struct pollfd pfd = { .fd = pc->fd, .events = events };
		if (left <= 0)
			return 0;
		int n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static int
probe_connect(struct probe_conn *pc, const char *ip, unsigned port, struct dnscheck_probe *p)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int err = 0;
	socklen_t el = sizeof(err);

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in6);
	} else if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in);
	} else {
		probe_fail(p, "%s is not an IP address", ip);
		return -1;
	}
	pc->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pc->fd < 0) {
		probe_fail(p, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(pc->fd, (struct sockaddr *)&ss, sl) == 0)
		return 0;
	if (errno != EINPROGRESS) {
		probe_fail(p, "connect to %s: %s", pc->peer, strerror(errno));
		return -1;
	}
	int w = probe_wait(pc, POLLOUT);
	if (w <= 0) {
		probe_fail(p, "connect to %s: %s", pc->peer, w == 0 ? "timed out" : strerror(errno));
		return -1;
	}
	if (getsockopt(pc->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
		probe_fail(p, "connect to %s: %s", pc->peer, strerror(err ? err : errno));
		return -1;
	}
	return 0;
}

static int
probe_send(struct probe_conn *pc, const char *line, struct dnscheck_probe *p)
{
	size_t len = strlen(line), off = 0;

	while (off < len) {
		ssize_t n = send(pc->fd, line + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR) && probe_wait(pc, POLLOUT) > 0)
			continue;
		probe_fail(p, "%s: sending %.*s: %s", pc->peer, (int)strcspn(line, "\r"), line,
		    n < 0 ? strerror(errno) : "timed out");
		return -1;
	}
	return 0;
}

/* Read one whole reply into r; 0, or -1 with p->fail set. Bytes after the
 * reply are kept for the next (a server may pipeline nothing here, but a
 * stray line must not be lost silently: it ends up in the next reply). */
static int
probe_reply(struct probe_conn *pc, const char *what, struct smtp_reply *r,
    struct dnscheck_probe *p)
{
	struct smtp_reply_parser rp;
	size_t used = 0;

	smtp_reply_parser_init(&rp, r);
	for (;;) {
		size_t consumed = 0;
		int rc = smtp_reply_parse(&rp, pc->rbuf + used, pc->rlen - used, &consumed);
		used += consumed;
		if (rc == SMTP_REPLY_DONE) {
			memmove(pc->rbuf, pc->rbuf + used, pc->rlen - used);
			pc->rlen -= used;
			return 0;
		}
		if (rc < 0) {
			probe_fail(p, "%s: %s: %s", pc->peer, what, smtp_reply_strerror(rc));
			return -1;
		}
		memmove(pc->rbuf, pc->rbuf + used, pc->rlen - used);
		pc->rlen -= used;
		used = 0;
		if (pc->rlen == sizeof(pc->rbuf)) {
			probe_fail(p, "%s: %s: %s", pc->peer, what,
			    smtp_reply_strerror(SMTP_REPLY_ELONG));
			return -1;
		}
		int w = probe_wait(pc, POLLIN);
		ssize_t n = w > 0 ? recv(pc->fd, pc->rbuf + pc->rlen,
		    sizeof(pc->rbuf) - pc->rlen, 0) : -1;
		if (n > 0) {
			pc->rlen += (size_t)n;
			continue;
		}
		if (n < 0 && w > 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		probe_fail(p, "%s: %s: %s", pc->peer, what, w == 0 ? "timed out" :
		    n == 0 ? "connection closed" : strerror(errno));
		return -1;
	}
}

/* Send cmd (NULL: none, for the greeting) and read its reply; want: the
 * reply code that lets the probe go on. */
static int
probe_step(struct probe_conn *pc, const char *cmd, const char *what, int want,
    struct smtp_reply *r, struct dnscheck_probe *p)
{
	char one[512], q[700];

	if (cmd != NULL && probe_send(pc, cmd, p) != 0)
		return -1;
	if (probe_reply(pc, what, r, p) != 0)
		return -1;
	if (r->code != want) {
		smtp_reply_oneline(r, one, sizeof(one));
		probe_fail(p, "%s: %s: %s", pc->peer, what,
		    log_quote(q, sizeof(q), one, strlen(one), 200));
		return -1;
	}
	return 0;
}

int
dnscheck_probe_has_starttls(const char *text, size_t len)
{
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		/* "250-STARTTLS" or "250 STARTTLS", trailing space allowed. */
		if (l >= 12 && strncasecmp(p + 4, "STARTTLS", 8) == 0 &&
		    (l == 12 || p[12] == ' ' || p[12] == '\r'))
			return 1;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return 0;
}

static void
probe_digest(const unsigned char *der, int len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	out[0] = '\0';
	if (len <= 0 || !EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL))
		return;
	dnscheck_hex(md, mdlen, out);
}

/* The names, keys and expiry of the leaf, as mxd describes its own
 * (lib/tlsid.c), and the whole certificate's digest (TLSA 3 0 1). */
static void
probe_keep_cert(X509 *x, struct dnscheck_probe *p, const char *peer)
{
	unsigned char *der = NULL;
	char err[160];
	int len;

	if (tlsid_cert_describe(x, &p->id, err, sizeof(err)) != 0) {
		probe_fail(p, "%s: %s", peer, err);
		return;
	}
	len = i2d_X509(x, &der);
	probe_digest(der, len, p->full);
	OPENSSL_free(der);
	p->ok = 1;
}

static void
probe_tls(struct probe_conn *pc, const char *sni, struct dnscheck_probe *p)
{
	char err[256];
	SSL_CTX *ctx = tls_client_ctx_new(TLS1_2_VERSION, err, sizeof(err));
	SSL *ssl = NULL;

	if (ctx == NULL) {
		probe_fail(p, "TLS context: %s", err);
		return;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	ssl = tls_client_ssl(ctx, sni, NULL);
	if (ssl == NULL || !SSL_set_fd(ssl, pc->fd)) {
		tls_error_string(err, sizeof(err));
		probe_fail(p, "TLS: %s", err);
		goto out;
	}
	for (;;) {
		ERR_clear_error();
		int rc = SSL_connect(ssl), e = SSL_get_error(ssl, rc);
		if (rc == 1)
			break;
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
		    probe_wait(pc, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT) > 0)
			continue;
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			snprintf(err, sizeof(err), "timed out");
		else
			tls_error_string(err, sizeof(err));
		probe_fail(p, "%s: TLS handshake (SNI %s): %s", pc->peer, sni,
		    err[0] ? err : "connection closed");
		goto out;
	}
	X509 *x = SSL_get1_peer_certificate(ssl);
	if (x == NULL)
		probe_fail(p, "%s: the server sent no certificate", pc->peer);
	else
		probe_keep_cert(x, p, pc->peer);
	X509_free(x);
	SSL_shutdown(ssl);
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

void
dnscheck_probe_run(const char *ip, unsigned port, const char *sni, const char *helo,
    int timeout_ms, struct dnscheck_probe *out)
{
	struct probe_conn *pc = xcalloc(1, sizeof(*pc));	/* its buffer is 16 KiB */
	struct smtp_reply r;
	char peer[80], ehlo[300];

	memset(out, 0, sizeof(*out));
	snprintf(peer, sizeof(peer), strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, port);
	pc->peer = peer;
	pc->fd = -1;
	pc->deadline = probe_now_ms() + (timeout_ms > 0 ? timeout_ms : DNSCHECK_SMTP_MS);
	smtp_reply_init(&r);
	snprintf(ehlo, sizeof(ehlo), "EHLO %s\r\n", helo);
	if (probe_connect(pc, ip, port, out) != 0 ||
	    probe_step(pc, NULL, "greeting", 220, &r, out) != 0 ||
	    probe_step(pc, ehlo, "EHLO", 250, &r, out) != 0)
		goto done;
	if (!dnscheck_probe_has_starttls(r.text.data, r.text.len)) {
		probe_send(pc, "QUIT\r\n", out);
		out->no_starttls = 1;
		probe_fail(out, "%s: STARTTLS is not offered after EHLO", peer);
		goto done;
	}
	if (probe_step(pc, "STARTTLS\r\n", "STARTTLS", 220, &r, out) != 0)
		goto done;
	probe_tls(pc, sni, out);
done:
	smtp_reply_free(&r);
	if (pc->fd >= 0)
		close(pc->fd);
	free(pc);
}

void
dnscheck_probe_free(struct dnscheck_probe *p)
{
	tlsid_cert_clear(&p->id);
	p->ok = 0;
}
