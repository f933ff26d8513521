/* One inbound SMTP session: the state machine between the socket (libevent
 * bufferevents, plain and then TLS) and the I/O-free parser in smtp_parser.c.
 * Commands go through a table: whether a command is allowed now is checked
 * apart from what it does. */
#include "mxd.h"
#include "smtp_parser.h"
#include "spool_commit.h"
#include "buf.h"
#include "log.h"
#include "netaddr.h"
#include "timeutil.h"
#include "xmalloc.h"

#include <errno.h>
#include <limits.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define SMTP_SESSION_INPUT_HIGH	(1u << 20)	/* stop reading past 1 MiB queued */
#define SMTP_SESSION_SPOOL_FLUSH	65536
/* A client that pipelines commands and never reads would make us queue its
 * replies without end: past HIGH bytes of unsent replies the session reads
 * no more input until they drain to LOW. */
#define SMTP_SESSION_OUTPUT_HIGH	(256u << 10)
#define SMTP_SESSION_OUTPUT_LOW		(64u << 10)

enum smtp_phase {
	PHASE_INIT,		/* waiting for EHLO/HELO */
	PHASE_READY,		/* EHLO done, no transaction */
	PHASE_MAIL,		/* MAIL accepted (RCPTs may follow) */
	PHASE_DATA,		/* reading DATA content */
	PHASE_BDAT,		/* reading a BDAT chunk */
	PHASE_COMMIT,		/* waiting for the spool to be durable */
	PHASE_STARTTLS_FLUSH,	/* 220 sent, waiting for it to leave */
	PHASE_TLS,		/* TLS handshake */
};

enum smtp_starttls {
	STARTTLS_NONE, STARTTLS_OFFERED, STARTTLS_ATTEMPTED, STARTTLS_ESTABLISHED,
};

static const char *const smtp_starttls_names[] = { "no", "offered", "attempted", "established" };

struct smtp_session {
	struct smtp_session	*next, *prev;
	struct mxd_worker	*w;
	struct bufferevent	*bev;
	int			 fd;
	int			 tls;		/* bev is the TLS bufferevent */
	char			 sid[SPOOL_ID_MAX];
	char			 ip[64];
	int			 port;
	struct sockaddr_storage	 peer;
	int			 trusted;
	uint64_t		 started_ms;
	int64_t			 started_wall_ms;
	char			 local_ip[64];
	int			 local_port;

	enum smtp_phase		 phase;
	int			 esmtp;
	char			 helo[SMTP_DOMAIN_MAX + 1];
	int			 errors;
	int			 junk;		/* EHLO/HELO/NOOP/RSET/VRFY/HELP since the last message */
	int			 output_full;	/* input paused until the replies drain */
	int			 skipping;	/* discarding the rest of an overlong line */
	int			 closing;
	int			 messages;
	int			 rcpts_total;

	/* TLS outcome */
	enum smtp_starttls	 starttls;
	SSL			*ssl;
	struct tls_trace	 trace;
	char			 tls_version[16];
	char			 tls_cipher[64];
	char			 sni[256];
	char			 tls_fail_stage[64];
	char			 tls_fail_reason[128];
	size_t			 starttls_discarded;

	/* transaction */
	struct spool_env	 env;
	int			 in_txn;
	struct smtp_data	 data;
	struct smtp_bdat	 bdat;
	uint64_t		 bdat_left;
	int			 bdat_last;
	int			 bdat_started;
	const char		*bdat_reject;	/* reply once the chunk is consumed */
	int			 bdat_error;	/* the spool refused the first chunk: so
						   is every later one, till LAST or RSET */
	struct buf		 content;
	struct spool_msg	*msg;
	struct spool_commit_job	*job;
};

static void smtp_session_process(struct smtp_session *s);
static void smtp_session_free(struct smtp_session *s);
static void smtp_session_readcb(struct bufferevent *bev, void *arg);
static void smtp_session_writecb(struct bufferevent *bev, void *arg);
static void smtp_session_eventcb(struct bufferevent *bev, short what, void *arg);

static void
smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

static void
smtp_session_close(struct smtp_session *s)
{
	s->closing = 1;
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		smtp_session_free(s);
	/* else the write callback frees it once the last reply has left */
}

/* Count an error; past the limit the client is told and dropped. Returns 1
 * when the session is closing. */
static int
smtp_session_error(struct smtp_session *s)
{
	if (++s->errors < s->w->cfg->max_errors)
		return 0;
	smtp_session_reply(s, "421 4.7.0 %s Error: too many errors", s->w->cfg->hostname);
	log_info("event=too_many_errors sid=%s client=%s errors=%d", s->sid, s->ip, s->errors);
	smtp_session_close(s);
	return 1;
}

static void
smtp_session_set_timeout(struct smtp_session *s, int seconds)
{
	struct timeval tv = { seconds, 0 };
	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

static void
smtp_session_txn_reset(struct smtp_session *s)
{
	if (s->job) {
		spool_commit_cancel(s->job);
		s->job = NULL;
	}
	if (s->msg) {
		spool_msg_abort(s->msg);
		s->msg = NULL;
	}
	spool_env_free(&s->env);
	memset(&s->env, 0, sizeof(s->env));
	buf_reset(&s->content);
	s->in_txn = 0;
	s->bdat_started = 0;
	s->bdat_reject = NULL;
	s->bdat_error = 0;
}

static void
smtp_session_log(struct smtp_session *s)
{
	char helo[LOG_QUOTE_SIZE(100)];
	char sni[LOG_QUOTE_SIZE(100)];
	struct buf b;

	log_quote(helo, sizeof(helo), s->helo, strlen(s->helo), 100);
	buf_init(&b);
	buf_printf(&b, "event=session sid=%s client=%s:%d helo=%s starttls=%s",
	    s->sid, s->ip, s->port, helo, smtp_starttls_names[s->starttls]);
	if (s->starttls == STARTTLS_ESTABLISHED) {
		log_quote(sni, sizeof(sni), s->sni, strlen(s->sni), 100);
		buf_printf(&b, " tls_version=%s tls_cipher=%s sni=%s", s->tls_version,
		    s->tls_cipher, sni);
	} else if (s->starttls == STARTTLS_ATTEMPTED) {
		buf_printf(&b, " tls_fail_stage=%s tls_fail_reason=%s",
		    s->tls_fail_stage[0] ? s->tls_fail_stage : "unknown",
		    s->tls_fail_reason[0] ? s->tls_fail_reason : "unknown");
	}
	if (s->starttls_discarded)
		buf_printf(&b, " starttls_discarded=%zu", s->starttls_discarded);
	buf_printf(&b, " messages=%d rcpts=%d errors=%d duration_ms=%" PRIu64,
	    s->messages, s->rcpts_total, s->errors, timeutil_mono_ms() - s->started_ms);
	log_info("%s", b.data);
	buf_free(&b);
}

/* The session's outcome record for the control plane (DESIGN.md). */
static void
smtp_session_outcome(struct smtp_session *s)
{
	static const Mxfleet__V1__StartTls st[] = {
		[STARTTLS_NONE] = MXFLEET__V1__START_TLS__STARTTLS_NOT_OFFERED,
		[STARTTLS_OFFERED] = MXFLEET__V1__START_TLS__STARTTLS_OFFERED,
		[STARTTLS_ATTEMPTED] = MXFLEET__V1__START_TLS__STARTTLS_ATTEMPTED,
		[STARTTLS_ESTABLISHED] = MXFLEET__V1__START_TLS__STARTTLS_ESTABLISHED,
	};
	Mxfleet__V1__Outcome o = MXFLEET__V1__OUTCOME__INIT;

	if (s->w->outcomes.fd < 0)
		return;
	o.session_id = s->sid;
	o.direction = MXFLEET__V1__DIRECTION__DIRECTION_INBOUND;
	o.start_unix_ms = s->started_wall_ms;
	o.end_unix_ms = timeutil_wall_ms();
	o.local_ip = s->local_ip;
	o.local_port = (uint32_t)s->local_port;
	o.remote_ip = s->ip;
	o.remote_port = (uint32_t)s->port;
	o.remote_ehlo = s->helo;
	o.starttls = st[s->starttls];
	if (s->starttls == STARTTLS_ESTABLISHED) {
		o.tls_version = s->tls_version;
		o.tls_cipher = s->tls_cipher;
		o.sni = s->sni;
	} else if (s->starttls == STARTTLS_ATTEMPTED) {
		o.tls_fail_stage = s->tls_fail_stage;
		o.tls_fail_reason = s->tls_fail_reason;
	}
	o.messages = (uint32_t)s->messages;
	o.recipients = (uint32_t)s->rcpts_total;
	outcome_emit(&s->w->outcomes, &o);
}

static void
smtp_session_free(struct smtp_session *s)
{
	struct mxd_worker *w = s->w;

	smtp_session_log(s);
	smtp_session_outcome(s);
	smtp_session_txn_reset(s);
	buf_free(&s->content);
	if (s->bev)
		bufferevent_free(s->bev);
	/* The plain bufferevent never owns the socket (STARTTLS hands it on);
	 * the TLS one does. */
	if (!s->tls && s->fd >= 0)
		close(s->fd);
	else if (s->tls && s->bev == NULL) {
		if (s->ssl)
			SSL_free(s->ssl);
		if (s->fd >= 0)
			close(s->fd);
	}
	mxd_ipcount_add(w, s->ip, -1);
	if (s->prev)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	w->nsessions--;
	free(s);
	if ((w->shutting_down || w->draining) && w->nsessions == 0)
		event_base_loopexit(w->base, NULL);
}

/* ---- commands ---- */

static void
smtp_session_ehlo_reply(struct smtp_session *s)
{
	const struct mxd_config *cfg = s->w->cfg;
	int can_tls = !s->tls && s->w->tls && cfg->ncerts > 0;

	smtp_session_reply(s, "250-%s", cfg->hostname);
	smtp_session_reply(s, "250-PIPELINING");
	smtp_session_reply(s, "250-SIZE %" PRIu64, cfg->message_size);
	smtp_session_reply(s, "250-ENHANCEDSTATUSCODES");
	smtp_session_reply(s, "250-8BITMIME");
	smtp_session_reply(s, "250-SMTPUTF8");
	smtp_session_reply(s, "250-CHUNKING");
	smtp_session_reply(s, "250-DSN");
	if (can_tls)
		smtp_session_reply(s, "250-STARTTLS");
	/* RFC 8689: REQUIRETLS only once the session is protected. */
	if (s->tls)
		smtp_session_reply(s, "250-REQUIRETLS");
	smtp_session_reply(s, "250 HELP");
	if (can_tls && s->starttls == STARTTLS_NONE)
		s->starttls = STARTTLS_OFFERED;
}

static void
smtp_session_cmd_helo(struct smtp_session *s, const struct smtp_cmd *c)
{
	if (!smtp_parser_helo_ok(c->args)) {
		smtp_session_reply(s, "501 5.5.4 Syntax: %s hostname", c->name);
		smtp_session_error(s);
		return;
	}
	smtp_session_txn_reset(s);
	snprintf(s->helo, sizeof(s->helo), "%s", c->args);
	s->esmtp = c->verb == SMTP_CMD_EHLO;
	s->phase = PHASE_READY;
	if (s->esmtp)
		smtp_session_ehlo_reply(s);
	else
		smtp_session_reply(s, "250 %s", s->w->cfg->hostname);
}

static void
smtp_session_path_error(struct smtp_session *s, int rc, const char *what)
{
	switch (rc) {
	case SMTP_PARSE_TOO_LONG:
		smtp_session_reply(s, "501 5.1.3 Error: %s address too long", what);
		break;
	case SMTP_PARSE_NEED_UTF8:
		smtp_session_reply(s, "553 5.6.7 Error: non-ASCII address without SMTPUTF8");
		break;
	default:
		smtp_session_reply(s, "501 5.5.4 Syntax: %s", strcmp(what, "sender") == 0 ?
		    "MAIL FROM:<address>" : "RCPT TO:<address>");
		break;
	}
	smtp_session_error(s);
}

/* A duplicated or malformed RFC 3461 parameter: named in the reply, and the
 * rest of the session (an open transaction, its recipients) is kept. */
static void
smtp_session_dsn_error(struct smtp_session *s, int rc, const char *key)
{
	static const struct {
		const char	*key;
		const char	*syntax;
	} syntax[] = {
		{ "RET", "RET=FULL or RET=HDRS" },
		{ "ENVID", "ENVID=xtext of at most 100 characters" },
		{ "NOTIFY", "NOTIFY=NEVER or a list of SUCCESS,FAILURE,DELAY" },
		{ "ORCPT", "ORCPT=addr-type;xtext of at most 500 characters" },
	};
	const char *hint = "";

	for (size_t i = 0; i < sizeof(syntax) / sizeof(syntax[0]); i++)
		if (strcmp(syntax[i].key, key) == 0)
			hint = syntax[i].syntax;
	if (rc == SMTP_PARSE_DUPLICATE)
		smtp_session_reply(s, "501 5.5.4 Error: duplicate %.32s parameter", key);
	else
		smtp_session_reply(s, "501 5.5.4 Error: malformed %.32s parameter (%s)", key, hint);
	smtp_session_error(s);
}

static void
smtp_session_cmd_mail(struct smtp_session *s, const struct smtp_cmd *c)
{
	const struct mxd_config *cfg = s->w->cfg;
	char addr[SMTP_PATH_MAX + 1];
	const char *ptext;
	struct smtp_param params[SMTP_PARAMS_MAX];
	int rc, np, utf8 = 0, requiretls = 0, body8 = 0, ret = DSN_RET_NONE;
	const char *envid = NULL;

	rc = smtp_parser_path(c->args, "FROM:", 1, 1, addr, sizeof(addr), &ptext);
	if (rc < 0) {
		smtp_session_path_error(s, rc, "sender");
		return;
	}
	np = smtp_parser_params(ptext, params, SMTP_PARAMS_MAX);
	if (np < 0 || (np > 0 && !s->esmtp)) {
		smtp_session_reply(s, "555 5.5.4 Error: bad MAIL FROM parameters");
		smtp_session_error(s);
		return;
	}
	for (int i = 0; i < np; i++) {
		struct smtp_param *p = &params[i];
		if ((rc = smtp_parser_dsn_mail(p, &ret, &envid)) != 0) {
			if (rc < 0) {
				smtp_session_dsn_error(s, rc, p->key);
				return;
			}
		} else if (strcmp(p->key, "SIZE") == 0 && p->has_value) {
			char *end;
			unsigned long long v = strtoull(p->value, &end, 10);
			if (*end != '\0' || p->value[0] < '0' || p->value[0] > '9') {
				smtp_session_reply(s, "501 5.5.4 Error: bad SIZE value");
				smtp_session_error(s);
				return;
			}
			if (v > cfg->message_size) {
				smtp_session_reply(s, "552 5.3.4 Error: message size exceeds fixed limit");
				smtp_session_error(s);
				return;
			}
		} else if (strcmp(p->key, "BODY") == 0 && p->has_value &&
		    (strcasecmp(p->value, "7BIT") == 0 || strcasecmp(p->value, "8BITMIME") == 0)) {
			body8 = strcasecmp(p->value, "8BITMIME") == 0;
		} else if (strcmp(p->key, "SMTPUTF8") == 0 && !p->has_value) {
			utf8 = 1;
		} else if (strcmp(p->key, "REQUIRETLS") == 0 && !p->has_value && s->tls) {
			requiretls = 1;
		} else {
			smtp_session_reply(s, "555 5.5.4 Error: unsupported parameter %.32s", p->key);
			smtp_session_error(s);
			return;
		}
	}
	if (!utf8 && smtp_parser_has_utf8(addr)) {
		smtp_session_path_error(s, SMTP_PARSE_NEED_UTF8, "sender");
		return;
	}
	smtp_session_txn_reset(s);
	s->env.from = xstrdup(addr);
	s->env.smtputf8 = utf8;
	s->env.requiretls = requiretls;
	s->env.body8bit = body8;
	s->env.ret = ret;
	s->env.envid = envid ? xstrdup(envid) : NULL;
	s->in_txn = 1;
	s->phase = PHASE_MAIL;
	smtp_session_reply(s, "250 2.1.0 Ok");
}

static void
smtp_session_cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *c)
{
	const struct mxd_config *cfg = s->w->cfg;
	char addr[SMTP_PATH_MAX + 1];
	const char *ptext;
	struct smtp_param params[SMTP_PARAMS_MAX];
	int rc, np;
	unsigned notify = 0;
	const char *orcpt = NULL;

	rc = smtp_parser_path(c->args, "TO:", 0, 1, addr, sizeof(addr), &ptext);
	if (rc < 0) {
		smtp_session_path_error(s, rc, "recipient");
		return;
	}
	if (!s->env.smtputf8 && smtp_parser_has_utf8(addr)) {
		smtp_session_path_error(s, SMTP_PARSE_NEED_UTF8, "recipient");
		return;
	}
	np = smtp_parser_params(ptext, params, SMTP_PARAMS_MAX);
	if (np < 0 || (np > 0 && !s->esmtp)) {
		smtp_session_reply(s, "555 5.5.4 Error: unsupported RCPT TO parameters");
		smtp_session_error(s);
		return;
	}
	for (int i = 0; i < np; i++) {
		rc = smtp_parser_dsn_rcpt(&params[i], &notify, &orcpt);
		if (rc < 0) {
			smtp_session_dsn_error(s, rc, params[i].key);
			return;
		}
		if (rc == 0) {
			smtp_session_reply(s, "555 5.5.4 Error: unsupported RCPT TO parameters");
			smtp_session_error(s);
			return;
		}
	}
	if (s->env.nrcpts >= (size_t)cfg->max_recipients) {
		smtp_session_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	const char *domain = smtp_parser_domain(addr);
	if (domain == NULL) {
		/* <postmaster>: the first local domain's postmaster. */
		if (cfg->ndomains == 0) {
			smtp_session_reply(s, "550 5.1.1 <%s>: Recipient address rejected", addr);
			smtp_session_error(s);
			return;
		}
		char pm[SMTP_PATH_MAX + 1];
		snprintf(pm, sizeof(pm), "postmaster@%s", cfg->domains[0].name);
		spool_env_add_rcpt_dsn(&s->env, pm, notify, orcpt);
	} else if (mxd_config_domain(cfg, domain) != NULL) {
		spool_env_add_rcpt_dsn(&s->env, addr, notify, orcpt);
	} else if (s->trusted) {
		/* Some route (on some attempt), the relay, or direct MX delivery. */
		const char *hop;
		const struct mxd_nexthop *nh = mxd_config_route(cfg, s->env.from, addr, INT_MAX, &hop);
		if (cfg->resolver == NULL && (nh == NULL || nh->proto == MXD_NH_MX)) {
			smtp_session_reply(s, "451 4.3.0 <%s>: no route to remote domains "
			    "(set relay_next_hop, a route, or resolver for direct MX delivery)", addr);
			return;
		}
		spool_env_add_rcpt_dsn(&s->env, addr, notify, orcpt);
	} else {
		smtp_session_reply(s, "554 5.7.1 <%s>: Relay access denied", addr);
		smtp_session_error(s);
		return;
	}
	s->rcpts_total++;
	smtp_session_reply(s, "250 2.1.5 Ok");
}

/* The spool could not take the message: a temporary failure whatever the
 * cause, so the sender keeps the mail and retries; 4.3.1 when storage ran
 * out (RFC 3463), which 552 5.3.4 would have turned into a bounce. */
static const char *
smtp_session_spool_reply(int err)
{
	return err == ENOSPC || err == EDQUOT ? "452 4.3.1 Insufficient system storage" :
	    "451 4.3.0 Error: queue file write error";
}

static void
smtp_session_spool_failed(struct smtp_session *s, int err)
{
	smtp_session_reply(s, "%s", smtp_session_spool_reply(err));
}

/* Start a message file: envelope, then our Received: header. */
static int
smtp_session_msg_begin(struct smtp_session *s)
{
	const struct mxd_config *cfg = s->w->cfg;
	char date[64];

	spool_new_id(s->env.id, sizeof(s->env.id));
	s->env.created = time(NULL);
	if (spool_msg_begin(s->w->spool, &s->env, &s->msg) < 0) {
		int err = errno;
		smtp_session_spool_failed(s, err);
		errno = err;
		return -1;
	}
	buf_reset(&s->content);
	if (!cfg->received_header)
		return 0;
	char helo[SMTP_DOMAIN_MAX + 1];
	size_t i;
	for (i = 0; s->helo[i] && i < sizeof(helo) - 1; i++) {
		unsigned char ch = (unsigned char)s->helo[i];
		helo[i] = (ch < 0x21 || ch > 0x7e || ch == '(' || ch == ')') ? '?' : (char)ch;
	}
	helo[i] = '\0';
	const char *proto = s->env.smtputf8 ? (s->tls ? "UTF8SMTPS" : "UTF8SMTP") :
	    s->esmtp ? (s->tls ? "ESMTPS" : "ESMTP") : "SMTP";
	buf_printf(&s->content, "Received: from %s ([%s])\r\n\tby %s (mxd) with %s id %s",
	    helo, s->ip, cfg->hostname, proto, s->env.id);
	if (s->tls)
		buf_printf(&s->content, "\r\n\t(version=%s cipher=%s)", s->tls_version, s->tls_cipher);
	if (s->env.nrcpts == 1 && !smtp_parser_has_utf8(s->env.rcpts[0]))
		buf_printf(&s->content, "\r\n\tfor <%s>", s->env.rcpts[0]);
	buf_printf(&s->content, ";\r\n\t%s\r\n", timeutil_rfc5322(date, sizeof(date), time(NULL)));
	return 0;
}

static int
smtp_session_flush_content(struct smtp_session *s)
{
	if (s->content.len == 0)
		return 0;
	int rc = spool_msg_write(s->msg, s->content.data, s->content.len);
	buf_reset(&s->content);
	return rc;
}

static void
smtp_session_commit_done(void *arg, int error, const char *id)
{
	struct smtp_session *s = arg;
	char from[LOG_QUOTE_SIZE(100)];

	s->job = NULL;
	if (error == 0) {
		log_quote(from, sizeof(from), s->env.from, strlen(s->env.from), 100);
		log_info("event=queued sid=%s id=%s from=%s rcpts=%zu size=%" PRIu64
		    " requiretls=%d tls=%s", s->sid, id, from, s->env.nrcpts, s->env.size,
		    s->env.requiretls, s->tls ? s->tls_version : "none");
		smtp_session_reply(s, "250 2.0.0 Ok: queued as %s", id);
		s->messages++;
		s->junk = 0;	/* a client doing real work is forgiven (as Postfix) */
	} else
		smtp_session_spool_failed(s, error);
	smtp_session_txn_reset(s);
	s->phase = PHASE_READY;
	smtp_session_set_timeout(s, s->w->cfg->command_timeout);
	if (s->w->shutting_down) {
		smtp_session_reply(s, "421 4.3.2 %s Service shutting down", s->w->cfg->hostname);
		smtp_session_close(s);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);
	smtp_session_process(s);
}

/* The content is complete: refuse it or make it durable. */
static void
smtp_session_msg_end(struct smtp_session *s, unsigned flags, uint64_t size)
{
	if (flags & (SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR)) {
		log_info("event=rejected sid=%s client=%s reason=%s", s->sid, s->ip,
		    flags & SMTP_DATA_BARE_LF ? "bare_lf" : "bare_cr");
		smtp_session_txn_reset(s);
		s->phase = PHASE_READY;
		smtp_session_reply(s, "550 5.5.2 Error: bare <%s> received; lines must end in <CR><LF>",
		    flags & SMTP_DATA_BARE_LF ? "LF" : "CR");
		smtp_session_error(s);
		return;
	}
	if (flags & SMTP_DATA_TOO_BIG) {
		smtp_session_txn_reset(s);
		s->phase = PHASE_READY;
		smtp_session_reply(s, "552 5.3.4 Error: message size exceeds fixed limit");
		smtp_session_error(s);
		return;
	}
	s->env.size = size;
	if (smtp_session_flush_content(s) < 0 || spool_msg_finish(s->msg) < 0) {
		int err = spool_msg_error(s->msg);
		smtp_session_txn_reset(s);	/* removes the partial file */
		s->phase = PHASE_READY;
		smtp_session_spool_failed(s, err);
		return;
	}
	struct spool_msg *m = s->msg;
	s->msg = NULL;
	s->phase = PHASE_COMMIT;
	s->job = spool_commit(s->w->committer, m, smtp_session_commit_done, s);
}

static void
smtp_session_cmd_data(struct smtp_session *s, const struct smtp_cmd *c)
{
	if (c->args[0] != '\0') {
		smtp_session_reply(s, "501 5.5.4 Syntax: DATA");
		smtp_session_error(s);
		return;
	}
	if (s->env.nrcpts == 0 || s->bdat_started || s->bdat_error) {
		smtp_session_reply(s, "503 5.5.1 Error: %s", s->bdat_started || s->bdat_error ?
		    "DATA after BDAT" : "need RCPT command");
		smtp_session_error(s);
		return;
	}
	if (smtp_session_msg_begin(s) < 0)
		return;
	smtp_data_init(&s->data, s->w->cfg->message_size);
	s->phase = PHASE_DATA;
	smtp_session_set_timeout(s, s->w->cfg->data_timeout);
	smtp_session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
smtp_session_cmd_bdat(struct smtp_session *s, const struct smtp_cmd *c)
{
	char *end;
	const char *a = c->args;
	if (*a < '0' || *a > '9') {
		/* Without a size the stream can not be followed: give up on it. */
		smtp_session_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		smtp_session_reply(s, "421 4.5.0 %s Error: lost synchronization", s->w->cfg->hostname);
		smtp_session_close(s);
		return;
	}
	errno = 0;
	unsigned long long n = strtoull(a, &end, 10);
	int last = 0;
	while (*end == ' ')
		end++;
	if (strcasecmp(end, "LAST") == 0)
		last = 1;
	else if (*end != '\0' || errno == ERANGE) {
		smtp_session_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		smtp_session_reply(s, "421 4.5.0 %s Error: lost synchronization", s->w->cfg->hostname);
		smtp_session_close(s);
		return;
	}
	s->bdat_left = n;
	s->bdat_last = last;
	s->bdat_reject = NULL;
	s->phase = PHASE_BDAT;
	smtp_session_set_timeout(s, s->w->cfg->data_timeout);
	if (!s->esmtp)
		s->bdat_reject = "503 5.5.1 Error: send EHLO first";
	else if (!s->in_txn || s->env.nrcpts == 0)
		s->bdat_reject = "503 5.5.1 Error: need RCPT command";
	else if (s->bdat_error)
		s->bdat_reject = smtp_session_spool_reply(s->bdat_error);
	else if (!s->bdat_started) {
		if (smtp_session_msg_begin(s) < 0) {
			/* Answered 452/451 already. The rest of the transaction
			 * is refused too: its chunks alone are not the message. */
			s->bdat_error = errno;
			s->bdat_reject = "";
			return;
		}
		smtp_bdat_init(&s->bdat, s->w->cfg->message_size);
		s->bdat_started = 1;
	}
}

/* The whole chunk has been read. */
static void
smtp_session_bdat_done(struct smtp_session *s)
{
	if (s->bdat_reject) {
		if (s->bdat_reject[0])
			smtp_session_reply(s, "%s", s->bdat_reject);
		int spool_error = s->bdat_error;
		s->bdat_reject = NULL;
		if (s->bdat_started || (spool_error && s->bdat_last))
			smtp_session_txn_reset(s);
		s->phase = s->in_txn ? PHASE_MAIL : (s->helo[0] ? PHASE_READY : PHASE_INIT);
		smtp_session_set_timeout(s, s->w->cfg->command_timeout);
		if (!spool_error)	/* a full disk is not the client's error */
			smtp_session_error(s);
		return;
	}
	if (!s->bdat_last) {
		s->phase = PHASE_MAIL;
		smtp_session_set_timeout(s, s->w->cfg->command_timeout);
		/* A spool error sticks to s->msg and is reported at LAST. */
		if (s->content.len >= SMTP_SESSION_SPOOL_FLUSH && s->bdat.flags == 0)
			smtp_session_flush_content(s);
		smtp_session_reply(s, "250 2.0.0 Ok: %" PRIu64 " octets received", s->bdat.size);
		return;
	}
	smtp_bdat_finish(&s->bdat);
	/* Relayed later with DATA: the content must end in CRLF. */
	uint64_t size = s->bdat.size;
	if (s->bdat.flags == 0 && size > 0 &&
	    !(s->content.len >= 2 && memcmp(s->content.data + s->content.len - 2, "\r\n", 2) == 0)) {
		buf_append(&s->content, "\r\n", 2);
		size += 2;
	}
	smtp_session_set_timeout(s, s->w->cfg->command_timeout);
	smtp_session_msg_end(s, s->bdat.flags, size);
}

static void
smtp_session_cmd_rset(struct smtp_session *s, const struct smtp_cmd *c)
{
	smtp_session_txn_reset(s);
	if (s->phase == PHASE_MAIL)
		s->phase = PHASE_READY;
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void
smtp_session_cmd_noop(struct smtp_session *s, const struct smtp_cmd *c)
{
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void
smtp_session_cmd_quit(struct smtp_session *s, const struct smtp_cmd *c)
{
	smtp_session_reply(s, "221 2.0.0 Bye");
	smtp_session_close(s);
}

static void
smtp_session_cmd_vrfy(struct smtp_session *s, const struct smtp_cmd *c)
{
	smtp_session_reply(s, "252 2.1.5 Cannot VRFY user; send some mail and delivery will be tried");
}

static void
smtp_session_cmd_expn(struct smtp_session *s, const struct smtp_cmd *c)
{
	smtp_session_reply(s, "502 5.5.1 Error: EXPN not supported");
	smtp_session_error(s);
}

static void
smtp_session_cmd_help(struct smtp_session *s, const struct smtp_cmd *c)
{
	smtp_session_reply(s, "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP%s",
	    s->tls || s->w->cfg->ncerts == 0 ? "" : " STARTTLS");
	smtp_session_reply(s, "214 2.0.0 End of HELP");
}

static void
smtp_session_cmd_auth(struct smtp_session *s, const struct smtp_cmd *c)
{
	smtp_session_reply(s, "503 5.5.1 Error: authentication not enabled");
	smtp_session_error(s);
}

static void smtp_session_cmd_starttls(struct smtp_session *s, const struct smtp_cmd *c);

#define P_INIT	(1u << PHASE_INIT)
#define P_READY	(1u << PHASE_READY)
#define P_MAIL	(1u << PHASE_MAIL)
#define P_ANY	(P_INIT | P_READY | P_MAIL)

static const struct smtp_session_cmd {
	enum smtp_verb	 verb;
	unsigned	 phases;	/* where the command is allowed */
	int		 junk;		/* counts toward limits.junk_commands */
	const char	*refusal;	/* reply when it is not */
	void		(*proceed)(struct smtp_session *, const struct smtp_cmd *);
} smtp_session_cmds[] = {
	{ SMTP_CMD_EHLO, P_ANY, 1, NULL, smtp_session_cmd_helo },
	{ SMTP_CMD_HELO, P_ANY, 1, NULL, smtp_session_cmd_helo },
	{ SMTP_CMD_MAIL, P_READY, 0, "503 5.5.1 Error: send HELO/EHLO first, or nested MAIL command",
	    smtp_session_cmd_mail },
	{ SMTP_CMD_RCPT, P_MAIL, 0, "503 5.5.1 Error: need MAIL command", smtp_session_cmd_rcpt },
	{ SMTP_CMD_DATA, P_MAIL, 0, "503 5.5.1 Error: need RCPT command", smtp_session_cmd_data },
	{ SMTP_CMD_BDAT, P_ANY, 0, NULL, smtp_session_cmd_bdat },
	{ SMTP_CMD_RSET, P_ANY, 1, NULL, smtp_session_cmd_rset },
	{ SMTP_CMD_NOOP, P_ANY, 1, NULL, smtp_session_cmd_noop },
	{ SMTP_CMD_QUIT, P_ANY, 0, NULL, smtp_session_cmd_quit },
	{ SMTP_CMD_VRFY, P_ANY, 1, NULL, smtp_session_cmd_vrfy },
	{ SMTP_CMD_EXPN, P_ANY, 0, NULL, smtp_session_cmd_expn },
	{ SMTP_CMD_HELP, P_ANY, 1, NULL, smtp_session_cmd_help },
	{ SMTP_CMD_STARTTLS, P_INIT | P_READY, 0, "503 5.5.1 Error: STARTTLS inside a mail transaction",
	    smtp_session_cmd_starttls },
	{ SMTP_CMD_AUTH, P_ANY, 0, NULL, smtp_session_cmd_auth },
};

static void
smtp_session_dispatch(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_cmd c;
	char q[LOG_QUOTE_SIZE(100)];

	smtp_parser_command(line, len, &c);
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_debug("event=command sid=%s line=%s", s->sid, log_quote(q, sizeof(q), line, len, 100));
	if (memchr(line, '\0', len) != NULL) {
		smtp_session_reply(s, "500 5.5.2 Error: NUL in command");
		smtp_session_error(s);
		return;
	}
	for (size_t i = 0; i < sizeof(smtp_session_cmds) / sizeof(smtp_session_cmds[0]); i++) {
		const struct smtp_session_cmd *t = &smtp_session_cmds[i];
		if (t->verb != c.verb)
			continue;
		if (!(t->phases & (1u << s->phase))) {
			smtp_session_reply(s, "%s", t->refusal);
			smtp_session_error(s);
			return;
		}
		if (t->junk && ++s->junk > s->w->cfg->junk_commands) {
			smtp_session_reply(s, "421 4.7.0 %s Error: too many junk commands",
			    s->w->cfg->hostname);
			log_info("event=too_many_junk_commands sid=%s client=%s junk=%d", s->sid,
			    s->ip, s->junk);
			smtp_session_close(s);
			return;
		}
		t->proceed(s, &c);
		return;
	}
	smtp_session_reply(s, "502 5.5.2 Error: command not recognized");
	smtp_session_error(s);
}

/* ---- STARTTLS ---- */

static void
smtp_session_tls_failed(struct smtp_session *s, int saw_eof, unsigned long ossl_err,
    const char *why)
{
	snprintf(s->tls_fail_stage, sizeof(s->tls_fail_stage), "%s", tls_trace_stage(&s->trace));
	if (why)
		snprintf(s->tls_fail_reason, sizeof(s->tls_fail_reason), "%s", why);
	else
		tls_trace_reason(&s->trace, saw_eof, ossl_err, s->tls_fail_reason,
		    sizeof(s->tls_fail_reason));
	smtp_session_free(s);
}

static void
smtp_session_tls_start(struct smtp_session *s)
{
	struct bufferevent *plain = s->bev;

	s->ssl = tls_server_ssl(s->w->tls, &s->trace);
	if (s->ssl == NULL) {
		smtp_session_tls_failed(s, 0, 0, "ssl_new_failed");
		return;
	}
	/* Anything the client pipelined after STARTTLS dies with the plain
	 * bufferevent: it is never executed (CVE-2011-0411). */
	s->starttls_discarded += evbuffer_get_length(bufferevent_get_input(plain));
	s->bev = bufferevent_openssl_socket_new(s->w->base, s->fd, s->ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_free(plain);
	if (s->bev == NULL) {
		s->tls = 1;
		smtp_session_tls_failed(s, 0, 0, "bufferevent_failed");
		return;
	}
	s->tls = 1;
	s->fd = -1;	/* owned by the TLS bufferevent now */
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	bufferevent_setcb(s->bev, smtp_session_readcb, smtp_session_writecb,
	    smtp_session_eventcb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_SESSION_INPUT_HIGH);
	smtp_session_set_timeout(s, s->w->cfg->tls_handshake_timeout);
	s->phase = PHASE_TLS;
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void
smtp_session_tls_established(struct smtp_session *s)
{
	const char *sni = SSL_get_servername(s->ssl, TLSEXT_NAMETYPE_host_name);
	s->starttls = STARTTLS_ESTABLISHED;
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", SSL_get_version(s->ssl));
	snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", SSL_get_cipher_name(s->ssl));
	snprintf(s->sni, sizeof(s->sni), "%s", sni ? sni : "");
	/* RFC 3207 4.2: forget everything learnt before TLS; EHLO again. */
	smtp_session_txn_reset(s);
	s->helo[0] = '\0';
	s->esmtp = 0;
	s->phase = PHASE_INIT;
	smtp_session_set_timeout(s, s->w->cfg->command_timeout);
	log_debug("event=tls_established sid=%s version=%s cipher=%s", s->sid, s->tls_version,
	    s->tls_cipher);
}

static void
smtp_session_cmd_starttls(struct smtp_session *s, const struct smtp_cmd *c)
{
	if (s->tls) {
		smtp_session_reply(s, "554 5.5.1 Error: TLS already active");
		smtp_session_error(s);
		return;
	}
	if (s->w->cfg->ncerts == 0 || s->w->tls == NULL) {
		smtp_session_reply(s, "502 5.5.1 Error: STARTTLS not available");
		smtp_session_error(s);
		return;
	}
	if (c->args[0] != '\0') {
		smtp_session_reply(s, "501 5.5.4 Syntax: STARTTLS");
		smtp_session_error(s);
		return;
	}
	smtp_session_txn_reset(s);
	s->starttls = STARTTLS_ATTEMPTED;
	smtp_session_reply(s, "220 2.0.0 Ready to start TLS");
	/* Read nothing more in plaintext; the handshake starts once the 220
	 * has left (write callback). */
	bufferevent_disable(s->bev, EV_READ);
	s->phase = PHASE_STARTTLS_FLUSH;
}

/* ---- input ---- */

static void
smtp_session_feed_data(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec v[16];
	int n = evbuffer_peek(in, -1, NULL, v, 16);
	size_t used = 0;
	for (int i = 0; i < n && s->data.state != SMTP_DATA_END; i++) {
		used += smtp_data_feed(&s->data, v[i].iov_base, v[i].iov_len, &s->content);
	}
	evbuffer_drain(in, used);
	if (s->data.state == SMTP_DATA_END) {
		smtp_session_set_timeout(s, s->w->cfg->command_timeout);
		smtp_session_msg_end(s, s->data.flags, s->data.size);
		return;
	}
	if (s->content.len >= SMTP_SESSION_SPOOL_FLUSH)
		smtp_session_flush_content(s);	/* an error sticks: refused at the end */
}

static void
smtp_session_feed_bdat(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec v[16];
	int n = evbuffer_peek(in, (ev_ssize_t)(s->bdat_left < (1u << 30) ? s->bdat_left : (1u << 30)),
	    NULL, v, 16);
	size_t used = 0;
	for (int i = 0; i < n && s->bdat_left > 0; i++) {
		size_t take = v[i].iov_len < s->bdat_left ? v[i].iov_len : (size_t)s->bdat_left;
		if (s->bdat_reject == NULL)
			smtp_bdat_feed(&s->bdat, v[i].iov_base, take, &s->content);
		s->bdat_left -= take;
		used += take;
	}
	evbuffer_drain(in, used);
	if (s->bdat_reject == NULL && s->content.len >= SMTP_SESSION_SPOOL_FLUSH &&
	    s->bdat.flags == 0)
		smtp_session_flush_content(s);	/* an error sticks: refused at LAST */
	if (s->bdat_left == 0)
		smtp_session_bdat_done(s);
}

static void
smtp_session_process(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	char line[SMTP_LINE_MAX + 1];

	while (!s->closing) {
		size_t avail = evbuffer_get_length(in);
		if (s->phase == PHASE_COMMIT || s->phase == PHASE_TLS ||
		    s->phase == PHASE_STARTTLS_FLUSH)
			return;
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > SMTP_SESSION_OUTPUT_HIGH) {
			/* Resumed by the write callback at the low watermark. */
			s->output_full = 1;
			bufferevent_disable(s->bev, EV_READ);
			bufferevent_setwatermark(s->bev, EV_WRITE, SMTP_SESSION_OUTPUT_LOW, 0);
			return;
		}
		if (s->phase == PHASE_DATA) {
			if (avail == 0)
				return;
			smtp_session_feed_data(s, in);
			continue;
		}
		if (s->phase == PHASE_BDAT) {
			if (avail == 0 && s->bdat_left > 0)
				return;
			smtp_session_feed_bdat(s, in);
			continue;
		}
		size_t eol_len = 0;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (p.pos < 0) {
			if (avail > SMTP_LINE_MAX) {
				/* Drop the overlong line as it comes; answer once. */
				evbuffer_drain(in, avail);
				if (!s->skipping) {
					s->skipping = 1;
					smtp_session_reply(s, "500 5.5.2 Error: line too long");
					smtp_session_error(s);
				}
			}
			return;
		}
		size_t len = (size_t)p.pos;
		if (s->skipping) {
			evbuffer_drain(in, len + eol_len);
			s->skipping = 0;
			continue;
		}
		if (len + 2 > SMTP_LINE_MAX) {
			evbuffer_drain(in, len + eol_len);
			smtp_session_reply(s, "500 5.5.2 Error: line too long");
			smtp_session_error(s);
			continue;
		}
		evbuffer_remove(in, line, len);
		line[len] = '\0';
		evbuffer_drain(in, eol_len);
		smtp_session_dispatch(s, line, len);
	}
}

static void
smtp_session_readcb(struct bufferevent *bev, void *arg)
{
	smtp_session_process(arg);
}

static void
smtp_session_writecb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;
	if (s->output_full) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) > SMTP_SESSION_OUTPUT_LOW)
			return;
		s->output_full = 0;
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		if (!s->closing) {
			bufferevent_enable(bev, EV_READ);
			smtp_session_process(s);
		}
	}
	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (s->closing) {
		smtp_session_free(s);
		return;
	}
	if (s->phase == PHASE_STARTTLS_FLUSH)
		smtp_session_tls_start(s);
}

static void
smtp_session_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (s->phase == PHASE_TLS) {
			smtp_session_tls_established(s);
			smtp_session_process(s);
		}
		return;
	}
	if (s->phase == PHASE_TLS) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (what & BEV_EVENT_TIMEOUT)
			smtp_session_tls_failed(s, 0, 0, "timeout");
		else
			smtp_session_tls_failed(s, (what & BEV_EVENT_EOF) != 0, e, NULL);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (!s->closing) {
			smtp_session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->w->cfg->hostname);
			log_info("event=timeout sid=%s client=%s phase=%d", s->sid, s->ip, s->phase);
			s->closing = 1;
			bufferevent_disable(s->bev, EV_READ);
			/* Give the 421 one chance to leave; do not wait on a dead peer. */
			struct timeval tv = { 5, 0 };
			bufferevent_set_timeouts(s->bev, NULL, &tv);
			bufferevent_enable(s->bev, EV_WRITE);
			return;
		}
		smtp_session_free(s);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (s->phase == PHASE_DATA || s->phase == PHASE_BDAT || s->in_txn)
			log_info("event=lost_connection sid=%s client=%s phase=%d", s->sid, s->ip, s->phase);
		smtp_session_free(s);
	}
}

void
smtp_session_accept(struct mxd_worker *w, int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	const struct mxd_config *cfg = w->cfg;

	s->w = w;
	s->fd = fd;
	s->started_ms = timeutil_mono_ms();
	s->started_wall_ms = timeutil_wall_ms();
	struct sockaddr_storage local;
	socklen_t ll = sizeof(local);
	if (getsockname(fd, (struct sockaddr *)&local, &ll) == 0) {
		netaddr_ntop((struct sockaddr *)&local, s->local_ip, sizeof(s->local_ip));
		s->local_port = netaddr_port((struct sockaddr *)&local);
	}
	memcpy(&s->peer, sa, salen < sizeof(s->peer) ? salen : sizeof(s->peer));
	netaddr_ntop(sa, s->ip, sizeof(s->ip));
	s->port = netaddr_port(sa);
	s->trusted = mxd_config_trusted(cfg, sa);
	spool_new_id(s->sid, sizeof(s->sid));
	buf_init(&s->content);
	tls_trace_init(&s->trace);
	s->next = w->sessions;
	if (w->sessions)
		w->sessions->prev = s;
	w->sessions = s;
	w->nsessions++;
	int per_ip = mxd_ipcount_add(w, s->ip, 1);

	s->bev = bufferevent_socket_new(w->base, fd, 0);
	if (s->bev == NULL) {
		smtp_session_free(s);
		return;
	}
	bufferevent_setcb(s->bev, smtp_session_readcb, smtp_session_writecb,
	    smtp_session_eventcb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_SESSION_INPUT_HIGH);
	smtp_session_set_timeout(s, cfg->command_timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);

	if (w->shutting_down) {
		smtp_session_reply(s, "421 4.3.2 %s Service shutting down", cfg->hostname);
		smtp_session_close(s);
		return;
	}
	if (w->nsessions > cfg->max_connections || per_ip > cfg->connections_per_ip) {
		log_info("event=refused client=%s reason=%s", s->ip,
		    per_ip > cfg->connections_per_ip ? "connections_per_ip" : "connections");
		smtp_session_reply(s, "421 4.7.0 %s Error: too many connections%s", cfg->hostname,
		    per_ip > cfg->connections_per_ip ? " from your address" : "");
		smtp_session_close(s);
		return;
	}
	smtp_session_reply(s, "220 %s ESMTP mxd", cfg->hostname);
}

void
smtp_session_shutdown_all(struct mxd_worker *w)
{
	struct smtp_session *s = w->sessions, *next;
	for (; s; s = next) {
		next = s->next;
		if (s->closing || s->in_txn || s->phase == PHASE_DATA || s->phase == PHASE_BDAT ||
		    s->phase == PHASE_COMMIT)
			continue;	/* finishes its transaction first */
		if (s->phase == PHASE_TLS || s->phase == PHASE_STARTTLS_FLUSH) {
			smtp_session_free(s);
			continue;
		}
		smtp_session_reply(s, "421 4.3.2 %s Service shutting down", w->cfg->hostname);
		smtp_session_close(s);
	}
}

void
smtp_session_close_all(struct mxd_worker *w)
{
	while (w->sessions)
		smtp_session_free(w->sessions);
}
