/* controld: the rua lookup, SMTP submission and HTTPS POST of the TLS
 * reports we send (rptsend_net.h). */
#include "rptsend_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "log.h"
#include "smtp_reply.h"
#include "xmalloc.h"

static void
rptsend_net_fail(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

int
rptsend_net_rua(const struct dns_resolver *res, const char *domain, struct tlsrpt_txt **out,
    char *err, size_t errsz)
{
	char name[DNS_NAME_MAX];
	struct dns_txt_result txt;
	enum dns_result r;
	int rc;

	*out = NULL;
	snprintf(name, sizeof(name), "_smtp._tls.%s", domain);
	memset(&txt, 0, sizeof(txt));
	r = dns_txt(res, name, &txt);
	if (r == DNS_NODATA || r == DNS_NXDOMAIN) {
		dns_txt_result_free(&txt);
		return 0;
	}
	if (r != DNS_OK) {
		rptsend_net_fail(err, errsz, "TXT %s: %s%s%s", name, dns_result_str(r),
		    txt.st.error[0] ? ": " : "", txt.st.error);
		dns_txt_result_free(&txt);
		return -1;
	}
	rc = tlsrpt_txt_select_records((const char *const *)txt.txt, txt.len, txt.n, out, err,
	    errsz);
	dns_txt_result_free(&txt);
	if (rc == TLSRPT_TXT_OK && (*out)->n_usable > 0)
		return 1;
	tlsrpt_txt_free(*out);
	*out = NULL;
	return 0;
}

/* ---- SMTP ------------------------------------------------------------- */

struct rptsend_smtp {
	int		 fd;
	SSL_CTX		*ctx;
	SSL		*ssl;
	char		 rbuf[SMTP_REPLY_LINE_MAX];
	size_t		 rlen;
	const char	*peer;
};

static int
rptsend_smtp_connect(struct rptsend_smtp *s, const char *hostport, long long timeout,
    char *err, size_t errsz)
{
	char host[256], *port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai, *a;
	struct timeval tv = { (time_t)timeout, 0 };
	int rc;

	snprintf(host, sizeof(host), "%s", hostport);
	port = strrchr(host, ':');
	*port++ = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
		rptsend_net_fail(err, errsz, "submit %s: %s", hostport, gai_strerror(rc));
		return -1;
	}
	for (a = ai; a; a = a->ai_next) {
		if ((s->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0)) < 0)
			continue;
		setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(s->fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		rc = errno;
		close(s->fd);
		s->fd = -1;
		errno = rc;
	}
	freeaddrinfo(ai);
	if (s->fd < 0) {
		rptsend_net_fail(err, errsz, "submit %s: connect: %s", hostport, strerror(errno));
		return -1;
	}
	return 0;
}

static ssize_t
rptsend_smtp_io(struct rptsend_smtp *s, void *p, size_t len, int writing)
{
	if (s->ssl) {
		int n = writing ? SSL_write(s->ssl, p, (int)len) : SSL_read(s->ssl, p, (int)len);
		return n > 0 ? n : -1;
	}
	return writing ? send(s->fd, p, len, MSG_NOSIGNAL) : recv(s->fd, p, len, 0);
}

static int
rptsend_smtp_write(struct rptsend_smtp *s, const char *p, size_t len, char *err, size_t errsz)
{
	while (len > 0) {
		ssize_t n = rptsend_smtp_io(s, (void *)(uintptr_t)p, len, 1);
		if (n <= 0) {
			rptsend_net_fail(err, errsz, "submit %s: write: %s", s->peer,
			    errno ? strerror(errno) : "failed");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One reply; 0 with its code in *code (and its first line in err for
 * errors), -1 on an I/O or syntax failure. */
static int
rptsend_smtp_reply(struct rptsend_smtp *s, const char *what, int *code, char *err, size_t errsz)
{
	struct smtp_reply r;
	struct smtp_reply_parser rp;
	char one[600], q[LOG_QUOTE_SIZE(400)];
	size_t used;
	int rc;

	smtp_reply_init(&r);
	smtp_reply_parser_init(&rp, &r);
	for (;;) {
		rc = smtp_reply_parse(&rp, s->rbuf, s->rlen, &used);
		memmove(s->rbuf, s->rbuf + used, s->rlen - used);
		s->rlen -= used;
		if (rc != SMTP_REPLY_MORE)
			break;
		ssize_t n = s->rlen < sizeof(s->rbuf) ? rptsend_smtp_io(s, s->rbuf + s->rlen,
		    sizeof(s->rbuf) - s->rlen, 0) : -1;
		if (n <= 0) {
			rptsend_net_fail(err, errsz, "submit %s: %s: %s", s->peer, what,
			    n == 0 ? "connection closed" : "read failed or timed out");
			smtp_reply_free(&r);
			return -1;
		}
		s->rlen += (size_t)n;
	}
	if (rc != SMTP_REPLY_DONE) {
		rptsend_net_fail(err, errsz, "submit %s: %s: %s", s->peer, what,
		    smtp_reply_strerror(rc));
		smtp_reply_free(&r);
		return -1;
	}
	*code = r.code;
	smtp_reply_oneline(&r, one, sizeof(one));
	rptsend_net_fail(err, errsz, "submit %s: %s: %s", s->peer, what,
	    log_quote(q, sizeof(q), one, strlen(one), 400));
	s->rlen = 0;
	rc = strstr((const char *)r.text.data, "STARTTLS") != NULL;
	smtp_reply_free(&r);
	return rc;
}

/* Send line (CRLF added) and read the reply: 0 when its code is want's
 * class, -1 otherwise (err says what the server said). *offers_tls for EHLO. */
static int
rptsend_smtp_step(struct rptsend_smtp *s, const char *line, int want, int *offers_tls,
    char *err, size_t errsz)
{
	char cmd[1100];
	int code = 0, rc;

	if (line) {
		snprintf(cmd, sizeof(cmd), "%s\r\n", line);
		if (rptsend_smtp_write(s, cmd, strlen(cmd), err, errsz) < 0)
			return -1;
	}
	if ((rc = rptsend_smtp_reply(s, line ? line : "greeting", &code, err, errsz)) < 0)
		return -1;
	if (offers_tls)
		*offers_tls = rc;
	return code / 100 == want / 100 ? 0 : -1;
}

/* STARTTLS to our own mxd: encrypted, not authenticated (the submit
 * addresses are the operator's own hosts, named in controld.conf). */
static int
rptsend_smtp_starttls(struct rptsend_smtp *s, const char *host, char *err, size_t errsz)
{
	if (rptsend_smtp_step(s, "STARTTLS", 220, NULL, err, errsz) < 0)
		return -1;
	if ((s->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    (s->ssl = SSL_new(s->ctx)) == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
		rptsend_net_fail(err, errsz, "submit %s: TLS setup failed", s->peer);
		return -1;
	}
	unsigned char a[16];
	if (inet_pton(AF_INET, host, a) != 1 && inet_pton(AF_INET6, host, a) != 1)
		SSL_set_tlsext_host_name(s->ssl, host);	/* SNI carries names only (RFC 6066 3) */
	if (SSL_connect(s->ssl) != 1) {
		char e[256];
		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
		rptsend_net_fail(err, errsz, "submit %s: TLS handshake: %s", s->peer, e);
		SSL_free(s->ssl);
		s->ssl = NULL;
		return -1;
	}
	return 0;
}

/* The message dot-stuffed (RFC 5321 4.5.2), then CRLF.CRLF. */
static int
rptsend_smtp_data(struct rptsend_smtp *s, const char *msg, size_t len, char *err, size_t errsz)
{
	struct buf b;
	int rc;

	buf_init(&b);
	for (size_t i = 0; i < len; i++) {
		if (msg[i] == '.' && (i == 0 || msg[i - 1] == '\n'))
			buf_append(&b, ".", 1);
		buf_append(&b, msg + i, 1);
	}
	if (len < 2 || msg[len - 2] != '\r' || msg[len - 1] != '\n')
		buf_append(&b, "\r\n", 2);
	buf_append(&b, ".\r\n", 3);
	rc = rptsend_smtp_write(s, (const char *)b.data, b.len, err, errsz);
	buf_free(&b);
	return rc < 0 ? -1 : rptsend_smtp_step(s, NULL, 250, NULL, err, errsz);
}

static int
rptsend_smtp_session(struct rptsend_smtp *s, const char *hostport, const char *helo,
    const char *from, const char *to, const char *msg, size_t len, char *err, size_t errsz)
{
	char line[1100], host[256];
	int tls = 0;

	snprintf(host, sizeof(host), "%.*s", (int)(strrchr(hostport, ':') - hostport), hostport);
	snprintf(line, sizeof(line), "EHLO %s", helo);
	if (rptsend_smtp_step(s, NULL, 220, NULL, err, errsz) < 0 ||
	    rptsend_smtp_step(s, line, 250, &tls, err, errsz) < 0)
		return -1;
	if (tls && (rptsend_smtp_starttls(s, host, err, errsz) < 0 ||
	    rptsend_smtp_step(s, line, 250, NULL, err, errsz) < 0))
		return -1;
	snprintf(line, sizeof(line), "MAIL FROM:<%s>", from);
	if (rptsend_smtp_step(s, line, 250, NULL, err, errsz) < 0)
		return -1;
	snprintf(line, sizeof(line), "RCPT TO:<%s>", to);
	if (rptsend_smtp_step(s, line, 250, NULL, err, errsz) < 0 ||
	    rptsend_smtp_step(s, "DATA", 354, NULL, err, errsz) < 0 ||
	    rptsend_smtp_data(s, msg, len, err, errsz) < 0)
		return -1;
	(void)rptsend_smtp_step(s, "QUIT", 221, NULL, line, sizeof(line));
	return 0;
}

int
rptsend_net_smtp(const struct rptsend_config *cfg, const char *helo, const char *from,
    const char *to, const char *msg, size_t len, char *err, size_t errsz)
{
	if (cfg->nsubmit == 0) {
		rptsend_net_fail(err, errsz, "reports.send.submit is not set: no mxd to hand "
		    "mailed reports to");
		return -1;
	}
	for (size_t i = 0; i < cfg->nsubmit; i++) {
		struct rptsend_smtp s = { .fd = -1, .peer = cfg->submit[i] };
		int rc = rptsend_smtp_connect(&s, cfg->submit[i], cfg->timeout, err, errsz);
		if (rc == 0)
			rc = rptsend_smtp_session(&s, cfg->submit[i], helo, from, to, msg, len, err,
			    errsz);
		if (s.ssl) {
			SSL_shutdown(s.ssl);
			SSL_free(s.ssl);
		}
		SSL_CTX_free(s.ctx);
		if (s.fd >= 0)
			close(s.fd);
		if (rc == 0)
			return 0;
	}
	return -1;
}

/* ---- HTTPS ------------------------------------------------------------ */

static pthread_once_t rptsend_curl_once = PTHREAD_ONCE_INIT;

static void
rptsend_curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t
rptsend_curl_discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

int
rptsend_net_https(const struct rptsend_config *cfg, const char *url, const unsigned char *body,
    size_t len, char *err, size_t errsz)
{
	char cerr[CURL_ERROR_SIZE] = "", q[LOG_QUOTE_SIZE(200)];
	struct curl_slist *h = NULL;
	long status = 0;
	CURLcode rc;
	CURL *c;

	pthread_once(&rptsend_curl_once, rptsend_curl_init);
	if ((c = curl_easy_init()) == NULL) {
		rptsend_net_fail(err, errsz, "https: curl_easy_init failed");
		return -1;
	}
	h = curl_slist_append(h, "Content-Type: application/tlsrpt+gzip");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (cfg->https_ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, cfg->https_ca_file);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)cfg->timeout);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)cfg->timeout);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rptsend_curl_discard);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mxfleet-controld");
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK) {
		const char *e = cerr[0] ? cerr : curl_easy_strerror(rc);
		rptsend_net_fail(err, errsz, "https: %s", log_quote(q, sizeof(q), e, strlen(e), 200));
		return -1;
	}
	if (status >= 300 && status < 400) {
		rptsend_net_fail(err, errsz, "https: HTTP %ld: a redirect, not followed", status);
		return -1;
	}
	if (status < 200 || status >= 300) {
		rptsend_net_fail(err, errsz, "https: HTTP %ld", status);
		return -1;
	}
	return 0;
}
