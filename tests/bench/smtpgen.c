/*
 * smtpgen - SMTP load generator for the mxfleet benchmark (tests/bench).
 *
 * Postfix's smtp-source has no TLS, so the STARTTLS half of the benchmark needs
 * a generator that speaks STARTTLS and is the same program for every target.
 * One process, one epoll loop, N non-blocking sessions: the generator shares the
 * two cores with the server under test, so it must cost as little CPU as
 * smtp-source does (no threads, no per-message allocation).
 *
 * Modes:
 *   plain       EHLO, then MAIL/RCPT/DATA per message on a reused connection
 *   -S          the same after EHLO, STARTTLS, handshake, EHLO
 *   -r 0        no message at all: a session is connect, EHLO, [STARTTLS,
 *               handshake, EHLO,] QUIT -- the STARTTLS session rate
 *   -R          implicit TLS from the first byte, handshake, close_notify: the
 *               bare handshake rate of openssl s_server, as a ceiling
 *
 * The last line of output is machine readable ("RESULT key=value ...") for
 * tests/bench/smtp_accept.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define SMTPGEN_MAX_SESSIONS 1024
#define SMTPGEN_MAX_TARGETS 16
#define SMTPGEN_RBUF 8192
/* Replies printed verbatim before we only count them: enough to diagnose. */
#define SMTPGEN_MAX_SHOWN_ERRORS 10

enum smtpgen_state {
	ST_IDLE,       /* no connection */
	ST_CONNECTING, /* waiting for connect() to finish */
	ST_GREETING,   /* waiting for 220 */
	ST_EHLO,       /* first EHLO sent */
	ST_STARTTLS,   /* STARTTLS sent, waiting for 220 */
	ST_HANDSHAKE,  /* TLS handshake in progress */
	ST_EHLO_TLS,   /* EHLO inside TLS sent */
	ST_RSET,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_DOT,        /* body and final dot sent */
	ST_QUIT,
	ST_CLOSING,    /* raw TLS: close_notify sent, waiting for the peer's EOF */
	ST_RECOVER,    /* RSET after a refused MAIL or RCPT */
};

static const char *const smtpgen_state_name[] = {
	"idle", "connecting", "greeting", "ehlo", "starttls", "handshake",
	"ehlo-tls", "rset", "mail", "rcpt", "data", "dot", "quit", "closing",
	"recover",
};

struct smtpgen_session {
	int fd;
	SSL *ssl;
	enum smtpgen_state state;
	int target;
	int msgs_on_conn;
	bool claimed_session;  /* -r 0 / -R: this connection holds a work slot */
	bool txn_failed;       /* a pipelined MAIL or RCPT was refused */
	bool write_wants_read; /* SSL_write asked for readability */
	bool read_wants_write; /* SSL_read/SSL_connect asked for writability */
	uint32_t events;       /* what epoll currently watches for this fd */
	double t_txn;          /* when MAIL was sent, for latency */
	double t_active;       /* last progress, for the idle timeout */
	size_t rlen;
	char rbuf[SMTPGEN_RBUF];
	size_t olen, ooff;
	char *obuf; /* command text or command + body; sized at start */
};

struct smtpgen_target {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	const char *spec;
};

/* Options. */
static int opt_sessions = 16;
static long opt_count = 5000;
static long opt_per_conn = -1; /* -1: reuse the connection until work runs out */
static bool opt_starttls;
static bool opt_rawtls;
static bool opt_pipeline;
static bool opt_rset;
static int opt_length = 5120;
static double opt_time_limit = 120;
static double opt_idle_timeout = 30;
static const char *opt_from = "bench@client.bench.test";
static const char *opt_to = "sink@bench.test";
static const char *opt_helo = "client.bench.test";
static const char *opt_sni;
static int opt_tls_max;
static int opt_verbose;
static bool opt_quiet;

static struct smtpgen_target targets[SMTPGEN_MAX_TARGETS];
static int ntargets;
static struct smtpgen_session *sessions;
static int epfd;
static SSL_CTX *ssl_ctx;

/* The message: headers plus payload, dot-stuffing unnecessary (no line starts
 * with a dot), terminated by CRLF.CRLF. Built once, copied per message. */
static char *message;
static size_t message_len;
static size_t obuf_size;

/* Counters. */
static long claimed;         /* work units handed out (messages or sessions) */
static long done_ok;         /* units completed successfully */
static long errors;          /* failed units, refused commands, broken connections */
static long connects;
static long handshakes;
static long setup_failures;   /* sessions that failed before any transaction */
static long shown_errors;
static char tls_seen[96];     /* version/cipher of the first handshake */
static double *latencies;    /* per message MAIL->250, seconds */
static long nlatencies;
static double t_start, t_deadline;
static bool stopping;        /* time limit passed: no new work */
static volatile sig_atomic_t interrupted;

static double
smtpgen_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void __attribute__((noreturn, format(printf, 1, 2)))
smtpgen_fatal(const char *fmt, ...)
{
	va_list ap;

	fputs("smtpgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void __attribute__((format(printf, 2, 3)))
smtpgen_error(struct smtpgen_session *s, const char *fmt, ...)
{
	va_list ap;

	errors++;
	/* A server that refuses every session before any transaction would
	 * otherwise be reconnected to forever. */
	if (s->state < ST_RSET)
		setup_failures++;
	if (shown_errors >= SMTPGEN_MAX_SHOWN_ERRORS && opt_verbose == 0)
		return;
	shown_errors++;
	fprintf(stderr, "smtpgen: session %d (%s, %s): ", (int)(s - sessions),
	    targets[s->target].spec, smtpgen_state_name[s->state]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (shown_errors == SMTPGEN_MAX_SHOWN_ERRORS && opt_verbose == 0)
		fprintf(stderr, "smtpgen: further errors are counted, not shown\n");
}

static bool
smtpgen_counting_sessions(void)
{
	return opt_rawtls || opt_per_conn == 0;
}

/* Hands out one unit of work (a message, or a session in -r 0 / -R mode). */
static bool
smtpgen_claim(void)
{
	if (stopping || interrupted || claimed >= opt_count)
		return false;
	claimed++;
	return true;
}

static void
smtpgen_watch(struct smtpgen_session *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };

	if (events == s->events)
		return;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
		smtpgen_fatal("epoll_ctl: %s", strerror(errno));
	s->events = events;
}

static void
smtpgen_close(struct smtpgen_session *s)
{
	if (s->ssl) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0) {
		close(s->fd); /* also removes it from the epoll set */
		s->fd = -1;
	}
	s->state = ST_IDLE;
	s->rlen = 0;
	s->olen = s->ooff = 0;
	s->events = 0;
	s->write_wants_read = s->read_wants_write = false;
}

/* A connection broke: the unit it was working on is lost. */
static void
smtpgen_fail_connection(struct smtpgen_session *s, const char *why)
{
	if (s->state == ST_CLOSING) {
		/* Raw TLS: the handshake is complete, how the peer closes is its business. */
		if (s->claimed_session)
			done_ok++;
	} else if (s->state != ST_QUIT) {
		smtpgen_error(s, "connection lost: %s", why);
	}
	smtpgen_close(s);
}

static void
smtpgen_connect(struct smtpgen_session *s)
{
	struct smtpgen_target *t;
	struct epoll_event ev;
	int one = 1;

	/* A session-counting run hands out its unit at connect time, so no more
	 * connections are opened than there are sessions to run. */
	if (smtpgen_counting_sessions() && !smtpgen_claim())
		return;
	s->claimed_session = smtpgen_counting_sessions();
	s->target = (int)(s - sessions) % ntargets;
	t = &targets[s->target];
	s->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		smtpgen_fatal("socket: %s", strerror(errno));
	/* The body goes out in one write anyway; NODELAY keeps Nagle from adding
	 * a delayed-ACK wait to a short trailing segment. */
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->msgs_on_conn = 0;
	s->t_active = smtpgen_now();
	connects++;
	if (connect(s->fd, (struct sockaddr *)&t->addr, t->addrlen) < 0 && errno != EINPROGRESS) {
		s->state = ST_CONNECTING;
		smtpgen_fail_connection(s, strerror(errno));
		return;
	}
	s->state = ST_CONNECTING;
	ev.events = EPOLLOUT;
	ev.data.ptr = s;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
		smtpgen_fatal("epoll_ctl add: %s", strerror(errno));
	s->events = EPOLLOUT;
}

static void __attribute__((format(printf, 2, 3)))
smtpgen_queue(struct smtpgen_session *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s->obuf + s->olen, obuf_size - s->olen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= obuf_size - s->olen)
		smtpgen_fatal("command does not fit the output buffer");
	s->olen += (size_t)n;
}

static void
smtpgen_queue_message(struct smtpgen_session *s)
{
	if (obuf_size - s->olen < message_len)
		smtpgen_fatal("message does not fit the output buffer");
	memcpy(s->obuf + s->olen, message, message_len);
	s->olen += message_len;
}

/* Starts the next transaction on this connection, or ends the session. */
static void
smtpgen_next(struct smtpgen_session *s)
{
	bool more = !smtpgen_counting_sessions() &&
	    (opt_per_conn < 0 || s->msgs_on_conn < opt_per_conn) && smtpgen_claim();

	if (!more) {
		smtpgen_queue(s, "QUIT\r\n");
		s->state = ST_QUIT;
		return;
	}
	s->txn_failed = false;
	s->t_txn = smtpgen_now();
	if (opt_rset && s->msgs_on_conn > 0) {
		smtpgen_queue(s, "RSET\r\n");
		s->state = ST_RSET;
		if (!opt_pipeline)
			return;
	} else {
		s->state = ST_MAIL;
	}
	smtpgen_queue(s, "MAIL FROM:<%s> SIZE=%zu\r\n", opt_from, message_len);
	if (opt_pipeline)
		smtpgen_queue(s, "RCPT TO:<%s>\r\nDATA\r\n", opt_to);
}

static void
smtpgen_txn_done(struct smtpgen_session *s, bool ok)
{
	double lat = smtpgen_now() - s->t_txn;

	s->msgs_on_conn++;
	if (ok) {
		done_ok++;
		if (nlatencies < opt_count)
			latencies[nlatencies++] = lat;
	}
}

static bool
smtpgen_start_tls(struct smtpgen_session *s)
{
	s->ssl = SSL_new(ssl_ctx);
	if (s->ssl == NULL)
		smtpgen_fatal("SSL_new failed");
	SSL_set_fd(s->ssl, s->fd);
	SSL_set_connect_state(s->ssl);
	if (opt_sni)
		SSL_set_tlsext_host_name(s->ssl, opt_sni);
	s->state = ST_HANDSHAKE;
	return true;
}

/* Reacts to one complete (possibly multi-line) reply. Returns false when the
 * session was closed. */
static bool
smtpgen_reply(struct smtpgen_session *s, int code, const char *text, bool has_starttls)
{
	switch (s->state) {
	case ST_GREETING:
		if (code != 220) {
			smtpgen_error(s, "greeting: %s", text);
			smtpgen_close(s);
			return false;
		}
		smtpgen_queue(s, "EHLO %s\r\n", opt_helo);
		s->state = ST_EHLO;
		return true;
	case ST_EHLO:
		if (code != 250) {
			smtpgen_error(s, "EHLO: %s", text);
			smtpgen_close(s);
			return false;
		}
		if (opt_starttls) {
			if (!has_starttls) {
				smtpgen_error(s, "STARTTLS not offered");
				smtpgen_close(s);
				return false;
			}
			smtpgen_queue(s, "STARTTLS\r\n");
			s->state = ST_STARTTLS;
			return true;
		}
		smtpgen_next(s);
		return true;
	case ST_STARTTLS:
		if (code != 220) {
			smtpgen_error(s, "STARTTLS: %s", text);
			smtpgen_close(s);
			return false;
		}
		if (s->rlen != 0) {
			smtpgen_error(s, "plaintext after the STARTTLS reply");
			smtpgen_close(s);
			return false;
		}
		return smtpgen_start_tls(s);
	case ST_EHLO_TLS:
		if (code != 250) {
			smtpgen_error(s, "EHLO after STARTTLS: %s", text);
			smtpgen_close(s);
			return false;
		}
		smtpgen_next(s);
		return true;
	case ST_RSET:
		if (code != 250) {
			smtpgen_error(s, "RSET: %s", text);
			s->txn_failed = true;
		}
		if (opt_pipeline) {
			s->state = ST_MAIL;
			return true;
		}
		smtpgen_queue(s, "MAIL FROM:<%s> SIZE=%zu\r\n", opt_from, message_len);
		s->state = ST_MAIL;
		return true;
	case ST_MAIL:
	case ST_RCPT:
		if (code != 250) {
			smtpgen_error(s, "%s: %s", s->state == ST_MAIL ? "MAIL" : "RCPT", text);
			s->txn_failed = true;
			if (!opt_pipeline) {
				/* Unit consumed, not retried: keeps the run bounded. */
				smtpgen_txn_done(s, false);
				if (code == 421) {
					smtpgen_close(s);
					return false;
				}
				smtpgen_queue(s, "RSET\r\n");
				s->state = ST_RECOVER;
				return true;
			}
		}
		if (s->state == ST_MAIL) {
			s->state = ST_RCPT;
			if (!opt_pipeline)
				smtpgen_queue(s, "RCPT TO:<%s>\r\n", opt_to);
		} else {
			s->state = ST_DATA;
			if (!opt_pipeline)
				smtpgen_queue(s, "DATA\r\n");
		}
		return true;
	case ST_DATA:
		if (code != 354) {
			if (!s->txn_failed)
				smtpgen_error(s, "DATA: %s", text);
			smtpgen_txn_done(s, false);
			if (code == 421) {
				smtpgen_close(s);
				return false;
			}
			smtpgen_next(s);
			return true;
		}
		smtpgen_queue_message(s);
		s->state = ST_DOT;
		return true;
	case ST_DOT:
		if (code != 250)
			smtpgen_error(s, "end of data: %s", text);
		smtpgen_txn_done(s, code == 250 && !s->txn_failed);
		if (code == 421) {
			smtpgen_close(s);
			return false;
		}
		smtpgen_next(s);
		return true;
	case ST_RECOVER:
		if (code != 250) {
			smtpgen_error(s, "RSET: %s", text);
			smtpgen_close(s);
			return false;
		}
		smtpgen_next(s);
		return true;
	case ST_QUIT:
		if (code != 221)
			smtpgen_error(s, "QUIT: %s", text);
		else if (s->claimed_session)
			done_ok++;
		s->claimed_session = false;
		if (s->ssl) {
			/* A polite close_notify; the peer's answer is not awaited. */
			SSL_set_shutdown(s->ssl, SSL_RECEIVED_SHUTDOWN);
			SSL_shutdown(s->ssl);
		}
		smtpgen_close(s);
		return false;
	default:
		smtpgen_error(s, "unexpected reply: %s", text);
		smtpgen_close(s);
		return false;
	}
}

/* Splits the read buffer into replies. A reply ends with a line whose fourth
 * character is not '-'. */
static bool
smtpgen_parse(struct smtpgen_session *s)
{
	size_t start = 0;

	for (;;) {
		size_t pos = start, line_start = start;
		bool complete = false, has_starttls = false;
		int code = 0;
		char *nl;

		while ((nl = memchr(s->rbuf + pos, '\n', s->rlen - pos)) != NULL) {
			size_t len = (size_t)(nl - (s->rbuf + line_start));
			const char *line = s->rbuf + line_start;

			if (len >= 12 && strncasecmp(line + 4, "STARTTLS", 8) == 0)
				has_starttls = true;
			pos = (size_t)(nl - s->rbuf) + 1;
			if (len < 4 || line[3] != '-') {
				code = atoi(line);
				complete = true;
				break;
			}
			line_start = pos;
		}
		if (!complete)
			break;
		{
			char text[128];
			size_t tl = pos - start;
			bool alive;

			if (tl > sizeof(text) - 1)
				tl = sizeof(text) - 1;
			memcpy(text, s->rbuf + start, tl);
			text[tl] = '\0';
			text[strcspn(text, "\r\n")] = '\0';
			start = pos;
			/* The STARTTLS check on leftover input needs the buffer shifted. */
			memmove(s->rbuf, s->rbuf + start, s->rlen - start);
			s->rlen -= start;
			start = 0;
			alive = smtpgen_reply(s, code, text, has_starttls);
			if (!alive)
				return false;
			if (s->state == ST_HANDSHAKE)
				return true;
		}
	}
	if (s->rlen == sizeof(s->rbuf)) {
		smtpgen_error(s, "reply line too long");
		smtpgen_close(s);
		return false;
	}
	return true;
}

static const char *
smtpgen_ssl_why(SSL *ssl, int ret)
{
	static char buf[256];
	int err = SSL_get_error(ssl, ret);
	unsigned long e = ERR_peek_error();

	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		ERR_clear_error();
		return buf;
	}
	if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0))
		return "EOF";
	if (err == SSL_ERROR_SYSCALL)
		return strerror(errno);
	snprintf(buf, sizeof(buf), "SSL error %d", err);
	return buf;
}

/* Returns false when the session was closed. */
static bool
smtpgen_flush(struct smtpgen_session *s)
{
	s->write_wants_read = false;
	while (s->ooff < s->olen) {
		ssize_t n;

		if (s->ssl) {
			int r = SSL_write(s->ssl, s->obuf + s->ooff, (int)(s->olen - s->ooff));

			if (r <= 0) {
				int err = SSL_get_error(s->ssl, r);

				if (err == SSL_ERROR_WANT_WRITE)
					return true;
				if (err == SSL_ERROR_WANT_READ) {
					s->write_wants_read = true;
					return true;
				}
				smtpgen_fail_connection(s, smtpgen_ssl_why(s->ssl, r));
				return false;
			}
			n = r;
		} else {
			n = write(s->fd, s->obuf + s->ooff, s->olen - s->ooff);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return true;
				smtpgen_fail_connection(s, strerror(errno));
				return false;
			}
		}
		s->ooff += (size_t)n;
	}
	s->olen = s->ooff = 0;
	return true;
}

static bool
smtpgen_handshake(struct smtpgen_session *s)
{
	int r = SSL_connect(s->ssl);

	if (r != 1) {
		int err = SSL_get_error(s->ssl, r);

		if (err == SSL_ERROR_WANT_READ)
			return true;
		if (err == SSL_ERROR_WANT_WRITE) {
			s->read_wants_write = true;
			return true;
		}
		smtpgen_fail_connection(s, smtpgen_ssl_why(s->ssl, r));
		return false;
	}
	handshakes++;
	if (tls_seen[0] == '\0')
		snprintf(tls_seen, sizeof(tls_seen), "%s/%s", SSL_get_version(s->ssl),
		    SSL_get_cipher_name(s->ssl));
	if (opt_rawtls) {
		/* Handshake complete: say goodbye and wait for the server to close,
		 * so the server's side of the work is counted in the elapsed time. */
		SSL_shutdown(s->ssl);
		shutdown(s->fd, SHUT_WR);
		s->state = ST_CLOSING;
		return true;
	}
	smtpgen_queue(s, "EHLO %s\r\n", opt_helo);
	s->state = ST_EHLO_TLS;
	return true;
}

/* Reads what is there and feeds the parser. Returns false when closed. */
static bool
smtpgen_read(struct smtpgen_session *s)
{
	s->read_wants_write = false;
	for (;;) {
		ssize_t n;
		size_t room = sizeof(s->rbuf) - s->rlen;

		if (s->state == ST_CLOSING) {
			char sink[4096];

			n = read(s->fd, sink, sizeof(sink));
			if (n > 0)
				continue;
			if (n < 0 && errno == EAGAIN)
				return true;
			smtpgen_fail_connection(s, "closed");
			return false;
		}
		if (s->state == ST_HANDSHAKE) {
			if (!smtpgen_handshake(s))
				return false;
			if (s->state == ST_HANDSHAKE)
				return true;
			continue;
		}
		if (room == 0)
			return smtpgen_parse(s);
		if (s->ssl) {
			int r = SSL_read(s->ssl, s->rbuf + s->rlen, (int)room);

			if (r <= 0) {
				int err = SSL_get_error(s->ssl, r);

				if (err == SSL_ERROR_WANT_READ)
					return true;
				if (err == SSL_ERROR_WANT_WRITE) {
					s->read_wants_write = true;
					return true;
				}
				if (s->state == ST_QUIT) {
					smtpgen_close(s);
					return false;
				}
				smtpgen_fail_connection(s, smtpgen_ssl_why(s->ssl, r));
				return false;
			}
			n = r;
		} else {
			n = read(s->fd, s->rbuf + s->rlen, room);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return true;
			if (n <= 0) {
				if (s->state == ST_QUIT) {
					smtpgen_close(s);
					return false;
				}
				smtpgen_fail_connection(s, n == 0 ? "EOF" : strerror(errno));
				return false;
			}
		}
		s->rlen += (size_t)n;
		s->t_active = smtpgen_now();
		if (!smtpgen_parse(s))
			return false;
		if (s->state == ST_HANDSHAKE && s->olen == 0)
			continue;
		/* Send what the replies produced before reading more. */
		if (s->olen > 0 && !smtpgen_flush(s))
			return false;
	}
}

static void
smtpgen_connected(struct smtpgen_session *s)
{
	int err = 0;
	socklen_t len = sizeof(err);

	getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err != 0) {
		smtpgen_fail_connection(s, strerror(err));
		return;
	}
	s->t_active = smtpgen_now();
	if (opt_rawtls) {
		smtpgen_start_tls(s);
		return;
	}
	s->state = ST_GREETING;
}

/* One readiness event: make all the progress possible, then set the interest. */
static void
smtpgen_event(struct smtpgen_session *s, uint32_t ev)
{
	uint32_t want;

	if (s->state == ST_CONNECTING) {
		smtpgen_connected(s);
		if (s->fd < 0)
			return;
		if (s->state == ST_HANDSHAKE && !smtpgen_read(s))
			return;
	} else {
		if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && s->olen > 0 && !smtpgen_flush(s))
			return;
		if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) || s->read_wants_write ||
		    s->write_wants_read) {
			if (!smtpgen_read(s))
				return;
		}
	}
	if (s->olen > 0 && !smtpgen_flush(s))
		return;
	want = EPOLLIN;
	if ((s->olen > 0 && !s->write_wants_read) || s->read_wants_write)
		want |= EPOLLOUT;
	smtpgen_watch(s, want);
}

static void
smtpgen_build_message(void)
{
	char hdr[512];
	int hl;
	size_t i, body = (size_t)opt_length;
	char *p;

	hl = snprintf(hdr, sizeof(hdr),
	    "From: <%s>\r\nTo: <%s>\r\nSubject: mxfleet benchmark\r\n"
	    "Message-Id: <bench@client.bench.test>\r\n\r\n", opt_from, opt_to);
	if (hl < 0 || (size_t)hl >= sizeof(hdr))
		smtpgen_fatal("header too long");
	message = malloc((size_t)hl + body + 8);
	if (message == NULL)
		smtpgen_fatal("out of memory");
	memcpy(message, hdr, (size_t)hl);
	p = message + hl;
	/* Payload: 78 printable characters and CRLF per line, like ordinary text. */
	for (i = 0; i < body; i++) {
		size_t col = i % 80;

		if (col == 78)
			p[i] = '\r';
		else if (col == 79)
			p[i] = '\n';
		else
			p[i] = (char)('a' + (i / 80 + col) % 26);
	}
	p += body;
	/* End the payload with a line break whatever its length. */
	if (body < 2 || p[-2] != '\r' || p[-1] != '\n') {
		*p++ = '\r';
		*p++ = '\n';
	}
	memcpy(p, ".\r\n", 3);
	p += 3;
	message_len = (size_t)(p - message);
}

static void
smtpgen_parse_target(const char *spec)
{
	char host[256];
	const char *port, *colon;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	int rc;
	size_t hl;

	if (ntargets == SMTPGEN_MAX_TARGETS)
		smtpgen_fatal("too many targets");
	if (spec[0] == '[') {
		colon = strstr(spec, "]:");
		if (colon == NULL)
			smtpgen_fatal("bad target %s (want [IPv6]:port)", spec);
		hl = (size_t)(colon - spec - 1);
		port = colon + 2;
		spec++;
	} else {
		colon = strrchr(spec, ':');
		if (colon == NULL)
			smtpgen_fatal("bad target %s (want host:port)", spec);
		hl = (size_t)(colon - spec);
		port = colon + 1;
	}
	if (hl >= sizeof(host))
		smtpgen_fatal("bad target %s", spec);
	memcpy(host, spec, hl);
	host[hl] = '\0';
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		smtpgen_fatal("%s: %s", spec, gai_strerror(rc));
	memcpy(&targets[ntargets].addr, res->ai_addr, res->ai_addrlen);
	targets[ntargets].addrlen = res->ai_addrlen;
	targets[ntargets].spec = spec[-1] == '[' ? spec - 1 : spec;
	ntargets++;
	freeaddrinfo(res);
}

static int
smtpgen_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
smtpgen_percentile(double p)
{
	long i;

	if (nlatencies == 0)
		return 0;
	i = (long)(p * (double)(nlatencies - 1) + 0.5);
	return latencies[i];
}

static void
smtpgen_usage(void)
{
	fprintf(stderr,
	    "usage: smtpgen [options] HOST:PORT [HOST:PORT...]\n"
	    "  -s N     parallel sessions (16); session i uses target i mod #targets\n"
	    "  -m M     total messages, or sessions with -r 0 / -R (5000)\n"
	    "  -r K     messages per connection (default: reuse until done; 0: sessions only)\n"
	    "  -S       STARTTLS after EHLO, then EHLO again\n"
	    "  -R       implicit TLS handshake only, then close (e.g. openssl s_server)\n"
	    "  -l LEN   payload bytes per message (5120)\n"
	    "  -P       pipeline MAIL, RCPT and DATA\n"
	    "  -k       RSET between messages on one connection\n"
	    "  -f FROM  -t TO  -H HELO   envelope and EHLO name\n"
	    "  -n NAME  SNI server name\n"
	    "  -x 1.2|1.3  highest TLS version offered\n"
	    "  -T SECS  stop starting work after SECS (120); -I SECS idle timeout (30)\n"
	    "  -q       only the RESULT line; -v show every error\n");
	exit(2);
}

static void
smtpgen_on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void
smtpgen_setup_tls(void)
{
	ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (ssl_ctx == NULL)
		smtpgen_fatal("SSL_CTX_new failed");
	/* A benchmark against self-signed test certificates: no verification. */
	SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
	if (opt_tls_max)
		SSL_CTX_set_max_proto_version(ssl_ctx, opt_tls_max);
	/* Every session is a full handshake: that is what is being measured. */
	SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
	/* Fewer read() calls per record: the generator should cost little CPU. */
	SSL_CTX_set_read_ahead(ssl_ctx, 1);
	SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
}

static void
smtpgen_check_timeouts(double now)
{
	int i;

	for (i = 0; i < opt_sessions; i++) {
		struct smtpgen_session *s = &sessions[i];

		if (s->fd >= 0 && now - s->t_active > opt_idle_timeout) {
			char why[64];

			snprintf(why, sizeof(why), "no progress for %.0f s", opt_idle_timeout);
			if (s->state >= ST_RSET && s->state <= ST_DOT)
				smtpgen_txn_done(s, false);
			smtpgen_fail_connection(s, why);
		}
	}
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[64];
	double elapsed, hard_deadline;
	int c, i, active;

	while ((c = getopt(argc, argv, "s:m:r:SRl:Pkf:t:H:n:x:T:I:qvh")) != -1) {
		switch (c) {
		case 's': opt_sessions = atoi(optarg); break;
		case 'm': opt_count = atol(optarg); break;
		case 'r': opt_per_conn = atol(optarg); break;
		case 'S': opt_starttls = true; break;
		case 'R': opt_rawtls = true; break;
		case 'l': opt_length = atoi(optarg); break;
		case 'P': opt_pipeline = true; break;
		case 'k': opt_rset = true; break;
		case 'f': opt_from = optarg; break;
		case 't': opt_to = optarg; break;
		case 'H': opt_helo = optarg; break;
		case 'n': opt_sni = optarg; break;
		case 'x':
			if (strcmp(optarg, "1.2") == 0)
				opt_tls_max = TLS1_2_VERSION;
			else if (strcmp(optarg, "1.3") == 0)
				opt_tls_max = TLS1_3_VERSION;
			else
				smtpgen_usage();
			break;
		case 'T': opt_time_limit = atof(optarg); break;
		case 'I': opt_idle_timeout = atof(optarg); break;
		case 'q': opt_quiet = true; break;
		case 'v': opt_verbose++; break;
		default: smtpgen_usage();
		}
	}
	if (optind >= argc || opt_sessions < 1 || opt_sessions > SMTPGEN_MAX_SESSIONS ||
	    opt_count < 1 || opt_length < 0 || opt_length > 10 * 1024 * 1024 ||
	    (opt_starttls && opt_rawtls) || opt_time_limit <= 0 || opt_idle_timeout <= 0)
		smtpgen_usage();
	for (i = optind; i < argc; i++)
		smtpgen_parse_target(argv[i]);

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, smtpgen_on_signal);
	signal(SIGTERM, smtpgen_on_signal);
	smtpgen_build_message();
	obuf_size = message_len + 1024;
	if (opt_starttls || opt_rawtls)
		smtpgen_setup_tls();
	sessions = calloc((size_t)opt_sessions, sizeof(*sessions));
	latencies = calloc((size_t)opt_count, sizeof(*latencies));
	if (sessions == NULL || latencies == NULL)
		smtpgen_fatal("out of memory");
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		smtpgen_fatal("epoll_create1: %s", strerror(errno));

	t_start = smtpgen_now();
	t_deadline = t_start + opt_time_limit;
	/* Sessions in flight when the time limit strikes get this long to finish. */
	hard_deadline = t_deadline + opt_idle_timeout;
	for (i = 0; i < opt_sessions; i++) {
		sessions[i].fd = -1;
		sessions[i].obuf = malloc(obuf_size);
		if (sessions[i].obuf == NULL)
			smtpgen_fatal("out of memory");
		smtpgen_connect(&sessions[i]);
	}

	for (;;) {
		double now = smtpgen_now();
		int n;

		if (!stopping && (now >= t_deadline || interrupted)) {
			stopping = true;
			if (!opt_quiet)
				fprintf(stderr, "smtpgen: %s; finishing sessions in flight\n",
				    interrupted ? "interrupted" : "time limit reached");
		}
		if (now >= hard_deadline)
			break;
		/* Idle sessions reconnect while there is work and the target answers.
		 * Many failed connects mean the target is gone: stop rather than spin. */
		active = 0;
		for (i = 0; i < opt_sessions; i++) {
			struct smtpgen_session *s = &sessions[i];

			if (s->fd < 0 && !stopping && !interrupted && claimed < opt_count &&
			    setup_failures < 100 + opt_count / 10)
				smtpgen_connect(s);
			if (s->fd >= 0)
				active++;
		}
		if (active == 0)
			break;
		n = epoll_wait(epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), 100);
		if (n < 0 && errno != EINTR)
			smtpgen_fatal("epoll_wait: %s", strerror(errno));
		for (i = 0; i < n; i++)
			smtpgen_event(evs[i].data.ptr, evs[i].events);
		smtpgen_check_timeouts(smtpgen_now());
	}
	elapsed = smtpgen_now() - t_start;
	for (i = 0; i < opt_sessions; i++) {
		if (sessions[i].fd >= 0) {
			if (sessions[i].state >= ST_RSET && sessions[i].state <= ST_DOT)
				smtpgen_txn_done(&sessions[i], false);
			smtpgen_error(&sessions[i], "still open at the hard deadline");
			smtpgen_close(&sessions[i]);
		}
	}

	qsort(latencies, (size_t)nlatencies, sizeof(*latencies), smtpgen_cmp_double);
	{
		const char *unit = smtpgen_counting_sessions() ? "sessions" : "msgs";
		double rate = elapsed > 0 ? (double)done_ok / elapsed : 0;

		if (!opt_quiet)
			printf("smtpgen: %ld %s ok, %ld errors, %.3f s, %.1f %s/s, %ld connects, "
			    "%ld handshakes%s\n", done_ok, unit, errors, elapsed, rate, unit,
			    connects, handshakes, done_ok < opt_count ? " (incomplete)" : "");
		printf("RESULT mode=%s unit=%s ok=%ld errors=%ld secs=%.3f rate=%.1f "
		    "connects=%ld handshakes=%ld p50_ms=%.2f p99_ms=%.2f sessions=%d tls=%s\n",
		    opt_rawtls ? "rawtls" : opt_starttls ? "starttls" : "plain", unit,
		    done_ok, errors, elapsed, rate, connects, handshakes,
		    smtpgen_percentile(0.50) * 1e3, smtpgen_percentile(0.99) * 1e3,
		    opt_sessions, tls_seen[0] ? tls_seen : "none");
	}
	fflush(stdout);
	return errors == 0 && done_ok == opt_count ? 0 : 1;
}
