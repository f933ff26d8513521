/* A delivery agent's outbound session records (DESIGN.md "The outcome
 * record"): one per connection, with its RFC 8460 policy result, sent to the
 * uploader. */
#include "deliver_int.h"
#include "deliver_tlsrpt.h"
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
const char *
deliver_dane_failure(const struct smtp_client *c, int connected)
{
	if (c->ssl == NULL)
		return connected && !c->starttls_offered ? "dane-required" : "validation-failure";
	if (c->dane_usable == 0 || !c->dane_ok)
		return "tlsa-invalid";
	return NULL;
}

const char *
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
void
deliver_outcome(struct deliver *d, const struct smtp_client *c, int connected,
    const char *failure)
{
	const char *dom = connected && failure == NULL ? d->open_domain : d->conn_domain;
	const char *mxh = connected && failure == NULL ? d->open_mx : d->conn_mx;
	Mxfleet__V1__Outcome o = MXFLEET__V1__OUTCOME__INIT;
	Mxfleet__V1__PolicyResult pr = MXFLEET__V1__POLICY_RESULT__INIT;
	Mxfleet__V1__PolicyResult *prs[1] = { &pr };
	char sid[SPOOL_ID_MAX], q[LOG_QUOTE_SIZE(200)], reason[DELIVER_TLSRPT_REASON_MAX + 1];
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
		/* Not offered: a failure only if we meant to use TLS. */
		result = d->conn_tls_off ? DELIVER_TLS_NOT_USED : "starttls-not-supported";
		starttls = "not_offered";
		o.starttls = MXFLEET__V1__START_TLS__STARTTLS_NOT_OFFERED;
	} else {
		/* Offered but not used (next_hop_tls = none, a policy "none"): no
		 * TLS session, so no RFC 8460 success either. Or no session. */
		result = connected ? DELIVER_TLS_NOT_USED : "connection-failure";
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
	/* RFC 8460 4.4: failure-reason-code is the free text; additional-
	 * information is a URI, and we have none to give. */
	deliver_tlsrpt_reason(reason, sizeof(reason), c->tls_failed ? c->tls_fail_reason : NULL,
	    failure);
	pr.failure_reason_code = reason;
	o.n_policy_results = 1;
	o.policy_results = prs;
	/* A session that carried only TLS reports is not reported on (RFC
	 * 8460 5.3): its record says so, controld leaves it out. */
	o.tlsrpt_exempt = c == &d->conn ? d->conn_exempt : d->cur_exempt;
	outcome_emit(&d->outcomes, &o);
	log_info("event=outbound_session sid=%s policy=%s domain=%s mx=%s ip=%s helo=%s starttls=%s "
	    "tls_version=%s result=%s messages=%d rcpts=%d%s%s%s", sid, pr.policy_type,
	    dom[0] ? dom : "-", mxh[0] ? mxh : "-",
	    c->remote_ip[0] ? c->remote_ip : "-", c->greeting_name[0] ? c->greeting_name : "-",
	    starttls, c->ssl ? c->tls_version : "-", result, d->conn_messages, d->conn_rcpts,
	    o.tlsrpt_exempt ? " tlsrpt_exempt=1" : "",
	    failure ? " error=" : "", failure ? log_quote(q, sizeof(q), failure, strlen(failure), 200) : "");
}
