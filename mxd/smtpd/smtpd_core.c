/* The SMTP server's conversation, without I/O (see smtpd_core.h). Commands go
 * through a table: whether a command is allowed now is checked apart from
 * what it does. */
#include "smtpd_core.h"
#include "buf.h"
#include "dsn.h"
#include "log.h"
#include "rptspool.h"
#include "timeutil.h"
#include "xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SMTPD_CORE_SPOOL_FLUSH	65536	/* default content buffered before a spool write */

struct smtpd_core {
	struct smtpd_core_info	 info;
	const struct mxd_config	*cfg;
	const struct smtpd_core_io *io;
	void			*arg;
	char			 sid[SPOOL_ID_MAX];
	char			 ip[64];
	char			 client_name[256];	/* confirmed PTR name, or "" */
	int			 trusted;
	int			 tls_available;
	size_t			 flush_bytes;	/* content buffered before a spool write */
	int			 skipping;	/* discarding the rest of an overlong line */
	char			 tls_version[16];
	char			 tls_cipher[64];

	/* transaction */
	struct spool_env	 env;
	int			 msg_open;	/* io->msg_begin succeeded, not yet ended */
	int			 spool_err;	/* the first write error of the message */
	struct smtp_data	 data;
	struct smtp_bdat	 bdat;
	uint64_t		 bdat_left;
	int			 bdat_last;
	int			 bdat_started;
	char			 bdat_tail[2];	/* the message's last two bytes so far */
	const char		*bdat_reject;	/* reply once the chunk is consumed */
	int			 bdat_error;	/* the spool refused the first chunk: so
						   is every later one, till LAST or RSET */
	struct buf		 content;
	/* recipients that are TLSRPT addresses, kept apart (rptspool.h) */
	char			**rpt_rcpts;
	size_t			 nrpt_rcpts;
	struct buf		 rpt_copy;	/* the message for them */
	int			 rpt_too_big;

	/* the RCPT waiting for a probe (SMTPD_PHASE_VERIFY) */
	char			*verify_addr;
	char			*verify_orcpt;
	unsigned		 verify_notify;
};

void
smtpd_core_reply(struct smtpd_core *s, const char *fmt, ...)
{
	char small[512], *line = small;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		panic("smtpd_core_reply: bad format %s", fmt);
	if ((size_t)n >= sizeof(small) - 2) {
		line = xmalloc((size_t)n + 3);
		va_start(ap, fmt);
		vsnprintf(line, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	memcpy(line + n, "\r\n", 2);
	s->io->send(s->arg, line, (size_t)n + 2);
	if (line != small)
		free(line);
}

static void
smtpd_core_close(struct smtpd_core *s)
{
	s->info.closing = 1;
	s->io->close(s->arg);
}

static void
smtpd_core_set_timeout(struct smtpd_core *s, int seconds)
{
	s->io->set_timeout(s->arg, seconds);
}

static int
smtpd_core_error(struct smtpd_core *s)
{
	if (++s->info.errors < s->cfg->max_errors)
		return 0;
	smtpd_core_reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
	log_info("event=too_many_errors sid=%s client=%s errors=%d", s->sid, s->ip, s->info.errors);
	smtpd_core_close(s);
	return 1;
}

/* ---- mail to the TLSRPT addresses (rptspool.h) ---- */

static void
smtpd_core_rpt_reset(struct smtpd_core *s)
{
	for (size_t i = 0; i < s->nrpt_rcpts; i++)
		free(s->rpt_rcpts[i]);
	free(s->rpt_rcpts);
	s->rpt_rcpts = NULL;
	s->nrpt_rcpts = 0;
	buf_reset(&s->rpt_copy);
	s->rpt_too_big = 0;
}

static void
smtpd_core_rpt_add(struct smtpd_core *s, const char *addr)
{
	for (size_t i = 0; i < s->nrpt_rcpts; i++)
		if (strcasecmp(s->rpt_rcpts[i], addr) == 0)
			return;
	s->rpt_rcpts = xreallocarray(s->rpt_rcpts, s->nrpt_rcpts + 1, sizeof(char *));
	s->rpt_rcpts[s->nrpt_rcpts++] = xstrdup(addr);
}

/* The content written so far, copied for the report addresses. */
static void
smtpd_core_rpt_tee(struct smtpd_core *s)
{
	if (s->nrpt_rcpts == 0 || s->rpt_too_big)
		return;
	if (s->rpt_copy.len + s->content.len > RPTSPOOL_MAX) {
		s->rpt_too_big = 1;
		buf_reset(&s->rpt_copy);
	} else
		buf_append(&s->rpt_copy, s->content.data, s->content.len);
}

static void smtpd_core_txn_reset(struct smtpd_core *s);
static void smtpd_core_spool_failed(struct smtpd_core *s, int err);

/* A copy per report address, durable before any reply: 0, or -1 when the
 * message was refused (answered, transaction reset). */
static int
smtpd_core_rpt_store(struct smtpd_core *s)
{
	char name[RPTSPOOL_NAME_MAX], err[600], q[LOG_QUOTE_SIZE(100)];
	int e = 0;

	if (s->rpt_too_big) {
		smtpd_core_txn_reset(s);
		s->info.phase = SMTPD_PHASE_READY;
		smtpd_core_reply(s, "552 5.3.4 Error: message too big for a TLS report address"
		    " (at most %u bytes)", RPTSPOOL_MAX);
		return -1;
	}
	if (s->env.nrcpts > 0 && s->spool_err)
		return 0;	/* the queue failed: its reply says so, nothing kept */
	for (size_t i = 0; i < s->nrpt_rcpts && e == 0; i++) {
		snprintf(name, sizeof(name), "%s.%zu", s->env.id, i);
		e = rptspool_store(s->cfg->spool_dir, name, s->env.from, s->rpt_rcpts[i],
		    s->env.created, s->rpt_copy.data, s->rpt_copy.len, err, sizeof(err));
		if (e == 0)
			log_info("event=tlsrpt_kept sid=%s id=%s rcpt=%s size=%zu", s->sid, name,
			    log_quote(q, sizeof(q), s->rpt_rcpts[i], strlen(s->rpt_rcpts[i]), 100),
			    s->rpt_copy.len);
	}
	if (e == 0)
		return 0;
	log_warnx("event=tlsrpt_keep_failed sid=%s error=\"%s\"", s->sid, err);
	smtpd_core_txn_reset(s);
	s->info.phase = SMTPD_PHASE_READY;
	smtpd_core_spool_failed(s, e);
	return -1;
}

static void
smtpd_core_txn_reset(struct smtpd_core *s)
{
	if (s->msg_open) {
		s->io->msg_abort(s->arg);
		s->msg_open = 0;
	}
	spool_env_free(&s->env);
	memset(&s->env, 0, sizeof(s->env));
	buf_reset(&s->content);
	smtpd_core_rpt_reset(s);
	s->spool_err = 0;
	s->info.in_txn = 0;
	s->bdat_started = 0;
	s->bdat_reject = NULL;
	s->bdat_error = 0;
}

static void
smtpd_core_ehlo_reply(struct smtpd_core *s)
{
	const struct mxd_config *cfg = s->cfg;
	int can_tls = !s->info.tls && s->tls_available && cfg->ncerts > 0;

	smtpd_core_reply(s, "250-%s", cfg->hostname);
	smtpd_core_reply(s, "250-PIPELINING");
	smtpd_core_reply(s, "250-SIZE %" PRIu64, cfg->message_size);
	smtpd_core_reply(s, "250-ENHANCEDSTATUSCODES");
	smtpd_core_reply(s, "250-8BITMIME");
	smtpd_core_reply(s, "250-SMTPUTF8");
	smtpd_core_reply(s, "250-CHUNKING");
	smtpd_core_reply(s, "250-DSN");
	if (can_tls)
		smtpd_core_reply(s, "250-STARTTLS");
	/* RFC 8689: REQUIRETLS only once the session is protected. */
	if (s->info.tls)
		smtpd_core_reply(s, "250-REQUIRETLS");
	smtpd_core_reply(s, "250 HELP");
	if (can_tls && s->info.starttls == SMTPD_STARTTLS_NONE)
		s->info.starttls = SMTPD_STARTTLS_OFFERED;
}

static void
smtpd_core_cmd_helo(struct smtpd_core *s, const struct smtp_cmd *c)
{
	if (!smtp_parser_helo_ok(c->args)) {
		smtpd_core_reply(s, "501 5.5.4 Syntax: %s hostname", c->name);
		smtpd_core_error(s);
		return;
	}
	smtpd_core_txn_reset(s);
	snprintf(s->info.helo, sizeof(s->info.helo), "%s", c->args);
	s->info.esmtp = c->verb == SMTP_CMD_EHLO;
	s->info.phase = SMTPD_PHASE_READY;
	if (s->info.esmtp)
		smtpd_core_ehlo_reply(s);
	else
		smtpd_core_reply(s, "250 %s", s->cfg->hostname);
}

static void
smtpd_core_path_error(struct smtpd_core *s, int rc, const char *what)
{
	switch (rc) {
	case SMTP_PARSE_TOO_LONG:
		smtpd_core_reply(s, "501 5.1.3 Error: %s address too long", what);
		break;
	case SMTP_PARSE_NEED_UTF8:
		smtpd_core_reply(s, "553 5.6.7 Error: non-ASCII address without SMTPUTF8");
		break;
	default:
		smtpd_core_reply(s, "501 5.5.4 Syntax: %s", strcmp(what, "sender") == 0 ?
		    "MAIL FROM:<address>" : "RCPT TO:<address>");
		break;
	}
	smtpd_core_error(s);
}

/* A duplicated or malformed RFC 3461 parameter: named in the reply, and the
 * rest of the session (an open transaction, its recipients) is kept. */
static void
smtpd_core_dsn_error(struct smtpd_core *s, int rc, const char *key)
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
		smtpd_core_reply(s, "501 5.5.4 Error: duplicate %.32s parameter", key);
	else
		smtpd_core_reply(s, "501 5.5.4 Error: malformed %.32s parameter (%s)", key, hint);
	smtpd_core_error(s);
}

static void
smtpd_core_cmd_mail(struct smtpd_core *s, const struct smtp_cmd *c)
{
	const struct mxd_config *cfg = s->cfg;
	char addr[SMTP_PATH_MAX + 1];
	const char *ptext;
	struct smtp_param params[SMTP_PARAMS_MAX];
	int rc, np, utf8 = 0, requiretls = 0, body8 = 0, ret = DSN_RET_NONE;
	const char *envid = NULL;

	rc = smtp_parser_path(c->args, "FROM:", 1, 1, addr, sizeof(addr), &ptext);
	if (rc < 0) {
		smtpd_core_path_error(s, rc, "sender");
		return;
	}
	np = smtp_parser_params(ptext, params, SMTP_PARAMS_MAX);
	if (np < 0 || (np > 0 && !s->info.esmtp)) {
		smtpd_core_reply(s, "555 5.5.4 Error: bad MAIL FROM parameters");
		smtpd_core_error(s);
		return;
	}
	for (int i = 0; i < np; i++) {
		struct smtp_param *p = &params[i];
		if ((rc = smtp_parser_dsn_mail(p, &ret, &envid)) != 0) {
			if (rc < 0) {
				smtpd_core_dsn_error(s, rc, p->key);
				return;
			}
		} else if (strcmp(p->key, "SIZE") == 0 && p->has_value) {
			char *end;
			unsigned long long v = strtoull(p->value, &end, 10);
			if (*end != '\0' || p->value[0] < '0' || p->value[0] > '9') {
				smtpd_core_reply(s, "501 5.5.4 Error: bad SIZE value");
				smtpd_core_error(s);
				return;
			}
			if (v > cfg->message_size) {
				smtpd_core_reply(s, "552 5.3.4 Error: message size exceeds fixed limit");
				smtpd_core_error(s);
				return;
			}
		} else if (strcmp(p->key, "BODY") == 0 && p->has_value &&
		    (strcasecmp(p->value, "7BIT") == 0 || strcasecmp(p->value, "8BITMIME") == 0)) {
			body8 = strcasecmp(p->value, "8BITMIME") == 0;
		} else if (strcmp(p->key, "SMTPUTF8") == 0 && !p->has_value) {
			utf8 = 1;
		} else if (strcmp(p->key, "REQUIRETLS") == 0 && !p->has_value && s->info.tls) {
			requiretls = 1;
		} else {
			smtpd_core_reply(s, "555 5.5.4 Error: unsupported parameter %.32s", p->key);
			smtpd_core_error(s);
			return;
		}
	}
	if (!utf8 && smtp_parser_has_utf8(addr)) {
		smtpd_core_path_error(s, SMTP_PARSE_NEED_UTF8, "sender");
		return;
	}
	smtpd_core_txn_reset(s);
	s->env.from = xstrdup(addr);
	s->env.smtputf8 = utf8;
	s->env.requiretls = requiretls;
	s->env.body8bit = body8;
	s->env.ret = ret;
	s->env.envid = envid ? xstrdup(envid) : NULL;
	s->info.in_txn = 1;
	s->info.phase = SMTPD_PHASE_MAIL;
	smtpd_core_reply(s, "250 2.1.0 Ok");
}

static void
smtpd_core_rcpt_unknown(struct smtpd_core *s, const char *addr)
{
	char q[LOG_QUOTE_SIZE(100)];
	log_info("event=rcpt_refused sid=%s reason=user_unknown rcpt=%s", s->sid,
	    log_quote(q, sizeof(q), addr, strlen(addr), 100));
	smtpd_core_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", addr);
	smtpd_core_error(s);
}

/* The answer to a recipient of a verify-mode domain. */
static void
smtpd_core_rcpt_verified(struct smtpd_core *s, const char *addr, unsigned notify,
    const char *orcpt, enum smtpd_core_verify v)
{
	switch (v) {
	case SMTPD_VERIFY_KNOWN:
		spool_env_add_rcpt_dsn(&s->env, addr, notify, orcpt);
		s->info.rcpts_total++;
		smtpd_core_reply(s, "250 2.1.5 Ok");
		break;
	case SMTPD_VERIFY_UNKNOWN:
		smtpd_core_rcpt_unknown(s, addr);
		break;
	default:
		smtpd_core_reply(s, "450 4.1.1 <%s>: Recipient address rejected: "
		    "Recipient address verification failed: try again later", addr);
		break;
	}
}

static void
smtpd_core_cmd_rcpt(struct smtpd_core *s, const struct smtp_cmd *c)
{
	const struct mxd_config *cfg = s->cfg;
	char addr[SMTP_PATH_MAX + 1];
	const char *ptext;
	struct smtp_param params[SMTP_PARAMS_MAX];
	int rc, np;
	unsigned notify = 0;
	const char *orcpt = NULL;

	rc = smtp_parser_path(c->args, "TO:", 0, 1, addr, sizeof(addr), &ptext);
	if (rc < 0) {
		smtpd_core_path_error(s, rc, "recipient");
		return;
	}
	if (!s->env.smtputf8 && smtp_parser_has_utf8(addr)) {
		smtpd_core_path_error(s, SMTP_PARSE_NEED_UTF8, "recipient");
		return;
	}
	np = smtp_parser_params(ptext, params, SMTP_PARAMS_MAX);
	if (np < 0 || (np > 0 && !s->info.esmtp)) {
		smtpd_core_reply(s, "555 5.5.4 Error: unsupported RCPT TO parameters");
		smtpd_core_error(s);
		return;
	}
	for (int i = 0; i < np; i++) {
		rc = smtp_parser_dsn_rcpt(&params[i], &notify, &orcpt);
		if (rc < 0) {
			smtpd_core_dsn_error(s, rc, params[i].key);
			return;
		}
		if (rc == 0) {
			smtpd_core_reply(s, "555 5.5.4 Error: unsupported RCPT TO parameters");
			smtpd_core_error(s);
			return;
		}
	}
	if (s->env.nrcpts + s->nrpt_rcpts >= (size_t)cfg->max_recipients) {
		smtpd_core_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	const char *domain = smtp_parser_domain(addr);
	const struct mxd_domain *dom;
	if (rptspool_is_address(cfg, addr)) {
		/* A TLS report for controld: kept, not relayed (rptspool.h). */
		smtpd_core_rpt_add(s, addr);
	} else if (domain == NULL) {
		/* <postmaster>: the first local domain's postmaster. */
		if (cfg->ndomains == 0) {
			smtpd_core_reply(s, "550 5.1.1 <%s>: Recipient address rejected", addr);
			smtpd_core_error(s);
			return;
		}
		char pm[SMTP_PATH_MAX + 1];
		snprintf(pm, sizeof(pm), "postmaster@%s", cfg->domains[0].name);
		spool_env_add_rcpt_dsn(&s->env, pm, notify, orcpt);
	} else if ((dom = mxd_config_domain(cfg, domain)) != NULL) {
		/* Refused here, never bounced later (backscatter: rcpt_check.h). */
		if (dom->rcpt.mode == RCPT_CHECK_VERIFY) {
			enum smtpd_core_verify v = s->io->rcpt_verify ?
			    s->io->rcpt_verify(s->arg, dom, addr) : SMTPD_VERIFY_FAILED;
			if (v == SMTPD_VERIFY_WAIT) {
				s->verify_addr = xstrdup(addr);
				s->verify_orcpt = orcpt ? xstrdup(orcpt) : NULL;
				s->verify_notify = notify;
				s->info.phase = SMTPD_PHASE_VERIFY;
				return;
			}
			smtpd_core_rcpt_verified(s, addr, notify, orcpt, v);
			return;
		}
		if (rcpt_check_verdict(&dom->rcpt, addr, cfg->recipient_delimiter) == RCPT_UNKNOWN) {
			smtpd_core_rcpt_unknown(s, addr);
			return;
		}
		spool_env_add_rcpt_dsn(&s->env, addr, notify, orcpt);
	} else if (s->trusted) {
		/* Some route (on some attempt), the relay, or direct MX delivery. */
		const char *hop;
		const struct mxd_nexthop *nh = mxd_config_route(cfg, s->env.from, addr, INT_MAX, &hop);
		if (cfg->resolver == NULL && (nh == NULL || nh->proto == MXD_NH_MX)) {
			smtpd_core_reply(s, "451 4.3.0 <%s>: no route to remote domains "
			    "(set relay_next_hop, a route, or resolver for direct MX delivery)", addr);
			return;
		}
		spool_env_add_rcpt_dsn(&s->env, addr, notify, orcpt);
	} else {
		smtpd_core_reply(s, "554 5.7.1 <%s>: Relay access denied", addr);
		smtpd_core_error(s);
		return;
	}
	s->info.rcpts_total++;
	smtpd_core_reply(s, "250 2.1.5 Ok");
}

/* The spool could not take the message: a temporary failure whatever the
 * cause, so the sender keeps the mail and retries; 4.3.1 when storage ran
 * out (RFC 3463), which 552 5.3.4 would have turned into a bounce. */
static const char *
smtpd_core_spool_reply(int err)
{
	return err == ENOSPC || err == EDQUOT ? "452 4.3.1 Insufficient system storage" :
	    "451 4.3.0 Error: queue file write error";
}

static void
smtpd_core_spool_failed(struct smtpd_core *s, int err)
{
	smtpd_core_reply(s, "%s", smtpd_core_spool_reply(err));
}

/* Start a message file: envelope, then our Received: header. */
static int
smtpd_core_msg_begin(struct smtpd_core *s)
{
	const struct mxd_config *cfg = s->cfg;
	char date[64];

	int err = s->io->msg_begin(s->arg, &s->env);
	if (err != 0) {
		smtpd_core_spool_failed(s, err);
		return -err;
	}
	s->msg_open = 1;
	buf_reset(&s->content);
	if (!cfg->received_header)
		return 0;
	char helo[SMTP_DOMAIN_MAX + 1];
	size_t i;
	for (i = 0; s->info.helo[i] && i < sizeof(helo) - 1; i++) {
		unsigned char ch = (unsigned char)s->info.helo[i];
		helo[i] = (ch < 0x21 || ch > 0x7e || ch == '(' || ch == ')') ? '?' : (char)ch;
	}
	helo[i] = '\0';
	const char *proto = s->env.smtputf8 ? (s->info.tls ? "UTF8SMTPS" : "UTF8SMTP") :
	    s->info.esmtp ? (s->info.tls ? "ESMTPS" : "ESMTP") : "SMTP";
	buf_printf(&s->content, "Received: from %s (%s%s[%s])\r\n\tby %s (mxd) with %s id %s",
	    helo, s->client_name, s->client_name[0] ? " " : "", s->ip, cfg->hostname, proto,
	    s->env.id);
	if (s->info.tls)
		buf_printf(&s->content, "\r\n\t(version=%s cipher=%s)", s->tls_version, s->tls_cipher);
	if (s->env.nrcpts == 1 && !smtp_parser_has_utf8(s->env.rcpts[0]))
		buf_printf(&s->content, "\r\n\tfor <%s>", s->env.rcpts[0]);
	buf_printf(&s->content, ";\r\n\t%s\r\n", timeutil_rfc5322(date, sizeof(date), s->env.created));
	return 0;
}

/* Write out the buffered content. The first error sticks: it is what the
 * message is refused with at its end. */
static void
smtpd_core_flush_content(struct smtpd_core *s)
{
	if (s->content.len == 0)
		return;
	smtpd_core_rpt_tee(s);
	int err = s->spool_err ? s->spool_err : s->io->msg_write(s->arg, s->content.data,
	    s->content.len);
	buf_reset(&s->content);
	if (err != 0 && s->spool_err == 0)
		s->spool_err = err;
}

/* The content is complete: refuse it or make it durable. */
static void
smtpd_core_msg_end(struct smtpd_core *s, unsigned flags, uint64_t size)
{
	if (flags & (SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR)) {
		log_info("event=rejected sid=%s client=%s reason=%s", s->sid, s->ip,
		    flags & SMTP_DATA_BARE_LF ? "bare_lf" : "bare_cr");
		smtpd_core_txn_reset(s);
		s->info.phase = SMTPD_PHASE_READY;
		smtpd_core_reply(s, "550 5.5.2 Error: bare <%s> received; lines must end in <CR><LF>",
		    flags & SMTP_DATA_BARE_LF ? "LF" : "CR");
		smtpd_core_error(s);
		return;
	}
	if (flags & SMTP_DATA_TOO_BIG) {
		smtpd_core_txn_reset(s);
		s->info.phase = SMTPD_PHASE_READY;
		smtpd_core_reply(s, "552 5.3.4 Error: message size exceeds fixed limit");
		smtpd_core_error(s);
		return;
	}
	s->env.size = size;
	smtpd_core_flush_content(s);
	if (s->nrpt_rcpts > 0 && smtpd_core_rpt_store(s) < 0)
		return;
	if (s->env.nrcpts == 0) {
		/* Only report addresses: kept, nothing to queue. */
		smtpd_core_txn_reset(s);
		s->info.phase = SMTPD_PHASE_READY;
		smtpd_core_reply(s, "250 2.0.0 Ok: kept for controld");
		s->info.messages++;
		return;
	}
	int err = s->spool_err ? s->spool_err : s->io->msg_commit(s->arg);
	if (err != 0) {
		smtpd_core_txn_reset(s);	/* removes the partial file */
		s->info.phase = SMTPD_PHASE_READY;
		smtpd_core_spool_failed(s, err);
		return;
	}
	/* The file belongs to the commit now; msg_abort would cancel it. */
	s->info.phase = SMTPD_PHASE_COMMIT;
}

static void
smtpd_core_cmd_data(struct smtpd_core *s, const struct smtp_cmd *c)
{
	if (c->args[0] != '\0') {
		smtpd_core_reply(s, "501 5.5.4 Syntax: DATA");
		smtpd_core_error(s);
		return;
	}
	if (s->env.nrcpts + s->nrpt_rcpts == 0 || s->bdat_started || s->bdat_error) {
		smtpd_core_reply(s, "503 5.5.1 Error: %s", s->bdat_started || s->bdat_error ?
		    "DATA after BDAT" : "need RCPT command");
		smtpd_core_error(s);
		return;
	}
	if (smtpd_core_msg_begin(s) < 0)
		return;
	smtp_data_init(&s->data, s->cfg->message_size);
	s->info.phase = SMTPD_PHASE_DATA;
	smtpd_core_set_timeout(s, s->cfg->data_timeout);
	smtpd_core_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
smtpd_core_cmd_bdat(struct smtpd_core *s, const struct smtp_cmd *c)
{
	char *end;
	const char *a = c->args;
	if (*a < '0' || *a > '9') {
		/* Without a size the stream can not be followed: give up on it. */
		smtpd_core_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		smtpd_core_reply(s, "421 4.5.0 %s Error: lost synchronization", s->cfg->hostname);
		smtpd_core_close(s);
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
		smtpd_core_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		smtpd_core_reply(s, "421 4.5.0 %s Error: lost synchronization", s->cfg->hostname);
		smtpd_core_close(s);
		return;
	}
	s->bdat_left = n;
	s->bdat_last = last;
	s->bdat_reject = NULL;
	s->info.phase = SMTPD_PHASE_BDAT;
	smtpd_core_set_timeout(s, s->cfg->data_timeout);
	if (!s->info.esmtp)
		s->bdat_reject = "503 5.5.1 Error: send EHLO first";
	else if (!s->info.in_txn || s->env.nrcpts + s->nrpt_rcpts == 0)
		s->bdat_reject = "503 5.5.1 Error: need RCPT command";
	else if (s->bdat_error)
		s->bdat_reject = smtpd_core_spool_reply(s->bdat_error);
	else if (!s->bdat_started) {
		int rc = smtpd_core_msg_begin(s);
		if (rc < 0) {
			/* Answered 452/451 already. The rest of the transaction
			 * is refused too: its chunks alone are not the message. */
			s->bdat_error = -rc;
			s->bdat_reject = "";
			return;
		}
		smtp_bdat_init(&s->bdat, s->cfg->message_size);
		memset(s->bdat_tail, 0, sizeof(s->bdat_tail));
		s->bdat_started = 1;
	}
}

/* The whole chunk has been read. */
static void
smtpd_core_bdat_done(struct smtpd_core *s)
{
	if (s->bdat_reject) {
		if (s->bdat_reject[0])
			smtpd_core_reply(s, "%s", s->bdat_reject);
		int spool_error = s->bdat_error;
		s->bdat_reject = NULL;
		if (s->bdat_started || (spool_error && s->bdat_last))
			smtpd_core_txn_reset(s);
		s->info.phase = s->info.in_txn ? SMTPD_PHASE_MAIL :
		    s->info.helo[0] ? SMTPD_PHASE_READY : SMTPD_PHASE_INIT;
		smtpd_core_set_timeout(s, s->cfg->command_timeout);
		if (!spool_error)	/* a full disk is not the client's error */
			smtpd_core_error(s);
		return;
	}
	if (!s->bdat_last) {
		s->info.phase = SMTPD_PHASE_MAIL;
		smtpd_core_set_timeout(s, s->cfg->command_timeout);
		/* A spool error sticks and is reported at LAST. */
		if (s->content.len >= s->flush_bytes && s->bdat.flags == 0)
			smtpd_core_flush_content(s);
		smtpd_core_reply(s, "250 2.0.0 Ok: %" PRIu64 " octets received", s->bdat.size);
		return;
	}
	smtp_bdat_finish(&s->bdat);
	/* Relayed later with DATA: the content must end in CRLF. */
	uint64_t size = s->bdat.size;
	if (s->bdat.flags == 0 && size > 0 && memcmp(s->bdat_tail, "\r\n", 2) != 0) {
		buf_append(&s->content, "\r\n", 2);
		size += 2;
	}
	smtpd_core_set_timeout(s, s->cfg->command_timeout);
	smtpd_core_msg_end(s, s->bdat.flags, size);
}

static void
smtpd_core_cmd_rset(struct smtpd_core *s, const struct smtp_cmd *c)
{
	smtpd_core_txn_reset(s);
	if (s->info.phase == SMTPD_PHASE_MAIL)
		s->info.phase = SMTPD_PHASE_READY;
	smtpd_core_reply(s, "250 2.0.0 Ok");
}

static void
smtpd_core_cmd_noop(struct smtpd_core *s, const struct smtp_cmd *c)
{
	smtpd_core_reply(s, "250 2.0.0 Ok");
}

static void
smtpd_core_cmd_quit(struct smtpd_core *s, const struct smtp_cmd *c)
{
	smtpd_core_reply(s, "221 2.0.0 Bye");
	smtpd_core_close(s);
}

static void
smtpd_core_cmd_vrfy(struct smtpd_core *s, const struct smtp_cmd *c)
{
	smtpd_core_reply(s, "252 2.1.5 Cannot VRFY user; send some mail and delivery will be tried");
}

static void
smtpd_core_cmd_expn(struct smtpd_core *s, const struct smtp_cmd *c)
{
	smtpd_core_reply(s, "502 5.5.1 Error: EXPN not supported");
	smtpd_core_error(s);
}

static void
smtpd_core_cmd_help(struct smtpd_core *s, const struct smtp_cmd *c)
{
	smtpd_core_reply(s, "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP%s",
	    s->info.tls || s->cfg->ncerts == 0 ? "" : " STARTTLS");
	smtpd_core_reply(s, "214 2.0.0 End of HELP");
}

static void
smtpd_core_cmd_auth(struct smtpd_core *s, const struct smtp_cmd *c)
{
	smtpd_core_reply(s, "503 5.5.1 Error: authentication not enabled");
	smtpd_core_error(s);
}

static void smtpd_core_cmd_starttls(struct smtpd_core *s, const struct smtp_cmd *c);

#define P_INIT	(1u << SMTPD_PHASE_INIT)
#define P_READY	(1u << SMTPD_PHASE_READY)
#define P_MAIL	(1u << SMTPD_PHASE_MAIL)
#define P_ANY	(P_INIT | P_READY | P_MAIL)

static const struct smtpd_core_cmd {
	enum smtp_verb	 verb;
	unsigned	 phases;	/* where the command is allowed */
	int		 junk;		/* counts toward limits.junk_commands */
	const char	*refusal;	/* reply when it is not */
	void		(*proceed)(struct smtpd_core *, const struct smtp_cmd *);
} smtpd_core_cmds[] = {
	{ SMTP_CMD_EHLO, P_ANY, 1, NULL, smtpd_core_cmd_helo },
	{ SMTP_CMD_HELO, P_ANY, 1, NULL, smtpd_core_cmd_helo },
	{ SMTP_CMD_MAIL, P_READY, 0, "503 5.5.1 Error: send HELO/EHLO first, or nested MAIL command",
	    smtpd_core_cmd_mail },
	{ SMTP_CMD_RCPT, P_MAIL, 0, "503 5.5.1 Error: need MAIL command", smtpd_core_cmd_rcpt },
	{ SMTP_CMD_DATA, P_MAIL, 0, "503 5.5.1 Error: need RCPT command", smtpd_core_cmd_data },
	{ SMTP_CMD_BDAT, P_ANY, 0, NULL, smtpd_core_cmd_bdat },
	{ SMTP_CMD_RSET, P_ANY, 1, NULL, smtpd_core_cmd_rset },
	{ SMTP_CMD_NOOP, P_ANY, 1, NULL, smtpd_core_cmd_noop },
	{ SMTP_CMD_QUIT, P_ANY, 0, NULL, smtpd_core_cmd_quit },
	{ SMTP_CMD_VRFY, P_ANY, 1, NULL, smtpd_core_cmd_vrfy },
	{ SMTP_CMD_EXPN, P_ANY, 0, NULL, smtpd_core_cmd_expn },
	{ SMTP_CMD_HELP, P_ANY, 1, NULL, smtpd_core_cmd_help },
	{ SMTP_CMD_STARTTLS, P_INIT | P_READY, 0, "503 5.5.1 Error: STARTTLS inside a mail transaction",
	    smtpd_core_cmd_starttls },
	{ SMTP_CMD_AUTH, P_ANY, 0, NULL, smtpd_core_cmd_auth },
};

static void
smtpd_core_dispatch(struct smtpd_core *s, const char *line, size_t len)
{
	struct smtp_cmd c;
	char q[LOG_QUOTE_SIZE(100)];

	smtp_parser_command(line, len, &c);
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_debug("event=command sid=%s line=%s", s->sid, log_quote(q, sizeof(q), line, len, 100));
	if (memchr(line, '\0', len) != NULL) {
		smtpd_core_reply(s, "500 5.5.2 Error: NUL in command");
		smtpd_core_error(s);
		return;
	}
	for (size_t i = 0; i < sizeof(smtpd_core_cmds) / sizeof(smtpd_core_cmds[0]); i++) {
		const struct smtpd_core_cmd *t = &smtpd_core_cmds[i];
		if (t->verb != c.verb)
			continue;
		if (!(t->phases & (1u << s->info.phase))) {
			smtpd_core_reply(s, "%s", t->refusal);
			smtpd_core_error(s);
			return;
		}
		if (t->junk && ++s->info.junk > s->cfg->junk_commands) {
			smtpd_core_reply(s, "421 4.7.0 %s Error: too many junk commands",
			    s->cfg->hostname);
			log_info("event=too_many_junk_commands sid=%s client=%s junk=%d", s->sid,
			    s->ip, s->info.junk);
			smtpd_core_close(s);
			return;
		}
		t->proceed(s, &c);
		return;
	}
	smtpd_core_reply(s, "502 5.5.2 Error: command not recognized");
	smtpd_core_error(s);
}


static void
smtpd_core_cmd_starttls(struct smtpd_core *s, const struct smtp_cmd *c)
{
	if (s->info.tls) {
		smtpd_core_reply(s, "554 5.5.1 Error: TLS already active");
		smtpd_core_error(s);
		return;
	}
	if (s->cfg->ncerts == 0 || !s->tls_available) {
		smtpd_core_reply(s, "502 5.5.1 Error: STARTTLS not available");
		smtpd_core_error(s);
		return;
	}
	if (c->args[0] != '\0') {
		smtpd_core_reply(s, "501 5.5.4 Syntax: STARTTLS");
		smtpd_core_error(s);
		return;
	}
	smtpd_core_txn_reset(s);
	s->info.starttls = SMTPD_STARTTLS_ATTEMPTED;
	smtpd_core_reply(s, "220 2.0.0 Ready to start TLS");
	/* Read nothing more in plaintext; the handshake starts once the 220
	 * has left. */
	s->info.phase = SMTPD_PHASE_STARTTLS_FLUSH;
	s->io->starttls(s->arg);
}


/* ---- input ---- */

/* DATA content, up to its end. */
static size_t
smtpd_core_feed_data(struct smtpd_core *s, const char *data, size_t len)
{
	size_t used = smtp_data_feed(&s->data, data, len, &s->content);
	if (s->data.state == SMTP_DATA_END) {
		smtpd_core_set_timeout(s, s->cfg->command_timeout);
		smtpd_core_msg_end(s, s->data.flags, s->data.size);
		return used;
	}
	if (s->content.len >= s->flush_bytes)
		smtpd_core_flush_content(s);	/* an error sticks: refused at the end */
	return used;
}

/* A BDAT chunk, up to its end. */
static size_t
smtpd_core_feed_bdat(struct smtpd_core *s, const char *data, size_t len)
{
	size_t take = len < s->bdat_left ? len : (size_t)s->bdat_left;
	if (s->bdat_reject == NULL && take > 0) {
		smtp_bdat_feed(&s->bdat, data, take, &s->content);
		/* Kept apart from content, which a spool write empties. */
		if (take >= 2)
			memcpy(s->bdat_tail, data + take - 2, 2);
		else {
			s->bdat_tail[0] = s->bdat_tail[1];
			s->bdat_tail[1] = data[0];
		}
	}
	s->bdat_left -= take;
	if (s->bdat_reject == NULL && s->content.len >= s->flush_bytes &&
	    s->bdat.flags == 0)
		smtpd_core_flush_content(s);	/* an error sticks: refused at LAST */
	if (s->bdat_left == 0)
		smtpd_core_bdat_done(s);
	return take;
}

/* ---- input ---- */

/* One command line of data[0..len), or the rest of an overlong one. */
static int
smtpd_core_feed_line(struct smtpd_core *s, const char *data, size_t len, size_t *used)
{
	char line[SMTP_LINE_MAX + 1];
	const char *lf = len ? memchr(data, '\n', len) : NULL;

	if (lf == NULL) {
		if (len <= SMTP_LINE_MAX)
			return 0;
		/* Drop the overlong line as it comes; answer once. */
		*used = len;
		if (!s->skipping) {
			s->skipping = 1;
			smtpd_core_reply(s, "500 5.5.2 Error: line too long");
			smtpd_core_error(s);
		}
		return 1;
	}
	/* A line ends at LF, after an optional CR. */
	size_t pos = (size_t)(lf - data);
	size_t n = pos > 0 && data[pos - 1] == '\r' ? pos - 1 : pos;
	*used = pos + 1;
	if (s->skipping) {
		s->skipping = 0;
		return 1;
	}
	if (n + 2 > SMTP_LINE_MAX) {
		smtpd_core_reply(s, "500 5.5.2 Error: line too long");
		smtpd_core_error(s);
		return 1;
	}
	memcpy(line, data, n);
	line[n] = '\0';
	smtpd_core_dispatch(s, line, n);
	return 1;
}

int
smtpd_core_feed(struct smtpd_core *s, const char *data, size_t len, size_t *used)
{
	*used = 0;
	if (s->info.closing)
		return 0;
	switch (s->info.phase) {
	case SMTPD_PHASE_COMMIT:
	case SMTPD_PHASE_VERIFY:
	case SMTPD_PHASE_TLS:
	case SMTPD_PHASE_STARTTLS_FLUSH:
		return 0;
	case SMTPD_PHASE_DATA:
		if (len == 0)
			return 0;
		*used = smtpd_core_feed_data(s, data, len);
		return 1;
	case SMTPD_PHASE_BDAT:
		if (len == 0 && s->bdat_left > 0)
			return 0;
		*used = smtpd_core_feed_bdat(s, data, len);
		return 1;
	default:
		return smtpd_core_feed_line(s, data, len, used);
	}
}

void
smtpd_core_commit_done(struct smtpd_core *s, int error, const char *id)
{
	char from[LOG_QUOTE_SIZE(100)];

	s->msg_open = 0;	/* the commit has ended: nothing to abort */
	if (error == 0) {
		log_quote(from, sizeof(from), s->env.from, strlen(s->env.from), 100);
		log_info("event=queued sid=%s id=%s from=%s rcpts=%zu size=%" PRIu64
		    " requiretls=%d tls=%s", s->sid, id, from, s->env.nrcpts, s->env.size,
		    s->env.requiretls, s->info.tls ? s->tls_version : "none");
		smtpd_core_reply(s, "250 2.0.0 Ok: queued as %s", id);
		s->info.messages++;
		s->info.junk = 0;	/* a client doing real work is forgiven (as Postfix) */
	} else
		smtpd_core_spool_failed(s, error);
	smtpd_core_txn_reset(s);
	s->info.phase = SMTPD_PHASE_READY;
	smtpd_core_set_timeout(s, s->cfg->command_timeout);
}

static void
smtpd_core_verify_forget(struct smtpd_core *s)
{
	free(s->verify_addr);
	free(s->verify_orcpt);
	s->verify_addr = s->verify_orcpt = NULL;
}

void
smtpd_core_verify_done(struct smtpd_core *s, enum smtpd_core_verify r)
{
	if (s->info.phase != SMTPD_PHASE_VERIFY || s->verify_addr == NULL)
		panic("smtpd_core_verify_done: no RCPT waits for a probe");
	s->info.phase = SMTPD_PHASE_MAIL;
	if (!s->info.closing)
		smtpd_core_rcpt_verified(s, s->verify_addr, s->verify_notify, s->verify_orcpt,
		    r == SMTPD_VERIFY_WAIT ? SMTPD_VERIFY_FAILED : r);
	smtpd_core_verify_forget(s);
}

void
smtpd_core_tls_started(struct smtpd_core *s)
{
	s->info.tls = 1;
	s->info.phase = SMTPD_PHASE_TLS;
}

void
smtpd_core_tls_established(struct smtpd_core *s, const char *version, const char *cipher)
{
	s->info.starttls = SMTPD_STARTTLS_ESTABLISHED;
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", version);
	snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", cipher);
	/* RFC 3207 4.2: forget everything learnt before TLS; EHLO again. */
	smtpd_core_txn_reset(s);
	s->info.helo[0] = '\0';
	s->info.esmtp = 0;
	s->skipping = 0;
	s->info.phase = SMTPD_PHASE_INIT;
	smtpd_core_set_timeout(s, s->cfg->command_timeout);
}

void
smtpd_core_shutdown(struct smtpd_core *s)
{
	smtpd_core_reply(s, "421 4.3.2 %s Service shutting down", s->cfg->hostname);
	smtpd_core_close(s);
}

int
smtpd_core_new(const struct smtpd_core_params *p, const struct smtpd_core_io *io, void *arg,
    struct smtpd_core **out)
{
	struct smtpd_core *s = xcalloc(1, sizeof(*s));

	s->cfg = p->cfg;
	s->io = io;
	s->arg = arg;
	snprintf(s->sid, sizeof(s->sid), "%s", p->sid);
	snprintf(s->ip, sizeof(s->ip), "%s", p->ip);
	s->trusted = p->trusted;
	s->tls_available = p->tls_available;
	s->flush_bytes = p->flush_bytes ? p->flush_bytes : SMTPD_CORE_SPOOL_FLUSH;
	s->info.phase = SMTPD_PHASE_INIT;
	buf_init(&s->content);
	buf_init(&s->rpt_copy);
	*out = s;
	return 0;
}

void
smtpd_core_free(struct smtpd_core *s)
{
	if (s == NULL)
		return;
	smtpd_core_txn_reset(s);
	smtpd_core_verify_forget(s);
	buf_free(&s->content);
	buf_free(&s->rpt_copy);
	free(s);
}

void
smtpd_core_set_client_name(struct smtpd_core *s, const char *name)
{
	snprintf(s->client_name, sizeof(s->client_name), "%s", name);
}

const struct smtpd_core_info *
smtpd_core_info(const struct smtpd_core *s)
{
	return &s->info;
}
