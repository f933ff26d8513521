/* The delivery client: reply parsing (no I/O), EHLO, AUTH PLAIN and BDAT
 * against a scripted server in a thread. The server reads command lines (and
 * the bytes a BDAT announces), records them, and answers each with the next
 * scripted reply; TLS, when a test wants it, uses a throwaway self-signed
 * certificate made here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "smtp_client.h"

#define MIB	(1024 * 1024)

/* ---- parsing without I/O ---- */

static int
parse_all(const char *in, size_t len, struct smtp_reply *r, size_t *used)
{
	struct smtp_reply_parser p;
	smtp_reply_parser_init(&p, r);
	return smtp_reply_parse(&p, in, len, used);
}

static void
test_parse_keeps_every_line_of_a_multiline_reply(void **state)
{
	const char in[] = "250-mx.example.org\r\n250-PIPELINING\r\n250 CHUNKING\r\n";
	struct smtp_reply r;
	size_t used;
	smtp_reply_init(&r);
	assert_int_equal(parse_all(in, sizeof(in) - 1, &r, &used), SMTP_REPLY_DONE);
	assert_int_equal(used, sizeof(in) - 1);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.text.data, "250-mx.example.org\n250-PIPELINING\n250 CHUNKING\n");
	smtp_reply_free(&r);
}

static void
test_parse_leaves_the_next_pipelined_reply(void **state)
{
	const char in[] = "250 2.1.0 Ok\r\n550 5.1.1 unknown\r\n";
	struct smtp_reply r;
	size_t used;
	smtp_reply_init(&r);
	assert_int_equal(parse_all(in, sizeof(in) - 1, &r, &used), SMTP_REPLY_DONE);
	assert_int_equal(used, strlen("250 2.1.0 Ok\r\n"));
	assert_string_equal(r.text.data, "250 2.1.0 Ok\n");
	assert_int_equal(parse_all(in + used, sizeof(in) - 1 - used, &r, &used), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 550);
	smtp_reply_free(&r);
}

static void
test_parse_accepts_a_bare_code_and_a_bare_lf(void **state)
{
	struct smtp_reply r;
	size_t used;
	smtp_reply_init(&r);
	assert_int_equal(parse_all("354\r\n", 5, &r, &used), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 354);
	assert_int_equal(parse_all("221-a\n221 b\n", 12, &r, &used), SMTP_REPLY_DONE);
	assert_int_equal(used, 12);
	assert_string_equal(r.text.data, "221-a\n221 b\n");
	smtp_reply_free(&r);
}

/* Byte by byte, as a slow server sends it: complete lines are taken, the
 * partial one waits, and the result is the same as in one piece. */
static void
test_parse_waits_for_the_last_line(void **state)
{
	const char in[] = "250-first\r\n250-second\r\n250 last\r\n";
	struct smtp_reply r;
	struct smtp_reply_parser p;
	size_t pos = 0, used;
	int rc = SMTP_REPLY_MORE;
	smtp_reply_init(&r);
	smtp_reply_parser_init(&p, &r);
	for (size_t end = 1; end <= sizeof(in) - 1; end++) {
		rc = smtp_reply_parse(&p, in + pos, end - pos, &used);
		pos += used;
		if (end < sizeof(in) - 1)
			assert_int_equal(rc, SMTP_REPLY_MORE);
		if (end == strlen("250-first\r"))
			assert_int_equal(pos, 0);	/* the CR alone ends nothing */
		if (end == strlen("250-first\r\n"))
			assert_int_equal(pos, end);
	}
	assert_int_equal(rc, SMTP_REPLY_DONE);
	assert_int_equal(pos, sizeof(in) - 1);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.text.data, "250-first\n250-second\n250 last\n");
	smtp_reply_free(&r);
}

static void
test_parse_rejects_malformed_lines(void **state)
{
	static const struct { const char *in; int rc; size_t at; } cases[] = {
		{ "25x ok\r\n", SMTP_REPLY_ESYNTAX, 0 },
		{ "250*ok\r\n", SMTP_REPLY_ESYNTAX, 0 },
		{ "25\r\n", SMTP_REPLY_ESYNTAX, 0 },
		{ "\r\n", SMTP_REPLY_ESYNTAX, 0 },
		{ "199 ok\r\n", SMTP_REPLY_ESYNTAX, 0 },
		{ "600 ok\r\n", SMTP_REPLY_ESYNTAX, 0 },
		{ " 250 ok\r\n", SMTP_REPLY_ESYNTAX, 0 },
		{ "250-ok\r\nhello\r\n", SMTP_REPLY_ESYNTAX, 8 },
		{ "250-ok\r\n251 other\r\n", SMTP_REPLY_ECODE, 8 },
		{ "250-ok\r\n550 no\r\n", SMTP_REPLY_ECODE, 8 },
	};
	struct smtp_reply r;
	size_t used;
	smtp_reply_init(&r);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse_all(cases[i].in, strlen(cases[i].in), &r, &used), cases[i].rc);
		assert_int_equal(used, cases[i].at);	/* where the line at fault starts */
		assert_int_equal(r.code, 0);
	}
	smtp_reply_free(&r);
}

static void
test_parse_rejects_an_overlong_line(void **state)
{
	char *in = malloc(SMTP_REPLY_LINE_MAX + 16);
	struct smtp_reply r;
	size_t used;
	smtp_reply_init(&r);
	/* The longest line that fits: CR and LF included. */
	memset(in, 'a', SMTP_REPLY_LINE_MAX);
	memcpy(in, "250 ", 4);
	memcpy(in + SMTP_REPLY_LINE_MAX - 2, "\r\n", 2);
	assert_int_equal(parse_all(in, SMTP_REPLY_LINE_MAX, &r, &used), SMTP_REPLY_DONE);
	/* One more byte, complete or still arriving: refused, no waiting. */
	memset(in, 'a', SMTP_REPLY_LINE_MAX + 1);
	memcpy(in, "250 ", 4);
	memcpy(in + SMTP_REPLY_LINE_MAX - 1, "\r\n", 2);
	assert_int_equal(parse_all(in, SMTP_REPLY_LINE_MAX + 1, &r, &used), SMTP_REPLY_ELONG);
	assert_int_equal(parse_all(in, SMTP_REPLY_LINE_MAX, &r, &used), SMTP_REPLY_ELONG);
	assert_int_equal(parse_all(in, SMTP_REPLY_LINE_MAX - 1, &r, &used), SMTP_REPLY_MORE);
	assert_int_equal(used, 0);
	free(in);
	smtp_reply_free(&r);
}

static void
test_parse_rejects_too_many_lines_and_bounds_the_text(void **state)
{
	struct buf in;
	struct smtp_reply r;
	size_t used;
	buf_init(&in);
	smtp_reply_init(&r);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		buf_appends(&in, "250-a line of a long reply from a chatty server\r\n");
	buf_appends(&in, "250 end\r\n");
	assert_int_equal(parse_all(in.data, in.len, &r, &used), SMTP_REPLY_DONE);
	assert_int_equal(used, in.len);
	assert_true(r.text.len >= SMTP_REPLY_TEXT_MAX);
	assert_true(r.text.len < SMTP_REPLY_TEXT_MAX + 64);
	assert_memory_equal(r.text.data, "250-a line", 10);

	buf_reset(&in);
	for (int i = 0; i <= SMTP_REPLY_LINES_MAX; i++)
		buf_appends(&in, "250-x\r\n");
	buf_appends(&in, "250 end\r\n");
	assert_int_equal(parse_all(in.data, in.len, &r, &used), SMTP_REPLY_ELINES);
	assert_int_equal(used, SMTP_REPLY_LINES_MAX * 7);
	buf_free(&in);
	smtp_reply_free(&r);
}

/* The client's deadlines for a test, in milliseconds. */
static void
set_deadlines(struct smtp_client *c, int command_ms, int data_ms, int transaction_ms,
    int body_min_ms, int min_data_rate)
{
	c->lim.connect_ms = command_ms;
	c->lim.command_ms = command_ms;
	c->lim.data_ms = data_ms;
	c->lim.transaction_ms = transaction_ms;
	c->lim.body_min_ms = body_min_ms;
	c->lim.min_data_rate = min_data_rate;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Ten seconds for everything: the tests that are not about deadlines. */
static const struct smtp_client_limits roomy = { .connect_ms = 10000, .command_ms = 10000,
    .data_ms = 10000, .body_min_ms = 10000, .min_data_rate = 1 << 30 };

/* ---- the scripted server ---- */

struct fake {
	int		 fd;
	int		 listen_fd;	/* accept first (smtp_client_open) */
	SSL_CTX		*tls;		/* handshake first */
	SSL		*ssl;
	const char	*greeting;
	const char	*const *replies;	/* one per command or chunk */
	size_t		 nreplies;
	int		 hangup_at_bdat;	/* answer a BDAT at once and close */
	char		 in[65536];
	size_t		 ipos, ilen;
	struct buf	 cmds;		/* command lines, LF-terminated */
	struct buf	 data;		/* every BDAT chunk, in order */
	pthread_t	 thread;
};

static ssize_t
fake_read(struct fake *f, char *p, size_t n)
{
	if (f->ssl) {
		int rc = SSL_read(f->ssl, p, (int)n);
		return rc > 0 ? rc : 0;
	}
	ssize_t rc;
	do
		rc = read(f->fd, p, n);
	while (rc < 0 && errno == EINTR);
	return rc > 0 ? rc : 0;
}

static void
fake_write(struct fake *f, const char *s)
{
	if (f->ssl)
		SSL_write(f->ssl, s, (int)strlen(s));
	else if (write(f->fd, s, strlen(s)) < 0)
		return;
}

static int
fake_fill(struct fake *f)
{
	if (f->ipos > 0) {
		memmove(f->in, f->in + f->ipos, f->ilen - f->ipos);
		f->ilen -= f->ipos;
		f->ipos = 0;
	}
	ssize_t n = fake_read(f, f->in + f->ilen, sizeof(f->in) - f->ilen);
	f->ilen += (size_t)n;
	return n > 0 ? 0 : -1;
}

/* One line, CRLF stripped; NULL at the end of the connection. */
static char *
fake_line(struct fake *f, char *out, size_t outsz)
{
	for (;;) {
		char *nl = memchr(f->in + f->ipos, '\n', f->ilen - f->ipos);
		if (nl) {
			size_t n = (size_t)(nl - (f->in + f->ipos));
			if (n > 0 && nl[-1] == '\r')
				n--;
			snprintf(out, outsz, "%.*s", (int)n, f->in + f->ipos);
			f->ipos = (size_t)(nl - f->in) + 1;
			return out;
		}
		if (fake_fill(f) < 0)
			return NULL;
	}
}

static int
fake_bytes(struct fake *f, size_t n)
{
	while (n > 0) {
		if (f->ipos == f->ilen && fake_fill(f) < 0)
			return -1;
		size_t k = f->ilen - f->ipos < n ? f->ilen - f->ipos : n;
		buf_append(&f->data, f->in + f->ipos, k);
		f->ipos += k;
		n -= k;
	}
	return 0;
}

static void *
fake_run(void *arg)
{
	struct fake *f = arg;
	char line[4096];
	size_t next = 0;

	if (f->listen_fd >= 0)
		f->fd = accept(f->listen_fd, NULL, NULL);
	if (f->tls) {
		f->ssl = SSL_new(f->tls);
		SSL_set_fd(f->ssl, f->fd);
		if (SSL_accept(f->ssl) != 1)
			return NULL;
	}
	if (f->greeting)
		fake_write(f, f->greeting);
	while (fake_line(f, line, sizeof(line))) {
		buf_appends(&f->cmds, line);
		buf_appends(&f->cmds, "\n");
		if (strncmp(line, "BDAT ", 5) == 0) {
			if (f->hangup_at_bdat) {
				if (next < f->nreplies)
					fake_write(f, f->replies[next++]);
				break;
			}
			if (fake_bytes(f, strtoull(line + 5, NULL, 10)) < 0)
				break;
		}
		/* Past the script the server listens but says nothing. */
		if (next < f->nreplies)
			fake_write(f, f->replies[next++]);
	}
	if (f->ssl)
		SSL_shutdown(f->ssl);
	shutdown(f->fd, SHUT_RDWR);
	return NULL;
}

static SSL_CTX *server_tls, *client_tls;

/* A throwaway P-256 key and a self-signed certificate for "mx.test". */
static void
tls_setup(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	assert_non_null(key);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"mx.test",
	    -1, -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	server_tls = SSL_CTX_new(TLS_server_method());
	assert_int_equal(SSL_CTX_use_certificate(server_tls, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(server_tls, key), 1);
	client_tls = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(client_tls, SSL_VERIFY_NONE, NULL);
	X509_free(x);
	EVP_PKEY_free(key);
}

/* The client on one end of a socketpair, the scripted server on the other.
 * With tls, both sides complete a handshake before the test goes on. */
static void
start(struct smtp_client *c, struct fake *f, unsigned ext, int tls,
    const char *const *replies, size_t nreplies)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	memset(f, 0, sizeof(*f));
	f->fd = sv[1];
	f->listen_fd = -1;
	f->tls = tls ? server_tls : NULL;
	f->replies = replies;
	f->nreplies = nreplies;
	buf_init(&f->cmds);
	buf_init(&f->data);
	memset(c, 0, sizeof(*c));
	c->fd = sv[0];
	c->ext = ext;
	c->lim = roomy;
	snprintf(c->peer, sizeof(c->peer), "fake");
	buf_init(&c->wbuf);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_run, f), 0);
	if (tls) {
		c->ssl = SSL_new(client_tls);
		SSL_set_fd(c->ssl, c->fd);
		assert_int_equal(SSL_connect(c->ssl), 1);
	}
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
}

/* Hang up and wait for the server to have seen everything. */
static void
finish(struct smtp_client *c, struct fake *f)
{
	smtp_client_close(c, 0);
	pthread_join(f->thread, NULL);
	if (f->ssl)
		SSL_free(f->ssl);
	close(f->fd);
}

static void
fake_free(struct fake *f)
{
	buf_free(&f->cmds);
	buf_free(&f->data);
}

/* ---- reading replies from a connection ---- */

static void
test_read_reply_spans_reads_larger_than_the_buffer(void **state)
{
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	struct buf big;
	int sv[2];

	/* No thread: the whole reply sits in the socket before the client
	 * reads it, more than its 16 KiB buffer holds at once. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(&c, 0, sizeof(c));
	memset(&f, 0, sizeof(f));
	c.fd = sv[0];
	c.lim = roomy;
	snprintf(c.peer, sizeof(c.peer), "fake");
	buf_init(&c.wbuf);
	buf_init(&big);
	for (int i = 0; i < 300; i++)
		buf_printf(&big, "250-line %03d %s\r\n", i,
		    "of a reply that is longer than the read buffer......");
	buf_appends(&big, "250 end\r\n221 bye\r\n");
	assert_int_equal(write(sv[1], big.data, big.len), (ssize_t)big.len);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_read_reply(&c, &r), 0);
	assert_int_equal(r.code, 250);
	assert_memory_equal(r.text.data, "250-line 000 of", 15);
	assert_int_equal(smtp_client_read_reply(&c, &r), 0);
	assert_int_equal(r.code, 221);
	assert_string_equal(r.text.data, "221 bye\n");
	smtp_reply_free(&r);
	buf_free(&big);
	smtp_client_close(&c, 0);
	close(sv[1]);
}

static void
read_reply_expect_error(const char *wire, size_t len, const char *why)
{
	struct smtp_client c;
	struct smtp_reply r;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(&c, 0, sizeof(c));
	c.fd = sv[0];
	c.lim = roomy;
	snprintf(c.peer, sizeof(c.peer), "fake");
	buf_init(&c.wbuf);
	assert_int_equal(write(sv[1], wire, len), (ssize_t)len);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_read_reply(&c, &r), -1);
	assert_int_equal(r.code, 0);
	assert_true(c.broken);
	if (strstr(r.text.data, why) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", r.text.data, why);
	smtp_reply_free(&r);
	smtp_client_close(&c, 0);
	close(sv[1]);
}

static void
test_read_reply_rejects_malformed_replies_clearly(void **state)
{
	char *longline = malloc(SMTP_REPLY_LINE_MAX + 10);
	read_reply_expect_error("250-ok\r\n550 no\r\n", 16,
	    "malformed reply from fake: code differs from the first line's: \"550 no\"");
	read_reply_expect_error("hello\r\n", 7, "malformed reply from fake: not a reply line: \"hello\"");
	/* A server that never ends its line is not waited for. */
	memset(longline, 'A', SMTP_REPLY_LINE_MAX + 10);
	read_reply_expect_error(longline, SMTP_REPLY_LINE_MAX + 10,
	    "malformed reply from fake: line too long: \"AAAA");
	free(longline);
}

/* ---- EHLO through smtp_client_open on a unix socket ---- */

/* A next hop on a unix socket of this process; the listening socket. */
static int
unix_next_hop(struct mxd_nexthop *nh)
{
	struct sockaddr_un sun;
	int fd;

	memset(nh, 0, sizeof(*nh));
	nh->proto = MXD_NH_SMTP;
	nh->is_unix = 1;
	snprintf(nh->path, sizeof(nh->path), "/tmp/test_smtp_client.%d.sock", (int)getpid());
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", nh->path);
	unlink(nh->path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 1), 0);
	return fd;
}

static void
open_with_ehlo(const char *ehlo, struct smtp_client *c)
{
	const char *replies[] = { ehlo };
	struct mxd_nexthop nh;
	struct smtp_reply r;
	struct fake f;

	memset(&f, 0, sizeof(f));
	f.listen_fd = unix_next_hop(&nh);
	f.greeting = "220 fake ESMTP\r\n";
	f.replies = replies;
	f.nreplies = 1;
	buf_init(&f.cmds);
	buf_init(&f.data);
	assert_int_equal(pthread_create(&f.thread, NULL, fake_run, &f), 0);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_open(c, &nh, "client.test", NULL, &roomy, NULL, &r), 0);
	assert_int_equal(r.code, 250);
	unsigned ext = c->ext;
	char mechs[sizeof(c->auth_mechs)];
	memcpy(mechs, c->auth_mechs, sizeof(mechs));
	finish(c, &f);
	/* What the session learnt stays for the test to look at. */
	c->ext = ext;
	memcpy(c->auth_mechs, mechs, sizeof(mechs));
	close(f.listen_fd);
	unlink(nh.path);
	assert_string_equal(f.cmds.data, "EHLO client.test\n");
	fake_free(&f);
	smtp_reply_free(&r);
}

static void
test_ehlo_records_auth_mechanisms_in_both_forms(void **state)
{
	struct smtp_client c;
	open_with_ehlo("250-fake\r\n250-PIPELINING\r\n250-AUTH=LOGIN PLAIN\r\n"
	    "250-AUTH LOGIN plain CRAM-MD5\r\n250 CHUNKING\r\n", &c);
	assert_int_equal(c.ext, SMTP_EXT_PIPELINING | SMTP_EXT_AUTH_PLAIN | SMTP_EXT_CHUNKING);
	assert_string_equal(c.auth_mechs, "LOGIN PLAIN CRAM-MD5");

	open_with_ehlo("250-fake\r\n250 AUTH=PLAIN\r\n", &c);
	assert_int_equal(c.ext, SMTP_EXT_AUTH_PLAIN);
}

static void
test_ehlo_without_plain_does_not_offer_it(void **state)
{
	struct smtp_client c;
	open_with_ehlo("250-fake\r\n250-AUTH LOGIN XPLAIN PLAINX\r\n250-X-AUTH PLAIN\r\n"
	    "250 AUTHPLAIN\r\n", &c);
	assert_int_equal(c.ext & SMTP_EXT_AUTH_PLAIN, 0);
	assert_string_equal(c.auth_mechs, "LOGIN XPLAIN PLAINX");
}

/* ---- AUTH PLAIN ---- */

/* The base64 of "\0user\0pass", as the wire should carry it. */
static void
plain_b64(const char *user, const char *pass, char *out)
{
	unsigned char raw[600];
	size_t n = 0;
	raw[n++] = 0;
	memcpy(raw + n, user, strlen(user));
	n += strlen(user);
	raw[n++] = 0;
	memcpy(raw + n, pass, strlen(pass));
	n += strlen(pass);
	EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
}

static void
test_auth_plain_refuses_without_tls(void **state)
{
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	start(&c, &f, SMTP_EXT_AUTH_PLAIN, 0, NULL, 0);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_auth_plain(&c, "user", "s3cret", &r), -1);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.text.data,
	    "AUTH PLAIN with fake not attempted: the connection is not TLS-encrypted");
	finish(&c, &f);
	assert_int_equal(f.cmds.len, 0);	/* nothing went out in the clear */
	fake_free(&f);
	smtp_reply_free(&r);
}

static void
test_auth_plain_refuses_when_the_server_does_not_offer_it(void **state)
{
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	start(&c, &f, SMTP_EXT_PIPELINING, 1, NULL, 0);
	snprintf(c.auth_mechs, sizeof(c.auth_mechs), "LOGIN");
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_auth_plain(&c, "user", "s3cret", &r), -1);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.text.data, "AUTH PLAIN with fake not attempted: the server does "
	    "not offer PLAIN (AUTH: LOGIN)");
	finish(&c, &f);
	assert_int_equal(f.cmds.len, 0);
	fake_free(&f);
	smtp_reply_free(&r);
}

static void
test_auth_plain_sends_an_initial_response_over_tls(void **state)
{
	const char *replies[] = { "235 2.7.0 Authentication successful\r\n" };
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	char b64[800], want[900];
	start(&c, &f, SMTP_EXT_AUTH_PLAIN, 1, replies, 1);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_auth_plain(&c, "user@example.org", "s3cret pass", &r), 0);
	assert_int_equal(r.code, 235);
	assert_false(c.broken);
	finish(&c, &f);
	plain_b64("user@example.org", "s3cret pass", b64);
	snprintf(want, sizeof(want), "AUTH PLAIN %s\n", b64);
	assert_string_equal(f.cmds.data, want);
	fake_free(&f);
	smtp_reply_free(&r);
}

static void
test_auth_plain_answers_an_empty_challenge(void **state)
{
	const char *replies[] = { "334 \r\n", "235 2.7.0 ok\r\n" };
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	char b64[800], want[1700];
	start(&c, &f, SMTP_EXT_AUTH_PLAIN, 1, replies, 2);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_auth_plain(&c, "u", "p", &r), 0);
	assert_int_equal(r.code, 235);
	finish(&c, &f);
	plain_b64("u", "p", b64);
	snprintf(want, sizeof(want), "AUTH PLAIN %s\n%s\n", b64, b64);
	assert_string_equal(f.cmds.data, want);
	fake_free(&f);
	smtp_reply_free(&r);
}

static void
test_auth_plain_cancels_a_second_challenge(void **state)
{
	const char *replies[] = { "334 \r\n", "334 bW9yZT8=\r\n", "501 5.7.0 cancelled\r\n" };
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	start(&c, &f, SMTP_EXT_AUTH_PLAIN, 1, replies, 3);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_auth_plain(&c, "u", "p", &r), -1);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.text.data, "challenge"));
	assert_false(c.broken);	/* still in step: the cancel was answered */
	finish(&c, &f);
	assert_non_null(strstr(f.cmds.data, "\n*\n"));
	fake_free(&f);
	smtp_reply_free(&r);
}

/* A refusal comes back as the server said it, less anything that would
 * give the password away if it ended up in a log or a DSN. */
static void
test_auth_plain_refusal_never_carries_the_secret(void **state)
{
	char b64[800], echo[2048];
	const char *replies[] = { echo };
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	plain_b64("user", "hunter2-very-secret", b64);
	snprintf(echo, sizeof(echo), "535-5.7.8 bad credentials %s\r\n"
	    "535 5.7.8 password hunter2-very-secret is wrong\r\n", b64);
	start(&c, &f, SMTP_EXT_AUTH_PLAIN, 1, replies, 1);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_auth_plain(&c, "user", "hunter2-very-secret", &r), -1);
	assert_int_equal(r.code, 535);
	assert_null(strstr(r.text.data, "hunter2"));
	assert_null(strstr(r.text.data, b64));
	assert_string_equal(r.text.data, "535-5.7.8 bad credentials ********\n"
	    "535 5.7.8 password ******** is wrong\n");
	finish(&c, &f);
	fake_free(&f);
	smtp_reply_free(&r);
}

/* ---- BDAT ---- */

/* A spool-like file: a header of hlen bytes, then the message. */
static int
message_file(size_t hlen, size_t size, struct buf *content)
{
	char path[] = "/tmp/test_smtp_client.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	buf_init(content);
	for (size_t i = 0; i < hlen; i++)
		buf_appendc(content, 'H');
	/* Lines a DATA transfer would have to dot-stuff, and raw bytes. */
	static const char *lines[] = { ".\r\n", "..two dots\r\n", "Subject: x\r\n",
	    "\x80\xff binary\r\n", ".leading dot\r\n" };
	for (size_t i = 0; content->len < hlen + size; i++) {
		const char *l = lines[i % 5];
		size_t n = strlen(l);
		if (content->len + n > hlen + size)
			n = hlen + size - content->len;
		buf_append(content, l, n);
	}
	assert_int_equal(write(fd, content->data, content->len), (ssize_t)content->len);
	buf_consume(content, hlen);
	return fd;
}

static void
test_bdat_sends_raw_chunks_and_ends_with_last(void **state)
{
	const char *replies[] = { "250 2.0.0 chunk\r\n", "250 2.0.0 chunk\r\n",
	    "250 2.0.0 queued as ABC\r\n" };
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	struct buf msg;
	int fd = message_file(100, 2 * MIB + MIB / 2, &msg);
	start(&c, &f, 0, 0, replies, 3);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_send_bdat(&c, fd, 100, msg.len, &r), 0);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.text.data, "250 2.0.0 queued as ABC\n");
	finish(&c, &f);
	assert_string_equal(f.cmds.data, "BDAT 1048576\nBDAT 1048576\nBDAT 524288 LAST\n");
	assert_int_equal(f.data.len, msg.len);
	assert_memory_equal(f.data.data, msg.data, msg.len);	/* not dot-stuffed */
	close(fd);
	buf_free(&msg);
	fake_free(&f);
	smtp_reply_free(&r);
}

static void
test_bdat_sends_an_exact_multiple_without_an_empty_chunk(void **state)
{
	const char *replies[] = { "250 ok\r\n", "250 done\r\n" };
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	struct buf msg;
	int fd = message_file(0, 2 * MIB, &msg);
	start(&c, &f, 0, 0, replies, 2);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_send_bdat(&c, fd, 0, msg.len, &r), 0);
	assert_string_equal(r.text.data, "250 done\n");
	finish(&c, &f);
	assert_string_equal(f.cmds.data, "BDAT 1048576\nBDAT 1048576 LAST\n");
	close(fd);
	buf_free(&msg);
	fake_free(&f);
	smtp_reply_free(&r);
}

static void
test_bdat_sends_an_empty_message_as_bdat_0_last(void **state)
{
	const char *replies[] = { "250 2.0.0 queued\r\n" };
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	struct buf msg;
	int fd = message_file(10, 0, &msg);
	start(&c, &f, SMTP_EXT_PIPELINING, 0, replies, 1);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_send_bdat(&c, fd, 10, 0, &r), 0);
	assert_int_equal(r.code, 250);
	finish(&c, &f);
	assert_string_equal(f.cmds.data, "BDAT 0 LAST\n");
	assert_int_equal(f.data.len, 0);
	close(fd);
	buf_free(&msg);
	fake_free(&f);
	smtp_reply_free(&r);
}

static void
test_bdat_stops_at_a_refused_chunk(void **state)
{
	const char *replies[] = { "250 ok\r\n", "552 5.3.4 Message too big\r\n" };
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	struct buf msg;
	int fd = message_file(0, 3 * MIB, &msg);
	start(&c, &f, 0, 0, replies, 2);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_send_bdat(&c, fd, 0, msg.len, &r), 0);
	assert_int_equal(r.code, 552);
	assert_string_equal(r.text.data, "552 5.3.4 Message too big\n");
	assert_false(c.broken);	/* in step: the caller can RSET */
	finish(&c, &f);
	assert_string_equal(f.cmds.data, "BDAT 1048576\nBDAT 1048576\n");
	close(fd);
	buf_free(&msg);
	fake_free(&f);
	smtp_reply_free(&r);
}

/* Ten chunks, at most eight unanswered: the refusal of the second is read
 * once the window is full, nothing more is sent, and every reply to what was
 * sent is read so the session stays in step. */
static void
test_bdat_pipelined_reads_every_reply_and_reports_the_first_refusal(void **state)
{
	const char *replies[] = { "250 ok\r\n", "452 4.3.1 out of space\r\n",
	    "554 5.0.0 later\r\n", "250 ok\r\n", "250 ok\r\n", "250 ok\r\n", "250 ok\r\n",
	    "250 ok\r\n", "250 ok\r\n", "221 never read\r\n" };
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	struct buf msg;
	int fd = message_file(0, 10 * MIB, &msg);
	start(&c, &f, SMTP_EXT_PIPELINING, 0, replies, 10);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_send_bdat(&c, fd, 0, msg.len, &r), 0);
	assert_int_equal(r.code, 452);
	assert_string_equal(r.text.data, "452 4.3.1 out of space\n");
	assert_false(c.broken);
	assert_int_equal(c.rlen, c.rpos);	/* nothing left unread */
	finish(&c, &f);
	size_t n = 0;
	for (const char *p = f.cmds.data; (p = strstr(p, "BDAT 1048576\n")); p++)
		n++;
	assert_int_equal(n, 9);
	assert_null(strstr(f.cmds.data, "LAST"));
	close(fd);
	buf_free(&msg);
	fake_free(&f);
	smtp_reply_free(&r);
}

static void
test_bdat_pipelined_success_returns_the_last_reply(void **state)
{
	const char *replies[] = { "250 ok\r\n", "250 ok\r\n", "250 2.0.0 queued as Q\r\n" };
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	struct buf msg;
	int fd = message_file(3, 2 * MIB + 1, &msg);
	start(&c, &f, SMTP_EXT_PIPELINING, 0, replies, 3);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_send_bdat(&c, fd, 3, msg.len, &r), 0);
	assert_string_equal(r.text.data, "250 2.0.0 queued as Q\n");
	finish(&c, &f);
	assert_string_equal(f.cmds.data, "BDAT 1048576\nBDAT 1048576\nBDAT 1 LAST\n");
	assert_memory_equal(f.data.data, msg.data, msg.len);
	close(fd);
	buf_free(&msg);
	fake_free(&f);
	smtp_reply_free(&r);
}

static void
test_bdat_short_message_file_is_an_error_not_a_hang(void **state)
{
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	struct buf msg;
	int fd = message_file(0, 100, &msg);
	start(&c, &f, 0, 0, NULL, 0);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_send_bdat(&c, fd, 0, 200, &r), -1);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.text.data,
	    "reading the message for fake: it ends 100 bytes short of its size 200");
	assert_true(c.broken);
	finish(&c, &f);
	close(fd);
	buf_free(&msg);
	fake_free(&f);
	smtp_reply_free(&r);
}

/* The server refuses at the BDAT line and hangs up while the chunk is still
 * on its way: its reason, not "broken pipe", is what the caller gets. */
static void
test_bdat_reports_a_refusal_sent_before_hanging_up(void **state)
{
	const char *replies[] = { "554 5.7.1 go away\r\n" };
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	struct buf msg;
	int fd = message_file(0, 4 * MIB, &msg);
	start(&c, &f, 0, 0, replies, 1);
	f.hangup_at_bdat = 1;
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_send_bdat(&c, fd, 0, msg.len, &r), 0);
	assert_int_equal(r.code, 554);
	assert_true(c.broken);
	finish(&c, &f);
	close(fd);
	buf_free(&msg);
	fake_free(&f);
	smtp_reply_free(&r);
}

static void
test_bdat_lost_connection_is_an_io_error(void **state)
{
	struct smtp_client c;
	struct fake f;
	struct smtp_reply r;
	struct buf msg;
	int fd = message_file(0, 4 * MIB, &msg);
	start(&c, &f, 0, 0, NULL, 0);
	f.hangup_at_bdat = 1;
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_send_bdat(&c, fd, 0, msg.len, &r), -1);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.text.data, "lost connection with fake"));
	assert_true(c.broken);
	finish(&c, &f);
	close(fd);
	buf_free(&msg);
	fake_free(&f);
	smtp_reply_free(&r);
}


/* ---- deadlines: a peer that trickles ---- */

/* The other end of a socketpair: it reads `lines` command lines, then
 * sends `text` one byte every `ms` milliseconds (never silent for long),
 * then waits for the client to hang up. With `answer_ms` it instead answers
 * every command line with "250 ok" after that many milliseconds; with
 * `read_chunk` it reads what it is sent, that many bytes every `ms`. */
struct peer {
	int		 fd;
	int		 listen_fd;	/* accept first (smtp_client_open) */
	int		 lines;
	const char	*text;
	int		 ms;
	int		 answer_ms;
	size_t		 read_chunk;
	size_t		 sent;		/* bytes of text sent */
	pthread_t	 thread;
};

static int
peer_line(int fd)
{
	char ch;
	do
		if (read(fd, &ch, 1) != 1)
			return -1;
	while (ch != '\n');
	return 0;
}

static void *
peer_run(void *arg)
{
	struct peer *p = arg;
	char buf[65536];

	if (p->listen_fd > 0)
		p->fd = accept(p->listen_fd, NULL, NULL);
	for (int i = 0; i < p->lines; i++)
		if (peer_line(p->fd) < 0)
			return NULL;
	if (p->answer_ms > 0) {
		while (peer_line(p->fd) == 0) {
			usleep((useconds_t)p->answer_ms * 1000);
			if (write(p->fd, "250 ok\r\n", 8) != 8)
				break;
		}
		return NULL;
	}
	if (p->read_chunk > 0) {
		while (read(p->fd, buf, p->read_chunk) > 0)
			usleep((useconds_t)p->ms * 1000);
		return NULL;
	}
	for (const char *t = p->text; t && *t; t++) {
		if (write(p->fd, t, 1) != 1)
			break;
		p->sent++;
		usleep((useconds_t)p->ms * 1000);
	}
	while (read(p->fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

static void
peer_start(struct smtp_client *c, struct peer *p)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p->fd = sv[1];
	memset(c, 0, sizeof(*c));
	c->fd = sv[0];
	snprintf(c->peer, sizeof(c->peer), "fake");
	buf_init(&c->wbuf);
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
	assert_int_equal(pthread_create(&p->thread, NULL, peer_run, p), 0);
}

static void
peer_finish(struct smtp_client *c, struct peer *p)
{
	smtp_client_close(c, 0);
	pthread_join(p->thread, NULL);
	close(p->fd);
}

static void
assert_says(const struct smtp_reply *r, const char *want)
{
	if (r->text.data == NULL || strstr(r->text.data, want) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", r->text.data ? r->text.data : "", want);
}

/* One byte every 100 ms is never 500 ms of silence: the reply is cut off
 * 500 ms after MAIL went out, not when the server falls silent. */
static void
test_reply_trickling_a_byte_at_a_time_is_cut_off_at_its_deadline(void **state)
{
	struct smtp_client c;
	struct smtp_reply r;
	struct peer p = { .lines = 1, .ms = 100,
	    .text = "250 2.1.0 this reply comes one byte at a time, slowly enough to take "
	    "about eight seconds in all\r\n" };
	peer_start(&c, &p);
	set_deadlines(&c, 500, 60000, 0, 60000, 1 << 30);
	smtp_reply_init(&r);
	smtp_client_cmd(&c, "MAIL FROM:<a@example.org>");
	uint64_t t0 = now_ms();
	assert_int_equal(smtp_client_read_reply(&c, &r), -1);
	uint64_t took = now_ms() - t0;
	assert_int_equal(r.code, 0);
	assert_says(&r, "451 4.4.2 timeout: MAIL answer not complete after 0.5 s from fake");
	assert_true(c.broken);
	assert_true(p.sent > 0);	/* it was talking all along */
	assert_true(took >= 450);
	assert_true(took < 4000);	/* far from the ~8 s the whole reply takes */
	peer_finish(&c, &p);
	smtp_reply_free(&r);
}

/* A greeting that trickles in holds smtp_client_open no longer than the
 * command deadline. */
static void
test_open_gives_up_on_a_trickling_greeting(void **state)
{
	struct smtp_client c;
	struct smtp_reply r;
	struct mxd_nexthop nh;
	struct smtp_client_limits lim = { .connect_ms = 5000, .command_ms = 500,
	    .data_ms = 60000, .body_min_ms = 60000, .min_data_rate = 1 << 30 };
	struct peer p = { .ms = 100, .text = "220 slow.example ESMTP a greeting that takes about "
	    "eight seconds to arrive in full\r\n" };
	int lfd = unix_next_hop(&nh);

	smtp_reply_init(&r);
	p.listen_fd = lfd;
	assert_int_equal(pthread_create(&p.thread, NULL, peer_run, &p), 0);
	uint64_t t0 = now_ms();
	assert_int_equal(smtp_client_open(&c, &nh, "client.test", NULL, &lim, NULL, &r), -1);
	uint64_t took = now_ms() - t0;
	assert_int_equal(r.code, 0);
	assert_says(&r, "451 4.4.2 timeout: greeting not complete after 0.5 s from");
	assert_true(p.sent > 0);
	assert_true(took < 4000);
	pthread_join(p.thread, NULL);
	close(p.fd);
	close(lfd);
	unlink(nh.path);
	smtp_reply_free(&r);
}

/* A peer that answers every command after 0.4 s, and MAIL sent to it. */
static void
mail_to_a_slow_peer(struct smtp_client *c, struct peer *p, struct smtp_reply *r,
    int command_ms, int transaction_ms)
{
	memset(p, 0, sizeof(*p));
	p->answer_ms = 400;
	peer_start(c, p);
	set_deadlines(c, command_ms, 60000, transaction_ms, 60000, 1 << 30);
	smtp_reply_init(r);
	smtp_client_cmd(c, "MAIL FROM:<a@example.org>");
}

/* Each reply comes in time, but together they take longer than the
 * transaction may: MAIL starts the transaction's clock. */
static void
test_transaction_deadline_bounds_replies_that_each_come_in_time(void **state)
{
	struct smtp_client c;
	struct smtp_reply r;
	struct peer p;
	mail_to_a_slow_peer(&c, &p, &r, 3000, 1000);
	assert_int_equal(smtp_client_read_reply(&c, &r), 0);
	int rc = 0;
	for (int i = 0; i < 10 && rc == 0; i++) {
		smtp_client_cmd(&c, "RCPT TO:<b%d@example.org>", i);
		rc = smtp_client_read_reply(&c, &r);
	}
	assert_int_equal(rc, -1);
	assert_int_equal(r.code, 0);
	assert_says(&r, "451 4.4.2 timeout: transaction with fake not complete after 1 s "
	    "(RCPT answer)");
	assert_true(c.broken);
	peer_finish(&c, &p);
	smtp_reply_free(&r);
}

/* A server that takes the message a few bytes at a time is cut off when
 * the time for the whole message is up. */
static void
test_body_read_slowly_by_the_server_is_cut_off_at_its_deadline(void **state)
{
	struct smtp_client c;
	struct smtp_reply r;
	struct peer p = { .read_chunk = 16384, .ms = 50 };
	struct buf msg;
	int fd = message_file(0, 4 * MIB, &msg);
	peer_start(&c, &p);
	/* Half a second, and as much again for 4 MiB at 8 MiB/s. */
	set_deadlines(&c, 60000, 60000, 0, 500, 8 * MIB);
	smtp_reply_init(&r);
	uint64_t t0 = now_ms();
	assert_int_equal(smtp_client_send_data(&c, fd, 0, &r), -1);
	uint64_t took = now_ms() - t0;
	assert_true(c.broken);
	assert_true(took >= 900);
	assert_true(took < 5000);	/* the whole message takes ~13 s at that pace */
	assert_int_equal(r.code, 0);
	assert_says(&r, "451 4.4.2 timeout: message not sent to fake after 1 s (4194304 bytes, "
	    "at least 8388608 bytes/s)");
	peer_finish(&c, &p);
	close(fd);
	buf_free(&msg);
	smtp_reply_free(&r);
}

/* Pipelined commands go out together; each reply gets the command deadline
 * from the end of the reply before it, so a server that answers each in
 * 0.4 s is not cut off at the fourth for want of 1 s in all. */
static void
test_pipelined_replies_each_get_their_own_deadline(void **state)
{
	struct smtp_client c;
	struct smtp_reply r;
	struct peer p;
	mail_to_a_slow_peer(&c, &p, &r, 1000, 0);
	for (int i = 0; i < 5; i++)
		smtp_client_cmd(&c, "RCPT TO:<b%d@example.org>", i);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(smtp_client_read_reply(&c, &r), 0);
		assert_int_equal(r.code, 250);
	}
	assert_false(c.broken);
	peer_finish(&c, &p);
	smtp_reply_free(&r);
}

/* The reply to the end of the message has data_ms, longer than a command's
 * (a server scanning the message takes its time). */
static void
test_end_of_data_reply_has_the_data_deadline(void **state)
{
	struct smtp_client c;
	struct smtp_reply r;
	/* Three lines of message, then "." and RSET are each answered late. */
	struct peer p = { .lines = 3, .answer_ms = 1500 };
	char path[] = "/tmp/test_smtp_client.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, "Subject: x\r\n\r\nbody\r\n", 21), 21);
	peer_start(&c, &p);
	set_deadlines(&c, 500, 10000, 0, 10000, 1 << 30);
	smtp_reply_init(&r);
	assert_int_equal(smtp_client_send_data(&c, fd, 0, &r), 0);
	assert_int_equal(smtp_client_read_reply(&c, &r), 0);
	assert_int_equal(r.code, 250);
	/* A command after it has command_ms again: 1.5 s is too long. */
	smtp_client_cmd(&c, "RSET");
	assert_int_equal(smtp_client_read_reply(&c, &r), -1);
	assert_says(&r, "451 4.4.2 timeout: RSET answer not complete after 0.5 s from fake");
	peer_finish(&c, &p);
	close(fd);
	smtp_reply_free(&r);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	tls_setup();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_keeps_every_line_of_a_multiline_reply),
		cmocka_unit_test(test_parse_leaves_the_next_pipelined_reply),
		cmocka_unit_test(test_parse_accepts_a_bare_code_and_a_bare_lf),
		cmocka_unit_test(test_parse_waits_for_the_last_line),
		cmocka_unit_test(test_parse_rejects_malformed_lines),
		cmocka_unit_test(test_parse_rejects_an_overlong_line),
		cmocka_unit_test(test_parse_rejects_too_many_lines_and_bounds_the_text),
		cmocka_unit_test(test_read_reply_spans_reads_larger_than_the_buffer),
		cmocka_unit_test(test_read_reply_rejects_malformed_replies_clearly),
		cmocka_unit_test(test_ehlo_records_auth_mechanisms_in_both_forms),
		cmocka_unit_test(test_ehlo_without_plain_does_not_offer_it),
		cmocka_unit_test(test_auth_plain_refuses_without_tls),
		cmocka_unit_test(test_auth_plain_refuses_when_the_server_does_not_offer_it),
		cmocka_unit_test(test_auth_plain_sends_an_initial_response_over_tls),
		cmocka_unit_test(test_auth_plain_answers_an_empty_challenge),
		cmocka_unit_test(test_auth_plain_cancels_a_second_challenge),
		cmocka_unit_test(test_auth_plain_refusal_never_carries_the_secret),
		cmocka_unit_test(test_bdat_sends_raw_chunks_and_ends_with_last),
		cmocka_unit_test(test_bdat_sends_an_exact_multiple_without_an_empty_chunk),
		cmocka_unit_test(test_bdat_sends_an_empty_message_as_bdat_0_last),
		cmocka_unit_test(test_bdat_stops_at_a_refused_chunk),
		cmocka_unit_test(test_bdat_pipelined_reads_every_reply_and_reports_the_first_refusal),
		cmocka_unit_test(test_bdat_pipelined_success_returns_the_last_reply),
		cmocka_unit_test(test_bdat_short_message_file_is_an_error_not_a_hang),
		cmocka_unit_test(test_bdat_reports_a_refusal_sent_before_hanging_up),
		cmocka_unit_test(test_bdat_lost_connection_is_an_io_error),
		cmocka_unit_test(test_reply_trickling_a_byte_at_a_time_is_cut_off_at_its_deadline),
		cmocka_unit_test(test_open_gives_up_on_a_trickling_greeting),
		cmocka_unit_test(test_transaction_deadline_bounds_replies_that_each_come_in_time),
		cmocka_unit_test(test_body_read_slowly_by_the_server_is_cut_off_at_its_deadline),
		cmocka_unit_test(test_pipelined_replies_each_get_their_own_deadline),
		cmocka_unit_test(test_end_of_data_reply_has_the_data_deadline),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	SSL_CTX_free(server_tls);
	SSL_CTX_free(client_tls);
	return rc;
}
