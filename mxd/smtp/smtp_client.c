#include "smtp_client.h"
#include "smtp_parser.h"
#include "dns.h"
#include "log.h"
#include "netaddr.h"
#include "timeutil.h"
#include "tls.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>


void
smtp_client_limits_config(struct smtp_client_limits *lim, const struct mxd_config *cfg)
{
	lim->connect_ms = cfg->smtp_connect_timeout * 1000;
	lim->command_ms = cfg->smtp_command_timeout * 1000;
	lim->data_ms = cfg->smtp_data_timeout * 1000;
	/* RFC 5321 4.5.3.2.5: a data block within 3 minutes; Postfix's
	 * smtp_data_xfer_timeout is the same 180 s. */
	lim->body_min_ms = 180 * 1000;
	lim->min_data_rate = cfg->smtp_min_data_rate;
	lim->transaction_ms = cfg->smtp_transaction_timeout * 1000;
}

/* Milliseconds left until the deadline of the operation in progress, or
 * the transaction's when that comes first; -1 with errno ETIMEDOUT (and
 * c->timed_out saying whose, the connection broken) once it has passed. */
static int64_t
smtp_client_left(struct smtp_client *c)
{
	uint64_t now = timeutil_mono_ms(), until = c->deadline_ms;
	int txn = c->txn_deadline_ms != 0 && c->txn_deadline_ms < until;
	if (txn)
		until = c->txn_deadline_ms;
	if (now < until)
		return (int64_t)(until - now);
	c->timed_out = txn ? 2 : 1;
	c->broken = 1;
	errno = ETIMEDOUT;
	return -1;
}

/* Wait for events until smtp_client_left says the time is up. */
static int
smtp_client_wait(struct smtp_client *c, short events)
{
	struct pollfd p = { c->fd, events, 0 };
	int64_t left;
	while ((left = smtp_client_left(c)) >= 0) {
		int r = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
	return -1;
}

/* "0.5 s", "300 s" */
static const char *
smtp_client_secs(int ms, char *out, size_t outsz)
{
	if (ms % 1000 == 0)
		snprintf(out, outsz, "%d s", ms / 1000);
	else
		snprintf(out, outsz, "%.1f s", ms / 1000.0);
	return out;
}

/* The reply for a deadline that passed (c->timed_out), as a deferral. */
static void
smtp_client_timeout_reply(struct smtp_client *c, struct smtp_reply *r)
{
	char t[32], what[64];
	const char *stage = c->op == SMTP_OP_SEND ? c->send_stage : c->stage;

	switch (c->op) {
	case SMTP_OP_REPLY:
		if (strcmp(stage, "greeting") == 0)
			snprintf(what, sizeof(what), "greeting");
		else
			snprintf(what, sizeof(what), "%s answer", stage[0] ? stage : "command");
		break;
	case SMTP_OP_SEND:
		snprintf(what, sizeof(what), "%s command", stage[0] ? stage : "a");
		break;
	case SMTP_OP_TLS:
		snprintf(what, sizeof(what), "TLS handshake");
		break;
	case SMTP_OP_BODY:
		snprintf(what, sizeof(what), "message");
		break;
	}
	if (c->timed_out == 2)
		smtp_reply_set_error(r, "451 4.4.2 timeout: transaction with %s not complete after "
		    "%s (%s)", c->peer, smtp_client_secs((int)(c->txn_deadline_ms - c->txn_start_ms),
		    t, sizeof(t)), what);
	else if (c->op == SMTP_OP_BODY)
		smtp_reply_set_error(r, "451 4.4.2 timeout: message not sent to %s after %s "
		    "(%" PRIu64 " bytes, at least %d bytes/s)", c->peer,
		    smtp_client_secs((int)c->body_ms, t, sizeof(t)),
		    c->body_size, c->lim.min_data_rate);
	else {
		int ms = c->op == SMTP_OP_REPLY && c->stage_data ? c->lim.data_ms : c->lim.command_ms;
		smtp_reply_set_error(r, "451 4.4.2 timeout: %s not %s after %s %s %s", what,
		    c->op == SMTP_OP_SEND ? "sent" : "complete", smtp_client_secs(ms, t, sizeof(t)),
		    c->op == SMTP_OP_SEND ? "to" : c->op == SMTP_OP_TLS ? "with" : "from", c->peer);
	}
}

/* An I/O error as the reply: a deadline that passed, or what errno says. */
static void
smtp_client_io_reply(struct smtp_client *c, struct smtp_reply *r, const char *doing)
{
	if (c->timed_out)
		smtp_client_timeout_reply(c, r);
	else
		smtp_reply_set_error(r, "lost connection with %s while %s: %s", c->peer, doing,
		    strerror(errno));
}

/* Expect the reply to a command (in order). */
static void
smtp_client_expect(struct smtp_client *c, const char *verb, int data)
{
	if (c->pend_head + c->npend == c->pend_cap) {
		/* Full at the end: back to the front, and grow when that is
		 * not enough. */
		if (c->npend > 0 && c->pend_head > 0)
			memmove(c->pend, c->pend + c->pend_head, c->npend * sizeof(*c->pend));
		c->pend_head = 0;
		if (c->npend == c->pend_cap) {
			c->pend_cap = c->pend_cap ? c->pend_cap * 2 : 8;
			c->pend = xreallocarray(c->pend, c->pend_cap, sizeof(*c->pend));
		}
	}
	struct smtp_client_pending *e = &c->pend[c->pend_head + c->npend++];
	snprintf(e->verb, sizeof(e->verb), "%s", verb);
	e->data = data;
	snprintf(c->send_stage, sizeof(c->send_stage), "%s", verb);
}

/* The stage the next reply answers. Past the last command expected (LMTP's
 * replies to the end of data, one per recipient) it is the same again. */
static void
smtp_client_next_stage(struct smtp_client *c)
{
	if (c->npend == 0)
		return;
	const struct smtp_client_pending *e = &c->pend[c->pend_head];
	snprintf(c->stage, sizeof(c->stage), "%s", e->verb);
	c->stage_data = e->data;
	c->pend_head++;
	if (--c->npend == 0)
		c->pend_head = 0;
}

/* The transaction by the command going out: MAIL starts one (counted from
 * the connect on a fresh connection), RSET and QUIT end it, and so does
 * anything after the message. */
static void
smtp_client_txn_command(struct smtp_client *c, const char *verb)
{
	if (strcmp(verb, "MAIL") == 0) {
		if (!c->txn_fresh)
			c->txn_start_ms = timeutil_mono_ms();
		c->txn_fresh = 0;
		c->body_sent = 0;
		c->txn_deadline_ms = c->lim.transaction_ms > 0 ?
		    c->txn_start_ms + (uint64_t)c->lim.transaction_ms : 0;
	} else if (c->body_sent || strcmp(verb, "RSET") == 0 || strcmp(verb, "QUIT") == 0) {
		c->txn_fresh = 0;
		c->body_sent = 0;
		c->txn_deadline_ms = 0;
	}
}

/* The message of size bytes starts going out: its own deadline, and the
 * transaction's is extended by the size's share. */
static void
smtp_client_body_begin(struct smtp_client *c, uint64_t size)
{
	uint64_t share = c->lim.min_data_rate > 0 ? size * 1000 / (uint64_t)c->lim.min_data_rate : 0;
	c->body_size = size;
	c->body_ms = (uint64_t)c->lim.body_min_ms + share;
	c->body_deadline_ms = timeutil_mono_ms() + c->body_ms;
	if (c->txn_deadline_ms != 0)
		c->txn_deadline_ms += share;
}

/* Raw bytes out, through TLS when it is on. */
static int
smtp_client_write(struct smtp_client *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;
		if (c->ssl) {
			int rc = SSL_write(c->ssl, p, (int)(n > (1 << 30) ? (1 << 30) : n));
			if (rc <= 0) {
				int e = SSL_get_error(c->ssl, rc);
				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
					if (smtp_client_wait(c, e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN) < 0)
						goto fail;
					continue;
				}
				errno = EPIPE;
				goto fail;
			}
			w = rc;
		} else {
			w = send(c->fd, p, n, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN) {
					if (smtp_client_wait(c, POLLOUT) < 0)
						goto fail;
					continue;
				}
				goto fail;
			}
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
fail:
	c->broken = 1;
	return -1;
}

/* Commands out within command_ms, or part of the message within its own
 * deadline while one is going out. */
static int
smtp_client_send(struct smtp_client *c, const char *p, size_t n)
{
	if (c->body_deadline_ms != 0) {
		c->op = SMTP_OP_BODY;
		c->deadline_ms = c->body_deadline_ms;
	} else {
		c->op = SMTP_OP_SEND;
		c->deadline_ms = timeutil_mono_ms() + (uint64_t)c->lim.command_ms;
	}
	if (smtp_client_write(c, p, n) < 0)
		return -1;
	c->sent_ms = timeutil_mono_ms();
	return 0;
}

static int
smtp_client_fill(struct smtp_client *c)
{
	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	if (c->rlen == sizeof(c->rbuf)) {
		errno = EMSGSIZE;
		return -1;
	}
	for (;;) {
		ssize_t n;
		if (c->ssl) {
			int rc = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(sizeof(c->rbuf) - c->rlen));
			if (rc <= 0) {
				int e = SSL_get_error(c->ssl, rc);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
					if (smtp_client_wait(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT) < 0)
						return -1;
					continue;
				}
				errno = e == SSL_ERROR_ZERO_RETURN ? ECONNRESET : EPROTO;
				return -1;
			}
			n = rc;
		} else {
			n = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN) {
					if (smtp_client_wait(c, POLLIN) < 0)
						return -1;
					continue;
				}
				return -1;
			}
			if (n == 0) {
				errno = ECONNRESET;
				return -1;
			}
		}
		c->rlen += (size_t)n;
		return 0;
	}
}

int
smtp_client_flush(struct smtp_client *c)
{
	if (c->wbuf.len == 0)
		return 0;
	int rc = smtp_client_send(c, c->wbuf.data, c->wbuf.len);
	buf_reset(&c->wbuf);
	return rc;
}

void
smtp_client_cmd(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	char tmp[1024];
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1;
	buf_append(&c->wbuf, tmp, len);
	buf_append(&c->wbuf, "\r\n", 2);
	/* The verb names the reply's stage; BDAT LAST is the end of data. */
	char verb[12];
	size_t vl = strcspn(tmp, " ");
	if (vl >= sizeof(verb))
		vl = sizeof(verb) - 1;
	for (size_t i = 0; i < vl; i++)
		verb[i] = (char)toupper((unsigned char)tmp[i]);
	verb[vl] = '\0';
	smtp_client_txn_command(c, verb);
	if (strcmp(verb, "BDAT") == 0 && len >= 5 && strcasecmp(tmp + len - 5, " LAST") == 0)
		smtp_client_expect(c, "end of data", 1);
	else
		smtp_client_expect(c, verb, 0);
}


int
smtp_client_read_reply(struct smtp_client *c, struct smtp_reply *r)
{
	struct smtp_reply_parser p;

	smtp_reply_parser_init(&p, r);
	if (smtp_client_flush(c) < 0) {
		smtp_client_io_reply(c, r, "sending");
		return -1;
	}
	smtp_client_next_stage(c);
	c->op = SMTP_OP_REPLY;
	uint64_t from = c->sent_ms > c->replied_ms ? c->sent_ms : c->replied_ms;
	if (from == 0)
		from = timeutil_mono_ms();	/* nothing sent on this connection */
	c->deadline_ms = from + (uint64_t)(c->stage_data ? c->lim.data_ms : c->lim.command_ms);
	for (;;) {
		size_t used;
		int rc = smtp_reply_parse(&p, c->rbuf + c->rpos, c->rlen - c->rpos, &used);
		c->rpos += used;
		if (rc == SMTP_REPLY_DONE) {
			c->replied_ms = timeutil_mono_ms();
			return 0;
		}
		if (rc < 0) {
			/* Quote the line at fault, up to its end or 100 bytes. */
			const char *line = c->rbuf + c->rpos;
			size_t avail = c->rlen - c->rpos;
			const char *nl = memchr(line, '\n', avail);
			size_t n = nl ? (size_t)(nl - line) : avail;
			if (n > 0 && line[n - 1] == '\r')
				n--;
			char q[LOG_QUOTE_SIZE(100)];
			c->broken = 1;
			smtp_reply_set_error(r, "malformed reply from %s: %s: %s", c->peer,
			    smtp_reply_strerror(rc), log_quote(q, sizeof(q), line, n, 100));
			return -1;
		}
		/* Checked here too: a server that always has a byte ready
		 * never makes us wait. */
		if (smtp_client_left(c) < 0 || smtp_client_fill(c) < 0) {
			c->broken = 1;
			smtp_client_io_reply(c, r, "reading reply");
			return -1;
		}
	}
}

static int
smtp_client_has_mech(const char *list, const char *mech, size_t n)
{
	for (const char *p = list; *p; ) {
		size_t l = strcspn(p, " ");
		if (l == n && strncasecmp(p, mech, n) == 0)
			return 1;
		p += l;
		p += *p == ' ';
	}
	return 0;
}

/* "AUTH PLAIN LOGIN" or the old "AUTH=PLAIN LOGIN": the mechanisms. */
static void
smtp_client_parse_auth(struct smtp_client *c, const char *mechs, size_t len)
{
	size_t have = strlen(c->auth_mechs);
	while (len > 0) {
		while (len > 0 && *mechs == ' ') {
			mechs++;
			len--;
		}
		size_t n = 0;
		while (n < len && mechs[n] != ' ')
			n++;
		if (n == 0)
			break;
		if (n == 5 && strncasecmp(mechs, "PLAIN", 5) == 0)
			c->ext |= SMTP_EXT_AUTH_PLAIN;
		/* Printable, once each (servers often say both "AUTH" and
		 * "AUTH="), for logs; whatever does not fit is dropped. */
		if (!smtp_client_has_mech(c->auth_mechs, mechs, n) &&
		    have + (have > 0) + n < sizeof(c->auth_mechs)) {
			if (have > 0)
				c->auth_mechs[have++] = ' ';
			for (size_t i = 0; i < n; i++)
				c->auth_mechs[have++] = mechs[i] > 0x20 && mechs[i] < 0x7f ?
				    mechs[i] : '?';
			c->auth_mechs[have] = '\0';
		}
		mechs += n;
		len -= n;
	}
}

static void
smtp_client_parse_ehlo(struct smtp_client *c, const struct smtp_reply *r)
{
	static const struct { const char *kw; unsigned bit; } kws[] = {
		{ "PIPELINING", SMTP_EXT_PIPELINING }, { "STARTTLS", SMTP_EXT_STARTTLS },
		{ "8BITMIME", SMTP_EXT_8BITMIME }, { "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
		{ "SIZE", SMTP_EXT_SIZE }, { "CHUNKING", SMTP_EXT_CHUNKING },
		{ "REQUIRETLS", SMTP_EXT_REQUIRETLS }, { "DSN", SMTP_EXT_DSN },
	};
	c->ext = 0;
	c->auth_mechs[0] = '\0';
	const char *p = r->text.data;
	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len > 4) {
			const char *kw = p + 4;
			size_t kl = len - 4;
			for (size_t i = 0; i < sizeof(kws) / sizeof(kws[0]); i++) {
				size_t l = strlen(kws[i].kw);
				if (kl >= l && strncasecmp(kw, kws[i].kw, l) == 0 &&
				    (kl == l || kw[l] == ' '))
					c->ext |= kws[i].bit;
			}
			if (kl > 4 && strncasecmp(kw, "AUTH", 4) == 0 &&
			    (kw[4] == ' ' || kw[4] == '='))
				smtp_client_parse_auth(c, kw + 5, kl - 5);
		}
		p = eol ? eol + 1 : NULL;
	}
}

int
smtp_client_source_set(struct smtp_client_source *src, const char *v4, const char *v6)
{
	memset(src, 0, sizeof(*src));
	if (v4 && v4[0]) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&src->v4;
		if (inet_pton(AF_INET, v4, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		src->v4len = sizeof(*sin);
	}
	if (v6 && v6[0]) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&src->v6;
		if (inet_pton(AF_INET6, v6, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		src->v6len = sizeof(*sin6);
	}
	return 0;
}

/* Connect from the operator's address: the one its PTR, SPF and HELO name
 * agree on. The port is left to connect(). */
static int
smtp_client_bind(int fd, const struct sockaddr_storage *ss, socklen_t len)
{
#ifdef IP_BIND_ADDRESS_NO_PORT
	int one = 1;
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
	return bind(fd, (const struct sockaddr *)ss, len);
}

static int
smtp_client_connect(struct smtp_client *c, const struct mxd_nexthop *nh,
    const struct smtp_client_source *src, struct smtp_reply *r)
{
	if (nh->is_unix) {
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", nh->path);
		snprintf(c->peer, sizeof(c->peer), "%s", nh->path);
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			smtp_reply_set_error(r, "connect to %s: %s", c->peer, strerror(errno));
			return -1;
		}
		fcntl(c->fd, F_SETFL, O_NONBLOCK);
		return 0;
	}
	struct addrinfo hints, *res = NULL, *ai;
	char port[8];
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", nh->port);
	snprintf(c->peer, sizeof(c->peer), "%s:%d", nh->host, nh->port);
	if (!nh->is_unix) {
		snprintf(c->remote_ip, sizeof(c->remote_ip), "%s", nh->host);
		c->remote_port = nh->port;
	}
	int gai = getaddrinfo(nh->host, port, &hints, &res);
	if (gai != 0) {
		smtp_reply_set_error(r, "cannot resolve %s: %s", nh->host, gai_strerror(gai));
		return -1;
	}
	int err = 0;
	const struct sockaddr_storage *bind_fail = NULL;
	for (ai = res; ai; ai = ai->ai_next) {
		c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (c->fd < 0) {
			err = errno;
			continue;
		}
		const struct sockaddr_storage *from = NULL;
		socklen_t fromlen = 0;
		if (src && ai->ai_family == AF_INET && src->v4len)
			from = &src->v4, fromlen = src->v4len;
		else if (src && ai->ai_family == AF_INET6 && src->v6len)
			from = &src->v6, fromlen = src->v6len;
		if (from != NULL && smtp_client_bind(c->fd, from, fromlen) < 0) {
			err = errno;
			bind_fail = from;
			close(c->fd);
			c->fd = -1;
			continue;
		}
		if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		c->deadline_ms = timeutil_mono_ms() + (uint64_t)c->lim.connect_ms;
		if (errno == EINPROGRESS && smtp_client_wait(c, POLLOUT) == 0) {
			socklen_t el = sizeof(err);
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
			if (err == 0)
				break;
		} else
			err = errno;
		c->timed_out = c->broken = 0;	/* for the next address */
		close(c->fd);
		c->fd = -1;
	}
	freeaddrinfo(res);
	if (c->fd < 0) {
		char a[INET6_ADDRSTRLEN];
		if (bind_fail)
			smtp_reply_set_error(r, "connect to %s: source address %s: %s", c->peer,
			    netaddr_ntop((const struct sockaddr *)bind_fail, a, sizeof(a)),
			    strerror(err ? err : EADDRNOTAVAIL));
		else
			smtp_reply_set_error(r, "connect to %s: %s", c->peer,
			    strerror(err ? err : ECONNREFUSED));
		return -1;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

static int
smtp_client_starttls(struct smtp_client *c, SSL_CTX *tls, const char *sni, int verify,
    const char *verify_name, const struct dns_tlsa_result *tlsa, struct smtp_reply *r)
{
	struct tls_trace trace;
	c->ssl = tls_client_ssl(tls, sni, &trace);
	/* What tls_client_ssl put in SNI: nothing for an address. */
	const char *sent = c->ssl ? SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
	if (sent)
		snprintf(c->sni, sizeof(c->sni), "%s", sent);
	/* The name is checked with the chain; the handshake goes on either way
	 * and the caller decides (a policy in testing mode delivers anyway). */
	/* The name checked is the SNI name unless the policy names another
	 * ("secure": the domain, and its subdomains). */
	if (c->ssl && verify && verify_name && verify_name[0]) {
		char dot[300];
		snprintf(dot, sizeof(dot), ".%s", verify_name);
		SSL_set1_host(c->ssl, verify_name);
		SSL_add1_host(c->ssl, dot);
	} else if (c->ssl && verify && sent)
		SSL_set1_host(c->ssl, sni);
	else if (c->ssl && verify)
		/* A next hop given as an address: its certificate must name
		 * that address (an iPAddress subjectAltName). */
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), sni);
	if (c->ssl && tlsa) {
		/* RFC 7672 through OpenSSL's DANE API: DANE-TA(2) and DANE-EE(3)
		 * only; DANE-EE ignores names and dates (RFC 7672 3.1.1). */
		if (SSL_dane_enable(c->ssl, sni) > 0) {
			SSL_dane_set_flags(c->ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
			for (size_t i = 0; i < tlsa->n; i++) {
				const struct dns_tlsa *t = &tlsa->rr[i];
				if (t->usage != 2 && t->usage != 3)
					continue;
				if (SSL_dane_tlsa_add(c->ssl, t->usage, t->selector, t->mtype,
				    t->data, t->len) > 0)
					c->dane_usable++;
			}
		}
		ERR_clear_error();
	}
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		smtp_reply_set_error(r, "TLS setup failed");
		return -1;
	}
	/* Anything buffered before the handshake was sent in plaintext after
	 * our STARTTLS: a server injecting it is not trusted with the session. */
	if (c->rlen != c->rpos) {
		c->tls_failed = 1;
		snprintf(c->tls_fail_stage, sizeof(c->tls_fail_stage), "starttls");
		snprintf(c->tls_fail_reason, sizeof(c->tls_fail_reason), "plaintext_after_starttls_reply");
		smtp_reply_set_error(r, "%s sent data after its STARTTLS reply", c->peer);
		return -1;
	}
	c->op = SMTP_OP_TLS;
	c->deadline_ms = timeutil_mono_ms() + (uint64_t)c->lim.command_ms;
	for (;;) {
		int rc = SSL_connect(c->ssl);
		if (rc == 1)
			break;
		int e = SSL_get_error(c->ssl, rc);
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
		    smtp_client_wait(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT) == 0)
			continue;
		char reason[160];
		if (c->timed_out)
			snprintf(reason, sizeof(reason), "timeout");
		else
			tls_trace_reason(&trace, e == SSL_ERROR_SYSCALL, ERR_peek_last_error(),
			    reason, sizeof(reason));
		c->tls_failed = 1;
		snprintf(c->tls_fail_stage, sizeof(c->tls_fail_stage), "%s", tls_trace_stage(&trace));
		snprintf(c->tls_fail_reason, sizeof(c->tls_fail_reason), "%s", reason);
		ERR_clear_error();
		SSL_set_msg_callback(c->ssl, NULL);
		c->broken = 1;
		if (c->timed_out)
			smtp_client_timeout_reply(c, r);
		else
			smtp_reply_set_error(r, "TLS handshake with %s failed at %s: %s", c->peer,
			    tls_trace_stage(&trace), reason);
		return -1;
	}
	/* The trace lives on our stack: detach it before returning. */
	SSL_set_msg_callback(c->ssl, NULL);
	c->verify_result = SSL_get_verify_result(c->ssl);
	c->verified = verify && SSL_get0_peer_certificate(c->ssl) != NULL &&
	    c->verify_result == X509_V_OK;
	c->dane_ok = tlsa && c->dane_usable > 0 && c->verify_result == X509_V_OK &&
	    SSL_get0_dane_authority(c->ssl, NULL, NULL) >= 0;
	snprintf(c->tls_version, sizeof(c->tls_version), "%s", SSL_get_version(c->ssl));
	snprintf(c->tls_cipher, sizeof(c->tls_cipher), "%s", SSL_get_cipher_name(c->ssl));
	return 0;
}

int
smtp_client_open(struct smtp_client *c, const struct mxd_nexthop *nh,
    const char *helo, SSL_CTX *tls, const struct smtp_client_limits *lim,
    const struct smtp_client_source *src, struct smtp_reply *r)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->lim = *lim;
	c->lmtp = nh->proto == MXD_NH_LMTP;
	buf_init(&c->wbuf);
	/* The first transaction counts from here, connect included. */
	c->txn_start_ms = timeutil_mono_ms();
	c->txn_fresh = 1;
	if (lim->transaction_ms > 0)
		c->txn_deadline_ms = c->txn_start_ms + (uint64_t)lim->transaction_ms;
	if (smtp_client_connect(c, nh, src, r) < 0)
		goto fail;
	c->sent_ms = timeutil_mono_ms();
	smtp_client_expect(c, "greeting", 0);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (!nh->is_unix && getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
		netaddr_ntop((struct sockaddr *)&ss, c->local_ip, sizeof(c->local_ip));
		c->local_port = netaddr_port((struct sockaddr *)&ss);
	}
	sl = sizeof(ss);
	if (!nh->is_unix && getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
		netaddr_ntop((struct sockaddr *)&ss, c->remote_ip, sizeof(c->remote_ip));
		c->remote_port = netaddr_port((struct sockaddr *)&ss);
	}
	if (smtp_client_read_reply(c, r) < 0)
		goto fail;
	c->greeted = 1;
	/* "220 mx.example.org ESMTP ..." : the name, printable, for reports. */
	if (r->text.len > 4) {
		size_t i = 0;
		for (const char *p = r->text.data + 4; *p && *p != ' ' && *p != '\n' && *p != '\r' &&
		    i + 1 < sizeof(c->greeting_name); p++)
			c->greeting_name[i++] = (*p > 0x20 && *p < 0x7f) ? *p : '?';
		c->greeting_name[i] = '\0';
	}
	if (r->code != 220)
		goto fail;
	smtp_client_cmd(c, "%s %s", c->lmtp ? "LHLO" : "EHLO", helo);
	if (smtp_client_read_reply(c, r) < 0)
		goto fail;
	if (r->code != 250)
		goto fail;
	smtp_client_parse_ehlo(c, r);
	c->starttls_offered = (c->ext & SMTP_EXT_STARTTLS) != 0;
	if (tls && (c->ext & SMTP_EXT_STARTTLS) && !nh->is_unix) {
		smtp_client_cmd(c, "STARTTLS");
		if (smtp_client_read_reply(c, r) < 0)
			goto fail;
		if (r->code != 220) {
			c->tls_failed = 1;
			snprintf(c->tls_fail_stage, sizeof(c->tls_fail_stage), "starttls");
			snprintf(c->tls_fail_reason, sizeof(c->tls_fail_reason), "starttls_refused_%d", r->code);
			goto fail;
		}
		if (smtp_client_starttls(c, tls, nh->sni[0] ? nh->sni : nh->host, nh->verify,
		    nh->verify_name, nh->tlsa, r) < 0)
			goto fail;
		smtp_client_cmd(c, "%s %s", c->lmtp ? "LHLO" : "EHLO", helo);
		if (smtp_client_read_reply(c, r) < 0)
			goto fail;
		if (r->code != 250)
			goto fail;
		smtp_client_parse_ehlo(c, r);
	}
	return 0;
fail:
	smtp_client_close(c, 0);
	return -1;
}

void
smtp_client_close(struct smtp_client *c, int send_quit)
{
	if (c->fd >= 0 && send_quit && !c->broken) {
		struct smtp_reply r;
		smtp_reply_init(&r);
		smtp_client_cmd(c, "QUIT");
		c->lim.command_ms = c->lim.command_ms > 5000 ? 5000 : c->lim.command_ms;
		smtp_client_read_reply(c, &r);
		smtp_reply_free(&r);
	}
	if (c->ssl) {
		if (!c->broken)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	buf_free(&c->wbuf);
	free(c->pend);
	c->pend = NULL;
	c->npend = c->pend_head = c->pend_cap = 0;
}

int
smtp_client_send_data(struct smtp_client *c, int fd, off_t off, struct smtp_reply *r)
{
	char in[65536];
	struct buf out;
	struct stat st;
	int bol = 1, rc = 0;

	if (smtp_client_flush(c) < 0) {
		smtp_client_io_reply(c, r, "sending");
		return -1;
	}
	smtp_client_body_begin(c, fstat(fd, &st) == 0 && st.st_size > off ?
	    (uint64_t)(st.st_size - off) : 0);
	buf_init(&out);
	for (;;) {
		ssize_t n = pread(fd, in, sizeof(in), off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* The session can not go on without the rest. */
			smtp_reply_set_error(r, "reading the message for %s: %s", c->peer,
			    strerror(errno));
			c->broken = 1;
			rc = -1;
			break;
		}
		if (n == 0)
			break;
		off += n;
		buf_reset(&out);
		size_t start = 0;
		for (size_t i = 0; i < (size_t)n; i++) {
			if (bol && in[i] == '.') {
				buf_append(&out, in + start, i - start);
				buf_append(&out, ".", 1);
				start = i;
			}
			bol = in[i] == '\n';
		}
		buf_append(&out, in + start, (size_t)n - start);
		if ((rc = smtp_client_send(c, out.data, out.len)) < 0) {
			smtp_client_io_reply(c, r, "sending");
			break;
		}
	}
	buf_free(&out);
	if (rc == 0 && (rc = smtp_client_send(c, bol ? ".\r\n" : "\r\n.\r\n", bol ? 3 : 5)) < 0)
		smtp_client_io_reply(c, r, "sending");
	c->body_deadline_ms = 0;
	c->body_sent = 1;
	smtp_client_expect(c, "end of data", 1);
	return rc;
}

/* Replace every copy of secret in r's text with "********": a server that
 * echoes what we sent does not get it into our logs and DSNs. */
static void
smtp_reply_mask(struct smtp_reply *r, const char *secret, size_t n)
{
	struct buf out;
	size_t i = 0, from = 0;

	if (n == 0 || r->text.len < n)
		return;
	buf_init(&out);
	while (i + n <= r->text.len) {
		if (memcmp(r->text.data + i, secret, n) != 0) {
			i++;
			continue;
		}
		buf_append(&out, r->text.data + from, i - from);
		buf_appends(&out, "********");
		i += n;
		from = i;
	}
	if (from == 0) {
		buf_free(&out);
		return;
	}
	buf_append(&out, r->text.data + from, r->text.len - from);
	OPENSSL_cleanse(r->text.data, r->text.len);
	buf_free(&r->text);
	r->text = out;
}

/* 334 with nothing (or "=") after it: the server wants the response. */
static int
smtp_reply_empty_challenge(const struct smtp_reply *r)
{
	const char *t = r->text.data + 3;
	if (r->code != 334 || r->text.len < 4)
		return 0;
	t += *t == ' ';
	t += *t == '=';
	return *t == '\n' && t[1] == '\0';
}

int
smtp_client_auth_plain(struct smtp_client *c, const char *user, const char *pass,
    struct smtp_reply *r)
{
	/* RFC 4616: authcid and passwd are at most 255 bytes each. */
	unsigned char raw[1 + 255 + 1 + 255];
	char line[sizeof("AUTH PLAIN ") - 1 + 4 * ((sizeof(raw) + 2) / 3) + 3];
	const size_t verb = sizeof("AUTH PLAIN ") - 1;
	size_t ul = strlen(user), pl = strlen(pass);
	int rc = -1;

	if (c->ssl == NULL) {
		smtp_reply_set_error(r, "AUTH PLAIN with %s not attempted: the connection is "
		    "not TLS-encrypted", c->peer);
		return -1;
	}
	if (!(c->ext & SMTP_EXT_AUTH_PLAIN)) {
		smtp_reply_set_error(r, "AUTH PLAIN with %s not attempted: the server does not "
		    "offer PLAIN (AUTH: %s)", c->peer, c->auth_mechs[0] ? c->auth_mechs : "none");
		return -1;
	}
	if (ul == 0 || ul > 255 || pl > 255) {
		smtp_reply_set_error(r, "AUTH PLAIN with %s not attempted: the user name must "
		    "have 1 to 255 bytes and the password at most 255", c->peer);
		return -1;
	}
	size_t rl = 0;
	raw[rl++] = '\0';
	memcpy(raw + rl, user, ul);
	rl += ul;
	raw[rl++] = '\0';
	memcpy(raw + rl, pass, pl);
	rl += pl;
	memcpy(line, "AUTH PLAIN ", verb);
	size_t el = (size_t)EVP_EncodeBlock((unsigned char *)line + verb, raw, (int)rl);
	OPENSSL_cleanse(raw, sizeof(raw));
	memcpy(line + verb + el, "\r\n", 2);

	/* Sent as it is (never through smtp_client_cmd's buffer). */
	if (smtp_client_flush(c) < 0 || (smtp_client_expect(c, "AUTH", 0),
	    smtp_client_send(c, line, verb + el + 2)) < 0) {
		smtp_client_io_reply(c, r, "sending");
		goto out;
	}
	if (smtp_client_read_reply(c, r) < 0)
		goto out;
	/* A server that ignored the initial response asks for it. */
	if (smtp_reply_empty_challenge(r)) {
		smtp_client_expect(c, "AUTH", 0);
		if (smtp_client_send(c, line + verb, el + 2) < 0) {
			smtp_client_io_reply(c, r, "sending");
			goto out;
		}
		if (smtp_client_read_reply(c, r) < 0)
			goto out;
	}
	if (r->code == 334) {
		/* PLAIN has one step: cancel (RFC 4954 4) and stay in sync. */
		smtp_client_cmd(c, "*");
		if (smtp_client_read_reply(c, r) < 0)
			goto out;
		smtp_reply_set_error(r, "AUTH PLAIN with %s failed: the server sent a challenge "
		    "PLAIN has no answer for", c->peer);
		goto out;
	}
	rc = r->code == 235 ? 0 : -1;
out:
	smtp_reply_mask(r, line + verb, el);
	smtp_reply_mask(r, pass, pl);
	OPENSSL_cleanse(line, sizeof(line));
	return rc;
}

/* At most this many BDAT chunks are unanswered when pipelining: enough to
 * keep the link busy, few enough that the replies fit the server's socket
 * buffer while it waits for us to read them. */
#define SMTP_BDAT_WINDOW	8

struct smtp_client_bdat {
	struct smtp_reply	*r;		/* the LAST reply or the first refusal */
	struct smtp_reply	 spare;		/* replies after a refusal */
	unsigned		 pending;	/* chunks sent, reply not read */
	int			 refused;
};

/* Read one chunk's reply; the first refusal stays in b->r. */
static int
smtp_client_bdat_reply(struct smtp_client *c, struct smtp_client_bdat *b)
{
	struct smtp_reply *into = b->refused ? &b->spare : b->r;
	b->pending--;
	if (smtp_client_read_reply(c, into) < 0) {
		/* The refusal says more about the message than a server
		 * hanging up after it. */
		if (b->refused) {
			c->broken = 1;
			b->pending = 0;
			return 0;
		}
		return -1;
	}
	if (!b->refused && (into->code < 200 || into->code > 299))
		b->refused = 1;
	return 0;
}

/* Writing failed. A server that refused the message and hung up may have
 * said why before it did: that is worth more than "connection reset". */
static int
smtp_client_bdat_lost(struct smtp_client *c, struct smtp_client_bdat *b)
{
	int err = errno;
	c->broken = 1;
	if (!c->timed_out) {
		b->pending++;	/* the chunk being sent may have been answered */
		while (!b->refused && b->pending > 0)
			if (smtp_client_bdat_reply(c, b) < 0)
				break;
		if (b->refused)
			return 0;
	}
	errno = err;
	smtp_client_io_reply(c, b->r, "sending");
	return -1;
}

int
smtp_client_send_bdat(struct smtp_client *c, int fd, off_t off, uint64_t size,
    struct smtp_reply *r)
{
	int pipelining = (c->ext & SMTP_EXT_PIPELINING) != 0;
	struct smtp_client_bdat b = { .r = r };
	char in[65536];
	uint64_t left = size;
	int rc = 0, last;

	smtp_reply_init(&b.spare);
	smtp_client_body_begin(c, size);
	do {
		uint64_t n = left < SMTP_BDAT_CHUNK ? left : SMTP_BDAT_CHUNK;
		last = n == left;
		smtp_client_cmd(c, "BDAT %" PRIu64 "%s", n, last ? " LAST" : "");
		while (n > 0) {
			ssize_t got = pread(fd, in, n < sizeof(in) ? (size_t)n : sizeof(in), off);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				/* BDAT promised n more bytes: the session can not go on. */
				buf_reset(&c->wbuf);
				c->broken = 1;
				if (got < 0)
					smtp_reply_set_error(r, "reading the message for %s: %s",
					    c->peer, strerror(errno));
				else
					smtp_reply_set_error(r, "reading the message for %s: it ends "
					    "%" PRIu64 " bytes short of its size %" PRIu64, c->peer,
					    left, size);
				rc = -1;
				goto out;
			}
			buf_append(&c->wbuf, in, (size_t)got);
			off += got;
			n -= (uint64_t)got;
			left -= (uint64_t)got;
			if ((c->wbuf.len >= sizeof(in) || n == 0) && smtp_client_flush(c) < 0) {
				rc = smtp_client_bdat_lost(c, &b);
				goto out;
			}
		}
		b.pending++;
		while (b.pending > 0 && (!pipelining || last || b.refused ||
		    b.pending >= SMTP_BDAT_WINDOW))
			if (smtp_client_bdat_reply(c, &b) < 0) {
				rc = -1;
				goto out;
			}
	} while (!last && !b.refused);
out:
	c->body_deadline_ms = 0;
	c->body_sent = 1;
	smtp_reply_free(&b.spare);
	return rc;
}
