/* The delivery process: hands spooled messages to their next hop.
 *
 * It learns of new messages from the workers through a pipe ("ID\n") and by
 * rescanning queue/ now and then, delivers over one connection per next hop
 * (kept open while there is work), deletes a spool file only after every
 * recipient got a final answer, retries 4xx and connection failures with a
 * doubling interval, and bounces 5xx with a DSN quoting the full reply. */
#include "deliver_int.h"
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

#define DELIVER_RESCAN_SEC	30
#define DELIVER_IDLE_CLOSE_SEC	2

static volatile sig_atomic_t deliver_stop;
static volatile sig_atomic_t deliver_reload;

static void
deliver_on_signal(int sig)
{
	if (sig == SIGHUP)
		deliver_reload = 1;
	else
		deliver_stop = 1;
}

struct deliver_entry *
deliver_find(struct deliver *d, const char *id)
{
	for (size_t i = 0; i < d->nq; i++)
		if (strcmp(d->q[i].id, id) == 0)
			return &d->q[i];
	return NULL;
}

/* A message new to the queue, due now; NULL when it is known already. */
static struct deliver_entry *
deliver_add_entry(struct deliver *d, const char *id)
{
	if (strlen(id) >= SPOOL_ID_MAX || deliver_find(d, id))
		return NULL;
	if (d->nq == d->capq) {
		d->capq = d->capq ? d->capq * 2 : 64;
		d->q = xreallocarray(d->q, d->capq, sizeof(*d->q));
	}
	struct deliver_entry *e = &d->q[d->nq++];
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	return e;
}

/* Just spooled (a notification, a DSN): nothing stored to take over. */
void
deliver_add(const char *id, void *arg)
{
	deliver_add_entry(arg, id);
}

/* Found in the spool (start-up, rescans): it may have been deferred by an
 * earlier run, whose schedule (attempts, next attempt, delay notice) it
 * keeps. A file that does not read is left to deliver_one. */
static void
deliver_add_stored(const char *id, void *arg)
{
	struct deliver *d = arg;
	struct deliver_entry *e = deliver_add_entry(d, id);
	struct spool_env env;
	int fd;
	off_t off;

	if (e == NULL || spool_read(d->sp, id, &env, &fd, &off) != 0)
		return;
	e->attempts = env.attempts;
	e->delay_notified = env.delay_notified;
	e->due = env.next_attempt;
	close(fd);
	spool_env_free(&env);
}

void
deliver_drop(struct deliver *d, struct deliver_entry *e)
{
	size_t i = (size_t)(e - d->q);
	d->q[i] = d->q[--d->nq];
}

static void
deliver_read_pipe(struct deliver *d)
{
	for (;;) {
		ssize_t n = read(d->notify_fd, d->pipebuf + d->pipelen, sizeof(d->pipebuf) - d->pipelen);
		if (n <= 0)
			return;
		d->pipelen += (size_t)n;
		size_t start = 0;
		for (size_t i = 0; i < d->pipelen; i++) {
			if (d->pipebuf[i] != '\n')
				continue;
			d->pipebuf[i] = '\0';
			deliver_add(d->pipebuf + start, d);
			start = i + 1;
		}
		memmove(d->pipebuf, d->pipebuf + start, d->pipelen - start);
		d->pipelen -= start;
		if (d->pipelen == sizeof(d->pipebuf))
			d->pipelen = 0;	/* garbage without newline: drop it */
	}
}

/* RFC 8460 result type for a certificate that did not verify. */
static const char *
deliver_verify_result_type(long v)
{
	switch (v) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return "certificate-host-mismatch";
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "certificate-expired";
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
		return "certificate-not-trusted";
	default:
		return "validation-failure";
	}
}

/* What a connection under the current MTA-STS policy amounts to: NULL when
 * it satisfies the policy, else the RFC 8460 result type. */
static const char *
deliver_dane_failure(const struct smtp_client *c, int connected)
{
	if (c->ssl == NULL)
		return connected && !c->starttls_offered ? "dane-required" : "validation-failure";
	if (c->dane_usable == 0 || !c->dane_ok)
		return "tlsa-invalid";
	return NULL;
}

static const char *
deliver_policy_failure(const struct smtp_client *c, int connected)
{
	if (c->ssl == NULL)
		return c->tls_failed ? "validation-failure" :
		    connected && !c->starttls_offered ? "starttls-not-supported" : "validation-failure";
	if (!c->verified)
		return deliver_verify_result_type(c->verify_result);
	return NULL;
}

/* One outbound session's record (DESIGN.md) with its RFC 8460 result: policy
 * type tlsa (DANE), sts (MTA-STS) or no-policy-found, and what the session
 * came to under it. */
static void
deliver_outcome(struct deliver *d, const struct smtp_client *c, int connected,
    const char *failure)
{
	const char *dom = connected && failure == NULL ? d->open_domain : d->conn_domain;
	const char *mxh = connected && failure == NULL ? d->open_mx : d->conn_mx;
	Mxfleet__V1__Outcome o = MXFLEET__V1__OUTCOME__INIT;
	Mxfleet__V1__PolicyResult pr = MXFLEET__V1__POLICY_RESULT__INIT;
	Mxfleet__V1__PolicyResult *prs[1] = { &pr };
	char sid[SPOOL_ID_MAX], q[LOG_QUOTE_SIZE(200)];
	const char *result, *starttls;

	spool_new_id(sid, sizeof(sid));
	if (c->ssl) {
		result = "success";
		starttls = "established";
		o.starttls = MXFLEET__V1__START_TLS__STARTTLS_ESTABLISHED;
		o.tls_version = (char *)c->tls_version;
		o.tls_cipher = (char *)c->tls_cipher;
	} else if (c->tls_failed || (connected && failure == NULL && d->conn_fallback)) {
		result = "validation-failure";
		starttls = "attempted";
		o.starttls = MXFLEET__V1__START_TLS__STARTTLS_ATTEMPTED;
		o.tls_fail_stage = (char *)c->tls_fail_stage;
		o.tls_fail_reason = (char *)c->tls_fail_reason;
	} else if (connected && !c->starttls_offered) {
		result = "starttls-not-supported";
		starttls = "not_offered";
		o.starttls = MXFLEET__V1__START_TLS__STARTTLS_NOT_OFFERED;
	} else {
		/* Offered but not used (next_hop_tls = none), or no session. */
		result = connected ? "success" : "connection-failure";
		starttls = connected ? "offered" : "none";
		o.starttls = connected ? MXFLEET__V1__START_TLS__STARTTLS_OFFERED :
		    MXFLEET__V1__START_TLS__STARTTLS_UNSPECIFIED;
	}
	o.session_id = sid;
	o.direction = MXFLEET__V1__DIRECTION__DIRECTION_OUTBOUND;
	o.start_unix_ms = d->conn_started_ms;
	o.end_unix_ms = timeutil_wall_ms();
	o.local_ip = (char *)c->local_ip;
	o.local_port = (uint32_t)c->local_port;
	o.remote_ip = (char *)c->remote_ip;
	o.remote_port = (uint32_t)c->remote_port;
	o.remote_ehlo = (char *)c->greeting_name;
	o.sni = (char *)c->sni;
	o.messages = (uint32_t)d->conn_messages;
	o.recipients = (uint32_t)d->conn_rcpts;
	pr.policy_type = "no-policy-found";
	if (d->cur_policy == NULL && d->cur_fetch_failure) {
		/* A policy was announced but could not be had: that is the
		 * session's RFC 8460 result (delivered as without a policy). */
		pr.policy_type = "sts";
		result = d->cur_fetch_failure;
	}
	if (d->cur_tlsa || d->cur_dane_failure) {
		const char *df = d->cur_dane_failure ? d->cur_dane_failure :
		    deliver_dane_failure(c, connected);
		pr.policy_type = "tlsa";
		pr.policy_strings = d->cur_tlsa_strings;
		pr.n_policy_strings = d->cur_ntlsa_strings;
		if (df)
			result = df;
		else if (connected && failure == NULL)
			result = "success";
	} else if (d->cur_policy) {
		const char *pf = deliver_policy_failure(c, connected);
		pr.policy_type = "sts";
		pr.policy_strings = (char **)sts_policy_strings(d->cur_policy, &pr.n_policy_strings);
		pr.mx_host = (char **)sts_policy_mx_hosts(d->cur_policy, &pr.n_mx_host);
		if (pf)
			result = pf;
		else if (connected && failure == NULL)
			result = "success";
	} else if (failure && (d->cur_level == MXD_TLS_ENCRYPT || d->cur_level == MXD_TLS_VERIFY ||
	    d->cur_level == MXD_TLS_SECURE)) {
		/* The operator's policy refused the session: RFC 8460 has no
		 * policy type for it, the result still says what went wrong. */
		const char *pf = c->ssl == NULL || d->cur_level != MXD_TLS_ENCRYPT ?
		    deliver_policy_failure(c, connected) : NULL;
		if (pf)
			result = pf;
	}
	pr.policy_domain = (char *)dom;
	pr.result_type = (char *)result;
	pr.sending_mta_ip = (char *)c->local_ip;
	pr.receiving_mx_hostname = (char *)mxh;
	pr.receiving_mx_helo = (char *)c->greeting_name;
	pr.receiving_ip = (char *)c->remote_ip;
	if (failure) {
		pr.failure_reason_code = (char *)(c->tls_failed ? c->tls_fail_reason : "");
		pr.additional_information = (char *)failure;
	}
	o.n_policy_results = 1;
	o.policy_results = prs;
	outcome_emit(&d->outcomes, &o);
	log_info("event=outbound_session sid=%s policy=%s domain=%s mx=%s ip=%s helo=%s starttls=%s "
	    "tls_version=%s result=%s messages=%d rcpts=%d%s%s", sid, pr.policy_type,
	    dom[0] ? dom : "-", mxh[0] ? mxh : "-",
	    c->remote_ip[0] ? c->remote_ip : "-", c->greeting_name[0] ? c->greeting_name : "-",
	    starttls, c->ssl ? c->tls_version : "-", result, d->conn_messages, d->conn_rcpts,
	    failure ? " error=" : "", failure ? log_quote(q, sizeof(q), failure, strlen(failure), 200) : "");
}

static void
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

/* The state keeps its own copies: hop and MX names come from per-attempt
 * buffers that do not outlive the attempt. */
void
rcpt_set(struct rcpt_state *r, enum rcpt_result res, int code, const char *text, const char *hop,
    const char *mta)
{
	r->result = res;
	r->code = code;
	free(r->reply);
	free(r->hop);
	free(r->mta);
	r->reply = xstrdup(text ? text : "");
	r->hop = hop ? xstrdup(hop) : NULL;
	r->mta = hop && mta ? xstrdup(mta) : NULL;
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

/* Open or reuse the connection to a next hop. */
static int
deliver_connect(struct deliver *d, const struct mxd_nexthop *nh, const char *hop,
    struct smtp_reply *r)
{
	if (d->conn_open && strcmp(d->conn_hop, hop) == 0 && !d->conn.broken) {
		/* A reused connection starts clean. */
		smtp_client_cmd(&d->conn, "RSET");
		if (smtp_client_read_reply(&d->conn, r) == 0 && r->code == 250)
			return 0;
		deliver_close_conn(d);
	}
	deliver_close_conn(d);
	d->conn_started_ms = timeutil_wall_ms();
	d->conn_messages = d->conn_rcpts = 0;
	d->conn_fallback = 0;
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
	struct smtp_client_limits lim;
	smtp_client_limits_config(&lim, d->cfg);
	if (smtp_client_open(&d->conn, nh, d->cfg->hostname, tls, &lim, &d->source, r) < 0) {
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
		if (smtp_client_open(&d->conn, nh, d->cfg->hostname, NULL, &lim, &d->source,
		    r) < 0) {
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
			rcpt_set(&st[idx[i]], res, r.code, r.text.data, hop, mta);
		if (r.code == 0 || res == RCPT_DEFER)
			deliver_mark_down(d, hop, now + 1, r.text.data ? r.text.data : "unreachable");
		log_info("event=connect_failed next_hop=%s reply=\"%s\"", hop,
		    smtp_reply_oneline(&r, one, sizeof(one)));
		goto out;
	}
	struct smtp_client *c = &d->conn;
	int pipelining = (c->ext & SMTP_EXT_PIPELINING) != 0;
	/* CHUNKING for SMTP; LMTP keeps DATA and its per-recipient replies. */
	int chunking = (c->ext & SMTP_EXT_CHUNKING) != 0 && !c->lmtp;
	/* RFC 8689 4.2.1: a REQUIRETLS message goes only over TLS to a server
	 * that offers REQUIRETLS, and to an MX only when DANE or an enforced
	 * MTA-STS policy verified it; a configured next hop (the operator's
	 * own) needs TLS and REQUIRETLS. */
	int verified_mx = (d->cur_tlsa && c->dane_ok) ||
	    (d->cur_policy && d->cur_policy->mode == STS_MODE_ENFORCE && c->verified);
	if (env->requiretls && ((d->open_domain[0] != '\0' && !verified_mx) || c->ssl == NULL ||
	    !(c->ext & SMTP_EXT_REQUIRETLS))) {
		char why[512];
		if (d->open_domain[0] != '\0' && !verified_mx)
			snprintf(why, sizeof(why), "550 5.7.30 REQUIRETLS support required: %s (%s) "
			    "could not be verified with DANE or an enforced MTA-STS policy\n",
			    d->open_mx, c->peer);
		else
			snprintf(why, sizeof(why), "550 5.7.30 REQUIRETLS support required: next hop %s %s\n",
			    c->peer, c->ssl == NULL ? "offers no TLS" : "does not offer REQUIRETLS");
		for (size_t i = 0; i < n; i++)
			rcpt_set(&st[idx[i]], RCPT_BOUNCE, 0, why, hop, mta);
		goto out;
	}
	/* RFC 6531 3.4: UTF-8 mail only to a server that takes it. */
	if (env->smtputf8 && !(c->ext & SMTP_EXT_SMTPUTF8) &&
	    deliver_needs_utf8(d, env, idx, n)) {
		char why[512];
		snprintf(why, sizeof(why), "550 5.6.7 SMTPUTF8 is required, but was not offered "
		    "by %s (%s)\n", d->open_mx[0] ? d->open_mx : mta, c->peer);
		for (size_t i = 0; i < n; i++)
			rcpt_set(&st[idx[i]], RCPT_BOUNCE, 0, why, hop, mta);
		goto out;
	}
	char params[256] = "";	/* room for all of them with a 100-character ENVID */
	size_t pl = 0;
	if ((c->ext & SMTP_EXT_SIZE))
		pl += (size_t)snprintf(params + pl, sizeof(params) - pl, " SIZE=%" PRIu64, env->size);
	if (env->body8bit && (c->ext & SMTP_EXT_8BITMIME))
		pl += (size_t)snprintf(params + pl, sizeof(params) - pl, " BODY=8BITMIME");
	if (env->smtputf8 && (c->ext & SMTP_EXT_SMTPUTF8))
		pl += (size_t)snprintf(params + pl, sizeof(params) - pl, " SMTPUTF8");
	if (env->requiretls)
		pl += (size_t)snprintf(params + pl, sizeof(params) - pl, " REQUIRETLS");
	if (c->ext & SMTP_EXT_DSN)
		dsn_mail_params(env, params + pl, sizeof(params) - pl);

	smtp_client_cmd(c, "MAIL FROM:<%s>%s", env->from, params);
	if (!pipelining && smtp_client_read_reply(c, &r) < 0)
		goto ioerr;
	int mail_ok = 1, mail_code = 0;
	char *mail_reply = NULL;
	if (!pipelining) {
		if (r.code != 250) {
			mail_ok = 0;
			mail_code = r.code;
			mail_reply = xstrdup(r.text.data ? r.text.data : "");
		}
	}
	size_t accepted = 0;
	if (mail_ok) {
		for (size_t i = 0; i < n; i++) {
			char rparams[600] = "";	/* NOTIFY and a 500-character ORCPT */
			if (c->ext & SMTP_EXT_DSN)
				dsn_rcpt_params(env, idx[i], rparams, sizeof(rparams));
			smtp_client_cmd(c, "RCPT TO:<%s>%s", env->rcpts[idx[i]], rparams);
			if (!pipelining) {
				if (smtp_client_read_reply(c, &r) < 0)
					goto ioerr;
				if (r.code >= 200 && r.code < 300)
					accepted++;
				rcpt_set(&st[idx[i]], r.code >= 200 && r.code < 300 ? RCPT_PENDING :
				    deliver_classify(r.code), r.code, r.text.data, hop, mta);
				/* It took NOTIFY/ORCPT on: success notices are its to send. */
				st[idx[i]].dsn_passed = (c->ext & SMTP_EXT_DSN) && r.code >= 200 && r.code < 300;
			}
		}
		if (!chunking && (pipelining || accepted > 0))
			smtp_client_cmd(c, "DATA");
	}
	if (pipelining) {
		/* Replies come back in order: MAIL, each RCPT, DATA. A server
		 * that refuses MAIL and hangs up is reported by that refusal. */
		if (smtp_client_read_reply(c, &r) < 0)
			goto ioerr;
		if (r.code != 250) {
			mail_ok = 0;
			mail_code = r.code;
			mail_reply = xstrdup(r.text.data ? r.text.data : "");
		}
		for (size_t i = 0; i < n; i++) {
			if (smtp_client_read_reply(c, &r) < 0) {
				if (!mail_ok)
					break;
				goto ioerr;
			}
			if (r.code >= 200 && r.code < 300 && mail_ok)
				accepted++;
			if (mail_ok) {
				rcpt_set(&st[idx[i]], r.code >= 200 && r.code < 300 ? RCPT_PENDING :
				    deliver_classify(r.code), r.code, r.text.data, hop, mta);
				st[idx[i]].dsn_passed = (c->ext & SMTP_EXT_DSN) && r.code >= 200 && r.code < 300;
			}
		}
	}
	if (!mail_ok) {
		enum rcpt_result res = deliver_classify(mail_code);
		for (size_t i = 0; i < n; i++)
			rcpt_set(&st[idx[i]], res == RCPT_DONE ? RCPT_DEFER : res, mail_code, mail_reply, hop, mta);
		free(mail_reply);
		if (pipelining && !chunking)
			c->broken = 1;	/* DATA reply state unknown: start over next time */
		else {
			smtp_client_cmd(c, "RSET");
			smtp_client_read_reply(c, &r);
		}
		goto out;
	}
	if ((!pipelining || chunking) && accepted == 0) {
		smtp_client_cmd(c, "RSET");
		smtp_client_read_reply(c, &r);
		goto out;
	}
	if (chunking) {
		/* RFC 3030: the content as it is, in BDAT chunks; the reply to
		 * the last chunk (or the first refusal) is the message's. */
		for (size_t i = 0; i < n; i++)
			st[idx[i]].transfer = "BDAT";
		if (smtp_client_send_bdat(c, fd, off, env->size, &r) < 0)
			goto ioerr;
		for (size_t i = 0; i < n; i++)
			if (st[idx[i]].result == RCPT_PENDING)
				rcpt_set(&st[idx[i]], deliver_classify(r.code), r.code, r.text.data, hop, mta);
		if (r.code < 200 || r.code > 299) {
			smtp_client_cmd(c, "RSET");
			if (smtp_client_read_reply(c, &r) < 0 || r.code != 250)
				c->broken = 1;
			goto out;
		}
		goto sent;
	}
	if (smtp_client_read_reply(c, &r) < 0)
		goto ioerr;
	if (r.code != 354) {
		for (size_t i = 0; i < n; i++)
			if (st[idx[i]].result == RCPT_PENDING)
				rcpt_set(&st[idx[i]], deliver_classify(r.code) == RCPT_BOUNCE ?
				    RCPT_BOUNCE : RCPT_DEFER, r.code, r.text.data, hop, mta);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		st[idx[i]].transfer = "DATA";
	if (smtp_client_send_data(c, fd, off, &r) < 0)
		goto ioerr;
	if (c->lmtp) {
		/* LMTP: one reply per accepted recipient, in order. */
		for (size_t i = 0; i < n; i++) {
			if (st[idx[i]].result != RCPT_PENDING)
				continue;
			if (smtp_client_read_reply(c, &r) < 0)
				goto ioerr;
			rcpt_set(&st[idx[i]], deliver_classify(r.code), r.code, r.text.data, hop, mta);
		}
	} else {
		if (smtp_client_read_reply(c, &r) < 0)
			goto ioerr;
		for (size_t i = 0; i < n; i++)
			if (st[idx[i]].result == RCPT_PENDING)
				rcpt_set(&st[idx[i]], deliver_classify(r.code), r.code, r.text.data, hop, mta);
	}
sent:
	d->conn_messages++;
	for (size_t i = 0; i < n; i++) {
		d->conn_rcpts += st[idx[i]].result == RCPT_DONE;
		if (st[idx[i]].result == RCPT_DONE)
			st[idx[i]].lmtp = c->lmtp;	/* final delivery: "delivered" */
	}
	goto out;
ioerr:
	for (size_t i = 0; i < n; i++)
		if (st[idx[i]].result == RCPT_PENDING)
			rcpt_set(&st[idx[i]], RCPT_DEFER, 0, r.text.data, hop, mta);
	deliver_close_conn(d);
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
	enum dns_result dr = dns_mx(d->dns, domain, &mx);
	if (dr == DNS_NXDOMAIN || dr == DNS_INVALID) {
		snprintf(text, sizeof(text), "550 5.1.2 <%s>: domain not found (%s)\n", domain,
		    dr == DNS_NXDOMAIN ? "DNS NXDOMAIN" : "not a valid domain name");
		deliver_set_all(st, idx, n, RCPT_BOUNCE, text);
		goto out;
	}
	if (dr == DNS_OK && mx.null_mx) {
		snprintf(text, sizeof(text), "556 5.1.10 <%s>: the domain accepts no mail (null MX, RFC 7505)\n",
		    domain);
		deliver_set_all(st, idx, n, RCPT_BOUNCE, text);
		goto out;
	}
	if (dr != DNS_OK || mx.n == 0) {
		snprintf(text, sizeof(text), "451 4.4.3 MX lookup for %s failed: %s%s%s\n", domain,
		    dns_result_str(dr), mx.st.error[0] ? ": " : "", mx.st.error);
		deliver_set_all(st, idx, n, RCPT_DEFER, text);
		goto out;
	}
	/* Shuffle runs of equal preference so load spreads as the domain meant. */
	for (size_t i = 0; i < mx.n;) {
		size_t j = i;
		while (j < mx.n && mx.mx[j].pref == mx.mx[i].pref)
			j++;
		for (size_t k = j - 1; k > i; k--) {
			size_t r = i + (size_t)random() % (k - i + 1);
			struct dns_mx t = mx.mx[k];
			mx.mx[k] = mx.mx[r];
			mx.mx[r] = t;
		}
		i = j;
	}
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
			char ip[64], hop[600];
			memset(&nh, 0, sizeof(nh));
			nh.proto = MXD_NH_SMTP;
			nh.port = d->cfg->remote_port;
			inet_ntop(ar.addrs[a].family, ar.addrs[a].addr, ip, sizeof(ip));
			snprintf(nh.host, sizeof(nh.host), "%s", ip);
			snprintf(nh.sni, sizeof(nh.sni), "%s", mx.mx[i].host);
			nh.verify = d->cur_policy != NULL || d->cur_level == MXD_TLS_VERIFY ||
			    d->cur_level == MXD_TLS_SECURE;
			if (d->cur_level == MXD_TLS_SECURE)
				snprintf(nh.verify_name, sizeof(nh.verify_name), "%s", domain);
			nh.tlsa = dane ? &tr : NULL;
			snprintf(hop, sizeof(hop), "%smx:%s[%s]:%d", dane ? "dane+" :
			    d->cur_policy ? "sts+" : nh.verify ? "verify+" : "",
			    mx.mx[i].host, ip, nh.port);
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

static int
deliver_retry_delay(const struct deliver *d, int attempts)
{
	long delay = d->cfg->retry_min;
	for (int i = 1; i < attempts && delay < d->cfg->retry_max; i++)
		delay *= 2;
	return (int)(delay > d->cfg->retry_max ? d->cfg->retry_max : delay);
}

/* What an attempt needs from the header block, read once: does it carry
 * "TLS-Required: No" (RFC 8689 5), and, for SMTPUTF8 mail, does it hold
 * UTF-8 (RFC 6531 3.4)? */
static void
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
static void
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
static void
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

/* What earlier attempts finished, from the spool statuses: a recipient
 * done is left alone; one returned whose DSN could not be queued then is
 * returned again from what was stored - the next hop never sees it again. */
static void
deliver_resume(const struct spool_env *env, struct rcpt_state *st, int *routed)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt_status *ss = &env->status[i];
		if (ss->state == SPOOL_RCPT_DONE)
			st[i].result = RCPT_FINAL;
		else if (ss->state == SPOOL_RCPT_BOUNCED) {
			rcpt_set(&st[i], RCPT_BOUNCE, ss->code, ss->reply, NULL, NULL);
			st[i].mta = ss->mta ? xstrdup(ss->mta) : NULL;
			st[i].stored = 1;
		} else
			continue;
		routed[i] = 1;
	}
}

/* Record this attempt's outcome in env's statuses. owed: the returned
 * recipients whose DSN is still to be queued. */
static void
deliver_record(struct spool_env *env, const struct rcpt_state *st, int owed)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		switch (st[i].result) {
		case RCPT_FINAL:
			break;
		case RCPT_DONE:
			spool_env_set_status(env, i, SPOOL_RCPT_DONE, 0, NULL, NULL);
			break;
		case RCPT_BOUNCE:
			if (owed && dsn_wanted(env, i, DSN_ACTION_FAILED))
				spool_env_set_status(env, i, SPOOL_RCPT_BOUNCED, st[i].code,
				    st[i].mta, st[i].reply);
			else
				spool_env_set_status(env, i, SPOOL_RCPT_DONE, 0, NULL, NULL);
			break;
		default:
			spool_env_set_status(env, i, SPOOL_RCPT_TODO, 0, NULL, NULL);
			break;
		}
	}
}

static void
deliver_one(struct deliver *d, struct deliver_entry *e, time_t now)
{
	struct spool_env env;
	int fd;
	off_t off;
	char one[1024];

	int rc = spool_read(d->sp, e->id, &env, &fd, &off);
	if (rc == -2) {
		log_error("event=spool_corrupt id=%s action=quarantine dir=corrupt", e->id);
		spool_quarantine(d->sp, e->id);
		deliver_drop(d, e);
		return;
	}
	if (rc < 0) {
		if (errno != ENOENT)
			log_warn("event=spool_error op=read id=%s", e->id);
		deliver_drop(d, e);
		return;
	}
	e->attempts++;
	e->last_attempt = now;
	deliver_scan_headers(d, &env, fd, off);
	if (d->tls_optional)
		log_info("event=tls_required_no id=%s effect=policy_failures_not_fatal", env.id);
	struct rcpt_state *st = xcalloc(env.nrcpts, sizeof(*st));
	size_t *idx = xcalloc(env.nrcpts, sizeof(*idx));
	int *routed = xcalloc(env.nrcpts, sizeof(*routed));
	deliver_resume(&env, st, routed);

	for (size_t i = 0; i < env.nrcpts; i++) {
		if (routed[i])
			continue;
		const char *hop;
		const struct mxd_nexthop *nh = mxd_config_route(d->cfg, env.from, env.rcpts[i],
		    e->attempts, &hop);
		const char *dom = smtp_parser_domain(env.rcpts[i]);
		if ((nh == NULL || nh->proto == MXD_NH_MX) && d->dns != NULL && dom != NULL) {
			/* No next hop, or a route saying "mx": the domain's own MX
			 * hosts, with every recipient of that domain routed alike. */
			size_t n = 0;
			for (size_t j = i; j < env.nrcpts; j++) {
				const char *h2, *d2 = smtp_parser_domain(env.rcpts[j]);
				const struct mxd_nexthop *n2;
				if (routed[j] || d2 == NULL || strcasecmp(d2, dom) != 0)
					continue;
				n2 = mxd_config_route(d->cfg, env.from, env.rcpts[j], e->attempts, &h2);
				if (n2 != NULL && n2->proto != MXD_NH_MX)
					continue;
				idx[n++] = j;
				routed[j] = 1;
			}
			deliver_set_level(d, dom);
			deliver_mx(d, &env, fd, off, dom, st, idx, n);
			deliver_set_level(d, NULL);
			continue;
		}
		if (nh == NULL || nh->proto == MXD_NH_MX) {
			rcpt_set(&st[i], RCPT_DEFER, 0, nh ? "451 4.3.5 a route says mx (direct MX delivery) "
			    "but no resolver is configured" : "451 4.3.5 no route to this domain: neither "
			    "relay_next_hop, a route, nor resolver (direct MX delivery) is configured",
			    NULL, NULL);
			routed[i] = 1;
			continue;
		}
		size_t n = 0;
		for (size_t j = i; j < env.nrcpts; j++) {
			const char *h2;
			if (routed[j])
				continue;
			if (mxd_config_route(d->cfg, env.from, env.rcpts[j], e->attempts, &h2) != NULL &&
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
			deliver_to_hop(d, &env, fd, off, &hnh, hop, st, idx, n);
		deliver_set_level(d, NULL);
	}

	size_t left = 0;
	int expired = now - env.created > d->cfg->max_age;
	if (expired)
		deliver_sts_recheck(d, &env, fd, off, st, idx);
	for (size_t i = 0; i < env.nrcpts; i++) {
		if (st[i].reply == NULL)
			st[i].reply = xstrdup("not attempted");
		struct smtp_reply tmp = { st[i].code, { st[i].reply, strlen(st[i].reply), 0 } };
		const char *txt = smtp_reply_oneline(&tmp, one, sizeof(one));
		switch (st[i].result) {
		case RCPT_FINAL:
			break;
		case RCPT_DONE:
			log_info("event=delivered id=%s rcpt=<%s> next_hop=%s reply=\"%s\" attempts=%d "
			    "transfer=%s", env.id, env.rcpts[i], st[i].hop, txt, e->attempts,
			    st[i].transfer ? st[i].transfer : "-");
			break;
		case RCPT_BOUNCE:
			if (!st[i].stored)	/* logged when it was decided */
				log_info("event=bounced id=%s rcpt=<%s> next_hop=%s reply=\"%s\"",
				    env.id, env.rcpts[i], st[i].hop ? st[i].hop : "none", txt);
			break;
		default:
			if (expired && !(st[i].sts_hold &&
			    now - env.created <= d->cfg->max_age + DELIVER_STS_HOLD_SEC)) {
				st[i].result = RCPT_BOUNCE;
				log_info("event=expired id=%s rcpt=<%s> reply=\"%s\"", env.id,
				    env.rcpts[i], txt);
			} else {
				left++;
				snprintf(e->last_reply, sizeof(e->last_reply), "%s", txt);
				log_info("event=deferred id=%s rcpt=<%s> next_hop=%s reply=\"%s\" attempts=%d",
				    env.id, env.rcpts[i], st[i].hop ? st[i].hop : "none", txt, e->attempts);
			}
			break;
		}
	}
	/* A DSN joins the queue (deliver_add may move d->q): find e again. */
	size_t ei = (size_t)(e - d->q);
	size_t deferred = left, owed = 0;
	if (deliver_bounce(d, &env, fd, off, st, RCPT_BOUNCE, 0) < 0) {
		/* The sender must hear of it, and the spool (full?) could not
		 * take the DSN: these recipients stay, marked returned, and a
		 * later attempt queues their DSN from what is stored - they
		 * are not sent again, nor reported as delayed. */
		for (size_t i = 0; i < env.nrcpts; i++)
			if (st[i].result == RCPT_BOUNCE && dsn_wanted(&env, i, DSN_ACTION_FAILED))
				owed++;
	}
	left = deferred + owed;
	e = &d->q[ei];
	if (owed > 0 && deferred == 0)
		snprintf(e->last_reply, sizeof(e->last_reply), "returned, the DSN not queued "
		    "yet (%zu recipient%s)", owed, owed == 1 ? "" : "s");
	/* NOTIFY=SUCCESS that no next hop took on: mxd tells the sender. */
	deliver_success(d, &env, fd, off, st);
	e = &d->q[ei];
	/* Still trying after delivery.delay_dsn: tell the sender once (RFC 3464
	 * Action: delayed). The flag is stored with the schedule below; a
	 * crash between the notice and that store can make a second one, never
	 * a missing one. */
	if (deferred > 0 && !expired && d->cfg->delay_dsn > 0 && !e->delay_notified &&
	    now - env.created >= d->cfg->delay_dsn) {
		for (size_t i = 0; i < env.nrcpts; i++)
			if (st[i].result == RCPT_PENDING)
				st[i].result = RCPT_DEFER;
		int told = deliver_bounce(d, &env, fd, off, st, RCPT_DEFER, 1) == 0;
		e = &d->q[ei];
		e->delay_notified = told;	/* else on a later attempt */
	}

	if (left == 0) {
		spool_remove(d->sp, e->id);
		deliver_drop(d, e);
	} else {
		e->due = now + deliver_retry_delay(d, e->attempts);
		/* Who is finished, and the schedule, go into the spool file:
		 * nobody is sent twice, a restart neither retries everything
		 * at once nor repeats the delay notice. In place, so this
		 * holds on a full disk too; a file from an older mxd, without
		 * the lines, is copied once to get them. */
		env.attempts = e->attempts;
		env.next_attempt = e->due;
		env.delay_notified = e->delay_notified;
		deliver_record(&env, st, owed > 0);
		if (spool_env_in_place(&env)) {
			if (spool_set_progress(d->sp, &env) < 0)
				log_warn("event=spool_error op=progress id=%s", env.id);
		} else if (spool_rewrite(d->sp, &env, fd, off) < 0)
			log_warn("event=spool_error op=rewrite id=%s", env.id);
	}
	for (size_t i = 0; i < env.nrcpts; i++) {
		free(st[i].reply);
		free(st[i].hop);
		free(st[i].mta);
	}
	free(st);
	free(idx);
	free(routed);
	close(fd);
	spool_env_free(&env);
}

static void
deliver_reload_config(struct deliver *d)
{
	char err[600];
	struct mxd_config *ncfg;
	if (mxd_config_load(d->cfg->path, &ncfg, err, sizeof(err)) < 0) {
		log_error("event=reload_failed error=\"%s\"", err);
		return;
	}
	mxd_config_free(d->cfg);
	d->cfg = ncfg;
	/* Checked by mxd_config_load: cannot fail. */
	smtp_client_source_set(&d->source, d->cfg->source_ipv4, d->cfg->source_ipv6);
	deliver_close_conn(d);
	d->ndown = 0;
	log_info("event=reloaded domains=%zu", d->cfg->ndomains);
}

void
deliver_main(struct mxd_config *cfg, struct spool *sp, int notify_fd,
    const struct outcome_sink *outcomes)
{
	struct deliver d;
	char err[256];
	time_t last_scan = 0, last_sts_refresh = 0;

	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	d.sp = sp;
	smtp_client_source_set(&d.source, cfg->source_ipv4, cfg->source_ipv6);
	d.notify_fd = notify_fd;
	d.tls = tls_client_ctx_new(TLS1_2_VERSION, err, sizeof(err));
	if (d.tls == NULL)
		fatalx("event=tls_error error=\"%s\"", err);
	d.outcomes = *outcomes;
	/* Equal-preference MX hosts are shuffled: differently on every host. */
	srandom((unsigned)getpid() ^ (unsigned)time(NULL));
	if (cfg->resolver) {
		d.dns = dns_resolver_new(cfg->resolver, 2000, 3, err, sizeof(err));
		if (d.dns == NULL)
			fatalx("event=resolver_error resolver=%s error=\"%s\"", cfg->resolver, err);
		/* MTA-STS: a policy cache in the spool, and a PKIX context whose
		 * verdict the policy's mode decides on. */
		char stsdir[4200];
		snprintf(stsdir, sizeof(stsdir), "%s", cfg->sts_cache_dir ? cfg->sts_cache_dir : "");
		if (stsdir[0] == '\0')
			snprintf(stsdir, sizeof(stsdir), "%s/sts", cfg->spool_dir);
		if (sts_cache_open(stsdir, NULL, NULL, &d.sts, err, sizeof(err)) < 0) {
			log_warnx("event=sts_cache_unavailable dir=%s error=\"%s\" effect=no_mta_sts", stsdir, err);
			d.sts = NULL;
		}
		d.tls_dane = tls_client_ctx_new(TLS1_2_VERSION, err, sizeof(err));
		if (d.tls_dane == NULL || SSL_CTX_dane_enable(d.tls_dane) <= 0)
			fatalx("event=tls_error error=\"cannot enable DANE\"");
	}
	/* PKIX with names checked: MTA-STS, and the verify and secure policies
	 * (also for next hops and submission). */
	d.tls_verify = tls_client_ctx_new(TLS1_2_VERSION, err, sizeof(err));
	if (d.tls_verify == NULL ||
	    (cfg->ca_file ? SSL_CTX_load_verify_locations(d.tls_verify, cfg->ca_file, NULL) :
	    SSL_CTX_set_default_verify_paths(d.tls_verify)) != 1)
		fatalx("event=tls_error error=\"cannot load CA %s\"", cfg->ca_file ? cfg->ca_file : "(system)");

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = deliver_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	fcntl(notify_fd, F_SETFL, O_NONBLOCK);
	/* After the privilege drop: the socket belongs to mxd's user. */
	deliver_queue_open(&d);

	log_info("event=delivery_started");
	while (!deliver_stop) {
		time_t now = time(NULL);
		if (deliver_reload) {
			deliver_reload = 0;
			deliver_reload_config(&d);
		}
		deliver_read_pipe(&d);
		if (now - last_scan >= DELIVER_RESCAN_SEC) {
			spool_scan(sp, deliver_add_stored, &d);
			last_scan = now;
		}
		if (now - last_sts_refresh >= d.cfg->sts_refresh_interval) {
			deliver_sts_refresh(&d);
			last_sts_refresh = now;
		}
		/* Work through what is due; new arrivals are read between
		 * messages so a busy next hop's connection stays in use. */
		int worked = 0;
		for (size_t i = 0; i < d.nq && !deliver_stop;) {
			struct deliver_entry *e = &d.q[i];
			if (e->due > now) {
				i++;
				continue;
			}
			size_t before = d.nq;
			deliver_one(&d, e, now);
			worked = 1;
			if (d.nq >= before && i < d.nq && d.q[i].due > now)
				i++;
			deliver_read_pipe(&d);
			/* An operator is not kept waiting for the whole queue. */
			deliver_queue_serve(&d);
			now = time(NULL);
		}
		if (worked)
			continue;
		if (d.conn_open && now - d.conn_used >= DELIVER_IDLE_CLOSE_SEC)
			deliver_close_conn(&d);
		/* Sleep until a notification, the next due message, or a rescan. */
		time_t next = last_scan + DELIVER_RESCAN_SEC;
		if (d.sts && last_sts_refresh + d.cfg->sts_refresh_interval < next)
			next = last_sts_refresh + d.cfg->sts_refresh_interval;
		for (size_t i = 0; i < d.nq; i++)
			if (d.q[i].due < next)
				next = d.q[i].due;
		long wait_ms = (long)(next - now) * 1000;
		if (wait_ms < 50)
			wait_ms = 50;
		if (d.conn_open && wait_ms > DELIVER_IDLE_CLOSE_SEC * 1000)
			wait_ms = DELIVER_IDLE_CLOSE_SEC * 1000;
		if (deliver_stop)
			break;
		struct pollfd p[2] = { { notify_fd, POLLIN, 0 }, { d.qctl_fd, POLLIN, 0 } };
		if (poll(p, 2, (int)wait_ms) > 0 && (p[1].revents & POLLIN)) {
			deliver_read_pipe(&d);	/* what was just queued is listed */
			deliver_queue_serve(&d);
		}
	}
	deliver_queue_close(&d);
	deliver_close_conn(&d);
	SSL_CTX_free(d.tls);
	log_info("event=delivery_stopped queued=%zu", d.nq);
	free(d.q);
	dns_resolver_free(d.dns);
	sts_cache_close(d.sts);
	SSL_CTX_free(d.tls_verify);
	SSL_CTX_free(d.tls_dane);
	if (d.cfg != cfg)
		mxd_config_free(d.cfg);	/* a reloaded copy of our own */
	exit(0);
}
