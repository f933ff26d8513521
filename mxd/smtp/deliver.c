/* A delivery agent (mxd-smtp), forked by the scheduler (qmgr/qmgr.c): it
 * runs one job at a time - some recipients of one message for one
 * destination - and answers with a result per recipient (agent_msg.h).
 *
 * For a job it routes the recipients (local domain, route, relay, MX),
 * walks the MX hosts, applies the TLS policy (the operator's, DANE, MTA-STS,
 * REQUIRETLS), runs the SMTP/LMTP transaction and emits the outbound outcome
 * record. It reads the spool file and never writes it: the scheduler
 * records the results, schedules retries and sends DSNs. Its connection
 * stays open delivery.connection_cache_time seconds for the next job to the
 * same destination. */
#include "deliver_int.h"
#include "agent_msg.h"
#include "dns.h"
#include "sts.h"
#include "sts_cache.h"
#include "sts_fetch.h"
#include <openssl/x509_vfy.h>
#include "dsn.h"
#include "smtp_client.h"
#include "smtp_parser.h"
#include "log.h"
#include "timeutil.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

void
deliver_close_conn(struct deliver *d)
{
	if (d->conn_open && !d->conn_under_policy) {
		/* Kept open after a delivery without a policy, and closed now
		 * because the next delivery goes elsewhere: its record must not
		 * take the policy of that next domain. */
		const struct sts_policy *pol = d->cur_policy;
		const struct dns_tlsa_result *tlsa = d->cur_tlsa;
		const char *ff = d->cur_fetch_failure, *df = d->cur_dane_failure;
		d->cur_policy = NULL;
		d->cur_tlsa = NULL;
		d->cur_fetch_failure = d->cur_dane_failure = NULL;
		deliver_outcome(d, &d->conn, 1, NULL);
		d->cur_policy = pol;
		d->cur_tlsa = tlsa;
		d->cur_fetch_failure = ff;
		d->cur_dane_failure = df;
		smtp_client_close(&d->conn, 1);
	} else if (d->conn_open) {
		deliver_outcome(d, &d->conn, 1, NULL);
		smtp_client_close(&d->conn, 1);
	}
	d->conn_open = 0;
	d->conn_hop[0] = '\0';
}

static struct deliver_hopdown *
deliver_hop_down(struct deliver *d, const char *hop, time_t now)
{
	for (size_t i = 0; i < d->ndown; i++)
		if (strcmp(d->down[i].name, hop) == 0 && d->down[i].until > now)
			return &d->down[i];
	return NULL;
}

static void
deliver_mark_down(struct deliver *d, const char *hop, time_t until, const char *reason)
{
	size_t slot = d->ndown;
	for (size_t i = 0; i < d->ndown; i++)
		if (strcmp(d->down[i].name, hop) == 0 || d->down[i].until < time(NULL))
			slot = i;
	if (slot == d->ndown) {
		if (d->ndown == sizeof(d->down) / sizeof(d->down[0]))
			slot = 0;
		else
			d->ndown++;
	}
	snprintf(d->down[slot].name, sizeof(d->down[slot].name), "%s", hop);
	snprintf(d->down[slot].reason, sizeof(d->down[slot].reason), "%s", reason);
	d->down[slot].until = until;
}

static enum rcpt_result
deliver_classify(int code)
{
	if (code >= 200 && code < 300)
		return RCPT_DONE;
	if (code >= 500 && code < 600)
		return RCPT_BOUNCE;
	return RCPT_DEFER;
}

/* Submission (RFC 6409): SASL PLAIN, over the TLS deliver_connect insisted
 * on, with the submission_auth entry for this server. A refusal defers: it
 * is the operator's configuration, not the recipient, that is wrong. */
static int
deliver_auth(struct deliver *d, const struct mxd_nexthop *nh, const char *hop,
    struct smtp_reply *r)
{
	char one[600];
	const struct mxd_sasl *cred = mxd_config_sasl(d->cfg, nh->host, nh->port);
	if (cred == NULL) {
		smtp_reply_set_error(r, "451 4.7.0 no submission_auth entry for %s:%d (transport %s)",
		    nh->host, nh->port, hop);
		log_warnx("event=auth_failed next_hop=%s reason=no_credentials", hop);
		return -1;
	}
	if (smtp_client_auth_plain(&d->conn, cred->user, cred->password, r) == 0 && r->code == 235) {
		log_info("event=auth next_hop=%s user=%s mechanism=PLAIN", hop, cred->user);
		return 0;
	}
	smtp_reply_oneline(r, one, sizeof(one));
	log_warnx("event=auth_failed next_hop=%s user=%s reply=\"%s\"", hop, cred->user, one);
	smtp_reply_set_error(r, "451 4.7.8 authentication to %s as %s failed: %s", hop, cred->user, one);
	return -1;
}

/* For the scheduler's concurrency window: did a server answer (a
 * greeting, whatever came after), or did this try reach nobody? */
static void
deliver_note_reach(struct deliver *d, int opened, const struct smtp_reply *r)
{
	if (opened || r->code != 0 || d->conn.greeting_name[0] != '\0')
		d->job_reached = 1;
	else
		d->job_unreached = 1;
	/* A new connection that is open: the destination takes connections,
	 * the scheduler may open more now (its window), not only when this
	 * transaction - maybe slow - is over. Once per job. */
	if (opened && !d->job_progress && d->qmgr_fd >= 0) {
		struct buf b;
		buf_init(&b);
		agent_result_encode(QMGR_FB_PROGRESS, NULL, NULL, 0, &b);
		ssize_t w = write(d->qmgr_fd, b.data, b.len);
		d->job_progress = w == (ssize_t)b.len;
		buf_free(&b);
	}
}

/* Open or reuse the connection to a next hop. */
static int
deliver_connect(struct deliver *d, const struct mxd_nexthop *nh, const char *hop,
    struct smtp_reply *r)
{
	if (d->conn_open && strcmp(d->conn_hop, hop) == 0 && !d->conn.broken) {
		/* A reused connection starts clean. */
		smtp_client_cmd(&d->conn, "RSET");
		if (smtp_client_read_reply(&d->conn, r) == 0 && r->code == 250) {
			d->conn_exempt &= d->cur_exempt;
			return 0;
		}
		deliver_close_conn(d);
	}
	deliver_close_conn(d);
	d->conn_started_ms = timeutil_wall_ms();
	d->conn_messages = d->conn_rcpts = 0;
	d->conn_fallback = 0;
	d->conn_exempt = d->cur_exempt;
	/* The operator's policy (encrypt, verify, secure) always holds; DANE
	 * and MTA-STS failures are not fatal for "TLS-Required: No" mail
	 * (RFC 8689 5). */
	int local_tls = d->cur_level == MXD_TLS_ENCRYPT || d->cur_level == MXD_TLS_VERIFY ||
	    d->cur_level == MXD_TLS_SECURE;
	int enforce = local_tls || (!d->tls_optional &&
	    (d->cur_tlsa || (d->cur_policy && d->cur_policy->mode == STS_MODE_ENFORCE)));
	const char *what = local_tls ? "TLS policy" : d->cur_tlsa ? "DANE" : "MTA-STS policy";
	char why[800];
	if (local_tls)
		snprintf(why, sizeof(why), "%s %s for %s", what, d->cur_level_mode, d->cur_level_dest);
	else
		snprintf(why, sizeof(why), "%s of %s", what, d->conn_domain);
	SSL_CTX *tls = nh->tlsa ? d->tls_dane : nh->verify ? d->tls_verify :
	    d->cur_level == MXD_TLS_NONE ? NULL : local_tls || d->cfg->next_hop_tls ? d->tls : NULL;
	d->conn_tls_off = tls == NULL;
	struct smtp_client_limits lim;
	smtp_client_limits_config(&lim, d->cfg);
	int opened = smtp_client_open(&d->conn, nh, d->cfg->hostname, tls, &lim, &d->source, r);
	deliver_note_reach(d, opened == 0, r);
	if (opened < 0) {
		int tls_failed = d->conn.tls_failed;
		deliver_outcome(d, &d->conn, d->conn.greeting_name[0] != '\0', r->text.data);
		/* Under an enforced policy there is no plaintext. */
		if (tls_failed && enforce) {
			char msg[1200];
			snprintf(msg, sizeof(msg), "451 4.7.5 %s: %s: validation-failure (%s)", why,
			    d->conn_mx[0] ? d->conn_mx : hop, d->conn.tls_fail_reason);
			smtp_reply_set_error(r, "%s", msg);
		}
		if (!tls_failed || enforce)
			return -1;
		/* Opportunistic TLS: with no policy asking for TLS, a failed
		 * handshake is followed by plaintext (REQUIRETLS mail is refused
		 * later, in deliver_to_hop). */
		log_info("event=tls_fallback hop=%s reason=%s", hop, d->conn.tls_fail_reason);
		d->conn_started_ms = timeutil_wall_ms();
		d->conn_fallback = 1;
		opened = smtp_client_open(&d->conn, nh, d->cfg->hostname, NULL, &lim, &d->source, r);
		deliver_note_reach(d, opened == 0, r);
		if (opened < 0) {
			deliver_outcome(d, &d->conn, d->conn.greeting_name[0] != '\0', r->text.data);
			return -1;
		}
	}
	const char *pf = d->cur_tlsa ? deliver_dane_failure(&d->conn, 1) :
	    d->cur_policy ? deliver_policy_failure(&d->conn, 1) :
	    local_tls && d->conn.ssl == NULL ? "starttls-not-supported" :
	    nh->verify ? deliver_policy_failure(&d->conn, 1) : NULL;
	if (pf && enforce) {
		/* RFC 7672 / RFC 8461 5: this MX does not qualify; the next one
		 * may. A host the operator's policy refuses is not used either. */
		char msg[1200];
		snprintf(msg, sizeof(msg), "451 %s %s: %s: %s", d->conn.ssl == NULL && local_tls ?
		    "4.7.4" : "4.7.5", why, d->conn_mx[0] ? d->conn_mx : hop, pf);
		log_info("event=tls_policy_refused %s=%s mx=%s ip=%s result=%s", local_tls ? "dest" :
		    "domain", local_tls ? d->cur_level_dest : d->conn_domain,
		    d->conn_mx[0] ? d->conn_mx : hop, d->conn.remote_ip, pf);
		deliver_outcome(d, &d->conn, 1, msg);
		smtp_client_close(&d->conn, 1);
		smtp_reply_set_error(r, "%s", msg);
		return -1;
	}
	if (nh->proto == MXD_NH_SUBMISSION && deliver_auth(d, nh, hop, r) < 0) {
		smtp_client_close(&d->conn, 1);
		return -1;
	}
	d->conn_open = 1;
	d->conn_under_policy = d->cur_policy != NULL || d->cur_tlsa != NULL ||
	    d->cur_fetch_failure != NULL;
	snprintf(d->open_domain, sizeof(d->open_domain), "%s", d->conn_domain);
	snprintf(d->open_mx, sizeof(d->open_mx), "%s", d->conn_mx);
	snprintf(d->conn_hop, sizeof(d->conn_hop), "%s", hop);
	return 0;
}

/* Does this copy really need SMTPUTF8 (RFC 6531): a non-ASCII sender,
 * recipient or header? A client may ask for SMTPUTF8 on plain ASCII mail;
 * that copy goes to a server without it unchanged, as Postfix does. */
static int
deliver_needs_utf8(const struct deliver *d, const struct spool_env *env, const size_t *idx,
    size_t n)
{
	if (d->hdr_utf8 || smtp_parser_has_utf8(env->from))
		return 1;
	for (size_t i = 0; i < n; i++)
		if (smtp_parser_has_utf8(env->rcpts[idx[i]]))
			return 1;
	return 0;
}

/* One transaction's fixed parts, for the steps of deliver_to_hop. */
struct deliver_txn {
	struct deliver		*d;
	const struct spool_env	*env;
	int			 fd;
	off_t			 off;
	const char		*hop, *mta;
	struct rcpt_state	*st;
	const size_t		*idx;
	size_t			 n;
	struct smtp_reply	*r;
	int			 pipelining, chunking;
};

static void
deliver_txn_set(const struct deliver_txn *t, size_t i, enum rcpt_result res)
{
	rcpt_set(&t->st[t->idx[i]], res, t->r->code, t->r->text.data, t->hop, t->mta);
}

/* RFC 8689 4.2.1 and RFC 6531 3.4: mail this server must not get is
 * returned before MAIL FROM. 1 when it was. */
static int
deliver_refused_before_mail(const struct deliver_txn *t)
{
	struct deliver *d = t->d;
	struct smtp_client *c = &d->conn;
	char why[512];
	/* A REQUIRETLS message goes only over TLS to a server that offers
	 * REQUIRETLS, and to an MX only when DANE or an enforced MTA-STS policy
	 * verified it; a configured next hop (the operator's own) needs TLS and
	 * REQUIRETLS. */
	int verified_mx = (d->cur_tlsa && c->dane_ok) ||
	    (d->cur_policy && d->cur_policy->mode == STS_MODE_ENFORCE && c->verified);
	if (t->env->requiretls && ((d->open_domain[0] != '\0' && !verified_mx) || c->ssl == NULL ||
	    !(c->ext & SMTP_EXT_REQUIRETLS))) {
		if (d->open_domain[0] != '\0' && !verified_mx)
			snprintf(why, sizeof(why), "550 5.7.30 REQUIRETLS support required: %s (%s) "
			    "could not be verified with DANE or an enforced MTA-STS policy\n",
			    d->open_mx, c->peer);
		else
			snprintf(why, sizeof(why), "550 5.7.30 REQUIRETLS support required: next hop %s %s\n",
			    c->peer, c->ssl == NULL ? "offers no TLS" : "does not offer REQUIRETLS");
	} else if (t->env->smtputf8 && !(c->ext & SMTP_EXT_SMTPUTF8) &&
	    deliver_needs_utf8(d, t->env, t->idx, t->n)) {
		/* UTF-8 mail only to a server that takes it. */
		snprintf(why, sizeof(why), "550 5.6.7 SMTPUTF8 is required, but was not offered "
		    "by %s (%s)\n", d->open_mx[0] ? d->open_mx : t->mta, c->peer);
	} else
		return 0;
	for (size_t i = 0; i < t->n; i++)
		rcpt_set(&t->st[t->idx[i]], RCPT_BOUNCE, 0, why, t->hop, t->mta);
	return 1;
}

/* The MAIL FROM parameters this server takes. */
static void
deliver_mail_params(const struct smtp_client *c, const struct spool_env *env, char *params,
    size_t size)
{
	size_t pl = 0;
	params[0] = '\0';
	if ((c->ext & SMTP_EXT_SIZE))
		pl += (size_t)snprintf(params + pl, size - pl, " SIZE=%" PRIu64, env->size);
	if (env->body8bit && (c->ext & SMTP_EXT_8BITMIME))
		pl += (size_t)snprintf(params + pl, size - pl, " BODY=8BITMIME");
	if (env->smtputf8 && (c->ext & SMTP_EXT_SMTPUTF8))
		pl += (size_t)snprintf(params + pl, size - pl, " SMTPUTF8");
	if (env->requiretls)
		pl += (size_t)snprintf(params + pl, size - pl, " REQUIRETLS");
	if (c->ext & SMTP_EXT_DSN)
		dsn_mail_params(env, params + pl, size - pl);
}

/* A RCPT reply for recipient i: accepted recipients stay pending (the
 * message's reply decides), refused ones get theirs. */
static void
deliver_rcpt_reply(const struct deliver_txn *t, size_t i, size_t *accepted)
{
	int ok = t->r->code >= 200 && t->r->code < 300;
	*accepted += ok;
	deliver_txn_set(t, i, ok ? RCPT_PENDING : deliver_classify(t->r->code));
	/* It took NOTIFY/ORCPT on: success notices are its to send. */
	t->st[t->idx[i]].dsn_passed = (t->d->conn.ext & SMTP_EXT_DSN) && ok;
}

/* MAIL FROM refused (code, reply): every recipient gets that answer, and
 * the connection is brought back to a known state. */
static void
deliver_mail_refused(const struct deliver_txn *t, int code, const char *reply)
{
	struct smtp_client *c = &t->d->conn;
	enum rcpt_result res = deliver_classify(code);
	for (size_t i = 0; i < t->n; i++)
		rcpt_set(&t->st[t->idx[i]], res == RCPT_DONE ? RCPT_DEFER : res, code, reply, t->hop,
		    t->mta);
	if (t->pipelining && !t->chunking)
		c->broken = 1;	/* DATA reply state unknown: start over next time */
	else {
		smtp_client_cmd(c, "RSET");
		smtp_client_read_reply(c, t->r);
	}
}

/* MAIL FROM, every RCPT TO, and DATA (not with CHUNKING), pipelined when
 * the server offers it. 0 when recipients were accepted and the content
 * is to follow, 1 when the transaction is over (refused), -1 on an I/O
 * error. */
static int
deliver_envelope(const struct deliver_txn *t)
{
	struct smtp_client *c = &t->d->conn;
	char params[256];	/* room for all of them with a 100-character ENVID */
	size_t accepted = 0;

	deliver_mail_params(c, t->env, params, sizeof(params));
	smtp_client_cmd(c, "MAIL FROM:<%s>%s", t->env->from, params);
	if (!t->pipelining) {
		if (smtp_client_read_reply(c, t->r) < 0)
			return -1;
		if (t->r->code != 250) {
			char *reply = xstrdup(t->r->text.data ? t->r->text.data : "");
			deliver_mail_refused(t, t->r->code, reply);
			free(reply);
			return 1;
		}
	}
	for (size_t i = 0; i < t->n; i++) {
		char rparams[600] = "";	/* NOTIFY and a 500-character ORCPT */
		if (c->ext & SMTP_EXT_DSN)
			dsn_rcpt_params(t->env, t->idx[i], rparams, sizeof(rparams));
		smtp_client_cmd(c, "RCPT TO:<%s>%s", t->env->rcpts[t->idx[i]], rparams);
		if (!t->pipelining) {
			if (smtp_client_read_reply(c, t->r) < 0)
				return -1;
			deliver_rcpt_reply(t, i, &accepted);
		}
	}
	if (!t->chunking && (t->pipelining || accepted > 0))
		smtp_client_cmd(c, "DATA");
	if (t->pipelining) {
		/* Replies come back in order: MAIL, each RCPT, DATA. A server
		 * that refuses MAIL and hangs up is reported by that refusal. */
		if (smtp_client_read_reply(c, t->r) < 0)
			return -1;
		if (t->r->code != 250) {
			int code = t->r->code;
			char *reply = xstrdup(t->r->text.data ? t->r->text.data : "");
			for (size_t i = 0; i < t->n; i++)	/* the RCPT replies, if any */
				if (smtp_client_read_reply(c, t->r) < 0)
					break;
			deliver_mail_refused(t, code, reply);
			free(reply);
			return 1;
		}
		for (size_t i = 0; i < t->n; i++) {
			if (smtp_client_read_reply(c, t->r) < 0)
				return -1;
			deliver_rcpt_reply(t, i, &accepted);
		}
	}
	if ((!t->pipelining || t->chunking) && accepted == 0) {
		smtp_client_cmd(c, "RSET");
		smtp_client_read_reply(c, t->r);
		return 1;
	}
	return 0;
}

/* The pending recipients take the message's reply. */
static void
deliver_pending_take(const struct deliver_txn *t, enum rcpt_result res)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->st[t->idx[i]].result == RCPT_PENDING)
			deliver_txn_set(t, i, res);
}

/* The content: BDAT chunks (RFC 3030), or the DATA reply, the dot-stuffed
 * content and its reply (one per recipient for LMTP). 0 when the message
 * went through to its final reply, 1 when DATA or a chunk was refused, -1
 * on an I/O error. */
static int
deliver_content(const struct deliver_txn *t)
{
	struct smtp_client *c = &t->d->conn;
	const char *transfer = t->chunking ? "BDAT" : "DATA";

	if (!t->chunking) {
		if (smtp_client_read_reply(c, t->r) < 0)
			return -1;
		if (t->r->code != 354) {
			deliver_pending_take(t, deliver_classify(t->r->code) == RCPT_BOUNCE ?
			    RCPT_BOUNCE : RCPT_DEFER);
			return 1;
		}
	}
	for (size_t i = 0; i < t->n; i++)
		t->st[t->idx[i]].transfer = transfer;
	if (t->chunking) {
		/* The content as it is; the reply to the last chunk (or the
		 * first refusal) is the message's. */
		if (smtp_client_send_bdat(c, t->fd, t->off, t->env->size, t->r) < 0)
			return -1;
		deliver_pending_take(t, deliver_classify(t->r->code));
		if (t->r->code < 200 || t->r->code > 299) {
			smtp_client_cmd(c, "RSET");
			if (smtp_client_read_reply(c, t->r) < 0 || t->r->code != 250)
				c->broken = 1;
			return 1;
		}
		return 0;
	}
	if (smtp_client_send_data(c, t->fd, t->off, t->r) < 0)
		return -1;
	if (!c->lmtp) {
		if (smtp_client_read_reply(c, t->r) < 0)
			return -1;
		deliver_pending_take(t, deliver_classify(t->r->code));
		return 0;
	}
	/* LMTP: one reply per accepted recipient, in order. */
	for (size_t i = 0; i < t->n; i++) {
		if (t->st[t->idx[i]].result != RCPT_PENDING)
			continue;
		if (smtp_client_read_reply(c, t->r) < 0)
			return -1;
		deliver_txn_set(t, i, deliver_classify(t->r->code));
	}
	return 0;
}

/* Deliver the recipients idx[0..n) of one message to one next hop. */
static void
deliver_to_hop(struct deliver *d, const struct spool_env *env, int fd, off_t off,
    const struct mxd_nexthop *nh, const char *hop, struct rcpt_state *st,
    const size_t *idx, size_t n)
{
	struct smtp_reply r;
	char one[1024];
	time_t now = time(NULL);

	smtp_reply_init(&r);
	const char *mta = nh->is_unix ? "localhost" : nh->sni[0] ? nh->sni : nh->host;
	struct deliver_txn t = { d, env, fd, off, hop, mta, st, idx, n, &r, 0, 0 };
	struct deliver_hopdown *down = deliver_hop_down(d, hop, now);
	if (down) {
		for (size_t i = 0; i < n; i++)
			rcpt_set(&st[idx[i]], RCPT_DEFER, 0, down->reason, hop, mta);
		goto out;
	}
	if (deliver_connect(d, nh, hop, &r) < 0) {
		enum rcpt_result res = r.code ? deliver_classify(r.code) : RCPT_DEFER;
		/* A 5xx greeting or EHLO refusal is the server's final word; a
		 * failure to connect is not. */
		if (res == RCPT_DONE)
			res = RCPT_DEFER;
		for (size_t i = 0; i < n; i++)
			deliver_txn_set(&t, i, res);
		if (r.code == 0 || res == RCPT_DEFER)
			deliver_mark_down(d, hop, now + 1, r.text.data ? r.text.data : "unreachable");
		log_info("event=connect_failed next_hop=%s reply=\"%s\"", hop,
		    smtp_reply_oneline(&r, one, sizeof(one)));
		goto out;
	}
	struct smtp_client *c = &d->conn;
	t.pipelining = (c->ext & SMTP_EXT_PIPELINING) != 0;
	/* CHUNKING for SMTP; LMTP keeps DATA and its per-recipient replies. */
	t.chunking = (c->ext & SMTP_EXT_CHUNKING) != 0 && !c->lmtp;
	if (deliver_refused_before_mail(&t))
		goto out;
	int rc = deliver_envelope(&t);
	if (rc == 0)
		rc = deliver_content(&t);
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			if (st[idx[i]].result == RCPT_PENDING)
				rcpt_set(&st[idx[i]], RCPT_DEFER, 0, r.text.data, hop, mta);
		deliver_close_conn(d);
	} else if (rc == 0) {
		d->conn_messages++;
		for (size_t i = 0; i < n; i++) {
			d->conn_rcpts += st[idx[i]].result == RCPT_DONE;
			if (st[idx[i]].result == RCPT_DONE)
				st[idx[i]].lmtp = c->lmtp;	/* final delivery: "delivered" */
		}
	}
out:
	if (d->conn_open && d->conn.broken)
		deliver_close_conn(d);
	d->conn_used = time(NULL);
	smtp_reply_free(&r);
}

/* Did the attempt fail before any server said anything about these
 * recipients (no connection, no greeting)? Then the next address or MX is
 * tried (RFC 5321 5.1). */
static int
deliver_unreached(const struct rcpt_state *st, const size_t *idx, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (st[idx[i]].result != RCPT_DEFER || st[idx[i]].code != 0)
			return 0;
	return 1;
}

static void
deliver_set_all(struct rcpt_state *st, const size_t *idx, size_t n, enum rcpt_result res,
    const char *text)
{
	for (size_t i = 0; i < n; i++)
		rcpt_set(&st[idx[i]], res, 0, text, NULL, NULL);
}

struct deliver_fetch_arg {
	struct deliver	*d;
};

/* Fetch a policy: mta-sts.<domain> is resolved with our resolver like
 * everything else, then fetched over HTTPS on delivery.sts_port. */
static void
deliver_sts_fetch(void *arg, const char *domain, struct sts_fetch_out *out)
{
	struct deliver *d = ((struct deliver_fetch_arg *)arg)->d;
	char host[300], ip[64];
	struct dns_addr_result ar;

	memset(&ar, 0, sizeof(ar));
	snprintf(host, sizeof(host), "mta-sts.%s", domain);
	if (dns_addrs(d->dns, host, DNS_ADDR_ANY, &ar) != DNS_OK || ar.n == 0) {
		memset(out, 0, sizeof(*out));
		out->result = STS_FETCH_ERROR;
		snprintf(out->reason, sizeof(out->reason), "%s: no address (%s%s%s)", host,
		    dns_result_str(ar.st.result), ar.st.error[0] ? ": " : "", ar.st.error);
		dns_addr_result_free(&ar);
		return;
	}
	inet_ntop(ar.addrs[0].family, ar.addrs[0].addr, ip, sizeof(ip));
	dns_addr_result_free(&ar);
	struct sts_fetch_opts o;
	memset(&o, 0, sizeof(o));
	o.ca_file = d->cfg->ca_file;
	o.connect_host = ip;
	o.connect_port = (unsigned)d->cfg->sts_port;
	sts_fetch(domain, &o, out);
}

/* What `_mta-sts.<domain>` TXT says now (RFC 8461 3.1). */
static void
deliver_sts_txt(struct deliver *d, const char *domain, struct sts_txt_lookup *txt)
{
	struct dns_txt_result tr;
	char name[300], err[STS_ERR_MAX];

	memset(txt, 0, sizeof(*txt));
	memset(&tr, 0, sizeof(tr));
	snprintf(name, sizeof(name), "_mta-sts.%s", domain);
	enum dns_result r = dns_txt(d->dns, name, &tr);
	if (r == DNS_OK) {
		struct sts_txt stx;
		if (sts_txt_select_records((const char *const *)tr.txt, tr.len, tr.n, &stx, err,
		    sizeof(err)) == STS_OK) {
			txt->state = STS_TXT_FOUND;
			snprintf(txt->id, sizeof(txt->id), "%s", stx.id);
		} else
			txt->state = STS_TXT_NONE;
	} else
		txt->state = r == DNS_NXDOMAIN || r == DNS_NODATA ? STS_TXT_NONE : STS_TXT_FAILED;
	dns_txt_result_free(&tr);
}

/* The MTA-STS policy for a domain (RFC 8461 5.1), from the cache or
 * fetched; sets d->cur_policy when one in enforce or testing mode applies. */
static void
deliver_sts_policy(struct deliver *d, const char *domain, struct sts_decision *dec)
{
	struct sts_txt_lookup txt;
	char q[LOG_QUOTE_SIZE(200)];

	d->cur_policy = NULL;
	d->cur_fetch_failure = NULL;
	if (d->sts == NULL)
		return;
	deliver_sts_txt(d, domain, &txt);
	struct deliver_fetch_arg fa = { d };
	sts_cache_decide(d->sts, domain, &txt, deliver_sts_fetch, &fa, dec);
	if (dec->fetched && dec->fetch_result != STS_FETCH_OK) {
		log_info("event=sts_policy domain=%s result=%s reason=%s", domain,
		    sts_fetch_result_type(dec->fetch_result),
		    log_quote(q, sizeof(q), dec->reason, strlen(dec->reason), 200));
		if (dec->policy == NULL)
			d->cur_fetch_failure = sts_fetch_result_type(dec->fetch_result);
	}
	if (dec->policy == NULL)
		return;
	static const char *const sources[] = { "none", "cache", "fetched", "stale" };
	log_info("event=sts_policy domain=%s id=%s mode=%s source=%s", domain, dec->id,
	    sts_mode_name(dec->policy->mode), sources[dec->source]);
	if (dec->policy->mode == STS_MODE_ENFORCE || dec->policy->mode == STS_MODE_TESTING)
		d->cur_policy = dec->policy;
}

/* DANE for one MX host (RFC 7672 2.2): 1 when usable, secure TLSA records
 * apply (tr holds them), 0 when DANE does not apply, -1 when the TLSA answer
 * is bogus (the MX is not to be used; recorded as dnssec-invalid). */
static int
deliver_dane_lookup(struct deliver *d, const char *domain, int mx_secure, const char *host,
    struct dns_tlsa_result *tr)
{
	char name[300];
	if (!mx_secure || d->tls_dane == NULL)
		return 0;
	snprintf(name, sizeof(name), "_25._tcp.%s", host);
	enum dns_result r = dns_tlsa(d->dns, name, tr);
	if (r == DNS_BOGUS) {
		struct smtp_client none;
		memset(&none, 0, sizeof(none));
		snprintf(d->conn_domain, sizeof(d->conn_domain), "%s", domain);
		snprintf(d->conn_mx, sizeof(d->conn_mx), "%s", host);
		d->cur_dane_failure = "dnssec-invalid";
		log_info("event=dane domain=%s mx=%s result=dnssec-invalid error=\"%s\"", domain, host,
		    tr->st.error);
		deliver_outcome(d, &none, 0, "TLSA lookup failed DNSSEC validation");
		d->cur_dane_failure = NULL;
		return -1;
	}
	if (r == DNS_NXDOMAIN || r == DNS_NODATA)
		return 0;	/* no TLSA: no DANE */
	if (r != DNS_OK) {
		/* RFC 7672 2.2: a failed TLSA lookup is not "no TLSA": using the
		 * MX anyway would be a downgrade. */
		struct smtp_client none;
		memset(&none, 0, sizeof(none));
		snprintf(d->conn_domain, sizeof(d->conn_domain), "%s", domain);
		snprintf(d->conn_mx, sizeof(d->conn_mx), "%s", host);
		d->cur_dane_failure = "tlsa-invalid";
		log_info("event=dane domain=%s mx=%s result=lookup-failed error=\"%s\"", domain, host,
		    tr->st.error);
		deliver_outcome(d, &none, 0, "TLSA lookup failed");
		d->cur_dane_failure = NULL;
		return -1;
	}
	if (tr->st.sec != DNS_SEC_SECURE)
		return 0;
	size_t usable = 0;
	for (size_t i = 0; i < tr->n; i++)
		usable += tr->rr[i].usage == 2 || tr->rr[i].usage == 3;
	log_info("event=dane domain=%s mx=%s tlsa=%zu usable=%zu", domain, host, tr->n, usable);
	if (usable == 0)
		return 0;	/* PKIX usages only: DANE does not apply (RFC 7672 3.1.3) */
	d->cur_tlsa_strings = xcalloc(tr->n, sizeof(char *));
	for (size_t i = 0; i < tr->n; i++) {
		const struct dns_tlsa *t = &tr->rr[i];
		char *hex = xcalloc(t->len * 2 + 1, 1);
		for (size_t k = 0; k < t->len; k++)
			snprintf(hex + 2 * k, 3, "%02x", t->data[k]);
		d->cur_tlsa_strings[i] = xasprintf("%u %u %u %s", t->usage, t->selector, t->mtype, hex);
		free(hex);
	}
	d->cur_ntlsa_strings = tr->n;
	d->cur_tlsa = tr;
	return 1;
}

/* Done with one MX host: DANE state off, the MTA-STS policy back. */
static void
deliver_dane_done(struct deliver *d, struct dns_tlsa_result *tr, const struct sts_policy *sts)
{
	if (d->cur_tlsa) {
		/* The record is written while the TLSA strings are at hand. */
		deliver_close_conn(d);
		for (size_t i = 0; i < d->cur_ntlsa_strings; i++)
			free(d->cur_tlsa_strings[i]);
		free(d->cur_tlsa_strings);
		d->cur_tlsa_strings = NULL;
		d->cur_ntlsa_strings = 0;
		d->cur_tlsa = NULL;
	}
	d->cur_policy = sts;
	dns_tlsa_result_free(tr);
}

/* The MX walk stops at delivery.mx_address_limit addresses or
 * mx_session_limit sessions that got a greeting (0: no limit): the
 * recipients, still unreached, are deferred saying so and what the last
 * address said. NULL while the walk may go on. */
static const char *
deliver_mx_capped(const struct deliver *d, int tried, int sessions)
{
	if (d->cfg->mx_address_limit > 0 && tried >= d->cfg->mx_address_limit)
		return "mx_address_limit";
	if (d->cfg->mx_session_limit > 0 && sessions >= d->cfg->mx_session_limit)
		return "mx_session_limit";
	return NULL;
}

static void
deliver_mx_gave_up(const char *domain, const char *cap, int tried, int sessions,
    struct rcpt_state *st, const size_t *idx, size_t n)
{
	int addrs = strcmp(cap, "mx_address_limit") == 0;
	log_info("event=mx_limit domain=%s limit=%s addresses=%d sessions=%d", domain, cap,
	    tried, sessions);
	for (size_t i = 0; i < n; i++) {
		struct rcpt_state *r = &st[idx[i]];
		char *hop = r->hop ? xstrdup(r->hop) : NULL, *mta = r->mta ? xstrdup(r->mta) : NULL;
		char *text = xasprintf("451 4.4.1 no MX host of %s answered: gave up after %d %s "
		    "(delivery.%s); the last: %s", domain, addrs ? tried : sessions,
		    addrs ? "addresses" : "sessions", cap, r->reply ? r->reply : "-");
		rcpt_set(r, RCPT_DEFER, 0, text, hop, mta);
		free(text);
		free(hop);
		free(mta);
	}
}

/* The domain's MX hosts, equal preferences shuffled. -1 when there is
 * nothing to try: the recipients then have their answer (NXDOMAIN and null
 * MX return them, a failed lookup defers them). */
static int
deliver_mx_lookup(struct deliver *d, const char *domain, struct dns_mx_result *mx,
    struct rcpt_state *st, const size_t *idx, size_t n)
{
	char text[600];
	enum dns_result dr = dns_mx(d->dns, domain, mx);
	if (dr == DNS_NXDOMAIN || dr == DNS_INVALID) {
		snprintf(text, sizeof(text), "550 5.1.2 <%s>: domain not found (%s)\n", domain,
		    dr == DNS_NXDOMAIN ? "DNS NXDOMAIN" : "not a valid domain name");
		deliver_set_all(st, idx, n, RCPT_BOUNCE, text);
		return -1;
	}
	if (dr == DNS_OK && mx->null_mx) {
		snprintf(text, sizeof(text), "556 5.1.10 <%s>: the domain accepts no mail (null MX, RFC 7505)\n",
		    domain);
		deliver_set_all(st, idx, n, RCPT_BOUNCE, text);
		return -1;
	}
	if (dr != DNS_OK || mx->n == 0) {
		snprintf(text, sizeof(text), "451 4.4.3 MX lookup for %s failed: %s%s%s\n", domain,
		    dns_result_str(dr), mx->st.error[0] ? ": " : "", mx->st.error);
		deliver_set_all(st, idx, n, RCPT_DEFER, text);
		return -1;
	}
	/* Shuffle runs of equal preference so load spreads as the domain meant. */
	for (size_t i = 0; i < mx->n;) {
		size_t j = i;
		while (j < mx->n && mx->mx[j].pref == mx->mx[i].pref)
			j++;
		for (size_t k = j - 1; k > i; k--) {
			size_t r = i + (size_t)random() % (k - i + 1);
			struct dns_mx t = mx->mx[k];
			mx->mx[k] = mx->mx[r];
			mx->mx[r] = t;
		}
		i = j;
	}
	return 0;
}

/* One address of MX host `host` as a next hop, under the TLS policy in
 * force (DANE's TLSA when tlsa is set, MTA-STS, the operator's), and its
 * name for logs ("dane+mx:HOST[IP]:PORT"). */
static void
deliver_mx_nexthop(const struct deliver *d, const char *domain, const char *host,
    const struct dns_addr *addr, const struct dns_tlsa_result *tlsa, struct mxd_nexthop *nh,
    char *hop, size_t hopsz)
{
	char ip[64];
	memset(nh, 0, sizeof(*nh));
	nh->proto = MXD_NH_SMTP;
	nh->port = d->cfg->remote_port;
	inet_ntop(addr->family, addr->addr, ip, sizeof(ip));
	snprintf(nh->host, sizeof(nh->host), "%s", ip);
	snprintf(nh->sni, sizeof(nh->sni), "%s", host);
	nh->verify = d->cur_policy != NULL || d->cur_level == MXD_TLS_VERIFY ||
	    d->cur_level == MXD_TLS_SECURE;
	if (d->cur_level == MXD_TLS_SECURE)
		snprintf(nh->verify_name, sizeof(nh->verify_name), "%s", domain);
	nh->tlsa = tlsa;
	snprintf(hop, hopsz, "%smx:%s[%s]:%d", tlsa ? "dane+" :
	    d->cur_policy ? "sts+" : nh->verify ? "verify+" : "", host, ip, nh->port);
}

/* Deliver to the domain's MX hosts (RFC 5321 5.1, RFC 7505): in preference
 * order, equal preferences shuffled, every address of a host, the next one
 * while nobody answered, up to the limits of deliver_mx_capped.
 * Opportunistic STARTTLS unless DANE, MTA-STS or the operator's policy say
 * otherwise. */
static void
deliver_mx(struct deliver *d, const struct spool_env *env, int fd, off_t off,
    const char *domain, struct rcpt_state *st, const size_t *idx, size_t n)
{
	struct dns_mx_result mx;
	struct sts_decision dec;
	char text[1200];

	memset(&mx, 0, sizeof(mx));
	memset(&dec, 0, sizeof(dec));
	if (deliver_mx_lookup(d, domain, &mx, st, idx, n) < 0)
		goto out;
	/* MTA-STS applies only when the operator set no policy for the domain;
	 * DANE also under "dane" and "dane-only". */
	if (d->cur_level == MXD_TLS_DEFAULT)
		deliver_sts_policy(d, domain, &dec);
	int use_dane = d->cur_level == MXD_TLS_DEFAULT || d->cur_level == MXD_TLS_DANE ||
	    d->cur_level == MXD_TLS_DANE_ONLY;
	int enforce = !d->tls_optional && d->cur_policy && d->cur_policy->mode == STS_MODE_ENFORCE;
	if (d->cur_level == MXD_TLS_DANE_ONLY)
		snprintf(text, sizeof(text), "451 4.7.5 no MX host of %s has DNSSEC-signed, usable "
		    "TLSA records (TLS policy dane-only)\n", domain);
	else if (enforce)
		snprintf(text, sizeof(text), "451 4.7.5 no MX host of %s satisfied its MTA-STS policy\n",
		    domain);
	else
		snprintf(text, sizeof(text), "451 4.4.1 no MX host of %s could be reached\n", domain);
	deliver_set_all(st, idx, n, RCPT_DEFER, text);
	int dane_refused = 0, tried = 0, sessions = 0;
	const char *cap = NULL;
	for (size_t i = 0; i < mx.n && !(cap = deliver_mx_capped(d, tried, sessions)); i++) {
		struct dns_addr_result ar;
		memset(&ar, 0, sizeof(ar));
		/* DANE first (it wins over MTA-STS, RFC 8461 2): only when the MX
		 * RRset and the TLSA answer are both DNSSEC-authentic. */
		struct dns_tlsa_result tr;
		memset(&tr, 0, sizeof(tr));
		int dane = deliver_dane_lookup(d, domain, use_dane && mx.st.sec == DNS_SEC_SECURE,
		    mx.mx[i].host, &tr);
		if (dane < 0) {
			dns_tlsa_result_free(&tr);
			dane_refused = 1;
			continue;	/* bogus or failed TLSA: this MX is not used */
		}
		const struct sts_policy *sts_saved = d->cur_policy;
		if (!dane && d->cur_level == MXD_TLS_DANE_ONLY) {
			log_info("event=dane_only_skipped domain=%s mx=%s reason=no_usable_tlsa", domain,
			    mx.mx[i].host);
			dns_tlsa_result_free(&tr);
			continue;
		}
		if (dane)
			d->cur_policy = NULL;
		if (!dane && enforce && !sts_mx_match(d->cur_policy, mx.mx[i].host)) {
			/* RFC 8461 4.1: not a host the policy names. */
			log_info("event=sts_mx_skipped domain=%s mx=%s", domain, mx.mx[i].host);
			dns_tlsa_result_free(&tr);
			continue;
		}
		if (dns_addrs(d->dns, mx.mx[i].host, DNS_ADDR_ANY, &ar) != DNS_OK || ar.n == 0) {
			log_info("event=mx_unresolved domain=%s mx=%s result=%s", domain, mx.mx[i].host,
			    dns_result_str(ar.st.result));
			dns_addr_result_free(&ar);
			deliver_dane_done(d, &tr, sts_saved);
			continue;
		}
		for (size_t a = 0; a < ar.n && !(cap = deliver_mx_capped(d, tried, sessions)); a++) {
			struct mxd_nexthop nh;
			char hop[600];
			deliver_mx_nexthop(d, domain, mx.mx[i].host, &ar.addrs[a], dane ? &tr : NULL,
			    &nh, hop, sizeof(hop));
			snprintf(d->conn_domain, sizeof(d->conn_domain), "%s", domain);
			snprintf(d->conn_mx, sizeof(d->conn_mx), "%s", mx.mx[i].host);
			if (!d->conn_open)
				d->conn.greeted = 0;	/* not this address's */
			deliver_to_hop(d, env, fd, off, &nh, hop, st, idx, n);
			tried++;
			sessions += !d->conn_open && d->conn.greeted;	/* answered, then failed */
			if (!deliver_unreached(st, idx, n)) {
				dns_addr_result_free(&ar);
				deliver_dane_done(d, &tr, sts_saved);
				goto out;
			}
		}
		dns_addr_result_free(&ar);
		deliver_dane_done(d, &tr, sts_saved);
	}
	if (cap && deliver_unreached(st, idx, n))
		deliver_mx_gave_up(domain, cap, tried, sessions, st, idx, n);
	if (enforce && deliver_unreached(st, idx, n))
		for (size_t k = 0; k < n; k++)
			snprintf(st[idx[k]].sts_id, sizeof(st[idx[k]].sts_id), "%s", dec.id);
	if (dane_refused && deliver_unreached(st, idx, n)) {
		int any_tried = 0;
		for (size_t k = 0; k < n; k++)
			any_tried |= st[idx[k]].hop != NULL;
		if (!any_tried) {
			snprintf(text, sizeof(text), "451 4.7.5 no MX host of %s passed DANE (TLSA "
			    "lookups failed validation)\n", domain);
			deliver_set_all(st, idx, n, RCPT_DEFER, text);
		}
	}
out:
	if (d->cur_policy || d->cur_fetch_failure) {
		/* The record of a connection under the policy is written while
		 * the policy is at hand: such connections are not kept. */
		deliver_close_conn(d);
		d->cur_policy = NULL;
		d->cur_fetch_failure = NULL;
	}
	sts_decision_free(&dec);
	d->conn_domain[0] = d->conn_mx[0] = '\0';
	dns_mx_result_free(&mx);
}

/* What an attempt needs from the header block, read once: does it carry
 * "TLS-Required: No" (RFC 8689 5), and, for SMTPUTF8 mail, does it hold
 * UTF-8 (RFC 6531 3.4)? */
void
deliver_scan_headers(struct deliver *d, const struct spool_env *env, int fd, off_t off)
{
	char buf[65536];
	d->tls_optional = d->hdr_utf8 = 0;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, off);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (char *line = buf; line && *line && *line != '\r' && *line != '\n';) {
		char *nl = strchr(line, '\n');
		if (env->smtputf8 && !d->hdr_utf8)
			for (const char *p = line; *p && p != nl; p++)
				if ((unsigned char)*p >= 0x80)
					d->hdr_utf8 = 1;
		if (strncasecmp(line, "TLS-Required:", 13) == 0) {
			char *v = line + 13;
			while (*v == ' ' || *v == '\t')
				v++;
			if (strncasecmp(v, "No", 2) == 0 && (v[2] == '\r' || v[2] == '\n' ||
			    v[2] == ' ' || v[2] == '\t' || v[2] == '\0'))
				d->tls_optional = 1;
		}
		line = nl ? nl + 1 : NULL;
	}
}

/* The operator's TLS policy for a destination (NULL: back to none). */
static void
deliver_set_level(struct deliver *d, const char *dest)
{
	const struct mxd_tls_policy *p = dest ? mxd_config_tls_policy(d->cfg, dest) : NULL;
	d->cur_level = p ? p->level : MXD_TLS_DEFAULT;
	d->cur_level_mode = p ? p->mode : "default";
	snprintf(d->cur_level_dest, sizeof(d->cur_level_dest), "%s", dest ? dest : "");
	if (p)
		log_debug("event=tls_policy dest=%s entry=%s mode=%s", dest, p->domain, p->mode);
}

/* A next hop's policy is its host's. Submission always has TLS and, unless
 * the policy says encrypt or secure, a PKIX-checked certificate naming the
 * host: the password must not go anywhere else. -1 when the policy needs
 * DNS-based checks that a next hop does not have (dane-only). */
static int
deliver_hop_level(struct deliver *d, struct mxd_nexthop *nh)
{
	deliver_set_level(d, nh->is_unix ? NULL : nh->host);
	if (nh->proto == MXD_NH_SUBMISSION && d->cur_level != MXD_TLS_ENCRYPT &&
	    d->cur_level != MXD_TLS_SECURE) {
		d->cur_level = MXD_TLS_VERIFY;
		d->cur_level_mode = "verify";
	}
	switch (d->cur_level) {
	case MXD_TLS_DANE_ONLY:
		return -1;
	case MXD_TLS_VERIFY:
	case MXD_TLS_SECURE:
		nh->verify = 1;
		if (nh->sni[0] == '\0')
			snprintf(nh->sni, sizeof(nh->sni), "%s", nh->host);
		if (d->cur_level == MXD_TLS_SECURE)
			snprintf(nh->verify_name, sizeof(nh->verify_name), "%s", nh->host);
		break;
	default:
		break;
	}
	return 0;
}

#define DELIVER_STS_HOLD_SEC	86400	/* how long past max_age a changed,
						   unfetchable policy holds a return */

/* Recipients about to be returned (max_age) after an enforced MTA-STS
 * policy left them undelivered: first ask whether the policy changed (RFC
 * 8461 10.2). A new policy gets one more delivery attempt now; a new id
 * whose policy can not be fetched holds the return (sts_hold). */
void
deliver_sts_recheck(struct deliver *d, const struct spool_env *env, int fd, off_t off,
    struct rcpt_state *st, size_t *idx)
{
	if (d->sts == NULL || d->dns == NULL)
		return;
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (st[i].result != RCPT_DEFER || st[i].sts_id[0] == '\0')
			continue;
		const char *dom = smtp_parser_domain(env->rcpts[i]);
		char applied[STS_ID_MAX + 1];
		snprintf(applied, sizeof(applied), "%s", st[i].sts_id);
		size_t n = 0;
		for (size_t j = i; j < env->nrcpts; j++) {
			const char *d2 = smtp_parser_domain(env->rcpts[j]);
			if (st[j].result == RCPT_DEFER && st[j].sts_id[0] != '\0' && d2 &&
			    strcasecmp(d2, dom) == 0) {
				idx[n++] = j;
				st[j].sts_id[0] = '\0';
			}
		}
		struct sts_txt_lookup txt;
		struct sts_decision dec;
		struct deliver_fetch_arg fa = { d };
		deliver_sts_txt(d, dom, &txt);
		enum sts_recheck rc = sts_cache_recheck(d->sts, dom, applied, &txt, deliver_sts_fetch,
		    &fa, &dec);
		static const char *const names[] = { "unchanged", "changed", "fetch_failed" };
		log_info("event=sts_recheck domain=%s applied_id=%s dns_id=%s result=%s rcpts=%zu", dom,
		    applied, txt.state == STS_TXT_FOUND ? txt.id : "-", names[rc], n);
		sts_decision_free(&dec);
		if (rc == STS_RECHECK_CHANGED) {
			deliver_set_level(d, dom);
			deliver_mx(d, env, fd, off, dom, st, idx, n);
			deliver_set_level(d, NULL);
		} else if (rc == STS_RECHECK_FETCH_FAILED)
			for (size_t k = 0; k < n; k++)
				st[idx[k]].sts_hold = 1;
	}
}

/* RFC 8461 10.2: refetch cached policies past half their max_age, so a
 * policy does not run out while its domain is still publishing it. */
void
deliver_sts_refresh(struct deliver *d)
{
	char **due = NULL;
	if (d->sts == NULL || d->dns == NULL)
		return;
	size_t n = sts_cache_due(d->sts, &due);
	for (size_t i = 0; i < n; i++) {
		struct sts_txt_lookup txt;
		struct sts_decision dec;
		struct deliver_fetch_arg fa = { d };
		char q[LOG_QUOTE_SIZE(200)];
		deliver_sts_txt(d, due[i], &txt);
		sts_cache_refresh(d->sts, due[i], &txt, deliver_sts_fetch, &fa, &dec);
		if (!dec.fetched)
			log_info("event=sts_refresh domain=%s result=%s", due[i],
			    txt.state == STS_TXT_FAILED ? "dns_failed" : "no_record");
		else if (dec.fetch_result == STS_FETCH_OK)
			log_info("event=sts_refresh domain=%s result=ok id=%s", due[i], dec.id);
		else
			log_info("event=sts_refresh domain=%s result=%s reason=%s", due[i],
			    sts_fetch_result_type(dec.fetch_result),
			    log_quote(q, sizeof(q), dec.reason, strlen(dec.reason), 200));
		sts_decision_free(&dec);
	}
	sts_cache_list_free(due, n);
}

/* Route the job's recipients (those with routed[i] == 0) and deliver them,
 * grouped by next hop or MX domain as the scheduler grouped them: the same
 * routes on the same attempt number give the same answer. */
void
deliver_route(struct deliver *d, const struct spool_env *env, int fd, off_t off, int attempt,
    struct rcpt_state *st, size_t *idx, int *routed)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (routed[i])
			continue;
		const char *hop;
		const struct mxd_nexthop *nh = mxd_config_route(d->cfg, env->from, env->rcpts[i],
		    attempt, &hop);
		const char *dom = smtp_parser_domain(env->rcpts[i]);
		if ((nh == NULL || nh->proto == MXD_NH_MX) && d->dns != NULL && dom != NULL) {
			/* No next hop, or a route saying "mx": the domain's own MX
			 * hosts, with every recipient of that domain routed alike. */
			size_t n = 0;
			for (size_t j = i; j < env->nrcpts; j++) {
				const char *h2, *d2 = smtp_parser_domain(env->rcpts[j]);
				const struct mxd_nexthop *n2;
				if (routed[j] || d2 == NULL || strcasecmp(d2, dom) != 0)
					continue;
				n2 = mxd_config_route(d->cfg, env->from, env->rcpts[j], attempt, &h2);
				if (n2 != NULL && n2->proto != MXD_NH_MX)
					continue;
				idx[n++] = j;
				routed[j] = 1;
			}
			deliver_set_level(d, dom);
			deliver_mx(d, env, fd, off, dom, st, idx, n);
			deliver_set_level(d, NULL);
			continue;
		}
		if (nh == NULL || nh->proto == MXD_NH_MX) {
			/* The scheduler answers these itself; kept for a config
			 * reloaded between its routing and ours. */
			rcpt_set(&st[i], RCPT_DEFER, 0, "451 4.3.5 no route to this domain", NULL, NULL);
			routed[i] = 1;
			continue;
		}
		size_t n = 0;
		for (size_t j = i; j < env->nrcpts; j++) {
			const char *h2;
			if (routed[j])
				continue;
			if (mxd_config_route(d->cfg, env->from, env->rcpts[j], attempt, &h2) != NULL &&
			    strcmp(h2, hop) == 0) {
				idx[n++] = j;
				routed[j] = 1;
			}
		}
		struct mxd_nexthop hnh = *nh;
		if (deliver_hop_level(d, &hnh) < 0) {
			char text[600];
			snprintf(text, sizeof(text), "451 4.7.5 TLS policy %s for %s can not be met by a "
			    "next hop: it needs direct MX delivery", d->cur_level_mode, d->cur_level_dest);
			for (size_t k = 0; k < n; k++)
				rcpt_set(&st[idx[k]], RCPT_DEFER, 0, text, hop, NULL);
		} else
			deliver_to_hop(d, env, fd, off, &hnh, hop, st, idx, n);
		deliver_set_level(d, NULL);
	}
}

